// SPDX-License-Identifier: MIT
// The shop sells: customers check out through the gateway and the checkout
// saga (orders -> inventory -> payments -> shipping over the bus) ends every
// order in a terminal state with stock, money and shipments consistent.
// One shop (`agora up`) for the whole file; real processes only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { cleanup, waitFor } from '../lib/proc.mjs';
import { startShop } from '../lib/shop.mjs';

const T = { timeout: 90_000 };
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED', 'REJECTED', 'COMPLETED']);
const ADDRESS = { name: 'Ann Buyer', line1: '1 Market Street', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };

describe('commerce: checkout through the gateway', () => {
    let shop;
    let admin; // bearer token
    const users = {};
    let seq = 0;

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
        const res = { status: r.status, headers: r.headers, body, text };
        if (expect !== undefined) assert.equal(res.status, expect, `${method} ${p}: ${res.status} ${text.slice(0, 500)}`);
        return res;
    }

    async function customer(name) {
        if (users[name]) return users[name];
        const email = `${name}-${process.pid}@example.com`;
        const password = 'a long enough passphrase';
        await api('POST', '/api/v1/users', { json: { email, password, name }, expect: 201 });
        const login = await api('POST', '/api/v1/auth/login', { json: { email, password }, expect: 200 });
        const token = login.body.access_token;
        const me = await api('GET', '/api/v1/users/me', { token, expect: 200 });
        users[name] = { token, id: me.body.id, email };
        return users[name];
    }

    // A new product with 'stock' units on hand, as the administrator sets it.
    async function product(stock, price = 1250) {
        const sku = `E2E-${process.pid}-${++seq}`;
        const p = await api('POST', '/api/v1/products', { token: admin, json: { sku, name: `Thing ${seq}`, price: { amount: price, currency: 'EUR' } }, expect: 201 });
        const id = p.body.id;
        // Inventory learns of it from product.created, then the admin sets the stock.
        let etag;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/stock/${id}`, { token: admin });
            etag = r.headers.get('etag');
            return r.status === 200;
        }, { message: `stock row of ${sku}` });
        await api('PUT', `/api/v1/stock/${id}`, { token: admin, json: { on_hand: stock, reason: 'e2e' }, headers: { 'if-match': etag }, expect: 200 });
        return { id, price };
    }

    async function stockOf(id) {
        return (await api('GET', `/api/v1/stock/${id}`, { token: admin, expect: 200 })).body;
    }

    async function fillCart(who, lines) {
        // Orders prices the cart from its own replica of the catalog (product.*
        // events): a product just created may take a moment to be known there.
        for (const [p, quantity] of lines) {
            await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token: who.token, json: { product_id: p.id, quantity } })).status === 200, { message: `${p.id} in the cart` });
        }
    }

    async function checkout(who, { token: payment, key = crypto.randomUUID(), body } = {}) {
        const json = body ?? { shipping_address: ADDRESS, ...(payment ? { payment_token: payment } : {}) };
        return api('POST', '/api/v1/orders', { token: who.token, json, headers: { 'idempotency-key': key } });
    }

    async function settle(who, id, want = TERMINAL) {
        let last;
        await waitFor(async () => {
            last = (await api('GET', `/api/v1/orders/${id}`, { token: who.token, expect: 200 })).body;
            return want.has(last.status);
        }, { timeoutMs: 45_000, intervalMs: 50, message: `order ${id} to reach ${[...want]}` });
        return last;
    }

    async function paymentsOf(who, orderId) {
        return (await api('GET', `/api/v1/payments?order_id=${orderId}`, { token: who.token, expect: 200 })).body.items;
    }

    before(async () => {
        shop = await startShop({
            env: {
                AGORA_PAYMENTS_PROVIDER_TIMEOUT: '1s',
                AGORA_ORDERS_STEP_TIMEOUT: '3s',
                AGORA_ORDERS_STEP_RETRIES: '1',
                // Every customer of this file signs up from 127.0.0.1.
                AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000',
            },
        });
        const r = await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword }, expect: 200 });
        admin = r.body.access_token;
    });

    after(async () => {
        if (shop) assert.deepEqual(await shop.stop(), { code: 0, signal: null }, shop.stderr().slice(-3000));
        cleanup();
    });

    it('happy path: tok_visa -> CONFIRMED, stock committed, captured once, shipped and delivered -> COMPLETED', T, async () => {
        const ann = await customer('ann');
        const p = await product(5, 1250);
        await fillCart(ann, [[p, 2]]);
        const r = await checkout(ann, { token: 'tok_visa' });
        assert.equal(r.status, 202, r.text);
        assert.ok(r.body.id);
        const order = await settle(ann, r.body.id);
        assert.equal(order.status, 'CONFIRMED', JSON.stringify(order));
        assert.equal(order.payment_status, 'paid');
        assert.deepEqual(order.total, { amount: 2500, currency: 'EUR' });
        const s = await stockOf(p.id);
        assert.equal(s.on_hand, 3);
        assert.equal(s.reserved, 0);
        const pays = await paymentsOf(ann, order.id);
        assert.equal(pays.length, 1);
        assert.equal(pays[0].captured.amount, 2500);
        const ships = (await api('GET', `/api/v1/shipments?order_id=${order.id}`, { token: ann.token, expect: 200 })).body.items;
        assert.equal(ships.length, 1);
        await api('POST', `/api/v1/shipments/${ships[0].id}/ship`, { token: admin, expect: 200 });
        await api('POST', `/api/v1/shipments/${ships[0].id}/deliver`, { token: admin, expect: 200 });
        const done = await settle(ann, order.id, new Set(['COMPLETED']));
        assert.equal(done.status, 'COMPLETED');
        // The confirmation reached the customer's notifications.
        await waitFor(async () => (await api('GET', '/api/v1/notifications', { token: ann.token })).body?.items?.some((n) => n.type === 'order.confirmed'), { message: 'confirmation recorded' });
    });

    it('declined -> CANCELLED with the stock released; out of stock -> REJECTED with nothing authorized; tok_timeout -> compensated', T, async () => {
        const bob = await customer('bob');
        const p = await product(3);
        await fillCart(bob, [[p, 1]]);
        const declined = await settle(bob, (await checkout(bob, { token: 'tok_chargeDeclined' })).body.id);
        assert.deepEqual([declined.status, declined.cancel_reason], ['CANCELLED', 'payment_declined']);
        await waitFor(async () => (await stockOf(p.id)).reserved === 0, { message: 'stock released' });
        assert.equal((await stockOf(p.id)).on_hand, 3);

        await fillCart(bob, [[p, 5]]);
        const rejected = await settle(bob, (await checkout(bob, { token: 'tok_visa' })).body.id);
        assert.deepEqual([rejected.status, rejected.cancel_reason], ['REJECTED', 'out_of_stock']);
        assert.deepEqual(await paymentsOf(bob, rejected.id), [], 'nothing authorized');

        await fillCart(bob, [[p, 1]]);
        const timedOut = await settle(bob, (await checkout(bob, { token: 'tok_timeout' })).body.id);
        assert.equal(timedOut.status, 'CANCELLED');
        assert.ok(['timeout', 'payment_declined', 'payment_failed'].includes(timedOut.cancel_reason), timedOut.cancel_reason);
        const held = (await paymentsOf(bob, timedOut.id)).filter((x) => x.status === 'authorized' || x.status === 'captured');
        assert.deepEqual(held, [], 'no authorization or capture left');
        await waitFor(async () => (await stockOf(p.id)).reserved === 0, { message: 'stock released after the timeout' });
    });

    it('cancel after confirmation: shipment cancelled first, then refunded and the committed units back on hand; after dispatch -> 409', T, async () => {
        const cid = await customer('cid');
        const p = await product(4);
        await fillCart(cid, [[p, 2]]);
        const o = await settle(cid, (await checkout(cid, { token: 'tok_visa' })).body.id);
        assert.equal(o.status, 'CONFIRMED');
        assert.deepEqual(await stockOf(p.id).then((x) => [x.on_hand, x.reserved]), [2, 0]);
        // A confirmed order's cancel waits for shipping's answer: 202.
        const c = await api('POST', `/api/v1/orders/${o.id}/cancel`, { token: cid.token, json: {} });
        assert.equal(c.status, 202, c.text);
        assert.deepEqual([c.body.status, c.body.cancel_status], ['CONFIRMED', 'requested']);
        const cancelled = await settle(cid, o.id, new Set(['CANCELLED']));
        assert.equal(cancelled.cancel_reason, 'customer_request');
        await waitFor(async () => {
            const [pay] = await paymentsOf(cid, o.id);
            return pay.refunded.amount === 2500;
        }, { message: 'refunded' });
        const [ship0] = (await api('GET', `/api/v1/shipments?order_id=${o.id}`, { token: cid.token, expect: 200 })).body.items;
        assert.equal(ship0.status, 'cancelled');
        // The committed units are on hand again, once, with a movement that says why.
        await waitFor(async () => (await stockOf(p.id)).on_hand === 4, { message: 'restocked' });
        const moves = (await api('GET', `/api/v1/stock/${p.id}/movements`, { token: admin, expect: 200 })).body.items;
        const restocks = moves.filter((m) => m.kind === 'restock');
        assert.deepEqual(restocks.map((m) => [m.on_hand_delta, m.reason, m.order_id]), [[2, 'order_cancelled', o.id]]);
        assert.equal((await settle(cid, o.id, new Set(['CANCELLED']))).restocked, true);
        assert.deepEqual(await stockOf(p.id).then((x) => [x.on_hand, x.reserved]), [4, 0]);

        await fillCart(cid, [[p, 1]]);
        const o2 = await settle(cid, (await checkout(cid, { token: 'tok_visa' })).body.id);
        const [ship] = (await api('GET', `/api/v1/shipments?order_id=${o2.id}`, { token: cid.token, expect: 200 })).body.items;
        await api('POST', `/api/v1/shipments/${ship.id}/ship`, { token: admin, expect: 200 });
        // Once orders has heard of the dispatch (shipment.shipped), a cancel is refused.
        await waitFor(async () => (await api('GET', `/api/v1/orders/${o2.id}`, { token: cid.token })).body.shipped === true, { message: 'orders saw the dispatch' });
        const r = await api('POST', `/api/v1/orders/${o2.id}/cancel`, { token: cid.token, json: {} });
        assert.equal(r.status, 409, r.text);
        assert.equal(r.body.type, 'urn:agora:problem:order-dispatched');
    });

    it('a cancel racing the dispatch: either refused at once or refused by shipping; never refunded nor restocked', T, async () => {
        const rae = await customer('rae');
        const p = await product(3);
        await fillCart(rae, [[p, 1]]);
        const o = await settle(rae, (await checkout(rae, { token: 'tok_visa' })).body.id);
        assert.equal(o.status, 'CONFIRMED');
        const [ship] = (await api('GET', `/api/v1/shipments?order_id=${o.id}`, { token: rae.token, expect: 200 })).body.items;
        // The dispatch and the cancel at the same moment.
        const [shipped, c] = await Promise.all([
            api('POST', `/api/v1/shipments/${ship.id}/ship`, { token: admin }),
            api('POST', `/api/v1/orders/${o.id}/cancel`, { token: rae.token, json: {} }),
        ]);
        assert.ok([202, 409].includes(c.status), c.text);
        let after;
        if (shipped.status === 200) {
            // Shipped: whatever the cancel answered, it ends refused.
            after = await waitFor(async () => {
                const x = (await api('GET', `/api/v1/orders/${o.id}`, { token: rae.token, expect: 200 })).body;
                return x.shipped && (c.status === 409 || x.cancel_status === 'refused') ? x : null;
            }, { message: 'the cancel refused' });
            assert.deepEqual([after.status, after.payment_status, after.restocked], ['CONFIRMED', 'paid', false]);
            if (c.status === 202) assert.equal(after.steps.find((st) => st.step === 'cancel_shipment').outcome, 'rejected');
            const [pay] = await paymentsOf(rae, o.id);
            assert.deepEqual([pay.captured.amount, pay.refunded.amount], [1250, 0], 'never refunded');
            assert.deepEqual(await stockOf(p.id).then((x) => [x.on_hand, x.reserved]), [2, 0], 'never restocked');
        } else {
            // The cancel won: shipping refused the dispatch of a cancelled shipment.
            assert.equal(shipped.status, 409, shipped.text);
            assert.equal(c.status, 202);
            after = await settle(rae, o.id, new Set(['CANCELLED']));
            await waitFor(async () => (await stockOf(p.id)).on_hand === 3, { message: 'restocked' });
        }
    });

    it('courier role: granted by an admin, a courier ships and delivers; a customer gets 403; a courier reads no one else\'s order or payment', T, async () => {
        const kim = await customer('kim');
        const p = await product(2);
        await fillCart(kim, [[p, 1]]);
        const o = await settle(kim, (await checkout(kim, { token: 'tok_visa' })).body.id);
        assert.equal(o.status, 'CONFIRMED');
        const [ship] = (await api('GET', `/api/v1/shipments?order_id=${o.id}`, { token: kim.token, expect: 200 })).body.items;
        // A customer (the owner too) cannot move a shipment.
        for (const move of ['ship', 'deliver', 'cancel']) {
            const r = await api('POST', `/api/v1/shipments/${ship.id}/${move}`, { token: kim.token });
            assert.equal(r.status, 403, `${move}: ${r.text}`);
        }
        // The administrator makes another account a courier; its next token carries the role.
        const cy = await customer('cy');
        const granted = await api('PUT', `/api/v1/users/${cy.id}/roles/courier`, { token: admin, expect: 200 });
        assert.deepEqual(granted.body.roles, ['customer', 'courier']);
        await api('PUT', `/api/v1/users/${cy.id}/roles/courier`, { token: cy.token, expect: 403 });
        const login = await api('POST', '/api/v1/auth/login', { json: { email: cy.email, password: 'a long enough passphrase' }, expect: 200 });
        const courier = login.body.access_token;
        // A courier sees the shipment (it needs the address), not the order nor the payment.
        assert.equal((await api('GET', `/api/v1/shipments/${ship.id}`, { token: courier, expect: 200 })).body.order_id, o.id);
        await api('GET', `/api/v1/orders/${o.id}`, { token: courier, expect: 404 });
        const [pay] = await paymentsOf(kim, o.id);
        await api('GET', `/api/v1/payments/${pay.id}`, { token: courier, expect: 404 });
        assert.deepEqual((await api('GET', `/api/v1/payments?order_id=${o.id}`, { token: courier, expect: 200 })).body.items, []);
        await api('GET', '/api/v1/sagas?state=in_flight', { token: courier, expect: 403 });
        // Cancelling a shipment stays an administrator's.
        await api('POST', `/api/v1/shipments/${ship.id}/cancel`, { token: courier, expect: 403 });
        // The courier moves it along: shipped, delivered, and the order completes.
        assert.equal((await api('POST', `/api/v1/shipments/${ship.id}/ship`, { token: courier, expect: 200 })).body.status, 'shipped');
        assert.equal((await api('POST', `/api/v1/shipments/${ship.id}/deliver`, { token: courier, expect: 200 })).body.status, 'delivered');
        assert.equal((await settle(kim, o.id, new Set(['COMPLETED']))).status, 'COMPLETED');
        // Revoked: the next token has no courier role any more.
        const revoked = await api('DELETE', `/api/v1/users/${cy.id}/roles/courier`, { token: admin, expect: 200 });
        assert.deepEqual(revoked.body.roles, ['customer']);
        const again = (await api('POST', '/api/v1/auth/login', { json: { email: cy.email, password: 'a long enough passphrase' }, expect: 200 })).body.access_token;
        await api('GET', `/api/v1/shipments/${ship.id}`, { token: again, expect: 404 });
    });

    it('idempotent checkout: same key -> one order; same key, other body -> 422; mass assignment has no effect', T, async () => {
        const dee = await customer('dee');
        const p = await product(5);
        await fillCart(dee, [[p, 1]]);
        const key = crypto.randomUUID();
        const [a, b] = await Promise.all([checkout(dee, { token: 'tok_visa', key }), checkout(dee, { token: 'tok_visa', key })]);
        assert.ok([a.status, b.status].every((st) => st === 202 || st === 409), `${a.status} ${b.status}`);
        const again = await checkout(dee, { token: 'tok_visa', key });
        assert.equal(again.status, 202);
        const ids = new Set([a, b, again].filter((r) => r.status === 202).map((r) => r.body.id));
        assert.equal(ids.size, 1, 'one order');
        const other = await checkout(dee, { token: 'tok_chargeDeclined', key });
        assert.equal(other.status, 422);
        await settle(dee, [...ids][0]);
        assert.equal((await paymentsOf(dee, [...ids][0])).length, 1, 'charged once');
        await fillCart(dee, [[p, 1]]);
        const mass = await checkout(dee, { body: { shipping_address: ADDRESS, payment_token: 'tok_visa', status: 'CONFIRMED', user_id: crypto.randomUUID(), total: { amount: 1, currency: 'EUR' } } });
        assert.equal(mass.status, 422, mass.text);
    });

    it('another user\'s order, payment or shipment is 404; a customer on admin routes is 403', T, async () => {
        const ann = await customer('ann');
        const eve = await customer('eve');
        const mine = (await api('GET', '/api/v1/orders', { token: ann.token, expect: 200 })).body.items;
        assert.ok(mine.length > 0);
        const id = mine[0].id;
        await api('GET', `/api/v1/orders/${id}`, { token: eve.token, expect: 404 });
        await api('POST', `/api/v1/orders/${id}/cancel`, { token: eve.token, json: {}, expect: 404 });
        const [pay] = await paymentsOf(ann, id);
        await api('GET', `/api/v1/payments/${pay.id}`, { token: eve.token, expect: 404 });
        assert.deepEqual((await api('GET', `/api/v1/payments?order_id=${id}`, { token: eve.token, expect: 200 })).body.items, []);
        const [ship] = (await api('GET', `/api/v1/shipments?order_id=${id}`, { token: ann.token, expect: 200 })).body.items;
        await api('GET', `/api/v1/shipments/${ship.id}`, { token: eve.token, expect: 404 });
        assert.ok(!(await api('GET', '/api/v1/orders', { token: eve.token, expect: 200 })).body.items.some((o) => o.id === id));
        await api('GET', '/api/v1/sagas?state=in_flight', { token: eve.token, expect: 403 });
        await api('POST', `/api/v1/shipments/${ship.id}/ship`, { token: eve.token, expect: 403 });
        await api('PUT', `/api/v1/stock/${crypto.randomUUID()}`, { token: eve.token, json: { on_hand: 1, reason: 'x' }, expect: 403 });
    });

    // A request from local address 'from' (127.0.0.x): the gateway's and
    // the users service's throttles see one client per address.
    function from(address, method, p, { json, token } = {}) {
        return new Promise((resolve, reject) => {
            const body = json === undefined ? undefined : Buffer.from(JSON.stringify(json));
            const h = {};
            if (token) h.authorization = `Bearer ${token}`;
            if (body) Object.assign(h, { 'content-type': 'application/json', 'content-length': body.length });
            const r = http.request(shop.gw + p, { method, headers: h, localAddress: address, agent: false }, (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (x) => (text += x));
                res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null, text }));
            });
            r.on('error', reject);
            if (body) r.write(body);
            r.end();
        });
    }

    it('the last 10 units, 50 customers checking out at once: exactly 10 CONFIRMED, 40 REJECTED, stock never negative', { timeout: 240_000 }, async () => {
        const UNITS = 10;
        const BUYERS = 50;
        const p = await product(UNITS);
        // 50 customers, each signing up and in from an address of its own.
        const buyers = [];
        for (let i = 0; i < BUYERS; i += 10) {
            buyers.push(...await Promise.all(Array.from({ length: Math.min(10, BUYERS - i) }, async (_, k) => {
                const n = i + k;
                const address = `127.0.0.${20 + n}`;
                const email = `last-${process.pid}-${n}@example.com`;
                const password = 'a long enough passphrase';
                const reg = await from(address, 'POST', '/api/v1/users', { json: { email, password, name: `Last ${n}` } });
                assert.equal(reg.status, 201, reg.text);
                const login = await from(address, 'POST', '/api/v1/auth/login', { json: { email, password } });
                assert.equal(login.status, 200, login.text);
                return { token: login.body.access_token };
            })));
        }
        await Promise.all(buyers.map((b) => fillCart(b, [[p, 1]])));
        // Watch the stock while the checkouts run: never negative, never more reserved than on hand.
        let running = true;
        const samples = [];
        const watcher = (async () => {
            while (running) {
                const s = await stockOf(p.id);
                samples.push(s);
                assert.ok(s.on_hand >= 0 && s.reserved >= 0 && s.available >= 0 && s.reserved <= s.on_hand, JSON.stringify(s));
                await new Promise((r) => setTimeout(r, 50));
            }
        })();
        let orders;
        try {
            const ids = await Promise.all(buyers.map(async (b) => {
                const r = await checkout(b, { token: 'tok_visa' });
                assert.equal(r.status, 202, r.text);
                return r.body.id;
            }));
            // Every order terminal; each customer polls only their own, a few times a second.
            orders = new Array(BUYERS).fill(null);
            await waitFor(async () => {
                await Promise.all(buyers.map(async (b, i) => {
                    if (orders[i] && TERMINAL.has(orders[i].status)) return;
                    const r = await api('GET', `/api/v1/orders/${ids[i]}`, { token: b.token });
                    if (r.status === 200) orders[i] = r.body;
                }));
                return orders.every((o) => o && TERMINAL.has(o.status));
            }, { timeoutMs: 150_000, intervalMs: 300, message: 'every order terminal' });
        } finally {
            running = false;
            await watcher;
        }
        const count = (st) => orders.filter((o) => o.status === st).length;
        assert.equal(count('CONFIRMED'), UNITS, JSON.stringify(orders.map((o) => [o.status, o.cancel_reason])));
        assert.equal(count('REJECTED'), BUYERS - UNITS);
        assert.ok(orders.filter((o) => o.status === 'REJECTED').every((o) => o.cancel_reason === 'out_of_stock'));
        // On hand = initial - committed, nothing reserved at the end.
        const s = await stockOf(p.id);
        assert.deepEqual([s.on_hand, s.reserved, s.available], [UNITS - count('CONFIRMED'), 0, 0]);
        assert.ok(samples.length > 0);
    });

    it('pay later: AWAITING_PAYMENT, a wrong amount -> 422, another user\'s order -> 404, the right payment -> CONFIRMED paid', T, async () => {
        const fay = await customer('fay');
        const p = await product(3, 990);
        await fillCart(fay, [[p, 2]]);
        const r = await checkout(fay);
        assert.equal(r.status, 202, r.text);
        const waiting = await settle(fay, r.body.id, new Set(['AWAITING_PAYMENT']));
        assert.equal(waiting.payment_status, 'unpaid');
        const pay = (who, amount) => api('POST', '/api/v1/payments', {
            token: who.token,
            json: { order_id: waiting.id, amount: { amount, currency: 'EUR' }, payment_token: 'tok_visa' },
            headers: { 'idempotency-key': crypto.randomUUID() },
        });
        const wrong = await pay(fay, 1000);
        assert.equal(wrong.status, 422, wrong.text);
        const eve = await customer('eve');
        assert.equal((await pay(eve, 1980)).status, 404, 'not her order');
        assert.deepEqual(await paymentsOf(fay, waiting.id), [], 'nothing authorized by the refused requests');
        const ok = await pay(fay, 1980);
        assert.equal(ok.status, 201, ok.text);
        const done = await settle(fay, waiting.id);
        assert.deepEqual([done.status, done.payment_status], ['CONFIRMED', 'paid']);
        assert.equal((await pay(fay, 1980)).status, 409, 'not awaiting a payment any more');
    });

    it('pay later, declined: the order keeps waiting in AWAITING_PAYMENT and another card pays it', T, async () => {
        const hal = await customer('hal');
        const p = await product(2, 700);
        await fillCart(hal, [[p, 1]]);
        const waiting = await settle(hal, (await checkout(hal)).body.id, new Set(['AWAITING_PAYMENT']));
        const pay = (token) => api('POST', '/api/v1/payments', {
            token: hal.token,
            json: { order_id: waiting.id, amount: { amount: 700, currency: 'EUR' }, payment_token: token },
            headers: { 'idempotency-key': crypto.randomUUID() },
        });
        const declined = await pay('tok_chargeDeclined');
        assert.equal(declined.status, 402, declined.text);
        assert.equal(declined.body.type, 'urn:agora:problem:payment-declined');
        // Still waiting, the stock still held for it, nothing authorized.
        const still = (await api('GET', `/api/v1/orders/${waiting.id}`, { token: hal.token, expect: 200 })).body;
        assert.deepEqual([still.status, still.payment_status], ['AWAITING_PAYMENT', 'unpaid']);
        assert.equal((await stockOf(p.id)).reserved, 1);
        assert.ok((await paymentsOf(hal, waiting.id)).every((x) => x.status !== 'authorized' && x.status !== 'captured'));
        const ok = await pay('tok_visa');
        assert.equal(ok.status, 201, ok.text);
        const done = await settle(hal, waiting.id);
        assert.deepEqual([done.status, done.payment_status], ['CONFIRMED', 'paid']);
        assert.deepEqual(await stockOf(p.id).then((x) => [x.on_hand, x.reserved]), [1, 0]);
    });

    it('payments stopped: checkout still answers 202 at once; the order completes once payments is back', T, async () => {
        const gus = await customer('gus');
        const p = await product(2);
        await fillCart(gus, [[p, 1]]);
        const pid = shop.pidOf('payments');
        process.kill(pid, 'SIGSTOP');
        let r;
        try {
            const t0 = performance.now();
            r = await checkout(gus, { token: 'tok_visa' });
            assert.equal(r.status, 202, r.text);
            assert.ok(performance.now() - t0 < 2000, 'answered at once');
            const pending = (await api('GET', `/api/v1/orders/${r.body.id}`, { token: gus.token, expect: 200 })).body;
            assert.ok(!TERMINAL.has(pending.status), pending.status);
        } finally {
            process.kill(pid, 'SIGCONT');
        }
        const done = await settle(gus, r.body.id);
        assert.equal(done.status, 'CONFIRMED');
    });
});
