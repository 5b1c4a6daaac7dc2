/* SPDX-License-Identifier: MIT */
/* JSON Web Tokens (RFC 7519) for Agora access tokens: ES256 only (ECDSA on
 * P-256 with SHA-256, RFC 7518 section 3.4). The users service holds private
 * signing keys, each with a key id ("kid"), signs access tokens and
 * publishes the public halves as a JWKS; the gateway builds a key set from
 * that JWKS and verifies every bearer token (DESIGN.md sections 2 and 5).
 *
 * Verification is strict and never trusts the token about how to check it:
 * the algorithm is pinned to ES256 (checked in the header before the
 * signature library sees the token, and again after), the key is chosen
 * only from the caller's key set by kid, and iss, aud, exp, nbf and iat are
 * checked against the caller's expectations. Built on libjwt (signatures)
 * and OpenSSL libcrypto (keys, PEM and JWK conversion). */
#ifndef AG_JWT_H
#define AG_JWT_H

#include "agora/base.h"

#include <jansson.h>

/* Longest token ag_jwt_verify looks at, in bytes; longer ones are invalid. */
#define AG_JWT_MAX_TOKEN 8192
/* Longest key id, in bytes. A kid is 1 to AG_JWT_KID_MAX of [A-Za-z0-9._-]. */
#define AG_JWT_KID_MAX 64
/* Most keys a key set holds; further keys of a JWKS are ignored. */
#define AG_JWT_MAX_KEYS 32
/* Sizes of the string claims, terminator included. */
#define AG_JWT_ISS_MAX   128 /* iss and aud */
#define AG_JWT_SUB_MAX   64  /* sub: same bound as ag_identity.user_id */
#define AG_JWT_EMAIL_MAX 255 /* 254 bytes, the longest e-mail address */
#define AG_JWT_JTI_MAX   64

/* The claims of an access token. Signing reads them; verification fills
 * them. Strings are NUL-terminated and empty when absent. */
struct ag_jwt_claims {
    char iss[AG_JWT_ISS_MAX];     /* issuer, e.g. "agora-users" */
    char aud[AG_JWT_ISS_MAX];     /* audience (signing writes it as one string) */
    char sub[AG_JWT_SUB_MAX];     /* subject: the user id */
    char email[AG_JWT_EMAIL_MAX]; /* the user's e-mail, or "" */
    char jti[AG_JWT_JTI_MAX];     /* token id, or "" */
    char sid[AG_JWT_JTI_MAX];     /* session (refresh-token family) id, or "" */
    int64_t iat;                  /* issued at, unix seconds (0: absent) */
    int64_t nbf;                  /* not before, unix seconds (0: absent) */
    int64_t exp;                  /* expiry, unix seconds; required */
    unsigned roles;               /* enum ag_identity_roles bits ("roles" claim) */
};

/* What ag_jwt_verify requires of a token besides its signature. */
struct ag_jwt_expect {
    const char *iss; /* exact issuer; required */
    const char *aud; /* audience: "aud" must equal it or be an array holding it */
    int64_t leeway;  /* seconds of clock skew allowed on exp, nbf and iat (>= 0) */
    int64_t now;     /* the current time, unix seconds */
};

struct ag_jwt_key;    /* a private ES256 signing key and its kid */
struct ag_jwt_keyset; /* public ES256 verification keys by kid */

/* ---- Signing keys ---- */

/* Generate a new P-256 key pair. Its kid is 'kid' (copied; must be a valid
 * kid) or, when 'kid' is NULL, the RFC 7638 JWK thumbprint of the public key
 * (43 base64url characters). Returns 0 and sets '*out_key' (owned, free with
 * ag_jwt_key_free), AG_EINVAL for a bad kid, AG_EINTERNAL when OpenSSL
 * fails. Any thread. */
int ag_jwt_key_generate(const char *kid, struct ag_jwt_key **out_key);

/* Load a private P-256 key from 'len' bytes of PEM at 'pem' (PKCS#8
 * "PRIVATE KEY" or SEC1 "EC PRIVATE KEY", unencrypted), with kid 'kid' or,
 * when NULL, its thumbprint. Returns 0 and sets '*out_key', or AG_EINVAL
 * when the PEM is not an unencrypted P-256 private key or the kid is bad.
 * Any thread. */
int ag_jwt_key_from_pem(const char *pem, size_t len, const char *kid, struct ag_jwt_key **out_key);

/* The private key as PKCS#8 PEM. Owned by the caller: wipe it and free it
 * with ag_jwt_pem_free. Never NULL. */
char *ag_jwt_key_to_pem(const struct ag_jwt_key *key);

