// SPDX-License-Identifier: MIT
// Payments component tests: the real binary on a free port with a temporary
// database and a real bus, driven over HTTP (as the gateway would vouch for
// its callers) and through saga commands on the bus, with every reply
// checked against its contract (contracts/events/). Covers each sandbox
// token, the provider timeout leaving nothing authorized, Idempotency-Key
// (same answer and one charge, 422 for another body, 409 or the same answer
// when concurrent, 428 without), partial capture and refunds up to what was
// captured, ownership (404, never 403), expiry, metrics, the log grep for
// payment tokens and a clean exit.
//
// One process per group. Waiting is always for an observable condition
// (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { cleanup, startService, stop, waitFor } from '../../../tests/lib/proc.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent } from '../../../tests/lib/schema.mjs';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T = { timeout: 60_000 };
const TOKENS = ['tok_visa', 'tok_chargeDeclined', 'tok_insufficient_funds', 'tok_timeout', 'tok_mastercard'];
const PAYMENT_KEYS = ['amount', 'captured', 'captured_at', 'card', 'created_at', 'expires_at', 'id', 'order_id',
    'refunded', 'refunds', 'status', 'updated_at', 'user_id', 'void_reason', 'voided_at'];

after(() => cleanup());

function uuid7() {
    const b = crypto.randomBytes(16);
    const ms = BigInt(Date.now());
    for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const usd = (amount) => ({ amount, currency: 'USD' });
const customer = (svc, userId) => client(svc, { identity: { userId, roles: ['customer'] } });
const key = () => `key-${crypto.randomUUID()}`;

// POST with an Idempotency-Key (a fresh one unless given).
function write(api, path, body, k = key()) {
    return api.post(path, body, { headers: { 'idempotency-key': k } });
}

async function metrics(svc) {
    const r = await client(svc).get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

// ---- The bus side: a subscription that collects the replies ----

class Replies {
    constructor(bus, name) {
        this.api = client(bus, { identity: OPERATOR });
        this.name = name;
        this.events = [];
    }

    async create() {
        const r = await this.api.put(`/v1/subscriptions/${this.name}`, { topics: ['payment.*'] });
        assert.ok(r.status === 201 || r.status === 200, `subscription: ${r.status} ${r.text}`);
    }

    async pull() {
        const r = await this.api.post(`/v1/subscriptions/${this.name}/pull`, { max_messages: 100, wait_ms: 200 });
        assert.equal(r.status, 200, r.text);
        const msgs = r.json.messages;
        if (msgs.length === 0) return;
        for (const m of msgs) {
            assertValidEvent(m.data, `${m.topic} from payments breaks its contract`);
            this.events.push(m.data);
        }
        await this.api.post(`/v1/subscriptions/${this.name}/ack`, { ack_ids: msgs.map((m) => m.ack_id) });
    }

    // Wait for the replies about 'orderId' matching 'pred' until 'n' are seen.
    async waitFor(orderId, pred = () => true, n = 1) {
        return waitFor(async () => {
            const hits = this.events.filter((e) => e.data.order_id === orderId && pred(e));
            if (hits.length >= n) return hits;
            await this.pull();
            return null;
        }, { timeoutMs: 15_000, message: `${n} reply(ies) for order ${orderId}` });
    }
}

let cmdSeq = 0;
async function sendCommand(bus, verb, data) {
    cmdSeq += 1;
    const ev = {
        specversion: '1.0',
        id: uuid7(),
        source: '/agora/orders',
        type: `cmd.payment.${verb}`,
        subject: data.order_id,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data,
    };
    assertValidEvent(ev, 'a test command breaks its contract');
    const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', {
        messages: [{ id: ev.id, topic: ev.type, subject: ev.subject, data: ev }],
    });
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
    return ev;
}

function waitReady(svc) {
    return waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
        timeoutMs: 15_000,
        message: 'payments ready (its subscription on the bus)',
    });
}

function assertPayment(p) {
    assert.deepEqual(Object.keys(p).sort(), PAYMENT_KEYS);
    assert.match(p.id, UUIDV7);
    assert.deepEqual(Object.keys(p.card).sort(), ['brand', 'last4']);
    assert.match(p.card.last4, /^\d{4}$/);
}

