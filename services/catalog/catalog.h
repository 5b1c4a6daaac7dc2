/* SPDX-License-Identifier: MIT */
/* Catalog service internals shared by main.c, api.c, events.c and store.c:
 * the service's struct, its settings and each file's calls. */
#ifndef CATALOG_CATALOG_H
#define CATALOG_CATALOG_H

#include "agora/base.h"

#include "agora/buf.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define CATALOG_PAGE_DEFAULT   20
#define CATALOG_PAGE_MAX       100
#define CATALOG_CATEGORIES_MAX 1000

struct catalog_settings {
    char *seed_path; /* AGORA_CATALOG_SEED */
};

struct catalog {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox */
    struct catalog_settings settings;
    struct catalog_list_cache *lists; /* listcache.c; NULL until the first list */
};

/* ---- listcache.c: rendered list pages until the database changes ----
 * lookup: a page kept for query 'key' at the store's current data version
 * (body, length and strong ETag, valid until the next store call on 'cat')
 * and true; else false, with '*out_version' set to the version to store a
 * freshly rendered page under (untouched when the cache is off). store: keep
 * a copy of 'body' for 'key' at 'version'; returns its ETag, or NULL when
 * not kept (too big, cache off). free: at exit. Loop thread. */
struct catalog_list_cache;
bool catalog_list_cache_lookup(struct catalog *cat, struct ag_str key, uint64_t *out_version,
                               const char **out_body, size_t *out_len, const char **out_etag);
const char *catalog_list_cache_store(struct catalog *cat, struct ag_str key, uint64_t version,
                                     const char *body, size_t len);
void catalog_list_cache_free(struct catalog *cat);

/* ---- api.c ---- */
extern const struct ag_route catalog_routes[];
extern const size_t catalog_nroutes;

/* Give 'p' a new id, creation time and version 1, render it, insert it and
 * publish product.created through 'ev' (may be NULL), inside the caller's
 * transaction. The rendered document is appended to 'doc' when not NULL.
 * 'traceparent' may be NULL. Returns 0,
 * AG_EEXIST (sku taken), AG_ECONFLICT (unknown category) or a store error. */
int catalog_create_product(struct ag_store *store, struct ag_events *ev, struct catalog_product *p,
                           const char *traceparent, struct ag_buf *doc);

/* ---- events.c: product.* through the outbox ----
 * 'ev' is the service's events runtime (struct catalog 'events'); with NULL
 * (no runtime, e.g. in unit tests) nothing is written and 0 is returned.
 * Each call writes inside the caller's open transaction and returns 0 or
 * the error ag_events_publish logged; the caller returns it to roll back. */

/* product.created and product.updated carry the product as served, 'doc'. */
int catalog_events_product_created(struct ag_events *ev, const struct catalog_product *p,
                                   const json_t *doc, const char *traceparent);
int catalog_events_product_updated(struct ag_events *ev, const struct catalog_product *p,
                                   const json_t *doc, const char *traceparent);
/* product.deleted: {id, sku, version, deleted_at}. */
int catalog_events_product_deleted(struct ag_events *ev, const struct catalog_product *p,
                                   const char *traceparent);
/* After the commit: send what it wrote now rather than at the relay's next
 * poll. */
void catalog_events_kick(struct ag_events *ev);

/* ---- store.c ---- */
struct catalog_filter {
    const char *category; /* slug or NULL */
    int64_t min_price;    /* -1: none */
    int64_t max_price;    /* -1: none */
    int active;           /* -1: any, 0 or 1 */
    const char *currency; /* or NULL */
    const char *after_id; /* KEY cursor, or NULL */
    const char *fts;      /* FTS5 query (catalog_search_query), or NULL */
    int64_t offset;       /* with fts */
    int64_t limit;
};

int catalog_store_count(struct ag_store *st, int64_t *out_n);
/* The served document and version of product 'id', copied into 'pool'. */
int catalog_store_product_doc(struct ag_store *st, const char *id, struct ag_pool *pool,
                              char **out_doc, size_t *out_len, int64_t *out_version);
/* The product's fields, copied into 'pool'. AG_ENOENT when absent. */
int catalog_store_product_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                              struct catalog_product *out);
int catalog_store_product_insert(struct ag_store *st, const struct catalog_product *p,
                                 const char *doc);
/* Write 'p' (version already incremented) if the stored version is
 * 'expected'; AG_EPRECOND otherwise, AG_EEXIST when the sku is taken. */
int catalog_store_product_update(struct ag_store *st, const struct catalog_product *p,
                                 int64_t expected, const char *doc);
/* Delete when the version is 'expected' (-1: any). AG_ENOENT, AG_EPRECOND. */
int catalog_store_product_delete(struct ag_store *st, const char *id, int64_t expected);
/* Append up to f->limit documents, comma-separated, to 'items'. *out_more
 * tells whether more rows follow; 'last_id' gets the last id returned. */
int catalog_store_product_list(struct ag_store *st, const struct catalog_filter *f,
                               struct ag_buf *items, size_t *out_count, bool *out_more,
                               char last_id[AG_UUID_STRLEN + 1]);

int catalog_store_category_exists(struct ag_store *st, const char *slug, bool *out_exists);
int catalog_store_category_insert(struct ag_store *st, const struct catalog_category *c,
                                  const char *created_at);
int catalog_store_category_get(struct ag_store *st, const char *slug, struct ag_pool *pool,
                               struct catalog_category *out);
/* All categories as a JSON array (new reference), by slug. */
int catalog_store_category_list(struct ag_store *st, json_t **out_items);
/* AG_ENOENT, or AG_ECONFLICT while products use it. */
int catalog_store_category_delete(struct ag_store *st, const char *slug);

#endif /* CATALOG_CATALOG_H */
