/* SPDX-License-Identifier: MIT */
/* Payments HTTP handlers and the route table. Every write takes an
 * Idempotency-Key (IETF draft semantics): the first answer to a key is
 * stored with the effect, in the same transaction, and the same key with
 * the same request gets it again; with another request, 422; while the
 * first is still in progress, 409; no key, 428. Keys are per user and kept
 * AGORA_IDEMPOTENCY_TTL (the chassis records). A payment is visible to its owner and to
 * administrators; to anyone else it does not exist (404). */
#include "agora/base.h"
#include "payments.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/identity.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/trace.h"
#include "agora/uuid.h"

#define JSON_TYPE    "application/json"
#define PROBLEM_TYPE "application/problem+json"

/* ---- Answers that can be stored and replayed ---- */

struct answer {
    int status;
    const char *content_type;
    char *body; /* in the request's pool */
    size_t len;
};

static void
answer_json(struct ag_http_req *req, struct answer *a, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    a->status = status;
    a->content_type = JSON_TYPE;
    a->body = ag_pool_strdup(req->pool, s ? s : "{}");
    a->len = strlen(a->body);
    ag_free(s);
}

/* An RFC 9457 problem; 'errors' (may be NULL) lists field errors. */
static void
answer_problem(struct ag_http_req *req, struct answer *a, int status, const char *slug,
               const char *title, const char *detail, const struct ag_valid *errors)
{
    json_t *p = ag_problem_new(status, slug, title, detail);
    json_object_set_new(p, "instance", json_stringn(req->path.ptr, req->path.len));
    json_object_set_new(p, "request_id", json_string(ag_req_id(req)));
    if (errors != NULL)
        ag_problem_set_errors(p, errors);
    answer_json(req, a, status, p);
    a->content_type = PROBLEM_TYPE;
}

static void
answer_error(struct ag_http_req *req, struct answer *a, int err, const char *detail)
{
    answer_problem(req, a, ag_err_http_status(err), ag_err_slug(err), ag_err_title(err), detail,
                   NULL);
}

/* Send 'a'; a replayed problem gets this request's id. */
static void
send_answer(struct ag_http_req *req, const struct answer *a)
{
    if (a->status == 201) {
        json_t *j = ag_json_parse(a->body, a->len, NULL, 0);
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *pid = json_string_value(json_object_get(j, "payment_id"));
        char loc[128];
        if (pid != NULL)
            snprintf(loc, sizeof(loc), "/v1/payments/%s/refunds/%s", pid, id ? id : "");
        else
            snprintf(loc, sizeof(loc), "/v1/payments/%s", id ? id : "");
        if (id != NULL)
            ag_http_resp_header(req, "Location", loc);
        json_decref(j);
    }
    if (strcmp(a->content_type, PROBLEM_TYPE) == 0) {
        json_t *p = ag_json_parse(a->body, a->len, NULL, 0);
        if (p != NULL) {
            json_object_set_new(p, "request_id", json_string(ag_req_id(req)));
            char *s = json_dumps(p, JSON_COMPACT);
            json_decref(p);
            if (s != NULL) {
                ag_http_send(req, a->status, PROBLEM_TYPE, s, strlen(s));
                ag_free(s);
                return;
            }
        }
    }
    ag_http_send(req, a->status, a->content_type, a->body, a->len);
}

/* ---- Idempotency keys: the chassis's records ---- */

struct idem {
    const char *user_id;
    const char *key;
    char hash[AG_IDEM_HASH_LEN]; /* of method, path and body */
};

/* Read the caller's Idempotency-Key and hash the request; answers 428 or
 * 400 itself and returns false when it cannot. */
static bool
idem_read(struct ag_http_req *req, struct idem *out)
{
    const struct ag_identity *who = ag_req_identity(req);
    if (!ag_req_idempotency_key(req, true, &out->key))
        return false;
    out->user_id = who != NULL ? who->user_id : "";
    ag_req_idempotency_hash(req, out->hash);
    return true;
}

