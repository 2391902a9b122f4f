/*
 * codec.h - compressed messages (doc/protocol.md 4.2, doc/api.md).
 *
 * A compressed message's payload on the wire is its original length (u32),
 * then the codec's output. The codec travels in the DATA flags; a peer uses
 * only the codecs the receiver announced in its handshake.
 */
#ifndef ML_CODEC_H
#define ML_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ML_CODEC_HDR 4 /* the original length, before the compressed bytes */

/* Compress the len bytes of iov with codec (ML_CODEC_LZ4, ML_CODEC_ZSTD)
 * into a new buffer (header included): *out_len its size. NULL when it does
 * not pay (the result would not be smaller) or memory is short: the message
 * then goes as it is. */
void *ml_codec_compress(int codec, const struct iovec *iov, unsigned iovcnt, size_t len,
			size_t *out_len);

/* Expand a compressed payload into a new buffer of the original length
 * (*out_len), which must be at most max_len. NULL with *why on a malformed
 * payload or without memory. */
void *ml_codec_expand(int codec, const uint8_t *p, size_t len, uint32_t max_len, uint32_t *out_len,
		      const char **why);

#endif
