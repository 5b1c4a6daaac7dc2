// SPDX-License-Identifier: MIT
// Inventory component tests: the real binary on a free port with a
// temporary database and a real bus. Product events and saga commands are
// published to the bus as the catalog and orders would; the replies and
// stock events inventory publishes are read back from the bus through an
// observer subscription and checked against contracts/events/. The HTTP API
// is checked against services/inventory/openapi.yaml: availability, stock
// with preconditions, adjustments with Idempotency-Key, history,
// reservations. Then the saga's guarantees: all-or-nothing, never more
// reserved than on hand under 50 concurrent reserves, idempotent retries,
// release after commit, expiry, product.deleted, a crash between commit and
// ack, metrics and a clean SIGTERM.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { cleanup, startService, stop, waitExit, waitFor, waitForLog } from '../../../tests/lib/proc.mjs';
import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent } from '../../../tests/lib/schema.mjs';

const T = { timeout: 60_000 };
const DELIVERY_MS = 20_000;
const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

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

function cloudEvent(type, source, subject, data) {
    return { specversion: '1.0', id: uuid7(), source, type, subject, time: now(), datacontenttype: 'application/json', data };
}

let skuSeq = 0;
function productCreated(id = uuid7()) {
    skuSeq += 1;
    return cloudEvent('product.created', '/agora/catalog', id, {
        id,
        sku: `INV-${skuSeq}`,
        name: `Product ${skuSeq}`,
        description: '',
        price: { amount: 1000, currency: 'USD' },
        category: null,
        image_url: null,
        active: true,
        created_at: now(),
        updated_at: now(),
        version: 1,
    });
}

function productDeleted(id) {
    return cloudEvent('product.deleted', '/agora/catalog', id, { id, sku: 'INV-DEL', version: 2, deleted_at: now() });
}

const cmd = {
    reserve: (orderId, lines, step = 'reserve') =>
        cloudEvent('cmd.inventory.reserve', '/agora/orders', orderId, { order_id: orderId, step_key: `${orderId}:${step}`, lines }),
    release: (orderId, reason = 'cancelled', step = 'release') =>
        cloudEvent('cmd.inventory.release', '/agora/orders', orderId, { order_id: orderId, step_key: `${orderId}:${step}`, reason }),
    commit: (orderId, step = 'commit') =>
        cloudEvent('cmd.inventory.commit', '/agora/orders', orderId, { order_id: orderId, step_key: `${orderId}:${step}` }),
    restock: (orderId, step = 'restock') =>
        cloudEvent('cmd.inventory.restock', '/agora/orders', orderId, { order_id: orderId, step_key: `${orderId}:${step}`, reason: 'order_cancelled' }),
};

// Publish events to the bus, each checked against its contract unless
// 'hostile' (a malformed command on purpose).
async function publish(bus, events, { hostile = false } = {}) {
    if (!hostile) for (const e of events) assertValidEvent(e, 'a test event breaks its contract');
    const messages = events.map((e) => ({ id: e.id, topic: e.type, subject: e.subject, data: e }));
    const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', { messages });
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
}

// A subscription on the bus that sees what inventory publishes; every
// event read is checked against its contract.
class Observer {
    constructor(bus, name) {
        this.api = client(bus, { identity: OPERATOR });
        this.name = name;
        this.events = [];
    }

    async start() {
        const r = await this.api.put(`/v1/subscriptions/${this.name}`, { topics: ['inventory.*', 'stock.*'] });
        assert.ok(r.status === 201 || r.status === 200, r.text);
        return this;
    }

    async drain() {
        for (;;) {
            const r = await this.api.post(`/v1/subscriptions/${this.name}/pull`, { max_messages: 500, wait_ms: 0 });
            assert.equal(r.status, 200, r.text);
            const msgs = r.json.messages;
            if (msgs.length === 0) return;
            for (const m of msgs) {
                assertValidEvent(m.data, `inventory published an event that breaks its contract`);
                assert.equal(m.data.source, '/agora/inventory');
                this.events.push(m.data);
            }
            const a = await this.api.post(`/v1/subscriptions/${this.name}/ack`, { ack_ids: msgs.map((m) => m.ack_id) });
            assert.equal(a.status, 200, a.text);
        }
    }

    // Events about 'subject' (of 'type' when given) seen so far.
    about(subject, type) {
        return this.events.filter((e) => e.subject === subject && (type === undefined || e.type === type));
    }

