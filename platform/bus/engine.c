/* SPDX-License-Identifier: MIT */
/* Bus engine: the in-memory state (topics, subscriptions, deliveries loaded
 * from SQLite at start and when a subscription spilled), the group commit
 * that makes every publish, ack and nack of one loop iteration durable in
 * one transaction, delivery to held pulls (long poll), the timer heap of
 * leases, delays and pull deadlines, the WAL fsync, and the engine's
 * metrics. api.c's handlers call it; it calls no handler. */
#include "agora/base.h"
#include "bus.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/log.h"

#define JSON_TYPE          "application/json"
#define EMPTY_PULL         "{\"messages\":[]}"
#define PULL_BYTES_MAX     (8u << 20) /* a pull answer stops growing past this */
#define PIPELINE_MIN_OPS   64         /* queued operations committed while an fsync runs */
#define LAST_ERROR_EXPIRED "ack deadline exceeded"
#define LAST_ERROR_NACKED  "nacked"

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
    ag_gauge_set(bus->m_wal, NULL, (double)ag_store_wal_frames(bus->store));
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
    static const char *const phase_label[] = { "phase" };
    bus->m_ckpt = ag_metrics_counter(
        reg, "bus_checkpoints_total",
        "WAL checkpoints: bulk and final passes on the thread pool, loop fall-backs", phase_label,
        1);
    bus->m_wal = ag_metrics_gauge(reg, "bus_wal_pages",
                                  "Pages in the WAL after the last commit (background "
                                  "checkpoints only; 0 otherwise)",
                                  NULL, 0);
    ag_metrics_on_collect(reg, collect, bus);
}

/* ---- Durability ---- */

/* With durability full, commit without fsync (synchronous=NORMAL, which
 * still syncs around checkpoints, so the database stays safe) and fdatasync
 * the WAL on the thread pool before answering (see below, group commit).
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

/* ---- Outbox ----
 * The engine never answers a request while it walks its own state: sending
 * can run the handler of a pipelined request at once (the connection reads
 * on), which may change that state (delete a subscription, say). Answers
 * are queued here and sent by bus_flush_responses() at the end of each entry
 * point (handler, check, timer), when nothing on the stack refers to it. */

enum resp_kind {
    RESP_BODY = 0,    /* 200 with 'body' (owned) */
    RESP_EMPTY_PULL,  /* 200 {"messages":[]} */
    RESP_GONE,        /* 404: the subscription was deleted while the pull waited */
    RESP_NO_SUB,      /* 404: no subscription 'detail' */
    RESP_UNAVAILABLE, /* 503: the commit failed */
};

struct bus_resp {
    struct bus_resp *next;
    struct ag_http_req *req;
    enum resp_kind kind;
    char *body;         /* RESP_BODY: ag_malloc'd, handed to the server */
    size_t len;         /* bytes of body */
    const char *detail; /* RESP_NO_SUB: the name (request pool) */
};

static void
defer(struct bus *bus, struct ag_http_req *req, enum resp_kind kind, char *body, size_t len,
      const char *detail)
{
    struct bus_resp *r = ag_pool_calloc(req->pool, sizeof(*r));
    r->req = req;
    r->kind = kind;
    r->body = body;
    r->len = len;
    r->detail = detail;
    if (bus->resp_tail != NULL)
        bus->resp_tail->next = r;
    else
        bus->resp_head = r;
    bus->resp_tail = r;
}

static void
defer_buf(struct bus *bus, struct ag_http_req *req, struct ag_buf *out)
{
    size_t len;
    char *body = ag_buf_detach(out, &len);
    defer(bus, req, RESP_BODY, body, len, NULL);
}

/* Send every queued answer. Safe to re-enter: each entry is unlinked
 * before it is sent. */
void
bus_flush_responses(struct bus *bus)
{
    while (bus->resp_head != NULL) {
        struct bus_resp *r = bus->resp_head;
        bus->resp_head = r->next;
        if (bus->resp_head == NULL)
            bus->resp_tail = NULL;
        switch (r->kind) {
        case RESP_BODY: ag_http_send_take(r->req, 200, JSON_TYPE, r->body, r->len); break;
        case RESP_EMPTY_PULL:
            ag_http_send(r->req, 200, JSON_TYPE, EMPTY_PULL, sizeof(EMPTY_PULL) - 1);
            break;
        case RESP_GONE: ag_send_error(r->req, AG_ENOENT, "the subscription was deleted"); break;
        case RESP_NO_SUB:
            ag_send_error(r->req, AG_ENOENT, "no subscription '%s'", r->detail);
            break;
        case RESP_UNAVAILABLE:
            ag_send_error(r->req, AG_EUNAVAIL, "the message store could not commit; retry");
            break;
        }
    }
}

/* ---- Subscriptions in memory ---- */

static void
defer_empty(struct bus *bus, struct ag_http_req *req)
{
    defer(bus, req, RESP_EMPTY_PULL, NULL, 0, NULL);
}

