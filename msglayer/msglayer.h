/*
 * msglayer.h - multipath, reliable, tagged messages between cluster nodes.
 *
 * One context per process (or per service). A context listens on endpoints and
 * knows peers; each peer is reached over one path per endpoint. Messages are
 * delivered exactly once per session, as soon as they are whole, in no global
 * order. A path that breaks costs a resend of what was in flight on it.
 *
 * Threading: every function here is thread-safe unless it says otherwise.
 * Callbacks run on the worker thread that owns the peer (or on the thread that
 * runs the caller's own libev loop in embedded mode) and must not block.
 *
 * Errors: functions return 0 (ML_OK) or a negative ML_E* status; completions
 * carry a status too. ml_strerror() gives the text of any status.
 *
 * doc/api.md is the reference with examples; this header is the contract.
 */
#ifndef MSGLAYER_H
#define MSGLAYER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ML_VERSION_MAJOR 0
#define ML_VERSION_MINOR 1

/* ---- status codes ------------------------------------------------------ */

enum ml_status {
	ML_OK = 0,
	ML_EINVAL = -1,       /* an argument is wrong (NULL, out of range, bad URL) */
	ML_ENOMEM = -2,       /* out of memory */
	ML_EAGAIN = -3,       /* send queue of the peer is full; retry after on_room */
	ML_ETOOBIG = -4,      /* message larger than max_msg_size */
	ML_ETIMEDOUT = -5,    /* every path stayed down past session_timeout */
	ML_EPEERRESTART = -6, /* the peer restarted (new incarnation) before answering */
	ML_EPEERDOWN = -7,    /* the peer was declared gone */
	ML_ECANCELED = -8,    /* the context was destroyed before completion */
	ML_EPROTO = -9,       /* the peer broke the wire protocol */
	ML_EVERSION = -10,    /* no protocol version in common with the peer */
	ML_EADDR = -11,       /* address cannot be resolved, bound or connected */
	ML_ESYS = -12,        /* a system call failed (see the log for errno) */
	ML_EEXIST = -13,      /* already there (listening twice on one URL, ...) */
	ML_ENOENT = -14,      /* no such peer or path */
	ML_ENOTCONN = -15,    /* the path is not up */
	ML_ENODE = -16,       /* the peer announced another node id than expected */
	ML_EABORTED = -17,    /* the peer's handler aborted the request (resp holds its reason) */
	ML_EDEADLINE = -18,   /* the request's deadline passed before its response came */
	ML_EAUTH = -19,       /* the peer failed authentication (no, another or a wrong cluster key) */
	ML_EKEY = -20,        /* the cluster key file is missing, malformed or readable by others */
	ML_ELIMIT = -21,      /* a configured limit is reached (max_peers, max_streams, or a limit
	                         on what a peer may make us hold: the session was closed) */
};

/* Text for any status above (never NULL; unknown codes get a generic text). */
const char *ml_strerror(int status);
/* The status's name, "ML_EAUTH" (never NULL; "ML_EUNKNOWN" for others): for
 * logs and JSON that scripts read. */
const char *ml_status_name(int status);

/* ---- buffer references --------------------------------------------------- */

enum ml_buf_type {
	ML_BUF_PLAIN = 1, /* base points to memory; bytes [offset, offset+length) */
	ML_BUF_IOV = 2,   /* base points to a struct iovec[iovcnt]; the bytes
	                     [offset, offset+length) of their concatenation */
	ML_BUF_MEM = 3,   /* base is an ml_mem (ml_mem_register); the bytes
	                     [offset, offset+length) of its region */
};

struct ml_buf {
	uint32_t type;   /* enum ml_buf_type */
	uint32_t iovcnt; /* ML_BUF_IOV: number of entries at base */
	const void *base;
	size_t offset;
	size_t length;
};

/* Convenience constructors. */
static inline struct ml_buf ml_buf_plain(const void *p, size_t len)
{
	struct ml_buf b = { ML_BUF_PLAIN, 0, p, 0, len };
	return b;
}
struct iovec;
struct ml_buf ml_buf_iov(const struct iovec *iov, unsigned iovcnt);

/* ---- registered memory (doc/api.md, doc/rdma.md "Zero copy") ------------- */

typedef struct ml_mem ml_mem; /* a registered region */

