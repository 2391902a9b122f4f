/*
 * cpg.c - the discovery API on Corosync CPG, on the caller's libev loop.
 *
 * One CPG member per process and group (Corosync refuses a second join from
 * the same pid with CS_ERR_EXIST): the handles of a process on one group
 * share a `struct conn`, its CPG connection and its view (registry). Each
 * handle publishes under its own random incarnation, so its resources can
 * be dropped alone (a BYE message) when it goes while the others stay.
 *
 * Flow: publish/update/withdraw multicast a message (agreed order); every
 * member, us included, applies it to its view when CPG delivers it, so all
 * views see the same sequence. When a member joins, every member re-announces
 * its resources (state transfer, as Pacemaker's attrd does). When a member
 * or node leaves, its resources are dropped. When our Corosync connection
 * fails, the view is emptied and we reconnect with backoff, then re-announce.
 */
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "msglayer.h"
#include "../failover/backoff.h"
#include "match.h"
#include "record.h"
#include "registry.h"
#include "sessions.h"

enum conn_state {
	CONN_DOWN = 0,    /* no CPG handle; the timer reconnects */
	CONN_JOINING = 1, /* handle up, cpg_join said TRY_AGAIN or our join not yet seen */
	CONN_JOINED = 2,  /* our join came back in a confchg: we are a member */
};

struct out {
	struct out *next;
	size_t len;
	uint8_t *buf;
};

struct own {
	struct own *next;
	struct mlps_record *rec; /* node_id and version are set when sent */
};

struct conn;

struct mlps {
	struct conn *c;
	struct mlps *next;
	struct mlps_config cfg;
	char group[CPG_MAX_NAME_LENGTH];
	uint64_t incarnation;
	uint64_t version; /* the last one given to a change */
	struct own *own;
};

struct conn {
	struct conn *next; /* all connections of the process (conns_lock) */
	pid_t pid;         /* the process that made it: a forked child makes its own */
	struct cpg_name group;
	struct ev_loop *loop;
	cpg_handle_t h;
	int have_h;
	ev_io io;
	ev_timer timer; /* reconnect, join retry, send retry, deferred failure */
	int state;
	unsigned failures;  /* consecutive connect failures (backoff) */
	unsigned send_tries;
	unsigned seed;
	int lost_rc;        /* non-zero: a failure seen where it could not be handled */
	int was_lost;       /* the connection failed at least once: report when back */
	uint32_t node_id;
	struct mlps_reg *reg;
	struct mlps *handles;
	struct out *q_head, *q_tail; /* refused by CPG flow control, in order */
	double retry_min, retry_max;
	uint32_t *nodes;    /* the last totem membership */
	uint32_t n_nodes;
	int have_nodes;
};

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- logging --------------------------------------------------------------- */

static void logc(struct conn *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logc(struct conn *c, int level, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	int told = 0;
	for (struct mlps *ps = c ? c->handles : NULL; ps; ps = ps->next)
		if (ps->cfg.log) {
			ps->cfg.log(ps->cfg.log_arg, level, text);
			told = 1;
		}
	if (!told && level <= ML_LOG_WARN)
		fprintf(stderr, "mlps: %s\n", text);
}

static const char *cs_text(cs_error_t rc)
{
	switch (rc) {
	case CS_ERR_LIBRARY: return "cannot reach Corosync: is it running in this network namespace?";
	case CS_ERR_TRY_AGAIN: return "Corosync is busy (synchronising), try again";
	case CS_ERR_ACCESS: return "Corosync refused access (uidgid settings?)";
	case CS_ERR_EXIST: return "this process already joined the group";
	case CS_ERR_BAD_HANDLE: return "the connection to Corosync is gone";
	case CS_ERR_TOO_BIG: return "message too big for CPG";
	default: return "Corosync error";
	}
}

/* ---- sending ------------------------------------------------------------------- */

static void arm(struct conn *c, double after)
{
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, after, 0.);
	ev_timer_start(c->loop, &c->timer);
}

/* A failure found where it cannot be handled (inside cpg_dispatch or an
 * API call): the timer handles it at once, outside any callback. */