describe('payments with a bus and the sandbox provider', () => {
    let bus;
    let svc;
    let replies;
    const ada = uuid7();
    const bob = uuid7();

    before(async () => {
        bus = await startService('bus');
        replies = new Replies(bus, 'test-replies');
        await replies.create();
        svc = await startService('payments', {
            env: {
                AGORA_BUS_URL: bus.baseUrl,
                AGORA_LOG_LEVEL: 'debug',
                AGORA_PAYMENTS_PROVIDER_TIMEOUT: '400ms',
            },
        });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assert.deepEqual(svc.nonJsonLines(), [], 'payments wrote non-JSON lines to stderr');
        }
        if (bus) await stop(bus);
    });

    it('authorizes tok_visa: 201, last four digits only, payment.authorized published', T, async () => {
        const order = uuid7();
        const r = await write(customer(svc, ada), '/v1/payments', { order_id: order, amount: usd(4499), payment_token: 'tok_visa' });
        assert.equal(r.status, 201, r.text);
        const p = r.json;
        assertPayment(p);
        assert.equal(r.header('location'), `/v1/payments/${p.id}`);
        assert.equal(p.status, 'authorized');
        assert.deepEqual(p.amount, usd(4499));
        assert.deepEqual(p.captured, usd(0));
        assert.deepEqual(p.card, { brand: 'visa', last4: '4242' });
        assert.equal(p.user_id, ada);
        assert.ok(p.expires_at > p.created_at, 'an authorization expires');
        assert.ok(!JSON.stringify(p).includes('tok_'), 'no token in the payment');
        const [ev] = await replies.waitFor(order, (e) => e.type === 'payment.authorized');
        assert.equal(ev.subject, p.id);
        assert.deepEqual(ev.data.amount, usd(4499));
        assert.ok(!JSON.stringify(ev).includes('tok_'), 'no token in the event');
    });

    it('declines tok_chargeDeclined and tok_insufficient_funds with their reasons; nothing is held', T, async () => {
        for (const [token, reason] of [['tok_chargeDeclined', 'declined'], ['tok_insufficient_funds', 'insufficient_funds'], ['tok_unknown', 'declined']]) {
            const order = uuid7();
            const r = await write(customer(svc, ada), '/v1/payments', { order_id: order, amount: usd(100), payment_token: token });
            const p = expectProblem(r, 402, { type: 'urn:agora:problem:payment-declined' });
            assert.equal(p.reason, reason, token);
            const [ev] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
            assert.equal(ev.data.reason, reason);
            assert.equal(ev.data.payment_id, null);
            assert.equal(ev.subject, order);
            const list = await customer(svc, ada).get(`/v1/payments?order_id=${order}`);
            assert.deepEqual(list.json.items, [], `${token}: no payment recorded`);
        }
    });

    it('times out tok_timeout after AGORA_PAYMENTS_PROVIDER_TIMEOUT and leaves no authorization', T, async () => {
        const order = uuid7();
        const t0 = Date.now();
        const r = await write(customer(svc, ada), '/v1/payments', { order_id: order, amount: usd(100), payment_token: 'tok_timeout' });
        expectProblem(r, 504, { type: 'urn:agora:problem:timeout' });
        assert.ok(Date.now() - t0 >= 350, 'answered at the deadline, not before');
        const [ev] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
        assert.equal(ev.data.reason, 'timeout');
        const list = await client(svc).get(`/v1/payments?order_id=${order}`);
        assert.deepEqual(list.json.items, [], 'nothing authorized');
    });

    it('answers a repeated Idempotency-Key with the first answer and charges once', T, async () => {
        const api = customer(svc, ada);
        const order = uuid7();
        const body = { order_id: order, amount: usd(2500), payment_token: 'tok_visa' };
        const k = key();
        const before = metricValue(await metrics(svc), 'payments_total', { operation: 'authorize', outcome: 'success' });
        const first = await write(api, '/v1/payments', body, k);
        assert.equal(first.status, 201);
        const again = await write(api, '/v1/payments', body, k);
        assert.equal(again.status, 201);
        assert.equal(again.text, first.text, 'the same body');
        assert.equal(again.header('location'), first.header('location'));
        const list = await api.get(`/v1/payments?order_id=${order}`);
        assert.equal(list.json.items.length, 1, 'one authorization');
        const after = metricValue(await metrics(svc), 'payments_total', { operation: 'authorize', outcome: 'success' });
        assert.equal(after - before, 1, 'one charge counted');

        const other = await write(api, '/v1/payments', { ...body, amount: usd(2600) }, k);
        expectProblem(other, 422, { type: 'urn:agora:problem:idempotency-key-reused' });
        // Keys are per user: Bob's same key is his own.
        const bobs = await write(customer(svc, bob), '/v1/payments', body, k);
        assert.equal(bobs.status, 201);
        assert.notEqual(bobs.json.id, first.json.id);

        // A declined answer is replayed too (with this request's id).
        const k2 = key();
        const declined = { ...body, order_id: uuid7(), payment_token: 'tok_chargeDeclined' };
        const d1 = await write(api, '/v1/payments', declined, k2);
        const p1 = expectProblem(d1, 402);
        const d2 = await write(api, '/v1/payments', declined, k2);
        const p2 = expectProblem(d2, 402);
        assert.deepEqual({ ...p2, request_id: null }, { ...p1, request_id: null });
    });

    it('gives concurrent requests with one key one effect: the same answer or 409', T, async () => {
        const api = customer(svc, ada);
        const order = uuid7();
        const body = { order_id: order, amount: usd(700), payment_token: 'tok_visa' };
        const k = key();
        const rs = await Promise.all(Array.from({ length: 8 }, () => write(api, '/v1/payments', body, k)));
        const ok = rs.filter((r) => r.status === 201);
        const busy = rs.filter((r) => r.status === 409);
        assert.equal(ok.length + busy.length, rs.length, rs.map((r) => r.status).join(','));
        assert.ok(ok.length >= 1);
        for (const r of ok) assert.equal(r.json.id, ok[0].json.id, 'one payment');
        for (const r of busy) expectProblem(r, 409, { type: 'urn:agora:problem:idempotency-key-in-progress' });
        const list = await api.get(`/v1/payments?order_id=${order}`);
        assert.equal(list.json.items.length, 1);
    });

    it('refuses writes without an Idempotency-Key (428) and bad bodies (422)', T, async () => {
        const api = customer(svc, ada);
        const r = await api.post('/v1/payments', { order_id: uuid7(), amount: usd(1), payment_token: 'tok_visa' });
        expectProblem(r, 428, { type: 'urn:agora:problem:precondition-required' });
        const bad = await write(api, '/v1/payments', { order_id: 'x', amount: { amount: -1, currency: 'usd' }, payment_token: '4242424242424242', pan: '4242' });
        const p = expectProblem(bad, 422, { type: 'urn:agora:problem:validation' });
        assert.deepEqual(errorFields(p).sort(), ['amount.amount', 'amount.currency', 'order_id', 'pan', 'payment_token']);
        assert.ok(!bad.text.includes('4242424242424242'), 'the problem does not echo the token');
        const admin = client(svc);
        const none = await admin.post(`/v1/payments/${uuid7()}/capture`, {});
        expectProblem(none, 428);
    });

    it('captures part of an authorization and refunds up to the captured amount, never more', T, async () => {
        const admin = client(svc);
        const r = await write(customer(svc, ada), '/v1/payments', { order_id: uuid7(), amount: usd(1000), payment_token: 'tok_visa' });
        const id = r.json.id;
        const order = r.json.order_id;
        const over = await write(admin, `/v1/payments/${id}/capture`, { amount: usd(1001) });
        assert.deepEqual(errorFields(expectProblem(over, 422)), ['amount.amount']);
        const cap = await write(admin, `/v1/payments/${id}/capture`, { amount: usd(600) });
        assert.equal(cap.status, 200, cap.text);
        assert.equal(cap.json.status, 'captured');
        assert.deepEqual(cap.json.captured, usd(600));
        const [captured] = await replies.waitFor(order, (e) => e.type === 'payment.captured');
        assert.deepEqual(captured.data.amount, usd(600));

        expectProblem(await write(admin, `/v1/payments/${id}/capture`, { amount: usd(100) }), 409);
        expectProblem(await write(admin, `/v1/payments/${id}/void`, {}), 409);

        const k = key();
        const r1 = await write(admin, `/v1/payments/${id}/refunds`, { amount: usd(400), reason: 'damaged' }, k);
        assert.equal(r1.status, 201, r1.text);
        assert.deepEqual(r1.json.amount, usd(400));
        assert.equal(r1.header('location'), `/v1/payments/${id}/refunds/${r1.json.id}`);
        const r1again = await write(admin, `/v1/payments/${id}/refunds`, { amount: usd(400), reason: 'damaged' }, k);
        assert.equal(r1again.text, r1.text, 'a retried refund is not a second refund');
        const tooMuch = await write(admin, `/v1/payments/${id}/refunds`, { amount: usd(201) });
        assert.deepEqual(errorFields(expectProblem(tooMuch, 422)), ['amount.amount']);
        const r2 = await write(admin, `/v1/payments/${id}/refunds`, { amount: usd(200) });
        assert.equal(r2.status, 201);
        const oneMore = await write(admin, `/v1/payments/${id}/refunds`, { amount: usd(1) });
        expectProblem(oneMore, 409);
        const eur = await write(admin, `/v1/payments/${id}/refunds`, { amount: { amount: 1, currency: 'EUR' } });
        expectProblem(eur, 422);

        const got = await admin.get(`/v1/payments/${id}`);
        assert.equal(got.json.status, 'refunded');
        assert.deepEqual(got.json.refunded, usd(600));
        assert.equal(got.json.refunds.length, 2);
        const refunds = await replies.waitFor(order, (e) => e.type === 'payment.refunded', 2);
        assert.equal(refunds.length, 2, 'one event per refund, none for the retry');
        assert.equal(refunds.reduce((s, e) => s + e.data.amount.amount, 0), 600);
    });

    it('voids an authorization; no capture after a void', T, async () => {
        const admin = client(svc);
        const r = await write(customer(svc, ada), '/v1/payments', { order_id: uuid7(), amount: usd(300), payment_token: 'tok_visa' });
        const v = await write(admin, `/v1/payments/${r.json.id}/void`, { reason: 'fraud_suspected' });
        assert.equal(v.status, 200, v.text);
        assert.equal(v.json.status, 'voided');
        assert.equal(v.json.void_reason, 'fraud_suspected');
        assert.equal(v.json.expires_at, null);
        expectProblem(await write(admin, `/v1/payments/${r.json.id}/capture`, {}), 409);
        const [ev] = await replies.waitFor(r.json.order_id, (e) => e.type === 'payment.voided');
        assert.equal(ev.data.reason, 'fraud_suspected');
        expectProblem(await write(admin, `/v1/payments/${uuid7()}/void`, {}), 404);
    });

    it('shows a payment to its owner and administrators only: another user gets 404', T, async () => {
        const r = await write(customer(svc, ada), '/v1/payments', { order_id: uuid7(), amount: usd(50), payment_token: 'tok_visa' });
        const { id, order_id: order } = r.json;
        assert.equal((await customer(svc, ada).get(`/v1/payments/${id}`)).status, 200);
        assert.equal((await client(svc).get(`/v1/payments/${id}`)).status, 200);
        expectProblem(await customer(svc, bob).get(`/v1/payments/${id}`), 404, { type: 'urn:agora:problem:not-found' });
        assert.deepEqual((await customer(svc, bob).get(`/v1/payments?order_id=${order}`)).json.items, []);
        assert.equal((await customer(svc, ada).get(`/v1/payments?order_id=${order}`)).json.items.length, 1);
        expectProblem(await customer(svc, ada).get('/v1/payments'), 400);
        // Changes are for administrators.
        expectProblem(await write(customer(svc, ada), `/v1/payments/${id}/capture`, {}), 403);
        expectProblem(await client(svc, { identity: null }).get(`/v1/payments/${id}`), 401);
    });

    it('runs the saga commands: authorize (once per step key), capture, refund, and replies', T, async () => {
        const order = uuid7();
        const auth = { order_id: order, step_key: `${order}:authorize`, user_id: ada, amount: usd(5000), payment_token: 'tok_visa' };
        await sendCommand(bus, 'authorize', auth);
        const [a1] = await replies.waitFor(order, (e) => e.type === 'payment.authorized');
        // The same step again (a retry, new event id): the same reply, no second hold.
        await sendCommand(bus, 'authorize', auth);
        const both = await replies.waitFor(order, (e) => e.type === 'payment.authorized', 2);
        assert.deepEqual(both[1].data, a1.data);
        assert.notEqual(both[1].id, a1.id);
        const list = await client(svc).get(`/v1/payments?order_id=${order}`);
        assert.equal(list.json.items.length, 1, 'one authorization');
        assert.equal(list.json.items[0].user_id, ada);

        await sendCommand(bus, 'capture', { order_id: order, step_key: `${order}:capture`, amount: usd(5000) });
        const [c] = await replies.waitFor(order, (e) => e.type === 'payment.captured');
        assert.equal(c.data.payment_id, a1.data.payment_id);
        await sendCommand(bus, 'refund', { order_id: order, step_key: `${order}:refund-1`, amount: usd(3000), reason: 'customer_request' });
        await replies.waitFor(order, (e) => e.type === 'payment.refunded');
        await sendCommand(bus, 'refund', { order_id: order, step_key: `${order}:refund-2`, amount: usd(2001), reason: 'customer_request' });
        const [f] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
        assert.equal(f.data.reason, 'error');
        assert.equal(f.data.payment_id, a1.data.payment_id);
        await sendCommand(bus, 'void', { order_id: order, step_key: `${order}:void`, reason: 'shipment_failed' });
        const fails = await replies.waitFor(order, (e) => e.type === 'payment.failed', 2);
        assert.equal(fails.length, 2, 'no void after a capture');
        const p = (await client(svc).get(`/v1/payments/${a1.data.payment_id}`)).json;
        assert.equal(p.status, 'partially_refunded');
        assert.deepEqual(p.refunded, usd(3000));
    });

    it('answers tok_timeout and declined authorize commands with payment.failed and holds nothing', T, async () => {
        for (const [token, reason] of [['tok_timeout', 'timeout'], ['tok_insufficient_funds', 'insufficient_funds'], ['tok_chargeDeclined', 'declined']]) {
            const order = uuid7();
            await sendCommand(bus, 'authorize', { order_id: order, step_key: `${order}:authorize`, user_id: ada, amount: usd(10), payment_token: token });
            const [f] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
            assert.equal(f.data.reason, reason);
            assert.equal(f.data.payment_id, null);
            assert.deepEqual((await client(svc).get(`/v1/payments?order_id=${order}`)).json.items, []);
        }
    });

    it('voids nothing harmlessly: payment.voided reason not_authorized, and a later authorize is refused', T, async () => {
        const order = uuid7();
        await sendCommand(bus, 'void', { order_id: order, step_key: `${order}:void`, reason: 'inventory_rejected' });
        const [v] = await replies.waitFor(order, (e) => e.type === 'payment.voided');
        assert.equal(v.data.reason, 'not_authorized');
        assert.deepEqual(v.data.amount, { amount: 0, currency: 'XXX' });
        await sendCommand(bus, 'authorize', { order_id: order, step_key: `${order}:authorize`, user_id: ada, amount: usd(10), payment_token: 'tok_visa' });
        const [f] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
        assert.equal(f.data.reason, 'error');
        const items = (await client(svc).get(`/v1/payments?order_id=${order}`)).json.items;
        assert.deepEqual(items.map((p) => p.status), ['voided'], 'nothing authorized');
    });

    it('counts operations and amounts in /metrics', T, async () => {
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'payments_total', { operation: 'authorize', outcome: 'success' }) >= 5);
        assert.ok(metricValue(m, 'payments_total', { operation: 'authorize', outcome: 'declined' }) >= 2);
        assert.ok(metricValue(m, 'payments_total', { operation: 'authorize', outcome: 'timeout' }) >= 2);
        assert.ok(metricValue(m, 'payments_total', { operation: 'refund', outcome: 'success' }) >= 3);
        assert.ok(metricValue(m, 'payments_amount_minor_total', { operation: 'capture', currency: 'USD' }) >= 5600);
        assert.ok(metricValue(m, 'payments_amount_minor_total', { operation: 'refund', currency: 'USD' }) >= 3600);
    });

    it('never logs a payment token (debug level, HTTP and commands)', T, async () => {
        const logs = svc.lines.join('\n');
        assert.ok(svc.lines.length > 20, 'there are logs to search');
        for (const t of TOKENS.concat(['4242424242424242'])) assert.ok(!logs.includes(t), `'${t}' in the logs`);
    });
});

