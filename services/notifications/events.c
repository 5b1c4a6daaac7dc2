/* SPDX-License-Identifier: MIT */
/* Notifications consumer: user.*, order.*, payment.* and shipment.* events
 * arrive through the events runtime (subscription "notifications"), each in
 * a transaction that also holds its inbox entry. The handler keeps the user
 * and order replicas, and for an event type with a template records one
 * notification: pending for the sender when SMTP is configured, recorded
 * otherwise. Nothing here sends; sender.c does, after the commit. */
#include "agora/base.h"
#include "notifications.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/uuid.h"

const char *const notify_topics[] = { "user.*", "order.*", "payment.*", "shipment.*" };
const size_t notify_ntopics = AG_ARRAY_SIZE(notify_topics);

/* Longest e-mail address accepted into the replica (RFC 5321 allows 254
 * in a path; anything past this is junk, stored as unknown). */
#define REPLICA_EMAIL_MAX 320

/* ---- Event fields ---- */

static const char *
data_str(const json_t *data, const char *key)
{
    return json_string_value(json_object_get(data, key));
}

/* A valid id field of 'data', or NULL. */
static const char *
data_id(const json_t *data, const char *key)
{
    const char *s = data_str(data, key);
    return notify_id_is_valid(s) ? s : NULL;
}

/* Unix ms of the RFC 3339 'key' of 'obj', or 'fallback'. */
static int64_t
time_field(const json_t *obj, const char *key, int64_t fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    int64_t ms;
    if (s == NULL || ag_time_parse_rfc3339(ag_str_from_cstr(s), &ms) != 0)
        return fallback;
    return ms;
}

/* ---- Replicas ---- */

/* user.registered and user.updated: the e-mail and name of a user. Fields
 * absent from the event are kept; a change older than the one applied is
 * ignored. */
static int
apply_user(struct ag_store *st, const char *type, const json_t *data, int64_t event_ms)
{
    const char *user_id = data_id(data, "user_id");
    if (user_id == NULL)
        return AG_EINVAL;
    const char *email = data_str(data, "email");
    if (email != NULL && strlen(email) > REPLICA_EMAIL_MAX)
        email = "";
    const char *raw_name = data_str(data, "name");
    struct ag_buf name = AG_BUF_INIT(0);
    if (raw_name != NULL)
        notify_text_one_line(raw_name, NOTIFY_NAME_MAX, &name);
    const char *when = strcmp(type, "user.registered") == 0 ? "registered_at" : "updated_at";
    int64_t changed_ms = time_field(data, when, event_ms);
    int rc = notify_store_user_put(st, user_id, email, raw_name != NULL ? ag_buf_cstr(&name) : NULL,
                                   changed_ms);
    ag_buf_release(&name);
    return rc;
}

static int
apply_order(struct ag_store *st, const json_t *data, int64_t event_ms)
{
    const char *order_id = data_id(data, "order_id");
    const char *user_id = data_id(data, "user_id");
    if (order_id == NULL || user_id == NULL)
        return AG_EINVAL;
    char created[AG_RFC3339_LEN];
    ag_time_rfc3339(time_field(data, "created_at", event_ms), created);
    return notify_store_order_put(st, order_id, user_id, created);
}

/* ---- Notifications ---- */

/* The render context: the event's data, plus "recipient" {name, email}
 * and "event" {id, type, time, subject} unless the data has such keys. */
static json_t *
render_context(const json_t *event, const json_t *data, const char *email, const char *name)
{
    json_t *ctx = json_deep_copy(data);
    if (json_object_get(ctx, "recipient") == NULL)
        json_object_set_new(
            ctx, "recipient",
            json_pack("{s:s, s:s}", "name", name ? name : "", "email", email ? email : ""));
    if (json_object_get(ctx, "event") == NULL) {
        json_t *e = json_object();
        static const char *const KEYS[] = { "id", "type", "time", "subject", "source" };
        for (size_t i = 0; i < AG_ARRAY_SIZE(KEYS); i++) {
            json_t *v = json_object_get(event, KEYS[i]);
            if (json_is_string(v))
                json_object_set(e, KEYS[i], v);
        }
        json_object_set_new(ctx, "event", e);
    }
    return ctx;
}

static void
set_outcome(struct notify *n, const char *outcome)
{
    n->fx.outcome = outcome;
}

/* Who the event is for: data.user_id, else the owner of data.order_id. */
static int
resolve_user(struct ag_store *st, const json_t *data, struct ag_pool *pool,
             const char **out_user_id)
{
    *out_user_id = data_id(data, "user_id");
    if (*out_user_id != NULL)
        return 0;
    const char *order_id = data_id(data, "order_id");
    if (order_id == NULL)
        return AG_ENOENT;
    return notify_store_order_user(st, order_id, pool, out_user_id);
}

