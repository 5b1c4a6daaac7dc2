/* SPDX-License-Identifier: MIT */
/* Shipping service internals shared by main.c, api.c, commands.c,
 * shipment.c, events.c and store.c: the service's struct, its settings and
 * each file's calls. */
#ifndef SHIP_SHIPPING_H
#define SHIP_SHIPPING_H

#include "agora/base.h"

#include "agora/buf.h"
#include "agora/events.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define SHIP_PAGE_DEFAULT 20
#define SHIP_PAGE_MAX     100

/* The bus subscription of the saga commands, and its topic pattern. */
#define SHIP_SUBSCRIPTION "shipping"

struct ship_settings {
    char *carrier;            /* AGORA_SHIPPING_CARRIER */
    uint64_t ack_deadline_ms; /* AGORA_SHIPPING_ACK_DEADLINE */
    int64_t kill_after;       /* AGORA_SHIPPING_TEST_KILL_AFTER_COMMIT (tests only) */
};

/* What the command being applied did, counted once its transaction commits
 * (ag_events_after_commit): a rolled-back attempt counts nothing but its
 * error. */
struct ship_effect {
    const char *command; /* "create", "cancel", "unknown"; NULL: nothing pending */
    const char *outcome; /* "created", "replayed", "cancelled", "absent", "refused", "invalid" */
    int entered;         /* status a shipment entered (enum ship_status), or -1 */
};

struct ship {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox and the command consumer */
    struct ag_idem *idem;     /* borrowed from svc: the saga steps applied, with their replies */
    struct ship_settings settings;
    struct ag_metric *m_shipments; /* shipments_total{status} */
    struct ag_metric *m_commands;  /* shipping_commands_total{command,outcome} */
    struct ship_effect fx;         /* of the command in flight */
    int64_t commits;               /* commands committed since start (test fault) */
};

/* Count a shipment entering 'status' (after its commit). */
void ship_count_status(struct ship *sh, enum ship_status status);

/* ---- api.c ---- */
extern const struct ag_route ship_routes[];
extern const size_t ship_nroutes;

/* ---- shipment.c: changes of a shipment, inside the caller's transaction ---- */

/* Apply 'action' to 's' (as read in this transaction): the transition
 * (AG_ECONFLICT when illegal), the row with its history, and the matching
 * event (shipment.shipped with 'carrier', shipment.delivered, or
 * shipment.cancelled with 'reason'). 's' is updated to the new state; its
 * new text fields point at the arguments. 'traceparent' may be NULL.
 * On success, 'out_type' (may be NULL) gets the event's type (static) and
 * 'out_data' (may be NULL) its data (new reference, the caller's).
 * Returns 0, AG_ECONFLICT, or a store or outbox error. */
int ship_shipment_apply(struct ag_store *st, struct ag_events *ev, struct ship_shipment *s,
                        enum ship_action action, const char *carrier, const char *reason,
                        const char *traceparent, const char **out_type, json_t **out_data);

/* ---- commands.c: the saga's commands, through the inbox ---- */
extern const char *const ship_command_topics[];
extern const size_t ship_ncommand_topics;

/* ag_events_handler_fn of the "shipping" subscription; 'udata' is the
 * struct ship. */
int ship_commands_handle(struct ag_events *ev, struct ag_store *store, const json_t *event,
                         void *udata);
/* Commit observer, registered only with AGORA_SHIPPING_TEST_KILL_AFTER_COMMIT
 * (a test switch; an observer makes every delivery commit alone). */
void ship_commands_committed(struct ag_events *ev, const char *subscription, const json_t *event,
                             void *udata);

/* ---- events.c: shipment.* through the outbox ----
 * 'ev' NULL (no runtime, unit tests): nothing is written, 0 is returned.
 * Writes inside the caller's open transaction; returns 0 or the error
 * ag_events_publish logged, which the caller returns to roll back. */
int ship_events_publish(struct ag_events *ev, const char *type, const char *subject,
                        const json_t *data, const char *traceparent);
/* After the commit: send now rather than at the relay's next poll. */
void ship_events_kick(struct ag_events *ev);

/* ---- store.c ---- */
struct ship_filter {
    const char *user_id;  /* or NULL: everyone's */
    const char *order_id; /* or NULL */
    int status;           /* enum ship_status, or -1: any */
    const char *after_id; /* cursor, or NULL */
    int64_t limit;
};

int ship_store_insert(struct ag_store *st, const struct ship_shipment *s);
/* The shipment, strings copied into 'pool'. AG_ENOENT when absent. */
int ship_store_get(struct ag_store *st, const char *id, struct ag_pool *pool,
                   struct ship_shipment *out);
int ship_store_get_by_order(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                            struct ship_shipment *out);
/* Move shipment 'id' from 'from' to 'to' at 'at', appending {status, at} to
 * its history, setting carrier or cancel reason when not NULL. AG_ECONFLICT
 * when it is no longer in 'from'. */
int ship_store_set_status(struct ag_store *st, const char *id, enum ship_status from,
                          enum ship_status to, const char *carrier, const char *reason,
                          const char *at);
/* Append up to f->limit shipments (as served) to 'items'. *out_more tells
 * whether more follow; 'last_id' gets the last id returned. */
int ship_store_list(struct ag_store *st, const struct ship_filter *f, json_t *items, bool *out_more,
                    char last_id[AG_UUID_STRLEN + 1]);

#endif /* SHIP_SHIPPING_H */
