/*
 * test_failover.c - the failure scenarios of doc/failover.md, through the
 * in-library fault injection (ml_fault_set), under request load.
 *
 * Each scenario has fresh contexts: a server listening on 2 or 3 loopback
 * endpoints (127.0.0.1, .2, .3) and a client with a peer over all of them.
 * Most run embedded (both contexts on the test's own libev loop, turned by
 * the test); scenarios 2 and 6 run in worker mode (the test's loop then only
 * carries its own timers). Time is driven by ev timers on the test's loop
 * ("at t = 0.3 s inject", "stop issuing at t = 1.4 s, drain"); every wait is
 * for an outcome (a completion count, a path event), with a deadline that is
 * a failure, never a synchronisation.
 *
 * The load: a window of requests of 4 KiB in flight, each with a unique id
 * (its tag and first word); the server echoes; the client checks every byte
 * and counts completions per id (duplicated: a second completion of an id;
 * lost: issued, never completed after the drain). The server counts how
 * often each id reached its handler (served twice: a duplicate delivery).
 *
 *   1. blackhole of path 0 (both ways) for 1 s
 *   2. blackhole-tx of path 0: the peer notices and closes; both ends fail it
 *      (worker mode)
 *   3. blackhole-rx of path 0: we notice; both ends fail it
 *   4. reset of path 0 (once), while frames are in flight on it
 *   5. delay of 50 ms on path 0 for 1 s (a budget above it: a slow path,
 *      not a dead one): the adaptive scheduler avoids it
 *   6. drop 20 % on path 0 for 1 s, worker mode
 *   7. flapping: path 0 reset every 60-200 ms for 1.5 s: damping, probation
 *   8. every path blackholed past the session timeout: ML_ETIMEDOUT, then
 *      a new request succeeds once the faults are cleared
 *   9. every path blackholed for less than the session timeout: all OK
 *  10. peer restart under load: ML_OK or ML_EPEERRESTART, nothing lost
 *  11. 3 paths, path 0 blackholed and path 1 delayed: path 2 carries it
 *  12. a path delayed by 50 ms (default settings) is declared down, then
 *      comes back while the delay lasts, as a slow path
 *
 * ML_TEST_REQUESTS (set under ThreadSanitizer) caps the requests of each
 * scenario, spread evenly over its load phase (so that the faults still hit
 * a loaded session), and narrows the window to 32. ML_TEST_VERBOSE=1
 * prints every path event and the library's log as they happen; otherwise
 * the last log lines are printed only when a check fails. Arguments: the
 * numbers of the scenarios to run (default: all).
 */
#include "msglayer.h"
#include "check.h"

#include <ev.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SRV 1
#define CLI 2
#define MAXP 3
#define NSTATES 6
#define REQ_LEN 4096
#define DRAIN_S 10.0   /* every request completes within this after issuing stops */
#define UP_WAIT_S 10.0 /* a path comes back within this once its fault is over */
#define DEFAULT_CAP 2000000

enum mode { EMBEDDED, WORKER };

static uint64_t cap_env;     /* ML_TEST_REQUESTS, 0: unset */
static int verbose;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- the library's log: kept in a ring, shown when a check fails ---- */

#define LOG_RING 48
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ring[LOG_RING][200];
static unsigned log_n;
static double log_t0;

static void on_log(void *arg, int level, const char *text)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	(void)arg;
	pthread_mutex_lock(&log_lock);
	snprintf(log_ring[log_n++ % LOG_RING], sizeof(log_ring[0]), "%7.3f %s %s",
		 now_s() - log_t0, names[level & 3], text);
	if (verbose)
		fprintf(stderr, "  [log] %s\n", log_ring[(log_n - 1) % LOG_RING]);
	pthread_mutex_unlock(&log_lock);
}

/* ---- one scenario ---- */

struct scen;

/* Path events of one context, per path index. */
struct side {
	struct scen *s;
	int client;
	unsigned into[MAXP][NSTATES]; /* transitions into each state */
	unsigned probation_to_up[MAXP];
	unsigned direct_up_alone[MAXP]; /* connecting -> up while no other path was up */
	unsigned direct_up_others[MAXP]; /* connecting -> up while another path was up */
	int state[MAXP];
};

struct slot {
	struct scen *s;
	uint64_t id;
};

struct scen {
	int num;
	const char *name;
	int mode;
	unsigned npaths;
	double cli_session_timeout_s, cli_flap_hold_max_s; /* 0: defaults */
	double path_down_s; /* both ends (0: derived from the RTT, the default) */
	unsigned srv_sched; /* the server's enum ml_sched_policy */
	double t_stop; /* when issuing stops (s after the start); with ML_TEST_REQUESTS
	                  the capped requests are spread evenly until then */

	struct ev_loop *loop;
	ml_ctx *srv, *cli;
	ml_peer *peer; /* the client's handle of the server */
	unsigned ports[MAXP];
	struct side cs, ss;
	pthread_mutex_t lock; /* everything below, and the sides' events */
	double t0;

	/* load */
	ev_timer pacer;
	int issuing;
	unsigned window;
	uint64_t cap, issued, inflight;
	uint64_t nalloc; /* ids the arrays below hold (cap and a few extra requests) */
	struct slot *slots;
	uint8_t *done, *served;
	uint64_t ok, timedout, restarted, other, dup, dup_served, mismatched;
	double fault_on, fault_off;   /* window in which completions count as "during" */
	uint64_t during_fault;        /* ML_OK completions in that window */
	uint64_t while_p0_down;       /* ML_OK completions while client path 0 was not up */

	/* scenario 8: the moment every path's blackhole is in force */
	int watch_bh, bh_started;
	uint64_t ok_at_bh, ok_after_bh;
	double bh_t, first_timedout_t, last_timedout_t;
};

static struct scen *cur; /* for the dump when a check fails */

static struct ml_peer *server_peer(struct scen *s)
{
	return s->srv ? ml_peer_find(s->srv, CLI) : NULL;
}

