/* SPDX-License-Identifier: MIT */
/* Unit tests of config.c: a parsing table for every type (good and bad
 * values, bounds, units), required keys, first-failure naming, the
 * AGORA_CONFIG_FILE syntax under environment precedence, release (ASan
 * checks for leaks) and the usage tables. */
#include "agora/base.h"
#include "agora/config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agora/err.h"

struct settings {
    char *s;     /* STRING */
    int64_t i;   /* INT */
    bool b;      /* BOOL */
    uint64_t d;  /* DURATION */
    uint64_t sz; /* SIZE */
    char *e;     /* ENUM */
};

static int
setup(void **state)
{
    AG_UNUSED(state);
    unsetenv("AGORA_CONFIG_FILE");
    return 0;
}

/* ---- One value of each type ---- */

struct value_case {
    enum ag_config_type type;
    const char *value;
    int64_t min, max;
    bool ok;
    uint64_t want;         /* INT (as two's complement), BOOL, DURATION, SIZE */
    const char *want_text; /* STRING, ENUM; or the expected error message */
};

#define OK_NUM(t, v, n)                                                                            \
    {                                                                                              \
        t, v, 0, 0, true, (uint64_t)(n), NULL                                                      \
    }
#define OK_NUM_B(t, v, lo, hi, n)                                                                  \
    {                                                                                              \
        t, v, lo, hi, true, (uint64_t)(n), NULL                                                    \
    }
#define OK_TEXT(t, v, s)                                                                           \
    {                                                                                              \
        t, v, 0, 0, true, 0, s                                                                     \
    }
#define BAD(t, v, msg)                                                                             \
    {                                                                                              \
        t, v, 0, 0, false, 0, msg                                                                  \
    }
#define BAD_B(t, v, lo, hi, msg)                                                                   \
    {                                                                                              \
        t, v, lo, hi, false, 0, msg                                                                \
    }

