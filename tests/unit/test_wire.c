/* test_wire.c - frame codec (doc/protocol.md): round trips for every frame
 * type, and one specific error for each kind of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "wire.h"

/* Big enough for any header a receiver accepts, plus room: decoding from a
 * buffer this long means a bigger hdr_len never stops at NEED_MORE. */
enum { BUF = 2 * ML_WIRE_HDR_MAX };

static const struct ml_wire_limits lim = { .max_frag_payload = 256 * 1024,
					   .max_msg_size = 64u << 20 };

/* ---- helpers ---- */

/* A DATA header with every field non-zero and distinct, so a field that
 * lands in another one's place, or is dropped, shows up. */
static struct ml_frame_hdr data_hdr(uint16_t kind)
{
	struct ml_frame_hdr h = {
		.type = ML_FT_DATA, .flags = kind, .payload_len = 1000, .offset = 262144,
		.session = 0x1122334455667788ull, .seq = 0x0102030405060708ull,
		.tag = 0xfeedfacecafebeefull, .ref = 0x8877665544332211ull, .msg_len = 300000,
	};
	return h;
}

/* A control header as the doc says it is sent: DATA-only fields zero,
 * session zero in the handshake, payload length typical for the type. */
static struct ml_frame_hdr ctrl_hdr(uint8_t type)
{
	struct ml_frame_hdr h = { .type = type, .session = 0x0badc0ffee15600dull };
	switch (type) {
	case ML_FT_HELLO:
	case ML_FT_HELLO_ACK:
		h.session = 0;
		h.payload_len = ML_HELLO_LEN;
		break;
	case ML_FT_ACK:
		h.payload_len = 16 + 16 * 3;
		break;
	case ML_FT_PING:
	case ML_FT_PONG:
		h.payload_len = ML_PING_LEN;
		break;
	default:
		h.payload_len = ML_CLOSE_MIN + 11; /* status + "shutting dn" */
	}
	return h;
}

static void assert_hdr_equal(const struct ml_frame_hdr *a, const struct ml_frame_hdr *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->payload_len, b->payload_len);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->session, b->session);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->tag, b->tag);
	assert_int_equal(a->ref, b->ref);
	assert_int_equal(a->msg_len, b->msg_len);
}

/* Re-stamp the CRC after editing a header, as doc/protocol.md defines it:
 * CRC32C of the first hdr_len bytes with the CRC field (offset 12) zeroed.
 * Done with ml_crc32c, independently of the codec's own CRC routine. */
static void restamp(uint8_t *buf, size_t buflen)
{
	size_t hl = ml_get16(buf + 8);
	if (hl > buflen)
		hl = buflen; /* out-of-range hdr_len: no valid CRC exists anyway */
	ml_put32(buf + 12, 0);
	ml_put32(buf + 12, ml_crc32c(buf, hl));
}

/* Encode h into a zeroed BUF-sized buffer. */
static void encode_big(uint8_t buf[BUF], const struct ml_frame_hdr *h)
{
	memset(buf, 0, BUF);
	ml_frame_encode(buf, h);
}

/* Decode h after encoding it, with lim as the receiver's limits. */
static enum ml_wire_err encode_decode(const struct ml_frame_hdr *h, const struct ml_wire_limits *l)
{
	uint8_t buf[BUF];
	struct ml_frame_hdr out;
	encode_big(buf, h);
	return ml_frame_decode(buf, BUF, l, &out);
}

/* Encode h, set one byte, re-stamp the CRC so only that byte is wrong. */
static enum ml_wire_err decode_with_byte(const struct ml_frame_hdr *h, size_t off, uint8_t v)
{
	uint8_t buf[BUF];
	struct ml_frame_hdr out;
	encode_big(buf, h);
	buf[off] = v;
	restamp(buf, BUF);
	return ml_frame_decode(buf, BUF, &lim, &out);
}

static enum ml_wire_err decode_with_hdr_len(uint16_t hl)
{
	uint8_t buf[BUF];
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST), out;
	encode_big(buf, &h);
	ml_put16(buf + 8, hl);
	restamp(buf, BUF);
	return ml_frame_decode(buf, BUF, &lim, &out);
}

static enum ml_wire_err decode_data(uint32_t payload_len, uint32_t offset, uint32_t msg_len)
{
	struct ml_frame_hdr h = data_hdr(ML_KIND_ONEWAY);
	h.payload_len = payload_len;
	h.offset = offset;
	h.msg_len = msg_len;
	return encode_decode(&h, &lim);
}

/* ---- CRC and layout ---- */

