/*
 * test_session.c - session edge cases through the public API.
 *
 * Every scenario has a fresh libev loop. Scenarios 1-6 and 8 run in embedded
 * mode: that loop carries both the server and the client context, and the
 * test turns it itself (run_until), so every step is deterministic. A deadline
 * in run_until is a failure, never a synchronisation. Scenario 7 puts the
 * server in worker mode and answers from a thread of the application's own.
 *
 *   1. basic_embedded: request/response of 0 B .. 5 MiB from ML_BUF_IOV lists,
 *      a one-way message, tags, exact counters
 *   2. peer_restart (rule 6): held requests fail with ML_EPEERRESTART when the
 *      server comes back as a new incarnation on the same port
 *   3. session_timeout (rules 6, 7): no path at all -> ML_ETIMEDOUT
 *   4. flow_control: max_inflight + max_queued admitted, ML_EAGAIN, on_room once
 *      per refusal episode, everything delivered once the peer appears
 *   5. too_big_and_bad_args: immediate errors as msglayer.h documents them, and
 *      the later ones (bad answers, messages over the peer's max_msg_size)
 *   6. hostile_connections: garbage and bad HELLOs get CLOSE(status) + EOF, and
 *      the server keeps serving
 *   7. respond_from_other_thread: ml_respond from a non-worker thread
 *   8. requester_restart (rule 6): answers to requests of a client that
 *      restarted fail with ML_EPEERRESTART and never reach its new incarnation
 *   9. declared_down: ml_peer_declare_down fails what is outstanding (sent and
 *      queued, and answers still owed) with ML_EPEERDOWN at once; the next send works
 *  10. signals_stay_with_the_application: worker threads block every signal
 *  11. max_peers: past the limit a connecting node gets CLOSE(ML_ELIMIT) and
 *      ml_peer_add fails with ML_ELIMIT; the peer there is keeps working
 *  12. busy_poll: requests are answered with busy polling on, ev_run still
 *      returns in embedded mode, and the spinning stops when traffic does
 *
 * The test uses the internal codec (wire.h) only to forge and read raw frames
 * in scenario 6; everything else goes through msglayer.h.
 * ML_TEST_SEED sets the payload seed of scenario 7 (default: the time).
 */
#include "msglayer.h"
#include "check.h"
#include "wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SRV_NODE 1
#define CLI_NODE 2
#define WAIT_S 10.0 /* generous deadline for anything that should take milliseconds */

/* What the test is waiting for, for the failure message of run_until. */
static const char *step = "";

/* ---- driving a loop ---- */

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
}

/* Turn the loop until pred(arg) holds; past timeout_s the test fails. The
 * library's own watchers are unref'd in embedded mode, so a repeating tick
 * keeps ev_run(EVRUN_ONCE) from returning at once with nothing to wait on. */
static void run_until_pred(struct ev_loop *l, int (*pred)(const void *), const void *arg,
			   double timeout_s)
{
	ev_timer tick;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(l, &tick);
	double deadline = ev_time() + timeout_s;
	while (!pred(arg)) {
		CHECK(ev_time() < deadline, "timed out after %.1f s waiting for: %s", timeout_s, step);
		ev_run(l, EVRUN_ONCE);
	}
	ev_timer_stop(l, &tick);
}

static int flag_set(const void *arg)
{
	return *(const int *)arg != 0;
}

static void run_until(struct ev_loop *l, int *flag, double timeout_s)
{
	run_until_pred(l, flag_set, flag, timeout_s);
}

struct count_goal {
	const int *counter;
	int n;
};

static int count_reached(const void *arg)
{
	const struct count_goal *g = arg;
	return __atomic_load_n(g->counter, __ATOMIC_ACQUIRE) >= g->n;
}

static void run_until_n(struct ev_loop *l, const int *counter, int n, double timeout_s)
{
	struct count_goal g = { counter, n };
	run_until_pred(l, count_reached, &g, timeout_s);
}

/* ---- contexts, ports, peers ---- */

static void cfg_base(struct ml_config *c, uint32_t node, struct ev_loop *l)
{
	ml_config_init(c);
	c->node_id = node;
	c->loop = l;
}

static ml_ctx *ctx_create(const struct ml_config *c)
{
	ml_ctx *ctx = NULL;
	int rc = ml_ctx_create(c, &ctx);
	CHECK(rc == ML_OK && ctx, "ml_ctx_create(node %u): %s", c->node_id, ml_strerror(rc));
	CHECK(ml_ctx_node_id(ctx) == c->node_id, "node id %u", ml_ctx_node_id(ctx));
	CHECK(ml_ctx_incarnation(ctx) != 0, "incarnation 0");
	return ctx;
}

/* ml_listen on 127.0.0.1:port (0: any); returns the port bound by call n. */
static unsigned listen_on(ml_ctx *ctx, unsigned port, unsigned n)
{
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	int rc = ml_listen(ctx, url);
	CHECK(rc == ML_OK, "ml_listen(%s): %s", url, ml_strerror(rc));
	unsigned bound = ml_listen_port(ctx, n);
	CHECK(bound != 0 && (port == 0 || bound == port), "bound port %u for %s", bound, url);
	return bound;
}

/* A port where nothing listens: bound by a throwaway context, then released. */
static unsigned free_port(struct ev_loop *l)
{
	struct ml_config c;
	cfg_base(&c, 99, l);
	ml_ctx *tmp = ctx_create(&c);
	unsigned port = listen_on(tmp, 0, 0);
	ml_ctx_destroy(tmp);
	return port;
}

static ml_peer *add_peer(ml_ctx *ctx, uint32_t node, unsigned port)
{
	char url[64];
	const char *urls[] = { url };
	ml_peer *p = NULL;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	int rc = ml_peer_add(ctx, node, urls, 1, &p);
	CHECK(rc == ML_OK && p, "ml_peer_add(%u, %s): %s", node, url, ml_strerror(rc));
	CHECK(ml_peer_node_id(p) == node, "peer node id %u", ml_peer_node_id(p));
	CHECK(ml_peer_find(ctx, node) == p, "ml_peer_find gives another handle");
	return p;
}

static struct ml_peer_stats stats(ml_peer *p)
{
	struct ml_peer_stats st;
	memset(&st, 0xee, sizeof(st));
	CHECK(ml_peer_stats_get(p, &st, NULL, NULL) == ML_OK, "ml_peer_stats_get");
	return st;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> ((i & 7) * 8));
	}
}

#define U(x) ((unsigned long long)(x))

/* ======================================================================
 * 1. basic_embedded
 * ====================================================================== */

#define B_NREQ 5
static const size_t b_sizes[B_NREQ] = { 0, 1, 4096, 300 * 1024, 5u << 20 };
#define B_MAX (5u << 20)
#define B_ONEWAY_TAG 0x0ae0000000000001ull
#define B_ONEWAY_LEN 1000

struct basic {
	const uint8_t *data;  /* pristine pattern: what every request carries */
	int served, responses_acked, oneway_recv;
	int done[B_NREQ], oneway_done;
};

/* Server: answer with the two halves of the request swapped, from an iovec
 * list that refers to the received payload (so ML_SEND_COPY is required). */
static void b_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct basic *b = arg;
	CHECK(ml_peer_node_id(from) == CLI_NODE, "request from node %u", ml_peer_node_id(from));
	CHECK(ml_request_tag(req) == msg->tag, "ml_request_tag %llu, message tag %llu",
	      U(ml_request_tag(req)), U(msg->tag));
	CHECK(msg->tag >= 100 && msg->tag < 100 + B_NREQ, "tag %llu", U(msg->tag));
	CHECK(msg->len == b_sizes[msg->tag - 100], "request %llu has %zu bytes", U(msg->tag), msg->len);
	CHECK(msg->len == 0 || !memcmp(msg->data, b->data, msg->len), "request %llu corrupted",
	      U(msg->tag));
	size_t h = msg->len / 2;
	struct iovec iov[2] = { { (uint8_t *)(uintptr_t)msg->data + h, msg->len - h },
				{ (void *)(uintptr_t)msg->data, h } };
	struct ml_buf rb = ml_buf_iov(iov, 2);
	b->served++;
	int rc = ml_respond(req, &rb, 1, ML_SEND_COPY, NULL, NULL);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

static void b_response_acked(void *arg, int status)
{
	struct basic *b = arg;
	CHECK(status == ML_OK, "response ack: %s", ml_strerror(status));
	b->responses_acked++;
}

