/* SPDX-License-Identifier: MIT */
/* The events runtime (agora/events.h): CloudEvents written into the
 * transactional outbox, the relay that sends outbox rows to the broker in
 * order, and consumers that apply each delivery once through an inbox, all
 * on the service's loop over a backend (events_int.h; the bus backend is
 * events_bus.c). The outbox and inbox SQL is in events_store.c. Design
 * notes: docs/internals/events.md. */
#include "agora/base.h"
#include "agora/events.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agora/backoff.h"
#include "agora/codec.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "agora/uuid.h"
#include "events_int.h"

#define EVENTS_MAGIC 0x45564e54u /* "EVNT" */
#define EV_LOG       "events"

#define DEF_RELAY_BATCH   100
#define MAX_RELAY_BATCH   1000 /* the bus takes at most 1000 messages per publish */
#define DEF_RELAY_POLL_MS 500
#define DEF_RETRY_BASE_MS 100
#define DEF_RETRY_MAX_MS  10000
#define DEF_PULL_WAIT_MS  30000
#define MAX_PULL_WAIT_MS  120000 /* the bus holds a pull at most 2 minutes */
#define DEF_PULL_BATCH    50
#define MAX_PULL_BATCH    1000
#define DEF_KEEP_MS       86400000

#define MAX_SOURCE      256   /* bytes of the CloudEvents source */
#define MAX_SETTLING    4     /* ack/nack calls in flight per subscription */
#define HOUSEKEEP_EVERY 60000 /* ms between housekeeping passes */
#define HOUSEKEEP_LIMIT 1000  /* rows deleted per table and pass */

/* Relay leadership among instances sharing one database (ag_store_lease). */
#define RELAY_LEASE       "events.relay"
#define RELAY_LEASE_TTL   5000 /* ms a taken lease lasts */
#define RELAY_LEASE_RENEW 1000 /* ms between renewals while leading */
#define RELAY_LEASE_SAFE  1500 /* stop relaying this long before the lease ends */

/* ---- CloudEvents and names (pure) ---------------------------------------- */

static bool
name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '.' || c == '_' || c == '-');
}

static bool
name_is_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0))
            return false;
    }
    return true;
}

bool
ag__events_name_is_valid(const char *type)
{
    return type != NULL && name_is_valid(type, strlen(type));
}

bool
ag__events_pattern_is_valid(const char *p)
{
    if (p == NULL)
        return false;
    size_t len = strlen(p);
    if (len == 1 && p[0] == '*')
        return true;
    if (len > 2 && p[len - 1] == '*' && p[len - 2] == '.')
        return name_is_valid(p, len - 2);
    return name_is_valid(p, len);
}

/* 1..'max' bytes of valid UTF-8 without control characters. */
static bool
text_is_valid(const char *s, size_t max)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ag_utf8_next(s + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || cp == 0x7f)
            return false;
        i += n;
    }
    return true;
}

bool
ag__events_subject_is_valid(const char *subject)
{
    return text_is_valid(subject, AG_EVENTS_MAX_SUBJECT);
}

int
ag__events_cloudevent(const char *id, const char *source, const char *type, const char *subject,
                      int64_t time_ms, const json_t *data, const char *traceparent,
                      struct ag_buf *out)
{
    if (id == NULL || !ag_uuid_is_valid(ag_str_from_cstr(id)) ||
        !text_is_valid(source, MAX_SOURCE) || !ag__events_name_is_valid(type) ||
        !ag__events_subject_is_valid(subject) || data == NULL)
        return AG_EINVAL;
    if (traceparent != NULL) {
        struct ag_trace_ctx tc;
        if (ag_trace_parse(ag_str_from_cstr(traceparent), &tc) != 0)
            return AG_EINVAL;
    }
    char ts[AG_RFC3339_LEN];
    ag_time_rfc3339(time_ms, ts);
    json_t *copy = json_deep_copy(data);
    if (copy == NULL)
        return AG_EINVAL;
    json_t *ce = json_object();
    json_object_set_new(ce, "specversion", json_string("1.0"));
    json_object_set_new(ce, "id", json_string(id));
    json_object_set_new(ce, "source", json_string(source));
    json_object_set_new(ce, "type", json_string(type));
    json_object_set_new(ce, "subject", json_string(subject));
    json_object_set_new(ce, "time", json_string(ts));
    json_object_set_new(ce, "datacontenttype", json_string("application/json"));
    json_object_set_new(ce, "data", copy);
    if (traceparent != NULL)
        json_object_set_new(ce, "traceparent", json_string(traceparent));
    int rc = ag_json_dump(ce, out);
    json_decref(ce);
    return rc;
}

/* ---- Runtime objects ----------------------------------------------------- */

enum relay_state {
    RELAY_IDLE = 0,  /* nothing scheduled; a kick or the poll starts a flush */
    RELAY_SCHEDULED, /* relay_timer will flush on the next loop turn */
    RELAY_SENDING,   /* one publish in flight ('batch' holds its rows) */
    RELAY_BACKOFF,   /* relay_timer will flush after a failure's backoff */
};

struct ev_sub;

/* The udata of a subscription's ack and nack calls, distinct from the sub
 * itself (the udata of its pull and ensure calls) so each set can be
 * cancelled on its own. */
struct ev_settle_tag {
    struct ev_sub *sub;
};

struct ev_sub {
    struct ag_events *ev;
    char *name;                        /* subscription name on the broker */
    char **topics;                     /* 'ntopics' patterns */
    size_t ntopics;                    /* 1..AG_EVENTS_MAX_TOPICS */
    struct ag_events_sub_options opts; /* broker settings */
    ag_events_handler_fn fn;
    void *udata;
    uv_timer_t timer;            /* backoff before the next ensure or pull */
    struct ev_settle_tag settle; /* udata of ack and nack calls */
    bool ensured;                /* the broker has the subscription */
    bool busy;                   /* an ensure or a pull is in flight */
    bool want_pull;              /* pull once an ack/nack slot frees up */
    unsigned failures;           /* consecutive broker failures */
    size_t settling;             /* ack and nack calls in flight */
    size_t pull_max;             /* messages per pull: pull_batch, halved on AG_ETOOBIG */
    uint64_t pull_started_ms;    /* monotonic start of the current pull */
};

struct ag_events {
    uint32_t magic;
    int64_t relay_sent_ns;       /* Unix ns of the relay's last send (producer spans) */
    uv_loop_t *loop;             /* borrowed */
    struct ag_store *store;      /* borrowed */
    struct ag_events_config cfg; /* defaults applied; strings below */
    char *source;                /* owned copy of cfg.source */
    char *bus_url;               /* owned copy of cfg.bus_url */
    const struct ag_events_backend_ops *ops;
    void *be;                      /* backend state */
    uint64_t rng;                  /* xorshift64* state for jitter */
    enum relay_state relay;        /* see enum relay_state */
    unsigned relay_failures;       /* consecutive failed publishes */
    int64_t solo_until;            /* send one row at a time up to this seq (0: off) */
    struct ag__outbox_batch batch; /* rows of the publish in flight */
    uv_timer_t relay_timer;        /* next flush (now or after a backoff) */
    uv_timer_t poll_timer;         /* outbox check, gauges, housekeeping */
    uv_timer_t stop_timer;         /* end of the stop's flush window */
    uint64_t next_housekeep_ms;    /* monotonic time of the next housekeeping */
    char holder[MAX_SOURCE + 48];  /* lease holder id: source + '#' + a UUIDv7 per runtime */
    bool leader;                   /* this runtime holds the relay lease */
    uint64_t lease_until_mono;     /* monotonic end of the lease as last renewed */
    uint64_t lease_renew_mono;     /* monotonic time of the next renewal */
    struct ev_sub **subs;          /* 'nsubs' consumers */
    size_t nsubs;
    uint64_t publishes;  /* ag_events_publish calls that wrote a row */
    bool started;        /* ag_events_start ran */
    bool stopping;       /* ag_events_stop ran */
    bool drained;        /* stopping and the outbox was found empty */
    bool finishing;      /* handles closing; nothing new starts */
    bool broker_ok;      /* the last broker call got an answer */
    size_t open_handles; /* timers not yet closed */
    void (*stop_cb)(void *udata);
    void *stop_udata;
    ag_events_commit_fn on_commit;
    void *on_commit_udata;
    /* ag_events_after_commit of the batch being applied: 'cur_delivery' is
     * the delivery whose handler runs (SIZE_MAX outside handlers). */
    struct ev_after *after;
    size_t nafter;
    size_t after_cap;
    size_t cur_delivery;
    struct ag_metric *m_pending;    /* events_outbox_pending */
    struct ag_metric *m_lag;        /* events_outbox_lag_seconds */
    struct ag_metric *m_published;  /* events_published_total */
    struct ag_metric *m_consumed;   /* events_consumed_total{subscription,outcome} */
    struct ag_metric *m_duplicates; /* events_duplicates_total{subscription} */
    struct ag_metric *m_commits;    /* events_consumer_commits_total{subscription} */
};

