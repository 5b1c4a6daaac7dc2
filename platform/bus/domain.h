/* SPDX-License-Identifier: MIT */
/* Bus domain: names, topic patterns, ack ids and the validation of what
 * clients send, plus the in-memory delivery index of one subscription (which
 * messages are ready, delayed, leased or waiting behind an earlier message
 * of their subject) with the intrusive hash table and timer heap it is built
 * on. Pure code: no I/O, no database, no clock (times are passed in as
 * monotonic milliseconds). Everything here runs on the loop thread. */
#ifndef BUS_DOMAIN_H
#define BUS_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/mem.h"

/* The struct of type 'type' whose member 'member' is at 'ptr'. */
#define BUS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- Limits of the wire API ---- */

#define BUS_NAME_MAX        128          /* topic and subscription names */
#define BUS_ID_MAX          128          /* publisher's message id, code points */
#define BUS_SUBJECT_MAX     200          /* ordering key, code points */
#define BUS_DATA_MAX        (256 * 1024) /* serialized data of one message */
#define BUS_BATCH_MAX       1000         /* messages in one publish */
#define BUS_PATTERNS_MAX    32           /* topic patterns of one subscription */
#define BUS_PULL_MAX        1000         /* max_messages of one pull */
#define BUS_WAIT_MAX_MS     120000       /* wait_ms of one pull */
#define BUS_ACK_IDS_MAX     10000        /* ack ids in one ack or nack */
#define BUS_ERROR_MAX       1000         /* nack "error" text, code points */
#define BUS_NACK_DELAY_MAX  86400000     /* delay_ms of a nack: one day */
#define BUS_DEAD_LIST_MAX   1000         /* limit of a dead-letter listing */
#define BUS_REPLAY_SEQS_MAX 10000        /* seqs named in one replay */
#define BUS_ACK_ID_LEN      48           /* buffer for "<seq>.<token>" and a NUL */

/* Subscription defaults and bounds. */
#define BUS_ACK_DEADLINE_DEF 30000
#define BUS_ACK_DEADLINE_MIN 100
#define BUS_ACK_DEADLINE_MAX 43200000 /* 12 h */
#define BUS_ATTEMPTS_DEF     5
#define BUS_ATTEMPTS_MAX     1000
#define BUS_RETRY_DELAY_DEF  1000
#define BUS_RETRY_DELAY_MAX  3600000 /* 1 h */
#define BUS_PULL_DEF         100
#define BUS_WAIT_DEF_MS      30000

/* ---- Names and patterns ---- */

/* True when 's' is a topic or subscription name: [a-z0-9][a-z0-9._-]{0,127}. */
bool bus_name_is_valid(const char *s, size_t len);

/* True when 's' is a subscription pattern: "*", a topic name, or a topic
 * name followed by ".*" (any topic starting with that name and a dot). */
bool bus_pattern_is_valid(const char *s);

/* Does 'pattern' (valid) match topic 'topic' ('len' bytes)? */
bool bus_pattern_match(const char *pattern, const char *topic, size_t len);

/* ---- Ack ids ----
 * An ack id names one hand-out of one delivery: "<seq>.<token>", both
 * decimal, the token unique per hand-out. An ack id of an earlier hand-out
 * no longer matches once the message has been handed out again. */

/* Write the ack id of ('seq', 'token') to 'out', NUL-terminated. */
void bus_ack_id_format(int64_t seq, uint64_t token, char out[BUS_ACK_ID_LEN]);

/* Parse an ack id. Returns 0, or AG_EINVAL when 's' is not one. */
int bus_ack_id_parse(const char *s, int64_t *out_seq, uint64_t *out_token);

/* ---- JSON output ---- */

/* Append the decimal digits of 'v' to 'out' (hot paths: no printf).
 * Returns 0 or AG_ETOOBIG. */
int bus_buf_append_u64(struct ag_buf *out, uint64_t v);
int bus_buf_append_i64(struct ag_buf *out, int64_t v);

/* Append 's' ('len' bytes of valid UTF-8) to 'out' as a quoted JSON string.
 * Returns 0 or AG_ETOOBIG. */
int bus_json_append_string(struct ag_buf *out, const char *s, size_t len);

/* ---- Request bodies ----
 * Each parser validates a body into its struct, adding every field error to
 * 'v', and returns true when the body is valid. Strings are borrowed from
 * 'body' and live as long as it does. */

struct bus_msg_in {
    const char *id;      /* 1..BUS_ID_MAX code points, NUL-terminated (pool) */
    const char *topic;   /* a valid name, NUL-terminated (pool) */
    const char *subject; /* "" when absent or null (pool) */
    size_t subject_len;  /* bytes */
    const char *data;    /* the JSON value exactly as sent, inside the body */
    size_t data_len;     /* bytes, at most BUS_DATA_MAX */
};

