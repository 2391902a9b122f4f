/*
 * listen.c - listening endpoints and the greeting of accepted connections.
 *
 * Listeners run on worker 0. An accepted connection is read there until its
 * HELLO names the peer and, when the cluster has a key, the connector has
 * answered our challenge (AUTH); then it moves to the worker that owns that
 * peer. No peer is made for a connection that has not authenticated. The
 * connector sends nothing after HELLO (or its AUTH) until our HELLO_ACK, so
 * no bytes are left behind in the move.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GREETING_TIMEOUT_S 5.0

int ml_listen(ml_ctx *ctx, const char *url)
{
	struct ml_endpoint ep;
	if (!ctx)
		return ML_EINVAL;
	int rc = ml_endpoint_parse(url, &ep);
	if (rc == 0 && ep.srclen) {
		ep.why = "src= is for the endpoints a node connects to";
		rc = ML_EINVAL;
	}
	if (rc) {
		ml_log(ctx, ML_LOG_ERR, "cannot listen on %s: %s", url ? url : "(null)",
		       ep.why ? ep.why : ml_strerror(rc));
		return rc;
	}
	struct ml_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return ML_ENOMEM;
	rc = ep.ops->listen(&ep, &l->fd, &l->port);
	if (rc) {
		ml_log(ctx, ML_LOG_ERR, "cannot listen on %s: %s", url, strerror(errno));
		free(l);
		return rc;
	}
	l->ctx = ctx;
	l->ops = ep.ops;
	l->cmd.type = ML_CMD_LISTEN;
	pthread_mutex_lock(&ctx->admin_lock);
	/* Appended, so that ml_listen_port(n) is the n-th call. */
	struct ml_listener **pp = &ctx->listeners;
	while (*pp)
		pp = &(*pp)->next;
	*pp = l;
	ctx->nlisteners++;
	pthread_mutex_unlock(&ctx->admin_lock);
	ml_worker_post(&ctx->workers[0], &l->cmd);
	return 0;
}

unsigned ml_listen_port(ml_ctx *ctx, unsigned n)
{
	unsigned port = 0;
	pthread_mutex_lock(&ctx->admin_lock);
	struct ml_listener *l = ctx->listeners;
	while (l && n--)
		l = l->next;
	if (l)
		port = l->port;
	pthread_mutex_unlock(&ctx->admin_lock);
	return port;
}

static void greeting_end(struct ml_greeting *g, int close_fd)
{
	explicit_bzero(&g->key, sizeof(g->key));
	ev_io_stop(g->w->loop, &g->io);
	ev_timer_stop(g->w->loop, &g->timeout);
	if (close_fd)
		g->ops->close(g->fd);
	cds_list_del(&g->link);
	free(g);
}

/* Tell the connector why, in a CLOSE frame, then hang up. Best effort: the
 * socket is fresh, so a small write goes straight into its buffer. */
static void greeting_reject(struct ml_greeting *g, int status, const char *why)
{
	uint8_t frame[ML_WIRE_HDR_LEN + 4 + 120];
	size_t wl = strlen(why) < 120 ? strlen(why) : 120;
	struct ml_frame_hdr h = { .type = ML_FT_CLOSE, .payload_len = (uint32_t)(4 + wl) };
	ml_frame_encode(frame, &h);
	ml_put32(frame + ML_WIRE_HDR_LEN, (uint32_t)status);
	memcpy(frame + ML_WIRE_HDR_LEN + 4, why, wl);
	struct iovec v = { frame, ML_WIRE_HDR_LEN + 4 + wl };
	if (g->ops->writev(g->fd, &v, 1) < 0)
		ml_log(g->ctx, ML_LOG_DEBUG, "close frame to %s not sent: %s", g->url, strerror(errno));
	ml_log(g->ctx, ML_LOG_WARN, "rejected connection from %s: %s", g->url, why);
	greeting_end(g, 1);
}

/* The connection is authenticated (or needs not be): it becomes a path of
 * its peer, on the worker that owns the peer. Only now may a peer be made. */
static void greeting_attach(struct ml_greeting *g, const struct ml_hello *hello)
{
	struct ml_ctx *ctx = g->ctx;
	int created;
	struct ml_peer *p;
	if (ml_peer_get_or_create(ctx, hello->node_id, &p, &created) == ML_ELIMIT) {
		char why[96];
		snprintf(why, sizeof(why), "this node has its maximum of %u peers", ctx->cfg.max_peers);
		greeting_reject(g, ML_ELIMIT, why);
		return;
	}
	struct ml_cmd_attach *ca = p ? calloc(1, sizeof(*ca)) : NULL;
	if (!ca) {
		greeting_reject(g, ML_ENOMEM, "out of memory");
		return;
	}
	if (created)
		ml_log(ctx, ML_LOG_INFO, "node %u connected first: now a peer", hello->node_id);
	ca->cmd.type = ML_CMD_ATTACH;
	ca->peer = p;
	ca->fd = g->fd;
	ca->ops = g->ops;
	ca->hello = *hello;
	snprintf(ca->url, sizeof(ca->url), "%s", g->url);
	ca->protect = g->protect;
	if (g->protect &&
	    ml_seal_derive(&g->key, g->hello_raw, ML_HELLO_MAX, g->nonce, g->protect, ca->seal_c2a,
			   ca->seal_a2c) != 0) {
		free(ca);
		greeting_reject(g, ML_ESYS, "cannot derive the path's keys");
		return;
	}
	greeting_end(g, 0);
	ml_worker_post(p->w, &ca->cmd);
}

