/* SPDX-License-Identifier: MIT */
/* Registry HTTP handlers and the route table; the long polls (requests held
 * until what they watch changes, their 'wait' runs out or the process
 * stops) and the expiry timer. Handlers validate with the domain, change
 * the in-memory table or the store, answer, and then wake the watchers of
 * what changed. Everything runs on the service's loop thread. */
#include "agora/base.h"
#include "reg.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/time.h"

#define JSON_TYPE     "application/json"
#define PROBLEM_TYPE  "application/problem+json"
#define INDEX_HEADER  "X-Agora-Index"
#define ORPHAN_STATUS 499          /* nginx's "client closed request"; never written */
#define LIST_MAX      (128u << 20) /* largest configuration listing rendered */

/* ---- Helpers ---- */

static void
clock_now(struct reg_clock *c)
{
    c->unix_ms = ag_time_unix_ms();
    c->mono_ms = ag_time_mono_ms();
}

static void
set_index_header(struct ag_http_req *req, int64_t index)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)index);
    ag_http_resp_header(req, INDEX_HEADER, s);
}

/* Send 'body' (a JSON reference, stolen) with the index header. */
static void
send_json_index(struct ag_http_req *req, json_t *body, int64_t index)
{
    set_index_header(req, index);
    ag_send_json(req, 200, body);
}

/* Send the JSON text in 'buf' (taken; 'buf' is left empty) with the index
 * header. */
static void
send_buf_index(struct ag_http_req *req, struct ag_buf *buf, int64_t index)
{
    set_index_header(req, index);
    size_t len;
    char *data = ag_buf_detach(buf, &len);
    ag_http_send_take(req, 200, JSON_TYPE, data, len);
}

/* ag_send_store_error, and the registry's own answer to a listing past
 * LIST_MAX. */
static void
send_store_error(struct ag_http_req *req, int rc, const char *what)
{
    if (rc == AG_ETOOBIG) {
        ag_send_problem(req, 500, "too-large", "Internal Server Error",
                        "the %s is larger than %u bytes; use a narrower prefix", what,
                        (unsigned)LIST_MAX);
        return;
    }
    ag_send_store_error(req, rc, what);
}

static void
send_capacity(struct ag_http_req *req, const char *what, int64_t max)
{
    ag_send_problem(req, 503, "capacity", "Service Unavailable",
                    "the registry holds its maximum of %lld %s", (long long)max, what);
}

/* 409 for a failed compare-and-set, with the stored version as the problem
 * member "current_version" (0 when the key is absent). */
static void
send_conflict(struct ag_http_req *req, const char *key, int64_t cas, int64_t current)
{
    char detail[320];
    snprintf(detail, sizeof(detail), "cas %lld does not match: '%s' is at version %lld%s",
             (long long)cas, key, (long long)current, current == 0 ? " (absent)" : "");
    json_t *p = ag_problem_new(409, "conflict", "Conflict", detail);
    json_object_set_new(p, "current_version", json_integer(current));
    json_object_set_new(p, "instance", json_stringn(req->path.ptr, req->path.len));
    json_object_set_new(p, "request_id", json_string(ag_req_id(req)));
    struct ag_buf buf = AG_BUF_INIT(0);
    ag_json_dump(p, &buf);
    json_decref(p);
    size_t len;
    char *data = ag_buf_detach(&buf, &len);
    ag_http_send_take(req, 409, PROBLEM_TYPE, data, len);
}

/* The long-poll parameters of a read. */
struct poll_params {
    bool has_index; /* 'index' given: the client wants to wait for a change */
    int64_t index;  /* the index the client has seen */
    int64_t wait;   /* ms to hold at most */
};

