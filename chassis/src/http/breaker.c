/* SPDX-License-Identifier: MIT */
/* The pure resilience logic of the HTTP client (http_client_int.h): the
 * circuit breaker state machine, the sliding-window retry budget, and round
 * robin with outlier ejection (backoff is agora/backoff.h). No I/O and no
 * clock: the caller passes the time, so tests/http/test_http_client.c drives it
 * directly. */
#include "agora/base.h"
#include "http_client_int.h"

#include "agora/err.h"

/* ---- Circuit breaker ---- */

static void
window_clear(struct ag__breaker *b)
{
    for (size_t i = 0; i < AG__BREAKER_BUCKETS; i++)
        b->buckets[i] = (struct ag__breaker_bucket){ .epoch = UINT64_MAX };
}

void
ag__breaker_init(struct ag__breaker *b, const struct ag__breaker_config *cfg)
{
    b->state = AG_BREAKER_CLOSED;
    b->opened_at_ms = 0;
    b->probes = 0;
    b->probes_ok = 0;
    b->cfg = *cfg;
    if (b->cfg.window_ms < AG__BREAKER_BUCKETS)
        b->cfg.window_ms = AG__BREAKER_BUCKETS;
    if (b->cfg.min_calls == 0)
        b->cfg.min_calls = 1;
    if (b->cfg.max_probes == 0)
        b->cfg.max_probes = 1;
    b->bucket_ms = b->cfg.window_ms / AG__BREAKER_BUCKETS;
    window_clear(b);
}

/* The one transition function: every state change goes through here, and
 * illegal moves are programmer errors. */
static void
breaker_move(struct ag__breaker *b, enum ag_breaker_state to, uint64_t now_ms)
{
    switch (to) {
    case AG_BREAKER_OPEN:
        if (b->state == AG_BREAKER_OPEN)
            AG_BUG("breaker: open -> open");
        b->opened_at_ms = now_ms;
        break;
    case AG_BREAKER_HALF_OPEN:
        if (b->state != AG_BREAKER_OPEN)
            AG_BUG("breaker: half-open only from open");
        b->probes = 0;
        b->probes_ok = 0;
        break;
    case AG_BREAKER_CLOSED:
        if (b->state != AG_BREAKER_HALF_OPEN)
            AG_BUG("breaker: closed only from half-open");
        /* A fresh start: what failed before the opening is history. */
        window_clear(b);
        break;
    }
    b->state = to;
}

bool
ag__breaker_tick(struct ag__breaker *b, uint64_t now_ms)
{
    if (b->state != AG_BREAKER_OPEN || now_ms < b->opened_at_ms + b->cfg.open_ms)
        return false;
    breaker_move(b, AG_BREAKER_HALF_OPEN, now_ms);
    return true;
}

bool
ag__breaker_recovered(struct ag__breaker *b, uint64_t now_ms)
{
    if (b->state != AG_BREAKER_OPEN)
        return false;
    breaker_move(b, AG_BREAKER_HALF_OPEN, now_ms);
    return true;
}

int
ag__breaker_allow(struct ag__breaker *b, uint64_t now_ms, bool *out_probe)
{
    ag__breaker_tick(b, now_ms);
    *out_probe = false;
    switch (b->state) {
    case AG_BREAKER_CLOSED: return 0;
    case AG_BREAKER_OPEN: return AG_EUNAVAIL;
    case AG_BREAKER_HALF_OPEN:
        if (b->probes + b->probes_ok >= b->cfg.max_probes)
            return AG_EUNAVAIL;
        b->probes++;
        *out_probe = true;
        return 0;
    }
    return AG_EUNAVAIL;
}

void
ag__breaker_window(const struct ag__breaker *b, uint64_t now_ms, uint32_t *out_calls,
                   uint32_t *out_failures, uint32_t *out_slow)
{
    uint64_t epoch = now_ms / b->bucket_ms;
    uint32_t calls = 0;
    uint32_t failures = 0;
    uint32_t slow = 0;
    for (size_t i = 0; i < AG__BREAKER_BUCKETS; i++) {
        const struct ag__breaker_bucket *k = &b->buckets[i];
        if (k->epoch == UINT64_MAX || k->epoch > epoch || epoch - k->epoch >= AG__BREAKER_BUCKETS)
            continue;
        calls += k->calls;
        failures += k->failures;
        slow += k->slow;
    }
    *out_calls = calls;
    *out_failures = failures;
    *out_slow = slow;
}

