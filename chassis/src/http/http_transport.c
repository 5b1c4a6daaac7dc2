/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 transport of the HTTP client (http_client.c): per host:port pools
 * of keep-alive TCP connections on the client's libuv loop, connection
 * limits with a queue of waiting transfers, asynchronous name resolution
 * with a short cache, one uv_write per request and response parsing with
 * http-parser (HTTP_RESPONSE mode). It moves bytes only: deadlines, retries
 * and breakers stay in http_client.c. Design: docs/internals/http_client.md. */
#include "agora/base.h"

#include <string.h>

#include <http_parser.h>
#include <uv.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "http_client_int.h"

#define HT_LOG            "http_client"
#define HT_READ_BUF       (64 * 1024) /* one read buffer per transport, reused by every read */
#define HT_RESOLVE_TTL_MS 10000       /* how long a resolved name is reused */
#define HT_MAGIC          0x48545250u /* "HTRP" */

enum ht_conn_state {
    HT_CONN_RESOLVING = 0, /* waiting for uv_getaddrinfo */
    HT_CONN_CONNECTING,    /* uv_tcp_connect in flight */
    HT_CONN_ACTIVE,        /* a transfer owns it */
    HT_CONN_IDLE,          /* pooled, reading only to notice a close */
    HT_CONN_CLOSING,       /* uv_close called */
};

struct ht_pool;

struct ag__hc_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;           /* connect timeout, then idle timeout */
    uv_connect_t creq;          /* the connect request */
    uv_write_t wreq;            /* the request being written */
    uv_getaddrinfo_t gai;       /* name resolution */
    struct ag__hc_transport *t; /* owner */
    struct ht_pool *pool;       /* borrowed: pools live until the transport is freed */
    struct ag__hc_conn *prev;   /* in pool->conns */
    struct ag__hc_conn *next;   /*   "  */
    struct ag__hc_conn *inext;  /* in pool->idle (LIFO) */
    struct ag__hc_xfer *x;      /* the transfer using it, or NULL */
    enum ht_conn_state state;
    http_parser parser; /* response parser, reset per request */
    unsigned pending;   /* handles open + resolution in flight */
    unsigned requests;  /* requests started on it */
    bool gai_pending;   /* uv_getaddrinfo not yet called back */
    bool tcp_open;      /* tcp initialised (needs closing) */
    bool writing;       /* the request write has not completed */
    bool park;          /* pool it once the write completes */
    bool msg_done;      /* the response ended (on_message_complete) */
    bool keep_alive;    /* the response allows reuse */
};

struct ht_pool {
    struct ht_pool *next;
    char *host;                 /* as given: IP literal or name */
    int port;                   /* TCP port */
    struct ag__hc_conn *conns;  /* every open connection */
    struct ag__hc_conn *idle;   /* idle connections, most recent first */
    size_t nconns;              /* entries of 'conns' */
    size_t nidle;               /* entries of 'idle' */
    struct sockaddr_storage ss; /* resolved address */
    uint64_t resolved_until_ms; /* 0: nothing cached */
    bool numeric;               /* 'host' is an IP literal ('ss' never expires) */
};

struct ag__hc_transport {
    uint32_t magic;
    uv_loop_t *loop;                    /* borrowed */
    struct ag__hc_transport_config cfg; /* copy */
    struct ht_pool *pools;              /* every host:port used */
    size_t nconns;                      /* connections open or opening, all pools */
    struct ag__hc_xfer *qhead;          /* transfers waiting for a connection, FIFO */
    struct ag__hc_xfer *qtail;
    struct ag__hc_xfer *failed; /* transfers to fail on the next turn */
    uv_timer_t defer;           /* delivers 'failed' */
    unsigned pending;           /* connections not yet freed + the defer timer */
    bool closing;               /* ag__hc_transport_close was called */
    void (*closed_cb)(void *udata);
    void *closed_udata;
    char rbuf[HT_READ_BUF]; /* every read lands here and is parsed at once */
};

static void pump(struct ag__hc_transport *t);
static int xfer_start(struct ag__hc_transport *t, struct ag__hc_xfer *x);
static void on_idle_timer(uv_timer_t *tm);
static void conn_close(struct ag__hc_conn *c);
static void xfer_fail(struct ag__hc_transport *t, struct ag__hc_xfer *x, int err);
static void transport_free(struct ag__hc_transport *t);

