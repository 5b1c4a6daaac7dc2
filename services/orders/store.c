/* SPDX-License-Identifier: MIT */
/* Orders SQL: the price replica, carts, order events and projection,
 * checkout keys and saga steps. Every statement parameterised, prepared
 * once and cached by the chassis store. Logs nothing. */
#include "agora/base.h"
#include "orders.h"

#include <string.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/time.h"

/* ---- Price replica ---- */

int
orders_store_price_upsert(struct ag_store *st, const char *product_id, const char *sku,
                          const char *name, int64_t amount, const char *currency, bool active,
                          int64_t version)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO prices (product_id, sku, name, amount, currency, active, "
                           "deleted, version) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) "
                           "ON CONFLICT (product_id) DO UPDATE SET sku = excluded.sku, "
                           "name = excluded.name, amount = excluded.amount, "
                           "currency = excluded.currency, active = excluded.active, deleted = 0, "
                           "version = excluded.version WHERE excluded.version > prices.version",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    ag_stmt_bind_cstr(s, 2, sku);
    ag_stmt_bind_cstr(s, 3, name);
    ag_stmt_bind_i64(s, 4, amount);
    ag_stmt_bind_cstr(s, 5, currency);
    ag_stmt_bind_i64(s, 6, active);
    ag_stmt_bind_i64(s, 7, version);
    return ag_stmt_exec(s);
}

int
orders_store_price_delete(struct ag_store *st, const char *product_id, int64_t version)
{
    /* A tombstone, so that an older product.updated arriving later does not
     * bring the product back. */
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO prices (product_id, sku, name, amount, currency, active, "
                           "deleted, version) VALUES ($1, '', '', 0, '', 0, 1, $2) "
                           "ON CONFLICT (product_id) DO UPDATE SET deleted = 1, active = 0, "
                           "version = excluded.version WHERE excluded.version >= prices.version",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    ag_stmt_bind_i64(s, 2, version);
    return ag_stmt_exec(s);
}

int
orders_store_price_usable(struct ag_store *st, const char *product_id, bool *out_ok)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT count(*) FROM prices WHERE product_id = $1 AND active = 1 "
                           "AND deleted = 0",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    int64_t n = 0;
    rc = ag_stmt_step_i64(s, 0, &n);
    *out_ok = n > 0;
    return rc;
}

/* ---- Carts ---- */

static json_t *
money(int64_t amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)amount, "currency", currency);
}

int
orders_store_cart_get(struct ag_store *st, const char *user_id, json_t **out_cart, json_t *lines,
                      const char **out_problem)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT c.product_id, c.quantity, p.sku, p.name, p.amount, p.currency, "
                           "p.active, p.deleted, p.product_id IS NOT NULL FROM cart_items c "
                           "LEFT JOIN prices p ON p.product_id = c.product_id "
                           "WHERE c.user_id = $1 ORDER BY c.added_at, c.product_id",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    json_t *items = json_array();
    int64_t total = 0;
    char currency[8] = "";
    bool mixed = false;
    bool unavailable = false;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        const char *pid = ag_stmt_col_text(s, 0);
        int64_t qty = ag_stmt_col_i64(s, 1);
        bool known = ag_stmt_col_i64(s, 8) != 0 && ag_stmt_col_i64(s, 7) == 0;
        bool active = known && ag_stmt_col_i64(s, 6) != 0;
        json_t *item = json_pack("{s:s, s:I, s:b}", "product_id", pid, "quantity", (json_int_t)qty,
                                 "available", active);
        if (known) {
            int64_t amount = ag_stmt_col_i64(s, 4);
            const char *cur = ag_stmt_col_text(s, 5);
            json_object_set_new(item, "sku", json_string(ag_stmt_col_text(s, 2)));
            json_object_set_new(item, "name", json_string(ag_stmt_col_text(s, 3)));
            json_object_set_new(item, "unit_price", money(amount, cur));
            json_object_set_new(item, "line_total", money(amount * qty, cur));
            if (currency[0] == '\0')
                snprintf(currency, sizeof(currency), "%s", cur);
            else if (strcmp(currency, cur) != 0)
                mixed = true;
            total += amount * qty;
            if (lines != NULL && active) {
                json_array_append_new(lines,
                                      json_pack("{s:s, s:s, s:I, s:o}", "product_id", pid, "sku",
                                                ag_stmt_col_text(s, 2), "quantity", (json_int_t)qty,
                                                "unit_price", money(amount, cur)));
            }
        } else {
            json_object_set_new(item, "sku", json_null());
            json_object_set_new(item, "name", json_null());
            json_object_set_new(item, "unit_price", json_null());
            json_object_set_new(item, "line_total", json_null());
        }
        if (!active)
            unavailable = true;
        json_array_append_new(items, item);
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(items);
        return rc;
    }
    size_t n = json_array_size(items);
    json_t *cart =
        json_pack("{s:o, s:o}", "items", items, "total",
                  n > 0 && !mixed && currency[0] != '\0' ? money(total, currency) : json_null());
    if (out_problem != NULL) {
        *out_problem = NULL;
        if (n == 0)
            *out_problem = "the cart is empty";
        else if (unavailable)
            *out_problem = "a product in the cart is no longer sold";
        else if (mixed)
            *out_problem = "the cart mixes currencies";
    }
    *out_cart = cart;
    return 0;
}

