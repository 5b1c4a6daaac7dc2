/* SPDX-License-Identifier: MIT */
/* Supervisor: one libuv loop spawning the shop's processes in order, probing
 * /ready through the chassis HTTP client, restarting crashed processes with
 * capped backoff, and stopping everything in reverse order on a signal. */
#include "agora/base.h"
#include "supervisor.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "agora/err.h"
#include "agora/http_client.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

#define PROBE_INTERVAL_MS 100
#define RESTART_FIRST_MS  50  /* a process that was stable is restarted at once... */
#define RESTART_BASE_MS   500 /* ...one that keeps crashing waits this, doubling */
#define RESTART_MAX_MS    30000
#define STABLE_MS         30000 /* a process up this long resets its backoff */

enum proc_state {
    PROC_IDLE = 0, /* not started yet */
    PROC_STARTING, /* spawned, not ready yet */
    PROC_READY,    /* answered /ready with 200 */
    PROC_WAITING,  /* exited; restart timer running */
    PROC_STOPPING, /* SIGTERM sent */
    PROC_STOPPED,  /* exited during shutdown, or never started */
};

struct sup;

struct proc {
    struct sup *sup;
    const struct cli_program *prog;
    enum proc_state state;
    uv_process_t handle;
    bool alive;       /* the child process exists */
    bool handle_open; /* 'handle' needs uv_close */
    uv_timer_t timer; /* probe, restart or kill timer */
    uint64_t started_ms;
    uint64_t backoff_ms;
    int restarts;
    bool probe_pending;
    char *path;
    char **env;
};

struct sup {
    uv_loop_t loop;
    struct proc *procs;
    size_t n;
    const struct cli_up_options *opts;
    struct ag_http_client *client;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    bool stopping;
    bool all_ready_once;
    int exit_status;
    size_t next; /* index of the next program to start in the start-up sequence */
};

static void start_next(struct sup *s);
static void stop_next(struct sup *s);

static void say(const char *fmt, ...) AG_PRINTF(1, 2);

static void
say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    AG_LOGI("supervisor", "%s", line);
}

/* ---- Spawning ---- */

static void on_exit_cb(uv_process_t *h, int64_t status, int signum);

static void
on_handle_closed(uv_handle_t *h)
{
    struct proc *p = h->data;
    p->handle_open = false;
}

static int
spawn_proc(struct proc *p)
{
    char *args[] = { p->path, NULL };
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = p->path;
    o.args = args;
    o.env = p->env;
    o.exit_cb = on_exit_cb;
    /* A process group of its own: a terminal's Ctrl-C reaches only the
     * supervisor, which then stops the programs one by one, in order. */
    o.flags = UV_PROCESS_DETACHED;
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE },
        { .flags = UV_INHERIT_FD, .data.fd = 1 },
        { .flags = UV_INHERIT_FD, .data.fd = 2 },
    };
    o.stdio = stdio;
    o.stdio_count = 3;
    p->handle.data = p;
    int rc = uv_spawn(&p->sup->loop, &p->handle, &o);
    if (rc != 0) {
        AG_LOGE("supervisor", "cannot start '%s' (%s): %s", p->prog->name, p->path,
                uv_strerror(rc));
        /* uv_spawn initialised the handle even on failure. */
        p->handle_open = true;
        uv_close((uv_handle_t *)&p->handle, on_handle_closed);
        return AG_EIO;
    }
    p->handle_open = true;
    p->alive = true;
    p->started_ms = ag_time_mono_ms();
    p->state = PROC_STARTING;
    say("started %s (pid %d, port %d)", p->prog->name, p->handle.pid, p->prog->port);
    return 0;
}

/* ---- Readiness ---- */

static void probe(struct proc *p);

static void
on_probe_timer(uv_timer_t *t)
{
    probe(t->data);
}

static void
on_probe(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct proc *p = udata;
    struct sup *s = p->sup;
    p->probe_pending = false;
    if (p->state != PROC_STARTING)
        return;
    if (resp->err == 0 && resp->status == 200) {
        p->state = PROC_READY;
        say("%s is ready after %llu ms", p->prog->name,
            (unsigned long long)(ag_time_mono_ms() - p->started_ms));
        if (!s->all_ready_once)
            start_next(s);
        return;
    }
    if (!s->all_ready_once && ag_time_mono_ms() - p->started_ms > s->opts->ready_timeout_ms) {
        AG_LOGE("supervisor", "%s was not ready within %llu ms; stopping everything", p->prog->name,
                (unsigned long long)s->opts->ready_timeout_ms);
        s->exit_status = 1;
        s->stopping = true;
        stop_next(s);
        return;
    }
    uv_timer_start(&p->timer, on_probe_timer, PROBE_INTERVAL_MS, 0);
}

