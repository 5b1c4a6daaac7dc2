/* SPDX-License-Identifier: MIT */
/* The service chassis: what every Agora process shares. ag_service_init()
 * wires configuration, logging, metrics, the database and the HTTP server
 * with its middleware (request id, trace context, access log, metrics) and
 * the /health, /ready and /metrics endpoints; main.c then registers its route
 * table and calls ag_service_run(), which returns when a SIGTERM or SIGINT
 * has drained the server (DESIGN.md sections 3 and 5). Also the response and
 * request helpers handlers use (problem+json, JSON bodies, params, query). */
#ifndef AG_SERVICE_H
#define AG_SERVICE_H

#include "agora/base.h"

#include <jansson.h>
#include <uv.h>

#include "agora/config.h"
#include "agora/events.h"
#include "agora/http_server.h"
#include "agora/idempotency.h"
#include "agora/identity.h"
#include "agora/trace.h"
#include "agora/json.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/store.h"

struct ag_service;

typedef int (*ag_service_start_fn)(struct ag_service *svc, void *udata);
typedef void (*ag_service_stop_fn)(struct ag_service *svc, void *udata);
/* Called when a stop begins (first SIGTERM/SIGINT), before the server
 * drains: answer long polls now, stop timers that would start new work. */
typedef void (*ag_service_stopping_fn)(struct ag_service *svc, void *udata);
/* Extra readiness check; return 0 when ready, else a negative AG_E* code. */
typedef int (*ag_service_ready_fn)(struct ag_service *svc, void *udata);

/* Zero means the default shown. */
struct ag_service_config {
    const char *name;                      /* "catalog"; required */
    const char *version;                   /* "0.1.0" */
    int default_port;                      /* default of AGORA_HTTP_PORT; 8080 */
    const char *default_ops_address;       /* default of AGORA_OPS_ADDRESS; "" (none) */
    const struct ag_migration *migrations; /* NULL: the service has no database */
    size_t nmigrations;
    const struct ag_config_key *keys; /* the service's own settings, or NULL */
    size_t nkeys;
    void *settings;                     /* struct the keys are loaded into */
    ag_service_start_fn on_start;       /* after the store is open, before listening */
    ag_service_stop_fn on_stop;         /* after the server drained, before the store closes */
    ag_service_stopping_fn on_stopping; /* when the stop begins, before draining */
    ag_route_fn fallback;               /* requests no route matches (instead of 404); gets 'udata'.
                             The handler should set req->route_id for metrics. */
    bool events;      /* publish and consume events: the chassis creates the events runtime
                    (outbox in this service's database, relay to AGORA_BUS_URL), starts
                    it after on_start (subscribe there), flushes and stops it after the
                    drain */
    bool idempotency; /* keep Idempotency-Key answers and saga step replies
                         (agora/idempotency.h): the chassis creates the tables, forgets keys
                         left in progress, sweeps expired records on a timer
                         (AGORA_IDEMPOTENCY_TTL, AGORA_IDEMPOTENCY_SWEEP_INTERVAL); get the
                         records with ag_service_idem */
    bool sqlite_only; /* the database must be SQLite (the bus's log, the registry):
                         AGORA_DB_URL is refused at start */
    ag_service_ready_fn ready_check; /* optional, added to the database check */
    void *udata;                     /* for the three callbacks */
};