/* A reference to bytes [offset, offset+len) of m. */
static inline struct ml_buf ml_buf_mem(const ml_mem *m, size_t offset, size_t len)
{
	struct ml_buf b = { ML_BUF_MEM, 0, m, offset, len };
	return b;
}

/* ---- handles ------------------------------------------------------------- */

typedef struct ml_ctx ml_ctx;         /* a context: node id, workers, listeners, peers */
typedef struct ml_peer ml_peer;       /* a remote node and our session with it */
typedef struct ml_request ml_request; /* an incoming request waiting for its response */
typedef struct ml_stream ml_stream;   /* a bulk stream (doc/streams.md) */

/* Register [base, base+len) for zero copy: with every RDMA device this
 * process uses, and with those it opens later (at their first connection).
 * Without RDMA it only records the range: cheap, and the same code runs
 * everywhere. A message whose payload is one ML_BUF_MEM buffer of at least
 * cfg.zcopy_min bytes goes to a peer over an RDMA path as a descriptor, and
 * the peer pulls the bytes with RDMA READ: no copy at either end. Over TCP
 * (or to a peer that cannot READ) it goes as usual. The region must stay
 * valid until ml_mem_unregister. Errors: ML_EINVAL (NULL, len 0),
 * ML_ENOMEM. */
int ml_mem_register(ml_ctx *ctx, void *base, size_t len, ml_mem **out);
/* Deregister: no send that refers to m may still be outstanding. NULL: no-op. */
void ml_mem_unregister(ml_mem *m);
/* The region's start and length. */
void *ml_mem_base(const ml_mem *m);
size_t ml_mem_len(const ml_mem *m);

/* Delivered message: the payload is valid only until the callback returns. */
struct ml_msg {
	uint64_t tag;
	const void *data;
	size_t len;
};

/* A response arrived (status ML_OK, resp set) or the request failed (resp NULL). */
typedef void (*ml_response_cb)(void *arg, int status, const struct ml_msg *resp);
/* A one-way message or a response was acknowledged by the peer (ML_OK) or failed. */
typedef void (*ml_send_cb)(void *arg, int status);
/* A request arrived: answer it with ml_respond(), now or later, from any thread. */
typedef void (*ml_request_cb)(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg);
/* A one-way message arrived. */
typedef void (*ml_message_cb)(void *arg, ml_peer *from, const struct ml_msg *msg);
/* A peer that refused a send with ML_EAGAIN has room again. */
typedef void (*ml_room_cb)(void *arg, ml_peer *peer);
/* The requester canceled req (ml_request_cancel, or its deadline passed):
 * stop working on it. req stays valid: still answer it (ml_respond or
 * ml_request_abort) to free it; that answer is dropped by the requester. */
typedef void (*ml_cancel_cb)(void *arg, ml_peer *from, ml_request *req);
/* A stream open request arrived (ml_stream_open on the peer): accept it with
 * ml_stream_accept(), or refuse it with ml_request_abort(), now or later.
 * dir is the opener's enum ml_stream_dir. */
typedef void (*ml_stream_request_cb)(void *arg, ml_peer *from, ml_request *req, int dir,
				     const struct ml_msg *msg);
/* A path changed state (enum ml_path_state); reason says why, in words. */
typedef void (*ml_path_event_cb)(void *arg, ml_peer *peer, unsigned path_idx, int old_state,
				 int new_state, const char *reason);

enum ml_log_level { ML_LOG_ERR = 0, ML_LOG_WARN = 1, ML_LOG_INFO = 2, ML_LOG_DEBUG = 3 };
typedef void (*ml_log_cb)(void *arg, int level, const char *text);

enum ml_sched_policy {
	ML_SCHED_ADAPTIVE = 0, /* each fragment to the path that delivers it soonest */
	ML_SCHED_ROUND_ROBIN = 1,
};

/* Protection of the frames on a path once the handshake authenticated it
 * (doc/security.md): none beyond the handshake; integrity (every byte is
 * authenticated, AES-256-GCM used as GMAC); or integrity and confidentiality
 * (AES-256-GCM). */
enum ml_protect {
	ML_PROTECT_NONE = 0,
	ML_PROTECT_MAC = 1,
	ML_PROTECT_ENCRYPT = 2,
};
/* "none", "mac", "encrypt"; ml_protect_parse gives the mode or ML_EINVAL. */
const char *ml_protect_name(int protect);
int ml_protect_parse(const char *name);

