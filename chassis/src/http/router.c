/* SPDX-License-Identifier: MIT */
/* Router: routes are split into segments once at registration; a match walks
 * the table comparing segments. Service tables hold tens of routes, so a
 * linear walk over pre-split segments beats building a trie. */
#include "agora/base.h"
#include "agora/router.h"

#include <string.h>

#include "agora/err.h"

struct segment {
    char *text; /* literal text, or parameter name */
    size_t len; /* bytes of text */
    bool param; /* true for {name} */
};

struct route_entry {
    struct ag_route route; /* pattern and method point into owned copies */
    void *udata;
    struct segment segs[AG_ROUTER_MAX_SEGMENTS];
    size_t nsegs;
    size_t nliterals; /* for specificity: more literals win */
};

struct ag_router {
    struct route_entry *routes;
    size_t n;
    size_t cap;
};

const char *
ag_role_name(enum ag_role role)
{
    switch (role) {
    case AG_ROLE_PUBLIC: return "public";
    case AG_ROLE_CUSTOMER: return "customer";
    case AG_ROLE_ADMIN: return "admin";
    case AG_ROLE_INTERNAL: return "internal";
    case AG_ROLE_PROBE: return "probe";
    case AG_ROLE_OPS: return "ops";
    }
    return "unknown";
}

struct ag_router *
ag_router_new(void)
{
    return ag_calloc(1, sizeof(struct ag_router));
}

static void
entry_release(struct route_entry *e)
{
    for (size_t i = 0; i < e->nsegs; i++)
        ag_free(e->segs[i].text);
    ag_free((char *)e->route.method);
    ag_free((char *)e->route.pattern);
}

void
ag_router_free(struct ag_router *router)
{
    if (router == NULL)
        return;
    for (size_t i = 0; i < router->n; i++)
        entry_release(&router->routes[i]);
    ag_free(router->routes);
    ag_free(router);
}

/* Split "/a/{b}/c" into segments. The root "/" has zero segments. */
static int
parse_pattern(const char *pattern, struct route_entry *e)
{
    if (pattern == NULL || pattern[0] != '/')
        return AG_EINVAL;
    size_t nparams = 0;
    const char *p = pattern + 1;
    e->nsegs = 0;
    e->nliterals = 0;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || e->nsegs == AG_ROUTER_MAX_SEGMENTS)
            return AG_EINVAL;
        struct segment *s = &e->segs[e->nsegs];
        if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}' || memchr(p + 1, '{', len - 2) ||
                memchr(p + 1, '}', len - 2) || nparams == AG_ROUTER_MAX_PARAMS)
                return AG_EINVAL;
            s->param = true;
            s->text = ag_strndup(p + 1, len - 2);
            s->len = len - 2;
            nparams++;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                return AG_EINVAL;
            s->param = false;
            s->text = ag_strndup(p, len);
            s->len = len;
            e->nliterals++;
        }
        e->nsegs++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

int
ag_router_add(struct ag_router *router, const struct ag_route *route, void *udata)
{
    if (route == NULL || route->fn == NULL || route->method == NULL || route->method[0] == '\0')
        return AG_EINVAL;
    struct route_entry e;
    memset(&e, 0, sizeof(e));
    int rc = parse_pattern(route->pattern, &e);
    if (rc != 0) {
        for (size_t i = 0; i < e.nsegs; i++)
            ag_free(e.segs[i].text);
        return rc;
    }
    for (size_t i = 0; i < router->n; i++) {
        const struct route_entry *o = &router->routes[i];
        if (strcmp(o->route.method, route->method) == 0 &&
            strcmp(o->route.pattern, route->pattern) == 0) {
            for (size_t j = 0; j < e.nsegs; j++)
                ag_free(e.segs[j].text);
            return AG_EEXIST;
        }
    }
    e.route = *route;
    e.route.method = ag_strdup(route->method);
    e.route.pattern = ag_strdup(route->pattern);
    e.udata = udata;
    if (router->n == router->cap) {
        router->cap = router->cap ? router->cap * 2 : 16;
        router->routes = ag_realloc(router->routes, router->cap * sizeof(*router->routes));
    }
    router->routes[router->n++] = e;
    return 0;
}

int
ag_router_add_table(struct ag_router *router, const struct ag_route *routes, size_t n, void *udata)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ag_router_add(router, &routes[i], udata);
        if (rc != 0)
            return rc;
    }
    return 0;
}

size_t
ag_router_count(const struct ag_router *router)
{
    return router->n;
}

const struct ag_route *
ag_router_get(const struct ag_router *router, size_t i)
{
    return i < router->n ? &router->routes[i].route : NULL;
}

/* Split a raw path into segment slices; false when it cannot match any
 * route (too deep, empty segment, not absolute). */
