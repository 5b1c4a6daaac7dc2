/* SPDX-License-Identifier: MIT */
/* Prometheus registry and text exposition (format 0.0.4). Series live in a
 * per-family chained hash table keyed by the joined label values, behind
 * one mutex per registry; the standard process_* families are read from
 * /proc/self at render time. */
#include "agora/base.h"
#include "agora/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/log.h"
#include "agora/mem.h"

#define REG_MAGIC    0x4d524547u /* "MREG" */
#define METRIC_MAGIC 0x4d46414du /* "MFAM" */

#define OVERFLOW_FAMILY "agora_metrics_series_overflow_total"
#define OVERFLOW_VALUE  "__overflow__"

enum kind {
    KIND_COUNTER = 0,
    KIND_GAUGE,
    KIND_HISTOGRAM,
};

static const char *const kind_names[] = { "counter", "gauge", "histogram" };

static const double default_buckets[] = { .0005, .001, .0025, .005, .01, .025, .05,
                                          .1,    .25,  .5,    1,    2.5, 5,    10 };

struct series {
    struct series *hnext; /* next in the hash chain */
    struct series *next;  /* next in creation order */
    uint64_t hash;        /* of the label values */
    char **values;        /* the family's nlabels values, owned */
    double value;         /* counter or gauge value */
    double sum;           /* histogram: sum of observations */
    uint64_t count;       /* histogram: number of observations */
    uint64_t *counts;     /* histogram: per-bucket (not cumulative), nbounds + 1 */
};

struct ag_metric {
    uint32_t magic;          /* METRIC_MAGIC */
    enum kind kind;          /* counter, gauge or histogram */
    struct ag_metrics *reg;  /* owning registry, for its lock */
    struct ag_metric *next;  /* next family in registration order */
    char *name;              /* owned */
    char *help;              /* owned */
    char **labels;           /* nlabels owned names */
    size_t nlabels;          /* label names */
    double *bounds;          /* histogram bucket bounds, owned */
    size_t nbounds;          /* entries in bounds */
    struct series **table;   /* hash buckets, tsize entries (a power of two) */
    size_t tsize;            /* buckets in table */
    struct series *first;    /* creation order */
    struct series *last;     /* to append */
    size_t nseries;          /* in the table */
    struct series *overflow; /* past AG_METRICS_MAX_SERIES, or NULL */
    uint64_t overflowed;     /* observations redirected or dropped */
};

struct collector {
    ag_metrics_collect_fn fn; /* callback */
    void *udata;              /* its argument */
};

struct ag_metrics {
    uint32_t magic;               /* REG_MAGIC */
    pthread_mutex_t lock;         /* guards everything below */
    struct ag_metric *first;      /* families in registration order */
    struct ag_metric *last;       /* to append */
    struct collector *collectors; /* ncollectors entries */
    size_t ncollectors;           /* registered callbacks */
    uint64_t seed;                /* hash seed, random per registry */
    bool has_process;             /* ag_metrics_add_process ran */
    double start_time;            /* process start, Unix seconds */
    struct ag_metric *p_rss;      /* process_resident_memory_bytes */
    struct ag_metric *p_vms;      /* process_virtual_memory_bytes */
    struct ag_metric *p_cpu;      /* process_cpu_seconds_total */
    struct ag_metric *p_fds;      /* process_open_fds */
    struct ag_metric *p_max_fds;  /* process_max_fds */
    struct ag_metric *p_start;    /* process_start_time_seconds */
};

/* ---- Names and values ---- */

static bool
valid_name(const char *s, bool colon_ok)
{
    if (s == NULL || *s == '\0')
        return false;
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Return 'v' itself when it is valid UTF-8 of at most AG_METRICS_MAX_VALUE
 * bytes, else a cleaned copy in 'tmp' (AG_METRICS_MAX_VALUE + 1 bytes): cut
 * at a character boundary, invalid bytes replaced by U+FFFD. Lookups and
 * stored series both use the cleaned form, so they always agree. */
static const char *
label_norm(const char *v, char *tmp)
{
    if (v == NULL)
        return "";
    size_t i = 0;
    bool clean = true;
    while (v[i] != '\0') {
        if (i >= AG_METRICS_MAX_VALUE) {
            clean = false;
            break;
        }
        if ((unsigned char)v[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = ag_utf8_next(v + i, strnlen(v + i, 4), &cp);
        if (n == 0) {
            clean = false;
            break;
        }
        i += n;
    }
    if (clean && i <= AG_METRICS_MAX_VALUE)
        return v;

    /* No more input than output room is ever needed. */
    size_t len = strnlen(v, AG_METRICS_MAX_VALUE + 4);
    size_t o = 0;
    i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = ag_utf8_next(v + i, len - i, &cp);
        const char *src = v + i;
        size_t w = n;
        if (n == 0) {
            src = "\xEF\xBF\xBD";
            w = 3;
            n = 1;
        }
        if (o + w > AG_METRICS_MAX_VALUE)
            break;
        memcpy(tmp + o, src, w);
        o += w;
        i += n;
    }
    tmp[o] = '\0';
    return tmp;
}

static uint64_t
hash_values(uint64_t seed, const char *const *values, size_t n)
{
    /* FNV-1a; each value ends with 0xff, a byte valid UTF-8 never holds. */
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
            h ^= *p;
            h *= 0x100000001b3u;
        }
        h ^= 0xff;
        h *= 0x100000001b3u;
    }
    return h;
}

