/* SPDX-License-Identifier: MIT */
/* Bus delivery index of one subscription: which pending deliveries are
 * ready, delayed, leased, held or waiting behind an earlier message of
 * their subject, on htab.c's hash table and timer heap. Pure: times are
 * passed in as monotonic milliseconds. */
#include "agora/base.h"
#include "index.h"

#include <string.h>

#include "agora/mem.h"
#include "agora/str.h"

/* ---- Delivery index ---- */

static void
dlist_append(struct bus_dlist *l, struct bus_dlv *d)
{
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
}

/* Insert keeping seq order; the common case (newest) is at the tail. */
static void
dlist_insert_sorted(struct bus_dlist *l, struct bus_dlv *d)
{
    struct bus_dlv *after = l->tail;
    while (after != NULL && after->seq > d->seq)
        after = after->prev;
    d->prev = after;
    d->next = after ? after->next : l->head;
    if (d->next != NULL)
        d->next->prev = d;
    else
        l->tail = d;
    if (after != NULL)
        after->next = d;
    else
        l->head = d;
}

static void
dlist_remove(struct bus_dlist *l, struct bus_dlv *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = NULL;
    d->next = NULL;
}

/* Take 'd' out of the structure its state puts it in. The state is left as
 * it was; the caller sets the next one. */
static void
detach(struct bus_dlv *d)
{
    struct bus_q *q = d->q;
    switch (d->state) {
    case BUS_DLV_WAITING: dlist_remove(&d->subject->wait, d); break;
    case BUS_DLV_READY:
        dlist_remove(&q->ready, d);
        q->nready--;
        break;
    case BUS_DLV_DELAYED:
        bus_heap_remove(q->heap, &d->timed);
        q->ndelayed--;
        break;
    case BUS_DLV_LEASED:
        bus_heap_remove(q->heap, &d->timed);
        q->nleased--;
        break;
    case BUS_DLV_HELD: q->nheld--; break;
    }
}

static void
make_ready(struct bus_dlv *d)
{
    d->state = BUS_DLV_READY;
    d->timed.due = 0;
    dlist_append(&d->q->ready, d);
    d->q->nready++;
}

static void
make_delayed(struct bus_dlv *d, uint64_t due)
{
    d->state = BUS_DLV_DELAYED;
    d->timed.due = due;
    bus_heap_push(d->q->heap, &d->timed);
    d->q->ndelayed++;
}

/* A subject head (or an entry without subject) enters circulation. */
static void
activate(struct bus_dlv *d, uint64_t now)
{
    if (d->timed.due > now)
        make_delayed(d, d->timed.due);
    else
        make_ready(d);
}

static bool
subject_eq(const struct bus_hnode *n, const void *key)
{
    const struct bus_subject *s = BUS_CONTAINER(n, struct bus_subject, hnode);
    const struct ag_str *k = key;
    return s->len == k->len && memcmp(s->name, k->ptr, k->len) == 0;
}

static bool
dlv_eq(const struct bus_hnode *n, const void *key)
{
    const struct bus_dlv *d = BUS_CONTAINER(n, struct bus_dlv, hnode);
    return d->seq == *(const int64_t *)key;
}

void
bus_q_init(struct bus_q *q, struct bus_heap *heap, void *owner)
{
    memset(q, 0, sizeof(*q));
    bus_htab_init(&q->by_seq);
    bus_htab_init(&q->subjects);
    q->heap = heap;
    q->owner = owner;
}

void
bus_q_release(struct bus_q *q)
{
    size_t pos = 0;
    struct bus_hnode *n = bus_htab_next(&q->by_seq, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&q->by_seq, &pos, n);
        struct bus_dlv *d = BUS_CONTAINER(n, struct bus_dlv, hnode);
        bus_heap_remove(q->heap, &d->timed);
        ag_free(d);
        n = next;
    }
    pos = 0;
    n = bus_htab_next(&q->subjects, &pos, NULL);
    while (n != NULL) {
        struct bus_hnode *next = bus_htab_next(&q->subjects, &pos, n);
        ag_free(BUS_CONTAINER(n, struct bus_subject, hnode));
        n = next;
    }
    bus_htab_release(&q->by_seq);
    bus_htab_release(&q->subjects);
    memset(&q->ready, 0, sizeof(q->ready));
    q->n = q->nready = q->ndelayed = q->nleased = q->nheld = 0;
}

