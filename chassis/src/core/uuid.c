/* SPDX-License-Identifier: MIT */
/* UUIDv7 generation and validation. The generator state (timestamp and
 * counter packed in one 64-bit word) is advanced with compare-and-swap, so
 * ids are unique and strictly increasing across all threads of a process. */
#include "agora/base.h"
#include "agora/uuid.h"

#include <errno.h>
#include <stdatomic.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/random.h"
#include "agora/time.h"

#define SEQ_BITS 12
#define SEQ_MASK ((1u << SEQ_BITS) - 1)

/* (unix_ms << 12) | counter of the last id handed out. Adding 1 when the
 * counter is full carries into the timestamp, which is the overflow rule. */
static _Atomic uint64_t last_state;

static uint64_t
next_state(uint16_t seed)
{
    int64_t now = ag_time_unix_ms();
    uint64_t now_ms = now > 0 ? (uint64_t)now & 0xffffffffffffull : 0;
    uint64_t old = atomic_load_explicit(&last_state, memory_order_relaxed);
    uint64_t next;
    do {
        if (now_ms > old >> SEQ_BITS) {
            /* New millisecond: random start with the top bit clear, so at
             * least 2048 more ids fit before the timestamp must advance. */
            next = now_ms << SEQ_BITS | (seed & (SEQ_MASK >> 1));
        } else {
            next = old + 1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&last_state, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return next;
}

void
ag_uuid7(char out[AG_UUID_STRLEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[10];
    ag_random_fill(r, sizeof(r));
    uint64_t state = next_state((uint16_t)(r[8] | r[9] << 8));
    uint64_t ms = state >> SEQ_BITS;
    unsigned seq = (unsigned)(state & SEQ_MASK);

    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | seq >> 8);
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)(0x80 | (r[0] & 0x3f));
    for (int i = 9; i < 16; i++)
        b[i] = r[i - 8];

    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xf];
    }
    *p = '\0';
}

bool
ag_uuid_is_valid(struct ag_str s)
{
    if (s.len != AG_UUID_STRLEN)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s.ptr[i] != '-')
                return false;
        } else if (ag_hex_value(s.ptr[i]) < 0) {
            return false;
        }
    }
    return true;
}

int64_t
ag_uuid7_time_ms(struct ag_str s)
{
    if (!ag_uuid_is_valid(s) || s.ptr[14] != '7')
        return AG_EINVAL;
    /* The first 12 hex digits, skipping the dash at index 8. */
    int64_t ms = 0;
    for (size_t i = 0; i < 13; i++) {
        if (i != 8)
            ms = ms << 4 | ag_hex_value(s.ptr[i]);
    }
    return ms;
}
