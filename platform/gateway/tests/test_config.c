/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway route table: compiling the JSON document
 * (validation with messages naming the field), longest-prefix matching on
 * segment boundaries, exact routes, roles per method, sizes, and the
 * shipped routes.json. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "gateway.h"

static struct gw_config *
compile(const char *text, char *err, size_t errlen)
{
    json_t *root = ag_test_json(text);
    struct gw_config *cfg = NULL;
    int rc = gw_config_compile(root, "test", &cfg, err, errlen);
    json_decref(root);
    if (rc != 0)
        assert_null(cfg);
    return cfg;
}

static const char *TABLE =
    "{\"max_body\":\"2KiB\",\"routes\":["
    "{\"prefix\":\"/api/v1/products\",\"service\":\"catalog\",\"rewrite\":\"/v1/products\","
    " \"roles\":{\"GET\":\"public\",\"*\":\"admin\"},\"timeout_ms\":100,\"retries\":0},"
    "{\"prefix\":\"/api/v1/users\",\"exact\":true,\"service\":\"users\",\"roles\":{\"POST\":"
    "\"public\",\"*\":\"admin\"}},"
    "{\"prefix\":\"/api/v1/users\",\"service\":\"users\",\"roles\":{\"*\":\"admin\"},"
    " \"max_body\":100},"
    "{\"prefix\":\"/api/v1/users/me\",\"service\":\"users\",\"roles\":{\"*\":\"customer\"},"
    " \"rate_limit\":{\"per_user\":{\"rate\":2.5}}},"
    "{\"prefix\":\"/\",\"service\":\"web\",\"roles\":{\"GET\":\"public\"}},"
    "{\"prefix\":\"/api/v1/hidden\",\"service\":\"x\",\"roles\":{\"*\":\"internal\"}}"
    "],\"cors\":{\"allow_origins\":[\"http://a.test\",\"*\"],\"allow_methods\":[\"GET\",\"POST\"],"
    "\"max_age\":60}}";

static const char *
match(const struct gw_config *cfg, const char *path)
{
    const struct gw_route *r = gw_config_match(cfg, ag_str_from_cstr(path));
    static char buf[160];
    if (r == NULL)
        return "-";
    snprintf(buf, sizeof(buf), "%s%s", r->prefix, r->exact ? "!" : "");
    return buf;
}