/* A HELLO that offers a key we hold: prove ours, bound to that HELLO, with
 * a fresh nonce the connector must answer (doc/security.md). */
static void greeting_challenge(struct ml_greeting *g, const struct ml_hello *hello,
			       const uint8_t *payload, uint32_t len)
{
	uint8_t frame[ML_WIRE_HDR_LEN + ML_AUTH_CHALLENGE_LEN];
	struct ml_frame_hdr h = { .type = ML_FT_AUTH, .payload_len = ML_AUTH_CHALLENGE_LEN };
	g->hello = *hello;
	memset(g->hello_raw, 0, sizeof(g->hello_raw));
	memcpy(g->hello_raw, payload, len < ML_HELLO_MAX ? len : ML_HELLO_MAX);
	ml_frame_encode(frame, &h);
	memset(frame + ML_WIRE_HDR_LEN, 0, ML_AUTH_CHALLENGE_LEN);
	/* The stronger of the two: what the connector asks for, what we require. */
	g->protect = (int)ML_HELLO_PROTECT(hello->flags);
	if (g->protect < g->ctx->cfg.protect)
		g->protect = g->ctx->cfg.protect;
	frame[ML_WIRE_HDR_LEN + ML_NONCE_LEN + ML_MAC_LEN] = (uint8_t)g->protect;
	if (ml_auth_nonce(g->nonce) != 0 ||
	    ml_auth_mac(&g->key, "acceptor", g->hello_raw, ML_HELLO_MAX, g->nonce, g->protect,
			frame + ML_WIRE_HDR_LEN + ML_NONCE_LEN) != 0) {
		greeting_reject(g, ML_ESYS, "cannot compute the authentication challenge");
		return;
	}
	memcpy(frame + ML_WIRE_HDR_LEN, g->nonce, ML_NONCE_LEN);
	struct iovec v = { frame, sizeof(frame) };
	/* A fresh socket: the small write goes straight into its buffer. */
	if (g->ops->writev(g->fd, &v, 1) != (ssize_t)sizeof(frame)) {
		greeting_reject(g, ML_ESYS, "cannot send the authentication challenge");
		return;
	}
	g->awaiting_auth = 1;
	g->len = 0;
}

static void greeting_check_proof(struct ml_greeting *g, const struct ml_frame_hdr *h,
				 const uint8_t *payload)
{
	uint8_t want[ML_MAC_LEN];
	if (h->type != ML_FT_AUTH || h->payload_len < ML_AUTH_PROOF_LEN) {
		greeting_reject(g, ML_EAUTH, "the connector did not answer the authentication challenge");
		return;
	}
	if (ml_auth_mac(&g->key, "connector", g->hello_raw, ML_HELLO_MAX, g->nonce, g->protect, want) != 0 ||
	    !ml_auth_mac_equal(want, payload)) {
		greeting_reject(g, ML_EAUTH, "the connector failed authentication (wrong cluster key, "
					     "or a replayed handshake)");
		return;
	}
	greeting_attach(g, &g->hello); /* derives the path's keys, then forgets ours */
}

