/* test_backoff.c - reconnect delays: exponential from min, capped at max,
 * jittered into [d/2, d) so that nodes do not reconnect in lockstep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../failover/backoff.h"

#define MIN_S 0.01
#define MAX_S 2.0

/* min * 2^failures, capped at max: the delay before jitter. Doubling is
 * exact in binary floating point, so this matches the module bit for bit. */
static double nominal(unsigned failures)
{
	double d = MIN_S;
	for (unsigned i = 0; i < failures && d < MAX_S; i++)
		d *= 2;
	return d < MAX_S ? d : MAX_S;
}

static void assert_in_band(double got, double d)
{
	if (!(got >= 0.5 * d && got < d))
		fail_msg("delay %g outside [%g, %g)", got, 0.5 * d, d);
}

/* Every delay lies in [0.5 d, d) of its nominal d, for many seeds. */
static void test_delay_within_jitter_band(void **state)
{
	(void)state;
	for (unsigned s = 1; s <= 100; s++) {
		unsigned seed = s;
		for (unsigned f = 0; f < 40; f++)
			assert_in_band(ml_backoff_delay(MIN_S, MAX_S, f, &seed), nominal(f));
	}
}

/* Averaged over many seeds the delay is 0.75 of nominal, so it doubles with
 * each failure until the cap: growth is exponential from min. */
static void test_mean_delay_doubles_until_cap(void **state)
{
	(void)state;
	enum { SEEDS = 4000 };
	double prev = 0;
	for (unsigned f = 0; f <= 7; f++) { /* 0.01 * 2^7 = 1.28 < 2.0 */
		double sum = 0;
		for (unsigned s = 1; s <= SEEDS; s++) {
			unsigned seed = s * 7919u + f;
			sum += ml_backoff_delay(MIN_S, MAX_S, f, &seed);
		}
		double mean = sum / SEEDS;
		assert_true(mean > 0.72 * nominal(f) && mean < 0.78 * nominal(f));
		if (f > 0)
			assert_true(mean / prev > 1.85 && mean / prev < 2.15);
		prev = mean;
	}
}

/* Past the cap, however many failures: below max, and still jittered. */
static void test_never_exceeds_max(void **state)
{
	(void)state;
	static const unsigned failures[] = { 8, 9, 20, 63, 64, 1000, UINT32_MAX };
	unsigned seed = 42;
	for (unsigned i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		for (int k = 0; k < 100; k++) {
			double d = ml_backoff_delay(MIN_S, MAX_S, failures[i], &seed);
			assert_true(d < MAX_S);
			assert_in_band(d, MAX_S);
		}
	}
}

/* The first delay is min (jittered), not 2 * min. */
static void test_first_failure_starts_at_min(void **state)
{
	(void)state;
	unsigned seed = 9;
	for (int k = 0; k < 1000; k++)
		assert_in_band(ml_backoff_delay(MIN_S, MAX_S, 0, &seed), MIN_S);
}

/* The jitter spreads over the whole band, not a sliver of it. */
static void test_jitter_covers_band(void **state)
{
	(void)state;
	unsigned seed = 1;
	double lo = 1, hi = 0;
	for (int k = 0; k < 10000; k++) {
		double j = ml_backoff_delay(1.0, 1.0, 0, &seed);
		lo = j < lo ? j : lo;
		hi = j > hi ? j : hi;
	}
	assert_true(lo < 0.51);
	assert_true(hi > 0.99);
}

/* Two nodes with different seeds get different sequences. */
static void test_different_seeds_differ(void **state)
{
	(void)state;
	unsigned a = 1, b = 2;
	int differ = 0;
	for (unsigned f = 0; f < 16; f++)
		differ += ml_backoff_delay(MIN_S, MAX_S, f, &a) != ml_backoff_delay(MIN_S, MAX_S, f, &b);
	assert_true(differ >= 14);
}

/* The seed is advanced: repeated attempts at one level are not identical. */
static void test_seed_advances(void **state)
{
	(void)state;
	unsigned seed = 5;
	double first = ml_backoff_delay(MIN_S, MAX_S, 3, &seed);
	int differ = 0;
	for (int k = 0; k < 10; k++)
		differ += ml_backoff_delay(MIN_S, MAX_S, 3, &seed) != first;
	assert_true(differ >= 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_within_jitter_band),
		cmocka_unit_test(test_mean_delay_doubles_until_cap),
		cmocka_unit_test(test_never_exceeds_max),
		cmocka_unit_test(test_first_failure_starts_at_min),
		cmocka_unit_test(test_jitter_covers_band),
		cmocka_unit_test(test_different_seeds_differ),
		cmocka_unit_test(test_seed_advances),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
