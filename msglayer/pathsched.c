/* pathsched.c - path choice per fragment (see pathsched.h). */
#include "pathsched.h"
#include "msglayer.h"

static int has_room(const struct ml_sched_path *p)
{
	return p->usable && p->outstanding < p->cap;
}

int ml_sched_pick(const struct ml_sched_path *p, unsigned n, uint32_t len, unsigned policy,
		  unsigned *rr_cursor)
{
	if (policy == ML_SCHED_ROUND_ROBIN) {
		for (unsigned k = 0; k < n; k++) {
			unsigned i = (*rr_cursor + k) % n;
			if (has_room(&p[i])) {
				*rr_cursor = i + 1;
				return (int)i;
			}
		}
		return -1;
	}
	int best = -1;
	double best_t = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!has_room(&p[i]))
			continue;
		double t = p[i].rtt_s / 2 + (double)(p[i].outstanding + len) / p[i].rate_bps;
		if (best < 0 || t < best_t) {
			best = (int)i;
			best_t = t;
		}
	}
	return best;
}
