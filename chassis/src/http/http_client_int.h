/* SPDX-License-Identifier: MIT */
/* Internals of the HTTP client shared by http_client.c (calls, upstreams),
 * http_transport.c (HTTP/1.1 over pooled TCP connections on the loop) and
 * breaker.c (the pure resilience logic: circuit breaker, retry budget,
 * backoff, round robin with outlier ejection), so the latter can be
 * unit-tested without a loop (tests/http/test_http_client.c). Not public.
 * Everything here is loop-thread only; the pure logic takes the current
 * time as an argument instead of reading a clock. */
#ifndef AG_HTTP_CLIENT_INT_H
#define AG_HTTP_CLIENT_INT_H

#include "agora/base.h"
#include "agora/http_client.h"

#include <uv.h>

#include "agora/buf.h"

/* ---- Circuit breaker ---- */

/* A breaker per upstream with resilience4j's semantics, time-based: the
 * calls of the last window_ms are counted in AG__BREAKER_BUCKETS buckets;
 * once at least min_calls are in the window, a failure rate or a slow-call
 * rate at or above its threshold opens the breaker. Open, every call fails
 * fast for open_ms; then half-open lets max_probes probes through: that
 * many good ones close it (with an empty window), a failed or slow one
 * opens it again. */
#define AG__BREAKER_BUCKETS 10

struct ag__breaker_config {
    uint64_t window_ms;    /* sliding window (>= AG__BREAKER_BUCKETS ms) */
    uint32_t min_calls;    /* calls in the window before a rate counts (>= 1) */
    uint32_t failure_rate; /* percent; above 100: failures never open it */
    uint64_t slow_ms;      /* a call this long or longer is slow; 0: none is */
    uint32_t slow_rate;    /* percent; above 100: slowness never opens it */
    uint64_t open_ms;      /* time open before half-open */
    uint32_t max_probes;   /* probes while half-open (>= 1) */
};

struct ag__breaker_bucket {
    uint64_t epoch; /* now_ms / bucket_ms this bucket counts for */
    uint32_t calls;
    uint32_t failures;
    uint32_t slow;
};

struct ag__breaker {
    enum ag_breaker_state state; /* closed, open or half-open */
    uint64_t opened_at_ms;       /* when it last opened */
    uint32_t probes;             /* probe attempts in flight while half-open */
    uint32_t probes_ok;          /* good probes since it went half-open */
    struct ag__breaker_config cfg;
    uint64_t bucket_ms;                                     /* window_ms / AG__BREAKER_BUCKETS */
    struct ag__breaker_bucket buckets[AG__BREAKER_BUCKETS]; /* ring indexed by epoch */
};

/* Initialise 'b' closed with 'cfg' (out-of-range values are clamped). */
void ag__breaker_init(struct ag__breaker *b, const struct ag__breaker_config *cfg);

/* Move an open breaker whose cool-down ended ('now_ms' >= opened_at_ms +
 * open_ms) to half-open. Returns true when the state changed. */
bool ag__breaker_tick(struct ag__breaker *b, uint64_t now_ms);

/* May an attempt start now? Returns 0 (and sets '*out_probe' when the
 * attempt is a half-open probe, which must later be passed to
 * ag__breaker_record or ag__breaker_cancel) or AG_EUNAVAIL (open, or every
 * probe slot taken). */
int ag__breaker_allow(struct ag__breaker *b, uint64_t now_ms, bool *out_probe);

/* Record the outcome of an attempt that took 'duration_ms' ('probe' as
 * returned by ag__breaker_allow). Closed: counted in the window, which may
 * open it. Half-open: only probes decide. Returns true when the state
 * changed. */
bool ag__breaker_record(struct ag__breaker *b, uint64_t now_ms, bool probe, bool success,
                        uint64_t duration_ms);

/* Calls, failures and slow calls in the window ending at 'now_ms'. */
void ag__breaker_window(const struct ag__breaker *b, uint64_t now_ms, uint32_t *out_calls,
                        uint32_t *out_failures, uint32_t *out_slow);

/* A new instance of the upstream registered (a restart): an open breaker
 * goes half-open at once so a probe can find out. Returns true when the
 * state changed. */
bool ag__breaker_recovered(struct ag__breaker *b, uint64_t now_ms);

/* Forget a probe that never reached the upstream. */
void ag__breaker_cancel(struct ag__breaker *b, bool probe);

/* ---- Retry budget ----
 * A sliding window of AG__BUDGET_SLOTS one-second slots counts the calls
 * and the retries of one upstream. A retry is allowed when, counting it,
 * retries <= ratio * calls + min over the window, so under a total outage
 * the load is at most (1 + ratio) times the calls plus 'min' per window. */

#define AG__BUDGET_SLOTS   10
#define AG__BUDGET_SLOT_MS 1000

