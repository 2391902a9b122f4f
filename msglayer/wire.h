/*
 * wire.h - frame format v1 (doc/protocol.md is the specification).
 *
 * Pure functions: no I/O, no allocation. The decoder is total: any bytes give
 * a header, "need more", or one specific error.
 */
#ifndef ML_WIRE_H
#define ML_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define ML_WIRE_MAGIC 0x53464c4du /* bytes "MLFS" on the wire */
#define ML_WIRE_VERSION 1
#define ML_WIRE_MIN_VERSION 1
#define ML_WIRE_HDR_LEN 64        /* fixed header of version 1 */
#define ML_WIRE_HDR_MAX 1024      /* longest header a receiver accepts */
#define ML_WIRE_CTRL_MAX 4096     /* longest payload of a non-DATA frame */
#define ML_WIRE_SACK_MAX 64       /* selective ranges in one ACK frame */

enum ml_frame_type {
	ML_FT_HELLO = 1,
	ML_FT_HELLO_ACK = 2,
	ML_FT_DATA = 3,
	ML_FT_ACK = 4,
	ML_FT_PING = 5,
	ML_FT_PONG = 6,
	ML_FT_CLOSE = 7,
	ML_FT_AUTH = 8, /* challenge-response after HELLO when the cluster has a key */
	ML_FT_RDESC = 9, /* a DATA fragment the receiver pulls with RDMA READ: header as DATA,
	                    payload a descriptor (struct ml_rdesc); only on paths where both
	                    ends announced ML_HELLO_F_RDMA_READ */
};

/* DATA flags: the kind of message in the low two bits, then modifiers. */
enum ml_msg_kind { ML_KIND_REQUEST = 1, ML_KIND_RESPONSE = 2, ML_KIND_ONEWAY = 3 };
#define ML_FLAG_KIND_MASK 0x3u
#define ML_FLAG_ABORT 0x4u  /* RESPONSE: the handler aborted; payload = reason text */
#define ML_FLAG_CANCEL 0x8u /* ONEWAY, empty: the requester gave up request `ref` */
/* bits 4-5: the codec of a compressed message (enum ml_codec; 3 is invalid) */
#define ML_FLAG_CODEC_SHIFT 4
#define ML_FLAG_CODEC_MASK 0x30u
#define ML_FLAG_CODEC(flags) (((flags) & ML_FLAG_CODEC_MASK) >> ML_FLAG_CODEC_SHIFT)
#define ML_FLAG_STREAM 0x40u /* the stream layer's (doc/streams.md), never the application's
                                handlers: an open, its answer, a chunk or a control record */
#define ML_FLAGS_KNOWN (ML_FLAG_KIND_MASK | ML_FLAG_ABORT | ML_FLAG_CANCEL | ML_FLAG_CODEC_MASK | \
			ML_FLAG_STREAM)

struct ml_frame_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint16_t hdr_len;
	uint32_t payload_len;
	uint32_t offset;  /* DATA: where this fragment's payload starts in the message */
	uint64_t session;
	uint64_t seq;     /* DATA: message sequence number */
	uint64_t tag;
	uint64_t ref;     /* DATA response: sequence number of its request */
	uint32_t msg_len; /* DATA: length of the whole message */
	uint32_t deadline_us; /* DATA request: the requester gives up this long after sending (0: never) */
};

enum ml_wire_err {
	ML_WIRE_OK = 0,
	ML_WIRE_NEED_MORE = 1, /* not an error: read more bytes */
	ML_WIRE_EMAGIC,
	ML_WIRE_EVERSION,
	ML_WIRE_ETYPE,
	ML_WIRE_EHDRLEN,
	ML_WIRE_ECRC,
	ML_WIRE_EFLAGS,
	ML_WIRE_EPAYLOAD,    /* payload length over the limit for this frame type */
	ML_WIRE_EFRAGMENT,   /* offset/length do not fit in the message */
	ML_WIRE_EMSGLEN,     /* message length over the limit */
	ML_WIRE_EBODY,       /* control payload malformed */
};

const char *ml_wire_strerror(enum ml_wire_err e);

struct ml_wire_limits {
	uint32_t max_frag_payload;
	uint32_t max_msg_size;
};

/* CRC32C (Castagnoli) as in iSCSI: crc32c("123456789") == 0xe3069283. */
uint32_t ml_crc32c(const void *buf, size_t len);

/* Write the 64-byte v1 header for h (hdr_len and version are set by it). */
void ml_frame_encode(uint8_t out[ML_WIRE_HDR_LEN], const struct ml_frame_hdr *h);

/* Parse a header from the first len bytes of buf. On ML_WIRE_OK, *h is filled
 * and the payload starts at buf + h->hdr_len (header bytes past the v1 fields
 * belong to newer versions and are skipped). ML_WIRE_NEED_MORE: read more. */
enum ml_wire_err ml_frame_decode(const uint8_t *buf, size_t len, const struct ml_wire_limits *lim,
				 struct ml_frame_hdr *h);

/* ---- control payloads ---- */

#define ML_HELLO_LEN 48
#define ML_HELLO_F_AUTH 0x1u  /* flags: an authentication block follows */
/* flags bits 1-2: protection (enum ml_protect, 0..2; needs AUTH). HELLO: the
 * least the connector accepts; HELLO_ACK: what the acceptor chose. */