static void
waiter_unlink(struct bus *bus, struct bus_waiter *w)
{
    struct bus_sub *sub = w->sub;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        sub->whead = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        sub->wtail = w->prev;
    bus_heap_remove(&bus->heap, &w->timed);
    sub->nwaiters--;
    bus->nwaiting--;
}

void
bus_sub_free(struct bus *bus, struct bus_sub *sub, int status)
{
    while (sub->whead != NULL) {
        struct bus_waiter *w = sub->whead;
        waiter_unlink(bus, w);
        defer(bus, w->req, status == 200 ? RESP_EMPTY_PULL : RESP_GONE, NULL, 0, NULL);
    }
    for (struct bus_sub **pp = &bus->touched; *pp != NULL; pp = &(*pp)->tx_next) {
        if (*pp == sub) {
            *pp = sub->tx_next;
            break;
        }
    }
    const char *labels[] = { sub->name };
    ag_gauge_set(bus->m_backlog, labels, 0);
    ag_gauge_set(bus->m_dead, labels, 0);
    ag_gauge_set(bus->m_oldest, labels, 0);
    bus_q_release(&sub->q);
    bus_htab_remove(&bus->subs, &sub->hnode);
    bus->nsubs--;
    bus->subs_gen++;
    for (size_t i = 0; i < sub->npatterns; i++)
        ag_free(sub->patterns[i]);
    ag_free(sub->patterns);
    ag_free(sub);
}

/* ---- Delivery ---- */

void
bus_touch(struct bus *bus, struct bus_sub *sub)
{
    if (sub->tx_touched)
        return;
    sub->tx_touched = true;
    sub->tx_next = bus->touched;
    bus->touched = sub;
}

/* Hand out up to 'max' messages of 'sub' and queue the answer to 'req'
 * (an empty list when none is ready). */
void
bus_answer_pull(struct bus *bus, struct bus_sub *sub, struct ag_http_req *req, int64_t max)
{
    uint64_t now = ag_time_mono_ms();
    int64_t start_ns = ag_span_enabled() ? bus_unix_ns() : 0;
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"messages\":[");
    int64_t n = 0;
    int64_t again = 0;
    while (n < max && out.len < PULL_BYTES_MAX) {
        if (sub->q.nready == 0 && (bus_sub_refill(bus, sub) != 0 || sub->q.nready == 0))
            break;
        struct bus_dlv *d;
        if (bus_q_take(&sub->q, now, (uint64_t)sub->ack_deadline_ms, &bus->token, &d, 1) == 0)
            break;
        size_t mark = out.len;
        char ack[BUS_ACK_ID_LEN];
        bus_ack_id_format(d->seq, d->lease, ack);
        ag_buf_append_cstr(&out, n ? ",{\"ack_id\":\"" : "{\"ack_id\":\"");
        ag_buf_append_cstr(&out, ack);
        ag_buf_append_cstr(&out, "\",\"attempt\":");
        bus_buf_append_i64(&out, d->attempts);
        ag_buf_append_char(&out, ',');
        struct bus_msg_loc loc;
        int rc = bus_store_message_append(bus->store, d->seq, &out, &loc);
        if (rc != 0) {
            /* The lease runs out and the delivery is retried (or, with
             * the message row gone, eventually dead-lettered). */
            AG_LOGE("engine", "cannot read message %" PRId64 ": %s", d->seq,
                    rc == AG_ENOENT ? "missing" : ag_store_errmsg(bus->store));
            out.len = mark;
            out.data[mark] = '\0';
            continue;
        }
        if (start_ns != 0)
            bus_span_deliver(sub, d->attempts, &out, &loc, start_ns);
        ag_buf_append_char(&out, '}');
        n++;
        again += d->attempts > 1;
    }
    ag_buf_append_cstr(&out, "]}");
    if (n > 0) {
        const char *labels[] = { sub->name };
        ag_counter_add(bus->m_delivered, labels, (double)n);
        if (again > 0)
            ag_counter_add(bus->m_redelivered, labels, (double)again);
    }
    defer_buf(bus, req, &out);
}

/* Answer held pulls of 'sub' while messages are ready, oldest pull first. */
static void
dispatch(struct bus *bus, struct bus_sub *sub)
{
    while (sub->whead != NULL) {
        struct bus_waiter *w = sub->whead;
        if (ag_http_req_is_orphan(w->req)) {
            waiter_unlink(bus, w);
            defer_empty(bus, w->req);
            continue;
        }
        if (sub->q.nready == 0 && (bus_sub_refill(bus, sub) != 0 || sub->q.nready == 0))
            break;
        waiter_unlink(bus, w);
        bus_answer_pull(bus, sub, w->req, w->max);
    }
}

void
bus_dispatch_touched(struct bus *bus)
{
    while (bus->touched != NULL) {
        struct bus_sub *sub = bus->touched;
        bus->touched = sub->tx_next;
        sub->tx_touched = false;
        sub->tx_next = NULL;
        dispatch(bus, sub);
    }
}

