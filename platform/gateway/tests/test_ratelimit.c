/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's token buckets and the bounded LRU table under
 * them: refill arithmetic, the 429 figures (Retry-After, RateLimit-*),
 * independent keys, eviction at the bound and the sweep of full buckets. */
#include "agora/base.h"

#include "agora_test.h"
#include "gateway.h"

#define SEC 1000000000ull

static void
test_bucket_refill_and_headers(void **state)
{
    AG_UNUSED(state);
    struct gw_ratelimit *rl = gw_ratelimit_new(100);
    struct gw_rate rate = { .rate = 2, .burst = 4 };
    struct gw_rate_result r;
    uint64_t t = 1000 * SEC;
    for (int i = 0; i < 4; i++) {
        gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, t, &r);
        assert_true(r.allowed);
        assert_int_equal(r.limit, 4);
        assert_int_equal(r.remaining, (uint64_t)(3 - i));
    }
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, t, &r);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after, 1); /* one token in 0.5 s, rounded up */
    assert_int_equal(r.reset_s, 2);     /* four tokens in 2 s */
    /* Half a second later one token is back. */
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, t + SEC / 2, &r);
    assert_true(r.allowed);
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, t + SEC / 2, &r);
    assert_false(r.allowed);
    /* A long pause refills to the burst, not beyond. */
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, t + 100 * SEC, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 3);
    /* Other keys are independent; rate 0 means no limit. */
    gw_ratelimit_take(rl, AG_STR_LIT("other"), &rate, t + SEC / 2, &r);
    assert_true(r.allowed);
    struct gw_rate none = { 0, 0 };
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &none, t, &r);
    assert_true(r.allowed);
    assert_int_equal(gw_ratelimit_count(rl), 2);
    gw_ratelimit_free(rl);
}

static void
test_slow_rate_retry_after(void **state)
{
    AG_UNUSED(state);
    struct gw_ratelimit *rl = gw_ratelimit_new(10);
    struct gw_rate rate = { .rate = 0.1, .burst = 1 };
    struct gw_rate_result r;
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, SEC, &r);
    assert_true(r.allowed);
    gw_ratelimit_take(rl, AG_STR_LIT("k"), &rate, SEC, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after, 10);
    assert_int_equal(r.reset_s, 10);
    gw_ratelimit_free(rl);
}

static void
test_bounded_with_lru_eviction_and_sweep(void **state)
{
    AG_UNUSED(state);
    struct gw_ratelimit *rl = gw_ratelimit_new(64);
    struct gw_rate rate = { .rate = 1, .burst = 2 };
    struct gw_rate_result r;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "client-%d", i);
        gw_ratelimit_take(rl, ag_str_make(key, (size_t)n), &rate, SEC, &r);
        assert_true(r.allowed);
        assert_true(gw_ratelimit_count(rl) <= 64);
    }
    assert_int_equal(gw_ratelimit_count(rl), 64);
    /* The most recent keys kept their state. */
    gw_ratelimit_take(rl, AG_STR_LIT("client-999"), &rate, SEC, &r);
    assert_true(r.allowed);
    gw_ratelimit_take(rl, AG_STR_LIT("client-999"), &rate, SEC, &r);
    assert_false(r.allowed);
    /* Nothing refilled yet: the sweep keeps everything... */
    gw_ratelimit_sweep(rl, SEC);
    assert_int_equal(gw_ratelimit_count(rl), 64);
    /* ...and drops every bucket once full again. */
    gw_ratelimit_sweep(rl, 10 * SEC);
    assert_int_equal(gw_ratelimit_count(rl), 0);
    gw_ratelimit_free(rl);
}

static void
test_table_find_insert_remove(void **state)
{
    AG_UNUSED(state);
    struct item {
        struct gw_entry e;
        char key[8];
    } items[3];
    struct gw_table t;
    gw_table_init(&t, 2, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        items[i].e.key = items[i].key;
        items[i].e.keylen = 2;
        items[i].e.hash = gw_table_hash(&t, items[i].key, 2);
    }
    gw_table_insert(&t, &items[0].e);
    gw_table_insert(&t, &items[1].e);
    /* Touch k0 so that k1 is the least recently used. */
    assert_ptr_equal(gw_table_find(&t, "k0", 2, items[0].e.hash), &items[0].e);
    gw_table_insert(&t, &items[2].e);
    assert_int_equal(t.count, 2);
    assert_int_equal(t.evictions, 1);
    assert_null(gw_table_find(&t, "k1", 2, items[1].e.hash));
    assert_ptr_equal(gw_table_oldest(&t), &items[0].e);
    assert_ptr_equal(gw_table_newer(&t, &items[0].e), &items[2].e);
    assert_null(gw_table_newer(&t, &items[2].e));
    gw_table_remove(&t, &items[0].e);
    assert_int_equal(t.count, 1);
    gw_table_release(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_refill_and_headers),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_bounded_with_lru_eviction_and_sweep),
        cmocka_unit_test(test_table_find_insert_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
