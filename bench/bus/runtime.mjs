// SPDX-License-Identifier: MIT
// bench/bus/runtime.mjs: the chassis events runtime on its two brokers, side
// by side: the embedded bus (AGORA_BUS_URL) and RabbitMQ (AGORA_EVENTS_URL,
// a private node from scripts/engine-rabbitmq), the same way services use
// them. One testd_events process (chassis/tests/events/testd_events.c, the
// release build) produces EVENTS events through its outbox (POST /produce,
// 500 per transaction, 16 subjects) and consumes them through its inbox on
// the same broker; the clock runs from the first produce to the moment its
// events_consumed_total reaches EVENTS. CPU is utime + stime of testd and of
// the broker's processes (the bus, or RabbitMQ's Erlang VM and epmd) over
// that span, per event. Rounds alternate bus and rabbitmq; the table shows
// the medians and the per-round ratio rabbitmq/bus. Durability: the bus at
// AGORA_DURABILITY=full, RabbitMQ quorum queues (fsync on their log), the
// outbox and inbox in SQLite at full.
//   node bench/bus/runtime.mjs [--events N] [--rounds R]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { buildDir, cleanup, makeTempDir, sourceDir, startService, stop, waitFor } from '../../tests/lib/proc.mjs';

const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : def;
};
const EVENTS = arg('events', 5000);
const ROUNDS = arg('rounds', 3);
const BATCH = 500;
const TICKS = 100; // USER_HZ
const TESTD = path.join(buildDir(), 'chassis', 'testd_events');

const freePort = () =>
    new Promise((resolve) => {
        const s = net.createServer();
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
const ticksOf = (pid) => {
    try {
        const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
        return Number(rest[11]) + Number(rest[12]);
    } catch {
        return 0;
    }
};
// Processes whose command line names 'dir', and their descendants.
function pidsUnder(dir) {
    const parent = new Map();
    const roots = [];
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
            parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
            if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dir)) roots.push(Number(d));
        } catch {
            // gone
        }
    }
    const set = new Set(roots);
    for (let grew = true; grew; ) {
        grew = false;
        for (const [pid, pp] of parent) {
            if (set.has(pp) && !set.has(pid)) {
                set.add(pid);
                grew = true;
            }
        }
    }
    return [...set];
}
async function consumed(svc) {
    const text = await (await fetch(svc.url('/metrics'))).text();
    // events_consumed_total{subscription,outcome}: the events handled (ok).
    let n = 0;
    for (const m of text.matchAll(/^events_consumed_total\{([^}]*)\} (\S+)$/gm)) if (m[1].includes('outcome="ok"')) n += Number(m[2]);
    return n;
}

async function round(kind, brokerUrl, brokerPids) {
    // testd_events hands its own AGORA_BUS_URL to the runtime, which takes
    // an amqp:// URL for RabbitMQ.
    const env = { AGORA_BUS_URL: brokerUrl };
    const sub = kind === 'bus' ? 'testd_events.consumer' : 'testd_events';
    const td = await startService('testd_events', {
        binary: TESTD,
        env: { ...env, TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub, AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_LOG_LEVEL: 'info' },
    });
    try {
        await waitFor(async () => (await fetch(td.url('/ready'))).status === 200, { timeoutMs: 60_000, message: 'testd ready' });
    } catch (e) {
        throw new Error(`${e.message}; testd stderr:\n${td.stderr(30)}`);
    }
    const pids = [td.child.pid, ...brokerPids()];
    const cpu0 = pids.reduce((n, p) => n + ticksOf(p), 0);
    const t0 = performance.now();
    for (let sent = 0; sent < EVENTS; sent += BATCH) {
        for (let s = 0; s < 16; s++) {
            const r = await fetch(td.url('/produce'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count: BATCH / 16 | 0, subject: `s${s}` }) });
            if (r.status !== 200) throw new Error(`produce: ${r.status} ${await r.text()}`);
        }
    }
    const want = 16 * (BATCH / 16 | 0) * Math.ceil(EVENTS / BATCH);
    try {
        await waitFor(async () => (await consumed(td)) >= want, { timeoutMs: Number(process.env.RUNTIME_TIMEOUT_MS || 300_000), intervalMs: 20, message: `${want} consumed` });
    } catch (e) {
        const m = (await (await fetch(td.url('/metrics'))).text()).split('\n').filter((l) => /^events_/.test(l));
        throw new Error(`${e.message} (${await consumed(td)}); ${kind}; metrics:\n${m.join('\n')}\ntestd stderr:\n${td.stderr(20)}`);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = pids.reduce((n, p) => n + ticksOf(p), 0) - cpu0;
    await stop(td);
    await cleanup(td);
    return { events: want, per_s: want / secs, cpu_us: ((cpu / TICKS) * 1e6) / want };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { bus: [], rabbitmq: [] };
const dir = makeTempDir('agora-bench-runtime-');
const rmqDir = path.join(dir, 'rabbitmq');
const engine = path.join(sourceDir(), 'scripts', 'engine-rabbitmq');
let bus;
try {
    bus = await startService('bus', { env: { AGORA_BUS_PUBLISHERS: 'testd_events:test.*', AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_LOG_LEVEL: 'info' } });
    const rmqPort = await freePort();
    execFileSync(engine, ['start', rmqDir, String(rmqPort)], { stdio: 'inherit' });
    const rmqUrl = execFileSync(engine, ['adduser', rmqDir, 'testd_events', '^test\\..*$'], { encoding: 'utf8' }).trim();
    for (let r = 0; r < ROUNDS; r++) {
        results.bus.push(await round('bus', bus.baseUrl, () => [bus.child.pid]));
        results.rabbitmq.push(await round('rabbitmq', rmqUrl, () => pidsUnder(rmqDir)));
        console.error(`round ${r + 1}: bus ${results.bus[r].per_s.toFixed(0)}/s ${results.bus[r].cpu_us.toFixed(1)} us/event; rabbitmq ${results.rabbitmq[r].per_s.toFixed(0)}/s ${results.rabbitmq[r].cpu_us.toFixed(1)} us/event`);
    }
} finally {
    try {
        execFileSync(engine, ['stop', rmqDir], { stdio: 'inherit' });
    } catch {
        // not started
    }
    await cleanup();
}
const ratio = (k) => median(results.rabbitmq.map((x, i) => x[k] / results.bus[i][k]));
console.log(`events runtime, ${EVENTS} events per round (outbox -> broker -> inbox, one process), ${ROUNDS} rounds, medians`);
console.log('broker     events/s   CPU us/event (testd + broker)');
for (const k of ['bus', 'rabbitmq']) console.log(`${k.padEnd(9)} ${median(results[k].map((x) => x.per_s)).toFixed(0).padStart(9)}   ${median(results[k].map((x) => x.cpu_us)).toFixed(1).padStart(10)}`);
console.log(`rabbitmq/bus: throughput ${ratio('per_s').toFixed(2)}, CPU per event ${ratio('cpu_us').toFixed(2)}`);
