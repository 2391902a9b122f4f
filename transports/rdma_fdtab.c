/* rdma_fdtab.c - from the fds the core holds to the RDMA objects behind them.
 *
 * The core knows a connection only by its fd, on whichever worker owns it,
 * so the transport finds its object by fd: a two-level table, chunks made
 * on demand under a lock, entries read without one (an entry is set before
 * its fd is handed to the core and cleared before the fd is closed, so a
 * lookup by a holder of the fd always sees its own object). */
#include "rdma.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define CHUNK 1024
#define CHUNKS 1024 /* fds below 1M */

static void **chunks[CHUNKS];
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;

int rdma_fdtab_set(int fd, void *obj)
{
	if (fd < 0 || fd >= CHUNK * CHUNKS) {
		errno = EMFILE;
		return -1;
	}
	void **c = __atomic_load_n(&chunks[fd / CHUNK], __ATOMIC_ACQUIRE);
	if (!c) {
		pthread_mutex_lock(&grow_lock);
		c = chunks[fd / CHUNK];
		if (!c && (c = calloc(CHUNK, sizeof(*c))) != NULL)
			__atomic_store_n(&chunks[fd / CHUNK], c, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&grow_lock);
		if (!c) {
			errno = ENOMEM;
			return -1;
		}
	}
	__atomic_store_n(&c[fd % CHUNK], obj, __ATOMIC_RELEASE);
	return 0;
}

void *rdma_fdtab_get(int fd)
{
	if (fd < 0 || fd >= CHUNK * CHUNKS)
		return NULL;
	void **c = __atomic_load_n(&chunks[fd / CHUNK], __ATOMIC_ACQUIRE);
	return c ? __atomic_load_n(&c[fd % CHUNK], __ATOMIC_ACQUIRE) : NULL;
}

void rdma_fdtab_clear(int fd)
{
	if (rdma_fdtab_get(fd))
		__atomic_store_n(&chunks[fd / CHUNK][fd % CHUNK], NULL, __ATOMIC_RELEASE);
}
