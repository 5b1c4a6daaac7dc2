/* SPDX-License-Identifier: MIT */
/* The built-in sandbox payment provider behind struct pay_provider_ops: it
 * answers authorizations after a timer on the service's loop, as the test
 * tokens of DESIGN.md section 2 say (pay_sandbox_outcome), and never for
 * tok_timeout, so the service's deadline is what ends those. Captures,
 * releases and refunds always succeed. It sees token references only, and
 * keeps nothing. */
#include "agora/base.h"
#include "payments.h"

#include <stdio.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/uuid.h"

struct sandbox {
    uv_loop_t *loop;
    uint64_t latency_ms;
    struct pay_provider prov;
};

struct pay_provider_call {
    struct sandbox *sb;
    uv_timer_t timer; /* started unless the token never answers */
    struct pay_auth_result res;
    pay_provider_auth_cb cb;
    void *udata;
};

static void
call_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

static void
call_answer(uv_timer_t *t)
{
    struct pay_provider_call *c = t->data;
    c->cb(&c->sb->prov, &c->res, c->udata);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

static int
sb_authorize(struct pay_provider *prov, const char *token, struct ag_money amount,
             pay_provider_auth_cb cb, void *udata, struct pay_provider_call **out_call)
{
    AG_UNUSED(amount);
    struct sandbox *sb = prov->impl;
    struct pay_provider_call *c = ag_calloc(1, sizeof(*c));
    c->sb = sb;
    c->cb = cb;
    c->udata = udata;
    enum pay_auth_outcome o = pay_sandbox_outcome(token, &c->res.card);
    c->res.outcome = o;
    if (o == PAY_AUTH_APPROVED) {
        char id[AG_UUID_STRLEN + 1];
        ag_uuid7(id);
        snprintf(c->res.ref, sizeof(c->res.ref), "sbx_%s", id);
    }
    uv_timer_init(sb->loop, &c->timer);
    c->timer.data = c;
    if (o != PAY_AUTH_NO_ANSWER)
        uv_timer_start(&c->timer, call_answer, sb->latency_ms, 0);
    *out_call = c;
    return 0;
}

static void
sb_cancel(struct pay_provider *prov, struct pay_provider_call *c)
{
    AG_UNUSED(prov);
    /* The sandbox made no authorization before answering, so there is
     * nothing to release at the provider. */
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, call_closed);
}

static int
sb_capture(struct pay_provider *prov, const char *ref, struct ag_money amount)
{
    AG_UNUSED(prov);
    AG_UNUSED(amount);
    return ref != NULL && ref[0] != '\0' ? 0 : AG_EINVAL;
}

static int
sb_release(struct pay_provider *prov, const char *ref)
{
    AG_UNUSED(prov);
    AG_UNUSED(ref);
    return 0;
}

static int
sb_refund(struct pay_provider *prov, const char *ref, struct ag_money amount)
{
    AG_UNUSED(prov);
    AG_UNUSED(amount);
    return ref != NULL && ref[0] != '\0' ? 0 : AG_EINVAL;
}

static void
sb_free(struct pay_provider *prov)
{
    if (prov != NULL)
        ag_free(prov->impl);
}

static const struct pay_provider_ops SANDBOX_OPS = {
    .name = "sandbox",
    .authorize = sb_authorize,
    .cancel = sb_cancel,
    .capture = sb_capture,
    .release = sb_release,
    .refund = sb_refund,
    .free = sb_free,
};

struct pay_provider *
pay_sandbox_new(uv_loop_t *loop, uint64_t latency_ms)
{
    struct sandbox *sb = ag_calloc(1, sizeof(*sb));
    sb->loop = loop;
    sb->latency_ms = latency_ms;
    sb->prov.ops = &SANDBOX_OPS;
    sb->prov.impl = sb;
    return &sb->prov;
}
