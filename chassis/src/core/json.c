/* SPDX-License-Identifier: MIT */
/* JSON helpers over jansson: bounded dump, strict parse, request validation
 * with per-field errors, RFC 9457 problem objects. Everything read here may
 * come from a hostile client. */
#include "agora/base.h"
#include "agora/json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/mem.h"

/* jansson returns NULL only when its allocator fails; like ag_malloc, treat
 * that as fatal rather than threading an impossible error everywhere. */
static json_t *
must(json_t *j)
{
    if (j == NULL)
        AG_BUG("jansson: out of memory or invalid UTF-8");
    return j;
}

json_t *
ag_json_string_lossy(const char *s, size_t len)
{
    /* Fast path: already valid, NUL-free UTF-8. */
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = ag_utf8_next(s + i, len - i, &cp);
        if (n == 0 || cp == 0)
            break;
        i += n;
    }
    if (i == len)
        return must(json_stringn(len ? s : "", len));

    /* Each invalid byte becomes the 3 bytes of U+FFFD. */
    char *tmp = ag_malloc(len * 3 + 1);
    size_t o = 0;
    i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = ag_utf8_next(s + i, len - i, &cp);
        if (n == 0) {
            memcpy(tmp + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            if (cp != 0) {
                memcpy(tmp + o, s + i, n);
                o += n;
            }
            i += n;
        }
    }
    json_t *j = must(json_stringn(tmp, o));
    ag_free(tmp);
    return j;
}

/* ---- Encoding and parsing ---- */

static int
dump_cb(const char *buffer, size_t size, void *data)
{
    return ag_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

int
ag_json_dump(const json_t *v, struct ag_buf *out)
{
    size_t start = out->len;
    if (json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
        return 0;
    /* Tell a full buffer from an encoding error: the buffer refused growth
     * only if the encoding would not fit. */
    bool full = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) != 0;
    out->len = start;
    if (out->data != NULL)
        out->data[start] = '\0';
    return full ? AG_ETOOBIG : AG_EINVAL;
}

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...) AG_PRINTF(3, 4);

