// SPDX-License-Identifier: MIT
// Many instances: `agora up --scale orders=2,catalog=2` runs two processes
// of each (instance 2 on the port + 1000), both register, the gateway
// balances across them, and an orders instance SIGKILLed while checkouts are
// in flight loses nothing: every order ends in a terminal state and the
// stock adds up. Runs on SQLite + bus (the instances share the database file)
// and, from the engines/ copy of this suite, on PostgreSQL + RabbitMQ.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { cleanup, waitFor } from '../lib/proc.mjs';
import { startShop } from '../lib/shop.mjs';

const T = { timeout: 120_000 };
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED', 'REJECTED', 'COMPLETED']);
const ADDRESS = { name: 'Sam Scale', line1: '2 Market Street', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };

describe('scale: several instances of orders and catalog', () => {
    let shop;
    let admin;

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

    // Request lines an instance logged for paths starting with 'prefix'.
    function served(program, prefix) {
        const file = path.join(shop.data, 'logs', `${program}.log`);
        if (!fs.existsSync(file)) return 0;
        let n = 0;
        for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
            if (!line.startsWith('{')) continue;
            try {
                const l = JSON.parse(line);
                if (typeof l.path === 'string' && l.path.startsWith(prefix) && l.status) n++;
            } catch {
                // a line cut by the writer
            }
        }
        return n;
    }

    before(async () => {
        shop = await startShop({
            scale: 'orders=2,catalog=2',
            env: { AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000', AGORA_ORDERS_STEP_TIMEOUT: '3s' },
        });
        admin = (await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword }, expect: 200 })).body.access_token;
    });

    after(async () => {
        if (shop) assert.deepEqual(await shop.stop(), { code: 0, signal: null }, shop.stderr().slice(-3000));
        cleanup();
    });

    it('both instances register and the gateway balances requests across them', T, async () => {
        // Both instances of each registered (their registrations reach the
        // gateway's view within a refresh).
        let body;
        await waitFor(async () => {
            body = (await api('GET', '/api/v1/admin/services', { token: admin, expect: 200 })).body;
            return ['orders', 'catalog'].every((n) => (body.services[n]?.instances ?? []).length === 2);
        }, { message: 'two instances of orders and of catalog in the service map' });
        for (const n of ['orders', 'catalog']) {
            const ids = body.services[n].instances.map((x) => x.incarnation);
            assert.equal(new Set(ids).size, 2, `${n}: ${JSON.stringify(body.services[n])}`);
        }
        const before1 = served('catalog', '/v1/products');
        const before2 = served('catalog-2', '/v1/products');
        for (let i = 0; i < 40; i++) await api('GET', '/api/v1/products?limit=5', { expect: 200 });
        await waitFor(() => served('catalog', '/v1/products') + served('catalog-2', '/v1/products') >= before1 + before2 + 40, { message: 'access log lines of the 40 requests' });
        const a = served('catalog', '/v1/products') - before1;
        const b = served('catalog-2', '/v1/products') - before2;
        assert.ok(a >= 10 && b >= 10, `catalog served ${a}, catalog-2 served ${b} of 40`);
    });

    it('an orders instance killed while checkouts are in flight loses nothing', T, async () => {
        const sku = `SCALE-${process.pid}`;
        const p = (await api('POST', '/api/v1/products', { token: admin, json: { sku, name: 'Scaled thing', price: { amount: 700, currency: 'EUR' } }, expect: 201 })).body;
        let etag;
        await waitFor(async () => {
            const r = await api('GET', `/api/v1/stock/${p.id}`, { token: admin });
            etag = r.headers.get('etag');
            return r.status === 200;
        }, { message: 'the stock row' });
        const STOCK = 100;
        await api('PUT', `/api/v1/stock/${p.id}`, { token: admin, json: { on_hand: STOCK, reason: 'scale' }, headers: { 'if-match': etag }, expect: 200 });

        const N = 16;
        const buyers = [];
        for (let i = 0; i < N; i++) {
            const email = `scale-${process.pid}-${i}@example.com`;
            const password = 'a long enough passphrase';
            await api('POST', '/api/v1/users', { json: { email, password, name: `Buyer ${i}` }, expect: 201 });
            const token = (await api('POST', '/api/v1/auth/login', { json: { email, password }, expect: 200 })).body.access_token;
            // Both orders instances learn the product from product.created.
            await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token, json: { product_id: p.id, quantity: 1 } })).status === 200, { message: 'the product in the cart' });
            buyers.push(token);
        }
        const victim = shop.pidOf('orders');
        assert.ok(victim > 0);
        // Half the checkouts, the kill, then the other half: the saga steps of
        // the first half are in flight when the instance dies.
        const ids = [];
        const start = async (token) => {
            const key = crypto.randomUUID();
            for (;;) {
                const r = await api('POST', '/api/v1/orders', { token, json: { shipping_address: ADDRESS, payment_token: 'tok_visa' }, headers: { 'idempotency-key': key } });
                if (r.status === 202 || r.status === 201 || r.status === 200) return r.body.id;
                // The gateway may have picked the dying instance: the same key again.
                assert.ok([502, 503, 504].includes(r.status), `${r.status} ${r.text.slice(0, 300)}`);
            }
        };
        ids.push(...(await Promise.all(buyers.slice(0, N / 2).map(start))));
        process.kill(victim, 'SIGKILL');
        ids.push(...(await Promise.all(buyers.slice(N / 2).map(start))));
        assert.equal(new Set(ids).size, N);
        const final = [];
        for (let i = 0; i < N; i++) {
            let o;
            await waitFor(async () => {
                o = (await api('GET', `/api/v1/orders/${ids[i]}`, { token: buyers[i] })).body;
                return o && TERMINAL.has(o.status);
            }, { timeoutMs: 60_000, intervalMs: 100, message: `order ${ids[i]} to end` });
            final.push(o);
        }
        const confirmed = final.filter((o) => o.status === 'CONFIRMED').length;
        assert.equal(confirmed, N, JSON.stringify(final.map((o) => [o.status, o.reason ?? o.status_reason ?? ''])));
        let s;
        await waitFor(async () => {
            s = (await api('GET', `/api/v1/stock/${p.id}`, { token: admin, expect: 200 })).body;
            return s.reserved === 0;
        }, { message: 'no stock left reserved' });
        assert.equal(s.on_hand, STOCK - confirmed);
        // The supervisor brought the killed instance back.
        await waitFor(() => {
            const pid = shop.pidOf('orders');
            return pid > 0 && pid !== victim;
        }, { message: 'orders restarted' });
    });
});
