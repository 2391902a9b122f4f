/* backoff.h - reconnect delays: exponential with jitter, capped. */
#ifndef ML_BACKOFF_H
#define ML_BACKOFF_H

/* Delay before reconnect attempt number `failures` (0 = first failure):
 * min * 2^failures capped at max, then scaled by a factor in [0.5, 1.0) drawn
 * from *seed, so that many nodes that lost the same switch do not reconnect in
 * lockstep. */
double ml_backoff_delay(double min_s, double max_s, unsigned failures, unsigned *seed);

#endif
