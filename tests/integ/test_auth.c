/*
 * test_auth.c - authenticated paths through the public API (doc/security.md).
 *
 * Worker mode; the test thread waits on a condition variable that every
 * callback (log line, path event, answer) signals, with a deadline.
 *
 *   1. same_key: paths come up, a request is answered
 *   2. wrong_key, no key at the connector, no key at the acceptor: the path
 *      never comes up, both ends log why as an error or warning, the
 *      acceptor makes no peer for the connector and serves nothing of it
 *   3. key_files: mode 0644, missing, malformed, empty, three keys -> ML_EKEY
 *      with the reason; comments and two keys are fine (ml_key_file_check)
 *   4. replay: a raw client authenticates once with the key (proving the raw
 *      handshake right); replaying that connection's HELLO and proof on a new
 *      connection gets CLOSE(ML_EAUTH), since the challenge is fresh
 *   5. rotation: keys change on both nodes (ml_ctx_reload_key) while the
 *      session runs; reconnected paths use the new key; the session never
 *      restarts; a node left with only the old key cannot reconnect
 *
 * The raw client of scenario 4 uses the internal codec (wire.h, auth.h).
 */
#include "msglayer.h"
#include "auth.h"
#include "check.h"
#include "raw.h"
#include "testnode.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SRV 1
#define CLI 2
#define RAW 3
/* key_file NULL: no authentication. Returns ML_OK or the create error. */
static int node_start(struct node *n, uint32_t id, const char *key_file)
{
	memset(n, 0, sizeof(*n));
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = id;
	c.key_file = key_file;
	c.on_request = node_echo;
	c.on_path_event = node_on_path;
	c.cb_arg = n;
	c.log = node_log;
	c.log_arg = n;
	c.log_level = ML_LOG_INFO;
	c.reconnect_max_s = 0.2; /* reconnects (and their failures) come quickly */
	return ml_ctx_create(&c, &n->ctx);
}

static unsigned listen_any(struct node *n, unsigned idx)
{
	CHECK(ml_listen(n->ctx, "tcp://127.0.0.1:0") == ML_OK, "listen");
	return ml_listen_port(n->ctx, idx);
}

static ml_peer *connect_to(struct node *n, uint32_t node, const unsigned *ports, unsigned nports)
{
	char urls[4][64];
	const char *u[4];
	for (unsigned i = 0; i < nports; i++) {
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%u", ports[i]);
		u[i] = urls[i];
	}
	ml_peer *p;
	CHECK(ml_peer_add(n->ctx, node, u, nports, &p) == ML_OK, "peer add");
	return p;
}

/* ---- one request, answered ---- */

struct answer {
	int done, status;
};

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	struct answer *a = arg;
	(void)resp;
	pthread_mutex_lock(&mu);
	a->status = status;
	a->done = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int answer_done(void *arg)
{
	return ((struct answer *)arg)->done;
}

static int ask(ml_peer *peer)
{
	struct answer a = { 0, 0 };
	struct ml_buf b = ml_buf_plain("ping", 4);
	CHECK(ml_request_send(peer, 7, &b, 1, ML_SEND_COPY, answered, &a) == ML_OK, "send");
	wait_for(answer_done, &a, "an answer");
	return a.status;
}

/* ---- key files ---- */

static char dir[64];
static const char *k1 = "0101010101010101010101010101010101010101010101010101010101010101";
static const char *k2 = "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d";

static const char *key_file(const char *name, const char *content, mode_t mode)
{
	static char paths[16][128];
	static unsigned next;
	char *p = paths[next++ % 16];
	snprintf(p, 128, "%s/%s", dir, name);
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "create %s", p);
	CHECK(write(fd, content, strlen(content)) == (ssize_t)strlen(content), "write %s", p);
	CHECK(fchmod(fd, mode) == 0, "chmod");
	close(fd);
	return p;
}

static char line2[200];
static const char *two_keys(const char *first, const char *second)
{
	snprintf(line2, sizeof(line2), "%s\n%s\n", first, second);
	return line2;
}

static char line1[100];
static const char *one_key(const char *k)
{
	snprintf(line1, sizeof(line1), "%s\n", k);
	return line1;
}

/* ======================================================================
 * 1 and 2: who may connect
 * ====================================================================== */