static void defer_loss(struct conn *c, int rc)
{
	if (!c->lost_rc)
		c->lost_rc = rc ? rc : CS_ERR_LIBRARY;
	arm(c, 0.);
}

static void flush(struct conn *c)
{
	while (c->q_head && c->state == CONN_JOINED) {
		struct out *o = c->q_head;
		struct iovec iov = { o->buf, o->len };
		cs_error_t rc = cpg_mcast_joined(c->h, CPG_TYPE_AGREED, &iov, 1);
		if (rc == CS_ERR_TRY_AGAIN) {
			/* flow control: the IPC ring or totem backlog is full */
			arm(c, ml_backoff_delay(0.001, 0.1, c->send_tries++, &c->seed));
			return;
		}
		c->send_tries = 0;
		if (rc != CS_OK) {
			logc(c, ML_LOG_WARN, "cpg_mcast_joined: %s (%d): %s", cs_strerror(rc), rc,
			     cs_text(rc));
			defer_loss(c, rc);
			return;
		}
		c->q_head = o->next;
		if (!c->q_head)
			c->q_tail = NULL;
		free(o->buf);
		free(o);
	}
}

static void drop_queue(struct conn *c)
{
	for (struct out *o = c->q_head, *n; o; o = n) {
		n = o->next;
		free(o->buf);
		free(o);
	}
	c->q_head = c->q_tail = NULL;
	c->send_tries = 0;
}

/* Multicast a message about rec (set up by the caller) if we are a member;
 * when not, the join re-announces what is still published. */
static int send_msg(mlps *ps, int type, struct mlps_record *rec)
{
	struct conn *c = ps->c;
	if (c->state != CONN_JOINED)
		return 0;
	rec->node_id = c->node_id;
	rec->pid = (uint32_t)c->pid;
	rec->incarnation = ps->incarnation;
	struct out *o = calloc(1, sizeof(*o));
	if (!o)
		return ML_ENOMEM;
	int rc = mlps_msg_encode(type, rec, &o->buf, &o->len);
	if (rc) {
		free(o);
		return rc;
	}
	if (c->q_tail)
		c->q_tail->next = o;
	else
		c->q_head = o;
	c->q_tail = o;
	if (c->q_head == o && !ev_is_active(&c->timer))
		flush(c);
	return 0;
}

static void announce_all(struct conn *c)
{
	for (struct mlps *ps = c->handles; ps; ps = ps->next)
		for (struct own *w = ps->own; w; w = w->next)
			if (send_msg(ps, MLPS_MSG_PUBLISH, w->rec))
				logc(c, ML_LOG_ERR, "cannot announce %s: out of memory", w->rec->name);
}

/* ---- CPG callbacks (inside cpg_dispatch) -------------------------------------- */

static struct conn *conn_of(cpg_handle_t h)
{
	void *ctx = NULL;
	cpg_context_get(h, &ctx);
	return ctx;
}

static void deliver_cb(cpg_handle_t h, const struct cpg_name *group, uint32_t nodeid, uint32_t pid,
		       void *msg, size_t len)
{
	(void)group;
	struct conn *c = conn_of(h);
	if (!c)
		return;
	int type = 0;
	struct mlps_record *rec = NULL;
	int rc = mlps_msg_decode(msg, len, &type, &rec);
	if (rc) {
		/* an unknown type comes from a newer member: not worth a warning */
		logc(c, rc == MLPS_DE_TYPE ? ML_LOG_DEBUG : ML_LOG_WARN,
		     "dropped a message of %zu bytes from node %u pid %u: %s", len, nodeid, pid,
		     mlps_decode_strerror(rc));
		return;
	}
	if (rec->node_id != nodeid)
		logc(c, ML_LOG_WARN, "node %u pid %u sent a record naming node %u: using %u", nodeid,
		     pid, rec->node_id, nodeid);
	/* CPG's word on who sent it, not the message's: it cannot be forged */
	rec->node_id = nodeid;
	rec->pid = pid;
	switch (type) {
	case MLPS_MSG_PUBLISH:
		mlps_reg_publish(c->reg, rec); /* takes rec */
		return;
	case MLPS_MSG_WITHDRAW:
		mlps_reg_withdraw(c->reg, rec);
		break;
	case MLPS_MSG_BYE:
		mlps_reg_bye(c->reg, nodeid, pid, rec->incarnation);
		break;
	}
	mlps_rec_free(rec);
}