/* ---- Registry ---- */

struct ag_metrics *
ag_metrics_new(void)
{
    struct ag_metrics *reg = ag_calloc(1, sizeof(*reg));
    reg->magic = REG_MAGIC;
    pthread_mutex_init(&reg->lock, NULL);
    if (getrandom(&reg->seed, sizeof(reg->seed), GRND_NONBLOCK) != (ssize_t)sizeof(reg->seed))
        reg->seed = (uint64_t)(uintptr_t)reg ^ (uint64_t)time(NULL);
    return reg;
}

static void
series_free(struct series *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        ag_free(s->values[i]);
    ag_free(s->values);
    ag_free(s->counts);
    ag_free(s);
}

static void
metric_free(struct ag_metric *m)
{
    struct series *s = m->first;
    while (s != NULL) {
        struct series *next = s->next;
        series_free(s, m->nlabels);
        s = next;
    }
    if (m->overflow != NULL)
        series_free(m->overflow, m->nlabels);
    for (size_t i = 0; i < m->nlabels; i++)
        ag_free(m->labels[i]);
    ag_free(m->labels);
    ag_free(m->bounds);
    ag_free(m->table);
    ag_free(m->name);
    ag_free(m->help);
    m->magic = 0;
    ag_free(m);
}

void
ag_metrics_free(struct ag_metrics *reg)
{
    if (reg == NULL)
        return;
    AG_CHECK_MAGIC(reg, REG_MAGIC);
    struct ag_metric *m = reg->first;
    while (m != NULL) {
        struct ag_metric *next = m->next;
        metric_free(m);
        m = next;
    }
    ag_free(reg->collectors);
    pthread_mutex_destroy(&reg->lock);
    reg->magic = 0;
    ag_free(reg);
}

/* A new series for the cleaned 'values'; not linked anywhere yet. */
static struct series *
series_new(const struct ag_metric *m, const char *const *values, uint64_t hash)
{
    struct series *s = ag_calloc(1, sizeof(*s));
    s->hash = hash;
    s->values = ag_calloc(m->nlabels ? m->nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < m->nlabels; i++)
        s->values[i] = ag_strdup(values[i]);
    if (m->kind == KIND_HISTOGRAM)
        s->counts = ag_calloc(m->nbounds + 1, sizeof(uint64_t));
    return s;
}

static void
table_grow(struct ag_metric *m)
{
    size_t nsize = m->tsize ? m->tsize * 2 : 16;
    struct series **nt = ag_calloc(nsize, sizeof(*nt));
    for (struct series *s = m->first; s != NULL; s = s->next) {
        size_t b = (size_t)(s->hash & (nsize - 1));
        s->hnext = nt[b];
        nt[b] = s;
    }
    ag_free(m->table);
    m->table = nt;
    m->tsize = nsize;
}

static struct series *
series_insert(struct ag_metric *m, const char *const *values, uint64_t hash)
{
    struct series *s = series_new(m, values, hash);
    if (m->last != NULL)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    m->nseries++;
    if (m->nseries > m->tsize) {
        table_grow(m); /* relinks every series, 's' included */
    } else {
        size_t b = (size_t)(hash & (m->tsize - 1));
        s->hnext = m->table[b];
        m->table[b] = s;
    }
    return s;
}

/* The series for 'label_values', created if needed; NULL when the update
 * must be dropped (a gauge past the series limit). Called locked. */
