/* SPDX-License-Identifier: MIT */
/* Bus internals shared by its files, which call each other one way only:
 * main.c (composition root) calls engine.c (in-memory state, group commit,
 * delivery, timers, durability, metrics), api.c (handlers, route table) and
 * sweep.c (retention and dedup); api.c calls engine.c; engine.c calls
 * spans.c (spans); all of them call store.c (SQL) and the pure files:
 * scan.c, domain.c (domain.h), index.c and htab.c (index.h). All state is
 * the one struct bus, passed explicitly. See docs/internals/bus.md for the
 * design and the call graph. Loop thread only. */
#ifndef BUS_BUS_H
#define BUS_BUS_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "domain.h"
#include "index.h"

#define BUS_MAGIC 0x42555321u /* "BUS!" */

/* The schema (migrations/, generated): the bus's connection and the
 * checkpointer's open the database with it. */
extern const struct ag_migration bus_migrations[];
extern const size_t bus_nmigrations;

struct bus_settings {
    uint64_t dedup_window_ms;   /* AGORA_BUS_DEDUP_WINDOW */
    uint64_t retention_ms;      /* AGORA_BUS_RETENTION */
    uint64_t sweep_interval_ms; /* AGORA_BUS_SWEEP_INTERVAL */
    int64_t max_waiting;        /* AGORA_BUS_MAX_WAITING: held pulls */
    int64_t window;             /* AGORA_BUS_WINDOW: deliveries in memory per subscription */
    int64_t max_subscriptions;  /* AGORA_BUS_MAX_SUBSCRIPTIONS */
    int64_t max_topics;         /* AGORA_BUS_MAX_TOPICS */
    int64_t commit_max;         /* AGORA_BUS_COMMIT_MAX: queued messages that commit at once */
    int64_t checkpoint_pages;   /* AGORA_BUS_CHECKPOINT_PAGES: WAL pages that start a
                                   background checkpoint; 0: SQLite's, in COMMIT */
    char *publishers;           /* AGORA_BUS_PUBLISHERS: "service:pattern,..." */
};

struct bus_sub;
struct bus_resp;

/* What the background checkpointer is doing (engine.c, Checkpoints). */
enum bus_ckpt_phase {
    BUS_CKPT_IDLE = 0, /* nothing in flight */
    BUS_CKPT_BULK,     /* a PASSIVE checkpoint runs beside the group commits */
    BUS_CKPT_FINAL,    /* a PASSIVE checkpoint of the rest runs while commits wait */
};

/* A topic: created when first published to (or named by a valid publish). */
struct bus_topic {
    struct bus_hnode hnode;    /* in bus->topics */
    int64_t messages;          /* messages committed, ever */
    int64_t last_seq;          /* seq of the newest, 0 when none */
    int64_t tx_messages;       /* added by the commit being written */
    int64_t tx_last_seq;       /* newest seq in the commit being written */
    struct bus_topic *tx_next; /* list of topics touched by that commit */
    bool tx_touched;           /* on that list */
    struct bus_sub **subs;     /* subscriptions whose patterns match (cache) */
    size_t nsubs;
    uint64_t subs_gen; /* bus->subs_gen the cache was computed for */
    size_t len;        /* bytes of name */
    char name[BUS_NAME_MAX + 1];
};

/* A pull held until a message is deliverable or its wait ends. */
struct bus_waiter {
    struct bus_timed timed;  /* deadline in the heap; must stay first */
    struct bus_waiter *prev; /* sub's FIFO of waiters */
    struct bus_waiter *next;
    struct bus_sub *sub;
    struct ag_http_req *req; /* answered exactly once */
    int64_t max;             /* max_messages */
};

