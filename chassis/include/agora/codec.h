/* SPDX-License-Identifier: MIT */
/* Byte encodings services and the chassis share: hexadecimal digits,
 * base64url (RFC 4648 section 5, unpadded: ids, cursors, tokens), padded
 * base64 (section 4, for MIME) and UTF-8 (RFC 3629). Base64 is libsodium's;
 * the rest is a few lines each. Pure functions: any thread, no callbacks. */
#ifndef AG_CODEC_H
#define AG_CODEC_H

#include "agora/base.h"

struct ag_buf;

/* ---- Hexadecimal ---- */

/* The value (0 to 15) of the hex digit 'c', either case, or -1 when 'c' is
 * not a hex digit. */
int ag_hex_value(char c);

/* ---- Base64 ---- */

/* Characters in the unpadded base64url form of 'n' bytes, without the NUL
 * (a constant expression when 'n' is). */
#define AG_BASE64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 != 0 ? (n) % 3 + 1 : 0))

/* Write the 'n' bytes at 'p' as unpadded base64url and a NUL into 'out',
 * which has 'cap' bytes. Returns 0, or AG_ETOOBIG when 'cap' is less than
 * AG_BASE64URL_LEN(n) + 1 (then 'out' holds "" if 'cap' > 0). */
int ag_base64url_encode(const void *p, size_t n, char *out, size_t cap);

/* Decode the 'len' characters at 's', strict unpadded base64url (no '=',
 * no whitespace, no other alphabet, unused trailing bits zero), into 'out'
 * ('cap' bytes); '*out_len' gets the number of bytes. Returns 0, AG_EINVAL
 * for anything that is not such base64url (nothing decoded), or AG_ETOOBIG
 * when the bytes would not fit in 'cap'. 's' need not be NUL-terminated. */
int ag_base64url_decode(const char *s, size_t len, void *out, size_t cap, size_t *out_len);

/* Append the 'n' bytes at 'p' to 'buf' as padded base64 with the standard
 * alphabet (RFC 4648 section 4; MIME, RFC 2047 encoded-words). Returns 0,
 * or AG_ETOOBIG when 'buf' would pass its maximum (then 'buf' is
 * unchanged). */
int ag_base64_append(struct ag_buf *buf, const void *p, size_t n);

/* ---- UTF-8 ---- */

/* Decode the code point that starts at 's', of which 'len' bytes are
 * available. Returns its length in bytes (1 to 4) and sets '*out_cp', or
 * returns 0 (leaving '*out_cp' alone) when 'len' is 0 or the bytes are not
 * valid UTF-8: a stray continuation byte, an overlong form, a surrogate, a
 * value past U+10FFFF or a truncated sequence. A caller that skips bad
 * input treats one byte as invalid and goes on after it. */
size_t ag_utf8_next(const char *s, size_t len, uint32_t *out_cp);

/* Count the code points of the 'len' bytes at 's' into '*out_n'. Returns
 * 0, or AG_EINVAL when the bytes are not valid UTF-8 ('*out_n' untouched).
 * NUL bytes are valid code points here. */
int ag_utf8_count(const char *s, size_t len, size_t *out_n);

/* The length of the longest prefix of the 'len' bytes at 's' that has at
 * most 'max' bytes and does not end inside a multi-byte sequence, so text
 * cut to it never splits a character. Looks only at continuation bytes:
 * 's' need not be valid UTF-8. */
size_t ag_utf8_clip(const char *s, size_t len, size_t max);

#endif /* AG_CODEC_H */
