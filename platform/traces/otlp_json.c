/* SPDX-License-Identifier: MIT */
/* OTLP/HTTP JSON reader: see otlp_json.h. */
#include "otlp_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"

#define MAX_DEPTH  32
#define MAX_ATTRS  64
#define MAX_EVENTS 32
#define MAX_LINKS  32
#define MAX_KEY    128 /* bytes of an attribute key */

struct rd {
    const char *p;
    const char *end;
};

/* Scratch buffers of one walk, reused span after span. */
struct walk {
    struct rd r;
    otlp_span_fn fn;
    void *udata;
    struct ag_buf service;
    struct ag_buf name;
    struct ag_buf msg;
    struct ag_buf attrs;
    struct ag_buf events;
    struct ag_buf links;
    struct ag_buf str;   /* one decoded string value */
    struct ag_buf key;   /* one member name */
    struct ag_buf num;   /* one 64-bit integer written as a string */
    struct ag_buf akey;  /* one attribute's key */
    struct ag_buf val;   /* one attribute's value as JSON text */
    struct ag_buf ename; /* one event's name */
};

/* ---- Tokens ------------------------------------------------------------------ */

static void
ws(struct rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool
peek(struct rd *r, char c)
{
    ws(r);
    return r->p < r->end && *r->p == c;
}

static bool
eat(struct rd *r, char c)
{
    if (!peek(r, c))
        return false;
    r->p++;
    return true;
}

/* The length of the valid UTF-8 sequence at 's' (of 'n' bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    size_t len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, past U+10FFFF */
    return len;
}

static void
put_utf8(struct ag_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    ag_buf_append(b, u, n);
}

static bool
hex4(struct rd *r, uint32_t *out)
{
    if (r->end - r->p < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *r->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

/* A string, decoded into 'out' (reset first, NUL-terminated) unless NULL. */
static bool
str(struct rd *r, struct ag_buf *out)
{
    if (!eat(r, '"'))
        return false;
    if (out != NULL)
        ag_buf_reset(out);
    while (r->p < r->end) {
        const char *run = r->p;
        while (r->p < r->end) {
            unsigned char c = (unsigned char)*r->p;
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
                break;
            r->p++;
        }
        if (out != NULL && r->p > run)
            ag_buf_append(out, run, (size_t)(r->p - run));
        if (r->p >= r->end)
            return false;
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            if (out != NULL)
                ag_buf_cstr(out);
            return true;
        }
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
            if (n == 0)
                return false;
            if (out != NULL)
                ag_buf_append(out, r->p, n);
            r->p += n;
            continue;
        }
        /* A backslash. */
        r->p++;
        if (r->p >= r->end)
            return false;
        char e = *r->p++;
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!hex4(r, &cp))
                return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    return false;
                r->p += 2;
                if (!hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0)
                return false; /* NUL, as jansson refuses it */
            break;
        default: return false;
        }
        if (out != NULL)
            put_utf8(out, cp);
    }
    return false;
}

/* A number; its text is [*start, r->p). '*is_int' when it has no fraction
 * or exponent. */
