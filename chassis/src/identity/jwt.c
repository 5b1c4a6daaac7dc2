/* SPDX-License-Identifier: MIT */
/* ES256 access tokens: P-256 keys with OpenSSL (generation, PEM, JWK and
 * thumbprints), signatures with libjwt, and a verifier that checks the
 * header itself before libjwt sees the token, because libjwt 1.10 takes the
 * algorithm from the header (an HS256 token keyed with our public PEM would
 * otherwise pass). See jwt.h for the contract. */
#include "agora/base.h"
#include "agora/jwt.h"

#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "agora/err.h"
#include "agora/identity.h"
#include "agora/json.h"
#include "agora/mem.h"

#define KEY_MAGIC    0x4a574b59u /* "JWKY" */
#define KEYSET_MAGIC 0x4a4b5354u /* "JKST" */

#define COORD_BYTES 32   /* P-256 field element */
#define COORD_B64   44   /* 43 base64url characters and a NUL */
#define SIG_BYTES   64   /* ES256 signature: r || s */
#define HEADER_MAX  1024 /* decoded header bytes */
#define PEM_MAX     16384
#define LEEWAY_MAX  (INT64_C(366) * 86400)
#define AUD_MAX     16 /* entries of an "aud" array looked at */
#define ROLES_MAX   16 /* entries of a "roles" array looked at */
#define B64URL      sodium_base64_VARIANT_URLSAFE_NO_PADDING

struct ag_jwt_key {
    uint32_t magic;
    EVP_PKEY *pkey;               /* the key pair */
    char *pem;                    /* PKCS#8 PEM of the private key, handed to libjwt */
    size_t pem_len;               /* bytes of 'pem' */
    char kid[AG_JWT_KID_MAX + 1]; /* key id */
    char x[COORD_B64];            /* base64url public x coordinate */
    char y[COORD_B64];            /* base64url public y coordinate */
};

struct keyset_entry {
    char kid[AG_JWT_KID_MAX + 1]; /* key id */
    char *pem;                    /* SubjectPublicKeyInfo PEM, handed to libjwt */
    size_t pem_len;               /* bytes of 'pem' */
};

struct ag_jwt_keyset {
    uint32_t magic;
    size_t n;                                  /* keys in use */
    struct keyset_entry keys[AG_JWT_MAX_KEYS]; /* by insertion order */
};

/* Role bits and their names in the "roles" claim (identity.h). */
static const struct {
    unsigned bit;
    const char *name;
} ROLE_NAMES[] = {
    { AG_IDENTITY_CUSTOMER, "customer" },
    { AG_IDENTITY_ADMIN, "admin" },
    { AG_IDENTITY_COURIER, "courier" },
};

/* ---- Helpers ---- */

bool
ag_jwt_kid_is_valid(const char *kid)
{
    if (kid == NULL)
        return false;
    size_t n = strlen(kid);
    if (n == 0 || n > AG_JWT_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* Strict base64url without padding (libsodium rejects stray characters and
 * non-zero trailing bits, so each byte string has exactly one encoding).
 * Returns 0 and the decoded length, or AG_EINVAL. */
static int
b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    const char *end = NULL;
    size_t len = 0;
    if (n == 0)
        return AG_EINVAL;
    if (sodium_base642bin(out, cap, in, n, NULL, &len, &end, B64URL) != 0 || end != in + n)
        return AG_EINVAL;
    *out_len = len;
    return 0;
}

/* Encode 'n' bytes into 'out' ('cap' bytes; must fit). */
static void
b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    if (sodium_base64_ENCODED_LEN(n, B64URL) > cap)
        AG_BUG("base64url output buffer too small");
    sodium_bin2base64(out, cap, in, n, B64URL);
}

/* A heap copy of the PEM of 'pkey' (the private key as PKCS#8 when
 * 'private_key', else the public SubjectPublicKeyInfo); NULL on failure. */
