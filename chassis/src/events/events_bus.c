/* SPDX-License-Identifier: MIT */
/* The embedded bus backend of the events runtime (events_int.h): publish,
 * ensure a subscription, pull (long poll), ack and nack as JSON over HTTP
 * with the service's ag_http_client, against platform/bus. Retries are the
 * runtime's business, so every call is sent once (max_retries -1). */
#include "agora/base.h"
#include "events_int.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/time.h"

#define BUS_BACKEND_MAGIC 0x45564255u /* "EVBU" */

/* Deadlines of one call. A pull gets its wait plus this margin. */
#define PUBLISH_TIMEOUT_MS 15000
#define CONTROL_TIMEOUT_MS 5000
#define PULL_MARGIN_MS     10000

enum call_kind {
    CALL_PUBLISH = 0, /* POST /v1/messages */
    CALL_ENSURE,      /* PUT /v1/subscriptions/{name} */
    CALL_PULL,        /* POST /v1/subscriptions/{name}/pull */
    CALL_SETTLE,      /* POST /v1/subscriptions/{name}/ack or /nack */
};

struct evbus;

struct evbus_call {
    struct evbus_call *prev; /* in evbus->calls */
    struct evbus_call *next;
    struct evbus *bus;
    enum call_kind kind;
    ag__events_done_fn cb;
    void *udata;
    char **ids;       /* publish: the message ids, to match results */
    size_t nids;      /* publish: messages sent */
    bool cancel_mark; /* chosen by the ongoing cancel */
};

struct evbus {
    uint32_t magic;
    struct ag_http_client *client;     /* borrowed */
    char *url;                         /* base URL without a trailing '/' */
    struct ag_identity_self *identity; /* signs every call; borrowed, or NULL */
    struct evbus_call *calls;          /* pending calls */
};

/* ---- Calls ---- */

static void
call_free(struct evbus_call *call)
{
    for (size_t i = 0; i < call->nids; i++)
        ag_free(call->ids[i]);
    ag_free(call->ids);
    ag_free(call);
}

static void
call_unlink(struct evbus_call *call)
{
    struct evbus *bus = call->bus;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        bus->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = NULL;
    call->next = NULL;
}

/* Map a transport outcome or an HTTP status to the runtime's error codes. */
static int
map_status(const struct ag_http_client_response *resp)
{
    if (resp->err != 0)
        return resp->err == AG_ECLOSED ? AG_ECLOSED : resp->err;
    if (resp->status >= 200 && resp->status < 300)
        return 0;
    if (resp->status == 404)
        return AG_ENOENT;
    /* 413 and 422 are about the content: sending it again cannot help.
     * Other 4xx (400, 405...) mean a misconfigured URL or a client bug and
     * are retried, so a typo in AGORA_BUS_URL never drops events. */
    if (resp->status == 413 || resp->status == 422)
        return AG_EINVAL;
    return AG_EUNAVAIL;
}

/* Fill 'res' from the publish answer {"results":[{"id","seq","duplicate"}]}. */
static void
publish_result(struct evbus_call *call, const json_t *body, struct ag__events_result *res,
               bool *accepted)
{
    json_t *results = json_object_get(body, "results");
    if (!json_is_array(results)) {
        res->err = AG_EPARSE;
        res->detail = "publish answer without a results array";
        return;
    }
    /* Results come in request order; match by id anyway, trusting nothing. */
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        if (id == NULL)
            continue;
        size_t k = i < call->nids && strcmp(call->ids[i], id) == 0 ? i : call->nids;
        for (size_t j = 0; k == call->nids && j < call->nids; j++) {
            if (strcmp(call->ids[j], id) == 0)
                k = j;
        }
        if (k < call->nids && !accepted[k]) {
            accepted[k] = true;
            res->naccepted++;
        }
    }
    res->accepted = accepted;
}

