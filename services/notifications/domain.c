/* SPDX-License-Identifier: MIT */
/* Notifications domain rules: template rendering, the delivery state
 * machine, addresses, header encoding (RFC 2047, RFC 5322), quoted-printable
 * bodies, cursors and the JSON representation. No I/O here: events.c,
 * sender.c and api.c do that. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/backoff.h"
#include "agora/codec.h"
#include "agora/err.h"
#include "agora/mem.h"
#include "agora/money.h"
#include "agora/str.h"

/* ---- States ---- */

static const char *const STATUS_NAMES[] = {
#define NOTIFY__STATUS_NAME(name, str) str,
    NOTIFY_STATUS_MAP(NOTIFY__STATUS_NAME)
#undef NOTIFY__STATUS_NAME
};

const char *
notify_status_name(enum notify_status st)
{
    if ((size_t)st >= AG_ARRAY_SIZE(STATUS_NAMES))
        return "unknown";
    return STATUS_NAMES[st];
}

int
notify_status_parse(const char *s, enum notify_status *out_st)
{
    for (size_t i = 0; s != NULL && i < AG_ARRAY_SIZE(STATUS_NAMES); i++) {
        if (strcmp(s, STATUS_NAMES[i]) == 0) {
            *out_st = (enum notify_status)i;
            return 0;
        }
    }
    return AG_EINVAL;
}

bool
notify_smtp_is_permanent(long code)
{
    return code == 550 || code == 551 || code == 553 || code == 554;
}

int
notify_transition(enum notify_status from, int64_t attempts, enum notify_attempt a,
                  int64_t max_attempts, uint64_t base_ms, uint64_t max_ms, uint64_t rnd,
                  struct notify_transition *out)
{
    if (from != NOTIFY_PENDING)
        return AG_EINVAL;
    memset(out, 0, sizeof(*out));
    out->attempts = attempts;
    switch (a) {
    case NOTIFY_ATTEMPT_OK:
        out->status = NOTIFY_SENT;
        out->attempts = attempts + 1;
        return 0;
    case NOTIFY_ATTEMPT_CANCELLED: out->status = NOTIFY_PENDING; return 0;
    case NOTIFY_ATTEMPT_PERMANENT:
        out->status = NOTIFY_FAILED;
        out->attempts = attempts + 1;
        return 0;
    case NOTIFY_ATTEMPT_TRANSIENT:
        out->attempts = attempts + 1;
        if (out->attempts >= max_attempts) {
            out->status = NOTIFY_FAILED;
            return 0;
        }
        out->status = NOTIFY_PENDING;
        /* Equal jitter: a retry never comes sooner than half the step. */
        unsigned n = out->attempts > UINT32_MAX ? UINT32_MAX : (unsigned)out->attempts;
        out->delay_ms = ag_backoff_equal_ms(base_ms, max_ms, n, rnd);
        return 0;
    }
    return AG_EINVAL;
}

/* ---- Bounded UTF-8 output ---- */

struct sink {
    struct ag_buf *out;
    size_t max; /* out->len may not pass this */
    bool full;  /* something was cut */
};

static bool
is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Append 'n' bytes of 's', controls replaced when 'clean'. */
static void
sink_put(struct sink *k, const char *s, size_t n, bool clean)
{
    if (k->full)
        return;
    size_t room = k->max > k->out->len ? k->max - k->out->len : 0;
    size_t take = ag_utf8_clip(s, n, room);
    if (take < n)
        k->full = true;
    if (!clean) {
        if (ag_buf_append(k->out, s, take) != 0)
            k->full = true;
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < take; i++) {
        if (!is_control((unsigned char)s[i]))
            continue;
        if (ag_buf_append(k->out, s + start, i - start) != 0 ||
            ag_buf_append_char(k->out, ' ') != 0)
            k->full = true;
        start = i + 1;
    }
    if (ag_buf_append(k->out, s + start, take - start) != 0)
        k->full = true;
}

