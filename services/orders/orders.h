/* SPDX-License-Identifier: MIT */
/* Orders service internals shared by main.c, api.c, saga.c, events.c and
 * store.c: the service's struct, its settings and each file's calls. */
#ifndef ORDERS_ORDERS_H
#define ORDERS_ORDERS_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/events.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define ORDERS_PAGE_DEFAULT    20
#define ORDERS_PAGE_MAX        100
#define ORDERS_SCAN_BATCH      100  /* due saga steps handled per timer pass */
#define ORDERS_ACK_DEADLINE_MS 5000 /* lease of a delivery to the consumer */

struct orders_settings {
    uint64_t step_timeout_ms;  /* AGORA_ORDERS_STEP_TIMEOUT */
    int64_t step_retries;      /* AGORA_ORDERS_STEP_RETRIES */
    uint64_t scan_interval_ms; /* AGORA_ORDERS_SCAN_INTERVAL */
};

struct orders_metrics {
    struct ag_metric *steps;        /* saga_steps_total{step,outcome} */
    struct ag_metric *step_latency; /* saga_step_duration_seconds{step} */
    struct ag_metric *duration;     /* saga_duration_seconds */
    struct ag_metric *orders;       /* orders_total{outcome} */
};

struct orders {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox */
    struct ag_idem *idem;     /* borrowed from svc: checkout Idempotency-Key answers */
    struct orders_settings settings;
    struct orders_metrics metrics;
    uv_timer_t scan;   /* the saga timer: due steps, at start and periodically */
    bool scan_started; /* 'scan' initialised */
};

/* ---- api.c ---- */
extern const struct ag_route orders_routes[];
extern const size_t orders_nroutes;

/* ---- saga.c: the checkout saga, every call inside the caller's open
 * transaction; each returns 0 or an AG_E* code that rolls it back. ---- */

/* Load order 'id': '*out_state' (new reference) and its version.
 * AG_ENOENT when there is no such order. */
int orders_load(struct ag_store *st, const char *id, json_t **out_state);

/* Append the order event 'type' ('data' borrowed) to 'state' (loaded or
 * empty for "created"): apply it (AG_ECONFLICT when the state forbids it),
 * insert it at the next version (AG_EPRECOND when another writer took that
 * version: the caller rolls back and retries, or answers 409), write the
 * projection, and publish the public event the move implies
 * (order.created, .confirmed, .cancelled, .completed). */
int orders_append(struct orders *o, json_t *state, const char *type, json_t *data);

/* Start the saga of a freshly created order: send the reserve step. */
int orders_saga_start(struct orders *o, json_t *state);

/* Customer cancel: AG_ECONFLICT when the order is past cancelling
 * ('*out_why' says why: "shipped", "terminal"). */
int orders_saga_cancel(struct orders *o, json_t *state, const char **out_why);

/* A reply event from a participant ('event' is the CloudEvent). Unknown or
 * stale replies are ignored (0). */
int orders_saga_reply(struct orders *o, const json_t *event);

/* One pass over the due steps: re-send, or compensate after the retries.
 * Runs its own transactions. */
void orders_saga_scan(struct orders *o);

/* Compare every order rebuilt from its events with its projection:
 * '*out_n' orders checked, mismatching ids appended to 'bad' (an array). */
int orders_rebuild_check(struct ag_store *st, int64_t *out_n, json_t *bad);

/* ---- events.c ---- */

/* The consumer of subscription "orders": product.* into the price
 * replica, the participants' replies into the saga. */
int orders_events_handle(struct ag_events *ev, struct ag_store *store, const json_t *event,
                         void *udata);
/* Publish the public event 'type' about order 'order_id' ('data'
 * borrowed), inside the caller's transaction. NULL 'ev': nothing. */
int orders_events_publish(struct ag_events *ev, const char *type, const char *order_id,
                          const json_t *data);
void orders_events_kick(struct ag_events *ev);

/* ---- store.c ---- */

int orders_store_price_upsert(struct ag_store *st, const char *product_id, const char *sku,
                              const char *name, int64_t amount, const char *currency, bool active,
                              int64_t version);
