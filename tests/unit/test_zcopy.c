/* test_zcopy.c - the receiving end of zero copy (msglayer/zcopy.c) against a
 * transport double: which RDMA READs it posts, on which path, as RDESC
 * descriptors arrive on several paths in any order, as READs complete, find
 * no slot, or die with their path. The rule under test: every fragment
 * described is read exactly once, unless every path that described it
 * failed (then the sender resends it, as its paths failed too).
 *
 * Linked with zcopy.o, reasm.o and wire.o only: the session around them
 * (admission, reassembly slots, delivery, path failure) is the double below,
 * doing what peer.c and path.c do at the points zcopy.c calls them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

enum { F = 4096, NFRAG = 4, MSG = F * NFRAG, NPATHS = 2, MAXREADS = 64 };
enum { A = 0, B = 1 }; /* the two paths; each path's fd is its index */

/* ---- the transport double: READs posted per fd, completed by the test ---- */

struct posted {
	int fd;
	uint8_t *dst;
	uint32_t len;
	uint64_t raddr, cookie;
	int done;
};

static struct {
	struct posted reads[MAXREADS];
	unsigned nreads;
	unsigned slots[NPATHS];   /* READs a path may have posted at once */
	int dead[NPATHS];         /* its connection broke: a post fails */
	uint64_t done[NPATHS][MAXREADS];
	unsigned ndone[NPATHS];
} tp;

static unsigned in_flight(int fd)
{
	unsigned n = 0;
	for (unsigned i = 0; i < tp.nreads; i++)
		n += tp.reads[i].fd == fd && !tp.reads[i].done;
	return n;
}

static int fake_read(int fd, const struct ml_tp_mem *m, void *dst, uint32_t len, uint64_t raddr,
		     uint32_t rkey, uint64_t cookie)
{
	(void)m;
	(void)rkey;
	if (tp.dead[fd]) {
		errno = ENOTCONN;
		return -1;
	}
	if (in_flight(fd) >= tp.slots[fd]) {
		errno = EAGAIN;
		return -1;
	}
	assert_true(tp.nreads < MAXREADS);
	tp.reads[tp.nreads++] = (struct posted){ fd, dst, len, raddr, cookie, 0 };
	return 0;
}

static unsigned fake_reads_done(int fd, uint64_t *cookies, unsigned max)
{
	unsigned n = tp.ndone[fd] < max ? tp.ndone[fd] : max;
	memcpy(cookies, tp.done[fd], n * sizeof(*cookies));
	memmove(tp.done[fd], tp.done[fd] + n, (tp.ndone[fd] - n) * sizeof(*cookies));
	tp.ndone[fd] -= n;
	return n;
}

/* A broken connection's own words, as the RDMA transport keeps them. */
static const char *fake_why(int fd)
{
	return tp.dead[fd] ? "the peer disconnected (test)" : NULL;
}

static const struct ml_transport_ops fake_ops = { .scheme = "fake", .read = fake_read,
						  .reads_done = fake_reads_done, .why = fake_why };

/* ---- the session double ---- */

static struct ml_ctx ctx;
static struct ml_peer peer;
static struct ml_path paths[NPATHS];
static struct ml_reasm *reasm;  /* the one message being reassembled */
static uint8_t sent[MSG];       /* the sender's registered memory */
static int delivered, freed, failures[NPATHS], last_fail_status;
static char last_fail_why[160];
static uint8_t got[MSG];

int ml_tp_mem_add(void *base, size_t len, struct ml_tp_mem **out)
{
	(void)base;
	(void)len;
	*out = (struct ml_tp_mem *)sent; /* any non-NULL: the double never looks */
	return 0;
}

int ml_peer_frag_admit(struct ml_peer *p, const struct ml_frame_hdr *h)
{
	(void)p;
	(void)h;
	return delivered ? 0 : 1; /* once delivered, a repeat is ignored */
}

struct ml_reasm *ml_peer_reasm_get(struct ml_peer *p, const struct ml_frame_hdr *h, int *rc)
{
	(void)p;
	*rc = -1;
	if (!reasm) {
		reasm = malloc(sizeof(*reasm));
		assert_non_null(reasm);
		assert_int_equal(ml_reasm_init(reasm, h->seq, h->msg_len, F), 0);
	}
	return reasm;
}

static void let_go(struct ml_peer *p, struct ml_reasm *r)
{
	if (r == reasm)
		reasm = NULL;
	if (ml_zc_reasm_keep(p, r))
		return; /* freed by zcopy.c when its last READ ends */
	ml_reasm_free(r);
	free(r);
	freed++;
}

int ml_peer_reasm_done(struct ml_peer *p, const struct ml_frame_hdr *h, struct ml_reasm *r)
{
	(void)h;
	memcpy(got, r->buf, r->msg_len);
	delivered++;
	let_go(p, r);
	return 0;
}

