/* test_pubsub_record.c - discovery records: validation, round trips through
 * the TLV codec, and a decoder that rejects every malformed input cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msglayer.h"
#include "../../pubsub/record.h"

static const char *const eps[] = { "tcp://10.0.1.5:7400", "rdma://10.0.2.5:7400" };

/* A record with one attribute of every type and two endpoints. */
static struct mlps_record *sample(void)
{
	static const uint8_t blob[] = { 0, 1, 2, 0xff };
	struct mlps_attr a[] = {
		mlps_attr_u64("size", 1ull << 40),
		mlps_attr_i64("prio", -7),
		mlps_attr_str("proto", "nvme-of v2"),
		mlps_attr_bool("ro", 0),
		mlps_attr_bytes("uuid", blob, sizeof(blob)),
	};
	struct mlps_rec_in in;
	assert_int_equal(mlps_rec_in_from_api(&in, "block/vol0", a, 5, eps, 2), 0);
	assert_int_equal(mlps_rec_in_check(&in), 0);
	in.node_id = 3;
	in.ml_node_id = 0x10203;
	in.incarnation = 0x1122334455667788ull;
	in.version = 42;
	struct mlps_record *r = mlps_rec_build(&in);
	assert_non_null(r);
	return r;
}

static void encode(int type, const struct mlps_record *r, uint8_t **buf, size_t *len)
{
	assert_int_equal(mlps_msg_encode(type, r, buf, len), 0);
}

static void assert_same(const struct mlps_record *a, const struct mlps_record *b)
{
	assert_true(mlps_rec_same_content(a, b));
	assert_int_equal(a->node_id, b->node_id);
	assert_true(a->incarnation == b->incarnation);
	assert_true(a->version == b->version);
}

static void test_round_trip_publish(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d = NULL;
	uint8_t *buf;
	size_t len;
	int type = 0;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);
	/* header: magic "MLPS", version 1, type, hdr_len 16, body length, LE */
	assert_memory_equal(buf, "MLPS", 4);
	assert_int_equal(buf[4], 1);
	assert_int_equal(buf[5], MLPS_MSG_PUBLISH);
	assert_int_equal(buf[6] | buf[7] << 8, 16);
	assert_int_equal(buf[8] | buf[9] << 8 | buf[10] << 16 | (uint32_t)buf[11] << 24, len - 16);
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), 0);
	assert_int_equal(type, MLPS_MSG_PUBLISH);
	assert_same(r, d);
	assert_int_equal(d->ml_node_id, 0x10203);
	assert_null(d->peer);
	assert_string_equal(d->name, "block/vol0");
	assert_int_equal(mlps_record_attr(d, "prio")->v.i64, -7);
	assert_string_equal(mlps_record_attr(d, "proto")->v.str, "nvme-of v2");
	assert_int_equal(mlps_record_attr(d, "uuid")->v.bytes.len, 4);
	assert_int_equal(((const uint8_t *)mlps_record_attr(d, "uuid")->v.bytes.data)[3], 0xff);
	assert_string_equal(d->endpoints[1], "rdma://10.0.2.5:7400");
	assert_null(mlps_record_attr(d, "nope"));
	free(buf);
	mlps_rec_free(d);
	mlps_rec_free(r);
}

static void test_round_trip_withdraw_bye_empty(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d;
	uint8_t *buf;
	size_t len;
	int type;
	encode(MLPS_MSG_WITHDRAW, r, &buf, &len);
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), 0);
	assert_int_equal(type, MLPS_MSG_WITHDRAW);
	assert_string_equal(d->name, "block/vol0");
	assert_int_equal(d->n_attrs, 0); /* a withdraw carries no attributes */
	assert_int_equal(d->ml_node_id, 0); /* nor the message-layer node */
	assert_true(d->version == 42 && d->incarnation == r->incarnation && d->node_id == 3);
	free(buf);
	mlps_rec_free(d);

	encode(MLPS_MSG_BYE, r, &buf, &len);
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), 0);
	assert_int_equal(type, MLPS_MSG_BYE);
	assert_string_equal(d->name, "");
	assert_true(d->incarnation == r->incarnation && d->node_id == 3);
	free(buf);
	mlps_rec_free(d);
	mlps_rec_free(r);

	/* a record with no attributes and no endpoints */
	struct mlps_rec_in in;
	assert_int_equal(mlps_rec_in_from_api(&in, "x", NULL, 0, NULL, 0), 0);
	in.node_id = 1;
	r = mlps_rec_build(&in);
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), 0);
	assert_same(r, d);
	assert_null(d->attrs);
	assert_null(d->endpoints);
	assert_int_equal(d->ml_node_id, 0); /* none given: none sent */
	free(buf);
	mlps_rec_free(d);
	mlps_rec_free(r);
}

