/* SPDX-License-Identifier: MIT */
/* The service chassis: configuration, logging, metrics, store, HTTP server
 * and middleware (request id, trace context, access log, metrics), built-in
 * /health, /ready and /metrics, signals and graceful shutdown. */
#include "agora/base.h"
#include "agora/service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agora/buf.h"
#include "agora/discovery.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"
#include "agora/otlp.h"
#include "agora/registry.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "agora/uuid.h"

#define SERVICE_MAGIC     0x53525643u
#define MAX_QUERY_PARAMS  64
#define MAX_REQUEST_ID    128
#define JSON_CONTENT_TYPE "application/json"
#define PROBLEM_TYPE      "application/problem+json"

/* An internal route open to some services only (ag_service_route_callers). */
#define MAX_ROUTE_CALLERS 16
struct route_callers {
    char *method;  /* of the route */
    char *pattern; /* of the route */
    char *callers; /* "payments,shipping" */
};

struct ag_service {
    uint32_t magic;
    struct ag_loop_metrics *loop_metrics; /* event_loop_busy_* */
    struct ag_service_config cfg;
    struct ag_service_settings settings;
    struct ag_config_key *base_keys; /* copy of BASE_KEYS with the port and bus defaults patched */
    char port_default[16];
    char bus_url_default[48];
    uv_loop_t loop;
    struct ag_store *store;
    struct ag_metrics *metrics;
    struct ag_metric *m_requests;
    struct ag_metric *m_duration;
    struct ag_metric *m_inflight;
    struct ag_metric *m_ident;           /* service_identity_checks_total{result} */
    struct ag_metric *m_admission;       /* http_admission_requests_total{result} */
    struct ag_metric *m_admission_limit; /* http_admission_limit */
    struct ag_metric *m_admission_in;    /* http_admission_in_flight */
    struct ag_metric *m_admission_floor; /* http_admission_latency_floor_seconds */
    uint64_t admitted_seen;              /* requests_admitted already counted */
    uint64_t shed_seen;                  /* requests_shed already counted */
    uint64_t ident_verified;             /* key ring counts last reported */
    uint64_t ident_cached;
    struct ag_router *router;
    struct ag_http_server *server;
    struct ag_http_server *ops_server; /* AGORA_OPS_ADDRESS listener, or NULL */
    struct ag_http_client *client;
    struct ag_registry *registry;
    struct ag_events *events;
    struct ag_idem *idem;        /* cfg.idempotency: the records, else NULL */
    uv_timer_t idem_sweep;       /* sweeps them */
    bool idem_sweeping;          /* 'idem_sweep' initialised */
    bool events_stopping;        /* graceful stop: outbox being flushed */
    char events_source[96];      /* CloudEvents source, "/agora/<name>" */
    bool server_done;            /* graceful stop: server drained */
    bool ops_done;               /* graceful stop: ops listener drained (or none) */
    bool registry_done;          /* graceful stop: deregistered */
    bool dns_discovery;          /* AGORA_DISCOVERY=dns...: do not register */
    struct req_ctx *dispatching; /* request whose handler is running, for the log context */
    struct ag_otlp *otlp;        /* span exporter (AGORA_OTLP_ENDPOINT), or NULL */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uint8_t identity_key[AG_IDENTITY_KEYLEN]; /* AGORA_INTERNAL_KEY: user identities */
    struct ag_identity_self self;             /* this service's identity for internal calls */
    struct ag_identity_keyring *service_keys; /* AGORA_SERVICE_PUBKEYS: who callers are */
    struct route_callers callers[MAX_ROUTE_CALLERS]; /* ag_service_route_callers */
    size_t ncallers;
    char ops_default[64]; /* default of AGORA_OPS_ADDRESS */
    bool loop_ready;
    bool stopping;
    bool stopped_clean;
    int64_t inflight;
};

/* Per-request state of the middleware, in the request pool. */
struct req_ctx {
    struct ag_service *svc;
    struct ag_route_match match;
    bool matched;                       /* 'match' filled by admit_class */
    enum ag_router_status match_status; /* its result */
    struct ag_trace_ctx trace;
    struct ag_span span; /* the server span (recording only with an exporter) */
    bool continued;      /* a valid traceparent came in */
    char request_id[MAX_REQUEST_ID + 1];
    struct ag_query query;
    bool query_parsed;
    bool has_identity;
    struct ag_identity identity;
    bool client_checked;            /* X-Agora-Client looked at */
    char client[AG_CLIENT_ADDRLEN]; /* the verified client, or "" */
};

/* ---- Settings table ---- */

#define OFF(f) offsetof(struct ag_service_settings, f)
static const struct ag_config_key BASE_KEYS[] = {
    { "AGORA_HTTP_HOST", AG_CONFIG_STRING, "127.0.0.1", OFF(http_host), 0, 0, NULL,
      "address to listen on" },
    { "AGORA_HTTP_PORT", AG_CONFIG_INT, "8080", OFF(http_port), 0, 65535, NULL,
      "TCP port to listen on (0: any free port)" },
    { "AGORA_INSTANCE_ID", AG_CONFIG_STRING, "", OFF(instance_id), 0, 0, NULL,
      "instance name in logs and the registry (default <service>-<pid>)" },
    { "AGORA_LOG_LEVEL", AG_CONFIG_ENUM, "info", OFF(log_level), 0, 0, "debug|info|warn|error|off",
      "lowest level logged" },
    { "AGORA_ACCESS_LOG", AG_CONFIG_BOOL, "true", OFF(access_log), 0, 0, NULL,
      "log one line per request" },
    { "AGORA_DATA_DIR", AG_CONFIG_STRING, "./var", OFF(data_dir), 0, 0, NULL,
      "directory for databases" },
    { "AGORA_DB_PATH", AG_CONFIG_STRING, "", OFF(db_path), 0, 0, NULL,
      "SQLite database file (default <data dir>/<service>.db)" },
    { "AGORA_DB_URL", AG_CONFIG_STRING, "", OFF(db_url), 0, 0, NULL,
      "PostgreSQL database instead of the SQLite file: postgres://user:password@host:port/db "
      "(a secret: logged as host, port and database only)" },
    { "AGORA_DURABILITY", AG_CONFIG_ENUM, "full", OFF(durability), 0, 0, "full|normal",
      "full: fsync every commit; normal: may lose the last commits on power loss" },
    { "AGORA_DB_LOCKING", AG_CONFIG_ENUM, "exclusive", OFF(db_locking), 0, 0, "exclusive|shared",
      "SQLite only. exclusive: this process owns its database file (fastest); shared: other "
      "processes may open it too" },
    { "AGORA_HTTP_MAX_BODY", AG_CONFIG_SIZE, "1MiB", OFF(max_body), 0, 64 << 20, NULL,
      "largest request body accepted (413 past it)" },
    { "AGORA_HTTP_MAX_CONNECTIONS", AG_CONFIG_INT, "1024", OFF(max_connections), 1, 100000, NULL,
      "concurrent connections (503 past it)" },
    { "AGORA_HTTP_HEADER_TIMEOUT", AG_CONFIG_DURATION, "10s", OFF(header_timeout_ms), 1, 3600000,
      NULL, "time allowed to receive a request head (408)" },
    { "AGORA_HTTP_BODY_TIMEOUT", AG_CONFIG_DURATION, "30s", OFF(body_timeout_ms), 1, 3600000, NULL,
      "time allowed to receive a request body (408)" },
    { "AGORA_HTTP_IDLE_TIMEOUT", AG_CONFIG_DURATION, "60s", OFF(idle_timeout_ms), 1, 3600000, NULL,
      "keep-alive connections idle longer are closed" },
    { "AGORA_HTTP_ADMISSION", AG_CONFIG_ENUM, "adaptive", OFF(admission), 0, 0,
      "adaptive|fixed|off",
      "request admission: past a limit on requests in flight a request is answered 503 with "
      "Retry-After at once; adaptive: the limit follows latency, fixed: AGORA_HTTP_MAX_INFLIGHT, "
      "off: none. Probes, /metrics and internal routes are always admitted" },
    { "AGORA_HTTP_MAX_INFLIGHT", AG_CONFIG_INT, "1000", OFF(max_inflight), 1, 1000000, NULL,
      "requests in flight admitted at most (the fixed limit, the adaptive limit's ceiling)" },
    { "AGORA_HTTP_MIN_INFLIGHT", AG_CONFIG_INT, "64", OFF(min_inflight), 1, 1000000, NULL,
      "the adaptive limit never goes below this many requests in flight" },
    { "AGORA_HTTP_QUEUE_DELAY", AG_CONFIG_DURATION, "50ms", OFF(queue_delay_ms), 1, 60000, NULL,
      "queueing tolerated: when even the fastest answer of a busy interval (100 ms) is slower "
      "than the no-load latency by more than this (or than twice it), the adaptive limit is cut" },
    { "AGORA_INTERNAL_KEY", AG_CONFIG_STRING, "", OFF(internal_key), 0, 0, NULL,
      "64 hex digits shared with the gateway to verify X-Agora-Identity (unset: a random key, "
      "so no caller has an identity)" },
    { "AGORA_SERVICE_KEY", AG_CONFIG_STRING, "", OFF(service_key), 0, 0, NULL,
      "64 hex digits: this program's own Ed25519 seed, which signs its service identity "
      "(the supervisor derives it; unset: a random one, so no internal call succeeds)" },
    { "AGORA_SERVICE_PUBKEYS", AG_CONFIG_STRING, "", OFF(service_pubkeys), 0, 0, NULL,
      "name=<64 hex>,...: the public key of every program, to verify service identities "
      "(unset: no service identity is accepted)" },
    { "AGORA_REGISTRY_URL", AG_CONFIG_STRING, "", OFF(registry_url), 0, 0, NULL,
      "registry base URL, e.g. http://127.0.0.1:8500 (unset: no registration)" },
    { "AGORA_REGISTRY_TTL", AG_CONFIG_DURATION, "10s", OFF(registry_ttl_ms), 1000, 300000, NULL,
      "registration time to live; heartbeats every third of it" },
    { "AGORA_ADVERTISE_ADDRESS", AG_CONFIG_STRING, "", OFF(advertise_address), 0, 0, NULL,
      "address registered for others to reach this instance (default: the listen address)" },
    { "AGORA_DISCOVERY", AG_CONFIG_STRING, "registry", OFF(discovery), 0, 0, NULL,
      "registry: register and find instances in the registry; dns or dns:<host>[:<port>]: "
      "each service is a DNS name ({service}, {port}: its default port; e.g. Kubernetes "
      "Services), nothing registers (agora/discovery.h)" },
    /* The default is patched in: the bus's port of agora/ports.h. */
    { "AGORA_BUS_URL", AG_CONFIG_STRING, "", OFF(bus_url), 0, 0, NULL,
      "message bus base URL (services that publish or consume events)" },
    { "AGORA_EVENTS_URL", AG_CONFIG_STRING, "", OFF(events_url), 0, 0, NULL,
      "broker of the events runtime when not the bus: amqp://user:password@host:port/vhost "
      "(RabbitMQ); empty: AGORA_BUS_URL. Holds a password: never logged whole" },
    { "AGORA_OPS_ADDRESS", AG_CONFIG_STRING, "", OFF(ops_address), 0, 0, NULL,
      "host:port of a second listener for operators (e.g. 127.0.0.1:8090): /metrics and the "
      "other ops routes are served there only; empty: on the main port" },
    { "AGORA_SHUTDOWN_TIMEOUT", AG_CONFIG_DURATION, "10s", OFF(shutdown_timeout_ms), 1, 600000,
      NULL, "bound on finishing in-flight requests at shutdown" },
    { "AGORA_IDEMPOTENCY_TTL", AG_CONFIG_DURATION, "24h", OFF(idempotency_ttl_ms), 1000, 2592000000,
      NULL,
      "how long Idempotency-Key answers and saga step replies are kept (services that keep them)" },
    { "AGORA_IDEMPOTENCY_SWEEP_INTERVAL", AG_CONFIG_DURATION, "1m", OFF(idempotency_sweep_ms), 10,
      86400000, NULL, "how often expired idempotency records are deleted" },
    { "AGORA_OTLP_ENDPOINT", AG_CONFIG_STRING, "", OFF(otlp_endpoint), 0, 0, NULL,
      "OTLP/HTTP collector base URL for spans (POST <url>/v1/traces, JSON), e.g. "
      "http://127.0.0.1:4318; empty: spans are not recorded" },
    { "AGORA_TRACE_SAMPLE", AG_CONFIG_STRING, "1", OFF(trace_sample), 0, 0, NULL,
      "head sampling ratio (0 to 1) of the traces this process starts" },
    { "AGORA_TRACE_QUEUE", AG_CONFIG_SIZE, "1MiB", OFF(trace_queue_bytes), 4096, 67108864, NULL,
      "encoded spans waiting for export; past it spans are dropped and counted" },
};
#undef OFF

