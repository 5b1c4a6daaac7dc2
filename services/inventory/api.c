/* SPDX-License-Identifier: MIT */
/* Inventory HTTP handlers and the route table: public availability for the
 * storefront, stock and its history for administrators (set with a
 * precondition, adjust with an optional Idempotency-Key), reservations for
 * administrators and tools. Handlers validate with the domain, change stock
 * through commands.c inside one transaction, and answer JSON or
 * problem+json. */
#include "agora/base.h"
#include "inventory.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/trace.h"

/* ---- Helpers ---- */

json_t *
inv_stock_to_json(const struct inv *inv, const struct inv_stock *s)
{
    struct inv_stock_state st = {
        .known = true, .active = s->active, .on_hand = s->on_hand, .reserved = s->reserved
    };
    int64_t threshold = s->low_threshold >= 0 ? s->low_threshold : inv->settings.low_threshold;
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:s, s:s}", "product_id",
                     s->product_id, "on_hand", (json_int_t)s->on_hand, "reserved",
                     (json_int_t)s->reserved, "available", (json_int_t)inv_available(&st),
                     "low_threshold", (json_int_t)threshold, "low_threshold_default",
                     s->low_threshold < 0, "active", s->active, "version", (json_int_t)s->version,
                     "created_at", s->created_at, "updated_at", s->updated_at);
}

static const char *
actor_of(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    return id != NULL && id->user_id[0] != '\0' ? id->user_id : NULL;
}

/* The product id of the path, or NULL after answering 404. */
static const char *
product_param(struct ag_http_req *req)
{
    return ag_req_uuid_param(req, "product_id", "stock");
}

/* A 'cursor' query parameter into 'out' ("" when absent); false after
 * answering 400. */
static bool
cursor_param(struct ag_http_req *req, const struct ag_query *q, char out[AG_UUID_STRLEN + 1])
{
    const char *cursor = ag_query_get(q, "cursor");
    out[0] = '\0';
    if (cursor != NULL && inv_cursor_decode(cursor, out) != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'cursor' is not a cursor from this listing");
        return false;
    }
    return true;
}

static void
send_page(struct ag_http_req *req, json_t *items, bool more)
{
    json_t *next = json_null();
    if (more && json_array_size(items) > 0) {
        json_t *last = json_array_get(items, json_array_size(items) - 1);
        char enc[96];
        inv_cursor_encode(json_string_value(json_object_get(last, "id")), enc, sizeof(enc));
        next = json_string(enc);
    }
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

/* ---- Public availability ---- */

static void
list_stock(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *ids = ag_query_get(q, "product_id");
    char parsed[INV_IDS_MAX][AG_UUID_STRLEN + 1];
    int n = ids != NULL ? inv_parse_ids(ids, parsed) : -1;
    if (n < 0) {
        ag_send_error(req, AG_EQUERY,
                      "query parameter 'product_id' must list 1 to %d product ids, "
                      "comma-separated",
                      INV_IDS_MAX);
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < n; i++) {
        struct inv_stock s;
        int rc = inv_store_stock_get(inv->store, parsed[i], &s);
        if (rc != 0 && rc != AG_ENOENT) {
            json_decref(items);
            ag_send_store_error(req, rc, "stock");
            return;
        }
        struct inv_stock_state st = {
            .known = rc == 0,
            .active = rc == 0 && s.active,
            .on_hand = rc == 0 ? s.on_hand : 0,
            .reserved = rc == 0 ? s.reserved : 0,
        };
        json_array_append_new(items, json_pack("{s:s, s:I}", "product_id", parsed[i], "available",
                                               (json_int_t)inv_available(&st)));
    }
    ag_send_json(req, 200, json_pack("{s:o}", "items", items));
}

/* ---- Administrators' stock ---- */

static void
get_stock(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const char *id = product_param(req);
    if (id == NULL)
        return;
    struct inv_stock s;
    int rc = inv_store_stock_get(inv->store, id, &s);
    if (rc != 0) {
        ag_send_store_error(req, rc, "stock");
        return;
    }
    ag_resp_set_etag(req, s.version);
    ag_send_json(req, 200, inv_stock_to_json(inv, &s));
}

struct change_tx {
    struct inv *inv;
    const char *product_id;
    int64_t expected;  /* PUT: the version the client saw, or -1 */
    bool set;          /* PUT: on_hand is absolute */
    int64_t value;     /* PUT: on_hand; POST: delta */
    int64_t threshold; /* PUT: -1 keep, -2 default, else the value */
    struct inv_movement m;
    const char *traceparent;
    struct inv_stock s; /* after the change */
    /* POST with an Idempotency-Key (the chassis's records): */
    const char *key;              /* or NULL */
    const char *caller;           /* the key's scope */
    char hash[AG_IDEM_HASH_LEN];  /* of the request */
    struct ag_http_req *req;      /* its pool holds the answer */
    enum ag_idem_state key_state; /* AG_IDEM_REPLAY: 'answer' is the first one */
    struct ag_idem_answer answer; /* the answer (201), recorded under the key */
};

static json_t *
adjust_answer(const struct inv *inv, const struct change_tx *t)
{
    json_t *movement = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:n, s:o, s:s}", "id", t->m.id, "product_id",
        t->product_id, "kind", "adjust", "on_hand_delta", (json_int_t)t->m.on_hand_delta,
        "reserved_delta", (json_int_t)0, "on_hand", (json_int_t)t->s.on_hand, "reserved",
        (json_int_t)t->s.reserved, "reason", t->m.reason, "order_id", "actor",
        t->m.actor ? json_string(t->m.actor) : json_null(), "created_at", t->s.updated_at);
    return json_pack("{s:o, s:o}", "movement", movement, "stock", inv_stock_to_json(inv, &t->s));
}

