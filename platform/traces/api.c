/* SPDX-License-Identifier: MIT */
/* Traces: the OTLP/HTTP receiver (POST /v1/traces, JSON encoding) and the
 * query routes. Spans are stored as received; a summary row per trace is
 * kept in step for the list query; past AGORA_TRACES_MAX_TRACES the oldest
 * traces go, those with an error or slower than AGORA_TRACES_SLOW last
 * (the tail rule: a head-sampled trace that failed or was slow is the one
 * an operator looks for). */
#include "agora/base.h"
#include "traces.h"

#include "otlp_json.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agora/err.h"
#include "agora/http_server.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/metrics.h"
#include "agora/time.h"

#define MAX_TEXT 256 /* bytes kept of a name, service or status message */

/* ---- Ingest ----------------------------------------------------------------
 * One transaction per request. The body is read by otlp_json.c (no JSON
 * tree); a span is one row; the summary row of each trace is read once and
 * written once per request, from what the request brought for it (the
 * batch map below), not once per span. */

/* What one request brings to one trace. */
#define OTLP_KIND_SERVER 2 /* SPAN_KIND_SERVER */

struct batch_trace {
    char trace_id[33]; /* "" for a free slot */
    bool known;        /* a summary row existed */
    bool error;
    int64_t have;  /* spans stored before this request (the bound's base) */
    int64_t added; /* spans of this request stored */
    int64_t start;
    int64_t end;
    char root_service[MAX_TEXT + 1]; /* of its root in this request: a span without a */
    char root_name[MAX_TEXT + 1];    /* parent, else the earliest */
    int root_rank; /* 0: without a parent, 1: a server span, 2: any (see add_span) */
    int64_t root_start;
};

struct ingest {
    struct traces *t;
    const char *body;
    size_t len;
    char err[160];
    struct batch_trace *traces; /* open addressing by trace id */
    size_t cap;                 /* slots, a power of two */
    size_t used;
    int64_t accepted;
    int64_t rejected;
    int64_t duplicates;
    int64_t evicted;
    int64_t new_traces;
};

