/*
 * path.c - one connection of a session: connect, handshake, read and parse
 * frames, write batches, fail and reconnect.
 *
 * Write order on the byte stream is strict: a frame that was part-written must
 * be finished before anything else goes out, so a writev always starts with
 * [rest of the part-written head frame], then [control bytes], then [queued
 * data frames], and what was written is consumed in the same order.
 */
#include "internal.h"
#include "../failover/backoff.h"
#include "../failover/detector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_S 2.0
#define RATE_INITIAL_BPS 1e9 /* optimistic until measured: every path gets work */
#define RATE_FLOOR_BPS 1e6
#define RATE_CEIL_BPS 1e10
#define RATE_MIN_DRAIN_S 20e-6 /* below this, queue time is noise: caps a sample */
#define RTT_MIN_WINDOW 1000    /* heartbeats (10 s) before the lowest RTT is forgotten */
#define DROP_STALL_S 0.2     /* a lost segment costs a TCP stream one minimum RTO */

static void on_read(struct ev_loop *loop, ev_io *io, int revents);
static void on_write(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents);
static void on_probation_end(struct ev_loop *loop, ev_timer *t, int revents);
static void on_fault_end(struct ev_loop *loop, ev_timer *t, int revents);
static void on_rx_release(struct ev_loop *loop, ev_timer *t, int revents);
static void parse_frames(struct ml_path *path);
static ssize_t path_writev(struct ml_path *path, const struct iovec *iov, unsigned n);
static void rx_pump(struct ml_path *path, ev_tstamp now);
static void heard(struct ml_path *path, ev_tstamp now);

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct ml_path *ml_path_new(struct ml_peer *p, int outbound, unsigned origin_idx, const char *url)
{
	if (p->npaths >= ML_MAX_PATHS || (outbound && p->n_outbound >= ML_MAX_OUTBOUND))
		return NULL;
	struct ml_path *path = calloc(1, sizeof(*path));
	if (!path)
		return NULL;
	path->rxcap = ML_WIRE_HDR_MAX + p->ctx->cfg.max_frag_payload + 65536;
	path->rxbuf = malloc(path->rxcap);
	if (!path->rxbuf) {
		free(path);
		return NULL;
	}
	path->peer = p;
	path->idx = p->npaths;
	path->outbound = outbound;
	path->origin_idx = origin_idx;
	path->fd = -1;
	path->state = ML_PATH_DOWN;
	path->seed = (unsigned)ml_random64();
	path->rate_bps = RATE_INITIAL_BPS;
	CDS_INIT_LIST_HEAD(&path->txq);
	CDS_INIT_LIST_HEAD(&path->inflight);
	CDS_INIT_LIST_HEAD(&path->dirty_link);
	ev_timer_init(&path->timer, on_timer, 0, 0);
	ev_timer_init(&path->heartbeat, on_heartbeat, p->ctx->cfg.heartbeat_interval_s,
		      p->ctx->cfg.heartbeat_interval_s);
	ev_timer_init(&path->probation, on_probation_end, 0, 0);
	ev_timer_init(&path->fault_timer, on_fault_end, 0, 0);
	ev_timer_init(&path->rx_release, on_rx_release, 0, 0);
	path->st.outbound = outbound;
	snprintf(path->st.url, sizeof(path->st.url), "%s", url);
	pthread_mutex_init(&path->reason_lock, NULL);
	/* Publish: stats readers on other threads load paths[i] for i < npaths. */
	__atomic_store_n(&p->paths[path->idx], path, __ATOMIC_RELEASE);
	__atomic_store_n(&p->npaths, p->npaths + 1, __ATOMIC_RELEASE);
	return path;
}

void ml_path_free(struct ml_path *path)
{
	pthread_mutex_destroy(&path->reason_lock);
	ml_seal_free(path->seal);
	free(path->tail);
	free(path->rxbuf);
	free(path);
}

/* A failed readv, writev or connect in words: the transport's, else errno's.
 * Copied into buf: the transport's text lives in its connection, which
 * ml_path_fail closes (and an RDMA reaper may free) before it logs. */
static const char *io_error(const struct ml_path *path, int err, char *buf, size_t len)
{
	const char *why = path->ops->why ? path->ops->why(path->fd) : NULL;
	snprintf(buf, len, "%s", why ? why : strerror(err));
	return buf;
}

static void mark_dirty(struct ml_path *path)
{
	if (!path->dirty && path->fd >= 0) {
		path->dirty = 1;
		cds_list_add_tail(&path->dirty_link, &path->peer->w->dirty_paths);
	}
}

/* Every change of state goes through here: counted, logged once with its
 * reason, kept for the stats, and told to the application. */
static void set_state(struct ml_path *path, int state, const char *why)
{
	struct ml_peer *p = path->peer;
	struct ml_ctx *ctx = p->ctx;
	int old = path->state;
	if (old == state)
		return;
	path->state = state;
	ML_STAT_SET(path->st.state, state);
	pthread_mutex_lock(&path->reason_lock);
	snprintf(path->st.reason, sizeof(path->st.reason), "%s", why);
	pthread_mutex_unlock(&path->reason_lock);
	if (state == ML_PATH_SUSPECT)
		ML_STAT_ADD(path->st.suspects, 1);
	else if (state == ML_PATH_UP && old == ML_PATH_SUSPECT)
		ML_STAT_ADD(path->st.recoveries, 1);
	else if (state == ML_PATH_PROBATION)
		ML_STAT_ADD(path->st.probations, 1);
	/* Losing a working path is news; the rest is detail. A context closing
	 * its own paths is no news at all. */
	int lost = (old == ML_PATH_UP || old == ML_PATH_SUSPECT || old == ML_PATH_PROBATION) &&
		   (state == ML_PATH_DOWN || state == ML_PATH_CLOSED);
	int level = p->w->stopped ? ML_LOG_DEBUG
		    : lost ? ML_LOG_WARN
		    : (state == ML_PATH_CONNECTING || old == ML_PATH_CONNECTING) &&
				      state != ML_PATH_UP && state != ML_PATH_PROBATION
			    ? ML_LOG_DEBUG : ML_LOG_INFO;
	ml_log(ctx, level, "peer %u path %u (%s) %s -> %s: %s", p->node_id, path->idx, path->st.url,
	       ml_path_state_name(old), ml_path_state_name(state), why);
	if (ctx->cfg.on_path_event && !p->w->stopped)
		ctx->cfg.on_path_event(ctx->cfg.cb_arg, p, path->idx, old, state, why);
}

/* peer->paths_up counts the paths that carry data (state UP). */
static void count_up(struct ml_path *path, int up)
{
	if (path->counted_up == up)
		return;
	path->counted_up = up;
	if (up)
		ml_peer_on_path_up(path->peer);
	else
		ml_peer_on_path_down(path->peer);
}

static int rx_blocked(const struct ml_path *path)
{
	return path->fault == ML_FAULT_BLACKHOLE || path->fault == ML_FAULT_BLACKHOLE_RX;
}

/* Input a fault holds back has not "arrived" yet: a blackhole keeps it in
 * the kernel, DELAY and DROP hold what was read (marks) and what comes
 * after it, and DELAY holds whatever is read next. */
static int rx_held(const struct ml_path *path)
{
	return rx_blocked(path) || path->mark_count > 0 ||
	       (path->fault == ML_FAULT_DELAY && path->fault_value > 0);
}

static int tx_blocked(const struct ml_path *path)
{
	return path->fault == ML_FAULT_BLACKHOLE || path->fault == ML_FAULT_BLACKHOLE_TX;
}

/* Read when the fault allows it, there is room, and delayed reads are not
 * piling up; otherwise the kernel holds the bytes, as a network would. */
