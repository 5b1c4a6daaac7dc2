/* SPDX-License-Identifier: MIT */
/* Internals shared by the four files of the HTTP server, which depend on
 * each other one way only: http_server.c (server lifecycle, request and
 * response API) calls http_conn.c (one client connection: reading,
 * screening and parsing requests, response ordering, timers, the end of a
 * stop), and both call http_resp.c (response headers and heads, the
 * server's own problem bodies, reason phrases, Date) and http_admit.c
 * (request admission: the limit on requests in flight), which call
 * neither. Not public. */
#ifndef AG_HTTP_SERVER_INT_H
#define AG_HTTP_SERVER_INT_H

#include "agora/base.h"
#include "agora/http_server.h"

#include <netinet/in.h>

#include <http_parser.h>
#include <uv.h>

#include "agora/buf.h"
#include "agora/mem.h"
#include "agora/str.h"

/* ---- Defaults and fixed tunables ---- */

#define AG_HTTP_DEF_HOST          "127.0.0.1"
#define AG_HTTP_DEF_BACKLOG       511
#define AG_HTTP_DEF_REQUEST_LINE  (8 * 1024)
#define AG_HTTP_DEF_HEADER_BYTES  (16 * 1024)
#define AG_HTTP_DEF_HEADERS       100
#define AG_HTTP_DEF_BODY          (1024 * 1024)
#define AG_HTTP_DEF_CONNECTIONS   1024
#define AG_HTTP_DEF_PIPELINE      32
#define AG_HTTP_DEF_HEADER_TMO_MS 10000
#define AG_HTTP_DEF_BODY_TMO_MS   30000
#define AG_HTTP_DEF_IDLE_TMO_MS   60000
#define AG_HTTP_DEF_MAX_INFLIGHT  1000
#define AG_HTTP_DEF_MIN_INFLIGHT  64
#define AG_HTTP_DEF_QUEUE_DELAY   50 /* ms */
#define AG_HTTP_DEF_RETRY_AFTER   1  /* s */

#define AG_HTTP_READ_BUF      (64 * 1024)  /* shared read buffer of a server */
#define AG_HTTP_WRITE_BACKLOG (256 * 1024) /* unsent bytes that pause reading */
#define AG_HTTP_LINGER_MS     2000         /* reading after our FIN, before close */
#define AG_HTTP_POOL_BLOCK                                                                         \
    8192 /* first block of a request pool (the gateway's
                                               forward used more than 4 KiB) */

#define AG_HTTP_SERVER_MAGIC 0x48535256u /* "HSRV" */
#define AG_HTTP_CONN_MAGIC   0x48434f4eu /* "HCON" */
#define AG_HTTP_REQ_MAGIC    0x48524551u /* "HREQ" */

/* Problem types of the answers the server writes itself (RFC 9457). */
#define AG_HTTP_PROBLEM_MAP(X)                                                                     \
    X(400, "bad-request")                                                                          \
    X(408, "request-timeout")                                                                      \
    X(413, "payload-too-large")                                                                    \
    X(414, "uri-too-long")                                                                         \
    X(431, "request-header-fields-too-large")                                                      \
    X(501, "not-implemented")                                                                      \
    X(503, "service-unavailable")                                                                  \
    X(505, "http-version-not-supported")

/* The adaptive limit on requests in flight (http_admit.c). */
struct ag_http_limiter {
    double limit;           /* current limit, in [min, max] */
    uint32_t min;           /* floor */
    uint32_t max;           /* ceiling and starting value */
    uint64_t slack_ns;      /* queueing delay tolerated above the floor */
    uint64_t window_ns;     /* start of the current floor window */
    uint64_t floor_cur_ns;  /* smallest latency of this window */
    uint64_t floor_prev_ns; /* and of the previous one */
    uint64_t light;         /* in flight at most: a sample may set the floor */
    uint64_t iv_start_ns;   /* start of the current interval, 0: none */
    uint64_t iv_min_ns;     /* smallest latency answered in it */
    uint64_t iv_samples;    /* answers in it */
};

struct ag_http_server {
    uint32_t magic;
    uv_loop_t *loop;                   /* borrowed */
    uv_tcp_t listener;                 /* closed by ag_http_server_stop */
    uv_timer_t drain_timer;            /* forced close at the end of a stop */
    struct ag_http_server_config cfg;  /* copy with defaults applied */
    char *host;                        /* owned copy of cfg.host */
    int port;                          /* bound port */
    struct ag_http_server_stats stats; /* counters, see the public header */
    struct ag_http_limiter limiter;    /* admission (adaptive mode) */
    struct ag_http_conn *conns;        /* connections whose handles are open */
    struct ag_http_conn *zombies;      /* closed, kept by orphaned requests */
    uint64_t next_req_id;              /* last request id handed out */
    char *rbuf;                        /* read buffer shared by all connections */
    bool stopping;                     /* ag_http_server_stop was called */
    bool listener_closed;              /* its close callback ran */
    bool drain_started;                /* drain_timer initialised */
    bool stop_finishing;               /* drain_timer being closed */
    bool stopped;                      /* stopped callback ran */
    ag_http_stopped_fn stopped_cb;
    void *stopped_udata;
};

