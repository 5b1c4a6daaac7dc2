/* SPDX-License-Identifier: MIT */
/* Non-owning string slices (pointer + length), h2o iovec / haproxy ist style,
 * and strict number parsing for external input. */
#ifndef AG_STR_H
#define AG_STR_H

#include "agora/base.h"

#include <string.h>

/* A borrowed view; 'ptr' need not be NUL-terminated. Valid as long as the
 * memory it points into. */
struct ag_str {
    const char *ptr; /* first byte, or NULL for the empty slice */
    size_t len;      /* bytes */
};

#define AG_STR_LIT(s) ((struct ag_str){ "" s, sizeof(s) - 1 })
#define AG_STR_NULL   ((struct ag_str){ NULL, 0 })
/* For printf: printf("%.*s", AG_STR_FMT(s)). */
#define AG_STR_FMT(s) (int)(s).len, (s).ptr

static inline struct ag_str
ag_str_make(const char *p, size_t n)
{
    struct ag_str s = { p, n };
    return s;
}

static inline struct ag_str
ag_str_from_cstr(const char *s)
{
    struct ag_str r = { s, s ? strlen(s) : 0 };
    return r;
}

/* Byte-wise equality. */
bool ag_str_eq(struct ag_str a, struct ag_str b);
bool ag_str_eq_cstr(struct ag_str a, const char *b);
/* ASCII case-insensitive equality (header names). */
bool ag_str_case_eq(struct ag_str a, struct ag_str b);
bool ag_str_case_eq_cstr(struct ag_str a, const char *b);
bool ag_str_has_prefix(struct ag_str s, const char *prefix);

/* Strip leading and trailing spaces and tabs. */
struct ag_str ag_str_trim(struct ag_str s);

/* Parse the whole of 's' as a base-10 integer in [min, max]: no sign for
 * unsigned parsers, no spaces, no leading '+'. Returns 0, AG_EINVAL for a
 * malformed string, AG_ERANGE when out of bounds. */
int ag_str_to_i64(struct ag_str s, int64_t min, int64_t max, int64_t *out_v);
int ag_str_to_u64(struct ag_str s, uint64_t max, uint64_t *out_v);

/* Percent-decode 's' into 'out' (at least s.len + 1 bytes), NUL-terminated.
 * '+' is decoded to a space when 'plus_is_space'. Returns the decoded length,
 * or AG_EINVAL for a bad escape or an encoded NUL. */
int ag_str_percent_decode(struct ag_str s, bool plus_is_space, char *out);

#endif /* AG_STR_H */
