/* SPDX-License-Identifier: MIT */
/* Shipping events: shipment.created, shipment.shipped, shipment.delivered,
 * shipment.cancelled and shipment.cancel_rejected, written to the outbox
 * inside the transaction of the change (or of the saga command) they
 * report, so an event exists if and only if its change commits; the
 * chassis relays them to the bus (DESIGN.md sections 2 and 3;
 * contracts/events/shipment.*.schema.json). Their data is built by the
 * domain (ship_data_*); the commands consumed are in commands.c. */
#include "agora/base.h"
#include "shipping.h"

#include "agora/err.h"
#include "agora/events.h"

int
ship_events_publish(struct ag_events *ev, const char *type, const char *subject, const json_t *data,
                    const char *traceparent)
{
    if (ev == NULL)
        return 0;
    if (data == NULL)
        return AG_ENOMEM;
    return ag_events_publish(ev, type, subject, data, traceparent, NULL);
}

void
ship_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}
