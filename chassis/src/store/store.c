/* SPDX-License-Identifier: MIT */
/* Backend-neutral half of the store: backend choice, the bounded LRU
 * statement cache keyed by SQL text, transactions, schema migrations and the
 * fault-injection hook. Each call checks its arguments and dispatches to the
 * backend's struct ag_store_ops (store_sqlite.c). */
#include "agora/base.h"
#include "agora/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/random.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "store_int.h"

#define DEFAULT_BUSY_TIMEOUT_MS 5000
#define DEFAULT_STMT_CACHE_MAX  256
#define TX_MAX_ATTEMPTS         8    /* runs of an ag_store_tx body on serialization failures */
#define TX_RETRY_MAX_US         4000 /* longest pause before a rerun */

void
ag__store_set_err(struct ag_store *store, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(store->errmsg, sizeof(store->errmsg), fmt, ap);
    va_end(ap);
}

/* Consume one tick of the fault countdown; AG_EIO when it reaches zero. */
static int
fault_check(struct ag_store *store)
{
    if (store->fault_countdown > 0 && --store->fault_countdown == 0) {
        ag__store_set_err(store, "injected fault");
        return AG_EIO;
    }
    return 0;
}

/* ---- Statement cache ----------------------------------------------------- */

/* FNV-1a: SQL texts are short and mostly distinct. */
static uint64_t
hash_sql(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void
lru_unlink(struct ag_store *store, struct ag_stmt *st)
{
    if (st->lru_prev)
        st->lru_prev->lru_next = st->lru_next;
    else
        store->lru_head = st->lru_next;
    if (st->lru_next)
        st->lru_next->lru_prev = st->lru_prev;
    else
        store->lru_tail = st->lru_prev;
    st->lru_prev = NULL;
    st->lru_next = NULL;
}

static void
lru_push_front(struct ag_store *store, struct ag_stmt *st)
{
    st->lru_prev = NULL;
    st->lru_next = store->lru_head;
    if (store->lru_head)
        store->lru_head->lru_prev = st;
    store->lru_head = st;
    if (store->lru_tail == NULL)
        store->lru_tail = st;
}

static struct ag_stmt *
cache_find(struct ag_store *store, const char *sql, uint64_t h)
{
    for (struct ag_stmt *st = store->buckets[h & (AG__STORE_NBUCKETS - 1)]; st; st = st->hnext) {
        if (st->hash == h && strcmp(st->sql, sql) == 0)
            return st;
    }
    return NULL;
}

/* Unlink 'st' from the cache and release it. */
static void
cache_remove(struct ag_store *store, struct ag_stmt *st)
{
    struct ag_stmt **pp = &store->buckets[st->hash & (AG__STORE_NBUCKETS - 1)];
    while (*pp != st)
        pp = &(*pp)->hnext;
    *pp = st->hnext;
    lru_unlink(store, st);
    store->nstmts--;
    store->ops->finalize(st->be);
    st->be = NULL;
    ag_free(st->sql);
    st->sql = NULL;
    st->magic = 0;
    ag_free(st);
}

/* Make room for one more statement. Statements in use are skipped, so the
 * cache may exceed its bound while a caller holds that many at once. */
static void
cache_evict(struct ag_store *store)
{
    struct ag_stmt *st = store->lru_tail;
    while (store->nstmts >= store->stmt_cache_max && st != NULL) {
        struct ag_stmt *prev = st->lru_prev;
        if (!st->in_use)
            cache_remove(store, st);
        st = prev;
    }
}

struct ag_stmt *
ag_store_prepare(struct ag_store *store, const char *sql, int *out_err)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    int err = AG_EINVAL;
    if (sql == NULL) {
        ag__store_set_err(store, "NULL SQL statement");
        goto fail;
    }
    uint64_t h = hash_sql(sql);
    struct ag_stmt *st = cache_find(store, sql, h);
    if (st != NULL) {
        store->ops->reset(st);
        lru_unlink(store, st);
        lru_push_front(store, st);
        st->in_use = true;
        return st;
    }
    void *be = NULL;
    err = store->ops->prepare(store, sql, &be);
    if (err != 0)
        goto fail;
    cache_evict(store);
    st = ag_calloc(1, sizeof(*st));
    st->magic = AG__STMT_MAGIC;
    st->store = store;
    st->be = be;
    st->sql = ag_strdup(sql);
    st->hash = h;
    st->in_use = true;
    struct ag_stmt **bucket = &store->buckets[h & (AG__STORE_NBUCKETS - 1)];
    st->hnext = *bucket;
    *bucket = st;
    lru_push_front(store, st);
    store->nstmts++;
    return st;
fail:
    if (out_err)
        *out_err = err;
    return NULL;
}

