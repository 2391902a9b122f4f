/*
 * iobuf.h - the block service's I/O buffers, and the one place that turns
 * them into the message layer's buffer references.
 *
 * Today the buffers are plain memory (ML_BUF_PLAIN). When the library gets
 * registered memory (ml_mem_register, for RDMA zero copy), the pool registers
 * what it allocates and iobuf_ref returns registered references; the code that
 * fills, sends and receives buffers does not change. Buffers are recycled
 * (no allocation per I/O in steady state) and page-aligned (O_DIRECT, and
 * registration, want that). Thread-safe.
 */
#ifndef IOBUF_H
#define IOBUF_H

#include <stddef.h>

#include "msglayer.h"

struct iobuf {
	void *data;       /* size bytes, page-aligned */
	struct iobuf *next; /* the pool's free list */
};

struct iobuf_pool;

/* A pool of buffers of size bytes each. Returns 0 or -1 (out of memory). */
int iobuf_pool_create(size_t size, struct iobuf_pool **out);
/* Frees the pool and its buffers; every buffer must have been put back. */
void iobuf_pool_destroy(struct iobuf_pool *pool);
size_t iobuf_size(const struct iobuf_pool *pool);

/* A buffer (reused, or allocated when none is free), or NULL: out of memory. */
struct iobuf *iobuf_get(struct iobuf_pool *pool);
void iobuf_put(struct iobuf_pool *pool, struct iobuf *buf);

/* The reference a send uses for bytes [off, off + len) of buf. */
struct ml_buf iobuf_ref(const struct iobuf *buf, size_t off, size_t len);

#endif