/* The long-poll parameters of 'req'; false after answering 400. */
static bool
poll_params(struct ag_http_req *req, struct poll_params *out)
{
    out->index = -1; /* a given index is at least 0 */
    out->wait = REG_WAIT_DEFAULT;
    if (ag_req_query_int(req, "index", 0, REG_INDEX_MAX, &out->index) != 0 ||
        ag_req_query_int(req, "wait", 0, REG_WAIT_MAX, &out->wait) != 0)
        return false;
    out->has_index = out->index >= 0;
    if (!out->has_index)
        out->index = 0;
    return true;
}

/* Should a read with 'p' whose subject is at 'current' be held? Only when
 * the client has seen 'current' already and its index is one this process
 * could have handed out (a larger one, e.g. from a registry whose clock went
 * back, is answered at once so the client resets). */
static bool
should_hold(const struct reg *r, const struct poll_params *p, int64_t current)
{
    return p->has_index && p->wait > 0 && !r->stopping && current <= p->index &&
           p->index <= r->state.index;
}

static void
bad_name(struct ag_valid *v, const char *field, const char *value, bool ok, const char *rule)
{
    if (value == NULL || !ok)
        ag_valid_error(v, field, "invalid", "must be %s", rule);
}

#define SERVICE_RULE "1 to 64 of a-z, 0-9 and '-'"
#define ID_RULE      "1 to 128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
#define KEY_RULE     "1 to 200 of A-Z, a-z, 0-9, '.', '_' and '-'"

/* ---- Long polls ---- */

static void
list_push(struct reg_watch **head, struct reg_watch *w)
{
    w->prev = NULL;
    w->next = *head;
    if (*head != NULL)
        (*head)->prev = w;
    *head = w;
}

static void
list_unlink(struct reg_watch **head, struct reg_watch *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = NULL;
    w->next = NULL;
}

/* Take 'w' off its list. Its service entry (if any) is not pruned. */
static void
watch_detach(struct reg_watch *w)
{
    struct reg *r = w->reg;
    if (w->svc != NULL) {
        list_unlink(&w->svc->watches, w);
        w->svc->nwatches--;
    } else {
        list_unlink(&r->config_watches, w);
        r->nconfig_watches--;
    }
    r->nwatches--;
}

static void
on_watch_closed(uv_handle_t *h)
{
    struct reg_watch *w = h->data;
    ag_free(w->prefix);
    w->prefix = NULL;
    ag_free(w);
}

/* Stop the timer of detached watch 'w' and hand back its request, which the
 * caller must answer; 'w' is freed once the timer has closed, so its fields
 * stay readable until control returns to the loop. */
static struct ag_http_req *
watch_take(struct reg_watch *w)
{
    struct ag_http_req *req = w->req;
    w->req = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_watch_closed);
    return req;
}

/* Answer a held request with 'len' bytes of JSON at 'body' (copied), or
 * drop it when its client has gone. */
static void
answer(struct ag_http_req *req, const char *body, size_t len, int64_t index)
{
    if (ag_http_req_is_orphan(req)) {
        ag_http_send(req, ORPHAN_STATUS, NULL, NULL, 0);
        return;
    }
    set_index_header(req, index);
    ag_http_send(req, 200, JSON_TYPE, body, len);
}

/* The answer to a read of service 'name' at 'now', as JSON text appended
 * to 'out'; returns the index it carries. */
static int64_t
render_service(struct reg *r, const char *name, const struct reg_clock *now, struct ag_buf *out)
{
    struct reg_service *svc = reg_state_service(&r->state, name);
    int64_t index = svc ? svc->modify_index : r->state.absent_index;
    json_t *j = reg_service_to_json(svc, name, index, now);
    ag_json_dump(j, out);
    json_decref(j);
    return index;
}

/* {"items":[...],"index":N} for 'prefix', appended to 'out'. */
static int
render_config_list(struct reg *r, const char *prefix, struct ag_buf *out)
{
    int rc = ag_buf_append_cstr(out, "{\"items\":[");
    if (rc == 0)
        rc = reg_store_config_list(r->store, prefix, out);
    if (rc == 0)
        rc = ag_buf_appendf(out, "],\"index\":%lld}", (long long)r->config_index);
    return rc;
}

