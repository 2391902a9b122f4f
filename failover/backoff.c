/* backoff.c - see backoff.h. */
#include "backoff.h"

#include <stdlib.h>

double ml_backoff_delay(double min_s, double max_s, unsigned failures, unsigned *seed)
{
	double d = min_s;
	for (unsigned i = 0; i < failures && d < max_s; i++)
		d *= 2;
	if (d > max_s)
		d = max_s;
	double jitter = 0.5 + 0.5 * ((double)rand_r(seed) / ((double)RAND_MAX + 1.0));
	return d * jitter;
}
