/* test_seal.c - sealed records (seal.h): both modes round trip across iovec
 * pieces and partial writes, the handshake bytes pass in the clear, and
 * every tampered, misdirected or malformed record is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msglayer.h"
#include "seal.h"
#include "wire.h"

/* ---- a transport that takes at most `take` bytes per writev into a buffer ---- */

static uint8_t wire_buf[4 << 20];
static size_t wire_len;
static size_t take_max = (size_t)-1; /* 0: EAGAIN */

static ssize_t buf_writev(int fd, const struct iovec *iov, int n)
{
	(void)fd;
	size_t took = 0;
	if (take_max == 0) {
		errno = EAGAIN;
		return -1;
	}
	for (int i = 0; i < n && took < take_max; i++) {
		size_t l = iov[i].iov_len < take_max - took ? iov[i].iov_len : take_max - took;
		assert_true(wire_len + l <= sizeof(wire_buf));
		memcpy(wire_buf + wire_len, iov[i].iov_base, l);
		wire_len += l;
		took += l;
	}
	return (ssize_t)took;
}

static const struct ml_transport_ops buf_ops = { .scheme = "test", .writev = buf_writev };

static uint8_t key_a[ML_SEAL_KEY_LEN], key_b[ML_SEAL_KEY_LEN];

static int setup(void **state)
{
	(void)state;
	wire_len = 0;
	take_max = (size_t)-1;
	for (unsigned i = 0; i < ML_SEAL_KEY_LEN; i++) {
		key_a[i] = (uint8_t)(i + 1);
		key_b[i] = (uint8_t)(0xa0 ^ i);
	}
	return 0;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + seed + (i >> 9));
	return p;
}

/* Open everything on the wire with a receiver keyed (rx = key). */
static size_t open_all(int mode, const uint8_t *key, uint8_t *out, size_t cap, int *rc)
{
	struct ml_seal *rx = ml_seal_new(mode, key_b, key, 0);
	assert_non_null(rx);
	size_t total = 0, at = 0;
	*rc = 0;
	while (at < wire_len && !*rc) {
		struct iovec v = ml_seal_rx_space(rx);
		size_t n = wire_len - at < v.iov_len ? wire_len - at : v.iov_len;
		if (n > 1000)
			n = 1000 + at % 7; /* arrives in odd pieces, as from a socket */
		memcpy(v.iov_base, wire_buf + at, n);
		ml_seal_rx_got(rx, n);
		at += n;
		size_t got;
		const char *why;
		*rc = ml_seal_open(rx, out + total, cap - total, &got, &why);
		total += got;
	}
	ml_seal_free(rx);
	return total;
}

static void round_trip(int mode)
{
	enum { LEN = 300000 };
	uint8_t *msg = pattern(LEN, (unsigned)mode), *out = malloc(LEN);
	assert_non_null(out);
	struct ml_seal *tx = ml_seal_new(mode, key_a, key_b, 0);
	assert_non_null(tx);
	/* iovec pieces that straddle record boundaries */
	struct iovec iov[] = { { msg, 10 }, { msg + 10, 70000 }, { msg + 70010, 1 },
			       { msg + 70011, LEN - 70011 } };
	ssize_t w = ml_seal_writev(tx, &buf_ops, 0, iov, 4);
	assert_int_equal(w, LEN);
	assert_false(ml_seal_pending(tx));
	size_t records = (LEN + ML_SEAL_RECORD_MAX - 1) / ML_SEAL_RECORD_MAX;
	assert_int_equal(wire_len, LEN + records * ML_SEAL_OVERHEAD);
	/* encrypted: the plaintext does not show on the wire; MAC: it does */
	int shows = memmem(wire_buf, wire_len, msg + 5000, 64) != NULL;
	assert_int_equal(shows, mode == ML_PROTECT_MAC);
	int rc;
	assert_int_equal(open_all(mode, key_a, out, LEN, &rc), LEN);
	assert_int_equal(rc, 0);
	assert_memory_equal(out, msg, LEN);
	ml_seal_free(tx);
	free(msg);
	free(out);
}