int
ag_store_stmt(struct ag_store *store, const char *sql, struct ag_stmt **out_stmt)
{
    int err = 0;
    *out_stmt = ag_store_prepare(store, sql, &err);
    return *out_stmt != NULL ? 0 : err;
}

int
ag_stmt_exec(struct ag_stmt *st)
{
    int rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

int
ag_stmt_step_one(struct ag_stmt *st)
{
    int rc = ag_stmt_step(st);
    if (rc == AG_STMT_ROW)
        return 0;
    return rc == AG_STMT_DONE ? AG_ENOENT : rc;
}

int
ag_stmt_step_i64(struct ag_stmt *st, int64_t dflt, int64_t *out_v)
{
    int rc = ag_stmt_step(st);
    if (rc == AG_STMT_ROW)
        *out_v = ag_stmt_col_is_null(st, 0) ? dflt : ag_stmt_col_i64(st, 0);
    else if (rc == AG_STMT_DONE)
        *out_v = dflt;
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

void
ag_stmt_reset(struct ag_stmt *st)
{
    if (st == NULL)
        return;
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    st->store->ops->reset(st);
    st->in_use = false;
}

/* ---- Binding and stepping ------------------------------------------------ */

int
ag_stmt_bind_text(struct ag_stmt *st, int n, const char *s, size_t len)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->bind_text(st, n, s, len);
}

int
ag_stmt_bind_cstr(struct ag_stmt *st, int n, const char *s)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    if (s == NULL)
        return st->store->ops->bind_null(st, n);
    return st->store->ops->bind_text(st, n, s, strlen(s));
}

int
ag_stmt_bind_i64(struct ag_stmt *st, int n, int64_t v)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->bind_i64(st, n, v);
}

int
ag_stmt_bind_double(struct ag_stmt *st, int n, double v)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->bind_double(st, n, v);
}

int
ag_stmt_bind_null(struct ag_stmt *st, int n)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->bind_null(st, n);
}

int
ag_stmt_bind_blob(struct ag_stmt *st, int n, const void *p, size_t len)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->bind_blob(st, n, p, len);
}

int
ag_stmt_step(struct ag_stmt *st)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    int rc = fault_check(st->store);
    if (rc != 0)
        return rc;
    return st->store->ops->step(st);
}

int
ag_stmt_ncols(struct ag_stmt *st)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return st->store->ops->ncols(st);
}

static bool
col_ok(struct ag_stmt *st, int i)
{
    return i >= 0 && i < st->store->ops->ncols(st);
}

bool
ag_stmt_col_is_null(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return !col_ok(st, i) || st->store->ops->col_is_null(st, i);
}

int64_t
ag_stmt_col_i64(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return col_ok(st, i) ? st->store->ops->col_i64(st, i) : 0;
}

double
ag_stmt_col_double(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return col_ok(st, i) ? st->store->ops->col_double(st, i) : 0.0;
}

const char *
ag_stmt_col_text(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return col_ok(st, i) ? st->store->ops->col_text(st, i) : "";
}

size_t
ag_stmt_col_len(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return col_ok(st, i) ? st->store->ops->col_len(st, i) : 0;
}

const void *
ag_stmt_col_blob(struct ag_stmt *st, int i)
{
    AG_CHECK_MAGIC(st, AG__STMT_MAGIC);
    return col_ok(st, i) ? st->store->ops->col_blob(st, i) : NULL;
}

char *
ag_stmt_col_dup(struct ag_stmt *st, int i, struct ag_pool *pool)
{
    if (ag_stmt_col_is_null(st, i))
        return NULL;
    /* Text first, then its length: the length of the text form. */
    const char *s = ag_stmt_col_text(st, i);
    return ag_pool_strndup(pool, s, ag_stmt_col_len(st, i));
}

