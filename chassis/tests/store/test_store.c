/* SPDX-License-Identifier: MIT */
/* Unit tests of the store (store.c + store_sqlite.c) on ":memory:" and on
 * temporary files: PRAGMAs, migrations, $n binding, the statement cache,
 * constraint error mapping, transactions, column getters, persistence, lock
 * contention, the fault-injection hook, and the single-row and column
 * helpers services use. */
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
#include "agora/str.h"
#include "agora/time.h"

/* ---- Fixtures and helpers ------------------------------------------------ */

struct tmpdb {
    char dir[64];   /* mkdtemp directory */
    char path[128]; /* database file inside it */
};

static void
tmpdb_init(struct tmpdb *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/agora-store-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
}

static void
tmpdb_release(struct tmpdb *t)
{
    static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(suffixes); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(t->dir), 0);
}

static struct ag_store *
open_ok(const struct ag_store_config *cfg)
{
    struct ag_store *s = NULL;
    char err[256] = "";
    struct ag_store_config c = *cfg;
    c.errbuf = err;
    c.errbuf_len = sizeof(err);
    int rc = ag_store_open(&c, &s);
    if (rc != 0)
        fail_msg("open '%s': %s: %s", cfg->path, ag_strerror(rc), err);
    assert_non_null(s);
    return s;
}

static struct ag_store *
open_memory(const char *schema)
{
    struct ag_store_config cfg = { .path = ":memory:" };
    struct ag_store *s = open_ok(&cfg);
    if (schema != NULL)
        assert_int_equal(ag_store_exec(s, schema), 0);
    return s;
}

/* First column of the single row of 'sql', as text, into 'out'. */
static void
query_text(struct ag_store *s, const char *sql, char *out, size_t outlen)
{
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(s, sql, &err);
    if (st == NULL)
        fail_msg("prepare '%s': %s", sql, ag_store_errmsg(s));
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    snprintf(out, outlen, "%s", ag_stmt_col_text(st, 0));
    ag_stmt_reset(st);
}

static int64_t
query_i64(struct ag_store *s, const char *sql)
{
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(s, sql, &err);
    if (st == NULL)
        fail_msg("prepare '%s': %s", sql, ag_store_errmsg(s));
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    int64_t v = ag_stmt_col_i64(st, 0);
    ag_stmt_reset(st);
    return v;
}

/* Insert (id, name) into table t(id INTEGER PRIMARY KEY, name TEXT). */
static int
insert_t(struct ag_store *s, int64_t id, const char *name)
{
    int rc = 0;
    struct ag_stmt *st = ag_store_prepare(s, "INSERT INTO t (id, name) VALUES ($1, $2)", &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, id);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, name);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc;
}

#define T_SCHEMA "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"

/* ---- Open and PRAGMAs ---------------------------------------------------- */

/* An in-memory store opens, names its backend, answers ping and enforces
 * foreign keys. */
