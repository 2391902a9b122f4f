/*
 * workload.h - ml-blockcli's workload: reads, writes and discards at random
 * or sequential offsets, as many in flight as the engine has slots, for a
 * time or a number of I/Os; then a FLUSH if anything was written.
 *
 * Verify mode: every block a WRITE carries holds its block number, the
 * write's generation and the run (pattern.h); every block a READ brings back
 * is checked against the last write or discard acknowledged for it. No two
 * outstanding I/Os touch the same block, so "last acknowledged" is exact.
 * A block never written by this run, or whose write failed, is not checked
 * (counted as unknown).
 */
#ifndef WORKLOAD_H
#define WORKLOAD_H

#include <stdint.h>

#include "engine.h"

struct workload_opts {
	int random;           /* random offsets; else sequential (wrapping) */
	unsigned read_pct;    /* share of READs, 0..100 */
	unsigned discard_pct; /* share of DISCARDs, 0..100 - read_pct; the rest are WRITEs */
	uint32_t io_size;     /* bytes per I/O: a multiple of the block size */
	uint64_t region;      /* bytes of the volume used, from offset 0 (0: all) */
	uint64_t ios;         /* stop after this many I/Os (0: when stopped) */
	double rate;          /* I/Os per second at most (0: as fast as the queue depth allows) */
	int verify;
	int sync;             /* BLK_F_SYNC on WRITEs and DISCARDs */
	uint64_t seed;        /* offsets and ops; 0: random */
};

struct verify_counts {
	int enabled;
	uint64_t reads_verified;  /* READs whose every known block matched */
	uint64_t blocks_verified; /* blocks read back as last written */
	uint64_t blocks_unknown;  /* blocks read that this run had not written (not checked) */
	uint64_t mismatches;      /* blocks read back wrong */
};

struct workload {
	struct workload_opts o;
	struct engine *e;
	uint32_t bs;          /* the volume's block size */
	uint32_t per_io;      /* blocks per I/O */
	uint64_t nslots;      /* I/O-sized slots in the region */
	uint32_t *gen;        /* per block: generation acknowledged (pattern.h) */
	uint8_t *busy;        /* per slot: an I/O on it is outstanding */
	uint32_t next_gen;
	uint64_t cursor;      /* sequential: next slot */
	uint64_t rng;
	uint64_t run_id;
	int issuing;
	double next_due;      /* --rate: when the next I/O may go */
	ev_timer pace;        /* --rate: wakes the issuing when the next I/O is due */
	uint64_t issued, written;
	int flush_sent, flush_status;
	struct verify_counts vc;
	void (*finished)(void *arg); /* stopped and drained (and flushed) */
	void *arg;
};

/* Returns 0, or -1 with err set (options that do not fit the volume). */
int workload_init(struct workload *w, const struct workload_opts *o, struct engine *e,
		  uint64_t volume_size, uint32_t block_size, char *err, size_t errlen);
void workload_free(struct workload *w);
/* Issue until stopped (or o.ios reached). */
void workload_start(struct workload *w);
/* Issue no more; finished runs when the I/O in flight is done. */
void workload_stop(struct workload *w);

/* The engine's callbacks (arg: the workload). */
void workload_done(void *arg, struct io *io, int status, const void *data);
void workload_refill(void *arg);

#endif
