/* SPDX-License-Identifier: MIT */
/* Events: the transactional outbox, its relay to the broker, and consumers
 * with an inbox (DESIGN.md sections 2-4, STYLE.md section 8).
 *
 * - ag_events_publish() writes a CloudEvents 1.0 event into the service's
 *   outbox table inside the caller's open transaction: the event exists if
 *   and only if the business change commits.
 * - The relay sends outbox rows to the broker in order, in batches, retrying
 *   with capped backoff while the broker is unreachable, and marks what the
 *   broker acknowledged (pending -> published; attempts counted).
 * - A consumer pulls from a subscription (long poll), runs its handler inside
 *   a database transaction together with an inbox insert keyed by event id
 *   (a duplicate is acknowledged and skipped), acks after commit, and nacks
 *   with backoff when the handler fails.
 * - A backend interface (struct ag_events_backend_ops) sits under all of it:
 *   the embedded bus now (platform/bus, over HTTP), RabbitMQ later.
 *
 * One runtime per service, on the service's loop; loop thread only. The
 * outbox and inbox tables are created by ag_events_new (idempotent DDL,
 * recorded in agora_chassis_schema), in the service's own database. */
#ifndef AG_EVENTS_H
#define AG_EVENTS_H

#include "agora/base.h"
#include "agora/http_client.h"
#include "agora/identity.h"
#include "agora/metrics.h"
#include "agora/store.h"

#include <jansson.h>
#include <uv.h>

struct ag_events;

/* Largest serialized CloudEvent (ag_events_publish answers AG_ETOOBIG past
 * it): the bus's limit on one message's data. */
#define AG_EVENTS_MAX_EVENT_BYTES (256 * 1024)
/* Longest subject, in bytes (the bus allows 200 code points). */
#define AG_EVENTS_MAX_SUBJECT 200
/* Topic patterns of one subscription. */
#define AG_EVENTS_MAX_TOPICS 32

/* Zero means the default shown. */
struct ag_events_config {
    const char *source;         /* CloudEvents "source", e.g. "/agora/catalog"; required */
    const char *bus_url;        /* "http://127.0.0.1:8400" (AGORA_BUS_URL); required */
    size_t relay_batch;         /* 100 events per publish request */
    uint64_t relay_poll_ms;     /* 500: outbox check when not kicked */
    uint64_t retry_base_ms;     /* 100: relay/consumer backoff base, doubling... */
    uint64_t retry_max_ms;      /* 10000: ...up to this, with full jitter */
    uint64_t pull_wait_ms;      /* 30000: long-poll wait of consumer pulls */
    size_t pull_batch;          /* 50 messages per pull */
    uint64_t published_keep_ms; /* 86400000: published outbox rows and inbox rows kept this long */
    struct ag_identity_self *identity; /* signs every broker call (the bus requires it);
                                          borrowed, must outlive the runtime; NULL: none */
    bool access_log; /* one info line per delivery applied (type, subject, outcome, time),
                        with the event's trace id: the consumer's access log */
};

/* A consumer's handler: runs inside an open transaction on 'store'. Return 0
 * to commit (then the message is acked), or a negative code to roll back
 * (then it is nacked and redelivered after a backoff). 'event' is the whole
 * CloudEvent (borrowed for the call). */
typedef int (*ag_events_handler_fn)(struct ag_events *ev, struct ag_store *store,
                                    const json_t *event, void *udata);

/* Create the runtime: tables, relay, no consumer yet. 'client' and 'store'
 * are borrowed and must outlive it. */
int ag_events_new(uv_loop_t *loop, struct ag_store *store, struct ag_http_client *client,
                  const struct ag_events_config *cfg, struct ag_events **out_ev);

/* Write an event into the outbox within the caller's open transaction
 * (AG_EINVAL when none is open). 'type' is "<aggregate>.<past tense>",
 * 'subject' the aggregate id (the ordering key), 'data' the payload
 * (borrowed; copied). 'traceparent' may be NULL. The CloudEvent gets a new
 * UUIDv7 id and the current time. 'out_id' (may be NULL) receives the id.
 * Returns 0, AG_EINVAL (no transaction; a bad type, subject, data or
 * traceparent), AG_ETOOBIG (past AG_EVENTS_MAX_EVENT_BYTES) or the store's
 * error. Every failure is logged here with the type and subject: callers
 * return the code (so the transaction rolls back) without logging it. */
int ag_events_publish(struct ag_events *ev, const char *type, const char *subject,
                      const json_t *data, const char *traceparent, char out_id[37]);