static void
sink_cstr(struct sink *k, const char *s, bool clean)
{
    sink_put(k, s, strlen(s), clean);
}

/* ---- Templates ---- */

enum expr_kind {
    EXPR_BAD = 0,  /* not a placeholder we know */
    EXPR_PATH,     /* {{a.b}} */
    EXPR_MONEY,    /* {{money a.b}} */
    EXPR_COUNT,    /* {{count a.b}} */
    EXPR_HUMANIZE, /* {{humanize a.b}} */
};

struct expr {
    enum expr_kind kind;
    const char *path; /* into the template, not terminated */
    size_t len;
};

static bool
is_path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static bool
path_is_valid(const char *p, size_t n)
{
    if (n == 0 || n > 200 || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_path_char(p[i]) || (p[i] == '.' && p[i + 1] == '.'))
            return false;
    }
    return true;
}

/* Parse the text between "{{" and "}}". */
static struct expr
parse_expr(const char *s, size_t n)
{
    struct expr e = { .kind = EXPR_BAD };
    struct ag_str t = ag_str_trim(ag_str_make(s, n));
    size_t sp = 0;
    while (sp < t.len && t.ptr[sp] != ' ')
        sp++;
    if (sp == t.len) {
        if (path_is_valid(t.ptr, t.len))
            e = (struct expr){ EXPR_PATH, t.ptr, t.len };
        return e;
    }
    struct ag_str helper = ag_str_make(t.ptr, sp);
    struct ag_str arg = ag_str_trim(ag_str_make(t.ptr + sp, t.len - sp));
    if (!path_is_valid(arg.ptr, arg.len))
        return e;
    if (ag_str_eq_cstr(helper, "money"))
        e = (struct expr){ EXPR_MONEY, arg.ptr, arg.len };
    else if (ag_str_eq_cstr(helper, "count"))
        e = (struct expr){ EXPR_COUNT, arg.ptr, arg.len };
    else if (ag_str_eq_cstr(helper, "humanize"))
        e = (struct expr){ EXPR_HUMANIZE, arg.ptr, arg.len };
    return e;
}

/* Follow the dotted 'path' from 'ctx'; NULL when any step is missing. */
static const json_t *
lookup(const json_t *ctx, const char *path, size_t n)
{
    const json_t *cur = ctx;
    size_t i = 0;
    while (cur != NULL && i < n) {
        size_t j = i;
        while (j < n && path[j] != '.')
            j++;
        char seg[201];
        size_t len = AG_MIN(j - i, sizeof(seg) - 1);
        memcpy(seg, path + i, len);
        seg[len] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            int64_t idx;
            if (ag_str_to_i64(ag_str_make(seg, len), 0, INT32_MAX, &idx) != 0)
                return NULL;
            cur = json_array_get(cur, (size_t)idx);
        } else {
            return NULL;
        }
        i = j + 1;
    }
    return cur;
}

static void
render_value(struct sink *k, const json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING: sink_put(k, json_string_value(v), json_string_length(v), true); break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sink_cstr(k, num, false);
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        sink_cstr(k, num, false);
        break;
    case JSON_TRUE: sink_cstr(k, "true", false); break;
    case JSON_FALSE: sink_cstr(k, "false", false); break;
    default: break; /* null, objects and arrays render empty */
    }
}

static void
render_money(struct sink *k, const json_t *v)
{
    const json_t *amount = json_object_get(v, "amount");
    const char *cur = json_string_value(json_object_get(v, "currency"));
    if (!json_is_integer(amount) || cur == NULL || strlen(cur) != 3)
        return;
    struct ag_money m = { .amount = json_integer_value(amount) };
    memcpy(m.currency, cur, 4);
    char text[AG_MONEY_FMT_LEN];
    if (ag_money_format(m, text, sizeof(text)) > 0)
        sink_cstr(k, text, false);
}

