/* SPDX-License-Identifier: MIT */
/* bench/bus: the part of the load clients that does not depend on the
 * broker. bb_main parses the options, asks the client to set up its
 * subscription or queue, runs a warm-up cycle and then the measured cycle,
 * checks that every message was delivered, and prints one JSON line with
 * the figures (the record format of bench/lib/report.py). See common.h. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *g_prog = "bench-bus";

/* ---------------------------------------------------------------- utilities */

uint64_t
bb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bb_sleep_until(uint64_t t_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(t_ns / 1000000000u),
                           .tv_nsec = (long)(t_ns % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

void
bb_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(3);
}

void
bb_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void
bb_fmt_u64(char *dst, uint64_t v)
{
    for (int i = BB_DIGITS - 1; i >= 0; i--) {
        dst[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static int
parse_u64(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < BB_DIGITS; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- the event */

/* A CloudEvents 1.0 structured event (an order.created of an imaginary shop)
 * padded with a "note" to exactly 'size' bytes. 'benchsentns' is an
 * extension attribute (a string: CloudEvents integers are 32-bit). */
static const char EV_HEAD[] = "{\"specversion\":\"1.0\",\"id\":\"";
static const char EV_MID[] = "\",\"benchsentns\":\"";
static const char EV_TAIL[] =
    "\",\"type\":\"com.agora.order.created\",\"source\":\"/orders\",\"subject\":"
    "\"order-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"time\":\"2026-11-21T12:00:00.000Z\","
    "\"datacontenttype\":\"application/json\",\"data\":{\"order_id\":"
    "\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"user_id\":\"0190a1b2-0000-7000-8000-00000000002a\","
    "\"status\":\"PENDING\",\"currency\":\"EUR\",\"total_minor\":15470,\"items\":["
    "{\"product_id\":\"0190a1b2-1111-7000-8000-000000000001\",\"quantity\":2,\"unit_price_minor\":"
    "4990},"
    "{\"product_id\":\"0190a1b2-1111-7000-8000-000000000002\",\"quantity\":1,\"unit_price_minor\":"
    "5490}],"
    "\"shipping_address\":{\"name\":\"Ada Lovelace\",\"line1\":\"12 Analytical Row\",\"city\":"
    "\"London\",\"postal_code\":\"NW1 6XE\",\"country\":\"GB\"},\"note\":\"";
static const char EV_END[] = "\"}}";

static int
event_init(struct bb_event *ev, size_t size)
{
    size_t fixed =
        strlen(EV_HEAD) + BB_DIGITS + strlen(EV_MID) + BB_DIGITS + strlen(EV_TAIL) + strlen(EV_END);
    if (size < fixed)
        return -1;
    ev->size = size;
    ev->tmpl = malloc(size + 1);
    if (ev->tmpl == NULL)
        return -1;
    char *p = ev->tmpl;
    p = stpcpy(p, EV_HEAD);
    ev->id_off = (size_t)(p - ev->tmpl);
    memset(p, '0', BB_DIGITS);
    p += BB_DIGITS;
    p = stpcpy(p, EV_MID);
    ev->ts_off = (size_t)(p - ev->tmpl);
    memset(p, '0', BB_DIGITS);
    p += BB_DIGITS;
    p = stpcpy(p, EV_TAIL);
    size_t pad = size - fixed;
    for (size_t i = 0; i < pad; i++)
        *p++ = (char)('a' + i % 26);
    p = stpcpy(p, EV_END);
    if ((size_t)(p - ev->tmpl) != size)
        return -1;
    return 0;
}

void
bb_event_write(const struct bb_event *ev, char *dst, uint64_t id, uint64_t sent_ns)
{
    memcpy(dst, ev->tmpl, ev->size);
    bb_fmt_u64(dst + ev->id_off, id);
    bb_fmt_u64(dst + ev->ts_off, sent_ns);
}

int
bb_event_read(const struct bb_event *ev, const char *p, size_t avail, uint64_t *out_id,
              uint64_t *out_sent_ns)
{
    if (avail < ev->size)
        return -1;
    /* Every byte but the id and the time must be the template's: the
     * payload arrived byte for byte. */
    size_t id_end = ev->id_off + BB_DIGITS, ts_end = ev->ts_off + BB_DIGITS;
    if (memcmp(p, ev->tmpl, ev->id_off) != 0 ||
        memcmp(p + id_end, ev->tmpl + id_end, ev->ts_off - id_end) != 0 ||
        memcmp(p + ts_end, ev->tmpl + ts_end, ev->size - ts_end) != 0)
        return -1;
    if (parse_u64(p + ev->id_off, out_id) != 0 || parse_u64(p + ev->ts_off, out_sent_ns) != 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- cycles */

uint64_t
bb_take(struct bb_cycle *c, uint64_t want, uint64_t *out_first)
{
    if (c->deadline_ns != 0 && bb_now_ns() >= c->deadline_ns)
        return 0;
    uint64_t s = atomic_fetch_add(&c->next, want);
    if (s >= c->cap)
        return 0;
    *out_first = s;
    return want < c->cap - s ? want : c->cap - s;
}

uint64_t
bb_sched_ns(const struct bb_cycle *c, int pub, uint64_t k)
{
    double slot = (double)k * c->o->publishers + pub;
    return c->t0_ns + (uint64_t)(slot * 1e9 / c->rate);
}

static void
lat_push(struct bb_lat *l, uint64_t v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 65536;
        uint64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            bb_die("out of memory");
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

void
bb_deliver(struct bb_thread *t, uint64_t id, uint64_t sent_ns, uint64_t recv_ns)
{
    struct bb_cycle *c = t->c;
    if (id < c->id_base || id - c->id_base >= c->cap) {
        atomic_fetch_add(&c->stray, 1);
        return;
    }
    uint64_t i = id - c->id_base;
    if (__atomic_exchange_n(&c->seen[i], 1, __ATOMIC_RELAXED) != 0) {
        atomic_fetch_add(&c->dups, 1);
        return;
    }
    lat_push(&t->lat, recv_ns > sent_ns ? recv_ns - sent_ns : 0);
    atomic_fetch_add(&c->unique, 1);
    atomic_store(&c->last_progress_ns, recv_ns);
}

bool
bb_all_in(struct bb_cycle *c)
{
    if (atomic_load(&c->stop))
        return true;
    uint64_t u = atomic_load(&c->unique);
    bool done;
    if (c->exact) {
        done = u >= c->cap;
    } else {
        uint64_t n = atomic_load(&c->next);
        done = atomic_load(&c->pubs_done) == c->o->publishers && u >= (n < c->cap ? n : c->cap);
    }
    if (done)
        atomic_store(&c->stop, 1);
    return done;
}

void
bb_check_stall(struct bb_cycle *c)
{
    uint64_t last = atomic_load(&c->last_progress_ns);
    if (last != 0 && bb_now_ns() - last > (uint64_t)(c->o->stall * 1e9)) {
        uint64_t n = atomic_load(&c->next);
        bb_die("no new delivery for %.0f s: %" PRIu64 " of %" PRIu64 " messages delivered, %" PRIu64
               " acknowledged to the publishers (messages lost or consumer stuck)",
               c->o->stall, atomic_load(&c->unique), c->exact ? c->cap : (n < c->cap ? n : c->cap),
               atomic_load(&c->published));
    }
}

/* ---------------------------------------------------------------- /proc */

static uint64_t
cpu_jiffies(int cpu)
{
    char want[32];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        bb_die("cannot open '/proc/stat': %s", strerror(errno));
    char line[512];
    uint64_t total = 0;
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        unsigned long long v[8] = { 0 };
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8)
            break;
        /* user nice system [idle iowait] irq softirq steal: as bench_cpu_jiffies */
        total = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        found = true;
        break;
    }
    fclose(f);
    if (!found)
        bb_die("no '%s' line in /proc/stat", want);
    return total;
}

static uint64_t
proc_jiffies(const pid_t *pids, int n)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[64], buf[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            bb_die("broker process %d is gone", (int)pids[i]);
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')');
        if (p == NULL)
            bb_die("cannot parse %s", path);
        unsigned long long ut = 0, st = 0;
        /* after "pid (comm) ": state is field 3, utime 14, stime 15 */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            bb_die("cannot parse %s", path);
        total += ut + st;
    }
    return total;
}

/* Bytes the broker's processes caused to be written to storage
 * (/proc/PID/io write_bytes): what durability costs in I/O. */
static uint64_t
proc_write_bytes(const pid_t *pids, int n)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/io", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return 0; /* not readable: reported as 0 */
        unsigned long long v;
        while (fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "write_bytes: %llu", &v) == 1)
                total += v;
        fclose(f);
    }
    return total;
}

static double
self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

/* ---------------------------------------------------------------- run */

struct bb_figures {
    uint64_t messages;
    double elapsed_s;
    uint64_t cpu_j, proc_j, wbytes;
    double client_us;
    uint64_t *lat;
    size_t nlat;
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double
pct_us(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t r = (size_t)ceil(q * (double)n);
    if (r < 1)
        r = 1;
    if (r > n)
        r = n;
    return (double)v[r - 1] / 1e3;
}

static void
run_cycle(const struct bb_opts *o, struct bb_cycle *c, double warm_s, struct bb_figures *out)
{
    int np = o->publishers, nc = o->consumers;
    c->seen = calloc(c->cap, 1);
    struct bb_thread *th = calloc((size_t)(np + nc), sizeof *th);
    if (c->seen == NULL || th == NULL)
        bb_die("out of memory");
    if (pthread_barrier_init(&c->ready, NULL, (unsigned)(np + nc + 1)) != 0 ||
        pthread_barrier_init(&c->go, NULL, (unsigned)(np + nc + 1)) != 0)
        bb_die("pthread_barrier_init failed");
    for (int i = 0; i < np + nc; i++) {
        th[i].c = c;
        th[i].index = i < nc ? i : i - nc;
        if (pthread_create(&th[i].tid, NULL, i < nc ? bb_consumer_main : bb_publisher_main,
                           &th[i]) != 0)
            bb_die("pthread_create failed");
    }
    pthread_barrier_wait(&c->ready); /* every connection open, consumers subscribed */
    uint64_t cpu0 = 0, proc0 = 0, wb0 = 0;
    double self0 = 0;
    if (c->measured) {
        wb0 = proc_write_bytes(o->pids, o->npids);
        cpu0 = cpu_jiffies(o->cpu);
        proc0 = proc_jiffies(o->pids, o->npids);
        self0 = self_cpu_us();
    }
    c->t0_ns = bb_now_ns();
    if (warm_s > 0)
        c->deadline_ns = c->t0_ns + (uint64_t)(warm_s * 1e9);
    atomic_store(&c->last_progress_ns, c->t0_ns);
    pthread_barrier_wait(&c->go);
    for (int i = 0; i < np + nc; i++)
        pthread_join(th[i].tid, NULL);
    uint64_t t1 = bb_now_ns();
    if (c->measured) {
        out->cpu_j = cpu_jiffies(o->cpu) - cpu0;
        out->proc_j = proc_jiffies(o->pids, o->npids) - proc0;
        out->client_us = self_cpu_us() - self0;
        out->wbytes = proc_write_bytes(o->pids, o->npids) - wb0;
    }
    uint64_t total = atomic_load(&c->next);
    if (total > c->cap)
        total = c->cap;
    if (atomic_load(&c->unique) != total || atomic_load(&c->published) != total)
        bb_die("%s: %" PRIu64 " messages taken, %" PRIu64 " acknowledged to publishers, %" PRIu64
               " delivered (unique ids)",
               c->measured ? "measured run" : "warm-up", total, atomic_load(&c->published),
               atomic_load(&c->unique));
    if (atomic_load(&c->stray) != 0)
        bb_die("%" PRIu64 " deliveries carried ids of no message of this run",
               atomic_load(&c->stray));
    out->messages = total;
    out->elapsed_s = (double)(t1 - c->t0_ns) / 1e9;
    size_t nl = 0;
    for (int i = 0; i < nc; i++)
        nl += th[i].lat.n;
    out->lat = malloc((nl ? nl : 1) * sizeof *out->lat);
    if (out->lat == NULL)
        bb_die("out of memory");
    out->nlat = 0;
    for (int i = 0; i < nc; i++) {
        memcpy(out->lat + out->nlat, th[i].lat.v, th[i].lat.n * sizeof *out->lat);
        out->nlat += th[i].lat.n;
        free(th[i].lat.v);
    }
    qsort(out->lat, out->nlat, sizeof *out->lat, cmp_u64);
    pthread_barrier_destroy(&c->ready);
    pthread_barrier_destroy(&c->go);
    free(th);
    free(c->seen);
    c->seen = NULL;
}

/* ---------------------------------------------------------------- options */

static void
usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s --port P --pids PID[,PID...] [options]\n"
            "  --phase peak|fixed   peak: --messages as fast as the windows allow;\n"
            "                       fixed: --rate msg/s for --duration s (open loop)\n"
            "  --messages N (100000) --rate R --duration S (8) --warmup S (2)\n"
            "  --publishers W (4) --batch N (50) --prefetch Q (1000) --consumers C (1)\n"
            "  --size BYTES (1024) --name NAME (bench) --topic T (bench.events)\n"
            "  --queue-type classic|quorum (RabbitMQ) --round R --run-id ID --cpu CPU (0)\n"
            "  --host H (127.0.0.1) --stall S (20) --setup (create the subscription or\n"
            "  queue and exit) --version\n"
            "Prints one JSON line (bench/lib/report.py record) on stdout; exit 3 on a\n"
            "failed run (lost, duplicated or corrupt messages, broker errors).\n",
            g_prog);
    exit(rc);
}

