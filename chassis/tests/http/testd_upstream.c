/* SPDX-License-Identifier: MIT */
/* Scriptable upstream for the HTTP client and registry client component
 * tests (component_http_client.c): listens on 127.0.0.1, port 0, prints
 * "PORT <n>", stops cleanly on SIGTERM or SIGINT. Every answer carries
 * X-Instance: $TESTD_ID. Endpoints: /echo (method, path, query, headers,
 * body as JSON), /status/{code}, /slow?ms=N, /big?n=N, canned raw
 * responses written on the socket then closed (/raw/chunked,
 * /raw/close-delimited, /raw/close-after, /raw/interim, /raw/split; with
 * ?close_ms=N the close waits N ms), and the control plane: POST
 * /control/mode ("ok", "fail" = 503, "500", "hang", "reset") and GET
 * /control/stats ({"requests", "connections", "active", "mode"}). */
#include "agora/base.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <uv.h>

#include "../../src/http/http_server_int.h" /* to close a connection without answering */
#include "agora/buf.h"
#include "agora/http_server.h"
#include "agora/mem.h"
#include "agora/str.h"

/* What requests outside /control get. */
enum mode {
    MODE_OK = 0, /* answer normally */
    MODE_FAIL,   /* 503 */
    MODE_500,    /* 500 */
    MODE_HANG,   /* hold until the mode changes or the client goes */
    MODE_RESET,  /* close the connection (RST) without answering */
};

static const char *const mode_names[] = { "ok", "fail", "500", "hang", "reset" };

struct testd;

/* A request answered later: /slow, a hung request, or a reset. */
struct held {
    uv_timer_t timer;
    struct ag_http_req *req; /* NULL once answered */
    struct testd *td;
    enum mode kind; /* MODE_OK for /slow, MODE_HANG or MODE_RESET */
    struct held *prev;
    struct held *next;
};

struct testd {
    uv_loop_t loop;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t sweep; /* answers hung requests whose client went away */
    struct ag_http_server *srv;
    struct held *held; /* timers not yet closed */
    const char *id;    /* TESTD_ID */
    enum mode mode;
    uint64_t requests; /* requests outside /control */
    bool stopping;
};

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
send_text(struct testd *td, struct ag_http_req *req, int status, const char *text)
{
    if (td->id != NULL)
        ag_http_resp_header(req, "X-Instance", td->id);
    ag_http_send(req, status, "text/plain", text, strlen(text));
}