/* ---- Helpers ---- */

static struct req_ctx *
ctx_of(const struct ag_http_req *req)
{
    return req->ctx;
}

static int
mkdir_p(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return AG_EINVAL;
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0700) == -1 && errno != EEXIST)
                return AG_EIO;
            tmp[i] = c;
        }
    }
    return 0;
}

/* Tighten 'path' to 'mode' when it is looser (group or others can read
 * it), with a warning; a missing file is fine. */
static void
tighten(const char *path, mode_t mode)
{
    struct stat st;
    if (stat(path, &st) == -1)
        return;
    /* Search permission alone (x) on a directory lets others pass through
     * to what they may open inside (a private PostgreSQL cluster run as the
     * postgres user, agora up --backends postgres as root), never list or
     * read it: allowed. */
    mode_t risky = S_ISDIR(st.st_mode) ? 066 : 077;
    if ((st.st_mode & risky) == 0)
        return;
    if (S_ISDIR(st.st_mode))
        mode |= st.st_mode & 011;
    AG_LOGW("service", "'%s' was readable by others (mode %03o); setting %03o", path,
            (unsigned)(st.st_mode & 0777), (unsigned)mode);
    if (chmod(path, mode) == -1)
        AG_LOGE("service", "cannot chmod '%s': %s", path, strerror(errno));
}

/* 'url' (postgres://user:password@host:port/db?options) as
 * "postgres://host:port/db": what a log may show of it. */
static void
db_url_redacted(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    size_t hostpart = strcspn(p, "/?");
    const char *at = memchr(p, '@', hostpart);
    /* The last '@' of the authority ends the user info. */
    for (const char *q = p; q < p + hostpart; q++) {
        if (*q == '@')
            at = q;
    }
    const char *host = at != NULL ? at + 1 : p;
    size_t hostlen = (size_t)(p + hostpart - host);
    const char *db = p + hostpart;
    size_t dblen = *db == '/' ? strcspn(db, "?") : 0;
    snprintf(out, cap, "postgres://%.*s%.*s", (int)hostlen, host, (int)dblen, db);
}

void
ag_service_check_private(const char *data_dir, const char *db_path)
{
    if (data_dir != NULL && data_dir[0] != '\0')
        tighten(data_dir, 0700);
    if (db_path == NULL || db_path[0] == '\0')
        return;
    static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(suffixes); i++) {
        char p[4096];
        if (snprintf(p, sizeof(p), "%s%s", db_path, suffixes[i]) < (int)sizeof(p))
            tighten(p, 0600);
    }
}

