/* frames.h - frame-stream helpers the fuzz targets share. */
#ifndef ML_FUZZ_FRAMES_H
#define ML_FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/* Make the header CRC of every frame in b[0, len) right, frame after frame,
 * as far as headers are found (magic, a hdr_len in range, all of it there).
 * A random CRC almost never matches, so without this a fuzzer spends its
 * time in front of the CRC check. With session not NULL, the frames that
 * carry a checked session id (DATA, ACK, PING, PONG) get that one first. */
void fz_fix_frames(uint8_t *b, size_t len, const uint64_t *session);

#endif
