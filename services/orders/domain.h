/* SPDX-License-Identifier: MIT */
/* Orders domain: the product and category model, validation of what clients
 * send, the JSON representation, search-query and cursor encoding. Pure
 * functions: no I/O, no database, no clock. */
#ifndef ORDERS_DOMAIN_H
#define ORDERS_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/money.h"
#include "agora/str.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define ORDERS_SKU_MAX          64
#define ORDERS_NAME_MAX         200
#define ORDERS_DESCRIPTION_MAX  5000
#define ORDERS_URL_MAX          2048
#define ORDERS_SLUG_MAX         64
#define ORDERS_CAT_NAME_MAX     100
#define ORDERS_CAT_DESC_MAX     1000
#define ORDERS_PRICE_MAX        INT64_C(100000000000)
#define ORDERS_QUERY_MAX        200   /* code points of a search query */
#define ORDERS_SEARCH_MAX_DEPTH 10000 /* deepest result reachable by paging a search */

struct orders_product {
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

struct orders_category {
    const char *slug;
    const char *name;
    const char *description; /* "" when none */
};

/* Validate a create body into 'out' (strings borrowed from 'body'). Errors
 * go to 'v'; returns true when valid. Sets no id, times or version. */
bool orders_product_from_json(struct ag_valid *v, json_t *body, struct orders_product *out);

/* Apply a partial update 'body' to 'p' (strings borrowed from 'body').
 * 'out_version' receives the body's "version" field, or -1 when absent.
 * Returns true when valid; 'p' may be partly changed when not. */
bool orders_product_patch(struct ag_valid *v, json_t *body, struct orders_product *p,
                           int64_t *out_version);

/* The product as served (new reference). */
json_t *orders_product_to_json(const struct orders_product *p);

bool orders_category_from_json(struct ag_valid *v, json_t *body, struct orders_category *out);
json_t *orders_category_to_json(const struct orders_category *c);

bool orders_sku_is_valid(const char *s);
bool orders_slug_is_valid(const char *s);
bool orders_image_url_is_valid(const char *s);

/* Turn a user's search text into a safe FTS5 query: every word becomes a
 * quoted prefix term ("word"*), all required. Returns the number of terms
 * (0: nothing searchable), or AG_ERANGE when 'q' exceeds ORDERS_QUERY_MAX
 * code points, or AG_EINVAL for invalid UTF-8. */
int orders_search_query(const char *q, struct ag_buf *out);

/* Page cursors are opaque base64url strings: "k" + last id for listings,
 * "o" + offset for searches. */
enum orders_cursor_kind { ORDERS_CURSOR_KEY = 0, ORDERS_CURSOR_OFFSET };

struct orders_cursor {
    enum orders_cursor_kind kind;
    char key[AG_UUID_STRLEN + 1]; /* KEY: id of the last item of the previous page */
    int64_t offset;               /* OFFSET: items already returned */
};

void orders_cursor_encode(const struct orders_cursor *c, char *out, size_t outlen);
/* AG_EINVAL when 's' is not a cursor this service made. */
int orders_cursor_decode(const char *s, struct orders_cursor *out);

#endif /* ORDERS_DOMAIN_H */
