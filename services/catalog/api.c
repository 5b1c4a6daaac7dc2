/* SPDX-License-Identifier: MIT */
/* Catalog HTTP handlers and the route table. Handlers validate with the
 * domain, talk to store.c, and answer JSON or problem+json. */
#include "agora/base.h"
#include "catalog.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/trace.h"

#define JSON_TYPE "application/json"

/* ---- Helpers ---- */

/* ---- Products ---- */

int
catalog_create_product(struct ag_store *store, struct ag_events *ev, struct catalog_product *p,
                       const char *traceparent, struct ag_buf *doc)
{
    ag_uuid7(p->id);
    ag_time_rfc3339(ag_time_unix_ms(), p->created_at);
    memcpy(p->updated_at, p->created_at, sizeof(p->updated_at));
    p->version = 1;
    if (p->category != NULL) {
        bool exists;
        int rc = catalog_store_category_exists(store, p->category, &exists);
        if (rc != 0)
            return rc;
        if (!exists)
            return AG_ECONFLICT;
    }
    json_t *j = catalog_product_to_json(p);
    struct ag_buf buf = AG_BUF_INIT(0);
    ag_json_dump(j, &buf);
    int rc = catalog_store_product_insert(store, p, ag_buf_cstr(&buf));
    if (rc == 0)
        rc = catalog_events_product_created(ev, p, j, traceparent);
    json_decref(j);
    if (rc == 0 && doc != NULL)
        ag_buf_append(doc, buf.data, buf.len);
    ag_buf_release(&buf);
    return rc;
}

/* ---- Transactions of the write handlers ---- */

struct create_tx {
    struct catalog *cat;
    struct catalog_product *p;
    const char *traceparent;
    struct ag_buf *doc;
};

static int
create_tx_fn(struct ag_store *store, void *arg)
{
    struct create_tx *t = arg;
    return catalog_create_product(store, t->cat->events, t->p, t->traceparent, t->doc);
}

struct update_tx {
    struct catalog *cat;
    const struct catalog_product *p;
    int64_t expected;
    const json_t *json;
    const char *doc;
    const char *traceparent;
};

static int
update_tx_fn(struct ag_store *store, void *arg)
{
    struct update_tx *t = arg;
    int rc = catalog_store_product_update(store, t->p, t->expected, t->doc);
    if (rc == 0)
        rc = catalog_events_product_updated(t->cat->events, t->p, t->json, t->traceparent);
    return rc;
}

struct delete_tx {
    struct catalog *cat;
    const struct catalog_product *p;
    int64_t expected;
    const char *traceparent;
};

static int
delete_tx_fn(struct ag_store *store, void *arg)
{
    struct delete_tx *t = arg;
    int rc = catalog_store_product_delete(store, t->p->id, t->expected);
    if (rc == 0)
        rc = catalog_events_product_deleted(t->cat->events, t->p, t->traceparent);
    return rc;
}

static void
unknown_category(struct ag_http_req *req, const char *slug)
{
    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_error(&v, "category", "unknown", "no category '%s'", slug);
    ag_send_invalid(req, &v);
    ag_valid_release(&v);
}

