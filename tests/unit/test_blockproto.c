/* test_blockproto.c - the block example's pieces that must be exact: the
 * request and response headers (byte layout, every rejection, a decoder
 * that survives any input), the verify pattern (it catches what it should
 * and says what it found), and the volume option parser and range checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "blockproto.h"
#include "pattern.h"
#include "volume.h"

static size_t write_req(uint8_t *buf, int op, uint32_t length, size_t payload)
{
	struct blk_req h = { .op = (uint8_t)op, .volume = 7, .flags = BLK_F_SYNC,
			     .offset = 0x0102030405060708ull, .length = length };
	blk_req_encode(&h, buf);
	memset(buf + BLK_REQ_HDR_LEN, 0xab, payload);
	return BLK_REQ_HDR_LEN + payload;
}

static void test_request_layout(void **state)
{
	(void)state;
	uint8_t buf[BLK_REQ_HDR_LEN + 8];
	size_t len = write_req(buf, BLK_WRITE, 8, 8);
	/* little-endian on the wire, at the offsets doc/ml-blockd.md gives */
	static const uint8_t want[BLK_REQ_HDR_LEN] = {
		'M', 'L', 'B', 'K', 1, BLK_WRITE, 32, 0, 7, 0, 0, 0, 1, 0, 0, 0,
		8, 7, 6, 5, 4, 3, 2, 1, 8, 0, 0, 0, 0, 0, 0, 0,
	};
	assert_memory_equal(buf, want, sizeof(want));
	struct blk_req h;
	const void *payload;
	assert_int_equal(blk_req_decode(buf, len, &h, &payload), BLK_S_OK);
	assert_int_equal(h.op, BLK_WRITE);
	assert_int_equal(h.volume, 7);
	assert_int_equal(h.flags, BLK_F_SYNC);
	assert_true(h.offset == 0x0102030405060708ull);
	assert_int_equal(h.length, 8);
	assert_ptr_equal(payload, buf + BLK_REQ_HDR_LEN);
}

static void test_request_rejections(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct blk_req h;
	const void *p;
	size_t len;

	len = write_req(buf, BLK_READ, 4096, 0);
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_OK);
	assert_null(p);
	assert_int_equal(blk_req_decode(buf, 7, &h, &p), BLK_S_INVAL);        /* short */
	buf[0] = 'X';
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* magic */
	len = write_req(buf, BLK_READ, 4096, 0);
	buf[4] = 2;
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_VERSION);    /* newer */
	assert_int_equal(h.op, BLK_READ);                                     /* still known */
	len = write_req(buf, BLK_READ, 4096, 0);
	buf[6] = 31;
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* hdr_len < 32 */
	buf[6] = 33;
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* hdr_len > len */
	len = write_req(buf, BLK_READ, 4096, 4);
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* READ with data */
	len = write_req(buf, BLK_WRITE, 8, 4);
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* data != length */
	len = write_req(buf, BLK_FLUSH, 8, 0);
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* FLUSH has no range */
	len = write_req(buf, 9, 0, 0);
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_INVAL);      /* unknown op */
	len = write_req(buf, BLK_READ, 4096, 0);
	buf[13] = 1;                                                          /* flag bit 8 */
	assert_int_equal(blk_req_decode(buf, len, &h, &p), BLK_S_UNSUPPORTED);
}

/* A newer sender's longer header: the extra bytes are skipped. */
static void test_request_longer_header(void **state)
{
	(void)state;
	uint8_t buf[BLK_REQ_HDR_LEN + 8 + 4];
	write_req(buf, BLK_WRITE, 4, 0);
	buf[6] = BLK_REQ_HDR_LEN + 8;
	memset(buf + BLK_REQ_HDR_LEN, 0xee, 8);
	memcpy(buf + BLK_REQ_HDR_LEN + 8, "data", 4);
	struct blk_req h;
	const void *p;
	assert_int_equal(blk_req_decode(buf, sizeof(buf), &h, &p), BLK_S_OK);
	assert_memory_equal(p, "data", 4);
}

/* Any prefix of a valid request, and any corruption of one: an answer,
 * never a crash or a read past the end (ASan and valgrind watch). */
static void test_request_decoder_is_total(void **state)
{
	(void)state;
	uint8_t good[BLK_REQ_HDR_LEN + 64];
	size_t len = write_req(good, BLK_WRITE, 64, 64);
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, good, n);
		struct blk_req h;
		const void *p;
		assert_int_not_equal(blk_req_decode(cut, n, &h, &p), BLK_S_OK);
		free(cut);
	}
	srand(1);
	for (int i = 0; i < 20000; i++) {
		uint8_t *bad = malloc(len);
		memcpy(bad, good, len);
		for (int k = 0, flips = 1 + rand() % 4; k < flips; k++)
			bad[rand() % len] = (uint8_t)rand();
		size_t n = (size_t)rand() % (len + 1);
		struct blk_req h;
		const void *p;
		int st = blk_req_decode(bad, n, &h, &p);
		assert_true(st >= BLK_S_OK && st <= BLK_S_UNSUPPORTED);
		if (st == BLK_S_OK && h.op == BLK_WRITE)
			assert_true((const uint8_t *)p + h.length == bad + n);
		free(bad);
	}
}