static int
record(struct notify *n, struct ag_store *st, const json_t *event, const char *event_id,
       const char *type, const json_t *data, struct ag_pool *pool)
{
    struct notify_template tpl;
    int rc = notify_store_template_get(st, type, pool, &tpl);
    if (rc == AG_ENOENT || (rc == 0 && !tpl.enabled)) {
        set_outcome(n, "ignored");
        return 0;
    }
    if (rc != 0)
        return rc;
    const char *user_id = NULL;
    rc = resolve_user(st, data, pool, &user_id);
    if (rc == AG_ENOENT) {
        AG_LOGI("events", "%s event '%s' names no user or known order; not notified", type,
                event_id);
        set_outcome(n, "unaddressable");
        return 0;
    }
    if (rc != 0)
        return rc;
    const char *email = NULL;
    const char *name = NULL;
    rc = notify_store_user_get(st, user_id, pool, &email, &name);
    if (rc != 0 && rc != AG_ENOENT)
        return rc;

    json_t *ctx = render_context(event, data, email, name);
    struct ag_buf subject = AG_BUF_INIT(0);
    struct ag_buf body = AG_BUF_INIT(0);
    notify_render(tpl.subject, ctx, true, NOTIFY_SUBJECT_MAX, &subject);
    notify_render(tpl.body, ctx, false, NOTIFY_BODY_MAX, &body);
    json_decref(ctx);

    char id[AG_UUID_STRLEN + 1];
    ag_uuid7(id);
    int64_t now = ag_time_unix_ms();
    char created[AG_RFC3339_LEN];
    ag_time_rfc3339(now, created);
    struct notify_record r = {
        .id = id,
        .event_id = event_id,
        .type = type,
        .user_id = user_id,
        .channel = "none",
        .recipient = email != NULL ? email : "",
        .recipient_name = name != NULL ? name : "",
        .subject = ag_buf_cstr(&subject),
        .body = ag_buf_cstr(&body),
        .status = NOTIFY_RECORDED,
        .created_at = created,
    };
    if (n->smtp_enabled && email != NULL && email[0] != '\0') {
        r.channel = "email";
        if (notify_email_is_valid(email)) {
            r.status = NOTIFY_PENDING;
            r.next_attempt_ms = now;
        } else {
            r.status = NOTIFY_FAILED;
            r.last_error = "invalid recipient address";
        }
    } else if (n->smtp_enabled) {
        r.last_error = "no e-mail address known for the user";
    }
    rc = notify_store_insert(st, &r);
    ag_buf_release(&subject);
    ag_buf_release(&body);
    if (rc == AG_EEXIST) {
        set_outcome(n, "duplicate");
        return 0;
    }
    if (rc != 0)
        return rc;
    set_outcome(n, notify_status_name(r.status));
    return 0;
}

/* After the commit that holds the event: metrics and a sender kick. */
static void
effects_apply(const void *arg, void *udata)
{
    struct notify *n = udata;
    AG_CHECK_MAGIC(n, NOTIFY_MAGIC);
    const char *outcome;
    memcpy(&outcome, arg, sizeof(outcome));
    if (strcmp(outcome, "pending") == 0 || strcmp(outcome, "recorded") == 0 ||
        strcmp(outcome, "failed") == 0) {
        ag_counter_add(n->m_events, (const char *const[]){ "notified" }, 1);
        if (strcmp(outcome, "pending") != 0)
            ag_counter_add(n->m_deliveries, (const char *const[]){ outcome }, 1);
        else if (n->sender != NULL)
            notify_sender_kick(n->sender);
    } else {
        ag_counter_add(n->m_events, (const char *const[]){ outcome }, 1);
    }
}

static int
handle(struct notify *n, struct ag_store *st, const json_t *event)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *event_id = json_string_value(json_object_get(event, "id"));
    const json_t *data = json_object_get(event, "data");
    if (type == NULL || !notify_id_is_valid(event_id) || !json_is_object(data)) {
        /* Poison: acknowledge it rather than see it again forever. */
        AG_LOGW("events", "event '%s' of type '%s' is not a CloudEvent with object data; skipped",
                event_id != NULL ? event_id : "?", type != NULL ? type : "?");
        set_outcome(n, "invalid");
        return 0;
    }
    int64_t event_ms = time_field(event, "time", ag_time_unix_ms());
    int rc = 0;
    if (strcmp(type, "user.registered") == 0 || strcmp(type, "user.updated") == 0)
        rc = apply_user(st, type, data, event_ms);
    else if (strcmp(type, "order.created") == 0)
        rc = apply_order(st, data, event_ms);
    if (rc == AG_EINVAL) {
        AG_LOGW("events", "%s event '%s' lacks a valid user_id or order_id; skipped", type,
                event_id);
        set_outcome(n, "invalid");
        return 0;
    }
    if (rc != 0)
        return rc;
    struct ag_pool *pool = ag_pool_new(4096);
    rc = record(n, st, event, event_id, type, data, pool);
    ag_pool_free(pool);
    return rc; /* the runtime logs a failure and redelivers the event */
}

int
notify_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata)
{
    struct notify *n = udata;
    AG_CHECK_MAGIC(n, NOTIFY_MAGIC);
    memset(&n->fx, 0, sizeof(n->fx));
    int rc = handle(n, st, event);
    /* The outcome counts once the event's transaction commits (a batch of
     * deliveries shares one commit). */
    if (rc == 0 && n->fx.outcome != NULL)
        rc = ag_events_after_commit(ev, effects_apply, &n->fx.outcome, sizeof(n->fx.outcome), n);
    return rc;
}