/* ---- Queue of waiting transfers ---- */

static void
queue_push(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    x->qnext = NULL;
    x->qprev = t->qtail;
    if (t->qtail != NULL)
        t->qtail->qnext = x;
    else
        t->qhead = x;
    t->qtail = x;
    x->queued = true;
}

static void
queue_remove(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    if (x->qprev != NULL)
        x->qprev->qnext = x->qnext;
    else
        t->qhead = x->qnext;
    if (x->qnext != NULL)
        x->qnext->qprev = x->qprev;
    else
        t->qtail = x->qprev;
    x->qprev = NULL;
    x->qnext = NULL;
    x->queued = false;
}

/* ---- Pools ---- */

static struct ht_pool *
pool_get(struct ag__hc_transport *t, const char *host, int port)
{
    for (struct ht_pool *p = t->pools; p != NULL; p = p->next) {
        if (p->port == port && strcmp(p->host, host) == 0)
            return p;
    }
    struct ht_pool *p = ag_calloc(1, sizeof(*p));
    p->host = ag_strdup(host);
    p->port = port;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&p->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&p->ss;
    if (uv_ip4_addr(host, port, in4) == 0 || uv_ip6_addr(host, port, in6) == 0)
        p->numeric = true;
    p->next = t->pools;
    t->pools = p;
    return p;
}

static void
idle_remove(struct ag__hc_conn *c)
{
    struct ht_pool *p = c->pool;
    for (struct ag__hc_conn **pp = &p->idle; *pp != NULL; pp = &(*pp)->inext) {
        if (*pp == c) {
            *pp = c->inext;
            c->inext = NULL;
            p->nidle--;
            return;
        }
    }
}

/* ---- Connections: life cycle ---- */

static void
conn_unref(struct ag__hc_conn *c)
{
    if (--c->pending > 0)
        return;
    struct ht_pool *p = c->pool;
    struct ag__hc_transport *t = c->t;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->nconns--;
    t->nconns--;
    ag_free(c);
    if (--t->pending == 0 && t->closing) {
        transport_free(t);
        return;
    }
    pump(t);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Close 'c' now. Its transfer, if any, must have been detached. */
static void
conn_close(struct ag__hc_conn *c)
{
    if (c->state == HT_CONN_CLOSING)
        return;
    if (c->state == HT_CONN_IDLE)
        idle_remove(c);
    c->state = HT_CONN_CLOSING;
    c->x = NULL;
    if (c->gai_pending)
        uv_cancel((uv_req_t *)&c->gai);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    if (c->tcp_open)
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

/* ---- Response parsing (http-parser callbacks) ---- */

static struct ag__hc_xfer *
parser_xfer(http_parser *hp)
{
    return ((struct ag__hc_conn *)hp->data)->x;
}

/* Drop trailing blanks of the last header value. */
static void
hdr_trim_last(struct ag__hc_xfer *x)
{
    if (x->nhdrs == 0)
        return;
    struct ag__hc_hdr *h = &x->hdrs[x->nhdrs - 1];
    while (h->value_len > 0 && (x->head.data[h->value_off + h->value_len - 1] == ' ' ||
                                x->head.data[h->value_off + h->value_len - 1] == '\t'))
        h->value_len--;
}

static int
on_message_begin(http_parser *hp)
{
    struct ag__hc_xfer *x = parser_xfer(hp);
    /* A new response head: forget an interim (1xx) one. */
    ag_buf_reset(&x->head);
    x->nhdrs = 0;
    x->in_value = false;
    x->in_trailers = false;
    return 0;
}

static int
on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct ag__hc_xfer *x = parser_xfer(hp);
    /* Trailer fields of a chunked body come through the same callbacks;
     * they are dropped (taken as more of the last header's name, they once
     * pointed its value past the head: found by fuzz/fuzz_http_response). */
    if (x->in_trailers)
        return 0;
    if (x->in_value || x->nhdrs == 0) {
        hdr_trim_last(x);
        x->in_value = false;
        if (x->nhdrs >= AG__HC_MAX_RESP_HEADERS) {
            x->err = AG_ETOOBIG;
            return -1;
        }
        if (x->nhdrs == x->hdrs_cap) {
            x->hdrs_cap = x->hdrs_cap ? x->hdrs_cap * 2 : 16;
            x->hdrs = ag_realloc(x->hdrs, x->hdrs_cap * sizeof(*x->hdrs));
        }
        x->hdrs[x->nhdrs++] = (struct ag__hc_hdr){ x->head.len, 0, x->head.len, 0 };
    }
    if (ag_buf_append(&x->head, at, len) != 0) {
        x->err = AG_ETOOBIG;
        return -1;
    }
    struct ag__hc_hdr *h = &x->hdrs[x->nhdrs - 1];
    h->name_len += len;
    h->value_off = x->head.len;
    return 0;
}

static int
on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct ag__hc_xfer *x = parser_xfer(hp);
    if (x->nhdrs == 0 || x->in_trailers)
        return 0;
    x->in_value = true;
    if (ag_buf_append(&x->head, at, len) != 0) {
        x->err = AG_ETOOBIG;
        return -1;
    }
    x->hdrs[x->nhdrs - 1].value_len += len;
    return 0;
}

