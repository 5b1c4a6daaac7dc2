/* SPDX-License-Identifier: MIT */
/* Unit tests of the HTTP client's pure resilience logic (breaker.c through
 * http_client_int.h): retry budget accounting over its sliding window, the circuit breaker state machine, and round
 * robin with outlier ejection. No loop, no sockets: time is an argument. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/http_client_int.h"
#include "agora/err.h"

/* ---- Retry budget ---- */

static void
test_budget_ratio_and_min(void **state)
{
    AG_UNUSED(state);
    struct ag__budget b;
    ag__budget_init(&b, 0.2, 3);
    uint64_t t = 1000000;
    /* With no calls, only the minimum. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += ag__budget_try_retry(&b, t);
    assert_int_equal(allowed, 3);
    /* 50 calls give 10 more. */
    for (int i = 0; i < 50; i++)
        ag__budget_call(&b, t + 10);
    allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += ag__budget_try_retry(&b, t + 20);
    assert_int_equal(allowed, 10);
    uint32_t calls;
    uint32_t retries;
    ag__budget_window(&b, t + 20, &calls, &retries);
    assert_int_equal(calls, 50);
    assert_int_equal(retries, 13);
}

static void
test_budget_window_slides(void **state)
{
    AG_UNUSED(state);
    struct ag__budget b;
    ag__budget_init(&b, 0.5, 0);
    uint64_t t = 5 * AG__BUDGET_SLOT_MS;
    for (int i = 0; i < 10; i++)
        ag__budget_call(&b, t);
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += ag__budget_try_retry(&b, t);
    assert_int_equal(allowed, 5);
    /* Still inside the window 9 s later. */
    assert_false(ag__budget_try_retry(&b, t + 9 * AG__BUDGET_SLOT_MS));
    /* 10 s later the old second has left the window: calls and retries. */
    uint32_t calls;
    uint32_t retries;
    ag__budget_window(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS, &calls, &retries);
    assert_int_equal(calls, 0);
    assert_int_equal(retries, 0);
    assert_false(ag__budget_try_retry(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS));
    ag__budget_call(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS);
    ag__budget_call(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS);
    assert_true(ag__budget_try_retry(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS));
    assert_false(ag__budget_try_retry(&b, t + AG__BUDGET_SLOTS * AG__BUDGET_SLOT_MS));
}

/* Simulated outage: every attempt fails, each call wants 2 retries. The
 * attempts never exceed calls * (1 + ratio) + min per window. */
static void
test_budget_bounds_outage(void **state)
{
    AG_UNUSED(state);
    struct ag__budget b;
    ag__budget_init(&b, 0.2, 10);
    uint64_t t = 0;
    int calls = 0;
    int attempts = 0;
    for (int i = 0; i < 1000; i++, t += 5) { /* 200 calls/s over 5 s */
        ag__budget_call(&b, t);
        calls++;
        attempts++;
        for (int r = 0; r < 2 && ag__budget_try_retry(&b, t); r++)
            attempts++;
    }
    assert_true(attempts <= (int)(calls * 1.2) + 10);
    assert_true(attempts >= (int)(calls * 1.2) - 10);
}

/* ---- Breaker ---- */

