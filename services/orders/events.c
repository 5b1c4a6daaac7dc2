/* SPDX-License-Identifier: MIT */
/* Orders events: product.created, product.updated and product.deleted,
 * written to the outbox inside the transaction that changes the product,
 * so an event exists if and only if its change commits; the chassis relays
 * them to the bus (DESIGN.md sections 2 and 3;
 * contracts/events/product.*.schema.json). The orders consumes nothing: a
 * service that does subscribes in its on_start (docs/new-service.md). */
#include "agora/base.h"
#include "orders.h"

#include "agora/events.h"
#include "agora/time.h"

/* Publish 'type' about product 'id' (the subject, so the bus keeps one
 * product's events in order). A failure is logged by ag_events_publish;
 * the caller returns it, which rolls the transaction back. */
static int
publish(struct ag_events *ev, const char *type, const char *id, const json_t *data,
        const char *traceparent)
{
    if (ev == NULL)
        return 0;
    return ag_events_publish(ev, type, id, data, traceparent, NULL);
}

int
orders_events_product_created(struct ag_events *ev, const struct orders_product *p,
                               const json_t *doc, const char *traceparent)
{
    return publish(ev, "product.created", p->id, doc, traceparent);
}

int
orders_events_product_updated(struct ag_events *ev, const struct orders_product *p,
                               const json_t *doc, const char *traceparent)
{
    return publish(ev, "product.updated", p->id, doc, traceparent);
}

int
orders_events_product_deleted(struct ag_events *ev, const struct orders_product *p,
                               const char *traceparent)
{
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    json_t *data = json_pack("{s:s, s:s, s:I, s:s}", "id", p->id, "sku", p->sku, "version",
                             (json_int_t)p->version, "deleted_at", now);
    int rc = publish(ev, "product.deleted", p->id, data, traceparent);
    json_decref(data);
    return rc;
}

void
orders_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}