static size_t
trace_slot(const struct batch_trace *traces, size_t cap, const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    size_t i = (size_t)h & (cap - 1);
    while (traces[i].trace_id[0] != '\0' && memcmp(traces[i].trace_id, id, 33) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

/* The request's entry for 'trace_id', its summary row read on first sight;
 * NULL with '*rc' set on a store error. */
static struct batch_trace *
batch_trace(struct ingest *in, const char *trace_id, int *rc)
{
    size_t i = trace_slot(in->traces, in->cap, trace_id);
    if (in->traces[i].trace_id[0] != '\0')
        return &in->traces[i];
    if ((in->used + 1) * 2 > in->cap) {
        size_t cap = in->cap * 2;
        struct batch_trace *grown = ag_calloc(cap, sizeof(*grown));
        for (size_t j = 0; j < in->cap; j++) {
            if (in->traces[j].trace_id[0] != '\0')
                grown[trace_slot(grown, cap, in->traces[j].trace_id)] = in->traces[j];
        }
        ag_free(in->traces);
        in->traces = grown;
        in->cap = cap;
        i = trace_slot(in->traces, in->cap, trace_id);
    }
    struct ag_stmt *st;
    *rc = ag_store_stmt(in->t->store, "SELECT nspans FROM traces WHERE trace_id = $1", &st);
    if (*rc != 0)
        return NULL;
    ag_stmt_bind_cstr(st, 1, trace_id);
    int64_t have = -1;
    *rc = ag_stmt_step_i64(st, -1, &have);
    if (*rc != 0)
        return NULL;
    struct batch_trace *bt = &in->traces[i];
    memcpy(bt->trace_id, trace_id, 33);
    bt->known = have >= 0;
    bt->have = have >= 0 ? have : 0;
    in->used++;
    return bt;
}

static int
put_span(void *udata, const struct otlp_span *sp)
{
    struct ingest *in = udata;
    struct traces *t = in->t;
    if (!sp->valid) {
        in->rejected++;
        return 0;
    }
    int rc = 0;
    struct batch_trace *bt = batch_trace(in, sp->trace_id, &rc);
    if (bt == NULL)
        return rc;
    /* Spans past the per-trace bound are dropped. */
    if (bt->have + bt->added >= t->settings.max_spans) {
        in->rejected++;
        return 0;
    }
    struct ag_stmt *st;
    rc =
        ag_store_stmt(t->store,
                      "INSERT INTO spans (trace_id, span_id, parent_id, service, name, kind, "
                      "start_ns, end_ns, status, status_msg, attrs, events, links) VALUES ($1, $2, "
                      "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
                      &st);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(st, 1, sp->trace_id);
    ag_stmt_bind_cstr(st, 2, sp->span_id);
    ag_stmt_bind_cstr(st, 3, sp->parent_id);
    ag_stmt_bind_cstr(st, 4, sp->service);
    ag_stmt_bind_cstr(st, 5, sp->name);
    ag_stmt_bind_i64(st, 6, sp->kind);
    ag_stmt_bind_i64(st, 7, sp->start_ns);
    ag_stmt_bind_i64(st, 8, sp->end_ns);
    ag_stmt_bind_i64(st, 9, sp->status_code);
    ag_stmt_bind_cstr(st, 10, sp->status_message);
    ag_stmt_bind_text(st, 11, sp->attrs, sp->attrs_len);
    ag_stmt_bind_text(st, 12, sp->events, sp->events_len);
    ag_stmt_bind_text(st, 13, sp->links, sp->links_len);
    rc = ag_stmt_exec(st);
    if (rc != 0)
        return rc;
    if (ag_store_changes(t->store) == 0) {
        in->duplicates++;
        return 0;
    }
    /* Root: a span without a parent, else a server span (a service's entry:
     * the first to take a request whose caller's span is not here, as with
     * a client that sent its own traceparent), else any; the earliest of a
     * rank. Starts alone mislead: a saga step's is stored to the ms. */
    int rank = sp->parent_id[0] == '\0' ? 0 : sp->kind == OTLP_KIND_SERVER ? 1 : 2;
    if (bt->added == 0 || rank < bt->root_rank ||
        (rank == bt->root_rank && sp->start_ns < bt->root_start)) {
        bt->root_rank = rank;
        bt->root_start = sp->start_ns;
        snprintf(bt->root_service, sizeof(bt->root_service), "%s", sp->service);
        snprintf(bt->root_name, sizeof(bt->root_name), "%s", sp->name);
    }
    if (bt->added == 0 || sp->start_ns < bt->start)
        bt->start = sp->start_ns;
    if (bt->added == 0 || sp->end_ns > bt->end)
        bt->end = sp->end_ns;
    bt->error |= sp->status_code == 2;
    bt->added++;
    in->accepted++;
    return 0;
}

/* The stored root gives way to this request's: a lower rank (a span
 * without a parent, then a server span) wins, the earlier root among equals
 * (every SET reads the row as it was). */
#define ROOT_WINS                                                                                  \
    "(excluded.root_rank < traces.root_rank OR (excluded.root_rank = traces.root_rank AND "        \
    "excluded.root_start_ns < traces.root_start_ns))"

/* The summary row of every trace the request added spans to. */
static int
put_summaries(struct ingest *in)
{
    struct traces *t = in->t;
    int64_t now = ag_time_unix_ms();
    for (size_t i = 0; i < in->cap; i++) {
        const struct batch_trace *bt = &in->traces[i];
        if (bt->trace_id[0] == '\0' || bt->added == 0)
            continue;
        struct ag_stmt *st;
        int rc = ag_store_stmt(
            t->store,
            "INSERT INTO traces (trace_id, start_ns, end_ns, nspans, error, root_service, "
            "root_name, received_ms, root_rank, root_start_ns) VALUES ($1, $2, $3, $4, $5, $6, "
            "$7, $8, $9, $10) "
            "ON CONFLICT (trace_id) DO UPDATE SET root_service = CASE WHEN " ROOT_WINS
            " THEN excluded.root_service ELSE traces.root_service END, root_name = CASE "
            "WHEN " ROOT_WINS
            " THEN excluded.root_name ELSE traces.root_name END, root_start_ns = CASE "
            "WHEN " ROOT_WINS " THEN excluded.root_start_ns ELSE traces.root_start_ns END, "
            "root_rank = min(traces.root_rank, excluded.root_rank), start_ns = "
            "min(traces.start_ns, "
            "excluded.start_ns), end_ns = "
            "max(traces.end_ns, excluded.end_ns), nspans = traces.nspans + excluded.nspans, "
            "error = max(traces.error, excluded.error), received_ms = excluded.received_ms",
            &st);
        if (rc != 0)
            return rc;
        ag_stmt_bind_cstr(st, 1, bt->trace_id);
        ag_stmt_bind_i64(st, 2, bt->start);
        ag_stmt_bind_i64(st, 3, bt->end);
        ag_stmt_bind_i64(st, 4, bt->added);
        ag_stmt_bind_i64(st, 5, bt->error ? 1 : 0);
        ag_stmt_bind_cstr(st, 6, bt->root_service);
        ag_stmt_bind_cstr(st, 7, bt->root_name);
        ag_stmt_bind_i64(st, 8, now);
        ag_stmt_bind_i64(st, 9, bt->root_rank);
        ag_stmt_bind_i64(st, 10, bt->root_start);
        rc = ag_stmt_exec(st);
        if (rc != 0)
            return rc;
        if (!bt->known)
            in->new_traces++;
    }
    return 0;
}

/* Past the bound: delete the oldest traces, kept ones (error or slow) last.
 * The number of traces is kept in memory (counted once at the first
 * request); a bound of 100 or more deletes 1% more than the excess, so that
 * the ordering over every trace runs once per many requests, not per
 * request. */
static int
evict(struct ingest *in)
{
    struct traces *t = in->t;
    struct ag_stmt *st;
    int64_t n = t->ntraces + in->new_traces;
    if (n <= t->settings.max_traces)
        return 0;
    int64_t excess = n - t->settings.max_traces + t->settings.max_traces / 100;
    static const char *const victims =
        "SELECT trace_id FROM traces ORDER BY (error = 1 OR end_ns - start_ns >= $1) ASC, "
        "received_ms ASC, start_ns ASC LIMIT $2";
    char *del = ag_asprintf("DELETE FROM spans WHERE trace_id IN (%s)", victims);
    int rc = ag_store_stmt(t->store, del, &st);
    ag_free(del);
    if (rc == 0) {
        ag_stmt_bind_i64(st, 1, (int64_t)t->settings.slow_ms * 1000000);
        ag_stmt_bind_i64(st, 2, excess);
        rc = ag_stmt_exec(st);
    }
    if (rc != 0)
        return rc;
    del = ag_asprintf("DELETE FROM traces WHERE trace_id IN (%s)", victims);
    rc = ag_store_stmt(t->store, del, &st);
    ag_free(del);
    if (rc == 0) {
        ag_stmt_bind_i64(st, 1, (int64_t)t->settings.slow_ms * 1000000);
        ag_stmt_bind_i64(st, 2, excess);
        rc = ag_stmt_exec(st);
    }
    if (rc == 0)
        in->evicted += ag_store_changes(t->store);
    return rc;
}

static int
ingest_tx(struct ag_store *store, void *arg)
{
    struct ingest *in = arg;
    in->accepted = in->rejected = in->duplicates = in->evicted = in->new_traces = 0;
    in->used = 0;
    memset(in->traces, 0, in->cap * sizeof(*in->traces));
    if (in->t->ntraces < 0) {
        struct ag_stmt *st;
        int rc = ag_store_stmt(store, "SELECT count(*) FROM traces", &st);
        if (rc == 0)
            rc = ag_stmt_step_i64(st, 0, &in->t->ntraces);
        if (rc != 0)
            return rc;
    }
    int rc = otlp_json_read(in->body, in->len, put_span, in, in->err, sizeof(in->err));
    if (rc == 0)
        rc = put_summaries(in);
    return rc != 0 ? rc : evict(in);
}

/* POST /v1/traces: an OTLP ExportTraceServiceRequest, JSON encoding. */
static void
post_traces(struct ag_http_req *req, void *udata)
{
    struct traces *t = udata;
    struct ag_str ct = ag_http_req_header(req, "Content-Type");
    if (ag_str_has_prefix(ct, "application/x-protobuf")) {
        ag_send_problem(req, 415, "unsupported-media-type", "Unsupported Media Type",
                        "this collector takes the OTLP JSON encoding (application/json); "
                        "configure the exporter with the http/json protocol");
        return;
    }
    if (!ag_req_is_json(req)) {
        ag_send_error(req, AG_EMEDIATYPE, "the body must be application/json");
        return;
    }
    struct ag_str body = req->body;
    struct ingest in = {
        .t = t, .body = body.ptr != NULL ? body.ptr : "", .len = body.len, .cap = 64
    };
    in.traces = ag_calloc(in.cap, sizeof(*in.traces));
    int rc = ag_store_tx(t->store, ingest_tx, &in);
    ag_free(in.traces);
    if (rc == 0)
        t->ntraces += in.new_traces - in.evicted;
    if (rc == AG_EPARSE) {
        ag_send_problem(req, 400, "bad-request", "Bad Request", "%s", in.err);
        return;
    }
    if (rc != 0) {
        ag_send_store_error(req, rc, "span batch");
        return;
    }
    static const char *const ok[] = { "accepted" };
    static const char *const bad[] = { "rejected" };
    static const char *const dup[] = { "duplicate" };
    ag_counter_add(t->m_spans, ok, (double)in.accepted);
    ag_counter_add(t->m_spans, bad, (double)in.rejected);
    ag_counter_add(t->m_spans, dup, (double)in.duplicates);
    ag_counter_add(t->m_evicted, NULL, (double)in.evicted);
    json_t *out = json_object();
    if (in.rejected > 0)
        json_object_set_new(out, "partialSuccess",
                            json_pack("{s:I, s:s}", "rejectedSpans", (json_int_t)in.rejected,
                                      "errorMessage",
                                      "spans with bad ids or times, or past the per-trace bound"));
    ag_send_json(req, 200, out);
}

/* ---- Queries --------------------------------------------------------------- */

static json_t *
trace_summary(struct ag_stmt *st)
{
    int64_t start = ag_stmt_col_i64(st, 1);
    int64_t end = ag_stmt_col_i64(st, 2);
    return json_pack("{s:s, s:I, s:f, s:I, s:b, s:{s:s, s:s}}", "trace_id", ag_stmt_col_text(st, 0),
                     "start_unix_nano", (json_int_t)start, "duration_ms",
                     (double)(end - start) / 1e6, "spans", (json_int_t)ag_stmt_col_i64(st, 3),
                     "error", ag_stmt_col_i64(st, 4) != 0, "root", "service",
                     ag_stmt_col_text(st, 5), "name", ag_stmt_col_text(st, 6));
}

/* GET /v1/traces?service=&min_duration=&error=true&limit= */
static void
list_traces(struct ag_http_req *req, void *udata)
{
    struct traces *t = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    int64_t limit = 20;
    int64_t min_ms = 0;
    if (ag_req_query_int(req, "limit", 1, 1000, &limit) != 0 ||
        ag_req_query_int(req, "min_duration", 0, 86400000, &min_ms) != 0)
        return;
    const char *service = ag_query_get(q, "service");
    const char *error = ag_query_get(q, "error");
    if (error != NULL && strcmp(error, "true") != 0 && strcmp(error, "false") != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'error' must be true or false");
        return;
    }
    if (service != NULL && (service[0] == '\0' || strlen(service) > MAX_TEXT)) {
        ag_send_error(req, AG_EQUERY, "query parameter 'service' must be a service name");
        return;
    }
    struct ag_stmt *st;
    int rc = ag_store_stmt(
        t->store,
        "SELECT trace_id, start_ns, end_ns, nspans, error, root_service, root_name FROM traces "
        "WHERE end_ns - start_ns >= $1 AND ($2 = 0 OR error = 1) AND ($3 = '' OR EXISTS (SELECT "
        "1 FROM spans s WHERE s.trace_id = traces.trace_id AND s.service = $3)) ORDER BY start_ns "
        "DESC LIMIT $4",
        &st);
    if (rc != 0) {
        ag_send_store_error(req, rc, "trace list");
        return;
    }
    ag_stmt_bind_i64(st, 1, min_ms * 1000000);
    ag_stmt_bind_i64(st, 2, error != NULL && strcmp(error, "true") == 0);
    ag_stmt_bind_cstr(st, 3, service != NULL ? service : "");
    ag_stmt_bind_i64(st, 4, limit);
    json_t *items = json_array();
    while ((rc = ag_stmt_step(st)) == AG_STMT_ROW)
        json_array_append_new(items, trace_summary(st));
    ag_stmt_reset(st);
    if (rc < 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "trace list");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:o}", "items", items));
}

/* GET /v1/traces/{id}: every span of the trace, by start time. */
static void
get_trace(struct ag_http_req *req, void *udata)
{
    struct traces *t = udata;
    const char *raw = ag_req_param(req, "id");
    char id[33];
    bool ok = raw != NULL && strlen(raw) == 32;
    bool nonzero = false;
    for (size_t i = 0; ok && i < 32; i++) {
        char c = (char)tolower((unsigned char)raw[i]);
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        nonzero |= c != '0';
        id[i] = c;
    }
    id[32] = '\0';
    if (!ok || !nonzero) {
        ag_send_error(req, AG_ENOENT, "no such trace");
        return;
    }
    struct ag_stmt *st;
    int rc =
        ag_store_stmt(t->store,
                      "SELECT span_id, parent_id, service, name, kind, start_ns, end_ns, "
                      "status, status_msg, attrs, events, links FROM spans WHERE trace_id = $1 "
                      "ORDER BY start_ns, span_id",
                      &st);
    if (rc != 0) {
        ag_send_store_error(req, rc, "trace");
        return;
    }
    ag_stmt_bind_cstr(st, 1, id);
    json_t *spans = json_array();
    while ((rc = ag_stmt_step(st)) == AG_STMT_ROW) {
        int64_t start = ag_stmt_col_i64(st, 5);
        int64_t end = ag_stmt_col_i64(st, 6);
        json_t *attrs = json_loads(ag_stmt_col_text(st, 9), 0, NULL);
        json_t *events = json_loads(ag_stmt_col_text(st, 10), 0, NULL);
        json_t *links = json_loads(ag_stmt_col_text(st, 11), 0, NULL);
        json_array_append_new(
            spans,
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:{s:I, s:s}, s:o, s:o, s:o}",
                      "span_id", ag_stmt_col_text(st, 0), "parent_span_id", ag_stmt_col_text(st, 1),
                      "service", ag_stmt_col_text(st, 2), "name", ag_stmt_col_text(st, 3), "kind",
                      (json_int_t)ag_stmt_col_i64(st, 4), "start_unix_nano", (json_int_t)start,
                      "end_unix_nano", (json_int_t)end, "duration_ms", (double)(end - start) / 1e6,
                      "status", "code", (json_int_t)ag_stmt_col_i64(st, 7), "message",
                      ag_stmt_col_text(st, 8), "attributes", attrs ? attrs : json_object(),
                      "events", events ? events : json_array(), "links",
                      links ? links : json_array()));
    }
    ag_stmt_reset(st);
    if (rc < 0) {
        json_decref(spans);
        ag_send_store_error(req, rc, "trace");
        return;
    }
    if (json_array_size(spans) == 0) {
        json_decref(spans);
        ag_send_error(req, AG_ENOENT, "no such trace");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:s, s:o}", "trace_id", id, "spans", spans));
}

