/*
 * peer.c - the session with one peer: the reliability rules of DESIGN.md.
 *
 * Send side: a message waits in waitq until the window has room, then gets
 * its sequence number (rule 1, never changed), is cut into fragments that the
 * scheduler hands to paths, and stays in txring until acknowledged (rule 2).
 * A failed path gives its unacknowledged fragments back to fragq (rule 5).
 * Receive side: each sequence number is delivered once (rule 3) as soon as
 * the message is whole; acks are cumulative + selective, on any path (rule 4).
 */
#include "internal.h"
#include "pathsched.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_session_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void send_ack(struct ml_peer *p);

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 64;
	while (p < v)
		p <<= 1;
	return p;
}

int ml_peer_init(struct ml_peer *p, struct ml_ctx *ctx, uint32_t node_id)
{
	p->ctx = ctx;
	p->node_id = node_id;
	p->w = &ctx->workers[node_id % ctx->nworkers];
	p->my_inc = ctx->incarnation;
	p->frag_size = ctx->cfg.max_frag_payload;
	p->next_seq = p->oldest_unacked = 1;
	CDS_INIT_LIST_HEAD(&p->waitq);
	CDS_INIT_LIST_HEAD(&p->fragq);
	CDS_INIT_LIST_HEAD(&p->dirty_link);
	CDS_INIT_LIST_HEAD(&p->open_requests);
	CDS_INIT_LIST_HEAD(&p->streams);
	CDS_INIT_LIST_HEAD(&p->zc_reads);
	if (ml_rxwin_init(&p->rx, ctx->cfg.max_inflight_msgs))
		return ML_ENOMEM;
	uint32_t ring = pow2_at_least(ctx->cfg.max_inflight_msgs);
	p->txmask = ring - 1;
	p->txring = calloc(ring, sizeof(*p->txring));
	p->reasm = calloc(p->rx.size, sizeof(*p->reasm));
	p->await_mask = 1023;
	p->await = calloc(p->await_mask + 1, sizeof(*p->await));
	if (!p->txring || !p->reasm || !p->await) {
		ml_peer_fini(p);
		return ML_ENOMEM;
	}
	ev_timer_init(&p->session_timer, on_session_timer, ctx->cfg.session_timeout_s, 0);
	p->st.node_id = node_id;
	return 0;
}

void ml_peer_fini(struct ml_peer *p)
{
	struct ml_request *req, *tmp;
	cds_list_for_each_entry_safe(req, tmp, &p->open_requests, link)
		ml_pool_put(&p->w->req_pool, req, 0); /* never answered; the handle dies with the context */
	for (unsigned i = 0; i < p->npaths; i++)
		ml_path_free(p->paths[i]);
	ml_zc_peer_fini(p); /* its paths are closed: no READ writes anywhere now */
	if (p->reasm)
		for (uint32_t i = 0; i < p->rx.size; i++)
			if (p->reasm[i])
				ml_peer_reasm_destroy(p, p->reasm[i]);
	for (unsigned i = 0; i < p->n_reasm_spare; i++)
		ml_peer_reasm_destroy(p, p->reasm_spare[i]);
	ml_rxwin_free(&p->rx);
	free(p->txring);
	free(p->reasm);
	free(p->await);
}

void ml_peer_mark_dirty(struct ml_peer *p)
{
	if (!p->dirty) {
		p->dirty = 1;
		cds_list_add_tail(&p->dirty_link, &p->w->dirty_peers);
	}
}

/* ---- requests awaiting their response: hash by request sequence number ---- */

static void await_grow(struct ml_peer *p)
{
	uint32_t nmask = p->await_mask * 2 + 1;
	struct ml_msg_out **nt = calloc(nmask + 1, sizeof(*nt));
	if (!nt)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i <= p->await_mask; i++) {
		struct ml_msg_out *m = p->await[i], *next;
		for (; m; m = next) {
			next = m->hnext;
			m->hnext = nt[m->seq & nmask];
			nt[m->seq & nmask] = m;
		}
	}
	free(p->await);
	p->await = nt;
	p->await_mask = nmask;
}

static void await_add(struct ml_peer *p, struct ml_msg_out *m)
{
	if (p->await_count > 2 * (p->await_mask + 1))
		await_grow(p);
	m->hnext = p->await[m->seq & p->await_mask];
	p->await[m->seq & p->await_mask] = m;
	p->await_count++;
	ML_STAT_SET(p->st.requests_pending, p->await_count);
}

static struct ml_msg_out *await_take(struct ml_peer *p, uint64_t seq)
{
	struct ml_msg_out **pp = &p->await[seq & p->await_mask];
	for (; *pp; pp = &(*pp)->hnext) {
		if ((*pp)->seq == seq) {
			struct ml_msg_out *m = *pp;
			*pp = m->hnext;
			p->await_count--;
			ML_STAT_SET(p->st.requests_pending, p->await_count);
			return m;
		}
	}
	return NULL;
}

/* ---- completion ---- */

