/* SPDX-License-Identifier: MIT */
/* OTLP/HTTP JSON span exporter (agora/otlp.h). */
#include "agora/base.h"
#include "agora/otlp.h"

#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/http_client.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/metrics.h"
#include "agora/trace.h"

#define OTLP_MAGIC        0x4f544c50u /* "OTLP" */
#define DEFAULT_MAX_BYTES (1u << 20)
#define DEFAULT_FLUSH_MS  1000
#define EXPORT_TIMEOUT_MS 2000

struct ag_otlp {
    uint32_t magic;
    struct ag_http_client *client; /* borrowed */
    uv_timer_t timer;
    char *url;           /* <endpoint>/v1/traces */
    char *resource;      /* the JSON before the spans of a request */
    struct ag_buf queue; /* encoded spans, comma separated */
    size_t nqueued;
    struct ag_buf body; /* the request in flight */
    size_t ninflight;
    bool inflight;
    bool closing;
    bool timer_closed;
    size_t max_bytes;
    uint64_t exported;
    uint64_t dropped;
    struct ag_metric *m_exported;
    struct ag_metric *m_dropped;
};

static void
maybe_free(struct ag_otlp *x)
{
    if (!x->closing || !x->timer_closed || x->inflight)
        return;
    ag_buf_release(&x->queue);
    ag_buf_release(&x->body);
    ag_free(x->url);
    ag_free(x->resource);
    x->magic = 0;
    ag_free(x);
}

static void
count_dropped(struct ag_otlp *x, size_t n, const char *reason)
{
    x->dropped += n;
    const char *labels[] = { reason };
    ag_counter_add(x->m_dropped, labels, (double)n);
}

static void
sink(const struct ag_span *span, void *udata)
{
    struct ag_otlp *x = udata;
    if (x->closing)
        return;
    size_t mark = x->queue.len;
    if (x->nqueued > 0 && ag_buf_append_char(&x->queue, ',') != 0) {
        count_dropped(x, 1, "queue_full");
        return;
    }
    if (ag_span_to_otlp_json(span, &x->queue) != 0) {
        x->queue.len = mark;
        if (x->queue.data != NULL)
            x->queue.data[mark] = '\0';
        count_dropped(x, 1, "queue_full");
        return;
    }
    x->nqueued++;
    /* Half full: do not wait for the timer. */
    if (!x->inflight && x->queue.len > x->max_bytes / 2)
        ag_otlp_flush(x);
}

static void
on_export(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct ag_otlp *x = udata;
    x->inflight = false;
    if (resp->err == 0 && resp->status >= 200 && resp->status < 300) {
        x->exported += x->ninflight;
        ag_counter_add(x->m_exported, NULL, (double)x->ninflight);
    } else {
        count_dropped(x, x->ninflight, "export_failed");
        if (!x->closing)
            AG_LOGD("otlp", "export of %zu spans failed: %s (status %d)", x->ninflight,
                    resp->err ? ag_strerror(resp->err) : "answer", resp->status);
    }
    x->ninflight = 0;
    ag_buf_reset(&x->body);
    maybe_free(x);
}

void
ag_otlp_flush(struct ag_otlp *x)
{
    if (x == NULL || x->inflight || x->closing || x->nqueued == 0)
        return;
    ag_buf_reset(&x->body);
    ag_buf_append_cstr(&x->body, x->resource);
    ag_buf_append(&x->body, x->queue.data, x->queue.len);
    ag_buf_append_cstr(&x->body, "]}]}]}");
    x->ninflight = x->nqueued;
    x->nqueued = 0;
    ag_buf_reset(&x->queue);
    static const struct ag_http_client_header hdrs[] = {
        { "Content-Type", "application/json" },
    };
    struct ag_http_client_request req = {
        .method = "POST",
        .url = x->url,
        .headers = hdrs,
        .nheaders = AG_ARRAY_SIZE(hdrs),
        .body = x->body.data,
        .body_len = x->body.len,
        .timeout_ms = EXPORT_TIMEOUT_MS,
        .max_retries = -1,
    };
    x->inflight = true;
    int rc = ag_http_client_send(x->client, &req, on_export, x);
    if (rc != 0) {
        x->inflight = false;
        count_dropped(x, x->ninflight, "export_failed");
        x->ninflight = 0;
    }
}

