/* SPDX-License-Identifier: MIT */
/* Helpers of the tests that run on PostgreSQL: the URL of the private
 * cluster the ctest fixture started (chassis/tests/store/pg-fixture), and a
 * fresh schema per test so tests do not see each other's tables. */
#ifndef AG_PG_TEST_H
#define AG_PG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agora/mem.h"
#include "agora/store.h"

/* The test database's URL: $AGORA_TEST_PG_URL, or the first line of the
 * file named by $AGORA_TEST_PG_URL_FILE (written by the fixture). Fails the
 * test when neither is there: a PostgreSQL test never passes by skipping. */
static const char *
pg_test_url(void)
{
    static char url[512];
    if (url[0] != '\0')
        return url;
    const char *env = getenv("AGORA_TEST_PG_URL");
    if (env != NULL && *env != '\0') {
        snprintf(url, sizeof(url), "%s", env);
        return url;
    }
    const char *file = getenv("AGORA_TEST_PG_URL_FILE");
    FILE *f = file != NULL ? fopen(file, "r") : NULL;
    if (f == NULL) {
        fprintf(stderr, "no PostgreSQL: set AGORA_TEST_PG_URL or AGORA_TEST_PG_URL_FILE "
                        "(ctest's pg fixture does)\n");
        abort();
    }
    if (fgets(url, sizeof(url), f) == NULL)
        url[0] = '\0';
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    if (url[0] == '\0') {
        fprintf(stderr, "empty PostgreSQL URL in '%s'\n", file);
        abort();
    }
    return url;
}

/* A URL whose connections use schema 'schema', created empty (dropped
 * first if a previous run left it). Owned: ag_free. */
static char *
pg_test_schema_url(const char *schema)
{
    struct ag_store *admin = NULL;
    char err[256] = "";
    struct ag_store_config cfg = { .path = pg_test_url(),
                                   .errbuf = err,
                                   .errbuf_len = sizeof(err) };
    if (ag_store_open(&cfg, &admin) != 0) {
        fprintf(stderr, "cannot open the test database: %s\n", err);
        abort();
    }
    char *sql = ag_asprintf("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    if (ag_store_exec(admin, sql) != 0) {
        fprintf(stderr, "cannot create schema '%s': %s\n", schema, ag_store_errmsg(admin));
        abort();
    }
    ag_free(sql);
    ag_store_close(admin);
    const char *base = pg_test_url();
    return ag_asprintf("%s%soptions=-csearch_path%%3D%s", base, strchr(base, '?') ? "&" : "?",
                       schema);
}

#endif /* AG_PG_TEST_H */
