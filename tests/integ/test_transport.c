/*
 * test_transport.c - endpoints and transports as the application sees them,
 * both contexts embedded on one libev loop:
 *
 *   1. rdma:// on a host without an RDMA device: ml_listen and ml_peer_add
 *      fail with ML_EADDR and the log says "no RDMA device" (skipped where
 *      the host has one: tests/rdma runs RDMA for real, in a VM).
 *   2. The same context still works over tcp:// (a request and its answer).
 *   3. ?src=: the connection comes from that address (the server's inbound
 *      path shows it); bad options are ML_EINVAL, and so is src= on a
 *      listening endpoint.
 */
#include "msglayer.h"
#include "check.h"
#include "evloop.h"

#include <dirent.h>
#include <ev.h>
#include <stdio.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define WAIT_S 10.0

static char logged[4096];

static void on_log(void *arg, int level, const char *text)
{
	(void)arg;
	(void)level;
	size_t n = strlen(logged);
	snprintf(logged + n, sizeof(logged) - n, "%s\n", text);
}

static void run_until(struct ev_loop *l, const int *flag, const char *what)
{
	evloop_until(l, flag, 1, WAIT_S, what);
}

/* Any entry in /sys/class/infiniband: then rdma:// may well work here. */
static int host_has_rdma(void)
{
	DIR *d = opendir("/sys/class/infiniband");
	struct dirent *e;
	int found = 0;
	while (d && (e = readdir(d)) != NULL)
		found |= e->d_name[0] != '.';
	if (d)
		closedir(d);
	return found;
}

static void echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

struct answer {
	int done, status;
	char text[16];
};

static void answered(void *arg, int status, const struct ml_msg *resp)
{
	struct answer *a = arg;
	a->status = status;
	if (resp && resp->len < sizeof(a->text))
		memcpy(a->text, resp->data, resp->len);
	a->done = 1;
}

static void no_rdma_device(ml_ctx *srv, ml_ctx *cli)
{
	if (host_has_rdma()) {
		printf("SKIP 1: this host has an RDMA device\n");
		return;
	}
	logged[0] = 0;
	int rc = ml_listen(srv, "rdma://127.0.0.1:0");
	CHECK(rc == ML_EADDR, "ml_listen(rdma://) gave %s", ml_strerror(rc));
	CHECK(strstr(logged, "cannot listen on rdma://127.0.0.1:0: no RDMA device"), "log: %s", logged);
	logged[0] = 0;
	const char *urls[] = { "rdma://127.0.0.1:7400" };
	rc = ml_peer_add(cli, SRV, urls, 1, NULL);
	CHECK(rc == ML_EADDR, "ml_peer_add(rdma://) gave %s", ml_strerror(rc));
	CHECK(strstr(logged, "bad endpoint 'rdma://127.0.0.1:7400': no RDMA device"), "log: %s", logged);
	printf("ok 1: rdma:// without a device: ML_EADDR, \"no RDMA device\" in the log\n");
}

static void options(ml_ctx *srv, ml_ctx *cli)
{
	static const char *const bad[] = {
		"tcp://127.0.0.1:7400?bogus=1", "tcp://127.0.0.1:7400?src=",
		"tcp://127.0.0.1:7400?src=[::1]", /* another address family */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *urls[] = { bad[i] };
		int rc = ml_peer_add(cli, SRV, urls, 1, NULL);
		CHECK(rc == ML_EINVAL, "%s gave %s", bad[i], ml_strerror(rc));
	}
	int rc = ml_listen(srv, "tcp://127.0.0.1:0?src=127.0.0.1");
	CHECK(rc == ML_EINVAL, "listen with src= gave %s", ml_strerror(rc));
	printf("ok 3a: bad options and src= on a listener are ML_EINVAL\n");
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ml_config cfg;
	ml_ctx *srv, *cli;
	ml_config_init(&cfg);
	cfg.node_id = SRV;
	cfg.loop = loop;
	cfg.on_request = echo;
	cfg.log = on_log;
	CHECK(ml_ctx_create(&cfg, &srv) == ML_OK, "server context");
	ml_config_init(&cfg);
	cfg.node_id = CLI;
	cfg.loop = loop;
	cfg.log = on_log;
	CHECK(ml_ctx_create(&cfg, &cli) == ML_OK, "client context");

	no_rdma_device(srv, cli);
	options(srv, cli);

	int rc = ml_listen(srv, "tcp://127.0.0.1:0");
	CHECK(rc == ML_OK, "ml_listen(tcp://): %s", ml_strerror(rc));
	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u?src=127.0.0.2", ml_listen_port(srv, 0));
	const char *urls[] = { url };
	ml_peer *peer;
	rc = ml_peer_add(cli, SRV, urls, 1, &peer);
	CHECK(rc == ML_OK, "ml_peer_add(%s): %s", url, ml_strerror(rc));
	struct answer a = { 0 };
	struct ml_buf b = ml_buf_plain("ping", 5);
	rc = ml_request_send(peer, 7, &b, 1, ML_SEND_COPY, answered, &a);
	CHECK(rc == ML_OK, "ml_request_send: %s", ml_strerror(rc));
	run_until(loop, &a.done, "the answer over tcp://");
	CHECK(a.status == ML_OK && !strcmp(a.text, "ping"), "answer %s '%s'", ml_strerror(a.status), a.text);
	printf("ok 2: the context still works over tcp://\n");

	struct ml_peer_stats st;
	struct ml_path_stats ps[4];
	unsigned n = 4;
	CHECK(ml_peer_stats_get(ml_peer_find(srv, CLI), &st, ps, &n) == ML_OK && n == 1, "server's paths");
	CHECK(!strncmp(ps[0].url, "tcp://127.0.0.2:", 16), "inbound path from %s, not 127.0.0.2", ps[0].url);
	printf("ok 3b: ?src=127.0.0.2: the server sees %s\n", ps[0].url);

	ml_ctx_destroy(cli);
	ml_ctx_destroy(srv);
	ev_loop_destroy(loop);
	printf("test_transport: all passed\n");
	return 0;
}