int
orders_store_cart_add(struct ag_store *st, const char *user_id, const char *product_id,
                      int64_t quantity)
{
    struct ag_stmt *s;
    /* A new line only while the cart has room for it. */
    int rc = ag_store_stmt(st,
                           "SELECT count(*) FROM cart_items WHERE user_id = $1 AND "
                           "product_id <> $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, product_id);
    int64_t others = 0;
    rc = ag_stmt_step_i64(s, 0, &others);
    if (rc != 0)
        return rc;
    if (others >= ORDERS_CART_MAX)
        return AG_ETOOBIG;
    /* Portable SQL: the time comes from here, the cap is a CASE (SQLite's
     * scalar min() is PostgreSQL's least()). */
    rc = ag_store_stmt(st,
                       "INSERT INTO cart_items (user_id, product_id, quantity, added_at) "
                       "VALUES ($1, $2, $3, $5) "
                       "ON CONFLICT (user_id, product_id) DO UPDATE SET "
                       "quantity = CASE WHEN cart_items.quantity + excluded.quantity > $4 "
                       "THEN $4 ELSE cart_items.quantity + excluded.quantity END",
                       &s);
    if (rc != 0)
        return rc;
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, product_id);
    ag_stmt_bind_i64(s, 3, quantity);
    ag_stmt_bind_i64(s, 4, ORDERS_QTY_MAX);
    ag_stmt_bind_cstr(s, 5, now);
    return ag_stmt_exec(s);
}

int
orders_store_cart_set(struct ag_store *st, const char *user_id, const char *product_id,
                      int64_t quantity)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "UPDATE cart_items SET quantity = $3 WHERE user_id = $1 AND product_id = $2", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, product_id);
    ag_stmt_bind_i64(s, 3, quantity);
    rc = ag_stmt_exec(s);
    return rc == 0 && ag_store_changes(st) == 0 ? AG_ENOENT : rc;
}

int
orders_store_cart_remove(struct ag_store *st, const char *user_id, const char *product_id)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, product_id);
    rc = ag_stmt_exec(s);
    return rc == 0 && ag_store_changes(st) == 0 ? AG_ENOENT : rc;
}

int
orders_store_cart_clear(struct ag_store *st, const char *user_id)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM cart_items WHERE user_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    return ag_stmt_exec(s);
}

/* ---- Order events and projection ---- */

int
orders_store_event_insert(struct ag_store *st, const char *order_id, int64_t version,
                          const char *type, const char *data, const char *at)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO order_events (order_id, version, type, data, created_at) "
                           "VALUES ($1, $2, $3, $4, $5)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_i64(s, 2, version);
    ag_stmt_bind_cstr(s, 3, type);
    ag_stmt_bind_cstr(s, 4, data);
    ag_stmt_bind_cstr(s, 5, at);
    return ag_stmt_exec(s);
}

int
orders_store_events(struct ag_store *st, const char *order_id, json_t **out_events)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT type, data, created_at FROM order_events WHERE order_id = $1 "
                           "ORDER BY version",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    json_t *out = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_t *data = ag_json_parse(ag_stmt_col_text(s, 1), ag_stmt_col_len(s, 1), NULL, 0);
        json_array_append_new(out, json_pack("{s:s, s:o, s:s}", "type", ag_stmt_col_text(s, 0),
                                             "data", data != NULL ? data : json_null(),
                                             "created_at", ag_stmt_col_text(s, 2)));
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(out);
        return rc;
    }
    *out_events = out;
    return 0;
}

int
orders_store_order_get(struct ag_store *st, const char *id, json_t **out_state)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT state FROM orders WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        *out_state = ag_json_parse(ag_stmt_col_text(s, 0), ag_stmt_col_len(s, 0), NULL, 0);
        if (*out_state == NULL)
            rc = AG_EIO;
    }
    ag_stmt_reset(s);
    return rc;
}