static void dump_peer(const char *who, ml_peer *p)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP + 4];
	unsigned n = MAXP + 4;
	if (!p || ml_peer_stats_get(p, &st, ps, &n) != ML_OK)
		return;
	fprintf(stderr,
		"  %s: sent %" PRIu64 " acked %" PRIu64 " recv %" PRIu64 " inflight %" PRIu64
		" queued %" PRIu64 " pending %" PRIu64 " failed %" PRIu64 " restarts %" PRIu64
		" dup_frames %" PRIu64 " paths_up %u\n",
		who, st.msgs_sent, st.msgs_acked, st.msgs_recv, st.inflight_msgs, st.queued_msgs,
		st.requests_pending, st.failed, st.restarts, st.dup_frames, st.paths_up);
	for (unsigned i = 0; i < n && i < MAXP + 4; i++)
		fprintf(stderr,
			"    path %u %-22s %-10s sent %6" PRIu64 " resent %4" PRIu64 "/%4" PRIu64
			" inflight %3" PRIu64 " conn %2" PRIu64 " fail %2" PRIu64 " susp %2" PRIu64
			" rec %2" PRIu64 " prob %2" PRIu64 " flaps %2" PRIu64 " fault %s rtt %.0f us: %s\n",
			i, ps[i].url, ml_path_state_name(ps[i].state), ps[i].frames_sent,
			ps[i].frames_resent, ps[i].frames_failed_inflight, ps[i].inflight_frames,
			ps[i].connects, ps[i].failures, ps[i].suspects, ps[i].recoveries,
			ps[i].probations, ps[i].flaps, ml_fault_name((int)ps[i].fault), ps[i].rtt_us,
			ps[i].reason);
}

static void dump_on_failure(void)
{
	struct scen *s = cur;
	if (!s)
		return;
	fprintf(stderr, "--- scenario %d (%s) at t = %.3f s: issued %" PRIu64 " inflight %" PRIu64
			" ok %" PRIu64 " timedout %" PRIu64 " restarted %" PRIu64 " other %" PRIu64
			" dup %" PRIu64 "\n",
		s->num, s->name, now_s() - s->t0, s->issued, s->inflight, s->ok, s->timedout,
		s->restarted, s->other, s->dup);
	dump_peer("client", s->peer);
	dump_peer("server", server_peer(s));
	if (pthread_mutex_trylock(&log_lock) == 0) {
		fprintf(stderr, "--- last log lines:\n");
		unsigned from = log_n > LOG_RING ? log_n - LOG_RING : 0;
		for (unsigned i = from; i < log_n; i++)
			fprintf(stderr, "  %s\n", log_ring[i % LOG_RING]);
		pthread_mutex_unlock(&log_lock);
	}
}

/* ---- payload ---- */

static void fill(uint8_t *buf, uint64_t id)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ull + 1;
	memcpy(buf, &id, sizeof(id));
	for (size_t i = 8; i < REQ_LEN; i += 8) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(buf + i, &x, 8);
	}
}

/* ---- callbacks ---- */

static void on_path_event(void *arg, ml_peer *peer, unsigned idx, int old_state, int new_state,
			  const char *reason)
{
	struct side *sd = arg;
	struct scen *s = sd->s;
	(void)peer;
	CHECK(idx < MAXP, "path index %u", idx);
	CHECK(new_state >= 0 && new_state < NSTATES, "state %d", new_state);
	pthread_mutex_lock(&s->lock);
	sd->into[idx][new_state]++;
	sd->state[idx] = new_state;
	if (new_state == ML_PATH_UP && old_state == ML_PATH_PROBATION) {
		sd->probation_to_up[idx]++;
	} else if (new_state == ML_PATH_UP && old_state == ML_PATH_CONNECTING) {
		int others = 0;
		for (unsigned i = 0; i < MAXP; i++)
			others += i != idx && sd->state[i] == ML_PATH_UP;
		if (others)
			sd->direct_up_others[idx]++;
		else
			sd->direct_up_alone[idx]++;
	}
	double t0 = s->t0;
	pthread_mutex_unlock(&s->lock);
	if (verbose)
		fprintf(stderr, "  [event %7.3f] %s path %u: %s -> %s (%s)\n", now_s() - t0,
			sd->client ? "client" : "server", idx, ml_path_state_name(old_state),
			ml_path_state_name(new_state), reason);
}

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct side *sd = arg;
	struct scen *s = sd->s;
	(void)from;
	CHECK(msg->tag < s->nalloc, "request tag %" PRIu64 " out of range", msg->tag);
	pthread_mutex_lock(&s->lock);
	if (s->served[msg->tag]++)
		s->dup_served++;
	pthread_mutex_unlock(&s->lock);
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	int rc = ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

static int all_paths_blackholed(struct scen *s)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP];
	unsigned n = MAXP;
	CHECK(ml_peer_stats_get(s->peer, &st, ps, &n) == ML_OK, "stats");
	for (unsigned i = 0; i < s->npaths; i++)
		if (ps[i].fault != ML_FAULT_BLACKHOLE)
			return 0;
	return 1;
}

static void pump(struct scen *s);

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	struct slot *sl = arg;
	struct scen *s = sl->s;
	int good = 0;
	if (status == ML_OK && resp && resp->tag == sl->id && resp->len == REQ_LEN) {
		uint8_t want[REQ_LEN];
		fill(want, sl->id);
		good = memcmp(want, resp->data, REQ_LEN) == 0;
	}
	/* Scenario 8: is every blackhole in force by now? (Read outside the
	 * lock: the stats come from the library.) */
	int watch = __atomic_load_n(&s->watch_bh, __ATOMIC_RELAXED);
	int all_bh = watch ? all_paths_blackholed(s) : 0;
	double t = now_s();

	pthread_mutex_lock(&s->lock);
	if (all_bh && !s->bh_started) {
		s->bh_started = 1;
		s->bh_t = t;
		s->ok_at_bh = s->ok;
	}
	if (s->done[sl->id]++)
		s->dup++;
	s->inflight--;
	switch (status) {
	case ML_OK:
		s->ok++;
		if (!good)
			s->mismatched++;
		if (t >= s->fault_on && t <= s->fault_off)
			s->during_fault++;
		if (s->cs.state[0] != ML_PATH_UP)
			s->while_p0_down++;
		if (s->bh_started && watch)
			s->ok_after_bh++;
		break;
	case ML_ETIMEDOUT:
		if (!s->timedout)
			s->first_timedout_t = t;
		s->last_timedout_t = t;
		s->timedout++;
		break;
	case ML_EPEERRESTART:
		s->restarted++;
		break;
	default:
		s->other++;
		fprintf(stderr, "request %" PRIu64 ": unexpected status %s\n", sl->id, ml_strerror(status));
		break;
	}
	pthread_mutex_unlock(&s->lock);
	pump(s);
}