static void greeting_check(struct ml_greeting *g)
{
	struct ml_ctx *ctx = g->ctx;
	struct ml_frame_hdr h;
	struct ml_hello hello;
	char why[128];

	enum ml_wire_err e = ml_frame_decode(g->buf, g->len, &ctx->limits, &h);
	if (e == ML_WIRE_NEED_MORE)
		return;
	if (e) {
		greeting_reject(g, ML_EPROTO, ml_wire_strerror(e));
		return;
	}
	if (g->len < (size_t)h.hdr_len + h.payload_len)
		return;
	if (g->len != (size_t)h.hdr_len + h.payload_len) {
		greeting_reject(g, ML_EPROTO, "data before the handshake completed");
		return;
	}
	if (g->awaiting_auth) {
		greeting_check_proof(g, &h, g->buf + h.hdr_len);
		return;
	}
	if (h.type != ML_FT_HELLO) {
		greeting_reject(g, ML_EPROTO, "first frame is not HELLO");
		return;
	}
	e = ml_hello_decode(g->buf + h.hdr_len, h.payload_len, &hello);
	if (e) {
		greeting_reject(g, ML_EPROTO, ml_wire_strerror(e));
		return;
	}
	if (hello.max_version < ML_WIRE_MIN_VERSION || hello.min_version > ML_WIRE_VERSION) {
		snprintf(why, sizeof(why), "no common version: peer speaks %u..%u, we speak %u..%u",
			 hello.min_version, hello.max_version, ML_WIRE_MIN_VERSION, ML_WIRE_VERSION);
		greeting_reject(g, ML_EVERSION, why);
		return;
	}
	if (hello.dest_node_id && hello.dest_node_id != ctx->cfg.node_id) {
		snprintf(why, sizeof(why), "node %u expected node %u here, this is node %u",
			 hello.node_id, hello.dest_node_id, ctx->cfg.node_id);
		greeting_reject(g, ML_ENODE, why);
		return;
	}
	if (hello.node_id == ctx->cfg.node_id) {
		greeting_reject(g, ML_ENODE, "peer claims our own node id");
		return;
	}
	if (!ctx->cfg.accept_unknown_peers && !ml_peer_find(ctx, hello.node_id)) {
		snprintf(why, sizeof(why), "node %u is not a known peer", hello.node_id);
		greeting_reject(g, ML_ENOENT, why);
		return;
	}
	int keyed = ml_keyring_enabled(&ctx->keys);
	if (!(hello.flags & ML_HELLO_F_AUTH)) {
		if (keyed)
			greeting_reject(g, ML_EAUTH, "the connector has no cluster key; this node has one");
		else
			greeting_attach(g, &hello);
		return;
	}
	if (!keyed) {
		greeting_reject(g, ML_EAUTH, "the connector has a cluster key; this node has none");
		return;
	}
	if (!ml_keyring_find(&ctx->keys, hello.key_id, &g->key)) {
		char id[2 * ML_KEY_ID_LEN + 1];
		ml_key_id_hex(hello.key_id, id);
		snprintf(why, sizeof(why), "the connector's cluster key (id %s) is not one of ours", id);
		greeting_reject(g, ML_EAUTH, why);
		return;
	}
	greeting_challenge(g, &hello, g->buf + h.hdr_len, h.payload_len);
}

static void on_greeting_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ml_greeting *g = caa_container_of(io, struct ml_greeting, io);
	(void)loop;
	(void)revents;
	if (g->len == sizeof(g->buf)) {
		greeting_reject(g, ML_EPROTO, "handshake too long");
		return;
	}
	struct iovec v = { g->buf + g->len, sizeof(g->buf) - g->len };
	ssize_t n = g->ops->readv(g->fd, &v, 1);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		ml_log(g->ctx, ML_LOG_DEBUG, "connection from %s ended before its handshake", g->url);
		greeting_end(g, 1);
		return;
	}
	if (n > 0) {
		g->len += (size_t)n;
		greeting_check(g);
	}
}

static void on_greeting_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_greeting *g = caa_container_of(t, struct ml_greeting, timeout);
	(void)loop;
	(void)revents;
	greeting_reject(g, ML_ETIMEDOUT, "no handshake within 5 s");
}

int ml_greet(struct ml_worker *w, const struct ml_transport_ops *ops, int fd, const char *url)
{
	struct ml_greeting *g = calloc(1, sizeof(*g));
	if (!g)
		return ML_ENOMEM;
	g->ctx = w->ctx;
	g->w = w;
	g->ops = ops;
	g->fd = fd;
	snprintf(g->url, sizeof(g->url), "%s", url);
	cds_list_add(&g->link, &w->greetings);
	ev_io_init(&g->io, on_greeting_read, g->fd, EV_READ);
	ev_io_start(w->loop, &g->io);
	ev_timer_init(&g->timeout, on_greeting_timeout, GREETING_TIMEOUT_S, 0);
	ev_timer_start(w->loop, &g->timeout);
	return 0;
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ml_listener *l = caa_container_of(io, struct ml_listener, io);
	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) { /* bounded: let other work run too */
		int fd;
		char url[ML_URL_MAX];
		int rc = l->ops->accept(l->fd, &fd, url, sizeof(url));
		if (rc) {
			if (rc != ML_EAGAIN)
				ml_log(l->ctx, ML_LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		if (ml_greet(&l->ctx->workers[0], l->ops, fd, url)) {
			l->ops->close(fd); /* no memory to greet it: the connector retries */
			return;
		}
	}
}

void ml_listener_start(struct ml_worker *w, struct ml_listener *l)
{
	ev_io_init(&l->io, on_accept, l->fd, EV_READ);
	ev_io_start(w->loop, &l->io);
	l->started = 1;
	l->next_active = w->listeners;
	w->listeners = l;
}

void ml_listeners_stop(struct ml_worker *w)
{
	for (struct ml_listener *l = w->listeners; l; l = l->next_active) {
		ev_io_stop(w->loop, &l->io);
		l->ops->close(l->fd);
	}
	w->listeners = NULL;
}
