/*
 * rdma_io.c - an RDMA connection's data path: work completions, credits,
 * sends and reposted receives, and the note eventfds that keep the fds the
 * core watches truthful.
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
#include <string.h>
#include <unistd.h>

#define RECV_WR_BIT (1ull << 63) /* wr_id of a receive: this bit | buffer index */
#define READ_WR_BIT (1ull << 62) /* wr_id of a READ chunk: this bit | read slot << 32 | bytes */

static uint8_t *rx_buf(struct rdma_conn *c, unsigned i)
{
	return c->mem + (size_t)i * RDMA_BUF_SIZE;
}

static uint8_t *tx_buf(struct rdma_conn *c, uint64_t seq)
{
	return c->mem + (size_t)(RDMA_RX_DEPTH + seq % RDMA_TX_DEPTH) * RDMA_BUF_SIZE;
}

int rdma_io_post_recvs(struct rdma_conn *c, const uint16_t *idx, unsigned n)
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

/* Post READ chunks of the reads taken, oldest first, while fewer than
 * RDMA_READ_INFLIGHT bytes are posted and not complete. */
static void read_pump(struct rdma_conn *c)
{
	for (unsigned k = 0; k < c->nreads && c->read_inflight < RDMA_READ_INFLIGHT; k++) {
		unsigned slot = (c->read_head + k) % RDMA_READ_DEPTH;
		struct rdma_read *r = &c->reads[slot];
		while (r->posted < r->len && c->read_inflight < RDMA_READ_INFLIGHT) {
			uint32_t n = r->len - r->posted < RDMA_READ_CHUNK ? r->len - r->posted : RDMA_READ_CHUNK;
			struct ibv_sge sge = { r->dst + r->posted, n, r->lkey };
			struct ibv_send_wr wr = {
				.wr_id = READ_WR_BIT | (uint64_t)slot << 32 | n,
				.sg_list = &sge,
				.num_sge = 1,
				.opcode = IBV_WR_RDMA_READ,
				.send_flags = IBV_SEND_SIGNALED,
				.wr.rdma = { .remote_addr = r->raddr + r->posted, .rkey = r->rkey },
			}, *bad;
			int rc = ibv_post_send(c->id->qp, &wr, &bad);
			if (rc) {
				rdma_conn_fail(c, rc, "ibv_post_send (RDMA READ): %s", strerror(rc));
				return;
			}
			r->posted += n;
			c->read_inflight += n;
		}
	}
}

/* A READ chunk completed (in posting order, as every send queue entry):
 * its read is the oldest one not yet done. */
static void read_chunk_done(struct rdma_conn *c, unsigned slot, uint32_t n)
{
	struct rdma_read *r = &c->reads[slot];
	c->read_inflight -= n;
	r->done += n;
	if (r->done == r->len) {
		c->reads_done[c->nreads_done++] = r->cookie;
		c->read_head = (c->read_head + 1) % RDMA_READ_DEPTH;
		c->nreads--;
	}
	read_pump(c);
}

static void on_wc(struct rdma_conn *c, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS) {
		/* Only wr_id and status are valid in an error completion. A READ's
		 * says most: a remote access error there is the peer's descriptor
		 * (its key or range) refused by the peer's own device. */
		rdma_conn_fail(c, wc_errno(wc->status), "%s: %s (status %d, vendor error 0x%x)",
			       (wc->wr_id & READ_WR_BIT) ? "RDMA READ" : "work completion",
			       ibv_wc_status_str(wc->status), wc->status, wc->vendor_err);
		return;
	}
	if (wc->wr_id & READ_WR_BIT) {
		read_chunk_done(c, (unsigned)(wc->wr_id >> 32) & 0xffff, (uint32_t)wc->wr_id);
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

void rdma_conn_poll_cq(struct rdma_conn *c)
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

int rdma_conn_read(struct rdma_conn *c, const struct ml_tp_mem *m, void *dst, uint32_t len,
		   uint64_t raddr, uint32_t rkey, uint64_t cookie)
{
	uint32_t lkey, unused;
	if (!sendable(c)) {
		errno = c->err ? c->err : ENOTCONN;
		return -1;
	}
	/* Its completion needs a place in reads_done until the core asks. */
	if (c->nreads + c->nreads_done >= RDMA_READ_DEPTH || len == 0) {
		errno = len ? EAGAIN : EINVAL;
		return -1;
	}
	if (rdma_mem_key(m, c->dev_slot, &lkey, &unused) != 0) {
		errno = EFAULT; /* the destination is not registered with this device */
		return -1;
	}
	unsigned slot = (c->read_head + c->nreads++) % RDMA_READ_DEPTH;
	c->reads[slot] = (struct rdma_read){ .cookie = cookie, .dst = (uintptr_t)dst, .raddr = raddr,
					     .len = len, .rkey = rkey, .lkey = lkey };
	read_pump(c);
	return 0;
}

/* Receives read through go back to the queue in one call, and the peer
 * hears of them: with the next SEND, or a credit-only one once enough are
 * owed (it may be waiting for them, with nothing of its own to send). */
void rdma_conn_repost(struct rdma_conn *c)
{
	if (c->nrepost == 0 || !c->cq)
		return;
	if (rdma_io_post_recvs(c, c->repost, c->nrepost) != 0) {
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
	note(c->rx_note, &c->rx_noted, c->rxq_count > 0 || c->nreads_done > 0 || ended);
	note(c->tx_note, &c->tx_noted, c->want_room && (ended || rdma_conn_can_send(c)));
}

void rdma_conn_progress(struct rdma_conn *c)
{
	rdma_conn_cm_events(c);
	if (c->cq)
		rdma_conn_poll_cq(c);
	/* Credit-only SENDs carry nothing to read: their buffers go back now. */
	while (c->rxq_count && c->rxlen[c->rxq_head] == 0)
		rdma_conn_consume_head(c);
	rdma_conn_repost(c);
	rdma_conn_settle(c);
}