static void test_crc32c_check_value(void **state)
{
	(void)state;
	assert_int_equal(ml_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(ml_crc32c("", 0), 0); /* init and final xor cancel */
}

/* The example header printed in doc/protocol.md, byte for byte: pins the
 * layout, byte order and CRC convention that encode and decode could
 * otherwise get wrong together. */
static void test_encode_matches_doc_example(void **state)
{
	(void)state;
	static const uint8_t doc[ML_WIRE_HDR_LEN] = {
		0x4d, 0x4c, 0x46, 0x53, 0x01, 0x03, 0x01, 0x00, 0x40, 0x00, 0x00, 0x00, 0x60, 0xde, 0x8b, 0xe9,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = ML_KIND_REQUEST, .payload_len = 5,
				  .session = 0x0123456789abcdefull, .seq = 1, .tag = 42, .msg_len = 5 };
	uint8_t buf[ML_WIRE_HDR_LEN];
	ml_frame_encode(buf, &h);
	assert_memory_equal(buf, doc, sizeof(doc));
}

/* Every field at the offset the doc's table gives it. */
static void test_fields_at_documented_offsets(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_RESPONSE);
	uint8_t buf[ML_WIRE_HDR_LEN];
	memset(buf, 0xee, sizeof(buf)); /* reserved bytes must be written as 0 */
	ml_frame_encode(buf, &h);
	assert_memory_equal(buf, "MLFS", 4);
	assert_int_equal(buf[4], ML_WIRE_VERSION);
	assert_int_equal(buf[5], ML_FT_DATA);
	assert_int_equal(ml_get16(buf + 6), ML_KIND_RESPONSE);
	assert_int_equal(ml_get16(buf + 8), ML_WIRE_HDR_LEN);
	assert_int_equal(ml_get16(buf + 10), 0);
	assert_int_equal(ml_get32(buf + 16), h.payload_len);
	assert_int_equal(ml_get32(buf + 20), h.offset);
	assert_int_equal(ml_get64(buf + 24), h.session);
	assert_int_equal(ml_get64(buf + 32), h.seq);
	assert_int_equal(ml_get64(buf + 40), h.tag);
	assert_int_equal(ml_get64(buf + 48), h.ref);
	assert_int_equal(ml_get32(buf + 56), h.msg_len);
	assert_int_equal(ml_get32(buf + 60), 0);
	uint32_t crc = ml_get32(buf + 12);
	restamp(buf, sizeof(buf));
	assert_int_equal(ml_get32(buf + 12), crc);
}

/* ---- round trips ---- */

static void check_round_trip(const struct ml_frame_hdr *in)
{
	uint8_t buf[ML_WIRE_HDR_LEN];
	struct ml_frame_hdr out;
	memset(&out, 0x5a, sizeof(out));
	ml_frame_encode(buf, in);
	/* Exactly the header's bytes are enough: no read past hdr_len. */
	assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_OK);
	assert_int_equal(out.version, ML_WIRE_VERSION);
	assert_int_equal(out.hdr_len, ML_WIRE_HDR_LEN);
	assert_hdr_equal(&out, in);
}

static void test_round_trip_data_each_kind(void **state)
{
	(void)state;
	static const uint16_t kinds[] = { ML_KIND_REQUEST, ML_KIND_RESPONSE, ML_KIND_ONEWAY };
	for (unsigned i = 0; i < 3; i++) {
		struct ml_frame_hdr h = data_hdr(kinds[i]);
		check_round_trip(&h);
	}
}

static void test_round_trip_each_control_type(void **state)
{
	(void)state;
	static const uint8_t types[] = { ML_FT_HELLO, ML_FT_HELLO_ACK, ML_FT_ACK,
					 ML_FT_PING,  ML_FT_PONG,      ML_FT_CLOSE };
	for (unsigned i = 0; i < sizeof(types); i++) {
		struct ml_frame_hdr h = ctrl_hdr(types[i]);
		check_round_trip(&h);
	}
}

/* Limits of the field ranges survive: no truncation to a narrower type. */
static void test_round_trip_extreme_values(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_ONEWAY);
	struct ml_wire_limits big = { .max_frag_payload = UINT32_MAX, .max_msg_size = UINT32_MAX };
	uint8_t buf[ML_WIRE_HDR_LEN];
	struct ml_frame_hdr out;
	h.session = h.seq = h.tag = h.ref = UINT64_MAX;
	h.msg_len = UINT32_MAX;
	h.offset = UINT32_MAX - 7;
	h.payload_len = 7;
	ml_frame_encode(buf, &h);
	assert_int_equal(ml_frame_decode(buf, sizeof(buf), &big, &out), ML_WIRE_OK);
	assert_hdr_equal(&out, &h);
}

/* ---- malformed headers ---- */

/* A stream decoder must wait, not fail, while a valid header is incomplete. */
static void test_every_prefix_needs_more(void **state)
{
	(void)state;
	struct ml_frame_hdr hs[] = { data_hdr(ML_KIND_REQUEST), ctrl_hdr(ML_FT_HELLO),
				     ctrl_hdr(ML_FT_ACK), ctrl_hdr(ML_FT_CLOSE) };
	for (unsigned i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
		uint8_t buf[ML_WIRE_HDR_LEN];
		struct ml_frame_hdr out;
		ml_frame_encode(buf, &hs[i]);
		for (size_t n = 0; n < ML_WIRE_HDR_LEN; n++)
			assert_int_equal(ml_frame_decode(buf, n, &lim, &out), ML_WIRE_NEED_MORE);
	}
}

