/*
 * seeds.c - writes the fuzz targets' seed corpora (make fuzz-seeds):
 *   seeds DIR    writes DIR/<target>/<name> for wire, handshake, reasm, record
 *
 * Every seed is made by the library's own encoders (ml_frame_encode,
 * ml_hello_encode, ml_ack_encode, mlps_msg_encode) or captured from a real
 * session over loopback (capture.c), so the fuzzers start from what real
 * peers send, not from what a test author thinks they send.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "capture.h"
#include "codec.h"
#include "fuzz.h"
#include "msglayer.h"
#include "record.h"
#include "wire.h"

static const char *outdir;

static void put(const char *target, const char *name, const void *b, size_t len)
{
	char path[512];
	FZ_CHECK(mkdir(outdir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", outdir, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	FZ_CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "wb");
	FZ_CHECK(f && fwrite(b, 1, len, f) == len && fclose(f) == 0, "write %s", path);
}

/* A growing byte buffer. */
struct bytes {
	uint8_t b[1 << 17];
	size_t len;
};

static void add(struct bytes *o, const void *p, size_t n)
{
	FZ_CHECK(o->len + n <= sizeof(o->b), "seed too long");
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

/* ---- frames ---- */

static uint8_t pattern[65536]; /* message bytes: byte i is (uint8_t)(i * 7 + 3) */

static void frame(struct bytes *o, const struct ml_frame_hdr *h, const void *payload)
{
	uint8_t hdr[ML_WIRE_HDR_LEN];
	ml_frame_encode(hdr, h);
	add(o, hdr, sizeof(hdr));
	add(o, payload, h->payload_len);
}

static void hello(struct bytes *o, uint8_t type, uint32_t node, uint32_t dest, uint64_t inc,
		  uint16_t minv, uint16_t maxv, uint32_t frag)
{
	struct ml_hello m = { .node_id = node, .dest_node_id = dest, .incarnation = inc,
			      .min_version = minv, .max_version = maxv, .max_frag_payload = frag,
			      .max_msg_size = FZ_HS_MAX_MSG, .window = FZ_HS_WINDOW };
	uint8_t p[ML_HELLO_LEN];
	ml_hello_encode(p, &m);
	struct ml_frame_hdr h = { .type = type, .payload_len = sizeof(p) };
	frame(o, &h, p);
}

/* The connector's HELLO as fuzz_handshake's context expects it from its peer. */
static void peer_hello(struct bytes *o)
{
	hello(o, ML_FT_HELLO, FZ_HS_PEER, FZ_HS_NODE, FZ_HS_PEER_INCARNATION, 1, 1, FZ_HS_FRAG);
}

static const uint64_t session = FZ_HS_INCARNATION ^ FZ_HS_PEER_INCARNATION;

/* A message of len bytes as a sender cuts it in fragments of frag bytes;
 * only the fragments listed in order[] (indexes), in that order. */
static void message(struct bytes *o, uint16_t flags, uint64_t seq, uint64_t ref, uint32_t len,
		    uint32_t frag, const unsigned *order, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t off = order[i] * frag;
		struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = flags, .session = session,
					  .seq = seq, .tag = 42, .ref = ref, .msg_len = len, .offset = off,
					  .payload_len = len - off < frag ? len - off : frag };
		frame(o, &h, pattern + off);
	}
}

static void whole(struct bytes *o, uint16_t flags, uint64_t seq, uint64_t ref, uint32_t len)
{
	static const unsigned first = 0;
	message(o, flags, seq, ref, len, FZ_HS_FRAG, &first, 1);
}

/* A one-way message as a sender with ML_SEND_LZ4 or ML_SEND_ZSTD writes it:
 * the original length, then the codec's output for len bytes of text. */
static void compressed(struct bytes *o, int codec, uint64_t seq, uint32_t len)
{
	static char text[8192];
	static const char words[] = "block volume replica write ";
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = words[i % (sizeof(words) - 1)];
	FZ_CHECK(len <= sizeof(text), "compressed seed too long");
	struct iovec v = { text, len };
	size_t n;
	void *z = ml_codec_compress(codec, &v, 1, len, &n);
	FZ_CHECK(z, "compress a seed");
	struct ml_frame_hdr h = { .type = ML_FT_DATA,
				  .flags = (uint16_t)(ML_KIND_ONEWAY | codec << ML_FLAG_CODEC_SHIFT),
				  .session = session, .seq = seq, .tag = 42, .msg_len = (uint32_t)n,
				  .payload_len = (uint32_t)n };
	frame(o, &h, z);
	free(z);
}

