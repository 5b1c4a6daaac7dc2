/* SPDX-License-Identifier: MIT */
/* JSON helpers over jansson: bounded dump into an ag_buf, strict parsing of
 * request bodies, request validation that collects per-field errors, and
 * RFC 9457 problem+json objects (DESIGN.md section 3). Handlers use these
 * through service.h; clients use ag_json_parse_value for replies. */
#ifndef AG_JSON_H
#define AG_JSON_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"

/* ---- Encoding and parsing ---- */

/* Append the compact encoding (JSON_COMPACT, keys in insertion order) of 'v'
 * to 'out'. Any value may be dumped, not only objects and arrays.
 * Returns 0, AG_ETOOBIG when 'out' would grow past its maximum, or AG_EINVAL
 * when jansson cannot encode 'v' (a string holding invalid UTF-8 created with
 * a *_nocheck call). On failure 'out' is left as it was. 'v' is borrowed.
 * Any thread, as long as 'v' and 'out' are not shared. */
int ag_json_dump(const json_t *v, struct ag_buf *out);

/* Parse 'len' bytes at 'data' (need not be NUL-terminated; NULL with 'len' 0
 * is an empty input) as one JSON object, the shape of every Agora request
 * body. Rejected: malformed JSON, trailing data, duplicate keys in any object
 * (JSON_REJECT_DUPLICATES), NUL bytes (raw or \u0000), integers outside
 * int64, and a top-level value that is not an object.
 * Returns a new reference (json_decref) or NULL; on NULL a human message
 * with the line and column, e.g. "invalid JSON at line 1, column 9:
 * duplicate object key", is written to 'errbuf' ('errlen' bytes,
 * NUL-terminated, truncated; 'errbuf' may be NULL when 'errlen' is 0).
 * Any thread. */
json_t *ag_json_parse(const char *data, size_t len, char *errbuf, size_t errlen);

/* Like ag_json_parse, but any JSON value is accepted at the top (arrays and
 * scalars too), for replies of other services. Same rejections otherwise. */
json_t *ag_json_parse_value(const char *data, size_t len, char *errbuf, size_t errlen);

/* A new JSON string (json_decref) from 'len' bytes at 's' in which every
 * byte that is not part of valid UTF-8 is replaced by U+FFFD and NUL bytes
 * are dropped, so untrusted bytes can be echoed safely. Never NULL. */
json_t *ag_json_string_lossy(const char *s, size_t len);

/* ---- Validation ----
 * A validator collects every field error of one request, so a client sees
 * them all in one 422 answer. Typical use in a handler:
 *
 *     struct ag_valid v;
 *     ag_valid_init(&v);
 *     const char *name = ag_valid_string(&v, body, NULL, "name", AG_VALID_REQUIRED, 1, 200);
 *     json_t *price = ag_valid_object(&v, body, NULL, "price", AG_VALID_REQUIRED);
 *     int64_t amount = 0;
 *     ag_valid_int(&v, price, "price", "amount", AG_VALID_REQUIRED, 0, INT64_MAX, &amount);
 *     if (!ag_valid_ok(&v)) ag_send_invalid(req, &v);
 *     ag_valid_release(&v);
 *
 * A validator belongs to one thread at a time. */

/* At most this many errors are kept; later ones are dropped, and a last
 * error with code "too_many_errors" says so. Bounds the answer to hostile
 * input with thousands of bad fields. */
#define AG_VALID_MAX_ERRORS 50

/* Field names in errors are cut to this many bytes (at a UTF-8 boundary). */
#define AG_VALID_MAX_FIELD 256

struct ag_valid {
    json_t *errors; /* owned array of {"field", "code", "detail"} objects */
};

enum ag_valid_flags {
    AG_VALID_OPTIONAL = 0,      /* absent is fine: the getter returns false/NULL silently */
    AG_VALID_REQUIRED = 1 << 0, /* absent adds a "required" error */
    AG_VALID_NULLABLE = 1 << 1, /* JSON null is accepted and read as absent-but-present */
};

/* Start with no errors. 'v' is caller storage; pair with ag_valid_release. */
void ag_valid_init(struct ag_valid *v);

