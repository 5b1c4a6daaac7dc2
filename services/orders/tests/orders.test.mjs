// SPDX-License-Identifier: MIT
// Orders component tests: the real binary with a temporary database and a
// real bus. The test plays the saga's participants (inventory, payments,
// shipping): it consumes the cmd.* commands orders sends from a
// subscription of its own and publishes the reply events a participant
// would, valid against contracts/events. It also watches order.* and
// checks every public event orders publishes against its schema.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { identityHeader, OPERATOR, serviceIdentity } from '../../../tests/lib/identity.mjs';
import { cleanup, makeTempDir, removeTempDir, startService, stop, waitFor } from '../../../tests/lib/proc.mjs';
import { client, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent, validate } from '../../../tests/lib/schema.mjs';

const T = { timeout: 60_000 };
const WAIT = { timeoutMs: 15_000 };

after(() => cleanup());

// ---- Helpers ----

function uuid7() {
    const b = crypto.randomBytes(16);
    const ms = BigInt(Date.now());
    for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const now = () => new Date().toISOString();
const SOURCES = { product: '/agora/catalog', inventory: '/agora/inventory', payment: '/agora/payments', shipment: '/agora/shipping' };

function cloudEvent(type, subject, data) {
    return { specversion: '1.0', id: uuid7(), source: SOURCES[type.split('.')[0]], type, subject, time: now(), datacontenttype: 'application/json', data };
}

// Types the participants are adding in parallel: no schema on this branch
// yet, so they are published without the contract check.

// The bus as the participants see it: a subscription to the commands,
// collected in the background, and publishing replies.
class Participants {
    constructor(bus) {
        this.bus = bus;
        this.api = client(bus, { identity: OPERATOR });
        this.commands = []; // CloudEvents of cmd.*
        this.events = []; // order.* CloudEvents
        this.stopped = false;
        this.loops = [];
    }

    async start() {
        for (const [name, topics, into] of [
            ['participants', ['cmd.inventory.*', 'cmd.payment.*', 'cmd.shipment.*'], this.commands],
            ['observer', ['order.*'], this.events],
        ]) {
            const r = await this.api.put(`/v1/subscriptions/${name}`, { topics, ack_deadline_ms: 10_000 });
            assert.ok(r.status === 201 || r.status === 200, `subscription ${name}: ${r.status} ${r.text}`);
            this.loops.push(this.collect(name, into));
        }
    }

    async collect(name, into) {
        while (!this.stopped) {
            let r;
            try {
                r = await this.api.post(`/v1/subscriptions/${name}/pull`, { max_messages: 100, wait_ms: 100 });
            } catch {
                if (this.stopped) return;
                throw new Error(`pull ${name} failed`);
            }
            if (r.status !== 200) continue;
            const msgs = r.json.messages;
            if (msgs.length === 0) continue;
            for (const m of msgs) into.push(m.data);
            await this.api.post(`/v1/subscriptions/${name}/ack`, { ack_ids: msgs.map((m) => m.ack_id) });
        }
    }

    async stop() {
        this.stopped = true;
        await Promise.allSettled(this.loops);
    }

    cmds(orderId, type) {
        return this.commands.filter((c) => c.subject === orderId && (type === undefined || c.type === type));
    }

    // Wait for the 'n'-th command 'type' about 'orderId'; returns its data.
    async cmd(orderId, type, n = 1) {
        const list = await waitFor(() => {
            const l = this.cmds(orderId, type);
            return l.length >= n ? l : null;
        }, { ...WAIT, message: `${n} x ${type} for ${orderId}; got ${JSON.stringify(this.cmds(orderId).map((c) => c.type))}` });
        const c = list[n - 1];
        // The participant's schema is the command's contract (closed objects).
        assertValidEvent(c, `${type} breaks its contract`);
        assert.equal(c.source, '/agora/orders');
        assert.equal(c.data.order_id, orderId);
        assert.match(c.data.step_key, new RegExp(`^${orderId}:`));
        return c.data;
    }

    async orderEvent(orderId, type) {
        const e = await waitFor(() => this.events.find((x) => x.subject === orderId && x.type === type), { ...WAIT, message: `${type} of ${orderId}` });
        assertValidEvent(e, `${type} breaks its contract`);
        return e;
    }

    // The subject is what each type's contract names (x-agora-subject):
    // the payment or shipment id, else the order id.
    async publish(type, orderId, data) {
        const subject = (type.startsWith('payment.') ? data.payment_id : type.startsWith('shipment.') ? data.shipment_id : null) ?? orderId;
        const e = cloudEvent(type, subject, data);
        assertValidEvent(e, `test reply ${type} breaks its contract`);
        const r = await this.api.post('/v1/messages', { messages: [{ id: e.id, topic: type, subject, data: e }] });
        assert.equal(r.status, 200, `publish ${type}: ${r.status} ${r.text}`);
        return e;
    }

    // The participants' replies.
    reserved(o, lines) {
        const id = uuid7();
        return this.publish('inventory.reserved', o, { reservation_id: id, order_id: o, lines: lines.map((l) => ({ product_id: l.product_id, quantity: l.quantity })), expires_at: new Date(Date.now() + 900_000).toISOString() }).then(() => id);
    }
    rejected(o, lines) {
        return this.publish('inventory.rejected', o, { order_id: o, reason: 'out_of_stock', lines: lines.map((l) => ({ product_id: l.product_id, requested: l.quantity, available: 0 })) });
    }
    released(o, rid, reason) {
        return this.publish('inventory.released', o, { reservation_id: rid ?? uuid7(), order_id: o, reason, returned: rid !== undefined && rid !== null });
    }
    committed(o, rid, lines) {
        return this.publish('inventory.committed', o, { reservation_id: rid, order_id: o, lines, committed_at: now() });
    }
    authorized(o, amount, pid = uuid7()) {
        return this.publish('payment.authorized', o, { payment_id: pid, order_id: o, amount, authorized_at: now() }).then(() => pid);
    }
    failed(o, amount, reason) {
        return this.publish('payment.failed', o, { payment_id: null, order_id: o, amount, reason, failed_at: now() });
    }
    captured(o, pid, amount) {
        return this.publish('payment.captured', o, { payment_id: pid, order_id: o, amount, captured_at: now() });
    }
    voided(o, pid, amount) {
        return this.publish('payment.voided', o, { payment_id: pid, order_id: o, amount, reason: 'requested', voided_at: now() });
    }
    shipmentCreated(o, address, sid = uuid7()) {
        return this.publish('shipment.created', o, { shipment_id: sid, order_id: o, address, tracking_number: 'AGS0000000000000001', created_at: now() }).then(() => sid);
    }
    shipmentCancelled(o, sid, reason) {
        return this.publish('shipment.cancelled', o, { shipment_id: sid, order_id: o, reason, cancelled_at: now() });
    }
    shipped(o, sid) {
        return this.publish('shipment.shipped', o, { shipment_id: sid, order_id: o, carrier: 'Agora Post', tracking_number: 'AP123', shipped_at: now() });
    }
    delivered(o, sid) {
        return this.publish('shipment.delivered', o, { shipment_id: sid, order_id: o, delivered_at: now() });
    }
}

const ADDRESS = { name: 'Ada Lovelace', line1: '12 St James Sq', city: 'London', postal_code: 'SW1Y 4JH', country: 'GB' };

function product(over = {}) {
    const id = uuid7();
    return {
        id,
        sku: `SKU-${id.slice(-6).toUpperCase()}`,
        name: 'Mug',
        description: '',
        price: { amount: 1100, currency: 'USD' },
        category: null,
        image_url: null,
        active: true,
        created_at: now(),
        updated_at: now(),
        version: 1,
        ...over,
    };
}

function customer(svc, userId) {
    return client(svc, { identity: { userId, roles: ['customer'] } });
}

async function metrics(svc) {
    const r = await client(svc).get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

// Put 'qty' of product 'p' in the cart of 'api' (a customer client).
async function fillCart(api, p, qty = 2) {
    const r = await api.post('/v1/cart/items', { product_id: p.id, quantity: qty });
    assert.equal(r.status, 200, `cart: ${r.status} ${r.text}`);
    return r.json;
}

let keySeq = 0;
async function checkout(api, body, key = `key-${++keySeq}-${uuid7()}`) {
    const r = await api.post('/v1/orders', body, { headers: { 'idempotency-key': key } });
    assert.equal(r.status, 202, `checkout: ${r.status} ${r.text}`);
    assert.equal(r.headers.get('location'), `/v1/orders/${r.json.id}`);
    return r.json;
}

async function order(svc, id) {
    const r = await client(svc).get(`/v1/orders/${id}`);
    assert.equal(r.status, 200, `${r.status} ${r.text}`);
    return r.json;
}

async function waitStatus(svc, id, status) {
    return waitFor(async () => {
        const o = await order(svc, id);
        return o.status === status ? o : null;
    }, { ...WAIT, message: `order ${id} ${status}` });
}

// Start a bus, the participants and orders ('env' on top).
async function startAll(env = {}, dataDir) {
    const bus = await startService('bus');
    const parts = new Participants(bus);
    await parts.start();
    const svc = await startOrders(bus, env, dataDir);
    return { bus, parts, svc };
}

async function startOrders(bus, env = {}, dataDir) {
    const svc = await startService('orders', { dataDir, env: { AGORA_BUS_URL: bus.baseUrl, AGORA_ORDERS_SCAN_INTERVAL: '50ms', ...env } });
    await waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', { ...WAIT, message: 'orders ready' });
    return svc;
}

// Publish products to the replica and wait until orders has them.
async function seedProducts(parts, svc, products) {
    for (const p of products) await parts.publish('product.created', p.id, p);
    const probe = customer(svc, uuid7());
    for (const p of products) {
        await waitFor(async () => (await probe.post('/v1/cart/items', { product_id: p.id, quantity: 1 })).status === 200, { ...WAIT, message: `price of ${p.id}` });
    }
}

// ---- The saga with the participants answering ----

describe('orders: cart, checkout and the saga over a real bus', () => {
    let bus;
    let parts;
    let svc;
    const mug = product();
    const tea = product({ name: 'Tea', price: { amount: 450, currency: 'USD' } });
    const ada = uuid7();
    const bob = uuid7();

    before(async () => {
        ({ bus, parts, svc } = await startAll());
        await seedProducts(parts, svc, [mug, tea]);
    });

    after(async () => {
        if (parts) await parts.stop();
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null });
        if (bus) await stop(bus);
    });

    it('the cart holds lines at the replica prices; a newer product.updated reprices it, an older one does not', T, async () => {
        const api = customer(svc, ada);
        let r = await api.get('/v1/cart');
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { items: [], total: null });
        await fillCart(api, mug, 2);
        const cart = await fillCart(api, tea, 1);
        assert.deepEqual(cart.total, { amount: 2650, currency: 'USD' });
        assert.deepEqual(cart.items.map((i) => [i.product_id, i.quantity, i.unit_price.amount]), [[mug.id, 2, 1100], [tea.id, 1, 450]]);
        r = await api.patch(`/v1/cart/items/${tea.id}`, { quantity: 3 });
        assert.equal(r.status, 200);
        assert.equal(r.json.total.amount, 2 * 1100 + 3 * 450);
        r = await api.delete(`/v1/cart/items/${tea.id}`);
        assert.equal(r.status, 204);
        expectProblem(await api.delete(`/v1/cart/items/${tea.id}`), 404);
        expectProblem(await api.patch(`/v1/cart/items/${tea.id}`, { quantity: 1 }), 404);
        expectProblem(await api.post('/v1/cart/items', { product_id: uuid7(), quantity: 1 }), 422);
        expectProblem(await api.post('/v1/cart/items', { product_id: mug.id, quantity: 0 }), 422);
        // Prices follow the catalog: version 2 applies, a late version 1 does not.
        await parts.publish('product.updated', mug.id, { ...mug, price: { amount: 1200, currency: 'USD' }, version: 2 });
        await waitFor(async () => (await api.get('/v1/cart')).json.total?.amount === 2400, { ...WAIT, message: 'repriced' });
        await parts.publish('product.updated', tea.id, { ...tea, version: 2 });
        await parts.publish('product.updated', mug.id, { ...mug, price: { amount: 1, currency: 'USD' }, version: 2 });
        await waitFor(async () => {
            const c = await customer(svc, uuid7()).post('/v1/cart/items', { product_id: tea.id, quantity: 1 });
            return c.status === 200 && c.json.items[0].unit_price.amount === 450;
        }, WAIT);
        assert.equal((await api.get('/v1/cart')).json.total.amount, 2400, 'the same version does not reprice');
        // Emptied for the next cases.
        assert.equal((await api.delete(`/v1/cart/items/${mug.id}`)).status, 204);
        mug.price = { amount: 1200, currency: 'USD' };
    });

    it('checkout refuses: no Idempotency-Key (428), an empty cart, mass assignment (422)', T, async () => {
        const api = customer(svc, bob);
        expectProblem(await api.post('/v1/orders', { shipping_address: ADDRESS }), 428);
        const empty = await api.post('/v1/orders', { shipping_address: ADDRESS }, { headers: { 'idempotency-key': 'e1' } });
        expectProblem(empty, 422);
        await fillCart(api, mug, 1);
        const mass = await api.post('/v1/orders', { shipping_address: ADDRESS, status: 'CONFIRMED', user_id: ada, total: { amount: 1, currency: 'USD' } }, { headers: { 'idempotency-key': 'm1' } });
        const p = expectProblem(mass, 422);
        assert.deepEqual(p.errors.map((e) => e.field).sort(), ['status', 'total', 'user_id']);
        expectProblem(await api.post('/v1/orders', { shipping_address: { ...ADDRESS, country: 'gb' } }, { headers: { 'idempotency-key': 'm2' } }), 422);
        assert.equal((await api.get('/v1/cart')).json.items.length, 1, 'a refused checkout keeps the cart');
    });

    it('happy path: reserve, authorize, ship, capture + commit -> CONFIRMED only once captured, then COMPLETED', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 2);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        assert.equal(o.status, 'PENDING');
        assert.equal(o.payment_status, 'unpaid');
        assert.deepEqual(o.total, { amount: 2400, currency: 'USD' });
        assert.equal(o.payment_token, undefined, 'the token is never served');
        assert.equal((await api.get('/v1/cart')).json.items.length, 0, 'checkout empties the cart');
        const created = await parts.orderEvent(o.id, 'order.created');
        assert.deepEqual(created.data.total, o.total);

        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        assert.equal(reserve.step_key, `${o.id}:reserve`);
        assert.deepEqual(reserve.lines.map((l) => [l.product_id, l.quantity]), [[mug.id, 2]]);
        const rid = await parts.reserved(o.id, reserve.lines);
        const auth = await parts.cmd(o.id, 'cmd.payment.authorize');
        assert.equal(auth.step_key, `${o.id}:authorize`);
        assert.equal(auth.payment_token, 'tok_visa');
        assert.deepEqual(auth.amount, o.total);
        const pid = await parts.authorized(o.id, o.total);
        const ship = await parts.cmd(o.id, 'cmd.shipment.create');
        assert.deepEqual(ship.address, ADDRESS);
        const sid = await parts.shipmentCreated(o.id, ADDRESS);
        const capture = await parts.cmd(o.id, 'cmd.payment.capture');
        assert.ok(pid);
        assert.deepEqual(capture.amount, o.total);
        const commit = await parts.cmd(o.id, 'cmd.inventory.commit');
        assert.ok(rid);
        assert.equal(commit.step_key, `${o.id}:commit`);
        // A duplicate reply (new event id) sends no second capture.
        await parts.shipmentCreated(o.id, ADDRESS, sid);
        // Stock committed, money not yet captured: not confirmed.
        await parts.committed(o.id, rid, reserve.lines);
        await waitFor(async () => (await order(svc, o.id)).steps.find((s) => s.step === 'commit')?.outcome === 'committed', WAIT);
        assert.equal((await order(svc, o.id)).status, 'PENDING', 'no confirmation without capture');
        await parts.captured(o.id, pid, o.total);
        const done = await waitStatus(svc, o.id, 'CONFIRMED');
        assert.equal(done.payment_status, 'paid');
        assert.equal(parts.cmds(o.id, 'cmd.payment.capture').length, 1, 'captured once');
        const confirmed = await parts.orderEvent(o.id, 'order.confirmed');
        assert.equal(confirmed.data.payment_id, pid);
        assert.equal(confirmed.data.shipment_id, sid);
        assert.deepEqual(done.steps.map((s) => [s.step, s.outcome, s.attempt]), [
            ['reserve', 'reserved', 1], ['authorize', 'authorized', 1], ['ship', 'created', 1], ['capture', 'captured', 1], ['commit', 'committed', 1],
        ]);
        // Dispatched: the customer can no longer cancel.
        await parts.shipped(o.id, sid);
        await waitFor(async () => (await order(svc, o.id)).shipped === true, WAIT);
        const late = await api.post(`/v1/orders/${o.id}/cancel`, {});
        expectProblem(late, 409, { type: 'urn:agora:problem:order-dispatched' });
        await parts.delivered(o.id, sid);
        await waitStatus(svc, o.id, 'COMPLETED');
        await parts.orderEvent(o.id, 'order.completed');
    });

    it('pay later: AWAITING_PAYMENT, the payable view, a wrong amount is voided, the right one continues the saga', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, tea, 2);
        const o = await checkout(api, { shipping_address: ADDRESS });
        assert.equal(o.pays_later, true);
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, reserve.lines);
        await waitStatus(svc, o.id, 'AWAITING_PAYMENT');
        assert.equal(parts.cmds(o.id, 'cmd.payment.authorize').length, 0);
        // What payments asks before authorizing.
        const payments = client(svc, { identity: serviceIdentity('payments') });
        const pay = await payments.get(`/v1/internal/orders/${o.id}/payable`);
        assert.equal(pay.status, 200, pay.text);
        assert.deepEqual(pay.json, { order_id: o.id, user_id: ada, total: { amount: 900, currency: 'USD' }, status: 'AWAITING_PAYMENT', payment_status: 'unpaid' });
        expectProblem(await customer(svc, ada).get(`/v1/internal/orders/${o.id}/payable`), 403);
        // Payments only (least privilege): another service is refused, the operator may look.
        const asCatalog = await client(svc, { identity: serviceIdentity('catalog') }).get(`/v1/internal/orders/${o.id}/payable`);
        expectProblem(asCatalog, 403);
        assert.match(asCatalog.json.detail, /'catalog' may not call this resource \(only payments\)/);
        assert.equal((await client(svc, { identity: OPERATOR }).get(`/v1/internal/orders/${o.id}/payable`)).status, 200);
        // The shared HMAC key makes no service, not even payments.
        const old = identityHeader({ userId: 'payments', roles: ['service'], hmac: true });
        expectProblem(await client(svc, { identity: null, headers: { 'x-agora-identity': old } }).get(`/v1/internal/orders/${o.id}/payable`), 401);
        // A wrong amount: voided, the order keeps waiting.
        const wrong = await parts.authorized(o.id, { amount: 899, currency: 'USD' });
        const v = await parts.cmd(o.id, 'cmd.payment.void');
        assert.equal(v.step_key, `${o.id}:void-${wrong}`);
        assert.equal(v.reason, 'wrong_amount');
        assert.equal((await order(svc, o.id)).status, 'AWAITING_PAYMENT');
        const pid = await parts.authorized(o.id, o.total);
        await parts.cmd(o.id, 'cmd.shipment.create');
        const sid = await parts.shipmentCreated(o.id, ADDRESS);
        await parts.cmd(o.id, 'cmd.payment.capture');
        await parts.cmd(o.id, 'cmd.inventory.commit');
        await parts.captured(o.id, pid, o.total);
        await parts.committed(o.id, rid, reserve.lines);
        const done = await waitStatus(svc, o.id, 'CONFIRMED');
        assert.equal(done.payment_id, pid);
        assert.equal(done.shipment_id, sid);
    });

    it('an unpaid order is cancelled (timeout) when its reservation expires', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, tea, 1);
        const o = await checkout(api, { shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, reserve.lines);
        await waitStatus(svc, o.id, 'AWAITING_PAYMENT');
        await parts.released(o.id, rid, 'expired');
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'timeout');
        const e = await parts.orderEvent(o.id, 'order.cancelled');
        assert.equal(e.data.reason, 'timeout');
        assert.equal(parts.cmds(o.id, 'cmd.inventory.release').length, 0, 'nothing left to release');
    });

    it('payment declined: the stock is released and the order CANCELLED (payment_declined)', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const o = await checkout(api, { payment_token: 'tok_chargeDeclined', shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, reserve.lines);
        await parts.cmd(o.id, 'cmd.payment.authorize');
        await parts.failed(o.id, o.total, 'declined');
        const release = await parts.cmd(o.id, 'cmd.inventory.release');
        assert.ok(rid);
        assert.equal(release.step_key, `${o.id}:release`);
        assert.equal(release.reason, 'payment_failed');
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'payment_declined');
        assert.equal(parts.cmds(o.id, 'cmd.payment.void').length, 0, 'nothing was authorized');
        assert.equal(parts.cmds(o.id, 'cmd.shipment.create').length, 0);
        const e = await parts.orderEvent(o.id, 'order.cancelled');
        assert.equal(e.data.refunded, null);
        await parts.released(o.id, rid, 'payment_failed');
        await waitFor(async () => (await order(svc, o.id)).steps.find((s) => s.step === 'release')?.outcome === 'released', WAIT);
    });

    it('out of stock: REJECTED, nothing authorized', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 5);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        await parts.rejected(o.id, reserve.lines);
        const done = await waitStatus(svc, o.id, 'REJECTED');
        assert.equal(done.cancel_reason, 'out_of_stock');
        const e = await parts.orderEvent(o.id, 'order.cancelled');
        assert.equal(e.data.reason, 'out_of_stock');
        assert.deepEqual(parts.cmds(o.id).map((c) => c.type), ['cmd.inventory.reserve']);
    });

    it('shipment failed: the authorization is voided, the stock released, CANCELLED (shipment_failed)', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, reserve.lines);
        await parts.cmd(o.id, 'cmd.payment.authorize');
        const pid = await parts.authorized(o.id, o.total);
        await parts.cmd(o.id, 'cmd.shipment.create');
        await parts.shipmentCancelled(o.id, null, 'undeliverable');
        const v = await parts.cmd(o.id, 'cmd.payment.void');
        assert.ok(pid && rid);
        assert.deepEqual([v.step_key, v.reason], [`${o.id}:void`, 'shipment_failed']);
        assert.equal((await parts.cmd(o.id, 'cmd.inventory.release')).reason, 'shipment_failed');
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'shipment_failed');
        assert.equal(parts.cmds(o.id, 'cmd.payment.capture').length, 0);
        await parts.voided(o.id, pid, o.total);
        await waitFor(async () => (await order(svc, o.id)).payment_status === 'unpaid', WAIT);
    });

    it('customer cancel before confirmation: void, release and cancel the shipment at once (200)', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, reserve.lines);
        await parts.cmd(o.id, 'cmd.payment.authorize');
        const pid = await parts.authorized(o.id, o.total);
        await parts.cmd(o.id, 'cmd.shipment.create');
        const r = await api.post(`/v1/orders/${o.id}/cancel`, {});
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'CANCELLED');
        assert.equal(r.json.cancel_reason, 'customer_request');
        assert.ok(pid && rid);
        assert.equal((await parts.cmd(o.id, 'cmd.payment.void')).reason, 'customer_request');
        assert.equal((await parts.cmd(o.id, 'cmd.inventory.release')).reason, 'cancelled');
        assert.equal((await parts.cmd(o.id, 'cmd.shipment.cancel')).step_key, `${o.id}:cancel_shipment`);
        expectProblem(await api.post(`/v1/orders/${o.id}/cancel`, {}), 409, { type: 'urn:agora:problem:order-closed' });
        // The shipment created late is cancelled by its id.
        const sid = await parts.shipmentCreated(o.id, ADDRESS);
        assert.equal((await parts.cmd(o.id, 'cmd.shipment.cancel', 2)).step_key, `${o.id}:cancel_shipment-${sid}`);
    });

    // Drive an order of one 'p' to CONFIRMED, the participants answering.
    async function confirmedOrder(api, p) {
        await fillCart(api, p, 1);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        const res = await parts.cmd(o.id, 'cmd.inventory.reserve');
        const rid = await parts.reserved(o.id, res.lines);
        await parts.cmd(o.id, 'cmd.payment.authorize');
        const pid = await parts.authorized(o.id, o.total);
        await parts.cmd(o.id, 'cmd.shipment.create');
        const sid = await parts.shipmentCreated(o.id, ADDRESS);
        await parts.cmd(o.id, 'cmd.payment.capture');
        await parts.captured(o.id, pid, o.total);
        await parts.cmd(o.id, 'cmd.inventory.commit');
        await parts.committed(o.id, rid, res.lines);
        await waitStatus(svc, o.id, 'CONFIRMED');
        return { o, rid, pid, sid, lines: res.lines };
    }

    it('cancel after confirmation: the shipment cancel first (202), then refund and restock once shipping agreed', T, async () => {
        const api = customer(svc, ada);
        const { o, rid, pid, sid, lines } = await confirmedOrder(api, tea);
        const c = await api.post(`/v1/orders/${o.id}/cancel`, {});
        assert.equal(c.status, 202, c.text);
        assert.deepEqual([c.json.status, c.json.cancel_status], ['CONFIRMED', 'requested']);
        const sc = await parts.cmd(o.id, 'cmd.shipment.cancel');
        assert.deepEqual([sc.step_key, sc.reason], [`${o.id}:cancel_shipment`, 'customer_request']);
        // Asked again while shipping has not answered: the same answer, no second command.
        assert.equal((await api.post(`/v1/orders/${o.id}/cancel`, {})).status, 202);
        // Nothing moves money or stock before shipping's answer.
        assert.deepEqual([parts.cmds(o.id, 'cmd.payment.refund').length, parts.cmds(o.id, 'cmd.inventory.restock').length], [0, 0]);
        await parts.shipmentCancelled(o.id, sid, 'customer_request');
        const refund = await parts.cmd(o.id, 'cmd.payment.refund');
        assert.deepEqual([refund.amount, refund.reason], [o.total, 'customer_request']);
        const restock = await parts.cmd(o.id, 'cmd.inventory.restock');
        assert.deepEqual([restock.step_key, restock.reason], [`${o.id}:restock`, 'order_cancelled']);
        assert.equal(parts.cmds(o.id, 'cmd.inventory.release').length, 0, 'a committed reservation is restocked, not released');
        const e = await parts.orderEvent(o.id, 'order.cancelled');
        assert.deepEqual([e.data.reason, e.data.refunded], ['customer_request', o.total]);
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'customer_request');
        await parts.publish('payment.refunded', o.id, { payment_id: pid, order_id: o.id, refund_id: uuid7(), amount: o.total, refunded_at: now() });
        await parts.publish('inventory.restocked', o.id, { reservation_id: rid, order_id: o.id, reason: 'order_cancelled', lines, returned: true, restocked_at: now() });
        await waitFor(async () => {
            const x = await order(svc, o.id);
            return x.payment_status === 'refunded' && x.restocked === true;
        }, { ...WAIT, message: 'refunded and restocked' });
        // A repeated reply changes nothing; the steps show both compensations answered.
        await parts.publish('inventory.restocked', o.id, { reservation_id: rid, order_id: o.id, reason: 'order_cancelled', lines, returned: true, restocked_at: now() });
        const steps = Object.fromEntries((await order(svc, o.id)).steps.map((x) => [x.step, x.outcome]));
        assert.deepEqual([steps.cancel_shipment, steps.refund, steps.restock], ['cancelled', 'refunded', 'restocked']);
        expectProblem(await api.post(`/v1/orders/${o.id}/cancel`, {}), 409, { type: 'urn:agora:problem:order-closed' });
    });

    it('cancel after confirmation racing the dispatch: shipment.cancel_rejected -> no refund, no restock, still CONFIRMED', T, async () => {
        const api = customer(svc, ada);
        const { o, sid } = await confirmedOrder(api, tea);
        const c = await api.post(`/v1/orders/${o.id}/cancel`, {});
        assert.equal(c.status, 202, c.text);
        await parts.cmd(o.id, 'cmd.shipment.cancel');
        // The courier was faster: shipped, and the cancel refused.
        await parts.shipped(o.id, sid);
        await parts.publish('shipment.cancel_rejected', o.id, { shipment_id: sid, order_id: o.id, status: 'shipped', reason: 'customer_request', rejected_at: now() });
        const x = await waitFor(async () => {
            const y = await order(svc, o.id);
            return y.cancel_status === 'refused' ? y : null;
        }, { ...WAIT, message: 'cancel refused' });
        assert.deepEqual([x.status, x.payment_status, x.shipped, x.restocked], ['CONFIRMED', 'paid', true, false]);
        assert.equal(x.steps.find((s) => s.step === 'cancel_shipment').outcome, 'rejected', 'the history says the cancel was refused');
        assert.deepEqual([parts.cmds(o.id, 'cmd.payment.refund').length, parts.cmds(o.id, 'cmd.inventory.restock').length, parts.cmds(o.id, 'cmd.inventory.release').length], [0, 0, 0]);
        assert.ok(!parts.events.some((ev) => ev.subject === o.id && ev.type === 'order.cancelled'), 'no order.cancelled');
        expectProblem(await api.post(`/v1/orders/${o.id}/cancel`, {}), 409, { type: 'urn:agora:problem:order-dispatched' });
        await parts.delivered(o.id, sid);
        await waitStatus(svc, o.id, 'COMPLETED');
    });

    it('idempotent checkout: same key twice -> one order; other body -> 422; concurrent same key -> one order', T, async () => {
        const api = customer(svc, bob);
        const body = { payment_token: 'tok_visa', shipping_address: ADDRESS };
        const first = await checkout(api, body, 'same-key');
        // The saga moves on; the replay is still the first answer.
        await parts.cmd(first.id, 'cmd.inventory.reserve');
        await parts.rejected(first.id, [{ product_id: tea.id, quantity: 1 }]);
        await waitStatus(svc, first.id, 'REJECTED');
        const again = await api.post('/v1/orders', body, { headers: { 'idempotency-key': 'same-key' } });
        assert.equal(again.status, 202);
        assert.deepEqual(again.json, first, 'the same answer');
        assert.equal(again.headers.get('idempotent-replayed'), 'true');
        assert.equal(again.headers.get('location'), `/v1/orders/${first.id}`);
        const other = await api.post('/v1/orders', { ...body, payment_token: 'tok_other' }, { headers: { 'idempotency-key': 'same-key' } });
        expectProblem(other, 422);
        await fillCart(api, tea, 1);
        const results = await Promise.all(Array.from({ length: 6 }, () => api.post('/v1/orders', body, { headers: { 'idempotency-key': 'burst' } })));
        assert.deepEqual(results.map((r) => r.status), Array(6).fill(202));
        assert.equal(new Set(results.map((r) => r.json.id)).size, 1, 'one order');
        const mine = await api.get('/v1/orders');
        assert.equal(mine.json.items.filter((x) => x.id === results[0].json.id).length, 1);
        assert.equal(parts.cmds(results[0].json.id, 'cmd.inventory.reserve').length <= 1, true);
    });

    it("another user's order is not found (404, never 403); lists are the caller's, all for admin", T, async () => {
        const mine = await customer(svc, ada).get('/v1/orders');
        assert.equal(mine.status, 200);
        assert.ok(mine.json.items.length >= 5);
        assert.ok(mine.json.items.every((x) => x.user_id === ada));
        const ids = mine.json.items.map((x) => x.id);
        assert.deepEqual(ids, [...ids].sort().reverse(), 'newest first');
        const eve = customer(svc, uuid7());
        expectProblem(await eve.get(`/v1/orders/${ids[0]}`), 404);
        expectProblem(await eve.post(`/v1/orders/${ids[0]}/cancel`, {}), 404);
        assert.deepEqual((await eve.get('/v1/orders')).json, { items: [], next_cursor: null });
        // Paging.
        const page1 = await customer(svc, ada).get('/v1/orders?limit=2');
        assert.equal(page1.json.items.length, 2);
        const page2 = await customer(svc, ada).get(`/v1/orders?limit=2&cursor=${page1.json.next_cursor}`);
        assert.ok(page2.json.items[0].id < page1.json.items[1].id);
        expectProblem(await customer(svc, ada).get('/v1/orders?cursor=zzz'), 400);
        // Admin: everyone's, filtered by status.
        const all = await client(svc).get('/v1/orders?status=CANCELLED&limit=100');
        assert.equal(all.status, 200);
        assert.ok(all.json.items.length >= 3 && all.json.items.every((x) => x.status === 'CANCELLED'));
        expectProblem(await client(svc).get('/v1/orders?status=LOST'), 400);
        const sagas = await client(svc).get('/v1/sagas?state=in_flight');
        assert.equal(sagas.status, 200);
        assert.ok(Array.isArray(sagas.json.items));
        expectProblem(await client(svc).get('/v1/sagas?state=odd'), 400);
        expectProblem(await customer(svc, ada).get('/v1/sagas'), 403);
    });

    it('every order rebuilt from its events equals its projection; events and metrics are consistent', T, async () => {
        const r = await client(svc).get('/v1/sagas/rebuild-check');
        assert.equal(r.status, 200, r.text);
        assert.ok(r.json.orders >= 8, `orders checked: ${r.json.orders}`);
        assert.deepEqual(r.json.mismatched, []);
        for (const e of parts.events) assertValidEvent(e, `${e.type} breaks its contract`);
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'orders_total', { outcome: 'confirmed' }) >= 3);
        assert.ok(metricValue(m, 'orders_total', { outcome: 'rejected' }) >= 1);
        assert.ok(metricValue(m, 'saga_steps_total', { step: 'capture', outcome: 'captured' }) >= 3);
        assert.ok(metricValue(m, 'saga_duration_seconds_count') >= 5);
        // Each step's latency, send to reply, by step.
        assert.ok(metricValue(m, 'saga_step_duration_seconds_count', { step: 'capture' }) >= 3);
        assert.ok(metricValue(m, 'saga_step_duration_seconds_count', { step: 'reserve' }) >= 5);
    });
});

