/* SPDX-License-Identifier: MIT */
/* Analytics HTTP handlers and the route table: the reports (GET, admin
 * only) read the projections; POST /v1/reports/rebuild replays the event
 * log into emptied projections in one transaction. */
#include "agora/base.h"
#include "analytics.h"

#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/time.h"

#define DAY_MIN "1970-01-01"
#define DAY_MAX "9999-12-31"

/* ---- Query parameters ---- */

/* 400 bad-query listing every field error of 'v' (the chassis's 422 is for
 * bodies). */
static void
send_bad_query(struct ag_http_req *req, const struct ag_valid *v)
{
    json_t *p =
        ag_problem_new(400, "bad-query", "Bad Request", "invalid query parameters; see errors");
    ag_problem_set_errors(p, v);
    json_object_set_new(p, "instance", json_stringn(req->path.ptr, req->path.len));
    json_object_set_new(p, "request_id", json_string(ag_req_id(req)));
    struct ag_buf buf = AG_BUF_INIT(0);
    int rc = ag_json_dump(p, &buf);
    json_decref(p);
    if (rc != 0) {
        ag_buf_release(&buf);
        ag_send_error(req, AG_EQUERY, "invalid query parameters");
        return;
    }
    size_t len;
    char *data = ag_buf_detach(&buf, &len);
    ag_http_send_take(req, 400, "application/problem+json", data, len);
}

struct range {
    const char *from; /* inclusive YYYY-MM-DD */
    const char *to;   /* inclusive YYYY-MM-DD */
};

/* Read 'from' and 'to' into 'r' (defaults: everything), adding errors to
 * 'v'. */
static void
read_range(const struct ag_query *q, struct ag_valid *v, struct range *r)
{
    r->from = ag_query_get(q, "from");
    r->to = ag_query_get(q, "to");
    bool ok = true;
    if (r->from != NULL && !an_day_is_valid(r->from)) {
        ag_valid_error(v, "from", "format", "must be a date YYYY-MM-DD (UTC) from 1970");
        ok = false;
    }
    if (r->to != NULL && !an_day_is_valid(r->to)) {
        ag_valid_error(v, "to", "format", "must be a date YYYY-MM-DD (UTC) from 1970");
        ok = false;
    }
    if (r->from == NULL)
        r->from = DAY_MIN;
    if (r->to == NULL)
        r->to = DAY_MAX;
    if (ok && strcmp(r->from, r->to) > 0)
        ag_valid_error(v, "to", "range", "must not be before 'from'");
}

/* The query with its range, or NULL after answering 400. */
static const struct ag_query *
range_query(struct ag_http_req *req, struct range *r)
{
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return NULL;
    struct ag_valid v;
    ag_valid_init(&v);
    read_range(q, &v, r);
    if (!ag_valid_ok(&v)) {
        send_bad_query(req, &v);
        ag_valid_release(&v);
        return NULL;
    }
    ag_valid_release(&v);
    return q;
}

static json_t *
report_new(const struct range *r)
{
    return json_pack("{s:s, s:s}", "from", r->from, "to", r->to);
}

/* ---- Reports ---- */

static void
revenue(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct range r;
    read_range(q, &v, &r);
    const char *by = ag_query_get(q, "by");
    if (by == NULL)
        by = "day";
    if (strcmp(by, "day") != 0 && strcmp(by, "product") != 0)
        ag_valid_error(&v, "by", "enum", "must be day or product");
    if (!ag_valid_ok(&v)) {
        send_bad_query(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    json_t *items = json_array();
    bool more;
    int rc = strcmp(by, "day") == 0
                 ? an_store_revenue_by_day(an->store, r.from, r.to, an->settings.report_rows, items,
                                           &more)
                 : an_store_revenue_by_product(an->store, r.from, r.to, an->settings.report_rows,
                                               items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "revenue report");
        return;
    }
    json_t *out = report_new(&r);
    json_object_set_new(out, "by", json_string(by));
    json_object_set_new(out, "items", items);
    json_object_set_new(out, "truncated", json_boolean(more));
    ag_send_json(req, 200, out);
}

static void
orders(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    struct range r;
    if (range_query(req, &r) == NULL)
        return;
    json_t *items = json_array();
    bool more;
    int rc =
        an_store_orders_by_day(an->store, r.from, r.to, an->settings.report_rows, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "orders report");
        return;
    }
    json_t *out = report_new(&r);
    json_object_set_new(out, "items", items);
    json_object_set_new(out, "truncated", json_boolean(more));
    ag_send_json(req, 200, out);
}

static json_t *
ratio_json(int64_t num, int64_t den)
{
    double v = an_ratio(num, den);
    return v < 0 ? json_null() : json_real(v);
}

static void
conversion(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    struct range r;
    if (range_query(req, &r) == NULL)
        return;
    int64_t created = 0;
    int64_t confirmed = 0;
    int64_t completed = 0;
    int rc = an_store_conversion(an->store, r.from, r.to, &created, &confirmed, &completed);
    if (rc != 0) {
        ag_send_store_error(req, rc, "conversion report");
        return;
    }
    json_t *out = report_new(&r);
    json_object_set_new(out, "created", json_integer((json_int_t)created));
    json_object_set_new(out, "confirmed", json_integer((json_int_t)confirmed));
    json_object_set_new(out, "completed", json_integer((json_int_t)completed));
    json_object_set_new(out, "confirmed_rate", ratio_json(confirmed, created));
    json_object_set_new(out, "completed_rate", ratio_json(completed, confirmed));
    json_object_set_new(out, "overall_rate", ratio_json(completed, created));
    ag_send_json(req, 200, out);
}

