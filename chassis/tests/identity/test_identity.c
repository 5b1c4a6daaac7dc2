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

#include "agora/err.h"
#include "agora/identity.h"

static const char *KEYHEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

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

/* A service signs as itself with the service role, re-signing only when
 * less than a minute is left. */
static void
test_self(void **state)
{
    AG_UNUSED(state);
    uint8_t key[AG_IDENTITY_KEYLEN];
    assert_int_equal(ag_identity_key_parse(KEYHEX, key), 0);
    struct ag_identity_self self;
    assert_int_equal(ag_identity_self_init(&self, key, "bad name"), AG_EINVAL);
    assert_int_equal(ag_identity_self_init(&self, key, "orders"), 0);
    const char *h1 = ag_identity_self_header(&self, 1000);
    struct ag_identity id;
    assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(h1), 1000, &id), 0);
    assert_string_equal(id.user_id, "orders");
    assert_int_equal(id.roles, AG_IDENTITY_SERVICE);
    assert_int_equal(id.exp, 1300);
    char first[AG_IDENTITY_MAXLEN];
    snprintf(first, sizeof(first), "%s", h1);
    assert_string_equal(ag_identity_self_header(&self, 1200), first);
    const char *h3 = ag_identity_self_header(&self, 1250);
    assert_string_not_equal(h3, first);
    assert_int_equal(ag_identity_verify(key, ag_str_from_cstr(h3), 1500, &id), 0);
    /* Names never turn into the service role. */
    const char *names[] = { "service", "customer" };
    assert_int_equal(ag_identity_roles_from_names(names, 2), AG_IDENTITY_CUSTOMER);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_tamper),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_client_header),
        cmocka_unit_test(test_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
