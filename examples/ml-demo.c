/*
 * ml-demo - what `make demo` runs: a client and a server, both embedded in
 * this one libev loop, exchange verified requests over two TCP paths
 * (127.0.0.1 and 127.0.0.2) while path 0 is first reset, then silently
 * blackholed for a second (found by the heartbeats). Prints a line per
 * second and a summary: lost, duplicated, resent, the longest stall.
 *
 * Usage: ml-demo [seconds]   (default 6)
 * With $ML_ADMIN_SOCKET set, the client (node 2) serves its admin socket
 * there: watch the paths with `mlctl status` while the demo runs.
 */
#include "msglayer.h"

#include <ev.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 32
#define MAX_LEN (64 * 1024)
#define NPATHS 2
#define MAX_SAMPLES 200000

static struct ev_loop *loop;
static ml_ctx *server, *client;
static ml_peer *peer;
static uint8_t payload[MAX_LEN];
static double t_start, last_completion, longest_gap;
static uint64_t issued, completed, verified, failed, duplicated;
#define MAX_REQUESTS (1u << 25)
static uint8_t *done_map; /* per request id: completions seen */
static double lat[MAX_SAMPLES];
static unsigned nlat;
static uint64_t path_bytes_mark[NPATHS];
static double duration = 6;
static int stopping;

struct req {
	uint64_t id;
	size_t len;
	double t0;
};

static void issue(void);

static void on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len); /* echo */
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	struct req *q = arg;
	double now = ev_time();
	if (now - last_completion > longest_gap && completed)
		longest_gap = now - last_completion;
	last_completion = now;
	completed++;
	if (q->id < MAX_REQUESTS && done_map[q->id]++)
		duplicated++;
	if (status != ML_OK)
		failed++;
	else if (resp->len == q->len && !memcmp(resp->data, payload + (q->id % 251), q->len))
		verified++;
	if (nlat < MAX_SAMPLES)
		lat[nlat++] = (now - q->t0) * 1e6;
	free(q);
	if (!stopping)
		issue();
}

static void issue(void)
{
	struct req *q = malloc(sizeof(*q));
	q->id = issued++;
	q->len = 512 + (q->id * 7919) % (MAX_LEN - 251 - 512);
	q->t0 = ev_time();
	struct ml_buf b = ml_buf_plain(payload + (q->id % 251), q->len);
	int rc = ml_request_send(peer, q->id, &b, 1, 0, on_response, q);
	if (rc) {
		fprintf(stderr, "send: %s\n", ml_strerror(rc));
		exit(1);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_paths(const char *prefix)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[NPATHS];
	unsigned n = NPATHS;
	uint64_t delta[NPATHS], total = 0;
	ml_peer_stats_get(peer, &st, ps, &n);
	for (unsigned i = 0; i < n && i < NPATHS; i++) {
		delta[i] = ps[i].bytes_sent - path_bytes_mark[i];
		path_bytes_mark[i] = ps[i].bytes_sent;
		total += delta[i];
	}
	printf("%s", prefix);
	for (unsigned i = 0; i < n && i < NPATHS; i++)
		printf("  path%u %-4s %3.0f%%", i, ps[i].state == ML_PATH_UP ? "up" : "DOWN",
		       total ? 100.0 * delta[i] / total : 0.0);
	printf("  resent %" PRIu64 "\n", st.frames_resent);
}

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
	static uint64_t last_completed;
	(void)revents;
	double el = ev_now(l) - t_start;
	qsort(lat, nlat, sizeof(lat[0]), cmp_double);
	char line[160];
	snprintf(line, sizeof(line), "t=%4.1fs %7" PRIu64 " req/s  p50 %6.0f us  p99 %7.0f us",
		 el, completed - last_completed, nlat ? lat[nlat / 2] : 0.0,
		 nlat ? lat[nlat * 99 / 100] : 0.0);
	print_paths(line);
	last_completed = completed;
	nlat = 0;
	if (el >= duration) {
		stopping = 1;
		ev_timer_stop(l, t);
	}
}

static void on_reset(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	printf("        --- cutting path 0 (TCP reset) under load ---\n");
	ml_fault_inject(peer, 0, ML_FAULT_RESET);
}

/* Nothing gets through and nothing says so: only heartbeats can tell. */
static void on_blackhole(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	printf("        --- blackholing path 0 for 1 s under load (silent: the heartbeats find it) ---\n");
	struct ml_fault_spec f = { .fault = ML_FAULT_BLACKHOLE, .duration_s = 1.0 };
	ml_fault_set(peer, 0, &f);
}

static void on_drain(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)revents;
	if (stopping && completed == issued) {
		ev_timer_stop(l, t);
		ev_break(l, EVBREAK_ALL);
	}
}

int main(int argc, char **argv)
{
	struct ml_config cfg;
	const char *urls[NPATHS];
	char buf[NPATHS][64];

	if (argc > 1)
		duration = atof(argv[1]);
	loop = ev_default_loop(0);
	done_map = calloc(MAX_REQUESTS, 1);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 131 + 7);

	ml_config_init(&cfg);
	cfg.node_id = 1;
	cfg.loop = loop;
	cfg.on_request = on_request;
	if (ml_ctx_create(&cfg, &server))
		return 1;
	for (int i = 0; i < NPATHS; i++) {
		snprintf(buf[i], sizeof(buf[i]), "tcp://127.0.0.%d:0", i + 1);
		if (ml_listen(server, buf[i]))
			return 1;
		snprintf(buf[i], sizeof(buf[i]), "tcp://127.0.0.%d:%u", i + 1, ml_listen_port(server, i));
		urls[i] = buf[i];
	}
	ml_config_init(&cfg);
	cfg.node_id = 2;
	cfg.loop = loop;
	cfg.admin_socket = getenv("ML_ADMIN_SOCKET"); /* for mlctl; NULL: none */
	if (ml_ctx_create(&cfg, &client) || ml_peer_add(client, 1, urls, NPATHS, &peer))
		return 1;
	if (cfg.admin_socket)
		printf("admin socket of node 2: %s (mlctl status)\n", cfg.admin_socket);

	printf("msglayer demo: node 2 -> node 1 over %s and %s, %d requests in flight, "
	       "0.5-64 KiB, every response verified\n", urls[0], urls[1], WINDOW);
	t_start = last_completion = ev_time();
	for (int i = 0; i < WINDOW; i++)
		issue();
	ev_timer tick, cut1, cut2, drain;
	ev_timer_init(&tick, on_tick, 1, 1);
	ev_timer_init(&cut1, on_reset, duration / 3, 0);
	ev_timer_init(&cut2, on_blackhole, duration / 2, 0);
	ev_timer_init(&drain, on_drain, 0.01, 0.01);
	ev_timer_start(loop, &tick);
	ev_timer_start(loop, &cut1);
	ev_timer_start(loop, &cut2);
	ev_timer_start(loop, &drain);
	ev_run(loop, 0);

	double el = ev_time() - t_start;
	uint64_t lost = issued - completed;
	printf("\nsummary: %" PRIu64 " requests in %.1f s (%.0f/s), verified %" PRIu64
	       ", lost %" PRIu64 ", duplicated %" PRIu64 ", failed %" PRIu64
	       ", longest stall %.1f ms\n",
	       completed, el, completed / el, verified, lost, duplicated, failed, longest_gap * 1e3);
	memset(path_bytes_mark, 0, sizeof(path_bytes_mark));
	print_paths("whole run:");
	ml_ctx_destroy(client);
	ml_ctx_destroy(server);
	free(done_map);
	return lost || duplicated || failed || verified != completed;
}
