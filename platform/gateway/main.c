/* SPDX-License-Identifier: MIT */
/* API gateway: composition root. Loads the settings and the route table
 * (file, then the registry key gateway.routes, watched so that changes
 * apply without a restart), builds the one shared HTTP client with its
 * upstreams (static from AGORA_GATEWAY_UPSTREAMS, followed in the
 * registry, or DNS names under AGORA_DISCOVERY=dns), the token verifier, the rate limiter and the static file
 * server, and hands every request the chassis does not answer itself to
 * gw_dispatch (proxy.c). It also keeps the deny list of revoked tokens
 * (deny.c): restored from the users service at start, then fed by its
 * session.revoked and user.disabled events on a subscription of this
 * instance's own. */
#include "agora/base.h"
#include "gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agora/buf.h"
#include "agora/discovery.h"
#include "agora/err.h"
#include "agora/events.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/ports.h"
#include "agora/time.h"

#ifndef GW_SOURCE_ROOT
#define GW_SOURCE_ROOT "."
#endif

#define ROUTES_KEY            "gateway.routes"
#define DEFAULT_ROUTES        "platform/gateway/routes.json"
#define DEFAULT_WEB_ROOT      "web"
#define SWEEP_INTERVAL_MS     10000
#define MAX_UPSTREAMS         64
#define MAX_INSTANCES         64
#define REVOCATIONS_PATH      "/v1/internal/revocations"
#define REVOCATIONS_EXPIRE_MS (60 * 60 * 1000) /* per-instance queue, RabbitMQ */
#define RESTORE_PAGE          1000
#define RESTORE_MAX_BYTES     (8u << 20)
#define RESTORE_RETRY_MIN     200
#define RESTORE_RETRY_MAX     5000

extern const struct ag_migration gateway_migrations[];
extern const size_t gateway_nmigrations;

static struct gw g_gw;

