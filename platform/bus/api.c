/* SPDX-License-Identifier: MIT */
/* Bus HTTP handlers and route table, and the engine behind them: the group
 * commit that makes every publish, ack and nack of one loop iteration
 * durable in one transaction, delivery to held pulls (long poll), and the
 * timer heap of leases, delays and pull deadlines. */
#include "agora/base.h"
#include "bus.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/log.h"

#define JSON_TYPE          "application/json"
#define EMPTY_PULL         "{\"messages\":[]}"
#define PULL_BYTES_MAX     (8u << 20) /* a pull answer stops growing past this */
#define REPLAY_ALL_MAX     100000     /* dead letters revived by one replay of "all" */
#define DEAD_LIST_DEF      100
#define PIPELINE_MIN_OPS   64 /* queued operations committed while an fsync runs */
#define LAST_ERROR_EXPIRED "ack deadline exceeded"
#define LAST_ERROR_NACKED  "nacked"

/* ---- Outbox ----
 * The engine never answers a request while it walks its own state: sending
 * can run the handler of a pipelined request at once (the connection reads
 * on), which may change that state (delete a subscription, say). Answers
 * are queued here and sent by flush_responses() at the end of each entry
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

static struct bus_resp *g_out_head;
static struct bus_resp *g_out_tail;

static void
defer(struct ag_http_req *req, enum resp_kind kind, char *body, size_t len, const char *detail)
{
    struct bus_resp *r = ag_pool_calloc(req->pool, sizeof(*r));
    r->req = req;
    r->kind = kind;
    r->body = body;
    r->len = len;
    r->detail = detail;
    if (g_out_tail != NULL)
        g_out_tail->next = r;
    else
        g_out_head = r;
    g_out_tail = r;
}

static void
defer_buf(struct ag_http_req *req, struct ag_buf *out)
{
    size_t len;
    char *body = ag_buf_detach(out, &len);
    defer(req, RESP_BODY, body, len, NULL);
}

/* Send every queued answer. Safe to re-enter: each entry is unlinked
 * before it is sent. */
