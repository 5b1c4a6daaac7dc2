/* SPDX-License-Identifier: MIT */
/* Unit tests of metrics.c: golden exposition text, number formatting,
 * label escaping and cleaning, bucket cumulation, the series cap,
 * re-registration (and AG_BUG on misuse, in a forked child), collect
 * callbacks, process metrics, thread safety, and promtool's verdict. */
#include "agora/base.h"
#include "agora/metrics.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/log.h"

#define LV(...) ((const char *const[]){ __VA_ARGS__ })

/* Render 'reg' into a fresh buffer; the caller releases it. */
static struct ag_buf
render(struct ag_metrics *reg)
{
    struct ag_buf b = AG_BUF_INIT(0);
    assert_int_equal(ag_metrics_render(reg, &b), 0);
    return b;
}

/* The value of the sample line starting with 'prefix' ("name{...} "). */
static double
sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0)
            return strtod(p + n, NULL);
    }
    fail_msg("no sample '%s' in:\n%s", prefix, text);
    return NAN;
}

static size_t
count_prefix(const char *text, const char *prefix)
{
    size_t n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

/* ---- Tests ---- */

static void
test_golden_small_registry(void **state)
{
    /* Exact text for a counter, a gauge and a histogram with labels. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *c =
        ag_metrics_counter(reg, "http_requests_total", "HTTP requests.", LV("route", "status"), 2);
    struct ag_metric *g = ag_metrics_gauge(reg, "queue_depth", "Items waiting.", NULL, 0);
    struct ag_metric *h = ag_metrics_histogram(reg, "http_request_duration_seconds", "Latency.",
                                               LV("route"), 1, (const double[]){ 0.25, 0.5, 1 }, 3);
    ag_counter_add(c, LV("/v1/a", "200"), 1);
    ag_counter_add(c, LV("/v1/b", "404"), 1);
    ag_counter_add(c, LV("/v1/a", "200"), 2);
    ag_gauge_set(g, NULL, 5);
    ag_gauge_add(g, NULL, -1.5);
    ag_histogram_observe(h, LV("/v1/a"), 0.125);
    ag_histogram_observe(h, LV("/v1/a"), 0.25); /* on a bound: counted in it */
    ag_histogram_observe(h, LV("/v1/a"), 0.375);
    ag_histogram_observe(h, LV("/v1/a"), 2);
    ag_histogram_observe(h, LV("/v1/b"), 0.5);

    struct ag_buf b = render(reg);
    assert_string_equal(ag_buf_cstr(&b),
                        "# HELP http_requests_total HTTP requests.\n"
                        "# TYPE http_requests_total counter\n"
                        "http_requests_total{route=\"/v1/a\",status=\"200\"} 3\n"
                        "http_requests_total{route=\"/v1/b\",status=\"404\"} 1\n"
                        "# HELP queue_depth Items waiting.\n"
                        "# TYPE queue_depth gauge\n"
                        "queue_depth 3.5\n"
                        "# HELP http_request_duration_seconds Latency.\n"
                        "# TYPE http_request_duration_seconds histogram\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/a\",le=\"0.25\"} 2\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/a\",le=\"0.5\"} 3\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/a\",le=\"1\"} 3\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/a\",le=\"+Inf\"} 4\n"
                        "http_request_duration_seconds_sum{route=\"/v1/a\"} 2.75\n"
                        "http_request_duration_seconds_count{route=\"/v1/a\"} 4\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/b\",le=\"0.25\"} 0\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/b\",le=\"0.5\"} 1\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/b\",le=\"1\"} 1\n"
                        "http_request_duration_seconds_bucket{route=\"/v1/b\",le=\"+Inf\"} 1\n"
                        "http_request_duration_seconds_sum{route=\"/v1/b\"} 0.5\n"
                        "http_request_duration_seconds_count{route=\"/v1/b\"} 1\n");
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_unlabelled_families_start_at_zero(void **state)
{
    /* Label-less families render from registration; default buckets. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    ag_metrics_counter(reg, "jobs_total", "Jobs.", NULL, 0);
    ag_metrics_histogram(reg, "job_seconds", "Job time.", NULL, 0, NULL, 0);
    ag_metrics_gauge(reg, "labelled", "Has labels.", LV("x"), 1);
    struct ag_buf b = render(reg);
    const char *want = "# HELP jobs_total Jobs.\n"
                       "# TYPE jobs_total counter\n"
                       "jobs_total 0\n"
                       "# HELP job_seconds Job time.\n"
                       "# TYPE job_seconds histogram\n"
                       "job_seconds_bucket{le=\"0.0005\"} 0\n"
                       "job_seconds_bucket{le=\"0.001\"} 0\n"
                       "job_seconds_bucket{le=\"0.0025\"} 0\n"
                       "job_seconds_bucket{le=\"0.005\"} 0\n"
                       "job_seconds_bucket{le=\"0.01\"} 0\n"
                       "job_seconds_bucket{le=\"0.025\"} 0\n"
                       "job_seconds_bucket{le=\"0.05\"} 0\n"
                       "job_seconds_bucket{le=\"0.1\"} 0\n"
                       "job_seconds_bucket{le=\"0.25\"} 0\n"
                       "job_seconds_bucket{le=\"0.5\"} 0\n"
                       "job_seconds_bucket{le=\"1\"} 0\n"
                       "job_seconds_bucket{le=\"2.5\"} 0\n"
                       "job_seconds_bucket{le=\"5\"} 0\n"
                       "job_seconds_bucket{le=\"10\"} 0\n"
                       "job_seconds_bucket{le=\"+Inf\"} 0\n"
                       "job_seconds_sum 0\n"
                       "job_seconds_count 0\n"
                       "# HELP labelled Has labels.\n"
                       "# TYPE labelled gauge\n";
    assert_string_equal(ag_buf_cstr(&b), want);
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

struct num_case {
    double v;
    const char *want;
};

static void
test_number_format_table(void **state)
{
    /* Integers exactly, otherwise the shortest text that reads back. */
    AG_UNUSED(state);
    static const struct num_case cases[] = {
        { 0, "0" },
        { -0.0, "0" },
        { 42, "42" },
        { -42, "-42" },
        { 123456789012, "123456789012" },
        { 9007199254740992.0, "9007199254740992" },
        { 1e21, "1e+21" },
        { 0.1, "0.1" },
        { 2.5, "2.5" },
        { 1.0 / 3.0, "0.3333333333333333" },
        { 1.5e-7, "1.5e-07" },
        { 0.1 + 0.2, "0.30000000000000004" },
        { INFINITY, "+Inf" },
        { -INFINITY, "-Inf" },
        { NAN, "NaN" },
    };
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *g = ag_metrics_gauge(reg, "g", "G.", LV("i"), 1);
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char idx[8];
        snprintf(idx, sizeof(idx), "%zu", i);
        ag_gauge_set(g, LV(idx), cases[i].v);
    }
    struct ag_buf b = render(reg);
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char line[128];
        snprintf(line, sizeof(line), "g{i=\"%zu\"} %s\n", i, cases[i].want);
        if (strstr(ag_buf_cstr(&b), line) == NULL)
            fail_msg("case %zu: no line '%s' in:\n%s", i, line, ag_buf_cstr(&b));
    }
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_label_escaping_and_cleaning(void **state)
{
    /* \\, \" and \n escaped in values, \\ and \n in HELP; invalid UTF-8,
     * over-long and NULL values cleaned, consistently across lookups. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *c =
        ag_metrics_counter(reg, "esc_total", "Help with \\ and\nnewline \"quotes\".", LV("v"), 1);
    ag_counter_add(c, LV("a\"b\\c\nd"), 1);
    ag_counter_add(c, LV("bad\xff"), 1);
    ag_counter_add(c, LV("bad\xff"), 1);
    ag_counter_add(c, LV(NULL), 1);
    ag_counter_add(c, LV(""), 1);

    static char longv[1000];
    memset(longv, 'x', sizeof(longv) - 1);
    ag_counter_add(c, LV(longv), 1);
    longv[500] = 'y'; /* differs only past the cut: the same series */
    ag_counter_add(c, LV(longv), 1);

    struct ag_buf b = render(reg);
    const char *t = ag_buf_cstr(&b);
    assert_non_null(
        strstr(t, "# HELP esc_total Help with \\\\ and\\nnewline \"quotes\".\n# TYPE esc_total"));
    assert_non_null(strstr(t, "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    assert_non_null(strstr(t, "esc_total{v=\"bad\xEF\xBF\xBD\"} 2\n"));
    assert_non_null(strstr(t, "esc_total{v=\"\"} 2\n"));
    char want[400];
    snprintf(want, sizeof(want), "esc_total{v=\"%.*s\"} 2\n", AG_METRICS_MAX_VALUE, longv);
    assert_non_null(strstr(t, want));
    assert_int_equal(count_prefix(t, "esc_total{"), 4);
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_histogram_cumulation(void **state)
{
    /* Buckets are cumulative; NaN and +Inf land only in +Inf. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *h = ag_metrics_histogram(reg, "size_bytes", "Sizes.", NULL, 0,
                                               (const double[]){ 1, 10, 100 }, 3);
    static const double obs[] = { 0, 1, 1.5, 10, 11, 99, 100, 101, 1e9, INFINITY, -5 };
    for (size_t i = 0; i < AG_ARRAY_SIZE(obs); i++)
        ag_histogram_observe(h, NULL, obs[i]);
    struct ag_buf b = render(reg);
    const char *t = ag_buf_cstr(&b);
    assert_true(sample(t, "size_bytes_bucket{le=\"1\"} ") == 3);
    assert_true(sample(t, "size_bytes_bucket{le=\"10\"} ") == 5);
    assert_true(sample(t, "size_bytes_bucket{le=\"100\"} ") == 8);
    assert_true(sample(t, "size_bytes_bucket{le=\"+Inf\"} ") == 11);
    assert_true(sample(t, "size_bytes_count ") == 11);
    assert_non_null(strstr(t, "size_bytes_sum +Inf\n"));
    ag_buf_release(&b);

    ag_histogram_observe(h, NULL, NAN);
    b = render(reg);
    t = ag_buf_cstr(&b);
    assert_true(sample(t, "size_bytes_bucket{le=\"100\"} ") == 8);
    assert_true(sample(t, "size_bytes_bucket{le=\"+Inf\"} ") == 12);
    assert_non_null(strstr(t, "size_bytes_sum NaN\n"));
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_series_cap(void **state)
{
    /* Past AG_METRICS_MAX_SERIES, counters and histograms use one overflow
     * series, gauges drop, and the registry counts both; known series keep
     * working. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *c = ag_metrics_counter(reg, "hits_total", "Hits.", LV("path", "m"), 2);
    struct ag_metric *g = ag_metrics_gauge(reg, "temp", "Temp.", LV("path"), 1);
    struct ag_metric *h = ag_metrics_histogram(reg, "lat_seconds", "Lat.", LV("path"), 1, NULL, 0);
    size_t extra = 150;
    for (size_t i = 0; i < AG_METRICS_MAX_SERIES + extra; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/p/%zu", i);
        ag_counter_add(c, LV(p, "GET"), 1);
        ag_gauge_set(g, LV(p), (double)i);
        ag_histogram_observe(h, LV(p), 0.001);
    }
    ag_counter_add(c, LV("/p/0", "GET"), 1);
    ag_gauge_set(g, LV("/p/1"), -1);

    struct ag_buf b = render(reg);
    const char *t = ag_buf_cstr(&b);
    assert_int_equal(count_prefix(t, "hits_total{"), AG_METRICS_MAX_SERIES + 1);
    assert_int_equal(count_prefix(t, "temp{"), AG_METRICS_MAX_SERIES);
    assert_int_equal(count_prefix(t, "lat_seconds_count{"), AG_METRICS_MAX_SERIES + 1);
    assert_true(sample(t, "hits_total{path=\"__overflow__\",m=\"__overflow__\"} ") == extra);
    assert_true(sample(t, "lat_seconds_count{path=\"__overflow__\"} ") == extra);
    assert_true(sample(t, "hits_total{path=\"/p/0\",m=\"GET\"} ") == 2);
    assert_true(sample(t, "temp{path=\"/p/1\"} ") == -1);
    assert_null(strstr(t, "temp{path=\"/p/2001\"}"));
    assert_true(sample(t, "agora_metrics_series_overflow_total{metric=\"hits_total\"} ") == extra);
    assert_true(sample(t, "agora_metrics_series_overflow_total{metric=\"temp\"} ") == extra);
    assert_true(sample(t, "agora_metrics_series_overflow_total{metric=\"lat_seconds\"} ") == extra);
    assert_int_equal(count_prefix(t, "# TYPE agora_metrics_series_overflow_total counter"), 1);
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_reregistration(void **state)
{
    /* Same name, type, labels and buckets: the same family. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *a = ag_metrics_counter(reg, "x_total", "X.", LV("a", "b"), 2);
    struct ag_metric *b = ag_metrics_counter(reg, "x_total", "Other help.", LV("a", "b"), 2);
    assert_ptr_equal(a, b);
    struct ag_metric *h1 = ag_metrics_histogram(reg, "h_seconds", "H.", NULL, 0, NULL, 0);
    struct ag_metric *h2 = ag_metrics_histogram(reg, "h_seconds", "H.", NULL, 0, NULL, 0);
    assert_ptr_equal(h1, h2);
    ag_counter_add(a, LV("1", "2"), 1);
    ag_counter_add(b, LV("1", "2"), 1);
    struct ag_buf buf = render(reg);
    assert_true(sample(ag_buf_cstr(&buf), "x_total{a=\"1\",b=\"2\"} ") == 2);
    assert_int_equal(count_prefix(ag_buf_cstr(&buf), "# HELP x_total X.\n"), 1);
    ag_buf_release(&buf);
    ag_metrics_free(reg);
}

/* ---- Programmer errors abort (checked in a child process) ---- */

enum misuse {
    MISUSE_TYPE_CHANGE = 0,
    MISUSE_LABEL_CHANGE,
    MISUSE_BUCKET_CHANGE,
    MISUSE_BAD_NAME,
    MISUSE_BAD_NAME_DASH,
    MISUSE_COUNTER_SUFFIX,
    MISUSE_RESERVED_LABEL,
    MISUSE_LE_LABEL,
    MISUSE_DUP_LABEL,
    MISUSE_BUCKET_ORDER,
    MISUSE_NULL_HELP,
    MISUSE_RESERVED_NAME,
    MISUSE_NEGATIVE_COUNTER,
    MISUSE_WRONG_KIND,
    MISUSE_COUNT,
};

static void
misuse(enum misuse which)
{
    struct ag_metrics *reg = ag_metrics_new();
    struct ag_metric *c = ag_metrics_counter(reg, "c_total", "C.", LV("a"), 1);
    ag_metrics_histogram(reg, "h_seconds", "H.", NULL, 0, NULL, 0);
    switch (which) {
    case MISUSE_TYPE_CHANGE: ag_metrics_gauge(reg, "c_total", "C.", LV("a"), 1); break;
    case MISUSE_LABEL_CHANGE: ag_metrics_counter(reg, "c_total", "C.", LV("b"), 1); break;
    case MISUSE_BUCKET_CHANGE:
        ag_metrics_histogram(reg, "h_seconds", "H.", NULL, 0, (const double[]){ 1 }, 1);
        break;
    case MISUSE_BAD_NAME: ag_metrics_gauge(reg, "1abc", "X.", NULL, 0); break;
    case MISUSE_BAD_NAME_DASH: ag_metrics_gauge(reg, "a-b", "X.", NULL, 0); break;
    case MISUSE_COUNTER_SUFFIX: ag_metrics_counter(reg, "requests", "X.", NULL, 0); break;
    case MISUSE_RESERVED_LABEL: ag_metrics_gauge(reg, "g", "X.", LV("__name"), 1); break;
    case MISUSE_LE_LABEL: ag_metrics_histogram(reg, "h2", "X.", LV("le"), 1, NULL, 0); break;
    case MISUSE_DUP_LABEL: ag_metrics_gauge(reg, "g", "X.", LV("a", "a"), 2); break;
    case MISUSE_BUCKET_ORDER:
        ag_metrics_histogram(reg, "h3", "X.", NULL, 0, (const double[]){ 1, 1 }, 2);
        break;
    case MISUSE_NULL_HELP: ag_metrics_gauge(reg, "g", NULL, NULL, 0); break;
    case MISUSE_RESERVED_NAME:
        ag_metrics_counter(reg, "agora_metrics_series_overflow_total", "X.", NULL, 0);
        break;
    case MISUSE_NEGATIVE_COUNTER: ag_counter_add(c, LV("x"), -1); break;
    case MISUSE_WRONG_KIND: ag_gauge_set(c, LV("x"), 1); break;
    case MISUSE_COUNT: break;
    }
    ag_metrics_free(reg);
}

static void
test_misuse_aborts(void **state)
{
    /* Each programmer error ends in AG_BUG (abort), never silently. */
    AG_UNUSED(state);
    for (int i = 0; i < MISUSE_COUNT; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid != -1);
        if (pid == 0) {
            ag_log_set_level(AG_LOG_OFF);
            /* Silence the expected BUG report. */
            if (freopen("/dev/null", "w", stderr) == NULL)
                _exit(3);
            ag_log_set_fd(2);
            misuse((enum misuse)i);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("misuse %d did not abort (status %d)", i, status);
    }
}

/* ---- Collect callbacks and process metrics ---- */

static void
collect_queue(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    int *calls = udata;
    (*calls)++;
}

struct queue_ctx {
    struct ag_metric *depth;
    int calls;
};

static void
collect_depth(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(reg);
    struct queue_ctx *q = udata;
    q->calls++;
    ag_gauge_set(q->depth, NULL, q->calls * 10);
}

static void
test_collect_callbacks(void **state)
{
    /* Callbacks run once per render, in order, before the text is made. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct queue_ctx q = { ag_metrics_gauge(reg, "queue_depth", "Depth.", NULL, 0), 0 };
    int calls = 0;
    ag_metrics_on_collect(reg, collect_queue, &calls);
    ag_metrics_on_collect(reg, collect_depth, &q);
    struct ag_buf b = render(reg);
    assert_true(sample(ag_buf_cstr(&b), "queue_depth ") == 10);
    ag_buf_release(&b);
    b = render(reg);
    assert_true(sample(ag_buf_cstr(&b), "queue_depth ") == 20);
    ag_buf_release(&b);
    assert_int_equal(calls, 2);
    assert_int_equal(q.calls, 2);
    ag_metrics_free(reg);
}

static void
test_process_metrics(void **state)
{
    /* The process families exist once and hold plausible values. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    ag_metrics_add_process(reg);
    ag_metrics_add_process(reg);
    struct ag_buf b = render(reg);
    const char *t = ag_buf_cstr(&b);
    assert_int_equal(count_prefix(t, "# TYPE process_"), 6);
    assert_true(sample(t, "process_resident_memory_bytes ") > 1024 * 1024);
    assert_true(sample(t, "process_virtual_memory_bytes ") >
                sample(t, "process_resident_memory_bytes "));
    assert_true(sample(t, "process_open_fds ") >= 3);
    assert_true(sample(t, "process_max_fds ") >= sample(t, "process_open_fds "));
    assert_true(sample(t, "process_cpu_seconds_total ") >= 0);
    double start = sample(t, "process_start_time_seconds ");
    double now = (double)time(NULL);
    assert_true(start <= now + 1 && start > now - 3600);
    assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

static void
test_render_too_big(void **state)
{
    /* A bounded buffer that cannot hold the page is left unchanged. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    ag_metrics_histogram(reg, "h_seconds", "H.", NULL, 0, NULL, 0);
    struct ag_buf b = AG_BUF_INIT(100);
    ag_buf_append_cstr(&b, "keep");
    assert_int_equal(ag_metrics_render(reg, &b), AG_ETOOBIG);
    assert_string_equal(ag_buf_cstr(&b), "keep");
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

/* ---- Threads ---- */

struct worker {
    struct ag_metric *c;
    struct ag_metric *h;
    int id;
};

static void *
work(void *arg)
{
    struct worker *w = arg;
    char label[8];
    snprintf(label, sizeof(label), "%d", w->id % 2);
    for (int i = 0; i < 20000; i++) {
        ag_counter_add(w->c, LV(label), 1);
        ag_histogram_observe(w->h, NULL, 0.01);
    }
    return NULL;
}

static void
test_concurrent_recording(void **state)
{
    /* Four threads recording at once lose no observation. */
    AG_UNUSED(state);
    struct ag_metrics *reg = ag_metrics_new();
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i].c = ag_metrics_counter(reg, "ops_total", "Ops.", LV("shard"), 1);
        w[i].h = ag_metrics_histogram(reg, "op_seconds", "Op time.", NULL, 0, NULL, 0);
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct ag_buf b = render(reg);
    const char *t = ag_buf_cstr(&b);
    assert_true(sample(t, "ops_total{shard=\"0\"} ") == 40000);
    assert_true(sample(t, "ops_total{shard=\"1\"} ") == 40000);
    assert_true(sample(t, "op_seconds_count ") == 80000);
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

/* ---- promtool ---- */

static void
test_promtool_accepts_output(void **state)
{
    /* `promtool check metrics` accepts a full page, process metrics
     * included, with no lint complaints. Fails if promtool is missing. */
    AG_UNUSED(state);
    const char *promtool = "/usr/bin/promtool";
    if (access(promtool, X_OK) != 0)
        fail_msg("promtool not found at %s (Debian package 'prometheus')", promtool);

    struct ag_metrics *reg = ag_metrics_new();
    ag_metrics_add_process(reg);
    struct ag_metric *c = ag_metrics_counter(reg, "agora_http_requests_total",
                                             "HTTP requests by route, method and status.",
                                             LV("route", "method", "status"), 3);
    struct ag_metric *h =
        ag_metrics_histogram(reg, "agora_http_request_duration_seconds",
                             "HTTP request latency in seconds.", LV("route", "method"), 2, NULL, 0);
    struct ag_metric *g =
        ag_metrics_gauge(reg, "agora_outbox_pending", "Outbox rows pending.", NULL, 0);
    struct ag_metric *s =
        ag_metrics_histogram(reg, "agora_http_response_size_bytes", "Response sizes in bytes.",
                             NULL, 0, (const double[]){ 100, 1000, 10000 }, 3);
    ag_counter_add(c, LV("/v1/products/{id}", "GET", "200"), 3);
    ag_counter_add(c, LV("weird \"route\"\\\n\xff", "POST", "422"), 1);
    ag_histogram_observe(h, LV("/v1/products/{id}", "GET"), 0.0042);
    ag_histogram_observe(h, LV("/v1/products/{id}", "GET"), 12);
    ag_gauge_set(g, NULL, 7);
    ag_histogram_observe(s, NULL, 512);
    /* Force an overflow so that family is checked too. */
    struct ag_metric *many = ag_metrics_counter(reg, "agora_many_total", "Many.", LV("k"), 1);
    for (int i = 0; i < AG_METRICS_MAX_SERIES + 2; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        ag_counter_add(many, LV(k), 1);
    }

    struct ag_buf b = render(reg);
    char path[] = "/tmp/agora-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd != -1);
    assert_int_equal(write(fd, ag_buf_cstr(&b), b.len), (ssize_t)b.len);
    close(fd);
    ag_buf_release(&b);
    ag_metrics_free(reg);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s check metrics < %s 2>&1", promtool, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != 0)
        fail_msg("promtool check metrics failed (status %d):\n%s", status, out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_small_registry),
        cmocka_unit_test(test_unlabelled_families_start_at_zero),
        cmocka_unit_test(test_number_format_table),
        cmocka_unit_test(test_label_escaping_and_cleaning),
        cmocka_unit_test(test_histogram_cumulation),
        cmocka_unit_test(test_series_cap),
        cmocka_unit_test(test_reregistration),
        cmocka_unit_test(test_misuse_aborts),
        cmocka_unit_test(test_collect_callbacks),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_render_too_big),
        cmocka_unit_test(test_concurrent_recording),
        cmocka_unit_test(test_promtool_accepts_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
