/*
 * engine.h - ml-blockcli's I/O engine: a fixed number of I/O slots (the
 * queue depth), each a block request sent to the backend in use and
 * completed exactly once. What the engine guarantees and counts:
 *
 *  - tags: every I/O gets a new 64-bit tag (the message tag); a response for
 *    a tag already completed is counted as duplicated and ignored;
 *  - failover: an I/O that fails because its backend is gone (ML_EPEERDOWN)
 *    or stopping (BLK_S_SHUTDOWN) is held and re-issued, same tag, to the
 *    next backend engine_set_backend names; held longer than hold_max_s, it
 *    fails;
 *  - latency from first submission to completion (re-issues included), and
 *    the stalls: gaps between consecutive completions.
 *
 * Runs on the client's libev loop, as do the message layer's callbacks
 * (embedded mode): no locks.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <ev.h>
#include <stdint.h>

#include "blockproto.h"
#include "iobuf.h"
#include "msglayer.h"
#include "perf_hist.h"

struct io {
	uint64_t tag;
	struct blk_req h;  /* op, flags, offset, length: the producer's to set */
	struct iobuf *buf; /* WRITE data, engine_buf_size() bytes: the producer fills it */
	uint64_t user;     /* the producer's own (a file offset, ...) */
	/* the engine's */
	struct engine *engine;
	uint8_t hdr[BLK_REQ_HDR_LEN];
	ml_peer *peer;     /* where it was last sent */
	unsigned backend_gen;
	double t_first;
	int busy;
	struct io *next;   /* free list or held list */
};

/* status: 0 done; > 0 the backend's BLK_S_* status; < 0 an ML_E* status.
 * data: a READ's length bytes when status is 0 (valid during the call). The
 * slot is taken back when this returns; then refill runs (a slot is free). */
typedef void (*engine_done_cb)(void *arg, struct io *io, int status, const void *data);
typedef void (*engine_refill_cb)(void *arg);

#define ENGINE_MAX_STALLS 4096
#define ENGINE_STALL_MIN_S 0.005 /* gaps shorter than this are not stalls */

struct engine_stall {
	double end;    /* time of the completion that ended it (ev_time) */
	double length; /* seconds since the completion before */
};

struct engine {
	struct ev_loop *loop;
	engine_done_cb done;
	engine_refill_cb refill;
	void *arg;
	struct io *slots, *free;
	unsigned qd, inflight;     /* inflight: slots taken, held ones included */
	struct iobuf_pool *bufs;
	ml_peer *peer;             /* NULL: no backend now, submissions are held */
	uint32_t volume;
	unsigned backend_gen;      /* grows with every engine_set_backend */
	struct io *held, **held_tail;
	unsigned nheld;
	double hold_max_s;
	ev_timer hold_timer;
	int closing;               /* engine_close: completions are ignored */
	uint64_t next_tag;
	uint8_t *done_bits;        /* one bit per tag: completed */
	uint64_t done_cap;

	/* counters */
	uint64_t ops_done[5], bytes_done[5]; /* successes, by enum blk_op */
	uint64_t failed;           /* completed with an error status */
	uint64_t duplicated;       /* responses for a tag already completed */
	uint64_t reissued;         /* sends of held I/O to a new backend */
	uint64_t bad_responses;    /* responses that did not decode (counted in failed) */
	uint64_t ml_errors[32];    /* failures by ML_E* status (index -status) */
	uint64_t blk_errors[16];   /* failures by BLK_S_* status */
	struct hist all, interval; /* latency in us, successes only */
	uint64_t interval_bytes, interval_ops;
	double last_completion;
	int watch_stalls;          /* measure gaps while this is set */
	struct engine_stall stalls[ENGINE_MAX_STALLS]; /* gaps over 5 ms, in order */
	unsigned nstalls;
	struct engine_stall longest;
};

/* Returns 0, or -1 (out of memory). buf_size: the largest WRITE. */
int engine_init(struct engine *e, struct ev_loop *loop, unsigned qd, size_t buf_size,
		double hold_max_s, engine_done_cb done, engine_refill_cb refill, void *arg);
void engine_destroy(struct engine *e);
size_t engine_buf_size(const struct engine *e);

/* A free slot, or NULL when qd I/Os are outstanding. */
struct io *engine_get(struct engine *e);
/* Give back a slot from engine_get that was not submitted. */
void engine_put(struct engine *e, struct io *io);
/* Send it (or hold it while there is no backend). */
void engine_submit(struct engine *e, struct io *io);
/* The backend to use from now on (peer NULL: none for now; what is
 * submitted is held). Held I/O goes to the new one at once. */
void engine_set_backend(struct engine *e, ml_peer *peer, uint32_t volume);
/* Fail every held I/O with status (the end of the run). */
void engine_fail_held(struct engine *e, int status);

/* Before ml_ctx_destroy: the completions it makes (ML_ECANCELED) are
 * ignored, and nothing is issued any more. */
void engine_close(struct engine *e);

/* Text for a done status (ML_E*, BLK_S_*). */
const char *engine_status_text(int status);

#endif
