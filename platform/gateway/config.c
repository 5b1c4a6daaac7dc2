/* SPDX-License-Identifier: MIT */
/* Gateway route table: the JSON document of routes.json (or of the registry
 * key gateway.routes) validated and compiled once into an immutable,
 * reference-counted table, so the request path never parses JSON: a
 * longest-prefix match over routes sorted by prefix length, roles resolved
 * per method, rate limits, timeouts and CORS precomputed. */
#include "agora/base.h"
#include "gateway.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"

#define CONFIG_FILE_MAX  (4u << 20)
#define PREFIX_MAX       128
#define SERVICE_NAME_MAX 63
#define MAX_ROUTES       512
#define DEFAULT_MAX_BODY (1u << 20)

static const char *const METHOD_NAMES[GW_M_COUNT] = {
    [GW_M_GET] = "GET",         [GW_M_HEAD] = "HEAD",   [GW_M_POST] = "POST",
    [GW_M_PUT] = "PUT",         [GW_M_PATCH] = "PATCH", [GW_M_DELETE] = "DELETE",
    [GW_M_OPTIONS] = "OPTIONS", [GW_M_OTHER] = NULL,
};

enum gw_method
gw_method_index(enum ag_http_method m)
{
    switch (m) {
    case AG_HTTP_GET: return GW_M_GET;
    case AG_HTTP_HEAD: return GW_M_HEAD;
    case AG_HTTP_POST: return GW_M_POST;
    case AG_HTTP_PUT: return GW_M_PUT;
    case AG_HTTP_PATCH: return GW_M_PATCH;
    case AG_HTTP_DELETE: return GW_M_DELETE;
    case AG_HTTP_OPTIONS: return GW_M_OPTIONS;
    case AG_HTTP_OTHER: break;
    }
    return GW_M_OTHER;
}

const char *
gw_role_name(enum gw_role role)
{
    switch (role) {
    case GW_ROLE_PUBLIC: return "public";
    case GW_ROLE_CUSTOMER: return "customer";
    case GW_ROLE_ADMIN: return "admin";
    case GW_ROLE_DENY: return "internal";
    }
    return "internal";
}

static int
role_parse(const char *s, enum gw_role *out)
{
    if (strcmp(s, "public") == 0)
        *out = GW_ROLE_PUBLIC;
    else if (strcmp(s, "customer") == 0)
        *out = GW_ROLE_CUSTOMER;
    else if (strcmp(s, "admin") == 0)
        *out = GW_ROLE_ADMIN;
    else if (strcmp(s, "internal") == 0 || strcmp(s, "deny") == 0)
        *out = GW_ROLE_DENY;
    else
        return AG_EINVAL;
    return 0;
}

int
gw_parse_size(const char *s, uint64_t *out_bytes)
{
    if (s == NULL || *s < '0' || *s > '9')
        return AG_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return AG_EINVAL;
    while (*end == ' ')
        end++;
    uint64_t mul = 1;
    if (*end == '\0' || strcmp(end, "B") == 0)
        mul = 1;
    else if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0)
        mul = 1024;
    else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
        mul = 1024 * 1024;
    else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0)
        mul = 1024 * 1024 * 1024;
    else
        return AG_EINVAL;
    if (v > UINT64_MAX / mul)
        return AG_EINVAL;
    *out_bytes = (uint64_t)v * mul;
    return 0;
}

/* ---- Errors ---- */

struct compile {
    char *errbuf;
    size_t errlen;
};

static int fail(struct compile *c, const char *fmt, ...) AG_PRINTF(2, 3);

static int
fail(struct compile *c, const char *fmt, ...)
{
    if (c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errbuf, c->errlen, fmt, ap);
        va_end(ap);
    }
    return AG_EINVAL;
}

/* Unknown keys are errors (a typo must not silently drop a limit); keys
 * starting with '_' or '$' are comments. */
