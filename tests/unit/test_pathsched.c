/* test_pathsched.c - which path carries each fragment: the adaptive split
 * over paths of different speeds, caps and unusable paths, round-robin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msglayer.h"
#include "pathsched.h"

enum { FRAG = 64 * 1024 };

#define MB 1e6
#define NOCAP UINT64_MAX

/* ---- helpers ---- */

static struct ml_sched_path path(double rate, double rtt, uint64_t cap)
{
	struct ml_sched_path p = { .usable = 1, .cap = cap, .rate_bps = rate, .rtt_s = rtt };
	return p;
}

static int pick(const struct ml_sched_path *p, unsigned n, unsigned policy)
{
	unsigned rr = 0;
	return ml_sched_pick(p, n, FRAG, policy, &rr);
}

/* Assign n fragments, never draining a path (as under a sustained burst),
 * and return each path's share of the bytes. */
static void split(struct ml_sched_path *p, unsigned np, unsigned n, double *share)
{
	uint64_t total = 0;
	unsigned rr = 0;
	for (unsigned i = 0; i < n; i++) {
		int k = ml_sched_pick(p, np, FRAG, ML_SCHED_ADAPTIVE, &rr);
		assert_true(k >= 0 && (unsigned)k < np);
		p[k].outstanding += FRAG;
		total += FRAG;
	}
	for (unsigned i = 0; i < np; i++)
		share[i] = (double)p[i].outstanding / (double)total;
}

static void assert_near(double got, double want, double tol)
{
	if (got < want - tol || got > want + tol)
		fail_msg("share %.4f, expected %.4f +- %.3f", got, want, tol);
}

/* ---- adaptive split ---- */

/* A path three times as fast carries three times the bytes. */
static void test_adaptive_split_100_300(void **state)
{
	(void)state;
	struct ml_sched_path p[2] = { path(100 * MB, 1e-4, NOCAP), path(300 * MB, 1e-4, NOCAP) };
	double share[2];
	split(p, 2, 4000, share);
	assert_near(share[1], 0.75, 0.02);
	assert_near(share[0], 0.25, 0.02);
}

/* The order of the paths does not matter. */
static void test_adaptive_split_fast_path_first(void **state)
{
	(void)state;
	struct ml_sched_path p[2] = { path(300 * MB, 1e-4, NOCAP), path(100 * MB, 1e-4, NOCAP) };
	double share[2];
	split(p, 2, 4000, share);
	assert_near(share[0], 0.75, 0.02);
}

static void test_adaptive_split_1_2_5(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = { path(100 * MB, 1e-4, NOCAP), path(200 * MB, 1e-4, NOCAP),
				      path(500 * MB, 1e-4, NOCAP) };
	double share[3];
	split(p, 3, 4000, share);
	assert_near(share[0], 1.0 / 8, 0.02);
	assert_near(share[1], 2.0 / 8, 0.02);
	assert_near(share[2], 5.0 / 8, 0.02);
}

/* With nothing queued the faster path delivers a fragment sooner. */
static void test_adaptive_empty_paths_fastest_wins(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = { path(100 * MB, 1e-4, NOCAP), path(900 * MB, 1e-4, NOCAP),
				      path(300 * MB, 1e-4, NOCAP) };
	assert_int_equal(pick(p, 3, ML_SCHED_ADAPTIVE), 1);
}

/* Equal rate and backlog: the path with the higher RTT loses, in either order. */
static void test_higher_rtt_loses_ties(void **state)
{
	(void)state;
	struct ml_sched_path p[2] = { path(100 * MB, 5e-3, NOCAP), path(100 * MB, 1e-4, NOCAP) };
	assert_int_equal(pick(p, 2, ML_SCHED_ADAPTIVE), 1);
	p[0].rtt_s = 1e-4;
	p[1].rtt_s = 5e-3;
	assert_int_equal(pick(p, 2, ML_SCHED_ADAPTIVE), 0);
}

/* ---- what may not be picked ---- */

/* The fastest path is out of the running when it is down or full. */
static void test_unusable_path_never_picked(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = { path(100 * MB, 1e-4, NOCAP), path(10000 * MB, 0, NOCAP),
				      path(100 * MB, 1e-4, NOCAP) };
	p[1].usable = 0;
	for (int i = 0; i < 1000; i++) {
		int k = pick(p, 3, ML_SCHED_ADAPTIVE);
		assert_true(k == 0 || k == 2);
		p[k].outstanding += FRAG;
	}
}

