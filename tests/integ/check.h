/* check.h - the integration tests' assertion: print where and why, then exit 1. */
#ifndef ML_TEST_CHECK_H
#define ML_TEST_CHECK_H

#include "msglayer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, "\n");                                  \
			exit(1);                                                \
		}                                                               \
	} while (0)

/* Wait on cv (mu held by the caller) until ok(arg) holds; 0 if timeout_s
 * passed first. The callbacks that change what ok reads signal cv; the
 * 50 ms re-check also bounds a missed signal. No spinning: under valgrind a
 * spinning test thread starves the library's threads. */
static inline int check_wait(pthread_mutex_t *mu, pthread_cond_t *cv, int (*ok)(void *), void *arg,
			     double timeout_s)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double deadline = (double)now.tv_sec + (double)now.tv_nsec / 1e9 + timeout_s;
	while (!ok(arg)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)now.tv_sec + (double)now.tv_nsec / 1e9 >= deadline)
			return 0;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(cv, mu, &ts);
	}
	return 1;
}

/* Wait until ctx's first n listeners have their ports: ml_listen returns
 * before its worker has bound, and no event tells an application the bind
 * happened. A bind that never comes fails the test after timeout_s. */
static inline void check_listening(ml_ctx *ctx, unsigned n, double timeout_s)
{
	for (double waited = 0;; waited += 0.001) {
		unsigned bound = 0;
		while (bound < n && ml_listen_port(ctx, bound))
			bound++;
		if (bound == n)
			return;
		CHECK(waited < timeout_s, "listener %u not bound %.0f s after ml_listen", bound, timeout_s);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

#endif
