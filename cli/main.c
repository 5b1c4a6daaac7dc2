/* SPDX-License-Identifier: MIT */
/* The agora command. `agora up` runs the whole shop on this machine under
 * the supervisor; the shop is the program table of agora/ports.h (names,
 * ports, binaries, start-up order), plus the extra settings below. */
#include "agora/base.h"
#include "cli.h"
#include "engines.h"
#include "supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agora/buf.h"
#include "agora/config.h"
#include "agora/err.h"
#include "agora/identity.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/ports.h"
#include "agora/service.h"
#include "agora/str.h"
#include "agora/time.h"

#define SECRET_MAX 256

/* Every program of agora/ports.h that has a binary, in its start-up order
 * (dependencies first; stop is the reverse). */
static const struct cli_program PROGRAMS[] = {
#define PROGRAM(NAME, name, port, binary) { name, binary, port, false, { NULL }, NULL, 1 },
    AG_PROGRAMS(PROGRAM)
#undef PROGRAM
};

/* Settings some programs get under `agora up` besides the common ones.
 * "@SRC@" and "@ADMINPW@" in values are replaced by the source directory
 * and the administrator's password. */
static const struct {
    const char *name;
    const char *env[CLI_MAX_ENV];
} EXTRA_ENV[] = {
    /* The registry does not register with itself. */
    { "registry", { "AGORA_REGISTRY_URL=", NULL } },
    /* The collector does not export its own spans (each export would make
     * one more), and takes batches of up to 8 MiB. */
    /* Spans are worth less than an fsync per batch: the last ones may be
     * lost on power loss, never corrupted. */
    { "traces",
      { "AGORA_OTLP_ENDPOINT=", "AGORA_HTTP_MAX_BODY=8MiB", "AGORA_TRACES_LOG_DIR=@DATA@/logs",
        "AGORA_DURABILITY=normal", NULL } },
    { "users",
      { "AGORA_USERS_ADMIN_EMAIL=admin@agora.local", "AGORA_USERS_ADMIN_PASSWORD=@ADMINPW@",
        NULL } },
    /* Every product the catalog seeds gets 100 units, so the shop sells. */
    { "inventory", { "AGORA_INVENTORY_DEMO_STOCK=100", NULL } },
    { "catalog", { "AGORA_CATALOG_SEED=@SRC@/services/catalog/demo/catalog.json", NULL } },
    /* Pay later: payments asks orders whether the order awaits that amount. */
    { "payments", { "AGORA_PAYMENTS_ORDERS_URL=http://127.0.0.1:@ORDERS_PORT@", NULL } },
    { "gateway",
      { "AGORA_GATEWAY_WEB_ROOT=@SRC@/web", "AGORA_OPS_ADDRESS=@OPS@",
        "AGORA_GATEWAY_EXPECTED_SERVICES=@PROGRAMS@",
        "AGORA_GATEWAY_OPENAPI_FILE=@BUILD@/openapi.json", NULL } },
};

/* The program users are told to open. */
#define PUBLIC_ENTRY "gateway"

/* ---- Help ---- */

