/* SPDX-License-Identifier: MIT */
/* Catalog SQL: every statement parameterised, prepared once and cached by
 * the chassis store. */
#include "agora/base.h"
#include "catalog.h"

#include <string.h>

#include "agora/err.h"

#define PRODUCT_COLS                                                                               \
    "id, sku, name, description, price_amount, currency, category, image_url, active, "            \
    "created_at, updated_at, version"

int
catalog_store_count(struct ag_store *st, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT count(*) FROM products", &s);
    return rc != 0 ? rc : ag_stmt_step_i64(s, 0, out_n);
}

int
catalog_store_product_doc(struct ag_store *st, const char *id, struct ag_pool *pool, char **out_doc,
                          size_t *out_len, int64_t *out_version)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT doc, version FROM products WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        *out_doc = ag_stmt_col_dup(s, 0, pool);
        *out_len = ag_stmt_col_len(s, 0);
        *out_version = ag_stmt_col_i64(s, 1);
    }
    ag_stmt_reset(s);
    return rc;
}

int
catalog_store_product_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                          struct catalog_product *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT " PRODUCT_COLS " FROM products WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        ag_stmt_col_copy(s, 0, out->id, sizeof(out->id));
        out->sku = ag_stmt_col_dup(s, 1, pool);
        out->name = ag_stmt_col_dup(s, 2, pool);
        out->description = ag_stmt_col_dup(s, 3, pool);
        out->price.amount = ag_stmt_col_i64(s, 4);
        ag_stmt_col_copy(s, 5, out->price.currency, sizeof(out->price.currency));
        out->category = ag_stmt_col_dup(s, 6, pool);
        out->image_url = ag_stmt_col_dup(s, 7, pool);
        out->active = ag_stmt_col_i64(s, 8) != 0;
        ag_stmt_col_copy(s, 9, out->created_at, sizeof(out->created_at));
        ag_stmt_col_copy(s, 10, out->updated_at, sizeof(out->updated_at));
        out->version = ag_stmt_col_i64(s, 11);
        if (out->description == NULL)
            out->description = "";
    }
    ag_stmt_reset(s);
    return rc;
}

static void
bind_product(struct ag_stmt *s, const struct catalog_product *p, const char *doc)
{
    ag_stmt_bind_cstr(s, 1, p->id);
    ag_stmt_bind_cstr(s, 2, p->sku);
    ag_stmt_bind_cstr(s, 3, p->name);
    ag_stmt_bind_cstr(s, 4, p->description);
    ag_stmt_bind_i64(s, 5, p->price.amount);
    ag_stmt_bind_cstr(s, 6, p->price.currency);
    ag_stmt_bind_cstr(s, 7, p->category);
    ag_stmt_bind_cstr(s, 8, p->image_url);
    ag_stmt_bind_i64(s, 9, p->active ? 1 : 0);
    ag_stmt_bind_cstr(s, 10, p->created_at);
    ag_stmt_bind_cstr(s, 11, p->updated_at);
    ag_stmt_bind_i64(s, 12, p->version);
    ag_stmt_bind_cstr(s, 13, doc);
}

int
catalog_store_product_insert(struct ag_store *st, const struct catalog_product *p, const char *doc)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO products (" PRODUCT_COLS ", doc) VALUES "
                           "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                           &s);
    if (rc != 0)
        return rc;
    bind_product(s, p, doc);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
catalog_store_product_update(struct ag_store *st, const struct catalog_product *p, int64_t expected,
                             const char *doc)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "UPDATE products SET sku = $2, name = $3, description = $4, "
                      "price_amount = $5, currency = $6, category = $7, image_url = $8, "
                      "active = $9, created_at = $10, updated_at = $11, version = $12, doc = $13 "
                      "WHERE id = $1 AND version = $14",
                      &s);
    if (rc != 0)
        return rc;
    bind_product(s, p, doc);
    ag_stmt_bind_i64(s, 14, expected);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    return ag_store_changes(st) == 1 ? 0 : AG_EPRECOND;
}

int
catalog_store_product_delete(struct ag_store *st, const char *id, int64_t expected)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st, "DELETE FROM products WHERE id = $1 AND ($2 < 0 OR version = $2)", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    ag_stmt_bind_i64(s, 2, expected);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    if (ag_store_changes(st) == 1)
        return 0;
    /* Nothing deleted: absent, or present with another version. */
    int64_t version;
    char *doc;
    size_t len;
    struct ag_pool *pool = ag_pool_new(1024);
    rc = catalog_store_product_doc(st, id, pool, &doc, &len, &version);
    ag_pool_free(pool);
    return rc == 0 ? AG_EPRECOND : rc;
}

/* The FTS5 query of catalog_search_query ("w1"* "w2"*: every word as a
 * prefix) as a PostgreSQL tsquery ('w1':* & 'w2':*). Words hold only
 * letters, digits and non-ASCII characters, so nothing needs escaping. */
static int
pg_tsquery(const char *fts, struct ag_buf *out)
{
    int rc = 0;
    bool first = true;
    for (const char *p = fts; rc == 0 && (p = strchr(p, '"')) != NULL;) {
        const char *end = strchr(p + 1, '"');
        if (end == NULL)
            break;
        if (!first)
            rc = ag_buf_append_cstr(out, " & ");
        if (rc == 0)
            rc = ag_buf_append_char(out, '\'');
        if (rc == 0)
            rc = ag_buf_append(out, p + 1, (size_t)(end - p - 1));
        if (rc == 0)
            rc = ag_buf_append_cstr(out, "':*");
        first = false;
        p = end + 1;
    }
    return rc;
}

