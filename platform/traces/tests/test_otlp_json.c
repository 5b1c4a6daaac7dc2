/* SPDX-License-Identifier: MIT */
/* Unit tests of the collector's OTLP JSON reader (otlp_json.c): what each
 * span reads as (ids, times, kind, status, attributes and events as stored
 * JSON text), members in any order, strings with escapes, cut to 256 bytes
 * on a character boundary, and the bodies it must refuse whole. Every
 * stored text is parsed back with jansson, as the query routes do. */
#include "agora/base.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/str.h"
#include "agora_test.h"
#include "otlp_json.h"

#define TID "0af7651916cd43dd8448eb211c80319c"
#define SID "b7ad6b7169203331"
#define PID "00f067aa0ba902b7"

struct seen {
    int n;
    int valid;
    struct otlp_span last;
    char service[300];
    char name[300];
    char msg[300];
    char attrs[4096];
    char events[4096];
    char links[4096];
};

static int
collect(void *udata, const struct otlp_span *sp)
{
    struct seen *s = udata;
    s->n++;
    s->valid += sp->valid;
    s->last = *sp;
    snprintf(s->service, sizeof(s->service), "%s", sp->service);
    snprintf(s->name, sizeof(s->name), "%s", sp->name != NULL ? sp->name : "");
    snprintf(s->msg, sizeof(s->msg), "%s", sp->status_message != NULL ? sp->status_message : "");
    snprintf(s->attrs, sizeof(s->attrs), "%.*s", (int)sp->attrs_len,
             sp->attrs != NULL ? sp->attrs : "");
    snprintf(s->events, sizeof(s->events), "%.*s", (int)sp->events_len,
             sp->events != NULL ? sp->events : "");
    snprintf(s->links, sizeof(s->links), "%.*s", (int)sp->links_len,
             sp->links != NULL ? sp->links : "");
    return 0;
}

static int
read_body(const char *body, struct seen *s)
{
    char err[160] = "";
    memset(s, 0, sizeof(*s));
    return otlp_json_read(body, strlen(body), collect, s, err, sizeof(err));
}

/* One request around 'spans' (a JSON array text) for service 'svc'. */
static char *
request(const char *svc, const char *spans)
{
    return ag_asprintf(
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"%s\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
        "\"x\"},\"spans\":%s}]}]}",
        svc, spans);
}

static void
test_a_span_reads_whole(void **unused)
{
    AG_UNUSED(unused);
    struct seen s;
    char *body = request(
        "orders",
        "[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"parentSpanId\":\"" PID "\","
        "\"name\":\"POST /v1/orders\",\"kind\":2,\"startTimeUnixNano\":\"1700000000000000000\","
        "\"endTimeUnixNano\":1700000000250000000,\"status\":{\"code\":2,\"message\":\"declined\"},"
        "\"attributes\":[{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"402\"}},"
        "{\"key\":\"ok\",\"value\":{\"boolValue\":false}},{\"key\":\"ratio\",\"value\":{"
        "\"doubleValue\":0.25}},{\"key\":\"route\",\"value\":{\"stringValue\":\"/v1/{id}\"}},"
        "{\"key\":\"list\",\"value\":{\"arrayValue\":{\"values\":[]}}}],"
        "\"events\":[{\"name\":\"retry\",\"timeUnixNano\":\"1700000000100000000\","
        "\"attributes\":[]},{\"name\":\"no time\"}],\"droppedAttributesCount\":0,"
        "\"links\":[{\"traceId\":\"" TID "\",\"spanId\":\"" PID "\",\"attributes\":[]},"
        "{\"traceId\":\"bad\",\"spanId\":\"" PID "\"},7],\"droppedLinksCount\":1}]");
    assert_int_equal(read_body(body, &s), 0);
    ag_free(body);
    assert_int_equal(s.n, 1);
    assert_true(s.last.valid);
    assert_string_equal(s.service, "orders");
    assert_string_equal(s.last.trace_id, TID);
    assert_string_equal(s.last.span_id, SID);
    assert_string_equal(s.last.parent_id, PID);
    assert_string_equal(s.name, "POST /v1/orders");
    assert_int_equal(s.last.kind, 2);
    assert_true(s.last.start_ns == 1700000000000000000LL);
    assert_true(s.last.end_ns == 1700000000250000000LL);
    assert_int_equal(s.last.status_code, 2);
    assert_string_equal(s.msg, "declined");
    json_t *a = ag_test_json(s.attrs);
    assert_int_equal(json_integer_value(json_object_get(a, "http.response.status_code")), 402);
    assert_true(json_is_false(json_object_get(a, "ok")));
    assert_true(json_number_value(json_object_get(a, "ratio")) == 0.25);
    assert_string_equal(json_string_value(json_object_get(a, "route")), "/v1/{id}");
    assert_null(json_object_get(a, "list")); /* kinds not kept are left out */
    assert_int_equal(json_object_size(a), 4);
    json_decref(a);
    json_t *e = ag_test_json(s.events);
    assert_int_equal(json_array_size(e), 1); /* the event with no time is left out */
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "name")), "retry");
    assert_true(json_integer_value(json_object_get(json_array_get(e, 0), "time_unix_nano")) ==
                1700000000100000000LL);
    json_decref(e);
    json_t *l = ag_test_json(s.links);
    assert_int_equal(json_array_size(l), 1); /* the link with a bad trace id is left out */
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "trace_id")), TID);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "span_id")), PID);
    json_decref(l);
}

