/* tcp.c - TCP transport: non-blocking sockets, no Nagle, big buffers. */
#include "transport.h"
#include "../msglayer/msglayer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void tune(int fd)
{
	int one = 1;
	/* Frames are batched by the core; Nagle would only add latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The kernel must not hide a dead peer for minutes (see tcp_set_timeouts). */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static int tcp_listen(const struct ml_endpoint *ep, int *fdp, unsigned *port)
{
	int one = 1;
	int fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ML_ESYS;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EADDRINUSE ? ML_EEXIST : ML_EADDR;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	*fdp = fd;
	return 0;
}

static int tcp_accept(int lfd, int *fdp, char *peer_url, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? ML_EAGAIN : ML_ESYS;
	tune(fd);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		snprintf(peer_url, len, "tcp://%s:%u", host, port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(peer_url, len, "tcp://[%s]:%u", host, port);
	}
	*fdp = fd;
	return 0;
}

static int tcp_connect(const struct ml_endpoint *ep, int *fdp)
{
	int fd = socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ML_ESYS;
	tune(fd);
	if ((ep->srclen && bind(fd, (const struct sockaddr *)&ep->src, ep->srclen) < 0) ||
	    (connect(fd, (const struct sockaddr *)&ep->addr, ep->addrlen) < 0 && errno != EINPROGRESS)) {
		int e = errno;
		close(fd);
		errno = e;
		return ML_EADDR;
	}
	*fdp = fd;
	return 0;
}

static int tcp_connect_done(int fd, int *err)
{
	socklen_t sl = sizeof(*err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &sl) < 0)
		*err = errno;
	return *err ? ML_EADDR : 0;
}

/* A socket signals room by writability, and the end of a connect too. */
static int tcp_room_fd(int fd, int *events)
{
	*events = ML_TP_WRITABLE;
	return fd;
}

static int tcp_pending(int fd)
{
	int n = 0;
	return ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

/* sendmsg, not writev: a library must never raise SIGPIPE in its host
 * process when the peer has gone; EPIPE is reported as an error instead. */
static ssize_t tcp_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)iovcnt };
	return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

/* TCP_USER_TIMEOUT: data unacknowledged this long kills the connection;
 * keepalive probes an idle one on the same scale. The failover heartbeats
 * normally decide much sooner; this is the kernel's own safety net. */
static void tcp_set_timeouts(int fd, unsigned user_timeout_ms)
{
	unsigned idle = user_timeout_ms / 3000 ? user_timeout_ms / 3000 : 1;
	int keepidle = (int)idle, keepintvl = (int)idle, keepcnt = 3;
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepidle, sizeof(keepidle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &keepintvl, sizeof(keepintvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &keepcnt, sizeof(keepcnt));
}

/* RESET: linger 0 makes the coming close() send a RST. SHUTDOWN: a FIN now. */
static void tcp_inject(int fd, int fault)
{
	if (fault == ML_FAULT_RESET) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else {
		shutdown(fd, SHUT_RDWR);
	}
}

static void tcp_close(int fd)
{
	close(fd);
}

const struct ml_transport_ops ml_tcp_ops = {
	.scheme = "tcp",
	.listen = tcp_listen,
	.accept = tcp_accept,
	.connect = tcp_connect,
	.connect_done = tcp_connect_done,
	.room_fd = tcp_room_fd,
	.pending = tcp_pending,
	.readv = readv,
	.writev = tcp_writev,
	.set_timeouts = tcp_set_timeouts,
	.inject = tcp_inject,
	.close = tcp_close,
};
