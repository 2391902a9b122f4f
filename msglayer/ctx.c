/* ctx.c - contexts, workers and the command queue that makes calls thread-safe. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t ml_random64(void)
{
	uint64_t v = 0;
	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			v = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 48);
		}
	}
	return v;
}

static void log_stderr(void *arg, int level, const char *text)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	(void)arg;
	fprintf(stderr, "msglayer %s: %s\n", names[level & 3], text);
}

void ml_log(struct ml_ctx *ctx, int level, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (level > ctx->cfg.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ctx->cfg.log(ctx->cfg.log_arg, level, text);
}

void ml_config_init(struct ml_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->workers = 1;
	cfg->max_frag_payload = 64 * 1024;
	cfg->max_msg_size = 64u << 20;
	cfg->zcopy_min = 64 * 1024;
	cfg->max_inflight_msgs = 1024;
	cfg->max_inflight_bytes = 64ull << 20;
	cfg->max_queued_msgs = 8192;
	cfg->max_queued_bytes = 256ull << 20;
	cfg->max_peers = 4096;
	/* max_reasm_bytes and max_reasm_msgs stay 0: derived in config_complete. */
	cfg->max_ctx_reasm_bytes = 1ull << 30;
	cfg->max_open_requests = 16384;
	cfg->max_handshakes = 1024;
	cfg->handshake_timeout_s = 5.0;
	cfg->frame_timeout_s = 10.0;
	cfg->path_max_outstanding = 8ull << 20;
	cfg->sched_policy = ML_SCHED_ADAPTIVE;
	cfg->reconnect_min_s = 0.01;
	cfg->reconnect_max_s = 2.0;
	cfg->session_timeout_s = 30.0;
	cfg->heartbeat_interval_s = 0.01;
	cfg->all_silent_down_s = 2.0;
	cfg->probation_s = 0.5;
	cfg->flap_window_s = 5.0;
	cfg->flap_hold_max_s = 10.0;
	cfg->tcp_user_timeout_s = 5.0;
	cfg->accept_unknown_peers = 1;
	cfg->accept_codecs = ML_ACCEPT_LZ4 | ML_ACCEPT_ZSTD;
	cfg->max_streams = 64;
	cfg->stream_chunk_max = 16 * 1024;
	cfg->stream_window = 64;
	cfg->stream_path_max = 1024 * 1024;
	cfg->log_level = ML_LOG_WARN;
	const char *lv = getenv("ML_LOG_LEVEL");
	if (lv)
		cfg->log_level = !strcmp(lv, "debug") ? ML_LOG_DEBUG
				 : !strcmp(lv, "info") ? ML_LOG_INFO
				 : !strcmp(lv, "error") ? ML_LOG_ERR : ML_LOG_WARN;
}

