/* SPDX-License-Identifier: MIT */
/* X-Agora-Identity: "v1;<user id>;<roles>;<exp>;<hmac>" where hmac is the
 * hex HMAC-SHA-256 (libsodium) of everything before the last ';'. */
#include "agora/base.h"
#include "agora/identity.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agora/codec.h"
#include "agora/err.h"

int
ag_identity_key_parse(const char *hex, uint8_t out[AG_IDENTITY_KEYLEN])
{
    if (hex == NULL || strlen(hex) != 2 * AG_IDENTITY_KEYLEN)
        return AG_EINVAL;
    for (size_t i = 0; i < AG_IDENTITY_KEYLEN; i++) {
        int hi = ag_hex_value(hex[2 * i]);
        int lo = ag_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return AG_EINVAL;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return 0;
}

static bool
is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static void
mac_hex(const uint8_t key[AG_IDENTITY_KEYLEN], const char *msg, size_t len,
        char out[2 * crypto_auth_hmacsha256_BYTES + 1])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, AG_IDENTITY_KEYLEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 2 * crypto_auth_hmacsha256_BYTES + 1, mac, sizeof(mac));
}

/* Check that 'v' starts with the 3-byte 'version' and ends with ";<hex
 * HMAC>" of everything before that ';' under 'key' (constant-time). 0 and
 * the length of that signed text in '*out_body', or AG_EAUTH. */
static int
authentic_body(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str v, const char *version,
               size_t *out_body)
{
    const size_t maclen = 2 * crypto_auth_hmacsha256_BYTES;
    if (v.len < 3 + maclen + 1 || v.len >= AG_IDENTITY_MAXLEN || memcmp(v.ptr, version, 3) != 0)
        return AG_EAUTH;
    size_t body = v.len - maclen - 1; /* bytes before the final ';' */
    if (v.ptr[body] != ';')
        return AG_EAUTH;
    char want[2 * crypto_auth_hmacsha256_BYTES + 1];
    mac_hex(key, v.ptr, body, want);
    if (sodium_memcmp(want, v.ptr + body + 1, maclen) != 0)
        return AG_EAUTH;
    *out_body = body;
    return 0;
}

int
ag_identity_sign(const uint8_t key[AG_IDENTITY_KEYLEN], const struct ag_identity *id,
                 char out[AG_IDENTITY_MAXLEN])
{
    size_t n = strlen(id->user_id);
    if (n == 0 || n >= sizeof(id->user_id))
        return AG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!is_id_char(id->user_id[i]))
            return AG_EINVAL;
    }
    int len = snprintf(out, AG_IDENTITY_MAXLEN, "v1;%s;%u;%lld;", id->user_id, id->roles,
                       (long long)id->exp);
    if (len < 0 || (size_t)len + 2 * crypto_auth_hmacsha256_BYTES + 1 > AG_IDENTITY_MAXLEN)
        return AG_EINVAL;
    /* The MAC covers the text up to and excluding the final ';'. */
    mac_hex(key, out, (size_t)len - 1, out + len);
    return 0;
}

int
ag_identity_verify(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str v, int64_t now,
                   struct ag_identity *out)
{
    size_t body;
    if (authentic_body(key, v, "v1;", &body) != 0)
        return AG_EAUTH;

    /* Authentic: now parse "v1;<uid>;<roles>;<exp>". */
    char buf[AG_IDENTITY_MAXLEN];
    memcpy(buf, v.ptr, body);
    buf[body] = '\0';
    char *uid = buf + 3;
    char *p1 = strchr(uid, ';');
    if (p1 == NULL)
        return AG_EAUTH;
    *p1 = '\0';
    char *p2 = strchr(p1 + 1, ';');
    if (p2 == NULL)
        return AG_EAUTH;
    *p2 = '\0';
    int64_t roles;
    int64_t exp;
    size_t ulen = strlen(uid);
    if (ulen == 0 || ulen >= sizeof(out->user_id) ||
        ag_str_to_i64(ag_str_from_cstr(p1 + 1), 0, 0xffff, &roles) != 0 ||
        ag_str_to_i64(ag_str_from_cstr(p2 + 1), 0, INT64_MAX, &exp) != 0)
        return AG_EAUTH;
    if (exp < now)
        return AG_EAUTH;
    memcpy(out->user_id, uid, ulen + 1);
    out->roles = (unsigned)roles;
    out->exp = exp;
    return 0;
}

