/* SPDX-License-Identifier: MIT */
/* Unit tests of the store's PostgreSQL backend (store_pg.c) against the
 * private cluster the ctest fixture starts (pg-fixture, pg_test.h): the
 * store contract of test_store.c on PostgreSQL (binding, cache, constraint
 * mapping, getters, transactions, migrations, fault hook) and what is
 * PostgreSQL's own: per-backend migration SQL, serialization failures
 * retried by ag_store_tx, bytea and BIGINT round trips, synchronous_commit
 * for durability and lazy transactions, a lost connection re-opened. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "agora/str.h"
#include "agora/time.h"
#include "pg_test.h"

#define T_SCHEMA "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT UNIQUE)"

/* ---- Helpers ------------------------------------------------------------- */

static struct ag_store *
open_cfg(struct ag_store_config *cfg)
{
    struct ag_store *s = NULL;
    char err[256] = "";
    cfg->errbuf = err;
    cfg->errbuf_len = sizeof(err);
    int rc = ag_store_open(cfg, &s);
    cfg->errbuf = NULL;
    cfg->errbuf_len = 0;
    if (rc != 0)
        fail_msg("open: %s: %s", ag_strerror(rc), err);
    return s;
}

/* A store on a fresh schema 'name', with 'ddl' run in it (may be NULL).
 * '*out_url' (may be NULL) receives the URL (owned). */
static struct ag_store *
open_schema(const char *name, const char *ddl, char **out_url)
{
    char *url = pg_test_schema_url(name);
    struct ag_store_config cfg = { .path = url };
    struct ag_store *s = open_cfg(&cfg);
    if (ddl != NULL && ag_store_exec(s, ddl) != 0)
        fail_msg("ddl: %s", ag_store_errmsg(s));
    if (out_url != NULL)
        *out_url = url;
    else
        ag_free(url);
    return s;
}

static int64_t
query_i64(struct ag_store *s, const char *sql)
{
    struct ag_stmt *st;
    if (ag_store_stmt(s, sql, &st) != 0)
        fail_msg("prepare '%s': %s", sql, ag_store_errmsg(s));
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    int64_t v = ag_stmt_col_i64(st, 0);
    ag_stmt_reset(st);
    return v;
}

static void
query_text(struct ag_store *s, const char *sql, char *out, size_t outlen)
{
    struct ag_stmt *st;
    if (ag_store_stmt(s, sql, &st) != 0)
        fail_msg("prepare '%s': %s", sql, ag_store_errmsg(s));
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    snprintf(out, outlen, "%s", ag_stmt_col_text(st, 0));
    ag_stmt_reset(st);
}

static int
insert_t(struct ag_store *s, int64_t id, const char *name)
{
    struct ag_stmt *st;
    int rc = ag_store_stmt(s, "INSERT INTO t (id, name) VALUES ($1, $2)", &st);
    if (rc != 0)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, id);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, name);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc;
}

/* ---- Open, settings, errors ---------------------------------------------- */

/* A PostgreSQL store names its backend, answers ping, commits
 * synchronously by default and asynchronously with AG_STORE_NORMAL. */
static void
test_open_and_durability(void **state)
{
    AG_UNUSED(state);
    char *url = NULL;
    struct ag_store *s = open_schema("t_open", NULL, &url);
    assert_string_equal(ag_store_backend(s), "postgres");
    assert_int_equal(ag_store_ping(s), 0);
    char v[32];
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "on");
    query_text(s, "SELECT current_setting('lock_timeout')", v, sizeof(v));
    assert_string_equal(v, "5s");
    assert_string_equal(ag_store_errmsg(s), "");
    ag_store_close(s);

    struct ag_store_config cfg = { .path = url, .durability = AG_STORE_NORMAL };
    s = open_cfg(&cfg);
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "off");
    ag_store_close(s);
    ag_free(url);
}

/* A refused login or an unreachable server is AG_EIO, and the message
 * never holds the password. */
