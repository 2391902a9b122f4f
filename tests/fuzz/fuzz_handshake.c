/*
 * fuzz_handshake.c - libFuzzer target: an accepting context's greeting of a
 * new connection (listen.c), the handshake that completes it (path.c,
 * peer.c), and the session's handling of whatever frames follow.
 *
 * Each input runs against a fresh context in embedded mode on one libev
 * loop. The connection is a socketpair: the context greets one end as it
 * greets an accepted TCP connection (ml_greet); the input's chunks (format in
 * fuzz.h) go into the other end, each followed by as many loop turns as the
 * context needs to read and answer it. Checked:
 *  - the first chunk is answered as doc/protocol.md section 5 says: not at
 *    all while it is incomplete; by a CLOSE carrying the status of the first
 *    check that fails, then end of stream; by end of stream alone when the
 *    peer's terms are impossible (6.1); else by the HELLO_ACK it must send;
 *  - everything the context writes is a well-formed frame stream: it
 *    decodes, HELLO_ACK and ACK bodies parse, DATA fits the session;
 *  - after every chunk the session's receive state is consistent: a
 *    reassembly is only held for a number not yet delivered, in its slot,
 *    and the bytes held add up;
 *  - every message the context sent completes exactly once, and nothing
 *    leaks (LeakSanitizer) once the context is destroyed.
 */
#include <errno.h>
#include <ev.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frames.h"
#include "fuzz.h"
#include "internal.h"
#include "mutate.h"

#define GREETING_BUF (ML_WIRE_HDR_MAX + ML_WIRE_CTRL_MAX) /* listen.c reads this much at most */
#define MAX_TURNS 5000 /* loop turns per chunk: a bound, never reached by a working context */
#define NSENDS 3

static struct ev_loop *loop;

struct run {
	ml_ctx *ctx;
	int fd;              /* our end of the connection */
	uint8_t opts;        /* FZ_HS_* */
	uint8_t greet[GREETING_BUF]; /* the bytes the greeting reads, in order */
	size_t greet_total;  /* bytes sent while the greeting was undecided */
	int blind;           /* a chunk went in several writes: no oracle */
	int hello_seen;      /* the greeting got a HELLO that decodes */
	struct ml_hello hello;
	uint64_t session;    /* the session id both sides compute from it */
	uint8_t out[65536];  /* what the context wrote, not yet parsed */
	size_t outlen;
	unsigned frames;     /* frames it wrote */
	int first_type;      /* type of its first frame (0: none yet) */
	int32_t close_status;
	int late_close;       /* a CLOSE after the handshake (ML_ELIMIT): the last frame */
	int eof;             /* it closed the connection */
	int completions[NSENDS];
};

/* ---- the context's side ---- */

static void on_log(void *arg, int level, const char *text)
{
	(void)arg;
	(void)level;
	(void)text; /* formatted (that much runs), then dropped */
}

static void on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	(void)status;
	(void)resp;
	(*(int *)arg)++;
}

static void on_sent(void *arg, int status)
{
	(void)status;
	(*(int *)arg)++;
}

static ml_ctx *context_new(uint8_t opts)
{
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = FZ_HS_NODE;
	c.incarnation = FZ_HS_INCARNATION;
	c.loop = loop;
	c.max_frag_payload = FZ_HS_FRAG;
	c.max_msg_size = FZ_HS_MAX_MSG;
	c.max_inflight_msgs = FZ_HS_WINDOW;
	c.max_inflight_bytes = FZ_HS_MAX_MSG;
	/* No timer may decide anything within an input: no heartbeats, no
	 * liveness verdicts, no session timeout. */
	c.heartbeat_interval_s = 3600;
	c.path_down_s = 3600;
	c.all_silent_down_s = 3600;
	c.session_timeout_s = 3600;
	c.frame_timeout_s = 3600;
	/* Limits an input can reach, so that the CLOSE(ML_ELIMIT) and the end
	 * of the session behind it are fuzzed too (section 8). */
	c.max_reasm_msgs = 4;
	c.max_open_requests = 8;
	c.accept_unknown_peers = !(opts & FZ_HS_KNOWN_ONLY);
	c.on_request = on_request;
	c.log = on_log;
	c.log_level = ML_LOG_DEBUG;
	ml_ctx *ctx;
	FZ_CHECK(ml_ctx_create(&c, &ctx) == 0, "context");
	return ctx;
}

