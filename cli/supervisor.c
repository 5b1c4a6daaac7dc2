/* SPDX-License-Identifier: MIT */
/* Supervisor: one libuv loop spawning the shop's processes in order, probing
 * /ready through the chassis HTTP client, restarting crashed processes with
 * capped backoff, and stopping everything in reverse order on a signal. */
#include "agora/base.h"
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "agora/err.h"
#include "agora/http_client.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

#define LINE_MAX_BYTES (AG_LOG_LINE_MAX + 1024)

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

/* A log file under logs/, rotated to <file>.1 past the size bound. */
struct logsink {
    int fd;
    char *path;
    uint64_t bytes; /* in the current file */
};

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
    struct logsink log; /* logs/<name>.log */
    char *state_path;   /* run/<name>.json */
    int64_t started_unix_ms;
    int last_status;
    int last_signal;
};

/* The read end of a program's stdout and stderr (one pipe per spawn), or
 * of the supervisor's own log lines: split into lines, each appended to the
 * program's log file and shown on the supervisor's output. */
struct out {
    uv_pipe_t pipe;
    struct sup *sup;
    const char *name;
    struct logsink *log; /* borrowed from the proc or the supervisor */
    size_t len;
    char buf[LINE_MAX_BYTES];
};

struct sup {
    uv_loop_t loop;
    struct proc *procs;
    size_t n;
    const struct cli_up_options *opts;
    struct ag_http_client *client;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup; /* the terminal went away: stop as for Ctrl-C */
    bool stopping;
    bool all_ready_once;
    int exit_status;
    size_t next; /* index of the next program to start in the start-up sequence */
    int self_w;  /* write end of the supervisor's own log pipe, -1 when closed */
    struct logsink self_log;
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

/* ---- State files and output ---- */

static const char *
state_name(enum proc_state st)
{
    switch (st) {
    case PROC_IDLE: return "idle";
    case PROC_STARTING: return "starting";
    case PROC_READY: return "ready";
    case PROC_WAITING: return "restarting";
    case PROC_STOPPING: return "stopping";
    case PROC_STOPPED: return "stopped";
    }
    return "unknown";
}

/* run/<name>.json: what `agora status` and `agora kill` read. */
static void
write_state(struct proc *p)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:s, s:I, s:i, s:I, s:i, s:i}", "name", p->prog->name,
                          "pid", p->alive ? p->handle.pid : 0, "port", p->prog->port, "state",
                          state_name(p->state), "started_ms", (json_int_t)p->started_unix_ms,
                          "restarts", p->restarts, "backoff_ms", (json_int_t)p->backoff_ms,
                          "last_status", p->last_status, "last_signal", p->last_signal);
    if (o == NULL || cli_write_json(p->state_path, o) != 0)
        fprintf(stderr, "agora: cannot write '%s'\n", p->state_path);
    json_decref(o);
}

static void
logsink_open(struct logsink *l, char *path)
{
    l->path = path;
    l->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    l->bytes = l->fd >= 0 && fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void
logsink_close(struct logsink *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    ag_free(l->path);
    l->path = NULL;
}

static void
emit_line(struct out *o, const char *line, size_t len)
{
    if (len == 0)
        return;
    struct logsink *l = o->log;
    if (l != NULL && l->fd >= 0) {
        char *copy = ag_malloc(len + 1);
        memcpy(copy, line, len);
        copy[len] = '\n';
        if (write(l->fd, copy, len + 1) < 0) {
            /* A full disk loses log lines, never the shop. */
        }
        ag_free(copy);
        l->bytes += len + 1;
        uint64_t max = o->sup->opts->log_file_max;
        if (max > 0 && l->bytes >= max) {
            /* Keep one older file: at most twice the bound per program. */
            char *old = ag_asprintf("%s.1", l->path);
            close(l->fd);
            if (rename(l->path, old) != 0) {
                /* Could not rotate: start the file over rather than grow. */
                unlink(l->path);
            }
            ag_free(old);
            char *path = l->path;
            logsink_open(l, path);
        }
    }
    if (o->sup->opts->out != NULL) {
        cli_print_line(o->sup->opts->out, &o->sup->opts->fmt, o->name, line, len);
        fflush(o->sup->opts->out);
    }
}

static void
on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    AG_UNUSED(suggested);
    struct out *o = h->data;
    if (o->len == sizeof(o->buf)) {
        /* A line longer than any log line: show what there is. */
        emit_line(o, o->buf, o->len);
        o->len = 0;
    }
    *buf = uv_buf_init(o->buf + o->len, (unsigned)(sizeof(o->buf) - o->len));
}

static void
on_out_closed(uv_handle_t *h)
{
    ag_free(h->data);
}

static void
on_out_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    AG_UNUSED(buf);
    struct out *o = st->data;
    if (nread < 0) {
        emit_line(o, o->buf, o->len);
        o->len = 0;
        uv_close((uv_handle_t *)st, on_out_closed);
        return;
    }
    o->len += (size_t)nread;
    size_t start = 0;
    for (size_t i = 0; i < o->len; i++) {
        if (o->buf[i] == '\n') {
            emit_line(o, o->buf + start, i - start);
            start = i + 1;
        }
    }
    memmove(o->buf, o->buf + start, o->len - start);
    o->len -= start;
}

