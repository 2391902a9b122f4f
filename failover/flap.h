/*
 * flap.h - flap damping: a path that keeps failing soon after coming up is
 * held out for a growing time, and on its return must answer heartbeats for
 * a probation period before it carries data again.
 */
#ifndef ML_FLAP_H
#define ML_FLAP_H

struct ml_flap {
	unsigned level;   /* consecutive flaps (0: the path is trusted) */
	double up_since;  /* when it last came up (0: never) */
};

/* The path failed at `now`: a failure within window_s of coming up is a flap
 * (returns 1 and raises the level); one after a longer good run forgives the
 * past (level 0). */
int ml_flap_on_failure(struct ml_flap *f, double now, double window_s);

/* The path came up at `now`. */
void ml_flap_on_up(struct ml_flap *f, double now);

/* How long to keep a flapping path out before reconnecting: min_s doubled per
 * level above the first, capped at max_s; 0 when not flapping. */
double ml_flap_hold(const struct ml_flap *f, double min_s, double max_s);

/* 1 if the path must pass probation when it comes up. */
int ml_flap_needs_probation(const struct ml_flap *f);

#endif