static bool
is_valid_request_id(struct ag_str s)
{
    if (s.len == 0 || s.len > MAX_REQUEST_ID)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* The method as a metrics label: unknown tokens share one value, so a
 * client cannot grow the label set. */
static const char *
method_label(const struct ag_http_req *req)
{
    const char *name = ag_http_method_name(req->method);
    return name != NULL ? name : "OTHER";
}

/* ---- Responses ---- */

void
ag_send_json(struct ag_http_req *req, int status, json_t *body)
{
    if (body == NULL) {
        ag_http_send(req, status, NULL, NULL, 0);
        return;
    }
    struct ag_buf buf = AG_BUF_INIT(0);
    int rc = ag_json_dump(body, &buf);
    json_decref(body);
    if (rc != 0) {
        ag_buf_release(&buf);
        ag_http_send(req, 500, NULL, NULL, 0);
        return;
    }
    size_t len;
    char *p = ag_buf_detach(&buf, &len);
    ag_http_send_take(req, status, JSON_CONTENT_TYPE, p, len);
}

static void
send_problem_json(struct ag_http_req *req, json_t *problem)
{
    struct req_ctx *ctx = ctx_of(req);
    int status = (int)json_integer_value(json_object_get(problem, "status"));
    /* Behind the gateway, the path the client asked for: the prefix its
     * rewrite removed (X-Forwarded-Prefix, set by the gateway, which drops
     * any a client sent) and then this request's path. */
    struct ag_str fp = ag_http_req_header(req, "X-Forwarded-Prefix");
    bool prefix_ok = fp.len > 1 && fp.len <= 128 && fp.ptr[0] == '/';
    for (size_t i = 0; prefix_ok && i < fp.len; i++)
        prefix_ok = fp.ptr[i] > 0x20 && fp.ptr[i] < 0x7f && fp.ptr[i] != '?' && fp.ptr[i] != '#';
    if (prefix_ok)
        json_object_set_new(problem, "instance",
                            json_string(ag_pool_printf(req->pool, "%.*s%.*s", (int)fp.len, fp.ptr,
                                                       (int)req->path.len, req->path.ptr)));
    else
        json_object_set_new(problem, "instance", json_stringn(req->path.ptr, req->path.len));
    if (ctx != NULL)
        json_object_set_new(problem, "request_id", json_string(ctx->request_id));
    struct ag_buf buf = AG_BUF_INIT(0);
    int rc = ag_json_dump(problem, &buf);
    json_decref(problem);
    if (rc != 0) {
        ag_buf_release(&buf);
        ag_http_send(req, 500, NULL, NULL, 0);
        return;
    }
    size_t len;
    char *p = ag_buf_detach(&buf, &len);
    ag_http_send_take(req, status, PROBLEM_TYPE, p, len);
}

static void AG_PRINTF(5, 0) vsend_problem(struct ag_http_req *req, int status, const char *slug,
                                          const char *title, const char *detail_fmt, va_list ap)
{
    char detail[512];
    detail[0] = '\0';
    if (detail_fmt != NULL)
        vsnprintf(detail, sizeof(detail), detail_fmt, ap);
    json_t *p = ag_problem_new(status, slug, title, detail_fmt ? detail : NULL);
    send_problem_json(req, p);
}

void
ag_send_problem(struct ag_http_req *req, int status, const char *slug, const char *title,
                const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    vsend_problem(req, status, slug, title, detail_fmt, ap);
    va_end(ap);
}

void
ag_send_invalid(struct ag_http_req *req, const struct ag_valid *v)
{
    json_t *p = ag_problem_new(422, "validation", "Validation Failed",
                               "the request body has invalid fields; see errors");
    ag_problem_set_errors(p, v);
    send_problem_json(req, p);
}

void
ag_send_error(struct ag_http_req *req, int err, const char *detail_fmt, ...)
{
    /* 0 is not an error: answer it as the internal error it is. */
    int status = err < 0 ? ag_err_http_status(err) : 500;
    if (detail_fmt == NULL) {
        ag_send_problem(req, status, ag_err_slug(err), ag_err_title(err), "%s", ag_strerror(err));
        return;
    }
    va_list ap;
    va_start(ap, detail_fmt);
    vsend_problem(req, status, ag_err_slug(err), ag_err_title(err), detail_fmt, ap);
    va_end(ap);
}

void
ag_send_store_error(struct ag_http_req *req, int err, const char *what)
{
    if (err == AG_ENOENT) {
        ag_send_error(req, AG_ENOENT, "no such %s", what);
        return;
    }
    struct req_ctx *ctx = ctx_of(req);
    const char *why = ctx != NULL && ctx->svc->store ? ag_store_errmsg(ctx->svc->store) : "";
    AG_LOGE("api", "store error on %s: %s%s%s%s", what, ag_strerror(err), why[0] ? " (" : "", why,
            why[0] ? ")" : "");
    /* A busy database is worth a retry; the rest is ours and says nothing
     * a client could use. */
    ag_send_error(req, err == AG_EBUSY ? AG_EBUSY : AG_EINTERNAL, NULL);
}

void
ag_send_no_content(struct ag_http_req *req)
{
    ag_http_send(req, 204, NULL, NULL, 0);
}

/* ---- Request helpers ---- */

const char *
ag_req_id(const struct ag_http_req *req)
{
    struct req_ctx *ctx = ctx_of(req);
    return ctx ? ctx->request_id : "";
}

const char *
ag_req_trace_id(const struct ag_http_req *req)
{
    struct req_ctx *ctx = ctx_of(req);
    return ctx ? ctx->trace.trace_id : "";
}

void
ag_req_traceparent(const struct ag_http_req *req, char out[AG_TRACEPARENT_LEN + 1])
{
    struct req_ctx *ctx = ctx_of(req);
    struct ag_trace_ctx fresh;
    if (ctx == NULL)
        ag_trace_start(AG_STR_NULL, &fresh);
    ag_trace_format(ctx != NULL ? &ctx->trace : &fresh, out);
}

const struct ag_identity *
ag_req_identity(const struct ag_http_req *req)
{
    struct req_ctx *ctx = ctx_of(req);
    return ctx != NULL && ctx->has_identity ? &ctx->identity : NULL;
}

const char *
ag_req_client(struct ag_http_req *req)
{
    struct req_ctx *ctx = ctx_of(req);
    if (ctx == NULL)
        return req->remote_addr ? req->remote_addr : "";
    if (!ctx->client_checked) {
        ctx->client_checked = true;
        struct ag_str v = ag_http_req_header(req, AG_CLIENT_HEADER);
        if (v.len == 0 || ag_identity_client_verify(ctx->svc->identity_key, v,
                                                    ag_time_unix_ms() / 1000, ctx->client) != 0)
            ctx->client[0] = '\0';
    }
    if (ctx->client[0] != '\0')
        return ctx->client;
    return req->remote_addr ? req->remote_addr : "";
}

struct ag_identity_self *
ag_service_self(struct ag_service *svc)
{
    return &svc->self;
}

const char *
ag_req_param(struct ag_http_req *req, const char *name)
{
    struct req_ctx *ctx = ctx_of(req);
    if (ctx == NULL)
        return NULL;
    for (size_t i = 0; i < ctx->match.nparams; i++) {
        if (!ag_str_eq_cstr(ctx->match.names[i], name))
            continue;
        struct ag_str raw = ctx->match.values[i];
        char *out = ag_pool_alloc(req->pool, raw.len + 1);
        if (ag_str_percent_decode(raw, false, out) < 0)
            return NULL;
        return out;
    }
    return NULL;
}

const char *
ag_req_uuid_param(struct ag_http_req *req, const char *name, const char *what)
{
    const char *id = ag_req_param(req, name);
    if (id == NULL || !ag_uuid_is_valid(ag_str_from_cstr(id))) {
        ag_send_error(req, AG_ENOENT, "no such %s", what);
        return NULL;
    }
    return id;
}

const struct ag_query *
ag_req_query(struct ag_http_req *req)
{
    struct req_ctx *ctx = ctx_of(req);
    if (!ctx->query_parsed) {
        int rc = ag_query_parse(req->pool, req->query, MAX_QUERY_PARAMS, &ctx->query);
        if (rc == AG_ETOOBIG) {
            ag_send_error(req, AG_EQUERY, "too many query parameters (at most %d)",
                          MAX_QUERY_PARAMS);
            return NULL;
        }
        if (rc != 0) {
            ag_send_error(req, AG_EQUERY, "malformed percent-encoding in the query");
            return NULL;
        }
        ctx->query_parsed = true;
    }
    return &ctx->query;
}

int
ag_req_query_int(struct ag_http_req *req, const char *name, int64_t min, int64_t max, int64_t *io)
{
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return AG_EQUERY;
    const char *s = ag_query_get(q, name);
    if (s == NULL)
        return 0;
    if (ag_str_to_i64(ag_str_from_cstr(s), min, max, io) != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter '%s' must be an integer from %lld to %lld",
                      name, (long long)min, (long long)max);
        return AG_EQUERY;
    }
    return 0;
}

bool
ag_req_is_json(const struct ag_http_req *req)
{
    struct ag_str ct = ag_http_req_header(req, "Content-Type");
    const char *semi = ct.len ? memchr(ct.ptr, ';', ct.len) : NULL;
    struct ag_str mt = ag_str_trim(semi ? ag_str_make(ct.ptr, (size_t)(semi - ct.ptr)) : ct);
    if (ag_str_case_eq_cstr(mt, "application/json"))
        return true;
    return mt.len > 17 && ag_str_has_prefix(mt, "application/") &&
           ag_str_case_eq_cstr(ag_str_make(mt.ptr + mt.len - 5, 5), "+json");
}

static void
json_cleanup(void *arg)
{
    json_decref(arg);
}

json_t *
ag_req_json(struct ag_http_req *req)
{
    if (!ag_req_is_json(req)) {
        ag_send_error(req, AG_EMEDIATYPE, "the body must be application/json");
        return NULL;
    }
    char err[160];
    json_t *root =
        ag_json_parse(req->body.ptr ? req->body.ptr : "", req->body.len, err, sizeof(err));
    if (root == NULL) {
        ag_send_error(req, AG_EPARSE, "malformed JSON: %s", err);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ag_send_error(req, AG_EPARSE, "the body must be a JSON object");
        return NULL;
    }
    ag_pool_cleanup_add(req->pool, json_cleanup, root);
    return root;
}

/* ---- Built-in endpoints ---- */

static void
handle_health(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    ag_send_json(req, 200,
                 json_pack("{s:s, s:s, s:s, s:s}", "status", "ok", "service", svc->cfg.name,
                           "instance", svc->settings.instance_id, "version", svc->cfg.version));
}

static void
handle_ready(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    json_t *checks = json_object();
    /* The database is a hard dependency. The registry and the bus are
     * reported but do not make the service unready: it keeps serving, its
     * registration is retried, and events wait in the outbox or are
     * redelivered, so their absence is a delay, not an outage. */
    bool ready = !svc->stopping;
    bool degraded = false;
    if (svc->store != NULL) {
        int rc = ag_store_ping(svc->store);
        json_object_set_new(checks, "database", json_string(rc == 0 ? "ok" : ag_strerror(rc)));
        ready = ready && rc == 0;
    }
    if (svc->settings.registry_url != NULL && svc->settings.registry_url[0] != '\0') {
        bool up = svc->registry != NULL && ag_registry_is_connected(svc->registry);
        json_object_set_new(checks, "registry", json_string(up ? "ok" : "unreachable"));
        degraded = degraded || !up;
    }
    if (svc->events != NULL) {
        int rc = ag_events_ready(svc->events);
        json_object_set_new(checks, "bus", json_string(rc == 0 ? "ok" : "unreachable"));
        degraded = degraded || rc != 0;
    }
    if (svc->cfg.ready_check != NULL) {
        int rc = svc->cfg.ready_check(svc, svc->cfg.udata);
        json_object_set_new(checks, "service", json_string(rc == 0 ? "ok" : ag_strerror(rc)));
        ready = ready && rc == 0;
    }
    if (svc->stopping)
        json_object_set_new(checks, "lifecycle", json_string("stopping"));
    ag_send_json(req, ready ? 200 : 503,
                 json_pack("{s:s, s:o}", "status",
                           !ready     ? "unavailable"
                           : degraded ? "degraded"
                                      : "ready",
                           "checks", checks));
}

