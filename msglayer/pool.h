/*
 * pool.h - free lists of one worker's fixed-size objects (outgoing messages,
 * received requests), so that a message in steady state costs no malloc/free.
 *
 * Objects are taken on any thread and given back mostly on the worker, which
 * owns the local list and touches it without a lock. Other threads take from
 * the shared list, under a mutex, which the worker tops up from its local list
 * once per loop turn when other threads have been taking. Both lists are
 * bounded: an object given back to a full pool is freed, so a burst does not
 * stay allocated for ever.
 */
#ifndef ML_POOL_H
#define ML_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ML_POOL_SHARED 256 /* objects kept ready for other threads */

struct ml_pool_obj {
	struct ml_pool_obj *next;
};

struct ml_pool {
	size_t size;                /* bytes per object */
	unsigned max_local;         /* most objects the local list keeps */
	struct ml_pool_obj *local;  /* worker thread only */
	unsigned nlocal;
	pthread_mutex_t lock;       /* shared, nshared */
	struct ml_pool_obj *shared;
	unsigned nshared;
	uint64_t taken_elsewhere;   /* takes by other threads since the last refill (relaxed) */
};

void ml_pool_init(struct ml_pool *pool, size_t size, unsigned max_local);
/* Free every object the pool holds; objects still out are the caller's. */
void ml_pool_fini(struct ml_pool *pool);
/* A zeroed object, or NULL without memory. on_worker: the caller is the
 * worker thread that owns the pool. */
void *ml_pool_get(struct ml_pool *pool, int on_worker);
void ml_pool_put(struct ml_pool *pool, void *obj, int on_worker);
/* Worker, once per loop turn: keep the shared list stocked if it is used. */
void ml_pool_refill(struct ml_pool *pool);

#endif
