/*
 * rxwin.h - receive window: which sequence numbers were delivered.
 *
 * A cumulative point (every seq <= base delivered) plus a bitmap of the next
 * `size` numbers. It suppresses duplicates (rule 3) and produces the
 * cumulative + selective acknowledgements (rule 4).
 */
#ifndef ML_RXWIN_H
#define ML_RXWIN_H

#include <stdint.h>
#include "wire.h"

struct ml_rxwin {
	uint64_t base;    /* every seq <= base was delivered */
	uint64_t highest; /* highest seq delivered (>= base) */
	uint32_t size;    /* power of two */
	uint64_t *bits;   /* bit (seq & (size-1)) for seq in (base, base+size] */
};

enum ml_rxwin_verdict {
	ML_RXWIN_NEW = 0, /* in the window, not yet delivered */
	ML_RXWIN_DUP = 1, /* delivered before */
	ML_RXWIN_OUT = 2, /* beyond the window: the sender broke flow control */
};

/* size is rounded up to a power of two. Returns 0 or ML_ENOMEM. */
int ml_rxwin_init(struct ml_rxwin *w, uint32_t size);
void ml_rxwin_reset(struct ml_rxwin *w);
void ml_rxwin_free(struct ml_rxwin *w);
enum ml_rxwin_verdict ml_rxwin_check(const struct ml_rxwin *w, uint64_t seq);
/* Record seq (must be NEW) as delivered. */
void ml_rxwin_mark(struct ml_rxwin *w, uint64_t seq);
/* Describe the window as an ACK: cum = base, then up to ML_WIRE_SACK_MAX
 * ranges of delivered numbers above it, lowest first. */
void ml_rxwin_ack(const struct ml_rxwin *w, struct ml_ack *a);

#endif