static void
probe(struct proc *p)
{
    if (p->state != PROC_STARTING || p->probe_pending)
        return;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", p->prog->port);
    struct ag_http_client_request req = {
        .method = "GET",
        .url = url,
        .timeout_ms = 1000,
        .max_retries = -1,
    };
    if (ag_http_client_send(p->sup->client, &req, on_probe, p) == 0)
        p->probe_pending = true;
    else
        uv_timer_start(&p->timer, on_probe_timer, PROBE_INTERVAL_MS, 0);
}

/* ---- Start-up and restarts ---- */

static void
print_banner(struct sup *s)
{
    const struct cli_program *entry = NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (s->procs[i].prog->public_entry)
            entry = s->procs[i].prog;
    }
    fprintf(stderr, "\nAgora is up (data in %s).\n", s->opts->data_dir);
    if (entry != NULL) {
        fprintf(stderr, "  shop:     http://127.0.0.1:%d/\n", entry->port);
        fprintf(stderr, "  api:      curl -s 'http://127.0.0.1:%d/api/v1/products?limit=3'\n",
                entry->port);
    }
    for (size_t i = 0; i < s->n; i++)
        fprintf(stderr, "  %-13s http://127.0.0.1:%d/health\n", s->procs[i].prog->name,
                s->procs[i].prog->port);
    fprintf(stderr, "Press Ctrl-C to stop.\n\n");
}

static void
start_next(struct sup *s)
{
    if (s->stopping)
        return;
    while (s->next < s->n) {
        struct proc *p = &s->procs[s->next++];
        if (spawn_proc(p) != 0) {
            s->exit_status = 1;
            s->stopping = true;
            stop_next(s);
            return;
        }
        probe(p);
        return;
    }
    s->all_ready_once = true;
    print_banner(s);
}

static void
on_restart_timer(uv_timer_t *t)
{
    struct proc *p = t->data;
    if (p->sup->stopping || p->state != PROC_WAITING)
        return;
    if (p->handle_open) {
        /* The old handle is still closing; try again shortly. */
        uv_timer_start(&p->timer, on_restart_timer, 10, 0);
        return;
    }
    p->restarts++;
    if (spawn_proc(p) == 0) {
        probe(p);
    } else {
        p->state = PROC_WAITING;
        p->backoff_ms = AG_MIN(p->backoff_ms * 2, RESTART_MAX_MS);
        uv_timer_start(&p->timer, on_restart_timer, p->backoff_ms, 0);
    }
}

static void
on_exit_cb(uv_process_t *h, int64_t status, int signum)
{
    struct proc *p = h->data;
    struct sup *s = p->sup;
    p->alive = false;
    uv_close((uv_handle_t *)h, on_handle_closed);
    uv_timer_stop(&p->timer);
    if (s->stopping) {
        say("%s exited (status %lld, signal %d)", p->prog->name, (long long)status, signum);
        p->state = PROC_STOPPED;
        stop_next(s);
        return;
    }
    if (!s->all_ready_once) {
        AG_LOGE("supervisor",
                "%s exited during start-up (status %lld, signal %d); see its log above",
                p->prog->name, (long long)status, signum);
        p->state = PROC_STOPPED;
        s->exit_status = 1;
        s->stopping = true;
        stop_next(s);
        return;
    }
    /* The first crash after a stable run restarts at once (the outage a
     * client sees is the process's start-up time); a crash loop backs off. */
    uint64_t up = ag_time_mono_ms() - p->started_ms;
    if (up > STABLE_MS || p->backoff_ms == 0)
        p->backoff_ms = RESTART_FIRST_MS;
    else
        p->backoff_ms = AG_MIN(AG_MAX(p->backoff_ms * 2, RESTART_BASE_MS), RESTART_MAX_MS);
    char why[96];
    if (signum != 0)
        snprintf(why, sizeof(why), "killed by signal %d (%s)", signum, strsignal(signum));
    else
        snprintf(why, sizeof(why), "exited with status %lld", (long long)status);
    AG_LOGW("supervisor", "%s exited unexpectedly: %s; restarting in %llu ms", p->prog->name, why,
            (unsigned long long)p->backoff_ms);
    p->state = PROC_WAITING;
    uv_timer_start(&p->timer, on_restart_timer, p->backoff_ms, 0);
}

