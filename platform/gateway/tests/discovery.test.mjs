// SPDX-License-Identifier: MIT
// DNS discovery (AGORA_DISCOVERY=dns...): the real gateway reaches a real
// catalog by a host name that getaddrinfo resolves (no registry lookup),
// and a service started with AGORA_DISCOVERY=dns does not register in the
// real registry even though AGORA_REGISTRY_URL is set. Kubernetes uses
// the same path with Service names (deploy/k8s). On this machine only
// "localhost" resolves by name (/etc/hosts; "*.localhost" does not), so
// the tests route to a service named "localhost" and use the template's
// port to reach the catalog's free port.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { cleanup, spawnService, startService, stop, waitExit, writeJsonFile } from '../../../tests/lib/proc.mjs';
import { client } from '../../../tests/lib/http.mjs';

after(() => cleanup());

const T = { timeout: 30_000 };

// A route table whose products route goes to service 'service'.
function routes(service) {
    return {
        routes: [
            { prefix: '/api/v1/products', service, rewrite: '/v1/products', roles: { GET: 'public' } },
            { prefix: '/api/v1/stock', service: 'inventory', rewrite: '/v1/stock', roles: { GET: 'public' } },
        ],
    };
}

function startGateway(routeTable, env) {
    return startService('gateway', {
        env: { AGORA_GATEWAY_ROUTES_FILE: writeJsonFile(routeTable, 'routes.json'), AGORA_GATEWAY_UPSTREAMS: '', ...env },
    });
}

describe('AGORA_DISCOVERY=dns', () => {
    it('routes to {service}:<port> resolved by DNS, with no registry', T, async () => {
        const catalog = await startService('catalog', { env: { AGORA_DISCOVERY: 'dns' } });
        const gw = await startGateway(routes('localhost'), {
            AGORA_DISCOVERY: `dns:{service}:${catalog.port}`,
            AGORA_GATEWAY_EXPECTED_SERVICES: 'localhost',
        });
        const res = await client(gw, { identity: null }).get('/api/v1/products?limit=1');
        assert.equal(res.status, 200, res.text);
        assert.ok(Array.isArray(res.json.items), 'a catalog page');
        assert.ok(gw.logs((o) => /service 'localhost' at localhost:\d+ \(DNS discovery\)/.test(o.msg))[0], 'logged');
        const health = await client(gw.opsUrl).get('/health/services');
        const svc = health.json.services.localhost;
        assert.equal(svc.source, 'dns');
        assert.equal(svc.instances[0].id, `localhost:${catalog.port}`);
        assert.equal(svc.status, 'ok');
        // A DNS-discovered service is expected only when listed in
        // AGORA_GATEWAY_EXPECTED_SERVICES: inventory is not deployed.
        assert.equal(health.json.services.inventory.expected, false);
        assert.equal(health.status, 200, health.text);
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        assert.deepEqual(await stop(catalog), { code: 0, signal: null });
    });

    it('takes {port} from agora/ports.h and the host from the template', T, async () => {
        // Every service is "localhost:<catalog's port>" here; the catalog answers.
        const catalog = await startService('catalog');
        const gw = await startGateway(routes('catalog'), { AGORA_DISCOVERY: `dns:localhost:${catalog.port}` });
        const res = await client(gw, { identity: null }).get('/api/v1/products?limit=1');
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        // {port}: the default port of ports.h (inventory 8083), where nothing
        // listens in this test: the upstream call fails (502/503), it is not
        // routed anywhere else.
        const gw2 = await startGateway(routes('catalog'), { AGORA_DISCOVERY: 'dns:localhost' });
        const health = await client(gw2.opsUrl).get('/health/services');
        assert.equal(health.json.services.inventory.instances[0].id, 'localhost:8083');
        assert.equal(health.json.services.catalog.instances[0].id, 'localhost:8081');
        assert.deepEqual(await stop(gw2), { code: 0, signal: null });
        assert.deepEqual(await stop(catalog), { code: 0, signal: null });
    });

    it('does not register in the registry, which stays the configuration store', T, async () => {
        const registry = await startService('registry');
        const catalog = await startService('catalog', {
            env: { AGORA_DISCOVERY: 'dns', AGORA_REGISTRY_URL: registry.baseUrl },
        });
        const inRegistry = await startService('catalog', {
            env: { AGORA_REGISTRY_URL: registry.baseUrl, AGORA_INSTANCE_ID: 'catalog-registered' },
        });
        const ops = client(registry, { identity: OPERATOR });
        // The registry-discovered instance shows up; the dns one never does
        // (both started before the first instance was listed).
        let listed = null;
        for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
            const r = await ops.get('/v1/services/catalog?wait=1000&index=0');
            if (r.json.instances.length > 0) {
                listed = r.json.instances;
                break;
            }
        }
        assert.ok(listed, 'the registry-discovered catalog registered');
        assert.deepEqual(listed.map((i) => i.id), ['catalog-registered']);
        // Its readiness still checks the registry (configuration).
        const ready = await client(catalog).get('/ready');
        assert.equal(ready.status, 200, ready.text);
        for (const p of [inRegistry, catalog, registry]) assert.deepEqual(await stop(p), { code: 0, signal: null });
    });

    it('refuses a malformed value with exit status 2', T, async () => {
        for (const bad of ['dns:', 'dns:bad_host', 'dns:{service}:x', 'consul']) {
            const p = spawnService('gateway', { env: { AGORA_DISCOVERY: bad } });
            const status = await waitExit(p);
            assert.equal(status.code, 2, `${bad}: ${p.stderr()}`);
            assert.match(p.stderr(), /config: AGORA_DISCOVERY: /);
        }
    });
});
