/* SPDX-License-Identifier: MIT */
/* Payments service internals shared by main.c, api.c, ops.c, events.c,
 * provider.c and store.c: the service's struct, its settings, the provider
 * interface and each file's calls. Everything runs on the service's loop
 * thread. */
#ifndef PAY_PAYMENTS_H
#define PAY_PAYMENTS_H

#include "agora/base.h"

#include <uv.h>

#include "agora/buf.h"
#include "agora/http_server.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define PAY_SWEEP_BATCH 100  /* expired authorizations released per sweep */
#define PAY_PENDING_MAX 1000 /* saga steps left at the provider answered at start */
#define PAY_LIST_MAX    100  /* payments of one order listed */

struct pay_settings {
    uint64_t provider_timeout_ms; /* AGORA_PAYMENTS_PROVIDER_TIMEOUT */
    uint64_t auth_ttl_ms;         /* AGORA_PAYMENTS_AUTH_TTL */
    uint64_t sweep_interval_ms;   /* AGORA_PAYMENTS_SWEEP_INTERVAL */
    uint64_t sandbox_latency_ms;  /* AGORA_PAYMENTS_SANDBOX_LATENCY */
    char *orders_url;             /* AGORA_PAYMENTS_ORDERS_URL */
};

/* ---- provider.c: the payment provider interface (STYLE.md section 3) ---- */

struct pay_provider;
struct pay_provider_call; /* one authorization in progress at the provider */

struct pay_auth_result {
    enum pay_auth_outcome outcome; /* never PAY_AUTH_NO_ANSWER here */
    struct pay_card card;
    char ref[64]; /* the provider's id of the authorization (approved only) */
};

/* The answer to an authorization; 'res' is borrowed for the call. */
typedef void (*pay_provider_auth_cb)(struct pay_provider *prov, const struct pay_auth_result *res,
                                     void *udata);

struct pay_provider_ops {
    const char *name;
    /* Ask for 'amount' on 'token'. Returns 0 and '*out_call'; 'cb' then
     * fires exactly once, later on the loop, unless the call is cancelled
     * first (it may never fire: the caller keeps a deadline). A synchronous
     * failure returns an error and 'cb' never fires. */
    int (*authorize)(struct pay_provider *prov, const char *token, struct ag_money amount,
                     pay_provider_auth_cb cb, void *udata, struct pay_provider_call **out_call);
    /* Abandon 'call' (its 'cb' has not fired): 'cb' never fires, and an
     * authorization the provider may have made for it is released. */
    void (*cancel)(struct pay_provider *prov, struct pay_provider_call *call);
    /* Settle an approved authorization 'ref': take 'amount', release it,
     * give 'amount' back. 0 or an error code. */
    int (*capture)(struct pay_provider *prov, const char *ref, struct ag_money amount);
    int (*release)(struct pay_provider *prov, const char *ref);
    int (*refund)(struct pay_provider *prov, const char *ref, struct ag_money amount);
    /* Free the provider once no call is in progress; accepts NULL. */
    void (*free)(struct pay_provider *prov);
};

struct pay_provider {
    const struct pay_provider_ops *ops;
    void *impl;
};

/* The built-in sandbox (DESIGN.md section 2): answers after 'latency_ms' on
 * 'loop' as pay_sandbox_outcome says, and never for tok_timeout. */
struct pay_provider *pay_sandbox_new(uv_loop_t *loop, uint64_t latency_ms);

/* ---- The service ---- */

struct pay_auth; /* ops.c: an authorization waiting for the provider */

struct pay {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox */
    struct ag_idem *idem;     /* borrowed from svc: Idempotency-Key answers, saga steps */
    uv_loop_t *loop;          /* borrowed from svc */
    struct pay_settings settings;
    struct pay_provider *provider; /* owned */
    struct pay_auth *inflight;     /* authorizations waiting for the provider */
    uv_timer_t sweep;              /* expiry of authorizations */
    bool sweep_started;
    bool stopping;                /* no new authorization is started */
    struct ag_metric *m_total;    /* payments_total{operation,outcome} */
    struct ag_metric *m_amount;   /* payments_amount_minor_total{operation,currency} */
    struct ag_metric *m_inflight; /* payments_provider_inflight */
};

/* ---- ops.c: what HTTP and commands share ---- */

/* Count operation 'op' ("authorize", "capture", "void", "refund", "expire")
 * with 'outcome'; 'amount' in 'currency' when it succeeded. */
void pay_count(struct pay *pay, const char *op, const char *outcome, int64_t amount,
               const char *currency);

/* How an authorization ends, for its starter. */
struct pay_auth_done {
    int rc;                            /* 0, or the store error that lost the result */
    enum pay_auth_outcome outcome;     /* PAY_AUTH_NO_ANSWER: timed out */
    const struct pay_payment *payment; /* approved and recorded, else NULL */
};
typedef void (*pay_auth_done_fn)(struct pay *pay, const struct pay_auth_done *done, void *udata);

struct pay_auth_req {
    const char *order_id;
    const char *user_id;
    const char *token;
    struct ag_money amount;
    const char *step_key;    /* saga step (its row is pending), or NULL */
    const char *traceparent; /* or NULL */
    /* Called inside the transaction that records the outcome, so a caller
     * stores its answer with it (may be NULL); a non-zero return rolls it
     * back. */
    int (*in_tx)(struct pay *pay, struct ag_store *st, const struct pay_auth_done *done,
                 void *udata);
    pay_auth_done_fn done; /* after the commit (may be NULL) */
    void *udata;
};

