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
 * discovery, the engine, the timers. The command line is cli_options.c's.
 * doc/ml-blockcli.md.
 */
#include "backends.h"
#include "cli_options.h"
#include "copy.h"
#include "engine.h"
#include "mlpubsub.h"
#include "msglayer.h"
#include "report.h"
#include "workload.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROG "ml-blockcli"
#define CONNECT_GRACE_S 2.0 /* then start with the paths that are up */

enum { EXIT_DATA = 1, EXIT_SETUP = 3 }; /* usage: 2 (cli_options.h) */

struct cli {
	struct cli_options o;
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
			cli.o.drain_s);
	ev_timer_start(cli.loop, &cli.drain_timer);
	if (cli.o.mode == MODE_RUN)
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
		cli.o.drain_s);
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
	if (!cli.o.ready_file)
		return;
	int fd = open(cli.o.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0 || dprintf(fd, "node %u pid %u ml_node %u\n", b->node_id, b->pid, b->ml_node) < 0)
		fprintf(stderr, PROG ": cannot write %s: %s\n", cli.o.ready_file, strerror(errno));
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
	if (cli.o.mode == MODE_RUN) {
		rc = workload_init(&cli.w, &cli.o.wo, &cli.e, b->size, b->block_size, err, sizeof(err));
		cli.w.finished = finish_run;
		cli.e.done = workload_done;
		cli.e.refill = workload_refill;
		cli.e.arg = &cli.w;
	} else {
		rc = copy_init(&cli.c, &cli.e, cli.o.mode == MODE_PUT, cli.o.file, cli.o.length,
			       cli.o.wo.io_size, b->size, b->block_size, err, sizeof(err));
		cli.c.write_flags = cli.o.wo.sync ? BLK_F_SYNC : 0;
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
	       "%u of %u paths up; queue depth %u%s\n", cli.o.mode == MODE_RUN ? "running on" :
	       cli.o.mode == MODE_PUT ? "putting into" : "getting from", cli.be.name, b->node_id,
	       b->ml_node, b->size, b->block_size, st.paths_up, st.paths, cli.o.qd,
	       cli.o.wo.verify && cli.o.mode == MODE_RUN ? ", verifying every read" : "");
	fflush(stdout);
	report_start(&cli.rep, cli.loop, b->peer);
	cli.e.watch_stalls = 1;
	if (cli.o.mode == MODE_RUN && cli.o.duration > 0) {
		ev_timer_set(&cli.stop_timer, cli.o.duration, 0);
		ev_timer_start(cli.loop, &cli.stop_timer);
	}
	write_ready_file(b);
	if (cli.o.mode == MODE_RUN)
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
			"Corosync's namespace and group?)\n", cli.o.volume ? cli.be.name : "block/* volume",
			cli.o.wait_s);
	else
		fprintf(stderr, PROG ": no path to node %u came up within %.1f s\n",
			cli.cur.ml_node, cli.o.wait_s);
	cli.exit_code = EXIT_SETUP;
	ev_break(loop, EVBREAK_ALL);
}

static void on_backend(void *arg, const struct backend *now, int reason)
{
	(void)arg;
	if (!cli.engine_ready) { /* the first one: start with it once connected */
		if (!now)
			return;
		uint32_t bufsize = cli.o.wo.io_size ? cli.o.wo.io_size
				   : cli.o.mode == MODE_RUN ? now->block_size : now->max_io;
		if (bufsize > now->max_io) {
			fprintf(stderr, PROG ": --bs %u is over the backend's max_io %u\n", bufsize,
				now->max_io);
			cli.exit_code = EXIT_USAGE;
			ev_break(cli.loop, EVBREAK_ALL);
			return;
		}
		if (engine_init(&cli.e, cli.loop, cli.o.qd, bufsize, cli.o.failover_wait, NULL, NULL,
				NULL)) {
			fprintf(stderr, PROG ": out of memory for %u I/O buffers\n", cli.o.qd);
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
	       cli.o.failover_wait);
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
	cfg.node_id = cli.o.node;
	cfg.loop = cli.loop;
	cfg.admin_socket = cli.o.admin_socket;
	cfg.sched_policy = (unsigned)cli.o.sched;
	cfg.on_path_event = on_path_event;
	int rc = ml_ctx_create(&cfg, &cli.ctx);
	if (rc) {
		fprintf(stderr, PROG ": cannot create the message-layer context%s%s: %s\n",
			cli.o.admin_socket ? " with admin socket " : "",
			cli.o.admin_socket ? cli.o.admin_socket : "", ml_strerror(rc));
		return -1;
	}
	struct mlps_config pc;
	mlps_config_init(&pc);
	pc.msg_ctx = cli.ctx;        /* failed publishers' sessions are declared down */
	pc.connect_publishers = 1;   /* rec->peer: a session over every endpoint */
	if (cli.o.group)
		pc.group = cli.o.group;
	rc = mlps_create(cli.loop, &pc, &cli.ps);
	if (rc) {
		fprintf(stderr, PROG ": discovery: %s: %s (is Corosync running, and in this network "
			"namespace?)\n", mlps_strerror(rc), mlps_last_error());
		return -1;
	}
	rc = backends_start(&cli.be, cli.ps, cli.o.volume, on_backend, NULL);
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
	if (cli.o.mode == MODE_RUN)
		workload_free(&cli.w);
	else
		copy_close(&cli.c);
}

int main(int argc, char **argv)
{
	cli_options_parse(argc, argv, &cli.o);
	cli.loop = ev_default_loop(0);
	cli.c.fd = -1;
	ev_timer_init(&cli.wait_timer, on_wait_timer, cli.o.wait_s, 0);
	ev_timer_init(&cli.grace_timer, on_grace, CONNECT_GRACE_S, 0);
	ev_timer_init(&cli.stop_timer, on_stop_timer, cli.o.duration, 0);
	ev_timer_init(&cli.drain_timer, on_drain_timer, cli.o.drain_s, 0);
	ev_signal_init(&cli.sigint, on_signal, SIGINT);
	ev_signal_init(&cli.sigterm, on_signal, SIGTERM);
	ev_signal_start(cli.loop, &cli.sigint);
	ev_signal_start(cli.loop, &cli.sigterm);
	report_init(&cli.rep, &cli.e, stdout, cli.o.interval, cli.o.window, cli.o.win_start, cli.o.win_end);
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
			.what = cli.o.mode == MODE_RUN ? "I/Os" : cli.o.mode == MODE_PUT ? "put" : "get",
			.vc = cli.o.mode == MODE_RUN ? &cli.w.vc : NULL,
			.never_completed = cli.e.inflight,
			.switches = cli.be.switches,
			.flush_status = cli.o.mode == MODE_RUN ? cli.w.flush_status : cli.c.flush_status,
			.copied = cli.o.mode == MODE_RUN ? 0 : cli.c.copied,
		};
		int ok = report_summary(&cli.rep, &end);
		if (cli.o.mode != MODE_RUN && cli.c.failed)
			ok = 0;
		rc = ok ? 0 : EXIT_DATA;
	}
	teardown();
	return rc;
}
