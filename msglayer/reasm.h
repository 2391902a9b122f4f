/*
 * reasm.h - reassembly of one fragmented message.
 *
 * Fragments are cut at multiples of the session's fragment size F: every
 * fragment but the last carries exactly F bytes (doc/protocol.md). So a
 * fragment is named by offset / F, and a bitmap tells which ones are in.
 */
#ifndef ML_REASM_H
#define ML_REASM_H

#include <stdint.h>

struct ml_tp_mem;

struct ml_reasm {
	uint64_t seq;
	uint32_t msg_len;
	uint32_t frag_size;
	uint32_t nfrags, nrecv;
	uint8_t *buf;      /* msg_len bytes (cap allocated) */
	uint64_t *have;    /* nfrags bits (have_words allocated) */
	uint32_t cap, have_words;
	/* Zero copy (zcopy.c): buf's registration for RDMA READs into it (NULL:
	 * none yet; kept with the buffer), the READs in flight into it, and
	 * whether it was let go while they were (freed when they end). */
	struct ml_tp_mem *mem;
	unsigned reading;
	int orphan;
};

enum ml_reasm_verdict {
	ML_REASM_NEW = 0,
	ML_REASM_DUP = 1, /* this fragment is already in */
	ML_REASM_BAD = 2, /* offset/length not a fragment of this message */
};

/* Returns 0 or ML_ENOMEM. */
int ml_reasm_init(struct ml_reasm *r, uint64_t seq, uint32_t msg_len, uint32_t frag_size);
/* Start over with another message in r's buffers, which a finished
 * reassembly leaves behind: 0, or -1 (r unchanged) if they are too small. */
int ml_reasm_reuse(struct ml_reasm *r, uint64_t seq, uint32_t msg_len, uint32_t frag_size);
void ml_reasm_free(struct ml_reasm *r);
enum ml_reasm_verdict ml_reasm_check(const struct ml_reasm *r, uint32_t msg_len, uint32_t offset,
				     uint32_t len);
/* Copy a NEW fragment in; returns 1 when the message is complete. */
int ml_reasm_put(struct ml_reasm *r, uint32_t offset, const void *data, uint32_t len);
/* A NEW fragment that was written in place (an RDMA READ): as ml_reasm_put. */
int ml_reasm_mark(struct ml_reasm *r, uint32_t offset);

#endif
