/* SPDX-License-Identifier: MIT */
/* The checkout saga (DESIGN.md "The checkout saga"), orchestrated here:
 * every step is a command written to the outbox in the same transaction as
 * its saga_steps row and the order event that led to it, so the saga's
 * state is persisted before every step and a process killed at any moment
 * resumes from the database (the timer re-sends what is due). Each step's
 * idempotency key is "<order_id>:<step>"; a re-sent command carries the
 * same key. Replies arrive as participants' events through the inbox.
 *
 *   reserve -> [token] authorize -> ship -> capture + commit -> CONFIRMED
 *   no token: reserve -> AWAITING_PAYMENT -> payment.authorized -> ship ...
 *   failures: compensations (release, void or refund, cancel shipment),
 *   each idempotent and harmless when its step never took effect. */
#include "agora/base.h"
#include "orders.h"

#include <string.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/trace.h"

/* ---- Order events: append with expected version, project, publish ---- */

int
orders_load(struct ag_store *st, const char *id, json_t **out_state)
{
    return orders_store_order_get(st, id, out_state);
}

static void
now_text(char out[AG_RFC3339_LEN])
{
    ag_time_rfc3339(ag_time_unix_ms(), out);
}

static void
count_outcome(struct orders *o, const char *outcome)
{
    const char *labels[] = { outcome };
    ag_counter_add(o->metrics.orders, labels, 1);
}

static void
observe_duration(struct orders *o, const json_t *state, const char *at)
{
    ag_histogram_observe(o->metrics.duration, NULL,
                         orders_seconds_between(orders_str(state, "created_at"), at));
}

/* The public event that move 'type' implies, if any. */
static int
publish_public(struct orders *o, const json_t *state, const char *type, const json_t *data,
               const char *at)
{
    const char *id = orders_str(state, "id");
    const char *user = orders_str(state, "user_id");
    json_t *ev = NULL;
    const char *etype = NULL;
    if (strcmp(type, "created") == 0) {
        etype = "order.created";
        ev = json_pack("{s:s, s:s, s:O, s:O, s:s}", "order_id", id, "user_id", user, "lines",
                       json_object_get(state, "lines"), "total", json_object_get(state, "total"),
                       "created_at", at);
        count_outcome(o, "created");
    } else if (strcmp(type, "confirmed") == 0) {
        etype = "order.confirmed";
        ev = json_pack("{s:s, s:s, s:O, s:s, s:s, s:s}", "order_id", id, "user_id", user, "total",
                       json_object_get(state, "total"), "payment_id",
                       orders_str(state, "payment_id"), "shipment_id",
                       orders_str(state, "shipment_id"), "confirmed_at", at);
        count_outcome(o, "confirmed");
        observe_duration(o, state, at);
    } else if (strcmp(type, "rejected") == 0 || strcmp(type, "cancelled") == 0) {
        etype = "order.cancelled";
        json_t *refunded = json_object_get(data, "refunded");
        ev = json_pack("{s:s, s:s, s:s, s:O, s:s}", "order_id", id, "user_id", user, "reason",
                       orders_str(state, "cancel_reason"), "refunded",
                       refunded != NULL ? refunded : json_null(), "cancelled_at", at);
        count_outcome(o, strcmp(type, "rejected") == 0 ? "rejected" : "cancelled");
        observe_duration(o, state, at);
    } else if (strcmp(type, "completed") == 0) {
        etype = "order.completed";
        ev = json_pack("{s:s, s:s, s:s}", "order_id", id, "user_id", user, "completed_at", at);
        count_outcome(o, "completed");
    }
    if (etype == NULL)
        return 0;
    int rc = orders_events_publish(o->events, etype, id, ev);
    json_decref(ev);
    return rc;
}

int
orders_append(struct orders *o, json_t *state, const char *type, json_t *data)
{
    char at[AG_RFC3339_LEN];
    now_text(at);
    int64_t expected = json_integer_value(json_object_get(state, "version"));
    int rc = orders_apply(state, type, data, at);
    if (rc != 0)
        return rc;
    char *doc = json_dumps(data, JSON_COMPACT);
    rc = orders_store_event_insert(o->store, orders_str(state, "id"), expected + 1, type, doc, at);
    ag_free(doc);
    if (rc == AG_EEXIST)
        rc = AG_EPRECOND; /* optimistic concurrency: another writer took that version */
    if (rc == 0)
        rc = orders_store_order_put(o->store, state, expected);
    if (rc == 0)
        rc = publish_public(o, state, type, data, at);
    return rc;
}

