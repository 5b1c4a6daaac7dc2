/* SPDX-License-Identifier: MIT */
/* Analytics SQL: the event log, the projection tables and the report
 * queries; every statement parameterised, prepared once and cached by the
 * chassis store. Portable SQL (SQLite now, PostgreSQL later). */
#include "agora/base.h"
#include "analytics.h"

#include <string.h>

#include "agora/err.h"

/* ---- Event log ---- */

int
an_store_event_append(struct ag_store *st, const struct an_event *e, const char *data,
                      int64_t received_ms)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "INSERT INTO analytics_events (id, type, subject, event_time, time_ms, data, "
                      "received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                      "ON CONFLICT (id) DO NOTHING",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, e->id);
    ag_stmt_bind_cstr(s, 2, e->type);
    ag_stmt_bind_cstr(s, 3, e->subject);
    ag_stmt_bind_cstr(s, 4, e->time);
    ag_stmt_bind_i64(s, 5, e->time_ms);
    ag_stmt_bind_cstr(s, 6, data);
    ag_stmt_bind_i64(s, 7, received_ms);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    return ag_store_changes(st) == 0 ? AG_EEXIST : 0;
}

int
an_store_event_count(struct ag_store *st, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT count(*) FROM analytics_events", &s);
    return rc != 0 ? rc : ag_stmt_step_i64(s, 0, out_n);
}

int
an_store_event_page(struct ag_store *st, int64_t after_ms, const char *after_id, int64_t limit,
                    json_t *out)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT id, type, subject, event_time, time_ms, data FROM analytics_events "
                      "WHERE time_ms > $1 OR (time_ms = $1 AND id > $2) "
                      "ORDER BY time_ms, id LIMIT $3",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, after_ms);
    ag_stmt_bind_cstr(s, 2, after_id);
    ag_stmt_bind_i64(s, 3, limit);
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_t *data = json_loadb(ag_stmt_col_text(s, 5), ag_stmt_col_len(s, 5), 0, NULL);
        if (data == NULL)
            data = json_null(); /* never written so: an_project skips it as invalid */
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "id",
                                             ag_stmt_col_text(s, 0), "type", ag_stmt_col_text(s, 1),
                                             "subject", ag_stmt_col_text(s, 2), "time",
                                             ag_stmt_col_text(s, 3), "time_ms",
                                             (json_int_t)ag_stmt_col_i64(s, 4), "data", data));
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

/* ---- Projections ---- */

#define ORDER_COLS                                                                                 \
    "order_id, user_id, currency, total, created_ms, reserved_ms, authorized_ms, shipment_ms, "    \
    "confirmed_ms, completed_ms, cancelled_ms, cancel_reason, refunded"

int
an_store_order_get(struct ag_store *st, const char *order_id, struct an_order *o)
{
    an_order_init(o, order_id);
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st, "SELECT " ORDER_COLS " FROM analytics_orders WHERE order_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        ag_stmt_col_copy(s, 1, o->user_id, sizeof(o->user_id));
        ag_stmt_col_copy(s, 2, o->currency, sizeof(o->currency));
        o->total = ag_stmt_col_i64(s, 3);
        o->created_ms = ag_stmt_col_i64(s, 4);
        o->reserved_ms = ag_stmt_col_i64(s, 5);
        o->authorized_ms = ag_stmt_col_i64(s, 6);
        o->shipment_ms = ag_stmt_col_i64(s, 7);
        o->confirmed_ms = ag_stmt_col_i64(s, 8);
        o->completed_ms = ag_stmt_col_i64(s, 9);
        o->cancelled_ms = ag_stmt_col_i64(s, 10);
        ag_stmt_col_copy(s, 11, o->cancel_reason, sizeof(o->cancel_reason));
        o->refunded = ag_stmt_col_i64(s, 12);
    }
    ag_stmt_reset(s);
    return rc == AG_ENOENT ? 0 : rc;
}

