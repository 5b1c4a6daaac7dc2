/* SPDX-License-Identifier: MIT */
/* Bus HTTP handlers and route table. They validate requests, queue writes
 * (publish, ack, nack) for the engine's group commit (engine.c), hold pulls
 * there, and run the admin handlers between batches; SQL is in store.c. */
#include "agora/base.h"
#include "bus.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora/err.h"
#include "agora/identity.h"
#include "agora/log.h"

#define JSON_TYPE      "application/json"
#define REPLAY_ALL_MAX 100000 /* dead letters revived by one replay of "all" */
#define DEAD_LIST_DEF  100

/* ---- Who may do what ---- */

/* The internal routes are reached with a service identity only (the
 * chassis answered 401/403 to anyone else); the /v1/admin routes with an
 * administrator's. Each operation is narrower still (least privilege):
 * a service publishes the event types it owns (AGORA_BUS_PUBLISHERS) and
 * consumes its own subscriptions; dead letters are for the operator and
 * administrators. Each check answers 403 and returns false otherwise. */

/* The calling service's name, or "" for a user. */
static const char *
caller_service(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    return id != NULL && (id->roles & AG_IDENTITY_SERVICE) != 0 ? id->user_id : "";
}

static bool
may_consume(struct ag_http_req *req, const char *name)
{
    const char *who = caller_service(req);
    if (name != NULL && who[0] != '\0' && bus_may_consume(who, name))
        return true;
    ag_send_problem(req, 403, "forbidden", "Forbidden",
                    "service '%s' may not use subscription '%s': only its own ('%s' or '%s.*')",
                    who, name != NULL ? name : "", who, who);
    return false;
}

static bool
may_administer(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    if (id != NULL && ((id->roles & AG_IDENTITY_ADMIN) != 0 ||
                       strcmp(caller_service(req), AG_IDENTITY_OPERATOR) == 0))
        return true;
    ag_send_problem(req, 403, "forbidden", "Forbidden",
                    "dead letters are handled by the operator ('%s') or an administrator, not by "
                    "'%s'",
                    AG_IDENTITY_OPERATOR, caller_service(req));
    return false;
}

/* ---- Helpers for handlers ---- */

/* The subscription named by the path, or NULL after answering 404. */
static struct bus_sub *
sub_param(struct ag_http_req *req, struct bus *bus)
{
    const char *name = ag_req_param(req, "name");
    struct bus_sub *sub = NULL;
    if (name != NULL && bus_name_is_valid(name, strlen(name)))
        sub = bus_sub_find(bus, name);
    if (sub == NULL)
        ag_send_error(req, AG_ENOENT, "no such subscription");
    return sub;
}

static void
json_cleanup(void *arg)
{
    json_decref(arg);
}

/* The JSON body, or an empty object when the request has none. Released
 * with the request; NULL after answering 400 or 415. */
static json_t *
body_or_empty(struct ag_http_req *req)
{
    if (req->body.len > 0)
        return ag_req_json(req);
    json_t *empty = json_object();
    ag_pool_cleanup_add(req->pool, json_cleanup, empty);
    return empty;
}

static void
send_buf(struct ag_http_req *req, int status, struct ag_buf *out)
{
    size_t len;
    char *body = ag_buf_detach(out, &len);
    ag_http_send_take(req, status, JSON_TYPE, body, len);
}

/* ---- Publish ---- */