static int
check_keys(struct compile *c, const json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        if (key[0] == '_' || key[0] == '$')
            continue;
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return fail(c, "%s: unknown key '%s'", where, key);
    }
    return 0;
}

static bool
is_service_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SERVICE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* A path prefix or rewrite: starts with '/', printable ASCII without spaces,
 * '?', '#' or '%', no "." or ".." segments, no "//". */
static bool
is_path(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PREFIX_MAX || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#' || ch == '%' || ch == '\\')
            return false;
        if (ch == '/' && i + 1 < n && s[i + 1] == '/')
            return false;
        if (ch == '/' && s[i + 1] == '.') {
            const char *seg = s + i + 1;
            if (seg[1] == '\0' || seg[1] == '/' ||
                (seg[1] == '.' && (seg[2] == '\0' || seg[2] == '/')))
                return false;
        }
    }
    return true;
}

static int
parse_rate(struct compile *c, const json_t *obj, const char *where, struct gw_rate *out)
{
    static const char *const keys[] = { "rate", "burst", NULL };
    if (!json_is_object(obj))
        return fail(c, "%s: must be an object {\"rate\":..., \"burst\":...}", where);
    int rc = check_keys(c, obj, where, keys);
    if (rc != 0)
        return rc;
    json_t *rate = json_object_get(obj, "rate");
    json_t *burst = json_object_get(obj, "burst");
    if (!json_is_number(rate) || json_number_value(rate) <= 0 || json_number_value(rate) > 1e9)
        return fail(c, "%s.rate: must be a number of requests per second > 0", where);
    out->rate = json_number_value(rate);
    if (burst == NULL) {
        out->burst = ceil(out->rate);
    } else if (!json_is_number(burst) || json_number_value(burst) < 1 ||
               json_number_value(burst) > 1e9) {
        return fail(c, "%s.burst: must be a number >= 1", where);
    } else {
        out->burst = floor(json_number_value(burst));
    }
    if (out->burst < 1)
        out->burst = 1;
    return 0;
}

static int
parse_size_value(struct compile *c, const json_t *v, const char *where, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && gw_parse_size(json_string_value(v), out) == 0)
        return 0;
    return fail(c, "%s: must be a size such as \"1MiB\", \"64KiB\" or a number of bytes", where);
}

static int
parse_roles(struct compile *c, const json_t *obj, const char *where, enum gw_role out[GW_M_COUNT])
{
    /* Fail closed: a method the table does not name needs the admin role. */
    enum gw_role star = GW_ROLE_ADMIN;
    bool set[GW_M_COUNT] = { false };
    if (obj == NULL) {
        for (size_t i = 0; i < GW_M_COUNT; i++)
            out[i] = star;
        return 0;
    }
    if (!json_is_object(obj))
        return fail(c, "%s: must be an object of method -> role", where);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        if (key[0] == '_' || key[0] == '$')
            continue;
        enum gw_role role;
        if (!json_is_string(val) || role_parse(json_string_value(val), &role) != 0)
            return fail(c, "%s.%s: must be \"public\", \"customer\", \"admin\" or \"internal\"",
                        where, key);
        if (strcmp(key, "*") == 0) {
            star = role;
            continue;
        }
        size_t m = 0;
        while (m < GW_M_OTHER && strcmp(METHOD_NAMES[m], key) != 0)
            m++;
        if (m == GW_M_OTHER)
            return fail(c,
                        "%s: unknown method '%s' (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS "
                        "or *)",
                        where, key);
        out[m] = role;
        set[m] = true;
    }
    for (size_t i = 0; i < GW_M_COUNT; i++) {
        if (!set[i])
            out[i] = star;
    }
    /* HEAD is a GET without the body: it follows GET unless named. */
    if (!set[GW_M_HEAD] && set[GW_M_GET])
        out[GW_M_HEAD] = out[GW_M_GET];
    return 0;
}

static int
parse_percent(struct compile *c, const json_t *obj, const char *where, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100)
        return fail(c, "%s.%s: must be a percentage from 0 to 100", where, key);
    *out = json_number_value(v);
    return 0;
}

