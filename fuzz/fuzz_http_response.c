/* SPDX-License-Identifier: MIT */
/* libFuzzer target: HTTP response framing of the chassis client (status
 * line, headers, Content-Length, chunked, close-delimited bodies, limits).
 * A raw loopback server answers the client's request with the input bytes
 * and closes; the call must end (callback once) within its deadline with an
 * HTTP answer or an error, never a crash or hang. */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agora/http_client.h"
#include "agora/log.h"
#include "agora/mem.h"

static uv_loop_t g_loop;
static uv_tcp_t g_listener;
static int g_port;
static struct ag_http_client *g_client;
static const uint8_t *g_data;
static size_t g_size;

struct conn {
    uv_tcp_t tcp;
    uv_write_t write;
    bool written;
};

static void
on_conn_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

static void
on_written(uv_write_t *req, int status)
{
    AG_UNUSED(status);
    struct conn *c = req->data;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    AG_UNUSED(h);
    AG_UNUSED(hint);
    static char rbuf[16384];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

/* Answer once the request has arrived (any bytes), then close. */
static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    AG_UNUSED(buf);
    struct conn *c = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (n == 0 || c->written)
        return;
    c->written = true;
    uv_read_stop(s);
    uv_buf_t out = uv_buf_init((char *)g_data, (unsigned)g_size);
    c->write.data = c;
    if (uv_write(&c->write, s, &out, 1, on_written) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void
on_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    struct conn *c = ag_calloc(1, sizeof(*c));
    uv_tcp_init(&g_loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void
on_response(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    int *calls = udata;
    (*calls)++;
    /* Touch what a caller reads. */
    size_t sum = resp->body.len;
    for (size_t i = 0; i < resp->nheaders; i++)
        sum += resp->headers[i].name.len + resp->headers[i].value.len;
    if (resp->err == 0 && (resp->status < 100 || resp->status > 999))
        abort();
    (void)sum;
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
    uv_tcp_init(&g_loop, &g_listener);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&g_listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&g_listener, 128, on_connection) != 0)
        abort();
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&g_listener, (struct sockaddr *)&ss, &len);
    g_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    struct ag_http_client_config cfg = {
        .max_retries = -1,
        .timeout_ms = 3000,
        .max_response_bytes = 65536,
        .breaker_failure_rate = 101,
        .breaker_slow_rate = 101,
        .eject_failures = 1000000,
    };
    if (ag_http_client_new(&g_loop, &cfg, &g_client) != 0)
        abort();
    struct ag_upstream_instance inst = { "up-1", "127.0.0.1", g_port, NULL };
    if (ag_http_client_set_upstream(g_client, "up", &inst, 1) != 0)
        abort();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    g_data = data;
    g_size = size;
    int calls = 0;
    struct ag_http_client_request req = { .method = "GET", .upstream = "up", .url = "/x" };
    if (ag_http_client_send(g_client, &req, on_response, &calls) != 0)
        abort();
    while (calls == 0)
        uv_run(&g_loop, UV_RUN_ONCE);
    if (calls != 1)
        abort();
    return 0;
}