/* Append a move with no data. */
static int
append0(struct orders *o, json_t *state, const char *type)
{
    json_t *data = json_object();
    int rc = orders_append(o, state, type, data);
    json_decref(data);
    return rc;
}

/* ---- Steps ---- */

/* The metric label of a step: its name before any ':'. */
static void
step_base(const char *step, char *out, size_t cap)
{
    size_t n = strcspn(step, ":");
    snprintf(out, cap, "%.*s", (int)n, step);
}

static void
count_step(struct orders *o, const char *step, const char *outcome)
{
    char base[32];
    step_base(step, base, sizeof(base));
    const char *labels[] = { base, outcome };
    ag_counter_add(o->metrics.steps, labels, 1);
}

/* Send step 'step' of order 'id' as command 'type' with 'data' (stolen):
 * once. A step already sent is not sent again here (its retries are the
 * timer's, with the same step_key). */
static int
send_step(struct orders *o, const char *id, const char *step, const char *type, json_t *data)
{
    struct orders_step s;
    int rc = orders_store_step_get(o->store, id, step, &s);
    if (rc == 0) {
        ag_free(s.command);
        json_decref(data);
        return 0;
    }
    if (rc != AG_ENOENT) {
        json_decref(data);
        return rc;
    }
    char key[160];
    snprintf(key, sizeof(key), "%s:%s", id, step);
    json_object_set_new(data, "order_id", json_string(id));
    json_object_set_new(data, "step_key", json_string(key));
    char *cmd = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    char at[AG_RFC3339_LEN];
    now_text(at);
    rc = orders_store_step_insert(o->store, id, step, type, cmd, at,
                                  ag_time_unix_ms() + (int64_t)o->settings.step_timeout_ms);
    ag_free(cmd);
    if (rc == 0 && o->events != NULL)
        rc = ag_events_publish(o->events, type, id, data, NULL, NULL);
    json_decref(data);
    if (rc == 0)
        count_step(o, step, "sent");
    return rc;
}

/* Record 'outcome' for the pending steps named 'step' (or 'step:*'). */
static int
step_outcome(struct orders *o, const char *id, const char *step, const char *outcome,
             int64_t *out_n)
{
    char at[AG_RFC3339_LEN];
    now_text(at);
    int64_t n = 0;
    int64_t sent_ms = 0;
    int rc = orders_store_step_outcome(o->store, id, step, outcome, at, &n, &sent_ms);
    if (rc == 0 && n > 0) {
        count_step(o, step, outcome);
        /* From the last attempt's send to its reply: the participant's
         * latency plus two trips through the bus. */
        int64_t now = ag_time_unix_ms();
        if (sent_ms > 0 && now >= sent_ms) {
            char base[32];
            step_base(step, base, sizeof(base));
            const char *labels[] = { base };
            ag_histogram_observe(o->metrics.step_latency, labels, (double)(now - sent_ms) / 1000.0);
            /* The step as a span, from its send to this reply, in the
             * reply's trace (the delivery being handled). */
            const struct ag_trace_ctx *cur = ag_trace_current();
            if (cur != NULL) {
                struct ag_trace_ctx ctx;
                ag_trace_child(cur, &ctx);
                char name[AG_SPAN_MAX_TEXT];
                snprintf(name, sizeof(name), "saga.step %s", base);
                struct ag_span span;
                ag_span_begin(&span, &ctx, name, AG_SPAN_INTERNAL);
                span.start_ns = sent_ms * 1000000;
                ag_span_attr_str(&span, "saga.name", "checkout");
                ag_span_attr_str(&span, "saga.step", base);
                ag_span_attr_str(&span, "saga.outcome", outcome);
                ag_span_attr_str(&span, "order.id", id);
                static const char *const failed[] = { "rejected", "failed", "timeout",
                                                      "abandoned" };
                for (size_t f = 0; f < AG_ARRAY_SIZE(failed); f++) {
                    if (strcmp(outcome, failed[f]) == 0)
                        ag_span_error(&span, outcome);
                }
                ag_span_end(&span);
            }
        }
    }
    if (out_n != NULL)
        *out_n = n;
    return rc;
}

/* The reply to compensation 'base' about resource 'rid': the late step
 * "<base>-<rid>" when there is one pending, else the step 'base'. */
