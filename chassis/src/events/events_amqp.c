/* SPDX-License-Identifier: MIT */
/* The RabbitMQ backend of the events runtime (events_int.h) over AMQP 0-9-1
 * with rabbitmq-c: one I/O thread per backend owns the blocking connection
 * and exchanges bounded work and results with the loop through a mutex,
 * an eventfd and a uv_async_t. Topology, confirms, single active consumer,
 * delayed nacks and dead letters: docs/internals/events.md, "RabbitMQ".
 * librabbitmq is dlopen()ed by the first backend made, not linked
 * (agora/rabbitmq.h). */
#include "agora/base.h"
#include "events_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/rabbitmq.h"
#include "agora/time.h"

#define AMQP_BACKEND_MAGIC 0x45564151u /* "EVAQ" */
#define AMQ_LOG            "events"

#define EXCHANGE           "agora.events" /* durable topic exchange, key = event type */
#define DEAD_EXCHANGE      "agora.dead"   /* durable direct exchange, key = subscription */
#define CH_PUBLISH         1              /* publisher confirms */
#define CH_CONTROL         2              /* declarations */
#define CH_FIRST_SUB       3              /* one channel per subscription */
#define MAX_SUBS           64             /* subscriptions per backend */
#define MAX_CALLS          1024           /* calls in flight per backend */
#define MAX_PREFETCH       1000           /* basic.qos of one subscription */
#define PUBLISH_TIMEOUT_MS 15000          /* wait for the confirms of one batch */
#define RPC_TIMEOUT_MS     5000           /* one declaration, qos, consume */
#define CONNECT_TIMEOUT_MS 5000
#define HEARTBEAT_S        30
#define RECONNECT_BASE_MS  100
#define RECONNECT_MAX_MS   10000
#define MAX_NACK_DELAY_MS  86400000u /* as the bus */
#define DEF_MAX_ATTEMPTS   5         /* the bus's default */

/* ---- Work between the loop and the I/O thread ---- */

enum req_kind {
    REQ_PUBLISH = 0, /* publish a batch, wait for the confirms */
    REQ_ENSURE,      /* declare exchanges, queues, bindings */
    REQ_CONSUME,     /* basic.qos + basic.consume on the subscription's channel */
    REQ_ACK,         /* basic.ack each tag */
    REQ_NACK,        /* basic.nack requeue each tag */
};

struct amq_tag {
    uint64_t open_seq; /* the channel opening the tag belongs to */
    uint16_t channel;
    uint64_t tag;
};

/* One unit of work; owned by the thread between submit and its result. */
struct amq_req {
    struct amq_req *next;
    enum req_kind kind;
    struct amq_call *call; /* loop side, NULL for internal work */
    char *sub;             /* subscription name (not publish) */
    /* publish */
    struct ag__events_out *out; /* copies */
    size_t n;
    bool *accepted;
    size_t naccepted;
    /* ensure */
    char **topics;
    size_t ntopics;
    uint32_t max_attempts;
    uint64_t expire_after_ms; /* x-expires of the queues, 0: none */
    /* consume */
    uint16_t prefetch;
    /* ack, nack */
    struct amq_tag *tags;
    size_t ntags;
    /* result */
    int err;
    char detail[200];
};

/* A delivery on its way to a pull, handed out, or held for a delayed nack. */
struct amq_dlv {
    struct amq_dlv *next;
    char *sub;
    struct amq_tag tag;
    char ack_id[64];
    char *id;
    char *topic;
    char *subject;
    char *body;
    size_t body_len;
    int64_t attempt;
    uint64_t due_ms; /* held: when to requeue */
};

/* Thread to loop notices besides finished requests. */
struct amq_note {
    struct amq_note *next;
    char *sub; /* NULL: the whole connection was lost */
    int err;   /* why (AG_ENOENT: the queue is gone) */
    char detail[200];
};

struct amq_queue {
    struct amq_req *head;
    struct amq_req *tail;
};

/* ---- Loop side ---- */

/* The subject of a delivery nacked with a delay is blocked: its later
 * deliveries are kept here (unacked, in delivery order) and not handed out
 * until the failed one (the leader) is delivered again, so a quorum queue's
 * order per queue becomes order per subject without returning the
 * followers (which would count against their x-delivery-limit). */
struct amq_block {
    struct amq_block *next;
    char *subject;
    struct amq_dlv *leader;    /* waiting for its delay; NULL once requeued */
    char *leader_id;           /* requeued: its message id, expected back */
    uint64_t due_ms;           /* leader held: when to requeue it */
    uint64_t expires_ms;       /* leader requeued: stop waiting for it then */
    struct amq_dlv *followers; /* later deliveries of the subject, by tag */
};

#define BACK_EXPIRY_MS 60000

enum call_kind {
    CALL_PUBLISH = 0,
    CALL_ENSURE,
    CALL_PULL,
    CALL_SETTLE,
};

struct amq_call {
    struct amq_call *prev; /* in be->calls */
    struct amq_call *next;
    enum call_kind kind;
    ag__events_done_fn cb;
    void *udata;
    bool cancelled; /* cb already ran with AG_ECLOSED; waiting for the thread */
    bool ready;     /* settle done locally: complete from the async callback */
    int ready_err;
    struct amq_sub *sub;  /* pull */
    size_t max;           /* pull */
    uint64_t deadline_ms; /* pull */
    bool in_thread;       /* a request of this call is with the thread */
};

struct amq_sub {
    char *name;
    bool consuming;        /* basic.consume succeeded on the current channel */
    bool consume_pending;  /* REQ_CONSUME with the thread */
    int consume_err;       /* last REQ_CONSUME failure, answered to the pull */
    struct amq_call *pull; /* the waiting pull, at most one */
    struct amq_dlv *ready; /* buffered deliveries in order */
    struct amq_dlv *ready_tail;
    size_t nready;
    struct amq_dlv *out;  /* handed to the runtime, not settled */
    struct amq_dlv *held; /* nacked with a delay, in order */
    struct amq_dlv *held_tail;
    struct amq_block *blocks; /* subjects waiting for a nacked delivery */
    uint32_t max_attempts;    /* of the queue (ensure), to know what comes back */
};

struct amq_handles {
    uv_async_t async;
    uv_timer_t timer;
    int open;
};

struct evamqp {
    uint32_t magic;
    uv_loop_t *loop;
    struct amq_handles *h; /* freed by their close callbacks */
    struct amq_call *calls;
    size_t ncalls;
    struct amq_sub *subs[MAX_SUBS];
    size_t nsubs;
    /* connection parameters (thread reads them; fixed after new) */
    char *url_copy; /* amqp_parse_url's buffer */
    struct amqp_connection_info info;
    char *safe_url; /* for logs: no password */
    /* shared with the thread, under 'mu' */
    uv_mutex_t mu;
    uv_thread_t thread;
    int efd;                  /* wakes the thread */
    struct amq_queue todo;    /* loop to thread */
    struct amq_queue done;    /* thread to loop */
    struct amq_dlv *dlv_head; /* thread to loop deliveries */
    struct amq_dlv *dlv_tail;
    struct amq_note *notes; /* thread to loop */
    bool stop;
    /* thread only */
    amqp_connection_state_t conn;
    uint64_t open_seq;                        /* channel openings so far */
    uint64_t ch_seq[CH_FIRST_SUB + MAX_SUBS]; /* open_seq of each open channel, 0: closed */
    char *ch_sub[CH_FIRST_SUB + MAX_SUBS];    /* subscription of a consumer channel */
    uint64_t pub_next;                        /* next publish sequence number */
    uint64_t pub_first;                       /* first of the batch being confirmed */
    bool *pub_acked;
    bool *pub_done;
    size_t pub_n;
    unsigned fails;
};

