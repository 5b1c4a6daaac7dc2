/* SPDX-License-Identifier: MIT */
/* Configuration loader: AGORA_* environment variables over an optional
 * KEY=VALUE file over table defaults, parsed by type into a settings struct
 * (see config.h for the syntax of each type). Runs once at startup. */
#include "agora/base.h"
#include "agora/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/mem.h"
#include "agora/str.h"

/* Bytes of a value quoted in an error message. */
#define QUOTE_MAX 64

struct file_entry {
    char *key;     /* owned */
    char *value;   /* owned, unquoted */
    unsigned line; /* 1-based line number */
};

struct file_cfg {
    const char *path;           /* borrowed from the environment */
    struct file_entry *entries; /* n entries in file order */
    size_t n;                   /* entries */
};

/* Where a value came from, for error messages. */
struct source {
    const char *path; /* the config file, or NULL for env and defaults */
    unsigned line;    /* line in 'path' */
};

static const char *const type_names[] = { "string", "int", "bool", "duration", "size", "enum" };

static void errf(char *errbuf, size_t errlen, const char *fmt, ...) AG_PRINTF(3, 4);

static void
errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- The file ---- */

static void
file_release(struct file_cfg *fc)
{
    for (size_t i = 0; i < fc->n; i++) {
        ag_free(fc->entries[i].key);
        ag_free(fc->entries[i].value);
    }
    ag_free(fc->entries);
    fc->entries = NULL;
    fc->n = 0;
}

