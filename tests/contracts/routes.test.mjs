// SPDX-License-Identifier: MIT
// Cross-check of the HTTP contracts, without processes: the gateway's route
// table (platform/gateway/routes.json), the services' openapi.yaml files
// and the route tables of the C code agree. Every documented public path has
// a route with the same role, every route has a documented path, nothing
// internal is routed, every operation's security says its role, and the
// statuses every operation can get from the chassis are declared.
//
// Routes of services whose folder does not exist yet (services/<name> or
// platform/<name>) are skipped: the route table names the whole shop of
// DESIGN.md ahead of the code. Once the folder exists, its openapi.yaml must
// document what its routes expose.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
    ROLES,
    codeRoutes, bundle, exposedOperations, loadRoutes, loadSpecs, operations, serviceExists,
} from '../lib/openapi.mjs';
import { buildDir } from '../lib/proc.mjs';

const specs = loadSpecs();
const table = loadRoutes();
const exposed = exposedOperations(specs, table.routes);
const code = codeRoutes();
const key = (method, p) => `${method} ${p}`;

// Operations the gateway answers in its fallback handler (gw_dispatch:
// static files, CORS preflights), not through a route-table entry.
const FALLBACK_OPERATIONS = new Set(['platform/gateway GET /{path}', 'platform/gateway OPTIONS /api/{proxied}', 'platform/gateway GET /api/v1/admin/services']);

function expectedSecurity(role) {
    switch (role) {
    case 'public': return [];
    case 'customer': return [{ bearerAuth: ['customer'] }];
    case 'admin': return [{ bearerAuth: ['admin'] }];
    case 'internal': return [{ internalIdentity: [] }];
    // Probes (/health, /ready) and operator routes (/metrics) need no
    // identity: they are never routed, and ops routes sit on a loopback
    // listener where there is one (AGORA_OPS_ADDRESS).
    case 'probe': return [];
    case 'ops': return [];
    default: return undefined;
    }
}

describe('gateway routes and the services\' specs', () => {
    it('every route names a service of the repository, or one not built yet (skipped)', (t) => {
        const skipped = [...new Set(table.routes.filter((r) => !serviceExists(r.service)).map((r) => r.service))].sort();
        t.diagnostic(`routes of services not in the repository yet, skipped: ${skipped.join(', ') || 'none'}`);
        for (const r of table.routes) {
            if (!serviceExists(r.service)) continue;
            assert.ok(specs.some((s) => s.name === r.service), `route ${r.prefix}: service '${r.service}' has no openapi.yaml`);
        }
    });

    it('every route of an existing service exposes a documented path', () => {
        const bare = table.routes.filter((r) => serviceExists(r.service) && !exposed.some((x) => x.route === r));
        assert.deepEqual(bare.map((r) => `${r.prefix} -> ${r.service} ${r.rewrite ?? ''}`), [],
            'routes that expose no documented operation');
    });

    it('every documented public operation has a route, with the role the spec states', () => {
        const missing = [];
        const wrongRole = [];
        // The gateway's own endpoints are answered by the gateway, not routed.
        for (const spec of specs.filter((sp) => sp.name !== 'gateway')) {
            for (const o of operations(spec.doc)) {
                const role = o.op['x-agora-role'];
                // Internal, probe and ops routes are never routed.
                if (role === 'internal' || role === 'probe' || role === 'ops') continue;
                const via = exposed.filter((x) => x.spec === spec && x.path === o.path && x.method === o.method);
                if (via.length === 0) missing.push(`${spec.name}: ${key(o.method, o.path)} (${role})`);
                for (const x of via) {
                    if (x.role !== role) wrongRole.push(`${spec.name}: ${key(o.method, x.publicPath)}: route ${x.route.prefix} says ${x.role}, the spec ${role}`);
                }
            }
        }
        assert.deepEqual(missing, [], 'public operations no route exposes');
        assert.deepEqual(wrongRole, [], 'the gateway and the service disagree on the role');
    });

    it('no internal operation is reachable through the gateway', () => {
        const leaks = exposed.filter((x) => x.op['x-agora-role'] === 'internal')
            .map((x) => `${x.service}: ${key(x.method, x.path)} via ${x.publicPath}`);
        assert.deepEqual(leaks, []);
    });

    it('every public path is exposed once, by one service', () => {
        const seen = new Map();
        for (const x of exposed) {
            const k = key(x.method, x.publicPath);
            assert.ok(!seen.has(k), `${k} exposed by ${seen.get(k)} and ${x.service}`);
            seen.set(k, x.service);
        }
    });

    it('the bundle the build wrote is the one the sources make', (t) => {
        const file = path.join(buildDir(), 'openapi.json');
        if (!fs.existsSync(file)) {
            t.skip(`${file} not built`);
            return;
        }
        assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), bundle(), `${file} is stale: rebuild`);
    });
});

