/* SPDX-License-Identifier: MIT */
/* Inventory domain: the product and category model, validation of what clients
 * send, the JSON representation, search-query and cursor encoding. Pure
 * functions: no I/O, no database, no clock. */
#ifndef INV_DOMAIN_H
#define INV_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/money.h"
#include "agora/str.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define INV_SKU_MAX          64
#define INV_NAME_MAX         200
#define INV_DESCRIPTION_MAX  5000
#define INV_URL_MAX          2048
#define INV_SLUG_MAX         64
#define INV_CAT_NAME_MAX     100
#define INV_CAT_DESC_MAX     1000
#define INV_PRICE_MAX        INT64_C(100000000000)
#define INV_QUERY_MAX        200   /* code points of a search query */
#define INV_SEARCH_MAX_DEPTH 10000 /* deepest result reachable by paging a search */

struct inv_product {
    char id[AG_UUID_STRLEN + 1];
    const char *sku;
    const char *name;
    const char *description; /* "" when none */
    struct ag_money price;
    const char *category;  /* slug, or NULL */
    const char *image_url; /* or NULL */
    bool active;
    char created_at[AG_RFC3339_LEN];
    char updated_at[AG_RFC3339_LEN];
    int64_t version;
};

struct inv_category {
    const char *slug;
    const char *name;
    const char *description; /* "" when none */
};

/* Validate a create body into 'out' (strings borrowed from 'body'). Errors
 * go to 'v'; returns true when valid. Sets no id, times or version. */
bool inv_product_from_json(struct ag_valid *v, json_t *body, struct inv_product *out);

/* Apply a partial update 'body' to 'p' (strings borrowed from 'body').
 * 'out_version' receives the body's "version" field, or -1 when absent.
 * Returns true when valid; 'p' may be partly changed when not. */
bool inv_product_patch(struct ag_valid *v, json_t *body, struct inv_product *p,
                           int64_t *out_version);

/* The product as served (new reference). */
json_t *inv_product_to_json(const struct inv_product *p);

bool inv_category_from_json(struct ag_valid *v, json_t *body, struct inv_category *out);
json_t *inv_category_to_json(const struct inv_category *c);

bool inv_sku_is_valid(const char *s);
bool inv_slug_is_valid(const char *s);
bool inv_image_url_is_valid(const char *s);

/* Turn a user's search text into a safe FTS5 query: every word becomes a
 * quoted prefix term ("word"*), all required. Returns the number of terms
 * (0: nothing searchable), or AG_ERANGE when 'q' exceeds INV_QUERY_MAX
 * code points, or AG_EINVAL for invalid UTF-8. */
int inv_search_query(const char *q, struct ag_buf *out);

/* Page cursors are opaque base64url strings: "k" + last id for listings,
 * "o" + offset for searches. */
enum inv_cursor_kind { INV_CURSOR_KEY = 0, INV_CURSOR_OFFSET };

struct inv_cursor {
    enum inv_cursor_kind kind;
    char key[AG_UUID_STRLEN + 1]; /* KEY: id of the last item of the previous page */
    int64_t offset;               /* OFFSET: items already returned */
};

void inv_cursor_encode(const struct inv_cursor *c, char *out, size_t outlen);
/* AG_EINVAL when 's' is not a cursor this service made. */
int inv_cursor_decode(const char *s, struct inv_cursor *out);

#endif /* INV_DOMAIN_H */
