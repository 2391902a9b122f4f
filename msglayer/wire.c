/* wire.c - frame format v1: see doc/protocol.md for every field. */
#include "wire.h"

#include <isa-l/crc.h>
#include <string.h>

#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_TYPE 5
#define OFF_FLAGS 6
#define OFF_HDRLEN 8
#define OFF_CRC 12
#define OFF_PAYLEN 16
#define OFF_OFFSET 20
#define OFF_SESSION 24
#define OFF_SEQ 32
#define OFF_TAG 40
#define OFF_REF 48
#define OFF_MSGLEN 56
#define OFF_DEADLINE 60

static const char *const wire_errors[] = {
	[ML_WIRE_OK] = "ok",
	[ML_WIRE_NEED_MORE] = "incomplete frame",
	[ML_WIRE_EMAGIC] = "bad magic (not a msglayer frame)",
	[ML_WIRE_EVERSION] = "unsupported frame version",
	[ML_WIRE_ETYPE] = "unknown frame type",
	[ML_WIRE_EHDRLEN] = "header length out of range",
	[ML_WIRE_ECRC] = "header CRC mismatch",
	[ML_WIRE_EFLAGS] = "invalid flags for frame type",
	[ML_WIRE_EPAYLOAD] = "payload length over the limit",
	[ML_WIRE_EFRAGMENT] = "fragment offset/length outside its message",
	[ML_WIRE_EMSGLEN] = "message length over the limit",
	[ML_WIRE_EBODY] = "malformed control payload",
};

const char *ml_wire_strerror(enum ml_wire_err e)
{
	if ((unsigned)e < sizeof(wire_errors) / sizeof(wire_errors[0]) && wire_errors[e])
		return wire_errors[e];
	return "unknown wire error";
}

/* ISA-L returns the raw CRC register, so chunks chain by passing it back in;
 * the standard CRC32C is its complement with an all-ones start. */
static uint32_t crc_update(uint32_t reg, const void *buf, size_t len)
{
	return crc32_iscsi((unsigned char *)(uintptr_t)buf, (int)len, reg);
}

uint32_t ml_crc32c(const void *buf, size_t len)
{
	return ~crc_update(0xffffffffu, buf, len);
}

/* The CRC covers the whole header (hdr_len bytes) with its own field as zero. */
static uint32_t header_crc(const uint8_t *hdr, size_t hdr_len)
{
	static const uint8_t zero[4];
	uint32_t reg = crc_update(0xffffffffu, hdr, OFF_CRC);
	reg = crc_update(reg, zero, sizeof(zero));
	reg = crc_update(reg, hdr + OFF_CRC + 4, hdr_len - OFF_CRC - 4);
	return ~reg;
}

void ml_frame_encode(uint8_t out[ML_WIRE_HDR_LEN], const struct ml_frame_hdr *h)
{
	ml_put32(out + OFF_MAGIC, ML_WIRE_MAGIC);
	out[OFF_VERSION] = ML_WIRE_VERSION;
	out[OFF_TYPE] = h->type;
	ml_put16(out + OFF_FLAGS, h->flags);
	ml_put16(out + OFF_HDRLEN, ML_WIRE_HDR_LEN);
	ml_put16(out + 10, 0);
	ml_put32(out + OFF_PAYLEN, h->payload_len);
	ml_put32(out + OFF_OFFSET, h->offset);
	ml_put64(out + OFF_SESSION, h->session);
	ml_put64(out + OFF_SEQ, h->seq);
	ml_put64(out + OFF_TAG, h->tag);
	ml_put64(out + OFF_REF, h->ref);
	ml_put32(out + OFF_MSGLEN, h->msg_len);
	ml_put32(out + OFF_DEADLINE, h->deadline_us);
	ml_put32(out + OFF_CRC, header_crc(out, ML_WIRE_HDR_LEN));
}

static enum ml_wire_err check_data(const struct ml_frame_hdr *h, const struct ml_wire_limits *lim)
{
	unsigned kind = h->flags & ML_FLAG_KIND_MASK;