unsigned
ag_identity_roles_from_names(const char *const *names, size_t n)
{
    unsigned roles = 0;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            continue;
        if (strcmp(names[i], "customer") == 0)
            roles |= AG_IDENTITY_CUSTOMER;
        else if (strcmp(names[i], "admin") == 0)
            roles |= AG_IDENTITY_ADMIN;
        else if (strcmp(names[i], "courier") == 0)
            roles |= AG_IDENTITY_COURIER;
    }
    return roles;
}

/* ---- A process's own identity ---- */

#define SELF_TTL_S    300 /* a signed service identity is valid this long... */
#define SELF_RESIGN_S 60  /* ...and re-signed once less than this is left */

int
ag_identity_self_init(struct ag_identity_self *self, const uint8_t key[AG_IDENTITY_KEYLEN],
                      const char *name)
{
    memset(self, 0, sizeof(*self));
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n >= sizeof(self->name))
        return AG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!is_id_char(name[i]))
            return AG_EINVAL;
    }
    memcpy(self->key, key, AG_IDENTITY_KEYLEN);
    memcpy(self->name, name, n + 1);
    return 0;
}

const char *
ag_identity_self_header(struct ag_identity_self *self, int64_t now)
{
    if (self->exp - now < SELF_RESIGN_S) {
        struct ag_identity id = { .roles = AG_IDENTITY_SERVICE, .exp = now + SELF_TTL_S };
        memcpy(id.user_id, self->name, sizeof(self->name));
        if (ag_identity_sign(self->key, &id, self->value) != 0)
            AG_BUG("service identity checked at init cannot be signed");
        self->exp = id.exp;
    }
    return self->value;
}

/* ---- The client the gateway saw ---- */

static bool
is_addr_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
           c == ':';
}

int
ag_identity_client_sign(const uint8_t key[AG_IDENTITY_KEYLEN], const char *addr, int64_t exp,
                        char out[AG_IDENTITY_MAXLEN])
{
    size_t n = strlen(addr);
    if (n == 0 || n >= AG_CLIENT_ADDRLEN)
        return AG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!is_addr_char(addr[i]))
            return AG_EINVAL;
    }
    int len = snprintf(out, AG_IDENTITY_MAXLEN, "c1;%s;%lld;", addr, (long long)exp);
    if (len < 0 || (size_t)len + 2 * crypto_auth_hmacsha256_BYTES + 1 > AG_IDENTITY_MAXLEN)
        return AG_EINVAL;
    mac_hex(key, out, (size_t)len - 1, out + len);
    return 0;
}

int
ag_identity_client_verify(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str v, int64_t now,
                          char out[AG_CLIENT_ADDRLEN])
{
    size_t body;
    if (authentic_body(key, v, "c1;", &body) != 0)
        return AG_EAUTH;
    /* Authentic: "c1;<addr>;<exp>". */
    const char *addr = v.ptr + 3;
    const char *semi = memchr(addr, ';', body - 3);
    if (semi == NULL)
        return AG_EAUTH;
    size_t alen = (size_t)(semi - addr);
    int64_t exp;
    if (alen == 0 || alen >= AG_CLIENT_ADDRLEN ||
        ag_str_to_i64(ag_str_make(semi + 1, (size_t)(v.ptr + body - semi - 1)), 0, INT64_MAX,
                      &exp) != 0 ||
        exp < now)
        return AG_EAUTH;
    memcpy(out, addr, alen);
    out[alen] = '\0';
    return 0;
}
