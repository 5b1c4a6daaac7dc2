// SPDX-License-Identifier: MIT
// The whole shop for whole-system tests: `agora up` in a temporary data
// directory, every port moved by a random free offset, started once per
// test file and stopped with SIGTERM at the end.
//
//   const shop = await startShop({ env: { AGORA_SMTP_URL: ... } });
//   await fetch(shop.gw + '/api/v1/products');
//   shop.operator  // headers with the operator's service identity (its key
//                  // derived from the shop's service.key)
//   await shop.stop();  // { code, signal }
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildDir, makeTempDir, sourceDir, waitFor } from './proc.mjs';
import { identityHeader, OPERATOR } from './identity.mjs';
import { GATEWAY_OPS_PORT, PROGRAMS } from './ports.mjs';

// Default ports of the programs `agora up` runs (agora/ports.h), before the
// offset, and the gateway's operator listener.
export const SHOP_PORTS = Object.freeze({
    ...Object.fromEntries(PROGRAMS.map((p) => [p.name, p.port])),
    gatewayOps: GATEWAY_OPS_PORT,
});

export function portFree(port, host = '127.0.0.1') {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, host, () => srv.close(() => resolve(true)));
    });
}

// A port offset under which every port in 'ports' (and 'extra') is free.
//
// Every port lands in 10000-32767: below the kernel's ephemeral range
// (32768-60999), so the source port of some other test's outgoing connection
// can never take one between this check and `agora up` binding it. Suites run
// in parallel, so the offset is also claimed: the range is cut in slots of
// 1000 ports, and a shop holds the slots its ports fall in through lock files
// (O_EXCL, holding the pid) in the temporary directory; a slot whose holder
// is dead is taken over. Slots are let go by releaseOffset() or when the
// process ends.
const PORT_LOW = 10000;
const PORT_HIGH = 32767;
const SLOT = 1000;
const slotDir = path.join(os.tmpdir(), 'agora-test-ports');
const held = new Map(); // offset -> [slot file]

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return e.code === 'EPERM';
    }
}

function claimSlot(file) {
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
            return true;
        } catch (e) {
            if (e.code !== 'EEXIST') throw e;
            const pid = Number(fs.readFileSync(file, 'utf8').trim() || 0);
            if (pid && alive(pid)) return false;
            fs.rmSync(file, { force: true }); // its holder is gone
        }
    }
    return false;
}

export async function findOffset(ports = Object.values(SHOP_PORTS), extra = []) {
    const all = [...ports, ...extra];
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    const choices = Math.floor((PORT_HIGH - (hi - lo) - PORT_LOW) / SLOT);
    fs.mkdirSync(slotDir, { recursive: true, mode: 0o1777 });
    const order = [...Array(choices).keys()].sort(() => Math.random() - 0.5);
    for (const k of order) {
        const off = PORT_LOW - lo + k * SLOT;
        const slots = [...new Set(all.map((p) => Math.floor((p + off - PORT_LOW) / SLOT)))];
        const files = [];
        for (const s of slots) {
            const file = path.join(slotDir, `slot-${s}`);
            if (!claimSlot(file)) break;
            files.push(file);
        }
        if (files.length === slots.length && (await Promise.all(all.map((p) => portFree(p + off)))).every(Boolean)) {
            held.set(off, files);
            return off;
        }
        for (const f of files) fs.rmSync(f, { force: true });
    }
    throw new Error('no free port range found');
}

export function releaseOffset(off) {
    for (const f of held.get(off) ?? []) fs.rmSync(f, { force: true });
    held.delete(off);
}

process.on('exit', () => {
    for (const off of held.keys()) releaseOffset(off);
});

// The scale-out run of a suite: AGORA_TEST_BACKENDS=postgres,rabbitmq and
// AGORA_TEST_SCALE=orders=2,catalog=2 (set by CMake for the tests/e2e
// suites run a second time on the real engines) become `agora up
// --backends/--scale` for every shop a test starts, unless it asks
// otherwise.
export const TEST_BACKENDS = process.env.AGORA_TEST_BACKENDS || '';
export const TEST_SCALE = process.env.AGORA_TEST_SCALE || '';

// The extra ports `agora up` takes for 'scale' ("orders=2,...": instance k
// on the port + (k-1)*1000) and 'backends' (PostgreSQL 8432, RabbitMQ 8672
// with its epmd and distribution ports 8673 and 8674).
export function extraPorts(scale, backends) {
    const extra = [];
    for (const item of scale ? scale.split(',') : []) {
        const [name, count] = item.split('=');
        const base = SHOP_PORTS[name];
        for (let k = 2; k <= Number(count); k++) extra.push(base + (k - 1) * 1000);
    }
    if (backends.includes('postgres')) extra.push(8432);
    if (backends.includes('rabbitmq')) extra.push(8672, 8673, 8674); // AMQP, epmd, distribution
    return extra;
}