static uint64_t
rng_next(struct ag_events *ev)
{
    uint64_t x = ev->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ev->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t
backoff(struct ag_events *ev, unsigned failures)
{
    return ag_backoff_full_ms(ev->cfg.retry_base_ms, ev->cfg.retry_max_ms, failures, rng_next(ev));
}

/* Remember whether the broker answered; a cancelled call says nothing. */
static void
broker_note(struct ag_events *ev, const struct ag__events_result *res)
{
    if (res->err != AG_ECLOSED)
        ev->broker_ok = res->err == 0 || (res->status > 0 && res->status < 500);
}

static void update_gauges(struct ag_events *ev);
static void stop_check(struct ag_events *ev);

/* Unix time in ns, for span start times taken before a span begins. */
static int64_t
unix_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Relay --------------------------------------------------------------- */

static void on_relay_timer(uv_timer_t *t);

static void
relay_schedule(struct ag_events *ev, enum relay_state state, uint64_t delay_ms)
{
    if (ev->finishing)
        return;
    ev->relay = state;
    uv_timer_start(&ev->relay_timer, on_relay_timer, delay_ms, 0);
}

/* The OpenTelemetry messaging.system of the broker: "rabbitmq", or "bus"
 * for the embedded bus (no registered name). */
static const char *
messaging_system(const struct ag_events *ev)
{
    return strcmp(ev->ops->name, "amqp") == 0 ? "rabbitmq" : ev->ops->name;
}

/* The context of the span that wrote outbox row 'r' (the traceparent in
 * its CloudEvent, which ag__events_cloudevent writes last; the data may
 * hold the same text, so the last one is the envelope's), as a context
 * whose span_id is that span. False when the row carries none. */
static bool
row_writer_ctx(const struct ag__outbox_row *r, struct ag_trace_ctx *out)
{
    static const char key[] = "\"traceparent\":\"";
    const char *p = NULL;
    for (const char *q = strstr(r->event, key); q != NULL; q = strstr(q + 1, key))
        p = q;
    if (p == NULL ||
        (size_t)(r->event + r->event_len - (p + sizeof(key) - 1)) < AG_TRACEPARENT_LEN ||
        ag_trace_parse(ag_str_make(p + sizeof(key) - 1, AG_TRACEPARENT_LEN), out) != 0)
        return false;
    memcpy(out->span_id, out->parent_id, sizeof(out->span_id));
    return true;
}

/* One PRODUCER span per relayed event whose trace is sampled: from the
 * send to the broker's answer, a sibling of the event's consumers under the
 * span that wrote it. And one INTERNAL span for the batch (OpenTelemetry
 * messaging conventions for a batch send): a child of the first sampled
 * event's writer, so that it lies in a trace people look at rather than in
 * a trace of its own per batch, linked to every event's context, with
 * messaging.batch.message_count; error when the broker did not take all. */
static void
producer_spans(struct ag_events *ev, const struct ag__outbox_batch *b,
               const enum ag__outbox_outcome *oc, const char *error)
{
    struct ag_span batch;
    struct ag_span_links links;
    batch.recording = false;
    for (size_t i = 0; i < b->n && !batch.recording; i++) {
        struct ag_trace_ctx parent;
        if (!row_writer_ctx(&b->rows[i], &parent) || (parent.flags & 1) == 0)
            continue;
        struct ag_trace_ctx ctx;
        ag_trace_child(&parent, &ctx);
        ag_span_begin(&batch, &ctx, "outbox relay", AG_SPAN_INTERNAL);
        ag_span_use_links(&batch, &links);
        batch.start_ns = ev->relay_sent_ns;
        ag_span_attr_str(&batch, "messaging.system", messaging_system(ev));
        ag_span_attr_str(&batch, "messaging.operation.type", "send");
        ag_span_attr_str(&batch, "messaging.operation.name", "publish");
        ag_span_attr_int(&batch, "messaging.batch.message_count", (int64_t)b->n);
    }
    size_t unconfirmed = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct ag__outbox_row *r = &b->rows[i];
        if (oc[i] != AG__OUTBOX_PUBLISHED)
            unconfirmed++;
        struct ag_trace_ctx parent;
        if (!row_writer_ctx(r, &parent))
            continue;
        ag_span_link(&batch, &parent);
        struct ag_trace_ctx ctx;
        ag_trace_child(&parent, &ctx);
        struct ag_span span;
        char name[AG_SPAN_MAX_TEXT];
        snprintf(name, sizeof(name), "%s publish", r->type);
        ag_span_begin(&span, &ctx, name, AG_SPAN_PRODUCER);
        span.start_ns = ev->relay_sent_ns;
        ag_span_attr_str(&span, "messaging.system", messaging_system(ev));
        ag_span_attr_str(&span, "messaging.operation.type", "send");
        ag_span_attr_str(&span, "messaging.destination.name", r->type);
        ag_span_attr_str(&span, "messaging.message.id", r->id);
        ag_span_attr_int(&span, "messaging.batch.message_count", (int64_t)b->n);
        if (oc[i] != AG__OUTBOX_PUBLISHED)
            ag_span_error(&span, "not confirmed by the broker");
        ag_span_end(&span);
    }
    if (unconfirmed > 0)
        ag_span_error(&batch, error != NULL ? error : "not confirmed by the broker");
    ag_span_end(&batch);
}

