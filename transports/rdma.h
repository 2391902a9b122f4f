/*
 * rdma.h - the RDMA transport's insides, shared by rdma.c (the ops: a byte
 * pipe over SEND/RECV), rdma_conn.c (a connection's life: verbs resources,
 * connect, accept, CM events, end), rdma_io.c (its data path: completions,
 * credits, sends), rdma_reap.c (teardown) and rdma_fdtab.c (fd -> object).
 *
 * A connection is one RC queue pair with its own CM event channel and
 * completion channel. The core sees only fds: rfd (an epoll fd over both
 * channels and the rx_note eventfd) is readable when readv has something
 * to report; wfd (the same channels and tx_note) is readable when writev
 * may have room again. The notes keep that true for state the transport
 * holds itself (received buffers not yet read, a failure, room that came
 * back), so level-triggered watchers see it. See doc/rdma.md.
 */
#ifndef ML_RDMA_H
#define ML_RDMA_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stddef.h>
#include <stdint.h>

#define RDMA_RX_DEPTH 64        /* receive buffers posted per connection */
#define RDMA_TX_DEPTH 64        /* send buffers (and send queue slots) per connection */
#define RDMA_BUF_SIZE 16384     /* bytes per buffer: one SEND at most */
#define RDMA_SIGNAL_EVERY 16    /* a signaled send per this many (and when the ring fills) */
#define RDMA_CREDIT_RESERVE 1   /* credits data may not use: kept for credit returns */
#define RDMA_CREDIT_RETURN_AT 16 /* reposted receives that earn a credit-only message */
#define RDMA_POLL_BATCH 32      /* work completions per ibv_poll_cq */
/* RDMA READs (zero copy, msglayer/zcopy.c). A connection takes up to
 * RDMA_READ_DEPTH reads (the core keeps the rest waiting) and posts them as
 * READ work requests of at most RDMA_READ_CHUNK bytes, with at most
 * RDMA_READ_INFLIGHT bytes posted and not complete: a READ holds its
 * send queue until its response is (nearly) in, and the SENDs behind it
 * (acks, heartbeats) with it. On soft-RoCE the requester stops 128 packets
 * (128 KiB at MTU 1024) ahead of what completed: with whole 256 KiB
 * fragments in flight, nothing else went out for hundreds of ms and the
 * heartbeats declared the paths dead, both ways, over and over (seen in
 * the VM). 64 KiB leaves half of that window to the SENDs. Hardware has no
 * such limit: raise these there (doc/rdma.md). READ_WRS is also the QP's
 * initiator depth and responder resources (within the device's limits). */
#define RDMA_READ_DEPTH 8
#define RDMA_READ_CHUNK (32u << 10)
#define RDMA_READ_INFLIGHT (64u << 10)
#define RDMA_READ_WRS (RDMA_READ_INFLIGHT / RDMA_READ_CHUNK) /* send queue slots they take */
#define RDMA_MAX_DEVS 16        /* RDMA devices a process uses at once (rdma_mem.c) */
/* Address and route resolution, each. Short: rdma_cm can miss an ARP reply
 * that comes before its request is queued (a veth peer answers at once) and
 * then resolves only when this timeout expires; it must stay well inside the
 * core's 2 s connect timeout (seen in the soft-RoCE VM: 2 s lost per path). */
#define RDMA_RESOLVE_MS 500
/* The QP gives up after about 7 x 4.096 us x 2^14 = 0.5 s without acks (0.59 s
 * measured on soft-RoCE): after the heartbeats (30-50 ms on a LAN, 2 s at
 * most) but well before the default's 14 s. retry_count 7 would mean
 * "forever" on rxe; an RNR NAK cannot happen with credits, so none is
 * retried: one would be a bug, and fails the path at once. */
#define RDMA_ACK_TIMEOUT_EXP 14
#define RDMA_RETRY_COUNT 6
#define RDMA_RNR_RETRY 0

enum rdma_kind { RDMA_KIND_LISTENER = 1, RDMA_KIND_CONN };

enum rdma_state {
	RDMA_RESOLVING = 1, /* outbound: address, then route */
	RDMA_CONNECTING,    /* outbound: REQ sent */
	RDMA_ACCEPTED,      /* inbound: accepted, the QP may send */
	RDMA_ESTABLISHED,
};

/* A listener's fd is an epoll fd over its CM channel and a timer: when its
 * device goes away (DEVICE_REMOVAL) the id must go too, and the timer
 * retries to listen until an RDMA device has the address again. */
#define RDMA_RELISTEN_S 1

struct rdma_listener {
	int kind; /* RDMA_KIND_LISTENER; first, as in every object of the fd table */
	int efd, tfd;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id; /* NULL while its device is gone */
	struct sockaddr_storage addr;
};

struct rdma_conn {
	int kind; /* RDMA_KIND_CONN */
	int outbound;
	int rfd, wfd;
	int rx_note, tx_note;   /* eventfds */
	int rx_noted, tx_noted; /* whether each is readable now */
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;      /* its device's (rdma_mem.c), shared */
	int dev_slot;           /* that device's slot in rdma_mem.c */
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	uint8_t *mem;  /* RDMA_RX_DEPTH receive buffers, then RDMA_TX_DEPTH send buffers */
	int state;     /* enum rdma_state */
	int err;       /* errno readv and writev report once the input is read (0: none) */
	char why[112]; /* err in words: the WC status or CM event behind it */
	int eof;       /* the peer disconnected */
	int removed;   /* its device went away (DEVICE_REMOVAL) */
	int want_room; /* writev or connect wait for room: tx_note tells when it comes */

