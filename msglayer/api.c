/* api.c - public calls that build messages and queue them on the owning worker. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ml_buf ml_buf_iov(const struct iovec *iov, unsigned iovcnt)
{
	struct ml_buf b = { ML_BUF_IOV, iovcnt, iov, 0, 0 };
	for (unsigned i = 0; i < iovcnt; i++)
		b.length += iov[i].iov_len;
	return b;
}

/* Number of iovecs the bytes of b need, or -1 if b is malformed. */
static long buf_iov_count(const struct ml_buf *b)
{
	if (b->type == ML_BUF_PLAIN)
		return b->length ? 1 : 0;
	if (b->type == ML_BUF_MEM) {
		const struct ml_mem *m = b->base;
		return m && b->offset <= m->len && b->length <= m->len - b->offset ? b->length > 0 : -1;
	}
	if (b->type != ML_BUF_IOV || (!b->base && b->iovcnt))
		return -1;
	const struct iovec *v = b->base;
	size_t pos = 0, end = b->offset + b->length;
	long n = 0;
	for (unsigned i = 0; i < b->iovcnt && pos < end; i++) {
		if (pos + v[i].iov_len > b->offset && v[i].iov_len)
			n++;
		pos += v[i].iov_len;
	}
	return pos >= end ? n : -1;
}

static unsigned buf_iov_fill(const struct ml_buf *b, struct iovec *out)
{
	if (b->type == ML_BUF_PLAIN || b->type == ML_BUF_MEM) {
		if (!b->length)
			return 0;
		const char *base = b->type == ML_BUF_PLAIN ? b->base : ((const struct ml_mem *)b->base)->base;
		out->iov_base = (char *)(uintptr_t)base + b->offset;
		out->iov_len = b->length;
		return 1;
	}
	const struct iovec *v = b->base;
	size_t pos = 0, start = b->offset, end = b->offset + b->length;
	unsigned n = 0;
	for (unsigned i = 0; i < b->iovcnt && pos < end; i++) {
		size_t s = pos, e = pos + v[i].iov_len;
		pos = e;
		if (e <= start || !v[i].iov_len)
			continue;
		size_t from = start > s ? start - s : 0, to = (end < e ? end : e) - s;
		out[n].iov_base = (char *)v[i].iov_base + from;
		out[n++].iov_len = to - from;
	}
	return n;
}

struct ml_msg_out *ml_msg_alloc(struct ml_peer *p)
{
	struct ml_worker *w = p->w;
	return ml_pool_get(&w->msg_pool, ml_on_worker_thread(w));
}

void ml_msg_drop_copy(struct ml_msg_out *m)
{
	if (m->copy != m->small)
		free(m->copy);
	m->copy = NULL;
}

void ml_msg_free(struct ml_msg_out *m)
{
	struct ml_worker *w = m->peer->w;
	int on_worker = ml_on_worker_thread(w);
	if (m->frags != &m->frag1 && m->nfrags <= ML_FRAGS_POOLED)
		ml_pool_put(&w->frags_pool, m->frags, on_worker);
	else if (m->frags != &m->frag1)
		free(m->frags);
	if (m->iov != m->iov1)
		free(m->iov);
	ml_msg_drop_copy(m);
	ml_pool_put(&w->req_pool, m->req, on_worker);
	ml_pool_put(&w->msg_pool, m, on_worker);
}

/* The codec of flags the peer accepts (0: none). */
static int send_codec(struct ml_peer *p, unsigned flags)
{
	unsigned accepted = __atomic_load_n(&p->peer_codecs, __ATOMIC_RELAXED);
	if ((flags & ML_SEND_LZ4) && (accepted & ML_ACCEPT_LZ4))
		return ML_CODEC_LZ4;
	if ((flags & ML_SEND_ZSTD) && (accepted & ML_ACCEPT_ZSTD))
		return ML_CODEC_ZSTD;
	return ML_CODEC_NONE;
}

/* Make m's payload the compressed bytes of bufs. -1: it goes as it is (the
 * peer takes no such codec, the data does not shrink, or no memory). */
