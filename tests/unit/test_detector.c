/* test_detector.c - liveness verdicts and flap damping (failover/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../failover/detector.h"
#include "../../failover/flap.h"

static const struct ml_detector_cfg cfg = { .heartbeat_s = 0.01, .down_s = 0, .all_silent_s = 2.0 };

static enum ml_verdict judge(double silent, double behind, double srtt, double oldest, double drain)
{
	char why[128];
	struct ml_path_view v = { silent, behind, srtt, oldest, drain };
	return ml_detector_judge(&cfg, &v, why, sizeof(why));
}

/* Budget: 3 heartbeats + 4 RTT, floored at 30 ms, capped at all_silent_s;
 * a configured budget wins. */
static void test_budget(void **state)
{
	(void)state;
	assert_true(ml_detector_budget(&cfg, 0) == 0.03);
	assert_true(ml_detector_budget(&cfg, 0.01) > 0.0699 && ml_detector_budget(&cfg, 0.01) < 0.0701);
	assert_true(ml_detector_budget(&cfg, 10.0) == 2.0);
	struct ml_detector_cfg fixed = cfg;
	fixed.down_s = 0.5;
	assert_true(ml_detector_budget(&fixed, 0.01) == 0.5);
}

/* A path heard recently is alive, whatever its peers do. */
static void test_heard_is_alive(void **state)
{
	(void)state;
	assert_int_equal(judge(0.001, 0.001, 0.0001, 0, 0), ML_ALIVE);
	assert_int_equal(judge(0.012, 0, 0.0001, 0, 0), ML_ALIVE);
}

/* Silent for the budget and behind the peer's newer heartbeats on other paths: dead. */
static void test_silent_while_others_heard_is_dead(void **state)
{
	(void)state;
	assert_int_equal(judge(0.031, 0.02, 0.0001, 0, 0), ML_DEAD);
}

/* Silent, but no newer heartbeat came on any other path (the peer or our
 * loop is slow, or another path's backlog is read): only suspect; dead only
 * after all_silent_s. */
static void test_all_silent_waits_longer(void **state)
{
	(void)state;
	assert_int_equal(judge(0.5, 0.005, 0.0001, 0, 0), ML_SUSPECT);
	assert_int_equal(judge(0.5, 0, 0.0001, 0, 0), ML_SUSPECT);
	assert_int_equal(judge(2.0, 2.0, 0.0001, 0, 0), ML_DEAD);
}

/* Half the budget (and 1.5 heartbeats) of silence: suspect. */
static void test_missed_heartbeat_is_suspect(void **state)
{
	(void)state;
	assert_int_equal(judge(0.016, 0.02, 0.0001, 0, 0), ML_SUSPECT);
	assert_int_equal(judge(0.014, 0.02, 0.0001, 0, 0), ML_ALIVE);
}

/* Unacknowledged data shortens the silence needed when others are heard. */
static void test_unacked_data_is_evidence(void **state)
{
	(void)state;
	assert_int_equal(judge(0.0235, 0.02, 0.0001, 0.04, 0), ML_DEAD);
	assert_int_equal(judge(0.0235, 0.02, 0.0001, 0.02, 0), ML_SUSPECT);
	/* ... but not when the path simply has a lot to drain. */
	assert_int_equal(judge(0.0235, 0.02, 0.0001, 0.04, 0.05), ML_SUSPECT);
	/* ... and never alone: a heard path with old data stays alive. */
	assert_int_equal(judge(0.001, 0, 0.0001, 1.0, 0), ML_ALIVE);
}

/* A slow RTT widens the budget: 20 ms RTT, 60 ms silence is not death. */
static void test_rtt_widens_budget(void **state)
{
	(void)state;
	assert_int_equal(judge(0.06, 0.06, 0.02, 0, 0), ML_SUSPECT);
	assert_int_equal(judge(0.12, 0.12, 0.02, 0, 0), ML_DEAD);
}

/* Flaps: failures within the window of coming up raise the level; a good
 * run forgives; the hold doubles from min and is capped. */
static void test_flap_damping(void **state)
{
	(void)state;
	struct ml_flap f = { 0 };
	assert_int_equal(ml_flap_on_failure(&f, 1.0, 5.0), 0); /* never up: no flap */
	assert_false(ml_flap_needs_probation(&f));
	assert_true(ml_flap_hold(&f, 0.01, 10) == 0);
	ml_flap_on_up(&f, 10.0);
	assert_int_equal(ml_flap_on_failure(&f, 11.0, 5.0), 1);
	assert_true(ml_flap_needs_probation(&f));
	assert_true(ml_flap_hold(&f, 0.01, 10) == 0.01);
	ml_flap_on_up(&f, 12.0);
	assert_int_equal(ml_flap_on_failure(&f, 12.5, 5.0), 1);
	assert_true(ml_flap_hold(&f, 0.01, 10) == 0.02);
	for (int i = 0; i < 30; i++) {
		ml_flap_on_up(&f, 13.0 + i);
		ml_flap_on_failure(&f, 13.1 + i, 5.0);
	}
	assert_true(ml_flap_hold(&f, 0.01, 10) == 10);
	ml_flap_on_up(&f, 100.0);
	assert_int_equal(ml_flap_on_failure(&f, 200.0, 5.0), 0); /* a long good run */
	assert_false(ml_flap_needs_probation(&f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_heard_is_alive),
		cmocka_unit_test(test_silent_while_others_heard_is_dead),
		cmocka_unit_test(test_all_silent_waits_longer),
		cmocka_unit_test(test_missed_heartbeat_is_suspect),
		cmocka_unit_test(test_unacked_data_is_evidence),
		cmocka_unit_test(test_rtt_widens_budget),
		cmocka_unit_test(test_flap_damping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
