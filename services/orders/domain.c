/* SPDX-License-Identifier: MIT */
/* Orders domain: the transition function of the event-sourced order, the
 * confirmation guard, the served representation and request validation.
 * Pure: no I/O, unit-tested by tests/test_domain.c. */
#include "agora/base.h"
#include "domain.h"

#include <string.h>

#include "agora/err.h"
#include "agora/str.h"
#include "agora/time.h"
#include "agora/uuid.h"

const char *
orders_str(const json_t *state, const char *field)
{
    const char *s = json_string_value(json_object_get(state, field));
    return s != NULL ? s : "";
}

static bool
is_status(const json_t *state, const char *status)
{
    return strcmp(orders_str(state, "status"), status) == 0;
}

static bool
is_pay(const json_t *state, const char *payment_status)
{
    return strcmp(orders_str(state, "payment_status"), payment_status) == 0;
}

static bool
flag(const json_t *state, const char *field)
{
    return json_is_true(json_object_get(state, field));
}

static void
set_str(json_t *state, const char *field, const char *value)
{
    json_object_set_new(state, field, value != NULL ? json_string(value) : json_null());
}

static int64_t
total_amount(const json_t *state)
{
    return json_integer_value(json_object_get(json_object_get(state, "total"), "amount"));
}

bool
orders_is_terminal(const json_t *state)
{
    return is_status(state, ORDERS_CONFIRMED) || is_status(state, ORDERS_CANCELLED) ||
           is_status(state, ORDERS_REJECTED) || is_status(state, ORDERS_COMPLETED);
}

bool
orders_is_confirmable(const json_t *state)
{
    return is_status(state, ORDERS_PENDING) && is_pay(state, "paid") && flag(state, "committed") &&
           json_is_string(json_object_get(state, "shipment_id"));
}

/* ---- The transition function ---- */

static int
apply_created(json_t *state, const json_t *data, const char *at)
{
    if (json_object_size(state) != 0)
        return AG_ECONFLICT;
    const char *id = json_string_value(json_object_get(data, "order_id"));
    const char *user = json_string_value(json_object_get(data, "user_id"));
    json_t *lines = json_object_get(data, "lines");
    json_t *total = json_object_get(data, "total");
    json_t *address = json_object_get(data, "shipping_address");
    if (id == NULL || user == NULL || !json_is_array(lines) || !json_is_object(total) ||
        !json_is_object(address))
        return AG_EINVAL;
    set_str(state, "id", id);
    set_str(state, "user_id", user);
    set_str(state, "status", ORDERS_PENDING);
    set_str(state, "payment_status", "unpaid");
    json_object_set_new(state, "lines", json_deep_copy(lines));
    json_object_set_new(state, "total", json_deep_copy(total));
    json_object_set_new(state, "shipping_address", json_deep_copy(address));
    json_t *token = json_object_get(data, "payment_token");
    json_object_set_new(state, "payment_token",
                        json_is_string(token) ? json_copy(token) : json_null());
    set_str(state, "reservation_id", NULL);
    set_str(state, "payment_id", NULL);
    set_str(state, "shipment_id", NULL);
    set_str(state, "cancel_reason", NULL);
    json_object_set_new(state, "refunded", json_null());
    json_object_set_new(state, "refunded_amount", json_integer(0));
    json_object_set_new(state, "committed", json_false());
    json_object_set_new(state, "released", json_false());
    json_object_set_new(state, "shipped", json_false());
    set_str(state, "created_at", at);
    return 0;
}

