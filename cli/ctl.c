/* SPDX-License-Identifier: MIT */
/* The commands that talk to a running shop through its data directory:
 * status, logs, down, kill, seed (cli.h lists the files they read); and
 * probe, a one-shot GET for container health checks. */
#include "agora/base.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

/* Parse the common "--data DIR" and "--json"; other options go to 'rest'
 * (argv[0] excluded). Returns false on a missing value. */
struct common_opts {
    const char *data;
    bool json;
    char **rest;
    int nrest;
};

static bool
parse_common(int argc, char **argv, struct common_opts *o)
{
    o->data = CLI_DEFAULT_DATA;
    o->json = false;
    o->rest = ag_calloc((size_t)argc + 1, sizeof(char *));
    o->nrest = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0) {
            if (i + 1 >= argc)
                return false;
            o->data = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else {
            o->rest[o->nrest++] = argv[i];
        }
    }
    return true;
}

static int
usage_error(const char *cmd, const char *why)
{
    fprintf(stderr, "agora %s: %s (see `agora help %s`)\n", cmd, why, cmd);
    return CLI_USAGE;
}

static bool
known_program(json_t *info, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(info, "programs"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return true;
    }
    return false;
}

/* ---- status ---- */

static long
rss_kib(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static void
fmt_uptime(int64_t ms, char *out, size_t len)
{
    int64_t s = ms / 1000;
    if (s < 60)
        snprintf(out, len, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(out, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
}

int
cli_cmd_status(int argc, char **argv)
{
    struct common_opts o;
    if (!parse_common(argc, argv, &o) || o.nrest > 0) {
        ag_free(o.rest);
        return usage_error("status", "unexpected argument");
    }
    ag_free(o.rest);
    json_t *info = cli_shop_info(o.data);
    if (info == NULL)
        return CLI_NOT_RUNNING;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_http_client_config cfg = { .breaker_failure_rate = 101, .eject_failures = 1000000 };
    struct ag_http_client *client;
    if (ag_http_client_new(&loop, &cfg, &client) != 0)
        AG_BUG("http client");
    json_t *rows = json_array();
    size_t i;
    json_t *p;
    int64_t now = ag_time_unix_ms();
    json_array_foreach(json_object_get(info, "programs"), i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        char *file = ag_asprintf("%s.json", name);
        char *path = cli_run_path(o.data, file);
        json_t *st = json_load_file(path, 0, NULL);
        ag_free(path);
        ag_free(file);
        int pid = st ? (int)json_integer_value(json_object_get(st, "pid")) : 0;
        int port = (int)json_integer_value(json_object_get(p, "port"));
        const char *state = st ? json_string_value(json_object_get(st, "state")) : "unknown";
        int64_t started = st ? json_integer_value(json_object_get(st, "started_ms")) : 0;
        int restarts = st ? (int)json_integer_value(json_object_get(st, "restarts")) : 0;
        const char *health = "down";
        if (pid > 0) {
            char url[64];
            snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", port);
            struct cli_resp r;
            cli_http(&loop, client, "GET", url, NULL, NULL, &r);
            health = r.err != 0 ? "unreachable" : r.status == 200 ? "ready" : "not ready";
            cli_resp_release(&r);
        }
        long rss = pid > 0 ? rss_kib(pid) : -1;
        json_array_append_new(
            rows, json_pack("{s:s, s:s, s:i, s:i, s:s, s:I, s:i, s:I}", "name", name, "state",
                            state ? state : "unknown", "pid", pid, "port", port, "health", health,
                            "uptime_ms", (json_int_t)(pid > 0 && started > 0 ? now - started : 0),
                            "restarts", restarts, "rss_kib", (json_int_t)rss));
        json_decref(st);
    }
    ag_http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (o.json) {
        json_t *out =
            json_pack("{s:O, s:O, s:O}", "supervisor_pid", json_object_get(info, "pid"),
                      "gateway_port", json_object_get(info, "gateway_port"), "programs", rows);
        char *text = json_dumps(out, JSON_COMPACT);
        puts(text);
        ag_free(text);
        json_decref(out);
    } else {
        printf("supervisor pid %lld, data %s, gateway http://127.0.0.1:%lld/\n",
               (long long)json_integer_value(json_object_get(info, "pid")),
               json_string_value(json_object_get(info, "data")),
               (long long)json_integer_value(json_object_get(info, "gateway_port")));
        printf("%-14s %-10s %8s %6s %-12s %8s %8s %9s\n", "PROGRAM", "STATE", "PID", "PORT",
               "HEALTH", "UPTIME", "RESTARTS", "RSS");
        json_array_foreach(rows, i, p)
        {
            char up[32] = "-";
            int pid = (int)json_integer_value(json_object_get(p, "pid"));
            if (pid > 0)
                fmt_uptime(json_integer_value(json_object_get(p, "uptime_ms")), up, sizeof(up));
            char rss[32] = "-";
            json_int_t kib = json_integer_value(json_object_get(p, "rss_kib"));
            if (kib >= 0)
                snprintf(rss, sizeof(rss), "%.1f MiB", (double)kib / 1024.0);
            printf("%-14s %-10s %8d %6lld %-12s %8s %8lld %9s\n",
                   json_string_value(json_object_get(p, "name")),
                   json_string_value(json_object_get(p, "state")), pid,
                   (long long)json_integer_value(json_object_get(p, "port")),
                   json_string_value(json_object_get(p, "health")), up,
                   (long long)json_integer_value(json_object_get(p, "restarts")), rss);
        }
    }
    json_decref(rows);
    json_decref(info);
    return CLI_OK;
}

/* ---- logs ---- */

struct logfile {
    char *name; /* program */
    char *path;
    FILE *f;
    char *line; /* the next line not printed yet (getline buffer) */
    size_t cap;
    ssize_t len; /* -1: none */
    char time[32];
};

/* The next complete line of 'lf' into lf->line (-1 when none yet). */
static void
next_line(struct logfile *lf)
{
    lf->len = -1;
    if (lf->f == NULL)
        return;
    long pos = ftell(lf->f);
    ssize_t n = getline(&lf->line, &lf->cap, lf->f);
    if (n <= 0) {
        clearerr(lf->f);
        return;
    }
    if (lf->line[n - 1] != '\n') {
        /* Half a line: read it again once it is whole. */
        fseek(lf->f, pos, SEEK_SET);
        return;
    }
    lf->line[--n] = '\0';
    lf->len = n;
    lf->time[0] = '\0';
    const char *t = strstr(lf->line, "\"time\":\"");
    if (t != NULL)
        snprintf(lf->time, sizeof(lf->time), "%.24s", t + 8);
}

/* What `agora logs` shows. */
struct log_filter {
    char since[32];    /* RFC 3339, "" for all */
    char trace[128];   /* "\"trace_id\":\"<id>\"", "" for any */
    char request[128]; /* "\"request_id\":\"<id>\"", "" for any */
    int min_level;     /* 0 debug .. 3 error */
};

static bool
wanted(const struct logfile *lf, const struct log_filter *f)
{
    if (f->since[0] != '\0' && lf->time[0] != '\0' && strcmp(lf->time, f->since) < 0)
        return false;
    if (f->trace[0] != '\0' && strstr(lf->line, f->trace) == NULL)
        return false;
    if (f->request[0] != '\0' && strstr(lf->line, f->request) == NULL)
        return false;
    if (f->min_level > 0) {
        const char *l = strstr(lf->line, "\"level\":\"");
        if (l == NULL)
            return false;
        l += 9;
        const char *e = strchr(l, '"');
        if (e == NULL || ag_log_level_rank(l, (size_t)(e - l)) < f->min_level)
            return false;
    }
    return true;
}

/* An id of a filter: letters, digits, '-', '_', '.' only. */
static bool
plain_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    }
    return true;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
    AG_UNUSED(sig);
    interrupted = 1;
}

int
cli_cmd_logs(int argc, char **argv)
{
    struct common_opts o;
    bool ok = parse_common(argc, argv, &o);
    bool follow = false;
    const char *program = NULL;
    struct log_filter filt;
    memset(&filt, 0, sizeof(filt));
    for (int i = 0; ok && i < o.nrest; i++) {
        const char *a = o.rest[i];
        if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
            follow = true;
        } else if (strcmp(a, "--since") == 0 && i + 1 < o.nrest) {
            uint64_t ms;
            if (cli_parse_duration_ms(o.rest[++i], &ms) != 0) {
                ag_free(o.rest);
                return usage_error("logs", "--since takes a duration such as 30s, 5m or 2h");
            }
            ag_time_rfc3339(ag_time_unix_ms() - (int64_t)ms, filt.since);
        } else if ((strcmp(a, "--trace") == 0 || strcmp(a, "--request") == 0) && i + 1 < o.nrest) {
            const char *id = o.rest[++i];
            if (!plain_id(id)) {
                ag_free(o.rest);
                return usage_error("logs", "--trace and --request take an id");
            }
            if (a[2] == 't')
                snprintf(filt.trace, sizeof(filt.trace), "\"trace_id\":\"%s\"", id);
            else
                snprintf(filt.request, sizeof(filt.request), "\"request_id\":\"%s\"", id);
        } else if (strcmp(a, "--level") == 0 && i + 1 < o.nrest) {
            const char *lv = o.rest[++i];
            filt.min_level = ag_log_level_rank(lv, strlen(lv));
            if (filt.min_level < 0) {
                ag_free(o.rest);
                return usage_error("logs", "--level takes debug, info, warn or error");
            }
        } else if (a[0] != '-' && program == NULL) {
            program = a;
        } else {
            ok = false;
        }
    }
    ag_free(o.rest);
    if (!ok)
        return usage_error("logs", "unexpected argument");
    char *dirpath = ag_asprintf("%s/logs", o.data);
    DIR *dir = opendir(dirpath);
    if (dir == NULL) {
        fprintf(stderr, "agora: no logs in '%s': %s\n", dirpath, strerror(errno));
        ag_free(dirpath);
        return CLI_NOT_RUNNING;
    }
    struct logfile files[64];
    size_t n = 0;
    struct dirent *d;
    while ((d = readdir(dir)) != NULL && n < AG_ARRAY_SIZE(files)) {
        /* <program>.log and the rotated <program>.log.1 (merged by time). */
        size_t len = strlen(d->d_name);
        size_t stem;
        if (len > 4 && strcmp(d->d_name + len - 4, ".log") == 0)
            stem = len - 4;
        else if (len > 6 && strcmp(d->d_name + len - 6, ".log.1") == 0)
            stem = len - 6;
        else
            continue;
        char *name = ag_strndup(d->d_name, stem);
        if (program != NULL && strcmp(program, name) != 0) {
            ag_free(name);
            continue;
        }
        struct logfile *lf = &files[n++];
        memset(lf, 0, sizeof(*lf));
        lf->name = name;
        lf->path = ag_asprintf("%s/%s", dirpath, d->d_name);
        lf->f = fopen(lf->path, "r");
        next_line(lf);
    }
    closedir(dir);
    ag_free(dirpath);
    if (program != NULL && n == 0) {
        fprintf(stderr, "agora logs: no log of '%s' in %s/logs\n", program, o.data);
        return CLI_USAGE;
    }
    bool tty = isatty(STDOUT_FILENO);
    struct cli_fmt fmt = { .pretty = tty && !o.json, .color = tty && getenv("NO_COLOR") == NULL };
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    while (!interrupted) {
        /* Merge: always the earliest pending line. */
        struct logfile *best = NULL;
        for (size_t i = 0; i < n; i++) {
            struct logfile *lf = &files[i];
            while (lf->len >= 0 && !wanted(lf, &filt))
                next_line(lf);
            if (lf->len >= 0 && (best == NULL || strcmp(lf->time, best->time) < 0))
                best = lf;
        }
        if (best != NULL) {
            cli_print_line(stdout, &fmt, best->name, best->line, (size_t)best->len);
            next_line(best);
            continue;
        }
        if (!follow)
            break;
        fflush(stdout);
        struct timespec ts = { 0, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        for (size_t i = 0; i < n; i++) {
            if (files[i].f == NULL)
                files[i].f = fopen(files[i].path, "r");
            next_line(&files[i]);
        }
    }
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        if (files[i].f != NULL)
            fclose(files[i].f);
        ag_free(files[i].line);
        ag_free(files[i].name);
        ag_free(files[i].path);
    }
    return CLI_OK;
}