/* Cutting a valid message anywhere (header left as is) is rejected. */
static void test_every_truncation_rejected(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d = NULL;
	uint8_t *buf;
	size_t len;
	int type;
	for (int t = MLPS_MSG_PUBLISH; t <= MLPS_MSG_BYE; t++) {
		encode(t, r, &buf, &len);
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
			memcpy(copy, buf, cut);
			int rc = mlps_msg_decode(copy, cut, &type, &d);
			if (rc == 0)
				fail_msg("type %d cut at %zu of %zu accepted", t, cut, len);
			assert_true(rc == MLPS_DE_SHORT || rc == MLPS_DE_LENGTH || rc == MLPS_DE_HDRLEN);
			free(copy);
		}
		free(buf);
	}
	mlps_rec_free(r);
}

/* The same cuts with the body length fixed up to match: a cut inside a
 * field is a truncated TLV; a cut between fields may lose a required one. */
static void test_truncated_body_rejected(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d = NULL;
	uint8_t *buf;
	size_t len;
	int type;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);
	/* TLV boundaries */
	size_t bounds[64], nb = 0;
	for (size_t o = 16; o < len; o += 4 + (buf[o + 2] | buf[o + 3] << 8))
		bounds[nb++] = o;
	for (size_t cut = 16; cut < len; cut++) {
		uint8_t *copy = malloc(cut);
		memcpy(copy, buf, cut);
		uint32_t bl = (uint32_t)(cut - 16);
		for (int i = 0; i < 4; i++)
			copy[8 + i] = (uint8_t)(bl >> (8 * i));
		int at_bound = 0;
		for (size_t i = 0; i < nb; i++)
			at_bound |= bounds[i] == cut;
		int rc = mlps_msg_decode(copy, cut, &type, &d);
		if (!at_bound)
			assert_int_equal(rc, MLPS_DE_TLV_TRUNC);
		else if (rc == 0) /* only the optional attributes and endpoints were lost */
			mlps_rec_free(d);
		else
			assert_int_equal(rc, MLPS_DE_MISSING);
		free(copy);
	}
	free(buf);
	mlps_rec_free(r);
}

/* Insert bytes at offset `at` of a message and fix the body length. */
static uint8_t *splice(const uint8_t *buf, size_t len, size_t at, const void *ins, size_t n,
		       size_t *out_len)
{
	uint8_t *p = malloc(len + n);
	memcpy(p, buf, at);
	memcpy(p + at, ins, n);
	memcpy(p + at + n, buf + at, len - at);
	uint32_t hl = p[6] | p[7] << 8, bl = (uint32_t)(len + n - hl);
	for (int i = 0; i < 4; i++)
		p[8 + i] = (uint8_t)(bl >> (8 * i));
	*out_len = len + n;
	return p;
}

static void test_unknown_fields_skipped(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d;
	uint8_t *buf, *m;
	size_t len, mlen;
	int type;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);

	/* an unknown TLV (type 0x0123, 5 bytes) first and last in the body */
	static const uint8_t unk[] = { 0x23, 0x01, 5, 0, 'h', 'e', 'l', 'l', 'o' };
	m = splice(buf, len, 16, unk, sizeof(unk), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), 0);
	assert_same(r, d);
	mlps_rec_free(d);
	free(m);
	m = splice(buf, len, len, unk, sizeof(unk), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), 0);
	assert_same(r, d);
	mlps_rec_free(d);
	free(m);

	/* an attribute of a type this reader does not know (9): skipped */
	static const uint8_t attr9[] = { 5, 0, 6, 0, 9, 2, 'z', 'z', 0xaa, 0xbb };
	m = splice(buf, len, 16, attr9, sizeof(attr9), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), 0);
	assert_same(r, d);
	mlps_rec_free(d);
	free(m);

	/* a longer header (a newer version appended fields): skipped */
	static const uint8_t hext[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	m = splice(buf, len, 16, hext, sizeof(hext), &mlen);
	m[6] = 24;
	uint32_t bl = (uint32_t)(mlen - 24);
	for (int i = 0; i < 4; i++)
		m[8 + i] = (uint8_t)(bl >> (8 * i));
	m[4] = 7; /* and a newer version number */
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), 0);
	assert_same(r, d);
	mlps_rec_free(d);
	free(m);

	/* the same unknown TLV marked critical: rejected */
	static const uint8_t crit[] = { 0x23, 0x81, 1, 0, 'x' };
	m = splice(buf, len, 16, crit, sizeof(crit), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_CRITICAL);
	free(m);

	/* an unknown message type: its own error, so that callers skip it quietly */
	buf[5] = 77;
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), MLPS_DE_TYPE);
	free(buf);
	mlps_rec_free(r);
}

