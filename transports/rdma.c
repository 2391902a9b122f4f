/*
 * rdma.c - the RDMA transport ("rdma://host:port[?src=ADDR]"): a byte pipe
 * over RC SEND/RECV, behind the same ops as TCP, so the core frames,
 * checksums, batches and resends exactly as it does on a socket.
 *
 * writev copies into registered send buffers and posts SENDs (as many as
 * the peer's credits allow); readv copies out of received buffers and posts
 * them again. A connection's fd is an epoll fd over its CM event channel,
 * its completion channel and a note eventfd (rdma_conn.c); room is
 * signalled by the readability of a second one (room_fd). Failures (work
 * completion errors, DISCONNECTED, DEVICE_REMOVAL, ADDR_CHANGE,
 * UNREACHABLE) come out of readv and writev as errno values, after the
 * input that arrived before them; the core fails the path. doc/rdma.md.
 */
#include "transport.h"
#include "rdma.h"
#include "../msglayer/msglayer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

static const char *rt_unavailable(void)
{
	int n = 0;
	struct ibv_device **l = ibv_get_device_list(&n);
	if (l)
		ibv_free_device_list(l);
	return n > 0 ? NULL : "no RDMA device on this host (ibv_get_device_list found none)";
}

static struct rdma_conn *conn_of(int fd)
{
	struct rdma_conn *c = rdma_fdtab_get(fd);
	if (!c || c->kind != RDMA_KIND_CONN) {
		errno = EBADF;
		return NULL;
	}
	return c;
}

static void listener_free(struct rdma_listener *l)
{
	if (l->id)
		rdma_destroy_id(l->id);
	if (l->ch)
		rdma_destroy_event_channel(l->ch);
	if (l->tfd >= 0)
		close(l->tfd);
	if (l->efd >= 0)
		close(l->efd);
	free(l);
}

/* Bind and listen on l->addr: 0, or ML_EEXIST / ML_EADDR (errno set). */
static int listener_arm(struct rdma_listener *l)
{
	if (rdma_create_id(l->ch, &l->id, l, RDMA_PS_TCP) != 0)
		return ML_ESYS;
	if (rdma_bind_addr(l->id, (struct sockaddr *)&l->addr) != 0 || rdma_listen(l->id, 128) != 0) {
		int e = errno;
		rdma_destroy_id(l->id);
		l->id = NULL;
		errno = e;
		return e == EADDRINUSE ? ML_EEXIST : ML_EADDR;
	}
	return 0;
}

static void relisten_timer(struct rdma_listener *l, int on)
{
	struct itimerspec its = { { on ? RDMA_RELISTEN_S : 0, 0 }, { on ? RDMA_RELISTEN_S : 0, 0 } };
	timerfd_settime(l->tfd, 0, &its, NULL);
}