static int compress(struct ml_peer *p, struct ml_msg_out *m, const struct ml_buf *bufs,
		    unsigned nbufs, long niov, unsigned flags)
{
	int codec = send_codec(p, flags);
	if (!codec || !m->len)
		return -1;
	struct iovec one = { 0 }, *iov = niov > 1 ? calloc((size_t)niov, sizeof(*iov)) : &one;
	if (!iov)
		return -1;
	unsigned n = 0;
	for (unsigned i = 0; i < nbufs; i++)
		n += buf_iov_fill(&bufs[i], iov + n);
	size_t out_len;
	void *out = ml_codec_compress(codec, iov, n, m->len, &out_len);
	if (iov != &one)
		free(iov);
	if (!out)
		return -1;
	__atomic_fetch_add(&p->st.compressed_msgs, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&p->st.compressed_in, m->len, __ATOMIC_RELAXED);
	__atomic_fetch_add(&p->st.compressed_out, out_len, __ATOMIC_RELAXED);
	m->copy = out;
	m->len = (uint32_t)out_len;
	m->iov1[0].iov_base = out;
	m->iov1[0].iov_len = out_len;
	m->iovcnt = 1;
	m->wflags = (uint8_t)(codec << ML_FLAG_CODEC_SHIFT);
	return 0;
}

/* Build a message from buffer references; NULL with *err set on failure. */
struct ml_msg_out *ml_msg_build(struct ml_peer *p, const struct ml_buf *bufs, unsigned nbufs,
				unsigned flags, int *err)
{
	size_t total = 0;
	long niov = 0;
	*err = ML_EINVAL;
	if (nbufs && !bufs)
		return NULL;
	for (unsigned i = 0; i < nbufs; i++) {
		long k = buf_iov_count(&bufs[i]);
		if (k < 0 || (bufs[i].type == ML_BUF_PLAIN && bufs[i].length && !bufs[i].base))
			return NULL;
		niov += k;
		total += bufs[i].length;
	}
	if (total > p->ctx->cfg.max_msg_size) {
		*err = ML_ETOOBIG;
		return NULL;
	}
	*err = ML_ENOMEM;
	struct ml_msg_out *m = ml_msg_alloc(p);
	if (!m)
		return NULL;
	m->peer = p;
	m->len = (uint32_t)total;
	m->cmd.type = ML_CMD_SEND;
	m->iov = m->iov1;
	if (flags & (ML_SEND_LZ4 | ML_SEND_ZSTD)) {
		if (compress(p, m, bufs, nbufs, niov, flags) == 0) {
			*err = 0;
			return m;
		}
		flags |= ML_SEND_COPY; /* as it is, but the caller may still reuse its memory */
	}
	/* A fragment must fit one writev with room to spare (ML_TX_IOV): a
	 * payload scattered over more pieces than that is gathered into a copy. */
	if (niov > ML_MSG_IOV_MAX)
		flags |= ML_SEND_COPY;
	if ((flags & ML_SEND_COPY) && total) {
		/* One owned copy: the caller may reuse its memory at once. */
		m->copy = total <= sizeof(m->small) ? m->small : malloc(total);
		if (!m->copy) {
			ml_msg_free(m);
			return NULL;
		}
		size_t at = 0;
		for (unsigned i = 0; i < nbufs; i++) {
			struct iovec tmp[64];
			const struct ml_buf *b = &bufs[i];
			if (b->type != ML_BUF_IOV) {
				if (buf_iov_fill(b, tmp)) /* plain or registered: one piece */
					memcpy((char *)m->copy + at, tmp[0].iov_base, tmp[0].iov_len);
				at += b->length;
				continue;
			}
			/* Copy an iovec list in chunks of whole entries. */
			const struct iovec *v = b->base;
			size_t pos = 0, end = b->offset + b->length;
			for (unsigned j = 0; j < b->iovcnt && pos < end; j++) {
				struct ml_buf one = { ML_BUF_IOV, 1, &v[j], 0, v[j].iov_len };
				size_t s = pos, e = pos + v[j].iov_len;
				pos = e;
				if (e <= b->offset)
					continue;
				one.offset = b->offset > s ? b->offset - s : 0;
				one.length = (end < e ? end : e) - s - one.offset;
				unsigned k = buf_iov_fill(&one, tmp);
				for (unsigned t = 0; t < k; t++) {
					memcpy((char *)m->copy + at, tmp[t].iov_base, tmp[t].iov_len);
					at += tmp[t].iov_len;
				}
			}
		}
		m->iov1[0].iov_base = m->copy;
		m->iov1[0].iov_len = total;
		m->iovcnt = 1;
	} else {
		if (niov > 2) {
			m->iov = malloc((size_t)niov * sizeof(*m->iov));
			if (!m->iov) {
				m->iov = m->iov1;
				ml_msg_free(m);
				return NULL;
			}
		}
		for (unsigned i = 0; i < nbufs; i++)
			m->iovcnt += buf_iov_fill(&bufs[i], m->iov + m->iovcnt);
		/* One registered buffer: the peer may READ it where it stands. */
		if (nbufs == 1 && bufs[0].type == ML_BUF_MEM) {
			m->zmem = bufs[0].base;
			m->zoff = bufs[0].offset;
		}
	}
	*err = 0;
	return m;
}

