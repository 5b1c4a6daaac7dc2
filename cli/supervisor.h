/* SPDX-License-Identifier: MIT */
/* The supervisor behind `agora up`: starts every process of the shop in
 * dependency order, waits for each to be ready, restarts a process that
 * dies, and on SIGTERM/SIGINT stops them in reverse order. */
#ifndef CLI_SUPERVISOR_H
#define CLI_SUPERVISOR_H

#include "agora/base.h"
#include "cli.h"

#define CLI_MAX_ENV 32

/* One supervised program, as declared in main.c's table. */
struct cli_program {
    const char *name;             /* "catalog" */
    const char *binary;           /* path relative to the build directory */
    int port;                     /* AGORA_HTTP_PORT */
    bool public_entry;            /* the address users are told about */
    const char *env[CLI_MAX_ENV]; /* extra "KEY=VALUE" entries, NULL-terminated */
    const char *service;          /* the program 'name' is an instance of (NULL: 'name') */
    int instance;                 /* 1.., AGORA_INSTANCE_ID <service>-<instance> (0: 1) */
};

struct cli_up_options {
    const char *build_dir;     /* where the binaries are */
    const char *source_dir;    /* the repository (demo data, web root) */
    const char *data_dir;      /* databases and generated secrets */
    uint64_t ready_timeout_ms; /* per program */
    uint64_t stop_timeout_ms;  /* per program, then SIGKILL */
    uint64_t log_file_max; /* bytes of logs/<program>.log before it is rotated to .1; 0: never */
    struct cli_fmt fmt;    /* how lines are shown on 'out' */
    FILE *out;             /* every program's lines, as 'fmt' says; NULL: files only */
    /* Called once when every program is ready for the first time. */
    void (*on_ready)(void *arg);
    void *ready_arg;
};

/* Run the programs until a signal; returns the process exit status. */
int cli_supervise(const struct cli_program *programs, size_t n, const struct cli_up_options *opts,
                  char *const *common_env);

#endif /* CLI_SUPERVISOR_H */