/* Garbage is refused on its first 4 bytes, before a whole header is in. */
static void test_bad_magic_from_first_four_bytes(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST), out;
	for (size_t i = 0; i < 4; i++) {
		uint8_t buf[ML_WIRE_HDR_LEN];
		ml_frame_encode(buf, &h);
		buf[i] ^= 0x20; /* "mLFS", "MlFS", ... */
		assert_int_equal(ml_frame_decode(buf, 3, &lim, &out), ML_WIRE_NEED_MORE);
		assert_int_equal(ml_frame_decode(buf, 4, &lim, &out), ML_WIRE_EMAGIC);
		assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_EMAGIC);
	}
	/* A plausible stray protocol. */
	assert_int_equal(ml_frame_decode((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &lim, &out),
			 ML_WIRE_EMAGIC);
}

static void test_unsupported_version(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST);
	static const uint8_t bad[] = { 0, 2, 255 };
	for (unsigned i = 0; i < sizeof(bad); i++)
		assert_int_equal(decode_with_byte(&h, 4, bad[i]), ML_WIRE_EVERSION);
}

static void test_unknown_type(void **state)
{
	(void)state;
	struct ml_frame_hdr h = ctrl_hdr(ML_FT_PING);
	static const uint8_t bad[] = { 0, ML_FT_RDESC + 1, 255 };
	for (unsigned i = 0; i < sizeof(bad); i++)
		assert_int_equal(decode_with_byte(&h, 5, bad[i]), ML_WIRE_ETYPE);
}

static void test_hdr_len_out_of_range(void **state)
{
	(void)state;
	static const uint16_t bad[] = { 0, 1, ML_WIRE_HDR_LEN - 1, ML_WIRE_HDR_MAX + 1, UINT16_MAX };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(decode_with_hdr_len(bad[i]), ML_WIRE_EHDRLEN);
	/* The bounds themselves are fine. */
	assert_int_equal(decode_with_hdr_len(ML_WIRE_HDR_LEN), ML_WIRE_OK);
	assert_int_equal(decode_with_hdr_len(ML_WIRE_HDR_MAX), ML_WIRE_OK);
}

/* Any single-bit error in the header is caught. Bits in the first 10 bytes
 * (magic, version, type, flags, hdr_len) may trip an earlier check; from
 * byte 10 on only the CRC can see them. */
static void test_every_flipped_header_bit_is_caught(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST), out;
	uint8_t good[BUF];
	encode_big(good, &h);
	for (unsigned bit = 0; bit < ML_WIRE_HDR_LEN * 8; bit++) {
		uint8_t buf[BUF];
		memcpy(buf, good, BUF);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		enum ml_wire_err e = ml_frame_decode(buf, BUF, &lim, &out);
		if (bit / 8 >= 10)
			assert_int_equal(e, ML_WIRE_ECRC);
		else
			assert_true(e != ML_WIRE_OK && e != ML_WIRE_NEED_MORE);
	}
}

static void test_data_kind_zero(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(0);
	assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EFLAGS);
}

/* STREAM (4.2): with any kind, with ABORT on a response, never with CANCEL. */
static void test_data_stream_flag(void **state)
{
	(void)state;
	for (uint16_t kind = ML_KIND_REQUEST; kind <= ML_KIND_ONEWAY; kind++) {
		struct ml_frame_hdr h = data_hdr((uint16_t)(kind | ML_FLAG_STREAM));
		assert_int_equal(encode_decode(&h, &lim), ML_WIRE_OK);
	}
	struct ml_frame_hdr h = data_hdr(ML_KIND_RESPONSE | ML_FLAG_ABORT | ML_FLAG_STREAM);
	assert_int_equal(encode_decode(&h, &lim), ML_WIRE_OK);
	h = data_hdr(ML_KIND_ONEWAY | ML_FLAG_CANCEL | ML_FLAG_STREAM);
	h.ref = 1;
	h.msg_len = h.payload_len = 0;
	h.offset = 0;
	assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EFLAGS);
}

static void test_data_unknown_flag_bits(void **state)
{
	(void)state;
	for (unsigned bit = 2; bit < 16; bit++) {
		if (bit == 4 || bit == 5)
			continue; /* the codec: test_data_codec */
		if ((1u << bit) == ML_FLAG_STREAM)
			continue; /* valid with every kind: test_data_stream_flag */
		struct ml_frame_hdr h = data_hdr((uint16_t)(ML_KIND_REQUEST | (1u << bit)));
		assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EFLAGS);
	}
}

/* Bits 4-5 name the codec of a compressed message: 1 and 2 exist, 3 does not. */
static void test_data_codec(void **state)
{
	(void)state;
	for (unsigned codec = 0; codec < 4; codec++) {
		struct ml_frame_hdr h = data_hdr((uint16_t)(ML_KIND_REQUEST | codec << ML_FLAG_CODEC_SHIFT));
		assert_int_equal(encode_decode(&h, &lim), codec < 3 ? ML_WIRE_OK : ML_WIRE_EFLAGS);
	}
}


