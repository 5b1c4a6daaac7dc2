/* SPDX-License-Identifier: MIT */
/* Bus: composition root of the embedded message broker. Settings, the
 * in-memory state (topics, subscriptions, deliveries loaded from SQLite at
 * start and when a subscription spilled), metrics, the retention and dedup
 * sweeps, and the shutdown sequence (held pulls answered at once, queued
 * publishes committed before exit). */
#include "agora/base.h"
#include "bus.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration bus_migrations[];
extern const size_t bus_nmigrations;

#define DEFAULT_MAX_BODY "8MiB"
#define SWEEP_BUSY_MS    100  /* next sweep step while a pass is unfinished */
#define SWEEP_CHUNKS     8    /* seq ranges examined per sweep step */
#define SWEEP_CHUNK_SEQS 4096 /* seqs per range */
#define SWEEP_DEDUP_ROWS 5000 /* dedup rows examined per sweep step */

static struct bus g_bus;

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
};
#undef OFF

/* The bus accepts publish bodies of up to 8 MiB: make that the default of
 * the chassis setting AGORA_HTTP_MAX_BODY unless the environment or the
 * configuration file sets it. */
static void
default_max_body(void)
{
    struct {
        char *value;
    } probe = { NULL };
    static const struct ag_config_key key[] = {
        { "AGORA_HTTP_MAX_BODY", AG_CONFIG_STRING, "", 0, 0, 0, NULL, "probe" },
    };
    if (ag_config_load(key, 1, &probe, NULL, 0) == 0 && probe.value != NULL &&
        probe.value[0] == '\0')
        setenv("AGORA_HTTP_MAX_BODY", DEFAULT_MAX_BODY, 1);
    ag_config_release(key, 1, &probe);
}

/* ---- State: topics, subscriptions, deliveries loaded from disk ---- */

static bool
sub_eq(const struct bus_hnode *n, const void *key)
{
    return strcmp(BUS_CONTAINER(n, struct bus_sub, hnode)->name, key) == 0;
}

struct bus_sub *
bus_sub_find(struct bus *bus, const char *name)
{
    struct bus_hnode *n =
        bus_htab_find(&bus->subs, bus_hash_bytes(name, strlen(name)), sub_eq, name);
    return n ? BUS_CONTAINER(n, struct bus_sub, hnode) : NULL;
}

static bool
topic_eq(const struct bus_hnode *n, const void *key)
{
    const struct bus_topic *t = BUS_CONTAINER(n, struct bus_topic, hnode);
    const struct ag_str *k = key;
    return t->len == k->len && memcmp(t->name, k->ptr, k->len) == 0;
}

struct bus_topic *
bus_topic_get(struct bus *bus, const char *name, size_t len, bool create)
{
    struct ag_str key = ag_str_make(name, len);
    uint64_t h = bus_hash_bytes(name, len);
    struct bus_hnode *n = bus_htab_find(&bus->topics, h, topic_eq, &key);
    if (n != NULL)
        return BUS_CONTAINER(n, struct bus_topic, hnode);
    if (!create || len > BUS_NAME_MAX)
        return NULL;
    struct bus_topic *t = ag_calloc(1, sizeof(*t));
    memcpy(t->name, name, len);
    t->len = len;
    bus_htab_insert(&bus->topics, &t->hnode, h);
    bus->ntopics++;
    return t;
}

void
bus_topic_match(struct bus *bus, struct bus_topic *t)
{
    if (t->subs_gen == bus->subs_gen)
        return;
    ag_free(t->subs);
    t->subs = NULL;
    t->nsubs = 0;
    size_t pos = 0;
    for (struct bus_hnode *n = bus_htab_next(&bus->subs, &pos, NULL); n != NULL;
         n = bus_htab_next(&bus->subs, &pos, n)) {
        struct bus_sub *sub = BUS_CONTAINER(n, struct bus_sub, hnode);
        for (size_t i = 0; i < sub->npatterns; i++) {
            if (bus_pattern_match(sub->patterns[i], t->name, t->len)) {
                t->subs = ag_realloc(t->subs, (t->nsubs + 1) * sizeof(*t->subs));
                t->subs[t->nsubs++] = sub;
                break;
            }
        }
    }
    t->subs_gen = bus->subs_gen;
}

