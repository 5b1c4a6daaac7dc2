/* SPDX-License-Identifier: MIT */
/* Unit tests of the orders domain: the transition function of the
 * event-sourced order (legal and illegal moves, the confirmation guard,
 * never refunding more than was captured), rebuilding a state by folding
 * its events, the served representation and body validation. */
#include "agora/base.h"

#include <string.h>

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

#define AT "2026-01-01T10:00:00.000Z"

static json_t *
created(bool with_token)
{
    json_t *d = ag_test_json(
        "{\"order_id\":\"01947000-0000-7000-8000-000000000001\","
        "\"user_id\":\"01947000-0000-7000-8000-0000000000aa\","
        "\"lines\":[{\"product_id\":\"01947000-0000-7000-8000-0000000000b1\",\"sku\":\"A-1\","
        "\"quantity\":2,\"unit_price\":{\"amount\":500,\"currency\":\"USD\"}}],"
        "\"total\":{\"amount\":1000,\"currency\":\"USD\"},"
        "\"shipping_address\":{\"name\":\"Ada\",\"line1\":\"1 St\",\"city\":\"London\","
        "\"postal_code\":\"N1\",\"country\":\"GB\"},\"payment_token\":null}");
    if (with_token)
        json_object_set_new(d, "payment_token", json_string("tok_visa"));
    return d;
}

/* Apply 'type' with data 'json' (NULL: {}) and return the code. */
static int
step(json_t *state, const char *type, const char *json)
{
    json_t *d = json != NULL ? ag_test_json(json) : json_object();
    int rc = orders_apply(state, type, d, AT);
    json_decref(d);
    return rc;
}

static const char *
status(json_t *s)
{
    return orders_str(s, "status");
}

static void
test_happy_path_moves(void **unused)
{
    AG_UNUSED(unused);
    json_t *s = json_object();
    json_t *c = created(true);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    json_decref(c);
    assert_string_equal(status(s), "PENDING");
    assert_string_equal(orders_str(s, "payment_status"), "unpaid");
    assert_int_equal(step(s, "stock_reserved", "{\"reservation_id\":\"r1\"}"), 0);
    assert_string_equal(status(s), "PENDING"); /* a token: no waiting for payment */
    assert_int_equal(step(s, "payment_authorized", "{\"payment_id\":\"p1\"}"), 0);
    assert_int_equal(step(s, "shipment_created", "{\"shipment_id\":\"s1\"}"), 0);
    /* Committed stock alone does not confirm: the money is not captured. */
    assert_int_equal(step(s, "stock_committed", NULL), 0);
    assert_false(orders_is_confirmable(s));
    assert_int_equal(step(s, "confirmed", NULL), AG_ECONFLICT);
    assert_string_equal(status(s), "PENDING");
    assert_int_equal(step(s, "payment_captured", NULL), 0);
    assert_int_equal(step(s, "payment_captured", NULL), AG_ECONFLICT); /* never twice */
    assert_true(orders_is_confirmable(s));
    assert_int_equal(step(s, "confirmed", NULL), 0);
    assert_string_equal(status(s), "CONFIRMED");
    assert_string_equal(orders_str(s, "payment_status"), "paid");
    assert_int_equal(step(s, "shipped", NULL), 0);
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"customer_request\"}"), AG_ECONFLICT);
    assert_int_equal(step(s, "completed", NULL), 0);
    assert_string_equal(status(s), "COMPLETED");
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 9);
    json_decref(s);
}

static void
test_pay_later_and_refunds(void **unused)
{
    AG_UNUSED(unused);
    json_t *s = json_object();
    json_t *c = created(false);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    json_decref(c);
    assert_int_equal(step(s, "stock_reserved", "{\"reservation_id\":\"r1\"}"), 0);
    assert_string_equal(status(s), "AWAITING_PAYMENT");
    assert_int_equal(step(s, "payment_authorized", "{\"payment_id\":\"p1\"}"), 0);
    assert_string_equal(status(s), "PENDING");
    assert_int_equal(step(s, "payment_authorized", "{\"payment_id\":\"p2\"}"), AG_ECONFLICT);
    assert_int_equal(step(s, "payment_refunded", "{\"amount\":100}"), AG_ECONFLICT);
    assert_int_equal(step(s, "payment_captured", NULL), 0);
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"customer_request\"}"), 0);
    assert_int_equal(step(s, "payment_refunded", "{\"amount\":400}"), 0);
    assert_string_equal(orders_str(s, "payment_status"), "partially_refunded");
    /* Never more than was captured. */
    assert_int_equal(step(s, "payment_refunded", "{\"amount\":601}"), AG_ECONFLICT);
    assert_int_equal(step(s, "payment_refunded", "{\"amount\":600}"), 0);
    assert_string_equal(orders_str(s, "payment_status"), "refunded");
    json_decref(s);
}

