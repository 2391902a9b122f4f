/*
 * internal.h - the core's shared structures. Not installed.
 *
 * Ownership: a peer (session) and its paths belong to one worker; only that
 * worker's thread touches their mutable state. Other threads reach them by
 * queueing a command (struct ml_cmd) on the worker. Counters read by
 * ml_peer_stats_get() from any thread are written with ML_STAT_* (relaxed
 * atomics, single writer).
 */
#ifndef ML_INTERNAL_H
#define ML_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>
#define URCU_API_MAP /* rcu_read_lock() etc. map to the flavour below */
#include <urcu/urcu-bp.h> /* bulletproof: application threads need no registration */
#include <urcu/list.h>
#include <urcu/rculfhash.h>
#include <urcu/wfcqueue.h>

#include "msglayer.h"
#include "auth.h"
#include "seal.h"
#include "codec.h"
#include "pool.h"
#include "reasm.h"
#include "rxwin.h"
#include "wire.h"
#include "../transports/transport.h"
#include "../failover/flap.h"

#define ML_MAX_PATHS 16   /* per peer: outbound and inbound together */
#define ML_MAX_OUTBOUND 8 /* endpoints per peer */
#define ML_CTRL_BUF 16384 /* per-path buffer of pending control frames */
#define ML_RX_MARKS 64    /* delayed reads a path holds (fault injection) */
#define ML_TX_IOV 256     /* iovecs per writev */
#define ML_MSG_IOV_MAX 128 /* pieces of one message; more are copied (< ML_TX_IOV - 2) */
#define ML_TX_BATCH (4u << 20) /* bytes per writev */
#define ML_MSG_SMALL 128  /* ML_SEND_COPY payloads up to this size are kept in the message */
#define ML_STREAM_CAP_MIN (16u << 10) /* a path's share of stream chunks is never less */
#define ML_FRAGS_POOLED 16 /* fragment arrays of up to this many come from the worker's pool */
#define ML_REASM_SPARE 8  /* finished reassemblies a peer keeps for the next ones... */
#define ML_REASM_SPARE_BYTES (16u << 20) /* ...holding at most this many bytes of buffers */

#define ML_STAT_ADD(field, n) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define ML_STAT_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define ML_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct ml_ctx;
struct ml_worker;
struct ml_peer;
struct ml_path;

/* ---- commands from any thread to a worker ---- */

enum ml_cmd_type {
	ML_CMD_SEND = 1,   /* struct ml_msg_out */
	ML_CMD_ADD_PATHS,  /* struct ml_cmd_paths */
	ML_CMD_ATTACH,     /* struct ml_cmd_attach: an accepted, greeted connection */
	ML_CMD_LISTEN,     /* struct ml_listener */
	ML_CMD_FAULT,      /* struct ml_cmd_fault */
	ML_CMD_CANCEL,     /* struct ml_cmd_cancel */
	ML_CMD_PEER_DOWN,  /* struct ml_cmd_peer_down */
	ML_CMD_ROOM_CHECK, /* struct ml_cmd_peer: a refused sender may have missed on_room */
	ML_CMD_STREAM,     /* struct ml_cmd_stream (stream.c) */
	ML_CMD_STOP,       /* struct ml_cmd (cancel everything, leave the loop) */
};

struct ml_cmd {
	struct cds_wfcq_node node;
	int type;
};

struct ml_cmd_paths {
	struct ml_cmd cmd;
	struct ml_peer *peer;
	unsigned n;
	struct ml_endpoint eps[ML_MAX_OUTBOUND];
};

struct ml_cmd_attach {
	struct ml_cmd cmd;
	struct ml_peer *peer;
	int fd;
	const struct ml_transport_ops *ops;
	struct ml_hello hello;
	char url[ML_URL_MAX];
	int protect;                              /* enum ml_protect chosen in the handshake */
	uint8_t seal_c2a[32], seal_a2c[32];       /* its keys (protect > 0) */
};

struct ml_cmd_fault {
	struct ml_cmd cmd;
	struct ml_peer *peer;
	unsigned path_idx;
	struct ml_fault_spec spec;
};

