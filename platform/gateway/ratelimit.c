/* SPDX-License-Identifier: MIT */
/* Token buckets per client address and per user, one per (route, key), in a
 * bounded LRU table: a bucket untouched long enough to have refilled equals
 * a fresh one, so the sweep drops those, and when the table is full the
 * least recently used bucket makes room. Answers carry what the 429 needs
 * (Retry-After and the RateLimit-* fields of draft-ietf-httpapi-ratelimit-
 * headers). */
#include "agora/base.h"
#include "gateway.h"

#include <math.h>
#include <string.h>

#include "agora/mem.h"

#define SWEEP_MAX 4096 /* buckets looked at per sweep */

struct bucket {
    struct gw_entry e;
    double tokens;
    uint64_t last_ns;    /* when 'tokens' was computed */
    uint64_t full_at_ns; /* when it will hold 'burst' tokens again */
    size_t keylen;
    char key[GW_RL_KEY_MAX];
};

struct gw_ratelimit {
    struct gw_table table;
    struct bucket *free_list; /* released buckets, reused through e.hnext */
};

static void
bucket_free(struct gw_entry *e, void *udata)
{
    struct gw_ratelimit *rl = udata;
    struct bucket *b = (struct bucket *)e;
    if (rl->table.slots == NULL) {
        ag_free(b);
        return;
    }
    b->e.hnext = (struct gw_entry *)rl->free_list;
    rl->free_list = b;
}

struct gw_ratelimit *
gw_ratelimit_new(size_t max_keys)
{
    struct gw_ratelimit *rl = ag_calloc(1, sizeof(*rl));
    gw_table_init(&rl->table, max_keys, bucket_free, rl);
    return rl;
}

void
gw_ratelimit_free(struct gw_ratelimit *rl)
{
    if (rl == NULL)
        return;
    /* Entries freed during release go straight to ag_free. */
    struct gw_entry **slots = rl->table.slots;
    struct gw_entry *e = rl->table.lru.next;
    while (e != &rl->table.lru) {
        struct gw_entry *next = e->next;
        ag_free(e);
        e = next;
    }
    ag_free(slots);
    rl->table.slots = NULL;
    while (rl->free_list != NULL) {
        struct bucket *b = rl->free_list;
        rl->free_list = (struct bucket *)b->e.hnext;
        ag_free(b);
    }
    ag_free(rl);
}

size_t
gw_ratelimit_count(const struct gw_ratelimit *rl)
{
    return rl->table.count;
}

void
gw_ratelimit_take(struct gw_ratelimit *rl, struct ag_str key, const struct gw_rate *rate,
                  uint64_t now_ns, struct gw_rate_result *out)
{
    memset(out, 0, sizeof(*out));
    out->allowed = true;
    if (rate->rate <= 0 || key.len > GW_RL_KEY_MAX)
        return;
    uint64_t h = gw_table_hash(&rl->table, key.ptr, key.len);
    struct bucket *b = (struct bucket *)gw_table_find(&rl->table, key.ptr, key.len, h);
    if (b == NULL) {
        b = rl->free_list;
        if (b != NULL)
            rl->free_list = (struct bucket *)b->e.hnext;
        else
            b = ag_malloc(sizeof(*b));
        memcpy(b->key, key.ptr, key.len);
        b->keylen = key.len;
        b->e.key = b->key;
        b->e.keylen = key.len;
        b->e.hash = h;
        b->tokens = rate->burst;
        b->last_ns = now_ns;
        gw_table_insert(&rl->table, &b->e);
    } else if (now_ns > b->last_ns) {
        double add = (double)(now_ns - b->last_ns) / 1e9 * rate->rate;
        b->tokens = b->tokens + add > rate->burst ? rate->burst : b->tokens + add;
        b->last_ns = now_ns;
    }
    if (b->tokens > rate->burst)
        b->tokens = rate->burst; /* the route's burst was lowered by a reload */
    out->limit = (uint64_t)rate->burst;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        out->allowed = false;
        out->retry_after = (uint64_t)ceil((1.0 - b->tokens) / rate->rate);
        if (out->retry_after == 0)
            out->retry_after = 1;
    }
    out->remaining = (uint64_t)floor(b->tokens);
    double to_full = (rate->burst - b->tokens) / rate->rate;
    out->reset_s = (uint64_t)ceil(to_full);
    b->full_at_ns = now_ns + (uint64_t)(to_full * 1e9);
}

void
gw_ratelimit_sweep(struct gw_ratelimit *rl, uint64_t now_ns)
{
    struct gw_entry *e = gw_table_oldest(&rl->table);
    for (size_t seen = 0; e != NULL && seen < SWEEP_MAX; seen++) {
        struct gw_entry *newer = gw_table_newer(&rl->table, e);
        if (((struct bucket *)e)->full_at_ns <= now_ns)
            gw_table_remove(&rl->table, e);
        e = newer;
    }
}