/* ---- Subscriptions ---- */

void
bus_sub_configure(struct bus *bus, struct bus_sub *sub, const struct bus_sub_config *cfg)
{
    for (size_t i = 0; i < sub->npatterns; i++)
        ag_free(sub->patterns[i]);
    ag_free(sub->patterns);
    sub->patterns = ag_calloc(cfg->npatterns, sizeof(*sub->patterns));
    for (size_t i = 0; i < cfg->npatterns; i++)
        sub->patterns[i] = ag_strdup(cfg->patterns[i]);
    sub->npatterns = cfg->npatterns;
    sub->ack_deadline_ms = cfg->ack_deadline_ms;
    sub->max_attempts = cfg->max_attempts;
    sub->retry_delay_ms = cfg->retry_delay_ms;
    bus->subs_gen++;
}

struct bus_sub *
bus_sub_new(struct bus *bus, int64_t id, const char *name, const struct bus_sub_config *cfg,
            const char *created_at)
{
    struct bus_sub *sub = ag_calloc(1, sizeof(*sub));
    sub->id = id;
    snprintf(sub->name, sizeof(sub->name), "%s", name);
    snprintf(sub->created_at, sizeof(sub->created_at), "%s", created_at);
    bus_sub_configure(bus, sub, cfg);
    bus_q_init(&sub->q, &bus->heap, sub);
    sub->loaded_to = bus->durable_seq;
    bus_htab_insert(&bus->subs, &sub->hnode, bus_hash_bytes(sub->name, strlen(sub->name)));
    bus->nsubs++;
    if (id >= bus->next_sub_id)
        bus->next_sub_id = id + 1;
    return sub;
}

/* ---- Loading deliveries from disk ---- */

struct refill_ctx {
    struct bus_sub *sub;
    uint64_t now;
    int64_t now_unix;
    int64_t last;
};

static void
refill_row(int64_t seq, int32_t attempts, int64_t not_before_ms, const char *subject, size_t len,
           void *udata)
{
    struct refill_ctx *c = udata;
    uint64_t due = 0;
    if (not_before_ms > c->now_unix)
        due = c->now + (uint64_t)(not_before_ms - c->now_unix);
    bus_q_add(&c->sub->q, seq, subject, len, attempts, due, c->now);
    c->last = seq;
}

int
bus_sub_refill(struct bus *bus, struct bus_sub *sub)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    int64_t window = bus->settings.window;
    if (!sub->spilled || (int64_t)sub->q.n >= window / 2)
        return 0;
    struct refill_ctx c = {
        .sub = sub,
        .now = ag_time_mono_ms(),
        .now_unix = ag_time_unix_ms(),
        .last = sub->loaded_to,
    };
    int64_t want = window - (int64_t)sub->q.n;
    int64_t got = 0;
    /* Only what is durable: the effects of batches still waiting for their
     * fsync add their deliveries themselves. */
    int rc = bus_store_pending_load(bus->store, sub->id, sub->loaded_to, bus->durable_seq, want,
                                    refill_row, &c, &got);
    if (rc != 0) {
        AG_LOGE("engine", "cannot load deliveries of '%s': %s", sub->name,
                ag_store_errmsg(bus->store));
        return rc;
    }
    if (got < want) {
        sub->spilled = false;
        sub->loaded_to = bus->durable_seq;
    } else {
        sub->loaded_to = c.last;
    }
    return 0;
}

/* ---- Start-up ---- */