static void
on_published(const struct ag__events_result *res, void *udata)
{
    struct ag_events *ev = udata;
    struct ag__outbox_batch *b = &ev->batch;
    ev->relay = RELAY_IDLE;
    broker_note(ev, res);
    enum ag__outbox_outcome *oc = ag_calloc(b->n, sizeof(*oc));
    const char *error = res->detail;
    bool failed = false;
    if (res->err == AG_ECLOSED) {
        for (size_t i = 0; i < b->n; i++)
            oc[i] = AG__OUTBOX_RELEASE;
    } else if (res->err == 0) {
        for (size_t i = 0; i < b->n; i++)
            oc[i] = res->accepted[i] ? AG__OUTBOX_PUBLISHED : AG__OUTBOX_RETRY;
        failed = res->naccepted < b->n;
        if (failed)
            error = "the broker did not confirm every message";
    } else if (res->err == AG_EINVAL && b->n > 1) {
        /* One of the rows is refused: send them one by one to find it,
         * without a backoff since the broker is up. */
        for (size_t i = 0; i < b->n; i++)
            oc[i] = AG__OUTBOX_RETRY;
        ev->solo_until = b->rows[b->n - 1].seq;
        AG_LOGW(EV_LOG, "broker refused a batch of %zu events (%s); sending them one by one", b->n,
                res->detail);
    } else if (res->err == AG_EINVAL) {
        oc[0] = AG__OUTBOX_FAILED;
        AG_LOGE(EV_LOG, "broker refused event '%s' of type '%s' for good (%s); marked failed",
                b->rows[0].id, b->rows[0].type, res->detail);
    } else {
        for (size_t i = 0; i < b->n; i++)
            oc[i] = AG__OUTBOX_RETRY;
        failed = true;
    }
    if (ag_span_enabled())
        producer_spans(ev, b, oc, error);
    int rc = ag__outbox_settle(ev->store, b, oc, error, ag_time_unix_ms());
    ag_free(oc);
    if (rc != 0) {
        /* The rows stay pending; the next take reads them again, so
         * nothing is skipped and order is kept. */
        AG_LOGE(EV_LOG, "cannot record the outcome of %zu outbox rows: %s", b->n,
                ag_store_errmsg(ev->store));
        failed = true;
    }
    if (res->err == 0 && res->naccepted > 0) {
        ag_counter_add(ev->m_published, NULL, (double)res->naccepted);
        if (ev->relay_failures > 0)
            AG_LOGI(EV_LOG, "relay: broker reachable again after %u failed attempts",
                    ev->relay_failures);
    }
    if (ev->solo_until != 0 && res->err != AG_EINVAL && b->n > 0 &&
        b->rows[b->n - 1].seq >= ev->solo_until)
        ev->solo_until = 0;
    if (res->err == AG_EINVAL && b->n == 1 && b->rows[0].seq >= ev->solo_until)
        ev->solo_until = 0;
    ag__outbox_batch_clear(b);
    if (res->err == AG_ECLOSED || ev->finishing)
        return;
    if (failed) {
        ev->relay_failures++;
        uint64_t wait = backoff(ev, ev->relay_failures);
        if (ev->relay_failures == 1)
            AG_LOGW(EV_LOG, "relay: cannot publish: %s; retrying with backoff", error);
        else
            AG_LOGD(EV_LOG, "relay: attempt %u failed: %s; next in %llu ms", ev->relay_failures,
                    error, (unsigned long long)wait);
        relay_schedule(ev, RELAY_BACKOFF, wait);
        return;
    }
    ev->relay_failures = 0;
    /* More rows may be waiting (a full batch, or commits meanwhile). */
    relay_schedule(ev, RELAY_SCHEDULED, 0);
}

/* Whether this runtime may relay now: only the holder of the relay lease
 * does, so instances sharing a database never publish the outbox twice at
 * once nor out of order. The lease is renewed every RELAY_LEASE_RENEW ms
 * and trusted until RELAY_LEASE_SAFE ms before it ends; a leader that dies
 * lets it expire and another instance takes it at its next poll. */
static bool
relay_is_leader(struct ag_events *ev)
{
    uint64_t now = ag_time_mono_ms();
    if (ev->leader && now < ev->lease_renew_mono && now + RELAY_LEASE_SAFE < ev->lease_until_mono)
        return true;
    if (!ev->leader && now < ev->lease_renew_mono)
        return false;
    bool held = false;
    int rc = ag_store_lease(ev->store, RELAY_LEASE, ev->holder, ag_time_unix_ms(), RELAY_LEASE_TTL,
                            &held);
    if (rc != 0 && ev->leader)
        AG_LOGW(EV_LOG, "relay: cannot renew the relay lease: %s", ag_store_errmsg(ev->store));
    if (held) {
        ev->lease_until_mono = now + RELAY_LEASE_TTL;
        if (!ev->leader)
            AG_LOGI(EV_LOG, "relay: this instance relays the outbox (lease '%s')", RELAY_LEASE);
    } else if (ev->leader) {
        AG_LOGI(EV_LOG, "relay: another instance relays the outbox now");
    }
    ev->leader = held;
    /* Not leading: ask again at most every renewal period (the poll
     * timer comes by every relay_poll_ms). */
    ev->lease_renew_mono = now + RELAY_LEASE_RENEW;
    return held && now + RELAY_LEASE_SAFE < ev->lease_until_mono;
}

static void
relay_flush(struct ag_events *ev)
{
    ev->relay = RELAY_IDLE;
    if (ev->finishing)
        return;
    if (ag_store_in_tx(ev->store)) {
        /* Only a leaked transaction can be open between loop callbacks. */
        AG_LOGW(EV_LOG, "relay: a transaction is open on the store; retrying later");
        relay_schedule(ev, RELAY_BACKOFF, ev->cfg.retry_base_ms);
        return;
    }
    if (!relay_is_leader(ev)) {
        /* Another instance relays this database's outbox; the poll asks
         * for the lease again. Stopping, there is nothing to flush here. */
        if (ev->stopping) {
            ev->drained = true;
            stop_check(ev);
        }
        return;
    }
    size_t limit = ev->solo_until != 0 ? 1 : ev->cfg.relay_batch;
    int rc = ag__outbox_take(ev->store, limit, AG__EVENTS_MAX_BATCH_BYTES, &ev->batch);
    if (rc != 0) {
        ev->relay_failures++;
        AG_LOGE(EV_LOG, "relay: cannot read the outbox: %s", ag_store_errmsg(ev->store));
        relay_schedule(ev, RELAY_BACKOFF, backoff(ev, ev->relay_failures));
        return;
    }
    if (ev->batch.n == 0) {
        ag_gauge_set(ev->m_pending, NULL, 0);
        ag_gauge_set(ev->m_lag, NULL, 0);
        if (ev->stopping) {
            ev->drained = true;
            stop_check(ev);
        }
        return;
    }
    struct ag__events_out *out = ag_calloc(ev->batch.n, sizeof(*out));
    for (size_t i = 0; i < ev->batch.n; i++) {
        const struct ag__outbox_row *r = &ev->batch.rows[i];
        out[i] = (struct ag__events_out){ r->id, r->type, r->subject, r->event, r->event_len };
    }
    ev->relay = RELAY_SENDING;
    if (ag_span_enabled())
        ev->relay_sent_ns = unix_now_ns();
    rc = ev->ops->publish(ev->be, out, ev->batch.n, on_published, ev);
    ag_free(out);
    if (rc != 0) {
        struct ag__events_result res = { .err = rc == AG_ECLOSED ? AG_EUNAVAIL : rc,
                                         .detail = ag_strerror(rc) };
        on_published(&res, ev);
    }
}

static void
on_relay_timer(uv_timer_t *t)
{
    relay_flush(t->data);
}

void
ag_events_kick(struct ag_events *ev)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    /* While sending, the relay flushes again when the publish succeeds;
     * while backing off, the backoff decides: a kick must not hammer a
     * broker that is down. */
    if (ev->started && ev->relay == RELAY_IDLE)
        relay_schedule(ev, RELAY_SCHEDULED, 0);
}

static void
housekeep(struct ag_events *ev)
{
    uint64_t now = ag_time_mono_ms();
    if (now < ev->next_housekeep_ms || ag_store_in_tx(ev->store))
        return;
    int64_t outbox = 0;
    int64_t inbox = 0;
    int rc = ag__events_housekeep(ev->store, ag_time_unix_ms() - (int64_t)ev->cfg.published_keep_ms,
                                  HOUSEKEEP_LIMIT, &outbox, &inbox);
    if (rc != 0) {
        AG_LOGW(EV_LOG, "housekeeping failed: %s", ag_store_errmsg(ev->store));
        ev->next_housekeep_ms = now + HOUSEKEEP_EVERY;
        return;
    }
    if (outbox > 0 || inbox > 0)
        AG_LOGD(EV_LOG, "housekeeping deleted %lld outbox and %lld inbox rows", (long long)outbox,
                (long long)inbox);
    /* A full pass means more is due: continue at the next poll. */
    bool more = outbox >= HOUSEKEEP_LIMIT || inbox >= HOUSEKEEP_LIMIT;
    ev->next_housekeep_ms = more ? now : now + HOUSEKEEP_EVERY;
}