#define OFF(f) offsetof(struct gw_settings, f)
static const struct ag_config_key GW_KEYS[] = {
    { "AGORA_GATEWAY_ROUTES_FILE", AG_CONFIG_STRING, DEFAULT_ROUTES, OFF(routes_file), 0, 0, NULL,
      "route table (JSON); a relative path is tried in the working directory, then "
      "$AGORA_SOURCE_DIR, then the source tree of the build" },
    { "AGORA_GATEWAY_UPSTREAMS", AG_CONFIG_STRING, "", OFF(upstreams), 0, 0, NULL,
      "static instances, 'catalog=127.0.0.1:8081,127.0.0.1:8091;users=127.0.0.1:8082'; "
      "services listed here are not looked up in the registry" },
    { "AGORA_GATEWAY_JWKS_URL", AG_CONFIG_STRING, "", OFF(jwks_url), 0, 0, NULL,
      "JWKS URL (unset: GET /.well-known/jwks.json on upstream 'users')" },
    { "AGORA_GATEWAY_JWT_ISSUER", AG_CONFIG_STRING, "agora-users", OFF(jwt_issuer), 0, 0, NULL,
      "required 'iss' of access tokens" },
    { "AGORA_GATEWAY_JWT_AUDIENCE", AG_CONFIG_STRING, "agora", OFF(jwt_audience), 0, 0, NULL,
      "required 'aud' of access tokens" },
    { "AGORA_GATEWAY_JWT_LEEWAY", AG_CONFIG_DURATION, "30s", OFF(jwt_leeway_ms), 0, 300000, NULL,
      "clock skew allowed on exp, nbf and iat" },
    { "AGORA_GATEWAY_JWKS_REFRESH", AG_CONFIG_DURATION, "5m", OFF(jwks_refresh_ms), 1000, 86400000,
      NULL, "the JWKS is refetched this often" },
    { "AGORA_GATEWAY_JWKS_MIN_INTERVAL", AG_CONFIG_DURATION, "5s", OFF(jwks_min_interval_ms), 100,
      3600000, NULL, "least time between two JWKS fetches (an unknown kid triggers one)" },
    { "AGORA_GATEWAY_TOKEN_CACHE_SIZE", AG_CONFIG_INT, "10000", OFF(token_cache_size), 1, 10000000,
      NULL, "verified tokens cached (until they expire)" },
    { "AGORA_GATEWAY_DENY_MAX", AG_CONFIG_INT, "100000", OFF(deny_max), 1, 10000000, NULL,
      "revocations held (per user and per session); past it a session folds into its user's "
      "entry, or every token issued up to then is refused until it expires (never forgotten)" },
    { "AGORA_GATEWAY_REVOCATIONS_RESTORE", AG_CONFIG_BOOL, "true", OFF(revocations_restore), 0, 0,
      NULL,
      "load the revocations in force from users at start; until loaded, requests with a token "
      "get 503 (false: start with an empty list, for a gateway without users)" },
    { "AGORA_GATEWAY_REVOCATIONS_URL", AG_CONFIG_STRING, "", OFF(revocations_url), 0, 0, NULL,
      "base URL of the users service for the restore (unset: upstream 'users')" },
    { "AGORA_GATEWAY_REVOCATIONS_SUBSCRIPTION", AG_CONFIG_STRING, "", OFF(revocations_subscription),
      0, 0, NULL,
      "this instance's own subscription to session.revoked and user.disabled (every instance "
      "must see every revocation; unset: gateway.revocations.p<AGORA_HTTP_PORT>)" },
    { "AGORA_GATEWAY_TRUST_FORWARDED", AG_CONFIG_BOOL, "false", OFF(trust_forwarded), 0, 0, NULL,
      "behind a trusted proxy: rate-limit by the last X-Forwarded-For address and keep "
      "X-Forwarded-Proto/Host" },
    { "AGORA_GATEWAY_OPENAPI_FILE", AG_CONFIG_STRING, "", OFF(openapi_file), 0, 0, NULL,
      "the public API description served at GET /api/v1/openapi.json (the build writes "
      "<build>/openapi.json; agora up passes it); empty: 404" },
    { "AGORA_GATEWAY_WEB_ROOT", AG_CONFIG_STRING, DEFAULT_WEB_ROOT, OFF(web_root), 0, 0, NULL,
      "directory of the web UI's static files (relative: as for the routes file)" },
    { "AGORA_GATEWAY_WEB_MAX_AGE", AG_CONFIG_DURATION, "1h", OFF(web_max_age_ms), 0, 31536000000,
      NULL, "Cache-Control max-age of static files other than HTML (HTML: no-cache)" },
    { "AGORA_GATEWAY_WEB_CACHE_BYTES", AG_CONFIG_SIZE, "32MiB", OFF(web_cache_bytes), 0,
      (int64_t)1 << 32, NULL, "memory for cached static files" },
    { "AGORA_GATEWAY_WEB_MAX_FILE", AG_CONFIG_SIZE, "16MiB", OFF(web_max_file), 1, (int64_t)1 << 30,
      NULL, "largest static file served" },
    { "AGORA_GATEWAY_RATELIMIT_MAX_KEYS", AG_CONFIG_INT, "100000", OFF(ratelimit_max_keys), 16,
      10000000, NULL, "rate-limit buckets kept (least recently used evicted past it)" },
    { "AGORA_GATEWAY_HEALTH_TIMEOUT", AG_CONFIG_DURATION, "1s", OFF(health_timeout_ms), 10, 60000,
      NULL, "deadline of each probe of GET /health/services" },
    { "AGORA_GATEWAY_EXPECTED_SERVICES", AG_CONFIG_STRING, "", OFF(expected_services), 0, 0, NULL,
      "comma-separated services that should be running (agora up passes its program table); "
      "GET /health/services counts them, those with static upstreams and those registered, "
      "and reports other routed services as not deployed" },
    { "AGORA_GATEWAY_UPSTREAM_MAX_CONNECTIONS", AG_CONFIG_INT, "64", OFF(upstream_max_connections),
      1, 10000, NULL, "pooled connections per upstream instance" },
    { "AGORA_GATEWAY_UPSTREAM_CONNECT_TIMEOUT", AG_CONFIG_DURATION, "1s",
      OFF(upstream_connect_timeout_ms), 1, 60000, NULL, "TCP connect deadline to an instance" },
    { "AGORA_GATEWAY_UPSTREAM_TIMEOUT", AG_CONFIG_DURATION, "5s", OFF(upstream_timeout_ms), 1,
      600000, NULL, "whole-call deadline (retries included) of routes without timeout_ms" },
    { "AGORA_GATEWAY_UPSTREAM_RETRIES", AG_CONFIG_INT, "2", OFF(upstream_retries), 0, 10, NULL,
      "retries of safe calls for routes without \"retries\"" },
    { "AGORA_GATEWAY_MAX_RESPONSE", AG_CONFIG_SIZE, "8MiB", OFF(max_response), 1024,
      (int64_t)1 << 30, NULL, "largest upstream response (502 past it)" },
    { "AGORA_GATEWAY_BREAKER_WINDOW", AG_CONFIG_DURATION, "10s", OFF(breaker_window_ms), 100,
      600000, NULL, "sliding window over which a service's failure and slow-call rates count" },
    { "AGORA_GATEWAY_BREAKER_MIN_CALLS", AG_CONFIG_INT, "20", OFF(breaker_min_calls), 1, 100000,
      NULL, "calls in the window before a rate can open the breaker" },
    { "AGORA_GATEWAY_BREAKER_FAILURE_RATE", AG_CONFIG_INT, "50", OFF(breaker_failure_rate), 1, 101,
      NULL, "percent of failed calls in the window that opens the breaker (101: never)" },
    { "AGORA_GATEWAY_BREAKER_SLOW", AG_CONFIG_DURATION, "2s", OFF(breaker_slow_ms), 1, 600000, NULL,
      "a call at least this long is slow" },
    { "AGORA_GATEWAY_BREAKER_SLOW_RATE", AG_CONFIG_INT, "100", OFF(breaker_slow_rate), 1, 101, NULL,
      "percent of slow calls in the window that opens the breaker (101: never)" },
    { "AGORA_GATEWAY_BREAKER_OPEN", AG_CONFIG_DURATION, "5s", OFF(breaker_open_ms), 10, 600000,
      NULL, "time a breaker stays open before a probe" },
    { "AGORA_GATEWAY_EJECT_FAILURES", AG_CONFIG_INT, "3", OFF(eject_failures), 1, 1000, NULL,
      "consecutive failures that eject an instance" },
    { "AGORA_GATEWAY_EJECT_TIME", AG_CONFIG_DURATION, "10s", OFF(eject_time_ms), 10, 3600000, NULL,
      "base ejection time (doubled on repeat, at most 8x)" },
    { "AGORA_GATEWAY_MAX_EJECTED_PERCENT", AG_CONFIG_INT, "50", OFF(max_ejected_percent), 1, 100,
      NULL, "never eject more than this share of a service's instances" },
    { "AGORA_GATEWAY_RETRY_BUDGET", AG_CONFIG_INT, "20", OFF(retry_budget_percent), 1, 1000, NULL,
      "retries allowed, in percent of recent calls (plus 10 per 10 s)" },
};
#undef OFF

/* ---- Paths ---- */

static bool
exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A relative 'path' is looked up in the working directory, then under
 * $AGORA_SOURCE_DIR, then in the source tree the binary was built from. */
