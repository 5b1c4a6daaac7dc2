/* SPDX-License-Identifier: MIT */
/* Idempotency records in a service's own database: the answers given to
 * HTTP requests sent with an Idempotency-Key (IETF draft semantics: the
 * same key and request get the first answer again, another request under
 * the key is refused, a key whose first request is still running is busy),
 * and the replies given to saga commands by step key (the same step again
 * has no second effect and re-publishes the first reply). Both are kept for
 * a configurable time and swept by ag_idem_sweep (the service chassis runs
 * it on a timer when a service asks for these records). Transport-neutral:
 * the HTTP side (header, 409/422 answers, replay) is in agora/service.h. */
#ifndef AG_IDEMPOTENCY_H
#define AG_IDEMPOTENCY_H

#include "agora/base.h"
#include "agora/mem.h"
#include "agora/str.h"

struct ag_store;

#define AG_IDEM_HASH_LEN  65                   /* SHA-256 in hex, with its NUL */
#define AG_IDEM_KEY_MAX   255                  /* bytes of an Idempotency-Key */
#define AG_IDEM_TTL_MS    (24 * 3600 * 1000LL) /* the default time a record is kept */
#define AG_IDEM_SWEEP_MAX 1000                 /* rows deleted by one sweep, at most */

struct ag_idem; /* the records of one store; opaque */

struct ag_idem_config {
    uint64_t ttl_ms; /* how long a key or an answered step is kept; 0: AG_IDEM_TTL_MS */
};

/* Create the tables in 'store' when missing (outside any transaction) and
 * forget every key left in progress (at start no request is running: a
 * key in progress belongs to a process that stopped). '*out' is freed
 * with ag_idem_free; 'store' must outlive it. Returns 0 or a store error. */
int ag_idem_new(struct ag_store *store, const struct ag_idem_config *cfg, struct ag_idem **out);

/* Free 'idem' (NULL accepted). */
void ag_idem_free(struct ag_idem *idem);

/* Delete the keys created, and the answered steps last written, more than
 * the configured time before 'now_ms' (at most AG_IDEM_SWEEP_MAX rows of
 * each); '*out_n' (may be NULL) gets how many. Steps still pending are
 * kept: they await their answer. Opens its own transaction unless one is
 * open. Loop thread. */
int ag_idem_sweep(struct ag_idem *idem, int64_t now_ms, int64_t *out_n);

/* ---- HTTP Idempotency-Key ---- */

enum ag_idem_state {
    AG_IDEM_NEW = 0,  /* first use: the key is now in progress; go on, then finish or forget */
    AG_IDEM_REPLAY,   /* answered before: 'out_answer' holds that answer */
    AG_IDEM_BUSY,     /* the first request is still in progress (409) */
    AG_IDEM_MISMATCH, /* the key was used for another request (422) */
};

/* An answer as it was sent. */
struct ag_idem_answer {
    int status;               /* HTTP status */
    const char *content_type; /* e.g. "application/json" */
    const char *body;         /* NUL-terminated */
    size_t len;               /* bytes of 'body' */
};

/* SHA-256 (hex) of the concatenation of 'parts' with a NUL between them:
 * what identifies a request (method, path, canonical body...). */
void ag_idem_hash(const struct ag_str *parts, size_t nparts, char out[AG_IDEM_HASH_LEN]);

/* Look up key 'key' of 'scope' (the caller's user id, or "" when keys are
 * global), inside the caller's transaction. A key not seen (or swept) is
 * recorded as in progress for request 'hash' and AG_IDEM_NEW returned; a
 * key seen with another hash is AG_IDEM_MISMATCH; one in progress,
 * AG_IDEM_BUSY; one answered, AG_IDEM_REPLAY with the answer in
 * 'out_answer' (strings in 'pool'). Returns 0 or a store error. */
int ag_idem_begin(struct ag_idem *idem, const char *scope, const char *key, const char *hash,
                  int64_t now_ms, struct ag_pool *pool, enum ag_idem_state *out_state,
                  struct ag_idem_answer *out_answer);

/* Record 'answer' for the key (recorded as in progress or not at all):
 * later requests with the same key and hash get it back. */
int ag_idem_finish(struct ag_idem *idem, const char *scope, const char *key, const char *hash,
                   const struct ag_idem_answer *answer, int64_t now_ms);

/* Forget the key (its request failed before it had an answer worth
 * keeping, e.g. a 503): the next request with it starts again. */
int ag_idem_forget(struct ag_idem *idem, const char *scope, const char *key);

/* ---- Saga step replay ---- */

/* A step a participant took, by its step key. Strings are borrowed from
 * the caller (put) or from the pool (get, list). */
struct ag_step {
    const char *key;           /* "<order_id>:<step>" */
    const char *command;       /* what took it (the command type, or a short name) */
    const char *subject;       /* what it is about (the order id), or NULL */
    bool done;                 /* answered; false: taken, its answer not known yet */
    const char *reply_type;    /* done: the reply's event type */
    const char *reply_subject; /* done: the reply's subject, or NULL */
    const char *data;          /* done: the reply's data (JSON); pending: what answering it
                                  later needs (JSON), or NULL */
};

/* The step 'key' into 'out' (strings in 'pool'); AG_ENOENT when unknown. */
int ag_step_get(struct ag_idem *idem, const char *key, struct ag_pool *pool, struct ag_step *out);

/* Record 'step' (inserted, or replacing the row of its key: a pending step
 * becomes done). In the caller's transaction, with the effect and the
 * reply it records. */
int ag_step_put(struct ag_idem *idem, const struct ag_step *step, int64_t now_ms);

/* Up to 'max' pending steps, oldest first, into 'out' (strings in 'pool');
 * '*out_n' gets how many. */
int ag_step_list_pending(struct ag_idem *idem, size_t max, struct ag_pool *pool,
                         struct ag_step *out, size_t *out_n);

#endif /* AG_IDEMPOTENCY_H */
