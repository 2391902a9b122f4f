/*
 * test_session.c - session edge cases through the public API, in embedded
 * mode (both contexts on one libev loop, so every step is deterministic):
 * peer restart and session timeout (rule 6), flow control and on_room,
 * hostile connections, argument errors.
 */
#include "msglayer.h"
#include "check.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static struct ev_loop *loop;

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
}

/* Turn the loop until *counter >= n or the deadline (a deadline is a failure). */
static void run_until_n(const int *counter, int n, double timeout_s, const char *what)
{
	ev_timer tick;
	ev_timer_init(&tick, on_tick, 0.01, 0.01); /* something to wait on */
	ev_timer_start(loop, &tick);
	double deadline = ev_time() + timeout_s;
	while (*counter < n) {
		CHECK(ev_time() < deadline, "%s: %d of %d within %.1f s", what, *counter, n, timeout_s);
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &tick);
}

static void run_until(const int *done, double timeout_s, const char *what)
{
	run_until_n(done, 1, timeout_s, what);
}

static ml_ctx *new_ctx(uint32_t node, ml_request_cb on_request, ml_message_cb on_message,
		       void *arg, void (*tune)(struct ml_config *))
{
	struct ml_config cfg;
	ml_ctx *ctx;
	ml_config_init(&cfg);
	cfg.node_id = node;
	cfg.loop = loop;
	cfg.on_request = on_request;
	cfg.on_message = on_message;
	cfg.cb_arg = arg;
	if (tune)
		tune(&cfg);
	int rc = ml_ctx_create(&cfg, &ctx);
	CHECK(rc == 0, "ml_ctx_create: %s", ml_strerror(rc));
	return ctx;
}

static unsigned listen_any(ml_ctx *ctx, unsigned nth)
{
	CHECK(ml_listen(ctx, "tcp://127.0.0.1:0") == 0, "listen");
	return ml_listen_port(ctx, nth);
}

/* A port where nothing listens (bound once, then released). */
static unsigned free_port(void)
{
	ml_ctx *tmp = new_ctx(99, NULL, NULL, NULL, NULL);
	unsigned port = listen_any(tmp, 0);
	ml_ctx_destroy(tmp);
	return port;
}

static ml_peer *add_peer(ml_ctx *ctx, uint32_t node, unsigned port)
{
	char url[64];
	const char *urls[] = { url };
	ml_peer *p;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	int rc = ml_peer_add(ctx, node, urls, 1, &p);
	CHECK(rc == 0, "ml_peer_add: %s", ml_strerror(rc));
	return p;
}

/* ---- 1. basic request/response of every size class, iov payloads ---- */

static void echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	CHECK(ml_request_tag(req) == msg->tag, "tag of the request handle");
	CHECK(ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL) == 0, "respond");
}

struct expect {
	const uint8_t *data;
	size_t len;
	int done, status;
};

static void check_echo(void *arg, int status, const struct ml_msg *resp)
{
	struct expect *e = arg;
	e->status = status;
	CHECK(status != ML_OK || (resp->len == e->len && !memcmp(resp->data, e->data, e->len)),
	      "echo of %zu bytes differs", e->len);
	e->done = 1;
}

static void test_basic(void)
{
	static const size_t sizes[] = { 0, 1, 4096, 300 * 1024, 5u << 20 };
	ml_ctx *srv = new_ctx(1, echo, NULL, NULL, NULL);
	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, NULL);
	ml_peer *peer = add_peer(cli, 1, listen_any(srv, 0));
	uint8_t *data = malloc(5u << 20);
	for (size_t i = 0; i < (5u << 20); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 12));
	for (unsigned k = 0; k < 5; k++) {
		struct expect e = { data, sizes[k], 0, 0 };
		struct iovec iov[3] = { { data, sizes[k] / 4 }, { data + sizes[k] / 4, sizes[k] / 4 },
					{ data + sizes[k] / 2, sizes[k] - sizes[k] / 2 } };
		struct ml_buf b = ml_buf_iov(iov, 3);
		CHECK(ml_request_send(peer, k, &b, 1, 0, check_echo, &e) == 0, "send");
		run_until(&e.done, 10, "echo");
		CHECK(e.status == ML_OK, "status %s", ml_strerror(e.status));
	}
	struct ml_peer_stats st;
	ml_peer_stats_get(peer, &st, NULL, NULL);
	CHECK(st.msgs_sent == 5 && st.msgs_recv == 5, "sent %llu recv %llu",
	      (unsigned long long)st.msgs_sent, (unsigned long long)st.msgs_recv);
	free(data);
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	printf("  basic: 0 B .. 5 MiB echoed through iovec payloads\n");
}