/* A string token with '_' as spaces: "out_of_stock" -> "out of stock". */
static void
render_humanized(struct sink *k, const json_t *v)
{
    if (!json_is_string(v))
        return;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '_')
            continue;
        sink_put(k, s + start, i - start, true);
        sink_put(k, " ", 1, false);
        start = i + 1;
    }
    sink_put(k, s + start, n - start, true);
}

static void
render_expr(struct sink *k, const json_t *ctx, struct expr e)
{
    if (e.kind == EXPR_BAD)
        return;
    const json_t *v = lookup(ctx, e.path, e.len);
    if (v == NULL)
        return;
    if (e.kind == EXPR_PATH) {
        render_value(k, v);
    } else if (e.kind == EXPR_MONEY) {
        render_money(k, v);
    } else if (e.kind == EXPR_HUMANIZE) {
        render_humanized(k, v);
    } else if (json_is_array(v) || json_is_object(v)) {
        char num[32];
        snprintf(num, sizeof(num), "%zu",
                 json_is_array(v) ? json_array_size(v) : json_object_size(v));
        sink_cstr(k, num, false);
    }
}

int
notify_render(const char *tpl, const json_t *ctx, bool single_line, size_t max, struct ag_buf *out)
{
    struct sink k = { .out = out, .max = out->len + max };
    const char *p = tpl;
    while (*p != '\0' && !k.full) {
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            sink_cstr(&k, p, single_line);
            break;
        }
        sink_put(&k, p, (size_t)(open - p), single_line);
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            sink_cstr(&k, open, single_line);
            break;
        }
        render_expr(&k, ctx, parse_expr(open + 2, (size_t)(close - open - 2)));
        p = close + 2;
    }
    return 0;
}

bool
notify_template_check(struct ag_valid *v, const char *field, const char *tpl)
{
    bool ok = true;
    const char *p = tpl;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (open == NULL)
            break;
        const char *close = strstr(open + 2, "}}");
        if (close == NULL) {
            ag_valid_error(v, field, "invalid", "a '{{' has no closing '}}'");
            return false;
        }
        struct expr e = parse_expr(open + 2, (size_t)(close - open - 2));
        if (e.kind == EXPR_BAD) {
            int n = (int)AG_MIN((size_t)(close - open - 2), 60);
            ag_valid_error(v, field, "invalid",
                           "'{{%.*s}}' is not a path (a.b.c) or a helper (money, count, "
                           "humanize) with a path",
                           n, open + 2);
            ok = false;
        }
        p = close + 2;
    }
    return ok;
}

/* ---- Identifiers and addresses ---- */

bool
notify_id_is_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > NOTIFY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool
is_atext(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool
domain_is_valid(const char *d, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || (c == '-' && label == 0) || ++label > 63)
            return false;
    }
    return label > 0 && d[n - 1] != '-';
}

bool
notify_email_is_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 3 || n > NOTIFY_EMAIL_MAX)
        return false;
    const char *at = strrchr(s, '@');
    if (at == NULL)
        return false;
    size_t local = (size_t)(at - s);
    if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return false;
    for (size_t i = 0; i < local; i++) {
        if (!(is_atext(s[i]) || (s[i] == '.' && s[i + 1] != '.')))
            return false;
    }
    return domain_is_valid(at + 1, n - local - 1);
}

void
notify_email_mask(const char *email, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (email == NULL || email[0] == '\0')
        return;
    const char *at = strrchr(email, '@');
    size_t first = 0;
    if (at != email) {
        /* The first character of the local part, whole. */
        first = 1;
        while (((unsigned char)email[first] & 0xC0) == 0x80)
            first++;
    }
    snprintf(out, outlen, "%.*s***%s", (int)first, email, at != NULL ? at : "");
    /* snprintf may have cut a code point of the domain in half. */
    size_t len = strlen(out);
    size_t keep = ag_utf8_clip(out, len, len);
    out[keep] = '\0';
}

