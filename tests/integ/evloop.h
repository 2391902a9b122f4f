/* evloop.h - the embedded-mode tests' wait: turn the caller's libev loop
 * (the contexts' loop, cfg.loop) until a counter reaches a value. */
#ifndef ML_TEST_EVLOOP_H
#define ML_TEST_EVLOOP_H

#include "check.h"

#include <ev.h>

static void evloop_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
}

/* Turn l until *counter >= n; fail the test, naming what, after secs. The
 * library's watchers are unref'd in embedded mode: a tick keeps ev_run from
 * returning at once. */
static inline void evloop_until(struct ev_loop *l, const int *counter, int n, double secs,
				const char *what)
{
	ev_timer tick;
	ev_timer_init(&tick, evloop_tick, 0.01, 0.01);
	ev_timer_start(l, &tick);
	double deadline = ev_time() + secs;
	while (*counter < n) {
		CHECK(ev_time() < deadline, "timed out waiting for %s", what);
		ev_run(l, EVRUN_ONCE);
	}
	ev_timer_stop(l, &tick);
}

#endif