static void
publish(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!ag_req_is_json(req)) {
        ag_send_error(req, AG_EMEDIATYPE, "the body must be application/json");
        return;
    }
    struct ag_valid v;
    ag_valid_init(&v);
    struct bus_msg_in *msgs;
    size_t n;
    char err[160];
    int rc =
        bus_publish_parse(&v, req->body.ptr, req->body.len, req->pool, &msgs, &n, err, sizeof(err));
    if (rc != 0) {
        if (rc == AG_EPARSE)
            ag_send_error(req, AG_EPARSE, "malformed JSON: %s", err);
        else
            ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    const char *who = caller_service(req);
    for (size_t i = 0; i < n; i++) {
        if (!bus_may_publish(bus->grants, bus->ngrants, who, msgs[i].topic,
                             strlen(msgs[i].topic))) {
            ag_valid_release(&v);
            ag_send_problem(req, 403, "forbidden", "Forbidden",
                            "service '%s' may not publish '%s' (messages[%zu].topic): it publishes "
                            "only the event types it owns",
                            who, msgs[i].topic, i);
            return;
        }
    }
    struct bus_op *op = ag_pool_calloc(req->pool, sizeof(*op));
    op->topics = ag_pool_alloc(req->pool, n * sizeof(*op->topics));
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(msgs[i].topic);
        op->topics[i] = bus_topic_get(bus, msgs[i].topic, len, false);
        if (op->topics[i] == NULL && (int64_t)bus->ntopics < bus->settings.max_topics)
            op->topics[i] = bus_topic_get(bus, msgs[i].topic, len, true);
        if (op->topics[i] == NULL) {
            char field[48];
            snprintf(field, sizeof(field), "messages[%zu].topic", i);
            ag_valid_error(&v, field, "limit", "the bus already has %lld topics",
                           (long long)bus->settings.max_topics);
            ag_send_invalid(req, &v);
            ag_valid_release(&v);
            return;
        }
    }
    ag_valid_release(&v);
    op->kind = BUS_OP_PUBLISH;
    op->start_ns = ag_span_enabled() ? bus_unix_ns() : 0;
    op->req = req;
    op->msgs = msgs;
    op->n = n;
    op->seqs = ag_pool_alloc(req->pool, n * sizeof(*op->seqs));
    op->dup = ag_pool_alloc(req->pool, n * sizeof(*op->dup));
    bus_enqueue(bus, op);
}

/* ---- Topics ---- */

static int
topic_cmp(const void *a, const void *b)
{
    const struct bus_topic *const *x = a;
    const struct bus_topic *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void
list_topics(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_topic **v = ag_pool_alloc(req->pool, (bus->ntopics + 1) * sizeof(*v));
    size_t n = 0;
    size_t pos = 0;
    for (struct bus_hnode *h = bus_htab_next(&bus->topics, &pos, NULL); h != NULL;
         h = bus_htab_next(&bus->topics, &pos, h)) {
        struct bus_topic *t = BUS_CONTAINER(h, struct bus_topic, hnode);
        if (t->messages > 0)
            v[n++] = t;
    }
    qsort(v, n, sizeof(*v), topic_cmp);
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"topics\":[");
    for (size_t i = 0; i < n; i++) {
        ag_buf_appendf(&out,
                       "%s{\"name\":\"%s\",\"messages\":%" PRId64 ",\"last_seq\":%" PRId64 "}",
                       i ? "," : "", v[i]->name, v[i]->messages, v[i]->last_seq);
    }
    ag_buf_append_cstr(&out, "]}");
    send_buf(req, 200, &out);
}

/* ---- Subscriptions ---- */

static json_t *
sub_to_json(struct bus *bus, struct bus_sub *sub)
{
    json_t *topics = json_array();
    for (size_t i = 0; i < sub->npatterns; i++)
        json_array_append_new(topics, json_string(sub->patterns[i]));
    int64_t oldest = 0;
    if (sub->pending > 0 && bus_store_oldest_pending(bus->store, sub->id, &oldest) != 0)
        oldest = 0;
    int64_t age = oldest > 0 ? AG_MAX(0, ag_time_unix_ms() - oldest) : 0;
    int64_t in_flight = (int64_t)(sub->q.nleased + sub->q.nheld);
    int64_t delayed = (int64_t)sub->q.ndelayed;
    int64_t ready = AG_MAX(0, sub->pending - in_flight - delayed);
    return json_pack(
        "{s:s, s:o, s:I, s:I, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I}}", "name", sub->name, "topics",
        topics, "ack_deadline_ms", (json_int_t)sub->ack_deadline_ms, "max_attempts",
        (json_int_t)sub->max_attempts, "retry_delay_ms", (json_int_t)sub->retry_delay_ms,
        "created_at", sub->created_at, "backlog", "ready", (json_int_t)ready, "in_flight",
        (json_int_t)in_flight, "delayed", (json_int_t)delayed, "dead_letters",
        (json_int_t)sub->dead, "oldest_unacked_age_ms", (json_int_t)age);
}