int
ag_stmt_col_copy(struct ag_stmt *st, int i, char *out, size_t cap)
{
    if (cap == 0)
        return AG_ETOOBIG;
    const char *s = ag_stmt_col_text(st, i);
    size_t len = ag_stmt_col_len(st, i);
    size_t n = AG_MIN(len, cap - 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return n < len ? AG_ETOOBIG : 0;
}

/* ---- Connection-level calls ---------------------------------------------- */

const char *
ag_store_backend(const struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    return store->ops->name;
}

int
ag_store_exec(struct ag_store *store, const char *sql)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    int rc = fault_check(store);
    if (rc != 0)
        return rc;
    return store->ops->exec(store, sql);
}

bool
ag_store_in_tx(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    return store->ops->in_tx(store);
}

int
ag_store_begin(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (store->ops->in_tx(store)) {
        ag__store_set_err(store, "cannot begin: a transaction is already open");
        return AG_EINVAL;
    }
    int rc = fault_check(store);
    if (rc != 0)
        return rc;
    rc = store->ops->begin(store);
    /* A transaction begun while a traced request or delivery is handled is
     * a span of its trace (db.* semantic conventions). */
    store->tx_span.recording = false;
    const struct ag_trace_ctx *cur = ag_trace_current();
    if (rc == 0 && cur != NULL && ag_span_enabled()) {
        struct ag_trace_ctx ctx;
        ag_trace_child(cur, &ctx);
        bool pg = strcmp(store->ops->name, "postgres") == 0;
        ag_span_begin(&store->tx_span, &ctx, "db.transaction", AG_SPAN_CLIENT);
        ag_span_attr_str(&store->tx_span, "db.system", pg ? "postgresql" : "sqlite");
        ag_span_attr_str(&store->tx_span, "db.operation.name", "transaction");
    }
    return rc;
}

/* End the transaction's span: committed, or rolled back ('how'). */
static void
tx_span_end(struct ag_store *store, int rc, const char *how)
{
    if (!store->tx_span.recording)
        return;
    ag_span_attr_str(&store->tx_span, "db.transaction.outcome", how);
    if (rc != 0)
        ag_span_error(&store->tx_span, ag_strerror(rc));
    ag_span_end(&store->tx_span);
}

int
ag_store_begin_lazy(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (!store->durable)
        return ag_store_begin(store);
    if (store->ops->in_tx(store)) {
        ag__store_set_err(store, "cannot begin: a transaction is already open");
        return AG_EINVAL;
    }
    int rc = store->ops->set_sync(store, false);
    if (rc == 0)
        rc = ag_store_begin(store);
    if (rc != 0) {
        store->ops->set_sync(store, true);
        return rc;
    }
    store->lazy_tx = true;
    return 0;
}

/* After a lazy transaction ended, commits wait for durability again. */
static void
end_lazy(struct ag_store *store)
{
    if (store->lazy_tx && !store->ops->in_tx(store)) {
        store->lazy_tx = false;
        store->ops->set_sync(store, true);
    }
}

int
ag_store_commit(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    int rc = fault_check(store);
    if (rc != 0)
        return rc;
    rc = store->ops->commit(store);
    tx_span_end(store, rc, rc == 0 ? "commit" : "commit_failed");
    end_lazy(store);
    return rc;
}

int
ag_store_rollback(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (!store->ops->in_tx(store)) {
        end_lazy(store);
        return 0;
    }
    int rc = store->ops->rollback(store);
    tx_span_end(store, rc, "rollback");
    end_lazy(store);
    return rc;
}

/* Sleep a random 0..2^attempt * 125 us, at most TX_RETRY_MAX_US: enough
 * for the competing transaction to commit on loopback, short enough to
 * block the loop only briefly. */
static void
retry_pause(int attempt)
{
    uint32_t r;
    ag_random_fill(&r, sizeof(r));
    uint32_t cap = 125u << (attempt < 5 ? attempt : 5);
    if (cap > TX_RETRY_MAX_US)
        cap = TX_RETRY_MAX_US;
    struct timespec ts = { 0, (long)(r % (cap + 1)) * 1000L };
    nanosleep(&ts, NULL);
}