/* Keep the window full while issuing is on. */
static void pump(struct scen *s)
{
	uint8_t buf[REQ_LEN];
	for (;;) {
		pthread_mutex_lock(&s->lock);
		uint64_t limit = s->cap;
		if (cap_env) { /* paced: the budget spread over the load phase */
			double share = (now_s() - s->t0) / s->t_stop;
			if (share < 1) /* a steady stream, not bursts: something is always in flight */
				limit = (uint64_t)((double)s->cap * share) + 1;
		}
		if (!s->issuing || s->inflight >= s->window || s->issued >= limit) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		uint64_t id = s->issued++;
		s->inflight++;
		pthread_mutex_unlock(&s->lock);
		fill(buf, id);
		struct ml_buf b = ml_buf_plain(buf, REQ_LEN);
		int rc = ml_request_send(s->peer, id, &b, 1, ML_SEND_COPY, on_response, &s->slots[id]);
		CHECK(rc == ML_OK, "ml_request_send: %s", ml_strerror(rc));
	}
}

static void on_pacer(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)revents;
	pump(t->data);
}

static void set_issuing(struct scen *s, int on)
{
	pthread_mutex_lock(&s->lock);
	s->issuing = on;
	pthread_mutex_unlock(&s->lock);
	if (on)
		pump(s);
}

/* ---- driving the loop ---- */

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
}

static void on_alarm(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)revents;
	*(int *)t->data = 1;
}

/* Turn the loop until t_rel seconds after the scenario's start. */
static void run_to(struct scen *s, double t_rel)
{
	double left = s->t0 + t_rel - now_s();
	if (left <= 0)
		return;
	int fired = 0;
	ev_timer alarm;
	ev_now_update(s->loop);
	ev_timer_init(&alarm, on_alarm, left, 0);
	alarm.data = &fired;
	ev_timer_start(s->loop, &alarm);
	while (!fired)
		ev_run(s->loop, EVRUN_ONCE);
	ev_timer_stop(s->loop, &alarm);
}

/* Turn the loop until pred holds (checked under the scenario's lock);
 * past timeout_s the test fails. */
static void run_until(struct scen *s, int (*pred)(struct scen *, const void *), const void *arg,
		      double timeout_s, const char *what)
{
	ev_timer tick;
	ev_now_update(s->loop);
	ev_timer_init(&tick, on_tick, 0.005, 0.005);
	ev_timer_start(s->loop, &tick);
	double deadline = now_s() + timeout_s;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		int done = pred(s, arg);
		pthread_mutex_unlock(&s->lock);
		if (done)
			break;
		CHECK(now_s() < deadline, "scenario %d: no %s within %.1f s", s->num, what, timeout_s);
		ev_run(s->loop, EVRUN_ONCE);
	}
	ev_timer_stop(s->loop, &tick);
}

static int p_all_up(struct scen *s, const void *arg)
{
	(void)arg;
	unsigned cup = 0, sup = 0;
	for (unsigned i = 0; i < s->npaths; i++) {
		cup += s->cs.state[i] == ML_PATH_UP;
		sup += s->ss.state[i] == ML_PATH_UP;
	}
	return cup == s->npaths && sup == s->npaths;
}

static int p_client_path_up(struct scen *s, const void *arg)
{
	return s->cs.state[*(const unsigned *)arg] == ML_PATH_UP;
}

static int p_any_client_path_up(struct scen *s, const void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < s->npaths; i++)
		if (s->cs.state[i] == ML_PATH_UP)
			return 1;
	return 0;
}

/* Frames of ours are on client path `arg` (queued or written, not acked). */
static int p_client_path_loaded(struct scen *s, const void *arg)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP];
	unsigned n = MAXP;
	ml_peer_stats_get(s->peer, &st, ps, &n);
	return ps[*(const unsigned *)arg].inflight_frames > 0;
}

/* Requests with a sequence number are outstanding (not all still queued). */
static int p_numbered_outstanding(struct scen *s, const void *arg)
{
	struct ml_peer_stats st;
	(void)arg;
	ml_peer_stats_get(s->peer, &st, NULL, NULL);
	return s->inflight > st.queued_msgs;
}

static int p_drained(struct scen *s, const void *arg)
{
	(void)arg;
	return s->inflight == 0;
}

/* Both ends have nothing left in flight (the last acks of responses come
 * after the last completion). */
static int p_quiet(struct scen *s, const void *arg)
{
	(void)arg;
	struct ml_peer_stats a, b;
	ml_peer *sp = server_peer(s);
	if (!sp)
		return 0;
	ml_peer_stats_get(s->peer, &a, NULL, NULL);
	ml_peer_stats_get(sp, &b, NULL, NULL);
	return a.inflight_msgs == 0 && a.queued_msgs == 0 && a.requests_pending == 0 &&
	       b.inflight_msgs == 0 && b.queued_msgs == 0;
}

/* ---- set-up and tear-down ---- */

static void server_start(struct scen *s, int same_ports)
{
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = SRV;
	if (s->mode == EMBEDDED)
		c.loop = s->loop;
	c.on_request = serve;
	c.on_path_event = on_path_event;
	c.cb_arg = &s->ss;
	c.log = on_log;
	c.path_down_s = s->path_down_s;
	c.sched_policy = s->srv_sched;
	CHECK(ml_ctx_create(&c, &s->srv) == ML_OK, "server context");
	for (unsigned i = 0; i < s->npaths; i++) {
		char url[64];
		snprintf(url, sizeof(url), "tcp://127.0.0.%u:%u", i + 1, same_ports ? s->ports[i] : 0);
		int rc = ml_listen(s->srv, url);
		CHECK(rc == ML_OK, "listen %s: %s", url, ml_strerror(rc));
		s->ports[i] = ml_listen_port(s->srv, i);
	}
}

static void client_start(struct scen *s)
{
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = CLI;
	if (s->mode == EMBEDDED)
		c.loop = s->loop;
	c.on_path_event = on_path_event;
	c.cb_arg = &s->cs;
	c.log = on_log;
	c.path_down_s = s->path_down_s;
	if (s->cli_session_timeout_s)
		c.session_timeout_s = s->cli_session_timeout_s;
	if (s->cli_flap_hold_max_s)
		c.flap_hold_max_s = s->cli_flap_hold_max_s;
	CHECK(ml_ctx_create(&c, &s->cli) == ML_OK, "client context");
	char urls[MAXP][64];
	const char *u[MAXP];
	for (unsigned i = 0; i < s->npaths; i++) {
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.%u:%u", i + 1, s->ports[i]);
		u[i] = urls[i];
	}
	int rc = ml_peer_add(s->cli, SRV, u, s->npaths, &s->peer);
	CHECK(rc == ML_OK, "ml_peer_add: %s", ml_strerror(rc));
}

