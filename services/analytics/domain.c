/* SPDX-License-Identifier: MIT */
/* Analytics domain: event classification and the projection rules (see
 * domain.h). Pure: no I/O, no clock. */
#include "agora/base.h"
#include "domain.h"

#include <string.h>

#include "agora/err.h"
#include "agora/money.h"
#include "agora/str.h"

static const struct {
    const char *type;
    const char *at_field;
} KINDS[] = { { NULL, "" },
#define AN_X(k, t, f) { t, f },
              AN_EVENT_KINDS(AN_X)
#undef AN_X
};

static const char *const STATUS_NAMES[] = {
#define AN_X(s, n) n,
    AN_STATUSES(AN_X)
#undef AN_X
};

const char *
an_status_name(enum an_status s)
{
    return (size_t)s < AG_ARRAY_SIZE(STATUS_NAMES) ? STATUS_NAMES[s] : "unknown";
}

enum an_kind
an_kind_of(const char *type)
{
    if (type == NULL)
        return AN_K_UNKNOWN;
    for (size_t i = 1; i < AG_ARRAY_SIZE(KINDS); i++) {
        if (strcmp(KINDS[i].type, type) == 0)
            return (enum an_kind)i;
    }
    return AN_K_UNKNOWN;
}

/* ---- Fields ---- */

static bool
is_id(const char *s)
{
    return s != NULL && ag_uuid_is_valid(ag_str_from_cstr(s));
}