static void update_rx_watch(struct ml_path *path)
{
	struct ev_loop *loop = path->peer->w->loop;
	int room = path->seal && !path->seal_rx_wait ? ml_seal_rx_room(path->seal) > 0
						    : path->rxcap - path->rxlen > 0 || path->rxoff > 0;
	int want = path->fd >= 0 && !rx_blocked(path) && path->mark_count < ML_RX_MARKS && room;
	if (want && !ev_is_active(&path->rio))
		ev_io_start(loop, &path->rio);
	else if (!want && ev_is_active(&path->rio))
		ev_io_stop(loop, &path->rio);
}

static void schedule_reconnect(struct ml_path *path)
{
	struct ml_ctx *ctx = path->peer->ctx;
	double d = ml_backoff_delay(ctx->cfg.reconnect_min_s, ctx->cfg.reconnect_max_s,
				    path->failures, &path->seed);
	/* A flapping path is held out longer (flap damping), but only while
	 * another path works: a flapping path is better than none. */
	double hold = path->peer->paths_up
			      ? ml_flap_hold(&path->flap, ctx->cfg.reconnect_min_s, ctx->cfg.flap_hold_max_s)
			      : 0;
	path->held = hold > d;
	if (hold > d)
		d = hold;
	path->failures++;
	ev_timer_stop(path->peer->w->loop, &path->timer);
	ev_timer_set(&path->timer, d, 0);
	ev_timer_start(path->peer->w->loop, &path->timer);
}

static void hello_fill(struct ml_peer *p, struct ml_hello *h, unsigned path_idx)
{
	memset(h, 0, sizeof(*h));
	h->node_id = p->ctx->cfg.node_id;
	h->dest_node_id = p->node_id;
	h->incarnation = p->my_inc;
	h->dest_incarnation = p->peer_inc;
	h->min_version = ML_WIRE_MIN_VERSION;
	h->max_version = ML_WIRE_VERSION;
	h->path_idx = (uint16_t)path_idx;
	h->max_frag_payload = p->ctx->cfg.max_frag_payload;
	h->max_msg_size = p->ctx->cfg.max_msg_size;
	h->window = p->rx.size;
	h->flags = (uint16_t)((p->ctx->cfg.accept_codecs & (ML_ACCEPT_LZ4 | ML_ACCEPT_ZSTD))
			      << ML_HELLO_F_CODEC_SHIFT);
}

static void send_hello(struct ml_path *path, uint8_t type)
{
	struct ml_hello h;
	uint8_t buf[ML_HELLO_MAX];
	hello_fill(path->peer, &h, path->origin_idx);
	if (type == ML_FT_HELLO_ACK)
		h.min_version = h.max_version = ML_WIRE_VERSION;
	if (path->ops->read) /* this end can pull RDESC fragments */
		h.flags |= ML_HELLO_F_RDMA_READ;
	path->auth_wait = 0;
	if (type == ML_FT_HELLO && ml_keyring_offer(&path->peer->ctx->keys, &path->auth_key)) {
		if (ml_auth_nonce(h.nonce) != 0) {
			ml_path_fail(path, ML_ESYS, "no random bytes for the authentication nonce");
			return;
		}
		h.flags |= ML_HELLO_F_AUTH |
			   (uint16_t)(path->peer->ctx->cfg.protect << ML_HELLO_F_PROTECT_SHIFT);
		memcpy(h.key_id, path->auth_key.id, sizeof(h.key_id));
		path->auth_wait = 1;
	}
	size_t n = ml_hello_encode(buf, &h);
	memcpy(path->auth_hello, buf, n); /* the MACs cover exactly these bytes */
	ml_path_send_ctrl(path, type, buf, (uint32_t)n);
}

/* Seal what this path sends after the handshake bytes still waiting, and
 * open what it receives (a connector: from the end of the HELLO_ACK on). */
static int start_sealing(struct ml_path *path, int protect, const uint8_t *tx_key,
			 const uint8_t *rx_key)
{
	path->seal = ml_seal_new(protect, tx_key, rx_key, path->ctrl_len - path->ctrl_off);
	if (!path->seal) {
		ml_path_fail(path, ML_ENOMEM, "cannot set up the path's protection");
		return -1;
	}
	ML_STAT_SET(path->st.protect, protect);
	return 0;
}

/* The acceptor's challenge: check its proof and its choice of protection,
 * then give ours. */
static void on_auth_challenge(struct ml_path *path, const struct ml_frame_hdr *h,
			      const uint8_t *payload)
{
	uint8_t want[ML_MAC_LEN], proof[ML_MAC_LEN], c2a[ML_SEAL_KEY_LEN], a2c[ML_SEAL_KEY_LEN];
	if (!path->auth_wait) {
		ml_path_fail(path, ML_EAUTH,
			     ml_keyring_enabled(&path->peer->ctx->keys)
				     ? "unexpected authentication challenge"
				     : "the acceptor has a cluster key; this node has none");
		return;
	}
	if (h->payload_len < ML_AUTH_CHALLENGE_LEN) {
		ml_path_fail(path, ML_EPROTO, "short authentication challenge");
		return;
	}
	const uint8_t *nonce = payload, *mac = payload + ML_NONCE_LEN;
	int protect = payload[ML_NONCE_LEN + ML_MAC_LEN];
	if (ml_auth_mac(&path->auth_key, "acceptor", path->auth_hello, ML_HELLO_MAX, nonce, protect,
			want) ||
	    !ml_auth_mac_equal(want, mac)) {
		ml_path_fail(path, ML_EAUTH, "the acceptor failed authentication (another cluster key, "
					     "or a tampered handshake)");
		return;
	}
	if (protect < path->peer->ctx->cfg.protect || protect > ML_PROTECT_ENCRYPT) {
		char why[96];
		snprintf(why, sizeof(why), "the acceptor chose protection %d; this node needs %s",
			 protect, ml_protect_name(path->peer->ctx->cfg.protect));
		ml_path_fail(path, ML_EAUTH, why);
		return;
	}
	if (ml_auth_mac(&path->auth_key, "connector", path->auth_hello, ML_HELLO_MAX, nonce, protect,
			proof) ||
	    (protect && ml_seal_derive(&path->auth_key, path->auth_hello, ML_HELLO_MAX, nonce,
				       protect, c2a, a2c))) {
		ml_path_fail(path, ML_ESYS, "cannot compute the authentication proof or the path's keys");
		return;
	}
	explicit_bzero(&path->auth_key, sizeof(path->auth_key));
	path->auth_wait = 0;
	ML_STAT_SET(path->st.protect, ML_PROTECT_NONE);
	ml_path_send_ctrl(path, ML_FT_AUTH, proof, sizeof(proof));
	if (protect && start_sealing(path, protect, c2a, a2c) == 0)
		path->seal_rx_wait = 1;
	explicit_bzero(c2a, sizeof(c2a));
	explicit_bzero(a2c, sizeof(a2c));
}

static void start_io(struct ml_path *path)
{
	struct ml_ctx *ctx = path->peer->ctx;
	int room_events;
	int room = path->ops->room_fd(path->fd, &room_events);
	ev_io_init(&path->rio, on_read, path->fd, EV_READ);
	ev_io_init(&path->wio, on_write, room, room_events == ML_TP_READABLE ? EV_READ : EV_WRITE);
	path->ops->set_timeouts(path->fd, (unsigned)(ctx->cfg.tcp_user_timeout_s * 1000));
	path->rx_total = path->rx_ready = 0;
	path->mark_head = path->mark_count = 0;
	path->last_rx = ev_now(path->peer->w->loop);
	update_rx_watch(path);
}

