/* SPDX-License-Identifier: MIT */
/* Money: the ISO 4217 table (active codes and their minor-unit exponents),
 * overflow-checked arithmetic on minor units, and formatting. Integer maths
 * only. */
#include "agora/base.h"
#include "agora/money.h"

#include <string.h>

#include "agora/err.h"

struct currency {
    char code[4]; /* uppercase ISO 4217 alphabetic code */
    int exponent; /* digits of the minor unit */
};

/* Active ISO 4217 codes with a minor unit, sorted by code for bsearch.
 * Precious metals, SDRs and the test codes (XAU, XDR, XTS, XXX...) are left
 * out: they are not prices. */
static const struct currency currencies[] = {
    { "AED", 2 }, { "AFN", 2 }, { "ALL", 2 }, { "AMD", 2 }, { "ANG", 2 }, { "AOA", 2 },
    { "ARS", 2 }, { "AUD", 2 }, { "AWG", 2 }, { "AZN", 2 }, { "BAM", 2 }, { "BBD", 2 },
    { "BDT", 2 }, { "BGN", 2 }, { "BHD", 3 }, { "BIF", 0 }, { "BMD", 2 }, { "BND", 2 },
    { "BOB", 2 }, { "BOV", 2 }, { "BRL", 2 }, { "BSD", 2 }, { "BTN", 2 }, { "BWP", 2 },
    { "BYN", 2 }, { "BZD", 2 }, { "CAD", 2 }, { "CDF", 2 }, { "CHE", 2 }, { "CHF", 2 },
    { "CHW", 2 }, { "CLF", 4 }, { "CLP", 0 }, { "CNY", 2 }, { "COP", 2 }, { "COU", 2 },
    { "CRC", 2 }, { "CUC", 2 }, { "CUP", 2 }, { "CVE", 2 }, { "CZK", 2 }, { "DJF", 0 },
    { "DKK", 2 }, { "DOP", 2 }, { "DZD", 2 }, { "EGP", 2 }, { "ERN", 2 }, { "ETB", 2 },
    { "EUR", 2 }, { "FJD", 2 }, { "FKP", 2 }, { "GBP", 2 }, { "GEL", 2 }, { "GHS", 2 },
    { "GIP", 2 }, { "GMD", 2 }, { "GNF", 0 }, { "GTQ", 2 }, { "GYD", 2 }, { "HKD", 2 },
    { "HNL", 2 }, { "HTG", 2 }, { "HUF", 2 }, { "IDR", 2 }, { "ILS", 2 }, { "INR", 2 },
    { "IQD", 3 }, { "IRR", 2 }, { "ISK", 0 }, { "JMD", 2 }, { "JOD", 3 }, { "JPY", 0 },
    { "KES", 2 }, { "KGS", 2 }, { "KHR", 2 }, { "KMF", 0 }, { "KPW", 2 }, { "KRW", 0 },
    { "KWD", 3 }, { "KYD", 2 }, { "KZT", 2 }, { "LAK", 2 }, { "LBP", 2 }, { "LKR", 2 },
    { "LRD", 2 }, { "LSL", 2 }, { "LYD", 3 }, { "MAD", 2 }, { "MDL", 2 }, { "MGA", 2 },
    { "MKD", 2 }, { "MMK", 2 }, { "MNT", 2 }, { "MOP", 2 }, { "MRU", 2 }, { "MUR", 2 },
    { "MVR", 2 }, { "MWK", 2 }, { "MXN", 2 }, { "MXV", 2 }, { "MYR", 2 }, { "MZN", 2 },
    { "NAD", 2 }, { "NGN", 2 }, { "NIO", 2 }, { "NOK", 2 }, { "NPR", 2 }, { "NZD", 2 },
    { "OMR", 3 }, { "PAB", 2 }, { "PEN", 2 }, { "PGK", 2 }, { "PHP", 2 }, { "PKR", 2 },
    { "PLN", 2 }, { "PYG", 0 }, { "QAR", 2 }, { "RON", 2 }, { "RSD", 2 }, { "RUB", 2 },
    { "RWF", 0 }, { "SAR", 2 }, { "SBD", 2 }, { "SCR", 2 }, { "SDG", 2 }, { "SEK", 2 },
    { "SGD", 2 }, { "SHP", 2 }, { "SLE", 2 }, { "SOS", 2 }, { "SRD", 2 }, { "SSP", 2 },
    { "STN", 2 }, { "SVC", 2 }, { "SYP", 2 }, { "SZL", 2 }, { "THB", 2 }, { "TJS", 2 },
    { "TMT", 2 }, { "TND", 3 }, { "TOP", 2 }, { "TRY", 2 }, { "TTD", 2 }, { "TWD", 2 },
    { "TZS", 2 }, { "UAH", 2 }, { "UGX", 0 }, { "USD", 2 }, { "USN", 2 }, { "UYI", 0 },
    { "UYU", 2 }, { "UYW", 4 }, { "UZS", 2 }, { "VED", 2 }, { "VES", 2 }, { "VND", 0 },
    { "VUV", 0 }, { "WST", 2 }, { "XAF", 0 }, { "XCD", 2 }, { "XCG", 2 }, { "XOF", 0 },
    { "XPF", 0 }, { "YER", 2 }, { "ZAR", 2 }, { "ZMW", 2 }, { "ZWG", 2 }, { "ZWL", 2 },
};