/* The known peer gets a request, a one-way message of three fragments and
 * an empty request (as many as the options ask): so that the fuzzer's ACKs
 * and responses have something to acknowledge and answer. */
static void send_some(struct run *r)
{
	static uint8_t payload[10000];
	ml_peer *p;
	FZ_CHECK(ml_peer_add(r->ctx, FZ_HS_PEER, NULL, 0, &p) == 0, "peer");
	unsigned n = (r->opts >> FZ_HS_SENDS_SHIFT) & FZ_HS_SENDS_MASK;
	for (unsigned i = 0; i < n; i++) {
		struct ml_buf b = ml_buf_plain(payload, i == 0 ? 100 : i == 1 ? sizeof(payload) : 0);
		int rc = i == 1 ? ml_message_send(p, 7, &b, 1, 0, on_sent, &r->completions[i])
				: ml_request_send(p, 42 + i, &b, 1, 0, on_response, &r->completions[i]);
		FZ_CHECK(rc == 0, "send %u: %d", i, rc);
	}
}

/* ---- what the context writes ---- */

static int allowed_close_status(int32_t s)
{
	/* ML_EAUTH: a HELLO offering a key to this keyless context. */
	return s == ML_EPROTO || s == ML_EVERSION || s == ML_ENODE || s == ML_ENOENT ||
	       s == ML_ENOMEM || s == ML_ETIMEDOUT || s == ML_EAUTH || s == ML_ELIMIT;
}

static void check_hello_ack(const struct run *r, const uint8_t *payload, const struct ml_frame_hdr *h)
{
	struct ml_hello a;
	if (!r->hello_seen) {
		FZ_CHECK(r->blind, "HELLO_ACK without a HELLO");
		return;
	}
	FZ_CHECK(h->payload_len == ML_HELLO_LEN && ml_hello_decode(payload, h->payload_len, &a) == 0,
		 "HELLO_ACK body");
	FZ_CHECK(a.node_id == FZ_HS_NODE && a.dest_node_id == r->hello.node_id &&
			 a.incarnation == FZ_HS_INCARNATION && a.dest_incarnation == r->hello.incarnation &&
			 a.min_version == ML_WIRE_VERSION && a.max_version == ML_WIRE_VERSION &&
			 a.path_idx == r->hello.path_idx && a.max_frag_payload == FZ_HS_FRAG &&
			 a.max_msg_size == FZ_HS_MAX_MSG && a.window == FZ_HS_WINDOW,
		 "HELLO_ACK fields (section 4.1)");
	FZ_CHECK(h->session == r->session, "HELLO_ACK session");
}