/* Codecs of compressed messages (ML_SEND_LZ4, ML_SEND_ZSTD; cfg.accept_codecs). */
enum ml_codec {
	ML_CODEC_NONE = 0,
	ML_CODEC_LZ4 = 1,
	ML_CODEC_ZSTD = 2,
};
#define ML_ACCEPT_LZ4 (1u << ML_CODEC_LZ4)
#define ML_ACCEPT_ZSTD (1u << ML_CODEC_ZSTD)

/* ---- context -------------------------------------------------------------- */

struct ev_loop;

struct ml_config {
	uint32_t node_id;      /* required, non-zero; unique in the cluster */
	uint64_t incarnation;  /* 0: a random number is drawn */
	unsigned workers;      /* worker threads (default 1); ignored when loop is set */
	struct ev_loop *loop;  /* embedded mode: run on the caller's loop, no threads */

	/* Limits (0 keeps the default). */
	uint32_t max_frag_payload;    /* bytes per frame payload (64 KiB; 4 KiB..16 MiB) */
	uint32_t max_msg_size;        /* largest message (64 MiB) */
	uint32_t zcopy_min;           /* messages in registered memory (ML_BUF_MEM) from this size
	                                 on go by RDMA READ on RDMA paths (64 KiB; >= 4 KiB) */
	uint32_t max_inflight_msgs;   /* per peer: unacknowledged messages (1024) */
	uint64_t max_inflight_bytes;  /* per peer: unacknowledged bytes (64 MiB) */
	uint32_t max_queued_msgs;     /* per peer: waiting beyond in flight (8192) */
	uint64_t max_queued_bytes;    /* per peer: waiting beyond in flight (256 MiB) */
	uint64_t path_max_outstanding;/* per path: bytes written, not yet acked (8 MiB) */
	uint32_t max_peers;           /* peers (sessions) per context (4096): a node that connects
	                                 beyond it is refused, ml_peer_add fails with ML_ELIMIT */
	/* What a peer may make us hold (doc/security.md): past one of these the
	 * peer gets CLOSE(ML_ELIMIT) on every path, the session ends and what
	 * was outstanding to it completes with ML_ELIMIT. */
	uint64_t max_reasm_bytes;     /* per peer: bytes of the messages in reassembly
	                                 (0: 2 x max_inflight_bytes + max_msg_size) */
	uint32_t max_reasm_msgs;      /* per peer: messages in reassembly at once
	                                 (0: max_inflight_msgs) */
	uint64_t max_ctx_reasm_bytes; /* every peer together: bytes in reassembly (1 GiB) */
	uint32_t max_open_requests;   /* per peer: requests received whose response is not yet
	                                 acknowledged (16384) */
	uint32_t max_handshakes;      /* accepted connections still in their handshake (1024):
	                                 one more gets CLOSE(ML_ELIMIT) at once */
	double handshake_timeout_s;   /* an accepted connection completes its handshake within
	                                 this (5 s), else CLOSE(ML_ETIMEDOUT) */
	double frame_timeout_s;       /* a frame begun on a path must be whole within this (10 s),
	                                 else the path fails with ML_ETIMEDOUT */
	unsigned sched_policy;        /* enum ml_sched_policy */
	unsigned busy_poll_us;        /* after traffic, a worker polls without sleeping this long
	                                 (0: never, the default): lower latency for a core's worth
	                                 of CPU while traffic flows */

	double reconnect_min_s;       /* first reconnect delay (0.01 s) */
	double reconnect_max_s;       /* backoff cap (2 s) */
	double session_timeout_s;     /* all paths down this long fails outstanding sends (30 s) */

	/* Failure detection (doc/failover.md). */
	double heartbeat_interval_s;  /* PING on every connected path (0.01 s) */
	double path_down_s;           /* silence that declares a path down; 0: from the measured
	                                 RTT: 3 heartbeats + 4 RTT, at least 0.03 s */
	double all_silent_down_s;     /* when no path of the peer is heard either (the peer or
	                                 this process may just be slow): wait this long (2 s) */
	double probation_s;           /* a path that flapped answers heartbeats this long
	                                 before it carries data again (0.5 s) */
	double flap_window_s;         /* a path that fails again within this time of coming
	                                 up is flapping (5 s) */
	double flap_hold_max_s;       /* longest hold-out of a flapping path (10 s); the hold
	                                 starts at reconnect_min_s and doubles per flap */
	double tcp_user_timeout_s;    /* TCP_USER_TIMEOUT and keepalive on TCP paths (5 s) */

