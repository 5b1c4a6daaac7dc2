/* SPDX-License-Identifier: MIT */
/* HTTP client (http_client.h): calls on the service's libuv loop over our
 * own HTTP/1.1 transport (http_transport.c: pooled keep-alive connections,
 * http-parser), with deadlines, retries with full-jitter backoff under a
 * retry budget, a circuit breaker per upstream and round robin with outlier
 * ejection (the pure logic is in breaker.c). Design: docs/internals/http_client.md. */
#include "agora/base.h"
#include "agora/http_client.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "agora/backoff.h"
#include "agora/buf.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/metrics.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "http_client_int.h"

/* ---- Defaults and fixed tunables ---- */

#define HC_DEF_HOST_CONNS        64
#define HC_DEF_TOTAL_CONNS       512
#define HC_DEF_CONNECT_MS        1000
#define HC_DEF_TIMEOUT_MS        5000
#define HC_DEF_MAX_RESPONSE      (8u * 1024 * 1024)
#define HC_DEF_RETRIES           2
#define HC_REFUSED_RETRIES       3 /* retries of a refused connect, whatever the method */
#define HC_DEF_BACKOFF_BASE_MS   20
#define HC_DEF_BACKOFF_MAX_MS    1000
#define HC_DEF_BUDGET_RATIO      0.2
#define HC_DEF_BUDGET_MIN        10
#define HC_DEF_BREAKER_WINDOW_MS 10000
#define HC_DEF_BREAKER_MIN_CALLS 20
#define HC_DEF_BREAKER_FAIL_PCT  50
#define HC_DEF_BREAKER_SLOW_MS   2000
#define HC_DEF_BREAKER_SLOW_PCT  100
#define HC_DEF_BREAKER_OPEN_MS   5000
#define HC_DEF_BREAKER_PROBES    1
#define HC_DEF_EJECT_FAILS       3
#define HC_DEF_EJECT_MS          10000
#define HC_DEF_MAX_EJECTED_PCT   50

#define HC_MAX_HEADER_BYTES (64 * 1024) /* response head kept per call */
#define HC_MAX_REQ_HEAD     (64 * 1024) /* request line and headers */
/* First sizes of a call's buffers: most heads fit, so each buffer is one
 * allocation instead of a chain of doublings from 64 bytes (bench/gateway:
 * 18 mallocs per proxied request before, most of them these). */
#define HC_HEAD_OUT_FIRST   1024 /* request header lines */
#define HC_HEAD_IN_FIRST    1024 /* response head */
#define HC_HDRS_ON_STACK    32   /* response headers handed over without an allocation */
#define HC_TIMEOUT_SLACK_MS 10   /* a connect timeout this close to the deadline is the deadline */
#define HC_USER_AGENT       "agora-http-client/1"

#define HC_CLIENT_MAGIC 0x48434c49u /* "HCLI" */
#define HC_CALL_MAGIC   0x4843414cu /* "HCAL" */

#define HC_LOG "http_client"

/* Outcomes of a call, the values of the 'outcome' label. */
#define HC_OUTCOME_MAP(X)                                                                          \
    X(2XX, "2xx")                                                                                  \
    X(3XX, "3xx")                                                                                  \
    X(4XX, "4xx")                                                                                  \
    X(5XX, "5xx")                                                                                  \
    X(TIMEOUT, "timeout")                                                                          \
    X(UNAVAILABLE, "unavailable")                                                                  \
    X(ERROR, "error")                                                                              \
    X(TOO_BIG, "too_big")                                                                          \
    X(CANCELLED, "cancelled")

enum hc_outcome {
#define HC__OUTCOME_ENUM(name, label) HC_OUTCOME_##name,
    HC_OUTCOME_MAP(HC__OUTCOME_ENUM)
#undef HC__OUTCOME_ENUM
};

static const char *const hc_outcome_labels[] = {
#define HC__OUTCOME_LABEL(name, label) label,
    HC_OUTCOME_MAP(HC__OUTCOME_LABEL)
#undef HC__OUTCOME_LABEL
};

/* ---- Types ---- */

struct hc_upstream {
    struct hc_upstream *next;
    char *name;                     /* upstream name, or "host:port" */
    bool direct;                    /* created for absolute URLs */
    struct ag__hc_instance **insts; /* 'n' referenced instances */
    size_t n;
    size_t rr; /* round-robin position */
    struct ag__breaker breaker;
    struct ag__budget budget;
};

enum hc_call_state {
    HC_CALL_IDLE = 0, /* created, or between attempts with nothing scheduled */
    HC_CALL_ATTEMPT,  /* a transfer is in the transport; the timer is the deadline */
    HC_CALL_BACKOFF,  /* the timer waits before the next attempt */
    HC_CALL_FINISH,   /* the timer delivers the outcome on the next turn */
};

struct hc_call {
    uint32_t magic;
    struct ag_http_client *client;
    struct hc_call *prev; /* in client->calls */
    struct hc_call *next;
    uv_timer_t timer; /* backoff wait and deferred completion */
    enum hc_call_state state;
    ag_http_client_cb cb;
    void *udata;
    struct hc_upstream *up; /* borrowed: upstreams live as long as the client */
    char *method;           /* in the call's own allocation, after the struct */
    char *target;           /* path and query (origin form): there too, or owned */
    bool target_owned;      /* 'target' was allocated apart (a direct URL's) */
    struct ag_buf hdrs_out; /* request header lines after Host, built once */
    struct ag_buf line;     /* request line and Host of the current attempt */
    char *body;             /* owned copy, or NULL */
    size_t body_len;
    bool idempotent;              /* retries allowed */
    int max_retries;              /* retries allowed at most */
    int max_retries_req;          /* as asked: -1 when the caller wants none at all */
    uint64_t deadline_ms;         /* ag_time_mono_ms() by which the call ends */
    uint64_t start_ns;            /* for the duration histogram */
    uint64_t attempt_ms;          /* ag_time_mono_ms() when the attempt started */
    int attempts;                 /* attempts started */
    struct ag__hc_xfer x;         /* the transfer of the current attempt */
    struct ag__hc_instance *inst; /* referenced: current or last instance */
    bool probe;                   /* the attempt is a half-open probe */
    bool cancel_mark;             /* chosen by ag_http_client_cancel */
    int err;                      /* outcome of the last attempt */
    int status;
    uint64_t retry_after_ms; /* Retry-After of a 429, else 0 */
    struct ag_span *span;    /* the client span when recording, else NULL */
};