/* ---- 2. peer restart: outstanding requests fail with ML_EPEERRESTART ---- */

struct hold {
	int received;
	int answer; /* 1: answer at once; 0: hold (never answer) */
};

static void hold_or_echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct hold *h = arg;
	h->received++;
	if (h->answer)
		echo(NULL, from, req, msg);
}

struct outcome {
	int done, status, had_resp;
};

static void record(void *arg, int status, const struct ml_msg *resp)
{
	struct outcome *o = arg;
	o->status = status;
	o->had_resp = resp != NULL;
	o->done = 1;
}

static void test_peer_restart(void)
{
	struct hold h1 = { 0, 0 }, h2 = { 0, 1 };
	ml_ctx *srv = new_ctx(1, hold_or_echo, NULL, &h1, NULL);
	unsigned port = listen_any(srv, 0);
	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, NULL);
	ml_peer *peer = add_peer(cli, 1, port);
	struct outcome o[3] = { { 0 } };
	struct ml_buf b = ml_buf_plain("x", 1);
	for (int i = 0; i < 3; i++)
		CHECK(ml_request_send(peer, (uint64_t)i, &b, 1, 0, record, &o[i]) == 0, "send");
	run_until_n(&h1.received, 3, 10, "requests at the first server");
	ml_ctx_destroy(srv); /* held requests die with it (freed by destroy) */

	srv = new_ctx(1, hold_or_echo, NULL, &h2, NULL); /* new incarnation, same port */
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	CHECK(ml_listen(srv, url) == 0, "listen again on %u", port);
	for (int i = 0; i < 3; i++) {
		run_until(&o[i].done, 10, "restart completion");
		CHECK(o[i].status == ML_EPEERRESTART && !o[i].had_resp, "request %d: %s", i,
		      ml_strerror(o[i].status));
	}
	struct outcome after = { 0 };
	CHECK(ml_request_send(peer, 9, &b, 1, 0, record, &after) == 0, "send");
	run_until(&after.done, 10, "request after restart");
	CHECK(after.status == ML_OK && after.had_resp, "after restart: %s", ml_strerror(after.status));
	struct ml_peer_stats st;
	ml_peer_stats_get(peer, &st, NULL, NULL);
	CHECK(st.restarts == 1, "restarts %llu", (unsigned long long)st.restarts);
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	printf("  peer restart: 3 held requests failed with ML_EPEERRESTART, next one answered\n");
}


/* ---- 3. session timeout: with no path at all, sends fail with ML_ETIMEDOUT ---- */

static void short_timeout(struct ml_config *c)
{
	c->session_timeout_s = 0.3;
}

static void sent_status(void *arg, int status)
{
	struct outcome *o = arg;
	o->status = status;
	o->done = 1;
}

static void test_session_timeout(void)
{
	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, short_timeout);
	ml_peer *peer = add_peer(cli, 1, free_port());
	struct outcome req = { 0 }, msg = { 0 };
	struct ml_buf b = ml_buf_plain("x", 1);
	double t0 = ev_time();
	CHECK(ml_request_send(peer, 1, &b, 1, 0, record, &req) == 0, "send");
	CHECK(ml_message_send(peer, 2, &b, 1, 0, sent_status, &msg) == 0, "send");
	run_until(&req.done, 5, "request timeout");
	run_until(&msg.done, 5, "message timeout");
	double took = ev_time() - t0;
	CHECK(req.status == ML_ETIMEDOUT && msg.status == ML_ETIMEDOUT, "%s / %s",
	      ml_strerror(req.status), ml_strerror(msg.status));
	CHECK(took >= 0.25, "failed after %.3f s, before the session timeout", took);
	ml_ctx_destroy(cli);
	printf("  session timeout: request and one-way failed with ML_ETIMEDOUT after %.2f s\n", took);
}