/* Take the key (AG_IDEM_NEW: now in progress) or find its answer ('a'). */
static int
idem_begin(struct pay *pay, struct ag_http_req *req, const struct idem *k, struct answer *a,
           enum ag_idem_state *out)
{
    struct ag_idem_answer first;
    int rc = ag_idem_begin(pay->idem, k->user_id, k->key, k->hash, ag_time_unix_ms(), req->pool,
                           out, &first);
    if (rc == 0 && *out == AG_IDEM_REPLAY) {
        a->status = first.status;
        a->content_type = (char *)first.content_type;
        a->body = (char *)first.body;
        a->len = first.len;
    }
    return rc;
}

static int
idem_finish(struct pay *pay, const struct idem *k, const struct answer *a)
{
    struct ag_idem_answer answer = {
        .status = a->status, .content_type = a->content_type, .body = a->body, .len = a->len
    };
    return ag_idem_finish(pay->idem, k->user_id, k->key, k->hash, &answer, ag_time_unix_ms());
}

/* ---- Representation ---- */

static void
json_release(void *j)
{
    json_decref(j);
}

static int
payment_doc(struct ag_store *st, const struct pay_payment *p, json_t **out)
{
    json_t *refunds;
    int rc = pay_store_refund_list(st, p->id, p->currency, &refunds);
    if (rc != 0)
        return rc;
    json_t *j = pay_payment_to_json(p);
    json_object_set_new(j, "refunds", refunds);
    *out = j;
    return 0;
}

static bool
can_see(const struct ag_identity *who, const struct pay_payment *p)
{
    return who != NULL &&
           ((who->roles & AG_IDENTITY_ADMIN) != 0 || strcmp(who->user_id, p->user_id) == 0);
}

/* ---- POST /v1/payments: authorize ---- */

struct create_ctx {
    struct pay *pay;
    struct ag_http_req *req;
    struct idem k;
    struct answer a;
    char order_id[AG_UUID_STRLEN + 1];
    struct ag_money amount;
    char *token; /* request pool */
};

static int
create_in_tx(struct pay *pay, struct ag_store *st, const struct pay_auth_done *done, void *udata)
{
    AG_UNUSED(pay);
    struct create_ctx *c = udata;
    struct ag_http_req *req = c->req;
    if (done->payment != NULL) {
        json_t *doc;
        int rc = payment_doc(st, done->payment, &doc);
        if (rc != 0)
            return rc;
        answer_json(req, &c->a, 201, doc);
    } else if (done->outcome == PAY_AUTH_NO_ANSWER) {
        answer_error(req, &c->a, AG_ETIMEDOUT,
                     "the payment provider did not answer in time; nothing was authorized");
    } else {
        const char *reason = pay_auth_outcome_reason(done->outcome);
        char detail[128];
        snprintf(detail, sizeof(detail), "the payment was declined (%s)", reason);
        answer_problem(req, &c->a, 402, "payment-declined", "Payment Required", detail, NULL);
        char *s = c->a.body;
        json_t *p = ag_json_parse(s, c->a.len, NULL, 0);
        json_object_set_new(p, "reason", json_string(reason));
        answer_json(req, &c->a, 402, p);
        c->a.content_type = PROBLEM_TYPE;
    }
    AG_UNUSED(st);
    return idem_finish(c->pay, &c->k, &c->a);
}

static void
create_done(struct pay *pay, const struct pay_auth_done *done, void *udata)
{
    struct create_ctx *c = udata;
    if (done->rc != 0) {
        /* Nothing was recorded: free the key for a retry. */
        ag_idem_forget(pay->idem, c->k.user_id, c->k.key);
        ag_send_store_error(c->req, done->rc, "payment");
        return;
    }
    send_answer(c->req, &c->a);
}

struct begin_tx {
    struct pay *pay;
    struct ag_http_req *req;
    const struct idem *k;
    struct answer *a;
    enum ag_idem_state state;
};

static int
begin_tx_fn(struct ag_store *st, void *arg)
{
    AG_UNUSED(st);
    struct begin_tx *t = arg;
    return idem_begin(t->pay, t->req, t->k, t->a, &t->state);
}