int
an_store_order_put(struct ag_store *st, const struct an_order *o)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "INSERT INTO analytics_orders (" ORDER_COLS ", status, created_day, confirmed_day, "
        "cancelled_day) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
        "$15, $16, $17) ON CONFLICT (order_id) DO UPDATE SET user_id = excluded.user_id, "
        "currency = excluded.currency, total = excluded.total, created_ms = excluded.created_ms, "
        "reserved_ms = excluded.reserved_ms, authorized_ms = excluded.authorized_ms, "
        "shipment_ms = excluded.shipment_ms, confirmed_ms = excluded.confirmed_ms, "
        "completed_ms = excluded.completed_ms, cancelled_ms = excluded.cancelled_ms, "
        "cancel_reason = excluded.cancel_reason, refunded = excluded.refunded, "
        "status = excluded.status, created_day = excluded.created_day, "
        "confirmed_day = excluded.confirmed_day, cancelled_day = excluded.cancelled_day",
        &s);
    if (rc != 0)
        return rc;
    char created[AN_DAY_LEN];
    char confirmed[AN_DAY_LEN];
    char cancelled[AN_DAY_LEN];
    an_day(o->created_ms, created);
    an_day(o->confirmed_ms, confirmed);
    an_day(o->cancelled_ms, cancelled);
    ag_stmt_bind_cstr(s, 1, o->order_id);
    ag_stmt_bind_cstr(s, 2, o->user_id);
    ag_stmt_bind_cstr(s, 3, o->currency);
    ag_stmt_bind_i64(s, 4, o->total);
    ag_stmt_bind_i64(s, 5, o->created_ms);
    ag_stmt_bind_i64(s, 6, o->reserved_ms);
    ag_stmt_bind_i64(s, 7, o->authorized_ms);
    ag_stmt_bind_i64(s, 8, o->shipment_ms);
    ag_stmt_bind_i64(s, 9, o->confirmed_ms);
    ag_stmt_bind_i64(s, 10, o->completed_ms);
    ag_stmt_bind_i64(s, 11, o->cancelled_ms);
    ag_stmt_bind_cstr(s, 12, o->cancel_reason);
    ag_stmt_bind_i64(s, 13, o->refunded);
    ag_stmt_bind_cstr(s, 14, an_status_name(an_order_status(o)));
    ag_stmt_bind_cstr(s, 15, created);
    ag_stmt_bind_cstr(s, 16, confirmed);
    ag_stmt_bind_cstr(s, 17, cancelled);
    return ag_stmt_exec(s);
}

int
an_store_line_put(struct ag_store *st, const char *order_id, int64_t line_no,
                  const struct an_line *l)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO analytics_order_lines (order_id, line_no, product_id, sku, "
                           "quantity, unit_amount, currency) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                           "ON CONFLICT (order_id, line_no) DO NOTHING",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_i64(s, 2, line_no);
    ag_stmt_bind_cstr(s, 3, l->product_id);
    ag_stmt_bind_cstr(s, 4, l->sku);
    ag_stmt_bind_i64(s, 5, l->quantity);
    ag_stmt_bind_i64(s, 6, l->unit_amount);
    ag_stmt_bind_cstr(s, 7, l->currency);
    return ag_stmt_exec(s);
}

int
an_store_move_put(struct ag_store *st, const char *event_id, const char *order_id,
                  const char *reservation_id, const char *kind, const struct an_move *m)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO analytics_stock_moves (event_id, product_id, kind, "
                           "quantity, reservation_id, order_id) VALUES ($1, $2, $3, $4, $5, $6) "
                           "ON CONFLICT (event_id, product_id) DO NOTHING",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, event_id);
    ag_stmt_bind_cstr(s, 2, m->product_id);
    ag_stmt_bind_cstr(s, 3, kind);
    ag_stmt_bind_i64(s, 4, m->quantity);
    ag_stmt_bind_cstr(s, 5, reservation_id);
    ag_stmt_bind_cstr(s, 6, order_id);
    return ag_stmt_exec(s);
}

int
an_store_release_put(struct ag_store *st, const char *event_id, const char *order_id,
                     const struct an_release *r)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO analytics_releases (event_id, reservation_id, order_id, "
                           "reason, returned) VALUES ($1, $2, $3, $4, $5) "
                           "ON CONFLICT (event_id) DO NOTHING",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, event_id);
    ag_stmt_bind_cstr(s, 2, r->reservation_id);
    ag_stmt_bind_cstr(s, 3, order_id);
    ag_stmt_bind_cstr(s, 4, r->reason);
    ag_stmt_bind_i64(s, 5, r->returned ? 1 : 0);
    return ag_stmt_exec(s);
}

