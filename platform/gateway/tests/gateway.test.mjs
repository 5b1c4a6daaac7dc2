// SPDX-License-Identifier: MIT
// Gateway component tests: the real gateway binary in front of real catalog
// processes, small node upstreams (an echo server that answers with what it
// received, a server that never answers), a node JWKS server with P-256 keys
// made here, and, when built, the real registry and users service. Checks
// routing and rewrite, HTTP proxy semantics, load balancing and ejection,
// JWT verification and roles, rate limits, CORS, body limits, static files,
// upstream failures, configuration reload, health and metrics.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import { clientHeader, identityHeader, OPERATOR, TEST_INTERNAL_KEY } from '../../../tests/lib/identity.mjs';
import {
    binaryPath,
    cleanup,
    makeTempDir,
    sourceDir,
    spawnService,
    startService,
    stop,
    waitExit,
    waitFor,
    writeJsonFile,
} from '../../../tests/lib/proc.mjs';
import { RawConnection, client, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';

const T = { timeout: 30_000 };
const PROMTOOL = '/usr/bin/promtool';
const ISS = 'agora-users';
const AUD = 'agora';
const ADMIN_SUB = '01a20000-0000-7000-8000-0000000000a1';
const CUSTOMER_SUB = '01a20000-0000-7000-8000-0000000000c1';
const OTHER_SUB = '01a20000-0000-7000-8000-0000000000c2';

after(() => cleanup());

// ---- Helpers -----------------------------------------------------------------

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// A P-256 key pair with its kid and public JWK.
function newKey(kid) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
    return { kid, privateKey, publicKey, jwk };
}

// A compact JWS. 'alg' ES256 signs with key.privateKey; HS256 with 'secret';
// none leaves the signature empty.
function makeToken({ key, kid = key?.kid, alg = 'ES256', secret, claims = {}, header = {} }) {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: ISS, aud: AUD, sub: CUSTOMER_SUB, iat: now, nbf: now, exp: now + 600, roles: ['customer'], ...claims };
    for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
    const data = `${b64u({ alg, kid, typ: 'JWT', ...header })}.${b64u(payload)}`;
    let sig = Buffer.alloc(0);
    if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(data), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    else if (alg === 'HS256') sig = crypto.createHmac('sha256', secret).update(data).digest();
    return `${data}.${sig.toString('base64url')}`;
}

// Parse and check an X-Agora-Identity value under TEST_INTERNAL_KEY.
function checkIdentity(value) {
    assert.ok(value, 'an X-Agora-Identity header reached the upstream');
    const cut = value.lastIndexOf(';');
    const body = value.slice(0, cut);
    const mac = crypto.createHmac('sha256', Buffer.from(TEST_INTERNAL_KEY, 'hex')).update(body).digest('hex');
    assert.equal(value.slice(cut + 1), mac, 'identity MAC verifies under AGORA_INTERNAL_KEY');
    const [v, userId, roles, exp] = body.split(';');
    assert.equal(v, 'v1');
    return { userId, roles: Number(roles), exp: Number(exp) };
}

// A node HTTP server on a free port; resolves { server, port, url, close }.
async function listen(handler) {
    const server = http.createServer(handler);
    server.keepAliveTimeout = 60_000;
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const port = server.address().port;
    return {
        server,
        port,
        url: `http://127.0.0.1:${port}`,
        close: () =>
            new Promise((r) => {
                server.closeAllConnections?.();
                server.close(() => r());
            }),
    };
}

// Upstream answering every request with JSON {method, url, headers,
// rawHeaders, body, instance}. '?hop=1' adds hop-by-hop response headers,
// '?status=N' sets the status.
async function startEcho(instance = 'echo') {
    const seen = [];
    const s = await listen((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const u = new URL(req.url, 'http://x');
            const info = { instance, method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() };
            seen.push(info);
            const h = { 'Content-Type': 'application/json', 'X-Upstream': instance, 'Set-Cookie': ['a=1', 'b=2'] };
            if (u.searchParams.get('hop')) {
                h.Connection = 'keep-alive, X-Resp-Hop';
                h['X-Resp-Hop'] = 'dropped';
                h['Keep-Alive'] = 'timeout=5';
                h['Proxy-Authenticate'] = 'Basic realm="x"';
                h['X-Resp-Keep'] = 'kept';
            }
            const status = Number(u.searchParams.get('status') ?? 200);
            const text = JSON.stringify(info);
            h['Content-Length'] = Buffer.byteLength(text);
            res.writeHead(status, h);
            res.end(req.method === 'HEAD' ? undefined : text);
        });
    });
    return { ...s, seen };
}

// Upstream that accepts connections and never answers.
async function startHang() {
    const sockets = new Set();
    const server = net.createServer((sock) => {
        sockets.add(sock);
        sock.on('error', () => {});
        sock.on('close', () => sockets.delete(sock));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return {
        port: server.address().port,
        close: () =>
            new Promise((r) => {
                for (const s of sockets) s.destroy();
                server.close(() => r());
            }),
    };
}

// JWKS server: GET /jwks.json serves the current keys; counts fetches.
async function startJwks(keys) {
    const state = { keys: [...keys], fetches: 0 };
    const s = await listen((req, res) => {
        state.fetches++;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
    });
    return { ...s, state, jwksUrl: `${s.url}/jwks.json` };
}

function startGateway({ routes, upstreams, env = {} } = {}) {
    const routesFile = typeof routes === 'string' ? routes : writeJsonFile(routes, 'routes.json');
    return startService('gateway', {
        env: {
            AGORA_GATEWAY_ROUTES_FILE: routesFile,
            AGORA_GATEWAY_UPSTREAMS: upstreams,
            AGORA_ACCESS_LOG: 'true',
            // Without a users upstream there is no deny list to restore.
            AGORA_GATEWAY_REVOCATIONS_RESTORE: /(^|;)users=/.test(upstreams ?? '') ? 'true' : 'false',
            ...env,
        },
    });
}

// One request over a raw socket (paths fetch would normalise, headers fetch
// refuses to send). Resolves { status, headers, body }.
async function rawRequest(port, head) {
    const c = await RawConnection.open(port);
    try {
        await c.write(head);
        return await c.readResponse();
    } finally {
        c.close();
    }
}

// GET in a loop until 'until' passes; counts results.
async function loadLoop(api, pathname, until, counts) {
    while (!until()) {
        try {
            const r = await api.get(pathname);
            if (r.status === 200) counts.ok++;
            else {
                counts.bad++;
                counts.statuses.push(r.status);
            }
        } catch (err) {
            counts.bad++;
            counts.statuses.push(err.code ?? err.message);
        }
    }
}

function promtoolCheck(body) {
    return new Promise((resolve, reject) => {
        const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, out }));
        child.stdin.end(body);
    });
}

const TEST_CORS = {
    allow_origins: ['http://shop.test'],
    allow_methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allow_headers: ['Authorization', 'Content-Type', 'Idempotency-Key'],
    expose_headers: ['ETag', 'X-Request-ID'],
    max_age: 600,
    allow_credentials: false,
};