static void
handle_metrics(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    struct ag_buf buf = AG_BUF_INIT(0);
    if (ag_metrics_render(svc->metrics, &buf) != 0) {
        ag_buf_release(&buf);
        ag_send_error(req, AG_EINTERNAL, "cannot render metrics");
        return;
    }
    size_t len;
    char *p = ag_buf_detach(&buf, &len);
    ag_http_send_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", p, len);
}

static const struct ag_route BUILTIN_ROUTES[] = {
    { "GET", "/health", handle_health, AG_ROLE_PROBE },
    { "GET", "/ready", handle_ready, AG_ROLE_PROBE },
    { "GET", "/metrics", handle_metrics, AG_ROLE_OPS },
};

/* ---- Idempotency-Key ---- */

bool
ag_req_idempotency_key(struct ag_http_req *req, bool required, const char **out)
{
    *out = NULL;
    struct ag_str k = ag_http_req_header(req, "Idempotency-Key");
    if (k.ptr == NULL || k.len == 0) {
        if (required)
            ag_send_error(req, AG_EPRECONDREQ, "send an Idempotency-Key header with this request");
        return !required;
    }
    bool ok = k.len <= AG_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < k.len; i++)
        ok = k.ptr[i] >= 0x21 && k.ptr[i] <= 0x7e;
    if (!ok) {
        ag_send_error(req, AG_EINVAL,
                      "the Idempotency-Key must be 1 to %d visible ASCII characters",
                      AG_IDEM_KEY_MAX);
        return false;
    }
    *out = ag_pool_strndup(req->pool, k.ptr, k.len);
    return true;
}

void
ag_req_idempotency_hash(struct ag_http_req *req, char out[AG_IDEM_HASH_LEN])
{
    struct ag_str parts[] = { req->method_name, req->path, req->body };
    ag_idem_hash(parts, AG_ARRAY_SIZE(parts), out);
}

void
ag_send_idempotency_refusal(struct ag_http_req *req, enum ag_idem_state state)
{
    if (state == AG_IDEM_BUSY)
        ag_send_problem(req, 409, "idempotency-key-in-progress", "Conflict",
                        "a request with this Idempotency-Key is still in progress");
    else
        ag_send_problem(req, 422, "idempotency-key-reused", "Unprocessable Content",
                        "this Idempotency-Key was used for a different request");
}

void
ag_send_idempotency_replay(struct ag_http_req *req, const struct ag_idem_answer *answer)
{
    ag_http_resp_header(req, "Idempotent-Replayed", "true");
    ag_http_send(req, answer->status, answer->content_type, answer->body, answer->len);
}

/* ---- Middleware ---- */

/* Whether service 'name' is in the comma-separated 'callers' (NULL: any
 * service). The operator may call every internal route. */