// ---- Deadlines, retries, compensation, late replies ----

describe('orders: step deadlines and late replies', () => {
    let bus;
    let parts;
    let svc;
    const mug = product();
    const ada = uuid7();

    before(async () => {
        ({ bus, parts, svc } = await startAll({
            AGORA_ORDERS_STEP_TIMEOUT: '300ms',
            AGORA_ORDERS_STEP_RETRIES: '2',
            // Short-lived checkout keys (the chassis's records, swept on a timer).
            AGORA_IDEMPOTENCY_TTL: '1s',
            AGORA_IDEMPOTENCY_SWEEP_INTERVAL: '100ms',
        }));
        await seedProducts(parts, svc, [mug]);
    });

    it('a checkout key is kept AGORA_IDEMPOTENCY_TTL: replayed within it, then free for a new checkout', T, async () => {
        const api = customer(svc, uuid7());
        await fillCart(api, mug, 1);
        const body = { payment_token: 'tok_visa', shipping_address: ADDRESS };
        const first = await checkout(api, body, 'short-lived');
        const t0 = Date.now();
        const again = await api.post('/v1/orders', body, { headers: { 'idempotency-key': 'short-lived' } });
        if (Date.now() - t0 < 900) {
            assert.equal(again.status, 202);
            assert.equal(again.json.id, first.id);
            assert.equal(again.headers.get('idempotent-replayed'), 'true');
        }
        // Past its time the key is forgotten: another body under it is a new checkout, not 422.
        await fillCart(api, mug, 1);
        const later = await waitFor(async () => {
            const r = await api.post('/v1/orders', { ...body, payment_token: 'tok_later' }, { headers: { 'idempotency-key': 'short-lived' } });
            return r.status === 202 ? r : null;
        }, { ...WAIT, intervalMs: 200, message: 'the key expired' });
        assert.notEqual(later.json.id, first.id);
        assert.equal(later.headers.get('idempotent-replayed'), null);
    });

    after(async () => {
        if (parts) await parts.stop();
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null });
        if (bus) await stop(bus);
    });

    it('an unanswered step is re-sent with the same step_key, then compensated (CANCELLED timeout)', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const o = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        await parts.cmd(o.id, 'cmd.inventory.reserve', 3);
        const keys = parts.cmds(o.id, 'cmd.inventory.reserve').map((c) => c.data.step_key);
        assert.deepEqual(new Set(keys), new Set([`${o.id}:reserve`]), 'same step_key on every attempt');
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'timeout');
        const reserve = done.steps.find((s) => s.step === 'reserve');
        assert.deepEqual([reserve.outcome, reserve.attempt], ['timeout', 3]);
        // Its outcome is unknown: released anyway (harmless if nothing was held).
        assert.equal((await parts.cmd(o.id, 'cmd.inventory.release')).step_key, `${o.id}:release`);
        assert.equal(parts.cmds(o.id, 'cmd.inventory.reserve').length, 3, 'no attempt after the compensation');
        // The reservation made late is released by its id.
        const rid = await parts.reserved(o.id, [{ product_id: mug.id, quantity: 1 }]);
        assert.equal((await parts.cmd(o.id, 'cmd.inventory.release', 2)).step_key, `${o.id}:release-${rid}`);
    });

    it('payment.authorized after the timeout compensation -> cmd.payment.void for it', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const o = await checkout(api, { payment_token: 'tok_timeout', shipping_address: ADDRESS });
        const reserve = await parts.cmd(o.id, 'cmd.inventory.reserve');
        await parts.reserved(o.id, reserve.lines);
        await parts.cmd(o.id, 'cmd.payment.authorize', 3);
        const done = await waitStatus(svc, o.id, 'CANCELLED');
        assert.equal(done.cancel_reason, 'timeout');
        assert.equal((await parts.cmd(o.id, 'cmd.payment.void')).step_key, `${o.id}:void`, 'void of an unknown outcome');
        await parts.cmd(o.id, 'cmd.inventory.release');
        const pid = await parts.authorized(o.id, o.total);
        const late = await parts.cmd(o.id, 'cmd.payment.void', 2);
        assert.equal(late.step_key, `${o.id}:void-${pid}`);
        assert.equal((await order(svc, o.id)).status, 'CANCELLED');
    });

    it('a compensation unanswered past its retries lists the saga as failed, and keeps retrying', T, async () => {
        const failed = await waitFor(async () => {
            const r = await client(svc).get('/v1/sagas?state=failed');
            return r.json.items.length > 0 ? r.json.items : null;
        }, { ...WAIT, message: 'a failed saga' });
        assert.ok(failed.every((s) => s.pending_steps.length > 0));
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'saga_steps_total', { step: 'reserve', outcome: 'retried' }) >= 2);
        assert.ok(metricValue(m, 'saga_steps_total', { step: 'reserve', outcome: 'timeout' }) >= 1);
        const r = await client(svc).get('/v1/sagas/rebuild-check');
        assert.deepEqual(r.json.mismatched, []);
    });
});

