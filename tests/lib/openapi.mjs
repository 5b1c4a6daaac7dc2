// SPDX-License-Identifier: MIT
// The HTTP contracts of Agora as data: every services/*/openapi.yaml and
// platform/*/openapi.yaml, the gateway's route table, the route tables of
// the C code, and the public API description bundled from them (the
// gateway's /api/v1 surface, which tests/contracts/bundle.mjs writes at
// build time and the gateway serves at /api/v1/openapi.json).
//
// Used by tests/contracts/bundle.mjs (the build step), routes.test.mjs (the
// cross-checks) and live.test.mjs (the contract test against a running
// shop). A new service is covered by adding its openapi.yaml and its routes:
// nothing here names a service.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
export const ROLES = ['public', 'customer', 'admin', 'internal', 'probe', 'ops'];

// The npm packages of tests/package.json (installed by scripts/bootstrap).
export function requireTool(name, root = ROOT) {
    const req = createRequire(path.join(root, 'tests', 'package.json'));
    try {
        return req(name);
    } catch (err) {
        throw new Error(`cannot load '${name}' from tests/node_modules (${err.code ?? err.message}): run scripts/bootstrap`);
    }
}

// Every "<dir>/<name>/openapi.yaml" under services/ and platform/:
// [{ name, dir, file, doc }], sorted by name. Parsed with the yaml package
// (YAML 1.2), duplicate keys refused.
export function loadSpecs(root = ROOT) {
    const YAML = requireTool('yaml');
    const out = [];
    for (const top of ['services', 'platform']) {
        const base = path.join(root, top);
        if (!fs.existsSync(base)) continue;
        for (const name of fs.readdirSync(base).sort()) {
            const file = path.join(base, name, 'openapi.yaml');
            if (!fs.existsSync(file)) continue;
            const doc = YAML.parse(fs.readFileSync(file, 'utf8'), { uniqueKeys: true, prettyErrors: true });
            out.push({ name, dir: `${top}/${name}`, file, doc });
        }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
}

// Does the repository hold service or platform component 'name' (a folder
// services/<name> or platform/<name>)?
export function serviceExists(name, root = ROOT) {
    return ['services', 'platform'].some((top) => fs.existsSync(path.join(root, top, name)));
}

// The gateway's route table (platform/gateway/routes.json), routes sorted
// the way the gateway matches them: longest prefix first, an exact route
// before a prefix route of the same path (platform/gateway/config.c).
export function loadRoutes(root = ROOT) {
    const table = JSON.parse(fs.readFileSync(path.join(root, 'platform/gateway/routes.json'), 'utf8'));
    const routes = table.routes.map((r, index) => ({ ...r, index }));
    routes.sort((a, b) => b.prefix.length - a.prefix.length || Number(Boolean(b.exact)) - Number(Boolean(a.exact)) || a.index - b.index);
    return { ...table, routes };
}

// The route the gateway picks for 'publicPath' (gw_config_match), or null.
// A '{param}' segment stands for a value no literal route prefix equals.
export function matchRoute(routes, publicPath) {
    for (const r of routes) {
        const n = r.prefix.length;
        if (!publicPath.startsWith(r.prefix)) continue;
        if (publicPath.length === n) return r;
        if (r.exact) continue;
        if (publicPath[n] === '/' || r.prefix.endsWith('/')) return r;
    }
    return null;
}

// The role a route gives 'method' (upper case): named, else HEAD as GET,
// else '*', else admin (fail closed), as the gateway resolves it.
export function routeRole(route, method) {
    const roles = route.roles ?? {};
    const own = Object.entries(roles).filter(([k]) => !k.startsWith('_') && !k.startsWith('$'));
    const get = (m) => own.find(([k]) => k === m)?.[1];
    let role = get(method);
    if (role === undefined && method === 'HEAD') role = get('GET');
    if (role === undefined) role = get('*');
    if (role === undefined) role = 'admin';
    return role === 'deny' ? 'internal' : role;
}

// The path a route forwards 'publicPath' to.
export function rewritePath(route, publicPath) {
    if (route.rewrite === undefined) return publicPath;
    return route.rewrite + publicPath.slice(route.prefix.length);
}

// The public paths a route could expose 'servicePath' under: the prefix
// plus what follows the route's rewrite in 'servicePath' (or the path
// itself without a rewrite). Null when the route does not cover it.
export function publicPathFor(route, servicePath) {
    const from = route.rewrite ?? route.prefix;
    if (servicePath === from) return route.prefix;
    if (route.exact) return null;
    if (servicePath.startsWith(from.endsWith('/') ? from : `${from}/`)) return route.prefix + servicePath.slice(from.length);
    return null;
}

// Every operation of a spec: [{ path, method (upper), op, item }].
export function operations(doc) {
    const out = [];
    for (const [p, item] of Object.entries(doc.paths ?? {})) {
        for (const m of METHODS) {
            if (item[m] !== undefined) out.push({ path: p, method: m.toUpperCase(), op: item[m], item });
        }
    }
    return out;
}

// The operations of every spec that some gateway route exposes, with the
// public path and the route's role: [{ service, spec, path, method, op,
// item, publicPath, route, role }]. A service path is exposed under the
// public path P when some route R of that service covers it (publicPathFor)
// and the gateway's matching of P picks a route of the same service that
// forwards P back to the same service path, with a role other than
// 'internal' for the method. Routes of services without a spec expose
// nothing.
export function exposedOperations(specs, routes) {
    const out = [];
    for (const spec of specs) {
        const own = routes.filter((r) => r.service === spec.name);
        for (const o of operations(spec.doc)) {
            const seen = new Set();
            for (const r of own) {
                const pub = publicPathFor(r, o.path);
                if (pub === null || seen.has(pub)) continue;
                const hit = matchRoute(routes, pub);
                if (hit === null || hit.service !== spec.name || rewritePath(hit, pub) !== o.path) continue;
                const role = routeRole(hit, o.method);
                if (role === 'internal') continue;
                seen.add(pub);
                out.push({ service: spec.name, spec, ...o, publicPath: pub, route: hit, role });
            }
        }
    }
    return out;
}

// The route tables of the C code: { "<dir>": [{ method, path, role }] } for
// every services/* and platform/* folder, from the entries
// '{ "GET", "/v1/x", handler, AG_ROLE_PUBLIC }' of its .c files. The
// chassis's built-in routes (/health, /ready, /metrics) are added to each.
export function codeRoutes(root = ROOT) {
    const entry = /\{\s*"([A-Z]+)",\s*"([^"]+)",\s*[A-Za-z_][A-Za-z0-9_]*,\s*AG_ROLE_([A-Z]+)\s*\}/g;
    const scan = (file) => [...fs.readFileSync(file, 'utf8').matchAll(entry)]
        .map((m) => ({ method: m[1], path: m[2], role: m[3].toLowerCase() }));
    const builtin = scan(path.join(root, 'chassis/src/service/service.c'));
    const out = {};
    for (const top of ['services', 'platform']) {
        const base = path.join(root, top);
        if (!fs.existsSync(base)) continue;
        for (const name of fs.readdirSync(base).sort()) {
            const dir = path.join(base, name);
            if (!fs.statSync(dir).isDirectory()) continue;
            const files = fs.readdirSync(dir).filter((f) => f.endsWith('.c')).sort();
            out[`${top}/${name}`] = [...builtin, ...files.flatMap((f) => scan(path.join(dir, f)))];
        }
    }
    return out;
}

