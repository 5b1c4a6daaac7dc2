/* SPDX-License-Identifier: MIT */
/* Payments domain rules: the payment state machine and its money
 * invariants, validation of bodies and commands, representation, the
 * sandbox's tokens. No I/O here; api.c, events.c and store.c do that. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/str.h"

static const char *const STATUS_NAMES[] = {
#define X(n, s) s,
    PAY_STATUSES(X)
#undef X
};

const char *
pay_status_name(enum pay_status s)
{
    if ((size_t)s >= AG_ARRAY_SIZE(STATUS_NAMES))
        return "unknown";
    return STATUS_NAMES[s];
}

int
pay_status_parse(const char *name, enum pay_status *out)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(STATUS_NAMES); i++) {
        if (strcmp(name, STATUS_NAMES[i]) == 0) {
            *out = (enum pay_status)i;
            return 0;
        }
    }
    return AG_EINVAL;
}

/* ---- The transition function ---- */

int
pay_payment_apply(struct pay_payment *p, enum pay_op op, int64_t amount, const char *reason,
                  int64_t now_ms)
{
    switch (op) {
    case PAY_OP_CAPTURE:
        /* One capture per authorization; what it leaves uncaptured is
         * released, as card networks do. */
        if (p->status != PAY_AUTHORIZED)
            return AG_ECONFLICT;
        if (amount < 1 || amount > p->amount)
            return AG_ERANGE;
        p->captured = amount;
        p->status = PAY_CAPTURED;
        p->captured_at = now_ms;
        p->expires_at = 0;
        break;
    case PAY_OP_VOID:
    case PAY_OP_EXPIRE:
        if (p->status != PAY_AUTHORIZED)
            return AG_ECONFLICT;
        if (op == PAY_OP_EXPIRE && now_ms < p->expires_at)
            return AG_ECONFLICT;
        p->status = PAY_VOIDED;
        p->voided_at = now_ms;
        p->expires_at = 0;
        snprintf(p->void_reason, sizeof(p->void_reason), "%s",
                 op == PAY_OP_EXPIRE ? PAY_EXPIRED : (reason ? reason : "requested"));
        break;
    case PAY_OP_REFUND:
        if (p->status != PAY_CAPTURED && p->status != PAY_PARTIALLY_REFUNDED)
            return AG_ECONFLICT;
        /* Never more than what was captured and not yet given back. */
        if (amount < 1 || amount > p->captured - p->refunded)
            return AG_ERANGE;
        p->refunded += amount;
        p->status = p->refunded == p->captured ? PAY_REFUNDED : PAY_PARTIALLY_REFUNDED;
        break;
    default: return AG_EINVAL;
    }
    p->updated_at = now_ms;
    return 0;
}

/* ---- Validation ---- */

static bool
is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool
pay_token_is_valid(const char *s)
{
    if (s == NULL || strncmp(s, "tok_", 4) != 0)
        return false;
    size_t n = strlen(s + 4);
    if (n < 1 || n > 60)
        return false;
    for (size_t i = 4; s[i] != '\0'; i++) {
        if (!is_word_char(s[i]))
            return false;
    }
    return true;
}

