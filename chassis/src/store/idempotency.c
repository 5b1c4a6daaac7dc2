/* SPDX-License-Identifier: MIT */
/* Idempotency records (agora/idempotency.h): the answers to HTTP requests
 * sent with an Idempotency-Key and the replies to saga commands by step
 * key, in two chassis tables of the service's own database, swept after a
 * configurable time. Every statement is parameterised and runs in the
 * caller's transaction, so a record commits with the effect it records. */
#include "agora/base.h"
#include "agora/idempotency.h"

#include <string.h>

#include <sodium.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"

#define IDEM_MAGIC 0x1de3707dU

struct ag_idem {
    uint32_t magic;
    struct ag_store *store; /* borrowed */
    int64_t ttl_ms;         /* how long a record is kept */
};

/* Idempotent statements: run at every start, a crash half-way is repaired
 * by the next one. A later change of these tables gets a version row, as
 * the events tables have. Valid on SQLite and PostgreSQL (BIGINT: 64-bit
 * on both; SQLite databases made with INTEGER are the same there). */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS agora_idempotency_keys ("
    " scope TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " request_hash TEXT NOT NULL,"
    " status BIGINT NOT NULL DEFAULT 0," /* 0: in progress */
    " content_type TEXT NOT NULL DEFAULT '',"
    " response TEXT NOT NULL DEFAULT '',"
    " created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (scope, key));"
    "CREATE INDEX IF NOT EXISTS agora_idempotency_keys_age"
    " ON agora_idempotency_keys (created_ms);"
    "CREATE TABLE IF NOT EXISTS agora_steps ("
    " step_key TEXT PRIMARY KEY,"
    " command TEXT NOT NULL,"
    " subject TEXT,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'done')),"
    " reply_type TEXT,"
    " reply_subject TEXT,"
    " data TEXT,"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS agora_steps_age ON agora_steps (updated_ms)"
    " WHERE state = 'done';"
    "CREATE INDEX IF NOT EXISTS agora_steps_pending ON agora_steps (created_ms)"
    " WHERE state = 'pending';";

static int
exec_bound(struct ag_store *st, const char *sql, const char *a, const char *b)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, sql, &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, a);
    if (b != NULL)
        ag_stmt_bind_cstr(s, 2, b);
    return ag_stmt_exec(s);
}

int
ag_idem_new(struct ag_store *store, const struct ag_idem_config *cfg, struct ag_idem **out)
{
    *out = NULL;
    if (store == NULL || ag_store_in_tx(store))
        return AG_EINVAL;
    int rc = ag_store_exec(store, SCHEMA);
    if (rc == 0)
        rc = ag_store_exec(store, "DELETE FROM agora_idempotency_keys WHERE status = 0");
    if (rc != 0)
        return rc;
    struct ag_idem *idem = ag_calloc(1, sizeof(*idem));
    idem->magic = IDEM_MAGIC;
    idem->store = store;
    idem->ttl_ms = cfg != NULL && cfg->ttl_ms > 0 ? (int64_t)cfg->ttl_ms : AG_IDEM_TTL_MS;
    *out = idem;
    return 0;
}

void
ag_idem_free(struct ag_idem *idem)
{
    if (idem == NULL)
        return;
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    idem->magic = 0;
    ag_free(idem);
}

/* ---- Sweep ---- */

struct sweep {
    struct ag_idem *idem;
    int64_t before_ms;
    int64_t n;
};

static int
sweep_one(struct ag_store *st, const char *sql, int64_t before_ms, int64_t *n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, sql, &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, before_ms);
    ag_stmt_bind_i64(s, 2, AG_IDEM_SWEEP_MAX);
    rc = ag_stmt_exec(s);
    if (rc == 0)
        *n += ag_store_changes(st);
    return rc;
}

