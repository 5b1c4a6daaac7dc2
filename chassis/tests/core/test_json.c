/* SPDX-License-Identifier: MIT */
/* Unit tests of json.c: strict parsing, bounded dump, the validation
 * getters (tables of inputs per getter), field naming, error caps and the
 * RFC 9457 problem shape. */
#include "agora/base.h"
#include "agora/json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agora/buf.h"
#include "agora/err.h"

/* ---- Helpers ---- */

static json_t *
must_parse(const char *text)
{
    char err[200];
    json_t *j = ag_json_parse_value(text, strlen(text), err, sizeof(err));
    if (j == NULL)
        fail_msg("test input does not parse: %s: %s", text, err);
    return j;
}

/* Error 'i' of 'v' has 'field' and 'code'. */
static void
assert_error(const struct ag_valid *v, size_t i, const char *field, const char *code)
{
    json_t *e = json_array_get(v->errors, i);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "field")), field);
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_true(json_is_string(json_object_get(e, "detail")));
    assert_true(json_string_length(json_object_get(e, "detail")) > 0);
}

static char *
dump(const json_t *j)
{
    static char out[4096];
    struct ag_buf b = AG_BUF_INIT(0);
    assert_int_equal(ag_json_dump(j, &b), 0);
    assert_true(b.len < sizeof(out));
    memcpy(out, ag_buf_cstr(&b), b.len + 1);
    ag_buf_release(&b);
    return out;
}

/* ---- Parsing ---- */

struct parse_case {
    const char *text;
    size_t len;        /* 0: strlen */
    bool ok_object;    /* ag_json_parse accepts it */
    bool ok_any;       /* ag_json_parse_value accepts it */
    const char *error; /* substring of the message when ag_json_parse fails */
};

static void
test_parse_table(void **state)
{
    /* Strict parsing: duplicates, NULs, trailing data, top-level shape. */
    AG_UNUSED(state);
    static const struct parse_case cases[] = {
        { "{\"a\":1}", 0, true, true, NULL },
        { " {\"a\":[1,{\"b\":null}]} \n", 0, true, true, NULL },
        { "{\"a\":1,\"a\":2}", 0, false, false, "duplicate" },
        { "{\"o\":{\"x\":1,\"x\":2}}", 0, false, false, "duplicate" },
        { "[1,2]", 0, false, true, "must be an object" },
        { "\"x\"", 0, false, true, "must be an object" },
        { "42", 0, false, true, "must be an object" },
        { "{\"a\":1} x", 0, false, false, "line 1, column" },
        { "{\"a\":1}{}", 0, false, false, "line 1" },
        { "", 0, false, false, "line" },
        { "{\"a\":1,}", 0, false, false, "line 1" },
        { "{\n\"a\":\n}", 0, false, false, "line 3" },
        { "{\"a\":\"\\u0000\"}", 0, false, false, "line 1" },
        { "{\"a\":\0}", 7, false, false, "NUL byte at offset 5" },
        { "{\"a\":99999999999999999999}", 0, false, false, "line 1" },
        { "{\"a\":\"\xff\"}", 0, false, false, "line 1" },
        { "{\"a\":NaN}", 0, false, false, "line 1" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        const struct parse_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->text);
        char err[256] = "";
        json_t *j = ag_json_parse(c->text, len, err, sizeof(err));
        if ((j != NULL) != c->ok_object)
            fail_msg("case %zu (%s): ag_json_parse %s (%s)", i, c->text, j ? "accepted" : "failed",
                     err);
        if (j == NULL && c->error != NULL && strstr(err, c->error) == NULL)
            fail_msg("case %zu: message '%s' lacks '%s'", i, err, c->error);
        json_decref(j);
        j = ag_json_parse_value(c->text, len, err, sizeof(err));
        if ((j != NULL) != c->ok_any)
            fail_msg("case %zu (%s): ag_json_parse_value %s", i, c->text,
                     j ? "accepted" : "failed");
        json_decref(j);
    }
}

static void
test_parse_null_input_and_tiny_errbuf(void **state)
{
    /* NULL data with length 0 is an empty input; messages are truncated. */
    AG_UNUSED(state);
    char err[8];
    assert_null(ag_json_parse(NULL, 0, err, sizeof(err)));
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_null(ag_json_parse("{", 1, NULL, 0));
}

/* ---- Dump ---- */