/* Zero fields mean "default"; out-of-range values are errors, not clamps. */
static int config_complete(struct ml_config *c)
{
	struct ml_config d;
	ml_config_init(&d);
#define DEF(f) if (!c->f) c->f = d.f
	DEF(max_frag_payload); DEF(max_msg_size); DEF(zcopy_min); DEF(max_inflight_msgs); DEF(max_inflight_bytes);
	DEF(max_queued_msgs); DEF(max_queued_bytes); DEF(path_max_outstanding); DEF(max_peers);
	/* These defaults follow the limits they derive from, as the caller set them. */
	if (!c->max_reasm_bytes)
		c->max_reasm_bytes = 2 * c->max_inflight_bytes + c->max_msg_size;
	if (!c->max_reasm_msgs)
		c->max_reasm_msgs = c->max_inflight_msgs;
	DEF(max_ctx_reasm_bytes); DEF(max_open_requests); DEF(max_handshakes);
	DEF(handshake_timeout_s); DEF(frame_timeout_s);
	DEF(reconnect_min_s); DEF(reconnect_max_s); DEF(session_timeout_s);
	DEF(heartbeat_interval_s); DEF(all_silent_down_s); DEF(probation_s); DEF(flap_window_s);
	DEF(flap_hold_max_s); DEF(tcp_user_timeout_s);
	DEF(workers); DEF(max_streams); DEF(stream_chunk_max); DEF(stream_window);
	DEF(stream_path_max);
#undef DEF
	if (!c->log)
		c->log = log_stderr;
	if (c->node_id == 0 || c->max_frag_payload < 4096 || c->max_frag_payload > (16u << 20) ||
	    c->max_inflight_msgs > (1u << 20) || c->sched_policy > ML_SCHED_ROUND_ROBIN ||
	    c->workers > 64 || c->busy_poll_us > 1000000 || !(c->reconnect_min_s > 0) || c->reconnect_min_s > c->reconnect_max_s ||
	    !(c->session_timeout_s > 0) || !(c->heartbeat_interval_s >= 0.001) ||
	    !(c->path_down_s >= 0) || !(c->all_silent_down_s > 0) || !(c->probation_s > 0) ||
	    !(c->flap_window_s > 0) || !(c->flap_hold_max_s > 0) || !(c->tcp_user_timeout_s >= 0.1) ||
	    !(c->handshake_timeout_s > 0) || !(c->frame_timeout_s > 0) ||
	    c->protect < ML_PROTECT_NONE || c->protect > ML_PROTECT_ENCRYPT ||
	    c->stream_chunk_max < 4096 || c->stream_window > 65536 || c->zcopy_min < 4096)
		return ML_EINVAL; /* (written so that NaN fails too) */
	if (c->protect && !c->key_file) {
		c->log(c->log_arg, ML_LOG_ERR, "protect = mac or encrypt needs a cluster key (key_file)");
		return ML_EINVAL;
	}
	if (c->stream_chunk_max > c->max_msg_size)
		c->stream_chunk_max = c->max_msg_size; /* a chunk is a message */
	return 0;
}

/* liburcu's queue is not instrumented: tell ThreadSanitizer that a command's
 * contents are published by the enqueue and taken over by the dequeue. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HANDOFF_RELEASE(c) __tsan_release(c)
#define HANDOFF_ACQUIRE(c) __tsan_acquire(c)
#else
#define HANDOFF_RELEASE(c) ((void)(c))
#define HANDOFF_ACQUIRE(c) ((void)(c))
#endif

int ml_on_worker_thread(const struct ml_worker *w)
{
	return pthread_equal(pthread_self(), w->thread);
}

void ml_worker_post(struct ml_worker *w, struct ml_cmd *c)
{
	cds_wfcq_node_init(&c->node);
	HANDOFF_RELEASE(c);
	cds_wfcq_enqueue(&w->qhead, &w->qtail, &c->node);
	ev_async_send(w->loop, &w->wake);
}

static void listener_free_all(struct ml_ctx *ctx)
{
	while (ctx->listeners) {
		struct ml_listener *l = ctx->listeners;
		ctx->listeners = l->next;
		if (!l->started) /* destroyed before its worker got to it */
			l->ops->close(l->fd);
		free(l);
	}
}

static void worker_stop(struct ml_worker *w)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;

	w->stopped = 1; /* from here on nothing reconnects and sends are canceled */
	ml_listeners_stop(w);
	/* (cds_lfht_for_each_entry would form container_of(NULL) at the end,
	 * which UBSan rightly rejects; go by node.) */
	rcu_read_lock();
	cds_lfht_for_each(w->ctx->peers, &it, n) {
		struct ml_peer *p = caa_container_of(n, struct ml_peer, hnode);
		if (p->w == w)
			ml_peer_cancel_all(p, ML_ECANCELED);
	}
	rcu_read_unlock();
	ev_async_stop(w->loop, &w->wake);
	ev_prepare_stop(w->loop, &w->flush);
	if (ev_is_active(&w->spin)) {
		if (!w->own_loop)
			ev_ref(w->loop);
		ev_idle_stop(w->loop, &w->spin);
	}
	if (w->own_loop)
		ev_break(w->loop, EVBREAK_ALL);
}