static void
test_open_memory(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(NULL);
    assert_string_equal(ag_store_backend(s), "sqlite");
    assert_int_equal(ag_store_ping(s), 0);
    char mode[16];
    query_text(s, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "memory");
    assert_int_equal(query_i64(s, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_i64(s, "PRAGMA busy_timeout"), 5000);
    assert_string_equal(ag_store_errmsg(s), "");
    ag_store_close(s);
    ag_store_close(NULL);
}

/* A file store runs in WAL with synchronous FULL (2) by default and NORMAL
 * (1) on request; the busy timeout is applied. */
static void
test_file_pragmas(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    struct ag_store_config cfg = { .path = t.path };
    struct ag_store *s = open_ok(&cfg);
    char mode[16];
    query_text(s, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 2);
    assert_int_equal(query_i64(s, "PRAGMA foreign_keys"), 1);
    ag_store_close(s);

    cfg.durability = AG_STORE_NORMAL;
    cfg.busy_timeout_ms = 1234;
    s = open_ok(&cfg);
    query_text(s, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 1);
    assert_int_equal(query_i64(s, "PRAGMA busy_timeout"), 1234);
    ag_store_close(s);
    tmpdb_release(&t);
}

/* A lazy transaction commits without the WAL fsync (synchronous NORMAL for
 * that transaction only) and the store is back to FULL afterwards, after a
 * commit, a rollback or a failed begin alike; its writes are kept. */
static void
test_lazy_tx(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    struct ag_store_config cfg = { .path = t.path };
    struct ag_store *s = open_ok(&cfg);
    assert_int_equal(ag_store_exec(s, "CREATE TABLE t (v INTEGER)"), 0);
    assert_int_equal(ag_store_begin_lazy(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 1);
    assert_int_equal(ag_store_exec(s, "INSERT INTO t VALUES (1)"), 0);
    assert_int_equal(ag_store_begin_lazy(s), AG_EINVAL); /* no nesting */
    assert_int_equal(ag_store_commit(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 2);

    assert_int_equal(ag_store_begin_lazy(s), 0);
    assert_int_equal(ag_store_exec(s, "INSERT INTO t VALUES (2)"), 0);
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 2);

    ag_store_fault_after(s, 1); /* the BEGIN fails */
    assert_int_equal(ag_store_begin_lazy(s), AG_EIO);
    assert_false(ag_store_in_tx(s));
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 2);

    /* A plain transaction inside is durable as before. */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 2);
    assert_int_equal(ag_store_commit(s), 0);
    ag_store_close(s);

    s = open_ok(&cfg);
    assert_int_equal(query_i64(s, "SELECT group_concat(v) FROM t"), 1);
    ag_store_close(s);

    /* With NORMAL durability a lazy transaction is a plain one. */
    cfg.durability = AG_STORE_NORMAL;
    s = open_ok(&cfg);
    assert_int_equal(ag_store_begin_lazy(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 1);
    assert_int_equal(ag_store_commit(s), 0);
    assert_int_equal(query_i64(s, "PRAGMA synchronous"), 1);
    ag_store_close(s);
    tmpdb_release(&t);
}

/* Manual checkpoints: with ag_store_wal_manual a commit no longer
 * checkpoints (the WAL keeps growing past SQLite's 1,000 pages) and reports
 * the WAL's size; a checkpoint on a second connection copies it all, and
 * the next commit on the first starts the WAL over. */
static void
test_manual_checkpoint(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    struct ag_store_config cfg = { .path = t.path, .durability = AG_STORE_NORMAL };
    struct ag_store *w = open_ok(&cfg);
    assert_int_equal(ag_store_wal_manual(w), 0);
    assert_int_equal(ag_store_wal_frames(w), 0);
    assert_int_equal(ag_store_exec(w, "CREATE TABLE t (v BLOB)"), 0);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(ag_store_exec(w, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                          "FROM n WHERE i < 50) INSERT INTO t SELECT "
                                          "zeroblob(4000) FROM n"),
                         0);
    }
    int64_t frames = ag_store_wal_frames(w);
    assert_true(frames > 1000); /* no automatic checkpoint */

    cfg.durability = AG_STORE_FULL;
    struct ag_store *c = open_ok(&cfg);
    int64_t wal = 0;
    int64_t done = 0;
    assert_int_equal(ag_store_checkpoint(c, AG_STORE_CKPT_PASSIVE, &wal, &done), 0);
    assert_int_equal(wal, frames);
    assert_int_equal(done, frames);
    assert_int_equal(ag_store_exec(w, "INSERT INTO t VALUES (1)"), 0);
    assert_true(ag_store_wal_frames(w) < 10); /* started over */
    assert_int_equal(query_i64(c, "SELECT count(*) FROM t"), 1501);

    assert_int_equal(ag_store_begin(c), 0);
    assert_int_equal(ag_store_checkpoint(c, AG_STORE_CKPT_PASSIVE, NULL, NULL), AG_EINVAL);
    assert_int_equal(ag_store_rollback(c), 0);
    ag_store_close(c);
    ag_store_close(w);
    tmpdb_release(&t);
}

/* ag_store_data_version moves with a write on this connection and with a
 * commit on another one, and not otherwise. */
static void
test_data_version(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    struct ag_store_config cfg = { .path = t.path, .durability = AG_STORE_NORMAL };
    struct ag_store *a = open_ok(&cfg);
    struct ag_store *b = open_ok(&cfg);
    assert_int_equal(ag_store_exec(a, "CREATE TABLE t (v INTEGER)"), 0);
    uint64_t v0 = 0, v1 = 0;
    assert_int_equal(ag_store_data_version(a, &v0), 0);
    assert_int_equal(ag_store_data_version(a, &v1), 0);
    assert_true(v0 == v1); /* nothing written */
    assert_int_equal(query_i64(a, "SELECT count(*) FROM t"), 0);
    assert_int_equal(ag_store_data_version(a, &v1), 0);
    assert_true(v0 == v1); /* a read is no write */
    assert_int_equal(ag_store_exec(a, "INSERT INTO t VALUES (1)"), 0);
    assert_int_equal(ag_store_data_version(a, &v1), 0);
    assert_true(v1 != v0); /* own write */
    assert_int_equal(ag_store_exec(b, "INSERT INTO t VALUES (2)"), 0);
    uint64_t v2 = 0;
    assert_int_equal(ag_store_data_version(a, &v2), 0);
    assert_true(v2 != v1); /* another connection's commit */
    ag_store_close(b);
    ag_store_close(a);
    tmpdb_release(&t);
}

/* Bad configurations fail with the documented code, fill errbuf and leave
 * the output untouched. */
