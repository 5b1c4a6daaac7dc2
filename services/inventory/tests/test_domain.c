/* SPDX-License-Identifier: MIT */
/* Unit tests of the inventory domain: the reservation guard and the
 * all-or-nothing decision, stock adjustments that may not go below what is
 * reserved, threshold crossings, saga command validation (step keys, lines
 * merged by product, release reasons), admin bodies, id lists and cursors. */
#include "agora/base.h"

#include <string.h>

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

#define ORDER "01946967-d500-7004-8000-0a9000000004"
#define P1    "01945986-e400-7002-8000-0a9000000002"
#define P2    "0194598b-77e0-7003-8000-0a9000000003"

static void
test_guard_never_reserves_more_than_available(void **state)
{
    AG_UNUSED(state);
    static const struct {
        struct inv_stock_state s;
        int64_t quantity;
        bool ok;
        int64_t available;
    } cases[] = {
        { { true, true, 10, 0 }, 10, true, 10 }, { { true, true, 10, 0 }, 11, false, 10 },
        { { true, true, 10, 9 }, 1, true, 1 },   { { true, true, 10, 9 }, 2, false, 1 },
        { { true, true, 10, 10 }, 1, false, 0 }, { { true, true, 0, 0 }, 1, false, 0 },
        { { true, false, 10, 0 }, 1, false, 0 }, { { false, false, 0, 0 }, 1, false, 0 },
        { { true, true, 10, 0 }, 0, false, 10 }, { { true, true, 10, 0 }, -1, false, 10 },
        { { true, true, 5, 7 }, 1, false, 0 }, /* corrupt row: never negative */
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        assert_int_equal(inv_available(&cases[i].s), cases[i].available);
        if (inv_can_reserve(&cases[i].s, cases[i].quantity) != cases[i].ok)
            fail_msg("case %zu: can_reserve %lld", i, (long long)cases[i].quantity);
    }
}

static void
test_decide_is_all_or_nothing(void **state)
{
    AG_UNUSED(state);
    struct inv_line lines[3] = { { P1, 2 }, { P2, 5 }, { P1, 1 } };
    struct inv_stock_state ok[3] = { { true, true, 10, 0 },
                                     { true, true, 5, 0 },
                                     { true, true, 3, 0 } };
    bool failed[3];
    assert_int_equal(inv_reserve_decide(lines, ok, 3, failed), INV_REJECT_NONE);
    assert_false(failed[0] || failed[1] || failed[2]);

    struct inv_stock_state short_[3] = { { true, true, 10, 0 },
                                         { true, true, 5, 1 },
                                         { true, true, 3, 0 } };
    assert_int_equal(inv_reserve_decide(lines, short_, 3, failed), INV_REJECT_OUT_OF_STOCK);
    assert_false(failed[0]);
    assert_true(failed[1]);
    assert_false(failed[2]);

    /* An unknown product outranks a shortage, whatever the order. */
    struct inv_stock_state unknown[3] = { { true, true, 0, 0 },
                                          { false, false, 0, 0 },
                                          { true, true, 3, 0 } };
    assert_int_equal(inv_reserve_decide(lines, unknown, 3, failed), INV_REJECT_UNKNOWN_PRODUCT);
    assert_true(failed[0] && failed[1]);
    struct inv_stock_state deleted[1] = { { true, false, 10, 0 } };
    assert_int_equal(inv_reserve_decide(lines, deleted, 1, failed), INV_REJECT_UNKNOWN_PRODUCT);
    assert_int_equal(inv_reserve_decide(lines, ok, 0, failed), INV_REJECT_INVALID);
    assert_string_equal(inv_reject_name(INV_REJECT_OUT_OF_STOCK), "out_of_stock");
    assert_string_equal(inv_reject_name(INV_REJECT_UNKNOWN_PRODUCT), "unknown_product");
}

static void
test_adjust_never_goes_below_reserved(void **state)
{
    AG_UNUSED(state);
    int64_t out = -7;
    assert_int_equal(inv_stock_adjust(10, 4, -6, &out), 0);
    assert_int_equal(out, 4);
    assert_int_equal(inv_stock_adjust(10, 4, -7, &out), AG_ECONFLICT);
    assert_int_equal(inv_stock_adjust(10, 0, -11, &out), AG_ERANGE);
    assert_int_equal(inv_stock_adjust(INV_STOCK_MAX, 0, 1, &out), AG_ERANGE);
    assert_int_equal(inv_stock_adjust(0, 0, INV_STOCK_MAX, &out), 0);
    assert_int_equal(out, INV_STOCK_MAX);
    /* A commit: on hand and reserved go down together. */
    assert_int_equal(inv_stock_adjust(10, 10 - 3, -3, &out), 0);
    assert_int_equal(out, 7);
}