void ml_peer_reasm_destroy(struct ml_peer *p, struct ml_reasm *r)
{
	assert_ptr_not_equal(r, reasm); /* only zcopy.c calls it, for an r let go */
	let_go(p, r);
}

void ml_path_fail(struct ml_path *path, int status, const char *why)
{
	snprintf(last_fail_why, sizeof(last_fail_why), "%s", why);
	for (unsigned i = 0; i < tp.nreads; i++) /* closed: its READs die unreported */
		if (tp.reads[i].fd == path->fd)
			tp.reads[i].done = 1;
	tp.ndone[path->idx] = 0;
	path->fd = -1;
	failures[path->idx]++;
	last_fail_status = status;
	ml_zc_path_failed(path);
}

/* ---- helpers ---- */

static int setup(void **state)
{
	(void)state;
	memset(&tp, 0, sizeof(tp));
	memset(&ctx, 0, sizeof(ctx));
	memset(&peer, 0, sizeof(peer));
	ctx.limits = (struct ml_wire_limits){ .max_frag_payload = F, .max_msg_size = 1u << 20 };
	peer.ctx = &ctx;
	CDS_INIT_LIST_HEAD(&peer.zc_reads);
	for (unsigned i = 0; i < NPATHS; i++) {
		memset(&paths[i], 0, sizeof(paths[i]));
		paths[i].peer = &peer;
		paths[i].idx = i;
		paths[i].fd = (int)i;
		paths[i].ops = &fake_ops;
		tp.slots[i] = MAXREADS;
		failures[i] = 0;
	}
	for (unsigned i = 0; i < MSG; i++)
		sent[i] = (uint8_t)(i * 7 + (i >> 8));
	memset(got, 0, sizeof(got));
	reasm = NULL;
	delivered = freed = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ml_zc_peer_fini(&peer);
	if (reasm)
		let_go(&peer, reasm);
	return 0;
}

/* Fragment k's descriptor arrives on path. */
static int desc(unsigned path, unsigned k)
{
	struct ml_frame_hdr h = { .type = ML_FT_RDESC, .seq = 1, .offset = k * F, .msg_len = MSG,
				  .payload_len = ML_RDESC_LEN };
	struct ml_rdesc d = { .addr = (uint64_t)(uintptr_t)(sent + k * F), .rkey = 1, .len = F };
	uint8_t payload[ML_RDESC_LEN];
	ml_rdesc_encode(payload, &d);
	return ml_zc_on_desc(&peer, &paths[path], &h, payload);
}

/* READs of fragment k posted on path so far (done or not). */
static unsigned reads_of(unsigned path, unsigned k)
{
	unsigned n = 0;
	for (unsigned i = 0; i < tp.nreads; i++)
		n += tp.reads[i].fd == (int)path && tp.reads[i].raddr == (uint64_t)(uintptr_t)(sent + k * F);
	return n;
}

/* The oldest READ of path not yet done completes: its bytes land, and the
 * path's completions are polled, as the path's input handler does. */
static void complete_one(unsigned path)
{
	for (unsigned i = 0; i < tp.nreads; i++) {
		struct posted *r = &tp.reads[i];
		if (r->fd == (int)path && !r->done) {
			memcpy(r->dst, (const void *)(uintptr_t)r->raddr, r->len);
			r->done = 1;
			tp.done[path][tp.ndone[path]++] = r->cookie;
			ml_zc_poll(&paths[path]);
			return;
		}
	}
	fail_msg("no READ in flight on path %u", path);
}

static void complete_all(unsigned path)
{
	while (in_flight((int)path))
		complete_one(path);
}

/* Fragments from k on are described on path and read: the message is then
 * delivered once, byte for byte. */
static void finish_on(unsigned path, unsigned k)
{
	for (; k < NFRAG; k++)
		assert_int_equal(desc(path, k), 0);
	complete_all(path);
	assert_int_equal(delivered, 1);
	assert_memory_equal(got, sent, MSG);
}

/* ---- tests ---- */

static void test_fragments_read_into_place_once(void **state)
{
	(void)state;
	for (unsigned k = 0; k < NFRAG; k++)
		assert_int_equal(desc(k % 2 ? B : A, k), 0);
	assert_int_equal(tp.nreads, NFRAG);
	complete_all(A);
	assert_int_equal(delivered, 0);
	complete_all(B);
	assert_int_equal(delivered, 1);
	assert_memory_equal(got, sent, MSG);
	assert_int_equal(paths[A].st.bytes_zcopy + paths[B].st.bytes_zcopy, MSG);
	assert_int_equal(paths[A].zc_posted + paths[B].zc_posted, 0);
}

/* The sender lost path A and resent fragment 0 on B; B had no READ slot,
 * so it waits. A's own descriptor of fragment 0 (sent before A failed at
 * the sender) is read only now, and A cannot take a READ: A fails. B's
 * descriptor must still be read once B has a slot: the sender will not
 * send fragment 0 again (B is up). Seen in the VM as a request that never
 * completed. */
