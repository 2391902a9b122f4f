/* mutate.c - frame-level mutations of fuzz_handshake's input (see mutate.h). */
#include "mutate.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Enough for any seed; a rebuilt input keeps only this many chunks, and
 * frames past the limit stay as bytes of their chunk. */
#define MAX_FRAMES 512
#define MAX_CHUNKS 64

struct frame {
	unsigned chunk;
	size_t off, len; /* in the input */
};

struct parsed {
	size_t chunk_off[MAX_CHUNKS], chunk_len[MAX_CHUNKS]; /* chunk bytes in the input */
	unsigned nchunks;
	struct frame f[MAX_FRAMES];
	unsigned nframes;
};

/* Chunks, and the whole frames at the start of each (what follows the
 * last whole frame of a chunk is kept as it is). */
static void parse(const uint8_t *d, size_t size, struct parsed *p)
{
	size_t off = 1;
	p->nchunks = p->nframes = 0;
	while (off + 2 <= size && p->nchunks < MAX_CHUNKS) {
		size_t n = ml_get16(d + off);
		off += 2;
		if (n > size - off)
			n = size - off;
		unsigned c = p->nchunks++;
		p->chunk_off[c] = off;
		p->chunk_len[c] = n;
		for (size_t at = off; at + ML_WIRE_HDR_LEN <= off + n && p->nframes < MAX_FRAMES;) {
			size_t hl = ml_get16(d + at + 8), total = hl + (size_t)ml_get32(d + at + 16);
			if (ml_get32(d + at) != ML_WIRE_MAGIC || hl < ML_WIRE_HDR_LEN || hl > ML_WIRE_HDR_MAX ||
			    total > off + n - at)
				break;
			p->f[p->nframes++] = (struct frame){ c, at, total };
			at += total;
		}
		off += n;
	}
}

/* The header fields a mutation may take from another frame (offset, size):
 * type, flags, offset, session, seq, ref, msg_len. Not payload_len: the
 * frame's bytes would no longer be where it says (byte-level mutations
 * still change it). */
static const struct {
	unsigned off, size;
} fields[] = { { 5, 1 }, { 6, 2 }, { 20, 4 }, { 24, 8 }, { 32, 8 }, { 48, 8 }, { 56, 4 } };

static void put_n(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_n(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Rebuild the input with frame `drop` left out (if < nframes) and frame
 * `extra` inserted after frame `after` (if < nframes). */
static size_t rebuild(uint8_t *d, size_t max, const struct parsed *p, unsigned drop, unsigned extra,
		      unsigned after)
{
	uint8_t *o = malloc(max);
	if (!o)
		return 0;
	size_t n = 0;
	o[n++] = d[0];
	for (unsigned c = 0; c < p->nchunks; c++) {
		size_t len_at = n, start, end = p->chunk_off[c] + p->chunk_len[c];
		if (n + 2 > max)
			goto too_long;
		n += 2;
		start = n;
		size_t at = p->chunk_off[c];
		for (unsigned i = 0; i < p->nframes; i++) {
			const struct frame *f = &p->f[i];
			if (f->chunk != c)
				continue;
			at = f->off + f->len;
			size_t need = (i != drop ? f->len : 0) + (i == after ? p->f[extra].len : 0);
			if (n + need > max)
				goto too_long;
			if (i != drop) {
				memcpy(o + n, d + f->off, f->len);
				n += f->len;
			}
			if (i == after) {
				memcpy(o + n, d + p->f[extra].off, p->f[extra].len);
				n += p->f[extra].len;
			}
		}
		if (n + (end - at) > max || n - start + (end - at) > UINT16_MAX)
			goto too_long;
		memcpy(o + n, d + at, end - at); /* what was not a whole frame */
		n += end - at;
		ml_put16(o + len_at, (uint16_t)(n - start));
	}
	memcpy(d, o, n);
	free(o);
	return n;
too_long:
	free(o);
	return 0;
}

size_t fz_mutate_frames(uint8_t *d, size_t size, size_t max, unsigned seed)
{
	static struct parsed p;
	if (size < 1)
		return 0;
	parse(d, size, &p);
	if (!p.nframes)
		return 0;
	unsigned a = seed % p.nframes, b = (seed / 7) % p.nframes;
	uint8_t *fa = d + p.f[a].off, *fb = d + p.f[b].off;
	switch ((seed / 1031) % 6) {
	case 0: /* a field takes another frame's value, sometimes one off */
	case 1: {
		unsigned k = (seed / 65537) % (sizeof(fields) / sizeof(fields[0]));
		unsigned at = fields[k].off, n = fields[k].size;
		uint64_t v = get_n(fb + at, n);
		if (n > 2 && (seed >> 28) % 3)
			v += (seed >> 27) & 1 ? 1 : (uint64_t)-1;
		put_n(fa + at, v, n);
		return size;
	}
	case 2: /* a fragment becomes a whole message, or a whole one grows */
		if ((seed >> 20) & 1) {
			put_n(fa + 56, get_n(fa + 16, 4), 4);
			put_n(fa + 20, 0, 4);
		} else {
			put_n(fa + 56, get_n(fa + 16, 4) + get_n(fb + 56, 4), 4);
		}
		return size;
	case 3: /* a frame again, after another one (perhaps of another chunk) */
		return rebuild(d, max, &p, UINT32_MAX, a, b);
	case 4: /* a frame less */
		return rebuild(d, max, &p, a, UINT32_MAX, UINT32_MAX);
	default: /* a frame moved after another one */
		if (a == b)
			return 0;
		{
			size_t n = rebuild(d, max, &p, UINT32_MAX, a, b);
			if (!n)
				return 0;
			/* the copy is in; now drop the original, whose index moved if after b */
			parse(d, n, &p);
			unsigned orig = a > b ? a + 1 : a;
			return orig < p.nframes ? rebuild(d, max, &p, orig, UINT32_MAX, UINT32_MAX) : n;
		}
	}
}
