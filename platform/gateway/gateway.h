/* SPDX-License-Identifier: MIT */
/* API gateway internals shared by its files: the route table compiled from
 * configuration (config.c), the bounded LRU hash table (table.c) behind the
 * rate limiter (ratelimit.c) and the verified-token cache (auth.c), the
 * reverse proxy and request path (proxy.c), static files (static.c), the
 * aggregate health view (health.c) and the composition root (main.c).
 * Everything runs on the service's loop thread. docs/internals/gateway.md
 * describes the request path, the caches and configuration reload. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "agora/base.h"

#include <jansson.h>
#include <uv.h>

#include "agora/http_client.h"
#include "agora/identity.h"
#include "agora/metrics.h"
#include "agora/registry.h"
#include "agora/service.h"
#include "agora/str.h"

/* ---- Settings (AGORA_GATEWAY_*; README.md lists them) ---- */

struct gw_settings {
    char *routes_file;                    /* AGORA_GATEWAY_ROUTES_FILE */
    char *upstreams;                      /* AGORA_GATEWAY_UPSTREAMS: static instances */
    char *jwks_url;                       /* AGORA_GATEWAY_JWKS_URL; "": upstream users */
    char *jwt_issuer;                     /* AGORA_GATEWAY_JWT_ISSUER */
    char *jwt_audience;                   /* AGORA_GATEWAY_JWT_AUDIENCE */
    uint64_t jwt_leeway_ms;               /* AGORA_GATEWAY_JWT_LEEWAY */
    uint64_t jwks_refresh_ms;             /* AGORA_GATEWAY_JWKS_REFRESH */
    uint64_t jwks_min_interval_ms;        /* AGORA_GATEWAY_JWKS_MIN_INTERVAL */
    int64_t token_cache_size;             /* AGORA_GATEWAY_TOKEN_CACHE_SIZE */
    int64_t deny_max;                     /* AGORA_GATEWAY_DENY_MAX */
    bool revocations_restore;             /* AGORA_GATEWAY_REVOCATIONS_RESTORE */
    char *revocations_url;                /* AGORA_GATEWAY_REVOCATIONS_URL */
    char *revocations_subscription;       /* AGORA_GATEWAY_REVOCATIONS_SUBSCRIPTION */
    bool trust_forwarded;                 /* AGORA_GATEWAY_TRUST_FORWARDED */
    char *web_root;                       /* AGORA_GATEWAY_WEB_ROOT */
    char *openapi_file;                   /* AGORA_GATEWAY_OPENAPI_FILE */
    uint64_t web_max_age_ms;              /* AGORA_GATEWAY_WEB_MAX_AGE */
    uint64_t web_cache_bytes;             /* AGORA_GATEWAY_WEB_CACHE_BYTES */
    uint64_t web_max_file;                /* AGORA_GATEWAY_WEB_MAX_FILE */
    int64_t ratelimit_max_keys;           /* AGORA_GATEWAY_RATELIMIT_MAX_KEYS */
    uint64_t health_timeout_ms;           /* AGORA_GATEWAY_HEALTH_TIMEOUT */
    char *expected_services;              /* AGORA_GATEWAY_EXPECTED_SERVICES: "a,b,c" */
    int64_t upstream_max_connections;     /* AGORA_GATEWAY_UPSTREAM_MAX_CONNECTIONS */
    uint64_t upstream_connect_timeout_ms; /* AGORA_GATEWAY_UPSTREAM_CONNECT_TIMEOUT */
    uint64_t upstream_timeout_ms;         /* AGORA_GATEWAY_UPSTREAM_TIMEOUT */
    int64_t upstream_retries;             /* AGORA_GATEWAY_UPSTREAM_RETRIES */
    uint64_t max_response;                /* AGORA_GATEWAY_MAX_RESPONSE */
    uint64_t breaker_window_ms;           /* AGORA_GATEWAY_BREAKER_WINDOW */
    int64_t breaker_min_calls;            /* AGORA_GATEWAY_BREAKER_MIN_CALLS */
    int64_t breaker_failure_rate;         /* AGORA_GATEWAY_BREAKER_FAILURE_RATE */
    uint64_t breaker_slow_ms;             /* AGORA_GATEWAY_BREAKER_SLOW */
    int64_t breaker_slow_rate;            /* AGORA_GATEWAY_BREAKER_SLOW_RATE */
    uint64_t breaker_open_ms;             /* AGORA_GATEWAY_BREAKER_OPEN */
    int64_t eject_failures;               /* AGORA_GATEWAY_EJECT_FAILURES */
    uint64_t eject_time_ms;               /* AGORA_GATEWAY_EJECT_TIME */
    int64_t max_ejected_percent;          /* AGORA_GATEWAY_MAX_EJECTED_PERCENT */
    int64_t retry_budget_percent;         /* AGORA_GATEWAY_RETRY_BUDGET */
};

