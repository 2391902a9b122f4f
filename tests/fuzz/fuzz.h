/*
 * fuzz.h - what the fuzz targets (fuzz_*.c) and the seed generator
 * (seeds.c) share: the failure report, and the input formats of the targets
 * whose input is more than the bytes under test.
 */
#ifndef ML_FUZZ_H
#define ML_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken invariant is a crash to libFuzzer: it keeps the input. */
#define FZ_CHECK(cond, ...)                                                             \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FUZZ INVARIANT %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* ---- fuzz_handshake: bytes a connector sends to an accepting context ----
 *
 * Input: one options byte, then chunks, each a u16 (little-endian) length and
 * that many bytes (the last one may be cut short). Each chunk is written to
 * the connection at once and the context runs until it has read it, so a
 * chunk boundary is where a real connector would wait (after its HELLO).
 */
#define FZ_HS_FIX_CRC 0x01     /* the target rewrites each frame's header CRC */
#define FZ_HS_FIX_SESSION 0x02 /* ... and the session of DATA/ACK/PING/PONG (after a HELLO) */
#define FZ_HS_KNOWN_ONLY 0x04  /* accept_unknown_peers = 0: only FZ_HS_PEER may connect */
#define FZ_HS_SENDS_SHIFT 3    /* bits 3-4: messages the acceptor sends to FZ_HS_PEER */
#define FZ_HS_SENDS_MASK 0x3

#define FZ_HS_NODE 1                        /* the accepting context's node id */
#define FZ_HS_INCARNATION 0x5eed0001acce9701ull /* ... and its incarnation */
#define FZ_HS_PEER 2                        /* the peer it knows */
#define FZ_HS_PEER_INCARNATION 0x0c0ec7002a11ce5ull /* what the seeds' connector uses */
#define FZ_HS_FRAG 4096                     /* its max_frag_payload (the minimum: F = 4096) */
#define FZ_HS_MAX_MSG 65536                 /* its max_msg_size */
#define FZ_HS_WINDOW 64                     /* its max_inflight_msgs */

/* ---- fuzz_reasm: fragment descriptors for a receive window and reassembly ----
 *
 * Input: a header, then 8-byte operations.
 *   header: u16 F - 1 (the fragment size, 1..65536), u8 window selector
 *           (W = 64 << (sel & 3)), u8 seed (message lengths)
 *   op:     u8 code (FZ_RA_*), u8 x, u16 d, u32 v (little-endian)
 * Sequence numbers are relative: base + 1 + (d % (W + 2)), so that most fall
 * in the window and a few just past it.
 */
#define FZ_RA_HDR 4
#define FZ_RA_OP 8
enum fz_ra_code {
	FZ_RA_FRAG = 0,     /* fragment v % nfrags of its message, as a sender cuts it */
	FZ_RA_RAW = 1,      /* offset v, length x << 8 | (d >> 8): mostly not a fragment */
	FZ_RA_MISMATCH = 2, /* fragment v of a message said to be 1 + x % F bytes longer */
	FZ_RA_WHOLE = 3,    /* a whole message of x bytes in one frame */
	FZ_RA_CHECK = 4,    /* verdict of sequence number v * 2^32 + d, any value (no change) */
	FZ_RA_RESET = 5,    /* the session starts over */
	FZ_RA_NCODES = 6,
};

#endif