struct ag__budget_slot {
    uint64_t epoch;   /* now_ms / AG__BUDGET_SLOT_MS this slot counts for */
    uint32_t calls;   /* calls started in that second */
    uint32_t retries; /* retries made in that second */
};

struct ag__budget {
    double ratio;                                   /* retries per call */
    uint32_t min;                                   /* extra retries per window */
    struct ag__budget_slot slots[AG__BUDGET_SLOTS]; /* ring indexed by epoch */
};

void ag__budget_init(struct ag__budget *b, double ratio, uint32_t min);

/* Count one call started at 'now_ms'. */
void ag__budget_call(struct ag__budget *b, uint64_t now_ms);

/* Take one retry from the budget: true (and counted) when allowed. */
bool ag__budget_try_retry(struct ag__budget *b, uint64_t now_ms);

/* Calls and retries inside the window ending at 'now_ms' (tests, docs). */
void ag__budget_window(const struct ag__budget *b, uint64_t now_ms, uint32_t *out_calls,
                       uint32_t *out_retries);

/* ---- Load balancing and outlier ejection ---- */

/* One instance of an upstream. Shared by the upstream and by attempts in
 * flight (reference counted), so replacing instances never frees one an
 * attempt still points to. */
struct ag__hc_instance {
    char *id;                  /* stable id */
    char *incarnation;         /* of the process behind it, or NULL (unknown) */
    char *host;                /* host or IP literal */
    int port;                  /* TCP port */
    char *base;                /* "http://host:port" ("[v6]" bracketed) */
    unsigned refs;             /* upstream + attempts */
    bool removed;              /* no longer in its upstream */
    uint32_t failures;         /* consecutive failures */
    uint32_t ejections;        /* times ejected recently (doubles the time) */
    uint64_t ejected_until_ms; /* 0 when not ejected */
    uint64_t returned_at_ms;   /* when it last came back from an ejection */
};

/* Ejection policy (from the client config). */
struct ag__eject_policy {
    uint32_t failures;    /* consecutive failures that eject (>= 1) */
    uint64_t base_ms;     /* first ejection time */
    uint32_t max_percent; /* share of an upstream that may be ejected */
};

/* Longest ejection, as a multiple of the base time. */
#define AG__EJECT_MAX_FACTOR 8

/* Bring back instances of 'insts' whose ejection ended at 'now_ms'.
 * Returns how many came back. */
size_t ag__lb_expire(struct ag__hc_instance *const *insts, size_t n, uint64_t now_ms);

/* How many of 'insts' are ejected at 'now_ms'. */
size_t ag__lb_ejected(struct ag__hc_instance *const *insts, size_t n, uint64_t now_ms);

/* Round robin over 'insts' from '*rr', skipping ejected instances and, when
 * another eligible one exists, 'avoid'. Advances '*rr'. Returns the index
 * picked, or -1 when 'n' is 0. When every instance is ejected (which the
 * ejection rules prevent) the next one in turn is used anyway. */
long ag__lb_pick(struct ag__hc_instance *const *insts, size_t n, size_t *rr,
                 const struct ag__hc_instance *avoid, uint64_t now_ms);

/* Record an attempt's outcome on 'inst', one of 'insts' (its upstream).
 * 'failure' is a connect error, timeout or 5xx. After policy->failures
 * consecutive failures the instance is ejected for base_ms * 2^k (k =
 * earlier ejections, the factor capped at AG__EJECT_MAX_FACTOR), unless
 * that would eject more than max_percent of the upstream or leave no
 * eligible instance. Returns true when 'inst' was ejected by this call. */
bool ag__lb_record(struct ag__hc_instance *const *insts, size_t n, struct ag__hc_instance *inst,
                   bool failure, const struct ag__eject_policy *policy, uint64_t now_ms);

/* 'inst' refused a connection: nothing listens there, so it is ejected at
 * once rather than after policy->failures (the same share limits apply).
 * Returns true when it was ejected by this call. */
bool ag__lb_down(struct ag__hc_instance *const *insts, size_t n, struct ag__hc_instance *inst,
                 const struct ag__eject_policy *policy, uint64_t now_ms);

/* ---- Transport (http_transport.c) ----
 * Moves one request and its response over a pooled keep-alive connection.
 * It knows nothing of deadlines, retries or upstreams: the caller aborts a
 * transfer when its deadline passes. */

#define AG__HC_MAX_RESP_HEADERS 128   /* response header fields per response */
#define AG__HC_IDLE_TIMEOUT_MS  30000 /* an idle pooled connection is closed after this */

struct ag__hc_transport;
struct ag__hc_conn;
struct ag__hc_xfer;

