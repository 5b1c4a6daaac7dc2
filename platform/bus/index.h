/* SPDX-License-Identifier: MIT */
/* Bus delivery index of one subscription (index.c: which messages are
 * ready, delayed, leased or waiting behind an earlier message of their
 * subject) and the intrusive hash table and timer heap it is built on
 * (htab.c). Pure code: no I/O, no database, no clock (times are passed in
 * as monotonic milliseconds). Loop thread only. */
#ifndef BUS_INDEX_H
#define BUS_INDEX_H

#include "agora/base.h"

#include <stddef.h>

/* The struct of type 'type' whose member 'member' is at 'ptr'. */
#define BUS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- Intrusive hash table ----
 * Chained, power-of-two buckets, grows at load factor 1. The caller embeds a
 * node in its struct, computes the hash and compares keys. */

struct bus_hnode {
    struct bus_hnode *next; /* chain */
    uint64_t hash;          /* full hash of the key */
};

struct bus_htab {
    struct bus_hnode **buckets; /* NULL until the first insert */
    size_t mask;                /* buckets - 1 */
    size_t count;               /* nodes */
};

typedef bool (*bus_htab_eq_fn)(const struct bus_hnode *node, const void *key);

void bus_htab_init(struct bus_htab *t);
/* Free the buckets (not the nodes). */
void bus_htab_release(struct bus_htab *t);
void bus_htab_insert(struct bus_htab *t, struct bus_hnode *node, uint64_t hash);
/* Unlink 'node', which must be in 't'. */
void bus_htab_remove(struct bus_htab *t, struct bus_hnode *node);
/* The node with 'hash' for which eq(node, key) holds, or NULL. */
struct bus_hnode *bus_htab_find(const struct bus_htab *t, uint64_t hash, bus_htab_eq_fn eq,
                                const void *key);
/* Iterate: start with *pos = 0 and prev = NULL; returns NULL at the end.
 * The current node may be removed before the next call only if the caller
 * fetched the next one first. */
struct bus_hnode *bus_htab_next(const struct bus_htab *t, size_t *pos, struct bus_hnode *prev);

uint64_t bus_hash_bytes(const void *p, size_t len);
uint64_t bus_hash_i64(int64_t v);

/* ---- Timer heap ----
 * A binary min-heap of deadlines shared by every subscription (leases,
 * delays) and the held pulls, so one loop timer serves them all. */

enum bus_timed_kind {
    BUS_TIMED_DLV = 0, /* a struct bus_dlv: delay or lease ends */
    BUS_TIMED_WAITER,  /* a held pull reaches its wait_ms */
};

struct bus_timed {
    uint64_t due;             /* monotonic ms */
    size_t idx;               /* position in the heap; BUS_HEAP_NONE when out */
    enum bus_timed_kind kind; /* what the entry is embedded in */
};

#define BUS_HEAP_NONE SIZE_MAX

struct bus_heap {
    struct bus_timed **v; /* n entries, heap-ordered by due */
    size_t n;
    size_t cap;
};

void bus_heap_init(struct bus_heap *h);
void bus_heap_release(struct bus_heap *h);
void bus_heap_push(struct bus_heap *h, struct bus_timed *t);
/* Remove 't' if it is in the heap. */
void bus_heap_remove(struct bus_heap *h, struct bus_timed *t);
/* Earliest entry, or NULL. */
struct bus_timed *bus_heap_top(const struct bus_heap *h);

/* ---- Delivery index of one subscription ----
 *
 * One struct bus_dlv per pending delivery held in memory. States:
 *
 *   WAITING  an earlier message with the same subject is still unsettled;
 *            kept in its subject's list, in seq order
 *   READY    deliverable now; in the queue's ready list
 *   DELAYED  deliverable at timed.due (nack delay, retry delay, not_before)
 *   LEASED   handed out; redelivered or dead-lettered at timed.due
 *   HELD     being settled (ack, nack, dead-lettering) until that is durable
 *
 * A subject has at most one entry that is not WAITING (its head). When the
 * head is removed (acked or dead-lettered) the next one becomes READY or
 * DELAYED. Entries with an empty subject are never WAITING. */

