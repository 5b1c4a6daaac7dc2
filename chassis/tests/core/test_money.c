/* SPDX-License-Identifier: MIT */
/* Unit tests of money.c: the ISO 4217 table (validity and exponents),
 * overflow-checked add/sub/mul, currency mismatch, and formatting. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agora/err.h"
#include "agora/money.h"

static struct ag_money
money(int64_t amount, const char *code)
{
    struct ag_money m = { amount, { 0 } };
    memcpy(m.currency, code, strlen(code) < 4 ? strlen(code) : 3);
    return m;
}

static const struct {
    const char *code;
    int exponent; /* -1: not valid */
} currency_cases[] = {
    { "EUR", 2 },
    { "USD", 2 },
    { "GBP", 2 },
    { "JPY", 0 },
    { "CHF", 2 },
    { "SEK", 2 },
    { "NOK", 2 },
    { "DKK", 2 },
    { "PLN", 2 },
    { "CZK", 2 },
    { "HUF", 2 },
    { "CAD", 2 },
    { "AUD", 2 },
    { "NZD", 2 },
    { "CNY", 2 },
    { "INR", 2 },
    { "BRL", 2 },
    { "MXN", 2 },
    { "ZAR", 2 },
    { "KRW", 0 },
    { "SGD", 2 },
    { "HKD", 2 },
    { "TRY", 2 },
    { "ILS", 2 },
    { "AED", 2 },
    { "SAR", 2 },
    { "BHD", 3 },
    { "KWD", 3 },
    { "JOD", 3 },
    { "OMR", 3 },
    { "TND", 3 },
    { "IQD", 3 },
    { "LYD", 3 },
    { "ISK", 0 },
    { "CLP", 0 },
    { "VND", 0 },
    { "XAF", 0 },
    { "XOF", 0 },
    { "XPF", 0 },
    { "UGX", 0 },
    { "PYG", 0 },
    { "CLF", 4 },
    { "UYW", 4 },
    { "ZWL", 2 },
    { "ZMW", 2 },
    { "AFN", 2 },
    { "RON", 2 },
    { "BGN", 2 },
    /* Not valid: case, length, unknown, non-price codes, junk. */
    { "eur", -1 },
    { "Eur", -1 },
    { "EU", -1 },
    { "EURO", -1 },
    { "", -1 },
    { "XXX", -1 },
    { "XAU", -1 },
    { "XTS", -1 },
    { "ABC", -1 },
    { "E1R", -1 },
    { "AAA", -1 },
    { "ZZZ", -1 },
    { "EU ", -1 },
    { "DEM", -1 },
    { "HRK", -1 },
};

/* Validity and exponent come from one table; lowercase and junk are refused. */
static void
test_currency_table(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(currency_cases); i++) {
        const char *code = currency_cases[i].code;
        int want = currency_cases[i].exponent;
        if (ag_currency_exponent(code) != want)
            fail_msg("'%s': exponent %d, want %d", code, ag_currency_exponent(code), want);
        if (ag_currency_is_valid(code) != (want >= 0))
            fail_msg("'%s': validity wrong", code);
    }
    assert_false(ag_currency_is_valid(NULL));
    assert_int_equal(ag_currency_exponent(NULL), -1);
}

/* Sums and differences in one currency; overflow and mismatch are errors
 * that leave the output untouched. */
static void
test_add_sub(void **state)
{
    AG_UNUSED(state);
    struct ag_money out = money(777, "USD");
    assert_int_equal(ag_money_add(money(1250, "EUR"), money(-50, "EUR"), &out), 0);
    assert_int_equal(out.amount, 1200);
    assert_string_equal(out.currency, "EUR");
    assert_int_equal(ag_money_sub(money(100, "JPY"), money(250, "JPY"), &out), 0);
    assert_int_equal(out.amount, -150);
    assert_string_equal(out.currency, "JPY");

    out = money(777, "USD");
    assert_int_equal(ag_money_add(money(1, "EUR"), money(1, "USD"), &out), AG_EINVAL);
    assert_int_equal(ag_money_sub(money(1, "EUR"), money(1, "USD"), &out), AG_EINVAL);
    assert_int_equal(ag_money_add(money(1, "eur"), money(1, "eur"), &out), AG_EINVAL);
    assert_int_equal(ag_money_add(money(1, "XXX"), money(1, "XXX"), &out), AG_EINVAL);

    assert_int_equal(ag_money_add(money(INT64_MAX, "EUR"), money(1, "EUR"), &out), AG_ERANGE);
    assert_int_equal(ag_money_add(money(INT64_MIN, "EUR"), money(-1, "EUR"), &out), AG_ERANGE);
    assert_int_equal(ag_money_sub(money(INT64_MIN, "EUR"), money(1, "EUR"), &out), AG_ERANGE);
    assert_int_equal(ag_money_sub(money(0, "EUR"), money(INT64_MIN, "EUR"), &out), AG_ERANGE);
    assert_int_equal(out.amount, 777);
    assert_string_equal(out.currency, "USD");

    /* The edges themselves are reachable. */
    assert_int_equal(ag_money_add(money(INT64_MAX - 1, "EUR"), money(1, "EUR"), &out), 0);
    assert_int_equal(out.amount, INT64_MAX);
    assert_int_equal(ag_money_sub(money(-1, "EUR"), money(INT64_MAX, "EUR"), &out), 0);
    assert_int_equal(out.amount, INT64_MIN);
}

