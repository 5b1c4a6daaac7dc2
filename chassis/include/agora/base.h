/* SPDX-License-Identifier: MIT */
/* First include of every chassis and service file: feature macros and the few
 * definitions everything needs (AG_BUG, AG_ARRAY_SIZE). */
#ifndef AG_BASE_H
#define AG_BASE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define AG_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define AG_MAX(a, b)     ((a) > (b) ? (a) : (b))
#define AG_UNUSED(x)     ((void)(x))
/* "8090" for AG_STRINGIFY(AG_PORT_GATEWAY_OPS): a macro's value as a literal. */
#define AG__STRINGIFY(x) #x
#define AG_STRINGIFY(x)  AG__STRINGIFY(x)

#if defined(__GNUC__)
#define AG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define AG_NORETURN          __attribute__((noreturn))
#define AG_LIKELY(x)         __builtin_expect(!!(x), 1)
#define AG_UNLIKELY(x)       __builtin_expect(!!(x), 0)
#else
#define AG_PRINTF(fmt, args)
#define AG_NORETURN
#define AG_LIKELY(x)   (x)
#define AG_UNLIKELY(x) (x)
#endif

/* Report a programmer error (never external input) and abort. */
AG_NORETURN void ag__bug(const char *file, int line, const char *why);
#define AG_BUG(why) ag__bug(__FILE__, __LINE__, (why))

/* Debug-build magic number check for long-lived opaque objects. */
#ifndef NDEBUG
#define AG_CHECK_MAGIC(obj, m)                                                                     \
    do {                                                                                           \
        if ((obj) == NULL || (obj)->magic != (m))                                                  \
            AG_BUG("bad magic for " #obj);                                                         \
    } while (0)
#else
#define AG_CHECK_MAGIC(obj, m) ((void)0)
#endif

#endif /* AG_BASE_H */
