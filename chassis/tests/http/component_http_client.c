/* SPDX-License-Identifier: MIT */
/* Component tests of the HTTP client (http_client.h) against three real
 * testd_upstream processes: keep-alive reuse, deadlines, retries and their
 * backoff and budget, the circuit breaker, outlier ejection, transport
 * errors, header propagation, size limits and close with calls in flight.
 * The client runs on this process's loop; tests drive the loop until a
 * condition holds or a deadline passes, never sleeping. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "../../src/http/http_client_int.h"
#include "agora/err.h"
#include "agora/http_client.h"
#include "agora/mem.h"
#include "agora/metrics.h"
#include "agora/time.h"

extern char **environ;

#define NUP 3

struct proc {
    pid_t pid;
    int port;
    int out_fd; /* its stdout, kept open until it exits */
    char id[8]; /* "u0" ... */
};

static uv_loop_t loop;
static uv_timer_t guard; /* wakes uv_run while a test waits */
static struct proc ups[NUP];
static struct ag_http_client *ctl;     /* control-plane client, no resilience */
static struct ag_http_client *live[4]; /* clients of the running test, closed by teardown_test */

/* ---- Processes ---- */

/* Spawn 'path' with TESTD_ID='id' added to the environment; read "PORT n". */
static int
proc_start(struct proc *p, const char *path, const char *id)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = ag_calloc(n + 2, sizeof(*envp));
    for (size_t i = 0; i < n; i++)
        envp[i] = environ[i];
    char *idvar = ag_asprintf("TESTD_ID=%s", id);
    envp[n] = idvar;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = { (char *)path, NULL };
    int rc = posix_spawn(&p->pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    ag_free(envp);
    ag_free(idvar);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "cannot spawn '%s': %s\n", path, strerror(rc));
        return -1;
    }
    p->out_fd = fds[0];
    snprintf(p->id, sizeof(p->id), "%s", id);
    char line[64];
    size_t len = 0;
    uint64_t deadline = ag_time_mono_ms() + 10000;
    while (len < sizeof(line) - 1 && ag_time_mono_ms() < deadline) {
        struct pollfd pfd = { p->out_fd, POLLIN, 0 };
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(p->out_fd, line + len, 1);
        if (r <= 0)
            break;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    if (sscanf(line, "PORT %d", &p->port) != 1) {
        fprintf(stderr, "'%s' did not print its port\n", path);
        return -1;
    }
    return 0;
}

static void
proc_stop(struct proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    int status;
    while (waitpid(p->pid, &status, 0) == -1 && errno == EINTR) {
    }
    close(p->out_fd);
    p->pid = 0;
}

/* ---- Driving the loop ---- */

static void
on_guard(uv_timer_t *t)
{
    AG_UNUSED(t);
}

/* Run the loop until 'cond(arg)' holds or 'timeout_ms' passed; returns
 * whether it holds. */
static bool
run_until(bool (*cond)(void *), void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = ag_time_mono_ms() + timeout_ms;
    bool ok;
    /* (Re)start the guard each turn: a nested run_until (cond may make a
     * call) stops it when it returns. */
    while (!(ok = cond(arg)) && ag_time_mono_ms() < deadline) {
        uv_timer_start(&guard, on_guard, 5, 5);
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&guard);
    return ok;
}

static bool
flag_set(void *arg)
{
    return *(bool *)arg;
}

/* ---- Calls ---- */

struct res {
    bool done;
    int err;
    int status;
    int attempts;
    char instance[64];
    char x_instance[64];
    char body[4096];
    uint64_t sent_ms;
    uint64_t elapsed_ms;
};

static void
on_res(struct ag_http_client *c, const struct ag_http_client_response *r, void *udata)
{
    struct res *out = udata;
    AG_UNUSED(c);
    assert_false(out->done);
    out->done = true;
    out->err = r->err;
    out->status = r->status;
    out->attempts = r->attempts;
    out->elapsed_ms = ag_time_mono_ms() - out->sent_ms;
    snprintf(out->instance, sizeof(out->instance), "%s", r->instance ? r->instance : "");
    struct ag_str xi = ag_http_client_header(r, "X-Instance");
    snprintf(out->x_instance, sizeof(out->x_instance), "%.*s", (int)xi.len, xi.ptr ? xi.ptr : "");
    size_t n = AG_MIN(r->body.len, sizeof(out->body) - 1);
    if (n > 0)
        memcpy(out->body, r->body.ptr, n);
    out->body[n] = '\0';
}