/* A one-way message of len bytes (one fragment) as an RDESC: its bytes in
 * the sender's registered memory, for the receiver to READ. */
static void rdesc(struct bytes *o, uint64_t seq, uint32_t len)
{
	uint8_t p[ML_RDESC_LEN];
	ml_rdesc_encode(p, &(struct ml_rdesc){ 0x00007f5a12340000ull, 0x1234, len });
	struct ml_frame_hdr h = { .type = ML_FT_RDESC, .flags = ML_KIND_ONEWAY, .session = session,
				  .seq = seq, .tag = 42, .msg_len = len, .payload_len = sizeof(p) };
	frame(o, &h, p);
}

static void ack(struct bytes *o, uint64_t cum, const uint64_t (*r)[2], unsigned n)
{
	static struct ml_ack a;
	uint8_t p[16 + 16 * ML_WIRE_SACK_MAX];
	a.cum = cum;
	a.nranges = n;
	for (unsigned i = 0; i < n; i++) {
		a.r[i].start = r[i][0];
		a.r[i].end = r[i][1];
	}
	struct ml_frame_hdr h = { .type = ML_FT_ACK, .session = session,
				  .payload_len = (uint32_t)ml_ack_encode(p, &a) };
	frame(o, &h, p);
}

static void ctrl(struct bytes *o, uint8_t type, uint64_t sess, const void *p, uint32_t len)
{
	struct ml_frame_hdr h = { .type = type, .session = sess, .payload_len = len };
	frame(o, &h, p);
}

static void close_frame(struct bytes *o, int32_t status, const char *why)
{
	uint8_t p[128];
	ml_put32(p, (uint32_t)status);
	memcpy(p + 4, why, strlen(why));
	ctrl(o, ML_FT_CLOSE, 0, p, (uint32_t)(4 + strlen(why)));
}

/* ---- fuzz_wire: frames one by one, and streams ---- */

static void wire_seeds(const struct fz_capture *cap)
{
	static struct bytes o;
	uint8_t ts[ML_PING_LEN];
	ml_put64(ts, 0x0123456789abcdefull);
	static const uint64_t three[][2] = { { 3, 4 }, { 7, 7 }, { 10, 200 } };
	static uint64_t many[ML_WIRE_SACK_MAX][2];
	for (unsigned i = 0; i < ML_WIRE_SACK_MAX; i++)
		many[i][0] = many[i][1] = 2 + 2 * i;
	static const unsigned frags3[] = { 0, 1, 2 };

#define SEED(name, ...) do { o.len = 0; __VA_ARGS__; put("wire", name, o.b, o.len); } while (0)
	SEED("hello", peer_hello(&o));
	SEED("hello-ack", hello(&o, ML_FT_HELLO_ACK, FZ_HS_NODE, FZ_HS_PEER, FZ_HS_INCARNATION, 1, 1,
				FZ_HS_FRAG));
	SEED("data-request", whole(&o, ML_KIND_REQUEST, 1, 0, 5));
	SEED("data-response", whole(&o, ML_KIND_RESPONSE, 1, 1, 2));
	SEED("data-abort", whole(&o, ML_KIND_RESPONSE | ML_FLAG_ABORT, 2, 1, 20));
	SEED("data-cancel", whole(&o, ML_KIND_ONEWAY | ML_FLAG_CANCEL, 3, 1, 0));
	SEED("data-lz4", compressed(&o, ML_CODEC_LZ4, 6, 4000));
	SEED("data-zstd", compressed(&o, ML_CODEC_ZSTD, 7, 4000));
	SEED("data-stream-chunk", whole(&o, ML_KIND_ONEWAY | ML_FLAG_STREAM, 8, 1, 64));
	SEED("data-oneway-fragments", message(&o, ML_KIND_ONEWAY, 4, 0, 10000, FZ_HS_FRAG, frags3, 3));
	SEED("rdesc", rdesc(&o, 9, FZ_HS_FRAG));
	SEED("ack-cum", ack(&o, 5, NULL, 0));
	SEED("ack-ranges", ack(&o, 1, three, 3));
	SEED("ack-64-ranges", ack(&o, 0, many, ML_WIRE_SACK_MAX));
	SEED("ping", ctrl(&o, ML_FT_PING, session, ts, sizeof(ts)));
	SEED("pong", ctrl(&o, ML_FT_PONG, session, ts, sizeof(ts)));
	SEED("close", close_frame(&o, ML_EVERSION, "no common version"));
	SEED("stream", peer_hello(&o); whole(&o, ML_KIND_REQUEST, 1, 0, 100); ack(&o, 1, three, 3);
	     ctrl(&o, ML_FT_PING, session, ts, sizeof(ts)); close_frame(&o, ML_EPROTO, ""));
	/* A header of a newer version: 16 more bytes, covered by the CRC. */
	SEED("data-longer-header", whole(&o, ML_KIND_ONEWAY, 5, 0, 3);
	     memmove(o.b + 80, o.b + 64, 3); memset(o.b + 64, 0xee, 16); ml_put16(o.b + 8, 80);
	     ml_put32(o.b + 12, 0); ml_put32(o.b + 12, ml_crc32c(o.b, 80)); o.len = 83);
#undef SEED
	/* What real peers wrote, cut to a size the fuzzer mutates quickly. */
	put("wire", "capture-connector", cap->c2s, cap->c2s_len < 8192 ? cap->c2s_len : 8192);
	put("wire", "capture-acceptor", cap->s2c, cap->s2c_len < 8192 ? cap->s2c_len : 8192);
}