/* Same as b_serve, but with an acknowledgement callback (for the counters). */
static void b_serve_acked(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct basic *b = arg;
	CHECK(ml_request_tag(req) == msg->tag, "tag of the request handle");
	size_t h = msg->len / 2;
	struct iovec iov[2] = { { (uint8_t *)(uintptr_t)msg->data + h, msg->len - h },
				{ (void *)(uintptr_t)msg->data, h } };
	struct ml_buf rb = ml_buf_iov(iov, 2);
	(void)from;
	CHECK(msg->tag >= 100 && msg->tag < 100 + B_NREQ, "tag %llu", U(msg->tag));
	CHECK(msg->len == b_sizes[msg->tag - 100] &&
	      (msg->len == 0 || !memcmp(msg->data, b->data, msg->len)), "request %llu corrupted",
	      U(msg->tag));
	b->served++;
	int rc = ml_respond(req, &rb, 1, ML_SEND_COPY, b_response_acked, b);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

static void b_oneway(void *arg, ml_peer *from, const struct ml_msg *msg)
{
	struct basic *b = arg;
	CHECK(ml_peer_node_id(from) == CLI_NODE, "one-way from node %u", ml_peer_node_id(from));
	CHECK(msg->tag == B_ONEWAY_TAG, "one-way tag %llx", U(msg->tag));
	CHECK(msg->len == B_ONEWAY_LEN && !memcmp(msg->data, b->data + 7, B_ONEWAY_LEN),
	      "one-way payload (%zu bytes) differs", msg->len);
	b->oneway_recv++;
}

struct b_req {
	struct basic *b;
	unsigned k;
};

static void b_response(void *arg, int status, const struct ml_msg *resp)
{
	struct b_req *q = arg;
	const uint8_t *d = q->b->data;
	size_t len = b_sizes[q->k], h = len / 2;
	CHECK(!q->b->done[q->k], "response callback of request %u ran twice", q->k);
	CHECK(status == ML_OK, "request of %zu bytes: %s", len, ml_strerror(status));
	CHECK(resp != NULL, "ML_OK without a response");
	CHECK(resp->tag == 100 + q->k, "response tag %llu for request %u", U(resp->tag), q->k);
	CHECK(resp->len == len, "response of %zu bytes to a request of %zu", resp->len, len);
	/* swapped halves: [h, len) then [0, h) */
	const uint8_t *r = resp->data;
	CHECK(len == 0 || (!memcmp(r, d + h, len - h) && !memcmp(r + (len - h), d, h)),
	      "response to the %zu-byte request differs", len);
	q->b->done[q->k] = 1;
}

static void b_oneway_sent(void *arg, int status)
{
	struct basic *b = arg;
	CHECK(status == ML_OK, "one-way send: %s", ml_strerror(status));
	CHECK(!b->oneway_done, "one-way send callback ran twice");
	b->oneway_done = 1;
}

static int b_all_done(const void *arg)
{
	const struct basic *b = arg;
	for (unsigned k = 0; k < B_NREQ; k++)
		if (!b->done[k])
			return 0;
	return b->oneway_done;
}

static void test_basic_embedded(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	uint8_t *data = malloc(B_MAX), *scratch = malloc(B_MAX);
	static const uint8_t junk[16] = "JUNKJUNKJUNKJUNK";
	struct basic b = { .data = data };
	struct b_req q[B_NREQ];
	struct ml_config c;
	CHECK(data && scratch, "malloc");
	fill_pattern(data, B_MAX, 1);

	/* The first run answers without an ack callback, the second with one:
	 * both must work; the second also lets us check the server's counters. */
	for (int pass = 0; pass < 2; pass++) {
		memset(&b, 0, sizeof(b));
		b.data = data;
		cfg_base(&c, SRV_NODE, loop);
		c.on_request = pass ? b_serve_acked : b_serve;
		c.on_message = b_oneway;
		c.cb_arg = &b;
		ml_ctx *srv = ctx_create(&c);
		unsigned port = listen_on(srv, 0, 0);
		cfg_base(&c, CLI_NODE, loop);
		ml_ctx *cli = ctx_create(&c);
		ml_peer *peer = add_peer(cli, SRV_NODE, port);

		uint64_t bytes = 0;
		for (unsigned k = 0; k < B_NREQ; k++) {
			size_t len = b_sizes[k], a = len / 3, m = len / 2;
			/* Request k is bytes [0, len) of data, described as two
			 * ML_BUF_IOV references: the first starts 5 bytes into its
			 * list (a junk piece), the second has an empty piece and a
			 * junk tail that its length leaves out. Odd requests are
			 * copied (ML_SEND_COPY) from scratch, which is then
			 * scribbled over at once. */
			const uint8_t *src = data;
			unsigned flags = 0;
			if (k & 1) {
				memcpy(scratch, data, len);
				src = scratch;
				flags = ML_SEND_COPY;
			}
			struct iovec v1[3] = { { (void *)junk, 5 }, { (void *)src, a / 2 },
					       { (void *)(src + a / 2), a - a / 2 } };
			struct iovec v2[4] = { { (void *)(src + a), m - a }, { (void *)junk, 0 },
					       { (void *)(src + m), len - m }, { (void *)junk, 9 } };
			struct ml_buf bufs[2] = { ml_buf_iov(v1, 3), ml_buf_iov(v2, 4) };
			bufs[0].offset = 5;
			bufs[0].length = a;
			bufs[1].length = len - a;
			q[k].b = &b;
			q[k].k = k;
			int rc = ml_request_send(peer, 100 + k, bufs, 2, flags, b_response, &q[k]);
			CHECK(rc == ML_OK, "request of %zu bytes: %s", len, ml_strerror(rc));
			if (flags & ML_SEND_COPY)
				memset(scratch, 0xa5, len);
			bytes += len;
		}
		struct iovec ov[3] = { { data + 7, 1 }, { data + 8, 499 }, { data + 507, 500 } };
		struct ml_buf ob = ml_buf_iov(ov, 3);
		int rc = ml_message_send(peer, B_ONEWAY_TAG, &ob, 1, 0, b_oneway_sent, &b);
		CHECK(rc == ML_OK, "one-way: %s", ml_strerror(rc));
		bytes += B_ONEWAY_LEN;

		step = "basic: 5 responses and the one-way ack";
		run_until_pred(loop, b_all_done, &b, WAIT_S);
		CHECK(b.served == B_NREQ && b.oneway_recv == 1, "server: %d requests, %d one-way",
		      b.served, b.oneway_recv);

		struct ml_peer_stats st = stats(peer);
		CHECK(st.node_id == SRV_NODE, "stats node id %u", st.node_id);
		CHECK(st.msgs_sent == B_NREQ + 1 && st.msgs_acked == B_NREQ + 1 &&
		      st.msgs_recv == B_NREQ, "client: sent %llu acked %llu recv %llu (want 6 6 5)",
		      U(st.msgs_sent), U(st.msgs_acked), U(st.msgs_recv));
		CHECK(st.bytes_sent == bytes && st.bytes_recv == bytes - B_ONEWAY_LEN,
		      "client bytes sent %llu (want %llu), recv %llu", U(st.bytes_sent), U(bytes),
		      U(st.bytes_recv));
		CHECK(st.failed == 0 && st.refused == 0 && st.restarts == 0 && st.requests_pending == 0,
		      "client: failed %llu refused %llu restarts %llu pending %llu", U(st.failed),
		      U(st.refused), U(st.restarts), U(st.requests_pending));
		CHECK(st.peer_incarnation == ml_ctx_incarnation(srv), "peer incarnation");

		ml_peer *back = ml_peer_find(srv, CLI_NODE);
		CHECK(back != NULL, "the client did not become a peer of the server");
		st = stats(back);
		CHECK(st.msgs_recv == B_NREQ + 1 && st.bytes_recv == bytes,
		      "server: recv %llu (want 6), %llu bytes (want %llu)", U(st.msgs_recv),
		      U(st.bytes_recv), U(bytes));
		if (pass) {
			step = "basic: the client acknowledges the 5 responses";
			run_until_n(loop, &b.responses_acked, B_NREQ, WAIT_S);
			st = stats(back);
			CHECK(st.msgs_sent == B_NREQ && st.msgs_acked == B_NREQ && st.failed == 0,
			      "server: sent %llu acked %llu failed %llu", U(st.msgs_sent),
			      U(st.msgs_acked), U(st.failed));
		}
		ml_ctx_destroy(cli);
		ml_ctx_destroy(srv);
	}
	free(scratch);
	free(data);
	ev_loop_destroy(loop);
	printf("  basic_embedded: 0 B .. 5 MiB from iovec lists (plain and copied), one-way, exact counters\n");
}

/* ======================================================================
 * 2. peer_restart
 * ====================================================================== */

struct restart_srv {
	int answer;           /* 0: hold every request (never answer) */
	int received;
	ml_request *held[8];  /* invalid once the context is destroyed: never touched */
};

static void r_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct restart_srv *s = arg;
	(void)from;
	if (!s->answer) {
		CHECK(s->received < 8, "too many requests");
		s->held[s->received++] = req;
		return;
	}
	s->received++;
	struct ml_buf rb = ml_buf_plain(msg->data, msg->len);
	int rc = ml_respond(req, &rb, 1, ML_SEND_COPY, NULL, NULL);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

struct outcome {
	int done, status, had_resp, calls;
	uint64_t tag;
	size_t len;
	uint8_t first;
	char text[16]; /* the response's first bytes, NUL-terminated */
};

static void record(void *arg, int status, const struct ml_msg *resp)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = status;
	o->had_resp = resp != NULL;
	if (resp) {
		o->tag = resp->tag;
		o->len = resp->len;
		o->first = resp->len ? *(const uint8_t *)resp->data : 0;
		size_t n = resp->len < sizeof(o->text) - 1 ? resp->len : sizeof(o->text) - 1;
		memcpy(o->text, resp->data, n);
		o->text[n] = 0;
	}
	o->done = 1;
}