static int has_outbound_path(const struct ml_peer *p, const char *url)
{
	for (unsigned i = 0; i < p->npaths; i++)
		if (p->paths[i]->outbound && strcmp(p->paths[i]->ep.url, url) == 0)
			return 1;
	return 0;
}

static void run_cmd(struct ml_worker *w, struct ml_cmd *c)
{
	switch (c->type) {
	case ML_CMD_SEND: {
		struct ml_msg_out *m = caa_container_of(c, struct ml_msg_out, cmd);
		ml_peer_submit(m->peer, m);
		break;
	}
	case ML_CMD_ADD_PATHS: {
		struct ml_cmd_paths *cp = caa_container_of(c, struct ml_cmd_paths, cmd);
		for (unsigned i = 0; i < cp->n; i++) {
			if (has_outbound_path(cp->peer, cp->eps[i].url))
				continue; /* adding an endpoint twice is a no-op (discovery repeats them) */
			struct ml_path *path =
				ml_path_new(cp->peer, 1, cp->peer->n_outbound, cp->eps[i].url);
			if (!path) {
				ml_log(w->ctx, ML_LOG_ERR, "peer %u: cannot add path %s: too many paths",
				       cp->peer->node_id, cp->eps[i].url);
				continue;
			}
			cp->peer->n_outbound++;
			path->ep = cp->eps[i];
			path->ops = cp->eps[i].ops;
			ml_path_start_connect(path);
		}
		free(cp);
		break;
	}
	case ML_CMD_ATTACH: {
		struct ml_cmd_attach *ca = caa_container_of(c, struct ml_cmd_attach, cmd);
		struct ml_peer *p = ca->peer;
		struct ml_path *path = NULL;
		/* A reconnect of the same connector path replaces the old inbound path. */
		for (unsigned i = 0; i < p->npaths; i++)
			if (!p->paths[i]->outbound && p->paths[i]->origin_idx == ca->hello.path_idx)
				path = p->paths[i];
		if (path && path->state != ML_PATH_CLOSED)
			ml_path_fail(path, ML_ENOTCONN, "replaced by a new connection from the peer");
		if (!path)
			path = ml_path_new(p, 0, ca->hello.path_idx, ca->url);
		if (!path) {
			ml_log(w->ctx, ML_LOG_WARN, "peer %u: refusing inbound path: too many paths", p->node_id);
			ca->ops->close(ca->fd);
		} else {
			ml_path_attach(path, ca);
		}
		explicit_bzero(ca, sizeof(*ca)); /* the path's keys */
		free(ca);
		break;
	}
	case ML_CMD_LISTEN:
		ml_listener_start(w, caa_container_of(c, struct ml_listener, cmd));
		break;
	case ML_CMD_FAULT: {
		struct ml_cmd_fault *cf = caa_container_of(c, struct ml_cmd_fault, cmd);
		struct ml_path *path = cf->path_idx < cf->peer->npaths ? cf->peer->paths[cf->path_idx] : NULL;
		if (path)
			ml_path_apply_fault(path, &cf->spec);
		free(cf);
		break;
	}
	case ML_CMD_CANCEL: {
		struct ml_cmd_cancel *cc = caa_container_of(c, struct ml_cmd_cancel, cmd);
		ml_cancel_by_tag(cc->peer, cc->tag);
		free(cc);
		break;
	}
	case ML_CMD_PEER_DOWN: {
		struct ml_cmd_peer_down *cd = caa_container_of(c, struct ml_cmd_peer_down, cmd);
		ml_peer_declared_down(cd->peer, cd->why);
		free(cd);
		break;
	}
	case ML_CMD_ROOM_CHECK: {
		struct ml_cmd_peer *cp = caa_container_of(c, struct ml_cmd_peer, cmd);
		ml_peer_room_check(cp->peer);
		free(cp);
		break;
	}
	case ML_CMD_STREAM:
		ml_stream_run_cmd((struct ml_cmd_stream *)c);
		break;
	case ML_CMD_STOP:
		worker_stop(w);
		free(c);
		break;
	}
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	struct ml_worker *w = caa_container_of(a, struct ml_worker, wake);
	struct cds_wfcq_node *n;
	(void)loop;
	(void)revents;
	w->active = 1;
	while (!w->stopped && (n = cds_wfcq_dequeue_blocking(&w->qhead, &w->qtail))) {
		struct ml_cmd *c = caa_container_of(n, struct ml_cmd, node);
		HANDOFF_ACQUIRE(c);
		run_cmd(w, c);
	}
}