static int
load_topic(const char *name, int64_t messages, int64_t last_seq, void *udata)
{
    struct bus *bus = udata;
    struct bus_topic *t = bus_topic_get(bus, name, strlen(name), true);
    if (t == NULL) {
        AG_LOGE("start", "invalid topic name '%s' in the database", name);
        return AG_EINVAL;
    }
    t->messages = messages;
    t->last_seq = last_seq;
    bus->last_seq = AG_MAX(bus->last_seq, last_seq);
    return 0;
}

static int
load_sub(int64_t id, const char *name, const char *topics_json, int64_t ack_deadline_ms,
         int64_t max_attempts, int64_t retry_delay_ms, const char *created_at, void *udata)
{
    struct bus *bus = udata;
    json_error_t e;
    json_t *arr = json_loads(topics_json, 0, &e);
    struct bus_sub_config cfg = {
        .ack_deadline_ms = ack_deadline_ms,
        .max_attempts = max_attempts,
        .retry_delay_ms = retry_delay_ms,
    };
    size_t i;
    json_t *p;
    json_array_foreach(arr, i, p)
    {
        if (bus_pattern_is_valid(json_string_value(p)) && cfg.npatterns < BUS_PATTERNS_MAX)
            cfg.patterns[cfg.npatterns++] = json_string_value(p);
    }
    if (!bus_name_is_valid(name, strlen(name)) || cfg.npatterns == 0) {
        AG_LOGE("start", "subscription '%s' in the database is invalid", name);
        json_decref(arr);
        return AG_EINVAL;
    }
    struct bus_sub *sub = bus_sub_new(bus, id, name, &cfg, created_at);
    json_decref(arr);
    int rc = bus_store_sub_counts(bus->store, id, &sub->pending, &sub->dead);
    if (rc != 0)
        return rc;
    /* Everything pending is on disk: load the oldest window of it. */
    sub->spilled = true;
    sub->loaded_to = 0;
    return bus_sub_refill(bus, sub);
}

/* ---- Metrics ---- */

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct bus *bus = udata;
    int64_t now = ag_time_unix_ms();
    size_t pos = 0;
    for (struct bus_hnode *n = bus_htab_next(&bus->subs, &pos, NULL); n != NULL;
         n = bus_htab_next(&bus->subs, &pos, n)) {
        struct bus_sub *sub = BUS_CONTAINER(n, struct bus_sub, hnode);
        const char *labels[] = { sub->name };
        int64_t oldest = 0;
        if (sub->pending > 0 && bus_store_oldest_pending(bus->store, sub->id, &oldest) != 0)
            oldest = 0;
        ag_gauge_set(bus->m_backlog, labels, (double)sub->pending);
        ag_gauge_set(bus->m_dead, labels, (double)sub->dead);
        ag_gauge_set(bus->m_oldest, labels,
                     oldest > 0 ? (double)AG_MAX(0, now - oldest) / 1000.0 : 0.0);
    }
    ag_gauge_set(bus->m_waiting, NULL, (double)bus->nwaiting);
    ag_gauge_set(bus->m_stored, NULL, (double)bus->stored);
}

