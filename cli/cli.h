/* SPDX-License-Identifier: MIT */
/* Shared pieces of the agora command: exit codes, the files a running shop
 * keeps in its data directory, the log line formatter, a blocking HTTP call
 * on the chassis client, and small parsers. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include "agora/base.h"

#include <stdio.h>

#include <jansson.h>
#include <uv.h>

#include "agora/http_client.h"

/* Exit codes of every command (README.md, `agora help`). */
enum {
    CLI_OK = 0,          /* done */
    CLI_FAILED = 1,      /* runtime failure (a program did not start, a request failed) */
    CLI_USAGE = 2,       /* bad command line */
    CLI_NOT_RUNNING = 3, /* no shop runs on that data directory */
};

/* The data directory of a shop (`--data`, default "var"):
 *   run/agora.pid        the supervisor's pid; locked (flock) while it runs
 *   run/shop.json        ports, directories and the supervisor's pid
 *   run/<program>.json   one per program: pid, port, state, start time, restarts
 *   logs/<program>.log   the program's log lines (JSON), appended
 *   logs/agora.log       the supervisor's own lines */
#define CLI_DEFAULT_DATA "var"

/* The demo customer `agora seed` (and `agora up --seed`) creates. */
#define CLI_DEMO_EMAIL    "demo@agora.local"
#define CLI_DEMO_PASSWORD "agora-demo-shopper"
#define CLI_DEMO_NAME     "Demo Customer"

/* "<data>/run/<name>" and "<data>/logs/<name>" (owned strings). */
char *cli_run_path(const char *data, const char *name);
char *cli_log_path(const char *data, const char *name);

/* Open (creating) and lock run/agora.pid without blocking. Returns the open
 * descriptor (keep it open while running), or -1 with *out_pid set to the
 * pid in the file when another process holds the lock (0 when unknown), or
 * -2 on another error (printed). */
int cli_lock_pidfile(const char *data, int *out_pid);

/* The pid of the supervisor running on 'data', or 0 when none runs. */
int cli_running_pid(const char *data);

/* Write 'obj' to 'path' atomically (temporary file and rename). */
int cli_write_json(const char *path, json_t *obj);

/* Parse "250ms", "3s", "5m", "2h" or a plain number of seconds. */
int cli_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Log line output. */
struct cli_fmt {
    bool pretty; /* one readable line, with colour, instead of the JSON */
    bool color;
    bool quiet;       /* warnings and errors only */
    const char *only; /* "a,b": only these programs (NULL: all) */
};

/* Print one log line of program 'name' (the JSON line as the program wrote
 * it, without the newline) to 'out' according to 'fmt'. */
void cli_print_line(FILE *out, const struct cli_fmt *fmt, const char *name, const char *line,
                    size_t len);

/* Is 'name' in the comma-separated 'list'? */
bool cli_in_list(const char *list, const char *name);

/* A blocking call on 'client' (runs 'loop' until it completes). */
struct cli_resp {
    int err;      /* 0 or an AG_E* code of the transport */
    int status;   /* HTTP status */
    json_t *json; /* parsed body, or NULL */
    uint64_t retry_after_ms;
};

int cli_http(uv_loop_t *loop, struct ag_http_client *client, const char *method, const char *url,
             const char *token, json_t *body, struct cli_resp *out);
void cli_resp_release(struct cli_resp *r);

/* Commands (cmd_*.c). argv[0] is the command's name. */
int cli_cmd_status(int argc, char **argv);
int cli_cmd_logs(int argc, char **argv);
int cli_cmd_down(int argc, char **argv);
int cli_cmd_kill(int argc, char **argv);
int cli_cmd_seed(int argc, char **argv);
int cli_cmd_load(int argc, char **argv);
int cli_cmd_probe(int argc, char **argv);
/* agora dead-letters (deadletters.c): RabbitMQ dead-letter queues. */
int cli_cmd_dead_letters(int argc, char **argv);

/* Seed a running shop whose gateway is 'gw' ("http://127.0.0.1:8080"):
 * the demo catalog of 'catalog_file' (products the catalog lacks), and the
 * demo customer. Prints what it did to stderr. */
int cli_seed(const char *gw, const char *admin_password, const char *catalog_file);

/* Read run/shop.json of a running shop: NULL (printed) when none runs. */
json_t *cli_shop_info(const char *data);

/* Service identities (agora/identity.h). The supervisor's master secret
 * for them is <data>/service.key (64 hex digits, 0600), apart from
 * internal.key: every process holds AGORA_INTERNAL_KEY, none holds this. */
#define CLI_SERVICE_MASTER "service.key"

/* The 64 hex digits of service 'name''s seed derived from the master
 * 'master_hex' into 'out' (65 bytes). AG_EINVAL for a bad master or name. */
int cli_service_key(const char *master_hex, const char *name, char out[65]);

/* "name=<hex public key>,..." for 'names' under 'master_hex'; owned. NULL
 * for a bad master or name. */
char *cli_service_pubkeys(const char *master_hex, const char *const *names, size_t n);

/* The operator's ("agora") X-Agora-Identity for the shop whose data
 * directory is 'data', valid five minutes, into 'out' (AG_IDENTITY_MAXLEN
 * bytes). AG_ENOENT without a readable master. */
int cli_operator_identity(const char *data, char *out);

#endif /* CLI_CLI_H */
