/* SPDX-License-Identifier: MIT */
/* X-Agora-Identity: "v1;<user id>;<roles>;<exp>;<hmac>" where hmac is the
 * hex HMAC-SHA-256 (libsodium) of everything before the last ';' (users, as
 * the gateway vouches for them), or "s1;<service>;<exp>;<sig>" where sig
 * is the hex Ed25519 signature of everything before the last ';' by that
 * service's own key (services). */
#include "agora/base.h"
#include "agora/identity.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/mem.h"

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
    if (n == 0 || n >= sizeof(id->user_id) || (id->roles & AG_IDENTITY_SERVICE) != 0)
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
    /* The service role is proven with the service's own key, never with
     * the shared one. */
    if (exp < now || (roles & AG_IDENTITY_SERVICE) != 0)
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

/* ---- Service identities ---- */

#define SERVICE_SIGHEX (2 * crypto_sign_BYTES)
/* The longest service header: "s1;" + 63-byte name + ";" + 19 digits + ";"
 * + the signature. */
#define SERVICE_MAXLEN (3 + 63 + 1 + 19 + 1 + SERVICE_SIGHEX)

static bool
is_name(const char *name, size_t n)
{
    if (n == 0 || n >= sizeof(((struct ag_identity *)0)->user_id))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_id_char(name[i]))
            return false;
    }
    return true;
}

int
ag_identity_service_seed(const uint8_t master[AG_IDENTITY_KEYLEN], const char *name,
                         uint8_t seed[AG_IDENTITY_SEEDLEN])
{
    static const char label[] = "agora-service-v1:";
    if (name == NULL || !is_name(name, strlen(name)))
        return AG_EINVAL;
    _Static_assert(crypto_auth_hmacsha256_BYTES == AG_IDENTITY_SEEDLEN, "seed is one HMAC");
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, master, AG_IDENTITY_KEYLEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, sizeof(label) - 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)name, strlen(name));
    crypto_auth_hmacsha256_final(&st, seed);
    sodium_memzero(&st, sizeof(st));
    return 0;
}

void
ag_identity_service_public(const uint8_t seed[AG_IDENTITY_SEEDLEN], uint8_t pk[AG_IDENTITY_PUBLEN])
{
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(sk, sizeof(sk));
}

/* Sign "s1;<name>;<exp>" with the expanded key 'sk'. */
static int
service_sign_sk(const uint8_t sk[AG_IDENTITY_SIGNKEYLEN], const char *name, int64_t exp,
                char out[AG_IDENTITY_MAXLEN])
{
    if (name == NULL || !is_name(name, strlen(name)) || exp < 0)
        return AG_EINVAL;
    int len = snprintf(out, AG_IDENTITY_MAXLEN, "s1;%s;%lld;", name, (long long)exp);
    if (len < 0 || (size_t)len + SERVICE_SIGHEX + 1 > AG_IDENTITY_MAXLEN)
        return AG_EINVAL;
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)out, (size_t)len - 1, sk);
    sodium_bin2hex(out + len, SERVICE_SIGHEX + 1, sig, sizeof(sig));
    return 0;
}

int
ag_identity_service_sign(const uint8_t seed[AG_IDENTITY_SEEDLEN], const char *name, int64_t exp,
                         char out[AG_IDENTITY_MAXLEN])
{
    _Static_assert(crypto_sign_SECRETKEYBYTES == AG_IDENTITY_SIGNKEYLEN, "Ed25519 secret key");
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    int rc = service_sign_sk(sk, name, exp, out);
    sodium_memzero(sk, sizeof(sk));
    return rc;
}

struct ring_entry {
    char name[64];
    uint8_t pk[AG_IDENTITY_PUBLEN];
};

/* A verified header: its exact text and what it said. The cache is
 * two-way set associative, so two live headers (say, a process's before and
 * after it re-signs) rarely evict each other. */
struct ring_slot {
    uint16_t len; /* 0: empty */
    char text[SERVICE_MAXLEN];
    struct ag_identity id;
};

struct ag_identity_keyring {
    size_t n;
    struct ring_entry entries[AG_IDENTITY_MAX_SERVICES];
    uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* random: slots cannot be aimed at */
    struct ring_slot slots[AG_IDENTITY_CACHE_SLOTS];
    uint64_t verified;
    uint64_t hits;
};

int
ag_identity_keyring_new(const char *table, struct ag_identity_keyring **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    struct ag_identity_keyring *ring = ag_calloc(1, sizeof(*ring));
    randombytes_buf(ring->hash_key, sizeof(ring->hash_key));
    const char *p = table != NULL ? table : "";
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq != NULL ? (size_t)(eq - p) : 0;
        if (eq == NULL || !is_name(p, nlen) || len - nlen - 1 != 2 * AG_IDENTITY_PUBLEN) {
            snprintf(err, errlen, "entry %zu is not name=<64 hex digits>", ring->n + 1);
            goto fail;
        }
        if (ring->n == AG_IDENTITY_MAX_SERVICES) {
            snprintf(err, errlen, "more than %d services", AG_IDENTITY_MAX_SERVICES);
            goto fail;
        }
        struct ring_entry *e = &ring->entries[ring->n];
        memcpy(e->name, p, nlen);
        e->name[nlen] = '\0';
        char hex[2 * AG_IDENTITY_PUBLEN + 1];
        memcpy(hex, eq + 1, 2 * AG_IDENTITY_PUBLEN);
        hex[2 * AG_IDENTITY_PUBLEN] = '\0';
        _Static_assert(AG_IDENTITY_PUBLEN == AG_IDENTITY_KEYLEN, "same hex parser");
        if (ag_identity_key_parse(hex, e->pk) != 0) {
            snprintf(err, errlen, "the key of '%s' is not 64 hex digits", e->name);
            goto fail;
        }
        for (size_t i = 0; i < ring->n; i++) {
            if (strcmp(ring->entries[i].name, e->name) == 0) {
                snprintf(err, errlen, "'%s' is listed twice", e->name);
                goto fail;
            }
        }
        ring->n++;
        p += len;
        if (*p == ',')
            p++;
    }
    *out = ring;
    return 0;
