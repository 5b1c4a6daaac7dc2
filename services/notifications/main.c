/* SPDX-License-Identifier: MIT */
/* Notifications service: composition root. Wires the chassis, the route
 * table, the events runtime with the "notifications" subscription
 * (events.c), the SMTP sender (sender.c) when AGORA_SMTP_URL is set, and
 * the service's metrics. The chassis owns the events runtime (AGORA_BUS_URL,
 * /ready, events_* metrics, stop after the drain). */
#include "agora/base.h"
#include "notifications.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration notifications_migrations[];
extern const size_t notifications_nmigrations;

static struct notify g_notify = { .magic = NOTIFY_MAGIC };

#define OFF(field) offsetof(struct notify_settings, field)

static const struct ag_config_key NOTIFY_KEYS[] = {
    { "AGORA_SMTP_URL", AG_CONFIG_STRING, "", OFF(smtp_url), 0, 0, NULL,
      "smtp://host:port or smtps://host:port of the mail server (\"\": record only, no e-mail)" },
    { "AGORA_SMTP_FROM", AG_CONFIG_STRING, "Agora <shop@agora.local>", OFF(smtp_from), 0, 0, NULL,
      "sender mailbox: \"Name <address>\" or an address" },
    { "AGORA_SMTP_USER", AG_CONFIG_STRING, "", OFF(smtp_user), 0, 0, NULL,
      "SMTP AUTH user (\"\": no authentication)" },
    { "AGORA_SMTP_PASSWORD", AG_CONFIG_STRING, "", OFF(smtp_password), 0, 0, NULL,
      "SMTP AUTH password (never logged)" },
    { "AGORA_SMTP_STARTTLS", AG_CONFIG_BOOL, "false", OFF(smtp_starttls), 0, 0, NULL,
      "require STARTTLS on smtp:// URLs" },
    { "AGORA_SMTP_TIMEOUT", AG_CONFIG_DURATION, "10s", OFF(smtp_timeout_ms), 100, 300000, NULL,
      "deadline of one send, connection included" },
    { "AGORA_SMTP_CONCURRENCY", AG_CONFIG_INT, "4", OFF(smtp_concurrency), 1, 32, NULL,
      "sends at once (each holds a libuv thread-pool thread)" },
    { "AGORA_NOTIFY_MAX_ATTEMPTS", AG_CONFIG_INT, "8", OFF(max_attempts), 1, 1000, NULL,
      "delivery attempts before a notification is failed" },
    { "AGORA_NOTIFY_RETRY_BASE", AG_CONFIG_DURATION, "10s", OFF(retry_base_ms), 1, 86400000, NULL,
      "backoff after the first failed attempt, doubling after each next one" },
    { "AGORA_NOTIFY_RETRY_MAX", AG_CONFIG_DURATION, "30m", OFF(retry_max_ms), 1, 86400000, NULL,
      "longest backoff between attempts" },
    { "AGORA_NOTIFY_POLL_INTERVAL", AG_CONFIG_DURATION, "5s", OFF(poll_ms), 10, 3600000, NULL,
      "longest wait before looking for due deliveries again" },
    { "AGORA_NOTIFY_ACK_DEADLINE", AG_CONFIG_DURATION, "30s", OFF(ack_deadline_ms), 1000, 3600000,
      NULL, "bus lease of one delivery of an event before it is redelivered" },
};

/* ---- Metrics ---- */

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct notify *n = udata;
    int64_t pending;
    if (n->store != NULL && notify_store_count_pending(n->store, &pending) == 0)
        ag_gauge_set(n->m_pending, NULL, (double)pending);
}