static void
on_timer(uv_timer_t *t)
{
    ag_otlp_flush(t->data);
}

static void
append_attr(struct ag_buf *b, const char *key, const char *value, bool first)
{
    /* Keys and values here are ours: names and ids without quotes. */
    ag_buf_appendf(b, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":\"%s\"}}", first ? "" : ",",
                   key, value);
}

static bool
plain(const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x80)
            return false;
    }
    return true;
}

int
ag_otlp_new(uv_loop_t *loop, struct ag_http_client *client, const struct ag_otlp_config *cfg,
            struct ag_otlp **out)
{
    if (loop == NULL || client == NULL || cfg == NULL || cfg->endpoint == NULL ||
        strncmp(cfg->endpoint, "http://", 7) != 0 || cfg->service_name == NULL ||
        !plain(cfg->service_name) || !plain(cfg->service_instance) ||
        !plain(cfg->service_version) || !plain(cfg->endpoint))
        return AG_EINVAL;
    struct ag_otlp *x = ag_calloc(1, sizeof(*x));
    x->magic = OTLP_MAGIC;
    x->client = client;
    size_t elen = strlen(cfg->endpoint);
    while (elen > 0 && cfg->endpoint[elen - 1] == '/')
        elen--;
    x->url = ag_asprintf("%.*s/v1/traces", (int)elen, cfg->endpoint);
    x->max_bytes = cfg->max_queue_bytes ? cfg->max_queue_bytes : DEFAULT_MAX_BYTES;
    ag_buf_init(&x->queue, x->max_bytes);
    ag_buf_init(&x->body, 0);
    struct ag_buf r = AG_BUF_INIT(0);
    ag_buf_append_cstr(&r, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    append_attr(&r, "service.name", cfg->service_name, true);
    if (cfg->service_instance != NULL && cfg->service_instance[0] != '\0')
        append_attr(&r, "service.instance.id", cfg->service_instance, false);
    if (cfg->service_version != NULL && cfg->service_version[0] != '\0')
        append_attr(&r, "service.version", cfg->service_version, false);
    append_attr(&r, "telemetry.sdk.name", "agora", false);
    append_attr(&r, "telemetry.sdk.language", "c", false);
    ag_buf_append_cstr(&r, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"agora\"},\"spans\":[");
    x->resource = ag_strdup(ag_buf_cstr(&r));
    ag_buf_release(&r);
    if (cfg->metrics != NULL) {
        x->m_exported = ag_metrics_counter(cfg->metrics, "trace_spans_exported_total",
                                           "Spans the collector took", NULL, 0);
        static const char *const reason[] = { "reason" };
        x->m_dropped = ag_metrics_counter(
            cfg->metrics, "trace_spans_dropped_total",
            "Spans dropped: queue_full (the bounded queue), export_failed (collector)", reason, 1);
    }
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    uint64_t every = cfg->flush_ms ? cfg->flush_ms : DEFAULT_FLUSH_MS;
    uv_timer_start(&x->timer, on_timer, every, every);
    uv_unref((uv_handle_t *)&x->timer);
    ag_span_set_sink(sink, x);
    *out = x;
    return 0;
}

void
ag_otlp_stats(const struct ag_otlp *x, uint64_t *exported, uint64_t *dropped, size_t *queued)
{
    *exported = x->exported;
    *dropped = x->dropped;
    *queued = x->nqueued;
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct ag_otlp *x = h->data;
    x->timer_closed = true;
    maybe_free(x);
}

void
ag_otlp_close(struct ag_otlp *x)
{
    if (x == NULL || x->closing)
        return;
    x->closing = true;
    ag_span_set_sink(NULL, NULL);
    if (x->nqueued > 0)
        count_dropped(x, x->nqueued, "export_failed");
    x->nqueued = 0;
    if (x->inflight)
        ag_http_client_cancel(x->client, on_export, x);
    uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}