/* Read 'fd' (owned) as the output of 'name'. */
static int
watch_output(struct sup *s, const char *name, struct logsink *log, int fd)
{
    struct out *o = ag_calloc(1, sizeof(*o));
    o->sup = s;
    o->name = name;
    o->log = log;
    uv_pipe_init(&s->loop, &o->pipe, 0);
    o->pipe.data = o;
    int rc = uv_pipe_open(&o->pipe, fd);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&o->pipe, on_out_alloc, on_out_read);
    if (rc != 0) {
        AG_LOGE("supervisor", "cannot read the output of %s: %s", name, uv_strerror(rc));
        uv_close((uv_handle_t *)&o->pipe, on_out_closed);
        return AG_EIO;
    }
    return 0;
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
    /* stdout and stderr: one pipe, read by the supervisor line by line. */
    uv_file fds[2];
    int prc = uv_pipe(fds, 0, 0);
    if (prc != 0) {
        AG_LOGE("supervisor", "cannot make a pipe for '%s': %s", p->prog->name, uv_strerror(prc));
        return AG_EIO;
    }
    uv_stdio_container_t stdio[3] = {
        { .flags = UV_IGNORE },
        { .flags = UV_INHERIT_FD, .data.fd = fds[1] },
        { .flags = UV_INHERIT_FD, .data.fd = fds[1] },
    };
    o.stdio = stdio;
    o.stdio_count = 3;
    p->handle.data = p;
    int rc = uv_spawn(&p->sup->loop, &p->handle, &o);
    close(fds[1]);
    if (rc == 0)
        watch_output(p->sup, p->prog->name, &p->log, fds[0]);
    else
        close(fds[0]);
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
    p->started_unix_ms = ag_time_unix_ms();
    p->state = PROC_STARTING;
    write_state(p);
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
        write_state(p);
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
    if (s->opts->on_ready != NULL)
        s->opts->on_ready(s->opts->ready_arg);
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
    p->last_status = (int)status;
    p->last_signal = signum;
    uv_close((uv_handle_t *)h, on_handle_closed);
    uv_timer_stop(&p->timer);
    if (s->stopping) {
        say("%s exited (status %lld, signal %d)", p->prog->name, (long long)status, signum);
        p->state = PROC_STOPPED;
        write_state(p);
        stop_next(s);
        return;
    }
    if (!s->all_ready_once) {
        AG_LOGE("supervisor",
                "%s exited during start-up (status %lld, signal %d); see its log above",
                p->prog->name, (long long)status, signum);
        p->state = PROC_STOPPED;
        write_state(p);
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
    write_state(p);
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
    uv_close((uv_handle_t *)&s->sighup, NULL);
    ag_http_client_close(s->client, NULL, NULL);
    s->client = NULL;
    /* The supervisor's own pipe ends: its reader drains it and closes. */
    if (s->self_w >= 0) {
        ag_log_set_fd(2);
        close(s->self_w);
        s->self_w = -1;
    }
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
            write_state(p);
            say("stopping %s", p->prog->name);
            uv_process_kill(&p->handle, SIGTERM);
            uv_timer_start(&p->timer, on_kill_timer, s->opts->stop_timeout_ms, 0);
            return;
        }
        uv_timer_stop(&p->timer);
        if (p->state != PROC_STOPPED) {
            p->state = PROC_STOPPED;
            write_state(p);
        }
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
    env[k++] = ag_asprintf("AGORA_INSTANCE_ID=%s-%d", prog->service ? prog->service : prog->name,
                           prog->instance > 0 ? prog->instance : 1);
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
    s.self_w = -1;
    char *logdir = ag_asprintf("%s/logs", opts->data_dir);
    if (mkdir(logdir, 0700) == -1 && errno != EEXIST)
        fprintf(stderr, "agora: cannot create '%s': %s\n", logdir, strerror(errno));
    ag_free(logdir);
    for (size_t i = 0; i < n; i++) {
        struct proc *p = &s.procs[i];
        p->sup = &s;
        p->prog = &programs[i];
        p->path = ag_asprintf("%s/%s", opts->build_dir, programs[i].binary);
        p->env = build_env(&programs[i], common_env);
        char *name = ag_asprintf("%s.log", programs[i].name);
        logsink_open(&p->log, cli_log_path(opts->data_dir, name));
        ag_free(name);
        name = ag_asprintf("%s.json", programs[i].name);
        p->state_path = cli_run_path(opts->data_dir, name);
        ag_free(name);
        write_state(p);
        uv_timer_init(&s.loop, &p->timer);
        p->timer.data = p;
    }
    /* The supervisor's own lines go through a pipe of its own, so they are
     * shown and kept like the programs' (non-blocking: a line is lost
     * rather than the loop blocking on its own pipe). */
    logsink_open(&s.self_log, cli_log_path(opts->data_dir, "agora.log"));
    uv_file selffds[2];
    if (uv_pipe(selffds, 0, UV_NONBLOCK_PIPE) == 0) {
        if (watch_output(&s, "agora", &s.self_log, selffds[0]) == 0) {
            s.self_w = selffds[1];
            ag_log_set_fd(s.self_w);
        } else {
            close(selffds[1]);
        }
    }
    uv_signal_init(&s.loop, &s.sigterm);
    uv_signal_init(&s.loop, &s.sigint);
    s.sigterm.data = &s;
    s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_init(&s.loop, &s.sighup);
    s.sighup.data = &s;
    uv_signal_start(&s.sighup, on_signal, SIGHUP);

    start_next(&s);
    uv_run(&s.loop, UV_RUN_DEFAULT);

    for (size_t i = 0; i < n; i++) {
        for (char **e = s.procs[i].env; *e != NULL; e++)
            ag_free(*e);
        ag_free(s.procs[i].env);
        ag_free(s.procs[i].path);
        ag_free(s.procs[i].state_path);
        logsink_close(&s.procs[i].log);
    }
    logsink_close(&s.self_log);
    ag_free(s.procs);
    if (uv_loop_close(&s.loop) != 0)
        AG_LOGW("supervisor", "loop closed with handles open");
    return s.exit_status;
}