/* One frame the context wrote, in stream order. */
static void check_frame(struct run *r, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	if (r->frames++ == 0) {
		r->first_type = h->type;
		FZ_CHECK(h->type == ML_FT_HELLO_ACK || h->type == ML_FT_CLOSE,
			 "first frame of type %u (section 5: HELLO_ACK or CLOSE)", h->type);
		if (h->type == ML_FT_HELLO_ACK) {
			check_hello_ack(r, payload, h);
		} else {
			FZ_CHECK(h->payload_len >= ML_CLOSE_MIN && h->payload_len <= ML_CLOSE_MIN + 120 &&
					 h->session == 0, "CLOSE frame");
			r->close_status = (int32_t)ml_get32(payload);
			FZ_CHECK(allowed_close_status(r->close_status), "CLOSE status %d", r->close_status);
		}
		return;
	}
	FZ_CHECK(r->first_type == ML_FT_HELLO_ACK && !r->late_close, "frame after a CLOSE");
	if (!r->hello_seen)
		return; /* blind: the terms of the session are unknown */
	FZ_CHECK(h->session == r->session, "frame of type %u with another session", h->type);
	uint32_t frag = r->hello.max_frag_payload < FZ_HS_FRAG ? r->hello.max_frag_payload : FZ_HS_FRAG;
	switch (h->type) {
	case ML_FT_DATA:
		FZ_CHECK(h->seq >= 1 && h->payload_len <= frag && h->offset % frag == 0 &&
				 h->msg_len <= r->hello.max_msg_size,
			 "DATA frame does not fit the session");
		break;
	case ML_FT_ACK: {
		struct ml_ack a;
		FZ_CHECK(ml_ack_decode(payload, h->payload_len, &a) == 0, "ACK body");
		break;
	}
	case ML_FT_PING:
	case ML_FT_PONG:
		FZ_CHECK(h->payload_len <= 64, "PING/PONG of %u bytes", h->payload_len);
		break;
	case ML_FT_CLOSE: /* section 8: a peer past a limit is told so, then its session ends */
		FZ_CHECK(h->payload_len >= ML_CLOSE_MIN && (int32_t)ml_get32(payload) == ML_ELIMIT,
			 "CLOSE after the handshake with status %d", (int32_t)ml_get32(payload));
		r->late_close = 1;
		break;
	default:
		FZ_CHECK(0, "frame of type %u after the handshake", h->type);
	}
}

/* Read what the context wrote and check each whole frame. Returns 1 if
 * anything came (bytes or end of stream). */
static int drain(struct run *r)
{
	static const struct ml_wire_limits any = { 16u << 20, UINT32_MAX };
	int got = 0;
	for (;;) {
		ssize_t n = read(r->fd, r->out + r->outlen, sizeof(r->out) - r->outlen);
		if (n < 0) {
			FZ_CHECK(errno == EAGAIN || errno == ECONNRESET, "read: %s", strerror(errno));
			if (errno == ECONNRESET && !r->eof)
				r->eof = got = 1;
			break;
		}
		if (n == 0) {
			if (!r->eof)
				r->eof = got = 1;
			break;
		}
		FZ_CHECK(!r->eof, "bytes after the end of stream");
		got = 1;
		r->outlen += (size_t)n;
		size_t off = 0;
		struct ml_frame_hdr h;
		enum ml_wire_err e;
		while ((e = ml_frame_decode(r->out + off, r->outlen - off, &any, &h)) == ML_WIRE_OK &&
		       r->outlen - off >= (size_t)h.hdr_len + h.payload_len) {
			check_frame(r, &h, r->out + off + h.hdr_len);
			off += (size_t)h.hdr_len + h.payload_len;
		}
		FZ_CHECK(e == ML_WIRE_OK || e == ML_WIRE_NEED_MORE, "the context wrote a bad frame: %s",
			 ml_wire_strerror(e));
		memmove(r->out, r->out + off, r->outlen - off);
		r->outlen -= off;
	}
	return got;
}

/* Turn the loop until the context has read all we wrote and has nothing
 * more to say: three quiet turns in a row (a command posted to the worker
 * needs one turn, the batch it causes is written in the next). */
static void pump(struct run *r)
{
	int quiet = 0;
	for (int turn = 0; turn < MAX_TURNS && quiet < 3; turn++) {
		ev_run(loop, EVRUN_NOWAIT);
		int unread = 0;
		if (ioctl(r->fd, SIOCOUTQ, &unread) != 0)
			unread = 0;
		quiet = drain(r) || unread > 0 ? 0 : quiet + 1;
	}
}

/* Write all of b, turning the loop when the socket is full. Returns 1 if it
 * went in one write (so the context reads it in one go). */