static void loop_wake(struct evamqp *be);

/* ---- Small helpers ---- */

static void
req_free(struct amq_req *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        ag_free((char *)r->out[i].id);
        ag_free((char *)r->out[i].topic);
        ag_free((char *)r->out[i].subject);
        ag_free((char *)r->out[i].event);
    }
    ag_free(r->out);
    ag_free(r->accepted);
    for (size_t i = 0; i < r->ntopics; i++)
        ag_free(r->topics[i]);
    ag_free(r->topics);
    ag_free(r->tags);
    ag_free(r->sub);
    ag_free(r);
}

static void
dlv_free(struct amq_dlv *d)
{
    if (d == NULL)
        return;
    ag_free(d->sub);
    ag_free(d->id);
    ag_free(d->topic);
    ag_free(d->subject);
    ag_free(d->body);
    ag_free(d);
}

static void
dlv_list_free(struct amq_dlv *d)
{
    while (d != NULL) {
        struct amq_dlv *next = d->next;
        dlv_free(d);
        d = next;
    }
}

static void
block_free(struct amq_block *b)
{
    dlv_free(b->leader);
    dlv_list_free(b->followers);
    ag_free(b->subject);
    ag_free(b->leader_id);
    ag_free(b);
}

static void
block_list_free(struct amq_block *b)
{
    while (b != NULL) {
        struct amq_block *next = b->next;
        block_free(b);
        b = next;
    }
}

static void
queue_push(struct amq_queue *q, struct amq_req *r)
{
    r->next = NULL;
    if (q->tail != NULL)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
}

static struct amq_req *
queue_pop(struct amq_queue *q)
{
    struct amq_req *r = q->head;
    if (r != NULL) {
        q->head = r->next;
        if (q->head == NULL)
            q->tail = NULL;
        r->next = NULL;
    }
    return r;
}

/* Copy of an AMQP string as C text (owned). */
static char *
bytes_dup(amqp_bytes_t b)
{
    return ag_strndup(b.bytes != NULL ? b.bytes : "", b.len);
}

/* Translate a bus topic pattern into an AMQP topic binding key: an exact
 * name stays (names hold no '*' or '#'), "prefix.*" becomes "prefix.#",
 * "*" becomes "#". */
static void
binding_key(const char *pattern, char *out, size_t outlen)
{
    size_t len = strlen(pattern);
    if (strcmp(pattern, "*") == 0)
        snprintf(out, outlen, "#");
    else if (len >= 2 && strcmp(pattern + len - 2, ".*") == 0)
        snprintf(out, outlen, "%.*s.#", (int)(len - 2), pattern);
    else
        snprintf(out, outlen, "%s", pattern);
}

/* ---- I/O thread: connection ---- */

static void
reply_text(amqp_rpc_reply_t r, char *out, size_t outlen, int *err)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        *err = 0;
        snprintf(out, outlen, "ok");
        return;
    case AMQP_RESPONSE_NONE:
        *err = AG_EIO;
        snprintf(out, outlen, "no reply from RabbitMQ");
        return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        *err = r.library_error == AMQP_STATUS_TIMEOUT ? AG_ETIMEDOUT : AG_EUNAVAIL;
        snprintf(out, outlen, "RabbitMQ unreachable: %s", amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION: break;
    }
    uint16_t code = 0;
    amqp_bytes_t text = { 0, NULL };
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        code = m->reply_code;
        text = m->reply_text;
    } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        code = m->reply_code;
        text = m->reply_text;
    }
    snprintf(out, outlen, "RabbitMQ refused: %u %.*s", code, (int)AG_MIN(text.len, 150),
             text.bytes != NULL ? (const char *)text.bytes : "");
    switch (code) {
    case 404: *err = AG_ENOENT; break;
    case 406: *err = AG_ECONFIG; break;  /* PRECONDITION_FAILED: other arguments */
    case 403: *err = AG_EUNAVAIL; break; /* ACCESS_REFUSED: a permission to fix */
    default: *err = AG_EUNAVAIL; break;
    }
}

static void
conn_drop(struct evamqp *be, int err, const char *why)
{
    if (be->conn == NULL)
        return;
    amqp_destroy_connection(be->conn);
    be->conn = NULL;
    memset(be->ch_seq, 0, sizeof(be->ch_seq));
    for (size_t i = 0; i < AG_ARRAY_SIZE(be->ch_sub); i++) {
        ag_free(be->ch_sub[i]);
        be->ch_sub[i] = NULL;
    }
    AG_LOGW(AMQ_LOG, "RabbitMQ connection to %s lost: %s", be->safe_url, why);
    struct amq_note *n = ag_calloc(1, sizeof(*n));
    n->err = err;
    snprintf(n->detail, sizeof(n->detail), "RabbitMQ connection lost: %s", why);
    uv_mutex_lock(&be->mu);
    n->next = be->notes;
    be->notes = n;
    uv_mutex_unlock(&be->mu);
    loop_wake(be);
}

/* A server exception on a channel: acknowledge the close; the connection
 * goes when the server closed it. Returns the error to report. */
static int
rpc_failed(struct evamqp *be, uint16_t ch, amqp_rpc_reply_t r, char *detail, size_t dlen)
{
    int err;
    reply_text(r, detail, dlen, &err);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok = { 0 };
        amqp_send_method(be->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        be->ch_seq[ch] = 0;
        if (ch == CH_PUBLISH) {
            /* Reopened at the next publish. */
        }
    } else {
        conn_drop(be, AG_EUNAVAIL, detail);
    }
    return err;
}

