/* SPDX-License-Identifier: MIT */
/* The span exporter: OTLP/HTTP with the JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp). Registered as the
 * process's span sink (agora/trace.h), it appends each ended span to a
 * bounded queue of encoded spans and, from a timer on the loop, POSTs them
 * in one ExportTraceServiceRequest to <endpoint>/v1/traces. Never blocks and
 * never grows past its bound: a span that does not fit is dropped and
 * counted, and so is a batch the collector did not take (no retries: a
 * trace is worth less than the service's latency). One export in flight at
 * a time. Loop thread only. The service chassis creates one when
 * AGORA_OTLP_ENDPOINT is set. */
#ifndef AG_OTLP_H
#define AG_OTLP_H

#include <uv.h>

#include "agora/base.h"

struct ag_http_client;
struct ag_metrics;
struct ag_otlp;

struct ag_otlp_config {
    const char *endpoint;         /* base URL: "http://127.0.0.1:8089" (copied) */
    const char *service_name;     /* resource service.name */
    const char *service_instance; /* resource service.instance.id (may be NULL) */
    const char *service_version;  /* resource service.version (may be NULL) */
    size_t max_queue_bytes;       /* encoded spans waiting; 0 -> 1 MiB */
    uint64_t flush_ms;            /* export period; 0 -> 1000 */
    struct ag_metrics *metrics;   /* trace_spans_{exported,dropped}_total; may be NULL */
};

/* Create the exporter and make it the span sink. 'client' is borrowed and
 * must outlive it. AG_EINVAL for a bad endpoint (not http://). */
int ag_otlp_new(uv_loop_t *loop, struct ag_http_client *client, const struct ag_otlp_config *cfg,
                struct ag_otlp **out);

/* Start an export of what is queued now (if none is in flight). */
void ag_otlp_flush(struct ag_otlp *x);

/* Counters, for tests: spans exported, dropped (queue full or export
 * failed), queued now. */
void ag_otlp_stats(const struct ag_otlp *x, uint64_t *exported, uint64_t *dropped, size_t *queued);

/* Unset the sink, cancel an export in flight, close the timer; freed once
 * the loop has closed it. Accepts NULL. */
void ag_otlp_close(struct ag_otlp *x);

#endif /* AG_OTLP_H */
