/*
 * test_compress.c - compressed messages through the public API
 * (ML_SEND_LZ4, ML_SEND_ZSTD, cfg.accept_codecs; doc/api.md).
 *
 *   1. round trip, per codec: requests and responses of 1 KiB and 3 MiB
 *      (fragmented) of compressible data, from one piece and from many,
 *      come back intact; the sender's counters show them compressed (and
 *      smaller), the receiver's show them expanded
 *   2. incompressible data goes as it is (nothing counted compressed)
 *   3. a receiver that accepts no codec: the flags are ignored, messages go
 *      as they are and arrive intact
 *   4. a raw client: a frame claiming a codec the receiver did not accept,
 *      and a compressed message that does not expand, each close the path
 *      with the reason in the receiver's log and deliver nothing
 */
#define TEST_WAIT_S 20.0 /* 3 MiB echoes under valgrind and sanitizers */
#include "msglayer.h"
#include "check.h"
#include "raw.h"
#include "testnode.h"
#include "wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define RAW 3
#define BIG (3u << 20)

/* Echo, compressed the same way as the request came if the test says so. */
static unsigned echo_flags;

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct node *n = arg;
	(void)from;
	__atomic_fetch_add(&n->delivered, 1, __ATOMIC_RELAXED);
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY | echo_flags, NULL, NULL);
}

static void on_message(void *arg, ml_peer *from, const struct ml_msg *msg)
{
	struct node *n = arg;
	(void)from;
	(void)msg;
	__atomic_fetch_add(&n->delivered, 1, __ATOMIC_RELAXED);
}

static void node_start(struct node *n, uint32_t id, unsigned accept_codecs)
{
	memset(n, 0, sizeof(*n));
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = id;
	c.accept_codecs = accept_codecs;
	c.on_request = serve;
	c.on_message = on_message;
	c.cb_arg = n;
	c.log = node_log;
	c.log_arg = n;
	CHECK(ml_ctx_create(&c, &n->ctx) == ML_OK, "context");
}

struct answer {
	int done, status, intact;
	const uint8_t *sent;
	size_t len;
};

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	struct answer *a = arg;
	pthread_mutex_lock(&mu);
	a->status = status;
	a->intact = status == ML_OK && resp->len == a->len && !memcmp(resp->data, a->sent, a->len);
	a->done++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int answer_done(void *arg)
{
	return ((struct answer *)arg)->done > 0;
}

/* Text-like data: compresses well, but not to nothing. */
static uint8_t *compressible(size_t len)
{
	static const char *words[] = { "block ", "volume ", "replica ", "write ", "read ", "flush ",
				       "node-", "path ", "0x1f2e ", "\n" };
	uint8_t *p = malloc(len);
	CHECK(p, "malloc");
	unsigned seed = 7;
	for (size_t at = 0; at < len;) {
		const char *w = words[rand_r(&seed) % 10];
		size_t l = strlen(w) < len - at ? strlen(w) : len - at;
		memcpy(p + at, w, l);
		at += l;
	}
	return p;
}

static uint8_t *random_bytes(size_t len)
{
	uint8_t *p = malloc(len);
	CHECK(p, "malloc");
	unsigned seed = 11;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rand_r(&seed);
	return p;
}

/* Send data (in npieces pieces) as a request; the echo must come back intact. */
static void echo(ml_peer *peer, const uint8_t *data, size_t len, unsigned npieces, unsigned flags)
{
	struct iovec iov[8];
	size_t step = len / npieces, at = 0;
	for (unsigned i = 0; i < npieces; i++) {
		iov[i].iov_base = (void *)(data + at);
		iov[i].iov_len = i + 1 == npieces ? len - at : step;
		at += iov[i].iov_len;
	}
	struct ml_buf b = npieces == 1 ? ml_buf_plain(data, len) : ml_buf_iov(iov, npieces);
	struct answer a = { 0, 0, 0, data, len };
	CHECK(ml_request_send(peer, 5, &b, 1, flags, answered, &a) == ML_OK, "send");
	wait_for(answer_done, &a, "the echo");
	CHECK(a.status == ML_OK && a.intact && a.done == 1, "echo of %zu bytes in %u pieces: %s, intact %d",
	      len, npieces, ml_status_name(a.status), a.intact);
}