static void
test_open_errors(void **state)
{
    AG_UNUSED(state);
    struct ag_store *sentinel = (struct ag_store *)&sentinel;
    struct ag_store *s = sentinel;
    char err[256] = "";
    struct ag_store_config cfg = { .path = "postgres://agora:s3cretpw@127.0.0.1:1/agora",
                                   .errbuf = err,
                                   .errbuf_len = sizeof(err) };
    assert_int_equal(ag_store_open(&cfg, &s), AG_EIO);
    assert_null(strstr(err, "s3cretpw"));
    assert_non_null(strstr(err, "postgres"));
    assert_ptr_equal(s, sentinel);

    /* The right server, a wrong password. */
    char *bad = ag_strdup(pg_test_url());
    char *at = strrchr(bad, '@');
    char *colon = strchr(bad + strlen("postgres://"), ':');
    assert_true(at != NULL && colon != NULL && colon < at);
    for (char *p = colon + 1; p < at; p++)
        *p = 'x';
    cfg.path = bad;
    assert_int_equal(ag_store_open(&cfg, &s), AG_EIO);
    assert_null(strstr(err, "xxxxxxxx"));
    assert_non_null(strstr(err, "password"));
    ag_free(bad);
}

/* ---- Migrations ---------------------------------------------------------- */

/* The PostgreSQL text of a migration replaces the portable one; versions
 * are applied in order and once; a newer database is refused; a failing
 * migration is rolled back whole and named. */
static void
test_migrations(void **state)
{
    AG_UNUSED(state);
    char *url = pg_test_schema_url("t_migr");
    const struct ag_migration v2[] = {
        { 2, "0002_add", "ALTER TABLE p ADD COLUMN price INTEGER NOT NULL DEFAULT 0;", NULL },
        { 1, "0001_init", "CREATE TABLE p (id INTEGER PRIMARY KEY AUTOINCREMENT);",
          "CREATE TABLE p (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY);" },
    };
    struct ag_store_config cfg = { .path = url, .migrations = v2, .nmigrations = 2 };
    struct ag_store *s = open_cfg(&cfg);
    assert_int_equal(ag_store_exec(s, "INSERT INTO p (price) VALUES (5)"), 0);
    assert_int_equal(query_i64(s, "SELECT id FROM p"), 1);
    char when[64];
    query_text(s, "SELECT applied_at FROM schema_migrations WHERE version = 2", when, sizeof(when));
    int64_t ms = 0;
    assert_int_equal(ag_time_parse_rfc3339(ag_str_from_cstr(when), &ms), 0);
    ag_store_close(s);

    const struct ag_migration v3[] = {
        v2[1],
        v2[0],
        { 3, "0003_name", "ALTER TABLE p ADD COLUMN name TEXT;", NULL },
    };
    cfg.migrations = v3;
    cfg.nmigrations = 3;
    s = open_cfg(&cfg);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM schema_migrations"), 3);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM p WHERE name IS NULL"), 1);
    ag_store_close(s);

    char msg[256] = "";
    cfg.migrations = v2;
    cfg.nmigrations = 2;
    cfg.errbuf = msg;
    cfg.errbuf_len = sizeof(msg);
    s = NULL;
    assert_int_equal(ag_store_open(&cfg, &s), AG_ECONFIG);
    assert_non_null(strstr(msg, "newer"));

    const struct ag_migration bad[] = {
        v3[0],
        v3[1],
        v3[2],
        { 4, "0004_broken", "CREATE TABLE b (y INTEGER); INSERT INTO missing VALUES (1);", NULL },
    };
    cfg.migrations = bad;
    cfg.nmigrations = 4;
    assert_int_not_equal(ag_store_open(&cfg, &s), 0);
    assert_null(s);
    assert_non_null(strstr(msg, "0004_broken"));
    assert_non_null(strstr(msg, "missing"));
    cfg.nmigrations = 3;
    cfg.errbuf = NULL;
    s = open_cfg(&cfg);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM information_schema.tables"
                                  " WHERE table_schema = 't_migr' AND table_name = 'b'"),
                     0);
    ag_store_close(s);
    ag_free(url);
}

/* ---- Statements ---------------------------------------------------------- */

/* $n bind by number in any order, a repeated $1 is one value, unknown
 * parameters and binding a stepped statement are AG_EINVAL; the cache gives
 * the same statement for the same text; bad SQL is AG_EINVAL. */
