/* SPDX-License-Identifier: MIT */
/* The gateway's request path: every request the chassis router does not
 * answer itself comes here. An /api/... path (or any path a route names)
 * goes through route match, CORS, body bound, per-client rate limit, bearer
 * token check, role, per-user rate limit, and then the reverse proxy over
 * the shared HTTP client: hop-by-hop headers removed both ways, forwarding
 * headers added, the client's X-Agora-Identity replaced by a signed one, and
 * transport failures mapped to problem+json (503, 504, 502). Anything else
 * is a static file of the web UI. Per request it allocates only from the
 * request pool. */
#include "agora/base.h"
#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/trace.h"

#define MAX_CONN_TOKENS 16
/* printf arguments of a slice that may be empty with a NULL pointer. */
#define SFMT(s)      (int)(s).len, ((s).ptr ? (s).ptr : "")
#define HDR_COPY_MAX 8192

/* What a header is to the proxy. */
enum hdr_flags {
    H_FORWARD = 0,        /* passed on */
    H_HOP = 1 << 0,       /* hop-by-hop (RFC 9110 7.6.1): dropped both ways */
    H_REQ_DROP = 1 << 1,  /* request: dropped, the gateway sets its own */
    H_RESP_DROP = 1 << 2, /* response: dropped, the server sets its own */
};

struct hdr_rule {
    const char *name;
    size_t len;
    unsigned flags;
};

#define RULE(s, f)                                                                                 \
    {                                                                                              \
        s, sizeof(s) - 1, f                                                                        \
    }
static const struct hdr_rule HDR_RULES[] = {
    RULE("Connection", H_HOP),
    RULE("Keep-Alive", H_HOP),
    RULE("Proxy-Connection", H_HOP),
    RULE("TE", H_HOP),
    RULE("Trailer", H_HOP),
    RULE("Transfer-Encoding", H_HOP),
    RULE("Upgrade", H_HOP),
    RULE("Proxy-Authorization", H_HOP),
    RULE("Proxy-Authenticate", H_HOP),
    RULE("Host", H_REQ_DROP),
    RULE("Content-Length", H_REQ_DROP | H_RESP_DROP),
    RULE("Expect", H_REQ_DROP),
    RULE("X-Agora-Identity", H_REQ_DROP),
    RULE("X-Agora-Client", H_REQ_DROP),
    /* The client's credentials end here: services get the signed identity
     * (STYLE: least privilege; a service never sees a bearer token). */
    RULE("Authorization", H_REQ_DROP),
    RULE("Cookie", H_REQ_DROP),
    RULE("X-Request-ID", H_REQ_DROP | H_RESP_DROP),
    RULE("traceparent", H_REQ_DROP),
    RULE("X-Forwarded-For", H_REQ_DROP),
    RULE("X-Forwarded-Proto", H_REQ_DROP),
    RULE("X-Forwarded-Host", H_REQ_DROP),
    RULE("X-Forwarded-Prefix", H_REQ_DROP),
    RULE("Forwarded", H_REQ_DROP),
    RULE("Date", H_RESP_DROP),
    RULE("Content-Type", H_RESP_DROP),
    RULE("traceresponse", H_RESP_DROP),
};
#undef RULE

/* Per-request state, in the request pool. */
struct gw_req {
    struct gw *gw;
    struct ag_http_req *req;
    struct gw_config *cfg; /* referenced until the pool is freed */
    const struct gw_route *route;
    enum gw_role role;
    struct ag_str origin;
    struct ag_str authz;
    int nauthz; /* Authorization headers received */
    struct ag_str xff;
    struct ag_str host;
    struct ag_str xfproto;
    struct ag_str xfhost;
    struct ag_str forwarded;
    struct ag_str acrm; /* Access-Control-Request-Method */
    struct ag_str acrh; /* Access-Control-Request-Headers */
    struct ag_str conn_tokens[MAX_CONN_TOKENS];
    size_t nconn;
    bool cors_ok;
    uint64_t sent_ns;
    const char *user_id; /* copies kept over a fault delay */
    const char *identity;
    unsigned roles;
};

static unsigned
header_flags(struct ag_str name)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(HDR_RULES); i++) {
        if (HDR_RULES[i].len == name.len &&
            ag_str_case_eq(name, ag_str_make(HDR_RULES[i].name, HDR_RULES[i].len)))
            return HDR_RULES[i].flags;
    }
    return H_FORWARD;
}

/* Add the comma-separated tokens of a Connection header value. */
static void
add_conn_tokens(struct ag_str v, struct ag_str *tokens, size_t *n)
{
    size_t i = 0;
    while (i < v.len && *n < MAX_CONN_TOKENS) {
        size_t start = i;
        while (i < v.len && v.ptr[i] != ',')
            i++;
        struct ag_str t = ag_str_trim(ag_str_make(v.ptr + start, i - start));
        if (t.len > 0)
            tokens[(*n)++] = t;
        i++;
    }
}

static bool
is_conn_listed(struct ag_str name, const struct ag_str *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ag_str_case_eq(name, tokens[i]))
            return true;
    }
    return false;
}

