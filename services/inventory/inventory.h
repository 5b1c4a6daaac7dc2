/* SPDX-License-Identifier: MIT */
/* Inventory service internals shared by main.c, api.c, commands.c,
 * events.c and store.c: the service's struct, its settings and each file's
 * calls. */
#ifndef INV_INVENTORY_H
#define INV_INVENTORY_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/events.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "agora/time.h"
#include "domain.h"

#define INV_PAGE_DEFAULT 20
#define INV_PAGE_MAX     100
#define INV_EXPIRE_BATCH 100 /* reservations released per expiry transaction */
#define INV_MAGIC        0x1a7e5701u

struct inv_settings {
    uint64_t reservation_ttl_ms; /* AGORA_INVENTORY_RESERVATION_TTL */
    int64_t low_threshold;       /* AGORA_INVENTORY_LOW_THRESHOLD */
    int64_t demo_stock;          /* AGORA_INVENTORY_DEMO_STOCK */
    uint64_t ack_deadline_ms;    /* AGORA_INVENTORY_ACK_DEADLINE */
    char *crash_after_commit;    /* AGORA_INVENTORY_CRASH_AFTER_COMMIT (tests only) */
};

/* What the consumer's last transaction did, counted after it commits. */
struct inv_effect {
    const char *command; /* "reserve", "release", "commit", or NULL (not a command) */
    const char *outcome; /* reserved rejected released committed duplicate invalid */
};

struct inv {
    uint32_t magic;
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox and the consumer */
    struct ag_idem *idem;     /* borrowed from svc: the replies given to saga steps */
    struct inv_settings settings;
    struct ag_metric *m_commands; /* inventory_commands_total{command,outcome} */
    struct ag_metric *m_reserved; /* stock_reserved */
    struct inv_effect fx;         /* of the consumer transaction in progress */
    uv_timer_t expiry;            /* releases expired reservations */
    bool expiry_started;
};

/* A product's stock row. */
struct inv_stock {
    char product_id[AG_UUID_STRLEN + 1];
    int64_t on_hand;
    int64_t reserved;
    int64_t low_threshold; /* -1: the service's default */
    bool active;           /* false after product.deleted */
    int64_t version;       /* grows by one per change */
    char created_at[AG_RFC3339_LEN];
    char updated_at[AG_RFC3339_LEN];
};

/* One change of a product's stock, as kept in the history. */
struct inv_movement {
    char id[AG_UUID_STRLEN + 1];
    const char *kind; /* created set adjust reserve release commit deleted */
    int64_t on_hand_delta;
    int64_t reserved_delta;
    const char *reason;   /* "" when none */
    const char *order_id; /* reservation movements, else NULL */
    const char *actor;    /* administrator's user id, else NULL */
};

/* A reservation row (reply documents are JSON text {"type","data"}). */
struct inv_reservation {
    char id[AG_UUID_STRLEN + 1];
    char order_id[AG_UUID_STRLEN + 1];
    char state[16]; /* held committed released rejected */
    char created_at[AG_RFC3339_LEN];
    char expires_at[AG_RFC3339_LEN];
    int64_t expires_ms;
    char committed_at[AG_RFC3339_LEN]; /* "" when not */
    char released_at[AG_RFC3339_LEN];  /* "" when not */
    char release_reason[32];           /* "" when not released */
    char *reserve_reply;               /* in the caller's pool */
    char *commit_reply;                /* or NULL */
    char *release_reply;               /* or NULL */
    char restocked_at[AG_RFC3339_LEN]; /* "" when its units were never put back */
    char *restock_reply;               /* {"type","data"} answered to restock, or NULL */
};

/* ---- api.c ---- */
extern const struct ag_route inv_routes[];
extern const size_t inv_nroutes;

/* The stock as an administrator sees it (new reference). */
json_t *inv_stock_to_json(const struct inv *inv, const struct inv_stock *s);

/* ---- commands.c: the saga commands and the stock changes ----
 * Each runs inside the caller's open transaction, writes its effect, its
 * movements and its events (reply, stock.low, stock.depleted) to the
 * outbox, and returns 0 or an error that rolls everything back. */

/* Apply 'm' (its deltas) to 's', guarded by the domain rules, write the row
 * (expected version s->version; s is updated), the movement and the
 * threshold events. AG_ECONFLICT when the change would hold more than is on
 * hand, AG_ERANGE when out of range, AG_EPRECOND when the row changed. */