struct ag_http_client {
    uint32_t magic;
    uv_loop_t *loop;                  /* borrowed */
    struct ag_http_client_config cfg; /* copy with defaults applied */
    struct ag__eject_policy eject;
    struct ag__hc_transport *transport; /* connections; closed by the teardown */
    uv_timer_t timer;                   /* the teardown */
    uv_timer_t maint;                   /* breaker cool-downs and ejection ends */
    struct hc_upstream *ups;            /* every upstream ever used */
    struct hc_call *calls;              /* calls not finished */
    unsigned handles;                   /* uv handles open (timers) and the transport */
    bool closing;                       /* ag_http_client_close was called */
    bool torn_down;                     /* the teardown ran, handles are closing */
    void (*close_cb)(void *udata);
    void *close_udata;
    uint64_t rng; /* xorshift64* state */
    struct ag_metric *m_requests;
    struct ag_metric *m_retries;
    struct ag_metric *m_duration;
    struct ag_metric *m_breaker;
    struct ag_metric *m_ejected;
    ag__http_client_backoff_fn backoff_hook;
    void *backoff_udata;
};

static void on_maint(uv_timer_t *t);
static void call_finish(struct hc_call *call);
static int attempt_start(struct hc_call *call);

/* ---- Small helpers ---- */

static uint64_t
rng_next(struct ag_http_client *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void handle_closed(struct ag_http_client *c);

static void
on_client_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void
instance_unref(struct ag__hc_instance *inst)
{
    if (inst == NULL || --inst->refs > 0)
        return;
    ag_free(inst->id);
    ag_free(inst->incarnation);
    ag_free(inst->host);
    ag_free(inst->base);
    ag_free(inst);
}

static struct ag__hc_instance *
instance_new(const char *id, const char *host, int port)
{
    struct ag__hc_instance *inst = ag_calloc(1, sizeof(*inst));
    inst->id = ag_strdup(id);
    inst->host = ag_strdup(host);
    inst->port = port;
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    inst->base = ag_asprintf(v6 ? "http://[%s]:%d" : "http://%s:%d", host, port);
    inst->refs = 1;
    return inst;
}

/* ---- Upstreams ---- */

static struct hc_upstream *
upstream_find(struct ag_http_client *c, const char *name)
{
    for (struct hc_upstream *u = c->ups; u != NULL; u = u->next) {
        if (strcmp(u->name, name) == 0)
            return u;
    }
    return NULL;
}

static void
upstream_report(struct ag_http_client *c, struct hc_upstream *u, uint64_t now_ms)
{
    const char *labels[1] = { u->name };
    ag_gauge_set(c->m_breaker, labels, (double)u->breaker.state);
    ag_gauge_set(c->m_ejected, labels, (double)ag__lb_ejected(u->insts, u->n, now_ms));
}

static struct hc_upstream *
upstream_get(struct ag_http_client *c, const char *name, bool direct)
{
    struct hc_upstream *u = upstream_find(c, name);
    if (u != NULL)
        return u;
    u = ag_calloc(1, sizeof(*u));
    u->name = ag_strdup(name);
    u->direct = direct;
    struct ag__breaker_config bc = {
        .window_ms = c->cfg.breaker_window_ms,
        .min_calls = c->cfg.breaker_min_calls,
        .failure_rate = c->cfg.breaker_failure_rate,
        .slow_ms = c->cfg.breaker_slow_ms,
        .slow_rate = c->cfg.breaker_slow_rate,
        .open_ms = c->cfg.breaker_open_ms,
        .max_probes = c->cfg.breaker_probes,
    };
    ag__breaker_init(&u->breaker, &bc);
    ag__budget_init(&u->budget, c->cfg.retry_budget_ratio, c->cfg.retry_budget_min);
    u->next = c->ups;
    c->ups = u;
    upstream_report(c, u, ag_time_mono_ms());
    return u;
}

static void
upstream_free(struct hc_upstream *u)
{
    for (size_t i = 0; i < u->n; i++) {
        u->insts[i]->removed = true;
        instance_unref(u->insts[i]);
    }
    ag_free(u->insts);
    ag_free(u->name);
    ag_free(u);
}

/* Re-arm the maintenance timer for the earliest breaker cool-down end or
 * ejection end, so gauges and states change on time without traffic. */
static void
maint_schedule(struct ag_http_client *c)
{
    if (c->closing)
        return;
    uint64_t now = ag_time_mono_ms();
    uint64_t next = UINT64_MAX;
    for (struct hc_upstream *u = c->ups; u != NULL; u = u->next) {
        if (u->breaker.state == AG_BREAKER_OPEN)
            next = AG_MIN(next, u->breaker.opened_at_ms + u->breaker.cfg.open_ms);
        for (size_t i = 0; i < u->n; i++) {
            if (u->insts[i]->ejected_until_ms != 0)
                next = AG_MIN(next, u->insts[i]->ejected_until_ms);
        }
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->maint);
        return;
    }
    uv_timer_start(&c->maint, on_maint, next > now ? next - now : 0, 0);
}

static void
on_maint(uv_timer_t *t)
{
    struct ag_http_client *c = t->data;
    uint64_t now = ag_time_mono_ms();
    for (struct hc_upstream *u = c->ups; u != NULL; u = u->next) {
        bool changed = ag__breaker_tick(&u->breaker, now);
        if (changed)
            AG_LOGI(HC_LOG, "upstream '%s': circuit half-open", u->name);
        size_t back = ag__lb_expire(u->insts, u->n, now);
        if (back > 0)
            AG_LOGI(HC_LOG, "upstream '%s': %zu instance(s) back from ejection", u->name, back);
        upstream_report(c, u, now);
    }
    maint_schedule(c);
}

