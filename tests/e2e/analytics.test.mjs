// SPDX-License-Identifier: MIT
// The read side follows the shop: a scripted set of orders goes through the
// real checkout saga (confirmed with tok_visa and delivered, confirmed and
// left so, declined with tok_chargeDeclined, rejected for want of stock,
// cancelled by the customer after confirmation with a refund, and created
// without a payment token and cancelled while it waited), and every
// analytics report, read through the gateway as the administrator, must
// equal the figures this test works out from its own records of those
// orders. Then POST /api/v1/reports/rebuild, and every report must be equal
// again. One shop (`agora up`) for the file; real processes only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { cleanup, waitFor } from '../lib/proc.mjs';
import { startShop } from '../lib/shop.mjs';

const T = { timeout: 150_000 };
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED', 'REJECTED', 'COMPLETED']);
const ADDRESS = { name: 'Ann Buyer', line1: '1 Market Street', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };
const REPORTS = ['revenue?by=day', 'revenue?by=product', 'orders', 'conversion', 'sagas', 'cancellations', 'stock'];

// Nearest-rank ratio as the service rounds it: 4 decimals, null for x/0.
const ratio = (a, b) => (b === 0 ? null : Math.round((a * 10000) / b) / 10000);

describe('analytics: reports from the events of real orders', () => {
    let shop;
    let admin;
    let seq = 0;
    const products = {}; // id -> { sku }
    const orders = []; // the final record of every order placed

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

    async function customer(name) {
        const email = `${name}-${process.pid}@example.com`;
        const password = 'a long enough passphrase';
        await api('POST', '/api/v1/users', { json: { email, password, name }, expect: 201 });
        const login = await api('POST', '/api/v1/auth/login', { json: { email, password }, expect: 200 });
        return { token: login.body.access_token };
    }

    async function product(stock, price) {
        const sku = `AN-${process.pid}-${++seq}`;
        const p = await api('POST', '/api/v1/products', { token: admin, json: { sku, name: `Thing ${seq}`, price: { amount: price, currency: 'EUR' } }, expect: 201 });
        const id = p.body.id;
        let etag;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/stock/${id}`, { token: admin });
            etag = r.headers.get('etag');
            return r.status === 200;
        }, { message: `stock row of ${sku}` });
        await api('PUT', `/api/v1/stock/${id}`, { token: admin, json: { on_hand: stock, reason: 'e2e' }, headers: { 'if-match': etag }, expect: 200 });
        products[id] = { sku };
        return id;
    }

    async function fillCart(who, lines) {
        for (const [id, quantity] of lines) {
            await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token: who.token, json: { product_id: id, quantity } })).status === 200, { message: `${id} in the cart` });
        }
    }

    async function settle(who, id, want = TERMINAL) {
        let last;
        await waitFor(async () => {
            last = (await api('GET', `/api/v1/orders/${id}`, { token: who.token, expect: 200 })).body;
            return want.has(last.status);
        }, { timeoutMs: 45_000, intervalMs: 50, message: `order ${id} to reach ${[...want]}` });
        return last;
    }

    async function place(who, lines, paymentToken) {
        await fillCart(who, lines);
        const json = { shipping_address: ADDRESS, ...(paymentToken ? { payment_token: paymentToken } : {}) };
        const r = await api('POST', '/api/v1/orders', { token: who.token, json, headers: { 'idempotency-key': crypto.randomUUID() }, expect: 202 });
        return r.body.id;
    }

    // What every report must say, worked out from 'orders' alone.
    function expected() {
        const day = (o) => o.created_at.slice(0, 10);
        const everConfirmed = (o) => o.status === 'CONFIRMED' || o.status === 'COMPLETED' || o.refunded?.amount > 0;
        const status = (o) => ({ CONFIRMED: 'confirmed', COMPLETED: 'completed', CANCELLED: 'cancelled', REJECTED: 'rejected' })[o.status];
        const conf = orders.filter(everConfirmed);

        const revDay = new Map();
        for (const o of conf) {
            const k = `${day(o)} ${o.total.currency}`;
            const r = revDay.get(k) ?? { day: day(o), currency: o.total.currency, orders: 0, gross: 0, refunded: 0, net: 0 };
            r.orders++;
            r.gross += o.total.amount;
            r.refunded += o.refunded?.amount ?? 0;
            r.net = r.gross - r.refunded;
            revDay.set(k, r);
        }
        const revProduct = new Map();
        for (const o of conf) {
            const seen = new Set();
            for (const l of o.lines) {
                const k = `${l.product_id} ${l.unit_price.currency}`;
                const r = revProduct.get(k) ?? { product_id: l.product_id, sku: products[l.product_id].sku, currency: l.unit_price.currency, orders: 0, units: 0, gross: 0 };
                if (!seen.has(k)) r.orders++;
                seen.add(k);
                r.units += l.quantity;
                r.gross += l.quantity * l.unit_price.amount;
                revProduct.set(k, r);
            }
        }
        const byDay = new Map();
        for (const o of orders) {
            const r = byDay.get(day(o)) ?? { day: day(o), created: 0, open: 0, confirmed: 0, completed: 0, cancelled: 0, rejected: 0 };
            r.created++;
            r[status(o)]++;
            byDay.set(day(o), r);
        }
        const created = orders.length;
        const confirmed = conf.length;
        const completed = orders.filter((o) => o.status === 'COMPLETED').length;
        const reasons = new Map();
        for (const o of orders.filter((x) => x.status === 'CANCELLED' || x.status === 'REJECTED')) {
            const k = `${o.cancel_reason} ${status(o)}`;
            const r = reasons.get(k) ?? { reason: o.cancel_reason, status: status(o), orders: 0 };
            r.orders++;
            reasons.set(k, r);
        }
        const reasonItems = [...reasons.values()].sort((a, b) => (a.reason + a.status < b.reason + b.status ? -1 : 1));
        const outcomes = { open: 0, confirmed: 0, completed: 0, cancelled: 0, rejected: 0 };
        for (const o of orders) outcomes[status(o)]++;
        // Stock: every order but a rejected one reserved its lines; the
        // confirmed ones committed them; those cancelled before confirmation
        // released them; those cancelled after it were restocked.
        const stock = new Map();
        const add = (id, k, n) => {
            const r = stock.get(id) ?? { product_id: id, reserved: 0, committed: 0, released: 0, restocked: 0 };
            r[k] += n;
            stock.set(id, r);
        };
        for (const o of orders) {
            if (o.status === 'REJECTED') continue;
            for (const l of o.lines) {
                add(l.product_id, 'reserved', l.quantity);
                if (everConfirmed(o)) add(l.product_id, 'committed', l.quantity);
                if (o.status === 'CANCELLED' && !everConfirmed(o)) add(l.product_id, 'released', l.quantity);
                if (o.status === 'CANCELLED' && everConfirmed(o)) add(l.product_id, 'restocked', l.quantity);
            }
        }
        const all = { from: '1970-01-01', to: '9999-12-31' };
        const sortBy = (f) => (a, b) => (f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0);
        return {
            'revenue?by=day': { ...all, by: 'day', items: [...revDay.values()].sort(sortBy((r) => `${r.day} ${r.currency}`)), truncated: false },
            'revenue?by=product': { ...all, by: 'product', items: [...revProduct.values()].sort(sortBy((r) => `${r.product_id} ${r.currency}`)), truncated: false },
            orders: { ...all, items: [...byDay.values()].sort(sortBy((r) => r.day)), truncated: false },
            conversion: { ...all, created, confirmed, completed, confirmed_rate: ratio(confirmed, created), completed_rate: ratio(completed, confirmed), overall_rate: ratio(completed, created) },
            sagas: { ...all, outcomes, reasons: reasonItems, truncated: false },
            cancellations: { ...all, total: reasonItems.reduce((a, r) => a + r.orders, 0), items: reasonItems, truncated: false },
            stock: { items: [...stock.values()].sort(sortBy((r) => r.product_id)), truncated: false },
        };
    }

    async function reports() {
        const out = {};
        for (const p of REPORTS) out[p] = (await api('GET', `/api/v1/reports/${p}`, { token: admin, expect: 200 })).body;
        return out;
    }

    // The reports, with the saga step latencies (timings this test cannot
    // know) checked for shape and taken out.
    function comparable(r) {
        const { steps, ...sagas } = r.sagas;
        return { ...r, sagas };
    }

    before(async () => {
        shop = await startShop({ env: { AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000' } });
        admin = (await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword }, expect: 200 })).body.access_token;
    });

    after(async () => {
        if (shop) assert.deepEqual(await shop.stop(), { code: 0, signal: null }, shop.stderr().slice(-3000));
        cleanup();
    });

    it('every report equals the figures of the orders placed, and again after a rebuild', T, async () => {
        const ann = await customer('ann');
        const p1 = await product(20, 1250);
        const p2 = await product(2, 3999);

        // Confirmed, shipped and delivered: COMPLETED.
        const o1 = await settle(ann, await place(ann, [[p1, 2], [p2, 1]], 'tok_visa'));
        assert.equal(o1.status, 'CONFIRMED');
        const [ship] = (await api('GET', `/api/v1/shipments?order_id=${o1.id}`, { token: ann.token, expect: 200 })).body.items;
        await api('POST', `/api/v1/shipments/${ship.id}/ship`, { token: admin, expect: 200 });
        await api('POST', `/api/v1/shipments/${ship.id}/deliver`, { token: admin, expect: 200 });
        orders.push(await settle(ann, o1.id, new Set(['COMPLETED'])));
        // Confirmed and left so.
        const o2 = await settle(ann, await place(ann, [[p1, 1]], 'tok_visa'));
        assert.equal(o2.status, 'CONFIRMED');
        orders.push(o2);
        // Declined: CANCELLED, stock released.
        const o3 = await settle(ann, await place(ann, [[p1, 3]], 'tok_chargeDeclined'));
        assert.deepEqual([o3.status, o3.cancel_reason], ['CANCELLED', 'payment_declined']);
        orders.push(o3);
        // More than there is: REJECTED.
        const o4 = await settle(ann, await place(ann, [[p2, 5]], 'tok_visa'));
        assert.deepEqual([o4.status, o4.cancel_reason], ['REJECTED', 'out_of_stock']);
        orders.push(o4);
        // Confirmed, then cancelled by the customer: refunded and restocked.
        const o5 = await settle(ann, await place(ann, [[p1, 1], [p2, 1]], 'tok_visa'));
        assert.equal(o5.status, 'CONFIRMED');
        assert.equal((await api('POST', `/api/v1/orders/${o5.id}/cancel`, { token: ann.token, json: {} })).status, 202);
        await waitFor(async () => {
            const o = await settle(ann, o5.id, new Set(['CANCELLED']));
            return o.restocked && o.refunded?.amount === o.total.amount;
        }, { timeoutMs: 45_000, message: 'o5 refunded and restocked' });
        orders.push(await settle(ann, o5.id, new Set(['CANCELLED'])));
        // No payment token: waits for payment with its stock reserved; the
        // customer cancels it.
        const o6id = await place(ann, [[p1, 2]], null);
        await settle(ann, o6id, new Set(['AWAITING_PAYMENT']));
        const c6 = await api('POST', `/api/v1/orders/${o6id}/cancel`, { token: ann.token, json: {} });
        assert.ok(c6.status === 200 || c6.status === 202, c6.text);
        const o6 = await settle(ann, o6id, new Set(['CANCELLED']));
        assert.equal(o6.cancel_reason, 'customer_request');
        orders.push(o6);
        // The released reservations are back before the stock report is read.
        await waitFor(async () => (await api('GET', `/api/v1/stock/${p1}`, { token: admin, expect: 200 })).body.reserved === 0, { message: 'p1 reservations settled' });

        const want = expected();
        let live;
        await waitFor(async () => {
            live = await reports();
            return JSON.stringify(comparable(live)) === JSON.stringify(want);
        }, { timeoutMs: 30_000, intervalMs: 200, message: 'the reports to catch up with the orders' }).catch(() => {
            assert.deepEqual(comparable(live), want);
        });
        assert.deepEqual(comparable(live), want);

        // Step latencies: every confirmed order has each step, each
        // non-rejected one a reservation.
        const steps = Object.fromEntries(live.sagas.steps.map((s) => [s.step, s]));
        assert.deepEqual(Object.keys(steps), ['reserve', 'authorize', 'ship', 'confirm', 'total']);
        const confirmedCount = want.conversion.confirmed;
        assert.equal(steps.reserve.count, orders.filter((o) => o.status !== 'REJECTED').length);
        for (const k of ['authorize', 'ship', 'confirm', 'total']) assert.equal(steps[k].count, confirmedCount, k);
        for (const s of Object.values(steps)) assert.ok(s.p50_ms >= 0 && s.p50_ms <= s.p95_ms && s.p95_ms <= s.max_ms, JSON.stringify(s));
        assert.ok(steps.total.max_ms < 60_000, JSON.stringify(steps.total));

        // Only administrators.
        assert.equal((await api('GET', '/api/v1/reports/orders', { token: ann.token })).status, 403);
        assert.equal((await api('GET', '/api/v1/reports/orders')).status, 401);
        assert.equal((await api('POST', '/api/v1/reports/rebuild', { token: ann.token })).status, 403);

        // The rebuild from the event log equals the live projections (read
        // again: a saga reply arriving late may have moved a latency).
        live = await reports();
        assert.deepEqual(comparable(live), want);
        const rb = await api('POST', '/api/v1/reports/rebuild', { token: admin, expect: 200 });
        assert.ok(rb.body.events > 0, rb.text);
        assert.deepEqual(await reports(), live);
    });
});