struct ag__hc_transport_config {
    size_t max_host_connections;  /* open connections per host:port (>= 1) */
    size_t max_total_connections; /* open connections in all (>= 1) */
    uint64_t connect_timeout_ms;  /* default when a transfer gives none */
    uint64_t idle_timeout_ms;     /* 0: AG__HC_IDLE_TIMEOUT_MS */
};

/* The transfer 'x' ended: 'err' is 0 (a whole response is in x->status,
 * x->hdrs, x->head and x->body), AG_EIO (transport failure: refused, reset,
 * closed early, bad response), AG_ETIMEDOUT (connect timeout) or
 * AG_ETOOBIG (a limit of x->head, x->body or AG__HC_MAX_RESP_HEADERS). */
typedef void (*ag__hc_xfer_cb)(struct ag__hc_xfer *x, int err);

/* One response header, as offsets into the transfer's 'head' buffer (which
 * may move while it grows). */
struct ag__hc_hdr {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
};

/* One request on the wire and its response. Caller-owned storage (embedded
 * in the call); 'head' and 'body' are initialised (with their bounds) and
 * released by the caller, and reset by the transport at each start. */
struct ag__hc_xfer {
    /* Set by the caller before ag__hc_xfer_start. */
    const char *host;            /* IP literal or name; borrowed until the callback */
    int port;                    /* TCP port */
    uv_buf_t req[3];             /* the request bytes, borrowed until the callback */
    unsigned nreq;               /* buffers used in 'req' (written by one uv_write) */
    bool is_head;                /* HEAD: the response has no body */
    bool idempotent;             /* may be sent again after the keep-alive race */
    uint64_t connect_timeout_ms; /* for a new connection; 0: the transport's */
    ag__hc_xfer_cb cb;           /* called once per start that returned 0 */
    void *udata;                 /* for the caller */
    /* The response. */
    int status;              /* HTTP status of the final response */
    struct ag_buf head;      /* header names and values (bounded by the caller) */
    struct ag__hc_hdr *hdrs; /* 'nhdrs' headers into 'head' */
    size_t nhdrs;
    size_t hdrs_cap;
    struct ag_buf body; /* body (bounded by the caller: AG_ETOOBIG past it) */
    /* Transport state. */
    struct ag__hc_conn *conn;  /* connection in use, or NULL */
    struct ag__hc_xfer *qprev; /* in the wait queue or the failed list */
    struct ag__hc_xfer *qnext;
    bool queued;      /* waiting for a connection */
    bool failing;     /* failure to deliver on the next turn */
    int fail_err;     /* that failure */
    int err;          /* set by parser callbacks */
    bool in_value;    /* last parser callback was a header value */
    bool in_trailers; /* the head is complete: header callbacks are trailers */
    bool refused;     /* the connect was refused: nothing was sent (AG_EIO) */
    bool got_bytes;   /* a response byte arrived on this connection */
    bool resent;      /* sent again after the keep-alive race */
    bool fresh_only;  /* must not use an idle connection */
};

/* New transport on 'loop' with 'cfg' (copied). Returns 0. */
int ag__hc_transport_new(uv_loop_t *loop, const struct ag__hc_transport_config *cfg,
                         struct ag__hc_transport **out_t);

/* Start 'x': on an idle connection of its host:port, on a new connection
 * within the limits, or queued (FIFO) until one is free. Returns 0 and later
 * calls x->cb exactly once (never before returning), or AG_ECLOSED after
 * ag__hc_transport_close. */
int ag__hc_xfer_start(struct ag__hc_transport *t, struct ag__hc_xfer *x);

/* Stop 'x' without its callback: out of the queue, or its connection is
 * closed (a half-sent request must not be followed by another). */
void ag__hc_xfer_abort(struct ag__hc_transport *t, struct ag__hc_xfer *x);

/* Connections open or opening, and idle ones among them (tests). */
void ag__hc_transport_stats(const struct ag__hc_transport *t, size_t *out_conns, size_t *out_idle);

/* Close every connection and free 't' once their handles closed, then call
 * 'cb' (may be NULL). No transfer may be pending (abort them first). */
void ag__hc_transport_close(struct ag__hc_transport *t, void (*cb)(void *udata), void *udata);

/* ---- Test hooks (http_client.c) ---- */

/* Call 'fn' with the wait chosen before each retry (its number, from 1);
 * 'fn' NULL removes the hook. For tests of the backoff bounds. */
typedef void (*ag__http_client_backoff_fn)(struct ag_http_client *client, int retry,
                                           uint64_t wait_ms, void *udata);
void ag__http_client_on_backoff(struct ag_http_client *client, ag__http_client_backoff_fn fn,
                                void *udata);

/* Connections of the client's transport: open or opening, and idle. */
void ag__http_client_conn_stats(struct ag_http_client *client, size_t *out_conns, size_t *out_idle);

#endif /* AG_HTTP_CLIENT_INT_H */