static bool
number(struct rd *r, const char **start, bool *is_int)
{
    ws(r);
    const char *s = r->p;
    const char *p = r->p;
    const char *e = r->end;
    *is_int = true;
    if (p < e && *p == '-')
        p++;
    if (p >= e)
        return false;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (p < e && *p == '.') {
        *is_int = false;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = false;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *start = s;
    r->p = p;
    return true;
}

static bool
literal(struct rd *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* Any value, checked and passed over. */
static bool
skip(struct rd *r, int depth)
{
    if (depth > MAX_DEPTH)
        return false;
    ws(r);
    if (r->p >= r->end)
        return false;
    const char *s;
    bool is_int;
    switch (*r->p) {
    case '"': return str(r, NULL);
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    case '{':
        r->p++;
        if (eat(r, '}'))
            return true;
        do {
            if (!str(r, NULL) || !eat(r, ':') || !skip(r, depth + 1))
                return false;
        } while (eat(r, ','));
        return eat(r, '}');
    case '[':
        r->p++;
        if (eat(r, ']'))
            return true;
        do {
            if (!skip(r, depth + 1))
                return false;
        } while (eat(r, ','));
        return eat(r, ']');
    default: return number(r, &s, &is_int);
    }
}

/* Members of an object the body was checked to hold: next key into 'key'
 * (decoded), its ':' eaten; false at the closing brace (eaten). Call with
 * 'first' true right after the opening brace. */
static bool
member(struct rd *r, struct ag_buf *key, bool *first)
{
    if (!*first && !eat(r, ','))
        return (void)eat(r, '}'), false;
    if (*first && eat(r, '}'))
        return false;
    *first = false;
    str(r, key);
    eat(r, ':');
    return true;
}

/* Elements of an array the body was checked to hold: true while one
 * follows. */
static bool
element(struct rd *r, bool *first)
{
    if (*first) {
        *first = false;
        return !eat(r, ']');
    }
    if (eat(r, ','))
        return true;
    eat(r, ']');
    return false;
}

static bool
key_is(const struct ag_buf *key, const char *want)
{
    return key->len == strlen(want) && memcmp(key->data, want, key->len) == 0;
}

/* Open the value that follows when it starts with 'c' ('{' or '['); else
 * pass over it and answer false. */
static bool
open_value(struct rd *r, char c)
{
    if (peek(r, c)) {
        r->p++;
        return true;
    }
    skip(r, 0);
    return false;
}

/* In an opened array: true with the next element that is an object opened
 * (others are passed over); false at the end of the array. */
static bool
next_object(struct rd *r, bool *first)
{
    while (element(r, first)) {
        if (open_value(r, '{'))
            return true;
    }
    return false;
}

/* ---- Values -------------------------------------------------------------------- */

/* An int64 from a JSON integer or a decimal string (the protobuf JSON
 * mapping writes 64-bit integers as strings); the value is passed over
 * either way. */
static bool
int64_value(struct walk *w, int64_t *out)
{
    struct rd *r = &w->r;
    const char *digits;
    size_t n;
    if (peek(r, '"')) {
        str(r, &w->num);
        digits = w->num.data != NULL ? w->num.data : "";
        n = w->num.len;
    } else if (peek(r, '-') || (r->p < r->end && *r->p >= '0' && *r->p <= '9')) {
        bool is_int;
        if (!number(r, &digits, &is_int) || !is_int)
            return false;
        n = (size_t)(r->p - digits);
    } else {
        skip(r, 0);
        return false;
    }
    char tmp[24];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, digits, n);
    tmp[n] = '\0';
    for (size_t i = tmp[0] == '-' ? 1 : 0; i < n; i++) {
        if (tmp[i] < '0' || tmp[i] > '9')
            return false;
    }
    if (tmp[0] == '-' && n == 1)
        return false;
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno != 0)
        return false;
    *out = v;
    return true;
}

/* A JSON integer (no string form), passed over either way. */
static bool
int_number(struct walk *w, int64_t *out)
{
    ws(&w->r);
    if (w->r.p < w->r.end && (*w->r.p == '-' || (*w->r.p >= '0' && *w->r.p <= '9')))
        return int64_value(w, out);
    skip(&w->r, 0);
    return false;
}

/* Cut the UTF-8 text in 'b' to at most OTLP_MAX_TEXT bytes, on a
 * character boundary. */
static void
cut_text(struct ag_buf *b)
{
    if (b->len <= OTLP_MAX_TEXT)
        return;
    size_t n = OTLP_MAX_TEXT;
    while (n > 0 && ((unsigned char)b->data[n] & 0xC0) == 0x80)
        n--;
    b->len = n;
    b->data[n] = '\0';
}

/* A string into 'out' (cut to OTLP_MAX_TEXT bytes on a character
 * boundary); false, passing the value over, for another type. */