    // Wait until at least 'n' events about 'subject' (and of 'type') arrived.
    async waitFor(subject, type, n = 1) {
        return waitFor(
            async () => {
                await this.drain();
                const got = this.about(subject, type);
                return got.length >= n && got;
            },
            { timeoutMs: DELIVERY_MS, message: `${n} ${type ?? 'event'} about ${subject}` },
        );
    }

    // The single reply of the saga to order 'orderId' (waits for it).
    async reply(orderId, n = 1) {
        const got = await this.waitFor(orderId, undefined, n);
        return got[n - 1];
    }
}

function waitReady(svc) {
    return waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
        timeoutMs: DELIVERY_MS,
        message: `${svc.name} ready (subscription on the bus)`,
    });
}

async function metrics(svc) {
    const r = await client(svc).get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

// The stock of 'id' as an administrator sees it, once it exists.
function waitStock(svc, id, pred = () => true) {
    return waitFor(
        async () => {
            const r = await client(svc).get(`/v1/stock/${id}`);
            return r.status === 200 && pred(r.json) && r;
        },
        { timeoutMs: DELIVERY_MS, message: `stock of ${id}` },
    );
}

// Set the stock of 'id' to 'onHand' with its current ETag.
async function setStock(svc, id, onHand, extra = {}) {
    const cur = await client(svc).get(`/v1/stock/${id}`);
    assert.equal(cur.status, 200, cur.text);
    const r = await client(svc).put(`/v1/stock/${id}`, { on_hand: onHand, reason: 'count', ...extra }, {
        headers: { 'if-match': cur.headers.get('etag') },
    });
    assert.equal(r.status, 200, r.text);
    return r.json;
}

// A product known to inventory with 'onHand' units.
async function product(bus, svc, onHand) {
    const ev = productCreated();
    await publish(bus, [ev]);
    await waitStock(svc, ev.data.id);
    if (onHand > 0) await setStock(svc, ev.data.id, onHand);
    return ev.data.id;
}

function assertCleanStderr(proc) {
    assert.deepEqual(proc.nonJsonLines(), [], `${proc.name} wrote non-JSON lines to stderr`);
}

// ---- The HTTP API and the saga, on one bus ----

describe('inventory with a bus', () => {
    let bus;
    let svc;
    let obs;

    before(async () => {
        bus = await startService('bus');
        obs = await new Observer(bus, 'observer').start();
        svc = await startService('inventory', { env: { AGORA_BUS_URL: bus.baseUrl, AGORA_INVENTORY_DEMO_STOCK: '0' } });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assertCleanStderr(svc);
        }
        if (bus) await stop(bus);
    });

    it('product.created makes a stock row at 0 with its history', T, async () => {
        const ev = productCreated();
        await publish(bus, [ev]);
        const r = await waitStock(svc, ev.data.id);
        assert.equal(r.json.product_id, ev.data.id);
        assert.equal(r.json.on_hand, 0);
        assert.equal(r.json.reserved, 0);
        assert.equal(r.json.available, 0);
        assert.equal(r.json.low_threshold, 5);
        assert.equal(r.json.active, true);
        assert.match(r.headers.get('etag'), /^"\d+"$/);
        const h = await client(svc).get(`/v1/stock/${ev.data.id}/movements`);
        assert.equal(h.status, 200);
        assert.deepEqual(h.json.items.map((m) => m.kind), ['created']);
        // A redelivered creation (new event id, same product) changes nothing.
        await publish(bus, [{ ...ev, id: uuid7() }]);
        await waitFor(async () => metricValue(await metrics(svc), 'events_consumed_total', { subscription: 'inventory' }) >= 2);
        assert.equal((await client(svc).get(`/v1/stock/${ev.data.id}/movements`)).json.items.length, 1);
    });

    it('PUT sets on hand under a precondition; adjustments move it with a reason', T, async () => {
        const id = await product(bus, svc, 0);
        const api = client(svc);
        const cur = await api.get(`/v1/stock/${id}`);
        expectProblem(await api.put(`/v1/stock/${id}`, { on_hand: 3, reason: 'count' }), 428, {
            type: 'urn:agora:problem:precondition-required',
        });
        expectProblem(await api.put(`/v1/stock/${id}`, { on_hand: 3, reason: 'count' }, { headers: { 'if-match': '"999"' } }), 412, {
            type: 'urn:agora:problem:precondition-failed',
        });
        const bad = expectProblem(await api.put(`/v1/stock/${id}`, { on_hand: -1, extra: 1 }, { headers: { 'if-match': cur.headers.get('etag') } }), 422);
        assert.deepEqual(errorFields(bad).sort(), ['extra', 'on_hand', 'reason']);
        const put = await api.put(`/v1/stock/${id}`, { on_hand: 20, reason: 'delivery', low_threshold: 3 }, {
            headers: { 'if-match': cur.headers.get('etag') },
        });
        assert.equal(put.status, 200, put.text);
        assert.equal(put.json.on_hand, 20);
        assert.equal(put.json.available, 20);
        assert.equal(put.json.low_threshold, 3);
        assert.notEqual(put.headers.get('etag'), cur.headers.get('etag'));
        // The body's version works as If-Match does.
        const v = put.json.version;
        const byVersion = await api.put(`/v1/stock/${id}`, { on_hand: 25, reason: 'recount', version: v });
        assert.equal(byVersion.status, 200, byVersion.text);
        expectProblem(await api.put(`/v1/stock/${id}`, { on_hand: 25, reason: 'recount', version: v }), 412);

        const key = uuid7();
        const adj = await api.post(`/v1/stock/${id}/adjustments`, { delta: -5, reason: 'broken' }, { headers: { 'idempotency-key': key } });
        assert.equal(adj.status, 201, adj.text);
        assert.equal(adj.json.stock.on_hand, 20);
        assert.equal(adj.json.movement.on_hand_delta, -5);
        assert.equal(adj.json.movement.kind, 'adjust');
        // The same key again: the first answer, as it was, no second effect.
        const again = await api.post(`/v1/stock/${id}/adjustments`, { delta: -5, reason: 'broken' }, { headers: { 'idempotency-key': key } });
        assert.equal(again.status, 201, again.text);
        assert.equal(again.headers.get('idempotent-replayed'), 'true');
        assert.deepEqual(again.json, adj.json);
        // The same key with another body: 422, nothing moves.
        expectProblem(await api.post(`/v1/stock/${id}/adjustments`, { delta: -6, reason: 'broken' }, { headers: { 'idempotency-key': key } }), 422, {
            type: 'urn:agora:problem:idempotency-key-reused',
        });
        assert.equal((await api.get(`/v1/stock/${id}`)).json.on_hand, 20);
        expectProblem(await api.post(`/v1/stock/${id}/adjustments`, { delta: 0, reason: 'x' }), 422);
        expectProblem(await api.post(`/v1/stock/${id}/adjustments`, { delta: -21, reason: 'x' }), 422);
        expectProblem(await api.post(`/v1/stock/${uuid7()}/adjustments`, { delta: 1, reason: 'x' }), 404, {
            type: 'urn:agora:problem:not-found',
        });

        // History, newest first, by cursor.
        const p1 = await api.get(`/v1/stock/${id}/movements?limit=2`);
        assert.equal(p1.status, 200);
        assert.deepEqual(p1.json.items.map((m) => m.kind), ['adjust', 'set']);
        assert.equal(p1.json.items[0].reason, 'broken');
        assert.equal(p1.json.items[0].actor, '01a20000-0000-7000-8000-00000000ad01');
        assert.equal(typeof p1.json.next_cursor, 'string');
        const p2 = await api.get(`/v1/stock/${id}/movements?limit=2&cursor=${p1.json.next_cursor}`);
        assert.deepEqual(p2.json.items.map((m) => m.kind), ['set', 'created']);
        assert.equal(p2.json.next_cursor, null);
        expectProblem(await api.get(`/v1/stock/${id}/movements?cursor=nope`), 400, { type: 'urn:agora:problem:bad-query' });
    });

    it('GET /v1/stock is public and tells only what is available', T, async () => {
        const id = await product(bus, svc, 7);
        const unknown = uuid7();
        const anon = client(svc, { identity: null });
        const r = await anon.get(`/v1/stock?product_id=${id},${unknown}`);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, { items: [{ product_id: id, available: 7 }, { product_id: unknown, available: 0 }] });
        expectProblem(await anon.get('/v1/stock'), 400, { type: 'urn:agora:problem:bad-query' });
        expectProblem(await anon.get('/v1/stock?product_id=42'), 400);
        // The full record is for administrators.
        expectProblem(await anon.get(`/v1/stock/${id}`), 401);
        expectProblem(await client(svc, { identity: { userId: uuid7(), roles: ['customer'] } }).get(`/v1/stock/${id}`), 403);
    });

    it('reserve holds every line or none, and answers with inventory.reserved', T, async () => {
        const a = await product(bus, svc, 10);
        const b = await product(bus, svc, 6);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: a, quantity: 2 }, { product_id: b, quantity: 2 }, { product_id: a, quantity: 1 }])]);
        const reply = await obs.reply(order);
        assert.equal(reply.type, 'inventory.reserved');
        assert.equal(reply.subject, order);
        assert.deepEqual(reply.data.lines, [{ product_id: a, quantity: 3 }, { product_id: b, quantity: 2 }]);
        assert.ok(Date.parse(reply.data.expires_at) > Date.now() + 10 * 60_000, 'expires in 15 minutes');
        const sa = (await client(svc).get(`/v1/stock/${a}`)).json;
        assert.deepEqual([sa.on_hand, sa.reserved, sa.available], [10, 3, 7]);
        const sb = (await client(svc).get(`/v1/stock/${b}`)).json;
        assert.deepEqual([sb.on_hand, sb.reserved, sb.available], [6, 2, 4]);
        // b fell from 6 to 4, under the default threshold of 5: stock.low.
        const [low] = await obs.waitFor(b, 'stock.low');
        assert.deepEqual(low.data, { product_id: b, available: 4, threshold: 5 });

        const res = await client(svc).get(`/v1/reservations/${reply.data.reservation_id}`);
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.state, 'held');
        assert.equal(res.json.order_id, order);
        assert.deepEqual(res.json.lines, reply.data.lines);
        const list = await client(svc).get(`/v1/reservations?order_id=${order}`);
        assert.deepEqual(list.json.items.map((r) => r.id), [reply.data.reservation_id]);
        expectProblem(await client(svc).get(`/v1/reservations/${uuid7()}`), 404);
        expectProblem(await client(svc).get('/v1/reservations?order_id=x'), 400);

        // Not enough of one line: nothing of the other is held.
        const short = uuid7();
        await publish(bus, [cmd.reserve(short, [{ product_id: a, quantity: 1 }, { product_id: b, quantity: 5 }])]);
        const no = await obs.reply(short);
        assert.equal(no.type, 'inventory.rejected');
        assert.deepEqual(no.data, { order_id: short, reason: 'out_of_stock', lines: [{ product_id: b, requested: 5, available: 4 }] });
        assert.equal((await client(svc).get(`/v1/stock/${a}`)).json.reserved, 3);

        const ghost = uuid7();
        const unknown = uuid7();
        await publish(bus, [cmd.reserve(ghost, [{ product_id: unknown, quantity: 1 }])]);
        const ug = await obs.reply(ghost);
        assert.deepEqual(ug.data, { order_id: ghost, reason: 'unknown_product', lines: [{ product_id: unknown, requested: 1, available: 0 }] });

        // A malformed reserve (quantity 0) is refused as invalid.
        const bad = uuid7();
        const badCmd = cmd.reserve(bad, [{ product_id: a, quantity: 0 }]);
        await publish(bus, [badCmd], { hostile: true });
        const inv = await obs.reply(bad);
        assert.deepEqual(inv.data, { order_id: bad, reason: 'invalid', lines: [] });
    });

    it('a retried step has one effect and the same reply; one reservation per order', T, async () => {
        const p = await product(bus, svc, 10);
        const order = uuid7();
        const first = cmd.reserve(order, [{ product_id: p, quantity: 4 }]);
        await publish(bus, [first]);
        const r1 = await obs.reply(order);
        // The same step again as a new message (orders retrying a lost reply).
        await publish(bus, [{ ...first, id: uuid7() }]);
        const r2 = await obs.reply(order, 2);
        assert.deepEqual(r2.data, r1.data);
        assert.notEqual(r2.id, r1.id);
        // Another step key for the same order: the first answer, even though
        // stock changed since.
        await setStock(svc, p, 4);
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 1 }], 'reserve-2')]);
        const r3 = await obs.reply(order, 3);
        assert.deepEqual(r3.data, r1.data);
        const s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved, s.available], [4, 4, 0]);
        // Below what is reserved, an administrator cannot go.
        const cur = await client(svc).get(`/v1/stock/${p}`);
        expectProblem(await client(svc).put(`/v1/stock/${p}`, { on_hand: 3, reason: 'count' }, { headers: { 'if-match': cur.headers.get('etag') } }), 409, {
            type: 'urn:agora:problem:conflict',
        });
    });

    it('commit ships the reserved units; a release after commit returns nothing', T, async () => {
        const p = await product(bus, svc, 10);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 3 }])]);
        const reserved = await obs.reply(order);
        await publish(bus, [cmd.commit(order)]);
        const committed = await obs.reply(order, 2);
        assert.equal(committed.type, 'inventory.committed');
        assert.equal(committed.data.reservation_id, reserved.data.reservation_id);
        assert.deepEqual(committed.data.lines, [{ product_id: p, quantity: 3 }]);
        let s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved, s.available], [7, 0, 7]);
        // Commit again (a retry): the same answer, no second effect.
        await publish(bus, [cmd.commit(order, 'commit-again')]);
        assert.deepEqual((await obs.reply(order, 3)).data, committed.data);

        await publish(bus, [cmd.release(order, 'cancelled')]);
        const rel = await obs.reply(order, 4);
        assert.equal(rel.type, 'inventory.released');
        assert.deepEqual(rel.data, { reservation_id: reserved.data.reservation_id, order_id: order, reason: 'cancelled', returned: false });
        s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved, s.available], [7, 0, 7]);
        assert.equal((await client(svc).get(`/v1/reservations/${reserved.data.reservation_id}`)).json.state, 'committed');
    });

    it('restock puts a cancelled order\'s committed units back on hand once, with a movement; nothing when never committed', T, async () => {
        const p = await product(bus, svc, 10);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 4 }])]);
        const reserved = await obs.reply(order);
        await publish(bus, [cmd.commit(order)]);
        await obs.reply(order, 2);
        await publish(bus, [cmd.restock(order)]);
        const back = await obs.reply(order, 3);
        assert.equal(back.type, 'inventory.restocked');
        assert.deepEqual([back.data.reservation_id, back.data.returned, back.data.reason, back.data.lines],
            [reserved.data.reservation_id, true, 'order_cancelled', [{ product_id: p, quantity: 4 }]]);
        let s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved, s.available], [10, 0, 10]);
        const [m] = (await client(svc).get(`/v1/stock/${p}/movements`)).json.items;
        assert.deepEqual([m.kind, m.on_hand_delta, m.reason, m.order_id], ['restock', 4, 'order_cancelled', order]);
        // Once: the same step again, and another step key, move nothing and answer the same.
        await publish(bus, [cmd.restock(order)]);
        await publish(bus, [cmd.restock(order, 'restock-again')]);
        assert.deepEqual((await obs.reply(order, 4)).data, back.data);
        assert.deepEqual((await obs.reply(order, 5)).data, back.data);
        s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved], [10, 0], 'restocked only once');
        assert.ok((await client(svc).get(`/v1/reservations/${reserved.data.reservation_id}`)).json.restocked_at);

        // Never committed (held, then released): nothing comes back; no reservation at all: the same.
        const held = uuid7();
        await publish(bus, [cmd.reserve(held, [{ product_id: p, quantity: 2 }])]);
        await obs.reply(held);
        await publish(bus, [cmd.release(held), cmd.restock(held)]);
        const none = await obs.reply(held, 3);
        assert.deepEqual([none.type, none.data.returned, none.data.lines], ['inventory.restocked', false, []]);
        const stranger = uuid7();
        await publish(bus, [cmd.restock(stranger)]);
        const nothing = await obs.reply(stranger);
        assert.deepEqual([nothing.data.reservation_id, nothing.data.returned], [null, false]);
        s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved], [10, 0]);
    });

    it('release gives held units back; releasing an unknown order records it and refuses a late reserve', T, async () => {
        const p = await product(bus, svc, 5);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 5 }])]);
        await obs.reply(order);
        const [dep] = await obs.waitFor(p, 'stock.depleted');
        assert.equal(dep.data.on_hand, 5);
        await publish(bus, [cmd.release(order, 'payment_failed')]);
        const rel = await obs.reply(order, 2);
        assert.equal(rel.data.returned, true);
        assert.equal(rel.data.reason, 'payment_failed');
        assert.equal((await client(svc).get(`/v1/stock/${p}`)).json.available, 5);
        // A retry of the release: the same answer, nothing returned twice.
        await publish(bus, [cmd.release(order, 'payment_failed')].map((e) => ({ ...e, id: uuid7() })));
        assert.deepEqual((await obs.reply(order, 3)).data, rel.data);
        assert.equal((await client(svc).get(`/v1/stock/${p}`)).json.reserved, 0);

        const early = uuid7();
        await publish(bus, [cmd.release(early, 'cancelled')]);
        const none = await obs.reply(early);
        assert.equal(none.type, 'inventory.released');
        assert.equal(none.data.returned, false);
        assert.match(none.data.reservation_id, UUIDV7);
        await publish(bus, [cmd.reserve(early, [{ product_id: p, quantity: 1 }])]);
        const late = await obs.reply(early, 2);
        assert.deepEqual(late.data, { order_id: early, reason: 'invalid', lines: [] });
        assert.equal((await client(svc).get(`/v1/stock/${p}`)).json.reserved, 0);
        // A commit with no reservation at all is refused as invalid.
        const stray = uuid7();
        await publish(bus, [cmd.commit(stray)]);
        assert.deepEqual((await obs.reply(stray)).data, { order_id: stray, reason: 'invalid', lines: [] });
    });

    it('50 concurrent reserves for the last 10 units: exactly 10 held, 40 refused, never negative', T, async () => {
        const p = await product(bus, svc, 10);
        const orders = Array.from({ length: 50 }, () => uuid7());
        // Fifty publishers at once, as fifty checkouts would.
        await Promise.all(orders.map((o) => publish(bus, [cmd.reserve(o, [{ product_id: p, quantity: 1 }])])));
        const replies = [];
        for (const o of orders) replies.push(await obs.reply(o));
        const held = replies.filter((r) => r.type === 'inventory.reserved');
        const refused = replies.filter((r) => r.type === 'inventory.rejected');
        assert.equal(held.length, 10);
        assert.equal(refused.length, 40);
        for (const r of refused) assert.deepEqual(r.data.lines, [{ product_id: p, requested: 1, available: 0 }]);
        const s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved, s.available], [10, 10, 0]);
        const h = await client(svc).get(`/v1/stock/${p}/movements?limit=100`);
        for (const m of h.json.items) assert.ok(m.reserved <= m.on_hand && m.reserved >= 0, JSON.stringify(m));
        assert.equal(h.json.items.filter((m) => m.kind === 'reserve').length, 10);
    });

    it('product.deleted takes a product off sale', T, async () => {
        const p = await product(bus, svc, 6);
        await publish(bus, [productDeleted(p)]);
        await waitStock(svc, p, (s) => s.active === false);
        const anon = client(svc, { identity: null });
        assert.deepEqual((await anon.get(`/v1/stock?product_id=${p}`)).json.items, [{ product_id: p, available: 0 }]);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 1 }])]);
        const r = await obs.reply(order);
        assert.deepEqual(r.data, { order_id: order, reason: 'unknown_product', lines: [{ product_id: p, requested: 1, available: 0 }] });
    });

    it('metrics count commands by outcome and the units reserved', T, async () => {
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'reserve', outcome: 'reserved' }) >= 13);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'reserve', outcome: 'rejected' }) >= 42);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'reserve', outcome: 'duplicate' }) >= 2);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'commit', outcome: 'committed' }) >= 1);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'release', outcome: 'released' }) >= 1);
        assert.ok(metricValue(m, 'inventory_commands_total', { command: 'release', outcome: 'noop' }) >= 2);
        const sum = await client(svc).get('/v1/reservations?limit=100');
        assert.equal(sum.status, 200);
        const reservedUnits = metricValue(m, 'stock_reserved');
        assert.ok(reservedUnits >= 10, `stock_reserved ${reservedUnits}`);
    });
});

