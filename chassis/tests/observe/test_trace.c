/* SPDX-License-Identifier: MIT */
/* Unit tests of W3C traceparent parsing, continuation and formatting. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/trace.h"

static void
test_parse_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *h;
        int rc;
    } cases[] = {
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 0 },
        { "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", 0 },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", AG_EINVAL },
        { "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", AG_EINVAL },
        { "00-00000000000000000000000000000000-00f067aa0ba902b7-01", AG_EINVAL },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", AG_EINVAL },
        { "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", AG_EINVAL },
        { "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", AG_EINVAL },
        { "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", AG_EINVAL },
        { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", AG_EINVAL },
        { "", AG_EINVAL },
        { "garbage", AG_EINVAL },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_trace_ctx t;
        int rc = ag_trace_parse(ag_str_from_cstr(cases[i].h), &t);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d want %d", cases[i].h, rc, cases[i].rc);
    }
}

static void
test_continue_and_format(void **state)
{
    AG_UNUSED(state);
    struct ag_trace_ctx t;
    ag_trace_start(AG_STR_LIT("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), &t);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_int_equal(strlen(t.span_id), 16);
    assert_string_not_equal(t.span_id, t.parent_id);
    char out[AG_TRACEPARENT_LEN + 1];
    ag_trace_format(&t, out);
    assert_int_equal(strlen(out), AG_TRACEPARENT_LEN);
    assert_memory_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
    assert_memory_equal(out + 36, t.span_id, 16);
    assert_string_equal(out + 52, "-01");
    struct ag_trace_ctx back;
    assert_int_equal(ag_trace_parse(ag_str_from_cstr(out), &back), 0);
    assert_string_equal(back.parent_id, t.span_id);
}

static void
test_new_trace(void **state)
{
    AG_UNUSED(state);
    struct ag_trace_ctx a;
    struct ag_trace_ctx b;
    ag_trace_start(AG_STR_LIT("nonsense"), &a);
    ag_trace_start(AG_STR_NULL, &b);
    assert_int_equal(strlen(a.trace_id), 32);
    assert_string_equal(a.parent_id, "");
    assert_int_equal(a.flags, 1);
    assert_string_not_equal(a.trace_id, b.trace_id);
}

static void
test_sampling_and_child(void **state)
{
    AG_UNUSED(state);
    struct ag_trace_ctx a;
    ag_trace_set_sample_ratio(0);
    ag_trace_start(AG_STR_NULL, &a);
    assert_int_equal(a.flags, 0);
    /* A continued trace keeps the caller's decision. */
    ag_trace_start(AG_STR_LIT("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), &a);
    assert_int_equal(a.flags, 1);
    ag_trace_set_sample_ratio(1);
    ag_trace_start(AG_STR_NULL, &a);
    assert_int_equal(a.flags, 1);
    struct ag_trace_ctx c;
    ag_trace_child(&a, &c);
    assert_string_equal(c.trace_id, a.trace_id);
    assert_string_equal(c.parent_id, a.span_id);
    assert_string_not_equal(c.span_id, a.span_id);
}

static int sunk;
static struct ag_buf sink_out;

static void
sink(const struct ag_span *s, void *udata)
{
    AG_UNUSED(udata);
    sunk++;
    assert_int_equal(ag_span_to_otlp_json(s, &sink_out), 0);
}

static void
test_span_otlp_json(void **state)
{
    AG_UNUSED(state);
    struct ag_trace_ctx ctx;
    ag_trace_start(AG_STR_LIT("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), &ctx);
    struct ag_span s;
    /* No sink: nothing is recorded. */
    ag_span_begin(&s, &ctx, "GET /x", AG_SPAN_SERVER);
    assert_false(s.recording);
    ag_span_end(&s);
    ag_buf_init(&sink_out, 0);
    ag_span_set_sink(sink, NULL);
    ag_span_begin(&s, &ctx, "GET \"/x\"\n", AG_SPAN_SERVER);
    assert_true(s.recording);
    ag_span_attr_str(&s, "http.route", "/v1/\"q\"\\");
    ag_span_attr_int(&s, "http.response.status_code", 503);
    ag_span_event(&s, "retry");
    ag_span_error(&s, "boom");
    for (int i = 0; i < 20; i++)
        ag_span_attr_int(&s, "extra", i); /* past the bound: dropped */
    ag_span_end(&s);
    ag_span_end(&s); /* once only */
    assert_int_equal(sunk, 1);
    json_error_t jerr;
    json_t *j = json_loads(ag_buf_cstr(&sink_out), 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "traceId")),
                        "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(json_string_value(json_object_get(j, "parentSpanId")), "b7ad6b7169203331");
    assert_string_equal(json_string_value(json_object_get(j, "spanId")), ctx.span_id);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "GET \"/x\"\n");
    assert_int_equal(json_integer_value(json_object_get(j, "kind")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "attributes")), AG_SPAN_MAX_ATTRS);
    json_t *a0 = json_array_get(json_object_get(j, "attributes"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a0, "value"), "stringValue")),
        "/v1/\"q\"\\");
    json_t *a1 = json_array_get(json_object_get(j, "attributes"), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a1, "value"), "intValue")), "503");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "status"), "code")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    const char *start = json_string_value(json_object_get(j, "startTimeUnixNano"));
    assert_int_equal(strlen(start), 19);
    json_decref(j);
    /* All or nothing into a bounded buffer. */
    struct ag_buf small = AG_BUF_INIT(64);
    ag_span_begin(&s, &ctx, "x", AG_SPAN_CLIENT);
    s.recording = false; /* encode without the sink */
    s.end_ns = s.start_ns;
    assert_int_equal(ag_span_to_otlp_json(&s, &small), AG_ETOOBIG);
    assert_int_equal(small.len, 0);
    ag_buf_release(&small);
    ag_span_set_sink(NULL, NULL);
    ag_buf_release(&sink_out);
}