void
bus_hold_pull(struct bus *bus, struct bus_sub *sub, struct ag_http_req *req, int64_t max,
              int64_t wait_ms)
{
    struct bus_waiter *w = ag_pool_calloc(req->pool, sizeof(*w));
    w->timed.kind = BUS_TIMED_WAITER;
    w->timed.idx = BUS_HEAP_NONE;
    w->timed.due = ag_time_mono_ms() + (uint64_t)wait_ms;
    w->sub = sub;
    w->req = req;
    w->max = max;
    w->prev = sub->wtail;
    if (sub->wtail != NULL)
        sub->wtail->next = w;
    else
        sub->whead = w;
    sub->wtail = w;
    sub->nwaiters++;
    bus->nwaiting++;
    bus_heap_push(&bus->heap, &w->timed);
}

void
bus_release_waiters(struct bus *bus)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    size_t pos = 0;
    for (struct bus_hnode *n = bus_htab_next(&bus->subs, &pos, NULL); n != NULL;
         n = bus_htab_next(&bus->subs, &pos, n)) {
        struct bus_sub *sub = BUS_CONTAINER(n, struct bus_sub, hnode);
        while (sub->whead != NULL) {
            struct bus_waiter *w = sub->whead;
            waiter_unlink(bus, w);
            defer_empty(bus, w->req);
        }
    }
    bus_flush_responses(bus);
}

/* ---- Timer heap ---- */

static void on_heap_timer(uv_timer_t *h);

/* Arm the loop timer for the earliest due of the heap. Called at the end of
 * every loop iteration (check) and of the timer callback, so every change
 * to the heap is seen before the loop next blocks. */
static void
arm_timer(struct bus *bus)
{
    struct bus_timed *t = bus_heap_top(&bus->heap);
    if (t == NULL) {
        if (bus->armed_due != 0)
            uv_timer_stop(&bus->heap_timer);
        bus->armed_due = 0;
        return;
    }
    if (bus->armed_due == t->due)
        return;
    uint64_t now = ag_time_mono_ms();
    uv_timer_start(&bus->heap_timer, on_heap_timer, t->due > now ? t->due - now : 0, 0);
    bus->armed_due = t->due;
}

/* Write the dead-lettering of 'held' (HELD deliveries whose last lease
 * ran out) in one transaction, then drop them from memory. */
static void
dead_letter(struct bus *bus, struct bus_dlv **held, size_t n, uint64_t now)
{
    int64_t now_unix = ag_time_unix_ms();
    int rc = ag_store_begin(bus->store);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct bus_sub *sub = held[i]->q->owner;
        rc = bus_store_delivery_dead(bus->store, sub->id, held[i]->seq, held[i]->attempts, now_unix,
                                     LAST_ERROR_EXPIRED);
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        AG_LOGE("engine", "cannot dead-letter %zu deliveries: %s", n, ag_store_errmsg(bus->store));
        ag_store_rollback(bus->store);
    }
    for (size_t i = 0; i < n; i++) {
        struct bus_sub *sub = held[i]->q->owner;
        if (rc != 0) {
            bus_q_retry(held[i], now, (uint64_t)sub->retry_delay_ms);
        } else {
            sub->pending--;
            sub->dead++;
            bus_q_remove(held[i], now);
        }
        bus_touch(bus, sub);
    }
}

static void
on_heap_timer(uv_timer_t *h)
{
    struct bus *bus = h->data;
    bus->armed_due = 0;
    uint64_t now = ag_time_mono_ms();
    struct bus_dlv **held = NULL;
    size_t nheld = 0;
    size_t cap = 0;
    struct bus_timed *t;
    while ((t = bus_heap_top(&bus->heap)) != NULL && t->due <= now) {
        if (t->kind == BUS_TIMED_WAITER) {
            struct bus_waiter *w = (struct bus_waiter *)(void *)t;
            waiter_unlink(bus, w);
            defer_empty(bus, w->req);
            continue;
        }
        struct bus_dlv *d = (struct bus_dlv *)(void *)t;
        struct bus_sub *sub = d->q->owner;
        if (d->state == BUS_DLV_DELAYED) {
            bus_q_wake(d);
        } else if (d->attempts >= sub->max_attempts) {
            bus_q_hold(d);
            if (nheld == cap) {
                cap = cap ? 2 * cap : 64;
                held = ag_realloc(held, cap * sizeof(*held));
            }
            held[nheld++] = d;
        } else {
            bus_q_retry(d, now, (uint64_t)sub->retry_delay_ms);
        }
        bus_touch(bus, sub);
    }
    if (nheld > 0)
        dead_letter(bus, held, nheld, now);
    ag_free(held);
    bus_dispatch_touched(bus);
    /* Answers first: a pipelined request they let in may change the heap. */
    bus_flush_responses(bus);
    arm_timer(bus);
}

/* ---- Group commit ----
 *
 * Requests that write (publish, ack, nack) are queued as operations. After
 * each poll phase (uv_check) the queue is written to SQLite in one
 * transaction: a batch. With durability full the connection runs with
 * synchronous=NORMAL (no fsync in COMMIT) and the bus fdatasyncs the WAL
 * itself on the thread pool, one fsync at a time; each covers every batch
 * committed before it started. Meanwhile the loop keeps reading requests and
 * committing further batches, so parsing and SQL overlap the fsync. Once a
 * batch is durable its effects are applied to memory, in commit order, and
 * its requests answered. Deliveries being acked or nacked are HELD until
 * then, so nothing hands them out or settles them twice. */

