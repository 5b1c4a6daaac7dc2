/* SPDX-License-Identifier: MIT */
/* Analytics consumer: order.*, payment.*, inventory.* and shipment.* events
 * arrive through the events runtime (subscription "analytics"), each in a
 * transaction that also holds its inbox entry. Each event is appended to the
 * event log (analytics_events) and projected (an_project) in that same
 * transaction; an event the log already holds is skipped, so a redelivery
 * the inbox no longer remembers (its rows are swept after a day) still
 * counts once. A rebuild replays the log through the same an_project. */
#include "agora/base.h"
#include "analytics.h"

#include <stdio.h>
#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/time.h"

const char *const an_topics[] = { "order.*", "payment.*", "inventory.*", "shipment.*" };
const size_t an_ntopics = AG_ARRAY_SIZE(an_topics);

int
an_project(struct ag_store *st, const struct an_event *e)
{
    struct an_order o;
    int rc = an_store_order_get(st, e->order_id, &o);
    if (rc != 0)
        return rc;
    if (an_order_apply(&o, e)) {
        rc = an_store_order_put(st, &o);
        if (rc != 0)
            return rc;
    }

    struct an_line lines[AN_LINES_MAX];
    size_t n;
    rc = an_event_order_lines(e, lines, AG_ARRAY_SIZE(lines), &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = an_store_line_put(st, e->order_id, (int64_t)i, &lines[i]);
    if (rc == AG_EINVAL || rc == AG_ETOOBIG) {
        AG_LOGW("events", "%s event '%s' has lines analytics cannot read; lines skipped", e->type,
                e->id);
        rc = 0;
    }
    if (rc != 0)
        return rc;

    struct an_move moves[AN_LINES_MAX];
    const char *kind;
    rc = an_event_moves(e, moves, AG_ARRAY_SIZE(moves), &n, &kind);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = an_store_move_put(st, e->id, e->order_id, an_event_reservation_id(e), kind, &moves[i]);
    if (rc == AG_EINVAL || rc == AG_ETOOBIG) {
        AG_LOGW("events", "%s event '%s' has lines analytics cannot read; movements skipped",
                e->type, e->id);
        rc = 0;
    }
    if (rc != 0)
        return rc;

    if (e->kind == AN_K_INVENTORY_RELEASED) {
        struct an_release r;
        if (an_event_release(e, &r) == 0)
            rc = an_store_release_put(st, e->id, e->order_id, &r);
        else
            AG_LOGW("events", "%s event '%s' lacks a reservation_id or reason; skipped", e->type,
                    e->id);
    }
    return rc;
}

int
an_rebuild(struct ag_store *st, int64_t *out_events)
{
    *out_events = 0;
    int rc = an_store_projections_clear(st);
    if (rc != 0)
        return rc;
    int64_t after_ms = -1;
    char after_id[160] = "";
    for (;;) {
        json_t *page = json_array();
        rc = an_store_event_page(st, after_ms, after_id, AN_REPLAY_PAGE, page);
        size_t i;
        json_t *ce;
        json_array_foreach(page, i, ce)
        {
            if (rc != 0)
                break;
            after_ms = json_integer_value(json_object_get(ce, "time_ms"));
            snprintf(after_id, sizeof(after_id), "%s",
                     json_string_value(json_object_get(ce, "id")));
            struct an_event e;
            if (an_event_read(ce, &e) == 0)
                rc = an_project(st, &e);
            (*out_events)++;
        }
        size_t got = json_array_size(page);
        json_decref(page);
        if (rc != 0 || got < AN_REPLAY_PAGE)
            return rc;
    }
}

/* After the commit that holds the delivery: count its outcome. */
static void
count_outcome(const void *arg, void *udata)
{
    struct an *an = udata;
    AG_CHECK_MAGIC(an, AN_MAGIC);
    const char *outcome;
    memcpy(&outcome, arg, sizeof(outcome));
    ag_counter_add(an->m_events, (const char *const[]){ outcome }, 1);
}

static int
handle(struct an *an, struct ag_store *st, const json_t *event)
{
    struct an_event e;
    int rc = an_event_read(event, &e);
    bool projected = rc == 0;
    if (rc != 0 && rc != AG_ENOENT) {
        /* Poison: acknowledge it rather than see it again forever. */
        AG_LOGW("events", "event '%s' of type '%s' is not a CloudEvent analytics can read; skipped",
                e.id != NULL ? e.id : "?", e.type != NULL ? e.type : "?");
        an->outcome = "invalid";
        return 0;
    }
    struct ag_buf data = AG_BUF_INIT(0);
    rc = ag_json_dump(e.data, &data);
    if (rc == 0)
        rc = an_store_event_append(st, &e, ag_buf_cstr(&data), ag_time_unix_ms());
    ag_buf_release(&data);
    if (rc == AG_EEXIST) {
        an->outcome = "duplicate";
        return 0;
    }
    /* A type no report uses yet is kept in the log all the same, so a
     * later projection can be rebuilt over it. */
    if (rc == 0 && projected)
        rc = an_project(st, &e);
    if (rc == 0)
        an->outcome = projected ? "applied" : "logged";
    return rc; /* the runtime logs a failure and redelivers the event */
}

int
an_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata)
{
    struct an *an = udata;
    AG_CHECK_MAGIC(an, AN_MAGIC);
    an->outcome = NULL;
    int rc = handle(an, st, event);
    if (rc == 0 && an->outcome != NULL)
        rc = ag_events_after_commit(ev, count_outcome, &an->outcome, sizeof(an->outcome), an);
    return rc;
}
