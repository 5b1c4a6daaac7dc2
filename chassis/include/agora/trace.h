/* SPDX-License-Identifier: MIT */
/* W3C Trace Context (traceparent) parsing, generation and propagation. A
 * server span continues the caller's trace (same trace id, the caller's span
 * as parent) or starts a new one; outgoing calls carry a child traceparent. */
#ifndef AG_TRACE_H
#define AG_TRACE_H

#include "agora/base.h"
#include "agora/str.h"

#define AG_TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

struct ag_trace_ctx {
    char trace_id[33];  /* 32 lowercase hex digits */
    char span_id[17];   /* this span, 16 hex digits */
    char parent_id[17]; /* the caller's span, or "" for a root span */
    uint8_t flags;      /* trace-flags; bit 0 = sampled */
};

/* Parse a traceparent header value (version 00, or a future version read
 * with the version-00 prefix rules). Rejects all-zero ids, uppercase hex,
 * version ff and bad lengths with AG_EINVAL. On success 'out' holds the
 * caller's ids: trace_id, parent_id = the header's parent-id, span_id "". */
int ag_trace_parse(struct ag_str header, struct ag_trace_ctx *out);

/* Start the server span for an incoming request: continue 'header' when it
 * parses, else begin a new sampled trace. Always fills a fresh span_id. */
void ag_trace_start(struct ag_str header, struct ag_trace_ctx *out);

/* Format the traceparent to send on an outgoing call made inside 'ctx'
 * (parent-id = ctx's span id). 'out' gets AG_TRACEPARENT_LEN + 1 bytes. */
void ag_trace_format(const struct ag_trace_ctx *ctx, char out[AG_TRACEPARENT_LEN + 1]);

/* Fill 'out' with 'n' random bytes as 2n lowercase hex digits + NUL, never
 * all zeros. */
void ag_trace_random_hex(char *out, size_t n);

/* Head sampling: a trace this process starts (no valid traceparent came
 * in) is sampled with probability 'ratio' (0..1, AGORA_TRACE_SAMPLE; 1 by
 * default). A continued trace keeps the caller's decision. */
void ag_trace_set_sample_ratio(double ratio);

/* A child context of 'parent' (same trace and flags, a fresh span id,
 * parent = parent's span id): for a client call or a consumer handler. */
void ag_trace_child(const struct ag_trace_ctx *parent, struct ag_trace_ctx *out);

/* The context of the request or delivery the loop thread is handling now,
 * or NULL: set by the chassis around a handler (server requests, event
 * deliveries), so that code called from it (ag_events_publish with no
 * traceparent) continues its trace. */
const struct ag_trace_ctx *ag_trace_current(void);
void ag_trace_set_current(const struct ag_trace_ctx *ctx);

/* ---- Spans (OpenTelemetry data model) ----
 * A span is a plain struct filled by its owner and handed to the process's
 * span sink when it ends; nothing is recorded when no sink is set (no
 * exporter) or the trace is not sampled. Attribute keys are the
 * OpenTelemetry semantic conventions (http.request.method, db.system,
 * messaging.destination.name...). Loop thread only. */

enum ag_span_kind {
    AG_SPAN_INTERNAL = 1,
    AG_SPAN_SERVER = 2,
    AG_SPAN_CLIENT = 3,
    AG_SPAN_PRODUCER = 4,
    AG_SPAN_CONSUMER = 5,
};

enum ag_span_status {
    AG_SPAN_UNSET = 0,
    AG_SPAN_OK = 1,
    AG_SPAN_ERROR = 2,
};

#define AG_SPAN_MAX_ATTRS  10
#define AG_SPAN_MAX_EVENTS 4
#define AG_SPAN_MAX_TEXT   96 /* bytes of a name, string attribute or message */
#define AG_SPAN_MAX_LINKS  16 /* links of one span (a batch's events) */

/* Links of a span (a batch's link to each message), in storage the span's
 * owner provides (ag_span_use_links), so that a span without links stays
 * small. */
struct ag_span_links {
    uint8_t n;
    uint32_t dropped; /* links past AG_SPAN_MAX_LINKS */
    struct {
        char trace_id[33];
        char span_id[17];
        uint8_t flags;
    } v[AG_SPAN_MAX_LINKS];
};

struct ag_span_attr {
    const char *key; /* static storage */
    bool is_int;
    int64_t i;
    char s[AG_SPAN_MAX_TEXT];
};

struct ag_span {
    struct ag_trace_ctx ctx; /* trace id, this span's id, parent (or "") */
    char name[AG_SPAN_MAX_TEXT];
    enum ag_span_kind kind;
    enum ag_span_status status;
    char status_msg[AG_SPAN_MAX_TEXT];
    int64_t start_ns; /* Unix nanoseconds */
    int64_t end_ns;
    bool recording; /* begun with a sink set and the trace sampled */
    uint8_t nattrs;
    uint8_t nevents;
    struct ag_span_attr attrs[AG_SPAN_MAX_ATTRS];
    struct {
        const char *name; /* static storage */
        int64_t time_ns;
    } events[AG_SPAN_MAX_EVENTS];
    struct ag_span_links *links; /* NULL: none (ag_span_use_links) */
};

typedef void (*ag_span_sink_fn)(const struct ag_span *span, void *udata);

/* Where ended spans go (the OTLP exporter); NULL: spans are not recorded. */
void ag_span_set_sink(ag_span_sink_fn fn, void *udata);
/* Whether a sink is set. */
bool ag_span_enabled(void);

/* Begin 's' as 'ctx' (copied as is: its span id is the span's) named
 * 'name' (truncated). Does little when not recording. */
void ag_span_begin(struct ag_span *s, const struct ag_trace_ctx *ctx, const char *name,
                   enum ag_span_kind kind);
void ag_span_set_name(struct ag_span *s, const char *name);
/* Attributes past AG_SPAN_MAX_ATTRS are dropped; strings truncated. */
void ag_span_attr_str(struct ag_span *s, const char *key, const char *value);
void ag_span_attr_strn(struct ag_span *s, const char *key, const char *value, size_t len);
void ag_span_attr_int(struct ag_span *s, const char *key, int64_t value);
/* A timed event (a retry); past AG_SPAN_MAX_EVENTS dropped. */
void ag_span_event(struct ag_span *s, const char *name);
/* Give the begun span 's' room for links in 'links' (emptied; borrowed,
 * it must stay valid until ag_span_end). */
void ag_span_use_links(struct ag_span *s, struct ag_span_links *links);
/* Link 's' to the span 'ctx' names (its trace_id and span_id): a batch
 * span's link to each message's context (OpenTelemetry span links). Past
 * AG_SPAN_MAX_LINKS a link is only counted (droppedLinksCount); without
 * ag_span_use_links it is dropped uncounted. */
void ag_span_link(struct ag_span *s, const struct ag_trace_ctx *ctx);
/* Mark the span failed with 'msg' (may be NULL). */
void ag_span_error(struct ag_span *s, const char *msg);
/* End 's' now and hand it to the sink when recording. */
void ag_span_end(struct ag_span *s);

struct ag_buf;
/* Append 's' as one OTLP/JSON Span object (opentelemetry-proto
 * trace/v1 Span in the protobuf JSON mapping: traceId and spanId hex,
 * times as decimal strings, kind and status code as numbers). Returns 0 or
 * AG_ETOOBIG when 'out' is at its maximum (left as it was). */
int ag_span_to_otlp_json(const struct ag_span *s, struct ag_buf *out);

#endif /* AG_TRACE_H */
