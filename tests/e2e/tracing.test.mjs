// SPDX-License-Identifier: MIT
// Distributed tracing end to end: every program exports its spans (OTLP/HTTP
// JSON) to the built-in collector (platform/traces) that `agora up` runs. A
// checkout sent with our own traceparent is one trace from the gateway over
// the bus to shipping and notifications, every span's parent is in the
// trace (or is our own span, for the gateway's), and a declined payment
// marks the provider call as an error. The embedded bus's publish and
// deliver spans, the relay's batch spans and the consumers' batch
// transactions are in it too.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { buildDir, cleanup, waitFor } from '../lib/proc.mjs';
import { startShop, TEST_BACKENDS } from '../lib/shop.mjs';

const T = { timeout: 120_000 };
const ADDRESS = { name: 'Tia Trace', line1: '3 Market Street', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

describe('tracing: one trace per checkout, across HTTP and the bus', () => {
    let shop;
    let admin;
    let buyer;
    let product;

    async function api(method, p, { token, json, headers = {}, expect } = {}) {
        const h = { ...headers };
        if (token) h.authorization = `Bearer ${token}`;
        if (json !== undefined) h['content-type'] = 'application/json';
        const r = await fetch(shop.gw + p, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
        const text = await r.text();
        let body = null;
        try {
            body = JSON.parse(text);
        } catch {
            body = null;
        }
        if (expect !== undefined) assert.equal(r.status, expect, `${method} ${p}: ${r.status} ${text.slice(0, 500)}`);
        return { status: r.status, headers: r.headers, body, text };
    }

    // Check out one unit of 'product' paying with 'card', under our own
    // trace: returns { traceId, rootParent, order }.
    async function tracedCheckout(card) {
        await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token: buyer, json: { product_id: product, quantity: 1 } })).status === 200, { message: 'the product in the cart' });
        const traceId = crypto.randomBytes(16).toString('hex');
        const rootParent = crypto.randomBytes(8).toString('hex');
        const r = await api('POST', '/api/v1/orders', {
            token: buyer,
            json: { shipping_address: ADDRESS, payment_token: card },
            headers: { 'idempotency-key': crypto.randomUUID(), traceparent: `00-${traceId}-${rootParent}-01` },
        });
        assert.equal(r.status, 202, r.text);
        let order;
        await waitFor(async () => {
            order = (await api('GET', `/api/v1/orders/${r.body.id}`, { token: buyer, expect: 200 })).body;
            return ['CONFIRMED', 'REJECTED', 'CANCELLED'].includes(order.status);
        }, { timeoutMs: 45_000, message: 'the order to settle' });
        return { traceId, rootParent, order };
    }

    // The trace once it holds spans of every service in 'want' (exporters
    // send every second).
    async function traceOf(traceId, want) {
        let trace;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/traces/${traceId}`, { token: admin });
            if (r.status !== 200) return false;
            trace = r.body;
            const services = new Set(trace.spans.map((s) => s.service));
            return want.every((w) => services.has(w));
        }, { timeoutMs: 30_000, intervalMs: 250, message: `spans of ${want.join(', ')} in trace ${traceId}` });
        // Late spans of the same trace (the last consumers) settle too.
        let n = -1;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/traces/${traceId}`, { token: admin, expect: 200 });
            const same = r.body.spans.length === n;
            n = r.body.spans.length;
            trace = r.body;
            return same;
        }, { timeoutMs: 15_000, intervalMs: 1500, message: 'the trace to stop growing' });
        return trace;
    }

    before(async () => {
        shop = await startShop({ env: { AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000' } });
        admin = (await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword }, expect: 200 })).body.access_token;
        const email = `trace-${process.pid}@example.com`;
        await api('POST', '/api/v1/users', { json: { email, password: 'a long enough passphrase', name: 'Tia' }, expect: 201 });
        buyer = (await api('POST', '/api/v1/auth/login', { json: { email, password: 'a long enough passphrase' }, expect: 200 })).body.access_token;
        product = (await api('POST', '/api/v1/products', { token: admin, json: { sku: `TRACE-${process.pid}`, name: 'Traced thing', price: { amount: 900, currency: 'EUR' } }, expect: 201 })).body.id;
        let etag;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/stock/${product}`, { token: admin });
            etag = r.headers.get('etag');
            return r.status === 200;
        }, { message: 'the stock row' });
        await api('PUT', `/api/v1/stock/${product}`, { token: admin, json: { on_hand: 50, reason: 'tracing' }, headers: { 'if-match': etag }, expect: 200 });
    });

    after(async () => {
        if (shop) assert.deepEqual(await shop.stop(), { code: 0, signal: null }, shop.stderr().slice(-3000));
        cleanup();
    });

    it('a confirmed checkout is one trace over gateway, orders, inventory, payments, shipping and notifications, with no orphan span', T, async () => {
        const { traceId, rootParent, order } = await tracedCheckout('tok_visa');
        assert.equal(order.status, 'CONFIRMED');
        const trace = await traceOf(traceId, ['gateway', 'orders', 'inventory', 'payments', 'shipping', 'notifications', ...(TEST_BACKENDS.includes('rabbitmq') ? [] : ['bus'])]);
        const ids = new Set(trace.spans.map((s) => s.span_id));
        assert.equal(ids.size, trace.spans.length, 'span ids are unique');
        for (const s of trace.spans) {
            assert.ok(ids.has(s.parent_span_id) || s.parent_span_id === rootParent, `orphan span ${s.service} ${s.name} (parent ${s.parent_span_id})`);
            assert.ok(s.end_unix_nano >= s.start_unix_nano);
        }
        // The root: the gateway's server span, child of our own span.
        const roots = trace.spans.filter((s) => s.parent_span_id === rootParent);
        assert.deepEqual(roots.map((s) => [s.service, s.kind, s.name]), [['gateway', SERVER, 'POST /api/v1/orders']]);
        assert.equal(roots[0].attributes['http.response.status_code'], 202);
        // The gateway's client call to orders, and orders' server span under it.
        const call = trace.spans.find((s) => s.service === 'gateway' && s.kind === CLIENT && s.parent_span_id === roots[0].span_id);
        assert.ok(call, 'the gateway calls orders');
        const served = trace.spans.find((s) => s.service === 'orders' && s.kind === SERVER && s.parent_span_id === call.span_id);
        assert.equal(served?.name, 'POST /v1/orders');
        // The checkout's database transaction in orders, under its request.
        const tx = trace.spans.find((s) => s.service === 'orders' && s.name === 'db.transaction' && s.parent_span_id === served.span_id);
        assert.ok(tx, 'a db.transaction span under POST /v1/orders');
        assert.equal(tx.attributes['db.system'], TEST_BACKENDS.includes('postgres') ? 'postgresql' : 'sqlite');
        assert.equal(tx.attributes['db.transaction.outcome'], 'commit');
        // Every saga hop over the bus: a producer span where the event is
        // relayed and a consumer span where it is handled.
        const kinds = (svc, kind) => trace.spans.filter((s) => s.service === svc && s.kind === kind).map((s) => s.attributes['messaging.destination.name']);
        for (const [svc, topic] of [['inventory', 'cmd.inventory.reserve'], ['payments', 'cmd.payment.authorize'], ['shipping', 'cmd.shipment.create'], ['orders', 'payment.authorized']]) {
            assert.ok(kinds(svc, CONSUMER).includes(topic), `${svc} consumes ${topic}: ${kinds(svc, CONSUMER)}`);
        }
        assert.ok(kinds('orders', PRODUCER).includes('order.created'), `orders publishes order.created: ${kinds('orders', PRODUCER)}`);
        for (const s of trace.spans.filter((x) => x.kind === CONSUMER || x.kind === PRODUCER)) {
            assert.equal(s.attributes['messaging.system'], TEST_BACKENDS.includes('rabbitmq') ? 'rabbitmq' : 'bus');
            assert.ok(s.attributes['messaging.message.id']);
            assert.equal(s.attributes['messaging.operation.type'], s.kind === PRODUCER ? 'send' : 'process');
        }
        // The relay's batch span (links to each event's context) and the
        // consumers' batch transactions, in the trace of their first event.
        const relay = trace.spans.filter((s) => s.name === 'outbox relay');
        assert.ok(relay.some((s) => s.service === 'orders' && s.attributes['messaging.batch.message_count'] >= 1), 'an outbox relay span of orders');
        // The collector keeps each batch span's links: one per traced event
        // of the batch (the exporter keeps 16), each a span context.
        for (const s of relay) {
            const n = s.links.length;
            assert.ok(n >= 1 && n <= Math.min(16, s.attributes['messaging.batch.message_count']), `${n} links of ${s.service}'s relay batch`);
            for (const l of s.links) assert.match(`${l.trace_id}/${l.span_id}`, /^[0-9a-f]{32}\/[0-9a-f]{16}$/);
        }
        const ctx = trace.spans.filter((s) => s.name === 'db.transaction' && s.attributes['messaging.consumer.group.name']);
        assert.ok(ctx.some((s) => s.service === 'inventory' && s.attributes['db.transaction.outcome'] === 'commit'), `a consumer batch transaction in inventory: ${ctx.map((s) => s.service)}`);
        // The embedded bus's own handling: it accepts each relayed event
        // and hands it to each consumer, under the span that wrote the event,
        // whose context travelled in the CloudEvent traceparent (the parent of
        // the relay's PRODUCER span and of the consumers' CONSUMER spans).
        if (!TEST_BACKENDS.includes('rabbitmq')) {
            const bus = trace.spans.filter((s) => s.service === 'bus');
            const id = (s) => s.attributes['messaging.message.id'];
            const topic = (s) => s.attributes['messaging.destination.name'];
            for (const p of trace.spans.filter((s) => s.kind === PRODUCER)) {
                const pub = bus.find((s) => s.name === `publish ${topic(p)}` && id(s) === id(p));
                assert.ok(pub, `the bus's publish span of ${topic(p)} ${id(p)}: ${bus.map((s) => s.name)}`);
                assert.equal(pub.parent_span_id, p.parent_span_id, 'the bus span continues the traceparent of the event');
                assert.equal(pub.attributes['messaging.operation.type'], 'publish');
                assert.equal(pub.attributes['messaging.system'], 'bus');
            }
            for (const c of trace.spans.filter((s) => s.kind === CONSUMER)) {
                const group = c.attributes['messaging.consumer.group.name'];
                const dlv = bus.find((s) => s.name === `deliver ${topic(c)}` && id(s) === id(c) && s.attributes['messaging.consumer.group.name'] === group);
                assert.ok(dlv, `the bus's deliver span of ${topic(c)} ${id(c)} to ${group}`);
                assert.equal(dlv.parent_span_id, c.parent_span_id);
                assert.equal(dlv.attributes['messaging.operation.type'], 'deliver');
            }
            assert.ok(bus.some((s) => s.name === 'deliver cmd.shipment.create'), 'the bus delivered to shipping');
        }
        assert.ok(trace.spans.every((s) => s.status.code !== 2), `no error span: ${JSON.stringify(trace.spans.filter((s) => s.status.code === 2))}`);
        // Each saga step of orders, from its send to its reply.
        const steps = trace.spans.filter((s) => s.service === 'orders' && s.name.startsWith('saga.step ')).map((s) => s.attributes['saga.step']);
        for (const step of ['reserve', 'authorize', 'ship']) assert.ok(steps.includes(step), `saga step span ${step}: ${steps}`);
        // The list view finds it by service.
        const list = await api('GET', '/api/v1/traces?service=shipping&limit=50', { token: admin, expect: 200 });
        const listed = list.body.items.find((t) => t.trace_id === traceId);
        assert.ok(listed && listed.root.service === 'gateway' && !listed.error, `the trace in the list: ${JSON.stringify(listed)} (${list.body.items.length} items); roots: ${JSON.stringify(trace.spans.filter((s) => !s.parent_span_id || s.name.startsWith('saga.step')).map((s) => [s.service, s.name, s.parent_span_id, s.start_unix_nano ?? s.start_time_unix_nano ?? s.start]))}`);
    });

    it('the logs of a trace: `agora logs --trace` and GET /api/v1/logs give the lines of every service that took part, and lead back to the trace', T, async () => {
        const { traceId } = await tracedCheckout('tok_visa');
        const trace = await traceOf(traceId, ['gateway', 'orders', 'inventory', 'payments', 'shipping', 'notifications']);
        // The bus writes no log line per message (its spans stand for it).
        const took = new Set(trace.spans.map((x) => x.service).filter((svc) => svc !== 'bus'));
        let lines;
        await waitFor(() => {
            const out = execFileSync(path.join(buildDir(), 'cli', 'agora'), ['logs', '--data', shop.data, '--trace', traceId, '--json'], { encoding: 'utf8' });
            lines = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
            const services = new Set(lines.map((l) => l.service));
            return [...took].every((svc) => services.has(svc));
        }, { timeoutMs: 15_000, message: `log lines of ${[...took].join(', ')}` });
        for (const l of lines) assert.equal(l.trace_id, traceId);
        // Consumers log each delivery they applied, in the event's trace.
        assert.ok(lines.some((l) => l.service === 'shipping' && l.msg === 'delivery' && l.type === 'cmd.shipment.create' && l.outcome === 'ok'));
        // The same through the gateway, for the console; each line names its
        // trace, which leads back to the spans.
        const r = await api('GET', `/api/v1/logs?trace_id=${traceId}&limit=1000`, { token: admin, expect: 200 });
        assert.deepEqual(new Set(r.body.items.map((l) => l.service)), new Set(lines.map((l) => l.service)));
        assert.ok(r.body.items.every((l) => l.trace_id === traceId));
        const times = r.body.items.map((l) => l.time);
        assert.deepEqual(times, [...times].sort(), 'oldest first');
        const warn = await api('GET', '/api/v1/logs?level=warn&limit=5', { token: admin, expect: 200 });
        assert.ok(warn.body.items.every((l) => l.level === 'warn' || l.level === 'error'));
        assert.equal((await api('GET', '/api/v1/logs?trace_id=a%22b', { token: admin })).status, 400);
        assert.equal((await api('GET', '/api/v1/logs', { token: buyer })).status, 403);
    });

    it('a declined payment marks the provider call as an error, and the list finds it with error=true', T, async () => {
        const { traceId, order } = await tracedCheckout('tok_chargeDeclined');
        assert.equal(order.status, 'CANCELLED', JSON.stringify(order));
        const trace = await traceOf(traceId, ['gateway', 'orders', 'inventory', 'payments']);
        const errors = trace.spans.filter((s) => s.status.code === 2);
        assert.ok(errors.length >= 1);
        for (const e of errors) assert.ok(e.service === 'payments' || e.name === 'saga.step authorize', `only the payment's spans are errors: ${e.service} ${e.name}`);
        assert.ok(trace.spans.some((s) => s.name === 'saga.step authorize' && s.status.code === 2 && s.service === 'orders'), 'the failed saga step');
        const auth = errors.find((s) => s.name === 'payment.authorize');
        assert.ok(auth, JSON.stringify(errors));
        assert.equal(auth.status.message, 'declined');
        assert.ok(!trace.spans.some((s) => s.service === 'shipping'), 'nothing shipped');
        const list = await api('GET', '/api/v1/traces?error=true&limit=50', { token: admin, expect: 200 });
        assert.ok(list.body.items.some((t) => t.trace_id === traceId && t.error));
        const ok = await api('GET', '/api/v1/traces?error=false&limit=50', { token: admin, expect: 200 });
        assert.ok(ok.body.items.some((t) => t.trace_id === traceId), 'error=false does not filter');
        assert.equal((await api('GET', '/api/v1/traces?error=maybe', { token: admin })).status, 400);
        assert.equal((await api('GET', `/api/v1/traces/${traceId}`, { token: buyer })).status, 403, 'admins only');
    });
});