static void
on_poll(uv_timer_t *t)
{
    struct ag_events *ev = t->data;
    /* Keep the relay lease renewed (or ask for it) whatever the relay is
     * doing: a leader backing off from a broker outage stays the leader. */
    if (!ev->stopping && !ag_store_in_tx(ev->store))
        relay_is_leader(ev);
    ag_events_kick(ev);
    update_gauges(ev);
    housekeep(ev);
}

/* ---- Consumers ----------------------------------------------------------- */

enum consume_outcome {
    CONSUME_OK = 0,    /* handler committed */
    CONSUME_DUPLICATE, /* already in the inbox: skipped */
    CONSUME_ERROR,     /* handler or store failed: rolled back, redelivered */
    CONSUME_INVALID,   /* not a CloudEvent: redelivered until dead-lettered */
};

static const char *const OUTCOME_NAME[] = {
    [CONSUME_OK] = "ok",
    [CONSUME_DUPLICATE] = "duplicate",
    [CONSUME_ERROR] = "error",
    [CONSUME_INVALID] = "invalid",
};

static void sub_ensure(struct ev_sub *s);

struct ev_after {
    size_t delivery; /* index in the pulled batch */
    ag_events_after_fn fn;
    void *udata;
    unsigned char arg[AG_EVENTS_AFTER_COMMIT_MAX];
};

int
ag_events_after_commit(struct ag_events *ev, ag_events_after_fn fn, const void *arg, size_t size,
                       void *udata)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (fn == NULL || ev->cur_delivery == SIZE_MAX || size > AG_EVENTS_AFTER_COMMIT_MAX ||
        (size > 0 && arg == NULL))
        return AG_EINVAL;
    if (ev->nafter == ev->after_cap) {
        ev->after_cap = ev->after_cap ? ev->after_cap * 2 : 16;
        ev->after = ag_realloc(ev->after, ev->after_cap * sizeof(*ev->after));
    }
    struct ev_after *a = &ev->after[ev->nafter++];
    a->delivery = ev->cur_delivery;
    a->fn = fn;
    a->udata = udata;
    if (size > 0)
        memcpy(a->arg, arg, size);
    return 0;
}

/* Forget the after-commit work of deliveries [from, to) of the batch. */
static void
after_drop(struct ag_events *ev, size_t from, size_t to)
{
    size_t w = 0;
    for (size_t r = 0; r < ev->nafter; r++) {
        if (ev->after[r].delivery < from || ev->after[r].delivery >= to)
            ev->after[w++] = ev->after[r];
    }
    ev->nafter = w;
}

/* Run, in order, and forget the after-commit work of deliveries [from, to). */
static void
after_run(struct ag_events *ev, size_t from, size_t to)
{
    for (size_t r = 0; r < ev->nafter; r++) {
        struct ev_after *a = &ev->after[r];
        if (a->delivery >= from && a->delivery < to)
            a->fn(a->arg, a->udata);
    }
    after_drop(ev, from, to);
}
static void sub_pull(struct ev_sub *s);

static void
on_sub_timer(uv_timer_t *t)
{
    struct ev_sub *s = t->data;
    if (s->ensured)
        sub_pull(s);
    else
        sub_ensure(s);
}

static void
sub_wait(struct ev_sub *s, uint64_t delay_ms)
{
    if (!s->ev->stopping)
        uv_timer_start(&s->timer, on_sub_timer, delay_ms, 0);
}

/* A broker call of 's' failed: log the first failure, back off. */
static void
sub_failed(struct ev_sub *s, const char *what, const struct ag__events_result *res)
{
    s->failures++;
    uint64_t wait = backoff(s->ev, s->failures);
    if (res->err == AG_EINVAL) {
        /* Our request is refused (e.g. a pattern the broker rejects): a
         * person must fix the configuration; keep trying slowly. */
        wait = s->ev->cfg.retry_max_ms;
        AG_LOGE(EV_LOG, "subscription '%s': %s refused: %s", s->name, what, res->detail);
    } else if (s->failures == 1) {
        AG_LOGW(EV_LOG, "subscription '%s': %s failed: %s; retrying with backoff", s->name, what,
                res->detail);
    }
    sub_wait(s, wait);
}

static void
sub_recovered(struct ev_sub *s)
{
    if (s->failures > 0)
        AG_LOGI(EV_LOG, "subscription '%s': broker reachable again after %u failures", s->name,
                s->failures);
    s->failures = 0;
}

static void
on_ensured(const struct ag__events_result *res, void *udata)
{
    struct ev_sub *s = udata;
    s->busy = false;
    if (res->err == AG_ECLOSED || s->ev->stopping)
        return;
    broker_note(s->ev, res);
    if (res->err != 0) {
        sub_failed(s, "creating the subscription", res);
        return;
    }
    sub_recovered(s);
    s->ensured = true;
    AG_LOGI(EV_LOG, "subscription '%s' ready on the broker", s->name);
    sub_pull(s);
}

static void
sub_ensure(struct ev_sub *s)
{
    struct ag_events *ev = s->ev;
    if (ev->stopping || s->busy)
        return;
    s->busy = true;
    int rc = ev->ops->ensure(ev->be, s->name, (const char *const *)s->topics, s->ntopics, &s->opts,
                             on_ensured, s);
    if (rc != 0) {
        struct ag__events_result res = { .err = AG_EUNAVAIL, .detail = ag_strerror(rc) };
        on_ensured(&res, s);
    }
}

/* The open transaction is gone (rolled back, or its commit failed): so are
 * the deliveries [first, i) it held, and their after-commit work. */
static void
tx_lost(struct ag_events *ev, enum consume_outcome *oc, size_t first, size_t i)
{
    ag_store_rollback(ev->store);
    after_drop(ev, first, i + 1);
    for (size_t k = first; k < i; k++) {
        if (oc[k] == CONSUME_OK || oc[k] == CONSUME_DUPLICATE)
            oc[k] = CONSUME_ERROR;
    }
}

/* Apply one delivery inside the batch's open transaction, under a savepoint:
 * inbox row and handler's writes are kept together or undone together. 'why'
 * receives the reason of an error or invalid outcome. Sets '*lost_tx' when
 * the transaction itself is gone (a handler that ended it, or a store error
 * that rolled it back), which undoes the batch's earlier deliveries too. */
