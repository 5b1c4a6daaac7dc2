/* SPDX-License-Identifier: MIT */
/* Unit tests of the users domain: e-mail normalisation, the password and
 * name policies, body validation, refresh-token verdicts, key rotation
 * arithmetic, cursors and the sliding-window throttle. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora/identity.h"
#include "agora/mem.h"
#include "agora_test.h"
#include "domain.h"

/* ---- E-mail ---- */

static void
test_email_normalize_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *in;
        const char *out; /* NULL: rejected */
    } cases[] = {
        { "ada@example.com", "ada@example.com" },
        { "  Ada.Lovelace@Example.COM\t", "ada.lovelace@example.com" },
        { "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk" },
        { "o'brien@example.ie", "o'brien@example.ie" },
        { "x@x-y.io", "x@x-y.io" },
        { "JOSÉ@exämple.de", "josÉ@exämple.de" }, /* only ASCII is lower-cased */
        { "", NULL },
        { "   ", NULL },
        { "ada", NULL },
        { "ada@", NULL },
        { "@example.com", NULL },
        { "ada@example", NULL }, /* one label */
        { "ada@@example.com", NULL },
        { "ada@b@example.com", NULL },
        { "ada lovelace@example.com", NULL },
        { ".ada@example.com", NULL },
        { "ada.@example.com", NULL },
        { "a..da@example.com", NULL },
        { "ada@example..com", NULL },
        { "ada@.example.com", NULL },
        { "ada@example.com.", NULL },
        { "ada@-example.com", NULL },
        { "ada@example-.com", NULL },
        { "ada@exa_mple.com", NULL },
        { "ada@[127.0.0.1]", NULL },
        { "\"ada\"@example.com", NULL },
        { "ada(comment)@example.com", NULL },
        { "ada@example.com\x01", NULL },
        { "ada\x7f@example.com", NULL },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char out[USERS_EMAIL_MAX + 1];
        int rc = users_email_normalize(cases[i].in, out);
        if (cases[i].out == NULL) {
            if (rc != AG_EINVAL)
                fail_msg("'%s' accepted as '%s'", cases[i].in, out);
        } else {
            if (rc != 0)
                fail_msg("'%s' rejected", cases[i].in);
            assert_string_equal(out, cases[i].out);
        }
    }
    assert_int_equal(users_email_normalize(NULL, (char[USERS_EMAIL_MAX + 1]){ 0 }), AG_EINVAL);
}

