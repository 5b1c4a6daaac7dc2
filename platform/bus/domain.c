/* SPDX-License-Identifier: MIT */
/* Bus domain: name and pattern rules, ack ids, request-body validation, and
 * the in-memory delivery index of a subscription (ready list, per-subject
 * ordering, leases and delays on a shared timer heap). No I/O, no clock. */
#include "agora/base.h"
#include "domain.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/identity.h"
#include "agora/str.h"

/* ---- Names and patterns ---- */

static bool
name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '.' || c == '_' || c == '-');
}

bool
bus_name_is_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > BUS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0))
            return false;
    }
    return true;
}

bool
bus_pattern_is_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 1 && s[0] == '*')
        return true;
    if (len > 2 && s[len - 1] == '*' && s[len - 2] == '.')
        return bus_name_is_valid(s, len - 2);
    return bus_name_is_valid(s, len);
}

bool
bus_pattern_match(const char *pattern, const char *topic, size_t len)
{
    size_t plen = strlen(pattern);
    if (plen == 1 && pattern[0] == '*')
        return true;
    if (plen > 2 && pattern[plen - 1] == '*' && pattern[plen - 2] == '.') {
        /* "order.*": the topic starts with "order." and has more after it. */
        size_t prefix = plen - 1;
        return len > prefix && memcmp(pattern, topic, prefix) == 0;
    }
    return plen == len && memcmp(pattern, topic, len) == 0;
}

/* ---- Who may do what ---- */

