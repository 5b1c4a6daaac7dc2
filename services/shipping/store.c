/* SPDX-License-Identifier: MIT */
/* Shipping SQL: every statement parameterised, prepared once and cached by
 * the chassis store. Functions log nothing; they return AG_E* codes. */
#include "agora/base.h"
#include "shipping.h"

#include <string.h>

#include "agora/err.h"

#define SHIPMENT_COLS                                                                              \
    "id, order_id, user_id, status, address, lines, carrier, tracking_number, cancel_reason, "     \
    "history, created_at, updated_at"

/* Read the current row of 's' (SHIPMENT_COLS) into 'out', text into 'pool'. */
static void
read_row(struct ag_stmt *s, struct ag_pool *pool, struct ship_shipment *out)
{
    memset(out, 0, sizeof(*out));
    ag_stmt_col_copy(s, 0, out->id, sizeof(out->id));
    ag_stmt_col_copy(s, 1, out->order_id, sizeof(out->order_id));
    ag_stmt_col_copy(s, 2, out->user_id, sizeof(out->user_id));
    enum ship_status st = SHIP_CREATED;
    const char *status = ag_stmt_col_text(s, 3);
    if (status != NULL)
        ship_status_parse(status, &st);
    out->status = st;
    out->address = ag_stmt_col_dup(s, 4, pool);
    out->lines = ag_stmt_col_dup(s, 5, pool);
    out->carrier = ag_stmt_col_dup(s, 6, pool);
    ag_stmt_col_copy(s, 7, out->tracking_number, sizeof(out->tracking_number));
    out->cancel_reason = ag_stmt_col_dup(s, 8, pool);
    out->history = ag_stmt_col_dup(s, 9, pool);
    ag_stmt_col_copy(s, 10, out->created_at, sizeof(out->created_at));
    ag_stmt_col_copy(s, 11, out->updated_at, sizeof(out->updated_at));
}

int
ship_store_insert(struct ag_store *st, const struct ship_shipment *s)
{
    struct ag_stmt *q;
    int rc = ag_store_stmt(st,
                           "INSERT INTO shipments (" SHIPMENT_COLS ") VALUES "
                           "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                           &q);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(q, 1, s->id);
    ag_stmt_bind_cstr(q, 2, s->order_id);
    ag_stmt_bind_cstr(q, 3, s->user_id);
    ag_stmt_bind_cstr(q, 4, ship_status_name(s->status));
    ag_stmt_bind_cstr(q, 5, s->address);
    ag_stmt_bind_cstr(q, 6, s->lines);
    ag_stmt_bind_cstr(q, 7, s->carrier);
    ag_stmt_bind_cstr(q, 8, s->tracking_number);
    ag_stmt_bind_cstr(q, 9, s->cancel_reason);
    ag_stmt_bind_cstr(q, 10, s->history);
    ag_stmt_bind_cstr(q, 11, s->created_at);
    ag_stmt_bind_cstr(q, 12, s->updated_at);
    rc = ag_stmt_step(q);
    ag_stmt_reset(q);
    return rc < 0 ? rc : 0;
}

static int
get_by(struct ag_store *st, const char *sql, const char *key, struct ag_pool *pool,
       struct ship_shipment *out)
{
    struct ag_stmt *q;
    int rc = ag_store_stmt(st, sql, &q);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(q, 1, key);
    rc = ag_stmt_step_one(q);
    if (rc == 0)
        read_row(q, pool, out);
    ag_stmt_reset(q);
    return rc;
}

int
ship_store_get(struct ag_store *st, const char *id, struct ag_pool *pool, struct ship_shipment *out)
{
    return get_by(st, "SELECT " SHIPMENT_COLS " FROM shipments WHERE id = $1", id, pool, out);
}

int
ship_store_get_by_order(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                        struct ship_shipment *out)
{
    return get_by(st, "SELECT " SHIPMENT_COLS " FROM shipments WHERE order_id = $1", order_id, pool,
                  out);
}

int
ship_store_set_status(struct ag_store *st, const char *id, enum ship_status from,
                      enum ship_status to, const char *carrier, const char *reason, const char *at)
{
    struct ag_stmt *q;
    /* Appending to the JSON history: SQLite's json_insert, PostgreSQL's
     * jsonb concatenation (which may reorder the object's keys). */
    bool pg = strcmp(ag_store_backend(st), "postgres") == 0;
    int rc = ag_store_stmt(
        st,
        pg ? "UPDATE shipments SET status = $3, updated_at = $4, "
             "carrier = coalesce($5, carrier), cancel_reason = coalesce($6, cancel_reason), "
             "history = (history::jsonb || jsonb_build_array(jsonb_build_object("
             "'status', $3::text, 'at', $4::text)))::text "
             "WHERE id = $1 AND status = $2"
           : "UPDATE shipments SET status = $3, updated_at = $4, "
             "carrier = coalesce($5, carrier), cancel_reason = coalesce($6, cancel_reason), "
             "history = json_insert(history, '$[#]', json_object('status', $3, 'at', $4)) "
             "WHERE id = $1 AND status = $2",
        &q);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(q, 1, id);
    ag_stmt_bind_cstr(q, 2, ship_status_name(from));
    ag_stmt_bind_cstr(q, 3, ship_status_name(to));
    ag_stmt_bind_cstr(q, 4, at);
    ag_stmt_bind_cstr(q, 5, carrier);
    ag_stmt_bind_cstr(q, 6, reason);
    rc = ag_stmt_step(q);
    ag_stmt_reset(q);
    if (rc < 0)
        return rc;
    return ag_store_changes(st) == 1 ? 0 : AG_ECONFLICT;
}

int
ship_store_list(struct ag_store *st, const struct ship_filter *f, json_t *items, bool *out_more,
                char last_id[AG_UUID_STRLEN + 1])
{
    struct ag_stmt *q;
    int rc = ag_store_stmt(st,
                           "SELECT " SHIPMENT_COLS " FROM shipments WHERE id > $1"
                           " AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)"
                           " AND (CAST($3 AS TEXT) IS NULL OR order_id = $3)"
                           " AND (CAST($4 AS TEXT) IS NULL OR status = $4)"
                           " ORDER BY id LIMIT $5",
                           &q);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(q, 1, f->after_id ? f->after_id : "");
    ag_stmt_bind_cstr(q, 2, f->user_id);
    ag_stmt_bind_cstr(q, 3, f->order_id);
    if (f->status >= 0)
        ag_stmt_bind_cstr(q, 4, ship_status_name((enum ship_status)f->status));
    else
        ag_stmt_bind_null(q, 4);
    ag_stmt_bind_i64(q, 5, f->limit + 1);
    struct ag_pool *pool = ag_pool_new(4096);
    int64_t n = 0;
    *out_more = false;
    last_id[0] = '\0';
    while ((rc = ag_stmt_step(q)) == AG_STMT_ROW) {
        if (n == f->limit) {
            *out_more = true;
            break;
        }
        struct ship_shipment s;
        read_row(q, pool, &s);
        json_array_append_new(items, ship_shipment_to_json(&s));
        memcpy(last_id, s.id, AG_UUID_STRLEN + 1);
        n++;
    }
    ag_stmt_reset(q);
    ag_pool_free(pool);
    return rc < 0 ? rc : 0;
}
