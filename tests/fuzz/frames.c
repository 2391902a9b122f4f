/* frames.c - frame-stream helpers the fuzz targets share (see frames.h). */
#include "frames.h"
#include "wire.h"

void fz_fix_frames(uint8_t *b, size_t len, const uint64_t *session)
{
	size_t off = 0;
	while (len - off >= ML_WIRE_HDR_LEN && ml_get32(b + off) == ML_WIRE_MAGIC) {
		uint8_t *f = b + off;
		size_t hl = ml_get16(f + 8);
		if (hl < ML_WIRE_HDR_LEN || hl > ML_WIRE_HDR_MAX || hl > len - off)
			return;
		uint8_t type = f[5];
		if (session && type >= ML_FT_DATA && type <= ML_FT_PONG)
			ml_put64(f + 24, *session);
		ml_put32(f + 12, 0); /* the CRC is computed with its own field zero */
		ml_put32(f + 12, ml_crc32c(f, hl));
		size_t total = hl + ml_get32(f + 16);
		if (total > len - off)
			return;
		off += total;
	}
}