int
bus_grants_parse(const char *text, struct bus_grant *out, size_t max, size_t *n, char *err,
                 size_t errlen)
{
    *n = 0;
    for (const char *p = text != NULL ? text : ""; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        size_t slen = colon != NULL ? (size_t)(colon - p) : 0;
        size_t plen = colon != NULL ? len - slen - 1 : 0;
        if (*n == max) {
            snprintf(err, errlen, "more than %zu entries", max);
            return AG_EINVAL;
        }
        struct bus_grant *g = &out[*n];
        if (colon == NULL || slen == 0 || slen >= sizeof(g->service) || plen == 0 ||
            plen >= sizeof(g->pattern)) {
            snprintf(err, errlen, "entry %zu is not service:pattern", *n + 1);
            return AG_EINVAL;
        }
        memcpy(g->service, p, slen);
        g->service[slen] = '\0';
        memcpy(g->pattern, colon + 1, plen);
        g->pattern[plen] = '\0';
        if (!bus_pattern_is_valid(g->pattern)) {
            snprintf(err, errlen, "'%s' is not a topic pattern", g->pattern);
            return AG_EINVAL;
        }
        (*n)++;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

bool
bus_may_publish(const struct bus_grant *grants, size_t n, const char *service, const char *topic,
                size_t len)
{
    if (strcmp(service, AG_IDENTITY_OPERATOR) == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(grants[i].service, service) == 0 &&
            bus_pattern_match(grants[i].pattern, topic, len))
            return true;
    }
    return false;
}

bool
bus_may_consume(const char *service, const char *sub)
{
    if (strcmp(service, AG_IDENTITY_OPERATOR) == 0)
        return true;
    size_t n = strlen(service);
    return strncmp(sub, service, n) == 0 && (sub[n] == '\0' || sub[n] == '.');
}

/* ---- Ack ids ---- */

/* Write the digits of 'v' ending just before 'end'; returns the first. */
static char *
put_u64_rev(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return end;
}

void
bus_ack_id_format(int64_t seq, uint64_t token, char out[BUS_ACK_ID_LEN])
{
    char tmp[BUS_ACK_ID_LEN];
    char *end = tmp + sizeof(tmp);
    char *p = put_u64_rev(end, token);
    *--p = '.';
    p = put_u64_rev(p, seq < 0 ? 0 : (uint64_t)seq);
    size_t n = (size_t)(end - p);
    memcpy(out, p, n);
    out[n] = '\0';
}

int
bus_ack_id_parse(const char *s, int64_t *out_seq, uint64_t *out_token)
{
    if (s == NULL)
        return AG_EINVAL;
    const char *dot = strchr(s, '.');
    if (dot == NULL)
        return AG_EINVAL;
    int64_t seq;
    uint64_t token;
    if (ag_str_to_i64(ag_str_make(s, (size_t)(dot - s)), 1, INT64_MAX, &seq) != 0 ||
        ag_str_to_u64(ag_str_from_cstr(dot + 1), UINT64_MAX, &token) != 0 || token == 0)
        return AG_EINVAL;
    *out_seq = seq;
    *out_token = token;
    return 0;
}

/* ---- JSON output ---- */

int
bus_buf_append_u64(struct ag_buf *out, uint64_t v)
{
    char tmp[24];
    char *p = put_u64_rev(tmp + sizeof(tmp), v);
    return ag_buf_append(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

int
bus_buf_append_i64(struct ag_buf *out, int64_t v)
{
    if (v >= 0)
        return bus_buf_append_u64(out, (uint64_t)v);
    int rc = ag_buf_append_char(out, '-');
    return rc != 0 ? rc : bus_buf_append_u64(out, (uint64_t)0 - (uint64_t)v);
}

int
bus_json_append_string(struct ag_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int rc = ag_buf_reserve(out, len + 2);
    if (rc != 0)
        return rc;
    ag_buf_append_char(out, '"');
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (i > run) {
            rc = ag_buf_append(out, s + run, i - run);
            if (rc != 0)
                return rc;
        }
        run = i + 1;
        char esc[7] = { '\\', 0, 0, 0, 0, 0, 0 };
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        rc = ag_buf_append(out, esc, n);
        if (rc != 0)
            return rc;
    }
    if (len > run) {
        rc = ag_buf_append(out, s + run, len - run);
        if (rc != 0)
            return rc;
    }
    return ag_buf_append_char(out, '"');
}

/* ---- Request bodies ---- */

static const char *const SUB_FIELDS[] = { "topics", "ack_deadline_ms", "max_attempts",
                                          "retry_delay_ms", NULL };
static const char *const PULL_FIELDS[] = { "max_messages", "wait_ms", NULL };
static const char *const ACK_FIELDS[] = { "ack_ids", NULL };
static const char *const NACK_FIELDS[] = { "ack_ids", "delay_ms", "error", NULL };
static const char *const REPLAY_FIELDS[] = { "seqs", NULL };

bool
bus_sub_config_from_json(struct ag_valid *v, json_t *body, struct bus_sub_config *out)
{
    memset(out, 0, sizeof(*out));
    out->ack_deadline_ms = BUS_ACK_DEADLINE_DEF;
    out->max_attempts = BUS_ATTEMPTS_DEF;
    out->retry_delay_ms = BUS_RETRY_DELAY_DEF;
    ag_valid_unknown(v, body, NULL, SUB_FIELDS);
    json_t *topics =
        ag_valid_array(v, body, NULL, "topics", AG_VALID_REQUIRED, 1, BUS_PATTERNS_MAX);
    size_t i;
    json_t *t;
    json_array_foreach(topics, i, t)
    {
        char field[32];
        snprintf(field, sizeof(field), "topics[%zu]", i);
        const char *p = json_string_value(t);
        if (p == NULL) {
            ag_valid_error(v, field, "type", "must be a string");
        } else if (!bus_pattern_is_valid(p)) {
            ag_valid_error(v, field, "invalid",
                           "must be a topic name, a topic name followed by \".*\", or \"*\"");
        } else {
            out->patterns[out->npatterns++] = p;
        }
    }
    ag_valid_int(v, body, NULL, "ack_deadline_ms", AG_VALID_OPTIONAL, BUS_ACK_DEADLINE_MIN,
                 BUS_ACK_DEADLINE_MAX, &out->ack_deadline_ms);
    ag_valid_int(v, body, NULL, "max_attempts", AG_VALID_OPTIONAL, 1, BUS_ATTEMPTS_MAX,
                 &out->max_attempts);
    ag_valid_int(v, body, NULL, "retry_delay_ms", AG_VALID_OPTIONAL, 0, BUS_RETRY_DELAY_MAX,
                 &out->retry_delay_ms);
    return ag_valid_ok(v);
}

bool
bus_pull_from_json(struct ag_valid *v, json_t *body, int64_t *out_max, int64_t *out_wait_ms)
{
    *out_max = BUS_PULL_DEF;
    *out_wait_ms = BUS_WAIT_DEF_MS;
    ag_valid_unknown(v, body, NULL, PULL_FIELDS);
    ag_valid_int(v, body, NULL, "max_messages", AG_VALID_OPTIONAL, 1, BUS_PULL_MAX, out_max);
    ag_valid_int(v, body, NULL, "wait_ms", AG_VALID_OPTIONAL, 0, BUS_WAIT_MAX_MS, out_wait_ms);
    return ag_valid_ok(v);
}

bool
bus_acks_from_json(struct ag_valid *v, json_t *body, bool nack, struct ag_pool *pool,
                   struct bus_ack_ref **out_refs, size_t *out_n, int64_t *out_delay_ms,
                   const char **out_error)
{
    *out_delay_ms = -1;
    *out_error = NULL;
    ag_valid_unknown(v, body, NULL, nack ? NACK_FIELDS : ACK_FIELDS);
    json_t *ids = ag_valid_array(v, body, NULL, "ack_ids", AG_VALID_REQUIRED, 1, BUS_ACK_IDS_MAX);
    if (nack) {
        ag_valid_int(v, body, NULL, "delay_ms", AG_VALID_OPTIONAL, 0, BUS_NACK_DELAY_MAX,
                     out_delay_ms);
        *out_error = ag_valid_string(v, body, NULL, "error", AG_VALID_OPTIONAL, 0, BUS_ERROR_MAX);
    }
    if (ids == NULL)
        return false;
    size_t n = json_array_size(ids);
    struct bus_ack_ref *refs = ag_pool_alloc(pool, n * sizeof(*refs));
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (!json_is_string(id) ||
            bus_ack_id_parse(json_string_value(id), &refs[i].seq, &refs[i].token) != 0) {
            char field[32];
            snprintf(field, sizeof(field), "ack_ids[%zu]", i);
            ag_valid_error(v, field, "invalid", "must be an ack id from a pull");
        }
    }
    if (!ag_valid_ok(v))
        return false;
    *out_refs = refs;
    *out_n = n;
    return true;
}

bool
bus_replay_from_json(struct ag_valid *v, json_t *body, struct ag_pool *pool, int64_t **out_seqs,
                     size_t *out_n)
{
    *out_seqs = NULL;
    *out_n = 0;
    ag_valid_unknown(v, body, NULL, REPLAY_FIELDS);
    json_t *arr = ag_valid_array(v, body, NULL, "seqs", AG_VALID_OPTIONAL, 1, BUS_REPLAY_SEQS_MAX);
    if (arr == NULL)
        return ag_valid_ok(v);
    size_t n = json_array_size(arr);
    int64_t *seqs = ag_pool_alloc(pool, n * sizeof(*seqs));
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        if (!json_is_integer(s) || json_integer_value(s) < 1) {
            char field[32];
            snprintf(field, sizeof(field), "seqs[%zu]", i);
            ag_valid_error(v, field, "invalid", "must be a positive integer");
            continue;
        }
        seqs[i] = json_integer_value(s);
    }
    if (!ag_valid_ok(v))
        return false;
    *out_seqs = seqs;
    *out_n = n;
    return true;
}

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

