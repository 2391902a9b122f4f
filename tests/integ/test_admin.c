/*
 * test_admin.c - the admin socket (cfg.admin_socket), through a raw Unix
 * socket client, as mlctl uses it (doc/mlctl.md):
 *
 *   1. status: a client context (worker mode) with 2 paths to a server
 *      shows its node id, the peer and both paths "up"; the file is a
 *      socket with mode 0600.
 *   2. fault/clear under load: "fault <server> 0 blackhole 0 0.3" shows on
 *      path 0 while requests keep completing; clear, "all" forms; path 0
 *      comes back.
 *   3. bad input: garbage, a 10 KiB line, an empty line, unknown node, bad
 *      path index, bad values, NUL bytes, a client that sends half a line
 *      and waits: each gets ok:false (or nothing, for a client that sent
 *      nothing) and status still answers. Every answer is valid JSON.
 *   4. the socket path: a second context on the live socket fails with
 *      ML_EEXIST and leaves it alone; too long a path is ML_EINVAL; a file
 *      that is not a socket is never removed; a stale socket is replaced;
 *      ml_ctx_destroy removes the file.
 *   5. embedded mode: the thread answers while nobody runs the loop.
 */
#include "msglayer.h"
#include "check.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SRV 1
#define CLI 2
#define WINDOW 4

static char dir[64];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	nanosleep(&ts, NULL);
}

static void sock_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* ---- a minimal JSON checker: every answer must parse ---- */

static const char *json_value(const char *s, int depth);

static const char *json_ws(const char *s)
{
	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	return s;
}

static const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
						return NULL;
				s += 4;
			} else if (!*s || !strchr("\"\\/bfnrt", *s)) {
				return NULL;
			}
		}
		s++;
	}
	return s + 1;
}

static const char *json_value(const char *s, int depth)
{
	s = json_ws(s);
	if (depth > 32)
		return NULL;
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';
		s = json_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (close == '}') {
				s = json_string(json_ws(s));
				if (!s || *(s = json_ws(s)) != ':')
					return NULL;
				s++;
			}
			s = json_value(s, depth + 1);
			if (!s)
				return NULL;
			s = json_ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (*s == '"')
		return json_string(s);
	if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	char *end;
	strtod(s, &end);
	return end == s ? NULL : end;
}

static void check_json(const char *text, const char *what)
{
	const char *end = json_value(text, 0);
	CHECK(end && *json_ws(end) == 0, "%s: not one JSON value: %s", what, text);
	size_t n = strlen(text);
	CHECK(n && text[n - 1] == '\n', "%s: answer does not end with a newline", what);
}

/* ---- the raw client ---- */

static int admin_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0, "socket: %s", strerror(errno));
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", path,
	      strerror(errno));
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Everything until the server closes. A server that closes while part of our
 * request is unread makes the stream end in ECONNRESET after its answer. */
static char *read_answer(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	CHECK(buf, "malloc");
	for (;;) {
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			CHECK(buf, "realloc");
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n == 0 || errno == ECONNRESET, "reading the answer: %s", strerror(errno));
		break;
	}
	buf[len] = 0;
	return buf;
}

static char *ask_raw(const char *path, const void *req, size_t len)
{
	int fd = admin_connect(path);
	const char *p = req;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break; /* the server may close early on an overlong line: read its answer */
		p += n;
		len -= (size_t)n;
	}
	char *ans = read_answer(fd);
	close(fd);
	check_json(ans, req);
	return ans;
}

static char *ask(const char *path, const char *line)
{
	char req[256];
	snprintf(req, sizeof(req), "%s\n", line);
	return ask_raw(path, req, strlen(req));
}

static int has(const char *json, const char *needle)
{
	return strstr(json, needle) != NULL;
}

/* The text after "key": inside the object of path number idx (NULL: none). */
static const char *path_field(const char *json, unsigned idx, const char *key)
{
	char mark[32], k[64];
	snprintf(mark, sizeof(mark), "{\"index\":%u,", idx);
	const char *start = strstr(json, mark);
	if (!start)
		return NULL;
	const char *end = strstr(start + 1, "{\"index\":");
	snprintf(k, sizeof(k), "\"%s\":", key);
	const char *f = strstr(start, k);
	if (!f || (end && f > end))
		return NULL;
	return f + strlen(k);
}

static int path_is(const char *json, unsigned idx, const char *key, const char *value)
{
	const char *v = path_field(json, idx, key);
	return v && !strncmp(v, value, strlen(value));
}

