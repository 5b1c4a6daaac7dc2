/* SPDX-License-Identifier: MIT */
/* Backend-neutral relational storage for services: open with migrations,
 * cached prepared statements with $n placeholders, transactions. SQLite is
 * the embedded backend (store_sqlite.c); PostgreSQL (store_pg.c, a
 * postgres:// path) sits behind the same calls (struct ag_store_ops in
 * store_int.h) with no service change. PostgreSQL calls are synchronous
 * too: each blocks the calling thread for a round trip to the server.
 *
 * Threading: a store and its statements belong to one thread (normally the
 * service's loop thread). Nothing here is asynchronous and no function takes
 * a callback that runs later; ag_store_tx runs 'fn' before it returns. */
#ifndef AG_STORE_H
#define AG_STORE_H

#include "agora/base.h"

struct ag_pool;

/* One schema migration. Tables of these are generated from a service's
 * migrations/NNNN_name.sql files by scripts/embed_migrations.cmake. */
struct ag_migration {
    int version;        /* > 0, unique within a table; applied in ascending order */
    const char *name;   /* e.g. "0001_init", recorded in schema_migrations */
    const char *sql;    /* one or more statements, no parameters */
    const char *sql_pg; /* PostgreSQL's version of 'sql' (migrations/pg/NNNN_name.sql);
                           NULL: 'sql' on every backend */
};

struct ag_store; /* an open database connection and its statement cache */
struct ag_stmt;  /* a prepared statement owned by its store's cache */

enum ag_store_durability {
    AG_STORE_FULL = 0, /* WAL + synchronous=FULL (PostgreSQL: synchronous_commit=on):
                          a commit survives power loss */
    AG_STORE_NORMAL,   /* WAL + synchronous=NORMAL (PostgreSQL: synchronous_commit=off):
                          faster; the last commits may be lost on power loss (never
                          corrupted) */
};

/* Zero means the default for every field. The store copies what it keeps. */
struct ag_store_config {
    const char *path; /* SQLite file, ":memory:", or postgres://user:password@host:port/db
                         (PostgreSQL; a secret, never put in messages) */
    enum ag_store_durability durability; /* AG_STORE_FULL by default */
    int busy_timeout_ms; /* wait for a locked database (PostgreSQL: lock_timeout); 0 -> 5000 */
    const struct ag_migration *migrations; /* any order; applied by version */
    size_t nmigrations;                    /* entries in 'migrations' */
    size_t stmt_cache_max;                 /* cached statements; 0 -> 256 */
    bool exclusive;    /* SQLite: locking_mode=EXCLUSIVE, the process owns the file for
                       its lifetime (no lock calls per transaction; another process
                       opening it waits busy_timeout_ms, then fails) */
    char *errbuf;      /* optional: receives a message when ag_store_open fails */
    size_t errbuf_len; /* bytes at 'errbuf' (the message is truncated to fit) */
};

/* Open the database described by 'cfg' and bring its schema up to date.
 *
 * A path starting with postgres:// or postgresql:// opens PostgreSQL (see
 * docs/internals/store.md: synchronous_commit from 'cfg->durability',
 * lock_timeout from 'cfg->busy_timeout_ms', each migration's 'sql_pg' when
 * set). The SQLite backend sets journal_mode=WAL (kept as "memory" for ":memory:"),
 * synchronous=FULL or NORMAL from 'cfg->durability', foreign_keys=ON and the
 * busy timeout. Then it creates schema_migrations(version, name, applied_at)
 * if missing and applies every migration of 'cfg->migrations' not recorded
 * there, in ascending version order, each in its own transaction together
 * with its schema_migrations row ('applied_at' is RFC 3339 UTC).
 *
 * Returns 0 and sets '*out_store' (owned by the caller, released with
 * ag_store_close). On failure '*out_store' is left untouched, nothing stays
 * open, and if 'cfg->errbuf' is set it receives the reason:
 *   AG_EINVAL   'cfg' or 'cfg->path' is NULL
 *   AG_ECONFIG  the database records a schema version newer than the highest
 *               in 'cfg->migrations'; duplicate or non-positive versions; WAL
 *               could not be enabled
 *   AG_EIO, AG_EBUSY, AG_EEXIST, AG_ECONFLICT  the database could not be
 *               opened or a migration failed (it was rolled back)
 * Logs nothing. Any thread; the store then belongs to that thread. */