/* ---- down ---- */

int
cli_cmd_down(int argc, char **argv)
{
    struct common_opts o;
    bool ok = parse_common(argc, argv, &o);
    uint64_t timeout_ms = 60000;
    for (int i = 0; ok && i < o.nrest; i++) {
        if (strcmp(o.rest[i], "--timeout") == 0 && i + 1 < o.nrest &&
            cli_parse_duration_ms(o.rest[i + 1], &timeout_ms) == 0)
            i++;
        else
            ok = false;
    }
    ag_free(o.rest);
    if (!ok)
        return usage_error("down", "unexpected argument");
    int pid = cli_running_pid(o.data);
    if (pid <= 0) {
        fprintf(stderr, "agora: no shop is running on '%s'\n", o.data);
        return CLI_NOT_RUNNING;
    }
    if (kill(pid, SIGTERM) == -1) {
        fprintf(stderr, "agora: cannot signal the supervisor (pid %d): %s\n", pid, strerror(errno));
        return CLI_FAILED;
    }
    fprintf(stderr, "agora: stopping the shop on '%s' (supervisor pid %d)\n", o.data, pid);
    uint64_t deadline = ag_time_mono_ms() + timeout_ms;
    while (cli_running_pid(o.data) != 0) {
        if (ag_time_mono_ms() > deadline) {
            fprintf(stderr, "agora: the shop did not stop within %llu ms\n",
                    (unsigned long long)timeout_ms);
            return CLI_FAILED;
        }
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    /* The lock is released just before the supervisor exits. */
    while (kill(pid, 0) == 0 && ag_time_mono_ms() < deadline) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "agora: stopped\n");
    return CLI_OK;
}