static const char *
str_or_empty(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

/* Fill 'res' from the pull answer {"messages":[...]}; 'msgs' has room for
 * every element. Deliveries without an ack id cannot be settled and are
 * left out (the broker redelivers them after their lease). */
static void
pull_result(const json_t *body, struct ag__events_result *res, struct ag__events_msg *msgs)
{
    json_t *arr = json_object_get(body, "messages");
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        const char *ack_id = json_string_value(json_object_get(m, "ack_id"));
        if (ack_id == NULL)
            continue;
        struct ag__events_msg *out = &msgs[res->nmsgs++];
        out->ack_id = ack_id;
        out->id = str_or_empty(m, "id");
        out->topic = str_or_empty(m, "topic");
        out->subject = str_or_empty(m, "subject");
        out->seq = json_integer_value(json_object_get(m, "seq"));
        out->attempt = json_integer_value(json_object_get(m, "attempt"));
        out->event = json_object_get(m, "data");
    }
    res->msgs = msgs;
}

static void
on_http_done(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct evbus_call *call = udata;
    call_unlink(call);
    struct ag__events_result res = { .err = map_status(resp), .status = resp->status };
    char detail[160];
    if (resp->err != 0)
        snprintf(detail, sizeof(detail), "bus unreachable: %s", ag_strerror(resp->err));
    else
        snprintf(detail, sizeof(detail), "bus answered %d", resp->status);
    res.detail = detail;

    json_t *body = NULL;
    bool *accepted = NULL;
    struct ag__events_msg *msgs = NULL;
    if (res.err == 0 && (call->kind == CALL_PUBLISH || call->kind == CALL_PULL)) {
        char err[128];
        body = ag_json_parse(resp->body.ptr, resp->body.len, err, sizeof(err));
        if (body == NULL) {
            res.err = AG_EPARSE;
            snprintf(detail, sizeof(detail), "bad answer from the bus: %s", err);
        } else if (call->kind == CALL_PUBLISH) {
            accepted = ag_calloc(call->nids, sizeof(*accepted));
            publish_result(call, body, &res, accepted);
        } else {
            json_t *arr = json_object_get(body, "messages");
            if (!json_is_array(arr)) {
                res.err = AG_EPARSE;
                snprintf(detail, sizeof(detail), "pull answer without a messages array");
            } else {
                msgs = ag_calloc(json_array_size(arr) + 1, sizeof(*msgs));
                pull_result(body, &res, msgs);
            }
        }
    } else if (res.err == AG_EINVAL || (res.err != 0 && resp->err == 0)) {
        /* Keep the problem's detail for the log line. */
        char err[64];
        json_t *problem = ag_json_parse(resp->body.ptr, resp->body.len, err, sizeof(err));
        const char *d = json_string_value(json_object_get(problem, "detail"));
        if (d != NULL)
            snprintf(detail, sizeof(detail), "bus answered %d: %.120s", resp->status, d);
        json_decref(problem);
    }
    call->cb(&res, call->udata);
    json_decref(body);
    ag_free(accepted);
    ag_free(msgs);
    call_free(call);
}

/* Send 'body' (taken: freed here) with 'method' to base URL + 'path'. */
static int
send_call(struct evbus *bus, struct evbus_call *call, const char *method, const char *path,
          struct ag_buf *body, uint64_t timeout_ms)
{
    char *url = ag_asprintf("%s%s", bus->url, path);
    struct ag_http_client_header hdr;
    if (bus->identity != NULL)
        hdr = (struct ag_http_client_header){
            AG_IDENTITY_HEADER, ag_identity_self_header(bus->identity, ag_time_unix_ms() / 1000)
        };
    struct ag_http_client_request req = {
        .method = method,
        .url = url,
        .headers = bus->identity != NULL ? &hdr : NULL,
        .nheaders = bus->identity != NULL ? 1 : 0,
        .body = body->data,
        .body_len = body->len,
        .timeout_ms = timeout_ms,
        .max_retries = -1,
    };
    call->bus = bus;
    call->next = bus->calls;
    if (bus->calls != NULL)
        bus->calls->prev = call;
    bus->calls = call;
    int rc = ag_http_client_send(bus->client, &req, on_http_done, call);
    ag_free(url);
    ag_buf_release(body);
    if (rc != 0) {
        call_unlink(call);
        call_free(call);
    }
    return rc;
}

