/* SPDX-License-Identifier: MIT */
/* Bus spans: the bus's own handling of a message in the message's trace. A
 * publish the bus accepted (durable in its log) and each hand-out of a
 * message to a subscription are spans, children of the span that wrote the
 * event (the CloudEvent "traceparent" member of the message's data), with
 * the OpenTelemetry messaging attributes. Nothing is done while no span
 * sink is set, nor for a message without a sampled traceparent. Called by
 * engine.c; calls scan.c (bus_json_member) and the chassis. */
#include "agora/base.h"
#include "bus.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agora/trace.h"

#define MESSAGING_SYSTEM "bus" /* as the chassis's producer and consumer spans name us */

int64_t
bus_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- The traceparent of a message ---- */

bool
bus_trace_parent(const char *data, size_t len, struct ag_trace_ctx *out)
{
    const char *v;
    size_t vlen;
    /* A version-00 traceparent has no escapes: its 55 bytes in quotes, or
     * it is not one we continue. */
    if (!bus_json_member(data, len, "traceparent", &v, &vlen) || vlen != AG_TRACEPARENT_LEN + 2 ||
        v[0] != '"' || v[vlen - 1] != '"')
        return false;
    return ag_trace_parse(ag_str_make(v + 1, AG_TRACEPARENT_LEN), out) == 0;
}

/* Begin 'span' as a child of the writer of the message whose data is
 * 'data', named "<op> <topic>". False (and nothing begun) when spans are
 * off or the message's trace is absent or not sampled. */
static bool
span_begin(struct ag_span *span, const char *data, size_t data_len, const char *op,
           const char *topic, size_t topic_len)
{
    struct ag_trace_ctx writer;
    if (!ag_span_enabled() || !bus_trace_parent(data, data_len, &writer) || (writer.flags & 1) == 0)
        return false;
    /* The traceparent names the writer's span: our parent. */
    memcpy(writer.span_id, writer.parent_id, sizeof(writer.span_id));
    struct ag_trace_ctx ctx;
    ag_trace_child(&writer, &ctx);
    char name[AG_SPAN_MAX_TEXT];
    snprintf(name, sizeof(name), "%s %.*s", op, (int)AG_MIN(topic_len, (size_t)64), topic);
    ag_span_begin(span, &ctx, name, AG_SPAN_INTERNAL);
    ag_span_attr_str(span, "messaging.system", MESSAGING_SYSTEM);
    ag_span_attr_str(span, "messaging.operation.type", op);
    ag_span_attr_strn(span, "messaging.destination.name", topic, topic_len);
    return span->recording;
}

void
bus_span_publish(const struct bus_op *op, size_t i, const char *error)
{
    const struct bus_msg_in *m = &op->msgs[i];
    struct ag_span span;
    if (op->start_ns == 0 ||
        !span_begin(&span, m->data, m->data_len, "publish", m->topic, strlen(m->topic)))
        return;
    span.start_ns = op->start_ns;
    ag_span_attr_str(&span, "messaging.message.id", m->id);
    ag_span_attr_int(&span, "messaging.message.body.size", (int64_t)m->data_len);
    if (op->n > 1)
        ag_span_attr_int(&span, "messaging.batch.message_count", (int64_t)op->n);
    if (error != NULL) {
        ag_span_error(&span, error);
    } else {
        ag_span_attr_int(&span, "agora.bus.seq", op->seqs[i]);
        if (op->dup[i])
            ag_span_attr_str(&span, "agora.bus.duplicate", "true");
    }
    ag_span_end(&span);
}

/* The text of the JSON string at 'p' ('len' bytes, quotes included),
 * without its quotes (escapes are left as they are). */
static struct ag_str
unquote(const char *p, size_t len)
{
    return len >= 2 ? ag_str_make(p + 1, len - 2) : ag_str_make(p, 0);
}

void
bus_span_deliver(const struct bus_sub *sub, int64_t attempt, const struct ag_buf *out,
                 const struct bus_msg_loc *loc, int64_t start_ns)
{
    struct ag_span span;
    struct ag_str topic = unquote(out->data + loc->topic_off, loc->topic_len);
    if (!span_begin(&span, out->data + loc->data_off, loc->data_len, "deliver", topic.ptr,
                    topic.len))
        return;
    span.start_ns = start_ns;
    struct ag_str id = unquote(out->data + loc->id_off, loc->id_len);
    ag_span_attr_strn(&span, "messaging.message.id", id.ptr, id.len);
    ag_span_attr_str(&span, "messaging.consumer.group.name", sub->name);
    ag_span_attr_int(&span, "messaging.message.delivery_attempt", attempt);
    ag_span_end(&span);
}
