/* SPDX-License-Identifier: MIT */
/* Unit tests of the payments domain: the transition function and its money
 * invariants (captured <= authorized, refunded <= captured, no capture
 * after a void, no void after a capture, expiry), validation of bodies and
 * saga commands with per-field errors, step keys, the representation and
 * the sandbox's test tokens. */
#include "agora/base.h"

#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora_test.h"
#include "domain.h"

static struct pay_payment
authorized(int64_t amount)
{
    struct pay_payment p;
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "01946967-dcd0-7006-8000-0a9000000006");
    snprintf(p.order_id, sizeof(p.order_id), "01946967-d500-7004-8000-0a9000000004");
    snprintf(p.user_id, sizeof(p.user_id), "01946967-cd30-7002-8000-0a9000000002");
    snprintf(p.currency, sizeof(p.currency), "USD");
    snprintf(p.card.brand, sizeof(p.card.brand), "visa");
    snprintf(p.card.last4, sizeof(p.card.last4), "4242");
    p.status = PAY_AUTHORIZED;
    p.amount = amount;
    p.created_at = p.updated_at = 1000;
    p.expires_at = 5000;
    return p;
}

static void
test_transitions_table(void **state)
{
    AG_UNUSED(state);
    /* Each case: a sequence of (op, amount) applied to an authorization of
     * 1000; the expected code of the last step and the resulting sums. */
    static const struct {
        const char *name;
        struct {
            enum pay_op op;
            int64_t amount;
        } steps[4];
        size_t n;
        int rc; /* of the last step */
        enum pay_status status;
        int64_t captured, refunded;
    } cases[] = {
        { "full capture", { { PAY_OP_CAPTURE, 1000 } }, 1, 0, PAY_CAPTURED, 1000, 0 },
        { "partial capture", { { PAY_OP_CAPTURE, 600 } }, 1, 0, PAY_CAPTURED, 600, 0 },
        { "capture more than authorized",
          { { PAY_OP_CAPTURE, 1001 } },
          1,
          AG_ERANGE,
          PAY_AUTHORIZED,
          0,
          0 },
        { "capture nothing", { { PAY_OP_CAPTURE, 0 } }, 1, AG_ERANGE, PAY_AUTHORIZED, 0, 0 },
        { "capture twice",
          { { PAY_OP_CAPTURE, 100 }, { PAY_OP_CAPTURE, 100 } },
          2,
          AG_ECONFLICT,
          PAY_CAPTURED,
          100,
          0 },
        { "void", { { PAY_OP_VOID, 0 } }, 1, 0, PAY_VOIDED, 0, 0 },
        { "capture after void",
          { { PAY_OP_VOID, 0 }, { PAY_OP_CAPTURE, 1 } },
          2,
          AG_ECONFLICT,
          PAY_VOIDED,
          0,
          0 },
        { "void after capture",
          { { PAY_OP_CAPTURE, 1 }, { PAY_OP_VOID, 0 } },
          2,
          AG_ECONFLICT,
          PAY_CAPTURED,
          1,
          0 },
        { "refund before capture",
          { { PAY_OP_REFUND, 1 } },
          1,
          AG_ECONFLICT,
          PAY_AUTHORIZED,
          0,
          0 },
        { "partial refund",
          { { PAY_OP_CAPTURE, 600 }, { PAY_OP_REFUND, 400 } },
          2,
          0,
          PAY_PARTIALLY_REFUNDED,
          600,
          400 },
        { "refunds up to the capture",
          { { PAY_OP_CAPTURE, 600 }, { PAY_OP_REFUND, 400 }, { PAY_OP_REFUND, 200 } },
          3,
          0,
          PAY_REFUNDED,
          600,
          600 },
        { "one more refund",
          { { PAY_OP_CAPTURE, 600 }, { PAY_OP_REFUND, 600 }, { PAY_OP_REFUND, 1 } },
          3,
          AG_ECONFLICT,
          PAY_REFUNDED,
          600,
          600 },
        { "refund more than captured",
          { { PAY_OP_CAPTURE, 600 }, { PAY_OP_REFUND, 601 } },
          2,
          AG_ERANGE,
          PAY_CAPTURED,
          600,
          0 },
        { "refund more than is left",
          { { PAY_OP_CAPTURE, 600 }, { PAY_OP_REFUND, 400 }, { PAY_OP_REFUND, 201 } },
          3,
          AG_ERANGE,
          PAY_PARTIALLY_REFUNDED,
          600,
          400 },
        { "refund of a void",
          { { PAY_OP_VOID, 0 }, { PAY_OP_REFUND, 1 } },
          2,
          AG_ECONFLICT,
          PAY_VOIDED,
          0,
          0 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct pay_payment p = authorized(1000);
        int rc = 0;
        for (size_t s = 0; s < cases[i].n; s++)
            rc = pay_payment_apply(&p, cases[i].steps[s].op, cases[i].steps[s].amount, NULL, 2000);
        if (rc != cases[i].rc || p.status != cases[i].status || p.captured != cases[i].captured ||
            p.refunded != cases[i].refunded) {
            fail_msg("%s: rc %d status %s captured %lld refunded %lld", cases[i].name, rc,
                     pay_status_name(p.status), (long long)p.captured, (long long)p.refunded);
        }
        assert_true(p.captured <= p.amount);
        assert_true(p.refunded <= p.captured);
    }
}

static void
test_void_and_expiry(void **state)
{
    AG_UNUSED(state);
    struct pay_payment p = authorized(500);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_VOID, 0, "shipment_failed", 3000), 0);
    assert_string_equal(p.void_reason, "shipment_failed");
    assert_int_equal(p.voided_at, 3000);
    assert_int_equal(p.expires_at, 0);

    p = authorized(500);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_VOID, 0, NULL, 3000), 0);
    assert_string_equal(p.void_reason, "requested");

    p = authorized(500);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_EXPIRE, 0, NULL, 4999), AG_ECONFLICT);
    assert_int_equal(p.status, PAY_AUTHORIZED);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_EXPIRE, 0, NULL, 5000), 0);
    assert_int_equal(p.status, PAY_VOIDED);
    assert_string_equal(p.void_reason, "expired");

    p = authorized(500);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_CAPTURE, 500, NULL, 3000), 0);
    assert_int_equal(p.expires_at, 0);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_EXPIRE, 0, NULL, 9000), AG_ECONFLICT);
}