static const char *const STEP_NAMES[] = {
#define AN_X(n, a, b) #n,
    AN_STEPS(AN_X)
#undef AN_X
};

static int
saga_steps(struct an *an, const struct range *r, json_t *steps)
{
    for (int i = 0; i < AN_NSTEPS; i++) {
        int64_t n;
        int64_t p50;
        int64_t p95;
        int64_t max;
        int rc =
            an_store_step_stats(an->store, (enum an_step)i, r->from, r->to, &n, &p50, &p95, &max);
        if (rc != 0)
            return rc;
        json_array_append_new(steps,
                              json_pack("{s:s, s:I, s:I, s:I, s:I}", "step", STEP_NAMES[i], "count",
                                        (json_int_t)n, "p50_ms", (json_int_t)p50, "p95_ms",
                                        (json_int_t)p95, "max_ms", (json_int_t)max));
    }
    return 0;
}

static void
sagas(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    struct range r;
    if (range_query(req, &r) == NULL)
        return;
    json_t *outcomes = json_pack("{s:i, s:i, s:i, s:i, s:i}", "open", 0, "confirmed", 0,
                                 "completed", 0, "cancelled", 0, "rejected", 0);
    json_t *reasons = json_array();
    json_t *steps = json_array();
    bool more = false;
    int rc = an_store_outcomes(an->store, r.from, r.to, outcomes);
    if (rc == 0)
        rc = an_store_cancellations(an->store, r.from, r.to, an->settings.report_rows, reasons,
                                    &more);
    if (rc == 0)
        rc = saga_steps(an, &r, steps);
    if (rc != 0) {
        json_decref(outcomes);
        json_decref(reasons);
        json_decref(steps);
        ag_send_store_error(req, rc, "sagas report");
        return;
    }
    json_t *out = report_new(&r);
    json_object_set_new(out, "outcomes", outcomes);
    json_object_set_new(out, "reasons", reasons);
    json_object_set_new(out, "steps", steps);
    json_object_set_new(out, "truncated", json_boolean(more));
    ag_send_json(req, 200, out);
}

static void
cancellations(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    struct range r;
    if (range_query(req, &r) == NULL)
        return;
    json_t *items = json_array();
    bool more;
    int rc =
        an_store_cancellations(an->store, r.from, r.to, an->settings.report_rows, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "cancellations report");
        return;
    }
    json_int_t total = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        total += json_integer_value(json_object_get(it, "orders"));
    }
    json_t *out = report_new(&r);
    json_object_set_new(out, "total", json_integer(total));
    json_object_set_new(out, "items", items);
    json_object_set_new(out, "truncated", json_boolean(more));
    ag_send_json(req, 200, out);
}

static void
stock(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *product = ag_query_get(q, "product_id");
    if (product != NULL && !ag_uuid_is_valid(ag_str_from_cstr(product))) {
        struct ag_valid v;
        ag_valid_init(&v);
        ag_valid_error(&v, "product_id", "format", "must be a product id (UUID)");
        send_bad_query(req, &v);
        ag_valid_release(&v);
        return;
    }
    json_t *items = json_array();
    bool more;
    int rc = an_store_stock(an->store, product, an->settings.report_rows, items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "stock report");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:o, s:b}", "items", items, "truncated", more));
}

/* ---- Rebuild ---- */

struct rebuild_tx {
    int64_t events;
};

static int
rebuild_tx_fn(struct ag_store *store, void *arg)
{
    struct rebuild_tx *t = arg;
    return an_rebuild(store, &t->events);
}

static void
rebuild(struct ag_http_req *req, void *udata)
{
    struct an *an = udata;
    uint64_t start = ag_time_mono_ms();
    struct rebuild_tx t = { 0 };
    /* One transaction: readers and the consumer see the old projections or
     * the rebuilt ones, never a half-replayed state. */
    int rc = ag_store_tx(an->store, rebuild_tx_fn, &t);
    if (rc != 0) {
        ag_send_store_error(req, rc, "rebuild");
        return;
    }
    uint64_t ms = ag_time_mono_ms() - start;
    ag_counter_add(an->m_rebuilds, NULL, 1);
    AG_LOGI("rebuild", "projections rebuilt from %lld logged events in %llu ms",
            (long long)t.events, (unsigned long long)ms);
    ag_send_json(
        req, 200,
        json_pack("{s:I, s:I}", "events", (json_int_t)t.events, "duration_ms", (json_int_t)ms));
}

const struct ag_route an_routes[] = {
    { "GET", "/v1/reports/revenue", revenue, AG_ROLE_ADMIN },
    { "GET", "/v1/reports/orders", orders, AG_ROLE_ADMIN },
    { "GET", "/v1/reports/conversion", conversion, AG_ROLE_ADMIN },
    { "GET", "/v1/reports/sagas", sagas, AG_ROLE_ADMIN },
    { "GET", "/v1/reports/cancellations", cancellations, AG_ROLE_ADMIN },
    { "GET", "/v1/reports/stock", stock, AG_ROLE_ADMIN },
    { "POST", "/v1/reports/rebuild", rebuild, AG_ROLE_ADMIN },
};
const size_t an_nroutes = AG_ARRAY_SIZE(an_routes);
