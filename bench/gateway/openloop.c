/* SPDX-License-Identifier: MIT */
/* bench/gateway/openloop.c: an open-loop HTTP/1.1 load generator for the
 * fixed-load phase of bench/gateway/run (C standard library and Linux only).
 *
 *   openloop -p PORT -u PATH -r RATE -d SECONDS [-c CONNECTIONS] [-H HEADER]...
 *
 * Sends GET PATH to 127.0.0.1:PORT on a fixed schedule, one request every
 * 1/RATE seconds, over up to CONNECTIONS keep-alive connections (opened
 * first; a request goes to any idle one). A request waits in a queue while
 * every connection is busy, and its latency is measured from the time the
 * schedule meant to send it, not from when it went out, so a slow server
 * cannot hide its stalls by slowing the generator down (no coordinated
 * omission). Unlike wrk with a think-time delay(), whose millisecond timers
 * send the requests of each millisecond in one burst, requests here are
 * spaced evenly, so the figures hold the server's latency and not the
 * queueing of bursts. The loop polls without sleeping when the next send is
 * due within 2 ms: it owns its CPU.
 *
 * Prints the figures in the format of `wrk --latency` (requests, Requests/sec,
 * latency percentiles, non-2xx, socket errors), which bench/lib/report.py
 * parses. Exit status 0, or 1 on bad arguments or when no connection opens. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS   1024
#define MAX_HEADERS 16
#define BUF_SIZE    65536
#define TIMEOUT_NS  5000000000LL /* a response later than this is a timeout */

struct conn {
    int fd;
    int busy;
    int64_t intended; /* scheduled send time of the request in flight */
    size_t len;       /* bytes in buf */
    char buf[BUF_SIZE];
};

static struct conn *conns;
static int nconns;
static int epfd;
static struct sockaddr_in addr;
static char request[8192];
static size_t request_len;

static int64_t *lat; /* latencies of completed requests, ns */
static size_t nlat, cap_lat;
static long non2xx, err_connect, err_read, err_write, err_timeout;

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
die(const char *msg)
{
    fprintf(stderr, "openloop: %s\n", msg);
    exit(1);
}

static int
conn_open(struct conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    /* Blocking connect on loopback, then non-blocking I/O. */
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->busy = 0;
    c->len = 0;
    return 0;
}

static void
conn_reset(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
    c->len = 0;
    if (conn_open(c) != 0)
        err_connect++;
}

static void
record(int64_t ns)
{
    if (nlat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 1 << 16;
        lat = realloc(lat, cap_lat * sizeof(*lat));
        if (lat == NULL)
            die("out of memory");
    }
    lat[nlat++] = ns;
}

static int
send_request(struct conn *c, int64_t intended)
{
    size_t off = 0;
    while (off < request_len) {
        ssize_t n = send(c->fd, request + off, request_len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1; /* a request fits in the socket buffer; anything else is an error */
        }
        off += (size_t)n;
    }
    c->busy = 1;
    c->intended = intended;
    return 0;
}

/* A complete response in c->buf? Returns its length, 0 when incomplete, -1
 * when malformed. Sets *status. Content-Length bodies only (the catalog's). */
static long
response_complete(struct conn *c, int *status)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->len >= BUF_SIZE ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = (int)strtol(c->buf + 9, NULL, 10);
    long clen = -1;
    for (char *p = memchr(c->buf, '\n', head); p != NULL && p < end;
         p = memchr(p + 1, '\n', (size_t)(end - p))) {
        if (strncasecmp(p + 1, "content-length:", 15) == 0)
            clen = strtol(p + 16, NULL, 10);
    }
    if (clen < 0)
        clen = 0; /* 204/304 or a bodiless error */
    if (head + (size_t)clen > BUF_SIZE)
        return -1;
    return c->len >= head + (size_t)clen ? (long)(head + (size_t)clen) : 0;
}

static void
on_readable(struct conn *c, int64_t t_end_measure)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, BUF_SIZE - c->len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            err_read++;
            conn_reset(c);
            return;
        }
        if (n == 0) { /* closed by the server */
            if (c->busy)
                err_read++;
            conn_reset(c);
            return;
        }
        c->len += (size_t)n;
        int status = 0;
        long done = response_complete(c, &status);
        if (done < 0) {
            err_read++;
            conn_reset(c);
            return;
        }
        if (done == 0)
            continue;
        if (c->busy) {
            int64_t t = now_ns();
            if (c->intended < t_end_measure) {
                record(t - c->intended);
                if (status < 200 || status > 399)
                    non2xx++;
            }
        }
        c->busy = 0;
        memmove(c->buf, c->buf + done, c->len - (size_t)done);
        c->len -= (size_t)done;
        return;
    }
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void
print_lat(const char *label, double ns)
{
    double us = ns / 1000.0;
    if (us >= 1e6)
        printf("%s%.2fs\n", label, us / 1e6);
    else if (us >= 1e3)
        printf("%s%.2fms\n", label, us / 1e3);
    else
        printf("%s%.2fus\n", label, us);
}

