/*
 * ml-perf - measure msglayer: latency, message rate, bandwidth, and what a
 * path failure costs (lost, duplicated, resent, the longest stall).
 *
 *   ml-perf server --listen URL [--listen URL...] [--port-file FILE]
 *   ml-perf client --peer URL[,URL...] --test rr|stream|bw [--json] ...
 *
 * The client runs on its own libev loop in this thread (exact timing, no
 * locks); the server on worker threads until SIGINT or SIGTERM. Every request
 * carries {magic, run id, sequence number, response size}; the server echoes
 * the sequence number and keeps, per client run, a bitmap of the numbers it
 * has seen, so duplicates delivered to the application are counted where they
 * happen and reported back at the end. doc/ml-perf.md has every option.
 */
#include "msglayer.h"
#include "perf_hist.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PERF_MAGIC 0x6d6c7066u /* "mlpf" */
#define TAG_REQUEST 1          /* rr, bw: answer with resp_len bytes */
#define TAG_STATS 2            /* end of a run: how many duplicates did you see? */
#define TAG_MESSAGE 3          /* stream: one-way */
#define MAX_RESP (1u << 20)
#define MAX_PATHS 16
#define MAX_FAULTS 16
#define MAX_RUNS 64

struct perf_hdr {
	uint32_t magic;
	uint32_t resp_len;
	uint64_t run_id;
	uint64_t seq;
};

struct perf_resp {     /* the first bytes of a TAG_REQUEST response */
	uint64_t seq;
};

struct perf_stats_resp {
	uint64_t received; /* distinct requests and messages of the run */
	uint64_t duplicates;
};

static void die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "ml-perf: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(ml-perf --help shows the options)\n");
	exit(2);
}

/* ======================================================================== */
/* server                                                                     */
/* ======================================================================== */

/* What the server saw of one client run: a bitmap of sequence numbers. */
struct run_seen {
	uint64_t run_id;
	uint8_t *bits;
	uint64_t cap_bits;
	uint64_t received, duplicates;
	uint64_t last_use;
};

static struct {
	pthread_mutex_t lock;
	struct run_seen runs[MAX_RUNS];
	uint64_t clock;
	uint8_t zeros[MAX_RESP];
	uint64_t malformed;
	uint64_t answers_failed[32]; /* by -status: answers whose session ended first */
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct run_seen *run_find(uint64_t run_id, int create)
{
	struct run_seen *oldest = &srv.runs[0];
	for (int i = 0; i < MAX_RUNS; i++) {
		if (srv.runs[i].run_id == run_id)
			return &srv.runs[i];
		if (srv.runs[i].last_use < oldest->last_use)
			oldest = &srv.runs[i];
	}
	if (!create)
		return NULL;
	free(oldest->bits); /* forget the least recently used run */
	memset(oldest, 0, sizeof(*oldest));
	oldest->run_id = run_id;
	return oldest;
}

/* Record seq for the run; 1 if it was seen before. */
static int run_mark(uint64_t run_id, uint64_t seq)
{
	int dup = 0;
	pthread_mutex_lock(&srv.lock);
	struct run_seen *r = run_find(run_id, 1);
	r->last_use = ++srv.clock;
	if (seq >= r->cap_bits) {
		uint64_t cap = r->cap_bits ? r->cap_bits : 1 << 16;
		while (cap <= seq)
			cap *= 2;
		uint8_t *b = realloc(r->bits, cap / 8);
		if (!b) {
			pthread_mutex_unlock(&srv.lock);
			return 0; /* cannot track: count as seen once */
		}
		memset(b + r->cap_bits / 8, 0, (cap - r->cap_bits) / 8);
		r->bits = b;
		r->cap_bits = cap;
	}
	uint8_t bit = (uint8_t)(1u << (seq % 8));
	if (r->bits[seq / 8] & bit) {
		r->duplicates++;
		dup = 1;
	} else {
		r->bits[seq / 8] |= bit;
		r->received++;
	}
	pthread_mutex_unlock(&srv.lock);
	return dup;
}

static int parse_hdr(const struct ml_msg *msg, struct perf_hdr *h)
{
	if (msg->len < sizeof(*h))
		return -1;
	memcpy(h, msg->data, sizeof(*h));
	return h->magic == PERF_MAGIC ? 0 : -1;
}

/* An answer that did not reach its requester: its session ended first (the
 * client restarted, timed out, or we are closing). Counted by status. */
static void srv_answered(void *arg, int status)
{
	(void)arg;
	if (status != ML_OK)
		__atomic_add_fetch(&srv.answers_failed[-status < 32 ? -status : 0], 1, __ATOMIC_RELAXED);
}

static void srv_on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct perf_hdr h;
	if (parse_hdr(msg, &h)) { /* not ours: answer empty, never die */
		__atomic_add_fetch(&srv.malformed, 1, __ATOMIC_RELAXED);
		ml_respond(req, NULL, 0, 0, NULL, NULL);
		return;
	}
	if (msg->tag == TAG_STATS) {
		struct perf_stats_resp s = { 0, 0 };
		pthread_mutex_lock(&srv.lock);
		struct run_seen *r = run_find(h.run_id, 0);
		if (r)
			s = (struct perf_stats_resp){ r->received, r->duplicates };
		pthread_mutex_unlock(&srv.lock);
		struct ml_buf b = ml_buf_plain(&s, sizeof(s));
		ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
		return;
	}
	run_mark(h.run_id, h.seq);
	struct perf_resp r = { h.seq };
	uint32_t len = h.resp_len < sizeof(r) ? sizeof(r) : h.resp_len > MAX_RESP ? MAX_RESP : h.resp_len;
	struct iovec iov[2] = { { &r, sizeof(r) }, { srv.zeros, len - sizeof(r) } };
	struct ml_buf b = ml_buf_iov(iov, 2);
	ml_respond(req, &b, 1, ML_SEND_COPY, srv_answered, NULL);
}