/* Fresh contexts, every path up on both ends, then the clock starts. */
static void scen_open(struct scen *s)
{
	s->cap = cap_env ? cap_env : DEFAULT_CAP;
	s->window = cap_env ? 32 : 48;
	s->nalloc = s->cap + 8;
	s->slots = calloc(s->nalloc, sizeof(*s->slots));
	s->done = calloc(s->nalloc, 1);
	s->served = calloc(s->nalloc, 1);
	CHECK(s->slots && s->done && s->served, "out of memory");
	for (uint64_t i = 0; i < s->nalloc; i++)
		s->slots[i] = (struct slot){ s, i };
	pthread_mutex_init(&s->lock, NULL);
	s->cs.s = s->ss.s = s;
	s->cs.client = 1;
	s->fault_on = s->fault_off = -1;
	s->loop = ev_loop_new(EVFLAG_AUTO);
	s->t0 = log_t0 = now_s(); /* (no thread of the library yet) */
	cur = s;
	server_start(s, 0);
	client_start(s);
	run_until(s, p_all_up, NULL, 5.0, "path up on both ends at the start");
	/* The clock starts now (workers may read it: under the locks). */
	double t = now_s();
	pthread_mutex_lock(&s->lock);
	s->t0 = t;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&log_lock);
	log_t0 = t;
	pthread_mutex_unlock(&log_lock);
	if (cap_env) {
		ev_timer_init(&s->pacer, on_pacer, 0.001, 0.001);
		s->pacer.data = s;
		ev_timer_start(s->loop, &s->pacer);
	}
}

/* Stop issuing and wait for every request to complete. */
static void drain(struct scen *s)
{
	set_issuing(s, 0);
	run_until(s, p_drained, NULL, DRAIN_S, "completion of every request (drain)");
}

static uint64_t count_lost(struct scen *s)
{
	uint64_t lost = 0;
	for (uint64_t i = 0; i < s->issued; i++)
		lost += s->done[i] == 0;
	return lost;
}

struct totals {
	uint64_t resent, failed_inflight, failures;
};

/* A broken path costs a resend of what was on it, never more. */
static struct totals check_paths(struct scen *s, ml_peer *p, const char *who)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP + 4];
	unsigned n = MAXP + 4;
	struct totals t = { 0 };
	CHECK(ml_peer_stats_get(p, &st, ps, &n) == ML_OK, "stats");
	CHECK(n <= s->npaths, "scenario %d: %s has %u paths", s->num, who, n);
	for (unsigned i = 0; i < n; i++) {
		CHECK(ps[i].frames_resent <= ps[i].frames_failed_inflight,
		      "scenario %d: %s path %u resent %" PRIu64 " > %" PRIu64 " failed in flight", s->num,
		      who, i, ps[i].frames_resent, ps[i].frames_failed_inflight);
		t.resent += ps[i].frames_resent;
		t.failed_inflight += ps[i].frames_failed_inflight;
		t.failures += ps[i].failures;
	}
	CHECK(t.resent == st.frames_resent, "scenario %d: %s resent %" PRIu64 " != sum %" PRIu64,
	      s->num, who, st.frames_resent, t.resent);
	return t;
}

static struct ml_path_stats path_stats(ml_peer *p, unsigned idx)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP + 4];
	unsigned n = MAXP + 4;
	CHECK(ml_peer_stats_get(p, &st, ps, &n) == ML_OK && idx < n, "stats of path %u", idx);
	return ps[idx];
}

/* The common end of a scenario: drained, every path back up, exactly once. */
static void finish(struct scen *s, int all_ok, int same_session)
{
	drain(s);
	run_until(s, p_all_up, NULL, UP_WAIT_S, "path back up on both ends at the end");
	run_until(s, p_quiet, NULL, DRAIN_S, "quiet session (acks of the last responses)");
	uint64_t lost = count_lost(s);
	CHECK(lost == 0, "scenario %d: %" PRIu64 " of %" PRIu64 " requests lost", s->num, lost, s->issued);
	CHECK(s->dup == 0, "scenario %d: %" PRIu64 " requests completed twice", s->num, s->dup);
	CHECK(s->dup_served == 0, "scenario %d: %" PRIu64 " requests served twice", s->num, s->dup_served);
	CHECK(s->mismatched == 0, "scenario %d: %" PRIu64 " responses differ from their request",
	      s->num, s->mismatched);
	CHECK(s->other == 0, "scenario %d: %" PRIu64 " unexpected statuses", s->num, s->other);
	CHECK(s->ok + s->timedout + s->restarted == s->issued, "scenario %d: completions do not add up",
	      s->num);
	if (all_ok)
		CHECK(s->ok == s->issued, "scenario %d: %" PRIu64 " of %" PRIu64 " requests ML_OK (%" PRIu64
		      " timed out, %" PRIu64 " peer restart)", s->num, s->ok, s->issued, s->timedout,
		      s->restarted);
	check_paths(s, s->peer, "client");
	check_paths(s, server_peer(s), "server");
	if (same_session) {
		/* Both ends agree: every request and response delivered once. */
		struct ml_peer_stats c, v;
		ml_peer_stats_get(s->peer, &c, NULL, NULL);
		ml_peer_stats_get(server_peer(s), &v, NULL, NULL);
		CHECK(c.msgs_sent == s->issued && c.msgs_acked == c.msgs_sent && v.msgs_recv == c.msgs_sent,
		      "scenario %d: client sent %" PRIu64 " acked %" PRIu64 ", server delivered %" PRIu64
		      " (issued %" PRIu64 ")", s->num, c.msgs_sent, c.msgs_acked, v.msgs_recv, s->issued);
		CHECK(v.msgs_sent == c.msgs_recv && v.msgs_acked == v.msgs_sent && c.msgs_recv == s->ok,
		      "scenario %d: server sent %" PRIu64 " acked %" PRIu64 ", client delivered %" PRIu64,
		      s->num, v.msgs_sent, v.msgs_acked, c.msgs_recv);
		CHECK(c.restarts == 0 && v.restarts == 0, "scenario %d: session restarts %" PRIu64 "/%" PRIu64,
		      s->num, c.restarts, v.restarts);
	}
}

