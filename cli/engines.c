/* SPDX-License-Identifier: MIT */
/* Private PostgreSQL and RabbitMQ for `agora up --backends` (engines.h). */
#include "engines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agora/mem.h"

#define URL_MAX 1024

bool
cli_engines_parse(const char *list, struct cli_engines *e)
{
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == 8 && strncmp(p, "postgres", len) == 0)
            e->postgres = true;
        else if (len == 8 && strncmp(p, "rabbitmq", len) == 0)
            e->rabbitmq = true;
        else if (len == 6 && strncmp(p, "sqlite", len) == 0)
            e->postgres = false;
        else if (len == 3 && strncmp(p, "bus", len) == 0)
            e->rabbitmq = false;
        else if (len > 0) {
            fprintf(stderr,
                    "agora up: --backends: no backend '%.*s' (sqlite, postgres, bus, rabbitmq)\n",
                    (int)len, p);
            return false;
        }
        p += len + (p[len] == ',');
    }
    return true;
}

/* Run 'argv' (argv[0] a path), its stdout into 'out' (NUL-terminated,
 * trailing newline removed) when 'out' is not NULL; stderr is ours.
 * Returns its exit status, or -1 when it could not run. */
static int
run(char *const argv[], char *out, size_t outlen)
{
    int fds[2] = { -1, -1 };
    if (out != NULL && pipe(fds) == -1)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == -1) {
        if (out != NULL) {
            close(fds[0]);
            close(fds[1]);
        }
        return -1;
    }
    if (pid == 0) {
        if (out != NULL) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
        }
        execv(argv[0], argv);
        fprintf(stderr, "agora: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    size_t len = 0;
    if (out != NULL) {
        close(fds[1]);
        for (;;) {
            ssize_t r = read(fds[0], out + len, outlen - 1 - len);
            if (r > 0) {
                len += (size_t)r;
                if (len == outlen - 1)
                    break;
            } else if (r == 0 || errno != EINTR) {
                break;
            }
        }
        close(fds[0]);
        out[len] = '\0';
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
            out[--len] = '\0';
    }
    int status = 0;
    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* scripts/engine-<what> <verb> DATA/engines/<what> [args...] */
static int
engine(const struct cli_engines *e, const char *what, const char *verb, const char *arg1,
       const char *arg2, char *out, size_t outlen)
{
    char *script = ag_asprintf("%s/scripts/engine-%s", e->source, what);
    char *dir = ag_asprintf("%s/engines/%s", e->data, what);
    char *argv[] = { script, (char *)verb, dir, (char *)arg1, (char *)arg2, NULL };
    int rc = run(argv, out, outlen);
    ag_free(dir);
    ag_free(script);
    return rc;
}

bool
cli_engines_start(struct cli_engines *e)
{
    if (!e->postgres && !e->rabbitmq)
        return true;
    char *base = ag_asprintf("%s/engines", e->data);
    if (mkdir(base, 0700) == -1 && errno != EEXIST)
        fprintf(stderr, "agora: cannot create '%s': %s\n", base, strerror(errno));
    if (e->postgres && geteuid() == 0) {
        /* PostgreSQL runs as the postgres user (it refuses root): it must
         * pass through the data directory to its own, which is all it
         * is given: search permission only, nothing is listed or read. */
        if (chmod(e->data, 0711) != 0 || chmod(base, 0711) != 0)
            fprintf(stderr, "agora: cannot open '%s' to the postgres user: %s\n", base,
                    strerror(errno));
    }
    ag_free(base);
    char port[16];
    if (e->postgres) {
        snprintf(port, sizeof(port), "%d", e->pg_port);
        fprintf(stderr,
                "Agora: starting PostgreSQL on 127.0.0.1:%d (data in %s/engines/postgres)\n",
                e->pg_port, e->data);
        if (engine(e, "postgres", "start", port, NULL, NULL, 0) != 0) {
            fprintf(stderr, "agora: PostgreSQL did not start (scripts/engine-postgres)\n");
            return false;
        }
        e->pg_up = true;
    }
    if (e->rabbitmq) {
        snprintf(port, sizeof(port), "%d", e->rmq_port);
        /* Its epmd and distribution ports next to it (checked free by
         * agora up), never a spare port that could be one of the shop's. */
        char epmd[16];
        char dist[16];
        snprintf(epmd, sizeof(epmd), "%d", e->rmq_port + 1);
        snprintf(dist, sizeof(dist), "%d", e->rmq_port + 2);
        setenv("AGORA_RMQ_EPMD_PORT", epmd, 1);
        setenv("AGORA_RMQ_DIST_PORT", dist, 1);
        fprintf(stderr, "Agora: starting RabbitMQ on 127.0.0.1:%d (data in %s/engines/rabbitmq)\n",
                e->rmq_port, e->data);
        if (engine(e, "rabbitmq", "start", port, NULL, NULL, 0) != 0) {
            fprintf(stderr, "agora: RabbitMQ did not start (scripts/engine-rabbitmq)\n");
            cli_engines_stop(e);
            return false;
        }
        e->rmq_up = true;
    }
    return true;
}

char *
cli_engines_db_url(struct cli_engines *e, const char *name)
{
    char port[16];
    char url[URL_MAX];
    snprintf(port, sizeof(port), "%d", e->pg_port);
    if (engine(e, "postgres", "createdb", port, name, url, sizeof(url)) != 0 ||
        strncmp(url, "postgres", 8) != 0) {
        fprintf(stderr, "agora: cannot create the database of %s on PostgreSQL\n", name);
        return NULL;
    }
    return ag_strdup(url);
}

char *
cli_engines_events_url(struct cli_engines *e, const char *name)
{
    char url[URL_MAX];
    if (engine(e, "rabbitmq", "adduser", name, NULL, url, sizeof(url)) != 0 ||
        strncmp(url, "amqp://", 7) != 0) {
        fprintf(stderr, "agora: cannot create the RabbitMQ user of %s\n", name);
        return NULL;
    }
    return ag_strdup(url);
}

void
cli_engines_stop(struct cli_engines *e)
{
    if (e->rmq_up) {
        fprintf(stderr, "Agora: stopping RabbitMQ\n");
        engine(e, "rabbitmq", "stop", NULL, NULL, NULL, 0);
        e->rmq_up = false;
    }
    if (e->pg_up) {
        fprintf(stderr, "Agora: stopping PostgreSQL\n");
        engine(e, "postgres", "stop", NULL, NULL, NULL, 0);
        e->pg_up = false;
    }
}
