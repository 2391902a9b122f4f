/*
 * transport.h - one network path's byte pipe, behind an ops table.
 *
 * A transport moves bytes of one path and reports errors; it knows nothing of
 * frames, sessions or resends. The URL scheme selects it ("tcp://").
 * Ownership: the core owns every fd these ops return and watches it on its
 * worker's libev loop; ops never block and hold no locks.
 * (RDMA, issue 5, will need message-oriented ops; this table grows then.)
 */
#ifndef ML_TRANSPORT_H
#define ML_TRANSPORT_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ml_endpoint {
	const struct ml_transport_ops *ops;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char url[96];
};

struct ml_transport_ops {
	const char *scheme; /* "tcp" */
	/* Bind and listen; *port gets the bound port. Returns 0 or ML_E*. */
	int (*listen)(const struct ml_endpoint *ep, int *fd, unsigned *port);
	/* Accept one connection (non-blocking fd). Returns 0, ML_EAGAIN or ML_ESYS. */
	int (*accept)(int lfd, int *fd, char *peer_url, size_t peer_url_len);
	/* Start a non-blocking connect; completion is signalled by writability. */
	int (*connect)(const struct ml_endpoint *ep, int *fd);
	/* After writability: 0 if connected, else ML_EADDR (errno in *err). */
	int (*connect_done)(int fd, int *err);
	/* Like readv/writev: bytes moved, 0 on EOF (read), -1 with errno. */
	ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
	/* Bound how long the kernel may hide a dead connection (unacked data,
	 * silent peer), in ms; a best effort. */
	void (*set_timeouts)(int fd, unsigned user_timeout_ms);
	/* Break the connection the way a network fault would (enum ml_fault). */
	void (*inject)(int fd, int fault);
	void (*close)(int fd);
};

extern const struct ml_transport_ops ml_tcp_ops;

/* Parse "scheme://host:port" (host: IPv4, [IPv6] or a name). Returns 0,
 * ML_EINVAL (syntax, unknown scheme) or ML_EADDR (name does not resolve). */
int ml_endpoint_parse(const char *url, struct ml_endpoint *ep);

#endif
