/* SPDX-License-Identifier: MIT */
/* bench/bus/busclient: load client for the Agora bus over HTTP/1.1
 * keep-alive on plain blocking sockets, one thread and one connection per
 * role (the same shape as rmqclient.c):
 *
 *   publisher (x W)  POST /v1/messages; a 200 means every message of the
 *                    request is on disk (AGORA_DURABILITY=full). Peak: N
 *                    messages per request, one request in flight (N x W
 *                    unconfirmed). Fixed load: each message sent when due
 *                    (with any others due), requests pipelined on the
 *                    connection while fewer than N messages are unconfirmed
 *   consumer  (x C)  POST /v1/subscriptions/{name}/pull, long poll, at most
 *                    --prefetch messages leased and not yet acked
 *   acker     (x C)  POST /v1/subscriptions/{name}/ack with every ack id the
 *                    consumer has handed over since the last ack, on its own
 *                    connection so that pulls do not wait for the ack's fsync
 *
 * Options and output: common.h (bb_main). */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#define IO_TIMEOUT_S 30 /* a broker that does not answer for this long fails the run */

/* ---------------------------------------------------------------- HTTP/1.1 */

struct http {
    int fd;
    char *buf; /* response bytes */
    size_t off;
    size_t len;
    size_t cap;
    char saved;   /* the byte http_take overwrote with a NUL */
    bool restore; /* put it back before touching the buffer again */
    char *req;
    size_t req_cap;
};

static void
http_open(struct http *h, const struct bb_opts *o)
{
    memset(h, 0, sizeof *h);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd == -1)
        bb_die("socket: %s", strerror(errno));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        bb_die("bad --host '%s'", o->host);
    if (connect(h->fd, (struct sockaddr *)&sa, sizeof sa) == -1)
        bb_die("cannot connect to %s:%d: %s", o->host, o->port, strerror(errno));
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
    setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void
http_close(struct http *h)
{
    if (h->fd != -1)
        close(h->fd);
    free(h->buf);
    free(h->req);
    h->fd = -1;
}

static void
grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    char *n = realloc(*p, c);
    if (n == NULL)
        bb_die("out of memory");
    *p = n;
    *cap = c;
}

/* Requests: the caller writes the body at h->req + HDR_ROOM; the head goes
 * right before it, so a request is one send. Answers: h->buf holds what was
 * received, h->off the start of the first answer not yet taken, so that
 * pipelined answers can be read as they come. */
#define HDR_ROOM 512

/* "X-Agora-Identity: <header>\r\n" from BUS_IDENTITY (the bus takes
 * publishes, pulls and acks only from a service with a signed identity;
 * bench/bus/run mints one for the service "bench"), or "". */
static char identity_line[300];

static void
identity_init(void)
{
    const char *id = getenv("BUS_IDENTITY");
    if (id == NULL || id[0] == '\0')
        return;
    int n = snprintf(identity_line, sizeof identity_line, "X-Agora-Identity: %s\r\n", id);
    if (n <= 0 || (size_t)n >= sizeof identity_line)
        bb_die("BUS_IDENTITY too long");
}

static void
http_send_post(struct http *h, const char *path, size_t body_len)
{
    char hdr[HDR_ROOM];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "%sContent-Length: %zu\r\n\r\n",
                      path, identity_line, body_len);
    if (hl <= 0 || hl >= HDR_ROOM)
        bb_die("request head too long");
    char *start = h->req + HDR_ROOM - hl;
    memcpy(start, hdr, (size_t)hl);
    size_t left = (size_t)hl + body_len;
    while (left > 0) {
        ssize_t w = send(h->fd, start, left, MSG_NOSIGNAL);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            bb_die("send %s: %s", path, strerror(errno));
        }
        start += w;
        left -= (size_t)w;
    }
}

static void
http_untake(struct http *h)
{
    if (h->restore) {
        h->buf[h->off] = h->saved;
        h->restore = false;
    }
}

/* One recv (blocking up to IO_TIMEOUT_S). */
static void
http_recv_some(struct http *h)
{
    http_untake(h);
    if (h->off > 0 && h->off == h->len)
        h->off = h->len = 0;
    if (h->off > 0 && h->cap - h->len < 65536) {
        memmove(h->buf, h->buf + h->off, h->len - h->off);
        h->len -= h->off;
        h->off = 0;
    }
    grow(&h->buf, &h->cap, h->len + 65536);
    for (;;) {
        ssize_t r = recv(h->fd, h->buf + h->len, h->cap - h->len - 1, 0);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            bb_die("recv: %s", strerror(errno));
        if (r == 0)
            bb_die("the bus closed the connection");
        h->len += (size_t)r;
        h->buf[h->len] = '\0';
        return;
    }
}

/* Take the first complete answer from the buffer: its status, and its body
 * (valid until the next recv). Returns 0 when it is not complete yet. */
