/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's deny list of revoked access tokens: the user
 * cut-off (tokens issued at or before it refused, later ones not), the
 * session entry, expiry and the sweep (an entry goes once every token it
 * can match has expired, leeway included), and the cap: a session folds
 * into its user's entry, or a global cut-off refuses every token issued up
 * to then; a revocation is never forgotten. */
#include "agora/base.h"

#include <stdio.h>

#include "agora/time.h"
#include "agora_test.h"
#include "gateway.h"

#define U1 "01944f71-1a80-7001-8000-0a9000000001"
#define U2 "01944f71-1a80-7001-8000-0a9000000002"
#define S1 "01944f72-0000-7002-8000-0a9000000001"
#define S2 "01944f72-0000-7002-8000-0a9000000002"

static int64_t
now_s(void)
{
    return ag_time_unix_ms() / 1000;
}

static void
test_user_cutoff_and_session(void **state)
{
    AG_UNUSED(state);
    struct gw_deny *d = gw_deny_new(100, 30);
    int64_t now = now_s();
    assert_int_equal(gw_deny_check(d, U1, S1, now - 5, now), GW_DENY_NONE);
    /* Disable or password change at 'now': earlier tokens refused, later
     * ones (a login after the cut-off) not, other users untouched. */
    assert_int_equal(gw_deny_add(d, U1, NULL, now, now + 900), GW_DENY_ADDED);
    assert_int_equal(gw_deny_check(d, U1, S1, now - 5, now), GW_DENY_USER);
    assert_int_equal(gw_deny_check(d, U1, "", now, now), GW_DENY_USER);
    assert_int_equal(gw_deny_check(d, U1, S1, now + 1, now), GW_DENY_NONE);
    assert_int_equal(gw_deny_check(d, U2, S1, now - 5, now), GW_DENY_NONE);
    /* A second, earlier revocation of the same user never lowers the
     * cut-off (events may arrive out of order, or twice). */
    assert_int_equal(gw_deny_add(d, U1, NULL, now - 100, now + 800), GW_DENY_ADDED);
    assert_int_equal(gw_deny_check(d, U1, NULL, now, now), GW_DENY_USER);
    /* Logout of S2: its tokens refused whatever their iat, S1's not. */
    assert_int_equal(gw_deny_add(d, U2, S2, now, now + 900), GW_DENY_ADDED);
    assert_int_equal(gw_deny_check(d, U2, S2, now + 1, now), GW_DENY_SESSION);
    assert_int_equal(gw_deny_check(d, U2, S1, now, now), GW_DENY_NONE);
    assert_int_equal(gw_deny_check(d, U2, NULL, now, now), GW_DENY_NONE);
    struct gw_deny_stats st;
    gw_deny_stats(d, &st);
    assert_int_equal(st.users, 1);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.overflows, 0);
    gw_deny_free(d);
}

static void
test_entries_expire_with_their_tokens(void **state)
{
    AG_UNUSED(state);
    struct gw_deny *d = gw_deny_new(100, 30);
    int64_t now = now_s();
    /* Already past its lifetime and the leeway: not even held. */
    assert_int_equal(gw_deny_add(d, U1, S1, now - 1000, now - 31), GW_DENY_IGNORED);
    assert_int_equal(gw_deny_add(d, NULL, S1, now, now + 10), GW_DENY_IGNORED);
    /* Within the leeway after its tokens' exp it still refuses (the
     * gateway accepts tokens that long), and goes after it. */
    assert_int_equal(gw_deny_add(d, U1, S1, now - 600, now - 10), GW_DENY_ADDED);
    assert_int_equal(gw_deny_add(d, U2, NULL, now, now + 60), GW_DENY_ADDED);
    assert_int_equal(gw_deny_check(d, U1, S1, now - 600, now), GW_DENY_SESSION);
    gw_deny_sweep(d, now);
    struct gw_deny_stats st;
    gw_deny_stats(d, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(gw_deny_check(d, U1, S1, now - 600, now + 21), GW_DENY_NONE);
    gw_deny_sweep(d, now + 21);
    gw_deny_stats(d, &st);
    assert_int_equal(st.sessions, 0);
    assert_int_equal(st.users, 1);
    gw_deny_sweep(d, now + 91);
    gw_deny_stats(d, &st);
    assert_int_equal(st.users, 0);
    gw_deny_free(d);
}

static void
test_cap_never_forgets(void **state)
{
    AG_UNUSED(state);
    struct gw_deny *d = gw_deny_new(3, 30);
    int64_t now = now_s();
    assert_int_equal(gw_deny_add(d, U1, NULL, now - 10, now + 900), GW_DENY_ADDED);
    assert_int_equal(gw_deny_add(d, U1, S1, now - 10, now + 900), GW_DENY_ADDED);
    assert_int_equal(gw_deny_add(d, U2, S2, now - 10, now + 900), GW_DENY_ADDED);
    /* Full. Re-adding a held entry still works. */
    assert_int_equal(gw_deny_add(d, U2, S2, now - 5, now + 900), GW_DENY_ADDED);
    /* A new session of U1 folds into U1's entry: every token of U1 issued
     * up to the revocation is refused (fail closed for that user). */
    assert_int_equal(gw_deny_add(d, U1, S2 "x", now, now + 950), GW_DENY_MERGED);
    assert_int_equal(gw_deny_check(d, U1, "other", now, now), GW_DENY_USER);
    assert_int_equal(gw_deny_check(d, U1, "other", now + 1, now), GW_DENY_NONE);
    struct gw_deny_stats st;
    gw_deny_stats(d, &st);
    assert_int_equal(st.users + st.sessions, 3);
    assert_int_equal(st.overflows, 1);
    /* A new user with no entry: every token issued up to now is refused,
     * the entries it covers go, and nothing revoked before is let in. */
    char u3[64];
    snprintf(u3, sizeof(u3), "%s", "01944f71-1a80-7001-8000-0a9000000003");
    assert_int_equal(gw_deny_add(d, u3, NULL, now, now + 900), GW_DENY_GLOBAL);
    gw_deny_stats(d, &st);
    assert_int_equal(st.users + st.sessions, 0);
    assert_int_equal(st.overflows, 2);
    assert_int_equal(st.global_before, now);
    assert_int_equal(gw_deny_check(d, u3, NULL, now, now), GW_DENY_ALL);
    assert_int_equal(gw_deny_check(d, U2, S2, now - 10, now), GW_DENY_ALL);
    assert_int_equal(gw_deny_check(d, U1, S1, now, now), GW_DENY_ALL);
    assert_int_equal(gw_deny_check(d, U2, "fresh", now + 1, now), GW_DENY_NONE);
    /* Room again: new revocations are held one by one. */
    assert_int_equal(gw_deny_add(d, U2, S1, now + 1, now + 901), GW_DENY_ADDED);
    assert_int_equal(gw_deny_check(d, U2, S1, now + 2, now), GW_DENY_SESSION);
    /* The global cut-off ends once every token it covers has expired. */
    gw_deny_sweep(d, now + 951 + 31);
    gw_deny_stats(d, &st);
    assert_int_equal(st.global_before, 0);
    gw_deny_free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_cutoff_and_session),
        cmocka_unit_test(test_entries_expire_with_their_tokens),
        cmocka_unit_test(test_cap_never_forgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
