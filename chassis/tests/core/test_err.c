/* SPDX-License-Identifier: MIT */
/* Unit tests of err.c: every row of AG_ERRNO_MAP has a distinct code, a
 * message, an error status and a well-formed problem slug and title; the
 * lookups agree with the table; 0 and unknown codes get the fallbacks. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"

static const struct {
    int code;
    const char *name;
    int status;
    const char *slug;
    const char *title;
} ROWS[] = {
#define ROW(name, num, msg, status, slug, title) { -(num), #name, status, slug, title },
    AG_ERRNO_MAP(ROW)
#undef ROW
};

/* The slug grammar tests/lib/http.mjs checks: lower-case words joined by '-'. */
static bool
slug_is_valid(const char *s)
{
    if (*s == '\0' || *s == '-')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        bool word = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!word && !(*p == '-' && p[1] != '\0' && p[1] != '-'))
            return false;
    }
    return true;
}

static void
test_table_rows(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(ROWS); i++) {
        int e = ROWS[i].code;
        /* Codes are 1, 2, 3... with no gap, so none was reused or renumbered. */
        assert_int_equal(e, -(int)(i + 1));
        assert_string_equal(ag_err_name(e), ROWS[i].name);
        assert_string_not_equal(ag_strerror(e), "unknown error");
        assert_int_equal(ag_err_http_status(e), ROWS[i].status);
        assert_true(ROWS[i].status >= 400 && ROWS[i].status <= 599);
        assert_string_equal(ag_err_slug(e), ROWS[i].slug);
        assert_string_equal(ag_err_title(e), ROWS[i].title);
        if (!slug_is_valid(ROWS[i].slug))
            fail_msg("%s: slug '%s'", ROWS[i].name, ROWS[i].slug);
        assert_true(strlen(ROWS[i].title) > 0);
    }
}

/* The answers services and tests rely on. */
static void
test_known_answers(void **state)
{
    AG_UNUSED(state);
    assert_int_equal(ag_err_http_status(AG_ENOENT), 404);
    assert_string_equal(ag_err_slug(AG_ENOENT), "not-found");
    assert_string_equal(ag_err_title(AG_ENOENT), "Not Found");
    assert_string_equal(ag_err_slug(AG_EEXIST), "conflict");
    assert_string_equal(ag_err_slug(AG_EQUERY), "bad-query");
    assert_int_equal(ag_err_http_status(AG_EQUERY), 400);
    assert_string_equal(ag_err_slug(AG_EPARSE), "malformed-json");
    assert_int_equal(ag_err_http_status(AG_EMEDIATYPE), 415);
    assert_int_equal(ag_err_http_status(AG_EMETHOD), 405);
    assert_int_equal(ag_err_http_status(AG_EPRECONDREQ), 428);
    assert_string_equal(ag_err_slug(AG_EBUSY), "unavailable");
    assert_string_equal(ag_err_slug(AG_EINTERNAL), "internal");
    assert_string_equal(ag_err_slug(AG_EAUTH), "unauthorized");
}

static void
test_fallbacks(void **state)
{
    AG_UNUSED(state);
    assert_string_equal(ag_strerror(0), "success");
    assert_string_equal(ag_err_name(0), "OK");
    assert_int_equal(ag_err_http_status(0), 200);
    int unknown[] = { -(int)AG_ARRAY_SIZE(ROWS) - 1, -1000, 7 };
    for (size_t i = 0; i < AG_ARRAY_SIZE(unknown); i++) {
        assert_string_equal(ag_strerror(unknown[i]), "unknown error");
        assert_string_equal(ag_err_name(unknown[i]), "EUNKNOWN");
        assert_int_equal(ag_err_http_status(unknown[i]), 500);
        assert_string_equal(ag_err_slug(unknown[i]), "internal");
        assert_string_equal(ag_err_title(unknown[i]), "Internal Server Error");
    }
    /* A problem is never a success. */
    assert_string_equal(ag_err_slug(0), "internal");
    assert_string_equal(ag_err_title(0), "Internal Server Error");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_fallbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
