/* SPDX-License-Identifier: MIT */
/* SQLite backend of the store (struct ag_store_ops): connection settings
 * (WAL, synchronous, foreign keys, busy timeout), $n binding by name, and
 * the mapping of SQLite result codes onto AG_E* codes. The backend-neutral
 * logic (cache, migrations, transactions) lives in store.c. */
#include "agora/base.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "agora/err.h"
#include "agora/store.h"
#include "store_int.h"

#define DB(store) ((sqlite3 *)(store)->be)
#define ST(st)    ((sqlite3_stmt *)(st)->be)

/* ---- Errors -------------------------------------------------------------- */

/* Map an (extended) SQLite result code of a failed execution. */
static int
map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
        case SQLITE_CONSTRAINT_ROWID: return AG_EEXIST;
        default: return AG_ECONFLICT;
        }
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return AG_EBUSY;
    default: return AG_EIO;
    }
}

/* Record the connection's message and return the mapped code. */
static int
fail(struct ag_store *store, int rc)
{
    ag__store_set_err(store, "%s", sqlite3_errmsg(DB(store)));
    return map_rc(rc);
}

static int
bind_fail(struct ag_stmt *st, int n, int rc)
{
    switch (rc) {
    case SQLITE_RANGE:
        ag__store_set_err(st->store, "no parameter $%d in statement", n);
        return AG_EINVAL;
    case SQLITE_TOOBIG: ag__store_set_err(st->store, "value for $%d too big", n); return AG_ETOOBIG;
    case SQLITE_MISUSE:
        ag__store_set_err(st->store, "cannot bind $%d: statement stepped and not reset", n);
        return AG_EINVAL;
    default: return fail(st->store, rc);
    }
}

/* ---- Connection ---------------------------------------------------------- */