static void test_peer_restart(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct restart_srv s1 = { .answer = 0 }, s2 = { .answer = 1 };
	struct ml_config c;

	cfg_base(&c, SRV_NODE, loop);
	c.on_request = r_serve;
	c.cb_arg = &s1;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);
	uint64_t inc1 = ml_ctx_incarnation(srv);

	cfg_base(&c, CLI_NODE, loop);
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	struct outcome o[3];
	memset(o, 0, sizeof(o));
	static const char payload[] = "held";
	struct ml_buf pb = ml_buf_plain(payload, 4);
	for (int i = 0; i < 3; i++) {
		int rc = ml_request_send(peer, 10 + (uint64_t)i, &pb, 1, 0, record, &o[i]);
		CHECK(rc == ML_OK, "request %d: %s", i, ml_strerror(rc));
	}
	step = "peer_restart: the first server holds 3 requests";
	run_until_n(loop, &s1.received, 3, WAIT_S);
	for (int i = 0; i < 3; i++)
		CHECK(!o[i].done, "request %d completed (%s) while the server holds it", i,
		      ml_strerror(o[i].status));

	ml_ctx_destroy(srv); /* the held ml_request handles die with it */

	cfg_base(&c, SRV_NODE, loop); /* a new incarnation on the same port */
	c.on_request = r_serve;
	c.cb_arg = &s2;
	srv = ctx_create(&c);
	CHECK(ml_ctx_incarnation(srv) != inc1, "same incarnation drawn twice");
	listen_on(srv, port, 0);

	step = "peer_restart: the 3 held requests fail after the reconnect";
	for (int i = 0; i < 3; i++) {
		run_until(loop, &o[i].done, WAIT_S);
		CHECK(o[i].calls == 1, "request %d: callback ran %d times", i, o[i].calls);
		CHECK(o[i].status == ML_EPEERRESTART && !o[i].had_resp,
		      "request %d: %s (%d), resp %s", i, ml_strerror(o[i].status), o[i].status,
		      o[i].had_resp ? "set" : "NULL");
	}
	CHECK(s2.received == 0, "the new server got %d of the old session's requests", s2.received);

	struct outcome after;
	memset(&after, 0, sizeof(after));
	static const char again[] = "again";
	struct ml_buf ab = ml_buf_plain(again, 5);
	int rc = ml_request_send(peer, 99, &ab, 1, 0, record, &after);
	CHECK(rc == ML_OK, "request after restart: %s", ml_strerror(rc));
	step = "peer_restart: a request to the new server";
	run_until(loop, &after.done, WAIT_S);
	CHECK(after.status == ML_OK && after.had_resp && after.tag == 99 && after.len == 5 &&
	      after.first == 'a', "after restart: %s", ml_strerror(after.status));
	CHECK(s2.received == 1, "new server received %d", s2.received);

	struct ml_peer_stats st = stats(peer);
	CHECK(st.restarts == 1, "restarts %llu (want 1)", U(st.restarts));
	CHECK(st.failed == 3, "failed %llu (want 3)", U(st.failed));
	CHECK(st.peer_incarnation == ml_ctx_incarnation(srv), "peer incarnation %llx, server %llx",
	      U(st.peer_incarnation), U(ml_ctx_incarnation(srv)));
	CHECK(st.requests_pending == 0 && st.inflight_msgs == 0, "pending %llu inflight %llu",
	      U(st.requests_pending), U(st.inflight_msgs));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	for (int i = 0; i < 3; i++)
		CHECK(o[i].calls == 1, "request %d: callback ran again at destroy", i);
	printf("  peer_restart: 3 held requests -> ML_EPEERRESTART (resp NULL), next answered, restarts 1\n");
}

/* ======================================================================
 * 3. session_timeout
 * ====================================================================== */

static void sent_status(void *arg, int status)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = status;
	o->done = 1;
}

static void test_session_timeout(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct ml_config c;
	unsigned port = free_port(loop);
	cfg_base(&c, CLI_NODE, loop);
	c.session_timeout_s = 0.3;
	c.reconnect_min_s = 0.01;
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	struct outcome req, msg;
	memset(&req, 0, sizeof(req));
	memset(&msg, 0, sizeof(msg));
	struct ml_buf b = ml_buf_plain("x", 1);

	/* The library arms its session timer from the loop's cached time, which
	 * is current in a loop that is turning; here the loop has not turned
	 * since it was created, so bring it up to date before measuring. */
	ev_now_update(loop);
	double t0 = ev_time();
	int rc = ml_request_send(peer, 1, &b, 1, 0, record, &req);
	CHECK(rc == ML_OK, "request: %s", ml_strerror(rc));
	rc = ml_message_send(peer, 2, &b, 1, 0, sent_status, &msg);
	CHECK(rc == ML_OK, "one-way: %s", ml_strerror(rc));
	step = "session_timeout: the request fails";
	run_until(loop, &req.done, 5.0);
	step = "session_timeout: the one-way message fails";
	run_until(loop, &msg.done, 5.0);
	double took = ev_time() - t0;

	CHECK(req.status == ML_ETIMEDOUT && !req.had_resp, "request: %s (%d)", ml_strerror(req.status),
	      req.status);
	CHECK(msg.status == ML_ETIMEDOUT, "one-way: %s (%d)", ml_strerror(msg.status), msg.status);
	const char *text = ml_strerror(ML_ETIMEDOUT);
	CHECK(text && *text && strcmp(text, ml_strerror(ML_OK)), "ml_strerror(ML_ETIMEDOUT) = '%s'",
	      text ? text : "(null)");
	CHECK(took >= 0.25 && took < 5.0, "failed after %.3f s (session timeout 0.3 s)", took);
	struct ml_peer_stats st = stats(peer);
	CHECK(st.failed == 2 && st.paths_up == 0 && st.queued_msgs == 0 && st.inflight_msgs == 0,
	      "failed %llu paths_up %u queued %llu inflight %llu", U(st.failed), st.paths_up,
	      U(st.queued_msgs), U(st.inflight_msgs));
	ml_ctx_destroy(cli);
	ev_loop_destroy(loop);
	CHECK(req.calls == 1 && msg.calls == 1, "callbacks ran %d and %d times", req.calls, msg.calls);
	printf("  session_timeout: request and one-way -> ML_ETIMEDOUT (\"%s\") after %.2f s\n", text,
	       took);
}

/* ======================================================================
 * 4. flow_control
 * ====================================================================== */

#define F_LIMIT 128 /* max_inflight_msgs 64 + max_queued_msgs 64 */

struct flow {
	ml_peer *peer;
	int room_calls, acked, received;
	uint8_t seen[4 * F_LIMIT];
};

static void f_room(void *arg, ml_peer *peer)
{
	struct flow *f = arg;
	CHECK(peer == f->peer, "on_room for another peer");
	f->room_calls++;
}

static void f_acked(void *arg, int status)
{
	struct flow *f = arg;
	CHECK(status == ML_OK, "one-way failed: %s", ml_strerror(status));
	f->acked++;
}

static void f_received(void *arg, ml_peer *from, const struct ml_msg *msg)
{
	struct flow *f = arg;
	uint64_t v;
	(void)from;
	CHECK(msg->len == sizeof(v), "one-way of %zu bytes", msg->len);
	memcpy(&v, msg->data, sizeof(v));
	CHECK(v == msg->tag && v < sizeof(f->seen), "one-way tag %llu payload %llu", U(msg->tag), U(v));
	CHECK(!f->seen[v], "one-way %llu delivered twice", U(v));
	f->seen[v] = 1;
	f->received++;
}

struct path_goal {
	ml_peer *peer;
	uint64_t failures;
};

static int path_failed(const void *arg)
{
	const struct path_goal *g = arg;
	struct ml_path_stats ps[1];
	unsigned n = 1;
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(g->peer, &st, ps, &n) == ML_OK, "stats");
	return n >= 1 && ps[0].failures >= g->failures;
}

/* Submit until refused; returns how many were accepted. */
static int fill_until_refused(ml_peer *peer, struct flow *f, uint64_t *next)
{
	int accepted = 0, rc;
	for (;;) {
		uint64_t v = *next;
		struct ml_buf b = ml_buf_plain(&v, sizeof(v));
		rc = ml_message_send(peer, v, &b, 1, ML_SEND_COPY, f_acked, f);
		if (rc != ML_OK)
			break;
		(*next)++;
		CHECK(++accepted <= F_LIMIT, "more admitted than max_inflight + max_queued");
	}
	CHECK(rc == ML_EAGAIN, "refused with %s (%d), not ML_EAGAIN", ml_strerror(rc), rc);
	return accepted;
}

static void test_flow_control(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	static struct flow f;
	struct ml_config c;
	memset(&f, 0, sizeof(f));
	unsigned port = free_port(loop);

	cfg_base(&c, CLI_NODE, loop);
	c.max_inflight_msgs = 64;
	c.max_queued_msgs = 64;
	c.session_timeout_s = 60;
	c.on_room = f_room;
	c.cb_arg = &f;
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	f.peer = peer;

	/* Let the path fail to connect once, so that the sends below really
	 * wait for a peer that is not there. */
	struct path_goal pg = { peer, 1 };
	step = "flow_control: the first connect attempt fails";
	run_until_pred(loop, path_failed, &pg, WAIT_S);

	uint64_t next = 0;
	int accepted = fill_until_refused(peer, &f, &next);
	CHECK(accepted == F_LIMIT, "accepted %d (want %d)", accepted, F_LIMIT);
	/* Asking again in the same episode is refused again, and counted. */
	uint64_t v = next;
	struct ml_buf vb = ml_buf_plain(&v, sizeof(v));
	CHECK(ml_message_send(peer, v, &vb, 1, ML_SEND_COPY, f_acked, &f) == ML_EAGAIN, "2nd refusal");
	CHECK(ml_message_send(peer, v, &vb, 1, ML_SEND_COPY, f_acked, &f) == ML_EAGAIN, "3rd refusal");
	struct ml_peer_stats st = stats(peer);
	CHECK(st.refused == 3, "refused %llu (want 3)", U(st.refused));
	CHECK(st.queued_msgs == F_LIMIT && st.inflight_msgs == 0 && st.msgs_sent == 0,
	      "while unreachable: queued %llu inflight %llu sent %llu", U(st.queued_msgs),
	      U(st.inflight_msgs), U(st.msgs_sent));
	CHECK(f.room_calls == 0 && f.acked == 0, "room %d acked %d before any peer", f.room_calls,
	      f.acked);

	struct ml_config sc;
	cfg_base(&sc, SRV_NODE, loop);
	sc.on_message = f_received;
	sc.cb_arg = &f;
	ml_ctx *srv = ctx_create(&sc);
	listen_on(srv, port, 0);

	step = "flow_control: on_room after the peer appeared";
	run_until(loop, &f.room_calls, WAIT_S);
	step = "flow_control: 128 acknowledgements";
	run_until_n(loop, &f.acked, F_LIMIT, WAIT_S);
	step = "flow_control: 128 deliveries";
	run_until_n(loop, &f.received, F_LIMIT, WAIT_S);
	CHECK(f.acked == F_LIMIT && f.received == F_LIMIT, "acked %d received %d", f.acked,
	      f.received);
	CHECK(f.room_calls == 1, "on_room called %d times in one refusal episode", f.room_calls);
	st = stats(peer);
	CHECK(st.msgs_sent == F_LIMIT && st.msgs_acked == F_LIMIT && st.failed == 0 &&
	      st.queued_msgs == 0 && st.inflight_msgs == 0,
	      "after drain: sent %llu acked %llu failed %llu queued %llu inflight %llu",
	      U(st.msgs_sent), U(st.msgs_acked), U(st.failed), U(st.queued_msgs),
	      U(st.inflight_msgs));

	/* A second episode, with the peer up: the refusal comes before the loop
	 * turns (nothing can complete in between), then on_room once more. */
	accepted = fill_until_refused(peer, &f, &next);
	CHECK(accepted == F_LIMIT, "second episode: accepted %d (want %d)", accepted, F_LIMIT);
	step = "flow_control: second episode drains";
	run_until_n(loop, &f.acked, 2 * F_LIMIT, WAIT_S);
	run_until_n(loop, &f.received, 2 * F_LIMIT, WAIT_S);
	CHECK(f.room_calls == 2, "on_room called %d times for two refusal episodes", f.room_calls);
	st = stats(peer);
	CHECK(st.refused == 4, "refused %llu (want 4)", U(st.refused));

	/* Not refused any more. */
	v = next++;
	CHECK(ml_message_send(peer, v, &vb, 1, ML_SEND_COPY, f_acked, &f) == ML_OK, "room again");
	step = "flow_control: one more after the episodes";
	run_until_n(loop, &f.acked, 2 * F_LIMIT + 1, WAIT_S);
	CHECK(f.room_calls == 2, "on_room called without a refusal");
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  flow_control: %d admitted, ML_EAGAIN, on_room once per episode (2), all delivered once\n",
	       F_LIMIT);
}