/* Drop the error list. Safe to call twice. */
void ag_valid_release(struct ag_valid *v);

/* True when no error has been added. */
bool ag_valid_ok(const struct ag_valid *v);

/* Add the error {"field": 'field', "code": 'code', "detail": formatted}.
 * 'field' may be NULL or "" for an error about the body as a whole; it is
 * cut to AG_VALID_MAX_FIELD bytes. Invalid UTF-8 in 'field' or the detail is
 * replaced by U+FFFD. 'code' is a stable snake_case token (see below). */
void ag_valid_error(struct ag_valid *v, const char *field, const char *code, const char *fmt, ...)
    AG_PRINTF(4, 5);

/* The getters below read obj['field'] and report errors with the field name
 * 'prefix'.'field' ('field' alone when 'prefix' is NULL or "").
 *
 * Common rules, with the error codes they add:
 *   - 'obj' NULL: nothing is read and no error is added (the parent object
 *     was absent or already reported), so nested calls can be chained.
 *   - absent (or 'obj' not an object): returns false/NULL; "required" if
 *     'flags' has AG_VALID_REQUIRED.
 *   - JSON null: with AG_VALID_NULLABLE returns false/NULL without error
 *     (use ag_valid_is_null to tell null from absent); otherwise "type".
 *   - wrong JSON type: "type".
 *   - out of bounds: "too_short"/"too_long" (strings, arrays) or
 *     "too_small"/"too_large" (integers).
 *   - not one of the choices: "invalid" (ag_valid_enum).
 * On any error the getter returns false/NULL and leaves *out_v unchanged.
 * Returned pointers are borrowed from 'obj' and live as long as it does. */

/* A string whose length in Unicode code points is in ['min_len', 'max_len'];
 * 'max_len' 0 means no upper bound. */
const char *ag_valid_string(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                            unsigned flags, size_t min_len, size_t max_len);

/* A JSON integer in ['min', 'max'] (inclusive). Reals are type errors even
 * when integral (1.0, 1e3). Returns true and sets *out_v when valid. */
bool ag_valid_int(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                  unsigned flags, int64_t min, int64_t max, int64_t *out_v);

/* A JSON true or false. Returns true and sets *out_v when valid. */
bool ag_valid_bool(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                   unsigned flags, bool *out_v);

/* A JSON object; borrowed. */
json_t *ag_valid_object(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                        unsigned flags);

/* A JSON array with between 'min_items' and 'max_items' elements ('max_items'
 * 0: no upper bound); borrowed. Name element fields "items[3]" yourself. */
json_t *ag_valid_array(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                       unsigned flags, size_t min_items, size_t max_items);

/* A string equal to one of 'choices' (NULL-terminated list); returns the
 * matching entry of 'choices' (static storage of the caller), or NULL. */
const char *ag_valid_enum(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                          unsigned flags, const char *const *choices);

/* Add an "unknown" error for every key of 'obj' not in 'allowed'
 * (NULL-terminated). No-op when 'obj' is not an object. */
void ag_valid_unknown(struct ag_valid *v, json_t *obj, const char *prefix,
                      const char *const *allowed);

/* True when obj['field'] is present and JSON null ('obj' may be NULL). */
bool ag_valid_is_null(json_t *obj, const char *field);

/* ---- Problem details (RFC 9457) ---- */

/* New object {"type": "urn:agora:problem:<slug>", "title": 'title',
 * "status": 'status', "detail": 'detail'}; "detail" is left out when
 * 'detail' is NULL. 'slug' is a stable kebab-case token ("validation-failed",
 * "not-found"). Invalid UTF-8 in the strings is replaced by U+FFFD.
 * Returns a new reference (json_decref), never NULL. Any thread. */
json_t *ag_problem_new(int status, const char *slug, const char *title, const char *detail);

/* Set "errors" of 'problem' to a deep copy of v->errors (an empty array when
 * there are none). 'v' stays valid and owned by the caller. */
void ag_problem_set_errors(json_t *problem, const struct ag_valid *v);

#endif /* AG_JSON_H */
