/* pattern.c - verify-mode block contents (pattern.h). */
#include "pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PATTERN_MAGIC 0x56424c4du /* "MLBV" */

/* Header of a block: { magic u32, gen u32, blockno u64, run_id u64 }, host
 * order (only this program reads it back), then filler. */
#define HDR_BYTES 24

/* splitmix64: cheap, and every 64-bit seed gives a different stream. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t seed(uint64_t run_id, uint64_t blockno, uint32_t gen)
{
	return run_id ^ (blockno * 0x100000001b3ull) ^ ((uint64_t)gen << 32);
}

void pattern_fill(void *block, uint32_t bs, uint64_t run_id, uint64_t blockno, uint32_t gen)
{
	uint8_t *p = block;
	uint32_t magic = PATTERN_MAGIC;
	memcpy(p, &magic, 4);
	memcpy(p + 4, &gen, 4);
	memcpy(p + 8, &blockno, 8);
	memcpy(p + 16, &run_id, 8);
	uint64_t st = seed(run_id, blockno, gen);
	for (uint32_t off = HDR_BYTES; off < bs; off += 8) {
		uint64_t w = mix(&st);
		memcpy(p + off, &w, 8);
	}
}

/* pattern_fill compared rather than written: no block-sized scratch. */
static int matches(const uint8_t *p, uint32_t bs, uint64_t run_id, uint64_t blockno, uint32_t gen)
{
	uint32_t magic = PATTERN_MAGIC;
	if (memcmp(p, &magic, 4) || memcmp(p + 4, &gen, 4) || memcmp(p + 8, &blockno, 8) ||
	    memcmp(p + 16, &run_id, 8))
		return 0;
	uint64_t st = seed(run_id, blockno, gen);
	for (uint32_t off = HDR_BYTES; off < bs; off += 8) {
		uint64_t w = mix(&st);
		if (memcmp(p + off, &w, 8))
			return 0;
	}
	return 1;
}

static int all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

int pattern_check(const void *block, uint32_t bs, uint64_t run_id, uint64_t blockno,
		  uint32_t gen, char *why, size_t whylen)
{
	const uint8_t *p = block;
	if (gen == PATTERN_ZEROS ? all_zero(p, bs) : matches(p, bs, run_id, blockno, gen))
		return 0;
	/* Say what is there instead: the header tells most stories. */
	uint32_t magic, got_gen;
	uint64_t got_block, got_run;
	memcpy(&magic, p, 4);
	memcpy(&got_gen, p + 4, 4);
	memcpy(&got_block, p + 8, 8);
	memcpy(&got_run, p + 16, 8);
	const char *want_what = gen == PATTERN_ZEROS ? "zeros (discarded)" : "generation";
	if (all_zero(p, bs))
		snprintf(why, whylen, "block %" PRIu64 ": zeros, expected %s %u", blockno, want_what,
			 gen == PATTERN_ZEROS ? 0 : gen);
	else if (magic != PATTERN_MAGIC)
		snprintf(why, whylen, "block %" PRIu64 ": no verify header (foreign data), expected "
			 "%s %u", blockno, want_what, gen == PATTERN_ZEROS ? 0 : gen);
	else if (got_run != run_id)
		snprintf(why, whylen, "block %" PRIu64 ": data of another run (block %" PRIu64
			 " generation %u)", blockno, got_block, got_gen);
	else if (got_block != blockno || got_gen != gen)
		snprintf(why, whylen, "block %" PRIu64 ": holds block %" PRIu64 " generation %u, "
			 "expected %s %u", blockno, got_block, got_gen, want_what,
			 gen == PATTERN_ZEROS ? 0 : gen);
	else
		snprintf(why, whylen, "block %" PRIu64 " generation %u: header right, data corrupted",
			 blockno, gen);
	return -1;
}