/* ======================================================================
 * 5. too_big_and_bad_args
 * ====================================================================== */

static void never_resp(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	(void)resp;
	CHECK(0, "the callback of a refused request ran (status %s)", ml_strerror(status));
}

static void never_sent(void *arg, int status)
{
	(void)arg;
	CHECK(0, "the callback of a refused send ran (status %s)", ml_strerror(status));
}

/* A server whose answers go wrong: ml_respond documents that req is still
 * consumed and an empty response goes instead. Its max_msg_size is 1 MiB. */
struct bad_answers {
	int rc[4];
	int calls;
};

static void bad_answer(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct bad_answers *ba = arg;
	static uint8_t huge[(1u << 20) + 1];
	(void)from;
	(void)msg;
	struct ml_buf wrong = { .type = 9, .base = huge, .length = 1 };
	struct ml_buf toobig = ml_buf_plain(huge, sizeof(huge));
	uint64_t t = ml_request_tag(req);
	CHECK(t < 4, "tag %llu", U(t));
	ba->calls++;
	ba->rc[t] = ml_respond(req, t == 1 ? &wrong : &toobig, 1, 0, never_sent, NULL);
}

struct npaths_goal {
	ml_peer *peer;
	unsigned n;
};

static int has_paths(const void *arg)
{
	const struct npaths_goal *g = arg;
	struct ml_peer_stats st;
	unsigned n = 0;
	CHECK(ml_peer_stats_get(g->peer, &st, NULL, &n) == ML_OK, "stats");
	return n >= g->n;
}

static void test_too_big_and_bad_args(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct ml_config c;
	ml_ctx *bad = NULL;
	int rc;

	/* contexts */
	cfg_base(&c, 0, loop);
	CHECK((rc = ml_ctx_create(&c, &bad)) == ML_EINVAL, "node id 0: %s", ml_strerror(rc));
	CHECK(ml_ctx_create(NULL, &bad) == ML_EINVAL, "NULL config");

	cfg_base(&c, CLI_NODE, loop);
	c.max_msg_size = 1u << 20;
	ml_ctx *cli = ctx_create(&c);
	unsigned port = free_port(loop);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);

	/* too big: our own max_msg_size */
	size_t big_len = (1u << 20) + 1;
	uint8_t *big = calloc(1, big_len);
	CHECK(big, "calloc");
	struct ml_buf b = ml_buf_plain(big, big_len);
	CHECK((rc = ml_request_send(peer, 1, &b, 1, 0, never_resp, NULL)) == ML_ETOOBIG,
	      "request of max_msg_size + 1: %s", ml_strerror(rc));
	CHECK((rc = ml_request_send(peer, 1, &b, 1, ML_SEND_COPY, never_resp, NULL)) == ML_ETOOBIG,
	      "copied request of max_msg_size + 1: %s", ml_strerror(rc));
	CHECK((rc = ml_message_send(peer, 1, &b, 1, 0, never_sent, NULL)) == ML_ETOOBIG,
	      "one-way of max_msg_size + 1: %s", ml_strerror(rc));
	/* ... also when the excess is spread over several buffers */
	struct ml_buf two[2] = { ml_buf_plain(big, 1u << 19), ml_buf_plain(big, (1u << 19) + 1) };
	CHECK((rc = ml_request_send(peer, 1, two, 2, 0, never_resp, NULL)) == ML_ETOOBIG,
	      "two buffers of max_msg_size + 1 in all: %s", ml_strerror(rc));

	/* bad arguments */
	b = ml_buf_plain(big, 1);
	CHECK((rc = ml_request_send(NULL, 1, &b, 1, 0, never_resp, NULL)) == ML_EINVAL,
	      "request to a NULL peer: %s", ml_strerror(rc));
	CHECK((rc = ml_message_send(NULL, 1, &b, 1, 0, never_sent, NULL)) == ML_EINVAL,
	      "one-way to a NULL peer: %s", ml_strerror(rc));
	CHECK((rc = ml_request_send(peer, 1, &b, 1, 0, NULL, NULL)) == ML_EINVAL,
	      "request without a callback: %s", ml_strerror(rc));
	struct ml_buf wrong = { .type = 9, .base = big, .length = 1 };
	CHECK((rc = ml_request_send(peer, 1, &wrong, 1, 0, never_resp, NULL)) == ML_EINVAL,
	      "unknown buffer type: %s", ml_strerror(rc));
	CHECK((rc = ml_respond(NULL, &b, 1, 0, NULL, NULL)) == ML_EINVAL, "ml_respond(NULL): %s",
	      ml_strerror(rc));

	/* faults: every kind by name and back; out of range, ML_EINVAL */
	for (int f = ML_FAULT_SHUTDOWN; f <= ML_FAULT_BAD_KEY; f++)
		CHECK(ml_fault_parse(ml_fault_name(f)) == f, "fault %d is named '%s', which parses as %d",
		      f, ml_fault_name(f), ml_fault_parse(ml_fault_name(f)));
	CHECK(ml_fault_parse("bad-key") == ML_FAULT_BAD_KEY, "bad-key");
	struct ml_fault_spec fs = { .fault = ML_FAULT_BAD_KEY + 1 };
	CHECK((rc = ml_fault_set(peer, 0, &fs)) == ML_EINVAL, "fault %d: %s", fs.fault, ml_strerror(rc));
	fs.fault = 0;
	CHECK((rc = ml_fault_set(peer, 0, &fs)) == ML_EINVAL, "fault 0: %s", ml_strerror(rc));

	/* peers and URLs (msglayer.h: a bad URL is ML_EINVAL) */
	const char *ok_url[] = { "tcp://127.0.0.1:1" };
	CHECK((rc = ml_peer_add(cli, CLI_NODE, ok_url, 1, NULL)) == ML_EINVAL,
	      "peer with our own node id: %s", ml_strerror(rc));
	CHECK((rc = ml_peer_add(cli, 0, ok_url, 1, NULL)) == ML_EINVAL, "peer node 0: %s",
	      ml_strerror(rc));
	static const char *const bad_urls[] = { "udp://x:1", "tcp://nohostport", "tcp://127.0.0.1:99999",
						"tcp://:5", "tcp://127.0.0.1:", "127.0.0.1:5" };
	for (unsigned i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		ml_peer *none = NULL;
		CHECK((rc = ml_peer_add(cli, 3, &bad_urls[i], 1, &none)) == ML_EINVAL,
		      "ml_peer_add(\"%s\"): %s (%d)", bad_urls[i], ml_strerror(rc), rc);
		CHECK((rc = ml_listen(cli, bad_urls[i])) == ML_EINVAL, "ml_listen(\"%s\"): %s (%d)",
		      bad_urls[i], ml_strerror(rc), rc);
	}

	/* listening twice on one explicit port */
	unsigned lport = free_port(loop);
	listen_on(cli, lport, 0);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", lport);
	CHECK((rc = ml_listen(cli, url)) == ML_EEXIST, "second ml_listen(%s): %s (%d)", url,
	      ml_strerror(rc), rc);
	CHECK(ml_listen_port(cli, 0) == lport, "the first listener's port changed");

	/* fault injection: the peer has exactly one path (once it is added) */
	struct npaths_goal ng = { peer, 1 };
	step = "bad_args: the peer's path exists";
	run_until_pred(loop, has_paths, &ng, WAIT_S);
	CHECK((rc = ml_fault_inject(peer, 1, ML_FAULT_RESET)) == ML_ENOENT, "path 1 of 1: %s",
	      ml_strerror(rc));
	CHECK((rc = ml_fault_inject(peer, 1000, ML_FAULT_SHUTDOWN)) == ML_ENOENT, "path 1000: %s",
	      ml_strerror(rc));
	CHECK((rc = ml_fault_inject(peer, 0, 42)) == ML_EINVAL, "fault 42: %s", ml_strerror(rc));
	CHECK((rc = ml_fault_inject(NULL, 0, ML_FAULT_RESET)) == ML_EINVAL, "NULL peer: %s",
	      ml_strerror(rc));

	/* ml_strerror: distinct, non-empty texts; a generic one for unknown codes */
	for (int a = ML_OK; a >= ML_ENODE; a--) {
		const char *ta = ml_strerror(a);
		CHECK(ta && *ta, "no text for %d", a);
		for (int z = a - 1; z >= ML_ENODE; z--)
			CHECK(strcmp(ta, ml_strerror(z)), "same text for %d and %d: '%s'", a, z, ta);
	}
	const char *unknown = ml_strerror(12345);
	CHECK(unknown && *unknown, "no text for 12345");
	for (int a = ML_OK; a >= ML_ENODE; a--)
		CHECK(strcmp(unknown, ml_strerror(a)), "12345 reads as status %d", a);
	CHECK(ml_strerror(-17) && ml_strerror(-1000000) && ml_strerror(INT32_MIN), "NULL text");

	/* Errors that can only be known later come as completions: ml_respond
	 * with bad buffers (req consumed, an empty answer instead), and a message
	 * over the peer's max_msg_size (ML_ETOOBIG with resp NULL, api.md). */
	struct bad_answers ba;
	memset(&ba, 0, sizeof(ba));
	cfg_base(&c, SRV_NODE, loop);
	c.max_msg_size = 1u << 20;
	c.on_request = bad_answer;
	c.cb_arg = &ba;
	ml_ctx *srv = ctx_create(&c);
	unsigned sport = listen_on(srv, 0, 0);
	cfg_base(&c, 3, loop); /* default max_msg_size: 64 MiB */
	ml_ctx *cli3 = ctx_create(&c);
	ml_peer *p3 = add_peer(cli3, SRV_NODE, sport);
	struct outcome r1, r2, r3, o3;
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	memset(&o3, 0, sizeof(o3));
	size_t over = (2u << 20);
	uint8_t *two_mib = calloc(1, over);
	CHECK(two_mib, "calloc");
	b = ml_buf_plain("q", 1);
	CHECK(ml_request_send(p3, 1, &b, 1, 0, record, &r1) == ML_OK, "request 1");
	CHECK(ml_request_send(p3, 2, &b, 1, 0, record, &r2) == ML_OK, "request 2");
	struct ml_buf ob = ml_buf_plain(two_mib, over);
	CHECK(ml_request_send(p3, 3, &ob, 1, 0, record, &r3) == ML_OK, "2 MiB request");
	CHECK(ml_message_send(p3, 3, &ob, 1, 0, sent_status, &o3) == ML_OK, "2 MiB one-way");
	step = "bad_args: answers with bad buffers arrive (empty)";
	run_until(loop, &r1.done, WAIT_S);
	run_until(loop, &r2.done, WAIT_S);
	step = "bad_args: sends over the peer's max_msg_size fail";
	run_until(loop, &r3.done, WAIT_S);
	run_until(loop, &o3.done, WAIT_S);
	CHECK(ba.calls == 2 && ba.rc[1] == ML_EINVAL && ba.rc[2] == ML_ETOOBIG,
	      "ml_respond with a bad buffer: %s, with 1 MiB + 1: %s (%d calls)", ml_strerror(ba.rc[1]),
	      ml_strerror(ba.rc[2]), ba.calls);
	CHECK(r1.status == ML_OK && r1.had_resp && r1.len == 0 && r1.tag == 1,
	      "request answered with a bad buffer: %s, %zu bytes", ml_strerror(r1.status), r1.len);
	CHECK(r2.status == ML_OK && r2.had_resp && r2.len == 0 && r2.tag == 2,
	      "request answered with 1 MiB + 1: %s, %zu bytes", ml_strerror(r2.status), r2.len);
	CHECK(r3.status == ML_ETOOBIG && !r3.had_resp, "2 MiB request to a 1 MiB peer: %s (%d)",
	      ml_strerror(r3.status), r3.status);
	CHECK(o3.status == ML_ETOOBIG, "2 MiB one-way to a 1 MiB peer: %s (%d)", ml_strerror(o3.status),
	      o3.status);
	ml_ctx_destroy(cli3);
	ml_ctx_destroy(srv);
	free(two_mib);

	struct ml_peer_stats st = stats(peer);
	CHECK(st.msgs_sent == 0 && st.queued_msgs == 0, "a refused send was queued");
	/* Nothing refused may complete later: destroy completes everything that
	 * was queued (with ML_ECANCELED), which would run never_*(). */
	ml_ctx_destroy(cli);
	free(big);
	ev_loop_destroy(loop);
	printf("  too_big_and_bad_args: ML_ETOOBIG, ML_EINVAL, ML_EEXIST, ML_ENOENT as documented; texts distinct\n");
}