/* The client's path events as they are now (workers write them). */
static struct side client_events(struct scen *s)
{
	pthread_mutex_lock(&s->lock);
	struct side c = s->cs;
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void events_text(const struct side *sd, unsigned idx, char *out, size_t len)
{
	static const char *const abbr[NSTATES] = { "dn", "conn", "up", "cl", "susp", "prob" };
	size_t at = 0;
	out[0] = 0;
	for (int k = 0; k < NSTATES; k++)
		if (sd->into[idx][k] && at < len)
			at += (size_t)snprintf(out + at, len - at, "%s%s%u", at ? " " : "", abbr[k],
					       sd->into[idx][k]);
}

static void report(struct scen *s, const char *extra)
{
	struct ml_path_stats p0 = path_stats(s->peer, 0);
	struct totals ct = check_paths(s, s->peer, "client"), st = check_paths(s, server_peer(s), "server");
	char ev[96];
	struct side cs = client_events(s);
	events_text(&cs, 0, ev, sizeof(ev));
	printf("  %2d %-34s %s %6" PRIu64 " req: ok %" PRIu64 " timedout %" PRIu64 " restart %" PRIu64
	       " lost 0 dup 0 | during %" PRIu64 " | p0 resent %" PRIu64 "/%" PRIu64 " fail %" PRIu64
	       " conn %" PRIu64 " flaps %" PRIu64 " prob %" PRIu64 " [%s] | resent c %" PRIu64
	       " s %" PRIu64 ", fail c %" PRIu64 " s %" PRIu64 "%s%s | %.2f s\n",
	       s->num, s->name, s->mode == WORKER ? "worker  " : "embedded", s->issued, s->ok,
	       s->timedout, s->restarted, s->during_fault, p0.frames_resent,
	       p0.frames_failed_inflight, p0.failures, p0.connects, p0.flaps, p0.probations, ev,
	       ct.resent, st.resent, ct.failures, st.failures, extra ? " | " : "", extra ? extra : "",
	       now_s() - s->t0);
}

static void scen_close(struct scen *s)
{
	ml_ctx_destroy(s->cli);
	ml_ctx_destroy(s->srv);
	cur = NULL;
	ev_timer_stop(s->loop, &s->pacer);
	ev_loop_destroy(s->loop);
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	free(s->done);
	free(s->served);
}

static void fault(struct scen *s, unsigned path, int kind, double value, double duration_s)
{
	struct ml_fault_spec f = { .fault = kind, .value = value, .duration_s = duration_s };
	int rc = ml_fault_set(s->peer, path, &f);
	CHECK(rc == ML_OK, "ml_fault_set(%s): %s", ml_fault_name(kind), ml_strerror(rc));
}

/* Completions that land in [from, to] (absolute) count as "during the fault". */
static void during(struct scen *s, double from, double to)
{
	pthread_mutex_lock(&s->lock);
	s->fault_on = from;
	s->fault_off = to;
	pthread_mutex_unlock(&s->lock);
}

/* The server's end of the one path that failed (its inbound paths are
 * numbered in arrival order, so it is found by its failures). */
static struct ml_path_stats server_failed_path(struct scen *s)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[MAXP], found;
	unsigned n = MAXP, nfailed = 0;
	CHECK(ml_peer_stats_get(server_peer(s), &st, ps, &n) == ML_OK, "stats");
	for (unsigned i = 0; i < n && i < MAXP; i++)
		if (ps[i].failures) {
			found = ps[i];
			nfailed++;
		}
	CHECK(nfailed == 1, "scenario %d: %u server paths failed (want 1)", s->num, nfailed);
	return found;
}

/* ======================================================================
 * The scenarios
 * ====================================================================== */

#define T_INJECT 0.3

/* 1, 2, 3: path 0 blackholed (both ways, or one way) for 1 s: the detection
 * budget grows with the RTT, which a loaded machine inflates (a CI run under
 * load once took longer than 0.5 s). */
static void test_blackhole(int num, int kind, const char *name, int mode)
{
	/* Scenario 1: the server's responses go round-robin, so that some are
	 * on path 0 whatever the load (a lightly loaded adaptive scheduler may
	 * leave it idle): what it writes there between the blackhole and its
	 * own detection is lost for sure, and must be resent. */
	struct scen s = { .num = num, .name = name, .mode = mode, .npaths = 2, .t_stop = 1.9,
			  .srv_sched = kind == ML_FAULT_BLACKHOLE ? ML_SCHED_ROUND_ROBIN : ML_SCHED_ADAPTIVE };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	double t = now_s();
	/* "During": from when the loss must have been noticed to the end. */
	during(&s, t + 0.1, t + 1.0);
	fault(&s, 0, kind, 0, 1.0);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);

	struct ml_path_stats p0 = path_stats(s.peer, 0), p1 = path_stats(s.peer, 1);
	struct side ev = client_events(&s);
	CHECK(ev.into[0][ML_PATH_DOWN] >= 1, "scenario %d: client path 0 never went down", num);
	CHECK(p0.failures >= 1 && p1.failures == 0, "scenario %d: failures path 0 %" PRIu64
	      ", path 1 %" PRIu64, num, p0.failures, p1.failures);
	CHECK(ev.into[0][ML_PATH_UP] >= 2 && p0.connects >= 2,
	      "scenario %d: path 0 did not come back up (%u up events, %" PRIu64 " connects)", num,
	      ev.into[0][ML_PATH_UP], p0.connects);
	CHECK(s.during_fault > 0, "scenario %d: no request completed during the fault", num);
	CHECK(s.while_p0_down > 0, "scenario %d: no request completed while path 0 was down", num);
	/* Both ends fail the path, whichever way the fault cuts it, and what
	 * was lost in flight on it is resent. The in-library blackhole holds
	 * what we have not written yet: frames written before it reached the
	 * server and were acknowledged over path 1, so the frames lost in
	 * flight are the server's responses on its end of path 0. */
	struct ml_path_stats sp0 = server_failed_path(&s);
	CHECK(p0.frames_resent <= p0.frames_failed_inflight &&
	      sp0.frames_resent <= sp0.frames_failed_inflight,
	      "scenario %d: path 0 resent %" PRIu64 " of %" PRIu64 " (client), %" PRIu64 " of %" PRIu64
	      " (server)", num, p0.frames_resent, p0.frames_failed_inflight, sp0.frames_resent,
	      sp0.frames_failed_inflight);
	if (kind == ML_FAULT_BLACKHOLE)
		CHECK(p0.frames_resent + sp0.frames_resent > 0,
		      "scenario %d: nothing resent after path 0 failed under load", num);
	char extra[96];
	snprintf(extra, sizeof(extra), "server p0 resent %" PRIu64 "/%" PRIu64 ", while p0 down %" PRIu64,
		 sp0.frames_resent, sp0.frames_failed_inflight, s.while_p0_down);
	report(&s, extra);
	scen_close(&s);
}

