/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 server on a libuv loop with http-parser: keep-alive, pipelining
 * (responses leave in request order), chunked request bodies, HEAD, limits
 * and timeouts so that a slow, silent or hostile client cannot hold the
 * server, and strict rejection (400 + close) of requests that are ambiguous
 * on the wire (RFC 9112 sections 3.2, 5.1, 6.1, 6.3).
 *
 * One server belongs to one loop and is used only from that loop's thread.
 * The server calls one handler per complete request (head and whole body
 * read); routing and middleware live above it (router.h, service.h). */
#ifndef AG_HTTP_SERVER_H
#define AG_HTTP_SERVER_H

#include "agora/base.h"
#include "agora/mem.h"
#include "agora/str.h"

#include <uv.h>

enum ag_http_method {
    AG_HTTP_OTHER = 0, /* any other token; see method_name */
    AG_HTTP_GET,
    AG_HTTP_HEAD,
    AG_HTTP_POST,
    AG_HTTP_PUT,
    AG_HTTP_PATCH,
    AG_HTTP_DELETE,
    AG_HTTP_OPTIONS,
};

struct ag_http_header {
    struct ag_str name;  /* as received (case preserved) */
    struct ag_str value; /* leading and trailing whitespace removed */
};

struct ag_http_server;
struct ag_http_conn;

/* One request and the response being built for it. The public fields are
 * read-only for handlers. Everything a request points to lives in 'pool' and
 * stays valid until the response has been sent (ag_http_send*) and, when
 * that happens after the connection closed, until that call returns. */
struct ag_http_req {
    enum ag_http_method method;
    struct ag_str method_name;      /* "GET", "PURGE", ... */
    struct ag_str target;           /* request target exactly as received */
    struct ag_str path;             /* target path, still percent-encoded */
    struct ag_str query;            /* raw query string without '?', or empty */
    int version_minor;              /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    struct ag_http_header *headers; /* 'nheaders' entries in arrival order */
    size_t nheaders;
    struct ag_str body;            /* whole body, de-chunked; empty if none */
    struct ag_pool *pool;          /* request pool; freed after the response */
    const char *remote_addr;       /* peer IP address as text */
    uint64_t start_ns;             /* monotonic time the request head was complete */
    uint64_t id;                   /* per-server sequence number, from 1 */
    struct ag_http_server *server; /* borrowed */

    /* Slots for the layers above the server (router, middleware). */
    void *route;                  /* matched route, opaque to the server */
    const char *route_id;         /* route pattern for metrics/logs, e.g. "/v1/products/{id}" */
    void *ctx;                    /* per-request context of the service layer */
    const char *error_request_id; /* request id of an answer the server wrote itself
                                     (4xx/503 without a handler), else NULL */

    /* Response state, written by the ag_http_resp_* and ag_http_send* calls. */
    int status;                /* status sent, 0 until sent */
    size_t resp_bytes;         /* body bytes sent */
    bool close_after;          /* close the connection after this response */
    struct ag_http_conn *conn; /* owning connection; NULL once it closed */
    void *priv;                /* server-private state */
};

/* Handler for one complete request. It must eventually call exactly one of
 * the ag_http_send* functions for 'req', now or later on the same loop. */
typedef void (*ag_http_handler_fn)(struct ag_http_req *req, void *udata);

/* Called once per request right after its response was queued for writing
 * (req->status and resp_bytes are set), before the request is freed. For a
 * request whose connection closed first (ag_http_req_is_orphan), it is
 * called when the handler sends, with resp_bytes 0, unless the server has
 * been freed by then. Also called for answers the server writes itself
 * (400, 408, 413, 414, 431, 501, 503, 505; 503 also for a request shed by
 * admission, whose body was not kept) with req->ctx NULL and
 * req->error_request_id set; path and method are empty when the request
 * line was not parsed. */
typedef void (*ag_http_complete_fn)(struct ag_http_req *req, void *udata);

/* Admission class of a request, asked once its head is complete (path,
 * method and headers are set; the body is not read yet). */
enum ag_http_admit_class {
    AG_HTTP_ADMIT_LIMITED = 0, /* counted in flight; shed (503) past the limit */
    AG_HTTP_ADMIT_EXEMPT,      /* never shed and not counted: probes, metrics,
                                  control-plane and long-poll routes */
};

/* Classifies 'req' for admission. It may set req->ctx (the server clears it
 * again when it sheds the request, before on_complete). */
typedef enum ag_http_admit_class (*ag_http_admit_fn)(struct ag_http_req *req, void *udata);

/* Request-level admission (see chassis/src/http/README.md). */
enum ag_http_admission {
    AG_HTTP_ADMISSION_ADAPTIVE = 0, /* limit on requests in flight, moved by their latency */
    AG_HTTP_ADMISSION_FIXED,        /* limit fixed at max_inflight */
    AG_HTTP_ADMISSION_OFF,          /* every request is handed to the handler */
};

/* Called when a graceful stop has finished: every connection closed. */
typedef void (*ag_http_stopped_fn)(struct ag_http_server *srv, void *udata);

