/* test_rxwin.c - receive window: verdicts, sliding, and the acks it gives,
 * checked against a plain array of "delivered" flags as reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msglayer.h"
#include "rxwin.h"

/* ---- reference model ---- */

/* seen[s] says whether s was delivered, for s in 1..top. */
struct model {
	uint8_t *seen;
	uint64_t top;
};

static void model_init(struct model *m, uint64_t top)
{
	m->seen = calloc(top + 2, 1);
	assert_non_null(m->seen);
	m->top = top;
}

static uint64_t model_cum(const struct model *m)
{
	uint64_t c = 0;
	while (c < m->top && m->seen[c + 1])
		c++;
	return c;
}

/* The ack the window must give: cum, then the lowest runs of delivered
 * numbers above it, at most ML_WIRE_SACK_MAX of them. */
static void model_ack(const struct model *m, struct ml_ack *a)
{
	a->cum = model_cum(m);
	a->nranges = 0;
	uint64_t s = a->cum + 1;
	while (s <= m->top && a->nranges < ML_WIRE_SACK_MAX) {
		if (!m->seen[s]) {
			s++;
			continue;
		}
		uint64_t e = s;
		while (e < m->top && m->seen[e + 1])
			e++;
		a->r[a->nranges].start = s;
		a->r[a->nranges].end = e;
		a->nranges++;
		s = e + 1;
	}
}

/* ---- helpers ---- */

static void assert_ack_equal(const struct ml_ack *a, const struct ml_ack *b)
{
	assert_int_equal(a->cum, b->cum);
	assert_int_equal(a->nranges, b->nranges);
	for (unsigned i = 0; i < a->nranges; i++) {
		assert_int_equal(a->r[i].start, b->r[i].start);
		assert_int_equal(a->r[i].end, b->r[i].end);
	}
}

/* Mark s, which must be NEW, in both the window and the model. */
static void deliver(struct ml_rxwin *w, struct model *m, uint64_t s)
{
	assert_int_equal(ml_rxwin_check(w, s), ML_RXWIN_NEW);
	ml_rxwin_mark(w, s);
	m->seen[s] = 1;
	assert_int_equal(ml_rxwin_check(w, s), ML_RXWIN_DUP);
}

/* What the window acks must pass the wire unchanged. */
static void assert_ack_survives_wire(const struct ml_ack *a)
{
	uint8_t buf[16 + 16 * ML_WIRE_SACK_MAX];
	struct ml_ack back;
	size_t n = ml_ack_encode(buf, a);
	assert_int_equal(ml_ack_decode(buf, n, &back), ML_WIRE_OK);
	assert_ack_equal(&back, a);
}

static void assert_ranges(const struct ml_rxwin *w, uint64_t cum, const uint64_t *se, unsigned n)
{
	struct ml_ack a;
	ml_rxwin_ack(w, &a);
	assert_int_equal(a.cum, cum);
	assert_int_equal(a.nranges, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(a.r[i].start, se[2 * i]);
		assert_int_equal(a.r[i].end, se[2 * i + 1]);
	}
}

static void shuffle(uint64_t *v, unsigned n, unsigned *seed)
{
	for (unsigned i = n; i > 1; i--) { /* Fisher-Yates */
		unsigned j = (unsigned)rand_r(seed) % i;
		uint64_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* ---- verdicts ---- */

static void test_size_rounded_to_power_of_two(void **state)
{
	(void)state;
	struct ml_rxwin w;
	assert_int_equal(ml_rxwin_init(&w, 100), 0);
	assert_int_equal(w.size, 128);
	ml_rxwin_free(&w);
	assert_int_equal(ml_rxwin_init(&w, 1024), 0);
	assert_int_equal(w.size, 1024);
	ml_rxwin_free(&w);
	assert_null(w.bits);
}

/* The window is (base, base + size]: 0 and below base are old, above is out. */
static void test_verdicts_of_fresh_window(void **state)
{
	(void)state;
	struct ml_rxwin w;
	assert_int_equal(ml_rxwin_init(&w, 128), 0);
	assert_int_equal(ml_rxwin_check(&w, 0), ML_RXWIN_DUP); /* numbers start at 1 */
	assert_int_equal(ml_rxwin_check(&w, 1), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 128), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 129), ML_RXWIN_OUT);
	assert_int_equal(ml_rxwin_check(&w, UINT64_MAX), ML_RXWIN_OUT);
	ml_rxwin_free(&w);
}

static void test_marked_is_dup_others_stay_new(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 128);
	ml_rxwin_mark(&w, 5);
	assert_int_equal(ml_rxwin_check(&w, 5), ML_RXWIN_DUP);
	assert_int_equal(ml_rxwin_check(&w, 4), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 6), ML_RXWIN_NEW);
	/* Same slot one lap later is a different number, and out of the window. */
	assert_int_equal(ml_rxwin_check(&w, 5 + 128), ML_RXWIN_OUT);
	ml_rxwin_free(&w);
}

/* ---- marking and the cumulative point ---- */