static void stats(ml_peer *p, struct ml_peer_stats *st)
{
	CHECK(ml_peer_stats_get(p, st, NULL, NULL) == 0, "stats");
}

static int up(void *arg)
{
	struct ml_peer_stats st;
	return ml_peer_stats_get(arg, &st, NULL, NULL) == 0 && st.paths_up > 0;
}

static ml_peer *connect_pair(struct node *s, struct node *c)
{
	CHECK(ml_listen(s->ctx, "tcp://127.0.0.1:0") == ML_OK, "listen");
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(s->ctx, 0));
	const char *u = url;
	ml_peer *p;
	CHECK(ml_peer_add(c->ctx, SRV, &u, 1, &p) == ML_OK, "peer add");
	wait_for(up, p, "the path");
	return p;
}

/* ======================================================================
 * 1-3
 * ====================================================================== */

static void test_codec(unsigned flag, const char *name)
{
	struct node s, c;
	node_start(&s, SRV, ML_ACCEPT_LZ4 | ML_ACCEPT_ZSTD);
	node_start(&c, CLI, ML_ACCEPT_LZ4 | ML_ACCEPT_ZSTD);
	ml_peer *p = connect_pair(&s, &c);
	echo_flags = flag;
	uint8_t *small = compressible(1024), *big = compressible(BIG), *noise = random_bytes(BIG);
	echo(p, small, 1024, 1, flag);
	echo(p, big, BIG, 1, flag);
	echo(p, big, BIG, 5, flag);
	struct ml_peer_stats st;
	stats(p, &st);
	CHECK(st.compressed_msgs == 3 && st.compressed_out < st.compressed_in / 2,
	      "%s: %llu compressed, %llu -> %llu bytes", name, (unsigned long long)st.compressed_msgs,
	      (unsigned long long)st.compressed_in, (unsigned long long)st.compressed_out);
	CHECK(st.expanded_msgs == 3, "%s: %llu responses expanded", name,
	      (unsigned long long)st.expanded_msgs);
	ml_peer *back = ml_peer_find(s.ctx, CLI);
	struct ml_peer_stats sst;
	stats(back, &sst);
	CHECK(sst.expanded_msgs == 3 && sst.compressed_msgs == 3, "%s: server expanded %llu, compressed %llu",
	      name, (unsigned long long)sst.expanded_msgs, (unsigned long long)sst.compressed_msgs);
	uint64_t in = st.compressed_in, out = st.compressed_out;
	/* incompressible: as it is */
	echo(p, noise, BIG, 1, flag);
	stats(p, &st);
	CHECK(st.compressed_msgs == 3, "%s: random data was sent compressed", name);
	ml_ctx_destroy(c.ctx);
	ml_ctx_destroy(s.ctx);
	printf("  %s: 1 KiB and 3 MiB (1 and 5 pieces) intact, %llu -> %llu bytes (%.1f%%); random data "
	       "sent as it is\n",
	       name, (unsigned long long)in, (unsigned long long)out, 100.0 * (double)out / (double)in);
	free(small);
	free(big);
	free(noise);
}

