/* SPDX-License-Identifier: MIT */
/* Unit tests of the shipping domain: the state machine (every status and
 * action), validation of the saga's commands with per-field errors, ids,
 * tracking numbers, the reply events' data and list cursors. */
#include "agora/base.h"

#include <string.h>

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

#define ORDER "01946967-d500-7004-8000-0a9000000004"
#define USER  "01946967-c000-7001-8000-0a9000000001"
#define PROD  "01946967-b000-7002-8000-0a9000000002"
#define ADDR                                                                                       \
    "{\"name\":\"Ada\",\"line1\":\"12 Street\",\"city\":\"London\",\"postal_code\":\"N1\","        \
    "\"country\":\"GB\"}"
#define LINES "[{\"product_id\":\"" PROD "\",\"quantity\":2}]"

static void
test_transitions_table(void **state)
{
    AG_UNUSED(state);
    /* Every status x action: the status reached, or -1 for an illegal move. */
    static const struct {
        enum ship_status from;
        enum ship_action action;
        int to;
    } cases[] = {
        { SHIP_CREATED, SHIP_ACT_SHIP, SHIP_SHIPPED },
        { SHIP_CREATED, SHIP_ACT_DELIVER, -1 },
        { SHIP_CREATED, SHIP_ACT_CANCEL, SHIP_CANCELLED },
        { SHIP_SHIPPED, SHIP_ACT_SHIP, -1 },
        { SHIP_SHIPPED, SHIP_ACT_DELIVER, SHIP_DELIVERED },
        { SHIP_SHIPPED, SHIP_ACT_CANCEL, -1 }, /* never cancel what left */
        { SHIP_DELIVERED, SHIP_ACT_SHIP, -1 },
        { SHIP_DELIVERED, SHIP_ACT_DELIVER, -1 },
        { SHIP_DELIVERED, SHIP_ACT_CANCEL, -1 },
        { SHIP_CANCELLED, SHIP_ACT_SHIP, -1 },
        { SHIP_CANCELLED, SHIP_ACT_DELIVER, -1 },
        { SHIP_CANCELLED, SHIP_ACT_CANCEL, -1 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        enum ship_status to = SHIP_NSTATUSES;
        int rc = ship_transition(cases[i].from, cases[i].action, &to);
        if (cases[i].to < 0) {
            if (rc != AG_ECONFLICT || to != SHIP_NSTATUSES)
                fail_msg("case %zu: %s a %s shipment: rc %d, want a conflict", i,
                         ship_action_name(cases[i].action), ship_status_name(cases[i].from), rc);
        } else if (rc != 0 || (int)to != cases[i].to) {
            fail_msg("case %zu: %s a %s shipment: rc %d to %s, want %s", i,
                     ship_action_name(cases[i].action), ship_status_name(cases[i].from), rc,
                     ship_status_name(to), ship_status_name((enum ship_status)cases[i].to));
        }
    }
}

static void
test_status_names(void **state)
{
    AG_UNUSED(state);
    for (unsigned i = 0; i < SHIP_NSTATUSES; i++) {
        enum ship_status s;
        assert_int_equal(ship_status_parse(ship_status_name((enum ship_status)i), &s), 0);
        assert_int_equal(s, i);
    }
    enum ship_status s;
    assert_int_equal(ship_status_parse("lost", &s), AG_EINVAL);
    assert_int_equal(ship_status_parse("", &s), AG_EINVAL);
    assert_string_equal(ship_status_name(SHIP_NSTATUSES), "unknown");
}

static void
test_create_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *data;
        const char *fields; /* expected error fields, "" for valid */
    } cases[] = {
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":ship\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":" LINES "}",
          "" },
        { "{}", "order_id,step_key,user_id,address,lines" },
        { "[]", "" /* body-level error, field "" */ },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" USER ":ship\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":" LINES "}",
          "step_key" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER "\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":" LINES "}",
          "step_key" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":Ship!\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":" LINES "}",
          "step_key" },
        { "{\"order_id\":\"01946967-D500-7004-8000-0A9000000004\",\"step_key\":\"x\",\"user_id\":"
          "\"9b2c8a4e-3f1d-4c2b-9a7e-5d6f8e9a0b1c\",\"address\":" ADDR ",\"lines\":" LINES "}",
          "order_id,step_key,user_id" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":ship\",\"user_id\":\"" USER
          "\",\"address\":{\"name\":\"\",\"line1\":\"a\\nb\",\"line2\":null,\"city\":\"C\","
          "\"postal_code\":\"P\",\"country\":\"GBR\",\"phone\":\"1\"},\"lines\":" LINES "}",
          "address.phone,address.name,address.line1,address.line2,address.country" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":ship\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":[]}",
          "lines" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":ship\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":[1,{\"product_id\":\"x\",\"quantity\":0,\"sku\":"
          "\"A\"}]}",
          "lines[0],lines[1].sku,lines[1].product_id,lines[1].quantity" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":ship\",\"user_id\":\"" USER
          "\",\"address\":" ADDR ",\"lines\":" LINES ",\"token\":\"tok_visa\"}",
          "token" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *data = ag_test_json(cases[i].data);
        struct ag_valid v;
        ag_valid_init(&v);
        struct ship_create_cmd k;
        bool ok = ship_create_cmd_from_json(&v, data, &k);
        char fields[512];
        ag_test_error_fields(&v, fields, sizeof(fields));
        bool want_ok = cases[i].fields[0] == '\0' && json_is_object(data);
        if (ok != want_ok || strcmp(fields, cases[i].fields) != 0)
            fail_msg("case %zu: ok=%d fields '%s', want '%s'", i, ok, fields, cases[i].fields);
        if (ok) {
            assert_string_equal(k.order_id, ORDER);
            assert_string_equal(k.user_id, USER);
            assert_int_equal(json_array_size(k.lines), 1);
        }
        ag_valid_release(&v);
        json_decref(data);
    }
}

