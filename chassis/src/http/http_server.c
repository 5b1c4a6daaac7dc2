/* SPDX-License-Identifier: MIT */
/* The chassis HTTP/1.1 server: listener, connection limit, graceful stop,
 * stats, and the request and response API used by handlers. Connection I/O
 * and parsing live in http_conn.c, response headers and heads in
 * http_resp.c; the router and middleware sit above. */
#include "agora/base.h"
#include "agora/http_server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/time.h"
#include "http_server_int.h"

/* Largest header size given to http-parser so far. It is a process-wide
 * setting of the library; the head screen enforces the real limits. */
static uint32_t parser_max_header_size;

static void
log_error(const char *what, const char *host, int port, int uverr)
{
    AG_LOGE("http", "%s '%s:%d': %s", what, host, port, uv_strerror(uverr));
}

/* ---- Lifecycle ---- */

static void
on_connection(uv_stream_t *listener, int status)
{
    struct ag_http_server *srv = listener->data;
    if (status < 0) {
        log_error("cannot accept on", srv->host, srv->port, status);
        return;
    }
    if (srv->stopping)
        return;
    ag__http_conn_accept(srv);
}

static void
on_failed_listener_closed(uv_handle_t *h)
{
    struct ag_http_server *srv = h->data;
    ag_free(srv->host);
    ag_free(srv);
}

static void
apply_defaults(struct ag_http_server_config *c)
{
    if (c->backlog == 0)
        c->backlog = AG_HTTP_DEF_BACKLOG;
    if (c->max_request_line == 0)
        c->max_request_line = AG_HTTP_DEF_REQUEST_LINE;
    if (c->max_header_bytes == 0)
        c->max_header_bytes = AG_HTTP_DEF_HEADER_BYTES;
    if (c->max_headers == 0)
        c->max_headers = AG_HTTP_DEF_HEADERS;
    if (c->max_body_bytes == 0)
        c->max_body_bytes = AG_HTTP_DEF_BODY;
    if (c->max_connections == 0)
        c->max_connections = AG_HTTP_DEF_CONNECTIONS;
    if (c->max_pipeline == 0)
        c->max_pipeline = AG_HTTP_DEF_PIPELINE;
    if (c->header_timeout_ms == 0)
        c->header_timeout_ms = AG_HTTP_DEF_HEADER_TMO_MS;
    if (c->body_timeout_ms == 0)
        c->body_timeout_ms = AG_HTTP_DEF_BODY_TMO_MS;
    if (c->idle_timeout_ms == 0)
        c->idle_timeout_ms = AG_HTTP_DEF_IDLE_TMO_MS;
    if (c->max_inflight == 0)
        c->max_inflight = AG_HTTP_DEF_MAX_INFLIGHT;
    if (c->min_inflight == 0)
        c->min_inflight = AG_HTTP_DEF_MIN_INFLIGHT;
    if (c->min_inflight > c->max_inflight)
        c->min_inflight = c->max_inflight;
    if (c->queue_delay_ms == 0)
        c->queue_delay_ms = AG_HTTP_DEF_QUEUE_DELAY;
    if (c->retry_after_s == 0)
        c->retry_after_s = AG_HTTP_DEF_RETRY_AFTER;
}

