// SPDX-License-Identifier: MIT
// Process helpers for black-box tests (component, end-to-end, chaos): start an
// Agora binary on a free port with a fresh data directory, collect its JSON log
// lines, wait for conditions with a deadline, stop it and clean up.
//
// Rules these helpers enforce (STYLE.md section 9):
//   - never sleep to synchronise: wait for an observable condition (waitFor);
//   - every process and temporary directory is released, even when a test
//     fails: stop() in after(), and an exit hook kills what is left.
//
// Typical use:
//   const svc = await startService('catalog', { env: { AGORA_ACCESS_LOG: 'true' } });
//   const res = await fetch(svc.url('/health'));
//   assert.deepEqual(await stop(svc), { code: 0, signal: null });

import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serviceKey, servicePubkeys, TEST_INTERNAL_KEY } from './identity.mjs';

// Default deadline for a process to log "listening".
export const START_TIMEOUT_MS = 20_000;
// Default deadline for a process to exit after a signal.
export const STOP_TIMEOUT_MS = 20_000;

const live = new Set(); // ServiceProcess objects not yet exited
const tempDirs = new Set(); // directories made by makeTempDir, not yet removed

process.on('exit', () => {
    for (const p of live) {
        try {
            p.child.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    for (const d of tempDirs) rmQuiet(d);
});

function rmQuiet(dir) {
    try {
        fs.rmSync(dir, { recursive: true, force: true });
    } catch {
        // best effort at exit
    }
}

// Make a fresh temporary directory (under os.tmpdir()) that is removed by
// removeTempDir(), cleanup() or, at the latest, when the test process exits.
export function makeTempDir(prefix = 'agora-test-') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    tempDirs.add(dir);
    return dir;
}

// Remove one directory made by makeTempDir (no-op for others).
export function removeTempDir(dir) {
    if (tempDirs.delete(dir)) rmQuiet(dir);
}

// Write 'value' as JSON to a new file in a temporary directory; returns its path.
export function writeJsonFile(value, name = 'data.json') {
    const file = path.join(makeTempDir('agora-json-'), name);
    fs.writeFileSync(file, JSON.stringify(value, null, 2));
    return file;
}

// The build directory: AGORA_BUILD_DIR (set by CTest), else <repo>/build.
export function buildDir() {
    return process.env.AGORA_BUILD_DIR || path.join(sourceDir(), 'build');
}

// The source directory: AGORA_SOURCE_DIR (set by CTest), else the cwd.
export function sourceDir() {
    return process.env.AGORA_SOURCE_DIR || process.cwd();
}

// Path of the executable of service or platform component 'name':
// <build>/services/<name>/<name>, else <build>/platform/<name>/<name>.
export function binaryPath(name) {
    const candidates = [
        path.join(buildDir(), 'services', name, name),
        path.join(buildDir(), 'platform', name, name),
    ];
    return candidates.find((p) => fs.existsSync(p)) ?? candidates[0];
}

// A child process started by spawnService/startService.
export class ServiceProcess {
    constructor(name, child, { dataDir, ownsDataDir, host }) {
        this.name = name; // "catalog"
        this.child = child; // node ChildProcess
        this.pid = child.pid;
        this.dataDir = dataDir; // AGORA_DATA_DIR
        this.ownsDataDir = ownsDataDir; // removed by cleanup()
        this.host = host; // address it listens on
        this.port = null; // known once "listening" was logged
        this.baseUrl = null; // "http://127.0.0.1:<port>"
        this.opsUrl = null; // the operator listener's base URL, when it has one
        this.lines = []; // every stderr line, raw
        this.entries = []; // every stderr line as { line, json } (json null if not JSON)
        this.stdout = ''; // everything written to stdout
        this.exitStatus = null; // { code, signal } once exited
        this._listeners = new Set();
        // 'close' rather than 'exit': stderr has then been read to its end,
        // so every log line is in this.lines when 'exited' resolves.
        this.exited = new Promise((resolve) => {
            const done = (status) => {
                if (this.exitStatus !== null) return;
                this.exitStatus = status;
                live.delete(this);
                this._notify();
                resolve(status);
            };
            child.on('close', (code, signal) => done({ code, signal }));
            child.on('error', (err) => {
                // spawn failure (ENOENT, EACCES): record it as a line and an exit
                this.lines.push(`spawn error: ${err.message}`);
                this.entries.push({ line: `spawn error: ${err.message}`, json: null });
                done({ code: null, signal: null, error: err });
            });
        });
        let partial = '';
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk) => {
            partial += chunk;
            let nl;
            while ((nl = partial.indexOf('\n')) >= 0) {
                this._addLine(partial.slice(0, nl));
                partial = partial.slice(nl + 1);
            }
        });
        child.stderr.on('end', () => {
            if (partial !== '') this._addLine(partial);
            partial = '';
        });
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk) => {
            this.stdout += chunk;
        });
    }

    _addLine(line) {
        let json = null;
        if (line.startsWith('{')) {
            try {
                json = JSON.parse(line);
            } catch {
                json = null;
            }
        }
        this.lines.push(line);
        this.entries.push({ line, json });
        this._notify();
    }

    _notify() {
        for (const fn of [...this._listeners]) fn();
    }

    // Call 'fn' after every new line and at exit, until it returns true.
    _watch(fn) {
        const wrapped = () => {
            if (fn()) this._listeners.delete(wrapped);
        };
        this._listeners.add(wrapped);
        wrapped();
        return () => this._listeners.delete(wrapped);
    }

    // The JSON log lines (objects), optionally filtered: 'filter' is a
    // predicate, or an object whose every key must equal the line's value
    // (e.g. { msg: 'request', request_id: 'abc' }).
    logs(filter) {
        const all = this.entries.filter((e) => e.json !== null).map((e) => e.json);
        if (filter === undefined) return all;
        if (typeof filter === 'function') return all.filter(filter);
        return all.filter((o) => Object.entries(filter).every(([k, v]) => o[k] === v));
    }

    // The stderr lines that are not JSON objects (should be none for a
    // healthy process; config errors and sanitizer reports end up here).
    nonJsonLines() {
        return this.entries.filter((e) => e.json === null && e.line !== '').map((e) => e.line);
    }

    // All of stderr as text; the last 'tail' lines when given.
    stderr(tail) {
        const lines = tail ? this.lines.slice(-tail) : this.lines;
        return lines.join('\n');
    }

    // Absolute URL of 'p' ("/v1/products?limit=1") on this process.
    url(p = '/') {
        if (this.baseUrl === null) throw new Error(`${this.name} is not listening`);
        return this.baseUrl + p;
    }

    // Send a signal without waiting (see stop() to wait for the exit).
    kill(signal = 'SIGTERM') {
        if (this.exitStatus === null) this.child.kill(signal);
    }
}