describe('payments expiry', () => {
    let bus;
    let svc;
    let replies;

    before(async () => {
        bus = await startService('bus');
        replies = new Replies(bus, 'test-expiry');
        await replies.create();
        svc = await startService('payments', {
            env: { AGORA_BUS_URL: bus.baseUrl, AGORA_PAYMENTS_AUTH_TTL: '1s', AGORA_PAYMENTS_SWEEP_INTERVAL: '100ms' },
        });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null });
        if (bus) await stop(bus);
    });

    it('releases an authorization not captured within AGORA_PAYMENTS_AUTH_TTL (payment.voided reason expired)', T, async () => {
        const user = uuid7();
        const r = await write(customer(svc, user), '/v1/payments', { order_id: uuid7(), amount: usd(999), payment_token: 'tok_visa' });
        assert.equal(r.status, 201);
        const p = await waitFor(async () => {
            const g = await customer(svc, user).get(`/v1/payments/${r.json.id}`);
            return g.json.status === 'voided' ? g.json : null;
        }, { timeoutMs: 10_000, message: 'the authorization expires' });
        assert.equal(p.void_reason, 'expired');
        const [ev] = await replies.waitFor(r.json.order_id, (e) => e.type === 'payment.voided');
        assert.equal(ev.data.reason, 'expired');
        assert.deepEqual(ev.data.amount, usd(999));
        expectProblem(await write(client(svc), `/v1/payments/${r.json.id}/capture`, {}), 409);
        const m = await metrics(svc);
        assert.equal(metricValue(m, 'payments_total', { operation: 'expire', outcome: 'success' }), 1);
    });
});