static void
set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static json_t *
parse(const char *data, size_t len, bool any, char *errbuf, size_t errlen)
{
    if (data == NULL)
        data = "";
    const char *nul = memchr(data, '\0', len);
    if (nul != NULL) {
        set_err(errbuf, errlen, "invalid JSON: NUL byte at offset %zu", (size_t)(nul - data));
        return NULL;
    }
    json_error_t jerr;
    /* Scalars are decoded too, so a wrong top-level shape gets its own
     * message below rather than jansson's. */
    size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
    json_t *j = json_loadb(data, len, flags, &jerr);
    if (j == NULL) {
        set_err(errbuf, errlen, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return NULL;
    }
    if (!any && !json_is_object(j)) {
        set_err(errbuf, errlen, "the top-level JSON value must be an object");
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *
ag_json_parse(const char *data, size_t len, char *errbuf, size_t errlen)
{
    return parse(data, len, false, errbuf, errlen);
}

json_t *
ag_json_parse_value(const char *data, size_t len, char *errbuf, size_t errlen)
{
    return parse(data, len, true, errbuf, errlen);
}

/* ---- Validation ---- */

void
ag_valid_init(struct ag_valid *v)
{
    v->errors = must(json_array());
}

void
ag_valid_release(struct ag_valid *v)
{
    json_decref(v->errors);
    v->errors = NULL;
}

bool
ag_valid_ok(const struct ag_valid *v)
{
    return json_array_size(v->errors) == 0;
}

static void
add_error(struct ag_valid *v, const char *field, size_t field_len, const char *code,
          const char *detail)
{
    size_t n = json_array_size(v->errors);
    if (n > AG_VALID_MAX_ERRORS)
        return;
    if (n == AG_VALID_MAX_ERRORS) {
        field = "";
        field_len = 0;
        code = "too_many_errors";
        detail = "further errors were not reported";
    }
    field_len = ag_utf8_clip(field, field_len, AG_VALID_MAX_FIELD);
    json_t *e = must(json_object());
    json_object_set_new(e, "field", ag_json_string_lossy(field, field_len));
    json_object_set_new(e, "code", ag_json_string_lossy(code, strlen(code)));
    json_object_set_new(e, "detail", ag_json_string_lossy(detail, strlen(detail)));
    json_array_append_new(v->errors, e);
}

static void verror(struct ag_valid *v, const char *prefix, const char *field, const char *code,
                   const char *fmt, va_list ap) AG_PRINTF(5, 0);

/* Add an error for 'prefix'.'field'. */
static void
verror(struct ag_valid *v, const char *prefix, const char *field, const char *code, const char *fmt,
       va_list ap)
{
    /* A few bytes past the cap, so add_error can see whether the cut would
     * split a character. */
    char name[AG_VALID_MAX_FIELD + 8];
    size_t plen = prefix ? strlen(prefix) : 0;
    size_t flen = field ? strlen(field) : 0;
    size_t n = 0;
    if (plen > 0) {
        n = AG_MIN(plen, sizeof(name) - 1);
        memcpy(name, prefix, n);
        if (flen > 0 && n < sizeof(name) - 1)
            name[n++] = '.';
    }
    size_t room = sizeof(name) - 1 - n;
    memcpy(name + n, field ? field : "", AG_MIN(flen, room));
    n += AG_MIN(flen, room);
    name[n] = '\0';

    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    add_error(v, name, n, code, detail);
}

static void field_error(struct ag_valid *v, const char *prefix, const char *field, const char *code,
                        const char *fmt, ...) AG_PRINTF(5, 6);

static void
field_error(struct ag_valid *v, const char *prefix, const char *field, const char *code,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(v, prefix, field, code, fmt, ap);
    va_end(ap);
}

void
ag_valid_error(struct ag_valid *v, const char *field, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(v, NULL, field, code, fmt, ap);
    va_end(ap);
}

/* The shared first step of every getter: the value to check, or NULL when
 * the getter should return "nothing" (having added any error due). */
static json_t *
lookup(struct ag_valid *v, json_t *obj, const char *prefix, const char *field, unsigned flags,
       const char *type_name)
{
    if (obj == NULL)
        return NULL;
    json_t *val = json_object_get(obj, field);
    if (val == NULL) {
        if (flags & AG_VALID_REQUIRED)
            field_error(v, prefix, field, "required", "is required");
        return NULL;
    }
    if (json_is_null(val)) {
        if (!(flags & AG_VALID_NULLABLE))
            field_error(v, prefix, field, "type", "must be %s, not null", type_name);
        return NULL;
    }
    return val;
}

static size_t
utf8_length(const char *s, size_t len)
{
    /* jansson keeps strings valid UTF-8, so counting the bytes that do not
     * continue a sequence counts code points. */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    }
    return n;
}

const char *
ag_valid_string(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                unsigned flags, size_t min_len, size_t max_len)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "a string");
    if (val == NULL)
        return NULL;
    if (!json_is_string(val)) {
        field_error(v, prefix, field, "type", "must be a string");
        return NULL;
    }
    size_t n = utf8_length(json_string_value(val), json_string_length(val));
    if (n < min_len) {
        field_error(v, prefix, field, "too_short", "must be at least %zu character%s long", min_len,
                    min_len == 1 ? "" : "s");
        return NULL;
    }
    if (max_len != 0 && n > max_len) {
        field_error(v, prefix, field, "too_long", "must be at most %zu character%s long", max_len,
                    max_len == 1 ? "" : "s");
        return NULL;
    }
    return json_string_value(val);
}