/* Zero means the default shown. */
struct ag_http_server_config {
    const char *host;           /* "127.0.0.1" */
    int port;                   /* 0: ephemeral, see ag_http_server_port() */
    int backlog;                /* 511 */
    size_t max_request_line;    /* 8 KiB; longer target: 414 */
    size_t max_header_bytes;    /* 16 KiB for request line and headers: 431 */
    size_t max_headers;         /* 100 header fields: 431 */
    size_t max_body_bytes;      /* 1 MiB: 413 */
    size_t max_connections;     /* 1024; past it a new client gets 503 and close */
    size_t max_pipeline;        /* 32 requests queued on one connection */
    uint64_t header_timeout_ms; /* 10 s to receive a whole request head: 408 */
    uint64_t body_timeout_ms;   /* 30 s to receive a whole body: 408 */
    uint64_t idle_timeout_ms;   /* 60 s keep-alive idle: close */
    /* Request-level admission: a request past the limit on requests in
     * flight is answered 503 + Retry-After at once, without its handler. */
    enum ag_http_admission admission; /* adaptive */
    uint32_t max_inflight;            /* 1000: the fixed limit, the adaptive one's ceiling */
    uint32_t min_inflight;            /* 64: the adaptive limit's floor */
    uint64_t queue_delay_ms;          /* 50: latency above the no-load latency tolerated
                                         before the adaptive limit backs off */
    uint32_t retry_after_s;           /* 1: Retry-After of a shed request */
    ag_http_admit_fn admit_class;     /* optional: NULL classifies every request LIMITED */
    ag_http_handler_fn handler;       /* required */
    ag_http_complete_fn on_complete;  /* optional */
    void *udata;                      /* passed to the callbacks */
};

struct ag_http_server_stats {
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over max_connections */
    uint64_t connections_active;
    uint64_t requests;          /* handed to the handler */
    uint64_t protocol_errors;   /* answered by the server itself (4xx) */
    uint64_t timeouts;          /* 408s and idle closes */
    uint64_t requests_admitted; /* handed to the handler under the limit (not exempt) */
    uint64_t requests_shed;     /* answered 503 by admission, handler not run */
    uint64_t inflight;          /* admitted requests not answered yet */
    uint64_t inflight_limit;    /* current limit (max_inflight when fixed, 0 when off) */
    uint64_t latency_floor_us;  /* no-load latency the adaptive limit compares with */
};

/* Create a server listening on cfg->host:cfg->port on 'loop'. Returns 0 or
 * AG_EINVAL (bad config), AG_EIO (bind/listen failed; logged). The config is
 * copied. */
int ag_http_server_new(uv_loop_t *loop, const struct ag_http_server_config *cfg,
                       struct ag_http_server **out_srv);

/* The bound port (useful with port 0). */
int ag_http_server_port(const struct ag_http_server *srv);

void ag_http_server_get_stats(const struct ag_http_server *srv,
                              struct ag_http_server_stats *out_stats);

/* Graceful stop: close the listener, close idle connections, let requests
 * in flight finish and send their responses (with Connection: close), then
 * close. Connections still busy after 'drain_ms' are closed forcibly. 'cb'
 * runs once when every connection is closed; it may run before this returns
 * when nothing is in flight. */
void ag_http_server_stop(struct ag_http_server *srv, uint64_t drain_ms, ag_http_stopped_fn cb,
                         void *udata);

/* Free a stopped server (after its stopped callback). Accepts NULL. */
void ag_http_server_free(struct ag_http_server *srv);

/* ---- Request helpers ---- */

/* First header named 'name' (case-insensitive), or AG_STR_NULL. Borrowed. */
struct ag_str ag_http_req_header(const struct ag_http_req *req, const char *name);

/* True when the client is gone: its connection closed (the response will be
 * dropped) or it half-closed it (sent FIN) before this answer. Holders of
 * long polls check it to let such requests go; a response sent to a
 * half-closed connection is still written. */
bool ag_http_req_is_orphan(const struct ag_http_req *req);

/* ---- Response ----
 * Set headers, then send exactly once. The server adds Date, Content-Length
 * and Connection; handlers must not set those. Name and value are copied and
 * must not contain CR or LF (AG_EINVAL). */
int ag_http_resp_header(struct ag_http_req *req, const char *name, const char *value);

/* Send status, Content-Type and a copy of 'body'. For HEAD, the body is not
 * written but Content-Length reflects it. 'content_type' may be NULL for no
 * body. After this call 'req' must not be used: it may already be freed. */
void ag_http_send(struct ag_http_req *req, int status, const char *content_type, const void *body,
                  size_t len);

/* Same, taking ownership of 'body' (allocated with ag_malloc). */
void ag_http_send_take(struct ag_http_req *req, int status, const char *content_type, char *body,
                       size_t len);

/* Reason phrase for 'status' ("Not Found"); "Unknown" when not known. */
const char *ag_http_reason(int status);

/* The token of method 'm' ("GET", "PATCH"), static storage; NULL for
 * AG_HTTP_OTHER and unknown values, whose token only the request has (its
 * 'method_name'). Any thread. */
const char *ag_http_method_name(enum ag_http_method m);

/* Cached IMF-fixdate for the current second ("Sun, 06 Nov 1994 08:49:37 GMT"). */
const char *ag_http_date_now(void);

#endif /* AG_HTTP_SERVER_H */
