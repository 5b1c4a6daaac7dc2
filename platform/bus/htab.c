/* SPDX-License-Identifier: MIT */
/* Bus containers: the intrusive hash table (topics, subscriptions,
 * deliveries by seq, subjects) and the binary min-heap of deadlines that
 * one loop timer serves (leases, delays, held pulls). Pure. */
#include "agora/base.h"
#include "index.h"

#include <string.h>

#include "agora/mem.h"

/* ---- Hash table ---- */

#define HTAB_INITIAL 16

void
bus_htab_init(struct bus_htab *t)
{
    memset(t, 0, sizeof(*t));
}

void
bus_htab_release(struct bus_htab *t)
{
    ag_free(t->buckets);
    memset(t, 0, sizeof(*t));
}

static void
htab_grow(struct bus_htab *t)
{
    size_t nb = t->buckets ? (t->mask + 1) * 2 : HTAB_INITIAL;
    struct bus_hnode **b = ag_calloc(nb, sizeof(*b));
    if (t->buckets != NULL) {
        for (size_t i = 0; i <= t->mask; i++) {
            struct bus_hnode *n = t->buckets[i];
            while (n != NULL) {
                struct bus_hnode *next = n->next;
                size_t j = (size_t)n->hash & (nb - 1);
                n->next = b[j];
                b[j] = n;
                n = next;
            }
        }
    }
    ag_free(t->buckets);
    t->buckets = b;
    t->mask = nb - 1;
}

void
bus_htab_insert(struct bus_htab *t, struct bus_hnode *node, uint64_t hash)
{
    if (t->buckets == NULL || t->count >= t->mask + 1)
        htab_grow(t);
    node->hash = hash;
    size_t i = (size_t)hash & t->mask;
    node->next = t->buckets[i];
    t->buckets[i] = node;
    t->count++;
}

void
bus_htab_remove(struct bus_htab *t, struct bus_hnode *node)
{
    struct bus_hnode **pp = &t->buckets[(size_t)node->hash & t->mask];
    while (*pp != NULL && *pp != node)
        pp = &(*pp)->next;
    if (*pp == NULL)
        AG_BUG("bus_htab_remove: node not in table");
    *pp = node->next;
    node->next = NULL;
    t->count--;
}

struct bus_hnode *
bus_htab_find(const struct bus_htab *t, uint64_t hash, bus_htab_eq_fn eq, const void *key)
{
    if (t->buckets == NULL)
        return NULL;
    for (struct bus_hnode *n = t->buckets[(size_t)hash & t->mask]; n != NULL; n = n->next) {
        if (n->hash == hash && eq(n, key))
            return n;
    }
    return NULL;
}

struct bus_hnode *
bus_htab_next(const struct bus_htab *t, size_t *pos, struct bus_hnode *prev)
{
    if (t->buckets == NULL)
        return NULL;
    if (prev != NULL && prev->next != NULL)
        return prev->next;
    size_t i = prev != NULL ? ((size_t)prev->hash & t->mask) + 1 : *pos;
    for (; i <= t->mask; i++) {
        if (t->buckets[i] != NULL) {
            *pos = i;
            return t->buckets[i];
        }
    }
    *pos = i;
    return NULL;
}

uint64_t
bus_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t
bus_hash_i64(int64_t v)
{
    /* splitmix64 finaliser: consecutive seqs spread over every bucket. */
    uint64_t x = (uint64_t)v;
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* ---- Timer heap ---- */

void
bus_heap_init(struct bus_heap *h)
{
    memset(h, 0, sizeof(*h));
}

void
bus_heap_release(struct bus_heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->idx = BUS_HEAP_NONE;
    ag_free(h->v);
    memset(h, 0, sizeof(*h));
}

static void
heap_set(struct bus_heap *h, size_t i, struct bus_timed *t)
{
    h->v[i] = t;
    t->idx = i;
}

static void
heap_up(struct bus_heap *h, size_t i)
{
    struct bus_timed *t = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->due <= t->due)
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void
heap_down(struct bus_heap *h, size_t i)
{
    struct bus_timed *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->due < h->v[c]->due)
            c++;
        if (t->due <= h->v[c]->due)
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, t);
}

void
bus_heap_push(struct bus_heap *h, struct bus_timed *t)
{
    if (t->idx != BUS_HEAP_NONE)
        AG_BUG("bus_heap_push: entry already in the heap");
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = ag_realloc(h->v, h->cap * sizeof(*h->v));
    }
    heap_set(h, h->n++, t);
    heap_up(h, t->idx);
}

void
bus_heap_remove(struct bus_heap *h, struct bus_timed *t)
{
    size_t i = t->idx;
    if (i == BUS_HEAP_NONE)
        return;
    t->idx = BUS_HEAP_NONE;
    h->n--;
    if (i == h->n)
        return;
    struct bus_timed *moved = h->v[h->n];
    heap_set(h, i, moved);
    heap_up(h, i);
    heap_down(h, moved->idx);
}

struct bus_timed *
bus_heap_top(const struct bus_heap *h)
{
    return h->n > 0 ? h->v[0] : NULL;
}
