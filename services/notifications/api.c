/* SPDX-License-Identifier: MIT */
/* Notifications HTTP handlers and the route table: a customer's own
 * notifications (everybody's for administrators) and the templates. A
 * customer asking for another user's notification gets 404, never 403, so
 * ids reveal nothing. */
#include "agora/base.h"
#include "notifications.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/time.h"

/* ---- Helpers ---- */

static bool
is_admin(const struct ag_identity *who)
{
    return who != NULL && (who->roles & AG_IDENTITY_ADMIN) != 0;
}

/* ---- Notifications ---- */

static void
list_notifications(struct ag_http_req *req, void *udata)
{
    struct notify *n = udata;
    const struct ag_identity *who = ag_req_identity(req);
    if (who == NULL) {
        ag_send_error(req, AG_EAUTH, "this resource needs a signed-in caller");
        return;
    }
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    bool admin = is_admin(who);
    struct notify_filter f = { .limit = NOTIFY_PAGE_DEFAULT };
    if (ag_req_query_int(req, "limit", 1, NOTIFY_PAGE_MAX, &f.limit) != 0)
        return;
    enum notify_status st;
    f.status = ag_query_get(q, "status");
    if (f.status != NULL && notify_status_parse(f.status, &st) != 0) {
        ag_send_error(req, AG_EQUERY,
                      "query parameter 'status' must be one of pending, sent, failed, recorded");
        return;
    }
    f.type = ag_query_get(q, "type");
    if (f.type != NULL && !notify_id_is_valid(f.type)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'type' must be an event type");
        return;
    }
    const char *cursor = ag_query_get(q, "cursor");
    if (cursor != NULL && notify_cursor_decode(cursor, &f.before_seq) != 0) {
        ag_send_error(req, AG_EQUERY,
                      "query parameter 'cursor' must be a cursor from this listing");
        return;
    }
    if (admin) {
        f.user_id = ag_query_get(q, "user_id");
        if (f.user_id != NULL && !notify_id_is_valid(f.user_id)) {
            ag_send_error(req, AG_EQUERY, "query parameter 'user_id' must be a user id");
            return;
        }
    } else {
        /* A customer sees only their own, whatever the query says. */
        f.user_id = who->user_id;
    }
    json_t *items = json_array();
    bool more;
    int64_t last_seq;
    int rc = notify_store_list(n->store, &f, admin, items, &more, &last_seq);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "notification list");
        return;
    }
    json_t *next = json_null();
    if (more) {
        char enc[NOTIFY_CURSOR_LEN];
        notify_cursor_encode(last_seq, enc);
        json_decref(next);
        next = json_string(enc);
    }
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

static void
get_notification(struct ag_http_req *req, void *udata)
{
    struct notify *n = udata;
    const struct ag_identity *who = ag_req_identity(req);
    const char *id = ag_req_param(req, "id");
    if (who == NULL || id == NULL || !ag_uuid_is_valid(ag_str_from_cstr(id))) {
        ag_send_error(req, AG_ENOENT, "no such notification");
        return;
    }
    struct notify_record r;
    int rc = notify_store_get(n->store, id, req->pool, &r);
    if (rc == 0 && !is_admin(who) && strcmp(r.user_id, who->user_id) != 0)
        rc = AG_ENOENT;
    if (rc != 0) {
        ag_send_store_error(req, rc, "notification");
        return;
    }
    ag_send_json(req, 200, notify_record_to_json(&r, is_admin(who)));
}

/* ---- Templates ---- */

static const char *const TEMPLATE_FIELDS[] = { "subject", "body", "enabled", NULL };

static json_t *
template_to_json(const struct notify_template *t)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:s}", "type", t->type, "subject", t->subject, "body",
                     t->body, "enabled", t->enabled, "updated_at", t->updated_at);
}

static void
list_templates(struct ag_http_req *req, void *udata)
{
    struct notify *n = udata;
    json_t *items;
    int rc = notify_store_template_list(n->store, &items);
    if (rc != 0) {
        ag_send_store_error(req, rc, "template list");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:o}", "items", items));
}

static void
get_template(struct ag_http_req *req, void *udata)
{
    struct notify *n = udata;
    const char *type = ag_req_param(req, "type");
    struct notify_template t;
    int rc = type != NULL && notify_id_is_valid(type)
                 ? notify_store_template_get(n->store, type, req->pool, &t)
                 : AG_ENOENT;
    if (rc != 0) {
        ag_send_store_error(req, rc, "template");
        return;
    }
    ag_send_json(req, 200, template_to_json(&t));
}

/* True when 'type' is an event type this service consumes. */
static bool
type_is_consumed(const char *type)
{
    if (type == NULL || !notify_id_is_valid(type) || strchr(type, ':') != NULL)
        return false;
    for (const char *p = type; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            return false;
    }
    for (size_t i = 0; i < notify_ntopics; i++) {
        size_t len = strlen(notify_topics[i]) - 1; /* "user.*" -> "user." */
        if (strncmp(type, notify_topics[i], len) == 0 && type[len] != '\0')
            return true;
    }
    return false;
}

static void
put_template(struct ag_http_req *req, void *udata)
{
    struct notify *n = udata;
    const char *type = ag_req_param(req, "type");
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    if (!type_is_consumed(type))
        ag_valid_error(&v, "type", "invalid",
                       "not an event type this service consumes (user.*, order.*, payment.*, "
                       "shipment.*)");
    struct notify_template t = { .type = type, .enabled = true };
    t.subject =
        ag_valid_string(&v, body, NULL, "subject", AG_VALID_REQUIRED, 1, NOTIFY_TPL_SUBJECT_MAX);
    t.body = ag_valid_string(&v, body, NULL, "body", AG_VALID_REQUIRED, 1, NOTIFY_TPL_BODY_MAX);
    ag_valid_bool(&v, body, NULL, "enabled", AG_VALID_OPTIONAL, &t.enabled);
    ag_valid_unknown(&v, body, NULL, TEMPLATE_FIELDS);
    if (t.subject != NULL)
        notify_template_check(&v, "subject", t.subject);
    if (t.body != NULL)
        notify_template_check(&v, "body", t.body);
    if (!ag_valid_ok(&v)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    t.updated_at = now;
    bool created;
    int rc = notify_store_template_put(n->store, &t, &created);
    if (rc != 0) {
        ag_send_store_error(req, rc, "template");
        return;
    }
    AG_LOGI("api", "template '%s' %s", type, created ? "created" : "replaced");
    ag_send_json(req, created ? 201 : 200, template_to_json(&t));
}

const struct ag_route notify_routes[] = {
    { "GET", "/v1/notifications", list_notifications, AG_ROLE_CUSTOMER },
    { "GET", "/v1/notifications/{id}", get_notification, AG_ROLE_CUSTOMER },
    { "GET", "/v1/templates", list_templates, AG_ROLE_ADMIN },
    { "GET", "/v1/templates/{type}", get_template, AG_ROLE_ADMIN },
    { "PUT", "/v1/templates/{type}", put_template, AG_ROLE_ADMIN },
};
const size_t notify_nroutes = AG_ARRAY_SIZE(notify_routes);
