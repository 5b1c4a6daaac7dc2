/* SPDX-License-Identifier: MIT */
/* Traces: composition root. The chassis (settings, logs, metrics, the SQLite
 * span store, the HTTP server) and the collector's routes. */
#include "agora/base.h"
#include "traces.h"

#include <stddef.h>

#include "agora/ports.h"

extern const struct ag_migration traces_migrations[];
extern const size_t traces_nmigrations;

static struct traces g_traces;

#define OFF(f) offsetof(struct traces_settings, f)
static const struct ag_config_key TRACES_KEYS[] = {
    { "AGORA_TRACES_MAX_TRACES", AG_CONFIG_INT, "10000", OFF(max_traces), 10, 10000000, NULL,
      "traces kept; past it the oldest are deleted, those with an error or slower than "
      "AGORA_TRACES_SLOW last" },
    { "AGORA_TRACES_MAX_SPANS", AG_CONFIG_INT, "2000", OFF(max_spans), 1, 1000000, NULL,
      "spans kept per trace (more are counted and dropped)" },
    { "AGORA_TRACES_SLOW", AG_CONFIG_DURATION, "1s", OFF(slow_ms), 1, 3600000, NULL,
      "a trace at least this long is kept like one with an error (tail rule)" },
    { "AGORA_TRACES_LOG_DIR", AG_CONFIG_STRING, "", OFF(log_dir), 0, 0, NULL,
      "directory of the programs' log files (*.log, *.log.1) that GET /v1/logs searches; "
      "agora up sets its logs/" },
};
#undef OFF

static int
on_start(struct ag_service *svc, void *udata)
{
    struct traces *t = udata;
    t->svc = svc;
    t->store = ag_service_store(svc);
    return traces_start(t);
}

int
main(int argc, char **argv)
{
    struct ag_service_config cfg = {
        .name = "traces",
        .version = "0.1.0",
        .default_port = AG_PORT_TRACES,
        .migrations = traces_migrations,
        .nmigrations = traces_nmigrations,
        .keys = TRACES_KEYS,
        .nkeys = AG_ARRAY_SIZE(TRACES_KEYS),
        .settings = &g_traces.settings,
        .on_start = on_start,
        .udata = &g_traces,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, traces_routes, traces_nroutes, &g_traces);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