int
main(int argc, char **argv)
{
    int port = 0;
    const char *path = NULL;
    double rate = 0, duration = 0;
    int max_conns = 64;
    const char *headers[MAX_HEADERS];
    int nheaders = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:u:r:d:c:H:")) != -1) {
        switch (opt) {
        case 'p': port = (int)strtol(optarg, NULL, 10); break;
        case 'u': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'c': max_conns = (int)strtol(optarg, NULL, 10); break;
        case 'H':
            if (nheaders == MAX_HEADERS)
                die("too many -H");
            headers[nheaders++] = optarg;
            break;
        default:
            die("usage: openloop -p PORT -u PATH -r RATE -d SECONDS [-c CONNS] [-H HEADER]...");
        }
    }
    if (port <= 0 || port > 65535 || path == NULL || path[0] != '/' || rate <= 0 || rate > 1e7 ||
        duration <= 0 || duration > 3600 || max_conns < 1 || max_conns > MAX_CONNS)
        die("usage: openloop -p PORT -u PATH -r RATE -d SECONDS [-c CONNS] [-H HEADER]...");

    int off =
        snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", path, port);
    for (int i = 0; i < nheaders && off > 0 && (size_t)off < sizeof(request); i++)
        off += snprintf(request + off, sizeof(request) - (size_t)off, "%s\r\n", headers[i]);
    if (off <= 0 || (size_t)off + 3 > sizeof(request))
        die("request too long");
    off += snprintf(request + off, sizeof(request) - (size_t)off, "\r\n");
    request_len = (size_t)off;

    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1 failed");
    conns = calloc((size_t)max_conns, sizeof(*conns));
    if (conns == NULL)
        die("out of memory");
    for (int i = 0; i < max_conns; i++) {
        conns[i].fd = -1;
        if (conn_open(&conns[i]) != 0)
            die("cannot connect");
    }
    nconns = max_conns;

    const int64_t interval = (int64_t)(1e9 / rate);
    const int64_t t0 = now_ns() + 1000000; /* first send 1 ms from now */
    const int64_t t_end = t0 + (int64_t)(duration * 1e9);
    int64_t next = t0;      /* intended time of the next request to send */
    int64_t sent_sched = 0; /* requests the schedule has released */
    int idle_hint = 0;
    struct epoll_event evs[64];

    for (;;) {
        int64_t t = now_ns();
        /* Release every request whose time has come, to idle connections. */
        while (next <= t && next < t_end) {
            struct conn *c = NULL;
            for (int k = 0; k < nconns; k++) {
                struct conn *x = &conns[(idle_hint + k) % nconns];
                if (!x->busy && x->fd >= 0) {
                    c = x;
                    idle_hint = (int)((x - conns) + 1) % nconns;
                    break;
                }
            }
            if (c == NULL)
                break; /* all busy: the request waits; its latency keeps counting */
            if (send_request(c, next) != 0) {
                err_write++;
                conn_reset(c);
                continue;
            }
            next += interval;
            sent_sched++;
        }
        int busy = 0;
        for (int k = 0; k < nconns; k++) {
            busy += conns[k].busy;
            if (conns[k].busy && t - conns[k].intended > TIMEOUT_NS) {
                err_timeout++;
                conn_reset(&conns[k]);
            }
        }
        if (next >= t_end && busy == 0)
            break;
        if (t > t_end + TIMEOUT_NS)
            break;
        /* Poll without sleeping when the next send is near; else sleep until then. */
        int timeout_ms = 0;
        if (next >= t_end)
            timeout_ms = 10;
        else if (next - t > 2000000)
            timeout_ms = (int)((next - t) / 1000000) - 1;
        int n = epoll_wait(epfd, evs, 64, timeout_ms);
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr, t_end);
    }
    /* Requests the schedule meant to send but could not (all connections busy
     * until the end) are lost: count them as timeouts. */
    int64_t meant = (t_end - t0 + interval - 1) / interval;
    if (meant > sent_sched)
        err_timeout += (long)(meant - sent_sched);

    qsort(lat, nlat, sizeof(*lat), cmp64);
    printf("Open-loop test @ http://127.0.0.1:%d%s\n", port, path);
    printf("  %d connections, %.0f requests/s scheduled, evenly spaced\n", nconns, rate);
    printf("Latency Distribution (from the intended send time)\n");
    static const double pcts[] = { 50, 75, 90, 99, 99.9 };
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        char label[32];
        snprintf(label, sizeof(label), "  %6g%%   ", pcts[i]);
        size_t idx = nlat ? (size_t)((pcts[i] / 100.0) * (double)(nlat - 1) + 0.5) : 0;
        print_lat(label, nlat ? (double)lat[idx] : 0);
    }
    printf("  %zu requests in %.2fs, %lld scheduled\n", nlat, duration, (long long)meant);
    if (err_connect || err_read || err_write || err_timeout)
        printf("  Socket errors: connect %ld, read %ld, write %ld, timeout %ld\n", err_connect,
               err_read, err_write, err_timeout);
    if (non2xx)
        printf("  Non-2xx or 3xx responses: %ld\n", non2xx);
    printf("Requests/sec: %.2f\n", (double)nlat / duration);
    return 0;
}
