/* test_rxwin.c - receive window: duplicates, sliding, and the acks it gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rxwin.h"

static void test_verdicts(void **state)
{
	(void)state;
	struct ml_rxwin w;
	assert_int_equal(ml_rxwin_init(&w, 100), 0);
	assert_int_equal(w.size, 128); /* rounded up to a power of two */
	assert_int_equal(ml_rxwin_check(&w, 1), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 128), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 129), ML_RXWIN_OUT);
	assert_int_equal(ml_rxwin_check(&w, 0), ML_RXWIN_DUP); /* numbers start at 1 */
	ml_rxwin_mark(&w, 5);
	assert_int_equal(ml_rxwin_check(&w, 5), ML_RXWIN_DUP);
	assert_int_equal(w.base, 0);
	ml_rxwin_free(&w);
}

static void test_in_order_advances_base(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	for (uint64_t s = 1; s <= 1000; s++) {
		assert_int_equal(ml_rxwin_check(&w, s), ML_RXWIN_NEW);
		ml_rxwin_mark(&w, s);
		assert_int_equal(w.base, s);
		assert_int_equal(ml_rxwin_check(&w, s), ML_RXWIN_DUP);
	}
	assert_int_equal(ml_rxwin_check(&w, 1000 + 64), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 1000 + 65), ML_RXWIN_OUT);
	ml_rxwin_free(&w);
}

static void test_gap_then_fill(void **state)
{
	(void)state;
	struct ml_rxwin w;
	struct ml_ack a;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 1);
	ml_rxwin_mark(&w, 3);
	ml_rxwin_mark(&w, 4);
	ml_rxwin_mark(&w, 7);
	ml_rxwin_ack(&w, &a);
	assert_int_equal(a.cum, 1);
	assert_int_equal(a.nranges, 2);
	assert_true(a.r[0].start == 3 && a.r[0].end == 4 && a.r[1].start == 7 && a.r[1].end == 7);
	ml_rxwin_mark(&w, 2); /* fills the gap: base runs over 3 and 4 */
	assert_int_equal(w.base, 4);
	ml_rxwin_ack(&w, &a);
	assert_int_equal(a.cum, 4);
	assert_int_equal(a.nranges, 1);
	assert_true(a.r[0].start == 7 && a.r[0].end == 7);
	ml_rxwin_free(&w);
}

/* Reference model: a plain array of delivered flags. */
static void check_ack_against_model(const struct ml_rxwin *w, const uint8_t *seen, uint64_t top)
{
	struct ml_ack a;
	ml_rxwin_ack(w, &a);
	uint64_t cum = 0;
	while (cum + 1 <= top && seen[cum + 1])
		cum++;
	assert_int_equal(a.cum, cum);
	unsigned k = 0;
	for (uint64_t s = cum + 1; s <= top && k < ML_WIRE_SACK_MAX;) {
		if (!seen[s]) {
			s++;
			continue;
		}
		uint64_t e = s;
		while (e + 1 <= top && seen[e + 1])
			e++;
		assert_true(k < a.nranges);
		assert_int_equal(a.r[k].start, s);
		assert_int_equal(a.r[k].end, e);
		k++;
		s = e + 1;
	}
	assert_int_equal(a.nranges, k);
	/* What the window says must survive the wire. */
	uint8_t buf[16 + 16 * ML_WIRE_SACK_MAX];
	struct ml_ack back;
	assert_int_equal(ml_ack_decode(buf, ml_ack_encode(buf, &a), &back), ML_WIRE_OK);
	assert_int_equal(back.nranges, a.nranges);
}

static void test_random_patterns_match_model(void **state)
{
	(void)state;
	unsigned seed = 7;
	for (int round = 0; round < 200; round++) {
		struct ml_rxwin w;
		uint8_t seen[300] = { 0 };
		ml_rxwin_init(&w, 256);
		for (int i = 0; i < 120; i++) {
			uint64_t s = 1 + (uint64_t)(rand_r(&seed) % 256);
			enum ml_rxwin_verdict v = ml_rxwin_check(&w, s);
			assert_int_equal(v, seen[s] ? ML_RXWIN_DUP : ML_RXWIN_NEW);
			if (v == ML_RXWIN_NEW) {
				ml_rxwin_mark(&w, s);
				seen[s] = 1;
			}
		}
		check_ack_against_model(&w, seen, 256);
		ml_rxwin_free(&w);
	}
}

static void test_many_gaps_capped_at_max_ranges(void **state)
{
	(void)state;
	struct ml_rxwin w;
	struct ml_ack a;
	ml_rxwin_init(&w, 1024);
	for (uint64_t s = 2; s <= 400; s += 2) /* 1 missing, then every other one */
		ml_rxwin_mark(&w, s);
	ml_rxwin_ack(&w, &a);
	assert_int_equal(a.cum, 0);
	assert_int_equal(a.nranges, ML_WIRE_SACK_MAX);
	assert_true(a.r[0].start == 2 && a.r[ML_WIRE_SACK_MAX - 1].end == 2 * ML_WIRE_SACK_MAX);
	ml_rxwin_free(&w);
}

/* 100000 numbers delivered in a shuffled order that stays inside the window:
 * nothing delivered twice, nothing refused, and the window ends closed. */
static void test_long_shuffled_slide(void **state)
{
	(void)state;
	enum { N = 100000, W = 1024, BLOCK = 512 };
	struct ml_rxwin w;
	static uint8_t seen[N + 1];
	unsigned seed = 3;
	memset(seen, 0, sizeof(seen));
	ml_rxwin_init(&w, W);
	for (uint64_t b = 1; b <= N; b += BLOCK) {
		uint64_t order[BLOCK];
		unsigned n = 0;
		for (uint64_t s = b; s < b + BLOCK && s <= N; s++)
			order[n++] = s;
		for (unsigned i = n; i > 1; i--) { /* Fisher-Yates */
			unsigned j = (unsigned)rand_r(&seed) % i;
			uint64_t t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(ml_rxwin_check(&w, order[i]), ML_RXWIN_NEW);
			ml_rxwin_mark(&w, order[i]);
			seen[order[i]] = 1;
			/* A replay of anything already delivered is a duplicate. */
			uint64_t old = 1 + (uint64_t)rand_r(&seed) % order[i];
			if (seen[old])
				assert_int_equal(ml_rxwin_check(&w, old), ML_RXWIN_DUP);
		}
	}
	assert_int_equal(w.base, N);
	ml_rxwin_free(&w);
}

static void test_reset(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 1);
	ml_rxwin_mark(&w, 9);
	ml_rxwin_reset(&w);
	assert_int_equal(w.base, 0);
	assert_int_equal(ml_rxwin_check(&w, 1), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 9), ML_RXWIN_NEW);
	ml_rxwin_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_in_order_advances_base),
		cmocka_unit_test(test_gap_then_fill),
		cmocka_unit_test(test_random_patterns_match_model),
		cmocka_unit_test(test_many_gaps_capped_at_max_ranges),
		cmocka_unit_test(test_long_shuffled_slide),
		cmocka_unit_test(test_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