static void
test_breaker_state_machine(void **state)
{
    AG_UNUSED(state);
    struct ag__breaker b;
    ag__breaker_init(&b, 3, 1000, 2);
    bool probe;
    uint64_t t = 10000;
    /* Closed: successes reset the count of consecutive failures. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ag__breaker_allow(&b, t, &probe), 0);
        assert_false(probe);
        assert_false(ag__breaker_record(&b, t, probe, false));
    }
    assert_false(ag__breaker_record(&b, t, false, true));
    assert_int_equal(b.failures, 0);
    assert_false(ag__breaker_record(&b, t, false, false));
    assert_false(ag__breaker_record(&b, t, false, false));
    assert_true(ag__breaker_record(&b, t, false, false));
    assert_int_equal(b.state, AG_BREAKER_OPEN);

    /* Open: fail fast until the cool-down ends; late outcomes ignored. */
    assert_int_equal(ag__breaker_allow(&b, t + 999, &probe), AG_EUNAVAIL);
    assert_false(ag__breaker_record(&b, t + 500, false, true));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_false(ag__breaker_tick(&b, t + 999));
    assert_true(ag__breaker_tick(&b, t + 1000));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);

    /* Half-open: two probes at once, a third is refused. */
    bool p1;
    bool p2;
    assert_int_equal(ag__breaker_allow(&b, t + 1000, &p1), 0);
    assert_int_equal(ag__breaker_allow(&b, t + 1000, &p2), 0);
    assert_true(p1 && p2);
    assert_int_equal(ag__breaker_allow(&b, t + 1000, &probe), AG_EUNAVAIL);
    /* A cancelled probe frees its slot. */
    ag__breaker_cancel(&b, p2);
    assert_int_equal(ag__breaker_allow(&b, t + 1000, &p2), 0);
    /* A non-probe outcome does not decide. */
    assert_false(ag__breaker_record(&b, t + 1001, false, true));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);
    /* A failed probe re-opens, with a fresh cool-down. */
    assert_true(ag__breaker_record(&b, t + 1100, p1, false));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_int_equal(b.opened_at_ms, t + 1100);
    assert_false(ag__breaker_record(&b, t + 1100, p2, true)); /* too late: open */
    assert_int_equal(ag__breaker_allow(&b, t + 2099, &probe), AG_EUNAVAIL);
    /* A successful probe closes. */
    assert_int_equal(ag__breaker_allow(&b, t + 2100, &probe), 0);
    assert_true(probe);
    assert_true(ag__breaker_record(&b, t + 2101, probe, true));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
    assert_int_equal(ag__breaker_allow(&b, t + 2102, &probe), 0);
    assert_false(probe);
}

/* ---- Round robin and ejection ---- */

struct pool {
    struct ag__hc_instance inst[4];
    struct ag__hc_instance *ptrs[4];
    size_t n;
};

static void
pool_init(struct pool *p, size_t n)
{
    memset(p, 0, sizeof(*p));
    static char *ids[] = { "a", "b", "c", "d" };
    for (size_t i = 0; i < n; i++) {
        p->inst[i].id = ids[i];
        p->ptrs[i] = &p->inst[i];
    }
    p->n = n;
}

static void
test_round_robin(void **state)
{
    AG_UNUSED(state);
    struct pool p;
    pool_init(&p, 3);
    size_t rr = 0;
    static const long want[] = { 0, 1, 2, 0, 1, 2 };
    for (size_t i = 0; i < AG_ARRAY_SIZE(want); i++)
        assert_int_equal(ag__lb_pick(p.ptrs, p.n, &rr, NULL, 0), want[i]);
    /* 'avoid' is skipped when another instance is eligible... */
    rr = 0;
    assert_int_equal(ag__lb_pick(p.ptrs, p.n, &rr, &p.inst[0], 0), 1);
    /* ...and used when it is the only one. */
    pool_init(&p, 1);
    rr = 0;
    assert_int_equal(ag__lb_pick(p.ptrs, p.n, &rr, &p.inst[0], 0), 0);
    assert_int_equal(ag__lb_pick(p.ptrs, 0, &rr, NULL, 0), -1);
}