static bool
name_is(struct ag_str name, const char *lit, size_t len)
{
    return name.len == len && ag_str_case_eq(name, ag_str_make(lit, len));
}

/* One pass over the request headers: what the gateway reads. */
static void
scan_request(struct gw_req *g)
{
    const struct ag_http_req *req = g->req;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct ag_str n = req->headers[i].name;
        struct ag_str v = req->headers[i].value;
        switch (n.len) {
        case 4:
            if (name_is(n, "Host", 4))
                g->host = v;
            break;
        case 6:
            if (name_is(n, "Origin", 6))
                g->origin = v;
            break;
        case 9:
            if (name_is(n, "Forwarded", 9))
                g->forwarded = v;
            break;
        case 10:
            if (name_is(n, "Connection", 10))
                add_conn_tokens(v, g->conn_tokens, &g->nconn);
            break;
        case 13:
            if (name_is(n, "Authorization", 13)) {
                g->authz = v;
                g->nauthz++;
            }
            break;
        case 15:
            if (name_is(n, "X-Forwarded-For", 15))
                g->xff = v;
            break;
        case 16:
            if (name_is(n, "X-Forwarded-Host", 16))
                g->xfhost = v;
            break;
        case 17:
            if (name_is(n, "X-Forwarded-Proto", 17))
                g->xfproto = v;
            break;
        case 29:
            if (name_is(n, "Access-Control-Request-Method", 29))
                g->acrm = v;
            break;
        case 30:
            if (name_is(n, "Access-Control-Request-Headers", 30))
                g->acrh = v;
            break;
        default: break;
        }
    }
}

static void
config_cleanup(void *arg)
{
    gw_config_unref(arg);
}

/* Is 'path' a "." or ".." segment path (raw or with %2e)? Such paths mean
 * different resources to different parsers, so the gateway refuses them. */
static bool
has_dot_segment(struct ag_str path)
{
    size_t i = 0;
    while (i < path.len) {
        if (path.ptr[i] != '/') {
            i++;
            continue;
        }
        i++;
        size_t dots = 0;
        bool other = false;
        while (i < path.len && path.ptr[i] != '/' && !other) {
            if (path.ptr[i] == '.') {
                dots++;
                i++;
            } else if (path.ptr[i] == '%' && i + 2 < path.len && path.ptr[i + 1] == '2' &&
                       (path.ptr[i + 2] == 'e' || path.ptr[i + 2] == 'E')) {
                dots++;
                i += 3;
            } else {
                other = true;
            }
        }
        if (!other && (dots == 1 || dots == 2))
            return true;
    }
    return false;
}

/* ---- Responses of the gateway itself ---- */

/* The method to send upstream: the client's token as it came. */
static const char *
method_cstr(const struct ag_http_req *req)
{
    const char *name = ag_http_method_name(req->method);
    if (name != NULL)
        return name;
    return ag_pool_strndup(req->pool, req->method_name.ptr, req->method_name.len);
}

static void
auth_failure(struct gw_req *g, const char *reason)
{
    const char *labels[] = { reason };
    ag_counter_add(g->gw->m_auth_failures, labels, 1);
}

static void
send_ratelimited(struct gw_req *g, const struct gw_rate_result *rr, const char *who)
{
    struct ag_http_req *req = g->req;
    const char *labels[] = { g->route->prefix };
    ag_counter_add(g->gw->m_ratelimited, labels, 1);
    char v[24];
    snprintf(v, sizeof(v), "%llu", (unsigned long long)rr->retry_after);
    ag_http_resp_header(req, "Retry-After", v);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)rr->limit);
    ag_http_resp_header(req, "RateLimit-Limit", v);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)rr->remaining);
    ag_http_resp_header(req, "RateLimit-Remaining", v);
    snprintf(v, sizeof(v), "%llu", (unsigned long long)rr->reset_s);
    ag_http_resp_header(req, "RateLimit-Reset", v);
    ag_send_problem(req, 429, "rate-limited", "Too Many Requests",
                    "the %s rate limit of this route is exhausted; retry after %llu s", who,
                    (unsigned long long)rr->retry_after);
}

/* Take a token from the bucket of ('route', 'kind', 'id'). */
static bool
rate_check(struct gw_req *g, const struct gw_rate *rate, char kind, const char *id, size_t idlen)
{
    char key[GW_RL_KEY_MAX];
    size_t plen = g->route->prefix_len;
    if (plen + 3 + idlen > sizeof(key))
        return true;
    memcpy(key, g->route->prefix, plen);
    key[plen] = '\x1f';
    key[plen + 1] = kind;
    key[plen + 2] = '\x1f';
    memcpy(key + plen + 3, id, idlen);
    struct gw_rate_result rr;
    gw_ratelimit_take(g->gw->rl, ag_str_make(key, plen + 3 + idlen), rate, ag_time_mono_ns(), &rr);
    if (!rr.allowed)
        send_ratelimited(g, &rr, kind == 'c' ? "per-client" : "per-user");
    return rr.allowed;
}

