/* SPDX-License-Identifier: MIT */
/* bench/bus/rmqclient: load client for RabbitMQ on librabbitmq (AMQP 0-9-1),
 * the same shape as busclient.c, one thread and one connection per role:
 *
 *   publisher (x W)  basic.publish to the default exchange, routing key the
 *                    queue, persistent (delivery_mode 2), publisher confirms
 *                    with at most N messages unconfirmed (a sliding window:
 *                    N x W in flight, as the bus client's W requests of N)
 *   consumer  (x C)  basic.qos prefetch Q, basic.consume with manual acks,
 *                    basic.ack multiple once a quarter of the prefetch is
 *                    unacked or nothing more is buffered
 *
 * The queue is durable (classic by default, --queue-type quorum). Options
 * and output: common.h (bb_main). */
#include "common.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/time.h>
#include <time.h>

#define IO_TIMEOUT_S 30
#define CH           1

static void
check_reply(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return;
    case AMQP_RESPONSE_NONE: bb_die("%s: missing RPC reply", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        bb_die("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            bb_die("%s: connection closed by the server: %u %.*s", what, m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            bb_die("%s: channel closed by the server: %u %.*s", what, m->reply_code,
                   (int)m->reply_text.len, (char *)m->reply_text.bytes);
        }
        bb_die("%s: server exception, method 0x%08x", what, r.reply.id);
    }
    bb_die("%s: unknown reply type", what);
}

static amqp_connection_state_t
conn_open(const struct bb_opts *o)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(conn);
    if (s == NULL)
        bb_die("amqp_tcp_socket_new failed");
    struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
    int rc = amqp_socket_open_noblock(s, o->host, o->port, &tv);
    if (rc != AMQP_STATUS_OK)
        bb_die("cannot connect to %s:%d: %s", o->host, o->port, amqp_error_string2(rc));
    /* librabbitmq sets TCP_NODELAY on its sockets. frame_max 128 KiB, no heartbeats. */
    check_reply(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
                "login");
    amqp_channel_open(conn, CH);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");
    return conn;
}

static void
conn_close(amqp_connection_state_t conn)
{
    /* channel.close and connection.close are synchronous: the broker has
     * processed everything sent before (acks included) when they return. */
    check_reply(amqp_channel_close(conn, CH, AMQP_REPLY_SUCCESS), "channel.close");
    check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    amqp_destroy_connection(conn);
}

int
bb_client_setup(const struct bb_opts *o)
{
    amqp_connection_state_t conn = conn_open(o);
    amqp_table_entry_t e = { .key = amqp_cstring_bytes("x-queue-type") };
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(o->queue_type);
    amqp_table_t args = { .num_entries = 1, .entries = &e };
    amqp_queue_declare(conn, CH, amqp_cstring_bytes(o->name), 0, /*durable*/ 1, 0, 0, args);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare");
    amqp_queue_purge_ok_t *p = amqp_queue_purge(conn, CH, amqp_cstring_bytes(o->name));
    check_reply(amqp_get_rpc_reply(conn), "queue.purge");
    if (p != NULL && p->message_count != 0)
        bb_log("purged %u messages left in queue '%s'", p->message_count, o->name);
    conn_close(conn);
    return 0;
}

const char *
bb_client_version(void)
{
    static char v[64];
    snprintf(v, sizeof v, "rmqclient on librabbitmq %s", amqp_version());
    return v;
}

/* ---------------------------------------------------------------- publisher */

/* Confirms: delivery tags 1, 2, ... per channel; an ack or nack with
 * 'multiple' covers every tag up to it. 'done' marks single acks that came
 * out of order; 'low' is the highest tag below which all are confirmed. */
struct confirms {
    uint8_t *done;
    uint64_t cap;
    uint64_t low;
    uint64_t sent;
    uint64_t frames; /* confirm frames received */
};

static void
confirm(struct confirms *cf, uint64_t tag, bool multiple)
{
    if (tag == 0 || tag > cf->sent)
        bb_die("confirm for unknown delivery tag %" PRIu64, tag);
    if (multiple) {
        if (tag > cf->low)
            cf->low = tag;
    } else {
        cf->done[tag % cf->cap] = 1;
    }
    while (cf->low < cf->sent && cf->done[(cf->low + 1) % cf->cap]) {
        cf->done[(cf->low + 1) % cf->cap] = 0;
        cf->low++;
    }
}