static void
test_dump(void **state)
{
    /* Compact output appended; ETOOBIG and EINVAL leave the buffer alone. */
    AG_UNUSED(state);
    json_t *j = must_parse("{\"b\": [true, null, 1.5], \"a\": \"x\\\"y\"}");
    struct ag_buf b = AG_BUF_INIT(0);
    ag_buf_append_cstr(&b, "pre:");
    assert_int_equal(ag_json_dump(j, &b), 0);
    assert_string_equal(ag_buf_cstr(&b), "pre:{\"b\":[true,null,1.5],\"a\":\"x\\\"y\"}");
    ag_buf_release(&b);

    json_t *s = json_string("scalar");
    assert_string_equal(dump(s), "\"scalar\"");
    json_decref(s);

    struct ag_buf small = AG_BUF_INIT(10);
    ag_buf_append_cstr(&small, "xy");
    assert_int_equal(ag_json_dump(j, &small), AG_ETOOBIG);
    assert_int_equal(small.len, 2);
    assert_string_equal(ag_buf_cstr(&small), "xy");
    ag_buf_release(&small);

    json_t *bad = json_object();
    json_object_set_new(bad, "k", json_string_nocheck("\xff"));
    struct ag_buf b2 = AG_BUF_INIT(0);
    assert_int_equal(ag_json_dump(bad, &b2), AG_EINVAL);
    assert_int_equal(b2.len, 0);
    ag_buf_release(&b2);
    json_decref(bad);
    json_decref(j);
}

/* ---- UTF-8 ---- */

static void
test_string_lossy(void **state)
{
    /* Invalid bytes become U+FFFD and NULs are dropped; valid text is kept. */
    AG_UNUSED(state);
    json_t *s = ag_json_string_lossy("a\xff"
                                     "b\0c\xE2\x82",
                                     7);
    assert_string_equal(json_string_value(s), "a\xEF\xBF\xBD"
                                              "bc\xEF\xBF\xBD\xEF\xBF\xBD");
    json_decref(s);
    s = ag_json_string_lossy("h\xC3\xA9llo", 6);
    assert_string_equal(json_string_value(s), "h\xC3\xA9llo");
    json_decref(s);
    s = ag_json_string_lossy(NULL, 0);
    assert_string_equal(json_string_value(s), "");
    json_decref(s);
}

/* ---- Getters ---- */

struct string_case {
    const char *body;
    unsigned flags;
    size_t min, max;
    const char *want;      /* value, or NULL */
    const char *want_code; /* error code, or NULL for no error */
};

static void
test_valid_string_table(void **state)
{
    /* Presence, null, type and code-point length rules of ag_valid_string. */
    AG_UNUSED(state);
    static const struct string_case cases[] = {
        { "{}", AG_VALID_OPTIONAL, 0, 0, NULL, NULL },
        { "{}", AG_VALID_REQUIRED, 0, 0, NULL, "required" },
        { "{\"s\":null}", AG_VALID_REQUIRED, 0, 0, NULL, "type" },
        { "{\"s\":null}", AG_VALID_OPTIONAL, 0, 0, NULL, "type" },
        { "{\"s\":null}", AG_VALID_NULLABLE, 0, 0, NULL, NULL },
        { "{\"s\":null}", AG_VALID_REQUIRED | AG_VALID_NULLABLE, 0, 0, NULL, NULL },
        { "{\"s\":5}", AG_VALID_OPTIONAL, 0, 0, NULL, "type" },
        { "{\"s\":[\"x\"]}", AG_VALID_REQUIRED, 0, 0, NULL, "type" },
        { "{\"s\":\"\"}", AG_VALID_REQUIRED, 0, 0, "", NULL },
        { "{\"s\":\"\"}", AG_VALID_REQUIRED, 1, 0, NULL, "too_short" },
        { "{\"s\":\"ab\"}", AG_VALID_REQUIRED, 3, 10, NULL, "too_short" },
        { "{\"s\":\"abc\"}", AG_VALID_REQUIRED, 3, 3, "abc", NULL },
        { "{\"s\":\"abcdef\"}", AG_VALID_REQUIRED, 0, 5, NULL, "too_long" },
        /* 5 code points in 6 bytes. */
        { "{\"s\":\"h\xC3\xA9llo\"}", AG_VALID_REQUIRED, 5, 5, "h\xC3\xA9llo", NULL },
        /* 3 code points in 9 bytes. */
        { "{\"s\":\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"}", AG_VALID_REQUIRED, 3, 3,
          "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", NULL },
        { "{\"s\":\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"}", AG_VALID_REQUIRED, 4, 0, NULL,
          "too_short" },
        /* 2 code points in 8 bytes, one via a surrogate-pair escape. */
        { "{\"s\":\"\xF0\x9F\x98\x80\\ud83d\\ude00\"}", AG_VALID_REQUIRED, 0, 2,
          "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", NULL },
        { "{\"s\":\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"}", AG_VALID_REQUIRED, 0, 1, NULL,
          "too_long" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        const struct string_case *c = &cases[i];
        json_t *body = must_parse(c->body);
        struct ag_valid v;
        ag_valid_init(&v);
        const char *got = ag_valid_string(&v, body, NULL, "s", c->flags, c->min, c->max);
        if (c->want == NULL && got != NULL)
            fail_msg("case %zu: got '%s', want NULL", i, got);
        if (c->want != NULL && (got == NULL || strcmp(got, c->want) != 0))
            fail_msg("case %zu: got '%s', want '%s'", i, got ? got : "(null)", c->want);
        if (c->want_code == NULL) {
            if (!ag_valid_ok(&v))
                fail_msg("case %zu: unexpected error", i);
        } else {
            assert_int_equal(json_array_size(v.errors), 1);
            assert_error(&v, 0, "s", c->want_code);
        }
        ag_valid_release(&v);
        json_decref(body);
    }
}