static void
test_cancel_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *data;
        const char *fields;
    } cases[] = {
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":cancel\",\"reason\":\"payment_"
          "failed\"}",
          "" },
        { "{}", "order_id,step_key,reason" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":cancel\",\"reason\":\"Payment "
          "failed\"}",
          "reason" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":cancel\",\"reason\":\"\"}",
          "reason" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER ":cancel\",\"reason\":\"x\",\"y\":1}",
          "y" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *data = ag_test_json(cases[i].data);
        struct ag_valid v;
        ag_valid_init(&v);
        struct ship_cancel_cmd k;
        bool ok = ship_cancel_cmd_from_json(&v, data, &k);
        char fields[256];
        ag_test_error_fields(&v, fields, sizeof(fields));
        if (ok != (cases[i].fields[0] == '\0') || strcmp(fields, cases[i].fields) != 0)
            fail_msg("case %zu: ok=%d fields '%s', want '%s'", i, ok, fields, cases[i].fields);
        ag_valid_release(&v);
        json_decref(data);
    }
}

static void
test_ids_and_tracking_numbers(void **state)
{
    AG_UNUSED(state);
    assert_true(ship_id_is_valid(ORDER));
    assert_false(ship_id_is_valid("01946967-D500-7004-8000-0A9000000004"));
    assert_false(ship_id_is_valid("9b2c8a4e-3f1d-4c2b-9a7e-5d6f8e9a0b1c")); /* v4 */
    assert_false(ship_id_is_valid("01946967-d500-7004-c000-0a9000000004")); /* variant */
    assert_false(ship_id_is_valid(ORDER "0"));
    assert_false(ship_id_is_valid(""));
    assert_false(ship_id_is_valid(NULL));
    const uint8_t rnd[8] = { 0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x99, 0xff };
    char t[SHIP_TRACKING_LEN + 1];
    ship_tracking_number(rnd, t);
    assert_string_equal(t, "AGS0001ABCDEF1099FF");
}

static void
test_reply_data(void **state)
{
    AG_UNUSED(state);
    struct ship_shipment s = {
        .id = "01946967-e0b8-7007-8000-0a9000000007",
        .order_id = ORDER,
        .user_id = USER,
        .status = SHIP_SHIPPED,
        .address = ADDR,
        .lines = LINES,
        .carrier = "Agora Post",
        .tracking_number = "AGS0001ABCDEF1099FF",
        .history = "[{\"status\":\"created\",\"at\":\"2025-01-15T10:00:00.000Z\"}]",
        .created_at = "2025-01-15T10:00:00.000Z",
        .updated_at = "2025-01-15T10:00:00.000Z",
    };
    static const struct {
        const char *want;
    } cases[] = {
        { "{\"shipment_id\":\"01946967-e0b8-7007-8000-0a9000000007\",\"order_id\":\"" ORDER
          "\",\"address\":" ADDR ",\"tracking_number\":\"AGS0001ABCDEF1099FF\",\"created_at\":"
          "\"2025-01-15T10:00:00.000Z\"}" },
        { "{\"shipment_id\":\"01946967-e0b8-7007-8000-0a9000000007\",\"order_id\":\"" ORDER
          "\",\"carrier\":\"Agora Post\",\"tracking_number\":\"AGS0001ABCDEF1099FF\","
          "\"shipped_at\":\"2025-01-15T11:00:00.000Z\"}" },
        { "{\"shipment_id\":null,\"order_id\":\"" ORDER "\",\"reason\":\"payment_failed\","
          "\"cancelled_at\":\"2025-01-15T11:00:00.000Z\"}" },
        { "{\"shipment_id\":\"01946967-e0b8-7007-8000-0a9000000007\",\"order_id\":\"" ORDER
          "\",\"status\":\"shipped\",\"reason\":\"customer_request\",\"rejected_at\":"
          "\"2025-01-15T11:00:00.000Z\"}" },
    };
    const char *at = "2025-01-15T11:00:00.000Z";
    json_t *got[] = {
        ship_data_created(&s),
        ship_data_shipped(&s, at),
        ship_data_cancelled(NULL, ORDER, "payment_failed", at),
        ship_data_cancel_rejected(&s, "customer_request", at),
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *want = ag_test_json(cases[i].want);
        if (!json_equal(got[i], want)) {
            char *g = json_dumps(got[i], JSON_COMPACT);
            fail_msg("case %zu: got %s", i, g);
        }
        json_decref(want);
        json_decref(got[i]);
    }
    json_t *j = ship_shipment_to_json(&s);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "shipped");
    assert_true(json_is_null(json_object_get(j, "cancel_reason")));
    assert_int_equal(json_array_size(json_object_get(j, "tracking")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "lines")), 1);
    json_decref(j);
}

static void
test_cursor_round_trip(void **state)
{
    AG_UNUSED(state);
    char enc[96];
    ship_cursor_encode(ORDER, enc, sizeof(enc));
    char id[AG_UUID_STRLEN + 1];
    assert_int_equal(ship_cursor_decode(enc, id), 0);
    assert_string_equal(id, ORDER);
    assert_int_equal(ship_cursor_decode("!!", id), AG_EINVAL);
    assert_int_equal(ship_cursor_decode("", id), AG_EINVAL);
    assert_int_equal(ship_cursor_decode("YWJj", id), AG_EINVAL); /* "abc" */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_table),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_create_validation_table),
        cmocka_unit_test(test_cancel_validation_table),
        cmocka_unit_test(test_ids_and_tracking_numbers),
        cmocka_unit_test(test_reply_data),
        cmocka_unit_test(test_cursor_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
