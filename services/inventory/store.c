/* SPDX-License-Identifier: MIT */
/* Inventory SQL: every statement parameterised, prepared once and cached by
 * the chassis store. Store functions log nothing. */
#include "agora/base.h"
#include "inventory.h"

#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"

#define STOCK_COLS                                                                                 \
    "product_id, on_hand, reserved, low_threshold, active, version, created_at, updated_at"
#define RES_COLS                                                                                   \
    "id, order_id, state, created_at, expires_at, expires_ms, committed_at, released_at, "         \
    "release_reason, reserve_reply, commit_reply, release_reply, restocked_at, restock_reply"

/* ---- Stock ---- */

int
inv_store_stock_get(struct ag_store *st, const char *product_id, struct inv_stock *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT " STOCK_COLS " FROM stock WHERE product_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        memset(out, 0, sizeof(*out));
        ag_stmt_col_copy(s, 0, out->product_id, sizeof(out->product_id));
        out->on_hand = ag_stmt_col_i64(s, 1);
        out->reserved = ag_stmt_col_i64(s, 2);
        out->low_threshold = ag_stmt_col_is_null(s, 3) ? -1 : ag_stmt_col_i64(s, 3);
        out->active = ag_stmt_col_i64(s, 4) != 0;
        out->version = ag_stmt_col_i64(s, 5);
        ag_stmt_col_copy(s, 6, out->created_at, sizeof(out->created_at));
        ag_stmt_col_copy(s, 7, out->updated_at, sizeof(out->updated_at));
    }
    ag_stmt_reset(s);
    return rc;
}

int
inv_store_stock_insert(struct ag_store *st, const char *product_id, const char *now)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO stock (product_id, created_at, updated_at) "
                           "VALUES ($1, $2, $2)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    ag_stmt_bind_cstr(s, 2, now);
    return ag_stmt_exec(s);
}

int
inv_store_stock_update(struct ag_store *st, const struct inv_stock *v, const char *now)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE stock SET on_hand = $2, reserved = $3, low_threshold = $4, "
                           "active = $5, version = version + 1, updated_at = $6 "
                           "WHERE product_id = $1 AND version = $7",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, v->product_id);
    ag_stmt_bind_i64(s, 2, v->on_hand);
    ag_stmt_bind_i64(s, 3, v->reserved);
    if (v->low_threshold < 0)
        ag_stmt_bind_null(s, 4);
    else
        ag_stmt_bind_i64(s, 4, v->low_threshold);
    ag_stmt_bind_i64(s, 5, v->active ? 1 : 0);
    ag_stmt_bind_cstr(s, 6, now);
    ag_stmt_bind_i64(s, 7, v->version);
    rc = ag_stmt_exec(s);
    if (rc == 0 && ag_store_changes(st) != 1)
        rc = AG_EPRECOND;
    return rc;
}

int
inv_store_stock_reserved_total(struct ag_store *st, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT CAST(coalesce(sum(reserved), 0) AS BIGINT) FROM stock", &s);
    return rc != 0 ? rc : ag_stmt_step_i64(s, 0, out_n);
}

/* ---- Movements ---- */

int
inv_store_movement_insert(struct ag_store *st, const char *product_id, const struct inv_movement *m,
                          int64_t on_hand, int64_t reserved, const char *now)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO movements (id, product_id, kind, on_hand_delta, "
                           "reserved_delta, on_hand, reserved, reason, order_id, actor, "
                           "created_at) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, m->id);
    ag_stmt_bind_cstr(s, 2, product_id);
    ag_stmt_bind_cstr(s, 3, m->kind);
    ag_stmt_bind_i64(s, 4, m->on_hand_delta);
    ag_stmt_bind_i64(s, 5, m->reserved_delta);
    ag_stmt_bind_i64(s, 6, on_hand);
    ag_stmt_bind_i64(s, 7, reserved);
    ag_stmt_bind_cstr(s, 8, m->reason ? m->reason : "");
    ag_stmt_bind_cstr(s, 9, m->order_id);
    ag_stmt_bind_cstr(s, 10, m->actor);
    ag_stmt_bind_cstr(s, 11, now);
    return ag_stmt_exec(s);
}