int
an_store_projections_clear(struct ag_store *st)
{
    static const char *const SQL[] = {
        "DELETE FROM analytics_orders",
        "DELETE FROM analytics_order_lines",
        "DELETE FROM analytics_stock_moves",
        "DELETE FROM analytics_releases",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(SQL); i++) {
        struct ag_stmt *s;
        int rc = ag_store_stmt(st, SQL[i], &s);
        if (rc == 0)
            rc = ag_stmt_exec(s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- Reports ---- */

/* Step a report query bound with LIMIT 'limit' + 1, calling 'row' for at
 * most 'limit' rows; '*out_more' tells whether one more was there. */
typedef json_t *(*row_fn)(struct ag_stmt *s);

static int
collect(struct ag_stmt *s, int64_t limit, row_fn row, json_t *items, bool *out_more)
{
    int rc;
    int64_t n = 0;
    *out_more = false;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n == limit) {
            *out_more = true;
            break;
        }
        json_array_append_new(items, row(s));
        n++;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

static void
bind_range(struct ag_stmt *s, const char *from, const char *to, int64_t limit)
{
    ag_stmt_bind_cstr(s, 1, from);
    ag_stmt_bind_cstr(s, 2, to);
    if (limit >= 0)
        ag_stmt_bind_i64(s, 3, limit + 1);
}

static json_t *
revenue_day_row(struct ag_stmt *s)
{
    int64_t gross = ag_stmt_col_i64(s, 3);
    int64_t refunded = ag_stmt_col_i64(s, 4);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "day", ag_stmt_col_text(s, 0), "currency",
                     ag_stmt_col_text(s, 1), "orders", (json_int_t)ag_stmt_col_i64(s, 2), "gross",
                     (json_int_t)gross, "refunded", (json_int_t)refunded, "net",
                     (json_int_t)(gross - refunded));
}

int
an_store_revenue_by_day(struct ag_store *st, const char *from, const char *to, int64_t limit,
                        json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT confirmed_day, currency, count(*), CAST(sum(total) AS BIGINT), "
                           "CAST(sum(refunded) AS BIGINT) "
                           "FROM analytics_orders WHERE confirmed_ms >= 0 AND total >= 0 "
                           "AND confirmed_day >= $1 AND confirmed_day <= $2 "
                           "GROUP BY confirmed_day, currency ORDER BY confirmed_day, currency "
                           "LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, limit);
    return collect(s, limit, revenue_day_row, items, out_more);
}

static json_t *
revenue_product_row(struct ag_stmt *s)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "product_id", ag_stmt_col_text(s, 0), "sku",
                     ag_stmt_col_text(s, 1), "currency", ag_stmt_col_text(s, 2), "orders",
                     (json_int_t)ag_stmt_col_i64(s, 3), "units", (json_int_t)ag_stmt_col_i64(s, 4),
                     "gross", (json_int_t)ag_stmt_col_i64(s, 5));
}

int
an_store_revenue_by_product(struct ag_store *st, const char *from, const char *to, int64_t limit,
                            json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "SELECT l.product_id, min(l.sku), l.currency, count(DISTINCT l.order_id), "
        "CAST(sum(l.quantity) AS BIGINT), CAST(sum(l.quantity * l.unit_amount) AS BIGINT) "
        "FROM analytics_order_lines l "
        "JOIN analytics_orders o ON o.order_id = l.order_id WHERE o.confirmed_ms >= 0 "
        "AND o.confirmed_day >= $1 AND o.confirmed_day <= $2 "
        "GROUP BY l.product_id, l.currency ORDER BY l.product_id, l.currency LIMIT $3",
        &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, limit);
    return collect(s, limit, revenue_product_row, items, out_more);
}

static json_t *
orders_day_row(struct ag_stmt *s)
{
    return json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "day", ag_stmt_col_text(s, 0), "created",
        (json_int_t)ag_stmt_col_i64(s, 1), "open", (json_int_t)ag_stmt_col_i64(s, 2), "confirmed",
        (json_int_t)ag_stmt_col_i64(s, 3), "completed", (json_int_t)ag_stmt_col_i64(s, 4),
        "cancelled", (json_int_t)ag_stmt_col_i64(s, 5), "rejected",
        (json_int_t)ag_stmt_col_i64(s, 6));
}

int
an_store_orders_by_day(struct ag_store *st, const char *from, const char *to, int64_t limit,
                       json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "SELECT created_day, count(*), "
        "sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'confirmed' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) "
        "FROM analytics_orders WHERE created_ms >= 0 AND created_day >= $1 AND created_day <= $2 "
        "GROUP BY created_day ORDER BY created_day LIMIT $3",
        &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, limit);
    return collect(s, limit, orders_day_row, items, out_more);
}

int
an_store_conversion(struct ag_store *st, const char *from, const char *to, int64_t *out_created,
                    int64_t *out_confirmed, int64_t *out_completed)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT count(*), "
                           "sum(CASE WHEN confirmed_ms >= 0 THEN 1 ELSE 0 END), "
                           "sum(CASE WHEN completed_ms >= 0 THEN 1 ELSE 0 END) "
                           "FROM analytics_orders WHERE created_ms >= 0 "
                           "AND created_day >= $1 AND created_day <= $2",
                           &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, -1);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        *out_created = ag_stmt_col_i64(s, 0);
        *out_confirmed = ag_stmt_col_i64(s, 1);
        *out_completed = ag_stmt_col_i64(s, 2);
    }
    ag_stmt_reset(s);
    return rc;
}

