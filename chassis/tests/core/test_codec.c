/* SPDX-License-Identifier: MIT */
/* Unit tests of codec.c: hex digit values, base64url round trips with the
 * RFC 4648 vectors and every rejection (padding, the other alphabet,
 * stray bits, short buffers), padded base64 into a bounded buffer, and the
 * UTF-8 decoder, counter and clip. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "agora/buf.h"
#include "agora/codec.h"
#include "agora/err.h"

/* ---- Hexadecimal ---- */

static void
test_hex_value(void **state)
{
    AG_UNUSED(state);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        assert_int_equal(ag_hex_value(digits[i]), i);
        assert_int_equal(ag_hex_value((char)(digits[i] >= 'a' ? digits[i] - 32 : digits[i])), i);
    }
    static const char bad[] = { 'g', 'G', '/', ':', '@', '`', ' ', '\0', '%', (char)0xff };
    for (size_t i = 0; i < sizeof(bad); i++)
        assert_int_equal(ag_hex_value(bad[i]), -1);
}

/* ---- Base64url ---- */

static void
test_base64url_vectors(void **state)
{
    AG_UNUSED(state);
    /* RFC 4648 section 10, unpadded, plus bytes that use '-' and '_'. */
    static const struct {
        const char *raw;
        size_t n;
        const char *enc;
    } cases[] = {
        { "", 0, "" },
        { "f", 1, "Zg" },
        { "fo", 2, "Zm8" },
        { "foo", 3, "Zm9v" },
        { "foob", 4, "Zm9vYg" },
        { "fooba", 5, "Zm9vYmE" },
        { "foobar", 6, "Zm9vYmFy" },
        { "\xfb\xff\xbf", 3, "-_-_" },
        { "k0190a000-0000-7000-8000-000000000000", 37,
          "azAxOTBhMDAwLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMA" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char enc[80];
        assert_int_equal(AG_BASE64URL_LEN(cases[i].n), strlen(cases[i].enc));
        assert_int_equal(ag_base64url_encode(cases[i].raw, cases[i].n, enc, sizeof(enc)), 0);
        assert_string_equal(enc, cases[i].enc);
        unsigned char raw[64];
        size_t n = 99;
        assert_int_equal(ag_base64url_decode(enc, strlen(enc), raw, sizeof(raw), &n), 0);
        assert_int_equal(n, cases[i].n);
        assert_memory_equal(raw, cases[i].raw, n);
        /* Exactly enough room is enough. */
        assert_int_equal(ag_base64url_decode(enc, strlen(enc), raw, cases[i].n, &n), 0);
    }
}

static void
test_base64url_rejects(void **state)
{
    AG_UNUSED(state);
    static const char *const bad[] = {
        "Zg==",                        /* padding */
        "Zm8=",                        /* padding */
        "Z",                           /* a lone sixth of a byte */
        "Zm9vY",                       /* 5 characters */
        "Zh",                          /* non-zero unused bits ("Zg" is canonical) */
        "Zm9",                         /* non-zero unused bits ("Zm8") */
        "+/+/",                        /* the standard alphabet */
        "Zm 9v",                       /* whitespace */
        "Zm9v\n",  "Zm9v.", "Zm\x80v", /* libsodium 1.0.18 alone takes bytes past 0x7f */
        "Zm\xffv",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        unsigned char raw[16];
        size_t n = 42;
        if (ag_base64url_decode(bad[i], strlen(bad[i]), raw, sizeof(raw), &n) != AG_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(n, 42);
    }
    /* Only 'len' characters count: the rest of the string is not read. */
    unsigned char raw[8];
    size_t n;
    assert_int_equal(ag_base64url_decode("Zm9v!!!", 4, raw, sizeof(raw), &n), 0);
    assert_int_equal(n, 3);
}

static void
test_base64url_short_buffers(void **state)
{
    AG_UNUSED(state);
    char enc[8];
    memset(enc, 'x', sizeof(enc));
    /* "foobar" needs 8 characters and a NUL. */
    assert_int_equal(ag_base64url_encode("foobar", 6, enc, sizeof(enc)), AG_ETOOBIG);
    assert_string_equal(enc, "");
    assert_int_equal(ag_base64url_encode("foobar", 6, enc, 0), AG_ETOOBIG);
    assert_int_equal(ag_base64url_encode("fooba", 5, enc, sizeof(enc)), 0);
    assert_string_equal(enc, "Zm9vYmE");
    unsigned char raw[4];
    size_t n = 7;
    assert_int_equal(ag_base64url_decode("Zm9vYmE", 7, raw, sizeof(raw), &n), AG_ETOOBIG);
    assert_int_equal(n, 7);
}

/* ---- Padded base64 ---- */

static void
test_base64_append(void **state)
{
    AG_UNUSED(state);
    struct ag_buf b = AG_BUF_INIT(0);
    assert_int_equal(ag_buf_append_cstr(&b, "=?UTF-8?B?"), 0);
    assert_int_equal(ag_base64_append(&b, "f\xc3\xa9\xfb\xff", 5), 0);
    assert_int_equal(ag_base64_append(&b, "", 0), 0);
    assert_int_equal(ag_base64_append(&b, "fo", 2), 0);
    assert_string_equal(ag_buf_cstr(&b), "=?UTF-8?B?ZsOp+/8=Zm8=");
    assert_int_equal(b.len, strlen(ag_buf_cstr(&b)));
    ag_buf_release(&b);

    /* A bounded buffer refuses what does not fit and stays as it was. */
    struct ag_buf small = AG_BUF_INIT(6);
    assert_int_equal(ag_buf_append_cstr(&small, "ab"), 0);
    assert_int_equal(ag_base64_append(&small, "foo", 3), 0);
    assert_string_equal(ag_buf_cstr(&small), "abZm9v");
    assert_int_equal(ag_base64_append(&small, "f", 1), AG_ETOOBIG);
    assert_string_equal(ag_buf_cstr(&small), "abZm9v");
    ag_buf_release(&small);
}

/* ---- UTF-8 ---- */

static void
test_utf8_next_table(void **state)
{
    /* The decoder rejects overlongs, surrogates, >U+10FFFF and cut sequences. */
    AG_UNUSED(state);
    static const struct {
        const char *bytes;
        size_t len;
        size_t want_n;
        uint32_t want_cp;
    } cases[] = {
        { "A", 1, 1, 'A' },
        { "\0", 1, 1, 0 },
        { "\xC3\xA9", 2, 2, 0xE9 },
        { "\xE2\x82\xAC", 3, 3, 0x20AC },
        { "\xF0\x9F\x98\x80", 4, 4, 0x1F600 },
        { "\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF },
        { "\xED\x9F\xBF", 3, 3, 0xD7FF },
        { "\xEE\x80\x80", 3, 3, 0xE000 },
        { "\xC0\x80", 2, 0, 0 },         /* overlong NUL */
        { "\xC1\xBF", 2, 0, 0 },         /* overlong */
        { "\xE0\x80\xAF", 3, 0, 0 },     /* overlong '/' */
        { "\xF0\x8F\xBF\xBF", 4, 0, 0 }, /* overlong */
        { "\xED\xA0\x80", 3, 0, 0 },     /* surrogate */
        { "\xED\xBF\xBF", 3, 0, 0 },     /* surrogate */
        { "\xF4\x90\x80\x80", 4, 0, 0 }, /* past U+10FFFF */
        { "\xF5\x80\x80\x80", 4, 0, 0 },
        { "\xE2\x82", 2, 0, 0 },     /* cut */
        { "\xE2\x82\xAC", 2, 0, 0 }, /* cut by 'len' */
        { "\x80", 1, 0, 0 },         /* lone continuation */
        { "\xC3\x28", 2, 0, 0 },     /* bad continuation */
        { "\xFF", 1, 0, 0 },
        { "A", 0, 0, 0 }, /* nothing available */
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        uint32_t cp = 0x12345;
        size_t n = ag_utf8_next(cases[i].bytes, cases[i].len, &cp);
        if (n != cases[i].want_n)
            fail_msg("case %zu: length %zu, want %zu", i, n, cases[i].want_n);
        assert_int_equal(cp, n != 0 ? cases[i].want_cp : 0x12345);
    }
}

static void
test_utf8_count(void **state)
{
    AG_UNUSED(state);
    size_t n = 99;
    assert_int_equal(ag_utf8_count("", 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ag_utf8_count("caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80", 13, &n), 0);
    assert_int_equal(n, 7);
    assert_int_equal(ag_utf8_count("a\0b", 3, &n), 0);
    assert_int_equal(n, 3);
    n = 99;
    assert_int_equal(ag_utf8_count("bad \xff utf8", 10, &n), AG_EINVAL);
    assert_int_equal(ag_utf8_count("\xED\xA0\x80", 3, &n), AG_EINVAL);
    assert_int_equal(ag_utf8_count("cut \xE2\x82", 6, &n), AG_EINVAL);
    assert_int_equal(n, 99);
}

static void
test_utf8_clip(void **state)
{
    AG_UNUSED(state);
    const char *s = "ab\xE2\x82\xAC"
                    "c"; /* a b EURO c: 6 bytes */
    assert_int_equal(ag_utf8_clip(s, 6, 10), 6);
    assert_int_equal(ag_utf8_clip(s, 6, 6), 6);
    assert_int_equal(ag_utf8_clip(s, 6, 5), 5);
    assert_int_equal(ag_utf8_clip(s, 6, 4), 2); /* never inside the euro sign */
    assert_int_equal(ag_utf8_clip(s, 6, 3), 2);
    assert_int_equal(ag_utf8_clip(s, 6, 2), 2);
    assert_int_equal(ag_utf8_clip(s, 6, 0), 0);
    /* Continuation bytes all the way down clip to nothing. */
    assert_int_equal(ag_utf8_clip("\x80\x80\x80", 3, 2), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_value),         cmocka_unit_test(test_base64url_vectors),
        cmocka_unit_test(test_base64url_rejects), cmocka_unit_test(test_base64url_short_buffers),
        cmocka_unit_test(test_base64_append),     cmocka_unit_test(test_utf8_next_table),
        cmocka_unit_test(test_utf8_count),        cmocka_unit_test(test_utf8_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
