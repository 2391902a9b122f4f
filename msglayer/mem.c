/* mem.c - ml_mem_register: registered memory regions for zero copy.
 *
 * The registration itself is the transports' (transports/rdma_mem.c): with
 * every RDMA device the process uses, and with a device opened later at its
 * first connection. Without RDMA it records the range and nothing more. */
#include "internal.h"

#include <stdlib.h>

/* ctx names the caller's context, as every call does; the devices, and so
 * the registration, are the process's (two contexts share them). */
int ml_mem_register(ml_ctx *ctx, void *base, size_t len, ml_mem **out)
{
	if (!ctx || !base || !len || !out)
		return ML_EINVAL;
	struct ml_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return ML_ENOMEM;
	m->base = base;
	m->len = len;
	int rc = ml_tp_mem_add(base, len, &m->tp);
	if (rc) {
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void ml_mem_unregister(ml_mem *m)
{
	if (!m)
		return;
	ml_tp_mem_del(m->tp);
	free(m);
}

void *ml_mem_base(const ml_mem *m)
{
	return m ? m->base : NULL;
}

size_t ml_mem_len(const ml_mem *m)
{
	return m ? m->len : 0;
}