static void test_round_trip_encrypt(void **state)
{
	(void)state;
	round_trip(ML_PROTECT_ENCRYPT);
}

static void test_round_trip_mac(void **state)
{
	(void)state;
	round_trip(ML_PROTECT_MAC);
}

/* A transport that takes little at a time: the sealer keeps the rest, takes
 * nothing new until it is out, and the stream still opens whole. */
static void test_partial_writes_and_pending(void **state)
{
	(void)state;
	enum { LEN = 100000 };
	uint8_t *msg = pattern(LEN, 7), *out = malloc(LEN);
	struct ml_seal *tx = ml_seal_new(ML_PROTECT_ENCRYPT, key_a, key_b, 0);
	assert_non_null(tx);
	take_max = 5000;
	struct iovec v = { msg, 60000 };
	/* a slow transport (5000 bytes per call) still takes everything */
	ssize_t w = ml_seal_writev(tx, &buf_ops, 0, &v, 1);
	assert_int_equal(w, 60000);
	take_max = 0; /* the socket is full */
	v = (struct iovec){ msg + 60000, LEN - 60000 };
	assert_int_equal(ml_seal_writev(tx, &buf_ops, 0, &v, 1), LEN - 60000);
	assert_true(ml_seal_pending(tx));
	size_t before = wire_len;
	struct iovec v2 = { msg, 10 };
	assert_int_equal(ml_seal_writev(tx, &buf_ops, 0, &v2, 1), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(wire_len, before);
	take_max = 777;
	while (ml_seal_pending(tx)) {
		int r = ml_seal_drain(tx, &buf_ops, 0);
		assert_true(r == 0 || errno == EAGAIN);
		take_max = 777; /* buf_writev never blocks: drain writes everything */
	}
	int rc;
	assert_int_equal(open_all(ML_PROTECT_ENCRYPT, key_a, out, LEN, &rc), LEN);
	assert_int_equal(rc, 0);
	assert_memory_equal(out, msg, LEN);
	ml_seal_free(tx);
	free(msg);
	free(out);
}

/* The handshake's last bytes go out as they are, then records follow. */
static void test_plain_prefix(void **state)
{
	(void)state;
	uint8_t hello[100], body[5000];
	memset(hello, 'H', sizeof(hello));
	memset(body, 'B', sizeof(body));
	struct ml_seal *tx = ml_seal_new(ML_PROTECT_ENCRYPT, key_a, key_b, sizeof(hello));
	assert_non_null(tx);
	struct iovec iov[] = { { hello, 60 }, { hello + 60, 40 }, { body, sizeof(body) } };
	assert_int_equal(ml_seal_writev(tx, &buf_ops, 0, iov, 3), sizeof(hello) + sizeof(body));
	assert_memory_equal(wire_buf, hello, sizeof(hello));
	assert_int_equal(ml_get32(wire_buf + sizeof(hello)), sizeof(body));
	assert_int_equal(wire_len, sizeof(hello) + sizeof(body) + ML_SEAL_OVERHEAD);
	ml_seal_free(tx);
	assert_null(ml_seal_new(ML_PROTECT_ENCRYPT, key_a, key_b, ML_SEAL_PLAIN_MAX + 1));
}

static int seal_some(int mode, size_t len)
{
	uint8_t *msg = pattern(len, 3);
	struct ml_seal *tx = ml_seal_new(mode, key_a, key_b, 0);
	assert_non_null(tx);
	struct iovec v = { msg, len };
	int ok = ml_seal_writev(tx, &buf_ops, 0, &v, 1) == (ssize_t)len;
	ml_seal_free(tx);
	free(msg);
	return ok;
}

static void expect_refused(int mode, const uint8_t *key, int want)
{
	uint8_t out[70000];
	int rc;
	open_all(mode, key, out, sizeof(out), &rc);
	assert_int_equal(rc, want);
}

static void test_tampered_byte_refused(void **state)
{
	(void)state;
	for (int mode = ML_PROTECT_MAC; mode <= ML_PROTECT_ENCRYPT; mode++) {
		for (size_t at = 0; at < 20000 + ML_SEAL_OVERHEAD; at += 4099) {
			setup(NULL);
			assert_true(seal_some(mode, 20000));
			if (at < 4)
				continue; /* the length: covered by test_bad_length */
			wire_buf[at] ^= 0x01;
			expect_refused(mode, key_a, ML_EAUTH);
		}
	}
}

static void test_wrong_key_or_mode_refused(void **state)
{
	(void)state;
	assert_true(seal_some(ML_PROTECT_ENCRYPT, 3000));
	expect_refused(ML_PROTECT_ENCRYPT, key_b, ML_EAUTH);
	expect_refused(ML_PROTECT_MAC, key_a, ML_EAUTH);
}

/* Records replayed, dropped or reordered fail: the nonce is the record's
 * number on the path. */
static void test_replayed_record_refused(void **state)
{
	(void)state;
	assert_true(seal_some(ML_PROTECT_MAC, 2 * ML_SEAL_RECORD_MAX));
	size_t rec = ML_SEAL_RECORD_MAX + ML_SEAL_OVERHEAD;
	memcpy(wire_buf + rec, wire_buf, rec); /* the first record, twice */
	expect_refused(ML_PROTECT_MAC, key_a, ML_EAUTH);
}

static void test_bad_length(void **state)
{
	(void)state;
	uint8_t rec[8] = { 0 };
	memcpy(wire_buf, rec, sizeof(rec)); /* length 0 */
	wire_len = sizeof(rec);
	expect_refused(ML_PROTECT_ENCRYPT, key_a, ML_EPROTO);
	ml_put32(wire_buf, ML_SEAL_RECORD_MAX + 1);
	expect_refused(ML_PROTECT_ENCRYPT, key_a, ML_EPROTO);
	memcpy(wire_buf, "MLFS", 4); /* a frame in the clear where records are due */
	expect_refused(ML_PROTECT_ENCRYPT, key_a, ML_EPROTO);
}

/* Key derivation: both ends agree, and every input changes the keys. */
static void test_derive(void **state)
{
	(void)state;
	struct ml_key k;
	memset(&k, 0x11, sizeof(k));
	uint8_t hello[ML_HELLO_MAX], nonce[ML_NONCE_LEN];
	memset(hello, 0x22, sizeof(hello));
	memset(nonce, 0x33, sizeof(nonce));
	uint8_t c2a[32], a2c[32], c2a2[32], a2c2[32];
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 2, c2a, a2c), 0);
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 2, c2a2, a2c2), 0);
	assert_memory_equal(c2a, c2a2, 32);
	assert_memory_not_equal(c2a, a2c, 32);
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 1, c2a2, a2c2), 0);
	assert_memory_not_equal(c2a, c2a2, 32);
	nonce[0] ^= 1;
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 2, c2a2, a2c2), 0);
	assert_memory_not_equal(c2a, c2a2, 32);
	nonce[0] ^= 1;
	hello[40] ^= 1;
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 2, c2a2, a2c2), 0);
	assert_memory_not_equal(c2a, c2a2, 32);
	hello[40] ^= 1;
	k.key[0] ^= 1;
	assert_int_equal(ml_seal_derive(&k, hello, sizeof(hello), nonce, 2, c2a2, a2c2), 0);
	assert_memory_not_equal(c2a, c2a2, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_round_trip_encrypt, setup),
		cmocka_unit_test_setup(test_round_trip_mac, setup),
		cmocka_unit_test_setup(test_partial_writes_and_pending, setup),
		cmocka_unit_test_setup(test_plain_prefix, setup),
		cmocka_unit_test_setup(test_tampered_byte_refused, setup),
		cmocka_unit_test_setup(test_wrong_key_or_mode_refused, setup),
		cmocka_unit_test_setup(test_replayed_record_refused, setup),
		cmocka_unit_test_setup(test_bad_length, setup),
		cmocka_unit_test_setup(test_derive, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