void
bus_enqueue(struct bus *bus, struct bus_op *op)
{
    op->next = NULL;
    if (bus->ops_tail != NULL)
        bus->ops_tail->next = op;
    else
        bus->ops_head = op;
    bus->ops_tail = op;
    bus->queued_ops++;
    if (op->kind == BUS_OP_PUBLISH)
        bus->queued_msgs += op->n;
    /* A large queue is written now rather than at the end of the loop
     * iteration, which bounds both memory and the latency of its head. */
    if ((int64_t)bus->queued_msgs >= bus->settings.commit_max)
        bus_commit(bus);
}

static int
apply_publish(struct bus *bus, struct bus_op *op, int64_t pub_ms)
{
    int64_t cut = pub_ms - (int64_t)bus->settings.dedup_window_ms;
    for (size_t i = 0; i < op->n; i++) {
        const struct bus_msg_in *m = &op->msgs[i];
        int64_t seq;
        int64_t at;
        int rc = bus_store_dedup_get(bus->store, m->id, &seq, &at);
        if (rc == 0 && at >= cut) {
            op->dup[i] = true;
            op->seqs[i] = seq;
            continue;
        }
        if (rc != 0 && rc != AG_ENOENT)
            return rc;
        seq = ++bus->last_seq;
        rc = bus_store_message_insert(bus->store, seq, m, pub_ms);
        if (rc == 0)
            rc = bus_store_dedup_put(bus->store, seq, m->id, pub_ms);
        if (rc != 0)
            return rc;
        struct bus_topic *t = op->topics[i];
        bus_topic_match(bus, t);
        for (size_t j = 0; j < t->nsubs; j++) {
            rc = bus_store_delivery_insert(bus->store, t->subs[j]->id, seq);
            if (rc != 0)
                return rc;
        }
        t->tx_messages++;
        t->tx_last_seq = seq;
        if (!t->tx_touched) {
            t->tx_touched = true;
            t->tx_next = bus->tx_topics;
            bus->tx_topics = t;
        }
        op->dup[i] = false;
        op->seqs[i] = seq;
    }
    return 0;
}

static int64_t
nack_delay(const struct bus_op *op, const struct bus_sub *sub)
{
    return op->delay_ms >= 0 ? op->delay_ms : sub->retry_delay_ms;
}

/* Check the ack ids of an ack or nack against the current leases, write
 * their effect and hold the deliveries until the batch is durable. An ack id
 * of an earlier hand-out, or of a delivery already being settled, is
 * ignored. */
static int
apply_settle(struct bus *bus, struct bus_op *op, int64_t now_unix)
{
    struct bus_sub *sub = bus_sub_find(bus, op->sub_name);
    op->sub = sub;
    op->nhits = 0;
    if (sub == NULL)
        return 0;
    for (size_t i = 0; i < op->n; i++) {
        struct bus_dlv *d = bus_q_find(&sub->q, op->refs[i].seq);
        if (d == NULL || d->lease != op->refs[i].token || d->state == BUS_DLV_HELD ||
            d->state == BUS_DLV_WAITING)
            continue;
        if (op->kind == BUS_OP_NACK && d->state != BUS_DLV_LEASED)
            continue; /* its lease already ran out: it is being retried */
        int rc;
        if (op->kind == BUS_OP_ACK) {
            rc = bus_store_delivery_delete(bus->store, sub->id, d->seq);
        } else if (d->attempts >= sub->max_attempts) {
            rc = bus_store_delivery_dead(bus->store, sub->id, d->seq, d->attempts, now_unix,
                                         op->error ? op->error : LAST_ERROR_NACKED);
        } else {
            int64_t delay = nack_delay(op, sub);
            rc = bus_store_delivery_retry(bus->store, sub->id, d->seq, d->attempts,
                                          delay > 0 ? now_unix + delay : 0);
        }
        if (rc != 0)
            return rc;
        bus_q_hold(d);
        op->hits[op->nhits++] = d;
    }
    return 0;
}

