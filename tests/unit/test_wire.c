/* test_wire.c - frame codec: round trips for every type, one error per defect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "wire.h"

static const struct ml_wire_limits lim = { .max_frag_payload = 256 * 1024, .max_msg_size = 64u << 20 };

static struct ml_frame_hdr sample(uint8_t type)
{
	struct ml_frame_hdr h = { .type = type, .session = 0x1122334455667788ull };
	if (type == ML_FT_DATA) {
		h.flags = ML_KIND_REQUEST;
		h.payload_len = 1000;
		h.offset = 262144;
		h.msg_len = 300000;
		h.seq = 77;
		h.tag = 0xfeedfacecafebeefull;
		h.ref = 5;
	} else {
		h.payload_len = 16;
	}
	return h;
}

/* Re-stamp the CRC after editing a header: CRC32C over hdr_len bytes with
 * the CRC field (offset 12) as zero, as doc/protocol.md says. */
static void restamp(uint8_t *buf)
{
	uint16_t hl = ml_get16(buf + 8);
	ml_put32(buf + 12, 0);
	ml_put32(buf + 12, ml_crc32c(buf, hl));
}

static void test_crc32c_vector(void **state)
{
	(void)state;
	assert_int_equal(ml_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(ml_crc32c("", 0), 0);
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	for (uint8_t t = ML_FT_HELLO; t <= ML_FT_CLOSE; t++) {
		struct ml_frame_hdr in = sample(t), out;
		uint8_t buf[ML_WIRE_HDR_LEN];
		ml_frame_encode(buf, &in);
		assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_OK);
		assert_int_equal(out.type, t);
		assert_int_equal(out.version, ML_WIRE_VERSION);
		assert_int_equal(out.hdr_len, ML_WIRE_HDR_LEN);
		assert_int_equal(out.flags, in.flags);
		assert_int_equal(out.payload_len, in.payload_len);
		assert_int_equal(out.offset, in.offset);
		assert_true(out.session == in.session && out.seq == in.seq && out.tag == in.tag &&
			    out.ref == in.ref);
		assert_int_equal(out.msg_len, in.msg_len);
	}
}

static void test_round_trip_every_kind(void **state)
{
	(void)state;
	for (uint16_t k = ML_KIND_REQUEST; k <= ML_KIND_ONEWAY; k++) {
		struct ml_frame_hdr in = sample(ML_FT_DATA), out;
		uint8_t buf[ML_WIRE_HDR_LEN];
		in.flags = k;
		ml_frame_encode(buf, &in);
		assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_OK);
		assert_int_equal(out.flags & ML_FLAG_KIND_MASK, k);
	}
}

static void test_magic_bytes_and_little_endian(void **state)
{
	(void)state;
	struct ml_frame_hdr in = sample(ML_FT_DATA);
	uint8_t buf[ML_WIRE_HDR_LEN];
	ml_frame_encode(buf, &in);
	assert_memory_equal(buf, "MLFS", 4);
	assert_int_equal(buf[32], 77); /* seq, least significant byte first */
	assert_int_equal(buf[33], 0);
}

static void test_truncated_needs_more(void **state)
{
	(void)state;
	struct ml_frame_hdr in = sample(ML_FT_ACK), out;
	uint8_t buf[ML_WIRE_HDR_LEN];
	ml_frame_encode(buf, &in);
	for (size_t n = 0; n < ML_WIRE_HDR_LEN; n++)
		assert_int_equal(ml_frame_decode(buf, n, &lim, &out), ML_WIRE_NEED_MORE);
}

static enum ml_wire_err decode_edited(uint8_t type, size_t off, uint8_t val, int restamp_crc)
{
	struct ml_frame_hdr in = sample(type), out;
	uint8_t buf[ML_WIRE_HDR_MAX] = { 0 };
	ml_frame_encode(buf, &in);
	buf[off] = val;
	if (restamp_crc)
		restamp(buf);
	return ml_frame_decode(buf, sizeof(buf), &lim, &out);
}

static void test_each_defect_has_its_error(void **state)
{
	(void)state;
	assert_int_equal(decode_edited(ML_FT_DATA, 0, 'X', 1), ML_WIRE_EMAGIC);
	assert_int_equal(decode_edited(ML_FT_DATA, 4, 2, 1), ML_WIRE_EVERSION);
	assert_int_equal(decode_edited(ML_FT_DATA, 5, 0, 1), ML_WIRE_ETYPE);
	assert_int_equal(decode_edited(ML_FT_DATA, 5, 8, 1), ML_WIRE_ETYPE);
	assert_int_equal(decode_edited(ML_FT_DATA, 8, 63, 1), ML_WIRE_EHDRLEN);
	assert_int_equal(decode_edited(ML_FT_DATA, 9, 0x04, 0), ML_WIRE_EHDRLEN); /* 1088 > 1024 */
	assert_int_equal(decode_edited(ML_FT_DATA, 6, 0, 1), ML_WIRE_EFLAGS);     /* kind 0 */
	assert_int_equal(decode_edited(ML_FT_DATA, 6, 0x81, 1), ML_WIRE_EFLAGS);  /* unknown bit */
	assert_int_equal(decode_edited(ML_FT_PING, 6, 1, 1), ML_WIRE_EFLAGS);     /* flags on control */
	assert_int_equal(decode_edited(ML_FT_DATA, 40, 0x5a, 0), ML_WIRE_ECRC);
}

