/* SPDX-License-Identifier: MIT */
/* Clocks and RFC 3339 formatting and parsing. The calendar conversions are
 * Howard Hinnant's days_from_civil / civil_from_days algorithms
 * (http://howardhinnant.github.io/date_algorithms.html), exact for the
 * proleptic Gregorian calendar and free of time zone state. */
#include "agora/base.h"
#include "agora/time.h"

#include <time.h>

#include "agora/err.h"

#define MS_PER_DAY 86400000LL
/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define MIN_MS (-62167219200000LL)
#define MAX_MS (253402300799999LL)

uint64_t
ag_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
ag_time_mono_ms(void)
{
    return ag_time_mono_ns() / 1000000u;
}

int64_t
ag_time_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Calendar ------------------------------------------------------------ */

int64_t
ag_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

void
ag_time_civil_from_days(int64_t days, int64_t *out_y, unsigned *out_m, unsigned *out_d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);                       /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    unsigned d = doy - (153 * mp + 2) / 5 + 1;                            /* [1, 31] */
    unsigned m = mp < 10 ? mp + 3 : mp - 9;                               /* [1, 12] */
    *out_y = (int64_t)yoe + era * 400 + (m <= 2);
    *out_m = m;
    *out_d = d;
}

static bool
is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* ---- Formatting ---------------------------------------------------------- */

/* Write 'v' as exactly 'width' decimal digits. */
static char *
put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

void
ag_time_rfc3339(int64_t unix_ms, char out[AG_RFC3339_LEN])
{
    if (unix_ms < MIN_MS)
        unix_ms = MIN_MS;
    if (unix_ms > MAX_MS)
        unix_ms = MAX_MS;
    /* Floor division so that instants before 1970 land on the right day. */
    int64_t days = unix_ms / MS_PER_DAY;
    int64_t rem = unix_ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m;
    unsigned d;
    ag_time_civil_from_days(days, &y, &m, &d);
    unsigned msod = (unsigned)rem;
    char *p = out;
    p = put_digits(p, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, msod / 3600000u, 2);
    *p++ = ':';
    p = put_digits(p, msod / 60000u % 60u, 2);
    *p++ = ':';
    p = put_digits(p, msod / 1000u % 60u, 2);
    *p++ = '.';
    p = put_digits(p, msod % 1000u, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* ---- Parsing ------------------------------------------------------------- */

/* Read exactly 'n' digits at s[*pos]; false if any is not a digit. */
static bool
get_digits(struct ag_str s, size_t *pos, int n, unsigned *out)
{
    if (s.len - *pos < (size_t)n)
        return false;
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = s.ptr[*pos + (size_t)i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *pos += (size_t)n;
    *out = v;
    return true;
}

static bool
get_char(struct ag_str s, size_t *pos, char c1, char c2)
{
    if (*pos >= s.len || (s.ptr[*pos] != c1 && s.ptr[*pos] != c2))
        return false;
    (*pos)++;
    return true;
}

int
ag_time_parse_rfc3339(struct ag_str s, int64_t *out_unix_ms)
{
    size_t pos = 0;
    unsigned y = 0;
    unsigned mo = 0;
    unsigned d = 0;
    unsigned h = 0;
    unsigned mi = 0;
    unsigned sec = 0;
    if (!get_digits(s, &pos, 4, &y) || !get_char(s, &pos, '-', '-') ||
        !get_digits(s, &pos, 2, &mo) || !get_char(s, &pos, '-', '-') ||
        !get_digits(s, &pos, 2, &d) || !get_char(s, &pos, 'T', 't') ||
        !get_digits(s, &pos, 2, &h) || !get_char(s, &pos, ':', ':') ||
        !get_digits(s, &pos, 2, &mi) || !get_char(s, &pos, ':', ':') ||
        !get_digits(s, &pos, 2, &sec))
        return AG_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return AG_EINVAL;

    unsigned frac_ms = 0;
    if (get_char(s, &pos, '.', '.')) {
        size_t start = pos;
        while (pos < s.len && s.ptr[pos] >= '0' && s.ptr[pos] <= '9') {
            if (pos - start < 3)
                frac_ms = frac_ms * 10 + (unsigned)(s.ptr[pos] - '0');
            pos++;
        }
        size_t n = pos - start;
        if (n == 0)
            return AG_EINVAL;
        for (; n < 3; n++)
            frac_ms *= 10;
    }

    int64_t offset_min = 0;
    if (!get_char(s, &pos, 'Z', 'z')) {
        if (pos >= s.len || (s.ptr[pos] != '+' && s.ptr[pos] != '-'))
            return AG_EINVAL;
        int sign = s.ptr[pos] == '-' ? -1 : 1;
        pos++;
        unsigned oh;
        unsigned om;
        if (!get_digits(s, &pos, 2, &oh) || !get_char(s, &pos, ':', ':') ||
            !get_digits(s, &pos, 2, &om) || oh > 23 || om > 59)
            return AG_EINVAL;
        offset_min = sign * (int64_t)(oh * 60 + om);
    }
    if (pos != s.len)
        return AG_EINVAL;

    int64_t days = ag_time_days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + (int64_t)(h * 3600 + mi * 60 + sec) - offset_min * 60;
    *out_unix_ms = secs * 1000 + frac_ms;
    return 0;
}
