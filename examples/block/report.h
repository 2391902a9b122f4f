/*
 * report.h - what ml-blockcli prints: a progress line per interval
 * (throughput, IOPS, p50/p99 latency, each path's share of the traffic,
 * frames resent, an active fault) and the summary at the end, with the
 * traffic of each path before, during and after a fault window:
 *
 *  - auto: the window is the time during which a fault injected into one of
 *    our paths (by mlctl or ml_fault_set) is active, as the path statistics
 *    show it, sampled every 100 ms; the first such window counts;
 *  - fixed: from START to END seconds after the workload started.
 *
 * Path figures are bytes sent plus received on the path, of the backend in
 * use (they start over if the client switches to another backend).
 */
#ifndef REPORT_H
#define REPORT_H

#include <ev.h>
#include <stdio.h>

#include "engine.h"
#include "workload.h"

#define REPORT_PATHS 16

enum report_window { WINDOW_NONE, WINDOW_AUTO, WINDOW_FIXED };

struct report {
	struct engine *e;
	FILE *out;
	ml_peer *peer;
	double t0;            /* the workload's start (ev_time) */
	double interval;      /* progress lines (0: none) */
	int window;           /* enum report_window */
	double win_start, win_end; /* seconds from t0; auto: when seen (-1: not yet) */
	int phase;            /* 0 before, 1 during, 2 after the window */
	char fault[80];       /* auto: which fault made the window */
	unsigned npaths;
	char url[REPORT_PATHS][ML_URL_MAX];
	uint64_t phase_start[3][REPORT_PATHS]; /* path bytes when each phase began */
	uint64_t last_tick[REPORT_PATHS];
	ev_timer tick, sample;
};

/* What the summary says besides the engine's counters. */
struct report_end {
	const char *what;     /* "I/Os", "put", "get" */
	const struct verify_counts *vc; /* NULL: no verify */
	uint64_t never_completed;       /* outstanding when the run was given up */
	uint64_t switches;              /* backend changes */
	int flush_status;               /* of the final FLUSH (0: fine or none) */
	uint64_t copied;                /* put/get: bytes */
};

void report_init(struct report *r, struct engine *e, FILE *out, double interval, int window,
		 double win_start, double win_end);
/* Start the timers; the workload starts now. */
void report_start(struct report *r, struct ev_loop *loop, ml_peer *peer);
/* The backend changed: path figures start over. */
void report_set_peer(struct report *r, ml_peer *peer);
void report_stop(struct report *r, struct ev_loop *loop);
/* Print the summary; returns 1 if the run verified clean (nothing lost,
 * duplicated, mismatched or failed), else 0. */
int report_summary(struct report *r, const struct report_end *end);

#endif
