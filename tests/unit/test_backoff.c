/* test_backoff.c - reconnect delays: exponential, capped, jittered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../failover/backoff.h"

static void test_grows_and_caps(void **state)
{
	(void)state;
	unsigned seed = 1;
	double nominal = 0.01;
	for (unsigned f = 0; f < 20; f++) {
		double d = ml_backoff_delay(0.01, 2.0, f, &seed);
		assert_true(d >= 0.5 * nominal && d < nominal);
		assert_true(d < 2.0);
		nominal = nominal * 2 > 2.0 ? 2.0 : nominal * 2;
	}
}

static void test_jitter_differs_by_seed(void **state)
{
	(void)state;
	unsigned a = 1, b = 2;
	int differ = 0;
	for (unsigned f = 0; f < 8; f++)
		differ += ml_backoff_delay(0.01, 2.0, f, &a) != ml_backoff_delay(0.01, 2.0, f, &b);
	assert_true(differ >= 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_and_caps),
		cmocka_unit_test(test_jitter_differs_by_seed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