static struct series *
series_get(struct ag_metric *m, const char *const *label_values)
{
    if (m->nlabels == 0)
        return m->first;
    if (label_values == NULL)
        AG_BUG("metric with labels recorded without label values");

    char tmp[AG_METRICS_MAX_LABELS][AG_METRICS_MAX_VALUE + 1];
    const char *norm[AG_METRICS_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++)
        norm[i] = label_norm(label_values[i], tmp[i]);
    uint64_t h = hash_values(m->reg->seed, norm, m->nlabels);

    for (struct series *s = m->table[h & (m->tsize - 1)]; s != NULL; s = s->hnext) {
        if (s->hash != h)
            continue;
        size_t i = 0;
        while (i < m->nlabels && strcmp(s->values[i], norm[i]) == 0)
            i++;
        if (i == m->nlabels)
            return s;
    }
    if (m->nseries < AG_METRICS_MAX_SERIES)
        return series_insert(m, norm, h);

    m->overflowed++;
    if (m->kind == KIND_GAUGE)
        return NULL;
    if (m->overflow == NULL) {
        for (size_t i = 0; i < m->nlabels; i++)
            norm[i] = OVERFLOW_VALUE;
        m->overflow = series_new(m, norm, 0);
    }
    return m->overflow;
}

static bool
same_labels(const struct ag_metric *m, const char *const *names, size_t n)
{
    if (m->nlabels != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m->labels[i], names[i]) != 0)
            return false;
    }
    return true;
}

static bool
same_bounds(const struct ag_metric *m, const double *b, size_t n)
{
    if (m->nbounds != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (m->bounds[i] != b[i])
            return false;
    }
    return true;
}

/* Programmer errors at registration: say which family, then abort. */
AG_NORETURN static void
bad_family(const char *name, const char *why)
{
    ag__log(AG_LOG_ERROR, "metrics", "cannot register metric '%s': %s", name ? name : "(null)",
            why);
    AG_BUG("bad metric registration (see the previous log line)");
}

static struct ag_metric *
family_register(struct ag_metrics *reg, enum kind kind, const char *name, const char *help,
                const char *const *labels, size_t nlabels, const double *bounds, size_t nbounds)
{
    AG_CHECK_MAGIC(reg, REG_MAGIC);
    if (!valid_name(name, true))
        bad_family(name, "invalid name");
    if (strcmp(name, OVERFLOW_FAMILY) == 0)
        bad_family(name, "name reserved by the registry");
    if (kind == KIND_COUNTER && !has_suffix(name, "_total"))
        bad_family(name, "counter names must end in _total");
    if (help == NULL)
        bad_family(name, "help text is required");
    if (nlabels > AG_METRICS_MAX_LABELS || (nlabels > 0 && labels == NULL))
        bad_family(name, "too many labels, or label names missing");
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0)
            bad_family(name, "invalid label name");
        if (kind == KIND_HISTOGRAM && strcmp(labels[i], "le") == 0)
            bad_family(name, "histograms cannot have a label named le");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[i], labels[j]) == 0)
                bad_family(name, "duplicate label name");
        }
    }
    if (kind == KIND_HISTOGRAM) {
        if (bounds == NULL) {
            bounds = default_buckets;
            nbounds = AG_ARRAY_SIZE(default_buckets);
        }
        if (nbounds == 0 || nbounds > AG_METRICS_MAX_BUCKETS)
            bad_family(name, "histograms need 1 to AG_METRICS_MAX_BUCKETS buckets");
        for (size_t i = 0; i < nbounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                bad_family(name, "bucket bounds must be finite and strictly increasing");
        }
    }

    pthread_mutex_lock(&reg->lock);
    for (struct ag_metric *m = reg->first; m != NULL; m = m->next) {
        if (strcmp(m->name, name) != 0)
            continue;
        bool same = m->kind == kind && same_labels(m, labels, nlabels) &&
                    (kind != KIND_HISTOGRAM || same_bounds(m, bounds, nbounds));
        pthread_mutex_unlock(&reg->lock);
        if (!same)
            bad_family(name, "registered before with another type, labels or buckets");
        return m;
    }

    struct ag_metric *m = ag_calloc(1, sizeof(*m));
    m->magic = METRIC_MAGIC;
    m->kind = kind;
    m->reg = reg;
    m->name = ag_strdup(name);
    m->help = ag_strdup(help);
    m->nlabels = nlabels;
    m->labels = ag_calloc(nlabels ? nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < nlabels; i++)
        m->labels[i] = ag_strdup(labels[i]);
    if (kind == KIND_HISTOGRAM) {
        m->nbounds = nbounds;
        m->bounds = ag_malloc(nbounds * sizeof(double));
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
    }
    table_grow(m);
    if (nlabels == 0)
        series_insert(m, NULL, 0);
    if (reg->last != NULL)
        reg->last->next = m;
    else
        reg->first = m;
    reg->last = m;
    pthread_mutex_unlock(&reg->lock);
    return m;
}

