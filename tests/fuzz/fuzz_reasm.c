/*
 * fuzz_reasm.c - libFuzzer target: fragment reassembly (msglayer/reasm.c)
 * and the receive window (msglayer/rxwin.c), driven as a session drives them.
 *
 * Input (format in fuzz.h): a fragment size F, a window W, then operations,
 * mostly DATA frames named by sequence number and fragment. A receiver made
 * of one ml_rxwin and W ml_reasm slots takes each frame by the rules of
 * doc/protocol.md 6.4, and a model made of plain arrays says what must
 * happen. Checked after every operation:
 *  - the window's verdict (new, duplicate, out of the window) and the
 *    reassembly's (new, duplicate, not a fragment) are the model's;
 *  - a message is delivered exactly once, when its last fragment arrives,
 *    and its bytes are the ones sent, each in its place;
 *  - a reassembly slot is empty or holds the number that maps to it;
 *  - after each delivery, the ACK the window describes is the model's (cum,
 *    then the first 64 ranges of delivered numbers) and one the peer's
 *    decoder accepts.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "msglayer.h"
#include "reasm.h"
#include "rxwin.h"
#include "wire.h"

#define MAX_OPS 1024
#define MAX_W 512
#define MAX_SEQ (MAX_OPS + MAX_W + 3) /* base grows by one per op at most */
#define BUDGET (1u << 20)             /* bytes held in reassembly, as peer.c bounds them */

struct rx {
	/* under test */
	struct ml_rxwin win;
	struct ml_reasm *slot[MAX_W];
	uint64_t held;
	/* the model */
	uint64_t base;
	uint8_t delivered[MAX_SEQ];
	uint32_t part_len[MAX_SEQ]; /* message length its first fragment gave (0: none) */
	uint64_t part_have[MAX_SEQ]; /* fragments in (at most 64, see msg_len_of) */
	/* the input's terms */
	uint32_t frag, w;
	uint8_t seed;
};

/* Message bytes: byte k of message seq is table[(k + shift(seq)) % 64 Ki],
 * so that any stretch of up to 64 KiB of any message is one pointer into
 * the doubled table: fragments need no copying, messages compare by memcmp. */
#define TABLE 65536
static uint8_t table[2 * TABLE];

static const uint8_t *content(const struct rx *r, uint64_t seq, uint64_t k)
{
	return table + ((k + seq * 131 + r->seed) & (TABLE - 1));
}

static int content_ok(const struct rx *r, uint64_t seq, const uint8_t *buf, uint32_t len)
{
	for (uint32_t k = 0; k < len; k += TABLE)
		if (memcmp(buf + k, content(r, seq, k), len - k < TABLE ? len - k : TABLE) != 0)
			return 0;
	return 1;
}

/* The length of message seq, as its sender would give it: 0 .. 63 F, so
 * that a message has at most 64 fragments (the model's bitmap). */
static uint32_t msg_len_of(const struct rx *r, uint64_t seq)
{
	uint64_t max = 63ull * r->frag < (1u << 18) ? 63ull * r->frag : (1u << 18);
	uint64_t h = (seq + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)r->seed * 0xbf58476d1ce4e5b9ull;
	return (uint32_t)((h >> 29) % (max + 1));
}

static enum ml_rxwin_verdict model_window(const struct rx *r, uint64_t seq)
{
	if (seq <= r->base)
		return ML_RXWIN_DUP;
	if (seq - r->base > r->w)
		return ML_RXWIN_OUT;
	return r->delivered[seq] ? ML_RXWIN_DUP : ML_RXWIN_NEW;
}

/* The ACK the model's state calls for (6.5). */
static void model_ack(const struct rx *r, struct ml_ack *a)
{
	a->cum = r->base;
	a->nranges = 0;
	for (uint64_t s = r->base + 1; s <= r->base + r->w && a->nranges < ML_WIRE_SACK_MAX; s++) {
		if (!r->delivered[s])
			continue;
		uint64_t e = s;
		while (e + 1 <= r->base + r->w && r->delivered[e + 1])
			e++;
		a->r[a->nranges].start = s;
		a->r[a->nranges].end = e;
		a->nranges++;
		s = e;
	}
}

