/*
 * test_pubsub.c - discovery against a real single-node Corosync.
 *
 * Run by tests/corosync/test_pubsub.sh, which starts a private Corosync in a
 * network namespace (cs.sh up1) and runs this binary next to it; run alone
 * it prints SKIP. In one process, on one libev loop, a publisher handle and
 * a subscriber handle: publish, snapshot, update, withdraw, late subscriber,
 * filters, destroying the publisher; publisher child processes that exit
 * cleanly or are killed (CPG leave); a backend child with a message-layer
 * context, to which a subscriber opens a session from the record
 * (connect_publishers), killed with requests outstanding: each fails with
 * ML_EPEERDOWN at once; then Corosync is stopped (error
 * reported, view emptied, "Corosync not running" at create) and started
 * again (reconnect and re-publish). Prints the latencies it measures.
 */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "msglayer.h"
#include "../../pubsub/mlpubsub.h"

static struct ev_loop *loop;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- what a subscriber saw ---------------------------------------------- */

struct seen {
	int event, reason;
	char name[64];
	uint32_t node, pid;
	uint64_t version, size;
	int ro;
	double at;
	int has_old;
};

struct subscriber {
	const char *label;
	struct seen ev[128];
	unsigned n;
};

static void on_event(void *arg, mlps_sub *sub, int event, int reason,
		     const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	struct subscriber *s = arg;
	CHECK(s->n < 128, "too many events");
	struct seen *e = &s->ev[s->n++];
	e->event = event;
	e->reason = reason;
	snprintf(e->name, sizeof(e->name), "%s", rec->name);
	e->node = rec->node_id;
	e->pid = rec->pid;
	e->version = rec->version;
	const struct mlps_attr *a = mlps_record_attr(rec, "size");
	e->size = a ? a->v.u64 : 0;
	a = mlps_record_attr(rec, "ro");
	e->ro = a ? a->v.b : -1;
	e->at = now();
	e->has_old = old != NULL;
	printf("  %-5s %-7s %-18s %-12s v%llu node %u pid %u\n", s->label,
	       event == MLPS_ADDED ? "added" : event == MLPS_CHANGED ? "changed" : "removed",
	       mlps_reason_name(reason), rec->name, (unsigned long long)rec->version,
	       rec->node_id, rec->pid);
	if (event == MLPS_ADDED)
		CHECK(rec->n_endpoints >= 1 || !strncmp(rec->name, "fs/", 3), "endpoints lost");
}

/* ---- running the loop until something happened ---------------------------- */

static void timeout_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

/* Run the loop until cond(arg) holds; fail after timeout_s. */
static void wait_until(int (*cond)(void *), void *arg, double timeout_s, const char *what)
{
	double end = now() + timeout_s;
	ev_timer t;
	ev_timer_init(&t, timeout_cb, 0.01, 0.01);
	ev_timer_start(loop, &t);
	while (!cond(arg)) {
		CHECK(now() < end, "timed out after %.1f s waiting for %s", timeout_s, what);
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &t);
}

static int count_at_least(void *arg)
{
	void **a = arg;
	return ((struct subscriber *)a[0])->n >= (unsigned)(size_t)a[1];
}

static void wait_events(struct subscriber *s, unsigned n, const char *what)
{
	void *a[2] = { s, (void *)(size_t)n };
	wait_until(count_at_least, a, 10, what);
}

/* Let the loop run a little: nothing more may arrive. */
static void settle(double s)
{
	double end = now() + s;
	ev_timer t;
	ev_timer_init(&t, timeout_cb, s, 0.);
	ev_timer_start(loop, &t);
	while (now() < end)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
}

static void expect(struct subscriber *s, unsigned i, int event, int reason, const char *name)
{
	CHECK(i < s->n, "%s: event %u missing", s->label, i);
	struct seen *e = &s->ev[i];
	CHECK(e->event == event && e->reason == reason && !strcmp(e->name, name),
	      "%s: event %u is %d/%s %s, want %d/%s %s", s->label, i, e->event,
	      mlps_reason_name(e->reason), e->name, event, mlps_reason_name(reason), name);
}

/* ---- Corosync state callbacks ------------------------------------------------- */

struct cs_state {
	int ups, downs, last_status;
	double down_at, up_at;
	char text[256];
};

