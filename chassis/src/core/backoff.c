/* SPDX-License-Identifier: MIT */
/* Capped exponential backoff with full or equal jitter (agora/backoff.h). */
#include "agora/base.h"
#include "agora/backoff.h"

uint64_t
ag_backoff_cap_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt)
{
    uint64_t cap = base_ms;
    for (unsigned i = 1; i < attempt && cap < max_ms; i++)
        cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
    return cap > max_ms ? max_ms : cap;
}

uint64_t
ag_backoff_full_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd)
{
    uint64_t cap = ag_backoff_cap_ms(base_ms, max_ms, attempt);
    /* [0, UINT64_MAX] is every value: cap + 1 would wrap to 0. */
    if (cap == UINT64_MAX)
        return rnd;
    return rnd % (cap + 1);
}

uint64_t
ag_backoff_equal_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd)
{
    uint64_t cap = ag_backoff_cap_ms(base_ms, max_ms, attempt);
    uint64_t half = cap / 2;
    return half + rnd % (cap - half + 1);
}