int
orders_store_order_put(struct ag_store *st, const json_t *state, int64_t expected)
{
    char *doc = json_dumps(state, JSON_COMPACT);
    struct ag_stmt *s;
    int rc;
    if (expected == 0) {
        rc = ag_store_stmt(st,
                           "INSERT INTO orders (id, user_id, status, payment_status, version, "
                           "state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                           &s);
    } else {
        rc = ag_store_stmt(st,
                           "UPDATE orders SET status = $3, payment_status = $4, version = $5, "
                           "state = $6, updated_at = $8 WHERE id = $1 AND version = $9 AND "
                           "user_id = $2 AND created_at = $7",
                           &s);
    }
    if (rc == 0) {
        ag_stmt_bind_cstr(s, 1, orders_str(state, "id"));
        ag_stmt_bind_cstr(s, 2, orders_str(state, "user_id"));
        ag_stmt_bind_cstr(s, 3, orders_str(state, "status"));
        ag_stmt_bind_cstr(s, 4, orders_str(state, "payment_status"));
        ag_stmt_bind_i64(s, 5, json_integer_value(json_object_get(state, "version")));
        ag_stmt_bind_cstr(s, 6, doc);
        ag_stmt_bind_cstr(s, 7, orders_str(state, "created_at"));
        ag_stmt_bind_cstr(s, 8, orders_str(state, "updated_at"));
        if (expected != 0)
            ag_stmt_bind_i64(s, 9, expected);
        rc = ag_stmt_exec(s);
        if (rc == 0 && ag_store_changes(st) != 1)
            rc = AG_EPRECOND; /* another writer moved the projection on */
    }
    ag_free(doc);
    return rc;
}

int
orders_store_order_list(struct ag_store *st, const char *user_id, const char *status,
                        const char *after_id, int64_t limit, json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "SELECT state FROM orders WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND "
        "(CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR id < $3) "
        "ORDER BY id DESC LIMIT $4",
        &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, status);
    ag_stmt_bind_cstr(s, 3, after_id);
    ag_stmt_bind_i64(s, 4, limit + 1);
    int64_t n = 0;
    *out_more = false;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n == limit) {
            *out_more = true;
            continue;
        }
        json_t *state = ag_json_parse(ag_stmt_col_text(s, 0), ag_stmt_col_len(s, 0), NULL, 0);
        if (state != NULL) {
            json_array_append_new(items, orders_render(state));
            json_decref(state);
        }
        n++;
    }
    ag_stmt_reset(s);
    return rc == AG_STMT_DONE ? 0 : rc;
}

int
orders_store_order_ids(struct ag_store *st, json_t *ids)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT DISTINCT order_id FROM order_events ORDER BY 1", &s);
    if (rc != 0)
        return rc;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW)
        json_array_append_new(ids, json_string(ag_stmt_col_text(s, 0)));
    ag_stmt_reset(s);
    return rc == AG_STMT_DONE ? 0 : rc;
}

/* ---- Saga steps ---- */

int
orders_store_step_get(struct ag_store *st, const char *order_id, const char *step,
                      struct orders_step *out)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT type, command, attempt, outcome IS NULL, outcome, deadline_ms FROM "
                      "saga_steps WHERE order_id = $1 AND step = $2",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, step);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        snprintf(out->order_id, sizeof(out->order_id), "%s", order_id);
        snprintf(out->step, sizeof(out->step), "%s", step);
        ag_stmt_col_copy(s, 0, out->type, sizeof(out->type));
        out->command = ag_strdup(ag_stmt_col_text(s, 1));
        out->attempt = ag_stmt_col_i64(s, 2);
        out->pending = ag_stmt_col_i64(s, 3) != 0;
        ag_stmt_col_copy(s, 4, out->outcome, sizeof(out->outcome));
        out->deadline_ms = ag_stmt_col_i64(s, 5);
    }
    ag_stmt_reset(s);
    return rc;
}

int
orders_store_step_insert(struct ag_store *st, const char *order_id, const char *step,
                         const char *type, const char *command, const char *sent_at,
                         int64_t deadline_ms)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "INSERT INTO saga_steps (order_id, step, type, command, attempt, "
                      "sent_at, deadline_ms, seq) VALUES ($1, $2, $3, $4, 1, $5, $6, "
                      "(SELECT coalesce(max(seq), 0) + 1 FROM saga_steps WHERE order_id = $1))",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, step);
    ag_stmt_bind_cstr(s, 3, type);
    ag_stmt_bind_cstr(s, 4, command);
    ag_stmt_bind_cstr(s, 5, sent_at);
    ag_stmt_bind_i64(s, 6, deadline_ms);
    return ag_stmt_exec(s);
}