static void test_same_key(void)
{
	const char *kf = key_file("same", one_key(k1), 0600);
	struct node s, c;
	CHECK(node_start(&s, SRV, kf) == ML_OK, "server");
	CHECK(node_start(&c, CLI, kf) == ML_OK, "client");
	unsigned port = listen_any(&s, 0);
	ml_peer *p = connect_to(&c, SRV, &port, 1);
	wait_up(p, 1, "the authenticated path");
	CHECK(ask(p) == ML_OK, "request over an authenticated path");
	CHECK(has_log(&s, "offering key id") && has_log(&c, "offering key id"), "key loaded");
	ml_ctx_destroy(c.ctx);
	ml_ctx_destroy(s.ctx);
	printf("  same_key: path up, request answered\n");
}

struct retry_goal {
	ml_peer *peer;
	int came_up; /* a path was seen up on the way */
};

static int failed_twice(void *arg)
{
	struct retry_goal *g = arg;
	struct ml_path_stats ps;
	unsigned np = 1;
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(g->peer, &st, &ps, &np) == 0, "stats");
	g->came_up |= st.paths_up > 0;
	return ps.failures >= 2;
}

/* The connector's path never comes up; the acceptor says why (server_says),
 * the connector logs an authentication error; no peer is made for it. */
static void refused(const char *name, const char *srv_key, const char *cli_key,
		    const char *server_says)
{
	struct node s, c;
	CHECK(node_start(&s, SRV, srv_key) == ML_OK, "server");
	CHECK(node_start(&c, CLI, cli_key) == ML_OK, "client");
	unsigned port = listen_any(&s, 0);
	ml_peer *p = connect_to(&c, SRV, &port, 1);
	wait_log(&s, server_says);
	wait_log(&c, "authentication failed");
	/* it keeps trying, and keeps failing (each failure is a path event) */
	struct retry_goal g = { p, 0 };
	wait_for(failed_twice, &g, "a second failed attempt");
	CHECK(!g.came_up, "%s: a path came up", name);
	struct ml_path_stats ps;
	unsigned np = 1;
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(p, &st, &ps, &np) == 0 && st.paths_up == 0, "%s: a path is up", name);
	CHECK(ps.failures >= 2 && ps.connects == 0, "%s: %llu failures, %llu connects", name,
	      (unsigned long long)ps.failures, (unsigned long long)ps.connects);
	CHECK(ml_peer_find(s.ctx, CLI) == NULL, "%s: the acceptor made a peer for the connector",
	      name);
	CHECK(s.delivered == 0, "%s: served %d requests", name, s.delivered);
	char err_line[64];
	snprintf(err_line, sizeof(err_line), "%d peer 1 path 0", ML_LOG_ERR);
	CHECK(has_log(&c, err_line), "%s: the connector's error is not at level ML_LOG_ERR: %s",
	      name, c.log);
	ml_ctx_destroy(c.ctx);
	ml_ctx_destroy(s.ctx);
	printf("  %s: refused at both ends (\"%s\"), no peer made\n", name, server_says);
}

static void test_refusals(void)
{
	const char *kf1 = key_file("r1", one_key(k1), 0600);
	const char *kf2 = key_file("r2", one_key(k2), 0600);
	refused("wrong_key", kf1, kf2, "is not one of ours");
	refused("no_key_at_connector", kf1, NULL, "the connector has no cluster key");
	refused("no_key_at_acceptor", NULL, kf1, "the connector has a cluster key; this node has none");
}

/* ======================================================================
 * 3. key files
 * ====================================================================== */

static void expect_ekey(const char *path, const char *why)
{
	struct node n;
	CHECK(node_start(&n, SRV, path) == ML_EKEY, "%s: not ML_EKEY", path);
	CHECK(strstr(n.log, why), "%s: log \"%s\" does not say \"%s\"", path, n.log, why);
	char text[256];
	CHECK(ml_key_file_check(path, text, sizeof(text)) == ML_EKEY && strstr(text, why),
	      "ml_key_file_check(%s): %s", path, text);
}

static void test_key_files(void)
{
	expect_ekey(key_file("open", one_key(k1), 0644), "chmod 600");
	expect_ekey(key_file("group", one_key(k1), 0640), "chmod 600");
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none", dir);
	expect_ekey(missing, "No such file");
	expect_ekey(key_file("short", "0123abcd\n", 0600), "line 1: not 64 hex digits");
	expect_ekey(key_file("junk", "# a comment\nzz0101010101010101010101010101010101010101010101"
				     "010101010101010101\n", 0600), "line 2");
	expect_ekey(key_file("empty", "# nothing\n\n", 0600), "no key");
	char three[300];
	snprintf(three, sizeof(three), "%s\n%s\n%s\n", k1, k2, k1);
	expect_ekey(key_file("three", three, 0600), "more than 2 keys");

	char a[256], b[256];
	CHECK(ml_key_file_check(key_file("one", one_key(k1), 0400), a, sizeof(a)) == ML_OK &&
		      strlen(a) == 16, "one key: %s", a);
	char two[300];
	snprintf(two, sizeof(two), "# rotation\n  %s  \n%s\n", k1, k2);
	CHECK(ml_key_file_check(key_file("two", two, 0600), b, sizeof(b)) == ML_OK &&
		      !strncmp(a, b, 16) && strstr(b, "one more key"),
	      "two keys offer the first: %s vs %s", a, b);
	CHECK(ml_key_file_check(NULL, a, sizeof(a)) == ML_EINVAL, "NULL");
	printf("  key_files: 0644, 0640, missing, malformed, empty, three keys refused; id %s\n", a);
}

