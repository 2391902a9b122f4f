/*
 * test_hostile.c - peers that complete the handshake and then misbehave, and
 * a peer that stops reading (doc/security.md, "Limits").
 *
 * One libev loop carries the server, a well-behaved client and raw sockets
 * that speak the wire format by hand (wire.h); the test turns the loop
 * itself, so every step is deterministic, and a deadline is a failure, never
 * a synchronisation. Throughout, the client keeps four requests outstanding
 * to the server: after each scenario it must have been answered again, and
 * none of its requests may fail.
 *
 *   1. garbage, and absurd lengths (payload_len 1 GiB, msg_len past
 *      max_msg_size, hdr_len 0xffff) after the handshake: that path closes
 *   2. half a frame, then nothing; half a frame, one byte at a time (each
 *      byte a sign of life): the path fails after frame_timeout_s
 *   3. a flood of tiny fragments that never complete (each the 1-byte last
 *      fragment of a message of F + 1 bytes or of 1 MiB + 1): CLOSE(ML_ELIMIT)
 *      past max_reasm_msgs, and past max_reasm_bytes; nothing delivered
 *   4. two peers over max_ctx_reasm_bytes together: the second gets
 *      CLOSE(ML_ELIMIT); the first leaves its halves behind and goes, and the
 *      session timer frees them (a third peer then has the room)
 *   5. requests sent by a peer that never reads the answers: CLOSE(ML_ELIMIT)
 *      past max_open_requests
 *   6. handshakes that never finish: past max_handshakes a connection gets
 *      CLOSE(ML_ELIMIT) at once; the others CLOSE(ML_ETIMEDOUT)
 *   7. slow_reader: a raw acceptor that takes the handshake and stops
 *      reading; the sender admits exactly max_inflight + max_queued messages,
 *      then ML_EAGAIN; its counters stay there; when the reader drains and
 *      acknowledges, on_room runs once and every message completes
 *   8. real_peer_past_limit: a msglayer client past the server's
 *      max_open_requests: an error in the server's log, the reason in the
 *      client's, each request completes once (ML_EPEERRESTART), and the new
 *      session serves; on plain paths, then on encrypted ones (the CLOSE is
 *      sealed like every byte after the handshake)
 *
 * tests/integ/raw.h's raw client blocks on its reads, for a server on worker
 * threads; here the server is on the test's own loop, so the raw peers below
 * are driven by that loop.
 */
#include "msglayer.h"
#include "check.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SRV_NODE 1
#define GOOD_NODE 2
#define RAW_INC 0x7700 /* a raw peer's incarnation: this plus its node id */
#define F 65536        /* the raw peers' max_frag_payload: the session's F */
#define WAIT_S 10.0
#define U(x) ((unsigned long long)(x))

static const char *step = "";
static struct ev_loop *loop;

/* ---- driving the loop ---- */

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l, (void)t, (void)revents;
}

/* Turn the loop until pred(arg); past timeout_s the test fails. The tick
 * keeps ev_run(EVRUN_ONCE) from returning at once (the library's watchers
 * are unref'd in embedded mode). */
static void run_until_pred(int (*pred)(const void *), const void *arg, double timeout_s)
{
	ev_timer tick;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	double deadline = ev_time() + timeout_s;
	while (!pred(arg)) {
		CHECK(ev_time() < deadline, "timed out after %.1f s waiting for: %s", timeout_s, step);
		ev_run(loop, EVRUN_ONCE);
	}
	ev_timer_stop(loop, &tick);
}

static int flag_set(const void *arg)
{
	return *(const int *)arg != 0;
}

/* ---- the server's log: the tests look for the lines the doc promises ---- */

struct logbuf {
	char line[64][512];
	unsigned n;
};
static struct logbuf srv_log; /* the server's */

static void capture(void *arg, int level, const char *text)
{
	struct logbuf *lb = arg;
	snprintf(lb->line[lb->n++ % 64], sizeof(lb->line[0]), "%s", text);
	if (level <= ML_LOG_WARN && getenv("ML_TEST_VERBOSE"))
		fprintf(stderr, "%s: %s\n", lb == &srv_log ? "server" : "other", text);
}

/* A line of the last 64 that holds both strings. */
static int logged_in(const struct logbuf *lb, const char *a, const char *b)
{
	for (unsigned i = 0; i < 64 && i < lb->n; i++)
		if (strstr(lb->line[i], a) && (!b || strstr(lb->line[i], b)))
			return 1;
	return 0;
}

static int logged(const char *a, const char *b)
{
	return logged_in(&srv_log, a, b);
}

/* ---- the well-behaved client: up to four requests outstanding ---- */

/* Paced by a timer, not sent again from each answer: at full speed the
 * client would take the machine's cores from everything else. */
struct good {
	ml_peer *peer;
	ev_timer pace;
	int outstanding, answered, failed, closing;
};
static struct good good;

static void good_answer(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	good.outstanding--;
	if (good.closing)
		return;
	if (status != ML_OK) {
		good.failed++;
		fprintf(stderr, "good client: request failed: %s\n", ml_strerror(status));
		return;
	}
	CHECK(resp->len == 8, "good client: answer of %zu bytes", resp->len);
	good.answered++;
}

static void good_send(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l, (void)t, (void)revents;
	while (good.outstanding < 4) {
		uint64_t v = (uint64_t)good.answered;
		struct ml_buf b = ml_buf_plain(&v, sizeof(v));
		int rc = ml_request_send(good.peer, v, &b, 1, ML_SEND_COPY, good_answer, NULL);
		CHECK(rc == ML_OK, "good client: send: %s", ml_strerror(rc));
		good.outstanding++;
	}
}

