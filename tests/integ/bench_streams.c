/*
 * bench_streams.c - what streams cost the requests next to them, and how
 * fast they go (make bench-streams; figures in doc/performance.md).
 *
 * Two contexts in worker mode (a worker thread each), two TCP paths on
 * loopback (127.0.0.1 and 127.0.0.2), or, when ML_BENCH_NETNS_SRV and _CLI
 * name network namespaces (/run/netns/...), the server's worker in one and
 * the client's in the other, over ML_BENCH_ADDR0 and _ADDR1 (the server's
 * addresses). An application thread sends 64-byte
 * requests one at a time and times each round trip:
 *   1. alone, for ML_BENCH_SECONDS (3);
 *   2. while a stream out and a stream in of ML_BENCH_STREAM_BYTES (1 GiB)
 *      each run, until both end (content checked by hash);
 *   3. then ML_BENCH_CANCELS (20) streams are canceled at random chunks from
 *      a random end: the time from the cancel to the other end's on_end,
 *      next to the path RTT plus one chunk's time at the measured rate.
 * It prints the latency percentiles of 1 and 2 and their ratio. It fails
 * only when something is wrong (content, counts, statuses), never on a time.
 * The settings are the library's defaults unless ML_BENCH_CHUNK, _WINDOW,
 * _PATH_MAX or _FRAG (max_frag_payload) say otherwise.
 * tests/bench/streams-link.sh runs it between two namespaces over shaped links.
 */
#include "streamtest.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SRV 1
#define CLI 2
#define PATLEN (16u << 20) /* what senders send from, over and over (a multiple of any chunk) */

