/* SPDX-License-Identifier: MIT */
/* A bounded hash table with least-recently-used eviction, intrusive so that
 * a lookup or an insert allocates nothing: the rate limiter's buckets and
 * the verified-token cache both live in one. Keys are hashed with SipHash
 * (libsodium crypto_shorthash) under a random per-table key, so clients
 * cannot pick keys that pile into one chain. */
#include "agora/base.h"
#include "gateway.h"

#include <string.h>

#include <sodium.h>

#include "agora/mem.h"

static size_t
slots_for(size_t max)
{
    size_t n = 64;
    while (n < max && n < ((size_t)1 << 30))
        n <<= 1;
    return n;
}

void
gw_table_init(struct gw_table *t, size_t max, gw_table_free_fn free_fn, void *udata)
{
    memset(t, 0, sizeof(*t));
    t->max = max > 0 ? max : 1;
    size_t n = slots_for(t->max);
    t->slots = ag_calloc(n, sizeof(struct gw_entry *));
    t->mask = n - 1;
    t->lru.next = &t->lru;
    t->lru.prev = &t->lru;
    t->free_fn = free_fn;
    t->udata = udata;
    randombytes_buf(t->seed, sizeof(t->seed));
}

static void
lru_unlink(struct gw_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void
lru_push_front(struct gw_table *t, struct gw_entry *e)
{
    e->prev = &t->lru;
    e->next = t->lru.next;
    t->lru.next->prev = e;
    t->lru.next = e;
}

static void
chain_unlink(struct gw_table *t, struct gw_entry *e)
{
    struct gw_entry **pp = &t->slots[e->hash & t->mask];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    e->hnext = NULL;
}

void
gw_table_release(struct gw_table *t)
{
    if (t->slots == NULL)
        return;
    struct gw_entry *e = t->lru.next;
    while (e != &t->lru) {
        struct gw_entry *next = e->next;
        if (t->free_fn != NULL)
            t->free_fn(e, t->udata);
        e = next;
    }
    ag_free(t->slots);
    t->slots = NULL;
    t->count = 0;
}

uint64_t
gw_table_hash(const struct gw_table *t, const void *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, len, t->seed);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h;
}

struct gw_entry *
gw_table_find(struct gw_table *t, const void *key, size_t len, uint64_t hash)
{
    for (struct gw_entry *e = t->slots[hash & t->mask]; e != NULL; e = e->hnext) {
        if (e->hash == hash && e->keylen == len && memcmp(e->key, key, len) == 0) {
            if (t->lru.next != e) {
                lru_unlink(e);
                lru_push_front(t, e);
            }
            return e;
        }
    }
    return NULL;
}

void
gw_table_remove(struct gw_table *t, struct gw_entry *e)
{
    chain_unlink(t, e);
    lru_unlink(e);
    t->count--;
    if (t->free_fn != NULL)
        t->free_fn(e, t->udata);
}

void
gw_table_insert(struct gw_table *t, struct gw_entry *e)
{
    while (t->count >= t->max && t->lru.prev != &t->lru) {
        gw_table_remove(t, t->lru.prev);
        t->evictions++;
    }
    size_t slot = e->hash & t->mask;
    e->hnext = t->slots[slot];
    t->slots[slot] = e;
    lru_push_front(t, e);
    t->count++;
}

struct gw_entry *
gw_table_oldest(const struct gw_table *t)
{
    return t->lru.prev == &t->lru ? NULL : t->lru.prev;
}

struct gw_entry *
gw_table_newer(const struct gw_table *t, const struct gw_entry *e)
{
    return e->prev == &t->lru ? NULL : e->prev;
}