	/* Streams (doc/streams.md). */
	uint32_t max_streams;         /* per peer: open streams, both ways, opened and accepted (64) */
	uint32_t stream_chunk_max;    /* largest chunk we send or take (16 KiB; >= 4 KiB, and
	                                 max_msg_size if that is smaller); a stream uses the
	                                 smaller of both sides' values */
	uint32_t stream_window;       /* chunks a receiving stream grants ahead of what it
	                                 delivered (64): the bytes in flight per stream */
	uint64_t stream_path_max;     /* most of a path's share of stream chunks (1 MiB); the share
	                                 is twice its bandwidth-delay product, at least 16 KiB
	                                 (doc/streams.md, Latency next to streams) */

	const char *admin_socket;     /* Unix socket for mlctl (NULL: none) */
	const char *key_file;         /* cluster key (ml-keygen): every path authenticates
	                                 with it; NULL: no authentication (doc/security.md) */
	int protect;                  /* enum ml_protect: the least protection this node sends
	                                 and accepts on a path (needs key_file); a path gets the
	                                 stronger of its two ends' settings (default NONE) */

	int accept_unknown_peers;     /* 1 (default): a node that connects becomes a peer */
	unsigned accept_codecs;       /* ML_ACCEPT_* bits: the codecs peers may compress with when
	                                 they send to us (default both; 0: none) */

	/* Callbacks (all optional; arg is passed back). */
	ml_request_cb on_request;
	ml_message_cb on_message;
	ml_room_cb on_room;
	ml_cancel_cb on_cancel;
	ml_path_event_cb on_path_event;
	ml_stream_request_cb on_stream; /* stream opens; NULL: every open is refused */
	void *cb_arg;
	ml_log_cb log;                /* default: stderr, level from $ML_LOG_LEVEL (warn) */
	void *log_arg;
	int log_level;                /* highest level passed to log (ML_LOG_WARN) */
};

/* Fill cfg with defaults (node_id 0: the caller must set it). */
void ml_config_init(struct ml_config *cfg);

/* Create a context. Starts the worker threads (or attaches to cfg->loop). */
int ml_ctx_create(const struct ml_config *cfg, ml_ctx **out);

/* Close every path and listener, complete every outstanding send and request
 * with ML_ECANCELED (callbacks run before this returns), stop the workers and
 * free everything. Must not be called from a callback. */
void ml_ctx_destroy(ml_ctx *ctx);

uint32_t ml_ctx_node_id(const ml_ctx *ctx);
/* Read the cluster key file again (NULL: authentication off), for key
 * rotation without dropping sessions: established paths stay, new ones use
 * the new keys (doc/security.md). Errors: ML_EINVAL, ML_EKEY (the old keys
 * stay; the reason is logged). */
int ml_ctx_reload_key(ml_ctx *ctx, const char *key_file);
/* Check a cluster key file as ml_ctx_create would read it. 0: text gets the
 * id of the key it offers in hex (the name the handshake and the logs use).
 * ML_EKEY: text gets the reason. ML_EINVAL: NULL argument. */
int ml_key_file_check(const char *key_file, char *text, size_t len);
uint64_t ml_ctx_incarnation(const ml_ctx *ctx);

/* Listen on "tcp://host:port" or "rdma://host:port" (port 0 picks one; see
 * ml_listen_port). Several endpoints per context are allowed; each accepts
 * paths from any peer. Errors: ML_EINVAL (bad URL), ML_EADDR (cannot bind,
 * no RDMA device), ML_EEXIST. */
int ml_listen(ml_ctx *ctx, const char *url);
/* Port actually bound by the n-th ml_listen call (0-based), or 0. */
unsigned ml_listen_port(ml_ctx *ctx, unsigned n);

/* Declare a peer and the endpoints to reach it ("tcp://10.0.1.5:7400", ...):
 * one path per endpoint, connected (and re-connected) in the background.
 * Calling it again for the same node adds endpoints. A node that connected
 * to us first is already a peer: this returns that handle.
 * Errors: ML_EINVAL (bad URL, node 0 or our own id, too many paths). */
