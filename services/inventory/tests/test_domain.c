/* SPDX-License-Identifier: MIT */
/* Inventory domain unit tests: placeholder replaced below. */
#include "agora_test.h"
#include "domain.h"
static void t(void **s) { (void)s; }
int main(void) { const struct CMUnitTest tests[] = { cmocka_unit_test(t) }; return cmocka_run_group_tests(tests, NULL, NULL); }