static void
test_open_errors(void **state)
{
    AG_UNUSED(state);
    struct ag_store *sentinel = (struct ag_store *)&sentinel;
    struct ag_store *s = sentinel;
    char err[128] = "";
    assert_int_equal(ag_store_open(NULL, &s), AG_EINVAL);
    struct ag_store_config cfg = { .path = NULL, .errbuf = err, .errbuf_len = sizeof(err) };
    assert_int_equal(ag_store_open(&cfg, &s), AG_EINVAL);
    assert_true(strlen(err) > 0);

    /* A postgres:// path selects PostgreSQL; a failure never shows the
     * password (port 1 refuses the connection). */
    cfg.path = "postgres://user:secret@127.0.0.1:1/agora";
    assert_int_equal(ag_store_open(&cfg, &s), AG_EIO);
    assert_null(strstr(err, "secret"));
    assert_non_null(strstr(err, "postgres"));

    cfg.path = "/nonexistent-dir-agora/x/y.db";
    assert_int_equal(ag_store_open(&cfg, &s), AG_EIO);
    assert_non_null(strstr(err, "cannot open"));
    assert_ptr_equal(s, sentinel);
}

/* ---- Migrations ---------------------------------------------------------- */

/* Given out of order, migrations are applied by version (2 needs 1); each is
 * recorded once with an RFC 3339 time, and a reopen applies only new ones. */
static void
test_migrations_in_order_once(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    const struct ag_migration v2[] = {
        { 2, "0002_add_price", "ALTER TABLE p ADD COLUMN price INTEGER NOT NULL DEFAULT 0;", NULL },
        { 1, "0001_init",
          "CREATE TABLE p (id TEXT PRIMARY KEY);\n"
          "CREATE INDEX p_id ON p (id);",
          /* Another backend's SQL is not run on SQLite. */
          "this is not SQL" },
    };
    struct ag_store_config cfg = { .path = t.path, .migrations = v2, .nmigrations = 2 };
    struct ag_store *s = open_ok(&cfg);
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(
        s, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version", &err);
    assert_non_null(st);
    for (int v = 1; v <= 2; v++) {
        assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
        assert_int_equal(ag_stmt_col_i64(st, 0), v);
        assert_string_equal(ag_stmt_col_text(st, 1), v == 1 ? "0001_init" : "0002_add_price");
        int64_t ms = 0;
        assert_int_equal(ag_time_parse_rfc3339(ag_str_from_cstr(ag_stmt_col_text(st, 2)), &ms), 0);
        assert_true(ms > 1577836800000LL);
    }
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);
    assert_int_equal(ag_store_exec(s, "INSERT INTO p (id, price) VALUES ('a', 5)"), 0);
    ag_store_close(s);

    /* Reopen: re-running 0001 would fail (table exists), so success shows it
     * was skipped; a new migration 3 is applied. */
    const struct ag_migration v3[] = {
        v2[1],
        v2[0],
        { 3, "0003_add_name", "ALTER TABLE p ADD COLUMN name TEXT;", NULL },
    };
    cfg.migrations = v3;
    cfg.nmigrations = 3;
    s = open_ok(&cfg);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM schema_migrations"), 3);
    assert_int_equal(query_i64(s, "SELECT price FROM p WHERE id = 'a'"), 5);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM p WHERE name IS NULL"), 1);
    ag_store_close(s);

    /* A binary that knows only up to version 2 refuses the database. */
    struct ag_store *sentinel = (struct ag_store *)&sentinel;
    s = sentinel;
    char msg[256] = "";
    cfg.migrations = v2;
    cfg.nmigrations = 2;
    cfg.errbuf = msg;
    cfg.errbuf_len = sizeof(msg);
    assert_int_equal(ag_store_open(&cfg, &s), AG_ECONFIG);
    assert_ptr_equal(s, sentinel);
    assert_non_null(strstr(msg, "newer"));
    tmpdb_release(&t);
}

/* A failing migration is rolled back whole (its first statement too), is
 * not recorded, and its name is in the error message. */
static void
test_migration_failure_rolls_back(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    const struct ag_migration bad[] = {
        { 1, "0001_init", "CREATE TABLE a (x INTEGER);", NULL },
        { 2, "0002_broken", "CREATE TABLE b (y INTEGER); INSERT INTO missing VALUES (1);", NULL },
    };
    char msg[256] = "";
    struct ag_store_config cfg = {
        .path = t.path, .migrations = bad, .nmigrations = 2, .errbuf = msg, .errbuf_len = 256
    };
    struct ag_store *s = NULL;
    assert_int_equal(ag_store_open(&cfg, &s), AG_EIO);
    assert_null(s);
    assert_non_null(strstr(msg, "0002_broken"));
    assert_non_null(strstr(msg, "missing"));

    cfg.nmigrations = 1;
    s = open_ok(&cfg);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM schema_migrations"), 1);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"), 0);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'a'"), 1);
    ag_store_close(s);
    tmpdb_release(&t);
}