static size_t chunk; /* ML_BENCH_CHUNK, or the default stream_chunk_max */
static uint8_t *pattern;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void wake(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* ---- the server ---- */

struct server {
	struct st_side side[64];
	int n;
	uint64_t total, cancel_at;
	const char *cancel_reason;
};
static struct server sv;

static void srv_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg, (void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void srv_stream(void *arg, ml_peer *from, ml_request *req, int dir, const struct ml_msg *msg)
{
	(void)arg, (void)from, (void)msg;
	pthread_mutex_lock(&mu);
	CHECK(sv.n < 64, "too many streams");
	struct st_side *x = &sv.side[sv.n];
	st_side_init(x, "server", dir == ML_STREAM_IN, sv.total, 2000 + (uint64_t)sv.n, chunk);
	x->pat = pattern;
	x->patlen = PATLEN;
	x->changed = wake;
	x->cancel_at = sv.cancel_at;
	x->cancel_reason = sv.cancel_reason;
	x->opened = 1;
	sv.n++;
	pthread_mutex_unlock(&mu); /* (its callbacks take mu) */
	CHECK(ml_stream_accept(req, NULL, 0, 0, &st_cbs, x, &x->s) == ML_OK, "accept");
	st_pump(x);
	wake(NULL);
}

/* ---- request round trips from this thread ---- */

struct rt {
	int done, status;
};

static void rt_done(void *arg, int status, const struct ml_msg *resp)
{
	struct rt *r = arg;
	(void)resp;
	pthread_mutex_lock(&mu);
	r->done = 1;
	r->status = status;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int rt_ok(void *arg)
{
	return ((struct rt *)arg)->done;
}

static double round_trip(ml_peer *peer)
{
	static uint8_t payload[64];
	struct rt r = { 0 };
	struct ml_buf b = ml_buf_plain(payload, sizeof(payload));
	double t0 = st_now();
	CHECK(ml_request_send(peer, 1, &b, 1, 0, rt_done, &r) == ML_OK, "request");
	pthread_mutex_lock(&mu);
	CHECK(check_wait(&mu, &cv, rt_ok, &r, 30), "a request's answer");
	pthread_mutex_unlock(&mu);
	CHECK(r.status == ML_OK, "request: %s", ml_strerror(r.status));
	return st_now() - t0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct lat {
	double *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, double x)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 4096;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		CHECK(l->v, "memory");
	}
	l->v[l->n++] = x;
}

static double pct(struct lat *l, double p)
{
	qsort(l->v, l->n, sizeof(*l->v), cmp_d);
	return l->v[(size_t)((double)(l->n - 1) * p)];
}

static int both_ended(void *arg)
{
	struct st_side **x = arg;
	return x[0]->ended && x[1]->ended;
}

static double env_d(const char *name, double dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtod(v, NULL) : dflt;
}

/* Moves the calling thread into the network namespace at path (NULL: stays). */
static void enter_netns(const char *path)
{
	if (!path)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && setns(fd, CLONE_NEWNET) == 0, "enter the namespace %s: %s", path, strerror(errno));
	close(fd);
}

/* The defaults, or what the environment says. */
static void stream_settings(struct ml_config *c)
{
	c->stream_window = (uint32_t)env_d("ML_BENCH_WINDOW", c->stream_window);
	c->stream_path_max = (uint64_t)env_d("ML_BENCH_PATH_MAX", (double)c->stream_path_max);
	c->stream_chunk_max = (uint32_t)chunk;
	c->max_frag_payload = (uint32_t)env_d("ML_BENCH_FRAG", c->max_frag_payload);
	c->log_level = ML_LOG_ERR; /* (the paths closing at the end are no news) */
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	double seconds = env_d("ML_BENCH_SECONDS", 3);
	uint64_t total = (uint64_t)env_d("ML_BENCH_STREAM_BYTES", 1 << 30);
	int cancels = (int)env_d("ML_BENCH_CANCELS", 20);
	unsigned seed = (unsigned)env_d("ML_TEST_SEED", (double)time(NULL));
	struct ml_config c;
	ml_config_init(&c);
	chunk = (size_t)env_d("ML_BENCH_CHUNK", c.stream_chunk_max);
	CHECK(chunk >= 4096 && chunk % 8 == 0 && PATLEN % chunk == 0, "ML_BENCH_CHUNK: 4 KiB.., dividing 16 MiB");
	pattern = malloc(PATLEN);
	CHECK(pattern, "memory");
	st_fill(pattern, 0, PATLEN, 42);
	ml_ctx *srv, *cli;
	ml_peer *peer;

	/* Each context's worker (and so its sockets) is made in the namespace
	 * the main thread is in at ml_ctx_create. */
	const char *addr[2] = { getenv("ML_BENCH_ADDR0"), getenv("ML_BENCH_ADDR1") };
	addr[0] = addr[0] ? addr[0] : "127.0.0.1";
	addr[1] = addr[1] ? addr[1] : "127.0.0.2";
	enter_netns(getenv("ML_BENCH_NETNS_SRV"));
	ml_config_init(&c);
	stream_settings(&c);
	c.node_id = SRV;
	c.on_request = srv_request;
	c.on_stream = srv_stream;
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server");
	char u[2][96];
	for (int i = 0; i < 2; i++) {
		snprintf(u[i], sizeof(u[i]), "tcp://%s:0", addr[i]);
		CHECK(ml_listen(srv, u[i]) == ML_OK, "listen on %s", u[i]);
	}
	enter_netns(getenv("ML_BENCH_NETNS_CLI"));
	ml_config_init(&c);
	stream_settings(&c);
	c.node_id = CLI;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client");
	check_listening(srv, 2, 10);
	for (int i = 0; i < 2; i++)
		snprintf(u[i], sizeof(u[i]), "tcp://%s:%u", addr[i], ml_listen_port(srv, (unsigned)i));
	const char *urls[] = { u[0], u[1] };
	CHECK(ml_peer_add(cli, SRV, urls, 2, &peer) == ML_OK, "peer");
	printf("bench_streams: 2 paths (%s, %s), streams of %llu MiB each way, chunks of %zu KiB, "
	       "window %u chunks, stream_path_max %llu KiB, fragments of %u KiB, ML_TEST_SEED=%u\n",
	       addr[0], addr[1], (unsigned long long)(total >> 20), chunk / 1024, c.stream_window,
	       (unsigned long long)c.stream_path_max / 1024, c.max_frag_payload / 1024, seed);

	/* 1. requests alone (after a warm-up) */
	for (int i = 0; i < 200; i++)
		round_trip(peer);
	struct lat alone = { 0 }, busy = { 0 };
	double t0 = st_now();
	while (st_now() - t0 < seconds)
		lat_add(&alone, round_trip(peer));

	/* 2. requests while a stream goes each way */
	struct st_side out, in;
	sv.total = total;
	st_side_init(&out, "client out", 1, total, 1, chunk);
	st_side_init(&in, "client in", 0, total, 0, chunk);
	out.pat = pattern;
	out.patlen = PATLEN;
	out.changed = in.changed = wake;
	t0 = st_now();
	CHECK(ml_stream_open(peer, 1, ML_STREAM_OUT, NULL, 0, 0, &st_cbs, &out, &out.s) == ML_OK, "open");
	CHECK(ml_stream_open(peer, 2, ML_STREAM_IN, NULL, 0, 0, &st_cbs, &in, &in.s) == ML_OK, "open");
	struct st_side *w[2] = { &out, &in };
	for (;;) {
		pthread_mutex_lock(&mu);
		int done = both_ended(w);
		pthread_mutex_unlock(&mu);
		if (done)
			break;
		lat_add(&busy, round_trip(peer));
	}
	double t_out = out.end_at - t0, t_in = in.end_at - t0;
	pthread_mutex_lock(&mu);
	CHECK(sv.n == 2, "server saw %d streams", sv.n);
	struct st_side *srv_in = sv.side[0].sending ? &sv.side[1] : &sv.side[0];
	struct st_side *srv_out = sv.side[0].sending ? &sv.side[0] : &sv.side[1];
	struct st_side *w2[2] = { srv_in, srv_out };
	CHECK(check_wait(&mu, &cv, both_ended, w2, 60), "the server's ends");
	pthread_mutex_unlock(&mu);
	uint64_t want = st_pattern_hash(pattern, PATLEN, chunk, total);
	CHECK(out.status == ML_OK && in.status == ML_OK && srv_in->status == ML_OK && srv_out->status == ML_OK,
	      "statuses %s %s %s %s", ml_status_name(out.status), ml_status_name(in.status),
	      ml_status_name(srv_in->status), ml_status_name(srv_out->status));
	CHECK(srv_in->hash == want && in.hash == want &&
	      in.out_of_order == 0 && srv_in->out_of_order == 0 && in.off == total && srv_in->off == total,
	      "content or counts differ");
	struct ml_path_stats ps[2];
	unsigned np = 2;
	struct ml_peer_stats st;
	ml_peer_stats_get(peer, &st, ps, &np);
	double a50 = pct(&alone, 0.5), a99 = pct(&alone, 0.99), b50 = pct(&busy, 0.5), b99 = pct(&busy, 0.99);
	printf("streams: out %.2f s (%.0f MB/s), in %.2f s (%.0f MB/s), content identical, lost 0, "
	       "duplicated 0\n", t_out, total / t_out / 1e6, t_in, total / t_in / 1e6);
	printf("request round trip, 64 B, one at a time: alone p50 %.0f us p99 %.0f us (%zu); with "
	       "both streams p50 %.0f us p99 %.0f us (%zu); ratio p50 %.2fx p99 %.2fx\n",
	       a50 * 1e6, a99 * 1e6, alone.n, b50 * 1e6, b99 * 1e6, busy.n, b50 / a50, b99 / a99);
	printf("paths: %s %.0f MB sent, %s %.0f MB sent\n", ps[0].url, ps[0].bytes_sent / 1e6, ps[1].url,
	       ps[1].bytes_sent / 1e6);
	double rate = total / (t_out > t_in ? t_out : t_in);

	/* 3. cancels at random points from a random end */
	static const char why[] = "bench cancel";
	struct lat lag = { 0 };
	double worst_bound = 0;
	for (int i = 0; i < cancels; i++) {
		int opener = rand_r(&seed) & 1, dir = 1 + (rand_r(&seed) & 1);
		uint64_t at = 1 + (uint64_t)(rand_r(&seed) % 200);
		struct st_side me;
		st_side_init(&me, "client", dir == ML_STREAM_OUT, 1ull << 40, 3, chunk);
		me.pat = pattern;
		me.patlen = PATLEN;
		me.changed = wake;
		pthread_mutex_lock(&mu);
		int k = sv.n;
		sv.total = 1ull << 40; /* endless: only the cancel ends it */
		sv.cancel_at = opener ? 0 : at;
		sv.cancel_reason = why;
		if (opener) {
			me.cancel_at = at;
			me.cancel_reason = why;
		}
		pthread_mutex_unlock(&mu);
		CHECK(ml_stream_open(peer, 3, dir, NULL, 0, 0, &st_cbs, &me, &me.s) == ML_OK, "open");
		pthread_mutex_lock(&mu);
		while (sv.n == k || !me.ended || !sv.side[k].ended)
			pthread_cond_wait(&cv, &mu);
		struct st_side *cn = opener ? &me : &sv.side[k], *other = opener ? &sv.side[k] : &me;
		CHECK(cn->status == ML_ECANCELED && other->status == ML_EABORTED && !strcmp(other->reason, why),
		      "cancel %d: canceller %s, other %s (%s)", i, ml_status_name(cn->status),
		      ml_status_name(other->status), other->reason);
		lat_add(&lag, other->end_at - cn->cancel_t);
		pthread_mutex_unlock(&mu);
		ml_peer_stats_get(peer, &st, ps, &np);
		double rtt = fmax(ps[0].rtt_us, ps[1].rtt_us) / 1e6;
		double bound = rtt + chunk / rate;
		if (bound > worst_bound)
			worst_bound = bound;
		st_side_free(&me);
	}
	if (cancels) {
		double l50 = pct(&lag, 0.5), lmax = lag.v[lag.n - 1];
		printf("cancel to the other end's on_end (%d cancels, random end, random chunk): p50 %.2f ms, "
		       "max %.2f ms; RTT + one chunk at %.0f MB/s: %.2f ms\n", cancels, l50 * 1e3,
		       lmax * 1e3, rate / 1e6, worst_bound * 1e3);
	}
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	st_side_free(&out);
	st_side_free(&in);
	for (int i = 0; i < sv.n; i++)
		st_side_free(&sv.side[i]);
	free(pattern);
	free(alone.v);
	free(busy.v);
	free(lag.v);
	return 0;
}
