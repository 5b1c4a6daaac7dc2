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

#endif /* AG_TRACE_H */
