/*
 * test_protect.c - protected paths through the public API (cfg.protect,
 * doc/security.md): what the network sees and what tampering gets.
 *
 * Path 0 of the client goes through a TCP proxy in this test, which can look
 * at the bytes, flip one, or rewrite one; path 1 is direct.
 *
 *   1. matrix: client and server each set none, mac or encrypt; every path
 *      gets the stronger of the two (path stats at both ends), a 300 kB
 *      request carrying a marker is echoed intact, and the marker shows in
 *      the proxied bytes unless the path is encrypted
 *   2. tamper: one byte flipped in a sealed record (mac, then encrypt): the
 *      server fails that path with an authentication error in its log,
 *      nothing of the record is delivered, and the request is still served
 *      exactly once (resent on the other path)
 *   3. downgrade: the proxy rewrites the acceptor's choice (encrypt) in its
 *      challenge to none: the connector refuses the challenge (ML_EAUTH), the
 *      proxied path never comes up
 *   4. protect without a key: ml_ctx_create fails with ML_EINVAL
 */
#include "msglayer.h"
#include "check.h"
#include "testnode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SRV 1
#define CLI 2
#define MSG_LEN 300000

static const char marker[] = "THE-SECRET-MARKER-0123456789";

/* ---- the proxy ---- */

struct proxy {
	int lfd;
	unsigned port, upstream;
	pthread_t thread;
	int stop;
	/* under mu */
	unsigned marker_seen;   /* client -> server chunks holding the marker */
	long flip_c2s_at;       /* flip the byte at this offset of a connection's c2s stream, once (-1: no) */
	int flipped;
	long rewrite_s2c_at;    /* set the byte at this offset of every s2c stream (-1: no) */
	uint8_t rewrite_to;
	unsigned connections;
};

/* Forward what one side has; 0 at EOF or error. */
static int pump(struct proxy *px, int from, int to, int c2s, long *pos, char *tailbuf)
{
	char buf[65536 + sizeof(marker)];
	size_t keep = sizeof(marker) - 1;
	ssize_t n = read(from, buf + keep, 65536);
	if (n <= 0)
		return 0;
	pthread_mutex_lock(&mu);
	if (c2s) {
		memcpy(buf, tailbuf, keep); /* the marker may straddle two reads */
		if (memmem(buf, keep + (size_t)n, marker, keep))
			px->marker_seen++;
		memcpy(tailbuf, buf + (size_t)n, keep);
		if (px->flip_c2s_at >= 0 && !px->flipped && *pos <= px->flip_c2s_at &&
		    px->flip_c2s_at < *pos + n) {
			buf[keep + (px->flip_c2s_at - *pos)] ^= 0x40;
			px->flipped = 1;
		}
	} else if (px->rewrite_s2c_at >= 0 && *pos <= px->rewrite_s2c_at &&
		   px->rewrite_s2c_at < *pos + n) {
		buf[keep + (px->rewrite_s2c_at - *pos)] = (char)px->rewrite_to;
	}
	pthread_mutex_unlock(&mu);
	*pos += n;
	for (ssize_t done = 0; done < n;) {
		ssize_t w = send(to, buf + keep + done, (size_t)(n - done), MSG_NOSIGNAL);
		if (w <= 0)
			return 0;
		done += w;
	}
	return 1;
}

static int connect_port(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One connection at a time: the client's path 0 is the only one here. */
static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	while (!__atomic_load_n(&px->stop, __ATOMIC_RELAXED)) {
		struct pollfd lp = { px->lfd, POLLIN, 0 };
		if (poll(&lp, 1, 50) <= 0)
			continue;
		int c = accept(px->lfd, NULL, NULL);
		if (c < 0)
			continue;
		int s = connect_port(px->upstream);
		if (s < 0) {
			close(c);
			continue;
		}
		pthread_mutex_lock(&mu);
		px->connections++;
		pthread_mutex_unlock(&mu);
		long c2s = 0, s2c = 0;
		char tail[sizeof(marker)] = { 0 };
		for (;;) {
			struct pollfd p[2] = { { c, POLLIN, 0 }, { s, POLLIN, 0 } };
			if (__atomic_load_n(&px->stop, __ATOMIC_RELAXED))
				break;
			if (poll(p, 2, 50) < 0)
				break;
			if (p[0].revents && !pump(px, c, s, 1, &c2s, tail))
				break;
			if (p[1].revents && !pump(px, s, c, 0, &s2c, tail))
				break;
		}
		close(c);
		close(s);
	}
	return NULL;
}

static void proxy_start(struct proxy *px, unsigned upstream)
{
	memset(px, 0, sizeof(*px));
	px->flip_c2s_at = px->rewrite_s2c_at = -1;
	px->upstream = upstream;
	px->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	CHECK(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(px->lfd, 8) == 0 &&
		      getsockname(px->lfd, (struct sockaddr *)&sa, &sl) == 0,
	      "proxy listen");
	px->port = ntohs(sa.sin_port);
	CHECK(pthread_create(&px->thread, NULL, proxy_main, px) == 0, "proxy thread");
}

