/* SPDX-License-Identifier: MIT */
/* The idempotency record tests of test_idempotency.c, run on PostgreSQL
 * (the cluster of the ctest pg fixture; pg_test.h), each on a fresh schema. */
#define AG_TEST_PG 1
#include "test_idempotency.c"