/* ---- The public bundle ---- */

// Statuses the gateway itself may answer for a proxied operation, added
// to each where the service's spec does not declare them (the service's
// own declaration, with its own description, wins).
const GATEWAY_RESPONSES = {
    GatewayUnauthorized: {
        description: 'the bearer token sent is invalid, expired or signed with an unknown key (type `unauthorized`); checked by the gateway on every route, public ones included; `WWW-Authenticate: Bearer realm="agora", error="invalid_token"`',
        headers: { 'WWW-Authenticate': { schema: { type: 'string' } } },
    },
    GatewayForbidden: { description: 'the token lacks the role the route needs (type `forbidden`)' },
    GatewayPayloadTooLarge: { description: "the body exceeds the route's `max_body` (type `payload-too-large`)" },
    RateLimited: {
        description: "a token bucket of the route's rate limit is empty (type `rate-limited`); `Retry-After` and `RateLimit-*` say when to retry",
        headers: {
            'Retry-After': { schema: { type: 'integer', minimum: 0 } },
            'RateLimit-Limit': { schema: { type: 'integer' } },
            'RateLimit-Remaining': { schema: { type: 'integer' } },
            'RateLimit-Reset': { schema: { type: 'integer' } },
        },
    },
    BadGateway: { description: 'the service failed: connection refused or reset, or a broken or too large answer (type `upstream-failed` or `upstream-response-too-large`)' },
    UpstreamUnavailable: {
        description: 'no instance of the service, every instance ejected, its breaker open, the gateway stopping (type `upstream-unavailable`), or the token cannot be checked now (type `auth-unavailable`); `Retry-After` set',
        headers: { 'Retry-After': { schema: { type: 'integer', minimum: 0 } } },
    },
    GatewayTimeout: { description: "no answer within the route's `timeout_ms`, retries included (type `upstream-timeout`)" },
};

