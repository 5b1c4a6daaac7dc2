/* SPDX-License-Identifier: MIT */
/* Registry client (registry.h): registration with a TTL kept alive by
 * heartbeats, re-registration when the registry forgot us, long-poll
 * watches of services (mirrored into the HTTP client's upstreams) and of
 * configuration prefixes, and deregistration on stop. Every request goes
 * through the service's HTTP client (http_client.h) on the same loop; the
 * retries here are our own (capped exponential backoff with jitter), so
 * each request is sent with max_retries -1. */
#include "agora/base.h"
#include "agora/registry.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "agora/backoff.h"
#include "agora/buf.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

#define REG_DEF_TTL_MS       10000
#define REG_DEF_WAIT_MS      30000
#define REG_DEF_RETRY_MAX_MS 5000
#define REG_RETRY_BASE_MS    100  /* first reconnect wait (before jitter) */
#define REG_CALL_TIMEOUT_MS  2000 /* register and heartbeat calls, at most */
#define REG_POLL_MARGIN_MS   5000 /* a long poll's timeout past its 'wait' */
#define REG_STOP_TIMEOUT_MS  1000 /* bound of the deregistration at stop */
#define REG_FAST_POLL_MS     100  /* an unchanged answer sooner than this is not a long poll */
#define REG_MAX_BODY         (8u * 1024 * 1024)

#define REG_MAGIC 0x52434c49u /* "RCLI" */
#define REG_LOG   "registry"

enum reg_op {
    OP_REGISTER = 0, /* PUT the instance */
    OP_HEARTBEAT,    /* PUT .../heartbeat */
    OP_DEREGISTER,   /* DELETE the instance (stop) */
    OP_WATCH_SERVICE,
    OP_WATCH_CONFIG,
};

/* Registration state of this instance. */
enum reg_state {
    RS_IDLE = 0,    /* not started, or nothing to register */
    RS_REGISTERING, /* a register call or its retry wait is pending */
    RS_REGISTERED,  /* heartbeating */
};

/* One watch: a service's instances or a configuration prefix. */
struct reg_watch {
    struct reg_watch *next;
    struct ag_registry *reg;
    bool is_config;
    char *name; /* service name or key prefix */
    bool mirror;
    ag_registry_services_cb svc_cb;
    ag_registry_config_cb cfg_cb;
    void *udata;
    uv_timer_t timer; /* wait before the next poll after an error */
    int64_t index;    /* last index seen; 0 before the first answer */
    bool loaded;      /* a first answer arrived */
    bool in_flight;   /* a poll is pending */
    int failures;     /* consecutive failed polls (backoff exponent) */
    json_t *doc;      /* service: last answer (owns what 'insts' points to) */
    struct ag_registry_instance *insts;
    size_t ninsts;
    json_t *items; /* config: key -> item of the last answer */
};

/* One request in flight; cancelled by ag_registry_stop. */
struct reg_ticket {
    struct reg_ticket *prev;
    struct reg_ticket *next;
    struct ag_registry *reg;
    enum reg_op op;
    struct reg_watch *watch; /* for the watch ops */
    uint64_t sent_ms;
};

struct ag_registry {
    uint32_t magic;
    uv_loop_t *loop;
    struct ag_http_client *http; /* borrowed */
    char *base;                  /* registry URL without a trailing '/' */
    char *service;               /* NULL: do not register */
    char *instance_id;
    char *address;
    int port;
    json_t *metadata; /* owned object */
    uint64_t ttl_ms;
    uint64_t wait_ms;
    uint64_t retry_max_ms;
    struct ag_identity_self *identity; /* borrowed, or NULL */
    char *inst_path;                   /* "/v1/services/<service>/instances/<id>" */
    uv_timer_t timer;                  /* register retry, then heartbeats */
    enum reg_state state;
    int failures; /* consecutive failed register/heartbeat calls */
    bool started;
    bool stopping;
    bool connected;
    bool ever_sent; /* a register call went out: deregister at stop */
    struct reg_watch *watches;
    struct reg_ticket *tickets;
    unsigned handles; /* uv handles open */
    bool closing;     /* handles are being closed */
    void (*stop_cb)(void *udata);
    void *stop_udata;
    uint64_t rng;
};

