/*
 * ioqueue.h - a small pool of threads that run blocking jobs (file I/O,
 * fdatasync) off the libev loop, whose callbacks must not block. Jobs run in
 * any order and on any of the threads: that is what lets a slow request
 * (a sync write) be overtaken by fast ones.
 */
#ifndef IOQUEUE_H
#define IOQUEUE_H

struct iojob {
	void (*run)(struct iojob *job); /* called on an I/O thread */
	struct iojob *next;
};

struct ioqueue;

/* Start nthreads threads (1..256). Returns 0 or -1 (errno set). */
int ioqueue_start(unsigned nthreads, struct ioqueue **out);
/* Queue a job; any thread. */
void ioqueue_push(struct ioqueue *q, struct iojob *job);
/* Run what is queued, then stop and join the threads, and free q. */
void ioqueue_stop(struct ioqueue *q);

#endif