/* ---- Hash table ---- */

#define HTAB_INITIAL 16

void
bus_htab_init(struct bus_htab *t)
{
    memset(t, 0, sizeof(*t));
}

void
bus_htab_release(struct bus_htab *t)
{
    ag_free(t->buckets);
    memset(t, 0, sizeof(*t));
}

static void
htab_grow(struct bus_htab *t)
{
    size_t nb = t->buckets ? (t->mask + 1) * 2 : HTAB_INITIAL;
    struct bus_hnode **b = ag_calloc(nb, sizeof(*b));
    if (t->buckets != NULL) {
        for (size_t i = 0; i <= t->mask; i++) {
            struct bus_hnode *n = t->buckets[i];
            while (n != NULL) {
                struct bus_hnode *next = n->next;
                size_t j = (size_t)n->hash & (nb - 1);
                n->next = b[j];
                b[j] = n;
                n = next;
            }
        }
    }
    ag_free(t->buckets);
    t->buckets = b;
    t->mask = nb - 1;
}

void
bus_htab_insert(struct bus_htab *t, struct bus_hnode *node, uint64_t hash)
{
    if (t->buckets == NULL || t->count >= t->mask + 1)
        htab_grow(t);
    node->hash = hash;
    size_t i = (size_t)hash & t->mask;
    node->next = t->buckets[i];
    t->buckets[i] = node;
    t->count++;
}