static char *
resolve_path(const char *path)
{
    if (path[0] == '/' || exists(path))
        return ag_strdup(path);
    const char *src = getenv("AGORA_SOURCE_DIR");
    if (src != NULL && src[0] != '\0') {
        char *p = ag_asprintf("%s/%s", src, path);
        if (exists(p))
            return p;
        ag_free(p);
    }
    char *p = ag_asprintf("%s/%s", GW_SOURCE_ROOT, path);
    if (exists(p))
        return p;
    ag_free(p);
    return ag_strdup(path);
}

/* ---- Static upstreams ---- */

const struct gw_upstream *
gw_static_upstream(const struct gw *gw, const char *name)
{
    for (size_t i = 0; i < gw->nupstreams; i++) {
        if (strcmp(gw->upstreams[i].name, name) == 0)
            return &gw->upstreams[i];
    }
    return NULL;
}

static void
upstreams_free(struct gw *gw)
{
    for (size_t i = 0; i < gw->nupstreams; i++) {
        struct gw_upstream *u = &gw->upstreams[i];
        for (size_t k = 0; k < 2 * u->n; k++)
            ag_free(u->strings[k]);
        ag_free(u->strings);
        ag_free(u->instances);
        ag_free(u->name);
    }
    ag_free(gw->upstreams);
    gw->upstreams = NULL;
    gw->nupstreams = 0;
}

/* Parse "name=host:port,host:port;name=host:port". */
static int
parse_upstreams(struct gw *gw, const char *spec, char *err, size_t errlen)
{
    char *copy = ag_strdup(spec);
    char *save = NULL;
    int rc = 0;
    for (char *group = strtok_r(copy, ";", &save); group != NULL && rc == 0;
         group = strtok_r(NULL, ";", &save)) {
        while (*group == ' ')
            group++;
        if (*group == '\0')
            continue;
        char *eq = strchr(group, '=');
        if (eq == NULL || eq == group || gw->nupstreams >= MAX_UPSTREAMS) {
            snprintf(err, errlen, "'%s' is not name=host:port[,host:port...]", group);
            rc = AG_ECONFIG;
            break;
        }
        *eq = '\0';
        if (gw_static_upstream(gw, group) != NULL) {
            snprintf(err, errlen, "service '%s' listed twice", group);
            rc = AG_ECONFIG;
            break;
        }
        gw->upstreams = ag_realloc(gw->upstreams, (gw->nupstreams + 1) * sizeof(*gw->upstreams));
        struct gw_upstream *u = &gw->upstreams[gw->nupstreams++];
        memset(u, 0, sizeof(*u));
        u->name = ag_strdup(group);
        char *isave = NULL;
        for (char *hp = strtok_r(eq + 1, ",", &isave); hp != NULL;
             hp = strtok_r(NULL, ",", &isave)) {
            while (*hp == ' ')
                hp++;
            char *colon = strrchr(hp, ':');
            int64_t port = 0;
            if (colon == NULL || colon == hp || u->n >= MAX_INSTANCES ||
                ag_str_to_i64(ag_str_from_cstr(colon + 1), 1, 65535, &port) != 0) {
                snprintf(err, errlen, "'%s' is not host:port", hp);
                rc = AG_ECONFIG;
                break;
            }
            *colon = '\0';
            const char *host = hp;
            size_t hlen = strlen(host);
            if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
                host++;
                hlen -= 2;
            }
            u->instances = ag_realloc(u->instances, (u->n + 1) * sizeof(*u->instances));
            u->strings = ag_realloc(u->strings, 2 * (u->n + 1) * sizeof(char *));
            char *h = ag_strndup(host, hlen);
            char *id = ag_asprintf("%s:%d", h, (int)port);
            u->strings[2 * u->n] = h;
            u->strings[2 * u->n + 1] = id;
            u->instances[u->n] =
                (struct ag_upstream_instance){ .id = id, .host = h, .port = (int)port };
            u->n++;
        }
        if (rc == 0 && u->n == 0) {
            snprintf(err, errlen, "service '%s' has no instances", u->name);
            rc = AG_ECONFIG;
        }
    }
    ag_free(copy);
    return rc;
}

/* ---- Route table ---- */

static bool
is_watched(const struct gw *gw, const char *name)
{
    for (size_t i = 0; i < gw->nwatched; i++) {
        if (strcmp(gw->watched[i], name) == 0)
            return true;
    }
    return false;
}

/* The chassis's registry client mirrors instances into the chassis's own
 * HTTP client; the gateway proxies through its own client (tuned for
 * proxying), so it mirrors them there itself. */
static void
on_instances(struct ag_registry *reg, const char *service,
             const struct ag_registry_instance *instances, size_t n, void *udata)
{
    AG_UNUSED(reg);
    struct gw *gw = udata;
    if (gw->client == NULL)
        return;
    struct ag_upstream_instance *up = ag_calloc(n ? n : 1, sizeof(*up));
    for (size_t i = 0; i < n; i++) {
        up[i].id = instances[i].id;
        up[i].host = instances[i].address;
        up[i].port = instances[i].port;
    }
    int rc = ag_http_client_set_upstream(gw->client, service, up, n);
    if (rc != 0)
        AG_LOGW("gateway", "cannot update upstream '%s': %s", service, ag_strerror(rc));
    ag_free(up);
}

/* AGORA_DISCOVERY=dns...: service 'name' becomes one static upstream, the
 * host name of the template (a Kubernetes Service), which the HTTP client
 * resolves and re-resolves; the platform balances over its pods. */