/* Wait for one frame (at most until deadline_ns, 0: IO_TIMEOUT_S) and apply
 * it; returns the number of messages it confirmed (0 on timeout). */
static uint64_t
wait_confirm(amqp_connection_state_t conn, struct confirms *cf, uint64_t deadline_ns)
{
    amqp_frame_t f;
    struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
    bool bounded = deadline_ns != 0;
    if (bounded) {
        uint64_t now = bb_now_ns();
        uint64_t d = deadline_ns > now ? deadline_ns - now : 0;
        tv.tv_sec = (time_t)(d / 1000000000u);
        tv.tv_usec = (suseconds_t)(d % 1000000000u / 1000);
    }
    int rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) {
        if (!bounded)
            bb_die("no publisher confirm for %d s", IO_TIMEOUT_S);
        return 0;
    }
    if (rc != AMQP_STATUS_OK)
        bb_die("waiting for confirms: %s", amqp_error_string2(rc));
    if (f.frame_type != AMQP_FRAME_METHOD)
        bb_die("unexpected frame type %u on a publisher", f.frame_type);
    uint64_t before = cf->low;
    cf->frames++;
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f.payload.method.decoded;
        confirm(cf, a->delivery_tag, a->multiple);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: bb_die("the broker nacked a publish (not stored)");
    case AMQP_BASIC_RETURN_METHOD: bb_die("the broker returned a message (unroutable)");
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f.payload.method.decoded;
        bb_die("channel closed by the server: %u %.*s", m->reply_code, (int)m->reply_text.len,
               (char *)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: bb_die("connection closed by the server");
    default: bb_die("unexpected method 0x%08x on a publisher", f.payload.method.id);
    }
    amqp_maybe_release_buffers(conn);
    return cf->low - before;
}

void *
bb_publisher_main(void *arg)
{
    struct bb_thread *t = arg;
    struct bb_cycle *c = t->c;
    const struct bb_opts *o = c->o;
    const struct bb_event *ev = c->ev;
    amqp_connection_state_t conn = conn_open(o);
    amqp_confirm_select(conn, CH);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select");
    struct confirms cf = { .cap = (uint64_t)o->batch + 1 };
    cf.done = calloc(cf.cap, 1);
    char *body = malloc(ev->size);
    if (cf.done == NULL || body == NULL)
        bb_die("out of memory");
    char msgid[BB_DIGITS + 1] = { 0 };
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG,
        .content_type = amqp_cstring_bytes("application/cloudevents+json"),
        .delivery_mode = 2, /* persistent */
        .message_id = { .len = BB_DIGITS, .bytes = msgid },
    };
    amqp_bytes_t rkey = amqp_cstring_bytes(o->name);
    amqp_bytes_t exchange = amqp_empty_bytes;
    uint64_t window = (uint64_t)o->batch;
    pthread_barrier_wait(&c->ready);
    pthread_barrier_wait(&c->go);

    uint64_t k = 0; /* fixed load: next message of this publisher's schedule */
    for (;;) {
        uint64_t sched = 0;
        if (c->rate > 0) {
            if (k >= c->per_pub)
                break;
            sched = bb_sched_ns(c, t->index, k);
            /* Until it is due, take confirms as they come (poll with a ns
             * timeout: librabbitmq's own timeouts round to milliseconds,
             * which would spin). */
            for (uint64_t now = bb_now_ns(); now < sched; now = bb_now_ns()) {
                if (cf.sent == cf.low) {
                    bb_sleep_until(sched);
                    break;
                }
                if (!amqp_frames_enqueued(conn) && !amqp_data_in_buffer(conn)) {
                    struct pollfd pfd = { .fd = amqp_get_sockfd(conn), .events = POLLIN };
                    struct timespec ts = { .tv_sec = (time_t)((sched - now) / 1000000000u),
                                           .tv_nsec = (long)((sched - now) % 1000000000u) };
                    int pr = ppoll(&pfd, 1, &ts, NULL);
                    if (pr == -1 && errno != EINTR)
                        bb_die("poll: %s", strerror(errno));
                    if (pr <= 0)
                        continue;
                }
                atomic_fetch_add(&c->published, wait_confirm(conn, &cf, 0));
            }
        }
        while (cf.sent - cf.low >= window)
            atomic_fetch_add(&c->published, wait_confirm(conn, &cf, 0));
        uint64_t first;
        if (bb_take(c, 1, &first) == 0)
            break;
        uint64_t id = c->id_base + first;
        bb_fmt_u64(msgid, id);
        bb_event_write(ev, body, id, c->rate > 0 ? sched : bb_now_ns());
        amqp_bytes_t b = { .len = ev->size, .bytes = body };
        int rc = amqp_basic_publish(conn, CH, exchange, rkey, 0, 0, &props, b);
        if (rc != AMQP_STATUS_OK)
            bb_die("basic.publish: %s", amqp_error_string2(rc));
        cf.sent++;
        k++;
    }
    while (cf.low < cf.sent)
        atomic_fetch_add(&c->published, wait_confirm(conn, &cf, 0));
    atomic_fetch_add(&c->requests, cf.frames);
    atomic_fetch_add(&c->pubs_done, 1);
    conn_close(conn);
    free(cf.done);
    free(body);
    return NULL;
}