int
ag_http_server_new(uv_loop_t *loop, const struct ag_http_server_config *cfg,
                   struct ag_http_server **out_srv)
{
    if (out_srv == NULL)
        return AG_EINVAL;
    *out_srv = NULL;
    if (loop == NULL || cfg == NULL || cfg->handler == NULL || cfg->port < 0 || cfg->port > 65535 ||
        cfg->backlog < 0 || (unsigned)cfg->admission > AG_HTTP_ADMISSION_OFF) {
        return AG_EINVAL;
    }
    struct ag_http_server *srv = ag_calloc(1, sizeof(*srv));
    srv->magic = AG_HTTP_SERVER_MAGIC;
    srv->loop = loop;
    srv->cfg = *cfg;
    apply_defaults(&srv->cfg);
    ag__http_limiter_init(&srv->limiter, srv->cfg.min_inflight, srv->cfg.max_inflight,
                          srv->cfg.queue_delay_ms);
    srv->host = ag_strdup(cfg->host ? cfg->host : AG_HTTP_DEF_HOST);
    srv->cfg.host = srv->host;
    srv->port = cfg->port;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(srv->host, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(srv->host, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
        log_error("bad listen address", srv->host, cfg->port, UV_EINVAL);
        ag_free(srv->host);
        ag_free(srv);
        return AG_EINVAL;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    int rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, srv->cfg.backlog, on_connection);
    if (rc == 0) {
        struct sockaddr_storage bound;
        int len = (int)sizeof(bound);
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
        if (rc == 0) {
            srv->port =
                ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    if (rc != 0) {
        log_error("cannot listen on", srv->host, cfg->port, rc);
        /* The handle must be closed through the loop; the memory goes in
         * its close callback, and no server callback will ever run. */
        uv_close((uv_handle_t *)&srv->listener, on_failed_listener_closed);
        return AG_EIO;
    }
    srv->rbuf = ag_malloc(AG_HTTP_READ_BUF);
    /* libuv writes with writev(): a write to a connection the client reset
     * raises SIGPIPE, whose default action would kill the process. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    size_t want = 2 * (srv->cfg.max_header_bytes + srv->cfg.max_request_line);
    want = AG_MAX(want, (size_t)80 * 1024);
    want = AG_MIN(want, (size_t)UINT32_MAX);
    if (want > parser_max_header_size) {
        parser_max_header_size = (uint32_t)want;
        http_parser_set_max_header_size(parser_max_header_size);
    }
    *out_srv = srv;
    return 0;
}

int
ag_http_server_port(const struct ag_http_server *srv)
{
    AG_CHECK_MAGIC(srv, AG_HTTP_SERVER_MAGIC);
    return srv->port;
}

void
ag_http_server_get_stats(const struct ag_http_server *srv, struct ag_http_server_stats *out_stats)
{
    AG_CHECK_MAGIC(srv, AG_HTTP_SERVER_MAGIC);
    *out_stats = srv->stats;
    out_stats->inflight_limit = ag__http_admit_limit(srv);
    out_stats->latency_floor_us = ag__http_limiter_floor(&srv->limiter) / 1000;
}

static void
on_listener_closed(uv_handle_t *h)
{
    struct ag_http_server *srv = h->data;
    srv->listener_closed = true;
    ag__http_server_check_stopped(srv);
}

static void
on_drain(uv_timer_t *t)
{
    struct ag_http_server *srv = t->data;
    /* Closing only unlinks in the close callbacks, so walking is safe. */
    for (struct ag_http_conn *c = srv->conns; c != NULL; c = c->next)
        ag__http_conn_close(c);
}

void
ag_http_server_stop(struct ag_http_server *srv, uint64_t drain_ms, ag_http_stopped_fn cb,
                    void *udata)
{
    AG_CHECK_MAGIC(srv, AG_HTTP_SERVER_MAGIC);
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->stopped_cb = cb;
    srv->stopped_udata = udata;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    srv->drain_started = true;
    struct ag_http_conn *c = srv->conns;
    while (c != NULL) {
        struct ag_http_conn *next = c->next;
        ag__http_conn_stop(c);
        c = next;
    }
    if (srv->conns != NULL)
        uv_timer_start(&srv->drain_timer, on_drain, drain_ms, 0);
}

void
ag_http_server_free(struct ag_http_server *srv)
{
    if (srv == NULL)
        return;
    AG_CHECK_MAGIC(srv, AG_HTTP_SERVER_MAGIC);
    if (!srv->stopped)
        AG_BUG("ag_http_server_free before the stopped callback");
    /* Connections kept only by orphaned requests outlive the server. */
    for (struct ag_http_conn *c = srv->zombies; c != NULL; c = c->next)
        c->srv = NULL;
    srv->zombies = NULL;
    ag_free(srv->rbuf);
    srv->rbuf = NULL;
    ag_free(srv->host);
    srv->host = NULL;
    srv->magic = 0;
    ag_free(srv);
}

/* ---- Request helpers ---- */

struct ag_str
ag_http_req_header(const struct ag_http_req *req, const char *name)
{
    struct ag_str n = ag_str_from_cstr(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (ag_str_case_eq(req->headers[i].name, n))
            return req->headers[i].value;
    }
    return AG_STR_NULL;
}

bool
ag_http_req_is_orphan(const struct ag_http_req *req)
{
    const struct ag_http_sreq *r = req->priv;
    return r->orphan || (req->conn != NULL && req->conn->peer_eof);
}

/* ---- Response ---- */

static void
resp_finish(struct ag_http_sreq *r, int status, const char *content_type, const char *body,
            size_t len)
{
    if (status < 200 || status > 999)
        status = 500; /* a handler bug; never an interim or malformed status */
    r->req.status = status;
    r->ctype = NULL;
    if (content_type != NULL && ag__http_is_field_value(content_type))
        r->ctype = ag_pool_strdup(r->req.pool, content_type);
    r->resp_body = body;
    r->resp_len = ag__http_status_has_body(status) ? len : 0;
    r->answered = true;
    if (r->limited)
        ag__http_admit_done(r->conn->srv, r, ag_time_mono_ns());
    if (r->orphan) {
        /* The client is gone: drop the response, free the request now. */
        ag__http_sreq_complete(r);
        ag__http_sreq_free(r);
        return;
    }
    ag__http_conn_answered(r);
}

void
ag_http_send(struct ag_http_req *req, int status, const char *content_type, const void *body,
             size_t len)
{
    struct ag_http_sreq *r = req->priv;
    AG_CHECK_MAGIC(r, AG_HTTP_REQ_MAGIC);
    if (r->answered)
        AG_BUG("response sent twice");
    const char *copy = NULL;
    if (len > 0 && ag__http_status_has_body(status) && req->method != AG_HTTP_HEAD && !r->orphan) {
        char *c = ag_pool_alloc(req->pool, len);
        memcpy(c, body, len);
        copy = c;
    }
    resp_finish(r, status, content_type, copy, len);
}

void
ag_http_send_take(struct ag_http_req *req, int status, const char *content_type, char *body,
                  size_t len)
{
    struct ag_http_sreq *r = req->priv;
    AG_CHECK_MAGIC(r, AG_HTTP_REQ_MAGIC);
    if (r->answered)
        AG_BUG("response sent twice");
    r->owned_body = body;
    resp_finish(r, status, content_type, body, len);
}
