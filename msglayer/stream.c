/*
 * stream.c - bulk streams on top of the session (doc/streams.md).
 *
 * A stream is opened by a request (STREAM flag) and accepted by its
 * response; then chunks flow one way. Each chunk is a one-way message of its
 * own (STREAM flag, ref = chunk number), so resends, acks and path failures
 * are the session's business; this layer restores the order (a ring of
 * `window` chunks that arrived early), grants credit in chunks, and runs the
 * cancel and end handshakes with small control records (ref = 0).
 *
 * Ownership: a stream's state belongs to its peer's worker; what application
 * threads read or change (credit, the next chunk number, the end) is under
 * s->mu, which also carries the blocking wrappers' condition variable. The
 * handle is reference counted: the application's reference (ml_stream_release),
 * the library's until on_end has run, and one per message in flight that
 * names it.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WIRE_ACCEPTOR (1ull << 63) /* tag bit: sent by the stream's acceptor */
#define OPEN_REC_LEN 24
#define ACCEPT_REC_LEN 16
#define CTRL_REC_LEN 16
#define REFUSE_REC_LEN 4
#define REASON_MAX 120

enum { CTRL_CREDIT = 1, CTRL_CANCEL = 2, CTRL_END = 3, CTRL_END_ACK = 4 };
enum { ST_OPENING = 0, ST_OPEN, ST_ENDED };

struct held {
	uint8_t *data; /* NULL: slot free */
	uint32_t len;
};

struct ml_stream {
	struct ml_peer *peer;
	struct cds_list_head link; /* peer->streams while registered */
	int refs;                  /* atomic */
	uint64_t id;               /* the opener's number */
	int opener, sending;
	struct ml_stream_cbs cbs;
	void *arg;
	uint32_t my_chunk_max, my_window;

	/* under mu: read by application threads */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state;
	int status, on_end_ran;
	char reason[REASON_MAX + 1];
	uint32_t chunk_max;        /* negotiated */
	uint64_t next_chunk;       /* sender: the number the next chunk gets */
	uint64_t credit;           /* sender: highest number it may send */
	int want_room, closed;

	/* worker only */
	uint64_t pending;          /* sender: chunks submitted, not completed */
	int cancel_wanted;         /* canceled while opening: acted on when answered */
	char cancel_reason[REASON_MAX + 1];
	uint64_t delivered, granted; /* receiver */
	int end_seen, finishing, finish_asked;
	uint64_t end_last;
	struct held *ring;
	uint8_t rec[OPEN_REC_LEN]; /* the open or accept record we send */
};

struct ml_cmd_stream {
	struct ml_cmd cmd; /* first: ctx.c casts */
	int op;
	struct ml_stream *s;
	struct ml_msg_out *m;
	uint64_t value;
	char reason[REASON_MAX + 1];
};
enum { OP_OPEN = 1, OP_ACCEPT, OP_CHUNK, OP_CLOSE, OP_FINISH, OP_CANCEL };

/* A chunk's completion: the application's callback, then the stream's count. */
struct chunk_ctx {
	struct ml_stream *s;
	uint32_t len;
	ml_send_cb cb;
	void *arg;
};