static int
reply_outcome(struct orders *o, const char *id, const char *base, const char *rid,
              const char *outcome)
{
    int64_t n = 0;
    int rc = 0;
    if (rid != NULL && rid[0] != '\0') {
        char step[96];
        snprintf(step, sizeof(step), "%s-%s", base, rid);
        rc = step_outcome(o, id, step, outcome, &n);
    }
    if (rc == 0 && n == 0)
        rc = step_outcome(o, id, base, outcome, NULL);
    return rc;
}

/* Step 'step' of 'id': was it sent ('*out_sent'), is it pending, its outcome. */
static int
step_info(struct orders *o, const char *id, const char *step, bool *out_sent, bool *out_pending,
          char outcome[32])
{
    struct orders_step s;
    int rc = orders_store_step_get(o->store, id, step, &s);
    *out_sent = false;
    *out_pending = false;
    outcome[0] = '\0';
    if (rc == AG_ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    *out_sent = true;
    *out_pending = s.pending;
    snprintf(outcome, 32, "%s", s.outcome);
    ag_free(s.command);
    return 0;
}

/* ---- Forward steps ----
 * Each command's data is exactly what its consumer's schema lists
 * (contracts/events/cmd.*.schema.json: closed objects): the participants act
 * on the order's reservation, payment or shipment, found by order id. */

/* An order line as the commands carry it: {product_id, quantity}. */
static json_t *
command_line(const json_t *l)
{
    return json_pack("{s:O, s:O}", "product_id", json_object_get(l, "product_id"), "quantity",
                     json_object_get(l, "quantity"));
}

static json_t *
command_lines(const json_t *state)
{
    json_t *lines = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l)
    {
        json_array_append_new(lines, command_line(l));
    }
    return lines;
}

int
orders_saga_start(struct orders *o, json_t *state)
{
    json_t *lines = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(state, "lines"), i, l)
    {
        json_array_append_new(lines, command_line(l));
    }
    return send_step(o, orders_str(state, "id"), "reserve", "cmd.inventory.reserve",
                     json_pack("{s:o}", "lines", lines));
}

static int
send_authorize(struct orders *o, const json_t *state)
{
    return send_step(o, orders_str(state, "id"), "authorize", "cmd.payment.authorize",
                     json_pack("{s:O, s:s, s:s}", "amount", json_object_get(state, "total"),
                               "payment_token", orders_str(state, "payment_token"), "user_id",
                               orders_str(state, "user_id")));
}

static int
send_ship(struct orders *o, const json_t *state)
{
    return send_step(o, orders_str(state, "id"), "ship", "cmd.shipment.create",
                     json_pack("{s:O, s:o, s:s}", "address",
                               json_object_get(state, "shipping_address"), "lines",
                               command_lines(state), "user_id", orders_str(state, "user_id")));
}

static int
send_capture_commit(struct orders *o, const json_t *state)
{
    const char *id = orders_str(state, "id");
    int rc = send_step(o, id, "capture", "cmd.payment.capture",
                       json_pack("{s:O}", "amount", json_object_get(state, "total")));
    if (rc == 0)
        rc = send_step(o, id, "commit", "cmd.inventory.commit", json_object());
    return rc;
}

static int
try_confirm(struct orders *o, json_t *state)
{
    if (!orders_is_confirmable(state))
        return 0;
    return append0(o, state, "confirmed");
}

/* ---- Compensation ---- */

/* End the order as CANCELLED with 'reason', sending every compensation its
 * steps call for. A step whose outcome is unknown (pending, timed out) is
 * compensated too: every compensation is idempotent and harmless when its
 * step never took effect. 'skip_release': the reservation is gone already
 * (it expired). */
