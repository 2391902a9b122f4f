/* iobuf.c - recycled, page-aligned I/O buffers (iobuf.h). */
#include "iobuf.h"

#include <pthread.h>
#include <stdlib.h>

#define IOBUF_ALIGN 4096

struct iobuf_pool {
	pthread_mutex_t lock;
	size_t size;
	struct iobuf *free;
};

int iobuf_pool_create(size_t size, struct iobuf_pool **out)
{
	struct iobuf_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	pthread_mutex_init(&p->lock, NULL);
	p->size = size;
	*out = p;
	return 0;
}

void iobuf_pool_destroy(struct iobuf_pool *pool)
{
	if (!pool)
		return;
	while (pool->free) {
		struct iobuf *b = pool->free;
		pool->free = b->next;
		free(b->data);
		free(b);
	}
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

size_t iobuf_size(const struct iobuf_pool *pool)
{
	return pool->size;
}

struct iobuf *iobuf_get(struct iobuf_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	struct iobuf *b = pool->free;
	if (b)
		pool->free = b->next;
	pthread_mutex_unlock(&pool->lock);
	if (b)
		return b;
	/* Allocate outside the lock; the pool grows to the most ever in use. */
	b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	if (posix_memalign(&b->data, IOBUF_ALIGN, pool->size ? pool->size : 1)) {
		free(b);
		return NULL;
	}
	return b;
}

void iobuf_put(struct iobuf_pool *pool, struct iobuf *buf)
{
	pthread_mutex_lock(&pool->lock);
	buf->next = pool->free;
	pool->free = buf;
	pthread_mutex_unlock(&pool->lock);
}

struct ml_buf iobuf_ref(const struct iobuf *buf, size_t off, size_t len)
{
	struct ml_buf b = ml_buf_plain(buf->data, len);
	b.offset = off;
	return b;
}
