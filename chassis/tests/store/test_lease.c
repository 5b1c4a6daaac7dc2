/* SPDX-License-Identifier: MIT */
/* Unit tests of the leases (store/lease.c) with two stores on one database
 * (a shared SQLite file; test_lease_pg.c runs them on PostgreSQL): one
 * holder at a time, renewal by the holder, hand-over after expiry and at
 * release, refusal inside a transaction. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"
#ifdef AG_TEST_PG
#include "pg_test.h"
#endif

#define T0  1700000000000LL
#define TTL 5000

struct two {
    struct ag_store *a;
    struct ag_store *b;
    char dir[64];
    char path[128];
};

static int
setup(void **state)
{
    struct two *t = ag_calloc(1, sizeof(*t));
#ifdef AG_TEST_PG
    char *url = pg_test_schema_url("t_lease");
    struct ag_store_config cfg = { .path = url };
#else
    snprintf(t->dir, sizeof(t->dir), "/tmp/agora-lease-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/lease.db", t->dir);
    struct ag_store_config cfg = { .path = t->path };
#endif
    assert_int_equal(ag_store_open(&cfg, &t->a), 0);
    assert_int_equal(ag_store_open(&cfg, &t->b), 0);
#ifdef AG_TEST_PG
    ag_free(url);
#endif
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    struct two *t = *state;
    ag_store_close(t->b);
    ag_store_close(t->a);
    if (t->dir[0] != '\0') {
        static const char *const suffixes[] = { "", "-wal", "-shm" };
        for (size_t i = 0; i < AG_ARRAY_SIZE(suffixes); i++) {
            char p[160];
            snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
            unlink(p);
        }
        rmdir(t->dir);
    }
    ag_free(t);
    return 0;
}

static bool
take(struct ag_store *s, const char *holder, int64_t now)
{
    bool held = true;
    assert_int_equal(ag_store_lease(s, "job", holder, now, TTL, &held), 0);
    return held;
}

/* The first taker holds the lease; the other is refused while it lasts,
 * the holder renews it, and once it expires the other takes it over. */
static void
test_one_holder_and_expiry(void **state)
{
    struct two *t = *state;
    assert_true(take(t->a, "a", T0));
    assert_false(take(t->b, "b", T0 + 1));
    assert_true(take(t->a, "a", T0 + 4000)); /* renewed until T0 + 9000 */
    assert_false(take(t->b, "b", T0 + 8999));
    /* 'a' stopped renewing (killed): 'b' takes over after the lease ends. */
    assert_true(take(t->b, "b", T0 + 9000));
    assert_false(take(t->a, "a", T0 + 9001));
    assert_true(take(t->b, "b", T0 + 10000));
    /* Other lease names are independent. */
    bool held = false;
    assert_int_equal(ag_store_lease(t->a, "other", "a", T0, TTL, &held), 0);
    assert_true(held);
}

/* A released lease is free at once; releasing one not held changes
 * nothing; leases are not taken inside a transaction. */
static void
test_release_and_misuse(void **state)
{
    struct two *t = *state;
    assert_true(take(t->a, "a", T0));
    assert_int_equal(ag_store_lease_release(t->b, "job", "b"), 0); /* not b's */
    assert_false(take(t->b, "b", T0 + 1));
    assert_int_equal(ag_store_lease_release(t->a, "job", "a"), 0);
    assert_true(take(t->b, "b", T0 + 2));

    bool held = true;
    assert_int_equal(ag_store_begin(t->a), 0);
    assert_int_equal(ag_store_lease(t->a, "job", "a", T0, TTL, &held), AG_EINVAL);
    assert_false(held);
    assert_int_equal(ag_store_rollback(t->a), 0);
    assert_int_equal(ag_store_lease(t->a, "job", "a", T0, 0, &held), AG_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_holder_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_misuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