/* The client address the per-client limit counts: the socket peer, or, when
 * AGORA_GATEWAY_TRUST_FORWARDED is set, the last X-Forwarded-For entry (the
 * address the trusted proxy in front of us saw). */
static struct ag_str
client_addr(const struct gw_req *g)
{
    if (g->gw->settings.trust_forwarded && g->xff.len > 0) {
        const char *comma = NULL;
        for (size_t i = g->xff.len; i > 0; i--) {
            if (g->xff.ptr[i - 1] == ',') {
                comma = g->xff.ptr + i - 1;
                break;
            }
        }
        struct ag_str last =
            comma ? ag_str_make(comma + 1, (size_t)(g->xff.ptr + g->xff.len - comma - 1)) : g->xff;
        last = ag_str_trim(last);
        if (last.len > 0 && last.len <= 64)
            return last;
    }
    return ag_str_from_cstr(g->req->remote_addr ? g->req->remote_addr : "");
}

/* The signed X-Agora-Client value for this request's client, from the
 * cache or signed now; NULL for an address the header cannot carry. */
#define CLIENT_SIG_TTL_S    300
#define CLIENT_SIG_RESIGN_S 60
static const char *
client_header(struct gw_req *g)
{
    struct ag_str a = client_addr(g);
    if (a.len == 0 || a.len >= AG_CLIENT_ADDRLEN)
        return NULL;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < a.len; i++)
        h = (h ^ (unsigned char)a.ptr[i]) * 1099511628211ull;
    struct gw_client_sig *e = &g->gw->client_sigs[h % GW_CLIENT_CACHE];
    int64_t now = ag_time_unix_ms() / 1000;
    if (e->exp - now >= CLIENT_SIG_RESIGN_S && strlen(e->addr) == a.len &&
        memcmp(e->addr, a.ptr, a.len) == 0)
        return e->value;
    char addr[AG_CLIENT_ADDRLEN];
    memcpy(addr, a.ptr, a.len);
    addr[a.len] = '\0';
    if (ag_identity_client_sign(g->gw->identity_key, addr, now + CLIENT_SIG_TTL_S, e->value) != 0) {
        e->exp = 0;
        e->addr[0] = '\0';
        return NULL;
    }
    memcpy(e->addr, addr, a.len + 1);
    e->exp = now + CLIENT_SIG_TTL_S;
    return e->value;
}

/* ---- CORS ---- */

static bool
origin_allowed(const struct gw_cors *c, struct ag_str origin)
{
    if (c->any_origin)
        return true;
    for (size_t i = 0; i < c->norigins; i++) {
        if (ag_str_eq_cstr(origin, c->origins[i]))
            return true;
    }
    return false;
}

/* Is 'm' one of the comma-separated methods in 'list'? */
static bool
list_has(const char *list, struct ag_str m)
{
    struct ag_str l = ag_str_from_cstr(list);
    size_t i = 0;
    while (i < l.len) {
        size_t start = i;
        while (i < l.len && l.ptr[i] != ',')
            i++;
        if (ag_str_eq(ag_str_trim(ag_str_make(l.ptr + start, i - start)), m))
            return true;
        i++;
    }
    return false;
}

static void
set_allow_origin(struct gw_req *g)
{
    const struct gw_cors *c = &g->cfg->cors;
    if (c->any_origin && !c->allow_credentials) {
        ag_http_resp_header(g->req, "Access-Control-Allow-Origin", "*");
    } else {
        char *o = ag_pool_strndup(g->req->pool, g->origin.ptr, g->origin.len);
        ag_http_resp_header(g->req, "Access-Control-Allow-Origin", o);
    }
    if (c->allow_credentials)
        ag_http_resp_header(g->req, "Access-Control-Allow-Credentials", "true");
}

static void
preflight(struct gw_req *g)
{
    const struct gw_cors *c = &g->cfg->cors;
    struct ag_http_req *req = g->req;
    ag_http_resp_header(req, "Vary", "Origin");
    if (!g->cors_ok) {
        ag_send_problem(req, 403, "cors-denied", "Forbidden",
                        "origin not allowed by the gateway's CORS policy");
        return;
    }
    if (!list_has(c->allow_methods, ag_str_trim(g->acrm))) {
        ag_send_problem(req, 403, "cors-denied", "Forbidden",
                        "method not allowed by the gateway's CORS policy");
        return;
    }
    set_allow_origin(g);
    ag_http_resp_header(req, "Access-Control-Allow-Methods", c->allow_methods);
    if (c->allow_headers != NULL) {
        ag_http_resp_header(req, "Access-Control-Allow-Headers", c->allow_headers);
    } else if (g->acrh.len > 0) {
        char *h = ag_pool_strndup(req->pool, g->acrh.ptr, g->acrh.len);
        ag_http_resp_header(req, "Access-Control-Allow-Headers", h);
    }
    if (c->max_age[0] != '\0')
        ag_http_resp_header(req, "Access-Control-Max-Age", c->max_age);
    ag_http_send(req, 204, NULL, NULL, 0);
}

