/* pool.c - per-worker free lists of fixed-size objects (pool.h). */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

void ml_pool_init(struct ml_pool *pool, size_t size, unsigned max_local)
{
	memset(pool, 0, sizeof(*pool));
	pool->size = size < sizeof(struct ml_pool_obj) ? sizeof(struct ml_pool_obj) : size;
	pool->max_local = max_local;
	pthread_mutex_init(&pool->lock, NULL);
}

static void free_list(struct ml_pool_obj *o)
{
	while (o) {
		struct ml_pool_obj *next = o->next;
		free(o);
		o = next;
	}
}

void ml_pool_fini(struct ml_pool *pool)
{
	free_list(pool->local);
	free_list(pool->shared);
	pool->local = pool->shared = NULL;
	pool->nlocal = pool->nshared = 0;
	pthread_mutex_destroy(&pool->lock);
}

void *ml_pool_get(struct ml_pool *pool, int on_worker)
{
	struct ml_pool_obj *o = NULL;
	if (on_worker) {
		o = pool->local;
		if (o) {
			pool->local = o->next;
			pool->nlocal--;
		}
	} else {
		__atomic_store_n(&pool->taken_elsewhere, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&pool->lock);
		o = pool->shared;
		if (o) {
			pool->shared = o->next;
			pool->nshared--;
		}
		pthread_mutex_unlock(&pool->lock);
	}
	if (!o)
		return calloc(1, pool->size); /* warming up, or a burst beyond the pool */
	memset(o, 0, pool->size);
	return o;
}

void ml_pool_put(struct ml_pool *pool, void *obj, int on_worker)
{
	struct ml_pool_obj *o = obj;
	if (!o)
		return;
	if (on_worker) {
		if (pool->nlocal >= pool->max_local) {
			free(o);
			return;
		}
		o->next = pool->local;
		pool->local = o;
		pool->nlocal++;
		return;
	}
	pthread_mutex_lock(&pool->lock);
	if (pool->nshared < ML_POOL_SHARED) {
		o->next = pool->shared;
		pool->shared = o;
		pool->nshared++;
		o = NULL;
	}
	pthread_mutex_unlock(&pool->lock);
	free(o);
}

void ml_pool_refill(struct ml_pool *pool)
{
	/* Embedded mode and callbacks never take from the shared list: no lock
	 * on their loop turns. */
	if (!__atomic_load_n(&pool->taken_elsewhere, __ATOMIC_RELAXED) || !pool->local)
		return;
	__atomic_store_n(&pool->taken_elsewhere, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&pool->lock);
	while (pool->local && pool->nshared < ML_POOL_SHARED) {
		struct ml_pool_obj *o = pool->local;
		pool->local = o->next;
		pool->nlocal--;
		o->next = pool->shared;
		pool->shared = o;
		pool->nshared++;
	}
	pthread_mutex_unlock(&pool->lock);
}