/* Refuse a pay-later request before anything happened: its key is freed
 * (no effect to remember). */
static void
refuse_create(struct create_ctx *c, int err, const char *detail)
{
    ag_idem_forget(c->pay->idem, c->k.user_id, c->k.key);
    ag_send_error(c->req, err, "%s", detail);
}

static void
start_authorization(struct create_ctx *c)
{
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(c->req, tp);
    struct pay_auth_req ar = {
        .order_id = c->order_id,
        .user_id = c->k.user_id,
        .token = c->token,
        .amount = c->amount,
        .traceparent = tp,
        .in_tx = create_in_tx,
        .done = create_done,
        .udata = c,
    };
    if (pay_auth_start(c->pay, &ar) != 0)
        refuse_create(c, AG_EUNAVAIL, "the payment provider cannot be reached");
}

/* orders' answer about the order: the caller's, awaiting payment, and for
 * exactly this amount, or a clear 4xx. */
static void
on_payable(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct create_ctx *c = udata;
    if (resp->err != 0 || (resp->status != 200 && resp->status != 404)) {
        refuse_create(c, AG_EUNAVAIL, "the orders service cannot be reached; retry");
        return;
    }
    json_t *o = resp->status == 200 ? ag_json_parse(resp->body.ptr, resp->body.len, NULL, 0) : NULL;
    const char *user = json_string_value(json_object_get(o, "user_id"));
    if (o == NULL || user == NULL || strcmp(user, c->k.user_id) != 0) {
        /* Unknown, or another user's: the same answer (never 403). */
        json_decref(o);
        refuse_create(c, AG_ENOENT, "no such order");
        return;
    }
    const json_t *total = json_object_get(o, "total");
    const char *status = json_string_value(json_object_get(o, "status"));
    const char *cur = json_string_value(json_object_get(total, "currency"));
    bool awaiting = status != NULL && strcmp(status, "AWAITING_PAYMENT") == 0;
    bool same = cur != NULL && strcmp(cur, c->amount.currency) == 0 &&
                json_integer_value(json_object_get(total, "amount")) == c->amount.amount;
    json_decref(o);
    if (!awaiting) {
        refuse_create(c, AG_ECONFLICT, "the order is not awaiting a payment");
        return;
    }
    if (!same) {
        ag_idem_forget(c->pay->idem, c->k.user_id, c->k.key);
        struct ag_valid v;
        ag_valid_init(&v);
        ag_valid_error(&v, "amount", "mismatch", "must equal the order's total");
        ag_send_invalid(c->req, &v);
        ag_valid_release(&v);
        return;
    }
    start_authorization(c);
}

static void
create_payment(struct ag_http_req *req, void *udata)
{
    struct pay *pay = udata;
    if (pay->stopping) {
        ag_send_error(req, AG_EUNAVAIL, "the service is stopping");
        return;
    }
    struct create_ctx *c = ag_pool_calloc(req->pool, sizeof(*c));
    c->req = req;
    if (!idem_read(req, &c->k))
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct pay_create_req cr;
    if (!pay_create_req_parse(&v, body, &cr)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct begin_tx t = { .pay = pay, .req = req, .k = &c->k, .a = &c->a };
    int rc = ag_store_tx(pay->store, begin_tx_fn, &t);
    if (rc != 0) {
        ag_send_store_error(req, rc, "idempotency key");
        return;
    }
    if (t.state == AG_IDEM_REPLAY) {
        send_answer(req, &c->a);
        return;
    }
    if (t.state != AG_IDEM_NEW) {
        ag_send_idempotency_refusal(req, t.state);
        return;
    }
    c->pay = pay;
    snprintf(c->order_id, sizeof(c->order_id), "%s", cr.order_id);
    c->amount = cr.amount;
    c->token = ag_pool_strdup(req->pool, cr.token);
    if (pay->settings.orders_url[0] == '\0') {
        start_authorization(c);
        return;
    }
    /* The order must await exactly this payment, and be the caller's: ask
     * orders (its internal route, with this service's identity). */
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/internal/orders/%s/payable", pay->settings.orders_url,
             c->order_id);
    struct ag_http_client_header hdr = { AG_IDENTITY_HEADER,
                                         ag_identity_self_header(ag_service_self(pay->svc),
                                                                 ag_time_unix_ms() / 1000) };
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    struct ag_http_client_request q = {
        .method = "GET",
        .url = url,
        .headers = &hdr,
        .nheaders = 1,
        .timeout_ms = 3000,
        .request_id = ag_req_id(req),
        .traceparent = tp,
    };
    rc = ag_http_client_send(ag_service_http_client(pay->svc), &q, on_payable, c);
    if (rc != 0)
        refuse_create(c, AG_EUNAVAIL, "the orders service cannot be reached; retry");
}