/* Answer every long poll on 'svc' with its state at 'now' (rendered once).
 * The caller prunes 'svc' afterwards when it may be empty. */
static void
wake_service(struct reg *r, struct reg_service *svc, const struct reg_clock *now)
{
    if (svc->nwatches == 0)
        return;
    struct ag_buf body = AG_BUF_INIT(0);
    int64_t index = render_service(r, svc->name, now, &body);
    while (svc->watches != NULL) {
        struct reg_watch *w = svc->watches;
        watch_detach(w);
        answer(watch_take(w), body.data, body.len, index);
    }
    ag_buf_release(&body);
}

/* The instance set of 'svc' changed at 'now': refresh its gauge and wake
 * its watchers. */
static void
service_changed(struct reg *r, struct reg_service *svc, const struct reg_clock *now)
{
    const char *labels[] = { svc->name };
    ag_gauge_set(r->m_instances, labels, (double)svc->ninst);
    wake_service(r, svc, now);
}

static bool
config_watch_matches(const struct reg_watch *w, const char *key)
{
    return key == NULL || reg_key_has_prefix(key, w->prefix);
}

/* Answer the configuration long polls whose prefix 'key' starts with (all
 * of them when 'key' is NULL). Watches on the same prefix share one
 * rendering of the listing. */
static void
wake_config(struct reg *r, const char *key)
{
    for (;;) {
        struct reg_watch *w = r->config_watches;
        while (w != NULL && !config_watch_matches(w, key))
            w = w->next;
        if (w == NULL)
            return;
        char prefix[REG_KEY_MAX + 1];
        snprintf(prefix, sizeof(prefix), "%s", w->prefix);
        struct ag_buf body = AG_BUF_INIT(LIST_MAX);
        int rc = render_config_list(r, prefix, &body);
        if (rc != 0)
            AG_LOGE("watch", "cannot list configuration under '%s': %s", prefix, ag_strerror(rc));
        while (w != NULL) {
            struct reg_watch *next = w->next;
            if (strcmp(w->prefix, prefix) == 0 && config_watch_matches(w, key)) {
                watch_detach(w);
                struct ag_http_req *req = watch_take(w);
                if (rc == 0)
                    answer(req, body.data, body.len, r->config_index);
                else
                    ag_send_error(req, AG_EINTERNAL, "cannot list the configuration");
            }
            w = next;
        }
        ag_buf_release(&body);
    }
}

/* Answer every long poll with the current state (shutdown). */
static void
wake_all(struct reg *r)
{
    struct reg_clock now;
    clock_now(&now);
    size_t i = 0;
    while (i < r->state.nsvcs) {
        struct reg_service *svc = r->state.svcs[i];
        size_t before = r->state.nsvcs;
        wake_service(r, svc, &now);
        reg_state_service_prune(&r->state, svc);
        if (r->state.nsvcs == before)
            i++;
    }
    wake_config(r, NULL);
}

/* Drop the long polls whose client has gone (they would only be found at
 * their deadline otherwise). */
static void
sweep_orphans(struct reg *r)
{
    size_t i = 0;
    while (i < r->state.nsvcs) {
        struct reg_service *svc = r->state.svcs[i];
        struct reg_watch *w = svc->watches;
        while (w != NULL) {
            struct reg_watch *next = w->next;
            if (ag_http_req_is_orphan(w->req)) {
                watch_detach(w);
                ag_http_send(watch_take(w), ORPHAN_STATUS, NULL, NULL, 0);
            }
            w = next;
        }
        size_t before = r->state.nsvcs;
        reg_state_service_prune(&r->state, svc);
        if (r->state.nsvcs == before)
            i++;
    }
    struct reg_watch *w = r->config_watches;
    while (w != NULL) {
        struct reg_watch *next = w->next;
        if (ag_http_req_is_orphan(w->req)) {
            watch_detach(w);
            ag_http_send(watch_take(w), ORPHAN_STATUS, NULL, NULL, 0);
        }
        w = next;
    }
}