int
ag_http_client_set_upstream(struct ag_http_client *c, const char *name,
                            const struct ag_upstream_instance *instances, size_t n)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    if (c->closing)
        return AG_ECLOSED;
    if (name == NULL || name[0] == '\0' || (n > 0 && instances == NULL))
        return AG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const struct ag_upstream_instance *in = &instances[i];
        if (in->id == NULL || in->host == NULL || in->host[0] == '\0' || in->port < 1 ||
            in->port > 65535 || strpbrk(in->host, "/?#@ \r\n") != NULL)
            return AG_EINVAL;
    }
    struct hc_upstream *u = upstream_get(c, name, false);
    struct ag__hc_instance **insts = ag_calloc(n ? n : 1, sizeof(*insts));
    size_t m = 0;
    bool fresh = false; /* an instance id not seen before: a (re)started instance */
    for (size_t i = 0; i < n; i++) {
        const struct ag_upstream_instance *in = &instances[i];
        bool dup = false;
        for (size_t j = 0; j < m && !dup; j++)
            dup = strcmp(insts[j]->id, in->id) == 0;
        if (dup)
            continue;
        struct ag__hc_instance *old = NULL;
        for (size_t j = 0; j < u->n && old == NULL; j++) {
            if (strcmp(u->insts[j]->id, in->id) == 0)
                old = u->insts[j];
        }
        /* The same id from a new process (it restarted and registered
         * again): a new instance, with none of the old one's failures. */
        bool reborn = old != NULL && in->incarnation != NULL &&
                      (old->incarnation == NULL || strcmp(old->incarnation, in->incarnation) != 0);
        if (old != NULL && !reborn && old->port == in->port && strcmp(old->host, in->host) == 0) {
            old->refs++;
            insts[m++] = old;
            continue;
        }
        struct ag__hc_instance *inst = instance_new(in->id, in->host, in->port);
        inst->incarnation = in->incarnation != NULL ? ag_strdup(in->incarnation) : NULL;
        if (old == NULL || reborn)
            fresh = true;
        if (old != NULL && !reborn) {
            /* Same id at a new address: the health it earned stays. */
            inst->failures = old->failures;
            inst->ejections = old->ejections;
            inst->ejected_until_ms = old->ejected_until_ms;
            inst->returned_at_ms = old->returned_at_ms;
        }
        insts[m++] = inst;
    }
    for (size_t i = 0; i < u->n; i++) {
        u->insts[i]->removed = true;
        for (size_t j = 0; j < m; j++) {
            if (insts[j] == u->insts[i])
                u->insts[i]->removed = false;
        }
        instance_unref(u->insts[i]);
    }
    ag_free(u->insts);
    u->insts = insts;
    u->n = m;
    if (m > 0)
        u->rr %= m;
    else
        u->rr = 0;
    /* A new instance registered: the upstream is back, so an open breaker
     * lets a probe through now instead of at the end of its cool-down. */
    if (fresh && ag__breaker_recovered(&u->breaker, ag_time_mono_ms()))
        AG_LOGI(HC_LOG, "upstream '%s': a new instance registered; circuit half-open", u->name);
    upstream_report(c, u, ag_time_mono_ms());
    maint_schedule(c);
    return 0;
}

/* ---- Calls ---- */

static bool
method_is_idempotent(const char *m)
{
    static const char *const safe[] = { "GET", "HEAD", "OPTIONS", "PUT", "DELETE" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(safe); i++) {
        if (strcmp(m, safe[i]) == 0)
            return true;
    }
    return false;
}

static bool
is_token(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            return false;
    }
    return true;
}

static bool
is_header_value(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\r' || *p == '\n')
            return false;
    }
    return true;
}

static bool
has_header(const struct ag_http_client_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return true;
    }
    return false;
}

/* Parse an absolute http:// URL into the upstream key "host:port" (port 80
 * when absent; an IPv6 host keeps its brackets), the host alone in
 * '*out_host', the port, and the origin-form target (path and query, "/"
 * when empty, without a fragment) in '*out_target'. Returns 0 or AG_EINVAL. */
static int
parse_direct(const char *url, char **out_key, char **out_host, int *out_port, char **out_target)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return AG_EINVAL;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || memchr(a, '@', alen) != NULL)
        return AG_EINVAL;
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 32 || *p == 127)
            return AG_EINVAL;
    }
    const char *host = a;
    size_t hlen;
    const char *rest;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (close == NULL)
            return AG_EINVAL;
        hlen = (size_t)(close - a) + 1;
        rest = close + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
        rest = a + hlen;
    }
    if (hlen == 0 || (hlen == 2 && host[0] == '['))
        return AG_EINVAL;
    uint64_t port = 80;
    size_t restlen = alen - (size_t)(rest - a);
    if (restlen > 0) {
        if (rest[0] != ':' ||
            ag_str_to_u64(ag_str_make(rest + 1, restlen - 1), 65535, &port) != 0 || port == 0)
            return AG_EINVAL;
    }
    *out_key = ag_asprintf("%.*s:%u", (int)hlen, host, (unsigned)port);
    if (host[0] == '[')
        *out_host = ag_strndup(host + 1, hlen - 2);
    else
        *out_host = ag_strndup(host, hlen);
    *out_port = (int)port;
    const char *path = a + alen;
    size_t plen = strcspn(path, "#");
    if (plen == 0 || path[0] == '?')
        *out_target = ag_asprintf("/%.*s", (int)plen, path);
    else
        *out_target = ag_strndup(path, plen);
    return 0;
}

static void
on_call_closed(uv_handle_t *h)
{
    struct hc_call *call = h->data;
    struct ag_http_client *c = call->client;
    call->magic = 0;
    ag_free(call);
    handle_closed(c);
}

static void
call_unlink(struct hc_call *call)
{
    struct ag_http_client *c = call->client;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else if (c->calls == call)
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = NULL;
    call->next = NULL;
}

static void
call_free(struct hc_call *call)
{
    instance_unref(call->inst);
    call->inst = NULL;
    if (call->target_owned)
        ag_free(call->target);
    ag_free(call->body);
    ag_buf_release(&call->hdrs_out);
    ag_buf_release(&call->line);
    ag_buf_release(&call->x.head);
    ag_buf_release(&call->x.body);
    ag_free(call->x.hdrs);
    call->x.hdrs = NULL;
    ag_free(call->span);
    call->span = NULL;
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
}