static void complete(struct ml_peer *p, struct ml_msg_out *m, int status, const struct ml_msg *resp)
{
	uint32_t len = m->len;

	ev_timer_stop(p->w->loop, &m->deadline_timer);
	if (status != ML_OK)
		ML_STAT_ADD(p->st.failed, 1);
	if (m->kind == ML_KIND_RESPONSE)
		p->requests_held--; /* the request it answers is done with */
	if (m->kind == ML_KIND_REQUEST)
		m->rcb(m->arg, status, resp);
	else if (m->scb)
		m->scb(m->arg, status);
	ml_msg_free(m);
	/* Sequentially consistent with admit()'s refusal: either it sees our
	 * decrement, or we see its want_room (no lost wake-up). */
	__atomic_sub_fetch(&p->submitted, 1, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&p->submitted_bytes, len, __ATOMIC_SEQ_CST);
	ml_peer_room_check(p);
}

int ml_peer_room_again(const struct ml_peer *p)
{
	const struct ml_config *cfg = &p->ctx->cfg;
	return __atomic_load_n(&p->submitted, __ATOMIC_SEQ_CST) <=
		       (cfg->max_inflight_msgs + cfg->max_queued_msgs) / 2 &&
	       __atomic_load_n(&p->submitted_bytes, __ATOMIC_SEQ_CST) <=
		       (cfg->max_inflight_bytes + cfg->max_queued_bytes) / 2;
}

/* Room again for a sender that was refused: tell it once, at half the limit
 * so that it does not bounce on the edge. Worker only. */
void ml_peer_room_check(struct ml_peer *p)
{
	struct ml_ctx *ctx = p->ctx;
	if (__atomic_load_n(&p->want_room, __ATOMIC_SEQ_CST) && ml_peer_room_again(p) &&
	    __atomic_exchange_n(&p->want_room, 0, __ATOMIC_SEQ_CST) && ctx->cfg.on_room)
		ctx->cfg.on_room(ctx->cfg.cb_arg, p);
}

void ml_peer_complete(struct ml_peer *p, struct ml_msg_out *m, int status, const struct ml_msg *resp)
{
	complete(p, m, status, resp);
}

struct ml_msg_out *ml_peer_await_take(struct ml_peer *p, uint64_t seq)
{
	return await_take(p, seq);
}

/* Take every fragment of m off the paths and queues (it is acked or failed). */
static void unlink_frags(struct ml_msg_out *m)
{
	for (uint32_t i = 0; i < m->nfrags; i++) {
		struct ml_frag *f = &m->frags[i];
		if (f->state == ML_FRAG_PENDING) {
			cds_list_del(&f->link);
			f->state = ML_FRAG_IDLE;
		} else if (f->state == ML_FRAG_QUEUED || f->state == ML_FRAG_SENT) {
			ml_path_unqueue_frag(f->path, f);
		}
		f->lost_on = NULL;
	}
}

static void advance_oldest(struct ml_peer *p)
{
	while (p->oldest_unacked < p->next_seq && !p->txring[p->oldest_unacked & p->txmask])
		p->oldest_unacked++;
}

/* The in-flight counters change with each message, before its callback
 * runs, so that stats read from a callback (or after one) are current. */
static void set_inflight(struct ml_peer *p, int64_t msgs, int64_t bytes)
{
	p->inflight_msgs += (uint64_t)msgs;
	p->inflight_bytes += (uint64_t)bytes;
	ML_STAT_SET(p->st.inflight_msgs, p->inflight_msgs);
	ML_STAT_SET(p->st.inflight_bytes, p->inflight_bytes);
}

/* Take m out of the send window (acked, or failed). */
static void leave_window(struct ml_peer *p, struct ml_msg_out *m)
{
	unlink_frags(m);
	p->txring[m->seq & p->txmask] = NULL;
	set_inflight(p, -1, -(int64_t)m->len);
}

static void msg_acked(struct ml_peer *p, struct ml_msg_out *m)
{
	m->acked = 1;
	leave_window(p, m);
	ML_STAT_ADD(p->st.msgs_acked, 1);
	if (m->give_up)
		complete(p, m, m->give_up, NULL); /* given up while its payload was still needed */
	else if (m->kind == ML_KIND_REQUEST)
		await_add(p, m); /* the payload is done with; the callback waits for the answer */
	else
		complete(p, m, ML_OK, NULL);
}

static void ack_seq(struct ml_peer *p, uint64_t seq)
{
	struct ml_msg_out *m = p->txring[seq & p->txmask];
	if (m && m->seq == seq && !m->acked)
		msg_acked(p, m);
}

void ml_peer_on_ack(struct ml_peer *p, const struct ml_ack *a)
{
	p->w->active = 1;
	/* Numbers we never sent are ignored: loops stay bounded by our window. */
	uint64_t top = p->next_seq - 1;
	uint64_t cum = a->cum < top ? a->cum : top;
	for (uint64_t s = p->oldest_unacked; s <= cum; s++)
		ack_seq(p, s);
	for (unsigned i = 0; i < a->nranges; i++) {
		uint64_t s = a->r[i].start > p->oldest_unacked ? a->r[i].start : p->oldest_unacked;
		uint64_t e = a->r[i].end < top ? a->r[i].end : top;
		for (; s <= e; s++)
			ack_seq(p, s);
	}
	advance_oldest(p);
	ml_peer_mark_dirty(p); /* the window may have room now */
}

/* ---- failing what is outstanding ---- */

static void fail_window(struct ml_peer *p, int status)
{
	for (uint64_t s = p->oldest_unacked; s < p->next_seq; s++) {
		struct ml_msg_out *m = p->txring[s & p->txmask];
		if (m && m->seq == s) {
			leave_window(p, m);
			complete(p, m, m->give_up ? m->give_up : status, NULL);
		}
	}
	for (uint32_t i = 0; i <= p->await_mask; i++) {
		struct ml_msg_out *m;
		while ((m = p->await[i])) {
			await_take(p, m->seq);
			complete(p, m, status, NULL);
		}
	}
	p->oldest_unacked = p->next_seq = 1;
}