/* One response header added by ag_http_resp_header (pool memory). */
struct ag_http_resp_hdr {
    struct ag_http_resp_hdr *next;
    struct ag_str name;
    struct ag_str value;
};

/* Server-private part of a request; lives at the start of the request pool
 * and 'req.priv' points back to it. */
struct ag_http_sreq {
    struct ag_http_req req;         /* public part */
    uint32_t magic;                 /* AG_HTTP_REQ_MAGIC */
    struct ag_http_conn *conn;      /* owner; holds a reference on it */
    struct ag_http_sreq *next;      /* response queue of the connection */
    struct ag_buf body;             /* request body being received */
    struct ag_http_resp_hdr *hdrs;  /* response headers in order */
    struct ag_http_resp_hdr **tail; /* where the next header goes */
    size_t hdrs_len;                /* bytes 'hdrs' take on the wire */
    const char *ctype;              /* response Content-Type or NULL */
    const char *resp_body;          /* response body (pool or owned_body) */
    size_t resp_len;                /* its length (the Content-Length) */
    char *owned_body;               /* body taken by ag_http_send_take */
    uv_write_t wreq;                /* the one write of the response */
    bool internal;                  /* error answer written by the server */
    bool limited;                   /* counted in stats.inflight until answered */
    bool shed;                      /* refused by admission: body discarded, 503 */
    bool need_continue;             /* 100 Continue still to be sent */
    bool answered;                  /* ag_http_send* was called */
    bool orphan;                    /* connection closed before the answer */
    bool completed;                 /* on_complete was called */
};

/* Which deadline the connection timer currently measures. */
enum ag_http_conn_timer {
    AG_HTTP_CT_NONE = 0, /* waiting for a handler: no deadline */
    AG_HTTP_CT_HEADER,   /* whole request head, fixed from its start */
    AG_HTTP_CT_BODY,     /* whole request body, fixed from the end of the head */
    AG_HTTP_CT_IDLE,     /* keep-alive idle between requests */
    AG_HTTP_CT_SEND,     /* no write progress (client not reading) */
    AG_HTTP_CT_LINGER,   /* draining the client after our FIN */
};

/* Byte-level screen of a request head, run before http-parser sees it. */
struct ag_http_scan {
    size_t total;    /* head bytes so far (leading empty lines excluded) */
    size_t line_len; /* bytes of the current line, without CR LF */
    size_t nlines;   /* lines completed; 0 while on the request line */
    bool started;    /* first byte of the request line seen */
    bool cr;         /* previous byte was CR */
    bool in_name;    /* current header line has not reached its colon */
    bool done;       /* empty line seen: the head is complete */
    bool method_end; /* the space after the method seen */
    bool method_bad; /* a byte of the method is not a token character */
};

/* Offsets of one header inside the connection's head buffer. */
struct ag_http_hofs {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
};

struct ag_http_conn {
    uint32_t magic;
    uv_tcp_t tcp;
    uv_timer_t timer;           /* the one timer of the connection */
    uv_shutdown_t shutdown_req; /* graceful close */
    uv_write_t cont_wreq;       /* "100 Continue" write */
    struct ag_http_server *srv; /* NULL once the server was freed */
    struct ag_http_conn *prev;  /* in srv->conns or srv->zombies */
    struct ag_http_conn *next;
    http_parser parser;
    unsigned refs;             /* 1 for the handles + 1 per request */
    unsigned handles_open;     /* tcp and timer until closed */
    unsigned writes_in_flight; /* uv_write calls not yet called back */
    struct ag_http_scan scan;  /* screen of the head being received */
    struct ag_buf head;        /* target and header bytes of that head */
    struct ag_http_hofs *hofs; /* headers found in 'head' */
    size_t nhofs;
    size_t hofs_cap;
    size_t url_len;             /* target bytes at the start of 'head' */
    int last_cb;                /* 1 after a field, 2 after a value */
    int err_status;             /* answer chosen inside a parser callback */
    const char *err_detail;     /* its detail (static string) */
    struct ag_http_sreq *cur;   /* request whose body is being read */
    struct ag_http_sreq *qhead; /* dispatched, not yet written, in order */
    struct ag_http_sreq *qtail;
    size_t nqueued;
    struct ag_buf pending;         /* bytes read but not parsed yet (paused) */
    enum ag_http_conn_timer tkind; /* what 'timer' measures */
    bool timer_force;              /* restart the timer even if 'tkind' stays */
    bool head_started;             /* a request head is being awaited */
    bool body_phase;               /* head complete, body being read */
    bool reading;                  /* uv_read_start is active */
    bool in_process;               /* inside conn_process */
    bool in_flush;                 /* inside conn_flush */
    bool dead;                     /* no further request will be parsed */
    bool shutting;                 /* shutdown requested (last write queued) */
    bool linger;                   /* shutdown done, discarding input */
    bool peer_eof;                 /* client half-closed: unanswered requests count as orphans */
    bool closing;                  /* uv_close called */
    bool counted;                  /* counted in connections_active */
    bool cont_busy;                /* cont_wreq in flight */
    bool zombie;                   /* in srv->zombies */
    char remote_addr[INET6_ADDRSTRLEN];
};