static struct evbus_call *
call_new(enum call_kind kind, ag__events_done_fn cb, void *udata)
{
    struct evbus_call *call = ag_calloc(1, sizeof(*call));
    call->kind = kind;
    call->cb = cb;
    call->udata = udata;
    return call;
}

/* Append 's' as a JSON string. */
static int
append_str(struct ag_buf *b, const char *s)
{
    json_t *j = json_string(s);
    if (j == NULL)
        return AG_EINVAL;
    int rc = ag_json_dump(j, b);
    json_decref(j);
    return rc;
}

/* ---- Operations ---- */

static int
bus_publish(void *be, const struct ag__events_out *msgs, size_t n, ag__events_done_fn cb,
            void *udata)
{
    struct evbus *bus = be;
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    if (n == 0)
        return AG_EINVAL;
    struct ag_buf body = AG_BUF_INIT(0);
    int rc = ag_buf_append_cstr(&body, "{\"messages\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = ag_buf_append_cstr(&body, i ? ",{\"id\":" : "{\"id\":");
        if (rc == 0)
            rc = append_str(&body, msgs[i].id);
        if (rc == 0)
            rc = ag_buf_append_cstr(&body, ",\"topic\":");
        if (rc == 0)
            rc = append_str(&body, msgs[i].topic);
        if (rc == 0)
            rc = ag_buf_append_cstr(&body, ",\"subject\":");
        if (rc == 0)
            rc = append_str(&body, msgs[i].subject);
        /* The CloudEvent was serialized (and validated) at publish time. */
        if (rc == 0)
            rc = ag_buf_append_cstr(&body, ",\"data\":");
        if (rc == 0)
            rc = ag_buf_append(&body, msgs[i].event, msgs[i].event_len);
        if (rc == 0)
            rc = ag_buf_append_char(&body, '}');
    }
    if (rc == 0)
        rc = ag_buf_append_cstr(&body, "]}");
    if (rc != 0) {
        ag_buf_release(&body);
        return rc;
    }
    struct evbus_call *call = call_new(CALL_PUBLISH, cb, udata);
    call->ids = ag_calloc(n, sizeof(*call->ids));
    call->nids = n;
    for (size_t i = 0; i < n; i++)
        call->ids[i] = ag_strdup(msgs[i].id);
    return send_call(bus, call, "POST", "/v1/messages", &body, PUBLISH_TIMEOUT_MS);
}

static int
bus_ensure(void *be, const char *sub, const char *const *topics, size_t ntopics,
           const struct ag_events_sub_options *opts, ag__events_done_fn cb, void *udata)
{
    struct evbus *bus = be;
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    json_t *arr = json_array();
    for (size_t i = 0; i < ntopics; i++)
        json_array_append_new(arr, json_string(topics[i]));
    json_t *obj = json_pack("{s:o}", "topics", arr);
    if (opts != NULL && opts->ack_deadline_ms != 0)
        json_object_set_new(obj, "ack_deadline_ms",
                            json_integer((json_int_t)opts->ack_deadline_ms));
    if (opts != NULL && opts->max_attempts != 0)
        json_object_set_new(obj, "max_attempts", json_integer((json_int_t)opts->max_attempts));
    if (opts != NULL && opts->retry_delay_ms != 0)
        json_object_set_new(obj, "retry_delay_ms", json_integer((json_int_t)opts->retry_delay_ms));
    struct ag_buf body = AG_BUF_INIT(0);
    int rc = ag_json_dump(obj, &body);
    json_decref(obj);
    if (rc != 0) {
        ag_buf_release(&body);
        return rc;
    }
    char path[192];
    snprintf(path, sizeof(path), "/v1/subscriptions/%s", sub);
    return send_call(bus, call_new(CALL_ENSURE, cb, udata), "PUT", path, &body, CONTROL_TIMEOUT_MS);
}