struct bus_dlv *
bus_q_find(const struct bus_q *q, int64_t seq)
{
    struct bus_hnode *n = bus_htab_find(&q->by_seq, bus_hash_i64(seq), dlv_eq, &seq);
    return n ? BUS_CONTAINER(n, struct bus_dlv, hnode) : NULL;
}

static struct bus_subject *
subject_get(struct bus_q *q, const char *name, size_t len)
{
    struct ag_str key = ag_str_make(name, len);
    uint64_t h = bus_hash_bytes(name, len);
    struct bus_hnode *n = bus_htab_find(&q->subjects, h, subject_eq, &key);
    if (n != NULL)
        return BUS_CONTAINER(n, struct bus_subject, hnode);
    struct bus_subject *s = ag_calloc(1, sizeof(*s) + len);
    s->len = len;
    memcpy(s->name, name, len);
    bus_htab_insert(&q->subjects, &s->hnode, h);
    return s;
}

struct bus_dlv *
bus_q_add(struct bus_q *q, int64_t seq, const char *subject, size_t len, int32_t attempts,
          uint64_t due, uint64_t now)
{
    if (bus_q_find(q, seq) != NULL)
        return NULL;
    struct bus_dlv *d = ag_calloc(1, sizeof(*d));
    d->timed.idx = BUS_HEAP_NONE;
    d->timed.kind = BUS_TIMED_DLV;
    d->timed.due = due;
    d->q = q;
    d->seq = seq;
    d->attempts = attempts;
    bus_htab_insert(&q->by_seq, &d->hnode, bus_hash_i64(seq));
    q->n++;
    if (len == 0) {
        activate(d, now);
        return d;
    }
    struct bus_subject *s = subject_get(q, subject, len);
    d->subject = s;
    struct bus_dlv *head = s->head;
    if (head == NULL) {
        s->head = d;
        activate(d, now);
    } else if (seq < head->seq &&
               (head->state == BUS_DLV_READY || head->state == BUS_DLV_DELAYED)) {
        /* An older message (a replayed dead letter) takes the subject back
         * from a head that has not been handed out yet. */
        detach(head);
        head->state = BUS_DLV_WAITING;
        dlist_insert_sorted(&s->wait, head);
        s->head = d;
        activate(d, now);
    } else {
        d->state = BUS_DLV_WAITING;
        dlist_insert_sorted(&s->wait, d);
    }
    return d;
}

size_t
bus_q_take(struct bus_q *q, uint64_t now, uint64_t lease_ms, uint64_t *io_token,
           struct bus_dlv **out, size_t max)
{
    size_t n = 0;
    while (n < max && q->ready.head != NULL) {
        struct bus_dlv *d = q->ready.head;
        detach(d);
        d->state = BUS_DLV_LEASED;
        d->attempts++;
        d->lease = ++*io_token;
        d->timed.due = now + lease_ms;
        bus_heap_push(q->heap, &d->timed);
        q->nleased++;
        out[n++] = d;
    }
    return n;
}

void
bus_q_retry(struct bus_dlv *d, uint64_t now, uint64_t delay_ms)
{
    if (d->state != BUS_DLV_LEASED && d->state != BUS_DLV_HELD)
        AG_BUG("bus_q_retry: delivery is not leased");
    detach(d);
    if (delay_ms == 0)
        make_ready(d);
    else
        make_delayed(d, now + delay_ms);
}

void
bus_q_hold(struct bus_dlv *d)
{
    if (d->state != BUS_DLV_LEASED && d->state != BUS_DLV_READY && d->state != BUS_DLV_DELAYED)
        AG_BUG("bus_q_hold: delivery is waiting or already held");
    detach(d);
    d->state = BUS_DLV_HELD;
    d->q->nheld++;
}

void
bus_q_wake(struct bus_dlv *d)
{
    if (d->state != BUS_DLV_DELAYED)
        AG_BUG("bus_q_wake: delivery is not delayed");
    detach(d);
    make_ready(d);
}

void
bus_q_remove(struct bus_dlv *d, uint64_t now)
{
    struct bus_q *q = d->q;
    detach(d);
    struct bus_subject *s = d->subject;
    if (s != NULL) {
        if (s->head == d) {
            s->head = s->wait.head;
            if (s->head != NULL) {
                dlist_remove(&s->wait, s->head);
                activate(s->head, now);
            }
        }
        if (s->head == NULL && s->wait.head == NULL) {
            bus_htab_remove(&q->subjects, &s->hnode);
            ag_free(s);
        }
    }
    bus_htab_remove(&q->by_seq, &d->hnode);
    q->n--;
    ag_free(d);
}
