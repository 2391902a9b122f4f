/*
 * copy.h - ml-blockcli put/get: a local file to a volume (from offset 0),
 * or a volume to a local file, in chunks with the engine's queue depth, then
 * a FLUSH after a put. The last block of a put is padded with zeros; a get
 * writes exactly the length asked for.
 */
#ifndef COPY_H
#define COPY_H

#include <stdint.h>

#include "engine.h"

struct copy {
	struct engine *e;
	int put;            /* file -> volume; else volume -> file */
	int fd;
	const char *path;
	uint64_t length;    /* bytes to copy */
	uint32_t chunk;     /* bytes per I/O */
	uint32_t bs;
	uint32_t write_flags; /* put: BLK_F_SYNC for --sync */
	uint64_t next;      /* offset of the next chunk to issue */
	uint64_t copied;    /* bytes acknowledged */
	uint64_t failed;    /* chunks that failed (after re-issues) */
	int flush_sent, flush_status;
	int stopped;
	void (*finished)(void *arg);
	void *arg;
};

/* put: length is the file's; get: length (0: the whole volume). Returns 0,
 * or -1 with err set (cannot open the file, does not fit the volume). */
int copy_init(struct copy *c, struct engine *e, int put, const char *path, uint64_t length,
	      uint32_t chunk, uint64_t volume_size, uint32_t block_size, char *err, size_t errlen);
void copy_start(struct copy *c);
/* Interrupted: issue no more (finished still runs once the rest is done). */
void copy_stop(struct copy *c);
void copy_close(struct copy *c);

/* The engine's callbacks (arg: the copy). */
void copy_done(void *arg, struct io *io, int status, const void *data);
void copy_refill(void *arg);

#endif