int ag_store_open(const struct ag_store_config *cfg, struct ag_store **out_store);

/* Finalize every cached statement and close the connection. Statements
 * obtained from 'store' become invalid. An open transaction is rolled back.
 * Accepts NULL. */
void ag_store_close(struct ag_store *store);

/* Name of the backend: "sqlite" or "postgres". Static storage. */
const char *ag_store_backend(const struct ag_store *store);

/* Run 'sql', which takes no parameters and may hold several statements
 * separated by ';' (rows of queries are discarded). For DDL and fixed
 * statements only: anything with values uses ag_store_prepare and binding.
 * Returns 0 or the ag_stmt_step error codes; ag_store_errmsg says why. */
int ag_store_exec(struct ag_store *store, const char *sql);

/* Start a write transaction (SQLite: BEGIN IMMEDIATE, which takes the write
 * lock now and waits up to the busy timeout for it, so later statements in
 * the transaction cannot fail with a lock upgrade deadlock; PostgreSQL:
 * BEGIN ISOLATION LEVEL SERIALIZABLE, whose statements or commit may then
 * fail with AG_EBUSY when a concurrent transaction conflicts: roll back and
 * try again, as ag_store_tx does. On PostgreSQL a failed statement aborts
 * the transaction: later ones fail and the commit is AG_EIO).
 * Returns 0, AG_EINVAL if a transaction is already open (no nesting),
 * AG_EBUSY if the lock could not be had in time, AG_EIO. */
int ag_store_begin(struct ag_store *store);

/* ag_store_begin for bookkeeping whose loss is harmless: its commit does
 * not wait for durability (SQLite: synchronous=NORMAL for this transaction
 * only; PostgreSQL: SET LOCAL synchronous_commit = off). A power loss may
 * lose the transaction, never corrupt the database or reorder it: the next
 * durable commit makes it durable too. A process crash loses nothing. The
 * outbox marks rows published this way (a lost mark means a resend, which
 * the broker de-duplicates). Same returns as ag_store_begin; with
 * AG_STORE_NORMAL durability it is ag_store_begin. */
int ag_store_begin_lazy(struct ag_store *store);

/* Commit the open transaction. Returns 0, AG_EBUSY or AG_EIO; on failure
 * the transaction may still be open and the caller must ag_store_rollback. */
int ag_store_commit(struct ag_store *store);

/* Roll back the open transaction. Returns 0, also when no transaction is
 * open (SQLite rolls back by itself after some errors), or AG_EIO. */
int ag_store_rollback(struct ag_store *store);

/* True while a transaction is open on 'store'. */
bool ag_store_in_tx(struct ag_store *store);

/* Body of a transaction: returns 0 to commit, anything else to roll back. */
typedef int (*ag_store_tx_fn)(struct ag_store *store, void *arg);

/* Run 'fn(store, arg)' inside ag_store_begin / ag_store_commit. If 'fn'
 * returns non-zero the transaction is rolled back and that value returned.
 * If the commit fails the transaction is rolled back and the commit's code
 * returned. Begin errors are returned without calling 'fn'.
 *
 * Retries: when a statement of 'fn' or the commit fails with a
 * serialization failure or a deadlock (PostgreSQL's serializable
 * transactions, SQLSTATE 40001 / 40P01: another transaction won), the
 * transaction is rolled back and 'fn' runs again on the new state, after a
 * random pause of at most a few ms, up to 8 runs in all; then AG_EBUSY is
 * returned. So 'fn' may run more than once (always exactly once on SQLite,
 * whose single writer never fails that way): it must have no effect
 * outside the database that a second run would repeat (no calls to other
 * systems, no counters or lists that a rerun adds to twice; reset them at
 * its start). A body that cannot be rerun uses ag_store_tx_once. All runs
 * happen before this function returns. */
