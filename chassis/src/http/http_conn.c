/* SPDX-License-Identifier: MIT */
/* One client connection of the chassis HTTP/1.1 server: reads with libuv,
 * screens each request head byte by byte (limits, obs-fold, bare CR, NUL),
 * feeds http-parser, validates framing, dispatches complete requests in
 * order, writes their responses strictly in request order, and runs the
 * connection's single timer (header, body, idle, send and linger). */
#include "agora/base.h"
#include "http_server_int.h"

#include <string.h>

#include "agora/err.h"
#include "agora/time.h"
#include "agora/uuid.h"

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_flush(struct ag_http_conn *conn);
static void conn_sync_reading(struct ag_http_conn *conn);
static void conn_fail(struct ag_http_conn *conn, int status, const char *detail);

/* ---- Requests ---- */

static struct ag_http_sreq *
sreq_new(struct ag_http_conn *conn)
{
    struct ag_pool *pool = ag_pool_new(AG_HTTP_POOL_BLOCK);
    struct ag_http_sreq *r = ag_pool_calloc(pool, sizeof(*r));
    r->magic = AG_HTTP_REQ_MAGIC;
    r->req.pool = pool;
    r->req.priv = r;
    r->req.server = conn->srv;
    r->req.conn = conn;
    r->req.remote_addr = conn->remote_addr;
    r->conn = conn;
    r->tail = &r->hdrs;
    ag_buf_init(&r->body, conn->srv->cfg.max_body_bytes);
    conn->refs++;
    return r;
}

static void
conn_unref(struct ag_http_conn *conn)
{
    if (--conn->refs > 0)
        return;
    struct ag_http_server *srv = conn->srv;
    if (conn->zombie && srv != NULL) {
        if (conn->prev != NULL)
            conn->prev->next = conn->next;
        else
            srv->zombies = conn->next;
        if (conn->next != NULL)
            conn->next->prev = conn->prev;
    }
    ag_buf_release(&conn->head);
    ag_buf_release(&conn->pending);
    ag_free(conn->hofs);
    conn->hofs = NULL;
    conn->magic = 0;
    ag_free(conn);
}

void
ag__http_sreq_free(struct ag_http_sreq *r)
{
    struct ag_http_conn *conn = r->conn;
    /* A request admitted on its head and then dropped (its body too large
     * or too slow, its connection reset) leaves the count here. */
    ag__http_admit_done(conn->srv, r, 0);
    ag_buf_release(&r->body);
    ag_free(r->owned_body);
    r->magic = 0;
    /* 'r' lives in its own pool: nothing of it may be read after this. */
    ag_pool_free(r->req.pool);
    conn_unref(conn);
}

void
ag__http_sreq_complete(struct ag_http_sreq *r)
{
    struct ag_http_server *srv = r->conn->srv;
    if (r->completed || srv == NULL)
        return;
    r->completed = true;
    if (srv->cfg.on_complete != NULL)
        srv->cfg.on_complete(&r->req, srv->cfg.udata);
}

static void
conn_enqueue(struct ag_http_conn *conn, struct ag_http_sreq *r)
{
    r->next = NULL;
    if (conn->qtail != NULL)
        conn->qtail->next = r;
    else
        conn->qhead = r;
    conn->qtail = r;
    conn->nqueued++;
}

/* Forget the request being received, if any, and any unparsed input. */
static void
conn_drop_partial(struct ag_http_conn *conn)
{
    if (conn->cur != NULL) {
        ag__http_sreq_free(conn->cur);
        conn->cur = NULL;
    }
    conn->body_phase = false;
    conn->head_started = false;
    memset(&conn->scan, 0, sizeof(conn->scan));
    ag_buf_reset(&conn->pending);
}

/* ---- Closing ---- */

/* The stop of a server ends with its connections: the last handle to close,
 * of the listener or of a connection, finishes it (on_drain_closed). */
static void
on_drain_closed(uv_handle_t *h)
{
    struct ag_http_server *srv = h->data;
    srv->stopped = true;
    /* The callback may free the server: nothing touches it afterwards. */
    if (srv->stopped_cb != NULL)
        srv->stopped_cb(srv, srv->stopped_udata);
}

void
ag__http_server_check_stopped(struct ag_http_server *srv)
{
    if (!srv->stopping || !srv->listener_closed || srv->conns != NULL || srv->stop_finishing)
        return;
    srv->stop_finishing = true;
    uv_close((uv_handle_t *)&srv->drain_timer, on_drain_closed);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
    struct ag_http_conn *conn = h->data;
    if (--conn->handles_open > 0)
        return;
    struct ag_http_server *srv = conn->srv;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->prev = NULL;
    conn->next = NULL;
    if (conn->counted)
        srv->stats.connections_active--;
    if (conn->refs > 1) {
        /* Orphaned requests still point here; keep the memory until they
         * are answered, and let the server detach us if it goes first. */
        conn->zombie = true;
        conn->next = srv->zombies;
        if (srv->zombies != NULL)
            srv->zombies->prev = conn;
        srv->zombies = conn;
    }
    conn_unref(conn);
    ag__http_server_check_stopped(srv);
}