static void
create_product(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct catalog_product p;
    if (!catalog_product_from_json(&v, body, &p)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct ag_buf doc = AG_BUF_INIT(0);
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    struct create_tx t = { .cat = cat, .p = &p, .traceparent = tp, .doc = &doc };
    int rc = ag_store_tx(cat->store, create_tx_fn, &t);
    if (rc == 0) {
        catalog_events_kick(cat->events);
        char loc[64];
        snprintf(loc, sizeof(loc), "/v1/products/%s", p.id);
        ag_http_resp_header(req, "Location", loc);
        ag_resp_set_etag(req, p.version);
        size_t len;
        char *data = ag_buf_detach(&doc, &len);
        ag_http_send_take(req, 201, JSON_TYPE, data, len);
        return;
    }
    ag_buf_release(&doc);
    if (rc == AG_EEXIST)
        ag_send_error(req, AG_EEXIST, "a product with sku '%s' exists", p.sku);
    else if (rc == AG_ECONFLICT)
        unknown_category(req, p.category);
    else
        ag_send_store_error(req, rc, "product");
}

static void
get_product(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const char *id = ag_req_uuid_param(req, "id", "product");
    if (id == NULL)
        return;
    char *doc;
    size_t len;
    int64_t version;
    int rc = catalog_store_product_doc(cat->store, id, req->pool, &doc, &len, &version);
    if (rc != 0) {
        ag_send_store_error(req, rc, "product");
        return;
    }
    ag_resp_set_etag(req, version);
    struct ag_str inm = ag_http_req_header(req, "If-None-Match");
    if (inm.len > 0 && ag_etag_list_matches(inm, version, true)) {
        ag_http_send(req, 304, NULL, NULL, 0);
        return;
    }
    ag_http_send(req, 200, JSON_TYPE, doc, len);
}

static void
update_product(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const char *id = ag_req_uuid_param(req, "id", "product");
    if (id == NULL)
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct catalog_product p;
    int rc = catalog_store_product_get(cat->store, id, req->pool, &p);
    if (rc != 0) {
        ag_send_store_error(req, rc, "product");
        return;
    }
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t body_version;
    if (!catalog_product_patch(&v, body, &p, &body_version)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);

    struct ag_str if_match = ag_http_req_header(req, "If-Match");
    if (if_match.len == 0 && body_version < 0) {
        ag_send_error(req, AG_EPRECONDREQ,
                      "send If-Match with the product's ETag, or its version in the body");
        return;
    }
    if ((if_match.len > 0 && !ag_etag_list_matches(if_match, p.version, false)) ||
        (body_version >= 0 && body_version != p.version)) {
        ag_resp_set_etag(req, p.version);
        ag_send_error(req, AG_EPRECOND, "the product changed; its current version is %lld",
                      (long long)p.version);
        return;
    }
    if (p.category != NULL) {
        bool exists;
        rc = catalog_store_category_exists(cat->store, p.category, &exists);
        if (rc != 0) {
            ag_send_store_error(req, rc, "category");
            return;
        }
        if (!exists) {
            unknown_category(req, p.category);
            return;
        }
    }
    int64_t expected = p.version;
    p.version++;
    ag_time_rfc3339(ag_time_unix_ms(), p.updated_at);
    json_t *j = catalog_product_to_json(&p);
    struct ag_buf doc = AG_BUF_INIT(0);
    ag_json_dump(j, &doc);
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    struct update_tx t = {
        .cat = cat,
        .p = &p,
        .expected = expected,
        .json = j,
        .doc = ag_buf_cstr(&doc),
        .traceparent = tp,
    };
    rc = ag_store_tx(cat->store, update_tx_fn, &t);
    json_decref(j);
    if (rc == 0) {
        catalog_events_kick(cat->events);
        ag_resp_set_etag(req, p.version);
        size_t len;
        char *data = ag_buf_detach(&doc, &len);
        ag_http_send_take(req, 200, JSON_TYPE, data, len);
        return;
    }
    ag_buf_release(&doc);
    if (rc == AG_EEXIST)
        ag_send_error(req, AG_EEXIST, "a product with sku '%s' exists", p.sku);
    else if (rc == AG_EPRECOND)
        ag_send_error(req, AG_EPRECOND, "the product changed while it was being updated");
    else
        ag_send_store_error(req, rc, "product");
}

static void
delete_product(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const char *id = ag_req_uuid_param(req, "id", "product");
    if (id == NULL)
        return;
    struct catalog_product p;
    int rc = catalog_store_product_get(cat->store, id, req->pool, &p);
    if (rc != 0) {
        ag_send_store_error(req, rc, "product");
        return;
    }
    struct ag_str if_match = ag_http_req_header(req, "If-Match");
    if (if_match.len > 0 && !ag_etag_list_matches(if_match, p.version, false)) {
        ag_send_error(req, AG_EPRECOND, "the product changed; its current version is %lld",
                      (long long)p.version);
        return;
    }
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    /* Delete exactly the version read, so the event describes what went. */
    struct delete_tx t = { .cat = cat, .p = &p, .expected = p.version, .traceparent = tp };
    rc = ag_store_tx(cat->store, delete_tx_fn, &t);
    if (rc == 0) {
        catalog_events_kick(cat->events);
        ag_send_no_content(req);
    } else if (rc == AG_EPRECOND) {
        ag_send_error(req, AG_EPRECOND, "the product changed while it was being deleted");
    } else {
        ag_send_store_error(req, rc, "product");
    }
}

/* A list page with its ETag, or 304 when the client holds it already. */
static void
send_list_page(struct ag_http_req *req, const char *body, size_t len, const char *etag)
{
    ag_http_resp_header(req, "ETag", etag);
    struct ag_str inm = ag_http_req_header(req, "If-None-Match");
    if (inm.len > 0 && ag_etag_list_has(inm, etag, true)) {
        ag_http_send(req, 304, NULL, NULL, 0);
        return;
    }
    ag_http_send(req, 200, JSON_TYPE, body, len);
}

static void
list_products(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    struct catalog_filter f = {
        .min_price = -1,
        .max_price = -1,
        .active = -1,
        .limit = CATALOG_PAGE_DEFAULT,
    };
    if (ag_req_query_int(req, "limit", 1, CATALOG_PAGE_MAX, &f.limit) != 0 ||
        ag_req_query_int(req, "min_price", 0, CATALOG_PRICE_MAX, &f.min_price) != 0 ||
        ag_req_query_int(req, "max_price", 0, CATALOG_PRICE_MAX, &f.max_price) != 0)
        return;
    const char *active = ag_query_get(q, "active");
    if (active != NULL) {
        if (strcmp(active, "true") == 0) {
            f.active = 1;
        } else if (strcmp(active, "false") == 0) {
            f.active = 0;
        } else {
            ag_send_error(req, AG_EQUERY, "query parameter 'active' must be true or false");
            return;
        }
    }
    f.category = ag_query_get(q, "category");
    if (f.category != NULL && !catalog_slug_is_valid(f.category)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'category' must be a category slug");
        return;
    }
    f.currency = ag_query_get(q, "currency");
    if (f.currency != NULL && !ag_currency_is_valid(f.currency)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'currency' must be an ISO 4217 code");
        return;
    }
    const char *search = ag_query_get(q, "q");
    struct ag_buf fts = AG_BUF_INIT(8192);
    if (search != NULL) {
        int terms = catalog_search_query(search, &fts);
        if (terms < 0) {
            ag_buf_release(&fts);
            ag_send_error(req, AG_EQUERY,
                          "query parameter 'q' must be valid UTF-8 of at most %d characters",
                          CATALOG_QUERY_MAX);
            return;
        }
        if (terms == 0) {
            ag_buf_release(&fts);
            ag_send_json(req, 200, json_pack("{s:[], s:n}", "items", "next_cursor"));
            return;
        }
        f.fts = ag_buf_cstr(&fts);
    }
    const char *cursor = ag_query_get(q, "cursor");
    if (cursor != NULL) {
        struct catalog_cursor c;
        enum catalog_cursor_kind want = f.fts ? CATALOG_CURSOR_OFFSET : CATALOG_CURSOR_KEY;
        if (catalog_cursor_decode(cursor, &c) != 0 || c.kind != want) {
            ag_buf_release(&fts);
            ag_send_error(req, AG_EQUERY,
                          "query parameter 'cursor' is not a cursor from this listing");
            return;
        }
        if (c.kind == CATALOG_CURSOR_KEY)
            f.after_id = ag_pool_strdup(req->pool, c.key);
        else
            f.offset = c.offset;
    }

    /* A page rendered since the last write is served as it is. */
    uint64_t version = 0;
    bool cacheable = f.fts == NULL;
    if (cacheable) {
        const char *body;
        const char *etag;
        size_t blen;
        if (catalog_list_cache_lookup(cat, req->query, &version, &body, &blen, &etag)) {
            ag_buf_release(&fts);
            send_list_page(req, body, blen, etag);
            return;
        }
    }

    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"items\":[");
    size_t count;
    bool more;
    char last_id[AG_UUID_STRLEN + 1];
    int rc = catalog_store_product_list(cat->store, &f, &out, &count, &more, last_id);
    ag_buf_release(&fts);
    if (rc != 0) {
        ag_buf_release(&out);
        ag_send_store_error(req, rc, "product list");
        return;
    }
    ag_buf_append_cstr(&out, "],\"next_cursor\":");
    struct catalog_cursor next = { .kind = f.fts ? CATALOG_CURSOR_OFFSET : CATALOG_CURSOR_KEY };
    if (more && f.fts != NULL)
        next.offset = f.offset + (int64_t)count;
    if (more && (f.fts == NULL || next.offset <= CATALOG_SEARCH_MAX_DEPTH)) {
        memcpy(next.key, last_id, sizeof(next.key));
        char enc[96];
        catalog_cursor_encode(&next, enc, sizeof(enc));
        ag_buf_appendf(&out, "\"%s\"}", enc);
    } else {
        ag_buf_append_cstr(&out, "null}");
    }
    const char *etag =
        cacheable ? catalog_list_cache_store(cat, req->query, version, out.data, out.len) : NULL;
    if (etag != NULL) {
        send_list_page(req, out.data, out.len, etag);
        ag_buf_release(&out);
        return;
    }
    size_t len;
    char *data = ag_buf_detach(&out, &len);
    ag_http_send_take(req, 200, JSON_TYPE, data, len);
}

