/* SPDX-License-Identifier: MIT */
/* libFuzzer target: router matching and query-string decoding. Input:
 * "<method> <path>[?<query>]" (first line); the router holds routes shaped
 * like the services' ({param} segments, literal-over-parameter). */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>

#include "agora/mem.h"
#include "agora/router.h"
#include "agora/str.h"

static struct ag_router *g_router;

static void
noop(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(req);
    AG_UNUSED(udata);
}

static const struct ag_route ROUTES[] = {
    { "GET", "/v1/products", noop, AG_ROLE_PUBLIC },
    { "GET", "/v1/products/{id}", noop, AG_ROLE_PUBLIC },
    { "PATCH", "/v1/products/{id}", noop, AG_ROLE_ADMIN },
    { "GET", "/v1/orders/{id}/steps/{step}", noop, AG_ROLE_CUSTOMER },
    { "POST", "/v1/orders/{id}/cancel", noop, AG_ROLE_CUSTOMER },
    { "GET", "/v1/orders/mine", noop, AG_ROLE_CUSTOMER },
    { "PUT", "/v1/config/{key}", noop, AG_ROLE_INTERNAL },
    { "GET", "/", noop, AG_ROLE_PUBLIC },
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    AG_UNUSED(argc);
    AG_UNUSED(argv);
    g_router = ag_router_new();
    if (ag_router_add_table(g_router, ROUTES, AG_ARRAY_SIZE(ROUTES), NULL) != 0)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *sp = memchr(p, ' ', size);
    if (sp == NULL)
        return 0;
    struct ag_str method = ag_str_make(p, (size_t)(sp - p));
    const char *rest = sp + 1;
    size_t rlen = size - (size_t)(rest - p);
    const char *q = memchr(rest, '?', rlen);
    struct ag_str path = ag_str_make(rest, q ? (size_t)(q - rest) : rlen);
    struct ag_route_match m;
    enum ag_router_status st = ag_router_match(g_router, method, path, &m);
    if (st == AG_ROUTER_FOUND && m.route == NULL)
        abort();
    for (size_t i = 0; i < m.nparams; i++) {
        if (m.values[i].ptr < path.ptr || m.values[i].ptr + m.values[i].len > path.ptr + path.len)
            abort(); /* parameters are slices of the path */
    }
    if (q != NULL) {
        struct ag_pool *pool = ag_pool_new(0);
        struct ag_query out;
        struct ag_str raw = ag_str_make(q + 1, rlen - (size_t)(q + 1 - rest));
        if (ag_query_parse(pool, raw, 32, &out) == 0) {
            for (size_t i = 0; i < out.n; i++) {
                if (strlen(out.params[i].name) > raw.len || strlen(out.params[i].value) > raw.len)
                    abort(); /* decoding never grows */
            }
            ag_query_get(&out, "limit");
        }
        ag_pool_free(pool);
    }
    return 0;
}