static void put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_absurd_lengths_rejected(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d;
	uint8_t *buf, *m;
	size_t len, mlen;
	int type;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);

	m = malloc(len);
	memcpy(m, buf, len);
	put32le(m + 8, 0xffffffffu); /* body length */
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_LENGTH);
	memcpy(m, buf, len);
	m[6] = 0xff, m[7] = 0xff; /* header length 65535 */
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_HDRLEN);
	m[6] = 8, m[7] = 0; /* header length below 16 */
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_HDRLEN);
	memcpy(m, buf, len);
	m[16 + 2] = 0xff, m[16 + 3] = 0xff; /* first TLV claims 65535 bytes */
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_TLV_TRUNC);
	memcpy(m, buf, len);
	m[0] = 'X';
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_MAGIC);
	memcpy(m, buf, len);
	m[4] = 0;
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_VERSION);
	free(m);

	/* longer than the maximum message */
	m = calloc(1, MLPS_MSG_MAX + 1);
	memcpy(m, buf, 16);
	put32le(m + 8, MLPS_MSG_MAX + 1 - 16);
	assert_int_equal(mlps_msg_decode(m, MLPS_MSG_MAX + 1, &type, &d), MLPS_DE_TOOBIG);
	free(m);

	/* attribute whose name length runs past its TLV */
	static const uint8_t bad_attr[] = { 5, 0, 4, 0, MLPS_U64, 200, 'a', 'b' };
	m = splice(buf, len, 16, bad_attr, sizeof(bad_attr), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_ATTR);
	free(m);
	/* u64 attribute with 3 value bytes */
	static const uint8_t short_u64[] = { 5, 0, 6, 0, MLPS_U64, 1, 'q', 1, 2, 3 };
	m = splice(buf, len, 16, short_u64, sizeof(short_u64), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_ATTR);
	free(m);
	/* bool 2 */
	static const uint8_t bool2[] = { 5, 0, 4, 0, MLPS_BOOL, 1, 'q', 2 };
	m = splice(buf, len, 16, bool2, sizeof(bool2), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_VALUE);
	free(m);
	/* node TLV of 3 bytes, a second version TLV */
	static const uint8_t node3[] = { 2, 0, 3, 0, 1, 2, 3 };
	m = splice(buf, len, 16, node3, sizeof(node3), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_TLV_LEN);
	free(m);
	static const uint8_t ver2[] = { 4, 0, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
	m = splice(buf, len, len, ver2, sizeof(ver2), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_TLV_DUP);
	free(m);
	/* a duplicate attribute name */
	static const uint8_t dup[] = { 5, 0, 3, 0, MLPS_BOOL, 2, 'r', 'o', 1 };
	m = splice(buf, len, len, dup, sizeof(dup), &mlen);
	m[len + 2] = 5; /* TLV length: type, name_len, "ro", value */
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_ATTR_DUP);
	free(m);
	/* 17 endpoints */
	uint8_t epbuf[17 * 12];
	for (int i = 0; i < 17; i++)
		memcpy(epbuf + 12 * i, "\x06\x00\x08\x00tcp://x9", 12);
	m = splice(buf, len, len, epbuf, sizeof(epbuf), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_ENDPOINT_MANY);
	free(m);
	/* 33 attributes (28 more than the sample's 5) */
	uint8_t abuf[28 * 12];
	for (int i = 0; i < 28; i++) {
		memcpy(abuf + 12 * i, "\x05\x00\x08\x00\x03\x02xx" "abcd", 12);
		abuf[12 * i + 6] = (uint8_t)('a' + i % 26);
		abuf[12 * i + 7] = (uint8_t)('a' + i / 26);
	}
	m = splice(buf, len, len, abuf, sizeof(abuf), &mlen);
	assert_int_equal(mlps_msg_decode(m, mlen, &type, &d), MLPS_DE_ATTR_MANY);
	free(m);
	/* node id 0 */
	m = malloc(len);
	memcpy(m, buf, len);
	for (size_t o = 16; o < len; o += 4 + (m[o + 2] | m[o + 3] << 8))
		if (m[o] == MLPS_TLV_NODE)
			memset(m + o + 4, 0, 4);
	assert_int_equal(mlps_msg_decode(m, len, &type, &d), MLPS_DE_NODE);
	free(m);
	assert_int_equal(mlps_msg_decode(NULL, 0, &type, &d), MLPS_DE_SHORT);
	free(buf);
	mlps_rec_free(r);
}