/* Duplicate or non-positive versions are configuration errors. */
static void
test_migration_table_errors(void **state)
{
    AG_UNUSED(state);
    const struct ag_migration dup[] = {
        { 1, "0001_a", "CREATE TABLE a (x);", NULL },
        { 1, "0001_b", "CREATE TABLE b (x);", NULL },
    };
    const struct ag_migration zero[] = { { 0, "0000_a", "CREATE TABLE a (x);", NULL } };
    struct ag_store *s = NULL;
    char msg[256] = "";
    struct ag_store_config cfg = {
        .path = ":memory:", .migrations = dup, .nmigrations = 2, .errbuf = msg, .errbuf_len = 256
    };
    assert_int_equal(ag_store_open(&cfg, &s), AG_ECONFIG);
    assert_non_null(strstr(msg, "0001_b"));
    cfg.migrations = zero;
    cfg.nmigrations = 1;
    assert_int_equal(ag_store_open(&cfg, &s), AG_ECONFIG);
    cfg.migrations = NULL;
    assert_int_equal(ag_store_open(&cfg, &s), AG_ECONFIG);
    assert_null(s);
}

/* ---- Statements ---------------------------------------------------------- */

/* $n placeholders bind by number whatever their order in the SQL, and a
 * repeated $1 takes one value. Unknown parameters are AG_EINVAL. */
static void
test_bind_out_of_order_and_repeated(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(T_SCHEMA);
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(s, "INSERT INTO t (name, id) VALUES ($2, $1)", &err);
    assert_non_null(st);
    assert_int_equal(ag_stmt_bind_i64(st, 1, 7), 0);
    assert_int_equal(ag_stmt_bind_text(st, 2, "seven!", 5), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);
    assert_int_equal(ag_store_changes(s), 1);

    st = ag_store_prepare(s, "SELECT $2, $1, $1 || $2, id, name FROM t WHERE id = $1", &err);
    assert_non_null(st);
    assert_int_equal(ag_stmt_bind_i64(st, 1, 7), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 2, "x"), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    assert_string_equal(ag_stmt_col_text(st, 0), "x");
    assert_int_equal(ag_stmt_col_i64(st, 1), 7);
    assert_string_equal(ag_stmt_col_text(st, 2), "7x");
    assert_int_equal(ag_stmt_col_i64(st, 3), 7);
    assert_string_equal(ag_stmt_col_text(st, 4), "seven");
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    /* Binding needs a reset first. */
    assert_int_equal(ag_stmt_bind_i64(st, 1, 8), AG_EINVAL);
    assert_non_null(strstr(ag_store_errmsg(s), "reset"));
    ag_stmt_reset(st);

    assert_int_equal(ag_stmt_bind_i64(st, 3, 1), AG_EINVAL);
    assert_non_null(strstr(ag_store_errmsg(s), "$3"));
    assert_int_equal(ag_stmt_bind_i64(st, 0, 1), AG_EINVAL);
    assert_int_equal(ag_stmt_bind_null(st, -1), AG_EINVAL);
    ag_stmt_reset(st);
    ag_store_close(s);
}

/* The same SQL text gives the same statement back, reset with its bindings
 * cleared; other texts give other statements; bad SQL is AG_EINVAL. */
static void
test_stmt_cache(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(NULL);
    int err = 0;
    const char *sql = "SELECT $1";
    struct ag_stmt *a = ag_store_prepare(s, sql, &err);
    assert_non_null(a);
    assert_int_equal(ag_stmt_bind_i64(a, 1, 99), 0);
    assert_int_equal(ag_stmt_step(a), AG_STMT_ROW);
    assert_int_equal(ag_stmt_col_i64(a, 0), 99);
    ag_stmt_reset(a);

    char copy[16];
    snprintf(copy, sizeof(copy), "%s", sql); /* same text, other pointer */
    struct ag_stmt *b = ag_store_prepare(s, copy, &err);
    assert_ptr_equal(a, b);
    assert_int_equal(ag_stmt_step(b), AG_STMT_ROW);
    assert_true(ag_stmt_col_is_null(b, 0));
    ag_stmt_reset(b);

    struct ag_stmt *c = ag_store_prepare(s, "SELECT $1 ", &err);
    assert_non_null(c);
    assert_ptr_not_equal(a, c);
    ag_stmt_reset(c);

    static const char *const bad[] = {
        "SELEKT 1", "SELECT * FROM no_such_table", "", "   ", "SELECT 1; SELECT 2",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        err = 0;
        assert_null(ag_store_prepare(s, bad[i], &err));
        assert_int_equal(err, AG_EINVAL);
        assert_true(strlen(ag_store_errmsg(s)) > 0);
    }
    assert_null(ag_store_prepare(s, "SELEKT", NULL));        /* out_err is optional */
    assert_non_null(ag_store_prepare(s, "SELECT 1;", &err)); /* trailing ';' is fine */
    ag_store_close(s);                                       /* finalizes what is in use */
}