static void test_stale_descriptor_does_not_displace_a_waiting_one(void **state)
{
	(void)state;
	tp.slots[B] = 1;
	assert_int_equal(desc(B, 1), 0); /* takes B's slot */
	assert_int_equal(desc(B, 0), 0); /* waits for it */
	assert_int_equal(reads_of(B, 0), 0);
	tp.dead[A] = 1;
	assert_int_equal(desc(A, 0), -1);
	assert_int_equal(failures[A], 1);
	assert_string_equal(last_fail_why, "the peer disconnected (test)"); /* not errno's words */
	complete_one(B); /* fragment 1 in: B's slot is free */
	assert_int_equal(reads_of(B, 0), 1);
	finish_on(B, 2);
}

/* A fragment being read on A, described again on B: B waits, and reads
 * only if A's READ dies with A. */
static void test_waiting_descriptor_read_when_the_reading_path_fails(void **state)
{
	(void)state;
	assert_int_equal(desc(A, 0), 0);
	assert_int_equal(desc(B, 0), 0);
	assert_int_equal(reads_of(B, 0), 0);
	ml_path_fail(&paths[A], ML_ENOTCONN, "test");
	assert_int_equal(reads_of(B, 0), 1);
	finish_on(B, 1);
}

/* A READ that completes makes every other descriptor of its fragment moot. */
static void test_completed_read_forgets_other_descriptors(void **state)
{
	(void)state;
	assert_int_equal(desc(A, 0), 0);
	assert_int_equal(desc(B, 0), 0);
	complete_all(A);
	ml_path_fail(&paths[A], ML_ENOTCONN, "test"); /* would issue B's, were it kept */
	assert_int_equal(reads_of(B, 0), 0);
	assert_int_equal(desc(B, 0), 0); /* and a late repeat is a duplicate */
	assert_int_equal(reads_of(B, 0), 0);
}

/* A peer repeating a descriptor on one path holds one waiting entry: when
 * the fragment's READ dies, it is read once more, not once per repeat. */
static void test_repeats_on_one_path_wait_once(void **state)
{
	(void)state;
	assert_int_equal(desc(A, 0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(desc(B, 0), 0);
	ml_path_fail(&paths[A], ML_ENOTCONN, "test");
	assert_int_equal(reads_of(B, 0), 1);
	complete_all(B);
	assert_int_equal(reads_of(B, 0), 1);
}

/* Every path that described a fragment failed: nothing is read, nothing
 * waits (the sender resends it), and the reassembly stays for the resend. */
static void test_all_describing_paths_fail(void **state)
{
	(void)state;
	assert_int_equal(desc(A, 0), 0);
	assert_int_equal(desc(B, 0), 0);
	ml_path_fail(&paths[B], ML_ENOTCONN, "test");
	ml_path_fail(&paths[A], ML_ENOTCONN, "test");
	assert_true(cds_list_empty(&peer.zc_reads));
	assert_non_null(reasm);
	assert_int_equal(reasm->reading, 0);
	paths[A].fd = A; /* reconnected: the sender resends there */
	tp.dead[A] = 0;
	finish_on(A, 0);
}

/* The session lets a message go (reset) while READs write into it: the
 * buffer is freed when the last one ends, not before, and nothing is
 * delivered. */
static void test_reassembly_let_go_under_reads(void **state)
{
	(void)state;
	assert_int_equal(desc(A, 0), 0);
	assert_int_equal(desc(A, 1), 0);
	assert_int_equal(desc(B, 2), 0); /* waits for nothing: B is idle */
	struct ml_reasm *r = reasm;
	let_go(&peer, r);
	assert_int_equal(freed, 0);
	complete_one(A);
	assert_int_equal(freed, 0);
	complete_one(A);
	assert_int_equal(freed, 0);
	complete_one(B);
	assert_int_equal(freed, 1);
	assert_int_equal(delivered, 0);
}

/* A descriptor that does not fit its message fails its path (EPROTO) and
 * posts nothing. */
static void test_bad_descriptor_fails_the_path(void **state)
{
	(void)state;
	struct ml_frame_hdr h = { .type = ML_FT_RDESC, .seq = 1, .offset = MSG - F / 2, .msg_len = MSG,
				  .payload_len = ML_RDESC_LEN };
	struct ml_rdesc d = { .addr = (uint64_t)(uintptr_t)sent, .rkey = 1, .len = F };
	uint8_t payload[ML_RDESC_LEN];
	ml_rdesc_encode(payload, &d);
	assert_int_equal(ml_zc_on_desc(&peer, &paths[A], &h, payload), -1);
	assert_int_equal(failures[A], 1);
	assert_int_equal(last_fail_status, ML_EPROTO);
	assert_int_equal(tp.nreads, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fragments_read_into_place_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_descriptor_does_not_displace_a_waiting_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_descriptor_read_when_the_reading_path_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_completed_read_forgets_other_descriptors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_repeats_on_one_path_wait_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_describing_paths_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reassembly_let_go_under_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_descriptor_fails_the_path, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
