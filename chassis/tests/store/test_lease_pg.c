/* SPDX-License-Identifier: MIT */
/* The lease tests of test_lease.c on PostgreSQL: two connections to one
 * database (the ctest pg fixture's cluster; pg_test.h). */
#define AG_TEST_PG 1
#include "test_lease.c"