static int
parse_fault(struct compile *c, const json_t *obj, const char *where, struct gw_fault *out)
{
    static const char *const keys[] = { "abort_percent", "abort_status", "delay_percent",
                                        "delay_ms", NULL };
    if (!json_is_object(obj))
        return fail(c, "%s: must be an object", where);
    int rc = check_keys(c, obj, where, keys);
    if (rc == 0)
        rc = parse_percent(c, obj, where, "abort_percent", &out->abort_percent);
    if (rc == 0)
        rc = parse_percent(c, obj, where, "delay_percent", &out->delay_percent);
    if (rc != 0)
        return rc;
    json_t *st = json_object_get(obj, "abort_status");
    out->abort_status = 503;
    if (st != NULL) {
        if (!json_is_integer(st) || json_integer_value(st) < 400 || json_integer_value(st) > 599)
            return fail(c, "%s.abort_status: must be an HTTP status from 400 to 599", where);
        out->abort_status = (int)json_integer_value(st);
    }
    json_t *ms = json_object_get(obj, "delay_ms");
    if (ms != NULL) {
        if (!json_is_integer(ms) || json_integer_value(ms) < 0 || json_integer_value(ms) > 600000)
            return fail(c, "%s.delay_ms: must be milliseconds from 0 to 600000", where);
        out->delay_ms = (uint64_t)json_integer_value(ms);
    }
    return 0;
}

static void
add_service(struct gw_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        if (strcmp(cfg->services[i], name) == 0)
            return;
    }
    cfg->services = ag_realloc(cfg->services, (cfg->nservices + 1) * sizeof(char *));
    cfg->services[cfg->nservices++] = ag_strdup(name);
}

static int
parse_route(struct compile *c, struct gw_config *cfg, const json_t *r, size_t idx,
            struct gw_route *out)
{
    static const char *const keys[] = { "prefix",   "exact",      "service",    "rewrite",
                                        "roles",    "rate_limit", "timeout_ms", "retries",
                                        "max_body", "fault",      NULL };
    char where[64];
    snprintf(where, sizeof(where), "routes[%zu]", idx);
    if (!json_is_object(r))
        return fail(c, "%s: must be an object", where);
    int rc = check_keys(c, r, where, keys);
    if (rc != 0)
        return rc;

    json_t *prefix = json_object_get(r, "prefix");
    if (!json_is_string(prefix) || !is_path(json_string_value(prefix)))
        return fail(c,
                    "%s.prefix: must be a path starting with '/' (at most %d bytes, no '?', "
                    "'%%', '.' or '..' segments)",
                    where, PREFIX_MAX);
    const char *p = json_string_value(prefix);
    size_t plen = strlen(p);
    if (plen > 1 && p[plen - 1] == '/')
        return fail(c, "%s.prefix: must not end with '/'", where);
    out->prefix = ag_strdup(p);
    out->prefix_len = plen;

    json_t *exact = json_object_get(r, "exact");
    if (exact != NULL && !json_is_boolean(exact))
        return fail(c, "%s.exact: must be true or false", where);
    out->exact = json_is_true(exact);

    json_t *svc = json_object_get(r, "service");
    if (!json_is_string(svc) || !is_service_name(json_string_value(svc)))
        return fail(c, "%s.service: must be a service name ([a-z0-9_-], 1 to %d bytes)", where,
                    SERVICE_NAME_MAX);
    out->service = ag_strdup(json_string_value(svc));
    add_service(cfg, out->service);

    json_t *rw = json_object_get(r, "rewrite");
    if (rw != NULL) {
        if (!json_is_string(rw) || !is_path(json_string_value(rw)))
            return fail(c, "%s.rewrite: must be a path starting with '/'", where);
        out->rewrite = ag_strdup(json_string_value(rw));
        out->rewrite_len = strlen(out->rewrite);
    }