/* ---- POST /v1/payments/{id}/capture, /void, /refunds ---- */

struct change_tx {
    struct pay *pay;
    struct ag_http_req *req;
    const struct idem *k;
    const char *id;
    enum pay_op op;
    const struct pay_change_req *cr;
    const char *traceparent;
    struct answer a;
    enum ag_idem_state state;
};

static int
change_tx_fn(struct ag_store *st, void *arg)
{
    struct change_tx *t = arg;
    struct ag_http_req *req = t->req;
    int rc = idem_begin(t->pay, req, t->k, &t->a, &t->state);
    if (rc != 0 || t->state != AG_IDEM_NEW)
        return rc;
    struct pay_payment p;
    rc = pay_store_payment_get(st, t->id, &p);
    if (rc == AG_ENOENT) {
        answer_error(req, &t->a, AG_ENOENT, "no such payment");
    } else if (rc != 0) {
        return rc;
    } else if (t->cr->has_amount && strcmp(t->cr->amount.currency, p.currency) != 0) {
        struct ag_valid v;
        ag_valid_init(&v);
        ag_valid_error(&v, "amount.currency", "invalid", "the payment is in %s", p.currency);
        answer_problem(req, &t->a, 422, "validation", "Validation Failed",
                       "the amount is not in the payment's currency", &v);
        ag_valid_release(&v);
    } else {
        int64_t amount = t->cr->has_amount ? t->cr->amount.amount : p.amount;
        struct pay_refund r;
        rc = pay_change(t->pay, st, &p, t->op, amount, t->cr->reason, &r, t->traceparent, NULL);
        if (rc == AG_ECONFLICT) {
            char detail[128];
            snprintf(detail, sizeof(detail), "not allowed on a payment that is %s",
                     pay_status_name(p.status));
            answer_error(req, &t->a, AG_ECONFLICT, detail);
        } else if (rc == AG_ERANGE) {
            struct ag_valid v;
            ag_valid_init(&v);
            if (t->op == PAY_OP_REFUND)
                ag_valid_error(&v, "amount.amount", "too_large",
                               "at most %lld can be refunded (captured and not refunded)",
                               (long long)(p.captured - p.refunded));
            else
                ag_valid_error(&v, "amount.amount", "too_large",
                               "at most %lld can be captured (authorized)", (long long)p.amount);
            answer_problem(req, &t->a, 422, "validation", "Validation Failed",
                           "the amount is more than the payment allows", &v);
            ag_valid_release(&v);
        } else if (rc != 0) {
            return rc;
        } else if (t->op == PAY_OP_REFUND) {
            answer_json(req, &t->a, 201, pay_refund_to_json(&r, p.currency));
        } else {
            json_t *doc;
            rc = payment_doc(st, &p, &doc);
            if (rc != 0)
                return rc;
            answer_json(req, &t->a, 200, doc);
        }
    }
    return idem_finish(t->pay, t->k, &t->a);
}

