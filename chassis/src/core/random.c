/* SPDX-License-Identifier: MIT */
/* Buffered getrandom(2): one system call per 1 KiB of identifiers instead
 * of one per identifier (bench/catalog showed getrandom at ~9% of a
 * catalog read's CPU). */
#include "agora/base.h"
#include "agora/random.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define POOL_BYTES 1024

static _Thread_local unsigned char pool[POOL_BYTES];
static _Thread_local size_t pool_left; /* unused bytes at the end of 'pool' */

static void
fill_from_kernel(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got == -1) {
            if (errno == EINTR)
                continue;
            AG_BUG("getrandom failed");
        }
        p += got;
        n -= (size_t)got;
    }
}

void
ag_random_fill(void *out, size_t n)
{
    unsigned char *p = out;
    if (n > POOL_BYTES / 4) {
        fill_from_kernel(p, n);
        return;
    }
    if (pool_left < n) {
        fill_from_kernel(pool, POOL_BYTES);
        pool_left = POOL_BYTES;
    }
    unsigned char *src = pool + POOL_BYTES - pool_left;
    memcpy(p, src, n);
    /* Each byte is used once: wipe what was handed out. */
    memset(src, 0, n);
    pool_left -= n;
}