static unsigned count(const char *json, const char *needle)
{
	unsigned n = 0;
	for (const char *s = json; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* Ask status until pred holds (or fail after limit_s). */
static char *status_until(const char *path, int (*pred)(const char *), double limit_s,
			  const char *what)
{
	double deadline = now_s() + limit_s;
	for (;;) {
		char *st = ask(path, "status");
		CHECK(has(st, "\"ok\":true"), "status failed: %s", st);
		if (pred(st))
			return st;
		CHECK(now_s() < deadline, "timed out waiting for %s; last status: %s", what, st);
		free(st);
		sleep_s(0.01);
	}
}

static int both_up(const char *st)
{
	return path_is(st, 0, "state", "\"up\"") && path_is(st, 1, "state", "\"up\"");
}

/* (clear is applied by the worker after the answer: wait for it too) */
static int both_up_no_fault(const char *st)
{
	return both_up(st) && path_is(st, 0, "fault", "null") && path_is(st, 1, "fault", "null");
}

static int path0_blackholed(const char *st)
{
	return path_is(st, 0, "fault", "\"blackhole\"");
}

static int path0_no_fault(const char *st)
{
	return path_is(st, 0, "fault", "null");
}

/* ---- the load: WINDOW requests always outstanding, refilled by callbacks ---- */

static ml_peer *load_peer;
static int load_stop;
static unsigned long load_done, load_failed;
static int load_outstanding;
static const char payload[256] = "admin socket test";
/* Signalled on every answer, so the test thread sleeps instead of spinning:
 * under valgrind a spinning thread starves the worker (its lock is unfair). */
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t load_cv = PTHREAD_COND_INITIALIZER;

static void load_issue(void);

static void on_answer(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	(void)resp;
	if (status != ML_OK)
		__atomic_fetch_add(&load_failed, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&load_done, 1, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&load_stop, __ATOMIC_ACQUIRE))
		load_issue(); /* keeps the window full; from the worker, no queue hop */
	__atomic_fetch_sub(&load_outstanding, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&load_mu);
	pthread_cond_broadcast(&load_cv);
	pthread_mutex_unlock(&load_mu);
}

static void load_issue(void)
{
	struct ml_buf b = ml_buf_plain(payload, sizeof(payload));
	__atomic_fetch_add(&load_outstanding, 1, __ATOMIC_RELAXED);
	int rc = ml_request_send(load_peer, 7, &b, 1, 0, on_answer, NULL);
	CHECK(rc == ML_OK, "request: %s", ml_strerror(rc));
}

static unsigned long done(void)
{
	return __atomic_load_n(&load_done, __ATOMIC_RELAXED);
}

static int all_answered(void *unused)
{
	(void)unused;
	return __atomic_load_n(&load_outstanding, __ATOMIC_ACQUIRE) == 0;
}

static int done_reaches(void *n)
{
	return done() >= *(unsigned long *)n;
}

/* Waits for an answer to make ok(arg) true; false after timeout_s. */
static bool load_wait(int (*ok)(void *), unsigned long n, double timeout_s)
{
	pthread_mutex_lock(&load_mu);
	bool reached = check_wait(&load_mu, &load_cv, ok, &n, timeout_s);
	pthread_mutex_unlock(&load_mu);
	return reached;
}

static void serve(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	int rc = ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
	CHECK(rc == ML_OK, "respond: %s", ml_strerror(rc));
}

static void quiet_log(void *arg, int level, const char *text)
{
	(void)arg;
	if (level <= ML_LOG_ERR && getenv("ML_TEST_VERBOSE"))
		fprintf(stderr, "  (log: %s)\n", text);
}

static int make_ctx(uint32_t node, const char *admin, struct ev_loop *loop, ml_ctx **out)
{
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = node;
	c.loop = loop;
	c.admin_socket = admin;
	c.on_request = serve;
	c.log = quiet_log;
	return ml_ctx_create(&c, out);
}

/* ---- 3. bad input ---- */

static void expect_error(const char *path, const void *req, size_t len, const char *error,
			 const char *what)
{
	char *a = ask_raw(path, req, len);
	CHECK(has(a, "\"ok\":false"), "%s: want ok:false, got %s", what, a);
	char e[128];
	snprintf(e, sizeof(e), "\"error\":\"%s\"", error);
	CHECK(has(a, e), "%s: want %s, got %s", what, e, a);
	CHECK(has(a, "\"detail\":\""), "%s: no detail in %s", what, a);
	free(a);
	/* and the server is still there */
	char *st = ask(path, "status");
	CHECK(has(st, "\"ok\":true"), "status after %s: %s", what, st);
	free(st);
}

static void test_bad_input(const char *path)
{
	const char *noent = ml_strerror(ML_ENOENT), *inval = ml_strerror(ML_EINVAL);
	static const char garbage[] = "\x01\x02\xff\xfe zzz \"\\ \xc3\x28\n";
	expect_error(path, garbage, sizeof(garbage) - 1, "unknown command", "garbage");
	char *big = malloc(10 * 1024 + 1);
	memset(big, 'a', 10 * 1024);
	big[10 * 1024] = '\n';
	expect_error(path, big, 10 * 1024 + 1, "bad request", "a 10 KiB line");
	free(big);
	expect_error(path, "\n", 1, "bad request", "an empty line");
	expect_error(path, " \t \r\n", 5, "bad request", "a blank line");
	expect_error(path, "status\0x\n", 9, "bad request", "a NUL byte");
	expect_error(path, "fault 99 0 blackhole\n", 21, noent, "unknown node");
	expect_error(path, "clear 0 0\n", 10, noent, "node 0");
	expect_error(path, "fault 1 7 blackhole\n", 20, noent, "bad path index");
	expect_error(path, "fault 1 4294967295 blackhole\n", 29, noent, "huge path index");
	expect_error(path, "fault 1 x blackhole\n", 20, inval, "path not a number");
	expect_error(path, "fault -1 0 blackhole\n", 21, inval, "negative node");
	expect_error(path, "fault 99999999999 0 blackhole\n", 30, inval, "node out of range");
	expect_error(path, "fault 1 0 nosuch\n", 17, inval, "unknown fault");
	expect_error(path, "fault 1 0 drop 2\n", 17, inval, "drop fraction 2");
	expect_error(path, "fault 1 0 drop nan\n", 19, inval, "value nan");
	expect_error(path, "fault 1 0 delay 0.1 -1\n", 23, inval, "negative duration");
	expect_error(path, "fault 1 0 delay 0.1 1x\n", 23, inval, "bad duration");
	expect_error(path, "fault 1 0 delay 1 2 3\n", 22, inval, "too many arguments");
	expect_error(path, "fault\n", 6, inval, "fault alone");
	expect_error(path, "clear 1\n", 8, inval, "clear without a path");
	expect_error(path, "status now\n", 11, inval, "status with an argument");
	expect_error(path, "a b c d e f g h i j\n", 20, "bad request", "too many words");
	expect_error(path, "STATUS\n", 7, "unknown command", "upper case");

	/* A request without a newline, ended by the end of the stream, counts. */
	int fd = admin_connect(path);
	CHECK(send(fd, "version", 7, MSG_NOSIGNAL) == 7, "send");
	shutdown(fd, SHUT_WR);
	char *a = read_answer(fd);
	close(fd);
	check_json(a, "version without newline");
	CHECK(has(a, "\"ok\":true") && has(a, "\"version\":\"0.1\""), "version: %s", a);
	free(a);

	/* A client that connects and goes away gets nothing and breaks nothing. */
	close(admin_connect(path));

	/* A client that sends half a line and waits holds the thread 1 s at most;
	 * it then gets an error, and the next client its answer. */
	int stuck = admin_connect(path);
	CHECK(send(stuck, "sta", 3, MSG_NOSIGNAL) == 3, "send");
	double t0 = now_s();
	a = ask(path, "status");
	double took = now_s() - t0;
	CHECK(has(a, "\"ok\":true"), "status behind a stuck client: %s", a);
	CHECK(took < 3.0, "status waited %.2f s behind a stuck client", took);
	free(a);
	a = read_answer(stuck);
	close(stuck);
	check_json(a, "stuck client");
	CHECK(has(a, "\"ok\":false") && has(a, "within 1 s"), "stuck client got: %s", a);
	free(a);
	printf("  bad input: 23 malformed requests answered with ok:false; a stuck client "
	       "delayed status %.2f s\n", took);
}

/* ---- 1, 2, 4: worker mode, under load ---- */

static void test_worker_mode(void)
{
	char path[128], url0[64], url1[64];
	ml_ctx *srv, *cli, *other;
	struct stat st;

	sock_path(path, sizeof(path), "cli.sock");
	CHECK(make_ctx(SRV, NULL, NULL, &srv) == ML_OK, "server context");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "listen 0");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "listen 1");
	snprintf(url0, sizeof(url0), "tcp://127.0.0.1:%u", ml_listen_port(srv, 0));
	snprintf(url1, sizeof(url1), "tcp://127.0.0.1:%u", ml_listen_port(srv, 1));
	int rc = make_ctx(CLI, path, NULL, &cli);
	CHECK(rc == ML_OK, "client context with admin socket: %s", ml_strerror(rc));
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "no socket at %s", path);
	CHECK((st.st_mode & 0777) == 0600, "socket mode %o, want 600", st.st_mode & 0777);

	/* 1. status */
	char *a = ask(path, "status");
	CHECK(has(a, "\"ok\":true") && has(a, "\"node_id\":2,") && has(a, "\"peers\":[]"),
	      "status before any peer: %s", a);
	free(a);
	const char *urls[] = { url0, url1 };
	CHECK(ml_peer_add(cli, SRV, urls, 2, &load_peer) == ML_OK, "peer add");
	a = status_until(path, both_up, 10, "both paths up");
	CHECK(has(a, "{\"ok\":true,\"node_id\":2,\"incarnation\":") && has(a, "[{\"node_id\":1,"),
	      "node ids in status: %s", a);
	CHECK(count(a, "\"state\":\"up\"") == 2 && has(a, url0) && has(a, url1),
	      "paths in status: %s", a);
	CHECK(path_is(a, 0, "fault", "null") && path_is(a, 1, "outbound", "true"), "%s", a);
	/* The copy counters (doc/rdma.md): TCP paths bounce nothing, READ nothing. */
	CHECK(path_is(a, 0, "bytes_copied", "0,") && path_is(a, 1, "bytes_zcopy", "0,"), "%s", a);
	free(a);
	a = ask(path, "version");
	CHECK(has(a, "{\"ok\":true,\"version\":\"0.1\",\"protocol\":1,"), "version: %s", a);
	free(a);

	/* 2. fault and clear, under load */
	for (int i = 0; i < WINDOW; i++)
		load_issue();
	CHECK(load_wait(done_reaches, 100, 10), "load does not start (%lu done)", done());
	a = ask(path, "fault 1 0 blackhole 0 0.3");
	CHECK(has(a, "{\"ok\":true,\"node_id\":1,\"paths\":[0],\"fault\":\"blackhole\""),
	      "fault: %s", a);
	free(a);
	a = status_until(path, path0_blackholed, 2, "fault blackhole on path 0");
	CHECK(path_is(a, 1, "fault", "null"), "path 1 has a fault: %s", a);
	free(a);
	/* More requests complete than the window holds: new ones get through.
	 * (At once normally; under valgrind the detection budget grows with
	 * the RTT, and the 0.3 s may be over first.) */
	unsigned long before = done();
	double t_fault = now_s();
	CHECK(load_wait(done_reaches, before + 2 * WINDOW, 5),
	      "requests stopped with path 0 blackholed (%lu done)", done() - before);
	double progress_s = now_s() - t_fault;
	sleep_s(0.1);
	unsigned long during = done() - before;
	a = ask(path, "clear 1 0");
	CHECK(has(a, "\"ok\":true") && has(a, "\"fault\":\"clear\""), "clear: %s", a);
	free(a);
	free(status_until(path, path0_no_fault, 2, "path 0 without fault"));
	a = ask(path, "fault 1 all delay 0.001 0.2");
	CHECK(has(a, "\"ok\":true") && has(a, "\"paths\":[0,1]"), "fault all: %s", a);
	free(a);
	a = ask(path, "clear 1 all");
	CHECK(has(a, "\"ok\":true") && has(a, "\"paths\":[0,1]"), "clear all: %s", a);
	free(a);
	free(status_until(path, both_up_no_fault, 15, "both paths up, without faults"));
	printf("  fault: %lu requests completed in 0.1 s after path 0 was blackholed (first %d in "
	       "%.3f s); both paths up again\n", during, 2 * WINDOW, progress_s);

	/* 3. bad input, still under load */
	test_bad_input(path);

	/* 4. a second context on the live socket: ML_EEXIST, the first unharmed */
	rc = make_ctx(3, path, NULL, &other);
	CHECK(rc == ML_EEXIST, "second context on a live admin socket: %s", ml_strerror(rc));
	a = ask(path, "status");
	CHECK(has(a, "\"ok\":true") && has(a, "\"node_id\":2,"), "status after EEXIST: %s", a);
	free(a);

	__atomic_store_n(&load_stop, 1, __ATOMIC_RELEASE);
	CHECK(load_wait(all_answered, 0, 10), "requests do not finish");
	CHECK(__atomic_load_n(&load_failed, __ATOMIC_RELAXED) == 0, "%lu requests failed",
	      load_failed);
	ml_ctx_destroy(cli);
	CHECK(lstat(path, &st) != 0 && errno == ENOENT, "socket file left after destroy");
	ml_ctx_destroy(srv);
	printf("  worker mode: %lu requests, none failed; status, fault, clear, EEXIST, file removed\n",
	       done());
}