static void check_ack(const struct rx *r)
{
	static struct ml_ack got, want, again;
	static uint8_t enc[16 + 16 * ML_WIRE_SACK_MAX];
	ml_rxwin_ack(&r->win, &got);
	model_ack(r, &want);
	FZ_CHECK(got.cum == want.cum && got.nranges == want.nranges &&
			 memcmp(got.r, want.r, got.nranges * sizeof(got.r[0])) == 0,
		 "ACK cum %llu with %u ranges, the model says cum %llu with %u",
		 (unsigned long long)got.cum, got.nranges, (unsigned long long)want.cum, want.nranges);
	size_t n = ml_ack_encode(enc, &got);
	FZ_CHECK(ml_ack_decode(enc, n, &again) == ML_WIRE_OK, "the peer would refuse our ACK");
}

static void deliver(struct rx *r, uint64_t seq)
{
	FZ_CHECK(!r->delivered[seq], "%llu delivered twice", (unsigned long long)seq);
	ml_rxwin_mark(&r->win, seq);
	r->delivered[seq] = 1;
	while (r->delivered[r->base + 1])
		r->base++;
	FZ_CHECK(r->win.base == r->base, "window base %llu, model %llu", (unsigned long long)r->win.base,
		 (unsigned long long)r->base);
	check_ack(r); /* only a delivery changes what the ACK says */
}

static void drop_slot(struct rx *r, unsigned i)
{
	ml_reasm_free(r->slot[i]);
	free(r->slot[i]);
	r->slot[i] = NULL;
}

/* The model's verdict on a fragment of message seq (reasm.h's rules). */
static enum ml_reasm_verdict model_fragment(const struct rx *r, uint64_t seq, uint32_t msg_len,
					    uint32_t off, uint32_t len)
{
	uint32_t total = r->part_len[seq];
	if (msg_len != total || off % r->frag || off >= total)
		return ML_REASM_BAD;
	if (len != (total - off < r->frag ? total - off : r->frag))
		return ML_REASM_BAD;
	return (r->part_have[seq] >> (off / r->frag)) & 1 ? ML_REASM_DUP : ML_REASM_NEW;
}

/* One DATA frame that passed the header checks: 6.4, steps 2 to 6. */
static void receive(struct rx *r, uint64_t seq, uint32_t msg_len, uint32_t off, uint32_t len)
{
	enum ml_rxwin_verdict v = ml_rxwin_check(&r->win, seq);
	FZ_CHECK(v == model_window(r, seq), "window verdict %d for %llu, the model says %d", v,
		 (unsigned long long)seq, model_window(r, seq));
	if (v != ML_RXWIN_NEW)
		return;
	unsigned i = (unsigned)(seq & (r->w - 1));
	FZ_CHECK(!r->slot[i] || r->slot[i]->seq == seq, "slot %u holds %llu while %llu is in the window", i,
		 (unsigned long long)r->slot[i]->seq, (unsigned long long)seq);
	if (len == msg_len) {
		if (r->slot[i])
			return; /* its first fragment named another length: a protocol error */
		deliver(r, seq);
		return;
	}
	if (msg_len <= r->frag)
		return; /* a message that fits one frame comes whole */
	if (!r->slot[i]) {
		if (r->held + msg_len > BUDGET)
			return;
		struct ml_reasm *m = malloc(sizeof(*m));
		FZ_CHECK(m && ml_reasm_init(m, seq, msg_len, r->frag) == 0, "reassembly of %u bytes", msg_len);
		r->slot[i] = m;
		r->held += msg_len;
		r->part_len[seq] = msg_len;
	}
	enum ml_reasm_verdict rv = ml_reasm_check(r->slot[i], msg_len, off, len);
	FZ_CHECK(rv == model_fragment(r, seq, msg_len, off, len),
		 "fragment [%u, +%u) of %llu (%u bytes): verdict %d, the model says %d", off, len,
		 (unsigned long long)seq, msg_len, rv, model_fragment(r, seq, msg_len, off, len));
	if (rv != ML_REASM_NEW)
		return;
	int done = ml_reasm_put(r->slot[i], off, content(r, seq, off), len);
	r->part_have[seq] |= 1ull << (off / r->frag);
	uint32_t nfrags = (r->part_len[seq] + r->frag - 1) / r->frag;
	FZ_CHECK(done == (__builtin_popcountll(r->part_have[seq]) == (int)nfrags),
		 "complete %d with %d of %u fragments", done, __builtin_popcountll(r->part_have[seq]), nfrags);
	if (!done)
		return;
	const struct ml_reasm *m = r->slot[i];
	FZ_CHECK(content_ok(r, seq, m->buf, m->msg_len), "message %llu reassembled wrong",
		 (unsigned long long)seq);
	r->held -= m->msg_len;
	r->part_len[seq] = 0;
	r->part_have[seq] = 0;
	drop_slot(r, i);
	deliver(r, seq);
}

