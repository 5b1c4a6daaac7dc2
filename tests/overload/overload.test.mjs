// SPDX-License-Identifier: MIT
// Overload: the real gateway in front of an upstream of known capacity (a
// node process serving 4 requests at a time, 20 ms each, queueing the rest:
// about 200 requests/s), driven on loopback. First its capacity C is
// measured closed-loop; then an open-loop load of 2 x C for 10 s must keep
// a goodput of at least 80% of C, answer the excess at once with 503 (or
// 429) and Retry-After, time nothing out, and keep /health answering; then
// at 0.5 x C the rejections must stop and latency come back within 10 s.
// Without request admission the upstream's queue grows without bound: the
// excess waits, latency climbs to the route's timeout and the gateway
// answers 504 or the client gives up.
//
// Release build only (CMakeLists.txt): ASan changes capacity. Run one at a
// time (label engines, ctest -j1), so no other suite shares the CPUs.
// Waiting is for conditions (waitFor) or for the schedule of the load.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';

import { cleanup, startService, waitFor, writeJsonFile } from '../lib/proc.mjs';
import { metricValue, parseMetrics } from '../lib/http.mjs';

const SLOTS = 4; // requests the upstream serves at once
const SERVICE_MS = 20; // service time of each
const OVERLOAD_S = 10; // seconds at 2 x C
const RECOVERY_S = 10; // seconds at 0.5 x C
const CLIENT_TIMEOUT_MS = 5000; // a request unanswered this long timed out

let upstream;
after(async () => {
    if (upstream) {
        upstream.kill('SIGKILL');
        await once(upstream, 'exit').catch(() => {});
    }
    await cleanup();
});

// The upstream: a separate node process, so its timers do not share the
// load generator's event loop.
async function startUpstream() {
    const src = `
        const http = require('node:http');
        let busy = 0;
        const queue = [];
        function next() {
            while (busy < ${SLOTS} && queue.length > 0) {
                const res = queue.shift();
                if (res.destroyed) continue;
                busy++;
                setTimeout(() => {
                    busy--;
                    res.writeHead(200, { 'Content-Type': 'application/json' });
                    res.end('{"ok":true}');
                    next();
                }, ${SERVICE_MS});
            }
        }
        const server = http.createServer((req, res) => {
            req.resume();
            req.on('end', () => { queue.push(res); next(); });
        });
        server.keepAliveTimeout = 60000;
        server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
    `;
    const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor(() => /\n/.test(out), { timeoutMs: 10_000, message: 'upstream port' });
    return { child, port: Number(out.trim()) };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });

// One GET; resolves { status, retryAfter, ms, own, at }: 'ms' is timed from
// 'intended' (the scheduled send time, so a late generator does not hide
// queueing), 'own' from the actual send; 'status' is 'timeout' or an error
// code when there was no answer.
function get(port, path, intended = performance.now()) {
    const sent = performance.now();
    return new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: CLIENT_TIMEOUT_MS }, (res) => {
            res.resume();
            res.on('end', () =>
                resolve({
                    status: res.statusCode,
                    retryAfter: res.headers['retry-after'],
                    ms: performance.now() - intended,
                    own: performance.now() - sent,
                    at: intended,
                }),
            );
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (err) => resolve({ status: err.message === 'timeout' ? 'timeout' : err.code ?? err.message, ms: performance.now() - intended, at: intended }));
    });
}

// Closed loop: 'clients' callers each sending the next request when the
// last one is answered, for 'seconds'. Resolves the results.
async function closedLoop(port, path, clients, seconds) {
    const end = performance.now() + seconds * 1000;
    const results = [];
    await Promise.all(
        Array.from({ length: clients }, async () => {
            while (performance.now() < end) results.push(await get(port, path));
        }),
    );
    return results;
}

