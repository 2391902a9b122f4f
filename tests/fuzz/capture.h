/* capture.h - the bytes of a real session over loopback (for seeds.c). */
#ifndef ML_FUZZ_CAPTURE_H
#define ML_FUZZ_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

struct fz_capture {
	uint8_t *c2s, *s2c; /* malloc'd: what the connector wrote, and the acceptor */
	size_t c2s_len, s2c_len;
};

/* A connector (node FZ_HS_PEER) sends four requests (100 B .. 20000 B, so
 * some in fragments) and a one-way message to an acceptor set up as
 * fuzz_handshake's context (FZ_HS_*), which echoes the requests; a proxy
 * between them records both directions until everything is answered and
 * acknowledged. Returns 0, or -1 if the session did not complete. */
int fz_capture(struct fz_capture *cap);

#endif