#define ML_HELLO_F_PROTECT_SHIFT 1
#define ML_HELLO_F_PROTECT_MASK 0x6u
#define ML_HELLO_PROTECT(flags) (((flags) & ML_HELLO_F_PROTECT_MASK) >> ML_HELLO_F_PROTECT_SHIFT)
/* flags bits 3-4: the codecs the sender accepts in messages sent to it
 * (bit 3 LZ4, bit 4 zstd), in HELLO and HELLO_ACK alike */
#define ML_HELLO_F_CODEC_SHIFT 2 /* ML_ACCEPT_* << 2 */
#define ML_HELLO_F_CODEC_MASK 0x18u
/* flags bit 5: this end of the path can pull RDESC fragments with RDMA READ */
#define ML_HELLO_F_RDMA_READ 0x20u
#define ML_HELLO_FLAGS_KNOWN (ML_HELLO_F_AUTH | ML_HELLO_F_PROTECT_MASK | ML_HELLO_F_CODEC_MASK | \
			      ML_HELLO_F_RDMA_READ)
#define ML_HELLO_AUTH_LEN 24  /* key id (8), connector's nonce (16) */
#define ML_HELLO_MAX (ML_HELLO_LEN + ML_HELLO_AUTH_LEN)
struct ml_hello {
	uint32_t node_id;        /* sender */
	uint32_t dest_node_id;   /* who the sender expects to reach (0: anyone) */
	uint64_t incarnation;    /* sender's */
	uint64_t dest_incarnation; /* the sender's last known incarnation of the receiver (0: none) */
	uint16_t min_version, max_version; /* HELLO: range offered; HELLO_ACK: both = chosen */
	uint16_t path_idx;       /* connector's index of this path */
	uint16_t flags;          /* ML_HELLO_F_*; unknown bits are ignored */
	uint32_t max_frag_payload; /* largest DATA payload the sender accepts */
	uint32_t max_msg_size;     /* largest message the sender accepts */
	uint32_t window;           /* messages the sender's receive window holds */
	uint32_t pad;
	uint8_t key_id[8];       /* with ML_HELLO_F_AUTH: which cluster key */
	uint8_t nonce[16];       /* with ML_HELLO_F_AUTH: the connector's fresh nonce */
};
/* Writes ML_HELLO_LEN bytes, ML_HELLO_MAX with ML_HELLO_F_AUTH; returns how many. */
size_t ml_hello_encode(uint8_t out[ML_HELLO_MAX], const struct ml_hello *h);
enum ml_wire_err ml_hello_decode(const uint8_t *p, size_t len, struct ml_hello *h);

/* AUTH payloads: the acceptor's challenge (its nonce and its proof), then
 * the connector's proof. */
#define ML_AUTH_CHALLENGE_LEN 52 /* nonce (16), MAC (32), protection chosen (1), reserved (3) */
#define ML_AUTH_PROOF_LEN 32     /* MAC */

/* ACK payload: cumulative point, then ranges [start, end] (inclusive) above it. */
struct ml_sack_range {
	uint64_t start, end;
};
struct ml_ack {
	uint64_t cum;   /* every sequence number <= cum was delivered */
	unsigned nranges;
	struct ml_sack_range r[ML_WIRE_SACK_MAX];
};
size_t ml_ack_encoded_len(const struct ml_ack *a);
size_t ml_ack_encode(uint8_t *out, const struct ml_ack *a);
enum ml_wire_err ml_ack_decode(const uint8_t *p, size_t len, struct ml_ack *a);

/* RDESC payload: where the fragment's bytes are in the sender's registered
 * memory, on the device of the path it came on. */
#define ML_RDESC_LEN 16
struct ml_rdesc {
	uint64_t addr; /* the sender's virtual address of the fragment's first byte */
	uint32_t rkey; /* its remote key */
	uint32_t len;  /* the fragment's length (the header's payload_len is ML_RDESC_LEN) */
};
void ml_rdesc_encode(uint8_t out[ML_RDESC_LEN], const struct ml_rdesc *d);
void ml_rdesc_decode(const uint8_t in[ML_RDESC_LEN], struct ml_rdesc *d);
/* Whether a fragment of len bytes at h->offset fits h's message and the
 * limits: what a DATA header's decode checks of its payload, for an RDESC's. */
enum ml_wire_err ml_wire_check_frag(const struct ml_frame_hdr *h, uint32_t len,
				    const struct ml_wire_limits *lim);

/* PING/PONG payload: the sender's monotonic time in ns, echoed by PONG. */
#define ML_PING_LEN 8

/* CLOSE payload: u32 status (an ML_E* code), then UTF-8 reason text. */
#define ML_CLOSE_MIN 4

/* Little-endian helpers (no-ops on little-endian hosts). */
static inline void ml_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void ml_put32(uint8_t *p, uint32_t v)
{
	ml_put16(p, (uint16_t)v);
	ml_put16(p + 2, (uint16_t)(v >> 16));
}
static inline void ml_put64(uint8_t *p, uint64_t v)
{
	ml_put32(p, (uint32_t)v);
	ml_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t ml_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ml_get32(const uint8_t *p)
{
	return (uint32_t)ml_get16(p) | ((uint32_t)ml_get16(p + 2) << 16);
}
static inline uint64_t ml_get64(const uint8_t *p)
{
	return (uint64_t)ml_get32(p) | ((uint64_t)ml_get32(p + 4) << 32);
}

#endif
