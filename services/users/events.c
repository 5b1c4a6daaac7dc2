/* SPDX-License-Identifier: MIT */
/* Users events: user.registered, user.updated, user.disabled and
 * session.revoked written to the outbox inside the transaction that
 * changes the account or ends the sessions (DESIGN.md sections 2 and 3;
 * contracts/events/user.*.schema.json, session.revoked.schema.json). */
#include "agora/base.h"
#include "users.h"

#include <string.h>

#include "agora/events.h"
#include "agora/time.h"

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

int
users_events_revoked(struct ag_events *ev, const struct users_revocation *r,
                     const struct users_account *a)
{
    if (ev == NULL)
        return 0;
    char at[AG_RFC3339_LEN];
    ag_time_rfc3339(r->revoked_at_ms, at);
    bool session = r->session_id[0] != '\0';
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "user_id", r->user_id, "scope",
                             session ? "session" : "user", "reason", r->reason, "revoked_at", at,
                             "issued_before", (json_int_t)r->issued_before, "in_force_until",
                             (json_int_t)r->expires_at);
    if (session)
        json_object_set_new(data, "session_id", json_string(r->session_id));
    int rc = ag_events_publish(ev, "session.revoked", r->user_id, data, NULL, NULL);
    json_decref(data);
    if (rc == 0 && a != NULL && strcmp(r->reason, "disabled") == 0)
        rc = publish(ev, "user.disabled", a,
                     json_pack("{s:s, s:s, s:I, s:I}", "user_id", a->id, "disabled_at", at,
                               "issued_before", (json_int_t)r->issued_before, "in_force_until",
                               (json_int_t)r->expires_at));
    return rc;
}

void
users_events_kick(struct ag_events *ev)
{
    if (ev != NULL)
        ag_events_kick(ev);
}
