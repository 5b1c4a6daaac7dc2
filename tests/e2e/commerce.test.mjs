// SPDX-License-Identifier: MIT
// The shop sells: customers check out through the gateway and the checkout
// saga (orders -> inventory -> payments -> shipping over the bus) ends every
// order in a terminal state with stock, money and shipments consistent.
// One shop (`agora up`) for the whole file; real processes only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildDir, cleanup, waitFor } from '../lib/proc.mjs';
import { PROGRAMS } from '../lib/ports.mjs';
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
});