static enum consume_outcome
consume_one(struct ev_sub *s, const struct ag__events_msg *m, size_t index, char *why,
            size_t whylen, bool *lost_tx)
{
    struct ag_events *ev = s->ev;
    struct ag_store *store = ev->store;
    if (!json_is_object(m->event)) {
        snprintf(why, whylen, "message '%s' is not a CloudEvent", m->id);
        return CONSUME_INVALID;
    }
    const char *id = json_string_value(json_object_get(m->event, "id"));
    if (id == NULL || id[0] == '\0')
        id = m->id;
    if (id[0] == '\0') {
        snprintf(why, whylen, "message without an event id");
        return CONSUME_INVALID;
    }
    int rc = ag__inbox_savepoint(store, AG__SAVEPOINT_OPEN);
    if (rc != 0) {
        snprintf(why, whylen, "cannot open a savepoint: %s", ag_store_errmsg(store));
        *lost_tx = !ag_store_in_tx(store);
        return CONSUME_ERROR;
    }
    enum consume_outcome oc = CONSUME_OK;
    rc = ag__inbox_insert(store, id, s->name, ag_time_unix_ms());
    if (rc == AG_EEXIST) {
        /* Applied before (the ack was lost): nothing was written. */
        oc = CONSUME_DUPLICATE;
    } else if (rc != 0) {
        snprintf(why, whylen, "cannot record event '%s' in the inbox: %s", id,
                 ag_store_errmsg(store));
        oc = CONSUME_ERROR;
    } else {
        /* The handler's span: a child of the span that published the
         * event (its CloudEvent traceparent), current while it runs. */
        struct ag_span span;
        struct ag_trace_ctx producer;
        struct ag_trace_ctx tctx;
        const char *tp = json_string_value(json_object_get(m->event, "traceparent"));
        bool traced = tp != NULL && ag_trace_parse(ag_str_from_cstr(tp), &producer) == 0;
        if (traced) {
            memcpy(producer.span_id, producer.parent_id, sizeof(producer.span_id));
            ag_trace_child(&producer, &tctx);
            char name[AG_SPAN_MAX_TEXT];
            snprintf(name, sizeof(name), "%s process", m->topic[0] ? m->topic : "event");
            ag_span_begin(&span, &tctx, name, AG_SPAN_CONSUMER);
            ag_span_attr_str(&span, "messaging.system", messaging_system(ev));
            ag_span_attr_str(&span, "messaging.operation.type", "process");
            ag_span_attr_str(&span, "messaging.destination.name", m->topic);
            ag_span_attr_str(&span, "messaging.consumer.group.name", s->name);
            ag_span_attr_str(&span, "messaging.message.id", id);
            ag_span_attr_int(&span, "messaging.message.delivery_attempt", m->attempt);
            ag_trace_set_current(&tctx);
            ag_log_set_context(NULL, tctx.trace_id);
        }
        ev->cur_delivery = index;
        uint64_t t0 = ag_time_mono_ns();
        rc = s->fn(ev, store, m->event, s->udata);
        ev->cur_delivery = SIZE_MAX;
        if (ev->cfg.access_log && ag_log_enabled(AG_LOG_INFO)) {
            /* The consumer's access log line, in the event's trace. */
            json_t *f =
                json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "subscription", s->name, "type",
                          m->topic, "subject", m->subject, "outcome",
                          rc == 0 ? "ok" : ag_strerror(rc), "attempt", (json_int_t)m->attempt,
                          "duration_us", (json_int_t)((ag_time_mono_ns() - t0) / 1000));
            if (f != NULL) {
                json_object_set_new(f, "event_id", json_string(id));
                ag_log_json(AG_LOG_INFO, "events", "delivery", f);
                json_decref(f);
            }
        }
        if (traced) {
            ag_trace_set_current(NULL);
            ag_log_set_context(NULL, NULL);
            if (rc != 0)
                ag_span_error(&span, ag_strerror(rc));
            ag_span_end(&span);
        }
        if (rc != 0) {
            snprintf(why, whylen, "handler failed on event '%s': %s", id, ag_strerror(rc));
            oc = CONSUME_ERROR;
        }
    }
    if (!ag_store_in_tx(store)) {
        if (oc == CONSUME_OK)
            snprintf(why, whylen, "handler ended the transaction of event '%s' itself", id);
        *lost_tx = true;
        return CONSUME_ERROR;
    }
    if (oc != CONSUME_OK)
        after_drop(ev, index, index + 1);
    if (oc != CONSUME_OK && ag__inbox_savepoint(store, AG__SAVEPOINT_UNDO) != 0) {
        *lost_tx = true;
        return CONSUME_ERROR;
    }
    if (ag__inbox_savepoint(store, AG__SAVEPOINT_RELEASE) != 0) {
        snprintf(why, whylen, "cannot release the savepoint of event '%s': %s", id,
                 ag_store_errmsg(store));
        *lost_tx = true;
        return CONSUME_ERROR;
    }
    return oc;
}

static void
on_settled(const struct ag__events_result *res, void *udata)
{
    struct ev_sub *s = ((struct ev_settle_tag *)udata)->sub;
    struct ag_events *ev = s->ev;
    s->settling--;
    broker_note(ev, res);
    if (res->err != 0 && res->err != AG_ECLOSED)
        AG_LOGW(EV_LOG,
                "subscription '%s': settling deliveries failed: %s (they will be redelivered "
                "and skipped by the inbox)",
                s->name, res->detail);
    if (ev->stopping) {
        stop_check(ev);
        return;
    }
    if (s->want_pull && s->settling < MAX_SETTLING) {
        s->want_pull = false;
        sub_pull(s);
    }
}

static void
settle_send(struct ev_sub *s, bool ack, const char *const *ids, size_t n, uint64_t delay_ms,
            const char *error)
{
    struct ag_events *ev = s->ev;
    if (n == 0)
        return;
    int rc = ack ? ev->ops->ack(ev->be, s->name, ids, n, on_settled, &s->settle)
                 : ev->ops->nack(ev->be, s->name, ids, n, delay_ms, error, on_settled, &s->settle);
    if (rc == 0)
        s->settling++;
    else
        AG_LOGW(EV_LOG, "subscription '%s': cannot send %s: %s", s->name, ack ? "ack" : "nack",
                ag_strerror(rc));
}

static bool
subject_failed(const char *const *failed, size_t n, const char *subject)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(failed[i], subject) == 0)
            return true;
    }
    return false;
}

/* The context of the span that published delivery 'm' (its CloudEvent
 * traceparent) with span_id = that span; false when it carries none. */
static bool
msg_writer_ctx(const struct ag__events_msg *m, struct ag_trace_ctx *out)
{
    const char *tp = json_string_value(json_object_get(m->event, "traceparent"));
    if (tp == NULL || ag_trace_parse(ag_str_from_cstr(tp), out) != 0)
        return false;
    memcpy(out->span_id, out->parent_id, sizeof(out->span_id));
    return true;
}

/* The span of one transaction of a consumer's batch, over deliveries
 * [first, to), begun at 'start_ns' and ended now with 'outcome' ('rc' != 0:
 * an error): db.transaction with the db.* conventions, like the store's
 * request transactions, a child of the first sampled delivery's publisher
 * and linked to every delivery's context (it belongs to several traces). */
static void
consumer_tx_span(struct ev_sub *s, const struct ag__events_msg *msgs, size_t first, size_t to,
                 int64_t start_ns, const char *outcome, int rc)
{
    struct ag_span span;
    span.recording = false;
    for (size_t k = first; k < to && !span.recording; k++) {
        struct ag_trace_ctx parent;
        if (!msg_writer_ctx(&msgs[k], &parent) || (parent.flags & 1) == 0)
            continue;
        struct ag_trace_ctx ctx;
        ag_trace_child(&parent, &ctx);
        ag_span_begin(&span, &ctx, "db.transaction", AG_SPAN_CLIENT);
    }
    if (!span.recording)
        return;
    struct ag_span_links links;
    ag_span_use_links(&span, &links);
    span.start_ns = start_ns;
    bool pg = strcmp(ag_store_backend(s->ev->store), "postgres") == 0;
    ag_span_attr_str(&span, "db.system", pg ? "postgresql" : "sqlite");
    ag_span_attr_str(&span, "db.operation.name", "transaction");
    ag_span_attr_str(&span, "db.transaction.outcome", outcome);
    ag_span_attr_str(&span, "messaging.consumer.group.name", s->name);
    ag_span_attr_int(&span, "messaging.batch.message_count", (int64_t)(to - first));
    for (size_t k = first; k < to; k++) {
        struct ag_trace_ctx ctx;
        if (msg_writer_ctx(&msgs[k], &ctx))
            ag_span_link(&span, &ctx);
    }
    if (rc != 0)
        ag_span_error(&span, ag_strerror(rc));
    ag_span_end(&span);
}

/* Apply a pulled batch in order in one transaction (one commit, one fsync
 * for the whole batch: under load a batch carries many deliveries), then ack
 * what committed and nack the rest. */
