/* SPDX-License-Identifier: MIT */
/* How long each turn of an event loop works between two waits for I/O:
 * the histogram event_loop_busy_seconds and the gauge
 * event_loop_busy_max_seconds (the longest turn of the last 10 s). A turn
 * that works for 30 ms delays every request that arrived during it by up
 * to 30 ms, whatever its own cost: this is what finds the work that makes
 * a p99 jump (a sweep, a checkpoint, a synchronous call). Wall time, so a
 * turn during which the process was descheduled counts too; compare with
 * process_cpu_seconds_total to tell the two apart.
 *
 * A uv_prepare_t runs once per turn, just before the loop waits; libuv's
 * UV_METRICS_IDLE_TIME gives the time spent waiting. Busy time of the turn
 * = time since the previous prepare - time spent waiting since then. */
#include "agora/base.h"

#include <uv.h>

#include "agora/mem.h"
#include "agora/metrics.h"

#define WINDOW_NS (10ull * 1000000000ull)

struct ag_loop_metrics {
    uv_prepare_t prep;
    uint64_t last_ns;   /* uv_hrtime() at the previous prepare */
    uint64_t last_idle; /* uv_metrics_idle_time() then */
    uint64_t win_start; /* start of the current window */
    uint64_t cur_max;   /* longest turn of the current window, ns */
    uint64_t prev_max;  /* of the previous window */
    struct ag_metric *busy;
    struct ag_metric *busy_max;
};

static void
on_prepare(uv_prepare_t *h)
{
    struct ag_loop_metrics *lm = h->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(h->loop);
    uint64_t span = now - lm->last_ns;
    uint64_t waited = idle - lm->last_idle;
    uint64_t busy = span > waited ? span - waited : 0;
    lm->last_ns = now;
    lm->last_idle = idle;
    ag_histogram_observe(lm->busy, NULL, (double)busy / 1e9);
    if (now - lm->win_start >= WINDOW_NS) {
        lm->prev_max = lm->cur_max;
        lm->cur_max = 0;
        lm->win_start = now;
    }
    if (busy > lm->cur_max)
        lm->cur_max = busy;
}

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct ag_loop_metrics *lm = udata;
    uint64_t m = AG_MAX(lm->cur_max, lm->prev_max);
    ag_gauge_set(lm->busy_max, NULL, (double)m / 1e9);
}

int
ag_loop_metrics_start(uv_loop_t *loop, struct ag_metrics *reg, struct ag_loop_metrics **out)
{
    *out = NULL;
    if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME) != 0)
        return -1;
    static const double buckets[] = { 0.0001, 0.0005, 0.001, 0.002, 0.005,
                                      0.01,   0.025,  0.05,  0.1,   0.5 };
    struct ag_loop_metrics *lm = ag_calloc(1, sizeof(*lm));
    lm->busy = ag_metrics_histogram(reg, "event_loop_busy_seconds",
                                    "Work of each event loop turn between two waits for I/O "
                                    "(wall time: what a request arriving meanwhile waits)",
                                    NULL, 0, buckets, AG_ARRAY_SIZE(buckets));
    lm->busy_max =
        ag_metrics_gauge(reg, "event_loop_busy_max_seconds",
                         "Longest event loop turn of the last 10 to 20 seconds", NULL, 0);
    uv_prepare_init(loop, &lm->prep);
    lm->prep.data = lm;
    lm->last_ns = uv_hrtime();
    lm->last_idle = uv_metrics_idle_time(loop);
    lm->win_start = lm->last_ns;
    uv_prepare_start(&lm->prep, on_prepare);
    uv_unref((uv_handle_t *)&lm->prep); /* never keeps the loop alive */
    ag_metrics_on_collect(reg, collect, lm);
    *out = lm;
    return 0;
}

void
ag_loop_metrics_close(struct ag_loop_metrics *lm)
{
    if (lm == NULL || uv_is_closing((uv_handle_t *)&lm->prep))
        return;
    uv_prepare_stop(&lm->prep);
    uv_close((uv_handle_t *)&lm->prep, NULL);
}

void
ag_loop_metrics_free(struct ag_loop_metrics *lm)
{
    ag_free(lm);
}