// Strip AGORA_* settings a developer's shell may have exported, so a test
// sees the binary's defaults plus what it sets itself.
function baseEnv() {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (k.startsWith('AGORA_') && k !== 'AGORA_BUILD_DIR' && k !== 'AGORA_SOURCE_DIR') continue;
        env[k] = v;
    }
    return env;
}

// Opt-in, to run a service's tests on PostgreSQL: with AGORA_TEST_PG_ENGINE
// set to "<cluster dir>:<port>" (a cluster scripts/engine-postgres started),
// every business service started gets the database of its data directory
// (made by `engine-postgres createdb`, so a restart on the same data
// directory finds its data again) through AGORA_DB_URL. Unset: SQLite.
const PG_SERVICES = new Set(['users', 'catalog', 'inventory', 'orders', 'payments', 'shipping',
    'notifications']);
function pgDatabaseFor(name, dataDir, env) {
    const engine = process.env.AGORA_TEST_PG_ENGINE;
    if (!engine || !PG_SERVICES.has(name) || env.AGORA_DB_URL !== undefined) return null;
    const sep = engine.lastIndexOf(':');
    const db = `t_${name}_${crypto.createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16)}`;
    const script = path.join(sourceDir(), 'scripts', 'engine-postgres');
    return execFileSync(script, ['createdb', engine.slice(0, sep), engine.slice(sep + 1), db],
        { encoding: 'utf8' }).trim();
}

