/* SPDX-License-Identifier: MIT */
/* Unit tests of W3C traceparent parsing, continuation and formatting. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_continue_and_format),
        cmocka_unit_test(test_new_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
