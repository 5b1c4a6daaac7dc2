// SPDX-License-Identifier: MIT
// Analytics component tests: the real binary on a free port with a
// temporary database, fed CloudEvents (checked against contracts/events/)
// through a real bus. Checked against services/analytics/openapi.yaml: each
// report against figures worked out by hand from the events sent; late
// events (an order's confirmation and saga replies before its creation);
// duplicates (the same CloudEvent in two bus messages) and poison events
// changing nothing; a rebuild from the event log equal to the live
// projections; admin-only access; 400 problems for bad query parameters;
// metrics; a clean exit on SIGTERM.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { cleanup, startService, stop, waitFor } from '../../../tests/lib/proc.mjs';
import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent } from '../../../tests/lib/schema.mjs';

const T = { timeout: 30_000 };
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const DELIVERY_MS = 15_000;

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

const SOURCES = { order: '/agora/orders', payment: '/agora/payments', inventory: '/agora/inventory', shipment: '/agora/shipping' };

// A CloudEvent at 'at' (ms), valid for its contract.
function cloudEvent(type, subject, data, at) {
    const e = {
        specversion: '1.0',
        id: uuid7(),
        source: SOURCES[type.split('.')[0]],
        type,
        subject,
        time: new Date(at).toISOString(),
        datacontenttype: 'application/json',
        data,
    };
    assertValidEvent(e, 'a test event breaks its contract');
    return e;
}

async function publish(bus, events, { msgIds = [] } = {}) {
    const messages = events.map((e, i) => ({ id: msgIds[i] ?? e.id, topic: e.type, subject: e.subject, data: e }));
    const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', { messages });
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
}

