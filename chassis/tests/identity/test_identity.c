/* SPDX-License-Identifier: MIT */
/* Unit tests of the signed identity header: round trip, tampering, expiry,
 * wrong key, malformed values. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "agora/err.h"
#include "agora/identity.h"

#define KEYHEX_LITERAL "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
static const char *KEYHEX = KEYHEX_LITERAL;

static void
test_round_trip_and_tamper(void **state)
{
    AG_UNUSED(state);
    uint8_t key[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, key), 0);
    struct ag_identity id = { .user_id = "01a20025-5be8-7429-a410-b23e2c4e6063",
                              .roles = AG_IDENTITY_CUSTOMER | AG_IDENTITY_ADMIN,
                              .exp = 2000000000 };
    char v[AG_IDENTITY_MAXLEN];
    assert_int_equal(ag_identity_sign(key, &id, v), 0);
    struct ag_identity out;
    assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(v), 1900000000, &out), 0);
    assert_string_equal(out.user_id, id.user_id);
    assert_int_equal(out.roles, id.roles);
    assert_int_equal(out.exp, id.exp);

    /* Expired. */
    assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(v), 2000000001, &out), AG_EAUTH);
    /* Every single-byte change is rejected. */
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char t[AG_IDENTITY_MAXLEN];
        memcpy(t, v, n + 1);
        t[i] = t[i] == '1' ? '2' : '1';
        if (ag_identity_verify(key, ag_str_from_cstr(t), 0, &out) == 0)
            fail_msg("tampered byte %zu accepted: %s", i, t);
    }
    /* Wrong key. */
    uint8_t other[AG_IDENTITY_KEYLEN];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(ag_identity_verify(other, ag_str_from_cstr(v), 0, &out), AG_EAUTH);
}

static void
test_malformed(void **state)
{
    AG_UNUSED(state);
    uint8_t key[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, key), 0);
    static const char *const bad[] = { "", "v1", "v1;;;;", "v2;u;1;2;abcd", "garbage" };
    struct ag_identity out;
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
        assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(bad[i]), 0, &out), AG_EAUTH);
    struct ag_identity id = { .user_id = "bad;id", .roles = 1, .exp = 1 };
    char v[AG_IDENTITY_MAXLEN];
    assert_int_equal(ag_identity_sign(key, &id, v), AG_EINVAL);
    assert_int_equal(ag_identity_key_parse("abc", key), AG_EINVAL);
    assert_int_equal(ag_identity_key_parse(
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key),
                     AG_EINVAL);
    const char *names[] = { "admin", "nobody", "customer" };
    assert_int_equal(ag_identity_roles_from_names(names, 3),
                     AG_IDENTITY_ADMIN | AG_IDENTITY_CUSTOMER);
    const char *courier[] = { "customer", "courier" };
    assert_int_equal(ag_identity_roles_from_names(courier, 2),
                     AG_IDENTITY_CUSTOMER | AG_IDENTITY_COURIER);
}

/* The client header: round trip, every tampered byte, expiry, wrong key,
 * addresses the header cannot carry. */
static void
test_client_header(void **state)
{
    AG_UNUSED(state);
    uint8_t key[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, key), 0);
    char v[AG_IDENTITY_MAXLEN];
    char addr[AG_CLIENT_ADDRLEN];
    assert_int_equal(ag_identity_client_sign(key, "2001:db8::1", 2000000000, v), 0);
    assert_int_equal(ag_identity_client_verify(key, ag_str_from_cstr(v), 1900000000, addr), 0);
    assert_string_equal(addr, "2001:db8::1");
    assert_int_equal(ag_identity_client_verify(key, ag_str_from_cstr(v), 2000000001, addr),
                     AG_EAUTH);
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char t[AG_IDENTITY_MAXLEN];
        memcpy(t, v, n + 1);
        t[i] = t[i] == '1' ? '2' : '1';
        if (ag_identity_client_verify(key, ag_str_from_cstr(t), 0, addr) == 0)
            fail_msg("tampered byte %zu accepted: %s", i, t);
    }
    uint8_t other[AG_IDENTITY_KEYLEN];
    memcpy(other, key, sizeof(other));
    other[31] ^= 0x80;
    assert_int_equal(ag_identity_client_verify(other, ag_str_from_cstr(v), 0, addr), AG_EAUTH);
    /* An identity header is not a client header, and the reverse. */
    struct ag_identity id;
    assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    /* Only address characters. */
    assert_int_equal(ag_identity_client_sign(key, "1.2.3.4;roles", 1, v), AG_EINVAL);
    assert_int_equal(ag_identity_client_sign(key, "", 1, v), AG_EINVAL);
    char longaddr[AG_CLIENT_ADDRLEN + 1];
    memset(longaddr, '1', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_int_equal(ag_identity_client_sign(key, longaddr, 1, v), AG_EINVAL);
}

