/* SPDX-License-Identifier: MIT */
/* libFuzzer target: HTTP request framing of the chassis server (head
 * screening, http-parser, limits, pipelining, chunked bodies). The input is
 * written to a real server on a loopback socket, then the client half-closes
 * and reads until the server closes; every answer must be well-formed
 * enough to start with "HTTP/1.1 " and the server must close after the FIN.
 * Crashes, leaks and sanitizer reports are the findings. */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agora/http_server.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/str.h"

static uv_loop_t g_loop;
static struct ag_http_server *g_srv;
static int g_port;

struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_timer_t timer;
    uv_buf_t out;
    char *in;
    size_t in_len;
    int handles;
    bool timed_out;
};

static void
handle(struct ag_http_req *req, void *udata)
{
    AG_UNUSED(udata);
    /* Echo the body length and the path, as a handler would read them. */
    char body[64];
    int n = snprintf(body, sizeof(body), "%zu %zu\n", req->body.len, req->path.len);
    ag_http_send(req, 200, "text/plain", body, (size_t)n);
}

static void
on_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    c->handles--;
}

static void
finish(struct client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    AG_UNUSED(h);
    AG_UNUSED(hint);
    static char rbuf[65536];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *c = s->data;
    if (n > 0) {
        if (c->in_len < 1 << 20) {
            c->in = ag_realloc(c->in, c->in_len + (size_t)n);
            memcpy(c->in + c->in_len, buf->base, (size_t)n);
            c->in_len += (size_t)n;
        }
        return;
    }
    if (n < 0)
        finish(c);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    AG_UNUSED(req);
    AG_UNUSED(status);
}

static void
on_write(uv_write_t *req, int status)
{
    struct client *c = req->data;
    if (status != 0) {
        finish(c);
        return;
    }
    c->shutdown.data = c;
    uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    if (status != 0) {
        finish(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->write.data = c;
    uv_write(&c->write, (uv_stream_t *)&c->tcp, &c->out, 1, on_write);
}

static void
on_timer(uv_timer_t *t)
{
    struct client *c = t->data;
    c->timed_out = true;
    finish(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    AG_UNUSED(argc);
    AG_UNUSED(argv);
    ag_log_init("fuzz", "fuzz-1", AG_LOG_OFF);
    uv_loop_init(&g_loop);
    struct ag_http_server_config cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .max_request_line = 512,
        .max_header_bytes = 2048,
        .max_headers = 16,
        .max_body_bytes = 4096,
        .max_pipeline = 8,
        .header_timeout_ms = 2000,
        .body_timeout_ms = 2000,
        .idle_timeout_ms = 2000,
        .handler = handle,
    };
    if (ag_http_server_new(&g_loop, &cfg, &g_srv) != 0)
        abort();
    g_port = ag_http_server_port(g_srv);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 16384)
        return 0;
    struct client c = { 0 };
    c.out = uv_buf_init((char *)data, (unsigned)size);
    uv_tcp_init(&g_loop, &c.tcp);
    uv_timer_init(&g_loop, &c.timer);
    c.handles = 2;
    c.tcp.data = &c;
    c.timer.data = &c;
    c.connect.data = &c;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", g_port, &addr);
    uv_timer_start(&c.timer, on_timer, 5000, 0);
    if (uv_tcp_connect(&c.connect, &c.tcp, (const struct sockaddr *)&addr, on_connect) != 0)
        finish(&c);
    while (c.handles > 0)
        uv_run(&g_loop, UV_RUN_ONCE);
    /* After our FIN the server must have answered and closed, never hung. */
    if (c.timed_out)
        abort();
    if (c.in_len > 0 && (c.in_len < 9 || memcmp(c.in, "HTTP/1.1 ", 9) != 0))
        abort();
    ag_free(c.in);
    return 0;
}