static void
send_async(struct ag_http_client *c, const struct ag_http_client_request *req, struct res *out)
{
    memset(out, 0, sizeof(*out));
    out->sent_ms = ag_time_mono_ms();
    assert_int_equal(ag_http_client_send(c, req, on_res, out), 0);
    assert_false(out->done); /* never called back from inside send */
}

static void
call_sync(struct ag_http_client *c, const struct ag_http_client_request *req, struct res *out)
{
    send_async(c, req, out);
    assert_true(run_until(flag_set, &out->done, 15000));
}

static void
get(struct ag_http_client *c, const char *upstream, const char *url, struct res *out)
{
    struct ag_http_client_request req = { .method = "GET", .upstream = upstream, .url = url };
    call_sync(c, &req, out);
}

/* ---- Control plane of the upstreams ---- */

static void
ctl_mode(int i, const char *mode)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/control/mode", ups[i].port);
    struct ag_http_client_request req = {
        .method = "POST", .url = url, .body = mode, .body_len = strlen(mode), .max_retries = -1
    };
    struct res r;
    call_sync(ctl, &req, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
}

static void
ctl_stats(int i, int64_t *out_requests, int64_t *out_connections)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/control/stats", ups[i].port);
    struct ag_http_client_request req = { .method = "GET", .url = url, .max_retries = -1 };
    struct res r;
    call_sync(ctl, &req, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    *out_requests = json_integer_value(json_object_get(doc, "requests"));
    if (out_connections != NULL)
        *out_connections = json_integer_value(json_object_get(doc, "connections"));
    json_decref(doc);
}

static int64_t
requests_of(int i)
{
    int64_t n;
    ctl_stats(i, &n, NULL);
    return n;
}

/* Point upstream 'name' of 'c' at the upstream processes listed in 'idx'. */
static void
use_upstreams(struct ag_http_client *c, const char *name, const int *idx, size_t n)
{
    struct ag_upstream_instance insts[NUP];
    for (size_t k = 0; k < n; k++)
        insts[k] = (struct ag_upstream_instance){ .id = ups[idx[k]].id,
                                                  .host = "127.0.0.1",
                                                  .port = ups[idx[k]].port };
    assert_int_equal(ag_http_client_set_upstream(c, name, insts, n), 0);
}

static struct ag_http_client *
client_new(const struct ag_http_client_config *cfg)
{
    struct ag_http_client *c;
    assert_int_equal(ag_http_client_new(&loop, cfg, &c), 0);
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] == NULL) {
            live[i] = c;
            break;
        }
    }
    return c;
}

static void
on_closed(void *udata)
{
    *(bool *)udata = true;
}

static void
client_forget(struct ag_http_client *c)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] == c)
            live[i] = NULL;
    }
}

static void
client_close(struct ag_http_client *c)
{
    client_forget(c);
    bool closed = false;
    ag_http_client_close(c, on_closed, &closed);
    assert_true(run_until(flag_set, &closed, 5000));
}

/* ---- Fixtures ---- */

static int
setup_group(void **state)
{
    AG_UNUSED(state);
    signal(SIGPIPE, SIG_IGN);
    json_set_alloc_funcs(ag_malloc, ag_free);
    /* The client must ignore proxies from the environment. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    const char *bd = getenv("AGORA_BUILD_DIR");
    char *path = ag_asprintf("%s/chassis/testd_upstream", bd ? bd : "build");
    for (int i = 0; i < NUP; i++) {
        char id[8];
        snprintf(id, sizeof(id), "u%d", i);
        if (proc_start(&ups[i], path, id) != 0) {
            ag_free(path);
            return -1;
        }
    }
    ag_free(path);
    if (uv_loop_init(&loop) != 0)
        return -1;
    uv_timer_init(&loop, &guard);
    struct ag_http_client_config cfg = { .max_retries = -1, .breaker_failure_rate = 101 };
    return ag_http_client_new(&loop, &cfg, &ctl) == 0 ? 0 : -1;
}

static int
teardown_group(void **state)
{
    AG_UNUSED(state);
    bool closed = false;
    ag_http_client_close(ctl, on_closed, &closed);
    run_until(flag_set, &closed, 5000);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    for (int i = 0; i < NUP; i++)
        proc_stop(&ups[i]);
    if (rc != 0) {
        fprintf(stderr, "loop not empty at the end: %s\n", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Every test starts with healthy upstreams. */
static int
setup_test(void **state)
{
    AG_UNUSED(state);
    for (int i = 0; i < NUP; i++)
        ctl_mode(i, "ok");
    return 0;
}

/* Close what a failed test left open, so the next ones start clean. */
static int
teardown_test(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] != NULL)
            client_close(live[i]);
    }
    return 0;
}