static void
test_create_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *fields;
    } cases[] = {
        { "{\"order_id\":\"01946967-d500-7004-8000-0a9000000004\",\"amount\":{\"amount\":100,"
          "\"currency\":\"EUR\"},\"payment_token\":\"tok_visa\"}",
          "" },
        { "{}", "order_id,amount,payment_token" },
        { "{\"order_id\":\"x\",\"amount\":{\"amount\":0,\"currency\":\"eur\"},"
          "\"payment_token\":\"4242424242424242\",\"cvc\":\"123\"}",
          "order_id,amount.amount,amount.currency,payment_token,cvc" },
        { "{\"order_id\":\"01946967-d500-7004-8000-0a9000000004\",\"amount\":{\"amount\":1.5,"
          "\"currency\":\"EUR\",\"x\":1},\"payment_token\":\"tok_\"}",
          "amount.amount,amount.x,payment_token" },
        { "{\"order_id\":\"01946967-d500-7004-8000-0a9000000004\",\"amount\":{\"amount\":"
          "100000000001,\"currency\":\"EUR\"},\"payment_token\":\"tok_a-b\"}",
          "amount.amount,payment_token" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        struct pay_create_req r;
        bool ok = pay_create_req_parse(&v, body, &r);
        char got[512];
        ag_test_error_fields(&v, got, sizeof(got));
        if (strcmp(got, cases[i].fields) != 0)
            fail_msg("case %zu: fields '%s', want '%s'", i, got, cases[i].fields);
        assert_int_equal(ok, cases[i].fields[0] == '\0');
        /* A refused token is never echoed in an error. */
        char *errs = json_dumps(v.errors, JSON_COMPACT);
        assert_null(strstr(errs, "4242424242424242"));
        ag_free(errs);
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_change_validation(void **state)
{
    AG_UNUSED(state);
    struct ag_valid v;
    struct pay_change_req r;
    json_t *b = ag_test_json("{}");
    ag_valid_init(&v);
    assert_true(pay_change_req_parse(&v, b, PAY_OP_CAPTURE, &r));
    assert_false(r.has_amount);
    ag_valid_release(&v);
    ag_valid_init(&v);
    assert_true(pay_change_req_parse(&v, b, PAY_OP_VOID, &r));
    assert_string_equal(r.reason, "requested");
    ag_valid_release(&v);
    ag_valid_init(&v);
    assert_false(pay_change_req_parse(&v, b, PAY_OP_REFUND, &r));
    char got[256];
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "amount");
    ag_valid_release(&v);
    json_decref(b);

    b = ag_test_json("{\"amount\":{\"amount\":5,\"currency\":\"JPY\"},\"reason\":\"Bad Reason\"}");
    ag_valid_init(&v);
    assert_false(pay_change_req_parse(&v, b, PAY_OP_REFUND, &r));
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "reason");
    ag_valid_release(&v);
    json_decref(b);
}