static void poll_send(struct reg_watch *w);
static void register_send(struct ag_registry *r);

/* ---- Helpers ---- */

static uint64_t
rng_next(struct ag_registry *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Wait before retry number 'failures' (from 1): half of the capped
 * exponential step plus a random part of the other half, so reconnecting
 * clients spread out but never hammer. */
static uint64_t
retry_wait(struct ag_registry *r, int failures, uint64_t cap_ms)
{
    return ag_backoff_equal_ms(REG_RETRY_BASE_MS, cap_ms, (unsigned)failures, rng_next(r));
}

/* Append 's' percent-encoded except for unreserved characters and ':'. */
static void
append_escaped(struct ag_buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~:", *p) != NULL)
            ag_buf_append_char(b, (char)*p);
        else
            ag_buf_appendf(b, "%%%02X", *p);
    }
}

static bool
answered(const struct ag_http_client_response *resp)
{
    return resp->err == 0 && resp->status < 500;
}

static void
set_connected(struct ag_registry *r, bool up)
{
    if (up != r->connected)
        AG_LOGI(REG_LOG, "registry %s %s", r->base, up ? "reachable" : "unreachable");
    r->connected = up;
}

/* ---- Requests ---- */

static void on_http(struct ag_http_client *client, const struct ag_http_client_response *resp,
                    void *udata);

static void
ticket_unlink(struct reg_ticket *t)
{
    struct ag_registry *r = t->reg;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else if (r->tickets == t)
        r->tickets = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = NULL;
    t->next = NULL;
}

/* Send one request to the registry ('path' is appended to the base URL).
 * Returns 0 (on_http runs later) or the send error. */
static int
reg_send(struct ag_registry *r, enum reg_op op, struct reg_watch *w, const char *method,
         const char *path, const struct ag_buf *body, uint64_t timeout_ms)
{
    char *url = ag_asprintf("%s%s", r->base, path);
    struct ag_http_client_header hdr[2] = { { "Content-Type", "application/json" } };
    size_t nhdr = body ? 1 : 0;
    if (r->identity != NULL)
        hdr[nhdr++] = (struct ag_http_client_header){
            AG_IDENTITY_HEADER, ag_identity_self_header(r->identity, ag_time_unix_ms() / 1000)
        };
    struct ag_http_client_request req = {
        .method = method,
        .url = url,
        .headers = nhdr ? hdr : NULL,
        .nheaders = nhdr,
        .body = body ? body->data : NULL,
        .body_len = body ? body->len : 0,
        .timeout_ms = timeout_ms,
        .max_retries = -1,
    };
    struct reg_ticket *t = ag_calloc(1, sizeof(*t));
    t->reg = r;
    t->op = op;
    t->watch = w;
    t->sent_ms = ag_time_mono_ms();
    t->next = r->tickets;
    if (r->tickets != NULL)
        r->tickets->prev = t;
    r->tickets = t;
    int rc = ag_http_client_send(r->http, &req, on_http, t);
    ag_free(url);
    if (rc != 0) {
        ticket_unlink(t);
        ag_free(t);
        if (rc != AG_ECLOSED)
            AG_LOGE(REG_LOG, "cannot send %s %s%s: %s", method, r->base, path, ag_strerror(rc));
    }
    return rc;
}

/* ---- Registration and heartbeats ---- */

static void
on_reg_timer(uv_timer_t *t)
{
    struct ag_registry *r = t->data;
    if (r->stopping)
        return;
    if (r->state == RS_REGISTERED) {
        char *path = ag_asprintf("%s/heartbeat", r->inst_path);
        uint64_t tmo = AG_MAX(AG_MIN(r->ttl_ms / 3, REG_CALL_TIMEOUT_MS), 100);
        reg_send(r, OP_HEARTBEAT, NULL, "PUT", path, NULL, tmo);
        ag_free(path);
    } else {
        register_send(r);
    }
}

