/* SPDX-License-Identifier: MIT */
/* Analytics domain: the CQRS read side's projection rules. Every consumed
 * CloudEvent is classified (struct an_event), and each projection is a pure
 * function of events: the per-order row is merged field by field so that the
 * result does not depend on the order events arrive in (first time wins,
 * sums add up, status follows precedence), which makes a replay of the event
 * log in any order equal the live projection. Also: report dates,
 * percentiles, ratios. No I/O, no database, no clock. */
#ifndef AN_DOMAIN_H
#define AN_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/time.h"
#include "agora/uuid.h"

#define AN_DAY_LEN    11                        /* "YYYY-MM-DD" and its NUL */
#define AN_REASON_MAX 32                        /* longest cancellation reason kept, NUL included */
#define AN_SKU_MAX    65                        /* longest sku kept, NUL included */
#define AN_LINES_MAX  256                       /* lines of one order or reservation event */
#define AN_AMOUNT_MAX INT64_C(9007199254740991) /* the contracts' money maximum */
#define AN_ID_LEN     (AG_UUID_STRLEN + 1)

/* X(kind, type, field holding the business time ("": the event's time)). */
#define AN_EVENT_KINDS(X)                                                                          \
    X(ORDER_CREATED, "order.created", "created_at")                                                \
    X(ORDER_CONFIRMED, "order.confirmed", "confirmed_at")                                          \
    X(ORDER_CANCELLED, "order.cancelled", "cancelled_at")                                          \
    X(ORDER_COMPLETED, "order.completed", "completed_at")                                          \
    X(PAYMENT_AUTHORIZED, "payment.authorized", "authorized_at")                                   \
    X(PAYMENT_CAPTURED, "payment.captured", "captured_at")                                         \
    X(PAYMENT_VOIDED, "payment.voided", "voided_at")                                               \
    X(PAYMENT_REFUNDED, "payment.refunded", "refunded_at")                                         \
    X(PAYMENT_FAILED, "payment.failed", "failed_at")                                               \
    X(INVENTORY_RESERVED, "inventory.reserved", "")                                                \
    X(INVENTORY_REJECTED, "inventory.rejected", "")                                                \
    X(INVENTORY_RELEASED, "inventory.released", "")                                                \
    X(INVENTORY_COMMITTED, "inventory.committed", "committed_at")                                  \
    X(INVENTORY_RESTOCKED, "inventory.restocked", "restocked_at")                                  \
    X(SHIPMENT_CREATED, "shipment.created", "created_at")                                          \
    X(SHIPMENT_SHIPPED, "shipment.shipped", "shipped_at")                                          \
    X(SHIPMENT_DELIVERED, "shipment.delivered", "delivered_at")                                    \
    X(SHIPMENT_CANCELLED, "shipment.cancelled", "cancelled_at")

enum an_kind {
    AN_K_UNKNOWN = 0, /* a type analytics does not project */
#define AN_X(k, t, f) AN_K_##k,
    AN_EVENT_KINDS(AN_X)
#undef AN_X
};

/* A consumed CloudEvent, classified. Strings and 'data' are borrowed from
 * the JSON it was read from. */
struct an_event {
    enum an_kind kind;
    const char *id;       /* CloudEvent id */
    const char *type;     /* CloudEvent type */
    const char *subject;  /* CloudEvent subject */
    const char *time;     /* CloudEvent time, RFC 3339 */
    int64_t time_ms;      /* 'time' as Unix ms */
    int64_t at_ms;        /* business time: the data's *_at field, else time_ms */
    const char *order_id; /* data.order_id (every projected type has one) */
    const json_t *data;   /* data object */
};

/* Read CloudEvent 'ce' into 'out'. Returns 0; AG_EINVAL when it is not a
 * CloudEvent with an id, a type, a subject, a valid time and object data, or
 * a projected type whose data lacks a valid order_id; AG_ENOENT for a type
 * analytics does not project ('out' still filled). */
int an_event_read(const json_t *ce, struct an_event *out);

/* The kind of event type 'type' (AN_K_UNKNOWN for others). */
enum an_kind an_kind_of(const char *type);

/* ---- The order projection ---- */

/* Status of an order as the events seen so far tell it, by precedence:
 * a cancellation (rejected when its reason is out_of_stock, the saga's
 * rejection) beats completed, which beats confirmed, which beats open. */
#define AN_STATUSES(X)                                                                             \
    X(UNKNOWN, "unknown") /* only other aggregates' events so far */                               \
    X(OPEN, "open")       /* created; neither confirmed nor ended yet */                           \
    X(CONFIRMED, "confirmed")                                                                      \
    X(COMPLETED, "completed")                                                                      \
    X(CANCELLED, "cancelled")                                                                      \
    X(REJECTED, "rejected")