static void proxy_stop(struct proxy *px)
{
	__atomic_store_n(&px->stop, 1, __ATOMIC_RELAXED);
	pthread_join(px->thread, NULL);
	close(px->lfd);
}

/* ---- nodes ---- */

static char key_path[96];

static int node_start(struct node *n, uint32_t id, int protect, const char *key_file)
{
	memset(n, 0, sizeof(*n));
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = id;
	c.key_file = key_file;
	c.protect = protect;
	c.on_request = node_echo;
	c.on_path_event = node_on_path;
	c.cb_arg = n;
	c.log = node_log;
	c.log_arg = n;
	c.log_level = ML_LOG_INFO;
	c.reconnect_max_s = 0.2;
	return ml_ctx_create(&c, &n->ctx);
}

/* A client and a server; the client's path 0 through the proxy, path 1 direct. */
struct pair {
	struct node s, c;
	struct proxy px;
	ml_peer *peer;
};

static void pair_start(struct pair *p, int client_protect, int server_protect, int wait_paths)
{
	CHECK(node_start(&p->s, SRV, server_protect, key_path) == ML_OK, "server");
	CHECK(node_start(&p->c, CLI, client_protect, key_path) == ML_OK, "client");
	CHECK(ml_listen(p->s.ctx, "tcp://127.0.0.1:0") == ML_OK, "listen");
	unsigned port = ml_listen_port(p->s.ctx, 0);
	proxy_start(&p->px, port);
	char u0[64], u1[64];
	snprintf(u0, sizeof(u0), "tcp://127.0.0.1:%u", p->px.port);
	snprintf(u1, sizeof(u1), "tcp://127.0.0.1:%u", port);
	const char *urls[] = { u0, u1 };
	CHECK(ml_peer_add(p->c.ctx, SRV, urls, 2, &p->peer) == ML_OK, "peer add");
	if (wait_paths)
		wait_up(p->peer, wait_paths, "the paths");
}

static void pair_stop(struct pair *p)
{
	ml_ctx_destroy(p->c.ctx);
	ml_ctx_destroy(p->s.ctx);
	proxy_stop(&p->px);
}

/* ---- one big request, echoed ---- */

struct answer {
	int done, status;
	int intact;
	const uint8_t *sent;
};

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	struct answer *a = arg;
	pthread_mutex_lock(&mu);
	a->status = status;
	a->intact = status == ML_OK && resp->len == MSG_LEN && !memcmp(resp->data, a->sent, MSG_LEN);
	a->done++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int answer_done(void *arg)
{
	return ((struct answer *)arg)->done > 0;
}

static uint8_t *big_message(void)
{
	uint8_t *m = malloc(MSG_LEN);
	CHECK(m, "malloc");
	for (size_t i = 0; i < MSG_LEN; i++)
		m[i] = (uint8_t)(i * 7 + (i >> 8));
	for (size_t at = 0; at + sizeof(marker) < MSG_LEN; at += 10000)
		memcpy(m + at, marker, sizeof(marker) - 1);
	return m;
}

static void echo(ml_peer *peer, const uint8_t *msg, const char *what)
{
	struct answer a = { 0, 0, 0, msg };
	struct ml_buf b = ml_buf_plain(msg, MSG_LEN);
	CHECK(ml_request_send(peer, 9, &b, 1, ML_SEND_COPY, answered, &a) == ML_OK, "send");
	wait_for(answer_done, &a, what);
	CHECK(a.status == ML_OK && a.intact, "%s: status %s, intact %d", what,
	      ml_status_name(a.status), a.intact);
	CHECK(a.done == 1, "%s: answered %d times", what, a.done);
}

static int path_protect(ml_peer *peer, unsigned idx)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[4];
	unsigned n = 4;
	CHECK(ml_peer_stats_get(peer, &st, ps, &n) == 0 && idx < n, "stats");
	return ps[idx].protect;
}

/* ======================================================================
 * 1. matrix
 * ====================================================================== */

static void test_matrix(void)
{
	uint8_t *msg = big_message();
	for (int cp = ML_PROTECT_NONE; cp <= ML_PROTECT_ENCRYPT; cp++)
		for (int sp = ML_PROTECT_NONE; sp <= ML_PROTECT_ENCRYPT; sp++) {
			struct pair p;
			pair_start(&p, cp, sp, 2);
			int want = cp > sp ? cp : sp;
			/* path 0 carries the request: path 1 is taken out */
			CHECK(ml_fault_inject(p.peer, 1, ML_FAULT_BLACKHOLE) == ML_OK, "blackhole");
			echo(p.peer, msg, "the echo");
			for (unsigned i = 0; i < 2; i++)
				CHECK(path_protect(p.peer, i) == want, "client %s, server %s: path %u is %s",
				      ml_protect_name(cp), ml_protect_name(sp), i,
				      ml_protect_name(path_protect(p.peer, i)));
			ml_peer *back = ml_peer_find(p.s.ctx, CLI);
			CHECK(back && path_protect(back, 0) == want, "server side protection");
			pthread_mutex_lock(&mu);
			unsigned seen = p.px.marker_seen;
			pthread_mutex_unlock(&mu);
			CHECK((seen > 0) == (want != ML_PROTECT_ENCRYPT),
			      "client %s, server %s: the marker was seen %u times on the wire",
			      ml_protect_name(cp), ml_protect_name(sp), seen);
			pair_stop(&p);
			printf("  matrix: client %-7s server %-7s -> %-7s echo intact, marker on the wire: %s\n",
			       ml_protect_name(cp), ml_protect_name(sp), ml_protect_name(want),
			       seen ? "yes" : "no");
		}
	free(msg);
}

