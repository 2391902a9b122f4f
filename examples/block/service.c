/* service.c - ml-blockd's request handling (service.h). */
#include "service.h"
#include "iobuf.h"
#include "ioqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct job {
	struct iojob io;
	struct service *svc;
	ml_request *req;
	struct blk_req h;
	const struct volume *vol;
	struct iobuf *buf; /* READ and WRITE data */
	uint8_t rsp[BLK_RSP_HDR_LEN];
	struct job *next_free;
};

struct service {
	struct volume *vols;
	unsigned nvols;
	uint32_t max_io;
	struct ioqueue *ioq;
	struct iobuf_pool *bufs;
	pthread_mutex_t lock; /* free jobs; jobs end on the loop or an I/O thread */
	struct job *free_jobs;
	unsigned outstanding;
	int refusing;
	struct service_stats st; /* updated with atomics */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

int service_create(struct volume *vols, unsigned nvols, uint32_t max_io, unsigned io_threads,
		   struct service **out)
{
	struct service *svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -1;
	svc->vols = vols;
	svc->nvols = nvols;
	svc->max_io = max_io;
	pthread_mutex_init(&svc->lock, NULL);
	if (iobuf_pool_create(max_io, &svc->bufs) || ioqueue_start(io_threads, &svc->ioq)) {
		int e = errno;
		iobuf_pool_destroy(svc->bufs);
		free(svc);
		errno = e;
		return -1;
	}
	*out = svc;
	return 0;
}

static struct job *job_get(struct service *svc)
{
	pthread_mutex_lock(&svc->lock);
	struct job *j = svc->free_jobs;
	if (j)
		svc->free_jobs = j->next_free;
	pthread_mutex_unlock(&svc->lock);
	if (!j)
		j = malloc(sizeof(*j));
	return j;
}

static void job_release(struct job *j)
{
	struct service *svc = j->svc;
	if (j->buf)
		iobuf_put(svc->bufs, j->buf);
	pthread_mutex_lock(&svc->lock);
	j->next_free = svc->free_jobs;
	svc->free_jobs = j;
	svc->outstanding--;
	pthread_mutex_unlock(&svc->lock);
}

/* An answer without data, copied: for requests refused on the loop thread. */
static void answer_status(ml_request *req, int op, int status)
{
	struct blk_rsp r = { .op = (uint8_t)op, .status = (uint32_t)status };
	uint8_t hdr[BLK_RSP_HDR_LEN];
	blk_rsp_encode(&r, hdr);
	struct ml_buf b = ml_buf_plain(hdr, sizeof(hdr));
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void job_sent(void *arg, int status)
{
	struct job *j = arg;
	if (status != ML_OK) /* the requester restarted or vanished meanwhile */
		count(&j->svc->st.send_failed, 1);
	job_release(j);
}

/* On an I/O thread: do it, answer it. */
static void job_run(struct iojob *io)
{
	struct job *j = (struct job *)((char *)io - offsetof(struct job, io));
	struct service *svc = j->svc;
	int sys_errno = 0;
	int status = volume_execute(j->vol, &j->h, j->buf ? j->buf->data : NULL, &sys_errno);
	struct blk_rsp r = { .op = j->h.op, .status = (uint32_t)status,
			     .sys_errno = (uint32_t)sys_errno };
	struct ml_buf bufs[2];
	unsigned n = 1;
	if (status == BLK_S_OK && j->h.op == BLK_READ) {
		r.length = j->h.length;
		bufs[n++] = iobuf_ref(j->buf, 0, j->h.length);
	}
	blk_rsp_encode(&r, j->rsp);
	bufs[0] = ml_buf_plain(j->rsp, sizeof(j->rsp));
	if (status == BLK_S_OK) {
		count(&svc->st.ops[j->h.op], 1);
		if (j->h.op == BLK_READ)
			count(&svc->st.bytes_read, j->h.length);
		else if (j->h.op == BLK_WRITE)
			count(&svc->st.bytes_written, j->h.length);
	} else {
		count(&svc->st.errors, 1);
	}
	/* No copy: the job's memory stays put until job_sent. */
	if (ml_respond(j->req, bufs, n, 0, job_sent, j) != ML_OK) {
		count(&svc->st.send_failed, 1); /* an empty answer went instead */
		job_release(j);
	}
}

void service_on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)from;
	struct service *svc = arg;
	struct blk_req h;
	const void *payload;
	int status = blk_req_decode(msg->data, msg->len, &h, &payload);
	const struct volume *vol = NULL;
	if (status == BLK_S_OK && svc->refusing)
		status = BLK_S_SHUTDOWN;
	if (status == BLK_S_OK) {
		for (unsigned i = 0; i < svc->nvols && !vol; i++)
			if (svc->vols[i].id == h.volume)
				vol = &svc->vols[i];
		status = vol ? volume_check(vol, &h, svc->max_io) : BLK_S_NOVOL;
	}
	struct iobuf *buf = NULL;
	struct job *j = NULL;
	if (status == BLK_S_OK && (h.op == BLK_READ || h.op == BLK_WRITE) &&
	    !(buf = iobuf_get(svc->bufs)))
		status = BLK_S_NOMEM;
	if (status == BLK_S_OK && !(j = job_get(svc)))
		status = BLK_S_NOMEM;
	if (status != BLK_S_OK) {
		if (buf)
			iobuf_put(svc->bufs, buf);
		count(&svc->st.errors, 1);
		answer_status(req, h.op, status);
		return;
	}
	*j = (struct job){ .io.run = job_run, .svc = svc, .req = req, .h = h, .vol = vol, .buf = buf };
	/* The payload lives only as long as this callback. */
	if (h.op == BLK_WRITE)
		memcpy(j->buf->data, payload, h.length);
	pthread_mutex_lock(&svc->lock);
	svc->outstanding++;
	pthread_mutex_unlock(&svc->lock);
	ioqueue_push(svc->ioq, &j->io);
}

void service_refuse_new(struct service *svc)
{
	svc->refusing = 1;
}

unsigned service_outstanding(struct service *svc)
{
	pthread_mutex_lock(&svc->lock);
	unsigned n = svc->outstanding;
	pthread_mutex_unlock(&svc->lock);
	return n;
}

void service_stop_io(struct service *svc)
{
	ioqueue_stop(svc->ioq);
	svc->ioq = NULL;
}

void service_stats_get(struct service *svc, struct service_stats *st)
{
	for (int i = 0; i < 5; i++)
		st->ops[i] = __atomic_load_n(&svc->st.ops[i], __ATOMIC_RELAXED);
	st->bytes_read = __atomic_load_n(&svc->st.bytes_read, __ATOMIC_RELAXED);
	st->bytes_written = __atomic_load_n(&svc->st.bytes_written, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&svc->st.errors, __ATOMIC_RELAXED);
	st->send_failed = __atomic_load_n(&svc->st.send_failed, __ATOMIC_RELAXED);
}

void service_destroy(struct service *svc)
{
	if (!svc)
		return;
	ioqueue_stop(svc->ioq);
	while (svc->free_jobs) {
		struct job *j = svc->free_jobs;
		svc->free_jobs = j->next_free;
		free(j);
	}
	iobuf_pool_destroy(svc->bufs);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}