static bool
text_value(struct walk *w, struct ag_buf *out)
{
    if (!peek(&w->r, '"')) {
        skip(&w->r, 0);
        return false;
    }
    str(&w->r, out);
    cut_text(out);
    return true;
}

/* 'n' bytes of valid UTF-8 as a JSON string. */
static void
put_json_string(struct ag_buf *b, const char *s, size_t n)
{
    ag_buf_append_char(b, '"');
    const char *run = s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ag_buf_append(b, run, (size_t)(s + i - run));
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof(esc), "\\%c", c);
        else
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        ag_buf_append_cstr(b, esc);
        run = s + i + 1;
    }
    ag_buf_append(b, run, (size_t)(s + n - run));
    ag_buf_append_char(b, '"');
}

/* The hex id of 'n' digits in the decoded 'w->str', lowercased into 'out';
 * false unless valid and not all zeros. */
static bool
hex_id(struct walk *w, size_t n, char *out)
{
    if (w->str.len != n)
        return false;
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = w->str.data[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        nonzero |= c != '0';
        out[i] = c;
    }
    out[n] = '\0';
    return nonzero;
}

/* An AnyValue object appended to 'b' as a plain JSON value: stringValue,
 * else intValue, else boolValue, else doubleValue (as jansson's reading of
 * the same did); false, appending nothing, when it holds none of them. */
static bool
any_value(struct walk *w, struct ag_buf *b)
{
    struct rd *r = &w->r;
    if (!open_value(r, '{'))
        return false;
    bool have_s = false, have_i = false, have_b = false, have_d = false;
    bool bval = false;
    int64_t ival = 0;
    char dval[64];
    bool first = true;
    while (member(r, &w->key, &first)) {
        if (key_is(&w->key, "stringValue")) {
            have_s = text_value(w, &w->str) || have_s;
        } else if (key_is(&w->key, "intValue")) {
            have_i = int64_value(w, &ival) || have_i;
        } else if (key_is(&w->key, "boolValue")) {
            ws(r);
            if (literal(r, "true"))
                have_b = bval = true;
            else if (literal(r, "false"))
                have_b = true, bval = false;
            else
                skip(r, 0);
        } else if (key_is(&w->key, "doubleValue")) {
            const char *s;
            bool is_int;
            ws(r);
            if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) &&
                number(r, &s, &is_int) && (size_t)(r->p - s) < sizeof(dval)) {
                memcpy(dval, s, (size_t)(r->p - s));
                dval[r->p - s] = '\0';
                have_d = true;
            } else if (r->p < r->end && *r->p != ',' && *r->p != '}') {
                skip(r, 0);
            }
        } else {
            skip(r, 0);
        }
    }
    char tmp[32];
    if (have_s) {
        put_json_string(b, w->str.data != NULL ? w->str.data : "", w->str.len);
    } else if (have_i) {
        snprintf(tmp, sizeof(tmp), "%lld", (long long)ival);
        ag_buf_append_cstr(b, tmp);
    } else if (have_b) {
        ag_buf_append_cstr(b, bval ? "true" : "false");
    } else if (have_d) {
        ag_buf_append_cstr(b, dval);
    } else {
        return false;
    }
    return true;
}

/* A KeyValue list as a JSON object {key: value} in 'b'; when 'service' is
 * not NULL, the string value of service.name goes there too. */
