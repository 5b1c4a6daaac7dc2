/* SPDX-License-Identifier: MIT */
/* Payments domain: the payment model and its one transition function (the
 * money invariants: captured <= authorized, refunded <= captured, no capture
 * after a void, no void after a capture), validation of HTTP bodies and saga
 * commands, the JSON representation, the sandbox's test tokens. Pure
 * functions: no I/O, no database, no clock. */
#ifndef PAY_DOMAIN_H
#define PAY_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/json.h"
#include "agora/money.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define PAY_AMOUNT_MAX     INT64_C(100000000000) /* minor units of one payment */
#define PAY_TOKEN_MAX      64                    /* bytes of a payment token reference */
#define PAY_STEP_KEY_MAX   128                   /* bytes of a saga step key */
#define PAY_REASON_MAX     64                    /* bytes of a void or refund reason */
#define PAY_USER_MAX       63                    /* bytes of a user id (ag_identity) */
#define PAY_NO_CURRENCY    "XXX"                 /* ISO 4217 "no currency": the void of nothing */
#define PAY_NOT_AUTHORIZED "not_authorized"      /* void reason when nothing was held */
#define PAY_EXPIRED        "expired"             /* void reason of an expired hold */

/* States of a payment. */
#define PAY_STATUSES(X)                                                                            \
    X(AUTHORIZED, "authorized")                 /* money held, not taken */                        \
    X(CAPTURED, "captured")                     /* money taken (all or part of the hold) */        \
    X(PARTIALLY_REFUNDED, "partially_refunded") /* part of the capture given back */               \
    X(REFUNDED, "refunded")                     /* the whole capture given back */                 \
    X(VOIDED, "voided")                         /* hold released without capture */

enum pay_status {
#define X(n, s) PAY_##n,
    PAY_STATUSES(X)
#undef X
};

const char *pay_status_name(enum pay_status s);
/* 0 and '*out' set, or AG_EINVAL for an unknown name. */
int pay_status_parse(const char *name, enum pay_status *out);

struct pay_card {
    char brand[16]; /* "visa", ... */
    char last4[5];  /* the only digits ever kept */
};

struct pay_payment {
    char id[AG_UUID_STRLEN + 1];
    char order_id[AG_UUID_STRLEN + 1];
    char user_id[PAY_USER_MAX + 1]; /* owner */
    enum pay_status status;
    char currency[4];
    int64_t amount;   /* authorized, minor units */
    int64_t captured; /* <= amount */
    int64_t refunded; /* <= captured */
    struct pay_card card;
    char provider_ref[64];                /* the provider's id of the authorization */
    char void_reason[PAY_REASON_MAX + 1]; /* "" unless voided */
    int64_t created_at;                   /* unix ms: the authorization */
    int64_t updated_at;                   /* unix ms */
    int64_t captured_at;                  /* unix ms, 0: never */
    int64_t voided_at;                    /* unix ms, 0: never */
    int64_t expires_at;                   /* unix ms while authorized, else 0 */
};

struct pay_refund {
    char id[AG_UUID_STRLEN + 1];
    char payment_id[AG_UUID_STRLEN + 1];
    int64_t amount; /* in the payment's currency */
    char reason[PAY_REASON_MAX + 1];
    int64_t created_at; /* unix ms */
};

/* ---- The transition function ---- */

enum pay_op {
    PAY_OP_CAPTURE = 0, /* take 'amount' (1 .. authorized) of an authorization */
    PAY_OP_VOID,        /* release an authorization */
    PAY_OP_REFUND,      /* give back 'amount' (1 .. captured - refunded) */
    PAY_OP_EXPIRE,      /* release an authorization past its expiry */
};

/* Apply 'op' with 'amount' (ignored by void and expire) to 'p' at 'now_ms'
 * ('reason' names a void; may be NULL). Returns 0 with 'p' updated, or,
 * leaving 'p' untouched: AG_ECONFLICT when 'p''s status does not allow 'op'
 * (capture or void of anything but an authorization, refund of anything
 * but a capture, expiry before its time), AG_ERANGE when 'amount' is not in
 * the allowed range. */