int
an_store_outcomes(struct ag_store *st, const char *from, const char *to, json_t *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT status, count(*) FROM analytics_orders WHERE created_ms >= 0 "
                           "AND created_day >= $1 AND created_day <= $2 GROUP BY status",
                           &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, -1);
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW)
        json_object_set_new(out, ag_stmt_col_text(s, 0),
                            json_integer((json_int_t)ag_stmt_col_i64(s, 1)));
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

static json_t *
cancellation_row(struct ag_stmt *s)
{
    return json_pack("{s:s, s:s, s:I}", "reason", ag_stmt_col_text(s, 0), "status",
                     ag_stmt_col_text(s, 1), "orders", (json_int_t)ag_stmt_col_i64(s, 2));
}

int
an_store_cancellations(struct ag_store *st, const char *from, const char *to, int64_t limit,
                       json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT cancel_reason, status, count(*) FROM analytics_orders "
                           "WHERE cancelled_ms >= 0 AND cancelled_day >= $1 "
                           "AND cancelled_day <= $2 GROUP BY cancel_reason, status "
                           "ORDER BY cancel_reason, status LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, limit);
    return collect(s, limit, cancellation_row, items, out_more);
}

/* One count and one ranked query per step; the column names come from
 * AN_STEPS, never from a request. */
#define STEP_WHERE(a, b)                                                                           \
    " FROM analytics_orders WHERE created_ms >= 0 AND created_day >= $1 AND created_day <= $2 "    \
    "AND " #a " >= 0 AND " #b " >= 0"

static const struct {
    const char *count;
    const char *ranked;
} STEP_SQL[] = {
#define AN_X(n, a, b)                                                                              \
    { "SELECT count(*)" STEP_WHERE(a, b),                                                          \
      "SELECT " #b " - " #a STEP_WHERE(a, b) " ORDER BY " #b " - " #a " LIMIT 1 OFFSET $3" },
    AN_STEPS(AN_X)
#undef AN_X
};

static int
step_ranked(struct ag_store *st, enum an_step step, const char *from, const char *to, int64_t rank,
            int64_t *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, STEP_SQL[step].ranked, &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, -1);
    ag_stmt_bind_i64(s, 3, rank - 1);
    rc = ag_stmt_step_i64(s, 0, out);
    if (rc == 0 && *out < 0)
        *out = 0; /* clocks of two processes a hair apart */
    return rc;
}

int
an_store_step_stats(struct ag_store *st, enum an_step step, const char *from, const char *to,
                    int64_t *out_n, int64_t *out_p50, int64_t *out_p95, int64_t *out_max)
{
    *out_p50 = *out_p95 = *out_max = 0;
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, STEP_SQL[step].count, &s);
    if (rc != 0)
        return rc;
    bind_range(s, from, to, -1);
    rc = ag_stmt_step_i64(s, 0, out_n);
    if (rc != 0 || *out_n == 0)
        return rc;
    rc = step_ranked(st, step, from, to, an_rank(*out_n, 50), out_p50);
    if (rc == 0)
        rc = step_ranked(st, step, from, to, an_rank(*out_n, 95), out_p95);
    if (rc == 0)
        rc = step_ranked(st, step, from, to, *out_n, out_max);
    return rc;
}

static json_t *
stock_row(struct ag_stmt *s)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I}", "product_id", ag_stmt_col_text(s, 0), "reserved",
                     (json_int_t)ag_stmt_col_i64(s, 1), "committed",
                     (json_int_t)ag_stmt_col_i64(s, 2), "released",
                     (json_int_t)ag_stmt_col_i64(s, 3), "restocked",
                     (json_int_t)ag_stmt_col_i64(s, 4));
}

int
an_store_stock(struct ag_store *st, const char *product_id, int64_t limit, json_t *items,
               bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "SELECT m.product_id, "
        "CAST(sum(CASE WHEN m.kind = 'reserved' THEN m.quantity ELSE 0 END) AS BIGINT), "
        "CAST(sum(CASE WHEN m.kind = 'committed' THEN m.quantity ELSE 0 END) AS BIGINT), "
        "CAST(sum(CASE WHEN m.kind = 'reserved' AND EXISTS (SELECT 1 FROM analytics_releases r "
        "WHERE r.reservation_id = m.reservation_id AND r.returned = 1) "
        "THEN m.quantity ELSE 0 END) AS BIGINT), "
        "CAST(sum(CASE WHEN m.kind = 'restocked' THEN m.quantity ELSE 0 END) AS BIGINT) "
        "FROM analytics_stock_moves m WHERE ($1 = '' OR m.product_id = $1) "
        "GROUP BY m.product_id ORDER BY m.product_id LIMIT $2",
        &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, product_id != NULL ? product_id : "");
    ag_stmt_bind_i64(s, 2, limit + 1);
    return collect(s, limit, stock_row, items, out_more);
}