function testRoutes() {
    return {
        max_body: '64KiB',
        cors: TEST_CORS,
        routes: [
            { prefix: '/api/v1/products', service: 'catalog', rewrite: '/v1/products', roles: { GET: 'public', '*': 'admin' } },
            { prefix: '/api/v1/echo', service: 'echo', rewrite: '/v1/echo', roles: { '*': 'public' } },
            { prefix: '/api/v1/echo/admin', service: 'echo', rewrite: '/v1/admin', roles: { '*': 'admin' } },
            { prefix: '/api/v1/echo/me', service: 'echo', rewrite: '/v1/me', roles: { '*': 'customer' } },
            { prefix: '/api/v1/echo/exact', exact: true, service: 'echo', rewrite: '/v1/exact', roles: { '*': 'public' } },
            { prefix: '/api/v1/hidden', service: 'echo', roles: { '*': 'internal' } },
            { prefix: '/api/v1/limited', service: 'echo', rewrite: '/v1/limited', roles: { '*': 'public' }, rate_limit: { per_client: { rate: 0.5, burst: 3 } } },
            { prefix: '/api/v1/user-limited', service: 'echo', rewrite: '/v1/ul', roles: { '*': 'customer' }, rate_limit: { per_user: { rate: 0.5, burst: 2 } } },
            { prefix: '/api/v1/small', service: 'echo', rewrite: '/v1/small', roles: { '*': 'public' }, max_body: '1KiB' },
            { prefix: '/api/v1/slow', service: 'hang', rewrite: '/v1/slow', roles: { '*': 'public' }, timeout_ms: 500, retries: 0 },
            { prefix: '/api/v1/nothing', service: 'inventory', rewrite: '/v1/stock', roles: { '*': 'public' } },
            { prefix: '/api/v1/fault-abort', service: 'echo', roles: { '*': 'public' }, fault: { abort_percent: 100, abort_status: 503 } },
            { prefix: '/api/v1/fault-delay', service: 'echo', roles: { '*': 'customer' }, fault: { delay_percent: 100, delay_ms: 300 } },
        ],
    };
}

// ---- Proxy semantics, auth, limits, CORS --------------------------------------

