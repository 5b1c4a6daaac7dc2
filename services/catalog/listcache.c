/* SPDX-License-Identifier: MIT */
/* Rendered product list pages, kept until the database changes.
 *
 * GET /v1/products is the catalog's busiest read and the same few pages
 * (the first page, a category's first page) are asked for again and
 * again. A page is kept under its raw query string together with the
 * store's data version (ag_store_data_version: it moves with any write
 * by this process or a commit by another), and served from here while the
 * version is unchanged, with a strong ETag (a hash of the bytes) so a
 * client holding the page gets 304. Any write anywhere in the database
 * drops every page at once: no invalidation to forget when a new write
 * path appears.
 *
 * Bounded: LIST_SLOTS pages of at most LIST_BODY_MAX bytes, keys of at
 * most LIST_KEY_MAX bytes, replaced round robin; searches (q=) are not
 * kept (unbounded key space, cheap to skip). Allocated at the first list
 * request, so an idle catalog does not carry it. On PostgreSQL (several
 * instances share the database; no cheap version) it is off. */
#include "agora/base.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "catalog.h"

#define LIST_SLOTS    16
#define LIST_KEY_MAX  256
#define LIST_BODY_MAX (128 * 1024)

struct list_page {
    char key[LIST_KEY_MAX];
    size_t klen;
    uint64_t version; /* of the store when rendered */
    char *body;       /* owned; NULL: free slot */
    size_t len;
    char etag[24]; /* "\"l" 16 hex "\"" */
};

struct catalog_list_cache {
    struct list_page pages[LIST_SLOTS];
    unsigned next; /* slot replaced next */
    bool off;      /* the store has no data version (PostgreSQL) */
};

static uint64_t
fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

bool
catalog_list_cache_lookup(struct catalog *cat, struct ag_str key, uint64_t *out_version,
                          const char **out_body, size_t *out_len, const char **out_etag)
{
    if (key.len > LIST_KEY_MAX)
        return false;
    struct catalog_list_cache *lc = cat->lists;
    if (lc == NULL) {
        lc = ag_calloc(1, sizeof(*lc));
        cat->lists = lc;
    }
    if (lc->off)
        return false;
    uint64_t v;
    int rc = ag_store_data_version(cat->store, &v);
    if (rc == AG_EINVAL) {
        lc->off = true;
        return false;
    }
    if (rc != 0)
        return false;
    *out_version = v;
    for (size_t i = 0; i < LIST_SLOTS; i++) {
        struct list_page *pg = &lc->pages[i];
        if (pg->body != NULL && pg->version == v && pg->klen == key.len &&
            memcmp(pg->key, key.ptr, key.len) == 0) {
            *out_body = pg->body;
            *out_len = pg->len;
            *out_etag = pg->etag;
            return true;
        }
    }
    return false;
}

const char *
catalog_list_cache_store(struct catalog *cat, struct ag_str key, uint64_t version, const char *body,
                         size_t len)
{
    struct catalog_list_cache *lc = cat->lists;
    if (lc == NULL || lc->off || key.len > LIST_KEY_MAX || len > LIST_BODY_MAX)
        return NULL;
    /* The same key's slot (an older version), else the next one. */
    struct list_page *pg = NULL;
    for (size_t i = 0; i < LIST_SLOTS && pg == NULL; i++) {
        struct list_page *p = &lc->pages[i];
        if (p->body != NULL && p->klen == key.len && memcmp(p->key, key.ptr, key.len) == 0)
            pg = p;
    }
    if (pg == NULL) {
        pg = &lc->pages[lc->next];
        lc->next = (lc->next + 1) % LIST_SLOTS;
    }
    ag_free(pg->body);
    pg->body = ag_malloc(len ? len : 1);
    memcpy(pg->body, body, len);
    pg->len = len;
    memcpy(pg->key, key.ptr, key.len);
    pg->klen = key.len;
    pg->version = version;
    snprintf(pg->etag, sizeof(pg->etag), "\"l%016llx\"", (unsigned long long)fnv1a(body, len));
    return pg->etag;
}

void
catalog_list_cache_free(struct catalog *cat)
{
    struct catalog_list_cache *lc = cat->lists;
    if (lc == NULL)
        return;
    for (size_t i = 0; i < LIST_SLOTS; i++)
        ag_free(lc->pages[i].body);
    ag_free(lc);
    cat->lists = NULL;
}
