/* streamtest.h - what the stream test and the stream benchmark share: the
 * bytes a stream carries (a pattern anyone can regenerate from the offset),
 * their hash, and one side of a stream that sends or takes them.
 *
 * The hash is a 64-bit multiply-rotate over 8-byte words, order-sensitive:
 * it catches a lost, doubled, swapped or altered chunk, and at several GB/s
 * it leaves the worker threads (which run the callbacks) to the library, so
 * that the benchmark measures streams, not SHA-256 (which halved the rate). */
#ifndef ML_TEST_STREAMTEST_H
#define ML_TEST_STREAMTEST_H

#include "msglayer.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

static inline double st_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64 of the 8-byte word's index: any byte is known from its offset. */
static inline uint64_t st_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed + idx * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* (off is a multiple of 8: chunks are.) Whole words first, with fixed-size
 * copies the compiler turns into stores. */
static inline void st_fill(uint8_t *p, uint64_t off, size_t len, uint64_t seed)
{
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t z = st_word(seed, (off + i) / 8);
		memcpy(p + i, &z, 8);
	}
	if (i < len) {
		uint64_t z = st_word(seed, (off + i) / 8);
		memcpy(p + i, &z, len - i);
	}
}

static inline uint64_t st_hash(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = ((h << 23 | h >> 41) ^ w) * 0x9e3779b97f4a7c15ull;
	}
	if (i < len) {
		uint64_t w = 0;
		memcpy(&w, p + i, len - i);
		h = ((h << 23 | h >> 41) ^ w) * 0x9e3779b97f4a7c15ull;
	}
	return h;
}

/* One end of a stream: it sends `total` bytes of pattern `seed`, or takes
 * them; either way it hashes what passed. */
struct st_side {
	const char *name;
	ml_stream *s;
	int sending;
	uint64_t total, seed;
	uint64_t off;            /* bytes sent (sender) or received (receiver) */
	uint64_t chunks, out_of_order;
	uint64_t send_failed;    /* chunk callbacks with an error */
	int closed, ended, status, opened;
	char reason[128];
	double end_at;
	uint64_t hash;
	/* cancel at a chunk number (0: never), with this reason */
	uint64_t cancel_at;
	const char *cancel_reason;
	double cancel_t;
	uint64_t chunks_after_cancel;
	const char *finish_refusal; /* receiver: refuse the end with this reason */
	uint8_t *buf;
	size_t chunk;
	/* Sender, when set: chunks are sent from here without a copy, at
	 * offset % patlen (the benchmark: the sender's own cost out of the way). */
	const uint8_t *pat;
	size_t patlen;
	unsigned send_flags;     /* added to every chunk's send (ML_SEND_LZ4...) */
	void (*changed)(void *); /* after each event (wakes a waiting thread) */
	void *changed_arg;
};

static inline void st_side_init(struct st_side *x, const char *name, int sending, uint64_t total,
				uint64_t seed, size_t chunk)
{
	memset(x, 0, sizeof(*x));
	x->name = name;
	x->sending = sending;
	x->total = total;
	x->seed = seed;
	x->chunk = chunk;
	x->buf = malloc(chunk);
	CHECK(x->buf, "memory");
}

static inline void st_side_free(struct st_side *x)
{
	free(x->buf);
	if (x->s)
		ml_stream_release(x->s);
}

static inline void st_changed(struct st_side *x)
{
	if (x->changed)
		x->changed(x->changed_arg);
}

static void st_chunk_sent(void *arg, int status)
{
	struct st_side *x = arg;
	if (status != ML_OK)
		x->send_failed++;
}