static void
test_members_in_any_order(void **unused)
{
    AG_UNUSED(unused);
    struct seen s;
    /* scopeSpans before resource, span members reversed, upper-case hex. */
    const char *body = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"endTimeUnixNano\":20,"
                       "\"startTimeUnixNano\":10,\"spanId\":\"B7AD6B7169203331\",\"traceId\":\"" TID
                       "\"}]}],\"resource\":{\"attributes\":[{\"value\":{\"stringValue\":\"late\"},"
                       "\"key\":\"service.name\"}]}}],\"other\":{\"x\":[1,2,{\"y\":null}]}}";
    assert_int_equal(read_body(body, &s), 0);
    assert_int_equal(s.n, 1);
    assert_true(s.last.valid);
    assert_string_equal(s.service, "late");
    assert_string_equal(s.last.span_id, SID);
    assert_string_equal(s.last.parent_id, "");
    assert_string_equal(s.attrs, "{}");
    assert_string_equal(s.events, "[]");
    assert_string_equal(s.links, "[]");
    /* No service.name: unknown_service. */
    assert_int_equal(read_body("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{}]}]}]}", &s), 0);
    assert_string_equal(s.service, "unknown_service");
    assert_int_equal(s.n, 1);
    assert_false(s.last.valid);
}

static void
test_bad_spans_are_invalid_not_fatal(void **unused)
{
    AG_UNUSED(unused);
    struct seen s;
    char *body = request(
        "svc", "[3, {\"traceId\":\"" TID "\",\"spanId\":\"0000000000000000\","
               "\"startTimeUnixNano\":1,\"endTimeUnixNano\":2},"
               "{\"traceId\":\"xyz\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":1,"
               "\"endTimeUnixNano\":2},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":5,"
               "\"endTimeUnixNano\":4},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":1.5,"
               "\"endTimeUnixNano\":4},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"parentSpanId\":\"abc\","
               "\"startTimeUnixNano\":1,\"endTimeUnixNano\":4},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":1,"
               "\"endTimeUnixNano\":\"99999999999999999999\"},"
               "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"kind\":9,\"status\":{\"code\":"
               "\"x\"},\"startTimeUnixNano\":1,\"endTimeUnixNano\":4}]");
    assert_int_equal(read_body(body, &s), 0);
    ag_free(body);
    assert_int_equal(s.n, 8);
    assert_int_equal(s.valid, 1); /* only the last */
    assert_int_equal(s.last.kind, 0);
    assert_int_equal(s.last.status_code, 0);
}