static const struct value_case value_cases[] = {
    /* INT */
    OK_NUM(AG_CONFIG_INT, "8080", 8080),
    OK_NUM(AG_CONFIG_INT, "-5", -5),
    OK_NUM(AG_CONFIG_INT, " 42 ", 42),
    OK_NUM(AG_CONFIG_INT, "-9223372036854775808", INT64_MIN),
    OK_NUM_B(AG_CONFIG_INT, "1", 1, 65535, 1),
    OK_NUM_B(AG_CONFIG_INT, "65535", 1, 65535, 65535),
    BAD(AG_CONFIG_INT, "abc", "AGORA_TEST_V: 'abc' is not an integer"),
    BAD(AG_CONFIG_INT, "", "AGORA_TEST_V: '' is not an integer"),
    BAD(AG_CONFIG_INT, "+5", "AGORA_TEST_V: '+5' is not an integer"),
    BAD(AG_CONFIG_INT, "1.5", "AGORA_TEST_V: '1.5' is not an integer"),
    BAD(AG_CONFIG_INT, "0x10", "AGORA_TEST_V: '0x10' is not an integer"),
    BAD(AG_CONFIG_INT, "99999999999999999999",
        "AGORA_TEST_V: '99999999999999999999' is out "
        "of range"),
    BAD_B(AG_CONFIG_INT, "70000", 1, 65535, "AGORA_TEST_V: '70000' is out of range (1 to 65535)"),
    BAD_B(AG_CONFIG_INT, "0", 1, 65535, "AGORA_TEST_V: '0' is out of range (1 to 65535)"),
    /* BOOL */
    OK_NUM(AG_CONFIG_BOOL, "true", 1),
    OK_NUM(AG_CONFIG_BOOL, "false", 0),
    OK_NUM(AG_CONFIG_BOOL, "1", 1),
    OK_NUM(AG_CONFIG_BOOL, "0", 0),
    OK_NUM(AG_CONFIG_BOOL, "yes", 1),
    OK_NUM(AG_CONFIG_BOOL, "no", 0),
    OK_NUM(AG_CONFIG_BOOL, "on", 1),
    OK_NUM(AG_CONFIG_BOOL, "off", 0),
    OK_NUM(AG_CONFIG_BOOL, "TRUE", 1),
    OK_NUM(AG_CONFIG_BOOL, "Off", 0),
    BAD(AG_CONFIG_BOOL, "maybe",
        "AGORA_TEST_V: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)"),
    BAD(AG_CONFIG_BOOL, "2",
        "AGORA_TEST_V: '2' is not a boolean (true/false, yes/no, on/off, 1/0)"),
    BAD(AG_CONFIG_BOOL, "", "AGORA_TEST_V: '' is not a boolean (true/false, yes/no, on/off, 1/0)"),
    /* DURATION (milliseconds) */
    OK_NUM(AG_CONFIG_DURATION, "250ms", 250),
    OK_NUM(AG_CONFIG_DURATION, "5s", 5000),
    OK_NUM(AG_CONFIG_DURATION, "2m", 120000),
    OK_NUM(AG_CONFIG_DURATION, "1h", 3600000),
    OK_NUM(AG_CONFIG_DURATION, "100", 100),
    OK_NUM(AG_CONFIG_DURATION, "0", 0),
    OK_NUM_B(AG_CONFIG_DURATION, "1m", 100, 60000, 60000),
    BAD(AG_CONFIG_DURATION, "5S", "AGORA_TEST_V: '5S' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "1.5s",
        "AGORA_TEST_V: '1.5s' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "-1s",
        "AGORA_TEST_V: '-1s' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "5 s",
        "AGORA_TEST_V: '5 s' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "1h30m",
        "AGORA_TEST_V: '1h30m' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "s", "AGORA_TEST_V: 's' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "5d", "AGORA_TEST_V: '5d' is not a duration (e.g. 250ms, 5s, 2m, 1h)"),
    BAD(AG_CONFIG_DURATION, "9999999999999999h",
        "AGORA_TEST_V: '9999999999999999h' is out of range"),
    BAD_B(AG_CONFIG_DURATION, "50ms", 100, 60000,
          "AGORA_TEST_V: '50ms' is out of range (100ms to 60000ms)"),
    BAD_B(AG_CONFIG_DURATION, "2m", 100, 60000,
          "AGORA_TEST_V: '2m' is out of range (100ms to 60000ms)"),
    /* SIZE (bytes) */
    OK_NUM(AG_CONFIG_SIZE, "512", 512),
    OK_NUM(AG_CONFIG_SIZE, "512B", 512),
    OK_NUM(AG_CONFIG_SIZE, "64KiB", 65536),
    OK_NUM(AG_CONFIG_SIZE, "64k", 65536),
    OK_NUM(AG_CONFIG_SIZE, "64 KiB", 65536),
    OK_NUM(AG_CONFIG_SIZE, "1MiB", 1048576),
    OK_NUM(AG_CONFIG_SIZE, "1m", 1048576),
    OK_NUM(AG_CONFIG_SIZE, "2GiB", 2147483648u),
    OK_NUM(AG_CONFIG_SIZE, "1gib", 1073741824u),
    OK_NUM(AG_CONFIG_SIZE, "1TiB", 1099511627776u),
    OK_NUM_B(AG_CONFIG_SIZE, "1KiB", 1024, 1048576, 1024),
    BAD(AG_CONFIG_SIZE, "64KB", "AGORA_TEST_V: '64KB' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)"),
    BAD(AG_CONFIG_SIZE, "1MB", "AGORA_TEST_V: '1MB' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)"),
    BAD(AG_CONFIG_SIZE, "1.5MiB",
        "AGORA_TEST_V: '1.5MiB' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)"),
    BAD(AG_CONFIG_SIZE, "-1", "AGORA_TEST_V: '-1' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)"),
    BAD(AG_CONFIG_SIZE, "KiB", "AGORA_TEST_V: 'KiB' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB)"),
    BAD(AG_CONFIG_SIZE, "99999999TiB", "AGORA_TEST_V: '99999999TiB' is out of range"),
    BAD_B(AG_CONFIG_SIZE, "512", 1024, 1048576,
          "AGORA_TEST_V: '512' is out of range (1024 bytes to 1048576 bytes)"),
    BAD_B(AG_CONFIG_SIZE, "2MiB", 1024, 1048576,
          "AGORA_TEST_V: '2MiB' is out of range (1024 bytes to 1048576 bytes)"),
    /* ENUM (choices full|normal) */
    OK_TEXT(AG_CONFIG_ENUM, "full", "full"),
    OK_TEXT(AG_CONFIG_ENUM, "normal", "normal"),
    OK_TEXT(AG_CONFIG_ENUM, " normal ", "normal"),
    BAD(AG_CONFIG_ENUM, "FULL", "AGORA_TEST_V: 'FULL' is not one of full|normal"),
    BAD(AG_CONFIG_ENUM, "ful", "AGORA_TEST_V: 'ful' is not one of full|normal"),
    BAD(AG_CONFIG_ENUM, "full|normal", "AGORA_TEST_V: 'full|normal' is not one of full|normal"),
    BAD(AG_CONFIG_ENUM, "", "AGORA_TEST_V: '' is not one of full|normal"),
    /* STRING */
    OK_TEXT(AG_CONFIG_STRING, "hello world", "hello world"),
    OK_TEXT(AG_CONFIG_STRING, "", ""),
    OK_TEXT(AG_CONFIG_STRING, "  padded  ", "padded"),
    OK_TEXT(AG_CONFIG_STRING, "sqlite:///x.db?a=b#c", "sqlite:///x.db?a=b#c"),
};

