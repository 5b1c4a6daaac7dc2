/* SPDX-License-Identifier: MIT */
/* Internals shared by the backend-neutral store layer (store.c) and its
 * backends (store_sqlite.c, store_pg.c): the object layouts and the
 * table of backend operations (redis ConnectionType style). */
#ifndef AG_STORE_INT_H
#define AG_STORE_INT_H

#include "agora/base.h"
#include "agora/store.h"
#include "agora/trace.h"

#define AG__STORE_MAGIC    0x53544f52u /* "STOR" */
#define AG__STMT_MAGIC     0x53544d54u /* "STMT" */
#define AG__STORE_NBUCKETS 512         /* statement cache hash buckets (power of two) */

/* What a backend provides. Every function receives the generic object and
 * reaches its own handle through 'store->be' or 'st->be'. Functions that
 * fail return a negative AG_E* code (mapped as documented in store.h) and
 * record a message with ag__store_set_err. */
struct ag_store_ops {
    const char *name; /* ag_store_backend() */
    /* Connect to 'cfg->path' and apply the session settings; sets store->be. */
    int (*open)(struct ag_store *store, const struct ag_store_config *cfg);
    /* Release store->be (statements are already finalized). Accepts NULL be. */
    void (*close)(struct ag_store *store);
    int (*exec)(struct ag_store *store, const char *sql);
    int (*begin)(struct ag_store *store);
    /* Whether the next commits wait for durability (true) or not; called
     * only outside a transaction (ag_store_begin_lazy). */
    int (*set_sync)(struct ag_store *store, bool durable);
    int (*commit)(struct ag_store *store);
    int (*rollback)(struct ag_store *store);
    bool (*in_tx)(struct ag_store *store);
    int64_t (*changes)(struct ag_store *store);
    /* Compile 'sql' into '*out_be'; AG_EINVAL for bad or multiple statements. */
    int (*prepare)(struct ag_store *store, const char *sql, void **out_be);
    void (*finalize)(void *be);
    /* Reset for re-execution and clear the bindings. */
    void (*reset)(struct ag_stmt *st);
    int (*bind_text)(struct ag_stmt *st, int n, const char *s, size_t len);
    int (*bind_i64)(struct ag_stmt *st, int n, int64_t v);
    int (*bind_double)(struct ag_stmt *st, int n, double v);
    int (*bind_null)(struct ag_stmt *st, int n);
    int (*bind_blob)(struct ag_stmt *st, int n, const void *p, size_t len);
    int (*step)(struct ag_stmt *st);
    int (*ncols)(struct ag_stmt *st);
    /* Getters are called only with 0 <= i < ncols. */
    bool (*col_is_null)(struct ag_stmt *st, int i);
    int64_t (*col_i64)(struct ag_stmt *st, int i);
    double (*col_double)(struct ag_stmt *st, int i);
    const char *(*col_text)(struct ag_stmt *st, int i);
    size_t (*col_len)(struct ag_stmt *st, int i);
    const void *(*col_blob)(struct ag_stmt *st, int i);
};

struct ag_stmt {
    uint32_t magic;           /* AG__STMT_MAGIC */
    struct ag_store *store;   /* owner */
    void *be;                 /* backend statement (sqlite3_stmt *) */
    char *sql;                /* cache key, owned */
    uint64_t hash;            /* hash of 'sql' */
    struct ag_stmt *hnext;    /* next in the hash bucket */
    struct ag_stmt *lru_prev; /* more recently used neighbour */
    struct ag_stmt *lru_next; /* less recently used neighbour */
    bool in_use;              /* prepared and not yet reset: never evicted */
};

struct ag_store {
    uint32_t magic;                              /* AG__STORE_MAGIC */
    const struct ag_store_ops *ops;              /* backend */
    void *be;                                    /* backend connection (sqlite3 *) */
    struct ag_stmt *buckets[AG__STORE_NBUCKETS]; /* statement cache by SQL text */
    struct ag_stmt *lru_head;                    /* most recently prepared */
    struct ag_stmt *lru_tail;                    /* least recently prepared */
    size_t nstmts;                               /* statements in the cache */
    size_t stmt_cache_max;                       /* eviction threshold */
    bool durable;                                /* cfg->durability == AG_STORE_FULL */
    bool lazy_tx;                                /* the open tx came from ag_store_begin_lazy */
    bool leases_ready;                           /* agora_leases exists (lease.c) */
    bool tx_retryable;      /* the last failure was a serialization failure or deadlock:
                          ag_store_tx may run the transaction again */
    int fault_countdown;    /* ag_store_fault_after; 0 = disarmed */
    int64_t wal_frames;     /* SQLite, after ag_store_wal_manual: frames in the WAL
                               after this connection's last commit */
    struct ag_span tx_span; /* the open transaction's span, when traced */
    char errmsg[512];       /* last error message, "" if none */
};

/* Record the last error message of 'store' (printf format). */
void ag__store_set_err(struct ag_store *store, const char *fmt, ...) AG_PRINTF(2, 3);

extern const struct ag_store_ops ag__store_sqlite_ops;
extern const struct ag_store_ops ag__store_pg_ops;

#endif /* AG_STORE_INT_H */