static int
on_headers_complete(http_parser *hp)
{
    struct ag__hc_conn *c = hp->data;
    struct ag__hc_xfer *x = c->x;
    hdr_trim_last(x);
    x->in_value = false;
    x->in_trailers = true;
    x->status = (int)hp->status_code;
    /* RFC 9110 15: a status is 100-599; http-parser takes any 3 digits
     * ("099" was found by fuzz/fuzz_http_response). Anything else is a
     * broken upstream: the transfer fails. */
    if (hp->status_code < 100 || hp->status_code > 599)
        return -1;
    if (hp->status_code >= 100 && hp->status_code < 200)
        return 0; /* interim: no body, another head follows */
    if (x->is_head)
        return 1; /* a response to HEAD has no body, whatever it announces */
    ag_buf_reset(&x->body);
    if ((hp->flags & F_CHUNKED) == 0 && hp->content_length != ULLONG_MAX &&
        hp->content_length > 0) {
        /* Reserve the whole body once: no copy while it grows. */
        if (hp->content_length > x->body.max) {
            x->err = AG_ETOOBIG;
            return -1;
        }
        if (ag_buf_reserve(&x->body, (size_t)hp->content_length) != 0) {
            x->err = AG_ETOOBIG;
            return -1;
        }
    }
    return 0;
}

static int
on_body(http_parser *hp, const char *at, size_t len)
{
    struct ag__hc_xfer *x = parser_xfer(hp);
    if (ag_buf_append(&x->body, at, len) != 0) {
        x->err = AG_ETOOBIG;
        return -1;
    }
    return 0;
}

static int
on_message_complete(http_parser *hp)
{
    struct ag__hc_conn *c = hp->data;
    if (hp->status_code >= 100 && hp->status_code < 200 && hp->status_code != 101)
        return 0; /* 1xx skipped: the real response follows */
    c->msg_done = true;
    c->keep_alive = http_should_keep_alive(hp) != 0;
    /* Stop here: bytes after the response mean the connection cannot be
     * reused (the parser is paused, the rest is left unparsed). */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings ht_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- Connections: I/O ---- */

/* Every read of every connection lands in the transport's one buffer: a
 * read callback parses it completely before returning, so nothing in it
 * outlives the callback (http-parser hands out slices that are copied). */
static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ag__hc_conn *c = h->data;
    AG_UNUSED(suggested);
    *buf = uv_buf_init(c->t->rbuf, sizeof(c->t->rbuf));
}

static void
on_idle_timer(uv_timer_t *tm)
{
    struct ag__hc_conn *c = tm->data;
    if (c->state == HT_CONN_IDLE)
        conn_close(c);
}

/* Put 'c' in its pool's idle list (most recent first) with its timeout. */
static void
conn_idle(struct ag__hc_conn *c)
{
    struct ag__hc_transport *t = c->t;
    c->state = HT_CONN_IDLE;
    c->inext = c->pool->idle;
    c->pool->idle = c;
    c->pool->nidle++;
    uv_timer_start(&c->timer, on_idle_timer, t->cfg.idle_timeout_ms, 0);
}

/* The transfer of 'c' ended with 'err' (0: a whole response). Detach it,
 * pool or close the connection, then call back. */
