/* test_pubsub_registry.c - the replicated view without Corosync: versions
 * drop stale and duplicate updates, removals by withdraw, handle, member,
 * node; subscribers get a snapshot then every change, exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msglayer.h"
#include "../../pubsub/record.h"
#include "../../pubsub/registry.h"

struct ev {
	int event, reason;
	char name[64];
	uint32_t node;
	uint64_t version, old_version;
	uint64_t size;
};

struct log {
	struct ev ev[64];
	unsigned n;
	/* actions taken from inside the callback, to test re-entrancy */
	mlps_sub *unsub_on_event;
	struct mlps_reg *reg;
	int try_mutate, mutate_rc;
	mlps_sub *late;
	struct log *late_log;
};

static void on_event(void *arg, mlps_sub *sub, int event, int reason,
		     const struct mlps_record *rec, const struct mlps_record *old)
{
	struct log *l = arg;
	assert_true(l->n < 64);
	struct ev *e = &l->ev[l->n++];
	e->event = event;
	e->reason = reason;
	snprintf(e->name, sizeof(e->name), "%s", rec->name);
	e->node = rec->node_id;
	e->version = rec->version;
	e->old_version = old ? old->version : 0;
	const struct mlps_attr *a = mlps_record_attr(rec, "size");
	e->size = a ? a->v.u64 : 0;
	if (event == MLPS_CHANGED)
		assert_non_null(old);
	if (l->unsub_on_event) {
		mlps_reg_unsubscribe(l->unsub_on_event);
		l->unsub_on_event = NULL;
	}
	if (l->try_mutate) {
		l->try_mutate = 0;
		l->mutate_rc = mlps_reg_clear(l->reg, MLPS_R_DISCONNECTED);
	}
	if (l->late_log && !l->late) {
		struct mlps_pattern p;
		struct mlps_filter f;
		mlps_pattern_parse("", &p);
		mlps_filter_parse("", &f);
		assert_int_equal(mlps_reg_subscribe(l->reg, &p, &f, on_event, l->late_log, NULL,
						    &l->late), 0);
	}
	(void)sub;
}

static struct mlps_record *mk(const char *name, uint32_t node, uint32_t pid, uint64_t inc,
			      uint64_t version, uint64_t size)
{
	struct mlps_attr a[] = { mlps_attr_u64("size", size), mlps_attr_bool("ro", 0) };
	static const char *const eps[] = { "tcp://127.0.0.1:7400" };
	struct mlps_rec_in in;
	assert_int_equal(mlps_rec_in_from_api(&in, name, a, 2, eps, 1), 0);
	in.node_id = node;
	in.pid = pid;
	in.incarnation = inc;
	in.version = version;
	struct mlps_record *r = mlps_rec_build(&in);
	assert_non_null(r);
	return r;
}

static mlps_sub *sub(struct mlps_reg *reg, const char *pattern, const char *filter, struct log *l)
{
	struct mlps_pattern p;
	struct mlps_filter f;
	mlps_sub *s = NULL;
	assert_int_equal(mlps_pattern_parse(pattern, &p), 0);
	assert_int_equal(mlps_filter_parse(filter, &f), 0);
	assert_int_equal(mlps_reg_subscribe(reg, &p, &f, on_event, l, l, &s), 0);
	return s;
}

static void expect(struct log *l, unsigned i, int event, int reason, const char *name,
		   uint64_t version)
{
	if (i >= l->n)
		fail_msg("event %u missing (have %u)", i, l->n);
	struct ev *e = &l->ev[i];
	if (e->event != event || e->reason != reason || strcmp(e->name, name) || e->version != version)
		fail_msg("event %u: got %d/%s %s v%llu, want %d/%s %s v%llu", i, e->event,
			 mlps_reason_name(e->reason), e->name, (unsigned long long)e->version, event,
			 mlps_reason_name(reason), name, (unsigned long long)version);
}