/* ======================================================================
 * 6. hostile_connections
 * ====================================================================== */

struct raw {
	ev_io io;
	int fd;
	const uint8_t *out;
	size_t out_len;
	int connected, closed, err;
	uint8_t buf[4096];
	size_t len;
};

static void raw_cb(struct ev_loop *l, ev_io *io, int revents)
{
	struct raw *r = (struct raw *)io;
	if (!r->connected && (revents & EV_WRITE)) {
		int err = 0;
		socklen_t sl = sizeof(err);
		getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		CHECK(err == 0, "raw connect: %s", strerror(err));
		r->connected = 1;
		ssize_t n = send(r->fd, r->out, r->out_len, MSG_NOSIGNAL);
		CHECK(n == (ssize_t)r->out_len, "raw send: %zd of %zu (%s)", n, r->out_len,
		      strerror(errno));
		ev_io_stop(l, io);
		ev_io_set(io, r->fd, EV_READ);
		ev_io_start(l, io);
		return;
	}
	if (!(revents & EV_READ))
		return;
	for (;;) {
		CHECK(r->len < sizeof(r->buf), "the server sent more than %zu bytes", sizeof(r->buf));
		ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n > 0) {
			r->len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		r->err = n < 0 ? errno : 0;
		r->closed = 1;
		ev_io_stop(l, io);
		return;
	}
}

/* Connect to port, send bytes, read until the server hangs up. Returns the
 * status of the CLOSE frame it answered with, or 1 if it hung up without
 * one. A server that keeps the connection open fails the test. */
static int hostile(struct ev_loop *loop, unsigned port, const uint8_t *bytes, size_t len,
		   const char *what)
{
	struct raw r;
	memset(&r, 0, sizeof(r));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	r.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(r.fd >= 0, "socket: %s", strerror(errno));
	int rc = connect(r.fd, (struct sockaddr *)&sa, sizeof(sa));
	CHECK(rc == 0 || errno == EINPROGRESS, "raw connect: %s", strerror(errno));
	r.out = bytes;
	r.out_len = len;
	ev_io_init(&r.io, raw_cb, r.fd, EV_WRITE);
	ev_io_start(loop, &r.io);
	step = what;
	run_until(loop, &r.closed, WAIT_S);
	close(r.fd);
	CHECK(r.err == 0 || r.err == ECONNRESET, "%s: read: %s", what, strerror(r.err));
	if (r.len == 0)
		return 1;
	struct ml_frame_hdr h;
	struct ml_wire_limits lim = { 1u << 20, 1u << 20 };
	enum ml_wire_err e = ml_frame_decode(r.buf, r.len, &lim, &h);
	CHECK(e == ML_WIRE_OK, "%s: the answer (%zu bytes) does not decode: %s", what, r.len,
	      ml_wire_strerror(e));
	CHECK(h.type == ML_FT_CLOSE && h.payload_len >= ML_CLOSE_MIN, "%s: answer of type %u, %u bytes",
	      what, h.type, h.payload_len);
	CHECK(r.len == (size_t)h.hdr_len + h.payload_len, "%s: %zu bytes after the CLOSE frame", what,
	      r.len - h.hdr_len - h.payload_len);
	CHECK(h.session == 0, "%s: CLOSE before the handshake with session %llx", what, U(h.session));
	return (int32_t)ml_get32(r.buf + h.hdr_len);
}

static size_t hello_frame(uint8_t *out, uint32_t node, uint32_t dest, uint16_t vmin, uint16_t vmax)
{
	struct ml_hello hello = { .node_id = node, .dest_node_id = dest, .incarnation = 77,
				  .min_version = vmin, .max_version = vmax,
				  .max_frag_payload = 65536, .max_msg_size = 1 << 20, .window = 64 };
	struct ml_frame_hdr h = { .type = ML_FT_HELLO, .payload_len = ML_HELLO_LEN };
	ml_frame_encode(out, &h);
	ml_hello_encode(out + ML_WIRE_HDR_LEN, &hello);
	return ML_WIRE_HDR_LEN + ML_HELLO_LEN;
}

static void h_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf rb = ml_buf_plain(msg->data, msg->len);
	CHECK(ml_respond(req, &rb, 1, ML_SEND_COPY, NULL, NULL) == ML_OK, "respond");
}