/* 4: one reset of path 0 under load, worker mode. */
static void test_reset(void)
{
	struct scen s = { .num = 4, .name = "reset p0 once", .mode = EMBEDDED, .npaths = 2,
			  .t_stop = 1.2 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	unsigned zero = 0;
	run_until(&s, p_client_path_loaded, &zero, 1.0, "frames in flight on path 0");
	CHECK(ml_fault_inject(s.peer, 0, ML_FAULT_RESET) == ML_OK, "reset");
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);
	struct ml_path_stats p0 = path_stats(s.peer, 0), p1 = path_stats(s.peer, 1);
	CHECK(p0.failures == 1 && p1.failures == 0, "failures: path 0 %" PRIu64 ", path 1 %" PRIu64,
	      p0.failures, p1.failures);
	CHECK(p0.connects >= 2, "path 0 connects %" PRIu64, p0.connects);
	/* The reset came while frames of ours were on path 0 (embedded, the
	 * fault command runs before the loop turn's reads, so no ack overtook
	 * it): they count as failed in flight, and each is resent unless its
	 * ack comes first. On loopback the server usually has them already
	 * and acks them over path 1, so whether a resend is needed is timing;
	 * what the RST really loses is the server's responses not yet read
	 * here, resent by the server's end of path 0. Lost 0 / dup 0 (finish)
	 * is what proves the failed frames were all taken care of. */
	struct ml_path_stats sp0 = server_failed_path(&s);
	CHECK(p0.frames_failed_inflight > 0, "nothing was in flight on path 0 at the reset");
	CHECK(p0.frames_resent <= p0.frames_failed_inflight &&
	      sp0.frames_resent <= sp0.frames_failed_inflight,
	      "resent %" PRIu64 " of %" PRIu64 " (client), %" PRIu64 " of %" PRIu64 " (server)",
	      p0.frames_resent, p0.frames_failed_inflight, sp0.frames_resent,
	      sp0.frames_failed_inflight);
	char extra[64];
	snprintf(extra, sizeof(extra), "server p0 resent %" PRIu64 "/%" PRIu64, sp0.frames_resent,
		 sp0.frames_failed_inflight);
	report(&s, extra);
	scen_close(&s);
}

/* 5: path 0 delayed by 50 ms for 1 s: a slow path, not a dead one. With
 * the default budget (30 ms for a LAN) the jump from 0.1 to 50 ms would
 * declare it down (see 12); here the budget is set above the delay, as
 * doc/failover.md advises for slow or jittery links, so the path stays up
 * and the adaptive scheduler alone must move the load to path 1. */
static void test_delay(void)
{
	struct scen s = { .num = 5, .name = "delay 50 ms p0 1 s (budget 0.3 s)", .mode = EMBEDDED,
			  .npaths = 2, .t_stop = 1.4, .path_down_s = 0.3 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	struct ml_path_stats a0 = path_stats(s.peer, 0), a1 = path_stats(s.peer, 1);
	fault(&s, 0, ML_FAULT_DELAY, 0.05, 1.0);
	run_to(&s, T_INJECT + 1.0);
	struct ml_path_stats b0 = path_stats(s.peer, 0), b1 = path_stats(s.peer, 1);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);
	uint64_t d0 = b0.bytes_sent - a0.bytes_sent, d1 = b1.bytes_sent - a1.bytes_sent;
	struct ml_path_stats p0 = path_stats(s.peer, 0);
	CHECK(p0.failures == 0 && b0.rtt_us > 25000, "the slow path failed %" PRIu64
	      " times (rtt %.0f us): the scheduler was not what kept the load off it", p0.failures,
	      b0.rtt_us);
	CHECK(d0 < d1, "path 0 (delayed) carried %" PRIu64 " bytes during the delay, path 1 %" PRIu64,
	      d0, d1);
	char extra[96];
	snprintf(extra, sizeof(extra), "during delay p0 %.1f MiB p1 %.1f MiB (p0 share %.1f %%)",
		 d0 / 1048576.0, d1 / 1048576.0, 100.0 * (double)d0 / (double)(d0 + d1));
	report(&s, extra);
	scen_close(&s);
}

/* 6: 20 % of path 0's received segments lost for 1 s, worker mode. */
static void test_drop(void)
{
	struct scen s = { .num = 6, .name = "drop 20% p0 1 s", .mode = WORKER, .npaths = 2,
			  .t_stop = 1.4 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	fault(&s, 0, ML_FAULT_DROP, 0.2, 1.0);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);
	struct ml_path_stats p1 = path_stats(s.peer, 1);
	CHECK(p1.failures == 0, "path 1 failed %" PRIu64 " times", p1.failures);
	report(&s, NULL);
	scen_close(&s);
}

