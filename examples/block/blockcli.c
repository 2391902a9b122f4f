/*
 * ml-blockcli - the block frontend: finds a volume through discovery
 * (a block/NAME record, with a session over every endpoint its backend published), then
 * runs a workload on it (random or sequential reads, writes and discards,
 * queue depth, block size, duration or I/O count, verify mode) or copies a
 * file to or from it. Prints a progress line per second and a summary; if
 * the backend goes and another publishes the same volume, switches to it and
 * re-issues what failed because the first one went.
 *
 * Everything runs on one libev loop: the message layer in embedded mode,
 * discovery, the engine, the timers. doc/ml-blockcli.md.
 */
#include "backends.h"
#include "copy.h"
#include "engine.h"
#include "mlpubsub.h"
#include "msglayer.h"
#include "parse.h"
#include "report.h"
#include "workload.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "ml-blockcli"
#define CONNECT_GRACE_S 2.0 /* then start with the paths that are up */

enum { EXIT_DATA = 1, EXIT_USAGE = 2, EXIT_SETUP = 3 };
enum mode { MODE_RUN, MODE_PUT, MODE_GET };

static const char usage[] =
	"usage: ml-blockcli [options] [run]        run a workload (the default)\n"
	"       ml-blockcli [options] put FILE     copy FILE to the volume, from offset 0\n"
	"       ml-blockcli [options] get FILE     copy the volume (or --length bytes) to FILE\n"
	"discovery:  --volume NAME  --group NAME  --wait S (10)\n"
	"session:    --node N  --admin-socket PATH  --sched adaptive|round-robin\n"
	"workload:   --rw randrw|randread|randwrite|rw|read|write (randrw)  --read-pct N (50)\n"
	"            --discard-pct N (0)  --bs SIZE (the volume's block size)  --qd N (16)\n"
	"            --duration S (10)  --ios N  --rate IOPS  --region SIZE  --verify  --sync\n"
	"            --seed N\n"
	"put/get:    --bs SIZE (the backend's max_io)  --qd N  --sync (put)  --length SIZE (get)\n"
	"output:     --interval S (1; 0: none)  --fault-window auto|START,END  --ready-file PATH\n"
	"failover:   --failover-wait S (10)  --drain S (10)\n"
	"Exit: 0 every I/O completed once (and verified), 1 lost, duplicated, failed or\n"
	"mismatched, 2 usage, 3 setup (Corosync, no volume, no path). See doc/ml-blockcli.md.\n";

struct cli {
	/* options */
	int mode;
	const char *file, *volume, *group, *admin_socket, *ready_file;
	uint32_t node;
	int sched;
	unsigned qd;
	double wait_s, duration, drain_s, failover_wait, interval;
	int window;
	double win_start, win_end;
	int rw_read_pct;             /* --rw's share of reads; -1: a mix (--read-pct) */
	uint64_t length;
	struct workload_opts wo;

	/* state */
	struct ev_loop *loop;
	ml_ctx *ctx;
	mlps *ps;
	struct backends be;
	struct backend cur;          /* the backend in use (a copy: the list moves) */
	int have_backend;
	double t_chosen;
	int engine_ready, started, stopping, exit_code;
	struct engine e;
	struct workload w;
	struct copy c;
	struct report rep;
	ev_timer wait_timer, grace_timer, stop_timer, drain_timer;
	ev_signal sigint, sigterm;
};

static struct cli cli;

static void parse_window(const char *s)
{
	if (!strcmp(s, "auto")) {
		cli.window = WINDOW_AUTO;
		return;
	}
	char a[64], b[64];
	const char *comma = strchr(s, ',');
	if (!comma || (size_t)(comma - s) >= sizeof(a) || strlen(comma + 1) >= sizeof(b))
		usage_error(PROG, "--fault-window wants auto or START,END (seconds), not '%s'", s);
	snprintf(a, sizeof(a), "%.*s", (int)(comma - s), s);
	snprintf(b, sizeof(b), "%s", comma + 1);
	if (parse_double(a, 0, 1e6, &cli.win_start) || parse_double(b, 0, 1e6, &cli.win_end) ||
	    cli.win_end <= cli.win_start)
		usage_error(PROG, "--fault-window wants auto or START,END with START < END, not '%s'", s);
	cli.window = WINDOW_FIXED;
}