static void
test_bind_and_cache(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema("t_bind", T_SCHEMA, NULL);
    struct ag_stmt *st;
    assert_int_equal(ag_store_stmt(s, "INSERT INTO t (name, id) VALUES ($2, $1)", &st), 0);
    assert_int_equal(ag_stmt_bind_i64(st, 1, 7), 0);
    assert_int_equal(ag_stmt_bind_text(st, 2, "seven!", 5), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);
    assert_int_equal(ag_store_changes(s), 1);

    assert_int_equal(ag_store_stmt(s, "SELECT name, id FROM t WHERE id = $1 OR id = $1 + 100", &st),
                     0);
    assert_int_equal(ag_stmt_bind_i64(st, 1, 7), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    assert_string_equal(ag_stmt_col_text(st, 0), "seven");
    assert_int_equal(ag_stmt_col_i64(st, 1), 7);
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    assert_int_equal(ag_stmt_bind_i64(st, 1, 8), AG_EINVAL);
    assert_non_null(strstr(ag_store_errmsg(s), "reset"));
    ag_stmt_reset(st);
    assert_int_equal(ag_stmt_bind_i64(st, 2, 1), AG_EINVAL);
    assert_non_null(strstr(ag_store_errmsg(s), "$2"));
    assert_int_equal(ag_stmt_bind_null(st, 0), AG_EINVAL);
    ag_stmt_reset(st);

    struct ag_stmt *again;
    assert_int_equal(
        ag_store_stmt(s, "SELECT name, id FROM t WHERE id = $1 OR id = $1 + 100", &again), 0);
    assert_ptr_equal(st, again);
    assert_int_equal(ag_stmt_step(again), AG_STMT_DONE); /* bindings cleared: NULL */
    ag_stmt_reset(again);

    /* A parameter only "$n IS NULL" could type is taken as text. */
    assert_int_equal(
        ag_store_stmt(s, "SELECT count(*) FROM t WHERE ($1 IS NULL OR name = $1)", &st), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 1, "seven"), 0);
    int64_t n = 0;
    assert_int_equal(ag_stmt_step_i64(st, -1, &n), 0);
    assert_int_equal(n, 1);

    static const char *const bad[] = {
        "SELEKT 1",
        "SELECT * FROM no_such_table",
        "SELECT 1; SELECT 2",
        "SELECT nope FROM t",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        int err = 0;
        assert_null(ag_store_prepare(s, bad[i], &err));
        assert_int_equal(err, AG_EINVAL);
        assert_true(strlen(ag_store_errmsg(s)) > 0);
    }
    assert_non_null(ag_store_prepare(s, "SELECT 1;", NULL));
    ag_store_close(s);
}

/* With room for 2 statements, idle ones are evicted (and deallocated on the
 * server) while those in use survive past the bound. */
static void
test_cache_eviction(void **state)
{
    AG_UNUSED(state);
    char *url = pg_test_schema_url("t_evict");
    struct ag_store_config cfg = { .path = url, .stmt_cache_max = 2 };
    struct ag_store *s = open_cfg(&cfg);
    char sql[48];
    for (int i = 0; i < 50; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d::bigint", i);
        assert_int_equal(query_i64(s, sql), i);
    }
    assert_true(query_i64(s, "SELECT COUNT(*) FROM pg_prepared_statements") <= 3);
    struct ag_stmt *held[5];
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof(sql), "SELECT 100 + %d", i);
        assert_int_equal(ag_store_stmt(s, sql, &held[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ag_stmt_step(held[i]), AG_STMT_ROW);
        assert_int_equal(ag_stmt_col_i64(held[i], 0), 100 + i);
        ag_stmt_reset(held[i]);
    }
    ag_store_close(s);
    ag_free(url);
}

/* 23505 (unique, primary key) is AG_EEXIST; foreign key, check and not
 * null violations are AG_ECONFLICT; a bad value for a type is AG_EINVAL. */
