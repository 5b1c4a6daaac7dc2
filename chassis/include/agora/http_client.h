/* SPDX-License-Identifier: MIT */
/* HTTP client on libcurl multi, driven by the service's libuv loop: pooled
 * keep-alive connections, a deadline per call, retries with capped
 * exponential backoff and full jitter only when safe (idempotent method or
 * Idempotency-Key), a retry budget so retries cannot multiply load, a
 * circuit breaker per upstream (closed / open / half-open), load balancing
 * over an upstream's instances (round robin, skipping ejected ones, outlier
 * ejection on consecutive failures), and propagation of X-Request-ID and
 * traceparent. One client belongs to one loop; use it from that loop only. */
#ifndef AG_HTTP_CLIENT_H
#define AG_HTTP_CLIENT_H

#include "agora/base.h"
#include "agora/http_server.h"
#include "agora/metrics.h"
#include "agora/str.h"

#include <uv.h>

struct ag_http_client;

/* Zero means the default shown. */
struct ag_http_client_config {
    size_t max_host_connections;  /* 64 pooled connections per host:port */
    size_t max_total_connections; /* 512 */
    uint64_t connect_timeout_ms;  /* 1000 */
    uint64_t timeout_ms;          /* 5000: default whole-call deadline, retries included */
    size_t max_response_bytes;    /* 8 MiB; larger: AG_ETOOBIG */
    int max_retries;              /* 2 (attempts = 1 + retries); -1 for none */
    uint64_t backoff_base_ms;     /* 20: retry n waits rand(0, min(max, base * 2^n)) */
    uint64_t backoff_max_ms;      /* 1000 */
    double retry_budget_ratio;    /* 0.2: retries at most 20% of recent requests... */
    uint32_t retry_budget_min;    /* 10: ...plus this many per 10 s window */
    /* Circuit breaker per upstream (resilience4j semantics, time-based):
     * once breaker_min_calls calls are in the last breaker_window_ms, a
     * failure rate or a slow-call rate at or above its threshold opens it. */
    uint64_t breaker_window_ms;    /* 10000 sliding window of the rates */
    uint32_t breaker_min_calls;    /* 20 calls in the window before a rate counts */
    uint32_t breaker_failure_rate; /* 50 percent of calls failed; above 100: never */
    uint64_t breaker_slow_ms;      /* 2000: a call at least this long is slow */
    uint32_t breaker_slow_rate;    /* 100 percent of calls slow; above 100: never */
    uint64_t breaker_open_ms;      /* 5000 open before half-open */
    uint32_t breaker_probes;       /* 1 good probe closes it (one in flight at a time) */
    uint32_t
        eject_failures; /* 3 consecutive failures (connect error, timeout, 5xx) eject an instance */
    uint64_t eject_ms;  /* 10000 base ejection time, doubled on repeat (capped 8x) */
    uint32_t max_ejected_percent; /* 50: never eject more than this share of an upstream */
};

/* One instance of an upstream. */
struct ag_upstream_instance {
    const char *id;   /* stable instance id (registry), e.g. "catalog-1234" */
    const char *host; /* "127.0.0.1" */
    int port;
    const char *incarnation; /* changes when the instance restarts (registry metadata);
                                NULL: unknown */
};

struct ag_http_client_header {
    const char *name;
    const char *value;
};

/* One call. Everything is copied by ag_http_client_send. */
struct ag_http_client_request {
    const char *method;   /* "GET", "POST", ... */
    const char *upstream; /* upstream name to balance over, or NULL to use 'url' */
    const char *url;      /* with upstream: path and query ("/v1/products?x=1");
                             without: absolute "http://host:port/path" */
    const struct ag_http_client_header *headers; /* extra request headers */
    size_t nheaders;
    const void *body;
    size_t body_len;
    uint64_t timeout_ms;     /* whole-call deadline including retries; 0: client default */
    int max_retries;         /* -1: none; 0: client default; >0: this many */
    bool force_idempotent;   /* allow retries for a non-idempotent method (caller knows) */
    const char *request_id;  /* sent as X-Request-ID when not NULL */
    const char *traceparent; /* sent as traceparent when not NULL */
};

