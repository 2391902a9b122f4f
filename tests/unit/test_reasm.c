/* test_reasm.c - reassembly by offset: fragments in any order, repeats,
 * and every kind of fragment that does not belong to the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reasm.h"

enum { F = 4096 }; /* the smallest fragment size a session may use */

/* ---- helpers ---- */

/* Bytes that differ from fragment to fragment and inside one, so a piece
 * copied to the wrong offset shows. */
static uint8_t *pattern(uint32_t len)
{
	uint8_t *p = malloc(len);
	assert_non_null(p);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + (i >> 8) + (i >> 16));
	return p;
}

static uint32_t frag_len(uint32_t msg_len, uint32_t off)
{
	return msg_len - off < F ? msg_len - off : F;
}

static uint32_t nfrags_of(uint32_t msg_len)
{
	return (msg_len + F - 1) / F;
}

/* Offer fragment k of src (check, then put if NEW, as the session does).
 * Returns what put returned, or -1 for a duplicate. */
static int offer(struct ml_reasm *r, const uint8_t *src, uint32_t k)
{
	uint32_t off = k * F, n = frag_len(r->msg_len, off);
	enum ml_reasm_verdict v = ml_reasm_check(r, r->msg_len, off, n);
	if (v == ML_REASM_DUP)
		return -1;
	assert_int_equal(v, ML_REASM_NEW);
	return ml_reasm_put(r, off, src + off, n);
}

/* Feed fragments in the given order (repeats allowed); the message must
 * complete exactly once, on the last new fragment, with the right bytes. */
static void reassemble(uint32_t len, const uint32_t *order, unsigned n)
{
	uint8_t *src = pattern(len);
	struct ml_reasm r;
	unsigned completions = 0, fresh = 0;
	assert_int_equal(ml_reasm_init(&r, 7, len, F), 0);
	assert_int_equal(r.nfrags, nfrags_of(len));
	for (unsigned i = 0; i < n; i++) {
		int done = offer(&r, src, order[i]);
		if (done < 0)
			continue;
		fresh++;
		assert_int_equal(done, fresh == r.nfrags);
		completions += (unsigned)done;
	}
	assert_int_equal(completions, 1);
	assert_int_equal(r.nrecv, r.nfrags);
	assert_memory_equal(r.buf, src, len);
	ml_reasm_free(&r);
	free(src);
}

static void shuffle(uint32_t *v, unsigned n, unsigned *seed)
{
	for (unsigned i = n; i > 1; i--) { /* Fisher-Yates */
		unsigned j = (unsigned)rand_r(seed) % i;
		uint32_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* ---- complete messages ---- */

static void test_out_of_order_with_repeats(void **state)
{
	(void)state;
	/* 11 fragments, the last short; 3 and 10 come twice, 0 three times. */
	static const uint32_t order[] = { 10, 3, 0, 3, 7, 1, 10, 2, 9, 0, 4, 8, 6, 0, 5 };
	reassemble(10 * F + 123, order, sizeof(order) / sizeof(order[0]));
}

static void test_repeat_reported_as_dup_before_completion(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 1;
	uint8_t *src = pattern(len);
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(offer(&r, src, 1), 0);
	assert_int_equal(ml_reasm_check(&r, len, F, F), ML_REASM_DUP);
	assert_int_equal(ml_reasm_check(&r, len, 0, F), ML_REASM_NEW); /* its neighbours are not */
	assert_int_equal(ml_reasm_check(&r, len, 2 * F, F), ML_REASM_NEW);
	assert_int_equal(r.nrecv, 1); /* a check alone changes nothing */
	ml_reasm_free(&r);
	free(src);
}

/* More than 64 fragments: the "have" bitmap spans several words. */
static void test_many_fragments_shuffled(void **state)
{
	(void)state;
	enum { NF = 200 };
	uint32_t order[2 * NF];
	unsigned seed = 5;
	for (uint32_t i = 0; i < 2 * NF; i++)
		order[i] = i % NF; /* every fragment twice */
	shuffle(order, 2 * NF, &seed);
	reassemble(NF * F - 17, order, 2 * NF);
}

/* The last fragment is a full one: no zero-length tail is expected. */
static void test_exact_multiple_of_fragment_size(void **state)
{
	(void)state;
	const uint32_t len = 4 * F;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(r.nfrags, 4);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, F), ML_REASM_NEW);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, F - 1), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 4 * F, 0), ML_REASM_BAD);
	ml_reasm_free(&r);
	static const uint32_t order[] = { 3, 2, 1, 0 };
	reassemble(len, order, 4);
}

