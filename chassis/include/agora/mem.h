/* SPDX-License-Identifier: MIT */
/* Allocation: the only place raw malloc/free are called (mem.c). Out of
 * memory aborts with a message; the supervisor restarts the process. Also the
 * per-request pool (arena with cleanup hooks), nginx-style. */
#ifndef AG_MEM_H
#define AG_MEM_H

#include "agora/base.h"

#include <stdarg.h>

/* Heap allocation; never returns NULL (aborts on OOM). ag_free accepts NULL. */
void *ag_malloc(size_t n);
void *ag_calloc(size_t count, size_t size);
void *ag_realloc(void *p, size_t n);
char *ag_strdup(const char *s);
char *ag_strndup(const char *s, size_t n);
void ag_free(void *p);

/* printf into a fresh heap string; owned by the caller (ag_free). */
char *ag_asprintf(const char *fmt, ...) AG_PRINTF(1, 2);

/* ---- Pool ---------------------------------------------------------------
 * A pool hands out memory that lives until ag_pool_free(); no individual
 * frees. Cleanup hooks run in reverse order of registration when the pool is
 * freed, for non-memory resources (json_t references, statements...).
 * Not thread-safe: one pool belongs to one request on one loop. */
struct ag_pool;

typedef void (*ag_pool_cleanup_fn)(void *arg);

/* New pool whose first block is 'block_size' bytes (0 means 4 KiB). */
struct ag_pool *ag_pool_new(size_t block_size);

/* Run cleanup hooks, release all memory. Accepts NULL. */
void ag_pool_free(struct ag_pool *pool);

/* 'n' bytes aligned for any type; never NULL. */
void *ag_pool_alloc(struct ag_pool *pool, size_t n);
void *ag_pool_calloc(struct ag_pool *pool, size_t n);
char *ag_pool_strdup(struct ag_pool *pool, const char *s);
char *ag_pool_strndup(struct ag_pool *pool, const char *s, size_t n);
char *ag_pool_printf(struct ag_pool *pool, const char *fmt, ...) AG_PRINTF(2, 3);
char *ag_pool_vprintf(struct ag_pool *pool, const char *fmt, va_list ap) AG_PRINTF(2, 0);

/* Register 'fn(arg)' to run when the pool is freed. */
void ag_pool_cleanup_add(struct ag_pool *pool, ag_pool_cleanup_fn fn, void *arg);

#endif /* AG_MEM_H */