static void
add_dns_upstream(struct gw *gw, const char *spec, const char *name)
{
    char host[AG_DISCOVERY_HOSTLEN];
    int port = 0;
    int rc = ag_discovery_dns_address(spec, name, host, sizeof(host), &port);
    if (rc != 0 || gw->nupstreams >= MAX_UPSTREAMS) {
        AG_LOGW("gateway", "no DNS name for service '%s' under AGORA_DISCOVERY '%s': %s", name,
                spec, rc != 0 ? ag_strerror(rc) : "too many upstreams");
        return;
    }
    gw->upstreams = ag_realloc(gw->upstreams, (gw->nupstreams + 1) * sizeof(*gw->upstreams));
    struct gw_upstream *u = &gw->upstreams[gw->nupstreams++];
    memset(u, 0, sizeof(*u));
    u->name = ag_strdup(name);
    u->dns = true;
    u->n = 1;
    u->strings = ag_calloc(2, sizeof(char *));
    u->strings[0] = ag_strdup(host);
    u->strings[1] = ag_asprintf("%s:%d", host, port);
    u->instances = ag_calloc(1, sizeof(*u->instances));
    u->instances[0] =
        (struct ag_upstream_instance){ .id = u->strings[1], .host = u->strings[0], .port = port };
    AG_LOGI("gateway", "service '%s' at %s (DNS discovery)", name, u->strings[1]);
    /* Before on_start the client does not exist yet; on_start sets every
     * upstream of the list. */
    if (gw->client != NULL) {
        rc = ag_http_client_set_upstream(gw->client, name, u->instances, u->n);
        if (rc != 0)
            AG_LOGW("gateway", "cannot set upstream '%s': %s", name, ag_strerror(rc));
    }
}

static void
watch_services(struct gw *gw)
{
    if (gw->config == NULL)
        return;
    const char *spec = gw->svc != NULL ? ag_service_settings(gw->svc)->discovery : "";
    enum ag_discovery_kind kind = AG_DISCOVERY_REGISTRY;
    char err[256];
    if (ag_discovery_parse(spec, &kind, err, sizeof(err)) == 0 && kind == AG_DISCOVERY_DNS) {
        for (size_t i = 0; i < gw->config->nservices; i++) {
            if (gw_static_upstream(gw, gw->config->services[i]) == NULL)
                add_dns_upstream(gw, spec, gw->config->services[i]);
        }
        return;
    }
    if (gw->reg == NULL)
        return;
    for (size_t i = 0; i < gw->config->nservices; i++) {
        const char *name = gw->config->services[i];
        if (gw_static_upstream(gw, name) != NULL || is_watched(gw, name))
            continue;
        int rc = ag_registry_watch_service(gw->reg, name, false, on_instances, gw);
        if (rc != 0) {
            AG_LOGW("gateway", "cannot watch service '%s' in the registry: %s", name,
                    ag_strerror(rc));
            continue;
        }
        gw->watched = ag_realloc(gw->watched, (gw->nwatched + 1) * sizeof(char *));
        gw->watched[gw->nwatched++] = ag_strdup(name);
    }
}

void
gw_config_install(struct gw *gw, struct gw_config *cfg)
{
    struct gw_config *old = gw->config;
    gw->config = cfg;
    gw_config_unref(old);
    ag_counter_add(gw->m_config_reloads, NULL, 1);
    AG_LOGI("gateway", "route table in use: %zu routes, %zu services, from %s", cfg->nroutes,
            cfg->nservices, cfg->source);
    watch_services(gw);
}

static void
on_routes_config(struct ag_registry *reg, const char *key, const json_t *value, int64_t version,
                 void *udata)
{
    AG_UNUSED(reg);
    struct gw *gw = udata;
    if (strcmp(key, ROUTES_KEY) != 0)
        return;
    if (value == NULL) {
        if (gw->registry_version != 0) {
            AG_LOGI("gateway", "registry key '%s' deleted; back to '%s'", key, gw->routes_path);
            gw->registry_version = 0;
            gw_config_install(gw, gw_config_ref(gw->file_config));
        }
        return;
    }
    json_t *doc = (json_t *)value;
    json_t *parsed = NULL;
    char err[256];
    if (json_is_string(value)) {
        /* A route table stored as JSON text rather than as a JSON value. */
        parsed =
            ag_json_parse(json_string_value(value), json_string_length(value), err, sizeof(err));
        if (parsed == NULL) {
            AG_LOGE("gateway", "registry key '%s' version %lld: %s; keeping the current routes",
                    key, (long long)version, err);
            return;
        }
        doc = parsed;
    }
    char src[96];
    snprintf(src, sizeof(src), "registry:%s@%lld", key, (long long)version);
    struct gw_config *cfg = NULL;
    int rc = gw_config_compile(doc, src, &cfg, err, sizeof(err));
    json_decref(parsed);
    if (rc != 0) {
        AG_LOGE("gateway",
                "registry key '%s' version %lld is not a valid route table: %s; "
                "keeping the current routes",
                key, (long long)version, err);
        return;
    }
    gw->registry_version = version > 0 ? version : 1;
    gw_config_install(gw, cfg);
}

/* ---- Revocations: restore from users, then events ---- */

struct gw_restore {
    struct gw *gw;
    uv_timer_t timer;
    bool timer_ready;
    bool stopped;
    bool timer_closed; /* after restore_stop: freed once also no fetch is in flight */
    bool fetching;
    int64_t after;     /* cursor: last id loaded */
    uint64_t delay_ms; /* next retry delay */
    size_t loaded;     /* entries applied so far */
    bool warned;       /* a failure was logged since the last success */
};

static void
count_applied(struct gw *gw, const char *source, enum gw_deny_added r)
{
    const char *labels[] = { source };
    ag_counter_add(gw->m_deny_applied, labels, 1);
    if (r == GW_DENY_MERGED || r == GW_DENY_GLOBAL) {
        const char *how[] = { r == GW_DENY_MERGED ? "merged" : "global" };
        ag_counter_add(gw->m_deny_overflows, how, 1);
    }
}