static void srv_on_message(void *arg, ml_peer *from, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct perf_hdr h;
	if (parse_hdr(msg, &h))
		__atomic_add_fetch(&srv.malformed, 1, __ATOMIC_RELAXED);
	else
		run_mark(h.run_id, h.seq);
}

static int write_port_file(const char *path, ml_ctx *ctx, unsigned n)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%u\n", ml_listen_port(ctx, i));
	if (fclose(f) || rename(tmp, path))
		return -1;
	return 0;
}

static int protect_option(const char *name)
{
	int m = ml_protect_parse(name);
	if (m < 0)
		die_usage("unknown --protect '%s' (none, mac or encrypt)", name);
	return m;
}

/* --max-inflight: the context's max_inflight_msgs, which is also the
 * receive window it offers (doc/api.md). */
static uint32_t parse_max_inflight(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < 1 || v > (1 << 20))
		die_usage("--max-inflight is 1..1048576, not '%s'", s);
	return (uint32_t)v;
}

/* Each client's paths as this end counted them, frames included: against
 * the clients' own counts (their --json "paths"), a frame that one end
 * wrote and the other never read shows. */
static void print_server_paths(ml_ctx *ctx)
{
	enum { MAX_CLIENTS = 64 };
	ml_peer *peers[MAX_CLIENTS];
	unsigned np = ml_ctx_peers(ctx, peers, MAX_CLIENTS);
	for (unsigned i = 0; i < np && i < MAX_CLIENTS; i++) {
		struct ml_peer_stats st;
		struct ml_path_stats ps[MAX_PATHS];
		unsigned n = MAX_PATHS;
		if (ml_peer_stats_get(peers[i], &st, ps, &n) != ML_OK)
			continue;
		for (unsigned k = 0; k < n && k < MAX_PATHS; k++)
			fprintf(stderr, "ml-perf server: node %u path %u %s: frames sent %" PRIu64
				" received %" PRIu64 ", failures %" PRIu64 "\n", st.node_id, k, ps[k].url,
				ps[k].frames_sent, ps[k].frames_recv, ps[k].failures);
	}
}

