/* SPDX-License-Identifier: MIT */
/* Test daemon for the HTTP server component tests (http_server.test.mjs):
 * listens on 127.0.0.1, port 0, prints "PORT <n>", takes its limits from
 * TESTD_* variables and stops gracefully on SIGTERM or SIGINT.
 * Endpoints: /echo, /slow?ms=N, /big?n=N, /stats; anything else is 404. */
#include "agora/base.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "agora/buf.h"
#include "agora/http_server.h"
#include "agora/mem.h"
#include "agora/str.h"

struct testd;

/* A /slow request waiting for its timer. */
struct slow {
    uv_timer_t timer;
    struct ag_http_req *req; /* NULL once answered */
    struct testd *td;
    struct slow *prev;
    struct slow *next;
};

struct testd {
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    struct ag_http_server *srv;
    struct slow *slows; /* timers not yet closed */
    bool stopping;
    uint64_t drain_ms;
};

static uint64_t
env_u64(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    uint64_t out;
    if (v == NULL || ag_str_to_u64(ag_str_from_cstr(v), UINT64_MAX, &out) != 0)
        return def;
    return out;
}

/* Value of query parameter 'name' in 'q', or AG_STR_NULL. */
static struct ag_str
query_param(struct ag_str q, const char *name)
{
    size_t nlen = strlen(name);
    while (q.len > 0) {
        const char *amp = memchr(q.ptr, '&', q.len);
        size_t n = amp ? (size_t)(amp - q.ptr) : q.len;
        if (n > nlen && memcmp(q.ptr, name, nlen) == 0 && q.ptr[nlen] == '=')
            return ag_str_make(q.ptr + nlen + 1, n - nlen - 1);
        q.ptr += amp ? n + 1 : n;
        q.len -= amp ? n + 1 : n;
    }
    return AG_STR_NULL;
}