struct ag_metric *
ag_metrics_counter(struct ag_metrics *reg, const char *name, const char *help,
                   const char *const *label_names, size_t nlabels)
{
    return family_register(reg, KIND_COUNTER, name, help, label_names, nlabels, NULL, 0);
}

struct ag_metric *
ag_metrics_gauge(struct ag_metrics *reg, const char *name, const char *help,
                 const char *const *label_names, size_t nlabels)
{
    return family_register(reg, KIND_GAUGE, name, help, label_names, nlabels, NULL, 0);
}

struct ag_metric *
ag_metrics_histogram(struct ag_metrics *reg, const char *name, const char *help,
                     const char *const *label_names, size_t nlabels, const double *buckets,
                     size_t nbuckets)
{
    return family_register(reg, KIND_HISTOGRAM, name, help, label_names, nlabels, buckets,
                           nbuckets);
}

/* ---- Recording ---- */

static void
check_kind(const struct ag_metric *m, enum kind kind)
{
    AG_CHECK_MAGIC(m, METRIC_MAGIC);
    if (m->kind != kind)
        AG_BUG("metric recorded with the function of another type");
}

void
ag_counter_add(struct ag_metric *m, const char *const *label_values, double v)
{
    if (m == NULL || isnan(v))
        return;
    check_kind(m, KIND_COUNTER);
    if (v < 0)
        AG_BUG("counters cannot decrease");
    pthread_mutex_lock(&m->reg->lock);
    struct series *s = series_get(m, label_values);
    s->value += v;
    pthread_mutex_unlock(&m->reg->lock);
}

static void
gauge_update(struct ag_metric *m, const char *const *label_values, double v, bool add)
{
    if (m == NULL)
        return;
    check_kind(m, KIND_GAUGE);
    pthread_mutex_lock(&m->reg->lock);
    struct series *s = series_get(m, label_values);
    if (s != NULL)
        s->value = add ? s->value + v : v;
    pthread_mutex_unlock(&m->reg->lock);
}

void
ag_gauge_set(struct ag_metric *m, const char *const *label_values, double v)
{
    gauge_update(m, label_values, v, false);
}

void
ag_gauge_add(struct ag_metric *m, const char *const *label_values, double v)
{
    gauge_update(m, label_values, v, true);
}

void
ag_histogram_observe(struct ag_metric *m, const char *const *label_values, double v)
{
    if (m == NULL)
        return;
    check_kind(m, KIND_HISTOGRAM);
    /* Binary search for the first bound >= v; NaN lands in +Inf. */
    size_t lo = 0;
    size_t hi = m->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v))
        lo = m->nbounds;
    pthread_mutex_lock(&m->reg->lock);
    struct series *s = series_get(m, label_values);
    s->counts[lo]++;
    s->count++;
    s->sum += v;
    pthread_mutex_unlock(&m->reg->lock);
}

/* Set a label-less family's value directly (process collector only). */
static void
set_plain(struct ag_metric *m, double v)
{
    pthread_mutex_lock(&m->reg->lock);
    m->first->value = v;
    pthread_mutex_unlock(&m->reg->lock);
}

void
ag_metrics_on_collect(struct ag_metrics *reg, ag_metrics_collect_fn fn, void *udata)
{
    AG_CHECK_MAGIC(reg, REG_MAGIC);
    if (fn == NULL)
        AG_BUG("ag_metrics_on_collect needs a callback");
    pthread_mutex_lock(&reg->lock);
    reg->collectors =
        ag_realloc(reg->collectors, (reg->ncollectors + 1) * sizeof(*reg->collectors));
    reg->collectors[reg->ncollectors].fn = fn;
    reg->collectors[reg->ncollectors].udata = udata;
    reg->ncollectors++;
    pthread_mutex_unlock(&reg->lock);
}

/* ---- Process metrics ---- */

/* Read a small /proc file into 'buf' (NUL-terminated); bytes read or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

struct proc_stat {
    double utime_ticks;     /* field 14 */
    double stime_ticks;     /* field 15 */
    double starttime_ticks; /* field 22, since boot */
    double vsize;           /* field 23, bytes */
    double rss_pages;       /* field 24 */
};