// ---- Expiry ----

describe('inventory expiry', () => {
    it('a reservation neither committed nor released expires and gives its units back', T, async () => {
        const bus = await startService('bus');
        const obs = await new Observer(bus, 'observer').start();
        // A short lease: a command the bus handed to a pull of the stopped
        // process comes back within a second.
        const env = { AGORA_BUS_URL: bus.baseUrl, AGORA_INVENTORY_ACK_DEADLINE: '1s' };
        const svc = await startService('inventory', {
            env: { ...env, AGORA_INVENTORY_RESERVATION_TTL: '1s' },
        });
        await waitReady(svc);
        const p = await product(bus, svc, 3);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 2 }])]);
        const reserved = await obs.reply(order);
        assert.equal(reserved.type, 'inventory.reserved');
        const released = await obs.reply(order, 2);
        assert.equal(released.type, 'inventory.released');
        assert.deepEqual(released.data, { reservation_id: reserved.data.reservation_id, order_id: order, reason: 'expired', returned: true });
        const s = (await client(svc).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved], [3, 0]);
        // Commit after expiry: the answer says the reservation expired.
        await publish(bus, [cmd.commit(order)]);
        assert.deepEqual((await obs.reply(order, 3)).data, released.data);
        assert.equal((await client(svc).get(`/v1/stock/${p}`)).json.on_hand, 3);

        // Expired while the service was down: released at start.
        const order2 = uuid7();
        await stop(svc);
        const svc2 = await startService('inventory', {
            dataDir: svc.dataDir,
            env: { ...env, AGORA_INVENTORY_RESERVATION_TTL: '3s' },
        });
        await waitReady(svc2);
        await publish(bus, [cmd.reserve(order2, [{ product_id: p, quantity: 1 }])]);
        const r2 = await obs.reply(order2);
        assert.equal(r2.type, 'inventory.reserved');
        assert.equal(await stop(svc2, 'SIGKILL').then((x) => x.signal), 'SIGKILL');
        await waitFor(() => Date.now() > Date.parse(r2.data.expires_at), { timeoutMs: 5000, message: 'the reservation expired' });
        const svc3 = await startService('inventory', { dataDir: svc.dataDir, env });
        await waitForLog(svc3, (o) => o.msg === 'released 1 expired reservations');
        const before = svc3.logs((o) => o.msg === 'released 1 expired reservations' || o.msg === 'listening').map((o) => o.msg);
        assert.deepEqual(before, ['released 1 expired reservations', 'listening']);
        assert.equal((await obs.reply(order2, 2)).data.reason, 'expired');
        assert.deepEqual(await stop(svc3), { code: 0, signal: null });
        assertCleanStderr(svc3);
        await stop(bus);
    });
});