void
bus_htab_remove(struct bus_htab *t, struct bus_hnode *node)
{
    struct bus_hnode **pp = &t->buckets[(size_t)node->hash & t->mask];
    while (*pp != NULL && *pp != node)
        pp = &(*pp)->next;
    if (*pp == NULL)
        AG_BUG("bus_htab_remove: node not in table");
    *pp = node->next;
    node->next = NULL;
    t->count--;
}

struct bus_hnode *
bus_htab_find(const struct bus_htab *t, uint64_t hash, bus_htab_eq_fn eq, const void *key)
{
    if (t->buckets == NULL)
        return NULL;
    for (struct bus_hnode *n = t->buckets[(size_t)hash & t->mask]; n != NULL; n = n->next) {
        if (n->hash == hash && eq(n, key))
            return n;
    }
    return NULL;
}

struct bus_hnode *
bus_htab_next(const struct bus_htab *t, size_t *pos, struct bus_hnode *prev)
{
    if (t->buckets == NULL)
        return NULL;
    if (prev != NULL && prev->next != NULL)
        return prev->next;
    size_t i = prev != NULL ? ((size_t)prev->hash & t->mask) + 1 : *pos;
    for (; i <= t->mask; i++) {
        if (t->buckets[i] != NULL) {
            *pos = i;
            return t->buckets[i];
        }
    }
    *pos = i;
    return NULL;
}

uint64_t
bus_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t
bus_hash_i64(int64_t v)
{
    /* splitmix64 finaliser: consecutive seqs spread over every bucket. */
    uint64_t x = (uint64_t)v;
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* ---- Timer heap ---- */

void
bus_heap_init(struct bus_heap *h)
{
    memset(h, 0, sizeof(*h));
}

void
bus_heap_release(struct bus_heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->idx = BUS_HEAP_NONE;
    ag_free(h->v);
    memset(h, 0, sizeof(*h));
}

static void
heap_set(struct bus_heap *h, size_t i, struct bus_timed *t)
{
    h->v[i] = t;
    t->idx = i;
}

static void
heap_up(struct bus_heap *h, size_t i)
{
    struct bus_timed *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->due <= t->due)
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void
heap_down(struct bus_heap *h, size_t i)
{
    struct bus_timed *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->due < h->v[c]->due)
            c++;
        if (t->due <= h->v[c]->due)
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, t);
}

void
bus_heap_push(struct bus_heap *h, struct bus_timed *t)
{
    if (t->idx != BUS_HEAP_NONE)
        AG_BUG("bus_heap_push: entry already in the heap");
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = ag_realloc(h->v, h->cap * sizeof(*h->v));
    }
    heap_set(h, h->n++, t);
    heap_up(h, t->idx);
}

void
bus_heap_remove(struct bus_heap *h, struct bus_timed *t)
{
    size_t i = t->idx;
    if (i == BUS_HEAP_NONE)
        return;
    t->idx = BUS_HEAP_NONE;
    h->n--;
    if (i == h->n)
        return;
    struct bus_timed *moved = h->v[h->n];
    heap_set(h, i, moved);
    heap_up(h, i);
    heap_down(h, moved->idx);
}

struct bus_timed *
bus_heap_top(const struct bus_heap *h)
{
    return h->n > 0 ? h->v[0] : NULL;
}

/* ---- Delivery index ---- */

static void
dlist_append(struct bus_dlist *l, struct bus_dlv *d)
{
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
}