static char *
pem_of(EVP_PKEY *pkey, bool private_key, size_t *out_len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return NULL;
    int ok = private_key ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PUBKEY(bio, pkey);
    char *out = NULL;
    if (ok == 1) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        if (len > 0 && data != NULL) {
            out = ag_strndup(data, (size_t)len);
            *out_len = (size_t)len;
        }
    }
    /* The memory BIO held private key bytes: clear before freeing. */
    if (private_key) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        if (len > 0 && data != NULL)
            OPENSSL_cleanse(data, (size_t)len);
    }
    BIO_free(bio);
    return out;
}

static bool
is_p256(EVP_PKEY *pkey)
{
    if (EVP_PKEY_is_a(pkey, "EC") != 1)
        return false;
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1)
        return false;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* The public coordinates of 'pkey' as base64url. */
static int
coords_of(EVP_PKEY *pkey, char x[COORD_B64], char y[COORD_B64])
{
    BIGNUM *bx = NULL;
    BIGNUM *by = NULL;
    unsigned char buf[COORD_BYTES];
    int rc = AG_EINTERNAL;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1)
        goto out;
    if (BN_bn2binpad(bx, buf, sizeof(buf)) != COORD_BYTES)
        goto out;
    b64url_encode(buf, sizeof(buf), x, COORD_B64);
    if (BN_bn2binpad(by, buf, sizeof(buf)) != COORD_BYTES)
        goto out;
    b64url_encode(buf, sizeof(buf), y, COORD_B64);
    rc = 0;
out:
    BN_free(bx);
    BN_free(by);
    return rc;
}

/* RFC 7638 thumbprint: base64url(SHA-256 of the canonical public JWK, its
 * required members in lexicographic order, no whitespace). */
static void
thumbprint(const char *x, const char *y, char out[AG_JWT_KID_MAX + 1])
{
    char canon[256];
    int n = snprintf(canon, sizeof(canon),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    if (n < 0 || (size_t)n >= sizeof(canon))
        AG_BUG("thumbprint buffer too small");
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)canon, (unsigned long long)n);
    b64url_encode(h, sizeof(h), out, AG_JWT_KID_MAX + 1);
}

/* Wrap 'pkey' (taken) into a new key with 'kid' or its thumbprint. */
static int
key_take(EVP_PKEY *pkey, const char *kid, struct ag_jwt_key **out_key)
{
    struct ag_jwt_key *key = ag_calloc(1, sizeof(*key));
    key->magic = KEY_MAGIC;
    key->pkey = pkey;
    int rc = coords_of(pkey, key->x, key->y);
    if (rc == 0) {
        key->pem = pem_of(pkey, true, &key->pem_len);
        if (key->pem == NULL)
            rc = AG_EINTERNAL;
    }
    if (rc != 0) {
        ag_jwt_key_free(key);
        return rc;
    }
    if (kid != NULL)
        memcpy(key->kid, kid, strlen(kid) + 1);
    else
        thumbprint(key->x, key->y, key->kid);
    *out_key = key;
    return 0;
}

/* ---- Signing keys ---- */

int
ag_jwt_key_generate(const char *kid, struct ag_jwt_key **out_key)
{
    if (kid != NULL && !ag_jwt_kid_is_valid(kid))
        return AG_EINVAL;
    if (sodium_init() < 0)
        AG_BUG("sodium_init failed");
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL)
        return AG_EINTERNAL;
    return key_take(pkey, kid, out_key);
}

