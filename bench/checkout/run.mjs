// SPDX-License-Identifier: MIT
// bench/checkout: the whole shop (`agora up`, release build, every database
// at synchronous=FULL) sells through the gateway, under `agora load`
// (cli/load.c: open loop, constant arrival rate, one libuv process).
// Customers fill a cart and check out with tok_visa; the saga runs over the
// bus.
//   peak:  checkouts arrive faster than CUSTOMERS customers can buy (each
//          customer buys one order at a time) for SECONDS: confirmed
//          orders/s, and CPU per confirmed order summed over the shop's
//          processes (utime + stime from /proc/<pid>/stat, not the load
//          generator's), from the moment agora load starts its clock;
//   half:  arrivals at half the peak rate for SECONDS: checkout -> CONFIRMED
//          latency p50/p99, from the order's own created_at / updated_at.
// No peer: the issue's goals are absolute (>= 500 orders/s, <= 2 ms CPU per
// order, p99 <= 50 ms at half load), and the figures are printed beside them.
// Usage: node bench/checkout/run.mjs [--customers N] [--seconds S]
//                                   [--backends postgres,rabbitmq] [--scale orders=2,...]
//                                   [--trace-sample 0..1]
// --backends and --scale are `agora up`'s: the same run on PostgreSQL (every
// service's database, synchronous_commit on like SQLite's FULL) and
// RabbitMQ, whose processes' CPU is counted with the shop's.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDir } from '../../tests/lib/proc.mjs';
import { startShop } from '../../tests/lib/shop.mjs';
import { PROGRAMS } from '../../tests/lib/ports.mjs';

const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : def;
};
const sarg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
};
const BACKENDS = sarg('backends', '');
// Head sampling of the shop's traces (agora up exports every span to its
// collector): 1 by default, 0 to measure the shop without tracing.
const SAMPLE = sarg('trace-sample', '1');
const SCALE = sarg('scale', '');
const CUSTOMERS = arg('customers', 32);
const SECONDS = arg('seconds', 10);
const TICKS = 100; // USER_HZ on Linux

const shop = await startShop({ backends: BACKENDS, scale: SCALE, env: { AGORA_TRACE_SAMPLE: SAMPLE, AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_LOG_LEVEL: 'warn', AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000' } });
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
    // Every instance of every program, and the engines' processes.
    const groups = Object.fromEntries(PROGRAMS.map((p) => [p.name, shop.pidsOf(p.name)]).filter(([, v]) => v.length > 0));
    for (const [k, v] of Object.entries(shop.enginePids())) if (v.length > 0) groups[k] = v;
    const pids = Object.values(groups).flat();
    // A process that exited meanwhile (an autovacuum worker) keeps the
    // ticks it was last seen with.
    const lastTicks = new Map();
    const ticksOf = (pid) => {
        try {
            const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
            const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
            lastTicks.set(pid, Number(rest[11]) + Number(rest[12])); // utime, stime
        } catch {
            // gone
        }
        return lastTicks.get(pid) ?? 0;
    };
    const cpuTicks = () => pids.reduce((n, pid) => n + ticksOf(pid), 0);
    // Per program, to see where the CPU of an order goes.
    const perProgram = () => Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, v.reduce((n, pid) => n + ticksOf(pid), 0)]));

    // `agora load` checking out the bench product: its JSON report, and the
    // shop's CPU ticks from the start of its clock (after it registered its
    // customers) to its end.
    const load = (rate) => new Promise((resolve, reject) => {
        const args = ['load', '--data', shop.data, '--mix', 'checkout:1', '--rate', String(rate), '--duration', `${SECONDS}s`, '--customers', String(CUSTOMERS), '--product', prod.id, '--card', 'tok_visa', '--json'];
        const child = spawn(path.join(buildDir(), 'cli', 'agora'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        let c0 = null;
        let p0 = null;
        child.stdout.on('data', (b) => (out += b));
        child.stderr.on('data', (b) => {
            err += b;
            if (c0 === null && err.includes('arrivals/s for')) {
                c0 = cpuTicks();
                p0 = perProgram();
            }
        });
        child.on('exit', (code) => {
            const ticks = cpuTicks() - (c0 ?? 0);
            const p1 = perProgram();
            const split = Object.fromEntries(Object.keys(p1).map((k) => [k, ((p1[k] - (p0?.[k] ?? 0)) / TICKS) * 1000]));
            if (code !== 0 || c0 === null) reject(new Error(`agora load exited ${code}:\n${err}`));
            else resolve({ report: JSON.parse(out), cpuMs: (ticks / TICKS) * 1000, split });
        });
    });

    // Peak: more arrivals than the customers can serve; throughput is what
    // the shop confirms.
    const peakRun = await load(2000);
    const co = peakRun.report.scenarios.checkout;
    const confirmed = co.orders.confirmed;
    const secs = peakRun.report.duration_s;
    const cpuMs = peakRun.cpuMs;
    const peak = co.confirmed_per_s;

    // Half load: open loop at peak / 2.
    const rate = Math.max(1, peak / 2);
    const half = (await load(rate)).report.scenarios.checkout;
    const pct = (q) => half.saga_ms[q] ?? NaN;
    const n = half.orders.started;
    const lat = { length: half.orders.confirmed };

    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    console.log(`machine: ${cpu}, ${os.cpus().length} CPUs, Linux ${os.release()}; node ${process.version}; durability full`);
    console.log('figure                                   measured      goal');
    console.log(`confirmed orders/s (${CUSTOMERS} customers) ${peak.toFixed(1).padStart(19)}    >= 500`);
    console.log(`CPU ms per confirmed order (all processes) ${(cpuMs / Math.max(1, confirmed)).toFixed(2).padStart(9)}    <= 2`);
    console.log(`checkout -> CONFIRMED p50 at ${rate.toFixed(0)}/s (ms) ${String(pct('p50')).padStart(12)}`);
    console.log(`checkout -> CONFIRMED p99 at ${rate.toFixed(0)}/s (ms) ${String(pct('p99')).padStart(12)}    <= 50`);
    const split = Object.entries(peakRun.split).map(([k, v]) => [k, v / Math.max(1, confirmed)]).sort((a, b) => b[1] - a[1]);
    console.log(`CPU ms per confirmed order by program: ${split.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
    console.log(`(${confirmed} confirmed in ${secs.toFixed(1)} s; half load: ${lat.length} confirmed of ${n})`);
} finally {
    await shop.stop();
}