/* Sender: as many chunks as credit allows, then the end. */
static inline void st_pump(struct st_side *x)
{
	while (x->sending && !x->ended && !x->closed) {
		if (x->cancel_at && x->chunks >= x->cancel_at) {
			if (!x->cancel_t) {
				x->cancel_t = st_now();
				CHECK(ml_stream_cancel(x->s, x->cancel_reason) == ML_OK, "cancel");
			}
			return;
		}
		if (x->off == x->total) {
			CHECK(ml_stream_close(x->s) == ML_OK, "%s: close", x->name);
			x->closed = 1;
			return;
		}
		size_t n = x->total - x->off < x->chunk ? x->total - x->off : x->chunk;
		const uint8_t *src = x->pat ? x->pat + x->off % x->patlen : x->buf;
		if (!x->pat)
			st_fill(x->buf, x->off, n, x->seed);
		struct ml_buf b = ml_buf_plain(src, n);
		int rc = ml_stream_send(x->s, &b, 1, (x->pat ? 0 : ML_SEND_COPY) | x->send_flags,
					st_chunk_sent, x);
		if (rc == ML_EAGAIN)
			return; /* on_room comes */
		CHECK(rc == ML_OK, "%s: send: %s", x->name, ml_strerror(rc));
		if (!x->pat)
			x->hash = st_hash(x->hash, x->buf, n);
		x->off += n;
		x->chunks++;
	}
}

static void st_on_open(void *arg, ml_stream *s, const struct ml_msg *resp)
{
	struct st_side *x = arg;
	(void)s;
	(void)resp;
	x->opened = 1;
	st_pump(x);
	st_changed(x);
}

static void st_on_room(void *arg, ml_stream *s)
{
	(void)s;
	st_pump(arg);
}

static void st_on_chunk(void *arg, ml_stream *s, const struct ml_msg *c)
{
	struct st_side *x = arg;
	(void)s;
	if (x->cancel_t)
		x->chunks_after_cancel++;
	if (c->tag != x->chunks + 1)
		x->out_of_order++;
	x->chunks++;
	x->hash = st_hash(x->hash, c->data, c->len);
	x->off += c->len;
	if (x->cancel_at && x->chunks == x->cancel_at && !x->cancel_t) {
		x->cancel_t = st_now();
		CHECK(ml_stream_cancel(x->s, x->cancel_reason) == ML_OK, "cancel");
	}
}

static void st_on_finish(void *arg, ml_stream *s)
{
	struct st_side *x = arg;
	if (x->finish_refusal)
		CHECK(ml_stream_cancel(s, x->finish_refusal) == ML_OK, "refuse the end");
	else
		CHECK(ml_stream_finish(s) == ML_OK, "finish");
}

static void st_on_end(void *arg, ml_stream *s, int status, const char *reason)
{
	struct st_side *x = arg;
	(void)s;
	CHECK(!x->ended, "%s: on_end twice", x->name);
	x->ended = 1;
	x->status = status;
	x->end_at = st_now();
	snprintf(x->reason, sizeof(x->reason), "%s", reason);
	st_changed(x);
}

static const struct ml_stream_cbs st_cbs = {
	.on_open = st_on_open,
	.on_chunk = st_on_chunk,
	.on_room = st_on_room,
	.on_finish = st_on_finish,
	.on_end = st_on_end,
};

/* What a sender with a pattern buffer sends: its hash over total bytes. */
static inline uint64_t st_pattern_hash(const uint8_t *pat, size_t patlen, size_t chunk, uint64_t total)
{
	uint64_t h = 0;
	for (uint64_t off = 0; off < total; off += chunk)
		h = st_hash(h, pat + off % patlen, total - off < chunk ? total - off : chunk);
	return h;
}

/* The hash the whole pattern has: what the receiver must have seen. */
static inline uint64_t st_expected_hash(uint64_t total, uint64_t seed)
{
	uint8_t *b = malloc(1 << 20);
	uint64_t h = 0;
	CHECK(b, "memory");
	for (uint64_t off = 0; off < total; off += 1 << 20) {
		size_t n = total - off < (1u << 20) ? total - off : 1u << 20;
		st_fill(b, off, n, seed);
		h = st_hash(h, b, n);
	}
	free(b);
	return h;
}

#endif