static int
apply_event(json_t *state, const char *type, const json_t *data, const char *at)
{
    const char *s;
    if (strcmp(type, "created") == 0)
        return apply_created(state, data, at);
    if (json_object_size(state) == 0)
        return AG_ECONFLICT; /* nothing but "created" starts an order */
    if (strcmp(type, "stock_reserved") == 0) {
        if (!is_status(state, ORDERS_PENDING) ||
            json_is_string(json_object_get(state, "reservation_id")))
            return AG_ECONFLICT;
        s = json_string_value(json_object_get(data, "reservation_id"));
        if (s == NULL)
            return AG_EINVAL;
        set_str(state, "reservation_id", s);
        /* Without a payment token the order waits for a payment. */
        if (!json_is_string(json_object_get(state, "payment_token")))
            set_str(state, "status", ORDERS_AWAITING_PAYMENT);
        return 0;
    }
    if (strcmp(type, "payment_authorized") == 0) {
        if (!(is_status(state, ORDERS_PENDING) || is_status(state, ORDERS_AWAITING_PAYMENT)) ||
            !is_pay(state, "unpaid"))
            return AG_ECONFLICT;
        s = json_string_value(json_object_get(data, "payment_id"));
        if (s == NULL)
            return AG_EINVAL;
        set_str(state, "payment_id", s);
        set_str(state, "payment_status", "authorized");
        set_str(state, "status", ORDERS_PENDING);
        return 0;
    }
    if (strcmp(type, "shipment_created") == 0) {
        if (!is_status(state, ORDERS_PENDING) ||
            json_is_string(json_object_get(state, "shipment_id")))
            return AG_ECONFLICT;
        s = json_string_value(json_object_get(data, "shipment_id"));
        if (s == NULL)
            return AG_EINVAL;
        set_str(state, "shipment_id", s);
        return 0;
    }
    if (strcmp(type, "payment_captured") == 0) {
        /* Only an authorization can be captured, and only once. */
        if (!is_pay(state, "authorized"))
            return AG_ECONFLICT;
        set_str(state, "payment_status", "paid");
        return 0;
    }
    if (strcmp(type, "stock_committed") == 0) {
        if (flag(state, "committed"))
            return AG_ECONFLICT;
        json_object_set_new(state, "committed", json_true());
        return 0;
    }
    if (strcmp(type, "confirmed") == 0) {
        if (!orders_is_confirmable(state))
            return AG_ECONFLICT;
        set_str(state, "status", ORDERS_CONFIRMED);
        set_str(state, "confirmed_at", at);
        return 0;
    }
    if (strcmp(type, "shipped") == 0) {
        if (!is_status(state, ORDERS_CONFIRMED) || flag(state, "shipped"))
            return AG_ECONFLICT;
        json_object_set_new(state, "shipped", json_true());
        return 0;
    }
    if (strcmp(type, "completed") == 0) {
        if (!is_status(state, ORDERS_CONFIRMED))
            return AG_ECONFLICT;
        json_object_set_new(state, "shipped", json_true());
        set_str(state, "status", ORDERS_COMPLETED);
        set_str(state, "completed_at", at);
        return 0;
    }
    if (strcmp(type, "rejected") == 0) {
        if (!is_status(state, ORDERS_PENDING))
            return AG_ECONFLICT;
        set_str(state, "status", ORDERS_REJECTED);
        set_str(state, "cancel_reason", "out_of_stock");
        set_str(state, "cancelled_at", at);
        return 0;
    }
    if (strcmp(type, "cancel_requested") == 0) {
        /* A confirmed order's cancel waits for shipping's answer. */
        if (!is_status(state, ORDERS_CONFIRMED) || flag(state, "shipped") ||
            json_is_string(json_object_get(state, "cancel_status")))
            return AG_ECONFLICT;
        set_str(state, "cancel_status", "requested");
        return 0;
    }
    if (strcmp(type, "cancel_refused") == 0) {
        /* Shipping refused the shipment's cancel: it was dispatched. */
        if (strcmp(orders_str(state, "cancel_status"), "requested") != 0)
            return AG_ECONFLICT;
        s = json_string_value(json_object_get(data, "shipment_status"));
        set_str(state, "cancel_status", "refused");
        set_str(state, "cancel_refused_because", s != NULL ? s : "shipped");
        return 0;
    }
    if (strcmp(type, "stock_restocked") == 0) {
        if (!flag(state, "committed") || flag(state, "restocked"))
            return AG_ECONFLICT; /* committed units come back once */
        json_object_set_new(state, "restocked", json_true());
        return 0;
    }
    if (strcmp(type, "cancelled") == 0) {
        /* A confirmed order is cancelled only once its shipment's cancel was
         * asked for (and, by the saga, answered shipment.cancelled). */
        bool open = is_status(state, ORDERS_PENDING) || is_status(state, ORDERS_AWAITING_PAYMENT) ||
                    (is_status(state, ORDERS_CONFIRMED) && !flag(state, "shipped") &&
                     strcmp(orders_str(state, "cancel_status"), "requested") == 0);
        s = json_string_value(json_object_get(data, "reason"));
        if (!open)
            return AG_ECONFLICT;
        if (s == NULL)
            return AG_EINVAL;
        if (strcmp(orders_str(state, "cancel_status"), "requested") == 0)
            set_str(state, "cancel_status", "done");
        set_str(state, "status", ORDERS_CANCELLED);
        set_str(state, "cancel_reason", s);
        set_str(state, "cancelled_at", at);
        return 0;
    }
    if (strcmp(type, "payment_voided") == 0) {
        if (!is_pay(state, "authorized"))
            return AG_ECONFLICT;
        set_str(state, "payment_status", "unpaid");
        return 0;
    }
    if (strcmp(type, "payment_refunded") == 0) {
        if (!is_pay(state, "paid") && !is_pay(state, "partially_refunded"))
            return AG_ECONFLICT;
        json_int_t amount = json_integer_value(json_object_get(data, "amount"));
        json_int_t sum = json_integer_value(json_object_get(state, "refunded_amount")) + amount;
        if (amount <= 0 || sum > total_amount(state))
            return AG_ECONFLICT; /* never more than was captured */
        json_object_set_new(state, "refunded_amount", json_integer(sum));
        json_t *money = json_deep_copy(json_object_get(state, "total"));
        json_object_set_new(money, "amount", json_integer(sum));
        json_object_set_new(state, "refunded", money);
        set_str(state, "payment_status",
                sum == total_amount(state) ? "refunded" : "partially_refunded");
        return 0;
    }
    if (strcmp(type, "stock_released") == 0) {
        json_object_set_new(state, "released", json_true());
        return 0;
    }
    return AG_EINVAL;
}