    char sub[96];
    snprintf(sub, sizeof(sub), "%s.roles", where);
    rc = parse_roles(c, json_object_get(r, "roles"), sub, out->roles);
    if (rc != 0)
        return rc;

    json_t *rl = json_object_get(r, "rate_limit");
    if (rl != NULL) {
        static const char *const rlkeys[] = { "per_client", "per_user", NULL };
        snprintf(sub, sizeof(sub), "%s.rate_limit", where);
        if (!json_is_object(rl))
            return fail(c, "%s: must be an object", sub);
        rc = check_keys(c, rl, sub, rlkeys);
        if (rc != 0)
            return rc;
        json_t *pc = json_object_get(rl, "per_client");
        json_t *pu = json_object_get(rl, "per_user");
        snprintf(sub, sizeof(sub), "%s.rate_limit.per_client", where);
        if (pc != NULL && (rc = parse_rate(c, pc, sub, &out->per_client)) != 0)
            return rc;
        snprintf(sub, sizeof(sub), "%s.rate_limit.per_user", where);
        if (pu != NULL && (rc = parse_rate(c, pu, sub, &out->per_user)) != 0)
            return rc;
    }

    json_t *to = json_object_get(r, "timeout_ms");
    if (to != NULL) {
        if (!json_is_integer(to) || json_integer_value(to) < 1 || json_integer_value(to) > 600000)
            return fail(c, "%s.timeout_ms: must be an integer from 1 to 600000", where);
        out->timeout_ms = (uint64_t)json_integer_value(to);
    }
    json_t *re = json_object_get(r, "retries");
    out->retries = 0;
    if (re != NULL) {
        if (!json_is_integer(re) || json_integer_value(re) < 0 || json_integer_value(re) > 10)
            return fail(c, "%s.retries: must be an integer from 0 to 10", where);
        out->retries = json_integer_value(re) == 0 ? -1 : (int)json_integer_value(re);
    }
    json_t *fault = json_object_get(r, "fault");
    if (fault != NULL) {
        snprintf(sub, sizeof(sub), "%s.fault", where);
        if ((rc = parse_fault(c, fault, sub, &out->fault)) != 0)
            return rc;
    }
    json_t *mb = json_object_get(r, "max_body");
    if (mb != NULL) {
        snprintf(sub, sizeof(sub), "%s.max_body", where);
        if ((rc = parse_size_value(c, mb, sub, &out->max_body)) != 0)
            return rc;
    }
    return 0;
}

/* Join the strings of array 'arr' with ", ", checking each is an HTTP
 * token. NULL for an absent or empty array. */
static int
join_tokens(struct compile *c, const json_t *arr, const char *where, char **out)
{
    *out = NULL;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return fail(c, "%s: must be an array of strings", where);
    struct ag_buf b = AG_BUF_INIT(4096);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        bool ok = s != NULL && s[0] != '\0';
        for (const char *q = s; ok && *q; q++)
            ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                 strchr("!#$%&'*+-.^_`|~", *q) != NULL;
        if (!ok) {
            ag_buf_release(&b);
            return fail(c, "%s[%zu]: must be a header or method name", where, i);
        }
        if ((b.len > 0 && ag_buf_append(&b, ", ", 2) != 0) || ag_buf_append_cstr(&b, s) != 0) {
            ag_buf_release(&b);
            return fail(c, "%s: too long", where);
        }
    }
    if (b.len > 0)
        *out = ag_buf_detach(&b, NULL);
    ag_buf_release(&b);
    return 0;
}