static const struct {
    const char *name;
    const char *summary;
    const char *text;
} HELP[] = {
    { "up", "run the whole shop on this machine",
      "usage: agora up [--data DIR] [--build DIR] [--source DIR] [--port-offset N]\n"
      "                [--detach] [--seed] [--json] [--quiet] [--only PROGRAM,...]\n"
      "                [--scale PROGRAM=N,...] [--backends postgres,rabbitmq]\n\n"
      "Start every program of the shop in dependency order, wait until each is\n"
      "ready, then print the storefront, console and API addresses. A program that\n"
      "crashes is restarted (at once the first time, then with a doubling delay up\n"
      "to 30 s while it keeps crashing). Ctrl-C or SIGTERM stops them in reverse order.\n\n"
      "  --data DIR         databases, secrets, run/ and logs/ (default ./var)\n"
      "  --build DIR        the build directory with the binaries (default ./build)\n"
      "  --source DIR       the repository: demo data and web files (default .)\n"
      "  --port-offset N    add N (0-50000) to every port (gateway 8080 + N)\n"
      "  --detach           run in the background; `agora down` stops it\n"
      "  --seed             once ready, add the demo catalog and the demo customer\n"
      "  --json             show log lines as JSON even on a terminal\n"
      "  --quiet            show only warnings and errors\n"
      "  --only P,...       show only the lines of these programs\n"
      "  --scale P=N,...    run N (1-9) instances of service P (users, catalog,\n"
      "                     inventory, orders, payments, shipping, notifications);\n"
      "                     instance k listens on the port + (k-1)*1000 and the gateway\n"
      "                     balances across them (default: $AGORA_SCALE)\n"
      "  --backends B,...   postgres: every service's database on a private PostgreSQL\n"
      "                     cluster (DIR/engines/postgres, port 8432 + N), one database\n"
      "                     and role each; rabbitmq: events on a private RabbitMQ node\n"
      "                     (DIR/engines/rabbitmq, port 8672 + N), one user each\n"
      "                     (default: $AGORA_BACKENDS, else sqlite,bus)\n\n"
      "AGORA_LOG_FILE_MAX (default 8MiB) bounds each logs/<program>.log: past it the\n"
      "file is rotated to <program>.log.1 (one kept).\n\n"
      "Logs are one readable line each on a terminal, JSON otherwise; every\n"
      "program's lines are also appended to DIR/logs/<program>.log.\n" },
    { "status", "show every process of a running shop",
      "usage: agora status [--data DIR] [--json]\n\n"
      "For each program: state, pid, port, health (GET /ready), uptime, restarts\n"
      "and resident memory. Exit 3 when no shop runs on DIR.\n" },
    { "logs", "show the log lines of a shop",
      "usage: agora logs [PROGRAM] [--data DIR] [-f] [--since DURATION] [--json]\n"
      "                  [--trace ID] [--request ID] [--level LEVEL]\n\n"
      "The lines of PROGRAM (or of every program, merged by time) from\n"
      "DIR/logs/ (the current and the rotated file). --since 5m shows only lines\n"
      "of the last five minutes (ms, s, m, h); --trace shows the lines of one\n"
      "trace (its id, as the console and GET /api/v1/traces show it) in every\n"
      "program, --request those of one request id, --level warn those at warn\n"
      "and above; -f keeps following new lines until interrupted. Works on a\n"
      "stopped shop.\n" },
    { "down", "stop a running shop",
      "usage: agora down [--data DIR] [--timeout DURATION]\n\n"
      "Ask the supervisor of the shop on DIR to stop (SIGTERM) and wait until it\n"
      "and every program have exited (default 60s). Exit 3 when none runs.\n" },
    { "kill", "kill one program (to watch the supervisor restart it)",
      "usage: agora kill PROGRAM [--data DIR] [--signal N]\n\n"
      "Send SIGKILL (or signal N) to PROGRAM of the shop on DIR. The supervisor\n"
      "restarts it; `agora status` shows the restart count.\n" },
    { "seed", "add the demo catalog and the demo customer",
      "usage: agora seed [--data DIR]\n\n"
      "Into the running shop on DIR: the categories and products of\n"
      "services/catalog/demo/catalog.json that the catalog lacks (each gets demo\n"
      "stock when inventory runs with AGORA_INVENTORY_DEMO_STOCK, as under agora up)\n"
      "and the demo customer " CLI_DEMO_EMAIL " / " CLI_DEMO_PASSWORD ". Prints the\n"
      "credentials. Running it again changes nothing.\n" },
    { "probe", "GET a URL once: exit 0 on 2xx (container health checks)",
      "usage: agora probe URL [--timeout DURATION]\n\n"
      "GET URL (e.g. http://127.0.0.1:8081/health) once, without retries, within\n"
      "DURATION (default 2s). Exit 0 on a 2xx answer, 1 otherwise. The health check\n"
      "of the container image (deploy/Dockerfile), which has no shell or curl.\n" },
    { "load", "generate open-loop load against a shop",
      "usage: agora load [--data DIR | --url URL] [--mix S:W,...] [--rate R]\n"
      "                  [--duration D] [--customers N] [--product ID]\n"
      "                  [--card TOKEN] [--json]\n\n"
      "Start scenarios at a constant arrival rate (R per second, default 10) for\n"
      "D (default 10s), whatever the answers' latency, so queueing shows in the\n"
      "latencies (measured from each scenario's scheduled start, as wrk2 does).\n"
      "Scenarios: browse (a product listing and one product), search (a full-text\n"
      "query), register (a new customer), checkout (add to cart, POST /v1/orders\n"
      "paying with tok_visa 80%, tok_chargeDeclined 10%, tok_insufficient_funds 10%,\n"
      "then poll the order until it is terminal). --mix browse:70,checkout:30 picks\n"
      "a scenario per arrival by weight (default browse:100). Checkouts use a pool\n"
      "of N customers (default 20) registered before the clock starts; a\n"
      "checkout waits for a free customer (its latency counts the wait) and one\n"
      "still waiting at the end is counted as dropped. --product ID: every\n"
      "checkout buys that product (e.g. one with stock enough for a benchmark);\n"
      "--card TOKEN: every checkout pays with that test card.\n"
      "Prints per scenario: started, completed, errors by status, latency\n"
      "p50/p90/p99/max, and confirmed orders per second; --json for scripts.\n"
      "Exit 1 when a scenario could not be prepared or a request failed to\n"
      "reach the shop at all.\n" },
    { "dead-letters", "list, show, replay or purge dead letters on RabbitMQ",
      "usage: agora dead-letters [--events-url URL] list SUB | show SUB N |\n"
      "                          replay SUB [--limit N] | purge SUB\n\n"
      "The dead letters of subscription SUB on RabbitMQ (queue SUB.dead; the\n"
      "events runtime's AMQP backend, AGORA_EVENTS_URL). list: one line per\n"
      "message (N, id, type, subject, reason); show: message N in full; replay:\n"
      "move the oldest N (default all) back to SUB only, each removed after\n"
      "RabbitMQ confirmed the copy; purge: drop them all. list and show put every\n"
      "message back in order. URL: amqp://user:password@host:port/vhost (default\n"
      "$AGORA_EVENTS_URL). Exit 3 when SUB.dead does not exist.\n" },
    { "help", "show help for a command", "usage: agora help [COMMAND]\n" },
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: agora <command> [options]\n\nCommands:\n");
    for (size_t i = 0; i < AG_ARRAY_SIZE(HELP); i++)
        fprintf(out, "  %-12s %s\n", HELP[i].name, HELP[i].summary);
    fprintf(out, "\nEvery command takes --data DIR (default ./var), the data directory of the\n"
                 "shop it starts or talks to. `agora help <command>` shows a command's options.\n\n"
                 "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 no shop running on\n"
                 "the data directory.\n");
}