int ag_store_tx(struct ag_store *store, ag_store_tx_fn fn, void *arg);

/* ag_store_tx that runs 'fn' once: a serialization failure is returned as
 * AG_EBUSY with the transaction rolled back, for bodies with an effect
 * outside the database (a call to a payment provider). */
int ag_store_tx_once(struct ag_store *store, ag_store_tx_fn fn, void *arg);

/* Prepare 'sql', exactly one statement (a trailing ';' is allowed) with
 * parameters written $1, $2, ... (any order, repeats allowed).
 *
 * Statements are cached by SQL text: preparing the same text again returns
 * the same statement, reset and with its bindings cleared. So one SQL text
 * must not be in use twice at the same time (e.g. nested loops over the same
 * query): give the inner use a different text. The cache holds up to
 * 'stmt_cache_max' statements and evicts the least recently used one that is
 * not in use (prepared and not yet ag_stmt_reset).
 *
 * Returns a borrowed statement owned by 'store', valid until ag_store_close;
 * call ag_stmt_reset when done with it. On error returns NULL and sets
 * '*out_err' (may be NULL): AG_EINVAL for bad SQL (syntax, unknown table,
 * empty, several statements), AG_EBUSY, AG_EIO. */
struct ag_stmt *ag_store_prepare(struct ag_store *store, const char *sql, int *out_err);

/* ag_store_prepare returning the code: 0 with *out_stmt set, or the error
 * (the form every service's store.c wants). */
int ag_store_stmt(struct ag_store *store, const char *sql, struct ag_stmt **out_stmt);

/* Step a statement that returns no rows, then reset it. Returns 0 or the
 * step's negative code. */
int ag_stmt_exec(struct ag_stmt *st);

/* Step a query that returns at most one row of interest (a lookup by key).
 * Returns 0 when that row is available to the ag_stmt_col_* getters,
 * AG_ENOENT when the query returned no row, or the step's negative code.
 * The caller reads the row and calls ag_stmt_reset in every case:
 *
 *     int rc = ag_stmt_step_one(s);
 *     if (rc == 0)
 *         read_product(s, pool, out);
 *     ag_stmt_reset(s);
 *     return rc;
 */
int ag_stmt_step_one(struct ag_stmt *st);

/* Step a query whose answer is one integer (count(*), min(...), a setting)
 * and reset it: '*out_v' gets the first column of the first row, or 'dflt'
 * when there is no row or the value is SQL NULL. Returns 0 or the step's
 * negative code ('*out_v' untouched then). */
int ag_stmt_step_i64(struct ag_stmt *st, int64_t dflt, int64_t *out_v);

/* Bind parameter $n (n from 1) of a statement that is fresh from
 * ag_store_prepare or ag_stmt_reset (not part-way through its steps). The
 * value is copied; 's' and 'p' may be released as soon as the call returns.
 * Text is UTF-8. Returns 0, AG_EINVAL when the statement has no parameter
 * $n (or n < 1) or was stepped and not reset, AG_ETOOBIG for a value larger
 * than the backend accepts, AG_EIO. */
int ag_stmt_bind_text(struct ag_stmt *st, int n, const char *s, size_t len);
/* A NUL-terminated string; NULL 's' binds SQL NULL. */
int ag_stmt_bind_cstr(struct ag_stmt *st, int n, const char *s);
int ag_stmt_bind_i64(struct ag_stmt *st, int n, int64_t v);
int ag_stmt_bind_double(struct ag_stmt *st, int n, double v);
int ag_stmt_bind_null(struct ag_stmt *st, int n);
/* 'len' bytes at 'p' ('p' may be NULL when 'len' is 0: an empty blob). */
int ag_stmt_bind_blob(struct ag_stmt *st, int n, const void *p, size_t len);