struct ml_cmd_cancel {
	struct ml_cmd cmd;
	struct ml_peer *peer;
	uint64_t tag;
};

struct ml_cmd_peer {
	struct ml_cmd cmd;
	struct ml_peer *peer;
};

struct ml_cmd_peer_down {
	struct ml_cmd cmd;
	struct ml_peer *peer;
	char why[96];
};

/* ---- outgoing messages ---- */

enum ml_frag_state {
	ML_FRAG_IDLE = 0,  /* not queued anywhere (before dispatch or after ack) */
	ML_FRAG_PENDING,   /* on the session's fragment queue, waiting for a path */
	ML_FRAG_QUEUED,    /* on a path's send queue */
	ML_FRAG_SENT,      /* written on a path, waiting for the message's ack */
};

struct ml_frag {
	struct cds_list_head link; /* in peer->fragq, path->txq or path->inflight */
	struct ml_msg_out *msg;
	struct ml_path *path;
	uint32_t offset, len;
	uint8_t state;
	uint8_t waiting_bulk;      /* QUEUED bulk not begun: counted in path->bulk_waiting */
	ev_tstamp sent_at;         /* SENT: when it was written (failure evidence) */
	ev_tstamp queued_at;       /* when a path took it (rate estimate) */
	uint64_t ahead;            /* bytes on that path then, itself included */
	struct ml_path *lost_on;   /* written on this path before it failed: a resend */
	uint8_t zc;                /* queued as an RDESC: its payload on the wire is desc */
	uint8_t hdr[ML_WIRE_HDR_LEN];
	uint8_t desc[ML_RDESC_LEN];
};

struct ml_msg_out {
	struct ml_cmd cmd;         /* ML_CMD_SEND */
	struct ml_peer *peer;
	struct cds_list_head link; /* peer->waitq until it gets a sequence number */
	uint64_t seq;              /* 0 until first sent (rule 1) */
	uint64_t tag, ref;
	uint8_t kind;
	uint8_t wflags;            /* ML_FLAG_ABORT / ML_FLAG_CANCEL */
	uint8_t acked;
	uint8_t placed;            /* a fragment of it went to a path (dispatch) */
	int give_up;               /* status to complete with once acked (canceled, deadline, too big) */
	double deadline;           /* request: CLOCK_MONOTONIC seconds (0: none) */
	uint32_t deadline_us;      /* on the wire: time left when it got its number */
	ev_timer deadline_timer;
	uint32_t len;
	uint32_t nfrags;
	struct ml_frag *frags;
	struct iovec *iov;
	unsigned iovcnt;
	void *copy;                /* ML_SEND_COPY: owned copy of the payload (small, or malloc'd) */
	struct ml_request *req;    /* response: the request it answers (freed on the worker) */
	ml_response_cb rcb;
	ml_send_cb scb;
	void *arg;
	const struct ml_mem *zmem; /* its payload is bytes [zoff, zoff+len) of this registered
	                              region: it may go by RDMA READ (zcopy.c), else NULL */
	size_t zoff;
	struct ml_stream *stream;  /* the stream it belongs to (STREAM messages we send), or NULL */
	uint8_t urgent;            /* ahead of what waits for a number (stream control records) */
	struct ml_msg_out *hnext;  /* peer->await hash chain (requests awaiting response) */
	struct ml_frag frag1;      /* single-fragment messages need no allocation */
	struct iovec iov1[2];
	uint8_t small[ML_MSG_SMALL]; /* nor small copies (a response, an abort's reason) */
};

/* A stream's chunk (not its control records, which are urgent). */
static inline int ml_msg_is_chunk(const struct ml_msg_out *m)
{
	return m->stream && m->ref && m->kind == ML_KIND_ONEWAY;
}

/* Bulk gives way on a path: a small message queued after it is written
 * before it, so that what a request waits for on a busy path is at most the
 * fragment being written, not every chunk and large message queued there. */
static inline int ml_frag_is_bulk(const struct ml_frag *f)
{
	return ml_msg_is_chunk(f->msg) || f->msg->nfrags > 1;
}

