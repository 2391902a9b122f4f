/*
 * capture.c - the bytes of a real session, for the seed corpora: two
 * contexts on one libev loop talk over loopback TCP through a proxy that
 * keeps what passes each way (see capture.h).
 */
#include "capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "msglayer.h"

#define CAP_MAX (1u << 20) /* a few requests: far less than this */

struct pipe_dir {
	ev_io io;     /* readable on `from` */
	int from, to;
	uint8_t *rec; /* what went through */
	size_t len;
};

static struct pipe_dir dirs[2]; /* [0] connector to acceptor, [1] back */
static int done;

static void on_pipe(struct ev_loop *loop, ev_io *io, int revents)
{
	struct pipe_dir *d = (struct pipe_dir *)io;
	uint8_t buf[65536];
	(void)revents;
	ssize_t n = read(d->from, buf, sizeof(buf));
	if (n <= 0) {
		ev_io_stop(loop, io);
		return;
	}
	/* Loopback with small amounts: a blocking write never waits long. */
	for (ssize_t w = 0; w < n;) {
		ssize_t k = write(d->to, buf + w, (size_t)(n - w));
		FZ_CHECK(k > 0, "proxy write: %s", strerror(errno));
		w += k;
	}
	if (d->len + (size_t)n <= CAP_MAX) {
		memcpy(d->rec + d->len, buf, (size_t)n);
		d->len += (size_t)n;
	}
}

static int tcp_listener(unsigned *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 4) == 0 &&
			 getsockname(fd, (struct sockaddr *)&a, &al) == 0,
		 "proxy listener");
	*port = ntohs(a.sin_port);
	return fd;
}

static int tcp_connect(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "proxy connect");
	return fd;
}

/* The proxy's listener: the connector's path arrives here, and goes on to
 * the acceptor's port. One connection is all a capture needs. */
struct proxy {
	ev_io io;
	unsigned to_port;
};

static void on_proxy_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy *px = (struct proxy *)io;
	(void)revents;
	int c = accept4(io->fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	ev_io_stop(loop, io);
	int s = tcp_connect(px->to_port);
	dirs[0].from = c, dirs[0].to = s;
	dirs[1].from = s, dirs[1].to = c;
	for (int i = 0; i < 2; i++) {
		ev_io_init(&dirs[i].io, on_pipe, dirs[i].from, EV_READ);
		ev_io_start(loop, &dirs[i].io);
	}
}

static void on_echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	(void)arg;
	(void)from;
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

static void on_response(void *arg, int status, const struct ml_msg *resp)
{
	(void)arg;
	(void)resp;
	FZ_CHECK(status == ML_OK, "captured request failed: %s", ml_strerror(status));
	done++;
}

static void on_sent(void *arg, int status)
{
	(void)arg;
	FZ_CHECK(status == ML_OK, "captured message failed: %s", ml_strerror(status));
	done++;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
}

static ml_ctx *context(struct ev_loop *loop, uint32_t node, uint64_t inc)
{
	struct ml_config c;
	ml_config_init(&c);
	c.node_id = node;
	c.incarnation = inc;
	c.loop = loop;
	c.max_frag_payload = FZ_HS_FRAG;
	c.max_msg_size = FZ_HS_MAX_MSG;
	c.max_inflight_msgs = FZ_HS_WINDOW;
	c.max_inflight_bytes = FZ_HS_MAX_MSG;
	c.on_request = on_echo;
	ml_ctx *ctx;
	FZ_CHECK(ml_ctx_create(&c, &ctx) == 0, "capture context");
	return ctx;
}

int fz_capture(struct fz_capture *cap)
{
	static uint8_t payload[20000];
	static const size_t sizes[] = { 100, 10000, 0, 5000, 20000 };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < 2; i++) {
		dirs[i].rec = malloc(CAP_MAX);
		dirs[i].len = 0;
	}
	done = 0;

	ml_ctx *acc = context(loop, FZ_HS_NODE, FZ_HS_INCARNATION);
	ml_ctx *con = context(loop, FZ_HS_PEER, FZ_HS_PEER_INCARNATION);
	FZ_CHECK(ml_listen(acc, "tcp://127.0.0.1:0") == 0, "listen");
	ev_run(loop, EVRUN_NOWAIT); /* the listener starts on the loop */
	struct proxy px = { .to_port = ml_listen_port(acc, 0) };
	unsigned port;
	int lfd = tcp_listener(&port);
	ev_io_init(&px.io, on_proxy_accept, lfd, EV_READ);
	ev_io_start(loop, &px.io);

	char url[64];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", port);
	const char *urls[] = { url };
	ml_peer *p;
	FZ_CHECK(ml_peer_add(con, FZ_HS_NODE, urls, 1, &p) == 0, "peer");
	int want = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, want++) {
		struct ml_buf b = ml_buf_plain(payload, sizes[i]);
		int rc = i == 3 ? ml_message_send(p, 100 + i, &b, 1, 0, on_sent, NULL)
				: ml_request_send(p, 100 + i, &b, 1, 0, on_response, NULL);
		FZ_CHECK(rc == 0, "send");
	}
	ev_timer tick;
	ev_timer_init(&tick, on_tick, 0.005, 0.005);
	ev_timer_start(loop, &tick);
	double deadline = ev_time() + 10;
	while (done < want && ev_time() < deadline)
		ev_run(loop, EVRUN_ONCE);
	/* A little more, for the last acks and a heartbeat or two. */
	for (double end = ev_time() + 0.05; ev_time() < end;)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &tick);
	ev_io_stop(loop, &px.io);
	for (int i = 0; i < 2; i++)
		ev_io_stop(loop, &dirs[i].io);
	ml_ctx_destroy(con);
	ml_ctx_destroy(acc);
	close(lfd);
	close(dirs[0].from);
	close(dirs[1].from);
	ev_loop_destroy(loop);
	cap->c2s = dirs[0].rec;
	cap->c2s_len = dirs[0].len;
	cap->s2c = dirs[1].rec;
	cap->s2c_len = dirs[1].len;
	return done == want ? 0 : -1;
}