describe('gateway in front of catalog and node upstreams', () => {
    let catalog;
    let echo;
    let hang;
    let jwks;
    let gw;
    let api;
    let k1;
    let k2;

    before(async () => {
        k1 = newKey('k1');
        k2 = newKey('k2');
        [catalog, echo, hang, jwks] = await Promise.all([startService('catalog'), startEcho(), startHang(), startJwks([k1])]);
        gw = await startGateway({
            routes: testRoutes(),
            upstreams: `catalog=127.0.0.1:${catalog.port};echo=127.0.0.1:${echo.port};hang=127.0.0.1:${hang.port}`,
            env: { AGORA_GATEWAY_JWKS_URL: jwks.jwksUrl, AGORA_GATEWAY_JWKS_MIN_INTERVAL: '2s' },
        });
        api = client(gw, { identity: null });
        await waitFor(() => jwks.state.fetches > 0, { message: 'initial JWKS fetch' });
    });

    after(async () => {
        await Promise.all([echo?.close(), hang?.close(), jwks?.close()]);
    });

    it('rewrites the prefix and keeps the query; the catalog sees /v1/...', T, async () => {
        const r = await api.get('/api/v1/echo/a/b%20c?x=1&y=%20z&x=2');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.url, '/v1/echo/a/b%20c?x=1&y=%20z&x=2');
        assert.equal(r.json.method, 'GET');
        const p = await api.get('/api/v1/products?limit=1');
        assert.equal(p.status, 200, p.text);
        assert.deepEqual(p.json, { items: [], next_cursor: null });
        const rid = p.header('x-request-id');
        await waitFor(() => catalog.logs({ msg: 'request', request_id: rid })[0], { message: 'catalog access line' });
        assert.equal(catalog.logs({ msg: 'request', request_id: rid })[0].path, '/v1/products');
    });

    it('matches on path-segment boundaries, longest prefix first, exact routes exactly', T, async () => {
        expectProblem(await api.get('/api/v1/echoes'), 404);
        expectProblem(await api.get('/api/v1/unknown'), 404);
        const admin = await api.get('/api/v1/echo/admin/x');
        expectProblem(admin, 401);
        const exact = await api.get('/api/v1/echo/exact');
        assert.equal(exact.json.url, '/v1/exact');
        // Under the exact route's path, the shorter /api/v1/echo route applies.
        const under = await api.get('/api/v1/echo/exact/more');
        assert.equal(under.json.url, '/v1/echo/exact/more');
        // A route marked internal is not reachable through the gateway.
        expectProblem(await api.get('/api/v1/hidden'), 404);
        // Dot segments, raw or encoded, are refused.
        const dots = await rawRequest(gw.port, 'GET /api/v1/echo/%2e%2e/admin HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
        assert.equal(dots.status, 400);
    });

    it('strips hop-by-hop headers both ways and adds forwarding headers', T, async () => {
        const res = await rawRequest(
            gw.port,
            'GET /api/v1/echo/hop?hop=1 HTTP/1.1\r\n' +
                'Host: gw.example:8080\r\n' +
                'Connection: keep-alive, X-Hop-Custom\r\n' +
                'X-Hop-Custom: secret\r\n' +
                'Keep-Alive: timeout=5\r\n' +
                'TE: trailers\r\n' +
                'Proxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
                'Proxy-Connection: keep-alive\r\n' +
                'Upgrade: websocket\r\n' +
                'X-Agora-Identity: v1;forged;3;9999999999;00\r\n' +
                'X-Forwarded-For: 203.0.113.9\r\n' +
                'X-Forwarded-Host: evil.example\r\n' +
                'X-Keep: yes\r\n' +
                '\r\n',
        );
        assert.equal(res.status, 200, res.body);
        const seen = JSON.parse(res.body);
        const h = seen.headers;
        for (const name of ['x-hop-custom', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection', 'upgrade', 'x-agora-identity']) {
            assert.equal(h[name], undefined, `${name} must not reach the upstream`);
        }
        assert.notEqual(h.connection?.toLowerCase().includes('x-hop-custom'), true);
        assert.equal(h['x-keep'], 'yes');
        assert.equal(h['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
        assert.equal(h['x-forwarded-proto'], 'http');
        assert.equal(h['x-forwarded-host'], 'gw.example:8080', 'the untrusted X-Forwarded-Host is replaced');
        assert.match(h.forwarded, /for=127\.0\.0\.1;proto=http;host="gw\.example:8080"/);
        // Response side.
        assert.equal(res.headers['x-resp-hop'], undefined, 'a header named in Connection is dropped');
        assert.equal(res.headers['keep-alive'], undefined);
        assert.equal(res.headers['proxy-authenticate'], undefined);
        assert.equal(res.headers['x-resp-keep'], 'kept');
        assert.equal(res.headers['x-upstream'], 'echo');
        assert.equal(res.headers['content-type'], 'application/json');
    });

    it('passes status, repeated headers and bodies through; HEAD keeps the length', T, async () => {
        const r = await fetch(gw.url('/api/v1/echo/s?status=418'), { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
        assert.equal(r.status, 418);
        assert.deepEqual(r.headers.getSetCookie(), ['a=1', 'b=2']);
        const seen = await r.json();
        assert.equal(seen.body, 'hello');
        assert.equal(seen.headers['content-type'], 'text/plain');
        assert.equal(seen.method, 'POST');
        const head = await fetch(gw.url('/api/v1/echo/h'), { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(await head.text(), '');
        const get = await fetch(gw.url('/api/v1/echo/h'));
        const len = Number(head.headers.get('content-length'));
        assert.ok(len > 0 && Math.abs(len - Number(get.headers.get('content-length'))) <= 2, `HEAD Content-Length ${len}`);
    });

    it('propagates X-Request-ID and the trace id end to end', T, async () => {
        const rid = `gw-test-${crypto.randomUUID()}`;
        const traceId = crypto.randomBytes(16).toString('hex');
        const tp = `00-${traceId}-${crypto.randomBytes(8).toString('hex')}-01`;
        const r = await api.get('/api/v1/echo/rid', { headers: { 'x-request-id': rid, traceparent: tp } });
        assert.equal(r.header('x-request-id'), rid);
        assert.equal(r.json.headers['x-request-id'], rid);
        assert.match(r.json.headers.traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
        const p = await api.get('/api/v1/products', { headers: { 'x-request-id': rid } });
        assert.equal(p.header('x-request-id'), rid);
        await waitFor(() => catalog.logs({ msg: 'request', request_id: rid })[0], { message: 'catalog logged the request id' });
        assert.equal(catalog.logs({ msg: 'request', request_id: rid })[0].trace_id.length, 32);
        // Without one, the gateway makes one and the upstream gets the same.
        const n = await api.get('/api/v1/echo/new');
        assert.ok(n.header('x-request-id'));
        assert.equal(n.json.headers['x-request-id'], n.header('x-request-id'));
    });

    it('verifies bearer tokens: a valid one passes with a signed identity', T, async () => {
        const token = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB, roles: ['customer'] } });
        const r = await api.get('/api/v1/echo/me', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200, r.text);
        const id = checkIdentity(r.json.headers['x-agora-identity']);
        assert.equal(id.userId, CUSTOMER_SUB);
        assert.equal(id.roles, 1);
        assert.ok(id.exp > Date.now() / 1000);
        assert.equal(r.json.headers.authorization, undefined, 'the bearer token stops at the gateway');
        // A client-supplied identity never survives, even next to a valid token.
        const forged = await api.get('/api/v1/echo/me', { headers: { authorization: `Bearer ${token}`, 'x-agora-identity': 'v1;x;3;9999999999;00' } });
        assert.equal(checkIdentity(forged.json.headers['x-agora-identity']).userId, CUSTOMER_SUB);
        // Anonymous on a public route: no identity at all.
        const anon = await api.get('/api/v1/echo/anon', { headers: { 'x-agora-identity': 'v1;x;3;9999999999;00' } });
        assert.equal(anon.json.headers['x-agora-identity'], undefined);
    });

    it('refuses two Authorization headers (a forged admin token before a valid one) with 400', T, async () => {
        const forgedAdmin = makeToken({ key: newKey('k1'), claims: { sub: ADMIN_SUB, roles: ['admin'] } });
        const token = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB, roles: ['customer'] } });
        const before = echo.seen.length;
        for (const order of [[forgedAdmin, token], [token, forgedAdmin], [token, token]]) {
            const r = await rawRequest(gw.port, `GET /api/v1/echo/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${order[0]}\r\nAuthorization: Bearer ${order[1]}\r\nConnection: close\r\n\r\n`);
            assert.equal(r.status, 400, r.body);
            assert.match(r.body, /more than one Authorization header/);
        }
        assert.equal(echo.seen.length, before, 'nothing reached the upstream');
    });

    it('forwards no client credentials, and a signed client address nobody can forge', T, async () => {
        const token = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB, roles: ['customer'] } });
        const r = await api.get('/api/v1/echo/me', {
            headers: { authorization: `Bearer ${token}`, cookie: 'session=secret', 'x-agora-client': clientHeader('203.0.113.9'), 'x-forwarded-for': '203.0.113.9' },
        });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.headers.authorization, undefined);
        assert.equal(r.json.headers.cookie, undefined);
        // The client's own X-Agora-Client (even a well-signed one) is replaced by the gateway's, naming the socket peer.
        const v = r.json.headers['x-agora-client'];
        const cut = v.lastIndexOf(';');
        const mac = crypto.createHmac('sha256', Buffer.from(TEST_INTERNAL_KEY, 'hex')).update(v.slice(0, cut)).digest('hex');
        assert.equal(v.slice(cut + 1), mac);
        const [ver, addr, exp] = v.slice(0, cut).split(';');
        assert.equal(ver, 'c1');
        assert.equal(addr, '127.0.0.1');
        assert.ok(Number(exp) > Date.now() / 1000);
        // Anonymous requests carry it too: the users service throttles on it.
        assert.ok((await api.get('/api/v1/echo/anon')).json.headers['x-agora-client'].startsWith('c1;127.0.0.1;'));
    });

    it('serves /metrics and /health/services only on the loopback operator listener', T, async () => {
        expectProblem(await api.get('/metrics'), 404);
        expectProblem(await api.get('/health/services'), 404);
        assert.match(gw.opsUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
        assert.equal((await client(gw.opsUrl).get('/metrics')).status, 200);
        assert.ok([200, 503].includes((await client(gw.opsUrl).get('/health/services')).status));
        // The operator listener serves nothing else, and probes stay on the public port.
        expectProblem(await client(gw.opsUrl).get('/api/v1/products'), 404);
        assert.equal((await api.get('/health')).status, 200);
    });

    it('GET /api/v1/admin/services: the service map with counters for an admin token; 401 without a valid token, 403 for a customer', T, async () => {
        await api.get('/api/v1/products?limit=1');
        const none = await api.get('/api/v1/admin/services');
        expectProblem(none, 401);
        assert.match(none.header('www-authenticate') ?? '', /^Bearer realm="agora"$/);
        const bad = await api.get('/api/v1/admin/services', { headers: { authorization: 'Bearer not.a.token' } });
        expectProblem(bad, 401);
        assert.match(bad.header('www-authenticate') ?? '', /error="invalid_token"/);
        // A forged identity header is no credential here either.
        expectProblem(await api.get('/api/v1/admin/services', { headers: { 'x-agora-identity': identityHeader({ userId: ADMIN_SUB, roles: ['admin'] }) } }), 401);
        const customer = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB, roles: ['customer'] } });
        const forbidden = await api.get('/api/v1/admin/services', { headers: { authorization: `Bearer ${customer}` } });
        expectProblem(forbidden, 403);
        assert.equal(forbidden.json.type, 'urn:agora:problem:forbidden');
        const admin = makeToken({ key: k1, claims: { sub: ADMIN_SUB, roles: ['admin'] } });
        const ok = await api.get('/api/v1/admin/services', { headers: { authorization: `Bearer ${admin}` } });
        assert.equal(ok.status, 200, ok.text);
        assert.equal(ok.json.services.catalog.status, 'ok');
        assert.ok(ok.json.services.catalog.requests.total >= 1);
        assert.equal(typeof ok.json.services.catalog.requests.duration_us, 'number');
        expectProblem(await api.post('/api/v1/admin/services', {}, { headers: { authorization: `Bearer ${admin}` } }), 405);
    });

    it('an admin token creates a product in the catalog (201); forged identities do not', T, async () => {
        const token = makeToken({ key: k1, claims: { sub: ADMIN_SUB, roles: ['admin'] } });
        const body = { sku: 'GW-1', name: 'Through the gateway', price: { amount: 1234, currency: 'EUR' } };
        const ok = await api.post('/api/v1/products', body, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(ok.status, 201, ok.text);
        assert.equal(ok.json.sku, 'GW-1');
        const forged = await api.post('/api/v1/products', { ...body, sku: 'GW-2' }, { headers: { 'x-agora-identity': `v1;${ADMIN_SUB};2;9999999999;00` } });
        expectProblem(forged, 401);
        const customer = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB, roles: ['customer'] } });
        expectProblem(await api.post('/api/v1/products', { ...body, sku: 'GW-3' }, { headers: { authorization: `Bearer ${customer}` } }), 403);
        expectProblem(await api.get('/api/v1/echo/admin', { headers: { authorization: `Bearer ${customer}` } }), 403);
        expectProblem(await api.get('/api/v1/echo/me'), 401);
    });

    it('rejects bad tokens with 401 invalid_token, also on public routes', T, async () => {
        const now = Math.floor(Date.now() / 1000);
        const other = newKey('k1');
        const pem = k1.publicKey.export({ format: 'pem', type: 'spki' });
        const cases = {
            expired: makeToken({ key: k1, claims: { exp: now - 120, iat: now - 900, nbf: now - 900 } }),
            'not yet valid': makeToken({ key: k1, claims: { nbf: now + 300, iat: now } }),
            'bad signature': makeToken({ key: other, kid: 'k1' }),
            'tampered payload': (() => {
                const [h, , s] = makeToken({ key: k1 }).split('.');
                return `${h}.${b64u({ iss: ISS, aud: AUD, sub: ADMIN_SUB, exp: now + 600, roles: ['admin'] })}.${s}`;
            })(),
            'alg none': makeToken({ key: k1, alg: 'none' }),
            'HS256 with the PEM public key': makeToken({ key: k1, alg: 'HS256', secret: pem }),
            'HS256 with the JWK': makeToken({ key: k1, alg: 'HS256', secret: JSON.stringify(k1.jwk) }),
            'unknown kid': makeToken({ key: newKey('k-unknown'), kid: 'k-unknown' }),
            'wrong aud': makeToken({ key: k1, claims: { aud: 'someone-else' } }),
            'wrong iss': makeToken({ key: k1, claims: { iss: 'evil' } }),
            garbage: 'not.a.token',
            empty: '',
        };
        for (const [name, token] of Object.entries(cases)) {
            for (const p of ['/api/v1/echo/me', '/api/v1/echo/public']) {
                const r = await api.get(p, { headers: { authorization: `Bearer ${token}` } });
                expectProblem(r, 401, { path: p });
                assert.match(r.header('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/, `${name} on ${p}`);
            }
        }
    });

    it('refetches the JWKS on an unknown kid, at most once per interval', { timeout: 30_000 }, async () => {
        await waitFor(async () => {
            // Past the minimum interval since the last fetch (the previous test
            // may have triggered one).
            const r = await api.get('/api/v1/echo/me', { headers: { authorization: `Bearer ${makeToken({ key: newKey('zz'), kid: 'zz' })}` } });
            return r.status === 401;
        });
        jwks.state.keys.push(k2);
        const before = jwks.state.fetches;
        const token = makeToken({ key: k2, claims: { sub: OTHER_SUB } });
        // Rotated in: waits for the refetch instead of failing (once allowed).
        const ok = await waitFor(async () => {
            const r = await api.get('/api/v1/echo/me', { headers: { authorization: `Bearer ${token}` } });
            return r.status === 200 ? r : null;
        }, { timeoutMs: 10_000, intervalMs: 200, message: 'token signed with a rotated-in key' });
        assert.equal(checkIdentity(ok.json.headers['x-agora-identity']).userId, OTHER_SUB);
        const after1 = jwks.state.fetches;
        assert.ok(after1 - before >= 1 && after1 - before <= 2, `fetches: ${after1 - before}`);
        // A burst of unknown kids triggers at most one more fetch.
        const bad = await Promise.all(
            Array.from({ length: 20 }, (_, i) => api.get('/api/v1/echo/me', { headers: { authorization: `Bearer ${makeToken({ key: k2, kid: `nope-${i}` })}` } })),
        );
        for (const r of bad) expectProblem(r, 401);
        assert.ok(jwks.state.fetches - after1 <= 1, `fetches after burst: ${jwks.state.fetches - after1}`);
    });

    it('rate-limits per client and per user with 429, Retry-After and RateLimit headers', T, async () => {
        const statuses = [];
        let limited;
        for (let i = 0; i < 5; i++) {
            const r = await api.get('/api/v1/limited/x');
            statuses.push(r.status);
            if (r.status === 429) limited = r;
        }
        assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
        assert.equal(statuses[4], 429);
        expectProblem(limited, 429);
        assert.ok(Number(limited.header('retry-after')) >= 1);
        assert.equal(limited.header('ratelimit-limit'), '3');
        assert.equal(limited.header('ratelimit-remaining'), '0');
        assert.ok(Number(limited.header('ratelimit-reset')) >= 1);
        // Per user: each subject has its own bucket.
        const a = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB } });
        const b = makeToken({ key: k1, claims: { sub: OTHER_SUB } });
        const as = [];
        for (let i = 0; i < 3; i++) as.push((await api.get('/api/v1/user-limited', { headers: { authorization: `Bearer ${a}` } })).status);
        assert.deepEqual(as, [200, 200, 429]);
        assert.equal((await api.get('/api/v1/user-limited', { headers: { authorization: `Bearer ${b}` } })).status, 200);
    });

    it('answers CORS preflights for allowed origins and not for others', T, async () => {
        const ok = await fetch(gw.url('/api/v1/echo/x'), {
            method: 'OPTIONS',
            headers: { origin: 'http://shop.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
        });
        assert.equal(ok.status, 204);
        assert.equal(ok.headers.get('access-control-allow-origin'), 'http://shop.test');
        assert.equal(ok.headers.get('access-control-allow-methods'), 'GET, POST, PATCH, DELETE');
        assert.equal(ok.headers.get('access-control-allow-headers'), 'Authorization, Content-Type, Idempotency-Key');
        assert.equal(ok.headers.get('access-control-max-age'), '600');
        assert.match(ok.headers.get('vary') ?? '', /Origin/);
        assert.equal(echo.seen.filter((s) => s.method === 'OPTIONS').length, 0, 'preflights never reach upstreams');
        const denied = await fetch(gw.url('/api/v1/echo/x'), {
            method: 'OPTIONS',
            headers: { origin: 'http://evil.test', 'access-control-request-method': 'POST' },
        });
        assert.equal(denied.headers.get('access-control-allow-origin'), null);
        assert.equal(denied.status, 403);
        const badMethod = await fetch(gw.url('/api/v1/echo/x'), {
            method: 'OPTIONS',
            headers: { origin: 'http://shop.test', 'access-control-request-method': 'PUT' },
        });
        assert.equal(badMethod.headers.get('access-control-allow-origin'), null);
        // Simple requests.
        const simple = await api.get('/api/v1/echo/x', { headers: { origin: 'http://shop.test' } });
        assert.equal(simple.header('access-control-allow-origin'), 'http://shop.test');
        assert.equal(simple.header('access-control-expose-headers'), 'ETag, X-Request-ID');
        assert.match(simple.header('vary') ?? '', /Origin/);
        const other = await api.get('/api/v1/echo/x', { headers: { origin: 'http://evil.test' } });
        assert.equal(other.status, 200);
        assert.equal(other.header('access-control-allow-origin'), null);
    });

    it('bounds request bodies with 413', T, async () => {
        const small = await api.post('/api/v1/small', { a: 'x'.repeat(100) });
        assert.equal(small.status, 200);
        const big = await api.post('/api/v1/small', { a: 'x'.repeat(2000) });
        expectProblem(big, 413);
        const table = await api.post('/api/v1/echo/big', { a: 'x'.repeat(70 * 1024) });
        expectProblem(table, 413);
        assert.equal(echo.seen.filter((s) => s.url.startsWith('/v1/small') && s.body.length > 1024).length, 0);
    });

    it('maps upstream failures: no instance 503 with Retry-After, hang 504 within the deadline', T, async () => {
        const none = await api.get('/api/v1/nothing');
        expectProblem(none, 503);
        assert.ok(Number(none.header('retry-after')) >= 1);
        const t0 = Date.now();
        const slow = await api.get('/api/v1/slow');
        const took = Date.now() - t0;
        expectProblem(slow, 504);
        assert.ok(took >= 400 && took < 3000, `504 after ${took} ms (route timeout 500 ms)`);
    });

    it('injects faults configured on a route: aborts and delays', T, async () => {
        const abort = await api.get('/api/v1/fault-abort/x');
        expectProblem(abort, 503, { type: 'urn:agora:problem:fault-injected' });
        assert.equal(echo.seen.filter((s) => s.url.startsWith('/api/v1/fault-abort')).length, 0);
        const token = makeToken({ key: k1, claims: { sub: CUSTOMER_SUB } });
        const t0 = Date.now();
        const delayed = await api.get('/api/v1/fault-delay/x', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(delayed.status, 200, delayed.text);
        assert.ok(Date.now() - t0 >= 290, `delayed ${Date.now() - t0} ms`);
        assert.equal(checkIdentity(delayed.json.headers['x-agora-identity']).userId, CUSTOMER_SUB);
        const m = parseMetrics((await client(gw.opsUrl).get('/metrics')).text);
        assert.equal(metricValue(m, 'gateway_faults_injected_total', { route: '/api/v1/fault-abort', kind: 'abort' }), 1);
        assert.equal(metricValue(m, 'gateway_faults_injected_total', { route: '/api/v1/fault-delay', kind: 'delay' }), 1);
    });

    it('serves GET /health/services with per-instance probes', T, async () => {
        const r = await client(gw.opsUrl).get('/health/services');
        assert.equal(r.status, 503, 'hang does not answer its probe');
        assert.equal(r.json.status, 'degraded');
        assert.equal(r.json.services.catalog.status, 'ok');
        assert.equal(r.json.services.catalog.instances[0].status, 'ok');
        // Routed but neither configured, registered nor expected: not part of this shop.
        assert.equal(r.json.services.inventory.status, 'not_deployed');
        assert.equal(r.json.services.hang.status, 'down');
        assert.equal(r.json.services.hang.instances[0].status, 'down');
    });

    it('/metrics passes promtool and counts upstream calls, limits and auth failures', { ...T, skip: !fs.existsSync(PROMTOOL) && 'no promtool' }, async () => {
        const text = (await client(gw.opsUrl).get('/metrics')).text;
        const res = await promtoolCheck(text);
        assert.equal(res.code, 0, `promtool:\n${res.out}`);
        const m = parseMetrics(text);
        assert.ok(metricValue(m, 'gateway_upstream_requests_total', { service: 'catalog', outcome: '2xx' }) >= 1);
        assert.ok(metricValue(m, 'gateway_upstream_requests_total', { service: 'hang', outcome: 'timeout' }) >= 1);
        assert.ok(metricValue(m, 'gateway_upstream_requests_total', { service: 'inventory', outcome: 'unavailable' }) >= 1);
        assert.ok(metricValue(m, 'gateway_upstream_duration_seconds_count', { service: 'echo' }) >= 1);
        assert.ok(metricValue(m, 'gateway_ratelimited_total', { route: '/api/v1/limited' }) >= 1);
        assert.ok(metricValue(m, 'gateway_auth_failures_total', { reason: 'invalid' }) >= 1);
        assert.ok(metricValue(m, 'gateway_auth_failures_total', { reason: 'expired' }) >= 1);
        assert.ok(metricValue(m, 'gateway_auth_failures_total', { reason: 'unknown_kid' }) >= 1);
        assert.ok(metricValue(m, 'http_requests_total', { route: '/api/v1/echo' }) >= 1);
        assert.ok(m.some((s) => s.name.startsWith('http_client_')), 'the client families are exposed');
        assert.ok(metricValue(m, 'gateway_token_cache_entries') >= 1);
    });

    it('stops cleanly on SIGTERM', T, async () => {
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        assert.deepEqual(gw.nonJsonLines(), []);
    });
});

