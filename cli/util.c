/* SPDX-License-Identifier: MIT */
/* Shared pieces of the agora command (cli.h). */
#include "agora/base.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/identity.h"
#include "agora/mem.h"
#include "agora/time.h"

char *
cli_run_path(const char *data, const char *name)
{
    return ag_asprintf("%s/run/%s", data, name);
}

char *
cli_log_path(const char *data, const char *name)
{
    return ag_asprintf("%s/logs/%s", data, name);
}

static int
read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (int)strtol(buf, NULL, 10);
}

int
cli_lock_pidfile(const char *data, int *out_pid)
{
    *out_pid = 0;
    char *dir = ag_asprintf("%s/run", data);
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        fprintf(stderr, "agora: cannot create '%s': %s\n", dir, strerror(errno));
        ag_free(dir);
        return -2;
    }
    ag_free(dir);
    char *path = cli_run_path(data, "agora.pid");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        fprintf(stderr, "agora: cannot open '%s': %s\n", path, strerror(errno));
        ag_free(path);
        return -2;
    }
    ag_free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        *out_pid = read_pid(fd);
        close(fd);
        return -1;
    }
    return fd;
}

int
cli_running_pid(const char *data)
{
    char *path = cli_run_path(data, "agora.pid");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ag_free(path);
    if (fd == -1)
        return 0;
    int pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK)
        pid = read_pid(fd);
    close(fd);
    return pid;
}

int
cli_write_json(const char *path, json_t *obj)
{
    char *tmp = ag_asprintf("%s.tmp", path);
    int rc = json_dump_file(obj, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0 ? 0 : AG_EIO;
    ag_free(tmp);
    return rc;
}

int
cli_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0)
        return AG_EINVAL;
    double mul = 1000;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return AG_EINVAL;
    if (v * mul > 1e12)
        return AG_EINVAL;
    *out_ms = (uint64_t)(v * mul);
    return 0;
}

bool
cli_in_list(const char *list, const char *name)
{
    size_t nl = strlen(name);
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == nl && strncmp(p, name, nl) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return false;
}

/* A stable colour per program name (ANSI 31..36). */
static int
color_of(const char *name)
{
    unsigned h = 5381;
    for (const char *p = name; *p != '\0'; p++)
        h = h * 33u + (unsigned char)*p;
    static const int colors[] = { 32, 33, 34, 35, 36, 94, 92, 93, 95, 96 };
    return colors[h % AG_ARRAY_SIZE(colors)];
}

static bool
is_loud(const char *level)
{
    return strcmp(level, "warn") == 0 || strcmp(level, "error") == 0;
}

void
cli_print_line(FILE *out, const struct cli_fmt *fmt, const char *name, const char *line, size_t len)
{
    if (fmt->only != NULL && !cli_in_list(fmt->only, name))
        return;
    json_t *j = NULL;
    if (len > 0 && line[0] == '{' && (fmt->pretty || fmt->quiet))
        j = json_loadb(line, len, 0, NULL);
    const char *level = j ? json_string_value(json_object_get(j, "level")) : NULL;
    if (fmt->quiet && level != NULL && !is_loud(level)) {
        json_decref(j);
        return;
    }
    if (!fmt->pretty || j == NULL || level == NULL) {
        fwrite(line, 1, len, out);
        fputc('\n', out);
        json_decref(j);
        return;
    }
    const char *time = json_string_value(json_object_get(j, "time"));
    const char *svc = json_string_value(json_object_get(j, "service"));
    const char *msg = json_string_value(json_object_get(j, "msg"));
    const char *rid = json_string_value(json_object_get(j, "request_id"));
    const char *module = json_string_value(json_object_get(j, "module"));
    if (svc == NULL)
        svc = name;
    /* "2026-11-21T21:48:01.123Z" -> "21:48:01.123" */
    char hms[16] = "";
    if (time != NULL && strlen(time) >= 23)
        snprintf(hms, sizeof(hms), "%.12s", time + 11);
    const char *lvl = strcmp(level, "error") == 0   ? "ERROR"
                      : strcmp(level, "warn") == 0  ? "WARN "
                      : strcmp(level, "debug") == 0 ? "DEBUG"
                                                    : "INFO ";
    const char *lcol = strcmp(level, "error") == 0  ? "\033[1;31m"
                       : strcmp(level, "warn") == 0 ? "\033[1;33m"
                                                    : "\033[2m";
    if (fmt->color)
        fprintf(out, "\033[2m%s\033[0m \033[%dm%-13s\033[0m %s%s\033[0m ", hms, color_of(svc), svc,
                lcol, lvl);
    else
        fprintf(out, "%s %-13s %s ", hms, svc, lvl);
    if (module != NULL)
        fprintf(out, "%s: ", module);
    fputs(msg ? msg : "", out);
    /* The extra fields, key=value. */
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        static const char *const skip[] = { "time",   "level",      "service",  "instance",
                                            "module", "request_id", "trace_id", "msg" };
        bool known = false;
        for (size_t i = 0; i < AG_ARRAY_SIZE(skip); i++)
            known = known || strcmp(key, skip[i]) == 0;
        if (known)
            continue;
        if (json_is_string(v)) {
            fprintf(out, " %s=%s", key, json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(out, " %s=%s", key, s ? s : "?");
            ag_free(s);
        }
    }
    if (rid != NULL)
        fprintf(out, fmt->color ? " \033[2m[%s]\033[0m" : " [%s]", rid);
    fputc('\n', out);
    json_decref(j);
}