enum {
    AG_STMT_DONE = 0, /* the statement has finished */
    AG_STMT_ROW = 1,  /* a result row is available to the ag_stmt_col_* getters */
};

/* Execute 'st' or fetch its next row. Returns AG_STMT_ROW, AG_STMT_DONE, or
 * a negative code: AG_EEXIST for a UNIQUE or PRIMARY KEY violation,
 * AG_ECONFLICT for another constraint failure (FOREIGN KEY, CHECK, NOT NULL),
 * AG_EBUSY when the database is locked past the busy timeout, AG_EIO
 * otherwise (PostgreSQL: also AG_EBUSY for a serialization failure or
 * deadlock, AG_EINVAL for a value the column's type refuses, AG_EIO for a
 * lost connection). After an error, call ag_stmt_reset; ag_store_errmsg
 * says why. */
int ag_stmt_step(struct ag_stmt *st);

/* Columns of the result (0 for statements that return no rows). */
int ag_stmt_ncols(struct ag_stmt *st);

/* Column getters for the current row (after AG_STMT_ROW), 'i' from 0. An
 * 'i' out of range reads as SQL NULL. NULL reads as 0, 0.0, "" and NULL. */
bool ag_stmt_col_is_null(struct ag_stmt *st, int i);
int64_t ag_stmt_col_i64(struct ag_stmt *st, int i);
double ag_stmt_col_double(struct ag_stmt *st, int i);
/* NUL-terminated UTF-8; "" for NULL. Borrowed until the next step or reset
 * of 'st'. */
const char *ag_stmt_col_text(struct ag_stmt *st, int i);
/* Length in bytes of the text or blob value (without the terminator). */
size_t ag_stmt_col_len(struct ag_stmt *st, int i);
/* Blob bytes; NULL for NULL or an empty blob. Borrowed like col_text. */
const void *ag_stmt_col_blob(struct ag_stmt *st, int i);

/* The text of column 'i' copied into 'pool' (NUL-terminated, lives as long
 * as the pool, e.g. the request), or NULL when the value is SQL NULL. */
char *ag_stmt_col_dup(struct ag_stmt *st, int i, struct ag_pool *pool);

/* Copy the text of column 'i' into 'out' ('cap' bytes, NUL-terminated; ""
 * for SQL NULL), for fixed-size fields such as ids and timestamps. Returns
 * 0, or AG_ETOOBIG when the text was cut to 'cap' - 1 bytes (or 'cap' is 0
 * and nothing was written). */
int ag_stmt_col_copy(struct ag_stmt *st, int i, char *out, size_t cap);

/* Reset 'st' for reuse and clear its bindings; marks it no longer in use.
 * Must be called when done with a statement, including after errors and
 * after a partial read of its rows. Accepts NULL. */
void ag_stmt_reset(struct ag_stmt *st);

/* Rows inserted, updated or deleted by the most recent completed INSERT,
 * UPDATE or DELETE on 'store'. */
int64_t ag_store_changes(struct ag_store *store);

/* Cheap readiness check (SELECT 1) for /ready. Returns 0 or an error code. */
int ag_store_ping(struct ag_store *store);

/* Message of the last error on 'store' (backend or store layer), for logs;
 * "" if there was none. Borrowed until the next call on 'store'. */
const char *ag_store_errmsg(struct ag_store *store);

/* Take or renew the lease 'name' for 'holder' (an instance id) until
 * 'now_ms' + 'ttl_ms' (Unix ms), in the chassis table agora_leases(name,
 * holder, until_ms) of this database (created when missing). A lease held
 * by another holder is taken only once its time has passed, so among the
 * instances sharing a database at most one holds it at a time, as long as
 * their clocks agree to well under 'ttl_ms'. A holder must stop acting as
 * the leader before its lease ends (renew well before, e.g. every ttl/5)
 * and must expect another holder once it has not renewed in time.
 * '*out_held' is true when 'holder' has the lease now. One upsert in its
 * own lazy transaction (a lost renewal is harmless), so it must be called
 * outside a transaction (AG_EINVAL otherwise). Returns 0 or the store's
 * error ('*out_held' false then). The loop thread of 'store'. */
