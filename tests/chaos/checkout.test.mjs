// SPDX-License-Identifier: MIT
// Chaos: checkouts from concurrent clients through the gateway while
// orders, payments, inventory, shipping and the bus are each SIGKILLed at a
// random moment (the supervisor restarts them). Afterwards, whatever failed
// and whenever:
//   - every order is terminal (CONFIRMED, CANCELLED, REJECTED);
//   - captured - refunded = value of the confirmed orders;
//   - no authorization is left open, no payment captured twice;
//   - per product: initial = on hand + committed, nothing reserved;
//   - every subscription drained: no message unprocessed or dead-lettered.
// It prints the figures. Bounded: AGORA_CHAOS_ORDERS checkouts (default 80
// in make test; `make chaos` runs 300), and every wait has a deadline.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { cleanup, waitFor } from '../lib/proc.mjs';
import { startShop } from '../lib/shop.mjs';

const ORDERS = Number(process.env.AGORA_CHAOS_ORDERS ?? 80);
const CLIENTS = 6;
const VICTIMS = ['orders', 'payments', 'inventory', 'shipping', 'bus'];
const STOCK = 30;
const PRODUCTS = 3;
const TOKENS = ['tok_visa', 'tok_visa', 'tok_visa', 'tok_visa', 'tok_chargeDeclined', 'tok_insufficient_funds'];
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED', 'REJECTED']);
const ADDRESS = { name: 'Chaos Buyer', line1: '1 Chaos Road', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };

describe('chaos: checkouts while the commerce services and the bus are killed', () => {
    let shop;
    let admin;

    async function api(method, p, { token, json, headers = {} } = {}) {
        const h = { ...headers };
        if (token) h.authorization = `Bearer ${token}`;
        if (json !== undefined) h['content-type'] = 'application/json';
        try {
            const r = await fetch(shop.gw + p, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json), signal: AbortSignal.timeout(10_000) });
            const text = await r.text();
            let body = null;
            try {
                body = JSON.parse(text);
            } catch {
                body = null;
            }
            return { status: r.status, headers: r.headers, body, text };
        } catch (err) {
            return { status: 0, body: null, text: String(err) };
        }
    }

    // Retry a call until it answers 'want' (services restart under us).
    async function until(want, fn, message) {
        let last;
        await waitFor(async () => {
            last = await fn();
            return last.status === want;
        }, { timeoutMs: 60_000, intervalMs: 100, message });
        return last;
    }

    before(async () => {
        shop = await startShop({
            env: {
                AGORA_ORDERS_STEP_TIMEOUT: '2s',
                AGORA_PAYMENTS_PROVIDER_TIMEOUT: '1s',
                AGORA_INVENTORY_ACK_DEADLINE: '2s',
                AGORA_SHIPPING_ACK_DEADLINE: '2s',
                AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000',
            },
        });
        admin = (await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword } })).body.access_token;
        assert.ok(admin);
    });

    after(async () => {
        if (shop) assert.deepEqual(await shop.stop(), { code: 0, signal: null }, shop.stderr().slice(-3000));
        cleanup();
    });

    it(`${ORDERS} checkouts under SIGKILLs keep every invariant`, { timeout: 300_000 }, async () => {
        // Products with known stock.
        const products = [];
        for (let i = 0; i < PRODUCTS; i++) {
            const sku = `CHAOS-${process.pid}-${i}`;
            const p = await until(201, () => api('POST', '/api/v1/products', { token: admin, json: { sku, name: `Chaos ${i}`, price: { amount: 100 * (i + 1), currency: 'EUR' } } }), 'product');
            const id = p.body.id;
            const cur = await until(200, () => api('GET', `/api/v1/stock/${id}`, { token: admin }), 'stock row');
            await until(200, () => api('PUT', `/api/v1/stock/${id}`, { token: admin, json: { on_hand: STOCK, reason: 'chaos' }, headers: { 'if-match': cur.headers.get('etag') } }), 'set stock');
            products.push({ id, price: 100 * (i + 1) });
        }
        // Customers.
        const customers = [];
        for (let i = 0; i < CLIENTS; i++) {
            const email = `chaos-${process.pid}-${i}@example.com`;
            const password = 'a long enough passphrase';
            await until(201, () => api('POST', '/api/v1/users', { json: { email, password, name: `C${i}` } }), 'sign up');
            const login = await until(200, () => api('POST', '/api/v1/auth/login', { json: { email, password } }), 'login');
            customers.push(login.body.access_token);
        }

        // The load: each client fills its cart and checks out, ORDERS in all.
        const placed = [];
        let next = 0;
        const t0 = performance.now();
        const clients = customers.map(async (token) => {
            while (next < ORDERS) {
                next++;
                const p = products[crypto.randomInt(products.length)];
                const quantity = 1 + crypto.randomInt(2);
                // The cart call may meet orders restarting: retry it.
                await until(200, () => api('POST', '/api/v1/cart/items', { token, json: { product_id: p.id, quantity } }), 'cart');
                const key = crypto.randomUUID();
                const body = { shipping_address: ADDRESS, payment_token: TOKENS[crypto.randomInt(TOKENS.length)] };
                // Same key on a retry: one order, whatever the outage.
                const r = await until(202, () => api('POST', '/api/v1/orders', { token, json: body, headers: { 'idempotency-key': key } }), 'checkout');
                placed.push({ id: r.body.id, token });
            }
        });
        // The killer: each victim once, at a random moment of the load.
        const kills = [];
        const killer = (async () => {
            for (const victim of VICTIMS) {
                await waitFor(() => placed.length >= Math.floor((ORDERS * (kills.length + 1)) / (VICTIMS.length + 1)) || next >= ORDERS, { timeoutMs: 120_000, intervalMs: 20, message: 'load progressing' });
                const pid = shop.pidOf(victim);
                if (pid > 1) {
                    process.kill(pid, 'SIGKILL');
                    kills.push(`${victim}@${placed.length}`);
                }
            }
        })();
        await Promise.all([...clients, killer]);
        const loadMs = performance.now() - t0;

        // Every order ends.
        const final = new Map();
        await waitFor(async () => {
            for (const o of placed) {
                if (final.has(o.id)) continue;
                const r = await api('GET', `/api/v1/orders/${o.id}`, { token: o.token });
                if (r.status === 200 && TERMINAL.has(r.body.status)) final.set(o.id, r.body);
            }
            return final.size === placed.length;
        }, { timeoutMs: 120_000, intervalMs: 500, message: 'every order terminal' });

        // Money: captured - refunded = value of the confirmed orders; nothing left authorized; one capture per order.
        let confirmedValue = 0;
        let captured = 0;
        let refunded = 0;
        let openAuth = 0;
        let doubleCapture = 0;
        const units = new Map(products.map((p) => [p.id, 0]));
        for (const o of final.values()) {
            if (o.status === 'CONFIRMED') {
                confirmedValue += o.total.amount;
                for (const l of o.lines) units.set(l.product_id, units.get(l.product_id) + l.quantity);
            }
            const pays = (await until(200, () => api('GET', `/api/v1/payments?order_id=${o.id}`, { token: admin }), 'payments')).body.items;
            let caps = 0;
            for (const p of pays) {
                captured += p.captured.amount;
                refunded += p.refunded.amount;
                if (p.status === 'authorized') openAuth++;
                if (p.captured.amount > 0) caps++;
            }
            if (caps > 1) doubleCapture++;
        }
        // Stock: initial = on hand + committed, nothing reserved.
        const stock = [];
        for (const p of products) {
            const s = (await until(200, () => api('GET', `/api/v1/stock/${p.id}`, { token: admin }), 'stock')).body;
            stock.push({ id: p.id, on_hand: s.on_hand, reserved: s.reserved, committed: units.get(p.id) });
        }
        // The bus: every subscription drained, nothing dead.
        const subs = await waitFor(async () => {
            const r = await fetch(`${shop.url('bus')}/v1/subscriptions`, { headers: shop.operator }).then((x) => x.json()).catch(() => null);
            const items = r?.subscriptions;
            if (!Array.isArray(items)) return null;
            const b = (x) => x.backlog.ready + x.backlog.in_flight + x.backlog.delayed;
            return items.every((x) => b(x) === 0) ? items : null;
        }, { timeoutMs: 60_000, intervalMs: 500, message: 'every subscription drained' });
        const dead = subs.reduce((n, x) => n + x.backlog.dead_letters, 0);

        const count = (st) => [...final.values()].filter((o) => o.status === st).length;
        console.log(`chaos: ${placed.length} orders in ${Math.round(loadMs)} ms; kills ${kills.join(', ')}`);
        console.log(`chaos: CONFIRMED ${count('CONFIRMED')}, CANCELLED ${count('CANCELLED')}, REJECTED ${count('REJECTED')}`);
        console.log(`chaos: captured ${captured} - refunded ${refunded} = ${captured - refunded}; confirmed value ${confirmedValue}; open authorizations ${openAuth}; double captures ${doubleCapture}`);
        console.log(`chaos: stock ${JSON.stringify(stock)}; dead letters ${dead}`);

        assert.equal(kills.length, VICTIMS.length, `every victim killed: ${kills}`);
        assert.equal(captured - refunded, confirmedValue, 'money captured = value of the confirmed orders');
        assert.equal(openAuth, 0, 'no authorization left open');
        assert.equal(doubleCapture, 0, 'no order captured twice');
        for (const s of stock) {
            assert.equal(s.reserved, 0, `nothing reserved: ${JSON.stringify(s)}`);
            assert.equal(s.on_hand + s.committed, STOCK, `initial = on hand + committed: ${JSON.stringify(s)}`);
        }
        assert.equal(dead, 0, 'no message dead-lettered');
    });
});