static void
test_constraint_mapping(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema("t_constraint",
                                     T_SCHEMA ";"
                                              "CREATE TABLE c (id BIGINT PRIMARY KEY,"
                                              " t_id BIGINT NOT NULL REFERENCES t (id),"
                                              " qty BIGINT CHECK (qty > 0))",
                                     NULL);
    assert_int_equal(insert_t(s, 1, "one"), AG_STMT_DONE);
    assert_int_equal(insert_t(s, 1, "uno"), AG_EEXIST);
    assert_int_equal(insert_t(s, 2, "one"), AG_EEXIST);
    assert_non_null(strstr(ag_store_errmsg(s), "duplicate key"));
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (1, 1, 1)"), 0);
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (2, 42, 1)"), AG_ECONFLICT);
    assert_non_null(strstr(ag_store_errmsg(s), "foreign key"));
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (3, 1, 0)"), AG_ECONFLICT);
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (4, NULL, 1)"), AG_ECONFLICT);
    assert_int_equal(ag_store_exec(s, "DELETE FROM t WHERE id = 1"), AG_ECONFLICT);
    struct ag_stmt *st;
    assert_int_equal(ag_store_stmt(s, "SELECT COUNT(*) FROM c WHERE qty = $1", &st), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 1, "not a number"), 0);
    assert_int_equal(ag_stmt_step(st), AG_EINVAL);
    ag_stmt_reset(st);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM c"), 1);
    ag_store_close(s);
}

/* BIGINT at both ends of int64, a double, text, bytea with NUL and 0xff
 * bytes, an empty bytea, a boolean and NULLs round-trip; out-of-range
 * indexes read as NULL. */
static void
test_column_getters(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema(
        "t_getters",
        "CREATE TABLE v (i BIGINT, j BIGINT, r DOUBLE PRECISION, t TEXT, b BYTEA, e BYTEA,"
        " f BOOLEAN, n BIGINT, m TEXT)",
        NULL);
    struct ag_stmt *st;
    assert_int_equal(
        ag_store_stmt(s, "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", &st), 0);
    const unsigned char blob[] = { 0, 1, 2, '\\', 'x', 0xff };
    assert_int_equal(ag_stmt_bind_i64(st, 1, INT64_MIN), 0);
    assert_int_equal(ag_stmt_bind_i64(st, 2, INT64_MAX), 0);
    assert_int_equal(ag_stmt_bind_double(st, 3, 2.5), 0);
    assert_int_equal(ag_stmt_bind_text(st, 4, "héllo", strlen("héllo")), 0);
    assert_int_equal(ag_stmt_bind_blob(st, 5, blob, sizeof(blob)), 0);
    assert_int_equal(ag_stmt_bind_blob(st, 6, NULL, 0), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 7, "true"), 0);
    assert_int_equal(ag_stmt_bind_null(st, 8), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 9, NULL), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);
    /* Text with a NUL cannot be stored in PostgreSQL text: refused. */
    assert_int_equal(ag_store_stmt(s, "SELECT $1::text", &st), 0);
    assert_int_equal(ag_stmt_bind_text(st, 1, "a\0b", 3), AG_EINVAL);
    ag_stmt_reset(st);

    assert_int_equal(ag_store_stmt(s, "SELECT i, j, r, t, b, e, f, n, m FROM v", &st), 0);
    assert_int_equal(ag_stmt_ncols(st), 9);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    assert_true(ag_stmt_col_i64(st, 0) == INT64_MIN);
    assert_true(ag_stmt_col_i64(st, 1) == INT64_MAX);
    assert_true(ag_stmt_col_double(st, 2) == 2.5);
    assert_string_equal(ag_stmt_col_text(st, 3), "héllo");
    assert_int_equal(ag_stmt_col_len(st, 3), strlen("héllo"));
    assert_int_equal(ag_stmt_col_len(st, 4), sizeof(blob));
    assert_memory_equal(ag_stmt_col_blob(st, 4), blob, sizeof(blob));
    assert_false(ag_stmt_col_is_null(st, 5));
    assert_int_equal(ag_stmt_col_len(st, 5), 0);
    assert_null(ag_stmt_col_blob(st, 5));
    assert_int_equal(ag_stmt_col_i64(st, 6), 1);
    for (int i = 7; i <= 9; i++) {
        assert_true(ag_stmt_col_is_null(st, i));
        assert_int_equal(ag_stmt_col_i64(st, i), 0);
        assert_string_equal(ag_stmt_col_text(st, i), "");
        assert_int_equal(ag_stmt_col_len(st, i), 0);
        assert_null(ag_stmt_col_blob(st, i));
    }
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);

    /* A BIGINT column refuses what does not fit, a value as it is. */
    assert_int_equal(ag_store_stmt(s, "UPDATE v SET n = $1::numeric + 1", &st), 0);
    assert_int_equal(ag_stmt_bind_i64(st, 1, INT64_MAX), 0);
    assert_int_equal(ag_stmt_step(st), AG_EINVAL);
    ag_stmt_reset(st);
    ag_store_close(s);
}