/* ---- Route table (config.c) ---- */

/* Who may call a route, per method. */
enum gw_role {
    GW_ROLE_PUBLIC = 0, /* anyone, with or without a token */
    GW_ROLE_CUSTOMER,   /* any valid token */
    GW_ROLE_ADMIN,      /* a valid token with the admin role */
    GW_ROLE_DENY,       /* never through the gateway ("internal"): 404 */
};

/* Methods a route table can name; GW_M_OTHER only takes the "*" entry. */
enum gw_method {
    GW_M_GET = 0,
    GW_M_HEAD,
    GW_M_POST,
    GW_M_PUT,
    GW_M_PATCH,
    GW_M_DELETE,
    GW_M_OPTIONS,
    GW_M_OTHER,
    GW_M_COUNT, /* number of entries, not a method */
};

/* A token bucket: 'rate' tokens per second up to 'burst'; rate 0: no limit. */
struct gw_rate {
    double rate;  /* tokens added per second */
    double burst; /* bucket size, >= 1 */
};

/* Fault injection on a route (DESIGN.md section 2): a share of its requests
 * is answered with an error, or delayed, before it reaches the service. */
struct gw_fault {
    double abort_percent; /* share of requests answered with abort_status */
    int abort_status;     /* 400..599 */
    double delay_percent; /* share of requests held for delay_ms first */
    uint64_t delay_ms;
};

struct gw_route {
    char *prefix; /* "/api/v1/products" (no trailing '/' unless "/") */
    size_t prefix_len;
    bool exact;    /* match the prefix alone, not paths under it */
    char *service; /* upstream name: "catalog" */
    char *rewrite; /* replaces the prefix, or NULL to keep the path */
    size_t rewrite_len;
    enum gw_role roles[GW_M_COUNT]; /* resolved per method */
    struct gw_rate per_client;      /* bucket per client address */
    struct gw_rate per_user;        /* bucket per token subject */
    uint64_t timeout_ms;            /* whole-call deadline; 0: client default */
    int retries;                    /* -1 none, 0 client default, n */
    uint64_t max_body;              /* request body bound (0: the table's max_body) */
    struct gw_fault fault;          /* injected failures, for rehearsals */
};

struct gw_cors {
    bool enabled;   /* a "cors" object was given */
    char **origins; /* allowed origins, exact strings */
    size_t norigins;
    bool any_origin;        /* "*" was listed */
    char *allow_methods;    /* "GET, POST, ..." */
    char *allow_headers;    /* "Authorization, Content-Type, ..." or NULL */
    char *expose_headers;   /* or NULL */
    char max_age[24];       /* seconds as text, "" to leave out */
    bool allow_credentials; /* send Access-Control-Allow-Credentials: true */
};

/* One immutable, compiled route table. Reference counted: each request that
 * uses it holds a reference until it ends, so a reload never frees a table
 * still in use. */
struct gw_config {
    int refs;
    struct gw_route *routes; /* sorted: longest prefix first, exact before prefix */
    size_t nroutes;
    struct gw_cors cors;
    uint64_t max_body; /* request body bound (413 past it) */
    char **services;   /* distinct service names, in first-use order */
    size_t nservices;
    char *source; /* where it came from, for logs and /health/services */
};

/* Compile 'root' (borrowed) into a new table with one reference. On error
 * returns AG_EINVAL with a message naming the offending field in 'errbuf'. */
int gw_config_compile(const json_t *root, const char *source, struct gw_config **out_cfg,
                      char *errbuf, size_t errlen);

/* Read and compile the JSON file at 'path'. AG_EIO when unreadable. */
int gw_config_load_file(const char *path, struct gw_config **out_cfg, char *errbuf, size_t errlen);

struct gw_config *gw_config_ref(struct gw_config *cfg);
/* Drop a reference; frees at zero. Accepts NULL. */
void gw_config_unref(struct gw_config *cfg);

/* The route for the raw request path 'path' (longest prefix on a segment
 * boundary), or NULL. Borrowed from 'cfg'. */
const struct gw_route *gw_config_match(const struct gw_config *cfg, struct ag_str path);

/* Index of 'm' in a route's role table. */
enum gw_method gw_method_index(enum ag_http_method m);

/* Parse "1MiB", "512KiB", "64K", "100" or "100B" into bytes. */
int gw_parse_size(const char *s, uint64_t *out_bytes);