/* ---- Upstream response ---- */

static const char *
outcome_of(const struct ag_http_client_response *resp)
{
    switch (resp->err) {
    case 0: break;
    case AG_ETIMEDOUT: return "timeout";
    case AG_EUNAVAIL: return "unavailable";
    case AG_ETOOBIG: return "too_big";
    case AG_ECLOSED: return "closed";
    default: return "error";
    }
    if (resp->status >= 500)
        return "5xx";
    if (resp->status >= 400)
        return "4xx";
    if (resp->status >= 300)
        return "3xx";
    return "2xx";
}

static void
send_upstream_error(struct gw_req *g, const struct ag_http_client_response *resp)
{
    struct ag_http_req *req = g->req;
    const char *svc = g->route->service;
    switch (resp->err) {
    case AG_EUNAVAIL:
    case AG_ECLOSED: {
        bool open = ag_http_client_breaker(g->gw->client, svc) == AG_BREAKER_OPEN;
        char ra[24];
        uint64_t secs = open ? (g->gw->settings.breaker_open_ms + 999) / 1000 : 1;
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)(secs ? secs : 1));
        ag_http_resp_header(req, "Retry-After", ra);
        ag_send_problem(req, 503, "upstream-unavailable", "Service Unavailable",
                        "service '%s' is unavailable (%s)", svc,
                        resp->err == AG_ECLOSED ? "gateway shutting down"
                        : open                  ? "circuit open"
                                                : "no healthy instance");
        return;
    }
    case AG_ETIMEDOUT:
        ag_send_problem(req, 504, "upstream-timeout", "Gateway Timeout",
                        "service '%s' did not answer in time", svc);
        return;
    case AG_ETOOBIG:
        ag_send_problem(req, 502, "upstream-response-too-large", "Bad Gateway",
                        "the response of service '%s' is too large", svc);
        return;
    default:
        ag_send_problem(req, 502, "upstream-failed", "Bad Gateway", "service '%s' failed: %s", svc,
                        ag_strerror(resp->err));
        return;
    }
}

/* Copy a header slice to a NUL-terminated string: the stack buffer when it
 * fits, else the request pool. */
static const char *
cstr(struct ag_pool *pool, struct ag_str s, char *buf, size_t buflen)
{
    if (s.len < buflen) {
        memcpy(buf, s.ptr, s.len);
        buf[s.len] = '\0';
        return buf;
    }
    return ag_pool_strndup(pool, s.ptr, s.len);
}

/* The service's Allow list without the methods the route denies (a
 * method a client cannot use through the gateway is not offered to it). */
static const char *
allow_routed(const struct gw_route *rt, struct ag_str allow, char *out, size_t cap)
{
    static const struct {
        const char *name;
        enum gw_method m;
    } names[] = {
        { "GET", GW_M_GET },         { "HEAD", GW_M_HEAD },   { "POST", GW_M_POST },
        { "PUT", GW_M_PUT },         { "PATCH", GW_M_PATCH }, { "DELETE", GW_M_DELETE },
        { "OPTIONS", GW_M_OPTIONS },
    };
    size_t len = 0;
    out[0] = '\0';
    size_t i = 0;
    while (i < allow.len) {
        size_t j = i;
        while (j < allow.len && allow.ptr[j] != ',')
            j++;
        struct ag_str tok = ag_str_trim(ag_str_make(allow.ptr + i, j - i));
        i = j + 1;
        if (tok.len == 0)
            continue;
        enum gw_method m = GW_M_OTHER;
        for (size_t k = 0; k < AG_ARRAY_SIZE(names); k++) {
            if (ag_str_eq_cstr(tok, names[k].name))
                m = names[k].m;
        }
        if (rt->roles[m] == GW_ROLE_DENY)
            continue;
        int w = snprintf(out + len, cap - len, "%s%.*s", len ? ", " : "", AG_STR_FMT(tok));
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    return out;
}

static void
on_upstream(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct gw_req *g = udata;
    struct ag_http_req *req = g->req;
    struct gw *gw = g->gw;
    const char *svc = g->route->service;
    const char *olabels[] = { svc, outcome_of(resp) };
    ag_counter_add(gw->m_upstream_requests, olabels, 1);
    const char *dlabels[] = { svc };
    uint64_t dur_ns = ag_time_mono_ns() - g->sent_ns;
    ag_histogram_observe(gw->m_upstream_duration, dlabels, (double)dur_ns / 1e9);
    gw_stats_record(gw, svc, resp->err != 0 || resp->status >= 500, dur_ns);
    if (resp->err != 0) {
        send_upstream_error(g, resp);
        return;
    }

    struct ag_str tokens[MAX_CONN_TOKENS];
    size_t ntokens = 0;
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (name_is(resp->headers[i].name, "Connection", 10))
            add_conn_tokens(resp->headers[i].value, tokens, &ntokens);
    }
    bool strip_cors = g->cfg->cors.enabled && g->origin.len > 0;
    const char *ctype = NULL;
    char ctbuf[256];
    struct ag_str clen = AG_STR_NULL;
    char nbuf[256];
    char vbuf[HDR_COPY_MAX];
    for (size_t i = 0; i < resp->nheaders; i++) {
        struct ag_str n = resp->headers[i].name;
        struct ag_str v = resp->headers[i].value;
        unsigned f = header_flags(n);
        if (f & (H_HOP | H_RESP_DROP)) {
            if (name_is(n, "Content-Type", 12))
                ctype = cstr(req->pool, v, ctbuf, sizeof(ctbuf));
            else if (name_is(n, "Content-Length", 14))
                clen = v;
            continue;
        }
        if (ntokens > 0 && is_conn_listed(n, tokens, ntokens))
            continue;
        if (strip_cors && n.len > 15 && ag_str_has_prefix(n, "Access-Control-"))
            continue;
        if (n.len >= sizeof(nbuf))
            continue;
        if (name_is(n, "Allow", 5)) {
            /* Only the methods this route lets through. */
            ag_http_resp_header(req, "Allow", allow_routed(g->route, v, vbuf, sizeof(vbuf)));
            continue;
        }
        ag_http_resp_header(req, cstr(req->pool, n, nbuf, sizeof(nbuf)),
                            cstr(req->pool, v, vbuf, sizeof(vbuf)));
    }
    if (req->method == AG_HTTP_HEAD) {
        /* A HEAD response has no body but announces the length of the GET
         * one; ag_http_send never reads the body of a HEAD response and
         * writes 'len' as its Content-Length. */
        uint64_t n = 0;
        if (clen.len > 0 && ag_str_to_u64(clen, (uint64_t)1 << 40, &n) != 0)
            n = 0;
        ag_http_send(req, resp->status, ctype, NULL, (size_t)n);
        return;
    }
    ag_http_send(req, resp->status, ctype, resp->body.ptr, resp->body.len);
}