/* ---- Logs ------------------------------------------------------------------ */

#define LOG_LINE_MAX  65536
#define LOG_LIMIT_MAX 1000

struct log_query {
    char service[80];  /* "\"service\":\"<name>\"" or "" */
    char trace[80];    /* "\"trace_id\":\"<id>\"" or "" */
    char request[120]; /* "\"request_id\":\"<id>\"" or "" */
    int min_level;
    char **ring; /* the last 'limit' matching lines */
    size_t limit;
    size_t n; /* matches seen */
};

static bool
log_line_wanted(const struct log_query *q, const char *line)
{
    if (q->service[0] && strstr(line, q->service) == NULL)
        return false;
    if (q->trace[0] && strstr(line, q->trace) == NULL)
        return false;
    if (q->request[0] && strstr(line, q->request) == NULL)
        return false;
    if (q->min_level > 0) {
        const char *l = strstr(line, "\"level\":\"");
        const char *e = l ? strchr(l + 9, '"') : NULL;
        if (e == NULL || ag_log_level_rank(l + 9, (size_t)(e - l - 9)) < q->min_level)
            return false;
    }
    return true;
}

/* The last q->limit matching lines of 'path' (the newest of that file,
 * which is in time order) appended to 'out' as parsed objects. */
static void
scan_log(struct log_query *q, const char *path, json_t *out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char **ring = ag_calloc(q->limit, sizeof(char *));
    size_t n = 0;
    char *line = ag_malloc(LOG_LINE_MAX);
    while (fgets(line, LOG_LINE_MAX, f) != NULL) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            continue; /* too long, or half written */
        line[len - 1] = '\0';
        if (!log_line_wanted(q, line))
            continue;
        size_t slot = n % q->limit;
        ag_free(ring[slot]);
        ring[slot] = ag_strndup(line, len - 1);
        n++;
    }
    ag_free(line);
    fclose(f);
    q->n += n;
    size_t have = AG_MIN(n, q->limit);
    for (size_t i = 0; i < have; i++) {
        size_t slot = (n - have + i) % q->limit;
        json_t *j = json_loads(ring[slot], 0, NULL);
        if (json_is_object(j))
            json_array_append_new(out, j);
        else
            json_decref(j);
    }
    for (size_t i = 0; i < q->limit; i++)
        ag_free(ring[i]);
    ag_free(ring);
}