static void
test_email_lengths(void **state)
{
    AG_UNUSED(state);
    char out[USERS_EMAIL_MAX + 1];
    char in[400];
    /* Local part: 64 bytes fine, 65 not. */
    memset(in, 'a', 64);
    snprintf(in + 64, sizeof(in) - 64, "@example.com");
    assert_int_equal(users_email_normalize(in, out), 0);
    memset(in, 'a', 65);
    snprintf(in + 65, sizeof(in) - 65, "@example.com");
    assert_int_equal(users_email_normalize(in, out), AG_EINVAL);
    /* Whole address: 254 bytes fine, 255 not (labels of 63). */
    char domain[300];
    snprintf(domain, sizeof(domain), "%.63s.%.63s.%.63s.%.59s",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
             "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
             "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    snprintf(in, sizeof(in), "aa@%s", domain);
    assert_int_equal(strlen(in), 254);
    assert_int_equal(users_email_normalize(in, out), 0);
    snprintf(in, sizeof(in), "aaa@%s", domain);
    assert_int_equal(users_email_normalize(in, out), AG_EINVAL);
    /* Surrounding spaces do not count. */
    snprintf(in, sizeof(in), "   aa@%s   ", domain);
    assert_int_equal(users_email_normalize(in, out), 0);
    /* A label of 64 bytes. */
    snprintf(in, sizeof(in),
             "a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com");
    assert_int_equal(users_email_normalize(in, out), AG_EINVAL);
}

/* ---- Passwords and names ---- */

static void
test_password_policy_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *pw;
        const char *email;
        enum users_password_problem want;
    } cases[] = {
        { "correct horse battery", "ada@example.com", USERS_PASSWORD_OK },
        { "abcdefghijkl", NULL, USERS_PASSWORD_OK },       /* 12 */
        { "abcdefghijk", NULL, USERS_PASSWORD_TOO_SHORT }, /* 11 */
        { "", NULL, USERS_PASSWORD_TOO_SHORT },
        /* 12 code points, 24 bytes: the rule counts characters. */
        { "ééééééééééée", NULL, USERS_PASSWORD_OK },
        { "éééééééééé", NULL, USERS_PASSWORD_TOO_SHORT }, /* 10 cp, 20 bytes */
        { "aaaaaaaaaaaaaaaa", NULL, USERS_PASSWORD_REPEATED },
        { "😀😀😀😀😀😀😀😀😀😀😀😀", NULL, USERS_PASSWORD_REPEATED },
        { "aaaaaaaaaaaaaaab", NULL, USERS_PASSWORD_OK },
        { "ada@example.com", "ada@example.com", USERS_PASSWORD_IS_EMAIL },
        { "  ADA@Example.com ", "ada@example.com", USERS_PASSWORD_IS_EMAIL },
        { "ada@example.com!", "ada@example.com", USERS_PASSWORD_OK },
        { "ada@example.com", NULL, USERS_PASSWORD_OK },
        { "\xff\xfe invalid utf8 bytes", NULL, USERS_PASSWORD_ENCODING },
        { "\xed\xa0\x80 surrogate in utf8", NULL, USERS_PASSWORD_ENCODING },
        { "\xc0\xaf overlong encoding!", NULL, USERS_PASSWORD_ENCODING },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        enum users_password_problem got = users_password_check(cases[i].pw, cases[i].email);
        if (got != cases[i].want)
            fail_msg("case %zu '%s': got %s, want %s", i, cases[i].pw,
                     users_password_problem_code(got), users_password_problem_code(cases[i].want));
    }
    /* 128 code points fine, 129 not; multibyte counted as one. */
    char pw[600];
    size_t n = 0;
    for (int i = 0; i < 128; i++) {
        const char *c = i % 2 ? "ü" : "x";
        memcpy(pw + n, c, strlen(c));
        n += strlen(c);
    }
    pw[n] = '\0';
    assert_int_equal(users_password_check(pw, NULL), USERS_PASSWORD_OK);
    memcpy(pw + n, "y", 2);
    assert_int_equal(users_password_check(pw, NULL), USERS_PASSWORD_TOO_LONG);
    assert_int_equal(users_password_check(NULL, NULL), USERS_PASSWORD_ENCODING);
    assert_string_equal(users_password_problem_code(USERS_PASSWORD_TOO_SHORT), "too_short");
    assert_string_equal(users_password_problem_code(USERS_PASSWORD_IS_EMAIL), "is_email");
}

static void
test_name_normalize(void **state)
{
    AG_UNUSED(state);
    char out[USERS_NAME_MAX_BYTES + 1];
    assert_int_equal(users_name_normalize("  Ada Lovelace ", out), 0);
    assert_string_equal(out, "Ada Lovelace");
    assert_int_equal(users_name_normalize("Zoë 王", out), 0);
    assert_int_equal(users_name_normalize("", out), AG_EINVAL);
    assert_int_equal(users_name_normalize("   ", out), AG_EINVAL);
    assert_int_equal(users_name_normalize("bell\a", out), AG_EINVAL);
    assert_int_equal(users_name_normalize("line\nbreak", out), AG_EINVAL);
    assert_int_equal(users_name_normalize("c1\xc2\x85", out), AG_EINVAL); /* U+0085 */
    char name[500];
    memset(name, 'n', 100);
    name[100] = '\0';
    assert_int_equal(users_name_normalize(name, out), 0);
    memset(name, 'n', 101);
    name[101] = '\0';
    assert_int_equal(users_name_normalize(name, out), AG_EINVAL);
    /* 100 four-byte characters: 400 bytes, still 100 characters. */
    for (int i = 0; i < 100; i++)
        memcpy(name + 4 * i, "😀", 4);
    name[400] = '\0';
    assert_int_equal(users_name_normalize(name, out), 0);
}

