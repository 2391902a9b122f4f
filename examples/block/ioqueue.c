/* ioqueue.c - threads that run blocking jobs (ioqueue.h). */
#include "ioqueue.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct ioqueue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct iojob *head, **tail;
	int stopping;
	unsigned nthreads;
	pthread_t threads[];
};

static void *worker(void *arg)
{
	struct ioqueue *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->wake, &q->lock);
		struct iojob *job = q->head;
		if (!job)
			break; /* stopping, and nothing left to run */
		q->head = job->next;
		if (!q->head)
			q->tail = &q->head;
		pthread_mutex_unlock(&q->lock);
		job->run(job);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int ioqueue_start(unsigned nthreads, struct ioqueue **out)
{
	if (nthreads < 1 || nthreads > 256) {
		errno = EINVAL;
		return -1;
	}
	struct ioqueue *q = calloc(1, sizeof(*q) + nthreads * sizeof(pthread_t));
	if (!q)
		return -1;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	q->tail = &q->head;
	/* Signals are the main thread's business (its libev loop takes them). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; q->nthreads < nthreads; q->nthreads++) {
		int e = pthread_create(&q->threads[q->nthreads], NULL, worker, q);
		if (e) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			ioqueue_stop(q);
			errno = e;
			return -1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = q;
	return 0;
}

void ioqueue_push(struct ioqueue *q, struct iojob *job)
{
	job->next = NULL;
	pthread_mutex_lock(&q->lock);
	*q->tail = job;
	q->tail = &job->next;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

void ioqueue_stop(struct ioqueue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