	/* receive: buffers completed in arrival order, not yet read through */
	uint16_t rxq[RDMA_RX_DEPTH];    /* buffer index, by queue position */
	uint32_t rxlen[RDMA_RX_DEPTH];  /* bytes received, by queue position */
	unsigned rxq_head, rxq_count;
	size_t rx_off;                  /* bytes of the head buffer already read */
	uint16_t repost[RDMA_RX_DEPTH]; /* read through: to post again */
	unsigned nrepost;
	unsigned credits_owed;          /* receives posted again, not yet told to the peer */

	/* send: slot = sequence % RDMA_TX_DEPTH */
	unsigned credits;               /* receives the peer has posted for us */
	uint32_t msg_max;               /* bytes per SEND: min of both buffer sizes */
	uint64_t tx_posted, tx_done;    /* send WRs posted, and known complete */

	/* RDMA READs taken, oldest first (a ring), each posted in chunks; the
	 * bytes posted and not complete; the cookies of reads completed and not
	 * yet reported */
	struct rdma_read {
		uint64_t cookie, dst, raddr;
		uint32_t len, rkey, lkey;
		uint32_t posted, done;       /* bytes */
	} reads[RDMA_READ_DEPTH];
	unsigned read_head, nreads;
	uint32_t read_inflight;
	uint64_t reads_done[RDMA_READ_DEPTH];
	unsigned nreads_done;
	struct rdma_conn *reap_next;    /* rdma_reap.c's queue */
	double held_since;              /* rdma_reap.c: released, waiting for its port (0: not yet) */
};

/* rdma_fdtab.c: the object behind an fd the core holds (NULL: none). */
int rdma_fdtab_set(int fd, void *obj);
void *rdma_fdtab_get(int fd);
void rdma_fdtab_clear(int fd);

/* rdma_conn.c: a connection's life */
int rdma_conn_connect(const struct sockaddr *src, const struct sockaddr *dst, struct rdma_conn **out);
/* id: a CONNECT_REQUEST's, event acked; priv: its private data. On failure
 * the request is rejected and id destroyed. errno set on failure. */
int rdma_conn_accept(struct rdma_cm_id *id, const void *priv, size_t priv_len, struct rdma_conn **out);
/* Drain the CM channel: connect steps, failures, the end. */
void rdma_conn_cm_events(struct rdma_conn *c);
/* The first failure, as an errno and in words; later ones are its consequences. */
void rdma_conn_fail(struct rdma_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Off the fd table: the core has closed it. Any thread may free it then. */
void rdma_conn_unhook(struct rdma_conn *c);
/* Free the verbs resources and buffers (not the CM id): sends no MAD. */
void rdma_conn_release(struct rdma_conn *c);
/* A DEVICE_REMOVAL came (read from the CM channel now if need be). */
int rdma_conn_device_gone(struct rdma_conn *c);
void rdma_conn_free(struct rdma_conn *c);

/* rdma_io.c: the data path */
int rdma_io_post_recvs(struct rdma_conn *c, const uint16_t *idx, unsigned n);
/* Drain both channels, poll the CQ, post what was read, settle the notes. */
void rdma_conn_progress(struct rdma_conn *c);
/* Take what the completion queue holds (part of progress). */
void rdma_conn_poll_cq(struct rdma_conn *c);
/* Make the notes tell the truth (input or an end to report, room). */
void rdma_conn_settle(struct rdma_conn *c);
int rdma_conn_can_send(const struct rdma_conn *c);
/* Post SENDs of the bytes of iov (as many as credits and slots allow);
 * returns the bytes taken, or -1 with c->err set. */
ssize_t rdma_conn_send(struct rdma_conn *c, const struct iovec *iov, int iovcnt);
/* The head buffer was read through: post it again later, return credits. */
void rdma_conn_consume_head(struct rdma_conn *c);
/* Post the buffers read through again; a credit-only SEND if enough are owed. */
void rdma_conn_repost(struct rdma_conn *c);

/* rdma_mem.c: one PD per device, shared by its connections, and the
 * regions registered with it. rdma_dev_get takes a reference (the first
 * opens the PD and registers every known region), rdma_dev_put drops it
 * (the last deregisters them and frees the PD). errno set on failure. */
struct ml_tp_mem;
struct ibv_pd *rdma_dev_get(struct ibv_context *verbs, int *slot);
void rdma_dev_put(int slot);
/* The keys of region m on device slot: 0, or -1 if not registered there. */
int rdma_mem_key(const struct ml_tp_mem *m, int slot, uint32_t *lkey, uint32_t *rkey);

/* rdma_io.c: post an RDMA READ of len bytes at the peer's raddr/rkey into
 * dst (in region m); its cookie comes back through reads_done. 0, or -1
 * with errno (EAGAIN: every read slot is taken). */
int rdma_conn_read(struct rdma_conn *c, const struct ml_tp_mem *m, void *dst, uint32_t len,
		   uint64_t raddr, uint32_t rkey, uint64_t cookie);

/* rdma_reap.c: unhook c now, free it on the reaper thread (which may block). */
void rdma_reap(struct rdma_conn *c);
/* A device went away (DEVICE_REMOVAL) just now. The device is gone only
 * when every user has let go, librdmacm too: it keeps a context per device
 * and closes it when its device list is synced (rdma_get_devices) after
 * the device left it, which is after our ids are gone; so the reaper syncs
 * every RDMA_REAP_POLL_MS for RDMA_REMOVAL_SYNC_S. And for
 * RDMA_REMOVAL_HOLD_S nothing new may bind (rdma_removing): a connect or
 * listen made meanwhile can bind to the dying device and hold it. Without
 * either, `rdma link delete` did not return while the process lived. */
#define RDMA_REMOVAL_HOLD_S 2
#define RDMA_REMOVAL_SYNC_S 10
void rdma_removal_seen(void);
int rdma_removing(void);

#endif