static int
change_tx_fn(struct ag_store *st, void *arg)
{
    struct change_tx *t = arg;
    int rc = inv_store_stock_get(st, t->product_id, &t->s);
    if (rc != 0)
        return rc;
    int64_t now = ag_time_unix_ms();
    if (t->key != NULL) {
        rc = ag_idem_begin(t->inv->idem, t->caller, t->key, t->hash, now, t->req->pool,
                           &t->key_state, &t->answer);
        if (rc != 0 || t->key_state != AG_IDEM_NEW)
            return rc; /* a replay or a refusal: nothing changes */
    }
    if (t->expected >= 0 && t->expected != t->s.version)
        return AG_EPRECOND;
    if (t->set) {
        t->m.on_hand_delta = t->value - t->s.on_hand;
        if (t->threshold == -2)
            t->s.low_threshold = -1;
        else if (t->threshold >= 0)
            t->s.low_threshold = t->threshold;
    } else {
        t->m.on_hand_delta = t->value;
    }
    rc = inv_stock_change(t->inv, st, &t->s, &t->m, t->traceparent);
    if (rc != 0 || t->key == NULL)
        return rc;
    json_t *doc = adjust_answer(t->inv, t);
    struct ag_buf b = AG_BUF_INIT(0);
    ag_json_dump(doc, &b);
    json_decref(doc);
    t->answer = (struct ag_idem_answer){ .status = 201,
                                         .content_type = "application/json",
                                         .body = ag_pool_strdup(t->req->pool, ag_buf_cstr(&b)),
                                         .len = b.len };
    ag_buf_release(&b);
    return ag_idem_finish(t->inv->idem, t->caller, t->key, t->hash, &t->answer, now);
}

static void
answer_change_error(struct ag_http_req *req, const struct change_tx *t, int rc)
{
    if (rc == AG_EPRECOND) {
        ag_resp_set_etag(req, t->s.version);
        ag_send_error(req, AG_EPRECOND, "the stock changed; its current version is %lld",
                      (long long)t->s.version);
    } else if (rc == AG_ECONFLICT) {
        ag_send_error(req, AG_ECONFLICT,
                      "on hand cannot go below the %lld units reserved for orders",
                      (long long)t->s.reserved);
    } else if (rc == AG_ERANGE) {
        struct ag_valid v;
        ag_valid_init(&v);
        ag_valid_error(&v, t->set ? "on_hand" : "delta", "out_of_range",
                       "on hand must stay between 0 and %lld", (long long)INV_STOCK_MAX);
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
    } else {
        ag_send_store_error(req, rc, "stock");
    }
}

