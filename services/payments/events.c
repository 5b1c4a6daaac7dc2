/* SPDX-License-Identifier: MIT */
/* Payments events. Out: the saga's reply events payment.authorized,
 * payment.captured, payment.voided, payment.refunded and payment.failed,
 * written to the outbox inside the transaction that makes the change, so an
 * event exists if and only if its change commits (contracts/events/
 * payment.*.schema.json). In: the saga's commands cmd.payment.authorize,
 * .capture, .void and .refund from orders (contracts/events/
 * cmd.payment.*.schema.json), each answered by one reply; a command whose
 * step_key was answered already gets the same reply again and has no second
 * effect. */
#include "agora/base.h"
#include "payments.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/events.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

/* ---- Out ---- */

int
pay_events_publish(struct ag_events *ev, const char *type, const json_t *data,
                   const char *traceparent)
{
    if (ev == NULL)
        return 0;
    const char *subject = json_string_value(json_object_get(data, "payment_id"));
    if (subject == NULL)
        subject = json_string_value(json_object_get(data, "order_id"));
    return ag_events_publish(ev, type, subject, data, traceparent, NULL);
}

json_t *
pay_events_authorized(const struct pay_payment *p)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "payment_id", p->id, "order_id", p->order_id, "amount",
                     pay_money_json(p->amount, p->currency), "authorized_at",
                     pay_time_json(p->created_at));
}

json_t *
pay_events_captured(const struct pay_payment *p)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "payment_id", p->id, "order_id", p->order_id, "amount",
                     pay_money_json(p->captured, p->currency), "captured_at",
                     pay_time_json(p->captured_at));
}

json_t *
pay_events_voided(const struct pay_payment *p)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:o}", "payment_id", p->id, "order_id", p->order_id,
                     "amount", pay_money_json(p->amount, p->currency), "reason", p->void_reason,
                     "voided_at", pay_time_json(p->voided_at));
}

json_t *
pay_events_refunded(const struct pay_payment *p, const struct pay_refund *r)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "payment_id", p->id, "order_id", p->order_id,
                     "refund_id", r->id, "amount", pay_money_json(r->amount, p->currency),
                     "refunded_at", pay_time_json(r->created_at));
}

json_t *
pay_events_failed(const char *payment_id, const char *order_id, struct ag_money amount,
                  const char *reason, int64_t now_ms)
{
    return json_pack("{s:o, s:s, s:o, s:s, s:o}", "payment_id",
                     payment_id ? json_string(payment_id) : json_null(), "order_id", order_id,
                     "amount", pay_money_json(amount.amount, amount.currency), "reason", reason,
                     "failed_at", pay_time_json(now_ms));
}

void
pay_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}

/* ---- In: saga commands ---- */

static const char *const CMD_OPS[] = { "authorize", "capture", "void", "refund" };

/* Answer a command: publish 'type' with 'data' (stolen) and remember it as
 * the reply of the step. */
static int
reply(struct pay *pay, struct ag_store *st, const struct pay_cmd *cmd, const char *type,
      json_t *data, const char *traceparent)
{
    AG_UNUSED(st); /* the step is recorded in the same store, in its transaction */
    int rc = pay_events_publish(pay->events, type, data, traceparent);
    if (rc == 0)
        rc = pay_step_done(pay->idem, cmd->step_key, cmd->order_id, CMD_OPS[cmd->kind], type, data,
                           ag_time_unix_ms());
    json_decref(data);
    return rc;
}

static int
reply_failed(struct pay *pay, struct ag_store *st, const struct pay_cmd *cmd,
             const char *payment_id, const char *reason, const char *why, const char *tp)
{
    AG_LOGW("payments", "step '%s' of order %s refused: %s", cmd->step_key, cmd->order_id, why);
    pay_count(pay, CMD_OPS[cmd->kind], "rejected", 0, NULL);
    json_t *data =
        pay_events_failed(payment_id, cmd->order_id, cmd->amount, reason, ag_time_unix_ms());
    return reply(pay, st, cmd, "payment.failed", data, tp);
}

