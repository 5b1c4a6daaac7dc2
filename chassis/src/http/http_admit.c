/* SPDX-License-Identifier: MIT */
/* Request-level admission of the HTTP server: the limit on requests in
 * flight and how it moves (additive increase while latency stays near its
 * no-load value, multiplicative decrease, at most once per round trip,
 * when queueing shows), and the decision for one request. Pure rules on
 * the server's state: called by http_conn.c (admit) and http_server.c
 * (done); calls neither. */
#include "agora/base.h"
#include "http_server_int.h"

#include <string.h>

#define NS_PER_MS 1000000ull

/* The no-load latency is the smallest latency seen in the current window
 * and the one before it: it follows a slower service after two windows
 * and forgets a lucky sample as soon. */
#define FLOOR_WINDOW_NS (10000ull * NS_PER_MS)

void
ag__http_limiter_init(struct ag_http_limiter *l, uint32_t min, uint32_t max, uint64_t slack_ms)
{
    memset(l, 0, sizeof(*l));
    l->min = min > 0 ? min : 1;
    l->max = max >= l->min ? max : l->min;
    l->slack_ns = slack_ms * NS_PER_MS;
    /* Start at the ceiling: a service that is not overloaded never sheds,
     * and the first congested round trip brings the limit down at once. */
    l->limit = (double)l->max;
}

uint64_t
ag__http_limiter_floor(const struct ag_http_limiter *l)
{
    uint64_t a = l->floor_cur_ns;
    uint64_t b = l->floor_prev_ns;
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

void
ag__http_limiter_sample(struct ag_http_limiter *l, uint64_t start_ns, uint64_t now_ns,
                        uint64_t inflight)
{
    uint64_t lat = now_ns > start_ns ? now_ns - start_ns : 1;
    if (l->window_ns == 0 || now_ns - l->window_ns > FLOOR_WINDOW_NS) {
        l->floor_prev_ns = l->floor_cur_ns;
        l->floor_cur_ns = lat;
        l->window_ns = now_ns;
    } else if (lat < l->floor_cur_ns) {
        l->floor_cur_ns = lat;
    }
    uint64_t floor = ag__http_limiter_floor(l);
    uint64_t allowed = floor + (floor > l->slack_ns ? floor : l->slack_ns);
    if (lat > allowed) {
        /* Requests that began before the last cut saw the queue that cut
         * was for: one decrease per round trip, as in TCP congestion
         * control. The cut is deeper when latency is further off. */
        if (start_ns <= l->last_cut_ns)
            return;
        double ratio = (double)allowed / (double)lat;
        ratio = ratio < 0.5 ? 0.5 : ratio > 0.9 ? 0.9 : ratio;
        /* From what is in flight, not from the limit: a limit far above
         * the load (its starting ceiling) comes down in one step. */
        double base = (double)inflight < l->limit ? (double)inflight : l->limit;
        double next = base * ratio;
        l->limit = next < (double)l->min ? (double)l->min : next;
        l->last_cut_ns = now_ns;
        return;
    }
    /* Grow only while the limit is in use: an idle service must not drift
     * to the ceiling and then need many round trips to come down. Growth
     * is one request per round trip (1/limit per answer). */
    if ((double)inflight * 2.0 >= l->limit && l->limit < (double)l->max) {
        l->limit += 1.0 / l->limit;
        if (l->limit > (double)l->max)
            l->limit = (double)l->max;
    }
}

uint64_t
ag__http_admit_limit(const struct ag_http_server *srv)
{
    switch (srv->cfg.admission) {
    case AG_HTTP_ADMISSION_ADAPTIVE: return (uint64_t)srv->limiter.limit;
    case AG_HTTP_ADMISSION_FIXED: return srv->cfg.max_inflight;
    case AG_HTTP_ADMISSION_OFF: break;
    }
    return 0;
}

bool
ag__http_admit(struct ag_http_server *srv, struct ag_http_sreq *r)
{
    if (srv->cfg.admission == AG_HTTP_ADMISSION_OFF)
        return true;
    if (srv->cfg.admit_class != NULL &&
        srv->cfg.admit_class(&r->req, srv->cfg.udata) == AG_HTTP_ADMIT_EXEMPT)
        return true;
    if (srv->stats.inflight >= ag__http_admit_limit(srv)) {
        srv->stats.requests_shed++;
        return false;
    }
    r->limited = true;
    srv->stats.inflight++;
    srv->stats.requests_admitted++;
    return true;
}

void
ag__http_admit_done(struct ag_http_server *srv, struct ag_http_sreq *r, uint64_t now_ns)
{
    if (!r->limited)
        return;
    r->limited = false;
    if (srv == NULL)
        return; /* an orphan answered after the server was freed */
    uint64_t inflight = srv->stats.inflight;
    srv->stats.inflight--;
    /* An orphan's latency says how long its client waited, not how long
     * the work took: it does not move the limit. */
    if (srv->cfg.admission == AG_HTTP_ADMISSION_ADAPTIVE && now_ns != 0 && !r->orphan)
        ag__http_limiter_sample(&srv->limiter, r->req.start_ns, now_ns, inflight);
}