// Spawn service 'name' without waiting for it to listen. Options:
//   env      extra environment (a value of undefined removes the variable);
//            defaults: AGORA_HTTP_HOST=127.0.0.1, AGORA_HTTP_PORT=0,
//            AGORA_DATA_DIR=<fresh temp dir>, AGORA_DURABILITY=normal,
//            AGORA_LOG_LEVEL=info, AGORA_INSTANCE_ID=<name>-test
//   binary   executable path (default binaryPath(name))
//   args     command-line arguments
//   dataDir  reuse this data directory (e.g. to restart on the same
//            database); it is then not removed by cleanup()
//   seed     seed data: an object (written to a temp JSON file) or a file
//            path, passed as AGORA_<NAME>_SEED
export function spawnService(name, opts = {}) {
    const binary = opts.binary ?? binaryPath(name);
    if (!fs.existsSync(binary)) {
        throw new Error(`${name}: no executable at ${binary} (build it first; AGORA_BUILD_DIR=${buildDir()})`);
    }
    const ownsDataDir = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? makeTempDir(`agora-${name}-`);
    const env = {
        ...baseEnv(),
        AGORA_HTTP_HOST: '127.0.0.1',
        AGORA_HTTP_PORT: '0',
        AGORA_DATA_DIR: dataDir,
        AGORA_DURABILITY: 'normal',
        AGORA_LOG_LEVEL: 'info',
        AGORA_INSTANCE_ID: `${name}-test`,
        AGORA_INTERNAL_KEY: TEST_INTERNAL_KEY,
        // Its own service key (derived from TEST_SERVICE_MASTER as the
        // supervisor derives it) and every test service's public key.
        AGORA_SERVICE_KEY: serviceKey(name),
        AGORA_SERVICE_PUBKEYS: servicePubkeys(),
        // The gateway's operator listener defaults to a fixed port: take a free one.
        ...(name === 'gateway' ? { AGORA_OPS_ADDRESS: '127.0.0.1:0' } : {}),
    };
    if (opts.seed !== undefined) {
        const file = typeof opts.seed === 'string' ? path.resolve(opts.seed) : writeJsonFile(opts.seed, 'seed.json');
        env[`AGORA_${name.toUpperCase().replace(/-/g, '_')}_SEED`] = file;
    }
    for (const [k, v] of Object.entries(opts.env ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = String(v);
    }
    const pgUrl = pgDatabaseFor(name, dataDir, env);
    if (pgUrl !== null) env.AGORA_DB_URL = pgUrl;
    const child = spawn(binary, opts.args ?? [], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: opts.cwd ?? dataDir,
    });
    const proc = new ServiceProcess(name, child, {
        dataDir,
        ownsDataDir,
        host: env.AGORA_HTTP_HOST,
    });
    live.add(proc);
    return proc;
}

// Spawn service 'name' (options as spawnService, plus timeoutMs) and resolve
// with its ServiceProcess once it logged {"msg":"listening","port":N}; the
// port and baseUrl are then set. Rejects, with the collected stderr in the
// message, if the process exits first or the deadline passes (the process
// is then killed).
export async function startService(name, opts = {}) {
    const proc = spawnService(name, opts);
    const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
    let unwatch = () => {};
    let timer;
    try {
        await new Promise((resolve, reject) => {
            timer = setTimeout(() => {
                reject(new Error(`${name} did not log "listening" within ${timeoutMs} ms; stderr:\n${proc.stderr(60)}`));
            }, timeoutMs);
            unwatch = proc._watch(() => {
                const line = proc.logs((o) => o.msg === 'listening' && Number.isInteger(o.port))[0];
                if (line) {
                    proc.port = line.port;
                    const host = line.address && line.address !== '0.0.0.0' ? line.address : proc.host;
                    proc.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${line.port}`;
                    // The operator listener (AGORA_OPS_ADDRESS), logged before "listening".
                    const ops = proc.logs((o) => o.msg === 'ops listening' && Number.isInteger(o.port))[0];
                    if (ops) proc.opsUrl = `http://${ops.address}:${ops.port}`;
                    resolve();
                    return true;
                }
                if (proc.exitStatus !== null) {
                    const { code, signal, error } = proc.exitStatus;
                    const why = error ? error.message : `exited with code ${code} signal ${signal}`;
                    reject(new Error(`${name} ${why} before listening; stderr:\n${proc.stderr(60)}`));
                    return true;
                }
                return false;
            });
        });
    } catch (err) {
        if (proc.exitStatus === null) {
            proc.child.kill('SIGKILL');
            await proc.exited;
        }
        await cleanup(proc);
        throw err;
    } finally {
        clearTimeout(timer);
        unwatch();
    }
    return proc;
}

