/*
 * ml-blockd - the block backend: exports volumes (files, or sparse temporary
 * files) over msglayer and publishes each as "block/NAME" through discovery,
 * with its size, block size and the endpoints it listens on. Serves READ,
 * WRITE, FLUSH and DISCARD (blockproto.h) until SIGINT or SIGTERM, then
 * withdraws its volumes, finishes what it took, and exits.
 *
 * One thread runs the libev loop (message layer in embedded mode, discovery);
 * I/O threads do the blocking file work (service.c). doc/ml-blockd.md.
 */
#include "mlpubsub.h"
#include "msglayer.h"
#include "parse.h"
#include "service.h"
#include "volume.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "ml-blockd"
#define MAX_VOLUMES 16
#define MAX_URLS MLPS_ENDPOINTS_MAX
#define DRAIN_MAX_S 2.0 /* at exit: how long answers in flight may take */

enum { EXIT_USAGE = 2, EXIT_SETUP = 3 };

static const char usage[] =
	"usage: ml-blockd --volume SPEC [--volume SPEC]... --listen URL [--listen URL]...\n"
	"                 [--advertise URL]... [--node N] [--group NAME] [--admin-socket PATH]\n"
	"                 [--io-threads N] [--max-io SIZE] [--sched adaptive|round-robin]\n"
	"  SPEC: name=NAME,size=SIZE | name=NAME,file=PATH[,size=SIZE]  [,bs=N][,sync][,ro]\n"
	"  Publishes block/NAME through discovery (Corosync must run here) and serves it\n"
	"  until SIGINT or SIGTERM. Exit: 0 stopped by a signal, 2 usage, 3 setup failed.\n"
	"  See doc/ml-blockd.md.\n";

struct blockd {
	struct ev_loop *loop;
	struct volume vols[MAX_VOLUMES];
	unsigned nvols;
	const char *listen[MAX_URLS], *advertise[MAX_URLS];
	unsigned nlisten, nadvertise;
	char endpoints[MAX_URLS][ML_URL_MAX];
	unsigned nendpoints;
	uint32_t node, max_io;
	int sched;
	unsigned io_threads;
	const char *group, *admin_socket;
	struct service *svc;
	ml_ctx *ctx;
	mlps *ps;
	double drain_deadline;
	ev_signal sigint, sigterm;
	ev_timer drain;
};

static void options(struct blockd *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "volume", required_argument, 0, 'v' },     { "listen", required_argument, 0, 'l' },
		{ "advertise", required_argument, 0, 'A' },  { "node", required_argument, 0, 'n' },
		{ "group", required_argument, 0, 'g' },      { "admin-socket", required_argument, 0, 'a' },
		{ "io-threads", required_argument, 0, 't' }, { "max-io", required_argument, 0, 'm' },
		{ "sched", required_argument, 0, 's' },      { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t n;
	char err[256];
	int c;
	d->io_threads = 4;
	d->max_io = 1 << 20;
	while ((c = getopt_long(argc, argv, "v:l:A:n:g:a:t:m:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			if (d->nvols == MAX_VOLUMES)
				usage_error(PROG, "at most %d volumes", MAX_VOLUMES);
			if (volume_parse(optarg, &d->vols[d->nvols], err, sizeof(err)))
				usage_error(PROG, "--volume: %s", err);
			d->vols[d->nvols].id = d->nvols + 1;
			for (unsigned i = 0; i < d->nvols; i++)
				if (!strcmp(d->vols[i].name, d->vols[d->nvols].name))
					usage_error(PROG, "volume %s is given twice", d->vols[i].name);
			d->nvols++;
			break;
		case 'l':
		case 'A':
			if ((c == 'l' ? d->nlisten : d->nadvertise) == MAX_URLS)
				usage_error(PROG, "at most %d --%s URLs", MAX_URLS,
					    c == 'l' ? "listen" : "advertise");
			if (strncmp(optarg, "tcp://", 6) || strlen(optarg) >= ML_URL_MAX - 6)
				usage_error(PROG, "'%s' is not a tcp://HOST:PORT URL", optarg);
			if (c == 'l')
				d->listen[d->nlisten++] = optarg;
			else
				d->advertise[d->nadvertise++] = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, 1, UINT32_MAX, &n))
				usage_error(PROG, "--node wants a number 1..4294967295, not '%s'", optarg);
			d->node = (uint32_t)n;
			break;
		case 'g': d->group = optarg; break;
		case 'a': d->admin_socket = optarg; break;
		case 't':
			if (parse_uint(optarg, 1, 256, &n))
				usage_error(PROG, "--io-threads wants 1..256, not '%s'", optarg);
			d->io_threads = (unsigned)n;
			break;
		case 'm':
			if (parse_size(optarg, &n) || n < 4096 || n > (16u << 20))
				usage_error(PROG, "--max-io wants a size from 4k to 16M, not '%s'", optarg);
			d->max_io = (uint32_t)n;
			break;
		case 's':
			d->sched = parse_sched(optarg);
			if (d->sched < 0)
				usage_error(PROG, "--sched wants adaptive or round-robin, not '%s'", optarg);
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: usage_error(PROG, "unknown option");
		}
	}
	if (optind < argc)
		usage_error(PROG, "unexpected argument '%s'", argv[optind]);
	if (!d->nvols)
		usage_error(PROG, "give at least one --volume");
	if (!d->nlisten)
		usage_error(PROG, "give at least one --listen tcp://ADDRESS:PORT");
	if (!d->node)
		d->node = default_node_id();
}