/* ---- registered memory (mem.c) ---- */

/* A region is the process's, not the context's: the devices, their PDs and
 * the registrations are shared by every context (rdma_mem.c). */
struct ml_mem {
	void *base;
	size_t len;
	struct ml_tp_mem *tp; /* the transports' registration (rdma_mem.c) */
};

/* ---- paths ---- */

struct ml_path {
	struct ml_peer *peer;
	unsigned idx;          /* slot in peer->paths */
	int outbound;
	unsigned origin_idx;   /* outbound: our endpoint index; inbound: the connector's */
	struct ml_endpoint ep; /* outbound: where to connect */
	const struct ml_transport_ops *ops;
	int fd;
	int state;             /* enum ml_path_state */
	int connected;         /* transport connected (handshake may still run) */
	int greeted;           /* handshake complete */
	int auth_wait;         /* outbound: HELLO offered a key; the acceptor's challenge is due */
	int auth_failed;       /* an authentication failure was logged as an error (once per streak) */
	uint8_t auth_hello[ML_HELLO_MAX]; /* outbound: our HELLO payload, which the MACs cover */
	struct ml_key auth_key; /* outbound: the key our HELLO offered */
	struct ml_seal *seal;   /* protected connection: its records (NULL: frames as they are) */
	int seal_rx_wait;       /* outbound: input is sealed only after the HELLO_ACK */
	int counted_up;        /* counted in peer->paths_up (state UP) */
	int zcopy;             /* both ends can READ: RDESC frames go both ways (zcopy.c) */
	unsigned zc_posted;    /* RDMA READs in flight on this path */
	int held;              /* reconnect delayed by flap damping */
	ev_io rio, wio;
	ev_timer timer;        /* reconnect backoff / connect timeout */
	ev_timer heartbeat;    /* PING and liveness check, every heartbeat_interval_s */
	ev_timer probation;    /* end of probation */
	unsigned failures;     /* consecutive failed connects (backoff) */
	unsigned seed;
	ev_tstamp last_rx;     /* when anything was last received */
	ev_tstamp part_since;  /* a frame begun and not yet whole since then (0: none) */
	int beat_since_up;     /* a PING received since the handshake completed */
	ev_tstamp last_beat;   /* when our heartbeat timer last ran (loop lag check) */
	uint64_t peer_beat_ns; /* send time (peer's clock) of the newest PING received */
	struct ml_flap flap;

	/* injected fault (enum ml_fault, 0: none); it stays across reconnects */
	int fault;
	double fault_value;
	ev_timer fault_timer;  /* ends a fault with a duration */
	ev_timer rx_release;   /* DELAY/DROP: next held read becomes due */
	struct { uint64_t end; ev_tstamp due; } marks[ML_RX_MARKS];
	unsigned mark_head, mark_count;

	/* receive: stream positions count bytes read on this connection */
	uint8_t *rxbuf;
	size_t rxcap, rxlen, rxoff; /* bytes [rxoff, rxlen) not yet parsed */
	uint64_t rx_total;          /* bytes read so far */
	uint64_t rx_ready;          /* bytes that may be parsed (< rx_total while delayed) */

	/* send: write order is [rest of a part-written frame][ctrl][txq frames].
	 * The part-written frame is txq's head (head_written bytes out) or, if
	 * its message was acked meanwhile, a copy of its rest in tail. */
	uint8_t *tail;
	size_t tail_off, tail_len;
	uint8_t ctrl[ML_CTRL_BUF];
	size_t ctrl_off, ctrl_len;
	struct cds_list_head txq;      /* ml_frag, QUEUED: small messages, then bulk */
	struct ml_frag *bulk_mark;     /* txq's first bulk fragment not begun, or NULL:
					* small messages queue ahead of it (ml_frag_is_bulk) */
	uint64_t bulk_waiting;         /* bytes from bulk_mark on: what small ones pass */
	struct cds_list_head inflight; /* ml_frag, SENT */
	size_t head_written;           /* bytes of txq's first frag already written */
	int dirty;                     /* on worker->dirty_paths */
	struct cds_list_head dirty_link;
	uint64_t outstanding;          /* bytes of data frames queued or in flight */

