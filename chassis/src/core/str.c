/* SPDX-License-Identifier: MIT */
/* String slices: comparison, trimming, strict integer parsing, percent
 * decoding. All input may be hostile. */
#include "agora/base.h"
#include "agora/str.h"

#include "agora/codec.h"
#include "agora/err.h"

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool
ag_str_eq(struct ag_str a, struct ag_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool
ag_str_eq_cstr(struct ag_str a, const char *b)
{
    return ag_str_eq(a, ag_str_from_cstr(b));
}

bool
ag_str_case_eq(struct ag_str a, struct ag_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        if (lower((unsigned char)a.ptr[i]) != lower((unsigned char)b.ptr[i]))
            return false;
    }
    return true;
}

bool
ag_str_case_eq_cstr(struct ag_str a, const char *b)
{
    return ag_str_case_eq(a, ag_str_from_cstr(b));
}

bool
ag_str_has_prefix(struct ag_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && (n == 0 || memcmp(s.ptr, prefix, n) == 0);
}

struct ag_str
ag_str_trim(struct ag_str s)
{
    while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

int
ag_str_to_u64(struct ag_str s, uint64_t max, uint64_t *out_v)
{
    if (s.len == 0 || s.len > 20)
        return s.len == 0 ? AG_EINVAL : AG_ERANGE;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9')
            return AG_EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return AG_ERANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return AG_ERANGE;
    *out_v = v;
    return 0;
}

int
ag_str_to_i64(struct ag_str s, int64_t min, int64_t max, int64_t *out_v)
{
    bool neg = false;
    if (s.len > 0 && s.ptr[0] == '-') {
        neg = true;
        s.ptr++;
        s.len--;
    }
    uint64_t u;
    int rc = ag_str_to_u64(s, (uint64_t)INT64_MAX + 1, &u);
    if (rc != 0)
        return rc;
    int64_t v;
    if (neg) {
        v = (u == (uint64_t)INT64_MAX + 1) ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return AG_ERANGE;
        v = (int64_t)u;
    }
    if (v < min || v > max)
        return AG_ERANGE;
    *out_v = v;
    return 0;
}

int
ag_str_percent_decode(struct ag_str s, bool plus_is_space, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '%') {
            if (s.len - i < 3)
                return AG_EINVAL;
            int hi = ag_hex_value(s.ptr[i + 1]);
            int lo = ag_hex_value(s.ptr[i + 2]);
            if (hi < 0 || lo < 0)
                return AG_EINVAL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return AG_EINVAL;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}