/* Settings every service reads (see chassis README for the table). */
struct ag_service_settings {
    char *http_host;               /* AGORA_HTTP_HOST */
    int64_t http_port;             /* AGORA_HTTP_PORT */
    char *instance_id;             /* AGORA_INSTANCE_ID; default <name>-<pid> */
    char *log_level;               /* AGORA_LOG_LEVEL */
    bool access_log;               /* AGORA_ACCESS_LOG */
    char *data_dir;                /* AGORA_DATA_DIR */
    char *db_path;                 /* AGORA_DB_PATH; default <data_dir>/<name>.db */
    char *db_url;                  /* AGORA_DB_URL: postgres://... instead of db_path; a secret */
    char *durability;              /* AGORA_DURABILITY: full | normal */
    char *db_locking;              /* AGORA_DB_LOCKING: exclusive | shared */
    uint64_t max_body;             /* AGORA_HTTP_MAX_BODY */
    uint64_t max_connections;      /* AGORA_HTTP_MAX_CONNECTIONS */
    uint64_t header_timeout_ms;    /* AGORA_HTTP_HEADER_TIMEOUT */
    uint64_t body_timeout_ms;      /* AGORA_HTTP_BODY_TIMEOUT */
    uint64_t idle_timeout_ms;      /* AGORA_HTTP_IDLE_TIMEOUT */
    char *admission;               /* AGORA_HTTP_ADMISSION: adaptive | fixed | off */
    int64_t max_inflight;          /* AGORA_HTTP_MAX_INFLIGHT */
    int64_t min_inflight;          /* AGORA_HTTP_MIN_INFLIGHT */
    uint64_t queue_delay_ms;       /* AGORA_HTTP_QUEUE_DELAY */
    uint64_t shutdown_timeout_ms;  /* AGORA_SHUTDOWN_TIMEOUT */
    char *internal_key;            /* AGORA_INTERNAL_KEY (64 hex digits) */
    char *service_key;             /* AGORA_SERVICE_KEY (64 hex digits: own Ed25519 seed) */
    char *service_pubkeys;         /* AGORA_SERVICE_PUBKEYS ("name=hex,...") */
    char *registry_url;            /* AGORA_REGISTRY_URL; "" = no registry */
    uint64_t registry_ttl_ms;      /* AGORA_REGISTRY_TTL */
    char *advertise_address;       /* AGORA_ADVERTISE_ADDRESS; default: the listen host */
    char *discovery;               /* AGORA_DISCOVERY: registry | dns[:<template>] */
    char *bus_url;                 /* AGORA_BUS_URL (services with events) */
    char *events_url;              /* AGORA_EVENTS_URL: amqp:// broker instead of the bus, or "" */
    char *ops_address;             /* AGORA_OPS_ADDRESS; "" = ops routes on the main port */
    uint64_t idempotency_ttl_ms;   /* AGORA_IDEMPOTENCY_TTL (services with idempotency) */
    uint64_t idempotency_sweep_ms; /* AGORA_IDEMPOTENCY_SWEEP_INTERVAL */
    char *otlp_endpoint;           /* AGORA_OTLP_ENDPOINT; "" = no spans */
    char *trace_sample;            /* AGORA_TRACE_SAMPLE, a ratio 0..1 */
    uint64_t trace_queue_bytes;    /* AGORA_TRACE_QUEUE */
};

/* Parse configuration (AGORA_* environment, AGORA_CONFIG_FILE), start
 * logging, metrics, open the database and apply migrations. '--help' prints
 * every setting and returns 1 with *out_svc NULL. On a bad setting it prints
 * "config: <message naming the variable>" on stderr and returns AG_ECONFIG;
 * main should then exit with status 2. Other failures are logged and
 * returned. The config is copied except 'keys', 'migrations' and 'settings',
 * which must outlive the service. */
int ag_service_init(struct ag_service **out_svc, int argc, char **argv,
                    const struct ag_service_config *cfg);

/* Register the service's route table; handlers get 'udata'. */
int ag_service_routes(struct ag_service *svc, const struct ag_route *routes, size_t n, void *udata);

/* Open the registered AG_ROLE_INTERNAL route 'method' 'pattern' to the
 * services named in 'callers' only ("payments" or "payments,shipping"):
 * any other service gets 403 (least privilege). The operator ("agora")
 * may still call it. AG_ENOENT when there is no such internal route,
 * AG_ETOOBIG past 16 restricted routes. Before ag_service_run. */
int ag_service_route_callers(struct ag_service *svc, const char *method, const char *pattern,
                             const char *callers);

/* Listen, run the loop until SIGTERM/SIGINT drained the server (in-flight
 * requests finish within AGORA_SHUTDOWN_TIMEOUT), call on_stop, and return
 * the process exit status (0 after a clean stop). */
int ag_service_run(struct ag_service *svc);

/* Close the database and free everything. Accepts NULL. */
void ag_service_free(struct ag_service *svc);

/* Map ag_service_init's result to a process exit status: 0, 1 (--help
 * handled or failure) or 2 (configuration error). */
int ag_service_exit_code(int init_rc);

/* Borrowed accessors, valid for the service's lifetime. */
uv_loop_t *ag_service_loop(struct ag_service *svc);
struct ag_store *ag_service_store(struct ag_service *svc);
struct ag_metrics *ag_service_metrics(struct ag_service *svc);
const struct ag_service_settings *ag_service_settings(const struct ag_service *svc);
const char *ag_service_name(const struct ag_service *svc);
/* The service's HTTP client (created at ag_service_run, closed at the end
 * of shutdown) and registry client (NULL without AGORA_REGISTRY_URL). With
 * a registry the instance registers once listening and deregisters when a
 * stop begins. Borrowed; valid from on_start... see docs/internals/service.md. */
