/* SPDX-License-Identifier: MIT */
/* Bounded growable buffer; see buf.h for the invariants. */
#include "agora/base.h"
#include "agora/buf.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"

static size_t
buf_max(const struct ag_buf *buf)
{
    return buf->max ? buf->max : SIZE_MAX / 2;
}

void
ag_buf_init(struct ag_buf *buf, size_t max)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->max = max;
}

void
ag_buf_release(struct ag_buf *buf)
{
    ag_free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void
ag_buf_reset(struct ag_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

int
ag_buf_reserve(struct ag_buf *buf, size_t n)
{
    if (n > buf_max(buf) - buf->len)
        return AG_ETOOBIG;
    size_t need = buf->len + n + 1;
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < need)
        cap = cap * 2;
    buf->data = ag_realloc(buf->data, cap);
    buf->cap = cap;
    return 0;
}

int
ag_buf_append(struct ag_buf *buf, const void *p, size_t n)
{
    int rc = ag_buf_reserve(buf, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(buf->data + buf->len, p, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return 0;
}

int
ag_buf_append_cstr(struct ag_buf *buf, const char *s)
{
    return ag_buf_append(buf, s, strlen(s));
}

int
ag_buf_append_char(struct ag_buf *buf, char c)
{
    return ag_buf_append(buf, &c, 1);
}

int
ag_buf_vappendf(struct ag_buf *buf, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return AG_EINVAL;
    }
    int rc = ag_buf_reserve(buf, (size_t)n);
    if (rc == 0) {
        vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap2);
        buf->len += (size_t)n;
    }
    va_end(ap2);
    return rc;
}

int
ag_buf_appendf(struct ag_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ag_buf_vappendf(buf, fmt, ap);
    va_end(ap);
    return rc;
}

const char *
ag_buf_cstr(const struct ag_buf *buf)
{
    return buf->data ? buf->data : "";
}

char *
ag_buf_detach(struct ag_buf *buf, size_t *out_len)
{
    char *p = buf->data ? buf->data : ag_strdup("");
    if (out_len)
        *out_len = buf->len;
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return p;
}
