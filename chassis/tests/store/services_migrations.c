/* SPDX-License-Identifier: MIT */
/* Every business service's migrations (services/<name>/migrations, with
 * their pg/ replacements) apply on SQLite and on PostgreSQL (the cluster of
 * the ctest pg fixture, pg_test.h), twice without harm; on PostgreSQL no
 * column is a 32-bit integer, and the chassis tables (idempotency records,
 * leases) are created beside them. Built by the top-level CMakeLists.txt,
 * which embeds each service's migrations into this program. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/idempotency.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "pg_test.h"

#define SERVICES(X)                                                                                \
    X(users) X(catalog) X(inventory) X(orders) X(payments) X(shipping) X(notifications) X(analytics)

#define DECLARE(name)                                                                              \
    extern const struct ag_migration name##_migrations[];                                          \
    extern const size_t name##_nmigrations;
SERVICES(DECLARE)

struct service {
    const char *name;
    const struct ag_migration *m;
    const size_t *n;
};

#define ENTRY(name) { #name, name##_migrations, &name##_nmigrations },
static const struct service ALL[] = { SERVICES(ENTRY) };

static void
open_twice(const char *what, const char *path, const struct service *svc)
{
    for (int round = 0; round < 2; round++) {
        char err[512] = "";
        struct ag_store_config cfg = { .path = path,
                                       .migrations = svc->m,
                                       .nmigrations = *svc->n,
                                       .errbuf = err,
                                       .errbuf_len = sizeof(err) };
        struct ag_store *s = NULL;
        int rc = ag_store_open(&cfg, &s);
        if (rc != 0)
            fail_msg("%s: %s migrations (round %d): %s: %s", what, svc->name, round + 1,
                     ag_strerror(rc), err);
        struct ag_stmt *st;
        int64_t n = 0;
        assert_int_equal(ag_store_stmt(s, "SELECT count(*) FROM schema_migrations", &st), 0);
        assert_int_equal(ag_stmt_step_i64(st, 0, &n), 0);
        assert_int_equal(n, (int64_t)*svc->n);
        if (strcmp(ag_store_backend(s), "postgres") == 0) {
            assert_int_equal(ag_store_stmt(s,
                                           "SELECT count(*) FROM information_schema.columns"
                                           " WHERE table_schema = current_schema()"
                                           " AND data_type IN ('integer', 'smallint')"
                                           " AND table_name <> 'schema_migrations'",
                                           &st),
                             0);
            assert_int_equal(ag_stmt_step_i64(st, -1, &n), 0);
            if (n != 0)
                fail_msg("%s: %lld 32-bit integer columns", svc->name, (long long)n);
        }
        struct ag_idem *idem = NULL;
        assert_int_equal(ag_idem_new(s, NULL, &idem), 0);
        ag_idem_free(idem);
        bool held = false;
        assert_int_equal(ag_store_lease(s, "test", "me", 1000, 5000, &held), 0);
        assert_true(held);
        ag_store_close(s);
    }
}

/* On SQLite: an in-memory database per service. */
static void
test_sqlite(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(ALL); i++)
        open_twice("sqlite", ":memory:", &ALL[i]);
}

/* On PostgreSQL: a fresh schema per service. */
static void
test_postgres(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(ALL); i++) {
        char schema[64];
        snprintf(schema, sizeof(schema), "svc_%s", ALL[i].name);
        char *url = pg_test_schema_url(schema);
        open_twice("postgres", url, &ALL[i]);
        ag_free(url);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite),
        cmocka_unit_test(test_postgres),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
