/* SPDX-License-Identifier: MIT */
/* placeholder */
#include "agora/base.h"

#include "agora_test.h"
#include "domain.h"

static void
test_placeholder(void **state)
{
    AG_UNUSED(state);
}

int
main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_placeholder) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
