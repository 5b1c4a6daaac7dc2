/* SPDX-License-Identifier: MIT */
/* Error codes of the whole platform: one X-macro table (name, message, HTTP
 * status, problem slug and title) from which ag_strerror(), the HTTP mapping
 * and the problem+json answers of ag_send_error() are generated. */
#ifndef AG_ERR_H
#define AG_ERR_H

#include "agora/base.h"

/* Codes are never renumbered or reused: append new ones at the end. The
 * slug is the stable part of the problem type "urn:agora:problem:<slug>"
 * (RFC 9457) that clients and tests match on; the title is its human name.
 * Codes that share a status share a slug unless they say more (EQUERY). */
#define AG_ERRNO_MAP(X)                                                                            \
    X(EINVAL, 1, "invalid argument", 400, "bad-request", "Bad Request")                            \
    X(ENOMEM, 2, "out of memory", 500, "internal", "Internal Server Error")                        \
    X(ENOENT, 3, "not found", 404, "not-found", "Not Found")                                       \
    X(EEXIST, 4, "already exists", 409, "conflict", "Conflict")                                    \
    X(ECONFLICT, 5, "conflict", 409, "conflict", "Conflict")                                       \
    X(EPRECOND, 6, "precondition failed", 412, "precondition-failed", "Precondition Failed")       \
    X(ETOOBIG, 7, "too big", 413, "payload-too-large", "Payload Too Large")                        \
    X(EIO, 8, "input/output error", 500, "internal", "Internal Server Error")                      \
    X(EBUSY, 9, "busy", 503, "unavailable", "Service Unavailable")                                 \
    X(ETIMEDOUT, 10, "timed out", 504, "timeout", "Gateway Timeout")                               \
    X(EUNAVAIL, 11, "unavailable", 503, "unavailable", "Service Unavailable")                      \
    X(EPARSE, 12, "parse error", 400, "malformed-json", "Bad Request")                             \
    X(ERANGE, 13, "out of range", 422, "validation", "Validation Failed")                          \
    X(ECONFIG, 14, "bad configuration", 500, "internal", "Internal Server Error")                  \
    X(ECLOSED, 15, "closed", 503, "unavailable", "Service Unavailable")                            \
    X(EAUTH, 16, "unauthenticated", 401, "unauthorized", "Unauthorized")                           \
    X(EFORBIDDEN, 17, "forbidden", 403, "forbidden", "Forbidden")                                  \
    X(EINTERNAL, 18, "internal error", 500, "internal", "Internal Server Error")                   \
    X(EQUERY, 19, "bad query parameter", 400, "bad-query", "Bad Request")                          \
    X(EMEDIATYPE, 20, "unsupported media type", 415, "unsupported-media-type",                     \
      "Unsupported Media Type")                                                                    \
    X(EMETHOD, 21, "method not allowed", 405, "method-not-allowed", "Method Not Allowed")          \
    X(EPRECONDREQ, 22, "precondition required", 428, "precondition-required",                      \
      "Precondition Required")

enum ag_err {
    AG_OK = 0,
#define AG__ERR_ENUM(name, num, msg, status, slug, title) AG_##name = -(num),
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

/* Problem slug ("not-found") and title ("Not Found") of 'err', static
 * storage; "internal" and "Internal Server Error" for 0 and unknown codes
 * (a problem is never a success). Any thread. */
const char *ag_err_slug(int err);
const char *ag_err_title(int err);

#endif /* AG_ERR_H */