/* Is there room for one more long poll? Sweeps departed clients first when
 * the limit is reached. May prune empty services: take service pointers
 * only after calling it. */
static bool
watch_room(struct reg *r)
{
    if ((int64_t)r->nwatches < r->settings.max_watches)
        return true;
    sweep_orphans(r);
    return (int64_t)r->nwatches < r->settings.max_watches;
}

static void expire_due(struct reg *r, struct reg_clock *now);

static void
on_watch_timer(uv_timer_t *t)
{
    struct reg_watch *w = t->data;
    struct reg *r = w->reg;
    struct reg_service *svc = w->svc;
    struct reg_clock now;
    if (svc != NULL) {
        /* Expire first, while the watch still keeps 'svc' from being pruned;
         * if that changed the service, the watch has been answered. */
        expire_due(r, &now);
        if (w->req == NULL)
            return;
    }
    watch_detach(w);
    struct ag_http_req *req = watch_take(w);
    if (ag_http_req_is_orphan(req)) {
        ag_http_send(req, ORPHAN_STATUS, NULL, NULL, 0);
    } else if (svc != NULL) {
        struct ag_buf body = AG_BUF_INIT(0);
        int64_t index = render_service(r, svc->name, &now, &body);
        answer(req, body.data, body.len, index);
        ag_buf_release(&body);
    } else {
        struct ag_buf body = AG_BUF_INIT(LIST_MAX);
        int rc = render_config_list(r, w->prefix, &body);
        if (rc == 0)
            answer(req, body.data, body.len, r->config_index);
        else
            send_store_error(req, rc, "configuration listing");
        ag_buf_release(&body);
    }
    reg_state_service_prune(&r->state, svc);
}

/* Hold 'req' for up to 'wait_ms' on 'svc' or, when 'svc' is NULL, on the
 * configuration keys under 'prefix'. Call watch_room first. */
static void
watch_start(struct reg *r, struct ag_http_req *req, struct reg_service *svc, const char *prefix,
            int64_t wait_ms)
{
    struct reg_watch *w = ag_calloc(1, sizeof(*w));
    w->reg = r;
    w->req = req;
    w->svc = svc;
    w->started_mono_ms = ag_time_mono_ms();
    uv_timer_init(ag_service_loop(r->svc), &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_watch_timer, (uint64_t)wait_ms, 0);
    if (svc != NULL) {
        list_push(&svc->watches, w);
        svc->nwatches++;
    } else {
        w->prefix = ag_strdup(prefix);
        list_push(&r->config_watches, w);
        r->nconfig_watches++;
    }
    r->nwatches++;
}

/* ---- Expiry ---- */

static void on_expiry_timer(uv_timer_t *t);

/* Make sure the expiry timer fires by monotonic time 'due'. */
static void
arm_expiry(struct reg *r, uint64_t due)
{
    if (!r->started || r->stopping || due == UINT64_MAX)
        return;
    if (uv_is_active((uv_handle_t *)&r->expiry_timer) && due >= r->expiry_due)
        return;
    uint64_t now = ag_time_mono_ms();
    r->expiry_due = due;
    /* One millisecond late rather than early: the loop's clock may lag. */
    uv_timer_start(&r->expiry_timer, on_expiry_timer, (due > now ? due - now : 0) + 1, 0);
}

struct expire_ctx {
    struct reg *r;
    const struct reg_clock *now;
};

static void
on_expired(struct reg_state *st, struct reg_service *svc, size_t nexpired, void *udata)
{
    AG_UNUSED(st);
    struct expire_ctx *c = udata;
    AG_LOGI("expiry", "%zu instance(s) of '%s' expired (no heartbeat within their TTL)", nexpired,
            svc->name);
    service_changed(c->r, svc, c->now);
}