static bool
caller_allowed(const char *callers, const char *name)
{
    if (callers == NULL || strcmp(name, AG_IDENTITY_OPERATOR) == 0)
        return true;
    size_t n = strlen(name);
    for (const char *p = callers; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

/* The services allowed to call internal 'route', or NULL for any. */
static const char *
callers_of(const struct ag_service *svc, const struct ag_route *route)
{
    for (size_t i = 0; i < svc->ncallers; i++) {
        if (strcmp(svc->callers[i].pattern, route->pattern) == 0 &&
            strcmp(svc->callers[i].method, route->method) == 0)
            return svc->callers[i].callers;
    }
    return NULL;
}

/* Who may call 'route': 0 when 'id' (NULL without a verified identity)
 * may, else the status to answer (401, 403, or 404 for an ops route asked
 * on the wrong listener). */
static int
route_access(const struct ag_service *svc, const struct ag_route *route,
             const struct ag_identity *id, bool on_ops_listener)
{
    switch (route->role) {
    case AG_ROLE_PUBLIC: return on_ops_listener ? 404 : 0;
    case AG_ROLE_PROBE: return 0;
    case AG_ROLE_OPS:
        /* With an ops listener, ops routes are not on the main port. */
        return svc->ops_server != NULL && !on_ops_listener ? 404 : 0;
    case AG_ROLE_CUSTOMER:
    case AG_ROLE_ADMIN: {
        if (on_ops_listener)
            return 404;
        unsigned need = route->role == AG_ROLE_ADMIN ? AG_IDENTITY_ADMIN
                                                     : AG_IDENTITY_CUSTOMER | AG_IDENTITY_ADMIN;
        if (id == NULL)
            return 401;
        return (id->roles & need) != 0 ? 0 : 403;
    }
    case AG_ROLE_INTERNAL:
        if (on_ops_listener)
            return 404;
        if (id == NULL)
            return 401;
        if ((id->roles & AG_IDENTITY_SERVICE) == 0)
            return 403;
        return caller_allowed(callers_of(svc, route), id->user_id) ? 0 : 403;
    }
    return 403;
}

/* Admission class of a request whose head is complete: the routes of
 * probes, operators and other services (health, /metrics, registry
 * heartbeats and watches, bus pulls) are never shed, so an overloaded
 * service still answers its supervisor and the control plane, and long
 * polls do not count as load. The route match is kept for dispatch. */
static enum ag_http_admit_class
admit_class(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    struct req_ctx *ctx = ag_pool_calloc(req->pool, sizeof(*ctx));
    ctx->matched = true;
    ctx->match_status = ag_router_match(svc->router, req->method_name, req->path, &ctx->match);
    req->ctx = ctx;
    if (ctx->match_status == AG_ROUTER_FOUND && ctx->match.route->role >= AG_ROLE_INTERNAL)
        return AG_HTTP_ADMIT_EXEMPT;
    return AG_HTTP_ADMIT_LIMITED;
}

static void
dispatch(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    bool on_ops = req->server == svc->ops_server;
    /* The admission classifier may have matched the route already. */
    struct req_ctx *ctx = req->ctx;
    if (ctx == NULL)
        ctx = ag_pool_calloc(req->pool, sizeof(*ctx));
    ctx->svc = svc;
    req->ctx = ctx;
    svc->inflight++;

    struct ag_str rid = ag_http_req_header(req, "X-Request-ID");
    if (is_valid_request_id(rid)) {
        memcpy(ctx->request_id, rid.ptr, rid.len);
        ctx->request_id[rid.len] = '\0';
    } else {
        ag_uuid7(ctx->request_id);
    }
    struct ag_str tph = ag_http_req_header(req, "traceparent");
    ag_trace_start(tph, &ctx->trace);
    ctx->continued = tph.len > 0 && ctx->trace.parent_id[0] != '\0';
    ag_span_begin(&ctx->span, &ctx->trace, "HTTP", AG_SPAN_SERVER);
    ag_log_set_context(ctx->request_id, ctx->trace.trace_id);
    svc->dispatching = ctx;
    ag_trace_set_current(&ctx->trace);
    ag_http_resp_header(req, "X-Request-ID", ctx->request_id);
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_trace_format(&ctx->trace, tp);
    ag_http_resp_header(req, "traceresponse", tp);

    enum ag_router_status st =
        ctx->matched ? ctx->match_status
                     : ag_router_match(svc->router, req->method_name, req->path, &ctx->match);
    struct ag_str ident = ag_http_req_header(req, AG_IDENTITY_HEADER);
    if (ident.len > 0) {
        int64_t now = ag_time_unix_ms() / 1000;
        /* "s1;": a service, with its own key; else a user, as the gateway
         * signed it (which never carries the service role). */
        int rc = ident.len > 3 && memcmp(ident.ptr, "s1;", 3) == 0
                     ? ag_identity_service_verify(svc->service_keys, ident, now, &ctx->identity)
                     : ag_identity_verify(svc->identity_key, ident, now, &ctx->identity);
        ctx->has_identity = rc == 0;
    }
    if (st == AG_ROUTER_FOUND) {
        const struct ag_route *route = ctx->match.route;
        req->route = (void *)route;
        req->route_id = route->pattern;
        int deny = route_access(svc, route, ctx->has_identity ? &ctx->identity : NULL, on_ops);
        if (deny == 401) {
            ag_http_resp_header(req, "WWW-Authenticate",
                                route->role == AG_ROLE_INTERNAL ? "AgoraIdentity" : "Bearer");
            ag_send_error(req, AG_EAUTH, "%s",
                          route->role == AG_ROLE_INTERNAL
                              ? "this resource needs a service identity"
                              : "this resource needs a signed-in caller");
        } else if (deny == 403 && route->role == AG_ROLE_INTERNAL && ctx->has_identity &&
                   (ctx->identity.roles & AG_IDENTITY_SERVICE) != 0) {
            ag_send_error(req, AG_EFORBIDDEN, "service '%s' may not call this resource (only %s)",
                          ctx->identity.user_id, callers_of(svc, route));
        } else if (deny == 403) {
            ag_send_error(req, AG_EFORBIDDEN, "this resource needs the %s role",
                          ag_role_name(route->role));
        } else if (deny == 404) {
            req->route_id = "unmatched";
            ag_send_error(req, AG_ENOENT, "no resource at this path");
        } else {
            route->fn(req, ctx->match.udata);
        }
    } else if (st == AG_ROUTER_METHOD_NOT_ALLOWED) {
        req->route_id = "unmatched";
        ag_http_resp_header(req, "Allow", ctx->match.allow);
        if (req->method == AG_HTTP_OPTIONS)
            ag_http_send(req, 204, NULL, NULL, 0);
        else
            ag_send_error(req, AG_EMETHOD, "%.*s is not allowed here; allowed: %s",
                          AG_STR_FMT(req->method_name), ctx->match.allow);
    } else if (svc->cfg.fallback != NULL && !on_ops) {
        req->route_id = "fallback";
        svc->cfg.fallback(req, svc->cfg.udata);
    } else {
        req->route_id = "unmatched";
        ag_send_error(req, AG_ENOENT, "no resource at this path");
    }
    svc->dispatching = NULL;
    ag_trace_set_current(NULL);
    ag_log_set_context(NULL, NULL);
}

/* "200" for 200: three digits for any HTTP status, no snprintf on the hot
 * path (bench/catalog: ~3% of a read). */
static void
status_label(int status, char out[8])
{
    if (status < 100 || status > 999) {
        snprintf(out, 8, "%d", status);
        return;
    }
    out[0] = (char)('0' + status / 100);
    out[1] = (char)('0' + status / 10 % 10);
    out[2] = (char)('0' + status % 10);
    out[3] = '\0';
}

static void
on_complete(struct ag_http_req *req, void *udata)
{
    struct ag_service *svc = udata;
    struct req_ctx *ctx = ctx_of(req);
    /* Requests the server rejected itself (413, 400, 408, 503...) never
     * reached dispatch: no context, not in flight, route "rejected". */
    /* The running handler answered its own request, whose memory goes now:
     * nothing of it may stay referenced for the log context. */
    if (ctx != NULL && svc->dispatching == ctx) {
        svc->dispatching = NULL;
        ag_trace_set_current(NULL);
    }
    if (ctx != NULL)
        svc->inflight--;
    else
        req->route_id = "rejected";
    /* Platform chatter that starts no trace of its own (heartbeats, long
     * polls, probes, scrapes) is not recorded: a trace begins at a route
     * people call, or continues one. */
    if (ctx != NULL && ctx->span.recording && !ctx->continued &&
        ((req->route == NULL &&
          (req->route_id == NULL || strcmp(req->route_id, "fallback") != 0)) ||
         (req->route != NULL && ((const struct ag_route *)req->route)->role >= AG_ROLE_INTERNAL)))
        ctx->span.recording = false;
    if (ctx != NULL && ctx->span.recording) {
        /* HTTP server semantic conventions: "{method} {route}". */
        char name[AG_SPAN_MAX_TEXT];
        snprintf(name, sizeof(name), "%.*s %s", AG_STR_FMT(req->method_name),
                 req->route_id ? req->route_id : "unmatched");
        ag_span_set_name(&ctx->span, name);
        ag_span_attr_strn(&ctx->span, "http.request.method", req->method_name.ptr,
                          req->method_name.len);
        ag_span_attr_str(&ctx->span, "http.route", req->route_id);
        ag_span_attr_strn(&ctx->span, "url.path", req->path.ptr, req->path.len);
        ag_span_attr_int(&ctx->span, "http.response.status_code", req->status);
        ag_span_attr_str(&ctx->span, "service.name", svc->cfg.name);
        if (req->status >= 500) {
            char code[16];
            snprintf(code, sizeof(code), "%d", req->status);
            ag_span_attr_str(&ctx->span, "error.type", code);
            ag_span_error(&ctx->span, NULL);
        }
        ag_span_end(&ctx->span);
    }
    double secs = (double)(ag_time_mono_ns() - req->start_ns) / 1e9;
    const char *route = req->route_id ? req->route_id : "unmatched";
    char status[8];
    status_label(req->status, status);
    const char *labels[] = { route, method_label(req), status };
    ag_counter_add(svc->m_requests, labels, 1);
    const char *hlabels[] = { route };
    ag_histogram_observe(svc->m_duration, hlabels, secs);
    if (svc->settings.access_log && ag_log_enabled(AG_LOG_INFO)) {
        /* A rejected request gets a trace of its own, so every access line
         * has a trace id. */
        struct ag_trace_ctx rejected;
        if (ctx == NULL)
            ag_trace_start(AG_STR_NULL, &rejected);
        ag_log_set_context(ctx ? ctx->request_id : req->error_request_id,
                           ctx ? ctx->trace.trace_id : rejected.trace_id);
        json_t *f = json_pack("{s:s%, s:s%, s:s, s:i, s:I, s:I, s:s}", "method",
                              req->method_name.ptr, req->method_name.len, "path", req->path.ptr,
                              req->path.len, "route", route, "status", req->status, "duration_us",
                              (json_int_t)(secs * 1e6), "bytes", (json_int_t)req->resp_bytes,
                              "remote", req->remote_addr ? req->remote_addr : "");
        ag_log_json(AG_LOG_INFO, "http", "request", f);
        json_decref(f);
        /* A handler may answer other requests (long polls) while it runs:
         * give it its own log context back. */
        struct req_ctx *cur = svc->dispatching;
        ag_log_set_context(cur ? cur->request_id : NULL, cur ? cur->trace.trace_id : NULL);
    }
}

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct ag_service *svc = udata;
    ag_gauge_set(svc->m_inflight, NULL, (double)svc->inflight);
    uint64_t verified, cached;
    ag_identity_keyring_stats(svc->service_keys, &verified, &cached);
    const char *v[] = { "verified" };
    const char *c[] = { "cached" };
    ag_counter_add(svc->m_ident, v, (double)(verified - svc->ident_verified));
    ag_counter_add(svc->m_ident, c, (double)(cached - svc->ident_cached));
    svc->ident_verified = verified;
    svc->ident_cached = cached;
    if (svc->server != NULL) {
        struct ag_http_server_stats st;
        ag_http_server_get_stats(svc->server, &st);
        const char *adm[] = { "admitted" };
        const char *shed[] = { "shed" };
        ag_counter_add(svc->m_admission, adm, (double)(st.requests_admitted - svc->admitted_seen));
        ag_counter_add(svc->m_admission, shed, (double)(st.requests_shed - svc->shed_seen));
        svc->admitted_seen = st.requests_admitted;
        svc->shed_seen = st.requests_shed;
        ag_gauge_set(svc->m_admission_limit, NULL, (double)st.inflight_limit);
        ag_gauge_set(svc->m_admission_in, NULL, (double)st.inflight);
        ag_gauge_set(svc->m_admission_floor, NULL, (double)st.latency_floor_us / 1e6);
    }
}

/* ---- Lifecycle ---- */

int
ag_service_exit_code(int init_rc)
{
    if (init_rc == 0)
        return 0;
    return init_rc == AG_ECONFIG ? 2 : 1;
}

static void
print_usage(const struct ag_service *svc)
{
    printf("%s %s: settings (environment variables, or KEY=VALUE lines in the file named "
           "by AGORA_CONFIG_FILE)\n\n",
           svc->cfg.name, svc->cfg.version);
    ag_config_usage(svc->base_keys, AG_ARRAY_SIZE(BASE_KEYS), stdout);
    if (svc->cfg.nkeys)
        ag_config_usage(svc->cfg.keys, svc->cfg.nkeys, stdout);
}

/* Split AGORA_OPS_ADDRESS "host:port" into 'host' (bytes at 'hostlen') and
 * '*port'. Returns 0 or AG_ECONFIG. */
static int
parse_ops_address(const char *a, char *host, size_t hostlen, int64_t *port)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL || (size_t)(colon - a) >= hostlen || colon == a ||
        ag_str_to_i64(ag_str_from_cstr(colon + 1), 0, 65535, port) != 0)
        return AG_ECONFIG;
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    return 0;
}