static size_t
field_offset(enum ag_config_type t)
{
    switch (t) {
    case AG_CONFIG_STRING: return offsetof(struct settings, s);
    case AG_CONFIG_INT: return offsetof(struct settings, i);
    case AG_CONFIG_BOOL: return offsetof(struct settings, b);
    case AG_CONFIG_DURATION: return offsetof(struct settings, d);
    case AG_CONFIG_SIZE: return offsetof(struct settings, sz);
    case AG_CONFIG_ENUM: return offsetof(struct settings, e);
    }
    return 0;
}

static void
test_value_table(void **state)
{
    /* Every type: accepted spellings, rejected ones with exact messages. */
    AG_UNUSED(state);
    for (size_t n = 0; n < AG_ARRAY_SIZE(value_cases); n++) {
        const struct value_case *c = &value_cases[n];
        struct ag_config_key key = {
            .name = "AGORA_TEST_V",
            .type = c->type,
            .def = "unused-default",
            .offset = field_offset(c->type),
            .min = c->min,
            .max = c->max,
            .choices = "full|normal",
            .help = "test",
        };
        setenv("AGORA_TEST_V", c->value, 1);
        struct settings st;
        memset(&st, 0xA5, sizeof(st));
        char err[256] = "";
        int rc = ag_config_load(&key, 1, &st, err, sizeof(err));
        if (c->ok && rc != 0)
            fail_msg("case %zu ('%s'): failed: %s", n, c->value, err);
        if (!c->ok) {
            if (rc != AG_ECONFIG)
                fail_msg("case %zu ('%s'): accepted", n, c->value);
            if (strcmp(err, c->want_text) != 0)
                fail_msg("case %zu: message\n  '%s', want\n  '%s'", n, err, c->want_text);
            if (c->type == AG_CONFIG_STRING || c->type == AG_CONFIG_ENUM)
                assert_null(*(char **)((char *)&st + key.offset));
            continue;
        }
        switch (c->type) {
        case AG_CONFIG_INT: assert_int_equal(st.i, (int64_t)c->want); break;
        case AG_CONFIG_BOOL: assert_int_equal(st.b, c->want != 0); break;
        case AG_CONFIG_DURATION: assert_int_equal(st.d, c->want); break;
        case AG_CONFIG_SIZE: assert_int_equal(st.sz, c->want); break;
        case AG_CONFIG_STRING: assert_string_equal(st.s, c->want_text); break;
        case AG_CONFIG_ENUM: assert_string_equal(st.e, c->want_text); break;
        }
        ag_config_release(&key, 1, &st);
    }
    unsetenv("AGORA_TEST_V");
}

