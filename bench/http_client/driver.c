/* SPDX-License-Identifier: MIT */
/* bench/http_client: drives the chassis HTTP client (http_client.h) on one
 * loop against one upstream: 'seq' keeps one call in flight, 'conc' keeps
 * C calls in flight. After a warm-up it prints one line: calls completed,
 * wall seconds, calls per second, and this process's CPU microseconds per
 * call (user + system from getrusage), the figure bench/http_client/run
 * compares between two builds of the chassis. */
#include "agora/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "agora/http_client.h"
#include "agora/time.h"

struct drv {
    struct ag_http_client *client;
    struct ag_http_client_request req;
    uint64_t started; /* calls started */
    uint64_t done;    /* calls completed */
    uint64_t errors;  /* calls with err != 0 or a status other than 200 */
    uint64_t warmup;  /* calls before the measurement starts */
    uint64_t total;   /* warm-up + measured calls */
    uint64_t t0_ns;   /* start of the measurement */
    double cpu0_us;   /* CPU time at the start of the measurement */
    uint64_t wall_ns; /* measured wall time */
    double cpu_us;    /* measured CPU time */
    bool closed;
};

static double
cpu_now_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

static void on_done(struct ag_http_client *c, const struct ag_http_client_response *r, void *udata);

static void
start_one(struct drv *d)
{
    if (d->started >= d->total)
        return;
    d->started++;
    if (ag_http_client_send(d->client, &d->req, on_done, d) != 0) {
        fprintf(stderr, "driver: send failed\n");
        exit(1);
    }
}

static void
on_closed(void *udata)
{
    ((struct drv *)udata)->closed = true;
}

static void
on_done(struct ag_http_client *c, const struct ag_http_client_response *r, void *udata)
{
    struct drv *d = udata;
    AG_UNUSED(c);
    if (r->err != 0 || r->status != 200)
        d->errors++;
    d->done++;
    if (d->done == d->warmup) {
        d->t0_ns = ag_time_mono_ns();
        d->cpu0_us = cpu_now_us();
    }
    if (d->done == d->total) {
        d->wall_ns = ag_time_mono_ns() - d->t0_ns;
        d->cpu_us = cpu_now_us() - d->cpu0_us;
        ag_http_client_close(d->client, on_closed, d);
        return;
    }
    start_one(d);
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: driver URL seq|conc CONCURRENCY CALLS\n");
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct drv d;
    unsigned long conc = strcmp(argv[2], "seq") == 0 ? 1 : strtoul(argv[3], NULL, 10);
    uint64_t calls = strtoull(argv[4], NULL, 10);
    if (conc == 0 || calls == 0)
        return 2;
    d.warmup = calls / 5 + conc;
    d.total = d.warmup + calls;
    d.req = (struct ag_http_client_request){ .method = "GET", .url = argv[1], .max_retries = -1 };
    struct ag_http_client_config cfg = { .max_host_connections = conc, .timeout_ms = 10000 };
    if (ag_http_client_new(&loop, &cfg, &d.client) != 0)
        return 1;
    for (unsigned long i = 0; i < conc; i++)
        start_one(&d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (!d.closed)
        return 1;
    double secs = (double)d.wall_ns / 1e9;
    printf("%llu %.3f %.0f %.2f %llu\n", (unsigned long long)calls, secs, (double)calls / secs,
           d.cpu_us / (double)calls, (unsigned long long)d.errors);
    return d.errors == 0 ? 0 : 3;
}