/* ======================================================================
 * 4. replay: a raw client
 * ====================================================================== */

static int raw_peer_exists(void *arg)
{
	return ml_peer_find(arg, RAW) != NULL;
}

static void test_replay(void)
{
	const char *kf = key_file("replay", one_key(k1), 0600);
	struct ml_key keys[ML_KEYS_MAX];
	unsigned nkeys;
	char err[256];
	CHECK(ml_key_file_read(kf, keys, &nkeys, err, sizeof(err)) == 0 && nkeys == 1, "%s", err);
	struct node s;
	CHECK(node_start(&s, SRV, kf) == ML_OK, "server");
	unsigned port = listen_any(&s, 0);

	struct ml_hello hello = { .node_id = RAW, .dest_node_id = SRV, .incarnation = 0x5eed,
				  .min_version = 1, .max_version = 1, .max_frag_payload = 65536,
				  .max_msg_size = 1 << 20, .window = 64, .flags = ML_HELLO_F_AUTH };
	memcpy(hello.key_id, keys[0].id, ML_KEY_ID_LEN);
	CHECK(ml_auth_nonce(hello.nonce) == 0, "nonce");
	uint8_t hello_raw[ML_HELLO_MAX], buf[256], nonce1[ML_NONCE_LEN], proof[ML_MAC_LEN],
		want[ML_MAC_LEN];
	CHECK(ml_hello_encode(hello_raw, &hello) == ML_HELLO_MAX, "hello");
	uint32_t len;

	/* The genuine handshake: the raw client is right. */
	int fd = raw_connect(port);
	raw_send(fd, ML_FT_HELLO, hello_raw, sizeof(hello_raw));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_AUTH && len == ML_AUTH_CHALLENGE_LEN,
	      "challenge");
	memcpy(nonce1, buf, ML_NONCE_LEN);
	CHECK(ml_auth_mac(&keys[0], "acceptor", hello_raw, sizeof(hello_raw), nonce1, 0, want) == 0 &&
		      ml_auth_mac_equal(want, buf + ML_NONCE_LEN),
	      "the acceptor's proof does not verify");
	CHECK(ml_auth_mac(&keys[0], "connector", hello_raw, sizeof(hello_raw), nonce1, 0, proof) == 0,
	      "proof");
	raw_send(fd, ML_FT_AUTH, proof, sizeof(proof));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_HELLO_ACK, "HELLO_ACK after the proof");
	wait_for(raw_peer_exists, s.ctx, "the raw client to become a peer");
	close(fd);

	/* The replay: same HELLO, same proof, new connection. */
	fd = raw_connect(port);
	raw_send(fd, ML_FT_HELLO, hello_raw, sizeof(hello_raw));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_AUTH, "second challenge");
	CHECK(memcmp(buf, nonce1, ML_NONCE_LEN) != 0, "the acceptor reused its nonce");
	raw_send(fd, ML_FT_AUTH, proof, sizeof(proof));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_CLOSE && len >= 4 &&
		      (int32_t)ml_get32(buf) == ML_EAUTH,
	      "the replayed proof was not refused with CLOSE(ML_EAUTH)");
	CHECK(recv(fd, buf, 1, 0) == 0, "the connection stays open after the refusal");
	close(fd);
	wait_log(&s, "replayed handshake");

	/* And a HELLO whose key id is right but whose proof is garbage. */
	fd = raw_connect(port);
	raw_send(fd, ML_FT_HELLO, hello_raw, sizeof(hello_raw));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_AUTH, "third challenge");
	memset(proof, 0, sizeof(proof));
	raw_send(fd, ML_FT_AUTH, proof, sizeof(proof));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_CLOSE && (int32_t)ml_get32(buf) == ML_EAUTH,
	      "a zero proof was not refused");
	close(fd);
	ml_ctx_destroy(s.ctx);
	printf("  replay: genuine raw handshake accepted; its replay and a zero proof refused "
	       "with ML_EAUTH\n");
}

/* ======================================================================
 * 5. rotation without dropping the session
 * ====================================================================== */

