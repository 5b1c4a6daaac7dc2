/* SPDX-License-Identifier: MIT */
/* Users events: user.registered and user.updated written to the outbox
 * inside the transaction that changes the account (DESIGN.md sections 2
 * and 3; contracts/events/user.*.schema.json). */
#include "agora/base.h"
#include "users.h"

#include "agora/err.h"
#include "agora/events.h"
#include "agora/log.h"

static struct ag_events *g_events;

void
users_events_init(struct ag_events *ev)
{
    g_events = ev;
}

void
users_events_kick(void)
{
    if (g_events != NULL)
        ag_events_kick(g_events);
}

static int
publish(const char *type, const struct users_account *a, json_t *data)
{
    int rc = 0;
    if (g_events != NULL) {
        rc = ag_events_publish(g_events, type, a->id, data, NULL, NULL);
        if (rc != 0)
            AG_LOGE("events", "cannot publish %s for '%s': %s", type, a->id, ag_strerror(rc));
    }
    json_decref(data);
    return rc;
}

int
users_events_registered(struct ag_store *st, const struct users_account *a)
{
    AG_UNUSED(st);
    return publish("user.registered", a,
                   json_pack("{s:s, s:s, s:s, s:s}", "user_id", a->id, "email", a->email, "name",
                             a->name, "registered_at", a->created_at));
}

int
users_events_updated(struct ag_store *st, const struct users_account *a, unsigned changed)
{
    AG_UNUSED(st);
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
    return publish("user.updated", a,
                   json_pack("{s:s, s:s, s:s, s:o, s:s}", "user_id", a->id, "email", a->email,
                             "name", a->name, "changed", list, "updated_at", a->updated_at));
}
