/* SPDX-License-Identifier: MIT */
/* Router: method + path patterns with parameters ("/v1/products/{id}"),
 * telling 404 from 405 (with the Allow list), and query-string parsing with
 * percent-decoding. Routes are data: a service declares a table of them. */
#ifndef AG_ROUTER_H
#define AG_ROUTER_H

#include "agora/base.h"
#include "agora/mem.h"
#include "agora/str.h"

struct ag_http_req;

#define AG_ROUTER_MAX_PARAMS   8
#define AG_ROUTER_MAX_SEGMENTS 16

/* Who may call a route through the gateway. Services declare it; the gateway
 * enforces it (DESIGN.md section 2). */
enum ag_role {
    AG_ROLE_PUBLIC = 0, /* anyone, signed in or not */
    AG_ROLE_CUSTOMER,   /* any signed-in user */
    AG_ROLE_ADMIN,      /* administrators only */
    AG_ROLE_INTERNAL,   /* other services only (their signed service identity); never routed */
    AG_ROLE_PROBE,      /* /health, /ready: whoever reaches the port; never routed */
    AG_ROLE_OPS,        /* /metrics and operator views: on the ops listener when there is
                           one (AGORA_OPS_ADDRESS), else on the port; never routed */
};

/* "public", "customer", "admin", "internal", "probe", "ops". */
const char *ag_role_name(enum ag_role role);

typedef void (*ag_route_fn)(struct ag_http_req *req, void *udata);

struct ag_route {
    const char *method;  /* "GET", "POST", ...; GET routes also answer HEAD */
    const char *pattern; /* "/v1/products/{id}": literal segments and {name} parameters */
    ag_route_fn fn;      /* handler */
    enum ag_role role;   /* required role through the gateway */
};

struct ag_router;

/* Result of a match. Parameter values are raw slices of the path (still
 * percent-encoded), valid as long as the path. */
struct ag_route_match {
    const struct ag_route *route; /* borrowed from the router, NULL if none */
    void *udata;                  /* registered with the route */
    size_t nparams;
    struct ag_str names[AG_ROUTER_MAX_PARAMS];
    struct ag_str values[AG_ROUTER_MAX_PARAMS];
    char allow[128]; /* for 405 and OPTIONS: "GET, HEAD, PATCH, DELETE" */
};

enum ag_router_status {
    AG_ROUTER_FOUND = 0,
    AG_ROUTER_NOT_FOUND,          /* no pattern matches the path */
    AG_ROUTER_METHOD_NOT_ALLOWED, /* the path matches, the method does not; see allow */
};

/* New empty router; free with ag_router_free (accepts NULL). Loop thread only. */
struct ag_router *ag_router_new(void);
void ag_router_free(struct ag_router *router);

/* Add one route; 'route' is copied, 'udata' is handed to its handler.
 * Returns AG_EINVAL for a malformed pattern (not starting with '/', empty or
 * unterminated parameter, too many segments or parameters) and AG_EEXIST when
 * the same method and pattern is already registered. */
int ag_router_add(struct ag_router *router, const struct ag_route *route, void *udata);

/* Add 'n' routes; stops at and returns the first error. */
int ag_router_add_table(struct ag_router *router, const struct ag_route *routes, size_t n,
                        void *udata);

/* Match 'method' and raw 'path' (no query). Literal segments win over
 * parameters at the same position. Fills 'out' in every case. */
enum ag_router_status ag_router_match(const struct ag_router *router, struct ag_str method,
                                      struct ag_str path, struct ag_route_match *out);

/* Number of routes and the i-th one (borrowed), to list or document them. */
size_t ag_router_count(const struct ag_router *router);
const struct ag_route *ag_router_get(const struct ag_router *router, size_t i);

/* ---- Query strings ---- */

struct ag_query_param {
    const char *name;  /* decoded, NUL-terminated */
    const char *value; /* decoded ('+' is a space), "" when absent */
};

struct ag_query {
    struct ag_query_param *params; /* 'n' entries in order of appearance */
    size_t n;
};

/* Parse 'raw' (without '?') into 'out', allocating from 'pool'. At most
 * 'max_params' parameters (AG_ETOOBIG past it). AG_EINVAL for a bad
 * percent escape or an encoded NUL. Empty pairs ("a=1&&b=2") are skipped. */
int ag_query_parse(struct ag_pool *pool, struct ag_str raw, size_t max_params,
                   struct ag_query *out);

/* Value of the first parameter named 'name', or NULL. Borrowed. */
const char *ag_query_get(const struct ag_query *q, const char *name);

#endif /* AG_ROUTER_H */