/* Random corruption never crashes, and whatever is accepted is valid. */
static void test_random_corruption(void **state)
{
	(void)state;
	struct mlps_record *r = sample(), *d;
	uint8_t *buf;
	size_t len;
	int type;
	unsigned seed = 12345;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t *m = malloc(len);
		memcpy(m, buf, len);
		int flips = 1 + rand_r(&seed) % 4;
		for (int k = 0; k < flips; k++)
			m[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
		size_t mlen = len - (rand_r(&seed) % 8 == 0 ? rand_r(&seed) % len : 0);
		if (mlps_msg_decode(m, mlen, &type, &d) == 0) {
			struct mlps_rec_in in;
			mlps_rec_in_from_rec(&in, d);
			if (type != MLPS_MSG_BYE)
				assert_int_equal(mlps_rec_in_check(&in), 0);
			mlps_rec_free(d);
		}
		free(m);
	}
	free(buf);
	mlps_rec_free(r);
}

static int check_name(const char *n)
{
	return mlps_name_check(n, strlen(n));
}

static void test_validation(void **state)
{
	(void)state;
	char longname[300];
	assert_int_equal(check_name("block/vol0"), 0);
	assert_int_equal(check_name("fs/export/home"), 0);
	assert_int_equal(check_name("a"), 0);
	assert_int_equal(check_name(""), MLPS_DE_NAME);
	assert_int_equal(check_name("/block"), MLPS_DE_NAME);
	assert_int_equal(check_name("block/"), MLPS_DE_NAME);
	assert_int_equal(check_name("block//vol"), MLPS_DE_NAME);
	assert_int_equal(check_name("block/vol 0"), MLPS_DE_NAME);
	assert_int_equal(check_name("block/vol*"), MLPS_DE_NAME);
	assert_int_equal(check_name("block/v\x01"), MLPS_DE_NAME);
	assert_int_equal(check_name("block/v\xc3\xa9"), MLPS_DE_NAME);
	assert_true(strstr(mlps_last_error(), "byte 7") != NULL);
	memset(longname, 'a', sizeof(longname));
	assert_int_equal(mlps_name_check(longname, 255), 0);
	assert_int_equal(mlps_name_check(longname, 256), MLPS_DE_NAME);

	assert_int_equal(mlps_attr_name_check("size", 4), 0);
	assert_int_equal(mlps_attr_name_check("_x.y-2", 6), 0);
	assert_int_equal(mlps_attr_name_check("2x", 2), MLPS_DE_ATTR_NAME);
	assert_int_equal(mlps_attr_name_check("a b", 3), MLPS_DE_ATTR_NAME);
	assert_int_equal(mlps_attr_name_check(longname, 33), MLPS_DE_ATTR_NAME);
	assert_int_equal(mlps_attr_name_check(longname, 32), 0);

	assert_int_equal(mlps_endpoint_check("tcp://1.2.3.4:5", 15), 0);
	assert_int_equal(mlps_endpoint_check("1.2.3.4:5", 9), MLPS_DE_ENDPOINT);
	assert_int_equal(mlps_endpoint_check("tcp://", 6), MLPS_DE_ENDPOINT);
	assert_int_equal(mlps_endpoint_check("tcp:// x", 8), MLPS_DE_ENDPOINT);

	struct mlps_rec_in in;
	struct mlps_attr dup[] = { mlps_attr_u64("a", 1), mlps_attr_bool("a", 1) };
	assert_int_equal(mlps_rec_in_from_api(&in, "x", dup, 2, NULL, 0), 0);
	assert_int_equal(mlps_rec_in_check(&in), MLPS_DE_ATTR_DUP);
	assert_true(strstr(mlps_last_error(), "'a' given twice") != NULL);
	struct mlps_attr ctl[] = { mlps_attr_str("s", "a\nb") };
	assert_int_equal(mlps_rec_in_from_api(&in, "x", ctl, 1, NULL, 0), 0);
	assert_int_equal(mlps_rec_in_check(&in), MLPS_DE_VALUE);
	struct mlps_attr badtype = { "t", 99, { 0 } };
	assert_int_equal(mlps_rec_in_from_api(&in, "x", &badtype, 1, NULL, 0), MLPS_DE_ATTR);
	struct mlps_attr nullstr = { "t", MLPS_STR, { 0 } };
	assert_int_equal(mlps_rec_in_from_api(&in, "x", &nullstr, 1, NULL, 0), MLPS_DE_VALUE);
	assert_int_equal(mlps_rec_in_from_api(&in, NULL, NULL, 0, NULL, 0), MLPS_DE_NAME);
	assert_int_equal(mlps_rec_in_from_api(&in, "x", NULL, 33, NULL, 0), MLPS_DE_ATTR_MANY);
	assert_int_equal(mlps_rec_in_from_api(&in, "x", NULL, 0, eps, 17), MLPS_DE_ENDPOINT_MANY);
	char big[MLPS_VALUE_MAX + 2];
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct mlps_attr bigv[] = { mlps_attr_str("s", big) };
	assert_int_equal(mlps_rec_in_from_api(&in, "x", bigv, 1, NULL, 0), 0);
	assert_int_equal(mlps_rec_in_check(&in), MLPS_DE_VALUE);
	big[MLPS_VALUE_MAX] = '\0';
	assert_int_equal(mlps_rec_in_from_api(&in, "x", bigv, 1, NULL, 0), 0);
	assert_int_equal(mlps_rec_in_check(&in), 0);
	assert_string_equal(mlps_decode_strerror(MLPS_DE_TLV_TRUNC),
			    "a field runs past the end of the message");
	assert_string_equal(mlps_strerror(MLPS_ECOROSYNC),
			    "Corosync is not running or refused the request");
	assert_string_equal(mlps_strerror(ML_EINVAL), "invalid argument");
}

