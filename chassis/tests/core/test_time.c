/* SPDX-License-Identifier: MIT */
/* Unit tests of time.c: clocks, RFC 3339 formatting of known instants
 * (epoch, leap days, 2038, before 1970, clamping), parsing with offsets and
 * fractions, round trips, and a table of malformed inputs. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/str.h"
#include "agora/time.h"

/* The clocks advance and agree with their units. */
static void
test_clocks(void **state)
{
    AG_UNUSED(state);
    uint64_t a = ag_time_mono_ns();
    uint64_t b = ag_time_mono_ns();
    assert_true(b >= a);
    uint64_t ms = ag_time_mono_ms();
    assert_true(ms >= a / 1000000u);
    assert_true(ms <= ag_time_mono_ns() / 1000000u);
    /* After 2020-01-01 and before 2200-01-01. */
    int64_t now = ag_time_unix_ms();
    assert_true(now > 1577836800000LL);
    assert_true(now < 7258118400000LL);
}

static const struct {
    int64_t ms;
    const char *text;
} fmt_cases[] = {
    { 0, "1970-01-01T00:00:00.000Z" },
    { 1, "1970-01-01T00:00:00.001Z" },
    { 1709164800000LL, "2024-02-29T00:00:00.000Z" },
    { 1709251199999LL, "2024-02-29T23:59:59.999Z" },
    { 951782400000LL, "2000-02-29T00:00:00.000Z" },
    { 4107542400000LL, "2100-03-01T00:00:00.000Z" },
    { 2147483648000LL, "2038-01-19T03:14:08.000Z" },
    { 1795297681123LL, "2026-11-21T21:48:01.123Z" },
    { -1, "1969-12-31T23:59:59.999Z" },
    { -86400000LL, "1969-12-31T00:00:00.000Z" },
    { -2208988800000LL, "1900-01-01T00:00:00.000Z" },
    { -62135596800000LL, "0001-01-01T00:00:00.000Z" },
    { 253402300799999LL, "9999-12-31T23:59:59.999Z" },
    /* Outside four-digit years: clamped. */
    { 253402300800000LL, "9999-12-31T23:59:59.999Z" },
    { INT64_MAX, "9999-12-31T23:59:59.999Z" },
    { INT64_MIN, "0000-01-01T00:00:00.000Z" },
};

/* Known instants format exactly, always 24 characters. */
static void
test_format_known_instants(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(fmt_cases); i++) {
        char out[AG_RFC3339_LEN];
        ag_time_rfc3339(fmt_cases[i].ms, out);
        assert_string_equal(out, fmt_cases[i].text);
        assert_int_equal(strlen(out), AG_RFC3339_LEN - 1);
    }
}

static const struct {
    const char *text;
    int64_t ms;
} parse_cases[] = {
    { "1970-01-01T00:00:00Z", 0 },
    { "1970-01-01t00:00:00z", 0 },
    { "2024-02-29T23:59:59.999Z", 1709251199999LL },
    { "2024-02-29T23:59:59.9999999Z", 1709251199999LL },
    { "2024-02-29T23:59:59.9Z", 1709251199900LL },
    { "2024-02-29T23:59:59.05Z", 1709251199050LL },
    { "2024-03-01T00:59:59.999+01:00", 1709251199999LL },
    { "2024-02-29T18:29:59.999-05:30", 1709251199999LL },
    { "2024-02-29T23:59:59.999-00:00", 1709251199999LL },
    { "2024-02-29T23:59:59.999+00:00", 1709251199999LL },
    { "2026-11-21T21:48:01.123Z", 1795297681123LL },
    { "1969-12-31T23:59:59.999Z", -1 },
    { "1969-12-31T23:00:00+23:59", -86340000LL - 3600000LL },
    { "0000-01-01T00:00:00Z", -62167219200000LL },
    { "9999-12-31T23:59:59.999Z", 253402300799999LL },
    { "2000-02-29T00:00:00Z", 951782400000LL },
};

/* Valid RFC 3339 strings parse to the right UTC instant. */
static void
test_parse_valid(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(parse_cases); i++) {
        int64_t ms = 42;
        int rc = ag_time_parse_rfc3339(ag_str_from_cstr(parse_cases[i].text), &ms);
        if (rc != 0)
            fail_msg("'%s' rejected", parse_cases[i].text);
        if (ms != parse_cases[i].ms)
            fail_msg("'%s' -> %lld, want %lld", parse_cases[i].text, (long long)ms,
                     (long long)parse_cases[i].ms);
    }
}