static double
num_arg(const char *name, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi)) {
        fprintf(stderr, "%s: --%s must be a number in [%g, %g] (got '%s')\n", g_prog, name, lo, hi,
                v);
        exit(2);
    }
    return d;
}

int
bb_main(int argc, char **argv, const char *server)
{
    g_prog = strcmp(server, "bus") == 0 ? "busclient" : "rmqclient";
    struct bb_opts o = {
        .server = server,
        .host = "127.0.0.1",
        .phase = "peak",
        .messages = 100000,
        .duration = 8,
        .warmup = 2,
        .publishers = 4,
        .batch = 50,
        .prefetch = 1000,
        .consumers = 1,
        .size = 1024,
        .name = "bench",
        .topic = "bench.events",
        .queue_type = "classic",
        .stall = 20,
    };
    bool setup_only = false;
    static const struct option lo[] = {
        { "host", 1, 0, 'H' },       { "port", 1, 0, 'p' },       { "phase", 1, 0, 'f' },
        { "round", 1, 0, 'r' },      { "run-id", 1, 0, 'i' },     { "messages", 1, 0, 'm' },
        { "rate", 1, 0, 'R' },       { "duration", 1, 0, 'd' },   { "warmup", 1, 0, 'w' },
        { "publishers", 1, 0, 'P' }, { "batch", 1, 0, 'b' },      { "prefetch", 1, 0, 'q' },
        { "consumers", 1, 0, 'C' },  { "size", 1, 0, 's' },       { "name", 1, 0, 'n' },
        { "topic", 1, 0, 't' },      { "queue-type", 1, 0, 'Q' }, { "cpu", 1, 0, 'c' },
        { "pids", 1, 0, 'x' },       { "stall", 1, 0, 'S' },      { "setup", 0, 0, 'u' },
        { "help", 0, 0, 'h' },       { "version", 0, 0, 'V' },    { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = (int)num_arg("port", optarg, 1, 65535); break;
        case 'f': o.phase = optarg; break;
        case 'r': o.round = (int)num_arg("round", optarg, 0, 1e6); break;
        case 'i': o.run_id = (uint64_t)num_arg("run-id", optarg, 0, 9e7); break;
        case 'm': o.messages = (uint64_t)num_arg("messages", optarg, 1, 1e8); break;
        case 'R': o.rate = num_arg("rate", optarg, 1, 1e7); break;
        case 'd': o.duration = num_arg("duration", optarg, 0.1, 3600); break;
        case 'w': o.warmup = num_arg("warmup", optarg, 0, 600); break;
        case 'P': o.publishers = (int)num_arg("publishers", optarg, 1, 128); break;
        case 'b': o.batch = (int)num_arg("batch", optarg, 1, 1000); break;
        case 'q': o.prefetch = (int)num_arg("prefetch", optarg, 1, 10000); break;
        case 'C': o.consumers = (int)num_arg("consumers", optarg, 1, 64); break;
        case 's': o.size = (size_t)num_arg("size", optarg, 1, 256 * 1024 - 1024); break;
        case 'n': o.name = optarg; break;
        case 't': o.topic = optarg; break;
        case 'Q': o.queue_type = optarg; break;
        case 'c': o.cpu = (int)num_arg("cpu", optarg, 0, 4095); break;
        case 'S': o.stall = num_arg("stall", optarg, 1, 3600); break;
        case 'u': setup_only = true; break;
        case 'x': {
            char *s = strdup(optarg), *save = NULL;
            for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (o.npids == BB_MAX_PIDS)
                    usage(2);
                o.pids[o.npids++] = (pid_t)num_arg("pids", tok, 1, 4194304);
            }
            free(s);
            break;
        }
        case 'h': usage(0); break;
        case 'V': printf("%s\n", bb_client_version()); return 0;
        default: usage(2);
        }
    }
    if (optind != argc || o.port == 0)
        usage(2);
    bool fixed = strcmp(o.phase, "fixed") == 0;
    if (!fixed && strcmp(o.phase, "peak") != 0)
        usage(2);
    if (fixed && o.rate <= 0) {
        fprintf(stderr, "%s: --phase fixed needs --rate\n", g_prog);
        exit(2);
    }
    if (strcmp(o.queue_type, "classic") != 0 && strcmp(o.queue_type, "quorum") != 0)
        usage(2);

    struct bb_event ev;
    if (event_init(&ev, o.size) != 0) {
        fprintf(stderr, "%s: --size must be at least %zu bytes\n", g_prog,
                strlen(EV_HEAD) + strlen(EV_MID) + strlen(EV_TAIL) + strlen(EV_END) +
                    2 * BB_DIGITS);
        exit(2);
    }
    /* Wake-ups on time: the default 50 us timer slack of sleeps would add
     * to every scheduled send (threads inherit it). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (bb_client_setup(&o) != 0)
        bb_die("setup failed");
    if (setup_only)
        return 0;
    if (o.npids == 0)
        usage(2);

    /* Ids: run id, cycle, index. Unique across every run against one bus
     * (its de-duplication window would drop a repeated id). */
    uint64_t base = o.run_id * 100000000000ull;
    struct bb_figures fig = { 0 };
    if (o.warmup > 0) {
        struct bb_cycle w = { .o = &o, .ev = &ev, .id_base = base };
        if (fixed) {
            w.rate = o.rate;
            w.per_pub = (uint64_t)ceil(o.rate * o.warmup / o.publishers);
            w.cap = w.per_pub * (uint64_t)o.publishers;
            w.exact = true;
            run_cycle(&o, &w, 0, &fig);
        } else {
            w.cap = 20000000;
            run_cycle(&o, &w, o.warmup, &fig);
        }
        bb_log("warm-up: %" PRIu64 " messages in %.2f s", fig.messages, fig.elapsed_s);
        free(fig.lat);
    }
    struct bb_cycle m = {
        .o = &o, .ev = &ev, .measured = true, .id_base = base + 50000000000ull, .exact = true
    };
    if (fixed) {
        m.rate = o.rate;
        m.per_pub = (uint64_t)ceil(o.rate * o.duration / o.publishers);
        m.cap = m.per_pub * (uint64_t)o.publishers;
    } else {
        m.cap = o.messages;
    }
    memset(&fig, 0, sizeof fig);
    run_cycle(&o, &m, 0, &fig);

    long tck = sysconf(_SC_CLK_TCK);
    double n = (double)fig.messages;
    double mean = 0;
    for (size_t i = 0; i < fig.nlat; i++)
        mean += (double)fig.lat[i];
    mean = fig.nlat ? mean / (double)fig.nlat / 1e3 : 0;
    char offered[32] = "null";
    if (fixed)
        snprintf(offered, sizeof offered, "%.0f", o.rate);
    printf("{\"phase\":\"%s\",\"endpoint\":\"events\",\"server\":\"%s\",\"round\":%d,"
           "\"messages\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"elapsed_s\":%.4f,\"rps\":%.1f,"
           "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
           "\"mean_us\":%.1f,\"cpu_jiffies\":%" PRIu64 ",\"proc_jiffies\":%" PRIu64
           ",\"clk_tck\":%ld,\"cpu_us_per_req\":%.3f,\"proc_us_per_req\":%.3f,"
           "\"client_us_per_msg\":%.3f,\"disk_bytes_per_msg\":%.0f,\"duplicates\":%" PRIu64
           ",\"publish_calls\":%" PRIu64 ",\"acked\":%" PRIu64
           ",\"offered_rps\":%s,\"publishers\":%d,\"batch\":%d,"
           "\"prefetch\":%d,\"consumers\":%d,\"size\":%zu,\"connections\":%d,"
           "\"non2xx\":0,\"socket_errors\":0}\n",
           o.phase, o.server, o.round, fig.messages, fig.messages, fig.elapsed_s, n / fig.elapsed_s,
           pct_us(fig.lat, fig.nlat, 0.50), pct_us(fig.lat, fig.nlat, 0.90),
           pct_us(fig.lat, fig.nlat, 0.99), pct_us(fig.lat, fig.nlat, 0.999),
           pct_us(fig.lat, fig.nlat, 1.0), mean, fig.cpu_j, fig.proc_j, tck,
           (double)fig.cpu_j * 1e6 / (double)tck / n, (double)fig.proc_j * 1e6 / (double)tck / n,
           fig.client_us / n, (double)fig.wbytes / n, atomic_load(&m.dups),
           atomic_load(&m.requests), atomic_load(&m.acked), offered, o.publishers, o.batch,
           o.prefetch, o.consumers, o.size, o.publishers + o.consumers);
    free(fig.lat);
    free(ev.tmpl);
    return 0;
}
