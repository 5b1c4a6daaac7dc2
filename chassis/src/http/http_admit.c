/* SPDX-License-Identifier: MIT */
/* Request-level admission of the HTTP server: the limit on requests in
 * flight and how it moves (additive increase while latency stays near its
 * no-load value, multiplicative decrease when an interval shows a standing
 * queue), and the decision for one request. Pure rules on
 * the server's state: called by http_conn.c (admit) and http_server.c
 * (done); calls neither. */
#include "agora/base.h"
#include "http_server_int.h"

#include <string.h>

#define NS_PER_MS 1000000ull

/* The no-load latency (the floor) is the smallest latency of the requests
 * answered while few were in flight, over the current window of 10 s and
 * the one before: it follows a service that became slower after two
 * windows of light load, and a sustained overload (never light) cannot
 * raise it to its own queueing delay. */
#define FLOOR_WINDOW_NS (10000ull * NS_PER_MS)

/* Queueing is judged per interval, as CoDel judges a queue: only when even
 * the fastest answer of an interval was late is there a standing queue. A
 * burst that drains within the interval, or one slow request, is not. */
#define INTERVAL_MIN_NS  (100ull * NS_PER_MS)
#define INTERVAL_SAMPLES 8

void
ag__http_limiter_init(struct ag_http_limiter *l, uint32_t min, uint32_t max, uint64_t slack_ms)
{
    memset(l, 0, sizeof(*l));
    l->min = min > 0 ? min : 1;
    l->max = max >= l->min ? max : l->min;
    l->slack_ns = slack_ms * NS_PER_MS;
    /* Start at the ceiling: a service that is not overloaded never sheds,
     * and the first congested interval brings the limit down to what is
     * in flight at once. */
    l->limit = (double)l->max;
    l->light = l->min / 4 < 2 ? 2 : l->min / 4 > 8 ? 8 : l->min / 4;
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
    if (inflight <= l->light) {
        if (l->window_ns == 0 || now_ns - l->window_ns > FLOOR_WINDOW_NS) {
            l->floor_prev_ns = l->floor_cur_ns;
            l->floor_cur_ns = lat;
            l->window_ns = now_ns;
        } else if (lat < l->floor_cur_ns) {
            l->floor_cur_ns = lat;
        }
    }
    uint64_t floor = ag__http_limiter_floor(l);
    uint64_t allowed = floor + (floor > l->slack_ns ? floor : l->slack_ns);

    if (l->iv_start_ns == 0 || lat < l->iv_min_ns)
        l->iv_min_ns = lat;
    if (l->iv_start_ns == 0) {
        l->iv_start_ns = now_ns;
        l->iv_samples = 0;
    }
    l->iv_samples++;
    uint64_t interval = 2 * floor > INTERVAL_MIN_NS ? 2 * floor : INTERVAL_MIN_NS;
    if (now_ns - l->iv_start_ns >= interval) {
        /* A few slow answers in a quiet interval (a slow route, a long
         * handler) are not a queue: judging needs a busy interval. */
        if (l->iv_min_ns > allowed && l->iv_samples >= INTERVAL_SAMPLES) {
            /* Cut from what is in flight, not from the limit: a limit far
             * above the load (its starting ceiling) comes down in one
             * step; deeper when latency is further off. */
            double ratio = (double)allowed / (double)l->iv_min_ns;
            ratio = ratio < 0.5 ? 0.5 : ratio > 0.9 ? 0.9 : ratio;
            double base = (double)inflight < l->limit ? (double)inflight : l->limit;
            double next = base * ratio;
            l->limit = next < (double)l->min ? (double)l->min : next;
        }
        l->iv_start_ns = 0;
    }
    /* Grow while answers are on time and the limit is in use (an idle
     * service must not drift to the ceiling and then need many intervals
     * to come down): one request per round trip (1/limit per answer). */
    if (lat <= allowed && (double)inflight * 2.0 >= l->limit && l->limit < (double)l->max) {
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
