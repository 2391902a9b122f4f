/*
 * test_mem.c - registered memory (ml_mem_register, ML_BUF_MEM) where there is
 * no RDMA: both contexts embedded on one libev loop, one tcp:// path.
 *
 *   1. ml_mem_register refuses bad arguments and records a region (its base
 *      and length come back); ml_mem_unregister(NULL) is a no-op.
 *   2. A registered buffer reference outside its region is ML_EINVAL.
 *   3. Registered buffers over TCP: requests of 1 MiB and 300000 B (above
 *      zcopy_min), 4 KiB (below), 1 MiB with ML_SEND_COPY and one of two
 *      registered pieces; the server answers each from a registered buffer
 *      of its own. Every answer matches what was sent (length and FNV-1a
 *      hash), and no path counts a zero-copy byte or a bounce copy (TCP
 *      sends from the buffers, and no RDMA path exists to READ them).
 *   4. The bad-key fault (it spoils RDMA descriptors) leaves a TCP path
 *      alone: a registered 1 MiB request is answered, the path never fails.
 */
#include "msglayer.h"
#include "check.h"
#include "evloop.h"

#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define WAIT_S 20.0
#define MIB (1u << 20)

static uint8_t cli_mem[2 * MIB], srv_mem[2 * MIB];
static ml_mem *srv_reg;

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The answer comes from the server's registered region (one request at a
 * time here, so one place serves them all). */
static void echo_registered(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	memcpy(srv_mem, msg->data, msg->len);
	struct ml_buf b = ml_buf_mem(srv_reg, 0, msg->len);
	int rc = ml_respond(req, &b, 1, 0, NULL, NULL);
	CHECK(rc == ML_OK, "ml_respond: %s", ml_strerror(rc));
}

struct answer {
	int done, status;
	size_t len;
	uint64_t hash;
};

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	struct answer *a = arg;
	a->status = status;
	if (resp) {
		a->len = resp->len;
		a->hash = fnv1a(resp->data, resp->len);
	}
	a->done++;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
}