/* Close now: pending writes are cancelled, requests still with a handler
 * become orphans, everything else is freed. */
void
ag__http_conn_close(struct ag_http_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    conn->dead = true;
    conn_drop_partial(conn);
    struct ag_http_sreq *r = conn->qhead;
    while (r != NULL) {
        struct ag_http_sreq *next = r->next;
        r->next = NULL;
        if (r->answered) {
            ag__http_sreq_complete(r);
            ag__http_sreq_free(r);
        } else {
            r->orphan = true;
            r->req.conn = NULL;
        }
        r = next;
    }
    conn->qhead = NULL;
    conn->qtail = NULL;
    conn->nqueued = 0;
    conn->reading = false;
    uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, on_conn_handle_closed);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    struct ag_http_conn *conn = req->data;
    if (status == UV_ECANCELED || conn->closing)
        return;
    if (status < 0 || conn->peer_eof) {
        ag__http_conn_close(conn);
        return;
    }
    /* Our FIN is out after the last response. Read and discard until the
     * client closes too, so that unread input does not turn our close into
     * a reset that could destroy the response in flight. */
    conn->linger = true;
    conn->timer_force = true;
    conn_sync_reading(conn);
}

/* Graceful close: FIN after the queued writes, then linger. */
static void
conn_shutdown(struct ag_http_conn *conn)
{
    if (conn->closing || conn->shutting)
        return;
    conn->shutting = true;
    conn->dead = true;
    conn_drop_partial(conn);
    conn->shutdown_req.data = conn;
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        ag__http_conn_close(conn);
        return;
    }
    conn_sync_reading(conn);
}

/* ---- Timer ---- */

static void
on_timer(uv_timer_t *t)
{
    struct ag_http_conn *conn = t->data;
    struct ag_http_server *srv = conn->srv;
    enum ag_http_conn_timer kind = conn->tkind;
    conn->tkind = AG_HTTP_CT_NONE;
    switch (kind) {
    case AG_HTTP_CT_HEADER:
        if (conn->scan.total > 0) {
            conn_fail(conn, 408, "the request head was not received in time");
        } else {
            /* Nothing of a request arrived: close silently, like nginx. */
            srv->stats.timeouts++;
            ag__http_conn_close(conn);
        }
        break;
    case AG_HTTP_CT_BODY: conn_fail(conn, 408, "the request body was not received in time"); break;
    case AG_HTTP_CT_IDLE:
    case AG_HTTP_CT_SEND:
        srv->stats.timeouts++;
        ag__http_conn_close(conn);
        break;
    case AG_HTTP_CT_LINGER: ag__http_conn_close(conn); break;
    case AG_HTTP_CT_NONE: break;
    }
}

/* Arm the timer for the current state. Deadlines are fixed: while the kind
 * stays the same the timer is left alone, so a client trickling bytes does
 * not extend it. 'timer_force' restarts it (new head, new body, progress). */
static void
conn_refresh_timer(struct ag_http_conn *conn)
{
    if (conn->closing)
        return;
    const struct ag_http_server_config *cfg = &conn->srv->cfg;
    enum ag_http_conn_timer want = AG_HTTP_CT_NONE;
    uint64_t ms = 0;
    if (conn->shutting) {
        want = conn->linger ? AG_HTTP_CT_LINGER : AG_HTTP_CT_SEND;
        ms = conn->linger ? AG_HTTP_LINGER_MS : cfg->idle_timeout_ms;
    } else if (conn->body_phase) {
        want = AG_HTTP_CT_BODY;
        ms = cfg->body_timeout_ms;
    } else if (conn->head_started && !conn->dead) {
        want = AG_HTTP_CT_HEADER;
        ms = cfg->header_timeout_ms;
    } else if (conn->writes_in_flight > 0) {
        want = AG_HTTP_CT_SEND;
        ms = cfg->idle_timeout_ms;
    } else if (conn->qhead == NULL && !conn->dead) {
        want = AG_HTTP_CT_IDLE;
        ms = cfg->idle_timeout_ms;
    }
    if (want == conn->tkind && !conn->timer_force)
        return;
    conn->timer_force = false;
    conn->tkind = want;
    if (want == AG_HTTP_CT_NONE)
        uv_timer_stop(&conn->timer);
    else
        uv_timer_start(&conn->timer, on_timer, ms, 0);
}

/* ---- Writing ---- */

static void
on_response_written(uv_write_t *w, int status)
{
    struct ag_http_sreq *r = w->data;
    struct ag_http_conn *conn = r->conn;
    conn->writes_in_flight--;
    ag__http_sreq_free(r);
    /* The handles still hold a reference, so 'conn' is valid here. */
    if (conn->closing)
        return;
    if (status < 0) {
        ag__http_conn_close(conn);
        return;
    }
    conn->timer_force = true;
    conn_sync_reading(conn);
}