/* Refuse to prompt for a passphrase: encrypted keys are not accepted. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    AG_UNUSED(buf);
    AG_UNUSED(size);
    AG_UNUSED(rwflag);
    AG_UNUSED(u);
    return -1;
}

int
ag_jwt_key_from_pem(const char *pem, size_t len, const char *kid, struct ag_jwt_key **out_key)
{
    if (pem == NULL || len == 0 || len > PEM_MAX || (kid != NULL && !ag_jwt_kid_is_valid(kid)))
        return AG_EINVAL;
    if (sodium_init() < 0)
        AG_BUG("sodium_init failed");
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return AG_EINTERNAL;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (pkey == NULL || !is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        return AG_EINVAL;
    }
    return key_take(pkey, kid, out_key);
}

char *
ag_jwt_key_to_pem(const struct ag_jwt_key *key)
{
    AG_CHECK_MAGIC(key, KEY_MAGIC);
    return ag_strndup(key->pem, key->pem_len);
}

void
ag_jwt_pem_free(char *pem)
{
    if (pem == NULL)
        return;
    OPENSSL_cleanse(pem, strlen(pem));
    ag_free(pem);
}

const char *
ag_jwt_key_kid(const struct ag_jwt_key *key)
{
    AG_CHECK_MAGIC(key, KEY_MAGIC);
    return key->kid;
}

json_t *
ag_jwt_key_jwk(const struct ag_jwt_key *key)
{
    AG_CHECK_MAGIC(key, KEY_MAGIC);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                     key->x, "y", key->y, "kid", key->kid, "alg", "ES256", "use", "sig");
}

void
ag_jwt_key_free(struct ag_jwt_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;
    if (key->pem != NULL)
        OPENSSL_cleanse(key->pem, key->pem_len);
    ag_free(key->pem);
    key->pem = NULL;
    key->magic = 0;
    ag_free(key);
}

static json_t *
roles_json(unsigned roles)
{
    json_t *a = json_array();
    for (size_t i = 0; i < AG_ARRAY_SIZE(ROLE_NAMES); i++) {
        if (roles & ROLE_NAMES[i].bit)
            json_array_append_new(a, json_string(ROLE_NAMES[i].name));
    }
    return a;
}

int
ag_jwt_sign(const struct ag_jwt_key *key, const struct ag_jwt_claims *claims, char **out_token)
{
    AG_CHECK_MAGIC(key, KEY_MAGIC);
    if (claims->iss[0] == '\0' || claims->aud[0] == '\0' || claims->sub[0] == '\0' ||
        claims->exp <= 0)
        return AG_EINVAL;
    json_t *payload = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "iss", claims->iss, "aud",
                                claims->aud, "sub", claims->sub, "iat", (json_int_t)claims->iat,
                                "nbf", (json_int_t)claims->nbf, "exp", (json_int_t)claims->exp,
                                "roles", roles_json(claims->roles));
    if (payload == NULL)
        return AG_EINVAL; /* a string that is not UTF-8 */
    if (claims->email[0] != '\0')
        json_object_set_new(payload, "email", json_string(claims->email));
    if (claims->jti[0] != '\0')
        json_object_set_new(payload, "jti", json_string(claims->jti));
    if (claims->sid[0] != '\0')
        json_object_set_new(payload, "sid", json_string(claims->sid));
    char *grants = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    if (grants == NULL)
        return AG_EINVAL;

    int rc = AG_EINTERNAL;
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)key->pem, (int)key->pem_len) != 0 ||
        jwt_add_header(jwt, "kid", key->kid) != 0 || jwt_add_grants_json(jwt, grants) != 0)
        goto out;
    /* libjwt allocates with the C allocator, which ag_free releases. */
    char *token = jwt_encode_str(jwt);
    if (token == NULL)
        goto out;
    *out_token = token;
    rc = 0;
out:
    jwt_free(jwt);
    ag_free(grants);
    return rc;
}

/* ---- Key sets ---- */

struct ag_jwt_keyset *
ag_jwt_keyset_new(void)
{
    if (sodium_init() < 0)
        AG_BUG("sodium_init failed");
    struct ag_jwt_keyset *ks = ag_calloc(1, sizeof(*ks));
    ks->magic = KEYSET_MAGIC;
    return ks;
}

void
ag_jwt_keyset_free(struct ag_jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        ag_free(ks->keys[i].pem);
        ks->keys[i].pem = NULL;
    }
    ks->magic = 0;
    ag_free(ks);
}

static const struct keyset_entry *
keyset_find(const struct ag_jwt_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    }
    return NULL;
}

bool
ag_jwt_keyset_has(const struct ag_jwt_keyset *ks, const char *kid)
{
    AG_CHECK_MAGIC(ks, KEYSET_MAGIC);
    return kid != NULL && keyset_find(ks, kid) != NULL;
}

