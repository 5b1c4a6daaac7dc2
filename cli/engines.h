/* SPDX-License-Identifier: MIT */
/* The scale-out engines under `agora up --backends postgres,rabbitmq`: a
 * private PostgreSQL cluster and a private RabbitMQ node in the data
 * directory (DATA/engines/), started before the programs and stopped after
 * them, through scripts/engine-postgres and scripts/engine-rabbitmq of the
 * source tree. Each service gets its own database and role, and its own
 * RabbitMQ user, whose URLs the supervisor hands it as AGORA_DB_URL and
 * AGORA_EVENTS_URL. */
#ifndef CLI_ENGINES_H
#define CLI_ENGINES_H

#include "agora/base.h"

struct cli_engines {
    bool postgres;      /* databases on PostgreSQL instead of SQLite files */
    bool rabbitmq;      /* events on RabbitMQ instead of the bus */
    const char *source; /* the source tree (scripts/) */
    const char *data;   /* the data directory */
    int pg_port;        /* 127.0.0.1 port of the cluster */
    int rmq_port;       /* 127.0.0.1 AMQP port of the node */
    bool pg_up;         /* started by us: stop it at the end */
    bool rmq_up;
};

/* Parse a --backends list ("sqlite", "bus", "postgres", "rabbitmq", comma
 * separated; "sqlite" and "bus" are the defaults and change nothing) into
 * 'e'. Returns false (and prints why) for an unknown name. */
bool cli_engines_parse(const char *list, struct cli_engines *e);

/* Start the chosen engines (none: nothing). false when one did not start
 * (what was started is stopped again). Prints progress on stderr. */
bool cli_engines_start(struct cli_engines *e);

/* The URL of service 'name's own database (created with its own role on
 * first use), or NULL after printing why. Owned by the caller. */
char *cli_engines_db_url(struct cli_engines *e, const char *name);

/* The amqp:// URL of service 'name's own RabbitMQ user, or NULL. */
char *cli_engines_events_url(struct cli_engines *e, const char *name);

/* Stop what cli_engines_start started. */
void cli_engines_stop(struct cli_engines *e);

#endif /* CLI_ENGINES_H */
