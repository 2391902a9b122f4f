/* perf_hist.h - a latency histogram of fixed size with 1% resolution.
 *
 * Storing every sample of a 10-minute run at 100k requests/s would take
 * hundreds of megabytes; buckets growing by 1% from 1 us to ~1000 s take 17 KiB
 * and give percentiles within 1%. The maximum is kept exactly. Header-only:
 * used by ml-perf and by examples/block's ml-blockcli. */
#ifndef ML_PERF_HIST_H
#define ML_PERF_HIST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define HIST_BUCKETS 2100 /* 1.01^2100 us ~ 1.2e9 us */

struct hist {
	uint64_t n[HIST_BUCKETS];
	uint64_t count;
	double max_us;
};

static inline void hist_clear(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

static inline void hist_add(struct hist *h, double us)
{
	int b = us <= 1 ? 0 : (int)(log(us) / log(1.01)) + 1;
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	h->n[b]++;
	h->count++;
	if (us > h->max_us)
		h->max_us = us;
}

/* The value under which a fraction q (0..1) of the samples lie: the upper
 * edge of its bucket, never above the exact maximum. 0 when empty. */
static inline double hist_quantile(const struct hist *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;
	if (want == 0)
		want = 1;
	for (int b = 0; b < HIST_BUCKETS; b++) {
		seen += h->n[b];
		if (seen >= want) {
			double edge = pow(1.01, b);
			return edge < h->max_us ? edge : h->max_us;
		}
	}
	return h->max_us;
}

#endif