/* The cache is bounded: with room for 2, idle statements are evicted, while
 * statements still in use survive (and stay usable) past the bound. */
static void
test_stmt_cache_eviction(void **state)
{
    AG_UNUSED(state);
    struct ag_store_config cfg = { .path = ":memory:", .stmt_cache_max = 2 };
    struct ag_store *s = open_ok(&cfg);
    int err = 0;
    char sql[32];
    for (int i = 0; i < 50; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        struct ag_stmt *st = ag_store_prepare(s, sql, &err);
        assert_non_null(st);
        assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
        assert_int_equal(ag_stmt_col_i64(st, 0), i);
        ag_stmt_reset(st);
    }
    struct ag_stmt *held[5];
    for (int i = 0; i < 5; i++) {
        snprintf(sql, sizeof(sql), "SELECT 100 + %d", i);
        held[i] = ag_store_prepare(s, sql, &err);
        assert_non_null(held[i]);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ag_stmt_step(held[i]), AG_STMT_ROW);
        assert_int_equal(ag_stmt_col_i64(held[i], 0), 100 + i);
        ag_stmt_reset(held[i]);
    }
    ag_store_close(s);
}

/* UNIQUE and PRIMARY KEY violations are AG_EEXIST; FOREIGN KEY, CHECK and
 * NOT NULL violations are AG_ECONFLICT. */
static void
test_constraint_mapping(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(T_SCHEMA ";"
                                              "CREATE TABLE k (code TEXT PRIMARY KEY);"
                                              "CREATE TABLE c (id INTEGER PRIMARY KEY,"
                                              " t_id INTEGER NOT NULL REFERENCES t (id),"
                                              " qty INTEGER CHECK (qty > 0));");
    assert_int_equal(insert_t(s, 1, "one"), AG_STMT_DONE);
    assert_int_equal(insert_t(s, 1, "uno"), AG_EEXIST); /* INTEGER PRIMARY KEY */
    assert_int_equal(insert_t(s, 2, "one"), AG_EEXIST); /* UNIQUE */
    assert_non_null(strstr(ag_store_errmsg(s), "UNIQUE"));
    assert_int_equal(ag_store_exec(s, "INSERT INTO k VALUES ('a')"), 0);
    assert_int_equal(ag_store_exec(s, "INSERT INTO k VALUES ('a')"), AG_EEXIST); /* TEXT PK */

    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (1, 1, 1)"), 0);
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (2, 42, 1)"), AG_ECONFLICT);
    assert_non_null(strstr(ag_store_errmsg(s), "FOREIGN KEY"));
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (3, 1, 0)"), AG_ECONFLICT);
    assert_int_equal(ag_store_exec(s, "INSERT INTO c VALUES (4, NULL, 1)"), AG_ECONFLICT);
    assert_int_equal(ag_store_exec(s, "DELETE FROM t WHERE id = 1"), AG_ECONFLICT);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM c"), 1);
    ag_store_close(s);
}

/* Every getter on a row of an integer, a real, a text, a blob, an empty
 * blob and NULLs; an index out of range reads as NULL. */