struct bus_sub {
    struct bus_hnode hnode; /* in bus->subs by name */
    int64_t id;             /* subscriptions.id */
    char name[BUS_NAME_MAX + 1];
    char **patterns; /* npatterns owned strings */
    size_t npatterns;
    int64_t ack_deadline_ms;
    int64_t max_attempts;
    int64_t retry_delay_ms;
    char created_at[AG_RFC3339_LEN];
    struct bus_q q;           /* deliveries held in memory */
    int64_t pending;          /* durable pending deliveries (not dead), loaded or not */
    int64_t dead;             /* dead letters */
    int64_t loaded_to;        /* every pending delivery with seq <= loaded_to is in q */
    bool spilled;             /* pending deliveries above loaded_to wait on disk */
    struct bus_waiter *whead; /* held pulls, oldest first */
    struct bus_waiter *wtail;
    size_t nwaiters;
    struct bus_sub *tx_next; /* list of subscriptions to dispatch after a commit */
    bool tx_touched;         /* on that list */
};

enum bus_op_kind {
    BUS_OP_PUBLISH = 0, /* POST /v1/messages */
    BUS_OP_ACK,         /* POST .../ack */
    BUS_OP_NACK,        /* POST .../nack */
};

/* One request waiting for the next group commit. Lives in the request pool. */
struct bus_op {
    struct bus_op *next;
    enum bus_op_kind kind;
    struct ag_http_req *req;
    /* publish */
    struct bus_msg_in *msgs; /* n messages */
    size_t n;
    int64_t *seqs;             /* per message: assigned or original seq */
    bool *dup;                 /* per message: a duplicate of an earlier id */
    struct bus_topic **topics; /* per message */
    int64_t start_ns;          /* Unix ns it arrived, for its spans; 0: spans off */
    /* ack, nack */
    const char *sub_name;
    struct bus_sub *sub;      /* resolved in the commit; NULL: unknown */
    struct bus_ack_ref *refs; /* n ack ids */
    struct bus_dlv **hits;    /* the deliveries they settle */
    size_t nhits;
    int64_t delay_ms;  /* nack; -1: the subscription's retry delay */
    const char *error; /* nack; NULL: none */
};

/* A group of operations committed to SQLite in one transaction and waiting
 * for the WAL fsync that makes it durable; then its effects are applied to
 * memory and its requests answered, batches in commit order. */
struct bus_batch {
    struct bus_batch *next;
    struct bus_op *ops; /* in arrival order */
    int64_t last_seq;   /* bus->last_seq after its commit */
    bool covered;       /* the fsync in flight started after its commit */
};

/* A handler that changes subscriptions (PUT, DELETE, replay, purge), run
 * only while no batch is waiting for durability (see bus_run_admin). */
struct bus_admin {
    struct bus_admin *next;
    struct ag_http_req *req;
    ag_route_fn fn;
};