static void
conn_finish(struct ag__hc_conn *c, int err)
{
    struct ag__hc_transport *t = c->t;
    struct ag__hc_xfer *x = c->x;
    c->x = NULL;
    x->conn = NULL;
    bool reuse =
        err == 0 && c->keep_alive && !t->closing && c->pool->nidle < t->cfg.max_host_connections;
    if (reuse && c->writing)
        c->park = true; /* its write request is still owned by libuv */
    else if (reuse)
        conn_idle(c);
    else
        conn_close(c);
    x->cb(x, err);
    /* A waiter may take the connection the callback did not reuse. */
    pump(t);
}

/* A transport error on the active transfer of 'c'. A reused connection
 * that died before any response byte is the keep-alive race (the server
 * closed it while idle): the request is sent once more on a fresh
 * connection when that is safe. */
static void
conn_error(struct ag__hc_conn *c, int err, bool write_failed)
{
    struct ag__hc_transport *t = c->t;
    struct ag__hc_xfer *x = c->x;
    bool dead_reused = c->requests > 1 && !x->got_bytes && !x->resent;
    c->x = NULL;
    x->conn = NULL;
    conn_close(c);
    if (dead_reused && (x->idempotent || write_failed) && !t->closing) {
        x->resent = true;
        x->fresh_only = true;
        int rc = xfer_start(t, x);
        if (rc == 0)
            return;
        err = rc;
    }
    x->cb(x, err);
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct ag__hc_conn *conn = s->data;
    if (nread == 0)
        return;
    if (conn->state == HT_CONN_IDLE || conn->x == NULL) {
        /* Bytes or EOF on an idle connection: it cannot be reused. */
        if (conn->state != HT_CONN_CLOSING)
            conn_close(conn);
        return;
    }
    struct ag__hc_xfer *x = conn->x;
    if (nread < 0) {
        if (nread == UV_EOF) {
            /* The end of a close-delimited body ends the message. */
            http_parser_execute(&conn->parser, &ht_settings, NULL, 0);
            if (conn->msg_done) {
                conn->keep_alive = false;
                conn_finish(conn, 0);
                return;
            }
        }
        conn_error(conn, AG_EIO, false);
        return;
    }
    x->got_bytes = true;
    size_t n = http_parser_execute(&conn->parser, &ht_settings, buf->base, (size_t)nread);
    if (conn->msg_done) {
        if (n < (size_t)nread)
            conn->keep_alive = false; /* extra bytes after the response */
        conn_finish(conn, 0);
        return;
    }
    if (x->err != 0) {
        int err = x->err;
        x->err = 0;
        conn->x = NULL;
        x->conn = NULL;
        conn_close(conn);
        x->cb(x, err);
        return;
    }
    if (HTTP_PARSER_ERRNO(&conn->parser) != HPE_OK) {
        AG_LOGD(HT_LOG, "bad response from %s:%d: %s", conn->pool->host, conn->pool->port,
                http_errno_description(HTTP_PARSER_ERRNO(&conn->parser)));
        conn->x = NULL;
        x->conn = NULL;
        conn_close(conn);
        x->cb(x, AG_EIO);
    }
}

static void
on_written(uv_write_t *w, int status)
{
    struct ag__hc_conn *c = w->data;
    c->writing = false;
    if (status == UV_ECANCELED || c->state == HT_CONN_CLOSING)
        return;
    if (c->park) {
        /* The response came first; now the connection is free. */
        c->park = false;
        if (status < 0) {
            conn_close(c);
            return;
        }
        conn_idle(c);
        pump(c->t);
        return;
    }
    if (status < 0 && c->x != NULL) {
        conn_error(c, AG_EIO, !c->x->got_bytes);
        return;
    }
}

