/* SPDX-License-Identifier: MIT */
/* Component tests of the registry client (registry.h) against the real
 * registry binary (platform/registry) and testd_upstream instances:
 * registration kept alive by heartbeats, deregistration on stop, start
 * while the registry is down, service watches mirrored into the HTTP
 * client's upstreams, configuration watches with changes and deletions, and
 * re-registration after a registry restart. The clients run on this
 * process's loop; tests drive it until a condition holds or a deadline
 * passes, never sleeping. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/http_client.h"
#include "agora/mem.h"
#include "agora/registry.h"
#include "agora/time.h"

extern char **environ;

struct proc {
    pid_t pid;
    int port;
};

static uv_loop_t loop;
static uv_timer_t guard; /* wakes uv_run while a test waits */
static struct ag_http_client *http;
/* The registry needs a service identity; the tests sign as the operator,
 * who may register instances of any service, with its key derived from
 * TEST_KEY as the supervisor derives it; the registry gets its public key. */
#define TEST_KEY "5eed5eed00112233445566778899aabbccddeeff0011223344556677889900ff"
static struct ag_identity_self operator_self;
static char pubkeys_var[128]; /* "AGORA_SERVICE_PUBKEYS=agora=<hex>" */
static char datadir[256];     /* the registry's data directory (kept across restarts) */
static struct proc registry;
static struct proc testd[2];
static int testd_fd[2];
static char *build_dir;
static struct ag_registry *live[4]; /* registry clients of the running test */

/* ---- Processes ---- */

/* Spawn 'path' with 'extra' ("NAME=value", NULL-terminated) put before
 * the inherited environment (getenv finds the first), and the file actions
 * 'fa'. Returns the pid or -1. */
static pid_t
spawn_fa(const char *path, const char *const *extra, const posix_spawn_file_actions_t *fa)
{
    size_t n = 0;
    size_t k = 0;
    while (environ[n] != NULL)
        n++;
    while (extra[k] != NULL)
        k++;
    char **envp = ag_calloc(n + k + 1, sizeof(*envp));
    for (size_t i = 0; i < k; i++)
        envp[i] = (char *)extra[i];
    for (size_t i = 0; i < n; i++)
        envp[k + i] = environ[i];
    char *argv[] = { (char *)path, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, path, fa, NULL, argv, envp);
    ag_free(envp);
    if (rc != 0) {
        fprintf(stderr, "cannot spawn '%s': %s\n", path, strerror(rc));
        return -1;
    }
    return pid;
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
    uv_timer_start(&guard, on_guard, 5, 5);
    bool ok;
    while (!(ok = cond(arg)) && ag_time_mono_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    return ok;
}

static bool
flag_set(void *arg)
{
    return *(bool *)arg;
}

static bool
never(void *arg)
{
    AG_UNUSED(arg);
    return false;
}

/* Keep the loop (and so the clients) running for 'ms'. */
static void
run_for(uint64_t ms)
{
    run_until(never, NULL, ms);
}

/* ---- The registry process, its log read on the loop ---- */

struct logpipe {
    uv_pipe_t pipe;
    bool open;       /* the handle is not closed yet */
    char line[8192]; /* current line (longer lines are cut) */
    size_t len;
    int port;  /* from the "listening" line, 0 before */
    int logfd; /* copy of everything, for post-mortems */
};

static struct logpipe rlog;

static void
on_log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char space[65536];
    AG_UNUSED(h);
    AG_UNUSED(suggested);
    *buf = uv_buf_init(space, sizeof(space));
}

static void
on_log_closed(uv_handle_t *h)
{
    AG_UNUSED(h);
    rlog.open = false;
}

static void
log_line(const char *line, size_t len)
{
    struct ag_str s = ag_str_make(line, len);
    const char *l = memmem(s.ptr, s.len, "\"msg\":\"listening\"", 17);
    const char *p = l ? memmem(l, len - (size_t)(l - line), "\"port\":", 7) : NULL;
    if (p == NULL)
        return;
    p += 7;
    size_t n = 0;
    while (p + n < line + len && p[n] >= '0' && p[n] <= '9')
        n++;
    uint64_t port;
    if (ag_str_to_u64(ag_str_make(p, n), 65535, &port) == 0)
        rlog.port = (int)port;
}