/* ---- fuzz_handshake: an options byte, then chunks ---- */

static void chunk(struct bytes *o, const struct bytes *c)
{
	uint8_t l[2];
	ml_put16(l, (uint16_t)c->len);
	add(o, l, 2);
	add(o, c->b, c->len);
}

static void handshake_seed(const char *name, uint8_t opts, void (*first)(struct bytes *),
			   void (*rest)(struct bytes *))
{
	static struct bytes o, c;
	o.len = 0;
	add(&o, &opts, 1);
	c.len = 0;
	first(&c);
	chunk(&o, &c);
	if (rest) {
		c.len = 0;
		rest(&c);
		chunk(&o, &c);
	}
	put("handshake", name, o.b, o.len);
}

static void hs_unknown_node(struct bytes *o)
{
	hello(o, ML_FT_HELLO, 3, 0, 77, 1, 1, 65536);
}
static void hs_versions(struct bytes *o)
{
	hello(o, ML_FT_HELLO, FZ_HS_PEER, FZ_HS_NODE, 77, 2, 3, FZ_HS_FRAG);
}
static void hs_wrong_dest(struct bytes *o)
{
	hello(o, ML_FT_HELLO, FZ_HS_PEER, 9, 77, 1, 1, FZ_HS_FRAG);
}
static void hs_own_id(struct bytes *o)
{
	hello(o, ML_FT_HELLO, FZ_HS_NODE, 0, 77, 1, 1, FZ_HS_FRAG);
}
static void hs_small_frag(struct bytes *o)
{
	hello(o, ML_FT_HELLO, FZ_HS_PEER, FZ_HS_NODE, 77, 1, 1, 1024);
}
static void hs_hello_and_more(struct bytes *o)
{
	peer_hello(o);
	whole(o, ML_KIND_ONEWAY, 1, 0, 10);
}
static void hs_data_first(struct bytes *o)
{
	whole(o, ML_KIND_REQUEST, 1, 0, 5);
}
static void hs_garbage(struct bytes *o)
{
	add(o, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
}

/* After the handshake: everything a session receives, including what it
 * must refuse or drop quietly. */
static void hs_session(struct bytes *o)
{
	static const uint64_t r23[][2] = { { 3, 3 } };
	static const unsigned shuffled[] = { 2, 0, 0, 1 }; /* with a repeat */
	uint8_t ts[ML_PING_LEN];
	ml_put64(ts, 1);
	ack(o, 1, r23, 1);                                  /* our request 1 and message 3 */
	whole(o, ML_KIND_REQUEST, 1, 0, 100);               /* answered by an echo */
	message(o, ML_KIND_ONEWAY, 2, 0, 10000, FZ_HS_FRAG, shuffled, 4);
	whole(o, ML_KIND_RESPONSE, 3, 1, 100);              /* answers our request 1 */
	whole(o, ML_KIND_REQUEST, 1, 0, 100);               /* a duplicate */
	whole(o, ML_KIND_ONEWAY | ML_FLAG_CANCEL, 4, 9, 0); /* cancels 9 before it comes */
	whole(o, ML_KIND_REQUEST, 9, 0, 1);                 /* ... which is answered by an abort */
	ctrl(o, ML_FT_PING, session, ts, sizeof(ts));
	ctrl(o, ML_FT_PONG, session, ts, sizeof(ts));
	ack(o, 3, NULL, 0);
}
/* Compressed messages (both codecs), then one whose payload does not
 * expand: the path fails on it, nothing of it is delivered. */
static void hs_compressed(struct bytes *o)
{
	compressed(o, ML_CODEC_LZ4, 1, 6000);
	compressed(o, ML_CODEC_ZSTD, 2, 6000);
	whole(o, ML_KIND_ONEWAY | ML_CODEC_ZSTD << ML_FLAG_CODEC_SHIFT, 3, 0, 100);
}

/* The stream layer's messages (doc/streams.md): an open (the fuzz context
 * has no on_stream, so the library refuses it), then a chunk and a control
 * record of a stream nobody opened. */
static void hs_streams(struct bytes *o)
{
	whole(o, ML_KIND_REQUEST | ML_FLAG_STREAM, 1, 0, 40);
	whole(o, ML_KIND_ONEWAY | ML_FLAG_STREAM, 2, 1, 64);
	whole(o, ML_KIND_ONEWAY | ML_FLAG_STREAM, 3, 0, 16);
}

static void hs_reassembly_left_open(struct bytes *o)
{
	static const unsigned first_two[] = { 0, 1 };
	message(o, ML_KIND_REQUEST, 5, 0, 20000, FZ_HS_FRAG, first_two, 2);
	message(o, ML_KIND_ONEWAY, 7, 0, 9000, FZ_HS_FRAG, first_two, 1);
}
/* Fragments of one message between whole ones, as several paths deliver
 * them: the receiver holds a reassembly while it delivers other numbers. */
static void hs_interleaved(struct bytes *o)
{
	static const unsigned f0[] = { 0 }, f1[] = { 1 }, f2[] = { 2 };
	message(o, ML_KIND_ONEWAY, 2, 0, 10000, FZ_HS_FRAG, f0, 1);
	whole(o, ML_KIND_ONEWAY, 3, 0, 50);
	message(o, ML_KIND_ONEWAY, 2, 0, 10000, FZ_HS_FRAG, f1, 1);
	whole(o, ML_KIND_REQUEST, 1, 0, 10);
	message(o, ML_KIND_ONEWAY, 2, 0, 10000, FZ_HS_FRAG, f2, 1);
}
/* Past fuzz_handshake's limits (max_reasm_msgs 4, max_open_requests 8):
 * the context answers CLOSE(ML_ELIMIT) and ends the session. */
static void hs_reassembly_past_limit(struct bytes *o)
{
	static const unsigned last[] = { 1 }; /* the 1-byte last fragment */
	for (uint64_t seq = 1; seq <= 6; seq++)
		message(o, ML_KIND_ONEWAY, seq, 0, FZ_HS_FRAG + 1, FZ_HS_FRAG, last, 1);
}
static void hs_requests_past_limit(struct bytes *o)
{
	for (uint64_t seq = 1; seq <= 10; seq++)
		whole(o, ML_KIND_REQUEST, seq, 0, 10);
}
static void hs_close(struct bytes *o)
{
	close_frame(o, ML_EPROTO, "bye");
}

static void handshake_seeds(const struct fz_capture *cap)
{
	uint8_t all = FZ_HS_FIX_CRC | FZ_HS_FIX_SESSION | 3 << FZ_HS_SENDS_SHIFT;
	handshake_seed("hello", all, peer_hello, NULL);
	handshake_seed("session", all, peer_hello, hs_session);
	handshake_seed("reassembly-left-open", all, peer_hello, hs_reassembly_left_open);
	handshake_seed("compressed-messages", all, peer_hello, hs_compressed);
	handshake_seed("stream-messages", all, peer_hello, hs_streams);
	handshake_seed("interleaved-messages", all, peer_hello, hs_interleaved);
	handshake_seed("close-after-hello", all, peer_hello, hs_close);
	handshake_seed("reassembly-past-limit", all, peer_hello, hs_reassembly_past_limit);
	handshake_seed("requests-past-limit", all, peer_hello, hs_requests_past_limit);
	handshake_seed("unknown-node-refused", FZ_HS_FIX_CRC | FZ_HS_KNOWN_ONLY, hs_unknown_node, NULL);
	handshake_seed("unknown-node-accepted", all, hs_unknown_node, hs_session);
	handshake_seed("no-common-version", all, hs_versions, NULL);
	handshake_seed("wrong-destination", all, hs_wrong_dest, NULL);
	handshake_seed("own-node-id", all, hs_own_id, NULL);
	handshake_seed("fragment-size-too-small", all, hs_small_frag, NULL);
	handshake_seed("hello-then-data-at-once", all, hs_hello_and_more, NULL);
	handshake_seed("data-first", all, hs_data_first, NULL);
	handshake_seed("not-msglayer", 0, hs_garbage, NULL);

	/* The captured connector: its HELLO, then the rest in chunks of whole
	 * frames (so that the CRC fix-up finds them), each up to 16 KiB. */
	static struct bytes o, c;
	o.len = 0;
	uint8_t opts = FZ_HS_FIX_CRC | FZ_HS_FIX_SESSION;
	add(&o, &opts, 1);
	static const struct ml_wire_limits any = { 16u << 20, UINT32_MAX };
	c.len = 0;
	unsigned chunks = 0;
	for (size_t off = 0; off < cap->c2s_len;) {
		struct ml_frame_hdr h;
		if (ml_frame_decode(cap->c2s + off, cap->c2s_len - off, &any, &h) != ML_WIRE_OK)
			break;
		size_t total = (size_t)h.hdr_len + h.payload_len;
		if (total > cap->c2s_len - off)
			break;
		if (c.len && (chunks == 0 || c.len + total > 16384)) {
			chunk(&o, &c); /* the first chunk is the HELLO alone */
			chunks++;
			c.len = 0;
		}
		add(&c, cap->c2s + off, total);
		off += total;
	}
	if (c.len)
		chunk(&o, &c);
	put("handshake", "capture-connector", o.b, o.len);
}

/* ---- fuzz_reasm: fragment descriptors ---- */

static void op(struct bytes *o, uint8_t code, uint8_t x, uint16_t d, uint32_t v)
{
	uint8_t b[FZ_RA_OP] = { code, x };
	ml_put16(b + 2, d);
	ml_put32(b + 4, v);
	add(o, b, sizeof(b));
}

static void ra_header(struct bytes *o, uint32_t frag, uint8_t wsel, uint8_t seed)
{
	uint8_t b[FZ_RA_HDR];
	ml_put16(b, (uint16_t)(frag - 1));
	b[2] = wsel;
	b[3] = seed;
	o->len = 0;
	add(o, b, sizeof(b));
}

static void reasm_seeds(void)
{
	static struct bytes o;
	/* Fragments 0, 1, 2, ... of the next message: each completes in turn;
	 * then fragments of several messages at once. */
	ra_header(&o, 4096, 0, 1);
	for (unsigned i = 0; i < 24; i++)
		op(&o, FZ_RA_FRAG, 0, 0, i);
	put("reasm", "consecutive-messages", o.b, o.len);

	ra_header(&o, 3, 1, 7);
	for (unsigned i = 0; i < 64; i++)
		op(&o, FZ_RA_FRAG, 0, (uint16_t)(i % 5), i * 2654435761u);
	put("reasm", "interleaved-small-fragments", o.b, o.len);

	/* Every kind of operation, near the edge of the window. */
	ra_header(&o, 16, 2, 3);
	op(&o, FZ_RA_WHOLE, 10, 0, 0);
	op(&o, FZ_RA_FRAG, 0, 1, 0);
	op(&o, FZ_RA_MISMATCH, 3, 1, 1);
	op(&o, FZ_RA_RAW, 0, 16 << 8, 16);
	op(&o, FZ_RA_FRAG, 0, 1, 1);
	op(&o, FZ_RA_WHOLE, 5, 1, 0);
	op(&o, FZ_RA_FRAG, 0, 255, 0);
	op(&o, FZ_RA_FRAG, 0, 256, 0);
	op(&o, FZ_RA_FRAG, 0, 257, 0);
	op(&o, FZ_RA_CHECK, 0, 0xffff, 0xffffffffu);
	op(&o, FZ_RA_RESET, 0, 0, 0);
	op(&o, FZ_RA_WHOLE, 0, 0, 0);
	put("reasm", "each-operation", o.b, o.len);

	/* A largest fragment size: few, long fragments. */
	ra_header(&o, 65536, 3, 200);
	for (unsigned i = 0; i < 8; i++)
		op(&o, FZ_RA_FRAG, 0, (uint16_t)(i & 1), i);
	put("reasm", "large-fragments", o.b, o.len);
}

/* ---- fuzz_record: discovery messages ---- */

static void record_put(const char *name, int type, const struct mlps_record *r)
{
	uint8_t *b;
	size_t len;
	FZ_CHECK(mlps_msg_encode(type, r, &b, &len) == 0, "encode %s", name);
	put("record", name, b, len);
	free(b);
}

static struct mlps_record *record(const char *name, const struct mlps_attr *a, unsigned na,
				  const char *const *eps, unsigned ne)
{
	struct mlps_rec_in in;
	FZ_CHECK(mlps_rec_in_from_api(&in, name, a, na, eps, ne) == 0 && mlps_rec_in_check(&in) == 0,
		 "record %s", name);
	in.node_id = 3;
	in.ml_node_id = 0x10203;
	in.incarnation = 0x1122334455667788ull;
	in.version = 42;
	struct mlps_record *r = mlps_rec_build(&in);
	FZ_CHECK(r != NULL, "record");
	return r;
}

static void record_seeds(void)
{
	static const uint8_t blob[] = { 0, 1, 2, 0xff };
	static const char *const eps[] = { "tcp://10.0.1.5:7400", "rdma://10.0.2.5:7400" };
	struct mlps_attr a[] = {
		mlps_attr_u64("size", 1ull << 40),     mlps_attr_i64("prio", -7),
		mlps_attr_str("proto", "nvme-of v2"), mlps_attr_bool("ro", 0),
		mlps_attr_bytes("uuid", blob, sizeof(blob)),
	};
	struct mlps_record *r = record("block/vol0", a, 5, eps, 2);
	record_put("publish", MLPS_MSG_PUBLISH, r);
	record_put("withdraw", MLPS_MSG_WITHDRAW, r);
	record_put("bye", MLPS_MSG_BYE, r);
	mlps_rec_free(r);

	/* As many attributes and endpoints as a record may have. */
	static char names[MLPS_ATTRS_MAX][8], urls[MLPS_ENDPOINTS_MAX][32];
	struct mlps_attr many[MLPS_ATTRS_MAX];
	const char *ueps[MLPS_ENDPOINTS_MAX];
	for (unsigned i = 0; i < MLPS_ATTRS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "a%u", i);
		many[i] = mlps_attr_u64(names[i], i);
	}
	for (unsigned i = 0; i < MLPS_ENDPOINTS_MAX; i++) {
		snprintf(urls[i], sizeof(urls[i]), "tcp://10.0.%u.1:7400", i);
		ueps[i] = urls[i];
	}
	r = record("a/b/c", many, MLPS_ATTRS_MAX, ueps, MLPS_ENDPOINTS_MAX);
	record_put("publish-full", MLPS_MSG_PUBLISH, r);
	mlps_rec_free(r);

	/* What a newer sender may add: a longer header, an unknown TLV, an
	 * attribute of an unknown type. Patched into an encoded message. */
	r = record("x", a, 1, eps, 1);
	uint8_t *b;
	size_t len;
	FZ_CHECK(mlps_msg_encode(MLPS_MSG_PUBLISH, r, &b, &len) == 0, "encode");
	static struct bytes o;
	o.len = 0;
	add(&o, b, 16);
	add(&o, "\xaa\xbb\xcc\xdd\xee\xff\x00\x11", 8);  /* header bytes 16..23 */
	add(&o, b + 16, len - 16);
	add(&o, "\x40\x00\x02\x00zz", 6);                 /* TLV 64, not critical */
	add(&o, "\x05\x00\x05\x00\x09\x01q\x01\x02", 9);  /* ATTR of type 9 */
	ml_put16(o.b + 6, 24);
	ml_put32(o.b + 8, (uint32_t)(o.len - 24));
	put("record", "publish-newer-sender", o.b, o.len);
	free(b);
	mlps_rec_free(r);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
	struct fz_capture cap;
	FZ_CHECK(fz_capture(&cap) == 0, "the captured session did not complete");
	wire_seeds(&cap);
	handshake_seeds(&cap);
	reasm_seeds();
	record_seeds();
	free(cap.c2s);
	free(cap.s2c);
	return 0;
}
