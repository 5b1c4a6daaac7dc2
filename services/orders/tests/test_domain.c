/* SPDX-License-Identifier: MIT */
/* Unit tests of the orders domain: product validation with per-field
 * errors, patches, search-query sanitising, cursors, URL and sku rules. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

static void
test_create_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *fields; /* expected error fields, "" for valid */
    } cases[] = {
        { "{\"sku\":\"A-1\",\"name\":\"N\",\"price\":{\"amount\":100,\"currency\":\"EUR\"}}", "" },
        { "{\"sku\":\"A-1\",\"name\":\"N\",\"price\":{\"amount\":0,\"currency\":\"JPY\"},"
          "\"description\":null,\"category\":\"books\",\"image_url\":\"https://x.example/a.png\","
          "\"active\":false}",
          "" },
        { "{}", "sku,name,price" },
        { "{\"sku\":\"has space\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\"}}",
          "sku" },
        { "{\"sku\":\"A\",\"name\":\"\",\"price\":{\"amount\":1,\"currency\":\"EUR\"}}", "name" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":-1,\"currency\":\"EUR\"}}",
          "price.amount" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1.5,\"currency\":\"EUR\"}}",
          "price.amount" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"eur\"}}",
          "price.currency" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"XXZ\"}}",
          "price.currency" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1}}", "price.currency" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":5}", "price" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\",\"x\":1}}",
          "price.x" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},\"color\":"
          "\"red\"}",
          "color" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
          "\"image_url\":\"javascript:alert(1)\"}",
          "image_url" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
          "\"category\":\"Not A Slug\"}",
          "category" },
        { "{\"sku\":\"A\",\"name\":\"N\",\"price\":{\"amount\":1,\"currency\":\"EUR\"},"
          "\"active\":\"yes\"}",
          "active" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        struct orders_product p;
        bool ok = orders_product_from_json(&v, body, &p);
        char fields[256];
        ag_test_error_fields(&v, fields, sizeof(fields));
        if (ok != (cases[i].fields[0] == '\0') || strcmp(fields, cases[i].fields) != 0)
            fail_msg("case %zu: ok=%d fields '%s', want '%s'", i, ok, fields, cases[i].fields);
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_name_length_in_code_points(void **state)
{
    AG_UNUSED(state);
    /* 200 two-byte characters are 400 bytes but exactly the limit. */
    char name[2 * ORDERS_NAME_MAX + 3];
    for (int i = 0; i < ORDERS_NAME_MAX; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[2 * ORDERS_NAME_MAX] = '\0';
    json_t *body = json_pack("{s:s, s:s, s:{s:i, s:s}}", "sku", "A", "name", name, "price",
                             "amount", 1, "currency", "EUR");
    struct ag_valid v;
    ag_valid_init(&v);
    struct orders_product p;
    assert_true(orders_product_from_json(&v, body, &p));
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_patch(void **state)
{
    AG_UNUSED(state);
    struct orders_product p = {
        .sku = "A",
        .name = "Old",
        .description = "d",
        .category = "books",
        .image_url = "/a.png",
        .active = true,
        .version = 3,
    };
    p.price.amount = 100;
    memcpy(p.price.currency, "EUR", 4);
    json_t *body = ag_test_json("{\"name\":\"New\",\"category\":null,\"description\":null,"
                                "\"price\":{\"amount\":250,\"currency\":\"USD\"},\"version\":3}");
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t version;
    assert_true(orders_product_patch(&v, body, &p, &version));
    assert_int_equal(version, 3);
    assert_string_equal(p.name, "New");
    assert_string_equal(p.sku, "A");
    assert_null(p.category);
    assert_string_equal(p.description, "");
    assert_string_equal(p.image_url, "/a.png");
    assert_int_equal(p.price.amount, 250);
    assert_string_equal(p.price.currency, "USD");
    ag_valid_release(&v);
    json_decref(body);

    body = ag_test_json("{\"id\":\"x\",\"version\":0}");
    ag_valid_init(&v);
    assert_false(orders_product_patch(&v, body, &p, &version));
    char fields[128];
    ag_test_error_fields(&v, fields, sizeof(fields));
    assert_string_equal(fields, "id,version");
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_search_query(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *q;
        int terms;
        const char *fts;
    } cases[] = {
        { "headphones", 1, "\"headphones\"*" },
        { "wireless  headph", 2, "\"wireless\"* \"headph\"*" },
        { "\"a\" OR b*", 3, "\"a\"* \"OR\"* \"b\"*" },
        { "NEAR(a b) -c", 4, "\"NEAR\"* \"a\"* \"b\"* \"c\"*" },
        { "caf\xc3\xa9", 1, "\"caf\xc3\xa9\"*" },
        { "()*-\"", 0, "" },
        { "", 0, "" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_buf b = AG_BUF_INIT(0);
        int n = orders_search_query(cases[i].q, &b);
        if (n != cases[i].terms || strcmp(ag_buf_cstr(&b), cases[i].fts) != 0)
            fail_msg("'%s': %d '%s'", cases[i].q, n, ag_buf_cstr(&b));
        ag_buf_release(&b);
    }
    char longq[ORDERS_QUERY_MAX + 2];
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    struct ag_buf b = AG_BUF_INIT(0);
    assert_int_equal(orders_search_query(longq, &b), AG_ERANGE);
    assert_int_equal(orders_search_query("bad \xff utf8", &b), AG_EINVAL);
    ag_buf_release(&b);
}

static void
test_cursor_round_trip(void **state)
{
    AG_UNUSED(state);
    struct orders_cursor c = { .kind = ORDERS_CURSOR_KEY };
    ag_uuid7(c.key);
    char enc[96];
    orders_cursor_encode(&c, enc, sizeof(enc));
    struct orders_cursor d;
    assert_int_equal(orders_cursor_decode(enc, &d), 0);
    assert_int_equal(d.kind, ORDERS_CURSOR_KEY);
    assert_string_equal(d.key, c.key);

    c.kind = ORDERS_CURSOR_OFFSET;
    c.offset = 40;
    orders_cursor_encode(&c, enc, sizeof(enc));
    assert_int_equal(orders_cursor_decode(enc, &d), 0);
    assert_int_equal(d.kind, ORDERS_CURSOR_OFFSET);
    assert_int_equal(d.offset, 40);

    static const char *const bad[] = { "", "a", "!!!!", "aw", "bzA", "azEwMDAwMDA", "xyz=" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        if (orders_cursor_decode(bad[i], &d) == 0)
            fail_msg("cursor '%s' accepted", bad[i]);
    }
}

static void
test_rules(void **state)
{
    AG_UNUSED(state);
    assert_true(orders_sku_is_valid("BK-001"));
    assert_true(orders_sku_is_valid("a.b_c-d"));
    assert_false(orders_sku_is_valid("-lead"));
    assert_false(orders_sku_is_valid(""));
    assert_true(orders_slug_is_valid("home-garden"));
    assert_false(orders_slug_is_valid("-x"));
    assert_false(orders_slug_is_valid("Books"));
    assert_true(orders_image_url_is_valid("https://cdn.example/a.png"));
    assert_true(orders_image_url_is_valid("/img/a.png"));
    assert_false(orders_image_url_is_valid("//evil.example/a.png"));
    assert_false(orders_image_url_is_valid("ftp://x/a"));
    assert_false(orders_image_url_is_valid("https://"));
    assert_false(orders_image_url_is_valid("https://x/a b"));
    assert_false(orders_image_url_is_valid("https://x/\"onerror"));
}

static void
test_to_json(void **state)
{
    AG_UNUSED(state);
    struct orders_product p = {
        .id = "0190a000-0000-7000-8000-000000000000",
        .sku = "A",
        .name = "N",
        .description = "",
        .category = NULL,
        .image_url = NULL,
        .active = true,
        .created_at = "2026-01-01T00:00:00.000Z",
        .updated_at = "2026-01-01T00:00:00.000Z",
        .version = 2,
    };
    p.price.amount = 1999;
    memcpy(p.price.currency, "EUR", 4);
    json_t *j = orders_product_to_json(&p);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "category")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "price"), "amount")),
                     1999);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_validation_table),
        cmocka_unit_test(test_name_length_in_code_points),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_search_query),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
