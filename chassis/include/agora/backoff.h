/* SPDX-License-Identifier: MIT */
/* Capped exponential backoff with jitter, the one formula behind every
 * retry of the platform: HTTP client retries, the events relay and
 * consumers, deliveries such as the notifications service's e-mails
 * (STYLE.md section 8). Pure arithmetic: the caller passes the random
 * number, so tests are deterministic. Any thread. */
#ifndef AG_BACKOFF_H
#define AG_BACKOFF_H

#include "agora/base.h"

/* The cap of retry number 'attempt' (1 is the first retry; 0 counts as 1):
 * 'base_ms' doubled 'attempt' - 1 times, at most 'max_ms'. Saturates
 * instead of overflowing. */
uint64_t ag_backoff_cap_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt);

/* Full jitter: a wait uniform in [0, cap] taken from 'rnd' (any 64 random
 * bits), so many clients retrying at once spread over the whole window. */
uint64_t ag_backoff_full_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd);

/* Equal jitter: half the cap plus a share of the other half taken from
 * 'rnd', for retries that must never come sooner than cap / 2. */
uint64_t ag_backoff_equal_ms(uint64_t base_ms, uint64_t max_ms, unsigned attempt, uint64_t rnd);

#endif /* AG_BACKOFF_H */