// ---- An upstream shedding load ---------------------------------------------------

describe('an upstream that sheds load (503 with Retry-After)', () => {
    it('is passed through at once: no retry, no open breaker, no ejection', { timeout: 30_000 }, async () => {
        // The upstream sheds while 'shedding' (as the chassis's admission
        // does: 503, Retry-After, problem+json), else answers 200; a 503
        // without Retry-After is a failure, which the gateway retries.
        let shedding = true;
        let seen = 0;
        const up = await listen((req, res) => {
            seen++;
            req.resume();
            if (!shedding) {
                res.writeHead(200, { 'Content-Type': 'application/json' });
                res.end('{"ok":true}');
                return;
            }
            res.writeHead(503, { 'Content-Type': 'application/problem+json', 'Retry-After': '1' });
            res.end('{"type":"urn:agora:problem:service-unavailable","title":"Service Unavailable","status":503}');
        });
        const gw = await startGateway({
            routes: { routes: [{ prefix: '/api/v1/shed', service: 'shed', rewrite: '/v1/shed', roles: { '*': 'public' }, retries: 2 }] },
            upstreams: `shed=127.0.0.1:${up.port}`,
            env: { AGORA_ACCESS_LOG: 'false' },
        });
        try {
            const api = client(gw, { identity: null });
            for (let i = 0; i < 30; i++) {
                const t0 = performance.now();
                const r = await api.get('/api/v1/shed');
                const ms = performance.now() - t0;
                assert.equal(r.status, 503);
                assert.equal(r.header('retry-after'), '1', 'the upstream\'s Retry-After reaches the client');
                // A retry would wait out the Retry-After (1 s) first.
                assert.ok(ms < 900, `answered in ${ms.toFixed(0)} ms, without waiting for a retry`);
            }
            assert.equal(seen, 30, 'one attempt per request: a shed answer is not retried');
            const m = parseMetrics((await client(gw.opsUrl).get('/metrics')).text);
            assert.equal(metricValue(m, 'http_client_breaker_state', { upstream: 'shed' }), 0, 'the breaker stayed closed');
            assert.equal(metricValue(m, 'http_client_retries_total', { upstream: 'shed' }), 0);
            // The instance was not ejected either: it serves as soon as it can.
            shedding = false;
            assert.equal((await api.get('/api/v1/shed')).status, 200);
        } finally {
            await stop(gw);
            await up.close();
        }
    });
});