static void stream_put(struct ml_stream *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (s->ring)
		for (uint32_t i = 0; i < s->my_window; i++)
			free(s->ring[i].data);
	free(s->ring);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void stream_get(struct ml_stream *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void ml_stream_release_slot(struct ml_peer *p)
{
	__atomic_sub_fetch(&p->nstreams, 1, __ATOMIC_SEQ_CST);
}

static int take_slot(struct ml_peer *p)
{
	if (__atomic_add_fetch(&p->nstreams, 1, __ATOMIC_SEQ_CST) > p->ctx->cfg.max_streams) {
		__atomic_sub_fetch(&p->nstreams, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&p->st.streams_refused, 1, __ATOMIC_RELAXED);
		return ML_ELIMIT;
	}
	return 0;
}

static struct ml_stream *stream_new(struct ml_peer *p, const struct ml_stream_cbs *cbs, void *arg)
{
	const struct ml_config *cfg = &p->ctx->cfg;
	struct ml_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ring = calloc(cfg->stream_window, sizeof(*s->ring));
	if (!s->ring) {
		free(s);
		return NULL;
	}
	s->peer = p;
	s->refs = 2; /* the application's and the library's (until on_end) */
	if (cbs)
		s->cbs = *cbs;
	s->arg = arg;
	s->my_chunk_max = cfg->stream_chunk_max;
	s->my_window = cfg->stream_window;
	s->next_chunk = 1;
	CDS_INIT_LIST_HEAD(&s->link);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

static uint64_t wire_tag(const struct ml_stream *s)
{
	return s->id | (s->opener ? 0 : WIRE_ACCEPTOR);
}

static struct ml_stream *lookup(struct ml_peer *p, uint64_t tag)
{
	int ours = (tag & WIRE_ACCEPTOR) != 0; /* the acceptor sent it: we opened it */
	uint64_t id = tag & ~WIRE_ACCEPTOR;
	struct ml_stream *s;
	cds_list_for_each_entry(s, &p->streams, link)
		if (s->id == id && s->opener == ours)
			return s;
	return NULL;
}

static int is_ended(struct ml_stream *s)
{
	pthread_mutex_lock(&s->mu);
	int ended = s->state == ST_ENDED;
	pthread_mutex_unlock(&s->mu);
	return ended;
}

static int is_closed(struct ml_stream *s)
{
	pthread_mutex_lock(&s->mu);
	int closed = s->closed;
	pthread_mutex_unlock(&s->mu);
	return closed;
}

/* ---- the end ---- */

static void maybe_run_on_end(struct ml_stream *s)
{
	/* Last of all callbacks: after every chunk's own completion. */
	if (s->state != ST_ENDED || s->pending || s->on_end_ran)
		return;
	if (s->cbs.on_end)
		s->cbs.on_end(s->arg, s, s->status, s->reason);
	pthread_mutex_lock(&s->mu);
	s->on_end_ran = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	stream_put(s);
}

/* Chunks and records of s still waiting for a sequence number never leave:
 * a stream that ended stops at once, and its chunks' memory is free now. */
static void purge_waiting(struct ml_peer *p, struct ml_stream *s, int status)
{
	struct ml_msg_out *m, *tmp;
	cds_list_for_each_entry_safe(m, tmp, &p->waitq, link) {
		if (m->stream != s || m->kind != ML_KIND_ONEWAY)
			continue;
		cds_list_del(&m->link);
		ML_STAT_ADD(p->st.queued_msgs, -1);
		ml_peer_complete(p, m, status, NULL);
	}
}

static void end_stream(struct ml_stream *s, int status, const char *reason)
{
	struct ml_peer *p = s->peer;
	if (s->state == ST_ENDED)
		return;
	stream_get(s); /* the purge may run the last callbacks that hold it */
	pthread_mutex_lock(&s->mu);
	s->state = ST_ENDED;
	s->status = status;
	snprintf(s->reason, sizeof(s->reason), "%s", reason && *reason ? reason : ml_strerror(status));
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (!cds_list_empty(&s->link)) {
		cds_list_del_init(&s->link);
		ml_stream_release_slot(p);
	}
	ML_STAT_ADD(*(status == ML_OK ? &p->st.streams_done : &p->st.streams_failed), 1);
	if (status != ML_OK)
		purge_waiting(p, s, status);
	for (uint32_t i = 0; i < s->my_window; i++) {
		free(s->ring[i].data);
		s->ring[i].data = NULL;
	}
	maybe_run_on_end(s);
	stream_put(s);
}

/* ---- sending our own messages ---- */

static void ctrl_done(void *arg, int status)
{
	struct ml_stream *s = arg;
	(void)status; /* a record lost with the session: the session's end ends the stream */
	stream_put(s);
}

static void end_ack_done(void *arg, int status)
{
	struct ml_stream *s = arg;
	/* The sender has our confirmation: the receiver's clean end. */
	if (status == ML_OK)
		end_stream(s, ML_OK, "");
	stream_put(s);
}

static void send_ctrl(struct ml_stream *s, uint8_t type, int32_t status, uint64_t value,
		      const char *reason, ml_send_cb done)
{
	struct ml_peer *p = s->peer;
	uint8_t rec[CTRL_REC_LEN + REASON_MAX];
	size_t rlen = reason ? strnlen(reason, REASON_MAX) : 0;
	memset(rec, 0, CTRL_REC_LEN);
	rec[0] = type;
	ml_put32(rec + 4, (uint32_t)status);
	ml_put64(rec + 8, value);
	memcpy(rec + CTRL_REC_LEN, reason ? reason : "", rlen);
	struct ml_buf b = ml_buf_plain(rec, CTRL_REC_LEN + rlen);
	int err;
	struct ml_msg_out *m = ml_msg_build(p, &b, 1, ML_SEND_COPY, &err);
	if (!m) {
		/* The peer may wait for a record that never comes: end here and say so. */
		ml_log(p->ctx, ML_LOG_ERR, "peer %u: stream %llu: no memory for a control record",
		       p->node_id, (unsigned long long)s->id);
		if (type != CTRL_CANCEL)
			end_stream(s, ML_ENOMEM, "no memory for a stream control record");
		return;
	}
	ml_msg_admit(p, m->len, 1);
	m->kind = ML_KIND_ONEWAY;
	m->wflags |= ML_FLAG_STREAM; /* (after a codec ml_msg_build chose) */
	m->tag = wire_tag(s);
	m->urgent = 1;
	m->stream = type == CTRL_CANCEL ? NULL : s; /* a cancel must outlive the purge */
	m->scb = done ? done : ctrl_done;
	m->arg = s;
	stream_get(s);
	ml_peer_submit(p, m);
}

/* End here with status and tell the peer, which ends with ML_EABORTED. */
static void cancel_here(struct ml_stream *s, int status, const char *reason)
{
	if (s->state == ST_ENDED)
		return;
	const char *text = reason && *reason ? reason : ml_strerror(status);
	if (status == ML_EPROTO)
		ml_log(s->peer->ctx, ML_LOG_WARN, "peer %u: stream %llu: %s", s->peer->node_id,
		       (unsigned long long)s->id, text);
	stream_get(s);
	end_stream(s, status, text); /* first: its waiting chunks go, the cancel jumps the queue */
	send_ctrl(s, CTRL_CANCEL, status, 0, text, NULL);
	stream_put(s);
}

static void grant_credit(struct ml_stream *s)
{
	/* In halves of the window: one record per window/2 chunks, and the
	 * sender never runs dry while the receiver keeps up. */
	if (s->state != ST_OPEN || s->end_seen || s->granted - s->delivered > s->my_window / 2)
		return;
	s->granted = s->delivered + s->my_window;
	send_ctrl(s, CTRL_CREDIT, 0, s->granted, NULL, NULL);
}

static void do_finish(struct ml_stream *s)
{
	if (s->state != ST_OPEN || s->finishing)
		return;
	s->finishing = 1;
	send_ctrl(s, CTRL_END_ACK, 0, s->end_last, NULL, end_ack_done);
}

static void try_finish(struct ml_stream *s)
{
	if (s->state != ST_OPEN || !s->end_seen || s->delivered != s->end_last || s->finish_asked)
		return;
	s->finish_asked = 1;
	if (s->cbs.on_finish)
		s->cbs.on_finish(s->arg, s);
	else
		do_finish(s);
}

/* ---- receiving chunks ---- */

static void deliver_chunk(struct ml_stream *s, const void *data, uint32_t len)
{
	struct ml_peer *p = s->peer;
	struct ml_msg msg = { .tag = ++s->delivered, .data = data, .len = len };
	ML_STAT_ADD(p->st.stream_chunks_recv, 1);
	ML_STAT_ADD(p->st.stream_bytes_recv, len);
	if (s->cbs.on_chunk)
		s->cbs.on_chunk(s->arg, s, &msg);
}

/* Hand over what is in order: chunks held in the ring, then credit. */
static void drain(struct ml_stream *s)
{
	stream_get(s); /* on_chunk may cancel and release */
	while (s->state == ST_OPEN) {
		struct held *h = &s->ring[s->delivered % s->my_window];
		if (!h->data)
			break;
		uint8_t *d = h->data;
		h->data = NULL;
		deliver_chunk(s, d, h->len);
		free(d);
	}
	grant_credit(s);
	try_finish(s);
	stream_put(s);
}

static void on_chunk_msg(struct ml_stream *s, uint64_t n, const void *data, uint32_t len)
{
	if (s->sending) {
		cancel_here(s, ML_EPROTO, "a chunk came to the sending side");
		return;
	}
	if (n > s->granted || len > s->my_chunk_max || (s->end_seen && n > s->end_last)) {
		char why[REASON_MAX];
		snprintf(why, sizeof(why), "chunk %llu of %u bytes beyond credit %llu or limit %u",
			 (unsigned long long)n, len, (unsigned long long)s->granted, s->my_chunk_max);
		cancel_here(s, ML_EPROTO, why);
		return;
	}
	if (n <= s->delivered)
		return; /* (the session delivers each message once; defensive) */
	if (n == s->delivered + 1 && s->state == ST_OPEN) {
		deliver_chunk(s, data, len); /* in order: no copy */
		drain(s);
		return;
	}
	/* Early: it overtook a lower one on another path, or the accept. */
	struct held *h = &s->ring[(n - 1) % s->my_window];
	if (h->data)
		return;
	h->data = malloc(len ? len : 1);
	if (!h->data) {
		cancel_here(s, ML_ENOMEM, "no memory to hold a chunk that came early");
		return;
	}
	memcpy(h->data, data, len);
	h->len = len;
}

static void on_ctrl_msg(struct ml_stream *s, const uint8_t *rec, uint32_t len)
{
	if (len < CTRL_REC_LEN) {
		cancel_here(s, ML_EPROTO, "stream control record too short");
		return;
	}
	uint64_t value = ml_get64(rec + 8);
	switch (rec[0]) {
	case CTRL_CREDIT:
		if (!s->sending) {
			cancel_here(s, ML_EPROTO, "credit came to the receiving side");
			return;
		}
		pthread_mutex_lock(&s->mu);
		int room = value > s->credit && s->want_room;
		if (value > s->credit)
			s->credit = value;
		if (room)
			s->want_room = 0;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		if (room && s->cbs.on_room && s->state == ST_OPEN)
			s->cbs.on_room(s->arg, s);
		break;
	case CTRL_CANCEL: {
		char why[REASON_MAX + 1];
		uint32_t n = len - CTRL_REC_LEN < REASON_MAX ? len - CTRL_REC_LEN : REASON_MAX;
		memcpy(why, rec + CTRL_REC_LEN, n);
		why[n] = 0;
		end_stream(s, ML_EABORTED, n ? why : "canceled by the peer");
		break;
	}
	case CTRL_END:
		if (s->sending || s->end_seen || value < s->delivered || value > s->granted) {
			cancel_here(s, ML_EPROTO, "stream end out of place");
			return;
		}
		s->end_seen = 1;
		s->end_last = value;
		try_finish(s);
		break;
	case CTRL_END_ACK:
		if (!s->sending || !is_closed(s)) {
			cancel_here(s, ML_EPROTO, "end confirmed before the sender closed");
			return;
		}
		end_stream(s, ML_OK, "");
		break;
	default:
		cancel_here(s, ML_EPROTO, "unknown stream control record");
	}
}

void ml_stream_received(struct ml_peer *p, const struct ml_frame_hdr *h, const void *data,
			uint32_t len)
{
	struct ml_stream *s = lookup(p, h->tag);
	if (!s) {
		/* Ended here already (canceled, finished): what was in flight is moot. */
		ml_log(p->ctx, ML_LOG_DEBUG, "peer %u: stream message for %llx (no such stream) dropped",
		       p->node_id, (unsigned long long)h->tag);
		return;
	}
	stream_get(s); /* the application's callbacks may cancel and release it */
	if (h->ref)
		on_chunk_msg(s, h->ref, data, len);
	else
		on_ctrl_msg(s, data, len);
	stream_put(s);
}

/* The session ended (peer restart, timeout, declared down, context closing):
 * so do its streams. An open still waiting for its answer is left to the
 * request: it fails with the session, or goes out in the next one. */
void ml_stream_fail_all(struct ml_peer *p, int status)
{
	struct ml_stream *s, *tmp;
	cds_list_for_each_entry_safe(s, tmp, &p->streams, link)
		if (s->state != ST_OPENING)
			end_stream(s, status, status == ML_ECANCELED ? "context destroyed" : NULL);
}

/* ---- opening ---- */

static void open_done(void *arg, int status, const struct ml_msg *resp)
{
	struct ml_stream *s = arg;
	if (s->state == ST_OPENING) {
		if (status != ML_OK) {
			char why[REASON_MAX + 1] = "";
			if (resp && resp->len)
				snprintf(why, sizeof(why), "%.*s", (int)(resp->len < REASON_MAX ? resp->len : REASON_MAX),
					 (const char *)resp->data);
			end_stream(s, status, why);
		} else if (s->cancel_wanted) {
			pthread_mutex_lock(&s->mu);
			s->state = ST_OPEN;
			pthread_mutex_unlock(&s->mu);
			cancel_here(s, ML_ECANCELED, s->cancel_reason);
		} else {
			pthread_mutex_lock(&s->mu);
			s->state = ST_OPEN;
			int room = s->want_room; /* a send refused while opening */
			s->want_room = 0;
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
			if (s->cbs.on_open)
				s->cbs.on_open(s->arg, s, resp);
			if (room && s->cbs.on_room && s->state == ST_OPEN)
				s->cbs.on_room(s->arg, s);
			if (!s->sending)
				drain(s); /* chunks that overtook the answer */
		}
	}
	stream_put(s);
}

/* The answer to one of our opens (the session calls this instead of the
 * request's completion): accepted, refused by the application, or refused
 * by the peer's library (ABORT + STREAM: a status and a reason). */
void ml_stream_answered(struct ml_peer *p, struct ml_msg_out *m, unsigned flags,
			const struct ml_msg *msg)
{
	struct ml_stream *s = m->arg;
	struct ml_msg rest = *msg;
	int status = ML_OK;
	const uint8_t *d = msg->data;
	if ((flags & ML_FLAG_ABORT) && (flags & ML_FLAG_STREAM)) {
		int32_t st = msg->len >= REFUSE_REC_LEN ? (int32_t)ml_get32(d) : ML_EPROTO;
		status = st < 0 ? st : ML_EPROTO;
		rest.data = d + (msg->len >= REFUSE_REC_LEN ? REFUSE_REC_LEN : 0);
		rest.len = msg->len >= REFUSE_REC_LEN ? msg->len - REFUSE_REC_LEN : 0;
		if (status == ML_ELIMIT)
			__atomic_fetch_add(&p->st.streams_refused, 1, __ATOMIC_RELAXED);
	} else if (flags & ML_FLAG_ABORT) {
		status = ML_EABORTED;
	} else if (!(flags & ML_FLAG_STREAM)) {
		static const char why[] = "the peer answered the open without accepting the stream";
		status = ML_EABORTED;
		if (!msg->len) {
			rest.data = why;
			rest.len = sizeof(why) - 1;
		}
	} else if (msg->len < ACCEPT_REC_LEN) {
		static const char why[] = "stream accept record too short";
		status = ML_EPROTO;
		rest.data = why;
		rest.len = sizeof(why) - 1;
	} else {
		uint32_t peer_chunk = ml_get32(d), peer_window = ml_get32(d + 4);
		pthread_mutex_lock(&s->mu);
		s->chunk_max = peer_chunk < s->my_chunk_max ? peer_chunk : s->my_chunk_max;
		if (s->sending)
			s->credit = peer_window;
		pthread_mutex_unlock(&s->mu);
		rest.data = d + ACCEPT_REC_LEN;
		rest.len = msg->len - ACCEPT_REC_LEN;
		if (s->chunk_max < 1 || (s->sending && peer_window < 1)) {
			static const char why[] = "stream accepted with no room for a chunk";
			status = ML_EPROTO;
			rest.data = why;
			rest.len = sizeof(why) - 1;
		}
	}
	ml_peer_complete(p, m, status, &rest);
}

/* Refuse an open in the library's name: the opener ends with status. */
static void refuse(struct ml_request *req, int32_t status, const char *reason)
{
	uint8_t rec[REFUSE_REC_LEN + REASON_MAX];
	size_t rlen = strnlen(reason, REASON_MAX);
	ml_put32(rec, (uint32_t)status);
	memcpy(rec + REFUSE_REC_LEN, reason, rlen);
	struct ml_buf b = ml_buf_plain(rec, REFUSE_REC_LEN + rlen);
	int err;
	struct ml_msg_out *m = ml_msg_build(req->peer, &b, 1, ML_SEND_COPY, &err);
	if (!m) {
		ml_request_abort(req, reason, NULL, NULL);
		return;
	}
	ml_msg_admit(req->peer, m->len, 1);
	m->kind = ML_KIND_RESPONSE;
	m->wflags |= ML_FLAG_ABORT | ML_FLAG_STREAM;
	m->tag = req->tag;
	m->ref = req->seq;
	m->req = req;
	ml_peer_submit(req->peer, m);
}

void ml_stream_open_request(struct ml_peer *p, struct ml_request *req, const struct ml_msg *msg)
{
	struct ml_config *cfg = &p->ctx->cfg;
	const uint8_t *d = msg->data;
	if (msg->len < OPEN_REC_LEN || (d[8] != ML_STREAM_OUT && d[8] != ML_STREAM_IN) ||
	    ml_get32(d + 12) < 1 || (d[8] == ML_STREAM_IN && ml_get32(d + 16) < 1)) {
		refuse(req, ML_EPROTO, "malformed stream open record");
		return;
	}
	if (!cfg->on_stream) {
		ml_request_abort(req, "this node takes no streams (no on_stream handler)", NULL, NULL);
		return;
	}
	if (take_slot(p)) {
		char why[REASON_MAX];
		snprintf(why, sizeof(why), "node %u: limit of %u open streams per peer reached",
			 cfg->node_id, cfg->max_streams);
		refuse(req, ML_ELIMIT, why);
		return;
	}
	req->stream_dir = d[8];
	req->stream_slot = 1;
	req->stream_chunk_max = ml_get32(d + 12);
	req->stream_window = ml_get32(d + 16);
	struct ml_msg app = { .tag = ml_get64(d), .data = d + OPEN_REC_LEN, .len = msg->len - OPEN_REC_LEN };
	cfg->on_stream(cfg->cb_arg, p, req, req->stream_dir, &app);
}

static void accept_done(void *arg, int status)
{
	struct ml_stream *s = arg;
	if (status != ML_OK)
		end_stream(s, status, "the answer to the open did not reach the opener");
	stream_put(s);
}

/* ---- commands: every change of a stream runs on its worker ---- */

void ml_stream_run_cmd(struct ml_cmd_stream *c)
{
	struct ml_stream *s = c->s;
	struct ml_peer *p = s->peer;
	switch (c->op) {
	case OP_OPEN:
	case OP_ACCEPT:
		/* Known before the message goes: the peer's first record may come
		 * back as soon as it is out. */
		if (!p->w->stopped)
			cds_list_add(&s->link, &p->streams);
		else
			ml_stream_release_slot(p);
		ml_peer_submit(p, c->m);
		break;
	case OP_CHUNK:
		if (s->state == ST_ENDED) {
			ml_peer_complete(p, c->m, s->status, NULL);
			break;
		}
		s->pending++;
		ml_peer_submit(p, c->m);
		break;
	case OP_CLOSE:
		if (s->state != ST_ENDED)
			send_ctrl(s, CTRL_END, 0, c->value, NULL, NULL);
		break;
	case OP_FINISH:
		if (s->finish_asked)
			do_finish(s);
		break;
	case OP_CANCEL:
		if (s->state == ST_OPENING) {
			s->cancel_wanted = 1; /* the answer decides what the peer must be told */
			snprintf(s->cancel_reason, sizeof(s->cancel_reason), "%s", c->reason);
		} else {
			cancel_here(s, ML_ECANCELED, c->reason);
		}
		break;
	}
	stream_put(s);
	free(c);
}

void ml_stream_drop_cmd(struct ml_cmd_stream *c)
{
	/* The context stopped first: what carries a message completes like it. */
	if (c->m) {
		struct ml_msg_out *m = c->m;
		if (m->req)
			cds_list_del(&m->req->link);
		if (c->op == OP_OPEN || c->op == OP_ACCEPT)
			ml_stream_release_slot(c->s->peer);
		if (c->op == OP_CHUNK)
			c->s->pending++;
		ml_peer_complete(c->s->peer, m, ML_ECANCELED, NULL);
	}
	if (c->op == OP_ACCEPT || c->op == OP_OPEN)
		end_stream(c->s, ML_ECANCELED, "context destroyed");
	stream_put(c->s);
	free(c);
}

static struct ml_cmd_stream *cmd_new(int op)
{
	struct ml_cmd_stream *c = calloc(1, sizeof(*c));
	if (c) {
		c->cmd.type = ML_CMD_STREAM;
		c->op = op;
	}
	return c;
}

static void cmd_post(struct ml_stream *s, struct ml_cmd_stream *c)
{
	c->s = s;
	stream_get(s);
	if (ml_on_worker_thread(s->peer->w))
		ml_stream_run_cmd(c); /* from a callback: at once, which is what makes a cancel prompt */
	else
		ml_worker_post(s->peer->w, &c->cmd);
}

static int post(struct ml_stream *s, int op, uint64_t value, const char *reason)
{
	struct ml_cmd_stream *c = cmd_new(op);
	if (!c)
		return ML_ENOMEM;
	c->value = value;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
	cmd_post(s, c);
	return 0;
}

/* The record in front of the application's payload, then its buffers. */
static struct ml_msg_out *build_with_record(struct ml_stream *s, size_t rec_len,
					    const struct ml_buf *bufs, unsigned nbufs,
					    unsigned flags, int *err)
{
	struct ml_buf one[9], *all = nbufs < 8 ? one : malloc((nbufs + 1) * sizeof(*all));
	*err = ML_ENOMEM;
	if (!all)
		return NULL;
	*err = ML_EINVAL;
	if (nbufs && !bufs) {
		if (all != one)
			free(all);
		return NULL;
	}
	all[0] = ml_buf_plain(s->rec, rec_len); /* lives in s, which the message holds */
	if (nbufs)
		memcpy(all + 1, bufs, nbufs * sizeof(*bufs));
	struct ml_msg_out *m = ml_msg_build(s->peer, all, nbufs + 1, flags, err);
	if (all != one)
		free(all);
	return m;
}

int ml_stream_open(ml_peer *peer, uint64_t tag, int dir, const struct ml_buf *bufs, unsigned nbufs,
		   unsigned flags, const struct ml_stream_cbs *cbs, void *arg, ml_stream **out)
{
	if (!peer || !out || (dir != ML_STREAM_OUT && dir != ML_STREAM_IN))
		return ML_EINVAL;
	struct ml_stream *s = stream_new(peer, cbs, arg);
	if (!s)
		return ML_ENOMEM;
	s->opener = 1;
	s->sending = dir == ML_STREAM_OUT;
	s->id = __atomic_add_fetch(&peer->next_stream_id, 1, __ATOMIC_RELAXED) & ~WIRE_ACCEPTOR;
	ml_put64(s->rec, tag);
	s->rec[8] = (uint8_t)dir;
	ml_put32(s->rec + 12, s->my_chunk_max);
	ml_put32(s->rec + 16, s->sending ? 0 : s->my_window);
	s->granted = s->sending ? 0 : s->my_window;
	int err = ML_ENOMEM;
	struct ml_cmd_stream *c = cmd_new(OP_OPEN);
	struct ml_msg_out *m = NULL;
	if (c && (err = take_slot(peer)) == 0) {
		m = build_with_record(s, OPEN_REC_LEN, bufs, nbufs, flags, &err);
		if (m && (err = ml_msg_admit(peer, m->len, 0)) != 0) {
			ml_msg_free(m);
			m = NULL;
		}
		if (!m)
			ml_stream_release_slot(peer);
	}
	if (!m) {
		free(c);
		s->refs = 1;
		stream_put(s);
		return err;
	}
	m->kind = ML_KIND_REQUEST;
	m->wflags |= ML_FLAG_STREAM; /* (after a codec ml_msg_build chose) */
	m->tag = s->id;
	m->stream = s;
	m->rcb = open_done;
	m->arg = s;
	stream_get(s); /* the open request's */
	*out = s;
	c->m = m;
	cmd_post(s, c);
	return 0;
}

int ml_stream_accept(ml_request *req, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
		     const struct ml_stream_cbs *cbs, void *arg, ml_stream **out)
{
	if (!req || !out || !req->stream_slot)
		return ML_EINVAL;
	struct ml_peer *p = req->peer;
	struct ml_stream *s = stream_new(p, cbs, arg);
	if (!s)
		return ML_ENOMEM;
	s->opener = 0;
	s->id = req->tag;
	s->sending = req->stream_dir == ML_STREAM_IN;
	s->state = ST_OPEN;
	s->chunk_max = req->stream_chunk_max < s->my_chunk_max ? req->stream_chunk_max : s->my_chunk_max;
	s->credit = s->sending ? req->stream_window : 0;
	s->granted = s->sending ? 0 : s->my_window;
	ml_put32(s->rec, s->my_chunk_max);
	ml_put32(s->rec + 4, s->sending ? 0 : s->my_window);
	int err = ML_ENOMEM;
	struct ml_cmd_stream *c = cmd_new(OP_ACCEPT);
	struct ml_msg_out *m = c ? build_with_record(s, ACCEPT_REC_LEN, bufs, nbufs, flags, &err) : NULL;
	if (!m) {
		free(c);
		s->refs = 1;
		stream_put(s);
		return err;
	}
	ml_msg_admit(p, m->len, 1);
	req->stream_slot = 0; /* the stream holds it now */
	m->kind = ML_KIND_RESPONSE;
	m->wflags |= ML_FLAG_STREAM; /* (after a codec ml_msg_build chose) */
	m->tag = req->tag;
	m->ref = req->seq;
	m->req = req;
	m->scb = accept_done;
	m->arg = s;
	stream_get(s); /* the answer's */
	*out = s;
	c->m = m;
	cmd_post(s, c);
	return 0;
}

static void chunk_done(void *arg, int status)
{
	struct chunk_ctx *cc = arg;
	struct ml_stream *s = cc->s;
	struct ml_peer *p = s->peer;
	if (status == ML_OK) {
		ML_STAT_ADD(p->st.stream_chunks_sent, 1);
		ML_STAT_ADD(p->st.stream_bytes_sent, cc->len);
	}
	if (cc->cb)
		cc->cb(cc->arg, status == ML_OK || s->state != ST_ENDED ? status : s->status);
	free(cc);
	s->pending--;
	maybe_run_on_end(s);
	stream_put(s);
}

/* May the next chunk of len bytes go? (mu held) 0, or why not. */
static int send_check(struct ml_stream *s, size_t len)
{
	if (s->state == ST_ENDED)
		return ML_ENOTCONN;
	if (!s->sending || s->closed)
		return ML_EINVAL;
	if (s->state == ST_OPEN && len > s->chunk_max)
		return ML_ETOOBIG;
	if (s->state != ST_OPEN || s->next_chunk > s->credit) {
		s->want_room = 1;
		return ML_EAGAIN;
	}
	return 0;
}

int ml_stream_send(ml_stream *s, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
		   ml_send_cb cb, void *arg)
{
	if (!s || (nbufs && !bufs))
		return ML_EINVAL;
	size_t len = 0; /* (the limit is on the chunk, not on what a codec makes of it) */
	for (unsigned i = 0; i < nbufs; i++)
		len += bufs[i].length;
	/* Refused before anything is built (or compressed) when there is no credit. */
	pthread_mutex_lock(&s->mu);
	int err = send_check(s, len);
	pthread_mutex_unlock(&s->mu);
	if (err)
		return err;
	struct chunk_ctx *cc = malloc(sizeof(*cc));
	struct ml_cmd_stream *c = cmd_new(OP_CHUNK);
	err = ML_ENOMEM;
	struct ml_msg_out *m = cc && c ? ml_msg_build(s->peer, bufs, nbufs, flags, &err) : NULL;
	if (m) {
		pthread_mutex_lock(&s->mu);
		err = send_check(s, len); /* (the end may have come meanwhile) */
		if (!err)
			m->ref = s->next_chunk++;
		pthread_mutex_unlock(&s->mu);
	}
	if (err) {
		if (m)
			ml_msg_free(m);
		free(cc);
		free(c);
		return err;
	}
	ml_msg_admit(s->peer, m->len, 1); /* bounded by credit, not by admission */
	cc->s = s;
	cc->len = (uint32_t)len;
	cc->cb = cb;
	cc->arg = arg;
	m->kind = ML_KIND_ONEWAY;
	m->wflags |= ML_FLAG_STREAM; /* (after a codec ml_msg_build chose) */
	m->tag = wire_tag(s);
	m->stream = s;
	m->scb = chunk_done;
	m->arg = cc;
	stream_get(s); /* the chunk's */
	c->m = m;
	cmd_post(s, c);
	return 0;
}

int ml_stream_close(ml_stream *s)
{
	if (!s)
		return ML_EINVAL;
	pthread_mutex_lock(&s->mu);
	int err = !s->sending || s->closed ? ML_EINVAL : s->state == ST_ENDED ? ML_ENOTCONN : 0;
	uint64_t last = s->next_chunk - 1;
	if (!err)
		s->closed = 1;
	pthread_mutex_unlock(&s->mu);
	return err ? err : post(s, OP_CLOSE, last, NULL);
}

int ml_stream_finish(ml_stream *s)
{
	if (!s || s->sending)
		return ML_EINVAL;
	return is_ended(s) ? ML_ENOTCONN : post(s, OP_FINISH, 0, NULL);
}

int ml_stream_cancel(ml_stream *s, const char *reason)
{
	if (!s)
		return ML_EINVAL;
	return post(s, OP_CANCEL, 0, reason ? reason : "canceled by the peer's application");
}

void ml_stream_release(ml_stream *s)
{
	if (s)
		stream_put(s);
}

size_t ml_stream_chunk_max(const ml_stream *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	size_t n = s->chunk_max;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
	return n;
}

ml_peer *ml_stream_peer(const ml_stream *s)
{
	return s ? s->peer : NULL;
}

/* ---- blocking wrappers ---- */

struct writer {
	struct ml_stream *s;
	uint64_t pending;
	int status;
};

static void write_done(void *arg, int status)
{
	struct writer *wr = arg;
	pthread_mutex_lock(&wr->s->mu);
	if (status != ML_OK && wr->status == ML_OK)
		wr->status = status;
	wr->pending--;
	pthread_cond_broadcast(&wr->s->cv);
	pthread_mutex_unlock(&wr->s->mu);
}

/* Wait on s->cv (mu held) until the deadline (INFINITY: none); 0 when it passed. */
static int wait_until(struct ml_stream *s, double deadline)
{
	if (isinf(deadline)) {
		pthread_cond_wait(&s->cv, &s->mu);
		return 1;
	}
	double now = ml_mono_now();
	if (now >= deadline)
		return 0;
	struct timespec ts = { .tv_sec = (time_t)deadline,
			       .tv_nsec = (long)((deadline - floor(deadline)) * 1e9) };
	pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	return 1;
}

int ml_stream_write(ml_stream *s, const void *data, size_t len, double timeout_s)
{
	if (!s || (len && !data) || ml_on_worker_thread(s->peer->w))
		return ML_EINVAL;
	double deadline = timeout_s > 0 ? ml_mono_now() + timeout_s : INFINITY;
	struct writer wr = { .s = s };
	size_t off = 0;
	int rc = 0;
	while (off < len && rc == 0) {
		pthread_mutex_lock(&s->mu);
		while (s->state == ST_OPENING || (s->state == ST_OPEN && s->next_chunk > s->credit))
			if (!wait_until(s, deadline))
				break;
		size_t n = s->chunk_max;
		pthread_mutex_unlock(&s->mu);
		if (n > len - off)
			n = len - off;
		struct ml_buf b = ml_buf_plain((const char *)data + off, n);
		pthread_mutex_lock(&s->mu);
		wr.pending++;
		pthread_mutex_unlock(&s->mu);
		/* A copy: on a timeout the caller takes its memory back at once. */
		rc = ml_stream_send(s, &b, 1, ML_SEND_COPY, write_done, &wr);
		if (rc) {
			pthread_mutex_lock(&s->mu);
			wr.pending--;
			pthread_mutex_unlock(&s->mu);
			if (rc == ML_EAGAIN && ml_mono_now() < deadline)
				rc = 0; /* still opening, or credit came and went between the wait and the send */
			else if (rc == ML_ENOTCONN) {
				pthread_mutex_lock(&s->mu);
				rc = s->status ? s->status : ML_ENOTCONN;
				pthread_mutex_unlock(&s->mu);
			}
			continue;
		}
		off += n;
	}
	pthread_mutex_lock(&s->mu);
	/* Our callbacks name wr: every one of them must have run before we return. */
	while (wr.pending)
		pthread_cond_wait(&s->cv, &s->mu);
	if (rc == 0)
		rc = wr.status;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int ml_stream_wait(ml_stream *s, double timeout_s, char *reason, size_t reason_len)
{
	if (!s || ml_on_worker_thread(s->peer->w))
		return ML_EINVAL;
	double deadline = timeout_s > 0 ? ml_mono_now() + timeout_s : INFINITY;
	pthread_mutex_lock(&s->mu);
	while (!s->on_end_ran)
		if (!wait_until(s, deadline))
			break;
	int rc = s->on_end_ran ? s->status : ML_EAGAIN;
	if (reason && reason_len)
		snprintf(reason, reason_len, "%s", s->on_end_ran ? s->reason : "");
	pthread_mutex_unlock(&s->mu);
	return rc;
}