int ml_peer_add(ml_ctx *ctx, uint32_t node_id, const char *const *urls, unsigned n_urls,
		ml_peer **out);
/* Declare the peer gone, as a membership service (Corosync) reports a node
 * that left: instead of waiting for the session timeout, every message
 * outstanding to it (sent or queued) completes with ML_EPEERDOWN, its
 * paths close and reconnect with their backoff, and the session starts
 * over, so a node that comes back gets a fresh one; answers still owed to it
 * complete with ML_EPEERDOWN too. It acts on the peer's worker soon after
 * this returns (called on that worker's thread, as in a callback or in
 * embedded mode: when control is back in its loop); what is outstanding
 * then fails, later sends go to the new session. why (may be NULL) goes
 * into the log. Errors: ML_EINVAL, ML_ENOMEM. */
int ml_peer_declare_down(ml_peer *peer, const char *why);
/* Find a known peer (NULL if none). */
ml_peer *ml_peer_find(ml_ctx *ctx, uint32_t node_id);
/* Up to max known peers into out, in no particular order; returns how many
 * there are in all (may exceed max). Peers live as long as the context. */
unsigned ml_ctx_peers(ml_ctx *ctx, ml_peer **out, unsigned max);
uint32_t ml_peer_node_id(const ml_peer *peer);

/* ---- messages --------------------------------------------------------------- */

enum ml_send_flags {
	ML_SEND_COPY = 1, /* copy the payload now; the caller may reuse it at once */
	ML_SEND_LZ4 = 2,  /* compress with LZ4 (fast), if the peer accepts it and it pays */
	ML_SEND_ZSTD = 4, /* compress with zstd (smaller), likewise; LZ4 wins if both are set */
};
/* A compressed message is compressed whole, on the sending thread, into a
 * copy (so the caller may reuse its memory at once, as with ML_SEND_COPY);
 * the receiver gets it expanded. Data that does not get smaller goes as it
 * is, and so does every message to a peer that did not accept the codec in
 * its handshake (or before the first handshake). doc/api.md. */

/* Send a request. Without ML_SEND_COPY the payload memory must stay valid and
 * unchanged until cb runs. cb runs exactly once: with the response, or with an
 * error (ML_EPEERRESTART, ML_ETIMEDOUT, ML_ECANCELED, ...).
 * Immediate errors (cb not called): ML_EINVAL, ML_ETOOBIG, ML_EAGAIN. */
int ml_request_send(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs, unsigned nbufs,
		    unsigned flags, ml_response_cb cb, void *arg);

/* Answer a request with the same tag. Call it exactly once per request (also
 * when the answer is empty), from any thread; it consumes req. cb (optional)
 * runs when the requester acknowledged the response, or with the status that
 * ended the session the request came on, if it ended meanwhile
 * (ML_EPEERRESTART, ML_EPEERDOWN, ML_ETIMEDOUT).
 * Errors: ML_EINVAL (req NULL or bad buffers), ML_ETOOBIG; on such an error
 * req is still consumed and an empty response is sent instead, so that the
 * requester never waits for nothing. Requests not answered when the context
 * is destroyed are freed by ml_ctx_destroy: do not use them afterwards. */
int ml_respond(ml_request *req, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
	       ml_send_cb cb, void *arg);
uint64_t ml_request_tag(const ml_request *req);

/* Like ml_request_send, with a deadline timeout_s seconds from now (> 0): if
 * no response came by then, cb runs with ML_EDEADLINE and the peer is told
 * to stop (its on_cancel runs). The deadline travels with the request. */
int ml_request_send_deadline(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs,
			     unsigned nbufs, unsigned flags, double timeout_s, ml_response_cb cb,
			     void *arg);
/* Cancel this peer's outstanding requests with this tag: each cb runs with
 * ML_ECANCELED (on the peer's worker, soon after this returns); a request
 * that already reached the peer is canceled there too (on_cancel). A
 * response that crosses the cancel is dropped. Returns 0 or ML_EINVAL. */
int ml_request_cancel(ml_peer *peer, uint64_t tag);
/* Handler side: end req without serving it; the requester's cb gets
 * ML_EABORTED with resp holding reason (UTF-8, may be NULL). Consumes req
 * like ml_respond; cb as for ml_respond. */