/* Runs once per loop turn before the loop sleeps: every session hands its
 * pending fragments and acks to paths, then every path writes its batch with
 * one writev. This is where batching happens. */
/* Spinning: the loop keeps polling without sleeping, so that an answer
 * due soon is seen without a wake-up (a few microseconds each way). */
static void on_spin(struct ev_loop *loop, ev_idle *idle, int revents)
{
	struct ml_worker *w = caa_container_of(idle, struct ml_worker, spin);
	(void)revents;
	if (ev_time() < w->spin_until)
		return;
	if (!w->own_loop)
		ev_ref(loop); /* undo the unref of spin_after_activity */
	ev_idle_stop(loop, idle);
}

static void spin_after_activity(struct ml_worker *w)
{
	w->active = 0;
	w->spin_until = ev_time() + w->ctx->cfg.busy_poll_us * 1e-6;
	if (ev_is_active(&w->spin))
		return;
	ev_idle_start(w->loop, &w->spin);
	if (!w->own_loop)
		ev_unref(w->loop); /* embedded: spinning must not keep the caller's ev_run alive */
}

static void on_flush(struct ev_loop *loop, ev_prepare *pr, int revents)
{
	struct ml_worker *w = caa_container_of(pr, struct ml_worker, flush);
	(void)loop;
	(void)revents;
	if (w->active && w->ctx->cfg.busy_poll_us && !w->stopped)
		spin_after_activity(w);
	ml_pool_refill(&w->msg_pool);
	while (!cds_list_empty(&w->dirty_peers)) {
		struct ml_peer *p = cds_list_first_entry(&w->dirty_peers, struct ml_peer, dirty_link);
		cds_list_del_init(&p->dirty_link);
		p->dirty = 0;
		ml_peer_flush(p);
	}
	while (!cds_list_empty(&w->dirty_paths)) {
		struct ml_path *path = cds_list_first_entry(&w->dirty_paths, struct ml_path, dirty_link);
		cds_list_del_init(&path->dirty_link);
		path->dirty = 0;
		ml_path_flush(path);
	}
}

static void *worker_main(void *arg)
{
	struct ml_worker *w = arg;
	ev_run(w->loop, 0);
	return NULL;
}

static int peer_match(struct cds_lfht_node *node, const void *key)
{
	return caa_container_of(node, struct ml_peer, hnode)->node_id == *(const uint32_t *)key;
}

static unsigned long node_hash(uint32_t node_id)
{
	uint64_t h = node_id * 0x9e3779b97f4a7c15ull;
	return (unsigned long)(h ^ (h >> 29));
}

ml_peer *ml_peer_find(ml_ctx *ctx, uint32_t node_id)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	ml_peer *p = NULL;

	if (!ctx)
		return NULL;
	rcu_read_lock();
	cds_lfht_lookup(ctx->peers, node_hash(node_id), peer_match, &node_id, &it);
	n = cds_lfht_iter_get_node(&it);
	if (n)
		p = caa_container_of(n, struct ml_peer, hnode);
	rcu_read_unlock();
	/* Peers live until the context is destroyed, so p stays valid. */
	return p;
}