/* What subscribers connect to: the --advertise URLs, or the listen URLs with
 * the ports the kernel picked. A wildcard address reaches nobody. */
static int make_endpoints(struct blockd *d)
{
	if (d->nadvertise) {
		for (unsigned i = 0; i < d->nadvertise; i++)
			snprintf(d->endpoints[i], ML_URL_MAX, "%s", d->advertise[i]);
		d->nendpoints = d->nadvertise;
		return 0;
	}
	for (unsigned i = 0; i < d->nlisten; i++) {
		const char *host = d->listen[i] + 6, *colon = strrchr(host, ':');
		int hlen = colon ? (int)(colon - host) : (int)strlen(host);
		if ((hlen == 7 && !strncmp(host, "0.0.0.0", 7)) || (hlen == 4 && !strncmp(host, "[::]", 4))) {
			fprintf(stderr, PROG ": %s listens on every address: say which ones to publish "
				"with --advertise URL\n", d->listen[i]);
			return -1;
		}
		snprintf(d->endpoints[i], ML_URL_MAX, "tcp://%.*s:%u", hlen, host,
			 ml_listen_port(d->ctx, i));
	}
	d->nendpoints = d->nlisten;
	return 0;
}

static int publish(struct blockd *d)
{
	struct mlps_config pc;
	mlps_config_init(&pc);
	pc.msg_ctx = d->ctx; /* records carry our node id; subscribers reach us by it */
	if (d->group)
		pc.group = d->group;
	int rc = mlps_create(d->loop, &pc, &d->ps);
	if (rc) {
		fprintf(stderr, PROG ": discovery: %s: %s (is Corosync running, and in this network "
			"namespace?)\n", mlps_strerror(rc), mlps_last_error());
		return -1;
	}
	const char *eps[MAX_URLS];
	for (unsigned i = 0; i < d->nendpoints; i++)
		eps[i] = d->endpoints[i];
	for (unsigned i = 0; i < d->nvols; i++) {
		const struct volume *v = &d->vols[i];
		struct mlps_attr attrs[] = {
			mlps_attr_u64("size", v->size),
			mlps_attr_u64("block_size", v->block_size),
			mlps_attr_u64("volume_id", v->id),
			mlps_attr_u64("max_io", d->max_io),
			mlps_attr_u64("proto", BLK_PROTO_VERSION),
			mlps_attr_bool("ro", v->ro),
			mlps_attr_bool("sync", v->sync),
		};
		char name[MLPS_NAME_MAX + 1];
		snprintf(name, sizeof(name), "block/%s", v->name);
		rc = mlps_publish(d->ps, name, attrs, sizeof(attrs) / sizeof(attrs[0]), eps,
				  d->nendpoints);
		if (rc) {
			fprintf(stderr, PROG ": cannot publish %s: %s: %s\n", name, mlps_strerror(rc),
				mlps_last_error());
			return -1;
		}
		fprintf(stderr, PROG ": node %u publishes %s: %" PRIu64 " bytes, %u-byte blocks%s%s, "
			"on", d->node, name, v->size, v->block_size, v->sync ? ", sync" : "",
			v->ro ? ", read-only" : "");
		for (unsigned k = 0; k < d->nendpoints; k++)
			fprintf(stderr, " %s", eps[k]);
		fprintf(stderr, "\n");
	}
	return 0;
}

/* Is a client still connected? Answers to clients that left are never
 * acknowledged: no reason to wait for them. */