static enum hc_outcome
call_outcome(const struct hc_call *call)
{
    switch (call->err) {
    case 0:
        if (call->status >= 500)
            return HC_OUTCOME_5XX;
        if (call->status >= 400)
            return HC_OUTCOME_4XX;
        if (call->status >= 300)
            return HC_OUTCOME_3XX;
        return HC_OUTCOME_2XX;
    case AG_ETIMEDOUT: return HC_OUTCOME_TIMEOUT;
    case AG_EUNAVAIL: return HC_OUTCOME_UNAVAILABLE;
    case AG_ETOOBIG: return HC_OUTCOME_TOO_BIG;
    case AG_ECLOSED: return HC_OUTCOME_CANCELLED;
    default: return HC_OUTCOME_ERROR;
    }
}

/* Deliver the outcome to the caller, then free the call. */
static void
call_finish(struct hc_call *call)
{
    struct ag_http_client *c = call->client;
    call_unlink(call);
    call->state = HC_CALL_IDLE;
    uv_timer_stop(&call->timer);

    const struct ag__hc_xfer *x = &call->x;
    struct ag_http_header stack_hdrs[HC_HDRS_ON_STACK];
    struct ag_http_header *hdrs = NULL;
    size_t nhdrs = call->err == 0 ? x->nhdrs : 0;
    if (nhdrs > 0) {
        hdrs = nhdrs <= HC_HDRS_ON_STACK ? stack_hdrs : ag_calloc(nhdrs, sizeof(*hdrs));
        for (size_t i = 0; i < nhdrs; i++) {
            const struct ag__hc_hdr *h = &x->hdrs[i];
            hdrs[i].name = ag_str_make(x->head.data + h->name_off, h->name_len);
            hdrs[i].value =
                ag_str_make(h->value_len ? x->head.data + h->value_off : "", h->value_len);
        }
    }
    struct ag_http_client_response resp = {
        .err = call->err,
        .status = call->err == 0 ? call->status : 0,
        .headers = hdrs,
        .nheaders = nhdrs,
        .body = call->err == 0 ? ag_str_make(ag_buf_cstr(&x->body), x->body.len) : AG_STR_NULL,
        .attempts = call->attempts,
        .instance = call->inst ? call->inst->id : NULL,
    };
    const char *labels[2] = { call->up->name, hc_outcome_labels[call_outcome(call)] };
    ag_counter_add(c->m_requests, labels, 1);
    if (call->span != NULL) {
        struct ag_span *sp = call->span;
        ag_span_attr_str(sp, "http.request.method", call->method);
        ag_span_attr_str(sp, "server.address", call->up->name);
        if (call->inst != NULL)
            ag_span_attr_str(sp, "agora.instance", call->inst->id);
        ag_span_attr_int(sp, "http.request.resend_count",
                         call->attempts > 0 ? call->attempts - 1 : 0);
        if (call->err == 0)
            ag_span_attr_int(sp, "http.response.status_code", call->status);
        /* Client spans: a 4xx is an error too (HTTP semantic conventions). */
        if (call->err != 0 || call->status >= 400) {
            ag_span_attr_str(sp, "error.type", hc_outcome_labels[call_outcome(call)]);
            ag_span_error(sp, call->err != 0 ? ag_strerror(call->err) : NULL);
        }
        ag_span_end(sp);
    }
    ag_histogram_observe(c->m_duration, labels, /* its one label: upstream */
                         (double)(ag_time_mono_ns() - call->start_ns) / 1e9);
    if (call->cb != NULL)
        call->cb(c, &resp, call->udata);
    if (hdrs != stack_hdrs)
        ag_free(hdrs);
    call_free(call);
}

static void attempt_done(struct hc_call *call, int err);

static void
on_call_timer(uv_timer_t *t)
{
    struct hc_call *call = t->data;
    if (call->state == HC_CALL_ATTEMPT) {
        /* The deadline passed with the attempt still in the transport. */
        ag__hc_xfer_abort(call->client->transport, &call->x);
        attempt_done(call, AG_ETIMEDOUT);
        return;
    }
    if (call->state == HC_CALL_BACKOFF) {
        call->state = HC_CALL_IDLE;
        if (attempt_start(call) == 0)
            return;
    }
    call_finish(call);
}

/* Finish on a later loop turn (the callback must never run inside send). */
static void
call_finish_later(struct hc_call *call)
{
    call->state = HC_CALL_FINISH;
    uv_timer_start(&call->timer, on_call_timer, 0, 0);
}

/* The transport finished the transfer of the current attempt. */
static void
on_xfer_done(struct ag__hc_xfer *x, int err)
{
    struct hc_call *call = x->udata;
    if (call->magic != HC_CALL_MAGIC || call->state != HC_CALL_ATTEMPT)
        AG_BUG("finished transfer without its call");
    uv_timer_stop(&call->timer);
    /* A connect timeout is the deadline when it ends with the call's time. */
    if (err == AG_ETIMEDOUT && ag_time_mono_ms() + HC_TIMEOUT_SLACK_MS < call->deadline_ms)
        err = AG_EIO;
    attempt_done(call, err);
}

/* Set up the transfer of the next attempt of 'call' on its current
 * instance: the request line and Host are written per attempt, the other
 * header lines and the body were prepared once by send. */
static void
xfer_setup(struct hc_call *call, uint64_t remaining_ms)
{
    struct ag_http_client *c = call->client;
    struct ag__hc_instance *inst = call->inst;
    struct ag__hc_xfer *x = &call->x;
    ag_buf_reset(&call->line);
    /* 'base' is "http://host:port" with an IPv6 host bracketed. */
    ag_buf_append_cstr(&call->line, call->method);
    ag_buf_append_char(&call->line, ' ');
    ag_buf_append_cstr(&call->line, call->target);
    ag_buf_append_cstr(&call->line, " HTTP/1.1\r\nHost: ");
    ag_buf_append_cstr(&call->line, inst->base + 7);
    ag_buf_append_cstr(&call->line, "\r\n");
    x->host = inst->host;
    x->port = inst->port;
    x->req[0] = uv_buf_init(call->line.data, (unsigned)call->line.len);
    x->req[1] = uv_buf_init(call->hdrs_out.data, (unsigned)call->hdrs_out.len);
    x->nreq = 2;
    if (call->body_len > 0)
        x->req[x->nreq++] = uv_buf_init(call->body, (unsigned)call->body_len);
    x->is_head = strcmp(call->method, "HEAD") == 0;
    x->idempotent = call->idempotent;
    x->connect_timeout_ms = AG_MIN(remaining_ms, c->cfg.connect_timeout_ms);
    x->cb = on_xfer_done;
    x->udata = call;
}