static void
put_stock(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const char *id = product_param(req);
    if (id == NULL)
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct change_tx t = { .inv = inv, .product_id = id, .set = true };
    const char *reason;
    int64_t body_version;
    if (!inv_stock_put_from_json(&v, body, &t.value, &reason, &t.threshold, &body_version)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct ag_str if_match = ag_http_req_header(req, "If-Match");
    if (if_match.len == 0 && body_version < 0) {
        ag_send_error(req, AG_EPRECONDREQ,
                      "send If-Match with the stock's ETag, or its version in the body");
        return;
    }
    /* Read the version the precondition names, then change exactly it. */
    struct inv_stock cur;
    int rc = inv_store_stock_get(inv->store, id, &cur);
    if (rc != 0) {
        ag_send_store_error(req, rc, "stock");
        return;
    }
    if ((if_match.len > 0 && !ag_etag_list_matches(if_match, cur.version, false)) ||
        (body_version >= 0 && body_version != cur.version)) {
        t.s = cur;
        answer_change_error(req, &t, AG_EPRECOND);
        return;
    }
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    t.expected = cur.version;
    t.traceparent = tp;
    t.m = (struct inv_movement){ .kind = "set", .reason = reason, .actor = actor_of(req) };
    rc = ag_store_tx(inv->store, change_tx_fn, &t);
    if (rc != 0) {
        answer_change_error(req, &t, rc);
        return;
    }
    inv_events_kick(inv->events);
    ag_resp_set_etag(req, t.s.version);
    ag_send_json(req, 200, inv_stock_to_json(inv, &t.s));
}

static void
adjust_stock(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const char *id = product_param(req);
    if (id == NULL)
        return;
    const char *key;
    if (!ag_req_idempotency_key(req, false, &key))
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct change_tx t = { .inv = inv, .product_id = id, .expected = -1, .key = key, .req = req };
    const char *reason;
    if (!inv_adjustment_from_json(&v, body, &t.value, &reason)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    t.traceparent = tp;
    t.m = (struct inv_movement){
        .kind = "adjust",
        .reason = reason,
        .actor = actor_of(req),
    };
    if (key != NULL) {
        t.caller = t.m.actor != NULL ? t.m.actor : "";
        ag_req_idempotency_hash(req, t.hash);
    }
    int rc = ag_store_tx(inv->store, change_tx_fn, &t);
    if (rc != 0) {
        answer_change_error(req, &t, rc);
        return;
    }
    if (t.key_state == AG_IDEM_REPLAY) {
        ag_send_idempotency_replay(req, &t.answer);
        return;
    }
    if (t.key_state != AG_IDEM_NEW) {
        ag_send_idempotency_refusal(req, t.key_state);
        return;
    }
    ag_resp_set_etag(req, t.s.version);
    inv_events_kick(inv->events);
    if (t.key != NULL)
        ag_http_send(req, 201, "application/json", t.answer.body, t.answer.len);
    else
        ag_send_json(req, 201, adjust_answer(inv, &t));
}

static void
list_movements(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const char *id = product_param(req);
    if (id == NULL)
        return;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    int64_t limit = INV_PAGE_DEFAULT;
    if (ag_req_query_int(req, "limit", 1, INV_PAGE_MAX, &limit) != 0)
        return;
    char after[AG_UUID_STRLEN + 1];
    if (!cursor_param(req, q, after))
        return;
    struct inv_stock s;
    int rc = inv_store_stock_get(inv->store, id, &s);
    if (rc != 0) {
        ag_send_store_error(req, rc, "stock");
        return;
    }
    json_t *items = json_array();
    bool more;
    rc = inv_store_movement_list(inv->store, id, after[0] ? after : NULL, limit, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "movements");
        return;
    }
    send_page(req, items, more);
}

/* ---- Reservations ---- */

static void
list_reservations(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    int64_t limit = INV_PAGE_DEFAULT;
    if (ag_req_query_int(req, "limit", 1, INV_PAGE_MAX, &limit) != 0)
        return;
    const char *order_id = ag_query_get(q, "order_id");
    if (order_id != NULL && !inv_id_is_valid(ag_str_from_cstr(order_id))) {
        ag_send_error(req, AG_EQUERY, "query parameter 'order_id' must be an order id");
        return;
    }
    char after[AG_UUID_STRLEN + 1];
    if (!cursor_param(req, q, after))
        return;
    json_t *items = json_array();
    bool more;
    int rc = inv_store_reservation_list(inv->store, order_id, after[0] ? after : NULL, limit,
                                        req->pool, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "reservations");
        return;
    }
    send_page(req, items, more);
}

static void
get_reservation(struct ag_http_req *req, void *udata)
{
    struct inv *inv = udata;
    const char *id = ag_req_uuid_param(req, "id", "reservation");
    if (id == NULL)
        return;
    struct inv_reservation r;
    int rc = inv_store_reservation_by_id(inv->store, id, req->pool, &r);
    json_t *j = NULL;
    if (rc == 0)
        rc = inv_reservation_json(inv->store, &r, &j);
    if (rc != 0) {
        ag_send_store_error(req, rc, "reservation");
        return;
    }
    ag_send_json(req, 200, j);
}

const struct ag_route inv_routes[] = {
    { "GET", "/v1/stock", list_stock, AG_ROLE_PUBLIC },
    { "GET", "/v1/stock/{product_id}", get_stock, AG_ROLE_ADMIN },
    { "PUT", "/v1/stock/{product_id}", put_stock, AG_ROLE_ADMIN },
    { "POST", "/v1/stock/{product_id}/adjustments", adjust_stock, AG_ROLE_ADMIN },
    { "GET", "/v1/stock/{product_id}/movements", list_movements, AG_ROLE_ADMIN },
    { "GET", "/v1/reservations", list_reservations, AG_ROLE_ADMIN },
    { "GET", "/v1/reservations/{id}", get_reservation, AG_ROLE_ADMIN },
};
const size_t inv_nroutes = AG_ARRAY_SIZE(inv_routes);