bool
pay_reason_is_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > PAY_REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool
pay_step_key_is_valid(const char *key, const char *order_id)
{
    if (key == NULL || order_id == NULL)
        return false;
    size_t olen = strlen(order_id);
    if (strncmp(key, order_id, olen) != 0 || key[olen] != ':')
        return false;
    const char *step = key + olen + 1;
    size_t n = strlen(step);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = step[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static const char *const MONEY_FIELDS[] = { "amount", "currency", NULL };

bool
pay_valid_money(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                unsigned flags, struct ag_money *out)
{
    json_t *m = ag_valid_object(v, obj, prefix, field, flags);
    if (m == NULL)
        return false;
    char path[AG_VALID_MAX_FIELD];
    if (prefix != NULL && prefix[0] != '\0')
        snprintf(path, sizeof(path), "%s.%s", prefix, field);
    else
        snprintf(path, sizeof(path), "%s", field);
    bool ok = true;
    int64_t amount = 0;
    if (!ag_valid_int(v, m, path, "amount", AG_VALID_REQUIRED, 1, PAY_AMOUNT_MAX, &amount))
        ok = false;
    const char *cur = ag_valid_string(v, m, path, "currency", AG_VALID_REQUIRED, 3, 3);
    if (cur != NULL && !ag_currency_is_valid(cur)) {
        char cf[AG_VALID_MAX_FIELD + 16];
        snprintf(cf, sizeof(cf), "%s.currency", path);
        ag_valid_error(v, cf, "invalid", "'%s' must be an ISO 4217 code", cf);
        ok = false;
    } else if (cur == NULL) {
        ok = false;
    }
    size_t before = json_array_size(v->errors);
    ag_valid_unknown(v, m, path, MONEY_FIELDS);
    if (json_array_size(v->errors) != before)
        ok = false;
    if (ok) {
        out->amount = amount;
        snprintf(out->currency, sizeof(out->currency), "%s", cur);
    }
    return ok;
}

static const char *
valid_uuid(struct ag_valid *v, json_t *obj, const char *field)
{
    const char *s = ag_valid_string(v, obj, NULL, field, AG_VALID_REQUIRED, 1, 64);
    if (s != NULL && !ag_uuid_is_valid(ag_str_from_cstr(s))) {
        ag_valid_error(v, field, "invalid", "'%s' must be a UUID", field);
        return NULL;
    }
    return s;
}

static const char *
valid_token(struct ag_valid *v, json_t *obj, const char *field)
{
    const char *s = ag_valid_string(v, obj, NULL, field, AG_VALID_REQUIRED, 1, PAY_TOKEN_MAX);
    if (s != NULL && !pay_token_is_valid(s)) {
        /* The detail never repeats the token: it is card data's stand-in. */
        ag_valid_error(v, field, "invalid", "'%s' must be a token reference (tok_...)", field);
        return NULL;
    }
    return s;
}

static const char *
valid_reason(struct ag_valid *v, json_t *obj, const char *field, unsigned flags)
{
    const char *s = ag_valid_string(v, obj, NULL, field, flags, 1, PAY_REASON_MAX);
    if (s != NULL && !pay_reason_is_valid(s)) {
        ag_valid_error(v, field, "invalid", "'%s' must be 1 to %d of [a-z0-9_]", field,
                       PAY_REASON_MAX);
        return NULL;
    }
    return s;
}

bool
pay_create_req_parse(struct ag_valid *v, json_t *body, struct pay_create_req *out)
{
    static const char *const FIELDS[] = { "order_id", "amount", "payment_token", NULL };
    memset(out, 0, sizeof(*out));
    out->order_id = valid_uuid(v, body, "order_id");
    pay_valid_money(v, body, NULL, "amount", AG_VALID_REQUIRED, &out->amount);
    out->token = valid_token(v, body, "payment_token");
    ag_valid_unknown(v, body, NULL, FIELDS);
    return ag_valid_ok(v);
}

bool
pay_change_req_parse(struct ag_valid *v, json_t *body, enum pay_op op, struct pay_change_req *out)
{
    static const char *const CAPTURE_FIELDS[] = { "amount", NULL };
    static const char *const VOID_FIELDS[] = { "reason", NULL };
    static const char *const REFUND_FIELDS[] = { "amount", "reason", NULL };
    memset(out, 0, sizeof(*out));
    out->reason = "requested";
    switch (op) {
    case PAY_OP_CAPTURE:
        out->has_amount = pay_valid_money(v, body, NULL, "amount", AG_VALID_OPTIONAL, &out->amount);
        ag_valid_unknown(v, body, NULL, CAPTURE_FIELDS);
        break;
    case PAY_OP_VOID: {
        const char *r = valid_reason(v, body, "reason", AG_VALID_OPTIONAL);
        if (r != NULL)
            out->reason = r;
        ag_valid_unknown(v, body, NULL, VOID_FIELDS);
        break;
    }
    case PAY_OP_REFUND: {
        out->has_amount = pay_valid_money(v, body, NULL, "amount", AG_VALID_REQUIRED, &out->amount);
        const char *r = valid_reason(v, body, "reason", AG_VALID_OPTIONAL);
        if (r != NULL)
            out->reason = r;
        ag_valid_unknown(v, body, NULL, REFUND_FIELDS);
        break;
    }
    default: ag_valid_error(v, "op", "invalid", "not a change"); break;
    }
    return ag_valid_ok(v);
}

bool
pay_cmd_parse(struct ag_valid *v, const char *type, json_t *data, struct pay_cmd *out)
{
    static const struct {
        const char *type;
        enum pay_cmd_kind kind;
        const char *const fields[7];
    } CMDS[] = {
        { "cmd.payment.authorize",
          PAY_CMD_AUTHORIZE,
          { "order_id", "step_key", "user_id", "amount", "payment_token", NULL } },
        { "cmd.payment.capture", PAY_CMD_CAPTURE, { "order_id", "step_key", "amount", NULL } },
        { "cmd.payment.void", PAY_CMD_VOID, { "order_id", "step_key", "reason", NULL } },
        { "cmd.payment.refund",
          PAY_CMD_REFUND,
          { "order_id", "step_key", "amount", "reason", NULL } },
    };
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < AG_ARRAY_SIZE(CMDS) && (type == NULL || strcmp(CMDS[i].type, type) != 0))
        i++;
    if (i == AG_ARRAY_SIZE(CMDS)) {
        ag_valid_error(v, "type", "invalid", "not a payment command");
        return false;
    }
    if (!json_is_object(data)) {
        ag_valid_error(v, "data", "type", "'data' must be an object");
        return false;
    }
    out->kind = CMDS[i].kind;
    out->order_id = valid_uuid(v, data, "order_id");
    out->step_key =
        ag_valid_string(v, data, NULL, "step_key", AG_VALID_REQUIRED, 1, PAY_STEP_KEY_MAX);
    if (out->step_key != NULL && out->order_id != NULL &&
        !pay_step_key_is_valid(out->step_key, out->order_id)) {
        ag_valid_error(v, "step_key", "invalid", "'step_key' must be '<order_id>:<step>'");
        out->step_key = NULL;
    }
    switch (out->kind) {
    case PAY_CMD_AUTHORIZE:
        out->user_id =
            ag_valid_string(v, data, NULL, "user_id", AG_VALID_REQUIRED, 1, PAY_USER_MAX);
        pay_valid_money(v, data, NULL, "amount", AG_VALID_REQUIRED, &out->amount);
        out->token = valid_token(v, data, "payment_token");
        break;
    case PAY_CMD_CAPTURE:
        pay_valid_money(v, data, NULL, "amount", AG_VALID_REQUIRED, &out->amount);
        break;
    case PAY_CMD_VOID: out->reason = valid_reason(v, data, "reason", AG_VALID_REQUIRED); break;
    case PAY_CMD_REFUND:
        pay_valid_money(v, data, NULL, "amount", AG_VALID_REQUIRED, &out->amount);
        out->reason = valid_reason(v, data, "reason", AG_VALID_REQUIRED);
        break;
    }
    ag_valid_unknown(v, data, NULL, CMDS[i].fields);
    return ag_valid_ok(v);
}

/* ---- Representation ---- */

json_t *
pay_money_json(int64_t amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)amount, "currency", currency);
}