enum bus_dlv_state {
    BUS_DLV_WAITING = 0, /* behind the head of its subject */
    BUS_DLV_READY,       /* in the ready list */
    BUS_DLV_DELAYED,     /* in the heap until it may be delivered */
    BUS_DLV_LEASED,      /* in the heap until the lease ends */
    BUS_DLV_HELD,        /* out of circulation until its settlement is durable */
};

struct bus_subject;
struct bus_q;

struct bus_dlv {
    struct bus_timed timed;      /* heap entry; must stay first */
    struct bus_hnode hnode;      /* in q->by_seq */
    struct bus_dlv *prev;        /* ready list or subject list */
    struct bus_dlv *next;        /* ready list or subject list */
    struct bus_q *q;             /* owner */
    struct bus_subject *subject; /* NULL for the empty subject */
    int64_t seq;                 /* message */
    uint64_t lease;              /* token of the latest hand-out, 0 before the first */
    int32_t attempts;            /* hand-outs so far */
    enum bus_dlv_state state;
};

struct bus_dlist {
    struct bus_dlv *head;
    struct bus_dlv *tail;
};

struct bus_subject {
    struct bus_hnode hnode; /* in q->subjects */
    struct bus_dlv *head;   /* the entry that holds the subject, or NULL */
    struct bus_dlist wait;  /* WAITING entries by seq */
    size_t len;             /* bytes of name */
    char name[];            /* 'len' bytes, not NUL-terminated */
};

struct bus_q {
    struct bus_htab by_seq;   /* every entry, by seq */
    struct bus_htab subjects; /* struct bus_subject by name */
    struct bus_dlist ready;   /* READY entries, oldest first */
    struct bus_heap *heap;    /* shared timer heap, borrowed */
    void *owner;              /* the subscription, for callers */
    size_t n;                 /* entries */
    size_t nready;            /* READY */
    size_t ndelayed;          /* DELAYED */
    size_t nleased;           /* LEASED */
    size_t nheld;             /* HELD */
};

void bus_q_init(struct bus_q *q, struct bus_heap *heap, void *owner);
/* Free every entry and subject (taking them out of the heap). */
void bus_q_release(struct bus_q *q);

/* Add a pending delivery of message 'seq' with 'subject' ('len' bytes, may
 * be 0), 'attempts' hand-outs already made, deliverable from monotonic time
 * 'due' (0: now). An entry behind an earlier one of its subject waits; the
 * subject list stays in seq order even when 'seq' is older than entries
 * already there (a replayed dead letter goes first). Returns the entry, or
 * NULL when 'seq' is already present (nothing changes). */
struct bus_dlv *bus_q_add(struct bus_q *q, int64_t seq, const char *subject, size_t len,
                          int32_t attempts, uint64_t due, uint64_t now);

/* The entry of 'seq', or NULL. */
struct bus_dlv *bus_q_find(const struct bus_q *q, int64_t seq);

/* Hand out up to 'max' READY entries, oldest first: each becomes LEASED
 * until now + 'lease_ms', its attempts grow by one and it gets the token
 * ++*io_token. Stores them in 'out' and returns how many. */
size_t bus_q_take(struct bus_q *q, uint64_t now, uint64_t lease_ms, uint64_t *io_token,
                  struct bus_dlv **out, size_t max);

/* Put a LEASED or HELD entry (nacked, lease ended, dead-lettering failed)
 * back: READY when 'delay_ms' is 0, else DELAYED until now + 'delay_ms'.
 * Its subject stays held. */
void bus_q_retry(struct bus_dlv *d, uint64_t now, uint64_t delay_ms);

/* Take a LEASED, READY or DELAYED entry out of circulation (HELD) while
 * its ack, nack or dead-lettering is being made durable; its subject stays
 * held until bus_q_remove (settled) or bus_q_retry (back in circulation). */
void bus_q_hold(struct bus_dlv *d);

/* A DELAYED entry's time came: it becomes READY. */
void bus_q_wake(struct bus_dlv *d);

/* Remove and free 'd' (acked or dead-lettered). When it held its subject,
 * the next entry of the subject becomes READY or DELAYED. */
void bus_q_remove(struct bus_dlv *d, uint64_t now);

#endif /* BUS_INDEX_H */
