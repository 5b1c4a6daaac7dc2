/* SPDX-License-Identifier: MIT */
/* Test daemon for chassis/tests/events/events.test.mjs: a small service on the
 * chassis service layer that produces events through the outbox (POST
 * /produce) and, with TESTD_CONSUME=1, consumes them through the inbox into
 * a table whose counts expose double effects. Crash switches (_exit between
 * commit and relay, between a consumer's commit and its ack) let the tests
 * kill it at the worst moments.
 *
 * Environment: AGORA_BUS_URL (bus base URL), TESTD_CONSUME=1,
 * TESTD_CRASH_AFTER_COMMIT=1, TESTD_CRASH_BEFORE_ACK=1, TESTD_FAIL_FIRST=1
 * (the first delivery of each event fails), TESTD_FAIL_ODD=1 (the first
 * delivery of each event with an odd data.n writes its row, then fails),
 * TESTD_NO_KICK=1 (leave the
 * relay to its poll), TESTD_RELAY_POLL_MS, TESTD_ACK_DEADLINE_MS, TESTD_FAIL_ALL=1
 * (every delivery of an event with data.n == 0 fails), TESTD_SUBSCRIPTION
 * (default testd_events.consumer: the bus lets a service use only
 * subscriptions named after it), TESTD_MAX_ATTEMPTS. AGORA_BUS_URL
 * may be an amqp:// URL (the RabbitMQ backend). */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/events.h"
#include "agora/http_client.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/service.h"
#include "agora/str.h"
#include "agora/uuid.h"

#define MAX_PRODUCE   1000  /* events per /produce */
#define MAX_FAIL_SEEN 10000 /* event ids remembered by TESTD_FAIL_FIRST */
#define FLUSH_MS      5000  /* outbox flush window at stop */

struct testd_settings {
    char *bus_url; /* AGORA_BUS_URL */
};

struct testd {
    struct testd_settings settings;
    struct ag_service *svc;
    struct ag_store *store;
    struct ag_http_client *client;
    struct ag_events *ev;
    bool consume;            /* TESTD_CONSUME */
    bool crash_after_commit; /* TESTD_CRASH_AFTER_COMMIT */
    bool crash_before_ack;   /* TESTD_CRASH_BEFORE_ACK */
    bool fail_first;         /* TESTD_FAIL_FIRST */
    bool fail_odd;           /* TESTD_FAIL_ODD */
    bool fail_all;           /* TESTD_FAIL_ALL */
    int64_t after_commit;    /* ag_events_after_commit callbacks run */
    bool no_kick;            /* TESTD_NO_KICK */
    char **seen;             /* TESTD_FAIL_FIRST: ids that failed once */
    size_t nseen;
};

static struct testd g_td;

static const struct ag_config_key TESTD_KEYS[] = {
    { "AGORA_BUS_URL", AG_CONFIG_STRING, "http://127.0.0.1:8400",
      offsetof(struct testd_settings, bus_url), 0, 0, NULL, "base URL of the bus" },
};

static const struct ag_migration MIGRATIONS[] = {
    { 1, "0001_init",
      "CREATE TABLE effects (id TEXT PRIMARY KEY, n INTEGER NOT NULL);"
      "CREATE TABLE consumed (event_id TEXT PRIMARY KEY, count INTEGER NOT NULL,"
      " event TEXT NOT NULL);",
      NULL },
};

static bool
env_flag(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && strcmp(v, "1") == 0;
}

static uint64_t
env_ms(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    uint64_t out;
    if (v == NULL || ag_str_to_u64(ag_str_from_cstr(v), UINT64_MAX, &out) != 0)
        return def;
    return out;
}

/* ---- Producing ---- */