// Which gateway responses an exposed operation gets: [status, name].
function gatewayStatuses(x) {
    const out = [['401', 'GatewayUnauthorized']];
    if (x.role === 'admin') out.push(['403', 'GatewayForbidden']);
    if (x.op.requestBody !== undefined) out.push(['413', 'GatewayPayloadTooLarge']);
    const rl = x.route.rate_limit ?? {};
    if (rl.per_client !== undefined || (rl.per_user !== undefined && x.role !== 'public')) out.push(['429', 'RateLimited']);
    out.push(['502', 'BadGateway'], ['503', 'UpstreamUnavailable'], ['504', 'GatewayTimeout']);
    return out;
}

const stable = (v) => JSON.stringify(v, (k, val) => (val && typeof val === 'object' && !Array.isArray(val)
    ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : val));

// Every local '#/components/<section>/<name>' reference inside 'node'.
function refsIn(node, acc = []) {
    if (Array.isArray(node)) {
        for (const v of node) refsIn(v, acc);
    } else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
            if (k === '$ref' && typeof v === 'string') {
                const m = /^#\/components\/([^/]+)\/([^/]+)$/.exec(v);
                if (!m) throw new Error(`unsupported $ref '${v}' (only local component references are bundled)`);
                acc.push([m[1], decodeURIComponent(m[2].replaceAll('~1', '/').replaceAll('~0', '~'))]);
            } else {
                refsIn(v, acc);
            }
        }
    }
    return acc;
}

function mapRefs(node, fn) {
    if (Array.isArray(node)) return node.map((v) => mapRefs(v, fn));
    if (node && typeof node === 'object') {
        const out = {};
        for (const [k, v] of Object.entries(node)) out[k] = k === '$ref' && typeof v === 'string' ? fn(v) : mapRefs(v, fn);
        return out;
    }
    return node;
}

const capital = (s) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join('');