// ---- Load balancing and ejection ----------------------------------------------

describe('load balancing over two catalog instances', () => {
    it('spreads requests, and survives one instance killed mid-load', { timeout: 40_000 }, async () => {
        const quiet = { env: { AGORA_ACCESS_LOG: 'false' } };
        const [a, b] = await Promise.all([startService('catalog', quiet), startService('catalog', quiet)]);
        const gw = await startGateway({
            routes: testRoutes(),
            upstreams: `catalog=127.0.0.1:${a.port},127.0.0.1:${b.port}`,
            env: { AGORA_ACCESS_LOG: 'false' },
        });
        const api = client(gw, { identity: null });
        // Both instances get traffic: the catalog's own metrics count it.
        const served = async (p) => metricValue(parseMetrics((await client(p).get('/metrics')).text), 'http_requests_total', { route: '/v1/products' });
        for (let i = 0; i < 20; i++) assert.equal((await api.get('/api/v1/products')).status, 200);
        assert.ok((await served(a)) >= 5 && (await served(b)) >= 5, 'round robin over both');

        const counts = { ok: 0, bad: 0, statuses: [] };
        let killed = false;
        let stopAt = Infinity;
        const loops = Array.from({ length: 20 }, () => loadLoop(api, '/api/v1/products', () => Date.now() > stopAt, counts));
        await waitFor(() => counts.ok >= 200, { message: 'load running' });
        b.kill('SIGKILL');
        killed = true;
        await b.exited;
        const badAtKill = counts.bad;
        stopAt = Date.now() + 2500;
        await Promise.all(loops);
        assert.ok(killed);
        // Connect failures go to the other instance: the death of one of two is invisible.
        assert.equal(counts.bad, 0, `client-visible errors ${counts.bad} (${counts.statuses.join(',')}); at kill ${badAtKill}`);
        // After ejection every request succeeds.
        for (let i = 0; i < 30; i++) assert.equal((await api.get('/api/v1/products')).status, 200);
        const m = parseMetrics((await client(gw.opsUrl).get('/metrics')).text);
        assert.ok(metricValue(m, 'gateway_upstream_requests_total', { service: 'catalog', outcome: '2xx' }) >= counts.ok);
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        await stop(a);
    });
});