static void path_up(struct ml_path *path)
{
	struct ml_ctx *ctx = path->peer->ctx;
	struct ev_loop *loop = path->peer->w->loop;
	ev_tstamp now = ev_now(loop);
	path->greeted = 1;
	path->auth_failed = 0;
	path->failures = 0;
	path->last_rx = now;
	path->beat_since_up = 0;
	path->peer_beat_ns = path->peer->peer_beat_ns; /* caught up until it misses one */
	path->last_beat = now;
	ML_STAT_ADD(path->st.connects, 1);
	ev_timer_stop(loop, &path->timer);
	ev_timer_again(loop, &path->heartbeat);
	ml_flap_on_up(&path->flap, now);
	path->held = 0;
	if (ml_flap_needs_probation(&path->flap) && path->peer->paths_up) {
		/* It flapped: it must answer heartbeats before it carries data. */
		char why[96];
		snprintf(why, sizeof(why), "connected after %u flap(s): heartbeats only for %.2f s",
			 path->flap.level, ctx->cfg.probation_s);
		set_state(path, ML_PATH_PROBATION, why);
		ev_timer_set(&path->probation, ctx->cfg.probation_s, 0);
		ev_timer_start(loop, &path->probation);
		return;
	}
	set_state(path, ML_PATH_UP, "handshake complete");
	count_up(path, 1);
}

void ml_path_start_connect(struct ml_path *path)
{
	struct ml_peer *p = path->peer;
	int rc = path->ops->connect(&path->ep, &path->fd);
	if (rc) {
		ml_log(p->ctx, ML_LOG_DEBUG, "peer %u path %u: connect %s: %s", p->node_id, path->idx,
		       path->st.url, strerror(errno));
		path->fd = -1;
		schedule_reconnect(path);
		return;
	}
	set_state(path, ML_PATH_CONNECTING, "connecting");
	/* Writability tells that the connect finished; on_write checks. */
	start_io(path);
	ev_io_start(p->w->loop, &path->wio);
	ev_timer_set(&path->timer, CONNECT_TIMEOUT_S, 0);
	ev_timer_start(p->w->loop, &path->timer);
}

/* RDESC frames may go both ways: this end's transport can READ, and the
 * peer's HELLO (or HELLO_ACK) said the same of its end. */
static int zcopy_agreed(const struct ml_path *path, const struct ml_hello *peer_hello)
{
	return path->ops->read && (peer_hello->flags & ML_HELLO_F_RDMA_READ);
}

void ml_path_attach(struct ml_path *path, const struct ml_cmd_attach *ca)
{
	path->fd = ca->fd;
	path->ops = ca->ops;
	path->connected = 1;
	pthread_mutex_lock(&path->reason_lock); /* stats readers copy it under the lock */
	snprintf(path->st.url, sizeof(path->st.url), "%s", ca->url);
	pthread_mutex_unlock(&path->reason_lock);
	start_io(path);
	if (ml_peer_check_incarnation(path->peer, &ca->hello, path) != 0)
		return; /* path failed inside */
	path->zcopy = zcopy_agreed(path, &ca->hello);
	send_hello(path, ML_FT_HELLO_ACK);
	ML_STAT_SET(path->st.protect, ML_PROTECT_NONE);
	if (ca->protect && start_sealing(path, ca->protect, ca->seal_a2c, ca->seal_c2a) != 0)
		return;
	path_up(path);
}

/* A fragment of a failed path goes back to the session's queue (via tmp);
 * one that was written, even partly, counts as lost in flight there. */
static void requeue(struct ml_path *path, struct cds_list_head *tmp, struct ml_frag *f, int written)
{
	cds_list_del(&f->link);
	f->path = NULL;
	f->state = ML_FRAG_PENDING;
	f->waiting_bulk = 0;
	if (written) {
		f->lost_on = path;
		ML_STAT_ADD(path->st.frames_failed_inflight, 1);
	}
	cds_list_add_tail(&f->link, tmp);
}

void ml_path_fail(struct ml_path *path, int status, const char *why)
{
	struct ml_peer *p = path->peer;
	struct ev_loop *loop = p->w->loop;
	struct ml_frag *f, *tmpf;
	CDS_LIST_HEAD(tmp);

	if (path->fd >= 0) {
		ev_io_stop(loop, &path->rio);
		ev_io_stop(loop, &path->wio);
		path->ops->close(path->fd);
		path->fd = -1;
	}
	ml_zc_path_failed(path); /* its READs died with the connection */
	path->zcopy = 0;
	ev_timer_stop(loop, &path->heartbeat);
	ev_timer_stop(loop, &path->probation);
	ev_timer_stop(loop, &path->rx_release);
	ev_timer_stop(loop, &path->timer);
	if (path->greeted && ml_flap_on_failure(&path->flap, ev_now(loop), p->ctx->cfg.flap_window_s))
		ML_STAT_ADD(path->st.flaps, 1);
	if (path->dirty) {
		cds_list_del_init(&path->dirty_link);
		path->dirty = 0;
	}
	/* Oldest first: what was written, then what was only queued. */
	cds_list_for_each_entry_safe(f, tmpf, &path->inflight, link)
		requeue(path, &tmp, f, 1);
	cds_list_for_each_entry_safe(f, tmpf, &path->txq, link) {
		requeue(path, &tmp, f, path->head_written > 0);
		path->head_written = 0; /* only the first can be part-written */
	}
	path->bulk_mark = NULL;
	path->bulk_waiting = 0;
	/* Older than anything waiting: they go out first. */
	cds_list_splice(&tmp, &p->fragq);
	path->outstanding = 0;
	ML_STAT_SET(path->st.inflight_frames, 0);
	ML_STAT_SET(path->st.inflight_bytes, 0);
	path->head_written = 0;
	free(path->tail);
	path->tail = NULL;
	path->tail_off = path->tail_len = 0;
	path->ctrl_off = path->ctrl_len = 0;
	path->rxoff = path->rxlen = 0;
	path->part_since = 0;
	path->greeted = 0;
	path->connected = 0;
	path->mark_count = 0;
	ML_STAT_ADD(path->st.failures, 1);
	/* The caller's reason says what happened; the status adds only whose
	 * fault it was when the peer broke the rules. */
	char reason[160];
	if (status == ML_EPROTO || status == ML_EVERSION || status == ML_ENODE || status == ML_ELIMIT)
		snprintf(reason, sizeof(reason), "%s: %s", ml_strerror(status), why);
	else
		snprintf(reason, sizeof(reason), "%s", why);
	explicit_bzero(&path->auth_key, sizeof(path->auth_key));
	path->auth_wait = 0;
	ml_seal_free(path->seal);
	path->seal = NULL;
	path->seal_rx_wait = 0;
	if (status == ML_EAUTH && !path->auth_failed && !p->w->stopped) {
		/* A misconfigured cluster: an error, not a retry detail; once
		 * until the path comes up, as the reconnects repeat it. */
		path->auth_failed = 1;
		ml_log(p->ctx, ML_LOG_ERR, "peer %u path %u (%s): authentication failed: %s",
		       p->node_id, path->idx, path->st.url, why);
	}
	set_state(path, path->outbound ? ML_PATH_DOWN : ML_PATH_CLOSED, reason);
	if (path->counted_up)
		count_up(path, 0);
	else
		ml_peer_mark_dirty(p);
	if (path->outbound && !p->w->stopped)
		schedule_reconnect(path);
}

/* ---- sending ---- */