static int
by_time(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "time"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "time"));
    return strcmp(x ? x : "", y ? y : "");
}

/* GET /v1/logs?service=&level=&request_id=&trace_id=&limit=: the newest
 * matching lines of every program's log file under AGORA_TRACES_LOG_DIR
 * (the supervisor's logs/, current and rotated files), oldest first. */
static void
list_logs(struct ag_http_req *req, void *udata)
{
    struct traces *t = udata;
    const struct ag_query *qs = ag_req_query(req);
    if (qs == NULL)
        return;
    int64_t limit = 100;
    if (ag_req_query_int(req, "limit", 1, LOG_LIMIT_MAX, &limit) != 0)
        return;
    struct log_query q;
    memset(&q, 0, sizeof(q));
    static const char *const keys[][3] = { { "service", "service", "" },
                                           { "trace_id", "trace_id", "" },
                                           { "request_id", "request_id", "" } };
    char *outs[] = { q.service, q.trace, q.request };
    size_t caps[] = { sizeof(q.service), sizeof(q.trace), sizeof(q.request) };
    for (size_t i = 0; i < 3; i++) {
        const char *v = ag_query_get(qs, keys[i][0]);
        if (v == NULL)
            continue;
        bool ok = v[0] != '\0' && strlen(v) <= 64;
        for (const char *p = v; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.';
        if (!ok) {
            ag_send_error(req, AG_EQUERY, "query parameter '%s' must be an id or a name",
                          keys[i][0]);
            return;
        }
        snprintf(outs[i], caps[i], "\"%s\":\"%s\"", keys[i][1], v);
    }
    const char *level = ag_query_get(qs, "level");
    if (level != NULL && (q.min_level = ag_log_level_rank(level, strlen(level))) < 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'level' must be debug, info, warn or error");
        return;
    }
    if (t->settings.log_dir == NULL || t->settings.log_dir[0] == '\0') {
        ag_send_problem(req, 503, "unavailable", "Service Unavailable",
                        "no log directory: AGORA_TRACES_LOG_DIR is not set");
        return;
    }
    DIR *dir = opendir(t->settings.log_dir);
    if (dir == NULL) {
        ag_send_problem(req, 503, "unavailable", "Service Unavailable",
                        "the log directory cannot be read");
        return;
    }
    q.limit = (size_t)limit;
    /* Each file's newest matches, then the newest 'limit' of them all. */
    json_t *all = json_array();
    struct dirent *d;
    while ((d = readdir(dir)) != NULL) {
        size_t len = strlen(d->d_name);
        bool cur = len > 4 && strcmp(d->d_name + len - 4, ".log") == 0;
        bool old = len > 6 && strcmp(d->d_name + len - 6, ".log.1") == 0;
        if (!cur && !old)
            continue;
        char *path = ag_asprintf("%s/%s", t->settings.log_dir, d->d_name);
        scan_log(&q, path, all);
        ag_free(path);
    }
    closedir(dir);
    size_t k = json_array_size(all);
    json_t **lines = ag_calloc(k ? k : 1, sizeof(json_t *));
    for (size_t i = 0; i < k; i++)
        lines[i] = json_incref(json_array_get(all, i));
    json_decref(all);
    qsort(lines, k, sizeof(json_t *), by_time);
    size_t from = k > q.limit ? k - q.limit : 0;
    json_t *items = json_array();
    for (size_t i = 0; i < k; i++) {
        if (i >= from)
            json_array_append(items, lines[i]);
        json_decref(lines[i]);
    }
    ag_free(lines);
    ag_send_json(req, 200, json_pack("{s:o, s:b}", "items", items, "truncated", q.n > q.limit));
}

const struct ag_route traces_routes[] = {
    /* Exporters, whoever reaches the port like the probes, never routed
     * (OTLP has no identity of its own; loopback under agora up). */
    { "POST", "/v1/traces", post_traces, AG_ROLE_PROBE },
    /* The console, through the gateway, as an administrator. */
    { "GET", "/v1/traces", list_traces, AG_ROLE_ADMIN },
    { "GET", "/v1/traces/{id}", get_trace, AG_ROLE_ADMIN },
    { "GET", "/v1/logs", list_logs, AG_ROLE_ADMIN },
};
const size_t traces_nroutes = AG_ARRAY_SIZE(traces_routes);

int
traces_start(struct traces *t)
{
    t->ntraces = -1;
    struct ag_metrics *m = ag_service_metrics(t->svc);
    static const char *const outcome[] = { "outcome" };
    t->m_spans =
        ag_metrics_counter(m, "traces_spans_received_total",
                           "Spans received, by outcome: accepted, rejected, duplicate", outcome, 1);
    t->m_evicted =
        ag_metrics_counter(m, "traces_evicted_total",
                           "Traces deleted to stay within AGORA_TRACES_MAX_TRACES", NULL, 0);
    return 0;
}