static int server_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, 0, 'l' },   { "node", required_argument, 0, 'n' },
		{ "port-file", required_argument, 0, 'p' }, { "workers", required_argument, 0, 'w' },
		{ "admin-socket", required_argument, 0, 'a' }, { "help", no_argument, 0, 'h' },
		{ "key-file", required_argument, 0, 'k' }, { "busy-poll", required_argument, 0, 'b' },
		{ "protect", required_argument, 0, 'P' }, { "max-inflight", required_argument, 0, 'M' },
		{ 0, 0, 0, 0 },
	};
	const char *listen[MAX_PATHS], *port_file = NULL;
	unsigned nlisten = 0;
	struct ml_config cfg;
	ml_config_init(&cfg);
	cfg.node_id = 1;
	int c;
	while ((c = getopt_long(argc, argv, "l:n:p:w:a:k:b:P:M:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (nlisten == MAX_PATHS)
				die_usage("too many --listen (at most 16)%s", "");
			listen[nlisten++] = optarg;
			break;
		case 'n': cfg.node_id = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'p': port_file = optarg; break;
		case 'w': cfg.workers = (unsigned)atoi(optarg); break;
		case 'a': cfg.admin_socket = optarg; break;
		case 'k': cfg.key_file = optarg; break;
		case 'b': cfg.busy_poll_us = (unsigned)atoi(optarg); break;
		case 'P': cfg.protect = protect_option(optarg); break;
		case 'M': cfg.max_inflight_msgs = parse_max_inflight(optarg); break;
		default: die_usage("server: unknown option%s", "");
		}
	}
	if (!nlisten)
		die_usage("server needs at least one --listen URL%s", "");
	cfg.on_request = srv_on_request;
	cfg.on_message = srv_on_message;

	/* Workers inherit this mask: the signals come to sigwait below. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	ml_ctx *ctx;
	int rc = ml_ctx_create(&cfg, &ctx);
	if (rc) {
		fprintf(stderr, "ml-perf server: cannot create the context: %s\n", ml_strerror(rc));
		return 2;
	}
	for (unsigned i = 0; i < nlisten; i++) {
		rc = ml_listen(ctx, listen[i]);
		if (rc) {
			fprintf(stderr, "ml-perf server: cannot listen on %s: %s\n", listen[i],
				ml_strerror(rc));
			ml_ctx_destroy(ctx);
			return 2;
		}
		fprintf(stderr, "ml-perf server: node %u listening on %s (port %u)\n", cfg.node_id,
			listen[i], ml_listen_port(ctx, i));
	}
	if (port_file && write_port_file(port_file, ctx, nlisten)) {
		fprintf(stderr, "ml-perf server: cannot write %s: %s\n", port_file, strerror(errno));
		ml_ctx_destroy(ctx);
		return 2;
	}
	int sig;
	sigwait(&sigs, &sig);
	print_server_paths(ctx);
	ml_ctx_destroy(ctx);
	uint64_t received = 0, dups = 0;
	for (int i = 0; i < MAX_RUNS; i++) {
		received += srv.runs[i].received;
		dups += srv.runs[i].duplicates;
		free(srv.runs[i].bits);
	}
	fprintf(stderr, "ml-perf server: stopped by signal %d; %" PRIu64 " messages, %" PRIu64
		" duplicates, %" PRIu64 " malformed; answers failed:", sig, received, dups, srv.malformed);
	int any = 0;
	for (int i = 0; i < 32; i++)
		if (srv.answers_failed[i]) {
			fprintf(stderr, "%s %s %" PRIu64, any ? "," : "", ml_status_name(-i),
				srv.answers_failed[i]);
			any = 1;
		}
	fprintf(stderr, "%s\n", any ? "" : " none");
	return 0;
}

/* ======================================================================== */
/* client                                                                     */
/* ======================================================================== */

enum test_kind { TEST_RR, TEST_STREAM, TEST_BW };

struct fault_plan {
	double at, value, for_s;
	unsigned path;
	int kind; /* enum ml_fault, or 0: external (only marks the time) */
	ev_timer timer;
};

/* One request or message in flight; its header must live until completion. */
struct slot {
	struct perf_hdr hdr;
	struct iovec iov[2];
	double t_planned; /* latency is measured from here */
	int busy;
	struct slot *next_free;
};

static struct {
	/* options */
	enum test_kind test;
	size_t size, resp_size;
	unsigned window;
	double duration, rate, warmup, drain, interval, session_timeout;
	const char *key_file;
	unsigned busy_poll_us;
	int protect;
	unsigned send_flags; /* --compress */
	int payload_kind;    /* --payload */
	uint32_t max_inflight; /* 0: the library's default */
	int json;
	struct fault_plan faults[MAX_FAULTS];
	unsigned nfaults;
	uint32_t node, server_node;
	const char *urls[MAX_PATHS];
	unsigned nurls;

	/* state */
	struct ev_loop *loop;
	ml_ctx *ctx;
	ml_peer *peer;
	uint64_t run_id;
	uint8_t *payload;
	struct slot *slots, *free_slots;
	unsigned inflight;
	double t0, t_end, t_first_fault, last_completion, longest_gap, t_last_failure;
	uint64_t issued, completed, failed, duplicated, bad_responses, server_dups;
	uint64_t completed_after_last_failure, inflight_at_fault;
	uint64_t errors[32];
	int issuing, blocked, fault_seen;
	int connecting;            /* in wait_connected: a path coming up may end its loop */
	struct hist all, interval_hist;
	uint64_t *buckets; /* completions per 100 ms since t0 */
	unsigned nbuckets;
	uint64_t interval_completed;
	int pace_fd;
	ev_io pace;
	ev_timer tick, stop, drain_timer, room_retry;
} cl;

static void issue_ready(void);

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Pacing wakes on a timerfd: libev's own timers sleep in epoll_wait, whose
 * millisecond resolution would add up to 1 ms of the tool's lateness to every
 * paced request's latency. */
static void pace_at(double t)
{
	struct itimerspec its = { { 0, 0 }, { (time_t)t, (long)((t - (double)(time_t)t) * 1e9) } };
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm it */
	timerfd_settime(cl.pace_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void complete(struct slot *s, int status)
{
	double t = now();
	if (!s->busy) { /* a second completion of one send: the library broke its word */
		cl.duplicated++;
		return;
	}
	s->busy = 0;
	s->next_free = cl.free_slots;
	cl.free_slots = s;
	cl.inflight--;
	if (status != ML_OK) {
		cl.failed++;
		cl.errors[-status < 32 ? -status : 31]++;
		cl.t_last_failure = t;
		cl.completed_after_last_failure = 0;
		if (cl.failed <= 3)
			fprintf(stderr, "ml-perf: request %" PRIu64 " failed: %s\n", s->hdr.seq,
				ml_strerror(status));
	} else {
		cl.completed++;
		cl.completed_after_last_failure++;
		double us = (t - s->t_planned) * 1e6;
		if (t - cl.t0 >= cl.warmup)
			hist_add(&cl.all, us);
		hist_add(&cl.interval_hist, us);
		cl.interval_completed++;
		unsigned b = (unsigned)((t - cl.t0) * 10);
		if (b < cl.nbuckets)
			cl.buckets[b]++;
	}
	if (cl.issuing && cl.completed + cl.failed > 1 && t - cl.last_completion > cl.longest_gap)
		cl.longest_gap = t - cl.last_completion;
	cl.last_completion = t;
	if (cl.issuing)
		issue_ready();
	else if (!cl.inflight)
		ev_break(cl.loop, EVBREAK_ALL);
}

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	struct slot *s = arg;
	if (status == ML_OK) {
		struct perf_resp r;
		if (resp->len < sizeof(r) || (memcpy(&r, resp->data, sizeof(r)), r.seq != s->hdr.seq)) {
			cl.bad_responses++;
			status = ML_EPROTO;
		}
	}
	complete(s, status);
}

static void on_ack(void *arg, int status)
{
	complete(arg, status);
}

enum { PAYLOAD_ZEROS, PAYLOAD_TEXT, PAYLOAD_RANDOM };

/* What the requests carry: zeros (compress to nothing), text-like words
 * (compress as logs and metadata do), or random bytes (do not compress). */
static uint8_t *payload_new(size_t len, int kind)
{
	static const char *const words[] = { "block ", "volume ", "replica ", "write ", "read ",
					     "flush ", "node-", "path ", "0x1f2e ", "\n" };
	uint8_t *p = calloc(1, len ? len : 1);
	unsigned seed = 1;
	for (size_t at = 0; p && kind != PAYLOAD_ZEROS && at < len;) {
		if (kind == PAYLOAD_RANDOM) {
			p[at++] = (uint8_t)rand_r(&seed);
			continue;
		}
		const char *w = words[rand_r(&seed) % 10];
		size_t l = strlen(w) < len - at ? strlen(w) : len - at;
		memcpy(p + at, w, l);
		at += l;
	}
	return p;
}

/* Send one request (or message) planned for time t_planned; 0 or ML_EAGAIN. */
static int issue_one(double t_planned)
{
	struct slot *s = cl.free_slots;
	s->hdr = (struct perf_hdr){ PERF_MAGIC, (uint32_t)cl.resp_size, cl.run_id, cl.issued };
	s->iov[0] = (struct iovec){ &s->hdr, sizeof(s->hdr) };
	s->iov[1] = (struct iovec){ cl.payload, cl.size - sizeof(s->hdr) };
	s->t_planned = t_planned;
	struct ml_buf b = ml_buf_iov(s->iov, 2);
	int rc = cl.test == TEST_STREAM
			 ? ml_message_send(cl.peer, TAG_MESSAGE, &b, 1, cl.send_flags, on_ack, s)
			 : ml_request_send(cl.peer, TAG_REQUEST, &b, 1, cl.send_flags, on_response, s);
	if (rc == ML_EAGAIN)
		return rc;
	if (rc) {
		fprintf(stderr, "ml-perf: send: %s\n", ml_strerror(rc));
		exit(2);
	}
	cl.free_slots = s->next_free;
	s->busy = 1;
	cl.inflight++;
	cl.issued++;
	return 0;
}

/* Issue everything that is due and fits in the window. */
static void issue_ready(void)
{
	double t = now();
	while (cl.issuing && !cl.blocked && cl.free_slots) {
		double planned = t;
		if (cl.rate > 0) {
			planned = cl.t0 + (double)cl.issued / cl.rate;
			if (planned > t) {
				pace_at(planned);
				return;
			}
		}
		if (issue_one(planned) == ML_EAGAIN) {
			/* on_room wakes us; the timer covers a wake-up that raced */
			cl.blocked = 1;
			ev_timer_start(cl.loop, &cl.room_retry);
			return;
		}
	}
}

static void on_room(void *arg, ml_peer *peer)
{
	(void)arg;
	(void)peer;
	cl.blocked = 0;
	ev_timer_stop(cl.loop, &cl.room_retry);
	issue_ready();
}

static void on_room_retry(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	on_room(NULL, NULL);
}

static void on_pace(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)revents;
	uint64_t expirations;
	if (read(w->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	issue_ready();
}

static void path_line(char *out, size_t n)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAX_PATHS];
	unsigned np = MAX_PATHS;
	ml_peer_stats_get(cl.peer, &st, ps, &np);
	np = np < MAX_PATHS ? np : MAX_PATHS;
	size_t off = 0;
	for (unsigned i = 0; i < np && off < n; i++)
		off += (size_t)snprintf(out + off, n - off, " [%u %s]", i, ml_path_state_name(ps[i].state));
	if (off < n)
		snprintf(out + off, n - off, " resent %" PRIu64, st.frames_resent);
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	char paths[256];
	path_line(paths, sizeof(paths));
	fprintf(stderr, "t=%5.1fs %8.0f/s p50 %7.0f us p99 %8.0f us inflight %3u%s\n", now() - cl.t0,
		cl.interval_completed / cl.interval, hist_quantile(&cl.interval_hist, 0.5),
		hist_quantile(&cl.interval_hist, 0.99), cl.inflight, paths);
	hist_clear(&cl.interval_hist);
	cl.interval_completed = 0;
}

static void on_fault(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)revents;
	struct fault_plan *f = (struct fault_plan *)((char *)w - offsetof(struct fault_plan, timer));
	if (!cl.fault_seen) {
		cl.fault_seen = 1;
		cl.t_first_fault = now();
		cl.inflight_at_fault = cl.inflight;
	}
	if (!f->kind)
		return; /* external: the caller breaks the network; we only note the time */
	struct ml_fault_spec spec = { f->kind, f->value, f->for_s };
	int rc = ml_fault_set(cl.peer, f->path, &spec);
	fprintf(stderr, "ml-perf: t=%.2fs fault %s on path %u%s%s\n", now() - cl.t0,
		ml_fault_name(f->kind), f->path, rc ? ": " : "", rc ? ml_strerror(rc) : "");
}