/* The message layer learns of the failure first (every handle with a
 * msg_ctx): outstanding requests to the publishers of node (pid 0: all its
 * processes) fail with ML_EPEERDOWN instead of waiting for a timeout. */
static void sessions_down(struct conn *c, uint32_t node, uint32_t pid, const char *what)
{
	unsigned max = mlps_reg_count(c->reg); /* at least as many as there are ids */
	uint32_t *ml_nodes = max ? malloc(max * sizeof(*ml_nodes)) : NULL;
	unsigned n = ml_nodes ? mlps_reg_ml_nodes(c->reg, node, pid, ml_nodes, max) : 0;
	if (!n) {
		if (max && !ml_nodes)
			logc(c, ML_LOG_ERR, "%s: out of memory: its sessions wait for their timeout", what);
		free(ml_nodes);
		return;
	}
	char why[96];
	snprintf(why, sizeof(why), "Corosync: %s", what);
	for (struct mlps *ps = c->handles; ps; ps = ps->next) {
		int seen = 0; /* one declaration per context */
		for (struct mlps *q = c->handles; q != ps && !seen; q = q->next)
			seen = q->cfg.msg_ctx == ps->cfg.msg_ctx;
		if (!seen)
			mlps_sessions_down(ps->cfg.msg_ctx, ml_nodes, n, why);
	}
	free(ml_nodes);
}

static void view_hook(void *owner, int event, struct mlps_record *view)
{
	const struct mlps *ps = owner;
	mlps_sessions_view(ps->cfg.msg_ctx, ps->cfg.connect_publishers, event, view);
}

static void node_left(struct conn *c, uint32_t node)
{
	char what[64];
	snprintf(what, sizeof(what), "node %u left the membership", node);
	sessions_down(c, node, 0, what);
	mlps_reg_node_left(c->reg, node);
	logc(c, ML_LOG_INFO, "node %u left the membership", node);
	for (struct mlps *ps = c->handles, *n; ps; ps = n) {
		n = ps->next;
		if (ps->cfg.on_node_left)
			ps->cfg.on_node_left(ps->cfg.cb_arg, node);
	}
}

static void confchg_cb(cpg_handle_t h, const struct cpg_name *group,
		       const struct cpg_address *members, size_t n_members,
		       const struct cpg_address *left, size_t n_left,
		       const struct cpg_address *joined, size_t n_joined)
{
	(void)group;
	(void)members;
	struct conn *c = conn_of(h);
	if (!c)
		return;
	uint32_t mypid = (uint32_t)c->pid;
	for (size_t i = 0; i < n_left; i++) {
		if (left[i].nodeid == c->node_id && left[i].pid == mypid)
			continue;
		int reason = left[i].reason == CPG_REASON_NODEDOWN ? MLPS_R_NODE_LEFT
								   : MLPS_R_PUBLISHER_LEFT;
		/* A clean leave (mlps_destroy) is not a failure: its sessions stay. */
		if (left[i].reason == CPG_REASON_NODEDOWN || left[i].reason == CPG_REASON_PROCDOWN) {
			char what[64];
			snprintf(what, sizeof(what), "process %u on node %u %s", left[i].pid,
				 left[i].nodeid,
				 left[i].reason == CPG_REASON_NODEDOWN ? "lost with its node" : "died");
			sessions_down(c, left[i].nodeid, left[i].pid, what);
		}
		int n = mlps_reg_member_left(c->reg, left[i].nodeid, left[i].pid, reason);
		logc(c, ML_LOG_INFO, "member %u/%u left (reason %u): %d resources removed",
		     left[i].nodeid, left[i].pid, left[i].reason, n);
	}
	int self_joined = 0;
	for (size_t i = 0; i < n_joined; i++)
		self_joined |= joined[i].nodeid == c->node_id && joined[i].pid == mypid;
	if (self_joined && c->state != CONN_JOINED) {
		c->state = CONN_JOINED;
		c->failures = 0;
		logc(c, ML_LOG_INFO, "joined group %.*s as node %u pid %u (%zu members)",
		     (int)c->group.length, c->group.value, c->node_id, mypid, n_members);
		for (struct mlps *ps = c->handles; ps; ps = ps->next)
			if (ps->cfg.on_corosync)
				ps->cfg.on_corosync(ps->cfg.cb_arg, 1, 0,
						    c->was_lost ? "joined again" : "joined");
	}
	/* state transfer: whoever joined (we included) learns what we publish */
	if (n_joined && c->state == CONN_JOINED)
		announce_all(c);
}