static void on_corosync(void *arg, int up, int status, const char *text)
{
	struct cs_state *st = arg;
	printf("  corosync %s: %s\n", up ? "up" : "down", text);
	if (up) {
		st->ups++;
		st->up_at = now();
	} else {
		st->downs++;
		st->down_at = now();
		st->last_status = status;
		snprintf(st->text, sizeof(st->text), "%s", text);
	}
}

static int is_connected(void *arg)
{
	return mlps_connected(arg);
}

static int downs_seen(void *arg)
{
	return ((struct cs_state *)arg)->downs > 0;
}

static int ups_at_least_2(void *arg)
{
	return ((struct cs_state *)arg)->ups >= 2;
}

/* ---- a publisher in a child process --------------------------------------------- */

static void child_term(struct ev_loop *l, ev_signal *w, int revents)
{
	(void)revents;
	mlps_destroy(w->data); /* clean exit: CPG leave */
	ev_break(l, EVBREAK_ALL);
}

static int child_main(const char *name)
{
	struct ev_loop *l = ev_default_loop(0);
	mlps *ps;
	int rc = mlps_create(l, NULL, &ps);
	if (rc) {
		fprintf(stderr, "child: mlps_create: %s: %s\n", mlps_strerror(rc), mlps_last_error());
		return 1;
	}
	/* The handler first: the parent may send SIGTERM as soon as it sees
	 * the record, which can be before ev_run starts. */
	ev_signal sig;
	ev_signal_init(&sig, child_term, SIGTERM);
	sig.data = ps;
	ev_signal_start(l, &sig);
	struct mlps_attr a[] = { mlps_attr_u64("size", 1u << 30), mlps_attr_bool("ro", 0) };
	const char *eps[] = { "tcp://127.0.0.1:7500" };
	rc = mlps_publish(ps, name, a, 2, eps, 1);
	if (rc) {
		fprintf(stderr, "child: mlps_publish: %s\n", mlps_last_error());
		return 1;
	}
	ev_run(l, 0);
	return 0;
}

/* A backend: a message-layer context that takes requests and never
 * answers, published with its endpoint and node id (msg_ctx). */
#define BACKEND_NODE 20
#define FRONTEND_NODE 10

static void backend_hold(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	(void)req; /* held until the process dies */
	(void)msg;
}

static int backend_main(const char *name)
{
	struct ev_loop *l = ev_default_loop(0);
	struct ml_config mc;
	ml_config_init(&mc);
	mc.node_id = BACKEND_NODE;
	mc.on_request = backend_hold;
	ml_ctx *ctx;
	if (ml_ctx_create(&mc, &ctx) || ml_listen(ctx, "tcp://127.0.0.1:0")) {
		fprintf(stderr, "backend: no message-layer context\n");
		return 1;
	}
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(ctx, 0));
	const char *eps[] = { url };
	struct mlps_config cfg;
	mlps_config_init(&cfg);
	cfg.msg_ctx = ctx;
	mlps *ps;
	if (mlps_create(l, &cfg, &ps) || mlps_publish(ps, name, NULL, 0, eps, 1)) {
		fprintf(stderr, "backend: %s\n", mlps_last_error());
		return 1;
	}
	ev_run(l, 0); /* until killed */
	return 0;
}

static const char *self_path = "/proc/self/exe";

