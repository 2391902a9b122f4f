/* copy.c - ml-blockcli put/get (copy.h). */
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int copy_init(struct copy *c, struct engine *e, int put, const char *path, uint64_t length,
	      uint32_t chunk, uint64_t volume_size, uint32_t block_size, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->e = e;
	c->put = put;
	c->path = path;
	c->bs = block_size;
	c->chunk = chunk ? chunk : (uint32_t)engine_buf_size(e);
	if (c->chunk % block_size || c->chunk > engine_buf_size(e)) {
		snprintf(err, errlen, "--bs %u must be a multiple of the block size %u and at most "
			 "the backend's max_io %zu", c->chunk, block_size, engine_buf_size(e));
		return -1;
	}
	c->fd = put ? open(path, O_RDONLY | O_CLOEXEC)
		    : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (put) {
		struct stat st;
		if (fstat(c->fd, &st)) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		length = (uint64_t)st.st_size;
	} else if (!length) {
		length = volume_size;
	}
	/* A put pads its last block: that block must fit too. */
	uint64_t blocks = (length + block_size - 1) / block_size;
	if (blocks > volume_size / block_size) {
		snprintf(err, errlen, "%s: %" PRIu64 " bytes do not fit the volume (%" PRIu64 ")",
			 path, length, volume_size);
		return -1;
	}
	c->length = length;
	return 0;
}

void copy_close(struct copy *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Bytes of file data in the chunk at off (the rest of a put's chunk is padding). */
static uint32_t data_len(const struct copy *c, uint64_t off)
{
	uint64_t left = c->length - off;
	return left < c->chunk ? (uint32_t)left : c->chunk;
}

static int issue(struct copy *c)
{
	struct io *io = engine_get(c->e);
	uint32_t n = data_len(c, c->next);
	uint32_t len = (n + c->bs - 1) / c->bs * c->bs;
	io->h.op = c->put ? BLK_WRITE : BLK_READ;
	io->h.flags = c->put ? c->write_flags : 0;
	io->h.offset = c->next;
	io->h.length = len;
	if (c->put) {
		ssize_t got = pread(c->fd, io->buf->data, n, (off_t)c->next);
		if (got != (ssize_t)n) {
			fprintf(stderr, "ml-blockcli: reading %s at %" PRIu64 ": %s\n", c->path, c->next,
				got < 0 ? strerror(errno) : "file shrank");
			engine_put(c->e, io);
			c->failed++;
			c->stopped = 1;
			return -1;
		}
		memset((char *)io->buf->data + n, 0, len - n);
	}
	c->next += n;
	engine_submit(c->e, io);
	return 0;
}

static void maybe_finish(struct copy *c)
{
	if ((c->next < c->length && !c->stopped) || c->e->inflight)
		return;
	if (c->put && !c->flush_sent && !c->stopped) {
		struct io *io = engine_get(c->e);
		io->h.op = BLK_FLUSH;
		c->flush_sent = 1;
		engine_submit(c->e, io);
		return;
	}
	if (c->finished) {
		void (*cb)(void *) = c->finished;
		c->finished = NULL;
		cb(c->arg);
	}
}

void copy_refill(void *arg)
{
	struct copy *c = arg;
	while (!c->stopped && c->next < c->length && c->e->free)
		if (issue(c))
			break;
	maybe_finish(c);
}

void copy_start(struct copy *c)
{
	copy_refill(c);
}

void copy_stop(struct copy *c)
{
	c->stopped = 1;
	maybe_finish(c);
}

void copy_done(void *arg, struct io *io, int status, const void *data)
{
	struct copy *c = arg;
	if (io->h.op == BLK_FLUSH) {
		if (c->flush_sent)
			c->flush_status = status;
		return;
	}
	if (status) {
		c->failed++;
		return;
	}
	uint32_t n = data_len(c, io->h.offset);
	if (!c->put) {
		ssize_t put = pwrite(c->fd, data, n, (off_t)io->h.offset);
		if (put != (ssize_t)n) {
			fprintf(stderr, "ml-blockcli: writing %s: %s\n", c->path,
				put < 0 ? strerror(errno) : "short write");
			c->failed++;
			c->stopped = 1;
			return;
		}
	}
	c->copied += n;
}
