/*
 * test_rdma.c - msglayer over real RDMA paths (soft-RoCE in the VM of
 * tests/rdma/vm-test.sh): a server context and a client context in one
 * process, on worker threads, connected by the given endpoints.
 *
 *   test_rdma rr       --listen URL... --peer URL...
 *       Requests of 64 B to 1 MiB (fragmented over the paths), every response
 *       checked byte for byte; every path must carry data frames.
 *   test_rdma failover --listen URL... --peer URL... --fault CMD --clear CMD
 *                      [--expect-reason TEXT] [--expect-server-reason TEXT]
 *                      [--min-failures N]
 *       4 KiB requests under load; CMD (a shell command: iptables, ip link,
 *       rdma link; or lib:KIND, the library's own ml_fault_set on path 0)
 *       breaks path 0 and the other clears it. Path 0 must go down (for the
 *       reason TEXT, if given; the server's end of it for its TEXT), requests must keep completing on the others
 *       meanwhile, path 0 must come back and carry data again; at the end
 *       nothing is lost, nothing completed or served twice. Prints the
 *       detection time and the longest stall. A fault that flaps the path
 *       must have failed it N times at least.
 *   --mem registered|plain (either mode)
 *       Payloads from a region of the client's, answers from one of the
 *       server's, sent without ML_SEND_COPY: registered with
 *       ml_mem_register (ML_BUF_MEM: pulled with RDMA READ on RDMA paths),
 *       or plain memory (DATA frames through the transport's buffers). rr
 *       then sends 64 KiB, 300000 B and 1 MiB, and checks the copy counters
 *       of every path at both ends: registered, no byte copied and the
 *       payloads all moved by READ; plain, every payload byte copied and
 *       none by READ. Prints the CPU time per MiB moved.
 *   --size N (failover: request size, default 4096), --load N (failover: N
 *       requests before the fault, 2N/3 during it, 5N/3 after; default 300)
 *
 * Every wait is for an outcome (a path state, a count) on a condition
 * variable, with a deadline that is a failure. Faults run in this (the test's)
 * thread while the library runs on its workers.
 */
#include "msglayer.h"
#include "../integ/check.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SRV 1
#define CLI 2
#define MAXP 8
#define MAX_IDS 2000000
#define UP_WAIT_S 20.0
#define SLOTS 32
#define SLOT_SIZE (1u << 20)
enum { MEM_REGISTERED = 1, MEM_PLAIN = 2 };

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	ml_ctx *srv, *cli;
	ml_peer *peer;
	unsigned npaths;
	int state[MAXP];           /* client paths, by index */
	double left_up[MAXP];      /* when each last left "up" */
	char down_reason[160];     /* why path 0 last left "up" */
	double came_up[MAXP];      /* when each last came up */
	double t_fault;            /* when the fault was injected (0: not yet) */
	double srv_left_up;        /* the server's first path closed after it (only path 0 is hit;
	                              the server numbers paths in arrival order) */
	char srv_reason[160];      /* why it closed */
	int issuing;
	unsigned window, inflight;
	uint32_t size_cycle;       /* rr: sizes cycle; failover: fixed 4 KiB */
	int rr;
	uint64_t issued, ok, failed, dup, mismatched;
	uint8_t *done, *served;
	int mem;                   /* 0: ML_SEND_COPY; MEM_REGISTERED, MEM_PLAIN: from regions */
	uint32_t size;             /* failover: request size */
	uint8_t *cli_mem, *srv_mem; /* SLOTS slots of SLOT_SIZE each */
	ml_mem *cli_reg, *srv_reg;
	uint8_t cli_busy[SLOTS], srv_busy[SLOTS];
	uint8_t *slot_of;          /* client: the slot of request id */
	double last_done, longest_gap, t_gap_end;
} T = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static const uint32_t rr_sizes[] = { 64, 4096, 65536, 300000, 1 << 20 };
static const uint32_t mem_sizes[] = { 65536, 300000, 1 << 20 }; /* all over zcopy_min */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t size_of(uint64_t id)
{
	if (!T.rr)
		return T.size;
	if (T.mem)
		return mem_sizes[id % (sizeof(mem_sizes) / sizeof(mem_sizes[0]))];
	return rr_sizes[id % (sizeof(rr_sizes) / sizeof(rr_sizes[0]))];
}