static void test_every_header_bit_is_protected(void **state)
{
	(void)state;
	struct ml_frame_hdr in = sample(ML_FT_DATA), out;
	uint8_t buf[ML_WIRE_HDR_LEN];
	ml_frame_encode(buf, &in);
	for (unsigned bit = 0; bit < ML_WIRE_HDR_LEN * 8; bit++) {
		uint8_t c[ML_WIRE_HDR_MAX] = { 0 };
		memcpy(c, buf, sizeof(buf));
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		enum ml_wire_err e = ml_frame_decode(c, sizeof(c), &lim, &out);
		/* The first 10 bytes are checked before the CRC; any error will do there. */
		if (bit / 8 >= 10)
			assert_int_equal(e, ML_WIRE_ECRC);
		else
			assert_true(e != ML_WIRE_OK);
	}
}

static enum ml_wire_err decode_data(uint32_t payload_len, uint32_t offset, uint32_t msg_len)
{
	struct ml_frame_hdr in = sample(ML_FT_DATA), out;
	uint8_t buf[ML_WIRE_HDR_LEN];
	in.payload_len = payload_len;
	in.offset = offset;
	in.msg_len = msg_len;
	ml_frame_encode(buf, &in);
	return ml_frame_decode(buf, sizeof(buf), &lim, &out);
}

static void test_lengths_over_limits(void **state)
{
	(void)state;
	assert_int_equal(decode_data(256 * 1024, 0, 1 << 20), ML_WIRE_OK);
	assert_int_equal(decode_data(256 * 1024 + 1, 0, 1 << 20), ML_WIRE_EPAYLOAD);
	assert_int_equal(decode_data(100, 0, (64u << 20) + 1), ML_WIRE_EMSGLEN);
	assert_int_equal(decode_data(100, 950, 1000), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(100, 0xffffff00u, 1000), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(0, 0, 10), ML_WIRE_EFRAGMENT);
	assert_int_equal(decode_data(0, 0, 0), ML_WIRE_OK); /* an empty message */

	struct ml_frame_hdr in = sample(ML_FT_ACK), out;
	uint8_t buf[ML_WIRE_HDR_LEN];
	in.payload_len = ML_WIRE_CTRL_MAX + 1;
	ml_frame_encode(buf, &in);
	assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_EPAYLOAD);
}

static void test_longer_header_from_newer_sender(void **state)
{
	(void)state;
	struct ml_frame_hdr in = sample(ML_FT_DATA), out;
	uint8_t buf[96];
	memset(buf, 0xab, sizeof(buf));
	ml_frame_encode(buf, &in);
	ml_put16(buf + 8, 80); /* 16 more header bytes this version does not know */
	restamp(buf);
	assert_int_equal(ml_frame_decode(buf, 79, &lim, &out), ML_WIRE_NEED_MORE);
	assert_int_equal(ml_frame_decode(buf, sizeof(buf), &lim, &out), ML_WIRE_OK);
	assert_int_equal(out.hdr_len, 80);
	assert_int_equal(out.seq, 77);
}

static struct ml_hello hello_sample(void)
{
	struct ml_hello h = { .node_id = 3, .dest_node_id = 9, .incarnation = 0xabcdef0123ull,
			      .dest_incarnation = 42, .min_version = 1, .max_version = 1,
			      .path_idx = 5, .max_frag_payload = 65536, .max_msg_size = 1 << 24,
			      .window = 1024 };
	return h;
}

static void test_hello_round_trip_and_errors(void **state)
{
	(void)state;
	struct ml_hello in = hello_sample(), out;
	uint8_t buf[ML_HELLO_LEN + 8] = { 0 };
	ml_hello_encode(buf, &in);
	assert_int_equal(ml_hello_decode(buf, ML_HELLO_LEN, &out), ML_WIRE_OK);
	assert_true(out.node_id == 3 && out.dest_node_id == 9 && out.incarnation == in.incarnation &&
		    out.dest_incarnation == 42 && out.path_idx == 5 && out.max_frag_payload == 65536 &&
		    out.max_msg_size == (1u << 24) && out.window == 1024);
	assert_int_equal(ml_hello_decode(buf, sizeof(buf), &out), ML_WIRE_OK); /* newer: longer */
	assert_int_equal(ml_hello_decode(buf, ML_HELLO_LEN - 1, &out), ML_WIRE_EBODY);

	struct ml_hello bad[4] = { in, in, in, in };
	bad[0].node_id = 0;
	bad[1].incarnation = 0;
	bad[2].min_version = 2; /* min > max */
	bad[3].window = 0;
	for (int i = 0; i < 4; i++) {
		ml_hello_encode(buf, &bad[i]);
		assert_int_equal(ml_hello_decode(buf, ML_HELLO_LEN, &out), ML_WIRE_EBODY);
	}
}