void ml_path_send_close(struct ml_path *path, int status, const char *why)
{
	/* Only between frames: after a part-written one the peer would read
	 * the CLOSE as the rest of it. */
	if (path->fd < 0 || path->head_written || path->tail_off < path->tail_len ||
	    (path->ctrl_off > 0 && path->ctrl_off < path->ctrl_len) ||
	    (path->seal && ml_seal_pending(path->seal)))
		return;
	uint8_t frame[ML_WIRE_HDR_LEN + 4 + 120];
	size_t wl = strlen(why) < 120 ? strlen(why) : 120;
	struct ml_frame_hdr h = { .type = ML_FT_CLOSE, .payload_len = (uint32_t)(4 + wl),
				  .session = path->peer->session_id };
	ml_frame_encode(frame, &h);
	ml_put32(frame + ML_WIRE_HDR_LEN, (uint32_t)status);
	memcpy(frame + ML_WIRE_HDR_LEN + 4, why, wl);
	struct iovec v = { frame, ML_WIRE_HDR_LEN + 4 + wl };
	if (path_writev(path, &v, 1) != (ssize_t)v.iov_len) /* sealed on a protected path */
		ml_log(path->peer->ctx, ML_LOG_DEBUG, "peer %u path %u: CLOSE not sent whole",
		       path->peer->node_id, path->idx);
}

int ml_path_send_ctrl(struct ml_path *path, uint8_t type, const void *payload, uint32_t len)
{
	struct ml_frame_hdr h = { .type = type, .payload_len = len, .session = path->peer->session_id };
	size_t need = ML_WIRE_HDR_LEN + len;

	if (path->fd < 0)
		return ML_ENOTCONN;
	if (path->ctrl_off == path->ctrl_len)
		path->ctrl_off = path->ctrl_len = 0;
	if (ML_CTRL_BUF - path->ctrl_len < need && path->ctrl_off > 0) {
		/* Move the unwritten bytes to the front: the stream resumes at
		 * ctrl_off whether or not it is a frame boundary. */
		memmove(path->ctrl, path->ctrl + path->ctrl_off, path->ctrl_len - path->ctrl_off);
		path->ctrl_len -= path->ctrl_off;
		path->ctrl_off = 0;
	}
	if (ML_CTRL_BUF - path->ctrl_len < need)
		return ML_EAGAIN; /* peer not reading; acks and pings are regenerated */
	ml_frame_encode(path->ctrl + path->ctrl_len, &h);
	if (len)
		memcpy(path->ctrl + path->ctrl_len + ML_WIRE_HDR_LEN, payload, len);
	path->ctrl_len += need;
	mark_dirty(path);
	return 0;
}

/* f is begun or leaves txq: small messages no longer pass it. The mark moves
 * to the next fragment (bulk, as everything after the mark is). */
static void bulk_leaves(struct ml_path *path, struct ml_frag *f)
{
	if (f == path->bulk_mark)
		path->bulk_mark = f->link.next == &path->txq
					  ? NULL
					  : cds_list_entry(f->link.next, struct ml_frag, link);
	if (f->waiting_bulk) {
		f->waiting_bulk = 0;
		path->bulk_waiting -= f->len;
	}
}

static void txq_del(struct ml_path *path, struct ml_frag *f)
{
	bulk_leaves(path, f);
	cds_list_del(&f->link);
}

/* Whether f goes as an RDESC: its message lies in registered memory, is large
 * enough, and both ends of this unsealed path can READ (a sealed path must
 * authenticate every byte, and READ bypasses the seal). */
static int zcopy_desc(struct ml_path *path, struct ml_frag *f)
{
	const struct ml_msg_out *m = f->msg;
	struct ml_rdesc d = { .len = f->len };
	if (!path->zcopy || path->seal || !m->zmem || m->len < path->peer->ctx->cfg.zcopy_min ||
	    path->ops->mem_key(path->fd, m->zmem->tp, &d.rkey) != 0)
		return 0;
	d.addr = (uint64_t)(uintptr_t)m->zmem->base + m->zoff + f->offset;
	if (path->fault == ML_FAULT_BAD_KEY)
		d.rkey = ~d.rkey;
	ml_rdesc_encode(f->desc, &d);
	return 1;
}

/* Bytes of f's frame after its header: its payload, or its descriptor. */
static size_t frag_wire_len(const struct ml_frag *f)
{
	return f->zc ? ML_RDESC_LEN : f->len;
}

void ml_path_queue_frag(struct ml_path *path, struct ml_frag *f)
{
	struct ml_msg_out *m = f->msg;
	struct ml_peer *p = path->peer;
	f->zc = (uint8_t)zcopy_desc(path, f);
	struct ml_frame_hdr h = {
		.type = f->zc ? ML_FT_RDESC : ML_FT_DATA,
		.flags = (uint16_t)(m->kind | m->wflags),
		.deadline_us = m->deadline_us,
		.payload_len = (uint32_t)frag_wire_len(f),
		.offset = f->offset,
		.session = p->session_id,
		.seq = m->seq,
		.tag = m->tag,
		.ref = m->ref,
		.msg_len = m->len,
	};
	ml_frame_encode(f->hdr, &h);
	if (f->lost_on) { /* this is a resend of what a failed path lost */
		ML_STAT_ADD(f->lost_on->st.frames_resent, 1);
		ML_STAT_ADD(p->st.frames_resent, 1);
		f->lost_on = NULL;
	}
	f->path = path;
	f->state = ML_FRAG_QUEUED;
	f->queued_at = ev_now(p->w->loop);
	f->ahead = path->outstanding + f->len;
	f->waiting_bulk = (uint8_t)ml_frag_is_bulk(f);
	if (!f->waiting_bulk && path->bulk_mark) {
		cds_list_add_tail(&f->link, &path->bulk_mark->link); /* just before it */
		f->ahead -= path->bulk_waiting; /* its rate sample: what it did not pass */
	} else {
		cds_list_add_tail(&f->link, &path->txq);
		if (f->waiting_bulk && !path->bulk_mark)
			path->bulk_mark = f;
	}
	if (f->waiting_bulk)
		path->bulk_waiting += f->len;
	path->outstanding += f->len;
	ML_STAT_ADD(path->st.inflight_frames, 1);
	ML_STAT_ADD(path->st.inflight_bytes, f->len);
	mark_dirty(path);
}

/* The message of f was acknowledged: take f off this path. If f is half
 * written, the stream still needs the rest of its frame, but the payload
 * belongs to the application, which may free it once the message completes:
 * the rest is copied into tail. Without memory for that copy the stream
 * cannot go on, and the path fails. */
static unsigned frame_iov(const struct ml_frag *f, size_t skip, struct iovec *iov, unsigned max);

/* Delivery rate, from each acknowledged fragment: the bytes that were on the
 * path when it was queued (itself included) drained in the time it took to be
 * acknowledged, less the path's RTT without queues. Unlike bytes acked per
 * second, this needs no saturation: a lightly used fast path is not mistaken
 * for a slow one (its bytes drain at once), and a slow path shows its rate on
 * the first fragment it carries, before it holds up a request's tail. */
static void update_rate(struct ml_path *path, const struct ml_frag *f)
{
	double drain = ev_now(path->peer->w->loop) - f->queued_at - path->rtt_min_s;
	if (drain < RATE_MIN_DRAIN_S)
		drain = RATE_MIN_DRAIN_S;
	double sample = (double)f->ahead / drain;
	path->rate_bps = 0.875 * path->rate_bps + 0.125 * sample;
	if (path->rate_bps < RATE_FLOOR_BPS)
		path->rate_bps = RATE_FLOOR_BPS;
	if (path->rate_bps > RATE_CEIL_BPS)
		path->rate_bps = RATE_CEIL_BPS;
	__atomic_store(&path->st.rate_bps, &path->rate_bps, __ATOMIC_RELAXED);
}

