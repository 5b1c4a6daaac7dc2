/* SPDX-License-Identifier: MIT */
/* Inventory's part of the checkout saga: the commands cmd.inventory.reserve,
 * .release, .commit and .restock (contracts/events/cmd.inventory.*.schema.json), the
 * expiry of reservations, and the one function every stock change goes
 * through (guards, history, stock.low and stock.depleted). Everything runs
 * inside the caller's transaction: the consumer's (with its inbox row), the
 * expiry timer's or an admin request's, so an effect, its movements and its
 * reply event commit together or not at all. */
#include "agora/base.h"
#include "inventory.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"

#define CMD_PREFIX "cmd.inventory."

/* ---- Stock changes ---- */

static int64_t
available_of(const struct inv_stock *s)
{
    struct inv_stock_state st = {
        .known = true, .active = s->active, .on_hand = s->on_hand, .reserved = s->reserved
    };
    return inv_available(&st);
}

int
inv_stock_change(struct inv *inv, struct ag_store *st, struct inv_stock *s, struct inv_movement *m,
                 const char *traceparent)
{
    struct inv_stock_state state = {
        .known = true, .active = s->active, .on_hand = s->on_hand, .reserved = s->reserved
    };
    int64_t before = available_of(s);
    int64_t reserved = s->reserved + m->reserved_delta;
    /* The guard: a reservation only takes what is available. */
    if (m->reserved_delta > 0 && !inv_can_reserve(&state, m->reserved_delta))
        return AG_ECONFLICT;
    if (reserved < 0)
        return AG_ECONFLICT;
    int64_t on_hand = s->on_hand;
    if (m->on_hand_delta != 0 || reserved > on_hand) {
        int rc = inv_stock_adjust(s->on_hand, reserved, m->on_hand_delta, &on_hand);
        if (rc != 0)
            return rc;
    }
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    s->on_hand = on_hand;
    s->reserved = reserved;
    int rc = inv_store_stock_update(st, s, now);
    if (rc != 0)
        return rc;
    s->version++;
    memcpy(s->updated_at, now, sizeof(now));
    ag_uuid7(m->id);
    rc = inv_store_movement_insert(st, s->product_id, m, on_hand, reserved, now);
    if (rc != 0 || !s->active)
        return rc;
    int64_t after = available_of(s);
    int64_t threshold = s->low_threshold >= 0 ? s->low_threshold : inv->settings.low_threshold;
    bool low;
    bool depleted;
    inv_stock_crossings(before, after, threshold, &low, &depleted);
    if (low) {
        json_t *d = json_pack("{s:s, s:I, s:I}", "product_id", s->product_id, "available",
                              (json_int_t)after, "threshold", (json_int_t)threshold);
        rc = inv_events_publish(inv->events, "stock.low", s->product_id, d, traceparent);
        json_decref(d);
    }
    if (rc == 0 && depleted) {
        json_t *d = json_pack("{s:s, s:I, s:s}", "product_id", s->product_id, "on_hand",
                              (json_int_t)on_hand, "depleted_at", now);
        rc = inv_events_publish(inv->events, "stock.depleted", s->product_id, d, traceparent);
        json_decref(d);
    }
    return rc;
}

/* ---- Replies ---- */

/* A reply document {"type": 'type', "data": 'data'} (steals 'data'). */
static json_t *
reply_new(const char *type, json_t *data)
{
    return json_pack("{s:s, s:o}", "type", type, "data", data);
}

static char *
reply_text(const json_t *reply, struct ag_pool *pool)
{
    struct ag_buf b = AG_BUF_INIT(0);
    ag_json_dump(reply, &b);
    char *s = ag_pool_strdup(pool, ag_buf_cstr(&b));
    ag_buf_release(&b);
    return s;
}

static json_t *
reply_parse(const char *text)
{
    return text == NULL ? NULL : ag_json_parse(text, strlen(text), NULL, 0);
}

static json_t *
rejected_new(const char *order_id, enum inv_reject why, json_t *lines)
{
    return reply_new("inventory.rejected",
                     json_pack("{s:s, s:s, s:o}", "order_id", order_id, "reason",
                               inv_reject_name(why), "lines", lines ? lines : json_array()));
}

static json_t *
released_new(const struct inv_reservation *r, const char *reason, bool returned)
{
    return reply_new("inventory.released",
                     json_pack("{s:s, s:s, s:s, s:b}", "reservation_id", r->id, "order_id",
                               r->order_id, "reason", reason, "returned", returned));
}

static json_t *
lines_json(const struct inv_line *lines, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I}", "product_id", lines[i].product_id,
                                           "quantity", (json_int_t)lines[i].quantity));
    return a;
}