/* Run a PRAGMA that returns one row and copy its first column into 'out'. */
static int
pragma_text(struct ag_store *store, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(DB(store), sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(store, rc);
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", v ? (const char *)v : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    int ret = rc == SQLITE_OK ? 0 : fail(store, rc);
    sqlite3_finalize(st);
    return ret;
}

static int
sq_open(struct ag_store *store, const struct ag_store_config *cfg)
{
    sqlite3 *db = NULL;
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(cfg->path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        ag__store_set_err(store, "cannot open '%s': %s", cfg->path,
                          db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return map_rc(rc);
    }
    store->be = db;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, cfg->busy_timeout_ms);

    /* Exclusive locking must be chosen before WAL is entered, so that WAL
     * runs without the shared-memory index and no file lock is taken or
     * released per transaction (bench/catalog: ~10% of a read's CPU). */
    if (cfg->exclusive) {
        char lm[32];
        int lrc = pragma_text(store, "PRAGMA locking_mode=EXCLUSIVE", lm, sizeof(lm));
        if (lrc != 0)
            return lrc;
    }
    char mode[32];
    int ret = pragma_text(store, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
    if (ret != 0)
        return ret;
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        ag__store_set_err(store, "cannot enable WAL on '%s': journal_mode is '%s'", cfg->path,
                          mode);
        return AG_ECONFIG;
    }
    const char *sync = cfg->durability == AG_STORE_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                          : "PRAGMA synchronous=FULL";
    rc = sqlite3_exec(db, sync, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(store, rc);
    /* Savepoint sub-journals and temporary indexes in memory, not in temp
     * files: the events consumer puts every delivery of a batch under a
     * savepoint, which in a file costs a write per page it touches. */
    rc = sqlite3_exec(db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(store, rc);
    rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(store, rc);
    /* A build without foreign key support ignores the PRAGMA silently. */
    char fk[8];
    ret = pragma_text(store, "PRAGMA foreign_keys", fk, sizeof(fk));
    if (ret != 0)
        return ret;
    if (strcmp(fk, "1") != 0) {
        ag__store_set_err(store, "cannot enable foreign keys on '%s'", cfg->path);
        return AG_ECONFIG;
    }
    return 0;
}

static void
sq_close(struct ag_store *store)
{
    /* close_v2 also defers if a statement escaped finalization. */
    sqlite3_close_v2(DB(store));
    store->be = NULL;
}

static int
sq_exec(struct ag_store *store, const char *sql)
{
    int rc = sqlite3_exec(DB(store), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(store, rc);
}

static int
sq_begin(struct ag_store *store)
{
    return sq_exec(store, "BEGIN IMMEDIATE");
}

/* SQLite refuses to change the safety level inside a transaction, so a lazy
 * transaction switches it before BEGIN and back after COMMIT or ROLLBACK.
 * In WAL mode synchronous=NORMAL skips the WAL fsync at commit; the frames
 * become durable with the next synced commit, which fsyncs the whole WAL. */
static int
sq_set_sync(struct ag_store *store, bool durable)
{
    return sq_exec(store, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

static int
sq_commit(struct ag_store *store)
{
    return sq_exec(store, "COMMIT");
}

static int
sq_rollback(struct ag_store *store)
{
    return sq_exec(store, "ROLLBACK");
}

static bool
sq_in_tx(struct ag_store *store)
{
    return sqlite3_get_autocommit(DB(store)) == 0;
}

static int64_t
sq_changes(struct ag_store *store)
{
    return sqlite3_changes64(DB(store));
}

/* ---- Statements ---------------------------------------------------------- */

static bool
only_space(const char *p)
{
    for (; *p; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';')
            return false;
    }
    return true;
}

static int
sq_prepare(struct ag_store *store, const char *sql, void **out_be)
{
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(DB(store), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK) {
        /* SQLITE_ERROR at prepare time means bad SQL: a programming error. */
        int err = fail(store, rc);
        return (rc & 0xff) == SQLITE_ERROR ? AG_EINVAL : err;
    }
    if (st == NULL) {
        ag__store_set_err(store, "empty SQL statement");
        return AG_EINVAL;
    }
    if (tail != NULL && !only_space(tail)) {
        sqlite3_finalize(st);
        ag__store_set_err(store, "more than one SQL statement in '%s'", sql);
        return AG_EINVAL;
    }
    *out_be = st;
    return 0;
}

static void
sq_finalize(void *be)
{
    sqlite3_finalize(be);
}

static void
sq_reset(struct ag_stmt *st)
{
    sqlite3_reset(ST(st));
    sqlite3_clear_bindings(ST(st));
}

/* Parameter index of "$n", 0 if the statement has none. */
static int
param_index(struct ag_stmt *st, int n)
{
    if (n < 1)
        return 0;
    char name[16];
    snprintf(name, sizeof(name), "$%d", n);
    return sqlite3_bind_parameter_index(ST(st), name);
}

static int
sq_bind_text(struct ag_stmt *st, int n, const char *s, size_t len)
{
    int idx = param_index(st, n);
    int rc =
        sqlite3_bind_text64(ST(st), idx, s ? s : "", s ? len : 0, SQLITE_TRANSIENT, SQLITE_UTF8);
    return rc == SQLITE_OK ? 0 : bind_fail(st, n, rc);
}

static int
sq_bind_i64(struct ag_stmt *st, int n, int64_t v)
{
    int rc = sqlite3_bind_int64(ST(st), param_index(st, n), v);
    return rc == SQLITE_OK ? 0 : bind_fail(st, n, rc);
}

static int
sq_bind_double(struct ag_stmt *st, int n, double v)
{
    int rc = sqlite3_bind_double(ST(st), param_index(st, n), v);
    return rc == SQLITE_OK ? 0 : bind_fail(st, n, rc);
}

static int
sq_bind_null(struct ag_stmt *st, int n)
{
    int rc = sqlite3_bind_null(ST(st), param_index(st, n));
    return rc == SQLITE_OK ? 0 : bind_fail(st, n, rc);
}

static int
sq_bind_blob(struct ag_stmt *st, int n, const void *p, size_t len)
{
    int idx = param_index(st, n);
    int rc;
    /* SQLite binds NULL for a NULL pointer; an empty blob is a zeroblob. */
    if (len == 0 || p == NULL)
        rc = sqlite3_bind_zeroblob(ST(st), idx, 0);
    else
        rc = sqlite3_bind_blob64(ST(st), idx, p, len, SQLITE_TRANSIENT);
    return rc == SQLITE_OK ? 0 : bind_fail(st, n, rc);
}

static int
sq_step(struct ag_stmt *st)
{
    int rc = sqlite3_step(ST(st));
    if (rc == SQLITE_ROW)
        return AG_STMT_ROW;
    if (rc == SQLITE_DONE)
        return AG_STMT_DONE;
    return fail(st->store, rc);
}

static int
sq_ncols(struct ag_stmt *st)
{
    return sqlite3_column_count(ST(st));
}

static bool
sq_col_is_null(struct ag_stmt *st, int i)
{
    return sqlite3_column_type(ST(st), i) == SQLITE_NULL;
}

static int64_t
sq_col_i64(struct ag_stmt *st, int i)
{
    return sqlite3_column_int64(ST(st), i);
}

static double
sq_col_double(struct ag_stmt *st, int i)
{
    return sqlite3_column_double(ST(st), i);
}

static const char *
sq_col_text(struct ag_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(ST(st), i);
    return t ? (const char *)t : "";
}

static size_t
sq_col_len(struct ag_stmt *st, int i)
{
    int n = sqlite3_column_bytes(ST(st), i);
    return n > 0 ? (size_t)n : 0;
}

static const void *
sq_col_blob(struct ag_stmt *st, int i)
{
    return sqlite3_column_blob(ST(st), i);
}

const struct ag_store_ops ag__store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .begin = sq_begin,
    .set_sync = sq_set_sync,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .in_tx = sq_in_tx,
    .changes = sq_changes,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .reset = sq_reset,
    .bind_text = sq_bind_text,
    .bind_i64 = sq_bind_i64,
    .bind_double = sq_bind_double,
    .bind_null = sq_bind_null,
    .bind_blob = sq_bind_blob,
    .step = sq_step,
    .ncols = sq_ncols,
    .col_is_null = sq_col_is_null,
    .col_i64 = sq_col_i64,
    .col_double = sq_col_double,
    .col_text = sq_col_text,
    .col_len = sq_col_len,
    .col_blob = sq_col_blob,
};

/* ---- Manual WAL checkpoints (store.h) ------------------------------------ */

/* Replaces the default hook (the automatic checkpoint): only counts. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    AG_UNUSED(db);
    AG_UNUSED(name);
    struct ag_store *store = arg;
    store->wal_frames = frames;
    return SQLITE_OK;
}

int
ag_store_wal_manual(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (store->ops != &ag__store_sqlite_ops)
        return AG_EINVAL;
    /* wal_autocheckpoint=0 removes SQLite's hook; ours then only counts. */
    int rc = sqlite3_wal_autocheckpoint(DB(store), 0);
    if (rc != SQLITE_OK)
        return fail(store, rc);
    sqlite3_wal_hook(DB(store), wal_hook, store);
    return 0;
}

int64_t
ag_store_wal_frames(const struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    return store->wal_frames;
}

int
ag_store_checkpoint(struct ag_store *store, enum ag_store_checkpoint mode, int64_t *out_wal_frames,
                    int64_t *out_done)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (store->ops != &ag__store_sqlite_ops || mode != AG_STORE_CKPT_PASSIVE ||
        !sqlite3_get_autocommit(DB(store)))
        return AG_EINVAL;
    int frames = -1;
    int done = -1;
    int rc = sqlite3_wal_checkpoint_v2(DB(store), NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
    if (out_wal_frames != NULL)
        *out_wal_frames = frames;
    if (out_done != NULL)
        *out_done = done;
    if ((rc & 0xff) == SQLITE_BUSY) {
        ag__store_set_err(store, "another checkpoint is running");
        return AG_EBUSY;
    }
    return rc == SQLITE_OK ? 0 : fail(store, rc);
}

int
ag_store_data_version(struct ag_store *store, uint64_t *out_version)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (store->ops != &ag__store_sqlite_ops)
        return AG_EINVAL;
    /* PRAGMA data_version moves when another connection commits; this
     * connection's own writes show in total_changes (rows written, also by
     * statements later rolled back: a false change, never a missed one). */
    struct ag_stmt *st;
    int rc = ag_store_stmt(store, "PRAGMA data_version", &st);
    if (rc != 0)
        return rc;
    int64_t dv = 0;
    rc = ag_stmt_step_i64(st, 0, &dv);
    if (rc != 0)
        return rc;
    uint64_t own = (uint64_t)sqlite3_total_changes64(DB(store));
    *out_version = ((uint64_t)dv << 40) ^ own;
    return 0;
}
