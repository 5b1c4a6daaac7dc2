/* SPDX-License-Identifier: MIT */
/* What the HTTP API and the saga's commands share: authorizations that wait
 * for the provider under a deadline (a timer on the loop, never a blocking
 * call), the changes of a payment (capture, void, refund, expiry) applied in
 * the caller's transaction with their event, the expiry sweep, and the
 * metrics they count. */
#include "agora/base.h"
#include "payments.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/trace.h"

void
pay_count(struct pay *pay, const char *op, const char *outcome, int64_t amount,
          const char *currency)
{
    if (pay->m_total != NULL) {
        const char *labels[] = { op, outcome };
        ag_counter_add(pay->m_total, labels, 1);
    }
    if (pay->m_amount != NULL && currency != NULL && amount > 0) {
        const char *labels[] = { op, currency };
        ag_counter_add(pay->m_amount, labels, (double)amount);
    }
}

/* ---- Authorizations in flight ---- */

struct pay_auth {
    struct pay *pay;
    struct pay_auth *next;          /* in pay->inflight */
    struct pay_provider_call *call; /* NULL once answered or abandoned */
    uv_timer_t deadline;
    char order_id[AG_UUID_STRLEN + 1];
    char user_id[PAY_USER_MAX + 1];
    char step_key[PAY_STEP_KEY_MAX + 1]; /* "" for HTTP */
    char traceparent[AG_TRACEPARENT_LEN + 1];
    struct ag_span span; /* the call to the provider (recording when traced) */
    struct ag_money amount;
    int (*in_tx)(struct pay *pay, struct ag_store *st, const struct pay_auth_done *done,
                 void *udata);
    pay_auth_done_fn done;
    void *udata;
};

bool
pay_auth_inflight(struct pay *pay, const char *order_id)
{
    for (struct pay_auth *a = pay->inflight; a != NULL; a = a->next) {
        if (strcmp(a->order_id, order_id) == 0)
            return true;
    }
    return false;
}

static void
count_inflight(struct pay *pay, double delta)
{
    if (pay->m_inflight != NULL)
        ag_gauge_add(pay->m_inflight, NULL, delta);
}

static void
unlink_auth(struct pay_auth *a)
{
    count_inflight(a->pay, -1);
    struct pay_auth **pp = &a->pay->inflight;
    while (*pp != NULL && *pp != a)
        pp = &(*pp)->next;
    if (*pp == a)
        *pp = a->next;
    a->next = NULL;
}

struct finish_tx {
    struct pay_auth *a;
    struct pay_auth_done done;
    struct pay_payment *p; /* approved: the payment to record */
    bool dropped;          /* the saga step is no longer pending */
};

static int
finish_tx_fn(struct ag_store *st, void *arg)
{
    struct finish_tx *t = arg;
    struct pay_auth *a = t->a;
    struct pay *pay = a->pay;
    int rc;
    if (a->step_key[0] != '\0') {
        struct pay_step step;
        rc = pay_step_get(pay->idem, a->step_key, &step);
        json_decref(step.reply_data);
        if (rc == AG_ENOENT || (rc == 0 && step.done)) {
            t->dropped = true;
            return 0;
        }
        if (rc != 0)
            return rc;
    }
    const char *type;
    json_t *data;
    if (t->p != NULL) {
        rc = pay_store_payment_insert(st, t->p);
        if (rc != 0)
            return rc;
        type = "payment.authorized";
        data = pay_events_authorized(t->p);
    } else {
        type = "payment.failed";
        data = pay_events_failed(NULL, a->order_id, a->amount,
                                 pay_auth_outcome_reason(t->done.outcome), ag_time_unix_ms());
    }
    const char *tp = a->traceparent[0] ? a->traceparent : NULL;
    rc = pay_events_publish(pay->events, type, data, tp);
    if (rc == 0 && a->step_key[0] != '\0')
        rc = pay_step_done(pay->idem, a->step_key, a->order_id, "authorize", type, data,
                           ag_time_unix_ms());
    json_decref(data);
    if (rc == 0 && a->in_tx != NULL)
        rc = a->in_tx(pay, st, &t->done, a->udata);
    return rc;
}

static void
auth_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