/* The outcome, valid only during the callback. */
struct ag_http_client_response {
    int err;    /* 0 when an HTTP response arrived (any status); else AG_ETIMEDOUT
                      (deadline), AG_EUNAVAIL (breaker open, no instance, or budget),
                      AG_EIO (connect/transport failure), AG_ETOOBIG (response too big),
                      AG_ECLOSED (client closing) */
    int status; /* HTTP status, 0 when err != 0 */
    const struct ag_http_header *headers; /* response headers (name/value slices) */
    size_t nheaders;
    struct ag_str body;
    int attempts;         /* 1 + retries made */
    const char *instance; /* id (or host:port) of the instance that answered last */
};

typedef void (*ag_http_client_cb)(struct ag_http_client *client,
                                  const struct ag_http_client_response *resp, void *udata);

/* New client on 'loop'. 'cfg' may be NULL for defaults; it is copied. */
int ag_http_client_new(uv_loop_t *loop, const struct ag_http_client_config *cfg,
                       struct ag_http_client **out_client);

/* Replace the instances of upstream 'name' (created on first use). State
 * (ejection, counters) is kept for instances whose id stays. */
int ag_http_client_set_upstream(struct ag_http_client *client, const char *name,
                                const struct ag_upstream_instance *instances, size_t n);

/* Start a call. Returns 0 and later calls 'cb' exactly once (never before
 * returning), or returns a negative code synchronously (AG_EINVAL for a bad
 * request, AG_ECLOSED after close) and never calls 'cb'. Retries happen when
 * the method is GET, HEAD, OPTIONS, PUT or DELETE, or an Idempotency-Key
 * header is present, or force_idempotent; on connect errors, timeouts of an
 * attempt, 502, 503 and 504 (and 429 with Retry-After within the deadline);
 * each retry goes to another instance when there is one. */
int ag_http_client_send(struct ag_http_client *client, const struct ag_http_client_request *req,
                        ag_http_client_cb cb, void *udata);

/* Cancel the pending calls of 'client' that were started with callback 'cb'
 * and 'udata': each callback runs once, before this returns, with
 * AG_ECLOSED, and a transfer in flight is abandoned (its connection closed).
 * Calls started from those callbacks are not cancelled. Returns how many
 * calls were cancelled. Loop thread only. */
size_t ag_http_client_cancel(struct ag_http_client *client, ag_http_client_cb cb, void *udata);

/* Header 'name' of 'resp' (case-insensitive), or AG_STR_NULL. */
struct ag_str ag_http_client_header(const struct ag_http_client_response *resp, const char *name);

enum ag_breaker_state {
    AG_BREAKER_CLOSED = 0,
    AG_BREAKER_OPEN,
    AG_BREAKER_HALF_OPEN,
};

/* Breaker state of upstream 'name' (or "host:port" for direct URLs). */
enum ag_breaker_state ag_http_client_breaker(struct ag_http_client *client, const char *name);

/* Is instance 'id' of upstream 'name' currently ejected? */
bool ag_http_client_is_ejected(struct ag_http_client *client, const char *name, const char *id);

/* Register and keep up to date, in 'reg': http_client_requests_total{upstream,outcome},
 * http_client_retries_total{upstream}, http_client_request_duration_seconds{upstream},
 * http_client_breaker_state{upstream} (0 closed, 1 open, 2 half-open),
 * http_client_ejected_instances{upstream}. */
void ag_http_client_metrics(struct ag_http_client *client, struct ag_metrics *reg);

/* Cancel pending calls (their callbacks run with AG_ECLOSED), close every
 * handle, and free the client once the loop has run the close callbacks.
 * 'cb' (may be NULL) runs when done. */
void ag_http_client_close(struct ag_http_client *client, void (*cb)(void *udata), void *udata);

#endif /* AG_HTTP_CLIENT_H */
