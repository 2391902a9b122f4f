/* engine.c - ml-blockcli's I/O slots, sends, completions, failover (engine.h). */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_hold_timeout(struct ev_loop *loop, ev_timer *w, int revents);

int engine_init(struct engine *e, struct ev_loop *loop, unsigned qd, size_t buf_size,
		double hold_max_s, engine_done_cb done, engine_refill_cb refill, void *arg)
{
	memset(e, 0, sizeof(*e));
	e->loop = loop;
	e->qd = qd;
	e->done = done;
	e->refill = refill;
	e->arg = arg;
	e->hold_max_s = hold_max_s;
	e->held_tail = &e->held;
	e->next_tag = 1;
	ev_timer_init(&e->hold_timer, on_hold_timeout, hold_max_s, 0);
	e->hold_timer.data = e;
	e->slots = calloc(qd, sizeof(*e->slots));
	if (!e->slots || iobuf_pool_create(buf_size, &e->bufs))
		goto nomem;
	for (unsigned i = qd; i-- > 0;) {
		struct io *io = &e->slots[i];
		io->engine = e;
		io->buf = iobuf_get(e->bufs);
		if (!io->buf)
			goto nomem;
		io->next = e->free;
		e->free = io;
	}
	return 0;
nomem:
	engine_destroy(e);
	return -1;
}

void engine_destroy(struct engine *e)
{
	ev_timer_stop(e->loop, &e->hold_timer);
	for (unsigned i = 0; e->slots && i < e->qd; i++)
		if (e->slots[i].buf)
			iobuf_put(e->bufs, e->slots[i].buf);
	iobuf_pool_destroy(e->bufs);
	free(e->slots);
	free(e->done_bits);
}

size_t engine_buf_size(const struct engine *e)
{
	return iobuf_size(e->bufs);
}

struct io *engine_get(struct engine *e)
{
	struct io *io = e->free;
	if (!io)
		return NULL;
	e->free = io->next;
	io->busy = 1;
	io->tag = 0;
	io->t_first = 0;
	io->user = 0;
	memset(&io->h, 0, sizeof(io->h));
	e->inflight++;
	return io;
}

void engine_put(struct engine *e, struct io *io)
{
	io->busy = 0;
	io->next = e->free;
	e->free = io;
	e->inflight--;
}

static int tag_done(const struct engine *e, uint64_t tag)
{
	return tag < e->done_cap && (e->done_bits[tag / 8] & (1u << (tag % 8)));
}

static void tag_mark(struct engine *e, uint64_t tag)
{
	if (tag >= e->done_cap) {
		uint64_t cap = e->done_cap ? e->done_cap : 1 << 16;
		while (cap <= tag)
			cap *= 2;
		uint8_t *b = realloc(e->done_bits, cap / 8);
		if (!b)
			return; /* out of memory: duplicates of it go unnoticed */
		memset(b + e->done_cap / 8, 0, (cap - e->done_cap) / 8);
		e->done_bits = b;
		e->done_cap = cap;
	}
	e->done_bits[tag / 8] |= (uint8_t)(1u << (tag % 8));
}

static void note_completion(struct engine *e)
{
	double t = ev_time();
	double gap = t - e->last_completion;
	if (e->watch_stalls && e->last_completion > 0 && gap >= ENGINE_STALL_MIN_S) {
		struct engine_stall s = { t, gap };
		if (e->nstalls < ENGINE_MAX_STALLS)
			e->stalls[e->nstalls++] = s;
		if (gap > e->longest.length)
			e->longest = s;
	}
	e->last_completion = t;
}

/* refill: let the producer issue more (not when finishing from inside a
 * send, which would recurse as deep as sends keep failing). */
static void finish(struct engine *e, struct io *io, int status, const void *data, int refill)
{
	note_completion(e);
	if (status == 0) {
		double us = (ev_time() - io->t_first) * 1e6;
		hist_add(&e->all, us);
		hist_add(&e->interval, us);
		e->ops_done[io->h.op]++;
		e->bytes_done[io->h.op] += io->h.length;
		e->interval_ops++;
		if (io->h.op == BLK_READ || io->h.op == BLK_WRITE)
			e->interval_bytes += io->h.length;
	} else {
		e->failed++;
		if (status < 0 && -status < 32)
			e->ml_errors[-status]++;
		else if (status > 0 && status < 16)
			e->blk_errors[status]++;
	}
	tag_mark(e, io->tag);
	e->done(e->arg, io, status, data);
	engine_put(e, io);
	if (refill && e->refill)
		e->refill(e->arg);
}