/* Send the request of 'x' on the connected 'c'. */
static int
conn_send(struct ag__hc_conn *c, struct ag__hc_xfer *x)
{
    c->state = HT_CONN_ACTIVE;
    c->x = x;
    x->conn = c;
    c->requests++;
    c->msg_done = false;
    c->keep_alive = false;
    x->got_bytes = false;
    x->err = 0;
    x->status = 0;
    x->nhdrs = 0;
    x->in_value = false;
    x->in_trailers = false;
    ag_buf_reset(&x->head);
    ag_buf_reset(&x->body);
    uv_timer_stop(&c->timer);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    /* Write at once when the socket takes it all (nearly always): a
     * uv_write that completes at once still costs an epoll_ctl on the next
     * loop turn, when libuv stops watching for POLLOUT again (bench/gateway:
     * one epoll_ctl per proxied request). The rest, if any, by uv_write. */
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t bufs[AG_ARRAY_SIZE(x->req)];
    size_t nbufs = x->nreq;
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++) {
        bufs[i] = x->req[i];
        total += bufs[i].len;
    }
    size_t first = 0;
    int n = uv_try_write(s, bufs, (unsigned)nbufs);
    if (n >= 0 && (size_t)n == total)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    for (size_t done = n > 0 ? (size_t)n : 0; done > 0;) {
        if (done >= bufs[first].len) {
            done -= bufs[first].len;
            first++;
        } else {
            bufs[first].base += done;
            bufs[first].len -= done;
            done = 0;
        }
    }
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, s, bufs + first, (unsigned)(nbufs - first), on_written);
    if (rc != 0)
        return rc;
    c->writing = true;
    return 0;
}

static void
on_connect_timer(uv_timer_t *tm)
{
    struct ag__hc_conn *c = tm->data;
    struct ag__hc_xfer *x = c->x;
    if (x == NULL)
        return;
    AG_LOGD(HT_LOG, "connect to %s:%d timed out", c->pool->host, c->pool->port);
    c->x = NULL;
    x->conn = NULL;
    conn_close(c);
    x->cb(x, AG_ETIMEDOUT);
}

static void
on_connected(uv_connect_t *req, int status)
{
    struct ag__hc_conn *c = req->data;
    if (status == UV_ECANCELED || c->state == HT_CONN_CLOSING)
        return;
    struct ag__hc_xfer *x = c->x;
    if (status < 0) {
        AG_LOGD(HT_LOG, "cannot connect to %s:%d: %s", c->pool->host, c->pool->port,
                uv_strerror(status));
        x->refused = status == UV_ECONNREFUSED;
        c->x = NULL;
        x->conn = NULL;
        conn_close(c);
        x->cb(x, AG_EIO);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = conn_send(c, x);
    if (rc != 0) {
        c->x = NULL;
        x->conn = NULL;
        conn_close(c);
        x->cb(x, AG_EIO);
    }
}

/* Connect 'c' to its pool's resolved address. */
static int
conn_connect(struct ag__hc_conn *c)
{
    struct ag__hc_transport *t = c->t;
    int rc = uv_tcp_init(t->loop, &c->tcp);
    if (rc != 0)
        return rc;
    c->tcp_open = true;
    c->pending++;
    c->tcp.data = c;
    c->state = HT_CONN_CONNECTING;
    c->creq.data = c;
    return uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&c->pool->ss, on_connected);
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ag__hc_conn *c = req->data;
    c->gai_pending = false;
    struct ht_pool *p = c->pool;
    if (c->state == HT_CONN_CLOSING) {
        uv_freeaddrinfo(res);
        conn_unref(c);
        return;
    }
    struct ag__hc_xfer *x = c->x;
    int rc = status;
    if (rc == 0) {
        /* The first IPv4 address, else the first IPv6 one ("localhost"
         * lists ::1 first, while most of our servers bind 127.0.0.1). */
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
            if (ai->ai_family == AF_INET6 && pick == NULL)
                pick = ai;
        }
        rc = UV_EAI_NONAME;
        if (pick != NULL && pick->ai_addrlen <= sizeof(p->ss)) {
            memset(&p->ss, 0, sizeof(p->ss));
            memcpy(&p->ss, pick->ai_addr, pick->ai_addrlen);
            if (pick->ai_family == AF_INET)
                ((struct sockaddr_in *)&p->ss)->sin_port = htons((uint16_t)p->port);
            else
                ((struct sockaddr_in6 *)&p->ss)->sin6_port = htons((uint16_t)p->port);
            p->resolved_until_ms = ag_time_mono_ms() + HT_RESOLVE_TTL_MS;
            rc = 0;
        }
    }
    uv_freeaddrinfo(res);
    conn_unref(c); /* the resolution's reference */
    if (rc == 0)
        rc = conn_connect(c);
    if (rc != 0) {
        AG_LOGD(HT_LOG, "cannot resolve or connect '%s': %s", p->host, uv_strerror(rc));
        c->x = NULL;
        x->conn = NULL;
        conn_close(c);
        x->cb(x, AG_EIO);
    }
}