// ---- Crash between commit and ack ----

describe('inventory crash safety', () => {
    it('killed between the commit of a reserve and its ack: the redelivery is skipped, one effect, one reply', T, async () => {
        const bus = await startService('bus');
        const obs = await new Observer(bus, 'observer').start();
        const env = { AGORA_BUS_URL: bus.baseUrl, AGORA_INVENTORY_ACK_DEADLINE: '1s' };
        const svc = await startService('inventory', { env });
        await waitReady(svc);
        const p = await product(bus, svc, 8);
        const dataDir = svc.dataDir;
        await stop(svc);

        const crashing = await startService('inventory', {
            dataDir,
            env: { ...env, AGORA_INVENTORY_CRASH_AFTER_COMMIT: 'cmd.inventory.reserve' },
        });
        await waitReady(crashing);
        const order = uuid7();
        await publish(bus, [cmd.reserve(order, [{ product_id: p, quantity: 3 }])]);
        assert.deepEqual(await waitExit(crashing), { code: null, signal: 'SIGKILL' });

        const again = await startService('inventory', { dataDir, env });
        await waitReady(again);
        // The bus redelivers the unacked command after its lease; the inbox
        // knows it.
        await waitFor(async () => metricValue(await metrics(again), 'events_consumed_total', { subscription: 'inventory', outcome: 'duplicate' }) >= 1, {
            timeoutMs: DELIVERY_MS,
            message: 'the redelivered command skipped as a duplicate',
        });
        const reply = await obs.reply(order);
        assert.equal(reply.type, 'inventory.reserved');
        const s = (await client(again).get(`/v1/stock/${p}`)).json;
        assert.deepEqual([s.on_hand, s.reserved], [8, 3]);
        await obs.drain();
        assert.equal(obs.about(order).length, 1, 'one reply, published from the outbox after the restart');
        assert.deepEqual(await stop(again), { code: 0, signal: null });
        await stop(bus);
    });
});

// ---- Configuration ----

describe('inventory configuration', () => {
    it('a bad setting stops the process with exit status 2', T, async () => {
        const svc = await import('../../../tests/lib/proc.mjs').then((m) =>
            m.spawnService('inventory', { env: { AGORA_INVENTORY_RESERVATION_TTL: 'soon' } }),
        );
        assert.deepEqual(await waitExit(svc), { code: 2, signal: null });
        assert.match(svc.stderr(10), /AGORA_INVENTORY_RESERVATION_TTL/);
    });
});
