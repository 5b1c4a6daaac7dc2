/* SPDX-License-Identifier: MIT */
/* Payments SQL: every statement parameterised, prepared once and cached by
 * the chassis store. Store functions log nothing. */
#include "agora/base.h"
#include "payments.h"

#include <string.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/mem.h"

#define PAYMENT_COLS                                                                               \
    "id, order_id, user_id, status, currency, amount, captured, refunded, card_brand, "            \
    "card_last4, provider_ref, void_reason, created_at, updated_at, captured_at, voided_at, "      \
    "expires_at"

static void
read_payment(struct ag_stmt *s, struct pay_payment *p)
{
    memset(p, 0, sizeof(*p));
    ag_stmt_col_copy(s, 0, p->id, sizeof(p->id));
    ag_stmt_col_copy(s, 1, p->order_id, sizeof(p->order_id));
    ag_stmt_col_copy(s, 2, p->user_id, sizeof(p->user_id));
    if (pay_status_parse(ag_stmt_col_text(s, 3), &p->status) != 0)
        p->status = PAY_VOIDED;
    ag_stmt_col_copy(s, 4, p->currency, sizeof(p->currency));
    p->amount = ag_stmt_col_i64(s, 5);
    p->captured = ag_stmt_col_i64(s, 6);
    p->refunded = ag_stmt_col_i64(s, 7);
    ag_stmt_col_copy(s, 8, p->card.brand, sizeof(p->card.brand));
    ag_stmt_col_copy(s, 9, p->card.last4, sizeof(p->card.last4));
    ag_stmt_col_copy(s, 10, p->provider_ref, sizeof(p->provider_ref));
    ag_stmt_col_copy(s, 11, p->void_reason, sizeof(p->void_reason));
    p->created_at = ag_stmt_col_i64(s, 12);
    p->updated_at = ag_stmt_col_i64(s, 13);
    p->captured_at = ag_stmt_col_i64(s, 14);
    p->voided_at = ag_stmt_col_i64(s, 15);
    p->expires_at = ag_stmt_col_i64(s, 16);
}

int
pay_store_payment_insert(struct ag_store *st, const struct pay_payment *p)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO payments (" PAYMENT_COLS ") VALUES ($1, $2, $3, $4, $5, "
                           "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, p->id);
    ag_stmt_bind_cstr(s, 2, p->order_id);
    ag_stmt_bind_cstr(s, 3, p->user_id);
    ag_stmt_bind_cstr(s, 4, pay_status_name(p->status));
    ag_stmt_bind_cstr(s, 5, p->currency);
    ag_stmt_bind_i64(s, 6, p->amount);
    ag_stmt_bind_i64(s, 7, p->captured);
    ag_stmt_bind_i64(s, 8, p->refunded);
    ag_stmt_bind_cstr(s, 9, p->card.brand);
    ag_stmt_bind_cstr(s, 10, p->card.last4);
    ag_stmt_bind_cstr(s, 11, p->provider_ref);
    ag_stmt_bind_cstr(s, 12, p->void_reason);
    ag_stmt_bind_i64(s, 13, p->created_at);
    ag_stmt_bind_i64(s, 14, p->updated_at);
    ag_stmt_bind_i64(s, 15, p->captured_at);
    ag_stmt_bind_i64(s, 16, p->voided_at);
    ag_stmt_bind_i64(s, 17, p->expires_at);
    return ag_stmt_exec(s);
}

int
pay_store_payment_update(struct ag_store *st, const struct pay_payment *p)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE payments SET status = $2, captured = $3, refunded = $4, "
                           "void_reason = $5, updated_at = $6, captured_at = $7, voided_at = $8, "
                           "expires_at = $9 WHERE id = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, p->id);
    ag_stmt_bind_cstr(s, 2, pay_status_name(p->status));
    ag_stmt_bind_i64(s, 3, p->captured);
    ag_stmt_bind_i64(s, 4, p->refunded);
    ag_stmt_bind_cstr(s, 5, p->void_reason);
    ag_stmt_bind_i64(s, 6, p->updated_at);
    ag_stmt_bind_i64(s, 7, p->captured_at);
    ag_stmt_bind_i64(s, 8, p->voided_at);
    ag_stmt_bind_i64(s, 9, p->expires_at);
    rc = ag_stmt_exec(s);
    if (rc == 0 && ag_store_changes(st) == 0)
        rc = AG_ENOENT;
    return rc;
}

int
pay_store_payment_get(struct ag_store *st, const char *id, struct pay_payment *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT " PAYMENT_COLS " FROM payments WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_payment(s, out);
    ag_stmt_reset(s);
    return rc;
}

