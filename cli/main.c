/* SPDX-License-Identifier: MIT */
/* The agora command. `agora up` runs the whole shop on this machine under
 * the supervisor; the shop is the program table of agora/ports.h (names,
 * ports, binaries, start-up order), plus the extra settings below. */
#include "agora/base.h"
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/ports.h"
#include "agora/service.h"
#include "agora/str.h"

#define SECRET_MAX 256

/* Every program of agora/ports.h that has a binary, in its start-up order
 * (dependencies first; stop is the reverse). */
static const struct cli_program PROGRAMS[] = {
#define PROGRAM(NAME, name, port, binary) { name, binary, port, false, { NULL } },
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

static void
usage(FILE *out)
{
    fprintf(out, "usage: agora up [--build DIR] [--data DIR] [--source DIR] [--port-offset N]\n"
                 "       agora help\n\n"
                 "  up   run the whole shop on this machine until Ctrl-C\n");
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

static int
cmd_up(int argc, char **argv)
{
    const char *build = "build";
    const char *data = "var";
    const char *source = ".";
    int64_t offset = 0;
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--build") == 0)
            build = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
            data = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--source") == 0)
            source = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--port-offset") == 0) {
            if (ag_str_to_i64(ag_str_from_cstr(argv[++i]), 0, 50000, &offset) != 0) {
                fprintf(stderr, "agora: --port-offset takes 0 to 50000\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    char build_abs[4096];
    char data_abs[4096];
    char source_abs[4096];
    /* Everything the shop writes (databases with password hashes and keys,
     * the internal key, the admin password) is for this user only. */
    umask(077);
    if (mkdir(data, 0700) == -1 && errno != EEXIST) {
        fprintf(stderr, "agora: cannot create '%s': %s\n", data, strerror(errno));
        return 1;
    }
    if (realpath(build, build_abs) == NULL || realpath(data, data_abs) == NULL ||
        realpath(source, source_abs) == NULL) {
        fprintf(stderr, "agora: bad directory: %s\n", strerror(errno));
        return 1;
    }
    ag_service_check_private(data_abs, NULL);
    char *keypath = ag_asprintf("%s/internal.key", data_abs);
    char *pwpath = ag_asprintf("%s/admin-password", data_abs);
    char *key = load_or_make_secret(keypath, 32);
    char *adminpw = load_or_make_secret(pwpath, 12);
    if (key == NULL || adminpw == NULL)
        return 1;

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
    };

    /* The programs with a binary, with their extra settings expanded. */
    size_t n = 0;
    struct cli_program progs[AG_ARRAY_SIZE(PROGRAMS)];
    char *owned[AG_ARRAY_SIZE(PROGRAMS) * CLI_MAX_ENV];
    size_t nowned = 0;
    for (size_t i = 0; i < AG_ARRAY_SIZE(PROGRAMS); i++) {
        if (PROGRAMS[i].binary == NULL)
            continue; /* not written yet: only its port is reserved */
        struct cli_program *p = &progs[n++];
        *p = PROGRAMS[i];
        p->port = PROGRAMS[i].port + (int)offset;
        p->public_entry = strcmp(p->name, PUBLIC_ENTRY) == 0;
        for (size_t e = 0; e < AG_ARRAY_SIZE(EXTRA_ENV); e++) {
            if (strcmp(EXTRA_ENV[e].name, p->name) != 0)
                continue;
            for (size_t k = 0; k < CLI_MAX_ENV - 1 && EXTRA_ENV[e].env[k] != NULL; k++) {
                char *v = ag_strdup(EXTRA_ENV[e].env[k]);
                for (size_t s = 0; s < AG_ARRAY_SIZE(subst); s++) {
                    char *next = replace_all(v, subst[s][0], subst[s][1]);
                    ag_free(v);
                    v = next;
                }
                p->env[k] = v;
                owned[nowned++] = v;
            }
        }
    }
    char *common[8];
    size_t c = 0;
    common[c++] = ag_asprintf("AGORA_DATA_DIR=%s", data_abs);
    common[c++] = ag_asprintf("AGORA_INTERNAL_KEY=%s", key);
    common[c++] =
        ag_asprintf("AGORA_REGISTRY_URL=http://127.0.0.1:%d", AG_PORT_REGISTRY + (int)offset);
    common[c++] = ag_asprintf("AGORA_BUS_URL=http://127.0.0.1:%d", AG_PORT_BUS + (int)offset);
    common[c] = NULL;

    fprintf(stderr, "Agora: starting %zu programs from %s (data in %s)\n", n, build_abs, data_abs);
    fprintf(stderr, "  administrator: admin@agora.local, password in %s\n", pwpath);
    fprintf(stderr, "  operators: http://%s/metrics and /health/services (loopback only)\n", ops);
    struct cli_up_options opts = {
        .build_dir = build_abs,
        .source_dir = source_abs,
        .data_dir = data_abs,
        .ready_timeout_ms = 30000,
        .stop_timeout_ms = 15000,
    };
    int status = cli_supervise(progs, n, &opts, common);
    for (size_t i = 0; i < c; i++)
        ag_free(common[i]);
    for (size_t i = 0; i < nowned; i++)
        ag_free(owned[i]);
    ag_buf_release(&names);
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
        return 1;
    ag_log_init("agora", "agora", AG_LOG_INFO);
    if (argc >= 2 && strcmp(argv[1], "up") == 0)
        return cmd_up(argc, argv);
    if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