static void
register_metrics(struct bus *bus, struct ag_metrics *reg)
{
    static const char *const topic_label[] = { "topic" };
    static const char *const sub_label[] = { "subscription" };
    static const double batch_buckets[] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000 };
    bus->m_published =
        ag_metrics_counter(reg, "bus_messages_published_total",
                           "Messages committed to the log, by topic", topic_label, 1);
    bus->m_delivered =
        ag_metrics_counter(reg, "bus_messages_delivered_total",
                           "Messages handed out by pulls, redeliveries included", sub_label, 1);
    bus->m_acked = ag_metrics_counter(reg, "bus_messages_acked_total",
                                      "Deliveries settled by an ack", sub_label, 1);
    bus->m_redelivered = ag_metrics_counter(reg, "bus_redeliveries_total",
                                            "Hand-outs of a message after its first", sub_label, 1);
    bus->m_dead = ag_metrics_gauge(reg, "bus_dead_letters", "Messages in the dead-letter queue",
                                   sub_label, 1);
    bus->m_backlog = ag_metrics_gauge(
        reg, "bus_backlog", "Pending messages: ready, delayed and in flight", sub_label, 1);
    bus->m_oldest = ag_metrics_gauge(reg, "bus_oldest_unacked_age_seconds",
                                     "Age of the oldest pending message", sub_label, 1);
    bus->m_batch =
        ag_metrics_histogram(reg, "bus_publish_batch_size", "Messages written by one group commit",
                             NULL, 0, batch_buckets, AG_ARRAY_SIZE(batch_buckets));
    bus->m_waiting =
        ag_metrics_gauge(reg, "bus_pull_waiting", "Pulls held waiting for messages", NULL, 0);
    bus->m_stored =
        ag_metrics_gauge(reg, "bus_messages_stored",
                         "Messages in the log (retention deletes settled ones)", NULL, 0);
    ag_metrics_on_collect(reg, collect, bus);
}

/* ---- Sweeps ---- */

/* One bounded step of the dedup and retention sweeps, in one transaction.
 * Returns true when more work is left for an early next step. */
static bool
sweep_step(struct bus *bus)
{
    int64_t now = ag_time_unix_ms();
    int64_t dedup_gone = 0;
    int64_t msgs_gone = 0;
    bool more = false;
    int64_t from = bus->sweep_from;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_sweep_dedup(bus->store, now - (int64_t)bus->settings.dedup_window_ms,
                                   SWEEP_DEDUP_ROWS, &dedup_gone);
    int64_t cut = now - (int64_t)bus->settings.retention_ms;
    bool pass_done = false;
    for (int i = 0; i < SWEEP_CHUNKS && rc == 0; i++) {
        int64_t first = 0;
        rc = bus_store_first_old_message(bus->store, from, cut, &first);
        if (rc != 0)
            break;
        if (first == 0) {
            pass_done = true;
            break;
        }
        int64_t gone = 0;
        rc = bus_store_sweep_messages(bus->store, first, first + SWEEP_CHUNK_SEQS, cut, &gone);
        msgs_gone += gone;
        from = first + SWEEP_CHUNK_SEQS;
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        AG_LOGE("sweep", "sweep failed: %s", ag_store_errmsg(bus->store));
        ag_store_rollback(bus->store);
        bus->sweep_from = 0;
        return false;
    }
    bus->stored -= msgs_gone;
    bus->sweep_from = pass_done ? 0 : from;
    more = !pass_done || dedup_gone == SWEEP_DEDUP_ROWS;
    if (dedup_gone > 0 || msgs_gone > 0)
        AG_LOGD("sweep", "deleted %" PRId64 " messages and %" PRId64 " dedup ids", msgs_gone,
                dedup_gone);
    return more;
}

static void
on_sweep(uv_timer_t *t)
{
    struct bus *bus = t->data;
    bool more = sweep_step(bus);
    uv_timer_start(t, on_sweep, more ? SWEEP_BUSY_MS : bus->settings.sweep_interval_ms, 0);
}

/* ---- Durability ---- */

/* With durability full, commit without fsync (synchronous=NORMAL, which
 * still syncs around checkpoints, so the database stays safe) and fdatasync
 * the WAL on the thread pool before answering (see api.c, group commit).
 * fdatasync flushes the file, whichever descriptor wrote it. */
static int
setup_wal_sync(struct bus *bus)
{
    const struct ag_service_settings *ss = ag_service_settings(bus->svc);
    if (strcmp(ss->durability, "full") != 0)
        return 0;
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s-wal", ss->db_path);
    if (n > 0 && (size_t)n < sizeof(path))
        bus->wal_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (bus->wal_fd == -1) {
        /* No WAL file to sync (e.g. an in-memory database): SQLite syncs. */
        AG_LOGW("start", "cannot open '%s' (%s); commits fsync on the loop", path, strerror(errno));
        return 0;
    }
    int rc = ag_store_exec(bus->store, "PRAGMA synchronous=NORMAL");
    if (rc != 0) {
        AG_LOGE("start", "cannot set synchronous=NORMAL: %s", ag_store_errmsg(bus->store));
        return rc;
    }
    bus->sync_wal = true;
    return 0;
}