static void test_control_frames_take_no_flags(void **state)
{
	(void)state;
	for (uint8_t t = ML_FT_HELLO; t <= ML_FT_CLOSE; t++) {
		if (t == ML_FT_DATA)
			continue;
		struct ml_frame_hdr h = ctrl_hdr(t);
		h.flags = ML_KIND_REQUEST; /* a DATA kind means nothing here */
		assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EFLAGS);
	}
}

/* DATA payload is bounded by the receiver's max_frag_payload, not a constant. */
static void test_data_payload_over_limit(void **state)
{
	(void)state;
	assert_int_equal(decode_data(lim.max_frag_payload, 0, 1 << 20), ML_WIRE_OK);
	assert_int_equal(decode_data(lim.max_frag_payload + 1, 0, 1 << 20), ML_WIRE_EPAYLOAD);
	assert_int_equal(decode_data(UINT32_MAX, 0, 1 << 20), ML_WIRE_EPAYLOAD);

	struct ml_wire_limits small = { .max_frag_payload = 4096, .max_msg_size = 1 << 20 };
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST);
	h.offset = 0;
	h.payload_len = 4096;
	assert_int_equal(encode_decode(&h, &small), ML_WIRE_OK);
	h.payload_len = 4097;
	assert_int_equal(encode_decode(&h, &small), ML_WIRE_EPAYLOAD);
}

/* Control payloads have their own fixed bound, whatever the DATA limit. */
static void test_control_payload_over_limit(void **state)
{
	(void)state;
	struct ml_wire_limits tiny = { .max_frag_payload = 16, .max_msg_size = 16 };
	for (uint8_t t = ML_FT_HELLO; t <= ML_FT_CLOSE; t++) {
		if (t == ML_FT_DATA)
			continue;
		struct ml_frame_hdr h = ctrl_hdr(t);
		h.payload_len = ML_WIRE_CTRL_MAX;
		assert_int_equal(encode_decode(&h, &tiny), ML_WIRE_OK);
		h.payload_len = ML_WIRE_CTRL_MAX + 1;
		assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EPAYLOAD);
		h.payload_len = UINT32_MAX;
		assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EPAYLOAD);
	}
}

static void test_msg_len_over_limit(void **state)
{
	(void)state;
	assert_int_equal(decode_data(100, 0, lim.max_msg_size), ML_WIRE_OK);
	assert_int_equal(decode_data(100, 0, lim.max_msg_size + 1), ML_WIRE_EMSGLEN);
	assert_int_equal(decode_data(100, 0, UINT32_MAX), ML_WIRE_EMSGLEN);
}

static void test_fragment_outside_message(void **state)
{
	(void)state;
	assert_int_equal(decode_data(100, 900, 1000), ML_WIRE_OK); /* ends exactly at msg_len */
	assert_int_equal(decode_data(100, 901, 1000), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(100, 1000, 1000), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(1001, 0, 1000), ML_WIRE_EFRAGMENT);
	/* offset + len wraps in 32 bits to a small number: still outside. */
	assert_int_equal(decode_data(0x200, 0xffffff00u, 1000), ML_WIRE_EFRAGMENT);
}

static void test_empty_fragment_only_for_empty_message(void **state)
{
	(void)state;
	assert_int_equal(decode_data(0, 0, 0), ML_WIRE_OK);
	assert_int_equal(decode_data(0, 0, 10), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(0, 10, 10), ML_WIRE_EFRAGMENT);
}

/* ---- longer headers from newer senders ---- */

/* A newer sender appends 16 header bytes: they are covered by the CRC and
 * skipped, and the payload starts at hdr_len. */
static void build_80_byte_header(uint8_t buf[BUF], const struct ml_frame_hdr *h)
{
	encode_big(buf, h);
	for (unsigned i = ML_WIRE_HDR_LEN; i < 80; i++)
		buf[i] = (uint8_t)(0xa0 + i); /* fields this version does not know */
	memset(buf + 80, 0xcc, 16);       /* payload */
	ml_put16(buf + 8, 80);
	restamp(buf, BUF);
}

static void test_longer_header_is_skipped(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_RESPONSE), out;
	uint8_t buf[BUF];
	build_80_byte_header(buf, &h);
	for (size_t n = ML_WIRE_HDR_LEN; n < 80; n++) /* the extra bytes must be in first */
		assert_int_equal(ml_frame_decode(buf, n, &lim, &out), ML_WIRE_NEED_MORE);
	assert_int_equal(ml_frame_decode(buf, 80, &lim, &out), ML_WIRE_OK);
	assert_int_equal(out.hdr_len, 80); /* the payload starts at buf + 80 */
	assert_int_equal(out.version, ML_WIRE_VERSION);
	assert_hdr_equal(&out, &h);
}