static int
sweep_tx(struct ag_store *st, void *arg)
{
    struct sweep *w = arg;
    int rc = sweep_one(st,
                       "DELETE FROM agora_idempotency_keys WHERE (scope, key) IN (SELECT scope, "
                       "key FROM agora_idempotency_keys WHERE created_ms < $1 LIMIT $2)",
                       w->before_ms, &w->n);
    if (rc == 0)
        rc = sweep_one(st,
                       "DELETE FROM agora_steps WHERE step_key IN (SELECT step_key FROM "
                       "agora_steps WHERE state = 'done' AND updated_ms < $1 LIMIT $2)",
                       w->before_ms, &w->n);
    return rc;
}

int
ag_idem_sweep(struct ag_idem *idem, int64_t now_ms, int64_t *out_n)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    struct sweep w = { .idem = idem, .before_ms = now_ms - idem->ttl_ms };
    int rc = ag_store_in_tx(idem->store) ? sweep_tx(idem->store, &w)
                                         : ag_store_tx(idem->store, sweep_tx, &w);
    if (out_n != NULL)
        *out_n = rc == 0 ? w.n : 0;
    return rc;
}

/* ---- HTTP Idempotency-Key ---- */

void
ag_idem_hash(const struct ag_str *parts, size_t nparts, char out[AG_IDEM_HASH_LEN])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < nparts; i++) {
        if (i > 0)
            crypto_hash_sha256_update(&st, (const unsigned char *)"", 1);
        if (parts[i].len > 0)
            crypto_hash_sha256_update(&st, (const unsigned char *)parts[i].ptr, parts[i].len);
    }
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, AG_IDEM_HASH_LEN, h, sizeof(h));
}

int
ag_idem_begin(struct ag_idem *idem, const char *scope, const char *key, const char *hash,
              int64_t now_ms, struct ag_pool *pool, enum ag_idem_state *out_state,
              struct ag_idem_answer *out_answer)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    memset(out_answer, 0, sizeof(*out_answer));
    struct ag_stmt *s;
    int rc = ag_store_stmt(idem->store,
                           "SELECT request_hash, status, content_type, response, created_ms "
                           "FROM agora_idempotency_keys WHERE scope = $1 AND key = $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, scope);
    ag_stmt_bind_cstr(s, 2, key);
    rc = ag_stmt_step_one(s);
    bool expired = false;
    if (rc == 0) {
        /* A key past its time is gone, swept or not. */
        expired = ag_stmt_col_i64(s, 4) < now_ms - idem->ttl_ms;
        int status = (int)ag_stmt_col_i64(s, 1);
        if (expired) {
            /* Recorded anew below. */
        } else if (strcmp(ag_stmt_col_text(s, 0), hash) != 0) {
            *out_state = AG_IDEM_MISMATCH;
        } else if (status == 0) {
            *out_state = AG_IDEM_BUSY;
        } else {
            *out_state = AG_IDEM_REPLAY;
            out_answer->status = status;
            out_answer->content_type = ag_stmt_col_dup(s, 2, pool);
            out_answer->body = ag_stmt_col_dup(s, 3, pool);
            out_answer->len = ag_stmt_col_len(s, 3);
        }
    }
    ag_stmt_reset(s);
    if (rc == 0 && !expired)
        return 0;
    if (rc != 0 && rc != AG_ENOENT)
        return rc;
    rc = ag_store_stmt(idem->store,
                       "INSERT INTO agora_idempotency_keys (scope, key, request_hash, status, "
                       "created_ms) VALUES ($1, $2, $3, 0, $4) ON CONFLICT (scope, key) DO "
                       "UPDATE SET request_hash = excluded.request_hash, status = 0, "
                       "content_type = '', response = '', created_ms = excluded.created_ms",
                       &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, scope);
    ag_stmt_bind_cstr(s, 2, key);
    ag_stmt_bind_cstr(s, 3, hash);
    ag_stmt_bind_i64(s, 4, now_ms);
    rc = ag_stmt_exec(s);
    if (rc == 0)
        *out_state = AG_IDEM_NEW;
    return rc;
}