int
notify_mailbox_parse(const char *mailbox, char *out_name, size_t namelen, char *out_addr,
                     size_t addrlen)
{
    struct ag_str m = ag_str_trim(ag_str_from_cstr(mailbox != NULL ? mailbox : ""));
    struct ag_str name = AG_STR_LIT("");
    struct ag_str addr = m;
    const char *lt = memchr(m.ptr, '<', m.len);
    if (lt != NULL) {
        if (m.len == 0 || m.ptr[m.len - 1] != '>')
            return AG_EINVAL;
        name = ag_str_trim(ag_str_make(m.ptr, (size_t)(lt - m.ptr)));
        addr = ag_str_make(lt + 1, m.len - (size_t)(lt - m.ptr) - 2);
        if (name.len >= 2 && name.ptr[0] == '"' && name.ptr[name.len - 1] == '"')
            name = ag_str_make(name.ptr + 1, name.len - 2);
    }
    if (addr.len + 1 > addrlen || name.len + 1 > namelen)
        return AG_EINVAL;
    memcpy(out_addr, addr.ptr, addr.len);
    out_addr[addr.len] = '\0';
    memcpy(out_name, name.ptr, name.len);
    out_name[name.len] = '\0';
    return notify_email_is_valid(out_addr) ? 0 : AG_EINVAL;
}

void
notify_text_one_line(const char *s, size_t max, struct ag_buf *out)
{
    struct sink k = { .out = out, .max = out->len + max };
    sink_cstr(&k, s != NULL ? s : "", true);
}

/* ---- Encodings ---- */

/* Plain printable ASCII (space included), no control, no 8-bit byte. */
static bool
is_plain_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

/* RFC 2047 encoded-words ("=?UTF-8?B?...?="), folded with CRLF SP between
 * words, each word at most 64 characters and never splitting a code point. */
static int
encoded_words(struct ag_buf *out, const char *s)
{
    size_t n = strlen(s);
    size_t i = 0;
    int rc = 0;
    while (rc == 0 && i < n) {
        size_t take = ag_utf8_clip(s + i, n - i, 39);
        if (take == 0)
            take = AG_MIN(n - i, (size_t)4); /* a lone sequence longer than 39: impossible */
        if (i > 0)
            rc = ag_buf_append_cstr(out, "\r\n ");
        if (rc == 0)
            rc = ag_buf_append_cstr(out, "=?UTF-8?B?");
        if (rc == 0)
            rc = ag_base64_append(out, s + i, take);
        if (rc == 0)
            rc = ag_buf_append_cstr(out, "?=");
        i += take;
    }
    return rc;
}

/* A display name: atoms as they are, other ASCII as a quoted-string, the
 * rest as encoded-words. 's' has no control characters. */
static int
phrase(struct ag_buf *out, const char *s)
{
    if (!is_plain_ascii(s) || strstr(s, "=?") != NULL)
        return encoded_words(out, s);
    bool atoms = true;
    for (const char *p = s; *p != '\0'; p++)
        atoms = atoms && (is_atext(*p) || *p == ' ');
    if (atoms)
        return ag_buf_append_cstr(out, s);
    int rc = ag_buf_append_char(out, '"');
    for (const char *p = s; rc == 0 && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = ag_buf_append_char(out, '\\');
        if (rc == 0)
            rc = ag_buf_append_char(out, *p);
    }
    return rc == 0 ? ag_buf_append_char(out, '"') : rc;
}