static int rt_listen(const struct ml_endpoint *ep, int *fd, unsigned *port)
{
	struct rdma_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return ML_ENOMEM;
	l->kind = RDMA_KIND_LISTENER;
	memcpy(&l->addr, &ep->addr, ep->addrlen);
	l->efd = epoll_create1(EPOLL_CLOEXEC);
	l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	l->ch = rdma_create_event_channel();
	int rc = ML_ESYS, fl;
	struct epoll_event ev = { .events = EPOLLIN };
	if (l->efd < 0 || l->tfd < 0 || !l->ch || (fl = fcntl(l->ch->fd, F_GETFL)) < 0 ||
	    fcntl(l->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	ev.data.fd = l->ch->fd;
	if (epoll_ctl(l->efd, EPOLL_CTL_ADD, l->ch->fd, &ev) < 0)
		goto fail;
	ev.data.fd = l->tfd;
	if (epoll_ctl(l->efd, EPOLL_CTL_ADD, l->tfd, &ev) < 0)
		goto fail;
	if ((rc = listener_arm(l)) != 0)
		goto fail;
	rc = ML_ESYS;
	if (rdma_fdtab_set(l->efd, l) != 0)
		goto fail;
	*port = ntohs(rdma_get_src_port(l->id));
	/* Port 0 picked one: a listener armed again must take the same. */
	((struct sockaddr_in *)&l->addr)->sin_port = rdma_get_src_port(l->id);
	*fd = l->efd;
	return 0;
fail:;
	int e = errno;
	listener_free(l);
	errno = e;
	return rc;
}

static void peer_url(struct rdma_cm_id *id, char *url, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	struct sockaddr *sa = rdma_get_peer_addr(id);
	unsigned port = ntohs(rdma_get_dst_port(id));
	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
		snprintf(url, len, "rdma://[%s]:%u", host, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
		snprintf(url, len, "rdma://%s:%u", host, port);
	}
}

/* One event of the listener's channel: a connection request is accepted at
 * once (its QP and receives ready); the core then greets it like a socket. */
/* One event of the listener's channel: a connection request is accepted at
 * once (its QP and receives ready); the core then greets it like a socket. */
static int rt_accept(int lfd, int *fd, char *url, size_t len)
{
	struct rdma_listener *l = rdma_fdtab_get(lfd);
	struct rdma_cm_event *ev;
	uint8_t priv[64];
	uint64_t ticks;
	if (!l || l->kind != RDMA_KIND_LISTENER) {
		errno = EBADF;
		return ML_ESYS;
	}
	if (read(l->tfd, &ticks, sizeof(ticks)) > 0 && !l->id && !rdma_removing() && listener_arm(l) == 0)
		relisten_timer(l, 0); /* the address has a device again */
	for (;;) {
		if (rdma_get_cm_event(l->ch, &ev) != 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? ML_EAGAIN : ML_ESYS;
		enum rdma_cm_event_type type = ev->event;
		if (type == RDMA_CM_EVENT_DEVICE_REMOVAL && ev->id == l->id) {
			/* The device cannot go while the listening id holds it. */
			rdma_removal_seen();
			rdma_ack_cm_event(ev);
			rdma_destroy_id(l->id);
			l->id = NULL;
			relisten_timer(l, 1);
			errno = ENODEV; /* the core logs it; listening resumes by itself */
			return ML_ESYS;
		}
		if (type != RDMA_CM_EVENT_CONNECT_REQUEST) {
			rdma_ack_cm_event(ev);
			continue;
		}
		struct rdma_cm_id *id = ev->id;
		size_t plen = ev->param.conn.private_data_len < sizeof(priv) ? ev->param.conn.private_data_len
									       : sizeof(priv);
		if (ev->param.conn.private_data)
			memcpy(priv, ev->param.conn.private_data, plen);
		else
			plen = 0;
		rdma_ack_cm_event(ev);
		peer_url(id, url, len);
		struct rdma_conn *c;
		if (rdma_conn_accept(id, priv, plen, &c) != 0)
			continue; /* refused (not one of us, or no resources): the next */
		*fd = c->rfd;
		return 0;
	}
}

static int rt_connect(const struct ml_endpoint *ep, int *fd)
{
	struct rdma_conn *c;
	if (rdma_removing()) {
		errno = ENODEV; /* the core retries with backoff */
		return ML_EADDR;
	}
	if (rdma_conn_connect(ep->srclen ? (const struct sockaddr *)&ep->src : NULL,
			      (const struct sockaddr *)&ep->addr, &c) != 0)
		return ML_EADDR;
	*fd = c->rfd;
	return 0;
}

static int rt_connect_done(int fd, int *err)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c) {
		*err = EBADF;
		return ML_EADDR;
	}
	rdma_conn_progress(c);
	if (c->err || c->eof) {
		*err = c->err ? c->err : ECONNRESET;
		return ML_EADDR;
	}
	if (c->state != RDMA_ESTABLISHED) {
		c->want_room = 1;
		rdma_conn_settle(c);
		return ML_EAGAIN;
	}
	c->want_room = 0;
	rdma_conn_settle(c);
	return 0;
}

static const char *rt_why(int fd)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return NULL;
	return c->err ? c->why : c->eof ? "the peer disconnected (RDMA_CM_EVENT_DISCONNECTED)" : NULL;
}

static int rt_room_fd(int fd, int *events)
{
	struct rdma_conn *c = conn_of(fd);
	*events = ML_TP_READABLE;
	return c ? c->wfd : fd;
}

static int rt_pending(int fd)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return 0;
	rdma_conn_progress(c);
	return (int)(c->rxq_count + c->nreads_done);
}

static ssize_t rt_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return -1;
	rdma_conn_progress(c);
	size_t got = 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t at = 0;
		while (at < iov[i].iov_len && c->rxq_count) {
			unsigned q = c->rxq_head;
			size_t k = c->rxlen[q] - c->rx_off;
			if (k > iov[i].iov_len - at)
				k = iov[i].iov_len - at;
			memcpy((uint8_t *)iov[i].iov_base + at,
			       c->mem + (size_t)c->rxq[q] * RDMA_BUF_SIZE + c->rx_off, k);
			at += k;
			c->rx_off += k;
			if (c->rx_off == c->rxlen[q])
				rdma_conn_consume_head(c);
		}
		got += at;
	}
	rdma_conn_repost(c);
	rdma_conn_settle(c);
	if (got)
		return (ssize_t)got;
	if (c->eof)
		return 0;
	errno = c->err ? c->err : EAGAIN;
	return -1;
}