export async function startShop({ env: extraEnv = {}, offset, timeoutMs = 90_000, backends = TEST_BACKENDS, scale = TEST_SCALE } = {}) {
    const off = offset ?? (await findOffset(Object.values(SHOP_PORTS), extraPorts(scale, backends)));
    // An offset claimed here is let go when this shop has stopped.
    const release = offset === undefined ? () => releaseOffset(off) : () => {};
    const data = makeTempDir('agora-shop-');
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('AGORA_') && k !== 'AGORA_BUILD_DIR' && k !== 'AGORA_SOURCE_DIR') delete env[k];
    Object.assign(env, { AGORA_DURABILITY: 'normal', AGORA_USERS_ARGON2_MEMLIMIT: '19MiB' }, extraEnv);
    const agora = path.join(buildDir(), 'cli', 'agora');
    const args = ['up', '--build', buildDir(), '--data', data, '--source', sourceDir(), '--port-offset', String(off)];
    if (backends) args.push('--backends', backends);
    if (scale) args.push('--scale', scale);
    const child = spawn(agora, args, {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b) => {
        stderr += b.toString();
    });
    const exited = new Promise((resolve) =>
        child.on('exit', (code, signal) => {
            release();
            resolve({ code, signal });
        }),
    );
    await waitFor(() => stderr.includes('Agora is up') || child.exitCode !== null, { timeoutMs, intervalMs: 50, message: 'agora up' });
    if (!stderr.includes('Agora is up')) {
        // The first error says why (the rest is the orderly stop).
        const first = stderr.split('\n').find((l) => l.includes('"level":"error"') || l.startsWith('agora:')) ?? '';
        throw new Error(`agora up did not come up: ${first}\n${stderr.slice(-4000)}`);
    }
    const url = (name) => `http://127.0.0.1:${SHOP_PORTS[name] + off}`;
    const key = fs.readFileSync(path.join(data, 'internal.key'), 'utf8').trim();
    // The supervisor's master of service keys (only it reads the file).
    const serviceMaster = fs.readFileSync(path.join(data, 'service.key'), 'utf8').trim();
    return {
        off,
        data,
        child,
        exited,
        url,
        gw: url('gateway'),
        ops: url('gatewayOps'),
        key,
        serviceMaster,
        // A getter: a service identity is valid ten minutes.
        get operator() {
            return { 'x-agora-identity': identityHeader({ ...OPERATOR, key: serviceMaster }) };
        },
        adminPassword: fs.readFileSync(path.join(data, 'admin-password'), 'utf8').trim(),
        stderr: () => stderr,
        // The pid of this shop's 'service' process: the one running the
        // program's binary with this shop's data directory (never another
        // shop's, never anything else); 0 when there is none.
        // Every instance's pid of 'service' (--scale runs several).
        pidsOf(service) {
            const program = PROGRAMS.find((x) => x.name === service);
            const exe = fs.realpathSync(path.join(buildDir(), program.binary));
            const found = [];
            for (const d of fs.readdirSync('/proc')) {
                if (!/^\d+$/.test(d)) continue;
                try {
                    if (fs.readlinkSync(`/proc/${d}/exe`) !== exe) continue;
                    if (fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(`AGORA_DATA_DIR=${data}`)) found.push(Number(d));
                } catch {
                    // gone meanwhile
                }
            }
            return found;
        },
        // The processes of the engines under --backends (PostgreSQL's
        // postmaster and backends, RabbitMQ's Erlang VM and epmd), by
        // 'postgres' and 'rabbitmq': those whose command line names this
        // shop's engines/ directory, and their descendants.
        enginePids() {
            const parent = new Map();
            const roots = { postgres: [], rabbitmq: [] };
            for (const d of fs.readdirSync('/proc')) {
                if (!/^\d+$/.test(d)) continue;
                try {
                    const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
                    parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
                    const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
                    for (const k of Object.keys(roots)) if (cmd.includes(path.join(data, 'engines', k))) roots[k].push(Number(d));
                } catch {
                    // gone meanwhile
                }
            }
            const out = {};
            for (const [k, rs] of Object.entries(roots)) {
                const set = new Set(rs);
                for (let grew = true; grew; ) {
                    grew = false;
                    for (const [pid, pp] of parent) {
                        if (set.has(pp) && !set.has(pid)) {
                            set.add(pid);
                            grew = true;
                        }
                    }
                }
                out[k] = [...set];
            }
            return out;
        },
        pidOf(service) {
            const program = PROGRAMS.find((x) => x.name === service);
            const exe = fs.realpathSync(path.join(buildDir(), program.binary));
            const found = [];
            for (const d of fs.readdirSync('/proc')) {
                if (!/^\d+$/.test(d)) continue;
                try {
                    if (fs.readlinkSync(`/proc/${d}/exe`) !== exe) continue;
                    if (fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(`AGORA_DATA_DIR=${data}`)) found.push(Number(d));
                } catch {
                    // gone meanwhile, or not ours to read
                }
            }
            // Several instances (--scale): the first one.
            if (found.length > 1) {
                const first = found.filter((pid) => fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`AGORA_INSTANCE_ID=${service}-1`));
                if (first.length !== 1) throw new Error(`${found.length} ${service} processes of one shop`);
                return first[0];
            }
            return found[0] ?? 0;
        },
        async stop(timeout = 30_000) {
            if (child.exitCode !== null || child.signalCode !== null) return exited;
            child.kill('SIGTERM');
            let timer;
            const late = new Promise((r) => {
                timer = setTimeout(() => r(null), timeout);
            });
            // The timer must not keep the test process alive once it exited.
            return Promise.race([exited, late]).finally(() => clearTimeout(timer));
        },
        // For a test that failed half-way: SIGTERM, so the supervisor stops
        // its programs (a SIGKILLed supervisor would leave them running),
        // and SIGKILL only if it has not exited within 20 s.
        async kill() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            if ((await this.stop(20_000)) === null) child.kill('SIGKILL');
        },
    };
}
