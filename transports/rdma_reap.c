/* rdma_reap.c - connections are torn down on a thread of their own.
 *
 * rdma_destroy_id waits in the kernel until the CM is done with the id: for
 * a DREQ that gets no answer that is the MAD's timeout (0.7 s measured with
 * RoCE dropped, over 2 s with the local link down). On a worker that
 * would stall every other path and session it carries, and delay the very
 * failure the close reports. So the worker only unhooks the connection
 * (its fd leaves the table: the core is done with it) and this thread,
 * started on first use, does the waiting.
 *
 * A connection whose port is down is held (its QP and buffers freed, its
 * CM id kept) until the port is active again, its device goes away, or
 * RDMA_REAP_HOLD_S passed: the DREQ that destroying the id sends through a
 * down port puts soft-RoCE's QP1 in error, and no connection crosses that
 * device again (seen with both veth and virtio links in the VM).
 *
 * After a DEVICE_REMOVAL it also syncs librdmacm's device list for a while,
 * so that librdmacm lets the device go too (rdma.h). */
#include "rdma.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#define RDMA_REAP_HOLD_S 30
#define RDMA_REAP_POLL_MS 100

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct rdma_conn *queue; /* linked through reap_next */
static int started;
static double removal_at;       /* the last DEVICE_REMOVAL (0: none); under lock */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int port_down(struct rdma_conn *c)
{
	struct ibv_port_attr pa;
	return c->id && c->id->verbs && ibv_query_port(c->id->verbs, c->id->port_num, &pa) == 0 &&
	       pa.state != IBV_PORT_ACTIVE;
}

/* Free c, or keep it on *held while its port is down. */
static void reap_one(struct rdma_conn *c, struct rdma_conn **held, double now)
{
	if (!c->held_since) {
		rdma_conn_release(c); /* QP, CQ, buffers: no MAD involved */
		c->held_since = now;
	}
	if (rdma_conn_device_gone(c) || now - c->held_since > RDMA_REAP_HOLD_S || !port_down(c)) {
		rdma_conn_free(c);
		return;
	}
	c->reap_next = *held;
	*held = c;
}

/* librdmacm lets a device go that left libibverbs' list (see rdma.h). */
static void sync_devices(void)
{
	struct ibv_context **l = rdma_get_devices(NULL);
	if (l)
		rdma_free_devices(l);
}

static void *reaper(void *arg)
{
	struct rdma_conn *held = NULL;
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		int syncing = removal_at && mono_s() - removal_at < RDMA_REMOVAL_SYNC_S;
		if (!queue && !held && !syncing) {
			pthread_cond_wait(&more, &lock);
		} else if (!queue) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_nsec += RDMA_REAP_POLL_MS * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&more, &lock, &dl);
		}
		struct rdma_conn *todo = queue, *again = held;
		queue = NULL;
		held = NULL;
		syncing = removal_at && mono_s() - removal_at < RDMA_REMOVAL_SYNC_S;
		pthread_mutex_unlock(&lock);
		double now = mono_s();
		while (todo) {
			struct rdma_conn *c = todo;
			todo = c->reap_next;
			reap_one(c, &held, now);
		}
		while (again) {
			struct rdma_conn *c = again;
			again = c->reap_next;
			reap_one(c, &held, now);
		}
		if (syncing)
			sync_devices();
		pthread_mutex_lock(&lock);
	}
	return NULL;
}

/* Like every library thread: no signals (they are the application's), a name. */
static int start(void)
{
	pthread_t t;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, NULL, reaper, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -1;
	pthread_setname_np(t, "ml-rdma-reap");
	pthread_detach(t);
	return 0;
}

void rdma_removal_seen(void)
{
	pthread_mutex_lock(&lock);
	removal_at = mono_s();
	if (!started && start() == 0)
		started = 1;
	pthread_cond_signal(&more);
	pthread_mutex_unlock(&lock);
}

int rdma_removing(void)
{
	pthread_mutex_lock(&lock);
	int r = removal_at && mono_s() - removal_at < RDMA_REMOVAL_HOLD_S;
	pthread_mutex_unlock(&lock);
	return r;
}

void rdma_reap(struct rdma_conn *c)
{
	rdma_conn_unhook(c);
	pthread_mutex_lock(&lock);
	if (!started && start() == 0)
		started = 1;
	if (!started) { /* no thread: better a stall than a leak */
		pthread_mutex_unlock(&lock);
		rdma_conn_free(c);
		return;
	}
	c->reap_next = queue;
	queue = c;
	pthread_cond_signal(&more);
	pthread_mutex_unlock(&lock);
}
