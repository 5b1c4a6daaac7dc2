/* SPDX-License-Identifier: MIT */
/* Error codes of the whole platform: one X-macro table (name, message, HTTP
 * status) from which ag_strerror() and the HTTP mapping are generated. */
#ifndef AG_ERR_H
#define AG_ERR_H

#include "agora/base.h"

/* Codes are never renumbered or reused: append new ones at the end. */
#define AG_ERRNO_MAP(X)                                                                            \
    X(EINVAL, 1, "invalid argument", 400)                                                          \
    X(ENOMEM, 2, "out of memory", 500)                                                             \
    X(ENOENT, 3, "not found", 404)                                                                 \
    X(EEXIST, 4, "already exists", 409)                                                            \
    X(ECONFLICT, 5, "conflict", 409)                                                               \
    X(EPRECOND, 6, "precondition failed", 412)                                                     \
    X(ETOOBIG, 7, "too big", 413)                                                                  \
    X(EIO, 8, "input/output error", 500)                                                           \
    X(EBUSY, 9, "busy", 503)                                                                       \
    X(ETIMEDOUT, 10, "timed out", 504)                                                             \
    X(EUNAVAIL, 11, "unavailable", 503)                                                            \
    X(EPARSE, 12, "parse error", 400)                                                              \
    X(ERANGE, 13, "out of range", 422)                                                             \
    X(ECONFIG, 14, "bad configuration", 500)                                                       \
    X(ECLOSED, 15, "closed", 503)                                                                  \
    X(EAUTH, 16, "unauthenticated", 401)                                                           \
    X(EFORBIDDEN, 17, "forbidden", 403)                                                            \
    X(EINTERNAL, 18, "internal error", 500)

enum ag_err {
    AG_OK = 0,
#define AG__ERR_ENUM(name, num, msg, status) AG_##name = -(num),
    AG_ERRNO_MAP(AG__ERR_ENUM)
#undef AG__ERR_ENUM
};

/* Message for 'err' (0 or a negative AG_E* code); static storage. Unknown
 * codes give "unknown error". Any thread. */
const char *ag_strerror(int err);

/* Stable short name such as "ENOENT"; static storage. */
const char *ag_err_name(int err);

/* Default HTTP status for 'err'; 500 for unknown codes, 200 for 0. */
int ag_err_http_status(int err);

#endif /* AG_ERR_H */