	/* estimates for the scheduler */
	double srtt_s;
	double rtt_min_s;              /* lowest heartbeat RTT lately: the path without queues */
	unsigned rtt_min_age;          /* heartbeats since rtt_min_s was set */
	double rate_bps;

	struct ml_path_stats st; /* url and counters; read by other threads */
	pthread_mutex_t reason_lock; /* st.reason: written on transitions, read by stats */
};

/* ---- peers (sessions) ---- */

/* An incoming request until its response is processed on the worker (or the
 * context is destroyed); ml_respond may run on any thread, so the worker
 * alone links and frees it. */
struct ml_request {
	struct cds_list_head link; /* peer->open_requests */
	struct ml_peer *peer;
	uint64_t seq; /* the request's sequence number: the response's ref */
	uint64_t tag;
	uint64_t session_id; /* a response to an older session is not sent */
	double deadline;     /* CLOCK_MONOTONIC seconds (INFINITY: none) */
	int canceled;        /* the requester gave up (read from any thread) */
	/* A stream open (stream.c): the opener's terms, and a slot of
	 * max_streams held for it until it is accepted or refused. */
	uint8_t stream_dir;  /* enum ml_stream_dir; 0: an ordinary request */
	int stream_slot;
	uint32_t stream_chunk_max, stream_window;
};

struct ml_peer {
	struct ml_ctx *ctx;
	struct ml_worker *w;
	uint32_t node_id;
	struct ml_peer *all_next;      /* ctx->all_peers, for destruction */
	struct cds_lfht_node hnode;    /* ctx->peers */

	uint64_t my_inc;      /* our incarnation for this session (rule 6) */
	uint64_t peer_inc;    /* 0 until the first handshake */
	unsigned peer_codecs; /* ML_ACCEPT_* the peer announced (atomic: senders read it) */
	uint64_t session_id;  /* my_inc ^ peer_inc, in every frame header */
	int ended_status;     /* why the last session ended: for answers given to it later */
	uint32_t frag_size;   /* negotiated: min of both max_frag_payload */
	uint32_t peer_window; /* peer's receive window (messages) */
	uint32_t peer_max_msg;

	struct ml_path *paths[ML_MAX_PATHS];
	unsigned npaths, paths_up;
	unsigned n_outbound;
	unsigned rr_cursor;

	/* send side */
	struct cds_list_head waitq;  /* ml_msg_out without a seq */
	struct cds_list_head fragq;  /* ml_frag waiting for a path */
	uint64_t next_seq;           /* next sequence number to give */
	uint64_t oldest_unacked;     /* lowest seq not yet acked (== next_seq if none) */
	struct ml_msg_out **txring;  /* seq & txmask -> message in flight */
	uint32_t txmask;
	uint64_t inflight_msgs;      /* given a seq, not yet acked or failed */
	uint64_t inflight_bytes;
	struct ml_msg_out **await;   /* hash by request seq: requests awaiting a response */
	uint32_t await_mask;
	uint32_t await_count;
	uint64_t submitted;          /* all threads: messages accepted and not completed */
	uint64_t submitted_bytes;
	int want_room;               /* a send was refused: call on_room when there is room */

	/* receive side */
	struct cds_list_head open_requests; /* ml_request delivered, not yet answered */
	struct ml_rxwin rx;
	struct ml_reasm **reasm;     /* seq & rx mask -> message being reassembled */
	uint64_t reasm_bytes;        /* msg_len of each message in reassembly, summed */
	uint32_t reasm_msgs;         /* messages in reassembly */
	uint32_t requests_held;      /* requests delivered whose response is not complete */
	struct ml_reasm *reasm_spare[ML_REASM_SPARE]; /* finished: their buffers are reused */
	struct cds_list_head zc_reads; /* RDMA READs in flight or waiting (zcopy.c) */
	unsigned n_reasm_spare;
	uint64_t reasm_spare_bytes;
	int ack_due;                 /* deliveries (or duplicates) not yet acknowledged */
	int dirty;
	struct cds_list_head dirty_link;

