/* SPDX-License-Identifier: MIT */
/* Users events: user.registered and user.updated written to the outbox
 * inside the transaction that changes the account (DESIGN.md sections 2
 * and 3; contracts/events/user.*.schema.json). */
#include "agora/base.h"
#include "users.h"

#include "agora/events.h"

/* Publish 'type' about account 'a' with 'data' (reference stolen). A
 * failure is logged by ag_events_publish; it rolls the caller's
 * transaction back. */
static int
publish(struct ag_events *ev, const char *type, const struct users_account *a, json_t *data)
{
    int rc = ev != NULL ? ag_events_publish(ev, type, a->id, data, NULL, NULL) : 0;
    json_decref(data);
    return rc;
}

int
users_events_registered(struct ag_events *ev, const struct users_account *a)
{
    return publish(ev, "user.registered", a,
                   json_pack("{s:s, s:s, s:s, s:s}", "user_id", a->id, "email", a->email, "name",
                             a->name, "registered_at", a->created_at));
}

int
users_events_updated(struct ag_events *ev, const struct users_account *a, unsigned changed)
{
    static const struct {
        unsigned bit;
        const char *name;
    } FIELDS[] = {
        { USERS_CHANGED_EMAIL, "email" },       { USERS_CHANGED_NAME, "name" },
        { USERS_CHANGED_PASSWORD, "password" }, { USERS_CHANGED_ROLES, "roles" },
        { USERS_CHANGED_DISABLED, "disabled" },
    };
    json_t *list = json_array();
    for (size_t i = 0; i < AG_ARRAY_SIZE(FIELDS); i++) {
        if (changed & FIELDS[i].bit)
            json_array_append_new(list, json_string(FIELDS[i].name));
    }
    return publish(ev, "user.updated", a,
                   json_pack("{s:s, s:s, s:s, s:o, s:s}", "user_id", a->id, "email", a->email,
                             "name", a->name, "changed", list, "updated_at", a->updated_at));
}

void
users_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}