static void totem_cb(cpg_handle_t h, struct cpg_ring_id ring, uint32_t n, const uint32_t *nodes)
{
	struct conn *c = conn_of(h);
	if (!c)
		return;
	logc(c, ML_LOG_DEBUG, "ring %u.%llu: %u nodes", ring.nodeid, (unsigned long long)ring.seq, n);
	uint32_t *copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy)
		return;
	memcpy(copy, nodes, n * sizeof(*copy));
	uint32_t *old = c->nodes, n_old = c->n_nodes;
	int had = c->have_nodes;
	c->nodes = copy;
	c->n_nodes = n;
	c->have_nodes = 1;
	for (uint32_t i = 0; had && i < n_old; i++) {
		int still = 0;
		for (uint32_t j = 0; j < n && !still; j++)
			still = nodes[j] == old[i];
		if (!still)
			node_left(c, old[i]);
	}
	free(old);
}

/* ---- connection ---------------------------------------------------------------- */

static void conn_close(struct conn *c)
{
	if (c->have_h) {
		ev_io_stop(c->loop, &c->io);
		cpg_finalize(c->h);
		c->have_h = 0;
	}
	drop_queue(c);
	c->state = CONN_DOWN;
	free(c->nodes);
	c->nodes = NULL;
	c->n_nodes = 0;
	c->have_nodes = 0;
}

static void schedule_reconnect(struct conn *c)
{
	arm(c, ml_backoff_delay(c->retry_min, c->retry_max, c->failures++, &c->seed));
}

/* Corosync went away: tell, empty the view, reconnect later. */
static void conn_lost(struct conn *c, int cs_rc)
{
	char text[200];
	snprintf(text, sizeof(text), "lost the connection to Corosync: %s (%d): %s",
		 cs_strerror(cs_rc), cs_rc,
		 cs_rc == CS_ERR_LIBRARY ? "Corosync stopped or was killed" : cs_text(cs_rc));
	mlps_set_error("%s", text);
	logc(c, ML_LOG_WARN, "%s; reconnecting", text);
	conn_close(c);
	c->was_lost = 1;
	c->lost_rc = 0;
	mlps_reg_clear(c->reg, MLPS_R_DISCONNECTED);
	for (struct mlps *ps = c->handles; ps; ps = ps->next)
		if (ps->cfg.on_corosync)
			ps->cfg.on_corosync(ps->cfg.cb_arg, 0, MLPS_ECOROSYNC, text);
	schedule_reconnect(c);
}

static int try_join(struct conn *c)
{
	cs_error_t rc = cpg_join(c->h, &c->group);
	if (rc == CS_OK)
		return 0; /* the confchg that lists us makes us JOINED */
	if (rc == CS_ERR_TRY_AGAIN) {
		arm(c, ml_backoff_delay(c->retry_min, c->retry_max, c->failures++, &c->seed));
		return 0;
	}
	mlps_set_error("cpg_join(%.*s): %s (%d): %s", (int)c->group.length, c->group.value,
		       cs_strerror(rc), rc, cs_text(rc));
	return rc;
}

/* Open the CPG connection and ask to join. Returns 0 (joining), or the
 * Corosync error with mlps_last_error() set (the handle is closed). */