/* ---- Tables of several keys ---- */

static const struct ag_config_key keys[] = {
    { "AGORA_TEST_NAME", AG_CONFIG_STRING, "agora", offsetof(struct settings, s), 0, 0, NULL,
      "display name" },
    { "AGORA_TEST_PORT", AG_CONFIG_INT, "8080", offsetof(struct settings, i), 1, 65535, NULL,
      "TCP port to listen on" },
    { "AGORA_TEST_DEBUG", AG_CONFIG_BOOL, "false", offsetof(struct settings, b), 0, 0, NULL,
      "extra checks" },
    { "AGORA_TEST_TIMEOUT", AG_CONFIG_DURATION, "5s", offsetof(struct settings, d), 0, 0, NULL,
      "request timeout" },
    { "AGORA_TEST_MAX_BODY", AG_CONFIG_SIZE, "1MiB", offsetof(struct settings, sz), 0, 0, NULL,
      "largest body | bytes" },
    { "AGORA_TEST_MODE", AG_CONFIG_ENUM, "full", offsetof(struct settings, e), 0, 0, "full|normal",
      "durability" },
};

static void
unset_all(void)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(keys); i++)
        unsetenv(keys[i].name);
    unsetenv("AGORA_TEST_URL");
    unsetenv("AGORA_CONFIG_FILE");
}

static void
test_defaults(void **state)
{
    /* With nothing set, every default is parsed and stored. */
    AG_UNUSED(state);
    unset_all();
    struct settings st = { 0 };
    char err[256];
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), 0);
    assert_string_equal(st.s, "agora");
    assert_int_equal(st.i, 8080);
    assert_false(st.b);
    assert_int_equal(st.d, 5000);
    assert_int_equal(st.sz, 1048576);
    assert_string_equal(st.e, "full");
    ag_config_release(keys, AG_ARRAY_SIZE(keys), &st);
    assert_null(st.s);
    assert_null(st.e);
    ag_config_release(keys, AG_ARRAY_SIZE(keys), &st);
}

static void
test_required(void **state)
{
    /* A key without default must be set, and not to an empty value. */
    AG_UNUSED(state);
    unset_all();
    static const struct ag_config_key req[] = {
        { "AGORA_TEST_NAME", AG_CONFIG_STRING, "x", offsetof(struct settings, s), 0, 0, NULL,
          "name" },
        { "AGORA_TEST_URL", AG_CONFIG_STRING, NULL, offsetof(struct settings, e), 0, 0, NULL,
          "database URL" },
    };
    struct settings st = { 0 };
    char err[256];
    assert_int_equal(ag_config_load(req, 2, &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err, "AGORA_TEST_URL: required but not set");
    assert_null(st.s); /* the first key's copy was released */
    assert_null(st.e);

    setenv("AGORA_TEST_URL", "  ", 1);
    assert_int_equal(ag_config_load(req, 2, &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err, "AGORA_TEST_URL: required but empty");

    setenv("AGORA_TEST_URL", "sqlite:///tmp/x.db", 1);
    assert_int_equal(ag_config_load(req, 2, &st, NULL, 0), 0);
    assert_string_equal(st.e, "sqlite:///tmp/x.db");
    ag_config_release(req, 2, &st);
    unset_all();
}

static void
test_first_failing_key_named(void **state)
{
    /* Several bad keys: the message names the first in table order. */
    AG_UNUSED(state);
    unset_all();
    setenv("AGORA_TEST_MODE", "fast", 1);
    setenv("AGORA_TEST_TIMEOUT", "soon", 1);
    setenv("AGORA_TEST_PORT", "http", 1);
    struct settings st = { 0 };
    char err[256];
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err, "AGORA_TEST_PORT: 'http' is not an integer");
    assert_null(st.s);
    unsetenv("AGORA_TEST_PORT");
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err,
                        "AGORA_TEST_TIMEOUT: 'soon' is not a duration (e.g. 250ms, 5s, 2m, 1h)");

    /* A truncated message is still NUL-terminated; long values are cut. */
    char tiny[12];
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, tiny, sizeof(tiny)),
                     AG_ECONFIG);
    assert_string_equal(tiny, "AGORA_TEST_");
    char longv[200];
    memset(longv, 'z', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    setenv("AGORA_TEST_TIMEOUT", longv, 1);
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_non_null(strstr(err, "zzz...' is not a duration"));
    assert_true(strlen(err) < 150);
    unset_all();
}