/* Remove the instances whose deadline is at or before 'now', wake their
 * watchers and re-arm the timer for the next deadline. */
static void
run_expiry(struct reg *r, const struct reg_clock *now)
{
    uv_timer_stop(&r->expiry_timer);
    r->expiry_due = UINT64_MAX;
    struct expire_ctx c = { .r = r, .now = now };
    size_t n = reg_state_expire(&r->state, now, on_expired, &c);
    if (n > 0)
        ag_counter_add(r->m_expirations, NULL, (double)n);
    arm_expiry(r, reg_state_next_expiry(&r->state));
}

static void
on_expiry_timer(uv_timer_t *t)
{
    struct reg_clock now;
    clock_now(&now);
    run_expiry(t->data, &now);
}

/* Read the clock into 'now' and expire what is due by then, so a handler
 * never shows an instance set without its index (the timer may fire a
 * moment after a deadline). The armed deadline is never later than the
 * earliest instance deadline, so this costs one comparison. */
static void
expire_due(struct reg *r, struct reg_clock *now)
{
    clock_now(now);
    if (r->started && r->expiry_due <= now->mono_ms)
        run_expiry(r, now);
}

/* ---- Who may write ---- */

/* Every route here is internal: the chassis has already refused callers
 * without a service identity (401/403). Writes are narrower still (least
 * privilege on one machine): a service registers, renews and removes only
 * instances of itself; configuration is written by the operator (the
 * supervisor and admin tools, AG_IDENTITY_OPERATOR) only. Answers 403 and
 * returns false otherwise. */
static bool
may_write_instances(struct ag_http_req *req, const char *service)
{
    const struct ag_identity *id = ag_req_identity(req);
    if (id != NULL && service != NULL &&
        (strcmp(id->user_id, service) == 0 || strcmp(id->user_id, AG_IDENTITY_OPERATOR) == 0))
        return true;
    ag_send_problem(req, 403, "forbidden", "Forbidden",
                    "service '%s' may not register instances of '%s'", id ? id->user_id : "",
                    service ? service : "");
    return false;
}

static bool
may_write_config(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    if (id != NULL && strcmp(id->user_id, AG_IDENTITY_OPERATOR) == 0)
        return true;
    ag_send_problem(req, 403, "forbidden", "Forbidden",
                    "configuration is written by the operator ('%s'), not by '%s'",
                    AG_IDENTITY_OPERATOR, id ? id->user_id : "");
    return false;
}

/* ---- Instances ---- */