static int
sub_cmp(const void *a, const void *b)
{
    const struct bus_sub *const *x = a;
    const struct bus_sub *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static void
list_subscriptions(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub **v = ag_pool_alloc(req->pool, (bus->nsubs + 1) * sizeof(*v));
    size_t n = 0;
    size_t pos = 0;
    for (struct bus_hnode *h = bus_htab_next(&bus->subs, &pos, NULL); h != NULL;
         h = bus_htab_next(&bus->subs, &pos, h))
        v[n++] = BUS_CONTAINER(h, struct bus_sub, hnode);
    qsort(v, n, sizeof(*v), sub_cmp);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, sub_to_json(bus, v[i]));
    ag_send_json(req, 200, json_pack("{s:o}", "subscriptions", items));
}

static void
get_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub != NULL)
        ag_send_json(req, 200, sub_to_json(bus, sub));
}

static void
put_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    const char *name = ag_req_param(req, "name");
    if (!may_consume(req, name))
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    if (name == NULL || !bus_name_is_valid(name, strlen(name)))
        ag_valid_error(&v, "name", "invalid",
                       "the subscription name in the path must match [a-z0-9][a-z0-9._-]{0,127}");
    json_t *body = ag_req_json(req);
    if (body == NULL) {
        ag_valid_release(&v);
        return;
    }
    struct bus_sub_config cfg;
    if (!bus_sub_config_from_json(&v, body, &cfg) || !ag_valid_ok(&v)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    json_t *arr = json_array();
    for (size_t i = 0; i < cfg.npatterns; i++)
        json_array_append_new(arr, json_string(cfg.patterns[i]));
    struct ag_buf tj = AG_BUF_INIT(0);
    ag_json_dump(arr, &tj);
    json_decref(arr);
    const char *topics_json = ag_buf_cstr(&tj);
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    struct bus_sub *sub = bus_sub_find(bus, name);
    int rc;
    int status = 200;
    if (sub != NULL) {
        rc = bus_store_sub_update(bus->store, sub->id, topics_json, &cfg, now);
        if (rc == 0)
            bus_sub_configure(bus, sub, &cfg);
    } else if ((int64_t)bus->nsubs >= bus->settings.max_subscriptions) {
        ag_buf_release(&tj);
        ag_send_problem(req, 409, "limit", "Conflict", "the bus already has %lld subscriptions",
                        (long long)bus->settings.max_subscriptions);
        return;
    } else {
        int64_t id = 0;
        rc = bus_store_sub_insert(bus->store, name, topics_json, &cfg, now, &id);
        if (rc == 0) {
            sub = bus_sub_new(bus, id, name, &cfg, now);
            status = 201;
            char loc[BUS_NAME_MAX + 32];
            snprintf(loc, sizeof(loc), "/v1/subscriptions/%s", name);
            ag_http_resp_header(req, "Location", loc);
        }
    }
    ag_buf_release(&tj);
    if (rc != 0) {
        ag_send_store_error(req, rc, "subscription");
        return;
    }
    bus_sync_now(bus);
    ag_send_json(req, status, sub_to_json(bus, sub));
}