static void parse_rw(const char *s)
{
	static const struct { const char *name; int random, read_pct; } kinds[] = {
		{ "randrw", 1, -1 }, { "randread", 1, 100 }, { "randwrite", 1, 0 },
		{ "rw", 0, -1 },     { "read", 0, 100 },     { "write", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(s, kinds[i].name)) {
			cli.wo.random = kinds[i].random;
			cli.rw_read_pct = kinds[i].read_pct;
			return;
		}
	usage_error(PROG, "--rw wants randrw, randread, randwrite, rw, read or write, not '%s'", s);
}

static double opt_seconds(const char *name, const char *v, double min)
{
	double d;
	if (parse_double(v, min, 1e6, &d))
		usage_error(PROG, "--%s wants seconds (%g or more), not '%s'", name, min, v);
	return d;
}

static void options(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "volume", required_argument, 0, 'v' },   { "group", required_argument, 0, 'g' },
		{ "wait", required_argument, 0, 'W' },     { "node", required_argument, 0, 'n' },
		{ "admin-socket", required_argument, 0, 'a' }, { "rw", required_argument, 0, 'r' },
		{ "read-pct", required_argument, 0, 'R' }, { "discard-pct", required_argument, 0, 'D' },
		{ "bs", required_argument, 0, 'b' },       { "qd", required_argument, 0, 'q' },
		{ "duration", required_argument, 0, 'd' }, { "ios", required_argument, 0, 'i' },
		{ "region", required_argument, 0, 'G' },   { "verify", no_argument, 0, 'V' },
		{ "sync", no_argument, 0, 's' },           { "seed", required_argument, 0, 'S' },
		{ "length", required_argument, 0, 'L' },   { "interval", required_argument, 0, 'I' },
		{ "fault-window", required_argument, 0, 'F' }, { "ready-file", required_argument, 0, 'y' },
		{ "failover-wait", required_argument, 0, 'f' }, { "drain", required_argument, 0, 'X' },
		{ "rate", required_argument, 0, 'T' },     { "sched", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },           { 0, 0, 0, 0 },
	};
	uint64_t n;
	int c, read_pct_given = 0, duration_given = 0;
	cli.qd = 16;
	cli.wait_s = 10;
	cli.duration = 10;
	cli.drain_s = 10;
	cli.failover_wait = 10;
	cli.interval = 1;
	cli.wo.random = 1;
	cli.rw_read_pct = -1;
	cli.wo.read_pct = 50;
	while ((c = getopt_long(argc, argv, "v:g:W:n:a:r:R:D:b:q:d:i:G:VsS:L:I:F:y:f:X:T:P:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'v':
			if (!*optarg || strpbrk(optarg, "/*? ,"))
				usage_error(PROG, "--volume wants a name (no '/', '*', '?', spaces), not '%s'",
					    optarg);
			cli.volume = optarg;
			break;
		case 'g': cli.group = optarg; break;
		case 'W': cli.wait_s = opt_seconds("wait", optarg, 0.1); break;
		case 'n':
			if (parse_uint(optarg, 1, UINT32_MAX, &n))
				usage_error(PROG, "--node wants a number 1..4294967295, not '%s'", optarg);
			cli.node = (uint32_t)n;
			break;
		case 'a': cli.admin_socket = optarg; break;
		case 'r': parse_rw(optarg); break;
		case 'R':
			if (parse_uint(optarg, 0, 100, &n))
				usage_error(PROG, "--read-pct wants 0..100, not '%s'", optarg);
			cli.wo.read_pct = (unsigned)n;
			read_pct_given = 1;
			break;
		case 'D':
			if (parse_uint(optarg, 0, 100, &n))
				usage_error(PROG, "--discard-pct wants 0..100, not '%s'", optarg);
			cli.wo.discard_pct = (unsigned)n;
			break;
		case 'b':
			if (parse_size(optarg, &n) || n < 512 || n > (16u << 20))
				usage_error(PROG, "--bs wants a size from 512 to 16M, not '%s'", optarg);
			cli.wo.io_size = (uint32_t)n;
			break;
		case 'q':
			/* below the message layer's admission limit: sends are never refused */
			if (parse_uint(optarg, 1, 1024, &n))
				usage_error(PROG, "--qd wants 1..1024, not '%s'", optarg);
			cli.qd = (unsigned)n;
			break;
		case 'd':
			cli.duration = opt_seconds("duration", optarg, 0.1);
			duration_given = 1;
			break;
		case 'i':
			if (parse_uint(optarg, 1, UINT64_MAX, &n))
				usage_error(PROG, "--ios wants a positive count, not '%s'", optarg);
			cli.wo.ios = n;
			break;
		case 'T':
			if (parse_double(optarg, 1, 1e9, &cli.wo.rate))
				usage_error(PROG, "--rate wants I/Os per second (1 or more), not '%s'", optarg);
			break;
		case 'G':
			if (parse_size(optarg, &cli.wo.region) || !cli.wo.region)
				usage_error(PROG, "--region wants a size, not '%s'", optarg);
			break;
		case 'V': cli.wo.verify = 1; break;
		case 's': cli.wo.sync = 1; break;
		case 'S':
			if (parse_uint(optarg, 1, UINT64_MAX, &cli.wo.seed))
				usage_error(PROG, "--seed wants a positive number, not '%s'", optarg);
			break;
		case 'L':
			if (parse_size(optarg, &cli.length) || !cli.length)
				usage_error(PROG, "--length wants a size, not '%s'", optarg);
			break;
		case 'I': cli.interval = opt_seconds("interval", optarg, 0); break;
		case 'F': parse_window(optarg); break;
		case 'y': cli.ready_file = optarg; break;
		case 'f': cli.failover_wait = opt_seconds("failover-wait", optarg, 0.1); break;
		case 'X': cli.drain_s = opt_seconds("drain", optarg, 0.1); break;
		case 'P':
			cli.sched = parse_sched(optarg);
			if (cli.sched < 0)
				usage_error(PROG, "--sched wants adaptive or round-robin, not '%s'", optarg);
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: usage_error(PROG, "unknown option");
		}
	}
	const char *cmd = optind < argc ? argv[optind++] : "run";
	if (!strcmp(cmd, "run")) {
		cli.mode = MODE_RUN;
	} else if (!strcmp(cmd, "put") || !strcmp(cmd, "get")) {
		cli.mode = !strcmp(cmd, "put") ? MODE_PUT : MODE_GET;
		if (optind >= argc)
			usage_error(PROG, "%s wants a FILE", cmd);
		cli.file = argv[optind++];
	} else {
		usage_error(PROG, "unknown command '%s' (run, put or get)", cmd);
	}
	if (optind < argc)
		usage_error(PROG, "unexpected argument '%s'", argv[optind]);
	if (cli.rw_read_pct >= 0) {
		if (read_pct_given)
			usage_error(PROG, "--read-pct goes with --rw rw or randrw only");
		cli.wo.read_pct = (unsigned)cli.rw_read_pct;
	}
	if (cli.wo.read_pct + cli.wo.discard_pct > 100)
		usage_error(PROG, "--read-pct and --discard-pct add up to more than 100");
	if (cli.wo.ios && !duration_given)
		cli.duration = 0; /* the count decides */
	if (!cli.node)
		cli.node = default_node_id();
}