int
orders_apply(json_t *state, const char *type, const json_t *data, const char *at)
{
    if (state == NULL || type == NULL || at == NULL)
        return AG_EINVAL;
    /* Apply to a copy so that a refused move leaves 'state' as it was. */
    json_t *next = json_deep_copy(state);
    int rc = apply_event(next, type, data, at);
    if (rc == 0) {
        json_object_set_new(
            next, "version",
            json_integer(json_integer_value(json_object_get(state, "version")) + 1));
        set_str(next, "updated_at", at);
        json_object_clear(state);
        json_object_update(state, next);
    }
    json_decref(next);
    return rc;
}

json_t *
orders_render(const json_t *state)
{
    static const char *const FIELDS[] = {
        "id",         "user_id",     "status",           "payment_status",
        "lines",      "total",       "shipping_address", "reservation_id",
        "payment_id", "shipment_id", "cancel_reason",    "refunded",
        "created_at", "updated_at",  "version",
    };
    json_t *out = json_object();
    for (size_t i = 0; i < AG_ARRAY_SIZE(FIELDS); i++) {
        json_t *v = json_object_get(state, FIELDS[i]);
        json_object_set_new(out, FIELDS[i], v != NULL ? json_deep_copy(v) : json_null());
    }
    json_object_set_new(out, "pays_later",
                        json_boolean(!json_is_string(json_object_get(state, "payment_token"))));
    json_object_set_new(out, "shipped", json_boolean(flag(state, "shipped")));
    json_t *cs = json_object_get(state, "cancel_status");
    json_object_set_new(out, "cancel_status", json_is_string(cs) ? json_copy(cs) : json_null());
    json_object_set_new(out, "restocked", json_boolean(flag(state, "restocked")));
    return out;
}