static int
write_topics(struct bus *bus)
{
    for (struct bus_topic *t = bus->tx_topics; t != NULL; t = t->tx_next) {
        int rc =
            bus_store_topic_put(bus->store, t->name, t->messages + t->tx_messages, t->tx_last_seq);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Fold (or drop) the topic counters of the commit. */
static void
finish_topics(struct bus *bus, bool committed)
{
    while (bus->tx_topics != NULL) {
        struct bus_topic *t = bus->tx_topics;
        bus->tx_topics = t->tx_next;
        if (committed) {
            t->messages += t->tx_messages;
            t->last_seq = t->tx_last_seq;
            const char *labels[] = { t->name };
            ag_counter_add(bus->m_published, labels, (double)t->tx_messages);
        }
        t->tx_messages = 0;
        t->tx_last_seq = 0;
        t->tx_touched = false;
        t->tx_next = NULL;
    }
}

static void
publish_effects(struct bus *bus, struct bus_op *op, uint64_t now)
{
    int64_t window = bus->settings.window;
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"results\":[");
    for (size_t i = 0; i < op->n; i++) {
        const struct bus_msg_in *m = &op->msgs[i];
        if (i > 0)
            ag_buf_append_char(&out, ',');
        ag_buf_append_cstr(&out, "{\"id\":");
        bus_json_append_string(&out, m->id, strlen(m->id));
        ag_buf_append_cstr(&out, ",\"seq\":");
        bus_buf_append_i64(&out, op->seqs[i]);
        ag_buf_append_cstr(&out, op->dup[i] ? ",\"duplicate\":true}" : ",\"duplicate\":false}");
        if (op->start_ns != 0)
            bus_span_publish(op, i, NULL);
        if (op->dup[i])
            continue;
        struct bus_topic *t = op->topics[i];
        for (size_t j = 0; j < t->nsubs; j++) {
            struct bus_sub *sub = t->subs[j];
            sub->pending++;
            if (!sub->spilled && (int64_t)sub->q.n < window) {
                bus_q_add(&sub->q, op->seqs[i], m->subject, m->subject_len, 0, 0, now);
                sub->loaded_to = op->seqs[i];
                bus_touch(bus, sub);
            } else {
                sub->spilled = true;
            }
        }
    }
    ag_buf_append_cstr(&out, "]}");
    defer_buf(bus, op->req, &out);
}

static void
settle_effects(struct bus *bus, struct bus_op *op, uint64_t now)
{
    struct bus_sub *sub = op->sub;
    if (sub == NULL) {
        defer(bus, op->req, RESP_NO_SUB, NULL, 0, op->sub_name);
        return;
    }
    const char *labels[] = { sub->name };
    for (size_t i = 0; i < op->nhits; i++) {
        struct bus_dlv *d = op->hits[i];
        if (op->kind == BUS_OP_ACK) {
            sub->pending--;
            bus_q_remove(d, now);
        } else if (d->attempts >= sub->max_attempts) {
            sub->pending--;
            sub->dead++;
            bus_q_remove(d, now);
        } else {
            bus_q_retry(d, now, (uint64_t)nack_delay(op, sub));
        }
    }
    if (op->nhits > 0) {
        bus_touch(bus, sub);
        if (op->kind == BUS_OP_ACK)
            ag_counter_add(bus->m_acked, labels, (double)op->nhits);
    }
    char *body =
        ag_asprintf("{\"%s\":%zu}", op->kind == BUS_OP_ACK ? "acked" : "nacked", op->nhits);
    defer(bus, op->req, RESP_BODY, body, strlen(body), NULL);
}

/* A batch could not be committed: put what it held back in circulation and
 * answer its requests 503. */
static void
fail_ops(struct bus *bus, struct bus_op *ops)
{
    uint64_t now = ag_time_mono_ms();
    for (; ops != NULL; ops = ops->next) {
        if (ops->kind != BUS_OP_PUBLISH) {
            for (size_t i = 0; i < ops->nhits; i++)
                bus_q_retry(ops->hits[i], now, 0);
            if (ops->nhits > 0)
                bus_touch(bus, ops->sub);
        } else if (ops->start_ns != 0) {
            for (size_t i = 0; i < ops->n; i++)
                bus_span_publish(ops, i, "the message store could not commit");
        }
        defer(bus, ops->req, RESP_UNAVAILABLE, NULL, 0, NULL);
    }
}

/* Apply the effects of a durable batch and queue its answers. */
static void
finish_batch(struct bus *bus, struct bus_batch *b)
{
    uint64_t now = ag_time_mono_ms();
    for (struct bus_op *op = b->ops; op != NULL; op = op->next) {
        if (op->kind == BUS_OP_PUBLISH)
            publish_effects(bus, op, now);
        else
            settle_effects(bus, op, now);
    }
    bus->durable_seq = b->last_seq;
}

static void
finish_covered(struct bus *bus)
{
    while (bus->batches_head != NULL && bus->batches_head->covered) {
        struct bus_batch *b = bus->batches_head;
        bus->batches_head = b->next;
        if (bus->batches_head == NULL)
            bus->batches_tail = NULL;
        bus->nbatches--;
        finish_batch(bus, b);
        ag_free(b);
    }
}

static void
drain_admin(struct bus *bus)
{
    while (bus->nbatches == 0 && bus->admin_head != NULL) {
        struct bus_admin *a = bus->admin_head;
        bus->admin_head = a->next;
        if (bus->admin_head == NULL)
            bus->admin_tail = NULL;
        a->fn(a->req, bus);
    }
}

void
bus_run_admin(struct bus *bus, struct ag_http_req *req, ag_route_fn fn)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    if (bus->nbatches == 0 && bus->admin_head == NULL) {
        fn(req, bus);
        return;
    }
    struct bus_admin *a = ag_pool_calloc(req->pool, sizeof(*a));
    a->req = req;
    a->fn = fn;
    if (bus->admin_tail != NULL)
        bus->admin_tail->next = a;
    else
        bus->admin_head = a;
    bus->admin_tail = a;
}