static void
delete_subscription(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_consume(req, ag_req_param(req, "name")))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_sub_delete(bus->store, sub->id);
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        ag_store_rollback(bus->store);
        ag_send_store_error(req, rc, "subscription");
        return;
    }
    bus_sync_now(bus);
    bus_sub_free(bus, sub, 404);
    bus_flush_responses(bus);
    ag_send_no_content(req);
}

/* ---- Pull, ack, nack ---- */

static void
pull(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_consume(req, ag_req_param(req, "name")))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = body_or_empty(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t max;
    int64_t wait_ms;
    if (!bus_pull_from_json(&v, body, &max, &wait_ms)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    if (bus->stopping)
        wait_ms = 0;
    if (sub->q.nready == 0)
        bus_sub_refill(bus, sub);
    if (wait_ms == 0 || sub->q.nready > 0) {
        bus_answer_pull(bus, sub, req, max);
        bus_flush_responses(bus);
        return;
    }
    if ((int64_t)bus->nwaiting >= bus->settings.max_waiting) {
        ag_http_resp_header(req, "Retry-After", "1");
        ag_send_problem(req, 503, "too-many-pulls", "Service Unavailable",
                        "%zu pulls are already waiting; retry shortly", bus->nwaiting);
        return;
    }
    bus_hold_pull(bus, sub, req, max, wait_ms);
}

static void
settle(struct ag_http_req *req, struct bus *bus, enum bus_op_kind kind)
{
    if (!may_consume(req, ag_req_param(req, "name")))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct bus_op *op = ag_pool_calloc(req->pool, sizeof(*op));
    if (!bus_acks_from_json(&v, body, kind == BUS_OP_NACK, req->pool, &op->refs, &op->n,
                            &op->delay_ms, &op->error)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    op->kind = kind;
    op->req = req;
    op->sub_name = ag_pool_strdup(req->pool, sub->name);
    op->hits = ag_pool_alloc(req->pool, op->n * sizeof(*op->hits));
    bus_enqueue(bus, op);
}

static void
ack(struct ag_http_req *req, void *udata)
{
    settle(req, udata, BUS_OP_ACK);
}

static void
nack(struct ag_http_req *req, void *udata)
{
    settle(req, udata, BUS_OP_NACK);
}

/* ---- Dead letters ---- */

static void
list_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_administer(req))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int64_t limit = DEAD_LIST_DEF;
    int64_t after = 0;
    if (ag_req_query_int(req, "limit", 1, BUS_DEAD_LIST_MAX, &limit) != 0 ||
        ag_req_query_int(req, "after", 0, INT64_MAX, &after) != 0)
        return;
    struct ag_buf out = AG_BUF_INIT(0);
    ag_buf_append_cstr(&out, "{\"messages\":[");
    size_t n;
    int rc = bus_store_dead_list(bus->store, sub->id, after, limit, &out, &n);
    if (rc != 0) {
        ag_buf_release(&out);
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    ag_buf_append_cstr(&out, "]}");
    send_buf(req, 200, &out);
}

static void
get_dead_letter(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_administer(req))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    const char *s = ag_req_param(req, "seq");
    int64_t seq;
    if (s == NULL || ag_str_to_i64(ag_str_from_cstr(s), 1, INT64_MAX, &seq) != 0) {
        ag_send_error(req, AG_ENOENT, "no such dead letter");
        return;
    }
    struct ag_buf out = AG_BUF_INIT(0);
    int rc = bus_store_dead_get(bus->store, sub->id, seq, &out);
    if (rc != 0) {
        ag_buf_release(&out);
        ag_send_store_error(req, rc, "dead letter");
        return;
    }
    send_buf(req, 200, &out);
}

