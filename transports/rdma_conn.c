/*
 * rdma_conn.c - one RDMA connection: its verbs resources, its CM events, its
 * work completions and the credits that keep its receives from running out.
 *
 * Everything runs on the caller's thread and never waits: the CM event
 * channel and the completion channel are non-blocking and are drained by
 * rdma_conn_progress, which every op calls first.
 *
 * Credits: each side posts RDMA_RX_DEPTH receives and says so in the CM
 * private data. A SEND uses one of the peer's receives (a credit); the
 * receiver posts a buffer again once the core has read it through, and
 * returns the credit in the immediate data of its next SEND. Data never
 * takes the last credit (RDMA_CREDIT_RESERVE): that one is kept for a
 * credit-only SEND (no payload), sent when RDMA_CREDIT_RETURN_AT credits
 * are owed. So a SEND always finds a receive posted (no RNR), and two
 * sides that both ran out of credits can always hand them back.
 */
#include "rdma.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RECV_WR_BIT (1ull << 63) /* wr_id of a receive: this bit | buffer index */

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

static uint8_t *rx_buf(struct rdma_conn *c, unsigned i)
{
	return c->mem + (size_t)i * RDMA_BUF_SIZE;
}

static uint8_t *tx_buf(struct rdma_conn *c, uint64_t seq)
{
	return c->mem + (size_t)(RDMA_RX_DEPTH + seq % RDMA_TX_DEPTH) * RDMA_BUF_SIZE;
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

static int post_recvs(struct rdma_conn *c, const uint16_t *idx, unsigned n)
{
	struct ibv_recv_wr wr[RDMA_RX_DEPTH], *bad;
	struct ibv_sge sge[RDMA_RX_DEPTH];
	if (n == 0)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		sge[i] = (struct ibv_sge){ (uintptr_t)rx_buf(c, idx[i]), RDMA_BUF_SIZE, c->mr->lkey };
		wr[i] = (struct ibv_recv_wr){ .wr_id = RECV_WR_BIT | idx[i], .sg_list = &sge[i], .num_sge = 1,
					      .next = i + 1 < n ? &wr[i + 1] : NULL };
	}
	int rc = ibv_post_recv(c->id->qp, wr, &bad);
	if (rc) {
		errno = rc;
		return -1;
	}
	return 0;
}

/* PD, completion channel, CQ, RC QP, buffers, and every receive posted:
 * before connect or accept, so that the peer's first SEND finds one. */