/* ---- Forwarding ---- */

/* Span ids and fault rolls need to be unpredictable enough, not secret: a
 * splitmix64 sequence seeded once from the system's random source costs no
 * system call per request. */

static uint64_t
next_random(void)
{
    static uint64_t state;
    if (state == 0) {
        randombytes_buf(&state, sizeof(state));
        state |= 1;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct hdr_list {
    struct ag_http_client_header *h;
    size_t n;
    size_t cap;
};

static void
hdr_add(struct hdr_list *l, const char *name, const char *value)
{
    if (l->n < l->cap) {
        l->h[l->n].name = name;
        l->h[l->n].value = value;
        l->n++;
    }
}

/* Is 'addr' an IPv6 literal (needs brackets and quotes in Forwarded)? */
static bool
is_ipv6(const char *addr)
{
    return strchr(addr, ':') != NULL;
}

static void
forward(struct gw_req *g, const struct gw_principal *who)
{
    struct ag_http_req *req = g->req;
    struct gw *gw = g->gw;
    const struct gw_route *rt = g->route;
    struct ag_pool *pool = req->pool;

    /* Upstream target: the rewrite replaces the prefix; the query stays. */
    struct ag_str rest =
        ag_str_make(req->path.ptr + rt->prefix_len, req->path.len - rt->prefix_len);
    const char *base = rt->rewrite ? rt->rewrite : rt->prefix;
    size_t blen = rt->rewrite ? rt->rewrite_len : rt->prefix_len;
    if (rest.len > 0 && blen == 1 && base[0] == '/')
        blen = 0; /* "/" + "/x" must not become "//x" */
    size_t ulen = blen + rest.len + (req->query.len ? 1 + req->query.len : 0);
    char *url = ag_pool_alloc(pool, ulen + 2);
    char *w = url;
    memcpy(w, base, blen);
    w += blen;
    memcpy(w, rest.ptr, rest.len);
    w += rest.len;
    if (w == url)
        *w++ = '/';
    if (req->query.len) {
        *w++ = '?';
        memcpy(w, req->query.ptr, req->query.len);
        w += req->query.len;
    }
    *w = '\0';

    struct hdr_list hl = { ag_pool_alloc(pool, (req->nheaders + 6) * sizeof(*hl.h)), 0,
                           req->nheaders + 6 };
    for (size_t i = 0; i < req->nheaders; i++) {
        struct ag_str n = req->headers[i].name;
        if (header_flags(n) & (H_HOP | H_REQ_DROP))
            continue;
        if (g->nconn > 0 && is_conn_listed(n, g->conn_tokens, g->nconn))
            continue;
        struct ag_str v = req->headers[i].value;
        hdr_add(&hl, ag_pool_strndup(pool, n.ptr, n.len), ag_pool_strndup(pool, v.ptr, v.len));
    }

    /* Forwarding headers (RFC 7239 and the de facto X-Forwarded-*). */
    const char *addr = req->remote_addr ? req->remote_addr : "";
    bool trust = gw->settings.trust_forwarded;
    if (g->xff.len > 0)
        hdr_add(&hl, "X-Forwarded-For", ag_pool_printf(pool, "%.*s, %s", SFMT(g->xff), addr));
    else
        hdr_add(&hl, "X-Forwarded-For", addr);
    if (trust && g->xfproto.len > 0)
        hdr_add(&hl, "X-Forwarded-Proto", ag_pool_strndup(pool, g->xfproto.ptr, g->xfproto.len));
    else
        hdr_add(&hl, "X-Forwarded-Proto", "http");
    struct ag_str fhost = trust && g->xfhost.len > 0 ? g->xfhost : g->host;
    if (fhost.len > 0)
        hdr_add(&hl, "X-Forwarded-Host", ag_pool_strndup(pool, fhost.ptr, fhost.len));
    const char *fwd_for = is_ipv6(addr) ? ag_pool_printf(pool, "\"[%s]\"", addr) : addr;
    /* A Host that would break out of the quoted-string is left out. */
    struct ag_str fh = g->host;
    if (memchr(fh.ptr ? fh.ptr : "", '"', fh.len) != NULL ||
        memchr(fh.ptr ? fh.ptr : "", '\\', fh.len) != NULL)
        fh = AG_STR_NULL;
    char *fwd = ag_pool_printf(pool, "%.*s%sfor=%s;proto=http%s%.*s%s", SFMT(g->forwarded),
                               g->forwarded.len ? ", " : "", fwd_for, fh.len ? ";host=\"" : "",
                               SFMT(fh), fh.len ? "\"" : "");
    hdr_add(&hl, "Forwarded", fwd);
    /* The part of the public path the rewrite removed ("/api" for
     * "/api/v1/orders" -> "/v1/orders"), so a service's problem+json names
     * the path the client asked for in "instance". */
    if (rt->rewrite != NULL && rt->prefix_len > rt->rewrite_len &&
        memcmp(rt->prefix + rt->prefix_len - rt->rewrite_len, rt->rewrite, rt->rewrite_len) == 0)
        hdr_add(&hl, "X-Forwarded-Prefix",
                ag_pool_strndup(pool, rt->prefix, rt->prefix_len - rt->rewrite_len));
    if (who != NULL)
        hdr_add(&hl, AG_IDENTITY_HEADER, who->identity);
    const char *client = client_header(g);
    if (client != NULL)
        hdr_add(&hl, AG_CLIENT_HEADER, client);

    /* Trace context: the upstream's span is a child of this request's
     * server span. */
    char *tp = ag_pool_alloc(pool, AG_TRACEPARENT_LEN + 1);
    ag_req_traceparent(req, tp);

    struct ag_http_client_request r = {
        .method = method_cstr(req),
        .upstream = rt->service,
        .url = url,
        .headers = hl.h,
        .nheaders = hl.n,
        .body = req->body.ptr,
        .body_len = req->body.len,
        .timeout_ms = rt->timeout_ms,
        .max_retries = rt->retries,
        .request_id = ag_req_id(req),
        .traceparent = tp,
    };
    g->sent_ns = ag_time_mono_ns();
    int rc = gw->client != NULL ? ag_http_client_send(gw->client, &r, on_upstream, g) : AG_ECLOSED;
    if (rc != 0) {
        struct ag_http_client_response fake = { .err = rc == AG_ECLOSED ? AG_ECLOSED : AG_EIO };
        const char *olabels[] = { rt->service, outcome_of(&fake) };
        ag_counter_add(gw->m_upstream_requests, olabels, 1);
        send_upstream_error(g, &fake);
    }
}

/* ---- Fault injection ---- */

struct fault_timer {
    uv_timer_t timer;
    struct gw_req *g;
};

static void
on_fault_timer_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

static void
on_fault_delay(uv_timer_t *t)
{
    struct fault_timer *ft = t->data;
    struct gw_req *g = ft->g;
    uv_close((uv_handle_t *)t, on_fault_timer_closed);
    struct gw_principal who = { g->user_id, g->roles, g->identity };
    forward(g, g->identity != NULL ? &who : NULL);
}

/* A number in [0, 100). */
static double
roll_percent(void)
{
    return (double)(next_random() >> 11) * 0x1.0p-53 * 100.0;
}

static void
count_fault(struct gw_req *g, const char *kind)
{
    const char *labels[] = { g->route->prefix, kind };
    ag_counter_add(g->gw->m_faults, labels, 1);
}

/* Apply the route's fault injection, then forward. */
static void
inject_or_forward(struct gw_req *g, const struct gw_principal *who)
{
    const struct gw_fault *f = &g->route->fault;
    if (f->abort_percent > 0 && roll_percent() < f->abort_percent) {
        count_fault(g, "abort");
        ag_send_problem(g->req, f->abort_status, "fault-injected", ag_http_reason(f->abort_status),
                        "fault injected by the gateway (route %s)", g->route->prefix);
        return;
    }
    if (f->delay_percent > 0 && f->delay_ms > 0 && roll_percent() < f->delay_percent) {
        count_fault(g, "delay");
        struct ag_pool *pool = g->req->pool;
        if (who != NULL) {
            /* The cache entry may be gone by the time the delay ends. */
            g->user_id = ag_pool_strdup(pool, who->user_id);
            g->identity = ag_pool_strdup(pool, who->identity);
            g->roles = who->roles;
        }
        struct fault_timer *ft = ag_calloc(1, sizeof(*ft));
        ft->g = g;
        uv_timer_init(g->gw->loop, &ft->timer);
        ft->timer.data = ft;
        uv_timer_start(&ft->timer, on_fault_delay, f->delay_ms, 0);
        return;
    }
    forward(g, who);
}

/* ---- Authentication and roles ---- */

static void
send_unauthorized(struct gw_req *g, bool invalid, const char *detail)
{
    ag_http_resp_header(g->req, "WWW-Authenticate",
                        invalid ? "Bearer realm=\"agora\", error=\"invalid_token\""
                                : "Bearer realm=\"agora\"");
    ag_send_error(g->req, AG_EAUTH, "%s", detail);
}

static void
after_auth(struct ag_http_req *req, enum gw_auth_status st, const struct gw_principal *who,
           void *udata)
{
    AG_UNUSED(req);
    struct gw_req *g = udata;
    switch (st) {
    case GW_AUTH_OK: break;
    case GW_AUTH_EXPIRED:
        auth_failure(g, "expired");
        send_unauthorized(g, true, "the access token has expired or is not valid yet");
        return;
    case GW_AUTH_UNKNOWN_KID:
        auth_failure(g, "unknown_kid");
        send_unauthorized(g, true, "the access token is signed with an unknown key");
        return;
    case GW_AUTH_UNAVAILABLE:
        auth_failure(g, "keys_unavailable");
        ag_http_resp_header(g->req, "Retry-After", "5");
        ag_send_problem(g->req, 503, "auth-unavailable", "Service Unavailable",
                        "cannot verify access tokens now: the signing keys are unavailable");
        return;
    case GW_AUTH_REVOKED:
        auth_failure(g, "revoked");
        send_unauthorized(g, true, "the access token has been revoked");
        return;
    case GW_AUTH_RESTORING:
        auth_failure(g, "revocations_unavailable");
        ag_http_resp_header(g->req, "Retry-After", "1");
        ag_send_problem(g->req, 503, "auth-unavailable", "Service Unavailable",
                        "cannot verify access tokens now: the list of revoked tokens is being "
                        "loaded");
        return;
    case GW_AUTH_INVALID:
    default:
        auth_failure(g, "invalid");
        send_unauthorized(g, true, "the access token is invalid");
        return;
    }
    if (g->role == GW_ROLE_ADMIN && who != NULL && (who->roles & AG_IDENTITY_ADMIN) == 0) {
        auth_failure(g, "forbidden");
        ag_send_error(g->req, AG_EFORBIDDEN, "this resource needs the admin role");
        return;
    }
    if (g->role == GW_ROLE_CUSTOMER && who != NULL &&
        (who->roles & (AG_IDENTITY_CUSTOMER | AG_IDENTITY_ADMIN)) == 0) {
        auth_failure(g, "forbidden");
        ag_send_error(g->req, AG_EFORBIDDEN, "this resource needs the customer role");
        return;
    }
    if (who != NULL && g->route->per_user.rate > 0 &&
        !rate_check(g, &g->route->per_user, 'u', who->user_id, strlen(who->user_id)))
        return;
    inject_or_forward(g, who);
}

/* The token of "Authorization: Bearer <token>", or an empty slice. */
static struct ag_str
bearer_token(struct ag_str authz)
{
    if (authz.len < 7 || !ag_str_case_eq(ag_str_make(authz.ptr, 6), AG_STR_LIT("Bearer")) ||
        (authz.ptr[6] != ' ' && authz.ptr[6] != '\t'))
        return AG_STR_NULL;
    return ag_str_trim(ag_str_make(authz.ptr + 7, authz.len - 7));
}

static void
proxy(struct gw *gw, struct ag_http_req *req, struct gw_config *cfg, const struct gw_route *rt)
{
    struct gw_req *g = ag_pool_calloc(req->pool, sizeof(*g));
    g->gw = gw;
    g->req = req;
    g->cfg = gw_config_ref(cfg);
    ag_pool_cleanup_add(req->pool, config_cleanup, g->cfg);
    g->route = rt;
    req->route_id = rt->prefix;
    scan_request(g);

    if (cfg->cors.enabled && g->origin.len > 0) {
        g->cors_ok = origin_allowed(&cfg->cors, g->origin);
        if (req->method == AG_HTTP_OPTIONS && g->acrm.len > 0) {
            preflight(g);
            return;
        }
        ag_http_resp_header(req, "Vary", "Origin");
        if (g->cors_ok) {
            set_allow_origin(g);
            if (cfg->cors.expose_headers != NULL)
                ag_http_resp_header(req, "Access-Control-Expose-Headers", cfg->cors.expose_headers);
        }
    }
    if (has_dot_segment(req->path)) {
        ag_send_problem(req, 400, "bad-path", "Bad Request", "the path has a '.' or '..' segment");
        return;
    }
    g->role = rt->roles[gw_method_index(req->method)];
    if (g->role == GW_ROLE_DENY) {
        ag_send_error(req, AG_ENOENT, "no resource at this path");
        return;
    }
    if (req->body.len > rt->max_body) {
        ag_send_error(req, AG_ETOOBIG, "the request body exceeds %llu bytes",
                      (unsigned long long)rt->max_body);
        return;
    }
    if (rt->per_client.rate > 0) {
        struct ag_str a = client_addr(g);
        if (!rate_check(g, &rt->per_client, 'c', a.ptr, a.len))
            return;
    }
    if (g->nauthz > 1) {
        /* Which one would a service behind us read? None: refuse. */
        auth_failure(g, "invalid");
        ag_send_problem(req, 400, "bad-authorization", "Bad Request",
                        "more than one Authorization header");
        return;
    }
    struct ag_str token = bearer_token(g->authz);
    if (token.len > 0 ||
        (g->authz.len > 0 && ag_str_case_eq_cstr(ag_str_trim(g->authz), "Bearer"))) {
        /* Answers now, or later once the key set has been refetched. */
        gw_auth_check(gw->auth, req, token, after_auth, g);
        return;
    }
    if (g->role != GW_ROLE_PUBLIC) {
        auth_failure(g, "missing");
        send_unauthorized(g, false, "this resource needs a bearer token");
        return;
    }
    inject_or_forward(g, NULL);
}

/* ---- Admin views answered by the gateway itself ---- */

static void
after_admin_auth(struct ag_http_req *req, enum gw_auth_status st, const struct gw_principal *who,
                 void *udata)
{
    struct gw *gw = udata;
    if (st == GW_AUTH_UNAVAILABLE || st == GW_AUTH_RESTORING) {
        ag_http_resp_header(req, "Retry-After", "5");
        ag_send_problem(req, 503, "auth-unavailable", "Service Unavailable",
                        "cannot verify access tokens now: the signing keys are unavailable");
        return;
    }
    if (st != GW_AUTH_OK || who == NULL) {
        const char *reasons[] = { "invalid" };
        ag_counter_add(gw->m_auth_failures, reasons, 1);
        ag_http_resp_header(req, "WWW-Authenticate",
                            "Bearer realm=\"agora\", error=\"invalid_token\"");
        ag_send_error(req, AG_EAUTH, "the access token is invalid or has expired");
        return;
    }
    if ((who->roles & AG_IDENTITY_ADMIN) == 0) {
        const char *reasons[] = { "forbidden" };
        ag_counter_add(gw->m_auth_failures, reasons, 1);
        ag_send_error(req, AG_EFORBIDDEN, "this resource needs the admin role");
        return;
    }
    gw_admin_services(gw, req);
}

/* GET /api/v1/admin/services: a bearer token with the admin role. */
static void
admin_services(struct gw *gw, struct ag_http_req *req)
{
    req->route_id = "/api/v1/admin/services";
    if (req->method != AG_HTTP_GET && req->method != AG_HTTP_HEAD) {
        ag_http_resp_header(req, "Allow", "GET, HEAD");
        ag_send_error(req, AG_EMETHOD, "this resource answers GET and HEAD only");
        return;
    }
    struct ag_str token = bearer_token(ag_http_req_header(req, "Authorization"));
    if (token.len == 0) {
        const char *reasons[] = { "missing" };
        ag_counter_add(gw->m_auth_failures, reasons, 1);
        ag_http_resp_header(req, "WWW-Authenticate", "Bearer realm=\"agora\"");
        ag_send_error(req, AG_EAUTH, "this resource needs a bearer token");
        return;
    }
    gw_auth_check(gw->auth, req, token, after_admin_auth, gw);
}

static bool
is_api_path(struct ag_str path)
{
    return ag_str_eq_cstr(path, "/api") || ag_str_has_prefix(path, "/api/");
}

void
gw_dispatch(struct ag_http_req *req, void *udata)
{
    struct gw *gw = udata;
    struct gw_config *cfg = gw->config;
    if (ag_str_eq_cstr(req->path, "/api/v1/admin/services")) {
        admin_services(gw, req);
        return;
    }
    const struct gw_route *rt = cfg ? gw_config_match(cfg, req->path) : NULL;
    if (rt != NULL) {
        proxy(gw, req, cfg, rt);
        return;
    }
    if (is_api_path(req->path)) {
        req->route_id = "unmatched";
        ag_send_error(req, AG_ENOENT, "no route for this path");
        return;
    }
    req->route_id = "static";
    if (req->method != AG_HTTP_GET && req->method != AG_HTTP_HEAD) {
        ag_http_resp_header(req, "Allow", "GET, HEAD");
        ag_send_error(req, AG_EMETHOD, "static files answer GET and HEAD only");
        return;
    }
    gw_static_serve(gw->web, req);
}