/* ---- 4. flow control: refuse past the limits, tell on_room, then drain ---- */

struct flow {
	int room_calls, acked, received;
};

static struct flow flow;

static void count_room(void *arg, ml_peer *peer)
{
	(void)arg;
	(void)peer;
	flow.room_calls++;
}

static void count_acked(void *arg, int status)
{
	(void)arg;
	CHECK(status == ML_OK, "one-way failed: %s", ml_strerror(status));
	flow.acked++;
}

static void count_received(void *arg, ml_peer *from, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	(void)msg;
	flow.received++;
}

static void small_limits(struct ml_config *c)
{
	c->max_inflight_msgs = 64;
	c->max_queued_msgs = 64;
	c->on_room = count_room;
}

static void test_flow_control(void)
{
	unsigned port = free_port();
	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, small_limits);
	ml_peer *peer = add_peer(cli, 1, port); /* nobody there yet: everything waits */
	int accepted = 0, rc;
	uint64_t v = 0;
	struct ml_buf b = ml_buf_plain(&v, sizeof(v));
	while ((rc = ml_message_send(peer, v, &b, 1, ML_SEND_COPY, count_acked, NULL)) == 0) {
		accepted++;
		v++;
		CHECK(accepted <= 128, "more admitted than the limits allow");
	}
	CHECK(rc == ML_EAGAIN && accepted == 128, "accepted %d, then %s", accepted, ml_strerror(rc));
	struct ml_peer_stats st;
	ml_peer_stats_get(peer, &st, NULL, NULL);
	CHECK(st.refused == 1, "refused %llu", (unsigned long long)st.refused);

	ml_ctx *srv = new_ctx(1, NULL, count_received, NULL, NULL);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	CHECK(ml_listen(srv, url) == 0, "listen on %u", port);
	run_until_n(&flow.acked, 128, 10, "drain");
	CHECK(flow.received == 128, "server received %d", flow.received);
	CHECK(flow.room_calls == 1, "on_room called %d times", flow.room_calls);
	CHECK(ml_message_send(peer, v, &b, 1, ML_SEND_COPY, count_acked, NULL) == 0, "room again");
	run_until_n(&flow.acked, 129, 10, "one more");
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	printf("  flow control: 128 admitted, ML_EAGAIN, on_room once, all delivered\n");
}

/* ---- 5. hostile connections get a CLOSE with the reason; the server lives ---- */

struct raw {
	ev_io io;
	uint8_t buf[4096];
	size_t len;
	int closed;
};

static void raw_read(struct ev_loop *l, ev_io *io, int revents)
{
	struct raw *r = (struct raw *)io;
	(void)revents;
	ssize_t n = read(io->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	if (n > 0) {
		r->len += (size_t)n;
		return;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		r->closed = 1;
		ev_io_stop(l, io);
	}
}

/* Send bytes on a fresh connection; return the status of the CLOSE frame
 * the server answers with (1 if it just hung up without one). */
static int hostile(unsigned port, const void *bytes, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "raw connect");
	CHECK(write(fd, bytes, len) == (ssize_t)len, "raw write");
	struct raw r = { .len = 0, .closed = 0 };
	ev_io_init(&r.io, raw_read, fd, EV_READ);
	ev_io_start(loop, &r.io);
	run_until(&r.closed, 10, "server closes a hostile connection");
	close(fd);
	struct ml_frame_hdr h;
	struct ml_wire_limits lim = { 1u << 20, 1u << 20 };
	if (r.len == 0)
		return 1;
	CHECK(ml_frame_decode(r.buf, r.len, &lim, &h) == ML_WIRE_OK && h.type == ML_FT_CLOSE &&
	      h.payload_len >= 4, "the answer is not a CLOSE frame");
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

static void test_hostile(void)
{
	ml_ctx *srv = new_ctx(1, echo, NULL, NULL, NULL);
	unsigned port = listen_any(srv, 0);
	uint8_t buf[256];
	memset(buf, 0x5a, 64);
	CHECK(hostile(port, buf, 64) == ML_EPROTO, "garbage");
	CHECK(hostile(port, buf, hello_frame(buf, 5, 1, 7, 9)) == ML_EVERSION, "version 7..9");
	CHECK(hostile(port, buf, hello_frame(buf, 5, 3, 1, 1)) == ML_ENODE, "wrong destination");
	CHECK(hostile(port, buf, hello_frame(buf, 1, 0, 1, 1)) == ML_ENODE, "our own node id");
	size_t n = hello_frame(buf, 5, 1, 1, 1);
	memset(buf + n, 0, 16); /* data before HELLO_ACK */
	CHECK(hostile(port, buf, n + 16) == ML_EPROTO, "early data");

	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, NULL);
	ml_peer *peer = add_peer(cli, 1, port);
	struct expect e = { (const uint8_t *)"still here", 10, 0, 0 };
	struct ml_buf b = ml_buf_plain(e.data, e.len);
	CHECK(ml_request_send(peer, 1, &b, 1, 0, check_echo, &e) == 0, "send");
	run_until(&e.done, 10, "request after hostile connections");
	CHECK(e.status == ML_OK, "%s", ml_strerror(e.status));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	printf("  hostile: garbage, bad version, wrong node, own node, early data refused with reasons\n");
}