static const char *
str_of(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Unix ms of RFC 3339 'key' of 'obj', or -1. */
static int64_t
time_of(const json_t *obj, const char *key)
{
    const char *s = str_of(obj, key);
    int64_t ms;
    if (s == NULL || ag_time_parse_rfc3339(ag_str_from_cstr(s), &ms) != 0 || ms < 0)
        return -1;
    return ms;
}

/* A money object {amount, currency} of the contracts. */
static bool
money_of(const json_t *m, int64_t *out_amount, char out_currency[4])
{
    json_t *a = json_object_get(m, "amount");
    const char *c = str_of(m, "currency");
    if (!json_is_integer(a) || c == NULL || !ag_currency_is_valid(c))
        return false;
    json_int_t v = json_integer_value(a);
    if (v < 0 || v > AN_AMOUNT_MAX)
        return false;
    *out_amount = (int64_t)v;
    memcpy(out_currency, c, 3);
    out_currency[3] = '\0';
    return true;
}

static void
copy_str(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    /* The whole field is written, so equal values are equal bytes. */
    memset(out, 0, cap);
    memcpy(out, s, n);
}

int
an_event_read(const json_t *ce, struct an_event *out)
{
    memset(out, 0, sizeof(*out));
    out->id = str_of(ce, "id");
    out->type = str_of(ce, "type");
    out->subject = str_of(ce, "subject");
    out->time = str_of(ce, "time");
    out->data = json_object_get(ce, "data");
    out->time_ms = time_of(ce, "time");
    if (out->id == NULL || out->id[0] == '\0' || strlen(out->id) > 128 || out->type == NULL ||
        out->subject == NULL || out->time_ms < 0 || !json_is_object(out->data))
        return AG_EINVAL;
    out->kind = an_kind_of(out->type);
    if (out->kind == AN_K_UNKNOWN)
        return AG_ENOENT;
    out->order_id = str_of(out->data, "order_id");
    if (!is_id(out->order_id))
        return AG_EINVAL;
    const char *field = KINDS[out->kind].at_field;
    out->at_ms = field[0] != '\0' ? time_of(out->data, field) : -1;
    if (out->at_ms < 0)
        out->at_ms = out->time_ms;
    return 0;
}

/* ---- The order projection ---- */

void
an_order_init(struct an_order *o, const char *order_id)
{
    memset(o, 0, sizeof(*o));
    copy_str(o->order_id, sizeof(o->order_id), order_id);
    o->total = -1;
    o->created_ms = -1;
    o->reserved_ms = -1;
    o->authorized_ms = -1;
    o->shipment_ms = -1;
    o->confirmed_ms = -1;
    o->completed_ms = -1;
    o->cancelled_ms = -1;
}

/* The earliest of two times (-1: unknown). */
static void
earliest(int64_t *slot, int64_t ms)
{
    if (ms >= 0 && (*slot < 0 || ms < *slot))
        *slot = ms;
}

/* What the order's own events all carry: its owner and total. The first
 * known value stays (they never change for one order). */
static void
order_facts(struct an_order *o, const json_t *data)
{
    const char *user = str_of(data, "user_id");
    if (o->user_id[0] == '\0' && is_id(user))
        copy_str(o->user_id, sizeof(o->user_id), user);
    int64_t amount;
    char currency[4];
    if (o->total < 0 && money_of(json_object_get(data, "total"), &amount, currency)) {
        o->total = amount;
        memcpy(o->currency, currency, sizeof(o->currency));
    }
}

static void
cancelled(struct an_order *o, const struct an_event *e)
{
    const char *reason = str_of(e->data, "reason");
    if (reason == NULL || reason[0] == '\0')
        reason = "unknown";
    /* The earliest cancellation tells the reason; equal times choose the
     * smaller reason, so arrival order never matters. */
    if (o->cancelled_ms < 0 || e->at_ms < o->cancelled_ms ||
        (e->at_ms == o->cancelled_ms && strcmp(reason, o->cancel_reason) < 0)) {
        o->cancelled_ms = e->at_ms;
        copy_str(o->cancel_reason, sizeof(o->cancel_reason), reason);
    }
}

bool
an_order_apply(struct an_order *o, const struct an_event *e)
{
    switch (e->kind) {
    case AN_K_ORDER_CREATED:
        order_facts(o, e->data);
        earliest(&o->created_ms, e->at_ms);
        return true;
    case AN_K_ORDER_CONFIRMED:
        order_facts(o, e->data);
        earliest(&o->confirmed_ms, e->at_ms);
        return true;
    case AN_K_ORDER_CANCELLED:
        order_facts(o, e->data);
        cancelled(o, e);
        return true;
    case AN_K_ORDER_COMPLETED:
        order_facts(o, e->data);
        earliest(&o->completed_ms, e->at_ms);
        return true;
    case AN_K_INVENTORY_RESERVED: earliest(&o->reserved_ms, e->at_ms); return true;
    case AN_K_PAYMENT_AUTHORIZED: earliest(&o->authorized_ms, e->at_ms); return true;
    case AN_K_SHIPMENT_CREATED: earliest(&o->shipment_ms, e->at_ms); return true;
    case AN_K_PAYMENT_REFUNDED: {
        int64_t amount;
        char currency[4];
        if (an_event_refund(e, &amount, currency) != 0)
            return false;
        if (o->refunded <= AN_AMOUNT_MAX - amount)
            o->refunded += amount;
        return true;
    }
    default: return false;
    }
}

enum an_status
an_order_status(const struct an_order *o)
{
    if (o->cancelled_ms >= 0)
        return strcmp(o->cancel_reason, "out_of_stock") == 0 ? AN_S_REJECTED : AN_S_CANCELLED;
    if (o->completed_ms >= 0)
        return AN_S_COMPLETED;
    if (o->confirmed_ms >= 0)
        return AN_S_CONFIRMED;
    if (o->created_ms >= 0)
        return AN_S_OPEN;
    return AN_S_UNKNOWN;
}

/* ---- Event contents ---- */

static bool
quantity_of(const json_t *line, const char *key, int64_t *out)
{
    json_t *q = json_object_get(line, key);
    if (!json_is_integer(q) || json_integer_value(q) < 1 || json_integer_value(q) > 1000000000)
        return false;
    *out = (int64_t)json_integer_value(q);
    return true;
}

int
an_event_order_lines(const struct an_event *e, struct an_line *out, size_t cap, size_t *out_n)
{
    *out_n = 0;
    if (e->kind != AN_K_ORDER_CREATED)
        return 0;
    const json_t *lines = json_object_get(e->data, "lines");
    if (!json_is_array(lines))
        return AG_EINVAL;
    if (json_array_size(lines) > cap)
        return AG_ETOOBIG;
    size_t i;
    const json_t *line;
    json_array_foreach(lines, i, line)
    {
        struct an_line *l = &out[i];
        const char *pid = str_of(line, "product_id");
        const char *sku = str_of(line, "sku");
        if (!is_id(pid) || !quantity_of(line, "quantity", &l->quantity) ||
            !money_of(json_object_get(line, "unit_price"), &l->unit_amount, l->currency))
            return AG_EINVAL;
        copy_str(l->product_id, sizeof(l->product_id), pid);
        copy_str(l->sku, sizeof(l->sku), sku != NULL ? sku : "");
    }
    *out_n = json_array_size(lines);
    return 0;
}

int
an_event_moves(const struct an_event *e, struct an_move *out, size_t cap, size_t *out_n,
               const char **out_kind)
{
    *out_n = 0;
    *out_kind = NULL;
    const char *kind;
    switch (e->kind) {
    case AN_K_INVENTORY_RESERVED: kind = AN_MOVE_RESERVED; break;
    case AN_K_INVENTORY_COMMITTED: kind = AN_MOVE_COMMITTED; break;
    case AN_K_INVENTORY_RESTOCKED:
        /* Stock that was never taken (a reservation that had expired)
         * does not come back. */
        if (!json_is_true(json_object_get(e->data, "returned")))
            return 0;
        kind = AN_MOVE_RESTOCKED;
        break;
    default: return 0;
    }
    const json_t *lines = json_object_get(e->data, "lines");
    if (!json_is_array(lines))
        return AG_EINVAL;
    size_t n = 0;
    size_t i;
    const json_t *line;
    json_array_foreach(lines, i, line)
    {
        const char *pid = str_of(line, "product_id");
        int64_t q;
        if (!is_id(pid) || !quantity_of(line, "quantity", &q))
            return AG_EINVAL;
        size_t j = 0;
        while (j < n && strcmp(out[j].product_id, pid) != 0)
            j++;
        if (j == n) {
            if (n == cap)
                return AG_ETOOBIG;
            copy_str(out[n].product_id, sizeof(out[n].product_id), pid);
            out[n].quantity = 0;
            n++;
        }
        out[j].quantity += q;
    }
    *out_n = n;
    *out_kind = kind;
    return 0;
}

int
an_event_release(const struct an_event *e, struct an_release *out)
{
    memset(out, 0, sizeof(*out));
    if (e->kind != AN_K_INVENTORY_RELEASED)
        return AG_EINVAL;
    const char *rid = str_of(e->data, "reservation_id");
    const char *reason = str_of(e->data, "reason");
    if (!is_id(rid) || reason == NULL)
        return AG_EINVAL;
    copy_str(out->reservation_id, sizeof(out->reservation_id), rid);
    copy_str(out->reason, sizeof(out->reason), reason);
    out->returned = json_is_true(json_object_get(e->data, "returned"));
    return 0;
}

const char *
an_event_reservation_id(const struct an_event *e)
{
    const char *rid = e->kind == AN_K_INVENTORY_RESERVED ? str_of(e->data, "reservation_id") : NULL;
    return is_id(rid) ? rid : "";
}

int
an_event_refund(const struct an_event *e, int64_t *out_amount, char out_currency[4])
{
    if (e->kind != AN_K_PAYMENT_REFUNDED ||
        !money_of(json_object_get(e->data, "amount"), out_amount, out_currency))
        return AG_EINVAL;
    return 0;
}

/* ---- Reports ---- */

void
an_day(int64_t ms, char out[AN_DAY_LEN])
{
    if (ms < 0) {
        out[0] = '\0';
        return;
    }
    char t[AG_RFC3339_LEN];
    ag_time_rfc3339(ms, t);
    memcpy(out, t, AN_DAY_LEN - 1);
    out[AN_DAY_LEN - 1] = '\0';
}

bool
an_day_is_valid(const char *s)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    int v[3] = { 0, 0, 0 };
    static const int FROM[3] = { 0, 5, 8 };
    static const int LEN[3] = { 4, 2, 2 };
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < LEN[f]; i++) {
            char c = s[FROM[f] + i];
            if (c < '0' || c > '9')
                return false;
            v[f] = v[f] * 10 + (c - '0');
        }
    }
    if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1)
        return false;
    /* A day past the month's end rolls into the next month. */
    int64_t days = ag_time_days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]);
    int64_t y;
    unsigned m;
    unsigned d;
    ag_time_civil_from_days(days, &y, &m, &d);
    return y == v[0] && (int)m == v[1] && (int)d == v[2];
}

int64_t
an_rank(int64_t n, int p)
{
    if (n <= 0)
        return 0;
    if (p < 1)
        p = 1;
    if (p > 100)
        p = 100;
    int64_t rank = ((int64_t)p * n + 99) / 100;
    return rank < 1 ? 1 : rank;
}

int64_t
an_percentile(const int64_t *sorted, size_t n, int p)
{
    int64_t rank = an_rank((int64_t)n, p);
    return rank == 0 ? 0 : sorted[rank - 1];
}

double
an_ratio(int64_t num, int64_t den)
{
    if (den <= 0)
        return -1;
    if (num < 0)
        num = 0;
    if (num > INT64_MAX / 20000)
        num = INT64_MAX / 20000;
    /* In whole basis points, rounded half up, without floating-point maths
     * until the last step. */
    int64_t bp = (num * 20000 + den) / (2 * den);
    return (double)bp / 10000.0;
}