/* ---- Reserve ---- */

struct cmd {
    struct inv *inv;
    struct ag_store *st;
    const char *order_id;
    const char *traceparent;
    struct ag_pool *pool;
    json_t *reply;       /* the answer (new reference) */
    const char *outcome; /* for inventory_commands_total */
};

static int
reserve(struct cmd *c, json_t *data)
{
    struct inv_reservation r;
    int rc = inv_store_reservation_by_order(c->st, c->order_id, c->pool, &r);
    if (rc == 0) {
        /* One reservation per order: its first answer, whatever changed. */
        c->reply = reply_parse(r.reserve_reply);
        c->outcome = "duplicate";
        return c->reply != NULL ? 0 : AG_EINTERNAL;
    }
    if (rc != AG_ENOENT)
        return rc;

    struct inv_line lines[INV_LINES_MAX];
    size_t n;
    struct ag_valid v;
    ag_valid_init(&v);
    bool ok = inv_reserve_lines(&v, data, lines, &n);
    ag_valid_release(&v);
    if (!ok) {
        c->reply = rejected_new(c->order_id, INV_REJECT_INVALID, NULL);
        c->outcome = "invalid";
        return 0;
    }

    struct inv_stock stock[INV_LINES_MAX];
    struct inv_stock_state states[INV_LINES_MAX];
    bool failed[INV_LINES_MAX];
    for (size_t i = 0; i < n; i++) {
        rc = inv_store_stock_get(c->st, lines[i].product_id, &stock[i]);
        if (rc != 0 && rc != AG_ENOENT)
            return rc;
        states[i] = (struct inv_stock_state){
            .known = rc == 0,
            .active = rc == 0 && stock[i].active,
            .on_hand = rc == 0 ? stock[i].on_hand : 0,
            .reserved = rc == 0 ? stock[i].reserved : 0,
        };
    }

    char now[AG_RFC3339_LEN];
    int64_t now_ms = ag_time_unix_ms();
    ag_time_rfc3339(now_ms, now);
    memset(&r, 0, sizeof(r));
    ag_uuid7(r.id);
    memcpy(r.order_id, c->order_id, AG_UUID_STRLEN + 1);
    memcpy(r.created_at, now, sizeof(now));

    enum inv_reject why = inv_reserve_decide(lines, states, n, failed);
    if (why != INV_REJECT_NONE) {
        json_t *bad = json_array();
        for (size_t i = 0; i < n; i++) {
            if (failed[i])
                json_array_append_new(bad, json_pack("{s:s, s:I, s:I}", "product_id",
                                                     lines[i].product_id, "requested",
                                                     (json_int_t)lines[i].quantity, "available",
                                                     (json_int_t)inv_available(&states[i])));
        }
        c->reply = rejected_new(c->order_id, why, bad);
        c->outcome = "rejected";
        /* Recorded, so a retry with a new step key gets the same answer. */
        snprintf(r.state, sizeof(r.state), "rejected");
        memcpy(r.expires_at, now, sizeof(now));
        r.expires_ms = now_ms;
        r.reserve_reply = reply_text(c->reply, c->pool);
        return inv_store_reservation_insert(c->st, &r);
    }

    int64_t expires_ms = now_ms + (int64_t)c->inv->settings.reservation_ttl_ms;
    snprintf(r.state, sizeof(r.state), "held");
    ag_time_rfc3339(expires_ms, r.expires_at);
    r.expires_ms = expires_ms;
    c->reply =
        reply_new("inventory.reserved",
                  json_pack("{s:s, s:s, s:o, s:s}", "reservation_id", r.id, "order_id", c->order_id,
                            "lines", lines_json(lines, n), "expires_at", r.expires_at));
    r.reserve_reply = reply_text(c->reply, c->pool);
    rc = inv_store_reservation_insert(c->st, &r);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct inv_movement m = {
            .kind = "reserve",
            .reserved_delta = lines[i].quantity,
            .reason = "",
            .order_id = c->order_id,
        };
        rc = inv_stock_change(c->inv, c->st, &stock[i], &m, c->traceparent);
        if (rc == 0)
            rc = inv_store_line_insert(c->st, r.id, &lines[i]);
    }
    if (rc == AG_ECONFLICT)
        AG_LOGE("inventory", "reservation of order '%s' broke the stock guard", c->order_id);
    c->outcome = "reserved";
    return rc;
}

/* ---- Release ---- */

