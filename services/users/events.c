/* SPDX-License-Identifier: MIT */
/* Users events: the seam where user.registered and user.updated will be
 * written to the outbox, inside the transaction that changes the account,
 * once the bus exists (DESIGN.md sections 2 and 3). Until then they only
 * mark the place; nothing is published. */
#include "agora/base.h"
#include "users.h"

int
users_events_registered(struct ag_store *st, const struct users_account *a)
{
    AG_UNUSED(st);
    AG_UNUSED(a);
    return 0;
}

int
users_events_updated(struct ag_store *st, const struct users_account *a)
{
    AG_UNUSED(st);
    AG_UNUSED(a);
    return 0;
}
