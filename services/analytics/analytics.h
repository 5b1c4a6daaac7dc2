/* SPDX-License-Identifier: MIT */
/* Analytics service internals shared by main.c, api.c, events.c and
 * store.c: the service's struct, its settings and each file's calls. */
#ifndef AN_ANALYTICS_H
#define AN_ANALYTICS_H

#include "agora/base.h"

#include "agora/events.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define AN_MAGIC        0x414e4c59u /* "ANLY" */
#define AN_SUBSCRIPTION "analytics"
#define AN_REPLAY_PAGE  500 /* events read from the log at once by a rebuild */

struct an_settings {
    int64_t report_rows;      /* AGORA_ANALYTICS_REPORT_ROWS */
    uint64_t ack_deadline_ms; /* AGORA_ANALYTICS_ACK_DEADLINE */
};

struct an {
    uint32_t magic;
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc */
    struct an_settings settings;
    struct ag_metric *m_events;   /* analytics_events_total{outcome} */
    struct ag_metric *m_rebuilds; /* analytics_rebuilds_total */
    const char *outcome;          /* of the delivery being handled */
};

/* ---- api.c ---- */
extern const struct ag_route an_routes[];
extern const size_t an_nroutes;

/* ---- events.c ---- */
extern const char *const an_topics[];
extern const size_t an_ntopics;

/* The consumer (ag_events_handler_fn): log the event, project it. */
int an_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata);

/* Apply event 'e' to every projection, inside the caller's transaction.
 * Returns 0 or a store error. */
int an_project(struct ag_store *st, const struct an_event *e);

/* Empty the projections and replay the whole event log into them, in
 * (time, id) order, inside the caller's transaction. '*out_events' gets the
 * number of events replayed. */
int an_rebuild(struct ag_store *st, int64_t *out_events);

/* ---- store.c ---- */

/* Append 'e' (its data as compact JSON 'data') to the event log. Returns 0,
 * AG_EEXIST when the log holds its id already, or a store error. */
int an_store_event_append(struct ag_store *st, const struct an_event *e, const char *data,
                          int64_t received_ms);
int an_store_event_count(struct ag_store *st, int64_t *out_n);
/* Up to 'limit' logged events after (after_ms, after_id) in replay order,
 * appended to 'out' as CloudEvent objects {id, type, subject, time, data}. */
int an_store_event_page(struct ag_store *st, int64_t after_ms, const char *after_id, int64_t limit,
                        json_t *out);

/* The order row of 'order_id' into 'o' (an_order_init'ed when absent). */
int an_store_order_get(struct ag_store *st, const char *order_id, struct an_order *o);
int an_store_order_put(struct ag_store *st, const struct an_order *o);
int an_store_line_put(struct ag_store *st, const char *order_id, int64_t line_no,
                      const struct an_line *l);
int an_store_move_put(struct ag_store *st, const char *event_id, const char *order_id,
                      const char *reservation_id, const char *kind, const struct an_move *m);
int an_store_release_put(struct ag_store *st, const char *event_id, const char *order_id,
                         const struct an_release *r);
/* Delete every projection row (not the event log). */
int an_store_projections_clear(struct ag_store *st);

/* Report queries. 'from' and 'to' are inclusive YYYY-MM-DD days; each
 * appends at most 'limit' items to the array 'items' and sets '*out_more'
 * when rows were left out. */
int an_store_revenue_by_day(struct ag_store *st, const char *from, const char *to, int64_t limit,
                            json_t *items, bool *out_more);
int an_store_revenue_by_product(struct ag_store *st, const char *from, const char *to,
                                int64_t limit, json_t *items, bool *out_more);
int an_store_orders_by_day(struct ag_store *st, const char *from, const char *to, int64_t limit,
                           json_t *items, bool *out_more);
/* Counts of orders created in the range: all, ever confirmed, completed. */
int an_store_conversion(struct ag_store *st, const char *from, const char *to, int64_t *out_created,
                        int64_t *out_confirmed, int64_t *out_completed);
/* Orders created in the range by status, into object 'out' {status: n}. */
int an_store_outcomes(struct ag_store *st, const char *from, const char *to, json_t *out);
/* Cancellations in the cancelled-day range by reason: items {reason, orders,
 * status}. */
int an_store_cancellations(struct ag_store *st, const char *from, const char *to, int64_t limit,
                           json_t *items, bool *out_more);
/* The saga steps whose latencies the sagas report gives: X(name, the
 * order row's column of the step's start, and of its end). */
#define AN_STEPS(X)                                                                                \
    X(reserve, created_ms, reserved_ms)                                                            \
    X(authorize, reserved_ms, authorized_ms)                                                       \
    X(ship, authorized_ms, shipment_ms)                                                            \
    X(confirm, shipment_ms, confirmed_ms)                                                          \
    X(total, created_ms, confirmed_ms)

enum an_step {
#define AN_X(n, a, b) AN_STEP_##n,
    AN_STEPS(AN_X)
#undef AN_X
        AN_NSTEPS
};

/* Latency of step 'step' (ms: its end minus its start) over the orders
 * created in the range that know both: the count, and the nearest-rank
 * p50, p95 and maximum, each read by rank (no sample is held in memory). */
int an_store_step_stats(struct ag_store *st, enum an_step step, const char *from, const char *to,
                        int64_t *out_n, int64_t *out_p50, int64_t *out_p95, int64_t *out_max);
/* Stock movements per product ('product_id' NULL: all). */
int an_store_stock(struct ag_store *st, const char *product_id, int64_t limit, json_t *items,
                   bool *out_more);

#endif /* AN_ANALYTICS_H */