static void
flush_responses(void)
{
    while (g_out_head != NULL) {
        struct bus_resp *r = g_out_head;
        g_out_head = r->next;
        if (g_out_head == NULL)
            g_out_tail = NULL;
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

/* Subscriptions whose ready list may have grown, dispatched together
 * before the entry point that touched them returns. */
static struct bus_sub *g_touched;

/* ---- Subscriptions in memory ---- */

static void
defer_empty(struct ag_http_req *req)
{
    defer(req, RESP_EMPTY_PULL, NULL, 0, NULL);
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
        defer(w->req, status == 200 ? RESP_EMPTY_PULL : RESP_GONE, NULL, 0, NULL);
    }
    for (struct bus_sub **pp = &g_touched; *pp != NULL; pp = &(*pp)->tx_next) {
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

static void
touch(struct bus_sub *sub)
{
    if (sub->tx_touched)
        return;
    sub->tx_touched = true;
    sub->tx_next = g_touched;
    g_touched = sub;
}

/* Hand out up to 'max' messages of 'sub' and queue the answer to 'req'
 * (an empty list when none is ready). */
static void
answer_pull(struct bus *bus, struct bus_sub *sub, struct ag_http_req *req, int64_t max)
{
    uint64_t now = ag_time_mono_ms();
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
        int rc = bus_store_message_append(bus->store, d->seq, &out);
        if (rc != 0) {
            /* The lease runs out and the delivery is retried (or, with
             * the message row gone, eventually dead-lettered). */
            AG_LOGE("engine", "cannot read message %" PRId64 ": %s", d->seq,
                    rc == AG_ENOENT ? "missing" : ag_store_errmsg(bus->store));
            out.len = mark;
            out.data[mark] = '\0';
            continue;
        }
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
    defer_buf(req, &out);
}

/* Answer held pulls of 'sub' while messages are ready, oldest pull first. */
static void
dispatch(struct bus *bus, struct bus_sub *sub)
{
    while (sub->whead != NULL) {
        struct bus_waiter *w = sub->whead;
        if (ag_http_req_is_orphan(w->req)) {
            waiter_unlink(bus, w);
            defer_empty(w->req);
            continue;
        }
        if (sub->q.nready == 0 && (bus_sub_refill(bus, sub) != 0 || sub->q.nready == 0))
            break;
        waiter_unlink(bus, w);
        answer_pull(bus, sub, w->req, w->max);
    }
}

static void
dispatch_touched(struct bus *bus)
{
    while (g_touched != NULL) {
        struct bus_sub *sub = g_touched;
        g_touched = sub->tx_next;
        sub->tx_touched = false;
        sub->tx_next = NULL;
        dispatch(bus, sub);
    }
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
            defer_empty(w->req);
        }
    }
    flush_responses();
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
        touch(sub);
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
            defer_empty(w->req);
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
        touch(sub);
    }
    if (nheld > 0)
        dead_letter(bus, held, nheld, now);
    ag_free(held);
    dispatch_touched(bus);
    /* Answers first: a pipelined request they let in may change the heap. */
    flush_responses();
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

static void
enqueue(struct bus *bus, struct bus_op *op)
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

static struct bus_topic *g_tx_topics; /* topics touched by the commit being written */

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
            t->tx_next = g_tx_topics;
            g_tx_topics = t;
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
    for (struct bus_topic *t = g_tx_topics; t != NULL; t = t->tx_next) {
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
    while (g_tx_topics != NULL) {
        struct bus_topic *t = g_tx_topics;
        g_tx_topics = t->tx_next;
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
        if (op->dup[i])
            continue;
        struct bus_topic *t = op->topics[i];
        for (size_t j = 0; j < t->nsubs; j++) {
            struct bus_sub *sub = t->subs[j];
            sub->pending++;
            if (!sub->spilled && (int64_t)sub->q.n < window) {
                bus_q_add(&sub->q, op->seqs[i], m->subject, m->subject_len, 0, 0, now);
                sub->loaded_to = op->seqs[i];
                touch(sub);
            } else {
                sub->spilled = true;
            }
        }
    }
    ag_buf_append_cstr(&out, "]}");
    defer_buf(op->req, &out);
}

static void
settle_effects(struct bus *bus, struct bus_op *op, uint64_t now)
{
    struct bus_sub *sub = op->sub;
    if (sub == NULL) {
        defer(op->req, RESP_NO_SUB, NULL, 0, op->sub_name);
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
        touch(sub);
        if (op->kind == BUS_OP_ACK)
            ag_counter_add(bus->m_acked, labels, (double)op->nhits);
    }
    char *body =
        ag_asprintf("{\"%s\":%zu}", op->kind == BUS_OP_ACK ? "acked" : "nacked", op->nhits);
    defer(op->req, RESP_BODY, body, strlen(body), NULL);
}

/* A batch could not be committed: put what it held back in circulation and
 * answer its requests 503. */
static void
fail_ops(struct bus_op *ops)
{
    uint64_t now = ag_time_mono_ms();
    for (; ops != NULL; ops = ops->next) {
        if (ops->kind != BUS_OP_PUBLISH) {
            for (size_t i = 0; i < ops->nhits; i++)
                bus_q_retry(ops->hits[i], now, 0);
            if (ops->nhits > 0)
                touch(ops->sub);
        }
        defer(ops->req, RESP_UNAVAILABLE, NULL, 0, NULL);
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
    dispatch_touched(bus);
    drain_admin(bus);
    if (!bus->closing)
        bus_commit(bus);
    flush_responses();
    if (bus->closing)
        maybe_close(bus);
    else
        arm_timer(bus);
}

void
bus_commit(struct bus *bus)
{
    AG_CHECK_MAGIC(bus, BUS_MAGIC);
    struct bus_op *ops = bus->ops_head;
    if (ops == NULL || bus->admin_head != NULL)
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
        fail_ops(ops);
        dispatch_touched(bus);
        flush_responses();
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
        dispatch_touched(bus);
        flush_responses();
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
    flush_responses();
    arm_timer(bus);
}

void
bus_engine_start(struct bus *bus)
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
    if (!bus->handles_open || bus->syncing || bus->nbatches > 0)
        return;
    bus->handles_open = false;
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

/* ---- Helpers for handlers ---- */

/* The subscription named by the path, or NULL after answering 404. */
static struct bus_sub *
sub_param(struct ag_http_req *req, struct bus *bus)
{
    const char *name = ag_req_param(req, "name");
    struct bus_sub *sub = NULL;
    if (name != NULL && bus_name_is_valid(name, strlen(name)))
        sub = bus_sub_find(bus, name);
    if (sub == NULL)
        ag_send_error(req, AG_ENOENT, "no such subscription");
    return sub;
}

static void
json_cleanup(void *arg)
{
    json_decref(arg);
}

/* The JSON body, or an empty object when the request has none. Released
 * with the request; NULL after answering 400 or 415. */
static json_t *
body_or_empty(struct ag_http_req *req)
{
    if (req->body.len > 0)
        return ag_req_json(req);
    json_t *empty = json_object();
    ag_pool_cleanup_add(req->pool, json_cleanup, empty);
    return empty;
}

static void
send_buf(struct ag_http_req *req, int status, struct ag_buf *out)
{
    size_t len;
    char *body = ag_buf_detach(out, &len);
    ag_http_send_take(req, status, JSON_TYPE, body, len);
}

/* ---- Publish ---- */

static void
publish(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!ag_req_is_json(req)) {
        ag_send_error(req, AG_EMEDIATYPE, "the body must be application/json");
        return;
    }
    struct ag_valid v;
    ag_valid_init(&v);
    struct bus_msg_in *msgs;
    size_t n;
    char err[160];
    int rc =
        bus_publish_parse(&v, req->body.ptr, req->body.len, req->pool, &msgs, &n, err, sizeof(err));
    if (rc != 0) {
        if (rc == AG_EPARSE)
            ag_send_error(req, AG_EPARSE, "malformed JSON: %s", err);
        else
            ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    struct bus_op *op = ag_pool_calloc(req->pool, sizeof(*op));
    op->topics = ag_pool_alloc(req->pool, n * sizeof(*op->topics));
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(msgs[i].topic);
        op->topics[i] = bus_topic_get(bus, msgs[i].topic, len, false);
        if (op->topics[i] == NULL && (int64_t)bus->ntopics < bus->settings.max_topics)
            op->topics[i] = bus_topic_get(bus, msgs[i].topic, len, true);
        if (op->topics[i] == NULL) {
            char field[48];
            snprintf(field, sizeof(field), "messages[%zu].topic", i);
            ag_valid_error(&v, field, "limit", "the bus already has %lld topics",
                           (long long)bus->settings.max_topics);
            ag_send_invalid(req, &v);
            ag_valid_release(&v);
            return;
        }
    }
    ag_valid_release(&v);
    op->kind = BUS_OP_PUBLISH;
    op->req = req;
    op->msgs = msgs;
    op->n = n;
    op->seqs = ag_pool_alloc(req->pool, n * sizeof(*op->seqs));
    op->dup = ag_pool_alloc(req->pool, n * sizeof(*op->dup));
    enqueue(bus, op);
}

/* ---- Topics ---- */

static int
topic_cmp(const void *a, const void *b)
{
    const struct bus_topic *const *x = a;
    const struct bus_topic *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void
list_topics(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_topic **v = ag_pool_alloc(req->pool, (bus->ntopics + 1) * sizeof(*v));
    size_t n = 0;
    size_t pos = 0;
    for (struct bus_hnode *h = bus_htab_next(&bus->topics, &pos, NULL); h != NULL;
         h = bus_htab_next(&bus->topics, &pos, h)) {
        struct bus_topic *t = BUS_CONTAINER(h, struct bus_topic, hnode);
        if (t->messages > 0)
            v[n++] = t;
    }
    qsort(v, n, sizeof(*v), topic_cmp);
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"topics\":[");
    for (size_t i = 0; i < n; i++) {
        ag_buf_appendf(&out,
                       "%s{\"name\":\"%s\",\"messages\":%" PRId64 ",\"last_seq\":%" PRId64 "}",
                       i ? "," : "", v[i]->name, v[i]->messages, v[i]->last_seq);
    }
    ag_buf_append_cstr(&out, "]}");
    send_buf(req, 200, &out);
}

/* ---- Subscriptions ---- */

static json_t *
sub_to_json(struct bus *bus, struct bus_sub *sub)
{
    json_t *topics = json_array();
    for (size_t i = 0; i < sub->npatterns; i++)
        json_array_append_new(topics, json_string(sub->patterns[i]));
    int64_t oldest = 0;
    if (sub->pending > 0 && bus_store_oldest_pending(bus->store, sub->id, &oldest) != 0)
        oldest = 0;
    int64_t age = oldest > 0 ? AG_MAX(0, ag_time_unix_ms() - oldest) : 0;
    int64_t in_flight = (int64_t)(sub->q.nleased + sub->q.nheld);
    int64_t delayed = (int64_t)sub->q.ndelayed;
    int64_t ready = AG_MAX(0, sub->pending - in_flight - delayed);
    return json_pack(
        "{s:s, s:o, s:I, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I}}", "name", sub->name, "topics",
        topics, "ack_deadline_ms", (json_int_t)sub->ack_deadline_ms, "max_attempts",
        (json_int_t)sub->max_attempts, "retry_delay_ms", (json_int_t)sub->retry_delay_ms,
        "created_at", sub->created_at, "backlog", "ready", (json_int_t)ready, "in_flight",
        (json_int_t)in_flight, "delayed", (json_int_t)delayed, "dead_letters",
        (json_int_t)sub->dead, "oldest_unacked_age_ms", (json_int_t)age);
}

static int
sub_cmp(const void *a, const void *b)
{
    const struct bus_sub *const *x = a;
    const struct bus_sub *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void
list_subscriptions(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub **v = ag_pool_alloc(req->pool, (bus->nsubs + 1) * sizeof(*v));
    size_t n = 0;
    size_t pos = 0;
    for (struct bus_hnode *h = bus_htab_next(&bus->subs, &pos, NULL); h != NULL;
         h = bus_htab_next(&bus->subs, &pos, h))
        v[n++] = BUS_CONTAINER(h, struct bus_sub, hnode);
    qsort(v, n, sizeof(*v), sub_cmp);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, sub_to_json(bus, v[i]));
    ag_send_json(req, 200, json_pack("{s:o}", "subscriptions", items));
}

static void
get_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub != NULL)
        ag_send_json(req, 200, sub_to_json(bus, sub));
}