/* Write the response of 'r', already removed from the queue; frees 'r'. */
static void
conn_write_response(struct ag_http_conn *conn, struct ag_http_sreq *r)
{
    uv_buf_t bufs[2];
    unsigned nbufs = ag__http_resp_build(r, bufs);
    uv_stream_t *s = (uv_stream_t *)&conn->tcp;
    unsigned first = 0;
    bool done = false;
    bool failed = false;
    if (conn->writes_in_flight == 0) {
        int n = uv_try_write(s, bufs, nbufs);
        if (n == UV_EAGAIN || n == UV_ENOSYS)
            n = 0;
        if (n < 0) {
            failed = true;
        } else {
            size_t left = (size_t)n;
            while (first < nbufs && left >= bufs[first].len) {
                left -= bufs[first].len;
                first++;
            }
            if (first == nbufs) {
                done = true;
            } else {
                bufs[first].base += left;
                bufs[first].len -= left;
            }
        }
    }
    if (!done && !failed) {
        r->wreq.data = r;
        if (uv_write(&r->wreq, s, bufs + first, nbufs - first, on_response_written) != 0)
            failed = true;
        else
            conn->writes_in_flight++;
    }
    ag__http_sreq_complete(r);
    if (done || failed)
        ag__http_sreq_free(r);
    if (failed)
        ag__http_conn_close(conn);
}

static void
on_continue_written(uv_write_t *w, int status)
{
    struct ag_http_conn *conn = w->data;
    conn->cont_busy = false;
    conn->writes_in_flight--;
    if (conn->closing)
        return;
    if (status < 0) {
        ag__http_conn_close(conn);
        return;
    }
    conn_sync_reading(conn);
}

/* Interim "100 Continue" for the request being received. Only called when
 * no earlier response is still owed, so it cannot overtake one. */
static void
conn_send_continue(struct ag_http_conn *conn)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn->cur->need_continue = false;
    if (conn->cont_busy)
        return; /* the client will send the body after its own delay */
    uv_stream_t *s = (uv_stream_t *)&conn->tcp;
    uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
    if (conn->writes_in_flight == 0) {
        int n = uv_try_write(s, &b, 1);
        if (n == (int)b.len)
            return;
        if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
            ag__http_conn_close(conn);
            return;
        }
        if (n > 0) {
            b.base += n;
            b.len -= (size_t)n;
        }
    }
    conn->cont_wreq.data = conn;
    if (uv_write(&conn->cont_wreq, s, &b, 1, on_continue_written) != 0) {
        ag__http_conn_close(conn);
        return;
    }
    conn->cont_busy = true;
    conn->writes_in_flight++;
}

/* Write every answered response at the head of the queue, in order. */
static void
conn_flush(struct ag_http_conn *conn)
{
    if (conn->in_flush)
        return;
    conn->in_flush = true;
    while (!conn->closing && !conn->shutting && conn->qhead != NULL && conn->qhead->answered) {
        struct ag_http_sreq *r = conn->qhead;
        conn->qhead = r->next;
        if (conn->qhead == NULL)
            conn->qtail = NULL;
        conn->nqueued--;
        r->next = NULL;
        /* The last response before a close says so. */
        if (conn->dead && conn->qhead == NULL)
            r->req.close_after = true;
        bool close = r->req.close_after;
        conn_write_response(conn, r);
        if (close && !conn->closing)
            conn_shutdown(conn);
    }
    conn->in_flush = false;
    if (conn->closing || conn->shutting)
        return;
    if (conn->dead && conn->qhead == NULL) {
        conn_shutdown(conn);
        return;
    }
    if (conn->cur != NULL && conn->cur->need_continue && conn->qhead == NULL) {
        conn_send_continue(conn);
        if (conn->closing)
            return;
    }
    conn_sync_reading(conn);
}

void
ag__http_conn_answered(struct ag_http_sreq *r)
{
    struct ag_http_conn *conn = r->conn;
    if (conn->qhead == r)
        conn_flush(conn);
}

/* Answer with a problem+json written by the server, after any response
 * still owed, then close. No further request is parsed. */