/* Start the next attempt: breaker, instance choice, transfer. Returns 0,
 * or AG_EUNAVAIL / AG_EIO / AG_ETIMEDOUT when it cannot start; then the
 * call's outcome is set only if no attempt was made yet (a retry that
 * cannot start leaves the previous attempt's outcome in place). */
static int
attempt_start(struct hc_call *call)
{
    struct ag_http_client *c = call->client;
    struct hc_upstream *u = call->up;
    uint64_t now = ag_time_mono_ms();
    int rc;
    if (now >= call->deadline_ms) {
        rc = AG_ETIMEDOUT;
        goto fail;
    }
    enum ag_breaker_state before = u->breaker.state;
    bool probe = false;
    rc = ag__breaker_allow(&u->breaker, now, &probe);
    if (u->breaker.state != before)
        upstream_report(c, u, now);
    if (rc != 0)
        goto fail;
    long i = ag__lb_pick(u->insts, u->n, &u->rr, call->inst, now);
    if (i < 0) {
        ag__breaker_cancel(&u->breaker, probe);
        rc = AG_EUNAVAIL;
        goto fail;
    }
    struct ag__hc_instance *inst = u->insts[i];
    inst->refs++;
    instance_unref(call->inst);
    call->inst = inst;
    call->probe = probe;
    call->attempt_ms = now;
    call->retry_after_ms = 0;
    xfer_setup(call, call->deadline_ms - now);
    rc = ag__hc_xfer_start(c->transport, &call->x);
    if (rc != 0) {
        ag__breaker_cancel(&u->breaker, probe);
        goto fail;
    }
    if (call->attempts > 0 && call->span != NULL)
        ag_span_event(call->span, "retry");
    call->attempts++;
    call->state = HC_CALL_ATTEMPT;
    uv_timer_start(&call->timer, on_call_timer, call->deadline_ms - now, 0);
    return 0;

fail:
    if (call->attempts == 0) {
        call->err = rc;
        call->status = 0;
    }
    return rc;
}

/* Retry-After of a 429 in milliseconds (delay-seconds form only), or 0. */
static uint64_t
retry_after_ms(const struct hc_call *call)
{
    const struct ag__hc_xfer *x = &call->x;
    for (size_t i = 0; i < x->nhdrs; i++) {
        const struct ag__hc_hdr *h = &x->hdrs[i];
        struct ag_str name = ag_str_make(x->head.data + h->name_off, h->name_len);
        if (!ag_str_case_eq_cstr(name, "Retry-After"))
            continue;
        uint64_t s;
        if (ag_str_to_u64(ag_str_make(x->head.data + h->value_off, h->value_len), 86400, &s) == 0)
            return s == 0 ? 1 : s * 1000;
        return 0;
    }
    return 0;
}

/* The attempt of 'call' ended with 'result' (0: a response in call->x):
 * record it, then retry or finish. */
static void
attempt_done(struct hc_call *call, int result)
{
    struct ag_http_client *c = call->client;
    struct hc_upstream *u = call->up;
    call->state = HC_CALL_IDLE;
    int status = result == 0 ? call->x.status : 0;

    uint64_t now = ag_time_mono_ms();
    bool failure;
    bool retryable;
    /* Refused: nothing listens on that instance (crashed, restarting), and
     * nothing was sent, so a retry is safe whatever the method. */
    bool refused = result == AG_EIO && call->x.refused;
    int err = 0;
    if (result == 0) {
        failure = status >= 500;
        retryable = status == 502 || status == 503 || status == 504;
        if (status == 429) {
            call->retry_after_ms = retry_after_ms(call);
            retryable = call->retry_after_ms > 0 && now + call->retry_after_ms < call->deadline_ms;
        } else if (status == 503 && retry_after_ms(call) > 0) {
            /* An instance shedding load (its admission limit, with a
             * Retry-After) answered at once: a healthy instance, not a
             * failure for the breaker or the outlier detector, and its
             * answer goes back to the caller now instead of adding
             * retries to the overload. */
            failure = false;
            retryable = false;
        }
    } else if (result == AG_ETOOBIG) {
        err = AG_ETOOBIG;
        failure = false;
        retryable = false;
    } else if (result == AG_ETIMEDOUT) {
        err = AG_ETIMEDOUT;
        failure = true;
        retryable = false;
    } else {
        AG_LOGD(HC_LOG, "%s %s on '%s' failed: %s", call->method, call->target, call->inst->id,
                ag_strerror(result));
        err = AG_EIO;
        failure = true;
        retryable = true;
    }
    call->err = err;
    call->status = err == 0 ? status : 0;

    if (refused) {
        /* An instance that is down is the load balancer's business, not a
         * failure rate: counting it would keep the breaker open for its
         * whole cool-down after the instance is back (issue: a 0.5 s
         * restart seen as 5 s through the gateway). */
        ag__breaker_cancel(&u->breaker, call->probe);
        if (!u->direct && ag__lb_down(u->insts, u->n, call->inst, &c->eject, now)) {
            AG_LOGW(
                HC_LOG, "upstream '%s': instance '%s' refuses connections; ejected until +%llu ms",
                u->name, call->inst->id, (unsigned long long)(call->inst->ejected_until_ms - now));
            upstream_report(c, u, now);
            maint_schedule(c);
        }
    } else if (ag__breaker_record(&u->breaker, now, call->probe, !failure,
                                  now - call->attempt_ms)) {
        if (u->breaker.state == AG_BREAKER_OPEN)
            AG_LOGW(HC_LOG, "upstream '%s': circuit open for %llu ms", u->name,
                    (unsigned long long)u->breaker.cfg.open_ms);
        else
            AG_LOGI(HC_LOG, "upstream '%s': circuit closed", u->name);
        upstream_report(c, u, now);
        maint_schedule(c);
    }
    call->probe = false;
    if (!refused && !u->direct &&
        ag__lb_record(u->insts, u->n, call->inst, failure, &c->eject, now)) {
        AG_LOGW(HC_LOG, "upstream '%s': instance '%s' ejected until +%llu ms", u->name,
                call->inst->id, (unsigned long long)(call->inst->ejected_until_ms - now));
        upstream_report(c, u, now);
        maint_schedule(c);
    }

    /* A refused connect may be retried by any call that allows retries at
     * all, at least twice: a restarting instance comes back within that. */
    int limit = refused && call->max_retries_req >= 0
                    ? AG_MAX(call->max_retries, HC_REFUSED_RETRIES)
                    : call->max_retries;
    if (retryable && (call->idempotent || refused) && call->attempts <= limit) {
        uint64_t wait = ag_backoff_full_ms(c->cfg.backoff_base_ms, c->cfg.backoff_max_ms,
                                           (unsigned)call->attempts, rng_next(c));
        if (call->retry_after_ms > wait)
            wait = call->retry_after_ms;
        if (now + wait < call->deadline_ms && ag__budget_try_retry(&u->budget, now)) {
            const char *labels[1] = { u->name };
            ag_counter_add(c->m_retries, labels, 1);
            if (c->backoff_hook != NULL)
                c->backoff_hook(c, call->attempts, wait, c->backoff_udata);
            call->state = HC_CALL_BACKOFF;
            uv_timer_start(&call->timer, on_call_timer, wait, 0);
            return;
        }
    }
    call_finish(call);
}