static void
produce(struct ag_http_req *req, void *udata)
{
    struct testd *td = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t count = 0;
    ag_valid_int(&v, body, NULL, "count", AG_VALID_REQUIRED, 1, MAX_PRODUCE, &count);
    const char *subject =
        ag_valid_string(&v, body, NULL, "subject", AG_VALID_REQUIRED, 1, AG_EVENTS_MAX_SUBJECT);
    const char *tp = ag_valid_string(&v, body, NULL, "traceparent", AG_VALID_OPTIONAL, 1, 64);
    bool fail = false;
    ag_valid_bool(&v, body, NULL, "fail", AG_VALID_OPTIONAL, &fail);
    bool distinct = false; /* subject "<subject>-<n>" for event n */
    ag_valid_bool(&v, body, NULL, "distinct_subjects", AG_VALID_OPTIONAL, &distinct);
    if (!ag_valid_ok(&v)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);

    int rc = ag_store_begin(td->store);
    if (rc != 0) {
        ag_send_error(req, rc, "cannot begin");
        return;
    }
    json_t *ids = json_array();
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        struct ag_stmt *st =
            ag_store_prepare(td->store, "INSERT INTO effects (id, n) VALUES ($1, $2)", &rc);
        if (st == NULL)
            break;
        char eid[AG_UUID_STRLEN + 1];
        ag_uuid7(eid);
        rc = ag_stmt_bind_cstr(st, 1, eid);
        if (rc == 0)
            rc = ag_stmt_bind_i64(st, 2, i);
        if (rc == 0)
            rc = ag_stmt_step(st);
        ag_stmt_reset(st);
        if (rc < 0)
            break;
        json_t *data = json_pack("{s:I}", "n", (json_int_t)i);
        char id[AG_UUID_STRLEN + 1];
        char subj[AG_EVENTS_MAX_SUBJECT + 32];
        snprintf(subj, sizeof(subj), distinct ? "%s-%lld" : "%s", subject, (long long)i);
        rc = ag_events_publish(td->ev, "test.produced", subj, data, tp, id);
        json_decref(data);
        if (rc == 0)
            json_array_append_new(ids, json_string(id));
    }
    if (rc != 0 || fail) {
        ag_store_rollback(td->store);
        if (rc != 0) {
            json_decref(ids);
            ag_send_error(req, rc, "cannot produce");
            return;
        }
        ag_send_json(req, 200, json_pack("{s:o, s:b}", "ids", ids, "committed", 0));
        return;
    }
    rc = ag_store_commit(td->store);
    if (rc != 0) {
        ag_store_rollback(td->store);
        json_decref(ids);
        ag_send_error(req, rc, "cannot commit");
        return;
    }
    if (td->crash_after_commit) {
        AG_LOGW("testd", "TESTD_CRASH_AFTER_COMMIT: exiting between commit and relay");
        _exit(9);
    }
    if (!td->no_kick)
        ag_events_kick(td->ev);
    ag_send_json(req, 200, json_pack("{s:o, s:b}", "ids", ids, "committed", 1));
}

static void
get_outbox(struct ag_http_req *req, void *udata)
{
    struct testd *td = udata;
    int rc;
    struct ag_stmt *st = ag_store_prepare(td->store,
                                          "SELECT state, COUNT(*), MAX(attempts) FROM agora_outbox"
                                          " GROUP BY state",
                                          &rc);
    if (st == NULL) {
        ag_send_error(req, rc, "cannot read the outbox");
        return;
    }
    int64_t pending = 0;
    int64_t published = 0;
    int64_t failed = 0;
    int64_t max_attempts = 0;
    while ((rc = ag_stmt_step(st)) == AG_STMT_ROW) {
        const char *state = ag_stmt_col_text(st, 0);
        int64_t n = ag_stmt_col_i64(st, 1);
        if (strcmp(state, "published") == 0)
            published += n;
        else if (strcmp(state, "failed") == 0)
            failed += n;
        else
            pending += n;
        max_attempts = AG_MAX(max_attempts, ag_stmt_col_i64(st, 2));
    }
    ag_stmt_reset(st);
    if (rc < 0) {
        ag_send_error(req, rc, "cannot read the outbox");
        return;
    }
    ag_send_json(req, 200,
                 json_pack("{s:I, s:I, s:I, s:I, s:I}", "pending", (json_int_t)pending, "published",
                           (json_int_t)published, "failed", (json_int_t)failed, "max_attempts",
                           (json_int_t)max_attempts, "backlog",
                           (json_int_t)ag_events_outbox_backlog(td->ev)));
}

/* ---- Consuming ---- */

static void
on_after_commit(const void *arg, void *udata)
{
    AG_UNUSED(arg);
    struct testd *td = udata;
    td->after_commit++;
}

