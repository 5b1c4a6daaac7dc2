// SPDX-License-Identifier: MIT
// bench/checkout: the whole shop (`agora up`, release build, every database
// at synchronous=FULL) sells through the gateway. Simulated customers fill a
// cart and check out with tok_visa; the saga runs over the bus.
//   peak:  CUSTOMERS closed-loop customers for SECONDS: confirmed orders/s
//          and CPU per confirmed order, summed over the shop's processes
//          (utime + stime from /proc/<pid>/stat, not the load generator's);
//   half:  open loop at half the peak rate for SECONDS: checkout -> CONFIRMED
//          latency p50/p99, from the order's own created_at / updated_at.
// No peer: the issue's goals are absolute (>= 500 orders/s, <= 2 ms CPU per
// order, p99 <= 50 ms at half load), and the figures are printed beside them.
// Usage: node bench/checkout/run.mjs [--customers N] [--seconds S]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { startShop } from '../../tests/lib/shop.mjs';
import { PROGRAMS } from '../../tests/lib/ports.mjs';

const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : def;
};
const CUSTOMERS = arg('customers', 32);
const SECONDS = arg('seconds', 10);
const WARMUP_S = 2;
const ADDRESS = { name: 'Bench', line1: '1 Bench Road', city: 'Leeds', postal_code: 'LS1 1AA', country: 'GB' };
const TICKS = 100; // USER_HZ on Linux

const shop = await startShop({ env: { AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_LOG_LEVEL: 'warn', AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000' } });
try {
    const api = async (method, p, { token, json, headers = {} } = {}) => {
        const h = { ...headers };
        if (token) h.authorization = `Bearer ${token}`;
        if (json !== undefined) h['content-type'] = 'application/json';
        const r = await fetch(shop.gw + p, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
        const text = await r.text();
        return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
    };
    const admin = (await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword } })).body.access_token;
    // One product with stock enough for the whole run.
    const prod = (await api('POST', '/api/v1/products', { token: admin, json: { sku: `BENCH-${process.pid}`, name: 'Bench', price: { amount: 1000, currency: 'EUR' } } })).body;
    let cur;
    for (let i = 0; i < 200 && (cur = await api('GET', `/api/v1/stock/${prod.id}`, { token: admin })).status !== 200; i++) await new Promise((r) => setTimeout(r, 20));
    await api('PUT', `/api/v1/stock/${prod.id}`, { token: admin, json: { on_hand: 10_000_000, reason: 'bench' }, headers: { 'if-match': cur.headers.get('etag') } });
    const customers = [];
    for (let i = 0; i < CUSTOMERS; i++) {
        const email = `bench-${process.pid}-${i}@example.com`;
        await api('POST', '/api/v1/users', { json: { email, password: 'a long enough passphrase', name: 'B' } });
        customers.push((await api('POST', '/api/v1/auth/login', { json: { email, password: 'a long enough passphrase' } })).body.access_token);
    }

    // One purchase: cart, checkout, wait for the terminal state. Returns the
    // order (its created_at / updated_at give the saga's own latency).
    const buy = async (token) => {
        for (;;) {
            const c = await api('POST', '/api/v1/cart/items', { token, json: { product_id: prod.id, quantity: 1 } });
            if (c.status === 200) break;
        }
        const o = await api('POST', '/api/v1/orders', { token, json: { shipping_address: ADDRESS, payment_token: 'tok_visa' }, headers: { 'idempotency-key': crypto.randomUUID() } });
        if (o.status !== 202) return null;
        for (;;) {
            const g = await api('GET', `/api/v1/orders/${o.body.id}`, { token });
            if (['CONFIRMED', 'CANCELLED', 'REJECTED'].includes(g.body?.status)) return g.body;
            await new Promise((r) => setTimeout(r, 20));
        }
    };

    const pids = PROGRAMS.map((p) => shop.pidOf(p.name)).filter((p) => p > 0);
    const ticksOf = (pid) => {
        const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
        return Number(rest[11]) + Number(rest[12]); // utime, stime
    };
    const perProcess = () => Object.fromEntries(PROGRAMS.filter((p) => shop.pidOf(p.name) > 0).map((p) => [p.name, ticksOf(shop.pidOf(p.name))]));
    const cpuTicks = () => pids.reduce((n, pid) => n + ticksOf(pid), 0);

    // Peak: closed loop.
    let confirmed = 0;
    let measuring = false;
    let stop = false;
    const loops = customers.map(async (token) => {
        while (!stop) {
            const o = await buy(token);
            if (measuring && o?.status === 'CONFIRMED') confirmed++;
        }
    });
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    const c0 = cpuTicks();
    const p0 = perProcess();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    measuring = false;
    const secs = (performance.now() - t0) / 1000;
    const cpuMs = ((cpuTicks() - c0) / TICKS) * 1000;
    const p1 = perProcess();
    stop = true;
    await Promise.all(loops);
    const peak = confirmed / secs;

    // Half load: open loop at peak / 2, each purchase by the next customer in turn.
    const rate = Math.max(1, peak / 2);
    const lat = [];
    const inflight = [];
    const tStart = performance.now();
    let n = 0;
    while (performance.now() - tStart < SECONDS * 1000) {
        const due = tStart + (n * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const token = customers[n % customers.length];
        n++;
        inflight.push(buy(token).then((o) => {
            if (o?.status === 'CONFIRMED') lat.push(Date.parse(o.updated_at) - Date.parse(o.created_at));
        }));
    }
    await Promise.all(inflight);
    lat.sort((a, b) => a - b);
    const pct = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? NaN;

    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    console.log(`machine: ${cpu}, ${os.cpus().length} CPUs, Linux ${os.release()}; node ${process.version}; durability full`);
    console.log('figure                                   measured      goal');
    console.log(`confirmed orders/s (closed loop, ${CUSTOMERS} customers) ${peak.toFixed(1).padStart(9)}    >= 500`);
    console.log(`CPU ms per confirmed order (all processes) ${(cpuMs / Math.max(1, confirmed)).toFixed(2).padStart(9)}    <= 2`);
    console.log(`checkout -> CONFIRMED p50 at ${rate.toFixed(0)}/s (ms) ${String(pct(0.5)).padStart(12)}`);
    console.log(`checkout -> CONFIRMED p99 at ${rate.toFixed(0)}/s (ms) ${String(pct(0.99)).padStart(12)}    <= 50`);
    const split = Object.keys(p1).map((k) => [k, ((p1[k] - (p0[k] ?? 0)) / TICKS) * 1000 / Math.max(1, confirmed)]).sort((a, b) => b[1] - a[1]);
    console.log(`CPU ms per confirmed order by process: ${split.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
    console.log(`(${confirmed} confirmed in ${secs.toFixed(1)} s; half load: ${lat.length} confirmed of ${n})`);
} finally {
    await shop.stop();
}
