/* SPDX-License-Identifier: MIT */
/* Registry internals shared by main.c, api.c and store.c: the process-wide
 * state (instance table, held long polls, timers, metrics) and the SQL
 * layer's calls. Named reg.h so it never shadows the chassis' client header
 * agora/registry.h. Every function here runs on the service's loop thread. */
#ifndef REG_REG_H
#define REG_REG_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

struct reg_settings {
    int64_t max_instances;     /* AGORA_REGISTRY_MAX_INSTANCES */
    int64_t max_watches;       /* AGORA_REGISTRY_MAX_WATCHES */
    int64_t max_config_keys;   /* AGORA_REGISTRY_MAX_CONFIG_KEYS */
    uint64_t max_config_bytes; /* AGORA_REGISTRY_MAX_CONFIG_BYTES */
};

/* One long poll: the request held until its service (or a key under its
 * prefix) changes, its timer fires, or the process stops. Heap-allocated;
 * freed by the timer's close callback after the request was answered. */
struct reg_watch {
    struct reg_watch *prev; /* in the service's or the config list */
    struct reg_watch *next;
    struct reg *reg;          /* borrowed */
    struct ag_http_req *req;  /* held; NULL once answered */
    uv_timer_t timer;         /* the 'wait' deadline */
    struct reg_service *svc;  /* service watch: borrowed entry; NULL for config */
    char *prefix;             /* config watch: owned key prefix ("" for all) */
    uint64_t started_mono_ms; /* when it was held, for logs */
};

struct reg {
    struct ag_service *svc;           /* borrowed */
    struct ag_store *store;           /* borrowed from svc */
    struct reg_settings settings;     /* loaded by the chassis from REG_KEYS */
    struct reg_state state;           /* instances and the shared index */
    struct reg_watch *config_watches; /* long polls on configuration prefixes */
    size_t nconfig_watches;
    size_t nwatches;                 /* every long poll held (services and config) */
    int64_t config_index;            /* highest index of any config change (persisted) */
    int64_t config_keys;             /* keys stored */
    uv_timer_t expiry_timer;         /* fires at the earliest instance deadline */
    uint64_t expiry_due;             /* monotonic ms it is armed for; UINT64_MAX: idle */
    bool started;                    /* state and timer initialised (on_start ran) */
    bool stopping;                   /* SIGTERM seen: long polls are answered at once */
    struct ag_metric *m_instances;   /* registry_instances{service} */
    struct ag_metric *m_watches;     /* registry_watches */
    struct ag_metric *m_expirations; /* registry_expirations_total */
    struct ag_metric *m_config_keys; /* registry_config_keys */
};

/* ---- api.c ---- */
extern const struct ag_route reg_routes[];
extern const size_t reg_nroutes;

/* Load the persisted index and key count, set up the instance table, the
 * expiry timer and the metrics. Called from on_start on the loop thread.
 * Returns 0 or a store error (logged). */
int reg_api_start(struct reg *r);

/* A stop began: answer every held long poll now with the current state,
 * stop expiring instances. Later long polls are answered at once. */
void reg_api_stopping(struct reg *r);

/* The server drained: close the timer, persist the index, free the table.
 * The loop then ends once the close callbacks ran. */
void reg_api_stop(struct reg *r);

/* ---- store.c ---- */

/* Read the persisted indexes: '*out_stored' is the highest index ever
 * persisted (last index at shutdown, config index), '*out_config_index' the
 * config index (-1 for a fresh database, which has none yet), '*out_keys'
 * the number of keys. */
int reg_store_load(struct ag_store *st, int64_t *out_stored, int64_t *out_config_index,
                   int64_t *out_keys);

/* Initialise a fresh database's config index and floor to 'start' (no-op
 * when they exist). */
int reg_store_init_index(struct ag_store *st, int64_t start);

/* Persist 'index' as the last index handed out (at shutdown). */
int reg_store_save_index(struct ag_store *st, int64_t index);

/* Entry 'key', with strings copied into 'pool'. AG_ENOENT when absent. */
int reg_store_config_get(struct ag_store *st, const char *key, struct ag_pool *pool,
                         struct reg_config_entry *out);

/* Append the entries whose key starts with 'prefix', by key and
 * comma-separated, to 'out'. AG_ETOOBIG when 'out' is full. */
int reg_store_config_list(struct ag_store *st, const char *prefix, struct ag_buf *out);

/* The highest modify index of a change under 'prefix': live keys,
 * remembered deletions and the floor (below which deletions are forgotten). */
int reg_store_prefix_index(struct ag_store *st, const char *prefix, int64_t *out_index);

/* Write 'key' = 'value' (compact JSON, 'len' bytes) at index 'index' if
 * 'cas' passes (reg_config_check_cas), for a new key fewer than 'max_keys'
 * keys exist, and the values stored stay within 'max_bytes' in all; one
 * transaction that also advances the config index. '*out_version' gets the
 * new version and '*out_created' whether the key is new. Returns 0,
 * AG_ECONFLICT ('*out_current' = stored version, 0 when absent), AG_EUNAVAIL
 * (too many keys), AG_ETOOBIG (too many bytes) or a store error. */
int reg_store_config_put(struct ag_store *st, const char *key, const char *value, size_t len,
                         int64_t cas, int64_t index, int64_t max_keys, uint64_t max_bytes,
                         int64_t *out_version, int64_t *out_current, bool *out_created);

/* Delete 'key' at index 'index' if 'cas' passes, remembering the deletion
 * for prefix watches. Returns 0, AG_ENOENT, AG_ECONFLICT ('*out_current'
 * set) or a store error. */
int reg_store_config_delete(struct ag_store *st, const char *key, int64_t cas, int64_t index,
                            int64_t *out_current);

#endif /* REG_REG_H */