describe('the C route tables and the specs', () => {
    for (const spec of specs) {
        it(`${spec.dir}: every route of the code is documented with its role, and every operation is a route`, () => {
            const routes = code[spec.dir] ?? [];
            const documented = new Map();
            for (const o of operations(spec.doc)) {
                if (FALLBACK_OPERATIONS.has(`${spec.dir} ${key(o.method, o.path)}`)) continue;
                documented.set(key(o.method, o.path), o.op['x-agora-role']);
            }
            const inCode = new Map(routes.map((r) => [key(r.method, r.path), r.role]));
            const undocumented = [...inCode.keys()].filter((k) => !documented.has(k));
            const notInCode = [...documented.keys()].filter((k) => !inCode.has(k));
            const roles = [...inCode].filter(([k, role]) => documented.has(k) && documented.get(k) !== role)
                .map(([k, role]) => `${k}: code ${role}, spec ${documented.get(k)}`);
            assert.deepEqual(undocumented, [], 'routes of the code missing from openapi.yaml');
            assert.deepEqual(notInCode, [], 'operations of openapi.yaml the code has no route for');
            assert.deepEqual(roles, [], 'roles that differ');
        });
    }
});

describe('each operation of each spec', () => {
    for (const spec of specs) {
        it(`${spec.dir}: security says the role; the chassis's statuses are declared`, () => {
            const bad = [];
            for (const o of operations(spec.doc)) {
                const k = `${key(o.method, o.path)}`;
                const role = o.op['x-agora-role'];
                const has = (s) => o.op.responses?.[s] !== undefined;
                if (!ROLES.includes(role)) bad.push(`${k}: x-agora-role '${role}'`);
                if (JSON.stringify(o.op.security) !== JSON.stringify(expectedSecurity(role))) {
                    bad.push(`${k}: security ${JSON.stringify(o.op.security)} for role ${role}`);
                }
                if (!o.op.operationId) bad.push(`${k}: no operationId`);
                // 405 (with Allow) for other methods of the path: listed on
                // every operation the router answers.
                if (!has('405') && !FALLBACK_OPERATIONS.has(`${spec.dir} ${k}`)) bad.push(`${k}: no 405`);
                if (role === 'customer' && !has('401')) bad.push(`${k}: customer route without 401`);
                if (role === 'admin' && !(has('401') && has('403'))) bad.push(`${k}: admin route without 401 and 403`);
                const json = o.op.requestBody?.content?.['application/json'];
                if (json !== undefined) {
                    for (const s of ['400', '413', '415']) {
                        if (!has(s)) bad.push(`${k}: a JSON body and no ${s}`);
                    }
                }
                for (const [status, r] of Object.entries(o.op.responses ?? {})) {
                    const target = r.$ref ? spec.doc.components.responses[r.$ref.split('/').pop()] : r;
                    const problem = target?.content?.['application/problem+json'];
                    if (Number(status) >= 400 && status !== '503' && problem === undefined) {
                        bad.push(`${k}: ${status} is not application/problem+json`);
                    }
                }
            }
            assert.deepEqual(bad, []);
        });
    }
});
