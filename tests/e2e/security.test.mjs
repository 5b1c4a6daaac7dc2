// SPDX-License-Identifier: MIT
// Whole-system attack tests (the security issue): each finding tried as an
// attacker would, against the shop `agora up` runs, through the gateway and
// as a local process without the shop's key. Clients are told apart by
// their loopback source address (127.0.0.x), as the gateway sees them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { cleanup, sourceDir, waitFor } from '../lib/proc.mjs';
import { execFileSync } from 'node:child_process';
import { requireTool } from '../lib/openapi.mjs';
import { RawConnection } from '../lib/http.mjs';
import { identityHeader, OPERATOR, serviceIdentity, serviceKey } from '../lib/identity.mjs';
import { PROGRAMS } from '../lib/ports.mjs';
import { SHOP_PORTS, startShop, TEST_BACKENDS } from '../lib/shop.mjs';

const T = { timeout: 60_000 };

// One request from local address 'from' (default 127.0.0.1); resolves
// { status, headers, body (parsed JSON or null), text }.
function req(method, url, { json, headers = {}, from = '127.0.0.1' } = {}) {
    return new Promise((resolve, reject) => {
        const body = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
        const h = { ...headers };
        if (body) {
            h['content-type'] = 'application/json';
            h['content-length'] = body.length;
        }
        const r = http.request(url, { method, headers: h, localAddress: from, agent: false }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (text += c));
            res.on('end', () => {
                let parsed = null;
                try {
                    parsed = JSON.parse(text);
                } catch {
                    parsed = null;
                }
                resolve({ status: res.statusCode, headers: res.headers, body: parsed, text });
            });
        });
        r.on('error', reject);
        if (body) r.write(body);
        r.end();
    });
}