/* "name: value\r\n" without printf (bench/gateway: the printf family was
 * 12-16% of the gateway's CPU when it built upstream heads with it). */
static int
append_header(struct ag_buf *out, const char *name, const char *value)
{
    size_t nl = strlen(name);
    size_t vl = strlen(value);
    int rc = ag_buf_reserve(out, nl + vl + 4);
    if (rc != 0)
        return rc;
    ag_buf_append(out, name, nl);
    ag_buf_append(out, ": ", 2);
    ag_buf_append(out, value, vl);
    ag_buf_append(out, "\r\n", 2);
    return 0;
}

/* Build the header lines every attempt of a call sends after Host, and the
 * blank line ending the head, into 'out'. Returns 0 or AG_ETOOBIG. */
static int
headers_build(const struct ag_http_client_request *req, struct ag_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        rc |= append_header(out, req->headers[i].name, req->headers[i].value);
    if (req->request_id != NULL && !has_header(req, "X-Request-ID"))
        rc |= append_header(out, "X-Request-ID", req->request_id);
    if (req->traceparent != NULL && !has_header(req, "traceparent"))
        rc |= append_header(out, "traceparent", req->traceparent);
    const char *m = req->method;
    /* Methods that define a body say its length even when empty. */
    bool with_len = req->body_len > 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
                    strcmp(m, "PATCH") == 0;
    if (with_len && !has_header(req, "Content-Length"))
        rc |= ag_buf_appendf(out, "Content-Length: %zu\r\n", req->body_len);
    /* A body is JSON unless the caller says otherwise. */
    if (req->body_len > 0 && !has_header(req, "Content-Type"))
        rc |= ag_buf_append_cstr(out, "Content-Type: application/json\r\n");
    if (!has_header(req, "User-Agent"))
        rc |= ag_buf_append_cstr(out, "User-Agent: " HC_USER_AGENT "\r\n");
    if (!has_header(req, "Connection"))
        rc |= ag_buf_append_cstr(out, "Connection: keep-alive\r\n");
    rc |= ag_buf_append_cstr(out, "\r\n");
    return rc != 0 ? AG_ETOOBIG : 0;
}

static int
request_check(const struct ag_http_client_request *req)
{
    if (req == NULL || !is_token(req->method) || req->url == NULL)
        return AG_EINVAL;
    if (req->body_len > 0 && req->body == NULL)
        return AG_EINVAL;
    if (req->nheaders > 0 && req->headers == NULL)
        return AG_EINVAL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!is_token(req->headers[i].name) || req->headers[i].value == NULL ||
            !is_header_value(req->headers[i].value))
            return AG_EINVAL;
    }
    if ((req->request_id != NULL && !is_header_value(req->request_id)) ||
        (req->traceparent != NULL && !is_header_value(req->traceparent)))
        return AG_EINVAL;
    if (req->upstream != NULL) {
        if (req->upstream[0] == '\0' || req->url[0] != '/')
            return AG_EINVAL;
        for (const char *p = req->url; *p; p++) {
            if ((unsigned char)*p <= 32 || *p == 127)
                return AG_EINVAL;
        }
    }
    return 0;
}