int ml_peer_get_or_create(struct ml_ctx *ctx, uint32_t node_id, struct ml_peer **out, int *created)
{
	struct ml_peer *p = ml_peer_find(ctx, node_id);
	*created = 0;
	*out = p;
	if (p)
		return 0;
	int rc = 0;
	pthread_mutex_lock(&ctx->admin_lock);
	p = ml_peer_find(ctx, node_id);
	if (!p && ctx->npeers >= ctx->cfg.max_peers) {
		rc = ML_ELIMIT;
	} else if (!p) {
		p = calloc(1, sizeof(*p));
		if (p && ml_peer_init(p, ctx, node_id) != 0) {
			free(p);
			p = NULL;
		}
		if (p) {
			p->all_next = ctx->all_peers;
			ctx->all_peers = p;
			rcu_read_lock();
			cds_lfht_add(ctx->peers, node_hash(node_id), &p->hnode);
			rcu_read_unlock();
			ctx->npeers++;
			*created = 1;
		} else {
			rc = ML_ENOMEM;
		}
	}
	pthread_mutex_unlock(&ctx->admin_lock);
	*out = p;
	return rc;
}

static void worker_fini(struct ml_worker *w)
{
	struct ml_greeting *g, *gt;
	cds_list_for_each_entry_safe(g, gt, &w->greetings, link) {
		ev_io_stop(w->loop, &g->io);
		ev_timer_stop(w->loop, &g->timeout);
		g->ops->close(g->fd);
		free(g);
	}
	/* Commands that arrived after the stop are dropped with their memory;
	 * sends among them complete with ML_ECANCELED. */
	struct cds_wfcq_node *n;
	while ((n = cds_wfcq_dequeue_blocking(&w->qhead, &w->qtail))) {
		struct ml_cmd *c = caa_container_of(n, struct ml_cmd, node);
		HANDOFF_ACQUIRE(c);
		if (c->type == ML_CMD_SEND) {
			struct ml_msg_out *m = caa_container_of(c, struct ml_msg_out, cmd);
			if (m->req)
				cds_list_del(&m->req->link);
			if (m->rcb)
				m->rcb(m->arg, ML_ECANCELED, NULL);
			else if (m->scb)
				m->scb(m->arg, ML_ECANCELED);
			ml_msg_free(m);
		} else if (c->type == ML_CMD_STREAM) {
			ml_stream_drop_cmd((struct ml_cmd_stream *)c);
		} else if (c->type == ML_CMD_ATTACH) {
			struct ml_cmd_attach *ca = caa_container_of(c, struct ml_cmd_attach, cmd);
			ca->ops->close(ca->fd);
			explicit_bzero(ca, sizeof(*ca));
			free(ca);
		} else if (c->type != ML_CMD_LISTEN) { /* listeners are freed with the context */
			free(c);
		}
	}
	cds_wfcq_destroy(&w->qhead, &w->qtail);
	if (w->own_loop)
		ev_loop_destroy(w->loop);
}

/* Workers take no signals: they stay with the application's threads, which
 * may rely on their own masks (sigwait, signalfd). */
static int start_worker_thread(struct ml_worker *w)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!err) {
		char name[16]; /* shown by top -H, gdb, /proc/PID/task/TID/comm */
		snprintf(name, sizeof(name), "ml-worker-%u", w->idx);
		pthread_setname_np(w->thread, name);
	}
	return err;
}