describe('security: attacks on the shop', () => {
    let shop;
    let seq = 0;
    const email = () => `sec-${process.pid}-${++seq}@example.com`;
    const signUp = async (from) => {
        const u = { email: email(), password: 'a long enough passphrase', name: 'Sec' };
        const r = await req('POST', `${shop.gw}/api/v1/users`, { json: u, from });
        assert.equal(r.status, 201, r.text);
        return u;
    };
    const login = (u, password, from) => req('POST', `${shop.gw}/api/v1/auth/login`, { json: { email: u.email, password }, from });

    before(async () => {
        shop = await startShop();
    });

    after(async () => {
        if (shop) {
            const st = await shop.stop();
            assert.deepEqual(st, { code: 0, signal: null }, shop.stderr().slice(-3000));
        }
        cleanup();
    });

    it("one client's failed logins and sign-ups never cost another client anything", T, async () => {
        const victim = await signUp('127.0.0.3');
        // The attacker hammers logins and sign-ups until the users service refuses it.
        let refused = 0;
        for (let i = 0; i < 40; i++) {
            const r = await login({ email: `nobody-${i}@example.com` }, 'wrong password', '127.0.0.2');
            assert.ok([401, 429].includes(r.status), r.text);
            if (r.status === 429) refused++;
        }
        assert.ok(refused >= 5, `the attacking client was throttled (${refused} of 40 refused)`);
        const signUpAttempt = await req('POST', `${shop.gw}/api/v1/users`, { json: { email: email(), password: 'a long enough passphrase', name: 'x' }, from: '127.0.0.2' });
        assert.equal(signUpAttempt.status, 429, 'sign-ups count against the same client');
        // Spoofed forwarding headers do not make the attacker someone else.
        const spoof = await req('POST', `${shop.gw}/api/v1/auth/login`, {
            json: { email: 'x@example.com', password: 'wrong password' },
            headers: { 'x-forwarded-for': '127.0.0.3', forwarded: 'for=127.0.0.3', 'x-agora-client': 'c1;127.0.0.3;9999999999;00' },
            from: '127.0.0.2',
        });
        assert.equal(spoof.status, 429);
        // Every other client still signs up and signs in.
        const ok = await login(victim, victim.password, '127.0.0.3');
        assert.equal(ok.status, 200, ok.text);
        const fresh = await signUp('127.0.0.4');
        assert.equal((await login(fresh, fresh.password, '127.0.0.4')).status, 200);
    });

    it("a stranger's wrong passwords never lock the owner out", T, async () => {
        const owner = await signUp('127.0.0.5');
        assert.equal((await login(owner, owner.password, '127.0.0.5')).status, 200);
        let slowed = false;
        for (let i = 0; i < 10; i++) {
            const r = await login(owner, `guess ${i}`, '127.0.0.6');
            assert.ok([401, 429].includes(r.status), r.text);
            slowed ||= r.status === 429;
        }
        assert.ok(slowed, 'the stranger is slowed down');
        const r = await login(owner, owner.password, '127.0.0.5');
        assert.equal(r.status, 200, `the owner is refused: ${r.text}`);
    });

    it('a local process without the key cannot register a fake users instance, nor reach logins', T, async () => {
        const caught = [];
        const fake = http.createServer((rq, rs) => {
            caught.push(rq.url);
            rs.writeHead(200, { 'content-type': 'application/json' });
            rs.end('{"keys":[]}');
        });
        await new Promise((r) => fake.listen(0, '127.0.0.1', r));
        try {
            const port = fake.address().port;
            const registry = shop.url('registry');
            for (let i = 0; i < 3; i++) {
                const r = await req('PUT', `${registry}/v1/services/users/instances/rogue-${i}`, { json: { address: '127.0.0.1', port, ttl_ms: 60000 } });
                assert.equal(r.status, 401, r.text);
            }
            // Nor with a guessed key, nor by claiming to be the operator with it.
            const guessed = { 'x-agora-identity': identityHeader({ ...OPERATOR, key: crypto.randomBytes(32).toString('hex') }) };
            const g = await req('PUT', `${registry}/v1/services/users/instances/rogue-g`, { json: { address: '127.0.0.1', port, ttl_ms: 60000 }, headers: guessed });
            assert.equal(g.status, 401, g.text);
            // Even a key holder may register only its own service.
            const asCatalog = { 'x-agora-identity': identityHeader({ ...serviceIdentity('catalog'), key: shop.serviceMaster }) };
            const c = await req('PUT', `${registry}/v1/services/users/instances/rogue-c`, { json: { address: '127.0.0.1', port, ttl_ms: 60000 }, headers: asCatalog });
            assert.equal(c.status, 403, c.text);
            const listed = await req('GET', `${registry}/v1/services/users`, { headers: shop.operator });
            assert.deepEqual(listed.body.instances.map((i) => i.id).filter((id) => id.startsWith('rogue')), []);
            const u = await signUp('127.0.0.7');
            for (let i = 0; i < 6; i++) assert.equal((await login(u, u.password, '127.0.0.7')).status, 200);
            assert.deepEqual(caught, [], 'no login (and no JWKS fetch) reached the fake instance');
        } finally {
            await new Promise((r) => fake.close(r));
        }
    });

    it('a self-signed admin token is refused: the only key set is the real users service one', T, async () => {
        const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const jwk = publicKey.export({ format: 'jwk' });
        const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
        const now = Math.floor(Date.now() / 1000);
        const head = b64({ alg: 'ES256', typ: 'JWT', kid: 'rogue', jwk });
        const claims = b64({ iss: 'agora-users', aud: 'agora', sub: '01a20000-0000-7000-8000-0000000000a9', roles: ['admin'], iat: now, nbf: now, exp: now + 600 });
        const sig = crypto.sign('sha256', Buffer.from(`${head}.${claims}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
        const r = await req('GET', `${shop.gw}/api/v1/users`, { headers: { authorization: `Bearer ${head}.${claims}.${sig.toString('base64url')}` } });
        assert.equal(r.status, 401, r.text);
    });

    it('configuration and the bus refuse a local process without the key', T, async () => {
        const registry = shop.url('registry');
        const bus = shop.url('bus');
        const down = { routes: [{ prefix: '/api/v1/products', service: 'catalog', rewrite: '/v1/products', roles: { '*': 'public' }, fault: { abort_percent: 100, abort_status: 503 } }] };
        assert.equal((await req('PUT', `${registry}/v1/config/gateway.routes`, { json: { value: down } })).status, 401);
        assert.equal((await req('DELETE', `${registry}/v1/config/gateway.routes`)).status, 401);
        // A service's key cannot rewrite the gateway's routes either: only the operator can.
        const asUsers = { 'x-agora-identity': identityHeader({ ...serviceIdentity('users'), key: shop.serviceMaster }) };
        assert.equal((await req('PUT', `${registry}/v1/config/gateway.routes`, { json: { value: down }, headers: asUsers })).status, 403);
        assert.equal((await req('GET', `${shop.gw}/api/v1/products?limit=1`)).status, 200, 'the shop still sells');

        const forged = { messages: [{ topic: 'user.registered', subject: 'victim', data: { user_id: 'victim', email: 'victim@example.com', name: 'click http://evil.example' } }] };
        assert.equal((await req('POST', `${bus}/v1/messages`, { json: forged })).status, 401);
        assert.equal((await req('DELETE', `${bus}/v1/subscriptions/notifications/dead-letters`)).status, 401);
        assert.equal((await req('GET', `${bus}/v1/subscriptions`)).status, 401);
        assert.equal((await req('GET', `${registry}/v1/services`)).status, 401, 'topology is not for strangers');
    });

    it('every process holds its own service key and no other, none holds the master; a service identity is made only with its own key', T, async () => {
        for (const p of PROGRAMS.filter((x) => x.binary !== null)) {
            const pid = shop.pidOf(p.name);
            assert.ok(pid > 0, `${p.name} runs`);
            const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
            assert.deepEqual(env.filter((e) => e.startsWith('AGORA_SERVICE_KEY=')), [`AGORA_SERVICE_KEY=${serviceKey(p.name, shop.serviceMaster)}`], p.name);
            assert.ok(!env.some((e) => e.includes(shop.serviceMaster)), `${p.name} does not hold the master`);
            for (const other of PROGRAMS.filter((x) => x.name !== p.name)) assert.ok(!env.some((e) => e.includes(serviceKey(other.name, shop.serviceMaster))), `${p.name} holds ${other.name}'s key`);
        }
        const bus = shop.url('bus');
        const order = { messages: [{ id: crypto.randomUUID(), topic: 'order.created', subject: 'victim', data: { order_id: 'victim' } }] };
        const asCatalog = { 'x-agora-identity': identityHeader({ ...serviceIdentity('catalog'), key: shop.serviceMaster }) };
        assert.equal((await req('POST', `${bus}/v1/messages`, { json: order, headers: asCatalog })).status, 403, 'catalog publishes product.* only');
        assert.equal((await req('POST', `${bus}/v1/subscriptions/orders/pull`, { json: { wait_ms: 0 }, headers: asCatalog })).status, 403, 'nor reads orders\' queue');
        // The shared key every process holds makes no service identity.
        const hmacOrders = { 'x-agora-identity': identityHeader({ ...serviceIdentity('orders'), key: shop.key, hmac: true }) };
        assert.equal((await req('POST', `${bus}/v1/messages`, { json: order, headers: hmacOrders })).status, 401);
        const hmacOperator = { 'x-agora-identity': identityHeader({ ...OPERATOR, key: shop.key, hmac: true }) };
        assert.equal((await req('PUT', `${shop.url('registry')}/v1/config/gateway.routes`, { json: { value: { routes: [] } }, headers: hmacOperator })).status, 401);
        assert.equal((await req('GET', `${shop.url('registry')}/v1/config`, { headers: shop.operator })).status, 200, 'the operator reads configuration');
    });

    it('on RabbitMQ too, a service publishes only its own event types and reads only its own queue', T, async () => {
        if (!TEST_BACKENDS.includes('rabbitmq')) {
            // The bus: the test above checks its owner table; here its dead letters.
            const asCatalog = { 'x-agora-identity': identityHeader({ ...serviceIdentity('catalog'), key: shop.serviceMaster }) };
            assert.equal((await req('GET', `${shop.url('bus')}/v1/admin/subscriptions`, { headers: asCatalog })).status, 403);
            return;
        }
        const amqp = requireTool('amqplib');
        const script = path.join(sourceDir(), 'scripts', 'engine-rabbitmq');
        const url = execFileSync(script, ['adduser', path.join(shop.data, 'engines', 'rabbitmq'), 'catalog'], { encoding: 'utf8' }).trim();
        const conn = await amqp.connect(url);
        conn.on('error', () => {});
        try {
            // Publishing order.created on the events exchange: the channel is closed with 403.
            const ch = await conn.createConfirmChannel();
            const closed = new Promise((resolve) => ch.on('error', (e) => resolve(e)));
            ch.publish('agora.events', 'order.created', Buffer.from('{}'), { persistent: true });
            const err = await closed;
            assert.match(String(err.message), /ACCESS_REFUSED|403/);
            // Nor may it read the orders queue.
            const ch2 = await conn.createChannel();
            const closed2 = new Promise((resolve) => ch2.on('error', (e) => resolve(e)));
            ch2.consume('orders', () => {}).catch(() => {});
            assert.match(String((await closed2).message), /ACCESS_REFUSED|403/);
        } finally {
            await conn.close().catch(() => {});
        }
    });

    it('keeps the data directory and every database, WAL and key file private', T, async () => {
        // 0700; with a private PostgreSQL run as its own user (root, --backends
        // postgres) 0711: search permission only, nothing listed or read.
        const dirMode = fs.statSync(shop.data).mode & 0o777;
        assert.ok(dirMode === 0o700 || (TEST_BACKENDS.includes('postgres') && dirMode === 0o711), `data directory mode ${dirMode.toString(8)}`);
        const files = fs.readdirSync(shop.data).filter((f) => fs.statSync(path.join(shop.data, f)).isFile());
        const sqlite = TEST_BACKENDS.includes('postgres') ? ['registry.db', 'registry.db-wal'] : ['users.db', 'users.db-wal'];
        for (const want of [...sqlite, 'internal.key', 'admin-password']) assert.ok(files.includes(want), `${want} in ${files}`);
        for (const f of files) {
            const mode = fs.statSync(path.join(shop.data, f)).mode & 0o777;
            assert.equal(mode & 0o077, 0, `${f} is mode ${mode.toString(8)}`);
        }
    });

    it('refuses two Authorization headers', T, async () => {
        const c = await RawConnection.open(shop.off + SHOP_PORTS.gateway);
        try {
            await c.write('GET /api/v1/users/me HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\nConnection: close\r\n\r\n');
            const r = await c.readResponse();
            assert.equal(r.status, 400);
        } finally {
            c.close();
        }
    });

    it('serves /metrics and /health/services to operators on loopback only, not on the public port', T, async () => {
        assert.equal((await req('GET', `${shop.gw}/metrics`)).status, 404);
        assert.equal((await req('GET', `${shop.gw}/health/services`)).status, 404);
        const m = await req('GET', `${shop.ops}/metrics`);
        assert.equal(m.status, 200);
        assert.match(m.text, /http_requests_total/);
        const h = await waitFor(async () => {
            const r = await req('GET', `${shop.ops}/health/services`);
            return r.status === 200 ? r : null;
        }, { timeoutMs: 10_000, message: 'a healthy shop says healthy' });
        assert.equal(h.body.status, 'ok');
    });
});