static int send_chunk(struct run *r, const uint8_t *b, size_t n)
{
	int writes = 0;
	while (n > 0) {
		ssize_t w = send(r->fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN)
				return 0; /* the context hung up: the rest goes nowhere */
			pump(r);
			continue;
		}
		writes++;
		b += w;
		n -= (size_t)w;
	}
	return writes <= 1;
}

/* ---- the oracle for the first chunk (doc/protocol.md section 5) ---- */

enum verdict { V_WAIT, V_CLOSE, V_EOF, V_ACK };

/* What the greeting answers to the bytes it has read (all sent so far, up
 * to its buffer's size). */
static enum verdict greeting_verdict(struct run *r, int32_t *status)
{
	const struct ml_config *cfg = &r->ctx->cfg;
	const uint8_t *c = r->greet;
	size_t n = r->greet_total, seen = n < GREETING_BUF ? n : GREETING_BUF;
	struct ml_frame_hdr h;
	*status = ML_EPROTO;
	enum ml_wire_err e = ml_frame_decode(c, seen, &r->ctx->limits, &h);
	if (e == ML_WIRE_NEED_MORE || (e == ML_WIRE_OK && seen < (size_t)h.hdr_len + h.payload_len))
		return n > GREETING_BUF ? V_CLOSE : V_WAIT; /* a greeting longer than any HELLO */
	if (e != ML_WIRE_OK || h.type != ML_FT_HELLO || seen != (size_t)h.hdr_len + h.payload_len)
		return V_CLOSE;
	struct ml_hello *o = &r->hello;
	if (ml_hello_decode(c + h.hdr_len, h.payload_len, o))
		return V_CLOSE;
	r->hello_seen = 1;
	r->session = FZ_HS_INCARNATION ^ o->incarnation;
	*status = ML_EVERSION;
	if (o->max_version < ML_WIRE_MIN_VERSION || o->min_version > ML_WIRE_VERSION)
		return V_CLOSE;
	*status = ML_ENODE;
	if ((o->dest_node_id && o->dest_node_id != FZ_HS_NODE) || o->node_id == FZ_HS_NODE)
		return V_CLOSE;
	*status = ML_ENOENT;
	if (!cfg->accept_unknown_peers && o->node_id != FZ_HS_PEER)
		return V_CLOSE;
	*status = ML_EAUTH; /* this context has no cluster key: a HELLO offering one is refused */
	if (o->flags & ML_HELLO_F_AUTH)
		return V_CLOSE;
	*status = 0;
	if (o->max_frag_payload < 4096 || o->max_msg_size == 0)
		return V_EOF; /* 6.1: impossible terms close the path without a CLOSE */
	return V_ACK;
}

static void check_greeting(const struct run *r, enum verdict v, int32_t status)
{
	switch (v) {
	case V_WAIT:
		FZ_CHECK(r->frames == 0 && !r->eof, "an incomplete HELLO was answered");
		break;
	case V_CLOSE:
		FZ_CHECK(r->first_type == ML_FT_CLOSE && r->frames == 1 && r->eof,
			 "expected CLOSE(%d) and end of stream, got %u frames (first %d), eof %d", status,
			 r->frames, r->first_type, r->eof);
		FZ_CHECK(r->close_status == status, "CLOSE(%d), section 5 says %d", r->close_status, status);
		break;
	case V_EOF:
		FZ_CHECK(r->frames == 0 && r->eof, "impossible terms: expected end of stream alone");
		break;
	case V_ACK:
		FZ_CHECK(r->first_type == ML_FT_HELLO_ACK && !r->eof, "expected a HELLO_ACK");
		break;
	}
}

/* ---- the session's receive state ---- */

