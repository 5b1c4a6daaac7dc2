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

static struct ag__breaker_config
bcfg(uint32_t min_calls, uint32_t failure_rate, uint64_t slow_ms, uint32_t slow_rate,
     uint32_t probes)
{
    return (struct ag__breaker_config){ .window_ms = 10000,
                                        .min_calls = min_calls,
                                        .failure_rate = failure_rate,
                                        .slow_ms = slow_ms,
                                        .slow_rate = slow_rate,
                                        .open_ms = 1000,
                                        .max_probes = probes };
}

/* Closed: nothing opens before min_calls; then a failure rate at the
 * threshold does, whatever the order of the failures (not "consecutive"). */
static void
test_breaker_failure_rate(void **state)
{
    AG_UNUSED(state);
    struct ag__breaker b;
    struct ag__breaker_config c = bcfg(10, 50, 0, 101, 1);
    ag__breaker_init(&b, &c);
    bool probe;
    uint64_t t = 100000;
    /* 9 failures: under min_calls, still closed. */
    for (int i = 0; i < 9; i++) {
        assert_int_equal(ag__breaker_allow(&b, t, &probe), 0);
        assert_false(probe);
        assert_false(ag__breaker_record(&b, t, false, false, 1));
    }
    /* Successes interleaved do not reset anything: the 10th call (a
     * success) makes 9/10 = 90% >= 50%. */
    assert_true(ag__breaker_record(&b, t, false, true, 1));
    assert_int_equal(b.state, AG_BREAKER_OPEN);

    /* 49% stays closed, 50% opens. */
    ag__breaker_init(&b, &c);
    for (int i = 0; i < 50; i++)
        assert_false(ag__breaker_record(&b, t, false, true, 1));
    for (int i = 0; i < 49; i++)
        assert_false(ag__breaker_record(&b, t, false, false, 1));
    uint32_t calls;
    uint32_t fails;
    uint32_t slow;
    ag__breaker_window(&b, t, &calls, &fails, &slow);
    assert_int_equal(calls, 99);
    assert_int_equal(fails, 49);
    assert_true(ag__breaker_record(&b, t, false, false, 1)); /* 50 of 100 */
    assert_int_equal(b.state, AG_BREAKER_OPEN);

    /* Failures older than the window are forgotten. */
    ag__breaker_init(&b, &c);
    for (int i = 0; i < 9; i++)
        assert_false(ag__breaker_record(&b, t, false, false, 1));
    ag__breaker_window(&b, t + 10000, &calls, &fails, &slow);
    assert_int_equal(calls, 0);
    for (int i = 0; i < 9; i++)
        assert_false(ag__breaker_record(&b, t + 10000, false, true, 1));
    assert_false(ag__breaker_record(&b, t + 10000, false, false, 1)); /* 1/10 */
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
    /* Half of the window later, the first half still counts. */
    ag__breaker_window(&b, t + 14999, &calls, &fails, &slow);
    assert_int_equal(calls, 10);

    /* A rate above 100 never opens. */
    struct ag__breaker_config never = bcfg(1, 101, 0, 101, 1);
    ag__breaker_init(&b, &never);
    for (int i = 0; i < 100; i++)
        assert_false(ag__breaker_record(&b, t, false, false, 1));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
}

/* Slow calls open it by their own rate, even when they succeed. */
static void
test_breaker_slow_rate(void **state)
{
    AG_UNUSED(state);
    struct ag__breaker b;
    struct ag__breaker_config c = bcfg(4, 101, 200, 75, 1);
    ag__breaker_init(&b, &c);
    uint64_t t = 5000;
    assert_false(ag__breaker_record(&b, t, false, true, 199)); /* not slow */
    assert_false(ag__breaker_record(&b, t, false, true, 200));
    assert_false(ag__breaker_record(&b, t, false, true, 900));
    assert_true(ag__breaker_record(&b, t, false, true, 300)); /* 3 of 4 = 75% */
    assert_int_equal(b.state, AG_BREAKER_OPEN);

    /* 2 slow of 4 stays closed. */
    ag__breaker_init(&b, &c);
    assert_false(ag__breaker_record(&b, t, false, true, 10));
    assert_false(ag__breaker_record(&b, t, false, true, 10));
    assert_false(ag__breaker_record(&b, t, false, true, 500));
    assert_false(ag__breaker_record(&b, t, false, true, 500));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
    /* slow_ms 0: nothing is slow. */
    struct ag__breaker_config off = bcfg(1, 101, 0, 1, 1);
    ag__breaker_init(&b, &off);
    assert_false(ag__breaker_record(&b, t, false, true, 600000));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
}