/* Insert keeping seq order; the common case (newest) is at the tail. */
static void
dlist_insert_sorted(struct bus_dlist *l, struct bus_dlv *d)
{
    struct bus_dlv *after = l->tail;
    while (after != NULL && after->seq > d->seq)
        after = after->prev;
    d->prev = after;
    d->next = after ? after->next : l->head;
    if (d->next != NULL)
        d->next->prev = d;
    else
        l->tail = d;
    if (after != NULL)
        after->next = d;
    else
        l->head = d;
}

static void
dlist_remove(struct bus_dlist *l, struct bus_dlv *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = NULL;
    d->next = NULL;
}

/* Take 'd' out of the structure its state puts it in. The state is left as
 * it was; the caller sets the next one. */
static void
detach(struct bus_dlv *d)
{
    struct bus_q *q = d->q;
    switch (d->state) {
    case BUS_DLV_WAITING: dlist_remove(&d->subject->wait, d); break;
    case BUS_DLV_READY:
        dlist_remove(&q->ready, d);
        q->nready--;
        break;
    case BUS_DLV_DELAYED:
        bus_heap_remove(q->heap, &d->timed);
        q->ndelayed--;
        break;
    case BUS_DLV_LEASED:
        bus_heap_remove(q->heap, &d->timed);
        q->nleased--;
        break;
    case BUS_DLV_HELD: q->nheld--; break;
    }
}

static void
make_ready(struct bus_dlv *d)
{
    d->state = BUS_DLV_READY;
    d->timed.due = 0;
    dlist_append(&d->q->ready, d);
    d->q->nready++;
}

static void
make_delayed(struct bus_dlv *d, uint64_t due)
{
    d->state = BUS_DLV_DELAYED;
    d->timed.due = due;
    bus_heap_push(d->q->heap, &d->timed);
    d->q->ndelayed++;
}

/* A subject head (or an entry without subject) enters circulation. */
static void
activate(struct bus_dlv *d, uint64_t now)
{
    if (d->timed.due > now)
        make_delayed(d, d->timed.due);
    else
        make_ready(d);
}

static bool
subject_eq(const struct bus_hnode *n, const void *key)
{
    const struct bus_subject *s = BUS_CONTAINER(n, struct bus_subject, hnode);
    const struct ag_str *k = key;
    return s->len == k->len && memcmp(s->name, k->ptr, k->len) == 0;
}

static bool
dlv_eq(const struct bus_hnode *n, const void *key)
{
    const struct bus_dlv *d = BUS_CONTAINER(n, struct bus_dlv, hnode);
    return d->seq == *(const int64_t *)key;
}

void
bus_q_init(struct bus_q *q, struct bus_heap *heap, void *owner)
{
    memset(q, 0, sizeof(*q));
    bus_htab_init(&q->by_seq);
    bus_htab_init(&q->subjects);
    q->heap = heap;
    q->owner = owner;
}

void
bus_q_release(struct bus_q *q)
{
    size_t pos = 0;
    struct bus_hnode *n = bus_htab_next(&q->by_seq, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&q->by_seq, &pos, n);
        struct bus_dlv *d = BUS_CONTAINER(n, struct bus_dlv, hnode);
        bus_heap_remove(q->heap, &d->timed);
        ag_free(d);
        n = next;
    }
    pos = 0;
    n = bus_htab_next(&q->subjects, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&q->subjects, &pos, n);
        ag_free(BUS_CONTAINER(n, struct bus_subject, hnode));
        n = next;
    }
    bus_htab_release(&q->by_seq);
    bus_htab_release(&q->subjects);
    memset(&q->ready, 0, sizeof(q->ready));
    q->n = q->nready = q->ndelayed = q->nleased = q->nheld = 0;
}

struct bus_dlv *
bus_q_find(const struct bus_q *q, int64_t seq)
{
    struct bus_hnode *n = bus_htab_find(&q->by_seq, bus_hash_i64(seq), dlv_eq, &seq);
    return n ? BUS_CONTAINER(n, struct bus_dlv, hnode) : NULL;
}

