/* SPDX-License-Identifier: MIT */
/* Owned, growable, bounded byte buffer (git strbuf, curl dynbuf).
 *
 * Invariants: after ag_buf_init, 'data' is either NULL with len == 0 or
 * points to cap bytes with data[len] == '\0'; len < cap; len never exceeds
 * 'max'. Growth past 'max' fails with AG_ETOOBIG and leaves the buffer
 * unchanged. */
#ifndef AG_BUF_H
#define AG_BUF_H

#include "agora/base.h"

#include <stdarg.h>

struct ag_buf {
    char *data; /* NUL-terminated bytes, or NULL before the first append */
    size_t len; /* bytes used, excluding the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* largest len allowed; 0 means SIZE_MAX / 2 */
};

#define AG_BUF_INIT(maxlen)                                                                        \
    {                                                                                              \
        NULL, 0, 0, (maxlen)                                                                       \
    }

void ag_buf_init(struct ag_buf *buf, size_t max);
void ag_buf_release(struct ag_buf *buf);
/* Empty the buffer, keeping its memory. */
void ag_buf_reset(struct ag_buf *buf);

/* Append; 0 or AG_ETOOBIG. */
int ag_buf_append(struct ag_buf *buf, const void *p, size_t n);
int ag_buf_append_cstr(struct ag_buf *buf, const char *s);
int ag_buf_append_char(struct ag_buf *buf, char c);
int ag_buf_appendf(struct ag_buf *buf, const char *fmt, ...) AG_PRINTF(2, 3);
int ag_buf_vappendf(struct ag_buf *buf, const char *fmt, va_list ap) AG_PRINTF(2, 0);
/* Make room for 'n' more bytes; 0 or AG_ETOOBIG. */
int ag_buf_reserve(struct ag_buf *buf, size_t n);

/* A NUL-terminated string; "" for an empty buffer. Borrowed until the next
 * change to 'buf'. */
const char *ag_buf_cstr(const struct ag_buf *buf);

/* Hand the bytes to the caller (ag_free) and re-init the buffer empty.
 * Never NULL: an empty buffer yields a fresh "". */
char *ag_buf_detach(struct ag_buf *buf, size_t *out_len);

#endif /* AG_BUF_H */