int ml_request_abort(ml_request *req, const char *reason, ml_send_cb cb, void *arg);
/* Handler side: seconds left before the requester's deadline (negative:
 * passed; INFINITY: the request has none). */
double ml_request_time_left(const ml_request *req);
/* Handler side: 1 if the requester canceled req (see on_cancel). */
int ml_request_canceled(const ml_request *req);

/* Send a one-way message; cb (optional) runs when the peer acknowledged it. */
int ml_message_send(ml_peer *peer, uint64_t tag, const struct ml_buf *bufs, unsigned nbufs,
		    unsigned flags, ml_send_cb cb, void *arg);

/* ---- streams (doc/streams.md) ---------------------------------------------------------
 * A stream is opened by a request and accepted by its response; then chunks
 * flow one way, in order, with credit-based flow control, over every path.
 * Either side may cancel it at any time with a reason; a clean end is a
 * handshake (the sender closes, the receiver confirms), so that an error
 * raised at the last moment reaches the sender. Every callback runs on the
 * peer's worker; on_end runs exactly once per stream, last. */

enum ml_stream_dir {
	ML_STREAM_OUT = 1, /* the opener sends, the acceptor receives */
	ML_STREAM_IN = 2,  /* the acceptor sends, the opener receives */
};

struct ml_stream_cbs {
	/* Opener: the peer accepted; resp is its answer's payload. */
	void (*on_open)(void *arg, ml_stream *s, const struct ml_msg *resp);
	/* Receiver: the next chunk, in order; chunk->tag is its number (1, 2, ...),
	 * chunk->data is valid until the callback returns. */
	void (*on_chunk)(void *arg, ml_stream *s, const struct ml_msg *chunk);
	/* Sender: credit is back after ml_stream_send returned ML_EAGAIN. */
	void (*on_room)(void *arg, ml_stream *s);
	/* Receiver: the sender closed and every chunk was delivered. Confirm with
	 * ml_stream_finish, or refuse with ml_stream_cancel (the sender's on_end
	 * gets ML_EABORTED and the reason). NULL: confirmed at once. */
	void (*on_finish)(void *arg, ml_stream *s);
	/* Both sides, exactly once, last: ML_OK (the end was confirmed),
	 * ML_ECANCELED (canceled here, or the context is being destroyed),
	 * ML_EABORTED (the peer refused or canceled; reason is its text),
	 * ML_ELIMIT (the peer's max_streams), ML_EPROTO (the peer broke the
	 * stream protocol), ML_EPEERRESTART, ML_ETIMEDOUT, ML_EPEERDOWN (the
	 * session ended). reason is never NULL. */
	void (*on_end)(void *arg, ml_stream *s, int status, const char *reason);
};

/* Open a stream to peer: a request with tag and payload bufs (flags as for
 * ml_request_send) that the peer's on_stream gets. cbs is copied. *out is
 * the handle; it stays valid until ml_stream_release. Errors (no callback
 * then, *out untouched): ML_EINVAL, ML_ETOOBIG, ML_ENOMEM, ML_ELIMIT
 * (max_streams streams to this peer are open). */
int ml_stream_open(ml_peer *peer, uint64_t tag, int dir, const struct ml_buf *bufs, unsigned nbufs,
		   unsigned flags, const struct ml_stream_cbs *cbs, void *arg, ml_stream **out);
/* Accept a stream request (from on_stream): answers it with bufs and makes
 * the stream (*out, valid until ml_stream_release). Consumes req. Errors:
 * ML_EINVAL (req NULL or not a stream request: req is not consumed),
 * ML_ENOMEM. */
int ml_stream_accept(ml_request *req, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
		     const struct ml_stream_cbs *cbs, void *arg, ml_stream **out);
/* Sender: queue one chunk (at most ml_stream_chunk_max bytes; flags and
 * memory rules as for ml_message_send); cb (optional) runs when the peer
 * has it, or with the stream's end status. Errors: ML_EAGAIN (no credit yet:
 * on_room follows), ML_ETOOBIG, ML_EINVAL (not the sending side, or after
 * ml_stream_close), ML_ENOTCONN (the stream has ended), ML_ENOMEM. */
int ml_stream_send(ml_stream *s, const struct ml_buf *bufs, unsigned nbufs, unsigned flags,
		   ml_send_cb cb, void *arg);