/* "Name <addr>" or "addr" after a header name. */
static int
mailbox_header(struct ag_buf *out, const char *header, const char *name, const char *addr)
{
    struct ag_buf clean = AG_BUF_INIT(0);
    notify_text_one_line(name != NULL ? name : "", NOTIFY_NAME_MAX, &clean);
    struct ag_str trimmed = ag_str_trim(ag_str_make(ag_buf_cstr(&clean), clean.len));
    char *n = ag_strndup(trimmed.ptr, trimmed.len);
    ag_buf_release(&clean);
    int rc = ag_buf_appendf(out, "%s: ", header);
    if (rc == 0 && n[0] != '\0') {
        rc = phrase(out, n);
        if (rc == 0)
            rc = ag_buf_appendf(out, " <%s>\r\n", addr);
    } else if (rc == 0) {
        rc = ag_buf_appendf(out, "%s\r\n", addr);
    }
    ag_free(n);
    return rc;
}

static int
subject_header(struct ag_buf *out, const char *subject)
{
    struct ag_buf clean = AG_BUF_INIT(0);
    notify_text_one_line(subject != NULL ? subject : "", NOTIFY_SUBJECT_MAX, &clean);
    const char *s = ag_buf_cstr(&clean);
    int rc = ag_buf_append_cstr(out, "Subject: ");
    if (rc == 0) {
        if (is_plain_ascii(s) && clean.len <= 66 && strstr(s, "=?") == NULL)
            rc = ag_buf_append(out, s, clean.len);
        else
            rc = encoded_words(out, s);
    }
    if (rc == 0)
        rc = ag_buf_append_cstr(out, "\r\n");
    ag_buf_release(&clean);
    return rc;
}

/* Does the body need quoted-printable: 8-bit bytes, controls other than
 * tab, or lines longer than 76 characters? */
static bool
body_needs_qp(const char *body)
{
    size_t col = 0;
    for (const char *p = body; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n' || c == '\r') {
            col = 0;
            continue;
        }
        if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f || ++col > 76)
            return true;
    }
    return false;
}

/* Append the body with CRLF line ends ("\r\n", "\r" and "\n" all end a
 * line), quoted-printable (RFC 2045 6.7) when 'qp'. */
static int
body_append(struct ag_buf *out, const char *body, bool qp)
{
    static const char HEX[] = "0123456789ABCDEF";
    int rc = 0;
    size_t col = 0;
    for (const char *p = body; rc == 0; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c == '\n' || c == '\r') {
            rc = ag_buf_append_cstr(out, "\r\n");
            col = 0;
            if (c == '\0')
                break;
            if (c == '\r' && p[1] == '\n')
                p++;
            if (p[1] == '\0')
                break;
            continue;
        }
        if (!qp) {
            rc = ag_buf_append_char(out, (char)c);
            continue;
        }
        bool last = p[1] == '\0' || p[1] == '\n' || p[1] == '\r';
        char tok[3];
        size_t len;
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
            tok[0] = (char)c;
            len = 1;
        } else {
            tok[0] = '=';
            tok[1] = HEX[c >> 4];
            tok[2] = HEX[c & 15];
            len = 3;
        }
        if (col + len > 75) {
            rc = ag_buf_append_cstr(out, "=\r\n");
            col = 0;
        }
        if (rc == 0)
            rc = ag_buf_append(out, tok, len);
        col += len;
    }
    return rc;
}