static void test_response(void **state)
{
	(void)state;
	uint8_t buf[BLK_RSP_HDR_LEN + 4];
	struct blk_rsp r = { .op = BLK_READ, .status = BLK_S_IO, .sys_errno = 5, .length = 4 };
	blk_rsp_encode(&r, buf);
	memcpy(buf + BLK_RSP_HDR_LEN, "abcd", 4);
	static const uint8_t want[BLK_RSP_HDR_LEN] = {
		'M', 'L', 'B', 'R', 1, BLK_READ, 24, 0, 6, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0,
	};
	assert_memory_equal(buf, want, sizeof(want));
	struct blk_rsp d;
	const void *data;
	const char *why = NULL;
	assert_int_equal(blk_rsp_decode(buf, sizeof(buf), &d, &data, &why), 0);
	assert_int_equal(d.status, BLK_S_IO);
	assert_int_equal(d.sys_errno, 5);
	assert_memory_equal(data, "abcd", 4);
	assert_int_equal(blk_rsp_decode(buf, sizeof(buf) - 1, &d, &data, &why), -1); /* length */
	assert_non_null(why);
	assert_int_equal(blk_rsp_decode(buf, 10, &d, &data, &why), -1);              /* short */
	buf[4] = 2;
	assert_int_equal(blk_rsp_decode(buf, sizeof(buf), &d, &data, &why), -1);     /* version */
	assert_string_equal(blk_status_name(BLK_S_SHUTDOWN), "backend shutting down");
	assert_string_equal(blk_status_name(99), "unknown block status");
	assert_string_equal(blk_op_name(BLK_DISCARD), "discard");
}

static void test_pattern(void **state)
{
	(void)state;
	enum { BS = 512 };
	uint8_t b[BS], zero[BS] = { 0 };
	char why[200];
	pattern_fill(b, BS, 99, 17, 5);
	assert_int_equal(pattern_check(b, BS, 99, 17, 5, why, sizeof(why)), 0);
	/* an older generation of the same block */
	assert_int_equal(pattern_check(b, BS, 99, 17, 6, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "holds block 17 generation 5, expected generation 6"));
	/* written to the wrong place */
	assert_int_equal(pattern_check(b, BS, 99, 18, 5, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "holds block 17"));
	/* another run's data */
	assert_int_equal(pattern_check(b, BS, 98, 17, 5, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "another run"));
	/* one byte of the filler changed: only the full comparison sees it */
	b[BS - 1] ^= 1;
	assert_int_equal(pattern_check(b, BS, 99, 17, 5, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "data corrupted"));
	/* discarded: zeros expected */
	assert_int_equal(pattern_check(zero, BS, 99, 17, PATTERN_ZEROS, why, sizeof(why)), 0);
	assert_int_equal(pattern_check(zero, BS, 99, 17, 5, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "zeros, expected generation 5"));
	zero[100] = 1;
	assert_int_equal(pattern_check(zero, BS, 99, 17, PATTERN_ZEROS, why, sizeof(why)), -1);
	/* different blocks, generations and runs give different bytes */
	uint8_t c[BS];
	pattern_fill(c, BS, 99, 17, 6);
	pattern_fill(b, BS, 99, 17, 5);
	assert_memory_not_equal(b + 32, c + 32, BS - 32);
}

static void test_volume_options(void **state)
{
	(void)state;
	char err[256], spec[128];
	struct volume v;
	snprintf(spec, sizeof(spec), "name=vol0,size=64M,bs=512,sync");
	assert_int_equal(volume_parse(spec, &v, err, sizeof(err)), 0);
	assert_string_equal(v.name, "vol0");
	assert_true(v.size == 64ull << 20);
	assert_int_equal(v.block_size, 512);
	assert_int_equal(v.sync, 1);
	assert_null(v.path);
	static const struct { const char *spec, *says; } bad[] = {
		{ "size=1M", "needs name=" },
		{ "name=a", "needs size=SIZE or file=PATH" },
		{ "name=a/b,size=1M", "bad volume name" },
		{ "name=a,size=1000", "not a multiple of the block size" },
		{ "name=a,size=1M,bs=3000", "bad block size" },
		{ "name=a,size=lots", "bad size" },
		{ "name=a,size=1M,colour=red", "unknown volume option 'colour'" },
		{ "name=a,size=1M,ro", "read-only temporary volume" },
		{ "name=a,size=1M,fast", "'fast' is not a volume option" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(spec, sizeof(spec), "%s", bad[i].spec);
		assert_int_equal(volume_parse(spec, &v, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].says))
			fail_msg("'%s': '%s' does not say '%s'", bad[i].spec, err, bad[i].says);
	}
}

static void test_volume_ranges(void **state)
{
	(void)state;
	struct volume v = { .size = 1 << 20, .block_size = 4096 };
	struct blk_req h = { .op = BLK_READ, .offset = 0, .length = 4096 };
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_OK);
	h.offset = (1 << 20) - 4096;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_OK);       /* the last block */
	h.offset = 1 << 20;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RANGE);    /* past the end */
	h.offset = UINT64_MAX - 4095;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RANGE);    /* no wrap-around */
	h.offset = 512;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RANGE);    /* unaligned */
	h.offset = 0;
	h.length = 0;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RANGE);    /* empty */
	h.length = 131072;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RANGE);    /* over max_io */
	h.op = BLK_DISCARD;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_OK);       /* discards may be long */
	v.ro = 1;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_RDONLY);
	h.op = BLK_FLUSH;
	assert_int_equal(volume_check(&v, &h, 65536), BLK_S_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_layout),
		cmocka_unit_test(test_request_rejections),
		cmocka_unit_test(test_request_longer_header),
		cmocka_unit_test(test_request_decoder_is_total),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_pattern),
		cmocka_unit_test(test_volume_options),
		cmocka_unit_test(test_volume_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