// ---- Crash and resume ----

describe('orders: SIGKILL mid-saga and resume', () => {
    let bus;
    let parts;
    let svc;
    let dataDir;
    const mug = product();
    const ada = uuid7();

    before(async () => {
        dataDir = makeTempDir('agora-orders-crash-');
        ({ bus, parts, svc } = await startAll({ AGORA_ORDERS_STEP_TIMEOUT: '1s', AGORA_ORDERS_STEP_RETRIES: '20' }, dataDir));
        await seedProducts(parts, svc, [mug]);
    });

    after(async () => {
        if (parts) await parts.stop();
        if (svc) await stop(svc);
        if (bus) await stop(bus);
        removeTempDir(dataDir);
    });

    it('a saga killed between steps resumes after the restart: replies that came meanwhile and re-sent steps', T, async () => {
        const api = customer(svc, ada);
        await fillCart(api, mug, 1);
        const a = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        await fillCart(api, mug, 1);
        const b = await checkout(api, { payment_token: 'tok_visa', shipping_address: ADDRESS });
        const reserveA = await parts.cmd(a.id, 'cmd.inventory.reserve');
        await parts.cmd(b.id, 'cmd.inventory.reserve');
        const killed = await stop(svc, 'SIGKILL');
        assert.equal(killed.signal, 'SIGKILL');
        // A's reply arrives while orders is down; B's never comes.
        const rid = await parts.reserved(a.id, reserveA.lines);
        svc = await startOrders(bus, { AGORA_ORDERS_STEP_TIMEOUT: '1s', AGORA_ORDERS_STEP_RETRIES: '20' }, dataDir);
        await parts.cmd(a.id, 'cmd.payment.authorize');
        // B's step is re-sent by the timer, same step_key.
        const again = await parts.cmd(b.id, 'cmd.inventory.reserve', 2);
        assert.equal(again.step_key, `${b.id}:reserve`);
        const pid = await parts.authorized(a.id, a.total);
        await parts.cmd(a.id, 'cmd.shipment.create');
        await parts.shipmentCreated(a.id, ADDRESS);
        await parts.cmd(a.id, 'cmd.payment.capture');
        await parts.captured(a.id, pid, a.total);
        await parts.committed(a.id, rid, reserveA.lines);
        await waitStatus(svc, a.id, 'CONFIRMED');
        const r = await client(svc).get('/v1/sagas/rebuild-check');
        assert.deepEqual(r.json.mismatched, []);
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
        svc = null;
    });
});
