/* SPDX-License-Identifier: MIT */
/* Registry client: registers this instance (with a TTL kept alive by
 * heartbeats) and deregisters it on shutdown; keeps a cache of the healthy
 * instances of the services it watches, fresh through long-poll watches,
 * and feeds them to the HTTP client's upstreams; reads configuration keys
 * and calls back on every change, so settings apply without a restart.
 * A service started while the registry is down keeps serving and retries
 * with capped exponential backoff. One client per loop, loop thread only.
 * The registry's HTTP API is platform/registry/openapi.yaml. */
#ifndef AG_REGISTRY_H
#define AG_REGISTRY_H

#include "agora/base.h"
#include "agora/http_client.h"
#include "agora/identity.h"

#include <jansson.h>
#include <uv.h>

struct ag_registry;

/* Zero means the default shown. */
struct ag_registry_config {
    const char *url;                   /* registry base URL, "http://127.0.0.1:8500"; required */
    const char *service;               /* this service's name; NULL: do not register */
    const char *instance_id;           /* this instance */
    const char *address;               /* address others reach it on, "127.0.0.1" */
    int port;                          /* its port */
    const json_t *metadata;            /* object (copied), or NULL */
    uint64_t ttl_ms;                   /* 10000; heartbeats every ttl/3 */
    uint64_t watch_wait_ms;            /* 30000: long-poll wait per watch request */
    uint64_t retry_max_ms;             /* 5000: cap of the reconnect backoff */
    struct ag_identity_self *identity; /* signs every call (the registry requires it);
                                          borrowed, must outlive the client; NULL: none */
};

/* Instance as listed by the registry. Borrowed; valid until the next change
 * of that service's cache (i.e. until control returns to the loop). */
struct ag_registry_instance {
    const char *id;
    const char *address;
    int port;
    const json_t *metadata; /* object */
};

typedef void (*ag_registry_services_cb)(struct ag_registry *reg, const char *service,
                                        const struct ag_registry_instance *instances, size_t n,
                                        void *udata);
/* 'value' is NULL when the key was deleted; borrowed for the call. */
typedef void (*ag_registry_config_cb)(struct ag_registry *reg, const char *key, const json_t *value,
                                      int64_t version, void *udata);

/* New client using 'client' (borrowed; must outlive the registry client). */
int ag_registry_new(uv_loop_t *loop, struct ag_http_client *client,
                    const struct ag_registry_config *cfg, struct ag_registry **out_reg);

/* Register (retrying until the registry answers) and start heartbeats and
 * watches. Re-registers by itself when a heartbeat finds the instance gone
 * (404, e.g. after a registry restart). */
void ag_registry_start(struct ag_registry *reg);

/* Watch service 'name': keep its instances cached and, when 'client_upstream'
 * is true, mirror them into the HTTP client's upstream of the same name.
 * 'cb' (may be NULL) is called after every change. */
int ag_registry_watch_service(struct ag_registry *reg, const char *name, bool client_upstream,
                              ag_registry_services_cb cb, void *udata);

/* Current cached healthy instances of 'name'; 0 when unknown. */
size_t ag_registry_instances(struct ag_registry *reg, const char *name,
                             const struct ag_registry_instance **out_instances);

/* Watch configuration keys starting with 'prefix': 'cb' is called once per
 * existing key when first read, then for every change and deletion. */
int ag_registry_watch_config(struct ag_registry *reg, const char *prefix, ag_registry_config_cb cb,
                             void *udata);

/* Is the registry reachable (last request succeeded)? For /ready details. */
bool ag_registry_is_connected(const struct ag_registry *reg);

/* Deregister (best effort, bounded by 1 s), stop watches and timers, and
 * free once every handle closed; then 'cb' (may be NULL). */
void ag_registry_stop(struct ag_registry *reg, void (*cb)(void *udata), void *udata);

#endif /* AG_REGISTRY_H */