/* Give a held reservation's units back and mark it released. */
static int
release_held(struct inv *inv, struct ag_store *st, struct inv_reservation *r, const char *reason,
             const char *traceparent, struct ag_pool *pool, json_t **out_reply)
{
    struct inv_line lines[INV_LINES_MAX];
    size_t n;
    int rc = inv_store_lines_get(st, r->id, lines, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct inv_stock s;
        rc = inv_store_stock_get(st, lines[i].product_id, &s);
        if (rc != 0)
            break;
        struct inv_movement m = {
            .kind = "release",
            .reserved_delta = -lines[i].quantity,
            .reason = reason,
            .order_id = r->order_id,
        };
        rc = inv_stock_change(inv, st, &s, &m, traceparent);
    }
    if (rc != 0)
        return rc;
    snprintf(r->state, sizeof(r->state), "released");
    ag_time_rfc3339(ag_time_unix_ms(), r->released_at);
    snprintf(r->release_reason, sizeof(r->release_reason), "%s", reason);
    *out_reply = released_new(r, reason, true);
    r->release_reply = reply_text(*out_reply, pool);
    return inv_store_reservation_update(st, r);
}

static int
release(struct cmd *c, json_t *data)
{
    struct ag_valid v;
    ag_valid_init(&v);
    const char *reason = inv_release_reason(&v, data);
    ag_valid_release(&v);
    if (reason == NULL) {
        AG_LOGW("inventory", "release of order '%s' without a valid reason; dropped", c->order_id);
        c->outcome = "invalid";
        return 0;
    }
    struct inv_reservation r;
    int rc = inv_store_reservation_by_order(c->st, c->order_id, c->pool, &r);
    if (rc == AG_ENOENT) {
        /* Nothing was reserved (the reserve command is late or was never
         * sent). Record a released, empty reservation: the reply has its
         * id, and a reserve arriving later is refused instead of holding
         * stock for an order that is already being compensated. */
        char now[AG_RFC3339_LEN];
        int64_t now_ms = ag_time_unix_ms();
        ag_time_rfc3339(now_ms, now);
        memset(&r, 0, sizeof(r));
        ag_uuid7(r.id);
        memcpy(r.order_id, c->order_id, AG_UUID_STRLEN + 1);
        snprintf(r.state, sizeof(r.state), "released");
        memcpy(r.created_at, now, sizeof(now));
        memcpy(r.expires_at, now, sizeof(now));
        memcpy(r.released_at, now, sizeof(now));
        r.expires_ms = now_ms;
        snprintf(r.release_reason, sizeof(r.release_reason), "%s", reason);
        json_t *late = rejected_new(c->order_id, INV_REJECT_INVALID, NULL);
        r.reserve_reply = reply_text(late, c->pool);
        json_decref(late);
        c->reply = released_new(&r, reason, false);
        r.release_reply = reply_text(c->reply, c->pool);
        c->outcome = "noop";
        return inv_store_reservation_insert(c->st, &r);
    }
    if (rc != 0)
        return rc;
    if (strcmp(r.state, "held") == 0) {
        c->outcome = "released";
        return release_held(c->inv, c->st, &r, reason, c->traceparent, c->pool, &c->reply);
    }
    if (r.release_reply != NULL) {
        /* Released before (e.g. expired): the same answer. */
        c->reply = reply_parse(r.release_reply);
        c->outcome = "duplicate";
        return c->reply != NULL ? 0 : AG_EINTERNAL;
    }
    /* Committed (the units have shipped and never come back) or refused
     * (nothing was held): say so, and keep the answer. */
    c->reply = released_new(&r, reason, false);
    r.release_reply = reply_text(c->reply, c->pool);
    c->outcome = "noop";
    return inv_store_reservation_update(c->st, &r);
}

/* ---- Commit ---- */