static void check_session(const struct run *r)
{
	if (!r->hello_seen)
		return;
	struct ml_peer *p = ml_peer_find(r->ctx, r->hello.node_id);
	if (!p)
		return;
	uint64_t held = 0;
	uint32_t mask = p->rx.size - 1;
	FZ_CHECK(p->rx.base <= p->rx.highest, "window base above its highest");
	for (uint32_t i = 0; i < p->rx.size; i++) {
		const struct ml_reasm *m = p->reasm[i];
		if (!m)
			continue;
		FZ_CHECK((m->seq & mask) == i, "reassembly of %llu in slot %u", (unsigned long long)m->seq, i);
		FZ_CHECK(ml_rxwin_check(&p->rx, m->seq) == ML_RXWIN_NEW,
			 "reassembly held for %llu, which the window calls %s", (unsigned long long)m->seq,
			 ml_rxwin_check(&p->rx, m->seq) == ML_RXWIN_DUP ? "delivered" : "out of the window");
		FZ_CHECK(m->msg_len > p->frag_size && m->nrecv < m->nfrags, "reassembly state");
		held += m->msg_len;
	}
	FZ_CHECK(held == p->reasm_bytes, "reassembly holds %llu bytes, counted %llu",
		 (unsigned long long)held, (unsigned long long)p->reasm_bytes);
}

/* ---- one input ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

/* Half the mutations work on whole frames (mutate.h), half on bytes. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	if (seed & 1) {
		size_t n = fz_mutate_frames(data, size, max_size, seed >> 1);
		if (n)
			return n;
	}
	return LLVMFuzzerMutate(data, size, max_size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	loop = ev_loop_new(EVFLAG_NOENV | EVBACKEND_EPOLL);
	FZ_CHECK(loop != NULL, "libev loop");
	/* liburcu runs a resize thread while any auto-resizing hash table
	 * exists; each context has one. This one, never destroyed, keeps that
	 * thread for the whole run instead of one start and join per input
	 * (slow, and ASan keeps a little of every thread that ever ran). */
	static struct cds_lfht *keep;
	keep = cds_lfht_new(1, 1, 0, CDS_LFHT_AUTO_RESIZE, NULL);
	FZ_CHECK(keep != NULL, "hash table");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	int sv[2];
	if (size < 1)
		return 0;
	memset(&r, 0, sizeof(r));
	r.opts = data[0];
	r.ctx = context_new(r.opts);
	send_some(&r);
	FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	r.fd = sv[1];
	FZ_CHECK(ml_greet(&r.ctx->workers[0], &ml_tcp_ops, sv[0], "unix://fuzz") == 0, "greet");

	static uint8_t chunk[65536];
	enum verdict v = V_WAIT;
	size_t off = 1;
	while (off < size && !r.eof) {
		size_t n = size - off < 2 ? 0 : ml_get16(data + off);
		off += size - off < 2 ? size - off : 2;
		if (n > size - off)
			n = size - off;
		memcpy(chunk, data + off, n);
		off += n;
		if (r.opts & FZ_HS_FIX_CRC)
			fz_fix_frames(chunk, n, (r.opts & FZ_HS_FIX_SESSION) && r.hello_seen ? &r.session : NULL);
		int32_t status = 0;
		int undecided = v == V_WAIT && !r.blind;
		if (undecided) {
			size_t room = GREETING_BUF - (r.greet_total < GREETING_BUF ? r.greet_total : GREETING_BUF);
			memcpy(r.greet + GREETING_BUF - room, chunk, n < room ? n : room);
			r.greet_total += n;
			v = greeting_verdict(&r, &status);
		}
		if (!send_chunk(&r, chunk, n) && undecided)
			r.blind = 1; /* read in pieces: the greeting may have seen other prefixes */
		pump(&r);
		if (undecided && !r.blind)
			check_greeting(&r, v, status);
		if (!r.eof)
			check_session(&r);
	}
	/* The connector goes away: the context sees the end of its stream. */
	shutdown(r.fd, SHUT_WR);
	pump(&r);
	ml_ctx_destroy(r.ctx);
	drain(&r);
	close(r.fd);
	for (unsigned i = 0; i < ((r.opts >> FZ_HS_SENDS_SHIFT) & FZ_HS_SENDS_MASK); i++)
		FZ_CHECK(r.completions[i] == 1, "send %u completed %d times", i, r.completions[i]);
	return 0;
}