/* Start an authorization: the provider is asked, with a deadline of
 * AGORA_PAYMENTS_PROVIDER_TIMEOUT. When it answers, or the deadline passes
 * (then the call is abandoned at the provider: nothing stays authorized),
 * one transaction records the payment (approved only), publishes
 * payment.authorized or payment.failed, finishes the saga step if any and
 * runs 'in_tx'; then 'done' runs. Strings are copied. Returns 0, or an
 * error (then neither callback runs). */
int pay_auth_start(struct pay *pay, const struct pay_auth_req *req);

/* True while an authorization for 'order_id' waits for the provider. */
bool pay_auth_inflight(struct pay *pay, const char *order_id);

/* End every authorization in flight as timed out (service stopping). */
void pay_auth_abandon_all(struct pay *pay);

/* Inside a transaction: apply 'op' to 'p' (read in this transaction),
 * settle it with the provider, write it (and the refund 'r' for a refund,
 * given an id here), publish the event and count it. Returns 0,
 * AG_ECONFLICT, AG_ERANGE (see pay_payment_apply), or a store/provider
 * error. */
int pay_change(struct pay *pay, struct ag_store *st, struct pay_payment *p, enum pay_op op,
               int64_t amount, const char *reason, struct pay_refund *r, const char *traceparent,
               json_t **out_reply);

/* One sweep: release authorizations past their expiry (payment.voided
 * reason "expired"); the chassis sweeps the idempotency records. */
void pay_sweep(struct pay *pay);

/* ---- api.c ---- */
extern const struct ag_route pay_routes[];
extern const size_t pay_nroutes;

/* ---- events.c: replies through the outbox, commands in ----
 * 'ev' NULL (unit tests): nothing is written and 0 returned. Each call
 * writes inside the caller's open transaction and returns 0 or the error
 * ag_events_publish logged; the caller returns it to roll back. */

/* Publish reply 'type' with 'data' (borrowed); the subject is
 * data.payment_id, or data.order_id when that is null. */
int pay_events_publish(struct ag_events *ev, const char *type, const json_t *data,
                       const char *traceparent);
/* The data of each reply event; new references. */
json_t *pay_events_authorized(const struct pay_payment *p);
json_t *pay_events_captured(const struct pay_payment *p);
json_t *pay_events_voided(const struct pay_payment *p);
json_t *pay_events_refunded(const struct pay_payment *p, const struct pay_refund *r);
json_t *pay_events_failed(const char *payment_id, const char *order_id, struct ag_money amount,
                          const char *reason, int64_t now_ms);
/* The consumer of cmd.payment.* (ag_events_handler_fn). */
int pay_events_handle(struct ag_events *ev, struct ag_store *st, const json_t *event, void *udata);
/* Startup: answer saga steps left pending by a stopped process with
 * payment.failed reason timeout (no authorization was recorded for them). */
int pay_events_fail_pending(struct pay *pay);
/* After the commit: send what it wrote now rather than at the relay's next
 * poll. */
void pay_events_kick(struct ag_events *ev);

/* ---- store.c ---- */

int pay_store_payment_insert(struct ag_store *st, const struct pay_payment *p);
/* Write the mutable columns of 'p'. AG_ENOENT when absent. */
int pay_store_payment_update(struct ag_store *st, const struct pay_payment *p);
int pay_store_payment_get(struct ag_store *st, const char *id, struct pay_payment *out);
/* The latest payment of order 'order_id'. AG_ENOENT when none. */
int pay_store_payment_of_order(struct ag_store *st, const char *order_id, struct pay_payment *out);
/* Up to PAY_LIST_MAX payments of 'order_id' as JSON (new array), oldest
 * first; only those of 'user_id' unless it is NULL. */
int pay_store_payment_list(struct ag_store *st, const char *order_id, const char *user_id,
                           json_t **out_items);
/* Ids of up to 'max' authorizations whose expiry is <= 'now_ms'. */
int pay_store_payment_expired(struct ag_store *st, int64_t now_ms, size_t max,
                              char (*out_ids)[AG_UUID_STRLEN + 1], size_t *out_n);

int pay_store_refund_insert(struct ag_store *st, const struct pay_refund *r);
/* Refunds of 'payment_id' as JSON (new array), oldest first. */
int pay_store_refund_list(struct ag_store *st, const char *payment_id, const char *currency,
                          json_t **out_items);

struct pay_step {
    bool done; /* false: pending (at the provider) */
    char reply_type[32];
    json_t *reply_data; /* owned by the caller when set */
};
/* The saga steps, in the chassis's records (agora/idempotency.h).
 * AG_ENOENT when the step is unknown. */
int pay_step_get(struct ag_idem *idem, const char *key, struct pay_step *out);
int pay_step_pending(struct ag_idem *idem, const char *key, const char *order_id,
                     const char *command, struct ag_money amount, int64_t now_ms);
/* Record the reply of step 'key' (inserted when missing). */
int pay_step_done(struct ag_idem *idem, const char *key, const char *order_id, const char *command,
                  const char *reply_type, const json_t *reply_data, int64_t now_ms);

#endif /* PAY_PAYMENTS_H */