static int
tx_run(struct ag_store *store, ag_store_tx_fn fn, void *arg, int max_attempts)
{
    int rc = 0;
    for (int attempt = 1; attempt <= max_attempts; attempt++) {
        store->tx_retryable = false;
        rc = ag_store_begin(store);
        if (rc != 0)
            return rc;
        rc = fn(store, arg);
        if (rc == 0)
            rc = ag_store_commit(store);
        if (rc == 0)
            return 0;
        /* Keep the first error's message: it is the one worth logging. */
        char saved[sizeof(store->errmsg)];
        memcpy(saved, store->errmsg, sizeof(saved));
        bool again = rc == AG_EBUSY && store->tx_retryable;
        ag_store_rollback(store);
        memcpy(store->errmsg, saved, sizeof(saved));
        /* A serialization failure or deadlock (PostgreSQL) means another
         * transaction won: run the body again on the new state. */
        if (!again)
            return rc;
        if (attempt < max_attempts)
            retry_pause(attempt);
    }
    return rc;
}

int
ag_store_tx(struct ag_store *store, ag_store_tx_fn fn, void *arg)
{
    return tx_run(store, fn, arg, TX_MAX_ATTEMPTS);
}

int
ag_store_tx_once(struct ag_store *store, ag_store_tx_fn fn, void *arg)
{
    return tx_run(store, fn, arg, 1);
}

int64_t
ag_store_changes(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    return store->ops->changes(store);
}

int
ag_store_ping(struct ag_store *store)
{
    return ag_store_exec(store, "SELECT 1");
}

const char *
ag_store_errmsg(struct ag_store *store)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    return store->errmsg;
}

void
ag_store_fault_after(struct ag_store *store, int n)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    store->fault_countdown = n > 0 ? n : 0;
}

/* ---- Migrations ---------------------------------------------------------- */

struct migrate_ctx {
    const struct ag_migration *m; /* the migration to apply */
};

static bool
is_pg(const struct ag_store *store)
{
    return store->ops == &ag__store_pg_ops;
}

/* The SQL of 'm' for the backend of 'store'. */
static const char *
migration_sql(const struct ag_store *store, const struct ag_migration *m)
{
    return is_pg(store) && m->sql_pg != NULL ? m->sql_pg : m->sql;
}

/* Sort pointers to the migrations by version and reject duplicates. */
static int
sort_migrations(struct ag_store *store, const struct ag_store_config *cfg,
                const struct ag_migration **sorted)
{
    if (cfg->nmigrations > 0 && cfg->migrations == NULL) {
        ag__store_set_err(store, "%zu migrations announced but none given", cfg->nmigrations);
        return AG_ECONFIG;
    }
    for (size_t i = 0; i < cfg->nmigrations; i++) {
        const struct ag_migration *m = &cfg->migrations[i];
        if (m->version <= 0 || m->name == NULL || m->sql == NULL) {
            ag__store_set_err(store, "migration #%zu: bad version %d or missing name or SQL", i,
                              m->version);
            return AG_ECONFIG;
        }
        size_t j = i;
        while (j > 0 && sorted[j - 1]->version > m->version) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        if (j > 0 && sorted[j - 1]->version == m->version) {
            ag__store_set_err(store, "migrations '%s' and '%s' share version %d",
                              sorted[j - 1]->name, m->name, m->version);
            return AG_ECONFIG;
        }
        sorted[j] = m;
    }
    return 0;
}

