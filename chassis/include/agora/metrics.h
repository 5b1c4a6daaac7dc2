/* SPDX-License-Identifier: MIT */
/* Prometheus metrics: a registry of metric families (counters, gauges,
 * histograms) with labelled series, rendered in the text exposition format
 * 0.0.4 for the /metrics endpoint every process serves (DESIGN.md section
 * 3). Series are found by a hash of their label values, so recording costs
 * one lookup under the registry's mutex; any thread may record.
 *
 * Memory is bounded whatever the label values: a family holds at most
 * AG_METRICS_MAX_SERIES series, label values are cut to
 * AG_METRICS_MAX_VALUE bytes and made valid UTF-8. Past the series limit,
 * counter and histogram observations go to one overflow series whose label
 * values are all "__overflow__", gauge updates are dropped, and both are
 * counted in agora_metrics_series_overflow_total{metric="<family>"}. */
#ifndef AG_METRICS_H
#define AG_METRICS_H

#include "agora/base.h"

#include "agora/buf.h"

/* Series per family, the overflow series not included. */
#define AG_METRICS_MAX_SERIES 2000
/* Label names per family. */
#define AG_METRICS_MAX_LABELS 16
/* Buckets per histogram, +Inf not included. */
#define AG_METRICS_MAX_BUCKETS 64
/* Bytes kept of a label value. */
#define AG_METRICS_MAX_VALUE 256

struct ag_metrics; /* a registry: the families one /metrics page shows */
struct ag_metric;  /* one metric family */

/* A new, empty registry; never NULL. Free with ag_metrics_free. */
struct ag_metrics *ag_metrics_new(void);

/* Free 'reg' and every family in it (their ag_metric pointers become
 * invalid). Accepts NULL. No other thread may use 'reg' meanwhile. */
void ag_metrics_free(struct ag_metrics *reg);

/* Register a family in 'reg', or return the existing one of that name.
 *
 * 'name' must match [a-zA-Z_:][a-zA-Z0-9_:]*; counters must end in "_total"
 * (the exposition shows the name as given). 'help' is one line of text
 * (required; newlines and backslashes are escaped). 'label_names' lists
 * 'nlabels' names matching [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"
 * and, for histograms, not "le"; it may be NULL when 'nlabels' is 0.
 * Histogram 'buckets' are 'nbuckets' finite upper bounds in strictly
 * increasing order (+Inf is implicit); NULL means the default latency
 * buckets in seconds: .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
 *
 * Registering a name again returns the existing family when the type,
 * label names (in order) and buckets match. Any other mismatch, a bad name,
 * NULL 'help' or too many labels or buckets is a programmer error: AG_BUG.
 * Families without labels start with their one series at zero.
 *
 * Returns a pointer borrowed from 'reg', valid until ag_metrics_free.
 * Any thread, though registration normally happens at startup. */
struct ag_metric *ag_metrics_counter(struct ag_metrics *reg, const char *name, const char *help,
                                     const char *const *label_names, size_t nlabels);
struct ag_metric *ag_metrics_gauge(struct ag_metrics *reg, const char *name, const char *help,
                                   const char *const *label_names, size_t nlabels);
struct ag_metric *ag_metrics_histogram(struct ag_metrics *reg, const char *name, const char *help,
                                       const char *const *label_names, size_t nlabels,
                                       const double *buckets, size_t nbuckets);

/* Record into the series of 'm' named by 'label_values' (the family's
 * 'nlabels' values in the order of its label names; may be NULL when it has
 * none; a NULL value counts as ""), creating the series on first use.
 * 'm' NULL is a no-op, so optional metrics need no checks. Any thread.
 *
 * ag_counter_add: 'v' must be >= 0 (AG_BUG otherwise); NaN is ignored.
 * ag_gauge_set / ag_gauge_add: set or change the value.
 * ag_histogram_observe: count 'v' in the first bucket whose bound is >= 'v'
 * (and every later one in the cumulative output), add it to _sum. */
void ag_counter_add(struct ag_metric *m, const char *const *label_values, double v);
void ag_gauge_set(struct ag_metric *m, const char *const *label_values, double v);
void ag_gauge_add(struct ag_metric *m, const char *const *label_values, double v);
void ag_histogram_observe(struct ag_metric *m, const char *const *label_values, double v);

/* Called by ag_metrics_render before it renders, to refresh gauges that
 * mirror other state (queue lengths, pool sizes, breaker states). Receives
 * the registry and the 'udata' given at registration. It may record into any
 * family of 'reg' but must not register families or render. */
typedef void (*ag_metrics_collect_fn)(struct ag_metrics *reg, void *udata);

/* Add 'fn' to the callbacks run, in registration order, before each
 * render. 'udata' is borrowed and must outlive 'reg'. */
void ag_metrics_on_collect(struct ag_metrics *reg, ag_metrics_collect_fn fn, void *udata);

/* Register the standard process families, refreshed from /proc/self on each
 * render: process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_cpu_seconds_total, process_open_fds, process_max_fds and
 * process_start_time_seconds. Calling it again does nothing. */
void ag_metrics_add_process(struct ag_metrics *reg);

/* Event loop turns: start recording, on 'loop', the histogram
 * event_loop_busy_seconds (the work of each turn between two waits for
 * I/O, wall time) and the gauge event_loop_busy_max_seconds (the longest
 * turn of the last 10-20 s) into 'reg'. Uses a uv_prepare_t that does not
 * keep the loop alive, and libuv's UV_METRICS_IDLE_TIME. Returns 0 and
 * '*out', or -1 if libuv cannot measure idle time. Loop thread only.
 * ag_loop_metrics_close closes the handle (before the loop's last run);
 * ag_loop_metrics_free frees it, after 'reg' is freed (the collect
 * callback refers to it). Both accept NULL. */
struct uv_loop_s;
struct ag_loop_metrics;
int ag_loop_metrics_start(struct uv_loop_s *loop, struct ag_metrics *reg,
                          struct ag_loop_metrics **out);
void ag_loop_metrics_close(struct ag_loop_metrics *lm);
void ag_loop_metrics_free(struct ag_loop_metrics *lm);

/* Run the collect callbacks, then append the exposition text of every
 * family, in registration order and each family's series in creation order,
 * to 'out'. Returns 0, or AG_ETOOBIG when 'out' reached its maximum, in
 * which case 'out' is left as it was. Content type:
 * "text/plain; version=0.0.4; charset=utf-8". Any thread; records made
 * by other threads meanwhile land before or after, never half-way. */
int ag_metrics_render(struct ag_metrics *reg, struct ag_buf *out);

#endif /* AG_METRICS_H */