int inv_stock_change(struct inv *inv, struct ag_store *st, struct inv_stock *s,
                     struct inv_movement *m, const char *traceparent);

/* Handle the command 'event' (type cmd.inventory.*), recording the outcome
 * in inv->fx. Malformed commands that name an order get a rejection or are
 * logged and dropped (0). */
int inv_command_handle(struct inv *inv, struct ag_store *st, const json_t *event);

/* Release up to INV_EXPIRE_BATCH held reservations whose expiry is at or
 * before 'now_ms', publishing inventory.released (reason expired). '*out_n'
 * gets how many. */
int inv_expire_due(struct inv *inv, struct ag_store *st, int64_t now_ms, int *out_n);

/* A reservation as served by GET /v1/reservations/{id} (new reference),
 * its lines read from the store. */
int inv_reservation_json(struct ag_store *st, const struct inv_reservation *r, json_t **out);

/* ---- events.c ---- */

/* Publish 'type' about 'subject' with 'data' (borrowed) into the outbox,
 * inside the caller's transaction. 'ev' NULL (unit tests): nothing, 0. */
int inv_events_publish(struct ag_events *ev, const char *type, const char *subject,
                       const json_t *data, const char *traceparent);
/* The consumer of subscription "inventory": product.* and cmd.inventory.*. */
int inv_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata);
/* Commit observer, registered only with AGORA_INVENTORY_CRASH_AFTER_COMMIT
 * (a test switch; an observer makes every delivery commit alone). */
void inv_events_committed(struct ag_events *ev, const char *subscription, const json_t *event,
                          void *udata);
/* After a commit: send what it wrote now rather than at the relay's poll. */
void inv_events_kick(struct ag_events *ev);

/* ---- store.c ---- */
int inv_store_stock_get(struct ag_store *st, const char *product_id, struct inv_stock *out);
/* A new row with 'on_hand' units; AG_EEXIST when it exists. */
int inv_store_stock_insert(struct ag_store *st, const char *product_id, const char *now);
/* Write 's' with version s->version + 1 when the stored version is
 * s->version; AG_EPRECOND otherwise, AG_ECONFLICT when a CHECK fails. */
int inv_store_stock_update(struct ag_store *st, const struct inv_stock *s, const char *now);
int inv_store_stock_reserved_total(struct ag_store *st, int64_t *out_n);

/* Insert 'm' with the stock after it ('on_hand', 'reserved'); 'now' its
 * time. AG_EEXIST when its idempotency key was used for this product. */
int inv_store_movement_insert(struct ag_store *st, const char *product_id,
                              const struct inv_movement *m, int64_t on_hand, int64_t reserved,
                              const char *now);
/* Newest first, after 'after_id' (or NULL), up to 'limit', appended to
 * 'items'; '*out_more' when more follow. */
int inv_store_movement_list(struct ag_store *st, const char *product_id, const char *after_id,
                            int64_t limit, json_t *items, bool *out_more);

int inv_store_reservation_by_order(struct ag_store *st, const char *order_id, struct ag_pool *pool,
                                   struct inv_reservation *out);
int inv_store_reservation_by_id(struct ag_store *st, const char *id, struct ag_pool *pool,
                                struct inv_reservation *out);
int inv_store_reservation_insert(struct ag_store *st, const struct inv_reservation *r);
/* Write state, times, reason and the commit and release replies. */
int inv_store_reservation_update(struct ag_store *st, const struct inv_reservation *r);
/* Up to 'max' order ids of held reservations expired at 'now_ms'. */
int inv_store_reservation_due(struct ag_store *st, int64_t now_ms, size_t max,
                              char (*out_ids)[AG_UUID_STRLEN + 1], size_t *out_n);
/* Reservations, newest first, optionally of one order, after 'after_id'. */
int inv_store_reservation_list(struct ag_store *st, const char *order_id, const char *after_id,
                               int64_t limit, struct ag_pool *pool, json_t *items, bool *out_more);

int inv_store_line_insert(struct ag_store *st, const char *reservation_id,
                          const struct inv_line *l);
/* The lines of a reservation (up to INV_LINES_MAX) into 'out'. */
int inv_store_lines_get(struct ag_store *st, const char *reservation_id, struct inv_line *out,
                        size_t *out_n);

#endif /* INV_INVENTORY_H */