enum an_status {
#define AN_X(s, n) AN_S_##s,
    AN_STATUSES(AN_X)
#undef AN_X
};

const char *an_status_name(enum an_status s);

/* One order as the read side knows it. Times are Unix ms, -1 when unknown;
 * each is the earliest seen for its step, so redeliveries and late events
 * change nothing once the earliest arrived. */
struct an_order {
    char order_id[AN_ID_LEN];
    char user_id[AN_ID_LEN];           /* "" unknown */
    char currency[4];                  /* of the total; "" unknown */
    int64_t total;                     /* minor units; -1 unknown */
    int64_t created_ms;                /* order.created created_at */
    int64_t reserved_ms;               /* inventory.reserved */
    int64_t authorized_ms;             /* payment.authorized authorized_at */
    int64_t shipment_ms;               /* shipment.created created_at */
    int64_t confirmed_ms;              /* order.confirmed confirmed_at */
    int64_t completed_ms;              /* order.completed completed_at */
    int64_t cancelled_ms;              /* order.cancelled cancelled_at */
    char cancel_reason[AN_REASON_MAX]; /* of the earliest cancellation; "" none */
    int64_t refunded;                  /* sum of payment.refunded amounts */
};

/* An order 'order_id' nothing is known about yet. */
void an_order_init(struct an_order *o, const char *order_id);

/* Merge event 'e' into 'o' (same order). Commutative and idempotent for
 * every field but 'refunded' (a sum; the inbox and the event log keep each
 * refund event to one application). Returns true when 'e' is an event of the
 * order projection, false when it does not touch it. */
bool an_order_apply(struct an_order *o, const struct an_event *e);

enum an_status an_order_status(const struct an_order *o);

/* ---- Event contents ---- */

/* One line of order.created. */
struct an_line {
    char product_id[AN_ID_LEN];
    char sku[AN_SKU_MAX];
    int64_t quantity;
    int64_t unit_amount;
    char currency[4];
};

/* The lines of an order.created event into 'out' (capacity 'cap').
 * Returns 0, AG_EINVAL for a malformed line, AG_ETOOBIG past 'cap'. */
int an_event_order_lines(const struct an_event *e, struct an_line *out, size_t cap, size_t *out_n);

/* Stock movement kinds (the stock report's columns). */
#define AN_MOVE_RESERVED  "reserved"
#define AN_MOVE_COMMITTED "committed"
#define AN_MOVE_RESTOCKED "restocked"

/* One product's quantity moved by an inventory event. */
struct an_move {
    char product_id[AN_ID_LEN];
    int64_t quantity;
};

/* The movements of inventory.reserved, .committed or .restocked: their
 * lines (quantities of one product summed) and the kind. Returns 0 (with
 * *out_n 0 and *out_kind NULL for other kinds), AG_EINVAL for a malformed
 * line, AG_ETOOBIG past 'cap'. */
int an_event_moves(const struct an_event *e, struct an_move *out, size_t cap, size_t *out_n,
                   const char **out_kind);

/* inventory.released: the reservation and whether stock went back. */
struct an_release {
    char reservation_id[AN_ID_LEN];
    char reason[AN_REASON_MAX];
    bool returned;
};

/* Returns 0 or AG_EINVAL. */
int an_event_release(const struct an_event *e, struct an_release *out);

/* The reservation id of inventory.reserved ("" for other kinds). */
const char *an_event_reservation_id(const struct an_event *e);

/* payment.refunded: the amount. Returns 0 or AG_EINVAL. */
int an_event_refund(const struct an_event *e, int64_t *out_amount, char out_currency[4]);

/* ---- Reports ---- */

/* "YYYY-MM-DD" (UTC) of Unix ms 'ms' ("" when ms < 0). */
void an_day(int64_t ms, char out[AN_DAY_LEN]);

/* True when 's' is a real calendar date written YYYY-MM-DD (years
 * 1970-9999). */
bool an_day_is_valid(const char *s);

/* The nearest rank (1..n) of percentile 'p' (1..100) among 'n' values: the
 * smallest rank with at least p% of the values at or below it; 0 when n is
 * 0. */
int64_t an_rank(int64_t n, int p);

/* Nearest-rank percentile 'p' (1..100) of the 'n' ascending values of
 * 'sorted'; 0 when n is 0. */
int64_t an_percentile(const int64_t *sorted, size_t n, int p);

/* 'num' / 'den' rounded to 4 decimals; -1 when 'den' is 0 (no ratio). */
double an_ratio(int64_t num, int64_t den);

#endif /* AN_DOMAIN_H */