int ml_ctx_create(const struct ml_config *cfg, ml_ctx **out)
{
	if (!cfg || !out)
		return ML_EINVAL;
	ml_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return ML_ENOMEM;
	ctx->cfg = *cfg;
	int err, rc = config_complete(&ctx->cfg);
	if (rc) {
		free(ctx);
		return rc;
	}
	ml_keyring_init(&ctx->keys);
	ctx->cfg.key_file = NULL; /* the caller's string: read now, not kept */
	if (cfg->key_file && (rc = ml_ctx_reload_key(ctx, cfg->key_file)) != 0) {
		ml_keyring_destroy(&ctx->keys);
		free(ctx);
		return rc;
	}
	ctx->incarnation = cfg->incarnation ? cfg->incarnation : ml_random64();
	ctx->limits.max_frag_payload = ctx->cfg.max_frag_payload;
	ctx->limits.max_msg_size = ctx->cfg.max_msg_size;
	ctx->nworkers = ctx->cfg.loop ? 1 : ctx->cfg.workers;
	pthread_mutex_init(&ctx->admin_lock, NULL);
	ctx->peers = cds_lfht_new(16, 16, 0, CDS_LFHT_AUTO_RESIZE, NULL);
	ctx->workers = calloc(ctx->nworkers, sizeof(*ctx->workers));
	if (!ctx->peers || !ctx->workers) {
		if (ctx->peers)
			cds_lfht_destroy(ctx->peers, NULL);
		free(ctx->workers);
		free(ctx);
		return ML_ENOMEM;
	}
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		struct ml_worker *w = &ctx->workers[i];
		w->ctx = ctx;
		w->idx = i;
		w->own_loop = ctx->cfg.loop == NULL;
		w->loop = w->own_loop ? ev_loop_new(EVFLAG_AUTO) : ctx->cfg.loop;
		cds_wfcq_init(&w->qhead, &w->qtail);
		CDS_INIT_LIST_HEAD(&w->dirty_peers);
		CDS_INIT_LIST_HEAD(&w->dirty_paths);
		CDS_INIT_LIST_HEAD(&w->greetings);
		/* Enough for one peer's full window and queue: a sender that keeps
		 * them full allocates nothing per message. */
		unsigned keep = ctx->cfg.max_inflight_msgs + ctx->cfg.max_queued_msgs;
		ml_pool_init(&w->msg_pool, sizeof(struct ml_msg_out), keep);
		ml_pool_init(&w->req_pool, sizeof(struct ml_request), keep);
		/* Large messages: a window of 8 MiB ones is 64 of these. */
		ml_pool_init(&w->frags_pool, ML_FRAGS_POOLED * sizeof(struct ml_frag), 1024);
		ev_async_init(&w->wake, on_wake);
		ev_async_start(w->loop, &w->wake);
		ev_prepare_init(&w->flush, on_flush);
		ev_idle_init(&w->spin, on_spin);
		ev_prepare_start(w->loop, &w->flush);
		if (!w->own_loop) {
			/* Embedded: the caller's thread runs the loop; keep our
			 * watchers from holding ev_run open on their own. */
			w->thread = pthread_self();
			ev_unref(w->loop);
			ev_unref(w->loop);
		} else if ((err = start_worker_thread(w)) != 0) {
			ml_log(ctx, ML_LOG_ERR, "cannot start worker thread: %s", strerror(err));
			ctx->nworkers = i;
			ev_async_stop(w->loop, &w->wake);
			ev_prepare_stop(w->loop, &w->flush);
			ev_loop_destroy(w->loop);
			ml_pool_fini(&w->msg_pool);
			ml_pool_fini(&w->req_pool);
			ml_pool_fini(&w->frags_pool);
			ml_ctx_destroy(ctx);
			return ML_ESYS;
		}
	}
	if (cfg->admin_socket) {
		rc = ml_admin_open(ctx, cfg->admin_socket, &ctx->admin);
		if (rc) {
			ml_ctx_destroy(ctx);
			return rc;
		}
		ctx->cfg.admin_socket = ml_admin_path(ctx->admin); /* our copy */
	}
	*out = ctx;
	return 0;
}

