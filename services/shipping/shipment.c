/* SPDX-License-Identifier: MIT */
/* Changes of one shipment after its creation, shared by the HTTP handlers
 * (ship, deliver, cancel) and the saga's cancel command: the transition of
 * the domain's state machine, the row and its history, and the event of
 * the new status, all inside the caller's transaction. */
#include "agora/base.h"
#include "shipping.h"

#include <string.h>

#include "agora/err.h"
#include "agora/time.h"

int
ship_shipment_apply(struct ag_store *st, struct ag_events *ev, struct ship_shipment *s,
                    enum ship_action action, const char *carrier, const char *reason,
                    const char *traceparent, const char **out_type, json_t **out_data)
{
    enum ship_status to;
    int rc = ship_transition(s->status, action, &to);
    if (rc != 0)
        return rc;
    char at[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), at);
    const char *set_carrier = to == SHIP_SHIPPED ? carrier : NULL;
    const char *set_reason = to == SHIP_CANCELLED ? reason : NULL;
    rc = ship_store_set_status(st, s->id, s->status, to, set_carrier, set_reason, at);
    if (rc != 0)
        return rc;
    s->status = to;
    memcpy(s->updated_at, at, sizeof(s->updated_at));
    json_t *data = NULL;
    const char *type = NULL;
    switch (to) {
    case SHIP_SHIPPED:
        s->carrier = carrier;
        type = "shipment.shipped";
        data = ship_data_shipped(s, at);
        break;
    case SHIP_DELIVERED:
        type = "shipment.delivered";
        data = ship_data_delivered(s, at);
        break;
    case SHIP_CANCELLED:
        s->cancel_reason = reason;
        type = "shipment.cancelled";
        data = ship_data_cancelled(s->id, s->order_id, reason, at);
        break;
    default: AG_BUG("no transition leads back to created");
    }
    rc = ship_events_publish(ev, type, s->id, data, traceparent);
    if (rc == 0 && out_type != NULL)
        *out_type = type;
    if (rc == 0 && out_data != NULL)
        *out_data = data;
    else
        json_decref(data);
    return rc;
}