struct int_case {
    const char *body;
    unsigned flags;
    int64_t min, max;
    bool want_ok;
    int64_t want;
    const char *want_code;
};

static void
test_valid_int_table(void **state)
{
    /* JSON integers only; bounds inclusive; out_v untouched on failure. */
    AG_UNUSED(state);
    static const struct int_case cases[] = {
        { "{\"n\":1}", AG_VALID_REQUIRED, 0, 10, true, 1, NULL },
        { "{\"n\":0}", AG_VALID_REQUIRED, 0, 10, true, 0, NULL },
        { "{\"n\":10}", AG_VALID_REQUIRED, 0, 10, true, 10, NULL },
        { "{\"n\":-1}", AG_VALID_REQUIRED, 0, 10, false, 0, "too_small" },
        { "{\"n\":11}", AG_VALID_REQUIRED, 0, 10, false, 0, "too_large" },
        { "{\"n\":1.0}", AG_VALID_REQUIRED, 0, 10, false, 0, "type" },
        { "{\"n\":1e3}", AG_VALID_REQUIRED, 0, 10000, false, 0, "type" },
        { "{\"n\":\"1\"}", AG_VALID_REQUIRED, 0, 10, false, 0, "type" },
        { "{\"n\":true}", AG_VALID_REQUIRED, 0, 10, false, 0, "type" },
        { "{\"n\":null}", AG_VALID_NULLABLE, 0, 10, false, 0, NULL },
        { "{}", AG_VALID_OPTIONAL, 0, 10, false, 0, NULL },
        { "{}", AG_VALID_REQUIRED, 0, 10, false, 0, "required" },
        { "{\"n\":9223372036854775807}", AG_VALID_REQUIRED, INT64_MIN, INT64_MAX, true, INT64_MAX,
          NULL },
        { "{\"n\":-9223372036854775808}", AG_VALID_REQUIRED, INT64_MIN, INT64_MAX, true, INT64_MIN,
          NULL },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        const struct int_case *c = &cases[i];
        json_t *body = must_parse(c->body);
        struct ag_valid v;
        ag_valid_init(&v);
        int64_t out = 777;
        bool ok = ag_valid_int(&v, body, NULL, "n", c->flags, c->min, c->max, &out);
        if (ok != c->want_ok)
            fail_msg("case %zu (%s): returned %d", i, c->body, ok);
        assert_int_equal(out, c->want_ok ? c->want : 777);
        if (c->want_code == NULL) {
            assert_true(ag_valid_ok(&v));
        } else {
            assert_int_equal(json_array_size(v.errors), 1);
            assert_error(&v, 0, "n", c->want_code);
        }
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_valid_bool(void **state)
{
    /* Only JSON true/false are booleans. */
    AG_UNUSED(state);
    json_t *body = must_parse("{\"t\":true,\"f\":false,\"one\":1,\"str\":\"true\"}");
    struct ag_valid v;
    ag_valid_init(&v);
    bool b = false;
    assert_true(ag_valid_bool(&v, body, NULL, "t", AG_VALID_REQUIRED, &b));
    assert_true(b);
    assert_true(ag_valid_bool(&v, body, NULL, "f", AG_VALID_REQUIRED, &b));
    assert_false(b);
    assert_true(ag_valid_ok(&v));
    b = true;
    assert_false(ag_valid_bool(&v, body, NULL, "one", AG_VALID_REQUIRED, &b));
    assert_false(ag_valid_bool(&v, body, NULL, "str", AG_VALID_REQUIRED, &b));
    assert_false(ag_valid_bool(&v, body, NULL, "missing", AG_VALID_REQUIRED, &b));
    assert_true(b);
    assert_int_equal(json_array_size(v.errors), 3);
    assert_error(&v, 0, "one", "type");
    assert_error(&v, 1, "str", "type");
    assert_error(&v, 2, "missing", "required");
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_valid_nested_prefix(void **state)
{
    /* Nested objects name fields "parent.child"; an absent parent reports
     * only itself, not its children. */
    AG_UNUSED(state);
    json_t *body = must_parse("{\"price\":{\"amount\":-1,\"currency\":\"EURO\"},\"ship\":7}");
    struct ag_valid v;
    ag_valid_init(&v);
    json_t *price = ag_valid_object(&v, body, NULL, "price", AG_VALID_REQUIRED);
    assert_non_null(price);
    int64_t amount;
    assert_false(
        ag_valid_int(&v, price, "price", "amount", AG_VALID_REQUIRED, 0, INT64_MAX, &amount));
    assert_null(ag_valid_string(&v, price, "price", "currency", AG_VALID_REQUIRED, 3, 3));
    json_t *ship = ag_valid_object(&v, body, NULL, "ship", AG_VALID_REQUIRED);
    assert_null(ship);
    assert_null(ag_valid_string(&v, ship, "ship", "city", AG_VALID_REQUIRED, 1, 0));
    json_t *bill = ag_valid_object(&v, body, NULL, "bill", AG_VALID_REQUIRED);
    assert_null(ag_valid_string(&v, bill, "bill", "city", AG_VALID_REQUIRED, 1, 0));
    ag_valid_unknown(&v, price, "price", (const char *const[]){ "amount", NULL });

    assert_int_equal(json_array_size(v.errors), 5);
    assert_error(&v, 0, "price.amount", "too_small");
    assert_error(&v, 1, "price.currency", "too_long");
    assert_error(&v, 2, "ship", "type");
    assert_error(&v, 3, "bill", "required");
    assert_error(&v, 4, "price.currency", "unknown");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v.errors, 0), "detail")),
                        "must be at least 0");
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_valid_unknown(void **state)
{
    /* Every key outside the allow-list is reported, in document order. */
    AG_UNUSED(state);
    json_t *body = must_parse("{\"a\":1,\"zz\":2,\"b\":3,\"Ａ\":4}");
    struct ag_valid v;
    ag_valid_init(&v);
    static const char *const allowed[] = { "a", "b", NULL };
    ag_valid_unknown(&v, body, NULL, allowed);
    assert_int_equal(json_array_size(v.errors), 2);
    assert_error(&v, 0, "zz", "unknown");
    assert_error(&v, 1, "Ａ", "unknown");
    ag_valid_unknown(&v, NULL, NULL, allowed);
    json_t *arr = json_array();
    ag_valid_unknown(&v, arr, NULL, allowed);
    assert_int_equal(json_array_size(v.errors), 2);
    json_decref(arr);
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_valid_array_and_enum(void **state)
{
    /* Array item-count bounds and enum choices. */
    AG_UNUSED(state);
    json_t *body = must_parse("{\"items\":[1,2,3],\"empty\":[],\"mode\":\"fast\","
                              "\"bad\":\"FAST\",\"num\":1}");
    struct ag_valid v;
    ag_valid_init(&v);
    static const char *const modes[] = { "fast", "slow", NULL };
    assert_non_null(ag_valid_array(&v, body, NULL, "items", AG_VALID_REQUIRED, 1, 3));
    assert_null(ag_valid_array(&v, body, NULL, "items", AG_VALID_REQUIRED, 1, 2));
    assert_null(ag_valid_array(&v, body, NULL, "empty", AG_VALID_REQUIRED, 1, 0));
    assert_null(ag_valid_array(&v, body, NULL, "mode", AG_VALID_REQUIRED, 0, 0));
    const char *m = ag_valid_enum(&v, body, NULL, "mode", AG_VALID_REQUIRED, modes);
    assert_ptr_equal(m, modes[0]);
    assert_null(ag_valid_enum(&v, body, NULL, "bad", AG_VALID_REQUIRED, modes));
    assert_null(ag_valid_enum(&v, body, NULL, "num", AG_VALID_REQUIRED, modes));
    assert_int_equal(json_array_size(v.errors), 5);
    assert_error(&v, 0, "items", "too_long");
    assert_error(&v, 1, "empty", "too_short");
    assert_error(&v, 2, "mode", "type");
    assert_error(&v, 3, "bad", "invalid");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v.errors, 3), "detail")),
                        "must be one of fast, slow");
    assert_error(&v, 4, "num", "type");
    ag_valid_release(&v);
    json_decref(body);
}

