/* SPDX-License-Identifier: MIT */
/* UUIDv7 identifiers (RFC 9562): every record and event id in Agora. They
 * sort by creation time, so they index well as primary keys, and within one
 * process each new id sorts strictly after the previous one. */
#ifndef AG_UUID_H
#define AG_UUID_H

#include "agora/base.h"
#include "agora/str.h"

/* Characters of "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", without the NUL. */
#define AG_UUID_STRLEN 36

/* Write a new UUIDv7 to 'out' in lowercase canonical form, NUL-terminated.
 * Layout: 48-bit Unix milliseconds, version 7, a 12-bit counter in rand_a
 * (RFC 9562 section 6.2 method 1, reseeded randomly each millisecond with
 * its top bit clear), variant 0b10, 62 random bits from getrandom(2).
 * Ids from one process are strictly increasing (as strings and as bytes),
 * even if the wall clock steps back: the last timestamp is then reused, and
 * when the counter overflows the timestamp advances by one millisecond.
 * Thread-safe (lock-free); any thread. Aborts only if the kernel refuses
 * randomness, which cannot happen on supported Linux versions. */
void ag_uuid7(char out[AG_UUID_STRLEN + 1]);

/* True if 's' is a canonical 8-4-4-4-12 UUID of hex digits (lowercase or
 * uppercase), of any version. */
bool ag_uuid_is_valid(struct ag_str s);

/* The Unix millisecond timestamp of the UUIDv7 's', or AG_EINVAL (negative)
 * when 's' is not a valid UUID of version 7. */
int64_t ag_uuid7_time_ms(struct ag_str s);

#endif /* AG_UUID_H */
