/* SPDX-License-Identifier: MIT */
/* GET /health/services: the aggregate view an operator (or `agora status`)
 * wants from the one process that knows the whole route table. For every
 * service the routes name: the instances known (static or from the
 * registry), the client's breaker and ejection state, and a live probe of
 * each instance's /health with a short deadline. 200 when every service has
 * at least one healthy instance, else 503; details in JSON either way. */
#include "agora/base.h"
#include "gateway.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

struct probe_set {
    struct gw *gw;
    struct ag_http_req *req;
    json_t *root;     /* the answer being built */
    json_t *services; /* borrowed from root */
    size_t pending;   /* probes not answered yet */
    bool started;     /* every probe has been sent */
    bool admin;       /* the console's view: counters added, always 200 */
};

struct probe {
    struct probe_set *ps;
    json_t *inst; /* borrowed from ps->root */
};

static const char *
breaker_name(enum ag_breaker_state s)
{
    switch (s) {
    case AG_BREAKER_CLOSED: return "closed";
    case AG_BREAKER_OPEN: return "open";
    case AG_BREAKER_HALF_OPEN: return "half-open";
    }
    return "closed";
}

static void
finish(struct probe_set *ps)
{
    bool all_ok = true;
    const char *name;
    json_t *svc;
    json_object_foreach(ps->services, name, svc)
    {
        size_t healthy = 0;
        size_t i;
        json_t *inst;
        json_array_foreach(json_object_get(svc, "instances"), i, inst)
        {
            healthy += strcmp(json_string_value(json_object_get(inst, "status")), "ok") == 0;
        }
        json_object_set_new(svc, "healthy", json_integer((json_int_t)healthy));
        if (!json_is_true(json_object_get(svc, "expected"))) {
            /* Routed, but neither started by the supervisor, configured nor
             * registered: not part of this deployment. */
            json_object_set_new(svc, "status", json_string("not_deployed"));
            continue;
        }
        json_object_set_new(svc, "status", json_string(healthy > 0 ? "ok" : "down"));
        all_ok = all_ok && healthy > 0;
    }
    json_object_set_new(ps->root, "status", json_string(all_ok ? "ok" : "degraded"));
    if (ps->admin) {
        for (size_t i = 0; i < GW_STATS_MAX && ps->gw->stats[i].name[0] != '\0'; i++) {
            const struct gw_svc_stats *st = &ps->gw->stats[i];
            json_t *s = json_object_get(ps->services, st->name);
            if (s == NULL)
                continue;
            json_object_set_new(s, "requests",
                                json_pack("{s:I, s:I, s:I}", "total", (json_int_t)st->requests,
                                          "errors", (json_int_t)st->errors, "duration_us",
                                          (json_int_t)st->total_us));
        }
        json_object_set_new(ps->root, "time_ms", json_integer((json_int_t)ag_time_unix_ms()));
        ag_send_json(ps->req, 200, ps->root);
        return;
    }
    ag_send_json(ps->req, all_ok ? 200 : 503, ps->root);
}

static void
on_probe(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct probe *p = udata;
    struct probe_set *ps = p->ps;
    bool ok = resp->err == 0 && resp->status == 200;
    json_object_set_new(p->inst, "status", json_string(ok ? "ok" : "down"));
    if (resp->err != 0)
        json_object_set_new(p->inst, "error", json_string(ag_strerror(resp->err)));
    else
        json_object_set_new(p->inst, "http_status", json_integer(resp->status));
    if (--ps->pending == 0 && ps->started)
        finish(ps);
}

/* The Unix milliseconds a UUIDv7 was made at (its first 48 bits), or -1. */
static int64_t
uuid7_ms(const char *u)
{
    int64_t ms = 0;
    int digits = 0;
    for (const char *p = u; *p != '\0' && digits < 12; p++) {
        if (*p == '-')
            continue;
        int v = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                         : -1;
        if (v < 0)
            return -1;
        ms = ms * 16 + v;
        digits++;
    }
    return digits == 12 ? ms : -1;
}