static void test_longer_header_extra_bytes_are_crc_protected(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST), out;
	uint8_t buf[BUF];
	build_80_byte_header(buf, &h);
	buf[72] ^= 0x10;
	assert_int_equal(ml_frame_decode(buf, BUF, &lim, &out), ML_WIRE_ECRC);
	buf[72] ^= 0x10;
	buf[80] ^= 0x10; /* the payload is not part of the header CRC */
	assert_int_equal(ml_frame_decode(buf, BUF, &lim, &out), ML_WIRE_OK);
}

/* ---- HELLO payload ---- */

static struct ml_hello hello_sample(void)
{
	struct ml_hello h = { .node_id = 3, .dest_node_id = 9, .incarnation = 0xabcdef0123456789ull,
			      .dest_incarnation = 0x1122334455667788ull, .min_version = 1,
			      .max_version = 4, .path_idx = 5, .max_frag_payload = 65536,
			      .max_msg_size = 1 << 24, .window = 1024 };
	return h;
}

static void assert_hello_equal(const struct ml_hello *a, const struct ml_hello *b)
{
	assert_int_equal(a->node_id, b->node_id);
	assert_int_equal(a->dest_node_id, b->dest_node_id);
	assert_int_equal(a->incarnation, b->incarnation);
	assert_int_equal(a->dest_incarnation, b->dest_incarnation);
	assert_int_equal(a->min_version, b->min_version);
	assert_int_equal(a->max_version, b->max_version);
	assert_int_equal(a->path_idx, b->path_idx);
	assert_int_equal(a->max_frag_payload, b->max_frag_payload);
	assert_int_equal(a->max_msg_size, b->max_msg_size);
	assert_int_equal(a->window, b->window);
}

static enum ml_wire_err hello_round(const struct ml_hello *in, struct ml_hello *out)
{
	uint8_t buf[ML_HELLO_MAX];
	size_t n = ml_hello_encode(buf, in);
	return ml_hello_decode(buf, n, out);
}

/* RDESC: a DATA header whose payload is a 16-byte descriptor; the
 * fragment it describes is checked against the message like DATA's. */
static void test_rdesc(void **state)
{
	(void)state;
	struct ml_frame_hdr h = data_hdr(ML_KIND_REQUEST);
	h.type = ML_FT_RDESC;
	h.payload_len = ML_RDESC_LEN;
	check_round_trip(&h);
	h.payload_len = 1000;
	assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EPAYLOAD);
	h.payload_len = ML_RDESC_LEN;
	h.flags = 0;
	assert_int_equal(encode_decode(&h, &lim), ML_WIRE_EFLAGS);

	struct ml_rdesc in = { 0x00007f0011223344ull, 0xa1b2c3d4u, 262144 }, out;
	uint8_t buf[ML_RDESC_LEN];
	ml_rdesc_encode(buf, &in);
	assert_int_equal(ml_get32(buf + 12), 262144); /* little-endian, addr first */
	ml_rdesc_decode(buf, &out);
	assert_true(out.addr == in.addr && out.rkey == in.rkey && out.len == in.len);

	h = data_hdr(ML_KIND_REQUEST); /* offset 262144 of 300000 */
	assert_int_equal(ml_wire_check_frag(&h, 300000 - 262144, &lim), ML_WIRE_OK);
	assert_int_equal(ml_wire_check_frag(&h, 300000 - 262144 + 1, &lim), ML_WIRE_EFRAGMENT);
	assert_int_equal(ml_wire_check_frag(&h, 0, &lim), ML_WIRE_EFRAGMENT);
	assert_int_equal(ml_wire_check_frag(&h, 0xffffffffu, &lim), ML_WIRE_EPAYLOAD);
}

static void test_hello_round_trip(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	/* unknown flags: not carried, written as zero (protection needs AUTH: not set) */
	in.flags = (uint16_t)(0xfffe & ~(ML_HELLO_F_AUTH | ML_HELLO_F_PROTECT_MASK));
	in.pad = 0xffffffff;
	assert_int_equal(hello_round(&in, &out), ML_WIRE_OK);
	assert_hello_equal(&out, &in);
	assert_int_equal(out.flags, ML_HELLO_F_CODEC_MASK | ML_HELLO_F_RDMA_READ);
	assert_int_equal(out.pad, 0);

	uint8_t buf[ML_HELLO_MAX];
	assert_int_equal(ml_hello_encode(buf, &in), ML_HELLO_LEN);
	assert_int_equal(ml_get16(buf + 30), ML_HELLO_F_CODEC_MASK | ML_HELLO_F_RDMA_READ);
	assert_int_equal(ml_get32(buf + 44), 0);
}

/* With a cluster key: the flag, the key id and the nonce travel after the
 * 48 bytes of version 1; a HELLO that sets the flag without them is short. */
