/* SPDX-License-Identifier: MIT */
/* Inventory events. Out, through the outbox inside the transaction of the
 * change: the saga replies (inventory.reserved, .rejected, .released,
 * .committed) and stock.low, stock.depleted. In, through subscription
 * "inventory" and the chassis inbox: product.* from the catalog (a stock
 * row per product, removed from sale on product.deleted) and the saga's
 * commands cmd.inventory.* (commands.c). DESIGN.md sections 2 and 3;
 * contracts/events/. */
#include "agora/base.h"
#include "inventory.h"

#include <signal.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"

int
inv_events_publish(struct ag_events *ev, const char *type, const char *subject, const json_t *data,
                   const char *traceparent)
{
    if (ev == NULL)
        return 0;
    return ag_events_publish(ev, type, subject, data, traceparent, NULL);
}

void
inv_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}

/* product.created (and product.updated, for a product whose creation this
 * service never saw): a stock row at 0, or at the demo stock. */
static int
product_seen(struct inv *inv, struct ag_store *st, const char *id, bool created, const char *tp)
{
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    int rc = inv_store_stock_insert(st, id, now);
    if (rc == AG_EEXIST)
        return 0; /* known already: a redelivery, or an update */
    if (rc != 0)
        return rc;
    struct inv_stock s;
    rc = inv_store_stock_get(st, id, &s);
    if (rc != 0)
        return rc;
    int64_t demo = created ? inv->settings.demo_stock : 0;
    struct inv_movement m = {
        .kind = "created",
        .on_hand_delta = demo,
        .reason = demo > 0 ? "demo stock (AGORA_INVENTORY_DEMO_STOCK)" : "product created",
    };
    return inv_stock_change(inv, st, &s, &m, tp);
}

/* product.deleted: nothing more can be reserved; held reservations stay
 * and may still be committed or released. */
static int
product_deleted(struct inv *inv, struct ag_store *st, const char *id, const char *tp)
{
    struct inv_stock s;
    int rc = inv_store_stock_get(st, id, &s);
    if (rc == AG_ENOENT)
        return 0;
    if (rc != 0 || !s.active)
        return rc;
    s.active = false;
    struct inv_movement m = { .kind = "deleted", .reason = "product deleted" };
    return inv_stock_change(inv, st, &s, &m, tp);
}

/* After the commit that holds the command: count its effect. */
static void
effect_apply(const void *arg, void *udata)
{
    struct inv *inv = udata;
    struct inv_effect fx;
    memcpy(&fx, arg, sizeof(fx));
    ag_counter_add(inv->m_commands, (const char *const[]){ fx.command, fx.outcome }, 1);
}

static int
handle(struct inv *inv, struct ag_store *st, const json_t *event)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    if (type == NULL)
        return 0;
    if (strncmp(type, "cmd.inventory.", 14) == 0)
        return inv_command_handle(inv, st, event);
    const char *tp = json_string_value(json_object_get(event, "traceparent"));
    json_t *data = json_object_get(event, "data");
    const char *id = json_string_value(json_object_get(data, "id"));
    if (id == NULL || !inv_id_is_valid(ag_str_from_cstr(id))) {
        AG_LOGW("inventory", "%s without a product id dropped", type);
        return 0;
    }
    if (strcmp(type, "product.created") == 0)
        return product_seen(inv, st, id, true, tp);
    if (strcmp(type, "product.updated") == 0)
        return product_seen(inv, st, id, false, tp);
    if (strcmp(type, "product.deleted") == 0)
        return product_deleted(inv, st, id, tp);
    return 0; /* a product event this version does not use */
}

int
inv_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata)
{
    struct inv *inv = udata;
    memset(&inv->fx, 0, sizeof(inv->fx));
    int rc = handle(inv, st, event);
    /* Counted once the delivery's transaction commits (a pulled batch
     * shares one commit). */
    if (rc == 0 && inv->fx.command != NULL && inv->fx.outcome != NULL)
        rc = ag_events_after_commit(ev, effect_apply, &inv->fx, sizeof(inv->fx), inv);
    return rc;
}

void
inv_events_committed(struct ag_events *ev, const char *subscription, const json_t *event,
                     void *udata)
{
    AG_UNUSED(ev);
    AG_UNUSED(subscription);
    struct inv *inv = udata;
    const char *crash = inv->settings.crash_after_commit;
    const char *type = json_string_value(json_object_get(event, "type"));
    if (crash != NULL && crash[0] != '\0' && type != NULL && strcmp(crash, type) == 0) {
        /* Test switch: die between the commit and the ack, as a power cut
         * would, so the bus redelivers what the inbox already holds. */
        AG_LOGW("inventory", "AGORA_INVENTORY_CRASH_AFTER_COMMIT: killed after committing %s",
                type);
        raise(SIGKILL);
    }
}
