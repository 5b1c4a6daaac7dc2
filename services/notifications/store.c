/* SPDX-License-Identifier: MIT */
/* Notifications SQL: replicas, templates and notification rows. Every
 * statement parameterised, prepared once and cached by the chassis store. */
#include "agora/base.h"
#include "notifications.h"

#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"

#define RECORD_COLS                                                                                \
    "seq, id, event_id, type, user_id, channel, recipient, recipient_name, subject, body, "        \
    "status, attempts, next_attempt_ms, last_error, created_at, sent_at"

static char *
col_heap(struct ag_stmt *s, int i)
{
    return ag_strndup(ag_stmt_col_text(s, i), ag_stmt_col_len(s, i));
}

/* ---- Replicas ---- */

int
notify_store_user_put(struct ag_store *st, const char *user_id, const char *email, const char *name,
                      int64_t changed_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO users (user_id, email, name, changed_ms) "
                           "VALUES ($1, coalesce($2, ''), coalesce($3, ''), $4) "
                           "ON CONFLICT (user_id) DO UPDATE SET "
                           "email = coalesce($2, users.email), name = coalesce($3, users.name), "
                           "changed_ms = excluded.changed_ms "
                           "WHERE $4 >= users.changed_ms",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, email);
    ag_stmt_bind_cstr(s, 3, name);
    ag_stmt_bind_i64(s, 4, changed_ms);
    return ag_stmt_exec(s);
}

int
notify_store_user_get(struct ag_store *st, const char *user_id, struct ag_pool *pool,
                      const char **out_email, const char **out_name)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT email, name FROM users WHERE user_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        *out_email = ag_stmt_col_dup(s, 0, pool);
        *out_name = ag_stmt_col_dup(s, 1, pool);
    }
    ag_stmt_reset(s);
    return rc;
}

int
notify_store_order_put(struct ag_store *st, const char *order_id, const char *user_id,
                       const char *created_at)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO orders (order_id, user_id, created_at) VALUES ($1, $2, $3) "
                           "ON CONFLICT (order_id) DO NOTHING",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, user_id);
    ag_stmt_bind_cstr(s, 3, created_at);
    return ag_stmt_exec(s);
}

int
notify_store_order_user(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                        const char **out_user_id)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT user_id FROM orders WHERE order_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        *out_user_id = ag_stmt_col_dup(s, 0, pool);
    ag_stmt_reset(s);
    return rc;
}

/* ---- Templates ---- */

int
notify_store_template_get(struct ag_store *st, const char *type, struct ag_pool *pool,
                          struct notify_template *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT type, subject, body, enabled, updated_at FROM templates "
                           "WHERE type = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, type);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        out->type = ag_stmt_col_dup(s, 0, pool);
        out->subject = ag_stmt_col_dup(s, 1, pool);
        out->body = ag_stmt_col_dup(s, 2, pool);
        out->enabled = ag_stmt_col_i64(s, 3) != 0;
        out->updated_at = ag_stmt_col_dup(s, 4, pool);
    }
    ag_stmt_reset(s);
    return rc;
}

int
notify_store_template_list(struct ag_store *st, json_t **out_items)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT type, subject, body, enabled, updated_at FROM templates "
                           "ORDER BY type LIMIT $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, NOTIFY_TEMPLATES_MAX);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:s, s:b, s:s}", "type", ag_stmt_col_text(s, 0), "subject",
                             ag_stmt_col_text(s, 1), "body", ag_stmt_col_text(s, 2), "enabled",
                             ag_stmt_col_i64(s, 3) != 0, "updated_at", ag_stmt_col_text(s, 4)));
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
notify_store_template_put(struct ag_store *st, const struct notify_template *t, bool *out_created)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT 1 FROM templates WHERE type = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, t->type);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    *out_created = rc == AG_STMT_DONE;
    rc = ag_store_stmt(st,
                       "INSERT INTO templates (type, subject, body, enabled, updated_at) "
                       "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (type) DO UPDATE SET "
                       "subject = $2, body = $3, enabled = $4, updated_at = $5",
                       &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, t->type);
    ag_stmt_bind_cstr(s, 2, t->subject);
    ag_stmt_bind_cstr(s, 3, t->body);
    ag_stmt_bind_i64(s, 4, t->enabled ? 1 : 0);
    ag_stmt_bind_cstr(s, 5, t->updated_at);
    return ag_stmt_exec(s);
}