/* ---- kill ---- */

int
cli_cmd_kill(int argc, char **argv)
{
    struct common_opts o;
    bool ok = parse_common(argc, argv, &o);
    const char *program = NULL;
    int sig = SIGKILL;
    for (int i = 0; ok && i < o.nrest; i++) {
        if (strcmp(o.rest[i], "--signal") == 0 && i + 1 < o.nrest) {
            sig = (int)strtol(o.rest[++i], NULL, 10);
            ok = sig > 0 && sig < 65;
        } else if (o.rest[i][0] != '-' && program == NULL) {
            program = o.rest[i];
        } else {
            ok = false;
        }
    }
    ag_free(o.rest);
    if (!ok || program == NULL)
        return usage_error("kill", "takes one program name");
    json_t *info = cli_shop_info(o.data);
    if (info == NULL)
        return CLI_NOT_RUNNING;
    if (!known_program(info, program)) {
        json_decref(info);
        fprintf(stderr, "agora kill: no program '%s' in this shop\n", program);
        return CLI_USAGE;
    }
    json_decref(info);
    char *file = ag_asprintf("%s.json", program);
    char *path = cli_run_path(o.data, file);
    json_t *st = json_load_file(path, 0, NULL);
    ag_free(path);
    ag_free(file);
    int pid = st ? (int)json_integer_value(json_object_get(st, "pid")) : 0;
    json_decref(st);
    if (pid <= 0) {
        fprintf(stderr, "agora: %s is not running right now\n", program);
        return CLI_FAILED;
    }
    if (kill(pid, sig) == -1) {
        fprintf(stderr, "agora: cannot signal %s (pid %d): %s\n", program, pid, strerror(errno));
        return CLI_FAILED;
    }
    fprintf(stderr, "agora: sent signal %d to %s (pid %d); the supervisor restarts it\n", sig,
            program, pid);
    return CLI_OK;
}