/* Whether 'part' of 'calls' reaches 'pct' percent (above 100: never). */
static bool
rate_reached(uint32_t part, uint32_t calls, uint32_t pct)
{
    return pct <= 100 && (uint64_t)part * 100 >= (uint64_t)pct * calls;
}

bool
ag__breaker_record(struct ag__breaker *b, uint64_t now_ms, bool probe, bool success,
                   uint64_t duration_ms)
{
    bool slow = b->cfg.slow_ms > 0 && duration_ms >= b->cfg.slow_ms;
    if (probe && b->state == AG_BREAKER_HALF_OPEN && b->probes > 0)
        b->probes--;
    switch (b->state) {
    case AG_BREAKER_CLOSED: {
        uint64_t epoch = now_ms / b->bucket_ms;
        struct ag__breaker_bucket *k = &b->buckets[epoch % AG__BREAKER_BUCKETS];
        if (k->epoch != epoch)
            *k = (struct ag__breaker_bucket){ .epoch = epoch };
        k->calls++;
        k->failures += !success;
        k->slow += slow;
        uint32_t calls;
        uint32_t failures;
        uint32_t nslow;
        ag__breaker_window(b, now_ms, &calls, &failures, &nslow);
        if (calls < b->cfg.min_calls)
            return false;
        if ((failures > 0 && rate_reached(failures, calls, b->cfg.failure_rate)) ||
            (nslow > 0 && rate_reached(nslow, calls, b->cfg.slow_rate))) {
            breaker_move(b, AG_BREAKER_OPEN, now_ms);
            return true;
        }
        return false;
    }
    case AG_BREAKER_HALF_OPEN:
        /* Only probes decide; a call that started before the breaker opened
         * and ends now says nothing about the upstream's recovery. */
        if (!probe)
            return false;
        if (!success || slow) {
            breaker_move(b, AG_BREAKER_OPEN, now_ms);
            return true;
        }
        if (++b->probes_ok < b->cfg.max_probes)
            return false;
        breaker_move(b, AG_BREAKER_CLOSED, now_ms);
        return true;
    case AG_BREAKER_OPEN: return false;
    }
    return false;
}

void
ag__breaker_cancel(struct ag__breaker *b, bool probe)
{
    if (probe && b->state == AG_BREAKER_HALF_OPEN && b->probes > 0)
        b->probes--;
}

/* ---- Retry budget ---- */

void
ag__budget_init(struct ag__budget *b, double ratio, uint32_t min)
{
    b->ratio = ratio < 0 ? 0 : ratio;
    b->min = min;
    for (size_t i = 0; i < AG__BUDGET_SLOTS; i++) {
        b->slots[i].epoch = UINT64_MAX;
        b->slots[i].calls = 0;
        b->slots[i].retries = 0;
    }
}

/* The slot counting the second of 'now_ms', emptied when it last counted
 * an older second. */
static struct ag__budget_slot *
budget_slot(struct ag__budget *b, uint64_t now_ms)
{
    uint64_t epoch = now_ms / AG__BUDGET_SLOT_MS;
    struct ag__budget_slot *s = &b->slots[epoch % AG__BUDGET_SLOTS];
    if (s->epoch != epoch) {
        s->epoch = epoch;
        s->calls = 0;
        s->retries = 0;
    }
    return s;
}

void
ag__budget_window(const struct ag__budget *b, uint64_t now_ms, uint32_t *out_calls,
                  uint32_t *out_retries)
{
    uint64_t epoch = now_ms / AG__BUDGET_SLOT_MS;
    uint32_t calls = 0;
    uint32_t retries = 0;
    for (size_t i = 0; i < AG__BUDGET_SLOTS; i++) {
        const struct ag__budget_slot *s = &b->slots[i];
        if (s->epoch != UINT64_MAX && s->epoch <= epoch && epoch - s->epoch < AG__BUDGET_SLOTS) {
            calls += s->calls;
            retries += s->retries;
        }
    }
    *out_calls = calls;
    *out_retries = retries;
}