static int
compensate(struct orders *o, json_t *state, const char *reason, bool skip_release)
{
    const char *id = orders_str(state, "id");
    bool res_sent;
    bool res_pending;
    bool auth_sent;
    bool auth_pending;
    bool ship_sent;
    bool ship_pending;
    char res_out[32];
    char auth_out[32];
    char ship_out[32];
    int rc = step_info(o, id, "reserve", &res_sent, &res_pending, res_out);
    if (rc == 0)
        rc = step_info(o, id, "authorize", &auth_sent, &auth_pending, auth_out);
    if (rc == 0)
        rc = step_info(o, id, "ship", &ship_sent, &ship_pending, ship_out);
    bool commit_sent;
    bool commit_pending;
    char commit_out[32];
    if (rc == 0)
        rc = step_info(o, id, "commit", &commit_sent, &commit_pending, commit_out);
    /* Forward steps still waiting are abandoned: their replies, if any
     * come, are late and compensated on arrival. */
    static const char *const FORWARD[] = { "reserve", "authorize", "ship", "capture", "commit" };
    for (size_t i = 0; rc == 0 && i < AG_ARRAY_SIZE(FORWARD); i++)
        rc = step_outcome(o, id, FORWARD[i], "abandoned", NULL);
    if (rc != 0)
        return rc;

    json_t *refunded = json_null();
    const char *pay = orders_str(state, "payment_status");
    if (strcmp(pay, "paid") == 0) {
        rc = send_step(
            o, id, "refund", "cmd.payment.refund",
            json_pack("{s:O, s:s}", "amount", json_object_get(state, "total"), "reason", reason));
        if (strcmp(reason, "customer_request") == 0) {
            json_decref(refunded);
            refunded = json_deep_copy(json_object_get(state, "total"));
        }
    } else if (strcmp(pay, "authorized") == 0) {
        rc = send_step(o, id, "void", "cmd.payment.void", json_pack("{s:s}", "reason", reason));
    } else if (auth_sent && strcmp(auth_out, "failed") != 0) {
        /* Outcome unknown: void whatever the authorization may have done. */
        rc = send_step(o, id, "void", "cmd.payment.void", json_pack("{s:s}", "reason", reason));
    }
    bool committed = json_is_true(json_object_get(state, "committed"));
    if (rc == 0 && !skip_release && !committed && res_sent && strcmp(res_out, "rejected") != 0 &&
        !json_is_true(json_object_get(state, "released"))) {
        rc = send_step(o, id, "release", "cmd.inventory.release",
                       json_pack("{s:s}", "reason", orders_release_reason(reason)));
    }
    /* Committed units (or a commit whose answer is still on its way) are
     * put back on hand: restock is once per reservation on inventory's
     * side, and answers returned false when nothing was committed. */
    if (rc == 0 && (committed || commit_sent) &&
        !json_is_true(json_object_get(state, "restocked"))) {
        rc = send_step(o, id, "restock", "cmd.inventory.restock",
                       json_pack("{s:s}", "reason", "order_cancelled"));
    }
    if (rc == 0 && (json_is_string(json_object_get(state, "shipment_id")) ||
                    (ship_sent && strcmp(ship_out, "failed") != 0))) {
        rc = send_step(o, id, "cancel_shipment", "cmd.shipment.cancel",
                       json_pack("{s:s}", "reason", reason));
    }
    if (rc == 0) {
        json_t *data = json_pack("{s:s, s:O}", "reason", reason, "refunded", refunded);
        rc = orders_append(o, state, "cancelled", data);
        json_decref(data);
    }
    json_decref(refunded);
    return rc;
}

int
orders_saga_cancel(struct orders *o, json_t *state, const char **out_why)
{
    const char *status = orders_str(state, "status");
    const char *cancel = orders_str(state, "cancel_status");
    if (strcmp(status, ORDERS_CANCELLED) == 0 || strcmp(status, ORDERS_REJECTED) == 0 ||
        strcmp(status, ORDERS_COMPLETED) == 0) {
        *out_why = "terminal";
        return AG_ECONFLICT;
    }
    if (json_is_true(json_object_get(state, "shipped")) || strcmp(cancel, "refused") == 0) {
        *out_why = "shipped";
        return AG_ECONFLICT;
    }
    if (strcmp(status, ORDERS_CONFIRMED) != 0)
        return compensate(o, state, "customer_request", false);
    /* Confirmed: money captured, stock committed, a shipment that may be
     * dispatched at any moment. The shipment's cancel goes first; only
     * shipment.cancelled refunds and restocks (on_shipment_cancelled), and
     * shipment.cancel_rejected leaves the order as it is (on_cancel_rejected). */
    if (strcmp(cancel, "requested") == 0)
        return 0; /* asked already: the same answer */
    json_t *d = json_pack("{s:s}", "reason", "customer_request");
    int rc = orders_append(o, state, "cancel_requested", d);
    json_decref(d);
    if (rc == 0)
        rc = send_step(o, orders_str(state, "id"), "cancel_shipment", "cmd.shipment.cancel",
                       json_pack("{s:s}", "reason", "customer_request"));
    return rc;
}

/* ---- Replies ---- */

static bool
status_is(const json_t *state, const char *s)
{
    return strcmp(orders_str(state, "status"), s) == 0;
}

static bool
is_closed(const json_t *state)
{
    return status_is(state, ORDERS_CANCELLED) || status_is(state, ORDERS_REJECTED);
}

/* A late success of a step the saga moved past: undo it with a step of its
 * own ("<comp>-<id>"), so that the key differs from a compensation that
 * found nothing to undo. */