static void registration(ml_ctx *cli)
{
	ml_mem *m;
	CHECK(ml_mem_register(NULL, cli_mem, 1, &m) == ML_EINVAL, "NULL context");
	CHECK(ml_mem_register(cli, NULL, 1, &m) == ML_EINVAL, "NULL base");
	CHECK(ml_mem_register(cli, cli_mem, 0, &m) == ML_EINVAL, "empty region");
	CHECK(ml_mem_register(cli, cli_mem, 1, NULL) == ML_EINVAL, "NULL out");
	CHECK(ml_mem_register(cli, cli_mem + 4096, 8192, &m) == ML_OK, "register");
	CHECK(ml_mem_base(m) == cli_mem + 4096 && ml_mem_len(m) == 8192, "base %p len %zu",
	      ml_mem_base(m), ml_mem_len(m));
	ml_mem_unregister(m);
	ml_mem_unregister(NULL);
	printf("ok 1: ml_mem_register: bad arguments ML_EINVAL, a region recorded without RDMA\n");
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ml_config cfg;
	ml_ctx *srv, *cli;
	ml_config_init(&cfg);
	cfg.node_id = SRV;
	cfg.loop = loop;
	cfg.on_request = echo_registered;
	CHECK(ml_ctx_create(&cfg, &srv) == ML_OK, "server context");
	ml_config_init(&cfg);
	cfg.node_id = CLI;
	cfg.loop = loop;
	CHECK(ml_ctx_create(&cfg, &cli) == ML_OK, "client context");

	registration(cli);

	ml_mem *reg;
	CHECK(ml_mem_register(cli, cli_mem, sizeof(cli_mem), &reg) == ML_OK, "client region");
	CHECK(ml_mem_register(srv, srv_mem, sizeof(srv_mem), &srv_reg) == ML_OK, "server region");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "ml_listen");
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ml_listen_port(srv, 0));
	const char *urls[] = { url };
	ml_peer *peer;
	CHECK(ml_peer_add(cli, SRV, urls, 1, &peer) == ML_OK, "ml_peer_add");

	struct ml_buf out = ml_buf_mem(reg, MIB + 1, MIB);
	struct answer a = { 0 };
	int rc = ml_request_send(peer, 1, &out, 1, 0, answered, &a);
	CHECK(rc == ML_EINVAL, "a reference past its region gave %s", ml_strerror(rc));
	printf("ok 2: a registered reference outside its region is ML_EINVAL\n");

	static const struct {
		size_t off, len;
		unsigned flags, pieces;
	} cases[] = {
		{ 0, MIB, 0, 1 }, { 4096, 300000, 0, 1 }, { 100, 4096, 0, 1 },
		{ 0, MIB, ML_SEND_COPY, 1 }, { 0, MIB + 12345, 0, 2 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t off = cases[i].off, len = cases[i].len;
		fill(cli_mem + off, len, i);
		uint64_t want = fnv1a(cli_mem + off, len);
		struct ml_buf b[2] = { ml_buf_mem(reg, off, len / 2), ml_buf_mem(reg, off + len / 2, len - len / 2) };
		if (cases[i].pieces == 1)
			b[0] = ml_buf_mem(reg, off, len);
		memset(&a, 0, sizeof(a));
		rc = ml_request_send(peer, i, b, cases[i].pieces, cases[i].flags, answered, &a);
		CHECK(rc == ML_OK, "ml_request_send: %s", ml_strerror(rc));
		if (cases[i].flags & ML_SEND_COPY)
			memset(cli_mem + off, 0xee, len); /* copied: the caller may reuse it at once */
		evloop_until(loop, &a.done, 1, WAIT_S, "the answer");
		CHECK(a.status == ML_OK && a.len == len && a.hash == want,
		      "case %u: %s, %zu bytes (want %zu), hash %016llx (want %016llx)", i,
		      ml_strerror(a.status), a.len, len, (unsigned long long)a.hash, (unsigned long long)want);
	}
	printf("ok 3a: registered buffers over tcp://: 5 requests and answers, lengths and hashes match\n");

	ml_peer *back = ml_peer_find(srv, CLI);
	ml_peer *both[] = { peer, back };
	for (unsigned k = 0; k < 2; k++) {
		struct ml_peer_stats st;
		struct ml_path_stats ps[2];
		unsigned n = 2;
		CHECK(ml_peer_stats_get(both[k], &st, ps, &n) == ML_OK && n == 1, "paths");
		CHECK(ps[0].bytes_sent >= 3 * MIB, "only %llu bytes sent", (unsigned long long)ps[0].bytes_sent);
		CHECK(ps[0].bytes_zcopy == 0 && ps[0].bytes_copied == 0, "%s: zcopy %llu copied %llu",
		      k ? "server" : "client", (unsigned long long)ps[0].bytes_zcopy,
		      (unsigned long long)ps[0].bytes_copied);
	}
	printf("ok 3b: over tcp:// no byte went by RDMA READ and none was bounced (bytes_zcopy 0, "
	       "bytes_copied 0 at both ends)\n");

	/* bad-key spoils RDMA descriptors only: over TCP none is written. */
	struct ml_fault_spec fs = { .fault = ML_FAULT_BAD_KEY };
	CHECK(ml_fault_set(peer, 0, &fs) == ML_OK, "ml_fault_set bad-key");
	fill(cli_mem, MIB, 9);
	uint64_t want = fnv1a(cli_mem, MIB);
	struct ml_buf b = ml_buf_mem(reg, 0, MIB);
	memset(&a, 0, sizeof(a));
	CHECK(ml_request_send(peer, 9, &b, 1, 0, answered, &a) == ML_OK, "request under bad-key");
	evloop_until(loop, &a.done, 1, WAIT_S, "the answer under bad-key");
	CHECK(a.status == ML_OK && a.len == MIB && a.hash == want, "under bad-key: %s, %zu bytes",
	      ml_strerror(a.status), a.len);
	struct ml_peer_stats st;
	struct ml_path_stats ps;
	unsigned n = 1;
	CHECK(ml_peer_stats_get(peer, &st, &ps, &n) == ML_OK, "stats");
	CHECK(ps.fault == ML_FAULT_BAD_KEY && ps.failures == 0, "fault %llu, %llu failures",
	      (unsigned long long)ps.fault, (unsigned long long)ps.failures);
	printf("ok 4: the bad-key fault leaves a tcp:// path alone (1 MiB answered, 0 failures)\n");

	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ml_mem_unregister(reg);
	ml_mem_unregister(srv_reg);
	ev_loop_destroy(loop);
	printf("test_mem: all passed\n");
	return 0;
}
