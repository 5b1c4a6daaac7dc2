/* SPDX-License-Identifier: MIT */
/* The SQL of the events runtime: the outbox and inbox tables of the
 * service's own database (schema, insert, take, settle, counts,
 * housekeeping) and the savepoint around each delivery a consumer applies,
 * on SQLite and PostgreSQL alike. events.c calls it through events_int.h;
 * it calls only the store. */
#include "agora/base.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "agora/time.h"
#include "events_int.h"

/* Version 1 of the schema. Every statement is idempotent, so a crash
 * half-way through is repaired by the next start. Fixed-width RFC 3339
 * timestamps compare correctly as text. The outbox's sequence is SQLite's
 * rowid or a PostgreSQL identity column; the rest is the same on both. */
#define OUTBOX_V1(SEQ)                                                                             \
    "CREATE TABLE IF NOT EXISTS agora_outbox ("                                                    \
    " seq " SEQ ","                                                                                \
    " id TEXT NOT NULL UNIQUE,"                                                                    \
    " type TEXT NOT NULL,"                                                                         \
    " subject TEXT NOT NULL,"                                                                      \
    " event TEXT NOT NULL,"                                                                        \
    " state TEXT NOT NULL DEFAULT 'pending'"                                                       \
    "  CHECK (state IN ('pending', 'in_flight', 'published', 'failed')),"                          \
    " attempts BIGINT NOT NULL DEFAULT 0,"                                                         \
    " created_at TEXT NOT NULL,"                                                                   \
    " published_at TEXT,"                                                                          \
    " last_error TEXT);"                                                                           \
    "CREATE INDEX IF NOT EXISTS agora_outbox_state ON agora_outbox (state, seq);"                  \
    "CREATE INDEX IF NOT EXISTS agora_outbox_published ON agora_outbox (state, published_at);"     \
    "CREATE TABLE IF NOT EXISTS agora_inbox ("                                                     \
    " event_id TEXT NOT NULL,"                                                                     \
    " subscription TEXT NOT NULL,"                                                                 \
    " received_at TEXT NOT NULL,"                                                                  \
    " PRIMARY KEY (event_id, subscription));"                                                      \
    "CREATE INDEX IF NOT EXISTS agora_inbox_received ON agora_inbox (received_at);"

static const char SCHEMA_V1[] = OUTBOX_V1("INTEGER PRIMARY KEY");
static const char SCHEMA_V1_PG[] = OUTBOX_V1("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");

/* Schema steps by version: step i brings the schema from version i to i+1,
 * on SQLite [0] and PostgreSQL [1]. */
static const char *const SCHEMA_STEPS[][2] = { { SCHEMA_V1, SCHEMA_V1_PG } };

static int
schema_tx(struct ag_store *store, void *arg)
{
    AG_UNUSED(arg);
    int rc = ag_store_exec(store, "CREATE TABLE IF NOT EXISTS agora_chassis_schema ("
                                  " module TEXT PRIMARY KEY, version INTEGER NOT NULL)");
    if (rc != 0)
        return rc;
    struct ag_stmt *st = ag_store_prepare(
        store, "SELECT version FROM agora_chassis_schema WHERE module = 'events'", &rc);
    if (st == NULL)
        return rc;
    int64_t version = 0;
    rc = ag_stmt_step(st);
    if (rc == AG_STMT_ROW)
        version = ag_stmt_col_i64(st, 0);
    ag_stmt_reset(st);
    if (rc < 0)
        return rc;
    if (version > AG__EVENTS_SCHEMA_VERSION)
        return AG_ECONFIG;
    int be = strcmp(ag_store_backend(store), "postgres") == 0;
    for (int64_t v = version; v < AG__EVENTS_SCHEMA_VERSION; v++) {
        rc = ag_store_exec(store, SCHEMA_STEPS[v][be]);
        if (rc != 0)
            return rc;
    }
    /* Earlier versions of the relay marked rows 'in_flight' while sending;
     * any such row left by a crash is simply unsent. */
    rc =
        ag_store_exec(store, "UPDATE agora_outbox SET state = 'pending' WHERE state = 'in_flight'");
    if (rc != 0)
        return rc;
    if (version == AG__EVENTS_SCHEMA_VERSION)
        return 0;
    st = ag_store_prepare(store,
                          "INSERT INTO agora_chassis_schema (module, version) VALUES ('events', $1)"
                          " ON CONFLICT (module) DO UPDATE SET version = excluded.version",
                          &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, AG__EVENTS_SCHEMA_VERSION);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int
ag__events_schema(struct ag_store *store)
{
    if (ag_store_in_tx(store))
        return AG_EINVAL;
    return ag_store_tx(store, schema_tx, NULL);
}

int
ag__outbox_insert(struct ag_store *store, const char *id, const char *type, const char *subject,
                  const char *event, size_t event_len, int64_t created_ms)
{
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(created_ms, now);
    int rc;
    struct ag_stmt *st = ag_store_prepare(
        store,
        "INSERT INTO agora_outbox (id, type, subject, event, state, attempts, created_at)"
        " VALUES ($1, $2, $3, $4, 'pending', 0, $5)",
        &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_cstr(st, 1, id);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, type);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 3, subject);
    if (rc == 0)
        rc = ag_stmt_bind_text(st, 4, event, event_len);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 5, now);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