/* ---------------------------------------------------------------- consumer */

void *
bb_consumer_main(void *arg)
{
    struct bb_thread *t = arg;
    struct bb_cycle *c = t->c;
    const struct bb_opts *o = c->o;
    const struct bb_event *ev = c->ev;
    amqp_connection_state_t conn = conn_open(o);
    amqp_basic_qos(conn, CH, 0, (uint16_t)(o->prefetch > 65535 ? 65535 : o->prefetch), 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");
    amqp_basic_consume(conn, CH, amqp_cstring_bytes(o->name), amqp_empty_bytes, 0,
                       /*no_ack*/ 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");
    uint64_t ack_every = (uint64_t)(o->prefetch / 4 > 0 ? o->prefetch / 4 : 1);
    uint64_t last_tag = 0, unacked = 0;
    pthread_barrier_wait(&c->ready);
    pthread_barrier_wait(&c->go);

    while (!bb_all_in(c)) {
        amqp_envelope_t env;
        struct timeval tv = { .tv_usec = 200000 };
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            bb_check_stall(c);
            continue;
        }
        check_reply(r, "basic.consume (delivery)");
        uint64_t now = bb_now_ns();
        uint64_t id, sent;
        if (env.message.body.len != ev->size ||
            bb_event_read(ev, env.message.body.bytes, env.message.body.len, &id, &sent) != 0)
            bb_die("a delivery is not the event published");
        bb_deliver(t, id, sent, now);
        last_tag = env.delivery_tag;
        unacked++;
        amqp_destroy_envelope(&env);
        /* Ack (multiple) when a quarter of the prefetch is unacked, or when
         * nothing more is waiting, so that the broker is never starved. */
        if (unacked >= ack_every || (!amqp_data_in_buffer(conn) && !amqp_frames_enqueued(conn))) {
            int rc = amqp_basic_ack(conn, CH, last_tag, 1);
            if (rc != AMQP_STATUS_OK)
                bb_die("basic.ack: %s", amqp_error_string2(rc));
            atomic_fetch_add(&c->acked, unacked);
            unacked = 0;
        }
    }
    if (unacked) {
        int rc = amqp_basic_ack(conn, CH, last_tag, 1);
        if (rc != AMQP_STATUS_OK)
            bb_die("basic.ack: %s", amqp_error_string2(rc));
        atomic_fetch_add(&c->acked, unacked);
    }
    /* The acks are asynchronous: a quorum queue that sees the channel close
     * before it has applied them gives those messages back (they would
     * come again in the next run). A basic.get is answered by the queue
     * after the commands sent before it, so the acks are then applied. */
    amqp_rpc_reply_t gr = amqp_basic_get(conn, CH, amqp_cstring_bytes(o->name), /*no_ack*/ 1);
    check_reply(gr, "basic.get");
    if (gr.reply.id == AMQP_BASIC_GET_OK_METHOD)
        bb_die("a message was left in the queue after every message was delivered");
    conn_close(conn);
    return NULL;
}

int
main(int argc, char **argv)
{
    return bb_main(argc, argv, "rabbitmq");
}