static void
on_log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_log_closed);
        return;
    }
    if (rlog.logfd >= 0 && nread > 0 && write(rlog.logfd, buf->base, (size_t)nread) < 0)
        rlog.logfd = -1;
    for (ssize_t i = 0; i < nread; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            log_line(rlog.line, rlog.len);
            rlog.len = 0;
        } else if (rlog.len < sizeof(rlog.line)) {
            rlog.line[rlog.len++] = ch;
        }
    }
}

static bool
registry_listening(void *arg)
{
    AG_UNUSED(arg);
    return rlog.port != 0 || !rlog.open;
}

static bool
registry_log_closed(void *arg)
{
    AG_UNUSED(arg);
    return !rlog.open;
}

/* Start the registry on 'port' (0: any free one) with the data directory
 * 'datadir'; wait for its "listening" line. */
static int
registry_start(int port)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    char *path = ag_asprintf("%s/platform/registry/registry", build_dir);
    char *port_var = ag_asprintf("AGORA_HTTP_PORT=%d", port);
    char *dir_var = ag_asprintf("AGORA_DATA_DIR=%s", datadir);
    const char *extra[] = { port_var,
                            dir_var,
                            "AGORA_LOG_LEVEL=info",
                            "AGORA_ACCESS_LOG=false",
                            "AGORA_SHUTDOWN_TIMEOUT=1s",
                            "AGORA_INTERNAL_KEY=" TEST_KEY,
                            pubkeys_var,
                            NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    registry.pid = spawn_fa(path, extra, &fa);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    ag_free(path);
    ag_free(port_var);
    ag_free(dir_var);
    if (registry.pid <= 0) {
        close(fds[0]);
        return -1;
    }
    rlog.port = 0;
    rlog.len = 0;
    uv_pipe_init(&loop, &rlog.pipe, 0);
    uv_pipe_open(&rlog.pipe, fds[0]);
    rlog.open = true;
    uv_read_start((uv_stream_t *)&rlog.pipe, on_log_alloc, on_log_read);
    run_until(registry_listening, NULL, 15000);
    registry.port = rlog.port;
    return registry.port > 0 ? 0 : -1;
}

/* SIGTERM the registry; its log pipe reaches EOF when it has exited. */
static void
registry_stop(void)
{
    if (registry.pid <= 0)
        return;
    kill(registry.pid, SIGTERM);
    run_until(registry_log_closed, NULL, 15000);
    int status;
    while (waitpid(registry.pid, &status, 0) == -1 && errno == EINTR) {
    }
    registry.pid = 0;
}