/* ---- Categories ---- */

static void
list_categories(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    json_t *items;
    int rc = catalog_store_category_list(cat->store, &items);
    if (rc != 0) {
        ag_send_store_error(req, rc, "category list");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:o}", "items", items));
}

static void
create_category(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct catalog_category c;
    if (!catalog_category_from_json(&v, body, &c)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    int rc = catalog_store_category_insert(cat->store, &c, now);
    if (rc == AG_EEXIST) {
        ag_send_error(req, AG_EEXIST, "category '%s' exists", c.slug);
        return;
    }
    if (rc != 0) {
        ag_send_store_error(req, rc, "category");
        return;
    }
    char loc[96];
    snprintf(loc, sizeof(loc), "/v1/categories/%s", c.slug);
    ag_http_resp_header(req, "Location", loc);
    ag_send_json(req, 201, catalog_category_to_json(&c));
}

static const char *
slug_param(struct ag_http_req *req)
{
    const char *slug = ag_req_param(req, "slug");
    if (slug == NULL || !catalog_slug_is_valid(slug)) {
        ag_send_error(req, AG_ENOENT, "no such category");
        return NULL;
    }
    return slug;
}

static void
get_category(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const char *slug = slug_param(req);
    if (slug == NULL)
        return;
    struct catalog_category c;
    int rc = catalog_store_category_get(cat->store, slug, req->pool, &c);
    if (rc != 0) {
        ag_send_store_error(req, rc, "category");
        return;
    }
    ag_send_json(req, 200, catalog_category_to_json(&c));
}

static void
delete_category(struct ag_http_req *req, void *udata)
{
    struct catalog *cat = udata;
    const char *slug = slug_param(req);
    if (slug == NULL)
        return;
    int rc = catalog_store_category_delete(cat->store, slug);
    if (rc == 0)
        ag_send_no_content(req);
    else if (rc == AG_ECONFLICT)
        ag_send_error(req, AG_ECONFLICT, "products still belong to category '%s'", slug);
    else
        ag_send_store_error(req, rc, "category");
}

const struct ag_route catalog_routes[] = {
    { "GET", "/v1/products", list_products, AG_ROLE_PUBLIC },
    { "POST", "/v1/products", create_product, AG_ROLE_ADMIN },
    { "GET", "/v1/products/{id}", get_product, AG_ROLE_PUBLIC },
    { "PATCH", "/v1/products/{id}", update_product, AG_ROLE_ADMIN },
    { "DELETE", "/v1/products/{id}", delete_product, AG_ROLE_ADMIN },
    { "GET", "/v1/categories", list_categories, AG_ROLE_PUBLIC },
    { "POST", "/v1/categories", create_category, AG_ROLE_ADMIN },
    { "GET", "/v1/categories/{slug}", get_category, AG_ROLE_PUBLIC },
    { "DELETE", "/v1/categories/{slug}", delete_category, AG_ROLE_ADMIN },
};
const size_t catalog_nroutes = AG_ARRAY_SIZE(catalog_routes);