static int conn_open(struct conn *c)
{
	cpg_model_v1_data_t model = {
		.model = CPG_MODEL_V1,
		.cpg_deliver_fn = deliver_cb,
		.cpg_confchg_fn = confchg_cb,
		.cpg_totem_confchg_fn = totem_cb,
		.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
	};
	cs_error_t rc = cpg_model_initialize(&c->h, CPG_MODEL_V1, (cpg_model_data_t *)&model, c);
	if (rc != CS_OK) {
		mlps_set_error("cpg_initialize: %s (%d): %s", cs_strerror(rc), rc, cs_text(rc));
		return rc;
	}
	c->have_h = 1;
	int fd = -1;
	if ((rc = cpg_local_get(c->h, &c->node_id)) != CS_OK ||
	    (rc = cpg_fd_get(c->h, &fd)) != CS_OK) {
		mlps_set_error("cpg_local_get/cpg_fd_get: %s (%d): %s", cs_strerror(rc), rc,
			       cs_text(rc));
		conn_close(c);
		return rc;
	}
	ev_io_init(&c->io, io_cb, fd, EV_READ);
	ev_io_start(c->loop, &c->io);
	c->state = CONN_JOINING;
	if ((rc = try_join(c))) {
		conn_close(c);
		return rc;
	}
	return 0;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, io));
	cs_error_t rc = cpg_dispatch(c->h, CS_DISPATCH_ALL);
	if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN)
		conn_lost(c, rc);
	else if (c->lost_rc)
		conn_lost(c, c->lost_rc);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, timer));
	if (c->lost_rc) {
		conn_lost(c, c->lost_rc);
		return;
	}
	switch (c->state) {
	case CONN_DOWN: {
		int rc = conn_open(c);
		if (rc == 0)
			logc(c, ML_LOG_INFO, "connected to Corosync again, joining");
		else if (rc == CS_ERR_LIBRARY || rc == CS_ERR_TRY_AGAIN)
			schedule_reconnect(c); /* not back yet */
		else {
			logc(c, ML_LOG_WARN, "%s", mlps_last_error());
			schedule_reconnect(c);
		}
		break;
	}
	case CONN_JOINING: {
		int rc = try_join(c);
		if (rc)
			conn_lost(c, rc);
		break;
	}
	case CONN_JOINED:
		flush(c);
		break;
	}
}

/* ---- public API -------------------------------------------------------------------- */

void mlps_config_init(struct mlps_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->group = "msglayer";
	cfg->retry_min_s = 0.01;
	cfg->retry_max_s = 1.0;
}

static uint64_t random64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		v = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 16;
	}
	return v ? v : 1;
}

static void conn_free(struct conn *c)
{
	ev_timer_stop(c->loop, &c->timer);
	if (c->have_h && c->state != CONN_DOWN)
		cpg_leave(c->h, &c->group); /* finalize would do it too; say it first */
	conn_close(c);
	mlps_reg_free(c->reg);
	free(c);
}

