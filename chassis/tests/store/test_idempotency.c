/* SPDX-License-Identifier: MIT */
/* Unit tests of the idempotency records (store/idempotency.c) on an
 * in-memory database: a key's first answer replayed, another request under
 * the key refused (422), a key in progress busy (409), keys in progress
 * forgotten at start, the step replay record (pending then done), and the
 * expiry sweep of keys and answered steps. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/idempotency.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "agora/str.h"
#ifdef AG_TEST_PG
#include "pg_test.h"
#endif

#define HOUR (3600 * 1000LL)
#define T0   (1700000000000LL)

struct fixture {
    struct ag_store *st;
    struct ag_idem *idem;
    struct ag_pool *pool;
};

static int
setup(void **state)
{
    struct fixture *f = ag_calloc(1, sizeof(*f));
#ifdef AG_TEST_PG
    /* test_idempotency_pg.c: the same tests on PostgreSQL. */
    char *url = pg_test_schema_url("t_idem");
    struct ag_store_config cfg = { .path = url };
    assert_int_equal(ag_store_open(&cfg, &f->st), 0);
    ag_free(url);
#else
    struct ag_store_config cfg = { .path = ":memory:" };
    assert_int_equal(ag_store_open(&cfg, &f->st), 0);
#endif
    struct ag_idem_config icfg = { .ttl_ms = 24 * HOUR };
    assert_int_equal(ag_idem_new(f->st, &icfg, &f->idem), 0);
    f->pool = ag_pool_new(4096);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    ag_pool_free(f->pool);
    ag_idem_free(f->idem);
    ag_store_close(f->st);
    ag_free(f);
    return 0;
}

static void
hash_of(const char *body, char out[AG_IDEM_HASH_LEN])
{
    struct ag_str parts[] = { ag_str_from_cstr("POST"), ag_str_from_cstr("/v1/payments"),
                              ag_str_from_cstr(body) };
    ag_idem_hash(parts, AG_ARRAY_SIZE(parts), out);
}

static enum ag_idem_state
begin(struct fixture *f, const char *key, const char *hash, int64_t now, struct ag_idem_answer *out)
{
    enum ag_idem_state s = AG_IDEM_NEW;
    assert_int_equal(ag_idem_begin(f->idem, "user-1", key, hash, now, f->pool, &s, out), 0);
    return s;
}

static void
test_replay_mismatch_busy(void **state)
{
    struct fixture *f = *state;
    char h1[AG_IDEM_HASH_LEN];
    char h2[AG_IDEM_HASH_LEN];
    hash_of("{\"amount\":100}", h1);
    hash_of("{\"amount\":200}", h2);
    assert_string_not_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    struct ag_idem_answer a;
    assert_int_equal(begin(f, "k1", h1, T0, &a), AG_IDEM_NEW);
    /* In progress: the same request again is busy (409), another one 422. */
    assert_int_equal(begin(f, "k1", h1, T0 + 1, &a), AG_IDEM_BUSY);
    assert_int_equal(begin(f, "k1", h2, T0 + 1, &a), AG_IDEM_MISMATCH);
    struct ag_idem_answer first = {
        .status = 201, .content_type = "application/json", .body = "{\"id\":\"p1\"}", .len = 11
    };
    assert_int_equal(ag_idem_finish(f->idem, "user-1", "k1", h1, &first, T0 + 2), 0);
    /* Answered: the first answer, as it was. */
    assert_int_equal(begin(f, "k1", h1, T0 + 3, &a), AG_IDEM_REPLAY);
    assert_int_equal(a.status, 201);
    assert_string_equal(a.content_type, "application/json");
    assert_string_equal(a.body, "{\"id\":\"p1\"}");
    assert_int_equal(a.len, 11);
    /* Same key, different body: 422, and the first answer stays. */
    assert_int_equal(begin(f, "k1", h2, T0 + 4, &a), AG_IDEM_MISMATCH);
    assert_int_equal(begin(f, "k1", h1, T0 + 5, &a), AG_IDEM_REPLAY);
    /* Keys are per scope. */
    enum ag_idem_state s;
    assert_int_equal(ag_idem_begin(f->idem, "user-2", "k1", h2, T0, f->pool, &s, &a), 0);
    assert_int_equal(s, AG_IDEM_NEW);
    /* A forgotten key starts again. */
    assert_int_equal(ag_idem_forget(f->idem, "user-2", "k1"), 0);
    assert_int_equal(ag_idem_begin(f->idem, "user-2", "k1", h1, T0, f->pool, &s, &a), 0);
    assert_int_equal(s, AG_IDEM_NEW);
}