/* ---- Tests ---- */

/* Many sequential calls share one pooled keep-alive connection; concurrent
 * calls stay within max_host_connections; metrics count the outcomes. */
static void
test_keepalive_reuse(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .max_host_connections = 4 };
    struct ag_http_client *c = client_new(&cfg);
    struct ag_metrics *reg = ag_metrics_new();
    ag_http_client_metrics(c, reg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    int64_t req0;
    int64_t conn0;
    ctl_stats(0, &req0, &conn0);
    for (int i = 0; i < 50; i++) {
        struct res r;
        get(c, "up", "/echo", &r);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.instance, "u0");
        assert_string_equal(r.x_instance, "u0");
        assert_int_equal(r.attempts, 1);
    }
    int64_t req1;
    int64_t conn1;
    ctl_stats(0, &req1, &conn1);
    assert_int_equal(req1 - req0, 50);
    /* One connection for the 50 calls, at most one more for control. */
    assert_true(conn1 - conn0 <= 2);

    /* 20 overlapping calls over at most 4 connections. */
    static struct res rs[20];
    struct ag_http_client_request req = { .method = "GET", .upstream = "up", .url = "/slow?ms=30" };
    for (int i = 0; i < 20; i++)
        send_async(c, &req, &rs[i]);
    for (int i = 0; i < 20; i++) {
        assert_true(run_until(flag_set, &rs[i].done, 10000));
        assert_int_equal(rs[i].status, 200);
    }
    int64_t conn2;
    ctl_stats(0, &req1, &conn2);
    assert_true(conn2 - conn1 <= 4 + 1);

    struct ag_buf out = AG_BUF_INIT(0);
    assert_int_equal(ag_metrics_render(reg, &out), 0);
    assert_non_null(strstr(ag_buf_cstr(&out),
                           "http_client_requests_total{upstream=\"up\",outcome=\"2xx\"} 70"));
    assert_non_null(strstr(ag_buf_cstr(&out), "http_client_breaker_state{upstream=\"up\"} 0"));
    ag_buf_release(&out);
    client_close(c);
    ag_metrics_free(reg);
}

/* A hung upstream: the callback arrives at the deadline with AG_ETIMEDOUT. */
static void
test_deadline_hang(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client *c = client_new(NULL);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "hang");
    struct ag_http_client_request req = {
        .method = "GET", .upstream = "up", .url = "/echo", .timeout_ms = 300
    };
    struct res r;
    call_sync(c, &req, &r);
    assert_int_equal(r.err, AG_ETIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.attempts, 1);
    assert_true(r.elapsed_ms >= 290);
    assert_true(r.elapsed_ms < 600);
    client_close(c);
}

/* A GET answered 503 by one instance is retried on another. */
static void
test_retry_other_instance(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .backoff_base_ms = 5 };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0, 1 };
    use_upstreams(c, "up", idx, 2);
    ctl_mode(0, "fail");
    int64_t a0 = requests_of(0);
    int64_t b0 = requests_of(1);
    struct res r;
    get(c, "up", "/echo", &r); /* round robin starts at u0 */
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.instance, "u1");
    assert_string_equal(r.x_instance, "u1");
    assert_int_equal(requests_of(0) - a0, 1);
    assert_int_equal(requests_of(1) - b0, 1);
    client_close(c);
}