/* ---- the run's phases ------------------------------------------------------ */

static void finish_run(void *arg)
{
	(void)arg;
	ev_break(cli.loop, EVBREAK_ALL);
}

static void stop_issuing(const char *why)
{
	if (cli.stopping)
		return;
	cli.stopping = 1;
	cli.e.watch_stalls = 0; /* the drain and the final flush are not stalls */
	if (why)
		fprintf(stderr, PROG ": %s: finishing the I/O in flight (at most %.0f s)\n", why,
			cli.drain_s);
	ev_timer_start(cli.loop, &cli.drain_timer);
	if (cli.mode == MODE_RUN)
		workload_stop(&cli.w);
	else
		copy_stop(&cli.c);
}

static void on_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	stop_issuing(NULL);
}

static void on_drain_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	fprintf(stderr, PROG ": %u I/Os still outstanding after %.0f s: given up\n", cli.e.inflight,
		cli.drain_s);
	cli.e.refill = NULL; /* given up: no final flush either */
	engine_fail_held(&cli.e, ML_EPEERDOWN); /* held for a backend that did not come */
	ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	if (!cli.started || cli.stopping) { /* nothing to finish, or asked twice */
		cli.exit_code = cli.started ? cli.exit_code : EXIT_SETUP;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	stop_issuing(w->signum == SIGINT ? "interrupted" : "terminated");
}