static void
conn_fail(struct ag_http_conn *conn, int status, const char *detail)
{
    if (conn->closing || conn->shutting)
        return;
    struct ag_http_server *srv = conn->srv;
    if (status == 408)
        srv->stats.timeouts++;
    else if (status != 503)
        srv->stats.protocol_errors++;
    struct ag_http_sreq *r = sreq_new(conn);
    /* Keep the path of the request being read, if any, for "instance". */
    struct ag_str path = AG_STR_NULL;
    r->req.start_ns = ag_time_mono_ns();
    if (conn->cur != NULL && conn->cur != r && conn->cur->req.path.len > 0) {
        struct ag_http_req *cur = &conn->cur->req;
        path.len = cur->path.len;
        path.ptr = ag_pool_strndup(r->req.pool, cur->path.ptr, path.len);
        r->req.path = path;
        r->req.method = cur->method;
        r->req.method_name =
            ag_str_make(ag_pool_strndup(r->req.pool, cur->method_name.ptr, cur->method_name.len),
                        cur->method_name.len);
        r->req.version_minor = cur->version_minor;
        if (cur->start_ns != 0)
            r->req.start_ns = cur->start_ns;
    }
    conn_drop_partial(conn);
    conn->dead = true;
    char *rid = ag_pool_alloc(r->req.pool, AG_UUID_STRLEN + 1);
    ag_uuid7(rid);
    r->req.error_request_id = rid;
    r->internal = true;
    r->req.close_after = true;
    r->req.status = status;
    ag_http_resp_header(&r->req, "X-Request-ID", rid);
    r->ctype = "application/problem+json";
    r->resp_body = ag__http_problem_body(r->req.pool, status, detail, rid, path, &r->resp_len);
    r->answered = true;
    conn_enqueue(conn, r);
    conn_flush(conn);
}

/* Answer 'r', queued and refused by admission, with 503 + Retry-After
 * written by the server; the connection stays open. */
static void
conn_shed(struct ag_http_conn *conn, struct ag_http_sreq *r)
{
    struct ag_http_server *srv = conn->srv;
    /* Whatever the classifier put there is not a context of a dispatched
     * request: on_complete must see it as the server's own answer. */
    r->req.ctx = NULL;
    char *rid = ag_pool_alloc(r->req.pool, AG_UUID_STRLEN + 1);
    ag_uuid7(rid);
    r->req.error_request_id = rid;
    r->internal = true;
    r->req.status = 503;
    ag_http_resp_header(&r->req, "X-Request-ID", rid);
    ag_http_resp_header(&r->req, "Retry-After",
                        ag_pool_printf(r->req.pool, "%u", (unsigned)srv->cfg.retry_after_s));
    r->ctype = "application/problem+json";
    r->resp_body = ag__http_problem_body(r->req.pool, 503,
                                         "the server is overloaded; retry after the time given",
                                         rid, r->req.path, &r->resp_len);
    r->answered = true;
    conn_flush(conn);
}

/* ---- Head screening ---- */

/* Screen the bytes of a request head before http-parser sees them, for what
 * it accepts or cannot measure: obs-fold (also right after the request
 * line), whitespace before a colon, NUL, bare CR, a line without a colon,
 * and the size limits. Sets '*out_n' to the bytes screened: all of them, or
 * up to and including the empty line ending the head ('scan.done').
 * Returns 0 or the status to answer, with the detail in 'err_detail'. */
static int
scan_head(struct ag_http_conn *conn, const char *p, size_t len, size_t *out_n)
{
    struct ag_http_scan *s = &conn->scan;
    const struct ag_http_server_config *cfg = &conn->srv->cfg;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!s->started) {
            /* RFC 9112 2.2: ignore empty lines before the request line. */
            if (c == '\r' || c == '\n')
                continue;
            s->started = true;
            if (!conn->head_started) {
                conn->head_started = true;
                conn->timer_force = true;
            }
        }
        if (s->cr) {
            if (c != '\n') {
                conn->err_detail = "bare CR in the request head";
                return 400;
            }
            s->cr = false;
        } else if (c == '\r') {
            s->cr = true;
        } else if (c != '\n') {
            if (c == '\0') {
                conn->err_detail = "NUL byte in the request head";
                return 400;
            }
            if (s->nlines == 0) {
                if (!s->method_end) {
                    if (c == ' ')
                        s->method_end = true;
                    else if (!ag__http_is_tchar(c))
                        s->method_bad = true;
                }
                if (++s->line_len > cfg->max_request_line) {
                    conn->err_detail = "the request line is too long";
                    return 414;
                }
            } else {
                if (s->line_len == 0 && (c == ' ' || c == '\t')) {
                    conn->err_detail = "obsolete line folding in the request head";
                    return 400;
                }
                if (s->in_name) {
                    if (c == ':') {
                        s->in_name = false;
                    } else if (c == ' ' || c == '\t') {
                        conn->err_detail = "whitespace in a header field name";
                        return 400;
                    }
                }
                s->line_len++;
            }
        }
        if (++s->total > cfg->max_header_bytes) {
            conn->err_detail = "the request head is too large";
            return 431;
        }
        if (c != '\n')
            continue;
        /* End of a line. */
        if (s->nlines > 0 && s->line_len == 0) {
            s->done = true;
            *out_n = i + 1;
            return 0;
        }
        if (s->nlines > 0 && s->in_name) {
            conn->err_detail = "header line without a colon";
            return 400;
        }
        s->nlines++;
        s->line_len = 0;
        s->in_name = true;
        if (s->nlines - 1 > cfg->max_headers) {
            conn->err_detail = "too many header fields";
            return 431;
        }
    }
    *out_n = len;
    return 0;
}