static void
test_valid_is_null(void **state)
{
    /* Null is told apart from absent and from other values. */
    AG_UNUSED(state);
    json_t *body = must_parse("{\"n\":null,\"z\":0}");
    assert_true(ag_valid_is_null(body, "n"));
    assert_false(ag_valid_is_null(body, "z"));
    assert_false(ag_valid_is_null(body, "missing"));
    assert_false(ag_valid_is_null(NULL, "n"));
    json_decref(body);
}

static void
test_valid_error_caps(void **state)
{
    /* Hostile bodies: at most AG_VALID_MAX_ERRORS errors plus a marker;
     * long and invalid-UTF-8 field names are cut and repaired. */
    AG_UNUSED(state);
    json_t *body = json_object();
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        json_object_set_new(body, key, json_integer(i));
    }
    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_unknown(&v, body, NULL, (const char *const[]){ NULL });
    assert_int_equal(json_array_size(v.errors), AG_VALID_MAX_ERRORS + 1);
    assert_error(&v, AG_VALID_MAX_ERRORS, "", "too_many_errors");
    ag_valid_release(&v);
    json_decref(body);

    ag_valid_init(&v);
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    longname[AG_VALID_MAX_FIELD - 1] = '\xC3'; /* a 2-byte sequence across the cut */
    longname[AG_VALID_MAX_FIELD] = '\xA9';
    ag_valid_error(&v, longname, "custom", "bad %s", "\xff");
    ag_valid_error(&v, NULL, "body", "whole body");
    json_t *e = json_array_get(v.errors, 0);
    const char *f = json_string_value(json_object_get(e, "field"));
    assert_int_equal(strlen(f), AG_VALID_MAX_FIELD - 1);
    assert_string_equal(json_string_value(json_object_get(e, "detail")), "bad \xEF\xBF\xBD");
    assert_error(&v, 1, "", "body");
    ag_valid_release(&v);
    ag_valid_release(&v);
}