static ssize_t rt_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return -1;
	rdma_conn_progress(c);
	if (c->err || c->eof) {
		errno = c->err ? c->err : EPIPE;
		return -1;
	}
	size_t want = 0;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	ssize_t n = rdma_conn_send(c, iov, iovcnt);
	if (n < 0) {
		rdma_conn_settle(c);
		errno = c->err;
		return -1;
	}
	c->want_room = (size_t)n < want;
	rdma_conn_settle(c);
	if (n == 0 && want) {
		errno = EAGAIN;
		return -1;
	}
	return n;
}

static int rt_mem_key(int fd, const struct ml_tp_mem *m, uint32_t *rkey)
{
	struct rdma_conn *c = conn_of(fd);
	uint32_t lkey;
	return c && c->pd ? rdma_mem_key(m, c->dev_slot, &lkey, rkey) : -1;
}

static int rt_read(int fd, const struct ml_tp_mem *m, void *dst, uint32_t len, uint64_t raddr,
		   uint32_t rkey, uint64_t cookie)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return -1;
	int rc = rdma_conn_read(c, m, dst, len, raddr, rkey, cookie);
	rdma_conn_settle(c);
	return rc;
}

static unsigned rt_reads_done(int fd, uint64_t *cookies, unsigned max)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c)
		return 0;
	rdma_conn_progress(c);
	unsigned n = c->nreads_done < max ? c->nreads_done : max;
	memcpy(cookies, c->reads_done, n * sizeof(*cookies));
	memmove(c->reads_done, c->reads_done + n, (c->nreads_done - n) * sizeof(*cookies));
	c->nreads_done -= n;
	rdma_conn_settle(c);
	return n;
}

/* The QP's timeouts are fixed when it connects (RDMA_ACK_TIMEOUT_EXP,
 * RDMA_RETRY_COUNT), before the core could set them: both ends must agree
 * on them at connect time, and an accepted QP is already running. */
static void rt_set_timeouts(int fd, unsigned user_timeout_ms)
{
	(void)fd;
	(void)user_timeout_ms;
}

/* RESET: the QP goes to the error state (what it sent and did not get
 * acked is lost; the peer hears the DREQ at close). SHUTDOWN: an orderly
 * disconnect, the peer sees DISCONNECTED. */
static void rt_inject(int fd, int fault)
{
	struct rdma_conn *c = conn_of(fd);
	if (!c || !c->id || !c->id->qp)
		return;
	if (fault == ML_FAULT_RESET) {
		struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
		ibv_modify_qp(c->id->qp, &a, IBV_QP_STATE);
	} else {
		rdma_disconnect(c->id);
	}
}

static void rt_close(int fd)
{
	int *kind = rdma_fdtab_get(fd);
	if (!kind)
		return;
	if (*kind == RDMA_KIND_CONN) {
		struct rdma_conn *c = (struct rdma_conn *)kind;
		/* READs in flight write into the core's buffers, which it reuses
		 * once the path is closed: the QP stops placing data now, not
		 * when the reaper gets to it. */
		if (c->read_inflight && c->id && c->id->qp) {
			struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
			ibv_modify_qp(c->id->qp, &a, IBV_QP_STATE);
		}
		rdma_reap(c);
		return;
	}
	rdma_fdtab_clear(fd);
	listener_free((struct rdma_listener *)kind);
}

const struct ml_transport_ops ml_rdma_ops = {
	.scheme = "rdma",
	.unavailable = rt_unavailable,
	.listen = rt_listen,
	.accept = rt_accept,
	.connect = rt_connect,
	.connect_done = rt_connect_done,
	.room_fd = rt_room_fd,
	.pending = rt_pending,
	.why = rt_why,
	.readv = rt_readv,
	.writev = rt_writev,
	.set_timeouts = rt_set_timeouts,
	.mem_key = rt_mem_key,
	.read = rt_read,
	.reads_done = rt_reads_done,
	.copies = 1,
	.inject = rt_inject,
	.close = rt_close,
};
