/* SPDX-License-Identifier: MIT */
/* Unit tests of log.c: level filtering (and lazy argument evaluation), the
 * line shape, JSON validity of hostile messages read back through a pipe,
 * context fields, ag_log_json merging and the line size cap. */
#include "agora/base.h"
#include "agora/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agora/err.h"

static int log_pipe[2];

static int
setup(void **state)
{
    AG_UNUSED(state);
    if (pipe2(log_pipe, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    /* Room for several maximum-size lines. */
    fcntl(log_pipe[1], F_SETPIPE_SZ, 1 << 20);
    ag_log_set_fd(log_pipe[1]);
    ag_log_init("catalog", "catalog-1", AG_LOG_DEBUG);
    ag_log_set_context(NULL, NULL);
    return 0;
}

static int
teardown(void **state)
{
    AG_UNUSED(state);
    ag_log_set_fd(2);
    ag_log_set_context(NULL, NULL);
    close(log_pipe[0]);
    close(log_pipe[1]);
    return 0;
}

/* Everything written so far; static storage, NUL-terminated. */
static const char *
drain(size_t *out_len)
{
    static char buf[1 << 20];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(log_pipe[0], buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (out_len)
        *out_len = n;
    return buf;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Read exactly one line and parse it strictly (duplicate keys rejected). */
static json_t *
one_line(void)
{
    size_t len;
    const char *s = drain(&len);
    assert_int_equal(count_lines(s), 1);
    assert_true(len > 0 && s[len - 1] == '\n');
    assert_true(len <= AG_LOG_LINE_MAX);
    for (size_t i = 0; i + 1 < len; i++) {
        if ((unsigned char)s[i] < 0x20)
            fail_msg("raw control byte 0x%02x at %zu", (unsigned char)s[i], i);
    }
    json_error_t err;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        fail_msg("line is not JSON (%s): %s", err.text, s);
    return j;
}

static const char *
get_str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* ---- Tests ---- */

static void
test_level_filtering(void **state)
{
    /* Every threshold against every line level: written iff level >= threshold. */
    AG_UNUSED(state);
    for (int th = AG_LOG_DEBUG; th <= AG_LOG_OFF; th++) {
        ag_log_set_level((enum ag_log_level)th);
        assert_int_equal(ag_log_get_level(), th);
        for (int lv = AG_LOG_DEBUG; lv < AG_LOG_OFF; lv++) {
            bool want = lv >= th;
            assert_int_equal(ag_log_enabled((enum ag_log_level)lv), want);
            AG_LOG((enum ag_log_level)lv, "t", "level %d at threshold %d", lv, th);
            assert_int_equal(count_lines(drain(NULL)), want ? 1 : 0);
        }
        assert_false(ag_log_enabled(AG_LOG_OFF));
    }
    ag_log_set_level(AG_LOG_DEBUG);
}

static int evaluations;

static int
expensive(void)
{
    return ++evaluations;
}

static void
test_disabled_arguments_not_evaluated(void **state)
{
    /* The macros check the level before evaluating their arguments. */
    AG_UNUSED(state);
    ag_log_set_level(AG_LOG_WARN);
    evaluations = 0;
    AG_LOGD("t", "%d", expensive());
    AG_LOGI("t", "%d", expensive());
    assert_int_equal(evaluations, 0);
    assert_int_equal(count_lines(drain(NULL)), 0);
    AG_LOGW("t", "%d", expensive());
    AG_LOGE("t", "%d", expensive());
    assert_int_equal(evaluations, 2);
    assert_int_equal(count_lines(drain(NULL)), 2);
    ag_log_set_level(AG_LOG_DEBUG);
}

static void
test_line_shape(void **state)
{
    /* Keys, their order, the RFC 3339 UTC timestamp with milliseconds. */
    AG_UNUSED(state);
    AG_LOGI("http", "listening on port %d", 8080);
    size_t len;
    const char *s = drain(&len);
    assert_true(strncmp(s, "{\"time\":\"", 9) == 0);
    const char *tail = s + 9 + 24;
    assert_string_equal(tail, "\",\"level\":\"info\",\"service\":\"catalog\",\"instance\":"
                              "\"catalog-1\",\"module\":\"http\",\"msg\":\"listening on port "
                              "8080\"}\n");
    const char *t = s + 9; /* 2026-11-21T21:48:01.123Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd')
            assert_true(t[i] >= '0' && t[i] <= '9');
        else
            assert_int_equal(t[i], shape[i]);
    }

    ag__log(AG_LOG_ERROR, NULL, "no module");
    json_t *j = one_line();
    assert_null(json_object_get(j, "module"));
    assert_string_equal(get_str(j, "level"), "error");
    json_decref(j);
}

struct hostile_case {
    const char *msg;  /* as passed to %s */
    const char *want; /* msg read back from the JSON line */
};

static void
test_hostile_messages_table(void **state)
{
    /* Quotes, backslashes, newlines, control bytes, DEL and invalid UTF-8
     * all produce one valid JSON line that reads back as expected. */
    AG_UNUSED(state);
    static const struct hostile_case cases[] = {
        { "plain", "plain" },
        { "quote \" backslash \\ slash /", "quote \" backslash \\ slash /" },
        { "two\nlines\r\nand\ttab", "two\nlines\r\nand\ttab" },
        { "ctl \x01\x02\x1b[31mred\x1f \x7f", "ctl \x01\x02\x1b[31mred\x1f \x7f" },
        { "\b\f", "\b\f" },
        { "bad \xff\xfe utf8", "bad \xEF\xBF\xBD\xEF\xBF\xBD utf8" },
        { "cut \xE2\x82", "cut \xEF\xBF\xBD\xEF\xBF\xBD" },
        { "overlong \xC0\xAF", "overlong \xEF\xBF\xBD\xEF\xBF\xBD" },
        { "surrogate \xED\xA0\x80", "surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" },
        { "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
          "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80" },
        { "\",\"level\":\"error", "\",\"level\":\"error" },
        { "", "" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        AG_LOGW("hostile\n\"mod", "%s", cases[i].msg);
        json_t *j = one_line();
        if (strcmp(get_str(j, "msg"), cases[i].want) != 0)
            fail_msg("case %zu: read back '%s'", i, get_str(j, "msg"));
        assert_string_equal(get_str(j, "level"), "warn");
        assert_string_equal(get_str(j, "module"), "hostile\n\"mod");
        assert_null(json_object_get(j, "truncated"));
        json_decref(j);
    }
}

static void
test_context_fields(void **state)
{
    /* request_id/trace_id appear only while set, escaped, and per thread. */
    AG_UNUSED(state);
    ag_log_set_context("req-1", "0af7651916cd43dd8448eb211c80319c");
    AG_LOGI("http", "with context");
    json_t *j = one_line();
    assert_string_equal(get_str(j, "request_id"), "req-1");
    assert_string_equal(get_str(j, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    json_decref(j);

    ag_log_set_context("evil\"id\n", NULL);
    AG_LOGI("http", "request id only");
    j = one_line();
    assert_string_equal(get_str(j, "request_id"), "evil\"id\n");
    assert_null(json_object_get(j, "trace_id"));
    json_decref(j);

    ag_log_set_context(NULL, NULL);
    AG_LOGI("http", "cleared");
    j = one_line();
    assert_null(json_object_get(j, "request_id"));
    assert_null(json_object_get(j, "trace_id"));
    json_decref(j);
}

static void *
log_from_thread(void *arg)
{
    AG_UNUSED(arg);
    AG_LOGI("thread", "no context here");
    return NULL;
}

static void
test_context_is_thread_local(void **state)
{
    /* Another thread does not see this thread's context. */
    AG_UNUSED(state);
    ag_log_set_context("main-req", "main-trace");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, log_from_thread, NULL), 0);
    pthread_join(th, NULL);
    json_t *j = one_line();
    assert_string_equal(get_str(j, "module"), "thread");
    assert_null(json_object_get(j, "request_id"));
    json_decref(j);
    ag_log_set_context(NULL, NULL);
}

static void
test_log_json_merge(void **state)
{
    /* Extra fields follow msg; keys the line already has are skipped. */
    AG_UNUSED(state);
    json_t *fields = json_pack("{s:i, s:s, s:s, s:s, s:{s:[i,b]}, s:s, s:f}", "status", 201,
                               "route", "/v1/products/{id}", "msg", "dup", "level", "fake",
                               "nested", "a", 1, true, "request_id", "from-fields", "ms", 1.5);
    assert_non_null(fields);
    ag_log_json(AG_LOG_INFO, "access", "POST /v1/products", fields);
    json_t *j = one_line();
    assert_string_equal(get_str(j, "msg"), "POST /v1/products");
    assert_string_equal(get_str(j, "level"), "info");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_string_equal(get_str(j, "route"), "/v1/products/{id}");
    assert_true(json_equal(json_object_get(j, "nested"), json_object_get(fields, "nested")));
    /* No request context: the field supplies request_id. */
    assert_string_equal(get_str(j, "request_id"), "from-fields");
    assert_true(json_real_value(json_object_get(j, "ms")) == 1.5);
    json_decref(j);

    /* With context, the context wins and the line still has no duplicate. */
    ag_log_set_context("ctx-req", NULL);
    ag_log_json(AG_LOG_INFO, "access", "again", fields);
    j = one_line();
    assert_string_equal(get_str(j, "request_id"), "ctx-req");
    json_decref(j);
    ag_log_set_context(NULL, NULL);

    /* Disabled level: nothing; NULL fields and NULL msg: a plain line. */
    ag_log_set_level(AG_LOG_ERROR);
    ag_log_json(AG_LOG_INFO, "access", "dropped", fields);
    assert_int_equal(count_lines(drain(NULL)), 0);
    ag_log_set_level(AG_LOG_DEBUG);
    ag_log_json(AG_LOG_INFO, NULL, NULL, NULL);
    j = one_line();
    assert_string_equal(get_str(j, "msg"), "");
    json_decref(j);

    /* A value jansson cannot encode is skipped, not written broken. */
    json_t *bad = json_object();
    json_object_set_new(bad, "bad", json_string_nocheck("\xff"));
    json_object_set_new(bad, "good", json_true());
    ag_log_json(AG_LOG_INFO, "t", "m", bad);
    j = one_line();
    assert_null(json_object_get(j, "bad"));
    assert_true(json_is_true(json_object_get(j, "good")));
    json_decref(j);
    json_decref(bad);
    json_decref(fields);
}

static void
test_line_cap(void **state)
{
    /* Oversized messages and fields are cut; the line stays valid JSON. */
    AG_UNUSED(state);
    static char big[40000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    AG_LOGI("t", "%s", big);
    json_t *j = one_line();
    assert_true(json_is_true(json_object_get(j, "truncated")));
    size_t n = strlen(get_str(j, "msg"));
    assert_true(n > AG_LOG_LINE_MAX / 2 && n < AG_LOG_LINE_MAX);
    json_decref(j);

    /* Characters that expand when escaped, cut at a character boundary. */
    static const char *const units[] = { "\"", "\x01", "\xE2\x82\xAC", "\xff" };
    for (size_t u = 0; u < AG_ARRAY_SIZE(units); u++) {
        size_t ul = strlen(units[u]);
        size_t k = 0;
        while (k + ul < sizeof(big)) {
            memcpy(big + k, units[u], ul);
            k += ul;
        }
        big[k] = '\0';
        AG_LOGI("t", "%s", big);
        j = one_line();
        assert_true(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);
    }

    memset(big, 'b', 20000);
    big[20000] = '\0';
    json_t *fields = json_object();
    json_object_set_new(fields, "small", json_integer(1));
    json_object_set_new(fields, "huge", json_string(big));
    json_object_set_new(fields, "after", json_integer(2));
    ag_log_json(AG_LOG_INFO, "t", "fields too big", fields);
    j = one_line();
    assert_int_equal(json_integer_value(json_object_get(j, "small")), 1);
    assert_null(json_object_get(j, "huge"));
    assert_int_equal(json_integer_value(json_object_get(j, "after")), 2);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    json_decref(fields);
}

static void
test_init_copies_and_caps_names(void **state)
{
    /* Service and instance are copied and cut to AG_LOG_NAME_MAX bytes. */
    AG_UNUSED(state);
    char service[100];
    memset(service, 's', sizeof(service) - 1);
    service[sizeof(service) - 1] = '\0';
    char instance[] = "inst-1";
    ag_log_init(service, instance, AG_LOG_DEBUG);
    memset(service, 'x', 10);
    instance[0] = 'X';
    AG_LOGI("t", "names");
    json_t *j = one_line();
    assert_int_equal(strlen(get_str(j, "service")), AG_LOG_NAME_MAX);
    assert_int_equal(get_str(j, "service")[0], 's');
    assert_string_equal(get_str(j, "instance"), "inst-1");
    json_decref(j);
    ag_log_init("catalog", "catalog-1", AG_LOG_DEBUG);
}

struct level_case {
    const char *text;
    int want; /* level, or -1 for AG_EINVAL */
};

static void
test_parse_level_table(void **state)
{
    /* Names are case-insensitive; anything else is AG_EINVAL. */
    AG_UNUSED(state);
    static const struct level_case cases[] = {
        { "debug", AG_LOG_DEBUG }, { "info", AG_LOG_INFO }, { "warn", AG_LOG_WARN },
        { "error", AG_LOG_ERROR }, { "off", AG_LOG_OFF },   { "INFO", AG_LOG_INFO },
        { "Warn", AG_LOG_WARN },   { "warning", -1 },       { "", -1 },
        { "info ", -1 },           { "fatal", -1 },         { NULL, -1 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        enum ag_log_level lv = AG_LOG_ERROR;
        int rc = ag_log_parse_level(cases[i].text, &lv);
        if (cases[i].want < 0) {
            assert_int_equal(rc, AG_EINVAL);
            assert_int_equal(lv, AG_LOG_ERROR);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(lv, cases[i].want);
        }
    }
    assert_string_equal(ag_log_level_name(AG_LOG_WARN), "warn");
    assert_string_equal(ag_log_level_name((enum ag_log_level)42), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_arguments_not_evaluated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_messages_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_is_thread_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_json_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_copies_and_caps_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_level_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