// The public API description: one OpenAPI 3.1 document of the gateway's
// /api/v1 surface (and the other paths its routes expose, such as
// /.well-known/jwks.json), built from the route table and the services'
// specs. Paths are the public ones, security follows the routes' roles
// (public: none; customer and admin: a bearer token with that role), the
// gateway's own answers (invalid token, rate limits, upstream failures) are
// added to each operation, and components are merged: identical ones once,
// different ones of the same name prefixed with their service's name.
export function bundle(root = ROOT) {
    const specs = loadSpecs(root);
    const table = loadRoutes(root);
    const exposed = exposedOperations(specs, table.routes);
    const gateway = specs.find((s) => s.name === 'gateway');

    // Components each exposed operation needs, transitively, per service.
    const need = new Map(); // service -> Set("section\0name")
    const want = (spec, node) => {
        let set = need.get(spec.name);
        if (set === undefined) need.set(spec.name, (set = new Set()));
        const todo = refsIn(node);
        while (todo.length > 0) {
            const [section, name] = todo.pop();
            const key = `${section}\0${name}`;
            if (set.has(key)) continue;
            const target = spec.doc.components?.[section]?.[name];
            if (target === undefined) throw new Error(`${spec.dir}/openapi.yaml: cannot resolve #/components/${section}/${name}`);
            set.add(key);
            todo.push(...refsIn(target));
        }
    };
    for (const x of exposed) {
        want(x.spec, x.op);
        want(x.spec, x.item.parameters ?? []);
        for (const req of x.op.security ?? []) {
            for (const scheme of Object.keys(req)) want(x.spec, { $ref: `#/components/securitySchemes/${scheme}` });
        }
    }
    // The gateway's problem schema is what its own answers carry.
    if (gateway !== undefined) want(gateway, { $ref: '#/components/schemas/Problem' });

    // Fingerprints: a component with everything it references, by value.
    const fpMemo = new Map();
    const fingerprint = (spec, section, name, stack = new Set()) => {
        const key = `${spec.name}\0${section}\0${name}`;
        if (fpMemo.has(key)) return fpMemo.get(key);
        if (stack.has(key)) return `cycle:${section}/${name}`;
        stack.add(key);
        const node = spec.doc.components[section][name];
        const fp = stable(mapRefs(node, (ref) => {
            const m = /^#\/components\/([^/]+)\/([^/]+)$/.exec(ref);
            return `<${fingerprint(spec, m[1], m[2], stack)}>`;
        }));
        stack.delete(key);
        fpMemo.set(key, fp);
        return fp;
    };
    const bySpec = Object.fromEntries(specs.map((s) => [s.name, s]));
    const variants = new Map(); // "section\0name" -> Map(fp -> [service])
    for (const [svc, keys] of need) {
        const spec = bySpec[svc];
        if (spec === undefined) continue;
        for (const key of keys) {
            const [section, name] = key.split('\0');
            const fp = fingerprint(spec, section, name);
            if (!variants.has(key)) variants.set(key, new Map());
            const v = variants.get(key);
            if (!v.has(fp)) v.set(fp, []);
            v.get(fp).push(svc);
        }
    }
    const rename = new Map(); // "service\0section\0name" -> new name
    const components = {};
    for (const [key, v] of [...variants].sort()) {
        const [section, name] = key.split('\0');
        // The variant most services share keeps the name; others are prefixed.
        const groups = [...v.values()].sort((a, b) => b.length - a.length || a[0].localeCompare(b[0]));
        groups.forEach((services, i) => {
            const newName = i === 0 ? name : `${capital(services[0])}${name}`;
            for (const svc of services) rename.set(`${svc}\0${section}\0${name}`, newName);
        });
    }
    const refFor = (svc) => (ref) => {
        const m = /^#\/components\/([^/]+)\/([^/]+)$/.exec(ref);
        return `#/components/${m[1]}/${rename.get(`${svc}\0${m[1]}\0${m[2]}`)}`;
    };
    for (const [key, v] of [...variants].sort()) {
        const [section, name] = key.split('\0');
        for (const [, services] of v) {
            const svc = services[0];
            const newName = rename.get(`${svc}\0${section}\0${name}`);
            components[section] ??= {};
            components[section][newName] = mapRefs(bySpec[svc].doc.components[section][name], refFor(svc));
        }
    }
    if (components.securitySchemes?.bearerAuth === undefined) {
        components.securitySchemes ??= {};
        components.securitySchemes.bearerAuth = { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' };
    }
    const problemRef = gateway !== undefined
        ? refFor('gateway')('#/components/schemas/Problem')
        : undefined;

    // Operation ids: as the services name them, prefixed where two collide.
    const idCount = new Map();
    for (const x of exposed) idCount.set(x.op.operationId, (idCount.get(x.op.operationId) ?? 0) + 1);

    // Tags: as the services name them, prefixed where two services differ.
    const tagDefs = new Map(); // name -> [{ svc, tag }]
    for (const spec of specs) {
        for (const t of spec.doc.tags ?? []) {
            if (!tagDefs.has(t.name)) tagDefs.set(t.name, []);
            tagDefs.get(t.name).push({ svc: spec.name, tag: t });
        }
    }
    const tagName = (svc, t) => {
        const defs = tagDefs.get(t) ?? [];
        const same = new Set(defs.map((d) => stable(d.tag))).size <= 1;
        return same ? t : `${svc}-${t}`;
    };

    const paths = {};
    const usedGateway = new Set();
    const usedTags = new Map();
    for (const x of exposed) {
        const fix = refFor(x.service);
        const item = (paths[x.publicPath] ??= {});
        if (x.item.parameters !== undefined && item.parameters === undefined) item.parameters = mapRefs(x.item.parameters, fix);
        const op = mapRefs(structuredClone(x.op), fix);
        if (idCount.get(op.operationId) > 1) op.operationId = `${x.service}_${op.operationId}`;
        op.tags = (op.tags ?? [x.service]).map((t) => {
            const n = tagName(x.service, t);
            const def = (tagDefs.get(t) ?? []).find((d) => d.svc === x.service)?.tag;
            usedTags.set(n, { ...(def ?? {}), name: n, description: def?.description ?? `The ${x.service} service.` });
            return n;
        });
        op['x-agora-role'] = x.role;
        op['x-agora-service'] = x.service;
        op.security = x.role === 'public' ? [] : [{ bearerAuth: [x.role] }];
        for (const [status, name] of gatewayStatuses(x)) {
            if (op.responses[status] !== undefined) continue;
            op.responses[status] = { $ref: `#/components/responses/${name}` };
            usedGateway.add(name);
        }
        op.responses = Object.fromEntries(Object.entries(op.responses).sort(([a], [b]) => a.localeCompare(b)));
        item[x.method.toLowerCase()] = op;
    }
    for (const name of [...usedGateway].sort()) {
        const r = structuredClone(GATEWAY_RESPONSES[name]);
        if (problemRef !== undefined) r.content = { 'application/problem+json': { schema: { $ref: problemRef } } };
        components.responses ??= {};
        components.responses[name] = r;
    }
    const sortedPaths = Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b)));
    for (const section of Object.keys(components)) {
        components[section] = Object.fromEntries(Object.entries(components[section]).sort(([a], [b]) => a.localeCompare(b)));
    }
    const services = [...new Set(exposed.map((x) => x.service))].sort();
    return {
        openapi: '3.1.0',
        info: {
            title: 'Agora public API',
            version: gateway?.doc.info?.version ?? '0.1.0',
            license: { name: 'MIT', identifier: 'MIT' },
            description: [
                'The public HTTP API of Agora: what the gateway serves under `/api/v1` (and `/.well-known/jwks.json`).',
                `Generated at build time by tests/contracts/bundle.mjs from platform/gateway/routes.json and the openapi.yaml of ${services.join(', ')}; edit those, not this document.`,
                '',
                "Each operation is the owning service's, with its path as the gateway exposes it. `security` and `x-agora-role` are the route's role: `public` (no token), `customer` (any signed-in user) or `admin` (a token with the admin role): send `Authorization: Bearer <access token>` from `POST /api/v1/auth/login`. `x-agora-service` names the service that answers.",
                '',
                "Besides the service's own answers, each operation lists what the gateway itself may answer: 401 for an invalid token (on public routes too), 403 without the role, 413 past the route's body limit, 429 where the route has a rate limit, and 502, 503 and 504 when the service fails, is unavailable or too slow. Every error is `application/problem+json` (RFC 9457). Protocol-level refusals (a malformed request, a `.` or `..` path segment: 400) can happen on any request and are not listed.",
            ].join('\n'),
        },
        servers: [{ url: '/', description: 'the gateway serving this document' }],
        tags: [...usedTags.values()].sort((a, b) => a.name.localeCompare(b.name)),
        paths: sortedPaths,
        components,
    };
}