void ml_path_unqueue_frag(struct ml_path *path, struct ml_frag *f)
{
	int part_written = f->state == ML_FRAG_QUEUED && path->head_written > 0 &&
			   f == cds_list_first_entry(&path->txq, struct ml_frag, link);
	if (part_written) {
		struct iovec iov[ML_TX_IOV];
		unsigned n = frame_iov(f, path->head_written, iov, ML_TX_IOV);
		size_t rest = ML_WIRE_HDR_LEN + frag_wire_len(f) - path->head_written;
		path->tail = malloc(rest);
		path->head_written = 0;
		if (path->tail) {
			size_t at = 0;
			for (unsigned i = 0; i < n; i++) {
				memcpy(path->tail + at, iov[i].iov_base, iov[i].iov_len);
				at += iov[i].iov_len;
			}
			path->tail_off = 0;
			path->tail_len = rest;
		}
	}
	if (f->state == ML_FRAG_SENT) {
		ML_STAT_ADD(path->st.frames_acked, 1);
		ML_STAT_ADD(path->st.bytes_acked, f->len);
		update_rate(path, f);
	}
	if (f->state == ML_FRAG_QUEUED)
		txq_del(path, f);
	else
		cds_list_del(&f->link);
	f->state = ML_FRAG_IDLE;
	f->path = NULL;
	path->outstanding -= f->len;
	ML_STAT_ADD(path->st.inflight_frames, -1);
	ML_STAT_ADD(path->st.inflight_bytes, -(uint64_t)f->len);
	if (part_written && !path->tail)
		ml_path_fail(path, ML_ENOMEM, "cannot keep the rest of a half-written frame");
}

/* iovecs for the frame of f, skipping its first `skip` bytes. */
static unsigned frame_iov(const struct ml_frag *f, size_t skip, struct iovec *iov, unsigned max)
{
	unsigned n = 0;
	if (skip < ML_WIRE_HDR_LEN) {
		iov[n].iov_base = (void *)(f->hdr + skip);
		iov[n++].iov_len = ML_WIRE_HDR_LEN - skip;
		skip = 0;
	} else {
		skip -= ML_WIRE_HDR_LEN;
	}
	if (f->zc) {
		if (skip < ML_RDESC_LEN) {
			iov[n].iov_base = (void *)(f->desc + skip);
			iov[n++].iov_len = ML_RDESC_LEN - skip;
		}
		return n;
	}
	/* Payload bytes [f->offset + skip, f->offset + f->len) of the message. */
	size_t pos = f->offset + skip, end = (size_t)f->offset + f->len, base = 0;
	const struct ml_msg_out *m = f->msg;
	for (unsigned i = 0; i < m->iovcnt && pos < end && n < max; i++) {
		size_t l = m->iov[i].iov_len;
		if (pos < base + l) {
			size_t from = pos - base, take = l - from;
			if (take > end - pos)
				take = end - pos;
			iov[n].iov_base = (char *)m->iov[i].iov_base + from;
			iov[n++].iov_len = take;
			pos += take;
		}
		base += l;
	}
	return pos == end ? n : 0; /* 0: did not fit in max iovecs */
}

static void frag_written(struct ml_path *path, struct ml_frag *f)
{
	txq_del(path, f);
	ML_STAT_ADD(path->st.frames_sent, 1);
	ML_STAT_ADD(path->st.bytes_sent, f->len);
	if (f->zc)
		ML_STAT_ADD(path->st.bytes_zcopy, f->len);
	else if (path->ops->copies)
		ML_STAT_ADD(path->st.bytes_copied, f->len);
	f->state = ML_FRAG_SENT;
	f->sent_at = ev_now(path->peer->w->loop);
	cds_list_add_tail(&f->link, &path->inflight);
}

/* writev, through the path's protection when it has one. */
static ssize_t path_writev(struct ml_path *path, const struct iovec *iov, unsigned n)
{
	return path->seal ? ml_seal_writev(path->seal, path->ops, path->fd, iov, (int)n)
			  : path->ops->writev(path->fd, iov, (int)n);
}

void ml_path_flush(struct ml_path *path)
{
	struct iovec iov[ML_TX_IOV];

	if (path->fd < 0 || !path->connected || ev_is_active(&path->wio))
		return; /* on_write will call again when the socket can take more */
	if (tx_blocked(path))
		return; /* injected blackhole: the bytes wait, as in a dead network */
	for (;;) {
		unsigned n = 0;
		size_t bytes = 0;
		struct ml_frag *f, *head = NULL;
		/* Sealed bytes taken earlier go out before anything new. */
		if (path->seal && ml_seal_pending(path->seal) &&
		    ml_seal_drain(path->seal, path->ops, path->fd) != 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(path->peer->w->loop, &path->wio);
				return;
			}
			char why[128];
			ml_path_fail(path, ML_ESYS, io_error(path, errno, why, sizeof(why)));
			return;
		}
		if (path->tail) {
			iov[n].iov_base = path->tail + path->tail_off;
			iov[n++].iov_len = path->tail_len - path->tail_off;
		} else if (path->head_written) {
			head = cds_list_first_entry(&path->txq, struct ml_frag, link);
			n += frame_iov(head, path->head_written, iov, ML_TX_IOV);
		}
		if (path->ctrl_len > path->ctrl_off) {
			iov[n].iov_base = path->ctrl + path->ctrl_off;
			iov[n++].iov_len = path->ctrl_len - path->ctrl_off;
		}
		cds_list_for_each_entry(f, &path->txq, link) {
			if (f == head)
				continue;
			/* A closing context writes its last acks, not new data. */
			if (n + 2 >= ML_TX_IOV || bytes >= ML_TX_BATCH || !path->greeted ||
			    path->peer->w->stopped)
				break;
			unsigned k = frame_iov(f, 0, iov + n, ML_TX_IOV - n);
			if (!k)
				break;
			n += k;
			bytes += ML_WIRE_HDR_LEN + frag_wire_len(f);
		}
		if (n == 0)
			return;
		ssize_t w = path_writev(path, iov, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(path->peer->w->loop, &path->wio);
				return;
			}
			if (errno == EINTR)
				continue;
			char why[128];
			ml_path_fail(path, ML_ESYS, io_error(path, errno, why, sizeof(why)));
			return;
		}
		/* Consume in write order: head rest, control, then whole frames. */
		size_t left = (size_t)w;
		if (path->tail) {
			size_t rest = path->tail_len - path->tail_off;
			if (left < rest) {
				path->tail_off += left;
				left = 0;
			} else {
				left -= rest;
				free(path->tail);
				path->tail = NULL;
			}
		} else if (head) {
			size_t rest = ML_WIRE_HDR_LEN + frag_wire_len(head) - path->head_written;
			if (left < rest) {
				path->head_written += left;
				left = 0;
			} else {
				left -= rest;
				path->head_written = 0;
				frag_written(path, head);
			}
		}
		if (!path->head_written && !path->tail) {
			size_t c = path->ctrl_len - path->ctrl_off;
			c = left < c ? left : c;
			path->ctrl_off += c;
			left -= c;
			while (left > 0) {
				f = cds_list_first_entry(&path->txq, struct ml_frag, link);
				size_t flen = ML_WIRE_HDR_LEN + frag_wire_len(f);
				if (left < flen) {
					path->head_written = left;
					bulk_leaves(path, f); /* begun: nothing passes it now */
					left = 0;
				} else {
					left -= flen;
					frag_written(path, f);
				}
			}
		}
		if (path->tail || path->head_written || path->ctrl_off < path->ctrl_len ||
		    (path->seal && ml_seal_pending(path->seal))) {
			/* The kernel took less than offered: wait for room. */
			ev_io_start(path->peer->w->loop, &path->wio);
			return;
		}
		if (cds_list_empty(&path->txq) || !path->greeted)
			return;
	}
}