/* "public", "customer", "admin", "internal". */
const char *gw_role_name(enum gw_role role);

/* ---- Bounded LRU hash table (table.c) ----
 * Intrusive: a value struct embeds a struct gw_entry whose key points into
 * the value. Keys are hashed with SipHash under a random key, so a client
 * cannot choose keys that collide. At most 'max' entries: inserting past it
 * evicts the least recently used entry. */

struct gw_entry {
    struct gw_entry *hnext; /* hash chain */
    struct gw_entry *prev;  /* LRU list: towards the most recently used */
    struct gw_entry *next;  /* towards the least recently used */
    uint64_t hash;
    const void *key; /* borrowed from the containing value */
    size_t keylen;
};

typedef void (*gw_table_free_fn)(struct gw_entry *e, void *udata);

struct gw_table {
    struct gw_entry **slots;
    size_t mask;              /* slots - 1 (a power of two minus one) */
    size_t count;             /* entries held */
    size_t max;               /* entries allowed */
    struct gw_entry lru;      /* sentinel: lru.next is the most recent */
    uint8_t seed[16];         /* SipHash key */
    gw_table_free_fn free_fn; /* releases an evicted or removed entry */
    void *udata;
    uint64_t evictions; /* entries dropped to stay under 'max' */
};

void gw_table_init(struct gw_table *t, size_t max, gw_table_free_fn free_fn, void *udata);
/* Free every entry (free_fn) and the slots. */
void gw_table_release(struct gw_table *t);
uint64_t gw_table_hash(const struct gw_table *t, const void *key, size_t len);
/* Find the entry with this key; marks it most recently used. */
struct gw_entry *gw_table_find(struct gw_table *t, const void *key, size_t len, uint64_t hash);
/* Insert 'e' (its key and hash set; no entry with that key present),
 * evicting the least recently used entry when full. */
void gw_table_insert(struct gw_table *t, struct gw_entry *e);
/* Unlink 'e' and release it through free_fn. */
void gw_table_remove(struct gw_table *t, struct gw_entry *e);
/* The least recently used entry, or NULL. */
struct gw_entry *gw_table_oldest(const struct gw_table *t);
/* The entry after 'e' towards the most recently used one, or NULL. */
struct gw_entry *gw_table_newer(const struct gw_table *t, const struct gw_entry *e);

/* ---- Rate limiting (ratelimit.c) ---- */

#define GW_RL_KEY_MAX 256

struct gw_ratelimit;

struct gw_rate_result {
    bool allowed;
    uint64_t limit;       /* the bucket size (RateLimit-Limit) */
    uint64_t remaining;   /* whole tokens left (RateLimit-Remaining) */
    uint64_t reset_s;     /* seconds until the bucket is full (RateLimit-Reset) */
    uint64_t retry_after; /* seconds until one token is available (Retry-After) */
};

struct gw_ratelimit *gw_ratelimit_new(size_t max_keys);
void gw_ratelimit_free(struct gw_ratelimit *rl);
/* Take one token from the bucket named 'key' under 'rate' at 'now_ns'. */
void gw_ratelimit_take(struct gw_ratelimit *rl, struct ag_str key, const struct gw_rate *rate,
                       uint64_t now_ns, struct gw_rate_result *out);
/* Drop buckets that have refilled completely (they equal a fresh one). */
void gw_ratelimit_sweep(struct gw_ratelimit *rl, uint64_t now_ns);
size_t gw_ratelimit_count(const struct gw_ratelimit *rl);

/* ---- Deny list of revoked access tokens (deny.c) ---- */

struct gw_deny;

/* Why a token is refused. */
enum gw_deny_verdict {
    GW_DENY_NONE = 0, /* not revoked */
    GW_DENY_USER,     /* the user's tokens issued at or before a time are revoked */
    GW_DENY_SESSION,  /* its session (refresh-token family) is revoked */
    GW_DENY_ALL,      /* the global cut-off after an overflow of the list */
};

/* What gw_deny_add did. */
enum gw_deny_added {
    GW_DENY_ADDED = 0, /* held (new, or an existing entry extended) */
    GW_DENY_IGNORED,   /* already expired, or no user */
    GW_DENY_MERGED,    /* the list is full: folded into the user's entry */
    GW_DENY_GLOBAL,    /* the list is full: every token issued up to now refused */
};

struct gw_deny_stats {
    size_t users;          /* user entries */
    size_t sessions;       /* session entries */
    uint64_t overflows;    /* merges and global cut-offs forced by the cap */
    int64_t global_before; /* the global cut-off in force (unix s), 0: none */
};

