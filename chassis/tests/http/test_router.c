/* SPDX-License-Identifier: MIT */
/* Unit tests of the router: patterns, parameters, 404 vs 405 with Allow,
 * specificity, and query-string parsing with percent-decoding. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/router.h"

static void
h_list(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(req);
    AG_UNUSED(udata);
}

static void
h_get(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(req);
    AG_UNUSED(udata);
}

static void
h_special(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(req);
    AG_UNUSED(udata);
}

static const struct ag_route ROUTES[] = {
    { "GET", "/v1/products", h_list, AG_ROLE_PUBLIC },
    { "POST", "/v1/products", h_list, AG_ROLE_ADMIN },
    { "GET", "/v1/products/{id}", h_get, AG_ROLE_PUBLIC },
    { "PATCH", "/v1/products/{id}", h_get, AG_ROLE_ADMIN },
    { "GET", "/v1/products/featured", h_special, AG_ROLE_PUBLIC },
    { "GET", "/v1/users/{uid}/orders/{oid}", h_get, AG_ROLE_CUSTOMER },
    { "GET", "/", h_list, AG_ROLE_PUBLIC },
};

static struct ag_router *
make_router(void)
{
    struct ag_router *r = ag_router_new();
    assert_int_equal(ag_router_add_table(r, ROUTES, AG_ARRAY_SIZE(ROUTES), (void *)0x1), 0);
    return r;
}

static void
test_match_table(void **state)
{
    AG_UNUSED(state);
    struct ag_router *r = make_router();
    static const struct {
        const char *method;
        const char *path;
        enum ag_router_status want;
        ag_route_fn fn;
        const char *allow;
    } cases[] = {
        { "GET", "/v1/products", AG_ROUTER_FOUND, h_list, "" },
        { "HEAD", "/v1/products", AG_ROUTER_FOUND, h_list, "" },
        { "POST", "/v1/products", AG_ROUTER_FOUND, h_list, "" },
        { "DELETE", "/v1/products", AG_ROUTER_METHOD_NOT_ALLOWED, NULL, "GET, HEAD, POST" },
        { "GET", "/v1/products/abc", AG_ROUTER_FOUND, h_get, "" },
        { "PUT", "/v1/products/abc", AG_ROUTER_METHOD_NOT_ALLOWED, NULL, "GET, HEAD, PATCH" },
        { "GET", "/v1/products/featured", AG_ROUTER_FOUND, h_special, "" },
        { "GET", "/v1/products/abc/extra", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "/v1/products/", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "/v1//products", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "/v1/product", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "v1/products", AG_ROUTER_NOT_FOUND, NULL, "" },
        { "GET", "/", AG_ROUTER_FOUND, h_list, "" },
        { "GET", "/v1/users/7/orders/9", AG_ROUTER_FOUND, h_get, "" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_route_match m;
        enum ag_router_status st = ag_router_match(r, ag_str_from_cstr(cases[i].method),
                                                   ag_str_from_cstr(cases[i].path), &m);
        if (st != cases[i].want)
            fail_msg("case %zu %s %s: status %d, want %d", i, cases[i].method, cases[i].path,
                     (int)st, (int)cases[i].want);
        if (st == AG_ROUTER_FOUND) {
            assert_ptr_equal(m.route->fn, cases[i].fn);
            assert_ptr_equal(m.udata, (void *)0x1);
        }
        if (st == AG_ROUTER_METHOD_NOT_ALLOWED)
            assert_string_equal(m.allow, cases[i].allow);
    }
    ag_router_free(r);
}

static void
test_params(void **state)
{
    AG_UNUSED(state);
    struct ag_router *r = make_router();
    struct ag_route_match m;
    assert_int_equal(
        ag_router_match(r, AG_STR_LIT("GET"), AG_STR_LIT("/v1/users/u%201/orders/42"), &m),
        AG_ROUTER_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_true(ag_str_eq_cstr(m.names[0], "uid"));
    assert_true(ag_str_eq_cstr(m.values[0], "u%201"));
    assert_true(ag_str_eq_cstr(m.names[1], "oid"));
    assert_true(ag_str_eq_cstr(m.values[1], "42"));
    ag_router_free(r);
}

static void
test_bad_patterns(void **state)
{
    AG_UNUSED(state);
    struct ag_router *r = ag_router_new();
    static const char *const bad[] = {
        "",        "v1/x",    "/v1//x",    "/v1/{}",
        "/v1/{id", "/v1/id}", "/v1/{a{b}", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        struct ag_route rt = { "GET", bad[i], h_get, AG_ROLE_PUBLIC };
        if (ag_router_add(r, &rt, NULL) != AG_EINVAL)
            fail_msg("pattern '%s' accepted", bad[i]);
    }
    struct ag_route ok = { "GET", "/v1/x/{id}", h_get, AG_ROLE_PUBLIC };
    assert_int_equal(ag_router_add(r, &ok, NULL), 0);
    assert_int_equal(ag_router_add(r, &ok, NULL), AG_EEXIST);
    assert_int_equal(ag_router_count(r), 1);
    assert_string_equal(ag_router_get(r, 0)->pattern, "/v1/x/{id}");
    ag_router_free(r);
}

static void
test_query(void **state)
{
    AG_UNUSED(state);
    struct ag_pool *pool = ag_pool_new(0);
    struct ag_query q;
    assert_int_equal(
        ag_query_parse(pool, AG_STR_LIT("a=1&b=hello+world&c=%2F%7e&&d&e=&a=2"), 16, &q), 0);
    assert_int_equal(q.n, 6);
    assert_string_equal(ag_query_get(&q, "a"), "1");
    assert_string_equal(ag_query_get(&q, "b"), "hello world");
    assert_string_equal(ag_query_get(&q, "c"), "/~");
    assert_string_equal(ag_query_get(&q, "d"), "");
    assert_string_equal(ag_query_get(&q, "e"), "");
    assert_null(ag_query_get(&q, "zz"));

    static const char *const bad[] = { "a=%", "a=%2", "a=%zz", "%00=1", "a=%00" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        if (ag_query_parse(pool, ag_str_from_cstr(bad[i]), 16, &q) != AG_EINVAL)
            fail_msg("query '%s' accepted", bad[i]);
    }
    assert_int_equal(ag_query_parse(pool, AG_STR_LIT("a=1&b=2&c=3"), 2, &q), AG_ETOOBIG);
    assert_int_equal(ag_query_parse(pool, AG_STR_LIT(""), 2, &q), 0);
    assert_int_equal(q.n, 0);
    ag_pool_free(pool);
}

static void
test_percent_decode(void **state)
{
    AG_UNUSED(state);
    char out[32];
    assert_int_equal(ag_str_percent_decode(AG_STR_LIT("a%20b+c"), false, out), 5);
    assert_string_equal(out, "a b+c");
    assert_int_equal(ag_str_percent_decode(AG_STR_LIT("a%20b+c"), true, out), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(ag_str_percent_decode(AG_STR_LIT("%"), false, out), AG_EINVAL);
    assert_int_equal(ag_str_percent_decode(AG_STR_LIT("ab%4"), false, out), AG_EINVAL);
    assert_int_equal(ag_str_percent_decode(AG_STR_LIT("%C3%A9"), false, out), 2);
    assert_string_equal(out, "\xc3\xa9");
}

static void
test_int_parse(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *s;
        int rc;
        int64_t v;
    } cases[] = {
        { "0", 0, 0 },
        { "42", 0, 42 },
        { "-7", 0, -7 },
        { "9223372036854775807", 0, INT64_MAX },
        { "-9223372036854775808", 0, INT64_MIN },
        { "9223372036854775808", AG_ERANGE, 0 },
        { "", AG_EINVAL, 0 },
        { "-", AG_EINVAL, 0 },
        { "+1", AG_EINVAL, 0 },
        { " 1", AG_EINVAL, 0 },
        { "1x", AG_EINVAL, 0 },
        { "0x10", AG_EINVAL, 0 },
        { "99999999999999999999999", AG_ERANGE, 0 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        int64_t v = 0;
        int rc = ag_str_to_i64(ag_str_from_cstr(cases[i].s), INT64_MIN, INT64_MAX, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].v))
            fail_msg("'%s': rc %d v %lld", cases[i].s, rc, (long long)v);
    }
    int64_t v;
    assert_int_equal(ag_str_to_i64(AG_STR_LIT("101"), 1, 100, &v), AG_ERANGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),    cmocka_unit_test(test_params),
        cmocka_unit_test(test_bad_patterns),   cmocka_unit_test(test_query),
        cmocka_unit_test(test_percent_decode), cmocka_unit_test(test_int_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
