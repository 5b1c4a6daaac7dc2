/* SPDX-License-Identifier: MIT */
/* Inventory service: composition root. Wires the chassis (settings,
 * database and migrations, events runtime, port from agora/ports.h), the
 * route table, the consumer of product events and saga commands, the
 * metrics, and the timer that releases expired reservations. */
#include "agora/base.h"
#include "inventory.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration inventory_migrations[];
extern const size_t inventory_nmigrations;

#define SUBSCRIPTION       "inventory"
#define EXPIRY_INTERVAL_MS 1000 /* longest wait of the expiry timer */

#define OFF(f) offsetof(struct inv_settings, f)
static const struct ag_config_key INV_KEYS[] = {
    { "AGORA_INVENTORY_RESERVATION_TTL", AG_CONFIG_DURATION, "15m", OFF(reservation_ttl_ms), 100,
      604800000, NULL,
      "how long a reservation holds stock before it is released (reason expired)" },
    { "AGORA_INVENTORY_LOW_THRESHOLD", AG_CONFIG_INT, "5", OFF(low_threshold), 0, INV_STOCK_MAX,
      NULL,
      "available units at or under which stock.low is published (per product: low_threshold)" },
    { "AGORA_INVENTORY_DEMO_STOCK", AG_CONFIG_INT, "0", OFF(demo_stock), 0, INV_STOCK_MAX, NULL,
      "units on hand given to every product created from then on (demo shop; agora up sets 100)" },
    { "AGORA_INVENTORY_ACK_DEADLINE", AG_CONFIG_DURATION, "5s", OFF(ack_deadline_ms), 100, 600000,
      NULL, "lease of a delivered event or command before the bus redelivers it" },
    { "AGORA_INVENTORY_CRASH_AFTER_COMMIT", AG_CONFIG_STRING, "", OFF(crash_after_commit), 0, 0,
      NULL, "tests only: SIGKILL itself after committing an event of this type, before the ack" },
};
#undef OFF

static const char *const TOPICS[] = { "product.*", "cmd.inventory.*" };
static const char *const COMMAND_LABELS[] = { "command", "outcome" };

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct inv *inv = udata;
    int64_t n;
    if (inv_store_stock_reserved_total(inv->store, &n) == 0)
        ag_gauge_set(inv->m_reserved, NULL, (double)n);
}

struct expire_tx {
    struct inv *inv;
    int released;
};

static int
expire_tx_fn(struct ag_store *st, void *arg)
{
    struct expire_tx *t = arg;
    t->released = 0; /* a rerun (ag_store_tx retry) counts afresh */
    return inv_expire_due(t->inv, st, ag_time_unix_ms(), &t->released);
}

/* Release what expired, a batch per transaction. Returns how many. */
static int
expire_now(struct inv *inv)
{
    int total = 0;
    for (;;) {
        struct expire_tx t = { .inv = inv };
        int rc = ag_store_tx(inv->store, expire_tx_fn, &t);
        if (rc != 0) {
            AG_LOGE("inventory", "cannot release expired reservations: %s", ag_strerror(rc));
            return total;
        }
        total += t.released;
        if (t.released < INV_EXPIRE_BATCH)
            break;
    }
    if (total > 0) {
        AG_LOGI("inventory", "released %d expired reservations", total);
        inv_events_kick(inv->events);
    }
    return total;
}

static void
on_expiry_timer(uv_timer_t *t)
{
    expire_now(t->data);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct inv *inv = udata;
    inv->svc = svc;
    inv->store = ag_service_store(svc);
    inv->events = ag_service_events(svc);
    inv->idem = ag_service_idem(svc);
    struct ag_metrics *reg = ag_service_metrics(svc);
    inv->m_commands = ag_metrics_counter(reg, "inventory_commands_total",
                                         "Saga commands handled, by command and outcome",
                                         COMMAND_LABELS, AG_ARRAY_SIZE(COMMAND_LABELS));
    inv->m_reserved = ag_metrics_gauge(reg, "stock_reserved",
                                       "Units held by reservations, all products", NULL, 0);
    ag_metrics_on_collect(reg, collect, inv);

    struct ag_events_sub_options opts = { .ack_deadline_ms = inv->settings.ack_deadline_ms };
    int rc = ag_events_subscribe_ex(inv->events, SUBSCRIPTION, TOPICS, AG_ARRAY_SIZE(TOPICS), &opts,
                                    inv_events_handle, inv);
    if (rc != 0)
        return rc;
    if (inv->settings.crash_after_commit != NULL && inv->settings.crash_after_commit[0] != '\0')
        ag_events_on_commit(inv->events, inv_events_committed, inv);

    /* Reservations that expired while the service was down go first. */
    expire_now(inv);
    uint64_t every = inv->settings.reservation_ttl_ms / 2;
    if (every > EXPIRY_INTERVAL_MS)
        every = EXPIRY_INTERVAL_MS;
    if (every < 50)
        every = 50;
    uv_timer_init(ag_service_loop(svc), &inv->expiry);
    inv->expiry.data = inv;
    uv_timer_start(&inv->expiry, on_expiry_timer, every, every);
    inv->expiry_started = true;
    return 0;
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct inv *inv = udata;
    if (inv->expiry_started) {
        uv_timer_stop(&inv->expiry);
        uv_close((uv_handle_t *)&inv->expiry, NULL);
        inv->expiry_started = false;
    }
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct inv inv = { .magic = INV_MAGIC };
    struct ag_service_config cfg = {
        .name = "inventory",
        .version = "0.1.0",
        .default_port = AG_PORT_INVENTORY,
        .migrations = inventory_migrations,
        .nmigrations = inventory_nmigrations,
        .keys = INV_KEYS,
        .nkeys = AG_ARRAY_SIZE(INV_KEYS),
        .settings = &inv.settings,
        .on_start = on_start,
        .on_stopping = on_stopping,
        .events = true,
        .idempotency = true,
        .udata = &inv,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, inv_routes, inv_nroutes, &inv);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