static int
undo_late(struct orders *o, const char *id, const char *comp, const char *type, const char *rid,
          json_t *data)
{
    char step[96];
    snprintf(step, sizeof(step), "%s-%s", comp, rid);
    return send_step(o, id, step, type, data);
}

static bool
money_equal(const json_t *a, const json_t *b)
{
    return json_integer_value(json_object_get(a, "amount")) ==
               json_integer_value(json_object_get(b, "amount")) &&
           json_is_string(json_object_get(a, "currency")) &&
           strcmp(orders_str(a, "currency"), orders_str(b, "currency")) == 0;
}

static int
on_reserved(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    const char *rid = orders_str(data, "reservation_id");
    if (rid[0] == '\0')
        return 0;
    if (status_is(state, ORDERS_PENDING) &&
        !json_is_string(json_object_get(state, "reservation_id"))) {
        int rc = step_outcome(o, id, "reserve", "reserved", NULL);
        json_t *d = json_pack("{s:s}", "reservation_id", rid);
        if (rc == 0)
            rc = orders_append(o, state, "stock_reserved", d);
        json_decref(d);
        if (rc == 0 && json_is_string(json_object_get(state, "payment_token")))
            rc = send_authorize(o, state);
        return rc;
    }
    if (is_closed(state) && strcmp(rid, orders_str(state, "reservation_id")) != 0)
        return undo_late(o, id, "release", "cmd.inventory.release", rid,
                         json_pack("{s:s}", "reason", "cancelled"));
    return 0; /* a duplicate */
}

static int
on_rejected(struct orders *o, json_t *state)
{
    if (!status_is(state, ORDERS_PENDING) ||
        json_is_string(json_object_get(state, "reservation_id")))
        return 0;
    int rc = step_outcome(o, orders_str(state, "id"), "reserve", "rejected", NULL);
    if (rc != 0)
        return rc;
    json_t *d = json_pack("{s:s}", "reason", "out_of_stock");
    rc = orders_append(o, state, "rejected", d);
    json_decref(d);
    return rc;
}

static int
on_released(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    int rc = reply_outcome(o, id, "release", orders_str(data, "reservation_id"), "released");
    if (rc != 0 || json_is_true(json_object_get(state, "released")))
        return rc;
    const char *rid = orders_str(data, "reservation_id");
    const char *mine = orders_str(state, "reservation_id");
    if (mine[0] != '\0' && strcmp(rid, mine) != 0)
        return 0; /* a late reservation's release */
    bool expired = strcmp(orders_str(data, "reason"), "expired") == 0;
    rc = append0(o, state, "stock_released");
    if (rc == 0 && expired &&
        (status_is(state, ORDERS_AWAITING_PAYMENT) || status_is(state, ORDERS_PENDING)))
        rc = compensate(o, state, "timeout", true);
    return rc;
}

static int
on_committed(struct orders *o, json_t *state)
{
    int rc = step_outcome(o, orders_str(state, "id"), "commit", "committed", NULL);
    if (rc != 0 || !status_is(state, ORDERS_PENDING) ||
        json_is_true(json_object_get(state, "committed")))
        return rc;
    rc = append0(o, state, "stock_committed");
    return rc == 0 ? try_confirm(o, state) : rc;
}

static int
on_authorized(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    const char *pid = orders_str(data, "payment_id");
    const json_t *amount = json_object_get(data, "amount");
    if (pid[0] == '\0')
        return 0;
    if (strcmp(pid, orders_str(state, "payment_id")) == 0)
        return 0; /* a duplicate */
    bool waiting = status_is(state, ORDERS_AWAITING_PAYMENT) ||
                   (status_is(state, ORDERS_PENDING) &&
                    json_is_string(json_object_get(state, "payment_token")) &&
                    json_is_string(json_object_get(state, "reservation_id")));
    bool unpaid = strcmp(orders_str(state, "payment_status"), "unpaid") == 0;
    if (!waiting || !unpaid) /* late, or a second authorization: give it back */
        return undo_late(o, id, "void", "cmd.payment.void", pid,
                         json_pack("{s:s}", "reason", "late"));
    if (!money_equal(amount, json_object_get(state, "total"))) {
        /* Not the order's total: void it; the order keeps waiting. */
        AG_LOGW("saga", "order '%s': authorization '%s' is not the order's total; voided", id, pid);
        return undo_late(o, id, "void", "cmd.payment.void", pid,
                         json_pack("{s:s}", "reason", "wrong_amount"));
    }
    int rc = step_outcome(o, id, "authorize", "authorized", NULL);
    json_t *d = json_pack("{s:s, s:O}", "payment_id", pid, "amount", amount);
    if (rc == 0)
        rc = orders_append(o, state, "payment_authorized", d);
    json_decref(d);
    if (rc == 0)
        rc = send_ship(o, state);
    return rc;
}