AG_NORETURN static void
sync_failed(int err)
{
    /* The kernel may have dropped the dirty pages: what was committed can no
     * longer be promised. Start again from what is on disk (the supervisor
     * restarts the process; unanswered publishers retry). */
    AG_LOGE("engine", "fdatasync of the WAL failed: %s; exiting", strerror(err));
    _exit(1);
}

void
bus_sync_now(struct bus *bus)
{
    if (bus->sync_wal && fdatasync(bus->wal_fd) == -1)
        sync_failed(errno);
}

static void
sync_work(uv_work_t *w)
{
    struct bus *bus = w->data;
    bus->sync_errno = fdatasync(bus->wal_fd) == -1 ? errno : 0;
}

static void after_sync(uv_work_t *w, int status);

static void
start_sync(struct bus *bus)
{
    for (struct bus_batch *b = bus->batches_head; b != NULL; b = b->next)
        b->covered = true;
    bus->syncing = true;
    bus->sync_work.data = bus;
    if (uv_queue_work(bus->loop, &bus->sync_work, sync_work, after_sync) != 0) {
        bus->syncing = false;
        bus_sync_now(bus);
        finish_covered(bus);
    }
}

static void maybe_close(struct bus *bus);

static void
after_sync(uv_work_t *w, int status)
{
    struct bus *bus = w->data;
    bus->syncing = false;
    if (status != 0 || bus->sync_errno != 0)
        sync_failed(status != 0 ? EIO : bus->sync_errno);
    finish_covered(bus);
    if (bus->batches_head != NULL)
        start_sync(bus);
    bus_dispatch_touched(bus);
    drain_admin(bus);
    if (!bus->closing)
        bus_commit(bus);
    bus_flush_responses(bus);
    if (bus->closing)
        maybe_close(bus);
    else
        arm_timer(bus);
}

/* ---- Checkpoints ----
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL
 * past 1,000 pages, on the committing thread: it copies the WAL into the
 * database file and syncs both, and the loop stands still meanwhile. The bus
 * turns it off on its connection (wal_autocheckpoint=0) and checkpoints on a
 * second connection to the same file, on the thread pool, one checkpoint at
 * a time:
 *
 * - bulk: once a commit leaves AGORA_BUS_CHECKPOINT_PAGES or more in the
 *   WAL not yet copied, a PASSIVE checkpoint copies the WAL
 *   into the database file while the loop goes on committing (in WAL mode a
 *   writer and a checkpoint coexist). If no commit came meanwhile, the next
 *   commit starts the WAL over from its beginning.
 * - final: under steady load a commit always comes meanwhile and the WAL
 *   never starts over. Once it holds CKPT_FINAL_AT times the threshold,
 *   up to CKPT_MAX_BULK bulk passes shrink what is left (each copies what
 *   came during the one before), then a last PASSIVE pass copies the rest
 *   while group commits wait (they queue; reads, pulls and answers go on).
 *   The next commit then starts the WAL over: that bounds the file.
 *
 * If the WAL still reaches CKPT_BEHIND times the threshold, the checkpointer
 * has fallen behind: group commits wait for it to finish (or, when none is
 * in flight because the last one failed, the loop checkpoints on its own
 * connection, as SQLite would). Logged once.
 *
 * Durability: the checkpoint connection runs synchronous=FULL, so SQLite
 * syncs the WAL before copying and the database file before it records the
 * frames as copied; a frame is overwritten only once its page is on disk.
 * The bus's own fdatasync of the WAL (group commit) is unchanged. */

#define CKPT_BEHIND     4  /* WAL at this many times the threshold: commits wait */
#define CKPT_FINAL_AT   2  /* WAL at this many times the threshold: a final pass */
#define CKPT_FINAL_TAIL 64 /* frames left by a bulk pass that a final pass may copy */
#define CKPT_MAX_BULK   2  /* bulk passes before the final one, at most */

static void after_ckpt(uv_work_t *w, int status);

/* The fall-back: checkpoint on the loop's own connection, as SQLite would
 * in COMMIT. No commit can come meanwhile, so it copies the whole WAL. */
static void
ckpt_on_loop(struct bus *bus)
{
    const char *labels[] = { "loop" };
    int rc = ag_store_checkpoint(bus->store, AG_STORE_CKPT_PASSIVE, NULL, NULL);
    if (rc == 0) {
        ag_counter_add(bus->m_ckpt, labels, 1);
        bus->ckpt_copied = 0;
    }
    bus->ckpt_mark = ag_store_wal_frames(bus->store);
}

static void
ckpt_work(uv_work_t *w)
{
    struct bus *bus = w->data;
    bus->ckpt_rc = ag_store_checkpoint(bus->ckpt_store, AG_STORE_CKPT_PASSIVE, &bus->ckpt_frames,
                                       &bus->ckpt_done);
}