/* Open a new connection of 'p' for 'x'. Returns 0 (the outcome comes
 * through x->cb later) or a negative libuv code. */
static int
conn_open(struct ag__hc_transport *t, struct ht_pool *p, struct ag__hc_xfer *x)
{
    struct ag__hc_conn *c = ag_calloc(1, sizeof(*c));
    c->t = t;
    c->pool = p;
    c->tcp.data = c;
    c->x = x;
    x->conn = c;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    c->pending = 1;
    c->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    t->nconns++;
    t->pending++;
    uint64_t cto = x->connect_timeout_ms ? x->connect_timeout_ms : t->cfg.connect_timeout_ms;
    uv_timer_start(&c->timer, on_connect_timer, cto, 0);
    int rc;
    if (p->numeric || ag_time_mono_ms() < p->resolved_until_ms) {
        rc = conn_connect(c);
    } else {
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        c->state = HT_CONN_RESOLVING;
        c->gai.data = c;
        rc = uv_getaddrinfo(t->loop, &c->gai, on_resolved, p->host, NULL, &hints);
        if (rc == 0) {
            c->gai_pending = true;
            c->pending++;
        }
    }
    if (rc != 0) {
        c->x = NULL;
        x->conn = NULL;
        conn_close(c);
    }
    return rc;
}

/* ---- Dispatch ---- */

/* Make room for one connection under the total limit by closing an idle
 * connection of another pool. Returns whether one was closed (the room
 * appears when its close completes). */
static bool
evict_idle(struct ag__hc_transport *t, const struct ht_pool *except)
{
    for (struct ht_pool *p = t->pools; p != NULL; p = p->next) {
        if (p != except && p->idle != NULL) {
            conn_close(p->idle);
            return true;
        }
    }
    return false;
}

/* Try to start 'x' now: on an idle connection of its pool, or on a new one
 * within the limits. Returns 1 when started, 0 when it must wait, or a
 * negative libuv code. */
static int
try_start(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    struct ht_pool *p = pool_get(t, x->host, x->port);
    if (!x->fresh_only) {
        while (p->idle != NULL) {
            struct ag__hc_conn *c = p->idle;
            p->idle = c->inext;
            c->inext = NULL;
            p->nidle--;
            if (conn_send(c, x) == 0)
                return 1;
            c->x = NULL;
            x->conn = NULL;
            conn_close(c);
        }
    }
    if (p->nconns >= t->cfg.max_host_connections) {
        if (p->idle != NULL) {
            conn_close(p->idle); /* a fresh connection is wanted: make room */
        }
        return 0;
    }
    if (t->nconns >= t->cfg.max_total_connections) {
        evict_idle(t, NULL);
        return 0;
    }
    int rc = conn_open(t, p, x);
    return rc == 0 ? 1 : rc;
}

static void
on_defer(uv_timer_t *tm)
{
    struct ag__hc_transport *t = tm->data;
    while (t->failed != NULL) {
        struct ag__hc_xfer *x = t->failed;
        t->failed = x->qnext;
        x->qnext = NULL;
        x->failing = false;
        x->cb(x, x->fail_err);
    }
}

/* Fail 'x' on the next loop turn (never inside the caller's stack). */
static void
xfer_fail(struct ag__hc_transport *t, struct ag__hc_xfer *x, int err)
{
    x->fail_err = err;
    x->failing = true;
    x->qnext = t->failed;
    t->failed = x;
    uv_timer_start(&t->defer, on_defer, 0, 0);
}

/* Start the waiting transfers that can start now, in order. */
static void
pump(struct ag__hc_transport *t)
{
    if (t->closing)
        return;
    struct ag__hc_xfer *x = t->qhead;
    while (x != NULL) {
        struct ag__hc_xfer *next = x->qnext;
        queue_remove(t, x);
        int rc = try_start(t, x);
        if (rc == 0) {
            /* Put it back where it was. */
            x->qnext = next;
            x->qprev = next != NULL ? next->qprev : t->qtail;
            if (x->qprev != NULL)
                x->qprev->qnext = x;
            else
                t->qhead = x;
            if (next != NULL)
                next->qprev = x;
            else
                t->qtail = x;
            x->queued = true;
        } else if (rc < 0) {
            xfer_fail(t, x, AG_EIO);
        }
        x = next;
    }
}

/* ---- API ---- */

