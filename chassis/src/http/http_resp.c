/* SPDX-License-Identifier: MIT */
/* Responses of the chassis HTTP/1.1 server as bytes: the headers handlers
 * add (ag_http_resp_header), the response head (status line, Date,
 * Content-Type, those headers, Content-Length, Connection), the problem+json
 * bodies the server writes itself, reason phrases and the cached Date value.
 * A leaf: http_server.c and http_conn.c call it, it calls neither. */
#include "agora/base.h"
#include "agora/http_server.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/str.h"
#include "http_server_int.h"

/* ---- Headers added by handlers ---- */

bool
ag__http_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool
ag__http_is_field_value(const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\r' || *v == '\n')
            return false;
    }
    return true;
}

int
ag_http_resp_header(struct ag_http_req *req, const char *name, const char *value)
{
    struct ag_http_sreq *r = req->priv;
    AG_CHECK_MAGIC(r, AG_HTTP_REQ_MAGIC);
    if (r->answered || name == NULL || value == NULL || name[0] == '\0')
        return AG_EINVAL;
    for (const char *p = name; *p != '\0'; p++) {
        if (!ag__http_is_tchar((unsigned char)*p))
            return AG_EINVAL;
    }
    if (!ag__http_is_field_value(value))
        return AG_EINVAL;
    struct ag_str n = ag_str_from_cstr(name);
    if (ag_str_case_eq_cstr(n, "date") || ag_str_case_eq_cstr(n, "content-length") ||
        ag_str_case_eq_cstr(n, "connection") || ag_str_case_eq_cstr(n, "transfer-encoding")) {
        return AG_EINVAL;
    }
    struct ag_http_resp_hdr *h = ag_pool_alloc(req->pool, sizeof(*h));
    size_t nlen = strlen(name);
    size_t vlen = strlen(value);
    h->name = ag_str_make(ag_pool_strndup(req->pool, name, nlen), nlen);
    h->value = ag_str_make(ag_pool_strndup(req->pool, value, vlen), vlen);
    h->next = NULL;
    *r->tail = h;
    r->tail = &h->next;
    r->hdrs_len += nlen + 2 + vlen + 2;
    return 0;
}

/* ---- Response head ---- */

static char *
put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

static char *
put_u64(char *w, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *w++ = tmp[--n];
    return w;
}

unsigned
ag__http_resp_build(struct ag_http_sreq *r, uv_buf_t bufs[2])
{
    struct ag_http_req *req = &r->req;
    int status = req->status;
    const char *reason = ag_http_reason(status);
    size_t rlen = strlen(reason);
    size_t ctlen = r->ctype ? strlen(r->ctype) : 0;
    bool has_body = ag__http_status_has_body(status);
    bool send_body = has_body && req->method != AG_HTTP_HEAD && r->resp_len > 0;
    size_t cap = 16 + rlen + 40 + (ctlen ? 16 + ctlen : 0) + r->hdrs_len + 40 + 28 + 2;
    char *h = ag_pool_alloc(req->pool, cap);
    char *w = put(h, "HTTP/1.1 ", 9);
    *w++ = (char)('0' + status / 100);
    *w++ = (char)('0' + status / 10 % 10);
    *w++ = (char)('0' + status % 10);
    *w++ = ' ';
    w = put(w, reason, rlen);
    w = put(w, "\r\nDate: ", 8);
    w = put(w, ag_http_date_now(), 29);
    w = put(w, "\r\n", 2);
    if (ctlen) {
        w = put(w, "Content-Type: ", 14);
        w = put(w, r->ctype, ctlen);
        w = put(w, "\r\n", 2);
    }
    for (const struct ag_http_resp_hdr *x = r->hdrs; x != NULL; x = x->next) {
        w = put(w, x->name.ptr, x->name.len);
        w = put(w, ": ", 2);
        w = put(w, x->value.ptr, x->value.len);
        w = put(w, "\r\n", 2);
    }
    if (has_body) {
        w = put(w, "Content-Length: ", 16);
        w = put_u64(w, r->resp_len);
        w = put(w, "\r\n", 2);
    }
    if (req->close_after)
        w = put(w, "Connection: close\r\n", 19);
    else if (req->version_minor == 0)
        w = put(w, "Connection: keep-alive\r\n", 24);
    w = put(w, "\r\n", 2);
    bufs[0] = uv_buf_init(h, (unsigned)(w - h));
    req->resp_bytes = send_body ? r->resp_len : 0;
    if (!send_body)
        return 1;
    bufs[1] = uv_buf_init((char *)r->resp_body, (unsigned)r->resp_len);
    return 2;
}

/* ---- Bodies, reasons and dates ---- */

static const char *
problem_slug(int status)
{
    switch (status) {
#define AG__PROBLEM_SLUG(num, slug)                                                                \
    case num: return slug;
        AG_HTTP_PROBLEM_MAP(AG__PROBLEM_SLUG)
#undef AG__PROBLEM_SLUG
    default: return "bad-request";
    }
}

/* Append 's' to 'out' as JSON string content: quotes, backslashes and
 * control characters escaped, bytes outside ASCII replaced by '?' (the
 * server's own strings are ASCII; a hostile path need not be UTF-8). */
static size_t
json_escape_ascii(char *out, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            out[n++] = '?';
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

char *
ag__http_problem_body(struct ag_pool *pool, int status, const char *detail, const char *request_id,
                      struct ag_str instance, size_t *out_len)
{
    size_t dlen = detail ? strlen(detail) : 0;
    char *esc = ag_pool_alloc(pool, 2 * dlen + 1);
    json_escape_ascii(esc, detail ? detail : "", dlen);
    char *inst = ag_pool_alloc(pool, 2 * instance.len + 1);
    json_escape_ascii(inst, instance.ptr ? instance.ptr : "", instance.len);
    char *s = ag_pool_printf(pool,
                             "{\"type\":\"urn:agora:problem:%s\",\"title\":\"%s\",\"status\":%d,"
                             "\"detail\":\"%s\"%s%s%s,\"request_id\":\"%s\"}",
                             problem_slug(status), ag_http_reason(status), status, esc,
                             instance.len ? ",\"instance\":\"" : "", inst, instance.len ? "\"" : "",
                             request_id);
    *out_len = strlen(s);
    return s;
}

const char *
ag_http_method_name(enum ag_http_method m)
{
    switch (m) {
    case AG_HTTP_GET: return "GET";
    case AG_HTTP_HEAD: return "HEAD";
    case AG_HTTP_POST: return "POST";
    case AG_HTTP_PUT: return "PUT";
    case AG_HTTP_PATCH: return "PATCH";
    case AG_HTTP_DELETE: return "DELETE";
    case AG_HTTP_OPTIONS: return "OPTIONS";
    case AG_HTTP_OTHER: break;
    }
    return NULL;
}

const char *
ag_http_reason(int status)
{
    switch (status) {
#define AG__HTTP_REASON(num, name, string)                                                         \
    case num: return #string;
        HTTP_STATUS_MAP(AG__HTTP_REASON)
#undef AG__HTTP_REASON
    default: return "Unknown";
    }
}

const char *
ag_http_date_now(void)
{
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[64];
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct timespec ts;
    /* The coarse clock is read from the vDSO: no system call per request. */
    if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == -1)
        ts.tv_sec = time(NULL);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(cached, sizeof(cached), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (n != 29)
            AG_BUG("unexpected IMF-fixdate length");
        cached_sec = ts.tv_sec;
    }
    return cached;
}
