/* SPDX-License-Identifier: MIT */
/* Leases (agora/store.h, ag_store_lease): a named, timed right that one
 * holder at a time has, kept in the chassis table agora_leases of the
 * service's own database, so that several instances sharing a database
 * (PostgreSQL, or SQLite with shared locking) run a singleton job (the
 * outbox relay, a periodic scanner) in one place. Taken and renewed with
 * one conditional upsert; valid on SQLite and PostgreSQL alike. */
#include "agora/base.h"
#include "agora/store.h"

#include "agora/err.h"
#include "store_int.h"

static const char LEASE_SCHEMA[] = "CREATE TABLE IF NOT EXISTS agora_leases ("
                                   " name TEXT PRIMARY KEY,"
                                   " holder TEXT NOT NULL,"
                                   " until_ms BIGINT NOT NULL)";

/* The upsert takes a free or expired lease and renews our own; a lease
 * another holder has until a later time is left alone (no row changed). */
static const char LEASE_TAKE[] =
    "INSERT INTO agora_leases (name, holder, until_ms) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms"
    " WHERE agora_leases.holder = excluded.holder OR agora_leases.until_ms <= $4";

static int
lease_schema(struct ag_store *store)
{
    if (store->leases_ready)
        return 0;
    int rc = ag_store_exec(store, LEASE_SCHEMA);
    store->leases_ready = rc == 0;
    return rc;
}

int
ag_store_lease(struct ag_store *store, const char *name, const char *holder, int64_t now_ms,
               int64_t ttl_ms, bool *out_held)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    *out_held = false;
    if (name == NULL || holder == NULL || ttl_ms <= 0 || ag_store_in_tx(store))
        return AG_EINVAL;
    int rc = lease_schema(store);
    if (rc != 0)
        return rc;
    /* Losing a renewal to a power cut is harmless: no fsync for it. */
    rc = ag_store_begin_lazy(store);
    if (rc != 0)
        return rc;
    struct ag_stmt *st = NULL;
    rc = ag_store_stmt(store, LEASE_TAKE, &st);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 1, name);
    if (rc == 0)
        rc = ag_stmt_bind_cstr(st, 2, holder);
    if (rc == 0)
        rc = ag_stmt_bind_i64(st, 3, now_ms + ttl_ms);
    if (rc == 0)
        rc = ag_stmt_bind_i64(st, 4, now_ms);
    if (rc == 0)
        rc = ag_stmt_exec(st);
    else
        ag_stmt_reset(st);
    bool held = rc == 0 && ag_store_changes(store) == 1;
    if (rc == 0)
        rc = ag_store_commit(store);
    if (rc != 0) {
        ag_store_rollback(store);
        return rc;
    }
    *out_held = held;
    return 0;
}

int
ag_store_lease_release(struct ag_store *store, const char *name, const char *holder)
{
    AG_CHECK_MAGIC(store, AG__STORE_MAGIC);
    if (name == NULL || holder == NULL || ag_store_in_tx(store))
        return AG_EINVAL;
    int rc = lease_schema(store);
    if (rc != 0)
        return rc;
    struct ag_stmt *st = NULL;
    rc = ag_store_stmt(store, "DELETE FROM agora_leases WHERE name = $1 AND holder = $2", &st);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(st, 1, name);
    ag_stmt_bind_cstr(st, 2, holder);
    return ag_stmt_exec(st);
}
