/* SPDX-License-Identifier: MIT */
/* Shipping service: composition root. Wires the chassis (settings, database
 * and migrations, events runtime, port from agora/ports.h), the route
 * table, the consumer of the saga's commands (commands.c) and the
 * service's metrics. */
#include "agora/base.h"
#include "shipping.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration shipping_migrations[];
extern const size_t shipping_nmigrations;

#define OFF(f) offsetof(struct ship_settings, f)
static const struct ag_config_key SHIP_KEYS[] = {
    { "AGORA_SHIPPING_CARRIER", AG_CONFIG_STRING, "Agora Post", OFF(carrier), 0, 0, NULL,
      "carrier named in shipment.shipped (1 to 50 characters)" },
    { "AGORA_SHIPPING_ACK_DEADLINE", AG_CONFIG_DURATION, "5s", OFF(ack_deadline_ms), 1000, 3600000,
      NULL, "bus lease of one delivery of a command before it is redelivered" },
    { "AGORA_SHIPPING_TEST_KILL_AFTER_COMMIT", AG_CONFIG_INT, "0", OFF(kill_after), 0, 1000000,
      NULL,
      "tests only: SIGKILL the process right after the Nth committed command, before "
      "its ack (0: never)" },
};
#undef OFF

void
ship_count_status(struct ship *sh, enum ship_status status)
{
    if (sh->m_shipments != NULL)
        ag_counter_add(sh->m_shipments, (const char *const[]){ ship_status_name(status) }, 1);
}

static void
register_metrics(struct ship *sh, struct ag_metrics *reg)
{
    static const char *const STATUS[] = { "status" };
    static const char *const COMMAND[] = { "command", "outcome" };
    sh->m_shipments = ag_metrics_counter(
        reg, "shipments_total", "Shipments that entered each status since start", STATUS, 1);
    sh->m_commands = ag_metrics_counter(
        reg, "shipping_commands_total",
        "Saga commands applied, by command (create, cancel, unknown) and outcome (created, "
        "replayed, cancelled, absent, refused, invalid, error)",
        COMMAND, 2);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct ship *sh = udata;
    sh->svc = svc;
    sh->store = ag_service_store(svc);
    sh->events = ag_service_events(svc);
    sh->idem = ag_service_idem(svc);
    sh->fx = (struct ship_effect){ .entered = -1 };
    size_t carrier = strlen(sh->settings.carrier);
    if (carrier == 0 || carrier > SHIP_CARRIER_MAX) {
        AG_LOGE("config", "AGORA_SHIPPING_CARRIER: must have 1 to %d characters", SHIP_CARRIER_MAX);
        return AG_ECONFIG;
    }
    register_metrics(sh, ag_service_metrics(svc));
    struct ag_events_sub_options opts = { .ack_deadline_ms = sh->settings.ack_deadline_ms };
    int rc = ag_events_subscribe_ex(sh->events, SHIP_SUBSCRIPTION, ship_command_topics,
                                    ship_ncommand_topics, &opts, ship_commands_handle, sh);
    if (rc != 0) {
        AG_LOGE("events", "cannot subscribe '%s': %s", SHIP_SUBSCRIPTION, ag_strerror(rc));
        return rc;
    }
    if (sh->settings.kill_after > 0)
        ag_events_on_commit(sh->events, ship_commands_committed, sh);
    return 0;
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct ship sh = { 0 };
    struct ag_service_config cfg = {
        .name = "shipping",
        .version = "0.1.0",
        .default_port = AG_PORT_SHIPPING,
        .migrations = shipping_migrations,
        .nmigrations = shipping_nmigrations,
        .keys = SHIP_KEYS,
        .nkeys = AG_ARRAY_SIZE(SHIP_KEYS),
        .settings = &sh.settings,
        .on_start = on_start,
        .events = true,
        .idempotency = true,
        .udata = &sh,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, ship_routes, ship_nroutes, &sh);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