static void reset(struct rx *r)
{
	for (unsigned i = 0; i < r->w; i++)
		if (r->slot[i])
			drop_slot(r, i);
	ml_rxwin_reset(&r->win);
	r->held = 0;
	r->base = 0;
	memset(r->delivered, 0, sizeof(r->delivered));
	memset(r->part_len, 0, sizeof(r->part_len));
	memset(r->part_have, 0, sizeof(r->part_have));
}

/* Fragment idx (mod their number) of a message of msg_len bytes. */
static void fragment(const struct rx *r, uint32_t msg_len, uint32_t idx, uint32_t *off, uint32_t *len)
{
	uint32_t n = msg_len ? (msg_len + r->frag - 1) / r->frag : 1;
	*off = (idx % n) * r->frag;
	*len = msg_len - *off < r->frag ? msg_len - *off : r->frag;
}

static void run_op(struct rx *r, const uint8_t *op)
{
	unsigned code = op[0] % FZ_RA_NCODES, x = op[1];
	uint16_t d = ml_get16(op + 2);
	uint32_t v = ml_get32(op + 4), msg_len, off, len;
	uint64_t seq = r->base + 1 + d % (r->w + 2);
	switch (code) {
	case FZ_RA_FRAG:
		msg_len = msg_len_of(r, seq);
		fragment(r, msg_len, v, &off, &len);
		break;
	case FZ_RA_RAW:
		msg_len = msg_len_of(r, seq);
		off = v;
		len = x << 8 | d >> 8;
		break;
	case FZ_RA_MISMATCH:
		msg_len = msg_len_of(r, seq) + 1 + x % r->frag; /* still at most 64 fragments */
		fragment(r, msg_len, v, &off, &len);
		break;
	case FZ_RA_WHOLE:
		msg_len = len = x;
		off = 0;
		break;
	case FZ_RA_CHECK: {
		uint64_t any = (uint64_t)v << 32 | d;
		FZ_CHECK(ml_rxwin_check(&r->win, any) == model_window(r, any), "window verdict for %llu",
			 (unsigned long long)any);
		return;
	}
	default:
		reset(r);
		return;
	}
	/* What the frame decoder (section 3) and 6.3 let through, only. */
	if ((uint64_t)off + len > msg_len || (len == 0 && msg_len != 0) || len > r->frag)
		return;
	receive(r, seq, msg_len, off, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rx r;
	if (size < FZ_RA_HDR)
		return 0;
	if (!table[1])
		for (size_t i = 0; i < sizeof(table); i++)
			table[i] = (uint8_t)((i % TABLE) * 2654435761u >> 13 | 1); /* never all alike */
	memset(&r, 0, sizeof(r));
	r.frag = (uint32_t)ml_get16(data) + 1;
	r.seed = data[3];
	FZ_CHECK(ml_rxwin_init(&r.win, 64u << (data[2] & 3)) == 0, "window");
	r.w = r.win.size;
	FZ_CHECK(r.w == 64u << (data[2] & 3), "window of %u rounded to %u", 64u << (data[2] & 3), r.w);
	size_t nops = (size - FZ_RA_HDR) / FZ_RA_OP;
	for (size_t i = 0; i < nops && i < MAX_OPS; i++)
		run_op(&r, data + FZ_RA_HDR + i * FZ_RA_OP);
	reset(&r);
	ml_rxwin_free(&r.win);
	return 0;
}
