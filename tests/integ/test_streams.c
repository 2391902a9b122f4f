/*
 * test_streams.c - bulk streams (doc/streams.md) through the public API, over
 * two TCP paths on loopback, both contexts embedded on one libev loop (the
 * blocking wrapper's scenario runs in worker mode):
 *
 *   1. both ways at once while requests flow: a stream out and a stream in
 *      of ML_TEST_STREAM_BYTES (64 MiB) each; content by hash, every
 *      chunk once and in order, every request answered. (The 1 GiB run and
 *      the request latency figure are the benchmark's: make bench-streams.)
 *   2. path 0 reset, then blackholed (1 s), mid-stream: nothing lost, nothing twice.
 *   3. cancel from each of the four ends (opener or acceptor, sender or
 *      receiver) at random chunks: the canceller ends ML_ECANCELED, the other
 *      ML_EABORTED with the canceller's reason, a cancelling receiver gets
 *      no chunk after its cancel, and the stream's chunks stop.
 *   4. an error at the last moment: the receiver refuses the end; the sender
 *      gets ML_EABORTED and the reason.
 *   5. refusals: by the handler (reason), by the peer's stream limit
 *      (ML_ELIMIT), by our own (at once), with no on_stream.
 *   6. the session ends: declared down (ML_EPEERDOWN here, the peer's stream
 *      ML_EPEERRESTART when it sees the new session), context destroyed
 *      (ML_ECANCELED before ml_ctx_destroy returns).
 *   7. blocking: ml_stream_write and ml_stream_wait from an application thread.
 *   8. compressed chunks (ML_SEND_LZ4): the receiver sees the original bytes.
 *   9. a peer that breaks the stream protocol (a raw client sends a chunk
 *      beyond its credit): the stream ends ML_EPROTO, the peer is told with a
 *      CANCEL record, and the path stays up.
 *
 * ML_TEST_SEED fixes the random cancel points (printed otherwise).
 */
#include "streamtest.h"
#include "raw.h"

#include <ev.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define WAIT_S 60.0
/* Chunks of four fragments (of the default 64 KiB), and a path's share of
 * chunks (stream_path_max) of one fragment: a path is full after one, and the
 * rest of a begun chunk must follow anyway (room comes back only when the
 * whole chunk is acknowledged). */
#define CHUNK (256 * 1024)
#define PATH_SHARE (64 * 1024)

static const char *step = "";
static unsigned seed;

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l, (void)t, (void)revents;
}

/* Turn the loop until cond holds (the library's watchers are unref'd in
 * embedded mode; a tick keeps ev_run from returning at once). */
#define RUN_UNTIL(l, cond)                                                          \
	do {                                                                        \
		ev_timer tick_;                                                     \
		ev_timer_init(&tick_, on_tick, 0.01, 0.01);                         \
		ev_timer_start(l, &tick_);                                          \
		double deadline_ = ev_time() + WAIT_S;                              \
		while (!(cond)) {                                                   \
			CHECK(ev_time() < deadline_, "timed out waiting for: %s", step); \
			ev_run(l, EVRUN_ONCE);                                      \
		}                                                                   \
		ev_timer_stop(l, &tick_);                                           \
	} while (0)

/* ---- the server: what it does with a stream open depends on the scenario ---- */

enum srv_mode { SRV_ACCEPT, SRV_REFUSE };

struct server {
	enum srv_mode mode;
	struct st_side side[8];
	int nstreams;
	uint64_t total;
	uint64_t requests;
	const char *finish_refusal;
	uint64_t cancel_at;       /* the server's side cancels at this chunk */
	const char *cancel_reason;
};

static void srv_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct server *sv = arg;
	(void)from;
	sv->requests++;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	CHECK(ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL) == ML_OK, "respond");
}

static void srv_stream(void *arg, ml_peer *from, ml_request *req, int dir, const struct ml_msg *msg)
{
	struct server *sv = arg;
	(void)from;
	if (sv->mode == SRV_REFUSE) {
		CHECK(ml_request_abort(req, "no such volume", NULL, NULL) == ML_OK, "abort");
		return;
	}
	CHECK(sv->nstreams < 8, "too many streams");
	CHECK(msg->len == 4 && !memcmp(msg->data, "vol0", 4) && msg->tag == 77,
	      "open payload %zu bytes, tag %llu", msg->len, (unsigned long long)msg->tag);
	struct st_side *x = &sv->side[sv->nstreams++];
	/* The opener's "in" is our "out". */
	st_side_init(x, "server", dir == ML_STREAM_IN, sv->total, 1000 + (uint64_t)sv->nstreams, CHUNK);
	x->finish_refusal = sv->finish_refusal;
	x->cancel_at = sv->cancel_at;
	x->cancel_reason = sv->cancel_reason;
	struct ml_buf b = ml_buf_plain("ok", 2);
	int rc = ml_stream_accept(req, &b, 1, ML_SEND_COPY, &st_cbs, x, &x->s);
	CHECK(rc == ML_OK, "accept: %s", ml_strerror(rc));
	x->opened = 1;
	st_pump(x);
}