static json_t *
movement_row(struct ag_stmt *s)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "id", ag_stmt_col_text(s, 0), "product_id",
        ag_stmt_col_text(s, 1), "kind", ag_stmt_col_text(s, 2), "on_hand_delta",
        (json_int_t)ag_stmt_col_i64(s, 3), "reserved_delta", (json_int_t)ag_stmt_col_i64(s, 4),
        "on_hand", (json_int_t)ag_stmt_col_i64(s, 5), "reserved", (json_int_t)ag_stmt_col_i64(s, 6),
        "reason", ag_stmt_col_text(s, 7), "created_at", ag_stmt_col_text(s, 10));
    for (int i = 8; i <= 9; i++) {
        const char *name = i == 8 ? "order_id" : "actor";
        json_object_set_new(
            j, name, ag_stmt_col_is_null(s, i) ? json_null() : json_string(ag_stmt_col_text(s, i)));
    }
    return j;
}

#define MOVEMENT_COLS                                                                              \
    "id, product_id, kind, on_hand_delta, reserved_delta, on_hand, reserved, reason, order_id, "   \
    "actor, created_at"

int
inv_store_movement_list(struct ag_store *st, const char *product_id, const char *after_id,
                        int64_t limit, json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT " MOVEMENT_COLS " FROM movements WHERE product_id = $1 "
                           "AND (CAST($2 AS TEXT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id);
    ag_stmt_bind_cstr(s, 2, after_id);
    ag_stmt_bind_i64(s, 3, limit + 1);
    *out_more = false;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if ((int64_t)json_array_size(items) == limit) {
            *out_more = true;
            break;
        }
        json_array_append_new(items, movement_row(s));
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

/* ---- Reservations ---- */

static void
read_reservation(struct ag_stmt *s, struct ag_pool *pool, struct inv_reservation *out)
{
    memset(out, 0, sizeof(*out));
    ag_stmt_col_copy(s, 0, out->id, sizeof(out->id));
    ag_stmt_col_copy(s, 1, out->order_id, sizeof(out->order_id));
    ag_stmt_col_copy(s, 2, out->state, sizeof(out->state));
    ag_stmt_col_copy(s, 3, out->created_at, sizeof(out->created_at));
    ag_stmt_col_copy(s, 4, out->expires_at, sizeof(out->expires_at));
    out->expires_ms = ag_stmt_col_i64(s, 5);
    ag_stmt_col_copy(s, 6, out->committed_at, sizeof(out->committed_at));
    ag_stmt_col_copy(s, 7, out->released_at, sizeof(out->released_at));
    ag_stmt_col_copy(s, 8, out->release_reason, sizeof(out->release_reason));
    out->reserve_reply = ag_stmt_col_dup(s, 9, pool);
    out->commit_reply = ag_stmt_col_dup(s, 10, pool);
    out->release_reply = ag_stmt_col_dup(s, 11, pool);
    ag_stmt_col_copy(s, 12, out->restocked_at, sizeof(out->restocked_at));
    out->restock_reply = ag_stmt_col_dup(s, 13, pool);
}

static int
reservation_where(struct ag_store *st, const char *sql, const char *key, struct ag_pool *pool,
                  struct inv_reservation *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, sql, &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_reservation(s, pool, out);
    ag_stmt_reset(s);
    return rc;
}

int
inv_store_reservation_by_order(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                               struct inv_reservation *out)
{
    return reservation_where(st, "SELECT " RES_COLS " FROM reservations WHERE order_id = $1",
                             order_id, pool, out);
}

int
inv_store_reservation_by_id(struct ag_store *st, const char *id, struct ag_pool *pool,
                            struct inv_reservation *out)
{
    return reservation_where(st, "SELECT " RES_COLS " FROM reservations WHERE id = $1", id, pool,
                             out);
}

static const char *
nonempty(const char *s)
{
    return s[0] != '\0' ? s : NULL;
}

int
inv_store_reservation_insert(struct ag_store *st, const struct inv_reservation *r)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO reservations (" RES_COLS ") VALUES "
                           "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, r->id);
    ag_stmt_bind_cstr(s, 2, r->order_id);
    ag_stmt_bind_cstr(s, 3, r->state);
    ag_stmt_bind_cstr(s, 4, r->created_at);
    ag_stmt_bind_cstr(s, 5, r->expires_at);
    ag_stmt_bind_i64(s, 6, r->expires_ms);
    ag_stmt_bind_cstr(s, 7, nonempty(r->committed_at));
    ag_stmt_bind_cstr(s, 8, nonempty(r->released_at));
    ag_stmt_bind_cstr(s, 9, nonempty(r->release_reason));
    ag_stmt_bind_cstr(s, 10, r->reserve_reply);
    ag_stmt_bind_cstr(s, 11, r->commit_reply);
    ag_stmt_bind_cstr(s, 12, r->release_reply);
    ag_stmt_bind_cstr(s, 13, nonempty(r->restocked_at));
    ag_stmt_bind_cstr(s, 14, r->restock_reply);
    return ag_stmt_exec(s);
}