/* Open -> half-open after the cool-down; probes; close and re-open. */
static void
test_breaker_state_machine(void **state)
{
    AG_UNUSED(state);
    struct ag__breaker b;
    struct ag__breaker_config c = bcfg(3, 100, 500, 101, 2);
    ag__breaker_init(&b, &c);
    bool probe;
    uint64_t t = 10000;
    for (int i = 0; i < 2; i++)
        assert_false(ag__breaker_record(&b, t, false, false, 1));
    assert_true(ag__breaker_record(&b, t, false, false, 1));
    assert_int_equal(b.state, AG_BREAKER_OPEN);

    /* Open: fail fast until the cool-down ends; late outcomes ignored. */
    assert_int_equal(ag__breaker_allow(&b, t + 999, &probe), AG_EUNAVAIL);
    assert_false(ag__breaker_record(&b, t + 500, false, true, 1));
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
    assert_false(ag__breaker_record(&b, t + 1001, false, true, 1));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);
    /* One good probe of two is not enough; a slow one re-opens, with a
     * fresh cool-down. */
    assert_false(ag__breaker_record(&b, t + 1050, p1, true, 10));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);
    assert_true(ag__breaker_record(&b, t + 1600, p2, true, 600));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_int_equal(b.opened_at_ms, t + 1600);
    assert_int_equal(ag__breaker_allow(&b, t + 2599, &probe), AG_EUNAVAIL);
    /* Two good probes close it, with an empty window. */
    assert_int_equal(ag__breaker_allow(&b, t + 2600, &p1), 0);
    assert_int_equal(ag__breaker_allow(&b, t + 2600, &p2), 0);
    assert_false(ag__breaker_record(&b, t + 2601, p1, true, 1));
    /* The slot of a decided probe is not given again. */
    assert_int_equal(ag__breaker_allow(&b, t + 2601, &probe), AG_EUNAVAIL);
    assert_true(ag__breaker_record(&b, t + 2602, p2, true, 1));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
    uint32_t calls;
    uint32_t fails;
    uint32_t slow;
    ag__breaker_window(&b, t + 2602, &calls, &fails, &slow);
    assert_int_equal(calls, 0);
    assert_int_equal(ag__breaker_allow(&b, t + 2603, &probe), 0);
    assert_false(probe);
    /* A failed probe re-opens too. */
    for (int i = 0; i < 3; i++)
        ag__breaker_record(&b, t + 2603, false, false, 1);
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_true(ag__breaker_tick(&b, t + 3603));
    assert_int_equal(ag__breaker_allow(&b, t + 3603, &p1), 0);
    assert_true(ag__breaker_record(&b, t + 3604, p1, false, 1));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
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
    struct ag__breaker_config c = bcfg(1, 100, 0, 101, 1);
    c.open_ms = 5000;
    ag__breaker_init(&b, &c);
    bool probe;
    assert_false(ag__breaker_recovered(&b, 0)); /* closed: nothing to do */
    assert_int_equal(ag__breaker_allow(&b, 0, &probe), 0);
    assert_true(ag__breaker_record(&b, 0, probe, false, 1));
    assert_int_equal(b.state, AG_BREAKER_OPEN);
    assert_int_equal(ag__breaker_allow(&b, 10, &probe), AG_EUNAVAIL);
    assert_true(ag__breaker_recovered(&b, 10));
    assert_int_equal(b.state, AG_BREAKER_HALF_OPEN);
    assert_int_equal(ag__breaker_allow(&b, 10, &probe), 0);
    assert_true(probe);
    assert_true(ag__breaker_record(&b, 20, probe, true, 1));
    assert_int_equal(b.state, AG_BREAKER_CLOSED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_ratio_and_min), cmocka_unit_test(test_budget_window_slides),
        cmocka_unit_test(test_budget_bounds_outage), cmocka_unit_test(test_breaker_state_machine),
        cmocka_unit_test(test_breaker_failure_rate), cmocka_unit_test(test_breaker_slow_rate),
        cmocka_unit_test(test_round_robin),          cmocka_unit_test(test_ejection_rules),
        cmocka_unit_test(test_ejection_keeps_one),   cmocka_unit_test(test_down_and_recovered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