struct ag_http_client *ag_service_http_client(struct ag_service *svc);
struct ag_registry *ag_service_registry(struct ag_service *svc);

/* The events runtime of a service configured with 'events' (NULL
 * otherwise), valid from on_start until on_stop. Publish with
 * ag_events_publish inside a store transaction, then ag_events_kick. */
struct ag_events *ag_service_events(struct ag_service *svc);

/* The idempotency records (Idempotency-Key answers, saga step replies) of
 * a service configured with 'idempotency' (NULL otherwise), valid from
 * on_start until on_stop. Loop thread. */
struct ag_idem *ag_service_idem(struct ag_service *svc);

/* This service's own identity (roles AG_IDENTITY_SERVICE, user id = its
 * name) for calls to internal routes: pass it to a runtime's config, or
 * send ag_identity_self_header(self, now) as X-Agora-Identity. Borrowed,
 * valid for the service's lifetime; loop thread. */
struct ag_identity_self *ag_service_self(struct ag_service *svc);

/* Tighten the data directory to 0700 (0711 is left alone: search permission
 * only, which a private PostgreSQL cluster run as another user needs) and a
 * database file with its WAL,
 * shared-memory and journal files to 0600 where they are looser, logging a
 * warning for each (every service does it at start; so does the
 * supervisor for the directory). Missing files are ignored. */
void ag_service_check_private(const char *data_dir, const char *db_path);

/* Bound port once running (for logs and tests). */
int ag_service_port(const struct ag_service *svc);

/* ---- Request helpers (handlers, on the loop thread) ---- */

/* The request id ("X-Request-ID") and trace id of 'req'. Borrowed. */
const char *ag_req_id(const struct ag_http_req *req);
const char *ag_req_trace_id(const struct ag_http_req *req);

/* The traceparent to send on an outgoing call made for 'req': same trace,
 * this request's server span as the parent, the caller's flags. 'out' gets
 * AG_TRACEPARENT_LEN + 1 bytes. */
void ag_req_traceparent(const struct ag_http_req *req, char out[AG_TRACEPARENT_LEN + 1]);

/* The caller's identity: a user as vouched for by the gateway (a valid
 * X-Agora-Identity "v1" under AGORA_INTERNAL_KEY), or a service signed
 * with its own key ("s1", roles AG_IDENTITY_SERVICE, user id = its name,
 * checked against AGORA_SERVICE_PUBKEYS), or NULL for an anonymous
 * caller. Routes whose role is customer or admin are only reached with an
 * identity holding that role (the middleware answers 401 or 403). */
const struct ag_identity *ag_req_identity(const struct ag_http_req *req);

/* ---- Entity tags of versioned resources (etag.c) ---- */

#define AG_ETAG_MAX 32 /* bytes of a formatted tag, with its NUL */

/* Set the response's ETag to the strong tag of 'version', "\"<version>\"".
 * Before the response is sent; loop thread. */
void ag_resp_set_etag(struct ag_http_req *req, int64_t version);

/* Does the If-Match / If-None-Match list 'header' name the tag of
 * 'version', or "*"? 'weak' lets W/ tags match (If-None-Match, RFC 9110
 * weak comparison); If-Match compares strongly. */
bool ag_etag_list_matches(struct ag_str header, int64_t version, bool weak);
/* The same for any entity tag 'tag' (quoted, e.g. a hash of a rendered page). */
bool ag_etag_list_has(struct ag_str header, const char *tag, bool weak);

/* The address of the client this request came from: the one the gateway
 * vouched for in a valid signed X-Agora-Client header, else the socket's
 * peer (a direct caller, or the gateway itself for a request it did not
 * vouch for). Never anything a client wrote. Request memory. */
const char *ag_req_client(struct ag_http_req *req);

/* Path parameter 'name', percent-decoded, or NULL when the route has no such
 * parameter or its encoding is invalid. Lives in the request pool. */
const char *ag_req_param(struct ag_http_req *req, const char *name);

/* Path parameter 'name' that must be a UUID (a resource id): the decoded
 * value, or NULL after answering 404 "no such <what>" itself (an id that
 * cannot exist is simply not found). */
const char *ag_req_uuid_param(struct ag_http_req *req, const char *name, const char *what);

/* Parsed query; NULL after answering 400 bad-query itself when the query
 * is malformed (the handler must then return without answering). */
