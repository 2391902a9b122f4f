/* reasm.c - fragment reassembly by offset (see reasm.h). */
#include "reasm.h"
#include "msglayer.h"

#include <stdlib.h>
#include <string.h>

static uint32_t frags_of(uint32_t msg_len, uint32_t frag_size)
{
	return (uint32_t)(((uint64_t)msg_len + frag_size - 1) / frag_size);
}

static void start(struct ml_reasm *r, uint64_t seq, uint32_t msg_len, uint32_t frag_size)
{
	r->seq = seq;
	r->msg_len = msg_len;
	r->frag_size = frag_size;
	r->nfrags = frags_of(msg_len, frag_size);
	r->nrecv = 0;
}

int ml_reasm_init(struct ml_reasm *r, uint64_t seq, uint32_t msg_len, uint32_t frag_size)
{
	start(r, seq, msg_len, frag_size);
	r->mem = NULL;
	r->reading = 0;
	r->orphan = 0;
	r->cap = msg_len ? msg_len : 1;
	r->have_words = (r->nfrags + 63) / 64;
	r->buf = malloc(r->cap);
	r->have = calloc(r->have_words, sizeof(uint64_t));
	if (!r->buf || !r->have) {
		ml_reasm_free(r);
		return ML_ENOMEM;
	}
	return 0;
}

int ml_reasm_reuse(struct ml_reasm *r, uint64_t seq, uint32_t msg_len, uint32_t frag_size)
{
	if (!r->buf || msg_len > r->cap || (frags_of(msg_len, frag_size) + 63) / 64 > r->have_words)
		return -1;
	start(r, seq, msg_len, frag_size);
	memset(r->have, 0, r->have_words * sizeof(uint64_t));
	return 0;
}

void ml_reasm_free(struct ml_reasm *r)
{
	free(r->buf);
	free(r->have);
	r->buf = NULL;
	r->have = NULL;
}

enum ml_reasm_verdict ml_reasm_check(const struct ml_reasm *r, uint32_t msg_len, uint32_t offset,
				     uint32_t len)
{
	if (msg_len != r->msg_len || offset % r->frag_size || offset >= r->msg_len)
		return ML_REASM_BAD;
	uint32_t expect = r->msg_len - offset < r->frag_size ? r->msg_len - offset : r->frag_size;
	if (len != expect)
		return ML_REASM_BAD;
	uint32_t i = offset / r->frag_size;
	return (r->have[i / 64] >> (i % 64)) & 1 ? ML_REASM_DUP : ML_REASM_NEW;
}

int ml_reasm_mark(struct ml_reasm *r, uint32_t offset)
{
	uint32_t i = offset / r->frag_size;
	r->have[i / 64] |= 1ull << (i % 64);
	return ++r->nrecv == r->nfrags;
}

int ml_reasm_put(struct ml_reasm *r, uint32_t offset, const void *data, uint32_t len)
{
	memcpy(r->buf + offset, data, len);
	return ml_reasm_mark(r, offset);
}