static void
consume_batch(struct ev_sub *s, const struct ag__events_msg *msgs, size_t n)
{
    struct ag_events *ev = s->ev;
    struct ag_store *store = ev->store;
    enum consume_outcome *oc = ag_calloc(n + 1, sizeof(*oc));
    const char **acks = ag_calloc(n + 1, sizeof(*acks));
    const char **nacks = ag_calloc(n + 1, sizeof(*nacks));
    const char **failed = ag_calloc(n + 1, sizeof(*failed));
    size_t nacked = 0;
    size_t nnacked = 0;
    size_t nfailed = 0;
    int64_t attempt = 1;
    bool invalid = false;
    char why[256] = "";
    uint64_t publishes = ev->publishes;
    size_t first = 0; /* first delivery of the open transaction */
    bool in_tx = false;
    int64_t tx_start_ns = 0; /* when it began, while spans are recorded */
    for (size_t i = 0; i <= n; i++) {
        bool last = i == n;
        /* Commit what the open transaction holds at the end of the batch;
         * after every delivery when the service observes commits, since its
         * observer runs between one delivery's commit and the next handler
         * (services keep the effects of the handler for it). */
        if (in_tx && (last || ev->on_commit != NULL)) {
            int rc = ag_store_commit(store);
            if (tx_start_ns != 0)
                consumer_tx_span(s, msgs, first, i, tx_start_ns,
                                 rc == 0 ? "commit" : "commit_failed", rc);
            if (rc == 0) {
                const char *labels[1] = { s->name };
                ag_counter_add(ev->m_commits, labels, 1);
                after_run(ev, first, i);
                for (size_t k = first; k < i && ev->on_commit != NULL; k++) {
                    if (oc[k] == CONSUME_OK)
                        ev->on_commit(ev, s->name, msgs[k].event, ev->on_commit_udata);
                }
            } else {
                char reason[256];
                snprintf(reason, sizeof(reason), "cannot commit a batch of deliveries: %s",
                         ag_store_errmsg(store));
                tx_lost(ev, oc, first, i);
                AG_LOGW(EV_LOG, "subscription '%s': %s", s->name, reason);
                memcpy(why, reason, sizeof(why));
            }
            in_tx = false;
        }
        if (last)
            break;
        const struct ag__events_msg *m = &msgs[i];
        /* Keep per-subject order: after a failure, later messages of the
         * same subject in this batch wait for it (a broker that hands out
         * one message per subject at a time never gets here). */
        if (m->subject[0] != '\0' && subject_failed(failed, nfailed, m->subject)) {
            oc[i] = CONSUME_ERROR;
            continue;
        }
        char reason[256] = "";
        if (!in_tx) {
            int rc = ag_store_begin(store);
            if (rc != 0) {
                snprintf(reason, sizeof(reason), "cannot begin a transaction: %s",
                         ag_store_errmsg(store));
                oc[i] = CONSUME_ERROR;
            } else {
                in_tx = true;
                first = i;
                tx_start_ns = ag_span_enabled() ? unix_now_ns() : 0;
            }
        }
        if (in_tx) {
            bool lost_tx = false;
            oc[i] = consume_one(s, m, i, reason, sizeof(reason), &lost_tx);
            if (lost_tx) {
                if (tx_start_ns != 0)
                    consumer_tx_span(s, msgs, first, i + 1, tx_start_ns, "rollback", AG_EIO);
                tx_lost(ev, oc, first, i);
                in_tx = false;
            }
        }
        if (oc[i] == CONSUME_ERROR || oc[i] == CONSUME_INVALID) {
            AG_LOGW(EV_LOG, "subscription '%s': %s (attempt %lld of message %lld)", s->name,
                    reason[0] ? reason : "an earlier delivery of the batch failed",
                    (long long)m->attempt, (long long)m->seq);
            if (reason[0])
                memcpy(why, reason, sizeof(why));
            if (m->subject[0] != '\0')
                failed[nfailed++] = m->subject;
        }
    }
    /* Events the handlers published (saga steps) go out now. */
    if (ev->publishes != publishes)
        ag_events_kick(ev);
    for (size_t i = 0; i < n; i++) {
        const struct ag__events_msg *m = &msgs[i];
        const char *labels[2] = { s->name, OUTCOME_NAME[oc[i]] };
        ag_counter_add(ev->m_consumed, labels, 1);
        switch (oc[i]) {
        case CONSUME_OK: acks[nacked++] = m->ack_id; break;
        case CONSUME_DUPLICATE:
            ag_counter_add(ev->m_duplicates, labels, 1);
            AG_LOGD(EV_LOG, "subscription '%s': duplicate delivery of '%s' skipped", s->name,
                    m->id);
            acks[nacked++] = m->ack_id;
            break;
        case CONSUME_ERROR:
        case CONSUME_INVALID:
            invalid = invalid || oc[i] == CONSUME_INVALID;
            attempt = AG_MAX(attempt, m->attempt);
            nacks[nnacked++] = m->ack_id;
            break;
        }
    }
    settle_send(s, true, acks, nacked, 0, NULL);
    uint64_t delay = invalid ? ev->cfg.retry_max_ms
                             : backoff(ev, attempt > 0 ? (unsigned)AG_MIN(attempt, 64) : 1);
    settle_send(s, false, nacks, nnacked, delay, why[0] ? why : NULL);
    ag_free(oc);
    ag_free(acks);
    ag_free(nacks);
    ag_free(failed);
}

static void
on_pulled(const struct ag__events_result *res, void *udata)
{
    struct ev_sub *s = udata;
    struct ag_events *ev = s->ev;
    s->busy = false;
    if (res->err == AG_ECLOSED || ev->stopping)
        return;
    broker_note(ev, res);
    if (res->err == AG_ENOENT) {
        /* The broker lost or deleted the subscription: create it again. */
        AG_LOGW(EV_LOG, "subscription '%s' is unknown to the broker; creating it again", s->name);
        s->ensured = false;
        sub_wait(s, ev->cfg.retry_base_ms);
        return;
    }
    if (res->err == AG_ETOOBIG && s->pull_max > 1) {
        /* Big events: the answer passed the HTTP client's response limit.
         * Those deliveries come back after their lease; ask for fewer. */
        s->pull_max /= 2;
        AG_LOGW(EV_LOG, "subscription '%s': pull answer too big; pulling %zu messages at a time",
                s->name, s->pull_max);
        sub_pull(s);
        return;
    }
    if (res->err != 0) {
        sub_failed(s, "pull", res);
        return;
    }
    sub_recovered(s);
    consume_batch(s, res->msgs, res->nmsgs);
    /* An empty answer long before the wait ended (a stopping broker answers
     * at once) must not turn into a busy loop. */
    if (res->nmsgs == 0 && ag_time_mono_ms() - s->pull_started_ms < ev->cfg.pull_wait_ms / 2)
        sub_wait(s, ev->cfg.retry_base_ms);
    else
        sub_pull(s);
}

static void
sub_pull(struct ev_sub *s)
{
    struct ag_events *ev = s->ev;
    if (ev->stopping || s->busy)
        return;
    if (s->settling >= MAX_SETTLING) {
        s->want_pull = true;
        return;
    }
    s->busy = true;
    s->pull_started_ms = ag_time_mono_ms();
    int rc = ev->ops->pull(ev->be, s->name, s->pull_max, ev->cfg.pull_wait_ms, on_pulled, s);
    if (rc != 0) {
        struct ag__events_result res = { .err = AG_EUNAVAIL, .detail = ag_strerror(rc) };
        on_pulled(&res, s);
    }
}

static void
sub_free(struct ev_sub *s)
{
    for (size_t i = 0; i < s->ntopics; i++)
        ag_free(s->topics[i]);
    ag_free(s->topics);
    ag_free(s->name);
    ag_free(s);
}

/* ---- Lifecycle ----------------------------------------------------------- */

