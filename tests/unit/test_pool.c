/* test_pool.c - the per-worker free lists (msglayer/pool.c): objects come back
 * zeroed and are reused, both lists stay within their bounds, the shared list
 * is stocked only for threads that take from it, and other threads can take
 * and give back while the worker does (run under the sanitizers too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include "pool.h"

enum { SIZE = 200 };

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void test_reused_and_zeroed(void **state)
{
	(void)state;
	struct ml_pool pool;
	ml_pool_init(&pool, SIZE, 16);
	void *a = ml_pool_get(&pool, 1);
	assert_non_null(a);
	assert_true(all_zero(a, SIZE));
	memset(a, 0xab, SIZE);
	ml_pool_put(&pool, a, 1);
	assert_int_equal(pool.nlocal, 1);
	void *b = ml_pool_get(&pool, 1);
	assert_ptr_equal(a, b); /* the same object, not a new one */
	assert_true(all_zero(b, SIZE));
	assert_int_equal(pool.nlocal, 0);
	ml_pool_put(&pool, b, 1);
	ml_pool_put(&pool, NULL, 1); /* nothing to give back: ignored */
	assert_int_equal(pool.nlocal, 1);
	ml_pool_fini(&pool);
}

/* Past max_local, objects given back are freed (LeakSanitizer and valgrind
 * would see one that was neither kept nor freed). */
static void test_local_list_bounded(void **state)
{
	(void)state;
	struct ml_pool pool;
	ml_pool_init(&pool, SIZE, 2);
	void *o[3];
	for (int i = 0; i < 3; i++)
		o[i] = ml_pool_get(&pool, 1);
	for (int i = 0; i < 3; i++)
		ml_pool_put(&pool, o[i], 1);
	assert_int_equal(pool.nlocal, 2);
	ml_pool_fini(&pool);
}

/* The worker stocks the shared list only after another thread took from
 * it, and then from its own spares, up to ML_POOL_SHARED. */
static void test_shared_list_stocked_on_demand(void **state)
{
	(void)state;
	struct ml_pool pool;
	ml_pool_init(&pool, SIZE, 1000);
	void *o[300];
	for (int i = 0; i < 300; i++)
		o[i] = ml_pool_get(&pool, 1);
	for (int i = 0; i < 300; i++)
		ml_pool_put(&pool, o[i], 1);
	ml_pool_refill(&pool);
	assert_int_equal(pool.nshared, 0); /* nobody else took: no lock taken, nothing moved */

	void *x = ml_pool_get(&pool, 0); /* empty shared list: a new object */
	assert_non_null(x);
	assert_true(all_zero(x, SIZE));
	ml_pool_refill(&pool);
	assert_int_equal(pool.nshared, ML_POOL_SHARED);
	assert_int_equal(pool.nlocal, 300 - ML_POOL_SHARED);
	void *y = ml_pool_get(&pool, 0);
	int found = 0;
	for (int i = 0; i < 300; i++)
		found |= y == o[i];
	assert_true(found); /* one of the worker's spares */
	assert_int_equal(pool.nshared, ML_POOL_SHARED - 1);
	ml_pool_put(&pool, x, 0);
	ml_pool_put(&pool, y, 0);
	ml_pool_fini(&pool);
}

/* Objects given back on other threads fill the shared list up to its bound;
 * the rest are freed. */
static void test_shared_list_bounded(void **state)
{
	(void)state;
	struct ml_pool pool;
	ml_pool_init(&pool, SIZE, 1000);
	void *o[ML_POOL_SHARED + 10];
	for (int i = 0; i < ML_POOL_SHARED + 10; i++)
		o[i] = ml_pool_get(&pool, 1);
	for (int i = 0; i < ML_POOL_SHARED + 10; i++)
		ml_pool_put(&pool, o[i], 0);
	assert_int_equal(pool.nshared, ML_POOL_SHARED);
	assert_int_equal(pool.nlocal, 0);
	ml_pool_fini(&pool);
}

struct taker {
	struct ml_pool *pool;
	int rounds;
	int bad; /* objects that came without memory or not zeroed (cmocka's asserts are for the main thread) */
};

static void *taker_main(void *arg)
{
	struct taker *t = arg;
	for (int i = 0; i < t->rounds; i++) {
		uint8_t *o = ml_pool_get(t->pool, 0);
		if (!o || !all_zero(o, SIZE)) {
			__atomic_fetch_add(&t->bad, 1, __ATOMIC_RELAXED);
			continue;
		}
		memset(o, 0x5a, SIZE);
		ml_pool_put(t->pool, o, 0);
	}
	return NULL;
}

/* Two application threads take and give back while the worker does, and
 * refills: every object comes back zeroed, none is handed out twice (a
 * double hand-out would show as non-zero bytes or a sanitizer report). */
static void test_threads_take_while_worker_runs(void **state)
{
	(void)state;
	struct ml_pool pool;
	ml_pool_init(&pool, SIZE, 512);
	struct taker t = { &pool, 20000, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, taker_main, &t), 0);
	for (int i = 0; i < 20000; i++) {
		uint8_t *o = ml_pool_get(&pool, 1);
		assert_true(all_zero(o, SIZE));
		memset(o, 0xa5, SIZE);
		ml_pool_put(&pool, o, 1);
		if (i % 16 == 0)
			ml_pool_refill(&pool);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(t.bad, 0);
	assert_true(pool.nlocal <= 512);
	assert_true(pool.nshared <= ML_POOL_SHARED);
	ml_pool_fini(&pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reused_and_zeroed),
		cmocka_unit_test(test_local_list_bounded),
		cmocka_unit_test(test_shared_list_stocked_on_demand),
		cmocka_unit_test(test_shared_list_bounded),
		cmocka_unit_test(test_threads_take_while_worker_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
