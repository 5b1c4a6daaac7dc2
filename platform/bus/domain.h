/* SPDX-License-Identifier: MIT */
/* Bus domain: names, topic patterns, ack ids, who may publish and consume
 * what, and the validation of what clients send (domain.c; the publish
 * scanner is scan.c). The delivery index and its containers are index.h.
 * Pure code: no I/O, no database, no clock. Loop thread only. */
#ifndef BUS_DOMAIN_H
#define BUS_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/mem.h"

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

/* Find member 'key' (no escapes in it) of the JSON object 'json' ('len'
 * bytes, already validated as JSON, e.g. a message's data): true with the
 * raw bytes of its value (a string with its quotes) in '*out_value' and
 * '*out_len'; false when 'json' is not an object or has no such member at
 * its top level. Duplicate keys: the first. */
bool bus_json_member(const char *json, size_t len, const char *key, const char **out_value,
                     size_t *out_len);

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