/* The biggest valid record still fits one message. */
static void test_largest_record_fits(void **state)
{
	(void)state;
	static char val[MLPS_VALUE_MAX + 1], names[MLPS_ATTRS_MAX][MLPS_ATTR_NAME_MAX + 1];
	static char epv[MLPS_ENDPOINTS_MAX][MLPS_ENDPOINT_MAX + 1];
	char name[MLPS_NAME_MAX + 1];
	struct mlps_attr a[MLPS_ATTRS_MAX];
	const char *e[MLPS_ENDPOINTS_MAX];
	memset(val, 'v', MLPS_VALUE_MAX);
	memset(name, 'n', MLPS_NAME_MAX);
	name[MLPS_NAME_MAX] = '\0';
	for (int i = 0; i < MLPS_ATTRS_MAX; i++) {
		memset(names[i], 'a', MLPS_ATTR_NAME_MAX);
		names[i][0] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh"[i];
		a[i] = mlps_attr_bytes(names[i], val, MLPS_VALUE_MAX);
	}
	for (int i = 0; i < MLPS_ENDPOINTS_MAX; i++) {
		memset(epv[i], 'e', MLPS_ENDPOINT_MAX);
		memcpy(epv[i], "tcp://", 6);
		e[i] = epv[i];
	}
	struct mlps_rec_in in;
	assert_int_equal(mlps_rec_in_from_api(&in, name, a, MLPS_ATTRS_MAX, e, MLPS_ENDPOINTS_MAX), 0);
	assert_int_equal(mlps_rec_in_check(&in), 0);
	in.node_id = 9;
	struct mlps_record *r = mlps_rec_build(&in), *d;
	uint8_t *buf;
	size_t len;
	int type;
	encode(MLPS_MSG_PUBLISH, r, &buf, &len);
	assert_true(len <= MLPS_MSG_MAX);
	assert_int_equal(mlps_msg_decode(buf, len, &type, &d), 0);
	assert_same(r, d);
	free(buf);
	mlps_rec_free(d);
	mlps_rec_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_publish),
		cmocka_unit_test(test_round_trip_withdraw_bye_empty),
		cmocka_unit_test(test_every_truncation_rejected),
		cmocka_unit_test(test_truncated_body_rejected),
		cmocka_unit_test(test_unknown_fields_skipped),
		cmocka_unit_test(test_absurd_lengths_rejected),
		cmocka_unit_test(test_random_corruption),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_largest_record_fits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