struct bus {
    uint32_t magic;
    struct ag_service *svc; /* borrowed */
    struct ag_store *store; /* borrowed from svc */
    uv_loop_t *loop;        /* borrowed from svc */
    struct bus_settings settings;
    struct bus_grant grants[BUS_MAX_GRANTS]; /* AGORA_BUS_PUBLISHERS, parsed */
    size_t ngrants;
    struct bus_htab topics; /* struct bus_topic by name */
    size_t ntopics;
    struct bus_htab subs; /* struct bus_sub by name */
    size_t nsubs;
    uint64_t subs_gen; /* bumped when subscriptions or their patterns change */
    int64_t next_sub_id;
    struct bus_heap heap;   /* leases, delays, held pulls */
    uv_timer_t heap_timer;  /* fires at the heap's earliest due */
    uint64_t armed_due;     /* due the heap timer is armed for; 0: not armed */
    uv_check_t check;       /* group commit after each poll phase */
    uv_timer_t sweep_timer; /* retention and dedup sweeps */
    bool handles_open;
    struct bus_op *ops_head; /* queued for the next commit */
    struct bus_op *ops_tail;
    size_t queued_msgs;             /* messages in queued publishes */
    size_t queued_ops;              /* operations queued */
    int64_t last_seq;               /* newest seq committed to SQLite */
    int64_t durable_seq;            /* newest seq durable and applied to memory */
    int64_t last_pub_ms;            /* published_at of the newest (kept monotonic) */
    uint64_t token;                 /* last lease token handed out */
    size_t nwaiting;                /* held pulls, all subscriptions */
    bool stopping;                  /* SIGTERM received: pulls no longer wait */
    bool closing;                   /* on_stop ran: close the handles once idle */
    bool sync_wal;                  /* fdatasync the WAL ourselves (durability full) */
    int wal_fd;                     /* the WAL file, for fdatasync; -1 when not used */
    uv_work_t sync_work;            /* fdatasync on the thread pool */
    bool syncing;                   /* sync_work in flight */
    int sync_errno;                 /* result of the last fdatasync */
    struct ag_store *ckpt_store;    /* 2nd connection, checkpoints on the thread pool; NULL:
                                       SQLite checkpoints in COMMIT, on the loop */
    uv_work_t ckpt_work;            /* one checkpoint on the thread pool */
    enum bus_ckpt_phase ckpt_phase; /* what ckpt_work does; IDLE when not in flight */
    bool ckpt_hold;                 /* group commits wait for the final pass */
    int ckpt_rc;                    /* ckpt_work's result (0 or AG_E*); thread pool */
    int64_t ckpt_frames;            /* ckpt_work: WAL frames it saw; thread pool */
    int64_t ckpt_done;              /* ckpt_work: of them, copied; thread pool */
    int64_t ckpt_copied;            /* loop's copy of ckpt_done; 0 once the WAL starts over */
    int64_t ckpt_mark;              /* WAL frames when the last checkpoint ended */
    int ckpt_bulks;                 /* bulk passes since the last final one */
    bool ckpt_failed;               /* the last background checkpoint failed */
    bool ckpt_warned;               /* the fall-back or a failure was logged */
    struct bus_batch *batches_head; /* committed, not yet durable, oldest first */
    struct bus_batch *batches_tail;
    size_t nbatches;
    struct bus_admin *admin_head; /* admin handlers waiting for nbatches == 0 */
    struct bus_admin *admin_tail;
    struct bus_resp *resp_head; /* answers queued by the engine (bus_flush_responses) */
    struct bus_resp *resp_tail;
    struct bus_sub *touched;     /* subs whose ready list may have grown (bus_touch) */
    struct bus_topic *tx_topics; /* topics touched by the commit being written */
    int64_t stored;              /* rows in messages (bus_messages_stored) */
    int64_t sweep_from;          /* first seq the next retention sweep looks at */
    int64_t sweep_seqs;          /* seqs per retention range, adapted to its cost */
    int64_t sweep_dedup;         /* dedup rows per sweep step, adapted to its cost */
    struct ag_metric *m_published;
    struct ag_metric *m_delivered;
    struct ag_metric *m_acked;
    struct ag_metric *m_redelivered;
    struct ag_metric *m_dead;
    struct ag_metric *m_backlog;
    struct ag_metric *m_oldest;
    struct ag_metric *m_batch;
    struct ag_metric *m_waiting;
    struct ag_metric *m_stored;
    struct ag_metric *m_ckpt;
    struct ag_metric *m_wal;
};

/* ---- engine.c: lifecycle ---- */

/* Set up 'bus' for 'svc' (borrowed): register its metrics, load topics,
 * subscriptions and their first deliveries from the store, set up the WAL
 * fsync (durability full), and start the check handle (group commit) and
 * the heap timer on the service's loop. Returns 0, or a store error
 * (logged); then no handle was started, and bus_engine_free still releases
 * what was loaded. */
int bus_engine_open(struct bus *bus, struct ag_service *svc);

/* Commit every queued operation to SQLite in one transaction (a batch) and
 * start the WAL fsync that makes it durable, unless one is running (the
 * next one covers it); the batch's requests are answered once it is durable.
 * Without sync_wal the batch is finished at once. Called after each poll
 * phase, when the queue grows past commit_max, and at stop. */
void bus_commit(struct bus *bus);

/* Answer every held pull with an empty list (shutdown). */
void bus_release_waiters(struct bus *bus);

/* Close the engine's handles once no fsync is in flight (at once, or when
 * the last batch finishes). Call after bus_commit and bus_release_waiters. */
void bus_engine_close(struct bus *bus);

/* Free the in-memory state after the loop ended (no-op when bus_engine_open
 * never ran). */
void bus_engine_free(struct bus *bus);