/* The payload of request id: its id, then bytes that depend on id and offset. */
static void fill(uint8_t *p, uint32_t len, uint64_t id)
{
	memcpy(p, &id, sizeof(id));
	for (uint32_t i = sizeof(id); i < len; i++)
		p[i] = (uint8_t)(id * 131 + i * 7);
}

static int check_payload(const uint8_t *p, size_t len, uint64_t id)
{
	uint64_t got;
	if (len != size_of(id))
		return -1;
	memcpy(&got, p, sizeof(got));
	if (got != id)
		return -1;
	for (size_t i = sizeof(id); i < len; i++)
		if (p[i] != (uint8_t)(id * 131 + i * 7))
			return -1;
	return 0;
}

/* A free slot of busy[] (T.lock held), or -1. */
static int slot_take(uint8_t *busy)
{
	for (int i = 0; i < SLOTS; i++)
		if (!busy[i]) {
			busy[i] = 1;
			return i;
		}
	return -1;
}

/* A buffer reference to len bytes at slot i of a region: registered or plain. */
static struct ml_buf slot_buf(ml_mem *reg, uint8_t *mem, int i, uint32_t len)
{
	size_t off = (size_t)i * SLOT_SIZE;
	return T.mem == MEM_REGISTERED ? ml_buf_mem(reg, off, len) : ml_buf_plain(mem + off, len);
}

/* ---- server: echo, and count deliveries per id ---- */

static void response_acked(void *arg, int status)
{
	(void)status;
	pthread_mutex_lock(&T.lock);
	T.srv_busy[(uintptr_t)arg] = 0;
	pthread_mutex_unlock(&T.lock);
}

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	uint64_t id = ml_request_tag(req);
	pthread_mutex_lock(&T.lock);
	if (id < MAX_IDS && T.served[id]++)
		T.dup++; /* delivered to the application twice */
	int slot = T.mem ? slot_take(T.srv_busy) : -1;
	pthread_mutex_unlock(&T.lock);
	if (!T.mem) {
		struct ml_buf b = ml_buf_plain(msg->data, msg->len);
		ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
		return;
	}
	/* The answer goes from the server's own region, held until acked. */
	CHECK(slot >= 0 && msg->len <= SLOT_SIZE, "no free server slot for %zu bytes", msg->len);
	memcpy(T.srv_mem + (size_t)slot * SLOT_SIZE, msg->data, msg->len);
	struct ml_buf b = slot_buf(T.srv_reg, T.srv_mem, slot, (uint32_t)msg->len);
	int rc = ml_respond(req, &b, 1, 0, response_acked, (void *)(uintptr_t)slot);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

/* ---- client: a window of requests, refilled from the completions ---- */

static void issue_locked(void);

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	double t = now_s();
	pthread_mutex_lock(&T.lock);
	T.inflight--;
	if (T.mem)
		T.cli_busy[T.slot_of[id]] = 0; /* its request was acked before its answer came */
	if (T.done[id]++)
		T.dup++;
	if (status != ML_OK) {
		T.failed++;
		fprintf(stderr, "request %" PRIu64 " failed: %s\n", id, ml_strerror(status));
	} else if (check_payload(resp->data, resp->len, id) != 0) {
		T.mismatched++;
	} else {
		T.ok++;
	}
	if (T.last_done && t - T.last_done > T.longest_gap) {
		T.longest_gap = t - T.last_done;
		T.t_gap_end = t;
	}
	T.last_done = t;
	issue_locked();
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.lock);
}