static void
ckpt_start(struct bus *bus, enum bus_ckpt_phase phase)
{
    bus->ckpt_phase = phase;
    bus->ckpt_work.data = bus;
    if (phase == BUS_CKPT_FINAL)
        bus->ckpt_hold = true;
    if (uv_queue_work(bus->loop, &bus->ckpt_work, ckpt_work, after_ckpt) != 0) {
        bus->ckpt_phase = BUS_CKPT_IDLE;
        bus->ckpt_hold = false;
        bus->ckpt_failed = true;
        if (!bus->ckpt_warned) {
            AG_LOGW("engine", "the thread pool refused a WAL checkpoint: checkpoint on the loop");
            bus->ckpt_warned = true;
        }
        ckpt_on_loop(bus);
    }
}

/* After each loop iteration's commit: start a bulk pass once the WAL has
 * reached the threshold, and hold commits if it is far past it. */
static void
ckpt_poll(struct bus *bus)
{
    if (bus->ckpt_store == NULL || bus->closing)
        return;
    int64_t frames = ag_store_wal_frames(bus->store);
    int64_t limit = bus->settings.checkpoint_pages;
    /* Frames not yet copied (all of them once the WAL started over). */
    int64_t uncopied = frames - (frames >= bus->ckpt_copied ? bus->ckpt_copied : 0);
    if (frames < limit || uncopied < limit || frames == bus->ckpt_mark)
        return;
    if (frames >= CKPT_BEHIND * limit && !bus->ckpt_hold) {
        if (!bus->ckpt_warned) {
            AG_LOGW("engine",
                    "the WAL holds %" PRId64 " pages, %d times AGORA_BUS_CHECKPOINT_PAGES: %s",
                    frames, CKPT_BEHIND,
                    bus->ckpt_failed ? "checkpoint on the loop"
                                     : "commits wait for the checkpointer");
            bus->ckpt_warned = true;
        }
        if (bus->ckpt_phase == BUS_CKPT_IDLE && bus->ckpt_failed) {
            ckpt_on_loop(bus);
            return;
        }
        bus->ckpt_hold = true;
    }
    if (bus->ckpt_phase == BUS_CKPT_IDLE) {
        bus->ckpt_bulks = 0;
        ckpt_start(bus, BUS_CKPT_BULK);
    }
}

static void
after_ckpt(uv_work_t *w, int status)
{
    struct bus *bus = w->data;
    enum bus_ckpt_phase phase = bus->ckpt_phase;
    bus->ckpt_phase = BUS_CKPT_IDLE;
    int rc = status != 0 ? AG_EIO : bus->ckpt_rc;
    bus->ckpt_failed = rc != 0;
    if (rc != 0 && !bus->ckpt_warned) {
        AG_LOGW("engine", "background WAL checkpoint failed: %s",
                status != 0 ? uv_strerror(status) : ag_store_errmsg(bus->ckpt_store));
        bus->ckpt_warned = true;
    }
    if (rc == 0) {
        const char *labels[] = { phase == BUS_CKPT_BULK ? "bulk" : "final" };
        ag_counter_add(bus->m_ckpt, labels, 1);
        bus->ckpt_copied = bus->ckpt_done;
    }
    /* The bulk pass left frames behind (commits went on). Another bulk
     * pass while they are many (each is shorter than the one before), then
     * a final one that copies the rest while commits wait, so that the next
     * commit can start the WAL over. */
    int64_t frames = ag_store_wal_frames(bus->store);
    int64_t tail = frames - bus->ckpt_copied;
    if (rc == 0 && phase == BUS_CKPT_BULK && !bus->closing && tail > 0 &&
        (frames >= CKPT_FINAL_AT * bus->settings.checkpoint_pages || bus->ckpt_hold)) {
        bool again = tail > CKPT_FINAL_TAIL && ++bus->ckpt_bulks < CKPT_MAX_BULK;
        ckpt_start(bus, again ? BUS_CKPT_BULK : BUS_CKPT_FINAL);
        return;
    }
    /* Everything copied: the next commit starts the WAL over. */
    if (rc == 0 && tail <= 0)
        bus->ckpt_copied = 0;
    bus->ckpt_mark = frames;
    if (bus->ckpt_hold) {
        bus->ckpt_hold = false;
        bus_commit(bus);
    }
    bus_dispatch_touched(bus);
    bus_flush_responses(bus);
    if (bus->closing)
        maybe_close(bus);
    else
        arm_timer(bus);
}

/* Background checkpoints need a second connection, which SQLite allows only
 * with shared locking (an exclusive connection keeps the WAL index in its
 * own memory). Without one, SQLite checkpoints in COMMIT as before. */
