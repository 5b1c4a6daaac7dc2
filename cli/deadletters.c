/* SPDX-License-Identifier: MIT */
/* `agora dead-letters`: the bus's dead-letter operations (list, show,
 * replay, purge) on RabbitMQ, where a subscription SUB dead-letters into the
 * durable queue SUB.dead (chassis/src/events/events_amqp.c). Blocking
 * rabbitmq-c calls; nothing is lost: list and show take messages with
 * basic.get and give them back in order by closing the channel. */
#include "agora/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora/mem.h"
#include "agora/rabbitmq.h"
#include "cli.h"

#define DL_MAX_LIST  10000 /* messages one list looks at */
#define DL_TIMEOUT_S 10

struct dl {
    amqp_connection_state_t conn;
    char queue[160];
    const char *sub;
    char *url_copy;
};

static int
dl_fail(const char *what, amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD || r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        uint16_t code;
        amqp_bytes_t text;
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            code = m->reply_code;
            text = m->reply_text;
        } else {
            amqp_connection_close_t *m = r.reply.decoded;
            code = m->reply_code;
            text = m->reply_text;
        }
        fprintf(stderr, "agora: %s: RabbitMQ refused: %u %.*s\n", what, code, (int)text.len,
                (const char *)text.bytes);
        return code == 404 ? CLI_NOT_RUNNING : CLI_FAILED;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "agora: %s: %s\n", what, amqp_error_string2(r.library_error));
    else
        fprintf(stderr, "agora: %s failed\n", what);
    return CLI_FAILED;
}

/* Connect, open channel 1 and check that SUB.dead exists; '*out_count'
 * receives its message count. */