/* ---- Parser callbacks ---- */

static int
cb_fail(struct ag_http_conn *conn, int status, const char *detail)
{
    conn->err_status = status;
    conn->err_detail = detail;
    return -1;
}

static int
on_message_begin(http_parser *p)
{
    struct ag_http_conn *conn = p->data;
    ag_buf_reset(&conn->head);
    conn->nhofs = 0;
    conn->url_len = 0;
    conn->last_cb = 0;
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct ag_http_conn *conn = p->data;
    if (ag_buf_append(&conn->head, at, len) != 0)
        return cb_fail(conn, 414, "the request line is too long");
    conn->url_len += len;
    return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct ag_http_conn *conn = p->data;
    if (conn->body_phase)
        return 0; /* chunked trailer fields are read and dropped */
    if (conn->last_cb != 1) {
        if (conn->nhofs == conn->hofs_cap) {
            /* The head screen bounds the count to max_headers + 1. */
            size_t cap = conn->hofs_cap ? conn->hofs_cap * 2 : 16;
            conn->hofs = ag_realloc(conn->hofs, cap * sizeof(*conn->hofs));
            conn->hofs_cap = cap;
        }
        struct ag_http_hofs *h = &conn->hofs[conn->nhofs++];
        h->name_off = conn->head.len;
        h->name_len = 0;
        h->value_off = 0;
        h->value_len = 0;
        conn->last_cb = 1;
    }
    if (ag_buf_append(&conn->head, at, len) != 0)
        return cb_fail(conn, 431, "the request head is too large");
    conn->hofs[conn->nhofs - 1].name_len += len;
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct ag_http_conn *conn = p->data;
    if (conn->body_phase)
        return 0;
    if (conn->nhofs == 0)
        return cb_fail(conn, 400, "header value without a name");
    struct ag_http_hofs *h = &conn->hofs[conn->nhofs - 1];
    if (conn->last_cb != 2) {
        h->value_off = conn->head.len;
        h->value_len = 0;
        conn->last_cb = 2;
    }
    if (ag_buf_append(&conn->head, at, len) != 0)
        return cb_fail(conn, 431, "the request head is too large");
    h->value_len += len;
    return 0;
}

static enum ag_http_method
map_method(unsigned m)
{
    switch (m) {
    case HTTP_GET: return AG_HTTP_GET;
    case HTTP_HEAD: return AG_HTTP_HEAD;
    case HTTP_POST: return AG_HTTP_POST;
    case HTTP_PUT: return AG_HTTP_PUT;
    case HTTP_PATCH: return AG_HTTP_PATCH;
    case HTTP_DELETE: return AG_HTTP_DELETE;
    case HTTP_OPTIONS: return AG_HTTP_OPTIONS;
    default: return AG_HTTP_OTHER;
    }
}

/* Next comma-separated element of '*list', trimmed; false at the end. */
static bool
next_token(struct ag_str *list, struct ag_str *out)
{
    if (list->len == 0)
        return false;
    const char *comma = memchr(list->ptr, ',', list->len);
    size_t n = comma ? (size_t)(comma - list->ptr) : list->len;
    *out = ag_str_trim(ag_str_make(list->ptr, n));
    list->ptr += comma ? n + 1 : n;
    list->len -= comma ? n + 1 : n;
    return true;
}