static void
attributes(struct walk *w, struct ag_buf *b, struct ag_buf *service)
{
    struct rd *r = &w->r;
    ag_buf_reset(b);
    ag_buf_append_char(b, '{');
    size_t n = 0;
    bool first = true;
    struct ag_buf *key = &w->akey;
    struct ag_buf *val = &w->val;
    bool list = open_value(r, '[');
    while (list && next_object(r, &first)) {
        bool have_key = false;
        size_t value_len = 0;
        bool mfirst = true;
        /* Members come in any order: key and value are kept until the end. */
        while (member(r, &w->key, &mfirst)) {
            if (key_is(&w->key, "key")) {
                have_key = peek(r, '"');
                if (have_key)
                    str(r, key);
                else
                    skip(r, 0);
            } else if (key_is(&w->key, "value")) {
                ag_buf_reset(val);
                value_len = any_value(w, val) ? val->len : 0;
            } else {
                skip(r, 0);
            }
        }
        if (!have_key || value_len == 0 || key->len > MAX_KEY || n >= MAX_ATTRS)
            continue;
        if (n > 0)
            ag_buf_append_char(b, ',');
        put_json_string(b, key->data != NULL ? key->data : "", key->len);
        ag_buf_append_char(b, ':');
        ag_buf_append(b, val->data, val->len);
        n++;
        if (service != NULL && key->len == 12 && memcmp(key->data, "service.name", 12) == 0 &&
            val->data[0] == '"') {
            /* The JSON text of a string we wrote: read it back. */
            struct rd sr = { val->data, val->data + val->len };
            str(&sr, service);
        }
    }
    ag_buf_append_char(b, '}');
}

/* Span events: [{name, timeUnixNano}] as [{"name","time_unix_nano"}]. */
static void
events(struct walk *w)
{
    struct rd *r = &w->r;
    struct ag_buf *b = &w->events;
    ag_buf_reset(b);
    ag_buf_append_char(b, '[');
    size_t n = 0;
    bool first = true;
    bool list = open_value(r, '[');
    while (list && next_object(r, &first)) {
        bool mfirst = true;
        bool have_time = false;
        int64_t at = 0;
        ag_buf_reset(&w->ename);
        while (member(r, &w->key, &mfirst)) {
            if (key_is(&w->key, "name"))
                text_value(w, &w->ename);
            else if (key_is(&w->key, "timeUnixNano"))
                have_time = int64_value(w, &at);
            else
                skip(r, 0);
        }
        if (!have_time || n >= MAX_EVENTS)
            continue;
        if (n++ > 0)
            ag_buf_append_char(b, ',');
        ag_buf_append_cstr(b, "{\"name\":");
        put_json_string(b, w->ename.data != NULL ? w->ename.data : "", w->ename.len);
        char tmp[48];
        snprintf(tmp, sizeof(tmp), ",\"time_unix_nano\":%lld}", (long long)at);
        ag_buf_append_cstr(b, tmp);
    }
    ag_buf_append_char(b, ']');
}

/* Span links: [{traceId, spanId, ...}] as [{"trace_id","span_id"}]; a link
 * without valid ids is left out. */
static void
links(struct walk *w)
{
    struct rd *r = &w->r;
    struct ag_buf *b = &w->links;
    ag_buf_reset(b);
    ag_buf_append_char(b, '[');
    size_t n = 0;
    bool first = true;
    bool list = open_value(r, '[');
    while (list && next_object(r, &first)) {
        bool mfirst = true;
        bool trace_ok = false, span_ok = false;
        char trace_id[33], span_id[17];
        while (member(r, &w->key, &mfirst)) {
            if (key_is(&w->key, "traceId"))
                trace_ok = text_value(w, &w->str) && hex_id(w, 32, trace_id);
            else if (key_is(&w->key, "spanId"))
                span_ok = text_value(w, &w->str) && hex_id(w, 16, span_id);
            else
                skip(r, 0);
        }
        if (!trace_ok || !span_ok || n >= MAX_LINKS)
            continue;
        if (n++ > 0)
            ag_buf_append_char(b, ',');
        ag_buf_appendf(b, "{\"trace_id\":\"%s\",\"span_id\":\"%s\"}", trace_id, span_id);
    }
    ag_buf_append_char(b, ']');
}

/* ---- Structure ------------------------------------------------------------------ */