static struct bus_subject *
subject_get(struct bus_q *q, const char *name, size_t len)
{
    struct ag_str key = ag_str_make(name, len);
    uint64_t h = bus_hash_bytes(name, len);
    struct bus_hnode *n = bus_htab_find(&q->subjects, h, subject_eq, &key);
    if (n != NULL)
        return BUS_CONTAINER(n, struct bus_subject, hnode);
    struct bus_subject *s = ag_calloc(1, sizeof(*s) + len);
    s->len = len;
    memcpy(s->name, name, len);
    bus_htab_insert(&q->subjects, &s->hnode, h);
    return s;
}

struct bus_dlv *
bus_q_add(struct bus_q *q, int64_t seq, const char *subject, size_t len, int32_t attempts,
          uint64_t due, uint64_t now)
{
    if (bus_q_find(q, seq) != NULL)
        return NULL;
    struct bus_dlv *d = ag_calloc(1, sizeof(*d));
    d->timed.idx = BUS_HEAP_NONE;
    d->timed.kind = BUS_TIMED_DLV;
    d->timed.due = due;
    d->q = q;
    d->seq = seq;
    d->attempts = attempts;
    bus_htab_insert(&q->by_seq, &d->hnode, bus_hash_i64(seq));
    q->n++;
    if (len == 0) {
        activate(d, now);
        return d;
    }
    struct bus_subject *s = subject_get(q, subject, len);
    d->subject = s;
    struct bus_dlv *head = s->head;
    if (head == NULL) {
        s->head = d;
        activate(d, now);
    } else if (seq < head->seq &&
               (head->state == BUS_DLV_READY || head->state == BUS_DLV_DELAYED)) {
        /* An older message (a replayed dead letter) takes the subject back
         * from a head that has not been handed out yet. */
        detach(head);
        head->state = BUS_DLV_WAITING;
        dlist_insert_sorted(&s->wait, head);
        s->head = d;
        activate(d, now);
    } else {
        d->state = BUS_DLV_WAITING;
        dlist_insert_sorted(&s->wait, d);
    }
    return d;
}

size_t
bus_q_take(struct bus_q *q, uint64_t now, uint64_t lease_ms, uint64_t *io_token,
           struct bus_dlv **out, size_t max)
{
    size_t n = 0;
    while (n < max && q->ready.head != NULL) {
        struct bus_dlv *d = q->ready.head;
        detach(d);
        d->state = BUS_DLV_LEASED;
        d->attempts++;
        d->lease = ++*io_token;
        d->timed.due = now + lease_ms;
        bus_heap_push(q->heap, &d->timed);
        q->nleased++;
        out[n++] = d;
    }
    return n;
}

void
bus_q_retry(struct bus_dlv *d, uint64_t now, uint64_t delay_ms)
{
    if (d->state != BUS_DLV_LEASED && d->state != BUS_DLV_HELD)
        AG_BUG("bus_q_retry: delivery is not leased");
    detach(d);
    if (delay_ms == 0)
        make_ready(d);
    else
        make_delayed(d, now + delay_ms);
}

void
bus_q_hold(struct bus_dlv *d)
{
    if (d->state != BUS_DLV_LEASED && d->state != BUS_DLV_READY && d->state != BUS_DLV_DELAYED)
        AG_BUG("bus_q_hold: delivery is waiting or already held");
    detach(d);
    d->state = BUS_DLV_HELD;
    d->q->nheld++;
}

void
bus_q_wake(struct bus_dlv *d)
{
    if (d->state != BUS_DLV_DELAYED)
        AG_BUG("bus_q_wake: delivery is not delayed");
    detach(d);
    make_ready(d);
}

void
bus_q_remove(struct bus_dlv *d, uint64_t now)
{
    struct bus_q *q = d->q;
    detach(d);
    struct bus_subject *s = d->subject;
    if (s != NULL) {
        if (s->head == d) {
            s->head = s->wait.head;
            if (s->head != NULL) {
                dlist_remove(&s->wait, s->head);
                activate(s->head, now);
            }
        }
        if (s->head == NULL && s->wait.head == NULL) {
            bus_htab_remove(&q->subjects, &s->hnode);
            ag_free(s);
        }
    }
    bus_htab_remove(&q->by_seq, &d->hnode);
    q->n--;
    ag_free(d);
}