/* POST is not retried; with an Idempotency-Key or force_idempotent it is. */
static void
test_post_retries(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .backoff_base_ms = 2,
                                         .backoff_max_ms = 5,
                                         .breaker_failure_rate = 101 };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "fail");
    int64_t n0 = requests_of(0);
    struct ag_http_client_request req = {
        .method = "POST", .upstream = "up", .url = "/echo", .body = "{}", .body_len = 2
    };
    struct res r;
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(requests_of(0) - n0, 1);

    struct ag_http_client_header key = { "Idempotency-Key", "k-1" };
    req.headers = &key;
    req.nheaders = 1;
    n0 = requests_of(0);
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 3); /* 1 + the default 2 retries */
    assert_int_equal(requests_of(0) - n0, 3);

    req.headers = NULL;
    req.nheaders = 0;
    req.force_idempotent = true;
    req.max_retries = 1;
    call_sync(c, &req, &r);
    assert_int_equal(r.attempts, 2);

    /* Once the upstream recovers, a retried POST succeeds. */
    req.max_retries = 0;
    ctl_mode(0, "ok");
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    client_close(c);
}

/* 429 with Retry-After is retried when the wait fits in the deadline. */
static void
test_retry_after_429(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client *c = client_new(NULL);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    struct ag_http_client_request req = {
        .method = "GET", .upstream = "up", .url = "/status/429?retry_after=1", .timeout_ms = 500
    };
    struct res r;
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 1);
    assert_true(r.elapsed_ms < 400);
    req.timeout_ms = 4000;
    req.max_retries = 1;
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 2);
    assert_true(r.elapsed_ms >= 990);
    client_close(c);
}

struct waits {
    int n;
    int retry[64];
    uint64_t wait_ms[64];
};

static void
on_backoff(struct ag_http_client *c, int retry, uint64_t wait_ms, void *udata)
{
    struct waits *w = udata;
    AG_UNUSED(c);
    if (w->n < 64) {
        w->retry[w->n] = retry;
        w->wait_ms[w->n] = wait_ms;
        w->n++;
    }
}

/* Each backoff wait is drawn from [0, min(max, base * 2^(n-1))], the waits
 * vary, and the call really waits that long. */
static void
test_backoff_bounds(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = {
        .backoff_base_ms = 40,
        .backoff_max_ms = 100,
        .max_retries = 4,
        .retry_budget_min = 1000,
        .breaker_failure_rate = 101,
    };
    struct ag_http_client *c = client_new(&cfg);
    struct waits w = { 0 };
    ag__http_client_on_backoff(c, on_backoff, &w);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "fail");
    bool varied = false;
    for (int call = 0; call < 5; call++) {
        int first = w.n;
        struct res r;
        get(c, "up", "/echo", &r);
        assert_int_equal(r.status, 503);
        assert_int_equal(r.attempts, 5);
        assert_int_equal(w.n - first, 4);
        uint64_t total = 0;
        for (int k = first; k < w.n; k++) {
            uint64_t cap = AG_MIN(100u, 40u << (w.retry[k] - 1));
            assert_int_equal(w.retry[k], k - first + 1);
            assert_true(w.wait_ms[k] <= cap);
            total += w.wait_ms[k];
            if (w.wait_ms[k] != w.wait_ms[first])
                varied = true;
        }
        /* The waits are real: the call lasts at least their sum. */
        assert_true(r.elapsed_ms + 2 >= total);
        assert_true(r.elapsed_ms <= total + 500);
    }
    assert_true(varied);
    client_close(c);
}

/* Under a total outage retries stay within the budget. */
static void
test_retry_budget(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = {
        .backoff_base_ms = 1,
        .backoff_max_ms = 2,
        .retry_budget_ratio = 0.2,
        .retry_budget_min = 5,
        .breaker_failure_rate = 101,
    };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "fail");
    int64_t n0 = requests_of(0);
    const int calls = 40;
    int attempts = 0;
    for (int i = 0; i < calls; i++) {
        struct res r;
        get(c, "up", "/echo", &r);
        assert_int_equal(r.status, 503);
        attempts += r.attempts;
    }
    int64_t seen = requests_of(0) - n0;
    assert_int_equal(seen, attempts);
    /* Without a budget: 3 attempts per call (120). */
    assert_true(attempts <= (int)(calls * 1.2) + 5);
    assert_true(attempts > calls); /* some retries were allowed */
    client_close(c);
}

struct breaker_wait {
    struct ag_http_client *c;
    enum ag_breaker_state want;
};

static bool
breaker_is(void *arg)
{
    struct breaker_wait *bw = arg;
    return ag_http_client_breaker(bw->c, "up") == bw->want;
}