static void test_path_at_cap_never_picked(void **state)
{
	(void)state;
	struct ml_sched_path p[2] = { path(10000 * MB, 0, 10 * FRAG), path(100 * MB, 1e-4, NOCAP) };
	p[0].outstanding = 10 * FRAG;
	assert_int_equal(pick(p, 2, ML_SCHED_ADAPTIVE), 1);
	p[0].outstanding = 11 * FRAG; /* over it (a last fragment overshot) */
	assert_int_equal(pick(p, 2, ML_SCHED_ADAPTIVE), 1);
	p[0].outstanding = 10 * FRAG - 1; /* one byte of room is room */
	assert_int_equal(pick(p, 2, ML_SCHED_ADAPTIVE), 0);
}

/* A path below its cap takes a whole fragment even if that overshoots the
 * cap: otherwise a fragment bigger than the room left could never go. */
static void test_below_cap_takes_one_more(void **state)
{
	(void)state;
	struct ml_sched_path p[1] = { path(100 * MB, 1e-4, 1000) };
	p[0].outstanding = 999;
	assert_int_equal(pick(p, 1, ML_SCHED_ADAPTIVE), 0);
	unsigned rr = 0;
	assert_int_equal(ml_sched_pick(p, 1, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 0);
	p[0].outstanding += FRAG;
	assert_int_equal(pick(p, 1, ML_SCHED_ADAPTIVE), -1);
}

static void test_all_full_or_down_gives_minus_one(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = { path(100 * MB, 1e-4, 1000), path(100 * MB, 1e-4, 1000),
				      path(100 * MB, 1e-4, NOCAP) };
	p[0].outstanding = 1000;
	p[1].outstanding = 5000;
	p[2].usable = 0;
	assert_int_equal(pick(p, 3, ML_SCHED_ADAPTIVE), -1);
	assert_int_equal(pick(p, 3, ML_SCHED_ROUND_ROBIN), -1);
	assert_int_equal(pick(p, 0, ML_SCHED_ADAPTIVE), -1); /* no paths at all */
	assert_int_equal(pick(p, 0, ML_SCHED_ROUND_ROBIN), -1);
}

/* ---- round-robin ---- */

static void test_round_robin_cycles_in_order(void **state)
{
	(void)state;
	/* Speeds differ wildly: round-robin ignores them. */
	struct ml_sched_path p[3] = { path(1 * MB, 0.1, NOCAP), path(1000 * MB, 0, NOCAP),
				      path(10 * MB, 0.01, NOCAP) };
	unsigned rr = 0;
	for (int i = 0; i < 9; i++)
		assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ROUND_ROBIN, &rr), i % 3);
}

static void test_round_robin_skips_unusable_and_full(void **state)
{
	(void)state;
	struct ml_sched_path p[4] = { path(1 * MB, 0, NOCAP), path(1 * MB, 0, NOCAP),
				      path(1 * MB, 0, NOCAP), path(1 * MB, 0, 10) };
	p[1].usable = 0;
	p[3].outstanding = 10;
	static const int expect[] = { 0, 2, 0, 2, 0 };
	unsigned rr = 0;
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(ml_sched_pick(p, 4, FRAG, ML_SCHED_ROUND_ROBIN, &rr), expect[i]);
	/* Path 1 comes back and takes its turn again, after 0. */
	p[1].usable = 1;
	assert_int_equal(ml_sched_pick(p, 4, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 1);
	assert_int_equal(ml_sched_pick(p, 4, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 2);
}

/* The cursor carries over between calls and wraps past the last path. */
static void test_round_robin_resumes_from_cursor(void **state)
{
	(void)state;
	struct ml_sched_path p[3] = { path(1 * MB, 0, NOCAP), path(1 * MB, 0, NOCAP),
				      path(1 * MB, 0, NOCAP) };
	unsigned rr = 2;
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 2);
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 0);
	p[1].usable = 0;
	p[2].usable = 0;
	assert_int_equal(ml_sched_pick(p, 3, FRAG, ML_SCHED_ROUND_ROBIN, &rr), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adaptive_split_100_300),
		cmocka_unit_test(test_adaptive_split_fast_path_first),
		cmocka_unit_test(test_adaptive_split_1_2_5),
		cmocka_unit_test(test_adaptive_empty_paths_fastest_wins),
		cmocka_unit_test(test_higher_rtt_loses_ties),
		cmocka_unit_test(test_unusable_path_never_picked),
		cmocka_unit_test(test_path_at_cap_never_picked),
		cmocka_unit_test(test_below_cap_takes_one_more),
		cmocka_unit_test(test_all_full_or_down_gives_minus_one),
		cmocka_unit_test(test_round_robin_cycles_in_order),
		cmocka_unit_test(test_round_robin_skips_unusable_and_full),
		cmocka_unit_test(test_round_robin_resumes_from_cursor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
