/* SPDX-License-Identifier: MIT */
/* Notifications service internals shared by main.c (composition root),
 * api.c (handlers), events.c (the consumer), sender.c (SMTP delivery on
 * the libuv thread pool) and store.c (SQL). Loop thread only, except where
 * sender.c says otherwise. */
#ifndef NOTIFY_NOTIFICATIONS_H
#define NOTIFY_NOTIFICATIONS_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/events.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define NOTIFY_MAGIC         0x4e4f5446u /* "NOTF" */
#define NOTIFY_PAGE_DEFAULT  20
#define NOTIFY_PAGE_MAX      100
#define NOTIFY_TEMPLATES_MAX 200 /* templates listed at most */

struct notify_settings {
    char *smtp_url;           /* AGORA_SMTP_URL; "" = record only */
    char *smtp_from;          /* AGORA_SMTP_FROM */
    char *smtp_user;          /* AGORA_SMTP_USER; never logged */
    char *smtp_password;      /* AGORA_SMTP_PASSWORD; never logged */
    bool smtp_starttls;       /* AGORA_SMTP_STARTTLS: require STARTTLS */
    uint64_t smtp_timeout_ms; /* AGORA_SMTP_TIMEOUT */
    int64_t smtp_concurrency; /* AGORA_SMTP_CONCURRENCY */
    int64_t max_attempts;     /* AGORA_NOTIFY_MAX_ATTEMPTS */
    uint64_t retry_base_ms;   /* AGORA_NOTIFY_RETRY_BASE */
    uint64_t retry_max_ms;    /* AGORA_NOTIFY_RETRY_MAX */
    uint64_t poll_ms;         /* AGORA_NOTIFY_POLL_INTERVAL */
    uint64_t ack_deadline_ms; /* AGORA_NOTIFY_ACK_DEADLINE */
};

struct notify_sender;

/* Effects of the event being handled, applied once its transaction has
 * committed (ag_events_after_commit). */
struct notify_tx_effects {
    const char *outcome; /* a status name for a new notification, or "ignored",
                            "unaddressable", "invalid", "duplicate"; static; NULL: none */
};

struct notify {
    uint32_t magic;
    struct ag_service *svc; /* borrowed */
    struct ag_store *store; /* borrowed from svc */
    struct notify_settings settings;
    bool smtp_enabled;                   /* AGORA_SMTP_URL set */
    bool stopping;                       /* on_stopping ran */
    char from_name[NOTIFY_NAME_MAX + 1]; /* parsed AGORA_SMTP_FROM */
    char from_addr[NOTIFY_EMAIL_MAX + 1];
    struct ag_events *ev;           /* NULL without a bus, or once stopped */
    struct notify_sender *sender;   /* NULL without SMTP */
    struct notify_tx_effects fx;    /* of the event being handled */
    struct ag_metric *m_deliveries; /* notify_deliveries_total{status} */
    struct ag_metric *m_events;     /* notify_events_total{outcome} */
    struct ag_metric *m_pending;    /* notify_pending */
    struct ag_metric *m_duration;   /* notify_send_duration_seconds */
};

/* ---- api.c ---- */
extern const struct ag_route notify_routes[];
extern const size_t notify_nroutes;

/* ---- events.c ---- */

/* Event types (patterns) consumed, and the subscription name. */
extern const char *const notify_topics[];
extern const size_t notify_ntopics;
#define NOTIFY_SUBSCRIPTION "notifications"

/* The consumer's handler (ag_events_handler_fn): replicas, template, one
 * notification row, all in the transaction the runtime opened on 'st'. */
int notify_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event,
                         void *udata);

/* ---- sender.c ----
 * Sends pending notifications by e-mail: claims due rows on the loop
 * thread, runs curl_easy_perform on the libuv thread pool, at most
 * AGORA_SMTP_CONCURRENCY at a time, and settles each row through the
 * delivery state machine (domain.h) when its send is over. */

/* Create the sender for 'n' (settings, store and metrics are read from
 * it) on 'loop'. Rows left in flight by a crash are released. Returns 0 or
 * a store error. */
int notify_sender_new(uv_loop_t *loop, struct notify *n, struct notify_sender **out);