/* ---- Problems ---- */

static void
test_problem_shape(void **state)
{
    /* type/title/status/detail in order; errors are a copy of the list. */
    AG_UNUSED(state);
    json_t *p = ag_problem_new(404, "not-found", "Not found", "no product 'x'");
    assert_string_equal(dump(p), "{\"type\":\"urn:agora:problem:not-found\",\"title\":\"Not "
                                 "found\",\"status\":404,\"detail\":\"no product 'x'\"}");
    json_decref(p);

    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_error(&v, "name", "required", "is required");
    p = ag_problem_new(422, "validation-failed", "Validation failed", NULL);
    ag_problem_set_errors(p, &v);
    ag_valid_error(&v, "late", "required", "is required");
    json_array_clear(v.errors);
    assert_string_equal(dump(p), "{\"type\":\"urn:agora:problem:validation-failed\",\"title\":"
                                 "\"Validation failed\",\"status\":422,\"errors\":[{\"field\":"
                                 "\"name\",\"code\":\"required\",\"detail\":\"is required\"}]}");
    json_decref(p);
    ag_valid_release(&v);

    p = ag_problem_new(400, "bad-request", "Bad \xff request", "d\xC3");
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Bad \xEF\xBF\xBD request");
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "d\xEF\xBF\xBD");
    json_decref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_null_input_and_tiny_errbuf),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_string_lossy),
        cmocka_unit_test(test_valid_string_table),
        cmocka_unit_test(test_valid_int_table),
        cmocka_unit_test(test_valid_bool),
        cmocka_unit_test(test_valid_nested_prefix),
        cmocka_unit_test(test_valid_unknown),
        cmocka_unit_test(test_valid_array_and_enum),
        cmocka_unit_test(test_valid_is_null),
        cmocka_unit_test(test_valid_error_caps),
        cmocka_unit_test(test_problem_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
