/* SPDX-License-Identifier: MIT */
/* Bus publish scanner: reads a publish body with a strict JSON scanner and
 * keeps each message's "data" as the bytes sent. Pure: no I/O, no state.
 * Uses domain.c's name rules. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"

/* ---- Publish bodies ----
 * A strict JSON scanner (RFC 8259: UTF-8 only, no NUL, no lone surrogates,
 * no trailing data) that reads the envelope of a publish and keeps "data"
 * as the exact bytes the publisher sent, without building a tree: a
 * publish is mostly payload, and decoding and re-encoding it with jansson
 * was over a third of the bus's CPU per message (docs/internals/bus.md). */

#define SCAN_MAX_DEPTH 512

struct scan {
    const char *p;     /* next byte */
    const char *start; /* the body, for error offsets */
    const char *end;
    const char *why; /* first syntax error, or NULL */
};

static bool
scan_fail(struct scan *s, const char *why)
{
    if (s->why == NULL)
        s->why = why;
    return false;
}

static void
scan_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool
scan_char(struct scan *s, char c)
{
    scan_ws(s);
    if (s->p >= s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

static int
hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = ag_hex_value(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static void
utf8_put(struct ag_buf *out, uint32_t cp)
{
    char b[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    for (size_t i = n - 1; i > 0; i--) {
        b[i] = (char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    b[0] = (char)(lead[n] | cp);
    ag_buf_append(out, b, n);
}

/* The string at s->p (a '"'): checked, and decoded into 'out' (reset
 * first) when 'out' is not NULL. '*out_cps' gets its length in code
 * points. */
static bool
scan_string(struct scan *s, struct ag_buf *out, size_t *out_cps)
{
    if (out != NULL)
        ag_buf_reset(out);
    s->p++;
    size_t cps = 0;
    const char *run = s->p;
    for (;;) {
        if (s->p >= s->end)
            return scan_fail(s, "unterminated string");
        unsigned char c = (unsigned char)*s->p;
        if (c == '"' || c == '\\') {
            if (out != NULL && s->p > run)
                ag_buf_append(out, run, (size_t)(s->p - run));
            s->p++;
            if (c == '"')
                break;
            if (s->p >= s->end)
                return scan_fail(s, "unterminated string");
            uint32_t cp;
            char e = *s->p++;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                int h = hex4(s->p, s->end);
                if (h < 0)
                    return scan_fail(s, "invalid \\u escape");
                s->p += 4;
                cp = (uint32_t)h;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return scan_fail(s, "invalid Unicode surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    int lo = s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                                 ? hex4(s->p + 2, s->end)
                                 : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return scan_fail(s, "invalid Unicode surrogate");
                    s->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                }
                if (cp == 0)
                    return scan_fail(s, "\\u0000 is not allowed");
                break;
            }
            default: return scan_fail(s, "invalid escape");
            }
            if (out != NULL)
                utf8_put(out, cp);
            cps++;
            run = s->p;
            continue;
        }
        if (c < 0x20)
            return scan_fail(s, "control character in string");
        /* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
        uint32_t scanned;
        size_t n = c < 0x80 ? 1 : ag_utf8_next(s->p, (size_t)(s->end - s->p), &scanned);
        if (n == 0)
            return scan_fail(s, "invalid UTF-8");
        s->p += n;
        cps++;
    }
    *out_cps = cps;
    return true;
}

static bool
scan_digits(struct scan *s)
{
    const char *p0 = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > p0;
}

static bool
scan_number(struct scan *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!scan_digits(s))
        return scan_fail(s, "invalid number");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s))
            return scan_fail(s, "invalid number");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return scan_fail(s, "invalid number");
    }
    return true;
}

static bool
scan_literal(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return scan_fail(s, "invalid literal");
    s->p += n;
    return true;
}

/* Check one value of any type and move past it. */
static bool
scan_value(struct scan *s, int depth)
{
    size_t cps;
    scan_ws(s);
    if (s->p >= s->end)
        return scan_fail(s, "unexpected end of input");
    if (depth > SCAN_MAX_DEPTH)
        return scan_fail(s, "nested too deeply");
    char c = *s->p;
    if (c == '"')
        return scan_string(s, NULL, &cps);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        if (scan_char(s, close))
            return true;
        do {
            if (c == '{') {
                scan_ws(s);
                if (s->p >= s->end || *s->p != '"')
                    return scan_fail(s, "expected a string key");
                if (!scan_string(s, NULL, &cps))
                    return false;
                if (!scan_char(s, ':'))
                    return scan_fail(s, "expected ':'");
            }
            if (!scan_value(s, depth + 1))
                return false;
        } while (scan_char(s, ','));
        if (!scan_char(s, close))
            return scan_fail(s, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        return true;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(s);
    if (c == 't')
        return scan_literal(s, "true");
    if (c == 'f')
        return scan_literal(s, "false");
    if (c == 'n')
        return scan_literal(s, "null");
    return scan_fail(s, "unexpected character");
}

/* True when the value at s->p (after white space) is JSON null. */
static bool
at_null(struct scan *s)
{
    scan_ws(s);
    return s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0;
}

/* A string member 'field' of message 'prefix': decoded into the pool when it
 * is a string of 'min'..'max' code points; otherwise an error is added and
 * the value skipped. 'nullable': JSON null reads as "". */
static bool
scan_string_field(struct scan *s, struct ag_valid *v, const char *prefix, const char *field,
                  size_t min, size_t max, bool nullable, struct ag_buf *scratch,
                  struct ag_pool *pool, const char **out, size_t *out_len)
{
    char name[48];
    snprintf(name, sizeof(name), "%s.%s", prefix, field);
    scan_ws(s);
    if (s->p < s->end && *s->p == '"') {
        size_t cps;
        if (!scan_string(s, scratch, &cps))
            return false;
        if (cps < min)
            ag_valid_error(v, name, "too_short", "must be at least %zu character%s long", min,
                           min == 1 ? "" : "s");
        else if (cps > max)
            ag_valid_error(v, name, "too_long", "must be at most %zu characters long", max);
        *out = ag_pool_strndup(pool, ag_buf_cstr(scratch), scratch->len);
        *out_len = scratch->len;
        return true;
    }
    if (nullable && at_null(s)) {
        *out = "";
        *out_len = 0;
    } else {
        ag_valid_error(v, name, "type",
                       at_null(s) ? "must be a string, not null" : "must be a string");
    }
    return scan_value(s, 1);
}

enum { F_ID = 1, F_TOPIC = 2, F_SUBJECT = 4, F_DATA = 8 };

/* One element of "messages" into 'out'. */
static bool
scan_message(struct scan *s, struct ag_valid *v, size_t i, struct ag_buf *scratch,
             struct ag_pool *pool, struct bus_msg_in *out)
{
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "messages[%zu]", i);
    memset(out, 0, sizeof(*out));
    out->subject = "";
    scan_ws(s);
    if (s->p >= s->end || *s->p != '{') {
        ag_valid_error(v, prefix, "type", "must be an object");
        return scan_value(s, 1);
    }
    s->p++;
    unsigned seen = 0;
    if (!scan_char(s, '}')) {
        do {
            size_t cps;
            scan_ws(s);
            if (s->p >= s->end || *s->p != '"')
                return scan_fail(s, "expected a string key");
            if (!scan_string(s, scratch, &cps))
                return false;
            if (!scan_char(s, ':'))
                return scan_fail(s, "expected ':'");
            const char *key = ag_buf_cstr(scratch);
            unsigned f = strcmp(key, "id") == 0        ? F_ID
                         : strcmp(key, "topic") == 0   ? F_TOPIC
                         : strcmp(key, "subject") == 0 ? F_SUBJECT
                         : strcmp(key, "data") == 0    ? F_DATA
                                                       : 0;
            if (f != 0 && (seen & f))
                return scan_fail(s, "duplicate object key");
            seen |= f;
            size_t len;
            bool ok;
            if (f == F_ID) {
                ok = scan_string_field(s, v, prefix, "id", 1, BUS_ID_MAX, false, scratch, pool,
                                       &out->id, &len);
            } else if (f == F_TOPIC) {
                ok = scan_string_field(s, v, prefix, "topic", 1, BUS_NAME_MAX, false, scratch, pool,
                                       &out->topic, &len);
                if (ok && out->topic != NULL && len > 0 && len <= BUS_NAME_MAX &&
                    !bus_name_is_valid(out->topic, len)) {
                    char name[48];
                    snprintf(name, sizeof(name), "%s.topic", prefix);
                    ag_valid_error(v, name, "invalid",
                                   "must match [a-z0-9][a-z0-9._-]{0,127} (lower-case letters, "
                                   "digits, '.', '_' and '-')");
                }
            } else if (f == F_SUBJECT) {
                ok = scan_string_field(s, v, prefix, "subject", 0, BUS_SUBJECT_MAX, true, scratch,
                                       pool, &out->subject, &out->subject_len);
            } else if (f == F_DATA) {
                scan_ws(s);
                const char *d0 = s->p;
                ok = scan_value(s, 1);
                out->data = d0;
                out->data_len = (size_t)(s->p - d0);
                if (ok && out->data_len > BUS_DATA_MAX) {
                    char name[48];
                    snprintf(name, sizeof(name), "%s.data", prefix);
                    ag_valid_error(v, name, "too_large", "must be at most %d bytes", BUS_DATA_MAX);
                }
            } else {
                char name[AG_VALID_MAX_FIELD];
                snprintf(name, sizeof(name), "%s.%s", prefix, key);
                ag_valid_error(v, name, "unknown", "is not a known field");
                ok = scan_value(s, 1);
            }
            if (!ok)
                return false;
        } while (scan_char(s, ','));
        if (!scan_char(s, '}'))
            return scan_fail(s, "expected ',' or '}'");
    }
    static const struct {
        unsigned f;
        const char *name;
    } required[] = { { F_ID, "id" }, { F_TOPIC, "topic" }, { F_DATA, "data" } };
    for (size_t k = 0; k < AG_ARRAY_SIZE(required); k++) {
        if (!(seen & required[k].f)) {
            char name[48];
            snprintf(name, sizeof(name), "%s.%s", prefix, required[k].name);
            ag_valid_error(v, name, "required", "is required");
        }
    }
    return true;
}

/* The "messages" array into '*io_msgs' (grown in 'pool'); messages past
 * BUS_BATCH_MAX are checked, not kept. */
static bool
scan_messages(struct scan *s, struct ag_valid *v, struct ag_buf *scratch, struct ag_pool *pool,
              struct bus_msg_in **io_msgs, size_t *out_n)
{
    size_t n = 0;
    size_t cap = 8;
    struct bus_msg_in *msgs = ag_pool_alloc(pool, cap * sizeof(*msgs));
    struct bus_msg_in spare;
    scan_ws(s);
    if (s->p >= s->end || *s->p != '[') {
        ag_valid_error(v, "messages", "type",
                       at_null(s) ? "must be an array, not null" : "must be an array");
        *out_n = 0;
        return scan_value(s, 1);
    }
    s->p++;
    if (!scan_char(s, ']')) {
        do {
            if (n == cap && cap < BUS_BATCH_MAX) {
                size_t ncap = AG_MIN(2 * cap, (size_t)BUS_BATCH_MAX);
                struct bus_msg_in *bigger = ag_pool_alloc(pool, ncap * sizeof(*msgs));
                memcpy(bigger, msgs, n * sizeof(*msgs));
                msgs = bigger;
                cap = ncap;
            }
            struct bus_msg_in *m = n < BUS_BATCH_MAX ? &msgs[n] : &spare;
            if (!scan_message(s, v, n, scratch, pool, m))
                return false;
            n++;
        } while (scan_char(s, ','));
        if (!scan_char(s, ']'))
            return scan_fail(s, "expected ',' or ']'");
    }
    if (n == 0)
        ag_valid_error(v, "messages", "too_short", "must have at least 1 item");
    else if (n > BUS_BATCH_MAX)
        ag_valid_error(v, "messages", "too_long", "must have at most %d items", BUS_BATCH_MAX);
    *io_msgs = msgs;
    *out_n = n;
    return true;
}

int
bus_publish_parse(struct ag_valid *v, const char *body, size_t len, struct ag_pool *pool,
                  struct bus_msg_in **out_msgs, size_t *out_n, char *errbuf, size_t errlen)
{
    struct scan s = { .p = body, .start = body, .end = body + len };
    struct ag_buf scratch = AG_BUF_INIT(0);
    struct bus_msg_in *msgs = NULL;
    size_t n = 0;
    bool seen = false;
    bool ok = true;
    if (len == 0 || body == NULL) {
        ok = scan_fail(&s, "empty body");
    } else if (!scan_char(&s, '{')) {
        ok = scan_fail(&s, "the body must be a JSON object");
    } else if (!scan_char(&s, '}')) {
        do {
            size_t cps;
            scan_ws(&s);
            if (s.p >= s.end || *s.p != '"') {
                ok = scan_fail(&s, "expected a string key");
                break;
            }
            ok = scan_string(&s, &scratch, &cps);
            if (!ok)
                break;
            if (!scan_char(&s, ':')) {
                ok = scan_fail(&s, "expected ':'");
                break;
            }
            if (strcmp(ag_buf_cstr(&scratch), "messages") == 0) {
                if (seen) {
                    ok = scan_fail(&s, "duplicate object key");
                    break;
                }
                seen = true;
                ok = scan_messages(&s, v, &scratch, pool, &msgs, &n);
            } else {
                ag_valid_error(v, ag_buf_cstr(&scratch), "unknown", "is not a known field");
                ok = scan_value(&s, 1);
            }
        } while (ok && scan_char(&s, ','));
        if (ok && !scan_char(&s, '}'))
            ok = scan_fail(&s, "expected ',' or '}'");
    }
    if (ok) {
        scan_ws(&s);
        if (s.p != s.end)
            ok = scan_fail(&s, "trailing data after the JSON value");
    }
    ag_buf_release(&scratch);
    if (!ok) {
        if (errlen > 0)
            snprintf(errbuf, errlen, "invalid JSON at byte %zu: %s", (size_t)(s.p - s.start),
                     s.why);
        return AG_EPARSE;
    }
    if (!seen)
        ag_valid_error(v, "messages", "required", "is required");
    if (!ag_valid_ok(v))
        return AG_EINVAL;
    *out_msgs = msgs;
    *out_n = n;
    return 0;
}

/* ---- Members of a scanned value ----
 * A light walk over JSON that was scanned (validated) when it was
 * published: containers are skipped by depth, strings by their quotes. */

/* Skip the JSON string starting at 'p' (its opening quote); returns the
 * position after its closing quote, or NULL at 'end'. */
static const char *
skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skip one JSON value at 'p' (no leading white space); NULL when it does
 * not end before 'end'. Containers are skipped by depth, strings by their
 * quotes: the data was validated as strict JSON when it was published. */
static const char *
skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    size_t depth = 0;
    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            if (p == NULL)
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

bool
bus_json_member(const char *json, size_t len, const char *key, const char **out_value,
                size_t *out_len)
{
    size_t klen = strlen(key);
    const char *end = json + len;
    const char *p = skip_ws(json, end);
    if (p >= end || *p != '{')
        return false;
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *k = p;
        p = skip_string(p, end);
        if (p == NULL)
            return false;
        bool match = (size_t)(p - k) == klen + 2 && memcmp(k + 1, key, klen) == 0;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return false;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = skip_value(p, end);
        if (p == NULL)
            return false;
        if (match) {
            *out_value = v;
            *out_len = (size_t)(p - v);
            return true;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return false;
}