describe('payments stopping while the provider is silent', () => {
    let bus;
    let svc;
    let replies;

    before(async () => {
        bus = await startService('bus');
        replies = new Replies(bus, 'test-stop');
        await replies.create();
        svc = await startService('payments', {
            env: { AGORA_BUS_URL: bus.baseUrl, AGORA_PAYMENTS_PROVIDER_TIMEOUT: '60s' },
        });
        await waitReady(svc);
    });

    after(async () => {
        if (svc && svc.exitStatus === null) await stop(svc);
        if (bus) await stop(bus);
    });

    it('answers what waits for the provider as timed out on SIGTERM, exits 0, and keeps no token on disk', T, async () => {
        const user = uuid7();
        const httpOrder = uuid7();
        const cmdOrder = uuid7();
        const pending = write(customer(svc, user), '/v1/payments', { order_id: httpOrder, amount: usd(10), payment_token: 'tok_timeout' });
        await sendCommand(bus, 'authorize', { order_id: cmdOrder, step_key: `${cmdOrder}:authorize`, user_id: user, amount: usd(20), payment_token: 'tok_timeout' });
        // A visa payment too, so the database holds a real authorization.
        assert.equal((await write(customer(svc, user), '/v1/payments', { order_id: uuid7(), amount: usd(30), payment_token: 'tok_visa' })).status, 201);
        await waitFor(async () => metricValue(await metrics(svc), 'payments_provider_inflight') === 2, {
            timeoutMs: 15_000, message: 'two authorizations at the provider',
        });
        const exited = stop(svc);
        const r = await pending;
        expectProblem(r, 504, { type: 'urn:agora:problem:timeout' });
        assert.deepEqual(await exited, { code: 0, signal: null });
        for (const order of [httpOrder, cmdOrder]) {
            const [f] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
            assert.equal(f.data.reason, 'timeout');
        }
        const files = fs.readdirSync(svc.dataDir).filter((f) => f.startsWith('payments.db'));
        assert.ok(files.length >= 1, 'the database is there');
        const disk = files.map((f) => fs.readFileSync(path.join(svc.dataDir, f)).toString('latin1')).join('');
        assert.ok(disk.includes('4242'), 'the last four digits are kept');
        for (const t of TOKENS) assert.ok(!disk.includes(t), `'${t}' on disk`);
        const logs = svc.lines.join('\n');
        for (const t of TOKENS) assert.ok(!logs.includes(t), `'${t}' in the logs`);
    });
});