/* Apply one revocation object (an event's data, or an item of the
 * restore). AG_EINVAL when it is not one. */
static int
apply_revocation(struct gw *gw, const json_t *o, const char *source)
{
    const char *user = json_string_value(json_object_get(o, "user_id"));
    const json_t *sid = json_object_get(o, "session_id");
    const json_t *before = json_object_get(o, "issued_before");
    const json_t *expires = json_object_get(o, "in_force_until");
    if (user == NULL || !json_is_integer(before) || !json_is_integer(expires) ||
        (sid != NULL && !json_is_string(sid) && !json_is_null(sid)))
        return AG_EINVAL;
    enum gw_deny_added r = gw_deny_add(gw->deny, user, json_string_value(sid),
                                       json_integer_value(before), json_integer_value(expires));
    count_applied(gw, source, r);
    return 0;
}

/* session.revoked and user.disabled: runs in the inbox transaction of the
 * gateway's own database; the deny list is memory, so applying twice (a
 * redelivery, or the same revocation from both events) changes nothing. */
static int
on_revocation_event(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata)
{
    AG_UNUSED(ev);
    AG_UNUSED(st);
    struct gw *gw = udata;
    const char *type = json_string_value(json_object_get(event, "type"));
    if (apply_revocation(gw, json_object_get(event, "data"), "event") != 0) {
        /* Poison: acknowledged, not redelivered forever. */
        AG_LOGW("deny", "event '%s' of type '%s' is not a revocation; skipped",
                json_string_value(json_object_get(event, "id")), type != NULL ? type : "?");
    }
    return 0;
}

static void restore_fetch(struct gw_restore *r);

static void
on_restore_timer(uv_timer_t *t)
{
    restore_fetch(t->data);
}

static void
restore_retry(struct gw_restore *r, const char *why)
{
    AG_LOG(r->warned ? AG_LOG_DEBUG : AG_LOG_WARN, "deny",
           "cannot restore the revocations from users (%s); retrying in %llu ms", why,
           (unsigned long long)r->delay_ms);
    r->warned = true;
    if (r->timer_ready && !r->stopped)
        uv_timer_start(&r->timer, on_restore_timer, r->delay_ms, 0);
    r->delay_ms = AG_MIN(r->delay_ms * 2, RESTORE_RETRY_MAX);
}

static void
on_restore_page(struct ag_http_client *client, const struct ag_http_client_response *resp,
                void *udata)
{
    AG_UNUSED(client);
    struct gw_restore *r = udata;
    r->fetching = false;
    if (r->stopped) {
        if (r->timer_closed)
            ag_free(r);
        return;
    }
    struct gw *gw = r->gw;
    char why[96];
    if (resp->err != 0 || resp->status != 200 || resp->body.len > RESTORE_MAX_BYTES) {
        if (resp->err != 0)
            snprintf(why, sizeof(why), "%s", ag_strerror(resp->err));
        else
            snprintf(why, sizeof(why), "status %d, %zu bytes", resp->status, resp->body.len);
        restore_retry(r, why);
        return;
    }
    json_t *doc = ag_json_parse(resp->body.ptr, resp->body.len, NULL, 0);
    const json_t *items = json_object_get(doc, "items");
    const json_t *next = json_object_get(doc, "next_after");
    if (!json_is_array(items) || (next != NULL && !json_is_null(next) && !json_is_integer(next))) {
        json_decref(doc);
        restore_retry(r, "not a revocation list");
        return;
    }
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        if (apply_revocation(gw, it, "restore") == 0)
            r->loaded++;
    }
    bool more = json_is_integer(next) && json_integer_value(next) > r->after;
    if (more)
        r->after = json_integer_value(next);
    json_decref(doc);
    r->warned = false;
    r->delay_ms = RESTORE_RETRY_MIN;
    if (more) {
        restore_fetch(r);
        return;
    }
    gw->deny_restored = true;
    AG_LOGI("deny", "revocations restored from users: %zu in force", r->loaded);
}

static void
restore_fetch(struct gw_restore *r)
{
    struct gw *gw = r->gw;
    if (r->stopped || r->fetching || gw->client == NULL)
        return;
    const struct gw_settings *s = &gw->settings;
    bool direct = s->revocations_url[0] != '\0';
    char url[1024];
    snprintf(url, sizeof(url), "%s%s?limit=%d&after=%lld", direct ? s->revocations_url : "",
             REVOCATIONS_PATH, RESTORE_PAGE, (long long)r->after);
    struct ag_identity_self *self = ag_service_self(gw->svc);
    struct ag_http_client_header hdr[2] = {
        { "Accept", "application/json" },
        { AG_IDENTITY_HEADER,
          self != NULL ? ag_identity_self_header(self, ag_time_unix_ms() / 1000) : "" },
    };
    struct ag_http_client_request q = {
        .method = "GET",
        .upstream = direct ? NULL : "users",
        .url = url,
        .headers = hdr,
        .nheaders = self != NULL ? 2 : 1,
        .timeout_ms = 3000,
    };
    int rc = ag_http_client_send(gw->client, &q, on_restore_page, r);
    if (rc != 0) {
        restore_retry(r, ag_strerror(rc));
        return;
    }
    r->fetching = true;
}

static void
restore_start(struct gw *gw)
{
    if (!gw->settings.revocations_restore) {
        gw->deny_restored = true;
        return;
    }
    struct gw_restore *r = ag_calloc(1, sizeof(*r));
    r->gw = gw;
    r->delay_ms = RESTORE_RETRY_MIN;
    if (uv_timer_init(gw->loop, &r->timer) != 0)
        AG_BUG("uv_timer_init failed");
    r->timer.data = r;
    r->timer_ready = true;
    gw->restore = r;
    restore_fetch(r);
}

