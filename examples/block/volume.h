/*
 * volume.h - a volume of ml-blockd: a file (or a sparse temporary file) cut
 * into blocks, and the block operations on it. Requests are checked on the
 * loop thread (volume_check) and executed by the I/O threads
 * (volume_execute); a volume's file descriptor is shared by all of them
 * (pread/pwrite at explicit offsets need no lock).
 */
#ifndef VOLUME_H
#define VOLUME_H

#include <stddef.h>
#include <stdint.h>

#include "blockproto.h"

#define VOLUME_NAME_MAX 200 /* "block/" + name fits a discovery name (255) */

struct volume {
	char name[VOLUME_NAME_MAX + 1];
	const char *path;    /* the file; NULL: a sparse temporary file */
	uint64_t size;       /* bytes exported (a multiple of block_size) */
	uint32_t block_size; /* 512..65536, a power of two */
	uint32_t id;         /* in requests: the record's volume_id */
	int sync;            /* every write and discard durable before its response */
	int ro;              /* read-only: WRITE and DISCARD are refused */
	int fd;
};

/* Parse "name=NAME,size=SIZE,file=PATH,bs=N,sync,ro" (name, and size or file,
 * required) into v. Returns 0, or -1 with err set to what is wrong. The
 * strings in v point into spec. */
int volume_parse(char *spec, struct volume *v, char *err, size_t errlen);

/* Open (create, extend) the file, or make an unlinked sparse temporary file
 * in $TMPDIR (or /tmp). Returns 0, or -1 with err set (errno text in it). */
int volume_open(struct volume *v, char *err, size_t errlen);
void volume_close(struct volume *v);

/* Is this request acceptable on this volume (alignment, range, max_io,
 * read-only)? Returns BLK_S_OK or the status to answer with. */
int volume_check(const struct volume *v, const struct blk_req *h, uint32_t max_io);

/* Do it: READ into buf, WRITE from buf, FLUSH, DISCARD. Returns BLK_S_OK, or
 * BLK_S_IO with *sys_errno set. */
int volume_execute(const struct volume *v, const struct blk_req *h, void *buf, int *sys_errno);

#endif