describe('payments after a crash', () => {
    let bus;
    let replies;

    before(async () => {
        bus = await startService('bus');
        replies = new Replies(bus, 'test-crash');
        await replies.create();
    });

    after(async () => {
        if (bus) await stop(bus);
    });

    it('answers after a crash the saga step it had at the provider: payment.failed reason timeout', T, async () => {
        const env = { AGORA_BUS_URL: bus.baseUrl, AGORA_PAYMENTS_PROVIDER_TIMEOUT: '60s' };
        const first = await startService('payments', { env });
        await waitReady(first);
        const order = uuid7();
        await sendCommand(bus, 'authorize', { order_id: order, step_key: `${order}:authorize`, user_id: uuid7(), amount: usd(77), payment_token: 'tok_timeout' });
        await waitFor(async () => metricValue(await metrics(first), 'payments_provider_inflight') === 1, {
            timeoutMs: 15_000, message: 'the authorization at the provider',
        });
        first.child.kill('SIGKILL');
        await first.exited;
        const again = await startService('payments', { env, dataDir: first.dataDir });
        const [f] = await replies.waitFor(order, (e) => e.type === 'payment.failed');
        assert.equal(f.data.reason, 'timeout');
        assert.deepEqual(f.data.amount, usd(77));
        assert.deepEqual((await client(again).get(`/v1/payments?order_id=${order}`)).json.items, [], 'nothing held');
        assert.deepEqual(await stop(again), { code: 0, signal: null });
    });
});