static void
test_column_getters(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory("CREATE TABLE v (i, r, t, b, e, n, m)");
    int err = 0;
    struct ag_stmt *st =
        ag_store_prepare(s, "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7)", &err);
    assert_non_null(st);
    const unsigned char blob[] = { 0, 1, 2, 0xff };
    assert_int_equal(ag_stmt_bind_i64(st, 1, INT64_MIN), 0);
    assert_int_equal(ag_stmt_bind_double(st, 2, 2.5), 0);
    assert_int_equal(ag_stmt_bind_text(st, 3, "a\0b", 3), 0);
    assert_int_equal(ag_stmt_bind_blob(st, 4, blob, sizeof(blob)), 0);
    assert_int_equal(ag_stmt_bind_blob(st, 5, NULL, 0), 0);
    assert_int_equal(ag_stmt_bind_null(st, 6), 0);
    assert_int_equal(ag_stmt_bind_cstr(st, 7, NULL), 0);
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);

    st = ag_store_prepare(s, "SELECT i, r, t, b, e, n, m FROM v", &err);
    assert_non_null(st);
    assert_int_equal(ag_stmt_ncols(st), 7);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    assert_false(ag_stmt_col_is_null(st, 0));
    assert_int_equal(ag_stmt_col_i64(st, 0), INT64_MIN);
    assert_true(ag_stmt_col_double(st, 1) == 2.5);
    assert_memory_equal(ag_stmt_col_text(st, 2), "a\0b", 4);
    assert_int_equal(ag_stmt_col_len(st, 2), 3);
    assert_memory_equal(ag_stmt_col_blob(st, 3), blob, sizeof(blob));
    assert_int_equal(ag_stmt_col_len(st, 3), sizeof(blob));
    assert_false(ag_stmt_col_is_null(st, 4)); /* an empty blob is not NULL */
    assert_int_equal(ag_stmt_col_len(st, 4), 0);
    for (int i = 5; i <= 7; i++) { /* NULL columns and index 7, out of range */
        assert_true(ag_stmt_col_is_null(st, i));
        assert_int_equal(ag_stmt_col_i64(st, i), 0);
        assert_true(ag_stmt_col_double(st, i) == 0.0);
        assert_string_equal(ag_stmt_col_text(st, i), "");
        assert_int_equal(ag_stmt_col_len(st, i), 0);
        assert_null(ag_stmt_col_blob(st, i));
    }
    assert_true(ag_stmt_col_is_null(st, -1));
    assert_int_equal(ag_stmt_step(st), AG_STMT_DONE);
    ag_stmt_reset(st);
    ag_stmt_reset(NULL);

    st = ag_store_prepare(s, "UPDATE v SET n = 1", &err);
    assert_int_equal(ag_stmt_ncols(st), 0);
    ag_stmt_reset(st);
    ag_store_close(s);
}

/* ---- Transactions -------------------------------------------------------- */

struct tx_arg {
    int64_t id;  /* row to insert */
    int result;  /* what the body returns after inserting */
    bool saw_tx; /* ag_store_in_tx inside the body */
};

static int
tx_body(struct ag_store *s, void *p)
{
    struct tx_arg *arg = p;
    arg->saw_tx = ag_store_in_tx(s);
    int rc = insert_t(s, arg->id, NULL);
    if (rc < 0)
        return rc;
    return arg->result;
}

/* ag_store_tx commits when the body returns 0 and rolls back, returning the
 * body's code, otherwise; begin, commit and rollback also work by hand. */