static int
on_payment_failed(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    bool sent, pending;
    char out[32];
    int rc = step_info(o, id, "authorize", &sent, &pending, out);
    if (rc != 0 || !pending || !status_is(state, ORDERS_PENDING))
        return rc; /* a pay-later attempt failed: the order keeps waiting */
    rc = step_outcome(o, id, "authorize", "failed", NULL);
    return rc == 0
               ? compensate(o, state, orders_reason_for_payment_failure(orders_str(data, "reason")),
                            false)
               : rc;
}

static int
on_captured(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    int rc = step_outcome(o, id, "capture", "captured", NULL);
    if (rc != 0)
        return rc;
    if (status_is(state, ORDERS_PENDING) &&
        strcmp(orders_str(state, "payment_status"), "authorized") == 0) {
        json_t *d = json_pack("{s:O}", "amount", json_object_get(data, "amount"));
        rc = orders_append(o, state, "payment_captured", d);
        json_decref(d);
        return rc == 0 ? try_confirm(o, state) : rc;
    }
    if (is_closed(state) && strcmp(orders_str(state, "payment_status"), "authorized") == 0) {
        /* Captured while the cancellation's void was on its way: refund. */
        return undo_late(o, id, "refund", "cmd.payment.refund", orders_str(data, "payment_id"),
                         json_pack("{s:O, s:s}", "amount", json_object_get(data, "amount"),
                                   "reason", "cancelled"));
    }
    return 0;
}

static int
on_voided(struct orders *o, json_t *state, const json_t *data)
{
    int rc =
        reply_outcome(o, orders_str(state, "id"), "void", orders_str(data, "payment_id"), "voided");
    if (rc == 0 && strcmp(orders_str(state, "payment_status"), "authorized") == 0 &&
        strcmp(orders_str(data, "payment_id"), orders_str(state, "payment_id")) == 0)
        rc = append0(o, state, "payment_voided");
    return rc;
}

static int
on_refunded(struct orders *o, json_t *state, const json_t *data)
{
    int rc = reply_outcome(o, orders_str(state, "id"), "refund", orders_str(data, "payment_id"),
                           "refunded");
    const char *pay = orders_str(state, "payment_status");
    if (rc == 0 && (strcmp(pay, "paid") == 0 || strcmp(pay, "partially_refunded") == 0)) {
        json_t *d = json_pack(
            "{s:I}", "amount",
            json_integer_value(json_object_get(json_object_get(data, "amount"), "amount")));
        rc = orders_append(o, state, "payment_refunded", d);
        json_decref(d);
        if (rc == AG_ECONFLICT) {
            AG_LOGW("saga", "order '%s': refund beyond the captured amount ignored",
                    orders_str(state, "id"));
            rc = 0;
        }
    }
    return rc;
}

static int
on_shipment_created(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    const char *sid = orders_str(data, "shipment_id");
    if (sid[0] == '\0' || strcmp(sid, orders_str(state, "shipment_id")) == 0)
        return 0; /* a duplicate: capture and commit are sent once */
    if (status_is(state, ORDERS_PENDING) &&
        !json_is_string(json_object_get(state, "shipment_id")) &&
        strcmp(orders_str(state, "payment_status"), "authorized") == 0) {
        int rc = step_outcome(o, id, "ship", "created", NULL);
        json_t *d = json_pack("{s:s}", "shipment_id", sid);
        if (rc == 0)
            rc = orders_append(o, state, "shipment_created", d);
        json_decref(d);
        return rc == 0 ? send_capture_commit(o, state) : rc;
    }
    if (is_closed(state))
        return undo_late(o, id, "cancel_shipment", "cmd.shipment.cancel", sid,
                         json_pack("{s:s}", "reason", "cancelled"));
    return 0;
}