static void on_stop(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	cl.issuing = 0;
	cl.t_end = now();
	ev_io_stop(l, &cl.pace);
	ev_timer_stop(l, &cl.room_retry);
	ev_timer_stop(l, &cl.tick);
	if (!cl.inflight)
		ev_break(l, EVBREAK_ALL);
	else
		ev_timer_start(l, &cl.drain_timer); /* what is still out after this is lost */
}

static void on_drain_end(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

static int parse_fault(const char *spec, struct fault_plan *f)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", spec);
	*f = (struct fault_plan){ .at = -1, .kind = -1 };
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			return -1;
		*v++ = 0;
		if (!strcmp(kv, "at"))
			f->at = atof(v);
		else if (!strcmp(kv, "path"))
			f->path = (unsigned)atoi(v);
		else if (!strcmp(kv, "kind"))
			f->kind = !strcmp(v, "external") ? 0 : ml_fault_parse(v) ? ml_fault_parse(v) : -1;
		else if (!strcmp(kv, "value"))
			f->value = atof(v);
		else if (!strcmp(kv, "for"))
			f->for_s = atof(v);
		else
			return -1;
	}
	return f->at < 0 || f->kind < 0 ? -1 : 0;
}

/* Connected: every path up, or after 2 s at least one (at most 10 s). */
static int connected(void)
{
	struct ml_peer_stats st;
	unsigned np = 0;
	if (ml_peer_stats_get(cl.peer, &st, NULL, &np))
		return 0;
	return st.paths_up == st.paths || (st.paths_up && now() - cl.t0 >= 2);
}

