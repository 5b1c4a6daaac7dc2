/* SPDX-License-Identifier: MIT */
/* Unit tests of uuid.c: UUIDv7 layout (version, variant, timestamp), strict
 * monotonicity and uniqueness in a tight loop and across threads, clock
 * steps back and counter overflow, and the validation table. */
#include "agora/base.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/str.h"
#include "agora/time.h"
#include "agora/uuid.h"

/* Included to reach the generator state (STYLE.md 9). */
#include "../../src/core/uuid.c"

/* A new id is 36 lowercase hex characters and dashes, version 7, variant
 * 10, stamped with the current time. */
static void
test_format_and_bits(void **state)
{
    AG_UNUSED(state);
    for (int n = 0; n < 100; n++) {
        int64_t before = ag_time_unix_ms();
        char id[AG_UUID_STRLEN + 1];
        memset(id, 'x', sizeof(id));
        ag_uuid7(id);
        int64_t after = ag_time_unix_ms();
        assert_int_equal(strlen(id), AG_UUID_STRLEN);
        for (int i = 0; i < AG_UUID_STRLEN; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                assert_int_equal(id[i], '-');
            } else {
                bool hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
                assert_true(hex);
            }
        }
        assert_int_equal(id[14], '7');
        assert_non_null(strchr("89ab", id[19]));
        assert_true(ag_uuid_is_valid(ag_str_from_cstr(id)));
        int64_t ms = ag_uuid7_time_ms(ag_str_from_cstr(id));
        /* The counter may push the stamp a little ahead of the clock. */
        assert_true(ms >= before);
        assert_true(ms <= after + 10);
    }
}

static int
cmp_ids(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* 10,000 ids made back to back are strictly increasing, hence unique, and
 * the random tail differs between ids of the same millisecond. */
static void
test_monotonic_tight_loop(void **state)
{
    AG_UNUSED(state);
    enum { N = 10000 };
    char(*ids)[AG_UUID_STRLEN + 1] = ag_malloc(N * sizeof(*ids));
    for (int i = 0; i < N; i++)
        ag_uuid7(ids[i]);
    int same_tail = 0;
    for (int i = 1; i < N; i++) {
        if (strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("not increasing at %d: %s then %s", i, ids[i - 1], ids[i]);
        if (strcmp(ids[i - 1] + 24, ids[i] + 24) == 0)
            same_tail++;
    }
    assert_int_equal(same_tail, 0);
    ag_free(ids);
}

enum { NTHREADS = 4, PER_THREAD = 2500 };

struct thread_arg {
    char ids[PER_THREAD][AG_UUID_STRLEN + 1];
    bool increasing;
};

static void *
make_ids(void *p)
{
    struct thread_arg *arg = p;
    arg->increasing = true;
    for (int i = 0; i < PER_THREAD; i++) {
        ag_uuid7(arg->ids[i]);
        if (i > 0 && strcmp(arg->ids[i - 1], arg->ids[i]) >= 0)
            arg->increasing = false;
    }
    return NULL;
}

/* Threads generating at once never collide, and each sees its own ids
 * increase. */
static void
test_unique_across_threads(void **state)
{
    AG_UNUSED(state);
    struct thread_arg *args = ag_calloc(NTHREADS, sizeof(*args));
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, &args[t]), 0);
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    char(*all)[AG_UUID_STRLEN + 1] = ag_malloc(NTHREADS * PER_THREAD * sizeof(*all));
    for (int t = 0; t < NTHREADS; t++) {
        assert_true(args[t].increasing);
        memcpy(all + t * PER_THREAD, args[t].ids, sizeof(args[t].ids));
    }
    qsort(all, NTHREADS * PER_THREAD, sizeof(*all), cmp_ids);
    for (int i = 1; i < NTHREADS * PER_THREAD; i++)
        assert_true(strcmp(all[i - 1], all[i]) < 0);
    ag_free(all);
    ag_free(args);
}