static void on_write(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ml_path *path = caa_container_of(io, struct ml_path, wio);
	(void)revents;
	ev_io_stop(loop, io);
	if (!path->connected) {
		int err = 0;
		int rc = path->ops->connect_done(path->fd, &err);
		if (rc == ML_EAGAIN) { /* a step of a longer connect (RDMA: resolve, route) */
			ev_io_start(loop, io);
			return;
		}
		if (rc) {
			char why[128], text[112];
			snprintf(why, sizeof(why), "connect: %s", io_error(path, err, text, sizeof(text)));
			ml_path_fail(path, ML_EADDR, why);
			return;
		}
		path->connected = 1;
		send_hello(path, ML_FT_HELLO);
	}
	ml_path_flush(path);
}

/* ---- receiving ---- */

static void on_hello_ack(struct ml_path *path, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	struct ml_peer *p = path->peer;
	struct ml_hello hello;
	enum ml_wire_err e = ml_hello_decode(payload, h->payload_len, &hello);
	if (e) {
		ml_path_fail(path, ML_EPROTO, ml_wire_strerror(e));
		return;
	}
	if (hello.node_id != p->node_id) {
		char why[96];
		snprintf(why, sizeof(why), "endpoint answers as node %u", hello.node_id);
		ml_path_fail(path, ML_ENODE, why);
		return;
	}
	if (hello.max_version != ML_WIRE_VERSION) {
		ml_path_fail(path, ML_EVERSION, "peer chose a version we did not offer");
		return;
	}
	if (ml_peer_check_incarnation(p, &hello, path) != 0)
		return;
	path->zcopy = zcopy_agreed(path, &hello);
	path_up(path);
}

static void on_close_frame(struct ml_path *path, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	int status = ML_EPROTO;
	char why[160] = "peer closed the path";
	if (h->payload_len >= ML_CLOSE_MIN) {
		status = (int32_t)ml_get32(payload);
		snprintf(why, sizeof(why), "peer closed the path: %.*s", (int)(h->payload_len - 4), payload + 4);
	}
	ml_path_fail(path, status, why);
}

static void on_pong(struct ml_path *path, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	if (h->payload_len < ML_PING_LEN)
		return;
	uint64_t sent = ml_get64(payload), now = mono_ns();
	if (sent > now)
		return;
	double rtt = (double)(now - sent) / 1e9;
	path->srtt_s = path->srtt_s ? 0.875 * path->srtt_s + 0.125 * rtt : rtt;
	if (!path->rtt_min_s || rtt < path->rtt_min_s || ++path->rtt_min_age > RTT_MIN_WINDOW) {
		path->rtt_min_s = rtt;
		path->rtt_min_age = 0;
	}
	double us = path->srtt_s * 1e6;
	__atomic_store(&path->st.rtt_us, &us, __ATOMIC_RELAXED);
}

/* The peer's heartbeat, stamped with its clock: what the detector compares
 * between paths (a backlog of old bytes carries no new stamps). */
static void on_peer_beat(struct ml_path *path, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	if (h->payload_len < ML_PING_LEN)
		return;
	uint64_t t = ml_get64(payload);
	if (t > path->peer_beat_ns)
		path->peer_beat_ns = t;
	path->beat_since_up = 1;
	if (t > path->peer->peer_beat_ns)
		path->peer->peer_beat_ns = t;
}

/* Returns 0 to go on, -1 when the path failed (stop touching it). */
static int handle_frame(struct ml_path *path, const struct ml_frame_hdr *h, const uint8_t *payload)
{
	struct ml_peer *p = path->peer;
	if (h->type == ML_FT_CLOSE) {
		on_close_frame(path, h, payload);
		return -1;
	}
	if (!path->greeted) {
		if (h->type == ML_FT_AUTH && path->outbound) {
			on_auth_challenge(path, h, payload);
			return path->fd >= 0 ? 0 : -1;
		}
		if (h->type != ML_FT_HELLO_ACK || !path->outbound) {
			ml_path_fail(path, ML_EPROTO, "frame before handshake");
			return -1;
		}
		if (path->auth_wait) {
			ml_path_fail(path, ML_EAUTH, "the acceptor did not authenticate (it has no cluster key)");
			return -1;
		}
		on_hello_ack(path, h, payload);
		return path->greeted ? 0 : -1;
	}
	if (h->session != p->session_id) {
		ml_path_fail(path, ML_EPROTO, "frame of another session");
		return -1;
	}
	switch (h->type) {
	case ML_FT_DATA:
		if (ml_peer_on_data(p, path, h, payload) != 0) {
			ml_path_fail(path, ML_EPROTO, "data frame breaks the session's rules");
			return -1;
		}
		return path->fd >= 0 ? 0 : -1;
	case ML_FT_RDESC:
		if (!path->zcopy || path->seal) {
			ml_path_fail(path, ML_EPROTO, "RDMA descriptor on a path that cannot carry one");
			return -1;
		}
		if (ml_zc_on_desc(p, path, h, payload) != 0)
			return -1;
		return path->fd >= 0 ? 0 : -1;
	case ML_FT_ACK: {
		struct ml_ack a;
		if (ml_ack_decode(payload, h->payload_len, &a) != ML_WIRE_OK) {
			ml_path_fail(path, ML_EPROTO, "malformed ack");
			return -1;
		}
		ml_peer_on_ack(p, &a);
		return 0;
	}
	case ML_FT_PING:
		ml_path_send_ctrl(path, ML_FT_PONG, payload, h->payload_len < 64 ? h->payload_len : 64);
		on_peer_beat(path, h, payload);
		return 0;
	case ML_FT_PONG:
		on_pong(path, h, payload);
		return 0;
	default:
		ml_path_fail(path, ML_EPROTO, "unexpected frame type after handshake");
		return -1;
	}
}

/* DELAY and DROP hold what was read: the bytes up to `end` may be parsed
 * from `due` on. Stream order is kept: a mark is never due before the one
 * in front of it. */
static void hold_read(struct ml_path *path, ev_tstamp now)
{
	double hold = path->fault == ML_FAULT_DELAY ? path->fault_value : 0;
	if (path->fault == ML_FAULT_DROP && (double)rand_r(&path->seed) / RAND_MAX < path->fault_value)
		hold += DROP_STALL_S;
	ev_tstamp due = now + hold;
	if (path->mark_count) {
		unsigned last = (path->mark_head + path->mark_count - 1) % ML_RX_MARKS;
		if (due < path->marks[last].due)
			due = path->marks[last].due;
	} else if (hold <= 0) {
		path->rx_ready = path->rx_total;
		return;
	}
	unsigned at = (path->mark_head + path->mark_count) % ML_RX_MARKS;
	path->marks[at].end = path->rx_total;
	path->marks[at].due = due;
	if (path->mark_count++ == 0) {
		ev_timer_set(&path->rx_release, due - now, 0);
		ev_timer_start(path->peer->w->loop, &path->rx_release);
	}
}

static void release_due(struct ml_path *path, ev_tstamp now)
{
	while (path->mark_count && path->marks[path->mark_head].due <= now) {
		path->rx_ready = path->marks[path->mark_head].end;
		path->mark_head = (path->mark_head + 1) % ML_RX_MARKS;
		path->mark_count--;
	}
	if (path->mark_count) {
		ev_timer_set(&path->rx_release, path->marks[path->mark_head].due - now, 0);
		ev_timer_start(path->peer->w->loop, &path->rx_release);
	}
}

static void on_rx_release(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_path *path = caa_container_of(t, struct ml_path, rx_release);
	(void)revents;
	release_due(path, ev_now(loop));
	rx_pump(path, ev_now(loop));
	if (path->fd >= 0)
		update_rx_watch(path);
}