/* Sender: no more chunks; the end handshake starts after the last one. */
int ml_stream_close(ml_stream *s);
/* Receiver: confirm the end after on_finish (the stream then ends ML_OK). */
int ml_stream_finish(ml_stream *s);
/* Either side, any time: end the stream now (on_end: ML_ECANCELED here,
 * ML_EABORTED with reason at the peer). Nothing happens if it has ended. */
int ml_stream_cancel(ml_stream *s, const char *reason);
/* Give the handle back; callbacks still due (on_end) still run. */
void ml_stream_release(ml_stream *s);
/* Largest chunk of this stream (0 until the open is answered). */
size_t ml_stream_chunk_max(const ml_stream *s);
ml_peer *ml_stream_peer(const ml_stream *s);

/* Blocking wrappers, for application threads (never a worker's: ML_EINVAL).
 * ml_stream_write sends len bytes as chunks, waiting for the open and for
 * credit, and returns once the peer has all of them (the bytes are copied,
 * so the caller's memory is free on return whatever happened): 0, ML_EAGAIN
 * (timeout_s passed, the stream goes on; <= 0: no limit), or the stream's
 * end status (ML_ENOTCONN if it ended ML_OK).
 * ml_stream_wait waits for the end (after ml_stream_close, or as receiver)
 * and returns its status, or ML_EAGAIN when timeout_s passed first; reason
 * (may be NULL) gets its text. */
int ml_stream_write(ml_stream *s, const void *data, size_t len, double timeout_s);
int ml_stream_wait(ml_stream *s, double timeout_s, char *reason, size_t reason_len);

/* ---- statistics --------------------------------------------------------------- */

enum ml_path_state {
	ML_PATH_DOWN = 0,       /* not connected: waiting to reconnect (backoff or flap hold) */
	ML_PATH_CONNECTING = 1, /* transport connect or handshake in progress */
	ML_PATH_UP = 2,         /* carries data */
	ML_PATH_CLOSED = 3,     /* inbound path whose connection ended; the peer reconnects it */
	ML_PATH_SUSPECT = 4,    /* connected, heartbeats missed: no new data until heard again */
	ML_PATH_PROBATION = 5,  /* connected after flapping: heartbeats only, data after probation_s */
};
/* "down", "connecting", "up", "closed", "suspect", "probation" (or "unknown"). */
const char *ml_path_state_name(int state);

#define ML_URL_MAX 96

struct ml_path_stats {
	char url[ML_URL_MAX];      /* endpoint (outbound) or remote address (inbound) */
	int state;                 /* enum ml_path_state */
	int outbound;              /* 1: we connect it; 0: the peer connected to us */
	uint64_t frames_sent, bytes_sent;       /* DATA frames and their payload bytes */
	uint64_t frames_recv, bytes_recv;
	uint64_t frames_resent;    /* DATA frames taken off this path when it failed and sent elsewhere */
	uint64_t frames_failed_inflight; /* DATA frames outstanding on this path when it failed */
	uint64_t frames_acked, bytes_acked;
	uint64_t bytes_copied;     /* DATA payload bytes copied through the transport's own buffers
	                              (RDMA's registered rings), sent and received; TCP: 0 */
	uint64_t bytes_zcopy;      /* payload bytes moved by RDMA READ: sent (described) and
	                              received (read), never copied */
	uint64_t inflight_frames, inflight_bytes; /* on this path, not yet acknowledged */
	uint64_t connects, failures;
	uint64_t suspects;         /* transitions up -> suspect */
	uint64_t recoveries;       /* transitions suspect -> up (heard again in time) */
	uint64_t probations;       /* transitions into probation (the path flapped) */
	uint64_t flaps;            /* failures within flap_window_s of coming up */
	uint64_t silent_ms;        /* time since anything was received (connected paths) */
	uint64_t fault;            /* enum ml_fault active on the path (0: none) */
	double rtt_us;             /* smoothed RTT from heartbeats (0: not measured yet) */
	double rate_bps;           /* estimated delivery rate, bytes/s */
	char reason[96];           /* why the last transition happened */
	int protect;               /* enum ml_protect of its current connection */
};