static void
register_send(struct ag_registry *r)
{
    r->state = RS_REGISTERING;
    json_t *doc = json_pack("{s:s s:i s:O s:I}", "address", r->address, "port", r->port, "metadata",
                            r->metadata, "ttl_ms", (json_int_t)r->ttl_ms);
    struct ag_buf body = AG_BUF_INIT(REG_MAX_BODY);
    int rc = doc ? ag_json_dump(doc, &body) : AG_ENOMEM;
    json_decref(doc);
    if (rc == 0) {
        r->ever_sent = true;
        uint64_t tmo = AG_MAX(AG_MIN(r->ttl_ms, REG_CALL_TIMEOUT_MS), 100);
        rc = reg_send(r, OP_REGISTER, NULL, "PUT", r->inst_path, &body, tmo);
    }
    ag_buf_release(&body);
    if (rc != 0 && rc != AG_ECLOSED) {
        r->failures++;
        uv_timer_start(&r->timer, on_reg_timer, retry_wait(r, r->failures, r->retry_max_ms), 0);
    }
}

static void
on_register_done(struct ag_registry *r, const struct ag_http_client_response *resp)
{
    set_connected(r, answered(resp));
    if (resp->err == 0 && resp->status == 200) {
        if (r->failures > 0 || r->state != RS_REGISTERED)
            AG_LOGI(REG_LOG, "registered '%s' instance '%s' at %s:%d", r->service, r->instance_id,
                    r->address, r->port);
        r->state = RS_REGISTERED;
        r->failures = 0;
        uv_timer_start(&r->timer, on_reg_timer, AG_MAX(r->ttl_ms / 3, 1), 0);
        return;
    }
    r->failures++;
    uint64_t wait = retry_wait(r, r->failures, r->retry_max_ms);
    if (resp->err == 0 && resp->status < 500) {
        /* The registry refused this registration: our configuration is
         * wrong, not the network. Keep trying slowly. */
        AG_LOGE(REG_LOG, "registry refused '%s' instance '%s': HTTP %d %.*s", r->service,
                r->instance_id, resp->status, (int)AG_MIN(resp->body.len, 300), resp->body.ptr);
        wait = r->retry_max_ms;
    } else if (r->failures == 1) {
        AG_LOGW(REG_LOG, "cannot register with %s: %s; retrying", r->base,
                resp->err ? ag_strerror(resp->err) : "server error");
    }
    r->state = RS_REGISTERING;
    uv_timer_start(&r->timer, on_reg_timer, wait, 0);
}

static void
on_heartbeat_done(struct ag_registry *r, const struct ag_http_client_response *resp)
{
    set_connected(r, answered(resp));
    if (resp->err == 0 && resp->status == 200) {
        r->failures = 0;
        uv_timer_start(&r->timer, on_reg_timer, AG_MAX(r->ttl_ms / 3, 1), 0);
        return;
    }
    if (resp->err == 0 && resp->status == 404) {
        /* Expired, or the registry restarted and forgot us. */
        AG_LOGI(REG_LOG, "registry lost '%s' instance '%s'; registering again", r->service,
                r->instance_id);
        r->failures = 0;
        register_send(r);
        return;
    }
    /* Keep heartbeating; a missed TTL ends in a 404 and a re-registration. */
    r->failures++;
    uint64_t cap = AG_MIN(r->retry_max_ms, AG_MAX(r->ttl_ms / 3, 1));
    uv_timer_start(&r->timer, on_reg_timer, retry_wait(r, r->failures, cap), 0);
}

/* ---- Service watches ---- */

static void
on_watch_timer(uv_timer_t *t)
{
    struct reg_watch *w = t->data;
    if (!w->reg->stopping)
        poll_send(w);
}

