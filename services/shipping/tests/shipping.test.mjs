// SPDX-License-Identifier: MIT
// Shipping component tests: the real binary on a free port with a temporary
// database and a real bus. The saga's commands (cmd.shipment.create,
// cmd.shipment.cancel) are published to the bus as orders would, and the
// replies are read back from a subscription of the test's own and checked
// against contracts/events/. Then the HTTP API of
// services/shipping/openapi.yaml: ownership, the state machine and its
// illegal moves, paging, metrics, and a crash between a command's commit
// and its ack.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { cleanup, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { client, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent } from '../../../tests/lib/schema.mjs';

const T = { timeout: 30_000 };
// Deadline for a command to travel bus -> shipping -> bus.
const REPLY_MS = 15_000;
const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

after(() => cleanup());

// ---- Helpers ----

// A UUIDv7 string, as the events runtime gives every event.
function uuid7() {
    const b = crypto.randomBytes(16);
    const ms = BigInt(Date.now());
    for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const ADDRESS = { name: 'Ada Lovelace', line1: '12 Analytical Street', city: 'London', postal_code: 'N1 9GU', country: 'GB' };

// A saga command as orders' outbox writes it: source /agora/orders, the
// order id as subject.
function command(type, data, id = uuid7()) {
    return {
        specversion: '1.0',
        id,
        source: '/agora/orders',
        type,
        subject: data.order_id,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data,
    };
}

function createCmd(orderId, userId, over = {}) {
    return command('cmd.shipment.create', {
        order_id: orderId,
        step_key: `${orderId}:ship`,
        user_id: userId,
        address: ADDRESS,
        lines: [{ product_id: uuid7(), quantity: 2 }],
        ...over,
    });
}

function cancelCmd(orderId, reason = 'payment_failed', step = 'cancel_shipment') {
    return command('cmd.shipment.cancel', { order_id: orderId, step_key: `${orderId}:${step}`, reason });
}

// Publish commands to the bus (checked against their contract unless
// 'hostile' says they break it on purpose).
async function publish(bus, events, { hostile = false } = {}) {
    if (!hostile) for (const e of events) assertValidEvent(e, 'a test command breaks its contract');
    const messages = events.map((e) => ({ id: e.id, topic: e.type, subject: e.subject, data: e }));
    const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', { messages });
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
}

// What the saga would read: a subscription to shipment.* on the bus, pulled
// and acknowledged by the test. 'all' keeps every reply seen, in order.
async function replyListener(bus, name) {
    const api = client(bus, { identity: OPERATOR });
    const r = await api.put(`/v1/subscriptions/${name}`, { topics: ['shipment.*'] });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    const all = [];
    async function pull() {
        const p = await api.post(`/v1/subscriptions/${name}/pull`, { max_messages: 100, wait_ms: 200 });
        assert.equal(p.status, 200, p.text);
        const msgs = p.json.messages;
        if (msgs.length > 0) {
            const a = await api.post(`/v1/subscriptions/${name}/ack`, { ack_ids: msgs.map((m) => m.ack_id) });
            assert.equal(a.status, 200, a.text);
        }
        for (const m of msgs) {
            assertValidEvent(m.data, `reply ${m.topic}`);
            all.push(m.data);
        }
    }
    return {
        all,
        // Every reply about order 'orderId' of type 'type' seen so far.
        of(orderId, type) {
            return all.filter((e) => e.data.order_id === orderId && (type === undefined || e.type === type));
        },
        // Wait for the 'n'th reply of 'type' about 'orderId'; returns them all.
        async wait(orderId, type, n = 1) {
            return waitFor(async () => {
                await pull();
                const got = this.of(orderId, type);
                return got.length >= n && got;
            }, { timeoutMs: REPLY_MS, message: `${n} ${type} for order ${orderId}` });
        },
        pull,
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

function waitReady(svc) {
    return waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
        timeoutMs: REPLY_MS,
        message: `${svc.name} ready (subscription on the bus)`,
    });
}

function assertCleanStderr(proc) {
    assert.deepEqual(proc.nonJsonLines(), [], `${proc.name} wrote non-JSON lines to stderr`);
}

// ---- The saga's commands and the HTTP API ----

describe('shipping with a bus', () => {
    let bus;
    let svc;
    let replies;
    const ada = uuid7();
    const bob = uuid7();
    const order = uuid7();
    let shipment; // Ada's shipment for 'order'

    before(async () => {
        bus = await startService('bus');
        replies = await replyListener(bus, 'test-replies');
        svc = await startService('shipping', { env: { AGORA_BUS_URL: bus.baseUrl, AGORA_SHIPPING_CARRIER: 'Test Post' } });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assertCleanStderr(svc);
        }
        if (bus) await stop(bus);
    });

    it('cmd.shipment.create makes a shipment and replies shipment.created with its tracking number', T, async () => {
        const cmd = { ...createCmd(order, ada), traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };
        await publish(bus, [cmd]);
        const [created] = await replies.wait(order, 'shipment.created');
        assert.equal(created.source, '/agora/shipping');
        assert.equal(created.traceparent, cmd.traceparent, 'the reply carries the command\'s trace context');
        assert.equal(created.subject, created.data.shipment_id);
        assert.match(created.data.shipment_id, UUIDV7);
        assert.deepEqual(created.data.address, ADDRESS);
        assert.match(created.data.tracking_number, /^AGS[0-9A-F]{16}$/);

        const r = await customer(svc, ada).get(`/v1/shipments/${created.data.shipment_id}`);
        assert.equal(r.status, 200, r.text);
        shipment = r.json;
        assert.equal(shipment.order_id, order);
        assert.equal(shipment.user_id, ada);
        assert.equal(shipment.status, 'created');
        assert.equal(shipment.carrier, null);
        assert.equal(shipment.cancel_reason, null);
        assert.equal(shipment.tracking_number, created.data.tracking_number);
        assert.deepEqual(shipment.lines, cmd.data.lines);
        assert.deepEqual(shipment.address, ADDRESS);
        assert.deepEqual(shipment.tracking, [{ status: 'created', at: shipment.created_at }]);
        assert.equal(shipment.created_at, created.data.created_at);
    });

    it('the same step again (a new event id) has no second effect and gets the same reply', T, async () => {
        assert.ok(shipment, 'needs the previous test');
        await publish(bus, [createCmd(order, ada)]);
        const both = await replies.wait(order, 'shipment.created', 2);
        assert.equal(both.length, 2);
        assert.notEqual(both[0].id, both[1].id);
        assert.deepEqual(both[1].data, both[0].data);
        const list = await client(svc).get(`/v1/shipments?order_id=${order}`);
        assert.equal(list.status, 200);
        assert.deepEqual(list.json.items.map((s) => s.id), [shipment.id]);
        const m = await metrics(svc);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'create', outcome: 'created' }), 1);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'create', outcome: 'replayed' }), 1);
    });

    it('a command that can never be applied is consumed, counted and not answered', T, async () => {
        const bad = uuid7();
        await publish(bus, [createCmd(bad, ada, { lines: [], address: { ...ADDRESS, country: 'GBR' } })], { hostile: true });
        await waitFor(async () => metricValue(await metrics(svc), 'shipping_commands_total', { command: 'create', outcome: 'invalid' }) === 1, {
            timeoutMs: REPLY_MS, message: 'the invalid command counted',
        });
        await replies.pull();
        assert.deepEqual(replies.of(bad), []);
        const list = await client(svc).get(`/v1/shipments?order_id=${bad}`);
        assert.deepEqual(list.json.items, []);
    });

    it('only the owner and administrators see a shipment; others get 404 or an empty list', T, async () => {
        assert.ok(shipment, 'needs the first test');
        const other = customer(svc, bob);
        expectProblem(await other.get(`/v1/shipments/${shipment.id}`), 404, { type: 'urn:agora:problem:not-found' });
        assert.deepEqual((await other.get(`/v1/shipments?order_id=${order}`)).json, { items: [], next_cursor: null });
        assert.deepEqual((await other.get(`/v1/shipments?user_id=${ada}`)).json, { items: [], next_cursor: null });
        assert.deepEqual((await other.get('/v1/shipments')).json.items, []);
        const mine = await customer(svc, ada).get(`/v1/shipments?order_id=${order}`);
        assert.deepEqual(mine.json.items.map((s) => s.id), [shipment.id]);
        assert.equal((await client(svc).get(`/v1/shipments/${shipment.id}`)).status, 200);
        expectProblem(await client(svc, { identity: null }).get(`/v1/shipments/${shipment.id}`), 401);
        expectProblem(await client(svc).get('/v1/shipments/not-an-id'), 404);
        expectProblem(await client(svc).get(`/v1/shipments/${uuid7()}`), 404);
    });

    it('delivering what has not left is an illegal move: 409, nothing changes', T, async () => {
        const r = await client(svc).post(`/v1/shipments/${shipment.id}/deliver`);
        expectProblem(r, 409, { type: 'urn:agora:problem:conflict' });
        assert.match(r.json.detail, /cannot deliver a shipment that is created/);
        assert.equal((await client(svc).get(`/v1/shipments/${shipment.id}`)).json.status, 'created');
    });

    it('an administrator ships it: shipment.shipped with the carrier; shipping twice is 409', T, async () => {
        const r = await client(svc).post(`/v1/shipments/${shipment.id}/ship`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'shipped');
        assert.equal(r.json.carrier, 'Test Post');
        assert.deepEqual(r.json.tracking.map((h) => h.status), ['created', 'shipped']);
        const [shipped] = await replies.wait(order, 'shipment.shipped');
        assert.equal(shipped.subject, shipment.id);
        assert.equal(shipped.data.carrier, 'Test Post');
        assert.equal(shipped.data.tracking_number, shipment.tracking_number);
        assert.equal(shipped.data.shipped_at, r.json.tracking[1].at);
        expectProblem(await client(svc).post(`/v1/shipments/${shipment.id}/ship`), 409);
        expectProblem(await customer(svc, ada).post(`/v1/shipments/${shipment.id}/ship`), 403);
    });

    it('after dispatch a cancel command is refused with shipment.cancel_rejected, an HTTP cancel with 409', T, async () => {
        await publish(bus, [cancelCmd(order, 'customer_request')]);
        const [rejected] = await replies.wait(order, 'shipment.cancel_rejected');
        assert.deepEqual(rejected.data, {
            shipment_id: shipment.id, order_id: order, status: 'shipped', reason: 'customer_request', rejected_at: rejected.data.rejected_at,
        });
        assert.deepEqual(replies.of(order, 'shipment.cancelled'), []);
        expectProblem(await client(svc).post(`/v1/shipments/${shipment.id}/cancel`), 409);
        assert.equal((await client(svc).get(`/v1/shipments/${shipment.id}`)).json.status, 'shipped');
    });

    it('delivered is terminal: shipment.delivered once, then every move is 409', T, async () => {
        const r = await client(svc).post(`/v1/shipments/${shipment.id}/deliver`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'delivered');
        assert.deepEqual(r.json.tracking.map((h) => h.status), ['created', 'shipped', 'delivered']);
        const [delivered] = await replies.wait(order, 'shipment.delivered');
        assert.equal(delivered.data.delivered_at, r.json.tracking[2].at);
        for (const action of ['ship', 'deliver', 'cancel'])
            expectProblem(await client(svc).post(`/v1/shipments/${shipment.id}/${action}`), 409);
        expectProblem(await client(svc).post(`/v1/shipments/${uuid7()}/ship`), 404);
    });

    it('a cancel before dispatch cancels it; the same step again replies the same; a second cancel is harmless', T, async () => {
        const o = uuid7();
        await publish(bus, [createCmd(o, ada)]);
        const [created] = await replies.wait(o, 'shipment.created');
        const id = created.data.shipment_id;
        await publish(bus, [cancelCmd(o)]);
        const [cancelled] = await replies.wait(o, 'shipment.cancelled');
        assert.equal(cancelled.subject, id);
        assert.equal(cancelled.data.shipment_id, id);
        assert.equal(cancelled.data.reason, 'payment_failed');
        const s = (await client(svc).get(`/v1/shipments/${id}`)).json;
        assert.equal(s.status, 'cancelled');
        assert.equal(s.cancel_reason, 'payment_failed');
        assert.deepEqual(s.tracking.map((h) => h.status), ['created', 'cancelled']);

        await publish(bus, [cancelCmd(o)]); // the same step, a new event id
        const again = await replies.wait(o, 'shipment.cancelled', 2);
        assert.deepEqual(again[1].data, again[0].data);
        await publish(bus, [cancelCmd(o, 'customer_request', 'cancel_again')]); // another step
        const third = await replies.wait(o, 'shipment.cancelled', 3);
        assert.equal(third[2].data.shipment_id, id);
        expectProblem(await client(svc).post(`/v1/shipments/${id}/ship`), 409);
    });

    it('cancelling the shipment of an order that has none is harmless: shipment_id null', T, async () => {
        const o = uuid7();
        await publish(bus, [cancelCmd(o)]);
        const [cancelled] = await replies.wait(o, 'shipment.cancelled');
        assert.equal(cancelled.data.shipment_id, null);
        assert.equal(cancelled.subject, o);
        assert.deepEqual((await client(svc).get(`/v1/shipments?order_id=${o}`)).json.items, []);
    });

    it('an administrator cancels before dispatch: shipment.cancelled with reason admin_request', T, async () => {
        const o = uuid7();
        await publish(bus, [createCmd(o, bob)]);
        const [created] = await replies.wait(o, 'shipment.created');
        const r = await client(svc).post(`/v1/shipments/${created.data.shipment_id}/cancel`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.status, 'cancelled');
        assert.equal(r.json.cancel_reason, 'admin_request');
        const [cancelled] = await replies.wait(o, 'shipment.cancelled');
        assert.equal(cancelled.data.reason, 'admin_request');
        expectProblem(await client(svc).post(`/v1/shipments/${created.data.shipment_id}/cancel`), 409);
    });

    it('the administrators\' list filters by status and pages with a cursor', T, async () => {
        const api = client(svc);
        const all = [];
        let cursor = null;
        do {
            const r = await api.get(`/v1/shipments?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
            assert.equal(r.status, 200, r.text);
            assert.ok(r.json.items.length <= 2);
            all.push(...r.json.items);
            cursor = r.json.next_cursor;
        } while (cursor !== null);
        assert.equal(all.length, 3);
        assert.deepEqual(all.map((s) => s.id), [...all.map((s) => s.id)].sort());
        const delivered = await api.get('/v1/shipments?status=delivered');
        assert.deepEqual(delivered.json.items.map((s) => s.id), [shipment.id]);
        assert.equal((await api.get('/v1/shipments?status=cancelled')).json.items.length, 2);
        expectProblem(await api.get('/v1/shipments?status=lost'), 400, { type: 'urn:agora:problem:bad-query' });
        expectProblem(await api.get('/v1/shipments?cursor=!!'), 400, { type: 'urn:agora:problem:bad-query' });
        expectProblem(await api.get('/v1/shipments?limit=0'), 400);
        expectProblem(await api.get('/v1/shipments?order_id=42'), 400);
    });

    it('counts shipments by status and commands by outcome', T, async () => {
        const m = await metrics(svc);
        assert.equal(metricValue(m, 'shipments_total', { status: 'created' }), 3);
        assert.equal(metricValue(m, 'shipments_total', { status: 'shipped' }), 1);
        assert.equal(metricValue(m, 'shipments_total', { status: 'delivered' }), 1);
        assert.equal(metricValue(m, 'shipments_total', { status: 'cancelled' }), 2);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'create', outcome: 'created' }), 3);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'cancel', outcome: 'refused' }), 1);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'cancel', outcome: 'cancelled' }), 2);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'cancel', outcome: 'replayed' }), 1);
        assert.equal(metricValue(m, 'shipping_commands_total', { command: 'cancel', outcome: 'absent' }), 1);
    });

    it('a courier ships and delivers and sees every shipment; a customer gets 403; only an administrator cancels', T, async () => {
        const o = uuid7();
        await publish(bus, [createCmd(o, bob)]);
        const [created] = await replies.wait(o, 'shipment.created');
        const id = created.data.shipment_id;
        const courier = client(svc, { identity: { userId: uuid7(), roles: ['customer', 'courier'] } });
        for (const move of ['ship', 'deliver', 'cancel']) {
            expectProblem(await customer(svc, bob).post(`/v1/shipments/${id}/${move}`), 403, { type: 'urn:agora:problem:forbidden' });
        }
        expectProblem(await courier.post(`/v1/shipments/${id}/cancel`), 403, { type: 'urn:agora:problem:forbidden' });
        assert.equal((await courier.get(`/v1/shipments/${id}`)).json.user_id, bob);
        assert.ok((await courier.get(`/v1/shipments?order_id=${o}`)).json.items.some((x) => x.id === id));
        const shipped = await courier.post(`/v1/shipments/${id}/ship`);
        assert.equal(shipped.status, 200, shipped.text);
        await replies.wait(o, 'shipment.shipped');
        const delivered = await courier.post(`/v1/shipments/${id}/deliver`);
        assert.equal(delivered.status, 200, delivered.text);
        assert.deepEqual(delivered.json.tracking.map((h) => h.status), ['created', 'shipped', 'delivered']);
        await replies.wait(o, 'shipment.delivered');
    });
});

// ---- A crash between a command's commit and its ack ----

describe('SIGKILL between the commit of a command and its ack', () => {
    it('the redelivered command is skipped by the inbox: one shipment, one reply', { timeout: 60_000 }, async () => {
        const bus = await startService('bus');
        try {
            const replies = await replyListener(bus, 'test-crash');
            const env = { AGORA_BUS_URL: bus.baseUrl, AGORA_SHIPPING_ACK_DEADLINE: '1s' };
            const svc = await startService('shipping', { env: { ...env, AGORA_SHIPPING_TEST_KILL_AFTER_COMMIT: '1' } });
            await waitReady(svc);
            const o = uuid7();
            await publish(bus, [createCmd(o, uuid7())]);
            assert.deepEqual(await waitExit(svc), { code: null, signal: 'SIGKILL' });
            assert.ok(svc.logs((l) => /KILL_AFTER_COMMIT/.test(l.msg ?? '')).length === 1, 'killed by the test fault');

            const again = await startService('shipping', { dataDir: svc.dataDir, env });
            // The bus redelivers the unacknowledged command; the inbox has it.
            await waitFor(async () => metricValue(await metrics(again), 'events_duplicates_total') >= 1, {
                timeoutMs: REPLY_MS, message: 'the redelivered command skipped as a duplicate',
            });
            // The reply committed before the crash is relayed after the restart, once.
            const [created] = await replies.wait(o, 'shipment.created');
            await replies.pull();
            assert.equal(replies.of(o).length, 1);
            const list = await client(again).get(`/v1/shipments?order_id=${o}`);
            assert.deepEqual(list.json.items.map((s) => s.id), [created.data.shipment_id]);
            assert.equal(metricValue(await metrics(again), 'shipping_commands_total', { command: 'create', outcome: 'created' }) ?? 0, 0);
            assert.deepEqual(await stop(again), { code: 0, signal: null });
            assertCleanStderr(again);
        } finally {
            await stop(bus);
        }
    });
});

// ---- Configuration ----

describe('configuration', () => {
    it('refuses an empty carrier at start-up', T, async () => {
        const bad = await startService('shipping', { env: { AGORA_SHIPPING_CARRIER: '', AGORA_BUS_URL: 'http://127.0.0.1:1' } }).catch((e) => e);
        assert.ok(bad instanceof Error);
        assert.match(bad.message, /AGORA_SHIPPING_CARRIER/);
    });
});