void ml_ctx_destroy(ml_ctx *ctx)
{
	if (!ctx)
		return;
	/* First the admin thread: it reads stats and posts faults to workers. */
	ml_admin_close(ctx->admin);
	ctx->admin = NULL;
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		struct ml_worker *w = &ctx->workers[i];
		struct ml_cmd *stop = calloc(1, sizeof(*stop));
		if (w->own_loop) {
			stop->type = ML_CMD_STOP;
			ml_worker_post(w, stop);
			pthread_join(w->thread, NULL);
		} else {
			/* Embedded: the caller's thread is the worker thread. Watchers
			 * we unref'd get their reference back before they stop. */
			free(stop);
			ev_ref(w->loop);
			ev_ref(w->loop);
			on_wake(w->loop, &w->wake, 0);
			worker_stop(w);
		}
	}
	/* Every worker has stopped: now peers can go. Lookups that found a
	 * peer finished with it before ml_ctx_destroy was called (documented). */
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct ml_peer *p;
	rcu_read_lock();
	cds_lfht_for_each(ctx->peers, &it, n)
		cds_lfht_del(ctx->peers, n);
	rcu_read_unlock();
	synchronize_rcu();
	/* Queues first: a response still queued unlinks its request from the
	 * peer's open list before the peer frees what is left on it. */
	for (unsigned i = 0; i < ctx->nworkers; i++)
		worker_fini(&ctx->workers[i]);
	while ((p = ctx->all_peers)) {
		ctx->all_peers = p->all_next;
		ml_peer_fini(p);
		free(p);
	}
	/* Last: freeing the peers gave their open requests back. */
	for (unsigned i = 0; i < ctx->nworkers; i++) {
		ml_pool_fini(&ctx->workers[i].msg_pool);
		ml_pool_fini(&ctx->workers[i].req_pool);
		ml_pool_fini(&ctx->workers[i].frags_pool);
	}
	cds_lfht_destroy(ctx->peers, NULL);
	listener_free_all(ctx);
	pthread_mutex_destroy(&ctx->admin_lock);
	ml_keyring_destroy(&ctx->keys);
	free(ctx->workers);
	free(ctx);
}

int ml_ctx_reload_key(ml_ctx *ctx, const char *key_file)
{
	if (!ctx)
		return ML_EINVAL;
	struct ml_key keys[ML_KEYS_MAX];
	unsigned n = 0;
	char err[384];
	if (!key_file && ctx->cfg.protect) {
		ml_log(ctx, ML_LOG_ERR, "the cluster key cannot be removed: paths are protected (%s)",
		       ml_protect_name(ctx->cfg.protect));
		return ML_EINVAL;
	}
	if (key_file && ml_key_file_read(key_file, keys, &n, err, sizeof(err)) != 0) {
		ml_log(ctx, ML_LOG_ERR, "%s", err);
		return ML_EKEY;
	}
	ml_keyring_set(&ctx->keys, keys, n);
	if (n) {
		char id[2 * ML_KEY_ID_LEN + 1];
		ml_key_id_hex(keys[0].id, id);
		ml_log(ctx, ML_LOG_INFO, "cluster key file %s: %u key(s); offering key id %s",
		       key_file, n, id);
	} else
		ml_log(ctx, ML_LOG_WARN, "authentication off: no cluster key");
	explicit_bzero(keys, sizeof(keys)); /* ml_keyring_set copied them */
	return 0;
}

unsigned ml_ctx_peers(ml_ctx *ctx, ml_peer **out, unsigned max)
{
	unsigned n = 0;
	if (!ctx)
		return 0;
	pthread_mutex_lock(&ctx->admin_lock);
	for (struct ml_peer *p = ctx->all_peers; p; p = p->all_next, n++)
		if (out && n < max)
			out[n] = p;
	pthread_mutex_unlock(&ctx->admin_lock);
	return n;
}

uint32_t ml_ctx_node_id(const ml_ctx *ctx)
{
	return ctx->cfg.node_id;
}

uint64_t ml_ctx_incarnation(const ml_ctx *ctx)
{
	return ctx->incarnation;
}