/* ---- Shutdown ---- */

static void
on_kill_timer(uv_timer_t *t)
{
    struct proc *p = t->data;
    if (p->alive) {
        AG_LOGW("supervisor", "%s did not stop in time; killing it", p->prog->name);
        uv_process_kill(&p->handle, SIGKILL);
    }
}

static void
close_all(struct sup *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!uv_is_closing((uv_handle_t *)&s->procs[i].timer))
            uv_close((uv_handle_t *)&s->procs[i].timer, NULL);
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    ag_http_client_close(s->client, NULL, NULL);
    s->client = NULL;
}

/* Stop the last program still alive; when none is, close everything. */
static void
stop_next(struct sup *s)
{
    for (size_t i = s->n; i-- > 0;) {
        struct proc *p = &s->procs[i];
        if (p->state == PROC_STOPPING)
            return; /* wait for it */
        if (p->alive) {
            p->state = PROC_STOPPING;
            say("stopping %s", p->prog->name);
            uv_process_kill(&p->handle, SIGTERM);
            uv_timer_start(&p->timer, on_kill_timer, s->opts->stop_timeout_ms, 0);
            return;
        }
        uv_timer_stop(&p->timer);
        p->state = PROC_STOPPED;
    }
    if (s->client != NULL) {
        say("all stopped");
        close_all(s);
    }
}

static void
on_signal(uv_signal_t *h, int signum)
{
    struct sup *s = h->data;
    if (s->stopping) {
        AG_LOGW("supervisor", "signal %d again: still stopping", signum);
        return;
    }
    say("signal %d: stopping", signum);
    s->stopping = true;
    stop_next(s);
}

/* ---- Entry ---- */

static char **
build_env(const struct cli_program *prog, char *const *common)
{
    extern char **environ;
    size_t n = 0;
    size_t ncommon = 0;
    size_t nextra = 0;
    while (environ[n] != NULL)
        n++;
    while (common[ncommon] != NULL)
        ncommon++;
    while (nextra < CLI_MAX_ENV && prog->env[nextra] != NULL)
        nextra++;
    /* getenv() returns the first match, so ours come before the inherited. */
    char **env = ag_calloc(n + ncommon + nextra + 3, sizeof(char *));
    size_t k = 0;
    env[k++] = ag_asprintf("AGORA_HTTP_PORT=%d", prog->port);
    env[k++] = ag_asprintf("AGORA_INSTANCE_ID=%s-1", prog->name);
    for (size_t i = 0; i < nextra; i++)
        env[k++] = ag_strdup(prog->env[i]);
    for (size_t i = 0; i < ncommon; i++)
        env[k++] = ag_strdup(common[i]);
    for (size_t i = 0; i < n; i++)
        env[k++] = ag_strdup(environ[i]);
    env[k] = NULL;
    return env;
}

int
cli_supervise(const struct cli_program *programs, size_t n, const struct cli_up_options *opts,
              char *const *common_env)
{
    struct sup s;
    memset(&s, 0, sizeof(s));
    s.opts = opts;
    s.n = n;
    if (uv_loop_init(&s.loop) != 0)
        AG_BUG("uv_loop_init");
    signal(SIGPIPE, SIG_IGN);
    if (ag_http_client_new(&s.loop, NULL, &s.client) != 0)
        AG_BUG("cannot create the HTTP client");
    s.procs = ag_calloc(n, sizeof(*s.procs));
    for (size_t i = 0; i < n; i++) {
        struct proc *p = &s.procs[i];
        p->sup = &s;
        p->prog = &programs[i];
        p->path = ag_asprintf("%s/%s", opts->build_dir, programs[i].binary);
        p->env = build_env(&programs[i], common_env);
        uv_timer_init(&s.loop, &p->timer);
        p->timer.data = p;
    }
    uv_signal_init(&s.loop, &s.sigterm);
    uv_signal_init(&s.loop, &s.sigint);
    s.sigterm.data = &s;
    s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);

    start_next(&s);
    uv_run(&s.loop, UV_RUN_DEFAULT);

    for (size_t i = 0; i < n; i++) {
        for (char **e = s.procs[i].env; *e != NULL; e++)
            ag_free(*e);
        ag_free(s.procs[i].env);
        ag_free(s.procs[i].path);
    }
    ag_free(s.procs);
    if (uv_loop_close(&s.loop) != 0)
        AG_LOGW("supervisor", "loop closed with handles open");
    return s.exit_status;
}