size_t
ag_jwt_keyset_count(const struct ag_jwt_keyset *ks)
{
    AG_CHECK_MAGIC(ks, KEYSET_MAGIC);
    return ks->n;
}

/* A JWK member that must be absent or equal to 'want'. */
static bool
member_absent_or(const json_t *jwk, const char *name, const char *want)
{
    const json_t *v = json_object_get(jwk, name);
    return v == NULL || (json_is_string(v) && strcmp(json_string_value(v), want) == 0);
}

static bool
member_is(const json_t *jwk, const char *name, const char *want)
{
    const json_t *v = json_object_get(jwk, name);
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* The 32-byte coordinate in member 'name' of 'jwk'. */
static bool
coord_get(const json_t *jwk, const char *name, unsigned char out[COORD_BYTES])
{
    const json_t *v = json_object_get(jwk, name);
    size_t n = 0;
    if (!json_is_string(v) || json_string_length(v) != COORD_B64 - 1)
        return false;
    return b64url_decode(json_string_value(v), json_string_length(v), out, COORD_BYTES, &n) == 0 &&
           n == COORD_BYTES;
}

/* The public key at (x, y) on P-256, checked to be a valid point. */
static EVP_PKEY *
public_key_from_coords(const unsigned char x[COORD_BYTES], const unsigned char y[COORD_BYTES])
{
    unsigned char point[1 + 2 * COORD_BYTES];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, COORD_BYTES);
    memcpy(point + 1 + COORD_BYTES, y, COORD_BYTES);

    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY_CTX *check = NULL;
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

int
ag_jwt_keyset_add_jwk(struct ag_jwt_keyset *ks, const json_t *jwk)
{
    AG_CHECK_MAGIC(ks, KEYSET_MAGIC);
    if (!json_is_object(jwk) || !member_is(jwk, "kty", "EC") || !member_is(jwk, "crv", "P-256") ||
        !member_absent_or(jwk, "alg", "ES256") || !member_absent_or(jwk, "use", "sig"))
        return AG_EINVAL;
    const json_t *kidv = json_object_get(jwk, "kid");
    const char *kid = json_string_value(kidv);
    if (!json_is_string(kidv) || !ag_jwt_kid_is_valid(kid))
        return AG_EINVAL;
    unsigned char x[COORD_BYTES];
    unsigned char y[COORD_BYTES];
    if (!coord_get(jwk, "x", x) || !coord_get(jwk, "y", y))
        return AG_EINVAL;
    if (keyset_find(ks, kid) != NULL)
        return AG_EEXIST;
    if (ks->n >= AG_JWT_MAX_KEYS)
        return AG_ETOOBIG;
    EVP_PKEY *pkey = public_key_from_coords(x, y);
    if (pkey == NULL)
        return AG_EINVAL;
    size_t pem_len = 0;
    char *pem = pem_of(pkey, false, &pem_len);
    EVP_PKEY_free(pkey);
    if (pem == NULL)
        return AG_EINTERNAL;
    struct keyset_entry *e = &ks->keys[ks->n++];
    memcpy(e->kid, kid, strlen(kid) + 1);
    e->pem = pem;
    e->pem_len = pem_len;
    return 0;
}

int
ag_jwt_keyset_from_jwks(const json_t *jwks, struct ag_jwt_keyset **out_ks)
{
    const json_t *keys = json_object_get(jwks, "keys");
    if (!json_is_array(keys))
        return AG_EINVAL;
    struct ag_jwt_keyset *ks = ag_jwt_keyset_new();
    size_t i;
    const json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        if (ks->n >= AG_JWT_MAX_KEYS)
            break;
        ag_jwt_keyset_add_jwk(ks, jwk); /* unacceptable keys are skipped */
    }
    *out_ks = ks;
    return 0;
}

/* ---- Verification ---- */

/* Copy the string member 'name' of 'obj' into 'out' ('cap' bytes).
 * Absent: "" and true unless 'required'. Wrong type or too long: false. */
