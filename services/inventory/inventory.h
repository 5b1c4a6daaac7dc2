/* SPDX-License-Identifier: MIT */
/* Inventory service internals shared by main.c, api.c, events.c and store.c:
 * the service's struct, its settings and each file's calls. */
#ifndef INV_INVENTORY_H
#define INV_INVENTORY_H

#include "agora/base.h"

#include "agora/buf.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define INV_PAGE_DEFAULT   20
#define INV_PAGE_MAX       100
#define INV_CATEGORIES_MAX 1000

struct inv_settings {
    char *seed_path; /* AGORA_INVENTORY_SEED */
};

struct inv {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox */
    struct inv_settings settings;
};

/* ---- api.c ---- */
extern const struct ag_route inv_routes[];
extern const size_t inv_nroutes;

/* Give 'p' a new id, creation time and version 1, render it, insert it and
 * publish product.created through 'ev' (may be NULL), inside the caller's
 * transaction. The rendered document is appended to 'doc' when not NULL.
 * 'traceparent' may be NULL. Returns 0,
 * AG_EEXIST (sku taken), AG_ECONFLICT (unknown category) or a store error. */
int inv_create_product(struct ag_store *store, struct ag_events *ev, struct inv_product *p,
                           const char *traceparent, struct ag_buf *doc);

/* ---- events.c: product.* through the outbox ----
 * 'ev' is the service's events runtime (struct inv 'events'); with NULL
 * (no runtime, e.g. in unit tests) nothing is written and 0 is returned.
 * Each call writes inside the caller's open transaction and returns 0 or
 * the error ag_events_publish logged; the caller returns it to roll back. */

/* product.created and product.updated carry the product as served, 'doc'. */
int inv_events_product_created(struct ag_events *ev, const struct inv_product *p,
                                   const json_t *doc, const char *traceparent);
int inv_events_product_updated(struct ag_events *ev, const struct inv_product *p,
                                   const json_t *doc, const char *traceparent);
/* product.deleted: {id, sku, version, deleted_at}. */
int inv_events_product_deleted(struct ag_events *ev, const struct inv_product *p,
                                   const char *traceparent);
/* After the commit: send what it wrote now rather than at the relay's next
 * poll. */
void inv_events_kick(struct ag_events *ev);

/* ---- store.c ---- */
struct inv_filter {
    const char *category; /* slug or NULL */
    int64_t min_price;    /* -1: none */
    int64_t max_price;    /* -1: none */
    int active;           /* -1: any, 0 or 1 */
    const char *currency; /* or NULL */
    const char *after_id; /* KEY cursor, or NULL */
    const char *fts;      /* FTS5 query (inv_search_query), or NULL */
    int64_t offset;       /* with fts */
    int64_t limit;
};

int inv_store_count(struct ag_store *st, int64_t *out_n);
/* The served document and version of product 'id', copied into 'pool'. */
int inv_store_product_doc(struct ag_store *st, const char *id, struct ag_pool *pool,
                              char **out_doc, size_t *out_len, int64_t *out_version);
/* The product's fields, copied into 'pool'. AG_ENOENT when absent. */
int inv_store_product_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                              struct inv_product *out);
int inv_store_product_insert(struct ag_store *st, const struct inv_product *p,
                                 const char *doc);
/* Write 'p' (version already incremented) if the stored version is
 * 'expected'; AG_EPRECOND otherwise, AG_EEXIST when the sku is taken. */
int inv_store_product_update(struct ag_store *st, const struct inv_product *p,
                                 int64_t expected, const char *doc);
/* Delete when the version is 'expected' (-1: any). AG_ENOENT, AG_EPRECOND. */
int inv_store_product_delete(struct ag_store *st, const char *id, int64_t expected);
/* Append up to f->limit documents, comma-separated, to 'items'. *out_more
 * tells whether more rows follow; 'last_id' gets the last id returned. */
int inv_store_product_list(struct ag_store *st, const struct inv_filter *f,
                               struct ag_buf *items, size_t *out_count, bool *out_more,
                               char last_id[AG_UUID_STRLEN + 1]);

int inv_store_category_exists(struct ag_store *st, const char *slug, bool *out_exists);
int inv_store_category_insert(struct ag_store *st, const struct inv_category *c,
                                  const char *created_at);
int inv_store_category_get(struct ag_store *st, const char *slug, struct ag_pool *pool,
                               struct inv_category *out);
/* All categories as a JSON array (new reference), by slug. */
int inv_store_category_list(struct ag_store *st, json_t **out_items);
/* AG_ENOENT, or AG_ECONFLICT while products use it. */
int inv_store_category_delete(struct ag_store *st, const char *slug);

#endif /* INV_INVENTORY_H */