static void
on_restore_closed(uv_handle_t *h)
{
    struct gw_restore *r = h->data;
    r->timer_closed = true;
    if (!r->fetching)
        ag_free(r);
}

/* Stop retrying. The struct goes once its timer is closed and no fetch is
 * in flight: the client answers a pending one (AG_ECLOSED) when it closes,
 * right after this. */
static void
restore_stop(struct gw *gw)
{
    struct gw_restore *r = gw->restore;
    if (r == NULL)
        return;
    gw->restore = NULL;
    r->stopped = true;
    uv_close((uv_handle_t *)&r->timer, on_restore_closed);
}

/* Subscribe this instance to the revocations (before the chassis starts
 * the events runtime). */
static int
subscribe_revocations(struct gw *gw)
{
    struct ag_events *ev = ag_service_events(gw->svc);
    if (ev == NULL)
        return 0;
    char name[128];
    const char *want = gw->settings.revocations_subscription;
    if (want[0] != '\0')
        snprintf(name, sizeof(name), "%s", want);
    else
        snprintf(name, sizeof(name), "gateway.revocations.p%lld",
                 (long long)ag_service_settings(gw->svc)->http_port);
    static const char *const topics[] = { "session.revoked", "user.disabled" };
    /* One subscription per instance: on RabbitMQ, the queue of an instance
     * gone for good (a pod replaced) is deleted by the broker after an hour
     * without a consumer. Nothing is lost to one that comes back later: it
     * restores the list from users at start. */
    const struct ag_events_sub_options opts = { .expire_after_ms = REVOCATIONS_EXPIRE_MS };
    int rc = ag_events_subscribe_ex(ev, name, topics, AG_ARRAY_SIZE(topics), &opts,
                                    on_revocation_event, gw);
    if (rc != 0)
        AG_LOGE("deny", "cannot subscribe '%s' to the revocations: %s", name, ag_strerror(rc));
    else
        AG_LOGI("deny", "revocations arrive on subscription '%s'", name);
    return rc;
}

/* ---- Metrics ---- */

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct gw *gw = udata;
    if (gw->rl != NULL)
        ag_gauge_set(gw->m_ratelimit_keys, NULL, (double)gw_ratelimit_count(gw->rl));
    if (gw->auth != NULL)
        ag_gauge_set(gw->m_token_cache, NULL, (double)gw_auth_cached(gw->auth));
    if (gw->deny != NULL) {
        struct gw_deny_stats st;
        gw_deny_stats(gw->deny, &st);
        const char *user[] = { "user" };
        const char *session[] = { "session" };
        ag_gauge_set(gw->m_deny_entries, user, (double)st.users);
        ag_gauge_set(gw->m_deny_entries, session, (double)st.sessions);
        ag_gauge_set(gw->m_deny_restored, NULL, gw->deny_restored ? 1.0 : 0.0);
    }
}

static void
register_metrics(struct gw *gw, struct ag_metrics *m)
{
    static const char *const svc_outcome[] = { "service", "outcome" };
    static const char *const svc[] = { "service" };
    static const char *const route[] = { "route" };
    static const char *const reason[] = { "reason" };
    gw->m_upstream_requests = ag_metrics_counter(
        m, "gateway_upstream_requests_total",
        "Proxied calls by service and outcome (2xx..5xx, timeout, unavailable, error)", svc_outcome,
        2);
    gw->m_upstream_duration =
        ag_metrics_histogram(m, "gateway_upstream_duration_seconds",
                             "Time from forwarding a request to its upstream answer, retries "
                             "included, by service",
                             svc, 1, NULL, 0);
    gw->m_ratelimited = ag_metrics_counter(m, "gateway_ratelimited_total",
                                           "Requests refused with 429, by route prefix", route, 1);
    gw->m_auth_failures =
        ag_metrics_counter(m, "gateway_auth_failures_total",
                           "Requests refused by authentication or roles, by reason", reason, 1);
    gw->m_config_reloads =
        ag_metrics_counter(m, "gateway_route_table_loads_total",
                           "Route tables installed (start-up and reloads)", NULL, 0);
    gw->m_ratelimit_keys =
        ag_metrics_gauge(m, "gateway_ratelimit_buckets", "Rate-limit buckets held", NULL, 0);
    gw->m_token_cache =
        ag_metrics_gauge(m, "gateway_token_cache_entries", "Verified tokens cached", NULL, 0);
    static const char *const kind[] = { "kind" };
    static const char *const source[] = { "source" };
    static const char *const how[] = { "how" };
    gw->m_deny_entries = ag_metrics_gauge(m, "gateway_deny_entries",
                                          "Revocations held in the deny list, by kind (user, "
                                          "session)",
                                          kind, 1);
    gw->m_deny_refusals = ag_metrics_counter(m, "gateway_deny_refusals_total",
                                             "Valid tokens refused as revoked, by reason (user, "
                                             "session, all)",
                                             reason, 1);
    gw->m_deny_overflows = ag_metrics_counter(
        m, "gateway_deny_overflows_total",
        "Revocations past AGORA_GATEWAY_DENY_MAX, by how they were kept (merged into the user's "
        "entry, global cut-off)",
        how, 1);
    gw->m_deny_applied = ag_metrics_counter(m, "gateway_revocations_applied_total",
                                            "Revocations applied to the deny list, by source "
                                            "(event, restore)",
                                            source, 1);
    gw->m_deny_restored =
        ag_metrics_gauge(m, "gateway_deny_restored",
                         "1 once the deny list was restored from users (until then tokens get "
                         "503)",
                         NULL, 0);
    static const char *const route_kind[] = { "route", "kind" };
    gw->m_faults = ag_metrics_counter(m, "gateway_faults_injected_total",
                                      "Requests aborted or delayed by fault injection, by route "
                                      "prefix and kind (abort, delay)",
                                      route_kind, 2);
    ag_metrics_on_collect(m, collect, gw);
}

