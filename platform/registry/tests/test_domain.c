/* SPDX-License-Identifier: MIT */
/* Unit tests of the registry domain: name rules, body validation with
 * per-field errors, compare-and-set, the start index, and the instance
 * table's bookkeeping (modify indexes, TTL refresh, expiry, pruning). */
#include "agora/base.h"

#include "agora/err.h"
#include "agora/mem.h"
#include "agora_test.h"
#include "domain.h"

static char *
repeat(char c, size_t n)
{
    static char buf[512];
    assert_true(n < sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void
test_names(void **state)
{
    AG_UNUSED(state);
    assert_true(reg_service_name_is_valid("catalog"));
    assert_true(reg_service_name_is_valid("a-1"));
    assert_true(reg_service_name_is_valid(repeat('a', 64)));
    assert_false(reg_service_name_is_valid(repeat('a', 65)));
    assert_false(reg_service_name_is_valid(""));
    assert_false(reg_service_name_is_valid("Catalog"));
    assert_false(reg_service_name_is_valid("cat_alog"));
    assert_false(reg_service_name_is_valid("cat.alog"));
    assert_false(reg_service_name_is_valid(NULL));

    assert_true(reg_instance_id_is_valid("catalog-1"));
    assert_true(reg_instance_id_is_valid("A.b_c:d-9"));
    assert_true(reg_instance_id_is_valid(repeat('i', 128)));
    assert_false(reg_instance_id_is_valid(repeat('i', 129)));
    assert_false(reg_instance_id_is_valid(""));
    assert_false(reg_instance_id_is_valid("a b"));
    assert_false(reg_instance_id_is_valid("a/b"));

    assert_true(reg_config_key_is_valid("gateway.routes"));
    assert_true(reg_config_key_is_valid("A-Z_a-z.0-9"));
    assert_true(reg_config_key_is_valid(repeat('k', 200)));
    assert_false(reg_config_key_is_valid(repeat('k', 201)));
    assert_false(reg_config_key_is_valid(""));
    assert_false(reg_config_key_is_valid("a:b"));
    assert_false(reg_config_key_is_valid("a~"));
    assert_true(reg_config_prefix_is_valid(""));
    assert_true(reg_config_prefix_is_valid("gateway."));
    assert_false(reg_config_prefix_is_valid("a b"));

    assert_true(reg_address_is_valid("127.0.0.1"));
    assert_true(reg_address_is_valid("::1"));
    assert_true(reg_address_is_valid("[fe80::1%eth0]"));
    assert_true(reg_address_is_valid("catalog.internal"));
    assert_true(reg_address_is_valid(repeat('h', 255)));
    assert_false(reg_address_is_valid(repeat('h', 256)));
    assert_false(reg_address_is_valid(""));
    assert_false(reg_address_is_valid("a b"));
    assert_false(reg_address_is_valid("a/b"));

    assert_true(reg_key_has_prefix("gateway.routes", "gateway."));
    assert_true(reg_key_has_prefix("gateway.routes", ""));
    assert_false(reg_key_has_prefix("gatewayx", "gateway."));
    /* The listing range [prefix, prefix + '~') relies on '~' sorting after
     * every key character. */
    assert_true('~' > 'z' && '~' > 'Z' && '~' > '9' && '~' > '_' && '~' > '.' && '~' > '-');
}

static void
test_start_index(void **state)
{
    AG_UNUSED(state);
    int64_t now_us = INT64_C(1795299313674000);
    assert_int_equal(reg_start_index(0, now_us), now_us);
    assert_int_equal(reg_start_index(now_us + 5, now_us), now_us + 5);
    /* Below 2^53, so JavaScript clients read the index exactly. */
    assert_true(now_us < (INT64_C(1) << 53));
}

static void
test_cas(void **state)
{
    AG_UNUSED(state);
    assert_int_equal(reg_config_check_cas(-1, 0), 0);
    assert_int_equal(reg_config_check_cas(-1, 7), 0);
    assert_int_equal(reg_config_check_cas(0, 0), 0);
    assert_int_equal(reg_config_check_cas(0, 1), AG_ECONFLICT);
    assert_int_equal(reg_config_check_cas(3, 3), 0);
    assert_int_equal(reg_config_check_cas(3, 4), AG_ECONFLICT);
    assert_int_equal(reg_config_check_cas(3, 0), AG_ECONFLICT);
}

static void
test_instance_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *fields; /* expected error fields, "" for valid */
    } cases[] = {
        { "{\"address\":\"127.0.0.1\",\"port\":8081}", "" },
        { "{\"address\":\"h\",\"port\":1,\"ttl_ms\":1000,\"metadata\":{\"a\":[1]}}", "" },
        { "{\"address\":\"h\",\"port\":65535,\"ttl_ms\":300000}", "" },
        { "{}", "address,port" },
        { "{\"address\":\"\",\"port\":1}", "address" },
        { "{\"address\":\"a b\",\"port\":1}", "address" },
        { "{\"address\":7,\"port\":1}", "address" },
        { "{\"address\":\"h\",\"port\":0}", "port" },
        { "{\"address\":\"h\",\"port\":65536}", "port" },
        { "{\"address\":\"h\",\"port\":80.0}", "port" },
        { "{\"address\":\"h\",\"port\":80,\"ttl_ms\":999}", "ttl_ms" },
        { "{\"address\":\"h\",\"port\":80,\"ttl_ms\":300001}", "ttl_ms" },
        { "{\"address\":\"h\",\"port\":80,\"metadata\":[]}", "metadata" },
        { "{\"address\":\"h\",\"port\":80,\"metadata\":null}", "metadata" },
        { "{\"address\":\"h\",\"port\":80,\"x\":1}", "x" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        struct reg_instance_spec spec;
        bool ok = reg_instance_spec_from_json(&v, body, &spec);
        char fields[256];
        ag_test_error_fields(&v, fields, sizeof(fields));
        if (strcmp(fields, cases[i].fields) != 0 || ok != (cases[i].fields[0] == '\0'))
            fail_msg("%s: got errors '%s' (ok %d), want '%s'", cases[i].body, fields, ok,
                     cases[i].fields);
        if (ok && strcmp(cases[i].body, "{\"address\":\"127.0.0.1\",\"port\":8081}") == 0) {
            assert_string_equal(spec.address, "127.0.0.1");
            assert_int_equal(spec.port, 8081);
            assert_null(spec.metadata);
            assert_int_equal(spec.ttl_ms, REG_TTL_DEFAULT);
        }
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_metadata_limit(void **state)
{
    AG_UNUSED(state);
    /* {"k":"xxx..."}: 8 bytes of framing around the string. */
    json_t *body = json_pack("{s:s, s:i, s:{s:s}}", "address", "h", "port", 80, "metadata", "k",
                             repeat('x', 400));
    for (int grow = 0; grow < 2; grow++) {
        size_t n = REG_METADATA_MAX - 8 + (size_t)grow;
        char *big = ag_malloc(n + 1);
        memset(big, 'x', n);
        big[n] = '\0';
        json_object_set_new(json_object_get(body, "metadata"), "k", json_string(big));
        ag_free(big);
        struct ag_valid v;
        ag_valid_init(&v);
        struct reg_instance_spec spec;
        assert_int_equal(reg_instance_spec_from_json(&v, body, &spec), grow == 0);
        ag_valid_release(&v);
    }
    json_decref(body);
}

static void
test_config_validation(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *fields;
        const char *value; /* compact encoding when valid */
        int64_t cas;
    } cases[] = {
        { "{\"value\":{\"b\":1,\"a\":[true,null]}}", "", "{\"b\":1,\"a\":[true,null]}", -1 },
        { "{\"value\":null,\"cas\":0}", "", "null", 0 },
        { "{\"value\":\"s\",\"cas\":12}", "", "\"s\"", 12 },
        { "{}", "value", NULL, -1 },
        { "{\"value\":1,\"cas\":-1}", "cas", NULL, -1 },
        { "{\"value\":1,\"cas\":\"1\"}", "cas", NULL, -1 },
        { "{\"value\":1,\"other\":1}", "other", NULL, -1 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        struct ag_buf value = AG_BUF_INIT(0);
        int64_t cas;
        bool ok = reg_config_put_from_json(&v, body, &value, &cas);
        char fields[256];
        ag_test_error_fields(&v, fields, sizeof(fields));
        if (strcmp(fields, cases[i].fields) != 0 || ok != (cases[i].fields[0] == '\0'))
            fail_msg("%s: got errors '%s', want '%s'", cases[i].body, fields, cases[i].fields);
        if (ok) {
            assert_string_equal(ag_buf_cstr(&value), cases[i].value);
            assert_int_equal(cas, cases[i].cas);
        }
        ag_buf_release(&value);
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_config_entry_render(void **state)
{
    AG_UNUSED(state);
    struct reg_config_entry e = {
        .key = "a.b",
        .value = "[1,2]",
        .value_len = 5,
        .version = 3,
        .modify_index = INT64_C(1795299313674002),
    };
    struct ag_buf out = AG_BUF_INIT(0);
    assert_int_equal(reg_config_entry_render(&e, &out), 0);
    assert_string_equal(ag_buf_cstr(&out), "{\"key\":\"a.b\",\"value\":[1,2],\"version\":3,"
                                           "\"modify_index\":1795299313674002}");
    ag_buf_release(&out);
    struct ag_buf small = AG_BUF_INIT(10);
    assert_int_equal(reg_config_entry_render(&e, &small), AG_ETOOBIG);
    assert_int_equal(small.len, 0);
    ag_buf_release(&small);
}

/* ---- The instance table ---- */

static struct reg_instance_spec
spec_of(const char *address, int port, int64_t ttl)
{
    struct reg_instance_spec s = { .address = address, .port = port, .ttl_ms = ttl };
    return s;
}

static void
put(struct reg_state *st, const char *service, const char *id, struct reg_instance_spec spec,
    const struct reg_clock *now, bool want_changed)
{
    struct reg_service *svc;
    struct reg_instance *inst;
    bool changed;
    assert_int_equal(reg_state_register(st, service, id, &spec, now, &svc, &inst, &changed), 0);
    assert_int_equal(changed, want_changed);
    assert_string_equal(inst->id, id);
}

static void
test_register_and_index(void **state)
{
    AG_UNUSED(state);
    struct reg_state st;
    reg_state_init(&st, 1000, 100);
    struct reg_clock now = { .unix_ms = 5000, .mono_ms = 100 };
    assert_int_equal(reg_state_service_index(&st, "a"), 1000);

    put(&st, "a", "i2", spec_of("h", 1, 1000), &now, true);
    assert_int_equal(reg_state_service_index(&st, "a"), 1001);
    put(&st, "a", "i1", spec_of("h", 2, 1000), &now, true);
    assert_int_equal(reg_state_service_index(&st, "a"), 1002);
    put(&st, "b", "i1", spec_of("h", 3, 1000), &now, true);
    assert_int_equal(st.index, 1003);
    assert_int_equal(st.ninstances, 3);

    /* Sorted by id within a service, services sorted by name. */
    struct reg_service *a = reg_state_service(&st, "a");
    assert_string_equal(a->inst[0]->id, "i1");
    assert_string_equal(a->inst[1]->id, "i2");
    assert_string_equal(st.svcs[0]->name, "a");
    assert_string_equal(st.svcs[1]->name, "b");

    /* Identical data: TTL refreshed, no new index. */
    now.mono_ms = 600;
    now.unix_ms = 5500;
    put(&st, "a", "i1", spec_of("h", 2, 1000), &now, false);
    assert_int_equal(reg_state_service_index(&st, "a"), 1002);
    assert_int_equal(a->inst[0]->expires_mono, 1600);
    assert_int_equal(a->inst[0]->registered_ms, 5000);
    assert_int_equal(a->inst[0]->seen_ms, 5500);

    /* Any change: a new index. Metadata compares by value. */
    json_t *m1 = ag_test_json("{\"z\":1}");
    json_t *m2 = ag_test_json("{\"z\":1}");
    struct reg_instance_spec s1 = spec_of("h", 2, 1000);
    s1.metadata = m1;
    put(&st, "a", "i1", s1, &now, true);
    s1.metadata = m2;
    put(&st, "a", "i1", s1, &now, false);
    put(&st, "a", "i1", spec_of("h", 2, 2000), &now, true);
    put(&st, "a", "i1", spec_of("h2", 2, 2000), &now, true);
    assert_int_equal(reg_state_service_index(&st, "a"), 1006);
    json_decref(m1);
    json_decref(m2);

    reg_state_release(&st);
}

static void
test_limit(void **state)
{
    AG_UNUSED(state);
    struct reg_state st;
    reg_state_init(&st, 1, 2);
    struct reg_clock now = { .unix_ms = 1, .mono_ms = 1 };
    put(&st, "a", "1", spec_of("h", 1, 1000), &now, true);
    put(&st, "b", "1", spec_of("h", 1, 1000), &now, true);
    struct reg_instance_spec s = spec_of("h", 1, 1000);
    struct reg_service *svc;
    struct reg_instance *inst;
    bool changed;
    assert_int_equal(reg_state_register(&st, "c", "1", &s, &now, &svc, &inst, &changed),
                     AG_EUNAVAIL);
    assert_null(reg_state_service(&st, "c"));
    /* Replacing an existing instance is not a new one. */
    s.port = 2;
    assert_int_equal(reg_state_register(&st, "a", "1", &s, &now, &svc, &inst, &changed), 0);
    reg_state_release(&st);
}

static void
test_heartbeat_and_deregister(void **state)
{
    AG_UNUSED(state);
    struct reg_state st;
    reg_state_init(&st, 10, 100);
    struct reg_clock now = { .unix_ms = 0, .mono_ms = 0 };
    put(&st, "s", "x", spec_of("h", 1, 1000), &now, true);
    struct reg_instance *inst;
    now.mono_ms = 999;
    now.unix_ms = 999;
    assert_int_equal(reg_state_heartbeat(&st, "s", "x", &now, &inst), 0);
    assert_int_equal(inst->expires_mono, 1999);
    assert_int_equal(st.index, 11); /* heartbeats change nothing visible */
    now.mono_ms = 1999;
    assert_int_equal(reg_state_heartbeat(&st, "s", "x", &now, &inst), AG_ENOENT);
    assert_int_equal(reg_state_heartbeat(&st, "s", "nope", &now, &inst), AG_ENOENT);
    assert_int_equal(reg_state_heartbeat(&st, "nope", "x", &now, &inst), AG_ENOENT);

    struct reg_service *svc;
    assert_int_equal(reg_state_deregister(&st, "s", "nope", &svc), AG_ENOENT);
    assert_int_equal(reg_state_deregister(&st, "s", "x", &svc), 0);
    assert_int_equal(svc->modify_index, 12);
    assert_int_equal(st.ninstances, 0);
    reg_state_service_prune(&st, svc);
    assert_null(reg_state_service(&st, "s"));
    /* The index of the removed service is kept as the absent index. */
    assert_int_equal(reg_state_service_index(&st, "s"), 12);
    assert_int_equal(reg_state_service_index(&st, "other"), 12);
    assert_int_equal(reg_state_deregister(&st, "s", "x", &svc), AG_ENOENT);
    reg_state_release(&st);
}

struct expired_log {
    char names[128];
    size_t total;
};

static void
on_expired(struct reg_state *st, struct reg_service *svc, size_t n, void *udata)
{
    AG_UNUSED(st);
    struct expired_log *log = udata;
    strncat(log->names, svc->name, sizeof(log->names) - strlen(log->names) - 1);
    strncat(log->names, ";", sizeof(log->names) - strlen(log->names) - 1);
    log->total += n;
}

static void
test_expiry(void **state)
{
    AG_UNUSED(state);
    struct reg_state st;
    reg_state_init(&st, 100, 100);
    struct reg_clock now = { .unix_ms = 0, .mono_ms = 1000 };
    assert_int_equal(reg_state_next_expiry(&st), UINT64_MAX);
    put(&st, "a", "short", spec_of("h", 1, 1000), &now, true);
    put(&st, "a", "long", spec_of("h", 1, 5000), &now, true);
    put(&st, "b", "short", spec_of("h", 1, 1000), &now, true);
    put(&st, "c", "long", spec_of("h", 1, 5000), &now, true);
    assert_int_equal(reg_state_next_expiry(&st), 2000);
    struct reg_service *b = reg_state_service(&st, "b");
    b->nwatches = 1; /* a watch keeps the emptied entry alive */

    struct expired_log log = { .names = "" };
    now.mono_ms = 1999;
    assert_int_equal(reg_state_expire(&st, &now, on_expired, &log), 0);
    assert_int_equal(reg_service_live_count(reg_state_service(&st, "a"), &now), 2);
    now.mono_ms = 2000;
    assert_int_equal(reg_service_live_count(reg_state_service(&st, "a"), &now), 1);
    assert_int_equal(reg_state_expire(&st, &now, on_expired, &log), 2);
    assert_string_equal(log.names, "a;b;");
    assert_int_equal(log.total, 2);
    assert_int_equal(st.ninstances, 2);
    /* Each touched service got its own new index. */
    assert_int_equal(reg_state_service_index(&st, "a"), 105);
    assert_int_equal(reg_state_service_index(&st, "b"), 106);
    assert_int_equal(reg_state_service_index(&st, "c"), 104);
    assert_ptr_equal(reg_state_service(&st, "b"), b);
    assert_int_equal(reg_state_next_expiry(&st), 6000);

    b->nwatches = 0;
    reg_state_service_prune(&st, b);
    now.mono_ms = 6000;
    assert_int_equal(reg_state_expire(&st, &now, NULL, NULL), 2);
    assert_int_equal(st.nsvcs, 0);
    assert_int_equal(st.ninstances, 0);
    assert_int_equal(reg_state_service_index(&st, "a"), 108);
    assert_int_equal(reg_state_next_expiry(&st), UINT64_MAX);
    reg_state_release(&st);
}

static void
test_to_json(void **state)
{
    AG_UNUSED(state);
    struct reg_state st;
    reg_state_init(&st, 7, 10);
    struct reg_clock now = { .unix_ms = INT64_C(1767225600000), .mono_ms = 10 };
    put(&st, "cat", "b", spec_of("10.0.0.2", 2, 1000), &now, true);
    put(&st, "cat", "a", spec_of("10.0.0.1", 1, 2000), &now, true);
    put(&st, "dog", "z", spec_of("h", 1, 1000), &now, true);

    struct reg_service *cat = reg_state_service(&st, "cat");
    json_t *reg = reg_instance_to_json(cat->inst[0], "cat");
    char *s = json_dumps(reg, JSON_COMPACT);
    assert_string_equal(s, "{\"service\":\"cat\",\"id\":\"a\",\"address\":\"10.0.0.1\",\"port\":1,"
                           "\"metadata\":{},\"ttl_ms\":2000,"
                           "\"registered_at\":\"2026-01-01T00:00:00.000Z\","
                           "\"expires_at\":\"2026-01-01T00:00:02.000Z\"}");
    ag_free(s);
    json_decref(reg);

    now.mono_ms = 1010; /* "b" (and "dog"'s "z") reached their deadline */
    json_t *j = reg_service_to_json(cat, "cat", cat->modify_index, &now);
    assert_int_equal(json_array_size(json_object_get(j, "instances")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "index")), 9);
    json_decref(j);
    j = reg_service_to_json(NULL, "none", 3, &now);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"service\":\"none\",\"instances\":[],\"index\":3}");
    ag_free(s);
    json_decref(j);
    j = reg_state_services_to_json(&st, &now);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"services\":[{\"name\":\"cat\",\"instances\":1}],\"index\":10}");
    ag_free(s);
    json_decref(j);
    reg_state_release(&st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_start_index),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_instance_validation_table),
        cmocka_unit_test(test_metadata_limit),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_config_entry_render),
        cmocka_unit_test(test_register_and_index),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_heartbeat_and_deregister),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