static void
poll_send(struct reg_watch *w)
{
    struct ag_registry *r = w->reg;
    struct ag_buf path = AG_BUF_INIT(0);
    if (w->is_config) {
        ag_buf_append_cstr(&path, "/v1/config?prefix=");
        append_escaped(&path, w->name);
        ag_buf_append_char(&path, '&');
    } else {
        ag_buf_append_cstr(&path, "/v1/services/");
        append_escaped(&path, w->name);
        ag_buf_append_char(&path, '?');
    }
    ag_buf_appendf(&path, "index=%lld&wait=%llu", (long long)w->index,
                   (unsigned long long)r->wait_ms);
    int rc = reg_send(r, w->is_config ? OP_WATCH_CONFIG : OP_WATCH_SERVICE, w, "GET",
                      ag_buf_cstr(&path), NULL, r->wait_ms + REG_POLL_MARGIN_MS);
    ag_buf_release(&path);
    if (rc == 0) {
        w->in_flight = true;
    } else if (rc != AG_ECLOSED) {
        w->failures++;
        uv_timer_start(&w->timer, on_watch_timer, retry_wait(r, w->failures, r->retry_max_ms), 0);
    }
}

/* Parse the instances of a service answer into 'out' (borrowing from
 * 'doc'). Entries that are not well-formed are skipped. */
static size_t
parse_instances(json_t *doc, struct ag_registry_instance **out)
{
    json_t *arr = json_object_get(doc, "instances");
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    struct ag_registry_instance *insts = ag_calloc(n ? n : 1, sizeof(*insts));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(arr, i);
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *addr = json_string_value(json_object_get(it, "address"));
        json_t *port = json_object_get(it, "port");
        if (id == NULL || addr == NULL || !json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535)
            continue;
        json_t *md = json_object_get(it, "metadata");
        if (!json_is_object(md)) {
            md = json_object();
            json_object_set_new(it, "metadata", md);
        }
        insts[m++] = (struct ag_registry_instance){ id, addr, (int)json_integer_value(port), md };
    }
    *out = insts;
    return m;
}

static bool
same_instances(const struct ag_registry_instance *a, size_t na,
               const struct ag_registry_instance *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t j = 0; j < nb && !found; j++) {
            found = strcmp(a[i].id, b[j].id) == 0 && strcmp(a[i].address, b[j].address) == 0 &&
                    a[i].port == b[j].port && json_equal(a[i].metadata, b[j].metadata);
        }
        if (!found)
            return false;
    }
    return true;
}

static void
mirror_upstream(struct reg_watch *w)
{
    struct ag_registry *r = w->reg;
    struct ag_upstream_instance *ups = ag_calloc(w->ninsts ? w->ninsts : 1, sizeof(*ups));
    for (size_t i = 0; i < w->ninsts; i++)
        ups[i] = (struct ag_upstream_instance){
            w->insts[i].id, w->insts[i].address, w->insts[i].port,
            json_string_value(json_object_get(w->insts[i].metadata, "incarnation"))
        };
    int rc = ag_http_client_set_upstream(r->http, w->name, ups, w->ninsts);
    if (rc != 0 && rc != AG_ECLOSED)
        AG_LOGW(REG_LOG, "cannot update upstream '%s': %s", w->name, ag_strerror(rc));
    ag_free(ups);
}

static void
service_answer(struct reg_watch *w, json_t *doc)
{
    struct ag_registry *r = w->reg;
    struct ag_registry_instance *insts;
    size_t n = parse_instances(doc, &insts);
    if (w->loaded && same_instances(insts, n, w->insts, w->ninsts)) {
        ag_free(insts);
        json_decref(doc);
        return;
    }
    json_decref(w->doc);
    ag_free(w->insts);
    w->doc = doc;
    w->insts = insts;
    w->ninsts = n;
    w->loaded = true;
    AG_LOGD(REG_LOG, "service '%s': %zu instance(s)", w->name, n);
    if (w->mirror)
        mirror_upstream(w);
    if (w->svc_cb != NULL)
        w->svc_cb(r, w->name, w->insts, w->ninsts, w->udata);
}

/* ---- Configuration watches ---- */