static int setup_verbs(struct rdma_conn *c)
{
	struct ibv_context *dev = c->id->verbs;
	size_t size = (size_t)(RDMA_RX_DEPTH + RDMA_TX_DEPTH) * RDMA_BUF_SIZE;
	if (!(c->pd = ibv_alloc_pd(dev)) || !(c->cc = ibv_create_comp_channel(dev)) ||
	    nonblock(c->cc->fd) < 0 ||
	    !(c->cq = ibv_create_cq(dev, RDMA_RX_DEPTH + RDMA_TX_DEPTH, c, c->cc, 0)) ||
	    ibv_req_notify_cq(c->cq, 0) != 0 || watch(c, c->cc->fd) < 0)
		return -1;
	struct ibv_qp_init_attr qa = {
		.send_cq = c->cq,
		.recv_cq = c->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = RDMA_TX_DEPTH, .max_recv_wr = RDMA_RX_DEPTH,
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
	return post_recvs(c, all, RDMA_RX_DEPTH);
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
		ibv_dealloc_pd(c->pd);
	c->mr = NULL;
	c->cq = NULL;
	c->cc = NULL;
	c->pd = NULL;
}

static void conn_param(struct rdma_conn_param *p, uint8_t *priv)
{
	priv_encode(priv);
	*p = (struct rdma_conn_param){
		.private_data = priv,
		.private_data_len = PRIV_LEN,
		.responder_resources = 1,
		.initiator_depth = 1,
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
	conn_param(&p, mine);
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
		conn_param(&p, mine);
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
		if (!c->err)
			c->eof = 1;
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
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

static void cm_events(struct rdma_conn *c)
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

/* Work completion errors as errno, for the strerror text the core logs. */
static int wc_errno(enum ibv_wc_status s)
{
	switch (s) {
	case IBV_WC_RETRY_EXC_ERR:
		return ETIMEDOUT; /* no ack from the peer within the QP's retries */
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return ENOBUFS; /* the peer had no receive posted: a credit bug */
	case IBV_WC_WR_FLUSH_ERR:
		return ECONNRESET; /* the QP went to the error state */
	case IBV_WC_LOC_QP_OP_ERR:
		return ENETDOWN; /* soft-RoCE: the local link or route is gone */
	default:
		return EIO;
	}
}

static void on_wc(struct rdma_conn *c, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS) {
		rdma_conn_fail(c, wc_errno(wc->status), "work completion: %s (status %d, vendor error 0x%x)",
			       ibv_wc_status_str(wc->status), wc->status, wc->vendor_err);
		return;
	}
	if (!(wc->wr_id & RECV_WR_BIT)) {
		c->tx_done = wc->wr_id + 1; /* a signaled send: it and all before it are done */
		return;
	}
	if (wc->wc_flags & IBV_WC_WITH_IMM)
		c->credits += ntohl(wc->imm_data);
	unsigned at = (c->rxq_head + c->rxq_count) % RDMA_RX_DEPTH;
	c->rxq[at] = (uint16_t)(wc->wr_id & 0xffff);
	c->rxlen[at] = wc->byte_len;
	c->rxq_count++;
	/* The passive side's first SEND may come before its ESTABLISHED event. */
	if (c->state == RDMA_ACCEPTED)
		c->state = RDMA_ESTABLISHED;
}

static void poll_cq(struct rdma_conn *c)
{
	struct ibv_cq *ecq;
	void *ectx;
	unsigned events = 0;
	while (ibv_get_cq_event(c->cc, &ecq, &ectx) == 0)
		events++;
	if (events) {
		ibv_ack_cq_events(c->cq, events);
		ibv_req_notify_cq(c->cq, 0); /* armed before the poll: nothing slips by */
	}
	struct ibv_wc wc[RDMA_POLL_BATCH];
	int n;
	while (c->cq && (n = ibv_poll_cq(c->cq, RDMA_POLL_BATCH, wc)) > 0)
		for (int i = 0; i < n; i++)
			on_wc(c, &wc[i]);
}

void rdma_conn_consume_head(struct rdma_conn *c)
{
	c->repost[c->nrepost++] = c->rxq[c->rxq_head];
	c->rxq_head = (c->rxq_head + 1) % RDMA_RX_DEPTH;
	c->rxq_count--;
	c->rx_off = 0;
}

static int slot_free(const struct rdma_conn *c)
{
	return c->tx_posted - c->tx_done < RDMA_TX_DEPTH;
}

static int sendable(const struct rdma_conn *c)
{
	return !c->err && !c->eof && c->cq &&
	       (c->state == RDMA_ACCEPTED || c->state == RDMA_ESTABLISHED);
}

int rdma_conn_can_send(const struct rdma_conn *c)
{
	return sendable(c) && c->credits > RDMA_CREDIT_RESERVE && slot_free(c);
}

/* Signal every Nth send, and the one that fills the ring: its completion
 * is what frees the slots. */
static int signal_it(const struct rdma_conn *c, uint64_t seq)
{
	return (seq + 1) % RDMA_SIGNAL_EVERY == 0 || seq + 1 - c->tx_done == RDMA_TX_DEPTH;
}

static int post_sends(struct rdma_conn *c, struct ibv_send_wr *wr, unsigned n)
{
	struct ibv_send_wr *bad;
	if (n == 0)
		return 0;
	int rc = ibv_post_send(c->id->qp, wr, &bad);
	if (rc) {
		rdma_conn_fail(c, rc, "ibv_post_send: %s", strerror(rc));
		return -1;
	}
	return 0;
}

/* One send WR in slot seq: len bytes already in its buffer (0: credits only). */
static void fill_wr(struct rdma_conn *c, struct ibv_send_wr *wr, struct ibv_sge *sge, uint64_t seq,
		    uint32_t len)
{
	*sge = (struct ibv_sge){ (uintptr_t)tx_buf(c, seq), len, c->mr->lkey };
	*wr = (struct ibv_send_wr){
		.wr_id = seq,
		.sg_list = sge,
		.num_sge = len ? 1 : 0,
		.opcode = IBV_WR_SEND_WITH_IMM,
		.send_flags = signal_it(c, seq) ? IBV_SEND_SIGNALED : 0,
		.imm_data = htonl(c->credits_owed),
	};
	c->credits_owed = 0;
	c->credits--;
}

ssize_t rdma_conn_send(struct rdma_conn *c, const struct iovec *iov, int iovcnt)
{
	struct ibv_send_wr wr[RDMA_TX_DEPTH];
	struct ibv_sge sge[RDMA_TX_DEPTH];
	unsigned n = 0;
	size_t taken = 0, off = 0;
	int i = 0;
	while (i < iovcnt && rdma_conn_can_send(c)) {
		uint64_t seq = c->tx_posted;
		uint8_t *b = tx_buf(c, seq);
		uint32_t len = 0;
		while (i < iovcnt && len < c->msg_max) {
			size_t k = iov[i].iov_len - off;
			if (k > c->msg_max - len)
				k = c->msg_max - len;
			memcpy(b + len, (const uint8_t *)iov[i].iov_base + off, k);
			len += (uint32_t)k;
			off += k;
			if (off == iov[i].iov_len) {
				i++;
				off = 0;
			}
		}
		if (len == 0)
			break; /* only empty iovecs were left */
		fill_wr(c, &wr[n], &sge[n], seq, len);
		if (n)
			wr[n - 1].next = &wr[n];
		n++;
		c->tx_posted++;
		taken += len;
	}
	if (post_sends(c, wr, n) != 0)
		return -1;
	return (ssize_t)taken;
}

/* Receives read through go back to the queue in one call, and the peer
 * hears of them: with the next SEND, or a credit-only one once enough are
 * owed (it may be waiting for them, with nothing of its own to send). */
void rdma_conn_repost(struct rdma_conn *c)
{
	if (c->nrepost == 0 || !c->cq)
		return;
	if (post_recvs(c, c->repost, c->nrepost) != 0) {
		rdma_conn_fail(c, errno, "ibv_post_recv: %s", strerror(errno));
		return;
	}
	c->credits_owed += c->nrepost;
	c->nrepost = 0;
	if (c->credits_owed >= RDMA_CREDIT_RETURN_AT && sendable(c) && c->credits > 0 && slot_free(c)) {
		struct ibv_send_wr wr;
		struct ibv_sge sge;
		fill_wr(c, &wr, &sge, c->tx_posted, 0);
		c->tx_posted++;
		post_sends(c, &wr, 1);
	}
}

static void note(int fd, int *noted, int want)
{
	uint64_t v = 1;
	if (want == *noted)
		return;
	*noted = want;
	if (want) {
		if (write(fd, &v, sizeof(v)) < 0)
			*noted = 0;
	} else if (read(fd, &v, sizeof(v)) < 0) {
		*noted = 1;
	}
}

/* The fds tell the truth about what the transport holds: rfd stays
 * readable while there is input or an end to report, wfd while a waiting
 * writer (or connect) could go on. */
void rdma_conn_settle(struct rdma_conn *c)
{
	int ended = c->err || c->eof;
	note(c->rx_note, &c->rx_noted, c->rxq_count > 0 || ended);
	note(c->tx_note, &c->tx_noted, c->want_room && (ended || rdma_conn_can_send(c)));
}

void rdma_conn_progress(struct rdma_conn *c)
{
	cm_events(c);
	if (c->cq)
		poll_cq(c);
	/* Credit-only SENDs carry nothing to read: their buffers go back now. */
	while (c->rxq_count && c->rxlen[c->rxq_head] == 0)
		rdma_conn_consume_head(c);
	rdma_conn_repost(c);
	rdma_conn_settle(c);
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
