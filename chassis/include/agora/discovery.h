/* SPDX-License-Identifier: MIT */
/* Discovery mode (AGORA_DISCOVERY): how a process finds the instances of
 * the services it calls. "registry" (the default): instances register with
 * the registry and callers follow it (agora/registry.h). "dns": every
 * service is one name that the platform's DNS resolves (a Kubernetes
 * Service), so nothing registers and callers use
 *   dns                  {service}:{port}
 *   dns:<host>[:<port>]  a template: {service} is the service's name and
 *                        {port} its default port of agora/ports.h
 * e.g. "dns:{service}.agora.svc.cluster.local:{port}". Pure functions of
 * the setting, callable from any thread. */
#ifndef AG_DISCOVERY_H
#define AG_DISCOVERY_H

#include "agora/base.h"

#include <stdbool.h>
#include <stddef.h>

/* Longest host name a template may produce (RFC 1035: 253). */
#define AG_DISCOVERY_HOSTLEN 254

enum ag_discovery_kind {
    AG_DISCOVERY_REGISTRY = 0, /* the registry (default) */
    AG_DISCOVERY_DNS = 1,      /* names resolved by DNS; no registration */
};

/* Check the AGORA_DISCOVERY value 'spec' ("" means "registry") and store
 * its kind in '*out_kind'. Returns 0, or AG_ECONFIG with a reason in 'err'
 * (bytes at 'errlen'). */
int ag_discovery_parse(const char *spec, enum ag_discovery_kind *out_kind, char *err,
                       size_t errlen);

/* Under a "dns" 'spec': the host name of service 'name' (NUL-terminated in
 * 'host', bytes at 'hostlen') and its port in '*out_port'. Returns 0;
 * AG_EINVAL when 'spec' is not a dns one or is malformed; AG_ENOENT when
 * the template uses {port} (or names no port) and 'name' has no row in
 * agora/ports.h; AG_ETOOBIG when the name does not fit. */
int ag_discovery_dns_address(const char *spec, const char *name, char *host, size_t hostlen,
                             int *out_port);

#endif /* AG_DISCOVERY_H */