int ag_store_lease(struct ag_store *store, const char *name, const char *holder, int64_t now_ms,
                   int64_t ttl_ms, bool *out_held);

/* Give up the lease 'name' if 'holder' has it, so another instance can take
 * it at once (at shutdown). Returns 0 (also when not held) or the store's
 * error; AG_EINVAL inside a transaction. */
int ag_store_lease_release(struct ag_store *store, const char *name, const char *holder);

/* A number that changes whenever the data of the database of 'store' may
 * have changed: a commit by another connection or a write on this one.
 * For caches of rendered reads (the catalog's list pages): equal numbers
 * mean nothing was written in between. SQLite only (PRAGMA data_version and
 * sqlite3_total_changes64, about a microsecond): AG_EINVAL for PostgreSQL,
 * where instances share the database and no such cheap number exists.
 * Returns 0 or the store's error. The thread of 'store'. */
int ag_store_data_version(struct ag_store *store, uint64_t *out_version);

/* ---- SQLite WAL checkpoints under the caller's control ----
 * By default SQLite checkpoints the WAL inside a COMMIT once it holds 1,000
 * pages (wal_autocheckpoint), on the committing thread. A process that must
 * not stall there (the bus) turns that off on its connection and runs the
 * checkpoints on another connection to the same file, on another thread.
 * That needs AGORA_DB_LOCKING=shared (cfg->exclusive false): an exclusive
 * connection keeps the WAL index in its own memory. */

enum ag_store_checkpoint {
    AG_STORE_CKPT_PASSIVE = 0, /* copy every frame no reader still needs into the
                                  database file and sync it; never waits, never
                                  blocks writers or readers */
};

/* Turn off automatic checkpoints on 'store' (wal_autocheckpoint=0) and count
 * the frames in the WAL after each of its commits (ag_store_wal_frames).
 * SQLite only: AG_EINVAL for PostgreSQL. Returns 0 or the store's error.
 * The thread of 'store'. */
int ag_store_wal_manual(struct ag_store *store);

/* Frames (pages) in the WAL after the last commit on 'store', as SQLite
 * reported it; 0 before the first commit or without ag_store_wal_manual.
 * Falls when a writer restarts the WAL after a complete checkpoint. */
int64_t ag_store_wal_frames(const struct ag_store *store);

/* Checkpoint the WAL of the database of 'store' ('mode'). The database file
 * is synced before the checkpoint is recorded unless the connection runs
 * synchronous=OFF (the store never does), so the WAL frames it copied may
 * then be overwritten. Sets '*out_wal_frames' to the frames in the WAL and
 * '*out_done' to those now copied (either may be NULL); -1 each if the
 * database is not in WAL mode. Returns 0, AG_EBUSY when another checkpoint
 * runs, or the store's error; AG_EINVAL inside a transaction or for
 * PostgreSQL. The thread of 'store' (which may be any thread, one at a
 * time: the store is not locked). */
int ag_store_checkpoint(struct ag_store *store, enum ag_store_checkpoint mode,
                        int64_t *out_wal_frames, int64_t *out_done);

/* Test hook: make the 'n'-th next operation that executes SQL fail with
 * AG_EIO (errmsg "injected fault") without running it. Counted operations:
 * ag_stmt_step, ag_store_exec, ag_store_ping, ag_store_begin and
 * ag_store_commit; ag_store_rollback never fails by injection. n = 1 fails
 * the very next one; n <= 0 disarms. One-shot. For unit tests only. */
void ag_store_fault_after(struct ag_store *store, int n);

#endif /* AG_STORE_H */