/* A confirmed order (token, reserved, authorized, shipped out, captured,
 * committed, confirmed). */
static json_t *
confirmed_order(void)
{
    json_t *s = json_object();
    json_t *c = created(true);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    json_decref(c);
    assert_int_equal(step(s, "stock_reserved", "{\"reservation_id\":\"r1\"}"), 0);
    assert_int_equal(step(s, "payment_authorized", "{\"payment_id\":\"p1\"}"), 0);
    assert_int_equal(step(s, "shipment_created", "{\"shipment_id\":\"s1\"}"), 0);
    assert_int_equal(step(s, "payment_captured", NULL), 0);
    assert_int_equal(step(s, "stock_committed", NULL), 0);
    assert_int_equal(step(s, "confirmed", NULL), 0);
    return s;
}

static void
test_confirmed_cancel_waits_for_shipping(void **unused)
{
    AG_UNUSED(unused);
    /* Agreed: cancel only after the request, restock once. */
    json_t *s = confirmed_order();
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"customer_request\"}"), AG_ECONFLICT);
    assert_int_equal(step(s, "cancel_refused", NULL), AG_ECONFLICT); /* nothing asked */
    assert_int_equal(step(s, "cancel_requested", NULL), 0);
    assert_string_equal(orders_str(s, "cancel_status"), "requested");
    assert_string_equal(status(s), "CONFIRMED");
    assert_int_equal(step(s, "cancel_requested", NULL), AG_ECONFLICT);
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"customer_request\"}"), 0);
    assert_string_equal(status(s), "CANCELLED");
    assert_string_equal(orders_str(s, "cancel_status"), "done");
    assert_int_equal(step(s, "stock_restocked", NULL), 0);
    assert_int_equal(step(s, "stock_restocked", NULL), AG_ECONFLICT); /* once */
    json_t *r = orders_render(s);
    assert_true(json_is_true(json_object_get(r, "restocked")));
    json_decref(r);
    json_decref(s);

    /* Refused (dispatched): stays confirmed, no cancel any more. */
    s = confirmed_order();
    assert_int_equal(step(s, "cancel_requested", NULL), 0);
    assert_int_equal(step(s, "shipped", NULL), 0);
    assert_int_equal(step(s, "cancel_refused", "{\"shipment_status\":\"shipped\"}"), 0);
    assert_string_equal(orders_str(s, "cancel_status"), "refused");
    assert_string_equal(status(s), "CONFIRMED");
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"customer_request\"}"), AG_ECONFLICT);
    assert_int_equal(step(s, "cancel_requested", NULL), AG_ECONFLICT);
    assert_int_equal(step(s, "completed", NULL), 0);
    json_decref(s);

    /* Never committed: nothing to restock. */
    s = json_object();
    json_t *c = created(true);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    json_decref(c);
    assert_int_equal(step(s, "stock_restocked", NULL), AG_ECONFLICT);
    assert_int_equal(step(s, "cancel_requested", NULL), AG_ECONFLICT); /* not confirmed */
    json_decref(s);
}

static void
test_illegal_moves_leave_state(void **unused)
{
    AG_UNUSED(unused);
    json_t *s = json_object();
    assert_int_equal(step(s, "stock_reserved", "{\"reservation_id\":\"r1\"}"), AG_ECONFLICT);
    assert_int_equal(json_object_size(s), 0);
    json_t *c = created(true);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    assert_int_equal(orders_apply(s, "created", c, AT), AG_ECONFLICT);
    json_decref(c);
    assert_int_equal(step(s, "rejected", NULL), 0);
    json_t *before = json_deep_copy(s);
    assert_int_equal(step(s, "confirmed", NULL), AG_ECONFLICT);
    assert_int_equal(step(s, "cancelled", "{\"reason\":\"timeout\"}"), AG_ECONFLICT);
    assert_int_equal(step(s, "nonsense", NULL), AG_EINVAL);
    assert_true(json_equal(before, s));
    json_decref(before);
    json_decref(s);
}

