/* SPDX-License-Identifier: MIT */
/* Internals of the events runtime shared by events.c (relay, consumers,
 * outbox and inbox SQL, CloudEvent building) and events_bus.c (the embedded
 * bus backend over HTTP), and reached by tests/events/test_events.c for the pure
 * parts. The backend interface (struct ag_events_backend_ops) is the seam a
 * RabbitMQ backend plugs into. Not public; loop thread only. */
#ifndef AG_EVENTS_INT_H
#define AG_EVENTS_INT_H

#include "agora/base.h"
#include "agora/events.h"

#include <jansson.h>
#include <uv.h>

#include "agora/buf.h"
#include "agora/http_client.h"
#include "agora/identity.h"
#include "agora/store.h"

/* Version of the outbox/inbox schema this binary writes, recorded in
 * agora_chassis_schema under module "events". */
#define AG__EVENTS_SCHEMA_VERSION 1

/* Largest publish request body the relay builds (the bus accepts 8 MiB). */
#define AG__EVENTS_MAX_BATCH_BYTES (4u << 20)

/* ---- Backend interface ---- */

/* One message to publish. Borrowed for the publish call; the backend copies
 * what it keeps. */
struct ag__events_out {
    const char *id;      /* event id: the broker's de-duplication key */
    const char *topic;   /* the event type */
    const char *subject; /* ordering key */
    const char *event;   /* the serialized CloudEvent (JSON text) */
    size_t event_len;    /* bytes at 'event' */
};

/* One delivery of a pull. Borrowed for the duration of the callback. */
struct ag__events_msg {
    const char *ack_id;  /* settles this delivery (ack, nack) */
    const char *id;      /* broker message id (the event id), "" if absent */
    const char *topic;   /* "" if absent */
    const char *subject; /* "" if absent */
    int64_t seq;         /* broker sequence number, 0 if absent */
    int64_t attempt;     /* 1 for the first delivery */
    const json_t *event; /* the message data (the CloudEvent), NULL if absent */
};

/* Outcome of one backend call, borrowed for the duration of the callback. */
struct ag__events_result {
    int err;                           /* 0: done. AG_ECLOSED: cancelled. AG_ENOENT: no such
                             subscription. AG_EINVAL: the broker refused the
                             content (will fail again as it is). AG_ETOOBIG:
                             the answer passed the client's limit. AG_EUNAVAIL,
                             AG_ETIMEDOUT, AG_EIO, AG_EPARSE: try again later */
    int status;                        /* HTTP status (or equivalent), 0 when none arrived */
    const char *detail;                /* for logs; never NULL */
    const bool *accepted;              /* publish with err 0: per message, durable on the broker */
    size_t naccepted;                  /* how many of 'accepted' are true */
    const struct ag__events_msg *msgs; /* pull with err 0: deliveries in order */
    size_t nmsgs;
};

typedef void (*ag__events_done_fn)(const struct ag__events_result *res, void *udata);

/* A message broker as the runtime sees it. Every asynchronous operation
 * returns 0 and later calls 'cb' exactly once (never before returning), or
 * returns a negative code and never calls it. Arguments are copied. */
struct ag_events_backend_ops {
    const char *name; /* "bus" */
    /* Publish 'n' messages (1..1000) in one request; 'accepted' says which
     * are durable. */
    int (*publish)(void *be, const struct ag__events_out *msgs, size_t n, ag__events_done_fn cb,
                   void *udata);
    /* Create or update subscription 'sub' bound to 'topics' (idempotent). */
    int (*ensure)(void *be, const char *sub, const char *const *topics, size_t ntopics,
                  const struct ag_events_sub_options *opts, ag__events_done_fn cb, void *udata);
    /* Long poll: up to 'max' deliveries, waiting up to 'wait_ms' for one. */
    int (*pull)(void *be, const char *sub, size_t max, uint64_t wait_ms, ag__events_done_fn cb,
                void *udata);
    /* Settle deliveries: done (ack), or redeliver after 'delay_ms' (nack;
     * 'error' may be NULL). */
    int (*ack)(void *be, const char *sub, const char *const *ack_ids, size_t n,
               ag__events_done_fn cb, void *udata);
    int (*nack)(void *be, const char *sub, const char *const *ack_ids, size_t n, uint64_t delay_ms,
                const char *error, ag__events_done_fn cb, void *udata);
    /* Cancel every pending call started with 'udata': each callback runs
     * once with AG_ECLOSED before this returns. Returns how many. */
    size_t (*cancel)(void *be, void *udata);
    /* Free the backend; no call may be pending. */
    void (*free_be)(void *be);
};

/* The embedded bus backend over 'client' (borrowed; must outlive it) at
 * base URL 'url' ("http://127.0.0.1:8400", copied), signing every call with
 * 'identity' (borrowed, may be NULL). */
extern const struct ag_events_backend_ops ag__events_bus_ops;
int ag__events_bus_new(struct ag_http_client *client, const char *url,
                       struct ag_identity_self *identity, void **out_be);

/* The RabbitMQ backend (events_amqp.c) at 'url'
 * ("amqp://user:pass@host:port/vhost", copied): one I/O thread owns the
 * connection and hands results to 'loop' (borrowed) through a uv_async_t.
 * Returns 0 or AG_EINVAL for a URL it cannot parse. */
extern const struct ag_events_backend_ops ag__events_amqp_ops;
int ag__events_amqp_new(uv_loop_t *loop, const char *url, void **out_be);

/* A copy of 'url' (owned) with the password of its userinfo replaced by
 * "***", for logs. */
char *ag__events_url_redact(const char *url);

/* ---- CloudEvents (pure) ---- */