/* Heard from the peer on this path: alive. */
static void heard(struct ml_path *path, ev_tstamp now)
{
	path->last_rx = now;
	if (path->state == ML_PATH_SUSPECT) {
		set_state(path, ML_PATH_UP, "heard again");
		count_up(path, 1);
	}
}

/* Move the bytes not yet parsed to the front of rxbuf, for room behind them. */
static void rx_compact(struct ml_path *path)
{
	if (path->rxoff == 0)
		return;
	memmove(path->rxbuf, path->rxbuf + path->rxoff, path->rxlen - path->rxoff);
	path->rxlen -= path->rxoff;
	path->rxoff = 0;
}

/* n bytes were appended to rxbuf (read, or opened from sealed records):
 * they may be parsed now, or when the fault that holds them lets them go. */
static void rx_arrived(struct ml_path *path, size_t n, ev_tstamp now)
{
	path->rxlen += n;
	path->rx_total += (uint64_t)n;
	if (path->fault == ML_FAULT_DELAY || path->fault == ML_FAULT_DROP || path->mark_count)
		hold_read(path, now);
	else
		path->rx_ready = path->rx_total;
}

static int rx_sealed(const struct ml_path *path)
{
	return path->seal && !path->seal_rx_wait;
}

static void on_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ml_path *path = caa_container_of(io, struct ml_path, rio);
	(void)revents;
	struct iovec v;

	if (path->zc_posted && ml_zc_poll(path))
		heard(path, ev_now(loop)); /* a READ's data crossed it */
	if (path->fd < 0)
		return;
	if (rx_sealed(path)) {
		v = ml_seal_rx_space(path->seal);
	} else {
		if (path->rxcap - path->rxlen < 4096)
			rx_compact(path);
		v = (struct iovec){ path->rxbuf + path->rxlen, path->rxcap - path->rxlen };
	}
	if (v.iov_len == 0) { /* full of held bytes: let the kernel keep the rest */
		update_rx_watch(path);
		return;
	}
	ssize_t n = path->ops->readv(path->fd, &v, 1);
	if (n == 0) {
		ml_path_fail(path, ML_ENOTCONN, "peer closed the connection");
		return;
	}
	if (n < 0) {
		char why[128];
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			ml_path_fail(path, ML_ESYS, io_error(path, errno, why, sizeof(why)));
		return;
	}
	ev_tstamp now = ev_now(loop);
	if (rx_sealed(path))
		ml_seal_rx_got(path->seal, (size_t)n);
	else
		rx_arrived(path, (size_t)n, now);
	rx_pump(path, now);
	if (path->fd >= 0)
		update_rx_watch(path);
}

/* The HELLO_ACK was the last frame in the clear: what follows it in rxbuf
 * is sealed, and goes back to the sealer to be opened. */
static int switch_to_sealed(struct ml_path *path)
{
	size_t rest = path->rxlen - path->rxoff;
	int rc = ml_seal_rx_push(path->seal, path->rxbuf + path->rxoff, rest);
	if (rc) {
		ml_path_fail(path, rc, "cannot keep the first sealed bytes");
		return -1;
	}
	path->rxlen = path->rxoff;
	path->rx_total -= rest;
	if (path->rx_ready > path->rx_total)
		path->rx_ready = path->rx_total;
	for (unsigned i = 0; i < path->mark_count; i++) {
		unsigned at = (path->mark_head + i) % ML_RX_MARKS;
		if (path->marks[at].end > path->rx_total)
			path->marks[at].end = path->rx_total;
	}
	path->seal_rx_wait = 0;
	return 0;
}

/* Open the sealed records that fit into rxbuf and parse what may be
 * parsed, again while that makes room for more. */
static void rx_pump(struct ml_path *path, ev_tstamp now)
{
	for (;;) {
		size_t got = 0;
		if (rx_sealed(path)) {
			const char *why = NULL;
			if (path->rxcap - path->rxlen < ML_SEAL_RECORD_MAX)
				rx_compact(path);
			int rc = ml_seal_open(path->seal, path->rxbuf + path->rxlen,
					      path->rxcap - path->rxlen, &got, &why);
			if (rc) {
				ml_path_fail(path, rc, why);
				return;
			}
			if (got)
				rx_arrived(path, got, now);
		}
		int waited = path->seal_rx_wait;
		parse_frames(path);
		if (path->fd < 0)
			return;
		int switched = waited && !path->seal_rx_wait;
		if (!rx_sealed(path) || (!got && !switched))
			return;
	}
}

/* Parse and handle the whole frames among the bytes that may be parsed. */
static void parse_frames(struct ml_path *path)
{
	struct ml_peer *p = path->peer;
	if (path->fd < 0)
		return;
	/* Stream position of rxbuf[0]: rx_total - rxlen. */
	uint64_t base = path->rx_total - path->rxlen;
	size_t limit = (size_t)(path->rx_ready - base);
	ev_tstamp now = ev_now(p->w->loop);
	int whole = 0; /* frames handled in this call */
	if (limit > path->rxoff)
		heard(path, now);
	while (limit > path->rxoff) {
		struct ml_frame_hdr h;
		const uint8_t *at = path->rxbuf + path->rxoff;
		size_t avail = limit - path->rxoff;
		enum ml_wire_err e = ml_frame_decode(at, avail, &p->ctx->limits, &h);
		if (e == ML_WIRE_NEED_MORE)
			break;
		if (e) {
			ml_path_fail(path, ML_EPROTO, ml_wire_strerror(e));
			return;
		}
		size_t total = (size_t)h.hdr_len + h.payload_len;
		if (avail < total) {
			if (path->rxcap - path->rxoff < total) /* make room for the whole frame */
				rx_compact(path);
			break;
		}
		/* An RDESC's fragment counts when its READ is done (zcopy.c). */
		ML_STAT_ADD(path->st.frames_recv, h.type == ML_FT_DATA);
		ML_STAT_ADD(path->st.bytes_recv, h.type == ML_FT_DATA ? h.payload_len : 0);
		if (h.type == ML_FT_DATA && path->ops->copies)
			ML_STAT_ADD(path->st.bytes_copied, h.payload_len);
		if (handle_frame(path, &h, at + h.hdr_len) != 0)
			return;
		path->rxoff += total;
		whole++;
		if (path->seal_rx_wait && path->greeted) {
			if (switch_to_sealed(path) != 0)
				return;
			break;
		}
	}
	/* Bytes are signs of life, so a peer trickling one frame that never
	 * ends would keep the path up for nothing: its frame has a deadline. */
	if (limit <= path->rxoff)
		path->part_since = 0;
	else if (whole || !path->part_since)
		path->part_since = now;
	if (path->rxoff == path->rxlen)
		path->rxoff = path->rxlen = 0;
}

/* ---- timers ---- */

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_path *path = caa_container_of(t, struct ml_path, timer);
	(void)loop;
	(void)revents;
	if (path->state == ML_PATH_CONNECTING)
		ml_path_fail(path, ML_ETIMEDOUT, "connect or handshake timed out");
	else if (path->state == ML_PATH_DOWN && path->outbound)
		ml_path_start_connect(path);
}


/* Frames written on the path but not yet acked go back to the session, to
 * be given to other paths: they were never written, so this is no resend. */
