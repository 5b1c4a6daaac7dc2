/* SPDX-License-Identifier: MIT */
/* Fast non-blocking random bytes for identifiers (UUIDv7 random bits,
 * trace and span ids): getrandom(2) fills a per-thread buffer, and each
 * byte is handed out once. Not for secrets: keys, tokens and password salts
 * use libsodium's randombytes directly. Not fork-safe without exec (the
 * child would repeat the parent's buffer); Agora processes never fork
 * without exec. */
#ifndef AG_RANDOM_H
#define AG_RANDOM_H

#include "agora/base.h"

/* Fill 'p' with 'n' random bytes. Any thread. Aborts if the kernel's
 * generator fails, which it does not once initialised. */
void ag_random_fill(void *p, size_t n);

#endif /* AG_RANDOM_H */