/* ---- 4. the socket file ---- */

static void test_paths(void)
{
	char path[160], longp[200];
	ml_ctx *ctx;
	struct stat st;

	/* too long for sun_path */
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = 0;
	memcpy(longp, "/tmp/", 5);
	CHECK(make_ctx(CLI, longp, NULL, &ctx) == ML_EINVAL, "too long a path accepted");
	CHECK(make_ctx(CLI, "", NULL, &ctx) == ML_EINVAL, "empty path accepted");

	/* a regular file is never removed */
	sock_path(path, sizeof(path), "plain-file");
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", path);
	close(fd);
	CHECK(make_ctx(CLI, path, NULL, &ctx) == ML_EEXIST, "a plain file was taken over");
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "the plain file is gone");
	unlink(path);

	/* a directory that does not exist */
	sock_path(path, sizeof(path), "no/such/dir.sock");
	CHECK(make_ctx(CLI, path, NULL, &ctx) == ML_EADDR, "socket in a missing directory");

	/* a stale socket (its process died without removing it) is replaced */
	sock_path(path, sizeof(path), "stale.sock");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(sa.sun_path), "path too long");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind stale");
	close(fd);
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "stale socket not there");
	int rc = make_ctx(CLI, path, NULL, &ctx);
	CHECK(rc == ML_OK, "stale socket not replaced: %s", ml_strerror(rc));
	char *a = ask(path, "status");
	CHECK(has(a, "\"ok\":true"), "status on the replaced socket: %s", a);
	free(a);
	/* the config string is copied: the caller may reuse it */
	memset(path + strlen(path) - 4, 'z', 4);
	ml_ctx_destroy(ctx);
	sock_path(path, sizeof(path), "stale.sock");
	CHECK(lstat(path, &st) != 0, "socket file left after destroy");

	/* a socket file replaced by someone else meanwhile is not ours to remove */
	CHECK(make_ctx(CLI, path, NULL, &ctx) == ML_OK, "context");
	char moved[160];
	sock_path(moved, sizeof(moved), "moved.sock");
	CHECK(rename(path, moved) == 0, "rename");
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", path);
	close(fd);
	ml_ctx_destroy(ctx);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "someone else's file was removed");
	unlink(path);
	unlink(moved);
	printf("  socket file: too long/empty EINVAL, plain file EEXIST and kept, stale replaced, "
	       "removed on destroy\n");
}

