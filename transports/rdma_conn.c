/*
 * rdma_conn.c - one RDMA connection's life: its fds and CM channel, its verbs
 * resources, connect and accept, the CM events that change its state, and
 * its end. The data path (completions, credits, sends) is rdma_io.c.
 *
 * Everything runs on the caller's thread and never waits: the CM event
 * channel is non-blocking and is drained by rdma_conn_cm_events, which
 * every op runs first (through rdma_conn_progress). Only teardown may wait
 * in the kernel; it runs on the reaper (rdma_reap.c).
 */
#include "rdma.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* CM private data: who we are and what we posted (little-endian). */
#define PRIV_MAGIC 0x44524c4du /* "MLRD" */
#define PRIV_VERSION 1
#define PRIV_LEN 12

static void priv_encode(uint8_t *p)
{
	uint32_t magic = PRIV_MAGIC, buf = RDMA_BUF_SIZE;
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(magic >> (8 * i));
		p[8 + i] = (uint8_t)(buf >> (8 * i));
	}
	p[4] = PRIV_VERSION;
	p[5] = 0;
	p[6] = (uint8_t)(RDMA_RX_DEPTH & 0xff);
	p[7] = (uint8_t)(RDMA_RX_DEPTH >> 8);
}

/* The peer's receive depth and buffer size; -1 if it is not one of us. */
static int priv_decode(const void *data, size_t len, unsigned *depth, uint32_t *buf)
{
	const uint8_t *p = data;
	if (!p || len < PRIV_LEN)
		return -1;
	uint32_t magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	*depth = (unsigned)p[6] | (unsigned)p[7] << 8;
	*buf = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
	/* Fewer than 2 receives leave no credit for data beside the reserve. */
	if (magic != PRIV_MAGIC || p[4] != PRIV_VERSION || *depth <= RDMA_CREDIT_RESERVE + 1 || *buf < 64)
		return -1;
	return 0;
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int watch(struct rdma_conn *c, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	if (epoll_ctl(c->rfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -1;
	return epoll_ctl(c->wfd, EPOLL_CTL_ADD, fd, &ev);
}

static void unwatch(struct rdma_conn *c, int fd)
{
	epoll_ctl(c->rfd, EPOLL_CTL_DEL, fd, NULL);
	epoll_ctl(c->wfd, EPOLL_CTL_DEL, fd, NULL);
}

/* The first failure is the one reported; what follows (flushed work
 * requests, a DISCONNECTED after it) is its consequence. */
void rdma_conn_fail(struct rdma_conn *c, int err, const char *fmt, ...)
{
	va_list ap;
	if (c->err || c->eof)
		return;
	c->err = err ? err : EIO;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

/* The conn, its fds and its CM channel: what every connection has before
 * it has a device. */
static struct rdma_conn *conn_new(int outbound)
{
	struct rdma_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->kind = RDMA_KIND_CONN;
	c->outbound = outbound;
	c->rfd = epoll_create1(EPOLL_CLOEXEC);
	c->wfd = epoll_create1(EPOLL_CLOEXEC);
	c->rx_note = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->tx_note = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->ch = rdma_create_event_channel();
	if (c->rfd < 0 || c->wfd < 0 || c->rx_note < 0 || c->tx_note < 0 || !c->ch ||
	    nonblock(c->ch->fd) < 0 || watch(c, c->ch->fd) < 0) {
		int e = errno;
		rdma_conn_free(c);
		errno = e;
		return NULL;
	}
	struct epoll_event ev = { .events = EPOLLIN };
	ev.data.fd = c->rx_note;
	epoll_ctl(c->rfd, EPOLL_CTL_ADD, c->rx_note, &ev);
	ev.data.fd = c->tx_note;
	epoll_ctl(c->wfd, EPOLL_CTL_ADD, c->tx_note, &ev);
	if (rdma_fdtab_set(c->rfd, c) < 0) {
		int e = errno;
		rdma_conn_free(c);
		errno = e;
		return NULL;
	}
	return c;
}

/* PD, completion channel, CQ, RC QP, buffers, and every receive posted:
 * before connect or accept, so that the peer's first SEND finds one. */
static int setup_verbs(struct rdma_conn *c)
{
	struct ibv_context *dev = c->id->verbs;
	size_t size = (size_t)(RDMA_RX_DEPTH + RDMA_TX_DEPTH) * RDMA_BUF_SIZE;
	if (!(c->pd = rdma_dev_get(dev, &c->dev_slot)) || !(c->cc = ibv_create_comp_channel(dev)) ||
	    nonblock(c->cc->fd) < 0 ||
	    !(c->cq = ibv_create_cq(dev, RDMA_RX_DEPTH + RDMA_TX_DEPTH + RDMA_READ_WRS, c, c->cc, 0)) ||
	    ibv_req_notify_cq(c->cq, 0) != 0 || watch(c, c->cc->fd) < 0)
		return -1;
	struct ibv_qp_init_attr qa = {
		.send_cq = c->cq,
		.recv_cq = c->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = RDMA_TX_DEPTH + RDMA_READ_WRS, .max_recv_wr = RDMA_RX_DEPTH,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	if (rdma_create_qp(c->id, c->pd, &qa) != 0)
		return -1;
	if (posix_memalign((void **)&c->mem, 4096, size) != 0) {
		errno = ENOMEM;
		return -1;
	}
	if (!(c->mr = ibv_reg_mr(c->pd, c->mem, size, IBV_ACCESS_LOCAL_WRITE)))
		return -1;
	uint16_t all[RDMA_RX_DEPTH];
	for (unsigned i = 0; i < RDMA_RX_DEPTH; i++)
		all[i] = (uint16_t)i;
	return rdma_io_post_recvs(c, all, RDMA_RX_DEPTH);
}

/* Every verbs resource, at once: after DEVICE_REMOVAL the device cannot go
 * (`rdma link delete` blocks) until its users let go. */
static void release_verbs(struct rdma_conn *c)
{
	if (c->id && c->id->qp)
		rdma_destroy_qp(c->id);
	if (c->mr)
		ibv_dereg_mr(c->mr);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->cc) {
		unwatch(c, c->cc->fd);
		ibv_destroy_comp_channel(c->cc);
	}
	if (c->pd)
		rdma_dev_put(c->dev_slot);
	c->mr = NULL;
	c->cq = NULL;
	c->cc = NULL;
	c->pd = NULL;
}

/* The READs in flight each way (zero copy): RDMA_READ_WRS, within what the
 * device allows (the CM refuses a connection that asks for more). */
static uint8_t read_depth(struct ibv_context *dev)
{
	struct ibv_device_attr a;
	int d = RDMA_READ_WRS;
	if (ibv_query_device(dev, &a) == 0) {
		d = a.max_qp_rd_atom < d ? a.max_qp_rd_atom : d;
		d = a.max_qp_init_rd_atom < d ? a.max_qp_init_rd_atom : d;
	}
	return (uint8_t)d;
}

static void conn_param(struct rdma_conn *c, struct rdma_conn_param *p, uint8_t *priv)
{
	uint8_t depth = read_depth(c->id->verbs);
	priv_encode(priv);
	*p = (struct rdma_conn_param){
		.private_data = priv,
		.private_data_len = PRIV_LEN,
		/* Zero copy: the peer READs from us, we READ from it. */
		.responder_resources = depth,
		.initiator_depth = depth,
		.retry_count = RDMA_RETRY_COUNT,
		.rnr_retry_count = RDMA_RNR_RETRY,
	};
}

static int set_ack_timeout(struct rdma_cm_id *id)
{
	uint8_t t = RDMA_ACK_TIMEOUT_EXP;
	return rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof(t));
}

static void peer_posted(struct rdma_conn *c, unsigned depth, uint32_t buf)
{
	c->credits = depth;
	c->msg_max = buf < RDMA_BUF_SIZE ? buf : RDMA_BUF_SIZE;
}

int rdma_conn_connect(const struct sockaddr *src, const struct sockaddr *dst, struct rdma_conn **out)
{
	struct rdma_conn *c = conn_new(1);
	if (!c)
		return -1;
	c->state = RDMA_RESOLVING;
	c->want_room = 1; /* the connect's end is signalled like room */
	if (rdma_create_id(c->ch, &c->id, c, RDMA_PS_TCP) != 0 ||
	    rdma_resolve_addr(c->id, (struct sockaddr *)src, (struct sockaddr *)dst, RDMA_RESOLVE_MS) != 0) {
		int e = errno;
		rdma_conn_free(c);
		errno = e;
		return -1;
	}
	*out = c;
	return 0;
}

int rdma_conn_accept(struct rdma_cm_id *id, const void *priv, size_t priv_len, struct rdma_conn **out)
{
	unsigned depth;
	uint32_t buf;
	uint8_t mine[PRIV_LEN];
	struct rdma_conn_param p;
	if (priv_decode(priv, priv_len, &depth, &buf) != 0) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		errno = EPROTO;
		return -1;
	}
	struct rdma_conn *c = conn_new(0);
	if (!c) {
		int e = errno;
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		errno = e;
		return -1;
	}
	/* Its events come to its own channel from now on. */
	if (rdma_migrate_id(id, c->ch) != 0) {
		int e = errno;
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		rdma_conn_free(c);
		errno = e;
		return -1;
	}
	c->id = id;
	id->context = c;
	peer_posted(c, depth, buf);
	conn_param(c, &p, mine);
	if (set_ack_timeout(id) != 0 || setup_verbs(c) != 0 || rdma_accept(id, &p) != 0) {
		int e = errno;
		rdma_reject(id, NULL, 0);
		rdma_conn_free(c);
		errno = e;
		return -1;
	}
	c->state = RDMA_ACCEPTED; /* rdma_accept moved the QP to RTS */
	*out = c;
	return 0;
}

/* The CM's errors as errno, for the strerror text the core logs. */
static int cm_errno(int status, int dflt)
{
	return status < 0 ? -status : dflt;
}

static void on_cm_event(struct rdma_conn *c, enum rdma_cm_event_type type, int status,
			const void *priv, size_t priv_len)
{
	uint8_t mine[PRIV_LEN];
	struct rdma_conn_param p;
	unsigned depth;
	uint32_t buf;
	switch (type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (set_ack_timeout(c->id) != 0 || rdma_resolve_route(c->id, RDMA_RESOLVE_MS) != 0)
			rdma_conn_fail(c, errno, "route resolution: %s", strerror(errno));
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		conn_param(c, &p, mine);
		if (setup_verbs(c) != 0 || rdma_connect(c->id, &p) != 0)
			rdma_conn_fail(c, errno, "queue pair or rdma_connect: %s", strerror(errno));
		else
			c->state = RDMA_CONNECTING;
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		if (c->outbound) {
			if (priv_decode(priv, priv_len, &depth, &buf) != 0) {
				rdma_conn_fail(c, EPROTO, "the acceptor's CM private data is not msglayer's");
				break;
			}
			peer_posted(c, depth, buf);
		}
		c->state = RDMA_ESTABLISHED;
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE: /* also on an established connection (neighbour change) */
		rdma_conn_fail(c, cm_errno(status, EHOSTUNREACH), "%s (status %d)", rdma_event_str(type), status);
		break;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		rdma_conn_fail(c, cm_errno(status, ECONNABORTED), "%s (status %d)", rdma_event_str(type), status);
		break;
	case RDMA_CM_EVENT_REJECTED:
		rdma_conn_fail(c, ECONNREFUSED, "%s (status %d)", rdma_event_str(type), status);
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		/* The peer may have gone because of an error of ours it saw first
		 * (it refused our READ: a wrong key): a completion that came
		 * before its disconnect says why, and is the first failure. */
		if (c->cq)
			rdma_conn_poll_cq(c);
		if (!c->err)
			c->eof = 1;
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		rdma_removal_seen();
		rdma_conn_fail(c, ENODEV, "%s: the device went away", rdma_event_str(type));
		c->removed = 1;
		release_verbs(c);
		break;
	case RDMA_CM_EVENT_ADDR_CHANGE:
		rdma_conn_fail(c, EADDRNOTAVAIL, "%s: the local address changed", rdma_event_str(type));
		break;
	default: /* TIMEWAIT_EXIT and the like: nothing to do */
		break;
	}
}

void rdma_conn_cm_events(struct rdma_conn *c)
{
	struct rdma_cm_event *ev;
	uint8_t priv[PRIV_LEN];
	while (c->ch && rdma_get_cm_event(c->ch, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;
		int status = ev->status;
		size_t plen = 0;
		if (type == RDMA_CM_EVENT_ESTABLISHED && ev->param.conn.private_data) {
			plen = ev->param.conn.private_data_len < PRIV_LEN ? ev->param.conn.private_data_len
									   : PRIV_LEN;
			memcpy(priv, ev->param.conn.private_data, plen);
		}
		/* Acked first: handling may destroy what the event refers to. */
		rdma_ack_cm_event(ev);
		on_cm_event(c, type, status, priv, plen);
	}
}

void rdma_conn_unhook(struct rdma_conn *c)
{
	if (c->rfd >= 0)
		rdma_fdtab_clear(c->rfd);
}

void rdma_conn_release(struct rdma_conn *c)
{
	release_verbs(c);
	free(c->mem); /* a held connection may wait 30 s: no need to keep 2 MiB */
	c->mem = NULL;
}

int rdma_conn_device_gone(struct rdma_conn *c)
{
	struct rdma_cm_event *ev;
	while (!c->removed && c->ch && rdma_get_cm_event(c->ch, &ev) == 0) {
		c->removed = ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL;
		rdma_ack_cm_event(ev);
	}
	return c->removed;
}

void rdma_conn_free(struct rdma_conn *c)
{
	if (!c)
		return;
	rdma_conn_unhook(c);
	release_verbs(c);
	/* Destroying the id sends the peer a DREQ (if it was connected): it
	 * hears now rather than at its heartbeat deadline. */
	if (c->id)
		rdma_destroy_id(c->id);
	if (c->ch)
		rdma_destroy_event_channel(c->ch);
	int fds[] = { c->rfd, c->wfd, c->rx_note, c->tx_note };
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(c->mem);
	free(c);
}