static void
probe_instance(struct probe_set *ps, const char *service, const char *id, const char *host,
               int port, const char *incarnation)
{
    struct gw *gw = ps->gw;
    json_t *inst = json_pack("{s:s, s:s, s:i, s:b}", "id", id, "address", host, "port", port,
                             "ejected", ag_http_client_is_ejected(gw->client, service, id));
    if (incarnation != NULL) {
        /* A new one per process (the chassis registers a UUIDv7): the
         * console tells a restarted instance and its uptime from it. */
        json_object_set_new(inst, "incarnation", json_string(incarnation));
        int64_t ms = uuid7_ms(incarnation);
        if (ms >= 0)
            json_object_set_new(inst, "started_ms", json_integer((json_int_t)ms));
    }
    json_array_append_new(json_object_get(json_object_get(ps->services, service), "instances"),
                          inst);
    struct probe *p = ag_pool_calloc(ps->req->pool, sizeof(*p));
    p->ps = ps;
    p->inst = inst;
    const char *url = strchr(host, ':') != NULL
                          ? ag_pool_printf(ps->req->pool, "http://[%s]:%d/health", host, port)
                          : ag_pool_printf(ps->req->pool, "http://%s:%d/health", host, port);
    struct ag_http_client_request r = {
        .method = "GET",
        .url = url,
        .timeout_ms = gw->settings.health_timeout_ms,
        .max_retries = -1,
        .request_id = ag_req_id(ps->req),
    };
    ps->pending++;
    int rc = ag_http_client_send(gw->client, &r, on_probe, p);
    if (rc != 0) {
        ps->pending--;
        json_object_set_new(inst, "status", json_string("down"));
        json_object_set_new(inst, "error", json_string(ag_strerror(rc)));
    }
}

/* Is 'name' in the comma-separated 'list'? */
static bool
in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p += len + (comma != NULL);
    }
    return false;
}

void
gw_stats_record(struct gw *gw, const char *service, bool error, uint64_t dur_ns)
{
    size_t i = 0;
    while (i < GW_STATS_MAX && gw->stats[i].name[0] != '\0' &&
           strcmp(gw->stats[i].name, service) != 0)
        i++;
    if (i == GW_STATS_MAX || strlen(service) >= sizeof(gw->stats[i].name))
        return; /* more services than slots: the rest are not counted */
    struct gw_svc_stats *st = &gw->stats[i];
    if (st->name[0] == '\0')
        memcpy(st->name, service, strlen(service) + 1);
    st->requests++;
    st->errors += error;
    st->total_us += dur_ns / 1000;
}

static void
probe_all(struct gw *gw, struct ag_http_req *req, bool admin)
{
    struct probe_set *ps = ag_pool_calloc(req->pool, sizeof(*ps));
    ps->gw = gw;
    ps->req = req;
    ps->admin = admin;
    ps->services = json_object();
    ps->root = json_pack("{s:s, s:s, s:o}", "status", "unknown", "config",
                         gw->config ? gw->config->source : "", "services", ps->services);
    const struct gw_config *cfg = gw->config;
    for (size_t i = 0; cfg != NULL && i < cfg->nservices; i++) {
        const char *name = cfg->services[i];
        const struct gw_upstream *up = gw_static_upstream(gw, name);
        json_t *svc = json_pack("{s:s, s:s, s:[]}", "source",
                                up && up->dns ? "dns"
                                : up          ? "static"
                                : gw->reg     ? "registry"
                                              : "none",
                                "breaker", breaker_name(ag_http_client_breaker(gw->client, name)),
                                "instances");
        json_object_set_new(ps->services, name, svc);
        size_t registered = 0;
        if (up == NULL && gw->reg != NULL) {
            const struct ag_registry_instance *ignored = NULL;
            registered = ag_registry_instances(gw->reg, name, &ignored);
        }
        json_object_set_new(svc, "expected",
                            json_boolean((up != NULL && !up->dns) || registered > 0 ||
                                         in_list(gw->settings.expected_services, name)));
        if (up != NULL) {
            for (size_t k = 0; k < up->n; k++)
                probe_instance(ps, name, up->instances[k].id, up->instances[k].host,
                               up->instances[k].port, NULL);
        } else if (gw->reg != NULL) {
            const struct ag_registry_instance *inst = NULL;
            size_t n = ag_registry_instances(gw->reg, name, &inst);
            /* Copy first: a probe's synchronous failure must not see the
             * registry's cache change under it. */
            struct ag_registry_instance *copy = ag_pool_alloc(req->pool, (n + 1) * sizeof(*copy));
            const char **incs = ag_pool_alloc(req->pool, (n + 1) * sizeof(*incs));
            for (size_t k = 0; k < n; k++) {
                copy[k].id = ag_pool_strdup(req->pool, inst[k].id);
                copy[k].address = ag_pool_strdup(req->pool, inst[k].address);
                copy[k].port = inst[k].port;
                const char *inc =
                    json_string_value(json_object_get(inst[k].metadata, "incarnation"));
                incs[k] = inc != NULL ? ag_pool_strdup(req->pool, inc) : NULL;
            }
            for (size_t k = 0; k < n; k++)
                probe_instance(ps, name, copy[k].id, copy[k].address, copy[k].port, incs[k]);
        }
    }
    ps->started = true;
    if (ps->pending == 0)
        finish(ps);
}

void
gw_health_services(struct ag_http_req *req, void *udata)
{
    probe_all(udata, req, false);
}

void
gw_admin_services(struct gw *gw, struct ag_http_req *req)
{
    probe_all(gw, req, true);
}