static int
http_take(struct http *h, int *out_status, const char **out_body, size_t *out_len)
{
    http_untake(h);
    char *b = h->buf + h->off;
    if (h->len == h->off)
        return 0;
    char *e = strstr(b, "\r\n\r\n");
    if (e == NULL)
        return 0;
    size_t head = (size_t)(e - b) + 4;
    const char *cl = NULL;
    for (char *p = b; p < e; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            cl = p + 16;
            break;
        }
    }
    if (cl == NULL) /* the bus always sends Content-Length */
        bb_die("answer without Content-Length");
    size_t total = head + strtoull(cl, NULL, 10);
    if (h->len - h->off < total) {
        grow(&h->buf, &h->cap, h->off + total + 1);
        return 0;
    }
    if (sscanf(b, "HTTP/1.1 %d", out_status) != 1)
        bb_die("bad status line");
    /* NUL-terminate the body for strstr; the byte after it is the next
     * answer's first (or free space): keep it and put it back on next take. */
    *out_body = b + head;
    *out_len = total - head;
    h->off += total;
    h->saved = h->buf[h->off];
    h->buf[h->off] = '\0';
    h->restore = true;
    return 1;
}

static int
http_post(struct http *h, const char *path, size_t body_len, const char **out_body, size_t *out_len)
{
    http_untake(h);
    http_send_post(h, path, body_len);
    int status;
    while (!http_take(h, &status, out_body, out_len))
        http_recv_some(h);
    if (h->off != h->len)
        bb_die("%s: unexpected bytes after the answer", path);
    return status;
}

/* ---------------------------------------------------------------- setup */

int
bb_client_setup(const struct bb_opts *o)
{
    struct http h;
    http_open(&h, o);
    grow(&h.req, &h.req_cap, HDR_ROOM + 512);
    char *b = h.req + HDR_ROOM;
    int n = snprintf(b, 512,
                     "{\"topics\":[\"%s\"],\"ack_deadline_ms\":60000,\"max_attempts\":1000,"
                     "\"retry_delay_ms\":0}",
                     o->topic);
    char path[256];
    snprintf(path, sizeof path, "/v1/subscriptions/%s", o->name);
    /* A PUT: same helper with another method would need another head. */
    char hdr[2 * HDR_ROOM];
    int hl = snprintf(hdr, sizeof hdr,
                      "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "%sContent-Length: %d\r\n\r\n%s",
                      path, identity_line, n, b);
    if (send(h.fd, hdr, (size_t)hl, MSG_NOSIGNAL) != hl)
        bb_die("PUT %s: send failed", path);
    char ans[4096];
    ssize_t r = recv(h.fd, ans, sizeof ans - 1, 0);
    if (r <= 0)
        bb_die("PUT %s: no answer", path);
    ans[r] = '\0';
    int status = 0;
    sscanf(ans, "HTTP/1.1 %d", &status);
    if (status != 200 && status != 201)
        bb_die("PUT %s answered %d: %s", path, status, ans);
    http_close(&h);
    return 0;
}

const char *
bb_client_version(void)
{
    return "busclient (HTTP/1.1, blocking sockets)";
}

/* ---------------------------------------------------------------- publisher */

static const char MSG_HEAD[] = "{\"id\":\"";

/* Write one publish of n messages (ids first.., send times ts or sched[]). */
static size_t
build_publish(struct http *h, const struct bb_cycle *c, uint64_t first, uint64_t n,
              const uint64_t *sched, uint64_t ts)
{
    const struct bb_opts *o = c->o;
    size_t topic_len = strlen(o->topic);
    char *p = h->req + HDR_ROOM;
    p = stpcpy(p, "{\"messages\":[");
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id = c->id_base + first + i;
        if (i)
            *p++ = ',';
        p = stpcpy(p, MSG_HEAD);
        bb_fmt_u64(p, id);
        p += BB_DIGITS;
        p = stpcpy(p, "\",\"topic\":\"");
        memcpy(p, o->topic, topic_len);
        p += topic_len;
        p = stpcpy(p, "\",\"data\":");
        bb_event_write(c->ev, p, id, sched != NULL ? sched[i] : ts);
        p += c->ev->size;
        *p++ = '}';
    }
    p = stpcpy(p, "]}");
    return (size_t)(p - (h->req + HDR_ROOM));
}

/* Peak: one publish of --batch messages in flight, the next sent when it is
 * answered. Fixed load: each message is sent when it is due (with any others
 * due, in one publish), pipelined on the connection while fewer than
 * --batch messages are unconfirmed: the same window as RabbitMQ's. */