/* ---- engine.c: in-memory state ---- */

/* The subscription named 'name', or NULL. Borrowed. */
struct bus_sub *bus_sub_find(struct bus *bus, const char *name);

/* New subscription in memory (not in the database) from 'cfg' (copied),
 * receiving deliveries after bus->durable_seq. Freed by bus_sub_free. */
struct bus_sub *bus_sub_new(struct bus *bus, int64_t id, const char *name,
                            const struct bus_sub_config *cfg, const char *created_at);

/* Replace the patterns and settings of 'sub' with copies of 'cfg'. */
void bus_sub_configure(struct bus *bus, struct bus_sub *sub, const struct bus_sub_config *cfg);

/* Take 'sub' out of memory: answer its held pulls with 'status' (200: empty
 * list; else 404), free its deliveries and itself. */
void bus_sub_free(struct bus *bus, struct bus_sub *sub, int status);

/* The topic named 'name' ('len' bytes), created in memory when absent and
 * 'create' (the caller enforces the topic limit); NULL otherwise. Borrowed
 * until bus teardown. */
struct bus_topic *bus_topic_get(struct bus *bus, const char *name, size_t len, bool create);

/* Refresh t->subs, the subscriptions whose patterns match 't', when the
 * set of subscriptions changed since it was computed. */
void bus_topic_match(struct bus *bus, struct bus_topic *t);

/* Bring deliveries from disk into memory when the subscription spilled and
 * its in-memory window has room (only durable ones: seq <= durable_seq).
 * Returns 0 or a store error (logged). */
int bus_sub_refill(struct bus *bus, struct bus_sub *sub);

/* ---- engine.c: for the handlers ----
 * The engine never answers a request while it walks its own state: answers
 * are queued and sent by bus_flush_responses, which a handler calls before
 * it returns whenever it asked the engine for one. */

/* Queue 'op' (request pool memory) for the next group commit; commits at
 * once when the queue reaches commit_max messages. */
void bus_enqueue(struct bus *bus, struct bus_op *op);

/* Hand out up to 'max' messages of 'sub' and queue the answer to 'req'
 * (an empty list when none is ready). */
void bus_answer_pull(struct bus *bus, struct bus_sub *sub, struct ag_http_req *req, int64_t max);

/* Hold the pull 'req' on 'sub' for up to 'wait_ms' (a waiter in request
 * pool memory, in the sub's FIFO and the timer heap); answered when
 * messages are ready or the wait ends. */
void bus_hold_pull(struct bus *bus, struct bus_sub *sub, struct ag_http_req *req, int64_t max,
                   int64_t wait_ms);

/* Note that 'sub' may have new ready deliveries, for the next
 * bus_dispatch_touched (once per sub until then). */
void bus_touch(struct bus *bus, struct bus_sub *sub);

/* Answer the held pulls of every touched subscription while messages are
 * ready, oldest pull first, and forget the touched set. */
void bus_dispatch_touched(struct bus *bus);

/* Send every queued answer. Safe to re-enter. */
void bus_flush_responses(struct bus *bus);

/* Run admin handler 'fn' now when no batch waits for durability, else when
 * the last one has finished (and before the next batch starts), so that it
 * never changes subscriptions under a batch's pending effects. */
void bus_run_admin(struct bus *bus, struct ag_http_req *req, ag_route_fn fn);

/* Make everything committed so far durable before answering an admin
 * request (a blocking fdatasync of the WAL; no-op without sync_wal). A
 * failed fdatasync is fatal: it is logged and the process exits. */
void bus_sync_now(struct bus *bus);

/* ---- spans.c ---- */

/* Unix time in nanoseconds (a span's start taken before it begins). */
int64_t bus_unix_ns(void);

/* Whether 'data' ('len' bytes of valid JSON) is an object with a
 * top-level "traceparent" that parses; then '*out' holds it (as
 * ag_trace_parse fills it). */
bool bus_trace_parent(const char *data, size_t len, struct ag_trace_ctx *out);

/* The span of message 'i' of publish 'op', ended now: accepted (durable,
 * 'error' NULL) or failed with 'error'. No-op while spans are off or the
 * message has no sampled traceparent. */
