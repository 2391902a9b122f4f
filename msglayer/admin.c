/*
 * admin.c - the admin socket (cfg.admin_socket): a Unix stream socket served
 * by one small thread of its own, with poll(2), so that it answers in worker
 * and embedded mode alike and never runs on (or blocks) a worker. One request
 * line per connection, one JSON answer, then close; admin_cmd.c runs the
 * commands. Connections are served one at a time, each within READ_TIMEOUT_S
 * to send its line and WRITE_TIMEOUT_S to take the answer, so a stuck client
 * holds the thread for a bounded time only. Protocol: doc/mlctl.md.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_TIMEOUT_S 1.0
#define WRITE_TIMEOUT_S 1.0
#define ACCEPT_BACKOFF_MS 100 /* after accept failed for lack of fds or memory */

struct ml_admin {
	struct ml_ctx *ctx;
	char *path;
	int fd;      /* listening socket */
	int wake_fd; /* eventfd: readable once ml_admin_close wants the thread gone */
	dev_t dev;   /* the socket file we created: only that one is unlinked */
	ino_t ino;
	pthread_t thread;
};

const char *ml_admin_path(const struct ml_admin *a)
{
	return a ? a->path : NULL;
}

/* ---- serving one connection ---- */

enum { LINE_OK, LINE_NONE, LINE_TOO_LONG, LINE_TIMEOUT, LINE_STOP };

/* Wait until fd is ready for events or the deadline passes. 1: ready,
 * 0: timed out, -1: the thread must stop. */
static int wait_fd(struct ml_admin *a, int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - ml_mono_now();
		if (left <= 0)
			return 0;
		struct pollfd pf[2] = { { fd, events, 0 }, { a->wake_fd, POLLIN, 0 } };
		int n = poll(pf, 2, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return 0;
		if (n > 0 && pf[1].revents)
			return -1;
		if (n > 0 && pf[0].revents)
			return 1; /* ready, or an error the next call reports */
	}
}

/* Read one request line into buf (at most ML_ADMIN_LINE_MAX bytes with its
 * newline). The line ends at the first newline or at the end of the stream;
 * *len is its length without the newline. */
static int read_line(struct ml_admin *a, int fd, char *buf, size_t *len)
{
	double deadline = ml_mono_now() + READ_TIMEOUT_S;
	size_t have = 0;
	for (;;) {
		ssize_t n = recv(fd, buf + have, ML_ADMIN_LINE_MAX - have, 0);
		if (n > 0) {
			char *nl = memchr(buf + have, '\n', (size_t)n);
			have += (size_t)n;
			if (nl) {
				*len = (size_t)(nl - buf);
				return LINE_OK;
			}
			if (have == ML_ADMIN_LINE_MAX)
				return LINE_TOO_LONG;
			continue;
		}
		if (n == 0) { /* end of stream: what came is the request, if anything */
			*len = have;
			return have ? LINE_OK : LINE_NONE;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return LINE_NONE; /* the client is gone: nobody to answer */
		int r = wait_fd(a, fd, POLLIN, deadline);
		if (r < 0)
			return LINE_STOP;
		if (r == 0)
			return LINE_TIMEOUT;
	}
}

static void write_all(struct ml_admin *a, int fd, const char *p, size_t len)
{
	double deadline = ml_mono_now() + WRITE_TIMEOUT_S;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(a, fd, POLLOUT, deadline) != 1)
				return;
		} else {
			return; /* the client is gone */
		}
	}
}

static void serve(struct ml_admin *a, int fd)
{
	char buf[ML_ADMIN_LINE_MAX + 1];
	size_t len = 0, rlen = 0;
	char *resp = NULL;

	switch (read_line(a, fd, buf, &len)) {
	case LINE_OK:
		if (len && buf[len - 1] == '\r')
			len--;
		buf[len] = 0;
		if (memchr(buf, 0, len))
			resp = ml_admin_error(ML_EINVAL, "bad request", "request contains a NUL byte",
					      &rlen);
		else
			resp = ml_admin_run(a->ctx, buf, &rlen);
		break;
	case LINE_TOO_LONG:
		resp = ml_admin_error(ML_EINVAL, "bad request",
				      "request line longer than 4096 bytes", &rlen);
		break;
	case LINE_TIMEOUT:
		resp = ml_admin_error(ML_EINVAL, "bad request",
				      "no complete request line within 1 s", &rlen);
		break;
	default: /* LINE_NONE, LINE_STOP */
		return;
	}
	if (resp) {
		int shown = (int)strcspn(resp, "\n"); /* one log line, no newline */
		ml_log(a->ctx, ML_LOG_DEBUG, "admin socket answered: %.*s%s", shown < 120 ? shown : 120,
		       resp, shown > 120 ? "..." : "");
		write_all(a, fd, resp, rlen);
		free(resp);
	} else {
		static const char oom[] =
			"{\"ok\":false,\"code\":-2,\"error\":\"out of memory\",\"detail\":\"\"}\n";
		write_all(a, fd, oom, sizeof(oom) - 1);
	}
}