static void
test_tx_commit_and_rollback(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(T_SCHEMA);
    struct tx_arg ok = { .id = 1, .result = 0 };
    assert_int_equal(ag_store_tx(s, tx_body, &ok), 0);
    assert_true(ok.saw_tx);
    assert_false(ag_store_in_tx(s));
    struct tx_arg no = { .id = 2, .result = AG_ECONFLICT };
    assert_int_equal(ag_store_tx(s, tx_body, &no), AG_ECONFLICT);
    assert_false(ag_store_in_tx(s));
    struct tx_arg dup = { .id = 1, .result = 0 }; /* the body's insert fails */
    assert_int_equal(ag_store_tx(s, tx_body, &dup), AG_EEXIST);
    assert_non_null(strstr(ag_store_errmsg(s), "UNIQUE"));
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM t"), 1);
    assert_int_equal(query_i64(s, "SELECT id FROM t"), 1);

    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag_store_begin(s), AG_EINVAL); /* no nesting */
    assert_int_equal(insert_t(s, 3, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(ag_store_rollback(s), 0); /* none open: still 0 */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(insert_t(s, 4, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_commit(s), 0);
    assert_int_equal(ag_store_commit(s), AG_EIO); /* none open */
    assert_int_equal(query_i64(s, "SELECT SUM(id) FROM t"), 5);
    ag_store_close(s);
}

/* Rows written and committed are there after close and reopen; an
 * uncommitted transaction at close is not. */
static void
test_persisted_after_reopen(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    const struct ag_migration m[] = { { 1, "0001_t", T_SCHEMA, NULL } };
    struct ag_store_config cfg = { .path = t.path, .migrations = m, .nmigrations = 1 };
    struct ag_store *s = open_ok(&cfg);
    assert_int_equal(insert_t(s, 10, "kept"), AG_STMT_DONE);
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(insert_t(s, 11, "lost"), AG_STMT_DONE);
    ag_store_close(s);

    s = open_ok(&cfg);
    char name[16];
    query_text(s, "SELECT group_concat(name) FROM t", name, sizeof(name));
    assert_string_equal(name, "kept");
    ag_store_close(s);
    tmpdb_release(&t);
}

/* While one connection holds the write lock, another gets AG_EBUSY after
 * its busy timeout, for BEGIN and for a plain write. */
static void
test_busy(void **state)
{
    AG_UNUSED(state);
    struct tmpdb t;
    tmpdb_init(&t);
    const struct ag_migration m[] = { { 1, "0001_t", T_SCHEMA, NULL } };
    struct ag_store_config cfg = {
        .path = t.path, .migrations = m, .nmigrations = 1, .busy_timeout_ms = 20
    };
    struct ag_store *a = open_ok(&cfg);
    struct ag_store *b = open_ok(&cfg);
    assert_int_equal(ag_store_begin(a), 0);
    assert_int_equal(insert_t(a, 1, "a"), AG_STMT_DONE);
    assert_int_equal(ag_store_begin(b), AG_EBUSY);
    assert_int_equal(insert_t(b, 2, "b"), AG_EBUSY);
    /* Readers are not blocked in WAL mode and see the last commit. */
    assert_int_equal(query_i64(b, "SELECT COUNT(*) FROM t"), 0);
    assert_int_equal(ag_store_commit(a), 0);
    assert_int_equal(insert_t(b, 2, "b"), AG_STMT_DONE);
    assert_int_equal(query_i64(a, "SELECT COUNT(*) FROM t"), 2);
    ag_store_close(b);
    ag_store_close(a);
    tmpdb_release(&t);
}

/* ---- Fault injection ----------------------------------------------------- */

/* The n-th next operation fails with AG_EIO, once; a failed commit inside
 * ag_store_tx rolls the transaction back. */
static void
test_fault_hook(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(T_SCHEMA);
    ag_store_fault_after(s, 1);
    assert_int_equal(insert_t(s, 1, NULL), AG_EIO);
    assert_string_equal(ag_store_errmsg(s), "injected fault");
    assert_int_equal(insert_t(s, 1, NULL), AG_STMT_DONE);

    ag_store_fault_after(s, 2);
    assert_int_equal(insert_t(s, 2, NULL), AG_STMT_DONE);
    assert_int_equal(ag_store_ping(s), AG_EIO);
    assert_int_equal(ag_store_ping(s), 0);

    /* begin (1), the insert's step (2), commit (3). */
    ag_store_fault_after(s, 3);
    struct tx_arg arg = { .id = 3, .result = 0 };
    assert_int_equal(ag_store_tx(s, tx_body, &arg), AG_EIO);
    assert_false(ag_store_in_tx(s));
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM t WHERE id = 3"), 0);

    ag_store_fault_after(s, 1); /* the begin itself: the body never runs */
    arg.saw_tx = false;
    assert_int_equal(ag_store_tx(s, tx_body, &arg), AG_EIO);
    assert_false(arg.saw_tx);

    ag_store_fault_after(s, 1);
    ag_store_fault_after(s, 0); /* disarmed */
    assert_int_equal(ag_store_exec(s, "DELETE FROM t"), 0);
    assert_int_equal(ag_store_changes(s), 2);
    ag_store_close(s);
}

/* A multi-statement exec runs them all; a failing one reports why. */
static void
test_exec(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(NULL);
    assert_int_equal(ag_store_exec(s, "CREATE TABLE x (a); INSERT INTO x VALUES (1);"
                                      "INSERT INTO x VALUES (2); UPDATE x SET a = a * 10"),
                     0);
    assert_int_equal(ag_store_changes(s), 2);
    assert_int_equal(query_i64(s, "SELECT SUM(a) FROM x"), 30);
    assert_int_equal(ag_store_exec(s, "INSERT INTO nope VALUES (1)"), AG_EIO);
    assert_non_null(strstr(ag_store_errmsg(s), "nope"));
    ag_store_close(s);
}

/* ---- Single-row and column helpers -------------------------------------- */

/* A lookup answers its row, AG_ENOENT without one, and the step's error;
 * the statement is reusable after the caller's reset in every case. */
static void
test_step_one(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER);"
                                     "INSERT INTO kv VALUES ('a', 1), ('b', 2)");
    static const char SQL[] = "SELECT v FROM kv WHERE k = $1";
    struct ag_stmt *st;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(ag_store_stmt(s, SQL, &st), 0);
        ag_stmt_bind_cstr(st, 1, "b");
        assert_int_equal(ag_stmt_step_one(st), 0);
        assert_int_equal(ag_stmt_col_i64(st, 0), 2);
        ag_stmt_reset(st);
        assert_int_equal(ag_store_stmt(s, SQL, &st), 0);
        ag_stmt_bind_cstr(st, 1, "zz");
        assert_int_equal(ag_stmt_step_one(st), AG_ENOENT);
        ag_stmt_reset(st);
    }
    /* Of several rows, the first is the one; the rest are left unread. */
    assert_int_equal(ag_store_stmt(s, "SELECT k FROM kv ORDER BY k DESC", &st), 0);
    assert_int_equal(ag_stmt_step_one(st), 0);
    assert_string_equal(ag_stmt_col_text(st, 0), "b");
    ag_stmt_reset(st);
    /* Errors come through as they are. */
    assert_int_equal(ag_store_stmt(s, SQL, &st), 0);
    ag_stmt_bind_cstr(st, 1, "a");
    ag_store_fault_after(s, 1);
    assert_int_equal(ag_stmt_step_one(st), AG_EIO);
    ag_stmt_reset(st);
    assert_int_equal(ag_store_stmt(s, "INSERT INTO kv VALUES ($1, 3) RETURNING v", &st), 0);
    ag_stmt_bind_cstr(st, 1, "a");
    assert_int_equal(ag_stmt_step_one(st), AG_EEXIST);
    ag_stmt_reset(st);
    ag_store_close(s);
}