static void
change_payment(struct ag_http_req *req, struct pay *pay, enum pay_op op)
{
    const char *id = ag_req_uuid_param(req, "id", "payment");
    if (id == NULL)
        return;
    struct idem k;
    if (!idem_read(req, &k))
        return;
    json_t *body;
    if (req->body.len == 0 && op != PAY_OP_REFUND) {
        body = json_object(); /* every field optional */
        ag_pool_cleanup_add(req->pool, json_release, body);
    } else {
        body = ag_req_json(req);
        if (body == NULL)
            return;
    }
    struct ag_valid v;
    ag_valid_init(&v);
    struct pay_change_req cr;
    if (!pay_change_req_parse(&v, body, op, &cr)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    char tp[AG_TRACEPARENT_LEN + 1];
    ag_req_traceparent(req, tp);
    struct change_tx t = {
        .pay = pay,
        .req = req,
        .k = &k,
        .id = id,
        .op = op,
        .cr = &cr,
        .traceparent = tp,
    };
    /* Once: pay_change calls the provider (capture, refund, release),
     * which a rerun would call again. */
    int rc = ag_store_tx_once(pay->store, change_tx_fn, &t);
    if (rc != 0) {
        ag_send_store_error(req, rc, "payment");
        return;
    }
    if (t.state == AG_IDEM_BUSY || t.state == AG_IDEM_MISMATCH) {
        ag_send_idempotency_refusal(req, t.state);
        return;
    }
    if (t.state == AG_IDEM_NEW)
        pay_events_kick(pay->events);
    send_answer(req, &t.a);
}

static void
capture_payment(struct ag_http_req *req, void *udata)
{
    change_payment(req, udata, PAY_OP_CAPTURE);
}

static void
void_payment(struct ag_http_req *req, void *udata)
{
    change_payment(req, udata, PAY_OP_VOID);
}

static void
refund_payment(struct ag_http_req *req, void *udata)
{
    change_payment(req, udata, PAY_OP_REFUND);
}

/* ---- Reads ---- */

static void
get_payment(struct ag_http_req *req, void *udata)
{
    struct pay *pay = udata;
    const char *id = ag_req_uuid_param(req, "id", "payment");
    if (id == NULL)
        return;
    struct pay_payment p;
    int rc = pay_store_payment_get(pay->store, id, &p);
    if (rc == 0 && !can_see(ag_req_identity(req), &p))
        rc = AG_ENOENT; /* another user's payment does not exist for the caller */
    json_t *doc = NULL;
    if (rc == 0)
        rc = payment_doc(pay->store, &p, &doc);
    if (rc != 0) {
        ag_send_store_error(req, rc, "payment");
        return;
    }
    ag_send_json(req, 200, doc);
}

static void
list_payments(struct ag_http_req *req, void *udata)
{
    struct pay *pay = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *order_id = ag_query_get(q, "order_id");
    if (order_id == NULL || !ag_uuid_is_valid(ag_str_from_cstr(order_id))) {
        ag_send_error(req, AG_EQUERY, "query parameter 'order_id' must be an order id");
        return;
    }
    const struct ag_identity *who = ag_req_identity(req);
    const char *user = who != NULL && (who->roles & AG_IDENTITY_ADMIN) != 0 ? NULL
                       : who != NULL                                        ? who->user_id
                                                                            : "";
    json_t *items;
    int rc = pay_store_payment_list(pay->store, order_id, user, &items);
    if (rc != 0) {
        ag_send_store_error(req, rc, "payment list");
        return;
    }
    ag_send_json(req, 200, json_pack("{s:o}", "items", items));
}

const struct ag_route pay_routes[] = {
    { "GET", "/v1/payments", list_payments, AG_ROLE_CUSTOMER },
    { "POST", "/v1/payments", create_payment, AG_ROLE_CUSTOMER },
    { "GET", "/v1/payments/{id}", get_payment, AG_ROLE_CUSTOMER },
    { "POST", "/v1/payments/{id}/capture", capture_payment, AG_ROLE_ADMIN },
    { "POST", "/v1/payments/{id}/void", void_payment, AG_ROLE_ADMIN },
    { "POST", "/v1/payments/{id}/refunds", refund_payment, AG_ROLE_ADMIN },
};
const size_t pay_nroutes = AG_ARRAY_SIZE(pay_routes);