/* The ring of public keys of 'n' services under master 'm'. */
static struct ag_identity_keyring *
ring_of(const uint8_t m[AG_IDENTITY_KEYLEN], const char *const *names, size_t n)
{
    char table[2048] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t seed[AG_IDENTITY_SEEDLEN];
        uint8_t pk[AG_IDENTITY_PUBLEN];
        assert_int_equal(ag_identity_service_seed(m, names[i], seed), 0);
        ag_identity_service_public(seed, pk);
        len += (size_t)snprintf(table + len, sizeof(table) - len, "%s%s=", i ? "," : "", names[i]);
        for (size_t k = 0; k < sizeof(pk); k++)
            len += (size_t)snprintf(table + len, sizeof(table) - len, "%02x", pk[k]);
    }
    struct ag_identity_keyring *ring;
    char err[128];
    assert_int_equal(ag_identity_keyring_new(table, &ring, err, sizeof(err)), 0);
    assert_int_equal(ag_identity_keyring_count(ring), n);
    return ring;
}

/* A service signs as itself with its own key, re-signing only when less
 * than a minute is left; a verifier with the public keys accepts it. */
static void
test_self(void **state)
{
    AG_UNUSED(state);
    uint8_t master[AG_IDENTITY_KEYLEN];
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, master), 0);
    assert_int_equal(ag_identity_service_seed(master, "orders", seed), 0);
    struct ag_identity_self self;
    assert_int_equal(ag_identity_self_init(&self, seed, "bad name"), AG_EINVAL);
    assert_int_equal(ag_identity_self_init(&self, seed, "orders"), 0);
    const char *names[] = { "orders", "catalog", "agora" };
    struct ag_identity_keyring *ring = ring_of(master, names, 3);
    const char *h1 = ag_identity_self_header(&self, 1000);
    assert_true(strncmp(h1, "s1;orders;1300;", 15) == 0);
    struct ag_identity id;
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(h1), 1000, &id), 0);
    assert_string_equal(id.user_id, "orders");
    assert_int_equal(id.roles, AG_IDENTITY_SERVICE);
    assert_int_equal(id.exp, 1300);
    char first[AG_IDENTITY_MAXLEN];
    snprintf(first, sizeof(first), "%s", h1);
    assert_string_equal(ag_identity_self_header(&self, 1200), first);
    const char *h3 = ag_identity_self_header(&self, 1250);
    assert_string_not_equal(h3, first);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(h3), 1500, &id), 0);
    /* Names never turn into the service role. */
    const char *rn[] = { "service", "customer" };
    assert_int_equal(ag_identity_roles_from_names(rn, 2), AG_IDENTITY_CUSTOMER);
    ag_identity_self_wipe(&self);
    ag_identity_keyring_free(ring);
}