static void
test_bad_default_is_reported(void **state)
{
    /* A default that does not parse is named as the default. */
    AG_UNUSED(state);
    unset_all();
    static const struct ag_config_key bad[] = {
        { "AGORA_TEST_PORT", AG_CONFIG_INT, "eighty", offsetof(struct settings, i), 0, 0, NULL,
          "port" },
    };
    struct settings st = { 0 };
    char err[256];
    assert_int_equal(ag_config_load(bad, 1, &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err, "AGORA_TEST_PORT: 'eighty' is not an integer (the default)");
}

/* Write 'text' to a fresh temporary file whose name goes in 'path'. */
static void
write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    assert_true(fd != -1);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void
test_config_file_under_env(void **state)
{
    /* File values apply where the environment is silent; syntax details. */
    AG_UNUSED(state);
    unset_all();
    char path[] = "/tmp/agora-config-XXXXXX";
    write_file(path, "# Agora test configuration\n"
                     "\n"
                     "   # indented comment\n"
                     "AGORA_TEST_PORT = 9090\n"
                     "export AGORA_TEST_NAME=\"from file\"\n"
                     "AGORA_TEST_MODE='normal'\r\n"
                     "AGORA_TEST_URL=http://x/#frag\n"
                     "AGORA_TEST_UNKNOWN=ignored\n"
                     "AGORA_TEST_DEBUG=on\n"
                     "AGORA_TEST_MAX_BODY=\n"
                     "AGORA_TEST_PORT=9091");
    static const struct ag_config_key more[] = {
        { "AGORA_TEST_URL", AG_CONFIG_STRING, NULL, offsetof(struct settings, s), 0, 0, NULL,
          "url" },
    };
    setenv("AGORA_CONFIG_FILE", path, 1);
    setenv("AGORA_TEST_NAME", "from env", 1);
    setenv("AGORA_TEST_MAX_BODY", "2KiB", 1);
    setenv("AGORA_TEST_DEBUG", "no", 1);

    struct settings st = { 0 };
    char err[256] = "";
    int rc = ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(st.s, "from env");
    assert_int_equal(st.i, 9091); /* the last line for a key wins */
    assert_false(st.b);           /* env "no" over file "on" */
    assert_int_equal(st.d, 5000); /* default */
    assert_int_equal(st.sz, 2048);
    assert_string_equal(st.e, "normal");
    ag_config_release(keys, AG_ARRAY_SIZE(keys), &st);

    struct settings st2 = { 0 };
    assert_int_equal(ag_config_load(more, 1, &st2, err, sizeof(err)), 0);
    assert_string_equal(st2.s, "http://x/#frag");
    ag_config_release(more, 1, &st2);

    /* A bad value from the file says where it came from. */
    unsetenv("AGORA_TEST_MAX_BODY");
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    char want[256];
    snprintf(want, sizeof(want),
             "AGORA_TEST_MAX_BODY: '' is not a size (e.g. 512, 64KiB, 1MiB, 2GiB) (from '%s' "
             "line 10)",
             path);
    assert_string_equal(err, want);
    unlink(path);
    unset_all();
}

static void
test_config_file_errors(void **state)
{
    /* Malformed lines, a missing file and NUL bytes name AGORA_CONFIG_FILE. */
    AG_UNUSED(state);
    unset_all();
    struct settings st = { 0 };
    char err[256];
    char want[300];

    char path[] = "/tmp/agora-config-XXXXXX";
    write_file(path, "AGORA_TEST_PORT=1\njust some text\n");
    setenv("AGORA_CONFIG_FILE", path, 1);
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    snprintf(want, sizeof(want), "AGORA_CONFIG_FILE: '%s' line 2: expected KEY=VALUE", path);
    assert_string_equal(err, want);
    unlink(path);

    char path2[] = "/tmp/agora-config-XXXXXX";
    write_file(path2, "1BAD=x\n");
    setenv("AGORA_CONFIG_FILE", path2, 1);
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_non_null(strstr(err, "line 1: expected KEY=VALUE"));
    unlink(path2);

    char path3[] = "/tmp/agora-config-XXXXXX";
    int fd = mkstemp(path3);
    assert_int_equal(write(fd, "A=1\0\n", 5), 5);
    close(fd);
    setenv("AGORA_CONFIG_FILE", path3, 1);
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_non_null(strstr(err, "NUL byte"));
    unlink(path3);

    setenv("AGORA_CONFIG_FILE", "/nonexistent/agora.env", 1);
    assert_int_equal(ag_config_load(keys, AG_ARRAY_SIZE(keys), &st, err, sizeof(err)), AG_ECONFIG);
    assert_string_equal(err, "AGORA_CONFIG_FILE: cannot open '/nonexistent/agora.env': No such "
                             "file or directory");
    assert_null(st.s);
    unset_all();
}

/* Read a tmpfile's content into 'buf'. */
static void
slurp(FILE *f, char *buf, size_t size)
{
    rewind(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
}

static void
test_usage_tables(void **state)
{
    /* Plain and Markdown usage list every key with type and default. */
    AG_UNUSED(state);
    static const struct ag_config_key req[] = {
        { "AGORA_TEST_URL", AG_CONFIG_STRING, NULL, 0, 0, 0, NULL, "database URL" },
        { "AGORA_TEST_EMPTY", AG_CONFIG_STRING, "", 0, 0, 0, NULL, NULL },
    };
    char buf[4096];
    FILE *f = tmpfile();
    assert_non_null(f);
    ag_config_usage(keys, AG_ARRAY_SIZE(keys), f);
    ag_config_usage(req, AG_ARRAY_SIZE(req), f);
    slurp(f, buf, sizeof(buf));
    fclose(f);
    assert_non_null(strstr(buf, "NAME                 TYPE         DEFAULT  DESCRIPTION\n"));
    assert_non_null(
        strstr(buf, "AGORA_TEST_PORT      int          8080     TCP port to listen on\n"));
    assert_non_null(strstr(buf, "AGORA_TEST_MODE      full|normal  full     durability\n"));
    assert_non_null(strstr(buf, "AGORA_TEST_URL    string  (required)  database URL\n"));

    f = tmpfile();
    assert_non_null(f);
    ag_config_usage_markdown(keys, AG_ARRAY_SIZE(keys), f);
    ag_config_usage_markdown(req, AG_ARRAY_SIZE(req), f);
    slurp(f, buf, sizeof(buf));
    fclose(f);
    assert_true(
        strncmp(buf, "| Variable | Type | Default | Description |\n|---|---|---|---|\n", 60) == 0);
    assert_non_null(strstr(buf, "| `AGORA_TEST_PORT` | int | `8080` | TCP port to listen on |\n"));
    assert_non_null(strstr(buf, "| `AGORA_TEST_MODE` | full\\|normal | `full` | durability |\n"));
    assert_non_null(strstr(buf, "| `AGORA_TEST_MAX_BODY` | size | `1MiB` | largest body \\| "
                                "bytes |\n"));
    assert_non_null(strstr(buf, "| `AGORA_TEST_URL` | string | (required) | database URL |\n"));
    assert_non_null(strstr(buf, "| `AGORA_TEST_EMPTY` | string | (empty) |  |\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_value_table, setup),
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_required, setup),
        cmocka_unit_test_setup(test_first_failing_key_named, setup),
        cmocka_unit_test_setup(test_bad_default_is_reported, setup),
        cmocka_unit_test_setup(test_config_file_under_env, setup),
        cmocka_unit_test_setup(test_config_file_errors, setup),
        cmocka_unit_test_setup(test_usage_tables, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
