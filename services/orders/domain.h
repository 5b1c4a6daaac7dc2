/* SPDX-License-Identifier: MIT */
/* Orders domain: pure rules, no I/O. The order is event-sourced: its state
 * is a JSON object folded from its events by orders_apply, the one
 * transition function, which rejects illegal moves. Also the validation of
 * request bodies and the mapping of participants' reasons. */
#ifndef ORDERS_DOMAIN_H
#define ORDERS_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/json.h"
#include "agora/money.h"

#define ORDERS_QTY_MAX   1000 /* units of one product in a cart line */
#define ORDERS_CART_MAX  100  /* lines in a cart */
#define ORDERS_TOKEN_MAX 200  /* code points of a payment token */

/* Statuses (the "status" field). */
#define ORDERS_PENDING          "PENDING"
#define ORDERS_AWAITING_PAYMENT "AWAITING_PAYMENT"
#define ORDERS_CONFIRMED        "CONFIRMED"
#define ORDERS_CANCELLED        "CANCELLED"
#define ORDERS_REJECTED         "REJECTED"
#define ORDERS_COMPLETED        "COMPLETED"

/* Apply the order event 'type' with 'data' (borrowed) at time 'at' (RFC
 * 3339) to 'state' (an object, empty before "created"), in place. Types:
 * created, stock_reserved, payment_authorized, shipment_created,
 * payment_captured, stock_committed, confirmed, shipped, completed,
 * rejected, cancelled, payment_voided, payment_refunded, stock_released,
 * and for a confirmed order's cancel: cancel_requested (the shipment's cancel
 * was asked for), cancel_refused (shipping refused it: dispatched),
 * stock_restocked (the committed units went back on hand, once).
 * Returns 0, or AG_ECONFLICT for a move the current state forbids (the
 * state is then unchanged), AG_EINVAL for an unknown type or bad data. */
int orders_apply(json_t *state, const char *type, const json_t *data, const char *at);

/* The guard of the confirmation: payment captured, stock committed and a
 * shipment created, and the order still PENDING. */
bool orders_is_confirmable(const json_t *state);

/* True for CONFIRMED (after the fact), CANCELLED, REJECTED, COMPLETED. */
bool orders_is_terminal(const json_t *state);

/* The representation served to clients (new reference): the state without
 * its internal fields (payment token, flags). */
json_t *orders_render(const json_t *state);

/* Borrowed string field of 'state' ("" when absent or not a string). */
const char *orders_str(const json_t *state, const char *field);

/* A checkout body {payment_token?, shipping_address}: validated into 'v'
 * (unknown fields are errors: status, user_id, total cannot be set). Fills
 * '*out_token' (borrowed, NULL when absent) and '*out_address' (borrowed).
 * Returns true when valid. */
bool orders_checkout_from_json(struct ag_valid *v, json_t *body, const char **out_token,
                               json_t **out_address);

/* A cart line body: {product_id, quantity} when 'with_product', else
 * {quantity}. Returns true when valid. */
bool orders_cart_item_from_json(struct ag_valid *v, json_t *body, bool with_product,
                                const char **out_product_id, int64_t *out_quantity);

/* order.cancelled reason for a payment.failed reason. */
const char *orders_reason_for_payment_failure(const char *failure);

/* inventory release reason for an order.cancelled reason. */
const char *orders_release_reason(const char *cancel_reason);

/* Seconds between two RFC 3339 times (0 when either does not parse). */
double orders_seconds_between(const char *from, const char *to);

#endif /* ORDERS_DOMAIN_H */