static void test_hostile_connections(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct ml_config c;
	cfg_base(&c, SRV_NODE, loop);
	c.on_request = h_serve;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);
	uint8_t buf[512];
	int st;

	/* (a) garbage: EOF, or a CLOSE (ML_EPROTO) and EOF */
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(0x5a ^ (i * 37));
	st = hostile(loop, port, buf, 64, "hostile (a): 64 bytes of garbage");
	CHECK(st == 1 || st == ML_EPROTO, "garbage: CLOSE with %s (%d)", ml_strerror(st), st);

	/* (b) HELLO offering only versions 7..9 */
	st = hostile(loop, port, buf, hello_frame(buf, 5, SRV_NODE, 7, 9),
		     "hostile (b): HELLO with versions 7..9");
	CHECK(st == ML_EVERSION, "versions 7..9: %s (%d), want ML_EVERSION", ml_strerror(st), st);

	/* (c) HELLO for another node */
	st = hostile(loop, port, buf, hello_frame(buf, 5, 3, 1, 1), "hostile (c): HELLO for node 3");
	CHECK(st == ML_ENODE, "wrong destination: %s (%d), want ML_ENODE", ml_strerror(st), st);

	/* (d) HELLO from a node claiming the server's own id (with and without a destination) */
	st = hostile(loop, port, buf, hello_frame(buf, SRV_NODE, SRV_NODE, 1, 1),
		     "hostile (d): HELLO claiming the server's id");
	CHECK(st == ML_ENODE, "own node id: %s (%d), want ML_ENODE", ml_strerror(st), st);
	st = hostile(loop, port, buf, hello_frame(buf, SRV_NODE, 0, 1, 1),
		     "hostile (d'): HELLO claiming the server's id, any destination");
	CHECK(st == ML_ENODE, "own node id (dest 0): %s (%d), want ML_ENODE", ml_strerror(st), st);

	/* (e) a valid HELLO followed at once by bytes (before HELLO_ACK) */
	size_t n = hello_frame(buf, 5, SRV_NODE, 1, 1);
	memset(buf + n, 0, 16);
	st = hostile(loop, port, buf, n + 16, "hostile (e): data before HELLO_ACK");
	CHECK(st == ML_EPROTO, "early data: %s (%d), want ML_EPROTO", ml_strerror(st), st);

	/* (f) a HELLO whose header CRC is wrong */
	n = hello_frame(buf, 5, SRV_NODE, 1, 1);
	buf[40] ^= 1; /* tag field: covered by the CRC */
	st = hostile(loop, port, buf, n, "hostile (f): HELLO with a bad CRC");
	CHECK(st == 1 || st == ML_EPROTO, "bad CRC: %s (%d)", ml_strerror(st), st);

	/* (g) the first frame is not a HELLO */
	struct ml_frame_hdr ph = { .type = ML_FT_PING, .payload_len = ML_PING_LEN };
	ml_frame_encode(buf, &ph);
	memset(buf + ML_WIRE_HDR_LEN, 0, ML_PING_LEN);
	st = hostile(loop, port, buf, ML_WIRE_HDR_LEN + ML_PING_LEN, "hostile (g): PING first");
	CHECK(st == ML_EPROTO, "PING before HELLO: %s (%d), want ML_EPROTO", ml_strerror(st), st);

	/* The server survived and serves a real client. */
	cfg_base(&c, CLI_NODE, loop);
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	struct outcome o;
	memset(&o, 0, sizeof(o));
	struct ml_buf b = ml_buf_plain("still here", 10);
	int rc = ml_request_send(peer, 7, &b, 1, 0, record, &o);
	CHECK(rc == ML_OK, "request: %s", ml_strerror(rc));
	step = "hostile: a real request afterwards";
	run_until(loop, &o.done, WAIT_S);
	CHECK(o.status == ML_OK && o.had_resp && o.tag == 7 && o.len == 10 && o.first == 's',
	      "request after hostile connections: %s", ml_strerror(o.status));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  hostile_connections: garbage, versions 7..9, wrong node, own node, early data, bad CRC,\n"
	       "    PING first: each closed (with the documented CLOSE status); server still serves\n");
}

/* ======================================================================
 * 7. respond_from_other_thread
 * ====================================================================== */

#define T_NREQ 1000
#define T_MAXLEN 2048
#define T_XOR 0x5a

struct job {
	struct job *next;
	ml_request *req;
	uint64_t tag;
	size_t len;
	uint8_t data[];
};

struct responder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, **tail;
	int stop;
	int received;  /* requests seen by the handler (worker thread) */
	int acked;     /* responses acknowledged by the requester (worker thread) */
	int ack_errors;
	pthread_t worker_tid; /* the thread the handler ran on (to prove we answer elsewhere) */
};

static void t_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct responder *rs = arg;
	(void)from;
	struct job *j = malloc(sizeof(*j) + msg->len);
	CHECK(j, "malloc");
	j->next = NULL;
	j->req = req;
	j->tag = msg->tag;
	j->len = msg->len;
	if (msg->len)
		memcpy(j->data, msg->data, msg->len); /* msg->data dies when we return */
	pthread_mutex_lock(&rs->lock);
	rs->worker_tid = pthread_self();
	rs->received++;
	*rs->tail = j;
	rs->tail = &j->next;
	pthread_cond_signal(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

static void t_response_acked(void *arg, int status)
{
	struct responder *rs = arg;
	if (status != ML_OK)
		__atomic_fetch_add(&rs->ack_errors, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rs->acked, 1, __ATOMIC_RELEASE);
}

static void *t_responder(void *arg)
{
	struct responder *rs = arg;
	uint8_t out[T_MAXLEN];
	for (;;) {
		pthread_mutex_lock(&rs->lock);
		while (!rs->head && !rs->stop)
			pthread_cond_wait(&rs->cond, &rs->lock);
		struct job *j = rs->head;
		if (j) {
			rs->head = j->next;
			if (!rs->head)
				rs->tail = &rs->head;
		}
		pthread_t wt = rs->worker_tid;
		pthread_mutex_unlock(&rs->lock);
		if (!j)
			return NULL; /* stop, and nothing left */
		CHECK(!pthread_equal(wt, pthread_self()), "responder runs on the worker thread");
		CHECK(ml_request_tag(j->req) == j->tag, "ml_request_tag %llu, tag %llu",
		      U(ml_request_tag(j->req)), U(j->tag));
		for (size_t i = 0; i < j->len; i++)
			out[i] = j->data[i] ^ T_XOR;
		struct ml_buf b = ml_buf_plain(out, j->len);
		int rc = ml_respond(j->req, &b, 1, ML_SEND_COPY, t_response_acked, rs);
		CHECK(rc == ML_OK, "ml_respond from another thread: %s", ml_strerror(rc));
		free(j);
	}
}

struct t_req {
	uint64_t tag;
	size_t len;
	uint8_t data[T_MAXLEN];
	int *completed;
	int done;
};

static void t_response(void *arg, int status, const struct ml_msg *resp)
{
	struct t_req *q = arg;
	CHECK(!q->done, "request %llu answered twice", U(q->tag));
	CHECK(status == ML_OK && resp, "request %llu: %s", U(q->tag), ml_strerror(status));
	CHECK(resp->tag == q->tag && resp->len == q->len, "request %llu (%zu bytes): tag %llu, %zu bytes",
	      U(q->tag), q->len, U(resp->tag), resp->len);
	const uint8_t *r = resp->data;
	for (size_t i = 0; i < q->len; i++)
		CHECK(r[i] == (q->data[i] ^ T_XOR), "request %llu: byte %zu differs", U(q->tag), i);
	q->done = 1;
	(*q->completed)++;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_respond_from_other_thread(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct responder rs;
	struct ml_config c;
	memset(&rs, 0, sizeof(rs));
	pthread_mutex_init(&rs.lock, NULL);
	pthread_cond_init(&rs.cond, NULL);
	rs.tail = &rs.head;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, t_responder, &rs) == 0, "pthread_create");

	ml_config_init(&c); /* worker mode: two worker threads */
	c.node_id = SRV_NODE;
	c.loop = NULL;
	c.workers = 2;
	c.on_request = t_serve;
	c.cb_arg = &rs;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);

	cfg_base(&c, CLI_NODE, loop); /* the client is embedded in this thread's loop */
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);

	struct t_req *reqs = calloc(T_NREQ, sizeof(*reqs));
	CHECK(reqs, "calloc");
	int completed = 0;
	const char *env = getenv("ML_TEST_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	uint64_t rng = seed | 1; /* xorshift needs a non-zero state */
	for (unsigned i = 0; i < T_NREQ; i++) {
		struct t_req *q = &reqs[i];
		q->tag = 1000 + i;
		q->len = (size_t)(xorshift(&rng) % (i % 10 ? 257 : T_MAXLEN + 1));
		for (size_t k = 0; k < q->len; k++)
			q->data[k] = (uint8_t)xorshift(&rng);
		q->completed = &completed;
		struct ml_buf b = ml_buf_plain(q->data, q->len);
		int rc = ml_request_send(peer, q->tag, &b, 1, 0, t_response, q);
		CHECK(rc == ML_OK, "request %u: %s", i, ml_strerror(rc));
	}
	step = "respond_from_other_thread: 1000 responses";
	run_until_n(loop, &completed, T_NREQ, 30.0);
	step = "respond_from_other_thread: the server sees its 1000 responses acknowledged";
	run_until_n(loop, &rs.acked, T_NREQ, 30.0);
	CHECK(__atomic_load_n(&rs.ack_errors, __ATOMIC_RELAXED) == 0, "%d responses failed",
	      rs.ack_errors);

	pthread_mutex_lock(&rs.lock);
	rs.stop = 1;
	int received = rs.received;
	pthread_cond_signal(&rs.cond);
	pthread_mutex_unlock(&rs.lock);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	CHECK(received == T_NREQ, "server handler ran %d times", received);

	struct ml_peer_stats st = stats(peer);
	CHECK(st.msgs_sent == T_NREQ && st.msgs_acked == T_NREQ && st.msgs_recv == T_NREQ &&
	      st.failed == 0 && st.requests_pending == 0,
	      "client: sent %llu acked %llu recv %llu failed %llu pending %llu", U(st.msgs_sent),
	      U(st.msgs_acked), U(st.msgs_recv), U(st.failed), U(st.requests_pending));
	ml_peer *back = ml_peer_find(srv, CLI_NODE);
	CHECK(back, "no server-side peer");
	st = stats(back);
	CHECK(st.msgs_recv == T_NREQ && st.msgs_sent == T_NREQ && st.msgs_acked == T_NREQ &&
	      st.failed == 0, "server: recv %llu sent %llu acked %llu failed %llu", U(st.msgs_recv),
	      U(st.msgs_sent), U(st.msgs_acked), U(st.failed));

	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	free(reqs);
	pthread_cond_destroy(&rs.cond);
	pthread_mutex_destroy(&rs.lock);
	printf("  respond_from_other_thread: %d requests (ML_TEST_SEED=%llu) answered by an application thread\n",
	       T_NREQ, U(seed));
}

/* ======================================================================
 * 8. requester_restart (rule 6, seen from the side that answers)
 *
 * msglayer.h: ml_respond's "cb ... runs with ML_EPEERRESTART when the session
 * the request came on has ended meanwhile". The server holds two requests of
 * a client that then restarts. One answer is given while the client is gone
 * and has to wait (the server's in-flight byte budget is taken by a one-way
 * message that cannot be delivered); the other after the client came back.
 * Neither answer may reach the new incarnation, whose own first request
 * (sequence number 1 again, like the first held request) must get its own
 * answer.
 * ====================================================================== */

