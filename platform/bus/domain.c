/* SPDX-License-Identifier: MIT */
/* Bus domain rules: names and topic patterns, who may publish and consume
 * what, ack ids, JSON output helpers and the validation of the JSON request
 * bodies other than a publish (scan.c reads those). Pure: no I/O, no clock,
 * no state. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

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