/* Wipe and free a PEM string from ag_jwt_key_to_pem. Accepts NULL. */
void ag_jwt_pem_free(char *pem);

/* The key's kid; borrowed, valid as long as 'key'. */
const char *ag_jwt_key_kid(const struct ag_jwt_key *key);

/* The public key as a JWK: {"kty":"EC","crv":"P-256","x","y","kid",
 * "alg":"ES256","use":"sig"}. New reference (json_decref). */
json_t *ag_jwt_key_jwk(const struct ag_jwt_key *key);

/* Free 'key', wiping its private material. Accepts NULL. */
void ag_jwt_key_free(struct ag_jwt_key *key);

/* Sign 'claims' with 'key' into a compact JWS "header.payload.signature".
 * The header is {"alg":"ES256","kid":<kid>,"typ":"JWT"}; the payload has
 * iss, aud, sub, iat, nbf, exp, roles (array of role names), and email and
 * jti when not empty. iss, aud and sub must not be empty and exp must be
 * positive (AG_EINVAL). Returns 0 and sets '*out_token' (owned, free with
 * ag_free), or AG_EINVAL / AG_EINTERNAL. Any thread: 'key' is read only. */
int ag_jwt_sign(const struct ag_jwt_key *key, const struct ag_jwt_claims *claims, char **out_token);

/* ---- Verification ---- */

/* A new empty key set (owned; ag_jwt_keyset_free). */
struct ag_jwt_keyset *ag_jwt_keyset_new(void);

/* Free 'ks'. Accepts NULL. No verification may be using it. */
void ag_jwt_keyset_free(struct ag_jwt_keyset *ks);

/* Add one public JWK (borrowed). Accepted: "kty" "EC", "crv" "P-256", "x"
 * and "y" of 32 bytes each (base64url) forming a point on the curve, a
 * valid "kid", "alg" absent or "ES256", "use" absent or "sig". Returns 0,
 * AG_EINVAL for a key that is not accepted (the set is unchanged),
 * AG_EEXIST when the set has that kid already, AG_ETOOBIG past
 * AG_JWT_MAX_KEYS. */
int ag_jwt_keyset_add_jwk(struct ag_jwt_keyset *ks, const json_t *jwk);

/* Build a key set from a JWKS document {"keys":[...]} ('jwks' borrowed):
 * every acceptable key is added, the others (RSA, EdDSA, other curves or
 * algorithms, duplicates) are skipped silently. Returns 0 and sets
 * '*out_ks' (possibly empty), or AG_EINVAL when 'jwks' has no "keys"
 * array. Any thread. */
int ag_jwt_keyset_from_jwks(const json_t *jwks, struct ag_jwt_keyset **out_ks);

/* Number of keys in 'ks'. */
size_t ag_jwt_keyset_count(const struct ag_jwt_keyset *ks);

/* True when 'ks' has a key with kid 'kid'. */
bool ag_jwt_keyset_has(const struct ag_jwt_keyset *ks, const char *kid);

/* Verify the compact token at 'token' ('len' bytes, need not be
 * NUL-terminated) against 'ks' and 'expect', and fill '*out' (may be NULL).
 *
 * Returns:
 *   0           valid: ES256 signature by the key named by the header's kid,
 *               iss equal to expect->iss, aud equal to (or an array holding)
 *               expect->aud, now < exp + leeway, nbf and iat (when present)
 *               <= now + leeway, sub present.
 *   AG_ENOENT   a well-formed ES256 token whose kid is not in 'ks'. The
 *               caller may refetch the JWKS once and retry; it must bound
 *               how often it refetches, since anyone can send such tokens.
 *   AG_EAUTH    anything else: malformed (segment count, base64url, JSON),
 *               longer than AG_JWT_MAX_TOKEN, an algorithm other than ES256
 *               (none, HS256, RS256...), a "crit" header, a bad or missing
 *               signature, a tampered header or payload, wrong iss or aud,
 *               expired, not yet valid, bad claim types.
 * '*out_why' (may be NULL) receives a short static reason for logs
 * ("expired", "bad signature", ...), "" on success. '*out' is only written
 * on success. Thread-safe for concurrent calls on the same 'ks'. */
int ag_jwt_verify(const struct ag_jwt_keyset *ks, const char *token, size_t len,
                  const struct ag_jwt_expect *expect, struct ag_jwt_claims *out,
                  const char **out_why);

/* True when 'kid' is a valid key id: 1 to AG_JWT_KID_MAX of [A-Za-z0-9._-]. */
bool ag_jwt_kid_is_valid(const char *kid);

#endif /* AG_JWT_H */
