/*
 * pattern.h - what ml-blockcli's verify mode writes into a block, and the
 * check of what a read brings back. Every block starts with a header naming
 * the block, the write's generation and the run, followed by bytes that
 * follow from those three: a block written to the wrong place, an old
 * generation, another run's data or a corrupted byte all show, and say which.
 */
#ifndef PATTERN_H
#define PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define PATTERN_UNKNOWN 0          /* generation of a block we know nothing about */
#define PATTERN_ZEROS UINT32_MAX   /* generation of a discarded block: all zeros */
#define PATTERN_MIN_BLOCK 64       /* the header and some filler fit */

/* Fill one block of bs bytes (a multiple of 8, >= PATTERN_MIN_BLOCK). */
void pattern_fill(void *block, uint32_t bs, uint64_t run_id, uint64_t blockno, uint32_t gen);

/* Does the block hold generation gen (PATTERN_ZEROS: zeros)? 0 if so; -1
 * with why describing what it holds instead. */
int pattern_check(const void *block, uint32_t bs, uint64_t run_id, uint64_t blockno,
		  uint32_t gen, char *why, size_t whylen);

#endif
