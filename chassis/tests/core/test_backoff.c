/* SPDX-License-Identifier: MIT */
/* Unit tests of backoff.c: the capped exponential step (saturation, caps
 * below the base, attempt 0), full jitter spanning [0, cap] and equal
 * jitter staying in [cap / 2, cap], with the extremes of the random value. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "agora/backoff.h"

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static const struct {
    uint64_t base, max;
    unsigned attempt;
    uint64_t cap;
} CASES[] = {
    { 20, 1000, 1, 20 },
    { 20, 1000, 2, 40 },
    { 20, 1000, 3, 80 },
    { 20, 1000, 6, 640 },
    { 20, 1000, 7, 1000 },
    { 20, 1000, 60, 1000 },
    { 20, 1000, 200, 1000 },
    { 100, 10000, 0, 100 },
    { 100, 10000, 1, 100 },
    { 100, 10000, 5, 1600 },
    { 100, 10000, 8, 10000 },
    { 100, 50, 1, 50 },
    { 0, 1000, 9, 0 },
    { 0, 0, 3, 0 },
    { 1, UINT64_MAX, 70, UINT64_MAX },
    { UINT64_MAX / 2, UINT64_MAX, 70, UINT64_MAX },
    { 1000, 60000, 4000000000u, 60000 },
};

/* The step doubles from the base, stops at the maximum and saturates. */
static void
test_cap_table(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(CASES); i++) {
        uint64_t cap = ag_backoff_cap_ms(CASES[i].base, CASES[i].max, CASES[i].attempt);
        if (cap != CASES[i].cap)
            fail_msg("case %zu: cap %llu, want %llu", i, (unsigned long long)cap,
                     (unsigned long long)CASES[i].cap);
    }
}

/* Full jitter stays in [0, cap] and spreads over the whole range. */
static void
test_full_jitter(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(CASES); i++) {
        uint64_t cap = CASES[i].cap;
        uint64_t lo = UINT64_MAX;
        uint64_t hi = 0;
        uint64_t x = 0x9E3779B97F4A7C15ULL + i;
        for (int k = 0; k < 4000; k++) {
            uint64_t w =
                ag_backoff_full_ms(CASES[i].base, CASES[i].max, CASES[i].attempt, xorshift(&x));
            if (w > cap)
                fail_msg("case %zu: %llu > cap %llu", i, (unsigned long long)w,
                         (unsigned long long)cap);
            lo = AG_MIN(lo, w);
            hi = AG_MAX(hi, w);
        }
        if (cap >= 20 && cap != UINT64_MAX) {
            assert_true(lo <= cap / 10);
            assert_true(hi >= cap - cap / 10);
        }
    }
    /* The extremes of the random value map to the ends of the range. */
    assert_int_equal(ag_backoff_full_ms(20, 1000, 1, 0), 0);
    assert_int_equal(ag_backoff_full_ms(20, 1000, 1, 20), 20);
    assert_int_equal(ag_backoff_full_ms(20, 1000, 1, 21), 0);
    assert_int_equal(ag_backoff_full_ms(100, 10000, 3, 400), 400);
    assert_true(ag_backoff_full_ms(1, UINT64_MAX, 70, UINT64_MAX) == UINT64_MAX);
}

/* Equal jitter never comes sooner than half the cap, never later than it. */
static void
test_equal_jitter(void **state)
{
    AG_UNUSED(state);
    static const uint64_t rnds[] = { 0, 1, 7, 999, UINT64_MAX };
    for (size_t i = 0; i < AG_ARRAY_SIZE(CASES); i++) {
        uint64_t cap = CASES[i].cap;
        for (size_t r = 0; r < AG_ARRAY_SIZE(rnds); r++) {
            uint64_t w =
                ag_backoff_equal_ms(CASES[i].base, CASES[i].max, CASES[i].attempt, rnds[r]);
            if (w < cap / 2 || w > cap)
                fail_msg("case %zu: %llu outside [%llu, %llu]", i, (unsigned long long)w,
                         (unsigned long long)(cap / 2), (unsigned long long)cap);
        }
    }
    assert_int_equal(ag_backoff_equal_ms(1000, 60000, 1, 0), 500);
    assert_int_equal(ag_backoff_equal_ms(1000, 60000, 1, 500), 1000);
    assert_int_equal(ag_backoff_equal_ms(1000, 60000, 1, 501), 500);
    assert_int_equal(ag_backoff_equal_ms(0, 0, 3, 99), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_table),
        cmocka_unit_test(test_full_jitter),
        cmocka_unit_test(test_equal_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
