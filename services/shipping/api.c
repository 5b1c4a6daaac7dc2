/* SPDX-License-Identifier: MIT */
/* Shipping HTTP handlers and the route table: shipments read by their owner,
 * a courier or an administrator, moved along created -> shipped ->
 * delivered by a courier or an administrator, and cancelled before dispatch
 * by an administrator. Shipments are created only by the saga's command
 * (commands.c). The gateway lets any signed-in caller through to the moves
 * (it knows no courier role); the roles are checked here. */
#include "agora/base.h"
#include "shipping.h"

#include <string.h>

#include "agora/err.h"
#include "agora/trace.h"

/* ---- Helpers ---- */

static bool
is_admin(const struct ag_identity *who)
{
    return who != NULL && (who->roles & AG_IDENTITY_ADMIN) != 0;
}

/* Couriers and administrators see every shipment and move them along. */
static bool
is_staff(const struct ag_identity *who)
{
    return who != NULL && (who->roles & (AG_IDENTITY_ADMIN | AG_IDENTITY_COURIER)) != 0;
}

/* The shipment of path parameter {id} when the caller may see it: its
 * owner, a courier or an administrator. Anyone else gets the same 404 as for a
 * shipment that does not exist, never a 403 that would confirm it. */
static int
visible_shipment(struct ag_http_req *req, struct ship *sh, struct ship_shipment *out)
{
    const struct ag_identity *who = ag_req_identity(req);
    if (who == NULL) {
        ag_send_error(req, AG_EAUTH, "this resource needs a signed-in caller");
        return AG_EAUTH;
    }
    const char *id = ag_req_uuid_param(req, "id", "shipment");
    if (id == NULL)
        return AG_ENOENT;
    int rc = ship_store_get(sh->store, id, req->pool, out);
    if (rc == 0 && !is_staff(who) && strcmp(out->user_id, who->user_id) != 0)
        rc = AG_ENOENT;
    if (rc != 0)
        ag_send_store_error(req, rc, "shipment");
    return rc;
}

/* ---- Reading ---- */

static void
list_shipments(struct ag_http_req *req, void *udata)
{
    struct ship *sh = udata;
    const struct ag_identity *who = ag_req_identity(req);
    if (who == NULL) {
        ag_send_error(req, AG_EAUTH, "this resource needs a signed-in caller");
        return;
    }
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    struct ship_filter f = { .status = -1, .limit = SHIP_PAGE_DEFAULT };
    if (ag_req_query_int(req, "limit", 1, SHIP_PAGE_MAX, &f.limit) != 0)
        return;
    const char *status = ag_query_get(q, "status");
    if (status != NULL) {
        enum ship_status st;
        if (ship_status_parse(status, &st) != 0) {
            ag_send_error(req, AG_EQUERY,
                          "query parameter 'status' must be one of created, "
                          "shipped, delivered, cancelled");
            return;
        }
        f.status = (int)st;
    }
    f.order_id = ag_query_get(q, "order_id");
    if (f.order_id != NULL && !ship_id_is_valid(f.order_id)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'order_id' must be an order id");
        return;
    }
    f.user_id = ag_query_get(q, "user_id");
    if (f.user_id != NULL && !ship_id_is_valid(f.user_id)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'user_id' must be a user id");
        return;
    }
    /* A customer sees their own shipments only, whatever the filter says. */
    if (!is_staff(who)) {
        if (f.user_id != NULL && strcmp(f.user_id, who->user_id) != 0) {
            ag_send_json(req, 200, json_pack("{s:[], s:n}", "items", "next_cursor"));
            return;
        }
        f.user_id = who->user_id;
    }
    const char *cursor = ag_query_get(q, "cursor");
    char after[AG_UUID_STRLEN + 1];
    if (cursor != NULL) {
        if (ship_cursor_decode(cursor, after) != 0) {
            ag_send_error(req, AG_EQUERY,
                          "query parameter 'cursor' is not a cursor from this listing");
            return;
        }
        f.after_id = after;
    }
    json_t *items = json_array();
    bool more;
    char last_id[AG_UUID_STRLEN + 1];
    int rc = ship_store_list(sh->store, &f, items, &more, last_id);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "shipment list");
        return;
    }
    json_t *next = json_null();
    if (more) {
        char enc[96];
        ship_cursor_encode(last_id, enc, sizeof(enc));
        json_decref(next);
        next = json_string(enc);
    }
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