static bool
claim_string(const json_t *obj, const char *name, bool required, char *out, size_t cap)
{
    const json_t *v = json_object_get(obj, name);
    out[0] = '\0';
    if (v == NULL)
        return !required;
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    if (n >= cap || (required && n == 0) || memchr(json_string_value(v), '\0', n) != NULL)
        return false;
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

/* An integer NumericDate member; absent gives 0 and true unless
 * 'required'. Reals and negative values are refused. */
static bool
claim_time(const json_t *obj, const char *name, bool required, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (v == NULL)
        return !required;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool
audience_ok(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud) || json_array_size(aud) > AUD_MAX)
        return false;
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return true;
    }
    return false;
}

static bool
roles_get(const json_t *obj, unsigned *out)
{
    const json_t *v = json_object_get(obj, "roles");
    *out = 0;
    if (v == NULL)
        return true;
    if (!json_is_array(v) || json_array_size(v) > ROLES_MAX)
        return false;
    const char *names[ROLES_MAX];
    size_t i;
    const json_t *r;
    json_array_foreach(v, i, r)
    {
        if (!json_is_string(r))
            return false;
        names[i] = json_string_value(r);
    }
    *out = ag_identity_roles_from_names(names, json_array_size(v));
    return true;
}

/* Check the registered claims of 'payload' against 'expect' and fill 'c'. */
static int
check_claims(const json_t *payload, const struct ag_jwt_expect *expect, struct ag_jwt_claims *c,
             const char **why)
{
    int64_t leeway = AG_MAX(0, AG_MIN(expect->leeway, LEEWAY_MAX));
    memset(c, 0, sizeof(*c));
    if (!claim_string(payload, "iss", true, c->iss, sizeof(c->iss)) ||
        !claim_string(payload, "sub", true, c->sub, sizeof(c->sub)) ||
        !claim_string(payload, "email", false, c->email, sizeof(c->email)) ||
        !claim_string(payload, "jti", false, c->jti, sizeof(c->jti)) ||
        !claim_string(payload, "sid", false, c->sid, sizeof(c->sid)) ||
        !claim_time(payload, "exp", true, &c->exp) || !claim_time(payload, "nbf", false, &c->nbf) ||
        !claim_time(payload, "iat", false, &c->iat) || !roles_get(payload, &c->roles)) {
        *why = "missing or malformed claims";
        return AG_EAUTH;
    }
    if (expect->iss == NULL || strcmp(c->iss, expect->iss) != 0) {
        *why = "wrong issuer";
        return AG_EAUTH;
    }
    if (expect->aud == NULL || !audience_ok(json_object_get(payload, "aud"), expect->aud) ||
        strlen(expect->aud) >= sizeof(c->aud)) {
        *why = "wrong audience";
        return AG_EAUTH;
    }
    memcpy(c->aud, expect->aud, strlen(expect->aud) + 1);
    /* Written so that no sum can overflow whatever the token says. */
    if (expect->now - leeway >= c->exp) {
        *why = "expired";
        return AG_EAUTH;
    }
    if (c->nbf > expect->now + leeway) {
        *why = "not yet valid";
        return AG_EAUTH;
    }
    if (c->iat > expect->now + leeway) {
        *why = "issued in the future";
        return AG_EAUTH;
    }
    return 0;
}

/* The header's own checks: the algorithm is pinned to ES256 whatever the
 * token says, no extension we would have to understand, a well-formed kid. */
static int
check_header(const json_t *hdr, const char **out_kid, const char **why)
{
    const json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0) {
        *why = "algorithm not allowed";
        return AG_EAUTH;
    }
    const json_t *typ = json_object_get(hdr, "typ");
    if (typ != NULL && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0)) {
        *why = "wrong token type";
        return AG_EAUTH;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        *why = "critical header extension";
        return AG_EAUTH;
    }
    const json_t *kid = json_object_get(hdr, "kid");
    if (!json_is_string(kid) || !ag_jwt_kid_is_valid(json_string_value(kid))) {
        *why = "missing or malformed kid";
        return AG_EAUTH;
    }
    *out_kid = json_string_value(kid);
    return 0;
}

