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

struct probe_set {
    struct gw *gw;
    struct ag_http_req *req;
    json_t *root;     /* the answer being built */
    json_t *services; /* borrowed from root */
    size_t pending;   /* probes not answered yet */
    bool started;     /* every probe has been sent */
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

static void
probe_instance(struct probe_set *ps, const char *service, const char *id, const char *host,
               int port)
{
    struct gw *gw = ps->gw;
    json_t *inst = json_pack("{s:s, s:s, s:i, s:b}", "id", id, "address", host, "port", port,
                             "ejected", ag_http_client_is_ejected(gw->client, service, id));
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
gw_health_services(struct ag_http_req *req, void *udata)
{
    struct gw *gw = udata;
    struct probe_set *ps = ag_pool_calloc(req->pool, sizeof(*ps));
    ps->gw = gw;
    ps->req = req;
    ps->services = json_object();
    ps->root = json_pack("{s:s, s:s, s:o}", "status", "unknown", "config",
                         gw->config ? gw->config->source : "", "services", ps->services);
    const struct gw_config *cfg = gw->config;
    for (size_t i = 0; cfg != NULL && i < cfg->nservices; i++) {
        const char *name = cfg->services[i];
        const struct gw_upstream *up = gw_static_upstream(gw, name);
        json_t *svc = json_pack("{s:s, s:s, s:[]}", "source",
                                up        ? "static"
                                : gw->reg ? "registry"
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
                            json_boolean(up != NULL || registered > 0 ||
                                         in_list(gw->settings.expected_services, name)));
        if (up != NULL) {
            for (size_t k = 0; k < up->n; k++)
                probe_instance(ps, name, up->instances[k].id, up->instances[k].host,
                               up->instances[k].port);
        } else if (gw->reg != NULL) {
            const struct ag_registry_instance *inst = NULL;
            size_t n = ag_registry_instances(gw->reg, name, &inst);
            /* Copy first: a probe's synchronous failure must not see the
             * registry's cache change under it. */
            struct ag_registry_instance *copy = ag_pool_alloc(req->pool, (n + 1) * sizeof(*copy));
            for (size_t k = 0; k < n; k++) {
                copy[k].id = ag_pool_strdup(req->pool, inst[k].id);
                copy[k].address = ag_pool_strdup(req->pool, inst[k].address);
                copy[k].port = inst[k].port;
            }
            for (size_t k = 0; k < n; k++)
                probe_instance(ps, name, copy[k].id, copy[k].address, copy[k].port);
        }
    }
    ps->started = true;
    if (ps->pending == 0)
        finish(ps);
}