static void test_hello_auth_block(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	in.flags = ML_HELLO_F_AUTH;
	for (int i = 0; i < 8; i++)
		in.key_id[i] = (uint8_t)(0xa0 + i);
	for (int i = 0; i < 16; i++)
		in.nonce[i] = (uint8_t)(0x10 + i);
	uint8_t buf[ML_HELLO_MAX];
	assert_int_equal(ml_hello_encode(buf, &in), ML_HELLO_MAX);
	assert_int_equal(ml_get16(buf + 30), ML_HELLO_F_AUTH);
	assert_int_equal(ml_hello_decode(buf, ML_HELLO_MAX, &out), ML_WIRE_OK);
	assert_hello_equal(&out, &in);
	assert_int_equal(out.flags, ML_HELLO_F_AUTH);
	assert_memory_equal(out.key_id, in.key_id, 8);
	assert_memory_equal(out.nonce, in.nonce, 16);
	for (size_t n = ML_HELLO_LEN; n < ML_HELLO_MAX; n++)
		assert_int_equal(ml_hello_decode(buf, n, &out), ML_WIRE_EBODY);
}

/* HELLO flags: protection (bits 1-2, only with AUTH, at most 2) and the
 * codecs accepted (bits 3-4) travel; anything else is dropped. */
static void test_hello_protect_and_codecs(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	uint8_t buf[ML_HELLO_MAX];
	in.flags = ML_HELLO_F_AUTH | 2u << ML_HELLO_F_PROTECT_SHIFT | ML_HELLO_F_CODEC_MASK | 0x8000;
	size_t n = ml_hello_encode(buf, &in);
	assert_int_equal(ml_hello_decode(buf, n, &out), ML_WIRE_OK);
	assert_int_equal(out.flags, in.flags & ML_HELLO_FLAGS_KNOWN);
	assert_int_equal(ML_HELLO_PROTECT(out.flags), 2);
	in.flags = ML_HELLO_F_AUTH | 3u << ML_HELLO_F_PROTECT_SHIFT;
	n = ml_hello_encode(buf, &in);
	assert_int_equal(ml_hello_decode(buf, n, &out), ML_WIRE_EBODY);
	in.flags = 1u << ML_HELLO_F_PROTECT_SHIFT; /* protection without a key */
	n = ml_hello_encode(buf, &in);
	assert_int_equal(ml_hello_decode(buf, n, &out), ML_WIRE_EBODY);
}

/* HELLO_ACK: both versions the chosen one; 0 means "anyone" / "none". */
static void test_hello_ack_round_trip(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	in.min_version = in.max_version = 1;
	in.dest_node_id = 0;
	in.dest_incarnation = 0;
	assert_int_equal(hello_round(&in, &out), ML_WIRE_OK);
	assert_hello_equal(&out, &in);
}

static void test_hello_too_short(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	uint8_t buf[ML_HELLO_MAX];
	ml_hello_encode(buf, &in);
	for (size_t n = 0; n < ML_HELLO_LEN; n++)
		assert_int_equal(ml_hello_decode(buf, n, &out), ML_WIRE_EBODY);
}

static void test_hello_bad_fields(void **state)
{
	(void)state;
	struct ml_hello out, h;
	h = hello_sample();
	h.node_id = 0;
	assert_int_equal(hello_round(&h, &out), ML_WIRE_EBODY);
	h = hello_sample();
	h.incarnation = 0;
	assert_int_equal(hello_round(&h, &out), ML_WIRE_EBODY);
	h = hello_sample();
	h.min_version = 3;
	h.max_version = 2;
	assert_int_equal(hello_round(&h, &out), ML_WIRE_EBODY);
	h = hello_sample();
	h.window = 0;
	assert_int_equal(hello_round(&h, &out), ML_WIRE_EBODY);
}

/* A newer peer's longer HELLO: the known fields are read, the rest skipped. */
static void test_hello_longer_payload_accepted(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	uint8_t buf[ML_HELLO_MAX + 24];
	memset(buf, 0x77, sizeof(buf));
	ml_hello_encode(buf, &in);
	assert_int_equal(ml_hello_decode(buf, sizeof(buf), &out), ML_WIRE_OK);
	assert_hello_equal(&out, &in);
}

/* ---- ACK payload ---- */

/* Ranges 2 apart from cum and from each other: the tightest valid layout. */
static struct ml_ack ack_sample(uint64_t cum, unsigned n)
{
	struct ml_ack a = { .cum = cum, .nranges = n };
	uint64_t s = cum + 2;
	for (unsigned i = 0; i < n; i++) {
		a.r[i].start = s;
		a.r[i].end = s + i % 3; /* ranges of 1, 2 and 3 numbers */
		s = a.r[i].end + 2;
	}
	return a;
}

static void check_ack_round_trip(const struct ml_ack *in)
{
	uint8_t buf[16 + 16 * ML_WIRE_SACK_MAX];
	struct ml_ack out;
	memset(&out, 0x5a, sizeof(out));
	size_t n = ml_ack_encode(buf, in);
	assert_int_equal(n, 16 + 16 * (size_t)in->nranges);
	assert_int_equal(n, ml_ack_encoded_len(in));
	assert_int_equal(ml_get32(buf + 12), 0);
	assert_int_equal(ml_ack_decode(buf, n, &out), ML_WIRE_OK);
	assert_int_equal(out.cum, in->cum);
	assert_int_equal(out.nranges, in->nranges);
	for (unsigned i = 0; i < in->nranges; i++) {
		assert_int_equal(out.r[i].start, in->r[i].start);
		assert_int_equal(out.r[i].end, in->r[i].end);
	}
}