/* ---- Validation ---- */

static bool
valid_country(const char *s)
{
    return s != NULL && strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

bool
orders_checkout_from_json(struct ag_valid *v, json_t *body, const char **out_token,
                          json_t **out_address)
{
    static const char *const ALLOWED[] = { "payment_token", "shipping_address", NULL };
    static const char *const ADDR[] = { "name",        "line1",   "line2", "city",
                                        "postal_code", "country", NULL };
    ag_valid_unknown(v, body, NULL, ALLOWED);
    *out_token =
        ag_valid_string(v, body, NULL, "payment_token", AG_VALID_NULLABLE, 1, ORDERS_TOKEN_MAX);
    json_t *a = ag_valid_object(v, body, NULL, "shipping_address", AG_VALID_REQUIRED);
    if (a != NULL) {
        ag_valid_unknown(v, a, "shipping_address", ADDR);
        ag_valid_string(v, a, "shipping_address", "name", AG_VALID_REQUIRED, 1, 100);
        ag_valid_string(v, a, "shipping_address", "line1", AG_VALID_REQUIRED, 1, 200);
        ag_valid_string(v, a, "shipping_address", "line2", AG_VALID_OPTIONAL, 1, 200);
        ag_valid_string(v, a, "shipping_address", "city", AG_VALID_REQUIRED, 1, 100);
        ag_valid_string(v, a, "shipping_address", "postal_code", AG_VALID_REQUIRED, 1, 20);
        const char *c =
            ag_valid_string(v, a, "shipping_address", "country", AG_VALID_REQUIRED, 2, 2);
        if (c != NULL && !valid_country(c))
            ag_valid_error(v, "shipping_address.country", "invalid",
                           "an ISO 3166-1 alpha-2 code such as GB");
    }
    *out_address = a;
    return ag_valid_ok(v);
}

bool
orders_cart_item_from_json(struct ag_valid *v, json_t *body, bool with_product,
                           const char **out_product_id, int64_t *out_quantity)
{
    static const char *const ALLOWED_ADD[] = { "product_id", "quantity", NULL };
    static const char *const ALLOWED_SET[] = { "quantity", NULL };
    ag_valid_unknown(v, body, NULL, with_product ? ALLOWED_ADD : ALLOWED_SET);
    if (with_product) {
        const char *id = ag_valid_string(v, body, NULL, "product_id", AG_VALID_REQUIRED, 1, 36);
        if (id != NULL && !ag_uuid_is_valid(ag_str_from_cstr(id)))
            ag_valid_error(v, "product_id", "invalid", "a product id (UUID)");
        *out_product_id = id;
    }
    ag_valid_int(v, body, NULL, "quantity", AG_VALID_REQUIRED, 1, ORDERS_QTY_MAX, out_quantity);
    return ag_valid_ok(v);
}

/* ---- Reasons ---- */

const char *
orders_reason_for_payment_failure(const char *failure)
{
    if (failure == NULL)
        return "payment_failed";
    if (strcmp(failure, "declined") == 0 || strcmp(failure, "insufficient_funds") == 0)
        return "payment_declined";
    if (strcmp(failure, "timeout") == 0)
        return "timeout";
    return "payment_failed";
}

const char *
orders_release_reason(const char *cancel_reason)
{
    if (strncmp(cancel_reason, "payment_", 8) == 0)
        return "payment_failed";
    if (strcmp(cancel_reason, "shipment_failed") == 0)
        return "shipment_failed";
    return "cancelled";
}

double
orders_seconds_between(const char *from, const char *to)
{
    int64_t a;
    int64_t b;
    if (ag_time_parse_rfc3339(ag_str_from_cstr(from), &a) != 0 ||
        ag_time_parse_rfc3339(ag_str_from_cstr(to), &b) != 0 || b < a)
        return 0;
    return (double)(b - a) / 1000.0;
}
