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
                           "AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY id LIMIT $3",
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

/* ---- Saga steps: the chassis's records ---- */

int
pay_step_get(struct ag_idem *idem, const char *key, struct pay_step *out)
{
    memset(out, 0, sizeof(*out));
    struct ag_pool *pool = ag_pool_new(1024);
    struct ag_step s;
    int rc = ag_step_get(idem, key, pool, &s);
    if (rc == 0) {
        out->done = s.done;
        snprintf(out->reply_type, sizeof(out->reply_type), "%s",
                 s.reply_type != NULL ? s.reply_type : "");
        if (s.done && s.data != NULL)
            out->reply_data = ag_json_parse_value(s.data, strlen(s.data), NULL, 0);
    }
    ag_pool_free(pool);
    return rc;
}

int
pay_step_pending(struct ag_idem *idem, const char *key, const char *order_id, const char *command,
                 struct ag_money amount, int64_t now_ms)
{
    /* What answering it later needs: the amount asked for. */
    json_t *asked =
        json_pack("{s:I, s:s}", "amount", (json_int_t)amount.amount, "currency", amount.currency);
    char *data = json_dumps(asked, JSON_COMPACT);
    json_decref(asked);
    struct ag_step s = { .key = key, .command = command, .subject = order_id, .data = data };
    int rc = ag_step_put(idem, &s, now_ms);
    ag_free(data);
    return rc;
}

int
pay_step_done(struct ag_idem *idem, const char *key, const char *order_id, const char *command,
              const char *reply_type, const json_t *reply_data, int64_t now_ms)
{
    char *data = json_dumps(reply_data, JSON_COMPACT);
    struct ag_step s = { .key = key,
                         .command = command,
                         .subject = order_id,
                         .done = true,
                         .reply_type = reply_type,
                         .data = data };
    int rc = ag_step_put(idem, &s, now_ms);
    ag_free(data);
    return rc;
}