/* True when 'type' is a valid event type (and broker topic):
 * [a-z0-9][a-z0-9._-]{0,127}. The same rule checks subscription names. */
bool ag__events_name_is_valid(const char *type);

/* True when 'pattern' is a valid subscription topic pattern: a name, a name
 * followed by ".*", or "*". */
bool ag__events_pattern_is_valid(const char *pattern);

/* True when 'subject' is 1..AG_EVENTS_MAX_SUBJECT bytes of valid UTF-8
 * without control characters. */
bool ag__events_subject_is_valid(const char *subject);

/* Build the CloudEvents 1.0 structured JSON of one event, keys in the order
 * specversion, id, source, type, subject, time, datacontenttype, data,
 * traceparent (only when not NULL), and append its compact text to 'out'
 * (whose maximum bounds it). 'time_ms' is Unix milliseconds, written as RFC
 * 3339 UTC. 'data' is borrowed. Returns 0, AG_EINVAL for a bad 'type',
 * 'subject', 'source', 'traceparent' or 'data' (NULL, or not encodable),
 * AG_ETOOBIG when 'out' would pass its maximum ('out' unchanged then). */
int ag__events_cloudevent(const char *id, const char *source, const char *type, const char *subject,
                          int64_t time_ms, const json_t *data, const char *traceparent,
                          struct ag_buf *out);

/* ---- Outbox and inbox SQL (events_store.c) ---- */

/* Create the outbox and inbox tables if missing and record the schema
 * version (one transaction; no transaction may be open). Returns 0,
 * AG_ECONFIG when the database records a newer version than this binary
 * knows, AG_EINVAL when a transaction is open, or a store error. */
int ag__events_schema(struct ag_store *store);

/* Insert one pending row in the caller's open transaction. 'created_ms' is
 * Unix milliseconds. Returns 0 or a store error (AG_EEXIST for a reused id). */
int ag__outbox_insert(struct ag_store *store, const char *id, const char *type, const char *subject,
                      const char *event, size_t event_len, int64_t created_ms);

/* One outbox row taken by the relay. Strings are owned by the batch. */
struct ag__outbox_row {
    int64_t seq;
    char *id;
    char *type;
    char *subject;
    char *event;
    size_t event_len;
};

struct ag__outbox_batch {
    struct ag__outbox_row *rows; /* 'n' rows in seq order */
    size_t n;
    size_t cap;
    size_t bytes; /* sum of event_len */
};

/* Free the rows of 'b' and empty it (keeps nothing). */
void ag__outbox_batch_clear(struct ag__outbox_batch *b);

/* In one transaction: put every in_flight row back to pending (nothing is in
 * flight when this is called, so they are leftovers of a crash or a failed
 * settle), take the oldest pending rows in seq order, at most 'max_rows' and
 * at most 'max_bytes' of events (always at least one row), and mark them
 * in_flight. 'b' must be empty; it is filled (n 0 when nothing is pending).
 * Returns 0 or a store error (then 'b' is empty and nothing changed). */
int ag__outbox_take(struct ag_store *store, size_t max_rows, size_t max_bytes,
                    struct ag__outbox_batch *b);

enum ag__outbox_outcome {
    AG__OUTBOX_PUBLISHED = 0, /* accepted by the broker */
    AG__OUTBOX_RETRY,         /* back to pending, attempts + 1, last_error set */
    AG__OUTBOX_RELEASE,       /* back to pending, attempts unchanged (cancelled) */
    AG__OUTBOX_FAILED,        /* refused for good: failed, attempts + 1, last_error set */
};

/* In one transaction, settle the in_flight rows of 'b': row i gets
 * 'outcome[i]' ('error' is the last_error of retried and failed rows;
 * 'now_ms' the published_at of published ones). Returns 0 or a store error
 * (the rows then stay in_flight until the next ag__outbox_take). */
int ag__outbox_settle(struct ag_store *store, const struct ag__outbox_batch *b,
                      const enum ag__outbox_outcome *outcome, const char *error, int64_t now_ms);

/* Counts for metrics and tests: rows pending or in flight, published,
 * failed, and the creation time (Unix ms) of the oldest pending or in flight
 * row (0 when there is none). Any out pointer may be NULL. */
int ag__outbox_counts(struct ag_store *store, int64_t *out_pending, int64_t *out_published,
                      int64_t *out_failed, int64_t *out_oldest_ms);

/* Delete at most 'limit' published outbox rows whose published_at is before
 * 'cutoff_ms' and at most 'limit' inbox rows received before it, oldest
 * first. Outside a transaction. '*out_outbox' and '*out_inbox' (may be NULL)
 * receive the rows deleted. */
int ag__events_housekeep(struct ag_store *store, int64_t cutoff_ms, size_t limit,
                         int64_t *out_outbox, int64_t *out_inbox);

/* Record that 'subscription' received event 'event_id', in the caller's
 * open transaction. Returns 0, AG_EEXIST when it was already recorded (a
 * duplicate delivery), or another store error. */
int ag__inbox_insert(struct ag_store *store, const char *event_id, const char *subscription,
                     int64_t now_ms);

enum ag__savepoint_op {
    AG__SAVEPOINT_OPEN = 0, /* SAVEPOINT: before a delivery's inbox row and handler */
    AG__SAVEPOINT_UNDO,     /* ROLLBACK TO: the delivery failed; its writes go */
    AG__SAVEPOINT_RELEASE,  /* RELEASE: end the savepoint (after keeping or undoing) */
};

/* Run 'op' on the savepoint that holds one delivery inside a consumer's
 * batch transaction. Returns 0 or a store error (the reason in
 * ag_store_errmsg). */
int ag__inbox_savepoint(struct ag_store *store, enum ag__savepoint_op op);

#endif /* AG_EVENTS_INT_H */