static void post(struct ml_peer *p, struct ml_msg_out *m)
{
	if (ml_on_worker_thread(p->w))
		ml_peer_submit(p, m); /* from a callback: no queue hop */
	else
		ml_worker_post(p->w, &m->cmd);
}

/* Admission: a bounded number of messages and bytes per peer, whatever the
 * application does (flow control). Responses are exempt: they are bounded by
 * the requests the peer may have in flight. */
int ml_msg_admit(struct ml_peer *p, uint32_t len, int exempt)
{
	struct ml_config *cfg = &p->ctx->cfg;
	uint64_t n = __atomic_add_fetch(&p->submitted, 1, __ATOMIC_RELAXED);
	uint64_t b = __atomic_add_fetch(&p->submitted_bytes, len, __ATOMIC_RELAXED);
	if (exempt || (n <= (uint64_t)cfg->max_inflight_msgs + cfg->max_queued_msgs &&
		       (b <= cfg->max_inflight_bytes + cfg->max_queued_bytes || n == 1)))
		return 0;
	__atomic_sub_fetch(&p->submitted, 1, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&p->submitted_bytes, len, __ATOMIC_SEQ_CST);
	__atomic_store_n(&p->want_room, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&p->st.refused, 1, __ATOMIC_RELAXED);
	/* Everything may have completed between our count and want_room: then
	 * no completion is left to call on_room, and the worker must look. */
	if (!ml_on_worker_thread(p->w) && ml_peer_room_again(p)) {
		struct ml_cmd_peer *c = calloc(1, sizeof(*c));
		if (c) { /* out of memory: on_room waits for the next completion */
			c->cmd.type = ML_CMD_ROOM_CHECK;
			c->peer = p;
			ml_worker_post(p->w, &c->cmd);
		}
	}
	return ML_EAGAIN;
}

static int send_msg(struct ml_peer *p, uint8_t kind, uint64_t tag, uint64_t ref,
		    const struct ml_buf *bufs, unsigned nbufs, unsigned flags, double deadline,
		    ml_response_cb rcb, ml_send_cb scb, void *arg)
{
	int err;
	struct ml_msg_out *m = ml_msg_build(p, bufs, nbufs, flags, &err);
	if (!m)
		return err;
	err = ml_msg_admit(p, m->len, kind == ML_KIND_RESPONSE);
	if (err) {
		ml_msg_free(m);
		return err;
	}
	m->kind = kind;
	m->tag = tag;
	m->ref = ref;
	m->deadline = deadline;
	m->rcb = rcb;
	m->scb = scb;
	m->arg = arg;
	post(p, m);
	return 0;
}

int ml_request_send(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs, unsigned nbufs,
		    unsigned flags, ml_response_cb cb, void *arg)
{
	if (!peer || !cb)
		return ML_EINVAL;
	return send_msg(peer, ML_KIND_REQUEST, tag, 0, bufs, nbufs, flags, 0, cb, NULL, arg);
}

int ml_message_send(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs, unsigned nbufs,
		    unsigned flags, ml_send_cb cb, void *arg)
{
	if (!peer)
		return ML_EINVAL;
	return send_msg(peer, ML_KIND_ONEWAY, tag, 0, bufs, nbufs, flags, 0, NULL, cb, arg);
}