/* Highest version recorded in schema_migrations, 0 for none. */
static int
recorded_version(struct ag_store *store, int64_t *out_version)
{
    int rc = 0;
    struct ag_stmt *st =
        ag_store_prepare(store, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_step(st);
    if (rc == AG_STMT_ROW) {
        *out_version = ag_stmt_col_i64(st, 0);
        rc = 0;
    } else if (rc == AG_STMT_DONE) {
        *out_version = 0;
    }
    ag_stmt_reset(st);
    return rc;
}

/* Transaction body: apply one migration unless another process already
 * did (checked under the write lock), and record it. */
static int
apply_one(struct ag_store *store, void *arg)
{
    const struct ag_migration *m = ((struct migrate_ctx *)arg)->m;
    int rc = 0;
    /* PostgreSQL: serialize migrating processes on the table lock, taken
     * before the transaction's snapshot (its first query), so the second
     * one sees the first one's row instead of failing on its DDL. SQLite's
     * BEGIN IMMEDIATE already holds the write lock. */
    if (is_pg(store)) {
        rc = ag_store_exec(store, "LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE");
        if (rc != 0)
            return rc;
    }
    struct ag_stmt *st =
        ag_store_prepare(store, "SELECT 1 FROM schema_migrations WHERE version = $1", &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, m->version);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    if (rc == AG_STMT_ROW)
        return 0;
    if (rc != AG_STMT_DONE)
        return rc;

    rc = ag_store_exec(store, migration_sql(store, m));
    if (rc != 0) {
        char why[sizeof(store->errmsg)];
        memcpy(why, store->errmsg, sizeof(why));
        ag__store_set_err(store, "migration '%s' failed: %s", m->name, why);
        return rc;
    }
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    st = ag_store_prepare(
        store, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        &rc);
    if (st == NULL)
        return rc;
    rc = ag_stmt_bind_i64(st, 1, m->version);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, m->name);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 3, now);
    if (rc == 0)
        rc = ag_stmt_step(st);
    ag_stmt_reset(st);
    return rc < 0 ? rc : 0;
}

static int
migrate(struct ag_store *store, const struct ag_store_config *cfg)
{
    int rc = ag_store_exec(store, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                  "version INTEGER PRIMARY KEY, "
                                  "name TEXT NOT NULL, "
                                  "applied_at TEXT NOT NULL)");
    if (rc != 0)
        return rc;
    const struct ag_migration **sorted = ag_calloc(cfg->nmigrations, sizeof(*sorted));
    rc = sort_migrations(store, cfg, sorted);
    if (rc != 0)
        goto out;
    int known = cfg->nmigrations ? sorted[cfg->nmigrations - 1]->version : 0;
    int64_t recorded = 0;
    rc = recorded_version(store, &recorded);
    if (rc != 0)
        goto out;
    if (recorded > known) {
        ag__store_set_err(store,
                          "database schema version %lld is newer than this binary knows (%d)",
                          (long long)recorded, known);
        rc = AG_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < cfg->nmigrations; i++) {
        struct migrate_ctx ctx = { sorted[i] };
        rc = ag_store_tx(store, apply_one, &ctx);
        if (rc != 0)
            goto out;
    }
out:
    ag_free(sorted);
    return rc;
}

/* ---- Open and close ------------------------------------------------------ */

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
ag_store_open(const struct ag_store_config *cfg, struct ag_store **out_store)
{
    if (cfg == NULL || cfg->path == NULL) {
        if (cfg != NULL && cfg->errbuf != NULL && cfg->errbuf_len > 0)
            snprintf(cfg->errbuf, cfg->errbuf_len, "store path not set");
        return AG_EINVAL;
    }
    struct ag_store *store = ag_calloc(1, sizeof(*store));
    store->magic = AG__STORE_MAGIC;
    store->ops = &ag__store_sqlite_ops;
    store->stmt_cache_max = cfg->stmt_cache_max ? cfg->stmt_cache_max : DEFAULT_STMT_CACHE_MAX;
    store->durable = cfg->durability == AG_STORE_FULL;

    struct ag_store_config c = *cfg;
    if (c.busy_timeout_ms <= 0)
        c.busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;

    if (starts_with(c.path, "postgres://") || starts_with(c.path, "postgresql://"))
        store->ops = &ag__store_pg_ops;
    int rc = store->ops->open(store, &c);
    if (rc != 0)
        goto fail;
    rc = migrate(store, &c);
    if (rc != 0)
        goto fail;
    *out_store = store;
    return 0;
fail:
    if (cfg->errbuf != NULL && cfg->errbuf_len > 0)
        snprintf(cfg->errbuf, cfg->errbuf_len, "%s", store->errmsg);
    ag_store_close(store);
    return rc;
}

void
ag_store_close(struct ag_store *store)
{
    if (store == NULL)
        return;
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    while (store->lru_head != NULL)
        cache_remove(store, store->lru_head);
    if (store->be != NULL)
        store->ops->close(store);
    store->magic = 0;
    ag_free(store);
}
