/* SPDX-License-Identifier: MIT */
/* Who is calling, in the X-Agora-Identity header. A user, as the gateway
 * vouches for it after verifying a JWT: a compact payload and its
 * HMAC-SHA-256 under a key shared by the gateway and the services
 * (AGORA_INTERNAL_KEY); the gateway removes any such header a client sent,
 * and a client without the key cannot forge one. A service, signed with
 * its own Ed25519 key (below): the shared key cannot make one. Known gap:
 * every service holds AGORA_INTERNAL_KEY, so a compromised service can
 * still forge a *user* identity towards another service. */
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
 * AG_EINVAL when the user id has characters other than [A-Za-z0-9-_.], or
 * when the roles include AG_IDENTITY_SERVICE (services sign with their own
 * key: ag_identity_service_sign). */
int ag_identity_sign(const uint8_t key[AG_IDENTITY_KEYLEN], const struct ag_identity *id,
                     char out[AG_IDENTITY_MAXLEN]);

/* Verify 'value' with 'key' (constant-time MAC check) and that it has not
 * expired at 'now' (unix seconds). 0, or AG_EAUTH for anything wrong,
 * including an identity claiming AG_IDENTITY_SERVICE. */
int ag_identity_verify(const uint8_t key[AG_IDENTITY_KEYLEN], struct ag_str value, int64_t now,
                       struct ag_identity *out);

/* Role names "customer", "admin", "courier" to bits; unknown names are ignored
 * ("service" is never taken from a name: only processes holding the key
 * sign it, each with its own key: ag_identity_self_header). */
unsigned ag_identity_roles_from_names(const char *const *names, size_t n);

/* ---- Service identities ---- */

/* A process proves which service it is with its own Ed25519 key. The
 * supervisor holds a master secret and derives each program's key from it
 * (ag_identity_service_seed); it gives every process only its own seed
 * (AGORA_SERVICE_KEY) and the public keys of all programs
 * (AGORA_SERVICE_PUBKEYS). The header is X-Agora-Identity too:
 *
 *   "s1;<service name>;<exp>;<hex Ed25519 signature of the text before the
 *   last ';'>"
 *
 * and verifies to roles AG_IDENTITY_SERVICE with user_id = the name. An
 * HMAC-signed "v1" identity never carries the service role (sign refuses
 * it, verify refuses it): holding AGORA_INTERNAL_KEY is not enough to be a
 * service. */
#define AG_IDENTITY_SEEDLEN      32  /* an Ed25519 seed (AGORA_SERVICE_KEY) */
#define AG_IDENTITY_PUBLEN       32  /* an Ed25519 public key */
#define AG_IDENTITY_SIGNKEYLEN   64  /* an expanded Ed25519 secret key */
#define AG_IDENTITY_MAX_SERVICES 64  /* entries of a public key table */
#define AG_IDENTITY_CACHE_SLOTS  128 /* verified headers remembered (two-way sets) */

/* The seed of service 'name': HMAC-SHA-256(master, "agora-service-v1:" +
 * name). AG_EINVAL for a bad name ([A-Za-z0-9-_.], 1-63 bytes). */
int ag_identity_service_seed(const uint8_t master[AG_IDENTITY_KEYLEN], const char *name,
                             uint8_t seed[AG_IDENTITY_SEEDLEN]);

/* The public key of 'seed'. */
void ag_identity_service_public(const uint8_t seed[AG_IDENTITY_SEEDLEN],
                                uint8_t pk[AG_IDENTITY_PUBLEN]);

/* Sign "s1;<name>;<exp>" with 'seed' into 'out'. AG_EINVAL for a bad name. */
int ag_identity_service_sign(const uint8_t seed[AG_IDENTITY_SEEDLEN], const char *name, int64_t exp,
                             char out[AG_IDENTITY_MAXLEN]);

/* The public keys a verifier trusts, and a bounded cache of headers it has
 * verified (AG_IDENTITY_CACHE_SLOTS, each valid until the header's exp), so
 * that a repeated header costs a hash and a compare instead of a signature
 * check. One loop thread. */
struct ag_identity_keyring;

/* Parse "name=<64 hex>,name=<64 hex>,..." (empty: no service is trusted).
 * AG_EINVAL for a malformed table, a repeated name, or more than
 * AG_IDENTITY_MAX_SERVICES entries, with what is wrong in 'err'. */
int ag_identity_keyring_new(const char *table, struct ag_identity_keyring **out, char *err,
                            size_t errlen);
void ag_identity_keyring_free(struct ag_identity_keyring *ring);

/* Number of services in 'ring'. */
size_t ag_identity_keyring_count(const struct ag_identity_keyring *ring);

/* Verify the service identity 'value' at 'now': the name is in 'ring', the
 * signature is its key's, not expired. 0 with 'out' filled (roles
 * AG_IDENTITY_SERVICE), or AG_EAUTH. */
int ag_identity_service_verify(struct ag_identity_keyring *ring, struct ag_str value, int64_t now,
                               struct ag_identity *out);

/* Identities accepted so far by a signature check, and from the cache
 * (tests and metrics). */
void ag_identity_keyring_stats(const struct ag_identity_keyring *ring, uint64_t *verified,
                               uint64_t *hits);

/* ---- A process's own identity, for internal calls ---- */

/* Registry writes and registrations, bus operations and every other
 * AG_ROLE_INTERNAL route need the caller's service identity, signed with
 * its own key (above). Re-signed here before it expires. Caller-provided
 * storage; one loop thread. */
struct ag_identity_self {
    uint8_t sk[AG_IDENTITY_SIGNKEYLEN]; /* expanded from the seed */
    char name[64];                      /* the service name signed as */
    int64_t exp;                        /* expiry of 'value', unix seconds; 0: not signed yet */
    char value[AG_IDENTITY_MAXLEN];     /* the current header value */
};

/* Prepare 'self' to sign as service 'name' ([A-Za-z0-9-_.], 1-63 bytes)
 * with its 'seed'. AG_EINVAL for a bad name. */
int ag_identity_self_init(struct ag_identity_self *self, const uint8_t seed[AG_IDENTITY_SEEDLEN],
                          const char *name);

/* Wipe the key in 'self'. */
void ag_identity_self_wipe(struct ag_identity_self *self);

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