static int
commit(struct cmd *c)
{
    struct inv_reservation r;
    int rc = inv_store_reservation_by_order(c->st, c->order_id, c->pool, &r);
    if (rc == AG_ENOENT) {
        c->reply = rejected_new(c->order_id, INV_REJECT_INVALID, NULL);
        c->outcome = "invalid";
        return 0;
    }
    if (rc != 0)
        return rc;
    if (strcmp(r.state, "held") != 0) {
        /* Committed before: the same answer. Released (expired) or refused:
         * the answer that says so. */
        const char *text = strcmp(r.state, "committed") == 0  ? r.commit_reply
                           : strcmp(r.state, "released") == 0 ? r.release_reply
                                                              : r.reserve_reply;
        c->reply = reply_parse(text);
        c->outcome = strcmp(r.state, "committed") == 0 ? "duplicate" : "refused";
        return c->reply != NULL ? 0 : AG_EINTERNAL;
    }
    struct inv_line lines[INV_LINES_MAX];
    size_t n;
    rc = inv_store_lines_get(c->st, r.id, lines, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct inv_stock s;
        rc = inv_store_stock_get(c->st, lines[i].product_id, &s);
        if (rc != 0)
            break;
        /* Reserved units leave the warehouse: both counts go down. */
        struct inv_movement m = {
            .kind = "commit",
            .on_hand_delta = -lines[i].quantity,
            .reserved_delta = -lines[i].quantity,
            .reason = "",
            .order_id = c->order_id,
        };
        rc = inv_stock_change(c->inv, c->st, &s, &m, c->traceparent);
    }
    if (rc != 0)
        return rc;
    snprintf(r.state, sizeof(r.state), "committed");
    ag_time_rfc3339(ag_time_unix_ms(), r.committed_at);
    c->reply =
        reply_new("inventory.committed",
                  json_pack("{s:s, s:s, s:o, s:s}", "reservation_id", r.id, "order_id", r.order_id,
                            "lines", lines_json(lines, n), "committed_at", r.committed_at));
    r.commit_reply = reply_text(c->reply, c->pool);
    c->outcome = "committed";
    return inv_store_reservation_update(c->st, &r);
}

/* ---- Restock ----
 * A customer cancelled an order after its units were committed and before
 * they were dispatched: put them back on hand, once per reservation under
 * any step key (the reservation records it), with a movement of kind
 * "restock" and the command's reason. A reservation that was never
 * committed (held, released, refused) or an order without one has nothing
 * to put back: returned false. */

static json_t *
restocked_new(const char *rid, const char *order_id, const char *reason, json_t *lines,
              bool returned, const char *at)
{
    return reply_new("inventory.restocked",
                     json_pack("{s:s?, s:s, s:s, s:o, s:b, s:s}", "reservation_id", rid, "order_id",
                               order_id, "reason", reason, "lines", lines, "returned", returned,
                               "restocked_at", at));
}

static int
restock(struct cmd *c, json_t *data)
{
    struct ag_valid v;
    ag_valid_init(&v);
    const char *reason = inv_restock_reason(&v, data);
    ag_valid_release(&v);
    if (reason == NULL) {
        AG_LOGW("inventory", "restock of order '%s' without a valid reason; dropped", c->order_id);
        c->outcome = "invalid";
        return 0;
    }
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    struct inv_reservation r;
    int rc = inv_store_reservation_by_order(c->st, c->order_id, c->pool, &r);
    if (rc == AG_ENOENT) {
        c->reply = restocked_new(NULL, c->order_id, reason, json_array(), false, now);
        c->outcome = "noop";
        return 0;
    }
    if (rc != 0)
        return rc;
    if (r.restock_reply != NULL) {
        /* Put back before: the same answer, no second movement. */
        c->reply = reply_parse(r.restock_reply);
        c->outcome = "duplicate";
        return c->reply != NULL ? 0 : AG_EINTERNAL;
    }
    struct inv_line lines[INV_LINES_MAX];
    size_t n = 0;
    bool committed = strcmp(r.state, "committed") == 0;
    if (committed)
        rc = inv_store_lines_get(c->st, r.id, lines, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct inv_stock s;
        rc = inv_store_stock_get(c->st, lines[i].product_id, &s);
        if (rc != 0)
            break;
        struct inv_movement m = {
            .kind = "restock",
            .on_hand_delta = lines[i].quantity,
            .reason = reason,
            .order_id = c->order_id,
        };
        rc = inv_stock_change(c->inv, c->st, &s, &m, c->traceparent);
    }
    if (rc != 0)
        return rc;
    c->reply = restocked_new(r.id, c->order_id, reason, lines_json(lines, n), committed, now);
    c->outcome = committed ? "restocked" : "noop";
    memcpy(r.restocked_at, now, sizeof(now));
    r.restock_reply = reply_text(c->reply, c->pool);
    return inv_store_reservation_update(c->st, &r);
}

/* ---- Dispatch ---- */

static int
publish_reply(struct inv *inv, const json_t *reply, const char *order_id, const char *tp)
{
    return inv_events_publish(inv->events, json_string_value(json_object_get(reply, "type")),
                              order_id, json_object_get(reply, "data"), tp);
}