fail:
    ag_free(ring);
    return AG_EINVAL;
}

void
ag_identity_keyring_free(struct ag_identity_keyring *ring)
{
    ag_free(ring);
}

size_t
ag_identity_keyring_count(const struct ag_identity_keyring *ring)
{
    return ring != NULL ? ring->n : 0;
}

void
ag_identity_keyring_stats(const struct ag_identity_keyring *ring, uint64_t *verified,
                          uint64_t *hits)
{
    *verified = ring != NULL ? ring->verified : 0;
    *hits = ring != NULL ? ring->hits : 0;
}

static const struct ring_entry *
ring_find(const struct ag_identity_keyring *ring, const char *name, size_t len)
{
    for (size_t i = 0; i < ring->n; i++) {
        if (strlen(ring->entries[i].name) == len && memcmp(ring->entries[i].name, name, len) == 0)
            return &ring->entries[i];
    }
    return NULL;
}

int
ag_identity_service_verify(struct ag_identity_keyring *ring, struct ag_str v, int64_t now,
                           struct ag_identity *out)
{
    _Static_assert(AG_IDENTITY_CACHE_SLOTS % 2 == 0, "two ways");
    if (ring == NULL || v.len < 3 + SERVICE_SIGHEX + 1 || v.len > SERVICE_MAXLEN ||
        memcmp(v.ptr, "s1;", 3) != 0)
        return AG_EAUTH;
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)v.ptr, v.len, ring->hash_key);
    uint64_t hv;
    memcpy(&hv, h, sizeof(hv));
    struct ring_slot *set = &ring->slots[2 * (hv % (AG_IDENTITY_CACHE_SLOTS / 2))];
    for (int w = 0; w < 2; w++) {
        struct ring_slot *slot = &set[w];
        if (slot->len != v.len || memcmp(slot->text, v.ptr, v.len) != 0)
            continue;
        if (slot->id.exp < now) {
            slot->len = 0; /* expired: forget it */
            return AG_EAUTH;
        }
        ring->hits++;
        *out = slot->id;
        return 0;
    }

    /* "s1;<name>;<exp>;<sig>" */
    size_t body = v.len - SERVICE_SIGHEX - 1;
    if (v.ptr[body] != ';')
        return AG_EAUTH;
    const char *name = v.ptr + 3;
    const char *semi = memchr(name, ';', body - 3);
    if (semi == NULL)
        return AG_EAUTH;
    size_t nlen = (size_t)(semi - name);
    int64_t exp;
    if (!is_name(name, nlen) ||
        ag_str_to_i64(ag_str_make(semi + 1, (size_t)(v.ptr + body - semi - 1)), 0, INT64_MAX,
                      &exp) != 0 ||
        exp < now)
        return AG_EAUTH;
    const struct ring_entry *e = ring_find(ring, name, nlen);
    if (e == NULL)
        return AG_EAUTH;
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen = 0;
    if (sodium_hex2bin(sig, sizeof(sig), v.ptr + body + 1, SERVICE_SIGHEX, NULL, &siglen, NULL) !=
            0 ||
        siglen != sizeof(sig))
        return AG_EAUTH;
    if (crypto_sign_verify_detached(sig, (const unsigned char *)v.ptr, body, e->pk) != 0)
        return AG_EAUTH;
    ring->verified++;
    memset(out, 0, sizeof(*out));
    memcpy(out->user_id, name, nlen);
    out->user_id[nlen] = '\0';
    out->roles = AG_IDENTITY_SERVICE;
    out->exp = exp;
    /* Into an empty way, else over the one that expires first. */
    struct ring_slot *slot = set[0].len == 0                  ? &set[0]
                             : set[1].len == 0                ? &set[1]
                             : set[0].id.exp <= set[1].id.exp ? &set[0]
                                                              : &set[1];
    slot->len = (uint16_t)v.len;
    memcpy(slot->text, v.ptr, v.len);
    slot->id = *out;
    return 0;
}

/* ---- A process's own identity ---- */

#define SELF_TTL_S    300 /* a signed service identity is valid this long... */
#define SELF_RESIGN_S 60  /* ...and re-signed once less than this is left */

int
ag_identity_self_init(struct ag_identity_self *self, const uint8_t seed[AG_IDENTITY_SEEDLEN],
                      const char *name)
{
    memset(self, 0, sizeof(*self));
    size_t n = name != NULL ? strlen(name) : 0;
    if (!is_name(name != NULL ? name : "", n))
        return AG_EINVAL;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, self->sk, seed);
    memcpy(self->name, name, n + 1);
    return 0;
}

void
ag_identity_self_wipe(struct ag_identity_self *self)
{
    sodium_memzero(self->sk, sizeof(self->sk));
}

const char *
ag_identity_self_header(struct ag_identity_self *self, int64_t now)
{
    if (self->exp - now < SELF_RESIGN_S) {
        if (service_sign_sk(self->sk, self->name, now + SELF_TTL_S, self->value) != 0)
            AG_BUG("service identity checked at init cannot be signed");
        self->exp = now + SELF_TTL_S;
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