/* closed -> open once the failure rate over min_calls reaches the
 * threshold (fail fast, the upstream sees nothing) -> half-open after the
 * cool-down -> closed on a good probe; a bad probe re-opens; only
 * breaker_probes probes at once. */
static void
test_breaker(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .max_retries = -1,
                                         .breaker_min_calls = 3,
                                         .breaker_failure_rate = 75,
                                         .breaker_open_ms = 300,
                                         .breaker_probes = 1 };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "fail");
    struct res r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_CLOSED);
        get(c, "up", "/echo", &r);
        assert_int_equal(r.status, 503);
    }
    uint64_t opened = ag_time_mono_ms();
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_OPEN);
    int64_t n0 = requests_of(0);
    for (int i = 0; i < 5; i++) {
        get(c, "up", "/echo", &r);
        assert_int_equal(r.err, AG_EUNAVAIL);
        assert_true(r.elapsed_ms < 100);
    }
    assert_int_equal(requests_of(0), n0);

    struct breaker_wait bw = { c, AG_BREAKER_HALF_OPEN };
    assert_true(run_until(breaker_is, &bw, 3000));
    assert_true(ag_time_mono_ms() - opened >= 280);

    /* Half-open: one probe at a time (it hangs), others fail fast. */
    ctl_mode(0, "hang");
    struct ag_http_client_request req = { .method = "GET", .upstream = "up", .url = "/echo" };
    struct res probe;
    send_async(c, &req, &probe);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.err, AG_EUNAVAIL);
    ctl_mode(0, "ok"); /* releases the probe with a 200 */
    assert_true(run_until(flag_set, &probe.done, 5000));
    assert_int_equal(probe.status, 200);
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_CLOSED);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.status, 200);

    /* Open again (the window restarted at the close: 1 success, then
     * failures until 3 of 4 = 75%), then a failed probe re-opens at once. */
    ctl_mode(0, "500");
    for (int i = 0; i < 2; i++) {
        get(c, "up", "/echo", &r);
        assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_CLOSED);
    }
    get(c, "up", "/echo", &r);
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_OPEN);
    assert_true(run_until(breaker_is, &bw, 3000));
    n0 = requests_of(0);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.status, 500);
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_OPEN);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.err, AG_EUNAVAIL);
    assert_int_equal(requests_of(0) - n0, 1);

    /* 4xx answers count as successes. */
    ctl_mode(0, "ok");
    assert_true(run_until(breaker_is, &bw, 3000));
    for (int i = 0; i < 5; i++) {
        get(c, "up", "/status/404", &r);
        assert_int_equal(r.status, 404);
    }
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_CLOSED);
    client_close(c);
}

/* Slow answers open the breaker by their own rate although every one of
 * them is a 200; fast ones below the rate do not. */
static void
test_breaker_slow(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = {
        .max_retries = -1,
        .breaker_min_calls = 4,
        .breaker_failure_rate = 101,
        .breaker_slow_ms = 60,
        .breaker_slow_rate = 50,
        .breaker_open_ms = 60000,
    };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    ctl_mode(0, "ok");
    struct res r;
    get(c, "up", "/echo", &r);
    get(c, "up", "/echo", &r);
    get(c, "up", "/slow?ms=80", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_CLOSED); /* 3 calls < 4 */
    get(c, "up", "/slow?ms=80", &r);
    assert_int_equal(r.status, 200);
    /* 2 slow of 4 = 50%: open, and the next call fails fast. */
    assert_int_equal(ag_http_client_breaker(c, "up"), AG_BREAKER_OPEN);
    int64_t n0 = requests_of(0);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.err, AG_EUNAVAIL);
    assert_int_equal(requests_of(0), n0);
    client_close(c);
}

struct eject_wait {
    struct ag_http_client *c;
    const char *id;
    bool want;
};

static bool
ejected_is(void *arg)
{
    struct eject_wait *ew = arg;
    return ag_http_client_is_ejected(ew->c, "up", ew->id) == ew->want;
}

/* An instance failing eject_failures times in a row is skipped for
 * eject_ms, comes back by itself, and is ejected for twice as long the
 * next time; never more than max_ejected_percent of the upstream. */