static int
handle(struct inv *inv, struct ag_store *st, const json_t *event, struct ag_pool *pool)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *tp = json_string_value(json_object_get(event, "traceparent"));
    json_t *data = json_object_get(event, "data");
    const char *command = type + strlen(CMD_PREFIX);
    if (strcmp(command, "reserve") == 0)
        inv->fx.command = "reserve";
    else if (strcmp(command, "release") == 0)
        inv->fx.command = "release";
    else if (strcmp(command, "commit") == 0)
        inv->fx.command = "commit";
    else if (strcmp(command, "restock") == 0)
        inv->fx.command = "restock";
    if (inv->fx.command == NULL) {
        AG_LOGW("inventory", "unknown command '%s' dropped", type);
        return 0;
    }
    struct ag_valid v;
    ag_valid_init(&v);
    const char *order_id;
    const char *step_key;
    bool ok = json_is_object(data) && inv_command_head(&v, data, &order_id, &step_key);
    ag_valid_release(&v);
    if (!ok) {
        /* No order to answer about, or no key to answer by. */
        AG_LOGW("inventory", "malformed %s command dropped", type);
        inv->fx.outcome = "invalid";
        return 0;
    }
    struct ag_step prior;
    int rc = ag_step_get(inv->idem, step_key, pool, &prior);
    if (rc == 0) {
        /* A retry of a step already taken: no second effect, same reply. */
        json_t *again = prior.data != NULL ? reply_parse(prior.data) : NULL;
        if (again == NULL || prior.reply_type == NULL) {
            json_decref(again);
            return AG_EINTERNAL;
        }
        rc = inv_events_publish(inv->events, prior.reply_type, order_id, again, tp);
        json_decref(again);
        inv->fx.outcome = "duplicate";
        return rc;
    }
    if (rc != AG_ENOENT)
        return rc;

    struct cmd c = { .inv = inv, .st = st, .order_id = order_id, .traceparent = tp, .pool = pool };
    if (strcmp(inv->fx.command, "reserve") == 0)
        rc = reserve(&c, data);
    else if (strcmp(inv->fx.command, "release") == 0)
        rc = release(&c, data);
    else if (strcmp(inv->fx.command, "restock") == 0)
        rc = restock(&c, data);
    else
        rc = commit(&c);
    if (rc == 0 && c.reply == NULL) {
        inv->fx.outcome = c.outcome;
        return 0; /* dropped */
    }
    if (rc == 0) {
        struct ag_step step = {
            .key = step_key,
            .command = type,
            .subject = order_id,
            .done = true,
            .reply_type = json_string_value(json_object_get(c.reply, "type")),
            .data = reply_text(json_object_get(c.reply, "data"), pool),
        };
        rc = ag_step_put(inv->idem, &step, ag_time_unix_ms());
    }
    if (rc == 0)
        rc = publish_reply(inv, c.reply, order_id, tp);
    json_decref(c.reply);
    if (rc == 0)
        inv->fx.outcome = c.outcome;
    return rc;
}

int
inv_command_handle(struct inv *inv, struct ag_store *st, const json_t *event)
{
    struct ag_pool *pool = ag_pool_new(8192);
    int rc = handle(inv, st, event, pool);
    ag_pool_free(pool);
    return rc;
}

/* ---- Expiry ---- */

int
inv_expire_due(struct inv *inv, struct ag_store *st, int64_t now_ms, int *out_n)
{
    char ids[INV_EXPIRE_BATCH][AG_UUID_STRLEN + 1];
    size_t n;
    *out_n = 0;
    int rc = inv_store_reservation_due(st, now_ms, INV_EXPIRE_BATCH, ids, &n);
    if (rc != 0)
        return rc;
    struct ag_pool *pool = ag_pool_new(8192);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct inv_reservation r;
        rc = inv_store_reservation_by_order(st, ids[i], pool, &r);
        if (rc != 0)
            break;
        json_t *reply = NULL;
        rc = release_held(inv, st, &r, "expired", NULL, pool, &reply);
        if (rc == 0)
            rc = publish_reply(inv, reply, r.order_id, NULL);
        json_decref(reply);
        if (rc == 0)
            (*out_n)++;
    }
    ag_pool_free(pool);
    return rc;
}

/* ---- Representation ---- */

static json_t *
text_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

int
inv_reservation_json(struct ag_store *st, const struct inv_reservation *r, json_t **out)
{
    struct inv_line lines[INV_LINES_MAX];
    size_t n;
    int rc = inv_store_lines_get(st, r->id, lines, &n);
    if (rc != 0)
        return rc;
    *out = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "id", r->id, "order_id",
                     r->order_id, "state", r->state, "lines", lines_json(lines, n), "created_at",
                     r->created_at, "expires_at", r->expires_at, "committed_at",
                     text_or_null(r->committed_at), "released_at", text_or_null(r->released_at),
                     "release_reason", text_or_null(r->release_reason), "restocked_at",
                     text_or_null(r->restocked_at));
    return 0;
}