/* ---- Transactions -------------------------------------------------------- */

/* Commit, rollback, no nesting, commit with none open; a failed statement
 * aborts the transaction (PostgreSQL) and its commit is refused. */
static void
test_tx_basics(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema("t_tx", T_SCHEMA, NULL);
    assert_int_equal(ag_store_begin(s), 0);
    assert_true(ag_store_in_tx(s));
    assert_int_equal(ag_store_begin(s), AG_EINVAL);
    assert_int_equal(insert_t(s, 3, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(insert_t(s, 4, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_commit(s), 0);
    assert_int_equal(ag_store_commit(s), AG_EIO);
    assert_int_equal(query_i64(s, "SELECT SUM(id) FROM t"), 4);

    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(insert_t(s, 4, NULL), AG_EEXIST);
    assert_int_equal(ag_store_commit(s), AG_EIO);
    assert_false(ag_store_in_tx(s));
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM t"), 1);

    /* Savepoints recover from a failed statement, as the events consumer
     * uses them. */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag_store_exec(s, "SAVEPOINT a"), 0);
    assert_int_equal(insert_t(s, 4, NULL), AG_EEXIST);
    assert_int_equal(ag_store_exec(s, "ROLLBACK TO SAVEPOINT a"), 0);
    assert_int_equal(insert_t(s, 5, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_commit(s), 0);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM t"), 2);

    /* The fault hook works on this backend too. */
    ag_store_fault_after(s, 1);
    assert_int_equal(insert_t(s, 6, NULL), AG_EIO);
    assert_string_equal(ag_store_errmsg(s), "injected fault");
    ag_store_close(s);
}

/* A lazy transaction commits with synchronous_commit off, for itself
 * only; the store is durable again afterwards. */
static void
test_lazy_tx(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema("t_lazy", T_SCHEMA, NULL);
    char v[16];
    assert_int_equal(ag_store_begin_lazy(s), 0);
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "off");
    assert_int_equal(insert_t(s, 1, "a"), AG_STMT_DONE);
    assert_int_equal(ag_store_commit(s), 0);
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "on");
    assert_int_equal(ag_store_begin(s), 0);
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "on");
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(ag_store_begin_lazy(s), 0);
    assert_int_equal(ag_store_rollback(s), 0);
    query_text(s, "SELECT current_setting('synchronous_commit')", v, sizeof(v));
    assert_string_equal(v, "on");
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM t"), 1);
    ag_store_close(s);
}

struct race {
    struct ag_store *other; /* second connection to the same schema */
    int runs;               /* times the body ran */
    int interfere;          /* runs in which 'other' commits a conflicting update */
};

/* Read the counter, let the other connection update it (in the first
 * 'interfere' runs), then write what was read plus one: a lost update
 * unless the transaction is serializable and retried. */
static int
race_body(struct ag_store *s, void *p)
{
    struct race *r = p;
    r->runs++;
    struct ag_stmt *st;
    int rc = ag_store_stmt(s, "SELECT n FROM counter WHERE id = 1", &st);
    if (rc != 0)
        return rc;
    rc = ag_stmt_step_one(st);
    int64_t n = rc == 0 ? ag_stmt_col_i64(st, 0) : 0;
    ag_stmt_reset(st);
    if (rc != 0)
        return rc;
    if (r->runs <= r->interfere)
        assert_int_equal(ag_store_exec(r->other, "UPDATE counter SET n = n + 1 WHERE id = 1"), 0);
    rc = ag_store_stmt(s, "UPDATE counter SET n = $1 WHERE id = 1", &st);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(st, 1, n + 1);
    return ag_stmt_exec(st);
}

/* Two connections update one row: the loser's serialization failure is
 * retried by ag_store_tx, so no update is lost; a transaction that keeps
 * losing gives up after a bounded number of runs with AG_EBUSY. */