static int good_progress(const void *arg)
{
	return good.answered >= *(const int *)arg;
}

/* The client was answered 20 more times meanwhile, and nothing failed. */
static void good_still_served(const char *after)
{
	int goal = good.answered + 20;
	step = after;
	run_until_pred(good_progress, &goal, WAIT_S);
	CHECK(good.failed == 0, "%s: %d of the good client's requests failed", after, good.failed);
}

static void echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg, (void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	CHECK(ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL) == ML_OK, "respond");
}

/* ---- raw peers: the wire format by hand ---- */

struct raw {
	ev_io io;
	int fd;
	uint32_t node;
	uint64_t session;
	uint8_t in[ML_WIRE_HDR_LEN + 2 * F]; /* the server sends frames of at most F */
	size_t in_len;
	int acked;      /* HELLO_ACK received */
	int pongs;      /* PONGs received */
	int close_status, got_close; /* a CLOSE frame, its status */
	char close_why[128];
	int eof;
	uint64_t data_frames, top_seq; /* DATA frames the server sent us; highest seq */
};

static void raw_parse(struct raw *r)
{
	struct ml_wire_limits lim = { 1u << 20, 64u << 20 };
	size_t off = 0;
	for (;;) {
		struct ml_frame_hdr h;
		enum ml_wire_err e = ml_frame_decode(r->in + off, r->in_len - off, &lim, &h);
		if (e == ML_WIRE_NEED_MORE || r->in_len - off < (size_t)h.hdr_len + h.payload_len)
			break;
		CHECK(e == ML_WIRE_OK, "node %u: the server sent a frame that does not decode: %s",
		      r->node, ml_wire_strerror(e));
		const uint8_t *pl = r->in + off + h.hdr_len;
		if (h.type == ML_FT_HELLO_ACK) {
			struct ml_hello a;
			CHECK(ml_hello_decode(pl, h.payload_len, &a) == ML_WIRE_OK, "HELLO_ACK body");
			r->session = (RAW_INC + r->node) ^ a.incarnation;
			r->acked = 1;
		} else if (h.type == ML_FT_CLOSE) {
			CHECK(!r->got_close, "node %u: a second CLOSE", r->node);
			CHECK(h.payload_len >= ML_CLOSE_MIN, "short CLOSE");
			r->close_status = (int32_t)ml_get32(pl);
			snprintf(r->close_why, sizeof(r->close_why), "%.*s", (int)(h.payload_len - 4), pl + 4);
			r->got_close = 1;
		} else if (h.type == ML_FT_PONG) {
			r->pongs++;
		} else if (h.type == ML_FT_DATA) {
			r->data_frames++;
			if (h.seq > r->top_seq)
				r->top_seq = h.seq;
		}
		off += (size_t)h.hdr_len + h.payload_len;
	}
	memmove(r->in, r->in + off, r->in_len - off);
	r->in_len -= off;
}

static void raw_read(struct ev_loop *l, ev_io *io, int revents)
{
	struct raw *r = (struct raw *)io;
	(void)revents;
	for (;;) {
		CHECK(r->in_len < sizeof(r->in), "node %u: a frame longer than the buffer", r->node);
		ssize_t n = read(r->fd, r->in + r->in_len, sizeof(r->in) - r->in_len);
		if (n > 0) {
			r->in_len += (size_t)n;
			raw_parse(r);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		CHECK(n == 0 || errno == ECONNRESET, "node %u: read: %s", r->node, strerror(errno));
		r->eof = 1;
		ev_io_stop(l, io);
		return;
	}
}

static int tcp_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0, "socket: %s", strerror(errno));
	return fd;
}

static struct sockaddr_in loopback(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	return sa;
}

/* Everything or fail; the server is on our loop, so only what fits in the
 * socket buffers can go at once: callers send little at a time. */
static void raw_send(struct raw *r, const void *p, size_t len)
{
	ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	CHECK(n == (ssize_t)len, "node %u: send %zu: %zd (%s)", r->node, len, n, strerror(errno));
}

static size_t hello(uint8_t *out, uint32_t node, uint32_t dest, uint16_t type, uint64_t dest_inc,
		    uint32_t window)
{
	struct ml_hello h = { .node_id = node, .dest_node_id = dest, .incarnation = RAW_INC + node,
			      .dest_incarnation = dest_inc, .min_version = 1, .max_version = 1,
			      .max_frag_payload = F, .max_msg_size = 1 << 20, .window = window };
	struct ml_frame_hdr fh = { .type = (uint8_t)type, .payload_len = ML_HELLO_LEN };
	ml_frame_encode(out, &fh);
	ml_hello_encode(out + ML_WIRE_HDR_LEN, &h);
	return ML_WIRE_HDR_LEN + ML_HELLO_LEN;
}

static void raw_watch(struct raw *r)
{
	fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	ev_io_init(&r->io, raw_read, r->fd, EV_READ);
	ev_io_start(loop, &r->io);
}

/* Connect as node, complete the handshake. */
static void raw_connect(struct raw *r, unsigned port, uint32_t node)
{
	memset(r, 0, sizeof(*r));
	r->node = node;
	r->fd = tcp_socket();
	struct sockaddr_in sa = loopback(port);
	CHECK(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
	uint8_t buf[ML_WIRE_HDR_LEN + ML_HELLO_MAX];
	raw_watch(r);
	raw_send(r, buf, hello(buf, node, SRV_NODE, ML_FT_HELLO, 0, 1024));
	step = "raw peer: HELLO_ACK";
	run_until_pred(flag_set, &r->acked, WAIT_S);
}

static void raw_close(struct raw *r)
{
	ev_io_stop(loop, &r->io);
	close(r->fd);
}

static size_t data_frame(uint8_t *out, const struct raw *r, unsigned kind, uint64_t seq,
			 uint32_t msg_len, uint32_t offset, const void *payload, uint32_t len)
{
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = (uint16_t)kind, .session = r->session,
				  .seq = seq, .tag = seq, .msg_len = msg_len, .offset = offset,
				  .payload_len = len };
	ml_frame_encode(out, &h);
	memcpy(out + ML_WIRE_HDR_LEN, payload, len);
	return ML_WIRE_HDR_LEN + len;
}