// Open loop: 'rate' requests per second for 'seconds', sent on a schedule
// whatever the answers; resolves every result once all are in.
async function openLoop(port, path, rate, seconds) {
    const start = performance.now();
    const total = Math.round(rate * seconds);
    const pending = [];
    let sent = 0;
    while (sent < total) {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1);
        for (; sent < due; sent++) pending.push(get(port, path, start + (sent * 1000) / rate));
        await new Promise((r) => setTimeout(r, 2));
    }
    const results = await Promise.all(pending);
    for (const r of results) r.t = (r.at - start) / 1000; // seconds into the phase
    return results;
}

function pct(values, p) {
    if (values.length === 0) return NaN;
    const s = [...values].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const fmt = (v) => (Number.isFinite(v) ? v.toFixed(1) : String(v));

describe('gateway under overload', () => {
    it('keeps goodput at 2x capacity, sheds the excess fast with Retry-After, recovers at 0.5x', { timeout: 120_000 }, async () => {
        const up = await startUpstream();
        upstream = up.child;
        const routes = {
            routes: [{ prefix: '/api/v1/slow', service: 'slow', rewrite: '/v1/slow', roles: { '*': 'public' }, timeout_ms: 3000, retries: 0 }],
        };
        const gw = await startService('gateway', {
            env: {
                AGORA_GATEWAY_ROUTES_FILE: writeJsonFile(routes, 'routes.json'),
                AGORA_GATEWAY_UPSTREAMS: `slow=127.0.0.1:${up.port}`,
                AGORA_ACCESS_LOG: 'false',
            },
        });
        const port = gw.port;
        const path = '/api/v1/slow';

        // Normal latency: one request at a time.
        const idle = [];
        for (let i = 0; i < 20; i++) idle.push(await get(port, path));
        assert.ok(idle.every((r) => r.status === 200), `idle requests: ${idle.map((r) => r.status)}`);
        const normalMs = pct(idle.map((r) => r.ms), 50);

        // Capacity, closed loop with twice the upstream's slots (its queue
        // stays short, so admission has nothing to shed).
        const capSeconds = 3;
        const cap = await closedLoop(port, path, 2 * SLOTS, capSeconds);
        const capOk = cap.filter((r) => r.status === 200).length;
        assert.equal(capOk, cap.length, `closed loop answers: ${[...new Set(cap.map((r) => r.status))]}`);
        const C = capOk / capSeconds;
        console.log(`capacity C = ${fmt(C)} req/s (closed loop, ${2 * SLOTS} clients); idle latency p50 ${fmt(normalMs)} ms`);
        assert.ok(C > 50, `capacity ${C} req/s is plausible`);

        // 2 x C, open loop; /health is asked meanwhile.
        let healthMax = 0;
        let healthBad = 0;
        let probing = true;
        const prober = (async () => {
            while (probing) {
                const h = await get(port, '/health');
                if (h.status !== 200) healthBad++;
                healthMax = Math.max(healthMax, h.ms);
                await new Promise((r) => setTimeout(r, 200));
            }
        })();
        const over = await openLoop(port, path, 2 * C, OVERLOAD_S);
        probing = false;
        await prober;
        const ok = over.filter((r) => r.status === 200);
        const shed = over.filter((r) => r.status === 503 || r.status === 429);
        const other = over.filter((r) => r.status !== 200 && r.status !== 503 && r.status !== 429);
        const goodput = ok.length / OVERLOAD_S;
        const shedMs = shed.map((r) => r.ms);
        const okMs = ok.map((r) => r.ms);
        console.log(
            `2xC = ${fmt(2 * C)} req/s for ${OVERLOAD_S} s: ${over.length} sent, ${ok.length} ok, ${shed.length} shed, ` +
                `${other.length} other (${[...new Set(other.map((r) => r.status))].join(',')}); goodput ${fmt(goodput)} req/s = ` +
                `${fmt((100 * goodput) / C)}% of C; shed latency p50 ${fmt(pct(shedMs, 50))} p90 ${fmt(pct(shedMs, 90))} ` +
                `p99 ${fmt(pct(shedMs, 99))} ms (from the send: p50 ${fmt(pct(shed.map((r) => r.own), 50))} p99 ${fmt(pct(shed.map((r) => r.own), 99))}); ok latency p50 ${fmt(pct(okMs, 50))} p99 ${fmt(pct(okMs, 99))} ms; ` +
                `/health worst ${fmt(healthMax)} ms`,
        );
        assert.deepEqual([...new Set(other.map((r) => r.status))], [], 'every answer is 200, 503 or 429; nothing timed out');
        assert.ok(goodput >= 0.8 * C, `goodput ${fmt(goodput)} req/s >= 80% of C = ${fmt(0.8 * C)}`);
        assert.ok(shed.length > 0.2 * over.length, `the excess was shed (${shed.length} of ${over.length})`);
        const noRetryAfter = shed.filter((r) => !/^\d+$/.test(r.retryAfter ?? ''));
        assert.equal(noRetryAfter.length, 0, 'every 503/429 carries Retry-After in seconds');
        // The median is the figure: it is what a shed client sees,
        // and on a shared 2-core machine a tail percentile measures the
        // scheduler (the generator and the gateway share CPUs) more than
        // the gateway. The p99 bound (timed from the actual send, so the
        // generator's own lateness is left out) says no shed answer waited
        // in a queue.
        assert.ok(pct(shedMs, 50) < 10, `shed answers: median ${fmt(pct(shedMs, 50))} ms < 10 ms`);
        const shedOwn = shed.map((r) => r.own);
        assert.ok(pct(shedOwn, 99) < 250, `shed answers: p99 from the send ${fmt(pct(shedOwn, 99))} ms < 250 ms`);
        assert.equal(healthBad, 0, '/health answered 200 throughout');

        const m = parseMetrics(await (await fetch(`${gw.opsUrl}/metrics`)).text());
        const shedCount = metricValue(m, 'http_admission_requests_total', { result: 'shed' });
        const limit = metricValue(m, 'http_admission_limit');
        console.log(`metrics: shed ${shedCount}, admitted ${metricValue(m, 'http_admission_requests_total', { result: 'admitted' })}, limit ${limit}`);
        assert.ok(shedCount >= shed.length, 'http_admission_requests_total{result="shed"} counts them');

        // 0.5 x C: within 10 s nothing is shed and latency is back to normal.
        const rec = await openLoop(port, path, 0.5 * C, RECOVERY_S);
        const buckets = Array.from({ length: RECOVERY_S }, () => ({ n: 0, shed: 0, bad: 0, ms: [] }));
        for (const r of rec) {
            const b = buckets[Math.min(RECOVERY_S - 1, Math.floor(r.t))];
            b.n++;
            if (r.status === 503 || r.status === 429) b.shed++;
            else if (r.status !== 200) b.bad++;
            else b.ms.push(r.ms);
        }
        const normalBound = 2 * normalMs + 10;
        const clean = (b) => b.shed === 0 && b.bad === 0 && pct(b.ms, 50) <= normalBound;
        let recovered = RECOVERY_S;
        while (recovered > 0 && clean(buckets[recovered - 1])) recovered--;
        console.log(
            `0.5xC = ${fmt(0.5 * C)} req/s for ${RECOVERY_S} s, per second [sent/shed/p50 ms]: ` +
                buckets.map((b) => `${b.n}/${b.shed}/${fmt(pct(b.ms, 50))}`).join(' ') +
                `; clean from second ${recovered} (normal bound ${fmt(normalBound)} ms)`,
        );
        assert.ok(rec.every((r) => r.status === 200 || r.status === 503 || r.status === 429), 'nothing timed out while recovering');
        assert.ok(recovered <= RECOVERY_S - 3, `recovered within ${RECOVERY_S} s and stayed so for 3 s (clean from second ${recovered})`);
    });
});
