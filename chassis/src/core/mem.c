/* SPDX-License-Identifier: MIT */
/* Allocation wrappers (abort on OOM) and the request pool. The only file
 * allowed to call malloc/free directly. */
#include "agora/base.h"
#include "agora/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

AG_NORETURN static void
oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void
ag__bug(const char *file, int line, const char *why)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"BUG at %s:%d: %s\"}\n", file, line, why);
    abort();
}

void *
ag_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
ag_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        oom(count * size);
    return p;
}

void *
ag_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *
ag_strdup(const char *s)
{
    return ag_strndup(s, strlen(s));
}

char *
ag_strndup(const char *s, size_t n)
{
    char *p = ag_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void
ag_free(void *p)
{
    free(p);
}

char *
ag_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        AG_BUG("bad format");
    char *p = ag_malloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

/* ---- Pool ---- */

#define POOL_ALIGN 16

struct pool_block {
    struct pool_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(POOL_ALIGN) unsigned char data[];
};

struct pool_cleanup {
    struct pool_cleanup *next;
    ag_pool_cleanup_fn fn;
    void *arg;
};

struct ag_pool {
    struct pool_block *head;  /* current block first */
    struct pool_block *first; /* the block allocated with the pool itself */
    struct pool_cleanup *cleanups;
    size_t block_size;
};

static struct pool_block *
block_new(size_t size)
{
    struct pool_block *b = ag_malloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct ag_pool *
ag_pool_new(size_t block_size)
{
    /* One allocation: the pool, then its first block (freed with the pool). */
    block_size = block_size ? block_size : 4096;
    size_t head = (sizeof(struct ag_pool) + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    struct ag_pool *pool = ag_malloc(head + sizeof(struct pool_block) + block_size);
    pool->block_size = block_size;
    struct pool_block *b = (struct pool_block *)((unsigned char *)pool + head);
    b->next = NULL;
    b->size = block_size;
    b->used = 0;
    pool->head = b;
    pool->first = b;
    pool->cleanups = NULL;
    return pool;
}

void
ag_pool_free(struct ag_pool *pool)
{
    if (pool == NULL)
        return;
    /* Cleanups were pushed on the front, so this is reverse registration order. */
    struct pool_cleanup *c = pool->cleanups;
    while (c != NULL) {
        struct pool_cleanup *next = c->next;
        c->fn(c->arg);
        c = next;
    }
    struct pool_block *b = pool->head;
    while (b != NULL) {
        struct pool_block *next = b->next;
        if (b != pool->first)
            ag_free(b);
        b = next;
    }
    ag_free(pool);
}

void *
ag_pool_alloc(struct ag_pool *pool, size_t n)
{
    n = (n + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    if (n == 0)
        n = POOL_ALIGN;
    struct pool_block *b = pool->head;
    if (b->size - b->used >= n) {
        void *p = b->data + b->used;
        b->used += n;
        return p;
    }
    if (n > pool->block_size / 4) {
        /* Large allocation: a dedicated block behind the current one, so the
         * current block's free space stays usable. */
        struct pool_block *big = block_new(n);
        big->used = n;
        big->next = b->next;
        b->next = big;
        return big->data;
    }
    struct pool_block *nb = block_new(pool->block_size);
    nb->next = b;
    pool->head = nb;
    nb->used = n;
    return nb->data;
}

void *
ag_pool_calloc(struct ag_pool *pool, size_t n)
{
    void *p = ag_pool_alloc(pool, n);
    memset(p, 0, n);
    return p;
}

char *
ag_pool_strndup(struct ag_pool *pool, const char *s, size_t n)
{
    char *p = ag_pool_alloc(pool, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
ag_pool_strdup(struct ag_pool *pool, const char *s)
{
    return ag_pool_strndup(pool, s, strlen(s));
}

char *
ag_pool_vprintf(struct ag_pool *pool, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0)
        AG_BUG("bad format");
    char *p = ag_pool_alloc(pool, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

char *
ag_pool_printf(struct ag_pool *pool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = ag_pool_vprintf(pool, fmt, ap);
    va_end(ap);
    return p;
}

void
ag_pool_cleanup_add(struct ag_pool *pool, ag_pool_cleanup_fn fn, void *arg)
{
    struct pool_cleanup *c = ag_pool_alloc(pool, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->next = pool->cleanups;
    pool->cleanups = c;
}