static void
test_match_longest_prefix_on_segments(void **state)
{
    AG_UNUSED(state);
    char err[256];
    struct gw_config *cfg = compile(TABLE, err, sizeof(err));
    assert_non_null(cfg);
    static const struct {
        const char *path;
        const char *route;
    } cases[] = {
        { "/api/v1/products", "/api/v1/products" },
        { "/api/v1/products/", "/api/v1/products" },
        { "/api/v1/products/123/x", "/api/v1/products" },
        { "/api/v1/productsx", "/" },
        { "/api/v1/users", "/api/v1/users!" },
        { "/api/v1/users/", "/api/v1/users" },
        { "/api/v1/users/123", "/api/v1/users" },
        { "/api/v1/users/me", "/api/v1/users/me" },
        { "/api/v1/users/me/x", "/api/v1/users/me" },
        { "/api/v1/users/mex", "/api/v1/users" },
        { "/", "/" },
        { "/index.html", "/" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        if (strcmp(match(cfg, cases[i].path), cases[i].route) != 0)
            fail_msg("%s: got %s, want %s", cases[i].path, match(cfg, cases[i].path),
                     cases[i].route);
    }
    gw_config_unref(cfg);
}

static void
test_roles_limits_and_defaults(void **state)
{
    AG_UNUSED(state);
    char err[256];
    struct gw_config *cfg = compile(TABLE, err, sizeof(err));
    assert_non_null(cfg);
    const struct gw_route *p = gw_config_match(cfg, ag_str_from_cstr("/api/v1/products"));
    assert_int_equal(p->roles[GW_M_GET], GW_ROLE_PUBLIC);
    assert_int_equal(p->roles[GW_M_HEAD], GW_ROLE_PUBLIC); /* follows GET */
    assert_int_equal(p->roles[GW_M_POST], GW_ROLE_ADMIN);
    assert_int_equal(p->roles[GW_M_OTHER], GW_ROLE_ADMIN);
    assert_int_equal(p->timeout_ms, 100);
    assert_int_equal(p->retries, -1); /* "retries": 0 means none */
    assert_int_equal(p->max_body, 2048);
    assert_string_equal(p->rewrite, "/v1/products");
    const struct gw_route *u = gw_config_match(cfg, ag_str_from_cstr("/api/v1/users/1"));
    assert_int_equal(u->max_body, 100);
    assert_null(u->rewrite);
    const struct gw_route *me = gw_config_match(cfg, ag_str_from_cstr("/api/v1/users/me"));
    assert_int_equal(me->roles[GW_M_PATCH], GW_ROLE_CUSTOMER);
    assert_true(me->per_user.rate == 2.5);
    assert_true(me->per_user.burst == 3.0); /* default: ceil(rate) */
    assert_true(me->per_client.rate == 0.0);
    const struct gw_route *w = gw_config_match(cfg, ag_str_from_cstr("/x"));
    assert_int_equal(w->roles[GW_M_DELETE], GW_ROLE_ADMIN); /* not named: fail closed */
    const struct gw_route *h = gw_config_match(cfg, ag_str_from_cstr("/api/v1/hidden"));
    assert_int_equal(h->roles[GW_M_GET], GW_ROLE_DENY);
    assert_true(cfg->cors.enabled);
    assert_true(cfg->cors.any_origin);
    assert_int_equal(cfg->cors.norigins, 1);
    assert_string_equal(cfg->cors.allow_methods, "GET, POST");
    assert_string_equal(cfg->cors.max_age, "60");
    assert_int_equal(cfg->nservices, 4);
    /* References: a reload must not free a table in use. */
    gw_config_ref(cfg);
    gw_config_unref(cfg);
    assert_int_equal(cfg->refs, 1);
    gw_config_unref(cfg);
}

static void
test_invalid_tables_name_the_field(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *json;
        const char *msg; /* substring of the error */
    } cases[] = {
        { "[]", "JSON object" },
        { "{}", "routes: must be an array" },
        { "{\"routes\":[],\"typo\":1}", "unknown key 'typo'" },
        { "{\"routes\":[1]}", "routes[0]: must be an object" },
        { "{\"routes\":[{\"service\":\"a\"}]}", "routes[0].prefix" },
        { "{\"routes\":[{\"prefix\":\"api\",\"service\":\"a\"}]}", "routes[0].prefix" },
        { "{\"routes\":[{\"prefix\":\"/a/\",\"service\":\"a\"}]}", "must not end with '/'" },
        { "{\"routes\":[{\"prefix\":\"/a/../b\",\"service\":\"a\"}]}", "routes[0].prefix" },
        { "{\"routes\":[{\"prefix\":\"/a?x\",\"service\":\"a\"}]}", "routes[0].prefix" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"A B\"}]}", "routes[0].service" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"rewrite\":\"v1\"}]}",
          "routes[0].rewrite" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"roles\":{\"GET\":\"root\"}}]}",
          "routes[0].roles.GET" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"roles\":{\"BREW\":\"public\"}}]}",
          "unknown method 'BREW'" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"rate_limit\":{\"per_client\":"
          "{\"rate\":0}}}]}",
          "per_client.rate" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"rate_limit\":{\"per_user\":"
          "{\"rate\":1,\"burst\":0}}}]}",
          "per_user.burst" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"timeout_ms\":0}]}",
          "routes[0].timeout_ms" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"retries\":11}]}",
          "routes[0].retries" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\"},{\"prefix\":\"/a\",\"service\":"
          "\"b\"}]}",
          "repeats routes[0]" },
        { "{\"routes\":[],\"max_body\":\"1MB\"}", "max_body" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"fault\":{\"abort_percent\":101}}]}",
          "routes[0].fault.abort_percent" },
        { "{\"routes\":[{\"prefix\":\"/a\",\"service\":\"a\",\"fault\":{\"abort_status\":200}}]}",
          "routes[0].fault.abort_status" },
        { "{\"routes\":[],\"cors\":{\"allow_origins\":[\"a b\"]}}", "cors.allow_origins[0]" },
        { "{\"routes\":[],\"cors\":{\"allow_headers\":[\"X:Y\"]}}", "cors.allow_headers[0]" },
        { "{\"routes\":[],\"cors\":{\"max_age\":-1}}", "cors.max_age" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char err[256] = "";
        struct gw_config *cfg = compile(cases[i].json, err, sizeof(err));
        if (cfg != NULL)
            fail_msg("%s: accepted", cases[i].json);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("%s: error '%s' lacks '%s'", cases[i].json, err, cases[i].msg);
    }
}

static void
test_sizes(void **state)
{
    AG_UNUSED(state);
    uint64_t v = 0;
    assert_int_equal(gw_parse_size("1MiB", &v), 0);
    assert_int_equal(v, 1u << 20);
    assert_int_equal(gw_parse_size("64K", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(gw_parse_size("100", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(gw_parse_size("2 GiB", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(gw_parse_size("1MB", &v), AG_EINVAL);
    assert_int_equal(gw_parse_size("-1", &v), AG_EINVAL);
    assert_int_equal(gw_parse_size("", &v), AG_EINVAL);
}

static void
test_shipped_routes_json(void **state)
{
    AG_UNUSED(state);
    const char *src = getenv("AGORA_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/platform/gateway/routes.json", src ? src : ".");
    char err[512];
    struct gw_config *cfg = NULL;
    int rc = gw_config_load_file(path, &cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    static const struct {
        const char *path;
        enum gw_method m;
        const char *service;
        enum gw_role role;
    } cases[] = {
        { "/api/v1/users", GW_M_POST, "users", GW_ROLE_PUBLIC },
        { "/api/v1/users", GW_M_GET, "users", GW_ROLE_ADMIN },
        { "/api/v1/users/01a2", GW_M_GET, "users", GW_ROLE_ADMIN },
        { "/api/v1/users/01a2/disable", GW_M_POST, "users", GW_ROLE_ADMIN },
        { "/api/v1/users/me", GW_M_GET, "users", GW_ROLE_CUSTOMER },
        { "/api/v1/users/me", GW_M_PATCH, "users", GW_ROLE_CUSTOMER },
        { "/api/v1/auth/login", GW_M_POST, "users", GW_ROLE_PUBLIC },
        { "/api/v1/auth/refresh", GW_M_POST, "users", GW_ROLE_PUBLIC },
        { "/api/v1/auth/logout", GW_M_POST, "users", GW_ROLE_PUBLIC },
        { "/.well-known/jwks.json", GW_M_GET, "users", GW_ROLE_PUBLIC },
        { "/api/v1/products", GW_M_GET, "catalog", GW_ROLE_PUBLIC },
        { "/api/v1/products/1", GW_M_HEAD, "catalog", GW_ROLE_PUBLIC },
        { "/api/v1/products", GW_M_POST, "catalog", GW_ROLE_ADMIN },
        { "/api/v1/products/1", GW_M_PATCH, "catalog", GW_ROLE_ADMIN },
        { "/api/v1/categories/books", GW_M_DELETE, "catalog", GW_ROLE_ADMIN },
        { "/api/v1/stock", GW_M_GET, "inventory", GW_ROLE_PUBLIC },
        { "/api/v1/stock/p1", GW_M_GET, "inventory", GW_ROLE_ADMIN },
        { "/api/v1/reservations/r1", GW_M_GET, "inventory", GW_ROLE_ADMIN },
        { "/api/v1/cart/items/p1", GW_M_DELETE, "orders", GW_ROLE_CUSTOMER },
        { "/api/v1/orders/o1/cancel", GW_M_POST, "orders", GW_ROLE_CUSTOMER },
        { "/api/v1/payments", GW_M_POST, "payments", GW_ROLE_CUSTOMER },
        { "/api/v1/payments", GW_M_GET, "payments", GW_ROLE_CUSTOMER },
        { "/api/v1/payments/p1/capture", GW_M_POST, "payments", GW_ROLE_ADMIN },
        { "/api/v1/payments/p1/refunds", GW_M_POST, "payments", GW_ROLE_ADMIN },
        { "/api/v1/payments/p1", GW_M_GET, "payments", GW_ROLE_CUSTOMER },
        { "/api/v1/shipments/s1", GW_M_GET, "shipping", GW_ROLE_CUSTOMER },
        { "/api/v1/notifications", GW_M_GET, "notifications", GW_ROLE_CUSTOMER },
        { "/api/v1/reports/sales", GW_M_GET, "analytics", GW_ROLE_ADMIN },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        const struct gw_route *r = gw_config_match(cfg, ag_str_from_cstr(cases[i].path));
        if (r == NULL)
            fail_msg("%s: no route", cases[i].path);
        if (strcmp(r->service, cases[i].service) != 0 || r->roles[cases[i].m] != cases[i].role)
            fail_msg("%s: service %s role %s", cases[i].path, r->service,
                     gw_role_name(r->roles[cases[i].m]));
    }
    assert_null(gw_config_match(cfg, ag_str_from_cstr("/index.html")));
    assert_null(gw_config_match(cfg, ag_str_from_cstr("/api/v1/registry")));
    gw_config_unref(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_longest_prefix_on_segments),
        cmocka_unit_test(test_roles_limits_and_defaults),
        cmocka_unit_test(test_invalid_tables_name_the_field),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_shipped_routes_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
