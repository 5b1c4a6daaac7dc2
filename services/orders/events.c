/* SPDX-License-Identifier: MIT */
/* Orders events. Out: order.created, .confirmed, .cancelled, .completed
 * through the outbox, in the transaction that appends the order event
 * (contracts/events/order.*.schema.json). In, subscription "orders":
 * product.* into the price replica (the highest version wins), and the
 * participants' replies (inventory.*, payment.*, shipment.*) into the
 * saga. Replies are read tolerantly: keyed on the type and data.order_id,
 * unknown fields ignored. */
#include "agora/base.h"
#include "orders.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"

int
orders_events_publish(struct ag_events *ev, const char *type, const char *order_id,
                      const json_t *data)
{
    if (ev == NULL)
        return 0;
    return ag_events_publish(ev, type, order_id, data, NULL, NULL);
}

void
orders_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}

static int
on_product(struct ag_store *store, const char *type, const json_t *data)
{
    const char *id = json_string_value(json_object_get(data, "id"));
    json_t *version = json_object_get(data, "version");
    if (id == NULL || !json_is_integer(version)) {
        AG_LOGW("events", "%s without id or version ignored", type);
        return 0;
    }
    if (strcmp(type, "product.deleted") == 0)
        return orders_store_price_delete(store, id, json_integer_value(version));
    const char *sku = json_string_value(json_object_get(data, "sku"));
    const char *name = json_string_value(json_object_get(data, "name"));
    json_t *price = json_object_get(data, "price");
    json_t *amount = json_object_get(price, "amount");
    const char *currency = json_string_value(json_object_get(price, "currency"));
    if (sku == NULL || !json_is_integer(amount) || json_integer_value(amount) < 0 ||
        currency == NULL) {
        AG_LOGW("events", "%s of '%s' without sku or price ignored", type, id);
        return 0;
    }
    json_t *active = json_object_get(data, "active");
    return orders_store_price_upsert(
        store, id, sku, name != NULL ? name : sku, json_integer_value(amount), currency,
        active == NULL || json_is_true(active), json_integer_value(version));
}

int
orders_events_handle(struct ag_events *ev, struct ag_store *store, const json_t *event, void *udata)
{
    struct orders *o = udata;
    (void)ev;
    (void)store;
    const char *type = json_string_value(json_object_get(event, "type"));
    const json_t *data = json_object_get(event, "data");
    if (type == NULL || !json_is_object(data)) {
        AG_LOGW("events", "event without type or data ignored");
        return 0;
    }
    if (strncmp(type, "product.", 8) == 0)
        return on_product(o->store, type, data);
    /* A savepoint, so that a reply the order's state refuses is undone
     * whole and still acknowledged (the inbox row stays). */
    int rc = ag_store_exec(o->store, "SAVEPOINT reply");
    if (rc != 0)
        return rc;
    rc = orders_saga_reply(o, event);
    if (rc == AG_ECONFLICT) {
        /* A stale or out-of-order reply that nothing would ever make
         * valid: logged and dropped. */
        AG_LOGW("events", "%s for order '%s' refused by the order's state", type,
                json_string_value(json_object_get(data, "order_id")));
        rc = ag_store_exec(o->store, "ROLLBACK TO reply");
    }
    if (rc == 0)
        rc = ag_store_exec(o->store, "RELEASE reply");
    if (rc == 0)
        orders_events_kick(o->events);
    return rc;
}