static int
setup_checkpoints(struct bus *bus)
{
    const struct ag_service_settings *ss = ag_service_settings(bus->svc);
    if (bus->settings.checkpoint_pages == 0 || strcmp(ss->db_path, ":memory:") == 0)
        return 0;
    if (strcmp(ss->db_locking, "shared") != 0) {
        AG_LOGI("start", "AGORA_DB_LOCKING=%s: WAL checkpoints run in COMMIT, on the loop",
                ss->db_locking);
        return 0;
    }
    char err[256] = "";
    struct ag_store_config cfg = {
        .path = ss->db_path,
        .durability = AG_STORE_FULL,
        .migrations = bus_migrations,
        .nmigrations = bus_nmigrations,
        .stmt_cache_max = 4,
        .errbuf = err,
        .errbuf_len = sizeof(err),
    };
    int rc = ag_store_open(&cfg, &bus->ckpt_store);
    if (rc != 0) {
        AG_LOGW("start", "cannot open '%s' for checkpoints (%s); they run in COMMIT, on the loop",
                ss->db_path, err[0] ? err : ag_strerror(rc));
        bus->ckpt_store = NULL;
        return 0;
    }
    rc = ag_store_wal_manual(bus->store);
    if (rc != 0) {
        AG_LOGE("start", "cannot turn off automatic checkpoints: %s", ag_store_errmsg(bus->store));
        ag_store_close(bus->ckpt_store);
        bus->ckpt_store = NULL;
        return rc;
    }
    return 0;
}

void
bus_commit(struct bus *bus)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    struct bus_op *ops = bus->ops_head;
    if (ops == NULL || bus->admin_head != NULL || bus->ckpt_hold)
        return;
    bus->ops_head = NULL;
    bus->ops_tail = NULL;
    bus->queued_msgs = 0;
    bus->queued_ops = 0;
    int64_t seq0 = bus->last_seq;
    int64_t now_unix = ag_time_unix_ms();
    /* published_at never decreases with seq, even if the wall clock steps
     * back; the retention sweep relies on it. */
    int64_t pub_ms = AG_MAX(now_unix, bus->last_pub_ms);

    int rc = ag_store_begin(bus->store);
    for (struct bus_op *op = ops; op != NULL && rc == 0; op = op->next) {
        if (op->kind == BUS_OP_PUBLISH)
            rc = apply_publish(bus, op, pub_ms);
        else
            rc = apply_settle(bus, op, now_unix);
    }
    if (rc == 0)
        rc = write_topics(bus);
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        AG_LOGE("engine", "group commit failed: %s", ag_store_errmsg(bus->store));
        ag_store_rollback(bus->store);
        bus->last_seq = seq0;
        finish_topics(bus, false);
        fail_ops(bus, ops);
        bus_dispatch_touched(bus);
        bus_flush_responses(bus);
        return;
    }
    bus->last_pub_ms = pub_ms;
    bus->stored += bus->last_seq - seq0;
    if (bus->last_seq > seq0)
        ag_histogram_observe(bus->m_batch, NULL, (double)(bus->last_seq - seq0));
    finish_topics(bus, true);
    struct bus_batch *b = ag_calloc(1, sizeof(*b));
    b->ops = ops;
    b->last_seq = bus->last_seq;
    if (bus->batches_tail != NULL)
        bus->batches_tail->next = b;
    else
        bus->batches_head = b;
    bus->batches_tail = b;
    bus->nbatches++;
    if (!bus->sync_wal) {
        b->covered = true;
        finish_covered(bus);
        bus_dispatch_touched(bus);
        bus_flush_responses(bus);
    } else if (!bus->syncing) {
        start_sync(bus);
    }
}

static void
on_check(uv_check_t *h)
{
    struct bus *bus = h->data;
    /* While an fsync runs, small queues wait for it to end and go as one
     * batch (fewer, larger transactions); large ones are written now so
     * their SQL overlaps the fsync. */
    if (!bus->syncing || bus->queued_ops >= PIPELINE_MIN_OPS)
        bus_commit(bus);
    ckpt_poll(bus);
    bus_flush_responses(bus);
    arm_timer(bus);
}

static void
engine_start(struct bus *bus)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    uv_check_init(bus->loop, &bus->check);
    bus->check.data = bus;
    uv_check_start(&bus->check, on_check);
    uv_timer_init(bus->loop, &bus->heap_timer);
    bus->heap_timer.data = bus;
    bus->handles_open = true;
}

static void
maybe_close(struct bus *bus)
{
    if (!bus->handles_open || bus->syncing || bus->nbatches > 0 || bus->ckpt_phase != BUS_CKPT_IDLE)
        return;
    bus->handles_open = false;
    /* Not the last connection: closing it does not checkpoint. */
    ag_store_close(bus->ckpt_store);
    bus->ckpt_store = NULL;
    uv_check_stop(&bus->check);
    uv_close((uv_handle_t *)&bus->check, NULL);
    uv_timer_stop(&bus->heap_timer);
    uv_close((uv_handle_t *)&bus->heap_timer, NULL);
}

void
bus_engine_close(struct bus *bus)
{
    bus->closing = true;
    maybe_close(bus);
}

/* ---- Lifecycle ---- */

int
bus_engine_open(struct bus *bus, struct ag_service *svc)
{
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
    if (rc == 0)
        rc = setup_checkpoints(bus);
    if (rc != 0)
        return rc;
    engine_start(bus);
    return 0;
}

/* Free the in-memory state after the loop ended. */
void
bus_engine_free(struct bus *bus)
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
    ag_store_close(bus->ckpt_store);
    bus->ckpt_store = NULL;
    bus->magic = 0;
}