static void on_path_event(void *arg, ml_peer *peer, unsigned idx, int old, int new_state,
			  const char *reason)
{
	(void)arg;
	(void)peer;
	(void)idx;
	(void)old;
	(void)reason;
	/* Only wait_connected's loop: the same event in the drain (a path
	 * back from suspect) once ended the run with answers on their way,
	 * which the report then counted as lost. */
	if (cl.connecting && new_state == ML_PATH_UP && connected())
		ev_break(cl.loop, EVBREAK_ALL); /* wait_connected is done */
}

static void on_connect_check(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)revents;
	if (connected() || now() - cl.t0 >= 10) {
		ev_timer_stop(l, w);
		ev_break(l, EVBREAK_ALL);
	}
}

static int wait_connected(void)
{
	ev_timer check;
	cl.t0 = now();
	ev_timer_init(&check, on_connect_check, 2, 1); /* the 2 s and 10 s limits */
	ev_timer_start(cl.loop, &check);
	cl.connecting = 1;
	if (!connected())
		ev_run(cl.loop, 0);
	cl.connecting = 0;
	ev_timer_stop(cl.loop, &check);
	return connected() ? 0 : -1;
}

/* Ask the server how many duplicates of this run it delivered. */
static void on_stats(void *arg, int status, const struct ml_msg *resp)
{
	int *done = arg;
	struct perf_stats_resp s;
	if (status == ML_OK && resp->len >= sizeof(s)) {
		memcpy(&s, resp->data, sizeof(s));
		cl.server_dups = s.duplicates;
		*done = 1;
	} else {
		*done = -1;
	}
	ev_break(cl.loop, EVBREAK_ALL);
}

static int query_server_stats(void)
{
	struct perf_hdr h = { PERF_MAGIC, 0, cl.run_id, 0 };
	struct ml_buf b = ml_buf_plain(&h, sizeof(h));
	int done = 0;
	if (ml_request_send_deadline(cl.peer, TAG_STATS, &b, 1, ML_SEND_COPY, 5, on_stats, &done))
		return -1;
	while (!done)
		ev_run(cl.loop, EVRUN_ONCE);
	return done > 0 ? 0 : -1;
}

/* Seconds from the first fault until the completion rate stays at 90% of
 * what it was in the second before (last 100 ms window below it, within 5 s). */
static double time_to_recover(void)
{
	unsigned f = (unsigned)((cl.t_first_fault - cl.t0) * 10), from = f > 10 ? f - 10 : 0;
	double pre = 0;
	if (f == 0 || f >= cl.nbuckets)
		return 0;
	for (unsigned b = from; b < f; b++)
		pre += (double)cl.buckets[b];
	pre /= f - from;
	unsigned last_low = f, end = f + 50 < cl.nbuckets ? f + 50 : cl.nbuckets;
	unsigned issuing_end = (unsigned)((cl.t_end - cl.t0) * 10);
	end = end < issuing_end ? end : issuing_end;
	for (unsigned b = f; b < end; b++)
		if ((double)cl.buckets[b] < 0.9 * pre)
			last_low = b + 1;
	double t = last_low / 10.0 - (cl.t_first_fault - cl.t0);
	return t > 0 ? t : 0;
}

