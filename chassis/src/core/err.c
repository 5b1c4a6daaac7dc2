/* SPDX-License-Identifier: MIT */
/* Error code table lookups generated from AG_ERRNO_MAP. */
#include "agora/base.h"
#include "agora/err.h"

const char *
ag_strerror(int err)
{
    switch (err) {
    case 0: return "success";
#define AG__ERR_MSG(name, num, msg, status, slug, title)                                           \
    case -(num): return msg;
        AG_ERRNO_MAP(AG__ERR_MSG)
#undef AG__ERR_MSG
    default: return "unknown error";
    }
}

const char *
ag_err_name(int err)
{
    switch (err) {
    case 0: return "OK";
#define AG__ERR_NAME(name, num, msg, status, slug, title)                                          \
    case -(num): return #name;
        AG_ERRNO_MAP(AG__ERR_NAME)
#undef AG__ERR_NAME
    default: return "EUNKNOWN";
    }
}

int
ag_err_http_status(int err)
{
    switch (err) {
    case 0: return 200;
#define AG__ERR_STATUS(name, num, msg, status, slug, title)                                        \
    case -(num): return status;
        AG_ERRNO_MAP(AG__ERR_STATUS)
#undef AG__ERR_STATUS
    default: return 500;
    }
}

const char *
ag_err_slug(int err)
{
    switch (err) {
#define AG__ERR_SLUG(name, num, msg, status, slug, title)                                          \
    case -(num): return slug;
        AG_ERRNO_MAP(AG__ERR_SLUG)
#undef AG__ERR_SLUG
    default: return "internal";
    }
}

const char *
ag_err_title(int err)
{
    switch (err) {
#define AG__ERR_TITLE(name, num, msg, status, slug, title)                                         \
    case -(num): return title;
        AG_ERRNO_MAP(AG__ERR_TITLE)
#undef AG__ERR_TITLE
    default: return "Internal Server Error";
    }
}