#define LIST_FILTERS                                                                               \
    " AND (CAST($2 AS TEXT) IS NULL OR p.category = $2)"                                           \
    " AND ($3 < 0 OR p.price_amount >= $3)"                                                        \
    " AND ($4 < 0 OR p.price_amount <= $4)"                                                        \
    " AND ($5 < 0 OR p.active = $5)"                                                               \
    " AND (CAST($6 AS TEXT) IS NULL OR p.currency = $6)"

int
catalog_store_product_list(struct ag_store *st, const struct catalog_filter *f,
                           struct ag_buf *items, size_t *out_count, bool *out_more,
                           char last_id[AG_UUID_STRLEN + 1])
{
    struct ag_stmt *s;
    int rc;
    if (f->fts != NULL && strcmp(ag_store_backend(st), "postgres") == 0) {
        /* The generated tsvector column of migrations/pg/0001_init.sql;
         * ts_rank's weights {D, C, B, A} = {-, description, sku, name}
         * keep bm25's 2 : 5 : 10 proportions. */
        rc = ag_store_stmt(st,
                           "SELECT p.doc, p.id FROM products p CROSS JOIN "
                           "to_tsquery('simple', $1) AS q WHERE p.search @@ q" LIST_FILTERS
                           " ORDER BY ts_rank('{0.1, 0.2, 0.5, 1.0}', p.search, q) DESC, p.id"
                           " LIMIT $7 OFFSET $8",
                           &s);
        if (rc != 0)
            return rc;
        struct ag_buf q = AG_BUF_INIT(4096);
        rc = pg_tsquery(f->fts, &q);
        if (rc == 0)
            rc = ag_stmt_bind_cstr(s, 1, ag_buf_cstr(&q));
        ag_buf_release(&q);
        if (rc != 0) {
            ag_stmt_reset(s);
            return rc;
        }
        ag_stmt_bind_i64(s, 8, f->offset);
    } else if (f->fts != NULL) {
        rc = ag_store_stmt(st,
                           "SELECT p.doc, p.id FROM products_fts JOIN products p "
                           "ON p.seq = products_fts.rowid WHERE products_fts MATCH $1" LIST_FILTERS
                           " ORDER BY bm25(products_fts, 10.0, 2.0, 5.0), p.id LIMIT $7 OFFSET $8",
                           &s);
        if (rc != 0)
            return rc;
        ag_stmt_bind_cstr(s, 1, f->fts);
        ag_stmt_bind_i64(s, 8, f->offset);
    } else {
        rc = ag_store_stmt(st,
                           "SELECT p.doc, p.id FROM products p WHERE p.id > $1" LIST_FILTERS
                           " ORDER BY p.id LIMIT $7",
                           &s);
        if (rc != 0)
            return rc;
        ag_stmt_bind_cstr(s, 1, f->after_id ? f->after_id : "");
    }
    if (f->category)
        ag_stmt_bind_cstr(s, 2, f->category);
    else
        ag_stmt_bind_null(s, 2);
    ag_stmt_bind_i64(s, 3, f->min_price);
    ag_stmt_bind_i64(s, 4, f->max_price);
    ag_stmt_bind_i64(s, 5, f->active);
    if (f->currency)
        ag_stmt_bind_cstr(s, 6, f->currency);
    else
        ag_stmt_bind_null(s, 6);
    ag_stmt_bind_i64(s, 7, f->limit + 1);

    size_t n = 0;
    *out_more = false;
    last_id[0] = '\0';
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if ((int64_t)n == f->limit) {
            *out_more = true;
            break;
        }
        if (n > 0)
            ag_buf_append_char(items, ',');
        ag_buf_append(items, ag_stmt_col_text(s, 0), ag_stmt_col_len(s, 0));
        ag_stmt_col_copy(s, 1, last_id, AG_UUID_STRLEN + 1);
        n++;
    }
    ag_stmt_reset(s);
    *out_count = n;
    return rc < 0 ? rc : 0;
}

int
catalog_store_category_exists(struct ag_store *st, const char *slug, bool *out_exists)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT 1 FROM categories WHERE slug = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, slug);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    *out_exists = rc == AG_STMT_ROW;
    return 0;
}

int
catalog_store_category_insert(struct ag_store *st, const struct catalog_category *c,
                              const char *created_at)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO categories (slug, name, description, created_at) "
                           "VALUES ($1, $2, $3, $4)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, c->slug);
    ag_stmt_bind_cstr(s, 2, c->name);
    ag_stmt_bind_cstr(s, 3, c->description);
    ag_stmt_bind_cstr(s, 4, created_at);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
catalog_store_category_get(struct ag_store *st, const char *slug, struct ag_pool *pool,
                           struct catalog_category *out)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st, "SELECT slug, name, description FROM categories WHERE slug = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, slug);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        out->slug = ag_stmt_col_dup(s, 0, pool);
        out->name = ag_stmt_col_dup(s, 1, pool);
        out->description = ag_stmt_col_dup(s, 2, pool);
    }
    ag_stmt_reset(s);
    return rc;
}

int
catalog_store_category_list(struct ag_store *st, json_t **out_items)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "SELECT slug, name, description FROM categories ORDER BY slug LIMIT $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, CATALOG_CATEGORIES_MAX);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        struct catalog_category c = {
            .slug = ag_stmt_col_text(s, 0),
            .name = ag_stmt_col_text(s, 1),
            .description = ag_stmt_col_text(s, 2),
        };
        json_array_append_new(items, catalog_category_to_json(&c));
    }
    ag_stmt_reset(s);
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    *out_items = items;
    return 0;
}

int
catalog_store_category_delete(struct ag_store *st, const char *slug)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM categories WHERE slug = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, slug);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc; /* a foreign key from products gives AG_ECONFLICT */
    return ag_store_changes(st) == 1 ? 0 : AG_ENOENT;
}
