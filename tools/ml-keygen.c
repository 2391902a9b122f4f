/*
 * ml-keygen - write a new cluster key file for msglayer (doc/security.md).
 *
 *   ml-keygen [-f] FILE
 *
 * 32 random bytes from the kernel, as 64 hex digits on one line, in a file
 * created with mode 0600 (the library refuses a key file others can read).
 * An existing file is kept unless -f is given. Prints the key's id, the
 * name the handshake uses for it (never the key itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msglayer.h"

static int usage(void)
{
	fprintf(stderr, "usage: ml-keygen [-f] FILE\n"
			"  writes a new cluster key (mode 0600); -f replaces an existing file\n");
	return 2;
}

static int random_bytes(unsigned char *out, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = getrandom(out + got, len - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int force = 0, opt;
	while ((opt = getopt(argc, argv, "fh")) != -1) {
		if (opt == 'f')
			force = 1;
		else
			return usage();
	}
	if (optind != argc - 1)
		return usage();
	const char *path = argv[optind];

	unsigned char key[32];
	char line[2 * sizeof(key) + 2];
	if (random_bytes(key, sizeof(key)) != 0) {
		fprintf(stderr, "ml-keygen: no random bytes: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(line + 2 * i, 3, "%02x", key[i]);
	line[2 * sizeof(key)] = '\n';
	line[2 * sizeof(key) + 1] = 0;
	explicit_bzero(key, sizeof(key));

	/* Written beside the target, then renamed: a reader never sees half a key. */
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "ml-keygen: %s: path too long\n", path);
		return 1;
	}
	if (!force && access(path, F_OK) == 0) {
		fprintf(stderr, "ml-keygen: %s exists; -f replaces it\n", path);
		return 1;
	}
	int fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0) {
		fprintf(stderr, "ml-keygen: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	size_t len = strlen(line);
	int ok = fchmod(fd, 0600) == 0 && write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
	explicit_bzero(line, sizeof(line));
	ok = close(fd) == 0 && ok;
	if (!ok || (force ? rename(tmp, path) : link(tmp, path)) != 0) {
		fprintf(stderr, "ml-keygen: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return 1;
	}
	if (!force)
		unlink(tmp); /* link() made path without replacing anything */

	/* Read back through the library: what every node will load. */
	char id[256];
	if (ml_key_file_check(path, id, sizeof(id)) != 0) {
		fprintf(stderr, "ml-keygen: %s written but not usable: %s\n", path, id);
		return 1;
	}
	printf("ml-keygen: wrote %s (mode 0600), key id %s; copy it to every node\n", path, id);
	return 0;
}