int
pay_store_payment_of_order(struct ag_store *st, const char *order_id, struct pay_payment *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT " PAYMENT_COLS " FROM payments WHERE order_id = $1 "
                           "ORDER BY id DESC LIMIT 1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_payment(s, out);
    ag_stmt_reset(s);
    return rc;
}

int
pay_store_payment_list(struct ag_store *st, const char *order_id, const char *user_id,
                       json_t **out_items)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT " PAYMENT_COLS " FROM payments WHERE order_id = $1 "
                           "AND ($2 IS NULL OR user_id = $2) ORDER BY id LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, order_id);
    ag_stmt_bind_cstr(s, 2, user_id);
    ag_stmt_bind_i64(s, 3, PAY_LIST_MAX);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        struct pay_payment p;
        read_payment(s, &p);
        json_t *refunds;
        rc = pay_store_refund_list(st, p.id, p.currency, &refunds);
        if (rc != 0)
            break;
        json_t *j = pay_payment_to_json(&p);
        json_object_set_new(j, "refunds", refunds);
        json_array_append_new(items, j);
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(items);
        return rc;
    }
    *out_items = items;
    return 0;
}

int
pay_store_payment_expired(struct ag_store *st, int64_t now_ms, size_t max,
                          char (*out_ids)[AG_UUID_STRLEN + 1], size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT id FROM payments WHERE status = 'authorized' AND "
                           "expires_at <= $1 ORDER BY expires_at LIMIT $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    ag_stmt_bind_i64(s, 2, (int64_t)max);
    size_t n = 0;
    while (n < max && (rc = ag_stmt_step(s)) == AG_STMT_ROW)
        ag_stmt_col_copy(s, 0, out_ids[n++], AG_UUID_STRLEN + 1);
    ag_stmt_reset(s);
    *out_n = n;
    return rc < 0 ? rc : 0;
}

int
pay_store_refund_insert(struct ag_store *st, const struct pay_refund *r)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO refunds (id, payment_id, amount, reason, created_at) "
                           "VALUES ($1, $2, $3, $4, $5)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, r->id);
    ag_stmt_bind_cstr(s, 2, r->payment_id);
    ag_stmt_bind_i64(s, 3, r->amount);
    ag_stmt_bind_cstr(s, 4, r->reason);
    ag_stmt_bind_i64(s, 5, r->created_at);
    return ag_stmt_exec(s);
}

int
pay_store_refund_list(struct ag_store *st, const char *payment_id, const char *currency,
                      json_t **out_items)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT id, payment_id, amount, reason, created_at FROM refunds "
                           "WHERE payment_id = $1 ORDER BY id",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, payment_id);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        struct pay_refund r;
        memset(&r, 0, sizeof(r));
        ag_stmt_col_copy(s, 0, r.id, sizeof(r.id));
        ag_stmt_col_copy(s, 1, r.payment_id, sizeof(r.payment_id));
        r.amount = ag_stmt_col_i64(s, 2);
        ag_stmt_col_copy(s, 3, r.reason, sizeof(r.reason));
        r.created_at = ag_stmt_col_i64(s, 4);
        json_array_append_new(items, pay_refund_to_json(&r, currency));
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(items);
        return rc;
    }
    *out_items = items;
    return 0;
}

/* ---- Saga steps ---- */

int
pay_store_step_get(struct ag_store *st, const char *key, struct pay_step *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT state, reply_type, reply_data FROM steps "
                           "WHERE step_key = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    memset(out, 0, sizeof(*out));
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        ag_stmt_col_copy(s, 0, out->state, sizeof(out->state));
        ag_stmt_col_copy(s, 1, out->reply_type, sizeof(out->reply_type));
        size_t len = ag_stmt_col_len(s, 2);
        if (len > 0)
            out->reply_data = ag_json_parse_value(ag_stmt_col_text(s, 2), len, NULL, 0);
    }
    ag_stmt_reset(s);
    return rc;
}