static void issue_locked(void)
{
	static uint8_t buf[1 << 20];
	while (T.issuing && T.inflight < T.window && T.issued < MAX_IDS) {
		uint64_t id = T.issued;
		uint32_t len = size_of(id);
		struct ml_buf b = ml_buf_plain(buf, len);
		int slot = -1;
		if (T.mem) { /* from the client's region, held until the answer */
			slot = slot_take(T.cli_busy);
			CHECK(slot >= 0, "no free client slot");
			fill(T.cli_mem + (size_t)slot * SLOT_SIZE, len, id);
			b = slot_buf(T.cli_reg, T.cli_mem, slot, len);
			T.slot_of[id] = (uint8_t)slot;
		} else {
			fill(buf, len, id); /* ML_SEND_COPY: buf is free again on return */
		}
		int rc = ml_request_send(T.peer, id, &b, 1, T.mem ? 0 : ML_SEND_COPY, answered,
					 (void *)(uintptr_t)id);
		if (rc == ML_EAGAIN) {
			if (slot >= 0)
				T.cli_busy[slot] = 0;
			return; /* the window is wider than the peer's queue: a completion refills */
		}
		CHECK(rc == ML_OK, "ml_request_send: %s", ml_strerror(rc));
		T.issued++;
		T.inflight++;
	}
}

static void on_path(void *arg, ml_peer *peer, unsigned idx, int old_state, int new_state,
		    const char *reason)
{
	(void)peer;
	double t = now_s();
	pthread_mutex_lock(&T.lock);
	if (arg == &T.cli && idx < MAXP) {
		T.state[idx] = new_state;
		if (new_state == ML_PATH_UP && old_state != ML_PATH_SUSPECT)
			T.came_up[idx] = t;
		if (old_state == ML_PATH_UP || old_state == ML_PATH_SUSPECT)
			if (new_state != ML_PATH_UP && new_state != ML_PATH_SUSPECT) {
				T.left_up[idx] = t;
				if (idx == 0)
					snprintf(T.down_reason, sizeof(T.down_reason), "%s", reason);
			}
	} else if (arg == &T.srv && new_state == ML_PATH_CLOSED && T.t_fault && !T.srv_left_up) {
		T.srv_left_up = t;
		snprintf(T.srv_reason, sizeof(T.srv_reason), "%s", reason);
	}
	if (new_state != ML_PATH_SUSPECT && old_state != ML_PATH_SUSPECT)
		fprintf(stderr, "  %7.3f %s path %u: %s -> %s (%s)\n", t, arg == &T.cli ? "client" : "server",
			idx, ml_path_state_name(old_state), ml_path_state_name(new_state), reason);
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.lock);
}

/* Wait (T.lock held) until what holds, at most secs: whether it does. */
#define WAITED(what, secs)                                                                 \
	({                                                                                 \
		struct timespec dl_;                                                       \
		clock_gettime(CLOCK_REALTIME, &dl_);                                       \
		dl_.tv_sec += (time_t)(secs);                                              \
		while (!(what) && pthread_cond_timedwait(&T.cond, &T.lock, &dl_) != ETIMEDOUT) \
			;                                                                  \
		(what);                                                                    \
	})

/* The same, where a deadline passed is a failure. */
#define WAIT_FOR(what, secs, ...) CHECK(WAITED(what, secs), __VA_ARGS__)

static int all_up(void)
{
	for (unsigned i = 0; i < T.npaths; i++)
		if (T.state[i] != ML_PATH_UP)
			return 0;
	return 1;
}

static void path_stats(ml_peer *p, struct ml_path_stats *ps, unsigned *n)
{
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(p, &st, ps, n) == ML_OK, "ml_peer_stats_get");
}

static uint64_t frames_sent(unsigned idx)
{
	struct ml_path_stats ps[MAXP];
	unsigned n = MAXP;
	path_stats(T.peer, ps, &n);
	return idx < n ? ps[idx].frames_sent : 0;
}