/* Links (a batch span's link to each message): encoded as OTLP links,
 * bounded, the rest counted as dropped. */
static void
test_span_links(void **state)
{
    AG_UNUSED(state);
    struct ag_trace_ctx ctx;
    ag_trace_start(AG_STR_LIT("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), &ctx);
    ag_buf_init(&sink_out, 0);
    sunk = 0;
    ag_span_set_sink(sink, NULL);
    struct ag_span s;
    ag_span_begin(&s, &ctx, "outbox relay", AG_SPAN_INTERNAL);
    struct ag_span_links links;
    ag_span_use_links(&s, &links);
    struct ag_trace_ctx other;
    ag_trace_start(AG_STR_LIT("00-11111111111111111111111111111111-2222222222222222-00"), &other);
    memcpy(other.span_id, "3333333333333333", 17);
    for (int i = 0; i < AG_SPAN_MAX_LINKS + 3; i++)
        ag_span_link(&s, &other);
    ag_span_end(&s);
    assert_int_equal(sunk, 1);
    json_error_t jerr;
    json_t *j = json_loads(ag_buf_cstr(&sink_out), 0, &jerr);
    assert_non_null(j);
    json_t *jl = json_object_get(j, "links");
    assert_int_equal(json_array_size(jl), AG_SPAN_MAX_LINKS);
    json_t *l0 = json_array_get(jl, 0);
    assert_string_equal(json_string_value(json_object_get(l0, "traceId")),
                        "11111111111111111111111111111111");
    assert_string_equal(json_string_value(json_object_get(l0, "spanId")), "3333333333333333");
    assert_int_equal(json_integer_value(json_object_get(l0, "flags")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "droppedLinksCount")), 3);
    json_decref(j);
    /* A span without links has no "links" member; without storage a link
     * is dropped. */
    ag_buf_reset(&sink_out);
    ag_span_begin(&s, &ctx, "x", AG_SPAN_INTERNAL);
    ag_span_link(&s, &other);
    ag_span_end(&s);
    assert_null(strstr(ag_buf_cstr(&sink_out), "links"));
    ag_span_set_sink(NULL, NULL);
    ag_buf_release(&sink_out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),    cmocka_unit_test(test_continue_and_format),
        cmocka_unit_test(test_new_trace),      cmocka_unit_test(test_sampling_and_child),
        cmocka_unit_test(test_span_otlp_json), cmocka_unit_test(test_span_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
