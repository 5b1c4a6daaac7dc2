/* SPDX-License-Identifier: MIT */
/* Unit tests of the analytics domain: event classification, the order
 * projection's merge (the same row whatever the arrival order, duplicates
 * changing nothing), status precedence, lines and stock movements, report
 * dates, percentiles and ratios. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

#define ORDER "01946967-d500-7004-8000-0a9000000004"
#define USER  "01944f71-1a80-7001-8000-0a9000000001"
#define PROD1 "01945986-e400-7002-8000-0a9000000002"
#define PROD2 "0194598b-77e0-7003-8000-0a9000000003"
#define RES   "0194598b-77e0-7003-8000-0a90000000aa"

/* A CloudEvent of 'type' at 'time' with 'data' (JSON text). */
static json_t *
ce(const char *id, const char *type, const char *time, const char *data)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "id", id, "type",
                          type, "subject", ORDER, "time", time, "data", ag_test_json(data));
    return e;
}

static void
test_event_read(void **state)
{
    AG_UNUSED(state);
    struct an_event e;
    json_t *ok = ce("e1", "order.confirmed", "2025-01-15T10:00:05.000Z",
                    "{\"order_id\":\"" ORDER "\",\"confirmed_at\":\"2025-01-15T10:00:04.000Z\"}");
    assert_int_equal(an_event_read(ok, &e), 0);
    assert_int_equal(e.kind, AN_K_ORDER_CONFIRMED);
    assert_string_equal(e.order_id, ORDER);
    /* The business time is the data's confirmed_at, not the event's time. */
    assert_true(e.at_ms + 1000 == e.time_ms);
    json_decref(ok);

    json_t *reserved =
        ce("e2", "inventory.reserved", "2025-01-15T10:00:05.000Z", "{\"order_id\":\"" ORDER "\"}");
    assert_int_equal(an_event_read(reserved, &e), 0);
    assert_true(e.at_ms == e.time_ms); /* no business time field: the event's */
    json_decref(reserved);

    json_t *unknown = ce("e3", "shipment.cancel_rejected", "2025-01-15T10:00:05.000Z",
                         "{\"order_id\":\"" ORDER "\"}");
    assert_int_equal(an_event_read(unknown, &e), AG_ENOENT);
    json_decref(unknown);

    json_t *no_order =
        ce("e4", "order.created", "2025-01-15T10:00:05.000Z", "{\"order_id\":\"nope\"}");
    assert_int_equal(an_event_read(no_order, &e), AG_EINVAL);
    json_decref(no_order);

    json_t *bad_time = ce("e5", "order.created", "yesterday", "{\"order_id\":\"" ORDER "\"}");
    assert_int_equal(an_event_read(bad_time, &e), AG_EINVAL);
    json_decref(bad_time);

    json_t *no_data = json_pack("{s:s, s:s, s:s, s:s}", "id", "e6", "type", "order.created",
                                "subject", ORDER, "time", "2025-01-15T10:00:05.000Z");
    assert_int_equal(an_event_read(no_data, &e), AG_EINVAL);
    json_decref(no_data);
}

