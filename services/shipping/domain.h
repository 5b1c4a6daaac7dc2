/* SPDX-License-Identifier: MIT */
/* Shipping domain: the shipment's state machine (created -> shipped ->
 * delivered, created -> cancelled), validation of the saga's commands, the
 * JSON representation of a shipment and of the reply events, tracking
 * numbers and list cursors. Pure functions: no I/O, no database, no clock. */
#ifndef SHIP_DOMAIN_H
#define SHIP_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/json.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define SHIP_LINES_MAX    100 /* lines of one shipment */
#define SHIP_QUANTITY_MAX INT64_C(2147483647)
#define SHIP_STEP_MAX     64 /* bytes of the step name after "<order_id>:" */
#define SHIP_REASON_MAX   64 /* bytes of a cancel reason */
#define SHIP_CARRIER_MAX  50 /* code points, as shipment.shipped allows */
#define SHIP_TRACKING_LEN 19 /* "AGS" and 16 upper-case hex digits */
#define SHIP_STEP_KEY_MAX (AG_UUID_STRLEN + 1 + SHIP_STEP_MAX)

/* The reason an administrator's cancel gives (POST /v1/shipments/{id}/cancel). */
#define SHIP_REASON_ADMIN "admin_request"

/* X(NAME, "name"): every status of a shipment, in the order of its life. */
#define SHIP_STATUSES(X)                                                                           \
    X(CREATED, "created")     /* made by cmd.shipment.create; may still be cancelled */            \
    X(SHIPPED, "shipped")     /* left with the carrier; can no longer be cancelled */              \
    X(DELIVERED, "delivered") /* reached its address; terminal */                                  \
    X(CANCELLED, "cancelled") /* cancelled before dispatch; terminal */

enum ship_status {
#define SHIP__STATUS_ENUM(NAME, name) SHIP_##NAME,
    SHIP_STATUSES(SHIP__STATUS_ENUM)
#undef SHIP__STATUS_ENUM
        SHIP_NSTATUSES
};

/* What can be done to a shipment. */
enum ship_action {
    SHIP_ACT_SHIP = 0, /* hand it to the carrier */
    SHIP_ACT_DELIVER,  /* it reached its address */
    SHIP_ACT_CANCEL,   /* cancel it before dispatch */
};

/* "created", ... ; "unknown" out of range. Static storage. */
const char *ship_status_name(enum ship_status s);
/* AG_EINVAL when 'name' is no status. */
int ship_status_parse(const char *name, enum ship_status *out);
/* "ship", "deliver", "cancel". */
const char *ship_action_name(enum ship_action a);

/* The one transition function: the status 'action' moves a shipment in
 * status 'from' to, in *out_to. Returns 0, or AG_ECONFLICT for an illegal
 * move (*out_to untouched): shipping twice, delivering what has not been
 * shipped, cancelling after dispatch, anything after a terminal status. */
int ship_transition(enum ship_status from, enum ship_action action, enum ship_status *out_to);

/* A UUIDv7 in lowercase canonical form, as the contracts require. */
bool ship_id_is_valid(const char *s);

/* ---- Saga commands ---- */

/* cmd.shipment.create data; every pointer borrowed from the JSON it was read
 * from. */
struct ship_create_cmd {
    const char *order_id;
    const char *step_key;
    const char *user_id;
    json_t *address; /* validated common.schema.json#/$defs/address */
    json_t *lines;   /* validated array of {product_id, quantity} */
};

/* cmd.shipment.cancel data; borrowed likewise. */
struct ship_cancel_cmd {
    const char *order_id;
    const char *step_key;
    const char *reason;
};

/* Validate a command's data into 'out'; every error goes to 'v' (fields
 * named as in the data: "address.country", "lines[0].quantity"). True when
 * valid. 'data' may be any JSON value. */
bool ship_create_cmd_from_json(struct ag_valid *v, json_t *data, struct ship_create_cmd *out);
bool ship_cancel_cmd_from_json(struct ag_valid *v, json_t *data, struct ship_cancel_cmd *out);

/* ---- Shipments ---- */

struct ship_shipment {
    char id[AG_UUID_STRLEN + 1];
    char order_id[AG_UUID_STRLEN + 1];
    char user_id[AG_UUID_STRLEN + 1];
    enum ship_status status;
    const char *address; /* JSON object text */
    const char *lines;   /* JSON array text */
    const char *carrier; /* NULL until shipped */
    char tracking_number[SHIP_TRACKING_LEN + 1];
    const char *cancel_reason; /* NULL unless cancelled */
    const char *history;       /* JSON array text of {status, at} */
    char created_at[AG_RFC3339_LEN];
    char updated_at[AG_RFC3339_LEN];
};

/* The shipment as served (new reference): its fields, with "tracking", the
 * status history, oldest first. */
json_t *ship_shipment_to_json(const struct ship_shipment *s);

/* A tracking number from 8 random bytes: "AGS" + 16 upper-case hex digits. */
void ship_tracking_number(const uint8_t rnd[8], char out[SHIP_TRACKING_LEN + 1]);

/* ---- Reply events' data (new references; contracts/events/) ---- */

/* shipment.created: {shipment_id, order_id, address, tracking_number, created_at}. */
json_t *ship_data_created(const struct ship_shipment *s);
/* shipment.shipped: {shipment_id, order_id, carrier, tracking_number, shipped_at}. */
json_t *ship_data_shipped(const struct ship_shipment *s, const char *at);
/* shipment.delivered: {shipment_id, order_id, delivered_at}. */
json_t *ship_data_delivered(const struct ship_shipment *s, const char *at);
/* shipment.cancelled: {shipment_id (null when 'shipment_id' is NULL), order_id,
 * reason, cancelled_at}. */
json_t *ship_data_cancelled(const char *shipment_id, const char *order_id, const char *reason,
                            const char *at);
/* shipment.cancel_rejected: {shipment_id, order_id, status, reason, rejected_at}. */
json_t *ship_data_cancel_rejected(const struct ship_shipment *s, const char *reason,
                                  const char *at);

/* ---- List cursors: opaque base64url of the last id of the page ---- */

void ship_cursor_encode(const char *last_id, char *out, size_t outlen);
/* AG_EINVAL when 's' is not a cursor this service made. */
int ship_cursor_decode(const char *s, char out_id[AG_UUID_STRLEN + 1]);

#endif /* SHIP_DOMAIN_H */