/* ---- Blocking HTTP ---- */

struct call {
    bool done;
    struct cli_resp *out;
};

static void
on_call(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct call *c = udata;
    c->done = true;
    c->out->err = resp->err;
    c->out->status = resp->status;
    if (resp->err == 0 && resp->body.len > 0)
        c->out->json = json_loadb(resp->body.ptr, resp->body.len, 0, NULL);
    struct ag_str ra = ag_http_client_header(resp, "retry-after");
    if (ra.ptr != NULL && ra.len > 0 && ra.len < 10) {
        char tmp[16];
        memcpy(tmp, ra.ptr, ra.len);
        tmp[ra.len] = '\0';
        c->out->retry_after_ms = (uint64_t)(int)strtol(tmp, NULL, 10) * 1000;
    }
}

int
cli_http(uv_loop_t *loop, struct ag_http_client *client, const char *method, const char *url,
         const char *token, json_t *body, struct cli_resp *out)
{
    memset(out, 0, sizeof(*out));
    struct ag_http_client_header h[2];
    size_t nh = 0;
    char *auth = NULL;
    char *text = NULL;
    if (token != NULL) {
        auth = ag_asprintf("Bearer %s", token);
        h[nh++] = (struct ag_http_client_header){ "Authorization", auth };
    }
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        h[nh++] = (struct ag_http_client_header){ "Content-Type", "application/json" };
    }
    struct ag_http_client_request req = {
        .method = method,
        .url = url,
        .headers = h,
        .nheaders = nh,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .timeout_ms = 15000,
        .max_retries = -1,
    };
    struct call c = { .out = out };
    int rc = ag_http_client_send(client, &req, on_call, &c);
    ag_free(auth);
    ag_free(text);
    if (rc != 0) {
        out->err = rc;
        return rc;
    }
    while (!c.done)
        uv_run(loop, UV_RUN_ONCE);
    return out->err;
}

void
cli_resp_release(struct cli_resp *r)
{
    json_decref(r->json);
    r->json = NULL;
}

json_t *
cli_shop_info(const char *data)
{
    int pid = cli_running_pid(data);
    if (pid == 0) {
        fprintf(stderr, "agora: no shop is running on '%s' (start one with `agora up --data %s`)\n",
                data, data);
        return NULL;
    }
    char *path = cli_run_path(data, "shop.json");
    json_t *info = json_load_file(path, 0, NULL);
    if (info == NULL)
        fprintf(stderr, "agora: cannot read '%s'\n", path);
    ag_free(path);
    return info;
}

/* ---- Service identities ---- */

int
cli_service_key(const char *master_hex, const char *name, char out[65])
{
    uint8_t master[AG_IDENTITY_KEYLEN];
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    if (ag_identity_key_parse(master_hex, master) != 0 ||
        ag_identity_service_seed(master, name, seed) != 0)
        return AG_EINVAL;
    sodium_bin2hex(out, 65, seed, sizeof(seed));
    sodium_memzero(master, sizeof(master));
    sodium_memzero(seed, sizeof(seed));
    return 0;
}

char *
cli_service_pubkeys(const char *master_hex, const char *const *names, size_t n)
{
    uint8_t master[AG_IDENTITY_KEYLEN];
    if (ag_identity_key_parse(master_hex, master) != 0)
        return NULL;
    struct ag_buf out = AG_BUF_INIT(0);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        uint8_t seed[AG_IDENTITY_SEEDLEN];
        uint8_t pk[AG_IDENTITY_PUBLEN];
        char hex[2 * AG_IDENTITY_PUBLEN + 1];
        ok = ag_identity_service_seed(master, names[i], seed) == 0;
        if (ok) {
            ag_identity_service_public(seed, pk);
            sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
            ag_buf_appendf(&out, "%s%s=%s", i ? "," : "", names[i], hex);
        }
        sodium_memzero(seed, sizeof(seed));
    }
    sodium_memzero(master, sizeof(master));
    if (!ok) {
        ag_buf_release(&out);
        return NULL;
    }
    return ag_buf_detach(&out, NULL);
}

int
cli_operator_identity(const char *data, char *out)
{
    char *path = ag_asprintf("%s/%s", data, CLI_SERVICE_MASTER);
    FILE *f = fopen(path, "r");
    ag_free(path);
    if (f == NULL)
        return AG_ENOENT;
    char hex[2 * AG_IDENTITY_KEYLEN + 2] = { 0 };
    size_t n = fread(hex, 1, 2 * AG_IDENTITY_KEYLEN, f);
    fclose(f);
    hex[n] = '\0';
    char seed_hex[65];
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    int rc = cli_service_key(hex, AG_IDENTITY_OPERATOR, seed_hex);
    if (rc == 0)
        rc = ag_identity_key_parse(seed_hex, seed);
    if (rc == 0)
        rc = ag_identity_service_sign(seed, AG_IDENTITY_OPERATOR, ag_time_unix_ms() / 1000 + 300,
                                      out);
    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(seed_hex, sizeof(seed_hex));
    sodium_memzero(seed, sizeof(seed));
    return rc != 0 ? AG_ENOENT : 0;
}