static int clients_connected(ml_ctx *ctx)
{
	ml_peer *peers[64];
	unsigned n = ml_ctx_peers(ctx, peers, 64);
	for (unsigned i = 0; i < n && i < 64; i++) {
		struct ml_peer_stats st;
		if (ml_peer_stats_get(peers[i], &st, NULL, NULL) == 0 && st.paths_up)
			return 1;
	}
	return n > 64; /* not all checked: assume so */
}

static void on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct blockd *d = w->data;
	if (service_outstanding(d->svc) == 0 || !clients_connected(d->ctx) ||
	    ev_now(loop) >= d->drain_deadline) {
		ev_timer_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
	}
}

/* Withdraw first, so that frontends look elsewhere; answer what we took. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	struct blockd *d = w->data;
	if (!d->ps)
		return; /* already stopping */
	fprintf(stderr, PROG ": signal %d: withdrawing and stopping\n", w->signum);
	for (unsigned i = 0; i < d->nvols; i++) {
		char name[MLPS_NAME_MAX + 1];
		snprintf(name, sizeof(name), "block/%s", d->vols[i].name);
		mlps_withdraw(d->ps, name);
	}
	mlps_destroy(d->ps);
	d->ps = NULL;
	service_refuse_new(d->svc);
	d->drain_deadline = ev_now(loop) + DRAIN_MAX_S;
	ev_timer_init(&d->drain, on_drain, 0, 0.01);
	d->drain.data = d;
	ev_timer_start(loop, &d->drain);
}

static int setup(struct blockd *d)
{
	char err[512];
	for (unsigned i = 0; i < d->nvols; i++)
		if (volume_open(&d->vols[i], err, sizeof(err))) {
			fprintf(stderr, PROG ": %s\n", err);
			return -1;
		}
	if (service_create(d->vols, d->nvols, d->max_io, d->io_threads, &d->svc)) {
		fprintf(stderr, PROG ": cannot start the I/O threads: %s\n", strerror(errno));
		return -1;
	}
	struct ml_config cfg;
	ml_config_init(&cfg);
	cfg.node_id = d->node;
	cfg.loop = d->loop;
	cfg.on_request = service_on_request;
	cfg.cb_arg = d->svc;
	cfg.admin_socket = d->admin_socket;
	cfg.sched_policy = (unsigned)d->sched;
	int rc = ml_ctx_create(&cfg, &d->ctx);
	if (rc) {
		fprintf(stderr, PROG ": cannot create the message-layer context%s%s: %s\n",
			d->admin_socket ? " with admin socket " : "",
			d->admin_socket ? d->admin_socket : "", ml_strerror(rc));
		return -1;
	}
	for (unsigned i = 0; i < d->nlisten; i++) {
		rc = ml_listen(d->ctx, d->listen[i]);
		if (rc) {
			fprintf(stderr, PROG ": cannot listen on %s: %s\n", d->listen[i], ml_strerror(rc));
			return -1;
		}
	}
	return make_endpoints(d) || publish(d) ? -1 : 0;
}

static void teardown(struct blockd *d)
{
	if (d->ps)
		mlps_destroy(d->ps);
	if (d->svc)
		service_stop_io(d->svc); /* its threads answer: before the context goes */
	ml_ctx_destroy(d->ctx);
	if (d->svc) {
		struct service_stats st;
		service_stats_get(d->svc, &st);
		fprintf(stderr, PROG ": served %" PRIu64 " reads (%" PRIu64 " bytes), %" PRIu64
			" writes (%" PRIu64 " bytes), %" PRIu64 " flushes, %" PRIu64 " discards; %" PRIu64
			" refused; %" PRIu64 " answers unacknowledged (requester gone)\n", st.ops[BLK_READ],
			st.bytes_read, st.ops[BLK_WRITE], st.bytes_written, st.ops[BLK_FLUSH],
			st.ops[BLK_DISCARD], st.errors, st.send_failed);
	}
	service_destroy(d->svc);
	for (unsigned i = 0; i < d->nvols; i++)
		volume_close(&d->vols[i]);
}

int main(int argc, char **argv)
{
	static struct blockd d;
	options(&d, argc, argv);
	d.loop = ev_default_loop(0);
	ev_signal_init(&d.sigint, on_signal, SIGINT);
	ev_signal_init(&d.sigterm, on_signal, SIGTERM);
	d.sigint.data = d.sigterm.data = &d;
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sigterm);
	if (setup(&d)) {
		teardown(&d);
		return EXIT_SETUP;
	}
	ev_run(d.loop, 0);
	teardown(&d);
	fprintf(stderr, PROG ": stopped\n");
	return 0;
}