/* Start testd_upstream 'i' (TESTD_ID=t<i>) and read its "PORT n" line. */
static int
testd_start(int i)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    char *path = ag_asprintf("%s/chassis/testd_upstream", build_dir);
    char *id_var = ag_asprintf("TESTD_ID=t%d", i);
    const char *extra[] = { id_var, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    testd[i].pid = spawn_fa(path, extra, &fa);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    ag_free(path);
    ag_free(id_var);
    testd_fd[i] = fds[0];
    char line[64];
    size_t len = 0;
    uint64_t deadline = ag_time_mono_ms() + 10000;
    while (testd[i].pid > 0 && len < sizeof(line) - 1 && ag_time_mono_ms() < deadline) {
        struct pollfd pfd = { fds[0], POLLIN, 0 };
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (read(fds[0], line + len, 1) != 1 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    return sscanf(line, "PORT %d", &testd[i].port) == 1 ? 0 : -1;
}

/* ---- Calls to the registry (test side) ---- */

struct res {
    bool done;
    int err;
    int status;
    char x_instance[32];
    char *body; /* owned */
};

static void
on_res(struct ag_http_client *c, const struct ag_http_client_response *r, void *udata)
{
    struct res *out = udata;
    AG_UNUSED(c);
    out->done = true;
    out->err = r->err;
    out->status = r->status;
    struct ag_str xi = ag_http_client_header(r, "X-Instance");
    snprintf(out->x_instance, sizeof(out->x_instance), "%.*s", (int)xi.len, xi.ptr ? xi.ptr : "");
    out->body = ag_strndup(r->body.ptr ? r->body.ptr : "", r->body.len);
}

static void
call(const char *method, const char *upstream, const char *url, const char *body, struct res *out)
{
    memset(out, 0, sizeof(*out));
    struct ag_http_client_header hdr[2] = {
        { AG_IDENTITY_HEADER, ag_identity_self_header(&operator_self, ag_time_unix_ms() / 1000) },
        { "Content-Type", "application/json" },
    };
    struct ag_http_client_request req = {
        .method = method,
        .upstream = upstream,
        .url = url,
        .headers = hdr,
        .nheaders = body ? 2 : 1,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_retries = -1,
    };
    assert_int_equal(ag_http_client_send(http, &req, on_res, out), 0);
    assert_true(run_until(flag_set, &out->done, 10000));
}

/* Call the registry at 'path'; returns the HTTP status (0 on transport
 * errors); the body is parsed into '*out_doc' when asked. */
static int
reg_call(const char *method, const char *path, const char *body, json_t **out_doc)
{
    char *url = ag_asprintf("http://127.0.0.1:%d%s", registry.port, path);
    struct res r;
    call(method, NULL, url, body, &r);
    ag_free(url);
    if (out_doc != NULL)
        *out_doc = r.err == 0 ? json_loads(r.body, 0, NULL) : NULL;
    ag_free(r.body);
    return r.err == 0 ? r.status : 0;
}

/* Is instance 'id' of 'service' listed by the registry? */
static bool
listed(const char *service, const char *id)
{
    char *path = ag_asprintf("/v1/services/%s", service);
    json_t *doc;
    int status = reg_call("GET", path, NULL, &doc);
    ag_free(path);
    bool found = false;
    json_t *arr = json_object_get(doc, "instances");
    for (size_t i = 0; status == 200 && i < json_array_size(arr); i++) {
        const char *got = json_string_value(json_object_get(json_array_get(arr, i), "id"));
        found |= got != NULL && strcmp(got, id) == 0;
    }
    json_decref(doc);
    return found;
}

struct listing {
    const char *service;
    const char *id;
    bool want;
};

static bool
listing_is(void *arg)
{
    struct listing *l = arg;
    return listed(l->service, l->id) == l->want;
}

/* ---- Registry clients ---- */

static struct ag_registry *
reg_new(const char *service, const char *id, int port, const json_t *md)
{
    char *url = ag_asprintf("http://127.0.0.1:%d", registry.port);
    struct ag_registry_config cfg = {
        .url = url,
        .service = service,
        .instance_id = id,
        .address = "127.0.0.1",
        .port = port,
        .metadata = md,
        .ttl_ms = 1000,
        .watch_wait_ms = 2000,
        .retry_max_ms = 200,
        .identity = &operator_self,
    };
    struct ag_registry *r;
    assert_int_equal(ag_registry_new(&loop, http, &cfg, &r), 0);
    ag_free(url);
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] == NULL) {
            live[i] = r;
            break;
        }
    }
    return r;
}

static void
on_stopped(void *udata)
{
    *(bool *)udata = true;
}

static void
reg_stop(struct ag_registry *r)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] == r)
            live[i] = NULL;
    }
    bool stopped = false;
    uint64_t t0 = ag_time_mono_ms();
    ag_registry_stop(r, on_stopped, &stopped);
    assert_true(run_until(flag_set, &stopped, 3000));
    assert_true(ag_time_mono_ms() - t0 <= 1500); /* bounded by about 1 s */
}

static bool
connected(void *arg)
{
    return ag_registry_is_connected(arg);
}

static bool
disconnected(void *arg)
{
    return !ag_registry_is_connected(arg);
}

/* ---- Fixtures ---- */

static void
rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = ag_asprintf("%s/%s", dir, e->d_name);
        unlink(p);
        ag_free(p);
    }
    closedir(d);
    rmdir(dir);
}