static void
test_ejection_rules(void **state)
{
    AG_UNUSED(state);
    struct pool p;
    pool_init(&p, 4);
    struct ag__eject_policy pol = { 2, 100, 50 };
    uint64_t t = 1000;
    /* A success between failures resets the count. */
    assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, t));
    assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[0], false, &pol, t));
    assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, t));
    assert_true(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, t));
    assert_int_equal(ag__lb_ejected(p.ptrs, p.n, t), 1);
    /* Skipped by round robin while ejected. */
    size_t rr = 0;
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(ag__lb_pick(p.ptrs, p.n, &rr, NULL, t + 50), 0);
    /* A second one may go (2 of 4 = 50%), a third may not. */
    ag__lb_record(p.ptrs, p.n, &p.inst[1], true, &pol, t);
    assert_true(ag__lb_record(p.ptrs, p.n, &p.inst[1], true, &pol, t));
    ag__lb_record(p.ptrs, p.n, &p.inst[2], true, &pol, t);
    assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[2], true, &pol, t));
    assert_int_equal(ag__lb_ejected(p.ptrs, p.n, t), 2);
    /* Back after the ejection time, by itself. */
    assert_int_equal(ag__lb_ejected(p.ptrs, p.n, t + 99), 2);
    assert_int_equal(ag__lb_expire(p.ptrs, p.n, t + 100), 2);
    assert_int_equal(ag__lb_ejected(p.ptrs, p.n, t + 100), 0);
    /* Ejected again: twice as long, then 4x, 8x, capped at 8x. */
    uint64_t now = t + 100;
    uint64_t want[] = { 200, 400, 800, 800 };
    for (size_t k = 0; k < AG_ARRAY_SIZE(want); k++) {
        ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, now);
        assert_true(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, now));
        assert_int_equal(p.inst[0].ejected_until_ms - now, want[k]);
        now += want[k];
        assert_int_equal(ag__lb_expire(p.ptrs, p.n, now), 1);
    }
    /* Healthy for 8x the base time after coming back: the count resets. */
    ag__lb_record(p.ptrs, p.n, &p.inst[0], false, &pol, now + 800);
    assert_int_equal(p.inst[0].ejections, 0);
}

static void
test_ejection_keeps_one(void **state)
{
    AG_UNUSED(state);
    struct pool p;
    pool_init(&p, 2);
    struct ag__eject_policy pol = { 1, 100, 100 };
    assert_true(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, 0));
    /* 100% allowed, but one instance always stays eligible. */
    assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[1], true, &pol, 0));
    size_t rr = 0;
    assert_int_equal(ag__lb_pick(p.ptrs, p.n, &rr, &p.inst[1], 10), 1);
    /* A lone instance is never ejected. */
    pool_init(&p, 1);
    for (int i = 0; i < 5; i++)
        assert_false(ag__lb_record(p.ptrs, p.n, &p.inst[0], true, &pol, 0));
}

/* A refused connect ejects at once (the share limits still hold); a new
 * instance's registration half-opens an open breaker at once. */
static void
test_down_and_recovered(void **state)
{
    AG_UNUSED(state);
    struct pool p;
    pool_init(&p, 2);
    struct ag__eject_policy pol = { 3, 100, 50 };
    assert_true(ag__lb_down(p.ptrs, p.n, &p.inst[0], &pol, 10));
    assert_int_equal(ag__lb_ejected(p.ptrs, p.n, 10), 1);
    assert_false(ag__lb_down(p.ptrs, p.n, &p.inst[1], &pol, 10)); /* one stays eligible */
    pool_init(&p, 1);
    assert_false(ag__lb_down(p.ptrs, p.n, &p.inst[0], &pol, 10));

    struct ag__breaker b;
    ag__breaker_init(&b, 1, 5000, 1);
    bool probe;
    assert_false(ag__breaker_recovered(&b, 0)); /* closed: nothing to do */
    assert_int_equal(ag__breaker_allow(&b, 0, &probe), 0);
    assert_true(ag__breaker_record(&b, 0, probe, false));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_int_equal(ag__breaker_allow(&b, 10, &probe), AG_EUNAVAIL);
    assert_true(ag__breaker_recovered(&b, 10));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);
    assert_int_equal(ag__breaker_allow(&b, 10, &probe), 0);
    assert_true(probe);
    assert_true(ag__breaker_record(&b, 20, probe, true));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_ratio_and_min), cmocka_unit_test(test_budget_window_slides),
        cmocka_unit_test(test_budget_bounds_outage), cmocka_unit_test(test_breaker_state_machine),
        cmocka_unit_test(test_round_robin),          cmocka_unit_test(test_ejection_rules),
        cmocka_unit_test(test_ejection_keeps_one),   cmocka_unit_test(test_down_and_recovered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