/* ---- 6. argument errors are immediate and callbacks are not called ---- */

static void never(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	(void)status;
	(void)resp;
	CHECK(0, "callback of a refused send ran");
}

static void tiny_messages(struct ml_config *c)
{
	c->max_msg_size = 1u << 20;
}

static void test_bad_args(void)
{
	struct ml_config cfg;
	ml_ctx *bad;
	ml_config_init(&cfg);
	CHECK(ml_ctx_create(&cfg, &bad) == ML_EINVAL, "node id 0");
	ml_ctx *cli = new_ctx(2, NULL, NULL, NULL, tiny_messages);
	ml_peer *peer = add_peer(cli, 1, free_port());
	static uint8_t big[(1u << 20) + 1];
	struct ml_buf b = ml_buf_plain(big, sizeof(big));
	CHECK(ml_request_send(peer, 1, &b, 1, 0, never, NULL) == ML_ETOOBIG, "too big");
	b.length = 1;
	CHECK(ml_request_send(NULL, 1, &b, 1, 0, never, NULL) == ML_EINVAL, "NULL peer");
	CHECK(ml_request_send(peer, 1, &b, 1, 0, NULL, NULL) == ML_EINVAL, "NULL callback");
	struct ml_buf wrong = { .type = 9, .base = big, .length = 1 };
	CHECK(ml_request_send(peer, 1, &wrong, 1, 0, never, NULL) == ML_EINVAL, "bad buffer type");
	const char *own[] = { "tcp://127.0.0.1:1" };
	CHECK(ml_peer_add(cli, 2, own, 1, NULL) == ML_EINVAL, "own node id");
	static const char *const bad_urls[] = { "udp://127.0.0.1:1", "tcp://nohostport",
						"tcp://127.0.0.1:99999", "tcp://:5" };
	for (unsigned i = 0; i < 4; i++)
		CHECK(ml_peer_add(cli, 3, &bad_urls[i], 1, NULL) == ML_EINVAL, "URL %s", bad_urls[i]);
	unsigned port = listen_any(cli, 0);
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	CHECK(ml_listen(cli, url) == ML_EEXIST, "listening twice on %s", url);
	CHECK(ml_fault_inject(peer, 5, ML_FAULT_RESET) == ML_ENOENT, "no such path");
	CHECK(ml_fault_inject(peer, 0, 42) == ML_EINVAL, "no such fault");
	for (int a = 0; a >= ML_ENODE; a--)
		for (int c = a - 1; c >= ML_ENODE; c--)
			CHECK(strcmp(ml_strerror(a), ml_strerror(c)), "same text for %d and %d", a, c);
	CHECK(ml_strerror(12345) && strcmp(ml_strerror(12345), ml_strerror(ML_OK)), "unknown code");
	ml_ctx_destroy(cli);
	printf("  bad arguments: refused at once with the documented codes\n");
}

int main(void)
{
	loop = ev_loop_new(0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_basic();
	test_peer_restart();
	test_session_timeout();
	test_flow_control();
	test_hostile();
	test_bad_args();
	ev_loop_destroy(loop);
	printf("test_session: all scenarios passed\n");
	return 0;
}