/* Capture, void or refund of the order's latest payment. */
static int
handle_change(struct pay *pay, struct ag_store *st, struct pay_cmd *cmd, const char *tp)
{
    static const enum pay_op OPS[] = {
        [PAY_CMD_CAPTURE] = PAY_OP_CAPTURE,
        [PAY_CMD_VOID] = PAY_OP_VOID,
        [PAY_CMD_REFUND] = PAY_OP_REFUND,
    };
    static const char *const TYPES[] = {
        [PAY_CMD_CAPTURE] = "payment.captured",
        [PAY_CMD_VOID] = "payment.voided",
        [PAY_CMD_REFUND] = "payment.refunded",
    };
    struct pay_payment p;
    int rc = pay_store_payment_of_order(st, cmd->order_id, &p);
    if (rc == AG_ENOENT && cmd->kind == PAY_CMD_VOID) {
        /* Nothing was authorized: record a void of nothing (amount 0, the
         * ISO 4217 "no currency" XXX, reason not_authorized) and answer
         * payment.voided. The record also refuses a late authorization of
         * the same order, so none is left dangling. */
        memset(&p, 0, sizeof(p));
        ag_uuid7(p.id);
        memcpy(p.order_id, cmd->order_id, sizeof(p.order_id));
        p.status = PAY_VOIDED;
        memcpy(p.currency, PAY_NO_CURRENCY, sizeof(p.currency));
        snprintf(p.card.brand, sizeof(p.card.brand), "none");
        snprintf(p.card.last4, sizeof(p.card.last4), "0000");
        snprintf(p.void_reason, sizeof(p.void_reason), "%s", PAY_NOT_AUTHORIZED);
        p.created_at = p.updated_at = p.voided_at = ag_time_unix_ms();
        rc = pay_store_payment_insert(st, &p);
        if (rc != 0)
            return rc;
        pay_count(pay, "void", "nothing_authorized", 0, NULL);
        return reply(pay, st, cmd, "payment.voided", pay_events_voided(&p), tp);
    }
    if (rc == AG_ENOENT)
        return reply_failed(pay, st, cmd, NULL, "error", "no payment for the order", tp);
    if (rc != 0)
        return rc;
    if (cmd->kind == PAY_CMD_VOID && p.status == PAY_VOIDED)
        return reply(pay, st, cmd, "payment.voided", pay_events_voided(&p), tp);
    if (cmd->kind == PAY_CMD_VOID) {
        /* A void names no amount: a refusal reports the payment's. */
        cmd->amount.amount = p.amount;
        memcpy(cmd->amount.currency, p.currency, sizeof(cmd->amount.currency));
    }
    if (cmd->kind != PAY_CMD_VOID && strcmp(cmd->amount.currency, p.currency) != 0)
        return reply_failed(pay, st, cmd, p.id, "error", "currency differs from the payment's", tp);
    struct pay_refund r;
    json_t *data = NULL;
    rc = pay_change(pay, st, &p, OPS[cmd->kind], cmd->amount.amount, cmd->reason, &r, tp, &data);
    if (rc == AG_ECONFLICT || rc == AG_ERANGE) {
        return reply_failed(
            pay, st, cmd, p.id, "error",
            rc == AG_ECONFLICT ? "not allowed in the payment's state" : "amount out of range", tp);
    }
    if (rc != 0)
        return rc;
    rc = pay_step_done(pay->idem, cmd->step_key, cmd->order_id, CMD_OPS[cmd->kind],
                       TYPES[cmd->kind], data, ag_time_unix_ms());
    json_decref(data);
    return rc;
}

static int
handle_authorize(struct pay *pay, struct ag_store *st, const struct pay_cmd *cmd, const char *tp)
{
    if (pay_auth_inflight(pay, cmd->order_id))
        return AG_EBUSY; /* another step of the order is at the provider: later */
    struct pay_payment p;
    int rc = pay_store_payment_of_order(st, cmd->order_id, &p);
    if (rc == 0 && p.status == PAY_VOIDED && strcmp(p.void_reason, PAY_NOT_AUTHORIZED) == 0)
        return reply_failed(pay, st, cmd, NULL, "error", "the order's payment was voided", tp);
    if (rc != 0 && rc != AG_ENOENT)
        return rc;
    rc = pay_step_pending(pay->idem, cmd->step_key, cmd->order_id, "authorize", cmd->amount,
                          ag_time_unix_ms());
    if (rc != 0)
        return rc;
    /* The answer comes in its own transaction, which records the payment
     * only while this step is pending: if this transaction rolls back, the
     * answer is dropped and the authorization released. */
    struct pay_auth_req req = {
        .order_id = cmd->order_id,
        .user_id = cmd->user_id,
        .token = cmd->token,
        .amount = cmd->amount,
        .step_key = cmd->step_key,
        .traceparent = tp,
    };
    return pay_auth_start(pay, &req);
}