static void *admin_main(void *arg)
{
	struct ml_admin *a = arg;
	int backoff = 0;
	for (;;) {
		struct pollfd pf[2] = { { backoff ? -1 : a->fd, POLLIN, 0 }, { a->wake_fd, POLLIN, 0 } };
		int n = poll(pf, 2, backoff ? ACCEPT_BACKOFF_MS : -1);
		if (n < 0 && errno != EINTR) {
			ml_log(a->ctx, ML_LOG_ERR, "admin socket: poll: %s", strerror(errno));
			backoff = 1;
			continue;
		}
		if (n > 0 && pf[1].revents)
			break;
		if (n == 0)
			backoff = 0;
		if (n <= 0 || !pf[0].revents)
			continue;
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of fds or memory (or worse): pause rather than spin. */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED) {
				ml_log(a->ctx, ML_LOG_WARN, "admin socket: accept: %s", strerror(errno));
				backoff = 1;
			}
			continue;
		}
		serve(a, fd);
		close(fd);
	}
	return NULL;
}

/* ---- opening and closing ---- */

static void admin_free(struct ml_admin *a)
{
	if (a->fd >= 0)
		close(a->fd);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	free(a->path);
	free(a);
}

/* What is at the path that bind found in use: 1 a live socket (or one we
 * cannot judge), 0 a stale socket (connect refused: nobody listens),
 * 2 gone meanwhile, -1 not a socket at all. */
static int probe(const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) != 0)
		return errno == ENOENT ? 2 : 1;
	if (!S_ISSOCK(st.st_mode))
		return -1;
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c < 0)
		return 1;
	int rc = connect(c, (const struct sockaddr *)sa, sizeof(*sa));
	int err = errno;
	close(c);
	if (rc == 0)
		return 1;
	if (err == ECONNREFUSED)
		return 0;
	return err == ENOENT ? 2 : 1; /* EAGAIN (its backlog is full), EACCES, ...: in use */
}

/* Bind fd to sa; a stale socket file left by a process that died is
 * replaced, a live one never. */
static int bind_path(struct ml_ctx *ctx, int fd, const struct sockaddr_un *sa)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno != EADDRINUSE) {
			ml_log(ctx, ML_LOG_ERR, "admin socket %s: bind: %s", sa->sun_path, strerror(errno));
			return ML_EADDR;
		}
		switch (probe(sa)) {
		case 1:
			ml_log(ctx, ML_LOG_ERR, "admin socket %s is in use by a running process",
			       sa->sun_path);
			return ML_EEXIST;
		case -1:
			ml_log(ctx, ML_LOG_ERR, "admin socket %s: a file that is not a socket is there",
			       sa->sun_path);
			return ML_EEXIST;
		case 0:
			if (unlink(sa->sun_path) != 0 && errno != ENOENT) {
				ml_log(ctx, ML_LOG_ERR, "admin socket %s: cannot remove the stale socket: %s",
				       sa->sun_path, strerror(errno));
				return ML_EADDR;
			}
			ml_log(ctx, ML_LOG_INFO, "admin socket %s: removed a stale socket", sa->sun_path);
			break;
		default: /* gone meanwhile: bind again */
			break;
		}
	}
	ml_log(ctx, ML_LOG_ERR, "admin socket %s: keeps being taken", sa->sun_path);
	return ML_EEXIST;
}

int ml_admin_open(struct ml_ctx *ctx, const char *path, struct ml_admin **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int rc;

	*out = NULL;
	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
		ml_log(ctx, ML_LOG_ERR, "admin socket path %s (at most %zu bytes)",
		       path && *path ? "too long" : "empty", sizeof(sa.sun_path) - 1);
		return ML_EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	struct ml_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return ML_ENOMEM;
	a->ctx = ctx;
	a->wake_fd = -1;
	a->path = strdup(path);
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!a->path || a->fd < 0) {
		rc = a->path ? ML_ESYS : ML_ENOMEM;
		if (a->fd < 0)
			ml_log(ctx, ML_LOG_ERR, "admin socket: socket: %s", strerror(errno));
		admin_free(a);
		return rc;
	}
	/* On Linux the file bind creates takes the socket's mode (less the
	 * umask): 0600 from the start, no window where others may connect. */
	(void)fchmod(a->fd, 0600);
	rc = bind_path(ctx, a->fd, &sa);
	if (rc) {
		admin_free(a);
		return rc;
	}
	if (chmod(path, 0600) != 0 || stat(path, &st) != 0 || listen(a->fd, 16) != 0) {
		ml_log(ctx, ML_LOG_ERR, "admin socket %s: %s", path, strerror(errno));
		unlink(path);
		admin_free(a);
		return ML_ESYS;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* The thread takes no signals: they stay with the application's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = a->wake_fd < 0 ? errno : pthread_create(&a->thread, NULL, admin_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		ml_log(ctx, ML_LOG_ERR, "admin socket %s: cannot start its thread: %s", path,
		       strerror(errno));
		unlink(path);
		admin_free(a);
		return ML_ESYS;
	}
	pthread_setname_np(a->thread, "ml-admin");
	ml_log(ctx, ML_LOG_INFO, "admin socket listening on %s", path);
	*out = a;
	return 0;
}

void ml_admin_close(struct ml_admin *a)
{
	struct stat st;
	uint64_t one = 1;
	if (!a)
		return;
	while (write(a->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(a->thread, NULL);
	/* Only our own file: not one another process put there meanwhile. */
	if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
		unlink(a->path);
	admin_free(a);
}