static int
dl_open(struct dl *d, const char *url, uint32_t *out_count)
{
    struct amqp_connection_info info;
    char why[256];
    if (ag_rabbitmq_load(why, sizeof(why)) != 0) {
        fprintf(stderr, "agora: %s\n", why);
        return CLI_FAILED;
    }
    d->url_copy = ag_strdup(url);
    amqp_default_connection_info(&info);
    if (strncmp(url, "amqp://", 7) != 0 || amqp_parse_url(d->url_copy, &info) != AMQP_STATUS_OK) {
        fprintf(stderr, "agora: --events-url must be amqp://user:password@host:port/vhost\n");
        return CLI_USAGE;
    }
    if (info.vhost == NULL || info.vhost[0] == '\0')
        info.vhost = "/";
    d->conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(d->conn);
    struct timeval tv = { DL_TIMEOUT_S, 0 };
    int rc = sock == NULL ? AMQP_STATUS_NO_MEMORY
                          : amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "agora: cannot connect to RabbitMQ at %s:%d: %s\n", info.host, info.port,
                amqp_error_string2(rc));
        return CLI_FAILED;
    }
    amqp_set_rpc_timeout(d->conn, &tv);
    amqp_rpc_reply_t r = amqp_login(d->conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                                    info.user, info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return dl_fail("login", r);
    amqp_channel_open(d->conn, 1);
    r = amqp_get_rpc_reply(d->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return dl_fail("channel", r);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(d->conn, 1, amqp_cstring_bytes(d->queue), 1, 0, 0, 0, amqp_empty_table);
    r = amqp_get_rpc_reply(d->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || ok == NULL) {
        int st = dl_fail(d->queue, r);
        if (st == CLI_NOT_RUNNING)
            fprintf(stderr, "agora: no dead-letter queue '%s' (is '%s' a subscription?)\n",
                    d->queue, d->sub);
        return st;
    }
    *out_count = ok->message_count;
    return CLI_OK;
}

static void
dl_close(struct dl *d)
{
    if (d->conn != NULL) {
        amqp_channel_close(d->conn, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(d->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(d->conn);
    }
    ag_free(d->url_copy);
}

/* basic.get one message (no ack). 1: got one, 0: queue empty, <0: error. */
static int
dl_get(struct dl *d, amqp_message_t *msg, uint64_t *tag, char *rkey, size_t rkeylen)
{
    amqp_rpc_reply_t r = amqp_basic_get(d->conn, 1, amqp_cstring_bytes(d->queue), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        dl_fail("basic.get", r);
        return -1;
    }
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    amqp_basic_get_ok_t *ok = r.reply.decoded;
    *tag = ok->delivery_tag;
    snprintf(rkey, rkeylen, "%.*s", (int)ok->routing_key.len, (const char *)ok->routing_key.bytes);
    r = amqp_read_message(d->conn, 1, msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        dl_fail("reading a message", r);
        return -1;
    }
    return 1;
}

static const amqp_field_value_t *
table_get(const amqp_table_t *t, const char *key)
{
    for (int i = 0; t != NULL && i < t->num_entries; i++) {
        if (t->entries[i].key.len == strlen(key) &&
            memcmp(t->entries[i].key.bytes, key, t->entries[i].key.len) == 0)
            return &t->entries[i].value;
    }
    return NULL;
}

static void
print_bytes(const char *label, const amqp_field_value_t *v)
{
    if (v != NULL && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        printf("%s%.*s", label, (int)v->value.bytes.len, (const char *)v->value.bytes.bytes);
    else
        printf("%s-", label);
}

/* One line: N, message id, type (the original routing key), subject, and
 * why it died (the first x-death entry: reason, count). */
static void
print_line(size_t n, const amqp_message_t *m)
{
    const amqp_basic_properties_t *p = &m->properties;
    const amqp_table_t *h = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
    printf("%zu\t", n);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        printf("%.*s", (int)p->message_id.len, (const char *)p->message_id.bytes);
    else
        printf("-");
    const amqp_field_value_t *death = table_get(h, "x-death");
    const amqp_table_t *d0 = NULL;
    if (death != NULL && death->kind == AMQP_FIELD_KIND_ARRAY &&
        death->value.array.num_entries > 0 &&
        death->value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE)
        d0 = &death->value.array.entries[0].value.table;
    const amqp_field_value_t *keys = table_get(d0, "routing-keys");
    if (keys != NULL && keys->kind == AMQP_FIELD_KIND_ARRAY && keys->value.array.num_entries > 0)
        print_bytes("\t", &keys->value.array.entries[0]);
    else
        printf("\t-");
    print_bytes("\t", table_get(h, "subject"));
    print_bytes("\t", table_get(d0, "reason"));
    printf("\n");
}

static int
dl_list(struct dl *d, uint32_t count, size_t show)
{
    size_t limit = AG_MIN((size_t)count, (size_t)DL_MAX_LIST);
    if (show > 0 && show > count) {
        fprintf(stderr, "agora: '%s' holds %u messages; no message %zu\n", d->queue, count, show);
        return CLI_NOT_RUNNING;
    }
    if (show == 0)
        printf("N\tID\tTYPE\tSUBJECT\tREASON\n");
    /* Every message taken stays unacked; closing the channel puts them all
     * back, in their order. */
    for (size_t n = 1; n <= limit; n++) {
        amqp_message_t m;
        uint64_t tag;
        char rkey[256];
        int rc = dl_get(d, &m, &tag, rkey, sizeof(rkey));
        if (rc < 0)
            return CLI_FAILED;
        if (rc == 0)
            break;
        if (show == 0) {
            print_line(n, &m);
        } else if (n == show) {
            printf("# ");
            print_line(n, &m);
            printf("%.*s\n", (int)m.body.len, (const char *)m.body.bytes);
            amqp_destroy_message(&m);
            break;
        }
        amqp_destroy_message(&m);
    }
    if (show == 0 && count > limit)
        printf("# %u messages, the first %zu shown\n", count, limit);
    return CLI_OK;
}

/* Move up to 'limit' messages from SUB.dead to SUB (the default exchange,
 * routing key = the queue: only this subscription sees them again),
 * each acked on the dead-letter queue only after RabbitMQ confirmed the
 * republish. */
static int
dl_replay(struct dl *d, size_t limit)
{
    amqp_confirm_select(d->conn, 1);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(d->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return dl_fail("confirm.select", r);
    size_t done = 0;
    uint64_t seq = 0;
    while (done < limit) {
        amqp_message_t m;
        uint64_t tag;
        char rkey[256];
        int rc = dl_get(d, &m, &tag, rkey, sizeof(rkey));
        if (rc < 0)
            return CLI_FAILED;
        if (rc == 0)
            break;
        amqp_basic_properties_t p = m.properties;
        p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        rc = amqp_basic_publish(d->conn, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(d->sub), 0,
                                0, &p, m.body);
        amqp_destroy_message(&m);
        seq++;
        if (rc != AMQP_STATUS_OK) {
            fprintf(stderr, "agora: republish failed: %s\n", amqp_error_string2(rc));
            return CLI_FAILED;
        }
        /* Wait for the confirm of this message (basic.get answers come on
         * the same channel, so one at a time keeps it simple). */
        for (;;) {
            amqp_frame_t f;
            struct timeval tv = { DL_TIMEOUT_S, 0 };
            rc = amqp_simple_wait_frame_noblock(d->conn, &f, &tv);
            if (rc != AMQP_STATUS_OK) {
                fprintf(stderr, "agora: no confirm from RabbitMQ: %s\n", amqp_error_string2(rc));
                return CLI_FAILED;
            }
            if (f.frame_type != AMQP_FRAME_METHOD)
                continue;
            if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
                fprintf(stderr, "agora: RabbitMQ refused the republished message\n");
                return CLI_FAILED;
            }
            if (f.payload.method.id == AMQP_BASIC_ACK_METHOD &&
                ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag >= seq)
                break;
            if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
                amqp_channel_close_t *m2 = f.payload.method.decoded;
                fprintf(stderr, "agora: RabbitMQ closed the channel: %u %.*s\n", m2->reply_code,
                        (int)m2->reply_text.len, (const char *)m2->reply_text.bytes);
                return CLI_FAILED;
            }
        }
        if (amqp_basic_ack(d->conn, 1, tag, 0) != AMQP_STATUS_OK) {
            fprintf(stderr, "agora: cannot ack the dead letter (it stays; a replay again\n"
                            "delivers it twice, the consumer's inbox skips the second)\n");
            return CLI_FAILED;
        }
        done++;
    }
    printf("replayed %zu\n", done);
    return CLI_OK;
}

static int
dl_purge(struct dl *d)
{
    amqp_queue_purge_ok_t *ok = amqp_queue_purge(d->conn, 1, amqp_cstring_bytes(d->queue));
    amqp_rpc_reply_t r = amqp_get_rpc_reply(d->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || ok == NULL)
        return dl_fail("queue.purge", r);
    printf("purged %u\n", ok->message_count);
    return CLI_OK;
}

static bool
parse_count(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || v == 0 || v > 1000000)
        return false;
    *out = (size_t)v;
    return true;
}

static bool
name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int
cli_cmd_dead_letters(int argc, char **argv)
{
    const char *url = getenv("AGORA_EVENTS_URL");
    const char *pos[3] = { NULL, NULL, NULL };
    size_t npos = 0;
    size_t limit = SIZE_MAX;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--events-url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (!parse_count(argv[++i], &limit)) {
                fprintf(stderr, "agora: --limit wants a count (1-1000000)\n");
                return CLI_USAGE;
            }
        } else if (argv[i][0] == '-' || npos == 3) {
            fprintf(stderr, "agora: dead-letters: unexpected '%s'\n", argv[i]);
            return CLI_USAGE;
        } else {
            pos[npos++] = argv[i];
        }
    }
    const char *verb = pos[0];
    size_t show = 0;
    bool ok = verb != NULL && pos[1] != NULL && name_ok(pos[1]);
    if (ok && strcmp(verb, "show") == 0)
        ok = pos[2] != NULL && parse_count(pos[2], &show);
    else if (ok)
        ok = pos[2] == NULL &&
             (strcmp(verb, "list") == 0 || strcmp(verb, "replay") == 0 ||
              strcmp(verb, "purge") == 0) &&
             (limit == SIZE_MAX || strcmp(verb, "replay") == 0);
    if (!ok) {
        fprintf(stderr, "usage: agora dead-letters [--events-url URL] list SUB | show SUB N |\n"
                        "                          replay SUB [--limit N] | purge SUB\n");
        return CLI_USAGE;
    }
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr,
                "agora: dead-letters needs --events-url amqp://... (or AGORA_EVENTS_URL)\n");
        return CLI_USAGE;
    }
    struct dl d = { .sub = pos[1] };
    snprintf(d.queue, sizeof(d.queue), "%s.dead", pos[1]);
    uint32_t count = 0;
    int status = dl_open(&d, url, &count);
    if (status == CLI_OK) {
        if (strcmp(verb, "list") == 0 || strcmp(verb, "show") == 0)
            status = dl_list(&d, count, show);
        else if (strcmp(verb, "replay") == 0)
            status = dl_replay(&d, limit);
        else
            status = dl_purge(&d);
    }
    fflush(stdout);
    dl_close(&d);
    return status;
}