void *
bb_publisher_main(void *arg)
{
    struct bb_thread *t = arg;
    struct bb_cycle *c = t->c;
    const struct bb_opts *o = c->o;
    const struct bb_event *ev = c->ev;
    struct http h;
    http_open(&h, o);
    uint64_t win = (uint64_t)o->batch;
    size_t per_msg = sizeof MSG_HEAD + BB_DIGITS + 16 + strlen(o->topic) + ev->size + 4;
    grow(&h.req, &h.req_cap, HDR_ROOM + 32 + win * per_msg);
    uint64_t *sched = calloc(win, sizeof *sched);
    uint64_t *ring = calloc(win, sizeof *ring); /* messages per publish in flight */
    if (sched == NULL || ring == NULL)
        bb_die("out of memory");
    size_t rhead = 0, npend = 0;
    uint64_t inflight = 0;
    pthread_barrier_wait(&c->ready);
    pthread_barrier_wait(&c->go);

    uint64_t k = 0; /* fixed load: next message of this publisher's schedule */
    bool no_more = false;
    for (;;) {
        /* Answers that are complete, in order. */
        int st;
        const char *body;
        size_t blen;
        while (npend > 0 && http_take(&h, &st, &body, &blen)) {
            uint64_t n = ring[rhead];
            rhead = (rhead + 1) % win;
            npend--;
            if (st != 200)
                bb_die("publish answered %d: %.*s", st, (int)(blen < 400 ? blen : 400), body);
            /* One result per message, none a duplicate (ids are unique). */
            uint64_t fresh = 0;
            for (const char *q = body; (q = strstr(q, "\"duplicate\":false")) != NULL; q += 17)
                fresh++;
            if (fresh != n)
                bb_die("publish of %" PRIu64 " messages: %" PRIu64 " stored as new: %.*s", n, fresh,
                       (int)(blen < 400 ? blen : 400), body);
            inflight -= n;
            atomic_fetch_add(&c->published, n);
        }
        uint64_t n = 0, first = 0, now = bb_now_ns(), next_due = 0;
        bool scheduled = c->rate > 0;
        if (!no_more && !scheduled && inflight == 0) {
            n = bb_take(c, win, &first);
            no_more = n == 0;
        } else if (!no_more && scheduled) {
            while (k + n < c->per_pub && inflight + n < win &&
                   (sched[n] = bb_sched_ns(c, t->index, k + n)) <= now)
                n++;
            if (k + n < c->per_pub && inflight + n < win)
                next_due = sched[n];
            if (n > 0 && bb_take(c, n, &first) != n)
                bb_die("fixed load: message ids exhausted");
            k += n;
            no_more = k >= c->per_pub;
        }
        if (n > 0) {
            size_t len = build_publish(&h, c, first, n, scheduled ? sched : NULL, now);
            http_untake(&h);
            http_send_post(&h, "/v1/messages", len);
            ring[(rhead + npend) % win] = n;
            npend++;
            inflight += n;
            atomic_fetch_add(&c->requests, 1);
            continue;
        }
        if (no_more && npend == 0)
            break;
        if (npend == 0) {
            bb_sleep_until(next_due);
            continue;
        }
        /* Wait for an answer, or until the next message is due. */
        struct pollfd pfd = { .fd = h.fd, .events = POLLIN };
        struct timespec ts = { .tv_sec = IO_TIMEOUT_S }, *tp = &ts;
        if (next_due != 0) {
            uint64_t d = next_due > now ? next_due - now : 0;
            ts.tv_sec = (time_t)(d / 1000000000u);
            ts.tv_nsec = (long)(d % 1000000000u);
        }
        int pr = ppoll(&pfd, 1, tp, NULL);
        if (pr == -1 && errno != EINTR)
            bb_die("poll: %s", strerror(errno));
        if (pr == 0 && next_due == 0)
            bb_die("no answer to a publish for %d s", IO_TIMEOUT_S);
        if (pr > 0)
            http_recv_some(&h);
    }
    atomic_fetch_add(&c->pubs_done, 1);
    free(sched);
    free(ring);
    http_close(&h);
    return NULL;
}

/* ---------------------------------------------------------------- consumer */

/* Ack ids handed from the consumer to its acker. */
struct ackq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ids; /* "\"a\",\"b\"" ready to paste into {"ack_ids":[...]} */
    size_t len;
    size_t cap;
    uint64_t count;       /* ids in 'ids' */
    uint64_t outstanding; /* pulled and not yet acked (answered) */
    bool done;            /* the consumer has everything */
    struct bb_thread *t;
    struct http h;
};

