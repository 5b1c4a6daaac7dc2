/* SPDX-License-Identifier: MIT */
/* Inventory domain: stock arithmetic and its guards (never more reserved
 * than on hand), validation of saga commands and admin bodies, the
 * all-or-nothing reservation decision, threshold crossings (stock.low,
 * stock.depleted), cursors. Pure functions: no I/O, no database, no clock. */
#ifndef INV_DOMAIN_H
#define INV_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/json.h"
#include "agora/str.h"
#include "agora/uuid.h"

#define INV_LINES_MAX    100                 /* lines of one reservation */
#define INV_QUANTITY_MAX INT64_C(2147483647) /* common.schema.json quantity */
#define INV_STOCK_MAX    INT64_C(2147483647) /* units of one product (stock_count) */
#define INV_REASON_MAX   200                 /* code points of a movement reason */
#define INV_STEP_MAX     64                  /* bytes of a step name after "<order_id>:" */
#define INV_IDS_MAX      100                 /* product ids of one public stock query */

/* One line of a reservation: a product and a number of units. */
struct inv_line {
    char product_id[AG_UUID_STRLEN + 1];
    int64_t quantity;
};

/* What the store knows of a product when a reservation is decided. */
struct inv_stock_state {
    bool known;       /* a stock row exists */
    bool active;      /* not deleted from the catalog */
    int64_t on_hand;  /* units in the warehouse */
    int64_t reserved; /* units held by reservations */
};

/* True for a UUIDv7 in lowercase canonical form (common.schema.json uuid):
 * order and product ids of commands. */
bool inv_id_is_valid(struct ag_str s);

/* Units that can still be reserved: on hand minus reserved, 0 for an
 * unknown or deleted product. */
int64_t inv_available(const struct inv_stock_state *s);

/* The guard of every reservation: may 'quantity' more units of 's' be held?
 * True only for a known, active product whose available units cover it. */
bool inv_can_reserve(const struct inv_stock_state *s, int64_t quantity);

/* Why a reserve command is refused (inventory.rejected's reason). */
enum inv_reject {
    INV_REJECT_NONE = 0,        /* every line can be held */
    INV_REJECT_OUT_OF_STOCK,    /* some line needs more than is available */
    INV_REJECT_UNKNOWN_PRODUCT, /* some product is unknown or deleted */
    INV_REJECT_INVALID,         /* the command itself is malformed */
};
const char *inv_reject_name(enum inv_reject r);

/* Decide a reservation of 'lines' ('n' of them) given 'states' (one per
 * line, same order): all or nothing. Returns the reason; when not NONE,
 * 'out_failed' (n entries) tells which lines cannot be served. */
enum inv_reject inv_reserve_decide(const struct inv_line *lines,
                                   const struct inv_stock_state *states, size_t n,
                                   bool *out_failed);

/* Validate a stock change: setting on hand to 'on_hand' or moving it by
 * 'delta' while 'reserved' units are held. Returns 0, AG_ECONFLICT when the
 * result would be below what is reserved (stock promised to orders), or
 * AG_ERANGE when it would be negative or past INV_STOCK_MAX. 'out_on_hand'
 * gets the new value. */
int inv_stock_adjust(int64_t on_hand, int64_t reserved, int64_t delta, int64_t *out_on_hand);

/* Threshold crossings of a change of available units from 'before' to
 * 'after': 'out_low' when it falls to 'threshold' or below from above it,
 * 'out_depleted' when it falls to 0 from above 0. */
void inv_stock_crossings(int64_t before, int64_t after, int64_t threshold, bool *out_low,
                         bool *out_depleted);

/* ---- Saga commands (contracts/events/cmd.inventory.*.schema.json) ---- */

/* True when 'step_key' is "<order_id>:<step>" for 'order_id', the step
 * being 1 to INV_STEP_MAX characters of [a-z0-9_.-]. */
bool inv_step_key_is_valid(const char *order_id, const char *step_key);

/* The fields every command carries, read from 'data': order_id (a UUIDv7)
 * and step_key. Errors go to 'v'; strings are borrowed from 'data'. */
bool inv_command_head(struct ag_valid *v, json_t *data, const char **out_order_id,
                      const char **out_step_key);

/* The lines of cmd.inventory.reserve, merged by product (quantities of a
 * product named twice are added). 'out_lines' holds INV_LINES_MAX entries;
 * '*out_n' gets how many are used. Errors go to 'v'. */
bool inv_reserve_lines(struct ag_valid *v, json_t *data, struct inv_line *out_lines, size_t *out_n);

/* The reason of cmd.inventory.release (inventory.released's enum), or NULL
 * with an error in 'v'. */
const char *inv_release_reason(struct ag_valid *v, json_t *data);

/* The reason of cmd.inventory.restock ("order_cancelled"), or NULL with an
 * error in 'v'. */
const char *inv_restock_reason(struct ag_valid *v, json_t *data);

/* ---- Admin bodies ---- */

/* PUT /v1/stock/{id}: {on_hand, reason, low_threshold?, version?}.
 * '*out_threshold' is -1 when absent, -2 when null (back to the default);
 * '*out_version' -1 when absent. */
bool inv_stock_put_from_json(struct ag_valid *v, json_t *body, int64_t *out_on_hand,
                             const char **out_reason, int64_t *out_threshold, int64_t *out_version);

/* POST /v1/stock/{id}/adjustments: {delta, reason}; delta non-zero. */
bool inv_adjustment_from_json(struct ag_valid *v, json_t *body, int64_t *out_delta,
                              const char **out_reason);

/* Parse "a,b,c" (1 to INV_IDS_MAX UUIDv7s) into 'out' (INV_IDS_MAX
 * entries). Returns the count, or -1 when the list is malformed. */
int inv_parse_ids(const char *s, char out[][AG_UUID_STRLEN + 1]);

/* Paging cursors: opaque base64url of "k" + the last id of the page. */
void inv_cursor_encode(const char *last_id, char *out, size_t outlen);
/* 0 with 'out' set, or AG_EINVAL when 's' is not a cursor of this service. */
int inv_cursor_decode(const char *s, char out[AG_UUID_STRLEN + 1]);

#endif /* INV_DOMAIN_H */