// ---- Static files -------------------------------------------------------------

describe('static files', () => {
    let gw;
    let root;
    let outside;

    before(async () => {
        const base = makeTempDir('agora-gw-web-');
        root = path.join(base, 'web');
        outside = path.join(base, 'outside');
        fs.mkdirSync(path.join(root, 'assets', 'deep'), { recursive: true });
        fs.mkdirSync(outside);
        fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>t</title>home');
        fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1);\n');
        fs.writeFileSync(path.join(root, 'assets', 'deep', 'style.css'), 'body{}');
        fs.writeFileSync(path.join(root, 'assets', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
        fs.writeFileSync(path.join(root, '.env'), 'SECRET=1');
        fs.writeFileSync(path.join(outside, 'secret.txt'), 'TOP-SECRET');
        fs.symlinkSync(outside, path.join(root, 'link-out'));
        fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'secret-link.txt'));
        gw = await startGateway({ routes: testRoutes(), upstreams: 'echo=127.0.0.1:9', env: { AGORA_GATEWAY_WEB_ROOT: root } });
    });

    it('serves index.html for / and nested files with MIME types, ETag and 304', T, async () => {
        const home = await fetch(gw.url('/'));
        assert.equal(home.status, 200);
        assert.equal(home.headers.get('content-type'), 'text/html; charset=utf-8');
        assert.equal(home.headers.get('cache-control'), 'no-cache');
        assert.match(await home.text(), /home/);
        const etag = home.headers.get('etag');
        assert.match(etag, /^"[^"]+"$/);
        const again = await fetch(gw.url('/index.html'), { headers: { 'if-none-match': etag } });
        assert.equal(again.status, 304);
        assert.equal(again.headers.get('etag'), etag);
        const js = await fetch(gw.url('/assets/app.js'));
        assert.equal(js.status, 200);
        assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
        assert.match(js.headers.get('cache-control'), /^public, max-age=\d+$/);
        assert.equal(await js.text(), 'console.log(1);\n');
        const css = await fetch(gw.url('/assets/deep/style.css'));
        assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
        const cssTag = css.headers.get('etag');
        assert.equal((await fetch(gw.url('/assets/deep/style.css'), { headers: { 'if-none-match': `W/${cssTag}, "x"` } })).status, 304);
        assert.equal((await fetch(gw.url('/assets/logo.svg'))).headers.get('content-type'), 'image/svg+xml');
        const head = await fetch(gw.url('/assets/app.js'), { method: 'HEAD' });
        assert.equal(head.headers.get('content-length'), '16');
        // A changed file gets a new ETag.
        fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(22);\n');
        const changed = await fetch(gw.url('/assets/app.js'));
        assert.equal(await changed.text(), 'console.log(22);\n');
        assert.notEqual(changed.headers.get('etag'), js.headers.get('etag'));
        // Directories redirect to their slash form, then serve index.html.
        const dir = await fetch(gw.url('/assets'), { redirect: 'manual' });
        assert.equal(dir.status, 301);
        assert.equal(dir.headers.get('location'), '/assets/');
        expectProblem(await client(gw.baseUrl).get('/missing.html'), 404);
        expectProblem(await client(gw.baseUrl).post('/index.html', {}), 405);
    });

    it('refuses traversal, encoded separators, hidden files and symlinks out of the root', T, async () => {
        const attempts = [
            '/../outside/secret.txt',
            '/assets/../../outside/secret.txt',
            '/%2e%2e/outside/secret.txt',
            '/%2E%2E/%2e%2e/outside/secret.txt',
            '/assets/%2e%2e%2f%2e%2e%2foutside/secret.txt',
            '/assets%2f..%2f..%2foutside%2fsecret.txt',
            '/%252e%252e/outside/secret.txt',
            '/..%5c..%5coutside/secret.txt',
            '//etc/passwd',
            '/etc/passwd',
            '/link-out/secret.txt',
            '/secret-link.txt',
            '/.env',
            '/index.html%00.js',
            `/${'a'.repeat(5000)}`,
        ];
        for (const p of attempts) {
            const r = await rawRequest(gw.port, `GET ${p} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`);
            assert.ok([400, 404].includes(r.status), `${p}: ${r.status}`);
            assert.ok(!r.body.includes('TOP-SECRET') && !r.body.includes('SECRET=1') && !r.body.includes('root:'), `${p} leaked`);
        }
        assert.equal(gw.logs((o) => o.level === 'error').length, 0);
    });

    after(async () => {
        if (gw) assert.deepEqual(await stop(gw), { code: 0, signal: null });
    });
});