// Poll 'predicate' (sync or async) every intervalMs until it returns a truthy
// value, and resolve with that value. Rejects after timeoutMs with 'message'
// and the last error the predicate threw, if any. The ONLY sanctioned way
// for a test to wait for something to happen.
export async function waitFor(predicate, { timeoutMs = 10_000, intervalMs = 25, message = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastErr = null;
    for (;;) {
        try {
            const v = await predicate();
            if (v) return v;
            lastErr = null;
        } catch (err) {
            lastErr = err;
        }
        if (Date.now() >= deadline) {
            const why = lastErr ? `; last error: ${lastErr.stack ?? lastErr}` : '';
            throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms${why}`);
        }
        await new Promise((r) => setTimeout(r, intervalMs));
    }
}

// Wait until some log line of 'proc' matches 'filter' (as in proc.logs) and
// resolve with the first such line.
export function waitForLog(proc, filter, { timeoutMs = 10_000, message } = {}) {
    return waitFor(() => proc.logs(filter)[0], {
        timeoutMs,
        intervalMs: 10,
        message: message ?? `${proc.name} log line ${typeof filter === 'function' ? filter : JSON.stringify(filter)}`,
    });
}

// Resolve with { code, signal } once 'proc' exited; rejects after timeoutMs
// (the process is left running; stop() kills it).
export async function waitExit(proc, { timeoutMs = STOP_TIMEOUT_MS } = {}) {
    let timer;
    try {
        return await Promise.race([
            proc.exited,
            new Promise((_, reject) => {
                timer = setTimeout(
                    () => reject(new Error(`${proc.name} did not exit within ${timeoutMs} ms; stderr:\n${proc.stderr(40)}`)),
                    timeoutMs,
                );
            }),
        ]);
    } finally {
        clearTimeout(timer);
    }
}

// Send 'signal' to 'proc' and resolve with { code, signal } once it exited
// (immediately, sending nothing, if it already had). To wait for a process
// already signalled use waitExit: a second SIGTERM may make it exit at once. If it has not exited after timeoutMs it
// is killed with SIGKILL and the promise rejects with its stderr. Does not
// remove the data directory (a test may restart on it): see cleanup().
export async function stop(proc, signal = 'SIGTERM', { timeoutMs = STOP_TIMEOUT_MS } = {}) {
    if (proc.exitStatus !== null) return strip(proc.exitStatus);
    proc.child.kill(signal);
    try {
        return strip(await waitExit(proc, { timeoutMs }));
    } catch (err) {
        proc.child.kill('SIGKILL');
        await proc.exited;
        throw err;
    }
}

function strip({ code, signal }) {
    return { code, signal };
}

// Kill 'proc' if still running (SIGKILL, no waiting beyond its exit) and
// remove the data directory it owns. Without an argument: every temporary
// directory made by these helpers. Safe to call twice.
export async function cleanup(proc) {
    if (proc === undefined) {
        for (const p of [...live]) await cleanup(p);
        for (const d of [...tempDirs]) removeTempDir(d);
        return;
    }
    if (proc.exitStatus === null) {
        proc.child.kill('SIGKILL');
        await proc.exited;
    }
    if (proc.ownsDataDir) removeTempDir(proc.dataDir);
}