static void fail_waitq(struct ml_peer *p, int status)
{
	while (!cds_list_empty(&p->waitq)) {
		struct ml_msg_out *m = cds_list_first_entry(&p->waitq, struct ml_msg_out, link);
		cds_list_del(&m->link);
		complete(p, m, status, NULL);
	}
	ML_STAT_SET(p->st.queued_msgs, 0);
}

/* A response still waiting for a sequence number answers a request of the
 * old session: its ref would name an unrelated request in the new one.
 * Requests and one-way messages that never left may go in the new session. */
static void fail_waiting_responses(struct ml_peer *p, int status)
{
	struct ml_msg_out *m, *tmp;
	cds_list_for_each_entry_safe(m, tmp, &p->waitq, link) {
		if (m->kind != ML_KIND_RESPONSE)
			continue;
		cds_list_del(&m->link);
		ML_STAT_ADD(p->st.queued_msgs, -1);
		complete(p, m, status, NULL);
	}
}

static void reset_receive(struct ml_peer *p)
{
	for (uint32_t i = 0; i < p->rx.size; i++)
		if (p->reasm[i]) {
			ml_peer_reasm_destroy(p, p->reasm[i]);
			p->reasm[i] = NULL;
		}
	__atomic_sub_fetch(&p->ctx->reasm_bytes, p->reasm_bytes, __ATOMIC_RELAXED);
	p->reasm_bytes = 0;
	p->reasm_msgs = 0;
	memset(p->early_cancels, 0, sizeof(p->early_cancels));
	ml_rxwin_reset(&p->rx);
	p->ack_due = 0;
}

static void fail_paths_except(struct ml_peer *p, struct ml_path *keep, int status, const char *why)
{
	for (unsigned i = 0; i < p->npaths; i++)
		if (p->paths[i] != keep && p->paths[i]->fd >= 0)
			ml_path_fail(p->paths[i], status, why);
}

/* The context is closing (w->stopped is set): fail everything and leave no
 * watcher of ours on the loop, which in embedded mode outlives us. */
void ml_peer_cancel_all(struct ml_peer *p, int status)
{
	/* Our last acks, best effort: without them the peer would keep what
	 * it last sent us (answers, their buffers) until its session timeout.
	 * A fresh ACK goes into a socket with room at once; the kernel delivers
	 * it after the close. */
	if (p->ack_due) {
		send_ack(p);
		for (unsigned i = 0; i < p->npaths; i++)
			if (p->paths[i]->greeted)
				ml_path_flush(p->paths[i]);
	}
	fail_paths_except(p, NULL, status, "context closing");
	/* A failed path keeps its reconnect timer, and its injected fault's
	 * end: the context ends, so must they, or a loop the application keeps
	 * (embedded mode) would hold timers in freed memory. */
	for (unsigned i = 0; i < p->npaths; i++) {
		ev_timer_stop(p->w->loop, &p->paths[i]->timer);
		ev_timer_stop(p->w->loop, &p->paths[i]->fault_timer);
	}
	fail_window(p, status);
	fail_waitq(p, status);
	ml_stream_fail_all(p, status);
	reset_receive(p);
	ev_timer_stop(p->w->loop, &p->session_timer);
}

/* The session starts over: with a restarted peer (its new incarnation), or
 * after the session timeout (our new incarnation, so the peer starts over too).
 * Rule 6: what was outstanding completes with an error, never silently. */
static void session_restart(struct ml_peer *p, struct ml_path *keep, int status, const char *why)
{
	ML_STAT_ADD(p->st.restarts, 1);
	p->ended_status = status;
	fail_paths_except(p, keep, status, why);
	fail_window(p, status);
	fail_waiting_responses(p, status);
	ml_stream_fail_all(p, status); /* a stream lives in one session */
	reset_receive(p);
}

int ml_peer_check_incarnation(struct ml_peer *p, const struct ml_hello *h, struct ml_path *via)
{
	/* Refuse impossible terms before anything of the session changes. */
	if (h->max_frag_payload < 4096 || h->window == 0 || h->max_msg_size == 0) {
		ml_path_fail(via, ML_EPROTO, "peer offers a fragment size below 4 KiB or an empty window");
		return -1;
	}
	if (p->peer_inc && p->peer_inc != h->incarnation) {
		ml_log(p->ctx, ML_LOG_WARN, "peer %u restarted (incarnation %016llx -> %016llx)",
		       p->node_id, (unsigned long long)p->peer_inc, (unsigned long long)h->incarnation);
		session_restart(p, via, ML_EPEERRESTART, "peer restarted");
	}
	__atomic_store_n(&p->peer_codecs, (h->flags & ML_HELLO_F_CODEC_MASK) >> ML_HELLO_F_CODEC_SHIFT,
			 __ATOMIC_RELAXED);
	if (p->peer_inc != h->incarnation) {
		p->peer_inc = h->incarnation;
		p->session_id = p->my_inc ^ p->peer_inc;
		p->frag_size = h->max_frag_payload < p->ctx->cfg.max_frag_payload
				       ? h->max_frag_payload : p->ctx->cfg.max_frag_payload;
		p->peer_window = h->window;
		p->peer_max_msg = h->max_msg_size;
		ML_STAT_SET(p->st.peer_incarnation, p->peer_inc);
	}
	return 0;
}