/* A PING answered by a PONG: the server has handled all we sent before it. */
static void raw_sync(struct raw *r)
{
	uint8_t buf[ML_WIRE_HDR_LEN + ML_PING_LEN] = { 0 };
	struct ml_frame_hdr h = { .type = ML_FT_PING, .payload_len = ML_PING_LEN, .session = r->session };
	ml_frame_encode(buf, &h);
	int want = r->pongs + 1;
	raw_send(r, buf, sizeof(buf));
	double deadline = ev_time() + WAIT_S;
	while (r->pongs < want) {
		CHECK(!r->eof, "node %u: closed while waiting for a PONG (CLOSE %d: %s)", r->node,
		      r->close_status, r->close_why);
		CHECK(ev_time() < deadline, "node %u: no PONG", r->node);
		ev_run(loop, EVRUN_ONCE);
	}
}

static void wait_eof(struct raw *r, const char *what)
{
	step = what;
	run_until_pred(flag_set, &r->eof, WAIT_S);
}

static ml_ctx *srv;

static struct ml_peer_stats peer_stats(uint32_t node)
{
	struct ml_peer_stats st;
	ml_peer *p = ml_peer_find(srv, node);
	CHECK(p, "no peer %u at the server", node);
	CHECK(ml_peer_stats_get(p, &st, NULL, NULL) == ML_OK, "stats");
	return st;
}

/* ======================================================================
 * 1. garbage and absurd lengths after the handshake
 * ====================================================================== */

/* r, connected as node, sends frame: its path closes for reason. */
static void bad_frame_on(struct raw *r, uint32_t node, const uint8_t *frame, size_t len,
			 const char *what, const char *reason)
{
	raw_send(r, frame, len);
	wait_eof(r, what);
	CHECK(!r->got_close, "%s: CLOSE %d after a protocol error (section 7: none)", what, r->close_status);
	CHECK(logged("peer ", reason), "%s: no server log line with \"%s\"", what, reason);
	CHECK(peer_stats(node).msgs_recv == 0, "%s: something was delivered", what);
	raw_close(r);
	good_still_served(what);
}

static void one_bad_frame(unsigned port, uint32_t node, const uint8_t *frame, size_t len,
			  const char *what, const char *reason)
{
	static struct raw r; /* 128 KiB each: not on the stack */
	raw_connect(&r, port, node);
	bad_frame_on(&r, node, frame, len, what, reason);
}

static void test_bad_frames(unsigned port)
{
	uint8_t buf[256];
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 64; i++)
		buf[i] = (uint8_t)(0x5a ^ (i * 37));
	one_bad_frame(port, 10, buf, 64, "garbage after the handshake", "bad magic");

	static struct raw tmp; /* session 0: refused before the session is looked at */
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = ML_KIND_ONEWAY, .seq = 1,
				  .payload_len = 1u << 30, .msg_len = 1u << 30 };
	ml_frame_encode(buf, &h);
	one_bad_frame(port, 11, buf, ML_WIRE_HDR_LEN, "payload_len 1 GiB", "payload");

	h.payload_len = 100;
	h.msg_len = (64u << 20) + 1; /* the server's max_msg_size + 1 */
	ml_frame_encode(buf, &h);
	one_bad_frame(port, 12, buf, ML_WIRE_HDR_LEN + 100, "msg_len past max_msg_size", "message");

	data_frame(buf, &tmp, ML_KIND_ONEWAY, 1, 4, 0, "abcd", 4);
	ml_put16(buf + 8, 0xffff); /* hdr_len */
	one_bad_frame(port, 13, buf, ML_WIRE_HDR_LEN + 4, "hdr_len 0xffff", "header");

	/* An RDMA descriptor on TCP (no RDMA_READ in either hello): a READ of
	 * the sender's 1 MiB must not even be tried. */
	raw_connect(&tmp, port, 14);
	h = (struct ml_frame_hdr){ .type = ML_FT_RDESC, .flags = ML_KIND_ONEWAY, .session = tmp.session,
				   .seq = 1, .payload_len = ML_RDESC_LEN, .msg_len = 1u << 20 };
	ml_frame_encode(buf, &h);
	ml_rdesc_encode(buf + ML_WIRE_HDR_LEN, &(struct ml_rdesc){ 0x10000, 42, 1u << 20 });
	bad_frame_on(&tmp, 14, buf, ML_WIRE_HDR_LEN + ML_RDESC_LEN, "RDESC on a TCP path",
		     "RDMA descriptor on a path that cannot carry one");
	printf("  bad_frames: garbage, payload_len 1 GiB, msg_len past the limit, hdr_len 0xffff,\n"
	       "    an RDMA descriptor on TCP: each closes its path, nothing delivered, the good client\n"
	       "    still served\n");
}

/* ======================================================================
 * 2. half a frame, then nothing or a byte at a time
 * ====================================================================== */

struct trickle {
	ev_timer t;
	struct raw *r;
	const uint8_t *bytes;
	size_t len, sent;
};

