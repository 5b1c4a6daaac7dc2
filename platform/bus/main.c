/* SPDX-License-Identifier: MIT */
/* Bus: composition root of the embedded message broker. Settings, then the
 * wiring of the service chassis, the engine (engine.c), the handlers
 * (api.c) and the sweeps (sweep.c), and the shutdown sequence (held pulls
 * answered at once, queued publishes committed before exit). Nothing calls
 * into this file. */
#include "agora/base.h"
#include "bus.h"

#include <inttypes.h>
#include <stdlib.h>

#include "agora/config.h"
#include "agora/log.h"
#include "agora/ports.h"

#define DEFAULT_MAX_BODY   "8MiB"
#define DEFAULT_DB_LOCKING "shared"

#define OFF(f) offsetof(struct bus_settings, f)
static const struct ag_config_key BUS_KEYS[] = {
    { "AGORA_BUS_DEDUP_WINDOW", AG_CONFIG_DURATION, "24h", OFF(dedup_window_ms), 1, 2592000000,
      NULL, "a message id seen within this window is not stored again (duplicate:true)" },
    { "AGORA_BUS_RETENTION", AG_CONFIG_DURATION, "24h", OFF(retention_ms), 1, 2592000000, NULL,
      "messages settled by every subscription are deleted once older than this" },
    { "AGORA_BUS_SWEEP_INTERVAL", AG_CONFIG_DURATION, "60s", OFF(sweep_interval_ms), 100, 3600000,
      NULL, "how often the retention and dedup sweeps run" },
    { "AGORA_BUS_MAX_WAITING", AG_CONFIG_INT, "10000", OFF(max_waiting), 1, 1000000, NULL,
      "pulls held waiting for messages, all subscriptions (503 past it)" },
    { "AGORA_BUS_WINDOW", AG_CONFIG_INT, "20000", OFF(window), 100, 10000000, NULL,
      "pending deliveries kept in memory per subscription; the rest wait on disk" },
    { "AGORA_BUS_MAX_SUBSCRIPTIONS", AG_CONFIG_INT, "1000", OFF(max_subscriptions), 1, 100000, NULL,
      "subscriptions (409 past it)" },
    { "AGORA_BUS_MAX_TOPICS", AG_CONFIG_INT, "10000", OFF(max_topics), 1, 1000000, NULL,
      "distinct topics (a publish to a new topic past it gets 422)" },
    { "AGORA_BUS_COMMIT_MAX", AG_CONFIG_INT, "5000", OFF(commit_max), 1, 1000000, NULL,
      "queued messages that trigger a commit before the loop iteration ends" },
    { "AGORA_BUS_CHECKPOINT_PAGES", AG_CONFIG_INT, "1000", OFF(checkpoint_pages), 0, 1000000, NULL,
      "WAL pages that start a checkpoint on the thread pool (0: SQLite checkpoints in COMMIT, "
      "on the loop, as it does with AGORA_DB_LOCKING=exclusive)" },
    { "AGORA_BUS_PUBLISHERS", AG_CONFIG_STRING, BUS_PUBLISHERS_DEFAULT, OFF(publishers), 0, 0, NULL,
      "who may publish what: service:pattern,... (the operator 'agora' may publish anything; "
      "a service not listed, nothing)" },
};
#undef OFF

/* Make 'value' the default of the chassis setting 'name' unless the
 * environment or the configuration file sets it. */
static void
default_setting(const char *name, const char *value)
{
    struct {
        char *value;
    } probe = { NULL };
    const struct ag_config_key key[] = {
        { name, AG_CONFIG_STRING, "", 0, 0, 0, NULL, "probe" },
    };
    if (ag_config_load(key, 1, &probe, NULL, 0) == 0 && probe.value != NULL &&
        probe.value[0] == '\0')
        setenv(name, value, 1);
    ag_config_release(key, 1, &probe);
}

/* ---- Lifecycle ---- */

static int
on_start(struct ag_service *svc, void *udata)
{
    struct bus *bus = udata;
    int rc = bus_engine_open(bus, svc);
    if (rc != 0)
        return rc;
    bus_sweep_start(bus);
    AG_LOGI("start", "%zu topics, %zu subscriptions, last seq %" PRId64, bus->ntopics, bus->nsubs,
            bus->last_seq);
    return 0;
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct bus *bus = udata;
    bus->stopping = true;
    bus_release_waiters(bus);
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct bus *bus = udata;
    if (bus->magic != BUS_MAGIC)
        return;
    bus->stopping = true;
    bus_commit(bus);
    bus_release_waiters(bus);
    bus_engine_close(bus);
    bus_sweep_stop(bus);
}

int
main(int argc, char **argv)
{
    /* Publish bodies of up to 8 MiB; shared locking, so that a second
     * connection can checkpoint the WAL off the loop (engine.c). */
    default_setting("AGORA_HTTP_MAX_BODY", DEFAULT_MAX_BODY);
    default_setting("AGORA_DB_LOCKING", DEFAULT_DB_LOCKING);
    /* The bus's one state, passed to every callback; main outlives them. */
    struct bus bus = { 0 };
    struct ag_service_config cfg = {
        .name = "bus",
        .version = "0.1.0",
        .default_port = AG_PORT_BUS,
        .migrations = bus_migrations,
        .nmigrations = bus_nmigrations,
        .sqlite_only = true,
        .keys = BUS_KEYS,
        .nkeys = AG_ARRAY_SIZE(BUS_KEYS),
        .settings = &bus.settings,
        .on_start = on_start,
        .on_stop = on_stop,
        .on_stopping = on_stopping,
        .udata = &bus,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    char why[160];
    if (bus_grants_parse(bus.settings.publishers, bus.grants, BUS_MAX_GRANTS, &bus.ngrants, why,
                         sizeof(why)) != 0) {
        fprintf(stderr, "config: AGORA_BUS_PUBLISHERS: %s\n", why);
        ag_service_free(svc);
        return 2;
    }
    rc = ag_service_routes(svc, bus_routes, bus_nroutes, &bus);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    bus_engine_free(&bus);
    ag_service_free(svc);
    return status;
}