/* ---- 5. embedded mode ---- */

static void test_embedded(void)
{
	char path[128];
	ml_ctx *ctx;
	ml_peer *peer;
	struct ev_loop *loop = ev_loop_new(0);

	sock_path(path, sizeof(path), "embedded.sock");
	CHECK(make_ctx(CLI, path, loop, &ctx) == ML_OK, "embedded context");
	const char *urls[] = { "tcp://127.0.0.1:9" };
	CHECK(ml_peer_add(ctx, 5, urls, 1, &peer) == ML_OK, "peer add");
	/* Nobody runs the loop: the admin thread answers anyway. */
	char *a = ask(path, "status");
	CHECK(has(a, "\"ok\":true") && has(a, "[{\"node_id\":5,"), "embedded status: %s", a);
	free(a);
	a = ask(path, "fault 5 all blackhole");
	CHECK(has(a, "\"ok\":false") && has(a, "has no paths"), "fault before any path: %s", a);
	free(a);
	ev_run(loop, EVRUN_NOWAIT); /* the path is created on the loop */
	a = ask(path, "fault 5 0 blackhole");
	CHECK(has(a, "\"ok\":true"), "embedded fault: %s", a);
	free(a);
	ev_run(loop, EVRUN_NOWAIT); /* ...and applied there */
	a = ask(path, "status");
	CHECK(path_is(a, 0, "fault", "\"blackhole\""), "embedded fault not shown: %s", a);
	free(a);
	ml_ctx_destroy(ctx);
	ev_loop_destroy(loop);
	struct stat st;
	CHECK(lstat(path, &st) != 0, "socket file left after destroy");
	printf("  embedded mode: status and fault answered by the admin thread\n");
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ml-admin-XXXXXX");
	CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	test_paths();
	test_embedded();
	test_worker_mode();
	CHECK(rmdir(dir) == 0, "rmdir %s: %s (files left)", dir, strerror(errno));
	printf("test_admin: ok\n");
	return 0;
}
