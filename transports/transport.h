/*
 * transport.h - one network path's byte pipe, behind an ops table.
 *
 * A transport moves bytes of one path and reports errors; it knows nothing of
 * frames, sessions or resends. The URL scheme selects it ("tcp://",
 * "rdma://"). Ownership: the core owns every fd these ops return and watches
 * it on its worker's libev loop; ops never block. A connection's fd is
 * readable when readv has something to report (bytes, end, error); where
 * room for writev is signalled is the transport's choice (room_fd).
 * The RDMA transport (rdma.c, doc/rdma.md) is a byte pipe too: its fds are
 * epoll fds over the CM and completion channels.
 */
#ifndef ML_TRANSPORT_H
#define ML_TRANSPORT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ml_endpoint {
	const struct ml_transport_ops *ops;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage src; /* "?src=ADDR": bind before connecting (srclen 0: none) */
	socklen_t srclen;
	const char *why;             /* ml_endpoint_parse failed: a static reason, or NULL */
	char url[96];
};

struct ml_tp_mem; /* a registered memory region (below) */

/* room_fd's events: the fd it gives is watched for readability or writability. */
enum { ML_TP_READABLE = 1, ML_TP_WRITABLE = 2 };

struct ml_transport_ops {
	const char *scheme; /* "tcp", "rdma" */
	/* NULL if the transport can run on this host, else why not (a static
	 * string). Asked when a URL is parsed. Optional (NULL: always can). */
	const char *(*unavailable)(void);
	/* Bind and listen; *port gets the bound port. Returns 0 or ML_E*. */
	int (*listen)(const struct ml_endpoint *ep, int *fd, unsigned *port);
	/* Accept one connection (non-blocking fd). Returns 0, ML_EAGAIN or ML_ESYS. */
	int (*accept)(int lfd, int *fd, char *peer_url, size_t peer_url_len);
	/* Start a non-blocking connect; its end is signalled on room_fd. */
	int (*connect)(const struct ml_endpoint *ep, int *fd);
	/* After room_fd fired: 0 if connected, ML_EAGAIN if still under way
	 * (watch room_fd again), else ML_EADDR (errno in *err). */
	int (*connect_done)(int fd, int *err);
	/* The fd (and ML_TP_READABLE or ML_TP_WRITABLE) that signals room for
	 * writev after it could not take everything, and the end of a connect. */
	int (*room_fd)(int fd, int *events);
	/* > 0 if input already waits that readv would return: the event loop
	 * is late, the path is not silent. */
	int (*pending)(int fd);
	/* Like readv/writev: bytes moved, 0 on EOF (read), -1 with errno. */
	ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
	/* Bound how long the kernel may hide a dead connection (unacked data,
	 * silent peer), in ms; a best effort. */
	void (*set_timeouts)(int fd, unsigned user_timeout_ms);
	/* Why the last readv, writev or connect_done failed, in the transport's
	 * words (a work completion status, a CM event); NULL: errno says it all.
	 * Optional (NULL: errno's text). */
	const char *(*why)(int fd);
	/* Zero copy (doc/rdma.md), optional: NULL where the transport cannot
	 * (TCP). mem_key: the remote key of region m on this connection's
	 * device; 0, or -1 if m is not registered there. read: pull len bytes
	 * at the peer's raddr/rkey into dst (inside region m); 0, or -1 with
	 * errno (EAGAIN: no read slot free now; try again after reads_done).
	 * A read that fails fails the connection (readv reports it); the
	 * reads in flight then are never reported. reads_done: up to max
	 * cookies of reads completed since the last call; their bytes are in. */
	int (*mem_key)(int fd, const struct ml_tp_mem *m, uint32_t *rkey);
	int (*read)(int fd, const struct ml_tp_mem *m, void *dst, uint32_t len, uint64_t raddr,
		    uint32_t rkey, uint64_t cookie);
	unsigned (*reads_done)(int fd, uint64_t *cookies, unsigned max);
	/* writev and readv copy the bytes through buffers of their own (RDMA's
	 * registered rings): the core counts them (ml_path_stats.bytes_copied). */
	int copies;
	/* Break the connection the way a network fault would (enum ml_fault). */
	void (*inject)(int fd, int fault);
	void (*close)(int fd);
};

/* Memory regions for zero copy (transports/rdma_mem.c): registered with
 * every RDMA device this process uses, and with those it opens later;
 * without RDMA only recorded. add: 0 or ML_ENOMEM. Any thread. */
int ml_tp_mem_add(void *base, size_t len, struct ml_tp_mem **out);
void ml_tp_mem_del(struct ml_tp_mem *m);

extern const struct ml_transport_ops ml_tcp_ops;
extern const struct ml_transport_ops ml_rdma_ops;

/* Parse "scheme://host:port[?src=ADDR]" (host: IPv4, [IPv6] or a name; src:
 * the local address to connect from). Returns 0, ML_EINVAL (syntax, unknown
 * scheme or option) or ML_EADDR (a name does not resolve, or the transport
 * cannot run here); on ML_EADDR ep->why may say why. */
int ml_endpoint_parse(const char *url, struct ml_endpoint *ep);

#endif