int mlps_create(struct ev_loop *loop, const struct mlps_config *cfg_in, mlps **out)
{
	struct mlps_config defaults;
	if (!cfg_in) {
		mlps_config_init(&defaults);
		cfg_in = &defaults;
	}
	if (!loop || !out) {
		mlps_set_error("mlps_create: loop and out are required");
		return ML_EINVAL;
	}
	*out = NULL;
	const char *group = cfg_in->group && *cfg_in->group ? cfg_in->group : "msglayer";
	size_t glen = strlen(group);
	if (glen >= CPG_MAX_NAME_LENGTH) {
		mlps_set_error("group name: %zu bytes (%d at most)", glen, CPG_MAX_NAME_LENGTH - 1);
		return ML_EINVAL;
	}
	mlps *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return ML_ENOMEM;
	ps->cfg = *cfg_in;
	memcpy(ps->group, group, glen + 1);
	ps->cfg.group = ps->group;
	if (!(ps->cfg.retry_min_s > 0))
		ps->cfg.retry_min_s = 0.01;
	if (!(ps->cfg.retry_max_s >= ps->cfg.retry_min_s))
		ps->cfg.retry_max_s = ps->cfg.retry_min_s > 1.0 ? ps->cfg.retry_min_s : 1.0;
	ps->incarnation = random64();

	pid_t pid = getpid();
	pthread_mutex_lock(&conns_lock);
	struct conn *c = conns;
	while (c && !(c->pid == pid && c->group.length == glen && !memcmp(c->group.value, group, glen)))
		c = c->next;
	if (c) {
		pthread_mutex_unlock(&conns_lock);
		if (c->loop != loop) {
			mlps_set_error("group %s is joined by this process on another loop", group);
			free(ps);
			return MLPS_EBUSY;
		}
		ps->c = c;
		ps->next = c->handles;
		c->handles = ps;
		*out = ps;
		return 0;
	}
	c = calloc(1, sizeof(*c));
	struct mlps_reg *reg = c ? mlps_reg_new() : NULL;
	if (!reg) {
		pthread_mutex_unlock(&conns_lock);
		free(c);
		free(ps);
		return ML_ENOMEM;
	}
	c->pid = pid;
	c->loop = loop;
	c->reg = reg;
	mlps_reg_set_view(reg, view_hook);
	c->group.length = (uint32_t)glen;
	memcpy(c->group.value, group, glen);
	c->retry_min = ps->cfg.retry_min_s;
	c->retry_max = ps->cfg.retry_max_s;
	c->seed = (unsigned)ps->incarnation;
	ev_timer_init(&c->timer, timer_cb, 0., 0.);
	c->handles = ps;
	ps->c = c;
	int rc = conn_open(c);
	if (rc && !(rc == CS_ERR_TRY_AGAIN || (ps->cfg.wait_for_corosync && rc == CS_ERR_LIBRARY))) {
		pthread_mutex_unlock(&conns_lock);
		logc(NULL, ML_LOG_DEBUG, "%s", mlps_last_error());
		c->handles = NULL;
		conn_free(c);
		free(ps);
		return MLPS_ECOROSYNC;
	}
	if (rc)
		schedule_reconnect(c); /* Corosync is starting, or we were asked to wait */
	c->next = conns;
	conns = c;
	pthread_mutex_unlock(&conns_lock);
	*out = ps;
	return 0;
}

void mlps_destroy(mlps *ps)
{
	if (!ps)
		return;
	struct conn *c = ps->c;
	mlps_reg_unsubscribe_owner(c->reg, ps);
	struct mlps **pp = &c->handles;
	while (*pp != ps)
		pp = &(*pp)->next;
	*pp = ps->next;
	if (c->handles && ps->own) {
		/* the process stays a member: tell the others to drop our part */
		struct mlps_record *bye = mlps_rec_dup(ps->own->rec);
		if (bye) {
			send_msg(ps, MLPS_MSG_BYE, bye);
			mlps_rec_free(bye);
		}
	}
	for (struct own *w = ps->own, *n; w; w = n) {
		n = w->next;
		mlps_rec_free(w->rec);
		free(w);
	}
	if (!c->handles) {
		/* the last handle: leaving the group drops everything we published */
		pthread_mutex_lock(&conns_lock);
		struct conn **cp = &conns;
		while (*cp != c)
			cp = &(*cp)->next;
		*cp = c->next;
		pthread_mutex_unlock(&conns_lock);
		conn_free(c);
	}
	free(ps);
}

uint32_t mlps_node_id(const mlps *ps)
{
	return ps && ps->c->have_h ? ps->c->node_id : 0;
}

int mlps_connected(const mlps *ps)
{
	return ps && ps->c->state == CONN_JOINED;
}

static struct own **own_find(mlps *ps, const char *name)
{
	struct own **pp = &ps->own;
	while (*pp && strcmp((*pp)->rec->name, name))
		pp = &(*pp)->next;
	return pp;
}

static int check_in(const mlps *ps, struct mlps_rec_in *in, const char *name,
		    const struct mlps_attr *attrs, unsigned n_attrs, const char *const *endpoints,
		    unsigned n_endpoints)
{
	if (mlps_rec_in_from_api(in, name, attrs, n_attrs, endpoints, n_endpoints) ||
	    mlps_rec_in_check(in))
		return ML_EINVAL;
	in->ml_node_id = ps->cfg.msg_ctx ? ml_ctx_node_id(ps->cfg.msg_ctx) : 0;
	return 0;
}