int
ag_http_client_send(struct ag_http_client *c, const struct ag_http_client_request *req,
                    ag_http_client_cb cb, void *udata)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    if (c->closing)
        return AG_ECLOSED;
    int rc = request_check(req);
    if (rc != 0)
        return rc;
    char *key = NULL;
    char *host = NULL;
    char *target = NULL;
    int port = 0;
    if (req->upstream == NULL) {
        rc = parse_direct(req->url, &key, &host, &port, &target);
        if (rc != 0)
            return rc;
    }
    /* A client span: a child of the caller's span, whose id the callee
     * sees as its parent in the traceparent sent. */
    struct ag_span *span = NULL;
    struct ag_http_client_request traced;
    char child_tp[AG_TRACEPARENT_LEN + 1];
    struct ag_trace_ctx caller;
    if (req->traceparent != NULL && ag_span_enabled() &&
        ag_trace_parse(ag_str_from_cstr(req->traceparent), &caller) == 0 &&
        (caller.flags & 1) != 0) {
        memcpy(caller.span_id, caller.parent_id, sizeof(caller.span_id));
        struct ag_trace_ctx child;
        ag_trace_child(&caller, &child);
        span = ag_malloc(sizeof(*span));
        char name[AG_SPAN_MAX_TEXT];
        snprintf(name, sizeof(name), "%s %s", req->method,
                 req->upstream != NULL ? req->upstream : "http");
        ag_span_begin(span, &child, name, AG_SPAN_CLIENT);
        ag_trace_format(&child, child_tp);
        traced = *req;
        traced.traceparent = child_tp;
        req = &traced;
    }
    struct ag_buf hdrs_out = AG_BUF_INIT(HC_MAX_REQ_HEAD);
    (void)ag_buf_reserve(&hdrs_out, HC_HEAD_OUT_FIRST);
    if (headers_build(req, &hdrs_out) != 0) {
        ag_free(span);
        ag_buf_release(&hdrs_out);
        ag_free(key);
        ag_free(host);
        ag_free(target);
        return AG_EINVAL;
    }
    /* One allocation for the call, its method and (upstream calls) target. */
    size_t mlen = strlen(req->method);
    size_t tlen = target != NULL ? 0 : strlen(req->url);
    struct hc_call *call = ag_calloc(1, sizeof(*call) + mlen + 1 + tlen + 1);
    call->method = (char *)(call + 1);
    memcpy(call->method, req->method, mlen + 1);
    if (target != NULL) {
        call->target = target;
        call->target_owned = true;
    } else {
        call->target = call->method + mlen + 1;
        memcpy(call->target, req->url, tlen + 1);
    }
    call->magic = HC_CALL_MAGIC;
    call->client = c;
    call->cb = cb;
    call->udata = udata;
    call->span = span;
    if (key != NULL) {
        call->up = upstream_get(c, key, true);
        if (call->up->n == 0) {
            /* A direct URL is an upstream of one instance named after it. */
            call->up->insts = ag_calloc(1, sizeof(*call->up->insts));
            call->up->insts[0] = instance_new(key, host, port);
            call->up->n = 1;
        }
    } else {
        call->up = upstream_get(c, req->upstream, false);
    }
    ag_free(key);
    ag_free(host);
    call->hdrs_out = hdrs_out;
    ag_buf_init(&call->line, HC_MAX_REQ_HEAD);
    /* Request line and Host: method, target, " HTTP/1.1\r\nHost: ", host:port. */
    (void)ag_buf_reserve(&call->line, strlen(call->method) + strlen(call->target) + 96);
    if (req->body_len > 0) {
        call->body = ag_malloc(req->body_len);
        memcpy(call->body, req->body, req->body_len);
        call->body_len = req->body_len;
    }
    call->idempotent = req->force_idempotent || method_is_idempotent(req->method) ||
                       has_header(req, "Idempotency-Key");
    int retries = req->max_retries != 0 ? req->max_retries : c->cfg.max_retries;
    call->max_retries = retries < 0 ? 0 : retries;
    call->max_retries_req = retries;
    uint64_t timeout = req->timeout_ms ? req->timeout_ms : c->cfg.timeout_ms;
    uint64_t now = ag_time_mono_ms();
    call->deadline_ms = now + timeout;
    call->start_ns = ag_time_mono_ns();
    ag_buf_init(&call->x.head, HC_MAX_HEADER_BYTES);
    (void)ag_buf_reserve(&call->x.head, HC_HEAD_IN_FIRST);
    ag_buf_init(&call->x.body, c->cfg.max_response_bytes);
    uv_timer_init(c->loop, &call->timer);
    call->timer.data = call;
    c->handles++;
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    ag__budget_call(&call->up->budget, now);
    if (attempt_start(call) != 0)
        call_finish_later(call);
    return 0;
}

struct ag_str
ag_http_client_header(const struct ag_http_client_response *resp, const char *name)
{
    for (size_t i = 0; resp != NULL && i < resp->nheaders; i++) {
        if (ag_str_case_eq_cstr(resp->headers[i].name, name))
            return resp->headers[i].value;
    }
    return AG_STR_NULL;
}

enum ag_breaker_state
ag_http_client_breaker(struct ag_http_client *c, const char *name)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    struct hc_upstream *u = name ? upstream_find(c, name) : NULL;
    if (u == NULL)
        return AG_BREAKER_CLOSED;
    uint64_t now = ag_time_mono_ms();
    if (ag__breaker_tick(&u->breaker, now))
        upstream_report(c, u, now);
    return u->breaker.state;
}

bool
ag_http_client_is_ejected(struct ag_http_client *c, const char *name, const char *id)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    struct hc_upstream *u = name ? upstream_find(c, name) : NULL;
    if (u == NULL || id == NULL)
        return false;
    uint64_t now = ag_time_mono_ms();
    for (size_t i = 0; i < u->n; i++) {
        struct ag__hc_instance *inst = u->insts[i];
        if (strcmp(inst->id, id) == 0)
            return inst->ejected_until_ms != 0 && now < inst->ejected_until_ms;
    }
    return false;
}

void
ag_http_client_metrics(struct ag_http_client *c, struct ag_metrics *reg)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    static const char *const up_outcome[] = { "upstream", "outcome" };
    static const char *const up[] = { "upstream" };
    c->m_requests =
        ag_metrics_counter(reg, "http_client_requests_total",
                           "Outgoing HTTP calls by upstream and outcome", up_outcome, 2);
    c->m_retries = ag_metrics_counter(reg, "http_client_retries_total",
                                      "Retries of outgoing HTTP calls by upstream", up, 1);
    c->m_duration =
        ag_metrics_histogram(reg, "http_client_request_duration_seconds",
                             "Duration of outgoing HTTP calls, retries included", up, 1, NULL, 0);
    c->m_breaker = ag_metrics_gauge(
        reg, "http_client_breaker_state",
        "Circuit breaker state by upstream (0 closed, 1 open, 2 half-open)", up, 1);
    c->m_ejected = ag_metrics_gauge(reg, "http_client_ejected_instances",
                                    "Instances currently ejected by upstream", up, 1);
    uint64_t now = ag_time_mono_ms();
    for (struct hc_upstream *u = c->ups; u != NULL; u = u->next)
        upstream_report(c, u, now);
}

void
ag__http_client_conn_stats(struct ag_http_client *c, size_t *out_conns, size_t *out_idle)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    ag__hc_transport_stats(c->transport, out_conns, out_idle);
}

void
ag__http_client_on_backoff(struct ag_http_client *c, ag__http_client_backoff_fn fn, void *udata)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    c->backoff_hook = fn;
    c->backoff_udata = udata;
}

/* ---- Life cycle ---- */