	ev_timer session_timer;      /* all paths down with sends outstanding */
	uint64_t peer_beat_ns;       /* newest PING send time (peer's clock) on any path */
	uint64_t early_cancels[64];  /* CANCELs that overtook their request */
	unsigned n_early_cancels;

	struct cds_list_head streams; /* ml_stream, open here (worker only) */
	uint32_t nstreams;           /* all threads: streams and stream opens holding a slot */
	uint64_t next_stream_id;     /* all threads: the last stream number we gave */

	struct ml_peer_stats st;
};

/* ---- listeners, workers, context ---- */

struct ml_listener {
	struct ml_cmd cmd;
	struct ml_ctx *ctx;
	const struct ml_transport_ops *ops;
	int fd;
	unsigned port;
	int started;                     /* its worker watches it (and closes it) */
	ev_io io;
	struct ml_listener *next;        /* ctx->listeners, in ml_listen order */
	struct ml_listener *next_active; /* worker->listeners, started ones */
};

/* An accepted connection before its HELLO names the peer. */
struct ml_greeting {
	struct ml_ctx *ctx;
	struct ml_worker *w;
	const struct ml_transport_ops *ops;
	int fd;
	ev_io io;
	ev_timer timeout;
	int awaiting_auth;      /* HELLO taken, challenge sent: the connector's proof is next */
	struct ml_hello hello;  /* ... from this HELLO, */
	uint8_t hello_raw[ML_HELLO_MAX]; /* its first bytes, which the MACs cover, */
	struct ml_key key;      /* with the key it named */
	uint8_t nonce[ML_NONCE_LEN]; /* and our challenge, */
	int protect;            /* the protection we chose */
	size_t len;
	uint8_t buf[ML_WIRE_HDR_MAX + ML_WIRE_CTRL_MAX];
	char url[ML_URL_MAX];
	struct cds_list_head link;
};

struct ml_worker {
	struct ml_ctx *ctx;
	unsigned idx;
	struct ev_loop *loop;
	int own_loop;
	pthread_t thread;
	ev_async wake;
	ev_prepare flush;           /* batches: one write per path per loop turn */
	ev_idle spin;               /* busy_poll_us: while active, the loop polls without sleeping */
	double spin_until;          /* ev_time() until which it spins after the last activity */
	int active;                 /* messages moved since the last flush (not heartbeats) */
	struct cds_wfcq_head qhead;
	struct cds_wfcq_tail qtail;
	struct cds_list_head dirty_peers;
	struct cds_list_head dirty_paths;
	struct cds_list_head greetings;
	unsigned ngreetings;        /* on greetings (cfg.max_handshakes) */
	int greet_refusing;         /* refusing handshakes past the limit: logged once per episode */
	struct ml_listener *listeners;
	struct ml_pool msg_pool;    /* struct ml_msg_out of this worker's peers */
	struct ml_pool req_pool;    /* struct ml_request, taken on the worker */
	struct ml_pool frags_pool;  /* ML_FRAGS_POOLED struct ml_frag: a message of a few fragments */
	int stopped;
};

struct ml_ctx {
	struct ml_config cfg;
	uint64_t incarnation;
	unsigned nworkers;
	struct ml_worker *workers;
	struct cds_lfht *peers;     /* node id -> ml_peer, RCU (bulletproof flavour) */
	struct ml_peer *all_peers;  /* every peer, under admin_lock */
	unsigned npeers;            /* how many, under admin_lock (cfg.max_peers) */
	pthread_mutex_t admin_lock; /* listeners list and peer creation; never on the data path */
	struct ml_listener *listeners;
	unsigned nlisteners;
	struct ml_wire_limits limits;
	struct ml_admin *admin;     /* cfg.admin_socket's server, or NULL */
	struct ml_keyring keys;     /* cfg.key_file's keys: none, authentication is off */
	uint64_t reasm_bytes;       /* every peer's reasm_bytes, summed (atomic: all workers) */
};