static int
channel_open(struct evamqp *be, uint16_t ch, char *detail, size_t dlen)
{
    if (be->ch_seq[ch] != 0)
        return 0;
    amqp_channel_open(be->conn, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(be->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return rpc_failed(be, ch, r, detail, dlen);
    if (ch == CH_PUBLISH) {
        amqp_confirm_select(be->conn, ch);
        r = amqp_get_rpc_reply(be->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            return rpc_failed(be, ch, r, detail, dlen);
        be->pub_next = 1;
    }
    be->ch_seq[ch] = ++be->open_seq;
    return 0;
}

static int
conn_open(struct evamqp *be, char *detail, size_t dlen)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
    int rc = sock == NULL ? AMQP_STATUS_NO_MEMORY
                          : amqp_socket_open_noblock(sock, be->info.host, be->info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        snprintf(detail, dlen, "cannot connect to %s: %s", be->safe_url, amqp_error_string2(rc));
        amqp_destroy_connection(c);
        return AG_EUNAVAIL;
    }
    struct timeval rpc = { RPC_TIMEOUT_MS / 1000, 0 };
    amqp_set_rpc_timeout(c, &rpc);
    amqp_rpc_reply_t r = amqp_login(c, be->info.vhost, 0, 131072, HEARTBEAT_S,
                                    AMQP_SASL_METHOD_PLAIN, be->info.user, be->info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        int err;
        reply_text(r, detail, dlen, &err);
        amqp_destroy_connection(c);
        return AG_EUNAVAIL;
    }
    be->conn = c;
    rc = channel_open(be, CH_CONTROL, detail, dlen);
    if (rc == 0)
        rc = channel_open(be, CH_PUBLISH, detail, dlen);
    if (rc == 0) {
        /* The exchanges exist before anything is published. */
        amqp_exchange_declare(be->conn, CH_CONTROL, amqp_cstring_bytes(EXCHANGE),
                              amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(be->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            rc = rpc_failed(be, CH_CONTROL, r, detail, dlen);
    }
    if (rc == 0) {
        amqp_exchange_declare(be->conn, CH_CONTROL, amqp_cstring_bytes(DEAD_EXCHANGE),
                              amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(be->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            rc = rpc_failed(be, CH_CONTROL, r, detail, dlen);
    }
    if (rc != 0 && be->conn != NULL) {
        amqp_destroy_connection(be->conn);
        be->conn = NULL;
        memset(be->ch_seq, 0, sizeof(be->ch_seq));
    }
    return rc != 0 ? AG_EUNAVAIL : 0;
}

/* ---- I/O thread: incoming frames ---- */

static const char *
table_str(const amqp_table_t *t, const char *key, char *buf, size_t buflen)
{
    for (int i = 0; t != NULL && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == strlen(key) && memcmp(e->key.bytes, key, e->key.len) == 0 &&
            (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)) {
            snprintf(buf, buflen, "%.*s", (int)e->value.value.bytes.len,
                     (const char *)e->value.value.bytes.bytes);
            return buf;
        }
    }
    return "";
}

static int64_t
table_int(const amqp_table_t *t, const char *key)
{
    for (int i = 0; t != NULL && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
            continue;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I8: return e->value.value.i8;
        case AMQP_FIELD_KIND_U8: return e->value.value.u8;
        case AMQP_FIELD_KIND_I16: return e->value.value.i16;
        case AMQP_FIELD_KIND_U16: return e->value.value.u16;
        case AMQP_FIELD_KIND_I32: return e->value.value.i32;
        case AMQP_FIELD_KIND_U32: return e->value.value.u32;
        case AMQP_FIELD_KIND_I64: return e->value.value.i64;
        case AMQP_FIELD_KIND_U64: return (int64_t)e->value.value.u64;
        default: return 0;
        }
    }
    return 0;
}

static void
on_deliver(struct evamqp *be, uint16_t ch, const amqp_basic_deliver_t *d)
{
    uint64_t tag = d->delivery_tag;
    char *topic = bytes_dup(d->routing_key);
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(be->conn, ch, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        ag_free(topic);
        char detail[200];
        int err;
        reply_text(r, detail, sizeof(detail), &err);
        conn_drop(be, AG_EUNAVAIL, detail);
        return;
    }
    if (ch >= AG_ARRAY_SIZE(be->ch_sub) || be->ch_sub[ch] == NULL) {
        ag_free(topic);
        amqp_destroy_message(&msg);
        return;
    }
    struct amq_dlv *dl = ag_calloc(1, sizeof(*dl));
    dl->sub = ag_strdup(be->ch_sub[ch]);
    dl->tag = (struct amq_tag){ be->ch_seq[ch], ch, tag };
    snprintf(dl->ack_id, sizeof(dl->ack_id), "%llu.%u.%llu", (unsigned long long)dl->tag.open_seq,
             ch, (unsigned long long)tag);
    dl->topic = topic;
    const amqp_basic_properties_t *p = &msg.properties;
    dl->id = (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? bytes_dup(p->message_id) : ag_strdup("");
    char sbuf[256];
    const amqp_table_t *hdr = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
    dl->subject = ag_strdup(table_str(hdr, "subject", sbuf, sizeof(sbuf)));
    /* Quorum queues count returned deliveries; absent on the first. */
    dl->attempt = table_int(hdr, "x-delivery-count") + 1;
    dl->body = ag_strndup(msg.body.bytes != NULL ? msg.body.bytes : "", msg.body.len);
    dl->body_len = msg.body.len;
    amqp_destroy_message(&msg);
    uv_mutex_lock(&be->mu);
    if (be->dlv_tail != NULL)
        be->dlv_tail->next = dl;
    else
        be->dlv_head = dl;
    be->dlv_tail = dl;
    uv_mutex_unlock(&be->mu);
    loop_wake(be);
}

static void
on_confirm(struct evamqp *be, uint64_t tag, bool multiple, bool ack)
{
    for (size_t i = 0; i < be->pub_n; i++) {
        uint64_t seq = be->pub_first + i;
        if (seq == tag || (multiple && seq < tag)) {
            if (!be->pub_done[i]) {
                be->pub_done[i] = true;
                be->pub_acked[i] = ack;
            }
        }
    }
}

/* Handle one frame read outside an RPC. */
static void
on_frame(struct evamqp *be, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return;
    uint16_t ch = f->channel;
    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: on_deliver(be, ch, f->payload.method.decoded); break;
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f->payload.method.decoded;
        on_confirm(be, a->delivery_tag, a->multiple, true);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = f->payload.method.decoded;
        on_confirm(be, a->delivery_tag, a->multiple, false);
        break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f->payload.method.decoded;
        char detail[200];
        snprintf(detail, sizeof(detail), "RabbitMQ closed channel %u: %u %.*s", ch, m->reply_code,
                 (int)AG_MIN(m->reply_text.len, 150), (const char *)m->reply_text.bytes);
        amqp_channel_close_ok_t ok = { 0 };
        amqp_send_method(be->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        if (ch < AG_ARRAY_SIZE(be->ch_seq))
            be->ch_seq[ch] = 0;
        AG_LOGW(AMQ_LOG, "%s", detail);
        if (ch < AG_ARRAY_SIZE(be->ch_sub) && be->ch_sub[ch] != NULL) {
            struct amq_note *n = ag_calloc(1, sizeof(*n));
            n->sub = be->ch_sub[ch];
            be->ch_sub[ch] = NULL;
            n->err = m->reply_code == 404 ? AG_ENOENT : AG_EUNAVAIL;
            snprintf(n->detail, sizeof(n->detail), "%s", detail);
            uv_mutex_lock(&be->mu);
            n->next = be->notes;
            be->notes = n;
            uv_mutex_unlock(&be->mu);
            loop_wake(be);
        }
        break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *m = f->payload.method.decoded;
        char detail[200];
        snprintf(detail, sizeof(detail), "RabbitMQ closed the connection: %u %.*s", m->reply_code,
                 (int)AG_MIN(m->reply_text.len, 150), (const char *)m->reply_text.bytes);
        amqp_connection_close_ok_t ok = { 0 };
        amqp_send_method(be->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        conn_drop(be, AG_EUNAVAIL, detail);
        break;
    }
    default: break;
    }
}

/* Wait up to 'timeout_ms' (0: not at all) for a frame, then handle it and
 * whatever else is already buffered. Returns 0, or an error when the
 * connection is gone. */
static int
read_frames(struct evamqp *be, uint64_t timeout_ms)
{
    uint64_t wait = timeout_ms;
    for (;;) {
        if (be->conn == NULL)
            return AG_EUNAVAIL;
        struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
        amqp_frame_t f;
        amqp_maybe_release_buffers(be->conn);
        int rc = amqp_simple_wait_frame_noblock(be->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return 0;
        if (rc != AMQP_STATUS_OK) {
            conn_drop(be, AG_EUNAVAIL, amqp_error_string2(rc));
            return AG_EUNAVAIL;
        }
        on_frame(be, &f);
        wait = 0;
    }
}

/* ---- I/O thread: requests ---- */

static void
do_publish(struct evamqp *be, struct amq_req *r)
{
    r->accepted = ag_calloc(r->n, sizeof(bool));
    if (channel_open(be, CH_PUBLISH, r->detail, sizeof(r->detail)) != 0) {
        r->err = AG_EUNAVAIL;
        return;
    }
    be->pub_first = be->pub_next;
    be->pub_n = r->n;
    be->pub_acked = r->accepted;
    be->pub_done = ag_calloc(r->n, sizeof(bool));
    for (size_t i = 0; i < r->n; i++) {
        const struct ag__events_out *m = &r->out[i];
        amqp_table_entry_t hdr = { .key = amqp_cstring_bytes("subject"),
                                   .value = { .kind = AMQP_FIELD_KIND_UTF8,
                                              .value.bytes = amqp_cstring_bytes(m->subject) } };
        amqp_basic_properties_t p = {
            ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                      AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG,
            .content_type = amqp_cstring_bytes("application/cloudevents+json"),
            .delivery_mode = AMQP_DELIVERY_PERSISTENT,
            .message_id = amqp_cstring_bytes(m->id),
            .headers = { 1, &hdr },
        };
        amqp_bytes_t body = { m->event_len, (void *)m->event };
        int rc = amqp_basic_publish(be->conn, CH_PUBLISH, amqp_cstring_bytes(EXCHANGE),
                                    amqp_cstring_bytes(m->topic), 0, 0, &p, body);
        if (rc != AMQP_STATUS_OK) {
            snprintf(r->detail, sizeof(r->detail), "publish failed: %s", amqp_error_string2(rc));
            conn_drop(be, AG_EUNAVAIL, r->detail);
            break;
        }
        be->pub_next++;
    }
    /* Wait for every confirm (or the deadline, or a lost connection). */
    uint64_t end = ag_time_mono_ms() + PUBLISH_TIMEOUT_MS;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < r->n; i++)
            done += be->pub_done[i];
        if (done == r->n || be->conn == NULL)
            break;
        uint64_t now = ag_time_mono_ms();
        if (now >= end) {
            snprintf(r->detail, sizeof(r->detail),
                     "RabbitMQ did not confirm %zu of %zu messages "
                     "within %d ms",
                     r->n - done, r->n, PUBLISH_TIMEOUT_MS);
            break;
        }
        read_frames(be, end - now);
    }
    for (size_t i = 0; i < r->n; i++)
        r->naccepted += r->accepted[i];
    if (r->naccepted < r->n && r->detail[0] == '\0')
        snprintf(r->detail, sizeof(r->detail), "RabbitMQ refused %zu of %zu messages (basic.nack)",
                 r->n - r->naccepted, r->n);
    /* A connection lost mid-batch: report the messages confirmed before the
     * loss; the runtime retries the rest. */
    r->err = r->naccepted == 0 && be->conn == NULL ? AG_EUNAVAIL : 0;
    if (r->err == 0 && r->detail[0] == '\0')
        snprintf(r->detail, sizeof(r->detail), "confirmed");
    ag_free(be->pub_done);
    be->pub_done = NULL;
    be->pub_acked = NULL;
    be->pub_n = 0;
}

static int
ctl_rpc(struct evamqp *be, char *detail, size_t dlen)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(be->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    return rpc_failed(be, CH_CONTROL, r, detail, dlen);
}

static void
do_ensure(struct evamqp *be, struct amq_req *r)
{
    if (channel_open(be, CH_CONTROL, r->detail, sizeof(r->detail)) != 0) {
        r->err = AG_EUNAVAIL;
        return;
    }
    char dead[160];
    snprintf(dead, sizeof(dead), "%s.dead", r->sub);
    /* The dead-letter queue: classic and durable, so list and show can take
     * messages with basic.get and put them back in order. */
    amqp_table_entry_t exp[] = {
        { amqp_cstring_bytes("x-expires"),
          { .kind = AMQP_FIELD_KIND_I64, .value.i64 = (int64_t)r->expire_after_ms } },
    };
    amqp_table_t dead_args = { r->expire_after_ms != 0 ? 1 : 0, exp };
    amqp_queue_declare(be->conn, CH_CONTROL, amqp_cstring_bytes(dead), 0, 1, 0, 0, dead_args);
    int rc = ctl_rpc(be, r->detail, sizeof(r->detail));
    if (rc == 0) {
        amqp_queue_bind(be->conn, CH_CONTROL, amqp_cstring_bytes(dead),
                        amqp_cstring_bytes(DEAD_EXCHANGE), amqp_cstring_bytes(r->sub),
                        amqp_empty_table);
        rc = ctl_rpc(be, r->detail, sizeof(r->detail));
    }
    if (rc == 0) {
        uint32_t max = r->max_attempts != 0 ? r->max_attempts : DEF_MAX_ATTEMPTS;
        amqp_table_entry_t a[] = {
            { amqp_cstring_bytes("x-queue-type"),
              { .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum") } },
            { amqp_cstring_bytes("x-single-active-consumer"),
              { .kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1 } },
            { amqp_cstring_bytes("x-dead-letter-exchange"),
              { .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(DEAD_EXCHANGE) } },
            { amqp_cstring_bytes("x-dead-letter-routing-key"),
              { .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(r->sub) } },
            /* A message returned more than this many times is dead-lettered:
             * max_attempts deliveries in all. */
            { amqp_cstring_bytes("x-delivery-limit"),
              { .kind = AMQP_FIELD_KIND_I64, .value.i64 = (int64_t)max - 1 } },
            /* Last, so that leaving it out is a shorter table. */
            { amqp_cstring_bytes("x-expires"),
              { .kind = AMQP_FIELD_KIND_I64, .value.i64 = (int64_t)r->expire_after_ms } },
        };
        amqp_table_t args = { (int)AG_ARRAY_SIZE(a) - (r->expire_after_ms != 0 ? 0 : 1), a };
        amqp_queue_declare(be->conn, CH_CONTROL, amqp_cstring_bytes(r->sub), 0, 1, 0, 0, args);
        rc = ctl_rpc(be, r->detail, sizeof(r->detail));
        if (rc == AG_ECONFIG)
            snprintf(r->detail, sizeof(r->detail),
                     "queue '%s' exists on RabbitMQ with other arguments (queue type, single "
                     "active consumer, dead-letter exchange or x-delivery-limit = %u): delete it "
                     "or declare it as this service does",
                     r->sub, max - 1);
    }
    for (size_t i = 0; rc == 0 && i < r->ntopics; i++) {
        char key[160];
        binding_key(r->topics[i], key, sizeof(key));
        amqp_queue_bind(be->conn, CH_CONTROL, amqp_cstring_bytes(r->sub),
                        amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(key), amqp_empty_table);
        rc = ctl_rpc(be, r->detail, sizeof(r->detail));
    }
    r->err = rc;
    if (rc == 0)
        snprintf(r->detail, sizeof(r->detail), "declared");
}

static uint16_t
sub_channel(struct evamqp *be, const char *sub)
{
    uint16_t freech = 0;
    for (uint16_t ch = CH_FIRST_SUB; ch < AG_ARRAY_SIZE(be->ch_sub); ch++) {
        if (be->ch_sub[ch] != NULL && strcmp(be->ch_sub[ch], sub) == 0)
            return ch;
        if (be->ch_sub[ch] == NULL && be->ch_seq[ch] == 0 && freech == 0)
            freech = ch;
    }
    return freech;
}

static void
do_consume(struct evamqp *be, struct amq_req *r)
{
    uint16_t ch = sub_channel(be, r->sub);
    if (ch == 0) {
        r->err = AG_EUNAVAIL;
        snprintf(r->detail, sizeof(r->detail), "no free channel for subscription '%s'", r->sub);
        return;
    }
    if (be->ch_sub[ch] != NULL) {
        r->err = 0; /* consuming already */
        return;
    }
    r->err = channel_open(be, ch, r->detail, sizeof(r->detail));
    if (r->err != 0)
        return;
    amqp_basic_qos(be->conn, ch, 0, r->prefetch, 0);
    amqp_rpc_reply_t rep = amqp_get_rpc_reply(be->conn);
    if (rep.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_basic_consume(be->conn, ch, amqp_cstring_bytes(r->sub), amqp_cstring_bytes(r->sub), 0,
                           0, 0, amqp_empty_table);
        rep = amqp_get_rpc_reply(be->conn);
    }
    if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
        r->err = rpc_failed(be, ch, rep, r->detail, sizeof(r->detail));
        return;
    }
    be->ch_sub[ch] = ag_strdup(r->sub);
    snprintf(r->detail, sizeof(r->detail), "consuming");
}

static void
do_settle(struct evamqp *be, struct amq_req *r)
{
    size_t stale = 0;
    for (size_t i = 0; i < r->ntags && be->conn != NULL; i++) {
        const struct amq_tag *t = &r->tags[i];
        if (t->channel >= AG_ARRAY_SIZE(be->ch_seq) || be->ch_seq[t->channel] != t->open_seq) {
            stale++;
            continue;
        }
        int rc = r->kind == REQ_ACK ? amqp_basic_ack(be->conn, t->channel, t->tag, 0)
                                    : amqp_basic_nack(be->conn, t->channel, t->tag, 0, 1);
        if (rc != AMQP_STATUS_OK) {
            snprintf(r->detail, sizeof(r->detail), "settle failed: %s", amqp_error_string2(rc));
            conn_drop(be, AG_EUNAVAIL, r->detail);
        }
    }
    if (be->conn == NULL || stale == r->ntags) {
        r->err = AG_EUNAVAIL;
        if (r->detail[0] == '\0')
            snprintf(r->detail, sizeof(r->detail),
                     "deliveries of a lost RabbitMQ channel (they are redelivered)");
    } else {
        snprintf(r->detail, sizeof(r->detail), "settled");
    }
}

static void
do_request(struct evamqp *be, struct amq_req *r)
{
    if (be->conn == NULL) {
        r->err = AG_EUNAVAIL;
        snprintf(r->detail, sizeof(r->detail), "RabbitMQ at %s unreachable", be->safe_url);
        return;
    }
    switch (r->kind) {
    case REQ_PUBLISH: do_publish(be, r); break;
    case REQ_ENSURE: do_ensure(be, r); break;
    case REQ_CONSUME: do_consume(be, r); break;
    case REQ_ACK:
    case REQ_NACK: do_settle(be, r); break;
    }
}

static void
io_thread(void *arg)
{
    struct evamqp *be = arg;
    uint64_t next_connect = 0;
    for (;;) {
        uv_mutex_lock(&be->mu);
        bool stop = be->stop;
        struct amq_req *r = queue_pop(&be->todo);
        uv_mutex_unlock(&be->mu);
        if (stop && r == NULL)
            break;
        uint64_t now = ag_time_mono_ms();
        if (be->conn == NULL && !stop && now >= next_connect) {
            char detail[200];
            if (conn_open(be, detail, sizeof(detail)) == 0) {
                if (be->fails > 0)
                    AG_LOGI(AMQ_LOG, "RabbitMQ connection to %s back", be->safe_url);
                be->fails = 0;
            } else {
                be->fails++;
                uint64_t cap = RECONNECT_BASE_MS << AG_MIN(be->fails - 1, 7u);
                next_connect = now + AG_MIN(cap, (uint64_t)RECONNECT_MAX_MS);
                if (be->fails == 1 || be->fails % 10 == 0)
                    AG_LOGW(AMQ_LOG, "%s (attempt %u; retrying)", detail, be->fails);
            }
        }
        if (r != NULL) {
            do_request(be, r);
            uv_mutex_lock(&be->mu);
            queue_push(&be->done, r);
            uv_mutex_unlock(&be->mu);
            loop_wake(be);
            continue;
        }
        if (be->conn != NULL)
            read_frames(be, 0);
        struct pollfd pfd[2] = { { be->efd, POLLIN, 0 }, { -1, POLLIN, 0 } };
        int timeout = 1000;
        if (be->conn != NULL)
            pfd[1].fd = amqp_get_sockfd(be->conn);
        else
            timeout = (int)(next_connect > now ? AG_MIN(next_connect - now, 1000u) : 0);
        if (be->conn != NULL && (amqp_frames_enqueued(be->conn) || amqp_data_in_buffer(be->conn)))
            timeout = 0;
        int prc = poll(pfd, 2, timeout);
        if (prc > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t got = read(be->efd, &v, sizeof(v));
            AG_UNUSED(got);
        }
        if (be->conn != NULL && prc > 0 && pfd[1].revents != 0)
            read_frames(be, 0);
    }
    if (be->conn != NULL) {
        amqp_connection_close(be->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(be->conn);
        be->conn = NULL;
    }
    for (size_t i = 0; i < AG_ARRAY_SIZE(be->ch_sub); i++) {
        ag_free(be->ch_sub[i]);
        be->ch_sub[i] = NULL;
    }
}

static void
thread_wake(struct evamqp *be)
{
    uint64_t one = 1;
    ssize_t w = write(be->efd, &one, sizeof(one));
    AG_UNUSED(w);
}

static void
loop_wake(struct evamqp *be)
{
    uv_async_send(&be->h->async);
}

/* ---- Loop side ---- */

static struct amq_call *
call_new(struct evamqp *be, enum call_kind kind, ag__events_done_fn cb, void *udata)
{
    struct amq_call *c = ag_calloc(1, sizeof(*c));
    c->kind = kind;
    c->cb = cb;
    c->udata = udata;
    c->next = be->calls;
    if (be->calls != NULL)
        be->calls->prev = c;
    be->calls = c;
    be->ncalls++;
    return c;
}

static void
call_unlink(struct evamqp *be, struct amq_call *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        be->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    be->ncalls--;
    ag_free(c);
}

static void
submit(struct evamqp *be, struct amq_req *r)
{
    if (r->call != NULL)
        r->call->in_thread = true;
    uv_mutex_lock(&be->mu);
    queue_push(&be->todo, r);
    uv_mutex_unlock(&be->mu);
    thread_wake(be);
}

static struct amq_sub *
sub_get(struct evamqp *be, const char *name, bool create)
{
    for (size_t i = 0; i < be->nsubs; i++) {
        if (strcmp(be->subs[i]->name, name) == 0)
            return be->subs[i];
    }
    if (!create || be->nsubs == MAX_SUBS)
        return NULL;
    struct amq_sub *s = ag_calloc(1, sizeof(*s));
    s->name = ag_strdup(name);
    s->max_attempts = DEF_MAX_ATTEMPTS;
    be->subs[be->nsubs++] = s;
    return s;
}

static struct amq_block *
block_find(const struct amq_sub *s, const char *subject)
{
    if (subject[0] == '\0')
        return NULL;
    for (struct amq_block *b = s->blocks; b != NULL; b = b->next) {
        if (strcmp(b->subject, subject) == 0)
            return b;
    }
    return NULL;
}

/* Insert 'd' into the followers of 'b' by delivery tag. */
static void
block_follow(struct amq_block *b, struct amq_dlv *d)
{
    struct amq_dlv **pp = &b->followers;
    while (*pp != NULL && (*pp)->tag.tag < d->tag.tag)
        pp = &(*pp)->next;
    d->next = *pp;
    *pp = d;
}

static void
ready_push(struct amq_sub *s, struct amq_dlv *d)
{
    d->next = NULL;
    if (s->ready_tail != NULL)
        s->ready_tail->next = d;
    else
        s->ready = d;
    s->ready_tail = d;
    s->nready++;
}

/* The subject moves on: its followers become ready, in order. */
static void
block_end(struct amq_sub *s, struct amq_block *b)
{
    for (struct amq_block **pp = &s->blocks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    while (b->followers != NULL) {
        struct amq_dlv *d = b->followers;
        b->followers = d->next;
        ready_push(s, d);
    }
    block_free(b);
}

static void
held_push(struct amq_sub *s, struct amq_dlv *d)
{
    d->next = NULL;
    if (s->held_tail != NULL)
        s->held_tail->next = d;
    else
        s->held = d;
    s->held_tail = d;
}

static void arm_timer(struct evamqp *be);

/* Answer the waiting pull of 's' with what is buffered (maybe nothing), or
 * with 'err'. */
static void
pull_answer(struct evamqp *be, struct amq_sub *s, int err, const char *detail)
{
    struct amq_call *c = s->pull;
    if (c == NULL)
        return;
    s->pull = NULL;
    size_t n = err == 0 ? AG_MIN(c->max, s->nready) : 0;
    struct ag__events_msg *msgs = ag_calloc(n + 1, sizeof(*msgs));
    json_t **events = ag_calloc(n + 1, sizeof(*events));
    for (size_t i = 0; i < n; i++) {
        struct amq_dlv *d = s->ready;
        s->ready = d->next;
        if (s->ready == NULL)
            s->ready_tail = NULL;
        s->nready--;
        d->next = s->out;
        s->out = d;
        char perr[64];
        events[i] = ag_json_parse(d->body, d->body_len, perr, sizeof(perr));
        msgs[i] = (struct ag__events_msg){ .ack_id = d->ack_id,
                                           .id = d->id,
                                           .topic = d->topic,
                                           .subject = d->subject,
                                           .seq = (int64_t)d->tag.tag,
                                           .attempt = d->attempt,
                                           .event = events[i] };
    }
    struct ag__events_result res = { .err = err,
                                     .status = err == 0 ? 200 : 0,
                                     .detail = detail != NULL ? detail : "ok",
                                     .msgs = msgs,
                                     .nmsgs = n };
    ag__events_done_fn cb = c->cb;
    void *udata = c->udata;
    call_unlink(be, c);
    cb(&res, udata);
    for (size_t i = 0; i < n; i++)
        json_decref(events[i]);
    ag_free(events);
    ag_free(msgs);
}

/* The subscription's channel (or the connection) is gone: everything
 * buffered, handed out or held will be redelivered by RabbitMQ. */
static void
sub_reset(struct evamqp *be, struct amq_sub *s, int err, const char *detail)
{
    s->consuming = false;
    dlv_list_free(s->ready);
    dlv_list_free(s->out);
    dlv_list_free(s->held);
    block_list_free(s->blocks);
    s->blocks = NULL;
    s->ready = s->ready_tail = s->out = s->held = s->held_tail = NULL;
    s->nready = 0;
    pull_answer(be, s, err, detail);
}

static void
on_thread_done(struct evamqp *be, struct amq_req *r)
{
    struct amq_call *c = r->call;
    if (r->kind == REQ_CONSUME) {
        struct amq_sub *s = sub_get(be, r->sub, false);
        if (s != NULL) {
            s->consume_pending = false;
            s->consuming = r->err == 0;
            if (r->err != 0)
                pull_answer(be, s, r->err, r->detail);
            else if (s->nready > 0)
                pull_answer(be, s, 0, NULL);
        }
        req_free(r);
        return;
    }
    if (c != NULL && !c->cancelled) {
        struct ag__events_result res = { .err = r->err,
                                         .status = r->err == 0 ? 200 : 0,
                                         .detail = r->detail,
                                         .accepted = r->accepted,
                                         .naccepted = r->naccepted };
        ag__events_done_fn cb = c->cb;
        void *udata = c->udata;
        call_unlink(be, c);
        cb(&res, udata);
    } else if (c != NULL) {
        call_unlink(be, c);
    }
    req_free(r);
}

static void
on_delivery(struct evamqp *be, struct amq_dlv *d)
{
    struct amq_sub *s = sub_get(be, d->sub, false);
    if (s == NULL || !s->consuming) {
        dlv_free(d);
        return;
    }
    struct amq_block *b = block_find(s, d->subject);
    if (b == NULL) {
        ready_push(s, d);
        return;
    }
    if (b->leader == NULL && strcmp(b->leader_id, d->id) == 0) {
        /* The leader is back: it goes first, then what waited for it. */
        ready_push(s, d);
        block_end(s, b);
        return;
    }
    block_follow(b, d);
}

static void
on_async(uv_async_t *h)
{
    struct evamqp *be = h->data;
    if (be == NULL)
        return;
    uv_mutex_lock(&be->mu);
    struct amq_req *done = be->done.head;
    be->done.head = be->done.tail = NULL;
    struct amq_dlv *dl = be->dlv_head;
    be->dlv_head = be->dlv_tail = NULL;
    struct amq_note *notes = be->notes;
    be->notes = NULL;
    uv_mutex_unlock(&be->mu);
    /* Notes first: deliveries of a lost channel that arrived before it are
     * dropped by sub_reset, and only later ones are kept. */
    while (notes != NULL) {
        struct amq_note *n = notes;
        notes = n->next;
        for (size_t i = 0; i < be->nsubs; i++) {
            if (n->sub == NULL || strcmp(n->sub, be->subs[i]->name) == 0)
                sub_reset(be, be->subs[i], n->err, n->detail);
        }
        ag_free(n->sub);
        ag_free(n);
    }
    /* Then finished requests: a basic.consume-ok comes before the first
     * delivery of its channel, and such a delivery may be in this batch. */
    while (done != NULL) {
        struct amq_req *next = done->next;
        on_thread_done(be, done);
        done = next;
    }
    while (dl != NULL) {
        struct amq_dlv *next = dl->next;
        on_delivery(be, dl);
        dl = next;
    }
    /* Settles done locally complete here (never inside the call). */
    for (struct amq_call *c = be->calls; c != NULL;) {
        struct amq_call *next = c->next;
        if (c->ready) {
            struct ag__events_result res = { .err = c->ready_err, .status = 200, .detail = "ok" };
            ag__events_done_fn cb = c->cb;
            void *udata = c->udata;
            call_unlink(be, c);
            cb(&res, udata);
            next = be->calls; /* the callback may have changed the list */
        }
        c = next;
    }
    for (size_t i = 0; i < be->nsubs; i++) {
        if (be->subs[i]->pull != NULL && be->subs[i]->nready > 0 && be->subs[i]->consuming)
            pull_answer(be, be->subs[i], 0, NULL);
    }
    arm_timer(be);
}

static void
send_nack(struct evamqp *be, struct amq_sub *s, struct amq_tag *tags, size_t n)
{
    struct amq_req *r = ag_calloc(1, sizeof(*r));
    r->kind = REQ_NACK;
    r->sub = ag_strdup(s->name);
    r->tags = tags;
    r->ntags = n;
    submit(be, r);
}

/* Requeue the held deliveries that are due; give up on leaders that did not
 * come back in time (purged, or dead-lettered by another consumer). */
static void
release_held(struct evamqp *be, struct amq_sub *s, uint64_t now)
{
    struct amq_tag *tags = NULL;
    size_t n = 0;
    struct amq_dlv **pp = &s->held;
    struct amq_dlv *prev = NULL;
    while (*pp != NULL) {
        struct amq_dlv *d = *pp;
        if (d->due_ms > now) {
            prev = d;
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        if (s->held_tail == d)
            s->held_tail = prev;
        tags = ag_realloc(tags, (n + 1) * sizeof(*tags));
        tags[n++] = d->tag;
        dlv_free(d);
    }
    if (n > 0)
        send_nack(be, s, tags, n);
    for (struct amq_block *b = s->blocks, *next; b != NULL; b = next) {
        next = b->next;
        if (b->leader != NULL && b->due_ms <= now) {
            struct amq_dlv *l = b->leader;
            b->leader = NULL;
            struct amq_tag *t = ag_calloc(1, sizeof(*t));
            *t = l->tag;
            send_nack(be, s, t, 1);
            /* RabbitMQ dead-letters it when its count passes the limit:
             * then it will not come back and the subject moves on now. */
            if (l->attempt >= (int64_t)s->max_attempts || l->id[0] == '\0') {
                dlv_free(l);
                block_end(s, b);
                continue;
            }
            b->leader_id = ag_strdup(l->id);
            b->expires_ms = now + BACK_EXPIRY_MS;
            dlv_free(l);
        } else if (b->leader == NULL && b->expires_ms <= now) {
            AG_LOGW(AMQ_LOG,
                    "subscription '%s': message '%s' did not come back within %d s; "
                    "delivering the later ones of its subject",
                    s->name, b->leader_id, BACK_EXPIRY_MS / 1000);
            block_end(s, b);
        }
    }
}

static void
on_timer(uv_timer_t *t)
{
    struct evamqp *be = t->data;
    if (be == NULL)
        return;
    uint64_t now = ag_time_mono_ms();
    for (size_t i = 0; i < be->nsubs; i++) {
        struct amq_sub *s = be->subs[i];
        release_held(be, s, now);
        if (s->pull != NULL && (s->pull->deadline_ms <= now || (s->nready > 0 && s->consuming)))
            pull_answer(be, s, 0, NULL);
    }
    arm_timer(be);
}

static void
arm_timer(struct evamqp *be)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < be->nsubs; i++) {
        struct amq_sub *s = be->subs[i];
        if (s->pull != NULL)
            next = AG_MIN(next, s->pull->deadline_ms);
        for (struct amq_dlv *d = s->held; d != NULL; d = d->next)
            next = AG_MIN(next, d->due_ms);
        for (struct amq_block *b = s->blocks; b != NULL; b = b->next)
            next = AG_MIN(next, b->leader != NULL ? b->due_ms : b->expires_ms);
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&be->h->timer);
        return;
    }
    uint64_t now = ag_time_mono_ms();
    uv_timer_start(&be->h->timer, on_timer, next > now ? next - now : 0, 0);
}

/* ---- Operations ---- */

static int
amq_publish(void *bep, const struct ag__events_out *msgs, size_t n, ag__events_done_fn cb,
            void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    if (n == 0)
        return AG_EINVAL;
    if (be->ncalls >= MAX_CALLS)
        return AG_EUNAVAIL;
    struct amq_req *r = ag_calloc(1, sizeof(*r));
    r->kind = REQ_PUBLISH;
    r->out = ag_calloc(n, sizeof(*r->out));
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        r->out[i].id = ag_strdup(msgs[i].id);
        r->out[i].topic = ag_strdup(msgs[i].topic);
        r->out[i].subject = ag_strdup(msgs[i].subject);
        r->out[i].event = ag_strndup(msgs[i].event, msgs[i].event_len);
        r->out[i].event_len = msgs[i].event_len;
    }
    r->call = call_new(be, CALL_PUBLISH, cb, udata);
    submit(be, r);
    return 0;
}

static int
amq_ensure(void *bep, const char *sub, const char *const *topics, size_t ntopics,
           const struct ag_events_sub_options *opts, ag__events_done_fn cb, void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    struct amq_sub *s = sub_get(be, sub, true);
    if (be->ncalls >= MAX_CALLS || s == NULL)
        return AG_EUNAVAIL;
    s->max_attempts =
        opts != NULL && opts->max_attempts != 0 ? opts->max_attempts : DEF_MAX_ATTEMPTS;
    struct amq_req *r = ag_calloc(1, sizeof(*r));
    r->kind = REQ_ENSURE;
    r->sub = ag_strdup(sub);
    r->topics = ag_calloc(ntopics + 1, sizeof(*r->topics));
    r->ntopics = ntopics;
    for (size_t i = 0; i < ntopics; i++)
        r->topics[i] = ag_strdup(topics[i]);
    r->max_attempts = opts != NULL ? opts->max_attempts : 0;
    r->expire_after_ms = opts != NULL ? opts->expire_after_ms : 0;
    r->call = call_new(be, CALL_ENSURE, cb, udata);
    submit(be, r);
    return 0;
}

static int
amq_pull(void *bep, const char *sub, size_t max, uint64_t wait_ms, ag__events_done_fn cb,
         void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    struct amq_sub *s = sub_get(be, sub, true);
    if (s == NULL || s->pull != NULL || max == 0 || be->ncalls >= MAX_CALLS)
        return AG_EUNAVAIL;
    struct amq_call *c = call_new(be, CALL_PULL, cb, udata);
    c->sub = s;
    c->max = max;
    c->deadline_ms = ag_time_mono_ms() + wait_ms;
    s->pull = c;
    if (!s->consuming && !s->consume_pending) {
        struct amq_req *r = ag_calloc(1, sizeof(*r));
        r->kind = REQ_CONSUME;
        r->sub = ag_strdup(sub);
        r->prefetch = (uint16_t)AG_MIN(max, (size_t)MAX_PREFETCH);
        s->consume_pending = true;
        submit(be, r);
    } else if (s->nready > 0) {
        uv_async_send(&be->h->async);
    }
    arm_timer(be);
    return 0;
}

/* Take the deliveries named by 'ack_ids' out of the handed-out list of 's'
 * into a fresh list (in delivery order); unknown ids (a lost channel) are
 * skipped. */
static struct amq_dlv *
take_out(struct amq_sub *s, const char *const *ack_ids, size_t n)
{
    struct amq_dlv *taken = NULL;
    for (size_t i = 0; i < n; i++) {
        for (struct amq_dlv **pp = &s->out; *pp != NULL; pp = &(*pp)->next) {
            if (strcmp((*pp)->ack_id, ack_ids[i]) == 0) {
                struct amq_dlv *d = *pp;
                *pp = d->next;
                d->next = NULL;
                /* Insert by tag so the list is in delivery order. */
                struct amq_dlv **ins = &taken;
                while (*ins != NULL && (*ins)->tag.tag < d->tag.tag)
                    ins = &(*ins)->next;
                d->next = *ins;
                *ins = d;
                break;
            }
        }
    }
    return taken;
}

static int
settle_local(struct evamqp *be, ag__events_done_fn cb, void *udata, int err)
{
    struct amq_call *c = call_new(be, CALL_SETTLE, cb, udata);
    c->ready = true;
    c->ready_err = err;
    uv_async_send(&be->h->async);
    return 0;
}

static int
amq_ack(void *bep, const char *sub, const char *const *ack_ids, size_t n, ag__events_done_fn cb,
        void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    if (n == 0)
        return AG_EINVAL;
    if (be->ncalls >= MAX_CALLS)
        return AG_EUNAVAIL;
    struct amq_sub *s = sub_get(be, sub, false);
    struct amq_dlv *taken = s != NULL ? take_out(s, ack_ids, n) : NULL;
    if (taken == NULL)
        return settle_local(be, cb, udata, AG_EUNAVAIL);
    struct amq_req *r = ag_calloc(1, sizeof(*r));
    r->kind = REQ_ACK;
    r->sub = ag_strdup(sub);
    r->tags = ag_calloc(n, sizeof(*r->tags));
    for (struct amq_dlv *d = taken; d != NULL; d = d->next)
        r->tags[r->ntags++] = d->tag;
    dlv_list_free(taken);
    r->call = call_new(be, CALL_SETTLE, cb, udata);
    submit(be, r);
    return 0;
}

static int
amq_nack(void *bep, const char *sub, const char *const *ack_ids, size_t n, uint64_t delay_ms,
         const char *error, ag__events_done_fn cb, void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    AG_UNUSED(error); /* AMQP has nowhere to keep it; the runtime logged it */
    if (n == 0)
        return AG_EINVAL;
    if (be->ncalls >= MAX_CALLS)
        return AG_EUNAVAIL;
    struct amq_sub *s = sub_get(be, sub, false);
    struct amq_dlv *taken = s != NULL ? take_out(s, ack_ids, n) : NULL;
    /* Hold the failed one of each subject here for the delay, then
     * basic.nack requeue: a quorum queue hands returned messages out before
     * newer ones. The later ones of its subject (nacked with it, buffered,
     * or still arriving) wait here, unacked, until it is delivered again, so
     * the subject's order is kept (a retry queue with a TTL would let them
     * overtake). Messages without a subject are simply held and requeued. */
    uint64_t due = ag_time_mono_ms() + AG_MIN(delay_ms, (uint64_t)MAX_NACK_DELAY_MS);
    while (taken != NULL) {
        struct amq_dlv *d = taken;
        taken = d->next;
        d->next = NULL;
        if (d->subject[0] == '\0') {
            d->due_ms = due;
            held_push(s, d);
            continue;
        }
        struct amq_block *b = block_find(s, d->subject);
        if (b != NULL) {
            block_follow(b, d);
            continue;
        }
        b = ag_calloc(1, sizeof(*b));
        b->subject = ag_strdup(d->subject);
        b->leader = d;
        b->due_ms = due;
        b->next = s->blocks;
        s->blocks = b;
    }
    if (s != NULL) {
        struct amq_dlv **pp = &s->ready;
        struct amq_dlv *prev = NULL;
        while (*pp != NULL) {
            struct amq_dlv *d = *pp;
            struct amq_block *b = block_find(s, d->subject);
            if (b == NULL) {
                prev = d;
                pp = &d->next;
                continue;
            }
            *pp = d->next;
            if (s->ready_tail == d)
                s->ready_tail = prev;
            s->nready--;
            block_follow(b, d);
        }
    }
    arm_timer(be);
    return settle_local(be, cb, udata, 0);
}

static size_t
amq_cancel(void *bep, void *udata)
{
    struct evamqp *be = bep;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    size_t n = 0;
    /* Collect first: a callback may start new calls with the same udata,
     * which must survive. */
    size_t cap = be->ncalls;
    struct amq_call **todo = ag_calloc(cap + 1, sizeof(*todo));
    for (struct amq_call *c = be->calls; c != NULL && n < cap; c = c->next) {
        if (c->udata == udata && !c->cancelled)
            todo[n++] = c;
    }
    for (size_t i = 0; i < n; i++) {
        struct amq_call *c = todo[i];
        struct ag__events_result res = { .err = AG_ECLOSED, .detail = "cancelled" };
        ag__events_done_fn cb = c->cb;
        void *cu = c->udata;
        if (c->kind == CALL_PULL && c->sub != NULL && c->sub->pull == c)
            c->sub->pull = NULL;
        if (c->in_thread) {
            c->cancelled = true; /* freed when the thread's result comes */
        } else {
            call_unlink(be, c);
        }
        cb(&res, cu);
    }
    ag_free(todo);
    return n;
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct amq_handles *hs = h->data;
    if (--hs->open == 0)
        ag_free(hs);
}

static void
amq_free(void *bep)
{
    struct evamqp *be = bep;
    if (be == NULL)
        return;
    AG_CHECK_MAGIC(be, AMQP_BACKEND_MAGIC);
    uv_mutex_lock(&be->mu);
    be->stop = true;
    uv_mutex_unlock(&be->mu);
    thread_wake(be);
    uv_thread_join(&be->thread);
    /* What the thread left behind: results of cancelled calls, deliveries. */
    while (be->todo.head != NULL)
        req_free(queue_pop(&be->todo));
    while (be->done.head != NULL) {
        struct amq_req *r = queue_pop(&be->done);
        if (r->call != NULL && r->call->cancelled)
            call_unlink(be, r->call);
        req_free(r);
    }
    dlv_list_free(be->dlv_head);
    while (be->notes != NULL) {
        struct amq_note *n = be->notes;
        be->notes = n->next;
        ag_free(n->sub);
        ag_free(n);
    }
    if (be->calls != NULL)
        AG_BUG("events RabbitMQ backend freed with calls pending");
    for (size_t i = 0; i < be->nsubs; i++) {
        struct amq_sub *s = be->subs[i];
        dlv_list_free(s->ready);
        dlv_list_free(s->out);
        dlv_list_free(s->held);
        block_list_free(s->blocks);
        ag_free(s->name);
        ag_free(s);
    }
    be->h->async.data = be->h;
    be->h->timer.data = be->h;
    uv_close((uv_handle_t *)&be->h->async, on_handle_closed);
    uv_close((uv_handle_t *)&be->h->timer, on_handle_closed);
    uv_mutex_destroy(&be->mu);
    close(be->efd);
    ag_free(be->url_copy);
    ag_free(be->safe_url);
    be->magic = 0;
    ag_free(be);
}

const struct ag_events_backend_ops ag__events_amqp_ops = {
    .name = "amqp",
    .publish = amq_publish,
    .ensure = amq_ensure,
    .pull = amq_pull,
    .ack = amq_ack,
    .nack = amq_nack,
    .cancel = amq_cancel,
    .free_be = amq_free,
};

char *
ag__events_url_redact(const char *url)
{
    /* scheme://user:password@rest -> scheme://user:***@rest */
    const char *scheme = strstr(url, "://");
    const char *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme != NULL ? strchr(scheme + 3, ':') : NULL;
    if (at == NULL || colon == NULL || colon > at)
        return ag_strdup(url);
    return ag_asprintf("%.*s:***%s", (int)(colon - url), url, at);
}

int
ag__events_amqp_new(uv_loop_t *loop, const char *url, void **out_be)
{
    if (loop == NULL || url == NULL || strncmp(url, "amqp://", 7) != 0)
        return AG_EINVAL;
    char why[256];
    int rc = ag_rabbitmq_load(why, sizeof(why));
    if (rc != 0) {
        AG_LOGE(AMQ_LOG, "RabbitMQ: %s", why);
        return rc;
    }
    struct evamqp *be = ag_calloc(1, sizeof(*be));
    be->magic = AMQP_BACKEND_MAGIC;
    be->loop = loop;
    be->url_copy = ag_strdup(url);
    amqp_default_connection_info(&be->info);
    if (amqp_parse_url(be->url_copy, &be->info) != AMQP_STATUS_OK || be->info.host[0] == '\0') {
        ag_free(be->url_copy);
        ag_free(be);
        return AG_EINVAL;
    }
    /* amqp_parse_url leaves an empty vhost for "amqp://h:p/"; RabbitMQ's
     * default vhost is "/". */
    if (be->info.vhost == NULL || be->info.vhost[0] == '\0')
        be->info.vhost = "/";
    be->safe_url = ag__events_url_redact(url);
    be->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (be->efd == -1) {
        ag_free(be->safe_url);
        ag_free(be->url_copy);
        ag_free(be);
        return AG_EIO;
    }
    be->h = ag_calloc(1, sizeof(*be->h));
    uv_async_init(loop, &be->h->async, on_async);
    uv_timer_init(loop, &be->h->timer);
    be->h->async.data = be;
    be->h->timer.data = be;
    be->h->open = 2;
    /* The runtime's own timers keep the loop alive; ours must not keep it
     * from ending after a stop. */
    uv_unref((uv_handle_t *)&be->h->async);
    uv_unref((uv_handle_t *)&be->h->timer);
    uv_mutex_init(&be->mu);
    if (uv_thread_create(&be->thread, io_thread, be) != 0)
        AG_BUG("cannot start the RabbitMQ I/O thread");
    *out_be = be;
    return 0;
}