int
ag__hc_transport_new(uv_loop_t *loop, const struct ag__hc_transport_config *cfg,
                     struct ag__hc_transport **out_t)
{
    struct ag__hc_transport *t = ag_calloc(1, sizeof(*t));
    t->magic = HT_MAGIC;
    t->loop = loop;
    t->cfg = *cfg;
    if (t->cfg.max_host_connections == 0)
        t->cfg.max_host_connections = 1;
    if (t->cfg.max_total_connections == 0)
        t->cfg.max_total_connections = 1;
    if (t->cfg.idle_timeout_ms == 0)
        t->cfg.idle_timeout_ms = AG__HC_IDLE_TIMEOUT_MS;
    uv_timer_init(loop, &t->defer);
    t->defer.data = t;
    t->pending = 1;
    *out_t = t;
    return 0;
}

/* Start 'x' now or queue it; a failure to open a connection is delivered
 * on the next loop turn. */
static int
xfer_start(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    x->conn = NULL;
    x->queued = false;
    x->failing = false;
    if (t->qhead == NULL) {
        int rc = try_start(t, x);
        if (rc > 0)
            return 0;
        if (rc < 0) {
            AG_LOGD(HT_LOG, "cannot open a connection to %s:%d: %s", x->host, x->port,
                    uv_strerror(rc));
            xfer_fail(t, x, AG_EIO);
            return 0;
        }
        queue_push(t, x);
        return 0;
    }
    /* Earlier waiters go first; the pass may start this one too (another
     * host:port, or room that appeared). */
    queue_push(t, x);
    pump(t);
    return 0;
}

int
ag__hc_xfer_start(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    AG_CHECK_MAGIC(t, HT_MAGIC);
    if (t->closing)
        return AG_ECLOSED;
    x->resent = false;
    x->fresh_only = false;
    x->refused = false;
    return xfer_start(t, x);
}

void
ag__hc_xfer_abort(struct ag__hc_transport *t, struct ag__hc_xfer *x)
{
    AG_CHECK_MAGIC(t, HT_MAGIC);
    if (x->queued) {
        queue_remove(t, x);
    } else if (x->failing) {
        for (struct ag__hc_xfer **pp = &t->failed; *pp != NULL; pp = &(*pp)->qnext) {
            if (*pp == x) {
                *pp = x->qnext;
                break;
            }
        }
        x->failing = false;
        x->qnext = NULL;
    } else if (x->conn != NULL) {
        struct ag__hc_conn *c = x->conn;
        c->x = NULL;
        x->conn = NULL;
        conn_close(c);
    }
}

void
ag__hc_transport_stats(const struct ag__hc_transport *t, size_t *out_conns, size_t *out_idle)
{
    size_t idle = 0;
    for (const struct ht_pool *p = t->pools; p != NULL; p = p->next)
        idle += p->nidle;
    *out_conns = t->nconns;
    *out_idle = idle;
}

/* Free the pools and the transport once every connection is gone, then
 * call back. */
static void
transport_free(struct ag__hc_transport *t)
{
    while (t->pools != NULL) {
        struct ht_pool *p = t->pools;
        t->pools = p->next;
        ag_free(p->host);
        ag_free(p);
    }
    void (*cb)(void *) = t->closed_cb;
    void *udata = t->closed_udata;
    t->magic = 0;
    ag_free(t);
    if (cb != NULL)
        cb(udata);
}

static void
on_defer_closed(uv_handle_t *h)
{
    struct ag__hc_transport *t = h->data;
    if (--t->pending == 0)
        transport_free(t);
}

void
ag__hc_transport_close(struct ag__hc_transport *t, void (*cb)(void *udata), void *udata)
{
    AG_CHECK_MAGIC(t, HT_MAGIC);
    if (t->closing)
        AG_BUG("http transport closed twice");
    if (t->qhead != NULL || t->failed != NULL)
        AG_BUG("http transport closed with transfers pending");
    t->closing = true;
    t->closed_cb = cb;
    t->closed_udata = udata;
    for (struct ht_pool *p = t->pools; p != NULL; p = p->next) {
        for (struct ag__hc_conn *c = p->conns; c != NULL; c = c->next) {
            if (c->x != NULL) {
                c->x->conn = NULL;
                c->x = NULL;
            }
            conn_close(c);
        }
    }
    uv_close((uv_handle_t *)&t->defer, on_defer_closed);
}
