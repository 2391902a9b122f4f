/*
 * pathsched.h - which path carries the next fragment.
 *
 * Adaptive: the path that would deliver it soonest, estimated as half its RTT
 * plus (bytes it already holds + this fragment) / its delivery rate. A path
 * that delivers twice as fast therefore carries about twice the bytes, and a
 * large message spreads over every path. Round-robin is the simple option.
 */
#ifndef ML_PATHSCHED_H
#define ML_PATHSCHED_H

#include <stdint.h>

struct ml_sched_path {
	int usable;           /* up and allowed to carry data */
	uint64_t outstanding; /* bytes queued or in flight on it */
	uint64_t cap;         /* most bytes it may hold */
	double rate_bps;      /* delivery rate estimate, bytes/s (> 0) */
	double rtt_s;         /* smoothed RTT (0 if unknown) */
};

/* Index of the path for a fragment of len bytes, or -1 when every usable path
 * is full (a path below its cap always takes one more fragment).
 * *rr_cursor is used and advanced by ML_SCHED_ROUND_ROBIN. */
int ml_sched_pick(const struct ml_sched_path *p, unsigned n, uint32_t len, unsigned policy,
		  unsigned *rr_cursor);

#endif
