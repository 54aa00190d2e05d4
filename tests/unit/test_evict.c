/* test_evict.c — SIEVE as the store's evictor runs it: victims in the order
 * the algorithm gives on hand-computed traces, and a table that stays
 * consistent through many inserts and removals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "common/err.h"
#include "edge/evict.h"

static void key_of(unsigned n, unsigned char k[16])
{
    memset(k, 0, 16);
    memcpy(k, &n, sizeof n);
    memcpy(k + 8, &n, sizeof n);   /* home slot = n: forces neighbours to collide */
}

static unsigned victim(mc_evict *e)
{
    unsigned char k[16];
    uint64_t b;
    assert_int_equal(mc_evict_victim(e, k, &b), 0);
    mc_evict_release(e, k);   /* as the writer does once its transaction ends */
    unsigned n;
    memcpy(&n, k, sizeof n);
    return n;
}

/* Insert 1..5; hits on 1 and 3; SIEVE evicts 2 (1 is passed over and
 * cleared), then 4 (3 passed over), then 5, then 1 (its bit was cleared),
 * then 3. An LRU would evict 2, 4, 5, 1, 3 only by luck of the hit order;
 * the point is the hand: it does not go back to the oldest after a victim. */
static void sieve_order(void **state)
{
    (void)state;
    mc_evict *e;
    unsigned char k[16];
    assert_int_equal(mc_evict_new(&e, 64), 0);
    for (unsigned i = 1; i <= 5; i++) {
        key_of(i, k);
        assert_int_equal(mc_evict_insert(e, k, i * 100), 0);
    }
    key_of(1, k);
    mc_evict_touch(e, k);
    key_of(3, k);
    mc_evict_touch(e, k);
    assert_int_equal(victim(e), 2);
    /* a new object and a hit on 5 after the first eviction */
    key_of(6, k);
    assert_int_equal(mc_evict_insert(e, k, 600), 0);
    key_of(5, k);
    mc_evict_touch(e, k);
    assert_int_equal(victim(e), 4);    /* the hand continues from 3 (cleared) */
    assert_int_equal(victim(e), 6);    /* 5 passed over, then the newest */
    assert_int_equal(victim(e), 1);    /* wrapped: 1's bit was cleared on the first pass */
    assert_int_equal(victim(e), 3);
    assert_int_equal(victim(e), 5);
    assert_int_equal(mc_evict_count(e), 0);
    unsigned char kk[16];
    uint64_t b;
    assert_int_equal(mc_evict_victim(e, kk, &b), MC_E_NOTFOUND);
    mc_evict_free(e);
}

/* Random inserts/removes against a reference array: every live key is
 * found (touch then victim order covers all), nothing removed comes back. */
static void churn_keeps_the_table_consistent(void **state)
{
    (void)state;
    enum { N = 600 };
    mc_evict *e;
    assert_int_equal(mc_evict_new(&e, 1024), 0);
    int live[N] = {0};
    unsigned char k[16];
    srand(7);
    for (int step = 0; step < 20000; step++) {
        unsigned n = (unsigned)(rand() % N);
        key_of(n * 7 % 1024, k);   /* clustered homes: long probe runs */
        if (live[n]) {
            mc_evict_remove(e, k);
            live[n] = 0;
        } else if (!mc_evict_needs_room(e)) {
            assert_int_equal(mc_evict_insert(e, k, 1), 0);
            live[n] = 1;
        }
    }
    size_t want = 0;
    for (int n = 0; n < N; n++)
        want += (size_t)live[n];
    assert_int_equal(mc_evict_count(e), want);
    int seen[N] = {0};
    for (size_t i = 0; i < want; i++) {
        unsigned v = victim(e);
        unsigned n = 0;
        while (n < N && n * 7 % 1024 != v)
            n++;
        assert_true(n < N && live[n] && !seen[n]);
        seen[n] = 1;
    }
    assert_int_equal(mc_evict_count(e), 0);
    mc_evict_free(e);
}

/* A pinned object (a hit being streamed) is passed over; unpinned it is a
 * victim again; with everything pinned there is no victim, and the pins
 * survive the slot moves that removals cause. */
static void pins(void **state)
{
    (void)state;
    mc_evict *e;
    unsigned char k[16];
    assert_int_equal(mc_evict_new(&e, 64), 0);
    for (unsigned n = 1; n <= 4; n++) {
        key_of(n, k);
        assert_int_equal(mc_evict_insert(e, k, 100), 0);
    }
    key_of(1, k);
    assert_int_equal(mc_evict_pin(e, k), 0);
    assert_int_equal(mc_evict_pin(e, k), 0);   /* two viewers */
    assert_int_equal(victim(e), 2);     /* 1 is the oldest but pinned */
    mc_evict_unpin(e, k);
    assert_int_equal(victim(e), 3);     /* still one pin on 1 */
    unsigned char k4[16];
    key_of(4, k4);
    assert_int_equal(mc_evict_pin(e, k4), 0);
    uint64_t b;
    assert_int_equal(mc_evict_victim(e, k, &b), MC_E_NOTFOUND);   /* 1 and 4 both pinned */
    key_of(1, k);
    mc_evict_unpin(e, k);
    assert_int_equal(victim(e), 1);
    mc_evict_unpin(e, k4);
    assert_int_equal(victim(e), 4);
    assert_int_equal(mc_evict_count(e), 0);
    mc_evict_free(e);
}

/* The victim stays doomed until the writer releases it: a viewer's pin in
 * that window fails (the object may be gone from its next read on), and
 * succeeds again after the release (a new copy under the same key). A
 * pinned object is never doomed. */
static void pin_refused_while_doomed(void **state)
{
    (void)state;
    mc_evict *e;
    unsigned char k[16], v[16];
    uint64_t b;
    assert_int_equal(mc_evict_new(&e, 64), 0);
    for (unsigned n = 1; n <= 2; n++) {
        key_of(n, k);
        assert_int_equal(mc_evict_insert(e, k, 100), 0);
    }
    assert_int_equal(mc_evict_victim(e, v, &b), 0);
    key_of(1, k);
    assert_memory_equal(v, k, 16);
    assert_int_equal(mc_evict_pin(e, k), MC_E_BUSY);
    assert_int_equal(mc_evict_pin(e, k), MC_E_BUSY);   /* a refused pin leaves no count behind */
    mc_evict_release(e, v);
    assert_int_equal(mc_evict_pin(e, k), 0);
    assert_int_equal(mc_evict_insert(e, k, 100), 0);   /* refilled while a viewer holds it */
    assert_int_equal(victim(e), 2);
    assert_int_equal(mc_evict_victim(e, v, &b), MC_E_NOTFOUND);   /* 1 pinned: never doomed */
    mc_evict_unpin(e, k);
    assert_int_equal(victim(e), 1);
    mc_evict_free(e);
}

static void load_limit(void **state)
{
    (void)state;
    mc_evict *e;
    unsigned char k[16];
    assert_int_equal(mc_evict_new(&e, 1024), 0);
    int inserted = 0;
    for (unsigned i = 1; i <= 1024; i++) {
        key_of(i, k);
        if (mc_evict_insert(e, k, 1) == MC_E_FULL)
            break;
        inserted++;
    }
    assert_true(inserted >= 700 && inserted < 1024);
    key_of(1, k);
    assert_int_equal(mc_evict_insert(e, k, 5), 0);   /* an existing key always fits */
    mc_evict_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sieve_order),
        cmocka_unit_test(churn_keeps_the_table_consistent),
        cmocka_unit_test(load_limit),
        cmocka_unit_test(pins),
        cmocka_unit_test(pin_refused_while_doomed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