static const struct {
    const char *text;
    bool valid;
} valid_cases[] = {
    { "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", true },
    { "017F22E2-79B0-7CC3-98C4-DC0C0C07398F", true },
    { "550e8400-e29b-41d4-a716-446655440000", true }, /* v4 is still a UUID */
    { "00000000-0000-0000-0000-000000000000", true },
    { "ffffffff-ffff-ffff-ffff-ffffffffffff", true },
    { "", false },
    { "017f22e2-79b0-7cc3-98c4-dc0c0c07398", false },   /* 35 chars */
    { "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", false }, /* 37 chars */
    { "017f22e279b07cc398c4dc0c0c07398f", false },      /* no dashes */
    { "017f22e2-79b07-cc3-98c4-dc0c0c07398f", false },  /* dash misplaced */
    { "017f22e2_79b0_7cc3_98c4_dc0c0c07398f", false },
    { "017f22e2-79b0-7cc3-98c4-dc0c0c07398g", false }, /* g */
    { "{017f22e2-79b0-7cc3-98c4-dc0c0c0739}", false },
    { "017f22e2-79b0-7cc3-98c4 dc0c0c07398f", false },
    { "urn:uuid:017f22e2-79b0-7cc3-98c4-dc", false },
};

/* ag_uuid_is_valid accepts exactly the canonical 8-4-4-4-12 hex form. */
static void
test_validation_table(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(valid_cases); i++) {
        bool got = ag_uuid_is_valid(ag_str_from_cstr(valid_cases[i].text));
        if (got != valid_cases[i].valid)
            fail_msg("'%s': got %d", valid_cases[i].text, got);
    }
    assert_false(ag_uuid_is_valid(AG_STR_NULL));
    /* Length comes from the slice. */
    const char *longer = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f-extra";
    assert_true(ag_uuid_is_valid(ag_str_make(longer, AG_UUID_STRLEN)));
}

/* The timestamp is read back from a UUIDv7 (RFC 9562 appendix A.6 example)
 * and refused for other versions or malformed text. */
static void
test_time_ms(void **state)
{
    AG_UNUSED(state);
    assert_int_equal(ag_uuid7_time_ms(AG_STR_LIT("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")),
                     1645557742000LL);
    assert_int_equal(ag_uuid7_time_ms(AG_STR_LIT("ffffffff-ffff-7fff-bfff-ffffffffffff")),
                     0xffffffffffffLL);
    assert_int_equal(ag_uuid7_time_ms(AG_STR_LIT("550e8400-e29b-41d4-a716-446655440000")),
                     AG_EINVAL);
    assert_int_equal(ag_uuid7_time_ms(AG_STR_LIT("017f22e2-79b0-7cc3-98c4")), AG_EINVAL);
}

/* If the clock is behind the last id (it stepped back), ids keep that
 * timestamp and still increase; a full counter carries into the timestamp. */
static void
test_clock_back_and_counter_overflow(void **state)
{
    AG_UNUSED(state);
    uint64_t future = (uint64_t)ag_time_unix_ms() + 60000;
    atomic_store(&last_state, future << SEQ_BITS | (SEQ_MASK - 1));
    char a[AG_UUID_STRLEN + 1];
    char b[AG_UUID_STRLEN + 1];
    char c[AG_UUID_STRLEN + 1];
    ag_uuid7(a);
    ag_uuid7(b);
    ag_uuid7(c);
    assert_int_equal(ag_uuid7_time_ms(ag_str_from_cstr(a)), (int64_t)future);
    assert_memory_equal(a + 14, "7fff", 4);
    assert_int_equal(ag_uuid7_time_ms(ag_str_from_cstr(b)), (int64_t)future + 1);
    assert_memory_equal(b + 14, "7000", 4);
    assert_int_equal(ag_uuid7_time_ms(ag_str_from_cstr(c)), (int64_t)future + 1);
    assert_memory_equal(c + 14, "7001", 4);
    assert_true(strcmp(a, b) < 0);
    assert_true(strcmp(b, c) < 0);
    atomic_store(&last_state, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_bits),
        cmocka_unit_test(test_monotonic_tight_loop),
        cmocka_unit_test(test_unique_across_threads),
        cmocka_unit_test(test_validation_table),
        cmocka_unit_test(test_time_ms),
        cmocka_unit_test(test_clock_back_and_counter_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
