/*
 * seal.h - protected paths: after the handshake, a path's byte stream is cut
 * into sealed records (doc/protocol.md section 5.2, doc/security.md).
 *
 * A record is: u32 body length (1..ML_SEAL_RECORD_MAX), the body, a 16-byte
 * tag. AES-256-GCM with one key per path and direction, derived from the
 * cluster key and both handshake nonces, and the record's number on the path
 * as the nonce (never reused: every connection has fresh keys). Mode MAC
 * sends the body in the clear and authenticates length and body (GMAC);
 * mode ENCRYPT encrypts the body and authenticates both. The frames inside
 * are unchanged: sealing sits between the frame layer and the transport.
 */
#ifndef ML_SEAL_H
#define ML_SEAL_H

#include "auth.h"
#include "../transports/transport.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define ML_SEAL_RECORD_MAX 16384 /* body bytes: short enough that a heartbeat waits little */
#define ML_SEAL_TAG_LEN 16
#define ML_SEAL_OVERHEAD (4 + ML_SEAL_TAG_LEN)
#define ML_SEAL_KEY_LEN 32
#define ML_SEAL_PLAIN_MAX 16384 /* handshake bytes that may still wait when sealing starts */

struct ml_seal;

/* The two keys of one path: what the connector sends with (c2a) and what
 * the acceptor sends with (a2c). hello is the connector's HELLO payload as
 * the handshake MACs cover it (it holds the connector's nonce, node ids and
 * incarnations), nonce the acceptor's challenge nonce. 0, or -1. */
int ml_seal_derive(const struct ml_key *k, const uint8_t *hello, size_t hello_len,
		   const uint8_t nonce[ML_NONCE_LEN], int mode, uint8_t c2a[ML_SEAL_KEY_LEN],
		   uint8_t a2c[ML_SEAL_KEY_LEN]);

/* A sealer for one connection in mode ML_PROTECT_MAC or ML_PROTECT_ENCRYPT.
 * The first tx_plain bytes written go out as they are (the end of the
 * handshake); everything after is sealed. Input is opened from the first
 * byte pushed or read. NULL when out of memory or without the cipher. */
struct ml_seal *ml_seal_new(int mode, const uint8_t tx_key[ML_SEAL_KEY_LEN],
			    const uint8_t rx_key[ML_SEAL_KEY_LEN], size_t tx_plain);
void ml_seal_free(struct ml_seal *s);
int ml_seal_mode(const struct ml_seal *s);

/* Like writev on the transport: seals the bytes of iov and writes them.
 * Returns the bytes of iov taken (all of them unless the transport stopped
 * taking sealed bytes), or -1 with errno (EAGAIN: sealed bytes from before
 * still wait; nothing was taken). Taken bytes the transport did not take yet
 * wait in the sealer: ml_seal_pending tells, ml_seal_drain writes them. */
ssize_t ml_seal_writev(struct ml_seal *s, const struct ml_transport_ops *ops, int fd,
		       const struct iovec *iov, int iovcnt);
int ml_seal_pending(const struct ml_seal *s);
/* 0 when nothing waits any more, else -1 with errno (EAGAIN: some still do). */
int ml_seal_drain(struct ml_seal *s, const struct ml_transport_ops *ops, int fd);

/* Input: read sealed bytes into the space ml_seal_rx_space gives (0 bytes:
 * none until records are opened; ml_seal_rx_room tells without moving any),
 * then say how many with ml_seal_rx_got. ml_seal_rx_push adds bytes read
 * before sealing began (they came after the last handshake frame); 0 or
 * ML_ENOMEM. */
struct iovec ml_seal_rx_space(struct ml_seal *s);
size_t ml_seal_rx_room(const struct ml_seal *s);
void ml_seal_rx_got(struct ml_seal *s, size_t n);
int ml_seal_rx_push(struct ml_seal *s, const uint8_t *p, size_t n);
/* Open whole records into dst while their bodies fit in room; *got bytes
 * written there. 0, or ML_EPROTO (a record length out of range) or ML_EAUTH
 * (a record failed authentication), with *why set. */
int ml_seal_open(struct ml_seal *s, uint8_t *dst, size_t room, size_t *got, const char **why);

#endif