static void print_report(double measured_s, uint64_t lost)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAX_PATHS];
	unsigned np = MAX_PATHS;
	ml_peer_stats_get(cl.peer, &st, ps, &np);
	np = np < MAX_PATHS ? np : MAX_PATHS;
	uint64_t total_sent = 0;
	for (unsigned i = 0; i < np; i++)
		total_sent += ps[i].bytes_sent;
	double rate = cl.all.count / measured_s;
	size_t bytes = cl.test == TEST_RR ? cl.size + cl.resp_size : cl.size;
	static const char *tests[] = { "rr", "stream", "bw" };

	if (!cl.json) {
		printf("%s: %" PRIu64 " completed in %.1f s: %.0f msgs/s, %.1f MB/s\n", tests[cl.test],
		       cl.completed, measured_s, rate, rate * bytes / 1e6);
		printf("latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", hist_quantile(&cl.all, 0.5),
		       hist_quantile(&cl.all, 0.99), hist_quantile(&cl.all, 0.999), cl.all.max_us);
		printf("lost %" PRIu64 "  duplicated %" PRIu64 "  failed %" PRIu64 "  resent %" PRIu64
		       "  longest stall %.1f ms\n", lost, cl.duplicated, cl.failed, st.frames_resent,
		       cl.longest_gap * 1e3);
		for (unsigned i = 0; i < np; i++)
			printf("path %u %-24s %-10s share %5.1f%%  failures %" PRIu64 "  resent %" PRIu64
			       "  rtt %.0f us\n", i, ps[i].url, ml_path_state_name(ps[i].state),
			       total_sent ? 100.0 * ps[i].bytes_sent / total_sent : 0.0, ps[i].failures,
			       ps[i].frames_resent, ps[i].rtt_us);
		return;
	}
	printf("{\"test\": \"%s\", \"size\": %zu, \"window\": %u, \"rate\": %.0f, \"duration_s\": %.3f, "
	       "\"completed\": %" PRIu64 ", ", tests[cl.test], cl.size, cl.window, cl.rate, measured_s,
	       cl.completed);
	printf("\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, ",
	       hist_quantile(&cl.all, 0.5), hist_quantile(&cl.all, 0.99),
	       hist_quantile(&cl.all, 0.999), cl.all.max_us);
	printf("\"msgs_per_s\": %.1f, \"bytes_per_s\": %.0f, \"lost\": %" PRIu64 ", \"duplicated\": %" PRIu64
	       ", \"failed\": %" PRIu64 ", \"resent\": %" PRIu64 ", \"stall_ms\": %.2f, ", rate,
	       rate * bytes, lost, cl.duplicated, cl.failed, st.frames_resent, cl.longest_gap * 1e3);
	printf("\"errors\": {");
	for (int i = 1, first = 1; i < 32; i++)
		if (cl.errors[i]) {
			printf("%s\"%s\": %" PRIu64, first ? "" : ", ", ml_status_name(-i), cl.errors[i]);
			first = 0;
		}
	printf("}, \"completed_after_last_failure\": %" PRIu64 ", ", cl.completed_after_last_failure);
	if (cl.fault_seen)
		printf("\"time_to_recover_s\": %.3f, \"inflight_at_fault\": %" PRIu64 ", ",
		       time_to_recover(), cl.inflight_at_fault);
	else
		printf("\"time_to_recover_s\": null, \"inflight_at_fault\": null, ");
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("\"max_rss_kb\": %ld, \"paths\": [", ru.ru_maxrss);
	for (unsigned i = 0; i < np; i++)
		printf("%s{\"index\": %u, \"url\": \"%s\", \"state\": \"%s\", \"share\": %.4f, "
		       "\"bytes_sent\": %" PRIu64 ", \"frames_sent\": %" PRIu64 ", \"frames_recv\": %" PRIu64
		       ", \"failures\": %" PRIu64 ", \"connects\": %" PRIu64
		       ", \"suspects\": %" PRIu64 ", \"recoveries\": %" PRIu64 ", \"flaps\": %" PRIu64
		       ", \"probations\": %" PRIu64 ", \"resent\": %" PRIu64 ", \"failed_inflight\": %" PRIu64
		       ", \"rtt_us\": %.1f}", i ? ", " : "", i, ps[i].url, ml_path_state_name(ps[i].state),
		       total_sent ? (double)ps[i].bytes_sent / total_sent : 0.0, ps[i].bytes_sent,
		       ps[i].frames_sent, ps[i].frames_recv, ps[i].failures, ps[i].connects, ps[i].suspects, ps[i].recoveries, ps[i].flaps,
		       ps[i].probations, ps[i].frames_resent, ps[i].frames_failed_inflight, ps[i].rtt_us);
	printf("]}\n");
}