static int
on_event(struct ag_events *ev, struct ag_store *store, const json_t *event, void *udata)
{
    struct testd *td = udata;
    /* Counted only if this delivery commits (see /consumed). */
    if (ag_events_after_commit(ev, on_after_commit, NULL, 0, td) != 0)
        return AG_EINVAL;
    const char *id = json_string_value(json_object_get(event, "id"));
    if (id == NULL)
        return AG_EINVAL;
    if (td->fail_all &&
        json_integer_value(json_object_get(json_object_get(event, "data"), "n")) == 0)
        return AG_EUNAVAIL;
    if (td->fail_first) {
        bool seen = false;
        for (size_t i = 0; i < td->nseen && !seen; i++)
            seen = strcmp(td->seen[i], id) == 0;
        if (!seen && td->nseen < MAX_FAIL_SEEN) {
            td->seen = ag_realloc(td->seen, (td->nseen + 1) * sizeof(*td->seen));
            td->seen[td->nseen++] = ag_strdup(id);
            return AG_EUNAVAIL;
        }
    }
    char *text = json_dumps(event, JSON_COMPACT);
    int rc;
    struct ag_stmt *st = ag_store_prepare(store,
                                          "INSERT INTO consumed (event_id, count, event)"
                                          " VALUES ($1, 1, $2) ON CONFLICT (event_id)"
                                          " DO UPDATE SET count = count + 1",
                                          &rc);
    if (st != NULL) {
        rc = ag_stmt_bind_cstr(st, 1, id);
        if (rc == 0)
            rc = ag_stmt_bind_cstr(st, 2, text);
        if (rc == 0)
            rc = ag_stmt_step(st);
        ag_stmt_reset(st);
    }
    ag_free(text);
    if (rc >= 0 && td->fail_odd) {
        /* The row is written, then the first delivery of every odd event
         * fails: the savepoint must take the row back with it. */
        json_int_t n = json_integer_value(json_object_get(json_object_get(event, "data"), "n"));
        bool seen = false;
        for (size_t i = 0; i < td->nseen && !seen; i++)
            seen = strcmp(td->seen[i], id) == 0;
        if (n % 2 == 1 && !seen && td->nseen < MAX_FAIL_SEEN) {
            td->seen = ag_realloc(td->seen, (td->nseen + 1) * sizeof(*td->seen));
            td->seen[td->nseen++] = ag_strdup(id);
            return AG_EUNAVAIL;
        }
    }
    return rc < 0 ? rc : 0;
}

static void
on_committed(struct ag_events *ev, const char *subscription, const json_t *event, void *udata)
{
    AG_UNUSED(ev);
    AG_UNUSED(subscription);
    AG_UNUSED(event);
    struct testd *td = udata;
    if (td->crash_before_ack) {
        AG_LOGW("testd", "TESTD_CRASH_BEFORE_ACK: exiting between commit and ack");
        _exit(9);
    }
}

static void
get_consumed(struct ag_http_req *req, void *udata)
{
    struct testd *td = udata;
    int rc;
    struct ag_stmt *st = ag_store_prepare(
        td->store, "SELECT event_id, count, event FROM consumed ORDER BY rowid", &rc);
    if (st == NULL) {
        ag_send_error(req, rc, "cannot read");
        return;
    }
    json_t *rows = json_array();
    while ((rc = ag_stmt_step(st)) == AG_STMT_ROW) {
        json_t *event = ag_json_parse(ag_stmt_col_text(st, 2), ag_stmt_col_len(st, 2), NULL, 0);
        json_array_append_new(rows, json_pack("{s:s, s:I, s:o*}", "event_id",
                                              ag_stmt_col_text(st, 0), "count",
                                              (json_int_t)ag_stmt_col_i64(st, 1), "event", event));
    }
    ag_stmt_reset(st);
    if (rc < 0) {
        json_decref(rows);
        ag_send_error(req, rc, "cannot read");
        return;
    }
    ag_send_json(
        req, 200,
        json_pack("{s:o, s:I}", "rows", rows, "after_commit", (json_int_t)td->after_commit));
}