/* We give the session up: everything outstanding, sent or still queued,
 * completes with status, and the next handshake starts a new session. */
static void session_abandon(struct ml_peer *p, int status, const char *why)
{
	session_restart(p, NULL, status, why);
	fail_waitq(p, status);
	ev_timer_stop(p->w->loop, &p->session_timer);
	/* The peer may still hold our old session; a new incarnation makes it
	 * start over too instead of waiting for numbers we gave up on. */
	p->my_inc = ml_random64();
	p->peer_inc = 0;
	p->session_id = 0;
}

static void on_session_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_peer *p = caa_container_of(t, struct ml_peer, session_timer);
	(void)loop;
	(void)revents;
	if (p->paths_up)
		return;
	ml_log(p->ctx, ML_LOG_WARN, "peer %u: no path for %.1f s: failing outstanding sends",
	       p->node_id, p->ctx->cfg.session_timeout_s);
	session_abandon(p, ML_ETIMEDOUT, "session reset");
}

/* A membership service said the node is gone (ml_peer_declare_down): no
 * waiting for the session timeout. Paths reconnect with their backoff, so a
 * node that comes back gets a fresh session. */
void ml_peer_declared_down(struct ml_peer *p, const char *why)
{
	if (p->w->stopped)
		return;
	ml_log(p->ctx, ML_LOG_WARN, "peer %u declared down (%s): failing outstanding sends",
	       p->node_id, why);
	ML_STAT_ADD(p->st.declared_down, 1);
	session_abandon(p, ML_EPEERDOWN, "session reset");
}

/* The peer made us hold more than a configured limit allows (doc/security.md):
 * it is told why on every path, and the session ends as if timed out, so
 * that all it made us hold is freed and a new session starts from nothing.
 * Returns 0: the caller's path is closed (fd < 0), which ends its parsing. */
