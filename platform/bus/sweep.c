/* SPDX-License-Identifier: MIT */
/* Bus retention and dedup sweeps: a timer that deletes, a bounded step at a
 * time, messages every subscription has settled once older than the
 * retention, and dedup ids older than the window. Uses the bus state and
 * store.c only. */
#include "agora/base.h"
#include "bus.h"

#include <inttypes.h>

#include "agora/log.h"

#define SWEEP_BUSY_MS    100  /* next sweep step while a pass is unfinished */
#define SWEEP_CHUNKS     8    /* seq ranges examined per sweep step */
#define SWEEP_CHUNK_SEQS 4096 /* seqs per range */
#define SWEEP_DEDUP_ROWS 5000 /* dedup rows examined per sweep step */

/* ---- Sweeps ---- */

/* One bounded step of the dedup and retention sweeps, in one transaction.
 * Returns true when more work is left for an early next step. */
static bool
sweep_step(struct bus *bus)
{
    int64_t now = ag_time_unix_ms();
    int64_t dedup_gone = 0;
    int64_t msgs_gone = 0;
    bool more = false;
    int64_t from = bus->sweep_from;
    int rc = ag_store_begin(bus->store);
    if (rc == 0)
        rc = bus_store_sweep_dedup(bus->store, now - (int64_t)bus->settings.dedup_window_ms,
                                   SWEEP_DEDUP_ROWS, &dedup_gone);
    int64_t cut = now - (int64_t)bus->settings.retention_ms;
    bool pass_done = false;
    for (int i = 0; i < SWEEP_CHUNKS && rc == 0; i++) {
        int64_t first = 0;
        rc = bus_store_first_old_message(bus->store, from, cut, &first);
        if (rc != 0)
            break;
        if (first == 0) {
            pass_done = true;
            break;
        }
        int64_t gone = 0;
        rc = bus_store_sweep_messages(bus->store, first, first + SWEEP_CHUNK_SEQS, cut, &gone);
        msgs_gone += gone;
        from = first + SWEEP_CHUNK_SEQS;
    }
    if (rc == 0)
        rc = ag_store_commit(bus->store);
    if (rc != 0) {
        AG_LOGE("sweep", "sweep failed: %s", ag_store_errmsg(bus->store));
        ag_store_rollback(bus->store);
        bus->sweep_from = 0;
        return false;
    }
    bus->stored -= msgs_gone;
    bus->sweep_from = pass_done ? 0 : from;
    more = !pass_done || dedup_gone == SWEEP_DEDUP_ROWS;
    if (dedup_gone > 0 || msgs_gone > 0)
        AG_LOGD("sweep", "deleted %" PRId64 " messages and %" PRId64 " dedup ids", msgs_gone,
                dedup_gone);
    return more;
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