json_t *
pay_time_json(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char t[AG_RFC3339_LEN];
    ag_time_rfc3339(ms, t);
    return json_string(t);
}

json_t *
pay_payment_to_json(const struct pay_payment *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:{s:s, s:s}, s:o, s:o, s:o, s:o, "
                     "s:o, s:o}",
                     "id", p->id, "order_id", p->order_id, "user_id", p->user_id, "status",
                     pay_status_name(p->status), "amount", pay_money_json(p->amount, p->currency),
                     "captured", pay_money_json(p->captured, p->currency), "refunded",
                     pay_money_json(p->refunded, p->currency), "card", "brand", p->card.brand,
                     "last4", p->card.last4, "void_reason",
                     p->void_reason[0] ? json_string(p->void_reason) : json_null(), "created_at",
                     pay_time_json(p->created_at), "updated_at", pay_time_json(p->updated_at),
                     "captured_at", pay_time_json(p->captured_at), "voided_at",
                     pay_time_json(p->voided_at), "expires_at", pay_time_json(p->expires_at));
}

json_t *
pay_refund_to_json(const struct pay_refund *r, const char *currency)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:o}", "id", r->id, "payment_id", r->payment_id,
                     "amount", pay_money_json(r->amount, currency), "reason", r->reason,
                     "created_at", pay_time_json(r->created_at));
}

/* ---- Sandbox tokens ---- */

enum pay_auth_outcome
pay_sandbox_outcome(const char *token, struct pay_card *out_card)
{
    static const struct {
        const char *token;
        enum pay_auth_outcome outcome;
        const char *brand;
        const char *last4;
    } TOKENS[] = {
        { "tok_visa", PAY_AUTH_APPROVED, "visa", "4242" },
        { "tok_mastercard", PAY_AUTH_APPROVED, "mastercard", "4444" },
        { "tok_chargeDeclined", PAY_AUTH_DECLINED, "visa", "0002" },
        { "tok_insufficient_funds", PAY_AUTH_INSUFFICIENT_FUNDS, "visa", "9995" },
        { "tok_timeout", PAY_AUTH_NO_ANSWER, "visa", "0017" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(TOKENS); i++) {
        if (token != NULL && strcmp(token, TOKENS[i].token) == 0) {
            snprintf(out_card->brand, sizeof(out_card->brand), "%s", TOKENS[i].brand);
            snprintf(out_card->last4, sizeof(out_card->last4), "%s", TOKENS[i].last4);
            return TOKENS[i].outcome;
        }
    }
    snprintf(out_card->brand, sizeof(out_card->brand), "unknown");
    snprintf(out_card->last4, sizeof(out_card->last4), "0000");
    return PAY_AUTH_DECLINED;
}

const char *
pay_auth_outcome_reason(enum pay_auth_outcome o)
{
    switch (o) {
    case PAY_AUTH_DECLINED: return "declined";
    case PAY_AUTH_INSUFFICIENT_FUNDS: return "insufficient_funds";
    case PAY_AUTH_NO_ANSWER: return "timeout";
    default: return "error";
    }
}
