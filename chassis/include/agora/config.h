/* SPDX-License-Identifier: MIT */
/* Table-driven configuration (12-factor, DESIGN.md section 3): each setting
 * is one row of a key table naming an AGORA_* environment variable, its
 * type, default and bounds, and where to store it in a settings struct.
 * Values come from the environment first, then from the file named by
 * AGORA_CONFIG_FILE, then from the default. ag_service_init loads the chassis
 * and service tables at startup and prints ag_config_usage for --help. */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include "agora/base.h"

#include <stdio.h>

/* Largest AGORA_CONFIG_FILE accepted. */
#define AG_CONFIG_FILE_MAX (1024 * 1024)

/* Value syntax and the type of the target field, per type:
 *
 * STRING    char *, a heap copy (ag_config_release frees it). Any text.
 * INT       int64_t. Base-10, optional '-', no '+', no spaces inside.
 * BOOL      bool. true/false, 1/0, yes/no, on/off (ASCII case-insensitive).
 * DURATION  uint64_t milliseconds. A whole number with a unit: "250ms",
 *           "5s", "2m", "1h"; a bare number is milliseconds. Units are
 *           lower-case; no fractions, no compound forms ("1h30m").
 * SIZE      uint64_t bytes. A whole number with an optional binary unit,
 *           ASCII case-insensitive, optionally after spaces: "512", "512B",
 *           "64K" = "64KiB" = 65536, "1M"/"1MiB", "2G"/"2GiB", "1T"/"1TiB".
 *           Decimal-looking units ("KB", "MB", "GB") are rejected as
 *           ambiguous: write KiB, MiB, GiB.
 * ENUM      char *, a heap copy of the matching entry of 'choices' (exact,
 *           case-sensitive match). 'choices' is "a|b|c".
 *
 * 'min' and 'max' bound INT, DURATION (in milliseconds) and SIZE (in bytes)
 * values, both inclusive; both 0 means unbounded. Leading and trailing
 * spaces of a value are ignored. An empty value set in the environment or
 * file is a value ("" for STRING, an error for the others); for a required
 * key it is an error. */
enum ag_config_type {
    AG_CONFIG_STRING = 0, /* char * */
    AG_CONFIG_INT,        /* int64_t */
    AG_CONFIG_BOOL,       /* bool */
    AG_CONFIG_DURATION,   /* uint64_t milliseconds */
    AG_CONFIG_SIZE,       /* uint64_t bytes */
    AG_CONFIG_ENUM,       /* char *, one of 'choices' */
};

struct ag_config_key {
    const char *name;         /* environment variable, "AGORA_HTTP_PORT" */
    enum ag_config_type type; /* how to parse and store the value */
    const char *def;          /* default as text; NULL means required */
    size_t offset;            /* offsetof() of the field in the target struct */
    int64_t min, max;         /* INT/DURATION/SIZE bounds (both 0: no bounds) */
    const char *choices;      /* ENUM: "full|normal" */
    const char *help;         /* one line for READMEs and --help */
};

/* Load every key of 'keys' ('nkeys' rows) into 'target' (the struct the
 * offsets refer to). Every field a row names is overwritten; STRING and ENUM
 * fields must not hold memory on entry that is still needed, since they are
 * not freed first.
 *
 * AGORA_CONFIG_FILE, when set, names a file of KEY=VALUE lines: blank
 * lines and lines starting with '#' are ignored, "export " before a key is
 * allowed, spaces around the key and the value are dropped, and a value in
 * matching single or double quotes loses them (no escapes; a '#' inside a
 * value is part of it). Keys not in the table are ignored, so one file may
 * serve several services; for a repeated key the last line wins.
 *
 * Returns 0, or AG_ECONFIG with a message in 'errbuf' ('errlen' bytes,
 * NUL-terminated; may be NULL when 'errlen' is 0) naming the first failing
 * key in table order, e.g. "AGORA_HTTP_PORT: 'abc' is not an integer",
 * "AGORA_DB_URL: required but not set" or, for values from the file,
 * "AGORA_HTTP_PORT: 'abc' is not an integer (from 'agora.env' line 3)".
 * File errors name AGORA_CONFIG_FILE. Values are quoted in messages (cut to
 * 64 bytes), so keys holding secrets should be STRING, which never fails to
 * parse. On failure nothing needs releasing: string fields are left NULL.
 * A malformed table (NULL name, ENUM without choices) is a programmer
 * error: AG_BUG.
 *
 * Reads the environment, so call it at startup before threads start. */
int ag_config_load(const struct ag_config_key *keys, size_t nkeys, void *target, char *errbuf,
                   size_t errlen);

/* Free the STRING and ENUM fields of 'target' named by 'keys' and set them
 * to NULL. Safe to call twice, and after a failed load. */
void ag_config_release(const struct ag_config_key *keys, size_t nkeys, void *target);

/* Print a table of 'keys' to 'out': name, type (the choices for ENUM),
 * default ("(required)" when there is none) and help, in aligned columns
 * under a header line. */
void ag_config_usage(const struct ag_config_key *keys, size_t nkeys, FILE *out);

/* Print the same table as Markdown, for service READMEs. */
void ag_config_usage_markdown(const struct ag_config_key *keys, size_t nkeys, FILE *out);

#endif /* AG_CONFIG_H */
