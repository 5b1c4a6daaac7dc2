/* SPDX-License-Identifier: MIT */
/* The caller's identity as the gateway vouches for it. After verifying a
 * JWT, the gateway sends services an X-Agora-Identity header: a compact
 * payload and its HMAC-SHA-256 under a key shared by the gateway and the
 * services (AGORA_INTERNAL_KEY). The gateway removes any such header a
 * client sent, and a client without the key cannot forge one. */
#ifndef AG_IDENTITY_H
#define AG_IDENTITY_H

#include "agora/base.h"
#include "agora/str.h"

#define AG_IDENTITY_HEADER "X-Agora-Identity"
#define AG_IDENTITY_KEYLEN 32
#define AG_IDENTITY_MAXLEN 512 /* bytes of a formatted header value */

enum ag_identity_roles {
    AG_IDENTITY_CUSTOMER = 1 << 0,
    AG_IDENTITY_ADMIN = 1 << 1,
};

struct ag_identity {
    char user_id[64]; /* the JWT subject (UUIDv7 string) */
    unsigned roles;   /* enum ag_identity_roles bits */
    int64_t exp;      /* unix seconds after which the identity is void */
};

/* Parse a key given as 64 hex digits into 'out'. AG_EINVAL otherwise. */
int ag_identity_key_parse(const char *hex, uint8_t out[AG_IDENTITY_KEYLEN]);

/* Format 'id' signed with 'key' into 'out' (AG_IDENTITY_MAXLEN bytes).
 * AG_EINVAL when the user id has characters other than [A-Za-z0-9-_.]. */
int ag_identity_sign(const uint8_t key[AG_IDENTITY_KEYLEN], const struct ag_identity *id,
                     char out[AG_IDENTITY_MAXLEN]);

/* Verify 'value' with 'key' (constant-time MAC check) and that it has not
 * expired at 'now' (unix seconds). 0, or AG_EAUTH for anything wrong. */
int ag_identity_verify(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str value, int64_t now,
                       struct ag_identity *out);

/* Role names "customer", "admin" to bits; unknown names are ignored. */
unsigned ag_identity_roles_from_names(const char *const *names, size_t n);

#endif /* AG_IDENTITY_H */