/* ---- Notifications ---- */

int
notify_store_insert(struct ag_store *st, const struct notify_record *r)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "INSERT INTO notifications (id, event_id, type, user_id, channel, recipient, "
                      "recipient_name, subject, body, status, attempts, next_attempt_ms, "
                      "last_error, created_at, sent_at) VALUES "
                      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, r->id);
    ag_stmt_bind_cstr(s, 2, r->event_id);
    ag_stmt_bind_cstr(s, 3, r->type);
    ag_stmt_bind_cstr(s, 4, r->user_id);
    ag_stmt_bind_cstr(s, 5, r->channel);
    ag_stmt_bind_cstr(s, 6, r->recipient != NULL ? r->recipient : "");
    ag_stmt_bind_cstr(s, 7, r->recipient_name != NULL ? r->recipient_name : "");
    ag_stmt_bind_cstr(s, 8, r->subject);
    ag_stmt_bind_cstr(s, 9, r->body);
    ag_stmt_bind_cstr(s, 10, notify_status_name(r->status));
    ag_stmt_bind_i64(s, 11, r->attempts);
    ag_stmt_bind_i64(s, 12, r->next_attempt_ms);
    ag_stmt_bind_cstr(s, 13, r->last_error);
    ag_stmt_bind_cstr(s, 14, r->created_at);
    ag_stmt_bind_cstr(s, 15, r->sent_at);
    return ag_stmt_exec(s);
}

/* Fill 'out' from the current row of a RECORD_COLS query (strings copied
 * into 'pool', or borrowed from the statement when 'pool' is NULL). */
static void
read_record(struct ag_stmt *s, struct ag_pool *pool, struct notify_record *out)
{
    memset(out, 0, sizeof(*out));
    const char **fields[] = { &out->id,      &out->event_id,  &out->type,           &out->user_id,
                              &out->channel, &out->recipient, &out->recipient_name, &out->subject,
                              &out->body };
    out->seq = ag_stmt_col_i64(s, 0);
    for (size_t i = 0; i < AG_ARRAY_SIZE(fields); i++)
        *fields[i] =
            pool != NULL ? ag_stmt_col_dup(s, (int)i + 1, pool) : ag_stmt_col_text(s, (int)i + 1);
    enum notify_status st = NOTIFY_RECORDED;
    notify_status_parse(ag_stmt_col_text(s, 10), &st);
    out->status = st;
    out->attempts = ag_stmt_col_i64(s, 11);
    out->next_attempt_ms = ag_stmt_col_i64(s, 12);
    if (pool != NULL) {
        out->last_error = ag_stmt_col_dup(s, 13, pool);
        out->created_at = ag_stmt_col_dup(s, 14, pool);
        out->sent_at = ag_stmt_col_dup(s, 15, pool);
    } else {
        out->last_error = ag_stmt_col_is_null(s, 13) ? NULL : ag_stmt_col_text(s, 13);
        out->created_at = ag_stmt_col_text(s, 14);
        out->sent_at = ag_stmt_col_is_null(s, 15) ? NULL : ag_stmt_col_text(s, 15);
    }
}

int
notify_store_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                 struct notify_record *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT " RECORD_COLS " FROM notifications WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_record(s, pool, out);
    ag_stmt_reset(s);
    return rc;
}

#define LIST_FILTERS                                                                               \
    " AND (CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR type = $3)"   \
    " ORDER BY seq DESC LIMIT $4"

int
notify_store_list(struct ag_store *st, const struct notify_filter *f, bool admin, json_t *items,
                  bool *out_more, int64_t *out_last_seq)
{
    struct ag_stmt *s;
    int rc;
    /* Two texts, so the per-user listing uses the (user_id, seq) index. */
    if (f->user_id != NULL) {
        rc = ag_store_stmt(st,
                           "SELECT " RECORD_COLS " FROM notifications WHERE user_id = $5 "
                           "AND seq < $1" LIST_FILTERS,
                           &s);
        if (rc == 0)
            ag_stmt_bind_cstr(s, 5, f->user_id);
    } else {
        rc = ag_store_stmt(
            st, "SELECT " RECORD_COLS " FROM notifications WHERE seq < $1" LIST_FILTERS, &s);
    }
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, f->before_seq > 0 ? f->before_seq : INT64_MAX);
    ag_stmt_bind_cstr(s, 2, f->status);
    ag_stmt_bind_cstr(s, 3, f->type);
    ag_stmt_bind_i64(s, 4, f->limit + 1);
    int64_t n = 0;
    *out_more = false;
    *out_last_seq = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n == f->limit) {
            *out_more = true;
            break;
        }
        struct notify_record r;
        read_record(s, NULL, &r);
        json_array_append_new(items, notify_record_to_json(&r, admin));
        *out_last_seq = r.seq;
        n++;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