async function metrics(svc) {
    const r = await client(svc).get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

async function waitOutcome(svc, outcome, n) {
    await waitFor(async () => metricValue(await metrics(svc), 'analytics_events_total', { outcome }) >= n, {
        timeoutMs: DELIVERY_MS,
        message: `${n} events handled with outcome ${outcome}`,
    });
}

const iso = (ms) => new Date(ms).toISOString();
const money = (amount, currency) => ({ amount, currency });
const ADDRESS = { name: 'Ada Lovelace', line1: '12 Analytical Street', city: 'London', postal_code: 'N1 9GU', country: 'GB' };

// The events of one order's life. 'o' = { id, user, currency, lines:
// [{product, qty, unit}], t0 (ms), steps: {reserved, authorized, shipment,
// confirmed, completed} (ms after t0), cancel: {reason, at, refund} }.
function orderEvents(o) {
    const ev = {};
    const total = money(o.lines.reduce((a, l) => a + l.qty * l.unit, 0), o.currency);
    const lines = o.lines.map((l) => ({ product_id: l.product, sku: `SKU-${l.product.slice(-4)}`, quantity: l.qty, unit_price: money(l.unit, o.currency) }));
    const qty = o.lines.map((l) => ({ product_id: l.product, quantity: l.qty }));
    const s = o.steps ?? {};
    const at = (k) => o.t0 + s[k];
    const res = uuid7();
    const pay = uuid7();
    const ship = uuid7();
    ev.created = cloudEvent('order.created', o.id, { order_id: o.id, user_id: o.user, lines, total, created_at: iso(o.t0) }, o.t0);
    if (s.reserved !== undefined) {
        ev.reserved = cloudEvent('inventory.reserved', o.id, { reservation_id: res, order_id: o.id, lines: qty, expires_at: iso(at('reserved') + 900_000) }, at('reserved'));
    }
    if (o.rejected) {
        ev.rejected = cloudEvent('inventory.rejected', o.id, {
            order_id: o.id,
            reason: 'out_of_stock',
            lines: o.lines.map((l) => ({ product_id: l.product, requested: l.qty, available: 0 })),
        }, o.t0 + 40);
    }
    if (s.authorized !== undefined) {
        ev.authorized = cloudEvent('payment.authorized', pay, { payment_id: pay, order_id: o.id, amount: total, authorized_at: iso(at('authorized')) }, at('authorized'));
    }
    if (o.declined) {
        ev.failed = cloudEvent('payment.failed', o.id, { payment_id: null, order_id: o.id, amount: total, reason: 'declined', failed_at: iso(o.t0 + 200) }, o.t0 + 200);
        ev.released = cloudEvent('inventory.released', o.id, { reservation_id: res, order_id: o.id, reason: 'payment_failed', returned: true }, o.t0 + 250);
    }
    if (s.shipment !== undefined) {
        ev.shipment = cloudEvent('shipment.created', ship, { shipment_id: ship, order_id: o.id, address: ADDRESS, tracking_number: 'AGS1', created_at: iso(at('shipment')) }, at('shipment'));
    }
    if (s.confirmed !== undefined) {
        ev.committed = cloudEvent('inventory.committed', o.id, { reservation_id: res, order_id: o.id, lines: qty, committed_at: iso(at('confirmed') - 10) }, at('confirmed') - 10);
        ev.confirmed = cloudEvent('order.confirmed', o.id, {
            order_id: o.id, user_id: o.user, total, payment_id: pay, shipment_id: ship, confirmed_at: iso(at('confirmed')),
        }, at('confirmed'));
    }
    if (s.completed !== undefined) {
        ev.completed = cloudEvent('order.completed', o.id, { order_id: o.id, user_id: o.user, completed_at: iso(at('completed')) }, at('completed'));
    }
    if (o.cancel) {
        const c = o.cancel;
        if (c.refund) {
            ev.refunded = cloudEvent('payment.refunded', pay, { payment_id: pay, order_id: o.id, refund_id: uuid7(), amount: total, refunded_at: iso(c.at) }, c.at);
            ev.restocked = cloudEvent('inventory.restocked', o.id, {
                reservation_id: res, order_id: o.id, reason: 'order_cancelled', lines: qty, returned: true, restocked_at: iso(c.at),
            }, c.at);
        }
        ev.cancelled = cloudEvent('order.cancelled', o.id, {
            order_id: o.id, user_id: o.user, reason: c.reason, refunded: c.refund ? total : null, cancelled_at: iso(c.at),
        }, c.at);
    }
    return ev;
}

// Nearest-rank percentile of 'values'.
function percentile(values, p) {
    const v = [...values].sort((a, b) => a - b);
    if (v.length === 0) return 0;
    return v[Math.max(1, Math.ceil((p * v.length) / 100)) - 1];
}

function stepStats(name, durations) {
    return { step: name, count: durations.length, p50_ms: percentile(durations, 50), p95_ms: percentile(durations, 95), max_ms: durations.length ? Math.max(...durations) : 0 };
}

const REPORTS = [
    '/v1/reports/revenue?by=day',
    '/v1/reports/revenue?by=product',
    '/v1/reports/orders',
    '/v1/reports/conversion',
    '/v1/reports/sagas',
    '/v1/reports/cancellations',
    '/v1/reports/stock',
];

async function snapshot(admin) {
    const out = {};
    for (const p of REPORTS) {
        const r = await admin.get(p);
        assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
        out[p] = r.json;
    }
    return out;
}

// ---- The scenario ----

const D1 = Date.parse('2025-03-01T10:00:00.000Z');
const D2 = Date.parse('2025-03-02T09:00:00.000Z');
const P1 = uuid7();
const P2 = uuid7();
const USER = uuid7();

// A: confirmed then delivered. B: rejected (out of stock). C: payment
// declined, stock released. D (EUR): everything but its creation arrives
// first. E: confirmed, then cancelled by the customer with a refund.
const A = { id: uuid7(), user: USER, currency: 'USD', t0: D1, lines: [{ product: P1, qty: 2, unit: 1250 }, { product: P2, qty: 1, unit: 1999 }], steps: { reserved: 100, authorized: 300, shipment: 400, confirmed: 600, completed: 86_400_000 } };
const B = { id: uuid7(), user: USER, currency: 'USD', t0: D1 + 1000, lines: [{ product: P1, qty: 1, unit: 1250 }], rejected: true, cancel: { reason: 'out_of_stock', at: D1 + 1050 } };
const C = { id: uuid7(), user: USER, currency: 'USD', t0: D1 + 2000, lines: [{ product: P2, qty: 3, unit: 1999 }], steps: { reserved: 120 }, declined: true, cancel: { reason: 'payment_declined', at: D1 + 2300 } };
const D = { id: uuid7(), user: USER, currency: 'EUR', t0: D2, lines: [{ product: P1, qty: 1, unit: 1000 }], steps: { reserved: 80, authorized: 180, shipment: 250, confirmed: 500 } };
const E = { id: uuid7(), user: USER, currency: 'USD', t0: D2 + 1000, lines: [{ product: P1, qty: 4, unit: 1250 }], steps: { reserved: 200, authorized: 500, shipment: 700, confirmed: 900 }, cancel: { reason: 'customer_request', at: D2 + 5000, refund: true } };

describe('analytics with a bus', () => {
    let bus;
    let svc;
    let admin;
    const ev = Object.fromEntries([['A', A], ['B', B], ['C', C], ['D', D], ['E', E]].map(([k, o]) => [k, orderEvents(o)]));
    let applied = 0; // events published so far that must be applied once
    let live; // every report after the scenario

    before(async () => {
        bus = await startService('bus');
        svc = await startService('analytics', { env: { AGORA_BUS_URL: bus.baseUrl } });
        admin = client(svc);
        await waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
            timeoutMs: DELIVERY_MS,
            message: 'analytics ready (subscription on the bus)',
        });
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assert.deepEqual(svc.nonJsonLines(), [], 'analytics wrote non-JSON lines to stderr');
        }
        if (bus) await stop(bus);
    });

    it('reports are empty before any event', T, async () => {
        const r = await admin.get('/v1/reports/conversion');
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, {
            from: '1970-01-01', to: '9999-12-31', created: 0, confirmed: 0, completed: 0,
            confirmed_rate: null, completed_rate: null, overall_rate: null,
        });
        assert.deepEqual((await admin.get('/v1/reports/stock')).json, { items: [], truncated: false });
    });

    it('a late confirmation counts in revenue at once and in the order counts once the order.created arrives', T, async () => {
        const early = [ev.D.confirmed, ev.D.reserved, ev.D.authorized, ev.D.shipment, ev.D.committed];
        await publish(bus, early);
        applied += early.length;
        await waitOutcome(svc, 'applied', applied);
        const rev = (await admin.get('/v1/reports/revenue?from=2025-03-02&to=2025-03-02')).json;
        assert.deepEqual(rev.items, [{ day: '2025-03-02', currency: 'EUR', orders: 1, gross: 1000, refunded: 0, net: 1000 }]);
        // Not created yet, as far as the read side knows.
        assert.deepEqual((await admin.get('/v1/reports/orders')).json.items, []);
        assert.equal((await admin.get('/v1/reports/conversion')).json.created, 0);
        // Its lines come with order.created: no product revenue yet.
        assert.deepEqual((await admin.get('/v1/reports/revenue?by=product')).json.items, []);
        await publish(bus, [ev.D.created]);
        applied += 1;
        await waitOutcome(svc, 'applied', applied);
        assert.deepEqual((await admin.get('/v1/reports/orders')).json.items, [
            { day: '2025-03-02', created: 1, open: 0, confirmed: 1, completed: 0, cancelled: 0, rejected: 0 },
        ]);
    });

    it('the whole scenario gives the figures worked out by hand', T, async () => {
        // Per order, everything but the creation goes first: every order is
        // late in some way, and the projections may not care.
        const rest = [];
        for (const k of ['A', 'B', 'C', 'E']) {
            const { created, ...others } = ev[k];
            rest.push(...Object.values(others).reverse(), created);
        }
        await publish(bus, rest);
        applied += rest.length;
        await waitOutcome(svc, 'applied', applied);

        const s = await snapshot(admin);
        assert.deepEqual(s['/v1/reports/revenue?by=day'].items, [
            { day: '2025-03-01', currency: 'USD', orders: 1, gross: 4499, refunded: 0, net: 4499 },
            { day: '2025-03-02', currency: 'EUR', orders: 1, gross: 1000, refunded: 0, net: 1000 },
            { day: '2025-03-02', currency: 'USD', orders: 1, gross: 5000, refunded: 5000, net: 0 },
        ]);
        const sku = (p) => `SKU-${p.slice(-4)}`;
        const byProduct = [
            { product_id: P1, sku: sku(P1), currency: 'EUR', orders: 1, units: 1, gross: 1000 },
            { product_id: P1, sku: sku(P1), currency: 'USD', orders: 2, units: 6, gross: 7500 },
            { product_id: P2, sku: sku(P2), currency: 'USD', orders: 1, units: 1, gross: 1999 },
        ].sort((a, b) => (a.product_id + a.currency < b.product_id + b.currency ? -1 : 1));
        assert.deepEqual(s['/v1/reports/revenue?by=product'].items, byProduct);
        assert.deepEqual(s['/v1/reports/orders'].items, [
            { day: '2025-03-01', created: 3, open: 0, confirmed: 0, completed: 1, cancelled: 1, rejected: 1 },
            { day: '2025-03-02', created: 2, open: 0, confirmed: 1, completed: 0, cancelled: 1, rejected: 0 },
        ]);
        assert.deepEqual(s['/v1/reports/conversion'], {
            from: '1970-01-01', to: '9999-12-31', created: 5, confirmed: 3, completed: 1,
            confirmed_rate: 0.6, completed_rate: 0.3333, overall_rate: 0.2,
        });
        const reasons = [
            { reason: 'customer_request', status: 'cancelled', orders: 1 },
            { reason: 'out_of_stock', status: 'rejected', orders: 1 },
            { reason: 'payment_declined', status: 'cancelled', orders: 1 },
        ];
        const sagas = s['/v1/reports/sagas'];
        assert.deepEqual(sagas.outcomes, { open: 0, confirmed: 1, completed: 1, cancelled: 2, rejected: 1 });
        assert.deepEqual(sagas.reasons, reasons);
        const withBoth = (a, b) => [A, C, D, E].filter((o) => o.steps?.[b] !== undefined && (a === 'created' || o.steps?.[a] !== undefined));
        const dur = (a, b) => withBoth(a, b).map((o) => o.steps[b] - (a === 'created' ? 0 : o.steps[a]));
        assert.deepEqual(sagas.steps, [
            stepStats('reserve', dur('created', 'reserved')),
            stepStats('authorize', dur('reserved', 'authorized')),
            stepStats('ship', dur('authorized', 'shipment')),
            stepStats('confirm', dur('shipment', 'confirmed')),
            stepStats('total', dur('created', 'confirmed')),
        ]);
        assert.equal(sagas.steps[0].count, 4);
        assert.deepEqual(s['/v1/reports/cancellations'], { from: '1970-01-01', to: '9999-12-31', total: 3, items: reasons, truncated: false });
        const stock = [
            { product_id: P1, reserved: 7, committed: 7, released: 0, restocked: 4 },
            { product_id: P2, reserved: 4, committed: 1, released: 3, restocked: 0 },
        ].sort((a, b) => (a.product_id < b.product_id ? -1 : 1));
        assert.deepEqual(s['/v1/reports/stock'].items, stock);
        assert.deepEqual((await admin.get(`/v1/reports/stock?product_id=${P2}`)).json.items, stock.filter((x) => x.product_id === P2));
        // Ranges: one day, and a day with nothing.
        assert.deepEqual((await admin.get('/v1/reports/orders?from=2025-03-02&to=2025-03-02')).json.items, [s['/v1/reports/orders'].items[1]]);
        assert.deepEqual((await admin.get('/v1/reports/revenue?from=2025-03-03')).json.items, []);
        assert.equal((await admin.get('/v1/reports/cancellations?to=2025-03-01')).json.total, 2);
        live = s;
    });

    it('duplicate deliveries and poison events change no report', T, async () => {
        assert.ok(live, 'the scenario ran');
        const m0 = await metrics(svc);
        const dupBefore = metricValue(m0, 'events_duplicates_total');
        const invalidBefore = metricValue(m0, 'analytics_events_total', { outcome: 'invalid' });
        // The same CloudEvents again, in bus messages of other ids (so the bus
        // keeps them): the inbox skips them.
        const again = [ev.A.confirmed, ev.E.refunded, ev.C.released, ev.A.reserved];
        await publish(bus, again, { msgIds: again.map((e) => `dup-${e.id}`) });
        await waitFor(async () => metricValue(await metrics(svc), 'events_duplicates_total') >= dupBefore + again.length, {
            timeoutMs: DELIVERY_MS,
            message: 'the redeliveries counted as duplicates',
        });
        // An order.created without a valid order id: acknowledged, skipped.
        const poison = { ...ev.B.created, id: uuid7(), data: { ...ev.B.created.data, order_id: 'not-an-id' } };
        const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', {
            messages: [{ id: poison.id, topic: poison.type, subject: poison.subject, data: poison }],
        });
        assert.equal(r.status, 200);
        await waitOutcome(svc, 'invalid', invalidBefore + 1);
        assert.deepEqual(await snapshot(admin), live);
    });

    it('a rebuild from the event log equals the live projections', T, async () => {
        assert.ok(live, 'the scenario ran');
        const r = await admin.post('/v1/reports/rebuild');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.events, applied);
        assert.equal(Number.isInteger(r.json.duration_ms), true);
        assert.deepEqual(await snapshot(admin), live);
        // Twice is the same as once.
        assert.equal((await admin.post('/v1/reports/rebuild')).json.events, applied);
        assert.deepEqual(await snapshot(admin), live);
        const m = await metrics(svc);
        assert.equal(metricValue(m, 'analytics_rebuilds_total'), 2);
        assert.equal(metricValue(m, 'analytics_events_total', { outcome: 'applied' }), applied);
    });

    it('reports are for administrators only', T, async () => {
        for (const p of [...REPORTS]) {
            expectProblem(await client(svc, { identity: null }).get(p), 401);
            expectProblem(await client(svc, { identity: { userId: USER, roles: ['customer'] } }).get(p), 403);
        }
        expectProblem(await client(svc, { identity: { userId: USER, roles: ['customer'] } }).post('/v1/reports/rebuild'), 403);
        expectProblem(await client(svc, { identity: null }).post('/v1/reports/rebuild'), 401);
    });

    it('a redelivery after the inbox forgot the event still counts once: the event log skips it', T, async () => {
        assert.ok(live, 'the scenario ran');
        // The chassis sweeps inbox rows after a day; a redelivery later (a
        // dead letter replayed, say) only meets the event log's key. Forget
        // the inbox the way the sweep does, with the service stopped.
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
        assert.deepEqual(svc.nonJsonLines(), []);
        const db = path.join(svc.dataDir, 'analytics.db');
        const left = execFileSync(PYTHON, ['-c', [
            'import sqlite3, sys',
            'c = sqlite3.connect(sys.argv[1])',
            'c.execute("DELETE FROM agora_inbox")',
            'c.commit()',
            'print(c.execute("SELECT count(*) FROM agora_inbox").fetchone()[0])',
        ].join('\n'), db], { encoding: 'utf8' });
        assert.equal(left.trim(), '0');
        svc = await startService('analytics', { dataDir: svc.dataDir, env: { AGORA_BUS_URL: bus.baseUrl } });
        admin = client(svc);
        await waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
            timeoutMs: DELIVERY_MS,
            message: 'analytics ready again',
        });
        const again = [ev.E.refunded, ev.A.confirmed, ev.C.released, ev.D.created];
        await publish(bus, again, { msgIds: again.map((e) => `late-${e.id}`) });
        await waitOutcome(svc, 'duplicate', again.length);
        assert.equal(metricValue(await metrics(svc), 'analytics_events_total', { outcome: 'applied' }), 0);
        assert.deepEqual(await snapshot(admin), live);
    });

    it('bad query parameters are 400 problems naming each field', T, async () => {
        const cases = [
            ['/v1/reports/revenue?from=2025-13-01', ['from']],
            ['/v1/reports/revenue?from=2025-02-30&to=yesterday&by=week', ['from', 'to', 'by']],
            ['/v1/reports/orders?from=2025-03-02&to=2025-03-01', ['to']],
            ['/v1/reports/conversion?to=2025-3-1', ['to']],
            ['/v1/reports/sagas?from=1969-12-31', ['from']],
            ['/v1/reports/cancellations?from=', ['from']],
            ['/v1/reports/stock?product_id=42', ['product_id']],
        ];
        for (const [p, fields] of cases) {
            const problem = expectProblem(await admin.get(p), 400, { type: 'urn:agora:problem:bad-query', path: p });
            assert.deepEqual(errorFields(problem).sort(), [...fields].sort(), p);
        }
    });
});
