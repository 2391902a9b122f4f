/* test_reasm.c - reassembly: out of order, repeated, malformed fragments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reasm.h"

enum { F = 4096 };

static uint8_t *pattern(uint32_t len)
{
	uint8_t *p = malloc(len);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + (i >> 8));
	return p;
}

static uint32_t frag_len(uint32_t msg_len, uint32_t off)
{
	return msg_len - off < F ? msg_len - off : F;
}

static void test_out_of_order_and_repeated(void **state)
{
	(void)state;
	const uint32_t len = 10 * F + 123; /* 11 fragments, the last short */
	uint8_t *src = pattern(len);
	struct ml_reasm r;
	assert_int_equal(ml_reasm_init(&r, 7, len, F), 0);
	assert_int_equal(r.nfrags, 11);
	static const unsigned order[] = { 10, 3, 0, 3, 7, 1, 10, 2, 9, 4, 8, 6, 5 };
	int completions = 0;
	for (unsigned k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		uint32_t off = order[k] * F, n = frag_len(len, off);
		enum ml_reasm_verdict v = ml_reasm_check(&r, len, off, n);
		if (v == ML_REASM_DUP)
			continue;
		assert_int_equal(v, ML_REASM_NEW);
		completions += ml_reasm_put(&r, off, src + off, n);
		if (k + 1 < sizeof(order) / sizeof(order[0]))
			assert_int_equal(completions, 0);
	}
	assert_int_equal(completions, 1);
	assert_memory_equal(r.buf, src, len);
	/* Repeats were seen as such, not counted twice. */
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, F), ML_REASM_DUP);
	ml_reasm_free(&r);
	free(src);
}

static void test_exact_multiple(void **state)
{
	(void)state;
	const uint32_t len = 4 * F;
	uint8_t *src = pattern(len);
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(r.nfrags, 4);
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, F), ML_REASM_NEW);
	int done = 0;
	for (int i = 3; i >= 0; i--)
		done += ml_reasm_put(&r, (uint32_t)i * F, src + i * F, F);
	assert_int_equal(done, 1);
	assert_memory_equal(r.buf, src, len);
	ml_reasm_free(&r);
	free(src);
}

static void test_bad_fragments(void **state)
{
	(void)state;
	const uint32_t len = 3 * F + 10;
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(ml_reasm_check(&r, len, 100, F), ML_REASM_BAD);       /* misaligned */
	assert_int_equal(ml_reasm_check(&r, len, F, F - 1), ML_REASM_BAD);     /* short middle */
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 11), ML_REASM_BAD);    /* wrong last */
	assert_int_equal(ml_reasm_check(&r, len, 3 * F, 10), ML_REASM_NEW);
	assert_int_equal(ml_reasm_check(&r, len, 4 * F, 1), ML_REASM_BAD);     /* past the end */
	assert_int_equal(ml_reasm_check(&r, len + 1, 0, F), ML_REASM_BAD);     /* other length */
	ml_reasm_free(&r);
}

static void test_one_byte_over_a_fragment(void **state)
{
	(void)state;
	const uint32_t len = F + 1;
	uint8_t *src = pattern(len);
	struct ml_reasm r;
	ml_reasm_init(&r, 1, len, F);
	assert_int_equal(r.nfrags, 2);
	assert_int_equal(ml_reasm_check(&r, len, F, 1), ML_REASM_NEW);
	assert_int_equal(ml_reasm_put(&r, F, src + F, 1), 0);
	assert_int_equal(ml_reasm_put(&r, 0, src, F), 1);
	assert_memory_equal(r.buf, src, len);
	ml_reasm_free(&r);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_order_and_repeated),
		cmocka_unit_test(test_exact_multiple),
		cmocka_unit_test(test_bad_fragments),
		cmocka_unit_test(test_one_byte_over_a_fragment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
