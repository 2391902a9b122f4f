/*
 * test_requests.c - the life of one request beyond "asked and answered",
 * through the public API, both contexts embedded on one libev loop:
 *
 *   1. abort: the handler refuses; the requester gets ML_EABORTED and the reason.
 *   2. deadline: the handler holds the request; the requester gets
 *      ML_EDEADLINE, the handler saw the time left and gets on_cancel; its
 *      late answer is dropped (the callback runs once).
 *   3. cancel by tag: two requests with one tag end with ML_ECANCELED and
 *      reach on_cancel; a request with another tag is answered.
 *   4. cancel before sending: no path yet; the request ends at once and
 *      nothing goes on the wire.
 *   5. response too big for the requester: it gets ML_EABORTED with the
 *      reason, the responder ML_ETOOBIG; nobody waits forever. Also for a
 *      requester whose limit is shorter than the reason: it gets the reason
 *      cut to its limit (the whole one would be too big as well).
 */
#include "msglayer.h"
#include "check.h"
#include "evloop.h"

#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define WAIT_S 10.0

static const char *step = "";

static void run_until_n(struct ev_loop *l, const int *counter, int n)
{
	evloop_until(l, counter, n, WAIT_S, step);
}

/* ---- the server: what it does with each request depends on the test ---- */

enum srv_mode { SRV_ABORT, SRV_HOLD, SRV_BIG };

struct server {
	enum srv_mode mode;
	int received, canceled;
	ml_request *held[8];
	double time_left[8];
	int answered_status, answered;
};

static void srv_answered(void *arg, int status)
{
	struct server *s = arg;
	s->answered_status = status;
	s->answered++;
}

static void srv_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct server *s = arg;
	(void)from;
	(void)msg;
	CHECK(s->received < 8, "too many requests");
	s->time_left[s->received] = ml_request_time_left(req);
	if (s->mode == SRV_ABORT) {
		int rc = ml_request_abort(req, "no such volume", srv_answered, s);
		CHECK(rc == ML_OK, "ml_request_abort: %s", ml_strerror(rc));
	} else if (s->mode == SRV_BIG) {
		static char big[8192];
		struct ml_buf b = ml_buf_plain(big, sizeof(big));
		int rc = ml_respond(req, &b, 1, 0, srv_answered, s);
		CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
	} else if (ml_request_tag(req) == 8) {
		int rc = ml_respond(req, NULL, 0, 0, NULL, NULL);
		CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
	} else {
		s->held[s->received] = req;
	}
	s->received++;
}

static void srv_cancel(void *arg, ml_peer *from, ml_request *req)
{
	struct server *s = arg;
	(void)from;
	CHECK(ml_request_canceled(req), "on_cancel for a request not marked canceled");
	s->canceled++;
}

/* ---- the client's completions ---- */

struct outcome {
	int calls, status;
	char text[128];
};

static void record(void *arg, int status, const struct ml_msg *resp)
{
	struct outcome *o = arg;
	o->calls++;
	o->status = status;
	if (resp) {
		size_t n = resp->len < sizeof(o->text) - 1 ? resp->len : sizeof(o->text) - 1;
		memcpy(o->text, resp->data, n);
		o->text[n] = 0;
	}
}

struct pair {
	struct ev_loop *loop;
	struct server s;
	ml_ctx *srv, *cli;
	ml_peer *peer;
};

static void pair_open(struct pair *p, enum srv_mode mode, uint32_t cli_max_msg)
{
	struct ml_config c;
	memset(p, 0, sizeof(*p));
	p->loop = ev_loop_new(0);
	p->s.mode = mode;
	ml_config_init(&c);
	c.node_id = SRV;
	c.loop = p->loop;
	c.on_request = srv_request;
	c.on_cancel = srv_cancel;
	c.cb_arg = &p->s;
	CHECK(ml_ctx_create(&c, &p->srv) == ML_OK, "server context");
	CHECK(ml_listen(p->srv, "tcp://127.0.0.1:0") == ML_OK, "listen");
	ml_config_init(&c);
	c.node_id = CLI;
	c.loop = p->loop;
	c.max_msg_size = cli_max_msg;
	CHECK(ml_ctx_create(&c, &p->cli) == ML_OK, "client context");
	/* The listener starts on the loop: turn it once so the port is bound. */
	ev_run(p->loop, EVRUN_NOWAIT);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(p->srv, 0));
	const char *urls[] = { url };
	CHECK(ml_peer_add(p->cli, SRV, urls, 1, &p->peer) == ML_OK, "peer add");
}