int
ag_idem_finish(struct ag_idem *idem, const char *scope, const char *key, const char *hash,
               const struct ag_idem_answer *answer, int64_t now_ms)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    struct ag_stmt *s;
    int rc = ag_store_stmt(idem->store,
                           "INSERT INTO agora_idempotency_keys (scope, key, request_hash, status, "
                           "content_type, response, created_ms) VALUES ($1, $2, $3, $4, $5, $6, "
                           "$7) ON CONFLICT (scope, key) DO UPDATE SET status = excluded.status, "
                           "content_type = excluded.content_type, response = excluded.response",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, scope);
    ag_stmt_bind_cstr(s, 2, key);
    ag_stmt_bind_cstr(s, 3, hash);
    ag_stmt_bind_i64(s, 4, answer->status);
    ag_stmt_bind_cstr(s, 5, answer->content_type != NULL ? answer->content_type : "");
    ag_stmt_bind_text(s, 6, answer->body != NULL ? answer->body : "",
                      answer->body != NULL ? answer->len : 0);
    ag_stmt_bind_i64(s, 7, now_ms);
    return ag_stmt_exec(s);
}

int
ag_idem_forget(struct ag_idem *idem, const char *scope, const char *key)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    return exec_bound(idem->store,
                      "DELETE FROM agora_idempotency_keys WHERE scope = $1 AND key = $2", scope,
                      key);
}

/* ---- Saga step replay ---- */

#define STEP_COLS "step_key, command, subject, state, reply_type, reply_subject, data"

static void
read_step(struct ag_stmt *s, struct ag_pool *pool, struct ag_step *out)
{
    memset(out, 0, sizeof(*out));
    out->key = ag_stmt_col_dup(s, 0, pool);
    out->command = ag_stmt_col_dup(s, 1, pool);
    out->subject = ag_stmt_col_is_null(s, 2) ? NULL : ag_stmt_col_dup(s, 2, pool);
    out->done = strcmp(ag_stmt_col_text(s, 3), "done") == 0;
    out->reply_type = ag_stmt_col_is_null(s, 4) ? NULL : ag_stmt_col_dup(s, 4, pool);
    out->reply_subject = ag_stmt_col_is_null(s, 5) ? NULL : ag_stmt_col_dup(s, 5, pool);
    out->data = ag_stmt_col_is_null(s, 6) ? NULL : ag_stmt_col_dup(s, 6, pool);
}

int
ag_step_get(struct ag_idem *idem, const char *key, struct ag_pool *pool, struct ag_step *out)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(idem->store, "SELECT " STEP_COLS " FROM agora_steps WHERE step_key = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_step(s, pool, out);
    ag_stmt_reset(s);
    return rc;
}

int
ag_step_put(struct ag_idem *idem, const struct ag_step *step, int64_t now_ms)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    struct ag_stmt *s;
    int rc = ag_store_stmt(idem->store,
                           "INSERT INTO agora_steps (" STEP_COLS ", created_ms, updated_ms) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (step_key) "
                           "DO UPDATE SET state = excluded.state, reply_type = "
                           "excluded.reply_type, reply_subject = excluded.reply_subject, data = "
                           "excluded.data, updated_ms = excluded.updated_ms",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, step->key);
    ag_stmt_bind_cstr(s, 2, step->command);
    ag_stmt_bind_cstr(s, 3, step->subject);
    ag_stmt_bind_cstr(s, 4, step->done ? "done" : "pending");
    ag_stmt_bind_cstr(s, 5, step->reply_type);
    ag_stmt_bind_cstr(s, 6, step->reply_subject);
    ag_stmt_bind_cstr(s, 7, step->data);
    ag_stmt_bind_i64(s, 8, now_ms);
    return ag_stmt_exec(s);
}

int
ag_step_list_pending(struct ag_idem *idem, size_t max, struct ag_pool *pool, struct ag_step *out,
                     size_t *out_n)
{
    AG_CHECK_MAGIC(idem, IDEM_MAGIC);
    *out_n = 0;
    struct ag_stmt *s;
    int rc = ag_store_stmt(idem->store,
                           "SELECT " STEP_COLS " FROM agora_steps WHERE state = 'pending' "
                           "ORDER BY created_ms LIMIT $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, (int64_t)max);
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW && *out_n < max)
        read_step(s, pool, &out[(*out_n)++]);
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}
