/* mutate.h - frame-level mutations for fuzz_handshake's input (fuzz.h).
 *
 * Byte-level mutations rarely turn one valid frame into another valid one
 * that matters: the session's rules are about how frames relate (the same
 * sequence number, a length another fragment gave). These mutations work on
 * whole frames, which the target's CRC fix-up then keeps valid. */
#ifndef ML_FUZZ_MUTATE_H
#define ML_FUZZ_MUTATE_H

#include <stddef.h>
#include <stdint.h>

/* Mutate d (size bytes, room for max) as seed picks: a header field of
 * one frame takes another frame's value (type, flags, offset, session,
 * seq, ref, msg_len), sometimes one off; a fragment becomes a whole
 * message or the reverse; a frame is repeated after another one (of any
 * chunk), dropped, or moved. Returns the new size, or 0 when the input
 * has no whole frame or the result would not fit (mutate otherwise). */
size_t fz_mutate_frames(uint8_t *d, size_t size, size_t max, unsigned seed);

#endif
