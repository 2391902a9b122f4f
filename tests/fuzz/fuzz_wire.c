/*
 * fuzz_wire.c - libFuzzer target: the frame codec (msglayer/wire.c).
 *
 * Input: bytes as they come off a path. They are decoded frame after frame
 * as a path does (header, then the body its type has), and every answer is
 * compared with doc/protocol.md as written: section 3's checks in their
 * order, 4.1's and 4.3's body rules, each restated here in a few lines of
 * its own (an independent CRC32C included). What decodes must encode back to
 * the same bytes and decode again to the same values; a decoded header must
 * need exactly hdr_len bytes (every shorter prefix asks for more). The input
 * is then decoded once more with every header CRC made right, so the checks
 * behind the CRC are reached without the fuzzer having to guess a CRC.
 */
#include <stdint.h>
#include <string.h>

#include "frames.h"
#include "fuzz.h"
#include "wire.h"

/* The defaults of ml_config, and the smallest limits a context may have. */
static const struct ml_wire_limits lim_default = { 256 * 1024, 64u << 20 };
static const struct ml_wire_limits lim_small = { 4096, 65536 };

/* ---- doc/protocol.md, restated ---- */

/* CRC32C bit by bit, as section 2 defines it: reflected 0x82F63B78. */
static uint32_t spec_crc32c(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

static uint32_t spec_header_crc(const uint8_t *b, size_t hl)
{
	uint8_t h[ML_WIRE_HDR_MAX];
	memcpy(h, b, hl);
	memset(h + 12, 0, 4);
	return spec_crc32c(h, hl);
}

/* Section 3, check by check, in the table's order. */
static enum ml_wire_err spec_decode(const uint8_t *b, size_t len, const struct ml_wire_limits *lim)
{
	if (len < 4)
		return ML_WIRE_NEED_MORE;
	if (memcmp(b, "MLFS", 4) != 0)
		return ML_WIRE_EMAGIC;
	if (len < 10)
		return ML_WIRE_NEED_MORE;
	if (b[4] != 1)
		return ML_WIRE_EVERSION;
	if (b[5] < 1 || b[5] > 9)
		return ML_WIRE_ETYPE;
	size_t hl = ml_get16(b + 8);
	if (hl < 64 || hl > 1024)
		return ML_WIRE_EHDRLEN;
	if (len < hl)
		return ML_WIRE_NEED_MORE;
	if (ml_get32(b + 12) != spec_header_crc(b, hl))
		return ML_WIRE_ECRC;
	unsigned type = b[5], flags = ml_get16(b + 6), kind = flags & 3;
	uint64_t payload = ml_get32(b + 16), offset = ml_get32(b + 20), ref = ml_get64(b + 48);
	uint64_t msg_len = ml_get32(b + 56), deadline = ml_get32(b + 60);
	if (type != ML_FT_DATA && type != ML_FT_RDESC)
		return flags || deadline ? ML_WIRE_EFLAGS
		       : payload > 4096  ? ML_WIRE_EPAYLOAD : ML_WIRE_OK;
	/* 4.2: kind 1..3; ABORT only on a response; CANCEL only on an empty
	 * one-way message naming a request; STREAM (bit 6) not with CANCEL;
	 * a deadline only on a request; codec (bits 4-5) 0..2. */
	if (kind == 0 || (flags & ~0x7fu) || (flags & 0x30) == 0x30 || ((flags & 4) && kind != 2) ||
	    ((flags & 8) && (kind != 3 || msg_len != 0 || ref == 0)) || ((flags & 0x48) == 0x48) ||
	    (deadline && kind != 1))
		return ML_WIRE_EFLAGS;
	if (type == ML_FT_RDESC) /* 4.8: the payload is a 16-byte descriptor */
		return payload == 16 ? ML_WIRE_OK : ML_WIRE_EPAYLOAD;
	if (payload > lim->max_frag_payload)
		return ML_WIRE_EPAYLOAD;
	if (msg_len > lim->max_msg_size)
		return ML_WIRE_EMSGLEN;
	if (offset + payload > msg_len || (payload == 0 && msg_len != 0))
		return ML_WIRE_EFRAGMENT;
	return ML_WIRE_OK;
}

/* 4.1: at least 48 bytes (72 with flag AUTH, bit 0 at 30); node_id,
 * incarnation, min_version, window not 0; min_version <= max_version;
 * PROTECT (bits 1-2) at most 2, and only with AUTH. */
static int spec_hello_ok(const uint8_t *p, size_t len)
{
	unsigned flags = len >= 32 ? ml_get16(p + 30) : 0, protect = (flags >> 1) & 3;
	return len >= 48 && ml_get32(p) && ml_get64(p + 8) && ml_get16(p + 24) &&
	       ml_get16(p + 24) <= ml_get16(p + 26) && ml_get32(p + 40) &&
	       (!(flags & 1) || len >= 72) && protect <= 2 && (!protect || (flags & 1));
}

/* 4.3, in 128-bit arithmetic so that nothing can wrap. */
static int spec_ack_ok(const uint8_t *p, size_t len)
{
	if (len < 16)
		return 0;
	uint64_t n = ml_get32(p + 8);
	if (n > 64 || len < 16 + 16 * n)
		return 0;
	unsigned __int128 last = ml_get64(p);
	for (uint64_t i = 0; i < n; i++) {
		unsigned __int128 s = ml_get64(p + 16 + 16 * i), e = ml_get64(p + 24 + 16 * i);
		if (s < last + 2 || e < s)
			return 0;
		last = e;
	}
	return 1;
}

/* ---- checks ---- */

static void check_hdr_equal(const struct ml_frame_hdr *a, const struct ml_frame_hdr *b)
{
	FZ_CHECK(a->version == b->version && a->type == b->type && a->flags == b->flags &&
			 a->payload_len == b->payload_len && a->offset == b->offset &&
			 a->session == b->session && a->seq == b->seq && a->tag == b->tag &&
			 a->ref == b->ref && a->msg_len == b->msg_len && a->deadline_us == b->deadline_us,
		 "header differs after a round trip");
}

/* A header that decoded: the fields it promises, and a round trip. */
static void check_header(const uint8_t *b, const struct ml_frame_hdr *h,
			 const struct ml_wire_limits *lim)
{
	FZ_CHECK(h->hdr_len >= ML_WIRE_HDR_LEN && h->hdr_len <= ML_WIRE_HDR_MAX, "hdr_len %u",
		 h->hdr_len);
	if (h->type == ML_FT_DATA)
		FZ_CHECK(h->payload_len <= lim->max_frag_payload && h->msg_len <= lim->max_msg_size &&
				 (uint64_t)h->offset + h->payload_len <= h->msg_len,
			 "DATA header out of its limits");
	else if (h->type == ML_FT_RDESC)
		FZ_CHECK(h->payload_len == ML_RDESC_LEN && (h->flags & ML_FLAG_KIND_MASK),
			 "RDESC header: not a descriptor, or no message kind");
	else
		FZ_CHECK(h->payload_len <= ML_WIRE_CTRL_MAX && !h->flags, "control header");

	/* Every shorter prefix is "read more": nothing is decided early. */
	struct ml_frame_hdr t;
	for (size_t cut = 0; cut < h->hdr_len; cut++)
		FZ_CHECK(ml_frame_decode(b, cut, lim, &t) == ML_WIRE_NEED_MORE, "prefix %zu decided", cut);

	uint8_t enc[ML_WIRE_HDR_LEN];
	ml_frame_encode(enc, h);
	/* The encoder writes a 64-byte header with reserved 0: where the input
	 * did too, the bytes are the input's. */
	if (h->hdr_len == ML_WIRE_HDR_LEN && ml_get16(b + 10) == 0)
		FZ_CHECK(memcmp(enc, b, ML_WIRE_HDR_LEN) == 0, "encode(decode(x)) != x");
	FZ_CHECK(ml_frame_decode(enc, sizeof(enc), lim, &t) == ML_WIRE_OK, "re-encoded header refused");
	check_hdr_equal(h, &t);
	FZ_CHECK(t.hdr_len == ML_WIRE_HDR_LEN, "encoder hdr_len %u", t.hdr_len);
}

static void check_hello(const uint8_t *p, size_t len)
{
	struct ml_hello h, t;
	enum ml_wire_err e = ml_hello_decode(p, len, &h);
	FZ_CHECK((e == ML_WIRE_OK) == spec_hello_ok(p, len), "hello verdict %d against 4.1", e);
	FZ_CHECK(e == ML_WIRE_OK || e == ML_WIRE_EBODY, "hello error %d", e);
	if (e)
		return;
	uint8_t enc[ML_HELLO_MAX];
	size_t n = ml_hello_encode(enc, &h);
	int auth = ml_get16(p + 30) & 1;
	unsigned known = ml_get16(p + 30) & 0x3f; /* AUTH, PROTECT, CODECS, RDMA_READ */
	/* Equal but for the reserved fields and unknown flags, which the
	 * encoder writes as 0; the authentication block when flagged. */
	FZ_CHECK(n == (auth ? ML_HELLO_MAX : ML_HELLO_LEN) && memcmp(enc, p, 30) == 0 &&
			 memcmp(enc + 32, p + 32, 12) == 0 && ml_get16(enc + 30) == known &&
			 ml_get32(enc + 44) == 0 && (!auth || memcmp(enc + 48, p + 48, 24) == 0),
		 "hello bytes differ after a round trip");
	FZ_CHECK(ml_hello_decode(enc, n, &t) == ML_WIRE_OK && memcmp(&h, &t, sizeof(h)) == 0,
		 "hello differs after a round trip");
}

static void check_ack(const uint8_t *p, size_t len)
{
	static struct ml_ack a, t; /* 1 KiB each: off the stack */
	static uint8_t enc[16 + 16 * ML_WIRE_SACK_MAX];
	enum ml_wire_err e = ml_ack_decode(p, len, &a);
	FZ_CHECK((e == ML_WIRE_OK) == spec_ack_ok(p, len), "ack verdict %d against 4.3", e);
	FZ_CHECK(e == ML_WIRE_OK || e == ML_WIRE_EBODY, "ack error %d", e);
	if (e)
		return;
	size_t n = ml_ack_encode(enc, &a);
	FZ_CHECK(n == ml_ack_encoded_len(&a) && n == 16 + 16 * (size_t)a.nranges, "ack length %zu", n);
	FZ_CHECK(memcmp(enc, p, 12) == 0 && ml_get32(enc + 12) == 0 && memcmp(enc + 16, p + 16, n - 16) == 0,
		 "ack bytes differ after a round trip");
	FZ_CHECK(ml_ack_decode(enc, n, &t) == ML_WIRE_OK && t.cum == a.cum && t.nranges == a.nranges &&
			 memcmp(t.r, a.r, a.nranges * sizeof(a.r[0])) == 0,
		 "ack differs after a round trip");
}

/* Decode b as a path does: frame after frame until one is incomplete or
 * fails. Returns the bytes consumed by whole frames. */
static size_t decode_stream(const uint8_t *b, size_t len, const struct ml_wire_limits *lim)
{
	size_t off = 0;
	while (off < len) {
		const uint8_t *f = b + off;
		size_t avail = len - off;
		struct ml_frame_hdr h;
		enum ml_wire_err e = ml_frame_decode(f, avail, lim, &h), want = spec_decode(f, avail, lim);
		FZ_CHECK(e == want, "decoder says %d (%s), section 3 says %d", e, ml_wire_strerror(e), want);
		FZ_CHECK(ml_wire_strerror(e) != NULL, "no text for %d", e);
		if (e != ML_WIRE_OK)
			break;
		check_header(f, &h, lim);
		/* The body decoders are total too: feed them what there is. */
		const uint8_t *payload = f + h.hdr_len;
		size_t have = avail - h.hdr_len < h.payload_len ? avail - h.hdr_len : h.payload_len;
		if (h.type == ML_FT_HELLO || h.type == ML_FT_HELLO_ACK)
			check_hello(payload, have);
		else if (h.type == ML_FT_ACK)
			check_ack(payload, have);
		if (have < h.payload_len)
			break;
		off += h.hdr_len + h.payload_len;
	}
	return off;
}

static void run(const uint8_t *b, size_t len)
{
	size_t whole = decode_stream(b, len, &lim_default);
	size_t whole_small = decode_stream(b, len, &lim_small);
	/* Smaller limits only refuse more. */
	FZ_CHECK(whole_small <= whole, "small limits took %zu bytes, default %zu", whole_small, whole);
	/* The bodies alone, whatever comes before them. */
	check_hello(b, len);
	check_ack(b, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FZ_CHECK(ml_crc32c(data, size) == spec_crc32c(data, size), "CRC32C of %zu bytes", size);
	run(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	fz_fix_frames(copy, size, NULL);
	run(copy, size);
	free(copy);
	return 0;
}