/* Line totals: exact products, overflow in either sign is AG_ERANGE. */
static void
test_mul(void **state)
{
    AG_UNUSED(state);
    struct ag_money out = money(777, "USD");
    assert_int_equal(ag_money_mul(money(1999, "EUR"), 3, &out), 0);
    assert_int_equal(out.amount, 5997);
    assert_string_equal(out.currency, "EUR");
    assert_int_equal(ag_money_mul(money(1999, "EUR"), 0, &out), 0);
    assert_int_equal(out.amount, 0);
    assert_int_equal(ag_money_mul(money(-5, "BHD"), 7, &out), 0);
    assert_int_equal(out.amount, -35);

    out = money(777, "USD");
    assert_int_equal(ag_money_mul(money(INT64_MAX / 2 + 1, "EUR"), 2, &out), AG_ERANGE);
    assert_int_equal(ag_money_mul(money(INT64_MIN, "EUR"), -1, &out), AG_ERANGE);
    assert_int_equal(ag_money_mul(money(3037000500LL, "EUR"), 3037000500LL, &out), AG_ERANGE);
    assert_int_equal(ag_money_mul(money(1, "ABC"), 2, &out), AG_EINVAL);
    assert_int_equal(out.amount, 777);
    assert_int_equal(ag_money_mul(money(INT64_MIN / 2, "EUR"), 2, &out), 0);
    assert_int_equal(out.amount, INT64_MIN);
}

static const struct {
    int64_t amount;
    const char *code;
    const char *text;
} format_cases[] = {
    { 1234, "EUR", "12.34 EUR" },
    { 1234, "JPY", "1234 JPY" },
    { -5, "EUR", "-0.05 EUR" },
    { 1234, "BHD", "1.234 BHD" },
    { 0, "EUR", "0.00 EUR" },
    { 0, "JPY", "0 JPY" },
    { 7, "KWD", "0.007 KWD" },
    { 5, "CLF", "0.0005 CLF" },
    { -100, "USD", "-1.00 USD" },
    { 100000000, "GBP", "1000000.00 GBP" },
    { -1, "JPY", "-1 JPY" },
    { INT64_MAX, "EUR", "92233720368547758.07 EUR" },
    { INT64_MIN, "EUR", "-92233720368547758.08 EUR" },
    { INT64_MIN, "JPY", "-9223372036854775808 JPY" },
};

/* Formatting writes exactly the currency's decimals. */
static void
test_format_table(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(format_cases); i++) {
        char out[AG_MONEY_FMT_LEN];
        int n =
            ag_money_format(money(format_cases[i].amount, format_cases[i].code), out, sizeof(out));
        assert_string_equal(out, format_cases[i].text);
        assert_int_equal(n, strlen(format_cases[i].text));
    }
}

/* A short buffer is AG_ETOOBIG with "" written; an exact fit works; an
 * invalid currency is AG_EINVAL. */
static void
test_format_errors(void **state)
{
    AG_UNUSED(state);
    char out[10];
    memset(out, 'x', sizeof(out));
    assert_int_equal(ag_money_format(money(1234, "EUR"), out, 9), AG_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(ag_money_format(money(1234, "EUR"), out, 10), 9);
    assert_string_equal(out, "12.34 EUR");
    assert_int_equal(ag_money_format(money(1234, "EUR"), out, 0), AG_ETOOBIG);
    assert_int_equal(ag_money_format(money(1, "eur"), out, sizeof(out)), AG_EINVAL);
    assert_string_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_currency_table),
        cmocka_unit_test(test_add_sub),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_format_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