static void test_ack_round_trip(void **state)
{
	(void)state;
	static const unsigned counts[] = { 0, 1, ML_WIRE_SACK_MAX };
	for (unsigned c = 0; c < 3; c++) {
		struct ml_ack in = { .cum = 100, .nranges = counts[c] }, out;
		uint8_t buf[16 + 16 * ML_WIRE_SACK_MAX];
		for (unsigned i = 0; i < in.nranges; i++) {
			in.r[i].start = 102 + 10 * i;
			in.r[i].end = 105 + 10 * i;
		}
		size_t n = ml_ack_encode(buf, &in);
		assert_int_equal(n, ml_ack_encoded_len(&in));
		assert_int_equal(ml_ack_decode(buf, n, &out), ML_WIRE_OK);
		assert_true(out.cum == 100 && out.nranges == in.nranges);
		for (unsigned i = 0; i < in.nranges; i++)
			assert_true(out.r[i].start == in.r[i].start && out.r[i].end == in.r[i].end);
	}
}

static enum ml_wire_err ack_with(uint64_t cum, const uint64_t *se, unsigned n, size_t cut)
{
	uint8_t buf[16 + 16 * (ML_WIRE_SACK_MAX + 1)];
	struct ml_ack out;
	ml_put64(buf, cum);
	ml_put32(buf + 8, n);
	ml_put32(buf + 12, 0);
	for (unsigned i = 0; i < n && i <= ML_WIRE_SACK_MAX; i++) {
		ml_put64(buf + 16 + 16 * i, se[2 * i]);
		ml_put64(buf + 24 + 16 * i, se[2 * i + 1]);
	}
	size_t len = 16 + 16 * (size_t)(n <= ML_WIRE_SACK_MAX ? n : ML_WIRE_SACK_MAX + 1);
	return ml_ack_decode(buf, len - cut, &out);
}

static void test_ack_malformed(void **state)
{
	(void)state;
	const uint64_t ok[] = { 12, 14, 20, 30 };
	assert_int_equal(ack_with(10, ok, 2, 0), ML_WIRE_OK);
	const uint64_t touching_cum[] = { 11, 14 };
	assert_int_equal(ack_with(10, touching_cum, 1, 0), ML_WIRE_EBODY);
	const uint64_t below_cum[] = { 5, 8 };
	assert_int_equal(ack_with(10, below_cum, 1, 0), ML_WIRE_EBODY);
	const uint64_t reversed[] = { 20, 14 };
	assert_int_equal(ack_with(10, reversed, 1, 0), ML_WIRE_EBODY);
	const uint64_t overlapping[] = { 12, 20, 18, 30 };
	assert_int_equal(ack_with(10, overlapping, 2, 0), ML_WIRE_EBODY);
	const uint64_t adjacent[] = { 12, 20, 21, 30 }; /* should have been one range */
	assert_int_equal(ack_with(10, adjacent, 2, 0), ML_WIRE_EBODY);
	const uint64_t descending[] = { 20, 30, 12, 14 };
	assert_int_equal(ack_with(10, descending, 2, 0), ML_WIRE_EBODY);
	assert_int_equal(ack_with(10, ok, 2, 1), ML_WIRE_EBODY); /* truncated */
	uint64_t many[2 * (ML_WIRE_SACK_MAX + 1)];
	for (unsigned i = 0; i <= ML_WIRE_SACK_MAX; i++) {
		many[2 * i] = 12 + 3 * i;
		many[2 * i + 1] = 13 + 3 * i;
	}
	assert_int_equal(ack_with(10, many, ML_WIRE_SACK_MAX + 1, 0), ML_WIRE_EBODY);
	assert_int_equal(ml_ack_decode((const uint8_t *)"short", 5, &(struct ml_ack){ 0 }), ML_WIRE_EBODY);
}

static void test_error_texts_distinct(void **state)
{
	(void)state;
	for (int a = ML_WIRE_OK; a <= ML_WIRE_EBODY; a++) {
		assert_true(strlen(ml_wire_strerror(a)) > 0);
		for (int b = a + 1; b <= ML_WIRE_EBODY; b++)
			assert_string_not_equal(ml_wire_strerror(a), ml_wire_strerror(b));
	}
	assert_string_equal(ml_wire_strerror(999), "unknown wire error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vector),
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_every_kind),
		cmocka_unit_test(test_magic_bytes_and_little_endian),
		cmocka_unit_test(test_truncated_needs_more),
		cmocka_unit_test(test_each_defect_has_its_error),
		cmocka_unit_test(test_every_header_bit_is_protected),
		cmocka_unit_test(test_lengths_over_limits),
		cmocka_unit_test(test_longer_header_from_newer_sender),
		cmocka_unit_test(test_hello_round_trip_and_errors),
		cmocka_unit_test(test_ack_round_trip),
		cmocka_unit_test(test_ack_malformed),
		cmocka_unit_test(test_error_texts_distinct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
