/* SPDX-License-Identifier: MIT */
/* Orders HTTP handlers and the route table: the cart, checkout (202 at
 * once, the saga does the rest), listing, reading and cancelling orders,
 * the internal payable view for payments, and the admin saga views. */
#include "agora/base.h"
#include "orders.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/identity.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/str.h"
#include "agora/time.h"
#include "agora/uuid.h"

/* ---- Helpers ---- */

static const char *
caller(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    return id != NULL ? id->user_id : "";
}

static bool
caller_is_admin(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    return id != NULL && (id->roles & AG_IDENTITY_ADMIN) != 0;
}

/* May the caller see 'state'? Another user's order is simply not found. */
static bool
visible(struct ag_http_req *req, const json_t *state)
{
    return caller_is_admin(req) || strcmp(orders_str(state, "user_id"), caller(req)) == 0;
}

static void
send_cart(struct ag_http_req *req, struct orders *o)
{
    json_t *cart;
    int rc = orders_store_cart_get(o->store, caller(req), &cart, NULL, NULL);
    if (rc != 0) {
        ag_send_store_error(req, rc, "cart");
        return;
    }
    ag_send_json(req, 200, cart);
}

/* ---- Cart ---- */

static void
get_cart(struct ag_http_req *req, void *udata)
{
    send_cart(req, udata);
}