static void
get_shipment(struct ag_http_req *req, void *udata)
{
    struct ship *sh = udata;
    struct ship_shipment s;
    if (visible_shipment(req, sh, &s) != 0)
        return;
    ag_send_json(req, 200, ship_shipment_to_json(&s));
}

/* ---- Moving a shipment along ---- */

struct apply_tx {
    struct ship *sh;
    const char *id;
    enum ship_action action;
    const char *traceparent;
    struct ag_pool *pool;
    struct ship_shipment s; /* out: the shipment after the change (or as found) */
};

static int
apply_tx_fn(struct ag_store *store, void *arg)
{
    struct apply_tx *t = arg;
    /* Read inside the transaction, so the transition starts from the
     * committed status and the UPDATE's status guard never races. */
    int rc = ship_store_get(store, t->id, t->pool, &t->s);
    if (rc != 0)
        return rc;
    return ship_shipment_apply(store, t->sh->events, &t->s, t->action, t->sh->settings.carrier,
                               SHIP_REASON_ADMIN, t->traceparent, NULL, NULL);
}

static void
apply(struct ag_http_req *req, struct ship *sh, enum ship_action action)
{
    /* Ship and deliver: a courier or an administrator; cancel: an
     * administrator (the saga cancels through its command). */
    const struct ag_identity *who = ag_req_identity(req);
    bool may = action == SHIP_ACT_CANCEL ? is_admin(who) : is_staff(who);
    if (!may) {
        ag_send_error(req, AG_EFORBIDDEN, "to %s a shipment needs the %s role",
                      ship_action_name(action),
                      action == SHIP_ACT_CANCEL ? "admin" : "courier or admin");
        return;
    }
    const char *id = ag_req_uuid_param(req, "id", "shipment");
    if (id == NULL)
        return;
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    struct apply_tx t = {
        .sh = sh,
        .id = id,
        .action = action,
        .traceparent = tp,
        .pool = req->pool,
    };
    int rc = ag_store_tx(sh->store, apply_tx_fn, &t);
    if (rc == 0) {
        ship_events_kick(sh->events);
        ship_count_status(sh, t.s.status);
        /* Read again for the history the UPDATE appended. */
        rc = ship_store_get(sh->store, id, req->pool, &t.s);
        if (rc != 0)
            ag_send_store_error(req, rc, "shipment");
        else
            ag_send_json(req, 200, ship_shipment_to_json(&t.s));
    } else if (rc == AG_ECONFLICT) {
        ag_send_error(req, AG_ECONFLICT, "cannot %s a shipment that is %s",
                      ship_action_name(action), ship_status_name(t.s.status));
    } else {
        ag_send_store_error(req, rc, "shipment");
    }
}

static void
post_ship(struct ag_http_req *req, void *udata)
{
    apply(req, udata, SHIP_ACT_SHIP);
}

static void
deliver_shipment(struct ag_http_req *req, void *udata)
{
    apply(req, udata, SHIP_ACT_DELIVER);
}

static void
cancel_shipment(struct ag_http_req *req, void *udata)
{
    apply(req, udata, SHIP_ACT_CANCEL);
}

const struct ag_route ship_routes[] = {
    { "GET", "/v1/shipments", list_shipments, AG_ROLE_CUSTOMER },
    { "GET", "/v1/shipments/{id}", get_shipment, AG_ROLE_CUSTOMER },
    /* Customer-level routes (any signed-in caller), the role checked by
     * apply(): the gateway and the chassis know no courier role. */
    { "POST", "/v1/shipments/{id}/ship", post_ship, AG_ROLE_CUSTOMER },
    { "POST", "/v1/shipments/{id}/deliver", deliver_shipment, AG_ROLE_CUSTOMER },
    { "POST", "/v1/shipments/{id}/cancel", cancel_shipment, AG_ROLE_CUSTOMER },
};
const size_t ship_nroutes = AG_ARRAY_SIZE(ship_routes);