static void
test_ejection(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = {
        .max_retries = -1, .eject_failures = 2, .eject_ms = 300, .breaker_failure_rate = 101
    };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0, 1 };
    use_upstreams(c, "up", idx, 2);
    ctl_mode(0, "fail");
    struct res r;
    /* Round robin: u0 fails, u1 answers, u0 fails again: ejected. */
    for (int i = 0; i < 3; i++)
        get(c, "up", "/echo", &r);
    uint64_t ejected_at = ag_time_mono_ms();
    assert_true(ag_http_client_is_ejected(c, "up", "u0"));
    assert_false(ag_http_client_is_ejected(c, "up", "u1"));
    int64_t n0 = requests_of(0);
    for (int i = 0; i < 10; i++) {
        get(c, "up", "/echo", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.instance, "u1");
    }
    assert_int_equal(requests_of(0), n0);

    ctl_mode(0, "ok");
    struct eject_wait ew = { c, "u0", false };
    assert_true(run_until(ejected_is, &ew, 3000));
    uint64_t back_at = ag_time_mono_ms();
    assert_true(back_at - ejected_at >= 280);
    bool seen_u0 = false;
    for (int i = 0; i < 4; i++) {
        get(c, "up", "/echo", &r);
        assert_int_equal(r.status, 200);
        seen_u0 |= strcmp(r.instance, "u0") == 0;
    }
    assert_true(seen_u0);

    /* Second ejection lasts twice as long. */
    ctl_mode(0, "fail");
    ew.want = true;
    for (int i = 0; i < 6 && !ejected_is(&ew); i++)
        get(c, "up", "/echo", &r);
    assert_true(ejected_is(&ew));
    ejected_at = ag_time_mono_ms();
    ctl_mode(0, "ok");
    ew.want = false;
    assert_true(run_until(ejected_is, &ew, 5000));
    assert_true(ag_time_mono_ms() - ejected_at >= 580);

    /* Both failing: only one of the two may be ejected. */
    ctl_mode(0, "fail");
    ctl_mode(1, "fail");
    for (int i = 0; i < 12; i++)
        get(c, "up", "/echo", &r);
    int ejected =
        ag_http_client_is_ejected(c, "up", "u0") + ag_http_client_is_ejected(c, "up", "u1");
    assert_int_equal(ejected, 1);
    client_close(c);
}

/* A connection closed without an answer is AG_EIO; X-Request-ID and
 * traceparent are propagated; a too large response is AG_ETOOBIG. */
static void
test_errors_and_headers(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .max_response_bytes = 1000, .backoff_base_ms = 2 };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);

    ctl_mode(0, "reset");
    struct ag_http_client_request post = {
        .method = "POST", .upstream = "up", .url = "/echo", .body = "x", .body_len = 1
    };
    struct res r;
    call_sync(c, &post, &r);
    assert_int_equal(r.err, AG_EIO);
    assert_int_equal(r.status, 0);
    get(c, "up", "/echo", &r);
    assert_int_equal(r.err, AG_EIO);
    assert_int_equal(r.attempts, 3);
    ctl_mode(0, "ok");

    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    struct ag_http_client_header h[] = { { "Idempotency-Key", "idem-7" }, { "X-Extra", "1" } };
    struct ag_http_client_request req = {
        .method = "POST",
        .upstream = "up",
        .url = "/echo?a=1",
        .headers = h,
        .nheaders = 2,
        .body = "{\"k\":1}",
        .body_len = 7,
        .request_id = "req-123",
        .traceparent = tp,
    };
    call_sync(c, &req, &r);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(doc, "query")), "a=1");
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), "req-123");
    assert_string_equal(json_string_value(json_object_get(doc, "traceparent")), tp);
    assert_string_equal(json_string_value(json_object_get(doc, "idempotency_key")), "idem-7");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "{\"k\":1}");
    assert_string_equal(json_string_value(json_object_get(doc, "content_type")),
                        "application/json");
    json_decref(doc);

    get(c, "up", "/big?n=1000", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    get(c, "up", "/big?n=5000", &r);
    assert_int_equal(r.err, AG_ETOOBIG);
    assert_int_equal(r.attempts, 1);

    /* Direct URLs, and an upstream nobody defined. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/status/418", ups[1].port);
    struct ag_http_client_request direct = { .method = "GET", .url = url };
    call_sync(c, &direct, &r);
    assert_int_equal(r.status, 418);
    assert_string_equal(r.x_instance, "u1");
    get(c, "nobody", "/echo", &r);
    assert_int_equal(r.err, AG_EUNAVAIL);

    /* Bad requests fail synchronously. */
    struct ag_http_client_request bad = { .method = "GET", .upstream = "up", .url = "echo" };
    assert_int_equal(ag_http_client_send(c, &bad, on_res, &r), AG_EINVAL);
    struct ag_http_client_header crlf = { "X-A", "a\r\nB: c" };
    bad = (struct ag_http_client_request){
        .method = "GET", .upstream = "up", .url = "/", .headers = &crlf, .nheaders = 1
    };
    assert_int_equal(ag_http_client_send(c, &bad, on_res, &r), AG_EINVAL);
    bad = (struct ag_http_client_request){ .method = "GET", .url = "https://example.com/" };
    assert_int_equal(ag_http_client_send(c, &bad, on_res, &r), AG_EINVAL);
    client_close(c);
}