/* The provider answered ('res') or the deadline passed ('res' NULL). */
static void
finish(struct pay_auth *a, const struct pay_auth_result *res)
{
    struct pay *pay = a->pay;
    unlink_auth(a);
    uv_timer_stop(&a->deadline);
    struct pay_payment p;
    struct finish_tx t = { .a = a };
    t.done.outcome = res != NULL ? res->outcome : PAY_AUTH_NO_ANSWER;
    if (res != NULL && res->outcome == PAY_AUTH_APPROVED) {
        int64_t now = ag_time_unix_ms();
        memset(&p, 0, sizeof(p));
        ag_uuid7(p.id);
        memcpy(p.order_id, a->order_id, sizeof(p.order_id));
        memcpy(p.user_id, a->user_id, sizeof(p.user_id));
        p.status = PAY_AUTHORIZED;
        memcpy(p.currency, a->amount.currency, sizeof(p.currency));
        p.amount = a->amount.amount;
        p.card = res->card;
        snprintf(p.provider_ref, sizeof(p.provider_ref), "%s", res->ref);
        p.created_at = p.updated_at = now;
        p.expires_at = now + (int64_t)pay->settings.auth_ttl_ms;
        t.p = &p;
        t.done.payment = &p;
    }
    int rc = ag_store_tx(pay->store, finish_tx_fn, &t);
    t.done.rc = rc;
    if (t.p != NULL && (rc != 0 || t.dropped)) {
        /* Recorded nowhere, so held nowhere. */
        pay->provider->ops->release(pay->provider, res->ref);
        t.done.payment = NULL;
    }
    const char *outcome = rc != 0     ? "error"
                          : t.dropped ? "dropped"
                                      : pay_auth_outcome_reason(t.done.outcome);
    if (rc == 0 && !t.dropped && t.p != NULL)
        outcome = "success";
    ag_span_attr_str(&a->span, "payment.outcome", outcome);
    if (strcmp(outcome, "success") != 0)
        ag_span_error(&a->span, outcome);
    ag_span_end(&a->span);
    pay_count(pay, "authorize", outcome, t.p != NULL ? p.amount : 0,
              t.p != NULL && rc == 0 ? p.currency : NULL);
    if (rc == 0) {
        pay_events_kick(pay->events);
        AG_LOGI("payments", "authorization of %lld %s for order %s: %s%s%s",
                (long long)a->amount.amount, a->amount.currency, a->order_id, outcome,
                t.p != NULL ? " as payment " : "", t.p != NULL ? p.id : "");
    } else {
        AG_LOGE("payments", "cannot record the authorization for order %s: %s", a->order_id,
                ag_strerror(rc));
    }
    if (a->done != NULL)
        a->done(pay, &t.done, a->udata);
    uv_close((uv_handle_t *)&a->deadline, auth_closed);
}

static void
on_provider(struct pay_provider *prov, const struct pay_auth_result *res, void *udata)
{
    AG_UNUSED(prov);
    struct pay_auth *a = udata;
    a->call = NULL;
    finish(a, res);
}

static void
on_deadline(uv_timer_t *t)
{
    struct pay_auth *a = t->data;
    struct pay *pay = a->pay;
    if (a->call != NULL) {
        pay->provider->ops->cancel(pay->provider, a->call);
        a->call = NULL;
    }
    finish(a, NULL);
}

int
pay_auth_start(struct pay *pay, const struct pay_auth_req *req)
{
    struct pay_auth *a = ag_calloc(1, sizeof(*a));
    a->pay = pay;
    snprintf(a->order_id, sizeof(a->order_id), "%s", req->order_id);
    snprintf(a->user_id, sizeof(a->user_id), "%s", req->user_id);
    snprintf(a->step_key, sizeof(a->step_key), "%s", req->step_key ? req->step_key : "");
    snprintf(a->traceparent, sizeof(a->traceparent), "%s",
             req->traceparent ? req->traceparent : "");
    /* The provider call's span, a child of the request or delivery being
     * handled; the answer's event continues from it. */
    struct ag_trace_ctx parent;
    const struct ag_trace_ctx *cur = ag_trace_current();
    if (cur == NULL && a->traceparent[0] != '\0' &&
        ag_trace_parse(ag_str_from_cstr(a->traceparent), &parent) == 0) {
        memcpy(parent.span_id, parent.parent_id, sizeof(parent.span_id));
        cur = &parent;
    }
    if (cur != NULL) {
        struct ag_trace_ctx child;
        ag_trace_child(cur, &child);
        ag_span_begin(&a->span, &child, "payment.authorize", AG_SPAN_CLIENT);
        ag_span_attr_str(&a->span, "payment.provider", pay->provider->ops->name);
        ag_span_attr_str(&a->span, "payment.order_id", a->order_id);
        ag_trace_format(&child, a->traceparent);
    }
    a->amount = req->amount;
    a->in_tx = req->in_tx;
    a->done = req->done;
    a->udata = req->udata;
    int rc = pay->provider->ops->authorize(pay->provider, req->token, req->amount, on_provider, a,
                                           &a->call);
    if (rc != 0) {
        ag_free(a);
        return rc;
    }
    uv_timer_init(pay->loop, &a->deadline);
    a->deadline.data = a;
    uv_timer_start(&a->deadline, on_deadline, pay->settings.provider_timeout_ms, 0);
    a->next = pay->inflight;
    pay->inflight = a;
    count_inflight(pay, 1);
    return 0;
}

