/* SPDX-License-Identifier: MIT */
/* Helpers of the C unit tests (cmocka) of services and platform components,
 * so each tests/test_*.c holds only its cases: cmocka's includes, JSON
 * literals, and the field errors of a validation (struct ag_valid) as one
 * comparable string. Every agora_unit_tests() program has tests/lib on its
 * include path: #include "agora_test.h". Test code only. */
#ifndef AG_TEST_H
#define AG_TEST_H

#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agora/json.h"

/* The JSON text 's' of a test case as a new reference (json_decref); a
 * malformed 's' fails the running test, naming it. */
static inline json_t *
ag_test_json(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", s, e.text);
    return j;
}

/* The errors of 'v' joined with ',' into 'out' ('cap' bytes, truncated to
 * fit): each one's "field", and ":<code>" after it when 'codes'. */
static inline void
ag_test__errors(const struct ag_valid *v, bool codes, char *out, size_t cap)
{
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(v->errors, i, e)
    {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s%s%s", i ? "," : "",
                 json_string_value(json_object_get(e, "field")), codes ? ":" : "",
                 codes ? json_string_value(json_object_get(e, "code")) : "");
    }
}

/* Write the "field" of every error in 'v', in order and joined with ',',
 * into 'out' ('cap' bytes, truncated to fit): "sku,price.amount", or ""
 * when 'v' holds no error. */
static inline void
ag_test_error_fields(const struct ag_valid *v, char *out, size_t cap)
{
    ag_test__errors(v, false, out, cap);
}

/* Like ag_test_error_fields with each error's code: "email:invalid,name:
 * too_long". */
static inline void
ag_test_error_codes(const struct ag_valid *v, char *out, size_t cap)
{
    ag_test__errors(v, true, out, cap);
}

#endif /* AG_TEST_H */