/* ---- seed ---- */

int
cli_seed(const char *gw, const char *admin_password, const char *catalog_file)
{
    json_error_t jerr;
    json_t *cat = json_load_file(catalog_file, 0, &jerr);
    if (cat == NULL) {
        fprintf(stderr, "agora: cannot read '%s': %s\n", catalog_file, jerr.text);
        return CLI_FAILED;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_http_client_config cfg = { .breaker_failure_rate = 101, .eject_failures = 1000000 };
    struct ag_http_client *client;
    if (ag_http_client_new(&loop, &cfg, &client) != 0)
        AG_BUG("http client");
    int status = CLI_FAILED;
    char *token = NULL;
    struct cli_resp r;
    char *url = ag_asprintf("%s/api/v1/auth/login", gw);
    json_t *body =
        json_pack("{s:s, s:s}", "email", "admin@agora.local", "password", admin_password);
    cli_http(&loop, client, "POST", url, NULL, body, &r);
    json_decref(body);
    ag_free(url);
    const char *t = json_string_value(json_object_get(r.json, "access_token"));
    if (r.status != 200 || t == NULL) {
        fprintf(stderr, "agora: the administrator cannot sign in (status %d)\n", r.status);
        cli_resp_release(&r);
        goto out;
    }
    token = ag_strdup(t);
    cli_resp_release(&r);

    size_t i;
    json_t *v;
    int added_c = 0;
    json_array_foreach(json_object_get(cat, "categories"), i, v)
    {
        url = ag_asprintf("%s/api/v1/categories", gw);
        cli_http(&loop, client, "POST", url, token, v, &r);
        ag_free(url);
        if (r.status == 201)
            added_c++;
        else if (r.status != 409)
            fprintf(stderr, "agora: category '%s': status %d\n",
                    json_string_value(json_object_get(v, "slug")), r.status);
        cli_resp_release(&r);
    }
    int added_p = 0;
    int failed = 0;
    json_array_foreach(json_object_get(cat, "products"), i, v)
    {
        url = ag_asprintf("%s/api/v1/products", gw);
        cli_http(&loop, client, "POST", url, token, v, &r);
        ag_free(url);
        if (r.status == 201) {
            added_p++;
        } else if (r.status != 409) {
            failed++;
            fprintf(stderr, "agora: product '%s': status %d\n",
                    json_string_value(json_object_get(v, "sku")), r.status);
        }
        cli_resp_release(&r);
    }
    url = ag_asprintf("%s/api/v1/users", gw);
    body = json_pack("{s:s, s:s, s:s}", "email", CLI_DEMO_EMAIL, "password", CLI_DEMO_PASSWORD,
                     "name", CLI_DEMO_NAME);
    cli_http(&loop, client, "POST", url, NULL, body, &r);
    json_decref(body);
    ag_free(url);
    bool customer = r.status == 201 || r.status == 409;
    if (!customer)
        fprintf(stderr, "agora: the demo customer: status %d\n", r.status);
    cli_resp_release(&r);
    fprintf(stderr,
            "agora: demo data: %d categories and %d products added (%zu in %s), %s\n"
            "  demo customer: %s / %s\n",
            added_c, added_p, json_array_size(json_object_get(cat, "products")), catalog_file,
            r.status == 201 ? "customer created" : "customer was there", CLI_DEMO_EMAIL,
            CLI_DEMO_PASSWORD);
    status = customer && failed == 0 ? CLI_OK : CLI_FAILED;
out:
    ag_free(token);
    json_decref(cat);
    ag_http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return status;
}

int
cli_cmd_seed(int argc, char **argv)
{
    struct common_opts o;
    if (!parse_common(argc, argv, &o) || o.nrest > 0) {
        ag_free(o.rest);
        return usage_error("seed", "unexpected argument");
    }
    ag_free(o.rest);
    json_t *info = cli_shop_info(o.data);
    if (info == NULL)
        return CLI_NOT_RUNNING;
    char gw[64];
    snprintf(gw, sizeof(gw), "http://127.0.0.1:%lld",
             (long long)json_integer_value(json_object_get(info, "gateway_port")));
    char *pwpath = ag_asprintf("%s/admin-password", o.data);
    FILE *f = fopen(pwpath, "r");
    char pw[256] = "";
    if (f != NULL) {
        if (fgets(pw, sizeof(pw), f) == NULL)
            pw[0] = '\0';
        fclose(f);
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    ag_free(pwpath);
    char *catalog = ag_asprintf("%s/services/catalog/demo/catalog.json",
                                json_string_value(json_object_get(info, "source")));
    int rc = cli_seed(gw, pw, catalog);
    ag_free(catalog);
    json_decref(info);
    return rc;
}

/* ---- probe ---- */

struct probe_call {
    bool done;
    int err;
    int status;
};

static void
on_probe(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct probe_call *c = udata;
    c->done = true;
    c->err = resp->err;
    c->status = resp->status;
}

/* `agora probe URL [--timeout D]`: GET URL once; exit 0 on a 2xx answer,
 * else 1. The health check of containers that have no shell or curl
 * (deploy/Dockerfile's image; deploy/compose/compose.yaml). */
int
cli_cmd_probe(int argc, char **argv)
{
    const char *url = NULL;
    uint64_t timeout_ms = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (cli_parse_duration_ms(argv[++i], &timeout_ms) != 0 || timeout_ms == 0)
                return usage_error("probe", "--timeout takes a duration such as 2s");
        } else if (argv[i][0] != '-' && url == NULL) {
            url = argv[i];
        } else {
            return usage_error("probe", "takes one URL");
        }
    }
    if (url == NULL)
        return usage_error("probe", "takes one URL");
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_http_client_config cfg = { .breaker_failure_rate = 101, .eject_failures = 1000000 };
    struct ag_http_client *client;
    if (ag_http_client_new(&loop, &cfg, &client) != 0)
        AG_BUG("http client");
    struct ag_http_client_request req = {
        .method = "GET",
        .url = url,
        .timeout_ms = timeout_ms,
        .max_retries = -1,
    };
    struct probe_call c = { .done = false };
    int rc = ag_http_client_send(client, &req, on_probe, &c);
    if (rc != 0)
        c.err = rc;
    while (rc == 0 && !c.done)
        uv_run(&loop, UV_RUN_ONCE);
    ag_http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (c.err != 0) {
        fprintf(stderr, "agora probe: %s: %s\n", url, ag_strerror(c.err));
        return CLI_FAILED;
    }
    if (c.status < 200 || c.status > 299) {
        fprintf(stderr, "agora probe: %s: status %d\n", url, c.status);
        return CLI_FAILED;
    }
    return CLI_OK;
}
