/*
 * mlps_node.c - the discovery processes of one node in the three-node test
 * (tests/corosync/test_pubsub3.sh), each run next to its Corosync with
 * cs.sh exec N. Three roles:
 *
 *   mlps_node agent [ML_NODE]
 *	a publisher handle and a subscriber handle in one process (they share
 *	its CPG member), driven by one command per line on stdin; every reply
 *	ends with a line "ok" or "err TEXT". With ML_NODE, a frontend too: a
 *	message-layer context with that node id on the same loop, and a handle
 *	with connect_publishers subscribed to "backend/".
 *   mlps_node publisher NAME SIZE EP...
 *	publishes one resource until killed.
 *   mlps_node backend ML_NODE NAME SIZE EP...
 *	listens on the endpoints, publishes them with its message-layer node
 *	id (msg_ctx), takes requests and never answers them, until killed.
 *
 * Agent commands:
 *   pub NAME SIZE EP...   publish, attribute size=SIZE
 *   upd NAME SIZE [EP...] update (no endpoints: keep them)
 *   wd NAME               withdraw
 *   view                  the subscriber's view, one sorted line per record:
 *                         "NAME node=N size=S eps=EP,EP"
 *   late                  subscribe again (a late subscriber; replaces the last
 *                         one): its snapshot, sorted like view
 *   info NAME             the last event about NAME: present, reason, and the
 *                         times (CLOCK_REALTIME ns) of its last add and removal
 *   cs                    the Corosync connection: joined, ups, downs, times;
 *                         on_node_left calls and the last node they named
 *   fe                    the frontend's session and requests
 *   fesend N              N requests to the backend the frontend found
 *   quit                  destroy everything and exit 0
 *
 * The subscribers check their own event stream: no add of a record they
 * hold, no change or removal of one they do not, snapshot adds only inside
 * mlps_subscribe. view fails once one was wrong, and when the late
 * subscriber's view differs from the first's (same pattern, same process:
 * they must agree whenever the loop is idle).
 */
#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msglayer.h"
#include "../../pubsub/mlpubsub.h"

#define MAX_EPS 4
#define MAX_ARGS (4 + MAX_EPS)

static struct ev_loop *loop;

/* CLOCK_REALTIME: the namespaces share it with the driver, which stamps its kills. */
static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- a subscriber's view, checked event by event ------------------------------ */

struct entry {
	char name[MLPS_NAME_MAX + 1];
	uint32_t node, pid;
	uint64_t incarnation;
	char desc[512]; /* "node=N size=S eps=..." */
	int present, reason;
	long long added_ns, removed_ns;
	unsigned long touched; /* order of the last event: info reports the newest */
};

struct view {
	struct entry *e;
	unsigned n, cap;
	int in_subscribe; /* snapshot adds come only now */
	unsigned errors;
	char first_error[256];
	mlps_sub *sub;
};

static unsigned long touches;