static int
span(struct walk *w)
{
    struct rd *r = &w->r;
    struct otlp_span sp = { .service = ag_buf_cstr(&w->service),
                            .name = "",
                            .status_message = "",
                            .attrs = "{}",
                            .attrs_len = 2,
                            .events = "[]",
                            .events_len = 2,
                            .links = "[]",
                            .links_len = 2 };
    if (!open_value(r, '{'))
        return w->fn(w->udata, &sp); /* not valid */
    bool trace_ok = false, span_ok = false, parent_ok = true;
    bool start_ok = false, end_ok = false;
    ag_buf_reset(&w->name);
    ag_buf_reset(&w->msg);
    ag_buf_reset(&w->attrs);
    ag_buf_reset(&w->events);
    ag_buf_reset(&w->links);
    bool first = true;
    while (member(r, &w->key, &first)) {
        if (key_is(&w->key, "traceId")) {
            trace_ok = text_value(w, &w->str) && hex_id(w, 32, sp.trace_id);
        } else if (key_is(&w->key, "spanId")) {
            span_ok = text_value(w, &w->str) && hex_id(w, 16, sp.span_id);
        } else if (key_is(&w->key, "parentSpanId")) {
            sp.parent_id[0] = '\0';
            parent_ok = !text_value(w, &w->str) || w->str.len == 0 || hex_id(w, 16, sp.parent_id);
        } else if (key_is(&w->key, "startTimeUnixNano")) {
            start_ok = int64_value(w, &sp.start_ns);
        } else if (key_is(&w->key, "endTimeUnixNano")) {
            end_ok = int64_value(w, &sp.end_ns);
        } else if (key_is(&w->key, "kind")) {
            if (!int_number(w, &sp.kind))
                sp.kind = 0;
        } else if (key_is(&w->key, "name")) {
            if (!text_value(w, &w->name))
                ag_buf_reset(&w->name);
        } else if (key_is(&w->key, "status")) {
            sp.status_code = 0;
            ag_buf_reset(&w->msg);
            bool sfirst = true;
            bool status = open_value(r, '{');
            while (status && member(r, &w->key, &sfirst)) {
                if (key_is(&w->key, "code")) {
                    if (!int_number(w, &sp.status_code))
                        sp.status_code = 0;
                } else if (key_is(&w->key, "message")) {
                    if (!text_value(w, &w->msg))
                        ag_buf_reset(&w->msg);
                } else {
                    skip(r, 0);
                }
            }
        } else if (key_is(&w->key, "attributes")) {
            attributes(w, &w->attrs, NULL);
        } else if (key_is(&w->key, "events")) {
            events(w);
        } else if (key_is(&w->key, "links")) {
            links(w);
        } else {
            skip(r, 0);
        }
    }
    if (sp.kind < 0 || sp.kind > 5)
        sp.kind = 0;
    if (sp.status_code < 0 || sp.status_code > 2)
        sp.status_code = 0;
    sp.valid = trace_ok && span_ok && parent_ok && start_ok && end_ok && sp.start_ns > 0 &&
               sp.end_ns >= sp.start_ns;
    if (w->attrs.len == 0)
        ag_buf_append_cstr(&w->attrs, "{}");
    if (w->events.len == 0)
        ag_buf_append_cstr(&w->events, "[]");
    if (w->links.len == 0)
        ag_buf_append_cstr(&w->links, "[]");
    sp.name = ag_buf_cstr(&w->name);
    sp.status_message = ag_buf_cstr(&w->msg);
    sp.attrs = ag_buf_cstr(&w->attrs);
    sp.attrs_len = w->attrs.len;
    sp.events = ag_buf_cstr(&w->events);
    sp.events_len = w->events.len;
    sp.links = ag_buf_cstr(&w->links);
    sp.links_len = w->links.len;
    return w->fn(w->udata, &sp);
}