bool
ag_valid_int(struct ag_valid *v, json_t *obj, const char *prefix, const char *field, unsigned flags,
             int64_t min, int64_t max, int64_t *out_v)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "an integer");
    if (val == NULL)
        return false;
    if (!json_is_integer(val)) {
        field_error(v, prefix, field, "type", "must be an integer");
        return false;
    }
    int64_t i = (int64_t)json_integer_value(val);
    if (i < min) {
        field_error(v, prefix, field, "too_small", "must be at least %" PRId64, min);
        return false;
    }
    if (i > max) {
        field_error(v, prefix, field, "too_large", "must be at most %" PRId64, max);
        return false;
    }
    *out_v = i;
    return true;
}

bool
ag_valid_bool(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
              unsigned flags, bool *out_v)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "a boolean");
    if (val == NULL)
        return false;
    if (!json_is_boolean(val)) {
        field_error(v, prefix, field, "type", "must be a boolean");
        return false;
    }
    *out_v = json_is_true(val);
    return true;
}

json_t *
ag_valid_object(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
                unsigned flags)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "an object");
    if (val == NULL)
        return NULL;
    if (!json_is_object(val)) {
        field_error(v, prefix, field, "type", "must be an object");
        return NULL;
    }
    return val;
}

json_t *
ag_valid_array(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
               unsigned flags, size_t min_items, size_t max_items)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "an array");
    if (val == NULL)
        return NULL;
    if (!json_is_array(val)) {
        field_error(v, prefix, field, "type", "must be an array");
        return NULL;
    }
    size_t n = json_array_size(val);
    if (n < min_items) {
        field_error(v, prefix, field, "too_short", "must have at least %zu item%s", min_items,
                    min_items == 1 ? "" : "s");
        return NULL;
    }
    if (max_items != 0 && n > max_items) {
        field_error(v, prefix, field, "too_long", "must have at most %zu item%s", max_items,
                    max_items == 1 ? "" : "s");
        return NULL;
    }
    return val;
}

const char *
ag_valid_enum(struct ag_valid *v, json_t *obj, const char *prefix, const char *field,
              unsigned flags, const char *const *choices)
{
    json_t *val = lookup(v, obj, prefix, field, flags, "a string");
    if (val == NULL)
        return NULL;
    if (!json_is_string(val)) {
        field_error(v, prefix, field, "type", "must be a string");
        return NULL;
    }
    const char *s = json_string_value(val);
    size_t len = json_string_length(val);
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strlen(choices[i]) == len && memcmp(choices[i], s, len) == 0)
            return choices[i];
        int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", choices[i]);
        if (w > 0)
            n = AG_MIN(n + (size_t)w, sizeof(list) - 1);
    }
    field_error(v, prefix, field, "invalid", "must be one of %s", list);
    return NULL;
}

void
ag_valid_unknown(struct ag_valid *v, json_t *obj, const char *prefix, const char *const *allowed)
{
    if (!json_is_object(obj))
        return;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known)
            field_error(v, prefix, key, "unknown", "is not a known field");
    }
}

bool
ag_valid_is_null(json_t *obj, const char *field)
{
    return obj != NULL && json_is_null(json_object_get(obj, field));
}

/* ---- Problem details ---- */

json_t *
ag_problem_new(int status, const char *slug, const char *title, const char *detail)
{
    if (slug == NULL || title == NULL)
        AG_BUG("ag_problem_new needs a slug and a title");
    char type[160];
    snprintf(type, sizeof(type), "urn:agora:problem:%s", slug);
    json_t *p = must(json_object());
    json_object_set_new(p, "type", ag_json_string_lossy(type, strlen(type)));
    json_object_set_new(p, "title", ag_json_string_lossy(title, strlen(title)));
    json_object_set_new(p, "status", must(json_integer(status)));
    if (detail != NULL)
        json_object_set_new(p, "detail", ag_json_string_lossy(detail, strlen(detail)));
    return p;
}

void
ag_problem_set_errors(json_t *problem, const struct ag_valid *v)
{
    json_t *copy = v->errors ? json_deep_copy(v->errors) : json_array();
    json_object_set_new(problem, "errors", must(copy));
}