static void
config_answer(struct reg_watch *w, json_t *doc)
{
    struct ag_registry *r = w->reg;
    json_t *arr = json_object_get(doc, "items");
    json_t *items = json_object();
    for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr); i++) {
        json_t *it = json_array_get(arr, i);
        const char *key = json_string_value(json_object_get(it, "key"));
        if (key != NULL && json_object_get(it, "value") != NULL)
            json_object_set(items, key, it);
    }
    json_t *old = w->items;
    w->items = items;
    bool first = !w->loaded;
    w->loaded = true;
    /* Hold references: a callback may stop the client, not free these. */
    json_incref(items);
    const char *key;
    json_t *it;
    json_object_foreach(items, key, it)
    {
        json_t *prev = old ? json_object_get(old, key) : NULL;
        json_t *version = json_object_get(it, "version");
        if (!first && prev != NULL && json_equal(json_object_get(prev, "version"), version) &&
            json_equal(json_object_get(prev, "modify_index"), json_object_get(it, "modify_index")))
            continue;
        if (w->cfg_cb != NULL && !r->stopping)
            w->cfg_cb(r, key, json_object_get(it, "value"), json_integer_value(version), w->udata);
    }
    if (old != NULL) {
        json_object_foreach(old, key, it)
        {
            if (json_object_get(items, key) != NULL)
                continue;
            if (w->cfg_cb != NULL && !r->stopping)
                w->cfg_cb(r, key, NULL, json_integer_value(json_object_get(it, "version")),
                          w->udata);
        }
    }
    json_decref(items);
    json_decref(old);
    json_decref(doc);
}

static void
on_watch_done(struct reg_watch *w, struct reg_ticket *t, const struct ag_http_client_response *resp)
{
    struct ag_registry *r = w->reg;
    w->in_flight = false;
    if (resp->err == AG_ECLOSED)
        return; /* stopping, or the HTTP client is gone */
    set_connected(r, answered(resp));
    json_t *doc = NULL;
    if (resp->err == 0 && resp->status == 200)
        doc = ag_json_parse(resp->body.ptr, resp->body.len, NULL, 0);
    json_t *jindex = doc ? json_object_get(doc, "index") : NULL;
    if (doc == NULL || !json_is_integer(jindex)) {
        json_decref(doc);
        w->failures++;
        if (w->failures == 1)
            AG_LOGW(REG_LOG, "watch of %s '%s' failed: %s", w->is_config ? "prefix" : "service",
                    w->name,
                    resp->err ? ag_strerror(resp->err)
                              : (resp->status == 200 ? "bad answer" : "HTTP error"));
        uv_timer_start(&w->timer, on_watch_timer, retry_wait(r, w->failures, r->retry_max_ms), 0);
        return;
    }
    int64_t index = json_integer_value(jindex);
    int64_t prev = w->index;
    bool reset = index < prev;
    if (reset) {
        /* The registry's index went back (a new registry, or its state
         * was lost): start over so the next answer is immediate. */
        AG_LOGI(REG_LOG, "registry index went back from %lld to %lld; resetting the watch of '%s'",
                (long long)prev, (long long)index, w->name);
        w->index = 0;
    } else {
        w->index = index;
    }
    w->failures = 0;
    if (w->is_config)
        config_answer(w, doc);
    else
        service_answer(w, doc);
    if (r->stopping)
        return;
    /* An unchanged answer that came back at once (a registry that is
     * stopping answers every poll immediately) waits a little, so a
     * misbehaving server cannot make us spin. */
    uint64_t took = ag_time_mono_ms() - t->sent_ms;
    if (!reset && index == prev && took < REG_FAST_POLL_MS && r->wait_ms >= REG_FAST_POLL_MS) {
        uv_timer_start(&w->timer, on_watch_timer, retry_wait(r, 1, r->retry_max_ms), 0);
        return;
    }
    poll_send(w);
}

/* ---- Dispatch ---- */

static void on_stop_sent(struct ag_registry *r);