static void
apply_defaults(struct ag_http_client_config *cfg)
{
    if (cfg->max_host_connections == 0)
        cfg->max_host_connections = HC_DEF_HOST_CONNS;
    if (cfg->max_total_connections == 0)
        cfg->max_total_connections = HC_DEF_TOTAL_CONNS;
    if (cfg->connect_timeout_ms == 0)
        cfg->connect_timeout_ms = HC_DEF_CONNECT_MS;
    if (cfg->timeout_ms == 0)
        cfg->timeout_ms = HC_DEF_TIMEOUT_MS;
    if (cfg->max_response_bytes == 0)
        cfg->max_response_bytes = HC_DEF_MAX_RESPONSE;
    if (cfg->max_retries == 0)
        cfg->max_retries = HC_DEF_RETRIES;
    if (cfg->backoff_base_ms == 0)
        cfg->backoff_base_ms = HC_DEF_BACKOFF_BASE_MS;
    if (cfg->backoff_max_ms == 0)
        cfg->backoff_max_ms = HC_DEF_BACKOFF_MAX_MS;
    if (cfg->retry_budget_ratio <= 0)
        cfg->retry_budget_ratio = HC_DEF_BUDGET_RATIO;
    if (cfg->retry_budget_min == 0)
        cfg->retry_budget_min = HC_DEF_BUDGET_MIN;
    if (cfg->breaker_window_ms == 0)
        cfg->breaker_window_ms = HC_DEF_BREAKER_WINDOW_MS;
    if (cfg->breaker_min_calls == 0)
        cfg->breaker_min_calls = HC_DEF_BREAKER_MIN_CALLS;
    if (cfg->breaker_failure_rate == 0)
        cfg->breaker_failure_rate = HC_DEF_BREAKER_FAIL_PCT;
    if (cfg->breaker_slow_ms == 0)
        cfg->breaker_slow_ms = HC_DEF_BREAKER_SLOW_MS;
    if (cfg->breaker_slow_rate == 0)
        cfg->breaker_slow_rate = HC_DEF_BREAKER_SLOW_PCT;
    if (cfg->breaker_open_ms == 0)
        cfg->breaker_open_ms = HC_DEF_BREAKER_OPEN_MS;
    if (cfg->breaker_probes == 0)
        cfg->breaker_probes = HC_DEF_BREAKER_PROBES;
    if (cfg->eject_failures == 0)
        cfg->eject_failures = HC_DEF_EJECT_FAILS;
    if (cfg->eject_ms == 0)
        cfg->eject_ms = HC_DEF_EJECT_MS;
    if (cfg->max_ejected_percent == 0)
        cfg->max_ejected_percent = HC_DEF_MAX_EJECTED_PCT;
    if (cfg->max_ejected_percent > 100)
        cfg->max_ejected_percent = 100;
}

int
ag_http_client_new(uv_loop_t *loop, const struct ag_http_client_config *cfg,
                   struct ag_http_client **out_client)
{
    if (loop == NULL || out_client == NULL)
        return AG_EINVAL;
    *out_client = NULL;
    struct ag_http_client *c = ag_calloc(1, sizeof(*c));
    c->magic = HC_CLIENT_MAGIC;
    c->loop = loop;
    if (cfg != NULL)
        c->cfg = *cfg;
    apply_defaults(&c->cfg);
    c->eject = (struct ag__eject_policy){ c->cfg.eject_failures, c->cfg.eject_ms,
                                          c->cfg.max_ejected_percent };
    c->rng = ag_time_mono_ns() ^ ((uint64_t)(uintptr_t)c << 16) ^ (uint64_t)getpid();
    if (c->rng == 0)
        c->rng = 0x9E3779B97F4A7C15ULL;
    struct ag__hc_transport_config tcfg = {
        .max_host_connections = c->cfg.max_host_connections,
        .max_total_connections = c->cfg.max_total_connections,
        .connect_timeout_ms = c->cfg.connect_timeout_ms,
    };
    ag__hc_transport_new(loop, &tcfg, &c->transport);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->maint);
    c->maint.data = c;
    c->handles = 3; /* two timers and the transport */
    *out_client = c;
    return 0;
}

static void
client_free(struct ag_http_client *c)
{
    while (c->ups != NULL) {
        struct hc_upstream *u = c->ups;
        c->ups = u->next;
        upstream_free(u);
    }
    void (*cb)(void *) = c->close_cb;
    void *udata = c->close_udata;
    c->magic = 0;
    ag_free(c);
    if (cb != NULL)
        cb(udata);
}

static void
handle_closed(struct ag_http_client *c)
{
    if (c->handles == 0)
        AG_BUG("http client: handle count underflow");
    if (--c->handles == 0 && c->torn_down)
        client_free(c);
}

static void
on_transport_closed(void *udata)
{
    handle_closed(udata);
}

/* Second half of the close, on a loop turn of its own so that no transport
 * callback is on the stack: close the connections and the timers. */
static void
on_teardown(uv_timer_t *t)
{
    struct ag_http_client *c = t->data;
    c->torn_down = true;
    ag__hc_transport_close(c->transport, on_transport_closed, c);
    c->transport = NULL;
    uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
    uv_close((uv_handle_t *)&c->maint, on_client_handle_closed);
}

/* End 'call' now with AG_ECLOSED, abandoning its transfer or wait. */
static void
call_cancel(struct hc_call *call)
{
    struct ag_http_client *c = call->client;
    if (call->state == HC_CALL_ATTEMPT) {
        ag__hc_xfer_abort(c->transport, &call->x);
        ag__breaker_cancel(&call->up->breaker, call->probe);
        call->probe = false;
    }
    call->err = AG_ECLOSED;
    call->status = 0;
    call_finish(call);
}

size_t
ag_http_client_cancel(struct ag_http_client *c, ag_http_client_cb cb, void *udata)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    /* Mark first: callbacks run below may start calls with the same
     * callback and udata, which must survive. */
    for (struct hc_call *call = c->calls; call != NULL; call = call->next)
        call->cancel_mark = call->cb == cb && call->udata == udata;
    size_t n = 0;
    for (;;) {
        struct hc_call *call = c->calls;
        while (call != NULL && !call->cancel_mark)
            call = call->next;
        if (call == NULL)
            break;
        call->cancel_mark = false;
        call_cancel(call);
        n++;
    }
    return n;
}

void
ag_http_client_close(struct ag_http_client *c, void (*cb)(void *udata), void *udata)
{
    AG_CHECK_MAGIC(c, HC_CLIENT_MAGIC);
    if (c->closing)
        AG_BUG("http client closed twice");
    c->closing = true;
    c->close_cb = cb;
    c->close_udata = udata;
    uv_timer_stop(&c->timer);
    uv_timer_stop(&c->maint);
    while (c->calls != NULL)
        call_cancel(c->calls);
    uv_timer_start(&c->timer, on_teardown, 0, 0);
}