/* Tell the relay that a transaction with events committed, so it sends them
 * now rather than at its next poll. Cheap; call after commit. */
void ag_events_kick(struct ag_events *ev);

/* Consume subscription 'name' bound to 'topics' (patterns such as
 * "order.*"), created on the broker if missing (ack deadline, max attempts
 * as the broker defaults). Call before ag_events_start. */
int ag_events_subscribe(struct ag_events *ev, const char *name, const char *const *topics,
                        size_t ntopics, ag_events_handler_fn fn, void *udata);

/* Per-subscription broker settings; zero means the broker's default. */
struct ag_events_sub_options {
    uint64_t ack_deadline_ms; /* lease of one delivery before it is redelivered */
    uint32_t max_attempts;    /* deliveries before the message is dead-lettered */
    uint64_t retry_delay_ms;  /* redelivery delay after an expired lease */
    uint64_t expire_after_ms; /* RabbitMQ: the broker deletes the subscription (and its
                                 dead letters) after this long without a consumer
                                 (x-expires), for one subscription per instance whose
                                 instances come and go (pods); 0: never. The bus keeps
                                 subscriptions until deleted (its names are stable) */
};

/* ag_events_subscribe with broker settings 'opts' (may be NULL: defaults),
 * e.g. a short ack deadline so a crashed consumer's messages come back
 * soon. 'name' must match [a-z0-9][a-z0-9._-]{0,127}; each of the 1 to
 * AG_EVENTS_MAX_TOPICS 'topics' is a topic name, a name followed by ".*",
 * or "*". Everything is copied. Returns 0, or AG_EINVAL for a bad name,
 * pattern or argument, a name already subscribed, or a call after
 * ag_events_start. Loop thread; no callback runs before ag_events_start. */
int ag_events_subscribe_ex(struct ag_events *ev, const char *name, const char *const *topics,
                           size_t ntopics, const struct ag_events_sub_options *opts,
                           ag_events_handler_fn fn, void *udata);

/* Inside a handler: run 'fn(arg_copy, udata)' once the transaction that
 * holds this delivery has committed, before the ack, in delivery order;
 * dropped if the delivery is rolled back instead (a handler error, or a
 * failed commit). 'arg' ('size' bytes, at most AG_EVENTS_AFTER_COMMIT_MAX)
 * is copied. For effects outside the database that must follow the commit:
 * metrics, waking a sender. Returns 0, AG_EINVAL outside a handler or for
 * too big an 'arg'. */
#define AG_EVENTS_AFTER_COMMIT_MAX 128
typedef void (*ag_events_after_fn)(const void *arg, void *udata);
int ag_events_after_commit(struct ag_events *ev, ag_events_after_fn fn, const void *arg,
                           size_t size, void *udata);

/* Observer called after a consumer's transaction committed and before the
 * message is acknowledged to the broker: 'subscription' and 'event' are
 * borrowed for the call. For tests (crash between commit and ack) and for
 * tracing; it must not call back into 'ev'. 'fn' NULL removes it.
 * With an observer, every delivery is committed on its own and observed
 * before the next handler runs; without one, a pulled batch shares one
 * commit (docs/internals/events.md, "Consumers"). */
typedef void (*ag_events_commit_fn)(struct ag_events *ev, const char *subscription,
                                    const json_t *event, void *udata);
void ag_events_on_commit(struct ag_events *ev, ag_events_commit_fn fn, void *udata);

/* Readiness for a service's /ready: 0 once started, every subscription
 * exists on the broker and the last call to the broker got an answer;
 * AG_EUNAVAIL otherwise (the outbox keeps accepting events meanwhile). */
int ag_events_ready(struct ag_events *ev);

/* Start the relay and the consumers. */
void ag_events_start(struct ag_events *ev);

/* Outbox rows not yet published (for /metrics and tests). */
int64_t ag_events_outbox_backlog(struct ag_events *ev);

/* Register events metrics: events_outbox_pending, events_outbox_lag_seconds
 * (age of the oldest pending row), events_published_total,
 * events_consumed_total{subscription,outcome}, events_duplicates_total. */
void ag_events_metrics(struct ag_events *ev, struct ag_metrics *reg);

/* Stop consumers (held pulls cancelled, in-flight handlers finished), try
 * to flush the outbox for at most 'flush_ms', stop the relay, free once all
 * handles closed, then 'cb' (may be NULL). */
void ag_events_stop(struct ag_events *ev, uint64_t flush_ms, void (*cb)(void *udata), void *udata);

#endif /* AG_EVENTS_H */