static int over_limit(struct ml_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int over_limit(struct ml_peer *p, const char *fmt, ...)
{
	char why[120];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ml_log(p->ctx, ML_LOG_ERR, "peer %u: %s: closing its session (ML_ELIMIT)", p->node_id, why);
	ML_STAT_ADD(p->st.limits_hit, 1);
	for (unsigned i = 0; i < p->npaths; i++)
		ml_path_send_close(p->paths[i], ML_ELIMIT, why);
	session_abandon(p, ML_ELIMIT, why);
	return 0;
}

static void arm_session_timer(struct ml_peer *p)
{
	/* Messages in reassembly count too: a peer that left halves of them
	 * behind and went away must not make us keep them for ever. */
	if (!p->paths_up && !p->w->stopped && !ev_is_active(&p->session_timer) &&
	    (!cds_list_empty(&p->waitq) || p->next_seq != p->oldest_unacked || p->await_count ||
	     p->reasm_msgs)) {
		/* A repeat-less timer keeps its expired time: set it afresh. */
		ev_now_update(p->w->loop);
		ev_timer_set(&p->session_timer, p->ctx->cfg.session_timeout_s, 0);
		ev_timer_start(p->w->loop, &p->session_timer);
	}
}

/* ---- sending ---- */

void ml_peer_submit(struct ml_peer *p, struct ml_msg_out *m)
{
	p->w->active = 1;
	if (m->req) {
		struct ml_request *req = m->req;
		cds_list_del(&req->link);
		/* The session this request came on is gone: its requester got an
		 * error already, and the number would mean nothing now. */
		int stale = req->session_id != p->session_id;
		m->req = NULL;
		ml_pool_put(&p->w->req_pool, req, 1);
		if (stale) {
			complete(p, m, p->ended_status ? p->ended_status : ML_EPEERRESTART, NULL);
			return;
		}
	}
	if (p->w->stopped) {
		complete(p, m, ML_ECANCELED, NULL);
		return;
	}
	if ((m->wflags & ML_FLAG_CANCEL) || m->urgent) {
		/* Ahead of what waits: it frees the peer's work, or lets a stream
		 * go on (credit) or stop (cancel) without queueing behind bulk. */
		cds_list_add(&m->link, &p->waitq);
	} else {
		cds_list_add_tail(&m->link, &p->waitq);
		if (m->deadline)
			ml_cancel_start_deadline(p, m);
	}
	ML_STAT_ADD(p->st.queued_msgs, 1);
	arm_session_timer(p);
	ml_peer_mark_dirty(p);
}

static int cut_fragments(struct ml_peer *p, struct ml_msg_out *m)
{
	uint32_t fs = p->frag_size;
	m->nfrags = m->len ? (uint32_t)(((uint64_t)m->len + fs - 1) / fs) : 1;
	if (m->nfrags == 1) {
		m->frags = &m->frag1;
	} else {
		m->frags = m->nfrags <= ML_FRAGS_POOLED ? ml_pool_get(&p->w->frags_pool, 1)
							: calloc(m->nfrags, sizeof(*m->frags));
		if (!m->frags)
			return ML_ENOMEM;
	}
	for (uint32_t i = 0; i < m->nfrags; i++) {
		struct ml_frag *f = &m->frags[i];
		f->msg = m;
		f->offset = i * fs;
		f->len = m->len - f->offset < fs ? m->len - f->offset : fs;
		f->state = ML_FRAG_PENDING;
		cds_list_add_tail(&f->link, &p->fragq);
	}
	return 0;
}

/* A response the requester could not take: it gets an abort with the
 * reason instead of waiting for nothing, and the responder ML_ETOOBIG. */
static void abort_instead(struct ml_peer *p, struct ml_msg_out *m)
{
	char reason[sizeof(m->small)];
	int n = snprintf(reason, sizeof(reason), "response of %u bytes exceeds the requester's limit of %u",
			 m->len, p->peer_max_msg);
	if (n >= (int)sizeof(reason))
		n = (int)sizeof(reason) - 1;
	/* The abort must fit that limit too, however small (it is >= 1). */
	if ((uint32_t)n > p->peer_max_msg)
		n = (int)p->peer_max_msg;
	if (m->iov != m->iov1)
		free(m->iov);
	ml_msg_drop_copy(m); /* the payload it replaces may be in small: dropped before the reason goes there */
	memcpy(m->small, reason, (size_t)n);
	m->copy = m->small;
	m->iov = m->iov1;
	m->iov1[0].iov_base = m->small;
	m->iov1[0].iov_len = (size_t)n;
	m->iovcnt = 1;
	m->len = (uint32_t)n;
	m->wflags |= ML_FLAG_ABORT;
	m->give_up = ML_ETOOBIG;
}

/* A stream's chunk not yet begun: bulk, which waits for the rest
 * (doc/streams.md). Once one fragment of a chunk is on a path, the rest
 * follow without waiting for room: room comes back only when the whole chunk
 * is acknowledged, and stream_path_max may be less than a chunk (or than the
 * share of one left on the only path still up). */
static int is_bulk(const struct ml_frag *f)
{
	return ml_msg_is_chunk(f->msg) && !f->msg->placed;
}

/* A numbered chunk still waits for a path's room. */
static int chunk_waits_for_room(const struct ml_peer *p)
{
	const struct ml_frag *f;
	cds_list_for_each_entry(f, &p->fragq, link)
		if (is_bulk(f))
			return 1;
	return 0;
}

/* Give sequence numbers to waiting messages while the window has room.
 * A stream chunk gets its number only when no other chunk waits for a path:
 * the others stay unnumbered behind it, where a cancel still takes them back
 * (purge_waiting), instead of going out after the cancel because a number,
 * once given, must be delivered. Other messages pass them. */
static void pump(struct ml_peer *p)
{
	struct ml_config *cfg = &p->ctx->cfg;
	uint64_t window = p->txmask + 1;
	if (p->peer_window < window)
		window = p->peer_window;
	if (!p->peer_inc)
		return; /* fragment size and window come with the first handshake */
	int chunk_waits = -1; /* not looked at yet: most flushes carry no chunk */
	struct ml_msg_out *m, *next;
	cds_list_for_each_entry_safe(m, next, &p->waitq, link) {
		if (p->next_seq - p->oldest_unacked >= window)
			break;
		if (p->inflight_bytes && p->inflight_bytes + m->len > cfg->max_inflight_bytes)
			break;
		if (ml_msg_is_chunk(m)) {
			if (chunk_waits < 0)
				chunk_waits = chunk_waits_for_room(p);
			if (chunk_waits)
				continue;
			chunk_waits = 1;
		}
		cds_list_del(&m->link);
		ML_STAT_ADD(p->st.queued_msgs, -1);
		if (m->len > p->peer_max_msg) {
			if (m->kind != ML_KIND_RESPONSE) {
				complete(p, m, ML_ETOOBIG, NULL);
				continue;
			}
			abort_instead(p, m);
		}
		if (m->deadline) {
			double left = m->deadline - ml_mono_now();
			m->deadline_us = left >= 4294.0 ? UINT32_MAX : left > 1e-6 ? (uint32_t)(left * 1e6) : 1;
		}
		if (cut_fragments(p, m)) {
			complete(p, m, ML_ENOMEM, NULL);
			continue;
		}
		m->seq = p->next_seq++;
		p->txring[m->seq & p->txmask] = m;
		set_inflight(p, 1, m->len);
		ML_STAT_ADD(p->st.msgs_sent, 1);
		ML_STAT_ADD(p->st.bytes_sent, m->len);
	}
}

/* How much a path may hold before another stream chunk starts on it: twice
 * what it carries in its RTT without queues (its delivery rate x its lowest
 * heartbeat RTT), as BBR bounds what it has in flight. A stream then keeps
 * the path busy while a request that comes after its chunks finds about one
 * RTT of them ahead of it on the wire. At least ML_STREAM_CAP_MIN, but never
 * more than stream_path_max. */
static uint64_t stream_cap(const struct ml_peer *p, const struct ml_path *path)
{
	double cap = 2 * path->rate_bps * path->rtt_min_s;
	if (cap < ML_STREAM_CAP_MIN)
		cap = ML_STREAM_CAP_MIN;
	if (cap > (double)p->ctx->cfg.stream_path_max)
		cap = (double)p->ctx->cfg.stream_path_max;
	return (uint64_t)cap;
}

/* Hand waiting fragments to paths, as the scheduler decides. A stream chunk
 * starts only on a path holding less than its stream_cap: a request behind
 * it waits for that much at most, and passes waiting chunks in fragq.
 * Returns whether a chunk started (pump may number the next one). */
static int dispatch(struct ml_peer *p)
{
	struct ml_sched_path view[ML_MAX_PATHS];
	uint64_t chunk_cap[ML_MAX_PATHS];
	const struct ml_config *cfg = &p->ctx->cfg;
	for (unsigned i = 0; i < p->npaths; i++) {
		struct ml_path *path = p->paths[i];
		view[i].usable = path->state == ML_PATH_UP && path->greeted;
		view[i].outstanding = path->outstanding;
		view[i].rate_bps = path->rate_bps;
		view[i].rtt_s = path->srtt_s;
		chunk_cap[i] = stream_cap(p, path);
	}
	int bulk_full = 0, chunk_started = 0;
	struct ml_frag *f, *tmp;
	cds_list_for_each_entry_safe(f, tmp, &p->fragq, link) {
		int bulk = is_bulk(f);
		if (bulk && bulk_full)
			continue;
		for (unsigned i = 0; i < p->npaths; i++)
			view[i].cap = bulk ? chunk_cap[i] : cfg->path_max_outstanding;
		int i = ml_sched_pick(view, p->npaths, f->len, cfg->sched_policy, &p->rr_cursor);
		if (i < 0) {
			if (!bulk)
				break; /* every path is full: so it is for bulk */
			bulk_full = 1;
			continue;
		}
		cds_list_del(&f->link);
		ml_path_queue_frag(p->paths[i], f);
		chunk_started |= bulk;
		f->msg->placed = 1;
		view[i].outstanding += f->len;
	}
	return chunk_started;
}

static void send_ack(struct ml_peer *p)
{
	struct ml_ack a;
	uint8_t buf[16 + 16 * ML_WIRE_SACK_MAX];
	struct ml_path *best = NULL;

	/* Any path will do (rule 4); the working one that delivers soonest,
	 * by the scheduler's estimate (a slow path with little on it is still
	 * slow). Without one, a suspect or probation path may still get the ack
	 * through: it is all the peer may be waiting for. */
	double best_t = 0;
	for (unsigned i = 0; i < p->npaths; i++) {
		struct ml_path *path = p->paths[i];
		if (!path->greeted || path->fd < 0)
			continue;
		int up = path->state == ML_PATH_UP, best_up = best && best->state == ML_PATH_UP;
		double t = path->srtt_s / 2 + (double)path->outstanding / path->rate_bps;
		if (!best || (up && !best_up) || (up == best_up && t < best_t)) {
			best = path;
			best_t = t;
		}
	}
	if (!best)
		return;
	ml_rxwin_ack(&p->rx, &a);
	if (ml_path_send_ctrl(best, ML_FT_ACK, buf, (uint32_t)ml_ack_encode(buf, &a)) == 0)
		p->ack_due = 0;
}

void ml_peer_flush(struct ml_peer *p)
{
	do
		pump(p);
	while (dispatch(p));
	if (p->ack_due)
		send_ack(p);
}

/* Fragments a path gave back without having written them: first in line. */
void ml_peer_take_back(struct ml_peer *p, struct cds_list_head *frags)
{
	if (cds_list_empty(frags))
		return;
	cds_list_splice(frags, &p->fragq);
	ml_peer_mark_dirty(p);
}

void ml_peer_on_path_up(struct ml_peer *p)
{
	p->paths_up++;
	ML_STAT_SET(p->st.paths_up, p->paths_up);
	ev_timer_stop(p->w->loop, &p->session_timer);
	/* A new path may be the only way our last ack can still get through. */
	if (p->rx.highest)
		p->ack_due = 1;
	ml_peer_mark_dirty(p);
}

void ml_peer_on_path_down(struct ml_peer *p)
{
	p->paths_up--;
	ML_STAT_SET(p->st.paths_up, p->paths_up);
	if (!p->paths_up && !p->w->stopped)
		for (unsigned i = 0; i < p->npaths && !p->paths_up; i++)
			ml_path_waive_damping(p->paths[i]);
	/* Acks that were on the failed path are lost: say it all again. */
	if (p->rx.highest)
		p->ack_due = 1;
	arm_session_timer(p);
	ml_peer_mark_dirty(p);
}

/* ---- receiving ---- */

static void deliver(struct ml_peer *p, const struct ml_frame_hdr *h, const void *data, uint32_t len)
{
	struct ml_config *cfg = &p->ctx->cfg;
	struct ml_msg msg = { .tag = h->tag, .data = data, .len = len };
	unsigned kind = h->flags & ML_FLAG_KIND_MASK;

	/* A peer that sends requests and never takes the answers (it stopped
	 * reading) would make us hold every one of them. */
	if (kind == ML_KIND_REQUEST && p->requests_held >= cfg->max_open_requests) {
		over_limit(p, "%u requests received and not yet answered (max_open_requests)",
			   p->requests_held);
		return;
	}
	ml_rxwin_mark(&p->rx, h->seq);
	ML_STAT_ADD(p->st.msgs_recv, 1);
	ML_STAT_ADD(p->st.bytes_recv, len);
	p->ack_due = 1;
	ml_peer_mark_dirty(p);

	if (kind == ML_KIND_REQUEST) {
		struct ml_request *req = ml_pool_get(&p->w->req_pool, 1); /* zeroed (stream fields: 0) */
		if (!req) {
			ml_log(p->ctx, ML_LOG_ERR, "peer %u: out of memory for request %llu", p->node_id,
			       (unsigned long long)h->seq);
			return;
		}
		cds_list_add_tail(&req->link, &p->open_requests);
		p->requests_held++;
		req->peer = p;
		req->seq = h->seq;
		req->tag = h->tag;
		req->session_id = p->session_id;
		req->deadline = h->deadline_us ? ml_mono_now() + h->deadline_us / 1e6 : INFINITY;
		req->canceled = 0;
		if (ml_cancel_arrived_early(p, h->seq)) {
			/* Its requester gave up before it got here: nobody waits for it. */
			req->canceled = 1;
			ml_request_abort(req, "canceled before delivery", NULL, NULL);
		} else if (h->flags & ML_FLAG_STREAM) {
			ml_stream_open_request(p, req, &msg);
		} else if (cfg->on_request)
			cfg->on_request(cfg->cb_arg, p, req, &msg);
		else
			ml_respond(req, NULL, 0, 0, NULL, NULL); /* nobody serves: empty answer */
	} else if (kind == ML_KIND_RESPONSE) {
		struct ml_msg_out *m = await_take(p, h->ref);
		if (!m) {
			/* The answer can overtake the ack of its request: it proves
			 * delivery just as well. */
			struct ml_msg_out *r = h->ref ? p->txring[h->ref & p->txmask] : NULL;
			if (r && r->seq == h->ref && !r->acked && r->kind == ML_KIND_REQUEST) {
				msg_acked(p, r);
				advance_oldest(p);
				m = await_take(p, h->ref);
			}
		}
		if (m && (m->wflags & ML_FLAG_STREAM))
			ml_stream_answered(p, m, h->flags, &msg); /* accepted or refused */
		else if (m)
			complete(p, m, (h->flags & ML_FLAG_ABORT) ? ML_EABORTED : ML_OK, &msg);
		else
			ml_log(p->ctx, ML_LOG_DEBUG, "peer %u: response to unknown request %llu dropped",
			       p->node_id, (unsigned long long)h->ref);
	} else if (h->flags & ML_FLAG_CANCEL) {
		ml_cancel_received(p, h->ref);
	} else if (h->flags & ML_FLAG_STREAM) {
		ml_stream_received(p, h, data, len);
	} else if (cfg->on_message) {
		cfg->on_message(cfg->cb_arg, p, &msg);
	}
}

/* A compressed message is expanded before anyone sees it. -1: it does not
 * expand (the frame breaks the session's rules). */
static int deliver_expanded(struct ml_peer *p, const struct ml_frame_hdr *h, const void *data,
			    uint32_t len)
{
	unsigned codec = ML_FLAG_CODEC(h->flags);
	if (!codec) {
		deliver(p, h, data, len);
		return 0;
	}
	const char *why;
	uint32_t n;
	void *x = ml_codec_expand((int)codec, data, len, p->ctx->cfg.max_msg_size, &n, &why);
	if (!x) {
		ml_log(p->ctx, ML_LOG_WARN, "peer %u: message %llu: %s", p->node_id,
		       (unsigned long long)h->seq, why);
		return -1;
	}
	ML_STAT_ADD(p->st.expanded_msgs, 1);
	deliver(p, h, x, n);
	free(x);
	return 0;
}

/* A reassembly for a new fragmented message: a finished one's buffers if
 * they fit (the smallest that does), else new ones. A bulk receiver would
 * otherwise get each message's buffer from malloc, which hands large blocks
 * back to the kernel, and fault it in page by page (doc/performance.md). */
static struct ml_reasm *reasm_take(struct ml_peer *p, uint64_t seq, uint32_t msg_len)
{
	int best = -1;
	for (unsigned i = 0; i < p->n_reasm_spare; i++)
		if (p->reasm_spare[i]->cap >= msg_len &&
		    (best < 0 || p->reasm_spare[i]->cap < p->reasm_spare[best]->cap))
			best = (int)i;
	if (best >= 0 && ml_reasm_reuse(p->reasm_spare[best], seq, msg_len, p->frag_size) == 0) {
		struct ml_reasm *r = p->reasm_spare[best];
		p->reasm_spare[best] = p->reasm_spare[--p->n_reasm_spare];
		p->reasm_spare_bytes -= r->cap;
		return r;
	}
	struct ml_reasm *r = malloc(sizeof(*r));
	if (!r || ml_reasm_init(r, seq, msg_len, p->frag_size)) {
		free(r);
		return NULL;
	}
	return r;
}

static void reasm_free_now(struct ml_reasm *r)
{
	ml_tp_mem_del(r->mem);
	ml_reasm_free(r);
	free(r);
}

/* A finished reassembly: kept for the next, within bounds, or freed. What
 * is kept stays within max_reasm_bytes too, so that a peer can make us hold
 * at most twice what its reassemblies may. */
static void reasm_give(struct ml_peer *p, struct ml_reasm *r)
{
	if (ml_zc_reasm_keep(p, r))
		return; /* a READ still writes into it (the fragment came as DATA too) */
	uint64_t kept = p->reasm_spare_bytes + r->cap;
	if (p->n_reasm_spare < ML_REASM_SPARE && kept <= ML_REASM_SPARE_BYTES &&
	    kept <= p->ctx->cfg.max_reasm_bytes) {
		p->reasm_spare[p->n_reasm_spare++] = r; /* registered or not, as it is */
		p->reasm_spare_bytes += r->cap;
		return;
	}
	reasm_free_now(r);
}

void ml_peer_reasm_destroy(struct ml_peer *p, struct ml_reasm *r)
{
	if (!ml_zc_reasm_keep(p, r)) /* else RDMA READs still write into it: freed when they end */
		reasm_free_now(r);
}

int ml_peer_frag_admit(struct ml_peer *p, const struct ml_frame_hdr *h)
{
	p->w->active = 1;
	if (h->payload_len > p->frag_size)
		return -1; /* 6.3: a longer message must come in fragments of at most F */
	unsigned codec = ML_FLAG_CODEC(h->flags);
	if (codec && !(p->ctx->cfg.accept_codecs & (1u << codec))) {
		ml_log(p->ctx, ML_LOG_WARN, "peer %u: a message compressed with codec %u, which this "
		       "node did not accept", p->node_id, codec);
		return -1;
	}
	switch (ml_rxwin_check(&p->rx, h->seq)) {
	case ML_RXWIN_OUT:
		return -1;
	case ML_RXWIN_DUP:
		/* Its ack may have died with a path: acknowledge again. */
		ML_STAT_ADD(p->st.dup_frames, 1);
		p->ack_due = 1;
		ml_peer_mark_dirty(p);
		return 0;
	case ML_RXWIN_NEW:
		break;
	}
	return 1;
}

struct ml_reasm *ml_peer_reasm_get(struct ml_peer *p, const struct ml_frame_hdr *h, int *rc)
{
	struct ml_reasm **slot = &p->reasm[h->seq & (p->rx.size - 1)];
	*rc = -1;
	if (*slot)
		return (*slot)->seq == h->seq ? *slot : NULL;
	struct ml_config *cfg = &p->ctx->cfg;
	/* A message's first fragment reserves all of it. Fragments that
	 * never complete (a peer sending one small last fragment of many
	 * large messages) must not make us reserve without end. */
	if (p->reasm_msgs >= cfg->max_reasm_msgs) {
		*rc = over_limit(p, "%u messages in reassembly (max_reasm_msgs)", p->reasm_msgs);
		return NULL;
	}
	if (p->reasm_bytes + h->msg_len > cfg->max_reasm_bytes) {
		*rc = over_limit(p, "%llu bytes in reassembly and %u more (max_reasm_bytes %llu)",
				 (unsigned long long)p->reasm_bytes, h->msg_len,
				 (unsigned long long)cfg->max_reasm_bytes);
		return NULL;
	}
	uint64_t all = __atomic_add_fetch(&p->ctx->reasm_bytes, h->msg_len, __ATOMIC_RELAXED);
	if (all > cfg->max_ctx_reasm_bytes) {
		__atomic_sub_fetch(&p->ctx->reasm_bytes, h->msg_len, __ATOMIC_RELAXED);
		*rc = over_limit(p, "every peer's reassembly would reach %llu bytes "
				 "(max_ctx_reasm_bytes %llu)", (unsigned long long)all,
				 (unsigned long long)cfg->max_ctx_reasm_bytes);
		return NULL;
	}
	struct ml_reasm *r = reasm_take(p, h->seq, h->msg_len);
	if (!r) {
		__atomic_sub_fetch(&p->ctx->reasm_bytes, h->msg_len, __ATOMIC_RELAXED);
		return NULL;
	}
	*slot = r;
	p->reasm_bytes += h->msg_len;
	p->reasm_msgs++;
	return r;
}

int ml_peer_reasm_done(struct ml_peer *p, const struct ml_frame_hdr *h, struct ml_reasm *r)
{
	p->reasm[r->seq & (p->rx.size - 1)] = NULL;
	p->reasm_bytes -= r->msg_len;
	p->reasm_msgs--;
	__atomic_sub_fetch(&p->ctx->reasm_bytes, r->msg_len, __ATOMIC_RELAXED);
	int rc = deliver_expanded(p, h, r->buf, r->msg_len);
	reasm_give(p, r);
	return rc;
}

int ml_peer_on_data(struct ml_peer *p, struct ml_path *path, const struct ml_frame_hdr *h,
		    const uint8_t *payload)
{
	(void)path;
	int rc = ml_peer_frag_admit(p, h);
	if (rc <= 0)
		return rc;
	struct ml_reasm **slot = &p->reasm[h->seq & (p->rx.size - 1)];
	/* A whole message in one frame goes straight to the application, but
	 * not while fragments of this number are held: fragments that named a
	 * longer msg_len break the rules (delivering would leave their slot
	 * behind, to refuse the number that maps there next); a reassembly of
	 * this very message is zero copy's (its READ died with a path, and the
	 * fragment came again as DATA): it goes in there. */
	if (h->payload_len == h->msg_len && !*slot)
		return deliver_expanded(p, h, payload, h->payload_len);
	if (h->payload_len == h->msg_len && ((*slot)->seq != h->seq || (*slot)->msg_len != h->msg_len))
		return -1;
	if (!*slot && h->msg_len <= p->frag_size)
		return -1;
	struct ml_reasm *r = ml_peer_reasm_get(p, h, &rc);
	if (!r)
		return rc;
	switch (ml_reasm_check(r, h->msg_len, h->offset, h->payload_len)) {
	case ML_REASM_BAD:
		return -1;
	case ML_REASM_DUP:
		ML_STAT_ADD(p->st.dup_frames, 1);
		return 0;
	case ML_REASM_NEW:
		break;
	}
	if (ml_reasm_put(r, h->offset, payload, h->payload_len))
		return ml_peer_reasm_done(p, h, r);
	return 0;
}