static void
replay_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_administer(req))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    json_t *body = body_or_empty(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    int64_t *seqs;
    size_t nseqs;
    if (!bus_replay_from_json(&v, body, req->pool, &seqs, &nseqs)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct bus_dead_ref *refs = NULL;
    size_t n = 0;
    bool *revived = NULL;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_dead_select(bus->store, sub->id, seqs, nseqs, REPLAY_ALL_MAX, req->pool,
                                   &refs, &n);
    if (rc == 0)
        revived = ag_pool_calloc(req->pool, n + 1);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = bus_store_dead_revive(bus->store, sub->id, refs[i].seq);
        revived[i] = rc == 0;
        if (rc == AG_ENOENT)
            rc = 0; /* named twice */
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        ag_store_rollback(bus->store);
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    bus_sync_now(bus);
    uint64_t now = ag_time_mono_ms();
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!revived[i])
            continue;
        count++;
        sub->dead--;
        sub->pending++;
        if (!sub->spilled || refs[i].seq <= sub->loaded_to)
            bus_q_add(&sub->q, refs[i].seq, refs[i].subject, refs[i].subject_len, 0, 0, now);
    }
    if (count > 0) {
        bus_touch(bus, sub);
        bus_dispatch_touched(bus);
    }
    bus_flush_responses(bus);
    ag_send_json(req, 200, json_pack("{s:I}", "replayed", (json_int_t)count));
}

static void
purge_dead_letters(struct ag_http_req *req, void *udata)
{
    struct bus *bus = udata;
    if (!may_administer(req))
        return;
    struct bus_sub *sub = sub_param(req, bus);
    if (sub == NULL)
        return;
    int64_t n = 0;
    int rc = bus_store_dead_purge(bus->store, sub->id, &n);
    if (rc != 0) {
        ag_send_store_error(req, rc, "dead letters");
        return;
    }
    bus_sync_now(bus);
    sub->dead = AG_MAX(0, sub->dead - n);
    ag_send_json(req, 200, json_pack("{s:I}", "purged", (json_int_t)n));
}

/* Handlers that change subscriptions wait for the batches in flight. */
#define ADMIN_ROUTE(name)                                                                          \
    static void name##_route(struct ag_http_req *req, void *udata)                                 \
    {                                                                                              \
        bus_run_admin(udata, req, name);                                                           \
    }
ADMIN_ROUTE(put_subscription)
ADMIN_ROUTE(delete_subscription)
ADMIN_ROUTE(replay_dead_letters)
ADMIN_ROUTE(purge_dead_letters)

const struct ag_route bus_routes[] = {
    { "POST", "/v1/messages", publish, AG_ROLE_INTERNAL },
    { "GET", "/v1/topics", list_topics, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions", list_subscriptions, AG_ROLE_INTERNAL },
    { "PUT", "/v1/subscriptions/{name}", put_subscription_route, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}", get_subscription, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/subscriptions/{name}", delete_subscription_route, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/pull", pull, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/ack", ack, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/nack", nack, AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}/dead-letters", list_dead_letters, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/subscriptions/{name}/dead-letters", purge_dead_letters_route,
      AG_ROLE_INTERNAL },
    { "GET", "/v1/subscriptions/{name}/dead-letters/{seq}", get_dead_letter, AG_ROLE_INTERNAL },
    { "POST", "/v1/subscriptions/{name}/dead-letters/replay", replay_dead_letters_route,
      AG_ROLE_INTERNAL },
    /* The console's view, routed by the gateway (/api/v1/admin/subscriptions)
     * with the administrator's own identity: read the backlog and the dead
     * letters, replay them; nothing that consumes, publishes or deletes. */
    { "GET", "/v1/admin/subscriptions", list_subscriptions, AG_ROLE_ADMIN },
    { "GET", "/v1/admin/subscriptions/{name}/dead-letters", list_dead_letters, AG_ROLE_ADMIN },
    { "GET", "/v1/admin/subscriptions/{name}/dead-letters/{seq}", get_dead_letter, AG_ROLE_ADMIN },
    { "POST", "/v1/admin/subscriptions/{name}/replay-dead-letters", replay_dead_letters_route,
      AG_ROLE_ADMIN },
};
const size_t bus_nroutes = AG_ARRAY_SIZE(bus_routes);
