/* SPDX-License-Identifier: MIT */
/* Unit tests of dynlib.c: a missing library and a missing symbol fail with
 * AG_ECONFIG and a message naming the soname, the package and the symbol,
 * leaving no slot filled; libpq, which no chassis program links any more,
 * is not mapped until it is loaded, and then resolves and answers; loading
 * twice is a no-op. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "agora/dynlib.h"
#include "agora/err.h"

static void
test_missing_library(void **state)
{
    AG_UNUSED(state);
    void *fn = NULL;
    const struct ag_dynlib_sym syms[] = { { "nothing", &fn } };
    struct ag_dynlib lib = { "libagora-no-such.so.9", "agora-nothing9", syms, 1, NULL };
    char err[256] = "";
    assert_int_equal(ag_dynlib_load(&lib, err, sizeof(err)), AG_ECONFIG);
    assert_non_null(strstr(err, "cannot load 'libagora-no-such.so.9'"));
    assert_non_null(strstr(err, "install the package agora-nothing9"));
    assert_null(lib.handle);
    assert_null(fn);
    /* Still failing, and still no crash, the second time. */
    assert_int_equal(ag_dynlib_load(&lib, NULL, 0), AG_ECONFIG);
    assert_false(ag_dynlib_is_mapped("libagora-no-such.so.9"));
}

static void
test_missing_symbol(void **state)
{
    AG_UNUSED(state);
    void *a = NULL;
    void *b = NULL;
    const struct ag_dynlib_sym syms[] = { { "strlen", &a }, { "ag_no_such_symbol", &b } };
    struct ag_dynlib lib = { "libc.so.6", "libc6", syms, 2, NULL };
    char err[256] = "";
    assert_int_equal(ag_dynlib_load(&lib, err, sizeof(err)), AG_ECONFIG);
    assert_non_null(strstr(err, "'libc.so.6' has no symbol 'ag_no_such_symbol'"));
    assert_non_null(strstr(err, "libc6"));
    assert_null(lib.handle);
    assert_null(a); /* the symbols found before are cleared again */
    assert_null(b);
}

static void
test_bad_arguments(void **state)
{
    AG_UNUSED(state);
    struct ag_dynlib lib = { NULL, "x", NULL, 0, NULL };
    assert_int_equal(ag_dynlib_load(NULL, NULL, 0), AG_EINVAL);
    assert_int_equal(ag_dynlib_load(&lib, NULL, 0), AG_EINVAL);
    lib.soname = "libc.so.6";
    lib.nsyms = 1; /* but no table */
    assert_int_equal(ag_dynlib_load(&lib, NULL, 0), AG_EINVAL);
    assert_false(ag_dynlib_is_mapped(NULL));
}

/* This program links the chassis as every service does: libpq and
 * librabbitmq must not come with it. */
static void
test_libpq_on_demand(void **state)
{
    AG_UNUSED(state);
    assert_false(ag_dynlib_is_mapped("libpq.so.5"));
    assert_false(ag_dynlib_is_mapped("librabbitmq.so.4"));
    assert_true(ag_dynlib_is_mapped("libc.so.6"));

    struct {
        int (*lib_version)(void); /* PQlibVersion of <libpq-fe.h> */
    } t = { NULL };
    const struct ag_dynlib_sym syms[] = { { "PQlibVersion", (void **)&t.lib_version } };
    struct ag_dynlib lib = { "libpq.so.5", "libpq5", syms, 1, NULL };
    char err[256] = "";
    int rc = ag_dynlib_load(&lib, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    assert_non_null(lib.handle);
    assert_true(ag_dynlib_is_mapped("libpq.so.5"));
    assert_true(t.lib_version() >= 100000); /* libpq 10 or later */
    void *h = lib.handle;
    t.lib_version = NULL;
    assert_int_equal(ag_dynlib_load(&lib, err, sizeof(err)), 0); /* once only */
    assert_ptr_equal(lib.handle, h);
    assert_null(t.lib_version);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_missing_symbol),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_libpq_on_demand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
