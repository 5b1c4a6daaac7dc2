/* SPDX-License-Identifier: MIT */
/* Unit tests of the adaptive admission limit (http_admit.c): it stays at
 * its ceiling while answers are on time, comes down to what is in flight
 * when a busy interval shows a standing queue, ignores a lone slow answer
 * and a burst that drains, keeps its no-load latency through a sustained
 * overload, and grows back once answers are on time again. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/http_server_int.h"

#define MS 1000000ull

/* Feed 'n' answers of latency 'lat' with 'inflight' in flight, one every
 * 'gap' from '*now'. */
static void
feed(struct ag_http_limiter *l, uint64_t *now, unsigned n, uint64_t lat, uint64_t gap,
     uint64_t inflight)
{
    for (unsigned i = 0; i < n; i++) {
        *now += gap;
        ag__http_limiter_sample(l, *now - lat, *now, inflight);
    }
}

static void
test_on_time_stays_at_ceiling(void **state)
{
    AG_UNUSED(state);
    struct ag_http_limiter l;
    ag__http_limiter_init(&l, 16, 1000, 50);
    uint64_t now = 1000 * MS;
    feed(&l, &now, 200, 2 * MS, 1 * MS, 1);     /* light: learns the floor */
    feed(&l, &now, 2000, 30 * MS, 1 * MS, 300); /* busy, still within the slack */
    assert_int_equal((int)l.limit, 1000);
    assert_int_equal(ag__http_limiter_floor(&l), 2 * MS);
}

static void
test_standing_queue_cuts_to_inflight(void **state)
{
    AG_UNUSED(state);
    struct ag_http_limiter l;
    ag__http_limiter_init(&l, 16, 1000, 50);
    uint64_t now = 1000 * MS;
    feed(&l, &now, 50, 20 * MS, 1 * MS, 1);
    /* Every answer of the interval waited 200 ms with 40 in flight. */
    feed(&l, &now, 200, 200 * MS, 1 * MS, 40);
    assert_true(l.limit <= 40 * 0.5 + 0.5);
    /* Sustained, it goes to the floor and stays there; the no-load
     * latency is not raised by the overload's own queueing. */
    feed(&l, &now, 3000, 200 * MS, 10 * MS, 40);
    assert_int_equal((int)l.limit, 16);
    assert_int_equal(ag__http_limiter_floor(&l), 20 * MS);
}

static void
test_lone_slow_answer_and_burst_do_not_cut(void **state)
{
    AG_UNUSED(state);
    struct ag_http_limiter l;
    ag__http_limiter_init(&l, 16, 1000, 50);
    uint64_t now = 1000 * MS;
    feed(&l, &now, 50, 1 * MS, 1 * MS, 1);
    /* A quiet interval with a few slow answers (a long handler). */
    feed(&l, &now, 3, 800 * MS, 300 * MS, 1);
    assert_int_equal((int)l.limit, 1000);
    /* A burst of 200: the first answers are quick, the last ones waited. */
    for (unsigned i = 0; i < 200; i++) {
        now += MS / 2;
        ag__http_limiter_sample(&l, now - (1 + i / 2) * MS, now, 200 - i);
    }
    feed(&l, &now, 50, 1 * MS, 5 * MS, 1);
    assert_int_equal((int)l.limit, 1000);
}

static void
test_grows_back_when_on_time(void **state)
{
    AG_UNUSED(state);
    struct ag_http_limiter l;
    ag__http_limiter_init(&l, 16, 1000, 50);
    uint64_t now = 1000 * MS;
    feed(&l, &now, 50, 20 * MS, 1 * MS, 1);
    feed(&l, &now, 2000, 300 * MS, 5 * MS, 64);
    assert_int_equal((int)l.limit, 16);
    /* On time again with the limit in use: about one more per round trip
     * (10 round trips of 16). */
    feed(&l, &now, 16 * 10, 25 * MS, 1 * MS, 16);
    assert_true(l.limit > 22 && l.limit < 28);
    /* Idle: it does not drift up. */
    double before = l.limit;
    feed(&l, &now, 1000, 25 * MS, 1 * MS, 1);
    assert_true(l.limit == before);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_on_time_stays_at_ceiling),
        cmocka_unit_test(test_standing_queue_cuts_to_inflight),
        cmocka_unit_test(test_lone_slow_answer_and_burst_do_not_cut),
        cmocka_unit_test(test_grows_back_when_on_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