struct rr_srv {
	int answer;
	int received;
	ml_request *held[4];
};

static void rr_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct rr_srv *s = arg;
	(void)from;
	if (!s->answer) {
		CHECK(s->received < 4, "too many requests");
		s->held[s->received++] = req;
		return;
	}
	s->received++;
	uint8_t out[64] = "new:";
	CHECK(msg->len <= 60, "request of %zu bytes", msg->len);
	memcpy(out + 4, msg->data, msg->len);
	struct ml_buf rb = ml_buf_plain(out, 4 + msg->len);
	int rc = ml_respond(req, &rb, 1, ML_SEND_COPY, NULL, NULL);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

struct paths_down_goal {
	ml_peer *peer;
};

static int no_path_up(const void *arg)
{
	const struct paths_down_goal *g = arg;
	struct ml_peer_stats st = stats(g->peer);
	return st.paths_up == 0;
}

static void test_requester_restart(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct rr_srv s = { .answer = 0 };
	struct ml_config c;

	cfg_base(&c, SRV_NODE, loop);
	c.on_request = rr_serve;
	c.cb_arg = &s;
	c.max_inflight_bytes = 4096; /* one 4 KiB message fills it */
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);

	cfg_base(&c, CLI_NODE, loop);
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	struct outcome old[2];
	memset(old, 0, sizeof(old));
	for (int i = 0; i < 2; i++) {
		struct ml_buf b = ml_buf_plain(i ? "B" : "A", 1);
		int rc = ml_request_send(peer, 50 + (uint64_t)i, &b, 1, ML_SEND_COPY, record, &old[i]);
		CHECK(rc == ML_OK, "request: %s", ml_strerror(rc));
	}
	step = "requester_restart: the server holds 2 requests";
	run_until_n(loop, &s.received, 2, WAIT_S);
	ml_peer *back = ml_peer_find(srv, CLI_NODE);
	CHECK(back, "no server-side peer");

	ml_ctx_destroy(cli); /* the requester goes away ... */
	for (int i = 0; i < 2; i++)
		CHECK(old[i].calls == 1 && old[i].status == ML_ECANCELED, "old request %d: %s", i,
		      ml_strerror(old[i].status));
	struct paths_down_goal pd = { back };
	step = "requester_restart: the server sees the client's path go down";
	run_until_pred(loop, no_path_up, &pd, WAIT_S);

	/* ... and while it is away, the server fills its in-flight budget with a
	 * one-way message (M1), queues a second (M2) behind it, then answers the
	 * first request: that answer waits behind M2. */
	static uint8_t filler[4096];
	struct outcome m1, m2, ans[2];
	memset(&m1, 0, sizeof(m1));
	memset(&m2, 0, sizeof(m2));
	memset(ans, 0, sizeof(ans));
	struct ml_buf fb = ml_buf_plain(filler, sizeof(filler));
	int rc = ml_message_send(back, 60, &fb, 1, 0, sent_status, &m1);
	CHECK(rc == ML_OK, "one-way: %s", ml_strerror(rc));
	rc = ml_message_send(back, 61, &fb, 1, 0, sent_status, &m2);
	CHECK(rc == ML_OK, "one-way: %s", ml_strerror(rc));
	struct ml_buf ab = ml_buf_plain("old-A", 5);
	rc = ml_respond(s.held[0], &ab, 1, ML_SEND_COPY, sent_status, &ans[0]);
	CHECK(rc == ML_OK, "ml_respond while the requester is away: %s", ml_strerror(rc));

	/* The requester comes back as a new incarnation and asks again. */
	s.answer = 1;
	cfg_base(&c, CLI_NODE, loop);
	cli = ctx_create(&c);
	peer = add_peer(cli, SRV_NODE, port);
	struct outcome fresh;
	memset(&fresh, 0, sizeof(fresh));
	struct ml_buf nb = ml_buf_plain("C", 1);
	rc = ml_request_send(peer, 70, &nb, 1, ML_SEND_COPY, record, &fresh);
	CHECK(rc == ML_OK, "request of the new incarnation: %s", ml_strerror(rc));

	step = "requester_restart: the one-way of the old session fails";
	run_until(loop, &m1.done, WAIT_S);
	step = "requester_restart: the new incarnation's request completes";
	run_until(loop, &fresh.done, WAIT_S);
	step = "requester_restart: the queued one-way completes";
	run_until(loop, &m2.done, WAIT_S);
	step = "requester_restart: the answer given while the requester was away completes";
	run_until(loop, &ans[0].done, WAIT_S);

	/* The second held request is answered after the session ended. */
	struct ml_buf bb = ml_buf_plain("old-B", 5);
	rc = ml_respond(s.held[1], &bb, 1, ML_SEND_COPY, sent_status, &ans[1]);
	CHECK(rc == ML_OK, "ml_respond after the session ended: %s", ml_strerror(rc));
	step = "requester_restart: the answer given after the restart completes";
	run_until(loop, &ans[1].done, WAIT_S);

	printf("    M1 (sent in the old session): %s\n    M2 (queued in the old session): %s\n"
	       "    answer to held request A, given while away: %s\n"
	       "    answer to held request B, given after the restart: %s\n"
	       "    new incarnation's request (tag 70, \"C\"): %s, answer \"%s\" with tag %llu\n",
	       ml_strerror(m1.status), ml_strerror(m2.status), ml_strerror(ans[0].status),
	       ml_strerror(ans[1].status), ml_strerror(fresh.status), fresh.text, U(fresh.tag));
	CHECK(m1.status == ML_EPEERRESTART, "one-way of the old session: %s (%d)",
	      ml_strerror(m1.status), m1.status);
	CHECK(ans[1].status == ML_EPEERRESTART, "answer given after the restart: %s (%d)",
	      ml_strerror(ans[1].status), ans[1].status);
	CHECK(fresh.status == ML_OK && fresh.had_resp && fresh.tag == 70 && !strcmp(fresh.text, "new:C"),
	      "the new incarnation's request (tag 70, \"C\") got %s with \"%s\" (tag %llu), "
	      "want \"new:C\" (tag 70)", ml_strerror(fresh.status), fresh.text, U(fresh.tag));
	CHECK(ans[0].status == ML_EPEERRESTART, "the answer to a request of the old session, "
	      "given while the requester was away, completed with %s (%d), want ML_EPEERRESTART",
	      ml_strerror(ans[0].status), ans[0].status);
	struct ml_peer_stats st = stats(peer);
	/* M2 never left in the old session, so it is new to the new one. */
	CHECK(st.msgs_recv == 2, "the new incarnation received %llu messages, want 2 (M2 and its answer)",
	      U(st.msgs_recv));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  requester_restart: answers to the old session fail with ML_EPEERRESTART, new request answered\n");
}

/* ======================================================================
 * 9. declared_down
 *
 * msglayer.h: ml_peer_declare_down fails every message outstanding to the
 * peer, sent or queued, with ML_EPEERDOWN without waiting for the session
 * timeout, and answers still owed to it; the session starts over, and the
 * next request is answered. Both sides of it: the requester declares the server down (two
 * requests held by the server, one queued behind the in-flight limit), then
 * the server declares the requester down while it holds a request.
 * ====================================================================== */

static int was_declared_down(const void *arg)
{
	return stats((ml_peer *)arg).declared_down > 0;
}

