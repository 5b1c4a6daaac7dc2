/* SPDX-License-Identifier: MIT */
/* Structured logging: one JSON object per line on stderr (DESIGN.md section
 * 3), written with a single write(2) so lines from several threads or
 * processes sharing the descriptor do not interleave (for lines up to
 * PIPE_BUF on pipes; whole lines on regular files opened O_APPEND).
 *
 * Line shape, keys in this order ("module", "request_id" and "trace_id"
 * only when known; "truncated" only when something was cut):
 *   {"time":"2026-11-21T21:48:01.123Z","level":"info","service":"catalog",
 *    "instance":"catalog-1","module":"http","request_id":"...",
 *    "trace_id":"...","msg":"...",<extra fields>,"truncated":true}
 * Every string is JSON-escaped; bytes that are not valid UTF-8 become U+FFFD.
 * A line is at most AG_LOG_LINE_MAX bytes: the message, then extra fields,
 * are cut to fit. Never log secrets, passwords or card data. */
#ifndef AG_LOG_H
#define AG_LOG_H

#include "agora/base.h"

#include <stdarg.h>
#include <stdatomic.h>

#include <jansson.h>

/* Bytes in one line, newline included. */
#define AG_LOG_LINE_MAX 16384

/* Longest service and instance names kept by ag_log_init, and longest
 * module, request id and trace id written; longer ones are cut. */
#define AG_LOG_NAME_MAX 64
#define AG_LOG_ID_MAX   128

/* X-macro of the levels: enum constant suffix, name in lines and config. */
#define AG_LOG_LEVEL_MAP(X)                                                                        \
    X(DEBUG, "debug")                                                                              \
    X(INFO, "info")                                                                                \
    X(WARN, "warn")                                                                                \
    X(ERROR, "error")                                                                              \
    X(OFF, "off")

enum ag_log_level {
    AG_LOG_DEBUG = 0, /* detail for developers; off in production */
    AG_LOG_INFO,      /* normal events: start, stop, access log */
    AG_LOG_WARN,      /* something unusual the process recovered from */
    AG_LOG_ERROR,     /* a failure that lost work or needs a person */
    AG_LOG_OFF,       /* as a threshold: log nothing; never a line's level */
};

/* Set the service and instance names put on every line (copied, cut to
 * AG_LOG_NAME_MAX bytes; NULL keeps "unknown") and the threshold. Call once
 * at startup before other threads log; until then lines carry "unknown" and
 * the threshold is AG_LOG_INFO. */
void ag_log_init(const char *service, const char *instance, enum ag_log_level level);

/* Change the threshold: lines below 'level' are dropped. Any thread, any
 * time (e.g. from a registry configuration watch). */
void ag_log_set_level(enum ag_log_level level);

/* The current threshold. Any thread. */
enum ag_log_level ag_log_get_level(void);

/* Internal: the threshold, read by ag_log_enabled. Use ag_log_set_level. */
extern atomic_int ag__log_threshold;

/* True when a line at 'level' would be written: one relaxed atomic load and
 * a compare. AG_LOG_OFF is never enabled. Any thread. */
static inline bool
ag_log_enabled(enum ag_log_level level)
{
    return level < AG_LOG_OFF &&
           (int)level >= atomic_load_explicit(&ag__log_threshold, memory_order_relaxed);
}

/* Parse "debug", "info", "warn", "error" or "off" (ASCII case-insensitive)
 * into *out_level. Returns 0, or AG_EINVAL for anything else (NULL too),
 * leaving *out_level unchanged. */
int ag_log_parse_level(const char *s, enum ag_log_level *out_level);

/* The level named by the 'n' bytes at 's' (not NUL-terminated: a field of
 * a log line, a query value), as its rank 0 (debug) to 3 (error); -1 for
 * anything else, "off" included. For filters "this level or worse". */
int ag_log_level_rank(const char *s, size_t n);

/* The name of 'level' ("info"), or "unknown". Static storage. */
const char *ag_log_level_name(enum ag_log_level level);

/* Write lines to 'fd' instead of 2 (tests). The descriptor is borrowed: the
 * caller closes it, after setting another. Any thread. */
void ag_log_set_fd(int fd);

/* Set the request and trace ids put on the lines this thread writes from
 * now on; NULL clears one. The strings are borrowed: they must stay valid
 * until the next call on this thread (the request middleware sets them
 * when it starts a handler and clears them when it returns). */
void ag_log_set_context(const char *request_id, const char *trace_id);

/* Write one line at 'level' for 'module' (a short tag such as "http" or
 * "store"; NULL leaves "module" out) with a printf-style message. Writes
 * even when 'level' is below the threshold: call it through the AG_LOG*
 * macros, which check first. Any thread; errors writing are ignored. */
void ag__log(enum ag_log_level level, const char *module, const char *fmt, ...) AG_PRINTF(3, 4);

/* va_list form of ag__log, for wrappers. */
void ag__vlog(enum ag_log_level level, const char *module, const char *fmt, va_list ap)
    AG_PRINTF(3, 0);

/* Write one line with the plain message 'msg' (not a format) and every key
 * of 'fields' (a borrowed object, may be NULL) as an extra top-level key
 * after "msg", e.g. for the access log. Keys that the line already has
 * ("time", "level", "msg", ...) are skipped, as are values jansson cannot
 * encode; values that do not fit the line are dropped and "truncated" set.
 * Checks ag_log_enabled(level) itself. Any thread. */
void ag_log_json(enum ag_log_level level, const char *module, const char *msg,
                 const json_t *fields);

/* Log at a level. The level is checked before the arguments are evaluated,
 * so arguments of a disabled line cost nothing. */
#define AG_LOG(level, module, ...)                                                                 \
    do {                                                                                           \
        if (ag_log_enabled(level))                                                                 \
            ag__log((level), (module), __VA_ARGS__);                                               \
    } while (0)

#define AG_LOGD(module, ...) AG_LOG(AG_LOG_DEBUG, module, __VA_ARGS__)
#define AG_LOGI(module, ...) AG_LOG(AG_LOG_INFO, module, __VA_ARGS__)
#define AG_LOGW(module, ...) AG_LOG(AG_LOG_WARN, module, __VA_ARGS__)
#define AG_LOGE(module, ...) AG_LOG(AG_LOG_ERROR, module, __VA_ARGS__)

#endif /* AG_LOG_H */