static void
test_serialization_retry(void **state)
{
    AG_UNUSED(state);
    char *url = NULL;
    struct ag_store *a =
        open_schema("t_race",
                    "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);"
                    "INSERT INTO counter VALUES (1, 0)",
                    &url);
    struct ag_store_config cfg = { .path = url };
    struct ag_store *b = open_cfg(&cfg);
    struct race r = { .other = b, .interfere = 1 };
    assert_int_equal(ag_store_tx(a, race_body, &r), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(query_i64(a, "SELECT n FROM counter"), 2); /* both updates kept */

    struct race always = { .other = b, .interfere = 1000 };
    assert_int_equal(ag_store_tx(a, race_body, &always), AG_EBUSY);
    assert_true(always.runs >= 2 && always.runs <= 16);
    assert_non_null(strstr(ag_store_errmsg(a), "serialize"));
    assert_false(ag_store_in_tx(a));
    assert_int_equal(query_i64(a, "SELECT n FROM counter"), 2 + always.runs);
    ag_store_close(b);
    ag_store_close(a);
    ag_free(url);
}

/* A connection killed by the server: the statement fails with AG_EIO, the
 * next one reconnects and re-prepares its cached statements. */
static void
test_reconnect(void **state)
{
    AG_UNUSED(state);
    char *url = NULL;
    struct ag_store *a = open_schema("t_reconnect", T_SCHEMA, &url);
    struct ag_store_config cfg = { .path = url };
    struct ag_store *b = open_cfg(&cfg);
    assert_int_equal(insert_t(a, 1, "a"), AG_STMT_DONE);
    int64_t pid = query_i64(a, "SELECT pg_backend_pid()");
    struct ag_stmt *st;
    assert_int_equal(ag_store_stmt(b, "SELECT pg_terminate_backend($1)", &st), 0);
    ag_stmt_bind_i64(st, 1, pid);
    assert_int_equal(ag_stmt_step_one(st), 0);
    ag_stmt_reset(st);
    assert_int_equal(insert_t(a, 2, "b"), AG_EIO);
    assert_int_equal(insert_t(a, 2, "b"), AG_STMT_DONE);
    assert_int_equal(query_i64(b, "SELECT COUNT(*) FROM t"), 2);
    ag_store_close(b);
    ag_store_close(a);
    ag_free(url);
}

/* Several statements in one exec; changes counts the last write. */
static void
test_exec_and_step_helpers(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_schema("t_exec", NULL, NULL);
    assert_int_equal(ag_store_exec(s, "CREATE TABLE x (a BIGINT); INSERT INTO x VALUES (1);"
                                      "INSERT INTO x VALUES (2); UPDATE x SET a = a * 10"),
                     0);
    assert_int_equal(query_i64(s, "SELECT SUM(a) FROM x"), 30);
    assert_int_equal(ag_store_exec(s, "INSERT INTO nope VALUES (1)"), AG_EIO);
    assert_non_null(strstr(ag_store_errmsg(s), "nope"));
    struct ag_stmt *st;
    assert_int_equal(ag_store_stmt(s, "DELETE FROM x WHERE a > $1", &st), 0);
    ag_stmt_bind_i64(st, 1, 0);
    assert_int_equal(ag_stmt_exec(st), 0);
    assert_int_equal(ag_store_changes(s), 2);
    int64_t v = 0;
    assert_int_equal(ag_store_stmt(s, "SELECT max(a) FROM x", &st), 0);
    assert_int_equal(ag_stmt_step_i64(st, -1, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(ag_store_stmt(s, "INSERT INTO x VALUES ($1) RETURNING a", &st), 0);
    ag_stmt_bind_i64(st, 1, 9);
    assert_int_equal(ag_stmt_step_one(st), 0);
    assert_int_equal(ag_stmt_col_i64(st, 0), 9);
    ag_stmt_reset(st);
    assert_int_equal(ag_store_changes(s), 1);
    ag_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_durability),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_migrations),
        cmocka_unit_test(test_bind_and_cache),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_constraint_mapping),
        cmocka_unit_test(test_column_getters),
        cmocka_unit_test(test_tx_basics),
        cmocka_unit_test(test_lazy_tx),
        cmocka_unit_test(test_serialization_retry),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_exec_and_step_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
