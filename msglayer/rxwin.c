/* rxwin.c - duplicate suppression and ack generation (see rxwin.h). */
#include "rxwin.h"
#include "msglayer.h"

#include <stdlib.h>
#include <string.h>

static uint32_t round_pow2(uint32_t v)
{
	uint32_t p = 64; /* at least one bitmap word */
	while (p < v)
		p <<= 1;
	return p;
}

int ml_rxwin_init(struct ml_rxwin *w, uint32_t size)
{
	w->size = round_pow2(size);
	w->bits = calloc(w->size / 64, sizeof(uint64_t));
	if (!w->bits)
		return ML_ENOMEM;
	w->base = w->highest = 0;
	return 0;
}

void ml_rxwin_reset(struct ml_rxwin *w)
{
	memset(w->bits, 0, w->size / 8);
	w->base = w->highest = 0;
}

void ml_rxwin_free(struct ml_rxwin *w)
{
	free(w->bits);
	w->bits = NULL;
}

static int bit_get(const struct ml_rxwin *w, uint64_t seq)
{
	uint64_t i = seq & (w->size - 1);
	return (w->bits[i / 64] >> (i % 64)) & 1;
}

static void bit_set(struct ml_rxwin *w, uint64_t seq, int v)
{
	uint64_t i = seq & (w->size - 1);
	if (v)
		w->bits[i / 64] |= 1ull << (i % 64);
	else
		w->bits[i / 64] &= ~(1ull << (i % 64));
}

enum ml_rxwin_verdict ml_rxwin_check(const struct ml_rxwin *w, uint64_t seq)
{
	if (seq <= w->base)
		return ML_RXWIN_DUP;
	if (seq - w->base > w->size)
		return ML_RXWIN_OUT;
	return bit_get(w, seq) ? ML_RXWIN_DUP : ML_RXWIN_NEW;
}

void ml_rxwin_mark(struct ml_rxwin *w, uint64_t seq)
{
	bit_set(w, seq, 1);
	if (seq > w->highest)
		w->highest = seq;
	/* Slide: the slot of base+1 is reused for base+1+size, so clear it. */
	while (w->base < w->highest && bit_get(w, w->base + 1)) {
		w->base++;
		bit_set(w, w->base, 0);
	}
}

void ml_rxwin_ack(const struct ml_rxwin *w, struct ml_ack *a)
{
	a->cum = w->base;
	a->nranges = 0;
	uint64_t s = w->base + 2; /* base+1 is missing, or base would be higher */
	while (s <= w->highest && a->nranges < ML_WIRE_SACK_MAX) {
		if (!bit_get(w, s)) {
			s++;
			continue;
		}
		uint64_t e = s;
		while (e + 1 <= w->highest && bit_get(w, e + 1))
			e++;
		a->r[a->nranges].start = s;
		a->r[a->nranges].end = e;
		a->nranges++;
		s = e + 2;
	}
}
