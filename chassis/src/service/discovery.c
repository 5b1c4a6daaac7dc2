/* SPDX-License-Identifier: MIT */
/* AGORA_DISCOVERY: "registry" or "dns[:<host>[:<port>]]" (agora/discovery.h).
 * The service chassis checks the setting at start-up and skips the
 * registration under dns; the gateway turns each routed service into one
 * upstream named by the template, which the HTTP client resolves (and
 * re-resolves) through getaddrinfo like any host name. */
#include "agora/base.h"
#include "agora/discovery.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/ports.h"
#include "agora/str.h"

#define DNS_PREFIX       "dns"
#define DEFAULT_TEMPLATE "{service}:{port}"
#define SERVICE_VAR      "{service}"
#define PORT_VAR         "{port}"

static const struct {
    const char *name;
    int port;
} DEFAULT_PORTS[] = {
#define AG__DISCOVERY_PORT(NAME, name, port, binary) { name, port },
    AG_PROGRAMS(AG__DISCOVERY_PORT)
#undef AG__DISCOVERY_PORT
};

static int
default_port(const char *name)
{
    for (size_t i = 0; i < AG_ARRAY_SIZE(DEFAULT_PORTS); i++) {
        if (strcmp(DEFAULT_PORTS[i].name, name) == 0)
            return DEFAULT_PORTS[i].port;
    }
    return 0;
}

/* The template of a dns 'spec', or NULL when 'spec' is not "dns[:...]". */
static const char *
dns_template(const char *spec)
{
    size_t n = strlen(DNS_PREFIX);
    if (strncmp(spec, DNS_PREFIX, n) != 0)
        return NULL;
    if (spec[n] == '\0')
        return DEFAULT_TEMPLATE;
    if (spec[n] != ':' || spec[n + 1] == '\0')
        return NULL;
    return spec + n + 1;
}

/* Expand the host part 'tpl' (bytes at 'len') for 'name' into 'out'. Host
 * names are letters, digits, '-' and '.', plus {service}. */
static int
expand_host(const char *tpl, size_t len, const char *name, char *out, size_t outlen)
{
    size_t k = 0;
    size_t svlen = strlen(SERVICE_VAR);
    size_t namelen = strlen(name);
    if (len == 0)
        return AG_EINVAL;
    for (size_t i = 0; i < len;) {
        if (len - i >= svlen && memcmp(tpl + i, SERVICE_VAR, svlen) == 0) {
            if (k + namelen >= outlen)
                return AG_ETOOBIG;
            memcpy(out + k, name, namelen);
            k += namelen;
            i += svlen;
            continue;
        }
        char c = tpl[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok)
            return AG_EINVAL;
        if (k + 1 >= outlen)
            return AG_ETOOBIG;
        out[k++] = c;
        i++;
    }
    out[k] = '\0';
    return 0;
}

int
ag_discovery_dns_address(const char *spec, const char *name, char *host, size_t hostlen,
                         int *out_port)
{
    const char *tpl = dns_template(spec);
    if (tpl == NULL)
        return AG_EINVAL;
    const char *colon = strrchr(tpl, ':');
    size_t hlen = colon != NULL ? (size_t)(colon - tpl) : strlen(tpl);
    const char *port = colon != NULL ? colon + 1 : PORT_VAR;
    int rc = expand_host(tpl, hlen, name, host, hostlen);
    if (rc != 0)
        return rc;
    if (strcmp(port, PORT_VAR) == 0) {
        *out_port = default_port(name);
        return *out_port > 0 ? 0 : AG_ENOENT;
    }
    int64_t p = 0;
    if (ag_str_to_i64(ag_str_from_cstr(port), 1, 65535, &p) != 0)
        return AG_EINVAL;
    *out_port = (int)p;
    return 0;
}

int
ag_discovery_parse(const char *spec, enum ag_discovery_kind *out_kind, char *err, size_t errlen)
{
    if (spec[0] == '\0' || strcmp(spec, "registry") == 0) {
        *out_kind = AG_DISCOVERY_REGISTRY;
        return 0;
    }
    /* Try the template on a program every shop has. */
    char host[AG_DISCOVERY_HOSTLEN];
    int port = 0;
    if (dns_template(spec) == NULL ||
        ag_discovery_dns_address(spec, "gateway", host, sizeof(host), &port) != 0) {
        snprintf(err, errlen,
                 "'%s' is not registry, dns or dns:<host>[:<port>] (host: letters, digits, '-', "
                 "'.' and {service}; port: a number or {port})",
                 spec);
        return AG_ECONFIG;
    }
    *out_kind = AG_DISCOVERY_DNS;
    return 0;
}