int
ag_service_init(struct ag_service **out_svc, int argc, char **argv,
                const struct ag_service_config *cfg)
{
    if (cfg == NULL || cfg->name == NULL)
        AG_BUG("service config needs a name");
    if (sodium_init() < 0)
        AG_BUG("sodium_init failed");
    struct ag_service *svc = ag_calloc(1, sizeof(*svc));
    svc->magic = SERVICE_MAGIC;
    svc->cfg = *cfg;
    if (svc->cfg.version == NULL)
        svc->cfg.version = "0.1.0";
    snprintf(svc->port_default, sizeof(svc->port_default), "%d",
             cfg->default_port ? cfg->default_port : 8080);
    snprintf(svc->bus_url_default, sizeof(svc->bus_url_default), "http://127.0.0.1:%d",
             AG_PORT_BUS);
    svc->base_keys = ag_malloc(sizeof(BASE_KEYS));
    memcpy(svc->base_keys, BASE_KEYS, sizeof(BASE_KEYS));
    for (size_t i = 0; i < AG_ARRAY_SIZE(BASE_KEYS); i++) {
        if (strcmp(svc->base_keys[i].name, "AGORA_HTTP_PORT") == 0)
            svc->base_keys[i].def = svc->port_default;
        else if (strcmp(svc->base_keys[i].name, "AGORA_BUS_URL") == 0)
            svc->base_keys[i].def = svc->bus_url_default;
        else if (strcmp(svc->base_keys[i].name, "AGORA_OPS_ADDRESS") == 0 &&
                 cfg->default_ops_address != NULL)
            svc->base_keys[i].def = cfg->default_ops_address;
    }
    *out_svc = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(svc);
            ag_free(svc->base_keys);
            ag_free(svc);
            return 1;
        }
    }

    char err[256];
    int rc =
        ag_config_load(svc->base_keys, AG_ARRAY_SIZE(BASE_KEYS), &svc->settings, err, sizeof(err));
    if (rc == 0 && cfg->nkeys)
        rc = ag_config_load(cfg->keys, cfg->nkeys, cfg->settings, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "config: %s\n", err);
        ag_service_free(svc);
        return AG_ECONFIG;
    }
    char ops_host[256];
    int64_t ops_port;
    if (svc->settings.ops_address[0] != '\0' &&
        parse_ops_address(svc->settings.ops_address, ops_host, sizeof(ops_host), &ops_port) != 0) {
        fprintf(stderr, "config: AGORA_OPS_ADDRESS: '%s' is not host:port\n",
                svc->settings.ops_address);
        ag_service_free(svc);
        return AG_ECONFIG;
    }
    enum ag_discovery_kind discovery = AG_DISCOVERY_REGISTRY;
    if (ag_discovery_parse(svc->settings.discovery, &discovery, err, sizeof(err)) != 0) {
        fprintf(stderr, "config: AGORA_DISCOVERY: %s\n", err);
        ag_service_free(svc);
        return AG_ECONFIG;
    }
    svc->dns_discovery = discovery == AG_DISCOVERY_DNS;
    if (svc->settings.instance_id[0] == '\0') {
        ag_free(svc->settings.instance_id);
        svc->settings.instance_id = ag_asprintf("%s-%d", cfg->name, (int)getpid());
    }
    {
        char *end = NULL;
        double ratio = strtod(svc->settings.trace_sample, &end);
        if (end == svc->settings.trace_sample || *end != '\0' || !(ratio >= 0 && ratio <= 1)) {
            fprintf(stderr, "config: AGORA_TRACE_SAMPLE: '%s' is not a ratio from 0 to 1\n",
                    svc->settings.trace_sample);
            ag_service_free(svc);
            return AG_ECONFIG;
        }
        ag_trace_set_sample_ratio(ratio);
        const char *ep = svc->settings.otlp_endpoint;
        if (ep[0] != '\0' && strncmp(ep, "http://", 7) != 0) {
            fprintf(stderr, "config: AGORA_OTLP_ENDPOINT: '%s' is not an http:// URL\n", ep);
            ag_service_free(svc);
            return AG_ECONFIG;
        }
    }
    if (svc->settings.internal_key[0] != '\0') {
        if (ag_identity_key_parse(svc->settings.internal_key, svc->identity_key) != 0) {
            fprintf(stderr, "config: AGORA_INTERNAL_KEY: must be 64 hex digits\n");
            ag_service_free(svc);
            return AG_ECONFIG;
        }
    } else {
        /* No key: nobody can sign an identity, so protected routes answer
         * 401, and this process cannot call the registry or the bus. */
        randombytes_buf(svc->identity_key, sizeof(svc->identity_key));
    }
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    if (svc->settings.service_key[0] != '\0') {
        if (ag_identity_key_parse(svc->settings.service_key, seed) != 0) {
            fprintf(stderr, "config: AGORA_SERVICE_KEY: must be 64 hex digits\n");
            ag_service_free(svc);
            return AG_ECONFIG;
        }
    } else {
        /* No key: this process's service identity is nobody's. */
        randombytes_buf(seed, sizeof(seed));
    }
    int self_rc = ag_identity_self_init(&svc->self, seed, cfg->name);
    sodium_memzero(seed, sizeof(seed));
    if (self_rc != 0)
        AG_BUG("service name must be [A-Za-z0-9-_.]{1,63}");
    {
        char why[128];
        if (ag_identity_keyring_new(svc->settings.service_pubkeys, &svc->service_keys, why,
                                    sizeof(why)) != 0) {
            fprintf(stderr, "config: AGORA_SERVICE_PUBKEYS: %s\n", why);
            ag_service_free(svc);
            return AG_ECONFIG;
        }
    }
    enum ag_log_level level = AG_LOG_INFO;
    ag_log_parse_level(svc->settings.log_level, &level);
    ag_log_init(cfg->name, svc->settings.instance_id, level);
    if (svc->settings.internal_key[0] == '\0')
        AG_LOGW("service", "AGORA_INTERNAL_KEY is not set: no user identity is accepted");
    if (svc->settings.service_key[0] == '\0' || ag_identity_keyring_count(svc->service_keys) == 0)
        AG_LOGW("service", "AGORA_SERVICE_KEY or AGORA_SERVICE_PUBKEYS is not set: internal routes "
                           "refuse every caller and calls to the registry and the bus will be "
                           "refused");
    /* Databases, their WAL and anything else this process creates are its
     * own (0600, directories 0700): they hold password hashes and keys. */
    umask(077);

    if (uv_loop_init(&svc->loop) != 0)
        AG_BUG("uv_loop_init failed");
    svc->loop_ready = true;
    svc->metrics = ag_metrics_new();
    ag_metrics_add_process(svc->metrics);
    static const char *const req_labels[] = { "route", "method", "status" };
    static const char *const route_labels[] = { "route" };
    svc->m_requests =
        ag_metrics_counter(svc->metrics, "http_requests_total",
                           "HTTP requests answered, by route, method and status", req_labels, 3);
    svc->m_duration = ag_metrics_histogram(svc->metrics, "http_request_duration_seconds",
                                           "Time from request head to response, by route",
                                           route_labels, 1, NULL, 0);
    svc->m_inflight = ag_metrics_gauge(svc->metrics, "http_requests_in_flight",
                                       "Requests being handled", NULL, 0);
    static const char *const ident_labels[] = { "result" };
    svc->m_ident = ag_metrics_counter(svc->metrics, "service_identity_checks_total",
                                      "Service identities accepted: by a signature check "
                                      "(verified) or from the cache of verified headers (cached)",
                                      ident_labels, 1);
    static const char *const adm_labels[] = { "result" };
    svc->m_admission = ag_metrics_counter(
        svc->metrics, "http_admission_requests_total",
        "Requests under the admission limit: admitted (handed to their handler) or shed "
        "(answered 503 with Retry-After at once); probes, /metrics and internal routes are not "
        "counted",
        adm_labels, 1);
    svc->m_admission_limit = ag_metrics_gauge(
        svc->metrics, "http_admission_limit",
        "Current limit on admitted requests in flight (0: admission off)", NULL, 0);
    svc->m_admission_in = ag_metrics_gauge(svc->metrics, "http_admission_in_flight",
                                           "Admitted requests not answered yet", NULL, 0);
    svc->m_admission_floor =
        ag_metrics_gauge(svc->metrics, "http_admission_latency_floor_seconds",
                         "No-load latency the adaptive limit compares answers with", NULL, 0);
    ag_metrics_on_collect(svc->metrics, collect, svc);
    svc->router = ag_router_new();
    ag_router_add_table(svc->router, BUILTIN_ROUTES, AG_ARRAY_SIZE(BUILTIN_ROUTES), svc);

    if (cfg->migrations != NULL) {
        bool pg = svc->settings.db_url[0] != '\0';
        char shown[512];
        if (pg) {
            db_url_redacted(svc->settings.db_url, shown, sizeof(shown));
            if (cfg->sqlite_only) {
                AG_LOGE("service", "AGORA_DB_URL: %s keeps its database in SQLite only", cfg->name);
                ag_service_free(svc);
                return AG_ECONFIG;
            }
            if (strncmp(svc->settings.db_url, "postgres://", 11) != 0 &&
                strncmp(svc->settings.db_url, "postgresql://", 13) != 0) {
                AG_LOGE("service", "AGORA_DB_URL must start with postgres:// or postgresql://");
                ag_service_free(svc);
                return AG_ECONFIG;
            }
        } else if (svc->settings.db_path[0] == '\0') {
            ag_free(svc->settings.db_path);
            svc->settings.db_path = ag_asprintf("%s/%s.db", svc->settings.data_dir, cfg->name);
            if (mkdir_p(svc->settings.data_dir) != 0) {
                AG_LOGE("service", "cannot create data directory '%s': %s", svc->settings.data_dir,
                        strerror(errno));
                ag_service_free(svc);
                return AG_EIO;
            }
        }
        if (!pg)
            snprintf(shown, sizeof(shown), "%s", svc->settings.db_path);
        struct ag_store_config scfg = {
            .path = pg ? svc->settings.db_url : svc->settings.db_path,
            .durability =
                strcmp(svc->settings.durability, "normal") == 0 ? AG_STORE_NORMAL : AG_STORE_FULL,
            .migrations = cfg->migrations,
            .nmigrations = cfg->nmigrations,
            .exclusive = !pg && strcmp(svc->settings.db_locking, "exclusive") == 0,
            .errbuf = err,
            .errbuf_len = sizeof(err),
        };
        err[0] = '\0';
        if (!pg)
            ag_service_check_private(svc->settings.data_dir, svc->settings.db_path);
        rc = ag_store_open(&scfg, &svc->store);
        if (rc != 0) {
            AG_LOGE("service", "cannot open database '%s': %s", shown,
                    err[0] ? err : ag_strerror(rc));
            ag_service_free(svc);
            return rc;
        }
        AG_LOGI("service", "database '%s' (%s)", shown, ag_store_backend(svc->store));
    }
    if (cfg->idempotency) {
        struct ag_idem_config icfg = { .ttl_ms = svc->settings.idempotency_ttl_ms };
        rc = svc->store != NULL ? ag_idem_new(svc->store, &icfg, &svc->idem) : AG_EINVAL;
        if (rc != 0) {
            AG_LOGE("service", "cannot keep idempotency records: %s", ag_strerror(rc));
            ag_service_free(svc);
            return rc;
        }
    }
    *out_svc = svc;
    return 0;
}