static pid_t spawn_child_as(const char *role, const char *name)
{
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		execl(self_path, "test_pubsub", role, name, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static pid_t spawn_child(const char *name)
{
	return spawn_child_as("--child", name);
}

/* ---- a frontend: sessions from discovery, ML_EPEERDOWN on failure --------------- */

struct frontend {
	ml_peer *peer;       /* from the record (connect_publishers) */
	uint32_t ml_node;
	unsigned endpoints;
	int removed;
	int done, peerdown, other;
	double last_done_at;
};

static void frontend_event(void *arg, mlps_sub *sub, int event, int reason,
			   const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	(void)reason;
	(void)old;
	struct frontend *f = arg;
	if (event == MLPS_ADDED) {
		f->peer = rec->peer;
		f->ml_node = rec->ml_node_id;
		f->endpoints = rec->n_endpoints;
	} else if (event == MLPS_REMOVED) {
		f->removed++;
	}
}

static void frontend_answer(void *arg, int status, const struct ml_msg *resp)
{
	(void)resp;
	struct frontend *f = arg;
	f->done++;
	if (status == ML_EPEERDOWN)
		f->peerdown++;
	else
		f->other++;
	f->last_done_at = now();
}

static int frontend_has_peer(void *arg)
{
	return ((struct frontend *)arg)->peer != NULL;
}

#define FRONTEND_REQS 5

static int requests_held(void *arg)
{
	struct frontend *f = arg;
	struct ml_peer_stats st;
	return ml_peer_stats_get(f->peer, &st, NULL, NULL) == 0 &&
	       st.requests_pending == FRONTEND_REQS && st.inflight_msgs == 0;
}

static int frontend_all_done(void *arg)
{
	return ((struct frontend *)arg)->done == FRONTEND_REQS;
}

/* Returns the time from kill -9 to the last ML_EPEERDOWN. */
static double test_frontend_peerdown(void)
{
	struct ml_config mc;
	ml_config_init(&mc);
	mc.node_id = FRONTEND_NODE;
	mc.loop = loop; /* embedded: callbacks on this thread */
	ml_ctx *cli;
	CHECK(ml_ctx_create(&mc, &cli) == ML_OK, "frontend context");
	struct mlps_config cfg;
	mlps_config_init(&cfg);
	cfg.msg_ctx = cli;
	cfg.connect_publishers = 1;
	mlps *fh;
	CHECK(mlps_create(loop, &cfg, &fh) == 0, "frontend handle: %s", mlps_last_error());
	struct frontend f = { 0 };
	mlps_sub *fs;
	CHECK(mlps_subscribe(fh, "backend/", NULL, frontend_event, &f, &fs) == 0, "subscribe");
	pid_t b = spawn_child_as("--backend", "backend/vol0");
	wait_until(frontend_has_peer, &f, 10, "the backend's record, with a session");
	CHECK(f.ml_node == BACKEND_NODE && ml_peer_node_id(f.peer) == BACKEND_NODE &&
	      f.endpoints == 1, "record: ml node %u, peer node %u, %u endpoints", f.ml_node,
	      ml_peer_node_id(f.peer), f.endpoints);
	for (int i = 0; i < FRONTEND_REQS; i++) {
		struct ml_buf buf = ml_buf_plain("read", 4);
		CHECK(ml_request_send(f.peer, (uint64_t)i, &buf, 1, ML_SEND_COPY, frontend_answer, &f) ==
			      ML_OK, "request");
	}
	wait_until(requests_held, &f, 10, "the backend holds every request");
	double t_kill = now();
	kill(b, SIGKILL);
	wait_until(frontend_all_done, &f, 10, "every request completes after the backend died");
	double took = f.last_done_at - t_kill;
	CHECK(f.peerdown == FRONTEND_REQS && f.other == 0, "%d of %d requests ML_EPEERDOWN, %d other",
	      f.peerdown, FRONTEND_REQS, f.other);
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(f.peer, &st, NULL, NULL) == 0 && st.declared_down == 1,
	      "declared_down %llu", (unsigned long long)st.declared_down);
	CHECK(f.removed == 1, "the record was removed: %d", f.removed);
	int ws;
	waitpid(b, &ws, 0);
	mlps_destroy(fh);
	ml_ctx_destroy(cli);
	printf("frontend: %d requests held by a backend killed with -9 -> ML_EPEERDOWN in %.1f ms "
	       "(without discovery: the session timeout, 30 s)\n", FRONTEND_REQS, took * 1e3);
	return took;
}

static int run_cs(const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s %s", getenv("MLPS_TEST_CS"), args);
	return system(cmd);
}

/* ---- the test ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child_main(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--backend"))
		return backend_main(argv[2]);
	if (!getenv("MLPS_TEST_CS")) {
		printf("SKIP test_pubsub: needs a private Corosync: run tests/corosync/test_pubsub.sh\n");
		return 0;
	}
	/* argv[0], not /proc/self/exe: under valgrind that is valgrind itself */
	if (strchr(argv[0], '/'))
		self_path = argv[0];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(0);

	struct cs_state pst = { 0 }, sst = { 0 };
	struct mlps_config cfg;
	mlps *pub, *subh;
	mlps_config_init(&cfg);
	cfg.on_corosync = on_corosync;
	cfg.cb_arg = &pst;
	double t0 = now();
	int rc = mlps_create(loop, &cfg, &pub);
	CHECK(rc == 0, "mlps_create: %s: %s", mlps_strerror(rc), mlps_last_error());
	double t_create = now() - t0;
	cfg.cb_arg = &sst;
	rc = mlps_create(loop, &cfg, &subh); /* shares the process's CPG member */
	CHECK(rc == 0, "mlps_create 2: %s: %s", mlps_strerror(rc), mlps_last_error());
	wait_until(is_connected, pub, 5, "join");
	printf("create %.1f ms, joined %.1f ms after create; node id %u\n", t_create * 1e3,
	       (now() - t0) * 1e3, mlps_node_id(pub));
	CHECK(mlps_node_id(pub) == 1, "node id %u", mlps_node_id(pub));
	CHECK(pst.ups == 1, "on_corosync(up) at join: %d", pst.ups);

	/* bad arguments give clear errors */
	mlps_sub *bad;
	CHECK(mlps_subscribe(subh, "block//x", NULL, on_event, NULL, &bad) == ML_EINVAL, "pattern");
	CHECK(strstr(mlps_last_error(), "empty component"), "%s", mlps_last_error());
	CHECK(mlps_subscribe(subh, NULL, "size >= ", on_event, NULL, &bad) == ML_EINVAL, "filter");
	CHECK(strstr(mlps_last_error(), "expected a value"), "%s", mlps_last_error());
	CHECK(mlps_publish(pub, "block/", NULL, 0, NULL, 0) == ML_EINVAL, "name");
	CHECK(mlps_update(pub, "nope", NULL, 0, NULL, 0) == ML_ENOENT, "update unknown");
	CHECK(mlps_withdraw(pub, "nope") == ML_ENOENT, "withdraw unknown");

	/* 1. subscribe (empty snapshot), publish, see it arrive */
	struct subscriber s1 = { .label = "s1" };
	mlps_sub *sub1;
	CHECK(mlps_subscribe(subh, "block/", NULL, on_event, &s1, &sub1) == 0, "subscribe");
	CHECK(s1.n == 0, "empty snapshot");
	const char *eps[] = { "tcp://127.0.0.1:7400", "tcp://127.0.0.2:7400" };
	struct mlps_attr a0[] = { mlps_attr_u64("size", 2ull << 30), mlps_attr_bool("ro", 0),
				  mlps_attr_str("proto", "nvme") };
	struct mlps_attr a1[] = { mlps_attr_u64("size", 1u << 20), mlps_attr_bool("ro", 0) };
	double t_pub = now();
	CHECK(mlps_publish(pub, "block/vol0", a0, 3, eps, 2) == 0, "publish: %s", mlps_last_error());
	CHECK(mlps_publish(pub, "block/vol0", a0, 3, eps, 2) == ML_EEXIST, "publish twice");
	CHECK(mlps_publish(pub, "block/vol1", a1, 2, eps, 1) == 0, "publish vol1");
	CHECK(mlps_publish(pub, "fs/home", NULL, 0, NULL, 0) == 0, "publish fs/home");
	wait_events(&s1, 2, "two added");
	double lat_pub = s1.ev[0].at - t_pub;
	expect(&s1, 0, MLPS_ADDED, MLPS_R_PUBLISHED, "block/vol0");
	expect(&s1, 1, MLPS_ADDED, MLPS_R_PUBLISHED, "block/vol1");
	CHECK(s1.ev[0].size == 2ull << 30 && s1.ev[0].node == 1 && s1.ev[0].pid == (uint32_t)getpid(),
	      "record content");

	/* 2. update: changed, with the old record */
	struct mlps_attr a0b[] = { mlps_attr_u64("size", 3ull << 30), mlps_attr_bool("ro", 0),
				   mlps_attr_str("proto", "nvme") };
	double t_upd = now();
	CHECK(mlps_update(pub, "block/vol0", a0b, 3, NULL, 0) == 0, "update");
	wait_events(&s1, 3, "changed");
	double lat_upd = s1.ev[2].at - t_upd;
	expect(&s1, 2, MLPS_CHANGED, MLPS_R_UPDATED, "block/vol0");
	CHECK(s1.ev[2].size == 3ull << 30 && s1.ev[2].has_old, "changed record");

	/* 3. withdraw: removed */
	CHECK(mlps_withdraw(pub, "block/vol1") == 0, "withdraw");
	wait_events(&s1, 4, "removed");
	expect(&s1, 3, MLPS_REMOVED, MLPS_R_WITHDRAWN, "block/vol1");

	/* 4. a late subscriber with a filter: snapshot of the matches only */
	struct subscriber s2 = { .label = "s2" };
	mlps_sub *sub2;
	CHECK(mlps_subscribe(subh, "**", "size>=1073741824 && ro=false", on_event, &s2, &sub2) == 0,
	      "subscribe 2: %s", mlps_last_error());
	CHECK(s2.n == 1, "late snapshot: %u events", s2.n);
	expect(&s2, 0, MLPS_ADDED, MLPS_R_SNAPSHOT, "block/vol0");
	struct subscriber s3 = { .label = "s3" }; /* everything */
	mlps_sub *sub3;
	CHECK(mlps_subscribe(subh, NULL, NULL, on_event, &s3, &sub3) == 0, "subscribe 3");
	CHECK(s3.n == 2, "snapshot of all: %u", s3.n);

	/* 5. filters: an update makes vol0 fail s2's filter; a new big volume passes */
	struct mlps_attr a0c[] = { mlps_attr_u64("size", 3ull << 30), mlps_attr_bool("ro", 1) };
	CHECK(mlps_update(pub, "block/vol0", a0c, 2, NULL, 0) == 0, "update ro");
	struct mlps_attr abig[] = { mlps_attr_u64("size", 4ull << 30), mlps_attr_bool("ro", 0) };
	struct mlps_attr asmall[] = { mlps_attr_u64("size", 4096), mlps_attr_bool("ro", 0) };
	CHECK(mlps_publish(pub, "block/big", abig, 2, eps, 1) == 0, "publish big");
	CHECK(mlps_publish(pub, "block/small", asmall, 2, eps, 1) == 0, "publish small");
	wait_events(&s1, 7, "s1: vol0 changed, big and small added");
	wait_events(&s2, 3, "s2: vol0 removed, big added");
	expect(&s2, 1, MLPS_REMOVED, MLPS_R_NO_LONGER_MATCHES, "block/vol0");
	expect(&s2, 2, MLPS_ADDED, MLPS_R_PUBLISHED, "block/big");
	settle(0.1);
	CHECK(s2.n == 3, "s2 must not see block/small: %u events", s2.n);

	/* 6. unsubscribe: no more events */
	mlps_unsubscribe(sub3);
	unsigned s3n = s3.n;

	/* 7. destroying the publisher handle removes its resources here */
	double t_destroy = now();
	mlps_destroy(pub);
	wait_events(&s1, 10, "s1: vol0, big, small removed");
	double lat_destroy = s1.ev[9].at - t_destroy;
	for (unsigned i = 7; i < 10; i++)
		CHECK(s1.ev[i].event == MLPS_REMOVED && s1.ev[i].reason == MLPS_R_WITHDRAWN,
		      "s1 event %u", i);
	wait_events(&s2, 4, "s2: big removed");
	expect(&s2, 3, MLPS_REMOVED, MLPS_R_WITHDRAWN, "block/big");
	CHECK(s3.n == s3n, "unsubscribed s3 got events");

	/* 8. publishers in other processes: a clean exit and a kill -9 both
	 * remove their resources (CPG leave) */
	pid_t c1 = spawn_child("block/child1");
	wait_events(&s1, 11, "child1 added");
	expect(&s1, 10, MLPS_ADDED, MLPS_R_PUBLISHED, "block/child1");
	CHECK(s1.ev[10].pid == (uint32_t)c1, "child pid");
	double t_term = now();
	kill(c1, SIGTERM);
	wait_events(&s1, 12, "child1 removed");
	expect(&s1, 11, MLPS_REMOVED, MLPS_R_PUBLISHER_LEFT, "block/child1");
	double lat_leave = s1.ev[11].at - t_term;
	int st;
	CHECK(waitpid(c1, &st, 0) == c1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child1 exit");

	pid_t c2 = spawn_child("block/child2");
	wait_events(&s1, 13, "child2 added");
	double t_kill = now();
	kill(c2, SIGKILL);
	wait_events(&s1, 14, "child2 removed");
	expect(&s1, 13, MLPS_REMOVED, MLPS_R_PUBLISHER_LEFT, "block/child2");
	double lat_kill = s1.ev[13].at - t_kill;
	waitpid(c2, &st, 0);

	/* 8b. sessions from discovery, failed by it */
	double lat_peerdown = test_frontend_peerdown();

	/* 9. the subscriber handle publishes too: re-published after reconnect */
	CHECK(mlps_publish(subh, "block/mine", asmall, 2, eps, 1) == 0, "publish mine");
	wait_events(&s1, 15, "mine added");

	/* 10. Corosync stops: reported, view emptied */
	pid_t cs_pid = (pid_t)atoi(getenv("MLPS_TEST_COROSYNC_PID") ? getenv("MLPS_TEST_COROSYNC_PID") : "0");
	CHECK(cs_pid > 0, "MLPS_TEST_COROSYNC_PID");
	double t_stop = now();
	CHECK(kill(cs_pid, SIGTERM) == 0, "kill corosync");
	wait_until(downs_seen, &sst, 10, "on_corosync(down)");
	double lat_down = sst.down_at - t_stop;
	CHECK(sst.last_status == MLPS_ECOROSYNC && strstr(sst.text, "CS_ERR"), "down: %d %s",
	      sst.last_status, sst.text);
	CHECK(!mlps_connected(subh), "still connected");
	wait_events(&s1, 16, "mine removed (disconnected)");
	expect(&s1, 15, MLPS_REMOVED, MLPS_R_DISCONNECTED, "block/mine");
	/* while it is down, a handle on another group cannot be made */
	mlps *other;
	struct mlps_config ocfg;
	mlps_config_init(&ocfg);
	ocfg.group = "msglayer-other";
	ocfg.log = NULL;
	rc = mlps_create(loop, &ocfg, &other);
	CHECK(rc == MLPS_ECOROSYNC, "create without Corosync: %d", rc);
	printf("create without Corosync: %s: %s\n", mlps_strerror(rc), mlps_last_error());
	CHECK(strstr(mlps_last_error(), "CS_ERR_LIBRARY"), "%s", mlps_last_error());
	/* ... unless asked to wait for it */
	ocfg.wait_for_corosync = 1;
	CHECK(mlps_create(loop, &ocfg, &other) == 0, "create with wait_for_corosync");
	CHECK(!mlps_connected(other), "other connected");

	/* 11. Corosync comes back: reconnect and re-publish */
	CHECK(run_cs("kill 0 TERM") == 0, "cs.sh kill");
	double t_start = now();
	CHECK(run_cs("start 0") == 0, "cs.sh start");
	wait_until(ups_at_least_2, &sst, 15, "on_corosync(up) after restart");
	double lat_up = sst.up_at - t_start;
	wait_events(&s1, 17, "mine re-published");
	expect(&s1, 16, MLPS_ADDED, MLPS_R_PUBLISHED, "block/mine");
	wait_until(is_connected, other, 5, "the waiting handle joins");

	printf("RESULT publish->subscriber callback %.2f ms, update %.2f ms, handle destroy->removed "
	       "%.2f ms, child exit->removed %.2f ms, child kill -9->removed %.2f ms\n",
	       lat_pub * 1e3, lat_upd * 1e3, lat_destroy * 1e3, lat_leave * 1e3, lat_kill * 1e3);
	printf("RESULT backend kill -9 -> outstanding requests ML_EPEERDOWN %.2f ms\n",
	       lat_peerdown * 1e3);
	printf("RESULT corosync SIGTERM->on_corosync(down) %.1f ms, corosync start->rejoined %.0f ms\n",
	       lat_down * 1e3, lat_up * 1e3);

	mlps_destroy(other);
	mlps_unsubscribe(sub1);
	mlps_destroy(subh); /* sub2 goes with it */
	printf("test_pubsub: 1 passed, 0 failed\n");
	return 0;
}
