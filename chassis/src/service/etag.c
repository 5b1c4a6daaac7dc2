/* SPDX-License-Identifier: MIT */
/* Entity tags of versioned resources: a resource's version is its strong
 * ETag ("\"<version>\""), and If-Match / If-None-Match lists are matched
 * against it (RFC 9110 section 13.1). Used by every service with
 * optimistic concurrency (catalog products, inventory stock). */
#include "agora/base.h"
#include "agora/service.h"

#include <stdio.h>

#include "agora/http_server.h"

/* "\"<version>\"" into 'out' (AG_ETAG_MAX bytes). */
static void
format_etag(int64_t version, char out[AG_ETAG_MAX])
{
    snprintf(out, AG_ETAG_MAX, "\"%lld\"", (long long)version);
}

void
ag_resp_set_etag(struct ag_http_req *req, int64_t version)
{
    char tag[AG_ETAG_MAX];
    format_etag(version, tag);
    ag_http_resp_header(req, "ETag", tag);
}

bool
ag_etag_list_has(struct ag_str header, const char *tag, bool weak)
{
    struct ag_str want = ag_str_from_cstr(tag);
    size_t i = 0;
    while (i < header.len) {
        while (i < header.len && (header.ptr[i] == ' ' || header.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < header.len && header.ptr[i] != ',')
            i++;
        struct ag_str item = ag_str_trim(ag_str_make(header.ptr + start, i - start));
        if (ag_str_eq_cstr(item, "*"))
            return true;
        if (ag_str_has_prefix(item, "W/")) {
            if (!weak)
                continue;
            item.ptr += 2;
            item.len -= 2;
        }
        if (ag_str_eq(item, want))
            return true;
    }
    return false;
}

bool
ag_etag_list_matches(struct ag_str header, int64_t version, bool weak)
{
    char tag[AG_ETAG_MAX];
    format_etag(version, tag);
    return ag_etag_list_has(header, tag, weak);
}