struct reconnect_goal {
	ml_peer *peer;
	unsigned path;
	uint64_t connects; /* more than this, and up */
};

static int reconnected(void *arg)
{
	struct reconnect_goal *g = arg;
	struct ml_path_stats ps[2];
	unsigned n = 2;
	struct ml_peer_stats st;
	return ml_peer_stats_get(g->peer, &st, ps, &n) == 0 && n > g->path &&
	       ps[g->path].connects > g->connects && ps[g->path].state == ML_PATH_UP;
}

static uint64_t connects_of(ml_peer *p, unsigned path)
{
	struct ml_path_stats ps[2];
	unsigned n = 2;
	struct ml_peer_stats st;
	CHECK(ml_peer_stats_get(p, &st, ps, &n) == 0 && n > path, "stats");
	return ps[path].connects;
}

/* Reset one path and wait for it to come back with the keys now loaded. */
static void bounce(ml_peer *p, unsigned path, const char *what)
{
	struct reconnect_goal g = { p, path, connects_of(p, path) };
	CHECK(ml_fault_inject(p, path, ML_FAULT_RESET) == ML_OK, "reset");
	wait_for(reconnected, &g, what);
}

static void test_rotation(void)
{
	const char *old_only = key_file("rot-a", one_key(k1), 0600);
	struct node s, c;
	CHECK(node_start(&s, SRV, old_only) == ML_OK, "server");
	CHECK(node_start(&c, CLI, old_only) == ML_OK, "client");
	unsigned ports[2] = { listen_any(&s, 0), listen_any(&s, 1) };
	ml_peer *p = connect_to(&c, SRV, ports, 2);
	wait_up(p, 2, "both paths with the old key");
	CHECK(ask(p) == ML_OK, "request before the rotation");

	/* Step 1: everyone accepts the new key; step 2: everyone offers it. */
	CHECK(ml_ctx_reload_key(s.ctx, key_file("rot-s1", two_keys(k1, k2), 0600)) == ML_OK, "s1");
	CHECK(ml_ctx_reload_key(c.ctx, key_file("rot-c1", two_keys(k2, k1), 0600)) == ML_OK, "c1");
	bounce(p, 0, "path 0 back with the new key");
	CHECK(ask(p) == ML_OK, "request during the rotation");
	/* Step 3: the old key is gone everywhere. */
	CHECK(ml_ctx_reload_key(s.ctx, key_file("rot-s2", one_key(k2), 0600)) == ML_OK, "s2");
	CHECK(ml_ctx_reload_key(c.ctx, key_file("rot-c2", one_key(k2), 0600)) == ML_OK, "c2");
	bounce(p, 1, "path 1 back with the new key only");
	CHECK(ask(p) == ML_OK, "request after the rotation");
	/* A bad reload keeps the keys there were. */
	CHECK(ml_ctx_reload_key(c.ctx, key_file("rot-bad", one_key(k1), 0644)) == ML_EKEY, "bad");
	bounce(p, 0, "path 0 back after a refused reload");

	struct ml_peer_stats cs, ss;
	CHECK(ml_peer_stats_get(p, &cs, NULL, NULL) == 0 &&
		      ml_peer_stats_get(ml_peer_find(s.ctx, CLI), &ss, NULL, NULL) == 0,
	      "stats");
	CHECK(cs.restarts == 0 && ss.restarts == 0 && cs.failed == 0,
	      "the session restarted (%llu, %llu) or sends failed (%llu)",
	      (unsigned long long)cs.restarts, (unsigned long long)ss.restarts,
	      (unsigned long long)cs.failed);

	/* A node left with only the old key cannot reconnect; the other path
	 * carries on. */
	CHECK(ml_ctx_reload_key(c.ctx, key_file("rot-old", one_key(k1), 0600)) == ML_OK, "old");
	CHECK(ml_fault_inject(p, 0, ML_FAULT_RESET) == ML_OK, "reset");
	wait_log(&s, "is not one of ours");
	CHECK(ask(p) == ML_OK, "request over the remaining path");
	ml_ctx_destroy(c.ctx);
	ml_ctx_destroy(s.ctx);
	printf("  rotation: old -> both -> new on two nodes, paths reconnected with each, "
	       "0 session restarts, 0 failed sends; the old key alone is refused\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof(dir), "/tmp/ml-test-auth.XXXXXX");
	CHECK(mkdtemp(dir), "mkdtemp");
	test_same_key();
	test_refusals();
	test_key_files();
	test_replay();
	test_rotation();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "clean up %s", dir);
	printf("test_auth: all scenarios passed\n");
	return 0;
}