static void
put_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    const char *name = ag_req_param(req, "name");
    struct ag_valid v;
    ag_valid_init(&v);
    if (name == NULL || !bus_name_is_valid(name, strlen(name)))
        ag_valid_error(&v, "name", "invalid",
                       "the subscription name in the path must match [a-z0-9][a-z0-9._-]{0,127}");
    json_t *body = ag_req_json(req);
    if (body == NULL) {
        ag_valid_release(&v);
        return;
    }
    struct bus_sub_config cfg;
    if (!bus_sub_config_from_json(&v, body, &cfg) || !ag_valid_ok(&v)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    json_t *arr = json_array();
    for (size_t i = 0; i < cfg.npatterns; i++)
        json_array_append_new(arr, json_string(cfg.patterns[i]));
    struct ag_buf tj = AG_BUF_INIT(0);
    ag_json_dump(arr, &tj);
    json_decref(arr);
    const char *topics_json = ag_buf_cstr(&tj);
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    struct bus_sub *sub = bus_sub_find(bus, name);
    int rc;
    int status = 200;
    if (sub != NULL) {
        rc = bus_store_sub_update(bus->store, sub->id, topics_json, &cfg, now);
        if (rc == 0)
            bus_sub_configure(bus, sub, &cfg);
    } else if ((int64_t)bus->nsubs >= bus->settings.max_subscriptions) {
        ag_buf_release(&tj);
        ag_send_problem(req, 409, "limit", "Conflict", "the bus already has %lld subscriptions",
                        (long long)bus->settings.max_subscriptions);
        return;
    } else {
        int64_t id = 0;
        rc = bus_store_sub_insert(bus->store, name, topics_json, &cfg, now, &id);
        if (rc == 0) {
            sub = bus_sub_new(bus, id, name, &cfg, now);
            status = 201;
            char loc[BUS_NAME_MAX + 32];
            snprintf(loc, sizeof(loc), "/v1/subscriptions/%s", name);
            ag_http_resp_header(req, "Location", loc);
        }
    }
    ag_buf_release(&tj);
    if (rc != 0) {
        ag_send_store_error(req, rc, "subscription");
        return;
    }
    bus_sync_now(bus);
    ag_send_json(req, status, sub_to_json(bus, sub));
}