/* ctx.c */
void ml_worker_post(struct ml_worker *w, struct ml_cmd *c);
int ml_on_worker_thread(const struct ml_worker *w);
void ml_log(struct ml_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 0 and *out; ML_ELIMIT (max_peers) or ML_ENOMEM with *out NULL. */
int ml_peer_get_or_create(struct ml_ctx *ctx, uint32_t node_id, struct ml_peer **out, int *created);
uint64_t ml_random64(void);

/* peer.c: sessions, reliability */
int ml_peer_init(struct ml_peer *p, struct ml_ctx *ctx, uint32_t node_id);
void ml_peer_fini(struct ml_peer *p);
void ml_peer_submit(struct ml_peer *p, struct ml_msg_out *m);
void ml_peer_mark_dirty(struct ml_peer *p);
void ml_peer_flush(struct ml_peer *p);
void ml_peer_on_path_up(struct ml_peer *p);
void ml_peer_on_path_down(struct ml_peer *p);
void ml_peer_take_back(struct ml_peer *p, struct cds_list_head *frags);
int ml_peer_check_incarnation(struct ml_peer *p, const struct ml_hello *h, struct ml_path *via);
void ml_peer_on_ack(struct ml_peer *p, const struct ml_ack *a);
int ml_peer_on_data(struct ml_peer *p, struct ml_path *path, const struct ml_frame_hdr *h,
		    const uint8_t *payload);
/* The steps of a DATA fragment, for zcopy.c too. frag_admit: 1 (new), 0
 * (a duplicate, acked again) or -1 (breaks the rules). reasm_get: the
 * reassembly of h's message, made if need be; NULL with *rc (0: the
 * session was closed for a limit; -1: breaks the rules). reasm_done: the
 * message is whole: deliver it; 0 or -1 as on_data. reasm_destroy: free r
 * (or hand it to zcopy.c while READs write into it). */
int ml_peer_frag_admit(struct ml_peer *p, const struct ml_frame_hdr *h);
struct ml_reasm *ml_peer_reasm_get(struct ml_peer *p, const struct ml_frame_hdr *h, int *rc);
int ml_peer_reasm_done(struct ml_peer *p, const struct ml_frame_hdr *h, struct ml_reasm *r);
void ml_peer_reasm_destroy(struct ml_peer *p, struct ml_reasm *r);
void ml_peer_cancel_all(struct ml_peer *p, int status);
void ml_peer_declared_down(struct ml_peer *p, const char *why);
int ml_peer_room_again(const struct ml_peer *p);
void ml_peer_room_check(struct ml_peer *p);
void ml_peer_complete(struct ml_peer *p, struct ml_msg_out *m, int status, const struct ml_msg *resp);
struct ml_msg_out *ml_peer_await_take(struct ml_peer *p, uint64_t seq);
double ml_mono_now(void);

/* zcopy.c: RDESC fragments pulled with RDMA READ (doc/rdma.md "Zero copy").
 * on_desc: an RDESC arrived on path: 0, or -1 with the path failed.
 * poll: READs of path that completed (a sign of life of the path: a READ's
 * data may hold up the peer's frames on the wire). path_failed: its READs are void (its
 * connection is closed). reasm_keep: 1 if READs still write into r (it is
 * freed when they end). peer_fini: forget every READ (paths closed). */
int ml_zc_on_desc(struct ml_peer *p, struct ml_path *path, const struct ml_frame_hdr *h,
		  const uint8_t *payload);
unsigned ml_zc_poll(struct ml_path *path); /* how many completed */
void ml_zc_path_failed(struct ml_path *path);
int ml_zc_reasm_keep(struct ml_peer *p, struct ml_reasm *r);
void ml_zc_peer_fini(struct ml_peer *p);

/* stream.c: bulk streams over the session (doc/streams.md) */
struct ml_cmd_stream;
void ml_stream_run_cmd(struct ml_cmd_stream *c);
void ml_stream_drop_cmd(struct ml_cmd_stream *c); /* the context stopped first */
void ml_stream_open_request(struct ml_peer *p, struct ml_request *req, const struct ml_msg *msg);
void ml_stream_answered(struct ml_peer *p, struct ml_msg_out *m, unsigned flags,
			const struct ml_msg *msg);
void ml_stream_received(struct ml_peer *p, const struct ml_frame_hdr *h, const void *data,
			uint32_t len);
void ml_stream_fail_all(struct ml_peer *p, int status);
void ml_stream_release_slot(struct ml_peer *p);

/* api.c: building, admitting and posting messages (also for stream.c) */
struct ml_msg_out *ml_msg_build(struct ml_peer *p, const struct ml_buf *bufs, unsigned nbufs,
				unsigned flags, int *err);
int ml_msg_admit(struct ml_peer *p, uint32_t len, int exempt);

/* cancel.c: deadlines, cancellation, aborts */
void ml_cancel_start_deadline(struct ml_peer *p, struct ml_msg_out *m);
void ml_cancel_by_tag(struct ml_peer *p, uint64_t tag);
void ml_cancel_received(struct ml_peer *p, uint64_t ref);
int ml_cancel_arrived_early(struct ml_peer *p, uint64_t seq);
void ml_msg_free(struct ml_msg_out *m);

/* api.c: a zeroed message for peer p from its worker's pool (any thread) */
struct ml_msg_out *ml_msg_alloc(struct ml_peer *p);
/* Free m's owned copy of its payload, if it has one. */
void ml_msg_drop_copy(struct ml_msg_out *m);

/* path.c: connections, framing, batching */
struct ml_path *ml_path_new(struct ml_peer *p, int outbound, unsigned origin_idx, const char *url);
void ml_path_start_connect(struct ml_path *path);
void ml_path_attach(struct ml_path *path, const struct ml_cmd_attach *ca);
void ml_path_fail(struct ml_path *path, int status, const char *why);
/* Best effort: a CLOSE(status, why) if the stream is at a frame boundary and
 * the socket takes it at once; the caller fails the path next. */
void ml_path_send_close(struct ml_path *path, int status, const char *why);
void ml_path_free(struct ml_path *path);
void ml_path_flush(struct ml_path *path);
int ml_path_send_ctrl(struct ml_path *path, uint8_t type, const void *payload, uint32_t len);
void ml_path_queue_frag(struct ml_path *path, struct ml_frag *f);
void ml_path_unqueue_frag(struct ml_path *path, struct ml_frag *f);
void ml_path_apply_fault(struct ml_path *path, const struct ml_fault_spec *spec);
void ml_path_waive_damping(struct ml_path *path);

/* admin.c: the admin socket (cfg.admin_socket) and its thread */
#define ML_ADMIN_PROTOCOL 1      /* version of the admin socket's protocol (doc/mlctl.md) */
#define ML_ADMIN_LINE_MAX 4096   /* longest request line, newline included */
struct ml_admin;
/* Bind and listen at path (a stale socket file is replaced, a live one is
 * ML_EEXIST; too long: ML_EINVAL), then serve it from a thread of its own. */
int ml_admin_open(struct ml_ctx *ctx, const char *path, struct ml_admin **out);
/* Stop the thread, close the socket and remove its file (if still ours). */
void ml_admin_close(struct ml_admin *a);
const char *ml_admin_path(const struct ml_admin *a);

/* admin_cmd.c: one request line (NUL-terminated, split in place) in, one
 * JSON answer out (malloc'd, newline-terminated, its length in *len), or
 * NULL when out of memory. Any thread: uses the public API only. */
char *ml_admin_run(struct ml_ctx *ctx, char *line, size_t *len);
char *ml_admin_error(int code, const char *error, const char *detail, size_t *len);

/* listen.c: accept and greet */
void ml_listener_start(struct ml_worker *w, struct ml_listener *l);
/* Greet an open connection as an accepted one is greeted (on the thread of
 * w, worker 0); the handshake's fuzz target hands it one end of a
 * socketpair. Takes fd over; returns 0, or ML_ENOMEM and fd is not taken. */
int ml_greet(struct ml_worker *w, const struct ml_transport_ops *ops, int fd, const char *url);
void ml_listeners_stop(struct ml_worker *w);

#endif
