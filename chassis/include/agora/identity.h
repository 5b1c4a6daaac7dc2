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
    AG_IDENTITY_SERVICE = 1 << 2, /* another Agora process; user_id is its service name */
    AG_IDENTITY_COURIER = 1 << 3, /* moves shipments along (shipping); granted by an admin */
};

/* The service name the supervisor and operator tools sign as. */
#define AG_IDENTITY_OPERATOR "agora"

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

/* Role names "customer", "admin", "courier" to bits; unknown names are ignored
 * ("service" is never taken from a name: only processes holding the key
 * sign it, with ag_identity_self_header). */
unsigned ag_identity_roles_from_names(const char *const *names, size_t n);

/* ---- A process's own identity, for internal calls ---- */

/* Registry writes and registrations, bus operations and every other
 * AG_ROLE_INTERNAL route need the caller's service identity: an
 * X-Agora-Identity whose roles are AG_IDENTITY_SERVICE and whose user id is
 * the calling service's name, signed with the shared key. Re-signed here
 * before it expires. Caller-provided storage; one loop thread. */
struct ag_identity_self {
    uint8_t key[AG_IDENTITY_KEYLEN];
    char name[64];                  /* the service name signed as */
    int64_t exp;                    /* expiry of 'value', unix seconds; 0: not signed yet */
    char value[AG_IDENTITY_MAXLEN]; /* the current header value */
};

/* Prepare 'self' to sign as service 'name' ([A-Za-z0-9-_.], 1-63 bytes)
 * with 'key'. AG_EINVAL for a bad name. */
int ag_identity_self_init(struct ag_identity_self *self, const uint8_t key[AG_IDENTITY_KEYLEN],
                          const char *name);

/* The X-Agora-Identity value to send at 'now' (unix seconds): valid for
 * five minutes, re-signed once less than one minute is left. Borrowed from
 * 'self', valid until the next call. */
const char *ag_identity_self_header(struct ag_identity_self *self, int64_t now);

/* ---- The client the gateway saw ---- */

/* The gateway tells services which client a request came from in a signed
 * X-Agora-Client header, "c1;<address>;<exp>;<hmac>", so that a service
 * behind it (users' login throttles) can key on the real client without
 * trusting anything the client sent. */
#define AG_CLIENT_HEADER  "X-Agora-Client"
#define AG_CLIENT_ADDRLEN 64 /* longest address carried, with its NUL */

/* Sign 'addr' (an IPv4 or IPv6 address in text: hex digits, '.' and ':'
 * only, shorter than AG_CLIENT_ADDRLEN) valid until 'exp' into 'out'.
 * AG_EINVAL for an address with other characters. */
int ag_identity_client_sign(const uint8_t key[AG_IDENTITY_KEYLEN], const char *addr, int64_t exp,
                            char out[AG_IDENTITY_MAXLEN]);

/* Verify 'value' with 'key' at 'now' and copy the address into 'out'.
 * 0, or AG_EAUTH for anything wrong. */
int ag_identity_client_verify(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str value,
                              int64_t now, char out[AG_CLIENT_ADDRLEN]);

#endif /* AG_IDENTITY_H */