static int respond(ml_request *req, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
		   uint8_t wflags, ml_send_cb cb, void *arg)
{
	if (!req)
		return ML_EINVAL;
	if (req->stream_slot) /* a stream open answered without ml_stream_accept: refused */
		ml_stream_release_slot(req->peer);
	req->stream_slot = 0;
	int err, empty_err;
	struct ml_msg_out *m = ml_msg_build(req->peer, bufs, nbufs, flags, &err);
	if (!m) {
		/* Still consumed: an empty answer goes instead, so that the
		 * requester is not left waiting for one that never comes. */
		m = ml_msg_build(req->peer, NULL, 0, 0, &empty_err);
		if (!m)
			return err; /* no memory even for that: req stays listed, freed with the context */
		cb = NULL;
	}
	ml_msg_admit(req->peer, m->len, 1);
	m->kind = ML_KIND_RESPONSE;
	m->wflags |= wflags;
	m->tag = req->tag;
	m->ref = req->seq;
	m->req = req;
	m->scb = cb;
	m->arg = arg;
	post(req->peer, m);
	return err;
}

int ml_respond(ml_request *req, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
	       ml_send_cb cb, void *arg)
{
	return respond(req, bufs, nbufs, flags, 0, cb, arg);
}

int ml_request_abort(ml_request *req, const char *reason, ml_send_cb cb, void *arg)
{
	struct ml_buf b = ml_buf_plain(reason, reason ? strlen(reason) : 0);
	return respond(req, &b, 1, ML_SEND_COPY, ML_FLAG_ABORT, cb, arg);
}

uint64_t ml_request_tag(const ml_request *req)
{
	return req ? req->tag : 0;
}

double ml_request_time_left(const ml_request *req)
{
	if (!req || isinf(req->deadline))
		return INFINITY;
	return req->deadline - ml_mono_now();
}

int ml_request_canceled(const ml_request *req)
{
	return req ? __atomic_load_n(&req->canceled, __ATOMIC_RELAXED) : 0;
}

int ml_request_send_deadline(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs,
			     unsigned nbufs, unsigned flags, double timeout_s, ml_response_cb cb,
			     void *arg)
{
	if (!peer || !cb || !(timeout_s > 0) || !isfinite(timeout_s))
		return ML_EINVAL;
	return send_msg(peer, ML_KIND_REQUEST, tag, 0, bufs, nbufs, flags, ml_mono_now() + timeout_s,
			cb, NULL, arg);
}

int ml_request_cancel(ml_peer *peer, uint64_t tag)
{
	if (!peer)
		return ML_EINVAL;
	struct ml_cmd_cancel *cc = calloc(1, sizeof(*cc));
	if (!cc)
		return ML_ENOMEM;
	cc->cmd.type = ML_CMD_CANCEL;
	cc->peer = peer;
	cc->tag = tag;
	/* Always queued, also from a callback: the scan then never runs inside
	 * another scan's completion callbacks. Behind the sends this thread
	 * queued before, so they are canceled too. */
	ml_worker_post(peer->w, &cc->cmd);
	return 0;
}

int ml_peer_add(ml_ctx *ctx, uint32_t node_id, const char *const *urls, unsigned n_urls,
		ml_peer **out)
{
	if (!ctx || node_id == 0 || node_id == ctx->cfg.node_id || (n_urls && !urls) ||
	    n_urls > ML_MAX_OUTBOUND)
		return ML_EINVAL;
	struct ml_cmd_paths *cp = calloc(1, sizeof(*cp));
	if (!cp)
		return ML_ENOMEM;
	for (unsigned i = 0; i < n_urls; i++) {
		int rc = ml_endpoint_parse(urls[i], &cp->eps[i]);
		if (rc) {
			ml_log(ctx, ML_LOG_ERR, "peer %u: bad endpoint '%s': %s", node_id,
			       urls[i] ? urls[i] : "(null)",
			       cp->eps[i].why ? cp->eps[i].why : ml_strerror(rc));
			free(cp);
			return rc;
		}
	}
	int created;
	struct ml_peer *p;
	int rc = ml_peer_get_or_create(ctx, node_id, &p, &created);
	if (rc) {
		if (rc == ML_ELIMIT)
			ml_log(ctx, ML_LOG_ERR, "peer %u: not added: the context has its maximum of %u peers",
			       node_id, ctx->cfg.max_peers);
		free(cp);
		return rc;
	}
	cp->cmd.type = ML_CMD_ADD_PATHS;
	cp->peer = p;
	cp->n = n_urls;
	ml_worker_post(p->w, &cp->cmd);
	if (out)
		*out = p;
	return 0;
}