const struct ag_query *ag_req_query(struct ag_http_req *req);

/* Read query parameter 'name' of 'req' as a base-10 integer in ['min',
 * 'max'] into '*io', which keeps its value (the caller's default) when the
 * parameter is absent. Returns 0, or AG_EQUERY after answering 400
 * bad-query itself ("query parameter 'limit' must be an integer from 1 to
 * 100", or ag_req_query's answer for a malformed query): the handler must
 * then return without answering. Typical use:
 *
 *     int64_t limit = 20;
 *     if (ag_req_query_int(req, "limit", 1, 100, &limit) != 0)
 *         return;
 */
int ag_req_query_int(struct ag_http_req *req, const char *name, int64_t min, int64_t max,
                     int64_t *io);

/* True when the Content-Type of 'req' is application/json or
 * application/<anything>+json, parameters such as charset ignored: the
 * bodies ag_req_json accepts. */
bool ag_req_is_json(const struct ag_http_req *req);

/* Parse the body as a JSON object. On failure answers itself (415
 * unsupported-media-type when ag_req_is_json is false, 400 malformed-json
 * for malformed JSON or a non-object) and returns NULL. The reference is
 * released with the request. */
json_t *ag_req_json(struct ag_http_req *req);

/* ---- Responses ----
 * Each call sends the one answer of 'req', on the loop thread; 'req' must
 * not be used after it (it may already be freed). */

/* Send 'body' (reference stolen; may be NULL for no body) as
 * application/json. */
void ag_send_json(struct ag_http_req *req, int status, json_t *body);

/* Send an RFC 9457 problem: type "urn:agora:problem:<slug>", 'title',
 * 'status', formatted detail, "instance" (the path) and "request_id". For
 * answers the error table has no row for (a service's own slugs such as
 * "email-taken"); everything else goes through ag_send_error. */
void ag_send_problem(struct ag_http_req *req, int status, const char *slug, const char *title,
                     const char *detail_fmt, ...) AG_PRINTF(5, 6);

/* 422 validation problem listing every field error of 'v'. */
void ag_send_invalid(struct ag_http_req *req, const struct ag_valid *v);

/* Problem for the AG_E* code 'err' with the status, slug and title of its
 * row in AG_ERRNO_MAP (err.h), and the printf-style detail 'detail_fmt'
 * (NULL: ag_strerror(err)). 0 and unknown codes answer 500 internal. E.g.
 * ag_send_error(req, AG_ENOENT, "no such product") answers 404 with type
 * "urn:agora:problem:not-found" and title "Not Found". */
void ag_send_error(struct ag_http_req *req, int err, const char *detail_fmt, ...) AG_PRINTF(3, 4);

/* Answer the failure 'err' of a store call about 'what' (a noun:
 * "product", "account list"): AG_ENOENT is 404 "no such <what>"; anything
 * else is logged here, once, with 'what' and the store's message, and
 * answered 503 unavailable for AG_EBUSY (worth a retry) or 500 internal
 * (the detail stays in the log). Callers map the codes their clients must
 * see differently (AG_EEXIST as 409, ...) before calling this, and do not
 * log the error themselves. */
void ag_send_store_error(struct ag_http_req *req, int err, const char *what);

/* 204 No Content. */
void ag_send_no_content(struct ag_http_req *req);

/* ---- Idempotency-Key (agora/idempotency.h records) ---- */

/* The request's Idempotency-Key (1 to AG_IDEM_KEY_MAX visible ASCII
 * characters) into 'out' (the request pool). Without the header: 428 when
 * 'required' and false, else true with '*out' NULL. A malformed key: 400
 * and false. When false the request was answered. */
bool ag_req_idempotency_key(struct ag_http_req *req, bool required, const char **out);

/* What identifies the request for its key: the hash of its method, path
 * and body. */
void ag_req_idempotency_hash(struct ag_http_req *req, char out[AG_IDEM_HASH_LEN]);

/* Answer a refused key: 409 "idempotency-key-in-progress" for
 * AG_IDEM_BUSY, 422 "idempotency-key-reused" for AG_IDEM_MISMATCH. */
void ag_send_idempotency_refusal(struct ag_http_req *req, enum ag_idem_state state);

/* Send 'answer' again, as it was, with "Idempotent-Replayed: true". */
void ag_send_idempotency_replay(struct ag_http_req *req, const struct ag_idem_answer *answer);

#endif /* AG_SERVICE_H */