static void
add_item(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    const char *pid = NULL;
    int64_t qty = 0;
    bool ok = orders_cart_item_from_json(&v, body, true, &pid, &qty);
    bool usable = false;
    int rc = ok ? orders_store_price_usable(o->store, pid, &usable) : 0;
    if (rc == 0 && ok && !usable) {
        ag_valid_error(&v, "product_id", "unknown", "no product '%s' on sale", pid);
        ok = false;
    }
    if (!ok || rc != 0) {
        if (rc != 0)
            ag_send_store_error(req, rc, "product");
        else
            ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    rc = orders_store_cart_add(o->store, caller(req), pid, qty);
    if (rc == AG_ETOOBIG) {
        ag_valid_init(&v);
        ag_valid_error(&v, "product_id", "limit", "a cart holds at most %d products",
                       ORDERS_CART_MAX);
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    if (rc != 0) {
        ag_send_store_error(req, rc, "cart");
        return;
    }
    send_cart(req, o);
}

static void
patch_item(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *pid = ag_req_uuid_param(req, "product_id", "item in the cart");
    if (pid == NULL)
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t qty = 0;
    if (!orders_cart_item_from_json(&v, body, false, NULL, &qty)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    int rc = orders_store_cart_set(o->store, caller(req), pid, qty);
    if (rc != 0) {
        ag_send_store_error(req, rc, "item in the cart");
        return;
    }
    send_cart(req, o);
}

static void
delete_item(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *pid = ag_req_uuid_param(req, "product_id", "item in the cart");
    if (pid == NULL)
        return;
    int rc = orders_store_cart_remove(o->store, caller(req), pid);
    if (rc != 0) {
        ag_send_store_error(req, rc, "item in the cart");
        return;
    }
    ag_send_no_content(req);
}

/* ---- Checkout ---- */

struct checkout_tx {
    struct orders *o;
    struct ag_http_req *req;
    const char *user_id;
    const char *key;
    char hash[AG_IDEM_HASH_LEN]; /* of the canonical body */
    const char *token;
    json_t *address;
    json_t *state;                /* out: the new order */
    char *response;               /* out: the answer (of the first checkout on a replay) */
    char *order_id;               /* out: its order id */
    const char *problem;          /* out: why the cart cannot be checked out */
    enum ag_idem_state key_state; /* out: AG_IDEM_REPLAY: the first answer; MISMATCH: 422 */
};

static int
checkout_tx_fn(struct ag_store *store, void *arg)
{
    struct checkout_tx *t = arg;
    /* The key is taken in the order's transaction: concurrent checkouts
     * with one key see either nothing or the finished answer. */
    struct ag_idem_answer first;
    int64_t now = ag_time_unix_ms();
    int rc = ag_idem_begin(t->o->idem, t->user_id, t->key, t->hash, now, t->req->pool,
                           &t->key_state, &first);
    if (rc != 0)
        return rc;
    if (t->key_state == AG_IDEM_MISMATCH || t->key_state == AG_IDEM_BUSY)
        return AG_ECONFLICT;
    if (t->key_state == AG_IDEM_REPLAY) {
        t->response = ag_pool_strdup(t->req->pool, first.body);
        json_t *doc = ag_json_parse(first.body, first.len, NULL, 0);
        const char *id = json_string_value(json_object_get(doc, "id"));
        t->order_id = ag_pool_strdup(t->req->pool, id != NULL ? id : "");
        json_decref(doc);
        return 0;
    }
    /* A rerun (ag_store_tx retry) starts from nothing. */
    json_decref(t->state);
    t->state = NULL;
    t->problem = NULL;
    json_t *cart = NULL;
    json_t *lines = json_array();
    rc = orders_store_cart_get(store, t->user_id, &cart, lines, &t->problem);
    if (rc == 0 && t->problem != NULL)
        rc = AG_EINVAL;
    if (rc == 0) {
        char id[AG_UUID_STRLEN + 1];
        ag_uuid7(id);
        json_t *data = json_pack(
            "{s:s, s:s, s:O, s:O, s:O, s:o}", "order_id", id, "user_id", t->user_id, "lines", lines,
            "total", json_object_get(cart, "total"), "shipping_address", t->address,
            "payment_token", t->token != NULL ? json_string(t->token) : json_null());
        t->state = json_object();
        rc = orders_append(t->o, t->state, "created", data);
        json_decref(data);
        if (rc == 0)
            rc = orders_saga_start(t->o, t->state);
        if (rc == 0)
            rc = orders_store_cart_clear(store, t->user_id);
        if (rc == 0) {
            json_t *doc = orders_render(t->state);
            char *text = json_dumps(doc, JSON_COMPACT);
            json_decref(doc);
            t->response = ag_pool_strdup(t->req->pool, text);
            t->order_id = ag_pool_strdup(t->req->pool, id);
            ag_free(text);
            struct ag_idem_answer answer = { .status = 202,
                                             .content_type = "application/json",
                                             .body = t->response,
                                             .len = strlen(t->response) };
            rc = ag_idem_finish(t->o->idem, t->user_id, t->key, t->hash, &answer, now);
        }
    }
    json_decref(cart);
    json_decref(lines);
    return rc;
}

static void
checkout(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *key;
    if (!ag_req_idempotency_key(req, true, &key))
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct checkout_tx t = { .o = o, .req = req, .user_id = caller(req) };
    if (!orders_checkout_from_json(&v, body, &t.token, &t.address)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    t.key = key;
    /* The same body in any key order or spacing is the same request. */
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    struct ag_str part = ag_str_from_cstr(canon != NULL ? canon : "");
    ag_idem_hash(&part, 1, t.hash);
    ag_free(canon);
    int rc = ag_store_tx(o->store, checkout_tx_fn, &t);
    if (rc == 0) {
        orders_events_kick(o->events);
        char loc[64];
        snprintf(loc, sizeof(loc), "/v1/orders/%s", t.order_id);
        ag_http_resp_header(req, "Location", loc);
        if (t.key_state == AG_IDEM_REPLAY)
            ag_http_resp_header(req, "Idempotent-Replayed", "true");
        ag_http_send(req, 202, "application/json", t.response, strlen(t.response));
    } else if (t.key_state == AG_IDEM_MISMATCH || t.key_state == AG_IDEM_BUSY) {
        ag_send_idempotency_refusal(req, t.key_state);
    } else if (t.problem != NULL) {
        ag_valid_error(&v, "cart", "invalid", "%s", t.problem);
        ag_send_invalid(req, &v);
    } else {
        ag_send_store_error(req, rc, "order");
    }
    ag_valid_release(&v);
    json_decref(t.state);
}

/* ---- Orders ---- */

static const char *const STATUSES[] = {
    ORDERS_PENDING,   ORDERS_AWAITING_PAYMENT, ORDERS_CONFIRMED,
    ORDERS_CANCELLED, ORDERS_REJECTED,         ORDERS_COMPLETED
};

static void
list_orders(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    int64_t limit = ORDERS_PAGE_DEFAULT;
    if (ag_req_query_int(req, "limit", 1, ORDERS_PAGE_MAX, &limit) != 0)
        return;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *status = ag_query_get(q, "status");
    if (status != NULL) {
        bool known = false;
        for (size_t i = 0; i < AG_ARRAY_SIZE(STATUSES); i++)
            known = known || strcmp(status, STATUSES[i]) == 0;
        if (!known) {
            ag_send_error(req, AG_EQUERY, "query parameter 'status' is not an order status");
            return;
        }
    }
    const char *cursor = ag_query_get(q, "cursor");
    if (cursor != NULL && !ag_uuid_is_valid(ag_str_from_cstr(cursor))) {
        ag_send_error(req, AG_EQUERY, "query parameter 'cursor' is not a cursor from this listing");
        return;
    }
    json_t *items = json_array();
    bool more = false;
    int rc = orders_store_order_list(o->store, caller_is_admin(req) ? NULL : caller(req), status,
                                     cursor, limit, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "order list");
        return;
    }
    json_t *next = json_null();
    size_t n = json_array_size(items);
    if (more && n > 0)
        next = json_string(orders_str(json_array_get(items, n - 1), "id"));
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

static void
get_order(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *id = ag_req_uuid_param(req, "id", "order");
    if (id == NULL)
        return;
    json_t *state = NULL;
    int rc = orders_load(o->store, id, &state);
    if (rc == 0 && !visible(req, state))
        rc = AG_ENOENT;
    json_t *steps = NULL;
    if (rc == 0)
        rc = orders_store_steps(o->store, id, &steps);
    if (rc != 0) {
        json_decref(state);
        ag_send_store_error(req, rc, "order");
        return;
    }
    json_t *doc = orders_render(state);
    json_object_set_new(doc, "steps", steps);
    json_decref(state);
    ag_send_json(req, 200, doc);
}

struct cancel_tx {
    struct orders *o;
    struct ag_http_req *req;
    const char *id;
    json_t *state;
    const char *why;
};

static int
cancel_tx_fn(struct ag_store *store, void *arg)
{
    struct cancel_tx *t = arg;
    int rc = orders_load(store, t->id, &t->state);
    if (rc == 0 && !visible(t->req, t->state))
        rc = AG_ENOENT;
    if (rc == 0)
        rc = orders_saga_cancel(t->o, t->state, &t->why);
    return rc;
}

static void
cancel_order(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *id = ag_req_uuid_param(req, "id", "order");
    if (id == NULL)
        return;
    struct cancel_tx t = { .o = o, .req = req, .id = id };
    int rc = ag_store_tx(o->store, cancel_tx_fn, &t);
    if (rc == 0) {
        orders_events_kick(o->events);
        /* A confirmed order waits for shipping's answer: 202. */
        bool waiting = strcmp(orders_str(t.state, "status"), ORDERS_CONFIRMED) == 0;
        ag_send_json(req, waiting ? 202 : 200, orders_render(t.state));
    } else if (rc == AG_ECONFLICT && t.why != NULL && strcmp(t.why, "shipped") == 0) {
        ag_send_problem(req, 409, "order-dispatched", "Order dispatched",
                        "order '%s' has shipped and can no longer be cancelled", id);
    } else if (rc == AG_EPRECOND) {
        ag_send_error(req, AG_ECONFLICT, "order '%s' changed meanwhile; retry", id);
    } else if (rc == AG_ECONFLICT && t.why != NULL) {
        ag_send_problem(req, 409, "order-closed", "Order closed",
                        "order '%s' is %s and can no longer be cancelled", id,
                        orders_str(t.state, "status"));
    } else {
        ag_send_store_error(req, rc, "order");
    }
    json_decref(t.state);
}

/* ---- Internal: for payments (pay-later checks the amount here) ---- */

static void
get_payable(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    const char *id = ag_req_uuid_param(req, "id", "order");
    if (id == NULL)
        return;
    json_t *state;
    int rc = orders_load(o->store, id, &state);
    if (rc != 0) {
        ag_send_store_error(req, rc, "order");
        return;
    }
    json_t *doc = json_pack("{s:s, s:s, s:O, s:s, s:s}", "order_id", id, "user_id",
                            orders_str(state, "user_id"), "total", json_object_get(state, "total"),
                            "status", orders_str(state, "status"), "payment_status",
                            orders_str(state, "payment_status"));
    json_decref(state);
    ag_send_json(req, 200, doc);
}

/* ---- Admin: sagas ---- */

static void
list_sagas(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    int64_t limit = ORDERS_PAGE_DEFAULT;
    if (ag_req_query_int(req, "limit", 1, ORDERS_PAGE_MAX, &limit) != 0)
        return;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *state = ag_query_get(q, "state");
    if (state == NULL)
        state = "in_flight";
    if (strcmp(state, "in_flight") != 0 && strcmp(state, "failed") != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'state' must be in_flight or failed");
        return;
    }
    json_t *items = json_array();
    int rc = orders_store_sagas(o->store, strcmp(state, "failed") == 0,
                                o->settings.step_retries + 1, limit, items);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "saga list");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:s, s:o}", "state", state, "items", items));
}

static void
rebuild_check(struct ag_http_req *req, void *udata)
{
    struct orders *o = udata;
    json_t *bad = json_array();
    int64_t n = 0;
    int rc = orders_rebuild_check(o->store, &n, bad);
    if (rc != 0) {
        json_decref(bad);
        ag_send_store_error(req, rc, "order events");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:I, s:o}", "orders", (json_int_t)n, "mismatched", bad));
}

const struct ag_route orders_routes[] = {
    { "GET", "/v1/cart", get_cart, AG_ROLE_CUSTOMER },
    { "POST", "/v1/cart/items", add_item, AG_ROLE_CUSTOMER },
    { "PATCH", "/v1/cart/items/{product_id}", patch_item, AG_ROLE_CUSTOMER },
    { "DELETE", "/v1/cart/items/{product_id}", delete_item, AG_ROLE_CUSTOMER },
    { "POST", "/v1/orders", checkout, AG_ROLE_CUSTOMER },
    { "GET", "/v1/orders", list_orders, AG_ROLE_CUSTOMER },
    { "GET", "/v1/orders/{id}", get_order, AG_ROLE_CUSTOMER },
    { "POST", "/v1/orders/{id}/cancel", cancel_order, AG_ROLE_CUSTOMER },
    { "GET", "/v1/internal/orders/{id}/payable", get_payable, AG_ROLE_INTERNAL },
    { "GET", "/v1/sagas", list_sagas, AG_ROLE_ADMIN },
    { "GET", "/v1/sagas/rebuild-check", rebuild_check, AG_ROLE_ADMIN },
};
const size_t orders_nroutes = AG_ARRAY_SIZE(orders_routes);
