/* SPDX-License-Identifier: MIT */
/* Structured JSON-lines logger (see log.h for the line shape). Each line is
 * built in a stack buffer with hard bounds and leaves in one write(2), so
 * the logger never allocates and is safe from any thread. */
#include "agora/base.h"
#include "agora/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/json.h"

atomic_int ag__log_threshold = AG_LOG_INFO;
static atomic_int log_fd = 2;

/* Set once at startup (ag_log_init), read by every line. */
static char log_service[AG_LOG_NAME_MAX + 1] = "unknown";
static char log_instance[AG_LOG_NAME_MAX + 1] = "unknown";

static _Thread_local const char *ctx_request_id;
static _Thread_local const char *ctx_trace_id;

static const char *const level_names[] = {
#define LEVEL_NAME(sym, name) name,
    AG_LOG_LEVEL_MAP(LEVEL_NAME)
#undef LEVEL_NAME
};

/* Room kept at the end of a line for the closing quote of "msg",
 * ',"truncated":true', '}' and the newline. */
#define LINE_TAIL 32

/* ---- Configuration ---- */

/* Copy at most AG_LOG_NAME_MAX bytes of 's', not cutting a UTF-8 sequence. */
static void
copy_name(char *dst, const char *s)
{
    size_t n = strlen(s);
    if (n > AG_LOG_NAME_MAX) {
        n = AG_LOG_NAME_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void
ag_log_init(const char *service, const char *instance, enum ag_log_level level)
{
    if (service != NULL)
        copy_name(log_service, service);
    if (instance != NULL)
        copy_name(log_instance, instance);
    ag_log_set_level(level);
}

void
ag_log_set_level(enum ag_log_level level)
{
    if ((unsigned)level > AG_LOG_OFF)
        level = AG_LOG_OFF;
    atomic_store_explicit(&ag__log_threshold, (int)level, memory_order_relaxed);
}

enum ag_log_level
ag_log_get_level(void)
{
    return (enum ag_log_level)atomic_load_explicit(&ag__log_threshold, memory_order_relaxed);
}

int
ag_log_parse_level(const char *s, enum ag_log_level *out_level)
{
    if (s == NULL)
        return AG_EINVAL;
    for (size_t i = 0; i < AG_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out_level = (enum ag_log_level)i;
            return 0;
        }
    }
    return AG_EINVAL;
}

int
ag_log_level_rank(const char *s, size_t n)
{
    char b[8];
    enum ag_log_level level;
    if (s == NULL || n >= sizeof(b))
        return -1;
    memcpy(b, s, n);
    b[n] = '\0';
    if (ag_log_parse_level(b, &level) != 0 || level == AG_LOG_OFF)
        return -1;
    return (int)level;
}

const char *
ag_log_level_name(enum ag_log_level level)
{
    if ((unsigned)level >= AG_ARRAY_SIZE(level_names))
        return "unknown";
    return level_names[level];
}

void
ag_log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

void
ag_log_set_context(const char *request_id, const char *trace_id)
{
    ctx_request_id = request_id;
    ctx_trace_id = trace_id;
}

/* ---- Line building ---- */

struct line {
    char buf[AG_LOG_LINE_MAX];
    size_t len;     /* bytes used */
    size_t limit;   /* content may not go past this; the tail lies beyond */
    bool truncated; /* something was cut or dropped */
};

/* Append 'n' raw bytes if they fit before the limit; false otherwise. */
static bool
put_raw(struct line *ln, const char *s, size_t n)
{
    if (ln->len > ln->limit || n > ln->limit - ln->len) {
        ln->truncated = true;
        return false;
    }
    memcpy(ln->buf + ln->len, s, n);
    ln->len += n;
    return true;
}

static bool
put_cstr(struct line *ln, const char *s)
{
    return put_raw(ln, s, strlen(s));
}

/* Append the JSON-escaped form of at most 'max' bytes of 's' (without
 * quotes). Stops before the first character that would not fit; returns
 * false when anything was left out. Invalid UTF-8 becomes U+FFFD. */
static bool
put_escaped(struct line *ln, const char *s, size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    bool complete = true;
    if (len > max) {
        len = max;
        complete = false;
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *out = esc;
        size_t n;
        size_t adv = 1;
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            esc[0] = (char)c;
            n = 1;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c == '\n') {
            out = "\\n";
            n = 2;
        } else if (c == '\r') {
            out = "\\r";
            n = 2;
        } else if (c == '\t') {
            out = "\\t";
            n = 2;
        } else if (c < 0x20 || c == 0x7F) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            n = 6;
        } else {
            uint32_t cp;
            adv = ag_utf8_next(s + i, len - i, &cp);
            if (adv == 0) {
                out = "\xEF\xBF\xBD";
                n = 3;
                adv = 1;
            } else {
                out = s + i;
                n = adv;
            }
        }
        if (!put_raw(ln, out, n))
            return false;
        i += adv;
    }
    if (!complete)
        ln->truncated = true;
    return complete;
}

