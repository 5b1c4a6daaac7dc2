/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the trace collector's OTLP/HTTP JSON reader
 * (platform/traces/otlp_json.c), the body of POST /v1/traces. Every span
 * handed over must have NUL-terminated strings of the lengths it claims,
 * and its attributes, events and links texts must be JSON that jansson reads (the
 * query routes parse them back). */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agora/mem.h"
#include "otlp_json.h" /* platform/traces */

static int
check(void *udata, const struct otlp_span *sp)
{
    AG_UNUSED(udata);
    if (strlen(sp->service) > OTLP_MAX_TEXT || strlen(sp->name) > OTLP_MAX_TEXT ||
        strlen(sp->status_message) > OTLP_MAX_TEXT || strlen(sp->attrs) != sp->attrs_len ||
        strlen(sp->events) != sp->events_len || strlen(sp->links) != sp->links_len)
        abort();
    if (sp->valid && (strlen(sp->trace_id) != 32 || strlen(sp->span_id) != 16))
        abort();
    json_error_t err;
    json_t *a = json_loadb(sp->attrs, sp->attrs_len, 0, &err);
    json_t *e = json_loadb(sp->events, sp->events_len, 0, &err);
    json_t *l = json_loadb(sp->links, sp->links_len, 0, &err);
    if (!json_is_object(a) || !json_is_array(e) || !json_is_array(l))
        abort();
    json_decref(l);
    /* Names are stored as text and served through jansson: valid UTF-8. */
    json_t *n = json_string(sp->name);
    json_t *s = json_string(sp->service);
    json_t *m = json_string(sp->status_message);
    if (n == NULL || s == NULL || m == NULL)
        abort();
    json_decref(a);
    json_decref(e);
    json_decref(n);
    json_decref(s);
    json_decref(m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[160];
    /* A copy without a terminator: a read past the end is caught. */
    char *body = ag_malloc(size ? size : 1);
    memcpy(body, data, size);
    otlp_json_read(body, size, check, NULL, err, sizeof(err));
    ag_free(body);
    return 0;
}