static int
on_shipment_cancelled(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    bool sent, pending;
    char out[32];
    int rc = step_info(o, id, "ship", &sent, &pending, out);
    if (rc == 0 && pending && status_is(state, ORDERS_PENDING)) {
        /* The answer to cmd.shipment.create: no shipment. */
        rc = step_outcome(o, id, "ship", "failed", NULL);
        return rc == 0 ? compensate(o, state, "shipment_failed", false) : rc;
    }
    if (rc == 0)
        rc = reply_outcome(o, id, "cancel_shipment", orders_str(data, "shipment_id"), "cancelled");
    if (rc == 0 && status_is(state, ORDERS_CONFIRMED) &&
        strcmp(orders_str(state, "cancel_status"), "requested") == 0 &&
        strcmp(orders_str(data, "shipment_id"), orders_str(state, "shipment_id")) == 0) {
        /* The customer's cancel: the shipment will not leave, so the money
         * goes back and the committed units go back on hand. */
        rc = compensate(o, state, "customer_request", false);
    }
    return rc;
}

/* Shipping refused the shipment's cancel: it was dispatched. A confirmed
 * order's cancel stops here: no refund, no restock, the order stays
 * CONFIRMED (then shipped, completed), and its history says why. */
static int
on_cancel_rejected(struct orders *o, json_t *state, const json_t *data)
{
    const char *id = orders_str(state, "id");
    int rc = reply_outcome(o, id, "cancel_shipment", orders_str(data, "shipment_id"), "rejected");
    if (rc != 0 || strcmp(orders_str(state, "cancel_status"), "requested") != 0)
        return rc;
    AG_LOGI("saga", "order '%s': cancel refused, the shipment is %s", id,
            orders_str(data, "status"));
    json_t *d = json_pack("{s:s}", "shipment_status", orders_str(data, "status"));
    rc = orders_append(o, state, "cancel_refused", d);
    json_decref(d);
    return rc;
}

static int
on_restocked(struct orders *o, json_t *state, const json_t *data)
{
    int rc = reply_outcome(o, orders_str(state, "id"), "restock",
                           orders_str(data, "reservation_id"), "restocked");
    if (rc == 0 && json_is_true(json_object_get(data, "returned")) &&
        json_is_true(json_object_get(state, "committed")) &&
        !json_is_true(json_object_get(state, "restocked")))
        rc = append0(o, state, "stock_restocked");
    return rc;
}

int
orders_saga_reply(struct orders *o, const json_t *event)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const json_t *data = json_object_get(event, "data");
    const char *id = json_string_value(json_object_get(data, "order_id"));
    if (type == NULL || id == NULL)
        return 0;
    json_t *state;
    int rc = orders_load(o->store, id, &state);
    if (rc == AG_ENOENT) {
        AG_LOGW("saga", "%s for unknown order '%s' ignored", type, id);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (strcmp(type, "inventory.reserved") == 0)
        rc = on_reserved(o, state, data);
    else if (strcmp(type, "inventory.rejected") == 0)
        rc = on_rejected(o, state);
    else if (strcmp(type, "inventory.released") == 0)
        rc = on_released(o, state, data);
    else if (strcmp(type, "inventory.committed") == 0)
        rc = on_committed(o, state);
    else if (strcmp(type, "payment.authorized") == 0)
        rc = on_authorized(o, state, data);
    else if (strcmp(type, "payment.failed") == 0)
        rc = on_payment_failed(o, state, data);
    else if (strcmp(type, "payment.captured") == 0)
        rc = on_captured(o, state, data);
    else if (strcmp(type, "payment.voided") == 0)
        rc = on_voided(o, state, data);
    else if (strcmp(type, "payment.refunded") == 0)
        rc = on_refunded(o, state, data);
    else if (strcmp(type, "shipment.created") == 0)
        rc = on_shipment_created(o, state, data);
    else if (strcmp(type, "shipment.cancelled") == 0)
        rc = on_shipment_cancelled(o, state, data);
    else if (strcmp(type, "shipment.cancel_rejected") == 0)
        rc = on_cancel_rejected(o, state, data);
    else if (strcmp(type, "inventory.restocked") == 0)
        rc = on_restocked(o, state, data);
    else if (strcmp(type, "shipment.shipped") == 0) {
        if (status_is(state, ORDERS_CONFIRMED) && !json_is_true(json_object_get(state, "shipped")))
            rc = append0(o, state, "shipped");
    } else if (strcmp(type, "shipment.delivered") == 0) {
        if (status_is(state, ORDERS_CONFIRMED))
            rc = append0(o, state, "completed");
    }
    json_decref(state);
    return rc;
}

/* ---- The timer: deadlines, retries, resumption ---- */

struct due_tx {
    struct orders *o;
    const char *order_id;
    const char *step;
    int64_t now_ms; /* the scan's time: the step was due then */
};

static bool
is_compensable(const char *step)
{
    return strcmp(step, "reserve") == 0 || strcmp(step, "authorize") == 0 ||
           strcmp(step, "ship") == 0;
}