/* One byte more than a fragment: two fragments, the second of one byte. */
static void test_one_byte_over_one_fragment(void **state)
{
	(void)state;
	const uint32_t len = F + 1;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(r.nfrags, 2);
	assert_int_equal(ml_reasm_check(&r, len, F, 1), ML_REASM_NEW);
	assert_int_equal(ml_reasm_check(&r, len, 0, F), ML_REASM_NEW);
	assert_int_equal(ml_reasm_check(&r, len, 0, F + 1), ML_REASM_BAD); /* not one piece */
	ml_reasm_free(&r);
	static const uint32_t last_first[] = { 1, 0 }, first_first[] = { 0, 1 };
	reassemble(len, last_first, 2);
	reassemble(len, first_first, 2);
}

/* ---- fragments that do not belong ---- */

static void test_bad_misaligned_offset(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 10;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len, 1, F), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, F / 2, F), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F - 1, 11), ML_REASM_BAD); /* ends right */
	ml_reasm_free(&r);
}

static void test_bad_middle_fragment_length(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 10;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len, F, F - 1), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, F, F + 1), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 0, 0), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, F, F), ML_REASM_NEW);
	ml_reasm_free(&r);
}

static void test_bad_last_fragment_length(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 10;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 9), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 11), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, F), ML_REASM_BAD); /* past the end */
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 10), ML_REASM_NEW);
	ml_reasm_free(&r);
}

static void test_bad_offset_at_or_past_end(void **state)
{
	(void)state;
	const uint32_t len = 3 * F;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 1), ML_REASM_BAD); /* == msg_len */
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 0), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, 4 * F, F), ML_REASM_BAD);
	/* Aligned offsets far out: must not index the bitmap. */
	assert_int_equal(ml_reasm_check(&r, len, 1000 * F, F), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len, UINT32_MAX / F * F, F), ML_REASM_BAD);
	ml_reasm_free(&r);
}

/* Every fragment repeats the message length; another one means another
 * message or a broken sender. */
static void test_bad_msg_len_mismatch(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 10;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len + 1, 0, F), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len - 1, 0, F), ML_REASM_BAD);
	assert_int_equal(ml_reasm_check(&r, len + F, 3 * F, F), ML_REASM_BAD); /* fits that one */
	assert_int_equal(ml_reasm_check(&r, len, 0, F), ML_REASM_NEW);
	ml_reasm_free(&r);
}

/* A finished reassembly's buffers take a message that fits them: it starts
 * with no fragment in (the last one's would otherwise count as DUP), and
 * assembles its own bytes. One that does not fit is refused, r unchanged. */
static void test_reuse_for_next_message(void **state)
{
	(void)state;
	const uint32_t big = 4 * F, small = 2 * F + 5;
	uint8_t *a = pattern(big), *b = pattern(small + 1) + 1; /* other bytes */
	struct ml_reasm r;
	assert_int_equal(ml_reasm_init(&r, 1, big, F), 0);
	for (uint32_t k = 0; k < nfrags_of(big); k++)
		offer(&r, a, k);
	assert_int_equal(r.nrecv, r.nfrags);

	assert_int_equal(ml_reasm_reuse(&r, 2, small, F), 0);
	assert_int_equal(r.seq, 2);
	assert_int_equal(r.nfrags, nfrags_of(small));
	assert_int_equal(r.nrecv, 0);
	for (uint32_t k = 0; k < r.nfrags; k++)
		assert_int_equal(ml_reasm_check(&r, small, k * F, frag_len(small, k * F)), ML_REASM_NEW);
	int done = 0;
	for (uint32_t k = r.nfrags; k-- > 0;)
		done = offer(&r, b, k);
	assert_int_equal(done, 1);
	assert_memory_equal(r.buf, b, small);

	assert_int_equal(ml_reasm_reuse(&r, 3, big + 1, F), -1);
	assert_int_equal(r.seq, 2);
	assert_int_equal(r.msg_len, small);
	ml_reasm_free(&r);
	assert_int_equal(ml_reasm_reuse(&r, 4, 1, F), -1); /* freed: nothing to reuse */
	free(a);
	free(b - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_order_with_repeats),
		cmocka_unit_test(test_repeat_reported_as_dup_before_completion),
		cmocka_unit_test(test_many_fragments_shuffled),
		cmocka_unit_test(test_exact_multiple_of_fragment_size),
		cmocka_unit_test(test_one_byte_over_one_fragment),
		cmocka_unit_test(test_bad_misaligned_offset),
		cmocka_unit_test(test_bad_middle_fragment_length),
		cmocka_unit_test(test_bad_last_fragment_length),
		cmocka_unit_test(test_bad_offset_at_or_past_end),
		cmocka_unit_test(test_bad_msg_len_mismatch),
		cmocka_unit_test(test_reuse_for_next_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
