/* SPDX-License-Identifier: MIT */
/* Unit tests of the signed identity header: round trip, tampering, expiry,
 * wrong key, malformed values. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_tamper),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
