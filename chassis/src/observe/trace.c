/* SPDX-License-Identifier: MIT */
/* W3C traceparent handling (https://www.w3.org/TR/trace-context/). */
#include "agora/base.h"
#include "agora/trace.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agora/buf.h"
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

static bool sample(void);

void
ag_trace_start(struct ag_str header, struct ag_trace_ctx *out)
{
    if (header.len == 0 || ag_trace_parse(header, out) != 0) {
        ag_trace_random_hex(out->trace_id, 16);
        out->parent_id[0] = '\0';
        out->flags = sample() ? 1 : 0;
    }
    ag_trace_random_hex(out->span_id, 8);
}

void
ag_trace_format(const struct ag_trace_ctx *ctx, char out[AG_TRACEPARENT_LEN + 1])
{
    snprintf(out, AG_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", ctx->trace_id, ctx->span_id, ctx->flags);
}

/* ---- Sampling, current context ----------------------------------------- */

static double sample_ratio = 1.0;
static const struct ag_trace_ctx *current_ctx;

void
ag_trace_set_sample_ratio(double ratio)
{
    sample_ratio = ratio < 0 ? 0 : ratio > 1 ? 1 : ratio;
}

static bool
sample(void)
{
    if (sample_ratio >= 1.0)
        return true;
    if (sample_ratio <= 0.0)
        return false;
    uint64_t r;
    ag_random_fill(&r, sizeof(r));
    return (double)(r >> 11) * (1.0 / 9007199254740992.0) < sample_ratio;
}

void
ag_trace_child(const struct ag_trace_ctx *parent, struct ag_trace_ctx *out)
{
    memcpy(out->trace_id, parent->trace_id, sizeof(out->trace_id));
    memcpy(out->parent_id, parent->span_id, sizeof(out->parent_id));
    out->flags = parent->flags;
    ag_trace_random_hex(out->span_id, 8);
}

const struct ag_trace_ctx *
ag_trace_current(void)
{
    return current_ctx;
}

void
ag_trace_set_current(const struct ag_trace_ctx *ctx)
{
    current_ctx = ctx;
}

/* ---- Spans -------------------------------------------------------------- */

static ag_span_sink_fn span_sink;
static void *span_sink_udata;

void
ag_span_set_sink(ag_span_sink_fn fn, void *udata)
{
    span_sink = fn;
    span_sink_udata = udata;
}

bool
ag_span_enabled(void)
{
    return span_sink != NULL;
}

static int64_t
unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
copy_text(char *dst, const char *src, size_t len)
{
    if (len > AG_SPAN_MAX_TEXT - 1)
        len = AG_SPAN_MAX_TEXT - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

void
ag_span_begin(struct ag_span *s, const struct ag_trace_ctx *ctx, const char *name,
              enum ag_span_kind kind)
{
    s->recording = span_sink != NULL && (ctx->flags & 1) != 0;
    s->nattrs = 0;
    s->nevents = 0;
    s->links = NULL;
    if (!s->recording)
        return;
    s->ctx = *ctx;
    copy_text(s->name, name, strlen(name));
    s->kind = kind;
    s->status = AG_SPAN_UNSET;
    s->status_msg[0] = '\0';
    s->start_ns = unix_ns();
    s->end_ns = 0;
}

void
ag_span_set_name(struct ag_span *s, const char *name)
{
    if (s->recording)
        copy_text(s->name, name, strlen(name));
}

void
ag_span_attr_strn(struct ag_span *s, const char *key, const char *value, size_t len)
{
    if (!s->recording || s->nattrs >= AG_SPAN_MAX_ATTRS || value == NULL)
        return;
    struct ag_span_attr *a = &s->attrs[s->nattrs++];
    a->key = key;
    a->is_int = false;
    copy_text(a->s, value, len);
}

void
ag_span_attr_str(struct ag_span *s, const char *key, const char *value)
{
    if (value != NULL)
        ag_span_attr_strn(s, key, value, strlen(value));
}

void
ag_span_attr_int(struct ag_span *s, const char *key, int64_t value)
{
    if (!s->recording || s->nattrs >= AG_SPAN_MAX_ATTRS)
        return;
    struct ag_span_attr *a = &s->attrs[s->nattrs++];
    a->key = key;
    a->is_int = true;
    a->i = value;
}

void
ag_span_event(struct ag_span *s, const char *name)
{
    if (!s->recording || s->nevents >= AG_SPAN_MAX_EVENTS)
        return;
    s->events[s->nevents].name = name;
    s->events[s->nevents].time_ns = unix_ns();
    s->nevents++;
}

void
ag_span_use_links(struct ag_span *s, struct ag_span_links *links)
{
    if (!s->recording)
        return;
    links->n = 0;
    links->dropped = 0;
    s->links = links;
}

void
ag_span_link(struct ag_span *s, const struct ag_trace_ctx *ctx)
{
    struct ag_span_links *l = s->links;
    if (!s->recording || l == NULL)
        return;
    if (l->n >= AG_SPAN_MAX_LINKS) {
        l->dropped++;
        return;
    }
    memcpy(l->v[l->n].trace_id, ctx->trace_id, sizeof(ctx->trace_id));
    memcpy(l->v[l->n].span_id, ctx->span_id, sizeof(ctx->span_id));
    l->v[l->n].flags = ctx->flags;
    l->n++;
}

void
ag_span_error(struct ag_span *s, const char *msg)
{
    if (!s->recording)
        return;
    s->status = AG_SPAN_ERROR;
    if (msg != NULL)
        copy_text(s->status_msg, msg, strlen(msg));
}

void
ag_span_end(struct ag_span *s)
{
    if (!s->recording)
        return;
    s->recording = false;
    s->end_ns = unix_ns();
    if (span_sink != NULL)
        span_sink(s, span_sink_udata);
}

/* A JSON string of 's': quotes, backslashes and control characters
 * escaped; bytes past ASCII become '?' (attribute values here are ASCII:
 * methods, routes, ids, names). */
static void
json_str(struct ag_buf *out, const char *s)
{
    ag_buf_append_char(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            ag_buf_append_char(out, '\\');
            ag_buf_append_char(out, (char)*p);
        } else if (*p < 0x20) {
            ag_buf_appendf(out, "\\u%04x", *p);
        } else if (*p >= 0x80) {
            ag_buf_append_char(out, '?');
        } else {
            ag_buf_append_char(out, (char)*p);
        }
    }
    ag_buf_append_char(out, '"');
}

int
ag_span_to_otlp_json(const struct ag_span *s, struct ag_buf *dst)
{
    /* Built whole, then appended at once: 'dst' gets all of it or nothing. */
    struct ag_buf b = AG_BUF_INIT(0);
    struct ag_buf *out = &b;
    ag_buf_appendf(out, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", s->ctx.trace_id, s->ctx.span_id);
    if (s->ctx.parent_id[0] != '\0')
        ag_buf_appendf(out, ",\"parentSpanId\":\"%s\"", s->ctx.parent_id);
    ag_buf_append_cstr(out, ",\"name\":");
    json_str(out, s->name);
    ag_buf_appendf(out,
                   ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\","
                   "\"attributes\":[",
                   (int)s->kind, (long long)s->start_ns, (long long)s->end_ns);
    for (unsigned i = 0; i < s->nattrs; i++) {
        const struct ag_span_attr *a = &s->attrs[i];
        ag_buf_append_cstr(out, i ? ",{\"key\":" : "{\"key\":");
        json_str(out, a->key);
        if (a->is_int) {
            ag_buf_appendf(out, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->i);
        } else {
            ag_buf_append_cstr(out, ",\"value\":{\"stringValue\":");
            json_str(out, a->s);
            ag_buf_append_cstr(out, "}}");
        }
    }
    ag_buf_append_cstr(out, "],\"events\":[");
    for (unsigned i = 0; i < s->nevents; i++) {
        ag_buf_appendf(out, "%s{\"timeUnixNano\":\"%lld\",\"name\":", i ? "," : "",
                       (long long)s->events[i].time_ns);
        json_str(out, s->events[i].name);
        ag_buf_append_char(out, '}');
    }
    ag_buf_append_char(out, ']');
    const struct ag_span_links *l = s->links;
    if (l != NULL && l->n > 0) {
        ag_buf_append_cstr(out, ",\"links\":[");
        for (unsigned i = 0; i < l->n; i++)
            ag_buf_appendf(out, "%s{\"traceId\":\"%s\",\"spanId\":\"%s\",\"flags\":%u}",
                           i ? "," : "", l->v[i].trace_id, l->v[i].span_id,
                           (unsigned)l->v[i].flags);
        ag_buf_append_char(out, ']');
    }
    if (l != NULL && l->dropped > 0)
        ag_buf_appendf(out, ",\"droppedLinksCount\":%u", (unsigned)l->dropped);
    ag_buf_appendf(out, ",\"status\":{\"code\":%d", (int)s->status);
    if (s->status_msg[0] != '\0') {
        ag_buf_append_cstr(out, ",\"message\":");
        json_str(out, s->status_msg);
    }
    ag_buf_append_cstr(out, "}}");
    int rc = ag_buf_append(dst, b.data, b.len) == 0 ? 0 : AG_ETOOBIG;
    ag_buf_release(&b);
    return rc;
}