int
pay_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata)
{
    AG_UNUSED(ev);
    struct pay *pay = udata;
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *id = json_string_value(json_object_get(event, "id"));
    const char *tp = json_string_value(json_object_get(event, "traceparent"));
    json_t *data = json_object_get(event, "data");
    struct ag_valid v;
    ag_valid_init(&v);
    struct pay_cmd cmd;
    if (!pay_cmd_parse(&v, type, data, &cmd)) {
        /* Never applicable: logged (field errors only, never the data,
         * which may hold a payment token) and acknowledged. */
        char *errs = json_dumps(v.errors, JSON_COMPACT);
        AG_LOGW("payments", "command '%s' (id %s) dropped: %s", type ? type : "?", id ? id : "?",
                errs ? errs : "");
        ag_free(errs);
        ag_valid_release(&v);
        return 0;
    }
    ag_valid_release(&v);
    if (pay->stopping)
        return AG_EUNAVAIL; /* redelivered to the next run */
    struct pay_step step;
    int rc = pay_step_get(pay->idem, cmd.step_key, &step);
    if (rc == 0) {
        /* A retry of an answered step: the same reply again, no effect. A
         * pending one is at the provider and answers by itself. */
        if (step.done && step.reply_data != NULL) {
            pay_count(pay, CMD_OPS[cmd.kind], "replayed", 0, NULL);
            rc = pay_events_publish(pay->events, step.reply_type, step.reply_data, tp);
        }
        json_decref(step.reply_data);
        return rc;
    }
    if (rc != AG_ENOENT)
        return rc;
    if (cmd.kind == PAY_CMD_AUTHORIZE)
        return handle_authorize(pay, st, &cmd, tp);
    if (cmd.kind == PAY_CMD_VOID && pay_auth_inflight(pay, cmd.order_id))
        return AG_EBUSY; /* void what the provider is about to answer, once it has */
    return handle_change(pay, st, &cmd, tp);
}

int
pay_events_fail_pending(struct pay *pay)
{
    struct ag_pool *pool = ag_pool_new(8192);
    struct ag_step *items = ag_calloc(PAY_PENDING_MAX, sizeof(*items));
    size_t n = 0;
    int rc = ag_step_list_pending(pay->idem, PAY_PENDING_MAX, pool, items, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *key = items[i].key;
        const char *order = items[i].subject != NULL ? items[i].subject : "";
        json_t *asked_doc = items[i].data != NULL
                                ? ag_json_parse(items[i].data, strlen(items[i].data), NULL, 0)
                                : NULL;
        struct ag_money asked = { .amount =
                                      json_integer_value(json_object_get(asked_doc, "amount")) };
        const char *cur = json_string_value(json_object_get(asked_doc, "currency"));
        snprintf(asked.currency, sizeof(asked.currency), "%s", cur != NULL ? cur : "XXX");
        json_decref(asked_doc);
        json_t *data = pay_events_failed(NULL, order, asked, "timeout", ag_time_unix_ms());
        rc = ag_store_begin(pay->store);
        if (rc == 0)
            rc = pay_events_publish(pay->events, "payment.failed", data, NULL);
        if (rc == 0)
            rc = pay_step_done(pay->idem, key, order, "authorize", "payment.failed", data,
                               ag_time_unix_ms());
        rc = rc == 0 ? ag_store_commit(pay->store) : rc;
        if (rc != 0)
            ag_store_rollback(pay->store);
        json_decref(data);
        if (rc == 0)
            AG_LOGW("payments", "step '%s' was at the provider when the service stopped: failed",
                    key);
    }
    ag_free(items);
    ag_pool_free(pool);
    return rc;
}