/* ---- Lifecycle ---- */

static int
on_start(struct ag_service *svc, void *udata)
{
    struct bus *bus = udata;
    bus->magic = BUS_MAGIC;
    bus->svc = svc;
    bus->store = ag_service_store(svc);
    bus->loop = ag_service_loop(svc);
    bus_htab_init(&bus->topics);
    bus_htab_init(&bus->subs);
    bus_heap_init(&bus->heap);
    bus->subs_gen = 1;
    bus->next_sub_id = 1;
    bus->wal_fd = -1;
    /* Lease tokens grow across restarts, so an ack id from before a restart
     * never matches a lease made after it. */
    bus->token = (uint64_t)ag_time_unix_ms() << 16;
    register_metrics(bus, ag_service_metrics(svc));
    int rc = bus_store_topics_load(bus->store, load_topic, bus);
    bus->durable_seq = bus->last_seq;
    if (rc == 0)
        rc = bus_store_message_count(bus->store, &bus->stored);
    if (rc == 0)
        rc = bus_store_subs_load(bus->store, load_sub, bus);
    if (rc != 0) {
        AG_LOGE("start", "cannot load the bus state: %s", ag_store_errmsg(bus->store));
        return rc;
    }
    rc = setup_wal_sync(bus);
    if (rc != 0)
        return rc;
    bus_engine_start(bus);
    uv_timer_init(bus->loop, &bus->sweep_timer);
    bus->sweep_timer.data = bus;
    uv_timer_start(&bus->sweep_timer, on_sweep, bus->settings.sweep_interval_ms, 0);
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
    if (bus->sweep_timer.data != NULL) {
        uv_timer_stop(&bus->sweep_timer);
        uv_close((uv_handle_t *)&bus->sweep_timer, NULL);
        bus->sweep_timer.data = NULL;
    }
}

/* Free the in-memory state after the loop ended. */
static void
bus_free_state(struct bus *bus)
{
    if (bus->magic != BUS_MAGIC)
        return;
    size_t pos = 0;
    struct bus_hnode *n = bus_htab_next(&bus->subs, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&bus->subs, &pos, n);
        bus_sub_free(bus, BUS_CONTAINER(n, struct bus_sub, hnode), 200);
        n = next;
    }
    pos = 0;
    n = bus_htab_next(&bus->topics, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&bus->topics, &pos, n);
        struct bus_topic *t = BUS_CONTAINER(n, struct bus_topic, hnode);
        ag_free(t->subs);
        ag_free(t);
        n = next;
    }
    bus_htab_release(&bus->subs);
    bus_htab_release(&bus->topics);
    bus_heap_release(&bus->heap);
    if (bus->wal_fd != -1)
        close(bus->wal_fd);
    bus->wal_fd = -1;
    bus->magic = 0;
}

int
main(int argc, char **argv)
{
    default_max_body();
    struct ag_service_config cfg = {
        .name = "bus",
        .version = "0.1.0",
        .default_port = AG_PORT_BUS,
        .migrations = bus_migrations,
        .nmigrations = bus_nmigrations,
        .keys = BUS_KEYS,
        .nkeys = AG_ARRAY_SIZE(BUS_KEYS),
        .settings = &g_bus.settings,
        .on_start = on_start,
        .on_stop = on_stop,
        .on_stopping = on_stopping,
        .udata = &g_bus,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, bus_routes, bus_nroutes, &g_bus);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    bus_free_state(&g_bus);
    ag_service_free(svc);
    return status;
}