static int
setup_group(void **state)
{
    AG_UNUSED(state);
    signal(SIGPIPE, SIG_IGN);
    json_set_alloc_funcs(ag_malloc, ag_free);
    const char *bd = getenv("AGORA_BUILD_DIR");
    build_dir = ag_strdup(bd ? bd : "build");
    uint8_t key[AG_IDENTITY_KEYLEN];
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    uint8_t pk[AG_IDENTITY_PUBLEN];
    if (ag_identity_key_parse(TEST_KEY, key) != 0 ||
        ag_identity_service_seed(key, AG_IDENTITY_OPERATOR, seed) != 0 ||
        ag_identity_self_init(&operator_self, seed, AG_IDENTITY_OPERATOR) != 0)
        return -1;
    ag_identity_service_public(seed, pk);
    int len = snprintf(pubkeys_var, sizeof(pubkeys_var),
                       "AGORA_SERVICE_PUBKEYS=%s=", AG_IDENTITY_OPERATOR);
    for (size_t i = 0; i < sizeof(pk); i++)
        len += snprintf(pubkeys_var + len, sizeof(pubkeys_var) - (size_t)len, "%02x", pk[i]);
    char *reg_path = ag_asprintf("%s/platform/registry/registry", build_dir);
    bool have = access(reg_path, X_OK) == 0;
    ag_free(reg_path);
    if (!have) {
        fprintf(stderr, "registry binary not built under '%s'\n", build_dir);
        return -1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(datadir, sizeof(datadir), "%s/agora-regc-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(datadir) == NULL)
        return -1;
    char *log = ag_asprintf("%s/registry.log", datadir);
    rlog.logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    ag_free(log);
    if (uv_loop_init(&loop) != 0)
        return -1;
    uv_timer_init(&loop, &guard);
    /* A short cool-down: the registry is down on purpose in some tests. */
    struct ag_http_client_config cfg = { .breaker_open_ms = 200 };
    if (ag_http_client_new(&loop, &cfg, &http) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (testd_start(i) != 0)
            return -1;
    }
    return registry_start(0);
}

static int
teardown_group(void **state)
{
    AG_UNUSED(state);
    registry_stop();
    bool closed = false;
    ag_http_client_close(http, on_stopped, &closed);
    run_until(flag_set, &closed, 5000);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    for (int i = 0; i < 2; i++) {
        proc_stop(&testd[i]);
        close(testd_fd[i]);
    }
    if (rlog.logfd >= 0)
        close(rlog.logfd);
    if (getenv("AGORA_KEEP_TMP") == NULL)
        rm_dir(datadir);
    ag_free(build_dir);
    if (rc != 0) {
        fprintf(stderr, "loop not empty at the end: %s\n", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* The registry runs before each test (a test may have stopped it). */
static int
setup_test(void **state)
{
    AG_UNUSED(state);
    if (registry.pid <= 0)
        return registry_start(registry.port);
    return 0;
}

/* Stop what a failed test left running, so the next ones start clean. */
static int
teardown_test(void **state)
{
    AG_UNUSED(state);
    for (size_t i = 0; i < AG_ARRAY_SIZE(live); i++) {
        if (live[i] != NULL)
            reg_stop(live[i]);
    }
    return 0;
}

/* ---- Tests ---- */

/* Registration with metadata; heartbeats keep the instance listed past
 * several TTLs; stop deregisters at once (well before the TTL). */
static void
test_register_heartbeat_stop(void **state)
{
    AG_UNUSED(state);
    json_t *md = json_pack("{s:s}", "zone", "z1");
    struct ag_registry *r = reg_new("svc-a", "a-1", 9001, md);
    json_decref(md);
    ag_registry_start(r);
    struct listing l = { "svc-a", "a-1", true };
    assert_true(run_until(listing_is, &l, 5000));
    assert_true(ag_registry_is_connected(r));
    json_t *doc;
    assert_int_equal(reg_call("GET", "/v1/services/svc-a", NULL, &doc), 200);
    json_t *inst = json_array_get(json_object_get(doc, "instances"), 0);
    assert_string_equal(json_string_value(json_object_get(inst, "address")), "127.0.0.1");
    assert_int_equal(json_integer_value(json_object_get(inst, "port")), 9001);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(inst, "metadata"), "zone")), "z1");
    json_decref(doc);
    /* TTL 1 s: still listed after 3.5 s only thanks to the heartbeats. */
    for (int i = 0; i < 7; i++) {
        run_for(500);
        assert_true(listed("svc-a", "a-1"));
    }
    reg_stop(r);
    assert_false(listed("svc-a", "a-1"));
}

/* Started while the registry is down: the client keeps retrying and
 * registers as soon as the registry comes up. */
static void
test_register_when_down(void **state)
{
    AG_UNUSED(state);
    int port = registry.port;
    registry_stop();
    struct ag_registry *r = reg_new("svc-c", "c-1", 9003, NULL);
    ag_registry_start(r);
    run_for(800);
    assert_false(ag_registry_is_connected(r));
    assert_int_equal(registry_start(port), 0);
    struct listing l = { "svc-c", "c-1", true };
    assert_true(run_until(listing_is, &l, 8000));
    assert_true(run_until(connected, r, 3000));
    reg_stop(r);
}

struct svc_events {
    int calls;
    size_t last_n;
};

static void
on_services(struct ag_registry *reg, const char *service, const struct ag_registry_instance *insts,
            size_t n, void *udata)
{
    struct svc_events *ev = udata;
    AG_UNUSED(reg);
    AG_UNUSED(insts);
    assert_string_equal(service, "svc-b");
    ev->calls++;
    ev->last_n = n;
}

struct inst_count {
    struct ag_registry *reg;
    const char *service;
    size_t want;
};

static bool
instances_are(void *arg)
{
    struct inst_count *ic = arg;
    return ag_registry_instances(ic->reg, ic->service, NULL) == ic->want;
}

/* Which testd instances answer 'n' calls through upstream "svc-b". */
static unsigned
answered_by(int n)
{
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        struct res r;
        call("GET", "svc-b", "/echo", NULL, &r);
        assert_int_equal(r.status, 200);
        ag_free(r.body);
        if (strcmp(r.x_instance, "t0") == 0)
            seen |= 1;
        else if (strcmp(r.x_instance, "t1") == 0)
            seen |= 2;
    }
    return seen;
}

/* A watch sees a second instance appear and go, and the HTTP client's
 * upstream of the same name follows. */
static void
test_watch_service(void **state)
{
    AG_UNUSED(state);
    struct svc_events ev = { 0, 0 };
    struct ag_registry *watcher = reg_new(NULL, NULL, 0, NULL);
    assert_int_equal(ag_registry_watch_service(watcher, "svc-b", true, on_services, &ev), 0);
    ag_registry_start(watcher);
    struct ag_registry *b0 = reg_new("svc-b", "b-0", testd[0].port, NULL);
    ag_registry_start(b0);
    struct inst_count ic = { watcher, "svc-b", 1 };
    assert_true(run_until(instances_are, &ic, 5000));
    assert_int_equal(ev.last_n, 1);
    const struct ag_registry_instance *insts;
    assert_int_equal(ag_registry_instances(watcher, "svc-b", &insts), 1);
    assert_string_equal(insts[0].id, "b-0");
    assert_int_equal(insts[0].port, testd[0].port);
    assert_true(json_is_object(insts[0].metadata));
    assert_int_equal(answered_by(4), 1);

    struct ag_registry *b1 = reg_new("svc-b", "b-1", testd[1].port, NULL);
    ag_registry_start(b1);
    ic.want = 2;
    assert_true(run_until(instances_are, &ic, 5000));
    assert_int_equal(ev.last_n, 2);
    assert_int_equal(answered_by(4), 3);

    int calls = ev.calls;
    reg_stop(b1);
    ic.want = 1;
    assert_true(run_until(instances_are, &ic, 5000));
    assert_true(ev.calls > calls);
    assert_int_equal(ev.last_n, 1);
    assert_int_equal(answered_by(4), 1);
    /* Heartbeats of b-0 do not count as changes. */
    calls = ev.calls;
    run_for(1200);
    assert_int_equal(ev.calls, calls);
    assert_int_equal(ag_registry_instances(watcher, "unknown", &insts), 0);
    reg_stop(b0);
    reg_stop(watcher);
}

struct cfg_event {
    char key[64];
    char value[64]; /* compact JSON, or "" when deleted */
    int64_t version;
};

struct cfg_events {
    int n;
    struct cfg_event ev[32];
};

static void
on_config(struct ag_registry *reg, const char *key, const json_t *value, int64_t version,
          void *udata)
{
    struct cfg_events *evs = udata;
    AG_UNUSED(reg);
    if (evs->n >= 32)
        return;
    struct cfg_event *e = &evs->ev[evs->n++];
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->value[0] = '\0';
    if (value != NULL) {
        char *s = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(e->value, sizeof(e->value), "%s", s);
        ag_free(s);
    }
    e->version = version;
}

struct events_wait {
    const struct cfg_events *evs;
    int want;
};

static bool
events_reached(void *arg)
{
    struct events_wait *ew = arg;
    return ew->evs->n >= ew->want;
}

static const struct cfg_event *
find_event(const struct cfg_events *evs, int from, const char *key)
{
    for (int i = from; i < evs->n; i++) {
        if (strcmp(evs->ev[i].key, key) == 0)
            return &evs->ev[i];
    }
    return NULL;
}

/* A config watch delivers the existing keys, then a change and a
 * deletion, and nothing for keys outside its prefix. */
static void
test_watch_config(void **state)
{
    AG_UNUSED(state);
    assert_int_equal(reg_call("PUT", "/v1/config/feat.a", "{\"value\":1}", NULL), 200);
    assert_int_equal(reg_call("PUT", "/v1/config/feat.b", "{\"value\":\"x\"}", NULL), 200);
    assert_int_equal(reg_call("PUT", "/v1/config/other.c", "{\"value\":true}", NULL), 200);
    static struct cfg_events evs;
    memset(&evs, 0, sizeof(evs));
    struct ag_registry *r = reg_new(NULL, NULL, 0, NULL);
    assert_int_equal(ag_registry_watch_config(r, "feat.", on_config, &evs), 0);
    ag_registry_start(r);
    struct events_wait ew = { &evs, 2 };
    assert_true(run_until(events_reached, &ew, 5000));
    assert_int_equal(evs.n, 2);
    const struct cfg_event *a = find_event(&evs, 0, "feat.a");
    const struct cfg_event *b = find_event(&evs, 0, "feat.b");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->value, "1");
    assert_string_equal(b->value, "\"x\"");
    assert_true(a->version >= 1);
    int64_t va = a->version;

    assert_int_equal(reg_call("PUT", "/v1/config/feat.a", "{\"value\":{\"on\":true}}", NULL), 200);
    ew.want = 3;
    assert_true(run_until(events_reached, &ew, 5000));
    assert_string_equal(evs.ev[2].key, "feat.a");
    assert_string_equal(evs.ev[2].value, "{\"on\":true}");
    assert_int_equal(evs.ev[2].version, va + 1);

    assert_int_equal(reg_call("DELETE", "/v1/config/feat.b", NULL, NULL), 204);
    ew.want = 4;
    assert_true(run_until(events_reached, &ew, 5000));
    assert_string_equal(evs.ev[3].key, "feat.b");
    assert_string_equal(evs.ev[3].value, "");

    /* Outside the prefix: no event. */
    assert_int_equal(reg_call("PUT", "/v1/config/other.c", "{\"value\":false}", NULL), 200);
    run_for(300);
    assert_int_equal(evs.n, 4);
    reg_stop(r);
}

