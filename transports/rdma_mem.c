/*
 * rdma_mem.c - protection domains per RDMA device and the memory regions
 * registered with them (ml_mem_register, doc/rdma.md "Zero copy").
 *
 * One PD per device, shared by every connection on it: a region registered
 * once per device is then usable by all of them (an MR belongs to a PD, and a
 * QP may use only the MRs of its own PD). A device is opened by its first
 * connection (rdma_dev_get) and let go by its last (rdma_dev_put): on
 * DEVICE_REMOVAL every verbs resource must go at once, the MRs included.
 * Regions live in a process-wide list: a device opened later registers every
 * known region then; without any device a region is only recorded, which is
 * the whole cost of ml_mem_register on a host or context without RDMA.
 *
 * The lock is taken by ml_mem_register/unregister (any thread), by a
 * connection's set-up and release (its worker, or the reaper), and once per
 * zero-copy fragment for its key: never per small message.
 */
#include "rdma.h"
#include "transport.h"
#include "../msglayer/msglayer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct rdma_dev {
	struct ibv_context *verbs; /* NULL: a free slot */
	struct ibv_pd *pd;
	unsigned refs;             /* connections using pd */
};

struct ml_tp_mem {
	void *base;
	size_t len;
	struct ibv_mr *mr[RDMA_MAX_DEVS]; /* by device slot; NULL: not registered there */
	struct ml_tp_mem *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdma_dev devs[RDMA_MAX_DEVS];
static struct ml_tp_mem *regions;

/* Local write: a region is also the destination of READs; remote read: the
 * peer pulls from it. A device that refuses (its limits, no memory) leaves
 * the region unregistered there: those messages go as DATA frames. */
static void reg(struct ml_tp_mem *m, int slot)
{
	m->mr[slot] = ibv_reg_mr(devs[slot].pd, m->base, m->len,
				 IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
}

struct ibv_pd *rdma_dev_get(struct ibv_context *verbs, int *slot)
{
	struct ibv_pd *pd = NULL;
	int free_slot = -1;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < RDMA_MAX_DEVS; i++) {
		if (devs[i].verbs == verbs) {
			devs[i].refs++;
			*slot = i;
			pd = devs[i].pd;
			goto out;
		}
		if (!devs[i].verbs && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0) {
		errno = ENOSPC;
		goto out;
	}
	if (!(pd = ibv_alloc_pd(verbs)))
		goto out;
	devs[free_slot] = (struct rdma_dev){ verbs, pd, 1 };
	*slot = free_slot;
	for (struct ml_tp_mem *m = regions; m; m = m->next)
		reg(m, free_slot);
out:
	pthread_mutex_unlock(&lock);
	return pd;
}

void rdma_dev_put(int slot)
{
	pthread_mutex_lock(&lock);
	if (--devs[slot].refs == 0) {
		for (struct ml_tp_mem *m = regions; m; m = m->next)
			if (m->mr[slot]) {
				ibv_dereg_mr(m->mr[slot]);
				m->mr[slot] = NULL;
			}
		ibv_dealloc_pd(devs[slot].pd);
		devs[slot] = (struct rdma_dev){ 0 };
	}
	pthread_mutex_unlock(&lock);
}

int rdma_mem_key(const struct ml_tp_mem *m, int slot, uint32_t *lkey, uint32_t *rkey)
{
	int rc = -1;
	pthread_mutex_lock(&lock);
	if (m->mr[slot]) {
		*lkey = m->mr[slot]->lkey;
		*rkey = m->mr[slot]->rkey;
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int ml_tp_mem_add(void *base, size_t len, struct ml_tp_mem **out)
{
	struct ml_tp_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return ML_ENOMEM;
	m->base = base;
	m->len = len;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < RDMA_MAX_DEVS; i++)
		if (devs[i].verbs)
			reg(m, i);
	m->next = regions;
	regions = m;
	pthread_mutex_unlock(&lock);
	*out = m;
	return 0;
}

void ml_tp_mem_del(struct ml_tp_mem *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&lock);
	for (struct ml_tp_mem **pp = &regions; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	for (int i = 0; i < RDMA_MAX_DEVS; i++)
		if (m->mr[i])
			ibv_dereg_mr(m->mr[i]);
	pthread_mutex_unlock(&lock);
	free(m);
}