static void hold(struct engine *e, struct io *io)
{
	io->next = NULL;
	*e->held_tail = io;
	e->held_tail = &io->next;
	if (e->nheld++ == 0) {
		ev_timer_set(&e->hold_timer, e->hold_max_s, 0);
		ev_timer_start(e->loop, &e->hold_timer);
	}
}

static void on_response(void *arg, int status, const struct ml_msg *resp);

static void send_io(struct engine *e, struct io *io)
{
	io->h.volume = e->volume;
	io->peer = e->peer;
	io->backend_gen = e->backend_gen;
	blk_req_encode(&io->h, io->hdr);
	struct ml_buf bufs[2] = { ml_buf_plain(io->hdr, sizeof(io->hdr)) };
	unsigned n = 1;
	if (io->h.op == BLK_WRITE)
		bufs[n++] = iobuf_ref(io->buf, 0, io->h.length);
	/* No copy: the slot's header and buffer stay put until on_response. */
	int rc = ml_request_send(e->peer, io->tag, bufs, n, 0, on_response, io);
	if (rc != ML_OK) /* qd is below the admission limit: out of memory, or a bug */
		finish(e, io, rc, NULL, 0);
}

void engine_submit(struct engine *e, struct io *io)
{
	io->tag = e->next_tag++;
	io->t_first = ev_time();
	if (e->peer)
		send_io(e, io);
	else
		hold(e, io);
}

/* Is this the backend going away (try the next one), not a failure of the I/O? */
static int backend_gone(int status, const struct blk_rsp *r)
{
	return status == ML_EPEERDOWN || (status == ML_OK && r->status == BLK_S_SHUTDOWN);
}

/* The status the producer sees for a response that arrived. */
static int response_status(struct engine *e, struct io *io, const struct ml_msg *resp,
			   struct blk_rsp *r, const void **data)
{
	const char *why;
	if (!blk_rsp_decode(resp->data, resp->len, r, data, &why)) {
		if (r->status != BLK_S_OK)
			return (int)r->status;
		if (io->h.op != BLK_READ || r->length == io->h.length)
			return 0;
		why = "read response of the wrong length";
	}
	if (e->bad_responses++ < 5)
		fprintf(stderr, "ml-blockcli: tag %llu: %s\n", (unsigned long long)io->tag, why);
	return ML_EPROTO;
}

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	struct io *io = arg;
	struct engine *e = io->engine;
	struct blk_rsp r = { 0 };
	const void *data = NULL;
	if (e->closing)
		return;
	/* A second completion of a finished I/O: the library broke its word. */
	if (!io->busy || (resp && (resp->tag != io->tag || tag_done(e, resp->tag)))) {
		e->duplicated++;
		return;
	}
	int final = status;
	if (status == ML_OK)
		final = response_status(e, io, resp, &r, &data);
	if (backend_gone(status, &r)) {
		if (e->peer && io->backend_gen != e->backend_gen) {
			e->reissued++;
			send_io(e, io); /* already a newer backend: go there now */
		} else {
			hold(e, io);
		}
		return;
	}
	finish(e, io, final, data, 1);
}

void engine_set_backend(struct engine *e, ml_peer *peer, uint32_t volume)
{
	e->peer = peer;
	e->volume = volume;
	e->backend_gen++;
	if (!peer)
		return;
	ev_timer_stop(e->loop, &e->hold_timer);
	struct io *list = e->held;
	e->held = NULL;
	e->held_tail = &e->held;
	e->nheld = 0;
	while (list) {
		struct io *io = list;
		list = io->next;
		if (io->peer)
			e->reissued++;
		send_io(e, io);
	}
}

void engine_fail_held(struct engine *e, int status)
{
	ev_timer_stop(e->loop, &e->hold_timer);
	struct io *list = e->held;
	e->held = NULL;
	e->held_tail = &e->held;
	e->nheld = 0;
	while (list) {
		struct io *io = list;
		list = io->next;
		finish(e, io, status, NULL, 1);
	}
}

static void on_hold_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct engine *e = w->data;
	fprintf(stderr, "ml-blockcli: no backend for %.1f s: %u held I/Os fail\n", e->hold_max_s,
		e->nheld);
	engine_fail_held(e, ML_EPEERDOWN);
}

void engine_close(struct engine *e)
{
	e->closing = 1;
	ev_timer_stop(e->loop, &e->hold_timer);
}

const char *engine_status_text(int status)
{
	return status <= 0 ? ml_strerror(status) : blk_status_name(status);
}