/* ---- Lifecycle ---- */

static void
on_sweep(uv_timer_t *t)
{
    struct gw *gw = t->data;
    gw_ratelimit_sweep(gw->rl, ag_time_mono_ns());
    gw_auth_sweep(gw->auth);
    gw_deny_sweep(gw->deny, ag_time_unix_ms() / 1000);
}

/* The chassis registered this instance (AGORA_REGISTRY_URL) and owns the
 * registry client; the gateway adds its watches to it. */
static void
start_registry(struct gw *gw)
{
    gw->reg = ag_service_registry(gw->svc);
    if (gw->reg == NULL)
        return;
    watch_services(gw);
    int rc = ag_registry_watch_config(gw->reg, ROUTES_KEY, on_routes_config, gw);
    if (rc != 0)
        AG_LOGW("gateway", "cannot watch '%s': %s", ROUTES_KEY, ag_strerror(rc));
}

/* Runs once on the loop, after the listener opened (the port is known). */
static void
on_started(uv_timer_t *t)
{
    struct gw *gw = t->data;
    if (gw->stopping)
        return;
    start_registry(gw);
    gw_auth_start(gw->auth);
    restore_start(gw);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct gw *gw = udata;
    gw->svc = svc;
    gw->loop = ag_service_loop(svc);
    const struct gw_settings *s = &gw->settings;

    struct ag_http_client_config ccfg = {
        .max_host_connections = (size_t)s->upstream_max_connections,
        .connect_timeout_ms = s->upstream_connect_timeout_ms,
        .timeout_ms = s->upstream_timeout_ms,
        .max_response_bytes = (size_t)s->max_response,
        .max_retries = s->upstream_retries == 0 ? -1 : (int)s->upstream_retries,
        .retry_budget_ratio = (double)s->retry_budget_percent / 100.0,
        .breaker_window_ms = s->breaker_window_ms,
        .breaker_min_calls = (uint32_t)s->breaker_min_calls,
        .breaker_failure_rate = (uint32_t)s->breaker_failure_rate,
        .breaker_slow_ms = s->breaker_slow_ms,
        .breaker_slow_rate = (uint32_t)s->breaker_slow_rate,
        .breaker_open_ms = s->breaker_open_ms,
        .eject_failures = (uint32_t)s->eject_failures,
        .eject_ms = s->eject_time_ms,
        .max_ejected_percent = (uint32_t)s->max_ejected_percent,
    };
    int rc = ag_http_client_new(gw->loop, &ccfg, &gw->client);
    if (rc != 0) {
        AG_LOGE("gateway", "cannot create the HTTP client: %s", ag_strerror(rc));
        return rc;
    }
    ag_http_client_metrics(gw->client, ag_service_metrics(svc));
    for (size_t i = 0; i < gw->nupstreams; i++) {
        const struct gw_upstream *u = &gw->upstreams[i];
        rc = ag_http_client_set_upstream(gw->client, u->name, u->instances, u->n);
        if (rc != 0)
            AG_LOGE("gateway", "cannot set upstream '%s': %s", u->name, ag_strerror(rc));
    }
    gw->deny = gw_deny_new((size_t)s->deny_max, (int64_t)(s->jwt_leeway_ms / 1000));
    rc = subscribe_revocations(gw);
    if (rc != 0)
        return rc;
    gw_auth_new(gw, &gw->auth);
    gw->rl = gw_ratelimit_new((size_t)s->ratelimit_max_keys);
    gw->web = gw_static_new(gw->web_path, s->web_cache_bytes, s->web_max_file, s->web_max_age_ms);

    uv_timer_init(gw->loop, &gw->start_timer);
    uv_timer_init(gw->loop, &gw->sweep_timer);
    gw->start_timer.data = gw;
    gw->sweep_timer.data = gw;
    gw->timers_ready = true;
    uv_timer_start(&gw->start_timer, on_started, 0, 0);
    uv_timer_start(&gw->sweep_timer, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    return 0;
}

static void
on_client_closed(void *udata)
{
    struct gw *gw = udata;
    gw->client = NULL;
}

static void
close_client(struct gw *gw)
{
    if (gw->client != NULL)
        ag_http_client_close(gw->client, on_client_closed, gw);
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct gw *gw = udata;
    gw->stopping = true;
    /* The chassis deregisters and stops its registry client. */
    gw->reg = NULL;
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct gw *gw = udata;
    gw->stopping = true;
    if (gw->timers_ready) {
        uv_close((uv_handle_t *)&gw->start_timer, NULL);
        uv_close((uv_handle_t *)&gw->sweep_timer, NULL);
        gw->timers_ready = false;
    }
    gw_auth_stop(gw->auth);
    restore_stop(gw);
    gw->reg = NULL;
    close_client(gw);
}

static int
ready_check(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    const struct gw *gw = udata;
    /* Not ready until the deny list is restored from users: until then
     * every request with a token gets 503, and "Agora is up" (which waits
     * for /ready) would be a lie to the first customer. */
    return gw->config != NULL && gw->deny_restored ? 0 : AG_EUNAVAIL;
}

/* GET /api/v1/openapi.json: the /api/v1 surface bundled from the
 * services' specs at build time (tests/contracts/bundle.mjs). */
static void
get_openapi(struct ag_http_req *req, void *udata)
{
    const struct gw *gw = udata;
    if (gw->openapi == NULL) {
        ag_send_problem(req, 404, "not-found", "Not Found",
                        "no API description configured (AGORA_GATEWAY_OPENAPI_FILE)");
        return;
    }
    ag_http_resp_header(req, "Cache-Control", "public, max-age=60");
    ag_http_send(req, 200, "application/json", gw->openapi, gw->openapi_len);
}

static const struct ag_route GW_ROUTES[] = {
    { "GET", "/health/services", gw_health_services, AG_ROLE_OPS },
    { "GET", "/api/v1/openapi.json", get_openapi, AG_ROLE_PUBLIC },
};

/* Read the API description once at start: a JSON document of at most
 * 8 MiB. */
#define OPENAPI_MAX (8u << 20)
static int
load_openapi(struct gw *gw, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "config: AGORA_GATEWAY_OPENAPI_FILE: cannot open '%s': %s\n", path,
                strerror(errno));
        return AG_ECONFIG;
    }
    struct ag_buf b = AG_BUF_INIT(OPENAPI_MAX);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = ag_buf_append(&b, chunk, n);
    fclose(f);
    char err[128];
    json_t *doc = rc == 0 ? ag_json_parse(b.data, b.len, err, sizeof(err)) : NULL;
    if (doc == NULL) {
        fprintf(stderr, "config: AGORA_GATEWAY_OPENAPI_FILE: '%s' is %s\n", path,
                rc != 0 ? "larger than 8 MiB" : "not JSON");
        ag_buf_release(&b);
        return AG_ECONFIG;
    }
    json_decref(doc);
    gw->openapi = ag_buf_detach(&b, &gw->openapi_len);
    return 0;
}