static void
test_crossings(void **state)
{
    AG_UNUSED(state);
    static const struct {
        int64_t before, after, threshold;
        bool low, depleted;
    } cases[] = {
        { 10, 6, 5, false, false }, { 6, 5, 5, true, false }, { 6, 0, 5, true, true },
        { 5, 4, 5, false, false },  { 1, 0, 5, false, true }, { 0, 0, 5, false, false },
        { 4, 10, 5, false, false }, { 3, 0, 0, true, true },  { 0, 3, 0, false, false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        bool low;
        bool depleted;
        inv_stock_crossings(cases[i].before, cases[i].after, cases[i].threshold, &low, &depleted);
        if (low != cases[i].low || depleted != cases[i].depleted)
            fail_msg("case %zu: low %d depleted %d", i, low, depleted);
    }
}

static void
test_step_keys(void **state)
{
    AG_UNUSED(state);
    assert_true(inv_step_key_is_valid(ORDER, ORDER ":reserve"));
    assert_true(inv_step_key_is_valid(ORDER, ORDER ":release-2.retry_1"));
    assert_false(inv_step_key_is_valid(ORDER, ORDER ":"));
    assert_false(inv_step_key_is_valid(ORDER, ORDER ":Reserve"));
    assert_false(inv_step_key_is_valid(ORDER, ORDER "reserve"));
    assert_false(inv_step_key_is_valid(ORDER, "reserve"));
    assert_false(inv_step_key_is_valid(ORDER, P1 ":reserve"));
    char long_key[200];
    snprintf(long_key, sizeof(long_key), "%s:%065d", ORDER, 0);
    assert_false(inv_step_key_is_valid(ORDER, long_key));
    assert_true(inv_id_is_valid(ag_str_from_cstr(ORDER)));
    assert_false(inv_id_is_valid(ag_str_from_cstr("01946967-D500-7004-8000-0A9000000004")));
    assert_false(inv_id_is_valid(ag_str_from_cstr("01946967-d500-4004-8000-0a9000000004")));
}

static void
test_command_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *data;
        const char *fields; /* expected error fields, "" when valid */
    } cases[] = {
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" ORDER
          ":reserve\",\"lines\":[{\"product_id\":"
          "\"" P1 "\",\"quantity\":1}]}",
          "" },
        { "{}", "order_id,step_key,lines" },
        { "{\"order_id\":\"x\",\"step_key\":\"x:reserve\",\"lines\":[]}", "order_id,lines" },
        { "{\"order_id\":\"" ORDER "\",\"step_key\":\"" P1 ":reserve\",\"lines\":[{\"product_id\":"
          "\"" P1 "\",\"quantity\":0},{\"product_id\":\"nope\",\"quantity\":1},7,"
          "{\"product_id\":\"" P2 "\",\"quantity\":1,\"x\":1}]}",
          "step_key,lines[0].quantity,lines[1].product_id,lines[2],lines[3].x" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *data = ag_test_json(cases[i].data);
        struct ag_valid v;
        ag_valid_init(&v);
        const char *order_id;
        const char *step_key;
        struct inv_line lines[INV_LINES_MAX];
        size_t n;
        inv_command_head(&v, data, &order_id, &step_key);
        inv_reserve_lines(&v, data, lines, &n);
        char got[256];
        ag_test_error_fields(&v, got, sizeof(got));
        if (strcmp(got, cases[i].fields) != 0)
            fail_msg("case %zu: fields '%s', want '%s'", i, got, cases[i].fields);
        ag_valid_release(&v);
        json_decref(data);
    }
}