int mlps_publish(mlps *ps, const char *name, const struct mlps_attr *attrs, unsigned n_attrs,
		 const char *const *endpoints, unsigned n_endpoints)
{
	if (!ps) {
		mlps_set_error("mlps_publish: NULL handle");
		return ML_EINVAL;
	}
	struct mlps_rec_in *in = malloc(sizeof(*in));
	if (!in)
		return ML_ENOMEM;
	int rc = check_in(ps, in, name, attrs, n_attrs, endpoints, n_endpoints);
	if (rc)
		goto out;
	if (*own_find(ps, name)) {
		mlps_set_error("%s: already published by this handle (use mlps_update)", name);
		rc = ML_EEXIST;
		goto out;
	}
	in->version = ++ps->version;
	struct own *w = calloc(1, sizeof(*w));
	if (!w || !(w->rec = mlps_rec_build(in))) {
		free(w);
		rc = ML_ENOMEM;
		goto out;
	}
	if ((rc = send_msg(ps, MLPS_MSG_PUBLISH, w->rec))) {
		mlps_rec_free(w->rec);
		free(w);
		goto out;
	}
	w->next = ps->own;
	ps->own = w;
out:
	free(in);
	return rc;
}

int mlps_update(mlps *ps, const char *name, const struct mlps_attr *attrs, unsigned n_attrs,
		const char *const *endpoints, unsigned n_endpoints)
{
	if (!ps || !name) {
		mlps_set_error("mlps_update: NULL handle or name");
		return ML_EINVAL;
	}
	struct own *w = *own_find(ps, name);
	if (!w) {
		mlps_set_error("%s: not published by this handle", name);
		return ML_ENOENT;
	}
	struct mlps_rec_in *in = malloc(sizeof(*in));
	if (!in)
		return ML_ENOMEM;
	const char *keep[MLPS_ENDPOINTS_MAX];
	if (!endpoints) {
		n_endpoints = w->rec->n_endpoints;
		for (unsigned i = 0; i < n_endpoints; i++)
			keep[i] = w->rec->endpoints[i];
		endpoints = keep;
	}
	int rc = check_in(ps, in, name, attrs, n_attrs, endpoints, n_endpoints);
	if (rc)
		goto out;
	in->version = ++ps->version;
	struct mlps_record *rec = mlps_rec_build(in);
	if (!rec) {
		rc = ML_ENOMEM;
		goto out;
	}
	if ((rc = send_msg(ps, MLPS_MSG_PUBLISH, rec))) {
		mlps_rec_free(rec);
		goto out;
	}
	mlps_rec_free(w->rec);
	w->rec = rec;
out:
	free(in);
	return rc;
}

int mlps_withdraw(mlps *ps, const char *name)
{
	if (!ps || !name) {
		mlps_set_error("mlps_withdraw: NULL handle or name");
		return ML_EINVAL;
	}
	struct own **pp = own_find(ps, name), *w = *pp;
	if (!w) {
		mlps_set_error("%s: not published by this handle", name);
		return ML_ENOENT;
	}
	w->rec->version = ++ps->version;
	int rc = send_msg(ps, MLPS_MSG_WITHDRAW, w->rec);
	if (rc)
		return rc;
	*pp = w->next;
	mlps_rec_free(w->rec);
	free(w);
	return 0;
}

int mlps_subscribe(mlps *ps, const char *pattern, const char *filter, mlps_event_cb cb, void *arg,
		   mlps_sub **out)
{
	if (!ps || !cb || !out) {
		mlps_set_error("mlps_subscribe: handle, callback and out are required");
		return ML_EINVAL;
	}
	struct mlps_pattern *p = malloc(sizeof(*p));
	struct mlps_filter *f = malloc(sizeof(*f));
	int rc = ML_ENOMEM;
	if (p && f) {
		rc = ML_EINVAL;
		if (!mlps_pattern_parse(pattern, p) && !mlps_filter_parse(filter, f))
			rc = mlps_reg_subscribe(ps->c->reg, p, f, cb, arg, ps, out);
	}
	free(p);
	free(f);
	return rc;
}

void mlps_unsubscribe(mlps_sub *sub)
{
	mlps_reg_unsubscribe(sub);
}