static void add_urls(char *list)
{
	char *save = NULL;
	for (char *u = strtok_r(list, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		if (cl.nurls == MAX_PATHS)
			die_usage("too many paths (at most 16)%s", "");
		cl.urls[cl.nurls++] = u;
	}
}

static void client_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "peer", required_argument, 0, 'p' },      { "test", required_argument, 0, 't' },
		{ "size", required_argument, 0, 's' },      { "resp-size", required_argument, 0, 'r' },
		{ "window", required_argument, 0, 'w' },    { "duration", required_argument, 0, 'd' },
		{ "rate", required_argument, 0, 'R' },      { "warmup", required_argument, 0, 'W' },
		{ "drain", required_argument, 0, 'D' },     { "interval", required_argument, 0, 'i' },
		{ "fault", required_argument, 0, 'f' },     { "json", no_argument, 0, 'j' },
		{ "node", required_argument, 0, 'n' },      { "server-node", required_argument, 0, 'N' },
		{ "session-timeout", required_argument, 0, 'S' }, { "key-file", required_argument, 0, 'k' },
		{ "busy-poll", required_argument, 0, 'b' }, { "protect", required_argument, 0, 'P' },
		{ "compress", required_argument, 0, 'C' }, { "payload", required_argument, 0, 'L' },
		{ "max-inflight", required_argument, 0, 'M' },
		{ 0, 0, 0, 0 },
	};
	int c;
	long resp = -1, size = -1, window = -1;
	cl.duration = 5;
	cl.drain = 10;
	cl.interval = 1;
	cl.node = 2;
	cl.server_node = 1;
	while ((c = getopt_long(argc, argv, "p:t:s:r:w:d:R:W:D:i:f:jn:N:S:k:b:P:C:L:M:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': add_urls(optarg); break;
		case 't':
			if (!strcmp(optarg, "rr"))
				cl.test = TEST_RR;
			else if (!strcmp(optarg, "stream"))
				cl.test = TEST_STREAM;
			else if (!strcmp(optarg, "bw"))
				cl.test = TEST_BW;
			else
				die_usage("unknown test '%s' (rr, stream or bw)", optarg);
			break;
		case 's': size = atol(optarg); break;
		case 'r': resp = atol(optarg); break;
		case 'w': window = atol(optarg); break;
		case 'd': cl.duration = atof(optarg); break;
		case 'R': cl.rate = atof(optarg); break;
		case 'W': cl.warmup = atof(optarg); break;
		case 'D': cl.drain = atof(optarg); break;
		case 'i': cl.interval = atof(optarg); break;
		case 'j': cl.json = 1; break;
		case 'n': cl.node = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': cl.server_node = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'S': cl.session_timeout = atof(optarg); break;
		case 'k': cl.key_file = optarg; break;
		case 'b': cl.busy_poll_us = (unsigned)atoi(optarg); break;
		case 'P': cl.protect = protect_option(optarg); break;
		case 'C':
			if (!strcmp(optarg, "lz4"))
				cl.send_flags = ML_SEND_LZ4;
			else if (!strcmp(optarg, "zstd"))
				cl.send_flags = ML_SEND_ZSTD;
			else if (strcmp(optarg, "none"))
				die_usage("unknown --compress '%s' (none, lz4 or zstd)", optarg);
			break;
		case 'L':
			if (!strcmp(optarg, "zeros"))
				cl.payload_kind = PAYLOAD_ZEROS;
			else if (!strcmp(optarg, "text"))
				cl.payload_kind = PAYLOAD_TEXT;
			else if (!strcmp(optarg, "random"))
				cl.payload_kind = PAYLOAD_RANDOM;
			else
				die_usage("unknown --payload '%s' (zeros, text or random)", optarg);
			break;
		case 'M': cl.max_inflight = parse_max_inflight(optarg); break;
		case 'f':
			if (cl.nfaults == MAX_FAULTS)
				die_usage("too many --fault (at most 16)%s", "");
			if (parse_fault(optarg, &cl.faults[cl.nfaults++]))
				die_usage("bad --fault '%s': want at=S,path=I,kind=NAME[,value=X][,for=S] "
					  "(kinds: reset shutdown blackhole blackhole-tx blackhole-rx drop "
					  "delay bad-key external)", optarg);
			break;
		default: die_usage("client: unknown option%s", "");
		}
	}
	if (!cl.nurls)
		die_usage("client needs --peer URL[,URL...]%s", "");
	if (cl.duration <= 0 || cl.warmup < 0 || cl.warmup >= cl.duration)
		die_usage("--duration must be > 0 and longer than --warmup%s", "");
	cl.size = size >= 0 ? (size_t)size : cl.test == TEST_BW ? 1 << 20 : 64;
	if (cl.size < sizeof(struct perf_hdr))
		cl.size = sizeof(struct perf_hdr); /* the header is part of every message */
	if (cl.size > 64u << 20)
		die_usage("--size is at most 64 MiB%s", "");
	cl.resp_size = resp >= 0 ? (size_t)resp : cl.test == TEST_RR ? cl.size : 0;
	if (cl.resp_size > MAX_RESP)
		die_usage("--resp-size is at most 1 MiB%s", "");
	cl.window = window > 0 ? (unsigned)window : cl.test == TEST_BW ? 8 : cl.test == TEST_STREAM ? 64 : 1;
	if (window == 0 || cl.window > 100000)
		die_usage("--window is 1..100000%s", "");
}

