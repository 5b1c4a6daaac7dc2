/* SPDX-License-Identifier: MIT */
/* The checkout saga's commands to shipping, consumed from the bus through
 * the chassis inbox (subscription "shipping", topics cmd.shipment.*):
 * cmd.shipment.create and cmd.shipment.cancel. Each runs in the inbox's
 * transaction and answers with a reply event written to the outbox in that
 * same transaction. Every step is recorded under its step_key with the reply
 * it gave, so a repeated step (a retry by orders, with a new event id) has
 * no second effect and re-publishes the same reply
 * (contracts/events/cmd.shipment.*.schema.json, contracts/README.md). */
#include "agora/base.h"
#include "shipping.h"

#include <signal.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/random.h"
#include "agora/time.h"

#define LOG "commands"

#define CMD_CREATE "cmd.shipment.create"
#define CMD_CANCEL "cmd.shipment.cancel"

const char *const ship_command_topics[] = { "cmd.shipment.*" };
const size_t ship_ncommand_topics = AG_ARRAY_SIZE(ship_command_topics);

/* One command being applied. */
struct cmd {
    struct ship *sh;
    struct ag_store *st;
    struct ag_events *ev;
    const char *type;        /* the command's type */
    const char *traceparent; /* the command's, or NULL */
    struct ag_pool *pool;    /* freed after the command */
};

/* Publish reply 'type' about 'subject' with 'data' (borrowed) and record
 * step 'step_key' with it, for a repeat to re-publish. */
static int
reply(struct cmd *c, const char *step_key, const char *order_id, const char *type,
      const char *subject, const json_t *data)
{
    int rc = ship_events_publish(c->ev, type, subject, data, c->traceparent);
    if (rc != 0)
        return rc;
    char *text = json_dumps(data, JSON_COMPACT);
    if (text == NULL)
        return AG_ENOMEM;
    struct ag_step step = {
        .key = step_key,
        .command = c->type,
        .subject = order_id,
        .done = true,
        .reply_type = type,
        .reply_subject = subject,
        .data = text,
    };
    rc = ag_step_put(c->sh->idem, &step, ag_time_unix_ms());
    ag_free(text);
    return rc;
}

/* The step was applied before: publish the reply it gave, again. Sets
 * *out_found. A step_key reused by another command is refused (false with
 * *out_found true and the outcome "invalid"). */