/* A shell command, or "lib:KIND": the library's fault KIND on path 0. */
static void run_cmd(const char *what, const char *cmd)
{
	fprintf(stderr, "  %7.3f %s: %s\n", now_s(), what, cmd);
	if (!strncmp(cmd, "lib:", 4)) {
		struct ml_fault_spec spec = { .fault = ml_fault_parse(cmd + 4) };
		CHECK(spec.fault != 0, "unknown fault '%s'", cmd + 4);
		int rc = ml_fault_set(T.peer, 0, &spec);
		CHECK(rc == ML_OK, "ml_fault_set %s: %s", cmd + 4, ml_strerror(rc));
		return;
	}
	int rc = system(cmd);
	CHECK(rc == 0, "'%s' exited with %d", cmd, rc);
}

/* Stop issuing, wait for the rest, and check that every request completed
 * exactly once, correctly, and reached the server's handler once. */
static void drain_and_check(void)
{
	T.issuing = 0;
	if (!WAITED(T.inflight == 0, 30)) { /* which, and how far each got: where to look */
		for (uint64_t i = 0; i < T.issued; i++)
			if (!T.done[i])
				fprintf(stderr, "request %" PRIu64 " outstanding: %s\n", i,
					T.served[i] ? "served, its answer never came"
						    : "never reached the server's handler");
		CHECK(0, "%u requests still outstanding 30 s after the load stopped", T.inflight);
	}
	uint64_t lost = 0;
	for (uint64_t i = 0; i < T.issued; i++)
		lost += T.done[i] == 0;
	printf("requests %" PRIu64 ": ok %" PRIu64 " failed %" PRIu64 " mismatched %" PRIu64
	       " lost %" PRIu64 " duplicated %" PRIu64 "\n",
	       T.issued, T.ok, T.failed, T.mismatched, lost, T.dup);
	CHECK(lost == 0 && T.dup == 0 && T.failed == 0 && T.mismatched == 0 && T.ok == T.issued,
	      "lost %" PRIu64 ", duplicated %" PRIu64 ", failed %" PRIu64 ", mismatched %" PRIu64, lost,
	      T.dup, T.failed, T.mismatched);
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The copy counters of every path of both ends, summed; and each path's. */
static void copies(uint64_t *copied, uint64_t *zcopy, int each_zcopy)
{
	ml_peer *ends[] = { T.peer, ml_peer_find(T.srv, CLI) };
	*copied = *zcopy = 0;
	for (unsigned e = 0; e < 2; e++) {
		struct ml_path_stats ps[MAXP];
		unsigned n = MAXP;
		path_stats(ends[e], ps, &n);
		for (unsigned i = 0; i < n && i < MAXP; i++) {
			printf("  %s path %u %s: bytes_copied %" PRIu64 " bytes_zcopy %" PRIu64 "\n",
			       e ? "server" : "client", i, ps[i].url, ps[i].bytes_copied, ps[i].bytes_zcopy);
			CHECK(!each_zcopy || ps[i].bytes_zcopy > 0, "path %u moved nothing by READ", i);
			*copied += ps[i].bytes_copied;
			*zcopy += ps[i].bytes_zcopy;
		}
	}
}

/* Registered: not a payload byte copied, every one moved by READ (sent
 * and read: twice per payload, at least). Plain: the reverse. */
static void check_copies(uint64_t bytes)
{
	uint64_t copied, zcopy;
	copies(&copied, &zcopy, T.mem == MEM_REGISTERED);
	printf("copies: %" PRIu64 " payload bytes both ways; copied %" PRIu64 ", by READ %" PRIu64 "\n",
	       bytes, copied, zcopy);
	if (T.mem == MEM_REGISTERED)
		CHECK(copied == 0 && zcopy >= 2 * bytes, "registered: copied %" PRIu64 ", by READ %" PRIu64
		      " (want 0 and >= %" PRIu64 ")", copied, zcopy, 2 * bytes);
	else
		CHECK(copied >= 2 * bytes && zcopy == 0, "plain: copied %" PRIu64 ", by READ %" PRIu64
		      " (want >= %" PRIu64 " and 0)", copied, zcopy, 2 * bytes);
}

static void scenario_rr(unsigned count)
{
	pthread_mutex_lock(&T.lock);
	double t0 = now_s(), c0 = cpu_s();
	T.issuing = 1;
	issue_locked();
	WAIT_FOR(T.ok + T.failed + T.mismatched >= count, 120, "only %" PRIu64 " of %u requests done",
		 T.ok, count);
	double secs = now_s() - t0, cpu = cpu_s() - c0;
	drain_and_check();
	pthread_mutex_unlock(&T.lock);
	uint64_t bytes = 0;
	for (uint64_t i = 0; i < T.issued; i++)
		bytes += 2ull * size_of(i);
	printf("rr: %" PRIu64 " requests of %s in %.2f s (%.1f MB/s both ways), CPU %.2f s: "
	       "%.1f ms per MiB\n", T.issued, T.mem ? "64 KiB..1 MiB" : "64 B..1 MiB", secs,
	       bytes / secs / 1e6, cpu, cpu * 1e3 / (bytes / 1048576.0));
	if (T.mem)
		check_copies(bytes);
	struct ml_path_stats ps[MAXP];
	unsigned n = MAXP;
	path_stats(T.peer, ps, &n);
	for (unsigned i = 0; i < n; i++) {
		printf("  path %u %s: %" PRIu64 " data frames sent, %" PRIu64 " received\n", i, ps[i].url,
		       ps[i].frames_sent, ps[i].frames_recv);
		CHECK(ps[i].frames_sent > 0 && ps[i].frames_recv > 0, "path %u carried no data", i);
	}
}

static void scenario_failover(const char *fault, const char *clear, const char *expect,
			      const char *expect_srv, unsigned min_failures, unsigned load)
{
	pthread_mutex_lock(&T.lock);
	T.issuing = 1;
	issue_locked();
	WAIT_FOR(T.ok >= load, 60, "the load does not start (%" PRIu64 " done)", T.ok);
	CHECK(frames_sent(0) > 0, "path 0 carried nothing before the fault");
	/* The fault is timed from path 0's leaving "up": it must be up when
	 * it comes. Under TCG a path can be declared down by its heartbeats
	 * before the fault (READs in the send queue hold them up) and be in
	 * probation when the fault hits; it did once in CI, and the test then
	 * waited for a departure from "up" that had happened before. */
	WAIT_FOR(T.state[0] == ML_PATH_UP, UP_WAIT_S, "path 0 not up before the fault");
	pthread_mutex_unlock(&T.lock);

	pthread_mutex_lock(&T.lock);
	double t_fault = T.t_fault = now_s();
	pthread_mutex_unlock(&T.lock);
	run_cmd("fault", fault);
	double t_fault_done = now_s(); /* iptables alone takes a good part of a second in the VM */
	pthread_mutex_lock(&T.lock);
	WAIT_FOR(T.left_up[0] > t_fault, 30, "path 0 is still up 30 s after the fault");
	double detect = T.left_up[0] - t_fault;
	CHECK(!expect || strstr(T.down_reason, expect), "path 0 went down for '%s', not '%s'",
	      T.down_reason, expect);
	if (expect_srv) {
		WAIT_FOR(T.srv_left_up > 0, 30, "the server's end of path 0 still open 30 s after the fault");
		CHECK(strstr(T.srv_reason, expect_srv), "the server's end of path 0 closed for '%s', not '%s'",
		      T.srv_reason, expect_srv);
	}
	uint64_t ok_at_down = T.ok;
	/* The others carry the load meanwhile: a second's worth, at least. */
	WAIT_FOR(T.ok >= ok_at_down + 2 * load / 3, 30, "requests stopped while path 0 was down (%" PRIu64
		 " since)", T.ok - ok_at_down);
	uint64_t during = T.ok - ok_at_down;
	pthread_mutex_unlock(&T.lock);

	double t_clear = now_s();
	run_cmd("clear", clear);
	/* Back after it went down: a reset comes back by itself, even before
	 * the clear (which is then a no-op). */
	pthread_mutex_lock(&T.lock);
	WAIT_FOR(T.came_up[0] > T.left_up[0] && T.state[0] == ML_PATH_UP, UP_WAIT_S,
		 "path 0 not back %.0f s after the fault was cleared", UP_WAIT_S);
	double back = T.came_up[0] - t_clear;
	pthread_mutex_unlock(&T.lock);
	uint64_t sent_back = frames_sent(0);
	pthread_mutex_lock(&T.lock);
	uint64_t ok_back = T.ok;
	WAIT_FOR(T.ok >= ok_back + 5 * load / 3, 60, "the load stalled after path 0 came back");
	pthread_mutex_unlock(&T.lock);
	CHECK(frames_sent(0) > sent_back, "path 0 carries no data since it came back");
	pthread_mutex_lock(&T.lock);
	drain_and_check();
	pthread_mutex_unlock(&T.lock);
	struct ml_path_stats p0[MAXP];
	unsigned np0 = MAXP;
	path_stats(T.peer, p0, &np0);
	printf("failover: path 0 failed %" PRIu64 " times (%" PRIu64 " flaps, %" PRIu64
	       " probations)\n", p0[0].failures, p0[0].flaps, p0[0].probations);
	CHECK(p0[0].failures >= min_failures, "path 0 failed %" PRIu64 " times, not %u at least",
	      p0[0].failures, min_failures);
	if (T.mem == MEM_REGISTERED) {
		/* What was in flight on path 0 went again elsewhere (as RDESC on
		 * RDMA, as DATA on TCP); never through a bounce buffer. */
		struct ml_path_stats ps[MAXP];
		unsigned n = MAXP;
		uint64_t copied, zcopy;
		path_stats(T.peer, ps, &n);
		printf("failover: path 0 had %" PRIu64 " fragments in flight when it failed, %" PRIu64
		       " resent\n", ps[0].frames_failed_inflight, ps[0].frames_resent);
		copies(&copied, &zcopy, 0);
		CHECK(copied == 0 && zcopy > 0, "registered: copied %" PRIu64 ", by READ %" PRIu64, copied,
		      zcopy);
	}
	pthread_mutex_lock(&T.lock);
	printf("failover: the fault command ran %.3f s; path 0 down %.3f s after it started "
	       "(%.3f s after it returned; server side %.3f s) for \"%s\"; %" PRIu64
	       " requests completed on the other path meanwhile; back %.3f s after the clear; "
	       "longest stall %.1f ms (ended %.3f s after the fault started)\n",
	       t_fault_done - t_fault, detect, T.left_up[0] - t_fault_done,
	       T.srv_left_up ? T.srv_left_up - t_fault : -1.0, T.down_reason, during, back,
	       T.longest_gap * 1e3, T.t_gap_end - t_fault);
	pthread_mutex_unlock(&T.lock);
}

static void usage(void)
{
	fprintf(stderr, "usage: test_rdma rr|failover --listen URL... --peer URL... [--count N]\n"
			"                 [--fault CMD --clear CMD [--expect-reason TEXT]\n"
			"                  [--expect-server-reason TEXT] [--min-failures N]]\n"
			"                 [--path-down S] [--mem registered|plain] [--size N] [--load N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *listen[MAXP], *peers[MAXP], *fault = NULL, *clear = NULL, *expect = NULL,
		   *expect_srv = NULL;
	unsigned nl = 0, np = 0, count = 500, load = 300, min_failures = 1;
	T.size = 4096;
	double path_down = 0;
	if (argc < 2 || argc % 2 != 0) /* a mode, then options with a value each */
		usage();
	T.rr = !strcmp(argv[1], "rr");
	if (!T.rr && strcmp(argv[1], "failover"))
		usage();
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen") && nl < MAXP)
			listen[nl++] = argv[i + 1];
		else if (!strcmp(argv[i], "--peer") && np < MAXP)
			peers[np++] = argv[i + 1];
		else if (!strcmp(argv[i], "--fault"))
			fault = argv[i + 1];
		else if (!strcmp(argv[i], "--clear"))
			clear = argv[i + 1];
		else if (!strcmp(argv[i], "--expect-reason"))
			expect = argv[i + 1];
		else if (!strcmp(argv[i], "--expect-server-reason"))
			expect_srv = argv[i + 1];
		else if (!strcmp(argv[i], "--min-failures"))
			min_failures = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--path-down"))
			path_down = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--mem") && !strcmp(argv[i + 1], "registered"))
			T.mem = MEM_REGISTERED;
		else if (!strcmp(argv[i], "--mem") && !strcmp(argv[i + 1], "plain"))
			T.mem = MEM_PLAIN;
		else if (!strcmp(argv[i], "--size") && atoi(argv[i + 1]) > 8 &&
			 atoi(argv[i + 1]) <= (int)SLOT_SIZE)
			T.size = (uint32_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--load") && atoi(argv[i + 1]) >= 3)
			load = (unsigned)atoi(argv[i + 1]);
		else
			usage();
	}
	if (!nl || !np || (!T.rr && (!fault || !clear)))
		usage();
	T.npaths = np;
	T.window = T.rr ? 4 : 16;
	T.done = calloc(MAX_IDS, 1);
	T.served = calloc(MAX_IDS, 1);
	T.slot_of = calloc(MAX_IDS, 1);
	T.cli_mem = malloc((size_t)SLOTS * SLOT_SIZE);
	T.srv_mem = malloc((size_t)SLOTS * SLOT_SIZE);
	CHECK(T.done && T.served && T.slot_of && T.cli_mem && T.srv_mem, "out of memory");

	struct ml_config cfg;
	ml_config_init(&cfg);
	cfg.node_id = SRV;
	cfg.on_request = serve;
	cfg.on_path_event = on_path;
	cfg.cb_arg = &T.srv;
	cfg.path_down_s = path_down;
	CHECK(ml_ctx_create(&cfg, &T.srv) == ML_OK, "server context");
	for (unsigned i = 0; i < nl; i++) {
		int rc = ml_listen(T.srv, listen[i]);
		CHECK(rc == ML_OK, "ml_listen %s: %s", listen[i], ml_strerror(rc));
	}
	ml_config_init(&cfg);
	cfg.node_id = CLI;
	cfg.on_path_event = on_path;
	cfg.cb_arg = &T.cli;
	cfg.path_down_s = path_down;
	CHECK(ml_ctx_create(&cfg, &T.cli) == ML_OK, "client context");
	/* Registered before any path is up: the devices, opened by the first
	 * connections, register them then. */
	if (T.mem == MEM_REGISTERED) {
		CHECK(ml_mem_register(T.cli, T.cli_mem, (size_t)SLOTS * SLOT_SIZE, &T.cli_reg) == ML_OK,
		      "client region");
		CHECK(ml_mem_register(T.srv, T.srv_mem, (size_t)SLOTS * SLOT_SIZE, &T.srv_reg) == ML_OK,
		      "server region");
	}
	int rc = ml_peer_add(T.cli, SRV, peers, np, &T.peer);
	CHECK(rc == ML_OK, "ml_peer_add: %s", ml_strerror(rc));

	pthread_mutex_lock(&T.lock);
	WAIT_FOR(all_up(), UP_WAIT_S, "not every path came up within %.0f s", UP_WAIT_S);
	pthread_mutex_unlock(&T.lock);
	if (T.rr)
		scenario_rr(count);
	else
		scenario_failover(fault, clear, expect, expect_srv, min_failures, load);
	ml_ctx_destroy(T.cli);
	ml_ctx_destroy(T.srv);
	ml_mem_unregister(T.cli_reg);
	ml_mem_unregister(T.srv_reg);
	free(T.done);
	free(T.served);
	free(T.slot_of);
	free(T.cli_mem);
	free(T.srv_mem);
	printf("PASS test_rdma %s\n", argv[1]);
	return 0;
}