static const struct currency *
lookup(const char *code)
{
    if (code == NULL)
        return NULL;
    for (int i = 0; i < 3; i++) {
        if (code[i] < 'A' || code[i] > 'Z')
            return NULL;
    }
    if (code[3] != '\0')
        return NULL;
    size_t lo = 0;
    size_t hi = AG_ARRAY_SIZE(currencies);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(code, currencies[mid].code, 3);
        if (c == 0)
            return &currencies[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool
ag_currency_is_valid(const char *code)
{
    return lookup(code) != NULL;
}

int
ag_currency_exponent(const char *code)
{
    const struct currency *c = lookup(code);
    return c ? c->exponent : -1;
}

static bool
same_valid_currency(const struct ag_money *a, const struct ag_money *b)
{
    return lookup(a->currency) != NULL && memcmp(a->currency, b->currency, 4) == 0;
}

int
ag_money_add(struct ag_money a, struct ag_money b, struct ag_money *out)
{
    if (!same_valid_currency(&a, &b))
        return AG_EINVAL;
    int64_t sum;
    if (__builtin_add_overflow(a.amount, b.amount, &sum))
        return AG_ERANGE;
    *out = a;
    out->amount = sum;
    return 0;
}

int
ag_money_sub(struct ag_money a, struct ag_money b, struct ag_money *out)
{
    if (!same_valid_currency(&a, &b))
        return AG_EINVAL;
    int64_t diff;
    if (__builtin_sub_overflow(a.amount, b.amount, &diff))
        return AG_ERANGE;
    *out = a;
    out->amount = diff;
    return 0;
}

int
ag_money_mul(struct ag_money a, int64_t qty, struct ag_money *out)
{
    if (lookup(a.currency) == NULL)
        return AG_EINVAL;
    int64_t prod;
    if (__builtin_mul_overflow(a.amount, qty, &prod))
        return AG_ERANGE;
    *out = a;
    out->amount = prod;
    return 0;
}

int
ag_money_format(struct ag_money m, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = '\0';
    const struct currency *c = lookup(m.currency);
    if (c == NULL)
        return AG_EINVAL;

    /* Digits of |amount|, least significant first; unsigned so that
     * INT64_MIN has a magnitude. */
    uint64_t u = m.amount < 0 ? 0 - (uint64_t)m.amount : (uint64_t)m.amount;
    char rev[24];
    size_t nd = 0;
    do {
        rev[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    size_t e = (size_t)c->exponent;
    while (nd < e + 1)
        rev[nd++] = '0';

    char tmp[AG_MONEY_FMT_LEN];
    size_t n = 0;
    if (m.amount < 0)
        tmp[n++] = '-';
    while (nd > 0) {
        if (nd == e && e > 0)
            tmp[n++] = '.';
        tmp[n++] = rev[--nd];
    }
    tmp[n++] = ' ';
    memcpy(tmp + n, c->code, 3);
    n += 3;
    if (n + 1 > outlen)
        return AG_ETOOBIG;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return (int)n;
}