/* A deny list of at most 'max_entries' entries; tokens stay valid
 * 'leeway_s' past their exp at the gateway, and so do entries. Owned:
 * gw_deny_free. */
struct gw_deny *gw_deny_new(size_t max_entries, int64_t leeway_s);
void gw_deny_free(struct gw_deny *d);
/* Revoke the tokens of 'session_id' (NULL or "": every token of 'user_id'
 * with iat <= 'issued_before'), until 'expires_at' (unix s). Idempotent;
 * at the cap never forgets (see enum gw_deny_added). */
enum gw_deny_added gw_deny_add(struct gw_deny *d, const char *user_id, const char *session_id,
                               int64_t issued_before, int64_t expires_at);
/* Whether a token of 'user_id' in session 'sid' (may be NULL or "") issued
 * at 'iat' is revoked at 'now' (unix s). */
enum gw_deny_verdict gw_deny_check(struct gw_deny *d, const char *user_id, const char *sid,
                                   int64_t iat, int64_t now);
/* Drop entries every token of which has expired at 'now'. */
void gw_deny_sweep(struct gw_deny *d, int64_t now);
void gw_deny_stats(const struct gw_deny *d, struct gw_deny_stats *out);
/* "none", "user", "session", "all" (metric labels). */
const char *gw_deny_verdict_name(enum gw_deny_verdict v);

/* ---- Authentication (auth.c) ---- */

struct gw_auth;
struct gw;

/* Outcome of checking a bearer token. */
enum gw_auth_status {
    GW_AUTH_OK = 0,      /* valid; see the identity fields */
    GW_AUTH_INVALID,     /* malformed, bad signature, wrong iss/aud, alg... */
    GW_AUTH_EXPIRED,     /* expired or not yet valid */
    GW_AUTH_UNKNOWN_KID, /* no key with that kid, even after a refetch */
    GW_AUTH_UNAVAILABLE, /* the key set cannot be fetched */
    GW_AUTH_REVOKED,     /* valid, but revoked (the deny list) */
    GW_AUTH_RESTORING,   /* the deny list is not restored from users yet */
};

struct gw_principal {
    const char *user_id;  /* token subject; pool or cache memory */
    unsigned roles;       /* enum ag_identity_roles bits */
    const char *identity; /* signed X-Agora-Identity value */
};

typedef void (*gw_auth_cb)(struct ag_http_req *req, enum gw_auth_status st,
                           const struct gw_principal *who, void *udata);

int gw_auth_new(struct gw *gw, struct gw_auth **out_auth);
/* Fetch the key set now (start-up) and then every jwks_refresh. */
void gw_auth_start(struct gw_auth *auth);
/* Verify 'token' for 'req'. Calls 'cb' before returning when the answer is
 * known (cached, or verifiable with the keys at hand) and returns true;
 * otherwise parks the request until the key set has been refetched, returns
 * false and calls 'cb' later on the loop. The principal is valid during the
 * callback (strings in req->pool or the cache). */
bool gw_auth_check(struct gw_auth *auth, struct ag_http_req *req, struct ag_str token,
                   gw_auth_cb cb, void *udata);
/* Stop timers; parked requests are answered by their callbacks. */
void gw_auth_stop(struct gw_auth *auth);
void gw_auth_free(struct gw_auth *auth);
/* Drop expired cache entries. */
void gw_auth_sweep(struct gw_auth *auth);
size_t gw_auth_cached(const struct gw_auth *auth);
size_t gw_auth_keys(const struct gw_auth *auth);

/* ---- Static files (static.c) ---- */

struct gw_static;

/* 'root' need not exist yet; files are looked up under its real path. */
struct gw_static *gw_static_new(const char *root, uint64_t cache_bytes, uint64_t max_file,
                                uint64_t max_age_ms);
void gw_static_free(struct gw_static *st);
/* Answer a GET or HEAD for 'req->path' from the web root. */
void gw_static_serve(struct gw_static *st, struct ag_http_req *req);

/* Validate a raw (percent-encoded) URL path for the file system and write
 * the decoded form to 'out' ('outlen' bytes). Returns 0, AG_EINVAL (400:
 * bad escape, NUL, encoded '/' or '\\', backslash) or AG_ENOENT (404: a
 * "." or ".." segment, or a hidden segment starting with '.'). */
int gw_static_clean_path(struct ag_str raw, char *out, size_t outlen);

/* Content-Type for a file name, by extension. */
const char *gw_static_mime(const char *name);

/* ---- The gateway (main.c, proxy.c, health.c) ---- */