static void
test_in_progress_forgotten_at_start(void **state)
{
    struct fixture *f = *state;
    char h[AG_IDEM_HASH_LEN];
    hash_of("{}", h);
    struct ag_idem_answer a;
    assert_int_equal(begin(f, "running", h, T0, &a), AG_IDEM_NEW);
    struct ag_idem_answer done = {
        .status = 200, .content_type = "text/plain", .body = "ok", .len = 2
    };
    assert_int_equal(begin(f, "answered", h, T0, &a), AG_IDEM_NEW);
    assert_int_equal(ag_idem_finish(f->idem, "user-1", "answered", h, &done, T0), 0);
    /* A restart: the key in progress belonged to the stopped process. */
    ag_idem_free(f->idem);
    assert_int_equal(ag_idem_new(f->st, NULL, &f->idem), 0);
    assert_int_equal(begin(f, "running", h, T0 + 1, &a), AG_IDEM_NEW);
    assert_int_equal(begin(f, "answered", h, T0 + 1, &a), AG_IDEM_REPLAY);
}

static void
test_steps(void **state)
{
    struct fixture *f = *state;
    struct ag_step s;
    assert_int_equal(ag_step_get(f->idem, "o1:authorize", f->pool, &s), AG_ENOENT);
    struct ag_step pending = {
        .key = "o1:authorize", .command = "authorize", .subject = "o1", .data = "{\"amount\":5}"
    };
    assert_int_equal(ag_step_put(f->idem, &pending, T0), 0);
    assert_int_equal(ag_step_get(f->idem, "o1:authorize", f->pool, &s), 0);
    assert_false(s.done);
    assert_string_equal(s.subject, "o1");
    assert_null(s.reply_type);
    struct ag_step list[4];
    size_t n;
    assert_int_equal(ag_step_list_pending(f->idem, 4, f->pool, list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].key, "o1:authorize");
    assert_string_equal(list[0].data, "{\"amount\":5}");
    /* Answered: the reply replaces the pending row. */
    struct ag_step done = { .key = "o1:authorize",
                            .command = "authorize",
                            .subject = "o1",
                            .done = true,
                            .reply_type = "payment.authorized",
                            .reply_subject = "p1",
                            .data = "{\"payment_id\":\"p1\"}" };
    assert_int_equal(ag_step_put(f->idem, &done, T0 + 1), 0);
    assert_int_equal(ag_step_get(f->idem, "o1:authorize", f->pool, &s), 0);
    assert_true(s.done);
    assert_string_equal(s.reply_type, "payment.authorized");
    assert_string_equal(s.reply_subject, "p1");
    assert_string_equal(s.data, "{\"payment_id\":\"p1\"}");
    assert_int_equal(ag_step_list_pending(f->idem, 4, f->pool, list, &n), 0);
    assert_int_equal(n, 0);
}

static void
test_expiry_sweep(void **state)
{
    struct fixture *f = *state;
    char h[AG_IDEM_HASH_LEN];
    hash_of("{}", h);
    struct ag_idem_answer a;
    struct ag_idem_answer ok = {
        .status = 200, .content_type = "text/plain", .body = "ok", .len = 2
    };
    assert_int_equal(begin(f, "old", h, T0, &a), AG_IDEM_NEW);
    assert_int_equal(ag_idem_finish(f->idem, "user-1", "old", h, &ok, T0), 0);
    assert_int_equal(begin(f, "young", h, T0 + 23 * HOUR, &a), AG_IDEM_NEW);
    assert_int_equal(ag_idem_finish(f->idem, "user-1", "young", h, &ok, T0 + 23 * HOUR), 0);
    struct ag_step done = { .key = "o1:commit",
                            .command = "commit",
                            .done = true,
                            .reply_type = "inventory.committed",
                            .data = "{}" };
    struct ag_step pending = { .key = "o2:authorize", .command = "authorize" };
    assert_int_equal(ag_step_put(f->idem, &done, T0), 0);
    assert_int_equal(ag_step_put(f->idem, &pending, T0), 0);
    /* Before 24 h nothing goes. */
    int64_t n = -1;
    assert_int_equal(ag_idem_sweep(f->idem, T0 + 24 * HOUR - 1, &n), 0);
    assert_int_equal(n, 0);
    /* Past it: the old key and the answered step; the pending step stays. */
    assert_int_equal(ag_idem_sweep(f->idem, T0 + 24 * HOUR + 1, &n), 0);
    assert_int_equal(n, 2);
    struct ag_step s;
    assert_int_equal(ag_step_get(f->idem, "o1:commit", f->pool, &s), AG_ENOENT);
    assert_int_equal(ag_step_get(f->idem, "o2:authorize", f->pool, &s), 0);
    assert_int_equal(begin(f, "young", h, T0 + 24 * HOUR + 2, &a), AG_IDEM_REPLAY);
    assert_int_equal(begin(f, "old", h, T0 + 24 * HOUR + 2, &a), AG_IDEM_NEW);
    /* A key past its time and not swept yet is gone all the same. */
    assert_int_equal(begin(f, "young", h, T0 + 48 * HOUR, &a), AG_IDEM_NEW);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_mismatch_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_progress_forgotten_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