static void
test_lines_merge_by_product(void **state)
{
    AG_UNUSED(state);
    json_t *data = ag_test_json("{\"lines\":[{\"product_id\":\"" P1 "\",\"quantity\":2},"
                                "{\"product_id\":\"" P2 "\",\"quantity\":1},"
                                "{\"product_id\":\"" P1 "\",\"quantity\":3}]}");
    struct ag_valid v;
    ag_valid_init(&v);
    struct inv_line lines[INV_LINES_MAX];
    size_t n;
    assert_true(inv_reserve_lines(&v, data, lines, &n));
    assert_int_equal(n, 2);
    assert_string_equal(lines[0].product_id, P1);
    assert_int_equal(lines[0].quantity, 5);
    assert_string_equal(lines[1].product_id, P2);
    assert_int_equal(lines[1].quantity, 1);
    ag_valid_release(&v);
    json_decref(data);

    /* Two lines of one product past the largest quantity. */
    data = ag_test_json("{\"lines\":[{\"product_id\":\"" P1 "\",\"quantity\":2147483647},"
                        "{\"product_id\":\"" P1 "\",\"quantity\":1}]}");
    ag_valid_init(&v);
    assert_false(inv_reserve_lines(&v, data, lines, &n));
    ag_valid_release(&v);
    json_decref(data);
}

static void
test_release_reason(void **state)
{
    AG_UNUSED(state);
    static const char *const ok[] = { "cancelled", "expired", "payment_failed", "shipment_failed" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(ok); i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"reason\":\"%s\"}", ok[i]);
        json_t *data = ag_test_json(text);
        struct ag_valid v;
        ag_valid_init(&v);
        assert_non_null(inv_release_reason(&v, data));
        ag_valid_release(&v);
        json_decref(data);
    }
    json_t *data = ag_test_json("{\"reason\":\"timeout\"}");
    struct ag_valid v;
    ag_valid_init(&v);
    assert_null(inv_release_reason(&v, data));
    ag_valid_release(&v);
    json_decref(data);
}

static void
test_admin_bodies(void **state)
{
    AG_UNUSED(state);
    int64_t on_hand;
    int64_t threshold;
    int64_t version;
    const char *reason;
    struct ag_valid v;
    ag_valid_init(&v);
    json_t *b = ag_test_json("{\"on_hand\":5,\"reason\":\"count\",\"low_threshold\":null}");
    assert_true(inv_stock_put_from_json(&v, b, &on_hand, &reason, &threshold, &version));
    assert_int_equal(on_hand, 5);
    assert_int_equal(threshold, -2);
    assert_int_equal(version, -1);
    json_decref(b);
    ag_valid_release(&v);

    ag_valid_init(&v);
    b = ag_test_json("{\"on_hand\":-1,\"reason\":\"\",\"low_threshold\":-3,\"x\":1}");
    assert_false(inv_stock_put_from_json(&v, b, &on_hand, &reason, &threshold, &version));
    char got[128];
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "x,on_hand,reason,low_threshold");
    json_decref(b);
    ag_valid_release(&v);

    int64_t delta;
    ag_valid_init(&v);
    b = ag_test_json("{\"delta\":0}");
    assert_false(inv_adjustment_from_json(&v, b, &delta, &reason));
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "delta,reason");
    json_decref(b);
    ag_valid_release(&v);
}

static void
test_ids_and_cursors(void **state)
{
    AG_UNUSED(state);
    char ids[INV_IDS_MAX][AG_UUID_STRLEN + 1];
    assert_int_equal(inv_parse_ids(P1 "," P2, ids), 2);
    assert_string_equal(ids[1], P2);
    assert_int_equal(inv_parse_ids(P1, ids), 1);
    assert_int_equal(inv_parse_ids("", ids), -1);
    assert_int_equal(inv_parse_ids(P1 ",", ids), -1);
    assert_int_equal(inv_parse_ids(P1 ",x", ids), -1);

    char enc[96];
    char back[AG_UUID_STRLEN + 1];
    inv_cursor_encode(P1, enc, sizeof(enc));
    assert_int_equal(inv_cursor_decode(enc, back), 0);
    assert_string_equal(back, P1);
    assert_int_equal(inv_cursor_decode("nope", back), AG_EINVAL);
    assert_int_equal(inv_cursor_decode("", back), AG_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_never_reserves_more_than_available),
        cmocka_unit_test(test_decide_is_all_or_nothing),
        cmocka_unit_test(test_adjust_never_goes_below_reserved),
        cmocka_unit_test(test_crossings),
        cmocka_unit_test(test_step_keys),
        cmocka_unit_test(test_command_validation_table),
        cmocka_unit_test(test_lines_merge_by_product),
        cmocka_unit_test(test_release_reason),
        cmocka_unit_test(test_admin_bodies),
        cmocka_unit_test(test_ids_and_cursors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