void
notify_rfc5322_date(int64_t unix_ms, char out[NOTIFY_DATE_LEN])
{
    static const char *const DAYS[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const MONTHS[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    ag_time_civil_from_days(days, &y, &m, &d);
    int wd = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    snprintf(out, NOTIFY_DATE_LEN, "%s, %02u %s %04lld %02d:%02d:%02d +0000", DAYS[wd], d,
             MONTHS[(m - 1) % 12], (long long)y, (int)(rem / 3600), (int)(rem / 60 % 60),
             (int)(rem % 60));
}

int
notify_mail_build(const struct notify_mail *m, struct ag_buf *out)
{
    if (!notify_email_is_valid(m->from_addr) || !notify_email_is_valid(m->to_addr))
        return AG_EINVAL;
    size_t mark = out->len;
    char date[NOTIFY_DATE_LEN];
    notify_rfc5322_date(m->date_ms, date);
    const char *body = m->body != NULL ? m->body : "";
    bool qp = body_needs_qp(body);
    struct ag_buf type = AG_BUF_INIT(0);
    notify_text_one_line(m->type != NULL ? m->type : "", 128, &type);

    int rc = ag_buf_appendf(out, "Date: %s\r\n", date);
    if (rc == 0)
        rc = mailbox_header(out, "From", m->from_name, m->from_addr);
    if (rc == 0)
        rc = mailbox_header(out, "To", m->to_name, m->to_addr);
    if (rc == 0)
        rc = subject_header(out, m->subject);
    if (rc == 0)
        rc = ag_buf_appendf(out,
                            "Message-ID: %s\r\n"
                            "MIME-Version: 1.0\r\n"
                            "Content-Type: text/plain; charset=utf-8\r\n"
                            "Content-Transfer-Encoding: %s\r\n"
                            "X-Agora-Event: %s\r\n"
                            "\r\n",
                            m->message_id, qp ? "quoted-printable" : "7bit", ag_buf_cstr(&type));
    if (rc == 0)
        rc = body_append(out, body, qp);
    ag_buf_release(&type);
    if (rc != 0) {
        /* Leave 'out' as it was. */
        out->len = mark;
        if (out->data != NULL)
            out->data[mark] = '\0';
    }
    return rc;
}

/* ---- Cursors ---- */

void
notify_cursor_encode(int64_t seq, char out[NOTIFY_CURSOR_LEN])
{
    char raw[24];
    int n = snprintf(raw, sizeof(raw), "s%lld", (long long)seq);
    ag_base64url_encode(raw, (size_t)n, out, NOTIFY_CURSOR_LEN);
}

int
notify_cursor_decode(const char *s, int64_t *out_seq)
{
    char raw[NOTIFY_CURSOR_LEN];
    size_t len = 0;
    if (ag_base64url_decode(s, strlen(s), raw, sizeof(raw), &len) != 0 || len < 2 || raw[0] != 's')
        return AG_EINVAL;
    return ag_str_to_i64(ag_str_make(raw + 1, len - 1), 1, INT64_MAX, out_seq) == 0 ? 0 : AG_EINVAL;
}

/* ---- Representation ---- */

static json_t *
str_or_null(const char *s)
{
    return s != NULL ? ag_json_string_lossy(s, strlen(s)) : json_null();
}

json_t *
notify_record_to_json(const struct notify_record *r, bool admin)
{
    char masked[NOTIFY_MASKED_MAX];
    notify_email_mask(r->recipient, masked, sizeof(masked));
    json_t *o = json_object();
    json_object_set_new(o, "id", str_or_null(r->id));
    json_object_set_new(o, "type", str_or_null(r->type));
    json_object_set_new(o, "channel", str_or_null(r->channel));
    json_object_set_new(o, "recipient", str_or_null(masked));
    json_object_set_new(o, "subject", str_or_null(r->subject));
    json_object_set_new(o, "body", str_or_null(r->body));
    json_object_set_new(o, "status", json_string(notify_status_name(r->status)));
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "created_at", str_or_null(r->created_at));
    json_object_set_new(o, "sent_at", str_or_null(r->sent_at));
    json_object_set_new(o, "event_id", str_or_null(r->event_id));
    json_object_set_new(o, "user_id", str_or_null(r->user_id));
    if (admin) {
        json_object_set_new(o, "last_error", str_or_null(r->last_error));
        if (r->status == NOTIFY_PENDING && r->next_attempt_ms > 0) {
            char at[AG_RFC3339_LEN];
            ag_time_rfc3339(r->next_attempt_ms, at);
            json_object_set_new(o, "next_attempt_at", json_string(at));
        } else {
            json_object_set_new(o, "next_attempt_at", json_null());
        }
    }
    return o;
}
