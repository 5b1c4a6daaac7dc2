/* SPDX-License-Identifier: MIT */
/* Unit tests of the static file path checks (traversal, encoded separators,
 * NUL, hidden names) and MIME types. The serving itself, with realpath and
 * symlinks, is covered by gateway.test.mjs over HTTP. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "gateway.h"

static void
test_clean_path_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *raw;
        int rc;
        const char *out;
    } cases[] = {
        { "/", 0, "/" },
        { "/index.html", 0, "/index.html" },
        { "/assets/app%20v2.js", 0, "/assets/app v2.js" },
        { "/a/b/", 0, "/a/b/" },
        { "/..", AG_ENOENT, NULL },
        { "/../etc/passwd", AG_ENOENT, NULL },
        { "/a/../../x", AG_ENOENT, NULL },
        { "/%2e%2e/x", AG_ENOENT, NULL },
        { "/%2E%2e/x", AG_ENOENT, NULL },
        { "/a/%2e", AG_ENOENT, NULL },
        { "/.env", AG_ENOENT, NULL },
        { "/a/.git/config", AG_ENOENT, NULL },
        { "//etc/passwd", AG_ENOENT, NULL },
        { "/a%2f..%2fb", AG_EINVAL, NULL },
        { "/a%2F..", AG_EINVAL, NULL },
        { "/a%5c..%5cb", AG_EINVAL, NULL },
        { "/a\\..\\b", AG_EINVAL, NULL },
        { "/a%00.html", AG_EINVAL, NULL },
        { "/a%0a", AG_EINVAL, NULL },
        { "/a%zz", AG_EINVAL, NULL },
        { "/a%2", AG_EINVAL, NULL },
        { "relative", AG_EINVAL, NULL },
        { "", AG_EINVAL, NULL },
        /* Double encoding decodes once: a literal "%2e%2e" name, harmless. */
        { "/%252e%252e/x", 0, "/%2e%2e/x" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char out[256];
        int rc = gw_static_clean_path(ag_str_from_cstr(cases[i].raw), out, sizeof(out));
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].raw, rc, cases[i].rc);
        if (rc == 0 && strcmp(out, cases[i].out) != 0)
            fail_msg("'%s': '%s', want '%s'", cases[i].raw, out, cases[i].out);
    }
    char small[8];
    assert_int_equal(gw_static_clean_path(AG_STR_LIT("/abcdefghij"), small, sizeof(small)),
                     AG_EINVAL);
}

static void
test_mime_types(void **state)
{
    AG_UNUSED(state);
    assert_string_equal(gw_static_mime("/index.html"), "text/html; charset=utf-8");
    assert_string_equal(gw_static_mime("/a/app.MJS"), "text/javascript; charset=utf-8");
    assert_string_equal(gw_static_mime("/s.css"), "text/css; charset=utf-8");
    assert_string_equal(gw_static_mime("/f.woff2"), "font/woff2");
    assert_string_equal(gw_static_mime("/i.webp"), "image/webp");
    assert_string_equal(gw_static_mime("/x.js.map"), "application/json");
    assert_string_equal(gw_static_mime("/noext"), "application/octet-stream");
    assert_string_equal(gw_static_mime("/dir.v2/noext"), "application/octet-stream");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_path_table),
        cmocka_unit_test(test_mime_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