static void test_versions(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct log l = { .n = 0 };
	sub(reg, "", "", &l);
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 1, 100)), 1);
	expect(&l, 0, MLPS_ADDED, MLPS_R_PUBLISHED, "block/vol0", 1);
	/* a re-announce (same version) and a stale update are dropped */
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 1, 100)), 0);
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 0, 999)), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 3, 200)), 1);
	expect(&l, 1, MLPS_CHANGED, MLPS_R_UPDATED, "block/vol0", 3);
	assert_int_equal(l.ev[1].old_version, 1);
	assert_int_equal(l.ev[1].size, 200);
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 2, 150)), 0);
	/* a newer version with the same content is stored without an event */
	assert_int_equal(mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 4, 200)), 1);
	assert_int_equal(l.n, 2);
	/* stale withdraw is ignored, a current one removes */
	struct mlps_record *w = mk("block/vol0", 1, 10, 7, 3, 0);
	assert_int_equal(mlps_reg_withdraw(reg, w), 0);
	mlps_rec_free(w);
	w = mk("block/vol0", 1, 10, 7, 5, 0);
	assert_int_equal(mlps_reg_withdraw(reg, w), 1);
	expect(&l, 2, MLPS_REMOVED, MLPS_R_WITHDRAWN, "block/vol0", 4);
	assert_int_equal(mlps_reg_withdraw(reg, w), 0); /* not held any more */
	mlps_rec_free(w);
	assert_int_equal(mlps_reg_count(reg), 0);
	assert_int_equal(l.n, 3);
	mlps_reg_free(reg);
}

/* Same name from two publishers: two resources. */
static void test_key_is_publisher_and_name(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct log l = { .n = 0 };
	sub(reg, "block/", "", &l);
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 1, 1));
	mlps_reg_publish(reg, mk("block/vol0", 2, 10, 7, 1, 1));  /* other node */
	mlps_reg_publish(reg, mk("block/vol0", 1, 11, 8, 1, 1));  /* other process */
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 9, 1, 1));  /* other handle */
	mlps_reg_publish(reg, mk("fs/home", 1, 10, 7, 1, 1));     /* not matched */
	assert_int_equal(mlps_reg_count(reg), 5);
	assert_int_equal(l.n, 4);
	mlps_reg_free(reg);
}

static void test_snapshot_then_changes(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 1, 100));
	mlps_reg_publish(reg, mk("fs/home", 1, 10, 7, 2, 100));
	mlps_reg_publish(reg, mk("block/vol1", 2, 20, 8, 1, 5000));
	struct log l = { .n = 0 };
	sub(reg, "block/*", "size>=100", &l);
	assert_int_equal(l.n, 2);
	expect(&l, 0, MLPS_ADDED, MLPS_R_SNAPSHOT, "block/vol0", 1);
	expect(&l, 1, MLPS_ADDED, MLPS_R_SNAPSHOT, "block/vol1", 1);
	mlps_reg_publish(reg, mk("block/vol2", 2, 20, 8, 2, 1));   /* filtered out */
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 3, 50));  /* stops matching */
	expect(&l, 2, MLPS_REMOVED, MLPS_R_NO_LONGER_MATCHES, "block/vol0", 3);
	assert_int_equal(l.ev[2].old_version, 1);
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 4, 60));  /* still not */
	mlps_reg_publish(reg, mk("block/vol0", 1, 10, 7, 5, 600)); /* matches again */
	expect(&l, 3, MLPS_ADDED, MLPS_R_NOW_MATCHES, "block/vol0", 5);
	assert_int_equal(l.n, 4);

	/* a subscriber created inside a callback gets the current state in its
	 * snapshot and not the event that was being delivered */
	struct log late = { .n = 0 };
	l.reg = reg;
	l.late_log = &late;
	mlps_reg_publish(reg, mk("block/vol3", 3, 30, 9, 1, 700));
	expect(&l, 4, MLPS_ADDED, MLPS_R_PUBLISHED, "block/vol3", 1);
	unsigned snap = late.n;
	assert_int_equal(snap, 5); /* every record, vol3 included */
	for (unsigned i = 0; i < snap; i++)
		assert_int_equal(late.ev[i].reason, MLPS_R_SNAPSHOT);
	l.late_log = NULL;
	mlps_reg_publish(reg, mk("block/vol3", 3, 30, 9, 2, 800));
	assert_int_equal(late.n, snap + 1);
	assert_int_equal(late.ev[snap].event, MLPS_CHANGED);
	mlps_reg_free(reg);
}