int
ag_events_new(uv_loop_t *loop, struct ag_store *store, struct ag_http_client *client,
              const struct ag_events_config *cfg, struct ag_events **out_ev)
{
    if (loop == NULL || store == NULL || client == NULL || cfg == NULL || out_ev == NULL ||
        !text_is_valid(cfg->source, MAX_SOURCE) || cfg->bus_url == NULL)
        return AG_EINVAL;
    const struct ag_events_backend_ops *ops = NULL;
    /* The URL may hold a password (amqp://user:pass@...): logs get it redacted. */
    char *safe_url = ag__events_url_redact(cfg->bus_url);
    if (strncmp(cfg->bus_url, "http://", 7) == 0) {
        ops = &ag__events_bus_ops;
    } else if (strncmp(cfg->bus_url, "amqp://", 7) == 0) {
        ops = &ag__events_amqp_ops;
    } else {
        AG_LOGE(EV_LOG, "broker URL '%s' is neither http:// (bus) nor amqp:// (RabbitMQ)",
                safe_url);
        ag_free(safe_url);
        return AG_EINVAL;
    }
    int rc = ag__events_schema(store);
    if (rc != 0) {
        if (rc == AG_ECONFIG)
            AG_LOGE(EV_LOG, "the database holds an events schema newer than version %d",
                    AG__EVENTS_SCHEMA_VERSION);
        else
            AG_LOGE(EV_LOG, "cannot create the outbox and inbox tables: %s",
                    ag_store_errmsg(store));
        ag_free(safe_url);
        return rc;
    }
    void *be = NULL;
    if (ops == &ag__events_amqp_ops)
        rc = ag__events_amqp_new(loop, cfg->bus_url, &be);
    else
        rc = ag__events_bus_new(client, cfg->bus_url, cfg->identity, &be);
    if (rc != 0) {
        if (rc != AG_ECONFIG) /* AG_ECONFIG: a missing library, logged by the backend */
            AG_LOGE(EV_LOG, "bad broker URL '%s'", safe_url);
        ag_free(safe_url);
        return rc;
    }
    ag_free(safe_url);
    struct ag_events *ev = ag_calloc(1, sizeof(*ev));
    ev->magic = EVENTS_MAGIC;
    ev->cur_delivery = SIZE_MAX;
    ev->loop = loop;
    ev->store = store;
    ev->cfg = *cfg;
    ev->source = ag_strdup(cfg->source);
    ev->bus_url = ag_strdup(cfg->bus_url);
    ev->cfg.source = ev->source;
    ev->cfg.bus_url = ev->bus_url;
    struct ag_events_config *c = &ev->cfg;
    c->relay_batch = c->relay_batch ? AG_MIN(c->relay_batch, MAX_RELAY_BATCH) : DEF_RELAY_BATCH;
    c->relay_poll_ms = c->relay_poll_ms ? c->relay_poll_ms : DEF_RELAY_POLL_MS;
    c->retry_base_ms = c->retry_base_ms ? c->retry_base_ms : DEF_RETRY_BASE_MS;
    c->retry_max_ms = c->retry_max_ms ? c->retry_max_ms : DEF_RETRY_MAX_MS;
    c->retry_max_ms = AG_MAX(c->retry_max_ms, c->retry_base_ms);
    c->pull_wait_ms =
        c->pull_wait_ms ? AG_MIN(c->pull_wait_ms, MAX_PULL_WAIT_MS) : DEF_PULL_WAIT_MS;
    c->pull_batch = c->pull_batch ? AG_MIN(c->pull_batch, MAX_PULL_BATCH) : DEF_PULL_BATCH;
    c->published_keep_ms = c->published_keep_ms ? c->published_keep_ms : DEF_KEEP_MS;
    ev->ops = ops;
    ev->be = be;
    ev->broker_ok = true;
    ev->rng = ag_time_mono_ns() ^ ((uint64_t)(uintptr_t)ev << 12) ^ (uint64_t)getpid();
    char uuid[AG_UUID_STRLEN + 1];
    ag_uuid7(uuid);
    snprintf(ev->holder, sizeof(ev->holder), "%s#%s", ev->source, uuid);
    if (ev->rng == 0)
        ev->rng = 0x9E3779B97F4A7C15ULL;
    uv_timer_t *timers[] = { &ev->relay_timer, &ev->poll_timer, &ev->stop_timer };
    for (size_t i = 0; i < AG_ARRAY_SIZE(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = ev;
        ev->open_handles++;
    }
    *out_ev = ev;
    return 0;
}

int
ag_events_publish(struct ag_events *ev, const char *type, const char *subject, const json_t *data,
                  const char *traceparent, char out_id[37])
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (!ag_store_in_tx(ev->store)) {
        AG_LOGE(EV_LOG, "event '%s' published outside a transaction", type ? type : "(null)");
        return AG_EINVAL;
    }
    char id[AG_UUID_STRLEN + 1];
    ag_uuid7(id);
    int64_t now = ag_time_unix_ms();
    /* No traceparent given: the event continues the trace of the request or
     * delivery being handled, so a saga is one trace across services. */
    char current_tp[AG_TRACEPARENT_LEN + 1];
    if (traceparent == NULL && ag_trace_current() != NULL) {
        ag_trace_format(ag_trace_current(), current_tp);
        traceparent = current_tp;
    }
    struct ag_buf buf = AG_BUF_INIT(AG_EVENTS_MAX_EVENT_BYTES);
    int rc = ag__events_cloudevent(id, ev->source, type, subject, now, data, traceparent, &buf);
    if (rc == 0)
        rc = ag__outbox_insert(ev->store, id, type, subject, ag_buf_cstr(&buf), buf.len, now);
    ag_buf_release(&buf);
    /* Every failure is logged here, once: callers only propagate it. */
    if (rc == AG_EINVAL || rc == AG_ETOOBIG) {
        AG_LOGE(EV_LOG, "cannot publish event '%s' about '%s': %s", type ? type : "(null)",
                subject ? subject : "(null)",
                rc == AG_ETOOBIG ? "larger than the bus takes"
                                 : "bad type, subject, data or traceparent");
        return rc;
    }
    if (rc != 0) {
        AG_LOGE(EV_LOG, "cannot write event '%s' to the outbox: %s", type,
                ag_store_errmsg(ev->store));
        return rc;
    }
    ev->publishes++;
    if (out_id != NULL)
        memcpy(out_id, id, sizeof(id));
    return 0;
}

static int
subscribe(struct ag_events *ev, const char *name, const char *const *topics, size_t ntopics,
          const struct ag_events_sub_options *opts, ag_events_handler_fn fn, void *udata)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (ev->started || fn == NULL || !ag__events_name_is_valid(name) || topics == NULL ||
        ntopics == 0 || ntopics > AG_EVENTS_MAX_TOPICS)
        return AG_EINVAL;
    for (size_t i = 0; i < ntopics; i++) {
        if (!ag__events_pattern_is_valid(topics[i]))
            return AG_EINVAL;
    }
    for (size_t i = 0; i < ev->nsubs; i++) {
        if (strcmp(ev->subs[i]->name, name) == 0)
            return AG_EINVAL;
    }
    struct ev_sub *s = ag_calloc(1, sizeof(*s));
    s->ev = ev;
    s->name = ag_strdup(name);
    s->topics = ag_calloc(ntopics, sizeof(*s->topics));
    for (size_t i = 0; i < ntopics; i++)
        s->topics[i] = ag_strdup(topics[i]);
    s->ntopics = ntopics;
    if (opts != NULL)
        s->opts = *opts;
    s->fn = fn;
    s->udata = udata;
    s->settle.sub = s;
    s->pull_max = ev->cfg.pull_batch;
    uv_timer_init(ev->loop, &s->timer);
    s->timer.data = s;
    ev->open_handles++;
    ev->subs = ag_realloc(ev->subs, (ev->nsubs + 1) * sizeof(*ev->subs));
    ev->subs[ev->nsubs++] = s;
    return 0;
}