static void test_declared_down(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct restart_srv s = { .answer = 0 };
	struct ml_config c;

	cfg_base(&c, SRV_NODE, loop);
	c.on_request = r_serve;
	c.cb_arg = &s;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);
	cfg_base(&c, CLI_NODE, loop);
	c.max_inflight_bytes = 2 * 4096; /* two 4 KiB requests: the third waits in the queue */
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);

	/* The requester's side. */
	struct outcome held[3];
	memset(held, 0, sizeof(held));
	static char big[4096] = "held";
	for (int i = 0; i < 3; i++) {
		struct ml_buf b = ml_buf_plain(big, sizeof(big));
		int rc = ml_request_send(peer, 90 + (uint64_t)i, &b, 1, ML_SEND_COPY, record, &held[i]);
		CHECK(rc == ML_OK, "request %d: %s", i, ml_strerror(rc));
	}
	step = "declared_down: the server holds 2 requests";
	run_until_n(loop, &s.received, 2, WAIT_S);
	struct ml_peer_stats st = stats(peer);
	CHECK(st.inflight_msgs == 2 && st.queued_msgs == 1, "in flight %llu, queued %llu, want 2 and 1",
	      U(st.inflight_msgs), U(st.queued_msgs));
	CHECK(ml_peer_declare_down(NULL, "x") == ML_EINVAL, "declare_down(NULL)");
	CHECK(ml_peer_declare_down(peer, "server node left the membership") == ML_OK, "declare_down");
	step = "declared_down: the requester's outstanding requests fail";
	for (int i = 0; i < 3; i++)
		run_until(loop, &held[i].done, WAIT_S);
	for (int i = 0; i < 3; i++)
		CHECK(held[i].calls == 1 && held[i].status == ML_EPEERDOWN && !held[i].had_resp,
		      "request %d (%s): %s, %d calls, want ML_EPEERDOWN once", i,
		      i < 2 ? "in flight" : "queued", ml_strerror(held[i].status), held[i].calls);
	s.answer = 1;
	struct outcome after;
	memset(&after, 0, sizeof(after));
	struct ml_buf ab = ml_buf_plain("after", 5);
	int rc = ml_request_send(peer, 99, &ab, 1, ML_SEND_COPY, record, &after);
	CHECK(rc == ML_OK, "request after declare_down: %s", ml_strerror(rc));
	step = "declared_down: a request sent after the call is answered";
	run_until(loop, &after.done, WAIT_S);
	CHECK(after.status == ML_OK && !strcmp(after.text, "after"), "request after: %s, \"%s\"",
	      ml_strerror(after.status), after.text);
	st = stats(peer);
	CHECK(st.declared_down == 1 && st.failed == 3 && st.inflight_msgs == 0 && st.queued_msgs == 0,
	      "declared_down %llu, failed %llu, in flight %llu, queued %llu; want 1, 3, 0, 0",
	      U(st.declared_down), U(st.failed), U(st.inflight_msgs), U(st.queued_msgs));

	/* The server's side: it holds a request, declares the requester down,
	 * then answers; the answer is owed to an ended session. */
	s.answer = 0;
	int received = s.received;
	struct outcome r2, owed, r3;
	memset(&r2, 0, sizeof(r2));
	memset(&owed, 0, sizeof(owed));
	memset(&r3, 0, sizeof(r3));
	struct ml_buf b2 = ml_buf_plain("r2", 2);
	rc = ml_request_send(peer, 100, &b2, 1, ML_SEND_COPY, record, &r2);
	CHECK(rc == ML_OK, "request r2: %s", ml_strerror(rc));
	step = "declared_down: the server holds r2";
	run_until_n(loop, &s.received, received + 1, WAIT_S);
	ml_peer *back = ml_peer_find(srv, CLI_NODE);
	CHECK(back && ml_peer_declare_down(back, NULL) == ML_OK, "server declares the client down");
	step = "declared_down: the server's worker acts on it";
	run_until_pred(loop, was_declared_down, back, WAIT_S);
	struct ml_buf ob = ml_buf_plain("owed", 4);
	rc = ml_respond(s.held[received], &ob, 1, ML_SEND_COPY, sent_status, &owed);
	CHECK(rc == ML_OK, "ml_respond after declare_down: %s", ml_strerror(rc));
	step = "declared_down: the owed answer completes";
	run_until(loop, &owed.done, WAIT_S);
	CHECK(owed.status == ML_EPEERDOWN, "answer owed to a peer declared down: %s, want ML_EPEERDOWN",
	      ml_strerror(owed.status));
	/* The server started a new session: to the requester it restarted. */
	step = "declared_down: r2 completes at the requester";
	run_until(loop, &r2.done, WAIT_S);
	CHECK(r2.status == ML_EPEERRESTART, "r2: %s (\"%s\", resp %d), want ML_EPEERRESTART", ml_strerror(r2.status), r2.text, r2.had_resp);
	s.answer = 1;
	struct ml_buf b3 = ml_buf_plain("r3", 2);
	rc = ml_request_send(peer, 101, &b3, 1, ML_SEND_COPY, record, &r3);
	CHECK(rc == ML_OK, "request r3: %s", ml_strerror(rc));
	step = "declared_down: r3 is answered in the new session";
	run_until(loop, &r3.done, WAIT_S);
	CHECK(r3.status == ML_OK && !strcmp(r3.text, "r3"), "r3: %s", ml_strerror(r3.status));
	CHECK(stats(back).declared_down == 1, "server's declared_down counter");
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  declared_down: 2 in flight + 1 queued -> ML_EPEERDOWN at once, next answered; "
	       "answer owed to a peer declared down -> ML_EPEERDOWN\n");
}

/* ======================================================================
 * 10. signals_stay_with_the_application
 *
 * The application creates a context with SIGUSR1 unblocked, then blocks it
 * to take it with sigwait. A worker thread that inherited the creator's mask
 * would take it instead. Checked on every ml-worker-N thread's blocked set
 * (/proc/self/task/TID/status, SigBlk): all of SIGHUP..SIGSYS and SIGUSR1.
 * ====================================================================== */

/* How many ml-worker threads there are; *unblocked counts those that do not
 * block every standard signal. */
static int worker_threads(int *unblocked)
{
	DIR *d = opendir("/proc/self/task");
	CHECK(d, "/proc/self/task");
	int n = 0;
	*unblocked = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[320], comm[32] = "", line[128];
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* the thread ended meanwhile */
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, "ml-worker-", 10))
			continue;
		n++;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		f = fopen(path, "r");
		CHECK(f, "%s", path);
		unsigned long long blk = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				break;
		fclose(f);
		/* bits 0..30: signals 1..31; SIGKILL and SIGSTOP cannot be blocked */
		unsigned long long want = 0x7fffffffull & ~(1ull << (SIGKILL - 1)) & ~(1ull << (SIGSTOP - 1));
		if ((blk & want) != want)
			(*unblocked)++;
	}
	closedir(d);
	return n;
}

static void test_signals_stay_with_the_application(void)
{
	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, &old);
	struct ml_config c;
	cfg_base(&c, SRV_NODE, NULL);
	c.workers = 2;
	ml_ctx *ctx = ctx_create(&c);
	int unblocked, n = worker_threads(&unblocked);
	CHECK(n == 2, "%d ml-worker threads, want 2", n);
	CHECK(unblocked == 0, "%d worker threads take signals", unblocked);
	ml_ctx_destroy(ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	printf("  signals_stay_with_the_application: both worker threads block every signal\n");
}

/* ======================================================================
 * 11. max_peers
 * ====================================================================== */

static void test_max_peers(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct restart_srv s = { .answer = 1 };
	struct ml_config c;
	cfg_base(&c, SRV_NODE, loop);
	c.on_request = r_serve;
	c.cb_arg = &s;
	c.max_peers = 1;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);
	cfg_base(&c, CLI_NODE, loop);
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	struct outcome o;
	memset(&o, 0, sizeof(o));
	struct ml_buf b = ml_buf_plain("one", 3);
	CHECK(ml_request_send(peer, 1, &b, 1, ML_SEND_COPY, record, &o) == ML_OK, "send");
	step = "max_peers: the first peer is served";
	run_until(loop, &o.done, WAIT_S);
	CHECK(o.status == ML_OK, "first peer: %s", ml_strerror(o.status));

	uint8_t hello[ML_WIRE_HDR_LEN + ML_HELLO_MAX];
	size_t n = hello_frame(hello, 3, SRV_NODE, 1, 1);
	int st = hostile(loop, port, hello, n, "max_peers: a second node connects");
	CHECK(st == ML_ELIMIT, "second node: CLOSE status %d, want ML_ELIMIT", st);
	const char *url = "tcp://127.0.0.1:9";
	CHECK(ml_peer_add(srv, 4, &url, 1, NULL) == ML_ELIMIT, "ml_peer_add past the limit");
	CHECK(ml_peer_find(srv, 3) == NULL && ml_peer_find(srv, 4) == NULL, "a peer was made");

	memset(&o, 0, sizeof(o));
	CHECK(ml_request_send(peer, 2, &b, 1, ML_SEND_COPY, record, &o) == ML_OK, "send");
	step = "max_peers: the first peer is still served";
	run_until(loop, &o.done, WAIT_S);
	CHECK(o.status == ML_OK, "first peer after the refusals: %s", ml_strerror(o.status));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  max_peers: limit 1; a second node refused with ML_ELIMIT, ml_peer_add too; "
	       "the first peer still served\n");
}

/* ======================================================================
 * 12. busy_poll
 *
 * With busy_poll_us, a worker polls without sleeping after traffic. In
 * embedded mode that must not keep the caller's ev_run from returning, and
 * once traffic stops the spinning must stop: over 0.3 s of idle loop the
 * process may use only a small part of the CPU time a spin would take.
 * ====================================================================== */

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_idle_end(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)revents;
	*(int *)t->data = 1;
}

static void test_busy_poll(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct restart_srv s = { .answer = 1 };
	struct ml_config c;
	cfg_base(&c, SRV_NODE, loop);
	c.on_request = r_serve;
	c.cb_arg = &s;
	c.busy_poll_us = 20000;
	ml_ctx *srv = ctx_create(&c);
	unsigned port = listen_on(srv, 0, 0);
	cfg_base(&c, CLI_NODE, loop);
	c.busy_poll_us = 20000;
	ml_ctx *cli = ctx_create(&c);
	ml_peer *peer = add_peer(cli, SRV_NODE, port);
	for (int i = 0; i < 100; i++) {
		struct outcome o;
		memset(&o, 0, sizeof(o));
		struct ml_buf b = ml_buf_plain("spin", 4);
		CHECK(ml_request_send(peer, (uint64_t)i, &b, 1, ML_SEND_COPY, record, &o) == ML_OK, "send");
		step = "busy_poll: a request is answered";
		run_until(loop, &o.done, WAIT_S);
		CHECK(o.status == ML_OK && !strcmp(o.text, "spin"), "request %d: %s", i,
		      ml_strerror(o.status));
	}
	/* Idle (heartbeats only): the spin ends 20 ms after the last message. */
	ev_timer idle;
	int idle_over = 0;
	ev_timer_init(&idle, on_idle_end, 0.05, 0);
	idle.data = &idle_over;
	ev_timer_start(loop, &idle);
	step = "busy_poll: settle";
	run_until(loop, &idle_over, WAIT_S);
	double c0 = cpu_s(), t0 = ev_time();
	idle_over = 0;
	ev_timer_set(&idle, 0.3, 0);
	ev_timer_start(loop, &idle);
	step = "busy_poll: 0.3 s idle";
	run_until(loop, &idle_over, WAIT_S);
	double used = cpu_s() - c0, wall = ev_time() - t0;
	CHECK(used < 0.5 * wall, "idle for %.2f s, the process used %.2f s of CPU: still spinning",
	      wall, used);
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("  busy_poll: 100 requests answered with 20 ms of busy polling on both sides; "
	       "idle afterwards: %.0f ms of CPU in %.0f ms\n", used * 1e3, wall * 1e3);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_basic_embedded();
	test_peer_restart();
	test_session_timeout();
	test_flow_control();
	test_too_big_and_bad_args();
	test_hostile_connections();
	test_respond_from_other_thread();
	test_requester_restart();
	test_declared_down();
	test_signals_stay_with_the_application();
	test_max_peers();
	test_busy_poll();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("test_session: all scenarios passed (%.2f s)\n",
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