static int
replay(struct cmd *c, const char *step_key, bool *out_found)
{
    struct ag_step step;
    int rc = ag_step_get(c->sh->idem, step_key, c->pool, &step);
    *out_found = rc == 0;
    if (rc == AG_ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    if (strcmp(step.command, c->type) != 0) {
        AG_LOGW(LOG, "step '%s' of %s was applied by %s: ignored", step_key, c->type, step.command);
        c->sh->fx.outcome = "invalid";
        return 0;
    }
    json_t *data = step.data != NULL ? json_loads(step.data, 0, NULL) : NULL;
    if (data == NULL) {
        AG_LOGE(LOG, "step '%s': stored reply is not JSON", step_key);
        return AG_EINTERNAL;
    }
    rc = ship_events_publish(c->ev, step.reply_type, step.reply_subject, data, c->traceparent);
    json_decref(data);
    if (rc == 0)
        c->sh->fx.outcome = "replayed";
    return rc;
}

static bool
valid(struct cmd *c, bool ok, struct ag_valid *v)
{
    if (ok)
        return true;
    char *errs = json_dumps(v->errors, JSON_COMPACT);
    AG_LOGW(LOG, "%s refused, it can never be applied: %s", c->type, errs ? errs : "invalid");
    ag_free(errs);
    c->sh->fx.outcome = "invalid";
    return false;
}

/* A new shipment for the command's order. */
static int
create_new(struct cmd *c, const struct ship_create_cmd *k, struct ship_shipment *s)
{
    memset(s, 0, sizeof(*s));
    ag_uuid7(s->id);
    memcpy(s->order_id, k->order_id, sizeof(s->order_id));
    memcpy(s->user_id, k->user_id, sizeof(s->user_id));
    s->status = SHIP_CREATED;
    uint8_t rnd[8];
    ag_random_fill(rnd, sizeof(rnd));
    ship_tracking_number(rnd, s->tracking_number);
    ag_time_rfc3339(ag_time_unix_ms(), s->created_at);
    memcpy(s->updated_at, s->created_at, sizeof(s->updated_at));
    char *address = json_dumps(k->address, JSON_COMPACT);
    char *lines = json_dumps(k->lines, JSON_COMPACT);
    json_t *history = json_pack("[{s:s, s:s}]", "status", "created", "at", s->created_at);
    char *hist = json_dumps(history, JSON_COMPACT);
    json_decref(history);
    s->address = address ? ag_pool_strdup(c->pool, address) : NULL;
    s->lines = lines ? ag_pool_strdup(c->pool, lines) : NULL;
    s->history = hist ? ag_pool_strdup(c->pool, hist) : NULL;
    ag_free(address);
    ag_free(lines);
    ag_free(hist);
    if (s->address == NULL || s->lines == NULL || s->history == NULL)
        return AG_ENOMEM;
    return ship_store_insert(c->st, s);
}

static int
handle_create(struct cmd *c, json_t *data)
{
    c->sh->fx.command = "create";
    struct ag_valid v;
    ag_valid_init(&v);
    struct ship_create_cmd k;
    bool ok = valid(c, ship_create_cmd_from_json(&v, data, &k), &v);
    ag_valid_release(&v);
    if (!ok)
        return 0;
    bool found;
    int rc = replay(c, k.step_key, &found);
    if (rc != 0 || found)
        return rc;
    struct ship_shipment s;
    rc = ship_store_get_by_order(c->st, k.order_id, c->pool, &s);
    if (rc == 0) {
        /* One shipment per order: another step asking again gets it. */
        c->sh->fx.outcome = "replayed";
    } else if (rc == AG_ENOENT) {
        rc = create_new(c, &k, &s);
        if (rc != 0)
            return rc;
        c->sh->fx.outcome = "created";
        c->sh->fx.entered = SHIP_CREATED;
    } else {
        return rc;
    }
    json_t *reply_data = ship_data_created(&s);
    rc = reply(c, k.step_key, k.order_id, "shipment.created", s.id, reply_data);
    json_decref(reply_data);
    return rc;
}

static int
handle_cancel(struct cmd *c, json_t *data)
{
    c->sh->fx.command = "cancel";
    struct ag_valid v;
    ag_valid_init(&v);
    struct ship_cancel_cmd k;
    bool ok = valid(c, ship_cancel_cmd_from_json(&v, data, &k), &v);
    ag_valid_release(&v);
    if (!ok)
        return 0;
    bool found;
    int rc = replay(c, k.step_key, &found);
    if (rc != 0 || found)
        return rc;
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    struct ship_shipment s;
    rc = ship_store_get_by_order(c->st, k.order_id, c->pool, &s);
    json_t *out = NULL;
    const char *type = "shipment.cancelled";
    const char *subject = k.order_id;
    if (rc == AG_ENOENT) {
        /* Compensation of a step that never took effect: harmless. */
        out = ship_data_cancelled(NULL, k.order_id, k.reason, now);
        c->sh->fx.outcome = "absent";
    } else if (rc != 0) {
        return rc;
    } else if (s.status == SHIP_CANCELLED) {
        out = ship_data_cancelled(s.id, k.order_id, k.reason, s.updated_at);
        subject = s.id;
        c->sh->fx.outcome = "cancelled";
    } else if (s.status == SHIP_CREATED) {
        /* The event is written by the transition; the step records it. */
        rc = ship_shipment_apply(c->st, NULL, &s, SHIP_ACT_CANCEL, NULL, k.reason, NULL, &type,
                                 &out);
        if (rc != 0)
            return rc;
        subject = s.id;
        c->sh->fx.outcome = "cancelled";
        c->sh->fx.entered = SHIP_CANCELLED;
    } else {
        /* Shipped or delivered: the cancel is refused, never half done. */
        type = "shipment.cancel_rejected";
        out = ship_data_cancel_rejected(&s, k.reason, now);
        subject = s.id;
        c->sh->fx.outcome = "refused";
    }
    rc = reply(c, k.step_key, k.order_id, type, subject, out);
    json_decref(out);
    return rc;
}

/* After the commit that holds the command: count what it did. */
static void
effect_apply(const void *arg, void *udata)
{
    struct ship *sh = udata;
    struct ship_effect fx;
    memcpy(&fx, arg, sizeof(fx));
    if (fx.command != NULL && fx.outcome != NULL)
        ag_counter_add(sh->m_commands, (const char *const[]){ fx.command, fx.outcome }, 1);
    if (fx.entered >= 0)
        ship_count_status(sh, (enum ship_status)fx.entered);
}

int
ship_commands_handle(struct ag_events *ev, struct ag_store *store, const json_t *event, void *udata)
{
    struct ship *sh = udata;
    sh->fx = (struct ship_effect){ .entered = -1 };
    const char *type = json_string_value(json_object_get(event, "type"));
    json_t *data = json_object_get(event, "data");
    struct cmd c = {
        .sh = sh,
        .st = store,
        .ev = ev,
        .type = type,
        .traceparent = json_string_value(json_object_get(event, "traceparent")),
        .pool = ag_pool_new(4096),
    };
    int rc = 0;
    if (type != NULL && strcmp(type, CMD_CREATE) == 0) {
        rc = handle_create(&c, data);
    } else if (type != NULL && strcmp(type, CMD_CANCEL) == 0) {
        rc = handle_cancel(&c, data);
    } else {
        AG_LOGW(LOG, "unknown command '%s' ignored", type ? type : "(none)");
        sh->fx.command = "unknown";
        sh->fx.outcome = "invalid";
    }
    ag_pool_free(c.pool);
    if (rc != 0) {
        ag_counter_add(
            sh->m_commands,
            (const char *const[]){ sh->fx.command ? sh->fx.command : "unknown", "error" }, 1);
        sh->fx = (struct ship_effect){ .entered = -1 };
        return rc;
    }
    /* Counted once the delivery's transaction commits (a pulled batch
     * shares one commit). */
    if ((sh->fx.command != NULL && sh->fx.outcome != NULL) || sh->fx.entered >= 0)
        rc = ag_events_after_commit(ev, effect_apply, &sh->fx, sizeof(sh->fx), sh);
    return rc;
}

void
ship_commands_committed(struct ag_events *ev, const char *subscription, const json_t *event,
                        void *udata)
{
    AG_UNUSED(ev);
    AG_UNUSED(subscription);
    AG_UNUSED(event);
    struct ship *sh = udata;
    sh->commits++;
    if (sh->settings.kill_after > 0 && sh->commits >= sh->settings.kill_after) {
        /* Tests only: die between the commit and the ack, as a crash would. */
        AG_LOGW(LOG, "AGORA_SHIPPING_TEST_KILL_AFTER_COMMIT: killing the process after commit %lld",
                (long long)sh->commits);
        raise(SIGKILL);
    }
}