void
ag__outbox_batch_clear(struct ag__outbox_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        ag_free(b->rows[i].id);
        ag_free(b->rows[i].type);
        ag_free(b->rows[i].subject);
        ag_free(b->rows[i].event);
    }
    ag_free(b->rows);
    memset(b, 0, sizeof(*b));
}

/* Read up to 'max_rows' pending rows (and 'max_bytes' of events) into 'b'. */
static int
take_rows(struct ag_store *store, size_t max_rows, size_t max_bytes, struct ag__outbox_batch *b)
{
    int rc;
    struct ag_stmt *st = ag_store_prepare(store,
                                          "SELECT seq, id, type, subject, event FROM agora_outbox"
                                          " WHERE state = 'pending' ORDER BY seq LIMIT $1",
                                          &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, (int64_t)max_rows);
    while (rc == 0 && (rc = ag_stmt_step(st)) == AG_STMT_ROW) {
        size_t len = ag_stmt_col_len(st, 4);
        if (b->n > 0 && b->bytes + len > max_bytes) {
            rc = 0;
            break;
        }
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 16;
            b->rows = ag_realloc(b->rows, b->cap * sizeof(*b->rows));
        }
        struct ag__outbox_row *r = &b->rows[b->n++];
        r->seq = ag_stmt_col_i64(st, 0);
        r->id = ag_strdup(ag_stmt_col_text(st, 1));
        r->type = ag_strdup(ag_stmt_col_text(st, 2));
        r->subject = ag_strdup(ag_stmt_col_text(st, 3));
        r->event = ag_strndup(ag_stmt_col_text(st, 4), len);
        r->event_len = len;
        b->bytes += len;
        rc = 0;
    }
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int
ag__outbox_take(struct ag_store *store, size_t max_rows, size_t max_bytes,
                struct ag__outbox_batch *b)
{
    /* A read, no transaction to commit: while the batch is out the rows
     * stay pending. One relay per store and one publish at a time, so
     * nothing else takes them; a crash before the settle simply leaves
     * them pending and they are sent again (the broker de-duplicates). */
    int rc = take_rows(store, max_rows, max_bytes, b);
    if (rc != 0)
        ag__outbox_batch_clear(b);
    return rc;
}

static const char *const OUTCOME_STATE[] = {
    [AG__OUTBOX_PUBLISHED] = "published",
    [AG__OUTBOX_RETRY] = "pending",
    [AG__OUTBOX_RELEASE] = "pending",
    [AG__OUTBOX_FAILED] = "failed",
};

int
ag__outbox_settle(struct ag_store *store, const struct ag__outbox_batch *b,
                  const enum ag__outbox_outcome *outcome, const char *error, int64_t now_ms)
{
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(now_ms, now);
    /* Not waiting for durability: a mark lost to a power cut only means the
     * rows go out again, and the broker drops them as duplicates. */
    int rc = ag_store_begin_lazy(store);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        enum ag__outbox_outcome oc = outcome[i];
        struct ag_stmt *st =
            ag_store_prepare(store,
                             "UPDATE agora_outbox SET state = $2, attempts = attempts + $3,"
                             " published_at = COALESCE($4, published_at),"
                             " last_error = CASE WHEN $2 = 'published' THEN NULL"
                             "  ELSE COALESCE($5, last_error) END"
                             " WHERE seq = $1 AND state = 'pending'",
                             &rc);
        if (st == NULL)
            break;
        rc = ag_stmt_bind_i64(st, 1, b->rows[i].seq);
        if (rc == 0)
            rc = ag_stmt_bind_cstr(st, 2, OUTCOME_STATE[oc]);
        if (rc == 0)
            rc = ag_stmt_bind_i64(st, 3, oc == AG__OUTBOX_RELEASE ? 0 : 1);
        if (rc == 0)
            rc = ag_stmt_bind_cstr(st, 4, oc == AG__OUTBOX_PUBLISHED ? now : NULL);
        if (rc == 0)
            rc = ag_stmt_bind_cstr(
                st, 5, oc == AG__OUTBOX_RETRY || oc == AG__OUTBOX_FAILED ? error : NULL);
        if (rc == 0)
            rc = ag_stmt_step(st);
        ag_stmt_reset(st);
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0)
        rc = ag_store_commit(store);
    if (rc != 0)
        ag_store_rollback(store);
    return rc;
}