static bool
hook_fired(void *arg)
{
    return ((struct waits *)arg)->n > 0;
}

struct req_count {
    int up;
    int64_t want;
};

static bool
requests_reached(void *arg)
{
    struct req_count *rc = arg;
    return requests_of(rc->up) >= rc->want;
}

/* Closing with calls in flight and in backoff: every callback runs once
 * with AG_ECLOSED, later sends fail, and the loop can close (group
 * teardown). */
static void
test_close_in_flight(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .backoff_base_ms = 20000, .backoff_max_ms = 20000 };
    struct ag_http_client *c = client_new(&cfg);
    struct waits w = { 0 };
    ag__http_client_on_backoff(c, on_backoff, &w);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    int idx2[] = { 1 };
    use_upstreams(c, "down", idx2, 1);
    ctl_mode(0, "hang");
    ctl_mode(1, "fail");
    struct req_count rc = { 0, requests_of(0) + 3 };
    static struct res rs[4];
    struct ag_http_client_request req = { .method = "GET", .upstream = "up", .url = "/echo" };
    for (int i = 0; i < 3; i++)
        send_async(c, &req, &rs[i]);
    assert_true(run_until(requests_reached, &rc, 5000));
    /* This one fails, then waits up to 20 s before its retry. */
    req.upstream = "down";
    req.timeout_ms = 60000;
    send_async(c, &req, &rs[3]);
    assert_true(run_until(hook_fired, &w, 5000));
    bool closed = false;
    client_forget(c);
    ag_http_client_close(c, on_closed, &closed);
    for (int i = 0; i < 4; i++) {
        assert_true(rs[i].done);
        assert_int_equal(rs[i].err, AG_ECLOSED);
        assert_int_equal(rs[i].status, 0);
    }
    assert_int_equal(rs[3].attempts, 1);
    assert_int_equal(ag_http_client_send(c, &req, on_res, &rs[0]), AG_ECLOSED);
    assert_true(run_until(flag_set, &closed, 5000));
}

/* ---- The transport's own cases ---- */

struct sleep_until {
    uint64_t until_ms;
};

static bool
time_reached(void *arg)
{
    return ag_time_mono_ms() >= ((struct sleep_until *)arg)->until_ms;
}

/* Run the loop for 'ms' (connections see their peer's close meanwhile). */
static void
run_for(uint64_t ms)
{
    struct sleep_until su = { ag_time_mono_ms() + ms };
    run_until(time_reached, &su, ms + 1000);
}

static int64_t
connections_of(int i)
{
    int64_t req;
    int64_t conns;
    ctl_stats(i, &req, &conns);
    return conns;
}

/* Chunked (with an extension and a trailer), close-delimited, split across
 * many one-byte reads, and 1xx interim responses before the real one. */
