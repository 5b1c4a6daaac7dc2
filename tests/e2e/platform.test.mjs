// SPDX-License-Identifier: MIT
// Whole-system test: `agora up` starts every program of the shop in a
// temporary directory on free ports; a customer and the administrator use
// the shop through the gateway only; SIGTERM stops everything with exit 0.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, sourceDir, waitFor } from '../lib/proc.mjs';
import { identityHeader, TEST_INTERNAL_KEY } from '../lib/identity.mjs';
import { extraPorts, findOffset, portFree, startShop, TEST_BACKENDS, TEST_SCALE } from '../lib/shop.mjs';
import { requireTool } from '../lib/openapi.mjs';
import { GATEWAY_OPS_PORT, PROGRAMS } from '../lib/ports.mjs';
import { validate } from '../lib/schema.mjs';

// The default ports of the programs `agora up` starts (chassis/include/agora/ports.h),
// the gateway's operator listener, and the test's own mail sink; all of them moved by one offset.
const PORTS = { ...Object.fromEntries(PROGRAMS.map((p) => [p.name, p.port])), gatewayOps: GATEWAY_OPS_PORT, smtp: 2525 };


async function call(base, method, p, { json, token, headers = {} } = {}) {
    const h = { ...headers };
    if (json !== undefined) h['content-type'] = 'application/json';
    if (token) h.authorization = `Bearer ${token}`;
    const r = await fetch(base + p, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
    const text = await r.text();
    let body = null;
    try {
        body = JSON.parse(text);
    } catch {
        body = null;
    }
    return { status: r.status, headers: r.headers, text, body };
}

describe('agora up: the whole shop through the gateway', () => {
    let shop;
    let data;
    let gw;
    let bus;
    let op; // headers of the operator's identity
    let smtp;
    let maildir;
    let customer;
    let off;
    const seen = [];
    let amqpConn = null;

    before(async () => {
        off = await findOffset(Object.values(PORTS), extraPorts(TEST_SCALE, TEST_BACKENDS));
        // A real SMTP server on loopback for the notifications service.
        maildir = makeTempDir('agora-e2e-mail-');
        smtp = spawn(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', [path.join(sourceDir(), 'services/notifications/tests/smtpd.py'), '--port', String(PORTS.smtp + off), '--dir', maildir], {
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let smtpOut = '';
        smtp.stdout.on('data', (b) => {
            smtpOut += b.toString();
        });
        await waitFor(() => smtpOut.includes('listening'), { timeoutMs: 20000, message: 'smtpd listening' });
        shop = await startShop({ offset: off, env: { AGORA_SMTP_URL: `smtp://127.0.0.1:${PORTS.smtp + off}` } });
        data = shop.data;
        gw = `http://127.0.0.1:${PORTS.gateway + off}`;
        bus = `http://127.0.0.1:${PORTS.bus + off}`;
        // The bus and the registry answer only a service identity signed with the shop's key.
        op = shop.operator;
        // An observer, to check the events the services publish: a
        // subscription on the bus, or on RabbitMQ (--backends rabbitmq) a
        // queue of its own bound to the events exchange, read as the
        // node's administrator.
        if (TEST_BACKENDS.includes('rabbitmq')) {
            const amqp = requireTool('amqplib');
            const url = execFileSync(path.join(sourceDir(), 'scripts', 'engine-rabbitmq'), ['adduser', path.join(data, 'engines', 'rabbitmq'), 'admin'], { encoding: 'utf8' }).trim();
            amqpConn = await amqp.connect(url);
            // The broker closes it when the shop stops: nothing to report.
            amqpConn.on('error', () => {});
            const ch = await amqpConn.createChannel();
            const q = await ch.assertQueue('', { exclusive: true });
            for (const key of ['user.#', 'product.#']) await ch.bindQueue(q.queue, 'agora.events', key);
            await ch.consume(q.queue, (m) => seen.push(JSON.parse(m.content.toString())), { noAck: true });
        } else {
            const sub = await call(bus, 'PUT', '/v1/subscriptions/e2e-observer', {
                headers: op,
                json: { topics: ['user.*', 'product.*'], ack_deadline_ms: 30000, max_attempts: 5 },
            });
            assert.ok([200, 201].includes(sub.status), sub.text);
        }
    });

    after(async () => {
        await amqpConn?.close().catch(() => {});
        await shop?.kill();
        if (smtp && smtp.exitCode === null) smtp.kill('SIGTERM');
    });

    it('serves the demo catalog to anonymous visitors', async () => {
        const r = await call(gw, 'GET', '/api/v1/products?limit=100');
        assert.equal(r.status, 200, r.text);
        assert.ok(r.body.items.length >= 20, 'demo products are there');
        assert.ok(r.headers.get('x-request-id'), 'request id echoed through the gateway');
        const s = await call(gw, 'GET', '/api/v1/products?q=coffee');
        assert.equal(s.status, 200);
        assert.ok(s.body.items.some((p) => /coffee/i.test(p.name)), 'search works through the gateway');
        // A service's problem names the path the client asked for, not the
        // rewritten one; a client's own X-Forwarded-Prefix is dropped.
        const missing = '/api/v1/products/0190a0a0-0000-7000-8000-000000000000';
        for (const headers of [{}, { 'x-forwarded-prefix': '/evil' }]) {
            const n = await call(gw, 'GET', missing, { headers });
            assert.equal(n.status, 404, n.text);
            assert.equal(n.body.instance, missing);
        }
    });

    it('lets a customer register, sign in and read only their own account', async () => {
        const email = `e2e-${Date.now()}@example.com`;
        const reg = await call(gw, 'POST', '/api/v1/users', { json: { email, password: 'a long enough passphrase', name: 'E2E' } });
        assert.equal(reg.status, 201, reg.text);
        const login = await call(gw, 'POST', '/api/v1/auth/login', { json: { email, password: 'a long enough passphrase' } });
        assert.equal(login.status, 200, login.text);
        const me = await call(gw, 'GET', '/api/v1/users/me', { token: login.body.access_token });
        assert.equal(me.status, 200, me.text);
        assert.equal(me.body.email, email);
        assert.equal((await call(gw, 'GET', '/api/v1/users/me')).status, 401, 'anonymous me');
        const list = await call(gw, 'GET', '/api/v1/users', { token: login.body.access_token });
        assert.equal(list.status, 403, 'a customer cannot list users');
        const write = await call(gw, 'POST', '/api/v1/products', {
            token: login.body.access_token,
            json: { sku: 'E2E-CUST', name: 'x', price: { amount: 1, currency: 'EUR' } },
        });
        assert.equal(write.status, 403, 'a customer cannot write the catalog');
        const refreshed = await call(gw, 'POST', '/api/v1/auth/refresh', { json: { refresh_token: login.body.refresh_token } });
        assert.equal(refreshed.status, 200, refreshed.text);
        customer = { email, token: refreshed.body.access_token };
    });

    it('lets the administrator (from agora up) change the catalog; forged identities are refused', async () => {
        const pw = fs.readFileSync(path.join(data, 'admin-password'), 'utf8').trim();
        const login = await call(gw, 'POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: pw } });
        assert.equal(login.status, 200, login.text);
        const created = await call(gw, 'POST', '/api/v1/products', {
            token: login.body.access_token,
            json: { sku: 'E2E-1', name: 'End to end mug', price: { amount: 1250, currency: 'EUR' }, category: 'kitchen' },
        });
        assert.equal(created.status, 201, created.text);
        const seen = await call(gw, 'GET', `/api/v1/products/${created.body.id}`);
        assert.equal(seen.status, 200);
        assert.equal(seen.body.name, 'End to end mug');

        // A client cannot vouch for itself: the gateway strips X-Agora-Identity,
        // and the test key is not the one agora up generated anyway.
        const forged = await call(gw, 'POST', '/api/v1/products', {
            json: { sku: 'E2E-FORGED', name: 'x', price: { amount: 1, currency: 'EUR' } },
            headers: { 'x-agora-identity': identityHeader({ userId: 'x', roles: ['admin'], key: TEST_INTERNAL_KEY }) },
        });
        assert.equal(forged.status, 401, forged.text);
        const key = fs.readFileSync(path.join(data, 'internal.key'), 'utf8').trim();
        const forgedRealKey = await call(gw, 'POST', '/api/v1/products', {
            json: { sku: 'E2E-FORGED2', name: 'x', price: { amount: 1, currency: 'EUR' } },
            headers: { 'x-agora-identity': identityHeader({ userId: 'x', roles: ['admin'], key }) },
        });
        assert.equal(forgedRealKey.status, 401, 'even a correctly signed header from a client is stripped');
    });

    it('services publish their events through the outbox and bus, valid against the contracts', async () => {
        // Earlier tests registered a user and created a product: both events
        // must arrive, and every event must match contracts/events.
        await waitFor(
            async () => {
                if (amqpConn) return seen.some((e) => e.type === 'user.registered' && e.data.name === 'E2E') && seen.some((e) => e.type === 'product.created' && e.data.sku === 'E2E-1');
                const r = await call(bus, 'POST', '/v1/subscriptions/e2e-observer/pull', { headers: op, json: { max_messages: 100, wait_ms: 1000 } });
                assert.equal(r.status, 200, r.text);
                for (const m of r.body.messages) seen.push(m.data);
                if (r.body.messages.length > 0) {
                    await call(bus, 'POST', '/v1/subscriptions/e2e-observer/ack', { headers: op, json: { ack_ids: r.body.messages.map((m) => m.ack_id) } });
                }
                return seen.some((e) => e.type === 'user.registered' && e.data.name === 'E2E') && seen.some((e) => e.type === 'product.created' && e.data.sku === 'E2E-1');
            },
            { timeoutMs: 20000, intervalMs: 10, message: 'user.registered and product.created on the bus' },
        );
        for (const e of seen) {
            const v = validate(e.type, e);
            assert.ok(v.valid, `${e.type} ${JSON.stringify(v.errors)} in ${JSON.stringify(e)}`);
        }
        assert.ok(seen.some((e) => e.type === 'user.updated' || e.type === 'user.registered'), 'user events');
    });

    it('registering sends a welcome e-mail over SMTP, visible to that customer only', async () => {
        // users -> outbox -> bus -> notifications -> SMTP (aiosmtpd on loopback).
        await waitFor(
            () => fs.readdirSync(maildir).some((f) => fs.readFileSync(path.join(maildir, f), 'utf8').includes(customer.email)),
            { timeoutMs: 30000, intervalMs: 50, message: 'welcome e-mail in the maildir' },
        );
        let mine;
        await waitFor(
            async () => {
                mine = await call(gw, 'GET', '/api/v1/notifications', { token: customer.token });
                return mine.status === 200 && mine.body.items.some((n) => n.type === 'user.registered' && n.status === 'sent');
            },
            { timeoutMs: 20000, message: 'the notification is visible and sent' },
        );
        assert.ok(mine.body.items.every((n) => n.user_id === undefined || n.user_id === mine.body.items[0].user_id), 'only the caller\'s own');
        assert.equal((await call(gw, 'GET', '/api/v1/notifications')).status, 401, 'anonymous');
    });

    it('every program exports the RED metrics; deploy/observability scrapes each and names only metrics that exist', async () => {
        const dir = path.join(sourceDir(), 'deploy/observability');
        // The Prometheus files are valid for Prometheus itself.
        execFileSync('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], { stdio: 'pipe' });
        execFileSync('promtool', ['check', 'rules', path.join(dir, 'alerts.yml')], { stdio: 'pipe' });
        const config = fs.readFileSync(path.join(dir, 'prometheus.yml'), 'utf8');
        for (const p of PROGRAMS) {
            const port = p.name === 'gateway' ? GATEWAY_OPS_PORT : p.port;
            assert.match(config, new RegExp(`job_name: ${p.name}\\n\\s+static_configs: \\[\\{ targets: \\["127\\.0\\.0\\.1:${port}"\\]`), `${p.name} scraped on ${port}`);
        }
        // Every program's metric families, from a running shop.
        const families = new Set();
        for (const p of PROGRAMS) {
            const base = p.name === 'gateway' ? `http://127.0.0.1:${PORTS.gatewayOps + off}` : `http://127.0.0.1:${p.port + off}`;
            const r = await fetch(`${base}/metrics`);
            assert.equal(r.status, 200, p.name);
            const own = new Set([...(await r.text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
            for (const red of ['http_requests_total', 'http_request_duration_seconds']) assert.ok(own.has(red), `${p.name} exports ${red}`);
            for (const f of own) families.add(f);
        }
        // Every metric the alert rules and the dashboard name is one of them.
        const exprs = [...fs.readFileSync(path.join(dir, 'alerts.yml'), 'utf8').matchAll(/expr: [|]?\s*([\s\S]*?)\n\s+(?:for|labels):/g)].map((m) => m[1]);
        const dash = JSON.parse(fs.readFileSync(path.join(dir, 'grafana-dashboard.json'), 'utf8'));
        for (const panel of dash.panels) for (const t of panel.targets) exprs.push(t.expr);
        assert.ok(exprs.length > 20, `${exprs.length} expressions read`);
        const FUNCTIONS = new Set(['histogram_quantile', 'clamp_min']);
        const named = new Set();
        for (const e of exprs) {
            for (const m of e.replace(/"[^"]*"/g, '').matchAll(/\b([a-z][a-z0-9]*_[a-z0-9_]+)\b/g)) {
                if (!FUNCTIONS.has(m[1])) named.add(m[1].replace(/_bucket$/, ''));
            }
        }
        const missing = [...named].filter((n) => !families.has(n));
        assert.deepEqual(missing, [], 'metrics named by deploy/observability that no program exports');
        assert.ok(named.size >= 12, [...named].join(' '));
    });

    it('every program registered with the registry', async () => {
        const r = await call(`http://127.0.0.1:${PORTS.registry + off}`, 'GET', '/v1/services', { headers: op });
        assert.equal(r.status, 200);
        const names = r.body.services.map((s) => s.name).sort();
        for (const { name: n } of PROGRAMS) {
            if (n === 'registry') continue; // it does not register with itself
            assert.ok(names.includes(n), `${n} registered: ${names}`);
        }
    });

    it('SIGTERM stops every program in order and exits 0', async () => {
        const st = await shop.stop();
        assert.deepEqual(st, { code: 0, signal: null }, shop.stderr().slice(-3000));
        for (const [name, port] of Object.entries(PORTS)) {
            if (name === 'smtp') continue; // the test's own mail sink
            assert.ok(await portFree(port + off), `${name} released its port`);
        }
        assert.ok(!/exited unexpectedly/.test(shop.stderr()), 'no program crashed');
    });
});