static void
on_http(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    struct reg_ticket *t = udata;
    struct ag_registry *r = t->reg;
    AG_UNUSED(client);
    ticket_unlink(t);
    switch (t->op) {
    case OP_REGISTER:
        if (resp->err != AG_ECLOSED && !r->stopping)
            on_register_done(r, resp);
        break;
    case OP_HEARTBEAT:
        if (resp->err != AG_ECLOSED && !r->stopping)
            on_heartbeat_done(r, resp);
        break;
    case OP_DEREGISTER:
        if (resp->err == 0 && (resp->status == 204 || resp->status == 404))
            AG_LOGI(REG_LOG, "deregistered '%s' instance '%s'", r->service, r->instance_id);
        else
            AG_LOGW(REG_LOG, "cannot deregister '%s' instance '%s': %s", r->service, r->instance_id,
                    resp->err ? ag_strerror(resp->err) : "HTTP error");
        on_stop_sent(r);
        break;
    case OP_WATCH_SERVICE:
    case OP_WATCH_CONFIG: on_watch_done(t->watch, t, resp); break;
    }
    ag_free(t);
}

/* ---- Public API ---- */

int
ag_registry_new(uv_loop_t *loop, struct ag_http_client *client,
                const struct ag_registry_config *cfg, struct ag_registry **out_reg)
{
    if (out_reg != NULL)
        *out_reg = NULL;
    if (loop == NULL || client == NULL || cfg == NULL || out_reg == NULL || cfg->url == NULL ||
        strncmp(cfg->url, "http://", 7) != 0 || cfg->url[7] == '\0')
        return AG_EINVAL;
    if (cfg->service != NULL && (cfg->service[0] == '\0' || cfg->port < 1 || cfg->port > 65535 ||
                                 (cfg->metadata != NULL && !json_is_object(cfg->metadata))))
        return AG_EINVAL;
    struct ag_registry *r = ag_calloc(1, sizeof(*r));
    r->magic = REG_MAGIC;
    r->loop = loop;
    r->http = client;
    size_t len = strlen(cfg->url);
    while (len > 7 && cfg->url[len - 1] == '/')
        len--;
    r->base = ag_strndup(cfg->url, len);
    r->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : REG_DEF_TTL_MS;
    r->wait_ms = cfg->watch_wait_ms ? cfg->watch_wait_ms : REG_DEF_WAIT_MS;
    r->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : REG_DEF_RETRY_MAX_MS;
    r->identity = cfg->identity;
    if (cfg->service != NULL) {
        r->service = ag_strdup(cfg->service);
        r->instance_id = cfg->instance_id ? ag_strdup(cfg->instance_id)
                                          : ag_asprintf("%s-%ld", cfg->service, (long)getpid());
        r->address = ag_strdup(cfg->address ? cfg->address : "127.0.0.1");
        r->port = cfg->port;
        r->metadata = cfg->metadata ? json_deep_copy(cfg->metadata) : json_object();
        if (r->metadata == NULL)
            r->metadata = json_object();
        struct ag_buf p = AG_BUF_INIT(0);
        ag_buf_append_cstr(&p, "/v1/services/");
        append_escaped(&p, r->service);
        ag_buf_append_cstr(&p, "/instances/");
        append_escaped(&p, r->instance_id);
        r->inst_path = ag_buf_detach(&p, NULL);
    }
    r->rng = ag_time_mono_ns() ^ ((uint64_t)(uintptr_t)r << 12) ^ (uint64_t)getpid();
    if (r->rng == 0)
        r->rng = 0x9E3779B97F4A7C15ULL;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->handles = 1;
    *out_reg = r;
    return 0;
}

void
ag_registry_start(struct ag_registry *r)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    if (r->started || r->stopping)
        return;
    r->started = true;
    if (r->service != NULL)
        register_send(r);
    for (struct reg_watch *w = r->watches; w != NULL; w = w->next) {
        if (!w->in_flight)
            poll_send(w);
    }
}

static struct reg_watch *
watch_add(struct ag_registry *r, const char *name, bool is_config)
{
    struct reg_watch *w = ag_calloc(1, sizeof(*w));
    w->reg = r;
    w->is_config = is_config;
    w->name = ag_strdup(name);
    uv_timer_init(r->loop, &w->timer);
    w->timer.data = w;
    r->handles++;
    /* Append, so that watches start in the order they were added. */
    struct reg_watch **pp = &r->watches;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = w;
    return w;
}