static int
bus_pull(void *be, const char *sub, size_t max, uint64_t wait_ms, ag__events_done_fn cb,
         void *udata)
{
    struct evbus *bus = be;
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    struct ag_buf body = AG_BUF_INIT(0);
    ag_buf_appendf(&body, "{\"max_messages\":%zu,\"wait_ms\":%llu}", max,
                   (unsigned long long)wait_ms);
    char path[192];
    snprintf(path, sizeof(path), "/v1/subscriptions/%s/pull", sub);
    return send_call(bus, call_new(CALL_PULL, cb, udata), "POST", path, &body,
                     wait_ms + PULL_MARGIN_MS);
}

static int
settle(struct evbus *bus, const char *sub, const char *verb, const char *const *ack_ids, size_t n,
       int64_t delay_ms, const char *error, ag__events_done_fn cb, void *udata)
{
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    if (n == 0)
        return AG_EINVAL;
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(ids, json_string(ack_ids[i]));
    json_t *obj = json_pack("{s:o}", "ack_ids", ids);
    if (delay_ms >= 0)
        json_object_set_new(obj, "delay_ms", json_integer(delay_ms));
    if (error != NULL)
        json_object_set_new(obj, "error", ag_json_string_lossy(error, strnlen(error, 900)));
    struct ag_buf body = AG_BUF_INIT(0);
    int rc = ag_json_dump(obj, &body);
    json_decref(obj);
    if (rc != 0) {
        ag_buf_release(&body);
        return rc;
    }
    char path[192];
    snprintf(path, sizeof(path), "/v1/subscriptions/%s/%s", sub, verb);
    return send_call(bus, call_new(CALL_SETTLE, cb, udata), "POST", path, &body,
                     CONTROL_TIMEOUT_MS);
}

static int
bus_ack(void *be, const char *sub, const char *const *ack_ids, size_t n, ag__events_done_fn cb,
        void *udata)
{
    return settle(be, sub, "ack", ack_ids, n, -1, NULL, cb, udata);
}

static int
bus_nack(void *be, const char *sub, const char *const *ack_ids, size_t n, uint64_t delay_ms,
         const char *error, ag__events_done_fn cb, void *udata)
{
    /* The bus caps a nack delay at one day. */
    int64_t d = delay_ms > 86400000u ? 86400000 : (int64_t)delay_ms;
    return settle(be, sub, "nack", ack_ids, n, d, error, cb, udata);
}

static size_t
bus_cancel(void *be, void *udata)
{
    struct evbus *bus = be;
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    /* Mark first: a callback may start new calls with the same udata,
     * which must survive (as in ag_http_client_cancel). */
    for (struct evbus_call *c = bus->calls; c != NULL; c = c->next)
        c->cancel_mark = c->udata == udata;
    size_t n = 0;
    for (;;) {
        struct evbus_call *c = bus->calls;
        while (c != NULL && !c->cancel_mark)
            c = c->next;
        if (c == NULL)
            break;
        c->cancel_mark = false;
        n += ag_http_client_cancel(bus->client, on_http_done, c);
    }
    return n;
}

static void
bus_free(void *be)
{
    struct evbus *bus = be;
    if (bus == NULL)
        return;
    AG_CHECK_MAGIC(bus, BUS_BACKEND_MAGIC);
    if (bus->calls != NULL)
        AG_BUG("events bus backend freed with calls pending");
    ag_free(bus->url);
    bus->magic = 0;
    ag_free(bus);
}

const struct ag_events_backend_ops ag__events_bus_ops = {
    .name = "bus",
    .publish = bus_publish,
    .ensure = bus_ensure,
    .pull = bus_pull,
    .ack = bus_ack,
    .nack = bus_nack,
    .cancel = bus_cancel,
    .free_be = bus_free,
};

int
ag__events_bus_new(struct ag_http_client *client, const char *url,
                   struct ag_identity_self *identity, void **out_be)
{
    if (client == NULL || url == NULL || strncmp(url, "http://", 7) != 0 || url[7] == '\0')
        return AG_EINVAL;
    struct evbus *bus = ag_calloc(1, sizeof(*bus));
    bus->magic = BUS_BACKEND_MAGIC;
    bus->client = client;
    bus->identity = identity;
    size_t len = strlen(url);
    while (len > 7 && url[len - 1] == '/')
        len--;
    bus->url = ag_strndup(url, len);
    *out_be = bus;
    return 0;
}
