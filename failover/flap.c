/* flap.c - see flap.h. */
#include "flap.h"

#define LEVEL_MAX 20 /* 2^20 x min: far beyond any sensible cap */

int ml_flap_on_failure(struct ml_flap *f, double now, double window_s)
{
	if (f->up_since > 0 && now - f->up_since < window_s) {
		if (f->level < LEVEL_MAX)
			f->level++;
		return 1;
	}
	if (f->up_since > 0)
		f->level = 0;
	return 0;
}

void ml_flap_on_up(struct ml_flap *f, double now)
{
	f->up_since = now;
}

double ml_flap_hold(const struct ml_flap *f, double min_s, double max_s)
{
	if (f->level == 0)
		return 0;
	double d = min_s;
	for (unsigned i = 1; i < f->level && d < max_s; i++)
		d *= 2;
	return d < max_s ? d : max_s;
}

int ml_flap_needs_probation(const struct ml_flap *f)
{
	return f->level > 0;
}