static int client_main(int argc, char **argv)
{
	client_options(argc, argv);
	cl.loop = ev_loop_new(EVFLAG_AUTO);
	FILE *ur = fopen("/dev/urandom", "r");
	if (!ur || fread(&cl.run_id, sizeof(cl.run_id), 1, ur) != 1)
		cl.run_id = (uint64_t)getpid() << 32 ^ (uint64_t)(now() * 1e6);
	if (ur)
		fclose(ur);
	cl.payload = payload_new(cl.size, cl.payload_kind);
	cl.slots = calloc(cl.window, sizeof(*cl.slots));
	cl.nbuckets = (unsigned)((cl.duration + cl.drain + 1) * 10);
	cl.buckets = calloc(cl.nbuckets, sizeof(*cl.buckets));
	if (!cl.payload || !cl.slots || !cl.buckets) {
		fprintf(stderr, "ml-perf: out of memory\n");
		return 2;
	}
	for (unsigned i = 0; i < cl.window; i++) {
		cl.slots[i].next_free = cl.free_slots;
		cl.free_slots = &cl.slots[i];
	}

	struct ml_config cfg;
	ml_config_init(&cfg);
	cfg.node_id = cl.node;
	cfg.loop = cl.loop;
	cfg.on_room = on_room;
	cfg.on_path_event = on_path_event;
	if (cl.session_timeout > 0)
		cfg.session_timeout_s = cl.session_timeout;
	cfg.key_file = cl.key_file;
	cfg.busy_poll_us = cl.busy_poll_us;
	cfg.protect = cl.protect;
	if (cl.max_inflight)
		cfg.max_inflight_msgs = cl.max_inflight;
	int rc = ml_ctx_create(&cfg, &cl.ctx);
	if (!rc)
		rc = ml_peer_add(cl.ctx, cl.server_node, cl.urls, cl.nurls, &cl.peer);
	if (rc) {
		fprintf(stderr, "ml-perf: %s\n", ml_strerror(rc));
		return 2;
	}
	if (wait_connected()) {
		fprintf(stderr, "ml-perf: no path to node %u came up within 10 s\n", cl.server_node);
		ml_ctx_destroy(cl.ctx);
		return 2;
	}

	cl.pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (cl.pace_fd < 0) {
		fprintf(stderr, "ml-perf: timerfd: %s\n", strerror(errno));
		return 2;
	}
	ev_io_init(&cl.pace, on_pace, cl.pace_fd, EV_READ);
	ev_io_start(cl.loop, &cl.pace);
	ev_timer_init(&cl.room_retry, on_room_retry, 0.001, 0.001);
	ev_timer_init(&cl.tick, on_tick, cl.interval, cl.interval);
	ev_timer_init(&cl.stop, on_stop, cl.duration, 0);
	ev_timer_init(&cl.drain_timer, on_drain_end, cl.drain, 0);
	ev_now_update(cl.loop);
	cl.t0 = cl.last_completion = now();
	cl.issuing = 1;
	ev_timer_start(cl.loop, &cl.stop);
	if (cl.interval > 0)
		ev_timer_start(cl.loop, &cl.tick);
	for (unsigned i = 0; i < cl.nfaults; i++) {
		ev_timer_init(&cl.faults[i].timer, on_fault, cl.faults[i].at, 0);
		ev_timer_start(cl.loop, &cl.faults[i].timer);
	}
	issue_ready();
	ev_run(cl.loop, 0);

	uint64_t lost = cl.inflight; /* never completed, even after the drain */
	if (query_server_stats())
		fprintf(stderr, "ml-perf: the server did not report its duplicates\n");
	cl.duplicated += cl.server_dups;
	print_report(cl.t_end - cl.t0 - cl.warmup, lost);
	for (unsigned i = 0; i < cl.nfaults; i++)
		ev_timer_stop(cl.loop, &cl.faults[i].timer);
	ev_timer_stop(cl.loop, &cl.drain_timer);
	ml_ctx_destroy(cl.ctx); /* completes what is left with ML_ECANCELED */
	ev_loop_destroy(cl.loop);
	close(cl.pace_fd);
	free(cl.payload);
	free(cl.slots);
	free(cl.buckets);
	return lost || cl.duplicated || cl.failed ? 1 : 0;
}

static const char usage[] =
	"usage: ml-perf server --listen URL [--listen URL...] [--node N] [--port-file FILE]\n"
	"                      [--workers N] [--admin-socket PATH] [--key-file FILE]\n"
	"                      [--busy-poll US] [--protect none|mac|encrypt] [--max-inflight N]\n"
	"       ml-perf client --peer URL[,URL...] [--test rr|stream|bw] [--size BYTES]\n"
	"                      [--resp-size BYTES] [--window N] [--duration S] [--rate R]\n"
	"                      [--warmup S] [--drain S] [--interval S] [--json]\n"
	"                      [--fault at=S,path=I,kind=NAME[,value=X][,for=S]]...\n"
	"                      [--node N] [--server-node N] [--session-timeout S]\n"
	"                      [--key-file FILE] [--busy-poll US] [--protect none|mac|encrypt]\n"
	"                      [--compress none|lz4|zstd] [--payload zeros|text|random]\n"
	"                      [--max-inflight N]\n"
	"Exit: 0 all requests succeeded once; 1 lost, duplicated or failed; 2 usage or setup.\n"
	"See doc/ml-perf.md.\n";

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "server"))
		return server_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "client"))
		return client_main(argc - 1, argv + 1);
	die_usage("unknown mode '%s' (server or client)", argv[1]);
	return 2;
}