static void
test_strings_decode_and_cut_on_a_character(void **unused)
{
    AG_UNUSED(unused);
    struct seen s;
    /* Escapes, a surrogate pair, and a 300-byte name of 2-byte characters
     * (cut to 256 bytes: 128 characters). */
    char name[301];
    for (int i = 0; i < 150; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[300] = '\0';
    char *spans =
        ag_asprintf("[{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":1,"
                    "\"endTimeUnixNano\":2,\"name\":\"%s\",\"attributes\":[{\"key\":"
                    "\"q\\\"k\",\"value\":{\"stringValue\":\"a\\n\\u00e9\\ud83d\\ude00\\/\"}}]}]",
                    name);
    char *body = request("s\\u00e9rvice", spans);
    assert_int_equal(read_body(body, &s), 0);
    ag_free(spans);
    ag_free(body);
    assert_string_equal(s.service, "s\xc3\xa9rvice");
    assert_int_equal(strlen(s.name), 256);
    json_t *a = ag_test_json(s.attrs);
    assert_string_equal(json_string_value(json_object_get(a, "q\"k")),
                        "a\n\xc3\xa9\xf0\x9f\x98\x80/");
    json_decref(a);
}

static void
test_refused_whole(void **unused)
{
    AG_UNUSED(unused);
    static const char *const bad[] = {
        "",
        "{not json",
        "[]",
        "{}",
        "{\"resourceSpans\":3}",
        "{\"resourceSpans\":[]} x",
        "{\"resourceSpans\":[],}",
        "{\"resourceSpans\":[01]}",
        "{\"resourceSpans\":[\"\\u0000\"]}",
        "{\"resourceSpans\":[\"\\ud800\"]}",
        "{\"resourceSpans\":[\"\\udc00\"]}",
        "{\"resourceSpans\":[\"\xc3\"]}",
        "{\"resourceSpans\":[\"\xed\xa0\x80\"]}",
        "{\"resourceSpans\":[\"\xc0\xaf\"]}",
        "{\"resourceSpans\":[\"\x01\"]}",
        "{\"resourceSpans\":[\"\\x\"]}",
        "{\"resourceSpans\":[tru]}",
        "{\"resourceSpans\":[1.]}",
        "{\"resourceSpans\":[-]}",
        "{\"resourceSpans\":[1e]}",
    };
    struct seen s;
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        if (read_body(bad[i], &s) != AG_EPARSE)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(s.n, 0);
    }
    /* Nesting: 32 levels pass, 40 do not. */
    char deep[200];
    for (int depth = 30; depth <= 40; depth += 10) {
        size_t n = 0;
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"resourceSpans\":[],\"x\":");
        for (int i = 0; i < depth; i++)
            deep[n++] = '[';
        for (int i = 0; i < depth; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = '\0';
        assert_int_equal(read_body(deep, &s), depth == 30 ? 0 : AG_EPARSE);
    }
    /* A JSON number in an odd place and literals pass. */
    assert_int_equal(read_body(" {\"resourceSpans\":[true,false,null,-0.5e+3,{}]} ", &s), 0);
    assert_int_equal(s.n, 0);
}

static int
stop_at_two(void *udata, const struct otlp_span *sp)
{
    AG_UNUSED(sp);
    int *n = udata;
    return ++*n == 2 ? AG_EIO : 0;
}

static void
test_callback_stops_the_walk(void **unused)
{
    AG_UNUSED(unused);
    char *body = request("svc", "[{},{},{},{}]");
    int n = 0;
    char err[64];
    assert_int_equal(otlp_json_read(body, strlen(body), stop_at_two, &n, err, sizeof(err)), AG_EIO);
    assert_int_equal(n, 2);
    ag_free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_span_reads_whole),
        cmocka_unit_test(test_members_in_any_order),
        cmocka_unit_test(test_bad_spans_are_invalid_not_fatal),
        cmocka_unit_test(test_strings_decode_and_cut_on_a_character),
        cmocka_unit_test(test_refused_whole),
        cmocka_unit_test(test_callback_stops_the_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