static void view_fail(struct view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void view_fail(struct view *v, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mlps_node: subscriber: %s\n", text);
	if (!v->errors++)
		snprintf(v->first_error, sizeof(v->first_error), "%s", text);
}

/* The registry's key: a name is unique per publishing handle only. */
static struct entry *view_find(struct view *v, const struct mlps_record *r)
{
	for (unsigned i = 0; i < v->n; i++) {
		struct entry *e = &v->e[i];
		if (e->node == r->node_id && e->pid == r->pid && e->incarnation == r->incarnation &&
		    !strcmp(e->name, r->name))
			return e;
	}
	return NULL;
}

static struct entry *view_add(struct view *v, const struct mlps_record *r)
{
	if (v->n == v->cap) {
		unsigned cap = v->cap ? v->cap * 2 : 32;
		struct entry *e = realloc(v->e, cap * sizeof(*e));
		if (!e)
			return NULL;
		v->e = e;
		v->cap = cap;
	}
	struct entry *e = &v->e[v->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", r->name);
	e->node = r->node_id;
	e->pid = r->pid;
	e->incarnation = r->incarnation;
	return e;
}

static void describe(struct view *v, struct entry *e, const struct mlps_record *r)
{
	const struct mlps_attr *size = mlps_record_attr(r, "size");
	size_t len = (size_t)snprintf(e->desc, sizeof(e->desc), "node=%u size=%llu eps=", r->node_id,
				      size ? (unsigned long long)size->v.u64 : 0ull);
	for (unsigned i = 0; i < r->n_endpoints && len < sizeof(e->desc); i++)
		len += (size_t)snprintf(e->desc + len, sizeof(e->desc) - len, "%s%s", i ? "," : "",
					r->endpoints[i]);
	if (len >= sizeof(e->desc))
		view_fail(v, "%s: record too long to describe", r->name);
}

static void on_event(void *arg, mlps_sub *sub, int event, int reason,
		     const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	struct view *v = arg;
	struct entry *e = view_find(v, rec);
	const char *rn = mlps_reason_name(reason);
	switch (event) {
	case MLPS_ADDED:
		if (e && e->present)
			view_fail(v, "%s of node %u added (%s) while held", rec->name, rec->node_id, rn);
		if ((reason == MLPS_R_SNAPSHOT) != v->in_subscribe)
			view_fail(v, "%s added as %s %s mlps_subscribe", rec->name, rn,
				  v->in_subscribe ? "inside" : "after");
		if (!e && !(e = view_add(v, rec))) {
			view_fail(v, "out of memory");
			return;
		}
		e->present = 1;
		e->added_ns = now_ns();
		describe(v, e, rec);
		break;
	case MLPS_CHANGED:
		if (!e || !e->present || !old) {
			view_fail(v, "%s of node %u changed but not held", rec->name, rec->node_id);
			return;
		}
		describe(v, e, rec);
		break;
	case MLPS_REMOVED:
		if (!e || !e->present) {
			view_fail(v, "%s of node %u removed (%s) but not held", rec->name, rec->node_id,
				  rn);
			return;
		}
		e->present = 0;
		e->removed_ns = now_ns();
		break;
	}
	e->reason = reason;
	e->touched = ++touches;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The records present, as sorted lines "NAME DESC" (free with free_lines). */
static char **view_lines(const struct view *v, unsigned *n)
{
	char **l = calloc(v->n + 1, sizeof(*l));
	*n = 0;
	for (unsigned i = 0; l && i < v->n; i++)
		if (v->e[i].present && asprintf(&l[*n], "%s %s", v->e[i].name, v->e[i].desc) >= 0)
			++*n;
	if (l)
		qsort(l, *n, sizeof(*l), cmp_str);
	return l;
}

static void free_lines(char **l, unsigned n)
{
	for (unsigned i = 0; l && i < n; i++)
		free(l[i]);
	free(l);
}

static void view_reset(struct view *v)
{
	if (v->sub)
		mlps_unsubscribe(v->sub);
	free(v->e);
	memset(v, 0, sizeof(*v));
}

/* ---- the frontend: a session from discovery, failed by it ---------------------- */

struct frontend {
	ml_ctx *ctx;
	mlps *ps;
	mlps_sub *sub;
	ml_peer *peer; /* from the record (connect_publishers) */
	uint32_t ml_node;
	unsigned eps, adds, removes;
	int removed_reason;
	unsigned sent, done, peerdown, other;
	long long last_done_ns;
};

static void frontend_event(void *arg, mlps_sub *sub, int event, int reason,
			   const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	(void)old;
	struct frontend *f = arg;
	if (event == MLPS_ADDED) {
		f->adds++;
		f->peer = rec->peer;
		f->ml_node = rec->ml_node_id;
		f->eps = rec->n_endpoints;
	} else if (event == MLPS_REMOVED) {
		f->removes++;
		f->removed_reason = reason;
	}
}

static void frontend_answer(void *arg, int status, const struct ml_msg *resp)
{
	(void)resp;
	struct frontend *f = arg;
	f->done++;
	if (status == ML_EPEERDOWN)
		f->peerdown++;
	else
		f->other++;
	f->last_done_ns = now_ns();
}

static int frontend_start(struct frontend *f, uint32_t ml_node)
{
	struct ml_config mc;
	ml_config_init(&mc);
	mc.node_id = ml_node;
	mc.loop = loop; /* embedded: its callbacks run between our commands */
	if (ml_ctx_create(&mc, &f->ctx)) {
		fprintf(stderr, "mlps_node: frontend: no message-layer context\n");
		return 1;
	}
	struct mlps_config cfg;
	mlps_config_init(&cfg);
	cfg.msg_ctx = f->ctx;
	cfg.connect_publishers = 1;
	if (mlps_create(loop, &cfg, &f->ps) ||
	    mlps_subscribe(f->ps, "backend/", NULL, frontend_event, f, &f->sub)) {
		fprintf(stderr, "mlps_node: frontend: %s\n", mlps_last_error());
		return 1;
	}
	return 0;
}

static void frontend_stop(struct frontend *f)
{
	mlps_destroy(f->ps); /* before the context its records point into */
	if (f->ctx)
		ml_ctx_destroy(f->ctx);
}

/* ---- the agent ------------------------------------------------------------------ */

struct agent {
	mlps *pub, *subh;
	struct view first, late;
	struct frontend fe;
	int has_fe;
	int ups, downs, nodes_left;
	long long up_ns, down_ns;
	uint32_t last_node_left;
	char in[8192];
	size_t in_len;
	int quit;
	ev_io stdin_w;
};

static void on_corosync(void *arg, int up, int status, const char *text)
{
	(void)status;
	struct agent *a = arg;
	fprintf(stderr, "mlps_node: corosync %s: %s\n", up ? "up" : "down", text);
	if (up) {
		a->ups++;
		a->up_ns = now_ns();
	} else {
		a->downs++;
		a->down_ns = now_ns();
	}
}

static void on_node_left(void *arg, uint32_t node_id)
{
	struct agent *a = arg;
	a->nodes_left++;
	a->last_node_left = node_id;
}

static int reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return 0;
}

static int print_lines(char **l, unsigned n)
{
	if (!l)
		return reply("err out of memory");
	for (unsigned i = 0; i < n; i++)
		reply("%s", l[i]);
	free_lines(l, n);
	return reply("ok");
}

static int cmd_view(struct agent *a)
{
	unsigned n, m;
	char **l = view_lines(&a->first, &n);
	if (a->first.errors || a->late.errors) {
		free_lines(l, n);
		return reply("err subscriber saw a wrong event: %s",
			     a->first.errors ? a->first.first_error : a->late.first_error);
	}
	if (a->late.sub) {
		char **k = view_lines(&a->late, &m);
		int same = l && k && n == m;
		for (unsigned i = 0; same && i < n; i++)
			same = !strcmp(l[i], k[i]);
		free_lines(k, m);
		if (!same) {
			free_lines(l, n);
			return reply("err the late subscriber's view differs from the first's");
		}
	}
	return print_lines(l, n);
}

static int cmd_late(struct agent *a)
{
	view_reset(&a->late);
	a->late.in_subscribe = 1;
	int rc = mlps_subscribe(a->subh, NULL, NULL, on_event, &a->late, &a->late.sub);
	a->late.in_subscribe = 0;
	if (rc)
		return reply("err subscribe: %s", mlps_last_error());
	if (a->late.errors)
		return reply("err %s", a->late.first_error);
	unsigned n;
	char **l = view_lines(&a->late, &n);
	return print_lines(l, n);
}

static int cmd_info(struct agent *a, const char *name)
{
	const struct entry *best = NULL;
	for (unsigned i = 0; i < a->first.n; i++)
		if (!strcmp(a->first.e[i].name, name) &&
		    (!best || a->first.e[i].touched > best->touched))
			best = &a->first.e[i];
	if (!best)
		return reply("err %s: never seen", name);
	reply("%s present=%d reason=%s added_ns=%lld removed_ns=%lld", name, best->present,
	      mlps_reason_name(best->reason), best->added_ns, best->removed_ns);
	return reply("ok");
}

static int cmd_fe(struct agent *a)
{
	struct frontend *f = &a->fe;
	if (!a->has_fe)
		return reply("err no frontend here (agent ML_NODE)");
	struct ml_peer_stats st = { 0 };
	if (f->peer && ml_peer_stats_get(f->peer, &st, NULL, NULL))
		return reply("err ml_peer_stats_get failed");
	reply("peer=%d ml_node=%u eps=%u adds=%u removes=%u removed_reason=%s paths_up=%u "
	      "pending=%llu inflight=%llu declared_down=%llu sent=%u done=%u peerdown=%u other=%u "
	      "last_done_ns=%lld",
	      f->peer != NULL, f->ml_node, f->eps, f->adds, f->removes,
	      f->removes ? mlps_reason_name(f->removed_reason) : "-", st.paths_up,
	      (unsigned long long)st.requests_pending, (unsigned long long)st.inflight_msgs,
	      (unsigned long long)st.declared_down, f->sent, f->done, f->peerdown, f->other,
	      f->last_done_ns);
	return reply("ok");
}

static int cmd_fesend(struct agent *a, unsigned n)
{
	struct frontend *f = &a->fe;
	if (!a->has_fe || !f->peer)
		return reply("err no backend session yet");
	for (unsigned i = 0; i < n; i++) {
		struct ml_buf buf = ml_buf_plain("read", 4);
		int rc = ml_request_send(f->peer, f->sent, &buf, 1, ML_SEND_COPY, frontend_answer, f);
		if (rc)
			return reply("err ml_request_send: %s", ml_strerror(rc));
		f->sent++;
	}
	return reply("ok");
}

static void attr_size(struct mlps_attr *attr, const char *s)
{
	*attr = mlps_attr_u64("size", strtoull(s, NULL, 0));
}

static int handle(struct agent *a, char *line)
{
	char *arg[MAX_ARGS + 1], *save = NULL;
	unsigned n = 0;
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == MAX_ARGS)
			return reply("err too many words");
		arg[n++] = t;
	}
	arg[n] = NULL;
	if (!n)
		return reply("err empty command");
	const char *c = arg[0];
	struct mlps_attr size;
	int rc;
	if (!strcmp(c, "pub") && n >= 3) {
		attr_size(&size, arg[2]);
		rc = mlps_publish(a->pub, arg[1], &size, 1, (const char *const *)&arg[3], n - 3);
	} else if (!strcmp(c, "upd") && n >= 3) {
		attr_size(&size, arg[2]);
		rc = mlps_update(a->pub, arg[1], &size, 1, n > 3 ? (const char *const *)&arg[3] : NULL,
				 n - 3);
	} else if (!strcmp(c, "wd") && n == 2) {
		rc = mlps_withdraw(a->pub, arg[1]);
	} else if (!strcmp(c, "view") && n == 1) {
		return cmd_view(a);
	} else if (!strcmp(c, "late") && n == 1) {
		return cmd_late(a);
	} else if (!strcmp(c, "info") && n == 2) {
		return cmd_info(a, arg[1]);
	} else if (!strcmp(c, "cs") && n == 1) {
		reply("joined=%d ups=%d downs=%d up_ns=%lld down_ns=%lld nodes_left=%d last_node_left=%u",
		      mlps_connected(a->subh), a->ups, a->downs, a->up_ns, a->down_ns, a->nodes_left,
		      a->last_node_left);
		return reply("ok");
	} else if (!strcmp(c, "fe") && n == 1) {
		return cmd_fe(a);
	} else if (!strcmp(c, "fesend") && n == 2) {
		return cmd_fesend(a, (unsigned)atoi(arg[1]));
	} else if (!strcmp(c, "quit") && n == 1) {
		a->quit = 1;
		ev_break(loop, EVBREAK_ALL);
		return reply("ok");
	} else {
		return reply("err unknown command or wrong arguments: %s", c);
	}
	if (rc)
		return reply("err %s: %s: %s", c, mlps_strerror(rc), mlps_last_error());
	return reply("ok");
}