static void test_in_order_marks_advance_base(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	for (uint64_t s = 1; s <= 1000; s++) { /* many laps of a 64-slot bitmap */
		assert_int_equal(ml_rxwin_check(&w, s), ML_RXWIN_NEW);
		ml_rxwin_mark(&w, s);
		assert_int_equal(w.base, s);
		assert_int_equal(w.highest, s);
		assert_int_equal(ml_rxwin_check(&w, s), ML_RXWIN_DUP);
		/* The window moved with base: its new last slot is free. */
		assert_int_equal(ml_rxwin_check(&w, s + 64), ML_RXWIN_NEW);
		assert_int_equal(ml_rxwin_check(&w, s + 65), ML_RXWIN_OUT);
	}
	ml_rxwin_free(&w);
}

static void test_out_of_order_keeps_base_and_gives_ranges(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 1);
	ml_rxwin_mark(&w, 3);
	ml_rxwin_mark(&w, 4);
	ml_rxwin_mark(&w, 7);
	assert_int_equal(w.base, 1); /* 2 is missing */
	assert_int_equal(w.highest, 7);
	const uint64_t expect[] = { 3, 4, 7, 7 };
	assert_ranges(&w, 1, expect, 2);
	ml_rxwin_free(&w);
}

static void test_filling_gap_advances_base_over_run(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 1);
	ml_rxwin_mark(&w, 3);
	ml_rxwin_mark(&w, 4);
	ml_rxwin_mark(&w, 7);
	ml_rxwin_mark(&w, 2); /* base runs over 3 and 4, stops before 5 */
	assert_int_equal(w.base, 4);
	const uint64_t expect[] = { 7, 7 };
	assert_ranges(&w, 4, expect, 1);
	ml_rxwin_mark(&w, 6);
	ml_rxwin_mark(&w, 5); /* now everything up to highest */
	assert_int_equal(w.base, 7);
	assert_ranges(&w, 7, NULL, 0);
	ml_rxwin_free(&w);
}

/* The last number of the window can be taken, and when base catches up the
 * slot it shares with base is reusable for the next lap. */
static void test_edge_of_window(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 64);
	assert_int_equal(ml_rxwin_check(&w, 65), ML_RXWIN_OUT);
	for (uint64_t s = 1; s < 64; s++)
		ml_rxwin_mark(&w, s);
	assert_int_equal(w.base, 64);
	assert_int_equal(ml_rxwin_check(&w, 64 + 64), ML_RXWIN_NEW); /* slot of 64, next lap */
	assert_int_equal(ml_rxwin_check(&w, 65), ML_RXWIN_NEW);
	ml_rxwin_free(&w);
}

static void test_reset_forgets_everything(void **state)
{
	(void)state;
	struct ml_rxwin w;
	ml_rxwin_init(&w, 64);
	ml_rxwin_mark(&w, 1);
	ml_rxwin_mark(&w, 9);
	ml_rxwin_reset(&w);
	assert_int_equal(w.base, 0);
	assert_int_equal(w.highest, 0);
	assert_int_equal(ml_rxwin_check(&w, 1), ML_RXWIN_NEW);
	assert_int_equal(ml_rxwin_check(&w, 9), ML_RXWIN_NEW);
	assert_ranges(&w, 0, NULL, 0);
	ml_rxwin_free(&w);
}

/* ---- a long run ---- */

/* Deliver 1..N in a random order that is only bounded by the window: the
 * numbers waiting to be delivered are every unmarked one in (base, base+W],
 * so marks land all over the bitmap, over many laps. Each step compares the
 * window with the model: no marked number is ever NEW again, base is the
 * model's cumulative point, and nothing in the window is refused. */
enum { N = 100000, W = 1024 };

struct pool {
	uint64_t v[W];
	unsigned n;
	uint64_t next; /* lowest number not yet in the pool */
};

static void pool_fill(struct pool *p, uint64_t base)
{
	while (p->next <= N && p->next <= base + W)
		p->v[p->n++] = p->next++;
}

static uint64_t pool_take(struct pool *p, unsigned *seed)
{
	unsigned i = (unsigned)rand_r(seed) % p->n;
	uint64_t s = p->v[i];
	p->v[i] = p->v[--p->n];
	return s;
}

static void check_random_old_is_dup(const struct ml_rxwin *w, const struct model *m, uint64_t hi,
				    unsigned *seed)
{
	for (int k = 0; k < 4; k++) {
		uint64_t old = 1 + (uint64_t)rand_r(seed) % hi;
		if (m->seen[old])
			assert_int_equal(ml_rxwin_check(w, old), ML_RXWIN_DUP);
	}
}