/* 7: path 0 reset every 60-200 ms (fixed seed) for 1.5 s. */
static void test_flapping(void)
{
	struct scen s = { .num = 7, .name = "flapping p0 (resets 1.5 s)", .mode = EMBEDDED, .npaths = 2,
			  .cli_flap_hold_max_s = 1.0, .t_stop = 2.0 };
	scen_open(&s);
	set_issuing(&s, 1);
	uint64_t rng = 0x5eed5eedull;
	unsigned resets = 0;
	struct side snap = { 0 };
	double t = T_INJECT;
	while (t < T_INJECT + 1.5) {
		run_to(&s, t);
		snap = client_events(&s);
		CHECK(ml_fault_inject(s.peer, 0, ML_FAULT_RESET) == ML_OK, "reset");
		resets++;
		t += 0.060 + (double)(xorshift(&rng) % 141) / 1000.0;
	}
	run_to(&s, s.t_stop);
	drain(&s);
	/* Back up, through probation, after the last reset. */
	unsigned zero = 0;
	run_until(&s, p_client_path_up, &zero, UP_WAIT_S, "path 0 up after the flapping");
	finish(&s, 1, 1);
	struct ml_path_stats p0 = path_stats(s.peer, 0), p1 = path_stats(s.peer, 1);
	CHECK(p0.flaps > 0 && p0.probations > 0, "path 0: %" PRIu64 " flaps, %" PRIu64 " probations",
	      p0.flaps, p0.probations);
	/* After the last reset it came back through probation, or at once
	 * only while no other path worked (a flapping path beats none); it
	 * never skipped probation while path 1 was up. */
	struct side ev = client_events(&s);
	unsigned via_probation = ev.probation_to_up[0] - snap.probation_to_up[0];
	unsigned alone = ev.direct_up_alone[0] - snap.direct_up_alone[0];
	unsigned skipped = ev.direct_up_others[0] - snap.direct_up_others[0];
	CHECK((via_probation > 0 || alone > 0) && skipped == 0,
	      "path 0 after the last reset: %u up through probation, %u at once with no other path "
	      "up, %u at once while another path was up", via_probation, alone, skipped);
	CHECK(p1.failures == 0, "path 1 failed %" PRIu64 " times", p1.failures);
	char extra[64];
	snprintf(extra, sizeof(extra), "%u resets injected", resets);
	report(&s, extra);
	scen_close(&s);
}

/* 8: every path blackholed for longer than the session timeout (0.5 s). */
static void test_all_down_timeout(void)
{
	struct scen s = { .num = 8, .name = "all paths down > session timeout", .mode = EMBEDDED,
			  .npaths = 2, .cli_session_timeout_s = 0.5, .t_stop = T_INJECT };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	set_issuing(&s, 0);
	double t_inject = now_s();
	__atomic_store_n(&s.watch_bh, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < s.npaths; i++)
		fault(&s, i, ML_FAULT_BLACKHOLE, 0, 0);
	run_until(&s, p_drained, NULL, DRAIN_S, "completion of every request (session timeout)");
	uint64_t issued = s.issued;
	CHECK(s.bh_started, "no completion after the blackholes took effect");
	CHECK(s.ok_after_bh == 0, "%" PRIu64 " requests completed ML_OK through blackholed paths",
	      s.ok_after_bh);
	CHECK(s.ok == s.ok_at_bh && s.timedout == issued - s.ok_at_bh && s.timedout > 0,
	      "ok %" PRIu64 " (%" PRIu64 " before the blackhole), timed out %" PRIu64 " of %" PRIu64
	      " outstanding", s.ok, s.ok_at_bh, s.timedout, issued - s.ok_at_bh);
	double first = s.first_timedout_t - t_inject, last = s.last_timedout_t - t_inject;
	CHECK(first >= 0.45 && last < 2.0, "timed out between %.3f and %.3f s after the blackhole "
	      "(session timeout 0.5 s)", first, last);
	struct ml_peer_stats st;
	ml_peer_stats_get(s.peer, &st, NULL, NULL);
	CHECK(st.restarts == 1 && st.inflight_msgs == 0 && st.requests_pending == 0,
	      "client restarts %" PRIu64 " inflight %" PRIu64 " pending %" PRIu64, st.restarts,
	      st.inflight_msgs, st.requests_pending);

	/* The network heals: a new request succeeds once a path is up. */
	for (unsigned i = 0; i < s.npaths; i++)
		fault(&s, i, ML_FAULT_CLEAR, 0, 0);
	__atomic_store_n(&s.watch_bh, 0, __ATOMIC_RELAXED);
	run_until(&s, p_any_client_path_up, NULL, UP_WAIT_S, "client path up after the faults cleared");
	pthread_mutex_lock(&s.lock);
	s.window = 1;
	s.cap = s.issued + 1;
	CHECK(s.cap <= s.nalloc, "no id left for the request after the faults");
	pthread_mutex_unlock(&s.lock);
	set_issuing(&s, 1);
	finish(&s, 0, 0);
	CHECK(s.ok == s.ok_at_bh + 1 && s.issued == issued + 1, "the request after the faults: ok %" PRIu64,
	      s.ok - s.ok_at_bh);
	char extra[96];
	snprintf(extra, sizeof(extra), "%" PRIu64 " outstanding -> ML_ETIMEDOUT %.2f..%.2f s after blackhole",
		 s.timedout, first, last);
	report(&s, extra);
	scen_close(&s);
}

/* 9: every path blackholed for 0.5 s, session timeout 5 s: nothing fails. */
static void test_all_down_back(void)
{
	struct scen s = { .num = 9, .name = "all paths down 0.5 s < timeout", .mode = EMBEDDED,
			  .npaths = 2, .cli_session_timeout_s = 5.0, .t_stop = 1.5 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	for (unsigned i = 0; i < s.npaths; i++)
		fault(&s, i, ML_FAULT_BLACKHOLE, 0, 0.5);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);
	struct ml_path_stats p0 = path_stats(s.peer, 0), p1 = path_stats(s.peer, 1);
	char extra[96];
	snprintf(extra, sizeof(extra), "suspects %" PRIu64 "+%" PRIu64 " recoveries %" PRIu64 "+%" PRIu64,
		 p0.suspects, p1.suspects, p0.recoveries, p1.recoveries);
	report(&s, extra);
	scen_close(&s);
}

/* 10: the server is destroyed under load and comes back as a new
 * incarnation on the same ports. */