static void stdin_cb(struct ev_loop *l, ev_io *w, int revents)
{
	(void)revents;
	struct agent *a = w->data;
	ssize_t got = read(0, a->in + a->in_len, sizeof(a->in) - 1 - a->in_len);
	if (got <= 0) {
		/* the driver is gone: nobody will ask for quit */
		ev_break(l, EVBREAK_ALL);
		return;
	}
	a->in_len += (size_t)got;
	char *start = a->in, *nl;
	while (!a->quit && (nl = memchr(start, '\n', a->in_len - (size_t)(start - a->in)))) {
		*nl = '\0';
		handle(a, start);
		start = nl + 1;
	}
	fflush(stdout);
	a->in_len -= (size_t)(start - a->in);
	memmove(a->in, start, a->in_len);
	if (a->in_len == sizeof(a->in) - 1) {
		reply("err line too long");
		fflush(stdout);
		a->in_len = 0;
	}
}

static int agent_main(uint32_t ml_node)
{
	static struct agent a;
	struct mlps_config cfg;
	mlps_config_init(&cfg);
	if (mlps_create(loop, &cfg, &a.pub)) {
		fprintf(stderr, "mlps_node: %s\n", mlps_last_error());
		return 1;
	}
	cfg.on_corosync = on_corosync;
	cfg.on_node_left = on_node_left;
	cfg.cb_arg = &a;
	/* subscribed before anything is published: every record comes as news */
	if (mlps_create(loop, &cfg, &a.subh) ||
	    mlps_subscribe(a.subh, NULL, NULL, on_event, &a.first, &a.first.sub)) {
		fprintf(stderr, "mlps_node: %s\n", mlps_last_error());
		return 1;
	}
	if (ml_node) {
		a.has_fe = 1;
		if (frontend_start(&a.fe, ml_node))
			return 1;
	}
	ev_io_init(&a.stdin_w, stdin_cb, 0, EV_READ);
	a.stdin_w.data = &a;
	ev_io_start(loop, &a.stdin_w);
	ev_run(loop, 0);
	ev_io_stop(loop, &a.stdin_w);
	if (a.has_fe)
		frontend_stop(&a.fe);
	view_reset(&a.late);
	view_reset(&a.first);
	mlps_destroy(a.subh);
	mlps_destroy(a.pub);
	return 0;
}