static int
resend(struct orders *o, const struct orders_step *s)
{
    char at[AG_RFC3339_LEN];
    now_text(at);
    json_t *data = ag_json_parse(s->command, strlen(s->command), NULL, 0);
    if (data == NULL)
        return AG_EIO;
    int rc = orders_store_step_resent(o->store, s->order_id, s->step, at,
                                      ag_time_unix_ms() + (int64_t)o->settings.step_timeout_ms);
    if (rc == 0 && o->events != NULL)
        rc = ag_events_publish(o->events, s->type, s->order_id, data, NULL, NULL);
    json_decref(data);
    if (rc == 0)
        count_step(o, s->step, "retried");
    return rc;
}

static int
due_tx_fn(struct ag_store *store, void *arg)
{
    struct due_tx *t = arg;
    struct orders *o = t->o;
    struct orders_step s;
    int rc = orders_store_step_get(store, t->order_id, t->step, &s);
    if (rc != 0)
        return rc == AG_ENOENT ? 0 : rc;
    /* Answered, or resent meanwhile by another instance sharing the
     * database (its deadline moved on): nothing is due any more. */
    if (!s.pending || s.deadline_ms > t->now_ms) {
        ag_free(s.command);
        return 0;
    }
    if (s.attempt <= o->settings.step_retries || !is_compensable(s.step)) {
        /* Same command, same step_key: the participant answers again
         * without a second effect. Steps that cannot be undone (capture,
         * commit, compensations) keep being retried; past the retries the
         * saga is listed as failed. */
        if (s.attempt == o->settings.step_retries + 1)
            AG_LOGW("saga", "order '%s': step '%s' unanswered after %lld attempts", s.order_id,
                    s.step, (long long)s.attempt);
        rc = resend(o, &s);
        ag_free(s.command);
        return rc;
    }
    ag_free(s.command);
    json_t *state;
    rc = orders_load(store, t->order_id, &state);
    if (rc != 0)
        return rc;
    rc = step_outcome(o, t->order_id, t->step, "timeout", NULL);
    if (rc == 0 && (status_is(state, ORDERS_PENDING) || status_is(state, ORDERS_AWAITING_PAYMENT)))
        rc = compensate(o, state, "timeout", false);
    json_decref(state);
    return rc;
}

void
orders_saga_scan(struct orders *o)
{
    json_t *due = json_array();
    int64_t now = ag_time_unix_ms();
    int rc = orders_store_steps_due(o->store, now, ORDERS_SCAN_BATCH, due);
    if (rc != 0)
        AG_LOGE("saga", "cannot list due steps: %s", ag_strerror(rc));
    size_t i;
    json_t *row;
    bool any = false;
    json_array_foreach(due, i, row)
    {
        struct due_tx t = { .o = o,
                            .order_id = json_string_value(json_array_get(row, 0)),
                            .step = json_string_value(json_array_get(row, 1)),
                            .now_ms = now };
        rc = ag_store_tx(o->store, due_tx_fn, &t);
        if (rc != 0)
            AG_LOGE("saga", "order '%s': step '%s' not handled: %s", t.order_id, t.step,
                    ag_strerror(rc));
        any = any || rc == 0;
    }
    json_decref(due);
    if (any)
        orders_events_kick(o->events);
}

/* ---- Rebuild ---- */

int
orders_rebuild_check(struct ag_store *st, int64_t *out_n, json_t *bad)
{
    json_t *ids = json_array();
    int rc = orders_store_order_ids(st, ids);
    size_t i;
    json_t *idv;
    *out_n = 0;
    json_array_foreach(ids, i, idv)
    {
        if (rc != 0)
            break;
        const char *id = json_string_value(idv);
        json_t *events = NULL;
        json_t *projected = NULL;
        rc = orders_store_events(st, id, &events);
        if (rc == 0)
            rc = orders_store_order_get(st, id, &projected);
        if (rc == 0) {
            json_t *state = json_object();
            size_t j;
            json_t *e;
            bool ok = true;
            json_array_foreach(events, j, e)
            {
                if (ok && orders_apply(state, orders_str(e, "type"), json_object_get(e, "data"),
                                       orders_str(e, "created_at")) != 0)
                    ok = false;
            }
            if (!ok || !json_equal(state, projected))
                json_array_append_new(bad, json_string(id));
            json_decref(state);
            (*out_n)++;
        }
        json_decref(events);
        json_decref(projected);
    }
    json_decref(ids);
    return rc;
}