/* Parse a publish body, {"messages":[{"id","topic","subject"?,"data"}, ...]}
 * with 1..BUS_BATCH_MAX messages, 'len' bytes at 'body' (need not be
 * NUL-terminated). The body must be strict JSON (RFC 8259; UTF-8, no NUL,
 * no trailing data; duplicate keys are refused in the envelope, not inside
 * "data"). Returns 0 and sets '*out_msgs' ('*out_n' entries, from 'pool';
 * "data" points into 'body', which must outlive them); AG_EPARSE for
 * malformed JSON, with a message in 'errbuf' ('errlen' bytes); AG_EINVAL
 * with every field error in 'v' ("messages[3].topic"). */
int bus_publish_parse(struct ag_valid *v, const char *body, size_t len, struct ag_pool *pool,
                      struct bus_msg_in **out_msgs, size_t *out_n, char *errbuf, size_t errlen);

struct bus_sub_config {
    const char *patterns[BUS_PATTERNS_MAX]; /* valid patterns, borrowed */
    size_t npatterns;                       /* 1..BUS_PATTERNS_MAX */
    int64_t ack_deadline_ms;                /* lease length of one hand-out */
    int64_t max_attempts;                   /* deliveries before dead-lettering */
    int64_t retry_delay_ms;                 /* delay after an expired lease or bare nack */
};

/* {"topics":[...], "ack_deadline_ms"?, "max_attempts"?, "retry_delay_ms"?};
 * absent settings take the defaults (BUS_*_DEF). */
bool bus_sub_config_from_json(struct ag_valid *v, json_t *body, struct bus_sub_config *out);

/* {"max_messages"?, "wait_ms"?} with defaults BUS_PULL_DEF, BUS_WAIT_DEF_MS. */
bool bus_pull_from_json(struct ag_valid *v, json_t *body, int64_t *out_max, int64_t *out_wait_ms);

struct bus_ack_ref {
    int64_t seq;    /* message */
    uint64_t token; /* hand-out */
};

/* {"ack_ids":[...]} (ack) or {"ack_ids":[...], "delay_ms"?, "error"?} (nack,
 * when 'nack'). Ack ids that do not parse are errors ("ack_ids[3]").
 * '*out_refs' is allocated from 'pool'. '*out_delay_ms' is -1 when absent;
 * '*out_error' NULL when absent. */
bool bus_acks_from_json(struct ag_valid *v, json_t *body, bool nack, struct ag_pool *pool,
                        struct bus_ack_ref **out_refs, size_t *out_n, int64_t *out_delay_ms,
                        const char **out_error);

/* {"seqs":[...]} (1..BUS_REPLAY_SEQS_MAX positive integers) or {} (all):
 * '*out_seqs' NULL and '*out_n' 0 for all. '*out_seqs' is from 'pool'. */
bool bus_replay_from_json(struct ag_valid *v, json_t *body, struct ag_pool *pool,
                          int64_t **out_seqs, size_t *out_n);

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

/* ---- Who may do what (least privilege) ---- */

/* The default of AGORA_BUS_PUBLISHERS: the event types each service
 * publishes (its outbox), and nothing else. */
#define BUS_PUBLISHERS_DEFAULT                                                                     \
    "catalog:product.*,users:user.*,users:session.*,orders:order.*,orders:cmd.inventory.*,"        \
    "orders:cmd.payment.*,orders:cmd.shipment.*,inventory:inventory.*,inventory:stock.*,"          \
    "payments:payment.*,shipping:shipment.*"
#define BUS_MAX_GRANTS 256

/* One row of the table: 'service' may publish topics matching 'pattern'. */
struct bus_grant {
    char service[64];
    char pattern[BUS_NAME_MAX + 3];
};

/* Parse "service:pattern,..." (empty: nobody but the operator publishes).
 * AG_EINVAL with the reason in 'err'. */
int bus_grants_parse(const char *text, struct bus_grant *out, size_t max, size_t *n, char *err,
                     size_t errlen);

/* Whether 'service' may publish to 'topic' ('len' bytes) under 'grants'.
 * The operator (AG_IDENTITY_OPERATOR) may publish anything. */
bool bus_may_publish(const struct bus_grant *grants, size_t n, const char *service,
                     const char *topic, size_t len);

/* Whether 'service' may consume (ensure, pull, ack, nack, delete)
 * subscription 'sub': its own, named after it ("orders") or under it
 * ("orders.audit"). The operator may use every subscription. */
bool bus_may_consume(const char *service, const char *sub);

#endif /* BUS_DOMAIN_H */