void
pay_auth_abandon_all(struct pay *pay)
{
    while (pay->inflight != NULL)
        on_deadline(&pay->inflight->deadline);
}

/* ---- Changes of a payment ---- */

static const char *const OP_NAMES[] = {
    [PAY_OP_CAPTURE] = "capture",
    [PAY_OP_VOID] = "void",
    [PAY_OP_REFUND] = "refund",
    [PAY_OP_EXPIRE] = "expire",
};

int
pay_change(struct pay *pay, struct ag_store *st, struct pay_payment *p, enum pay_op op,
           int64_t amount, const char *reason, struct pay_refund *r, const char *traceparent,
           json_t **out_reply)
{
    int64_t now = ag_time_unix_ms();
    int rc = pay_payment_apply(p, op, amount, reason, now);
    if (rc != 0) {
        pay_count(pay, OP_NAMES[op], "rejected", 0, NULL);
        return rc;
    }
    struct pay_provider *prov = pay->provider;
    struct ag_money m = { .amount = amount };
    memcpy(m.currency, p->currency, sizeof(m.currency));
    const char *type;
    json_t *data = NULL;
    switch (op) {
    case PAY_OP_CAPTURE: rc = prov->ops->capture(prov, p->provider_ref, m); break;
    case PAY_OP_REFUND: rc = prov->ops->refund(prov, p->provider_ref, m); break;
    default:
        m.amount = p->amount;
        rc = prov->ops->release(prov, p->provider_ref);
        break;
    }
    if (rc != 0) {
        AG_LOGE("payments", "provider cannot %s payment %s: %s", OP_NAMES[op], p->id,
                ag_strerror(rc));
        pay_count(pay, OP_NAMES[op], "error", 0, NULL);
        return AG_EUNAVAIL;
    }
    rc = pay_store_payment_update(st, p);
    if (rc != 0)
        return rc;
    switch (op) {
    case PAY_OP_CAPTURE:
        type = "payment.captured";
        data = pay_events_captured(p);
        break;
    case PAY_OP_REFUND:
        memset(r, 0, sizeof(*r));
        ag_uuid7(r->id);
        memcpy(r->payment_id, p->id, sizeof(r->payment_id));
        r->amount = amount;
        snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "requested");
        r->created_at = now;
        rc = pay_store_refund_insert(st, r);
        if (rc != 0)
            return rc;
        type = "payment.refunded";
        data = pay_events_refunded(p, r);
        break;
    default:
        type = "payment.voided";
        data = pay_events_voided(p);
        break;
    }
    rc = pay_events_publish(pay->events, type, data, traceparent);
    if (rc != 0) {
        json_decref(data);
        return rc;
    }
    pay_count(pay, OP_NAMES[op], "success", m.amount, p->currency);
    if (out_reply != NULL)
        *out_reply = data;
    else
        json_decref(data);
    return 0;
}

/* ---- Sweep ---- */

struct sweep_tx {
    struct pay *pay;
    int64_t now;
    size_t expired;
};

static int
sweep_tx_fn(struct ag_store *st, void *arg)
{
    struct sweep_tx *t = arg;
    t->expired = 0;
    char ids[PAY_SWEEP_BATCH][AG_UUID_STRLEN + 1];
    size_t n = 0;
    int rc = pay_store_payment_expired(st, t->now, PAY_SWEEP_BATCH, ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct pay_payment p;
        rc = pay_store_payment_get(st, ids[i], &p);
        if (rc == 0)
            rc = pay_change(t->pay, st, &p, PAY_OP_EXPIRE, 0, NULL, NULL, NULL, NULL);
        if (rc == 0)
            t->expired++;
    }
    return rc;
}

void
pay_sweep(struct pay *pay)
{
    struct sweep_tx t = { .pay = pay, .now = ag_time_unix_ms() };
    /* Once: the body calls the provider (release), which a rerun would
     * call again. */
    int rc = ag_store_tx_once(pay->store, sweep_tx_fn, &t);
    if (rc != 0) {
        AG_LOGE("payments", "sweep failed: %s", ag_strerror(rc));
        return;
    }
    if (t.expired > 0) {
        pay_events_kick(pay->events);
        AG_LOGI("payments", "released %zu expired authorization(s)", t.expired);
    }
}
