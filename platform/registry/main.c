/* SPDX-License-Identifier: MIT */
/* Registry: composition root. Wires the chassis (configuration, logs,
 * metrics, the SQLite configuration store, the HTTP server), the route
 * table and the lifecycle hooks that start the instance table and answer
 * long polls at shutdown. */
#include "agora/base.h"
#include "reg.h"

#include <stddef.h>

#include "agora/ports.h"

extern const struct ag_migration reg_migrations[];
extern const size_t reg_nmigrations;

static struct reg g_reg;

#define OFF(f) offsetof(struct reg_settings, f)
static const struct ag_config_key REG_KEYS[] = {
    { "AGORA_REGISTRY_MAX_INSTANCES", AG_CONFIG_INT, "10000", OFF(max_instances), 1, 1000000, NULL,
      "instances registered at once, over all services (503 past it)" },
    { "AGORA_REGISTRY_MAX_WATCHES", AG_CONFIG_INT, "10000", OFF(max_watches), 1, 1000000, NULL,
      "long polls held at once (503 past it); each holds a connection, see "
      "AGORA_HTTP_MAX_CONNECTIONS" },
    { "AGORA_REGISTRY_MAX_CONFIG_KEYS", AG_CONFIG_INT, "10000", OFF(max_config_keys), 1, 1000000,
      NULL, "configuration keys stored (503 past it)" },
    /* At most 100 MiB, so that any listing (values plus at most
     * AGORA_REGISTRY_MAX_CONFIG_KEYS keys and versions) fits the 128 MiB
     * a listing may render to. */
    { "AGORA_REGISTRY_MAX_CONFIG_BYTES", AG_CONFIG_SIZE, "64MiB", OFF(max_config_bytes), 1,
      100u << 20, NULL, "bytes of configuration values stored in all (503 past it)" },
};
#undef OFF

static int
on_start(struct ag_service *svc, void *udata)
{
    struct reg *r = udata;
    r->svc = svc;
    r->store = ag_service_store(svc);
    return reg_api_start(r);
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    reg_api_stopping(udata);
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    reg_api_stop(udata);
}

int
main(int argc, char **argv)
{
    struct ag_service_config cfg = {
        .name = "registry",
        .version = "0.1.0",
        .default_port = AG_PORT_REGISTRY,
        .migrations = reg_migrations,
        .nmigrations = reg_nmigrations,
        .sqlite_only = true,
        .keys = REG_KEYS,
        .nkeys = AG_ARRAY_SIZE(REG_KEYS),
        .settings = &g_reg.settings,
        .on_start = on_start,
        .on_stop = on_stop,
        .on_stopping = on_stopping,
        .udata = &g_reg,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, reg_routes, reg_nroutes, &g_reg);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