static void
put_instance(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *service = ag_req_param(req, "service");
    const char *id = ag_req_param(req, "id");
    if (!may_write_instances(req, service))
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    bad_name(&v, "service", service, service && reg_service_name_is_valid(service), SERVICE_RULE);
    bad_name(&v, "id", id, id && reg_instance_id_is_valid(id), ID_RULE);
    struct reg_instance_spec spec;
    if (!reg_instance_spec_from_json(&v, body, &spec)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    struct reg_clock now;
    expire_due(r, &now);
    struct reg_service *svc;
    struct reg_instance *inst;
    bool changed;
    int rc = reg_state_register(&r->state, service, id, &spec, &now, &svc, &inst, &changed);
    if (rc == AG_EUNAVAIL) {
        send_capacity(req, "instances", r->settings.max_instances);
        return;
    }
    arm_expiry(r, inst->expires_mono);
    if (changed)
        AG_LOGI("instances", "registered '%s' instance '%s' at %s:%d (ttl %lld ms)", service, id,
                spec.address, spec.port, (long long)spec.ttl_ms);
    ag_send_json(req, 200, reg_instance_to_json(inst, service));
    if (changed)
        service_changed(r, svc, &now);
}

static void
heartbeat(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *service = ag_req_param(req, "service");
    const char *id = ag_req_param(req, "id");
    if (!may_write_instances(req, service))
        return;
    struct reg_clock now;
    expire_due(r, &now);
    struct reg_instance *inst;
    int rc = AG_ENOENT;
    if (service && id && reg_service_name_is_valid(service) && reg_instance_id_is_valid(id))
        rc = reg_state_heartbeat(&r->state, service, id, &now, &inst);
    if (rc != 0) {
        ag_send_error(req, AG_ENOENT,
                      "no live instance '%s' of '%s' (unknown or expired): register it again",
                      id ? id : "", service ? service : "");
        return;
    }
    char expires[AG_RFC3339_LEN];
    ag_time_rfc3339(inst->seen_ms + inst->ttl_ms, expires);
    ag_send_json(req, 200, json_pack("{s:s}", "expires_at", expires));
}

static void
delete_instance(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *service = ag_req_param(req, "service");
    const char *id = ag_req_param(req, "id");
    if (!may_write_instances(req, service))
        return;
    struct reg_clock now;
    expire_due(r, &now);
    struct reg_service *svc = NULL;
    int rc = AG_ENOENT;
    if (service && id && reg_service_name_is_valid(service) && reg_instance_id_is_valid(id))
        rc = reg_state_deregister(&r->state, service, id, &svc);
    if (rc != 0) {
        ag_send_error(req, AG_ENOENT, "no instance '%s' of '%s'", id ? id : "",
                      service ? service : "");
        return;
    }
    AG_LOGI("instances", "deregistered '%s' instance '%s'", service, id);
    ag_send_no_content(req);
    service_changed(r, svc, &now);
    reg_state_service_prune(&r->state, svc);
}

static void
list_services(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    struct reg_clock now;
    expire_due(r, &now);
    send_json_index(req, reg_state_services_to_json(&r->state, &now), r->state.index);
}

static void
get_service(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *name = ag_req_param(req, "service");
    if (name == NULL || !reg_service_name_is_valid(name)) {
        struct ag_valid v;
        ag_valid_init(&v);
        bad_name(&v, "service", name, false, SERVICE_RULE);
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    struct poll_params p;
    if (!poll_params(req, &p))
        return;
    struct reg_clock now;
    expire_due(r, &now);
    if (should_hold(r, &p, reg_state_service_index(&r->state, name))) {
        if (!watch_room(r)) {
            send_capacity(req, "long polls", r->settings.max_watches);
            return;
        }
        watch_start(r, req, reg_state_service_add(&r->state, name), NULL, p.wait);
        return;
    }
    struct ag_buf body = AG_BUF_INIT(0);
    int64_t index = render_service(r, name, &now, &body);
    send_buf_index(req, &body, index);
}

/* ---- Configuration ---- */

static void
get_config(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *key = ag_req_param(req, "key");
    struct reg_config_entry e;
    int rc = AG_ENOENT;
    if (key != NULL && reg_config_key_is_valid(key))
        rc = reg_store_config_get(r->store, key, req->pool, &e);
    if (rc == AG_ENOENT) {
        ag_send_error(req, AG_ENOENT, "no configuration key '%s'", key ? key : "");
        return;
    }
    if (rc != 0) {
        send_store_error(req, rc, "configuration key");
        return;
    }
    struct ag_buf body = AG_BUF_INIT(0);
    reg_config_entry_render(&e, &body);
    send_buf_index(req, &body, r->config_index);
}

static void
list_config(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    const char *prefix = ag_query_get(q, "prefix");
    if (prefix == NULL)
        prefix = "";
    if (!reg_config_prefix_is_valid(prefix)) {
        ag_send_error(req, AG_EQUERY,
                      "query parameter 'prefix' must be 0 to %d of A-Z, a-z, 0-9, '.', '_' "
                      "and '-'",
                      REG_KEY_MAX);
        return;
    }
    struct poll_params p;
    if (!poll_params(req, &p))
        return;
    if (should_hold(r, &p, INT64_MIN)) {
        int64_t current;
        int rc = reg_store_prefix_index(r->store, prefix, &current);
        if (rc != 0) {
            send_store_error(req, rc, "configuration index");
            return;
        }
        if (current <= p.index) {
            if (!watch_room(r)) {
                send_capacity(req, "long polls", r->settings.max_watches);
                return;
            }
            watch_start(r, req, NULL, prefix, p.wait);
            return;
        }
    }
    struct ag_buf body = AG_BUF_INIT(LIST_MAX);
    int rc = render_config_list(r, prefix, &body);
    if (rc != 0) {
        ag_buf_release(&body);
        send_store_error(req, rc, "configuration listing");
        return;
    }
    send_buf_index(req, &body, r->config_index);
}

static void
put_config(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *key = ag_req_param(req, "key");
    if (!may_write_config(req))
        return;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    bad_name(&v, "key", key, key && reg_config_key_is_valid(key), KEY_RULE);
    struct ag_buf value = AG_BUF_INIT(REG_VALUE_MAX);
    int64_t cas;
    if (!reg_config_put_from_json(&v, body, &value, &cas)) {
        ag_buf_release(&value);
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    int64_t index = reg_state_next_index(&r->state);
    int64_t version = 0;
    int64_t current = 0;
    bool created = false;
    int rc = reg_store_config_put(r->store, key, value.data, value.len, cas, index,
                                  r->settings.max_config_keys, r->settings.max_config_bytes,
                                  &version, &current, &created);
    ag_buf_release(&value);
    if (rc == AG_ECONFLICT) {
        send_conflict(req, key, cas, current);
        return;
    }
    if (rc == AG_EUNAVAIL) {
        send_capacity(req, "configuration keys", r->settings.max_config_keys);
        return;
    }
    if (rc == AG_ETOOBIG) {
        send_capacity(req, "bytes of configuration values", (int64_t)r->settings.max_config_bytes);
        return;
    }
    if (rc != 0) {
        send_store_error(req, rc, "configuration key");
        return;
    }
    r->config_index = index;
    r->config_keys += created;
    AG_LOGI("config", "'%s' set to version %lld (index %lld)", key, (long long)version,
            (long long)index);
    /* 'key' lives in the request pool, which the answer frees. */
    char changed[REG_KEY_MAX + 1];
    snprintf(changed, sizeof(changed), "%s", key);
    set_index_header(req, index);
    ag_send_json(req, 200,
                 json_pack("{s:s, s:I, s:I}", "key", key, "version", (json_int_t)version,
                           "modify_index", (json_int_t)index));
    wake_config(r, changed);
}

static void
delete_config(struct ag_http_req *req, void *udata)
{
    struct reg *r = udata;
    const char *key = ag_req_param(req, "key");
    if (!may_write_config(req))
        return;
    int64_t cas = -1; /* none */
    if (ag_req_query_int(req, "cas", 0, INT64_MAX, &cas) != 0)
        return;
    int64_t current = 0;
    int rc = AG_ENOENT;
    if (key != NULL && reg_config_key_is_valid(key)) {
        int64_t index = reg_state_next_index(&r->state);
        rc = reg_store_config_delete(r->store, key, cas, index, &current);
        if (rc == 0) {
            r->config_index = index;
            r->config_keys--;
        }
    }
    if (rc == AG_ENOENT) {
        ag_send_error(req, AG_ENOENT, "no configuration key '%s'", key ? key : "");
        return;
    }
    if (rc == AG_ECONFLICT) {
        send_conflict(req, key, cas, current);
        return;
    }
    if (rc != 0) {
        send_store_error(req, rc, "configuration key");
        return;
    }
    AG_LOGI("config", "'%s' deleted (index %lld)", key, (long long)r->config_index);
    char changed[REG_KEY_MAX + 1];
    snprintf(changed, sizeof(changed), "%s", key);
    ag_send_no_content(req);
    wake_config(r, changed);
}

/* ---- Lifecycle ---- */

static void
collect(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct reg *r = udata;
    ag_gauge_set(r->m_watches, NULL, (double)r->nwatches);
    ag_gauge_set(r->m_config_keys, NULL, (double)r->config_keys);
}

int
reg_api_start(struct reg *r)
{
    int64_t stored;
    int64_t config_index;
    int64_t keys;
    int rc = reg_store_load(r->store, &stored, &config_index, &keys);
    if (rc != 0) {
        AG_LOGE("registry", "cannot read the persisted index: %s (%s)", ag_strerror(rc),
                ag_store_errmsg(r->store));
        return rc;
    }
    int64_t start = reg_start_index(stored, ag_time_unix_ms() * 1000);
    if (config_index < 0) {
        rc = reg_store_init_index(r->store, start);
        if (rc != 0) {
            AG_LOGE("registry", "cannot initialise the config index: %s (%s)", ag_strerror(rc),
                    ag_store_errmsg(r->store));
            return rc;
        }
        config_index = start;
    }
    reg_state_init(&r->state, start, (size_t)r->settings.max_instances);
    r->config_index = config_index;
    r->config_keys = keys;

    struct ag_metrics *m = ag_service_metrics(r->svc);
    static const char *const service_label[] = { "service" };
    r->m_instances = ag_metrics_gauge(m, "registry_instances", "Instances registered, by service",
                                      service_label, 1);
    r->m_watches = ag_metrics_gauge(m, "registry_watches", "Long polls being held", NULL, 0);
    r->m_expirations = ag_metrics_counter(m, "registry_expirations_total",
                                          "Instances removed because their TTL ran out", NULL, 0);
    r->m_config_keys =
        ag_metrics_gauge(m, "registry_config_keys", "Configuration keys stored", NULL, 0);
    ag_metrics_on_collect(m, collect, r);

    uv_timer_init(ag_service_loop(r->svc), &r->expiry_timer);
    r->expiry_timer.data = r;
    r->expiry_due = UINT64_MAX;
    r->started = true;
    AG_LOGI("registry", "index starts at %lld; config index %lld, %lld keys", (long long)start,
            (long long)config_index, (long long)keys);
    return 0;
}

void
reg_api_stopping(struct reg *r)
{
    r->stopping = true;
    if (!r->started)
        return;
    size_t held = r->nwatches;
    wake_all(r);
    uv_timer_stop(&r->expiry_timer);
    AG_LOGI("registry", "stopping: answered %zu long poll(s)", held);
}

void
reg_api_stop(struct reg *r)
{
    if (!r->started)
        return;
    r->stopping = true;
    wake_all(r);
    uv_close((uv_handle_t *)&r->expiry_timer, NULL);
    int rc = reg_store_save_index(r->store, r->state.index);
    if (rc != 0)
        AG_LOGE("registry", "cannot persist the index: %s (%s)", ag_strerror(rc),
                ag_store_errmsg(r->store));
    reg_state_release(&r->state);
    r->started = false;
}

const struct ag_route reg_routes[] = {
    { "GET", "/v1/services", list_services, AG_ROLE_INTERNAL },
    { "GET", "/v1/services/{service}", get_service, AG_ROLE_INTERNAL },
    { "PUT", "/v1/services/{service}/instances/{id}", put_instance, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/services/{service}/instances/{id}", delete_instance, AG_ROLE_INTERNAL },
    { "PUT", "/v1/services/{service}/instances/{id}/heartbeat", heartbeat, AG_ROLE_INTERNAL },
    { "GET", "/v1/config", list_config, AG_ROLE_INTERNAL },
    { "GET", "/v1/config/{key}", get_config, AG_ROLE_INTERNAL },
    { "PUT", "/v1/config/{key}", put_config, AG_ROLE_INTERNAL },
    { "DELETE", "/v1/config/{key}", delete_config, AG_ROLE_INTERNAL },
};
const size_t reg_nroutes = AG_ARRAY_SIZE(reg_routes);