// ---- Shipped routes.json ------------------------------------------------------

describe('the shipped route table', () => {
    it('covers the public API map with the services roles', T, async () => {
        const catalog = await startService('catalog');
        const gw = await startService('gateway', {
            env: {
                AGORA_SOURCE_DIR: sourceDir(),
                AGORA_GATEWAY_ROUTES_FILE: undefined,
                AGORA_GATEWAY_UPSTREAMS: `catalog=127.0.0.1:${catalog.port}`,
            },
        });
        const api = client(gw, { identity: null });
        assert.equal((await api.get('/api/v1/products')).status, 200);
        assert.equal((await api.get('/api/v1/categories')).status, 200);
        expectProblem(await api.post('/api/v1/products', {}), 401);
        expectProblem(await api.post('/api/v1/categories', {}), 401);
        // Public paths of services without instances answer 503; protected
        // ones ask for a token first.
        const publicPaths = [
            ['POST', '/api/v1/users'],
            ['POST', '/api/v1/auth/login'],
            ['POST', '/api/v1/auth/refresh'],
            ['POST', '/api/v1/auth/logout'],
            ['GET', '/.well-known/jwks.json'],
            ['GET', '/api/v1/stock'],
        ];
        for (const [method, p] of publicPaths) {
            const r = await api.request(method, p, method === 'POST' ? { json: {} } : {});
            expectProblem(r, 503);
        }
        const protectedPaths = [
            ['GET', '/api/v1/users/me'],
            ['PATCH', '/api/v1/users/me'],
            ['GET', '/api/v1/users'],
            ['GET', '/api/v1/users/u1'],
            ['GET', '/api/v1/stock/p1'],
            ['PUT', '/api/v1/stock/p1'],
            ['GET', '/api/v1/reservations'],
            ['GET', '/api/v1/reservations/r1'],
            ['GET', '/api/v1/cart'],
            ['POST', '/api/v1/cart/items'],
            ['DELETE', '/api/v1/cart/items/p1'],
            ['POST', '/api/v1/orders'],
            ['GET', '/api/v1/orders'],
            ['GET', '/api/v1/orders/o1'],
            ['POST', '/api/v1/orders/o1/cancel'],
            ['GET', '/api/v1/payments'],
            ['GET', '/api/v1/payments/p1'],
            ['POST', '/api/v1/payments/p1/refunds'],
            ['GET', '/api/v1/shipments'],
            ['GET', '/api/v1/shipments/s1'],
            ['GET', '/api/v1/notifications'],
            ['GET', '/api/v1/reports/sales'],
        ];
        for (const [method, p] of protectedPaths) {
            const r = await api.request(method, p, method === 'GET' ? {} : { json: {} });
            expectProblem(r, 401, { path: p });
        }
        // The web UI from the repository's web/ directory.
        const home = await fetch(gw.url('/'));
        assert.equal(home.status, 200);
        assert.match(await home.text(), /Agora/);
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        await stop(catalog);
    });

    it('rejects a bad route table or upstream list at start-up with status 2', T, async () => {
        const bad = [
            [{ routes: [{ prefix: 'api', service: 'x' }] }, /routes\[0\]\.prefix/],
            [{ routes: [{ prefix: '/a', service: 'x', roles: { GET: 'root' } }] }, /roles/],
            [{ routes: [{ prefix: '/a', service: 'x', rate_limit: { per_client: { rate: 0 } } }] }, /rate/],
            [{ routes: [{ prefix: '/a', service: 'x', typo: 1 }] }, /unknown key 'typo'/],
        ];
        for (const [routes, re] of bad) {
            const p = spawnService('gateway', { env: { AGORA_GATEWAY_ROUTES_FILE: writeJsonFile(routes) } });
            const st = await waitExit(p);
            assert.equal(st.code, 2, p.stderr());
            assert.match(p.stderr(), /config: AGORA_GATEWAY_ROUTES_FILE/);
            assert.match(p.stderr(), re);
        }
        const p = spawnService('gateway', { env: { AGORA_GATEWAY_ROUTES_FILE: writeJsonFile(testRoutes()), AGORA_GATEWAY_UPSTREAMS: 'catalog=nohostport' } });
        assert.equal((await waitExit(p)).code, 2);
        assert.match(p.stderr(), /config: AGORA_GATEWAY_UPSTREAMS/);
        // The operator listener's address is checked with the settings too
        // (it used to fail later, at listen time, with status 1).
        for (const bad of ['8090', ':8090', '127.0.0.1:http', '127.0.0.1:70000']) {
            const q = spawnService('gateway', { env: { AGORA_GATEWAY_ROUTES_FILE: writeJsonFile(testRoutes()), AGORA_OPS_ADDRESS: bad } });
            assert.equal((await waitExit(q)).code, 2, `${bad}: ${q.stderr()}`);
            assert.match(q.stderr(), /config: AGORA_OPS_ADDRESS: '.*' is not host:port/);
        }
    });
});

// ---- Registry: configuration reload ---------------------------------------------

const HAVE_REGISTRY = fs.existsSync(binaryPath('registry'));

