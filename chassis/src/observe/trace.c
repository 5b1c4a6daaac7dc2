/* SPDX-License-Identifier: MIT */
/* W3C traceparent handling (https://www.w3.org/TR/trace-context/). */
#include "agora/base.h"
#include "agora/trace.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/random.h"

static bool
is_lower_hex(const char *p, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        nonzero |= c != '0';
    }
    return nonzero;
}

static int
hex2(const char *p)
{
    int v = 0;
    for (int i = 0; i < 2; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else
            return -1;
    }
    return v;
}

int
ag_trace_parse(struct ag_str h, struct ag_trace_ctx *out)
{
    h = ag_str_trim(h);
    if (h.len < AG_TRACEPARENT_LEN)
        return AG_EINVAL;
    int version = hex2(h.ptr);
    if (version < 0 || version == 0xff)
        return AG_EINVAL;
    /* Version 00 is exactly 55 bytes; later versions may append "-..." fields. */
    if (version == 0 && h.len != AG_TRACEPARENT_LEN)
        return AG_EINVAL;
    if (h.len > AG_TRACEPARENT_LEN && h.ptr[AG_TRACEPARENT_LEN] != '-')
        return AG_EINVAL;
    if (h.ptr[2] != '-' || h.ptr[35] != '-' || h.ptr[52] != '-')
        return AG_EINVAL;
    if (!is_lower_hex(h.ptr + 3, 32) || !is_lower_hex(h.ptr + 36, 16))
        return AG_EINVAL;
    int flags = hex2(h.ptr + 53);
    if (flags < 0)
        return AG_EINVAL;
    memcpy(out->trace_id, h.ptr + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->parent_id, h.ptr + 36, 16);
    out->parent_id[16] = '\0';
    out->span_id[0] = '\0';
    out->flags = (uint8_t)flags;
    return 0;
}

void
ag_trace_random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[32];
    if (n > sizeof(bytes))
        AG_BUG("ag_trace_random_hex: too many bytes");
    for (;;) {
        ag_random_fill(bytes, n);
        bool nonzero = false;
        for (size_t i = 0; i < n; i++)
            nonzero |= bytes[i] != 0;
        if (nonzero)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void
ag_trace_start(struct ag_str header, struct ag_trace_ctx *out)
{
    if (header.len == 0 || ag_trace_parse(header, out) != 0) {
        ag_trace_random_hex(out->trace_id, 16);
        out->parent_id[0] = '\0';
        out->flags = 1;
    }
    ag_trace_random_hex(out->span_id, 8);
}

void
ag_trace_format(const struct ag_trace_ctx *ctx, char out[AG_TRACEPARENT_LEN + 1])
{
    snprintf(out, AG_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", ctx->trace_id, ctx->span_id, ctx->flags);
}