/* Derivation is deterministic, per name and per master. */
static void
test_service_derive(void **state)
{
    AG_UNUSED(state);
    uint8_t m1[AG_IDENTITY_KEYLEN];
    uint8_t m2[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, m1), 0);
    memcpy(m2, m1, sizeof(m2));
    m2[5] ^= 1;
    uint8_t a[AG_IDENTITY_SEEDLEN], b[AG_IDENTITY_SEEDLEN], c[AG_IDENTITY_SEEDLEN],
        d[AG_IDENTITY_SEEDLEN];
    assert_int_equal(ag_identity_service_seed(m1, "catalog", a), 0);
    assert_int_equal(ag_identity_service_seed(m1, "catalog", b), 0);
    assert_int_equal(ag_identity_service_seed(m1, "orders", c), 0);
    assert_int_equal(ag_identity_service_seed(m2, "catalog", d), 0);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    assert_memory_not_equal(a, d, sizeof(a));
    /* A known answer, computed with node's crypto as tests/lib/identity.mjs
     * does: the seed is HMAC-SHA-256(master, "agora-service-v1:catalog"),
     * and Ed25519 signatures are deterministic. */
    static const uint8_t want[] = { 0xfc, 0x90, 0x98, 0xa6, 0xd5, 0xf8, 0xcc, 0x70,
                                    0x94, 0xc9, 0xff, 0xc3, 0xbe, 0xe0, 0xc1, 0xb4,
                                    0xb2, 0x99, 0xf7, 0x06, 0xcb, 0x08, 0xc1, 0xc5,
                                    0x5d, 0x0f, 0x21, 0x3c, 0xb4, 0xd8, 0xf6, 0xcf };
    assert_memory_equal(a, want, sizeof(want));
    char v[AG_IDENTITY_MAXLEN];
    assert_int_equal(ag_identity_service_sign(a, "catalog", 2000, v), 0);
    assert_string_equal(v, "s1;catalog;2000;be65c43ae8703e1ceb2b5a72a6387a277127a5d7ee4eb9a8d0c511c"
                           "26abdd883e7a29510d68d4f96cbd0c104b3f7f366476bda5f08c594d288b8b06eeb7c1"
                           "e07");
    uint8_t pk[AG_IDENTITY_PUBLEN];
    ag_identity_service_public(a, pk);
    char pkhex[2 * AG_IDENTITY_PUBLEN + 1];
    sodium_bin2hex(pkhex, sizeof(pkhex), pk, sizeof(pk));
    assert_string_equal(pkhex, "314a84f998108e672ca210c281ff0fb6889051a31dce4d3ab1856e87a8322bbd");
    assert_int_equal(ag_identity_service_seed(m1, "", a), AG_EINVAL);
    assert_int_equal(ag_identity_service_seed(m1, "a;b", a), AG_EINVAL);
}

/* Sign and verify: tampering, expiry, unknown names, another service's
 * key, the HMAC form with the service role, malformed tables. */