/* Append ,"key":"value" with 'value' cut to 'max' input bytes. */
static void
put_field(struct line *ln, const char *key, const char *value, size_t max)
{
    put_cstr(ln, ",\"");
    put_cstr(ln, key);
    put_cstr(ln, "\":\"");
    put_escaped(ln, value, strlen(value), max);
    put_cstr(ln, "\"");
}

/* Start a line: every key up to and including the opening quote of "msg".
 * The parts are bounded (names and ids are cut), so they always fit. */
static void
line_start(struct line *ln, enum ag_log_level level, const char *module)
{
    ln->len = 0;
    ln->limit = sizeof(ln->buf) - LINE_TAIL;
    ln->truncated = false;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[64];
    int n = snprintf(stamp, sizeof(stamp), "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L);
    put_raw(ln, stamp, (size_t)AG_MAX(n, 0));

    put_field(ln, "level", ag_log_level_name(level), AG_LOG_NAME_MAX);
    put_field(ln, "service", log_service, AG_LOG_NAME_MAX);
    put_field(ln, "instance", log_instance, AG_LOG_NAME_MAX);
    if (module != NULL)
        put_field(ln, "module", module, AG_LOG_NAME_MAX);
    if (ctx_request_id != NULL)
        put_field(ln, "request_id", ctx_request_id, AG_LOG_ID_MAX);
    if (ctx_trace_id != NULL)
        put_field(ln, "trace_id", ctx_trace_id, AG_LOG_ID_MAX);
    put_cstr(ln, ",\"msg\":\"");
}

/* Close "msg", add the truncation flag, end the line and write it. The
 * tail always fits: the limit kept LINE_TAIL bytes free. */
static void
line_finish(struct line *ln)
{
    ln->limit = sizeof(ln->buf);
    if (ln->truncated)
        put_cstr(ln, ",\"truncated\":true");
    put_cstr(ln, "}\n");

    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    size_t off = 0;
    while (off < ln->len) {
        ssize_t w = write(fd, ln->buf + off, ln->len - off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return; /* Nowhere to report a failing log descriptor. */
        }
        off += (size_t)w;
    }
}

/* Put the message text and its closing quote. */
static void
put_msg(struct line *ln, const char *msg, size_t len)
{
    put_escaped(ln, msg, len, len);
    /* The closing quote may use the tail if the message filled the line. */
    ln->limit = sizeof(ln->buf) - LINE_TAIL + 1;
    put_cstr(ln, "\"");
    ln->limit = sizeof(ln->buf) - LINE_TAIL;
}

void
ag__vlog(enum ag_log_level level, const char *module, const char *fmt, va_list ap)
{
    char msg[AG_LOG_LINE_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = 0;
    bool cut = false;
    if (n > 0) {
        len = (size_t)n;
        if (len >= sizeof(msg)) {
            len = sizeof(msg) - 1;
            cut = true;
        }
    }
    struct line ln;
    line_start(&ln, level, module);
    put_msg(&ln, msg, len);
    if (cut)
        ln.truncated = true;
    line_finish(&ln);
}

void
ag__log(enum ag_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ag__vlog(level, module, fmt, ap);
    va_end(ap);
}

/* Keys every line may already carry; extra fields must not repeat them. */
static bool
is_taken(const char *key, const char *module)
{
    static const char *const fixed[] = {
        "time", "level", "service", "instance", "msg", "truncated"
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(fixed); i++) {
        if (strcmp(key, fixed[i]) == 0)
            return true;
    }
    return (module != NULL && strcmp(key, "module") == 0) ||
           (ctx_request_id != NULL && strcmp(key, "request_id") == 0) ||
           (ctx_trace_id != NULL && strcmp(key, "trace_id") == 0);
}

void
ag_log_json(enum ag_log_level level, const char *module, const char *msg, const json_t *fields)
{
    if (!ag_log_enabled(level))
        return;
    struct line ln;
    line_start(&ln, level, module);
    if (msg == NULL)
        msg = "";
    put_msg(&ln, msg, strlen(msg));
    if (!json_is_object(fields)) {
        line_finish(&ln);
        return;
    }
    const char *key;
    json_t *val;
    /* json_object_foreach wants a non-const object; iteration does not
     * modify it. */
    json_t *obj = (json_t *)fields;
    json_object_foreach(obj, key, val)
    {
        if (is_taken(key, module))
            continue;
        size_t mark = ln.len;
        bool ok = put_cstr(&ln, ",\"") && put_escaped(&ln, key, strlen(key), AG_LOG_ID_MAX) &&
                  put_cstr(&ln, "\":");
        if (ok) {
            size_t room = ln.limit - ln.len;
            size_t need = json_dumpb(val, ln.buf + ln.len, room, JSON_COMPACT | JSON_ENCODE_ANY);
            /* 0 is an encoding error (invalid UTF-8 from a *_nocheck call):
             * skip the field silently rather than write broken JSON. */
            if (need == 0 || need > room) {
                ok = false;
                ln.truncated = ln.truncated || need > room;
            } else {
                ln.len += need;
            }
        }
        if (!ok)
            ln.len = mark;
    }
    line_finish(&ln);
}