static void
send_json(struct testd *td, struct ag_http_req *req, int status, json_t *doc)
{
    struct ag_buf b = AG_BUF_INIT(0);
    int rc = json_dump_callback(doc, dump_to_buf, &b, JSON_COMPACT);
    json_decref(doc);
    if (rc != 0) {
        ag_buf_release(&b);
        send_text(td, req, 500, "dump failed\n");
        return;
    }
    if (td->id != NULL)
        ag_http_resp_header(req, "X-Instance", td->id);
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

static json_t *
jheader(const struct ag_http_req *req, const char *name)
{
    struct ag_str v = ag_http_req_header(req, name);
    return v.ptr != NULL ? jstr(v) : json_null();
}

static void
handle_echo(struct testd *td, struct ag_http_req *req)
{
    json_t *hdrs = json_array();
    for (size_t i = 0; i < req->nheaders; i++) {
        json_array_append_new(
            hdrs, json_pack("[o o]", jstr(req->headers[i].name), jstr(req->headers[i].value)));
    }
    json_t *doc =
        json_pack("{s:o s:o s:o s:o s:o s:o s:o s:o s:o s:I}", "method", jstr(req->method_name),
                  "path", jstr(req->path), "query", jstr(req->query), "headers", hdrs, "body",
                  jstr(req->body), "request_id", jheader(req, "X-Request-ID"), "traceparent",
                  jheader(req, "traceparent"), "idempotency_key", jheader(req, "Idempotency-Key"),
                  "content_type", jheader(req, "Content-Type"), "id", (json_int_t)req->id);
    send_json(td, req, 200, doc);
}

static void
on_held_closed(uv_handle_t *h)
{
    struct held *s = h->data;
    struct testd *td = s->td;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        td->held = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    ag_free(s);
}

/* Answer (or, for a reset, drop the connection of) a held request. */
static void
held_answer(struct held *s, bool reset)
{
    struct ag_http_req *req = s->req;
    s->req = NULL;
    uv_timer_stop(&s->timer);
    if (reset && !ag_http_req_is_orphan(req)) {
        struct ag_http_sreq *r = req->priv;
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&r->conn->tcp, &fd) == 0) {
            struct linger lg = { 1, 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        ag__http_conn_close(r->conn);
    }
    /* An orphan's answer is dropped; sending it frees the request. */
    char *body = ag_asprintf("done %.*s\n", AG_STR_FMT(req->target));
    if (s->td->id != NULL)
        ag_http_resp_header(req, "X-Instance", s->td->id);
    ag_http_send_take(req, 200, "text/plain", body, strlen(body));
    uv_close((uv_handle_t *)&s->timer, on_held_closed);
}

static void
on_held_timer(uv_timer_t *t)
{
    struct held *s = t->data;
    held_answer(s, s->kind == MODE_RESET);
}

/* Hold 'req'; with 'ms' != UINT64_MAX answer it after 'ms'. */
static void
hold(struct testd *td, struct ag_http_req *req, enum mode kind, uint64_t ms)
{
    struct held *s = ag_calloc(1, sizeof(*s));
    s->req = req;
    s->td = td;
    s->kind = kind;
    s->next = td->held;
    if (td->held != NULL)
        td->held->prev = s;
    td->held = s;
    uv_timer_init(&td->loop, &s->timer);
    s->timer.data = s;
    if (ms != UINT64_MAX)
        uv_timer_start(&s->timer, on_held_timer, ms, 0);
}

/* Answer every hung request (mode change or stop). */
static void
release_hung(struct testd *td, bool only_orphans)
{
    for (struct held *s = td->held; s != NULL; s = s->next) {
        if (s->req != NULL && s->kind == MODE_HANG &&
            (!only_orphans || ag_http_req_is_orphan(s->req)))
            held_answer(s, false);
    }
}

static void
on_sweep(uv_timer_t *t)
{
    release_hung(t->data, true);
}

/* ---- Raw responses: bytes the chassis server would never write ---- */

/* One raw response being written, 'step' bytes per timer tick. */
struct raw {
    uv_timer_t timer;
    struct ag_http_req *req;
    const char *data;
    size_t len;
    size_t pos;
    size_t step;
    uint64_t close_ms; /* wait after the last byte before closing */
};

static const struct {
    const char *name;
    const char *bytes;
    size_t step; /* 0: all at once */
} raw_kinds[] = {
    { "chunked",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Raw: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
      0 },
    { "close-delimited", "HTTP/1.1 200 OK\r\nX-Raw: eof\r\n\r\nuntil the end", 0 },
    { "close-after", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 0 },
    { "interim",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal",
      0 },
    { "split",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Raw:   split  \r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
      1 },
};

static void
on_raw_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

static void
on_raw_timer(uv_timer_t *t)
{
    struct raw *r = t->data;
    struct ag_http_req *req = r->req;
    if (r->pos < r->len && !ag_http_req_is_orphan(req)) {
        struct ag_http_sreq *sr = req->priv;
        size_t n = r->step ? AG_MIN(r->step, r->len - r->pos) : r->len - r->pos;
        uv_buf_t b = uv_buf_init((char *)r->data + r->pos, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&sr->conn->tcp, &b, 1);
        if (w > 0)
            r->pos += (size_t)w;
        if (w >= 0 || w == UV_EAGAIN) {
            uv_timer_start(&r->timer, on_raw_timer, r->pos < r->len ? 1 : r->close_ms, 0);
            return;
        }
    }
    /* Done (or the client went): close the connection, then free the
     * request by answering the orphan. */
    if (!ag_http_req_is_orphan(req)) {
        struct ag_http_sreq *sr = req->priv;
        ag__http_conn_close(sr->conn);
    }
    ag_http_send(req, 200, "text/plain", "", 0);
    uv_close((uv_handle_t *)&r->timer, on_raw_closed);
}

static void
handle_raw(struct testd *td, struct ag_http_req *req)
{
    struct ag_str kind = ag_str_make(req->path.ptr + 5, req->path.len - 5);
    for (size_t i = 0; i < AG_ARRAY_SIZE(raw_kinds); i++) {
        if (!ag_str_eq_cstr(kind, raw_kinds[i].name))
            continue;
        struct raw *r = ag_calloc(1, sizeof(*r));
        r->req = req;
        r->data = raw_kinds[i].bytes;
        r->len = strlen(r->data);
        r->step = raw_kinds[i].step;
        struct ag_str v = query_param(req->query, "close_ms");
        if (v.ptr != NULL && ag_str_to_u64(v, 60000, &r->close_ms) != 0)
            r->close_ms = 0;
        uv_timer_init(&td->loop, &r->timer);
        r->timer.data = r;
        uv_timer_start(&r->timer, on_raw_timer, 0, 0);
        return;
    }
    send_text(td, req, 404, "no such raw response\n");
}

static void
handle_control(struct testd *td, struct ag_http_req *req)
{
    if (ag_str_eq_cstr(req->path, "/control/stats")) {
        struct ag_http_server_stats st;
        ag_http_server_get_stats(req->server, &st);
        json_t *doc = json_pack("{s:I s:I s:I s:s}", "requests", (json_int_t)td->requests,
                                "connections", (json_int_t)st.connections_accepted, "active",
                                (json_int_t)st.connections_active, "mode", mode_names[td->mode]);
        send_json(td, req, 200, doc);
        return;
    }
    if (ag_str_eq_cstr(req->path, "/control/mode") && req->method == AG_HTTP_POST) {
        struct ag_str want = ag_str_trim(req->body);
        for (size_t i = 0; i < AG_ARRAY_SIZE(mode_names); i++) {
            if (ag_str_eq_cstr(want, mode_names[i])) {
                td->mode = (enum mode)i;
                if (td->mode != MODE_HANG)
                    release_hung(td, false);
                send_text(td, req, 200, mode_names[i]);
                return;
            }
        }
        send_text(td, req, 400, "bad mode\n");
        return;
    }
    send_text(td, req, 404, "not found\n");
}

static void
handle(struct ag_http_req *req, void *udata)
{
    struct testd *td = udata;
    if (ag_str_has_prefix(req->path, "/control/")) {
        handle_control(td, req);
        return;
    }
    td->requests++;
    switch (td->mode) {
    case MODE_OK: break;
    case MODE_FAIL: send_text(td, req, 503, "failing\n"); return;
    case MODE_500: send_text(td, req, 500, "broken\n"); return;
    case MODE_HANG: hold(td, req, MODE_HANG, UINT64_MAX); return;
    case MODE_RESET:
        /* Closed on the next loop turn, outside the server's read path. */
        hold(td, req, MODE_RESET, 0);
        return;
    }
    if (ag_str_eq_cstr(req->path, "/echo")) {
        handle_echo(td, req);
    } else if (ag_str_has_prefix(req->path, "/status/")) {
        int64_t code;
        struct ag_str s = ag_str_make(req->path.ptr + 8, req->path.len - 8);
        if (ag_str_to_i64(s, 200, 599, &code) != 0) {
            send_text(td, req, 400, "bad status\n");
            return;
        }
        struct ag_str ra = query_param(req->query, "retry_after");
        if (ra.ptr != NULL) {
            char *v = ag_strndup(ra.ptr, ra.len);
            ag_http_resp_header(req, "Retry-After", v);
            ag_free(v);
        }
        send_text(td, req, (int)code, "status\n");
    } else if (ag_str_has_prefix(req->path, "/raw/")) {
        handle_raw(td, req);
    } else if (ag_str_eq_cstr(req->path, "/slow")) {
        uint64_t ms = 100;
        struct ag_str v = query_param(req->query, "ms");
        if (v.ptr != NULL && ag_str_to_u64(v, 600000, &ms) != 0) {
            send_text(td, req, 400, "bad ms\n");
            return;
        }
        hold(td, req, MODE_OK, ms);
    } else if (ag_str_eq_cstr(req->path, "/big")) {
        uint64_t n = 0;
        struct ag_str v = query_param(req->query, "n");
        if (v.ptr == NULL || ag_str_to_u64(v, 64u * 1024 * 1024, &n) != 0) {
            send_text(td, req, 400, "bad n\n");
            return;
        }
        char *body = ag_malloc((size_t)n);
        memset(body, 'x', (size_t)n);
        if (td->id != NULL)
            ag_http_resp_header(req, "X-Instance", td->id);
        ag_http_send_take(req, 200, "application/octet-stream", body, (size_t)n);
    } else {
        send_text(td, req, 404, "not found\n");
    }
}

static void
on_stopped(struct ag_http_server *srv, void *udata)
{
    struct testd *td = udata;
    ag_http_server_free(srv);
    td->srv = NULL;
    /* Requests still held were orphaned by the forced close: answer them
     * now (their answers are dropped) so that nothing leaks. */
    for (struct held *s = td->held; s != NULL; s = s->next) {
        if (s->req != NULL)
            held_answer(s, false);
    }
    uv_close((uv_handle_t *)&td->sweep, NULL);
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
    /* Hung requests would hold the drain for its whole bound. */
    release_hung(td, false);
    ag_http_server_stop(td->srv, 1000, on_stopped, td);
}

int
main(void)
{
    static struct testd td;
    json_set_alloc_funcs(ag_malloc, ag_free);
    if (uv_loop_init(&td.loop) != 0)
        return 1;
    td.id = getenv("TESTD_ID");
    struct ag_http_server_config cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_body_bytes = 8u * 1024 * 1024,
        .handler = handle,
        .udata = &td,
    };
    int rc = ag_http_server_new(&td.loop, &cfg, &td.srv);
    if (rc != 0) {
        fprintf(stderr, "testd_upstream: cannot start the server (%d)\n", rc);
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
    uv_timer_init(&td.loop, &td.sweep);
    td.sweep.data = &td;
    uv_timer_start(&td.sweep, on_sweep, 20, 20);
    printf("PORT %d\n", ag_http_server_port(td.srv));
    fflush(stdout);
    uv_run(&td.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&td.loop);
    if (rc != 0) {
        fprintf(stderr, "testd_upstream: loop not empty at exit: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