static void
test_transport_framing(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client *c = client_new(NULL);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    struct res r;
    get(c, "up", "/raw/chunked", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    get(c, "up", "/raw/close-delimited", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "until the end");
    get(c, "up", "/raw/split", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abcdefg");
    get(c, "up", "/raw/interim", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "final");
    assert_int_equal(r.attempts, 1);
    client_close(c);
}

static void
on_res_head(struct ag_http_client *c, const struct ag_http_client_response *r, void *udata)
{
    on_res(c, r, udata);
    /* Header values are trimmed; interim heads are forgotten. */
    struct ag_str v = ag_http_client_header(r, "X-Raw");
    if (v.ptr != NULL)
        assert_true(ag_str_eq_cstr(v, "split"));
    assert_null(ag_http_client_header(r, "Link").ptr);
}

/* Connection: close is honoured (a new connection next time), a keep-alive
 * connection the server closes while idle is replaced without an error,
 * HEAD reads no body and keeps the connection, and response headers are
 * sliced correctly. */
static void
test_transport_connections(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client *c = client_new(NULL);
    int idx[] = { 0 };
    use_upstreams(c, "up", idx, 1);
    struct res r;
    int64_t conn0 = connections_of(0);
    get(c, "up", "/raw/close-after", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    get(c, "up", "/raw/close-after", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(connections_of(0) - conn0, 2); /* control reuses its own */

    /* Chunked without Connection: close; the server closes 50 ms later. */
    get(c, "up", "/raw/chunked?close_ms=50", &r);
    assert_string_equal(r.body, "hello world");
    size_t conns;
    size_t idle;
    ag__http_client_conn_stats(c, &conns, &idle);
    assert_int_equal(idle, 1);
    run_for(200);
    ag__http_client_conn_stats(c, &conns, &idle);
    assert_int_equal(conns, 0); /* the close was noticed while idle */
    get(c, "up", "/echo", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);

    /* HEAD: the Content-Length is not a body; the connection stays usable. */
    conn0 = connections_of(0);
    struct ag_http_client_request head = { .method = "HEAD", .upstream = "up", .url = "/echo" };
    call_sync(c, &head, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    get(c, "up", "/echo", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(connections_of(0) - conn0, 0);

    struct ag_http_client_request split = { .method = "GET",
                                            .upstream = "up",
                                            .url = "/raw/split" };
    memset(&r, 0, sizeof(r));
    assert_int_equal(ag_http_client_send(c, &split, on_res_head, &r), 0);
    assert_true(run_until(flag_set, &r.done, 5000));
    assert_string_equal(r.body, "abcdefg");
    client_close(c);
}

/* More concurrent calls than max_host_connections wait in the queue and
 * all complete over that many connections; "localhost" is resolved. */
static void
test_transport_limits_and_names(void **state)
{
    AG_UNUSED(state);
    struct ag_http_client_config cfg = { .max_host_connections = 2 };
    struct ag_http_client *c = client_new(&cfg);
    int idx[] = { 1 };
    use_upstreams(c, "up", idx, 1);
    int64_t conn0 = connections_of(1);
    static struct res rs[12];
    struct ag_http_client_request req = { .method = "GET", .upstream = "up", .url = "/slow?ms=20" };
    for (int i = 0; i < 12; i++)
        send_async(c, &req, &rs[i]);
    size_t conns;
    size_t idle;
    ag__http_client_conn_stats(c, &conns, &idle);
    assert_true(conns <= 2);
    for (int i = 0; i < 12; i++) {
        assert_true(run_until(flag_set, &rs[i].done, 10000));
        assert_int_equal(rs[i].err, 0);
        assert_int_equal(rs[i].status, 200);
        assert_int_equal(rs[i].attempts, 1);
    }
    assert_true(connections_of(1) - conn0 <= 2 + 1);

    char url[128];
    snprintf(url, sizeof(url), "http://localhost:%d/echo?n=1", ups[1].port);
    struct ag_http_client_request byname = { .method = "GET", .url = url };
    struct res r;
    call_sync(c, &byname, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.x_instance, "u1");
    call_sync(c, &byname, &r); /* from the cache */
    assert_int_equal(r.status, 200);
    snprintf(url, sizeof(url), "http://no-such-host.invalid:%d/echo", ups[1].port);
    struct ag_http_client_request bad = { .method = "GET", .url = url, .max_retries = -1 };
    call_sync(c, &bad, &r);
    assert_int_equal(r.err, AG_EIO);
    client_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_deadline_hang, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_retry_other_instance, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_post_retries, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_retry_after_429, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_backoff_bounds, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_retry_budget, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_breaker, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_breaker_slow, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_ejection, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_errors_and_headers, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_transport_framing, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_transport_connections, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_transport_limits_and_names, setup_test, teardown_test),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