/* Split the request target into path and query (RFC 9112 3.2). */
static int
set_target(struct ag_http_conn *conn, struct ag_http_req *req)
{
    struct ag_str t = req->target;
    if (t.len > 0 && t.ptr[0] == '/') {
        if (memchr(t.ptr, '#', t.len) != NULL)
            return cb_fail(conn, 400, "fragment in the request target");
        const char *q = memchr(t.ptr, '?', t.len);
        if (q == NULL) {
            req->path = t;
            req->query = ag_str_make(t.ptr + t.len, 0);
        } else {
            req->path = ag_str_make(t.ptr, (size_t)(q - t.ptr));
            req->query = ag_str_make(q + 1, t.len - req->path.len - 1);
        }
        return 0;
    }
    if (t.len == 1 && t.ptr[0] == '*') {
        if (req->method != AG_HTTP_OPTIONS)
            return cb_fail(conn, 400, "asterisk-form target outside OPTIONS");
        req->path = t;
        req->query = ag_str_make(t.ptr + 1, 0);
        return 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (t.len > UINT16_MAX || http_parser_parse_url(t.ptr, t.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST))) {
        return cb_fail(conn, 400, "the request target is not origin-form or absolute-form");
    }
    struct ag_str scheme =
        ag_str_make(t.ptr + u.field_data[UF_SCHEMA].off, u.field_data[UF_SCHEMA].len);
    if (!ag_str_case_eq_cstr(scheme, "http") && !ag_str_case_eq_cstr(scheme, "https"))
        return cb_fail(conn, 400, "unsupported scheme in the request target");
    if (u.field_set & ((1 << UF_FRAGMENT) | (1 << UF_USERINFO)))
        return cb_fail(conn, 400, "fragment or userinfo in the request target");
    if (u.field_set & (1 << UF_PATH))
        req->path = ag_str_make(t.ptr + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    else
        req->path = AG_STR_LIT("/");
    if (u.field_set & (1 << UF_QUERY))
        req->query = ag_str_make(t.ptr + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    else
        req->query = ag_str_make(t.ptr + t.len, 0);
    return 0;
}

/* Framing and header checks of RFC 9112 that http-parser 2.9.4 leaves to
 * us: version, Host, Content-Length, Transfer-Encoding, Connection, Expect.
 * Sets close_after and need_continue, reserves the body. */
static int
check_head(struct ag_http_conn *conn, struct ag_http_sreq *r)
{
    http_parser *p = &conn->parser;
    struct ag_http_req *req = &r->req;
    const struct ag_http_server_config *cfg = &conn->srv->cfg;
    if (p->http_major != 1)
        return cb_fail(conn, 505, "only HTTP/1.x is supported");
    /* RFC 9110 2.5: a higher minor version (HTTP/1.7) is served as the
     * highest this server implements. */
    if (p->http_minor > 1)
        p->http_minor = 1;
    if (p->method == HTTP_CONNECT)
        return cb_fail(conn, 400, "CONNECT is not supported");
    if (set_target(conn, req) != 0)
        return -1;
    size_t nhost = 0;
    size_t ncl = 0;
    size_t nte = 0;
    size_t ncodings = 0;
    bool chunked_last = false;
    bool chunked_seen = false;
    bool conn_close = false;
    bool conn_keep = false;
    bool expect = false;
    uint64_t cl = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct ag_str n = req->headers[i].name;
        struct ag_str v = req->headers[i].value;
        struct ag_str tok;
        if (ag_str_case_eq_cstr(n, "host")) {
            nhost++;
        } else if (ag_str_case_eq_cstr(n, "content-length")) {
            ncl++;
            if (ag_str_to_u64(v, UINT64_MAX / 2, &cl) != 0)
                return cb_fail(conn, 400, "invalid Content-Length");
        } else if (ag_str_case_eq_cstr(n, "transfer-encoding")) {
            nte++;
            while (next_token(&v, &tok)) {
                if (tok.len == 0)
                    continue;
                if (chunked_last)
                    chunked_seen = true; /* chunked was not the final coding */
                chunked_last = ag_str_case_eq_cstr(tok, "chunked");
                ncodings++;
            }
        } else if (ag_str_case_eq_cstr(n, "connection")) {
            while (next_token(&v, &tok)) {
                if (ag_str_case_eq_cstr(tok, "close"))
                    conn_close = true;
                else if (ag_str_case_eq_cstr(tok, "keep-alive"))
                    conn_keep = true;
            }
        } else if (ag_str_case_eq_cstr(n, "expect")) {
            expect = ag_str_case_eq_cstr(v, "100-continue");
        }
    }
    if (ncl > 0 && nte > 0)
        return cb_fail(conn, 400, "both Content-Length and Transfer-Encoding");
    if (ncl > 1)
        return cb_fail(conn, 400, "repeated Content-Length");
    if (nte > 0) {
        if (p->http_minor == 0)
            return cb_fail(conn, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (!chunked_last || chunked_seen)
            return cb_fail(conn, 400, "Transfer-Encoding must end with a single chunked");
        if (ncodings > 1)
            return cb_fail(conn, 501, "transfer codings other than chunked are not supported");
    }
    if (p->http_minor == 1 && nhost != 1)
        return cb_fail(conn, 400, nhost ? "more than one Host" : "missing Host");
    if (nhost > 1)
        return cb_fail(conn, 400, "more than one Host");
    bool keep = p->http_minor == 1 ? !conn_close : (conn_keep && !conn_close);
    req->close_after = !(keep && http_should_keep_alive(p));
    if (nte == 0 && cl > cfg->max_body_bytes)
        return cb_fail(conn, 413, "the request body is too large");
    bool has_body = nte > 0 || cl > 0;
    if (nte == 0 && cl > 0)
        ag_buf_reserve(&r->body, (size_t)cl);
    r->need_continue = has_body && expect && p->http_minor == 1;
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    struct ag_http_conn *conn = p->data;
    if (!conn->scan.done)
        return cb_fail(conn, 400, "malformed request head");
    struct ag_http_sreq *r = sreq_new(conn);
    struct ag_http_req *req = &r->req;
    conn->cur = r;
    /* One copy of the head into the request pool; slices point into it. */
    char *h = ag_pool_alloc(req->pool, conn->head.len + 1);
    if (conn->head.len > 0)
        memcpy(h, conn->head.data, conn->head.len);
    h[conn->head.len] = '\0';
    req->target = ag_str_make(h, conn->url_len);
    req->nheaders = conn->nhofs;
    req->headers =
        ag_pool_alloc(req->pool, (conn->nhofs ? conn->nhofs : 1) * sizeof(*req->headers));
    for (size_t i = 0; i < conn->nhofs; i++) {
        const struct ag_http_hofs *o = &conn->hofs[i];
        req->headers[i].name = ag_str_make(h + o->name_off, o->name_len);
        req->headers[i].value = ag_str_trim(ag_str_make(h + o->value_off, o->value_len));
    }
    req->method = map_method(p->method);
    req->method_name = ag_str_from_cstr(http_method_str((enum http_method)p->method));
    req->version_minor = p->http_minor;
    req->start_ns = uv_hrtime();
    if (check_head(conn, r) != 0)
        return -1;
    /* Admission is decided on the head: a shed request's body is read
     * (the connection stays usable) but not kept. */
    if (!ag__http_admit(conn->srv, r))
        r->shed = true;
    conn->body_phase = true;
    conn->head_started = false;
    conn->timer_force = true;
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct ag_http_conn *conn = p->data;
    struct ag_http_sreq *r = conn->cur;
    if (r == NULL)
        return cb_fail(conn, 400, "unexpected body");
    r->need_continue = false;
    if (r->shed)
        return 0;
    if (ag_buf_append(&r->body, at, len) != 0)
        return cb_fail(conn, 413, "the request body is too large");
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    struct ag_http_conn *conn = p->data;
    if (conn->cur == NULL)
        return cb_fail(conn, 400, "malformed request");
    /* Stop the parser here, so the handler runs outside it and the next
     * request's head goes through the screen first. */
    http_parser_pause(p, 1);
    return 0;
}

/* ---- Reading and dispatch ---- */

static void
conn_dispatch(struct ag_http_conn *conn)
{
    struct ag_http_server *srv = conn->srv;
    struct ag_http_sreq *r = conn->cur;
    conn->cur = NULL;
    conn->body_phase = false;
    conn->head_started = false;
    memset(&conn->scan, 0, sizeof(conn->scan));
    r->need_continue = false;
    r->req.body = ag_str_make(r->body.data, r->body.len);
    r->req.id = ++srv->next_req_id;
    if (r->req.close_after || srv->stopping)
        conn->dead = true;
    conn_enqueue(conn, r);
    if (r->shed) {
        conn_shed(conn, r);
        return;
    }
    srv->stats.requests++;
    srv->cfg.handler(&r->req, srv->cfg.udata);
}

static bool
conn_can_parse(const struct ag_http_conn *conn)
{
    return !conn->closing && !conn->dead && conn->nqueued < conn->srv->cfg.max_pipeline;
}

/* Parse and dispatch requests from 'data'; returns the bytes consumed,
 * fewer than 'len' when parsing had to pause or stop. */
static size_t
conn_process(struct ag_http_conn *conn, const char *data, size_t len)
{
    size_t off = 0;
    conn->in_process = true;
    while (off < len && conn_can_parse(conn)) {
        size_t feed = len - off;
        if (!conn->body_phase) {
            int st = scan_head(conn, data + off, len - off, &feed);
            if (st != 0) {
                conn_fail(conn, st, conn->err_detail);
                break;
            }
        }
        conn->err_status = 0;
        conn->err_detail = NULL;
        size_t n = http_parser_execute(&conn->parser, &parser_settings, data + off, feed);
        enum http_errno e = HTTP_PARSER_ERRNO(&conn->parser);
        off += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&conn->parser, 0);
            conn_dispatch(conn);
            continue;
        }
        if (e != HPE_OK || n != feed || (conn->scan.done && !conn->body_phase)) {
            int status = conn->err_status;
            const char *detail = conn->err_detail;
            if (status == 0 && e == HPE_INVALID_METHOD && !conn->scan.method_bad) {
                /* A well-formed method this server does not know (RFC 9110
                 * 9.1; methods are case-sensitive, so "get" is one too). */
                status = 501;
                detail = "the request method is not implemented";
            } else if (status == 0) {
                status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
                detail = e == HPE_OK ? "malformed request" : http_errno_description(e);
            }
            conn_fail(conn, status, detail);
            break;
        }
        if (conn->cur != NULL && conn->cur->need_continue && conn->qhead == NULL)
            conn_send_continue(conn);
    }
    conn->in_process = false;
    return off;
}