static int
parse_cors(struct compile *c, const json_t *obj, struct gw_cors *out)
{
    static const char *const keys[] = { "allow_origins",
                                        "allow_methods",
                                        "allow_headers",
                                        "expose_headers",
                                        "max_age",
                                        "allow_credentials",
                                        NULL };
    if (obj == NULL)
        return 0;
    if (!json_is_object(obj))
        return fail(c, "cors: must be an object");
    int rc = check_keys(c, obj, "cors", keys);
    if (rc != 0)
        return rc;
    out->enabled = true;
    json_t *orig = json_object_get(obj, "allow_origins");
    if (orig != NULL && !json_is_array(orig))
        return fail(c, "cors.allow_origins: must be an array of origins");
    size_t i;
    json_t *v;
    json_array_foreach(orig, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || s[0] == '\0' || strlen(s) > 256 || strpbrk(s, "\r\n ,") != NULL)
            return fail(c,
                        "cors.allow_origins[%zu]: must be an origin such as "
                        "\"https://shop.example\" or \"*\"",
                        i);
        if (strcmp(s, "*") == 0) {
            out->any_origin = true;
            continue;
        }
        out->origins = ag_realloc(out->origins, (out->norigins + 1) * sizeof(char *));
        out->origins[out->norigins++] = ag_strdup(s);
    }
    if ((rc = join_tokens(c, json_object_get(obj, "allow_methods"), "cors.allow_methods",
                          &out->allow_methods)) != 0)
        return rc;
    if (out->allow_methods == NULL)
        out->allow_methods = ag_strdup("GET, HEAD, POST, PUT, PATCH, DELETE");
    if ((rc = join_tokens(c, json_object_get(obj, "allow_headers"), "cors.allow_headers",
                          &out->allow_headers)) != 0)
        return rc;
    if ((rc = join_tokens(c, json_object_get(obj, "expose_headers"), "cors.expose_headers",
                          &out->expose_headers)) != 0)
        return rc;
    json_t *ma = json_object_get(obj, "max_age");
    if (ma != NULL) {
        if (!json_is_integer(ma) || json_integer_value(ma) < 0 || json_integer_value(ma) > 86400)
            return fail(c, "cors.max_age: must be seconds from 0 to 86400");
        snprintf(out->max_age, sizeof(out->max_age), "%lld", (long long)json_integer_value(ma));
    }
    json_t *cred = json_object_get(obj, "allow_credentials");
    if (cred != NULL && !json_is_boolean(cred))
        return fail(c, "cors.allow_credentials: must be true or false");
    out->allow_credentials = json_is_true(cred);
    return 0;
}

/* Longest prefix first; at equal length an exact route first, so that
 * {"prefix": "/api/v1/users", "exact": true} wins over the subtree route. */
static int
route_cmp(const void *a, const void *b)
{
    const struct gw_route *x = a;
    const struct gw_route *y = b;
    if (x->prefix_len != y->prefix_len)
        return x->prefix_len > y->prefix_len ? -1 : 1;
    if (x->exact != y->exact)
        return x->exact ? -1 : 1;
    return 0;
}

int
gw_config_compile(const json_t *root, const char *source, struct gw_config **out_cfg, char *errbuf,
                  size_t errlen)
{
    static const char *const keys[] = { "routes", "cors", "max_body", NULL };
    struct compile c = { errbuf, errlen };
    if (errlen > 0)
        errbuf[0] = '\0';
    *out_cfg = NULL;
    if (!json_is_object(root))
        return fail(&c, "the route table must be a JSON object {\"routes\": [...]}");
    int rc = check_keys(&c, root, "top level", keys);
    if (rc != 0)
        return rc;
    json_t *routes = json_object_get(root, "routes");
    if (!json_is_array(routes))
        return fail(&c, "routes: must be an array");
    if (json_array_size(routes) > MAX_ROUTES)
        return fail(&c, "routes: at most %d routes", MAX_ROUTES);

    struct gw_config *cfg = ag_calloc(1, sizeof(*cfg));
    cfg->refs = 1;
    cfg->source = ag_strdup(source ? source : "");
    cfg->max_body = DEFAULT_MAX_BODY;
    cfg->routes = ag_calloc(json_array_size(routes) + 1, sizeof(struct gw_route));
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r)
    {
        rc = parse_route(&c, cfg, r, i, &cfg->routes[i]);
        cfg->nroutes = i + 1;
        if (rc != 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->routes[j].prefix, cfg->routes[i].prefix) == 0 &&
                cfg->routes[j].exact == cfg->routes[i].exact) {
                rc = fail(&c, "routes[%zu].prefix: '%s' repeats routes[%zu]", i,
                          cfg->routes[i].prefix, j);
                goto fail;
            }
        }
    }
    qsort(cfg->routes, cfg->nroutes, sizeof(struct gw_route), route_cmp);
    json_t *mb = json_object_get(root, "max_body");
    if (mb != NULL && (rc = parse_size_value(&c, mb, "max_body", &cfg->max_body)) != 0)
        goto fail;
    for (size_t k = 0; k < cfg->nroutes; k++) {
        if (cfg->routes[k].max_body == 0)
            cfg->routes[k].max_body = cfg->max_body;
    }
    if ((rc = parse_cors(&c, json_object_get(root, "cors"), &cfg->cors)) != 0)
        goto fail;
    *out_cfg = cfg;
    return 0;