static bool
read_proc_stat(struct proc_stat *ps)
{
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) <= 0)
        return false;
    /* The command name (field 2) may hold spaces and parentheses: fields
     * resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    p++;
    memset(ps, 0, sizeof(*ps));
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        char *end;
        double v = strtod(p, &end);
        if (end == p && field != 3)
            return false;
        if (field == 3) {
            while (*p != '\0' && *p != ' ')
                p++;
            continue;
        }
        p = end;
        switch (field) {
        case 14: ps->utime_ticks = v; break;
        case 15: ps->stime_ticks = v; break;
        case 22: ps->starttime_ticks = v; break;
        case 23: ps->vsize = v; break;
        case 24: ps->rss_pages = v; break;
        default: break;
        }
    }
    return true;
}

static double
boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return 0;
    /* Long lines (intr) arrive in pieces; only line starts say "btime". */
    char line[512];
    double bt = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(f);
    return bt;
}

static double
count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the descriptor opendir used */
}

static void
collect_process(struct ag_metrics *reg, void *udata)
{
    AG_UNUSED(udata);
    struct proc_stat ps;
    if (read_proc_stat(&ps)) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        double page = (double)sysconf(_SC_PAGESIZE);
        set_plain(reg->p_cpu, (ps.utime_ticks + ps.stime_ticks) / (tick > 0 ? tick : 100));
        set_plain(reg->p_vms, ps.vsize);
        set_plain(reg->p_rss, ps.rss_pages * page);
    }
    set_plain(reg->p_fds, count_open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        set_plain(reg->p_max_fds, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    set_plain(reg->p_start, reg->start_time);
}

void
ag_metrics_add_process(struct ag_metrics *reg)
{
    AG_CHECK_MAGIC(reg, REG_MAGIC);
    pthread_mutex_lock(&reg->lock);
    bool had = reg->has_process;
    reg->has_process = true;
    pthread_mutex_unlock(&reg->lock);
    if (had)
        return;

    reg->p_cpu = ag_metrics_counter(reg, "process_cpu_seconds_total",
                                    "Total user and system CPU time spent in seconds.", NULL, 0);
    reg->p_fds =
        ag_metrics_gauge(reg, "process_open_fds", "Number of open file descriptors.", NULL, 0);
    reg->p_max_fds = ag_metrics_gauge(reg, "process_max_fds",
                                      "Maximum number of open file descriptors.", NULL, 0);
    reg->p_vms = ag_metrics_gauge(reg, "process_virtual_memory_bytes",
                                  "Virtual memory size in bytes.", NULL, 0);
    reg->p_rss = ag_metrics_gauge(reg, "process_resident_memory_bytes",
                                  "Resident memory size in bytes.", NULL, 0);
    reg->p_start =
        ag_metrics_gauge(reg, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", NULL, 0);

    struct proc_stat ps;
    double tick = (double)sysconf(_SC_CLK_TCK);
    double bt = boot_time();
    if (read_proc_stat(&ps) && bt > 0 && tick > 0) {
        reg->start_time = bt + ps.starttime_ticks / tick;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        reg->start_time = (double)ts.tv_sec;
    }
    ag_metrics_on_collect(reg, collect_process, NULL);
}

/* ---- Exposition ---- */

/* Shortest text that reads back as 'v': integers without exponent or
 * decimals, otherwise the fewest of 15 to 17 significant digits. */
static void
fmt_num(double v, char *tmp, size_t size)
{
    if (isnan(v)) {
        snprintf(tmp, size, "NaN");
    } else if (isinf(v)) {
        snprintf(tmp, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(tmp, size, "%" PRId64, (int64_t)v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, size, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
    }
}

static int
put_num(struct ag_buf *out, double v)
{
    char tmp[40];
    fmt_num(v, tmp, sizeof(tmp));
    return ag_buf_append_cstr(out, tmp);
}

/* Escape for a label value ('quote') or a HELP text. */
static int
put_escaped(struct ag_buf *out, const char *s, bool quote)
{
    int rc = 0;
    const char *run = s;
    for (const char *p = s; *p != '\0' && rc == 0; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (*p == '"' && quote)
            rep = "\\\"";
        if (rep == NULL)
            continue;
        rc = ag_buf_append(out, run, (size_t)(p - run));
        if (rc == 0)
            rc = ag_buf_append_cstr(out, rep);
        run = p + 1;
    }
    return rc ? rc : ag_buf_append_cstr(out, run);
}

/* name{l1="v1",...,le="x"} -- 'le' may be NULL. */
static int
put_sample_name(struct ag_buf *out, const struct ag_metric *m, const char *suffix,
                const struct series *s, const char *le)
{
    int rc = ag_buf_append_cstr(out, m->name);
    if (rc == 0)
        rc = ag_buf_append_cstr(out, suffix);
    if (m->nlabels == 0 && le == NULL)
        return rc;
    if (rc == 0)
        rc = ag_buf_append_char(out, '{');
    for (size_t i = 0; i < m->nlabels && rc == 0; i++) {
        rc = ag_buf_appendf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
        if (rc == 0)
            rc = put_escaped(out, s->values[i], true);
        if (rc == 0)
            rc = ag_buf_append_char(out, '"');
    }
    if (le != NULL && rc == 0)
        rc = ag_buf_appendf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    if (rc == 0)
        rc = ag_buf_append_char(out, '}');
    return rc;
}

static int
put_sample(struct ag_buf *out, const struct ag_metric *m, const char *suffix,
           const struct series *s, const char *le, double v)
{
    int rc = put_sample_name(out, m, suffix, s, le);
    if (rc == 0)
        rc = ag_buf_append_char(out, ' ');
    if (rc == 0)
        rc = put_num(out, v);
    if (rc == 0)
        rc = ag_buf_append_char(out, '\n');
    return rc;
}

static int
put_series(struct ag_buf *out, const struct ag_metric *m, const struct series *s)
{
    if (m->kind != KIND_HISTOGRAM)
        return put_sample(out, m, "", s, NULL, s->value);
    int rc = 0;
    uint64_t cum = 0;
    for (size_t i = 0; i < m->nbounds && rc == 0; i++) {
        cum += s->counts[i];
        char le[40];
        fmt_num(m->bounds[i], le, sizeof(le));
        rc = put_sample(out, m, "_bucket", s, le, (double)cum);
    }
    if (rc == 0)
        rc = put_sample(out, m, "_bucket", s, "+Inf", (double)s->count);
    if (rc == 0)
        rc = put_sample(out, m, "_sum", s, NULL, s->sum);
    if (rc == 0)
        rc = put_sample(out, m, "_count", s, NULL, (double)s->count);
    return rc;
}

static int
put_family(struct ag_buf *out, const struct ag_metric *m)
{
    int rc = ag_buf_appendf(out, "# HELP %s ", m->name);
    if (rc == 0)
        rc = put_escaped(out, m->help, false);
    if (rc == 0)
        rc = ag_buf_appendf(out, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
    for (const struct series *s = m->first; s != NULL && rc == 0; s = s->next)
        rc = put_series(out, m, s);
    if (m->overflow != NULL && rc == 0)
        rc = put_series(out, m, m->overflow);
    return rc;
}

static int
put_overflow_family(struct ag_buf *out, const struct ag_metrics *reg)
{
    int rc = 0;
    bool header = false;
    for (const struct ag_metric *m = reg->first; m != NULL && rc == 0; m = m->next) {
        if (m->overflowed == 0)
            continue;
        if (!header) {
            rc = ag_buf_append_cstr(out, "# HELP " OVERFLOW_FAMILY
                                         " Observations not given their own series because "
                                         "the metric family reached its series limit.\n"
                                         "# TYPE " OVERFLOW_FAMILY " counter\n");
            header = true;
        }
        if (rc == 0) {
            rc = ag_buf_appendf(out, OVERFLOW_FAMILY "{metric=\"%s\"} %" PRIu64 "\n", m->name,
                                m->overflowed);
        }
    }
    return rc;
}

int
ag_metrics_render(struct ag_metrics *reg, struct ag_buf *out)
{
    AG_CHECK_MAGIC(reg, REG_MAGIC);
    /* Callbacks record into the registry, which takes the lock, so they run
     * unlocked; the list only grows, so indexing it afresh each time is safe. */
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&reg->lock);
        struct collector c = { NULL, NULL };
        if (i < reg->ncollectors)
            c = reg->collectors[i];
        pthread_mutex_unlock(&reg->lock);
        if (c.fn == NULL)
            break;
        c.fn(reg, c.udata);
    }

    size_t start = out->len;
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    for (const struct ag_metric *m = reg->first; m != NULL && rc == 0; m = m->next)
        rc = put_family(out, m);
    if (rc == 0)
        rc = put_overflow_family(out, reg);
    pthread_mutex_unlock(&reg->lock);
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
    }
    return rc;
}