/* One line for whoever waits for the start (a script): a regular file, or a
 * FIFO it holds open (never blocks: no reader, no line). */
static void write_ready_file(const struct backend *b)
{
	if (!cli.ready_file)
		return;
	int fd = open(cli.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0 || dprintf(fd, "node %u pid %u ml_node %u\n", b->node_id, b->pid, b->ml_node) < 0)
		fprintf(stderr, PROG ": cannot write %s: %s\n", cli.ready_file, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void start(void)
{
	const struct backend *b = &cli.cur;
	char err[256];
	int rc;
	cli.started = 1;
	ev_timer_stop(cli.loop, &cli.wait_timer);
	ev_timer_stop(cli.loop, &cli.grace_timer);
	if (cli.mode == MODE_RUN) {
		rc = workload_init(&cli.w, &cli.wo, &cli.e, b->size, b->block_size, err, sizeof(err));
		cli.w.finished = finish_run;
		cli.e.done = workload_done;
		cli.e.refill = workload_refill;
		cli.e.arg = &cli.w;
	} else {
		rc = copy_init(&cli.c, &cli.e, cli.mode == MODE_PUT, cli.file, cli.length,
			       cli.wo.io_size, b->size, b->block_size, err, sizeof(err));
		cli.c.write_flags = cli.wo.sync ? BLK_F_SYNC : 0;
		cli.c.finished = finish_run;
		cli.e.done = copy_done;
		cli.e.refill = copy_refill;
		cli.e.arg = &cli.c;
	}
	if (rc) {
		fprintf(stderr, PROG ": %s\n", err);
		cli.exit_code = EXIT_USAGE;
		ev_break(cli.loop, EVBREAK_ALL);
		return;
	}
	struct ml_peer_stats st;
	unsigned np = 0;
	ml_peer_stats_get(b->peer, &st, NULL, &np);
	printf(PROG ": %s %s on node %u (message-layer node %u), %" PRIu64 " bytes, %u-byte blocks, "
	       "%u of %u paths up; queue depth %u%s\n", cli.mode == MODE_RUN ? "running on" :
	       cli.mode == MODE_PUT ? "putting into" : "getting from", cli.be.name, b->node_id,
	       b->ml_node, b->size, b->block_size, st.paths_up, st.paths, cli.qd,
	       cli.wo.verify && cli.mode == MODE_RUN ? ", verifying every read" : "");
	fflush(stdout);
	report_start(&cli.rep, cli.loop, b->peer);
	cli.e.watch_stalls = 1;
	if (cli.mode == MODE_RUN && cli.duration > 0) {
		ev_timer_set(&cli.stop_timer, cli.duration, 0);
		ev_timer_start(cli.loop, &cli.stop_timer);
	}
	write_ready_file(b);
	if (cli.mode == MODE_RUN)
		workload_start(&cli.w);
	else
		copy_start(&cli.c);
}

/* Every path up, or some after the grace period. */
static void maybe_start(void)
{
	if (cli.started || !cli.have_backend)
		return;
	struct ml_peer_stats st;
	unsigned np = 0;
	if (ml_peer_stats_get(cli.cur.peer, &st, NULL, &np))
		return;
	if ((st.paths && st.paths_up == st.paths) ||
	    (st.paths_up && ev_time() - cli.t_chosen >= CONNECT_GRACE_S))
		start();
}

static void on_path_event(void *arg, ml_peer *peer, unsigned idx, int old, int new_state,
			  const char *reason)
{
	(void)arg;
	(void)peer;
	(void)idx;
	(void)old;
	(void)reason;
	if (new_state == ML_PATH_UP)
		maybe_start();
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	maybe_start();
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	if (!cli.have_backend)
		fprintf(stderr, PROG ": no %s published within %.1f s (is ml-blockd running, in this "
			"Corosync's namespace and group?)\n", cli.volume ? cli.be.name : "block/* volume",
			cli.wait_s);
	else
		fprintf(stderr, PROG ": no path to node %u came up within %.1f s\n",
			cli.cur.ml_node, cli.wait_s);
	cli.exit_code = EXIT_SETUP;
	ev_break(loop, EVBREAK_ALL);
}

static void on_backend(void *arg, const struct backend *now, int reason)
{
	(void)arg;
	if (!cli.engine_ready) { /* the first one: start with it once connected */
		if (!now)
			return;
		uint32_t bufsize = cli.wo.io_size ? cli.wo.io_size
				   : cli.mode == MODE_RUN ? now->block_size : now->max_io;
		if (bufsize > now->max_io) {
			fprintf(stderr, PROG ": --bs %u is over the backend's max_io %u\n", bufsize,
				now->max_io);
			cli.exit_code = EXIT_USAGE;
			ev_break(cli.loop, EVBREAK_ALL);
			return;
		}
		if (engine_init(&cli.e, cli.loop, cli.qd, bufsize, cli.failover_wait, NULL, NULL,
				NULL)) {
			fprintf(stderr, PROG ": out of memory for %u I/O buffers\n", cli.qd);
			cli.exit_code = EXIT_SETUP;
			ev_break(cli.loop, EVBREAK_ALL);
			return;
		}
		cli.engine_ready = 1;
		cli.cur = *now;
		cli.have_backend = 1;
		cli.t_chosen = ev_time();
		engine_set_backend(&cli.e, now->peer, now->volume_id);
		ev_timer_start(cli.loop, &cli.grace_timer);
		maybe_start();
		return;
	}
	const char *why = mlps_reason_name(reason);
	if (now) {
		printf(PROG ": switching to node %u (message-layer node %u) at %s%s%s (%s)\n",
		       now->node_id, now->ml_node, now->endpoints[0], now->n_endpoints > 1 ? "," : "",
		       now->n_endpoints > 1 ? now->endpoints[1] : "", why);
		fflush(stdout);
		cli.cur = *now;
		cli.have_backend = 1;
		engine_set_backend(&cli.e, now->peer, now->volume_id);
		if (cli.started)
			report_set_peer(&cli.rep, now->peer);
		return;
	}
	/* Gone without a replica. A failed publisher's I/O fails with
	 * ML_EPEERDOWN and waits for the next one; so does new I/O. A clean
	 * withdraw or our own Corosync trouble: the session may still serve. */
	printf(PROG ": backend of %s gone (%s); waiting up to %.0f s for another\n", cli.be.name, why,
	       cli.failover_wait);
	fflush(stdout);
	if (reason == MLPS_R_NODE_LEFT || reason == MLPS_R_PUBLISHER_LEFT) {
		cli.have_backend = 0;
		engine_set_backend(&cli.e, NULL, 0);
	}
}

/* ---- set-up and tear-down --------------------------------------------------- */

static int setup(void)
{
	struct ml_config cfg;
	ml_config_init(&cfg);
	cfg.node_id = cli.node;
	cfg.loop = cli.loop;
	cfg.admin_socket = cli.admin_socket;
	cfg.sched_policy = (unsigned)cli.sched;
	cfg.on_path_event = on_path_event;
	int rc = ml_ctx_create(&cfg, &cli.ctx);
	if (rc) {
		fprintf(stderr, PROG ": cannot create the message-layer context%s%s: %s\n",
			cli.admin_socket ? " with admin socket " : "",
			cli.admin_socket ? cli.admin_socket : "", ml_strerror(rc));
		return -1;
	}
	struct mlps_config pc;
	mlps_config_init(&pc);
	pc.msg_ctx = cli.ctx;        /* failed publishers' sessions are declared down */
	pc.connect_publishers = 1;   /* rec->peer: a session over every endpoint */
	if (cli.group)
		pc.group = cli.group;
	rc = mlps_create(cli.loop, &pc, &cli.ps);
	if (rc) {
		fprintf(stderr, PROG ": discovery: %s: %s (is Corosync running, and in this network "
			"namespace?)\n", mlps_strerror(rc), mlps_last_error());
		return -1;
	}
	rc = backends_start(&cli.be, cli.ps, cli.volume, on_backend, NULL);
	if (rc) {
		fprintf(stderr, PROG ": subscribe: %s: %s\n", mlps_strerror(rc), mlps_last_error());
		return -1;
	}
	return 0;
}

static void teardown(void)
{
	if (cli.engine_ready)
		engine_close(&cli.e);
	backends_stop(&cli.be);
	if (cli.ps)
		mlps_destroy(cli.ps);
	ml_ctx_destroy(cli.ctx);
	if (cli.engine_ready)
		engine_destroy(&cli.e);
	if (cli.mode == MODE_RUN)
		workload_free(&cli.w);
	else
		copy_close(&cli.c);
}

int main(int argc, char **argv)
{
	options(argc, argv);
	cli.loop = ev_default_loop(0);
	cli.c.fd = -1;
	ev_timer_init(&cli.wait_timer, on_wait_timer, cli.wait_s, 0);
	ev_timer_init(&cli.grace_timer, on_grace, CONNECT_GRACE_S, 0);
	ev_timer_init(&cli.stop_timer, on_stop_timer, cli.duration, 0);
	ev_timer_init(&cli.drain_timer, on_drain_timer, cli.drain_s, 0);
	ev_signal_init(&cli.sigint, on_signal, SIGINT);
	ev_signal_init(&cli.sigterm, on_signal, SIGTERM);
	ev_signal_start(cli.loop, &cli.sigint);
	ev_signal_start(cli.loop, &cli.sigterm);
	report_init(&cli.rep, &cli.e, stdout, cli.interval, cli.window, cli.win_start, cli.win_end);
	if (setup()) {
		teardown();
		return EXIT_SETUP;
	}
	ev_timer_start(cli.loop, &cli.wait_timer);
	ev_run(cli.loop, 0);
	ev_timer_stop(cli.loop, &cli.wait_timer);
	ev_timer_stop(cli.loop, &cli.grace_timer);
	ev_timer_stop(cli.loop, &cli.stop_timer);
	ev_timer_stop(cli.loop, &cli.drain_timer);
	int rc = cli.exit_code;
	if (cli.started && !rc) {
		cli.e.watch_stalls = 0;
		report_stop(&cli.rep, cli.loop);
		struct report_end end = {
			.what = cli.mode == MODE_RUN ? "I/Os" : cli.mode == MODE_PUT ? "put" : "get",
			.vc = cli.mode == MODE_RUN ? &cli.w.vc : NULL,
			.never_completed = cli.e.inflight,
			.switches = cli.be.switches,
			.flush_status = cli.mode == MODE_RUN ? cli.w.flush_status : cli.c.flush_status,
			.copied = cli.mode == MODE_RUN ? 0 : cli.c.copied,
		};
		int ok = report_summary(&cli.rep, &end);
		if (cli.mode != MODE_RUN && cli.c.failed)
			ok = 0;
		rc = ok ? 0 : EXIT_DATA;
	}
	teardown();
	return rc;
}