int orders_store_price_delete(struct ag_store *st, const char *product_id, int64_t version);
/* Is 'product_id' in the replica, active and not deleted? */
int orders_store_price_usable(struct ag_store *st, const char *product_id, bool *out_ok);

/* The cart of 'user_id' as {items, total, currency} (new reference). With
 * 'lines' non-NULL, also order lines (line_item) appended to it, and
 * '*out_problem' set to a static message when the cart cannot be checked
 * out (unknown product, inactive, mixed currencies, empty). */
int orders_store_cart_get(struct ag_store *st, const char *user_id, json_t **out_cart,
                          json_t *lines, const char **out_problem);
/* Add 'quantity' (the line is capped at ORDERS_QTY_MAX); AG_ETOOBIG when it
 * would be line ORDERS_CART_MAX + 1. */
int orders_store_cart_add(struct ag_store *st, const char *user_id, const char *product_id,
                          int64_t quantity);
/* AG_ENOENT when the product is not in the cart. */
int orders_store_cart_set(struct ag_store *st, const char *user_id, const char *product_id,
                          int64_t quantity);
int orders_store_cart_remove(struct ag_store *st, const char *user_id, const char *product_id);
int orders_store_cart_clear(struct ag_store *st, const char *user_id);

int orders_store_event_insert(struct ag_store *st, const char *order_id, int64_t version,
                              const char *type, const char *data, const char *at);
/* Every event of 'order_id' in version order, as [{type, data, created_at}]. */
int orders_store_events(struct ag_store *st, const char *order_id, json_t **out_events);
int orders_store_order_get(struct ag_store *st, const char *id, json_t **out_state);
/* Insert (expected 0) or update the projection from version 'expected'
 * (AG_EPRECOND when it is no longer that version). */
int orders_store_order_put(struct ag_store *st, const json_t *state, int64_t expected);
/* Newest first after 'after_id' (or NULL); 'user_id' or 'status' may be
 * NULL. Rendered orders appended to 'items'. */
int orders_store_order_list(struct ag_store *st, const char *user_id, const char *status,
                            const char *after_id, int64_t limit, json_t *items, bool *out_more);
int orders_store_order_ids(struct ag_store *st, json_t *ids);

struct orders_step {
    char order_id[40];
    char step[96];
    char type[64];
    char *command; /* owned (ag_free) */
    int64_t attempt;
    bool pending; /* no outcome yet */
    char outcome[32];
    int64_t deadline_ms; /* when the step is due again (Unix ms) */
};
/* AG_ENOENT when the step was never sent. 'out' command freed by caller. */
int orders_store_step_get(struct ag_store *st, const char *order_id, const char *step,
                          struct orders_step *out);
int orders_store_step_insert(struct ag_store *st, const char *order_id, const char *step,
                             const char *type, const char *command, const char *sent_at,
                             int64_t deadline_ms);
/* Record 'outcome' of step 'step' of 'order_id' if it is pending. '*out_n'
 * (may be NULL) gets 1 when it was, else 0; '*out_sent_ms' (may be NULL) the
 * time its last attempt was sent (Unix ms; 0 when unknown). */
int orders_store_step_outcome(struct ag_store *st, const char *order_id, const char *step,
                              const char *outcome, const char *at, int64_t *out_n,
                              int64_t *out_sent_ms);
int orders_store_step_resent(struct ag_store *st, const char *order_id, const char *step,
                             const char *sent_at, int64_t deadline_ms);
/* Steps of an order as [{step, attempt, sent_at, outcome, outcome_at}]. */
int orders_store_steps(struct ag_store *st, const char *order_id, json_t **out_steps);
/* Up to 'max' due steps (pending, deadline <= now_ms) into 'out' (array of
 * [order_id, step]). */
int orders_store_steps_due(struct ag_store *st, int64_t now_ms, size_t max, json_t *out);
/* Sagas with a pending step: in flight ('failed' false: attempts within
 * 'max_attempt') or failed (beyond). Appends {order_id, status, steps}. */
int orders_store_sagas(struct ag_store *st, bool failed, int64_t max_attempt, int64_t limit,
                       json_t *items);

#endif /* ORDERS_ORDERS_H */