	if (kind == 0 || (h->flags & ~ML_FLAGS_KNOWN) || ML_FLAG_CODEC(h->flags) == 3)
		return ML_WIRE_EFLAGS;
	if ((h->flags & ML_FLAG_ABORT) && kind != ML_KIND_RESPONSE)
		return ML_WIRE_EFLAGS;
	if ((h->flags & ML_FLAG_CANCEL) && (kind != ML_KIND_ONEWAY || h->msg_len != 0 || !h->ref))
		return ML_WIRE_EFLAGS;
	if ((h->flags & ML_FLAG_STREAM) && (h->flags & ML_FLAG_CANCEL))
		return ML_WIRE_EFLAGS; /* a stream has its own cancel record */
	if (h->deadline_us && kind != ML_KIND_REQUEST)
		return ML_WIRE_EFLAGS;
	if (h->type == ML_FT_RDESC) /* its fragment's length is in the payload */
		return h->payload_len == ML_RDESC_LEN ? ML_WIRE_OK : ML_WIRE_EPAYLOAD;
	return ml_wire_check_frag(h, h->payload_len, lim);
}

enum ml_wire_err ml_wire_check_frag(const struct ml_frame_hdr *h, uint32_t len,
				    const struct ml_wire_limits *lim)
{
	if (len > lim->max_frag_payload)
		return ML_WIRE_EPAYLOAD;
	if (h->msg_len > lim->max_msg_size)
		return ML_WIRE_EMSGLEN;
	if ((uint64_t)h->offset + len > h->msg_len)
		return ML_WIRE_EFRAGMENT;
	/* Only an empty message may have an empty fragment. */
	if (len == 0 && h->msg_len != 0)
		return ML_WIRE_EFRAGMENT;
	return ML_WIRE_OK;
}

void ml_rdesc_encode(uint8_t out[ML_RDESC_LEN], const struct ml_rdesc *d)
{
	ml_put64(out, d->addr);
	ml_put32(out + 8, d->rkey);
	ml_put32(out + 12, d->len);
}

void ml_rdesc_decode(const uint8_t in[ML_RDESC_LEN], struct ml_rdesc *d)
{
	d->addr = ml_get64(in);
	d->rkey = ml_get32(in + 8);
	d->len = ml_get32(in + 12);
}

enum ml_wire_err ml_frame_decode(const uint8_t *buf, size_t len, const struct ml_wire_limits *lim,
				 struct ml_frame_hdr *h)
{
	/* Reject garbage as early as the bytes allow, so a stray connection is
	 * closed on its first bytes rather than after a full header. */
	if (len < 4)
		return ML_WIRE_NEED_MORE;
	if (ml_get32(buf + OFF_MAGIC) != ML_WIRE_MAGIC)
		return ML_WIRE_EMAGIC;
	if (len < OFF_HDRLEN + 2)
		return ML_WIRE_NEED_MORE;
	if (buf[OFF_VERSION] != ML_WIRE_VERSION)
		return ML_WIRE_EVERSION;
	if (buf[OFF_TYPE] < ML_FT_HELLO || buf[OFF_TYPE] > ML_FT_RDESC)
		return ML_WIRE_ETYPE;
	uint16_t hdr_len = ml_get16(buf + OFF_HDRLEN);
	if (hdr_len < ML_WIRE_HDR_LEN || hdr_len > ML_WIRE_HDR_MAX)
		return ML_WIRE_EHDRLEN;
	if (len < hdr_len)
		return ML_WIRE_NEED_MORE;
	if (ml_get32(buf + OFF_CRC) != header_crc(buf, hdr_len))
		return ML_WIRE_ECRC;

	h->version = buf[OFF_VERSION];
	h->type = buf[OFF_TYPE];
	h->flags = ml_get16(buf + OFF_FLAGS);
	h->hdr_len = hdr_len;
	h->payload_len = ml_get32(buf + OFF_PAYLEN);
	h->offset = ml_get32(buf + OFF_OFFSET);
	h->session = ml_get64(buf + OFF_SESSION);
	h->seq = ml_get64(buf + OFF_SEQ);
	h->tag = ml_get64(buf + OFF_TAG);
	h->ref = ml_get64(buf + OFF_REF);
	h->msg_len = ml_get32(buf + OFF_MSGLEN);
	h->deadline_us = ml_get32(buf + OFF_DEADLINE);

	if (h->type == ML_FT_DATA || h->type == ML_FT_RDESC)
		return check_data(h, lim);
	if (h->flags != 0 || h->deadline_us != 0)
		return ML_WIRE_EFLAGS;
	if (h->payload_len > ML_WIRE_CTRL_MAX)
		return ML_WIRE_EPAYLOAD;
	return ML_WIRE_OK;
}

