/* raw.h - a raw TCP client that speaks frames by hand (wire.h), for tests
 * that must send what the library never would. */
#ifndef ML_TEST_RAW_H
#define ML_TEST_RAW_H

#include "check.h"
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static inline int raw_connect(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
	return fd;
}

/* One frame with header h (type, flags, session, seq... as given). */
static inline void raw_send_frame(int fd, const struct ml_frame_hdr *h, const void *payload)
{
	uint8_t hdr[ML_WIRE_HDR_LEN];
	ml_frame_encode(hdr, h);
	CHECK(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL | (h->payload_len ? MSG_MORE : 0)) ==
		      (ssize_t)sizeof(hdr),
	      "send header");
	if (h->payload_len)
		CHECK(send(fd, payload, h->payload_len, MSG_NOSIGNAL) == (ssize_t)h->payload_len,
		      "send payload");
}

static inline void raw_send(int fd, uint8_t type, const void *payload, uint32_t len)
{
	struct ml_frame_hdr h = { .type = type, .payload_len = len };
	raw_send_frame(fd, &h, payload);
}

/* Reads one frame: its header into *h, its payload into out (at most cap). */
static inline void raw_recv_frame(int fd, uint8_t *out, size_t cap, struct ml_frame_hdr *h)
{
	uint8_t hdr[ML_WIRE_HDR_LEN];
	size_t got = 0;
	while (got < sizeof(hdr)) {
		ssize_t r = recv(fd, hdr + got, sizeof(hdr) - got, 0);
		CHECK(r > 0, "recv header: %s", r ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
	struct ml_wire_limits lim = { 1 << 20, 1 << 20 };
	CHECK(ml_frame_decode(hdr, sizeof(hdr), &lim, h) == ML_WIRE_OK, "frame header");
	CHECK(h->payload_len <= cap, "payload of %u bytes", h->payload_len);
	for (got = 0; got < h->payload_len;) {
		ssize_t r = recv(fd, out + got, h->payload_len - got, 0);
		CHECK(r > 0, "recv payload");
		got += (size_t)r;
	}
}

/* Reads one frame: its type, and its payload into out (at most cap). */
static inline uint8_t raw_recv(int fd, uint8_t *out, size_t cap, uint32_t *len)
{
	struct ml_frame_hdr h;
	raw_recv_frame(fd, out, cap, &h);
	*len = h.payload_len;
	return h.type;
}

/* Sends hello as a HELLO, reads the HELLO_ACK: the session number of both ends. */
static inline uint64_t raw_hello(int fd, const struct ml_hello *hello)
{
	uint8_t buf[ML_HELLO_MAX];
	uint32_t len;
	raw_send(fd, ML_FT_HELLO, buf, (uint32_t)ml_hello_encode(buf, hello));
	CHECK(raw_recv(fd, buf, sizeof(buf), &len) == ML_FT_HELLO_ACK, "HELLO_ACK");
	struct ml_hello ack;
	CHECK(ml_hello_decode(buf, len, &ack) == ML_WIRE_OK, "HELLO_ACK payload");
	return hello->incarnation ^ ack.incarnation;
}

#endif