/* ======================================================================
 * 2. tamper
 * ====================================================================== */

static void test_tamper(int mode)
{
	uint8_t *msg = big_message();
	struct pair p;
	pair_start(&p, mode, mode, 2);
	/* Past the handshake (HELLO 64+72, proof 64+32) and well into the
	 * records of the request, on the connection that is up now. */
	pthread_mutex_lock(&mu);
	p.px.flip_c2s_at = 64 + 72 + 64 + 32 + 50000;
	pthread_mutex_unlock(&mu);
	CHECK(ml_fault_inject(p.peer, 1, ML_FAULT_BLACKHOLE) == ML_OK, "blackhole");
	struct answer a = { 0, 0, 0, msg };
	struct ml_buf b = ml_buf_plain(msg, MSG_LEN);
	CHECK(ml_request_send(p.peer, 9, &b, 1, ML_SEND_COPY, answered, &a) == ML_OK, "send");
	wait_log(&p.s, "a sealed record failed authentication");
	CHECK(ml_fault_inject(p.peer, 1, ML_FAULT_CLEAR) == ML_OK, "heal path 1");
	wait_for(answer_done, &a, "the answer after the tampering");
	CHECK(a.status == ML_OK && a.intact && a.done == 1, "status %s, intact %d, answered %d",
	      ml_status_name(a.status), a.intact, a.done);
	CHECK(__atomic_load_n(&p.s.delivered, __ATOMIC_RELAXED) == 1, "served %d times",
	      p.s.delivered);
	pthread_mutex_lock(&mu);
	CHECK(p.px.flipped, "the proxy flipped no byte");
	pthread_mutex_unlock(&mu);
	char err_line[64];
	snprintf(err_line, sizeof(err_line), "%d peer %u path", ML_LOG_ERR, CLI);
	CHECK(has_log(&p.s, err_line), "the server did not log the tampering as an error: %s",
	      p.s.log);
	pair_stop(&p);
	free(msg);
	printf("  tamper (%s): record refused, path failed with an error, request served once\n",
	       ml_protect_name(mode));
}

/* ======================================================================
 * 3. downgrade
 * ====================================================================== */

static uint64_t path0_connects(ml_peer *peer, uint64_t *failures)
{
	struct ml_peer_stats st;
	struct ml_path_stats ps[2];
	unsigned n = 2;
	CHECK(ml_peer_stats_get(peer, &st, ps, &n) == 0, "stats");
	*failures = ps[0].failures;
	return ps[0].connects;
}

static int failed_thrice(void *arg)
{
	uint64_t f;
	path0_connects(arg, &f);
	return f >= 3;
}

static void test_downgrade(void)
{
	struct pair p;
	pair_start(&p, ML_PROTECT_NONE, ML_PROTECT_ENCRYPT, 0);
	/* The challenge is the acceptor's first frame: header, nonce, MAC, then
	 * the protection it chose. */
	pthread_mutex_lock(&mu);
	p.px.rewrite_s2c_at = 64 + 16 + 32;
	p.px.rewrite_to = ML_PROTECT_NONE;
	pthread_mutex_unlock(&mu);
	wait_up(p.peer, 1, "the direct path");
	wait_for(failed_thrice, p.peer, "three failed attempts through the proxy");
	uint64_t failures;
	CHECK(path0_connects(p.peer, &failures) == 0, "the downgraded path came up");
	CHECK(path_protect(p.peer, 1) == ML_PROTECT_ENCRYPT, "the direct path is not encrypted");
	wait_log(&p.c, "the acceptor failed authentication");
	pair_stop(&p);
	printf("  downgrade: the rewritten choice is refused by the connector (%llu attempts)\n",
	       (unsigned long long)failures);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	char dir[] = "/tmp/ml-test-protect.XXXXXX";
	CHECK(mkdtemp(dir), "mkdtemp");
	snprintf(key_path, sizeof(key_path), "%s/key", dir);
	int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	const char *key = "2222222222222222222222222222222222222222222222222222222222222222\n";
	CHECK(fd >= 0 && write(fd, key, strlen(key)) == (ssize_t)strlen(key), "key file");
	close(fd);

	test_matrix();
	test_tamper(ML_PROTECT_MAC);
	test_tamper(ML_PROTECT_ENCRYPT);
	test_downgrade();

	struct node n;
	CHECK(node_start(&n, SRV, ML_PROTECT_MAC, NULL) == ML_EINVAL,
	      "protect without a key file was accepted");
	printf("  no key: protect = mac without key_file -> ML_EINVAL\n");

	unlink(key_path);
	rmdir(dir);
	printf("test_protect: all scenarios passed\n");
	return 0;
}
