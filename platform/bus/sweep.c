/* SPDX-License-Identifier: MIT */
/* Bus retention and dedup sweeps: a timer that deletes, a bounded step at a
 * time, messages every subscription has settled once older than the
 * retention, and dedup ids older than the window. Uses the bus state and
 * store.c only. */
#include "agora/base.h"
#include "bus.h"

#include <inttypes.h>

#include "agora/log.h"

#define SWEEP_BUSY_MS    5       /* next sweep step while a pass is unfinished */
#define SWEEP_BUDGET_NS  1000000 /* loop time a step should take, commit included */
#define SWEEP_MIN_ROWS   16      /* smallest seq range or dedup batch */
#define SWEEP_MAX_SEQS   4096    /* largest seq range */
#define SWEEP_MAX_DEDUP  5000    /* largest dedup batch */
#define SWEEP_MAX_CHUNKS 8       /* seq ranges per step */

/* Resize a batch after a step that took 'took_ns': halve it when the step
 * overran the budget, double it when the step took under a quarter of it
 * and the batch was used in full. */
static int64_t
adapt(int64_t size, uint64_t took_ns, bool full, int64_t max)
{
    if (took_ns > SWEEP_BUDGET_NS)
        return AG_MAX(SWEEP_MIN_ROWS, size / 2);
    if (full && took_ns < SWEEP_BUDGET_NS / 4)
        return AG_MIN(max, size * 2);
    return size;
}

/* One step of the dedup and retention sweeps, in one transaction, bounded
 * in time: a step holds the loop, so it stops after about SWEEP_BUDGET_NS
 * and the sizes of its statements adapt to what they cost (a delete of
 * 4,096 large messages took tens of milliseconds, under load hundreds).
 * Returns true when more work is left for an early next step. */
static bool
sweep_step(struct bus *bus)
{
    int64_t now = ag_time_unix_ms();
    int64_t dedup_gone = 0;
    int64_t msgs_gone = 0;
    int64_t from = bus->sweep_from;
    uint64_t t0 = uv_hrtime();
    if (bus->sweep_seqs == 0) {
        bus->sweep_seqs = SWEEP_MAX_SEQS;
        bus->sweep_dedup = SWEEP_MAX_DEDUP;
    }
    int64_t dedup_rows = bus->sweep_dedup;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_sweep_dedup(bus->store, now - (int64_t)bus->settings.dedup_window_ms,
                                   dedup_rows, &dedup_gone);
    int64_t seqs = bus->sweep_seqs;
    int chunks = 0;
    int64_t cut = now - (int64_t)bus->settings.retention_ms;
    bool pass_done = false;
    /* At least one range per step, so that a slow dedup delete cannot
     * starve the retention sweep. */
    while (chunks < SWEEP_MAX_CHUNKS && rc == 0 &&
           (chunks == 0 || uv_hrtime() - t0 < SWEEP_BUDGET_NS / 2)) {
        int64_t first = 0;
        rc = bus_store_first_old_message(bus->store, from, cut, &first);
        if (rc != 0)
            break;
        if (first == 0) {
            pass_done = true;
            break;
        }
        int64_t gone = 0;
        rc = bus_store_sweep_messages(bus->store, first, first + seqs, cut, &gone);
        chunks++;
        msgs_gone += gone;
        from = first + seqs;
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        AG_LOGE("sweep", "sweep failed: %s", ag_store_errmsg(bus->store));
        ag_store_rollback(bus->store);
        bus->sweep_from = 0;
        return false;
    }
    /* The commit counts too: it writes every page the deletes touched. */
    uint64_t took = uv_hrtime() - t0;
    bus->sweep_dedup = adapt(dedup_rows, took, dedup_gone == dedup_rows, SWEEP_MAX_DEDUP);
    bus->sweep_seqs = adapt(seqs, took, chunks > 0 && !pass_done, SWEEP_MAX_SEQS);
    bus->stored -= msgs_gone;
    bus->sweep_from = pass_done ? 0 : from;
    if (dedup_gone > 0 || msgs_gone > 0)
        AG_LOGD("sweep",
                "deleted %" PRId64 " messages and %" PRId64 " dedup ids in %.2f ms (next: %" PRId64
                " seqs, %" PRId64 " dedup rows)",
                msgs_gone, dedup_gone, (double)took / 1e6, bus->sweep_seqs, bus->sweep_dedup);
    return !pass_done || dedup_gone == dedup_rows;
}

static void
on_sweep(uv_timer_t *t)
{
    struct bus *bus = t->data;
    bool more = sweep_step(bus);
    uv_timer_start(t, on_sweep, more ? SWEEP_BUSY_MS : bus->settings.sweep_interval_ms, 0);
}

void
bus_sweep_start(struct bus *bus)
{
    uv_timer_init(bus->loop, &bus->sweep_timer);
    bus->sweep_timer.data = bus;
    uv_timer_start(&bus->sweep_timer, on_sweep, bus->settings.sweep_interval_ms, 0);
}

void
bus_sweep_stop(struct bus *bus)
{
    if (bus->sweep_timer.data != NULL) {
        uv_timer_stop(&bus->sweep_timer);
        uv_close((uv_handle_t *)&bus->sweep_timer, NULL);
        bus->sweep_timer.data = NULL;
    }
}