int
ag_events_subscribe(struct ag_events *ev, const char *name, const char *const *topics,
                    size_t ntopics, ag_events_handler_fn fn, void *udata)
{
    return subscribe(ev, name, topics, ntopics, NULL, fn, udata);
}

int
ag_events_subscribe_ex(struct ag_events *ev, const char *name, const char *const *topics,
                       size_t ntopics, const struct ag_events_sub_options *opts,
                       ag_events_handler_fn fn, void *udata)
{
    return subscribe(ev, name, topics, ntopics, opts, fn, udata);
}

void
ag_events_on_commit(struct ag_events *ev, ag_events_commit_fn fn, void *udata)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    ev->on_commit = fn;
    ev->on_commit_udata = udata;
}

void
ag_events_start(struct ag_events *ev)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (ev->started || ev->stopping)
        return;
    ev->started = true;
    ev->next_housekeep_ms = ag_time_mono_ms();
    /* Rows a crash left unsettled are pending and simply sent again: the
     * broker de-duplicates by id. */
    relay_schedule(ev, RELAY_SCHEDULED, 0);
    uv_timer_start(&ev->poll_timer, on_poll, ev->cfg.relay_poll_ms, ev->cfg.relay_poll_ms);
    for (size_t i = 0; i < ev->nsubs; i++)
        sub_ensure(ev->subs[i]);
}

int
ag_events_ready(struct ag_events *ev)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (!ev->started || ev->stopping || !ev->broker_ok)
        return AG_EUNAVAIL;
    for (size_t i = 0; i < ev->nsubs; i++) {
        if (!ev->subs[i]->ensured)
            return AG_EUNAVAIL;
    }
    return 0;
}

int64_t
ag_events_outbox_backlog(struct ag_events *ev)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    int64_t pending = 0;
    int rc = ag__outbox_counts(ev->store, &pending, NULL, NULL, NULL);
    return rc != 0 ? rc : pending;
}

static void
update_gauges(struct ag_events *ev)
{
    if (ev->m_pending == NULL || ag_store_in_tx(ev->store))
        return;
    int64_t pending = 0;
    int64_t oldest = 0;
    if (ag__outbox_counts(ev->store, &pending, NULL, NULL, &oldest) != 0)
        return;
    ag_gauge_set(ev->m_pending, NULL, (double)pending);
    int64_t lag = oldest > 0 ? ag_time_unix_ms() - oldest : 0;
    ag_gauge_set(ev->m_lag, NULL, lag > 0 ? (double)lag / 1000.0 : 0.0);
}

void
ag_events_metrics(struct ag_events *ev, struct ag_metrics *reg)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    static const char *const consumed_labels[] = { "subscription", "outcome" };
    static const char *const dup_labels[] = { "subscription" };
    ev->m_pending =
        ag_metrics_gauge(reg, "events_outbox_pending",
                         "Outbox rows not yet published (pending or in flight)", NULL, 0);
    ev->m_lag = ag_metrics_gauge(reg, "events_outbox_lag_seconds",
                                 "Age of the oldest outbox row not yet published", NULL, 0);
    ev->m_published = ag_metrics_counter(reg, "events_published_total",
                                         "Events the broker confirmed durable", NULL, 0);
    ev->m_consumed = ag_metrics_counter(reg, "events_consumed_total",
                                        "Deliveries handled, by outcome (ok, duplicate, error, "
                                        "invalid)",
                                        consumed_labels, 2);
    ev->m_duplicates = ag_metrics_counter(reg, "events_duplicates_total",
                                          "Redelivered events skipped by the inbox", dup_labels, 1);
    ev->m_commits = ag_metrics_counter(reg, "events_consumer_commits_total",
                                       "Transactions committed by the consumer: each holds a "
                                       "pulled batch of deliveries",
                                       dup_labels, 1);
    update_gauges(ev);
}

static void
free_all(struct ag_events *ev)
{
    void (*cb)(void *) = ev->stop_cb;
    void *udata = ev->stop_udata;
    for (size_t i = 0; i < ev->nsubs; i++)
        sub_free(ev->subs[i]);
    ag_free(ev->subs);
    ag__outbox_batch_clear(&ev->batch);
    ag_free(ev->after);
    ev->ops->free_be(ev->be);
    ev->be = NULL;
    ag_free(ev->source);
    ag_free(ev->bus_url);
    ev->magic = 0;
    ag_free(ev);
    if (cb != NULL)
        cb(udata);
}

static void
handle_closed(struct ag_events *ev)
{
    if (--ev->open_handles == 0)
        free_all(ev);
}

static void
on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void
on_sub_timer_closed(uv_handle_t *h)
{
    handle_closed(((struct ev_sub *)h->data)->ev);
}

/* Cancel whatever is still in flight and close every handle; the stop
 * callback runs once they are closed. */
static void
finish(struct ag_events *ev)
{
    if (ev->finishing)
        return;
    ev->finishing = true;
    /* A publish cut short releases its rows (back to pending, resent at
     * the next start); cut acks mean redeliveries the inbox skips. */
    ev->ops->cancel(ev->be, ev);
    for (size_t i = 0; i < ev->nsubs; i++) {
        ev->ops->cancel(ev->be, ev->subs[i]);
        ev->ops->cancel(ev->be, &ev->subs[i]->settle);
    }
    int64_t left = 0;
    if (ev->started && !ag_store_in_tx(ev->store) &&
        ag__outbox_counts(ev->store, &left, NULL, NULL, NULL) == 0 && left > 0)
        AG_LOGW(EV_LOG, "stopping with %lld events in the outbox; they are sent at the next start",
                (long long)left);
    /* Hand the relay over at once rather than after the lease's time. */
    if (ev->leader && !ag_store_in_tx(ev->store)) {
        ev->leader = false;
        if (ag_store_lease_release(ev->store, RELAY_LEASE, ev->holder) != 0)
            AG_LOGW(EV_LOG, "cannot release the relay lease: %s", ag_store_errmsg(ev->store));
    }
    uv_close((uv_handle_t *)&ev->relay_timer, on_timer_closed);
    uv_close((uv_handle_t *)&ev->poll_timer, on_timer_closed);
    uv_close((uv_handle_t *)&ev->stop_timer, on_timer_closed);
    for (size_t i = 0; i < ev->nsubs; i++)
        uv_close((uv_handle_t *)&ev->subs[i]->timer, on_sub_timer_closed);
}

static void
stop_check(struct ag_events *ev)
{
    if (!ev->stopping || !ev->drained || ev->relay == RELAY_SENDING)
        return;
    for (size_t i = 0; i < ev->nsubs; i++) {
        if (ev->subs[i]->settling > 0)
            return;
    }
    finish(ev);
}

static void
on_stop_deadline(uv_timer_t *t)
{
    finish(t->data);
}

void
ag_events_stop(struct ag_events *ev, uint64_t flush_ms, void (*cb)(void *udata), void *udata)
{
    AG_CHECK_MAGIC(ev, EVENTS_MAGIC);
    if (ev->stopping)
        AG_BUG("events runtime stopped twice");
    ev->stopping = true;
    ev->stop_cb = cb;
    ev->stop_udata = udata;
    uv_timer_stop(&ev->poll_timer);
    /* Held pulls end now; acks in flight may finish within the window. */
    for (size_t i = 0; i < ev->nsubs; i++) {
        struct ev_sub *s = ev->subs[i];
        uv_timer_stop(&s->timer);
        ev->ops->cancel(ev->be, s);
    }
    if (!ev->started) {
        finish(ev);
        return;
    }
    uv_timer_start(&ev->stop_timer, on_stop_deadline, flush_ms, 0);
    /* Flush now, also when backing off: one more try within the window.
     * While a publish is in flight, its completion flushes again. */
    if (ev->relay != RELAY_SENDING)
        relay_schedule(ev, RELAY_SCHEDULED, 0);
}