static void
test_rebuild_by_folding_equals_live_state(void **unused)
{
    AG_UNUSED(unused);
    /* The same events folded into a fresh state give the same state. */
    static const char *const EVENTS[][2] = {
        { "stock_reserved", "{\"reservation_id\":\"r1\"}" },
        { "payment_authorized", "{\"payment_id\":\"p1\"}" },
        { "cancelled", "{\"reason\":\"customer_request\",\"refunded\":null}" },
        { "payment_voided", NULL },
        { "stock_released", NULL },
    };
    json_t *live = json_object();
    json_t *c = created(true);
    assert_int_equal(orders_apply(live, "created", c, AT), 0);
    for (size_t i = 0; i < AG_ARRAY_SIZE(EVENTS); i++)
        assert_int_equal(step(live, EVENTS[i][0], EVENTS[i][1]), 0);
    json_t *again = json_object();
    assert_int_equal(orders_apply(again, "created", c, AT), 0);
    for (size_t i = 0; i < AG_ARRAY_SIZE(EVENTS); i++)
        assert_int_equal(step(again, EVENTS[i][0], EVENTS[i][1]), 0);
    assert_true(json_equal(live, again));
    assert_string_equal(status(again), "CANCELLED");
    assert_string_equal(orders_str(again, "payment_status"), "unpaid");
    json_decref(c);
    json_decref(live);
    json_decref(again);
}

static void
test_render_hides_internals(void **unused)
{
    AG_UNUSED(unused);
    json_t *s = json_object();
    json_t *c = created(true);
    assert_int_equal(orders_apply(s, "created", c, AT), 0);
    json_decref(c);
    json_t *r = orders_render(s);
    assert_null(json_object_get(r, "payment_token"));
    assert_null(json_object_get(r, "committed"));
    assert_false(json_is_true(json_object_get(r, "pays_later")));
    assert_string_equal(orders_str(r, "status"), "PENDING");
    json_decref(r);
    json_decref(s);
}

static void
test_checkout_validation_table(void **unused)
{
    AG_UNUSED(unused);
    static const struct {
        const char *body;
        const char *fields;
    } cases[] = {
        { "{\"shipping_address\":{\"name\":\"A\",\"line1\":\"1\",\"city\":\"C\","
          "\"postal_code\":\"P\",\"country\":\"GB\"}}",
          "" },
        { "{\"payment_token\":\"tok_visa\",\"shipping_address\":{\"name\":\"A\",\"line1\":\"1\","
          "\"line2\":\"x\",\"city\":\"C\",\"postal_code\":\"P\",\"country\":\"GB\"}}",
          "" },
        { "{}", "shipping_address" },
        { "{\"status\":\"CONFIRMED\",\"total\":1,\"user_id\":\"x\",\"shipping_address\":"
          "{\"name\":\"A\",\"line1\":\"1\",\"city\":\"C\",\"postal_code\":\"P\",\"country\":\"GB\"}"
          "}",
          "status,total,user_id" },
        { "{\"payment_token\":\"\",\"shipping_address\":{\"name\":\"A\",\"line1\":\"1\","
          "\"city\":\"C\",\"postal_code\":\"P\",\"country\":\"gb\"}}",
          "payment_token,shipping_address.country" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        const char *token;
        json_t *addr;
        orders_checkout_from_json(&v, body, &token, &addr);
        char got[256];
        ag_test_error_fields(&v, got, sizeof(got));
        assert_string_equal(got, cases[i].fields);
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_cart_item_validation(void **unused)
{
    AG_UNUSED(unused);
    json_t *body = ag_test_json("{\"product_id\":\"nope\",\"quantity\":0}");
    struct ag_valid v;
    ag_valid_init(&v);
    const char *pid;
    int64_t q;
    assert_false(orders_cart_item_from_json(&v, body, true, &pid, &q));
    char got[256];
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "product_id,quantity");
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_reasons(void **unused)
{
    AG_UNUSED(unused);
    assert_string_equal(orders_reason_for_payment_failure("declined"), "payment_declined");
    assert_string_equal(orders_reason_for_payment_failure("insufficient_funds"),
                        "payment_declined");
    assert_string_equal(orders_reason_for_payment_failure("timeout"), "timeout");
    assert_string_equal(orders_reason_for_payment_failure("error"), "payment_failed");
    assert_string_equal(orders_release_reason("payment_declined"), "payment_failed");
    assert_string_equal(orders_release_reason("shipment_failed"), "shipment_failed");
    assert_string_equal(orders_release_reason("customer_request"), "cancelled");
    assert_true(orders_seconds_between(AT, "2026-01-01T10:00:01.500Z") == 1.5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path_moves),
        cmocka_unit_test(test_pay_later_and_refunds),
        cmocka_unit_test(test_confirmed_cancel_waits_for_shipping),
        cmocka_unit_test(test_illegal_moves_leave_state),
        cmocka_unit_test(test_rebuild_by_folding_equals_live_state),
        cmocka_unit_test(test_render_hides_internals),
        cmocka_unit_test(test_checkout_validation_table),
        cmocka_unit_test(test_cart_item_validation),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