size_t ml_hello_encode(uint8_t out[ML_HELLO_MAX], const struct ml_hello *h)
{
	ml_put32(out + 0, h->node_id);
	ml_put32(out + 4, h->dest_node_id);
	ml_put64(out + 8, h->incarnation);
	ml_put64(out + 16, h->dest_incarnation);
	ml_put16(out + 24, h->min_version);
	ml_put16(out + 26, h->max_version);
	ml_put16(out + 28, h->path_idx);
	ml_put16(out + 30, h->flags & ML_HELLO_FLAGS_KNOWN);
	ml_put32(out + 32, h->max_frag_payload);
	ml_put32(out + 36, h->max_msg_size);
	ml_put32(out + 40, h->window);
	ml_put32(out + 44, 0);
	if (!(h->flags & ML_HELLO_F_AUTH))
		return ML_HELLO_LEN;
	memcpy(out + 48, h->key_id, 8);
	memcpy(out + 56, h->nonce, 16);
	return ML_HELLO_MAX;
}

/* A longer HELLO comes from a newer version: its extra bytes are skipped. */
enum ml_wire_err ml_hello_decode(const uint8_t *p, size_t len, struct ml_hello *h)
{
	if (len < ML_HELLO_LEN)
		return ML_WIRE_EBODY;
	h->node_id = ml_get32(p + 0);
	h->dest_node_id = ml_get32(p + 4);
	h->incarnation = ml_get64(p + 8);
	h->dest_incarnation = ml_get64(p + 16);
	h->min_version = ml_get16(p + 24);
	h->max_version = ml_get16(p + 26);
	h->path_idx = ml_get16(p + 28);
	h->flags = ml_get16(p + 30) & ML_HELLO_FLAGS_KNOWN;
	h->max_frag_payload = ml_get32(p + 32);
	h->max_msg_size = ml_get32(p + 36);
	h->window = ml_get32(p + 40);
	h->pad = 0;
	memset(h->key_id, 0, sizeof(h->key_id));
	memset(h->nonce, 0, sizeof(h->nonce));
	if (h->flags & ML_HELLO_F_AUTH) {
		if (len < ML_HELLO_MAX)
			return ML_WIRE_EBODY;
		memcpy(h->key_id, p + 48, 8);
		memcpy(h->nonce, p + 56, 16);
	}
	unsigned protect = ML_HELLO_PROTECT(h->flags);
	if (h->node_id == 0 || h->incarnation == 0 || h->min_version == 0 ||
	    h->min_version > h->max_version || h->window == 0 || protect > 2 ||
	    (protect && !(h->flags & ML_HELLO_F_AUTH)))
		return ML_WIRE_EBODY;
	return ML_WIRE_OK;
}

/* ACK payload: u64 cum, u32 nranges, u32 zero, then nranges x (u64 start, u64 end). */
size_t ml_ack_encoded_len(const struct ml_ack *a)
{
	return 16 + (size_t)a->nranges * 16;
}

size_t ml_ack_encode(uint8_t *out, const struct ml_ack *a)
{
	ml_put64(out, a->cum);
	ml_put32(out + 8, a->nranges);
	ml_put32(out + 12, 0);
	for (unsigned i = 0; i < a->nranges; i++) {
		ml_put64(out + 16 + i * 16, a->r[i].start);
		ml_put64(out + 24 + i * 16, a->r[i].end);
	}
	return ml_ack_encoded_len(a);
}

/* Ranges must be ascending, disjoint, above cum and not touching it: anything
 * else is a broken peer, not something to guess about. */
enum ml_wire_err ml_ack_decode(const uint8_t *p, size_t len, struct ml_ack *a)
{
	if (len < 16)
		return ML_WIRE_EBODY;
	a->cum = ml_get64(p);
	uint32_t n = ml_get32(p + 8);
	if (n > ML_WIRE_SACK_MAX || len < 16 + (size_t)n * 16)
		return ML_WIRE_EBODY;
	/* Each range starts at least 2 above the previous end (or cum). Written
	 * as a difference: "last + 1" would wrap to 0 when last is UINT64_MAX. */
	uint64_t last = a->cum;
	for (uint32_t i = 0; i < n; i++) {
		a->r[i].start = ml_get64(p + 16 + i * 16);
		a->r[i].end = ml_get64(p + 24 + i * 16);
		if (a->r[i].start <= last || a->r[i].start - last < 2 || a->r[i].end < a->r[i].start)
			return ML_WIRE_EBODY;
		last = a->r[i].end;
	}
	a->nranges = n;
	return ML_WIRE_OK;
}