/* ---- the pair of contexts ---- */

struct pair {
	struct ev_loop *loop;
	struct server sv;
	ml_ctx *srv, *cli;
	ml_peer *peer, *srv_peer;
	/* request traffic next to the streams */
	int requests_on;
	uint64_t req_sent, req_ok, req_bad;
};

static void log_quiet(void *arg, int level, const char *text)
{
	(void)arg;
	if (level <= ML_LOG_ERR)
		fprintf(stderr, "msglayer: %s\n", text);
}

static void test_config(struct ml_config *c)
{
	ml_config_init(c);
	c->stream_chunk_max = CHUNK;
	c->stream_path_max = PATH_SHARE;
	c->log = log_quiet;
}

static void pair_open(struct pair *p, uint32_t srv_max_streams, uint32_t cli_max_streams)
{
	struct ml_config c;
	memset(p, 0, sizeof(*p));
	p->loop = ev_loop_new(0);
	test_config(&c);
	c.node_id = SRV;
	c.loop = p->loop;
	c.on_request = srv_request;
	c.on_stream = srv_stream;
	c.cb_arg = &p->sv;
	c.max_streams = srv_max_streams;
	CHECK(ml_ctx_create(&c, &p->srv) == ML_OK, "server context");
	char url[2][64];
	for (int i = 0; i < 2; i++) {
		snprintf(url[i], sizeof(url[i]), "tcp://127.0.0.%d:0", i + 1);
		CHECK(ml_listen(p->srv, url[i]) == ML_OK, "listen %s", url[i]);
	}
	test_config(&c);
	c.node_id = CLI;
	c.loop = p->loop;
	c.max_streams = cli_max_streams;
	CHECK(ml_ctx_create(&c, &p->cli) == ML_OK, "client context");
	ev_run(p->loop, EVRUN_NOWAIT); /* the listeners bind on the loop */
	for (int i = 0; i < 2; i++)
		snprintf(url[i], sizeof(url[i]), "tcp://127.0.0.%d:%u", i + 1, ml_listen_port(p->srv, (unsigned)i));
	const char *urls[] = { url[0], url[1] };
	CHECK(ml_peer_add(p->cli, SRV, urls, 2, &p->peer) == ML_OK, "peer add");
}

static void pair_close(struct pair *p)
{
	ml_ctx_destroy(p->cli);
	ml_ctx_destroy(p->srv);
	ev_loop_destroy(p->loop);
	for (int i = 0; i < p->sv.nstreams; i++)
		st_side_free(&p->sv.side[i]);
}

static void req_done(void *arg, int status, const struct ml_msg *resp);

static void req_send(struct pair *p)
{
	uint64_t v = p->req_sent++;
	struct ml_buf b = ml_buf_plain(&v, sizeof(v));
	CHECK(ml_request_send(p->peer, v, &b, 1, ML_SEND_COPY, req_done, p) == ML_OK, "request");
}

static void req_done(void *arg, int status, const struct ml_msg *resp)
{
	struct pair *p = arg;
	uint64_t v;
	if (status == ML_OK && resp->len == sizeof(v) && (memcpy(&v, resp->data, sizeof(v)), v == resp->tag))
		p->req_ok++;
	else
		p->req_bad++;
	if (p->requests_on)
		req_send(p);
}

static void open_stream(struct pair *p, struct st_side *x, int dir)
{
	struct ml_buf b = ml_buf_plain("vol0", 4);
	int rc = ml_stream_open(p->peer, 77, dir, &b, 1, ML_SEND_COPY, &st_cbs, x, &x->s);
	CHECK(rc == ML_OK, "open: %s", ml_strerror(rc));
}