static void test_ack_round_trip_0_1_max_ranges(void **state)
{
	(void)state;
	static const unsigned counts[] = { 0, 1, ML_WIRE_SACK_MAX };
	for (unsigned c = 0; c < 3; c++) {
		struct ml_ack a = ack_sample(100, counts[c]);
		check_ack_round_trip(&a);
		a = ack_sample(0, counts[c]); /* nothing delivered in order yet */
		check_ack_round_trip(&a);
	}
}

/* The very top of the number space is still valid where the spec allows it. */
static void test_ack_round_trip_top_of_range(void **state)
{
	(void)state;
	struct ml_ack a = { .cum = 10, .nranges = 1, .r = { { 12, UINT64_MAX } } };
	check_ack_round_trip(&a);
	struct ml_ack b = { .cum = UINT64_MAX, .nranges = 0 };
	check_ack_round_trip(&b);
}

/* Decode raw ACK bytes: cum, a declared count n, and `have` (start, end)
 * pairs in se, cut to `len` bytes (or the full length when len is 0). */
static enum ml_wire_err ack_raw(uint64_t cum, uint32_t n, const uint64_t *se, unsigned have,
				size_t len)
{
	uint8_t buf[16 + 16 * (ML_WIRE_SACK_MAX + 1)];
	struct ml_ack out;
	assert_true(have <= ML_WIRE_SACK_MAX + 1);
	ml_put64(buf, cum);
	ml_put32(buf + 8, n);
	ml_put32(buf + 12, 0);
	for (unsigned i = 0; i < have; i++) {
		ml_put64(buf + 16 + 16 * i, se[2 * i]);
		ml_put64(buf + 24 + 16 * i, se[2 * i + 1]);
	}
	return ml_ack_decode(buf, len ? len : 16 + 16 * (size_t)have, &out);
}

static enum ml_wire_err ack_ranges(uint64_t cum, const uint64_t *se, unsigned n)
{
	return ack_raw(cum, n, se, n, 0);
}

static void test_ack_valid_reference(void **state)
{
	(void)state;
	const uint64_t ok[] = { 12, 14, 16, 16, 20, 30 };
	assert_int_equal(ack_ranges(10, ok, 3), ML_WIRE_OK);
}

static void test_ack_range_touching_cum(void **state)
{
	(void)state;
	const uint64_t touching[] = { 11, 14 }; /* 11 == cum + 1 would have moved cum */
	assert_int_equal(ack_ranges(10, touching, 1), ML_WIRE_EBODY);
	const uint64_t at_cum[] = { 10, 14 };
	assert_int_equal(ack_ranges(10, at_cum, 1), ML_WIRE_EBODY);
	const uint64_t below[] = { 5, 8 };
	assert_int_equal(ack_ranges(10, below, 1), ML_WIRE_EBODY);
}

static void test_ack_range_end_before_start(void **state)
{
	(void)state;
	const uint64_t reversed[] = { 20, 14 };
	assert_int_equal(ack_ranges(10, reversed, 1), ML_WIRE_EBODY);
	const uint64_t second_reversed[] = { 12, 14, 30, 29 };
	assert_int_equal(ack_ranges(10, second_reversed, 2), ML_WIRE_EBODY);
}

static void test_ack_ranges_not_ascending(void **state)
{
	(void)state;
	const uint64_t descending[] = { 20, 30, 12, 14 };
	assert_int_equal(ack_ranges(10, descending, 2), ML_WIRE_EBODY);
	const uint64_t same[] = { 12, 14, 12, 14 };
	assert_int_equal(ack_ranges(10, same, 2), ML_WIRE_EBODY);
}

static void test_ack_ranges_overlapping_or_touching(void **state)
{
	(void)state;
	const uint64_t overlapping[] = { 12, 20, 18, 30 };
	assert_int_equal(ack_ranges(10, overlapping, 2), ML_WIRE_EBODY);
	const uint64_t shared_end[] = { 12, 20, 20, 30 };
	assert_int_equal(ack_ranges(10, shared_end, 2), ML_WIRE_EBODY);
	const uint64_t adjacent[] = { 12, 20, 21, 30 }; /* should have been one range */
	assert_int_equal(ack_ranges(10, adjacent, 2), ML_WIRE_EBODY);
}

/* Near 2^64 "end + 1" and "cum + 1" wrap to 0; the rules still hold. */
static void test_ack_ranges_wrapping_at_top(void **state)
{
	(void)state;
	const uint64_t after_top[] = { 12, UINT64_MAX, 14, 16 }; /* overlaps the first */
	assert_int_equal(ack_ranges(10, after_top, 2), ML_WIRE_EBODY);
	const uint64_t below_top_cum[] = { 3, 4 }; /* everything is <= cum */
	assert_int_equal(ack_ranges(UINT64_MAX, below_top_cum, 1), ML_WIRE_EBODY);
}

