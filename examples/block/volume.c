/* volume.c - volumes of ml-blockd and the block operations on them (volume.h). */
#include "volume.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

/* A name becomes one component of "block/NAME": printable, no '/', '*', '?'. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > VOLUME_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~' || *s == '/' || *s == '*' || *s == '?' || *s == ',')
			return 0;
	return 1;
}

int volume_parse(char *spec, struct volume *v, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	v->block_size = 4096;
	v->fd = -1;
	int have_size = 0;
	char *save = NULL;
	for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = '\0';
		uint64_t n;
		if (!strcmp(kv, "sync") && !val) {
			v->sync = 1;
		} else if (!strcmp(kv, "ro") && !val) {
			v->ro = 1;
		} else if (!val) {
			return fail(err, errlen, "'%s' is not a volume option (name=, size=, file=, bs=, "
				    "sync, ro)", kv);
		} else if (!strcmp(kv, "name")) {
			if (!name_ok(val))
				return fail(err, errlen, "bad volume name '%s' (1..200 printable characters, "
					    "no spaces, '/', ',', '*' or '?')", val);
			snprintf(v->name, sizeof(v->name), "%s", val);
		} else if (!strcmp(kv, "size")) {
			if (parse_size(val, &v->size) || v->size == 0)
				return fail(err, errlen, "bad size '%s' (e.g. 64M, 1G)", val);
			have_size = 1;
		} else if (!strcmp(kv, "file")) {
			if (!*val)
				return fail(err, errlen, "empty file name%s", "");
			v->path = val;
		} else if (!strcmp(kv, "bs")) {
			if (parse_size(val, &n) || n < 512 || n > 65536 || (n & (n - 1)))
				return fail(err, errlen, "bad block size '%s' (a power of two, 512..64k)",
					    val);
			v->block_size = (uint32_t)n;
		} else {
			return fail(err, errlen, "unknown volume option '%s' (name=, size=, file=, bs=, "
				    "sync, ro)", kv);
		}
	}
	if (!v->name[0])
		return fail(err, errlen, "a volume needs name=NAME%s", "");
	if (!have_size && !v->path)
		return fail(err, errlen, "volume %s needs size=SIZE or file=PATH", v->name);
	if (have_size && v->size % v->block_size)
		return fail(err, errlen, "volume %s: size is not a multiple of the block size", v->name);
	if (!v->path && v->ro)
		return fail(err, errlen, "volume %s: a read-only temporary volume makes no sense",
			    v->name);
	return 0;
}

int volume_open(struct volume *v, char *err, size_t errlen)
{
	int flags = O_RDWR | O_CLOEXEC | (v->sync ? O_DSYNC : 0);
	if (v->ro)
		flags = O_RDONLY | O_CLOEXEC;
	if (v->path) {
		v->fd = open(v->path, flags | (v->ro ? 0 : O_CREAT), 0644);
	} else {
		/* Unlinked at once: nothing is left behind, even after kill -9. */
		const char *dir = getenv("TMPDIR");
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/ml-blockd-XXXXXX", dir && *dir ? dir : "/tmp");
		v->fd = mkostemp(tmpl, flags & ~O_RDWR);
		if (v->fd >= 0)
			unlink(tmpl);
	}
	if (v->fd < 0) {
		snprintf(err, errlen, "volume %s: cannot open %s: %s", v->name,
			 v->path ? v->path : "a temporary file", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(v->fd, &st)) {
		snprintf(err, errlen, "volume %s: fstat: %s", v->name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "volume %s: %s is not a regular file", v->name, v->path);
		goto out;
	}
	uint64_t have = (uint64_t)st.st_size;
	if (!v->size) {
		v->size = have - have % v->block_size; /* a partial last block is not exported */
		if (!v->size) {
			snprintf(err, errlen, "volume %s: %s is smaller than one block (%u bytes); "
				 "give size= to extend it", v->name, v->path, v->block_size);
			goto out;
		}
	} else if (have < v->size) {
		if (v->ro) {
			snprintf(err, errlen, "volume %s: %s is smaller than size= and read-only",
				 v->name, v->path);
			goto out;
		}
		if (ftruncate(v->fd, (off_t)v->size)) { /* sparse: no space used yet */
			snprintf(err, errlen, "volume %s: cannot extend %s: %s", v->name,
				 v->path ? v->path : "the temporary file", strerror(errno));
			goto out;
		}
	}
	return 0;
out:
	close(v->fd);
	v->fd = -1;
	return -1;
}

void volume_close(struct volume *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

int volume_check(const struct volume *v, const struct blk_req *h, uint32_t max_io)
{
	if (h->op == BLK_FLUSH)
		return BLK_S_OK;
	if (v->ro && h->op != BLK_READ)
		return BLK_S_RDONLY;
	if (!h->length || h->length % v->block_size || h->offset % v->block_size ||
	    h->offset > v->size || h->length > v->size - h->offset)
		return BLK_S_RANGE;
	if (h->op != BLK_DISCARD && h->length > max_io)
		return BLK_S_RANGE;
	return BLK_S_OK;
}

/* pread/pwrite until done: a regular file may still return short. */
static int rw_all(int fd, void *buf, size_t len, uint64_t off, int write)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0) /* the file shrank under us */
			return EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Zeros, with space freed where the file system can: punch a hole, else
 * zero the range in place, else write zeros. */
static int discard(int fd, uint64_t off, uint64_t len)
{
	if (!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return errno;
	if (!fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	static const char zeros[65536];
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int e = rw_all(fd, (void *)zeros, n, off, 1);
		if (e)
			return e;
		off += n;
		len -= n;
	}
	return 0;
}

int volume_execute(const struct volume *v, const struct blk_req *h, void *buf, int *sys_errno)
{
	int e = 0;
	switch (h->op) {
	case BLK_READ:
		e = rw_all(v->fd, buf, h->length, h->offset, 0);
		break;
	case BLK_WRITE:
		e = rw_all(v->fd, buf, h->length, h->offset, 1);
		break;
	case BLK_DISCARD:
		e = discard(v->fd, h->offset, h->length);
		/* O_DSYNC covers writes, not hole punching: sync volumes sync it. */
		if (!e && v->sync && fdatasync(v->fd))
			e = errno;
		break;
	case BLK_FLUSH:
		if (fdatasync(v->fd))
			e = errno;
		break;
	}
	/* With O_DSYNC (a sync volume) the write itself was durable already. */
	if (!e && (h->flags & BLK_F_SYNC) && !v->sync && h->op != BLK_READ && fdatasync(v->fd))
		e = errno;
	*sys_errno = e;
	return e ? BLK_S_IO : BLK_S_OK;
}
