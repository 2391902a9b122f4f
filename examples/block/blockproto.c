/* blockproto.c - encode and decode block requests and responses (blockproto.h). */
#include "blockproto.h"

#include <string.h>

/* Byte by byte: the wire is little-endian whatever the host. */
static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Request header, version 1:
 *   0 magic u32 | 4 version u8 | 5 op u8 | 6 hdr_len u16 | 8 volume u32
 *  12 flags u32 | 16 offset u64 | 24 length u32 | 28 reserved u32 (0) */
void blk_req_encode(const struct blk_req *h, uint8_t out[BLK_REQ_HDR_LEN])
{
	put32(out, BLK_REQ_MAGIC);
	out[4] = BLK_PROTO_VERSION;
	out[5] = h->op;
	put16(out + 6, BLK_REQ_HDR_LEN);
	put32(out + 8, h->volume);
	put32(out + 12, h->flags);
	put64(out + 16, h->offset);
	put32(out + 24, h->length);
	put32(out + 28, 0);
}

/* Response header, version 1:
 *   0 magic u32 | 4 version u8 | 5 op u8 | 6 hdr_len u16 | 8 status u32
 *  12 sys_errno u32 | 16 length u32 | 20 reserved u32 (0) */
void blk_rsp_encode(const struct blk_rsp *h, uint8_t out[BLK_RSP_HDR_LEN])
{
	put32(out, BLK_RSP_MAGIC);
	out[4] = BLK_PROTO_VERSION;
	out[5] = h->op;
	put16(out + 6, BLK_RSP_HDR_LEN);
	put32(out + 8, h->status);
	put32(out + 12, h->sys_errno);
	put32(out + 16, h->length);
	put32(out + 20, 0);
}

int blk_req_decode(const void *msg, size_t len, struct blk_req *h, const void **payload)
{
	const uint8_t *p = msg;
	memset(h, 0, sizeof(*h));
	*payload = NULL;
	if (len < 8 || get32(p) != BLK_REQ_MAGIC)
		return BLK_S_INVAL;
	h->version = p[4];
	h->op = p[5];
	h->hdr_len = get16(p + 6);
	/* A newer version may mean things this one cannot honour: refuse it
	 * rather than guess; the response tells which version we speak. */
	if (h->version != BLK_PROTO_VERSION)
		return BLK_S_VERSION;
	/* A longer header is version 1 plus fields we may skip. */
	if (h->hdr_len < BLK_REQ_HDR_LEN || h->hdr_len > BLK_HDR_LEN_MAX || h->hdr_len > len)
		return BLK_S_INVAL;
	h->volume = get32(p + 8);
	h->flags = get32(p + 12);
	h->offset = get64(p + 16);
	h->length = get32(p + 24);
	size_t body = len - h->hdr_len;
	switch (h->op) {
	case BLK_WRITE:
		if (body != h->length)
			return BLK_S_INVAL;
		*payload = p + h->hdr_len;
		break;
	case BLK_READ:
	case BLK_DISCARD:
		if (body)
			return BLK_S_INVAL;
		break;
	case BLK_FLUSH:
		if (body || h->offset || h->length)
			return BLK_S_INVAL;
		break;
	default:
		return BLK_S_INVAL;
	}
	/* A flag we do not know may be a promise we cannot keep (durability). */
	if (h->flags & ~(uint32_t)BLK_F_KNOWN)
		return BLK_S_UNSUPPORTED;
	return BLK_S_OK;
}

int blk_rsp_decode(const void *msg, size_t len, struct blk_rsp *h, const void **data,
		   const char **why)
{
	const uint8_t *p = msg;
	memset(h, 0, sizeof(*h));
	*data = NULL;
	if (len < BLK_RSP_HDR_LEN || get32(p) != BLK_RSP_MAGIC) {
		*why = "not a block response (short or bad magic)";
		return -1;
	}
	h->version = p[4];
	h->op = p[5];
	h->hdr_len = get16(p + 6);
	h->status = get32(p + 8);
	h->sys_errno = get32(p + 12);
	h->length = get32(p + 16);
	if (h->version != BLK_PROTO_VERSION) {
		*why = "response of another protocol version";
		return -1;
	}
	if (h->hdr_len < BLK_RSP_HDR_LEN || h->hdr_len > len || len - h->hdr_len != h->length) {
		*why = "response header or data length inconsistent";
		return -1;
	}
	*data = p + h->hdr_len;
	return 0;
}

const char *blk_op_name(int op)
{
	switch (op) {
	case BLK_READ: return "read";
	case BLK_WRITE: return "write";
	case BLK_FLUSH: return "flush";
	case BLK_DISCARD: return "discard";
	}
	return "?";
}

const char *blk_status_name(int status)
{
	static const char *const names[] = {
		[BLK_S_OK] = "ok",
		[BLK_S_INVAL] = "malformed request",
		[BLK_S_VERSION] = "protocol version not supported",
		[BLK_S_NOVOL] = "no such volume",
		[BLK_S_RANGE] = "range not aligned, past the end or too long",
		[BLK_S_RDONLY] = "volume is read-only",
		[BLK_S_IO] = "I/O error on the backend",
		[BLK_S_NOMEM] = "backend out of memory",
		[BLK_S_SHUTDOWN] = "backend shutting down",
		[BLK_S_UNSUPPORTED] = "unsupported request flag",
	};
	if (status >= 0 && (size_t)status < sizeof(names) / sizeof(names[0]))
		return names[status];
	return "unknown block status";
}
