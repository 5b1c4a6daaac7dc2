/* SPDX-License-Identifier: MIT */
/* Analytics service: composition root. Wires the chassis (settings,
 * database and migrations, the events runtime with the "analytics"
 * subscription, port from agora/ports.h), the report routes and the
 * service's metrics. */
#include "agora/base.h"
#include "analytics.h"

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration analytics_migrations[];
extern const size_t analytics_nmigrations;

#define OFF(field) offsetof(struct an_settings, field)

static const struct ag_config_key AN_KEYS[] = {
    { "AGORA_ANALYTICS_REPORT_ROWS", AG_CONFIG_INT, "1000", OFF(report_rows), 1, 100000, NULL,
      "most items of one report (more: \"truncated\": true)" },
    { "AGORA_ANALYTICS_ACK_DEADLINE", AG_CONFIG_DURATION, "30s", OFF(ack_deadline_ms), 1000,
      3600000, NULL, "bus lease of one delivery of an event before it is redelivered" },
};

#undef OFF

static void
register_metrics(struct an *an, struct ag_metrics *reg)
{
    static const char *const OUTCOME[] = { "outcome" };
    an->m_events = ag_metrics_counter(reg, "analytics_events_total",
                                      "Events handled by outcome: applied (logged and projected), "
                                      "logged (a type no report uses), duplicate (already in the "
                                      "event log), invalid (skipped)",
                                      OUTCOME, 1);
    an->m_rebuilds = ag_metrics_counter(reg, "analytics_rebuilds_total",
                                        "Projection rebuilds from the event log", NULL, 0);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct an *an = udata;
    an->svc = svc;
    an->store = ag_service_store(svc);
    an->events = ag_service_events(svc);
    if (an->events == NULL)
        AG_BUG("the service is configured with events");
    register_metrics(an, ag_service_metrics(svc));
    struct ag_events_sub_options opts = { .ack_deadline_ms = an->settings.ack_deadline_ms };
    int rc = ag_events_subscribe_ex(an->events, AN_SUBSCRIPTION, an_topics, an_ntopics, &opts,
                                    an_events_handle, an);
    if (rc != 0)
        AG_LOGE("events", "cannot subscribe '%s': %s", AN_SUBSCRIPTION, ag_strerror(rc));
    return rc;
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct an an = { .magic = AN_MAGIC };
    struct ag_service_config cfg = {
        .name = "analytics",
        .version = "0.1.0",
        .default_port = AG_PORT_ANALYTICS,
        .migrations = analytics_migrations,
        .nmigrations = analytics_nmigrations,
        .keys = AN_KEYS,
        .nkeys = AG_ARRAY_SIZE(AN_KEYS),
        .settings = &an.settings,
        .on_start = on_start,
        .events = true,
        .udata = &an,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, an_routes, an_nroutes, &an);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    return status;
}