static bool
valid_key(struct ag_str k)
{
    if (k.len == 0)
        return false;
    for (size_t i = 0; i < k.len; i++) {
        char c = k.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Parse one line into 'fc'; false when it is not KEY=VALUE. */
static bool
file_line(struct file_cfg *fc, struct ag_str ln, unsigned lineno)
{
    if (ln.len > 0 && ln.ptr[ln.len - 1] == '\r')
        ln.len--;
    ln = ag_str_trim(ln);
    if (ln.len == 0 || ln.ptr[0] == '#')
        return true;
    if (ln.len > 7 && memcmp(ln.ptr, "export", 6) == 0 && is_space(ln.ptr[6]))
        ln = ag_str_trim(ag_str_make(ln.ptr + 7, ln.len - 7));
    const char *eq = memchr(ln.ptr, '=', ln.len);
    if (eq == NULL)
        return false;
    struct ag_str key = ag_str_trim(ag_str_make(ln.ptr, (size_t)(eq - ln.ptr)));
    struct ag_str val = ag_str_trim(ag_str_make(eq + 1, ln.len - (size_t)(eq - ln.ptr) - 1));
    if (!valid_key(key))
        return false;
    if (val.len >= 2 && (val.ptr[0] == '"' || val.ptr[0] == '\'') &&
        val.ptr[val.len - 1] == val.ptr[0]) {
        val.ptr++;
        val.len -= 2;
    }
    fc->entries = ag_realloc(fc->entries, (fc->n + 1) * sizeof(*fc->entries));
    struct file_entry *e = &fc->entries[fc->n++];
    e->key = ag_strndup(key.ptr, key.len);
    e->value = ag_strndup(val.ptr ? val.ptr : "", val.len);
    e->line = lineno;
    return true;
}

static int
file_load(struct file_cfg *fc, char *errbuf, size_t errlen)
{
    FILE *f = fopen(fc->path, "re");
    if (f == NULL) {
        errf(errbuf, errlen, "AGORA_CONFIG_FILE: cannot open '%s': %s", fc->path, strerror(errno));
        return AG_ECONFIG;
    }
    struct ag_buf buf = AG_BUF_INIT(AG_CONFIG_FILE_MAX);
    int rc = 0;
    char chunk[4096];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = ag_buf_append(&buf, chunk, n);
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (rc != 0 || read_error) {
        errf(errbuf, errlen, "AGORA_CONFIG_FILE: cannot read '%s': %s", fc->path,
             rc != 0 ? "larger than 1 MiB" : "read error");
        ag_buf_release(&buf);
        return AG_ECONFIG;
    }
    if (memchr(ag_buf_cstr(&buf), '\0', buf.len) != NULL) {
        errf(errbuf, errlen, "AGORA_CONFIG_FILE: '%s' holds a NUL byte", fc->path);
        ag_buf_release(&buf);
        return AG_ECONFIG;
    }

    const char *p = ag_buf_cstr(&buf);
    const char *end = p + buf.len;
    unsigned lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        lineno++;
        if (!file_line(fc, ag_str_make(p, (size_t)(stop - p)), lineno)) {
            errf(errbuf, errlen, "AGORA_CONFIG_FILE: '%s' line %u: expected KEY=VALUE", fc->path,
                 lineno);
            ag_buf_release(&buf);
            return AG_ECONFIG;
        }
        p = nl ? nl + 1 : end;
    }
    ag_buf_release(&buf);
    return 0;
}

static const struct file_entry *
file_get(const struct file_cfg *fc, const char *key)
{
    for (size_t i = fc->n; i > 0; i--) {
        if (strcmp(fc->entries[i - 1].key, key) == 0)
            return &fc->entries[i - 1];
    }
    return NULL;
}

/* ---- Values ---- */

static bool
has_bounds(const struct ag_config_key *k)
{
    return k->min != 0 || k->max != 0;
}

static bool
parse_bool(struct ag_str s, bool *out)
{
    static const char *const yes[] = { "true", "1", "yes", "on" };
    static const char *const no[] = { "false", "0", "no", "off" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(yes); i++) {
        if (ag_str_case_eq_cstr(s, yes[i])) {
            *out = true;
            return true;
        }
        if (ag_str_case_eq_cstr(s, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

struct unit {
    const char *name; /* suffix as written */
    uint64_t mult;    /* milliseconds or bytes per unit */
};

static const struct unit duration_units[] = {
    { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
};

static const struct unit size_units[] = {
    { "", 1 },           { "b", 1 },
    { "k", 1ull << 10 }, { "kib", 1ull << 10 },
    { "m", 1ull << 20 }, { "mib", 1ull << 20 },
    { "g", 1ull << 30 }, { "gib", 1ull << 30 },
    { "t", 1ull << 40 }, { "tib", 1ull << 40 },
};

/* "<digits><spaces?><unit>" -> *out. Returns 0, AG_EINVAL (syntax) or
 * AG_ERANGE (past INT64_MAX). */
static int
parse_with_unit(struct ag_str s, const struct unit *units, size_t nunits, bool unit_nocase,
                bool unit_space, uint64_t *out)
{
    size_t d = 0;
    while (d < s.len && s.ptr[d] >= '0' && s.ptr[d] <= '9')
        d++;
    struct ag_str unit = ag_str_make(s.ptr + d, s.len - d);
    if (unit_space)
        unit = ag_str_trim(unit);
    else if (unit.len > 0 && is_space(unit.ptr[0]))
        return AG_EINVAL;
    const struct unit *u = NULL;
    for (size_t i = 0; i < nunits && u == NULL; i++) {
        bool eq = unit_nocase ? ag_str_case_eq_cstr(unit, units[i].name)
                              : ag_str_eq_cstr(unit, units[i].name);
        if (eq)
            u = &units[i];
    }
    if (d == 0 || u == NULL)
        return AG_EINVAL;
    uint64_t n;
    int rc = ag_str_to_u64(ag_str_make(s.ptr, d), INT64_MAX, &n);
    if (rc != 0)
        return rc;
    if (n > (uint64_t)INT64_MAX / u->mult)
        return AG_ERANGE;
    *out = n * u->mult;
    return 0;
}

/* Does 'choices' ("a|b|c") hold 's'? Sets *out_choice to a heap copy. */
static bool
match_choice(const char *choices, struct ag_str s, char **out_choice)
{
    const char *p = choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n > 0 && ag_str_eq(s, ag_str_make(p, n))) {
            *out_choice = ag_strndup(p, n);
            return true;
        }
        if (bar == NULL)
            return false;
        p = bar + 1;
    }
}

struct load {
    const struct ag_config_key *k; /* key being loaded */
    struct source src;             /* where its value came from */
    char *errbuf;                  /* message destination */
    size_t errlen;                 /* its size */
};

static int fail(const struct load *ld, struct ag_str value, const char *fmt, ...) AG_PRINTF(3, 4);

/* Write "<KEY>: '<value>' <formatted>[ (from '<file>' line N)]". */
static int
fail(const struct load *ld, struct ag_str value, const char *fmt, ...)
{
    if (ld->errbuf == NULL || ld->errlen == 0)
        return AG_ECONFIG;
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char from[300] = "";
    if (ld->src.path != NULL)
        snprintf(from, sizeof(from), " (from '%s' line %u)", ld->src.path, ld->src.line);
    size_t qlen = AG_MIN(value.len, QUOTE_MAX);
    snprintf(ld->errbuf, ld->errlen, "%s: '%.*s%s' %s%s", ld->k->name, (int)qlen,
             value.ptr ? value.ptr : "", qlen < value.len ? "..." : "", why, from);
    return AG_ECONFIG;
}

static int
range_fail(const struct load *ld, struct ag_str value, const char *unit)
{
    const struct ag_config_key *k = ld->k;
    if (has_bounds(k)) {
        return fail(ld, value, "is out of range (%" PRId64 "%s to %" PRId64 "%s)", k->min, unit,
                    k->max, unit);
    }
    return fail(ld, value, "is out of range");
}

/* Parse 'value' for the key of 'ld' and store it into 'field'. */
static int
store_value(const struct load *ld, struct ag_str value, void *field)
{
    const struct ag_config_key *k = ld->k;
    struct ag_str v = ag_str_trim(value);
    switch (k->type) {
    case AG_CONFIG_STRING: *(char **)field = ag_strndup(v.ptr ? v.ptr : "", v.len); return 0;
    case AG_CONFIG_ENUM: {
        char *choice;
        if (!match_choice(k->choices, v, &choice))
            return fail(ld, v, "is not one of %s", k->choices);
        *(char **)field = choice;
        return 0;
    }
    case AG_CONFIG_BOOL: {
        bool b;
        if (!parse_bool(v, &b))
            return fail(ld, v, "is not a boolean (true/false, yes/no, on/off, 1/0)");
        *(bool *)field = b;
        return 0;
    }
    case AG_CONFIG_INT: {
        int64_t i;
        int rc = ag_str_to_i64(v, INT64_MIN, INT64_MAX, &i);
        if (rc == AG_EINVAL)
            return fail(ld, v, "is not an integer");
        if (rc != 0 || (has_bounds(k) && (i < k->min || i > k->max)))
            return range_fail(ld, v, "");
        *(int64_t *)field = i;
        return 0;
    }
    case AG_CONFIG_DURATION:
    case AG_CONFIG_SIZE: {
        bool dur = k->type == AG_CONFIG_DURATION;
        uint64_t u;
        int rc = dur ? parse_with_unit(v, duration_units, AG_ARRAY_SIZE(duration_units), false,
                                       false, &u)
                     : parse_with_unit(v, size_units, AG_ARRAY_SIZE(size_units), true, true, &u);
        if (rc == AG_EINVAL) {
            return fail(ld, v,
                        dur ? "is not a duration (e.g. 250ms, 5s, 2m, 1h)"
                            : "is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)");
        }
        if (rc != 0 || (has_bounds(k) && ((int64_t)u < k->min || (int64_t)u > k->max)))
            return range_fail(ld, v, dur ? "ms" : " bytes");
        *(uint64_t *)field = u;
        return 0;
    }
    }
    AG_BUG("unknown config type");
}

static void
check_key(const struct ag_config_key *k)
{
    if (k->name == NULL)
        AG_BUG("config key without a name");
    if ((unsigned)k->type > AG_CONFIG_ENUM)
        AG_BUG("config key with an unknown type");
    if (k->type == AG_CONFIG_ENUM && (k->choices == NULL || k->choices[0] == '\0'))
        AG_BUG("ENUM config key without choices");
    if (has_bounds(k) && k->min > k->max)
        AG_BUG("config key with min > max");
}

int
ag_config_load(const struct ag_config_key *keys, size_t nkeys, void *target, char *errbuf,
               size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    for (size_t i = 0; i < nkeys; i++) {
        check_key(&keys[i]);
        if (keys[i].type == AG_CONFIG_STRING || keys[i].type == AG_CONFIG_ENUM)
            *(char **)((char *)target + keys[i].offset) = NULL;
    }

    struct file_cfg fc = { getenv("AGORA_CONFIG_FILE"), NULL, 0 };
    int rc = 0;
    if (fc.path != NULL && fc.path[0] != '\0')
        rc = file_load(&fc, errbuf, errlen);

    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        const struct ag_config_key *k = &keys[i];
        struct load ld = { k, { NULL, 0 }, errbuf, errlen };
        const char *text = getenv(k->name);
        if (text == NULL) {
            const struct file_entry *e = file_get(&fc, k->name);
            if (e != NULL) {
                text = e->value;
                ld.src.path = fc.path;
                ld.src.line = e->line;
            }
        }
        bool from_default = text == NULL;
        if (from_default)
            text = k->def;
        if (text == NULL) {
            errf(errbuf, errlen, "%s: required but not set", k->name);
            rc = AG_ECONFIG;
            break;
        }
        struct ag_str value = ag_str_from_cstr(text);
        if (k->def == NULL && ag_str_trim(value).len == 0) {
            errf(errbuf, errlen, "%s: required but empty", k->name);
            rc = AG_ECONFIG;
            break;
        }
        rc = store_value(&ld, value, (char *)target + k->offset);
        if (rc != 0 && from_default && errbuf != NULL && errlen > 0) {
            /* A bad default is the table's fault; say so. */
            size_t n = strlen(errbuf);
            snprintf(errbuf + n, errlen - n, " (the default)");
        }
    }
    file_release(&fc);
    if (rc != 0)
        ag_config_release(keys, nkeys, target);
    return rc;
}

void
ag_config_release(const struct ag_config_key *keys, size_t nkeys, void *target)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].type != AG_CONFIG_STRING && keys[i].type != AG_CONFIG_ENUM)
            continue;
        char **field = (char **)((char *)target + keys[i].offset);
        ag_free(*field);
        *field = NULL;
    }
}