static const char *const invalid_cases[] = {
    "",
    "2024",
    "2024-01-01",
    "2024-01-01T00:00:00",  /* no offset */
    "2024-01-01 00:00:00Z", /* space separator */
    "2024-01-01X00:00:00Z",
    "2024-13-01T00:00:00Z", /* month 13 */
    "2024-00-01T00:00:00Z", /* month 0 */
    "2024-01-00T00:00:00Z", /* day 0 */
    "2024-01-32T00:00:00Z",
    "2023-02-29T00:00:00Z", /* not a leap year */
    "1900-02-29T00:00:00Z", /* century, not a leap year */
    "2024-02-30T00:00:00Z", /* Feb 30 */
    "2024-04-31T00:00:00Z", /* April has 30 */
    "2024-01-01T24:00:00Z", /* hour 24 */
    "2024-01-01T23:60:00Z",
    "2024-01-01T23:59:60Z",      /* leap second */
    "2024-01-01T00:00:00.Z",     /* empty fraction */
    "2024-01-01T00:00:00,5Z",    /* comma fraction */
    "2024-01-01T00:00:00+24:00", /* offset hour 24 */
    "2024-01-01T00:00:00+01:60",
    "2024-01-01T00:00:00+0100", /* offset without colon */
    "2024-01-01T00:00:00+01",
    "2024-01-01T00:00:00Z ", /* trailing space */
    "2024-01-01T00:00:00Zz",
    " 2024-01-01T00:00:00Z",
    "2024-1-01T00:00:00Z",
    "24-01-01T00:00:00Z",
    "12024-01-01T00:00:00Z", /* five-digit year */
    "-2024-01-01T00:00:00Z",
    "2O24-01-01T00:00:00Z", /* letter O */
    "2024-01-01T0:00:00Z",
    "2024/01/01T00:00:00Z",
};

/* Malformed or out-of-range input is AG_EINVAL and leaves the output alone. */
static void
test_parse_invalid(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(invalid_cases); i++) {
        int64_t ms = 42;
        int rc = ag_time_parse_rfc3339(ag_str_from_cstr(invalid_cases[i]), &ms);
        if (rc != AG_EINVAL)
            fail_msg("'%s' accepted (rc %d)", invalid_cases[i], rc);
        assert_int_equal(ms, 42);
    }
    /* A slice is parsed by its length, not up to a NUL. */
    const char *text = "2024-01-01T00:00:00Zjunk";
    int64_t ms = 0;
    assert_int_equal(ag_time_parse_rfc3339(ag_str_make(text, 20), &ms), 0);
    assert_int_equal(ms, 1704067200000LL);
    assert_int_equal(ag_time_parse_rfc3339(ag_str_make(text, 19), &ms), AG_EINVAL);
    assert_int_equal(ag_time_parse_rfc3339(AG_STR_NULL, &ms), AG_EINVAL);
}

/* Formatting then parsing gives back the same instant across the range. */
static void
test_round_trip(void **state)
{
    AG_UNUSED(state);
    const int64_t lo = -62167219200000LL;
    const int64_t span = 253402300799999LL - lo;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        /* xorshift64: spread over years 0000-9999, every millisecond digit. */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = lo + (int64_t)(x % (uint64_t)span);
        char out[AG_RFC3339_LEN];
        ag_time_rfc3339(ms, out);
        int64_t back = 0;
        assert_int_equal(ag_time_parse_rfc3339(ag_str_from_cstr(out), &back), 0);
        if (back != ms)
            fail_msg("%lld -> '%s' -> %lld", (long long)ms, out, (long long)back);
    }
}

/* The calendar conversions are inverse and advance one day at a time. */
static void
test_civil_days(void **state)
{
    AG_UNUSED(state);
    int64_t py = 0;
    unsigned pm = 0;
    unsigned pd = 0;
    ag_time_civil_from_days(-719529, &py, &pm, &pd); /* -0001-12-31 */
    for (int64_t days = -719528; days < 2932897; days++) {
        int64_t y;
        unsigned m;
        unsigned d;
        ag_time_civil_from_days(days, &y, &m, &d);
        assert_int_equal(ag_time_days_from_civil(y, m, d), days);
        bool next_day = y == py && m == pm && d == pd + 1;
        bool next_month = y == py && m == pm + 1 && d == 1;
        bool next_year = y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31;
        if (!next_day && !next_month && !next_year)
            fail_msg("day %lld: %lld-%u-%u after %lld-%u-%u", (long long)days, (long long)y, m, d,
                     (long long)py, pm, pd);
        py = y;
        pm = m;
        pd = d;
    }
    assert_int_equal(ag_time_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(ag_time_days_from_civil(2000, 3, 1), 11017);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clocks),      cmocka_unit_test(test_format_known_instants),
        cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_civil_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
