/* SPDX-License-Identifier: MIT */
/* Hexadecimal digits, base64 (over libsodium) and UTF-8: the encodings the
 * chassis and every service share (agora/codec.h). */
#include "agora/base.h"
#include "agora/codec.h"

#include <sodium.h>

#include "agora/buf.h"
#include "agora/err.h"

/* ---- Hexadecimal ---- */

int
ag_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- Base64 ---- */

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define B64STD sodium_base64_VARIANT_ORIGINAL

int
ag_base64url_encode(const void *p, size_t n, char *out, size_t cap)
{
    size_t need = AG_BASE64URL_LEN(n) + 1;
    if (n > SIZE_MAX / 2 || cap < need) {
        if (cap > 0)
            out[0] = '\0';
        return AG_ETOOBIG;
    }
    sodium_bin2base64(out, need, p, n, B64URL);
    return 0;
}

static bool
is_base64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int
ag_base64url_decode(const char *s, size_t len, void *out, size_t cap, size_t *out_len)
{
    /* Four characters carry three bytes; a lone last character carries
     * fewer than eight bits, so no valid text has len % 4 == 1. */
    if (len % 4 == 1)
        return AG_EINVAL;
    /* libsodium 1.0.18 (Debian 12) decodes bytes past 0x7f as if they were
     * alphabet characters: check the alphabet here. */
    for (size_t i = 0; i < len; i++) {
        if (!is_base64url_char(s[i]))
            return AG_EINVAL;
    }
    size_t need = len / 4 * 3 + (len % 4 != 0 ? len % 4 - 1 : 0);
    if (need > cap)
        return AG_ETOOBIG;
    size_t n = 0;
    /* Without an end pointer libsodium fails unless it consumed all of 's';
     * it also rejects non-zero unused bits. */
    if (sodium_base642bin(out, cap, s, len, NULL, &n, NULL, B64URL) != 0)
        return AG_EINVAL;
    *out_len = n;
    return 0;
}

int
ag_base64_append(struct ag_buf *buf, const void *p, size_t n)
{
    if (n > SIZE_MAX / 2)
        return AG_ETOOBIG;
    size_t need = sodium_base64_ENCODED_LEN(n, B64STD); /* with the NUL */
    int rc = ag_buf_reserve(buf, need - 1);
    if (rc != 0)
        return rc;
    sodium_bin2base64(buf->data + buf->len, need, p, n, B64STD);
    buf->len += need - 1;
    return 0;
}

/* ---- UTF-8 ---- */

size_t
ag_utf8_next(const char *s, size_t len, uint32_t *out_cp)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80) {
        *out_cp = c;
        return 1;
    }
    size_t n;
    uint32_t cp;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *out_cp = cp;
    return n;
}

int
ag_utf8_count(const char *s, size_t len, size_t *out_n)
{
    size_t count = 0;
    for (size_t i = 0; i < len; count++) {
        uint32_t cp;
        size_t n = ag_utf8_next(s + i, len - i, &cp);
        if (n == 0)
            return AG_EINVAL;
        i += n;
    }
    *out_n = count;
    return 0;
}

size_t
ag_utf8_clip(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}