/* ---- Delivery ---- */

void
notify_store_claimed_free(struct notify_claimed *c)
{
    if (c == NULL)
        return;
    ag_free(c->id);
    ag_free(c->type);
    ag_free(c->recipient);
    ag_free(c->recipient_name);
    ag_free(c->subject);
    ag_free(c->body);
    memset(c, 0, sizeof(*c));
}

static int
claim_tx(struct ag_store *st, int64_t now_ms, size_t max, struct notify_claimed *rows,
         size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT id, type, recipient, recipient_name, subject, body, attempts "
                           "FROM notifications WHERE status = 'pending' AND in_flight = 0 "
                           "AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, seq LIMIT $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    ag_stmt_bind_i64(s, 2, (int64_t)max);
    size_t n = 0;
    while (n < max && (rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        struct notify_claimed *c = &rows[n++];
        c->id = col_heap(s, 0);
        c->type = col_heap(s, 1);
        c->recipient = col_heap(s, 2);
        c->recipient_name = col_heap(s, 3);
        c->subject = col_heap(s, 4);
        c->body = col_heap(s, 5);
        c->attempts = ag_stmt_col_i64(s, 6);
    }
    ag_stmt_reset(s);
    *out_n = n;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = ag_store_stmt(st, "UPDATE notifications SET in_flight = 1 WHERE id = $1", &s);
        if (rc != 0)
            return rc;
        ag_stmt_bind_cstr(s, 1, rows[i].id);
        rc = ag_stmt_exec(s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
notify_store_claim(struct ag_store *st, int64_t now_ms, size_t max, struct notify_claimed **out,
                   size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    if (max == 0)
        return 0;
    struct notify_claimed *rows = ag_calloc(max, sizeof(*rows));
    size_t n = 0;
    int rc = ag_store_begin(st);
    if (rc == 0) {
        rc = claim_tx(st, now_ms, max, rows, &n);
        if (rc == 0)
            rc = ag_store_commit(st);
        if (rc != 0)
            ag_store_rollback(st);
    }
    if (rc != 0 || n == 0) {
        for (size_t i = 0; i < n; i++)
            notify_store_claimed_free(&rows[i]);
        ag_free(rows);
        return rc;
    }
    *out = rows;
    *out_n = n;
    return 0;
}

int
notify_store_settle(struct ag_store *st, const char *id, enum notify_status status,
                    int64_t attempts, int64_t next_ms, const char *last_error, const char *sent_at)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "UPDATE notifications SET status = $2, attempts = $3, next_attempt_ms = $4, "
                      "last_error = coalesce($5, last_error), sent_at = $6, in_flight = 0 "
                      "WHERE id = $1",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    ag_stmt_bind_cstr(s, 2, notify_status_name(status));
    ag_stmt_bind_i64(s, 3, attempts);
    ag_stmt_bind_i64(s, 4, next_ms);
    ag_stmt_bind_cstr(s, 5, last_error);
    ag_stmt_bind_cstr(s, 6, sent_at);
    return ag_stmt_exec(s);
}

int
notify_store_release_all(struct ag_store *st)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "UPDATE notifications SET in_flight = 0 WHERE in_flight = 1", &s);
    return rc != 0 ? rc : ag_stmt_exec(s);
}

int
notify_store_next_due(struct ag_store *st, int64_t *out_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT min(next_attempt_ms) FROM notifications "
                           "WHERE status = 'pending' AND in_flight = 0",
                           &s);
    if (rc != 0)
        return rc;
    return ag_stmt_step_i64(s, -1, out_ms);
}

int
notify_store_count_pending(struct ag_store *st, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT count(*) FROM notifications WHERE status = 'pending'", &s);
    return rc != 0 ? rc : ag_stmt_step_i64(s, 0, out_n);
}