static void
delete_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_sub_delete(bus->store, sub->id);
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        ag_store_rollback(bus->store);
        ag_send_store_error(req, rc, "subscription");
        return;
    }
    bus_sync_now(bus);
    bus_sub_free(bus, sub, 404);
    flush_responses();
    ag_send_no_content(req);
}

/* ---- Pull, ack, nack ---- */

static void
pull(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = body_or_empty(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t max;
    int64_t wait_ms;
    if (!bus_pull_from_json(&v, body, &max, &wait_ms)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    if (bus->stopping)
        wait_ms = 0;
    if (sub->q.nready == 0)
        bus_sub_refill(bus, sub);
    if (wait_ms == 0 || sub->q.nready > 0) {
        answer_pull(bus, sub, req, max);
        flush_responses();
        return;
    }
    if ((int64_t)bus->nwaiting >= bus->settings.max_waiting) {
        ag_http_resp_header(req, "Retry-After", "1");
        ag_send_problem(req, 503, "too-many-pulls", "Service Unavailable",
                        "%zu pulls are already waiting; retry shortly", bus->nwaiting);
        return;
    }
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

static void
settle(struct ag_http_req *req, struct bus *bus, enum bus_op_kind kind)
{
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct bus_op *op = ag_pool_calloc(req->pool, sizeof(*op));
    if (!bus_acks_from_json(&v, body, kind == BUS_OP_NACK, req->pool, &op->refs, &op->n,
                            &op->delay_ms, &op->error)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    op->kind = kind;
    op->req = req;
    op->sub_name = ag_pool_strdup(req->pool, sub->name);
    op->hits = ag_pool_alloc(req->pool, op->n * sizeof(*op->hits));
    enqueue(bus, op);
}

static void
ack(struct ag_http_req *req, void *udata)
{
    settle(req, udata, BUS_OP_ACK);
}

static void
nack(struct ag_http_req *req, void *udata)
{
    settle(req, udata, BUS_OP_NACK);
}

/* ---- Dead letters ---- */

static void
list_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int64_t limit = DEAD_LIST_DEF;
    int64_t after = 0;
    if (ag_req_query_int(req, "limit", 1, BUS_DEAD_LIST_MAX, &limit) != 0 ||
        ag_req_query_int(req, "after", 0, INT64_MAX, &after) != 0)
        return;
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"messages\":[");
    size_t n;
    int rc = bus_store_dead_list(bus->store, sub->id, after, limit, &out, &n);
    if (rc != 0) {
        ag_buf_release(&out);
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    ag_buf_append_cstr(&out, "]}");
    send_buf(req, 200, &out);
}

static void
get_dead_letter(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    const char *s = ag_req_param(req, "seq");
    int64_t seq;
    if (s == NULL || ag_str_to_i64(ag_str_from_cstr(s), 1, INT64_MAX, &seq) != 0) {
        ag_send_error(req, AG_ENOENT, "no such dead letter");
        return;
    }
    struct ag_buf out = AG_BUF_INIT(0);
    int rc = bus_store_dead_get(bus->store, sub->id, seq, &out);
    if (rc != 0) {
        ag_buf_release(&out);
        ag_send_store_error(req, rc, "dead letter");
        return;
    }
    send_buf(req, 200, &out);
}

static void
replay_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = body_or_empty(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t *seqs;
    size_t nseqs;
    if (!bus_replay_from_json(&v, body, req->pool, &seqs, &nseqs)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct bus_dead_ref *refs = NULL;
    size_t n = 0;
    bool *revived = NULL;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_dead_select(bus->store, sub->id, seqs, nseqs, REPLAY_ALL_MAX, req->pool,
                                   &refs, &n);
    if (rc == 0)
        revived = ag_pool_calloc(req->pool, n + 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = bus_store_dead_revive(bus->store, sub->id, refs[i].seq);
        revived[i] = rc == 0;
        if (rc == AG_ENOENT)
            rc = 0; /* named twice */
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        ag_store_rollback(bus->store);
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    bus_sync_now(bus);
    uint64_t now = ag_time_mono_ms();
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!revived[i])
            continue;
        count++;
        sub->dead--;
        sub->pending++;
        if (!sub->spilled || refs[i].seq <= sub->loaded_to)
            bus_q_add(&sub->q, refs[i].seq, refs[i].subject, refs[i].subject_len, 0, 0, now);
    }
    if (count > 0) {
        touch(sub);
        dispatch_touched(bus);
    }
    flush_responses();
    ag_send_json(req, 200, json_pack("{s:I}", "replayed", (json_int_t)count));
}

static void
purge_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int64_t n = 0;
    int rc = bus_store_dead_purge(bus->store, sub->id, &n);
    if (rc != 0) {
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    bus_sync_now(bus);
    sub->dead = AG_MAX(0, sub->dead - n);
    ag_send_json(req, 200, json_pack("{s:I}", "purged", (json_int_t)n));
}

/* Handlers that change subscriptions wait for the batches in flight. */
#define ADMIN_ROUTE(name)                                                                          \
    static void name##_route(struct ag_http_req *req, void *udata)                                 \
    {                                                                                              \
        bus_run_admin(udata, req, name);                                                           \
    }
ADMIN_ROUTE(put_subscription)
ADMIN_ROUTE(delete_subscription)
ADMIN_ROUTE(replay_dead_letters)
ADMIN_ROUTE(purge_dead_letters)

const struct ag_route bus_routes[] = {
    { "POST", "/v1/messages", publish, AG_ROLE_INTERNAL },
    { "GET", "/v1/topics", list_topics, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions", list_subscriptions, AG_ROLE_INTERNAL },
    { "PUT", "/v1/subscriptions/{name}", put_subscription_route, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}", get_subscription, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/subscriptions/{name}", delete_subscription_route, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/pull", pull, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/ack", ack, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/nack", nack, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}/dead-letters", list_dead_letters, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/subscriptions/{name}/dead-letters", purge_dead_letters_route,
      AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}/dead-letters/{seq}", get_dead_letter, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/dead-letters/replay", replay_dead_letters_route,
      AG_ROLE_INTERNAL },
};
const size_t bus_nroutes = AG_ARRAY_SIZE(bus_routes);