static void check_clean(struct st_side *snd, struct st_side *rcv, uint64_t total)
{
	uint64_t want = st_expected_hash(total, snd->seed);
	CHECK(snd->status == ML_OK && rcv->status == ML_OK, "%s: sender %s (%s), receiver %s (%s)", step,
	      ml_status_name(snd->status), snd->reason, ml_status_name(rcv->status), rcv->reason);
	CHECK(snd->hash == want && rcv->hash == want,
	      "%s: content differs from what was sent", step);
	uint64_t nchunks = (total + CHUNK - 1) / CHUNK;
	CHECK(snd->chunks == nchunks && rcv->chunks == nchunks && rcv->off == total,
	      "%s: %llu chunks sent, %llu received (want %llu), %llu bytes", step,
	      (unsigned long long)snd->chunks, (unsigned long long)rcv->chunks,
	      (unsigned long long)nchunks, (unsigned long long)rcv->off);
	CHECK(rcv->out_of_order == 0 && snd->send_failed == 0, "%s: %llu out of order, %llu failed sends",
	      step, (unsigned long long)rcv->out_of_order, (unsigned long long)snd->send_failed);
}

static uint64_t env_bytes(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* ---- 1 and 2: clean streams ---- */

/* fault 0: both ways at once; else one stream out, and path 0 gets the fault
 * (ML_FAULT_RESET: said at once; ML_FAULT_BLACKHOLE for 1 s: found by the
 * heartbeats) when half of it is sent. */
static void test_both_ways(uint64_t total, int fault)
{
	struct pair p;
	struct st_side out, in;
	pair_open(&p, 0, 0);
	p.sv.total = total;
	st_side_init(&out, "client out", 1, total, 1, CHUNK);
	st_side_init(&in, "client in", 0, total, 0, CHUNK);
	p.requests_on = 1;
	for (int i = 0; i < 4; i++)
		req_send(&p);
	double t0 = st_now();
	open_stream(&p, &out, ML_STREAM_OUT);
	int kill_path = fault != 0;
	if (!kill_path)
		open_stream(&p, &in, ML_STREAM_IN);
	struct ml_peer_stats st;
	if (kill_path) {
		step = "path fault: half the stream";
		RUN_UNTIL(p.loop, out.off >= total / 2 || out.ended);
		struct ml_fault_spec f = { .fault = fault, .duration_s = fault == ML_FAULT_BLACKHOLE ? 1.0 : 0 };
		CHECK(ml_fault_set(p.peer, 0, &f) == ML_OK, "fault on path 0");
		step = "path fault: the stream ends";
		RUN_UNTIL(p.loop, out.ended && p.sv.side[0].ended);
		check_clean(&out, &p.sv.side[0], total);
	} else {
		step = "both ways: the streams end";
		RUN_UNTIL(p.loop, out.ended && in.ended);
		CHECK(p.sv.nstreams == 2, "server saw %d streams; client out %s (%s), in %s (%s)", p.sv.nstreams,
		      ml_status_name(out.status), out.reason, ml_status_name(in.status), in.reason);
		struct st_side *srv_out = p.sv.side[0].sending ? &p.sv.side[0] : &p.sv.side[1];
		struct st_side *srv_in = p.sv.side[0].sending ? &p.sv.side[1] : &p.sv.side[0];
		RUN_UNTIL(p.loop, srv_out->ended && srv_in->ended);
		check_clean(&out, srv_in, total);
		check_clean(srv_out, &in, total);
	}
	double took = st_now() - t0;
	p.requests_on = 0;
	ml_peer_stats_get(p.peer, &st, NULL, NULL);
	uint64_t resent = st.frames_resent;
	step = "requests: the last ones are answered";
	RUN_UNTIL(p.loop, p.req_ok + p.req_bad == p.req_sent);
	CHECK(p.req_bad == 0 && p.req_ok == p.req_sent && p.sv.requests == p.req_sent,
	      "requests: %llu sent, %llu answered, %llu bad, %llu served", (unsigned long long)p.req_sent,
	      (unsigned long long)p.req_ok, (unsigned long long)p.req_bad, (unsigned long long)p.sv.requests);
	ml_peer_stats_get(p.peer, &st, NULL, NULL);
	unsigned nstreams = kill_path ? 1 : 2;
	CHECK(st.streams_done == nstreams && st.streams_failed == 0 && st.streams_open == 0 &&
	      st.stream_bytes_sent == total && st.stream_bytes_recv == (kill_path ? 0 : total),
	      "client stats: %llu done, %llu failed, %llu open, %llu bytes sent, %llu received",
	      (unsigned long long)st.streams_done, (unsigned long long)st.streams_failed,
	      (unsigned long long)st.streams_open, (unsigned long long)st.stream_bytes_sent,
	      (unsigned long long)st.stream_bytes_recv);
	if (kill_path)
		printf("  path %s mid-stream: %llu MiB in %.2f s, %llu frames resent, content identical, "
		       "lost 0, duplicated 0, %llu requests answered\n", ml_fault_name(fault),
		       (unsigned long long)(total >> 20), took, (unsigned long long)resent,
		       (unsigned long long)p.req_ok);
	else
		printf("  both ways: 2 x %llu MiB in %.2f s over 2 paths, content identical, lost 0, "
		       "duplicated 0, %llu requests answered meanwhile\n",
		       (unsigned long long)(total >> 20), took, (unsigned long long)p.req_ok);
	st_side_free(&out);
	st_side_free(&in);
	pair_close(&p);
}

/* ---- 3 and 4: cancels and the refused end ---- */

static void test_cancel_one(int opener_cancels, int dir, uint64_t at, double *worst)
{
	static const char why[] = "operator stopped the migration";
	struct pair p;
	struct st_side me;
	uint64_t total = 64ull * CHUNK;
	pair_open(&p, 0, 0);
	p.sv.total = total;
	st_side_init(&me, "client", dir == ML_STREAM_OUT, total, 1, CHUNK);
	if (opener_cancels) {
		me.cancel_at = at;
		me.cancel_reason = why;
	} else {
		p.sv.cancel_at = at;
		p.sv.cancel_reason = why;
	}
	open_stream(&p, &me, dir);
	step = "cancel: both ends";
	RUN_UNTIL(p.loop, me.ended && p.sv.nstreams == 1 && p.sv.side[0].ended);
	struct st_side *canceller = opener_cancels ? &me : &p.sv.side[0];
	struct st_side *other = opener_cancels ? &p.sv.side[0] : &me;
	struct st_side *rcv = me.sending ? &p.sv.side[0] : &me;
	CHECK(canceller->status == ML_ECANCELED && !strcmp(canceller->reason, why),
	      "canceller ended %s (%s)", ml_status_name(canceller->status), canceller->reason);
	CHECK(other->status == ML_EABORTED && !strcmp(other->reason, why),
	      "the other end ended %s (%s), want ML_EABORTED with the reason", ml_status_name(other->status),
	      other->reason);
	CHECK(canceller->cancel_t > 0, "the cancel was never made");
	if (canceller == rcv)
		CHECK(rcv->chunks_after_cancel == 0, "%llu chunks after the receiver canceled",
		      (unsigned long long)rcv->chunks_after_cancel);
	CHECK(rcv->chunks <= total / CHUNK && rcv->out_of_order == 0, "receiver: %llu chunks, %llu out of order",
	      (unsigned long long)rcv->chunks, (unsigned long long)rcv->out_of_order);
	double lag = other->end_at - canceller->cancel_t;
	if (lag > *worst)
		*worst = lag;
	struct ml_peer_stats st;
	ml_peer_stats_get(p.peer, &st, NULL, NULL);
	CHECK(st.streams_failed == 1 && st.streams_open == 0, "client stats: %llu failed, %llu open",
	      (unsigned long long)st.streams_failed, (unsigned long long)st.streams_open);
	st_side_free(&me);
	pair_close(&p);
}

static void test_cancels(void)
{
	double worst = 0;
	int runs = 0;
	for (int opener = 0; opener < 2; opener++)
		for (int dir = ML_STREAM_OUT; dir <= ML_STREAM_IN; dir++)
			for (int k = 0; k < 3; k++, runs++)
				test_cancel_one(opener, dir, 1 + (uint64_t)(rand_r(&seed) % 60), &worst);
	printf("  cancel: %d streams canceled at random chunks from each of the 4 ends: canceller "
	       "ML_ECANCELED, other end ML_EABORTED with the reason; slowest other end %.1f ms after "
	       "the cancel\n", runs, worst * 1e3);
}

static void test_refused_end(void)
{
	struct pair p;
	struct st_side me;
	uint64_t total = 8ull * CHUNK;
	pair_open(&p, 0, 0);
	p.sv.total = total;
	p.sv.finish_refusal = "disk full writing the last chunk";
	st_side_init(&me, "client", 1, total, 1, CHUNK);
	open_stream(&p, &me, ML_STREAM_OUT);
	step = "refused end";
	RUN_UNTIL(p.loop, me.ended && p.sv.nstreams == 1 && p.sv.side[0].ended);
	CHECK(me.status == ML_EABORTED && !strcmp(me.reason, "disk full writing the last chunk"),
	      "sender ended %s (%s)", ml_status_name(me.status), me.reason);
	CHECK(p.sv.side[0].status == ML_ECANCELED && p.sv.side[0].chunks == 8,
	      "receiver ended %s after %llu chunks", ml_status_name(p.sv.side[0].status),
	      (unsigned long long)p.sv.side[0].chunks);
	st_side_free(&me);
	pair_close(&p);
	printf("  error at the last moment: the sender gets ML_EABORTED \"disk full writing the last "
	       "chunk\" after all 8 chunks\n");
}

/* ---- 5: refusals ---- */

static void test_refusals(void)
{
	struct pair p;
	struct st_side a, b, c;

	pair_open(&p, 0, 0);
	p.sv.mode = SRV_REFUSE;
	st_side_init(&a, "client", 1, CHUNK, 1, CHUNK);
	open_stream(&p, &a, ML_STREAM_OUT);
	step = "refused by the handler";
	RUN_UNTIL(p.loop, a.ended);
	CHECK(a.status == ML_EABORTED && !strcmp(a.reason, "no such volume") && !a.opened,
	      "%s (%s)", ml_status_name(a.status), a.reason);
	st_side_free(&a);
	pair_close(&p);

	/* The server takes 2 streams at a time; they stay open (nothing is sent). */
	pair_open(&p, 2, 0);
	/* a and b do not send: they stay open. */
	st_side_init(&a, "a", 0, 0, 0, CHUNK);
	st_side_init(&b, "b", 0, 0, 0, CHUNK);
	st_side_init(&c, "c", 1, CHUNK, 0, CHUNK);
	open_stream(&p, &a, ML_STREAM_OUT);
	open_stream(&p, &b, ML_STREAM_OUT);
	step = "limit: two open";
	RUN_UNTIL(p.loop, a.opened && b.opened);
	open_stream(&p, &c, ML_STREAM_OUT);
	step = "limit: the third refused";
	RUN_UNTIL(p.loop, c.ended);
	CHECK(c.status == ML_ELIMIT && strstr(c.reason, "limit of 2 open streams"), "%s (%s)",
	      ml_status_name(c.status), c.reason);
	struct ml_peer_stats st;
	ml_peer_stats_get(p.peer, &st, NULL, NULL);
	CHECK(st.streams_refused == 1 && st.streams_open == 2, "client: %llu refused, %llu open",
	      (unsigned long long)st.streams_refused, (unsigned long long)st.streams_open);
	printf("  limit at the acceptor: the third stream ends ML_ELIMIT \"%s\"\n", c.reason);
	pair_close(&p); /* a and b end here (ML_ECANCELED): their sides must still be there */
	CHECK(a.status == ML_ECANCELED && b.status == ML_ECANCELED, "a %s, b %s", ml_status_name(a.status),
	      ml_status_name(b.status));
	st_side_free(&a);
	st_side_free(&b);
	st_side_free(&c);

	/* Our own limit: refused at once. */
	pair_open(&p, 0, 1);
	st_side_init(&a, "a", 1, CHUNK, 0, CHUNK);
	open_stream(&p, &a, ML_STREAM_OUT);
	ml_stream *s2 = NULL;
	int rc = ml_stream_open(p.peer, 1, ML_STREAM_OUT, NULL, 0, 0, NULL, NULL, &s2);
	CHECK(rc == ML_ELIMIT && !s2, "second open with max_streams 1: %s", ml_strerror(rc));
	step = "own limit: the first one ends";
	RUN_UNTIL(p.loop, a.ended);
	CHECK(a.status == ML_OK, "%s", ml_status_name(a.status));
	rc = ml_stream_open(p.peer, 1, ML_STREAM_OUT, NULL, 0, 0, NULL, NULL, &s2);
	CHECK(rc == ML_OK, "an open after the first ended: %s", ml_strerror(rc));
	ml_stream_cancel(s2, "done");
	ml_stream_release(s2);
	st_side_free(&a);
	pair_close(&p);
	printf("  refusals: by the handler (ML_EABORTED with its reason), own limit (ML_ELIMIT at once)\n");
}

/* ---- 6: the session ends ---- */

static void test_session_end(void)
{
	struct pair p;
	struct st_side a;

	pair_open(&p, 0, 0);
	p.sv.total = 1ull << 40; /* endless: only the session's end stops it */
	st_side_init(&a, "client", 0, 0, 0, CHUNK);
	open_stream(&p, &a, ML_STREAM_IN);
	step = "declared down: some chunks first";
	RUN_UNTIL(p.loop, a.chunks >= 4);
	CHECK(ml_peer_declare_down(p.peer, "test") == ML_OK, "declare down");
	step = "declared down: both ends";
	RUN_UNTIL(p.loop, a.ended && p.sv.side[0].ended);
	CHECK(a.status == ML_EPEERDOWN, "opener ended %s", ml_status_name(a.status));
	CHECK(p.sv.side[0].status == ML_EPEERRESTART, "acceptor ended %s", ml_status_name(p.sv.side[0].status));
	st_side_free(&a);
	pair_close(&p);

	pair_open(&p, 0, 0);
	p.sv.total = 1ull << 40;
	st_side_init(&a, "client", 0, 0, 0, CHUNK);
	open_stream(&p, &a, ML_STREAM_IN);
	step = "destroy: some chunks first";
	RUN_UNTIL(p.loop, a.chunks >= 4);
	ml_ctx_destroy(p.cli);
	CHECK(a.ended && a.status == ML_ECANCELED, "after ml_ctx_destroy: ended %d, %s", a.ended,
	      ml_status_name(a.status));
	ml_ctx_destroy(p.srv);
	CHECK(p.sv.side[0].ended && (p.sv.side[0].status == ML_ECANCELED ||
				     p.sv.side[0].status == ML_EPEERRESTART),
	      "server side: ended %d, %s", p.sv.side[0].ended, ml_status_name(p.sv.side[0].status));
	ev_loop_destroy(p.loop);
	st_side_free(&a);
	for (int i = 0; i < p.sv.nstreams; i++)
		st_side_free(&p.sv.side[i]);
	printf("  session end: declared down -> ML_EPEERDOWN here, ML_EPEERRESTART at the peer; "
	       "ml_ctx_destroy -> ML_ECANCELED before it returns\n");
}

/* ---- 7: the blocking wrapper, worker mode ---- */

struct blocking_srv {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct st_side side;
	int accepted;
};

/* The end under the lock the main thread reads it with. */
static void bs_on_end(void *arg, ml_stream *s, int status, const char *reason)
{
	struct blocking_srv *b = (struct blocking_srv *)((char *)arg - offsetof(struct blocking_srv, side));
	pthread_mutex_lock(&b->mu);
	st_on_end(arg, s, status, reason);
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static const struct ml_stream_cbs bs_cbs = {
	.on_chunk = st_on_chunk,
	.on_finish = st_on_finish,
	.on_end = bs_on_end,
};

static void bs_stream(void *arg, ml_peer *from, ml_request *req, int dir, const struct ml_msg *msg)
{
	struct blocking_srv *b = arg;
	(void)from, (void)msg;
	CHECK(dir == ML_STREAM_OUT && !b->accepted, "unexpected open");
	pthread_mutex_lock(&b->mu);
	b->accepted = 1;
	CHECK(ml_stream_accept(req, NULL, 0, 0, &bs_cbs, &b->side, &b->side.s) == ML_OK, "accept");
	pthread_mutex_unlock(&b->mu);
}

static int bs_ended(void *arg)
{
	return ((struct blocking_srv *)arg)->side.ended;
}

static void test_blocking(uint64_t total)
{
	struct blocking_srv b = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct ml_config c;
	ml_ctx *srv, *cli;
	ml_peer *peer;
	st_side_init(&b.side, "server", 0, total, 0, CHUNK);
	test_config(&c);
	c.node_id = SRV;
	c.on_stream = bs_stream;
	c.cb_arg = &b;
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK && ml_listen(srv, "tcp://127.0.0.2:0") == ML_OK,
	      "listen");
	test_config(&c);
	c.node_id = CLI;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client");
	char u0[64], u1[64];
	check_listening(srv, 2, 10);
	snprintf(u0, sizeof(u0), "tcp://127.0.0.1:%u", ml_listen_port(srv, 0));
	snprintf(u1, sizeof(u1), "tcp://127.0.0.2:%u", ml_listen_port(srv, 1));
	const char *urls[] = { u0, u1 };
	CHECK(ml_peer_add(cli, SRV, urls, 2, &peer) == ML_OK, "peer");
	uint8_t *data = malloc(total);
	CHECK(data, "memory");
	st_fill(data, 0, total, 7);
	ml_stream *s;
	CHECK(ml_stream_open(peer, 77, ML_STREAM_OUT, NULL, 0, 0, NULL, NULL, &s) == ML_OK, "open");
	double t0 = st_now();
	int rc = ml_stream_write(s, data, total, 60);
	CHECK(rc == ML_OK, "ml_stream_write: %s", ml_strerror(rc));
	CHECK(ml_stream_write(s, data, 0, 1) == ML_OK, "an empty write");
	CHECK(ml_stream_close(s) == ML_OK, "close");
	char reason[128];
	rc = ml_stream_wait(s, 60, reason, sizeof(reason));
	double took = st_now() - t0;
	CHECK(rc == ML_OK, "ml_stream_wait: %s (%s)", ml_strerror(rc), reason);
	CHECK(ml_stream_write(s, data, 1, 1) == ML_ENOTCONN, "a write after the end");
	pthread_mutex_lock(&b.mu);
	CHECK(check_wait(&b.mu, &b.cv, bs_ended, &b, WAIT_S), "the server's end");
	pthread_mutex_unlock(&b.mu);
	uint64_t want = st_expected_hash(total, 7);
	CHECK(b.side.status == ML_OK && b.side.hash == want && b.side.out_of_order == 0,
	      "server: %s, hash %s", ml_status_name(b.side.status), b.side.hash != want ? "differs" : "same");
	ml_stream_release(s);
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	st_side_free(&b.side);
	free(data);
	printf("  blocking: ml_stream_write of %llu MiB from an application thread in %.2f s, "
	       "ml_stream_wait ML_OK, content identical\n", (unsigned long long)(total >> 20), took);
}

/* ---- 8: chunks compressed on the way ---- */

static void test_compressed(void)
{
	struct pair p;
	struct st_side out;
	static uint8_t pat[1 << 20];
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)("stream of a sparse volume "[i % 26] ^ (i >> 16));
	uint64_t total = 16ull * CHUNK;
	pair_open(&p, 0, 0);
	st_side_init(&out, "client out", 1, total, 1, CHUNK);
	out.pat = pat;
	out.patlen = sizeof(pat);
	out.send_flags = ML_SEND_LZ4;
	open_stream(&p, &out, ML_STREAM_OUT);
	step = "compressed: the stream ends";
	RUN_UNTIL(p.loop, out.ended && p.sv.nstreams == 1 && p.sv.side[0].ended);
	struct st_side *rcv = &p.sv.side[0];
	uint64_t want = st_pattern_hash(pat, sizeof(pat), CHUNK, total);
	struct ml_peer_stats st;
	ml_peer_stats_get(p.peer, &st, NULL, NULL);
	CHECK(out.status == ML_OK && rcv->status == ML_OK && rcv->hash == want && rcv->off == total &&
	      rcv->chunks == 16 && rcv->out_of_order == 0, "compressed: %s / %s, %llu chunks, %s",
	      ml_status_name(out.status), ml_status_name(rcv->status), (unsigned long long)rcv->chunks,
	      rcv->hash == want ? "same content" : "content differs");
	CHECK(st.compressed_msgs == 16 && st.compressed_in == total && st.compressed_out < total / 4 &&
	      st.stream_bytes_sent == total, "compressed %llu messages, %llu -> %llu bytes, %llu sent",
	      (unsigned long long)st.compressed_msgs, (unsigned long long)st.compressed_in,
	      (unsigned long long)st.compressed_out, (unsigned long long)st.stream_bytes_sent);
	printf("  compressed chunks: 16 x 256 KiB with ML_SEND_LZ4, %llu -> %llu bytes on the wire, "
	       "content identical\n", (unsigned long long)st.compressed_in,
	       (unsigned long long)st.compressed_out);
	st_side_free(&out);
	pair_close(&p);
}