static void
test_service_verify(void **state)
{
    AG_UNUSED(state);
    uint8_t master[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, master), 0);
    const char *names[] = { "catalog", "orders", "agora" };
    struct ag_identity_keyring *ring = ring_of(master, names, 3);
    uint8_t catalog[AG_IDENTITY_SEEDLEN];
    assert_int_equal(ag_identity_service_seed(master, "catalog", catalog), 0);
    char v[AG_IDENTITY_MAXLEN];
    struct ag_identity id;
    assert_int_equal(ag_identity_service_sign(catalog, "catalog", 2000, v), 0);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 1999, &id), 0);
    assert_string_equal(id.user_id, "catalog");
    /* Every single-byte change is rejected. */
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char t[AG_IDENTITY_MAXLEN];
        memcpy(t, v, n + 1);
        t[i] = t[i] == '1' ? '2' : '1';
        if (ag_identity_service_verify(ring, ag_str_from_cstr(t), 0, &id) == 0)
            fail_msg("tampered byte %zu accepted: %s", i, t);
    }
    /* Catalog's key cannot sign for orders, nor for the operator. */
    assert_int_equal(ag_identity_service_sign(catalog, "orders", 2000, v), 0);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    assert_int_equal(ag_identity_service_sign(catalog, "agora", 2000, v), 0);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    /* A name not in the ring is nobody, even self-consistently signed. */
    uint8_t rogue[AG_IDENTITY_SEEDLEN];
    assert_int_equal(ag_identity_service_seed(master, "rogue", rogue), 0);
    assert_int_equal(ag_identity_service_sign(rogue, "rogue", 2000, v), 0);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    /* The shared HMAC key cannot make a service identity: sign refuses,
     * and a hand-made one is refused by both verifiers. */
    struct ag_identity svc = { .user_id = "catalog", .roles = AG_IDENTITY_SERVICE, .exp = 2000 };
    assert_int_equal(ag_identity_sign(master, &svc, v), AG_EINVAL);
    svc.roles = AG_IDENTITY_ADMIN;
    assert_int_equal(ag_identity_sign(master, &svc, v), 0);
    char *semi = strchr(v + 3, ';');
    assert_non_null(semi);
    semi[1] = '6'; /* roles 2 -> 6: service | admin; re-MAC it as the key holder would */
    {
        char body[AG_IDENTITY_MAXLEN];
        char *last = strrchr(v, ';');
        size_t blen = (size_t)(last - v);
        memcpy(body, v, blen);
        body[blen] = '\0';
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256(mac, (const unsigned char *)body, blen, master);
        char hex[2 * sizeof(mac) + 1];
        sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
        memcpy(v, body, blen);
        v[blen] = ';';
        memcpy(v + blen + 1, hex, sizeof(hex));
    }
    assert_int_equal(ag_identity_verify(master, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 0, &id), AG_EAUTH);
    /* Malformed values. */
    static const char *const bad[] = { "", "s1", "s1;;;", "s1;catalog;1;zz", "s2;catalog;1;00" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
        assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(bad[i]), 0, &id),
                         AG_EAUTH);
    assert_int_equal(ag_identity_service_verify(NULL, ag_str_from_cstr("s1;x;1;00"), 0, &id),
                     AG_EAUTH);
    ag_identity_keyring_free(ring);

    /* Tables. */
    struct ag_identity_keyring *r2;
    char err[128];
    assert_int_equal(ag_identity_keyring_new("", &r2, err, sizeof(err)), 0);
    assert_int_equal(ag_identity_keyring_count(r2), 0);
    ag_identity_keyring_free(r2);
    static const char *const badtables[] = {
        "catalog",
        "catalog=12",
        "=00",
        "a b=" KEYHEX_LITERAL,
        "x=" KEYHEX_LITERAL ",x=" KEYHEX_LITERAL,
        "x=zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(badtables); i++) {
        if (ag_identity_keyring_new(badtables[i], &r2, err, sizeof(err)) != AG_EINVAL)
            fail_msg("table %zu accepted", i);
    }
}

/* The cache: a repeated header is one signature check; an expired one is
 * refused even when cached. */
static void
test_service_cache(void **state)
{
    AG_UNUSED(state);
    uint8_t master[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, master), 0);
    const char *names[] = { "bus" };
    struct ag_identity_keyring *ring = ring_of(master, names, 1);
    uint8_t seed[AG_IDENTITY_SEEDLEN];
    assert_int_equal(ag_identity_service_seed(master, "bus", seed), 0);
    char v[AG_IDENTITY_MAXLEN];
    assert_int_equal(ag_identity_service_sign(seed, "bus", 1000, v), 0);
    struct ag_identity id;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 900, &id), 0);
    uint64_t verified, hits;
    ag_identity_keyring_stats(ring, &verified, &hits);
    assert_int_equal(verified, 1);
    assert_int_equal(hits, 99);
    /* Exactly at exp still valid, one second later not, cached or not. */
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 1000, &id), 0);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 1001, &id), AG_EAUTH);
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(v), 1001, &id), AG_EAUTH);
    /* A forged header with the same prefix is not a cache hit. */
    char t[AG_IDENTITY_MAXLEN];
    snprintf(t, sizeof(t), "%s", v);
    t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
    assert_int_equal(ag_identity_service_verify(ring, ag_str_from_cstr(t), 900, &id), AG_EAUTH);
    ag_identity_keyring_free(ring);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_tamper), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_client_header),         cmocka_unit_test(test_self),
        cmocka_unit_test(test_service_derive),        cmocka_unit_test(test_service_verify),
        cmocka_unit_test(test_service_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