/* The events of one order's life, in causal order. */
static json_t *
life(void)
{
    json_t *a = json_array();
    json_array_append_new(a, ce("a", "order.created", "2025-01-15T10:00:00.000Z",
                                "{\"order_id\":\"" ORDER "\",\"user_id\":\"" USER "\",\"lines\":[],"
                                "\"total\":{\"amount\":4499,\"currency\":\"USD\"},"
                                "\"created_at\":\"2025-01-15T10:00:00.000Z\"}"));
    json_array_append_new(a, ce("b", "inventory.reserved", "2025-01-15T10:00:00.100Z",
                                "{\"order_id\":\"" ORDER "\",\"reservation_id\":\"" RES "\"}"));
    json_array_append_new(a, ce("c", "payment.authorized", "2025-01-15T10:00:00.300Z",
                                "{\"order_id\":\"" ORDER
                                "\",\"authorized_at\":\"2025-01-15T10:00:00.250Z\"}"));
    json_array_append_new(a, ce("d", "shipment.created", "2025-01-15T10:00:00.400Z",
                                "{\"order_id\":\"" ORDER
                                "\",\"created_at\":\"2025-01-15T10:00:00.400Z\"}"));
    json_array_append_new(a, ce("e", "order.confirmed", "2025-01-15T10:00:00.500Z",
                                "{\"order_id\":\"" ORDER "\",\"user_id\":\"" USER "\","
                                "\"total\":{\"amount\":4499,\"currency\":\"USD\"},"
                                "\"confirmed_at\":\"2025-01-15T10:00:00.500Z\"}"));
    json_array_append_new(a, ce("f", "payment.refunded", "2025-01-16T09:00:00.000Z",
                                "{\"order_id\":\"" ORDER "\","
                                "\"amount\":{\"amount\":4499,\"currency\":\"USD\"}}"));
    json_array_append_new(
        a, ce("g", "order.cancelled", "2025-01-16T09:00:00.000Z",
              "{\"order_id\":\"" ORDER "\",\"user_id\":\"" USER "\","
              "\"reason\":\"customer_request\",\"cancelled_at\":\"2025-01-16T09:00:00.000Z\"}"));
    /* A second reservation (after an expiry, say): the first one tells
     * when the order was reserved. */
    json_array_append_new(a, ce("h", "inventory.reserved", "2025-01-15T10:20:00.000Z",
                                "{\"order_id\":\"" ORDER "\",\"reservation_id\":\"" RES "\"}"));
    return a;
}

static void
apply_in(const json_t *events, const size_t *order, size_t n, struct an_order *o)
{
    an_order_init(o, ORDER);
    for (size_t i = 0; i < n; i++) {
        struct an_event e;
        assert_int_equal(an_event_read(json_array_get(events, order[i]), &e), 0);
        an_order_apply(o, &e);
    }
}

