/* zmq-perf.c - ZeroMQ's side of `make bench`: the same workloads as ml-perf
 * (request/response round trip, one-way message rate, bandwidth) over libzmq,
 * so that tests/bench/bench.sh can put both in one table.
 *
 *   zmq-perf rr-server URL                 REP: echo every request (until SIGTERM)
 *   zmq-perf rr-client URL SIZE SECONDS    REQ: one request in flight; p50 and rate
 *   zmq-perf sink URL                      PULL: count messages until an empty one
 *   zmq-perf source URL SIZE SECONDS       PUSH: send as fast as ZeroMQ takes them
 *
 * The client and the sink print one JSON object (p50_us, msgs_per_s, bytes_per_s).
 * The sink times from the first message to the empty end marker, so the rate
 * counts messages that arrived, not messages that ZeroMQ queued at the source.
 * ZeroMQ acknowledges nothing at the application level: its rate is an upper
 * bound for a reliable layer on the same TCP. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "../../tools/perf_hist.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
	fprintf(stderr, "zmq-perf: %s: %s\n", what, zmq_strerror(zmq_errno()));
	exit(2);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || v == 0 || v > (64ull << 20)) {
		fprintf(stderr, "zmq-perf: bad size '%s' (1 to 64 MiB)\n", s);
		exit(2);
	}
	return (size_t)v;
}

static double parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || !(v > 0) || v > 3600) {
		fprintf(stderr, "zmq-perf: bad duration '%s' (seconds, up to 3600)\n", s);
		exit(2);
	}
	return v;
}

static void *open_socket(void *zctx, int type, const char *url, int bind)
{
	void *s = zmq_socket(zctx, type);
	if (!s)
		die("zmq_socket");
	/* A bulk run would otherwise stop at ZeroMQ's default high-water marks
	 * of 1000 messages and measure the blocking, not the transport. */
	int hwm = 100000;
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if ((bind ? zmq_bind(s, url) : zmq_connect(s, url)) != 0)
		die(url);
	return s;
}

static int rr_server(void *zctx, const char *url)
{
	void *s = open_socket(zctx, ZMQ_REP, url, 1);
	zmq_msg_t m;
	zmq_msg_init(&m);
	while (!stop) {
		if (zmq_msg_recv(&m, s, 0) < 0) {
			if (zmq_errno() == EINTR)
				continue;
			die("recv");
		}
		if (zmq_msg_send(&m, s, 0) < 0 && zmq_errno() != EINTR)
			die("send");
	}
	zmq_msg_close(&m);
	zmq_close(s);
	return 0;
}

static int rr_client(void *zctx, const char *url, size_t size, double seconds)
{
	void *s = open_socket(zctx, ZMQ_REQ, url, 0);
	char *buf = calloc(1, size);
	static struct hist h;
	if (!buf)
		die("calloc");
	/* The first round trip waits for the connection: not a latency sample. */
	if (zmq_send(s, buf, size, 0) < 0 || zmq_recv(s, buf, size, 0) < 0)
		die("first round trip");
	double t0 = now(), t = t0;
	uint64_t n = 0;
	while (t - t0 < seconds) {
		double start = t;
		if (zmq_send(s, buf, size, 0) < 0 || zmq_recv(s, buf, size, 0) < 0)
			die("round trip");
		t = now();
		hist_add(&h, (t - start) * 1e6);
		n++;
	}
	printf("{\"test\": \"rr\", \"size\": %zu, \"completed\": %llu, \"p50_us\": %.2f, "
	       "\"p99_us\": %.2f, \"msgs_per_s\": %.1f}\n",
	       size, (unsigned long long)n, hist_quantile(&h, 0.5), hist_quantile(&h, 0.99),
	       n / (t - t0));
	free(buf);
	zmq_close(s);
	return 0;
}

static int sink(void *zctx, const char *url)
{
	void *s = open_socket(zctx, ZMQ_PULL, url, 1);
	zmq_msg_t m;
	zmq_msg_init(&m);
	uint64_t n = 0, bytes = 0;
	double t0 = 0;
	int started = 0;
	for (;;) {
		if (zmq_msg_recv(&m, s, 0) < 0)
			die("recv");
		size_t len = zmq_msg_size(&m);
		if (!len)
			break; /* the source's end marker */
		if (!started) {
			started = 1; /* the first message only starts the clock */
			t0 = now();
			continue;
		}
		n++;
		bytes += len;
	}
	double secs = started ? now() - t0 : 0;
	printf("{\"test\": \"stream\", \"completed\": %llu, \"msgs_per_s\": %.1f, \"bytes_per_s\": %.0f}\n",
	       (unsigned long long)n, secs > 0 ? n / secs : 0, secs > 0 ? bytes / secs : 0);
	zmq_msg_close(&m);
	zmq_close(s);
	return 0;
}

static int source(void *zctx, const char *url, size_t size, double seconds)
{
	void *s = open_socket(zctx, ZMQ_PUSH, url, 0);
	char *buf = calloc(1, size);
	if (!buf)
		die("calloc");
	double t0 = now();
	/* Check the clock every 1024 sends: a clock read per 64-byte message
	 * would be a good part of what is measured. */
	for (uint64_t i = 0;; i++) {
		if ((i & 1023) == 0 && now() - t0 >= seconds)
			break;
		if (zmq_send(s, buf, size, 0) < 0)
			die("send");
	}
	if (zmq_send(s, "", 0, 0) < 0)
		die("send end marker");
	free(buf);
	zmq_close(s); /* lingers until everything queued is sent */
	return 0;
}

int main(int argc, char **argv)
{
	const char *usage = "usage: zmq-perf rr-server URL | rr-client URL SIZE SECONDS | sink URL | "
			    "source URL SIZE SECONDS\n";
	if (argc < 3) {
		fputs(usage, stderr);
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	void *zctx = zmq_ctx_new();
	if (!zctx)
		die("zmq_ctx_new");
	int rc;
	const char *mode = argv[1], *url = argv[2];
	if (!strcmp(mode, "rr-server") && argc == 3)
		rc = rr_server(zctx, url);
	else if (!strcmp(mode, "rr-client") && argc == 5)
		rc = rr_client(zctx, url, parse_size(argv[3]), parse_seconds(argv[4]));
	else if (!strcmp(mode, "sink") && argc == 3)
		rc = sink(zctx, url);
	else if (!strcmp(mode, "source") && argc == 5)
		rc = source(zctx, url, parse_size(argv[3]), parse_seconds(argv[4]));
	else {
		fputs(usage, stderr);
		rc = 2;
	}
	zmq_ctx_term(zctx);
	return rc;
}