/* ---- publisher and backend: publish, then wait to be killed --------------------- */

static int publish_and_wait(ml_ctx *ctx, char **argv, int argc)
{
	struct mlps_config cfg;
	mlps_config_init(&cfg);
	cfg.msg_ctx = ctx;
	mlps *ps;
	struct mlps_attr size;
	attr_size(&size, argv[1]);
	if (mlps_create(loop, &cfg, &ps) ||
	    mlps_publish(ps, argv[0], &size, 1, (const char *const *)&argv[2], (unsigned)argc - 2)) {
		fprintf(stderr, "mlps_node: %s\n", mlps_last_error());
		return 1;
	}
	ev_run(loop, 0);
	return 1; /* the loop never ends by itself */
}

static void backend_hold(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	(void)req; /* held until the process dies, as a hung or crashed server would */
	(void)msg;
}

static int backend_main(uint32_t ml_node, char **argv, int argc)
{
	struct ml_config mc;
	ml_config_init(&mc);
	mc.node_id = ml_node;
	mc.loop = loop;
	mc.on_request = backend_hold;
	ml_ctx *ctx;
	if (ml_ctx_create(&mc, &ctx)) {
		fprintf(stderr, "mlps_node: backend: no message-layer context\n");
		return 1;
	}
	for (int i = 2; i < argc; i++)
		if (ml_listen(ctx, argv[i])) {
			fprintf(stderr, "mlps_node: backend: cannot listen on %s\n", argv[i]);
			return 1;
		}
	return publish_and_wait(ctx, argv, argc);
}

static int usage(void)
{
	fprintf(stderr, "usage: mlps_node agent [ML_NODE]\n"
			"       mlps_node publisher NAME SIZE EP...\n"
			"       mlps_node backend ML_NODE NAME SIZE EP...\n");
	return 2;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16); /* flushed after each batch of commands */
	loop = ev_default_loop(0);
	if (argc >= 2 && argc <= 3 && !strcmp(argv[1], "agent"))
		return agent_main(argc == 3 ? (uint32_t)atoi(argv[2]) : 0);
	if (argc >= 5 && argc - 4 <= MAX_EPS && !strcmp(argv[1], "publisher"))
		return publish_and_wait(NULL, argv + 2, argc - 2);
	if (argc >= 6 && argc - 5 <= MAX_EPS && !strcmp(argv[1], "backend"))
		return backend_main((uint32_t)atoi(argv[2]), argv + 3, argc - 3);
	return usage();
}