static void *
acker_main(void *arg)
{
    struct ackq *q = arg;
    struct bb_cycle *c = q->t->c;
    char path[300];
    snprintf(path, sizeof path, "/v1/subscriptions/%s/ack", c->o->name);
    char *mine = NULL;
    size_t mine_cap = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->count == 0 && !q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->count == 0 && q->done) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        /* Take everything queued: at most --prefetch (<= 10,000) ids, what
         * one ack may carry. */
        uint64_t n = q->count;
        size_t cut = q->len;
        grow(&mine, &mine_cap, cut + 1);
        memcpy(mine, q->ids, cut);
        q->len = 0;
        q->count = 0;
        pthread_mutex_unlock(&q->mu);

        grow(&q->h.req, &q->h.req_cap, HDR_ROOM + cut + 32);
        char *p = q->h.req + HDR_ROOM;
        p = stpcpy(p, "{\"ack_ids\":[");
        memcpy(p, mine, cut);
        p += cut;
        p = stpcpy(p, "]}");
        const char *body;
        size_t blen;
        int st = http_post(&q->h, path, (size_t)(p - (q->h.req + HDR_ROOM)), &body, &blen);
        if (st != 200)
            bb_die("ack answered %d: %.*s", st, (int)(blen < 400 ? blen : 400), body);
        unsigned long long acked = 0;
        const char *a = strstr(body, "\"acked\":");
        if (a == NULL || sscanf(a + 8, "%llu", &acked) != 1)
            bb_die("ack: unexpected answer %.*s", (int)(blen < 400 ? blen : 400), body);
        if (acked != n)
            bb_die("ack of %" PRIu64 " ids settled %llu (leases lost?)", n, acked);
        atomic_fetch_add(&c->acked, n);
        pthread_mutex_lock(&q->mu);
        q->outstanding -= n;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    free(mine);
    return NULL;
}

void *
bb_consumer_main(void *arg)
{
    struct bb_thread *t = arg;
    struct bb_cycle *c = t->c;
    const struct bb_opts *o = c->o;
    const struct bb_event *ev = c->ev;
    struct http h;
    http_open(&h, o);
    grow(&h.req, &h.req_cap, HDR_ROOM + 128);
    struct ackq q = { .t = t };
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    http_open(&q.h, o);
    pthread_t acker;
    if (pthread_create(&acker, NULL, acker_main, &q) != 0)
        bb_die("pthread_create failed");
    char path[300];
    snprintf(path, sizeof path, "/v1/subscriptions/%s/pull", o->name);
    pthread_barrier_wait(&c->ready);
    pthread_barrier_wait(&c->go);

    while (!bb_all_in(c)) {
        pthread_mutex_lock(&q.mu);
        while (q.outstanding >= (uint64_t)o->prefetch)
            pthread_cond_wait(&q.cv, &q.mu);
        uint64_t room = (uint64_t)o->prefetch - q.outstanding;
        pthread_mutex_unlock(&q.mu);
        if (room > 1000)
            room = 1000;
        char *b = h.req + HDR_ROOM;
        int bl = snprintf(b, 128, "{\"max_messages\":%" PRIu64 ",\"wait_ms\":1000}", room);
        const char *body;
        size_t blen;
        int st = http_post(&h, path, (size_t)bl, &body, &blen);
        uint64_t now = bb_now_ns();
        if (st != 200)
            bb_die("pull answered %d: %.*s", st, (int)(blen < 400 ? blen : 400), body);
        /* {"messages":[{"ack_id":"S.T","attempt":A,"id":..,"data":<event>},...]} */
        const char *p = body, *end = body + blen;
        uint64_t n = 0;
        pthread_mutex_lock(&q.mu);
        while ((p = strstr(p, "{\"ack_id\":\"")) != NULL) {
            const char *id0 = p + 11, *id1 = strchr(id0, '"');
            if (id1 == NULL || id1 - id0 > 64)
                bb_die("pull: bad ack_id");
            const char *d = strstr(id1, "\"data\":");
            if (d == NULL)
                bb_die("pull: message without data");
            d += 7;
            uint64_t id, sent;
            if (bb_event_read(ev, d, (size_t)(end - d), &id, &sent) != 0 ||
                (size_t)(end - d) < ev->size + 1 || d[ev->size] != '}')
                bb_die("pull: the data of a message is not the event published");
            bb_deliver(t, id, sent, now);
            size_t il = (size_t)(id1 - id0);
            grow(&q.ids, &q.cap, q.len + il + 4);
            if (q.len)
                q.ids[q.len++] = ',';
            q.ids[q.len++] = '"';
            memcpy(q.ids + q.len, id0, il);
            q.len += il;
            q.ids[q.len++] = '"';
            q.count++;
            n++;
            p = d + ev->size;
        }
        q.outstanding += n;
        if (n)
            pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.mu);
        if (n == 0)
            bb_check_stall(c);
    }
    pthread_mutex_lock(&q.mu);
    q.done = true;
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
    pthread_join(acker, NULL);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv);
    free(q.ids);
    http_close(&q.h);
    http_close(&h);
    return NULL;
}

int
main(int argc, char **argv)
{
    identity_init();
    return bb_main(argc, argv, "bus");
}