static void test_peer_restart(void)
{
	struct scen s = { .num = 10, .name = "peer restart under load", .mode = EMBEDDED, .npaths = 2,
			  .t_stop = 1.3 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	/* Embedded, nothing moves between this check and the destroy:
	 * requests that have a sequence number at that moment belong to the
	 * old incarnation's session; the rest still wait for one. */
	run_until(&s, p_numbered_outstanding, NULL, 1.0, "numbered requests outstanding");
	struct ml_peer_stats cst;
	ml_peer_stats_get(s.peer, &cst, NULL, NULL);
	pthread_mutex_lock(&s.lock);
	uint64_t outstanding = s.inflight, numbered = s.inflight - cst.queued_msgs, ok_before = s.ok;
	pthread_mutex_unlock(&s.lock);
	uint64_t inc1 = ml_ctx_incarnation(s.srv);
	ml_ctx_destroy(s.srv);
	s.srv = NULL;
	pthread_mutex_lock(&s.lock);
	memset(s.ss.into, 0, sizeof(s.ss.into));
	memset(s.ss.state, 0, sizeof(s.ss.state));
	pthread_mutex_unlock(&s.lock);
	server_start(&s, 1);
	CHECK(ml_ctx_incarnation(s.srv) != inc1, "same incarnation drawn twice");
	run_to(&s, s.t_stop);
	finish(&s, 0, 0);
	/* Every numbered one fails with ML_EPEERRESTART; so may requests
	 * numbered while every path was down (they went to the old session
	 * too); every other request is answered by the new server. */
	CHECK(s.restarted >= numbered && s.restarted > 0,
	      "%" PRIu64 " ML_EPEERRESTART, %" PRIu64 " requests of the old session outstanding "
	      "(%" PRIu64 " in all)", s.restarted, numbered, outstanding);
	CHECK(s.ok > ok_before + s.window, "few requests succeeded after the restart (%" PRIu64 ")",
	      s.ok - ok_before);
	struct ml_peer_stats st;
	ml_peer_stats_get(s.peer, &st, NULL, NULL);
	CHECK(st.restarts == 1 && st.peer_incarnation == ml_ctx_incarnation(s.srv),
	      "client restarts %" PRIu64 ", peer incarnation %016" PRIx64, st.restarts,
	      st.peer_incarnation);
	char extra[96];
	snprintf(extra, sizeof(extra), "%" PRIu64 " outstanding at restart (%" PRIu64
		 " numbered) -> %" PRIu64 " ML_EPEERRESTART", outstanding, numbered, s.restarted);
	report(&s, extra);
	scen_close(&s);
}

/* 11: 3 paths; path 0 blackholed and path 1 delayed at once: path 2 works. */
static void test_three_paths(void)
{
	struct scen s = { .num = 11, .name = "3 paths: p0 blackhole, p1 delay", .mode = EMBEDDED,
			  .npaths = 3, .t_stop = 1.8 };
	scen_open(&s);
	set_issuing(&s, 1);
	run_to(&s, T_INJECT);
	struct ml_path_stats a[3], b[3];
	for (unsigned i = 0; i < 3; i++)
		a[i] = path_stats(s.peer, i);
	double t = now_s();
	during(&s, t + 0.1, t + 1.0);
	fault(&s, 0, ML_FAULT_BLACKHOLE, 0, 1.0);
	fault(&s, 1, ML_FAULT_DELAY, 0.05, 1.0);
	run_to(&s, T_INJECT + 1.0);
	for (unsigned i = 0; i < 3; i++)
		b[i] = path_stats(s.peer, i);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1);
	uint64_t d[3];
	for (unsigned i = 0; i < 3; i++)
		d[i] = b[i].bytes_sent - a[i].bytes_sent;
	CHECK(d[2] > d[0] + d[1], "during the faults: path 0 %" PRIu64 ", path 1 %" PRIu64
	      ", path 2 %" PRIu64 " bytes", d[0], d[1], d[2]);
	CHECK(s.during_fault > 0, "no request completed during the faults");
	CHECK(path_stats(s.peer, 2).failures == 0, "path 2 failed");
	char extra[96];
	snprintf(extra, sizeof(extra), "during faults MiB p0 %.1f p1 %.1f p2 %.1f", d[0] / 1048576.0,
		 d[1] / 1048576.0, d[2] / 1048576.0);
	report(&s, extra);
	scen_close(&s);
}

/* 12. Path 0 delayed by 50 ms for 1 s, default settings. The jump in
 * latency gets it declared down (30 ms budget: documented), and it must come
 * back as a slow path while the delay lasts. It used not to: the accepting
 * end judged the new connection by the 30 ms budget and "behind the other
 * paths" while the connector could send nothing before our HELLO_ACK had
 * crossed the slow link, and closed every reconnect. No request load here: a
 * stall of the process (heavy load) could make path 1 look silent too, and
 * hide the bug. Messages are checked too (finish()). */
static void test_slow_path_reconnect(void)
{
	struct scen s = { .num = 12, .name = "slow path 50 ms comes back", .mode = EMBEDDED,
			  .npaths = 2, .t_stop = 1.4 };
	scen_open(&s);
	run_to(&s, T_INJECT);
	fault(&s, 0, ML_FAULT_DELAY, 0.05, 1.0);
	run_to(&s, T_INJECT + 0.95); /* just before the delay ends */
	struct ml_path_stats p0 = path_stats(s.peer, 0);
	int state = p0.state;
	char seen[200];
	snprintf(seen, sizeof(seen), "path 0 %s at the end of the delay, %" PRIu64 " failures, %" PRIu64
		 " handshakes during it; last: %s", ml_path_state_name(state), p0.failures,
		 p0.connects - 1, p0.reason);
	run_to(&s, s.t_stop);
	finish(&s, 1, 1); /* the messages: hard checks */
	report(&s, NULL);
	CHECK(state == ML_PATH_UP, "a path with 50 ms RTT must come back while slow; seen: %s", seen);
	scen_close(&s);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *env = getenv("ML_TEST_REQUESTS");
	if (env && *env)
		cap_env = strtoull(env, NULL, 10);
	env = getenv("ML_TEST_VERBOSE");
	verbose = env && *env && *env != '0';
	atexit(dump_on_failure);
	/* Optional: run only the scenarios named on the command line. */
	int want[13] = { 0 };
	for (int i = 1; i < argc; i++) {
		int n = atoi(argv[i]);
		CHECK(n >= 1 && n <= 12, "no scenario %s", argv[i]);
		want[n] = 1;
	}
	int all = argc < 2;
	double t0 = now_s();
	if (all || want[1])
		test_blackhole(1, ML_FAULT_BLACKHOLE, "blackhole p0 1 s", EMBEDDED);
	if (all || want[2])
		test_blackhole(2, ML_FAULT_BLACKHOLE_TX, "blackhole-tx p0 1 s", WORKER);
	if (all || want[3])
		test_blackhole(3, ML_FAULT_BLACKHOLE_RX, "blackhole-rx p0 1 s", EMBEDDED);
	if (all || want[4])
		test_reset();
	if (all || want[5])
		test_delay();
	if (all || want[6])
		test_drop();
	if (all || want[7])
		test_flapping();
	if (all || want[8])
		test_all_down_timeout();
	if (all || want[9])
		test_all_down_back();
	if (all || want[10])
		test_peer_restart();
	if (all || want[11])
		test_three_paths();
	if (all || want[12])
		test_slow_path_reconnect();
	printf("test_failover: all scenarios passed in %.1f s", now_s() - t0);
	printf("\n");
	return 0;
}