void bus_span_publish(const struct bus_op *op, size_t i, const char *error);

/* Where the fields of the message bus_store_message_append just wrote lie
 * in its 'out' (byte offsets and lengths; strings with their quotes). */
struct bus_msg_loc {
    size_t id_off;
    size_t id_len;
    size_t topic_off;
    size_t topic_len;
    size_t data_off;
    size_t data_len;
};

/* The span of one hand-out of a message (attempt 'attempt') to 'sub',
 * begun at 'start_ns' (Unix ns), ended now; the message is at 'loc' in
 * 'out'. No-op while spans are off or without a sampled traceparent. */
void bus_span_deliver(const struct bus_sub *sub, int64_t attempt, const struct ag_buf *out,
                      const struct bus_msg_loc *loc, int64_t start_ns);

/* ---- api.c ---- */

extern const struct ag_route bus_routes[];
extern const size_t bus_nroutes;

/* ---- sweep.c ---- */

/* Start the retention and dedup sweeps: a step every sweep_interval_ms
 * (sooner while a pass is unfinished). */
void bus_sweep_start(struct bus *bus);

/* Stop and close the sweep timer (idempotent; no-op if never started). */
void bus_sweep_stop(struct bus *bus);

/* ---- store.c ----
 * SQL over the chassis store, loop thread only. Every function returns 0 or
 * the negative AG_E* code of ag_stmt_step (AG_EIO, AG_EBUSY, ...; the reason
 * is in ag_store_errmsg) unless its comment says more. Writers run inside
 * the caller's transaction when one is open, else in their own. Strings
 * passed in are borrowed for the call; 'fn' callbacks get strings valid
 * during the call only. */

typedef int (*bus_store_topic_fn)(const char *name, int64_t messages, int64_t last_seq,
                                  void *udata);
typedef int (*bus_store_sub_fn)(int64_t id, const char *name, const char *topics_json,
                                int64_t ack_deadline_ms, int64_t max_attempts,
                                int64_t retry_delay_ms, const char *created_at, void *udata);
typedef void (*bus_store_pending_fn)(int64_t seq, int32_t attempts, int64_t not_before_ms,
                                     const char *subject, size_t subject_len, void *udata);

/* Call 'fn' for every topic / subscription row (start-up); a non-zero
 * return of 'fn' stops and is returned. */
int bus_store_topics_load(struct ag_store *st, bus_store_topic_fn fn, void *udata);
int bus_store_subs_load(struct ag_store *st, bus_store_sub_fn fn, void *udata);
/* Pending and dead deliveries of 'sub_id'. */
int bus_store_sub_counts(struct ag_store *st, int64_t sub_id, int64_t *out_pending,
                         int64_t *out_dead);
/* Pending deliveries of 'sub_id' with 'after' < seq <= 'upto', oldest
 * first, at most 'limit'; '*out_n' gets how many rows were passed to 'fn'. */
int bus_store_pending_load(struct ag_store *st, int64_t sub_id, int64_t after, int64_t upto,
                           int64_t limit, bus_store_pending_fn fn, void *udata, int64_t *out_n);
/* published_at (Unix ms) of the oldest pending delivery; 0 when none. */
int bus_store_oldest_pending(struct ag_store *st, int64_t sub_id, int64_t *out_ms);

/* Messages in the log. */
int bus_store_message_count(struct ag_store *st, int64_t *out_n);
/* Seq and time of the last message published with 'id', or AG_ENOENT. */
int bus_store_dedup_get(struct ag_store *st, const char *id, int64_t *out_seq, int64_t *out_at);
/* Record (or move) 'id' to message 'seq' published at 'at'. */
int bus_store_dedup_put(struct ag_store *st, int64_t seq, const char *id, int64_t at);
/* Append 'm' to the log as 'seq'; its data is stored as given. */
int bus_store_message_insert(struct ag_store *st, int64_t seq, const struct bus_msg_in *m,
                             int64_t published_ms);