static void test_removals(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct log l = { .n = 0 };
	sub(reg, "", "", &l);
	mlps_reg_publish(reg, mk("a", 1, 10, 7, 1, 1));
	mlps_reg_publish(reg, mk("b", 1, 10, 8, 1, 1));  /* second handle, same process */
	mlps_reg_publish(reg, mk("c", 1, 11, 9, 1, 1));  /* second process, node 1 */
	mlps_reg_publish(reg, mk("d", 2, 20, 5, 1, 1));
	mlps_reg_publish(reg, mk("e", 3, 30, 6, 1, 1));
	l.n = 0;
	assert_int_equal(mlps_reg_bye(reg, 1, 10, 8), 1);
	expect(&l, 0, MLPS_REMOVED, MLPS_R_WITHDRAWN, "b", 1);
	assert_int_equal(mlps_reg_member_left(reg, 1, 10, MLPS_R_PUBLISHER_LEFT), 1);
	expect(&l, 1, MLPS_REMOVED, MLPS_R_PUBLISHER_LEFT, "a", 1);
	assert_int_equal(mlps_reg_node_left(reg, 2), 1);
	expect(&l, 2, MLPS_REMOVED, MLPS_R_NODE_LEFT, "d", 1);
	assert_int_equal(mlps_reg_node_left(reg, 2), 0);
	assert_int_equal(mlps_reg_clear(reg, MLPS_R_DISCONNECTED), 2);
	expect(&l, 3, MLPS_REMOVED, MLPS_R_DISCONNECTED, "c", 1);
	expect(&l, 4, MLPS_REMOVED, MLPS_R_DISCONNECTED, "e", 1);
	assert_int_equal(mlps_reg_count(reg), 0);
	mlps_reg_free(reg);
}

/* The message-layer nodes of a failed publisher, found before removal. */
static void test_ml_nodes(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct mlps_record *r;
	r = mk("a", 1, 10, 7, 1, 1); r->ml_node_id = 100; mlps_reg_publish(reg, r);
	r = mk("b", 1, 10, 7, 1, 1); r->ml_node_id = 100; mlps_reg_publish(reg, r); /* same node */
	r = mk("c", 1, 11, 8, 1, 1); r->ml_node_id = 101; mlps_reg_publish(reg, r);
	r = mk("d", 1, 12, 9, 1, 1); mlps_reg_publish(reg, r);                      /* none */
	r = mk("e", 2, 20, 5, 1, 1); r->ml_node_id = 200; mlps_reg_publish(reg, r);
	uint32_t ids[4] = { 0 };
	assert_int_equal(mlps_reg_ml_nodes(reg, 1, 0, ids, 4), 2);
	assert_true(ids[0] == 100 && ids[1] == 101);
	assert_int_equal(mlps_reg_ml_nodes(reg, 1, 10, ids, 4), 1);
	assert_int_equal(ids[0], 100);
	assert_int_equal(mlps_reg_ml_nodes(reg, 1, 12, ids, 4), 0);
	assert_int_equal(mlps_reg_ml_nodes(reg, 1, 0, ids, 1), 1); /* max respected */
	assert_int_equal(mlps_reg_ml_nodes(reg, 3, 0, ids, 4), 0);
	mlps_reg_free(reg);
}

/* The view hook fills in per-subscriber fields on a copy: the stored record
 * keeps NULL, and a changed record's old copy gets the same peer. */
static int view_calls;
static void view_fill(void *owner, int event, struct mlps_record *view)
{
	(void)event;
	view_calls++;
	view->peer = owner;
}