/* ---- Usage ---- */

static const char *
type_text(const struct ag_config_key *k)
{
    return k->type == AG_CONFIG_ENUM ? k->choices : type_names[k->type];
}

void
ag_config_usage(const struct ag_config_key *keys, size_t nkeys, FILE *out)
{
    int wname = 4;
    int wtype = 4;
    int wdef = 7;
    for (size_t i = 0; i < nkeys; i++) {
        wname = AG_MAX(wname, (int)strlen(keys[i].name));
        wtype = AG_MAX(wtype, (int)strlen(type_text(&keys[i])));
        wdef = AG_MAX(wdef, (int)strlen(keys[i].def ? keys[i].def : "(required)"));
    }
    fprintf(out, "%-*s  %-*s  %-*s  %s\n", wname, "NAME", wtype, "TYPE", wdef, "DEFAULT",
            "DESCRIPTION");
    for (size_t i = 0; i < nkeys; i++) {
        const struct ag_config_key *k = &keys[i];
        fprintf(out, "%-*s  %-*s  %-*s  %s\n", wname, k->name, wtype, type_text(k), wdef,
                k->def ? k->def : "(required)", k->help ? k->help : "");
    }
}

/* Print 's' for a Markdown table cell: '|' escaped. */
static void
md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void
ag_config_usage_markdown(const struct ag_config_key *keys, size_t nkeys, FILE *out)
{
    fputs("| Variable | Type | Default | Description |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < nkeys; i++) {
        const struct ag_config_key *k = &keys[i];
        fprintf(out, "| `%s` | ", k->name);
        md_cell(out, type_text(k));
        fputs(" | ", out);
        if (k->def == NULL) {
            fputs("(required)", out);
        } else if (k->def[0] == '\0') {
            fputs("(empty)", out);
        } else {
            fputc('`', out);
            md_cell(out, k->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, k->help ? k->help : "");
        fputs(" |\n", out);
    }
}
