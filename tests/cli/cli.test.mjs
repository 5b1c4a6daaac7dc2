// SPDX-License-Identifier: MIT
// The agora command against a real shop, started once in the background
// (`agora up --detach --seed`) in a temporary data directory on a free port
// offset: status, kill and the automatic restart, logs, load, the error
// cases (second up on the same data directory, ports in use, missing
// binaries, bad usage), and down leaving no process behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDir, makeTempDir, sourceDir, waitFor } from '../lib/proc.mjs';
import { findOffset } from '../lib/shop.mjs';

const agoraBin = path.join(buildDir(), 'cli', 'agora');

function cleanEnv(extra = {}) {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('AGORA_')) delete env[k];
    return { ...env, AGORA_DURABILITY: 'normal', AGORA_USERS_ARGON2_MEMLIMIT: '19MiB', AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000', ...extra };
}

// Run `agora args...` to its end: { code, stdout, stderr }.
function agora(args, { timeoutMs = 120_000 } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(agoraBin, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b) => (stdout += b));
        child.stderr.on('data', (b) => (stderr += b));
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`agora ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${stderr}`));
        }, timeoutMs);
        child.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

// Pids of processes whose environment names data directory 'dir'.
function processesOf(dir) {
    const found = [];
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
            if (fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(`AGORA_DATA_DIR=${dir}`)) found.push(Number(d));
        } catch {
            // gone meanwhile, or not ours to read
        }
    }
    return found;
}

const alive = (pid) => {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
};