/* Create or overwrite the counters of topic 'name'. */
int bus_store_topic_put(struct ag_store *st, const char *name, int64_t messages, int64_t last_seq);
/* A pending delivery of 'seq' to 'sub_id' (attempts 0). */
int bus_store_delivery_insert(struct ag_store *st, int64_t sub_id, int64_t seq);
/* Acked: the row goes. */
int bus_store_delivery_delete(struct ag_store *st, int64_t sub_id, int64_t seq);
/* Nacked: 'attempts' made, deliverable from 'not_before_ms' (Unix ms, 0: now). */
int bus_store_delivery_retry(struct ag_store *st, int64_t sub_id, int64_t seq, int32_t attempts,
                             int64_t not_before_ms);
/* Dead-lettered at 'dead_ms' after 'attempts', with 'last_error' (may be NULL). */
int bus_store_delivery_dead(struct ag_store *st, int64_t sub_id, int64_t seq, int32_t attempts,
                            int64_t dead_ms, const char *last_error);

/* Append the message's fields "id", "topic", "subject", "seq",
 * "published_at" and "data" (no braces) to 'out'; where they lie goes to
 * '*out_loc' unless it is NULL. AG_ENOENT when gone. */
int bus_store_message_append(struct ag_store *st, int64_t seq, struct ag_buf *out,
                             struct bus_msg_loc *out_loc);

/* Insert subscription 'name' ('topics_json' the array of patterns, 'now'
 * RFC 3339) and set '*out_id'; AG_EEXIST when the name is taken. */
int bus_store_sub_insert(struct ag_store *st, const char *name, const char *topics_json,
                         const struct bus_sub_config *cfg, const char *now, int64_t *out_id);
/* Replace the configuration of subscription 'id'. */
int bus_store_sub_update(struct ag_store *st, int64_t id, const char *topics_json,
                         const struct bus_sub_config *cfg, const char *now);
/* Delete the subscription and every delivery of it. */
int bus_store_sub_delete(struct ag_store *st, int64_t id);

/* Append dead letters of 'sub_id' with seq > 'after' (at most 'limit') as
 * JSON objects separated by commas; '*out_n' gets their number. */
int bus_store_dead_list(struct ag_store *st, int64_t sub_id, int64_t after, int64_t limit,
                        struct ag_buf *out, size_t *out_n);
/* Append one dead letter as a JSON object; AG_ENOENT when it is not one. */
int bus_store_dead_get(struct ag_store *st, int64_t sub_id, int64_t seq, struct ag_buf *out);

struct bus_dead_ref {
    int64_t seq;
    const char *subject; /* pool copy */
    size_t subject_len;
};

/* Dead letters of 'sub_id' among 'seqs' ('n' of them), or the oldest 'limit'
 * when 'seqs' is NULL, copied into 'pool'. */
int bus_store_dead_select(struct ag_store *st, int64_t sub_id, const int64_t *seqs, size_t n,
                          size_t limit, struct ag_pool *pool, struct bus_dead_ref **out_refs,
                          size_t *out_n);
/* Make dead letter 'seq' pending again with attempts 0; AG_ENOENT when it
 * is not (or no longer) a dead letter. */
int bus_store_dead_revive(struct ag_store *st, int64_t sub_id, int64_t seq);
/* Delete every dead letter of 'sub_id'; '*out_n' gets how many. */
int bus_store_dead_purge(struct ag_store *st, int64_t sub_id, int64_t *out_n);

/* Retention: delete messages with seq in ['from', 'to') published before
 * 'cut_ms' that no subscription still references. */
int bus_store_sweep_messages(struct ag_store *st, int64_t from, int64_t to, int64_t cut_ms,
                             int64_t *out_deleted);
/* Smallest seq >= 'from' of a message published before 'cut_ms', or 0. */
int bus_store_first_old_message(struct ag_store *st, int64_t from, int64_t cut_ms,
                                int64_t *out_seq);
/* Forget dedup ids recorded before 'cut_ms', at most 'limit' per call. */
int bus_store_sweep_dedup(struct ag_store *st, int64_t cut_ms, int64_t limit, int64_t *out_deleted);

#endif /* BUS_BUS_H */