struct ml_peer_stats {
	uint32_t node_id;
	uint64_t peer_incarnation;
	unsigned paths, paths_up;
	uint64_t msgs_sent, bytes_sent;   /* messages given a sequence number (first send) */
	uint64_t msgs_acked;              /* acknowledged by the peer */
	uint64_t msgs_recv, bytes_recv;   /* delivered to the application (exactly once) */
	uint64_t frames_resent;           /* sum over paths */
	uint64_t dup_frames;              /* duplicate frames suppressed at this receiver */
	uint64_t inflight_msgs, inflight_bytes; /* sent, not yet acknowledged */
	uint64_t queued_msgs;             /* submitted, waiting for room */
	uint64_t requests_pending;        /* requests waiting for a response */
	uint64_t refused;                 /* sends refused with ML_EAGAIN */
	uint64_t failed;                  /* sends completed with an error */
	uint64_t restarts;                /* sessions ended: peer restarted, timeout, declared down */
	uint64_t declared_down;           /* ml_peer_declare_down calls acted on */
	uint64_t compressed_msgs;         /* messages sent compressed */
	uint64_t compressed_in, compressed_out; /* their bytes before and after compression */
	uint64_t expanded_msgs;           /* compressed messages received (and expanded) */
	uint64_t streams_open;            /* streams open now (opening, open or ending), and
	                                     stream requests not yet answered */
	uint64_t streams_done;            /* streams that ended ML_OK */
	uint64_t streams_failed;          /* streams that ended with an error (cancels included) */
	uint64_t streams_refused;         /* opens refused for max_streams, here or by the peer */
	uint64_t stream_chunks_sent, stream_bytes_sent; /* chunks acknowledged by the peer */
	uint64_t stream_chunks_recv, stream_bytes_recv; /* chunks handed to on_chunk (in order) */
	uint64_t limits_hit;              /* sessions closed for holding too much (ML_ELIMIT) */
};

/* Snapshot of a peer's counters and up to *npaths path entries (*npaths is
 * set to the number of paths). paths may be NULL. */
int ml_peer_stats_get(ml_peer *peer, struct ml_peer_stats *st, struct ml_path_stats *paths,
		      unsigned *npaths);

/* ---- fault injection (tests and tools) ---------------------------------------- */

enum ml_fault {
	ML_FAULT_SHUTDOWN = 1,     /* shutdown(2) the path's socket: the peer sees EOF */
	ML_FAULT_RESET = 2,        /* close with SO_LINGER 0: the peer sees a reset */
	ML_FAULT_BLACKHOLE = 3,    /* nothing goes out or comes in (kept, as a network would) */
	ML_FAULT_BLACKHOLE_TX = 4, /* nothing goes out; receiving works */
	ML_FAULT_BLACKHOLE_RX = 5, /* nothing comes in; sending works */
	ML_FAULT_DROP = 6,         /* value: fraction (0..1) of received segments lost; on a
	                              byte stream each loss stalls it for a 200 ms retransmit */
	ML_FAULT_DELAY = 7,        /* value: seconds added to everything received */
	ML_FAULT_CLEAR = 8,        /* end the active fault */
	ML_FAULT_BAD_KEY = 9,      /* RDMA descriptors sent on the path carry a wrong remote key:
	                              the peer's READs fail and it closes the path (a peer's bug,
	                              or memory unregistered too soon); only where zero copy goes */
};

struct ml_fault_spec {
	int fault;         /* enum ml_fault */
	double value;      /* ML_FAULT_DROP: fraction; ML_FAULT_DELAY: seconds */
	double duration_s; /* > 0: cleared by itself after this; 0: until ML_FAULT_CLEAR */
};

/* Apply a fault to path number path_idx (index in ml_peer_stats_get order)
 * of a peer, as if the network did it; it stays across reconnects until it
 * ends. SHUTDOWN and RESET act once. Runs asynchronously on the peer's worker.
 * Errors: ML_EINVAL, ML_ENOENT (no such path). */
int ml_fault_set(ml_peer *peer, unsigned path_idx, const struct ml_fault_spec *spec);
/* Shorthand: ml_fault_set with value 0 and no duration. */
int ml_fault_inject(ml_peer *peer, unsigned path_idx, int fault);
/* Parse/print fault names: "shutdown", "reset", "blackhole", "blackhole-tx",
 * "blackhole-rx", "drop", "delay", "clear", "bad-key". ml_fault_parse returns 0
 * if unknown. */
int ml_fault_parse(const char *name);
const char *ml_fault_name(int fault);

#ifdef __cplusplus
}
#endif
#endif /* MSGLAYER_H */