/* The registry restarts (forgetting its instances): the client notices,
 * re-registers by itself, and its watch sees it again. */
static void
test_registry_restart(void **state)
{
    AG_UNUSED(state);
    struct ag_registry *r = reg_new("svc-d", "d-1", 9004, NULL);
    assert_int_equal(ag_registry_watch_service(r, "svc-d", false, NULL, NULL), 0);
    ag_registry_start(r);
    struct listing l = { "svc-d", "d-1", true };
    assert_true(run_until(listing_is, &l, 5000));
    int port = registry.port;
    registry_stop();
    assert_true(run_until(disconnected, r, 5000));
    assert_int_equal(registry_start(port), 0);
    assert_true(run_until(listing_is, &l, 8000));
    assert_true(run_until(connected, r, 3000));
    /* The watch follows the new registry too. */
    struct inst_count ic = { r, "svc-d", 1 };
    assert_true(run_until(instances_are, &ic, 5000));
    const struct ag_registry_instance *insts;
    assert_int_equal(ag_registry_instances(r, "svc-d", &insts), 1);
    assert_string_equal(insts[0].id, "d-1");
    reg_stop(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_heartbeat_stop, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_register_when_down, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_watch_service, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_watch_config, setup_test, teardown_test),
        cmocka_unit_test_setup_teardown(test_registry_restart, setup_test, teardown_test),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