static bool
conn_want_read(struct ag_http_conn *conn)
{
    if (conn->closing)
        return false;
    if (conn->shutting)
        return conn->linger;
    if (conn->dead || conn->nqueued >= conn->srv->cfg.max_pipeline)
        return false;
    return uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp) <= AG_HTTP_WRITE_BACKLOG;
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct ag_http_conn *conn = h->data;
    AG_UNUSED(hint);
    /* One buffer per server: libuv calls alloc, read and the read callback
     * in sequence, and the callback consumes or copies what it gets. */
    *buf = uv_buf_init(conn->srv->rbuf, AG_HTTP_READ_BUF);
}

static void
conn_on_eof(struct ag_http_conn *conn)
{
    /* libuv stopped reading by itself. A client may half-close after its
     * last request: answer what was received, then close. */
    conn->reading = false;
    conn->peer_eof = true;
    conn->dead = true;
    conn_drop_partial(conn);
    if (conn->qhead == NULL && conn->writes_in_flight == 0 && !conn->shutting)
        ag__http_conn_close(conn);
    else if (conn->qhead == NULL)
        conn_shutdown(conn);
    else
        conn_sync_reading(conn);
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct ag_http_conn *conn = stream->data;
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && !conn->linger)
            conn_on_eof(conn);
        else
            ag__http_conn_close(conn);
        return;
    }
    if (conn->dead)
        return; /* lingering, or no further request wanted: discard */
    size_t n = (size_t)nread;
    size_t used = conn_process(conn, buf->base, n);
    if (conn->closing)
        return;
    if (used < n && !conn->dead) {
        /* Paused on a full pipeline: keep the rest for later. Reading stops
         * below, so this holds at most one read. */
        if (ag_buf_append(&conn->pending, buf->base + used, n - used) != 0) {
            ag__http_conn_close(conn);
            return;
        }
    }
    conn_sync_reading(conn);
}

