/* SPDX-License-Identifier: MIT */
/* The collector's reader of OTLP/HTTP JSON (an ExportTraceServiceRequest,
 * https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): it walks
 * the body once and hands each span to a callback, with its attributes and
 * events already written as the JSON text the collector stores, and builds
 * no tree. jansson's tree for a request of 512 spans was 40% of the
 * collector's CPU (bench/tracing/run, docs in platform/traces/README.md).
 *
 * Strict JSON (RFC 8259): the whole body is checked first, so a malformed
 * one is refused before any span is handed over; strings must be valid
 * UTF-8 without NUL (as jansson's parser requires); nesting deeper than 32
 * is refused. Unknown members are skipped, members may come in any order
 * (a scopeSpans before its resource is read after it). */
#ifndef TRACES_OTLP_JSON_H
#define TRACES_OTLP_JSON_H

#include "agora/base.h"

#include <stddef.h>
#include <stdint.h>

#define OTLP_MAX_TEXT 256 /* bytes kept of a name, service, message or string value */

struct otlp_span {
    const char *service; /* resource service.name, or "unknown_service" */
    bool valid;          /* ids are hex of the right length and not zero, times sane */
    char trace_id[33];   /* lowercase hex */
    char span_id[17];
    char parent_id[17]; /* "" for a root span */
    int64_t start_ns;
    int64_t end_ns;
    int64_t kind;        /* OTLP SpanKind 0-5 (others read as 0) */
    int64_t status_code; /* 0 unset, 1 ok, 2 error (others read as 0) */
    const char *name;    /* "" when absent */
    const char *status_message;
    const char *attrs; /* JSON object text: key -> value (at most 64 entries) */
    size_t attrs_len;
    const char *events; /* JSON array text of {name, time_unix_nano} (at most 32) */
    size_t events_len;
    const char *links; /* JSON array text of {trace_id, span_id} (at most 32 valid ones) */
    size_t links_len;
};

/* Called for every span, in body order; a nonzero return stops the walk
 * and is returned by otlp_json_read. The strings live until it returns. */
typedef int (*otlp_span_fn)(void *udata, const struct otlp_span *span);

/* Read 'body'. Returns 0; AG_EPARSE (with a reason in 'err') when it is not
 * JSON, not an object, or has no resourceSpans array; or the callback's
 * code. */
int otlp_json_read(const char *body, size_t len, otlp_span_fn fn, void *udata, char *err,
                   size_t errlen);

#endif /* TRACES_OTLP_JSON_H */