int
ag_service_routes(struct ag_service *svc, const struct ag_route *routes, size_t n, void *udata)
{
    AG_CHECK_MAGIC(svc, SERVICE_MAGIC);
    int rc = ag_router_add_table(svc->router, routes, n, udata);
    if (rc != 0)
        AG_LOGE("service", "cannot register routes: %s", ag_strerror(rc));
    return rc;
}

int
ag_service_route_callers(struct ag_service *svc, const char *method, const char *pattern,
                         const char *callers)
{
    AG_CHECK_MAGIC(svc, SERVICE_MAGIC);
    bool found = false;
    for (size_t i = 0; i < ag_router_count(svc->router); i++) {
        const struct ag_route *r = ag_router_get(svc->router, i);
        found = found || (r->role == AG_ROLE_INTERNAL && strcmp(r->method, method) == 0 &&
                          strcmp(r->pattern, pattern) == 0);
    }
    if (!found || callers == NULL || callers[0] == '\0') {
        AG_LOGE("service", "no internal route %s %s to restrict", method, pattern);
        return AG_ENOENT;
    }
    if (svc->ncallers == MAX_ROUTE_CALLERS)
        return AG_ETOOBIG;
    svc->callers[svc->ncallers].method = ag_strdup(method);
    svc->callers[svc->ncallers].pattern = ag_strdup(pattern);
    svc->callers[svc->ncallers].callers = ag_strdup(callers);
    svc->ncallers++;
    return 0;
}

static void
on_client_closed(void *udata)
{
    struct ag_service *svc = udata;
    svc->client = NULL;
}

static void on_events_stopped(void *udata);

/* ---- Idempotency records: the sweep timer ---- */

static void
on_idem_sweep(uv_timer_t *t)
{
    struct ag_service *svc = t->data;
    int64_t n = 0;
    int rc = ag_idem_sweep(svc->idem, ag_time_unix_ms(), &n);
    if (rc != 0)
        AG_LOGW("service", "cannot sweep idempotency records: %s", ag_strerror(rc));
    else if (n > 0)
        AG_LOGD("service", "%lld expired idempotency records deleted", (long long)n);
}

static void
idem_sweep_start(struct ag_service *svc)
{
    if (svc->idem == NULL)
        return;
    uv_timer_init(&svc->loop, &svc->idem_sweep);
    svc->idem_sweep.data = svc;
    uv_timer_start(&svc->idem_sweep, on_idem_sweep, svc->settings.idempotency_sweep_ms,
                   svc->settings.idempotency_sweep_ms);
    svc->idem_sweeping = true;
}

static void
idem_sweep_close(struct ag_service *svc)
{
    if (!svc->idem_sweeping)
        return;
    uv_timer_stop(&svc->idem_sweep);
    uv_close((uv_handle_t *)&svc->idem_sweep, NULL);
    svc->idem_sweeping = false;
}

/* Both halves of a stop are done (server drained, registry left): run
 * on_stop, close the client and the signal handles; the loop then ends. */