static void test_long_shuffled_slide(void **state)
{
	(void)state;
	struct ml_rxwin w;
	struct model m;
	static struct pool p;
	unsigned seed = 3;
	uint64_t cum = 0;
	assert_int_equal(ml_rxwin_init(&w, W), 0);
	model_init(&m, N);
	p.n = 0;
	p.next = 1;
	for (uint64_t done = 0; done < N; done++) {
		pool_fill(&p, w.base);
		uint64_t s = pool_take(&p, &seed);
		deliver(&w, &m, s);
		while (cum < N && m.seen[cum + 1])
			cum++;
		assert_int_equal(w.base, cum);
		assert_int_equal(ml_rxwin_check(&w, w.base + W + 1), ML_RXWIN_OUT);
		check_random_old_is_dup(&w, &m, p.next - 1, &seed);
	}
	assert_int_equal(w.base, N);
	for (uint64_t s = 1; s <= N; s++) /* nothing delivered can come in again */
		assert_int_equal(ml_rxwin_check(&w, s), ML_RXWIN_DUP);
	ml_rxwin_free(&w);
	free(m.seen);
}

/* ---- acks against the model ---- */

/* One random pattern: an in-order prefix of random length (so base and the
 * bitmap slots are anywhere), then random marks inside the window with a
 * random density (sparse patterns have more runs than an ACK can carry). */
static void random_pattern_round(unsigned *seed)
{
	enum { WS = 256 };
	struct ml_rxwin w;
	struct model m;
	struct ml_ack got, want;
	uint64_t prefix = (uint64_t)rand_r(seed) % 1000;
	unsigned density = 1 + (unsigned)rand_r(seed) % 100; /* percent */
	assert_int_equal(ml_rxwin_init(&w, WS), 0);
	model_init(&m, prefix + WS);
	for (uint64_t s = 1; s <= prefix; s++)
		deliver(&w, &m, s);
	for (uint64_t s = prefix + 1; s <= prefix + WS; s++) {
		if ((unsigned)rand_r(seed) % 100 >= density)
			continue;
		enum ml_rxwin_verdict v = ml_rxwin_check(&w, s);
		assert_int_equal(v, m.seen[s] ? ML_RXWIN_DUP : ML_RXWIN_NEW);
		if (v == ML_RXWIN_NEW)
			deliver(&w, &m, s);
	}
	ml_rxwin_ack(&w, &got);
	model_ack(&m, &want);
	assert_ack_equal(&got, &want);
	assert_int_equal(w.base, want.cum);
	assert_ack_survives_wire(&got);
	ml_rxwin_free(&w);
	free(m.seen);
}

static void test_ack_matches_model_on_random_patterns(void **state)
{
	(void)state;
	unsigned seed = 7;
	for (int iter = 0; iter < 500; iter++)
		random_pattern_round(&seed);
}

/* Marks arriving in random order rather than in a sweep, checking the ack
 * after every single mark. */
static void test_ack_matches_model_after_every_mark(void **state)
{
	(void)state;
	enum { WS = 128 };
	struct ml_rxwin w;
	struct model m;
	uint64_t order[WS];
	unsigned seed = 11;
	assert_int_equal(ml_rxwin_init(&w, WS), 0);
	model_init(&m, WS);
	for (unsigned i = 0; i < WS; i++)
		order[i] = i + 1;
	shuffle(order, WS, &seed);
	for (unsigned i = 0; i < WS; i++) {
		struct ml_ack got, want;
		deliver(&w, &m, order[i]);
		ml_rxwin_ack(&w, &got);
		model_ack(&m, &want);
		assert_ack_equal(&got, &want);
		assert_ack_survives_wire(&got);
	}
	assert_int_equal(w.base, WS);
	ml_rxwin_free(&w);
	free(m.seen);
}

/* More gaps than an ACK holds: the lowest ML_WIRE_SACK_MAX runs are sent
 * (the sender resends from the bottom, so those matter most). */
static void test_ack_capped_at_max_ranges(void **state)
{
	(void)state;
	struct ml_rxwin w;
	struct ml_ack a;
	ml_rxwin_init(&w, 1024);
	for (uint64_t s = 2; s <= 400; s += 2) /* 200 single-number runs */
		ml_rxwin_mark(&w, s);
	ml_rxwin_ack(&w, &a);
	assert_int_equal(a.cum, 0);
	assert_int_equal(a.nranges, ML_WIRE_SACK_MAX);
	for (unsigned i = 0; i < ML_WIRE_SACK_MAX; i++) {
		assert_int_equal(a.r[i].start, 2 + 2 * i);
		assert_int_equal(a.r[i].end, 2 + 2 * i);
	}
	assert_ack_survives_wire(&a);
	ml_rxwin_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_rounded_to_power_of_two),
		cmocka_unit_test(test_verdicts_of_fresh_window),
		cmocka_unit_test(test_marked_is_dup_others_stay_new),
		cmocka_unit_test(test_in_order_marks_advance_base),
		cmocka_unit_test(test_out_of_order_keeps_base_and_gives_ranges),
		cmocka_unit_test(test_filling_gap_advances_base_over_run),
		cmocka_unit_test(test_edge_of_window),
		cmocka_unit_test(test_reset_forgets_everything),
		cmocka_unit_test(test_long_shuffled_slide),
		cmocka_unit_test(test_ack_matches_model_on_random_patterns),
		cmocka_unit_test(test_ack_matches_model_after_every_mark),
		cmocka_unit_test(test_ack_capped_at_max_ranges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
