/*
 * test_shutdown.c - what a context that closes leaves behind at its peers.
 *
 *   1. last acks: an embedded-mode client gets its answers and is destroyed
 *      before its loop ran again (so its acknowledgement is still due): the
 *      server learns at once that its answers arrived (no answer left
 *      unacknowledged within 5 s, against a 30 s session timeout), and the
 *      client's outstanding request fails with ML_ECANCELED
 *   2. the application's loop is left as it was: no watcher of the
 *      destroyed context stays active on it, not even the end of an
 *      injected fault that was still running (it would sit in freed memory)
 */
#include "msglayer.h"
#include "check.h"

#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SRV 1
#define CLI 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static int answered, last_status;

static void on_answer(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	(void)resp;
	answered++;
	last_status = status;
}

static int left_active;

static void on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	left_active = 1;
	ev_break(loop, EVBREAK_ALL);
}

static int client_up(void *arg)
{
	struct ml_peer_stats st;
	return ml_peer_stats_get(arg, &st, NULL, NULL) == 0 && st.paths_up == 2;
}

/* The server's answers to the client, sent and not yet acknowledged. */
static int all_acked(void *arg)
{
	ml_peer *back = ml_peer_find(arg, CLI);
	struct ml_peer_stats st;
	return back && ml_peer_stats_get(back, &st, NULL, NULL) == 0 && st.inflight_msgs == 0 &&
	       st.msgs_sent >= 10;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = SRV;
	c.on_request = serve;
	ml_ctx *srv;
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK && ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK,
	      "listen");

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	ml_config_init(&c);
	c.node_id = CLI;
	c.loop = loop;
	ml_ctx *cli;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client");
	char u0[64], u1[64];
	snprintf(u0, sizeof(u0), "tcp://127.0.0.1:%u", ml_listen_port(srv, 0));
	snprintf(u1, sizeof(u1), "tcp://127.0.0.1:%u", ml_listen_port(srv, 1));
	const char *urls[] = { u0, u1 };
	ml_peer *p;
	CHECK(ml_peer_add(cli, SRV, urls, 2, &p) == ML_OK, "peer");
	for (int i = 0; i < 10000 && !client_up(p); i++)
		ev_run(loop, EVRUN_ONCE);
	CHECK(client_up(p), "paths up");
	/* A fault with a minute to run: its end's timer is active at the destroy. */
	struct ml_fault_spec slow = { .fault = ML_FAULT_DELAY, .value = 0.001, .duration_s = 60 };
	CHECK(ml_fault_set(p, 1, &slow) == ML_OK, "fault");

	struct ml_buf b = ml_buf_plain("ping", 4);
	for (int i = 0; i < 10; i++)
		CHECK(ml_request_send(p, 1, &b, 1, ML_SEND_COPY, on_answer, NULL) == ML_OK, "send");
	/* Stop the moment the last answer is in: the ack for it is still due. */
	while (answered < 10)
		ev_run(loop, EVRUN_ONCE);
	CHECK(last_status == ML_OK, "answer: %s", ml_status_name(last_status));
	/* One more, sure not to be answered by then: the context's end fails it. */
	CHECK(ml_request_send(p, 1, &b, 1, ML_SEND_COPY, on_answer, NULL) == ML_OK, "send");
	ml_ctx_destroy(cli);
	/* With nothing active, ev_run returns at once; the watchdog (which
	 * does not count: unref'd) fires only if something of the context's is
	 * still active. */
	ev_timer watchdog;
	ev_timer_init(&watchdog, on_watchdog, 2.0, 0);
	ev_timer_start(loop, &watchdog);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &watchdog);
	CHECK(!left_active, "the destroyed context left a watcher active on the application's loop");
	CHECK(answered == 11 && last_status == ML_ECANCELED, "the outstanding request ended with %s",
	      ml_status_name(last_status));
	ev_loop_destroy(loop);

	pthread_mutex_lock(&mu);
	int acked = check_wait(&mu, &cv, all_acked, srv, 5.0);
	pthread_mutex_unlock(&mu);
	ml_peer *back = ml_peer_find(srv, CLI);
	struct ml_peer_stats st;
	CHECK(back && ml_peer_stats_get(back, &st, NULL, NULL) == 0, "server's peer");
	CHECK(acked, "the server still holds %llu unacknowledged answers of %llu after 5 s",
	      (unsigned long long)st.inflight_msgs, (unsigned long long)st.msgs_sent);
	ml_ctx_destroy(srv);
	printf("  last acks: the destroyed client acknowledged all %llu answers on its way out; its "
	       "outstanding request ended with ML_ECANCELED\n",
	       (unsigned long long)st.msgs_sent);
	printf("  the application's loop: no watcher left active by the destroyed context (a fault "
	       "with 60 s to run was active)\n");
	printf("test_shutdown: all scenarios passed\n");
	return 0;
}