int pay_payment_apply(struct pay_payment *p, enum pay_op op, int64_t amount, const char *reason,
                      int64_t now_ms);

/* ---- Validation ---- */

/* "tok_" followed by 1 to 60 of [A-Za-z0-9_]. */
bool pay_token_is_valid(const char *s);
/* 1 to PAY_REASON_MAX of [a-z0-9_]. */
bool pay_reason_is_valid(const char *s);
/* "<order_id>:<step>", the step 1 to 64 of [a-z0-9_-]. */
bool pay_step_key_is_valid(const char *key, const char *order_id);

/* A money object {amount, currency} at obj['field'], amount 1 .. PAY_AMOUNT_MAX
 * and a currency of ISO 4217. */
bool pay_valid_money(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                     unsigned flags, struct ag_money *out);

/* POST /v1/payments: {order_id, amount, payment_token}. Strings borrowed
 * from 'body'. */
struct pay_create_req {
    const char *order_id;
    struct ag_money amount;
    const char *token;
};
bool pay_create_req_parse(struct ag_valid *v, json_t *body, struct pay_create_req *out);

/* POST /v1/payments/{id}/capture {amount?} (absent: the whole hold),
 * /void {reason?}, /refunds {amount, reason?}. 'out_amount' keeps 'has'
 * false when absent. */
struct pay_change_req {
    bool has_amount;
    struct ag_money amount;
    const char *reason; /* "requested" when absent */
};
bool pay_change_req_parse(struct ag_valid *v, json_t *body, enum pay_op op,
                          struct pay_change_req *out);

/* A saga command, "cmd.payment.<verb>". */
enum pay_cmd_kind {
    PAY_CMD_AUTHORIZE = 0,
    PAY_CMD_CAPTURE,
    PAY_CMD_VOID,
    PAY_CMD_REFUND,
};
struct pay_cmd {
    enum pay_cmd_kind kind;
    const char *order_id;
    const char *step_key;
    const char *user_id;    /* authorize */
    const char *token;      /* authorize */
    struct ag_money amount; /* authorize, capture, refund */
    const char *reason;     /* void, refund */
};
/* Parse command 'type' with 'data' (borrowed; strings point into it).
 * Returns false with the errors in 'v' ("type" for an unknown type). */
bool pay_cmd_parse(struct ag_valid *v, const char *type, json_t *data, struct pay_cmd *out);

/* ---- Representation ---- */

/* {id, order_id, user_id, status, amount, captured, refunded, card, void_reason,
 * created_at, updated_at, captured_at, voided_at, expires_at}; new reference. */
json_t *pay_payment_to_json(const struct pay_payment *p);
/* {id, payment_id, amount, reason, created_at}; 'currency' of the payment. */
json_t *pay_refund_to_json(const struct pay_refund *r, const char *currency);
/* {"amount": n, "currency": c}; new reference. */
json_t *pay_money_json(int64_t amount, const char *currency);
/* RFC 3339 string of 'ms', or JSON null for 0; new reference. */
json_t *pay_time_json(int64_t ms);

/* ---- The sandbox provider's test tokens (DESIGN.md section 2) ---- */

enum pay_auth_outcome {
    PAY_AUTH_APPROVED = 0,
    PAY_AUTH_DECLINED,
    PAY_AUTH_INSUFFICIENT_FUNDS,
    PAY_AUTH_NO_ANSWER, /* the provider never answers: the service times out */
};
/* What the sandbox does with 'token', and the card it stands for. Unknown
 * tokens are declined. */
enum pay_auth_outcome pay_sandbox_outcome(const char *token, struct pay_card *out_card);
/* The payment.failed reason of an outcome: "declined", "insufficient_funds",
 * "timeout". */
const char *pay_auth_outcome_reason(enum pay_auth_outcome o);

#endif /* PAY_DOMAIN_H */