static void trickle_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	struct trickle *tr = (struct trickle *)t;
	(void)revents;
	if (tr->r->eof || tr->sent == tr->len) {
		ev_timer_stop(l, t);
		return;
	}
	if (send(tr->r->fd, tr->bytes + tr->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
		tr->sent++;
}

static void test_half_frames(unsigned port, double frame_timeout_s)
{
	static uint8_t frame[ML_WIRE_HDR_LEN + F];
	static struct raw r;

	/* (a) the header and half the payload, then nothing */
	raw_connect(&r, port, 20);
	size_t n = data_frame(frame, &r, ML_KIND_ONEWAY, 1, F, 0, frame + ML_WIRE_HDR_LEN, F);
	raw_send(&r, frame, n / 2);
	double t0 = ev_time();
	wait_eof(&r, "half a frame, then nothing");
	CHECK(logged("peer 20", "a frame begun"), "half a frame: no log line of the frame timeout");
	CHECK(ev_time() - t0 >= frame_timeout_s, "closed before frame_timeout_s");
	raw_close(&r);

	/* (b) the same frame one byte every 20 ms: alive, but never whole */
	raw_connect(&r, port, 21);
	n = data_frame(frame, &r, ML_KIND_ONEWAY, 1, F, 0, frame + ML_WIRE_HDR_LEN, F);
	struct trickle tr = { .r = &r, .bytes = frame, .len = n };
	ev_timer_init(&tr.t, trickle_cb, 0.02, 0.02);
	ev_timer_start(loop, &tr.t);
	wait_eof(&r, "a frame one byte every 20 ms");
	ev_timer_stop(loop, &tr.t);
	CHECK(tr.sent < n, "the whole frame went out: the test proves nothing");
	CHECK(logged("peer 21", "a frame begun"), "trickle: no log line of the frame timeout");
	CHECK(peer_stats(21).msgs_recv == 0, "trickle: delivered");
	raw_close(&r);
	good_still_served("after half frames");
	printf("  half_frames: half a frame then silence, and a frame trickled byte by byte (%zu bytes\n"
	       "    in): each path fails after frame_timeout_s %.1f s; the good client still served\n",
	       tr.sent, frame_timeout_s);
}

/* ======================================================================
 * 3. floods of fragments that never complete
 * ====================================================================== */

/* Send the 1-byte last fragment of messages of msg_len bytes, numbered 1, 2,
 * ..., up to max of them, until the server hangs up. Returns how many went. */
static unsigned flood(struct raw *r, uint32_t msg_len, unsigned max)
{
	uint8_t frame[ML_WIRE_HDR_LEN + 1];
	uint32_t last = msg_len - msg_len % F;
	unsigned i;
	for (i = 0; i < max && !r->eof && !r->got_close; i++) {
		size_t n = data_frame(frame, r, ML_KIND_ONEWAY, i + 1, msg_len, last, "x", 1);
		if (send(r->fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
			break; /* the server closed it */
		ev_run(loop, EVRUN_NOWAIT);
	}
	return i;
}

/* The server hung up with CLOSE(ML_ELIMIT) naming the limit, logged it, and
 * ended the session after delivering exactly `delivered` messages. */
static void expect_limit(struct raw *r, const char *what, const char *limit, uint64_t delivered)
{
	wait_eof(r, what);
	CHECK(r->got_close && r->close_status == ML_ELIMIT, "%s: CLOSE %d (%s), want ML_ELIMIT", what,
	      r->close_status, r->got_close ? r->close_why : "no CLOSE");
	CHECK(strstr(r->close_why, limit), "%s: the CLOSE says \"%s\", not which limit (%s)", what,
	      r->close_why, limit);
	char node[32];
	snprintf(node, sizeof(node), "peer %u:", r->node);
	CHECK(logged(node, limit) && logged(node, "ML_ELIMIT"), "%s: no server log line for it", what);
	struct ml_peer_stats st = peer_stats(r->node);
	CHECK(st.limits_hit == 1 && st.msgs_recv == delivered && st.paths_up == 0,
	      "%s: limits_hit %llu, delivered %llu, paths up %u", what, U(st.limits_hit),
	      U(st.msgs_recv), st.paths_up);
}

static void test_fragment_floods(unsigned port, unsigned max_msgs, uint64_t max_bytes)
{
	static struct raw r;
	raw_connect(&r, port, 30);
	unsigned sent = flood(&r, F + 1, 100000);
	expect_limit(&r, "flood of fragments of F + 1 bytes", "max_reasm_msgs", 0);
	CHECK(sent > max_msgs, "closed after %u fragments, the limit is %u", sent, max_msgs);
	raw_close(&r);
	good_still_served("after the flood past max_reasm_msgs");

	raw_connect(&r, port, 31);
	unsigned sent2 = flood(&r, (1u << 20) + 1, 100000);
	expect_limit(&r, "flood of fragments of 1 MiB + 1", "max_reasm_bytes", 0);
	CHECK((uint64_t)sent2 * ((1u << 20) + 1) > max_bytes, "closed after %u fragments", sent2);
	raw_close(&r);
	good_still_served("after the flood past max_reasm_bytes");
	printf("  fragment_floods: 1-byte last fragments of never-completed messages: CLOSE(ML_ELIMIT)\n"
	       "    past max_reasm_msgs %u (%u sent before the hang-up) and past max_reasm_bytes %llu\n"
	       "    (%u sent); nothing delivered; the good client still served\n",
	       max_msgs, sent, U(max_bytes), sent2);
}

/* ======================================================================
 * 4. every peer's reassembly together
 * ====================================================================== */

static int restarted(const void *arg)
{
	return peer_stats(*(const uint32_t *)arg).restarts >= 1;
}

static void park(struct raw *r, unsigned n)
{
	uint8_t frame[ML_WIRE_HDR_LEN + 1];
	for (unsigned i = 0; i < n; i++)
		raw_send(r, frame, data_frame(frame, r, ML_KIND_ONEWAY, i + 1, (1u << 20) + 1, 1u << 20,
					      "x", 1));
}

static void test_ctx_reassembly(unsigned port)
{
	static struct raw a, b, c;
	/* A holds 3 MiB (under its own 4 MiB), B would bring the whole to 6 MiB. */
	raw_connect(&a, port, 40);
	park(&a, 3);
	raw_sync(&a);
	raw_connect(&b, port, 41);
	park(&b, 3);
	expect_limit(&b, "a second peer past max_ctx_reasm_bytes", "max_ctx_reasm_bytes", 0);
	raw_close(&b);
	CHECK(!a.eof, "the first peer was closed too");
	good_still_served("after max_ctx_reasm_bytes");

	/* A goes, leaving its halves: the session timer frees them. */
	raw_close(&a);
	uint32_t node = 40;
	step = "the halves of a peer that left are freed by the session timer";
	run_until_pred(restarted, &node, WAIT_S);
	raw_connect(&c, port, 42);
	park(&c, 3);
	raw_sync(&c);
	CHECK(!c.got_close, "a third peer refused: %s", c.close_why);
	raw_close(&c);
	good_still_served("after the third peer");
	printf("  ctx_reassembly: two peers past max_ctx_reasm_bytes: the second gets CLOSE(ML_ELIMIT);\n"
	       "    the halves of the first are freed when it leaves (session timer)\n");
}

/* ======================================================================
 * 5. requests from a peer that never reads the answers
 * ====================================================================== */

static void test_unread_answers(unsigned port, unsigned max_open)
{
	static struct raw r;
	raw_connect(&r, port, 50);
	ev_io_stop(loop, &r.io); /* it stops reading */
	uint8_t frame[ML_WIRE_HDR_LEN + 8];
	unsigned i;
	for (i = 1; i <= 10 * max_open; i++) {
		size_t n = data_frame(frame, &r, ML_KIND_REQUEST, i, 8, 0, "request!", 8);
		if (send(r.fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
			break;
		ev_run(loop, EVRUN_NOWAIT);
	}
	ev_io_start(loop, &r.io); /* now it reads what it was sent, to the end */
	expect_limit(&r, "requests whose answers are never read", "max_open_requests", max_open);
	CHECK(r.data_frames <= max_open, "%llu answers for %u requests", U(r.data_frames), max_open);
	/* The answers it never acknowledged ended with the session. */
	CHECK(peer_stats(50).failed == max_open, "%llu answers failed, want %u",
	      U(peer_stats(50).failed), max_open);
	raw_close(&r);
	good_still_served("after unread answers");
	printf("  unread_answers: %u requests sent, answers never read: %u served, then\n"
	       "    CLOSE(ML_ELIMIT) past max_open_requests; the good client still served\n",
	       i - 1, max_open);
}

/* ======================================================================
 * 6. handshakes that never finish
 * ====================================================================== */

static void test_handshakes(unsigned port, unsigned max_hs)
{
	static struct raw r[8];
	CHECK(max_hs + 1 <= 8, "max_handshakes %u: too many sockets for the test", max_hs);
	for (unsigned i = 0; i <= max_hs; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].node = 60 + i;
		r[i].fd = tcp_socket();
		struct sockaddr_in sa = loopback(port);
		CHECK(connect(r[i].fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		      strerror(errno));
		raw_watch(&r[i]);
		if (i < max_hs) {
			/* Let the server accept it before the next comes: a half
			 * HELLO it holds, waiting for the rest. */
			uint8_t buf[ML_WIRE_HDR_LEN + ML_HELLO_MAX];
			hello(buf, 60 + i, SRV_NODE, ML_FT_HELLO, 0, 1024);
			raw_send(&r[i], buf, 10);
		}
	}
	/* The last one is refused at once; the others time out. */
	wait_eof(&r[max_hs], "a handshake past max_handshakes");
	CHECK(r[max_hs].got_close && r[max_hs].close_status == ML_ELIMIT &&
		      strstr(r[max_hs].close_why, "max_handshakes"),
	      "past max_handshakes: CLOSE %d (%s)", r[max_hs].close_status, r[max_hs].close_why);
	CHECK(logged("refusing connections", "max_handshakes"), "no log line for max_handshakes");
	for (unsigned i = 0; i < max_hs; i++) {
		wait_eof(&r[i], "a handshake that never finishes");
		CHECK(r[i].got_close && r[i].close_status == ML_ETIMEDOUT,
		      "unfinished handshake: CLOSE %d (%s), want ML_ETIMEDOUT", r[i].close_status,
		      r[i].close_why);
	}
	for (unsigned i = 0; i <= max_hs; i++)
		raw_close(&r[i]);
	good_still_served("after unfinished handshakes");
	printf("  handshakes: %u unfinished: CLOSE(ML_ETIMEDOUT) after handshake_timeout_s; one more:\n"
	       "    CLOSE(ML_ELIMIT) at once (max_handshakes); the good client still served\n", max_hs);
}

/* ======================================================================
 * 7. slow_reader: the sender's memory stays within its limits
 * ====================================================================== */

#define S_INFLIGHT 64
#define S_QUEUED 64
#define S_LEN 4096

struct slow {
	ml_peer *peer;
	int room, acked, failed;
};

static void s_room(void *arg, ml_peer *peer)
{
	struct slow *s = arg;
	CHECK(peer == s->peer, "on_room for another peer");
	s->room++;
}

static void s_acked(void *arg, int status)
{
	struct slow *s = arg;
	if (status == ML_OK)
		s->acked++;
	else
		s->failed++;
}

static int s_all_acked(const void *arg)
{
	const struct slow *s = arg;
	return s->acked + s->failed >= S_INFLIGHT + S_QUEUED;
}

/* The raw acceptor's side: accept, HELLO in, HELLO_ACK out. */
static void raw_accept(struct raw *r, int lfd, uint32_t node)
{
	memset(r, 0, sizeof(*r));
	r->node = node;
	step = "slow reader: the sender connects";
	for (;;) {
		r->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (r->fd >= 0)
			break;
		CHECK(errno == EAGAIN, "accept: %s", strerror(errno));
		ev_run(loop, EVRUN_ONCE);
	}
	uint8_t in[ML_WIRE_HDR_LEN + ML_HELLO_MAX];
	size_t len = 0;
	struct ml_frame_hdr h;
	struct ml_wire_limits lim = { F, 1u << 20 };
	while (len < ML_WIRE_HDR_LEN || len < ML_WIRE_HDR_LEN + h.payload_len) {
		ssize_t n = read(r->fd, in + len, sizeof(in) - len);
		if (n > 0)
			len += (size_t)n;
		else
			ev_run(loop, EVRUN_ONCE);
		if (len >= ML_WIRE_HDR_LEN)
			CHECK(ml_frame_decode(in, len, &lim, &h) == ML_WIRE_OK && h.type == ML_FT_HELLO,
			      "the sender's HELLO");
	}
	struct ml_hello hi;
	CHECK(ml_hello_decode(in + ML_WIRE_HDR_LEN, h.payload_len, &hi) == ML_WIRE_OK, "HELLO body");
	uint8_t out[ML_WIRE_HDR_LEN + ML_HELLO_MAX];
	struct ml_hello ha = { .node_id = node, .dest_node_id = hi.node_id, .incarnation = RAW_INC + node,
			       .dest_incarnation = hi.incarnation, .min_version = 1, .max_version = 1,
			       .path_idx = hi.path_idx, .max_frag_payload = F, .max_msg_size = 1 << 20,
			       .window = 1024 };
	struct ml_frame_hdr fh = { .type = ML_FT_HELLO_ACK, .payload_len = ML_HELLO_LEN,
				   .session = (RAW_INC + node) ^ hi.incarnation };
	ml_frame_encode(out, &fh);
	ml_hello_encode(out + ML_WIRE_HDR_LEN, &ha);
	r->session = fh.session;
	raw_send(r, out, ML_WIRE_HDR_LEN + ML_HELLO_LEN);
}

static void test_slow_reader(void)
{
	static struct slow s;
	static uint8_t payload[S_LEN];
	struct ml_config c;
	memset(&s, 0, sizeof(s));
	int lfd = tcp_socket();
	struct sockaddr_in sa = loopback(0);
	socklen_t sl = sizeof(sa);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0 &&
		      getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0,
	      "raw listener: %s", strerror(errno));
	fcntl(lfd, F_SETFL, O_NONBLOCK);

	ml_config_init(&c);
	c.node_id = 3;
	c.loop = loop;
	c.max_inflight_msgs = S_INFLIGHT;
	c.max_queued_msgs = S_QUEUED;
	c.max_inflight_bytes = S_INFLIGHT * S_LEN;
	c.max_queued_bytes = S_QUEUED * S_LEN;
	c.all_silent_down_s = 60; /* the raw reader sends no heartbeats */
	c.on_room = s_room;
	c.cb_arg = &s;
	ml_ctx *cli;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "sender context");
	char url[64];
	const char *urls[] = { url };
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	CHECK(ml_peer_add(cli, 70, urls, 1, &s.peer) == ML_OK, "ml_peer_add");
	static struct raw r;
	raw_accept(&r, lfd, 70);

	/* The reader reads nothing from here on: send until refused. */
	int accepted = 0, rc;
	while ((rc = ml_message_send(s.peer, (uint64_t)accepted, &(struct ml_buf){ ML_BUF_PLAIN, 0,
				     payload, 0, S_LEN }, 1, ML_SEND_COPY, s_acked, &s)) == ML_OK) {
		accepted++;
		CHECK(accepted <= S_INFLIGHT + S_QUEUED, "more admitted than the limits allow");
		ev_run(loop, EVRUN_NOWAIT);
	}
	CHECK(rc == ML_EAGAIN, "refused with %s, not ML_EAGAIN", ml_strerror(rc));
	CHECK(accepted == S_INFLIGHT + S_QUEUED, "admitted %d, want %d", accepted,
	      S_INFLIGHT + S_QUEUED);
	/* Turn the loop until the path has written all the window allows. */
	struct ml_peer_stats st;
	for (int i = 0; i < 100; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		CHECK(ml_message_send(s.peer, 0, &(struct ml_buf){ ML_BUF_PLAIN, 0, payload, 0, S_LEN }, 1,
				      ML_SEND_COPY, s_acked, &s) == ML_EAGAIN, "admitted past the limit");
	}
	CHECK(ml_peer_stats_get(s.peer, &st, NULL, NULL) == ML_OK, "stats");
	CHECK(st.inflight_msgs == S_INFLIGHT && st.queued_msgs == S_QUEUED &&
		      st.inflight_bytes == S_INFLIGHT * S_LEN && st.msgs_acked == 0,
	      "while the reader reads nothing: inflight %llu (%llu bytes), queued %llu, acked %llu",
	      U(st.inflight_msgs), U(st.inflight_bytes), U(st.queued_msgs), U(st.msgs_acked));
	CHECK(s.room == 0 && s.acked == 0 && s.failed == 0, "room %d acked %d failed %d", s.room,
	      s.acked, s.failed);

	/* The reader wakes up: it reads and acknowledges what came, until all did. */
	raw_watch(&r);
	step = "slow reader: everything acknowledged once it reads";
	uint64_t acked_to = 0;
	ev_timer tick;
	ev_timer_init(&tick, on_tick, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	double deadline = ev_time() + WAIT_S;
	while (!s_all_acked(&s)) {
		CHECK(ev_time() < deadline, "timed out: %s (acked %d, frames read %llu)", step, s.acked,
		      U(r.data_frames));
		ev_run(loop, EVRUN_ONCE);
		if (r.top_seq > acked_to) { /* one-frame messages, in order on one path */
			uint8_t buf[ML_WIRE_HDR_LEN + 16];
			struct ml_ack a = { .cum = r.top_seq };
			struct ml_frame_hdr h = { .type = ML_FT_ACK, .session = r.session,
						  .payload_len = (uint32_t)ml_ack_encode(buf + ML_WIRE_HDR_LEN, &a) };
			ml_frame_encode(buf, &h);
			raw_send(&r, buf, ML_WIRE_HDR_LEN + h.payload_len);
			acked_to = r.top_seq;
		}
	}
	ev_timer_stop(loop, &tick);
	CHECK(s.acked == S_INFLIGHT + S_QUEUED && s.failed == 0, "acked %d failed %d", s.acked, s.failed);
	CHECK(r.data_frames == S_INFLIGHT + S_QUEUED, "the reader got %llu frames for %d messages",
	      U(r.data_frames), S_INFLIGHT + S_QUEUED);
	CHECK(s.room == 1, "on_room ran %d times", s.room);
	CHECK(ml_peer_stats_get(s.peer, &st, NULL, NULL) == ML_OK && st.failed == 0 &&
		      st.inflight_msgs == 0 && st.queued_msgs == 0,
	      "after: failed %llu inflight %llu queued %llu", U(st.failed), U(st.inflight_msgs),
	      U(st.queued_msgs));
	raw_close(&r);
	close(lfd);
	ml_ctx_destroy(cli);
	printf("  slow_reader: a reader that stops: %d x %d B admitted (max_inflight + max_queued), then\n"
	       "    ML_EAGAIN; %d in flight and %d queued, no more; once it reads: all acknowledged\n"
	       "    once, on_room once, 0 lost, 0 duplicated\n",
	       accepted, S_LEN, S_INFLIGHT, S_QUEUED);
}

/* ======================================================================
 * 8. real_peer_past_limit: a msglayer node past max_open_requests
 * ====================================================================== */

#define P_REQS 40
#define P_LIMIT 16

struct holder {
	ml_request *held[P_LIMIT];
	int nheld, hold;
	int status[P_REQS + 5], calls[P_REQS + 5];
};

static void p_serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct holder *h = arg;
	(void)from;
	if (h->hold) { /* an application that does not answer (yet) */
		CHECK(h->nheld < P_LIMIT, "request %d delivered past max_open_requests", h->nheld + 1);
		h->held[h->nheld++] = req;
		return;
	}
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	CHECK(ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL) == ML_OK, "respond");
}

static struct holder hold;

static void p_done(void *arg, int status, const struct ml_msg *resp)
{
	int i = (int)(intptr_t)arg;
	(void)resp;
	hold.calls[i]++;
	hold.status[i] = status;
}

static int p_limit_hit(const void *arg)
{
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get((ml_peer *)arg, &st, NULL, NULL) == ML_OK, "stats");
	return st.limits_hit >= 1;
}

static int p_completed(const void *arg)
{
	int n = *(const int *)arg;
	for (int i = 0; i < n; i++)
		if (!hold.calls[i])
			return 0;
	return 1;
}

/* protect: the paths' protection (with a key): the CLOSE goes sealed too. */
static void test_real_peer_past_limit(int protect, const char *key_file)
{
	static struct logbuf cli_log, s2_log;
	memset(&hold, 0, sizeof(hold));
	memset(&cli_log, 0, sizeof(cli_log));
	memset(&s2_log, 0, sizeof(s2_log));
	struct ml_config c;
	ml_config_init(&c);
	c.protect = protect;
	c.key_file = key_file;
	c.node_id = 81;
	c.loop = loop;
	c.on_request = p_serve;
	c.cb_arg = &hold;
	c.max_open_requests = P_LIMIT;
	c.log = capture;
	c.log_arg = &s2_log;
	ml_ctx *s2;
	CHECK(ml_ctx_create(&c, &s2) == ML_OK, "server context");
	CHECK(ml_listen(s2, "tcp://127.0.0.1:0") == ML_OK, "listen");
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(s2, 0));

	ml_config_init(&c);
	c.node_id = 80;
	c.protect = protect;
	c.key_file = key_file;
	c.loop = loop;
	c.log = capture;
	c.log_arg = &cli_log;
	c.reconnect_min_s = 0.2; /* the server's application answers what it held first */
	ml_ctx *cli;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client context");
	const char *urls[] = { url };
	ml_peer *peer;
	CHECK(ml_peer_add(cli, 81, urls, 1, &peer) == ML_OK, "ml_peer_add");
	hold.hold = 1;
	for (int i = 0; i < P_REQS; i++)
		CHECK(ml_request_send(peer, (uint64_t)i, &(struct ml_buf){ ML_BUF_PLAIN, 0, "q", 0, 1 }, 1,
				      ML_SEND_COPY, p_done, (void *)(intptr_t)i) == ML_OK, "send");
	ml_peer *at_srv = NULL;
	step = "real peer: the server ends the session past max_open_requests";
	while (!(at_srv = ml_peer_find(s2, 80)))
		ev_run(loop, EVRUN_ONCE);
	run_until_pred(p_limit_hit, at_srv, WAIT_S);
	CHECK(hold.nheld == P_LIMIT, "%d requests delivered, want %d", hold.nheld, P_LIMIT);
	/* The application answers what it held: those answers belong to the
	 * session that ended, and go nowhere. */
	hold.hold = 0;
	for (int i = 0; i < hold.nheld; i++)
		CHECK(ml_respond(hold.held[i], NULL, 0, 0, NULL, NULL) == ML_OK, "late answer");

	int n = P_REQS;
	step = "real peer: every request completes once";
	run_until_pred(p_completed, &n, WAIT_S);
	for (int i = 0; i < P_REQS; i++)
		CHECK(hold.calls[i] == 1 && hold.status[i] == ML_EPEERRESTART,
		      "request %d: %d calls, status %s (want ML_EPEERRESTART: the server started over)", i,
		      hold.calls[i], ml_strerror(hold.status[i]));
	CHECK(logged_in(&s2_log, "peer 80:", "max_open_requests") && logged_in(&s2_log, "peer 80:", "ML_ELIMIT"),
	      "no error logged at the server");
	CHECK(logged_in(&cli_log, "peer 81 path 0", "max_open_requests"),
	      "no line at the client with the server's reason");

	/* The new session serves. */
	for (int i = P_REQS; i < P_REQS + 5; i++)
		CHECK(ml_request_send(peer, (uint64_t)i, &(struct ml_buf){ ML_BUF_PLAIN, 0, "q", 0, 1 }, 1,
				      ML_SEND_COPY, p_done, (void *)(intptr_t)i) == ML_OK, "send");
	n = P_REQS + 5;
	step = "real peer: the new session serves";
	run_until_pred(p_completed, &n, WAIT_S);
	for (int i = P_REQS; i < P_REQS + 5; i++)
		CHECK(hold.calls[i] == 1 && hold.status[i] == ML_OK, "request %d after: %s", i,
		      ml_strerror(hold.status[i]));
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(at_srv, &st, NULL, NULL) == ML_OK && st.limits_hit == 1,
	      "limits_hit %llu", U(st.limits_hit));
	ml_ctx_destroy(cli);
	ml_ctx_destroy(s2);
	printf("  real_peer_past_limit (paths %s): a msglayer client sends %d requests to a server\n"
	       "    that holds them (max_open_requests %d): an error logged at the server, the reason\n"
	       "    at the client, every request completes once with ML_EPEERRESTART; the next session\n"
	       "    serves\n", ml_protect_name(protect), P_REQS, P_LIMIT);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	loop = ev_loop_new(0);
	const unsigned max_msgs = 8, max_open = 32, max_hs = 4;
	const uint64_t max_bytes = 4u << 20;
	const double frame_timeout_s = 0.3;

	struct ml_config c;
	ml_config_init(&c);
	c.node_id = SRV_NODE;
	c.loop = loop;
	c.on_request = echo;
	c.log = capture;
	c.log_arg = &srv_log;
	c.log_level = ML_LOG_INFO;
	c.max_reasm_msgs = max_msgs;
	c.max_reasm_bytes = max_bytes;
	c.max_ctx_reasm_bytes = 6u << 20;
	c.max_open_requests = max_open;
	c.max_handshakes = max_hs;
	c.handshake_timeout_s = 0.5;
	c.frame_timeout_s = frame_timeout_s;
	c.session_timeout_s = 1.0; /* frees what a peer that left made us hold */
	c.all_silent_down_s = 30; /* raw peers send no heartbeats: no scenario may end by silence */
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server context");
	char url[64];
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "listen");
	unsigned port = ml_listen_port(srv, 0);

	ml_config_init(&c);
	c.node_id = GOOD_NODE;
	c.loop = loop;
	ml_ctx *cli;
	CHECK(ml_ctx_create(&c, &cli) == ML_OK, "client context");
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	const char *urls[] = { url };
	CHECK(ml_peer_add(cli, SRV_NODE, urls, 1, &good.peer) == ML_OK, "ml_peer_add");
	ev_timer_init(&good.pace, good_send, 0.002, 0.002);
	ev_timer_start(loop, &good.pace);
	good_still_served("the good client, before anything");

	test_bad_frames(port);
	test_half_frames(port, frame_timeout_s);
	test_fragment_floods(port, max_msgs, max_bytes);
	test_ctx_reassembly(port);
	test_unread_answers(port, max_open);
	test_handshakes(port, max_hs);
	test_slow_reader();
	test_real_peer_past_limit(ML_PROTECT_NONE, NULL);
	char dir[] = "/tmp/ml-hostile-XXXXXX", key[64];
	CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(key, sizeof(key), "%s/key", dir);
	int kfd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600);
	const char *hex = "3333333333333333333333333333333333333333333333333333333333333333\n";
	CHECK(kfd >= 0 && write(kfd, hex, strlen(hex)) == (ssize_t)strlen(hex) && close(kfd) == 0,
	      "key file: %s", strerror(errno));
	test_real_peer_past_limit(ML_PROTECT_ENCRYPT, key);
	unlink(key);
	rmdir(dir);

	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(good.peer, &st, NULL, NULL) == ML_OK, "stats");
	CHECK(good.failed == 0 && st.failed == 0 && st.restarts == 0 && st.limits_hit == 0,
	      "the good client: failed %d, restarts %llu", good.failed, U(st.restarts));
	printf("test_hostile: all scenarios passed; the good client had %d requests answered, 0 failed\n",
	       good.answered);
	good.closing = 1;
	ev_timer_stop(loop, &good.pace);
	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	return 0;
}