static const struct ag_route ROUTES[] = {
    { "POST", "/produce", produce, AG_ROLE_PUBLIC },
    { "GET", "/outbox", get_outbox, AG_ROLE_PUBLIC },
    { "GET", "/consumed", get_consumed, AG_ROLE_PUBLIC },
};

/* ---- Lifecycle ---- */

static int
on_start(struct ag_service *svc, void *udata)
{
    struct testd *td = udata;
    td->svc = svc;
    td->store = ag_service_store(svc);
    td->consume = env_flag("TESTD_CONSUME");
    td->crash_after_commit = env_flag("TESTD_CRASH_AFTER_COMMIT");
    td->crash_before_ack = env_flag("TESTD_CRASH_BEFORE_ACK");
    td->fail_first = env_flag("TESTD_FAIL_FIRST");
    td->fail_odd = env_flag("TESTD_FAIL_ODD");
    td->no_kick = env_flag("TESTD_NO_KICK");
    td->fail_all = env_flag("TESTD_FAIL_ALL");
    struct ag_http_client_config ccfg = { .breaker_open_ms = 500 };
    int rc = ag_http_client_new(ag_service_loop(svc), &ccfg, &td->client);
    if (rc != 0)
        return rc;
    ag_http_client_metrics(td->client, ag_service_metrics(svc));
    struct ag_events_config ecfg = {
        .source = "/agora/testd",
        .bus_url = td->settings.bus_url,
        .identity = ag_service_self(svc),
        .relay_poll_ms = env_ms("TESTD_RELAY_POLL_MS", 500),
        .retry_base_ms = 50,
        .retry_max_ms = 1000,
        .pull_wait_ms = 5000,
    };
    rc = ag_events_new(ag_service_loop(svc), td->store, td->client, &ecfg, &td->ev);
    if (rc != 0)
        return rc;
    ag_events_metrics(td->ev, ag_service_metrics(svc));
    /* Only when needed: an observer makes the runtime commit each delivery
     * on its own, and the batch test wants a batch in one commit. */
    if (td->crash_before_ack)
        ag_events_on_commit(td->ev, on_committed, td);
    if (td->consume) {
        static const char *const topics[] = { "test.*" };
        struct ag_events_sub_options opts = {
            .ack_deadline_ms = env_ms("TESTD_ACK_DEADLINE_MS", 0),
            .max_attempts = (uint32_t)env_ms("TESTD_MAX_ATTEMPTS", 0),
        };
        const char *sub = getenv("TESTD_SUBSCRIPTION");
        rc = ag_events_subscribe_ex(td->ev, sub != NULL ? sub : "testd_events.consumer", topics, 1,
                                    &opts, on_event, td);
        if (rc != 0)
            return rc;
    }
    ag_events_start(td->ev);
    return 0;
}

static int
ready_check(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct testd *td = udata;
    return td->ev != NULL ? ag_events_ready(td->ev) : AG_EUNAVAIL;
}

static void
on_client_closed(void *udata)
{
    struct testd *td = udata;
    td->client = NULL;
}

static void
on_events_stopped(void *udata)
{
    struct testd *td = udata;
    td->ev = NULL;
    AG_LOGI("testd", "events stopped");
    if (td->client != NULL)
        ag_http_client_close(td->client, on_client_closed, td);
}

static void
on_stop(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    struct testd *td = udata;
    if (td->ev != NULL)
        ag_events_stop(td->ev, FLUSH_MS, on_events_stopped, td);
    else if (td->client != NULL)
        ag_http_client_close(td->client, on_client_closed, td);
}

int
main(int argc, char **argv)
{
    struct ag_service_config cfg = {
        .name = "testd_events",
        .version = "0.1.0",
        .default_port = 0,
        .migrations = MIGRATIONS,
        .nmigrations = AG_ARRAY_SIZE(MIGRATIONS),
        .keys = TESTD_KEYS,
        .nkeys = AG_ARRAY_SIZE(TESTD_KEYS),
        .settings = &g_td.settings,
        .on_start = on_start,
        .on_stop = on_stop,
        .ready_check = ready_check,
        .udata = &g_td,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, ROUTES, AG_ARRAY_SIZE(ROUTES), &g_td);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    for (size_t i = 0; i < g_td.nseen; i++)
        ag_free(g_td.seen[i]);
    ag_free(g_td.seen);
    return status;
}