static void pair_close(struct pair *p)
{
	ml_ctx_destroy(p->cli);
	ml_ctx_destroy(p->srv);
	ev_loop_destroy(p->loop);
}

static void test_abort(void)
{
	struct pair p;
	struct outcome o = { 0 };
	pair_open(&p, SRV_ABORT, 0);
	CHECK(ml_request_send(p.peer, 1, NULL, 0, 0, record, &o) == ML_OK, "send");
	step = "abort: the requester's callback";
	run_until_n(p.loop, &o.calls, 1);
	CHECK(o.status == ML_EABORTED && !strcmp(o.text, "no such volume"),
	      "got %s with \"%s\", want ML_EABORTED with the reason", ml_strerror(o.status), o.text);
	step = "abort: the abort is acknowledged";
	run_until_n(p.loop, &p.s.answered, 1);
	CHECK(p.s.answered_status == ML_OK, "abort send status %s", ml_strerror(p.s.answered_status));
	CHECK(isinf(p.s.time_left[0]), "a request without deadline has %g s left", p.s.time_left[0]);
	pair_close(&p);
	printf("  abort: ML_EABORTED with \"%s\"\n", o.text);
}

static void test_deadline(void)
{
	struct pair p;
	struct outcome o = { 0 };
	pair_open(&p, SRV_HOLD, 0);
	double t0 = ev_time();
	int rc = ml_request_send_deadline(p.peer, 5, NULL, 0, 0, 0.2, record, &o);
	CHECK(rc == ML_OK, "send: %s", ml_strerror(rc));
	CHECK(ml_request_send_deadline(p.peer, 5, NULL, 0, 0, 0, record, &o) == ML_EINVAL,
	      "a deadline of 0 s is accepted");
	step = "deadline: the requester's callback";
	run_until_n(p.loop, &o.calls, 1);
	double took = ev_time() - t0;
	CHECK(o.status == ML_EDEADLINE, "got %s, want ML_EDEADLINE", ml_strerror(o.status));
	CHECK(took >= 0.2, "completed after %.3f s, before its deadline", took);
	CHECK(p.s.received == 1 && p.s.time_left[0] > 0 && p.s.time_left[0] <= 0.2,
	      "handler saw %g s left (want 0 < left <= 0.2)", p.s.time_left[0]);
	step = "deadline: the handler's on_cancel";
	run_until_n(p.loop, &p.s.canceled, 1);
	/* The late answer is dropped: the callback does not run again. */
	CHECK(ml_respond(p.s.held[0], NULL, 0, 0, srv_answered, &p.s) == ML_OK, "late respond");
	step = "deadline: the late answer is acknowledged";
	run_until_n(p.loop, &p.s.answered, 1);
	CHECK(o.calls == 1, "requester's callback ran %d times", o.calls);
	pair_close(&p);
	printf("  deadline: ML_EDEADLINE after %.3f s, handler saw %.3f s left, on_cancel ran\n", took,
	       p.s.time_left[0]);
}