describe('configuration through the registry', { skip: !HAVE_REGISTRY && 'registry not built' }, () => {
    it('applies a changed gateway.routes without a restart', { timeout: 30_000 }, async () => {
        const [registry, catalog] = await Promise.all([startService('registry'), startService('catalog')]);
        const gw = await startGateway({
            routes: testRoutes(),
            upstreams: `catalog=127.0.0.1:${catalog.port}`,
            env: { AGORA_REGISTRY_URL: registry.baseUrl, AGORA_GATEWAY_EXPECTED_SERVICES: 'catalog,inventory' },
        });
        const api = client(gw, { identity: null });
        expectProblem(await api.get('/api/v2/things'), 404);
        // Expected (as agora up passes its program table) but not registered: down.
        const before = await client(gw.opsUrl).get('/health/services');
        assert.equal(before.json.services.inventory.status, 'down');
        assert.equal(before.status, 503);
        const routes = testRoutes();
        routes.routes.push({ prefix: '/api/v2/things', service: 'catalog', rewrite: '/v1/products', roles: { GET: 'public' } });
        const put = await client(registry, { identity: OPERATOR }).put('/v1/config/gateway.routes', { value: routes });
        assert.ok(put.status === 200 || put.status === 201, `PUT config: ${put.status} ${put.text}`);
        await waitFor(async () => (await api.get('/api/v2/things')).status === 200, { message: 'new route answers' });
        // An invalid table is refused and the last good one stays.
        await client(registry, { identity: OPERATOR }).put('/v1/config/gateway.routes', { value: { routes: [{ prefix: 'bad' }] } });
        await waitFor(() => gw.logs((o) => o.level === 'error' && /not a valid route table/.test(o.msg))[0], { message: 'invalid table logged' });
        assert.equal((await api.get('/api/v2/things')).status, 200);
        // The gateway registered itself.
        const reg = await client(registry, { identity: OPERATOR }).get('/v1/services/gateway');
        assert.equal(reg.status, 200, reg.text);
        // Instances of services not listed statically follow the registry:
        // register an echo server as "inventory" and the route answers.
        const echo = await startEcho('inv-1');
        expectProblem(await api.get('/api/v1/nothing'), 503);
        const put2 = await client(registry, { identity: OPERATOR }).put('/v1/services/inventory/instances/inv-1', { address: '127.0.0.1', port: echo.port, ttl_ms: 30000 });
        assert.ok(put2.status < 300, `register: ${put2.status} ${put2.text}`);
        const viaRegistry = await waitFor(async () => {
            const r = await api.get('/api/v1/nothing/x?y=1');
            return r.status === 200 ? r : null;
        }, { message: 'route to a registry instance' });
        assert.equal(viaRegistry.json.url, '/v1/stock/x?y=1');
        const health = await client(gw.opsUrl).get('/health/services');
        assert.equal(health.json.services.inventory.source, 'registry');
        assert.equal(health.json.services.inventory.instances[0].id, 'inv-1');
        assert.equal(health.json.services.inventory.status, 'ok');
        await echo.close();
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        await Promise.all([stop(catalog), stop(registry)]);
    });
});

// ---- End to end with the users service -------------------------------------------

const HAVE_USERS = fs.existsSync(binaryPath('users'));

describe('end to end with the users service', { skip: !HAVE_USERS && 'users not built' }, () => {
    it('register, log in and read /users/me through the gateway', { timeout: 30_000 }, async () => {
        const users = await startService('users', { env: { AGORA_USERS_ARGON2_MEMLIMIT: '19MiB', AGORA_USERS_ARGON2_OPSLIMIT: '2' } });
        const gw = await startGateway({ routes: path.join(sourceDir(), 'platform/gateway/routes.json'), upstreams: `users=127.0.0.1:${users.port}` });
        const api = client(gw, { identity: null });
        const email = `gw-${crypto.randomUUID()}@example.com`;
        const password = 'correct-horse-battery-staple-9';
        const reg = await api.post('/api/v1/users', { email, password, name: 'Gateway Tester' });
        assert.equal(reg.status, 201, reg.text);
        const login = await api.post('/api/v1/auth/login', { email, password });
        assert.equal(login.status, 200, login.text);
        const token = login.json.access_token;
        assert.ok(token);
        const me = await api.get('/api/v1/users/me', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(me.status, 200, me.text);
        assert.equal(me.json.email, email);
        expectProblem(await api.get('/api/v1/users/me'), 401);
        expectProblem(await api.get('/api/v1/users', { headers: { authorization: `Bearer ${token}` } }), 403);
        const keys = await api.get('/.well-known/jwks.json');
        assert.equal(keys.status, 200);
        assert.ok(Array.isArray(keys.json.keys));
        assert.deepEqual(await stop(gw), { code: 0, signal: null });
        await stop(users);
    });

    it('restores the deny list from users at start: a logged-out session is refused (401), another served; 503 until restored', { timeout: 30_000 }, async () => {
        const users = await startService('users', { env: { AGORA_USERS_ARGON2_MEMLIMIT: '19MiB', AGORA_USERS_ARGON2_OPSLIMIT: '2' } });
        const direct = client(users, { identity: null });
        const email = `gw-${crypto.randomUUID()}@example.com`;
        const password = 'correct-horse-battery-staple-9';
        assert.equal((await direct.post('/v1/users', { email, password, name: 'Deny' })).status, 201);
        const a = (await direct.post('/v1/auth/login', { email, password })).json;
        const b = (await direct.post('/v1/auth/login', { email, password })).json;
        // Logged out while no gateway runs (no bus either: the event waits
        // in the outbox); the gateway learns it from the restore.
        assert.equal((await direct.post('/v1/auth/logout', { refresh_token: a.refresh_token })).status, 204);
        const gw = await startGateway({ routes: path.join(sourceDir(), 'platform/gateway/routes.json'), upstreams: `users=127.0.0.1:${users.port}` });
        const api = client(gw, { identity: null });
        const me = (t) => api.get('/api/v1/users/me', { headers: { authorization: `Bearer ${t}` } });
        await waitFor(async () => (await me(b.access_token)).status === 200, { message: 'session B served' });
        const refused = expectProblem(await me(a.access_token), 401);
        assert.match(refused.detail, /revoked/);
        // Twice: the second answer comes from the verified-token cache.
        expectProblem(await me(a.access_token), 401);
        const m = parseMetrics((await client(gw.opsUrl).get('/metrics')).text);
        assert.ok(metricValue(m, 'gateway_revocations_applied_total', { source: 'restore' }) >= 1);
        assert.ok(metricValue(m, 'gateway_deny_entries', { kind: 'session' }) >= 1);
        assert.equal(metricValue(m, 'gateway_deny_refusals_total', { reason: 'session' }), 2);
        assert.equal(metricValue(m, 'gateway_deny_restored'), 1);
        assert.deepEqual(await stop(gw), { code: 0, signal: null });

        // A users service that refuses the restore (here: a gateway whose
        // service key users does not know) leaves the list unrestored:
        // tokens get 503, never a pass, while public routes work.
        const blind = await startGateway({
            routes: path.join(sourceDir(), 'platform/gateway/routes.json'),
            upstreams: `users=127.0.0.1:${users.port}`,
            env: { AGORA_SERVICE_KEY: '11'.repeat(32) },
        });
        const api2 = client(blind, { identity: null });
        assert.equal((await api2.get('/.well-known/jwks.json')).status, 200);
        const r = await api2.get('/api/v1/users/me', { headers: { authorization: `Bearer ${b.access_token}` } });
        expectProblem(r, 503);
        assert.match(r.json.detail, /revoked tokens/);
        const m2 = parseMetrics((await client(blind.opsUrl).get('/metrics')).text);
        assert.equal(metricValue(m2, 'gateway_deny_restored'), 0);
        assert.deepEqual(await stop(blind), { code: 0, signal: null });
        await stop(users);
    });
});
