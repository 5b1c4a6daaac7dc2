/* SPDX-License-Identifier: MIT */
/* Orders service: composition root. Wires the chassis (settings, database
 * and migrations, events runtime, port from agora/ports.h), the route
 * table, the consumer of subscription "orders" and the saga timer that
 * resumes in-flight sagas at start and handles step deadlines. */
#include "agora/base.h"
#include "orders.h"

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration orders_migrations[];
extern const size_t orders_nmigrations;

#define OFF(f) offsetof(struct orders_settings, f)
static const struct ag_config_key ORDERS_KEYS[] = {
    { "AGORA_ORDERS_STEP_TIMEOUT", AG_CONFIG_DURATION, "30s", OFF(step_timeout_ms), 50, 86400000,
      NULL, "deadline of one saga step's reply before it is re-sent" },
    { "AGORA_ORDERS_STEP_RETRIES", AG_CONFIG_INT, "3", OFF(step_retries), 0, 100, NULL,
      "re-sends of a step (same step_key) before its compensation" },
    { "AGORA_ORDERS_SCAN_INTERVAL", AG_CONFIG_DURATION, "1s", OFF(scan_interval_ms), 10, 3600000,
      NULL, "how often the saga timer looks for due steps" },
};
#undef OFF

/* Participants' replies and the catalog's prices. */
static const char *const TOPICS[] = { "product.*", "inventory.*", "payment.*", "shipment.*" };

static void
on_scan(uv_timer_t *t)
{
    orders_saga_scan(t->data);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct orders *o = udata;
    o->svc = svc;
    o->store = ag_service_store(svc);
    o->events = ag_service_events(svc);
    o->idem = ag_service_idem(svc);
    struct ag_metrics *reg = ag_service_metrics(svc);
    static const char *const STEP_LABELS[] = { "step", "outcome" };
    static const char *const OUTCOME[] = { "outcome" };
    static const double BUCKETS[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600 };
    o->metrics.steps = ag_metrics_counter(reg, "saga_steps_total",
                                          "saga steps by step and outcome (sent, retried, replies)",
                                          STEP_LABELS, 2);
    o->metrics.duration =
        ag_metrics_histogram(reg, "saga_duration_seconds", "checkout to a terminal state", NULL, 0,
                             BUCKETS, AG_ARRAY_SIZE(BUCKETS));
    static const char *const STEP_ONLY[] = { "step" };
    static const double STEP_BUCKETS[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,   0.25,   0.5,   1,    2.5,   10 };
    o->metrics.step_latency = ag_metrics_histogram(
        reg, "saga_step_duration_seconds", "a saga step from its last send to its reply, by step",
        STEP_ONLY, 1, STEP_BUCKETS, AG_ARRAY_SIZE(STEP_BUCKETS));
    o->metrics.orders = ag_metrics_counter(reg, "orders_total", "orders by outcome", OUTCOME, 1);
    /* A short lease: a reply delivered to a process that was killed comes
     * back to the next one in seconds, not minutes. */
    struct ag_events_sub_options opts = { .ack_deadline_ms = ORDERS_ACK_DEADLINE_MS };
    int rc = ag_events_subscribe_ex(o->events, "orders", TOPICS, AG_ARRAY_SIZE(TOPICS), &opts,
                                    orders_events_handle, o);
    if (rc != 0)
        return rc;
    uv_timer_init(ag_service_loop(svc), &o->scan);
    o->scan.data = o;
    o->scan_started = true;
    /* At once: in-flight sagas of a previous run resume now. */
    uv_timer_start(&o->scan, on_scan, 0, o->settings.scan_interval_ms);
    return 0;
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    (void)svc;
    struct orders *o = udata;
    /* No new saga work once the stop begins; what is due waits for the
     * next start. */
    if (o->scan_started && !uv_is_closing((uv_handle_t *)&o->scan))
        uv_close((uv_handle_t *)&o->scan, NULL);
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    /* Also reached when start-up failed, before any on_stopping. */
    on_stopping(svc, udata);
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct orders o = { 0 };
    struct ag_service_config cfg = {
        .name = "orders",
        .version = "0.1.0",
        .default_port = AG_PORT_ORDERS,
        .migrations = orders_migrations,
        .nmigrations = orders_nmigrations,
        .keys = ORDERS_KEYS,
        .nkeys = AG_ARRAY_SIZE(ORDERS_KEYS),
        .settings = &o.settings,
        .on_start = on_start,
        .on_stopping = on_stopping,
        .on_stop = on_stop,
        .events = true,
        .idempotency = true,
        .udata = &o,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, orders_routes, orders_nroutes, &o);
    /* Only payments asks whether an order is payable (least privilege). */
    if (rc == 0)
        rc = ag_service_route_callers(svc, "GET", "/v1/internal/orders/{id}/payable", "payments");
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