/* ---- Bodies ---- */

static void
test_register_validation(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *errors; /* "field:code,..." */
    } cases[] = {
        { "{\"email\":\" Ada@Example.com\",\"password\":\"correct horse "
          "battery\",\"name\":\"Ada\"}",
          "" },
        { "{}", "email:required,password:required,name:required" },
        { "{\"email\":\"nope\",\"password\":\"correct horse battery\",\"name\":\"Ada\"}",
          "email:invalid" },
        { "{\"email\":\"a@b.co\",\"password\":\"short\",\"name\":\"Ada\"}", "password:too_short" },
        { "{\"email\":\"a@b.co\",\"password\":\"zzzzzzzzzzzzzzzz\",\"name\":\"Ada\"}",
          "password:repeated" },
        { "{\"email\":\"abcdefghij@b.co\",\"password\":\"ABCDEFGHIJ@b.co\",\"name\":\"Ada\"}",
          "password:is_email" },
        { "{\"email\":\"a@b.co\",\"password\":\"correct horse battery\",\"name\":\"\"}",
          "name:invalid" },
        { "{\"email\":\"a@b.co\",\"password\":\"correct horse battery\",\"name\":\"A\","
          "\"roles\":[\"admin\"]}",
          "roles:unknown" },
        { "{\"email\":7,\"password\":null,\"name\":\"A\"}", "email:type,password:type" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        json_t *body = ag_test_json(cases[i].body);
        struct ag_valid v;
        ag_valid_init(&v);
        struct users_register_req r;
        bool ok = users_register_from_json(&v, body, &r);
        char got[512];
        ag_test_error_codes(&v, got, sizeof(got));
        if (strcmp(got, cases[i].errors) != 0)
            fail_msg("case %zu %s: errors '%s', want '%s'", i, cases[i].body, got, cases[i].errors);
        assert_int_equal(ok, cases[i].errors[0] == '\0');
        if (ok && i == 0) {
            assert_string_equal(r.email, "ada@example.com");
            assert_string_equal(r.name, "Ada");
        }
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_login_and_patch_validation(void **state)
{
    AG_UNUSED(state);
    struct ag_valid v;
    char got[512];
    struct users_login_req l;

    json_t *b = ag_test_json("{\"email\":\"x\",\"password\":\"y\"}");
    ag_valid_init(&v);
    assert_true(users_login_from_json(&v, b, &l)); /* no policy at login */
    ag_valid_release(&v);
    json_decref(b);

    b = ag_test_json("{\"email\":\"x\",\"password\":\"y\",\"otp\":1}");
    ag_valid_init(&v);
    assert_false(users_login_from_json(&v, b, &l));
    ag_test_error_codes(&v, got, sizeof(got));
    assert_string_equal(got, "otp:unknown");
    ag_valid_release(&v);
    json_decref(b);

    struct users_patch_req p;
    static const struct {
        const char *body;
        const char *errors;
    } cases[] = {
        { "{}", "" },
        { "{\"name\":\" New Name \"}", "" },
        { "{\"password\":\"a new good password\",\"current_password\":\"old one\"}", "" },
        { "{\"password\":\"a new good password\"}", "current_password:required" },
        { "{\"password\":\"short\",\"current_password\":\"x\"}", "password:too_short" },
        { "{\"password\":\"ada@example.com\",\"current_password\":\"x\"}", "password:is_email" },
        { "{\"name\":\"\"}", "name:invalid" },
        { "{\"email\":\"other@example.com\"}", "email:unknown" },
        { "{\"password\":null}", "password:type" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        b = ag_test_json(cases[i].body);
        ag_valid_init(&v);
        bool ok = users_patch_from_json(&v, b, "ada@example.com", &p);
        ag_test_error_codes(&v, got, sizeof(got));
        if (strcmp(got, cases[i].errors) != 0)
            fail_msg("case %zu %s: errors '%s', want '%s'", i, cases[i].body, got, cases[i].errors);
        assert_int_equal(ok, cases[i].errors[0] == '\0');
        if (i == 1) {
            assert_true(p.has_name);
            assert_string_equal(p.name, "New Name");
        }
        if (i == 2) {
            assert_string_equal(p.password, "a new good password");
            assert_string_equal(p.current_password, "old one");
        }
        ag_valid_release(&v);
        json_decref(b);
    }
}

static void
test_account_json(void **state)
{
    AG_UNUSED(state);
    struct users_account a = {
        .id = "01a20025-5be8-7429-a410-b23e2c4e6063",
        .email = "ada@example.com",
        .name = "Ada",
        .admin = true,
        .created_at = "2026-11-21T21:48:01.123Z",
        .updated_at = "2026-11-21T21:48:01.123Z",
    };
    json_t *j = users_account_to_json(&a);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"created_at\":\"2026-11-21T21:48:01.123Z\",\"disabled\":false,"
                           "\"email\":\"ada@example.com\",\"id\":"
                           "\"01a20025-5be8-7429-a410-b23e2c4e6063\",\"name\":\"Ada\",\"roles\":["
                           "\"customer\",\"admin\"],\"updated_at\":\"2026-11-21T21:48:01.123Z\"}");
    ag_free(s);
    json_decref(j);
    assert_int_equal(users_account_roles(&a), AG_IDENTITY_CUSTOMER | AG_IDENTITY_ADMIN);
    a.admin = false;
    assert_int_equal(users_account_roles(&a), AG_IDENTITY_CUSTOMER);
}

/* ---- Refresh tokens ---- */

static void
test_refresh_verdicts(void **state)
{
    AG_UNUSED(state);
    static const struct {
        struct users_refresh_state s;
        int64_t now;
        enum users_refresh_verdict want;
    } cases[] = {
        { { .found = false }, 0, USERS_REFRESH_UNKNOWN },
        { { .found = true, .expires_at_ms = 1000 }, 999, USERS_REFRESH_OK },
        { { .found = true, .expires_at_ms = 1000 }, 1000, USERS_REFRESH_EXPIRED },
        { { .found = true, .spent = true, .expires_at_ms = 1000 }, 10, USERS_REFRESH_REUSED },
        /* A spent token is reuse even when expired. */
        { { .found = true, .spent = true, .expires_at_ms = 1000 }, 5000, USERS_REFRESH_REUSED },
        /* Once the family is revoked, nothing more to do. */
        { { .found = true, .spent = true, .family_revoked = true, .expires_at_ms = 1000 },
          10,
          USERS_REFRESH_REVOKED },
        { { .found = true, .family_revoked = true, .expires_at_ms = 1000 },
          10,
          USERS_REFRESH_REVOKED },
        { { .found = true, .user_disabled = true, .expires_at_ms = 1000 },
          10,
          USERS_REFRESH_DISABLED },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++)
        assert_int_equal(users_refresh_judge(&cases[i].s, cases[i].now), cases[i].want);

    assert_true(users_refresh_token_is_wellformed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234"));
    assert_false(users_refresh_token_is_wellformed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123"));
    assert_false(users_refresh_token_is_wellformed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_012345"));
    assert_false(users_refresh_token_is_wellformed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ+/01234"));
    assert_false(users_refresh_token_is_wellformed(NULL));
}

/* ---- Keys ---- */

static void
test_key_rotation_arithmetic(void **state)
{
    AG_UNUSED(state);
    const int64_t day = 86400000;
    assert_false(users_key_rotation_due(0, day - 1, day));
    assert_true(users_key_rotation_due(0, day, day));
    assert_false(users_key_rotation_due(5000, 0, day)); /* clock stepped back */
    assert_int_equal(users_key_drop_at(1000, 900000, 60000), 961000);
    /* Defaults: the active key and the previous one. */
    assert_int_equal(users_keys_max_published(day, 900000, 60000), 2);
    /* Rotating every second with 3 s tokens and no leeway: 4 keys. */
    assert_int_equal(users_keys_max_published(1000, 3000, 0), 4);
    assert_int_equal(users_keys_max_published(1000, 2500, 0), 4);
    assert_int_equal(users_keys_max_published(60000, 900000, 60000), 17);
}

/* ---- Cursors ---- */

static void
test_cursor_round_trip(void **state)
{
    AG_UNUSED(state);
    const char *id = "01a20025-5be8-7429-a410-b23e2c4e6063";
    char enc[USERS_CURSOR_MAX];
    users_cursor_encode(id, enc);
    char back[AG_UUID_STRLEN + 1];
    assert_int_equal(users_cursor_decode(enc, back), 0);
    assert_string_equal(back, id);
    const char *const bad[] = { "", "!!", "bm90IGEgdXVpZA", "AAAA", enc + 1 };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
        assert_int_equal(users_cursor_decode(bad[i], back), AG_EINVAL);
}

/* ---- Throttle ---- */

/* Backoff mode: free events up to the limit, then a wait that doubles
 * from the newest event, capped; forgotten with the window. */
static void
test_throttle_growing_delay(void **state)
{
    AG_UNUSED(state);
    struct users_throttle_config cfg = {
        .limit = 3,
        .window_ms = 3600000,
        .seed = 7,
        .backoff_base_ms = 1000,
        .backoff_max_ms = 8000,
    };
    struct users_throttle *t = users_throttle_new(&cfg);
    const char *k = "a@example.com\n192.0.2.1";
    int64_t now = 1000000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(users_throttle_wait(t, k, now), 0);
        users_throttle_hit(t, k, now);
    }
    assert_int_equal(users_throttle_wait(t, k, now), 1000);
    assert_int_equal(users_throttle_wait(t, k, now + 400), 600);
    now += 1000;
    assert_int_equal(users_throttle_wait(t, k, now), 0);
    users_throttle_hit(t, k, now);
    assert_int_equal(users_throttle_wait(t, k, now), 2000);
    for (int i = 0; i < 6; i++) {
        now += 10000;
        users_throttle_hit(t, k, now);
    }
    assert_int_equal(users_throttle_wait(t, k, now), 8000); /* capped */
    /* The ring keeps only what the cap can use: 3 free + 3 doublings + 1. */
    assert_int_equal(users_throttle_count(t, k, now), 7);
    /* Another key is untouched; the window forgets everything. */
    assert_int_equal(users_throttle_wait(t, "b@example.com\n192.0.2.1", now), 0);
    assert_int_equal(users_throttle_wait(t, k, now + 3600000), 0);
    assert_int_equal(users_throttle_count(t, k, now + 3600000), 0);
    users_throttle_free(t);
}

static void
test_throttle_account_window(void **state)
{
    AG_UNUSED(state);
    const int64_t W = 15 * 60 * 1000; /* 5 failures in 15 minutes */
    struct users_throttle_config cfg = { .limit = 5, .window_ms = W, .seed = 42 };
    struct users_throttle *t = users_throttle_new(&cfg);
    const char *k = "ada@example.com";

    assert_int_equal(users_throttle_wait(t, k, 0), 0);
    for (int i = 0; i < 4; i++) {
        users_throttle_hit(t, k, 1000 * i);
        assert_int_equal(users_throttle_wait(t, k, 1000 * i), 0);
    }
    users_throttle_hit(t, k, 4000); /* the fifth failure */
    /* Blocked until the first failure leaves the window. */
    assert_int_equal(users_throttle_wait(t, k, 4000), W - 4000);
    assert_int_equal(users_throttle_wait(t, k, W - 1), 1);
    assert_int_equal(users_throttle_wait(t, k, W), 0);
    /* One slot free, then blocked again until the second one leaves. */
    users_throttle_hit(t, k, W);
    assert_int_equal(users_throttle_wait(t, k, W), 1000);
    assert_int_equal(users_throttle_wait(t, k, W + 1000), 0);

    /* Other keys are independent. */
    assert_int_equal(users_throttle_wait(t, "bob@example.com", W), 0);

    /* A success clears the account. */
    users_throttle_clear(t, k);
    assert_int_equal(users_throttle_wait(t, k, W), 0);
    assert_int_equal(users_throttle_size(t), 0);

    /* Old events are forgotten: an idle key leaves the table. */
    users_throttle_hit(t, k, 0);
    assert_int_equal(users_throttle_size(t), 1);
    assert_int_equal(users_throttle_wait(t, k, W + 1), 0);
    assert_int_equal(users_throttle_size(t), 0);
    users_throttle_free(t);
}

static void
test_throttle_client_rate(void **state)
{
    AG_UNUSED(state);
    /* 30 attempts per minute, hits far past the limit keep the newest. */
    struct users_throttle_config cfg = { .limit = 30, .window_ms = 60000, .seed = 7 };
    struct users_throttle *t = users_throttle_new(&cfg);
    int admitted = 0;
    for (int64_t now = 0; now < 60000; now += 100) {
        if (users_throttle_wait(t, "10.0.0.1", now) == 0) {
            users_throttle_hit(t, "10.0.0.1", now);
            admitted++;
        }
    }
    assert_int_equal(admitted, 30);
    /* The first 30 came at 0..2900 ms: the window reopens one by one. */
    assert_int_equal(users_throttle_wait(t, "10.0.0.1", 60000), 0);
    users_throttle_hit(t, "10.0.0.1", 60000);
    assert_int_equal(users_throttle_wait(t, "10.0.0.1", 60000), 100);
    /* Rings overwrite their oldest slot when hit past the limit. */
    for (int i = 0; i < 100; i++)
        users_throttle_hit(t, "10.0.0.2", 1000 + i);
    assert_int_equal(users_throttle_wait(t, "10.0.0.2", 1099), 60000 - 29);
    users_throttle_free(t);
}

static void
test_throttle_memory_bound(void **state)
{
    AG_UNUSED(state);
    struct users_throttle_config cfg = { .limit = 2, .window_ms = 1000, .max_keys = 3 };
    struct users_throttle *t = users_throttle_new(&cfg);
    users_throttle_hit(t, "a", 0);
    users_throttle_hit(t, "a", 1);
    users_throttle_hit(t, "b", 2);
    users_throttle_hit(t, "c", 3);
    assert_int_equal(users_throttle_size(t), 3);
    users_throttle_hit(t, "b", 4); /* b is now the most recent; a the least */
    users_throttle_hit(t, "d", 5); /* evicts a */
    assert_int_equal(users_throttle_size(t), 3);
    assert_int_equal(users_throttle_wait(t, "a", 6), 0);
    assert_int_equal(users_throttle_wait(t, "b", 6), 996);
    /* Many keys never exceed the bound. */
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        users_throttle_hit(t, k, 10);
    }
    assert_int_equal(users_throttle_size(t), 3);
    users_throttle_free(t);
    users_throttle_free(NULL);
}

static void
test_retry_after(void **state)
{
    AG_UNUSED(state);
    assert_int_equal(users_retry_after_seconds(0), 1);
    assert_int_equal(users_retry_after_seconds(1), 1);
    assert_int_equal(users_retry_after_seconds(1000), 1);
    assert_int_equal(users_retry_after_seconds(1001), 2);
    assert_int_equal(users_retry_after_seconds(900000), 900);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_normalize_table),
        cmocka_unit_test(test_email_lengths),
        cmocka_unit_test(test_password_policy_table),
        cmocka_unit_test(test_name_normalize),
        cmocka_unit_test(test_register_validation),
        cmocka_unit_test(test_login_and_patch_validation),
        cmocka_unit_test(test_account_json),
        cmocka_unit_test(test_refresh_verdicts),
        cmocka_unit_test(test_key_rotation_arithmetic),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_throttle_account_window),
        cmocka_unit_test(test_throttle_growing_delay),
        cmocka_unit_test(test_throttle_client_rate),
        cmocka_unit_test(test_throttle_memory_bound),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