int
orders_store_step_outcome(struct ag_store *st, const char *order_id, const char *step,
                          const char *outcome, const char *at, int64_t *out_n, int64_t *out_sent_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE saga_steps SET outcome = $3, outcome_at = $4 WHERE "
                           "order_id = $1 AND step = $2 AND outcome IS NULL RETURNING sent_at",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, step);
    ag_stmt_bind_cstr(s, 3, outcome);
    ag_stmt_bind_cstr(s, 4, at);
    int64_t n = 0;
    int64_t sent_ms = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        n++;
        const char *t = ag_stmt_col_text(s, 0);
        if (t == NULL || ag_time_parse_rfc3339(ag_str_from_cstr(t), &sent_ms) != 0)
            sent_ms = 0;
    }
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    if (out_n != NULL)
        *out_n = n;
    if (out_sent_ms != NULL)
        *out_sent_ms = sent_ms;
    return 0;
}

int
orders_store_step_resent(struct ag_store *st, const char *order_id, const char *step,
                         const char *sent_at, int64_t deadline_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE saga_steps SET attempt = attempt + 1, sent_at = $3, "
                           "deadline_ms = $4 WHERE order_id = $1 AND step = $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, step);
    ag_stmt_bind_cstr(s, 3, sent_at);
    ag_stmt_bind_i64(s, 4, deadline_ms);
    return ag_stmt_exec(s);
}

int
orders_store_steps(struct ag_store *st, const char *order_id, json_t **out_steps)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT step, attempt, sent_at, outcome, outcome_at FROM saga_steps "
                           "WHERE order_id = $1 ORDER BY seq",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    json_t *out = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_t *outcome =
            ag_stmt_col_is_null(s, 3) ? json_null() : json_string(ag_stmt_col_text(s, 3));
        json_t *at = ag_stmt_col_is_null(s, 4) ? json_null() : json_string(ag_stmt_col_text(s, 4));
        json_array_append_new(
            out, json_pack("{s:s, s:I, s:s, s:o, s:o}", "step", ag_stmt_col_text(s, 0), "attempt",
                           (json_int_t)ag_stmt_col_i64(s, 1), "sent_at", ag_stmt_col_text(s, 2),
                           "outcome", outcome, "outcome_at", at));
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(out);
        return rc;
    }
    *out_steps = out;
    return 0;
}

int
orders_store_steps_due(struct ag_store *st, int64_t now_ms, size_t max, json_t *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT order_id, step FROM saga_steps WHERE outcome IS NULL AND "
                           "deadline_ms <= $1 ORDER BY deadline_ms LIMIT $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    ag_stmt_bind_i64(s, 2, (int64_t)max);
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW)
        json_array_append_new(out,
                              json_pack("[s, s]", ag_stmt_col_text(s, 0), ag_stmt_col_text(s, 1)));
    ag_stmt_reset(s);
    return rc == AG_STMT_DONE ? 0 : rc;
}

int
orders_store_sagas(struct ag_store *st, bool failed, int64_t max_attempt, int64_t limit,
                   json_t *items)
{
    struct ag_stmt *s;
    /* group_concat is string_agg on PostgreSQL; the rest is portable. */
    bool pg = strcmp(ag_store_backend(st), "postgres") == 0;
    int rc =
        ag_store_stmt(st,
                      pg ? "SELECT o.id, o.status, o.created_at, string_agg(g.step, ' ') FROM "
                           "orders o JOIN saga_steps g ON g.order_id = o.id AND g.outcome IS "
                           "NULL GROUP BY o.id, o.status, o.created_at "
                           "HAVING CASE WHEN max(g.attempt) > $1 THEN 1 ELSE 0 END = $2 "
                           "ORDER BY o.id DESC LIMIT $3"
                         : "SELECT o.id, o.status, o.created_at, group_concat(g.step, ' ') FROM "
                           "orders o JOIN saga_steps g ON g.order_id = o.id AND g.outcome IS "
                           "NULL GROUP BY o.id "
                           "HAVING CASE WHEN max(g.attempt) > $1 THEN 1 ELSE 0 END = $2 "
                           "ORDER BY o.id DESC LIMIT $3",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, max_attempt);
    ag_stmt_bind_i64(s, 2, failed);
    ag_stmt_bind_i64(s, 3, limit);
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_t *steps = json_array();
        const char *list = ag_stmt_col_text(s, 3);
        while (*list != '\0') {
            const char *sp = strchr(list, ' ');
            size_t n = sp != NULL ? (size_t)(sp - list) : strlen(list);
            json_array_append_new(steps, json_stringn(list, n));
            list += n + (sp != NULL);
        }
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:o}", "order_id", ag_stmt_col_text(s, 0),
                                        "status", ag_stmt_col_text(s, 1), "created_at",
                                        ag_stmt_col_text(s, 2), "pending_steps", steps));
    }
    ag_stmt_reset(s);
    return rc == AG_STMT_DONE ? 0 : rc;
}