int
ag_registry_watch_service(struct ag_registry *r, const char *name, bool client_upstream,
                          ag_registry_services_cb cb, void *udata)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    if (r->stopping)
        return AG_ECLOSED;
    if (name == NULL || name[0] == '\0')
        return AG_EINVAL;
    struct reg_watch *w = watch_add(r, name, false);
    w->mirror = client_upstream;
    w->svc_cb = cb;
    w->udata = udata;
    if (r->started)
        poll_send(w);
    return 0;
}

int
ag_registry_watch_config(struct ag_registry *r, const char *prefix, ag_registry_config_cb cb,
                         void *udata)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    if (r->stopping)
        return AG_ECLOSED;
    if (prefix == NULL)
        return AG_EINVAL;
    struct reg_watch *w = watch_add(r, prefix, true);
    w->cfg_cb = cb;
    w->udata = udata;
    if (r->started)
        poll_send(w);
    return 0;
}

size_t
ag_registry_instances(struct ag_registry *r, const char *name,
                      const struct ag_registry_instance **out_instances)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    for (struct reg_watch *w = r->watches; name != NULL && w != NULL; w = w->next) {
        if (!w->is_config && w->loaded && strcmp(w->name, name) == 0) {
            if (out_instances != NULL)
                *out_instances = w->insts;
            return w->ninsts;
        }
    }
    if (out_instances != NULL)
        *out_instances = NULL;
    return 0;
}

bool
ag_registry_is_connected(const struct ag_registry *r)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    return r->connected;
}

/* ---- Stop ---- */

static void
registry_free(struct ag_registry *r)
{
    while (r->watches != NULL) {
        struct reg_watch *w = r->watches;
        r->watches = w->next;
        json_decref(w->doc);
        json_decref(w->items);
        ag_free(w->insts);
        ag_free(w->name);
        ag_free(w);
    }
    void (*cb)(void *) = r->stop_cb;
    void *udata = r->stop_udata;
    json_decref(r->metadata);
    ag_free(r->base);
    ag_free(r->service);
    ag_free(r->instance_id);
    ag_free(r->address);
    ag_free(r->inst_path);
    r->magic = 0;
    ag_free(r);
    if (cb != NULL)
        cb(udata);
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct ag_registry *r = h->data;
    if (--r->handles == 0)
        registry_free(r);
}

static void
on_watch_handle_closed(uv_handle_t *h)
{
    struct reg_watch *w = h->data;
    struct ag_registry *r = w->reg;
    if (--r->handles == 0)
        registry_free(r);
}

/* The deregistration ended (or was not needed): close every handle. */
static void
on_stop_sent(struct ag_registry *r)
{
    if (r->closing)
        return;
    r->closing = true;
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    for (struct reg_watch *w = r->watches; w != NULL; w = w->next)
        uv_close((uv_handle_t *)&w->timer, on_watch_handle_closed);
}

void
ag_registry_stop(struct ag_registry *r, void (*cb)(void *udata), void *udata)
{
    AG_CHECK_MAGIC(r, REG_MAGIC);
    if (r->stopping)
        AG_BUG("registry client stopped twice");
    r->stopping = true;
    r->stop_cb = cb;
    r->stop_udata = udata;
    uv_timer_stop(&r->timer);
    for (struct reg_watch *w = r->watches; w != NULL; w = w->next)
        uv_timer_stop(&w->timer);
    /* Abandon the requests in flight (their callbacks run now with
     * AG_ECLOSED and do nothing more while stopping). */
    while (r->tickets != NULL) {
        struct reg_ticket *t = r->tickets;
        if (ag_http_client_cancel(r->http, on_http, t) == 0) {
            ticket_unlink(t);
            ag_free(t);
        }
    }
    if (r->service != NULL && r->ever_sent &&
        reg_send(r, OP_DEREGISTER, NULL, "DELETE", r->inst_path, NULL, REG_STOP_TIMEOUT_MS) == 0)
        return;
    on_stop_sent(r);
}