static int
dump_to_buf(const char *buffer, size_t size, void *data)
{
    return ag_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

static void
send_json(struct ag_http_req *req, int status, json_t *doc)
{
    struct ag_buf b = AG_BUF_INIT(0);
    if (json_dump_callback(doc, dump_to_buf, &b, JSON_COMPACT) != 0) {
        ag_buf_release(&b);
        json_decref(doc);
        ag_http_send(req, 500, "text/plain", "dump failed\n", 12);
        return;
    }
    json_decref(doc);
    size_t len;
    char *body = ag_buf_detach(&b, &len);
    ag_http_send_take(req, status, "application/json", body, len);
}

static json_t *
jstr(struct ag_str s)
{
    json_t *j = json_stringn(s.ptr ? s.ptr : "", s.len);
    return j ? j : json_null();
}

static void
handle_echo(struct ag_http_req *req)
{
    json_t *hdrs = json_array();
    for (size_t i = 0; i < req->nheaders; i++) {
        json_array_append_new(
            hdrs, json_pack("[o o]", jstr(req->headers[i].name), jstr(req->headers[i].value)));
    }
    json_t *doc = json_pack("{s:o s:o s:o s:o s:s s:o s:o s:I}", "method", jstr(req->method_name),
                            "target", jstr(req->target), "path", jstr(req->path), "query",
                            jstr(req->query), "version", req->version_minor ? "1.1" : "1.0",
                            "headers", hdrs, "body", jstr(req->body), "id", (json_int_t)req->id);
    if (ag_http_resp_header(req, "X-Echo", "1") != 0 ||
        ag_http_resp_header(req, "X-Bad", "a\r\nInjected: 1") == 0) {
        json_decref(doc);
        ag_http_send(req, 500, "text/plain", "header check failed\n", 20);
        return;
    }
    send_json(req, 200, doc);
}

/* /stats is exempt from admission, as a service's probes are. */
static enum ag_http_admit_class
admit_class(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    return ag_str_eq_cstr(req->path, "/stats") ? AG_HTTP_ADMIT_EXEMPT : AG_HTTP_ADMIT_LIMITED;
}

static void
handle_stats(struct ag_http_req *req)
{
    struct ag_http_server_stats st;
    ag_http_server_get_stats(req->server, &st);
    json_t *doc = json_pack(
        "{s:I s:I s:I s:I s:I s:I s:I s:I s:I s:I}", "connections_accepted",
        (json_int_t)st.connections_accepted, "connections_rejected",
        (json_int_t)st.connections_rejected, "connections_active",
        (json_int_t)st.connections_active, "requests", (json_int_t)st.requests, "protocol_errors",
        (json_int_t)st.protocol_errors, "timeouts", (json_int_t)st.timeouts, "requests_admitted",
        (json_int_t)st.requests_admitted, "requests_shed", (json_int_t)st.requests_shed, "inflight",
        (json_int_t)st.inflight, "inflight_limit", (json_int_t)st.inflight_limit);
    send_json(req, 200, doc);
}

static void
on_slow_closed(uv_handle_t *h)
{
    struct slow *s = h->data;
    struct testd *td = s->td;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        td->slows = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    ag_free(s);
}

static void
slow_answer(struct slow *s)
{
    struct ag_http_req *req = s->req;
    s->req = NULL;
    char *body = ag_asprintf("slow %.*s\n", AG_STR_FMT(req->target));
    /* Whether the client counted as gone when the answer was made. */
    if (ag_http_req_is_orphan(req))
        ag_http_resp_header(req, "X-Orphan", "1");
    ag_http_send_take(req, 200, "text/plain", body, strlen(body));
    uv_close((uv_handle_t *)&s->timer, on_slow_closed);
}

static void
on_slow_timer(uv_timer_t *t)
{
    slow_answer(t->data);
}

static void
handle_slow(struct testd *td, struct ag_http_req *req)
{
    uint64_t ms = 100;
    struct ag_str v = query_param(req->query, "ms");
    if (v.ptr != NULL && ag_str_to_u64(v, 600000, &ms) != 0) {
        ag_http_send(req, 400, "text/plain", "bad ms\n", 7);
        return;
    }
    struct slow *s = ag_calloc(1, sizeof(*s));
    s->req = req;
    s->td = td;
    s->next = td->slows;
    if (td->slows != NULL)
        td->slows->prev = s;
    td->slows = s;
    uv_timer_init(&td->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_slow_timer, ms, 0);
}

static void
handle_big(struct ag_http_req *req)
{
    uint64_t n = 0;
    struct ag_str v = query_param(req->query, "n");
    if (v.ptr == NULL || ag_str_to_u64(v, 64u * 1024 * 1024, &n) != 0) {
        ag_http_send(req, 400, "text/plain", "bad n\n", 6);
        return;
    }
    char *body = ag_malloc((size_t)n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    ag_http_send_take(req, 200, "application/octet-stream", body, (size_t)n);
}

static void
handle(struct ag_http_req *req, void *udata)
{
    struct testd *td = udata;
    if (ag_str_eq_cstr(req->path, "/echo"))
        handle_echo(req);
    else if (ag_str_eq_cstr(req->path, "/slow"))
        handle_slow(td, req);
    else if (ag_str_eq_cstr(req->path, "/big"))
        handle_big(req);
    else if (ag_str_eq_cstr(req->path, "/stats"))
        handle_stats(req);
    else
        ag_http_send(req, 404, "text/plain", "not found\n", 10);
}

static void
on_stopped(struct ag_http_server *srv, void *udata)
{
    struct testd *td = udata;
    ag_http_server_free(srv);
    td->srv = NULL;
    /* Requests still waiting were orphaned by the forced close: answer them
     * now, after the server is gone (their responses are dropped), so that
     * nothing leaks and the loop can end. */
    for (struct slow *s = td->slows; s != NULL; s = s->next) {
        if (s->req != NULL) {
            uv_timer_stop(&s->timer);
            slow_answer(s);
        }
    }
    uv_close((uv_handle_t *)&td->sigterm, NULL);
    uv_close((uv_handle_t *)&td->sigint, NULL);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    struct testd *td = h->data;
    AG_UNUSED(signum);
    if (td->stopping)
        return;
    td->stopping = true;
    ag_http_server_stop(td->srv, td->drain_ms, on_stopped, td);
}

int
main(void)
{
    static struct testd td;
    json_set_alloc_funcs(ag_malloc, ag_free);
    if (uv_loop_init(&td.loop) != 0)
        return 1;
    td.drain_ms = env_u64("TESTD_DRAIN_MS", 5000);
    struct ag_http_server_config cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_request_line = env_u64("TESTD_MAX_LINE", 0),
        .max_header_bytes = env_u64("TESTD_MAX_HEADER_BYTES", 0),
        .max_headers = env_u64("TESTD_MAX_HEADERS", 0),
        .max_body_bytes = env_u64("TESTD_MAX_BODY", 0),
        .max_connections = env_u64("TESTD_MAX_CONNS", 0),
        .max_pipeline = env_u64("TESTD_MAX_PIPELINE", 0),
        .header_timeout_ms = env_u64("TESTD_HEADER_TIMEOUT_MS", 0),
        .body_timeout_ms = env_u64("TESTD_BODY_TIMEOUT_MS", 0),
        .idle_timeout_ms = env_u64("TESTD_IDLE_TIMEOUT_MS", 0),
        .admission = (enum ag_http_admission)env_u64("TESTD_ADMISSION", 0),
        .max_inflight = (uint32_t)env_u64("TESTD_MAX_INFLIGHT", 0),
        .admit_class = admit_class,
        .handler = handle,
        .udata = &td,
    };
    int rc = ag_http_server_new(&td.loop, &cfg, &td.srv);
    if (rc != 0) {
        fprintf(stderr, "testd_http: cannot start the server (%d)\n", rc);
        uv_run(&td.loop, UV_RUN_DEFAULT);
        uv_loop_close(&td.loop);
        return 1;
    }
    uv_signal_init(&td.loop, &td.sigterm);
    uv_signal_init(&td.loop, &td.sigint);
    td.sigterm.data = &td;
    td.sigint.data = &td;
    uv_signal_start(&td.sigterm, on_signal, SIGTERM);
    uv_signal_start(&td.sigint, on_signal, SIGINT);
    printf("PORT %d\n", ag_http_server_port(td.srv));
    fflush(stdout);
    uv_run(&td.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&td.loop);
    if (rc != 0) {
        fprintf(stderr, "testd_http: loop not empty at exit: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
