/* SPDX-License-Identifier: MIT */
/* Unit tests of discovery.c (AGORA_DISCOVERY): the values accepted and
 * refused, and the DNS address of a service under each template form
 * ({service}, {port} from agora/ports.h, a fixed port, no port), with the
 * errors for an unknown service's {port} and a name that does not fit. */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <string.h>

#include <cmocka.h>

#include "agora/discovery.h"
#include "agora/err.h"

static void
test_parse(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *spec;
        int rc;
        enum ag_discovery_kind kind;
    } CASES[] = {
        { "", 0, AG_DISCOVERY_REGISTRY },
        { "registry", 0, AG_DISCOVERY_REGISTRY },
        { "dns", 0, AG_DISCOVERY_DNS },
        { "dns:{service}", 0, AG_DISCOVERY_DNS },
        { "dns:{service}:{port}", 0, AG_DISCOVERY_DNS },
        { "dns:{service}.agora.svc.cluster.local:{port}", 0, AG_DISCOVERY_DNS },
        { "dns:localhost:8081", 0, AG_DISCOVERY_DNS },
        { "dns:", AG_ECONFIG, 0 },
        { "dns:{service}:", AG_ECONFIG, 0 },
        { "dns:{service}:0", AG_ECONFIG, 0 },
        { "dns:{service}:65536", AG_ECONFIG, 0 },
        { "dns:{service}:x", AG_ECONFIG, 0 },
        { "dns:bad_host", AG_ECONFIG, 0 },
        { "dns:{svc}", AG_ECONFIG, 0 },
        { "dnsx", AG_ECONFIG, 0 },
        { "consul", AG_ECONFIG, 0 },
        { "Registry", AG_ECONFIG, 0 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(CASES); i++) {
        enum ag_discovery_kind kind = 99;
        char err[256] = "";
        int rc = ag_discovery_parse(CASES[i].spec, &kind, err, sizeof(err));
        if (rc != CASES[i].rc)
            fail_msg("'%s': rc %d, want %d", CASES[i].spec, rc, CASES[i].rc);
        if (rc == 0)
            assert_int_equal(kind, CASES[i].kind);
        else
            assert_non_null(strstr(err, CASES[i].spec));
    }
}

static void
test_address(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *spec, *name;
        int rc;
        const char *host;
        int port;
    } CASES[] = {
        { "dns", "catalog", 0, "catalog", 8081 },
        { "dns", "orders", 0, "orders", 8084 },
        { "dns:{service}.agora.svc:{port}", "users", 0, "users.agora.svc", 8082 },
        { "dns:{service}-{service}", "users", 0, "users-users", 8082 },
        { "dns:localhost:9999", "inventory", 0, "localhost", 9999 },
        { "dns:{service}:7000", "no-such-service", 0, "no-such-service", 7000 },
        { "dns", "no-such-service", AG_ENOENT, NULL, 0 },
        { "dns:{service}", "no-such-service", AG_ENOENT, NULL, 0 },
        { "registry", "catalog", AG_EINVAL, NULL, 0 },
        { "dns:a_b", "catalog", AG_EINVAL, NULL, 0 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(CASES); i++) {
        char host[AG_DISCOVERY_HOSTLEN];
        int port = -1;
        int rc = ag_discovery_dns_address(CASES[i].spec, CASES[i].name, host, sizeof(host), &port);
        if (rc != CASES[i].rc)
            fail_msg("'%s' '%s': rc %d, want %d", CASES[i].spec, CASES[i].name, rc, CASES[i].rc);
        if (rc == 0) {
            assert_string_equal(host, CASES[i].host);
            assert_int_equal(port, CASES[i].port);
        }
    }
}

static void
test_too_long(void **state)
{
    AG_UNUSED(state);
    char host[16];
    int port = 0;
    assert_int_equal(
        ag_discovery_dns_address("dns:{service}.example.org", "catalog", host, sizeof(host), &port),
        AG_ETOOBIG);
    /* Exactly 15 bytes and the NUL fit. */
    assert_int_equal(
        ag_discovery_dns_address("dns:{service}.example", "catalog", host, sizeof(host), &port), 0);
    assert_string_equal(host, "catalog.example");
    assert_int_equal(port, 8081);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_address),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