static bool
is_b64url_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Split 'token' into its three segments (offsets and lengths). */
static bool
split_token(const char *token, size_t len, size_t off[3], size_t seglen[3])
{
    size_t seg = 0;
    off[0] = 0;
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        if (c == '.') {
            if (seg == 2)
                return false;
            seglen[seg] = i - off[seg];
            off[++seg] = i + 1;
        } else if (!is_b64url_char(c)) {
            return false;
        }
    }
    if (seg != 2)
        return false;
    seglen[2] = len - off[2];
    return seglen[0] > 0 && seglen[1] > 0 && seglen[2] > 0;
}

int
ag_jwt_verify(const struct ag_jwt_keyset *ks, const char *token, size_t len,
              const struct ag_jwt_expect *expect, struct ag_jwt_claims *out, const char **out_why)
{
    AG_CHECK_MAGIC(ks, KEYSET_MAGIC);
    const char *why_local = "";
    const char **why = out_why ? out_why : &why_local;
    *why = "";
    if (token == NULL || len == 0) {
        *why = "empty token";
        return AG_EAUTH;
    }
    if (len > AG_JWT_MAX_TOKEN) {
        *why = "token too long";
        return AG_EAUTH;
    }
    size_t off[3];
    size_t seglen[3];
    if (!split_token(token, len, off, seglen)) {
        *why = "malformed token";
        return AG_EAUTH;
    }

    int rc = AG_EAUTH;
    json_t *hdr = NULL;
    json_t *payload = NULL;
    unsigned char *buf = NULL;
    char *tokz = NULL;
    jwt_t *jwt = NULL;

    /* Header: decoded and judged here, before libjwt sees anything. */
    unsigned char hbuf[HEADER_MAX];
    size_t n = 0;
    if (b64url_decode(token + off[0], seglen[0], hbuf, sizeof(hbuf), &n) != 0) {
        *why = "malformed header";
        goto out;
    }
    hdr = ag_json_parse((const char *)hbuf, n, NULL, 0);
    if (hdr == NULL) {
        *why = "malformed header";
        goto out;
    }
    const char *kid = NULL;
    rc = check_header(hdr, &kid, why);
    if (rc != 0)
        goto out;
    rc = AG_EAUTH;

    /* Signature: exactly r || s. */
    unsigned char sig[SIG_BYTES + 1];
    if (b64url_decode(token + off[2], seglen[2], sig, sizeof(sig), &n) != 0 || n != SIG_BYTES) {
        *why = "malformed signature";
        goto out;
    }
    /* Payload: strict base64url and JSON (duplicate claims refused). The
     * bytes parsed here are the bytes the signature covers. */
    buf = ag_malloc(seglen[1]);
    if (b64url_decode(token + off[1], seglen[1], buf, seglen[1], &n) != 0) {
        *why = "malformed payload";
        goto out;
    }
    payload = ag_json_parse((const char *)buf, n, NULL, 0);
    if (payload == NULL) {
        *why = "malformed payload";
        goto out;
    }

    const struct keyset_entry *key = keyset_find(ks, kid);
    if (key == NULL) {
        *why = "unknown kid";
        rc = AG_ENOENT;
        goto out;
    }

    tokz = ag_strndup(token, len);
    if (jwt_decode(&jwt, tokz, (const unsigned char *)key->pem, (int)key->pem_len) != 0 ||
        jwt == NULL) {
        *why = "bad signature";
        goto out;
    }
    /* Belt and braces: libjwt must have verified with the pinned algorithm. */
    if (jwt_get_alg(jwt) != JWT_ALG_ES256) {
        *why = "algorithm not allowed";
        goto out;
    }
    struct ag_jwt_claims c;
    rc = check_claims(payload, expect, &c, why);
    if (rc == 0 && out != NULL)
        *out = c;
out:
    jwt_free(jwt);
    ag_free(tokz);
    ag_free(buf);
    json_decref(payload);
    json_decref(hdr);
    return rc;
}