static void peer_check(void *arg, mlps_sub *sub, int event, int reason,
		       const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	(void)reason;
	int *seen = arg;
	assert_ptr_equal(rec->peer, (void *)seen);
	if (event == MLPS_CHANGED)
		assert_ptr_equal(old->peer, (void *)seen);
	(*seen)++;
}

static void test_view_hook(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	mlps_reg_set_view(reg, view_fill);
	int seen = 0;
	struct mlps_pattern p;
	struct mlps_filter f;
	mlps_sub *s;
	mlps_pattern_parse("", &p);
	mlps_filter_parse("", &f);
	mlps_reg_publish(reg, mk("a", 1, 10, 7, 1, 1));
	assert_int_equal(mlps_reg_subscribe(reg, &p, &f, peer_check, &seen, &seen, &s), 0);
	mlps_reg_publish(reg, mk("a", 1, 10, 7, 2, 5)); /* changed */
	mlps_reg_member_left(reg, 1, 10, MLPS_R_PUBLISHER_LEFT);
	assert_int_equal(seen, 3); /* snapshot, changed, removed */
	assert_int_equal(view_calls, 3);
	mlps_reg_free(reg);
}

static void test_reentrancy(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct log a = { .n = 0 }, b = { .n = 0 };
	mlps_sub *sa = sub(reg, "", "", &a);
	mlps_sub *sb = sub(reg, "", "", &b);
	(void)sa;
	/* a unsubscribes b from inside its callback: b hears nothing more */
	a.unsub_on_event = sb;
	mlps_reg_publish(reg, mk("x", 1, 1, 1, 1, 1));
	assert_int_equal(a.n, 1);
	assert_int_equal(b.n, 0);
	/* a callback may not change the view */
	a.reg = reg;
	a.try_mutate = 1;
	mlps_reg_publish(reg, mk("y", 1, 1, 1, 2, 1));
	assert_int_equal(a.mutate_rc, ML_EINVAL);
	assert_int_equal(mlps_reg_count(reg), 2);
	/* unsubscribing oneself in the snapshot stops the snapshot */
	struct log c = { .n = 0 };
	struct mlps_pattern p;
	struct mlps_filter f;
	mlps_pattern_parse("", &p);
	mlps_filter_parse("", &f);
	mlps_sub *sc;
	c.unsub_on_event = NULL;
	assert_int_equal(mlps_reg_subscribe(reg, &p, &f, on_event, &c, &c, &sc), 0);
	assert_int_equal(c.n, 2);
	mlps_reg_unsubscribe_owner(reg, &a);
	mlps_reg_publish(reg, mk("z", 1, 1, 1, 3, 1));
	assert_int_equal(a.n, 2);
	assert_int_equal(c.n, 3);
	mlps_reg_unsubscribe(sc);
	mlps_reg_free(reg);
}

static void test_many(void **state)
{
	(void)state;
	struct mlps_reg *reg = mlps_reg_new();
	struct log l = { .n = 0 };
	sub(reg, "vol/1234", "", &l);
	char name[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "vol/%d", i);
		assert_int_equal(mlps_reg_publish(reg, mk(name, 1 + i % 3, 1, 1, 1, 1)), 1);
	}
	for (int i = 0; i < 20000; i += 7) {
		snprintf(name, sizeof(name), "vol/%d", i);
		assert_int_equal(mlps_reg_publish(reg, mk(name, 1 + i % 3, 1, 1, 2, 2)), 1);
	}
	assert_int_equal(mlps_reg_count(reg), 20000);
	assert_int_equal(l.n, 1);
	assert_int_equal(mlps_reg_node_left(reg, 2), 6667);
	assert_int_equal(mlps_reg_count(reg), 20000 - 6667);
	mlps_reg_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_key_is_publisher_and_name),
		cmocka_unit_test(test_snapshot_then_changes),
		cmocka_unit_test(test_removals),
		cmocka_unit_test(test_ml_nodes),
		cmocka_unit_test(test_view_hook),
		cmocka_unit_test(test_reentrancy),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