static int
help_for(const char *cmd, FILE *out)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(HELP); i++) {
        if (strcmp(HELP[i].name, cmd) == 0) {
            fputs(HELP[i].text, out);
            return CLI_OK;
        }
    }
    fprintf(stderr, "agora: no command '%s'\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}

/* Read the secret in 'path', or create it with 'nbytes' random bytes as hex
 * (mode 0600). Returns an owned string or NULL. */
static char *
load_or_make_secret(const char *path, size_t nbytes)
{
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char buf[SECRET_MAX];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        buf[n] = '\0';
        if (n == 2 * nbytes)
            return ag_strdup(buf);
        AG_LOGW("agora", "'%s' is malformed; making a new one", path);
    }
    unsigned char raw[SECRET_MAX / 2];
    char hex[SECRET_MAX];
    randombytes_buf(raw, nbytes);
    sodium_bin2hex(hex, sizeof(hex), raw, nbytes);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1) {
        AG_LOGE("agora", "cannot write '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t len = strlen(hex);
    bool ok = write(fd, hex, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    close(fd);
    if (!ok) {
        AG_LOGE("agora", "cannot write '%s'", path);
        return NULL;
    }
    return ag_strdup(hex);
}

static char *
replace_all(const char *s, const char *what, const char *with)
{
    struct ag_buf b = AG_BUF_INIT(0);
    size_t wl = strlen(what);
    const char *p;
    while ((p = strstr(s, what)) != NULL) {
        ag_buf_append(&b, s, (size_t)(p - s));
        ag_buf_append_cstr(&b, with);
        s = p + wl;
    }
    ag_buf_append_cstr(&b, s);
    return ag_buf_detach(&b, NULL);
}

/* ---- Checks before starting ---- */

/* The pid listening on TCP 'port' (from /proc/net/tcp*), or 0. */
static int
port_owner(int port, char *comm, size_t commlen)
{
    unsigned long inode = 0;
    const char *files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    for (size_t f = 0; f < AG_ARRAY_SIZE(files) && inode == 0; f++) {
        FILE *fp = fopen(files[f], "r");
        if (fp == NULL)
            continue;
        char line[512];
        while (fgets(line, sizeof(line), fp) != NULL) {
            char local[128];
            unsigned st;
            unsigned long ino;
            if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &ino) != 3)
                continue;
            const char *colon = strrchr(local, ':');
            if (colon != NULL && st == 0x0A && (int)strtol(colon + 1, NULL, 16) == port) {
                inode = ino;
                break;
            }
        }
        fclose(fp);
    }
    if (inode == 0)
        return 0;
    char want[64];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return 0;
    int found = 0;
    struct dirent *d;
    while (found == 0 && (d = readdir(proc)) != NULL) {
        int pid = (int)strtol(d->d_name, NULL, 10);
        if (pid <= 0)
            continue;
        char fddir[64];
        snprintf(fddir, sizeof(fddir), "/proc/%d/fd", pid);
        DIR *fds = opendir(fddir);
        if (fds == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(fds)) != NULL) {
            char link[384];
            char target[64];
            snprintf(link, sizeof(link), "%s/%s", fddir, e->d_name);
            ssize_t n = readlink(link, target, sizeof(target) - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            if (strcmp(target, want) == 0) {
                found = pid;
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    if (found != 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", found);
        FILE *fp = fopen(path, "r");
        if (fp != NULL) {
            if (fgets(comm, (int)commlen, fp) == NULL)
                comm[0] = '\0';
            comm[strcspn(comm, "\n")] = '\0';
            fclose(fp);
        }
    }
    return found;
}

static bool
port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return true;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static bool
check_port(const char *what, int port)
{
    if (port_free(port))
        return true;
    char comm[64] = "";
    int pid = port_owner(port, comm, sizeof(comm));
    if (pid > 0)
        fprintf(stderr,
                "agora: port %d (%s) is in use by pid %d (%s); stop it or use --port-offset\n",
                port, what, pid, comm);
    else
        fprintf(stderr,
                "agora: port %d (%s) is in use; stop what listens on it or use --port-offset\n",
                port, what);
    return false;
}

/* ---- agora up ---- */

struct up_ctx {
    const char *data;
    const char *source;
    const char *pwpath;
    int gw_port;
    int ops_port;
    bool seed;
    char *adminpw;
    int notify_fd; /* --detach: the parent waits for one byte on this */
};

static void
print_banner(FILE *out, const struct up_ctx *u)
{
    fprintf(out, "\nAgora is up (data in %s).\n", u->data);
    fprintf(out, "  storefront:    http://127.0.0.1:%d/shop/\n", u->gw_port);
    fprintf(out, "  console:       http://127.0.0.1:%d/console/\n", u->gw_port);
    fprintf(out,
            "  api:           http://127.0.0.1:%d/api/v1/  (try: curl -s "
            "'http://127.0.0.1:%d/api/v1/products?limit=3')\n",
            u->gw_port, u->gw_port);
    fprintf(out, "  operators:     http://127.0.0.1:%d/metrics and /health/services\n",
            u->ops_port);
    fprintf(out, "  administrator: admin@agora.local, password in %s\n", u->pwpath);
    fprintf(out, "  demo customer: %s / %s%s\n", CLI_DEMO_EMAIL, CLI_DEMO_PASSWORD,
            u->seed ? "" : " (after `agora seed`)");
}

static void
on_ready(void *arg)
{
    struct up_ctx *u = arg;
    if (u->seed) {
        char gw[64];
        snprintf(gw, sizeof(gw), "http://127.0.0.1:%d", u->gw_port);
        char *catalog = ag_asprintf("%s/services/catalog/demo/catalog.json", u->source);
        if (cli_seed(gw, u->adminpw, catalog) != 0)
            AG_LOGW("agora", "seeding the demo data failed; `agora seed` tries again");
        ag_free(catalog);
    }
    if (u->notify_fd >= 0) {
        if (write(u->notify_fd, "R", 1) != 1) {
            /* The parent is gone; nothing to tell. */
        }
        close(u->notify_fd);
        u->notify_fd = -1;
        return;
    }
    print_banner(stderr, u);
    fprintf(stderr, "Press Ctrl-C to stop.\n\n");
}

static void
write_shop_info(const char *data, const char *build, const char *source, int64_t offset,
                const struct cli_program *progs, size_t n, int ops_port, bool detached)
{
    json_t *programs = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            programs, json_pack("{s:s, s:i}", "name", progs[i].name, "port", progs[i].port));
    json_t *o =
        json_pack("{s:i, s:s, s:s, s:s, s:I, s:i, s:i, s:o, s:b, s:I}", "pid", (int)getpid(),
                  "data", data, "build", build, "source", source, "port_offset", (json_int_t)offset,
                  "gateway_port", AG_PORT_GATEWAY + (int)offset, "ops_port", ops_port, "programs",
                  programs, "detached", detached, "started_ms", (json_int_t)ag_time_unix_ms());
    char *path = cli_run_path(data, "shop.json");
    if (o == NULL || cli_write_json(path, o) != 0)
        fprintf(stderr, "agora: cannot write '%s'\n", path);
    ag_free(path);
    json_decref(o);
}

/* The parent of --detach: wait for the daemon's "ready" byte. */
static int
wait_detached(int fd, pid_t child, const struct up_ctx *u)
{
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n == -1 && errno == EINTR);
    close(fd);
    if (n == 1 && c == 'R') {
        print_banner(stdout, u);
        printf("Running in the background (pid %d); logs in %s/logs/; stop with `agora down "
               "--data %s`.\n",
               (int)child, u->data, u->data);
        return CLI_OK;
    }
    fprintf(stderr,
            "agora: the shop did not start; see %s/logs/agora.log (`agora logs --data %s`)\n",
            u->data, u->data);
    return CLI_FAILED;
}

/* Whether program 'name' is a business service: it may run several
 * instances (stateless processes over their database) and uses the
 * scale-out engines; the platform programs (registry, bus, traces,
 * gateway) run once, the first three on SQLite. */
static bool
scalable(const char *name)
{
    return strcmp(name, "registry") != 0 && strcmp(name, "bus") != 0 &&
           strcmp(name, "traces") != 0 && strcmp(name, "gateway") != 0;
}

/* Parse "orders=3,catalog=2" into counts[] (indexed like PROGRAMS). */
static bool
parse_scale(const char *spec, int counts[])
{
    for (const char *p = spec; *p != '\0';) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        size_t k = AG_ARRAY_SIZE(PROGRAMS);
        if (eq != NULL) {
            for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
                if (PROGRAMS[i].binary != NULL && strlen(PROGRAMS[i].name) == (size_t)(eq - p) &&
                    strncmp(PROGRAMS[i].name, p, (size_t)(eq - p)) == 0)
                    k = i;
            }
        }
        int64_t v = 0;
        if (eq == NULL || k == AG_ARRAY_SIZE(PROGRAMS) ||
            ag_str_to_i64(ag_str_make(eq + 1, len - (size_t)(eq + 1 - p)), 1, AG_MAX_INSTANCES,
                          &v) != 0) {
            fprintf(stderr, "agora up: --scale: '%.*s' is not PROGRAM=N (N 1 to %d)\n", (int)len, p,
                    AG_MAX_INSTANCES);
            return false;
        }
        if (v > 1 && !scalable(PROGRAMS[k].name)) {
            fprintf(stderr, "agora up: --scale: %s runs one instance\n", PROGRAMS[k].name);
            return false;
        }
        counts[k] = (int)v;
        p += len + (p[len] == ',');
    }
    return true;
}

