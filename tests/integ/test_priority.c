/*
 * test_priority.c - on one path, a small message is written before the bulk
 * fragments queued ahead of it (doc/streams.md, Latency next to streams).
 *
 * A raw client sends two requests in one TCP segment, so that the server
 * handles both in one loop turn: the first asks for a 1 MiB answer (16
 * fragments of 64 KiB), the second for 8 bytes. The server's path then holds
 * the 16 fragments and the small answer at once, none of them begun. Without
 * the priority class the small answer comes after all 16; with it, first.
 */
#include "check.h"
#include "msglayer.h"
#include "raw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV 1
#define CLI 2
#define BIG (1u << 20)
#define FRAG 65536u

static uint8_t big_answer[BIG];

static void on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *m)
{
	(void)arg;
	(void)from;
	struct ml_buf b = m->len == 3 ? ml_buf_plain(big_answer, BIG) : ml_buf_plain("answered", 8);
	CHECK(ml_respond(req, &b, 1, 0, NULL, NULL) == ML_OK, "respond");
}

/* Appends one DATA request frame (header and payload) at out; returns its length. */
static size_t request_frame(uint8_t *out, uint64_t session, uint64_t seq, const char *payload)
{
	uint32_t len = (uint32_t)strlen(payload);
	struct ml_frame_hdr h = { .type = ML_FT_DATA, .flags = ML_KIND_REQUEST, .payload_len = len,
				  .msg_len = len, .seq = seq, .tag = seq, .session = session };
	ml_frame_encode(out, &h);
	memcpy(out + ML_WIRE_HDR_LEN, payload, len);
	return ML_WIRE_HDR_LEN + len;
}

int main(void)
{
	for (size_t i = 0; i < BIG; i++)
		big_answer[i] = (uint8_t)(i * 7);
	struct ml_config c;
	ml_ctx *srv;
	ml_config_init(&c);
	c.node_id = SRV;
	c.on_request = on_request;
	c.max_frag_payload = FRAG;
	CHECK(ml_ctx_create(&c, &srv) == ML_OK, "server");
	CHECK(ml_listen(srv, "tcp://127.0.0.1:0") == ML_OK, "listen");
	check_listening(srv, 1, 10);

	int fd = raw_connect(ml_listen_port(srv, 0));
	struct ml_hello hello = { .node_id = CLI, .dest_node_id = SRV, .incarnation = 0x5eed,
				  .min_version = 1, .max_version = 1, .max_frag_payload = FRAG,
				  .max_msg_size = 4 * BIG, .window = 64 };
	uint64_t session = raw_hello(fd, &hello);

	uint8_t two[2 * (ML_WIRE_HDR_LEN + 8)];
	size_t n = request_frame(two, session, 1, "big");
	n += request_frame(two + n, session, 2, "small");
	CHECK(send(fd, two, n, MSG_NOSIGNAL) == (ssize_t)n, "send both requests");

	/* The answers' DATA frames in wire order: where the small one is. */
	static uint8_t buf[FRAG + 4096];
	unsigned frames = 0, small_at = 0, big_frags = 0;
	uint64_t big_bytes = 0;
	while (big_frags < BIG / FRAG || !small_at) {
		struct ml_frame_hdr h;
		raw_recv_frame(fd, buf, sizeof(buf), &h);
		if (h.type != ML_FT_DATA)
			continue; /* heartbeats */
		CHECK((h.flags & ML_FLAG_KIND_MASK) == ML_KIND_RESPONSE, "frame %u: flags %x", frames, h.flags);
		frames++;
		if (h.ref == 2) {
			CHECK(h.msg_len == 8 && !memcmp(buf, "answered", 8), "the small answer");
			small_at = frames;
		} else {
			CHECK(h.ref == 1 && h.msg_len == BIG && h.payload_len == FRAG &&
				      !memcmp(buf, big_answer + h.offset, FRAG),
			      "a fragment of the big answer: ref %llu, %u bytes at %u",
			      (unsigned long long)h.ref, h.payload_len, h.offset);
			big_frags++;
			big_bytes += h.payload_len;
		}
	}
	CHECK(big_bytes == BIG, "the big answer: %llu bytes", (unsigned long long)big_bytes);
	CHECK(small_at == 1, "the small answer was frame %u of %u: behind %u bulk fragments", small_at,
	      frames, small_at - 1);
	printf("  small answer first of %u frames, ahead of the 16 fragments of a 1 MiB answer queued before it\n",
	       frames);
	close(fd);
	ml_ctx_destroy(srv);
	printf("test_priority: passed\n");
	return 0;
}