int ml_peer_declare_down(ml_peer *peer, const char *why)
{
	if (!peer)
		return ML_EINVAL;
	struct ml_cmd_peer_down *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return ML_ENOMEM;
	cd->cmd.type = ML_CMD_PEER_DOWN;
	cd->peer = peer;
	snprintf(cd->why, sizeof(cd->why), "%s", why ? why : "no reason given");
	/* Queued behind this thread's earlier sends, which it fails too. */
	ml_worker_post(peer->w, &cd->cmd);
	return 0;
}

uint32_t ml_peer_node_id(const ml_peer *peer)
{
	return peer ? peer->node_id : 0;
}

/* The copies below go word by word over runs of uint64_t counters. */
_Static_assert((sizeof(struct ml_peer_stats) - offsetof(struct ml_peer_stats, msgs_sent)) %
			       sizeof(uint64_t) == 0 &&
		       offsetof(struct ml_peer_stats, limits_hit) + sizeof(uint64_t) ==
			       sizeof(struct ml_peer_stats),
	       "ml_peer_stats must end with its run of uint64_t counters");
_Static_assert(offsetof(struct ml_path_stats, rtt_us) - offsetof(struct ml_path_stats, frames_sent) ==
		       20 * sizeof(uint64_t),
	       "ml_path_stats: frames_sent..fault must be 20 uint64_t in a row");

int ml_peer_stats_get(ml_peer *p, struct ml_peer_stats *st, struct ml_path_stats *paths,
		      unsigned *npaths)
{
	if (!p || !st)
		return ML_EINVAL;
	/* Counters are single-writer relaxed atomics: each is exact, the set is
	 * a near-instant snapshot, not a transaction. */
	const uint64_t *src = (const uint64_t *)&p->st.msgs_sent;
	uint64_t *dst = (uint64_t *)&st->msgs_sent;
	size_t nwords = (sizeof(*st) - offsetof(struct ml_peer_stats, msgs_sent)) / sizeof(uint64_t);
	for (size_t i = 0; i < nwords; i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	st->node_id = p->node_id;
	st->streams_open = __atomic_load_n(&p->nstreams, __ATOMIC_RELAXED);
	st->peer_incarnation = ML_STAT_GET(p->st.peer_incarnation);
	st->paths_up = ML_STAT_GET(p->st.paths_up);
	unsigned n = __atomic_load_n(&p->npaths, __ATOMIC_ACQUIRE);
	st->paths = n;
	if (paths && npaths) {
		unsigned k = n < *npaths ? n : *npaths;
		for (unsigned i = 0; i < k; i++) {
			struct ml_path *path = __atomic_load_n(&p->paths[i], __ATOMIC_ACQUIRE);
			const struct ml_path_stats *s = &path->st;
			struct ml_path_stats *d = &paths[i];
			d->state = ML_STAT_GET(s->state);
			d->outbound = s->outbound;
			const uint64_t *a = &s->frames_sent;
			uint64_t *b = &d->frames_sent;
			size_t w = (offsetof(struct ml_path_stats, rtt_us) -
				    offsetof(struct ml_path_stats, frames_sent)) / sizeof(uint64_t);
			for (size_t j = 0; j < w; j++)
				b[j] = __atomic_load_n(&a[j], __ATOMIC_RELAXED);
			__atomic_load(&s->rtt_us, &d->rtt_us, __ATOMIC_RELAXED);
			__atomic_load(&s->rate_bps, &d->rate_bps, __ATOMIC_RELAXED);
			d->protect = ML_STAT_GET(s->protect);
			pthread_mutex_lock(&path->reason_lock); /* an inbound path's url changes on reconnect */
			memcpy(d->url, s->url, sizeof(d->url));
			d->url[sizeof(d->url) - 1] = 0;
			memcpy(d->reason, s->reason, sizeof(d->reason));
			pthread_mutex_unlock(&path->reason_lock);
		}
	}
	if (npaths)
		*npaths = n;
	return 0;
}