int
inv_store_reservation_update(struct ag_store *st, const struct inv_reservation *r)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "UPDATE reservations SET state = $2, committed_at = $3, "
                      "released_at = $4, release_reason = $5, commit_reply = $6, "
                      "release_reply = $7, restocked_at = $8, restock_reply = $9 WHERE id = $1",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, r->id);
    ag_stmt_bind_cstr(s, 2, r->state);
    ag_stmt_bind_cstr(s, 3, nonempty(r->committed_at));
    ag_stmt_bind_cstr(s, 4, nonempty(r->released_at));
    ag_stmt_bind_cstr(s, 5, nonempty(r->release_reason));
    ag_stmt_bind_cstr(s, 6, r->commit_reply);
    ag_stmt_bind_cstr(s, 7, r->release_reply);
    ag_stmt_bind_cstr(s, 8, nonempty(r->restocked_at));
    ag_stmt_bind_cstr(s, 9, r->restock_reply);
    rc = ag_stmt_exec(s);
    if (rc == 0 && ag_store_changes(st) != 1)
        rc = AG_ENOENT;
    return rc;
}

int
inv_store_reservation_due(struct ag_store *st, int64_t now_ms, size_t max,
                          char (*out_ids)[AG_UUID_STRLEN + 1], size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT order_id FROM reservations WHERE state = 'held' "
                           "AND expires_ms <= $1 ORDER BY expires_ms LIMIT $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    ag_stmt_bind_i64(s, 2, (int64_t)max);
    *out_n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW && *out_n < max)
        ag_stmt_col_copy(s, 0, out_ids[(*out_n)++], AG_UUID_STRLEN + 1);
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
inv_store_reservation_list(struct ag_store *st, const char *order_id, const char *after_id,
                           int64_t limit, struct ag_pool *pool, json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "SELECT " RES_COLS " FROM reservations WHERE "
        "(CAST($1 AS TEXT) IS NULL OR order_id = $1) AND (CAST($2 AS TEXT) IS NULL OR id < $2) "
        "ORDER BY id DESC LIMIT $3",
        &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, after_id);
    ag_stmt_bind_i64(s, 3, limit + 1);
    *out_more = false;
    /* Read the rows first: rendering one reads its lines with another
     * statement. */
    struct inv_reservation *rows = ag_pool_alloc(pool, sizeof(*rows) * (size_t)(limit + 1));
    size_t n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if ((int64_t)n == limit) {
            *out_more = true;
            break;
        }
        read_reservation(s, pool, &rows[n++]);
    }
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *j;
        rc = inv_reservation_json(st, &rows[i], &j);
        if (rc != 0)
            return rc;
        json_array_append_new(items, j);
    }
    return 0;
}

int
inv_store_line_insert(struct ag_store *st, const char *reservation_id, const struct inv_line *l)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO reservation_lines (reservation_id, product_id, quantity, "
                           "line_no) VALUES ($1, $2, $3, (SELECT coalesce(max(line_no), 0) + 1 "
                           "FROM reservation_lines WHERE reservation_id = $1))",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, reservation_id);
    ag_stmt_bind_cstr(s, 2, l->product_id);
    ag_stmt_bind_i64(s, 3, l->quantity);
    return ag_stmt_exec(s);
}

int
inv_store_lines_get(struct ag_store *st, const char *reservation_id, struct inv_line *out,
                    size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT product_id, quantity FROM reservation_lines "
                           "WHERE reservation_id = $1 ORDER BY line_no",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, reservation_id);
    *out_n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW && *out_n < INV_LINES_MAX) {
        ag_stmt_col_copy(s, 0, out[*out_n].product_id, sizeof(out[*out_n].product_id));
        out[*out_n].quantity = ag_stmt_col_i64(s, 1);
        (*out_n)++;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}