/* A static upstream from AGORA_GATEWAY_UPSTREAMS. */
struct gw_upstream {
    char *name;
    struct ag_upstream_instance *instances;
    char **strings; /* ids and hosts owned here */
    size_t n;
    bool dns; /* AGORA_DISCOVERY=dns: one DNS name, not from AGORA_GATEWAY_UPSTREAMS */
};

/* A signed X-Agora-Client value for one client address, re-used until a
 * minute before it expires (one HMAC per client per few minutes rather
 * than per request). Direct-mapped by a hash of the address. */
#define GW_CLIENT_CACHE 64
struct gw_client_sig {
    char addr[AG_CLIENT_ADDRLEN];
    int64_t exp;                    /* unix seconds */
    char value[AG_IDENTITY_MAXLEN]; /* "c1;<addr>;<exp>;<mac>" */
};

/* What the gateway measured of one upstream service since start, for the
 * console (GET /api/v1/admin/services): cumulative, the console turns two
 * readings into rates. */
#define GW_STATS_MAX 64
struct gw_svc_stats {
    char name[64];     /* service name; "" for a free slot */
    uint64_t requests; /* calls answered (any outcome) */
    uint64_t errors;   /* 5xx, timeouts, unavailable, transport errors */
    uint64_t total_us; /* sum of call durations, microseconds */
};

struct gw {
    struct gw_settings settings;
    struct ag_service *svc;        /* borrowed */
    uv_loop_t *loop;               /* borrowed */
    struct ag_http_client *client; /* the one shared client */
    struct ag_registry *reg;       /* NULL without AGORA_REGISTRY_URL */
    struct gw_config *config;      /* current route table (one reference) */
    struct gw_config *file_config; /* the table from the file (one reference) */
    int64_t registry_version;      /* version of gateway.routes in use, 0: none */
    uint8_t identity_key[AG_IDENTITY_KEYLEN];
    struct gw_client_sig client_sigs[GW_CLIENT_CACHE];
    struct gw_auth *auth;
    struct gw_deny *deny;       /* revoked tokens (deny.c); NULL before on_start */
    bool deny_restored;         /* the list was loaded from users (or restore is off) */
    struct gw_restore *restore; /* the load from users at start (main.c) */
    struct ag_metric *m_deny_entries;
    struct ag_metric *m_deny_refusals;
    struct ag_metric *m_deny_overflows;
    struct ag_metric *m_deny_applied;
    struct ag_metric *m_deny_restored;
    struct gw_ratelimit *rl;
    struct gw_static *web;
    struct gw_upstream *upstreams; /* static upstreams */
    size_t nupstreams;
    char **watched; /* services watched in the registry */
    size_t nwatched;
    char *routes_path; /* the file actually read */
    char *web_path;    /* the web root actually used */
    char *openapi;     /* the public API description (JSON), or NULL */
    size_t openapi_len;
    struct ag_metric *m_upstream_requests;
    struct ag_metric *m_upstream_duration;
    struct ag_metric *m_ratelimited;
    struct ag_metric *m_auth_failures;
    struct ag_metric *m_config_reloads;
    struct ag_metric *m_ratelimit_keys;
    struct ag_metric *m_token_cache;
    struct ag_metric *m_faults;
    struct gw_svc_stats stats[GW_STATS_MAX]; /* per upstream service */
    uv_timer_t start_timer;                  /* runs once the listener is open */
    uv_timer_t sweep_timer;                  /* cache and bucket eviction */
    bool timers_ready;
    bool stopping;
};

/* The catch-all: every request that is not /health, /ready, /metrics or
 * /health/services (ag_service_config.fallback). */
void gw_dispatch(struct ag_http_req *req, void *udata);

/* GET /health/services: probe every instance of every routed service. */
void gw_health_services(struct ag_http_req *req, void *udata);

/* GET /api/v1/admin/services, once the caller is known to be an admin:
 * the content of /health/services plus the per-service counters of
 * 'gw->stats', always 200 (the console shows what is down). */
void gw_admin_services(struct gw *gw, struct ag_http_req *req);

/* Count one upstream call of 'service' that took 'dur_ns'. */
void gw_stats_record(struct gw *gw, const char *service, bool error, uint64_t dur_ns);

/* The static instances of 'name', or NULL when it is not static. */
const struct gw_upstream *gw_static_upstream(const struct gw *gw, const char *name);

/* Install 'cfg' (reference taken over) as the current route table and
 * watch its services in the registry. */
void gw_config_install(struct gw *gw, struct gw_config *cfg);

#endif /* GW_GATEWAY_H */