/* ---- 9: a chunk beyond credit, from a raw client ---- */

struct proto_srv {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ml_stream *s;
	int ended, status;
	char reason[128];
};

static void ps_end(void *arg, ml_stream *s, int status, const char *reason)
{
	struct proto_srv *ps = arg;
	(void)s;
	pthread_mutex_lock(&ps->mu);
	ps->ended = 1;
	ps->status = status;
	snprintf(ps->reason, sizeof(ps->reason), "%s", reason);
	pthread_cond_broadcast(&ps->cv);
	pthread_mutex_unlock(&ps->mu);
}

static void ps_stream(void *arg, ml_peer *from, ml_request *req, int dir, const struct ml_msg *msg)
{
	struct proto_srv *ps = arg;
	static const struct ml_stream_cbs cbs = { .on_end = ps_end };
	(void)from, (void)msg;
	CHECK(dir == ML_STREAM_OUT, "direction %d", dir);
	CHECK(ml_stream_accept(req, NULL, 0, 0, &cbs, ps, &ps->s) == ML_OK, "accept");
}

static int ps_ended(void *arg)
{
	return ((struct proto_srv *)arg)->ended;
}

/* The next DATA frame with the STREAM flag (PINGs, ACKs and the rest pass by). */
static struct ml_frame_hdr raw_next_stream(int fd, uint8_t *payload, size_t cap)
{
	for (;;) {
		struct ml_frame_hdr h;
		raw_recv_frame(fd, payload, cap, &h);
		if (h.type == ML_FT_DATA && (h.flags & ML_FLAG_STREAM))
			return h;
	}
}

