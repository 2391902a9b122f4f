/* codec.c - LZ4 and zstd for whole messages (codec.h). */
#include "codec.h"
#include "msglayer.h"
#include "wire.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* zstd's level 1: its fastest, still well ahead of LZ4 in ratio on
 * typical data; the point here is bandwidth, not archive size. */
#define ZSTD_LEVEL 1

/* The message as one piece: codecs take contiguous input. */
static const uint8_t *gather(const struct iovec *iov, unsigned iovcnt, size_t len, uint8_t **owned)
{
	*owned = NULL;
	if (iovcnt == 1)
		return iov[0].iov_base;
	uint8_t *b = malloc(len ? len : 1);
	if (!b)
		return NULL;
	size_t at = 0;
	for (unsigned i = 0; i < iovcnt; i++) {
		memcpy(b + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	*owned = b;
	return b;
}

void *ml_codec_compress(int codec, const struct iovec *iov, unsigned iovcnt, size_t len,
			size_t *out_len)
{
	if (len <= ML_CODEC_HDR || len > UINT32_MAX || len > (size_t)LZ4_MAX_INPUT_SIZE)
		return NULL;
	uint8_t *owned;
	const uint8_t *src = gather(iov, iovcnt, len, &owned);
	if (!src)
		return NULL;
	/* Room for a result that pays, no more: a codec that needs more gives up. */
	size_t room = len - ML_CODEC_HDR - 1;
	uint8_t *out = malloc(ML_CODEC_HDR + room);
	size_t n = 0;
	if (out && codec == ML_CODEC_LZ4) {
		int r = LZ4_compress_default((const char *)src, (char *)out + ML_CODEC_HDR, (int)len,
					     (int)room);
		n = r > 0 ? (size_t)r : 0;
	} else if (out && codec == ML_CODEC_ZSTD) {
		size_t r = ZSTD_compress(out + ML_CODEC_HDR, room, src, len, ZSTD_LEVEL);
		n = ZSTD_isError(r) ? 0 : r;
	}
	free(owned);
	if (!n) {
		free(out);
		return NULL;
	}
	ml_put32(out, (uint32_t)len);
	*out_len = ML_CODEC_HDR + n;
	return out;
}

void *ml_codec_expand(int codec, const uint8_t *p, size_t len, uint32_t max_len, uint32_t *out_len,
		      const char **why)
{
	if (len < ML_CODEC_HDR) {
		*why = "compressed message shorter than its header";
		return NULL;
	}
	uint32_t orig = ml_get32(p);
	if (orig > max_len) {
		*why = "compressed message expands beyond max_msg_size";
		return NULL;
	}
	uint8_t *out = malloc(orig ? orig : 1);
	if (!out) {
		*why = "out of memory for a compressed message";
		return NULL;
	}
	const uint8_t *src = p + ML_CODEC_HDR;
	size_t srclen = len - ML_CODEC_HDR;
	int ok = 0;
	if (codec == ML_CODEC_LZ4) {
		ok = srclen <= (size_t)INT32_MAX &&
		     LZ4_decompress_safe((const char *)src, (char *)out, (int)srclen, (int)orig) ==
			     (int)orig;
	} else if (codec == ML_CODEC_ZSTD) {
		size_t r = ZSTD_decompress(out, orig, src, srclen);
		ok = !ZSTD_isError(r) && r == orig;
	}
	if (!ok) {
		free(out);
		*why = "compressed message does not expand to its stated length";
		return NULL;
	}
	*out_len = orig;
	return out;
}
