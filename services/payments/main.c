/* SPDX-License-Identifier: MIT */
/* Payments service: composition root. Wires the chassis (settings, database
 * and migrations, events runtime, port from agora/ports.h), the sandbox
 * provider, the consumer of the saga's cmd.payment.* commands, the sweep
 * timer (expired authorizations, old idempotency keys), the metrics and the
 * route table. */
#include "agora/base.h"
#include "payments.h"

#include <stddef.h>

#include "agora/err.h"
#include "agora/events.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration payments_migrations[];
extern const size_t payments_nmigrations;

#define OFF(f) offsetof(struct pay_settings, f)
static const struct ag_config_key PAY_KEYS[] = {
    { "AGORA_PAYMENTS_ORDERS_URL", AG_CONFIG_STRING, "", OFF(orders_url), 0, 0, NULL,
      "the orders service (agora up passes it), asked through its internal route whether the "
      "order of POST /v1/payments is the caller's, awaits payment and for exactly that amount "
      "(404, 409, 422 otherwise); empty: not asked (payments alone, its own tests)" },
    { "AGORA_PAYMENTS_PROVIDER_TIMEOUT", AG_CONFIG_DURATION, "5s", OFF(provider_timeout_ms), 10,
      600000, NULL,
      "how long an authorization waits for the provider before it fails with reason timeout" },
    { "AGORA_PAYMENTS_AUTH_TTL", AG_CONFIG_DURATION, "168h", OFF(auth_ttl_ms), 1000,
      UINT64_C(2592000000), NULL,
      "an authorization not captured within this is released (payment.voided reason expired)" },
    { "AGORA_PAYMENTS_SWEEP_INTERVAL", AG_CONFIG_DURATION, "1s", OFF(sweep_interval_ms), 100,
      3600000, NULL, "how often expired authorizations are voided" },
    { "AGORA_PAYMENTS_SANDBOX_LATENCY", AG_CONFIG_DURATION, "0ms", OFF(sandbox_latency_ms), 0,
      60000, NULL, "how long the sandbox provider takes to answer an authorization" },
};
#undef OFF

static const char *const TOPICS[] = { "cmd.payment.*" };

static void
on_sweep(uv_timer_t *t)
{
    pay_sweep(t->data);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct pay *pay = udata;
    pay->svc = svc;
    pay->store = ag_service_store(svc);
    pay->events = ag_service_events(svc);
    pay->idem = ag_service_idem(svc);
    pay->loop = ag_service_loop(svc);
    pay->provider = pay_sandbox_new(pay->loop, pay->settings.sandbox_latency_ms);

    struct ag_metrics *reg = ag_service_metrics(svc);
    static const char *const TOTAL_LABELS[] = { "operation", "outcome" };
    static const char *const AMOUNT_LABELS[] = { "operation", "currency" };
    pay->m_total = ag_metrics_counter(
        reg, "payments_total", "Payment operations by operation and outcome", TOTAL_LABELS, 2);
    pay->m_amount = ag_metrics_counter(reg, "payments_amount_minor_total",
                                       "Money moved by successful operations, in minor units",
                                       AMOUNT_LABELS, 2);
    pay->m_inflight = ag_metrics_gauge(reg, "payments_provider_inflight",
                                       "Authorizations waiting for the provider", NULL, 0);

    /* No request is in progress at startup: saga steps a stopped process
     * left at the provider are answered (nothing was authorized for them);
     * the chassis frees the keys it left in progress. */
    int rc = pay_events_fail_pending(pay);
    if (rc != 0) {
        AG_LOGE("payments", "cannot recover the previous run's requests: %s", ag_strerror(rc));
        return rc;
    }
    uv_timer_init(pay->loop, &pay->sweep);
    pay->sweep.data = pay;
    uv_timer_start(&pay->sweep, on_sweep, pay->settings.sweep_interval_ms,
                   pay->settings.sweep_interval_ms);
    pay->sweep_started = true;
    /* Commands should come back soon when this process dies holding them,
     * and a step the provider is busy with (AG_EBUSY) is retried shortly. */
    struct ag_events_sub_options opts = { .ack_deadline_ms = 5000, .retry_delay_ms = 1000 };
    return ag_events_subscribe_ex(pay->events, "payments", TOPICS, AG_ARRAY_SIZE(TOPICS), &opts,
                                  pay_events_handle, pay);
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct pay *pay = udata;
    pay->stopping = true;
    if (pay->sweep_started)
        uv_timer_stop(&pay->sweep);
    /* Answer what waits for the provider now (timeout), while the outbox
     * and the HTTP server still take it. */
    pay_auth_abandon_all(pay);
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct pay *pay = udata;
    pay_auth_abandon_all(pay);
    if (pay->sweep_started) {
        uv_close((uv_handle_t *)&pay->sweep, NULL);
        pay->sweep_started = false;
    }
    if (pay->provider != NULL) {
        pay->provider->ops->free(pay->provider);
        pay->provider = NULL;
    }
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct pay pay = { 0 };
    struct ag_service_config cfg = {
        .name = "payments",
        .version = "0.1.0",
        .default_port = AG_PORT_PAYMENTS,
        .migrations = payments_migrations,
        .nmigrations = payments_nmigrations,
        .keys = PAY_KEYS,
        .nkeys = AG_ARRAY_SIZE(PAY_KEYS),
        .settings = &pay.settings,
        .on_start = on_start,
        .on_stopping = on_stopping,
        .on_stop = on_stop,
        .events = true,
        .idempotency = true,
        .udata = &pay,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, pay_routes, pay_nroutes, &pay);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