static void take_back_unwritten(struct ml_path *path)
{
	CDS_LIST_HEAD(tmp);
	struct ml_frag *f, *tmpf;
	cds_list_for_each_entry_safe(f, tmpf, &path->txq, link) {
		if (path->head_written && f == cds_list_first_entry(&path->txq, struct ml_frag, link))
			continue; /* part-written: the stream needs the rest of it */
		txq_del(path, f);
		f->path = NULL;
		f->state = ML_FRAG_PENDING;
		path->outstanding -= f->len;
		ML_STAT_ADD(path->st.inflight_frames, -1);
		ML_STAT_ADD(path->st.inflight_bytes, -(uint64_t)f->len);
		cds_list_add_tail(&f->link, &tmp);
	}
	ml_peer_take_back(path->peer, &tmp);
}


static void check_liveness(struct ml_path *path, ev_tstamp now)
{
	struct ml_ctx *ctx = path->peer->ctx;
	struct ml_detector_cfg dc = { ctx->cfg.heartbeat_interval_s, ctx->cfg.path_down_s,
				      ctx->cfg.all_silent_down_s };
	/* "Behind" compares this path's newest heartbeat with the other paths';
	 * before its first one that means nothing (the copy taken at path_up may
	 * even be 0, before any heartbeat of the session). An accepted path is
	 * up once we sent our HELLO_ACK, but the peer can beat on it only a
	 * round trip later. Until then its silence is judged by the long budget
	 * alone (it goes suspect, so no data waits on it meanwhile). */
	struct ml_path_view v = {
		.silent_s = now - path->last_rx,
		.behind_s = path->beat_since_up
				    ? (double)(path->peer->peer_beat_ns - path->peer_beat_ns) / 1e9
				    : 0,
		.srtt_s = path->srtt_s,
		.drain_s = (double)path->outstanding / path->rate_bps,
	};
	if (!cds_list_empty(&path->inflight))
		v.oldest_data_s = now - cds_list_first_entry(&path->inflight, struct ml_frag, link)->sent_at;
	ML_STAT_SET(path->st.silent_ms, (uint64_t)(v.silent_s * 1e3));
	char why[128];
	enum ml_verdict verdict = ml_detector_judge(&dc, &v, why, sizeof(why));
	if (verdict == ML_DEAD) {
		/* Input waiting in the kernel means our own loop is late, not the
		 * path: count it as heard (unless a fault keeps it there). */
		if (!rx_held(path) && path->ops->pending(path->fd) > 0) {
			heard(path, now);
			return;
		}
		ml_path_fail(path, ML_ETIMEDOUT, why);
	} else if (verdict == ML_SUSPECT && path->state == ML_PATH_UP) {
		set_state(path, ML_PATH_SUSPECT, why);
		count_up(path, 0);
		take_back_unwritten(path);
	}
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_path *path = caa_container_of(t, struct ml_path, heartbeat);
	uint8_t ts[ML_PING_LEN];
	(void)revents;
	if (!path->greeted)
		return;
	ev_tstamp now = ev_now(loop);
	ml_put64(ts, mono_ns());
	ml_path_send_ctrl(path, ML_FT_PING, ts, sizeof(ts));
	/* A tick that comes late means our own loop was stuck: what looks like
	 * silence may be unread input. Judge again at the next, timely tick. */
	double late = now - path->last_beat;
	path->last_beat = now;
	if (late > 3 * path->peer->ctx->cfg.heartbeat_interval_s)
		return;
	double part_s = path->part_since ? now - path->part_since : 0;
	if (part_s > path->peer->ctx->cfg.frame_timeout_s) {
		char why[96];
		snprintf(why, sizeof(why), "a frame begun %.1f s ago is still not whole", part_s);
		ml_path_fail(path, ML_ETIMEDOUT, why);
		return;
	}
	check_liveness(path, now);
}

static void on_probation_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_path *path = caa_container_of(t, struct ml_path, probation);
	(void)revents;
	if (path->state != ML_PATH_PROBATION)
		return;
	/* Heard within the last two heartbeats all along (or it would have
	 * been failed by check_liveness): it has earned its traffic back. */
	ev_tstamp now = ev_now(loop);
	if (now - path->last_rx > 2 * path->peer->ctx->cfg.heartbeat_interval_s + path->srtt_s) {
		ev_timer_set(t, path->peer->ctx->cfg.heartbeat_interval_s, 0);
		ev_timer_start(loop, t); /* not heard just now: look again shortly */
		return;
	}
	set_state(path, ML_PATH_UP, "probation passed");
	count_up(path, 1);
}

/* The peer has no working path left: a path in probation or held out for
 * flapping is better than none, so probation and hold are waived. */
void ml_path_waive_damping(struct ml_path *path)
{
	struct ev_loop *loop = path->peer->w->loop;
	if (path->state == ML_PATH_PROBATION) {
		ev_timer_stop(loop, &path->probation);
		set_state(path, ML_PATH_UP, "probation waived: no other path works");
		count_up(path, 1);
	} else if (path->held && path->state == ML_PATH_DOWN && path->outbound) {
		path->held = 0;
		ev_timer_stop(loop, &path->timer);
		ev_timer_set(&path->timer, path->peer->ctx->cfg.reconnect_min_s, 0);
		ev_timer_start(loop, &path->timer);
	}
}

/* ---- injected faults ---- */

static void clear_fault(struct ml_path *path, const char *why)
{
	struct ev_loop *loop = path->peer->w->loop;
	if (!path->fault)
		return;
	ml_log(path->peer->ctx, ML_LOG_WARN, "peer %u path %u (%s): fault %s cleared (%s)",
	       path->peer->node_id, path->idx, path->st.url, ml_fault_name(path->fault), why);
	path->fault = 0;
	ML_STAT_SET(path->st.fault, 0);
	ev_timer_stop(loop, &path->fault_timer);
	/* Held reads are released now, in order. */
	ev_timer_stop(loop, &path->rx_release);
	path->mark_count = 0;
	path->rx_ready = path->rx_total;
	if (path->fd >= 0) {
		/* Resume as a healed network would: what waited goes now. */
		path->last_rx = ev_now(loop);
		rx_pump(path, ev_now(loop));
	}
	if (path->fd >= 0) {
		update_rx_watch(path);
		mark_dirty(path);
	}
}

static void on_fault_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_path *path = caa_container_of(t, struct ml_path, fault_timer);
	(void)loop;
	(void)revents;
	clear_fault(path, "its time is up");
}

void ml_path_apply_fault(struct ml_path *path, const struct ml_fault_spec *spec)
{
	struct ev_loop *loop = path->peer->w->loop;
	switch (spec->fault) {
	case ML_FAULT_SHUTDOWN:
	case ML_FAULT_RESET:
		if (path->fd >= 0) {
			path->ops->inject(path->fd, spec->fault);
			ml_path_fail(path, ML_ENOTCONN, spec->fault == ML_FAULT_RESET
								 ? "fault injected: reset"
								 : "fault injected: shutdown");
		}
		return;
	case ML_FAULT_CLEAR:
		clear_fault(path, "cleared on request");
		return;
	default:
		break;
	}
	if (path->fault)
		clear_fault(path, "replaced by another fault");
	path->fault = spec->fault;
	path->fault_value = spec->value;
	ML_STAT_SET(path->st.fault, (uint64_t)spec->fault);
	char span[48] = "until cleared";
	if (spec->duration_s > 0)
		snprintf(span, sizeof(span), "for %g s", spec->duration_s);
	ml_log(path->peer->ctx, ML_LOG_WARN, "peer %u path %u (%s): fault %s injected (value %g, %s)",
	       path->peer->node_id, path->idx, path->st.url, ml_fault_name(spec->fault), spec->value,
	       span);
	if (spec->duration_s > 0) {
		ev_timer_set(&path->fault_timer, spec->duration_s, 0);
		ev_timer_start(loop, &path->fault_timer);
	}
	if (path->fd >= 0)
		update_rx_watch(path);
}