static void test_cancel(void)
{
	struct pair p;
	struct outcome o[3];
	memset(o, 0, sizeof(o));
	pair_open(&p, SRV_HOLD, 0);
	CHECK(ml_request_send(p.peer, 7, NULL, 0, 0, record, &o[0]) == ML_OK, "send");
	CHECK(ml_request_send(p.peer, 7, NULL, 0, 0, record, &o[1]) == ML_OK, "send");
	step = "cancel: the server holds both requests";
	run_until_n(p.loop, &p.s.received, 2);
	CHECK(ml_request_cancel(p.peer, 7) == ML_OK, "cancel");
	CHECK(ml_request_send(p.peer, 8, NULL, 0, 0, record, &o[2]) == ML_OK, "send");
	step = "cancel: both canceled at the handler";
	run_until_n(p.loop, &p.s.canceled, 2);
	step = "cancel: the other tag is answered";
	run_until_n(p.loop, &o[2].calls, 1);
	for (int i = 0; i < 2; i++)
		CHECK(o[i].calls == 1 && o[i].status == ML_ECANCELED, "request %d: %d calls, %s", i,
		      o[i].calls, ml_strerror(o[i].status));
	CHECK(o[2].status == ML_OK, "tag 8: %s", ml_strerror(o[2].status));
	for (int i = 0; i < 2; i++)
		CHECK(ml_request_abort(p.s.held[i], "canceled", NULL, NULL) == ML_OK, "abort");
	pair_close(&p);
	printf("  cancel: 2 requests with tag 7 -> ML_ECANCELED + on_cancel; tag 8 answered\n");
}

static void test_cancel_unsent(void)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct ml_config c;
	ml_ctx *cli;
	ml_peer *peer;
	struct outcome o = { 0 };
	ml_config_init(&c);
	c.node_id = CLI;
	c.loop = loop;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client");
	const char *urls[] = { "tcp://127.0.0.1:1" }; /* nobody listens there */
	CHECK(ml_peer_add(cli, SRV, urls, 1, &peer) == ML_OK, "peer add");
	CHECK(ml_request_send(peer, 9, NULL, 0, 0, record, &o) == ML_OK, "send");
	CHECK(ml_request_cancel(peer, 9) == ML_OK, "cancel");
	step = "cancel before sending";
	run_until_n(loop, &o.calls, 1);
	struct ml_peer_stats st;
	ml_peer_stats_get(peer, &st, NULL, NULL);
	CHECK(o.status == ML_ECANCELED && st.msgs_sent == 0 && st.queued_msgs == 0,
	      "%s, %llu sent, %llu queued", ml_strerror(o.status), (unsigned long long)st.msgs_sent,
	      (unsigned long long)st.queued_msgs);
	ml_ctx_destroy(cli);
	ev_loop_destroy(loop);
	printf("  cancel before sending: ML_ECANCELED at once, nothing sent\n");
}

static void test_response_too_big(uint32_t cli_max_msg)
{
	struct pair p;
	struct outcome o = { 0 };
	pair_open(&p, SRV_BIG, cli_max_msg);
	CHECK(ml_request_send(p.peer, 3, NULL, 0, 0, record, &o) == ML_OK, "send");
	step = "too big: the requester's callback";
	run_until_n(p.loop, &o.calls, 1);
	step = "too big: the responder's callback";
	run_until_n(p.loop, &p.s.answered, 1);
	static const char reason[] = "response of 8192 bytes exceeds the requester's limit of ";
	size_t want = sizeof(reason) - 1 < cli_max_msg ? sizeof(reason) - 1 : cli_max_msg;
	CHECK(o.status == ML_EABORTED && strlen(o.text) >= want && !strncmp(o.text, reason, want),
	      "requester got %s with \"%s\"", ml_strerror(o.status), o.text);
	CHECK(strlen(o.text) <= cli_max_msg, "an abort of %zu bytes to a limit of %u", strlen(o.text),
	      cli_max_msg);
	CHECK(p.s.answered_status == ML_ETOOBIG, "responder got %s", ml_strerror(p.s.answered_status));
	pair_close(&p);
	printf("  response too big for a limit of %u: requester ML_EABORTED (\"%s\"), responder "
	       "ML_ETOOBIG\n", cli_max_msg, o.text);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_abort();
	test_deadline();
	test_cancel();
	test_cancel_unsent();
	test_response_too_big(4096);
	test_response_too_big(16);
	printf("test_requests: all scenarios passed\n");
	return 0;
}