static void test_protocol_violation(void)
{
	struct proto_srv ps = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct ml_config c;
	ml_ctx *srv;
	test_config(&c);
	c.node_id = SRV;
	c.on_stream = ps_stream;
	c.cb_arg = &ps;
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "listen");
	check_listening(srv, 1, 10);
	int fd = raw_connect(ml_listen_port(srv, 0));
	struct ml_hello hello = { .node_id = CLI, .dest_node_id = SRV, .incarnation = 0x5eed,
				  .min_version = 1, .max_version = 1, .max_frag_payload = 65536,
				  .max_msg_size = 1 << 20, .window = 64 };
	uint8_t buf[4096];
	uint64_t session = raw_hello(fd, &hello);

	/* OPEN stream 1, direction 1 (we send), chunks up to 64 KiB. */
	uint8_t rec[24] = { 0 };
	rec[8] = ML_STREAM_OUT;
	ml_put32(rec + 12, 65536);
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = ML_KIND_REQUEST | ML_FLAG_STREAM,
				  .payload_len = sizeof(rec), .msg_len = sizeof(rec), .seq = 1, .tag = 1,
				  .session = session };
	raw_send_frame(fd, &h, rec);
	struct ml_frame_hdr a = raw_next_stream(fd, buf, sizeof(buf));
	CHECK((a.flags & ML_FLAG_KIND_MASK) == ML_KIND_RESPONSE && !(a.flags & ML_FLAG_ABORT) &&
	      a.ref == 1 && a.payload_len >= 16, "the answer to the open: flags %x, ref %llu", a.flags,
	      (unsigned long long)a.ref);
	uint32_t credit = ml_get32(buf + 4);
	CHECK(credit == c.stream_window, "credit %u, want the server's window of %u", credit, c.stream_window);

	/* Chunk credit + 5: beyond what was granted. */
	uint8_t chunk[16] = "out of turn";
	h = (struct ml_frame_hdr){ .type = ML_FT_DATA, .flags = ML_KIND_ONEWAY | ML_FLAG_STREAM,
				   .payload_len = sizeof(chunk), .msg_len = sizeof(chunk), .seq = 2,
				   .tag = 1, .ref = credit + 5, .session = session };
	raw_send_frame(fd, &h, chunk);
	struct ml_frame_hdr k = raw_next_stream(fd, buf, sizeof(buf));
	CHECK((k.flags & ML_FLAG_KIND_MASK) == ML_KIND_ONEWAY && k.ref == 0 && k.tag == (1 | 1ull << 63) &&
	      k.payload_len > 16 && buf[0] == 2 && (int32_t)ml_get32(buf + 4) == ML_EPROTO,
	      "want a CANCEL record with ML_EPROTO: flags %x ref %llu tag %llx type %u", k.flags,
	      (unsigned long long)k.ref, (unsigned long long)k.tag, buf[0]);
	buf[k.payload_len < sizeof(buf) ? k.payload_len : sizeof(buf) - 1] = 0;
	pthread_mutex_lock(&ps.mu);
	CHECK(check_wait(&ps.mu, &ps.cv, ps_ended, &ps, WAIT_S), "the server's end");
	pthread_mutex_unlock(&ps.mu);
	CHECK(ps.status == ML_EPROTO && strstr(ps.reason, "beyond credit"), "server ended %s (%s)",
	      ml_status_name(ps.status), ps.reason);
	struct ml_peer_stats st;
	ml_peer *peer = ml_peer_find(srv, CLI);
	CHECK(peer && ml_peer_stats_get(peer, &st, NULL, NULL) == ML_OK && st.paths_up == 1 &&
	      st.streams_failed == 1 && st.streams_open == 0,
	      "the path must stay up: %u up, %llu failed", st.paths_up, (unsigned long long)st.streams_failed);
	close(fd);
	ml_stream_release(ps.s);
	ml_ctx_destroy(srv);
	printf("  protocol: a chunk beyond credit ends the stream ML_EPROTO (\"%s\"), the peer gets "
	       "a CANCEL record, the path stays up\n", (const char *)buf + 16);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *sv = getenv("ML_TEST_SEED");
	seed = sv ? (unsigned)strtoul(sv, NULL, 0) : (unsigned)time(NULL);
	printf("test_streams: ML_TEST_SEED=%u\n", seed);
	uint64_t total = env_bytes("ML_TEST_STREAM_BYTES", 64ull << 20);
	test_both_ways(total, 0);
	test_both_ways(total, ML_FAULT_RESET);
	test_both_ways(total, ML_FAULT_BLACKHOLE);
	test_cancels();
	test_refused_end();
	test_refusals();
	test_session_end();
	test_blocking(total / 2);
	test_compressed();
	test_protocol_violation();
	printf("test_streams: all scenarios passed\n");
	return 0;
}