int
pay_store_step_pending(struct ag_store *st, const char *key, const char *order_id,
                       const char *command, struct ag_money amount, int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO steps (step_key, order_id, command, state, reply_data, "
                           "created_at, updated_at) VALUES ($1, $2, $3, 'pending', "
                           "json_object('amount', $5, 'currency', $6), $4, $4)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    ag_stmt_bind_cstr(s, 2, order_id);
    ag_stmt_bind_cstr(s, 3, command);
    ag_stmt_bind_i64(s, 4, now_ms);
    ag_stmt_bind_i64(s, 5, amount.amount);
    ag_stmt_bind_cstr(s, 6, amount.currency);
    return ag_stmt_exec(s);
}

int
pay_store_step_done(struct ag_store *st, const char *key, const char *order_id, const char *command,
                    const char *reply_type, const json_t *reply_data, int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO steps (step_key, order_id, command, state, reply_type, "
                           "reply_data, created_at, updated_at) VALUES ($1, $2, $3, 'done', $4, "
                           "$5, $6, $6) ON CONFLICT (step_key) DO UPDATE SET state = 'done', "
                           "reply_type = excluded.reply_type, reply_data = excluded.reply_data, "
                           "updated_at = excluded.updated_at",
                           &s);
    if (rc != 0)
        return rc;
    char *data = json_dumps(reply_data, JSON_COMPACT);
    ag_stmt_bind_cstr(s, 1, key);
    ag_stmt_bind_cstr(s, 2, order_id);
    ag_stmt_bind_cstr(s, 3, command);
    ag_stmt_bind_cstr(s, 4, reply_type);
    ag_stmt_bind_cstr(s, 5, data ? data : "");
    ag_stmt_bind_i64(s, 6, now_ms);
    ag_free(data);
    return ag_stmt_exec(s);
}

int
pay_store_step_list_pending(struct ag_store *st, size_t max, json_t **out)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT step_key, order_id, command, json_extract(reply_data, '$.amount'), "
                      "json_extract(reply_data, '$.currency') FROM steps "
                      "WHERE state = 'pending' "
                      "ORDER BY created_at LIMIT $1",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, (int64_t)max);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        json_array_append_new(
            items,
            json_pack("{s:s, s:s, s:s, s:I, s:s}", "step_key", ag_stmt_col_text(s, 0), "order_id",
                      ag_stmt_col_text(s, 1), "command", ag_stmt_col_text(s, 2), "amount",
                      (json_int_t)ag_stmt_col_i64(s, 3), "currency", ag_stmt_col_text(s, 4)));
    }
    ag_stmt_reset(s);
    if (rc != AG_STMT_DONE) {
        json_decref(items);
        return rc;
    }
    *out = items;
    return 0;
}

/* ---- Idempotency keys ---- */

int
pay_store_idem_get(struct ag_store *st, const char *user_id, const char *key, struct ag_pool *pool,
                   struct pay_idem *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT request_hash, status, content_type, response FROM "
                           "idempotency_keys WHERE user_id = $1 AND key = $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, key);
    memset(out, 0, sizeof(*out));
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        ag_stmt_col_copy(s, 0, out->hash, sizeof(out->hash));
        out->status = (int)ag_stmt_col_i64(s, 1);
        out->content_type = ag_stmt_col_dup(s, 2, pool);
        out->response = ag_stmt_col_dup(s, 3, pool);
        out->response_len = ag_stmt_col_len(s, 3);
    }
    ag_stmt_reset(s);
    return rc;
}

int
pay_store_idem_begin(struct ag_store *st, const char *user_id, const char *key, const char *hash,
                     int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO idempotency_keys (user_id, key, request_hash, status, "
                           "created_at) VALUES ($1, $2, $3, 0, $4)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, key);
    ag_stmt_bind_cstr(s, 3, hash);
    ag_stmt_bind_i64(s, 4, now_ms);
    return ag_stmt_exec(s);
}

int
pay_store_idem_finish(struct ag_store *st, const char *user_id, const char *key, const char *hash,
                      int status, const char *content_type, const char *body, int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO idempotency_keys (user_id, key, request_hash, status, "
                           "content_type, response, created_at) VALUES ($1, $2, $3, $4, $5, $6, "
                           "$7) ON CONFLICT (user_id, key) DO UPDATE SET status = "
                           "excluded.status, content_type = excluded.content_type, response = "
                           "excluded.response",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, key);
    ag_stmt_bind_cstr(s, 3, hash);
    ag_stmt_bind_i64(s, 4, status);
    ag_stmt_bind_cstr(s, 5, content_type);
    ag_stmt_bind_cstr(s, 6, body);
    ag_stmt_bind_i64(s, 7, now_ms);
    return ag_stmt_exec(s);
}

int
pay_store_idem_delete(struct ag_store *st, const char *user_id, const char *key)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_cstr(s, 2, key);
    return ag_stmt_exec(s);
}

int
pay_store_idem_sweep(struct ag_store *st, int64_t before_ms, bool in_progress)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "DELETE FROM idempotency_keys WHERE created_at < $1 OR "
                           "($2 AND status = 0)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, before_ms);
    ag_stmt_bind_i64(s, 2, in_progress ? 1 : 0);
    return ag_stmt_exec(s);
}