describe('agora', () => {
    let data;
    let off;
    let gw;
    let up;
    let supervisor = 0;
    const common = () => ['--build', buildDir(), '--data', data, '--source', sourceDir()];
    const status = async () => {
        const r = await agora(['status', '--data', data, '--json']);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
    };

    before(async () => {
        off = await findOffset();
        data = makeTempDir('agora-cli-');
        gw = `http://127.0.0.1:${8080 + off}`;
        up = await agora(['up', ...common(), '--port-offset', String(off), '--detach', '--seed']);
    });

    after(async () => {
        // A test that failed half-way: stop what is left.
        if (data && processesOf(data).length > 0) await agora(['down', '--data', data]);
    });

    it('up --detach --seed returns once ready and prints the addresses and the demo credentials', async () => {
        assert.equal(up.code, 0, up.stderr);
        assert.match(up.stdout, new RegExp(`storefront: +http://127\\.0\\.0\\.1:${8080 + off}/shop/`));
        assert.match(up.stdout, new RegExp(`console: +http://127\\.0\\.0\\.1:${8080 + off}/console/`));
        assert.match(up.stdout, /api: +http:\/\/127\.0\.0\.1:\d+\/api\/v1\//);
        assert.match(up.stdout, /demo customer: demo@agora\.local \/ \S+/);
        const r = await fetch(`${gw}/api/v1/products?limit=100`);
        assert.equal(r.status, 200);
    });

    it('status shows every program with its pid, port, health, uptime, restarts and memory', async () => {
        const st = await status();
        supervisor = st.supervisor_pid;
        assert.ok(alive(supervisor));
        assert.ok(st.programs.length >= 9);
        for (const p of st.programs) {
            assert.equal(p.health, 'ready', `${p.name}: ${JSON.stringify(p)}`);
            assert.ok(alive(p.pid), `${p.name} pid ${p.pid} exists`);
            assert.ok(p.port > off, p.name);
            assert.equal(p.restarts, 0);
            assert.ok(p.rss_kib > 0);
            assert.ok(p.uptime_ms >= 0);
        }
        const text = await agora(['status', '--data', data]);
        assert.equal(text.code, 0);
        assert.match(text.stdout, /PROGRAM +STATE +PID +PORT +HEALTH +UPTIME +RESTARTS +RSS/);
        assert.match(text.stdout, /\ngateway +ready +\d+ +\d+ +ready/);
    });

    it('seeds the demo catalog with pictures the gateway serves, and the demo customer', async () => {
        const demo = JSON.parse(fs.readFileSync(path.join(sourceDir(), 'services/catalog/demo/catalog.json'), 'utf8'));
        assert.ok(demo.products.length >= 45 && demo.categories.length >= 5);
        const list = await (await fetch(`${gw}/api/v1/products?limit=100`)).json();
        const first = list.items.find((p) => p.image_url);
        assert.ok(first, 'products have pictures');
        const img = await fetch(gw + first.image_url);
        assert.equal(img.status, 200);
        assert.match(img.headers.get('content-type'), /^image\/svg\+xml/);
        assert.match(await img.text(), /<svg /);
        const login = await fetch(`${gw}/api/v1/auth/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ email: 'demo@agora.local', password: up.stdout.match(/demo customer: demo@agora\.local \/ (\S+)/)[1] }),
        });
        assert.equal(login.status, 200);
        // Again: nothing new, still success.
        const again = await agora(['seed', '--data', data]);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /0 categories and 0 products added/);
    });

    it('refuses a second up on the same data directory and names the running pid', async () => {
        const r = await agora(['up', ...common(), '--port-offset', String(off)]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`already running .*pid ${supervisor}\\)`));
    });

    it('refuses ports in use, naming the port and the process', async () => {
        const other = makeTempDir('agora-cli-other-');
        const r = await agora(['up', '--build', buildDir(), '--data', other, '--source', sourceDir(), '--port-offset', String(off)]);
        assert.equal(r.code, 1);
        const registry = (await status()).programs.find((p) => p.name === 'registry');
        assert.match(r.stderr, new RegExp(`port ${8500 + off} \\(registry\\) is in use by pid ${registry.pid} \\(registry\\)`));
        assert.deepEqual(processesOf(other), []);
    });

    it('says how to build when a binary is missing', async () => {
        const empty = makeTempDir('agora-cli-build-');
        const r = await agora(['up', '--build', empty, '--data', makeTempDir('agora-cli-x-'), '--source', sourceDir(), '--port-offset', String(off)]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /no program '.*registry'; build it with `make build`/);
    });

    it('exits 2 on bad usage, 0 on help', async () => {
        for (const args of [['frobnicate'], ['up', '--bogus'], ['up', '--port-offset', 'x'], ['load', '--rate', '-1'], ['load', '--mix', 'shopping:1'], ['kill'], ['logs', '--since', 'soon'], []]) {
            const r = await agora([...args, '--data', data]);
            assert.equal(r.code, 2, `agora ${args.join(' ')}: ${r.stderr}`);
            assert.ok(r.stderr.length > 0);
        }
        const help = await agora(['--help']);
        assert.equal(help.code, 0);
        for (const c of ['up', 'status', 'logs', 'down', 'kill', 'seed', 'load']) assert.match(help.stdout, new RegExp(`\\n  ${c} `));
        assert.match(help.stdout, /Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3/);
        const h = await agora(['help', 'load']);
        assert.equal(h.code, 0);
        assert.match(h.stdout, /^usage: agora load/);
        const none = await agora(['status', '--data', makeTempDir('agora-cli-none-')]);
        assert.equal(none.code, 3);
    });

    it('kill makes the supervisor restart the program, and says so in the logs', async () => {
        const before = (await status()).programs.find((p) => p.name === 'catalog');
        const k = await agora(['kill', 'catalog', '--data', data]);
        assert.equal(k.code, 0, k.stderr);
        let now;
        await waitFor(async () => {
            now = (await status()).programs.find((p) => p.name === 'catalog');
            return now.restarts === 1 && now.health === 'ready' && now.pid !== before.pid;
        }, { timeoutMs: 20_000, intervalMs: 100, message: 'catalog restarted' });
        assert.ok(!alive(before.pid));
        assert.ok((await fetch(`${gw}/api/v1/products?limit=1`)).status === 200);
        const logs = await agora(['logs', 'agora', '--data', data, '--since', '5m']);
        assert.equal(logs.code, 0);
        // JSON lines, besides the few plain lines the supervisor writes before its log starts.
        const lines = logs.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
        assert.ok(lines.some((l) => /catalog exited unexpectedly: killed by signal 9 .*restarting in \d+ ms/.test(l.msg)), logs.stdout.slice(-2000));
        const cat = await agora(['logs', 'catalog', '--data', data]);
        const catLines = cat.stdout.trim().split('\n').map((l) => JSON.parse(l));
        assert.ok(catLines.length > 5 && catLines.every((l) => l.service === 'catalog'));
        const unknown = await agora(['kill', 'nosuch', '--data', data]);
        assert.equal(unknown.code, 2);
    });

    it('shows one readable line per log line on a terminal', async () => {
        // script(1) gives agora a terminal; NO_COLOR leaves the colours out.
        const cmd = `NO_COLOR=1 ${agoraBin} logs catalog --data ${data}`;
        const r = await new Promise((resolve) => {
            const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
            let out = '';
            child.stdout.on('data', (b) => (out += b));
            child.on('exit', (code) => resolve({ code, out }));
        });
        assert.equal(r.code, 0);
        const lines = r.out.split(/\r?\n/).filter(Boolean);
        assert.ok(lines.length > 5);
        for (const l of lines) assert.match(l, /^\d\d:\d\d:\d\d\.\d{3} catalog +(INFO|WARN|ERROR|DEBUG) /, l);
        assert.ok(lines.some((l) => /http: request method=GET path=\/v1\/products.* status=200 .*\[[0-9a-f-]{36}\]$/.test(l)), 'request lines carry the request id');
    });

    it('logs -f follows new lines until interrupted', async () => {
        const child = spawn(agoraBin, ['logs', 'gateway', '-f', '--since', '1s', '--data', data], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (b) => (out += b));
        const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        const rid = `01a23bb0-0000-7000-8000-${String(Date.now()).slice(-12).padStart(12, '0')}`;
        try {
            await waitFor(async () => {
                await fetch(`${gw}/api/v1/products?limit=1`, { headers: { 'x-request-id': rid } });
                return out.includes(rid);
            }, { timeoutMs: 10_000, intervalMs: 300, message: 'the new line followed' });
        } finally {
            child.kill('SIGTERM');
        }
        assert.deepEqual(await exited, { code: 0, signal: null });
        for (const l of out.trim().split('\n')) assert.equal(JSON.parse(l).service, 'gateway');
    });

    it('load keeps the arrival rate it was asked for and every order it started ends', async () => {
        const r = await agora(['load', '--data', data, '--mix', 'browse:40,search:20,checkout:40', '--rate', '10', '--duration', '5s', '--customers', '4', '--json']);
        assert.equal(r.code, 0, r.stderr);
        const rep = JSON.parse(r.stdout);
        assert.ok(Math.abs(rep.achieved_rate - 10) <= 0.5, `achieved ${rep.achieved_rate}/s`);
        assert.ok(Math.abs(rep.arrivals - 50) <= 2, `${rep.arrivals} arrivals`);
        const co = rep.scenarios.checkout;
        assert.ok(co.orders.started > 0, JSON.stringify(co));
        assert.equal(co.orders.unfinished, 0);
        assert.equal(co.orders.terminal, co.orders.started);
        assert.equal(co.orders.confirmed + co.orders.rejected + co.orders.cancelled, co.orders.terminal);
        assert.ok(co.orders.confirmed > 0);
        assert.equal(rep.scenarios.browse.errors, 0, JSON.stringify(rep.scenarios.browse));
        for (const s of Object.values(rep.scenarios)) {
            assert.equal(s.ok + s.errors + s.unfinished, s.started);
            assert.ok(s.latency_ms.p50 <= s.latency_ms.p99 && s.latency_ms.p99 <= s.latency_ms.max);
        }
    });

    it('down stops everything and exits 0, leaving no process behind', async () => {
        const pids = processesOf(data);
        assert.ok(pids.length >= 9);
        const r = await agora(['down', '--data', data]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!alive(supervisor));
        assert.deepEqual(pids.filter(alive), []);
        assert.deepEqual(processesOf(data), []);
        const again = await agora(['down', '--data', data]);
        assert.equal(again.code, 3);
    });
});

describe('agora up in the foreground', () => {
    it('shows JSON lines when not on a terminal, only of the programs asked for, and stops on SIGTERM with exit 0', async () => {
        const off = await findOffset();
        const data = makeTempDir('agora-cli-fg-');
        const child = spawn(agoraBin, ['up', '--build', buildDir(), '--data', data, '--source', sourceDir(), '--port-offset', String(off), '--only', 'agora,gateway'], {
            env: cleanEnv(),
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        child.stderr.on('data', (b) => (err += b));
        const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
        try {
            await waitFor(() => err.includes('Agora is up') || child.exitCode !== null, { timeoutMs: 90_000, intervalMs: 50, message: 'agora up' });
            assert.match(err, /Agora is up/);
            assert.ok((await fetch(`http://127.0.0.1:${8080 + off}/api/v1/products?limit=1`)).ok);
        } finally {
            child.kill('SIGTERM');
        }
        assert.deepEqual(await exited, { code: 0, signal: null }, err.slice(-3000));
        const json = err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
        const services = new Set(json.map((l) => l.service));
        assert.deepEqual([...services].sort(), ['agora', 'gateway']);
        assert.ok(json.some((l) => l.service === 'agora' && l.msg === 'all stopped'));
        // The files have every program's lines, whatever was shown.
        const catalogLog = fs.readFileSync(path.join(data, 'logs', 'catalog.log'), 'utf8');
        assert.match(catalogLog, /"service":"catalog"/);
        assert.deepEqual(processesOf(data), []);
        assert.ok(!fs.existsSync(path.join(data, 'run', 'shop.json')));
    });
});