static void
register_metrics(struct notify *n, struct ag_metrics *reg)
{
    static const char *const STATUS[] = { "status" };
    static const char *const OUTCOME[] = { "outcome" };
    static const double BUCKETS[] = { .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30 };
    n->m_deliveries =
        ag_metrics_counter(reg, "notify_deliveries_total",
                           "Notifications by delivery outcome: sent, retried (an attempt failed), "
                           "failed (for good), recorded (no e-mail)",
                           STATUS, 1);
    n->m_events = ag_metrics_counter(reg, "notify_events_total",
                                     "Events handled by outcome: notified, ignored (no template), "
                                     "unaddressable, invalid, duplicate",
                                     OUTCOME, 1);
    n->m_pending =
        ag_metrics_gauge(reg, "notify_pending", "Notifications waiting to be sent", NULL, 0);
    n->m_duration = ag_metrics_histogram(reg, "notify_send_duration_seconds",
                                         "Duration of one SMTP send attempt", NULL, 0, BUCKETS,
                                         AG_ARRAY_SIZE(BUCKETS));
    ag_metrics_on_collect(reg, collect, n);
}

/* ---- Lifecycle ---- */

/* Subscribe the consumer on the runtime the chassis made (DESIGN.md 3). */
static int
subscribe(struct notify *n, struct ag_service *svc)
{
    n->ev = ag_service_events(svc);
    if (n->ev == NULL)
        AG_BUG("the service is configured with events");
    struct ag_events_sub_options opts = { .ack_deadline_ms = n->settings.ack_deadline_ms };
    int rc = ag_events_subscribe_ex(n->ev, NOTIFY_SUBSCRIPTION, notify_topics, notify_ntopics,
                                    &opts, notify_events_handle, n);
    if (rc != 0) {
        AG_LOGE("events", "cannot subscribe '%s': %s", NOTIFY_SUBSCRIPTION, ag_strerror(rc));
        return rc;
    }
    return 0;
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct notify *n = udata;
    n->svc = svc;
    n->store = ag_service_store(svc);
    register_metrics(n, ag_service_metrics(svc));
    n->smtp_enabled = n->settings.smtp_url[0] != '\0';
    if (n->smtp_enabled) {
        if (notify_mailbox_parse(n->settings.smtp_from, n->from_name, sizeof(n->from_name),
                                 n->from_addr, sizeof(n->from_addr)) != 0) {
            AG_LOGE("config", "AGORA_SMTP_FROM: '%s' is not a mailbox (Name <address>)",
                    n->settings.smtp_from);
            return AG_ECONFIG;
        }
        if (strncmp(n->settings.smtp_url, "smtp://", 7) != 0 &&
            strncmp(n->settings.smtp_url, "smtps://", 8) != 0) {
            /* The URL may hold credentials: never print it. */
            AG_LOGE("config", "AGORA_SMTP_URL: must start with smtp:// or smtps://");
            return AG_ECONFIG;
        }
        int rc = notify_sender_new(ag_service_loop(svc), n, &n->sender);
        if (rc != 0)
            return rc;
    }
    int rc = subscribe(n, svc);
    if (rc != 0)
        return rc;
    AG_LOGI("notify", "e-mail %s", n->smtp_enabled ? "on" : "off: notifications are only recorded");
    return 0;
}

static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct notify *n = udata;
    if (n->stopping)
        return;
    n->stopping = true;
    /* The chassis stops the consumer after the drain; a commit until then
     * finds no sender to kick, and its row waits for the next start. */
    notify_sender_stop(n->sender);
    n->sender = NULL;
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    struct notify *n = udata;
    /* Also reached when start-up failed, before any on_stopping. */
    on_stopping(svc, udata);
    n->ev = NULL;
}

int
main(int argc, char **argv)
{
    struct ag_service_config cfg = {
        .name = "notifications",
        .version = "0.1.0",
        .default_port = AG_PORT_NOTIFICATIONS,
        .migrations = notifications_migrations,
        .nmigrations = notifications_nmigrations,
        .keys = NOTIFY_KEYS,
        .nkeys = AG_ARRAY_SIZE(NOTIFY_KEYS),
        .settings = &g_notify.settings,
        .on_start = on_start,
        .on_stopping = on_stopping,
        .on_stop = on_stop,
        .events = true,
        .udata = &g_notify,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, notify_routes, notify_nroutes, &g_notify);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    g_notify.store = NULL;
    ag_service_free(svc);
    notify_sender_global_cleanup();
    return status;
}