static void test_ack_too_many_ranges(void **state)
{
	(void)state;
	struct ml_ack a = ack_sample(10, ML_WIRE_SACK_MAX);
	uint64_t se[2 * (ML_WIRE_SACK_MAX + 1)];
	for (unsigned i = 0; i < ML_WIRE_SACK_MAX; i++) {
		se[2 * i] = a.r[i].start;
		se[2 * i + 1] = a.r[i].end;
	}
	se[2 * ML_WIRE_SACK_MAX] = a.r[ML_WIRE_SACK_MAX - 1].end + 2;
	se[2 * ML_WIRE_SACK_MAX + 1] = a.r[ML_WIRE_SACK_MAX - 1].end + 2;
	assert_int_equal(ack_ranges(10, se, ML_WIRE_SACK_MAX), ML_WIRE_OK);
	assert_int_equal(ack_ranges(10, se, ML_WIRE_SACK_MAX + 1), ML_WIRE_EBODY);
	/* A huge count must not be trusted for a length computation. */
	assert_int_equal(ack_raw(10, UINT32_MAX, se, ML_WIRE_SACK_MAX + 1, 0), ML_WIRE_EBODY);
}

static void test_ack_truncated(void **state)
{
	(void)state;
	const uint64_t ok[] = { 12, 14, 20, 30 };
	for (size_t len = 1; len < 16 + 2 * 16; len++)
		assert_int_equal(ack_raw(10, 2, ok, 2, len), ML_WIRE_EBODY);
	uint8_t none[1] = { 0 };
	struct ml_ack out;
	assert_int_equal(ml_ack_decode(none, 0, &out), ML_WIRE_EBODY);
}

/* ---- error texts ---- */

static void test_error_texts_distinct(void **state)
{
	(void)state;
	for (int a = ML_WIRE_OK; a <= ML_WIRE_EBODY; a++) {
		const char *ta = ml_wire_strerror((enum ml_wire_err)a);
		assert_non_null(ta);
		assert_true(strlen(ta) > 0);
		for (int b = a + 1; b <= ML_WIRE_EBODY; b++)
			assert_string_not_equal(ta, ml_wire_strerror((enum ml_wire_err)b));
	}
	/* Out-of-range codes get a text too, not a crash or NULL. */
	const char *unk = ml_wire_strerror((enum ml_wire_err)(ML_WIRE_EBODY + 1));
	assert_non_null(unk);
	assert_true(strlen(unk) > 0);
	assert_non_null(ml_wire_strerror((enum ml_wire_err)-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_check_value),
		cmocka_unit_test(test_encode_matches_doc_example),
		cmocka_unit_test(test_fields_at_documented_offsets),
		cmocka_unit_test(test_round_trip_data_each_kind),
		cmocka_unit_test(test_round_trip_each_control_type),
		cmocka_unit_test(test_round_trip_extreme_values),
		cmocka_unit_test(test_every_prefix_needs_more),
		cmocka_unit_test(test_bad_magic_from_first_four_bytes),
		cmocka_unit_test(test_unsupported_version),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_hdr_len_out_of_range),
		cmocka_unit_test(test_every_flipped_header_bit_is_caught),
		cmocka_unit_test(test_data_kind_zero),
		cmocka_unit_test(test_data_unknown_flag_bits),
		cmocka_unit_test(test_data_stream_flag),
		cmocka_unit_test(test_data_codec),
		cmocka_unit_test(test_hello_protect_and_codecs),
		cmocka_unit_test(test_control_frames_take_no_flags),
		cmocka_unit_test(test_data_payload_over_limit),
		cmocka_unit_test(test_control_payload_over_limit),
		cmocka_unit_test(test_msg_len_over_limit),
		cmocka_unit_test(test_fragment_outside_message),
		cmocka_unit_test(test_empty_fragment_only_for_empty_message),
		cmocka_unit_test(test_longer_header_is_skipped),
		cmocka_unit_test(test_longer_header_extra_bytes_are_crc_protected),
		cmocka_unit_test(test_rdesc),
		cmocka_unit_test(test_hello_round_trip),
		cmocka_unit_test(test_hello_auth_block),
		cmocka_unit_test(test_hello_ack_round_trip),
		cmocka_unit_test(test_hello_too_short),
		cmocka_unit_test(test_hello_bad_fields),
		cmocka_unit_test(test_hello_longer_payload_accepted),
		cmocka_unit_test(test_ack_round_trip_0_1_max_ranges),
		cmocka_unit_test(test_ack_round_trip_top_of_range),
		cmocka_unit_test(test_ack_valid_reference),
		cmocka_unit_test(test_ack_range_touching_cum),
		cmocka_unit_test(test_ack_range_end_before_start),
		cmocka_unit_test(test_ack_ranges_not_ascending),
		cmocka_unit_test(test_ack_ranges_overlapping_or_touching),
		cmocka_unit_test(test_ack_ranges_wrapping_at_top),
		cmocka_unit_test(test_ack_too_many_ranges),
		cmocka_unit_test(test_ack_truncated),
		cmocka_unit_test(test_error_texts_distinct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