/* Settings that need more than the table's checks; exit status 2 on error. */
static int
setup(struct gw *gw, struct ag_service *svc)
{
    const struct ag_service_settings *ss = ag_service_settings(svc);
    if (ss->internal_key != NULL && ss->internal_key[0] != '\0') {
        if (ag_identity_key_parse(ss->internal_key, gw->identity_key) != 0) {
            fprintf(stderr, "config: AGORA_INTERNAL_KEY: must be 64 hex digits\n");
            return AG_ECONFIG;
        }
    } else {
        randombytes_buf(gw->identity_key, sizeof(gw->identity_key));
        AG_LOGW("gateway", "AGORA_INTERNAL_KEY is not set: services will not trust the "
                           "identities this gateway signs");
    }
    char err[512];
    if (gw->settings.upstreams[0] != '\0' &&
        parse_upstreams(gw, gw->settings.upstreams, err, sizeof(err)) != 0) {
        fprintf(stderr, "config: AGORA_GATEWAY_UPSTREAMS: %s\n", err);
        return AG_ECONFIG;
    }
    gw->routes_path = resolve_path(gw->settings.routes_file);
    int rc = gw_config_load_file(gw->routes_path, &gw->file_config, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "config: AGORA_GATEWAY_ROUTES_FILE: %s\n", err);
        return AG_ECONFIG;
    }
    gw->web_path = resolve_path(gw->settings.web_root);
    if (gw->settings.openapi_file[0] != '\0') {
        char *p = resolve_path(gw->settings.openapi_file);
        rc = load_openapi(gw, p);
        ag_free(p);
        if (rc != 0)
            return rc;
    }
    register_metrics(gw, ag_service_metrics(svc));
    gw_config_install(gw, gw_config_ref(gw->file_config));
    return 0;
}

static void
release(struct gw *gw)
{
    gw_auth_free(gw->auth);
    gw->auth = NULL;
    gw_deny_free(gw->deny);
    gw->deny = NULL;
    gw_ratelimit_free(gw->rl);
    gw->rl = NULL;
    gw_static_free(gw->web);
    gw->web = NULL;
    gw_config_unref(gw->config);
    gw->config = NULL;
    gw_config_unref(gw->file_config);
    gw->file_config = NULL;
    upstreams_free(gw);
    for (size_t i = 0; i < gw->nwatched; i++)
        ag_free(gw->watched[i]);
    ag_free(gw->watched);
    gw->watched = NULL;
    ag_free(gw->routes_path);
    ag_free(gw->web_path);
    ag_free(gw->openapi);
    gw->openapi = NULL;
    sodium_memzero(gw->identity_key, sizeof(gw->identity_key));
}

int
main(int argc, char **argv)
{
    struct gw *gw = &g_gw;
    struct ag_service_config cfg = {
        .name = "gateway",
        .version = "0.1.0",
        .default_port = AG_PORT_GATEWAY,
        .default_ops_address = "127.0.0.1:" AG_STRINGIFY(AG_PORT_GATEWAY_OPS),
        .migrations = gateway_migrations,
        .nmigrations = gateway_nmigrations,
        .events = true,      /* consumes the revocations; publishes nothing */
        .sqlite_only = true, /* its inbox, under the data dir */
        .keys = GW_KEYS,
        .nkeys = AG_ARRAY_SIZE(GW_KEYS),
        .settings = &gw->settings,
        .on_start = on_start,
        .on_stop = on_stop,
        .on_stopping = on_stopping,
        .fallback = gw_dispatch,
        .ready_check = ready_check,
        .udata = gw,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    gw->svc = svc;
    rc = setup(gw, svc);
    if (rc == 0)
        rc = ag_service_routes(svc, GW_ROUTES, AG_ARRAY_SIZE(GW_ROUTES), gw);
    int status = rc == 0 ? ag_service_run(svc) : ag_service_exit_code(rc);
    release(gw);
    ag_service_free(svc);
    return status;
}