static bool
split_path(struct ag_str path, struct ag_str *segs, size_t *out_n)
{
    size_t n = 0;
    if (path.len == 0 || path.ptr[0] != '/')
        return false;
    size_t i = 1;
    if (path.len == 1) {
        *out_n = 0;
        return true;
    }
    while (i <= path.len) {
        size_t start = i;
        while (i < path.len && path.ptr[i] != '/')
            i++;
        if (i == start || n == AG_ROUTER_MAX_SEGMENTS)
            return false;
        segs[n++] = ag_str_make(path.ptr + start, i - start);
        i++;
    }
    *out_n = n;
    return true;
}

static bool
entry_matches(const struct route_entry *e, const struct ag_str *segs, size_t n)
{
    if (e->nsegs != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct segment *s = &e->segs[i];
        if (s->param)
            continue;
        if (s->len != segs[i].len || memcmp(s->text, segs[i].ptr, s->len) != 0)
            return false;
    }
    return true;
}

static bool
method_matches(const char *route_method, struct ag_str method)
{
    if (ag_str_eq_cstr(method, route_method))
        return true;
    return strcmp(route_method, "GET") == 0 && ag_str_eq_cstr(method, "HEAD");
}

static void
allow_add(char *allow, size_t cap, const char *method)
{
    /* Avoid listing a method twice (several patterns may match one path). */
    size_t mlen = strlen(method);
    const char *p = allow;
    while ((p = strstr(p, method)) != NULL) {
        bool start_ok = p == allow || p[-1] == ' ';
        bool end_ok = p[mlen] == '\0' || p[mlen] == ',';
        if (start_ok && end_ok)
            return;
        p += mlen;
    }
    size_t len = strlen(allow);
    size_t need = (len ? 2 : 0) + mlen;
    if (len + need + 1 > cap)
        return;
    if (len) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, method, mlen + 1);
}

enum ag_router_status
ag_router_match(const struct ag_router *router, struct ag_str method, struct ag_str path,
                struct ag_route_match *out)
{
    struct ag_str segs[AG_ROUTER_MAX_SEGMENTS];
    size_t n;
    out->route = NULL;
    out->udata = NULL;
    out->nparams = 0;
    out->allow[0] = '\0';
    if (!split_path(path, segs, &n))
        return AG_ROUTER_NOT_FOUND;

    const struct route_entry *best = NULL;
    bool path_known = false;
    for (size_t i = 0; i < router->n; i++) {
        const struct route_entry *e = &router->routes[i];
        if (!entry_matches(e, segs, n))
            continue;
        path_known = true;
        allow_add(out->allow, sizeof(out->allow), e->route.method);
        if (strcmp(e->route.method, "GET") == 0)
            allow_add(out->allow, sizeof(out->allow), "HEAD");
        if (method_matches(e->route.method, method) &&
            (best == NULL || e->nliterals > best->nliterals))
            best = e;
    }
    if (best == NULL)
        return path_known ? AG_ROUTER_METHOD_NOT_ALLOWED : AG_ROUTER_NOT_FOUND;

    out->route = &best->route;
    out->udata = best->udata;
    for (size_t i = 0; i < best->nsegs; i++) {
        if (!best->segs[i].param)
            continue;
        out->names[out->nparams] = ag_str_make(best->segs[i].text, best->segs[i].len);
        out->values[out->nparams] = segs[i];
        out->nparams++;
    }
    return AG_ROUTER_FOUND;
}

/* ---- Query strings ---- */

int
ag_query_parse(struct ag_pool *pool, struct ag_str raw, size_t max_params, struct ag_query *out)
{
    out->params = NULL;
    out->n = 0;
    if (raw.len == 0)
        return 0;
    size_t count = 1;
    for (size_t i = 0; i < raw.len; i++)
        count += raw.ptr[i] == '&';
    out->params = ag_pool_alloc(pool, AG_MIN(count, max_params + 1) * sizeof(*out->params));
    size_t i = 0;
    while (i <= raw.len) {
        size_t start = i;
        while (i < raw.len && raw.ptr[i] != '&')
            i++;
        struct ag_str pair = ag_str_make(raw.ptr + start, i - start);
        i++;
        if (pair.len == 0)
            continue;
        if (out->n == max_params)
            return AG_ETOOBIG;
        const char *eq = memchr(pair.ptr, '=', pair.len);
        struct ag_str name = eq ? ag_str_make(pair.ptr, (size_t)(eq - pair.ptr)) : pair;
        struct ag_str value =
            eq ? ag_str_make(eq + 1, pair.len - name.len - 1) : ag_str_make("", 0);
        char *dn = ag_pool_alloc(pool, name.len + 1);
        char *dv = ag_pool_alloc(pool, value.len + 1);
        if (ag_str_percent_decode(name, true, dn) < 0 || ag_str_percent_decode(value, true, dv) < 0)
            return AG_EINVAL;
        out->params[out->n].name = dn;
        out->params[out->n].value = dv;
        out->n++;
    }
    return 0;
}

const char *
ag_query_get(const struct ag_query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->params[i].name, name) == 0)
            return q->params[i].value;
    }
    return NULL;
}