fail:
    gw_config_unref(cfg);
    return rc;
}

int
gw_config_load_file(const char *path, struct gw_config **out_cfg, char *errbuf, size_t errlen)
{
    *out_cfg = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errbuf, errlen, "cannot open '%s': %s", path, strerror(errno));
        return AG_EIO;
    }
    struct ag_buf data = AG_BUF_INIT(CONFIG_FILE_MAX);
    char chunk[16384];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = ag_buf_append(&data, chunk, n);
    if (rc == 0 && ferror(f))
        rc = AG_EIO;
    fclose(f);
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot read '%s': %s", path, ag_strerror(rc));
        ag_buf_release(&data);
        return rc;
    }
    char jerr[160];
    json_t *root = ag_json_parse(ag_buf_cstr(&data), data.len, jerr, sizeof(jerr));
    ag_buf_release(&data);
    if (root == NULL) {
        snprintf(errbuf, errlen, "'%s': %s", path, jerr);
        return AG_EINVAL;
    }
    char src[512];
    snprintf(src, sizeof(src), "file:%s", path);
    char cerr[256];
    rc = gw_config_compile(root, src, out_cfg, cerr, sizeof(cerr));
    json_decref(root);
    if (rc != 0)
        snprintf(errbuf, errlen, "'%s': %s", path, cerr);
    return rc;
}

struct gw_config *
gw_config_ref(struct gw_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void
gw_config_unref(struct gw_config *cfg)
{
    if (cfg == NULL || --cfg->refs > 0)
        return;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        ag_free(cfg->routes[i].prefix);
        ag_free(cfg->routes[i].service);
        ag_free(cfg->routes[i].rewrite);
    }
    ag_free(cfg->routes);
    for (size_t i = 0; i < cfg->nservices; i++)
        ag_free(cfg->services[i]);
    ag_free(cfg->services);
    for (size_t i = 0; i < cfg->cors.norigins; i++)
        ag_free(cfg->cors.origins[i]);
    ag_free(cfg->cors.origins);
    ag_free(cfg->cors.allow_methods);
    ag_free(cfg->cors.allow_headers);
    ag_free(cfg->cors.expose_headers);
    ag_free(cfg->source);
    ag_free(cfg);
}

const struct gw_route *
gw_config_match(const struct gw_config *cfg, struct ag_str path)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_route *r = &cfg->routes[i];
        size_t n = r->prefix_len;
        if (path.len < n || memcmp(path.ptr, r->prefix, n) != 0)
            continue;
        if (path.len == n)
            return r;
        if (r->exact)
            continue;
        /* A segment boundary: "/api/v1/products" covers "/api/v1/products/x"
         * but not "/api/v1/productsx"; the root prefix "/" covers all. */
        if (path.ptr[n] == '/' || r->prefix[n - 1] == '/')
            return r;
    }
    return NULL;
}