/* ---- http_conn.c: loop thread only ---- */

/* Accept one client from srv->listener: start reading, or answer 503 and
 * close when max_connections are open. Failures close the new handle. */
void ag__http_conn_accept(struct ag_http_server *srv);

/* Graceful stop of 'conn': no further request is parsed; it closes now if
 * idle, else after its last response (sent with Connection: close). */
void ag__http_conn_stop(struct ag_http_conn *conn);

/* Close 'conn' now (idempotent). Requests still with a handler become
 * orphans and keep the memory of 'conn' until answered; the rest is freed.
 * The handles close asynchronously, then the server is told. */
void ag__http_conn_close(struct ag_http_conn *conn);

/* 'r' was answered (not an orphan): write it, and any answered responses
 * behind it, if it is at the head of its connection's queue. May free 'r'. */
void ag__http_conn_answered(struct ag_http_sreq *r);

/* Call on_complete for 'r' once, unless it is an internal answer or the
 * server was freed. */
void ag__http_sreq_complete(struct ag_http_sreq *r);

/* Free 'r' (body, pool) and drop its reference on the connection, which
 * may free the connection. 'r' must not be in a queue. */
void ag__http_sreq_free(struct ag_http_sreq *r);

/* Run the stopped sequence once the server is stopping, the listener is
 * closed and no connection handle is open. Called from the close callbacks
 * of the listener (http_server.c) and of each connection. */
void ag__http_server_check_stopped(struct ag_http_server *srv);

/* ---- http_admit.c: calls neither http_server.c nor http_conn.c ---- */

void ag__http_limiter_init(struct ag_http_limiter *l, uint32_t min, uint32_t max,
                           uint64_t slack_ms);

/* Feed one answered request (its head completed at 'start_ns', answered at
 * 'now_ns', 'inflight' admitted requests including it) to the limit. */
void ag__http_limiter_sample(struct ag_http_limiter *l, uint64_t start_ns, uint64_t now_ns,
                             uint64_t inflight);

/* The no-load latency estimate (0 before any sample). */
uint64_t ag__http_limiter_floor(const struct ag_http_limiter *l);

/* The current limit per the server's mode (0 when admission is off). */
uint64_t ag__http_admit_limit(const struct ag_http_server *srv);

/* Decide for 'r', whose head is complete: true to admit it (counted in
 * flight when LIMITED), false to shed it (counted). */
bool ag__http_admit(struct ag_http_server *srv, struct ag_http_sreq *r);

/* 'r' was answered at 'now_ns' (0: dropped unanswered): if it was counted,
 * uncount it and feed its latency to the limit. 'srv' may be NULL (server
 * freed). Idempotent. */
void ag__http_admit_done(struct ag_http_server *srv, struct ag_http_sreq *r, uint64_t now_ns);

/* ---- http_resp.c: calls neither http_server.c nor http_conn.c ---- */

/* RFC 9110 5.6.2 tchar: a byte of a token (method, header name). */
bool ag__http_is_tchar(unsigned char c);

/* Whether 'v' may be a header field value: no CR or LF. */
bool ag__http_is_field_value(const char *v);

/* Whether a response with 'status' has a body (and a Content-Length). */
static inline bool
ag__http_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Build the response head of 'r' in its pool (status, Date, Content-Type,
 * handler headers, Content-Length, Connection per r->req.close_after) and
 * fill 'bufs': the head, then the body when it is sent. Returns how many
 * are used (1 or 2) and sets r->req.resp_bytes. Loop thread only. */
unsigned ag__http_resp_build(struct ag_http_sreq *r, uv_buf_t bufs[2]);

/* The server's own problem+json body (RFC 9457), with 'request_id' and,
 * when 'instance' is not empty, the request path. Allocated from 'pool';
 * '*out_len' gets its length. */
char *ag__http_problem_body(struct ag_pool *pool, int status, const char *detail,
                            const char *request_id, struct ag_str instance, size_t *out_len);

#endif /* AG_HTTP_SERVER_INT_H */