static int
query_count(struct ag_store *store, const char *sql, int64_t *out)
{
    int rc;
    struct ag_stmt *st = ag_store_prepare(store, sql, &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_step(st);
    if (rc == AG_STMT_ROW)
        *out = ag_stmt_col_i64(st, 0);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int
ag__outbox_counts(struct ag_store *store, int64_t *out_pending, int64_t *out_published,
                  int64_t *out_failed, int64_t *out_oldest_ms)
{
    int rc = 0;
    if (out_pending != NULL)
        rc = query_count(
            store, "SELECT COUNT(*) FROM agora_outbox WHERE state IN ('pending', 'in_flight')",
            out_pending);
    if (rc == 0 && out_published != NULL)
        rc = query_count(store, "SELECT COUNT(*) FROM agora_outbox WHERE state = 'published'",
                         out_published);
    if (rc == 0 && out_failed != NULL)
        rc = query_count(store, "SELECT COUNT(*) FROM agora_outbox WHERE state = 'failed'",
                         out_failed);
    if (rc == 0 && out_oldest_ms != NULL) {
        *out_oldest_ms = 0;
        struct ag_stmt *st = ag_store_prepare(
            store,
            "SELECT MIN(created_at) FROM agora_outbox WHERE state IN ('pending', 'in_flight')",
            &rc);
        if (st == NULL)
            return rc;
        rc = ag_stmt_step(st);
        if (rc == AG_STMT_ROW && !ag_stmt_col_is_null(st, 0)) {
            int64_t ms;
            if (ag_time_parse_rfc3339(ag_str_from_cstr(ag_stmt_col_text(st, 0)), &ms) == 0)
                *out_oldest_ms = ms;
        }
        ag_stmt_reset(st);
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

static int
delete_older(struct ag_store *store, const char *sql, const char *cutoff, size_t limit,
             int64_t *out)
{
    int rc;
    struct ag_stmt *st = ag_store_prepare(store, sql, &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_cstr(st, 1, cutoff);
    if (rc == 0)
        rc = ag_stmt_bind_i64(st, 2, (int64_t)limit);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    if (rc < 0)
        return rc;
    if (out != NULL)
        *out = ag_store_changes(store);
    return 0;
}

int
ag__events_housekeep(struct ag_store *store, int64_t cutoff_ms, size_t limit, int64_t *out_outbox,
                     int64_t *out_inbox)
{
    char cutoff[AG_RFC3339_LEN];
    ag_time_rfc3339(cutoff_ms, cutoff);
    int rc = delete_older(store,
                          "DELETE FROM agora_outbox WHERE seq IN (SELECT seq FROM agora_outbox"
                          " WHERE state = 'published' AND published_at < $1"
                          " ORDER BY published_at LIMIT $2)",
                          cutoff, limit, out_outbox);
    if (rc == 0)
        rc = delete_older(store,
                          "DELETE FROM agora_inbox WHERE received_at < $1 AND event_id IN"
                          " (SELECT event_id FROM agora_inbox WHERE received_at < $1"
                          " ORDER BY received_at LIMIT $2)",
                          cutoff, limit, out_inbox);
    return rc;
}

int
ag__inbox_insert(struct ag_store *store, const char *event_id, const char *subscription,
                 int64_t now_ms)
{
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(now_ms, now);
    int rc;
    struct ag_stmt *st = ag_store_prepare(
        store, "INSERT INTO agora_inbox (event_id, subscription, received_at) VALUES ($1, $2, $3)",
        &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_cstr(st, 1, event_id);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, subscription);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 3, now);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

/* ---- The savepoint of one delivery --------------------------------------- */

int
ag__inbox_savepoint(struct ag_store *store, enum ag__savepoint_op op)
{
    static const char *const SQL[] = {
        [AG__SAVEPOINT_OPEN] = "SAVEPOINT agora_delivery",
        [AG__SAVEPOINT_UNDO] = "ROLLBACK TO agora_delivery",
        [AG__SAVEPOINT_RELEASE] = "RELEASE agora_delivery",
    };
    /* A fixed statement, prepared once and cached. */
    struct ag_stmt *st;
    int rc = ag_store_stmt(store, SQL[op], &st);
    return rc != 0 ? rc : ag_stmt_exec(st);
}
