/* test_pathsched.c - the split of fragments over paths of different speeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msglayer.h"
#include "pathsched.h"

enum { FRAG = 64 * 1024 };

/* Assign n fragments with outstanding bytes piling up; return each path's share. */
static void split(struct ml_sched_path *p, unsigned np, unsigned n, double *share)
{
	uint64_t total = 0;
	unsigned rr = 0;
	for (unsigned i = 0; i < n; i++) {
		int k = ml_sched_pick(p, np, FRAG, ML_SCHED_ADAPTIVE, &rr);
		assert_true(k >= 0);
		p[k].outstanding += FRAG;
		total += FRAG;
	}
	for (unsigned i = 0; i < np; i++)
		share[i] = (double)p[i].outstanding / (double)total;
}

static void test_two_speeds(void **state)
{
	(void)state;
	struct ml_sched_path p[2] = {
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 100e6, .rtt_s = 1e-4 },
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 300e6, .rtt_s = 1e-4 },
	};
	double share[2];
	split(p, 2, 4000, share);
	assert_true(share[1] > 0.73 && share[1] < 0.77);
}

static void test_three_speeds(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = {
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 1e8, .rtt_s = 1e-4 },
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 2e8, .rtt_s = 1e-4 },
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 5e8, .rtt_s = 1e-4 },
	};
	double share[3];
	split(p, 3, 8000, share);
	assert_true(share[0] > 0.105 && share[0] < 0.145); /* 1/8 */
	assert_true(share[1] > 0.23 && share[1] < 0.27);   /* 2/8 */
	assert_true(share[2] > 0.605 && share[2] < 0.645); /* 5/8 */
}

static void test_rtt_breaks_ties(void **state)
{
	(void)state;
	unsigned rr = 0;
	struct ml_sched_path p[2] = {
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 1e8, .rtt_s = 5e-3 },
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 1e8, .rtt_s = 1e-4 },
	};
	assert_int_equal(ml_sched_pick(p, 2, FRAG, ML_SCHED_ADAPTIVE, &rr), 1);
}

static void test_unusable_and_full_paths(void **state)
{
	(void)state;
	unsigned rr = 0;
	struct ml_sched_path p[3] = {
		{ .usable = 0, .cap = UINT64_MAX, .rate_bps = 1e9 },
		{ .usable = 1, .cap = 1000, .outstanding = 1000, .rate_bps = 1e9 },
		{ .usable = 1, .cap = 1000, .outstanding = 999, .rate_bps = 1e6 },
	};
	/* Only path 2 has room, slow as it is; and it takes a fragment bigger than its room. */
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ADAPTIVE, &rr), 2);
	p[2].outstanding = 1000;
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ADAPTIVE, &rr), -1);
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ROUND_ROBIN, &rr), -1);
}

static void test_round_robin_cycles_and_skips(void **state)
{
	(void)state;
	unsigned rr = 0;
	struct ml_sched_path p[4] = {
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 1e6 },
		{ .usable = 0, .cap = UINT64_MAX, .rate_bps = 1e9 },
		{ .usable = 1, .cap = UINT64_MAX, .rate_bps = 1e9 },
		{ .usable = 1, .cap = 10, .outstanding = 10, .rate_bps = 1e9 },
	};
	static const int expect[] = { 0, 2, 0, 2, 0 };
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(ml_sched_pick(p, 4, FRAG, ML_SCHED_ROUND_ROBIN, &rr), expect[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_speeds),
		cmocka_unit_test(test_three_speeds),
		cmocka_unit_test(test_rtt_breaks_ties),
		cmocka_unit_test(test_unusable_and_full_paths),
		cmocka_unit_test(test_round_robin_cycles_and_skips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