static void
test_commands_table(void **state)
{
    AG_UNUSED(state);
#define O "01946967-d500-7004-8000-0a9000000004"
    static const struct {
        const char *type;
        const char *data;
        const char *fields;
    } cases[] = {
        { "cmd.payment.authorize",
          "{\"order_id\":\"" O "\",\"step_key\":\"" O ":authorize\",\"user_id\":\"u1\","
          "\"amount\":{\"amount\":10,\"currency\":\"USD\"},\"payment_token\":\"tok_visa\"}",
          "" },
        { "cmd.payment.authorize", "{\"order_id\":\"" O "\",\"step_key\":\"" O ":authorize\"}",
          "user_id,amount,payment_token" },
        { "cmd.payment.capture",
          "{\"order_id\":\"" O "\",\"step_key\":\"" O ":capture\",\"amount\":{\"amount\":10,"
          "\"currency\":\"USD\"}}",
          "" },
        { "cmd.payment.capture",
          "{\"order_id\":\"" O "\",\"step_key\":\"other:capture\",\"amount\":{\"amount\":10,"
          "\"currency\":\"USD\"},\"extra\":1}",
          "step_key,extra" },
        { "cmd.payment.void",
          "{\"order_id\":\"" O "\",\"step_key\":\"" O ":void\",\"reason\":\"shipment_failed\"}",
          "" },
        { "cmd.payment.void", "{\"order_id\":\"" O "\",\"step_key\":\"" O ":\"}",
          "step_key,reason" },
        { "cmd.payment.refund",
          "{\"order_id\":\"" O "\",\"step_key\":\"" O ":refund-1\",\"amount\":{\"amount\":1,"
          "\"currency\":\"USD\"},\"reason\":\"customer_request\"}",
          "" },
        { "cmd.payment.charge", "{}", "type" },
        { "cmd.payment.void", "[]", "data" },
    };
#undef O
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *data = ag_test_json(cases[i].data);
        struct ag_valid v;
        ag_valid_init(&v);
        struct pay_cmd c;
        bool ok = pay_cmd_parse(&v, cases[i].type, data, &c);
        char got[512];
        ag_test_error_fields(&v, got, sizeof(got));
        if (strcmp(got, cases[i].fields) != 0)
            fail_msg("case %zu (%s): fields '%s', want '%s'", i, cases[i].type, got,
                     cases[i].fields);
        assert_int_equal(ok, cases[i].fields[0] == '\0');
        ag_valid_release(&v);
        json_decref(data);
    }
}

static void
test_step_keys_and_tokens(void **state)
{
    AG_UNUSED(state);
    const char *o = "01946967-d500-7004-8000-0a9000000004";
    assert_true(pay_step_key_is_valid("01946967-d500-7004-8000-0a9000000004:capture", o));
    assert_true(pay_step_key_is_valid("01946967-d500-7004-8000-0a9000000004:refund-2", o));
    assert_false(pay_step_key_is_valid("01946967-d500-7004-8000-0a9000000004", o));
    assert_false(pay_step_key_is_valid("01946967-d500-7004-8000-0a9000000005:capture", o));
    assert_false(pay_step_key_is_valid("01946967-d500-7004-8000-0a9000000004:Capture", o));
    assert_true(pay_token_is_valid("tok_visa"));
    assert_false(pay_token_is_valid("tok_"));
    assert_false(pay_token_is_valid("4242424242424242"));
    assert_false(pay_token_is_valid("tok_a b"));
    assert_true(pay_reason_is_valid("customer_request"));
    assert_false(pay_reason_is_valid(""));
    assert_false(pay_reason_is_valid("Customer"));
}

static void
test_sandbox_tokens(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *token;
        enum pay_auth_outcome outcome;
        const char *last4;
        const char *reason;
    } cases[] = {
        { "tok_visa", PAY_AUTH_APPROVED, "4242", "error" },
        { "tok_chargeDeclined", PAY_AUTH_DECLINED, "0002", "declined" },
        { "tok_insufficient_funds", PAY_AUTH_INSUFFICIENT_FUNDS, "9995", "insufficient_funds" },
        { "tok_timeout", PAY_AUTH_NO_ANSWER, "0017", "timeout" },
        { "tok_whatever", PAY_AUTH_DECLINED, "0000", "declined" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct pay_card card;
        enum pay_auth_outcome o = pay_sandbox_outcome(cases[i].token, &card);
        assert_int_equal(o, cases[i].outcome);
        assert_string_equal(card.last4, cases[i].last4);
        assert_string_equal(pay_auth_outcome_reason(o), cases[i].reason);
    }
}

static void
test_representation(void **state)
{
    AG_UNUSED(state);
    struct pay_payment p = authorized(1000);
    assert_int_equal(pay_payment_apply(&p, PAY_OP_CAPTURE, 700, NULL, 2000), 0);
    json_t *j = pay_payment_to_json(&p);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "captured");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "captured"), "amount")),
                     700);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "card"), "last4")),
                        "4242");
    assert_true(json_is_null(json_object_get(j, "void_reason")));
    assert_true(json_is_null(json_object_get(j, "expires_at")));
    assert_string_equal(json_string_value(json_object_get(j, "captured_at")),
                        "1970-01-01T00:00:02.000Z");
    assert_int_equal(json_object_size(j), 14);
    json_decref(j);
    enum pay_status s;
    assert_int_equal(pay_status_parse("partially_refunded", &s), 0);
    assert_int_equal(s, PAY_PARTIALLY_REFUNDED);
    assert_int_equal(pay_status_parse("paid", &s), AG_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_table),       cmocka_unit_test(test_void_and_expiry),
        cmocka_unit_test(test_create_validation_table), cmocka_unit_test(test_change_validation),
        cmocka_unit_test(test_commands_table),          cmocka_unit_test(test_step_keys_and_tokens),
        cmocka_unit_test(test_sandbox_tokens),          cmocka_unit_test(test_representation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