static int
cmd_up(int argc, char **argv)
{
    const char *build = "build";
    const char *data = CLI_DEFAULT_DATA;
    const char *source = ".";
    int64_t offset = 0;
    bool detach = false;
    bool seed = false;
    bool json = false;
    bool quiet = false;
    const char *only = NULL;
    const char *scale = getenv("AGORA_SCALE");
    const char *backends = getenv("AGORA_BACKENDS");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (has && strcmp(a, "--build") == 0)
            build = argv[++i];
        else if (has && strcmp(a, "--data") == 0)
            data = argv[++i];
        else if (has && strcmp(a, "--source") == 0)
            source = argv[++i];
        else if (has && strcmp(a, "--only") == 0)
            only = argv[++i];
        else if (has && strcmp(a, "--scale") == 0)
            scale = argv[++i];
        else if (has && strcmp(a, "--backends") == 0)
            backends = argv[++i];
        else if (strcmp(a, "--detach") == 0 || strcmp(a, "-d") == 0)
            detach = true;
        else if (strcmp(a, "--seed") == 0)
            seed = true;
        else if (strcmp(a, "--json") == 0)
            json = true;
        else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
            quiet = true;
        else if (has && strcmp(a, "--port-offset") == 0) {
            if (ag_str_to_i64(ag_str_from_cstr(argv[++i]), 0, 50000, &offset) != 0) {
                fprintf(stderr, "agora: --port-offset takes 0 to 50000\n");
                return CLI_USAGE;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return help_for("up", stdout);
        } else {
            fprintf(stderr, "agora up: unknown option or missing value: '%s'\n", a);
            help_for("up", stderr);
            return CLI_USAGE;
        }
    }
    if (only != NULL) {
        for (const char *p = only; *p != '\0';) {
            size_t len = strcspn(p, ",");
            bool known = strncmp(p, "agora", len) == 0 && len == 5;
            for (size_t k = 0; k < AG_ARRAY_SIZE(PROGRAMS); k++)
                known = known ||
                        (strlen(PROGRAMS[k].name) == len && strncmp(PROGRAMS[k].name, p, len) == 0);
            if (!known) {
                fprintf(stderr, "agora up: --only: no program '%.*s'\n", (int)len, p);
                return CLI_USAGE;
            }
            p += len + (p[len] == ',');
        }
    }
    /* The supervisor's own settings. */
    struct {
        uint64_t log_file_max;
    } up_settings;
    static const struct ag_config_key UP_KEYS[] = {
        { "AGORA_LOG_FILE_MAX", AG_CONFIG_SIZE, "8MiB", 0, 65536, (int64_t)1 << 34, NULL,
          "bytes of logs/<program>.log before it is rotated to <program>.log.1 (one kept)" },
    };
    char cerr[256];
    if (ag_config_load(UP_KEYS, AG_ARRAY_SIZE(UP_KEYS), &up_settings, cerr, sizeof(cerr)) != 0) {
        fprintf(stderr, "agora up: %s\n", cerr);
        return CLI_USAGE;
    }
    int counts[AG_ARRAY_SIZE(PROGRAMS)];
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++)
        counts[i] = 1;
    if (scale != NULL && !parse_scale(scale, counts))
        return CLI_USAGE;
    struct cli_engines eng = { .pg_port = AG_PORT_POSTGRES + (int)offset,
                               .rmq_port = AG_PORT_RABBITMQ + (int)offset };
    if (backends != NULL && !cli_engines_parse(backends, &eng))
        return CLI_USAGE;
    char build_abs[4096];
    char data_abs[4096];
    char source_abs[4096];
    /* Everything the shop writes (databases with password hashes and keys,
     * the internal key, the admin password) is for this user only. */
    umask(077);
    if (realpath(build, build_abs) == NULL) {
        fprintf(stderr, "agora: no build directory '%s'; build the shop first with `make build`\n",
                build);
        return CLI_FAILED;
    }
    if (realpath(source, source_abs) == NULL) {
        fprintf(stderr, "agora: bad source directory '%s': %s\n", source, strerror(errno));
        return CLI_FAILED;
    }
    if (mkdir(data, 0700) == -1 && errno != EEXIST) {
        fprintf(stderr, "agora: cannot create '%s': %s\n", data, strerror(errno));
        return CLI_FAILED;
    }
    if (realpath(data, data_abs) == NULL) {
        fprintf(stderr, "agora: bad data directory '%s': %s\n", data, strerror(errno));
        return CLI_FAILED;
    }
    /* Every binary, before anything starts. */
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        if (PROGRAMS[i].binary == NULL)
            continue;
        char *path = ag_asprintf("%s/%s", build_abs, PROGRAMS[i].binary);
        bool ok = access(path, X_OK) == 0;
        if (!ok)
            fprintf(stderr,
                    "agora: %s: no program '%s'; build it with `make build` (or `cmake --build "
                    "%s`)\n",
                    PROGRAMS[i].name, path, build);
        ag_free(path);
        if (!ok)
            return CLI_FAILED;
    }
    /* One supervisor per data directory. */
    int other = 0;
    int lockfd = cli_lock_pidfile(data_abs, &other);
    if (lockfd == -1) {
        fprintf(stderr,
                "agora: a shop is already running on '%s' (supervisor pid %d); stop it with "
                "`agora down --data %s`\n",
                data_abs, other, data);
        return CLI_FAILED;
    }
    if (lockfd < 0)
        return CLI_FAILED;
    /* Every port, before anything starts. */
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        for (int k = 0; PROGRAMS[i].binary != NULL && k < counts[i]; k++) {
            if (!check_port(PROGRAMS[i].name,
                            PROGRAMS[i].port + (int)offset + k * AG_PORT_INSTANCE_STRIDE))
                return CLI_FAILED;
        }
    }
    if (eng.postgres && !check_port("PostgreSQL", eng.pg_port))
        return CLI_FAILED;
    if (eng.rabbitmq && (!check_port("RabbitMQ", eng.rmq_port) ||
                         !check_port("RabbitMQ's epmd", eng.rmq_port + 1) ||
                         !check_port("RabbitMQ's distribution", eng.rmq_port + 2)))
        return CLI_FAILED;
    if (!check_port("gateway operators", AG_PORT_GATEWAY_OPS + (int)offset))
        return CLI_FAILED;

    ag_service_check_private(data_abs, NULL);
    char *keypath = ag_asprintf("%s/internal.key", data_abs);
    char *pwpath = ag_asprintf("%s/admin-password", data_abs);
    char *key = load_or_make_secret(keypath, 32);
    char *adminpw = load_or_make_secret(pwpath, 12);
    /* The master of service identities: only this process reads it; each
     * program gets its own key derived from it (below). */
    char *masterpath = ag_asprintf("%s/%s", data_abs, CLI_SERVICE_MASTER);
    char *master = load_or_make_secret(masterpath, 32);
    ag_free(masterpath);
    if (key == NULL || adminpw == NULL || master == NULL)
        return CLI_FAILED;

    struct up_ctx u = {
        .data = data_abs,
        .source = source_abs,
        .pwpath = pwpath,
        .gw_port = AG_PORT_GATEWAY + (int)offset,
        .ops_port = AG_PORT_GATEWAY_OPS + (int)offset,
        .seed = seed,
        .adminpw = adminpw,
        .notify_fd = -1,
    };
    if (detach) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) == -1) {
            fprintf(stderr, "agora: pipe: %s\n", strerror(errno));
            return CLI_FAILED;
        }
        fflush(NULL);
        pid_t child = fork();
        if (child == -1) {
            fprintf(stderr, "agora: fork: %s\n", strerror(errno));
            return CLI_FAILED;
        }
        if (child > 0) {
            close(fds[1]);
            close(lockfd); /* the daemon holds the lock through its copy */
            int rc = wait_detached(fds[0], child, &u);
            fflush(NULL);
            ag_free(key);
            ag_free(master);
            ag_free(adminpw);
            ag_free(keypath);
            ag_free(pwpath);
            return rc;
        }
        close(fds[0]);
        u.notify_fd = fds[1];
        setsid();
        char *logdir = ag_asprintf("%s/logs", data_abs);
        mkdir(logdir, 0700);
        char *logfile = ag_asprintf("%s/agora.log", logdir);
        int nul = open("/dev/null", O_RDONLY);
        int lf = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
            close(lf);
        }
        ag_free(logfile);
        ag_free(logdir);
    }
    {
        char pidtext[32];
        int len = snprintf(pidtext, sizeof(pidtext), "%d\n", (int)getpid());
        if (ftruncate(lockfd, 0) != 0 || pwrite(lockfd, pidtext, (size_t)len, 0) != len)
            fprintf(stderr, "agora: cannot write the pid file\n");
    }

    /* The gateway's operator listener (/metrics, /health/services). */
    char ops[32];
    snprintf(ops, sizeof(ops), "127.0.0.1:%d", AG_PORT_GATEWAY_OPS + (int)offset);

    /* The names of the programs that run, for the gateway's health view. */
    struct ag_buf names = AG_BUF_INIT(0);
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        if (PROGRAMS[i].binary != NULL)
            ag_buf_appendf(&names, "%s%s", names.len ? "," : "", PROGRAMS[i].name);
    }
    char orders_port[16];
    snprintf(orders_port, sizeof(orders_port), "%d", AG_PORT_ORDERS + (int)offset);
    /* "@SRC@", "@ADMINPW@", "@OPS@", "@PROGRAMS@", "@BUILD@", "@ORDERS_PORT@" in values. */
    const char *const subst[][2] = {
        { "@SRC@", source_abs },  { "@ADMINPW@", adminpw },
        { "@OPS@", ops },         { "@PROGRAMS@", ag_buf_cstr(&names) },
        { "@BUILD@", build_abs }, { "@ORDERS_PORT@", orders_port },
        { "@DATA@", data_abs },
    };

    /* The scale-out engines, before the programs that use them. */
    eng.source = source_abs;
    eng.data = data_abs;
    bool engines_ok = cli_engines_start(&eng);

    /* The programs with a binary, each instance of it, with their extra
     * settings expanded. */
    size_t n = 0;
    struct cli_program progs[AG_ARRAY_SIZE(PROGRAMS) * AG_MAX_INSTANCES];
    char *owned[AG_ARRAY_SIZE(PROGRAMS) * AG_MAX_INSTANCES * (CLI_MAX_ENV + 1)];
    size_t nowned = 0;
    for (size_t i = 0; engines_ok && i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        if (PROGRAMS[i].binary == NULL)
            continue; /* not written yet: only its port is reserved */
        /* Settings every instance shares. */
        const char *env[CLI_MAX_ENV] = { NULL };
        size_t ne = 0;
        for (size_t e = 0; e < AG_ARRAY_SIZE(EXTRA_ENV); e++) {
            if (strcmp(EXTRA_ENV[e].name, PROGRAMS[i].name) != 0)
                continue;
            for (size_t k = 0; ne < CLI_MAX_ENV - 4 && EXTRA_ENV[e].env[k] != NULL; k++) {
                char *v = ag_strdup(EXTRA_ENV[e].env[k]);
                for (size_t s = 0; s < AG_ARRAY_SIZE(subst); s++) {
                    char *next = replace_all(v, subst[s][0], subst[s][1]);
                    ag_free(v);
                    v = next;
                }
                env[ne++] = v;
                owned[nowned++] = v;
            }
        }
        if (scalable(PROGRAMS[i].name)) {
            /* Business services: their database and their events. */
            if (eng.postgres) {
                char *url = cli_engines_db_url(&eng, PROGRAMS[i].name);
                if (url == NULL) {
                    engines_ok = false;
                    break;
                }
                env[ne] = ag_asprintf("AGORA_DB_URL=%s", url);
                owned[nowned++] = (char *)env[ne++];
                ag_free(url);
            } else if (counts[i] > 1) {
                /* Instances share the SQLite file. */
                env[ne++] = "AGORA_DB_LOCKING=shared";
            }
            if (eng.rabbitmq) {
                char *url = cli_engines_events_url(&eng, PROGRAMS[i].name);
                if (url == NULL) {
                    engines_ok = false;
                    break;
                }
                env[ne] = ag_asprintf("AGORA_EVENTS_URL=%s", url);
                owned[nowned++] = (char *)env[ne++];
                ag_free(url);
            }
        }
        /* The gateway consumes the users service's revocations from the
         * same broker users publishes them to (its database stays SQLite). */
        if (eng.rabbitmq && strcmp(PROGRAMS[i].name, "gateway") == 0) {
            char *url = cli_engines_events_url(&eng, PROGRAMS[i].name);
            if (url == NULL) {
                engines_ok = false;
                break;
            }
            env[ne] = ag_asprintf("AGORA_EVENTS_URL=%s", url);
            owned[nowned++] = (char *)env[ne++];
            ag_free(url);
        }
        /* Its own service key, and nobody else's (every instance of it). */
        {
            char seed_hex[65];
            if (cli_service_key(master, PROGRAMS[i].name, seed_hex) != 0)
                AG_BUG("program names are service names");
            env[ne] = owned[nowned++] = ag_asprintf("AGORA_SERVICE_KEY=%s", seed_hex);
            ne++;
            sodium_memzero(seed_hex, sizeof(seed_hex));
        }
        for (int k = 1; k <= counts[i]; k++) {
            struct cli_program *p = &progs[n++];
            *p = PROGRAMS[i];
            p->service = PROGRAMS[i].name;
            p->instance = k;
            if (k > 1) {
                char *name = ag_asprintf("%s-%d", PROGRAMS[i].name, k);
                owned[nowned++] = name;
                p->name = name;
            }
            p->port = PROGRAMS[i].port + (int)offset + (k - 1) * AG_PORT_INSTANCE_STRIDE;
            p->public_entry = strcmp(p->name, PUBLIC_ENTRY) == 0;
            memcpy(p->env, env, sizeof(env));
        }
    }
    if (!engines_ok) {
        cli_engines_stop(&eng);
        for (size_t i = 0; i < nowned; i++)
            ag_free(owned[i]);
        ag_buf_release(&names);
        ag_free(key);
        ag_free(adminpw);
        ag_free(keypath);
        ag_free(pwpath);
        if (u.notify_fd >= 0)
            close(u.notify_fd);
        close(lockfd);
        return CLI_FAILED;
    }
    /* Everyone's public key: the programs and the operator. */
    const char *ids[AG_ARRAY_SIZE(PROGRAMS) + 1];
    size_t nids = 0;
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        if (PROGRAMS[i].binary != NULL)
            ids[nids++] = PROGRAMS[i].name; /* instances share their service's key */
    }
    ids[nids++] = AG_IDENTITY_OPERATOR;
    char *pubkeys = cli_service_pubkeys(master, ids, nids);
    if (pubkeys == NULL)
        AG_BUG("program names are service names");
    char *common[8];
    size_t c = 0;
    common[c++] = ag_asprintf("AGORA_DATA_DIR=%s", data_abs);
    common[c++] = ag_asprintf("AGORA_INTERNAL_KEY=%s", key);
    common[c++] = ag_asprintf("AGORA_SERVICE_PUBKEYS=%s", pubkeys);
    ag_free(pubkeys);
    common[c++] =
        ag_asprintf("AGORA_REGISTRY_URL=http://127.0.0.1:%d", AG_PORT_REGISTRY + (int)offset);
    common[c++] = ag_asprintf("AGORA_BUS_URL=http://127.0.0.1:%d", AG_PORT_BUS + (int)offset);
    /* Every program's spans to the built-in collector. */
    common[c++] =
        ag_asprintf("AGORA_OTLP_ENDPOINT=http://127.0.0.1:%d", AG_PORT_TRACES + (int)offset);
    common[c] = NULL;

    write_shop_info(data_abs, build_abs, source_abs, offset, progs, n, u.ops_port, detach);
    fprintf(stderr, "Agora: starting %zu programs from %s (data in %s)\n", n, build_abs, data_abs);
    bool tty = !detach && isatty(STDERR_FILENO);
    struct cli_up_options opts = {
        .build_dir = build_abs,
        .source_dir = source_abs,
        .data_dir = data_abs,
        .ready_timeout_ms = 30000,
        .stop_timeout_ms = 15000,
        .log_file_max = up_settings.log_file_max,
        .fmt = { .pretty = tty && !json,
                 .color = tty && getenv("NO_COLOR") == NULL,
                 .quiet = quiet,
                 .only = only },
        .out = detach ? NULL : stderr,
        .on_ready = on_ready,
        .ready_arg = &u,
    };
    int status = cli_supervise(progs, n, &opts, common);
    cli_engines_stop(&eng);
    if (u.notify_fd >= 0)
        close(u.notify_fd);
    /* Stopped: the state files no longer describe processes. */
    for (size_t i = 0; i < n; i++) {
        char *name = ag_asprintf("%s.json", progs[i].name);
        char *path = cli_run_path(data_abs, name);
        unlink(path);
        ag_free(path);
        ag_free(name);
    }
    char *shop = cli_run_path(data_abs, "shop.json");
    unlink(shop);
    ag_free(shop);
    close(lockfd);
    for (size_t i = 0; i < c; i++)
        ag_free(common[i]);
    for (size_t i = 0; i < nowned; i++)
        ag_free(owned[i]);
    ag_buf_release(&names);
    sodium_memzero(master, strlen(master));
    ag_free(master);
    ag_free(key);
    ag_free(adminpw);
    ag_free(keypath);
    ag_free(pwpath);
    return status;
}

int
main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return CLI_FAILED;
    ag_log_init("agora", "agora", AG_LOG_INFO);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } CMDS[] = {
        { "up", cmd_up },
        { "status", cli_cmd_status },
        { "logs", cli_cmd_logs },
        { "down", cli_cmd_down },
        { "kill", cli_cmd_kill },
        { "seed", cli_cmd_seed },
        { "load", cli_cmd_load },
        { "probe", cli_cmd_probe },
        { "dead-letters", cli_cmd_dead_letters },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(CMDS); i++) {
        if (strcmp(cmd, CMDS[i].name) == 0) {
            for (int k = 2; k < argc; k++) {
                if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0)
                    return help_for(cmd, stdout);
            }
            return CMDS[i].fn(argc - 1, argv + 1);
        }
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc >= 3)
            return help_for(argv[2], stdout);
        usage(stdout);
        return CLI_OK;
    }
    fprintf(stderr, "agora: no command '%s'\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}