/* One integer: the value, the default for no row and for NULL, errors. */
static void
test_step_i64(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory("CREATE TABLE n (x INTEGER);"
                                     "INSERT INTO n VALUES (5), (9), (NULL)");
    struct ag_stmt *st;
    int64_t v = 0;
    assert_int_equal(ag_store_stmt(s, "SELECT count(*) FROM n", &st), 0);
    assert_int_equal(ag_stmt_step_i64(st, -1, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(ag_store_stmt(s, "SELECT max(x) FROM n WHERE x > $1", &st), 0);
    ag_stmt_bind_i64(st, 1, 100);
    assert_int_equal(ag_stmt_step_i64(st, -1, &v), 0);
    assert_int_equal(v, -1); /* max() of nothing is NULL */
    assert_int_equal(ag_store_stmt(s, "SELECT x FROM n WHERE x = $1", &st), 0);
    ag_stmt_bind_i64(st, 1, 7);
    assert_int_equal(ag_stmt_step_i64(st, 42, &v), 0);
    assert_int_equal(v, 42); /* no row */
    /* It resets the statement itself: the same text prepares again. */
    assert_int_equal(ag_store_stmt(s, "SELECT x FROM n WHERE x = $1", &st), 0);
    ag_stmt_bind_i64(st, 1, 9);
    assert_int_equal(ag_stmt_step_i64(st, 42, &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(ag_store_stmt(s, "SELECT count(*) FROM n", &st), 0);
    ag_store_fault_after(s, 1);
    v = 77;
    assert_int_equal(ag_stmt_step_i64(st, 0, &v), AG_EIO);
    assert_int_equal(v, 77);
    ag_store_close(s);
}

/* Text columns into a pool (NULL stays NULL) and into fixed buffers. */
static void
test_col_dup_and_copy(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory(NULL);
    struct ag_stmt *st;
    assert_int_equal(ag_store_stmt(s, "SELECT 'hello', NULL, '', 12345", &st), 0);
    assert_int_equal(ag_stmt_step_one(st), 0);
    struct ag_pool *pool = ag_pool_new(0);
    char *hello = ag_stmt_col_dup(st, 0, pool);
    assert_string_equal(hello, "hello");
    assert_null(ag_stmt_col_dup(st, 1, pool));
    assert_string_equal(ag_stmt_col_dup(st, 2, pool), "");
    assert_string_equal(ag_stmt_col_dup(st, 3, pool), "12345");
    assert_null(ag_stmt_col_dup(st, 9, pool)); /* out of range reads as NULL */

    char buf[6];
    assert_int_equal(ag_stmt_col_copy(st, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(ag_stmt_col_copy(st, 0, buf, 4), AG_ETOOBIG);
    assert_string_equal(buf, "hel");
    assert_int_equal(ag_stmt_col_copy(st, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(ag_stmt_col_copy(st, 3, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "12345");
    assert_int_equal(ag_stmt_col_copy(st, 0, buf, 0), AG_ETOOBIG);
    ag_stmt_reset(st);
    /* The copies outlive the row. */
    assert_string_equal(hello, "hello");
    ag_pool_free(pool);
    ag_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_memory),
        cmocka_unit_test(test_file_pragmas),
        cmocka_unit_test(test_lazy_tx),
        cmocka_unit_test(test_manual_checkpoint),
        cmocka_unit_test(test_data_version),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_migrations_in_order_once),
        cmocka_unit_test(test_migration_failure_rolls_back),
        cmocka_unit_test(test_migration_table_errors),
        cmocka_unit_test(test_bind_out_of_order_and_repeated),
        cmocka_unit_test(test_stmt_cache),
        cmocka_unit_test(test_stmt_cache_eviction),
        cmocka_unit_test(test_constraint_mapping),
        cmocka_unit_test(test_column_getters),
        cmocka_unit_test(test_tx_commit_and_rollback),
        cmocka_unit_test(test_persisted_after_reopen),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_fault_hook),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_step_one),
        cmocka_unit_test(test_step_i64),
        cmocka_unit_test(test_col_dup_and_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