static bool
next_permutation(size_t *a, size_t n)
{
    size_t i = n - 1;
    while (i > 0 && a[i - 1] >= a[i])
        i--;
    if (i == 0)
        return false;
    size_t j = n - 1;
    while (a[j] <= a[i - 1])
        j--;
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
    for (size_t l = i, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return true;
}

static void
test_order_merge_is_order_insensitive(void **state)
{
    AG_UNUSED(state);
    json_t *events = life();
    size_t n = json_array_size(events);
    size_t idx[9];
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    struct an_order want;
    apply_in(events, idx, n, &want);
    assert_string_equal(want.user_id, USER);
    assert_string_equal(want.currency, "USD");
    assert_true(want.total == 4499);
    assert_true(want.refunded == 4499);
    assert_string_equal(want.cancel_reason, "customer_request");
    assert_int_equal(an_order_status(&want), AN_S_CANCELLED);
    assert_true(want.reserved_ms - want.created_ms == 100);
    assert_true(want.authorized_ms - want.reserved_ms == 150);
    /* Every arrival order of the 8 events gives the same row. */
    size_t perms = 0;
    do {
        struct an_order got;
        apply_in(events, idx, n, &got);
        assert_memory_equal(&got, &want, sizeof(got));
        perms++;
    } while (next_permutation(idx, n));
    assert_int_equal(perms, 40320);
    json_decref(events);
}

static void
test_order_duplicates_change_nothing(void **state)
{
    AG_UNUSED(state);
    json_t *events = life();
    size_t all[] = { 0, 1, 2, 3, 4 };
    struct an_order once;
    apply_in(events, all, AG_ARRAY_SIZE(all), &once);
    size_t twice_idx[] = { 0, 1, 2, 3, 4, 4, 3, 2, 1, 0 };
    struct an_order twice;
    apply_in(events, twice_idx, AG_ARRAY_SIZE(twice_idx), &twice);
    assert_memory_equal(&once, &twice, sizeof(once));
    assert_int_equal(an_order_status(&once), AN_S_CONFIRMED);
    json_decref(events);
}

static void
test_status_precedence(void **state)
{
    AG_UNUSED(state);
    static const struct {
        int64_t created, confirmed, completed, cancelled;
        const char *reason;
        enum an_status want;
    } cases[] = {
        { -1, -1, -1, -1, "", AN_S_UNKNOWN },
        { 1, -1, -1, -1, "", AN_S_OPEN },
        { 1, 2, -1, -1, "", AN_S_CONFIRMED },
        { -1, 2, -1, -1, "", AN_S_CONFIRMED }, /* created not here yet */
        { 1, 2, 3, -1, "", AN_S_COMPLETED },
        { 1, 2, -1, 3, "customer_request", AN_S_CANCELLED },
        { 1, -1, -1, 2, "out_of_stock", AN_S_REJECTED },
        { 1, -1, -1, 2, "payment_declined", AN_S_CANCELLED },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct an_order o;
        an_order_init(&o, ORDER);
        o.created_ms = cases[i].created;
        o.confirmed_ms = cases[i].confirmed;
        o.completed_ms = cases[i].completed;
        o.cancelled_ms = cases[i].cancelled;
        snprintf(o.cancel_reason, sizeof(o.cancel_reason), "%s", cases[i].reason);
        if (an_order_status(&o) != cases[i].want)
            fail_msg("case %zu: status %s", i, an_status_name(an_order_status(&o)));
    }
    assert_string_equal(an_status_name(AN_S_REJECTED), "rejected");
}

static void
test_earliest_cancellation_tells_the_reason(void **state)
{
    AG_UNUSED(state);
    json_t *late = ce("x", "order.cancelled", "2025-01-15T10:00:09.000Z",
                      "{\"order_id\":\"" ORDER "\",\"reason\":\"timeout\","
                      "\"cancelled_at\":\"2025-01-15T10:00:09.000Z\"}");
    json_t *early = ce("y", "order.cancelled", "2025-01-15T10:00:01.000Z",
                       "{\"order_id\":\"" ORDER "\",\"reason\":\"out_of_stock\","
                       "\"cancelled_at\":\"2025-01-15T10:00:01.000Z\"}");
    struct an_event a;
    struct an_event b;
    assert_int_equal(an_event_read(late, &a), 0);
    assert_int_equal(an_event_read(early, &b), 0);
    struct an_order o1;
    struct an_order o2;
    an_order_init(&o1, ORDER);
    an_order_init(&o2, ORDER);
    an_order_apply(&o1, &a);
    an_order_apply(&o1, &b);
    an_order_apply(&o2, &b);
    an_order_apply(&o2, &a);
    assert_memory_equal(&o1, &o2, sizeof(o1));
    assert_string_equal(o1.cancel_reason, "out_of_stock");
    json_decref(late);
    json_decref(early);
}

static void
test_order_lines(void **state)
{
    AG_UNUSED(state);
    json_t *created = ce("l1", "order.created", "2025-01-15T10:00:00.000Z",
                         "{\"order_id\":\"" ORDER "\",\"lines\":["
                         "{\"product_id\":\"" PROD1 "\",\"sku\":\"MUG-001\",\"quantity\":2,"
                         "\"unit_price\":{\"amount\":1250,\"currency\":\"USD\"}},"
                         "{\"product_id\":\"" PROD2 "\",\"sku\":\"TEE\",\"quantity\":1,"
                         "\"unit_price\":{\"amount\":1999,\"currency\":\"USD\"}}]}");
    struct an_event e;
    assert_int_equal(an_event_read(created, &e), 0);
    struct an_line lines[4];
    size_t n;
    assert_int_equal(an_event_order_lines(&e, lines, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(lines[0].product_id, PROD1);
    assert_string_equal(lines[0].sku, "MUG-001");
    assert_true(lines[0].quantity == 2 && lines[0].unit_amount == 1250);
    assert_string_equal(lines[1].currency, "USD");
    assert_int_equal(an_event_order_lines(&e, lines, 1, &n), AG_ETOOBIG);
    json_decref(created);

    json_t *bad = ce("l2", "order.created", "2025-01-15T10:00:00.000Z",
                     "{\"order_id\":\"" ORDER "\",\"lines\":[{\"product_id\":\"" PROD1 "\","
                     "\"quantity\":0,\"unit_price\":{\"amount\":1,\"currency\":\"USD\"}}]}");
    assert_int_equal(an_event_read(bad, &e), 0);
    assert_int_equal(an_event_order_lines(&e, lines, 4, &n), AG_EINVAL);
    json_decref(bad);
}

static void
test_stock_moves(void **state)
{
    AG_UNUSED(state);
    json_t *reserved = ce("m1", "inventory.reserved", "2025-01-15T10:00:00.000Z",
                          "{\"order_id\":\"" ORDER "\",\"reservation_id\":\"" RES "\",\"lines\":["
                          "{\"product_id\":\"" PROD1 "\",\"quantity\":2},"
                          "{\"product_id\":\"" PROD2 "\",\"quantity\":1},"
                          "{\"product_id\":\"" PROD1 "\",\"quantity\":3}]}");
    struct an_event e;
    assert_int_equal(an_event_read(reserved, &e), 0);
    struct an_move m[4];
    size_t n;
    const char *kind;
    assert_int_equal(an_event_moves(&e, m, 4, &n, &kind), 0);
    assert_string_equal(kind, AN_MOVE_RESERVED);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].product_id, PROD1);
    assert_true(m[0].quantity == 5 && m[1].quantity == 1);
    assert_string_equal(an_event_reservation_id(&e), RES);
    assert_int_equal(an_event_moves(&e, m, 1, &n, &kind), AG_ETOOBIG);
    json_decref(reserved);

    json_t *not_returned = ce("m2", "inventory.restocked", "2025-01-15T10:00:00.000Z",
                              "{\"order_id\":\"" ORDER "\",\"returned\":false,\"lines\":["
                              "{\"product_id\":\"" PROD1 "\",\"quantity\":2}]}");
    assert_int_equal(an_event_read(not_returned, &e), 0);
    assert_int_equal(an_event_moves(&e, m, 4, &n, &kind), 0);
    assert_int_equal(n, 0);
    assert_null(kind);
    json_decref(not_returned);

    json_t *released = ce("m3", "inventory.released", "2025-01-15T10:00:00.000Z",
                          "{\"order_id\":\"" ORDER "\",\"reservation_id\":\"" RES "\","
                          "\"reason\":\"payment_failed\",\"returned\":true}");
    assert_int_equal(an_event_read(released, &e), 0);
    struct an_release r;
    assert_int_equal(an_event_release(&e, &r), 0);
    assert_string_equal(r.reservation_id, RES);
    assert_string_equal(r.reason, "payment_failed");
    assert_true(r.returned);
    json_decref(released);
}

static void
test_days(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        { "2025-01-15", true },  { "2024-02-29", true },   { "2025-02-29", false },
        { "2025-13-01", false }, { "2025-00-10", false },  { "2025-1-15", false },
        { "1969-12-31", false }, { "2025-01-15T", false }, { "", false },
        { "abcd-ef-gh", false }, { "9999-12-31", true },   { "2025-04-31", false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        if (an_day_is_valid(cases[i].s) != cases[i].ok)
            fail_msg("'%s': want %d", cases[i].s, cases[i].ok);
    }
    assert_false(an_day_is_valid(NULL));
    char d[AN_DAY_LEN];
    an_day(0, d);
    assert_string_equal(d, "1970-01-01");
    an_day(-1, d);
    assert_string_equal(d, "");
}

static void
test_percentiles_and_ratios(void **state)
{
    AG_UNUSED(state);
    static const int64_t v[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    assert_true(an_percentile(v, 10, 50) == 5);
    assert_true(an_percentile(v, 10, 95) == 10);
    assert_true(an_percentile(v, 10, 100) == 10);
    assert_true(an_percentile(v, 1, 50) == 1);
    assert_true(an_percentile(v, 0, 50) == 0);
    assert_true(an_rank(20, 95) == 19);
    assert_true(an_rank(3, 50) == 2);
    assert_true(an_ratio(1, 3) == 0.3333);
    assert_true(an_ratio(2, 3) == 0.6667);
    assert_true(an_ratio(3, 3) == 1.0);
    assert_true(an_ratio(0, 5) == 0.0);
    assert_true(an_ratio(1, 0) < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_read),
        cmocka_unit_test(test_order_merge_is_order_insensitive),
        cmocka_unit_test(test_order_duplicates_change_nothing),
        cmocka_unit_test(test_status_precedence),
        cmocka_unit_test(test_earliest_cancellation_tells_the_reason),
        cmocka_unit_test(test_order_lines),
        cmocka_unit_test(test_stock_moves),
        cmocka_unit_test(test_days),
        cmocka_unit_test(test_percentiles_and_ratios),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
