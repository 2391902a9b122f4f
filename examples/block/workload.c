/* workload.c - ml-blockcli's random/sequential workload and verify mode (workload.h). */
#include "workload.h"
#include "pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MISMATCHES_SHOWN 10
#define PICK_TRIES 16 /* random offsets tried before waiting for a busy one to finish */
#define PACE_SLACK_S 0.01

static uint64_t next_rand(struct workload *w)
{
	/* xorshift64*: fast, and plenty for choosing offsets */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

int workload_init(struct workload *w, const struct workload_opts *o, struct engine *e,
		  uint64_t volume_size, uint32_t block_size, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->o = *o;
	w->e = e;
	w->bs = block_size;
	uint64_t region = o->region ? o->region : volume_size;
	if (!o->io_size)
		w->o.io_size = block_size;
	if (w->o.io_size % block_size) {
		snprintf(err, errlen, "--bs %u is not a multiple of the volume's block size %u",
			 w->o.io_size, block_size);
		return -1;
	}
	if (region > volume_size || region < w->o.io_size) {
		snprintf(err, errlen, "--region %" PRIu64 " does not fit the volume (%" PRIu64
			 " bytes) or is smaller than one I/O", region, volume_size);
		return -1;
	}
	w->per_io = w->o.io_size / block_size;
	w->nslots = region / w->o.io_size;
	w->busy = calloc(w->nslots, 1);
	w->gen = calloc(w->nslots * w->per_io, sizeof(*w->gen));
	if (!w->busy || !w->gen) {
		snprintf(err, errlen, "out of memory for %" PRIu64 " blocks", w->nslots * w->per_io);
		return -1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* xorshift never leaves 0 */
	w->rng = o->seed ? o->seed : ((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30) | 1;
	w->run_id = next_rand(w);
	w->next_gen = 1;
	w->vc.enabled = o->verify;
	/* Without verify, WRITEs send whatever the slot holds: make it defined. */
	for (unsigned i = 0; i < e->qd; i++)
		memset(e->slots[i].buf->data, 0xa5, w->o.io_size);
	return 0;
}

void workload_free(struct workload *w)
{
	free(w->busy);
	free(w->gen);
}

/* A free slot of the region, or -1 when the ones tried are busy. */
static int64_t pick(struct workload *w)
{
	if (w->o.random) {
		for (int t = 0; t < PICK_TRIES; t++) {
			uint64_t s = next_rand(w) % w->nslots;
			if (!w->busy[s])
				return (int64_t)s;
		}
		return -1;
	}
	uint64_t s = w->cursor;
	if (w->busy[s])
		return -1; /* wrapped onto what is still in flight */
	w->cursor = (s + 1) % w->nslots;
	return (int64_t)s;
}

static uint32_t new_gen(struct workload *w)
{
	if (w->next_gen == PATTERN_UNKNOWN || w->next_gen == PATTERN_ZEROS)
		w->next_gen = 1;
	return w->next_gen++;
}

static void issue(struct workload *w, uint64_t slot)
{
	struct io *io = engine_get(w->e);
	unsigned p = (unsigned)(next_rand(w) % 100);
	io->h.op = p < w->o.read_pct ? BLK_READ
		   : p < w->o.read_pct + w->o.discard_pct ? BLK_DISCARD : BLK_WRITE;
	io->h.offset = slot * w->o.io_size;
	io->h.length = w->o.io_size;
	if (w->o.sync && io->h.op != BLK_READ)
		io->h.flags = BLK_F_SYNC;
	if (io->h.op == BLK_WRITE && w->o.verify) {
		uint32_t gen = new_gen(w);
		uint64_t first = slot * w->per_io;
		for (uint32_t k = 0; k < w->per_io; k++)
			pattern_fill((char *)io->buf->data + (size_t)k * w->bs, w->bs, w->run_id,
				     first + k, gen);
		io->user = gen;
	}
	w->busy[slot] = 1;
	w->issued++;
	engine_submit(w->e, io);
}

static void maybe_finish(struct workload *w)
{
	if (w->issuing || w->e->inflight)
		return;
	if (w->written && !w->flush_sent) { /* make what was written durable, as a user would */
		struct io *io = engine_get(w->e);
		io->h.op = BLK_FLUSH;
		w->flush_sent = 1;
		engine_submit(w->e, io);
		return;
	}
	if (w->finished) {
		void (*cb)(void *) = w->finished;
		w->finished = NULL; /* once */
		cb(w->arg);
	}
}

/* With a rate: 1 if the next I/O is not due yet (a timer will call again);
 * else 0, and the one after is due 1/rate later. */
static int paced(struct workload *w)
{
	if (w->o.rate <= 0)
		return 0;
	double now = ev_time();
	/* Time lost (a slow backend, a busy machine) is not made up for with
	 * a burst later: at most PACE_SLACK_S of it. */
	if (w->next_due < now - PACE_SLACK_S)
		w->next_due = now - PACE_SLACK_S;
	if (w->next_due <= now) {
		w->next_due += 1.0 / w->o.rate;
		return 0;
	}
	if (!ev_is_active(&w->pace)) {
		ev_timer_set(&w->pace, w->next_due - now, 0);
		ev_timer_start(w->e->loop, &w->pace);
	}
	return 1;
}

void workload_refill(void *arg)
{
	struct workload *w = arg;
	while (w->issuing && w->e->free) {
		if (w->o.ios && w->issued >= w->o.ios) {
			w->issuing = 0;
			break;
		}
		if (paced(w))
			break;
		int64_t slot = pick(w);
		if (slot < 0)
			break; /* a completion frees one */
		issue(w, (uint64_t)slot);
	}
	maybe_finish(w);
}

static void on_pace(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	workload_refill(t->data);
}

void workload_start(struct workload *w)
{
	w->issuing = 1;
	w->next_due = ev_time();
	ev_timer_init(&w->pace, on_pace, 0, 0);
	w->pace.data = w;
	workload_refill(w);
}

void workload_stop(struct workload *w)
{
	w->issuing = 0;
	ev_timer_stop(w->e->loop, &w->pace);
	maybe_finish(w);
}

static void check_read(struct workload *w, uint64_t first, const uint8_t *data)
{
	uint64_t bad = 0, known = 0;
	char why[200];
	for (uint32_t k = 0; k < w->per_io; k++) {
		uint32_t g = w->gen[first + k];
		if (g == PATTERN_UNKNOWN) {
			w->vc.blocks_unknown++;
			continue;
		}
		known++;
		if (!pattern_check(data + (size_t)k * w->bs, w->bs, w->run_id, first + k, g, why,
				   sizeof(why))) {
			w->vc.blocks_verified++;
			continue;
		}
		bad++;
		if (w->vc.mismatches + bad <= MISMATCHES_SHOWN)
			fprintf(stderr, "ml-blockcli: MISMATCH %s\n", why);
	}
	w->vc.mismatches += bad;
	if (known && !bad)
		w->vc.reads_verified++;
}

void workload_done(void *arg, struct io *io, int status, const void *data)
{
	struct workload *w = arg;
	if (io->h.op == BLK_FLUSH) {
		w->flush_status = status;
		return;
	}
	uint64_t slot = io->h.offset / w->o.io_size, first = slot * w->per_io;
	w->busy[slot] = 0;
	if (io->h.op == BLK_READ) {
		if (status == 0 && w->o.verify)
			check_read(w, first, data);
		return;
	}
	w->written++;
	/* A failed write or discard may or may not have landed: unknown. */
	uint32_t g = status ? PATTERN_UNKNOWN : io->h.op == BLK_DISCARD ? PATTERN_ZEROS
			   : w->o.verify ? (uint32_t)io->user : PATTERN_UNKNOWN;
	for (uint32_t k = 0; k < w->per_io; k++)
		w->gen[first + k] = g;
}