/* Start or stop reading to match the state; parse input kept while paused
 * first. Also re-arms the timer. */
static void
conn_sync_reading(struct ag_http_conn *conn)
{
    if (conn->closing || conn->in_process)
        return;
    while (conn->pending.len > 0 && !conn->dead && conn_want_read(conn)) {
        size_t used = conn_process(conn, conn->pending.data, conn->pending.len);
        if (conn->closing)
            return;
        if (conn->dead) {
            ag_buf_reset(&conn->pending);
            break;
        }
        memmove(conn->pending.data, conn->pending.data + used, conn->pending.len - used);
        conn->pending.len -= used;
        conn->pending.data[conn->pending.len] = '\0';
        if (used == 0)
            break;
    }
    bool want = conn_want_read(conn) && conn->pending.len == 0;
    if (want && !conn->reading) {
        if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) != 0) {
            ag__http_conn_close(conn);
            return;
        }
        conn->reading = true;
    } else if (!want && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
    }
    conn_refresh_timer(conn);
}

/* ---- Accept and stop ---- */

void
ag__http_conn_accept(struct ag_http_server *srv)
{
    struct ag_http_conn *conn = ag_calloc(1, sizeof(*conn));
    conn->magic = AG_HTTP_CONN_MAGIC;
    conn->srv = srv;
    conn->refs = 1;
    uv_tcp_init(srv->loop, &conn->tcp);
    uv_timer_init(srv->loop, &conn->timer);
    conn->tcp.data = conn;
    conn->timer.data = conn;
    conn->handles_open = 2;
    conn->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = conn;
    srv->conns = conn;
    ag_buf_init(&conn->head, srv->cfg.max_header_bytes);
    ag_buf_init(&conn->pending, 2 * AG_HTTP_READ_BUF);
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&conn->tcp) != 0) {
        ag__http_conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    struct sockaddr_storage ss;
    int sslen = (int)sizeof(ss);
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &sslen) == 0)
        uv_ip_name((struct sockaddr *)&ss, conn->remote_addr, sizeof(conn->remote_addr));
    if (srv->stats.connections_active >= srv->cfg.max_connections) {
        srv->stats.connections_rejected++;
        conn_fail(conn, 503, "too many connections");
        return;
    }
    conn->counted = true;
    srv->stats.connections_accepted++;
    srv->stats.connections_active++;
    /* The first head must arrive within header_timeout_ms of the accept. */
    conn->head_started = true;
    conn->timer_force = true;
    conn_sync_reading(conn);
}

/* Graceful stop of one connection: no new request; idle ones close now,
 * busy ones after their last response (which says Connection: close). A
 * request partly received counts as busy. */
void
ag__http_conn_stop(struct ag_http_conn *conn)
{
    if (conn->closing || conn->shutting)
        return;
    if (conn->scan.started || conn->cur != NULL || conn->body_phase) {
        /* A request is arriving: it has started, so it is finished and
         * answered (with Connection: close, as conn_dispatch sees the server
         * stopping); its head and body timeouts and the drain bound it. */
        return;
    }
    conn->dead = true;
    conn_drop_partial(conn);
    if (conn->qhead == NULL && conn->writes_in_flight == 0)
        ag__http_conn_close(conn);
    else if (conn->qhead == NULL)
        conn_shutdown(conn);
    else
        conn_sync_reading(conn);
}