/* scopeSpans: [{scope, spans: [...]}]. */
static int
scope_spans(struct walk *w)
{
    struct rd *r = &w->r;
    bool first = true;
    bool list = open_value(r, '[');
    while (list && next_object(r, &first)) {
        bool mfirst = true;
        while (member(r, &w->key, &mfirst)) {
            if (!key_is(&w->key, "spans")) {
                skip(r, 0);
                continue;
            }
            if (!open_value(r, '['))
                continue;
            bool sfirst = true;
            while (element(r, &sfirst)) {
                int rc = span(w);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* One ResourceSpans: its resource first (the service name), then its
 * scopeSpans wherever they were. */
static int
resource_spans(struct walk *w)
{
    struct rd *r = &w->r;
    if (!open_value(r, '{'))
        return 0;
    const char *scopes[8];
    size_t nscopes = 0;
    ag_buf_reset(&w->service);
    ag_buf_append_cstr(&w->service, "unknown_service");
    bool first = true;
    struct ag_buf scratch = AG_BUF_INIT(0);
    while (member(r, &w->key, &first)) {
        if (key_is(&w->key, "resource") && peek(r, '{')) {
            r->p++;
            bool rfirst = true;
            while (member(r, &w->key, &rfirst)) {
                if (key_is(&w->key, "attributes")) {
                    struct ag_buf svc = AG_BUF_INIT(0);
                    attributes(w, &scratch, &svc);
                    if (svc.len > 0) {
                        cut_text(&svc);
                        ag_buf_reset(&w->service);
                        ag_buf_append(&w->service, svc.data, svc.len);
                    }
                    ag_buf_release(&svc);
                } else {
                    skip(r, 0);
                }
            }
        } else if (key_is(&w->key, "scopeSpans") && nscopes < AG_ARRAY_SIZE(scopes)) {
            ws(r);
            scopes[nscopes++] = r->p;
            skip(r, 0);
        } else {
            skip(r, 0);
        }
    }
    ag_buf_release(&scratch);
    const char *after = r->p;
    for (size_t i = 0; i < nscopes; i++) {
        r->p = scopes[i];
        int rc = scope_spans(w);
        if (rc != 0)
            return rc;
    }
    r->p = after;
    return 0;
}

int
otlp_json_read(const char *body, size_t len, otlp_span_fn fn, void *udata, char *err, size_t errlen)
{
    struct rd check = { body, body + len };
    if (!skip(&check, 0) || (ws(&check), check.p != check.end)) {
        snprintf(err, errlen, "malformed JSON near byte %zu", (size_t)(check.p - body));
        return AG_EPARSE;
    }
    struct walk w = { .r = { body, body + len }, .fn = fn, .udata = udata };
    if (!peek(&w.r, '{')) {
        snprintf(err, errlen, "the body must be a JSON object");
        return AG_EPARSE;
    }
    /* The last resourceSpans member counts, as with a parsed object. */
    w.r.p++;
    const char *rs = NULL;
    bool first = true;
    ag_buf_init(&w.key, 0);
    while (member(&w.r, &w.key, &first)) {
        ws(&w.r);
        if (key_is(&w.key, "resourceSpans"))
            rs = w.r.p;
        skip(&w.r, 0);
    }
    if (rs == NULL || *rs != '[') {
        ag_buf_release(&w.key);
        snprintf(err, errlen, "an ExportTraceServiceRequest has a resourceSpans array");
        return AG_EPARSE;
    }
    ag_buf_init(&w.service, 0);
    ag_buf_init(&w.name, 0);
    ag_buf_init(&w.msg, 0);
    ag_buf_init(&w.attrs, 0);
    ag_buf_init(&w.events, 0);
    ag_buf_init(&w.links, 0);
    ag_buf_init(&w.str, 0);
    ag_buf_init(&w.num, 0);
    ag_buf_init(&w.akey, 0);
    ag_buf_init(&w.val, 0);
    ag_buf_init(&w.ename, 0);
    w.r.p = rs + 1;
    int rc = 0;
    first = true;
    while (rc == 0 && element(&w.r, &first))
        rc = resource_spans(&w);
    ag_buf_release(&w.service);
    ag_buf_release(&w.name);
    ag_buf_release(&w.msg);
    ag_buf_release(&w.attrs);
    ag_buf_release(&w.events);
    ag_buf_release(&w.links);
    ag_buf_release(&w.str);
    ag_buf_release(&w.num);
    ag_buf_release(&w.akey);
    ag_buf_release(&w.val);
    ag_buf_release(&w.ename);
    ag_buf_release(&w.key);
    return rc;
}