void
ag__budget_call(struct ag__budget *b, uint64_t now_ms)
{
    struct ag__budget_slot *s = budget_slot(b, now_ms);
    if (s->calls < UINT32_MAX)
        s->calls++;
}

bool
ag__budget_try_retry(struct ag__budget *b, uint64_t now_ms)
{
    uint32_t calls;
    uint32_t retries;
    ag__budget_window(b, now_ms, &calls, &retries);
    if ((double)retries + 1.0 > b->ratio * (double)calls + (double)b->min)
        return false;
    struct ag__budget_slot *s = budget_slot(b, now_ms);
    if (s->retries < UINT32_MAX)
        s->retries++;
    return true;
}

/* ---- Load balancing and outlier ejection ---- */

static bool
is_ejected(const struct ag__hc_instance *inst, uint64_t now_ms)
{
    return inst->ejected_until_ms != 0 && now_ms < inst->ejected_until_ms;
}

size_t
ag__lb_expire(struct ag__hc_instance *const *insts, size_t n, uint64_t now_ms)
{
    size_t back = 0;
    for (size_t i = 0; i < n; i++) {
        struct ag__hc_instance *inst = insts[i];
        if (inst->ejected_until_ms != 0 && now_ms >= inst->ejected_until_ms) {
            inst->ejected_until_ms = 0;
            inst->returned_at_ms = now_ms;
            inst->failures = 0;
            back++;
        }
    }
    return back;
}

size_t
ag__lb_ejected(struct ag__hc_instance *const *insts, size_t n, uint64_t now_ms)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += is_ejected(insts[i], now_ms);
    return count;
}

long
ag__lb_pick(struct ag__hc_instance *const *insts, size_t n, size_t *rr,
            const struct ag__hc_instance *avoid, uint64_t now_ms)
{
    if (n == 0)
        return -1;
    ag__lb_expire(insts, n, now_ms);
    long fallback = -1;
    for (size_t k = 0; k < n; k++) {
        size_t i = (*rr + k) % n;
        if (is_ejected(insts[i], now_ms))
            continue;
        if (insts[i] == avoid) {
            if (fallback < 0)
                fallback = (long)i;
            continue;
        }
        *rr = i + 1;
        return (long)i;
    }
    if (fallback < 0)
        fallback = (long)(*rr % n);
    *rr = (size_t)fallback + 1;
    return fallback;
}

bool
ag__lb_record(struct ag__hc_instance *const *insts, size_t n, struct ag__hc_instance *inst,
              bool failure, const struct ag__eject_policy *policy, uint64_t now_ms)
{
    if (!failure) {
        inst->failures = 0;
        /* Forget earlier ejections once the instance has stayed healthy for
         * the longest ejection time since it came back. */
        if (inst->ejections > 0 && inst->ejected_until_ms == 0 &&
            now_ms - inst->returned_at_ms >= policy->base_ms * AG__EJECT_MAX_FACTOR)
            inst->ejections = 0;
        return false;
    }
    if (is_ejected(inst, now_ms) || inst->removed)
        return false;
    if (++inst->failures < (policy->failures ? policy->failures : 1))
        return false;
    size_t ejected = ag__lb_ejected(insts, n, now_ms);
    if (ejected + 1 >= n || (ejected + 1) * 100 > (size_t)policy->max_percent * n)
        return false;
    uint64_t factor = 1;
    for (uint32_t i = 0; i < inst->ejections && factor < AG__EJECT_MAX_FACTOR; i++)
        factor *= 2;
    inst->ejected_until_ms = now_ms + policy->base_ms * factor;
    if (inst->ejected_until_ms == 0)
        inst->ejected_until_ms = 1;
    if (inst->ejections < 64)
        inst->ejections++;
    inst->failures = 0;
    return true;
}

bool
ag__lb_down(struct ag__hc_instance *const *insts, size_t n, struct ag__hc_instance *inst,
            const struct ag__eject_policy *policy, uint64_t now_ms)
{
    uint32_t need = policy->failures ? policy->failures : 1;
    if (inst->failures + 1 < need)
        inst->failures = need - 1;
    return ag__lb_record(insts, n, inst, true, policy, now_ms);
}