/* Look for due rows now (after a commit), rather than at the next poll. */
void notify_sender_kick(struct notify_sender *s);

/* Stop claiming, cancel sends in flight (their rows stay pending, the
 * attempt not counted), and free once the last one returned. */
void notify_sender_stop(struct notify_sender *s);

/* libcurl's global state, if the sender loaded it: release it at exit,
 * after the loop and its threads are done. */
void notify_sender_global_cleanup(void);

/* ---- store.c ---- */

/* Replica of users: apply an e-mail and/or name (NULL: keep) known at
 * 'changed_ms' unless a later change was applied already. */
int notify_store_user_put(struct ag_store *st, const char *user_id, const char *email,
                          const char *name, int64_t changed_ms);
/* E-mail and name of 'user_id' copied into 'pool'; AG_ENOENT when unknown. */
int notify_store_user_get(struct ag_store *st, const char *user_id, struct ag_pool *pool,
                          const char **out_email, const char **out_name);

/* Replica of orders: order_id -> user_id (first write wins). */
int notify_store_order_put(struct ag_store *st, const char *order_id, const char *user_id,
                           const char *created_at);
int notify_store_order_user(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                            const char **out_user_id);

struct notify_template {
    const char *type;
    const char *subject;
    const char *body;
    bool enabled;
    const char *updated_at;
};

/* Template of 'type' copied into 'pool'; AG_ENOENT when none. */
int notify_store_template_get(struct ag_store *st, const char *type, struct ag_pool *pool,
                              struct notify_template *out);
/* Every template as a JSON array (new reference), by type. */
int notify_store_template_list(struct ag_store *st, json_t **out_items);
/* Insert or replace; '*out_created' tells which. */
int notify_store_template_put(struct ag_store *st, const struct notify_template *t,
                              bool *out_created);

/* Insert 'r' (seq ignored). AG_EEXIST when a notification for the same
 * event exists already. */
int notify_store_insert(struct ag_store *st, const struct notify_record *r);

/* One notification copied into 'pool'; AG_ENOENT when absent. */
int notify_store_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                     struct notify_record *out);

struct notify_filter {
    const char *user_id; /* or NULL: everybody's */
    const char *status;  /* or NULL */
    const char *type;    /* or NULL */
    int64_t before_seq;  /* cursor: only older rows; 0: from the newest */
    int64_t limit;
};

/* Newest first: append up to f->limit records (JSON, 'admin' view) to
 * 'items'; '*out_more' tells whether older rows follow and '*out_last_seq'
 * is the seq of the last row returned. */
int notify_store_list(struct ag_store *st, const struct notify_filter *f, bool admin, json_t *items,
                      bool *out_more, int64_t *out_last_seq);

/* ---- Delivery (sender.c via store.c) ---- */

/* A row claimed for sending. Strings owned (ag_free via
 * notify_store_claimed_free). */
struct notify_claimed {
    char *id;
    char *type;
    char *recipient;
    char *recipient_name;
    char *subject;
    char *body;
    int64_t attempts;
};

void notify_store_claimed_free(struct notify_claimed *c);

/* In one transaction, take up to 'max' pending rows due at 'now_ms' that
 * are not in flight, oldest due first, and mark them in flight. '*out' gets
 * an array (ag_free) of '*out_n' rows. */
int notify_store_claim(struct ag_store *st, int64_t now_ms, size_t max, struct notify_claimed **out,
                       size_t *out_n);

/* Settle a claimed row: its new status, attempts, next attempt (pending),
 * last error (NULL: keep) and sent_at (NULL: none); no longer in flight. */
int notify_store_settle(struct ag_store *st, const char *id, enum notify_status status,
                        int64_t attempts, int64_t next_ms, const char *last_error,
                        const char *sent_at);

/* Release every row marked in flight (at start, nothing is). */
int notify_store_release_all(struct ag_store *st);

/* When the earliest pending row not in flight is due (unix ms), or -1. */
int notify_store_next_due(struct ag_store *st, int64_t *out_ms);

/* Pending rows (for the notify_pending gauge). */
int notify_store_count_pending(struct ag_store *st, int64_t *out_n);

#endif /* NOTIFY_NOTIFICATIONS_H */