static void
maybe_finish_stop(struct ag_service *svc)
{
    if (!svc->server_done || !svc->ops_done || !svc->registry_done || svc->events_stopping)
        return;
    if (svc->events != NULL) {
        /* Flush the outbox (bounded), then come back here. */
        struct ag_events *ev = svc->events;
        svc->events = NULL;
        svc->events_stopping = true;
        uint64_t flush = AG_MIN(svc->settings.shutdown_timeout_ms, 3000);
        ag_events_stop(ev, flush, on_events_stopped, svc);
        return;
    }
    AG_LOGI("service", "drained; stopping");
    if (svc->cfg.on_stop != NULL)
        svc->cfg.on_stop(svc, svc->cfg.udata);
    idem_sweep_close(svc);
    ag_loop_metrics_close(svc->loop_metrics);
    ag_otlp_close(svc->otlp);
    svc->otlp = NULL;
    if (svc->client != NULL)
        ag_http_client_close(svc->client, on_client_closed, svc);
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    uv_close((uv_handle_t *)&svc->sigint, NULL);
    /* Closing the handles restored the default actions; a late signal
     * (a supervisor's SIGTERM after a terminal's SIGINT) must not kill a
     * process that is already finishing cleanly. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    svc->stopped_clean = true;
}

static void
on_events_stopped(void *udata)
{
    struct ag_service *svc = udata;
    svc->events_stopping = false;
    maybe_finish_stop(svc);
}

static void
on_server_stopped(struct ag_http_server *srv, void *udata)
{
    AG_UNUSED(srv);
    struct ag_service *svc = udata;
    svc->server_done = true;
    maybe_finish_stop(svc);
}

static void
on_ops_server_stopped(struct ag_http_server *srv, void *udata)
{
    AG_UNUSED(srv);
    struct ag_service *svc = udata;
    svc->ops_done = true;
    maybe_finish_stop(svc);
}

static void
on_registry_stopped(void *udata)
{
    struct ag_service *svc = udata;
    svc->registry = NULL;
    svc->registry_done = true;
    maybe_finish_stop(svc);
}

static void begin_stop(struct ag_service *svc);

static void
on_signal(uv_signal_t *handle, int signum)
{
    struct ag_service *svc = handle->data;
    if (svc->stopping) {
        AG_LOGW("service", "second signal %d during shutdown; exiting now", signum);
        _exit(1);
    }
    AG_LOGI("service", "signal %d: stopping (drain up to %llu ms)", signum,
            (unsigned long long)svc->settings.shutdown_timeout_ms);
    begin_stop(svc);
}

/* Graceful stop: on_stopping, deregistration and the server's drain run
 * together; maybe_finish_stop() completes it. */
static void
begin_stop(struct ag_service *svc)
{
    svc->stopping = true;
    if (svc->cfg.on_stopping != NULL)
        svc->cfg.on_stopping(svc, svc->cfg.udata);
    /* Leave the registry first, so no new traffic is routed here while the
     * requests in flight finish. */
    if (svc->registry != NULL)
        ag_registry_stop(svc->registry, on_registry_stopped, svc);
    else
        svc->registry_done = true;
    ag_http_server_stop(svc->server, svc->settings.shutdown_timeout_ms, on_server_stopped, svc);
    if (svc->ops_server != NULL)
        ag_http_server_stop(svc->ops_server, svc->settings.shutdown_timeout_ms,
                            on_ops_server_stopped, svc);
    else
        svc->ops_done = true;
}

static int
start_registry(struct ag_service *svc)
{
    if (svc->settings.registry_url[0] == '\0')
        return 0;
    const char *addr = svc->settings.advertise_address[0] != '\0' ? svc->settings.advertise_address
                       : strcmp(svc->settings.http_host, "0.0.0.0") == 0 ||
                               strcmp(svc->settings.http_host, "::") == 0
                           ? "127.0.0.1"
                           : svc->settings.http_host;
    /* A new incarnation per process: clients tell a restarted instance
     * (same id, address and port) from the one that died. */
    char incarnation[AG_UUID_STRLEN + 1];
    ag_uuid7(incarnation);
    json_t *meta = json_pack("{s:s, s:s}", "version", svc->cfg.version, "incarnation", incarnation);
    struct ag_registry_config rcfg = {
        .url = svc->settings.registry_url,
        /* Under DNS discovery callers find this instance by its Service
         * name; the registry is then only the configuration store. */
        .service = svc->dns_discovery ? NULL : svc->cfg.name,
        .instance_id = svc->settings.instance_id,
        .address = addr,
        .port = ag_http_server_port(svc->server),
        .metadata = meta,
        .ttl_ms = svc->settings.registry_ttl_ms,
        .identity = &svc->self,
    };
    int rc = ag_registry_new(&svc->loop, svc->client, &rcfg, &svc->registry);
    json_decref(meta);
    if (rc != 0) {
        AG_LOGE("service", "cannot create the registry client for '%s': %s",
                svc->settings.registry_url, ag_strerror(rc));
        return rc;
    }
    ag_registry_start(svc->registry);
    return 0;
}

static void
close_client_cb(void *udata)
{
    struct ag_service *svc = udata;
    if (svc->client != NULL)
        ag_http_client_close(svc->client, on_client_closed, svc);
}

/* Start-up failed before the loop ran: close what exists, let the loop
 * run the close callbacks, and report failure. */
static int
abort_run(struct ag_service *svc)
{
    if (svc->cfg.on_stop != NULL)
        svc->cfg.on_stop(svc, svc->cfg.udata);
    idem_sweep_close(svc);
    ag_loop_metrics_close(svc->loop_metrics);
    if (svc->events != NULL) {
        struct ag_events *ev = svc->events;
        svc->events = NULL;
        ag_events_stop(ev, 0, close_client_cb, svc);
    } else if (svc->client != NULL) {
        ag_http_client_close(svc->client, on_client_closed, svc);
    }
    uv_run(&svc->loop, UV_RUN_DEFAULT);
    return 1;
}

/* The operator listener: same handler, loopback by configuration, only
 * probe and ops routes (route_access). Small limits: it is not for traffic.
 * The address was checked when the settings were read. */
static int
start_ops_listener(struct ag_service *svc, const struct ag_http_server_config *main_cfg)
{
    const char *a = svc->settings.ops_address;
    char host[256];
    int64_t port;
    if (parse_ops_address(a, host, sizeof(host), &port) != 0)
        return AG_ECONFIG;
    struct ag_http_server_config ocfg = *main_cfg;
    ocfg.host = host;
    ocfg.port = (int)port;
    ocfg.max_connections = 64;
    ocfg.max_body_bytes = 4096;
    ocfg.admission = AG_HTTP_ADMISSION_OFF; /* operators' routes only */
    ocfg.admit_class = NULL;
    int rc = ag_http_server_new(&svc->loop, &ocfg, &svc->ops_server);
    if (rc != 0) {
        AG_LOGE("service", "cannot listen on ops address %s: %s", a, ag_strerror(rc));
        return rc;
    }
    json_t *f =
        json_pack("{s:s, s:i}", "address", host, "port", ag_http_server_port(svc->ops_server));
    ag_log_json(AG_LOG_INFO, "service", "ops listening", f);
    json_decref(f);
    return 0;
}

static void
on_server_closed_at_abort(struct ag_http_server *srv, void *udata)
{
    AG_UNUSED(srv);
    AG_UNUSED(udata);
}

/* Start-up failed once the main listener existed: close it, then as
 * abort_run. */
static int
abort_run_listening(struct ag_service *svc)
{
    ag_http_server_stop(svc->server, 0, on_server_closed_at_abort, svc);
    return abort_run(svc);
}

int
ag_service_run(struct ag_service *svc)
{
    AG_CHECK_MAGIC(svc, SERVICE_MAGIC);
    signal(SIGPIPE, SIG_IGN);
    if (ag_loop_metrics_start(&svc->loop, svc->metrics, &svc->loop_metrics) != 0)
        AG_LOGW("service", "libuv cannot measure idle time: no event_loop_busy_* metrics");
    if (ag_http_client_new(&svc->loop, NULL, &svc->client) != 0)
        AG_BUG("cannot create the HTTP client");
    ag_http_client_metrics(svc->client, svc->metrics);
    if (svc->settings.otlp_endpoint[0] != '\0') {
        struct ag_otlp_config ocfg = {
            .endpoint = svc->settings.otlp_endpoint,
            .service_name = svc->cfg.name,
            .service_instance = svc->settings.instance_id,
            .service_version = svc->cfg.version,
            .max_queue_bytes = svc->settings.trace_queue_bytes,
            .metrics = svc->metrics,
        };
        if (ag_otlp_new(&svc->loop, svc->client, &ocfg, &svc->otlp) != 0)
            AG_LOGW("service", "cannot export spans to '%s': not recording spans",
                    svc->settings.otlp_endpoint);
    }
    if (svc->cfg.events) {
        if (svc->store == NULL)
            AG_BUG("a service with events needs a database (migrations)");
        snprintf(svc->events_source, sizeof(svc->events_source), "/agora/%s", svc->cfg.name);
        /* AGORA_EVENTS_URL (RabbitMQ) replaces the bus when set. */
        const char *broker = svc->settings.events_url != NULL && svc->settings.events_url[0]
                                 ? svc->settings.events_url
                                 : svc->settings.bus_url;
        struct ag_events_config ecfg = {
            .source = svc->events_source,
            .bus_url = broker,
            .identity = &svc->self,
            .access_log = svc->settings.access_log,
        };
        int erc = ag_events_new(&svc->loop, svc->store, svc->client, &ecfg, &svc->events);
        if (erc != 0) {
            /* ag_events_new logged the broker (its password redacted). */
            AG_LOGE("service", "cannot start events: %s", ag_strerror(erc));
            return abort_run(svc);
        }
        ag_events_metrics(svc->events, svc->metrics);
    }
    idem_sweep_start(svc);
    if (svc->cfg.on_start != NULL) {
        int rc = svc->cfg.on_start(svc, svc->cfg.udata);
        if (rc != 0) {
            AG_LOGE("service", "start failed: %s", ag_strerror(rc));
            return abort_run(svc);
        }
    }
    struct ag_http_server_config hcfg = {
        .host = svc->settings.http_host,
        .port = (int)svc->settings.http_port,
        .max_body_bytes = svc->settings.max_body,
        .max_connections = svc->settings.max_connections,
        .header_timeout_ms = svc->settings.header_timeout_ms,
        .body_timeout_ms = svc->settings.body_timeout_ms,
        .idle_timeout_ms = svc->settings.idle_timeout_ms,
        .admission = strcmp(svc->settings.admission, "off") == 0     ? AG_HTTP_ADMISSION_OFF
                     : strcmp(svc->settings.admission, "fixed") == 0 ? AG_HTTP_ADMISSION_FIXED
                                                                     : AG_HTTP_ADMISSION_ADAPTIVE,
        .max_inflight = (uint32_t)svc->settings.max_inflight,
        .min_inflight = (uint32_t)svc->settings.min_inflight,
        .queue_delay_ms = svc->settings.queue_delay_ms,
        .admit_class = admit_class,
        .handler = dispatch,
        .on_complete = on_complete,
        .udata = svc,
    };
    int rc = ag_http_server_new(&svc->loop, &hcfg, &svc->server);
    if (rc != 0) {
        AG_LOGE("service", "cannot listen on %s:%lld: %s", svc->settings.http_host,
                (long long)svc->settings.http_port, ag_strerror(rc));
        return abort_run(svc);
    }
    if (svc->settings.ops_address[0] != '\0' && start_ops_listener(svc, &hcfg) != 0)
        return abort_run_listening(svc);
    uv_signal_init(&svc->loop, &svc->sigterm);
    uv_signal_init(&svc->loop, &svc->sigint);
    svc->sigterm.data = svc;
    svc->sigint.data = svc;
    uv_signal_start(&svc->sigterm, on_signal, SIGTERM);
    uv_signal_start(&svc->sigint, on_signal, SIGINT);

    if (svc->events != NULL)
        ag_events_start(svc->events);
    if (start_registry(svc) != 0) {
        begin_stop(svc);
        uv_run(&svc->loop, UV_RUN_DEFAULT);
        return 1;
    }

    json_t *f = json_pack("{s:s, s:i, s:s}", "address", svc->settings.http_host, "port",
                          ag_http_server_port(svc->server), "version", svc->cfg.version);
    ag_log_json(AG_LOG_INFO, "service", "listening", f);
    json_decref(f);

    uv_run(&svc->loop, UV_RUN_DEFAULT);
    AG_LOGI("service", "stopped");
    return svc->stopped_clean ? 0 : 1;
}

void
ag_service_free(struct ag_service *svc)
{
    if (svc == NULL)
        return;
    ag_http_server_free(svc->server);
    svc->server = NULL;
    ag_http_server_free(svc->ops_server);
    svc->ops_server = NULL;
    ag_idem_free(svc->idem);
    svc->idem = NULL;
    ag_store_close(svc->store);
    svc->store = NULL;
    ag_router_free(svc->router);
    ag_metrics_free(svc->metrics);
    ag_loop_metrics_free(svc->loop_metrics);
    svc->loop_metrics = NULL;
    ag_identity_keyring_free(svc->service_keys);
    for (size_t i = 0; i < svc->ncallers; i++) {
        ag_free(svc->callers[i].method);
        ag_free(svc->callers[i].pattern);
        ag_free(svc->callers[i].callers);
    }
    ag_identity_self_wipe(&svc->self);
    sodium_memzero(svc->identity_key, sizeof(svc->identity_key));
    if (svc->loop_ready && uv_loop_close(&svc->loop) != 0)
        AG_LOGW("service", "event loop closed with handles still open");
    ag_config_release(svc->base_keys, AG_ARRAY_SIZE(BASE_KEYS), &svc->settings);
    if (svc->cfg.nkeys)
        ag_config_release(svc->cfg.keys, svc->cfg.nkeys, svc->cfg.settings);
    ag_free(svc->base_keys);
    svc->magic = 0;
    ag_free(svc);
}

uv_loop_t *
ag_service_loop(struct ag_service *svc)
{
    return &svc->loop;
}

struct ag_store *
ag_service_store(struct ag_service *svc)
{
    return svc->store;
}

struct ag_http_client *
ag_service_http_client(struct ag_service *svc)
{
    return svc->client;
}

struct ag_events *
ag_service_events(struct ag_service *svc)
{
    return svc->events;
}

struct ag_idem *
ag_service_idem(struct ag_service *svc)
{
    return svc->idem;
}

struct ag_registry *
ag_service_registry(struct ag_service *svc)
{
    return svc->registry;
}

struct ag_metrics *
ag_service_metrics(struct ag_service *svc)
{
    return svc->metrics;
}

const struct ag_service_settings *
ag_service_settings(const struct ag_service *svc)
{
    return &svc->settings;
}

const char *
ag_service_name(const struct ag_service *svc)
{
    return svc->cfg.name;
}

int
ag_service_port(const struct ag_service *svc)
{
    return svc->server ? ag_http_server_port(svc->server) : 0;
}