static void test_not_accepted(void)
{
	struct node s, c;
	node_start(&s, SRV, 0);
	node_start(&c, CLI, ML_ACCEPT_LZ4 | ML_ACCEPT_ZSTD);
	ml_peer *p = connect_pair(&s, &c);
	echo_flags = ML_SEND_ZSTD;
	uint8_t *big = compressible(BIG);
	echo(p, big, BIG, 1, ML_SEND_LZ4 | ML_SEND_ZSTD);
	struct ml_peer_stats st;
	stats(p, &st);
	CHECK(st.compressed_msgs == 0, "compressed for a peer that accepts no codec");
	CHECK(st.expanded_msgs == 1, "the server's compressed answer was not expanded here");
	ml_ctx_destroy(c.ctx);
	ml_ctx_destroy(s.ctx);
	free(big);
	printf("  not accepted: the server takes no codec: sent as it is, intact; its zstd answer "
	       "expanded\n");
}

/* ======================================================================
 * 4. a raw client
 * ====================================================================== */

/* Handshake by hand, then one DATA frame with these flags and payload. */
static void raw_data(unsigned port, uint16_t flags, const void *payload, uint32_t len)
{
	int fd = raw_connect(port);
	struct ml_hello hello = { .node_id = RAW, .dest_node_id = SRV, .incarnation = 0x5eed,
				  .min_version = 1, .max_version = 1, .max_frag_payload = 65536,
				  .max_msg_size = 1 << 20, .window = 64 };
	uint8_t hbuf[ML_HELLO_MAX], buf[256];
	uint32_t rlen;
	size_t n = ml_hello_encode(hbuf, &hello);
	raw_send(fd, ML_FT_HELLO, hbuf, (uint32_t)n);
	CHECK(raw_recv(fd, buf, sizeof(buf), &rlen) == ML_FT_HELLO_ACK, "HELLO_ACK");
	struct ml_hello ack;
	CHECK(ml_hello_decode(buf, rlen, &ack) == ML_WIRE_OK, "HELLO_ACK payload");
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = (uint16_t)(ML_KIND_ONEWAY | flags),
				  .payload_len = len, .msg_len = len, .seq = 1, .tag = 1,
				  .session = hello.incarnation ^ ack.incarnation };
	raw_send_frame(fd, &h, payload);
	/* The receiver closes the path; whatever else came first (a PING), the
	 * stream ends. */
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			break;
	}
	close(fd);
}

static void test_raw(void)
{
	struct node s;
	node_start(&s, SRV, ML_ACCEPT_ZSTD);
	CHECK(ml_listen(s.ctx, "tcp://127.0.0.1:0") == ML_OK, "listen");
	unsigned port = ml_listen_port(s.ctx, 0);

	uint8_t junk[64];
	memset(junk, 'x', sizeof(junk));
	raw_data(port, ML_CODEC_LZ4 << ML_FLAG_CODEC_SHIFT, junk, sizeof(junk));
	struct log_goal g = { &s, "which this node did not accept" };
	wait_for(logged, &g, "the refusal of a codec not accepted");

	ml_put32(junk, 1000); /* claims 1000 bytes, expands to nothing of the kind */
	raw_data(port, ML_CODEC_ZSTD << ML_FLAG_CODEC_SHIFT, junk, sizeof(junk));
	struct log_goal g2 = { &s, "does not expand" };
	wait_for(logged, &g2, "the refusal of a message that does not expand");

	ml_put32(junk, 0x80000000u); /* 2 GiB: beyond max_msg_size */
	raw_data(port, ML_CODEC_ZSTD << ML_FLAG_CODEC_SHIFT, junk, sizeof(junk));
	struct log_goal g3 = { &s, "expands beyond max_msg_size" };
	wait_for(logged, &g3, "the refusal of a message that would expand too far");

	CHECK(__atomic_load_n(&s.delivered, __ATOMIC_RELAXED) == 0, "%d messages delivered",
	      s.delivered);
	ml_ctx_destroy(s.ctx);
	printf("  raw: an unaccepted codec, a payload that does not expand and one that would expand "
	       "past max_msg_size: refused, logged, nothing delivered\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_codec(ML_SEND_LZ4, "lz4");
	test_codec(ML_SEND_ZSTD, "zstd");
	test_not_accepted();
	test_raw();
	printf("test_compress: all scenarios passed\n");
	return 0;
}
