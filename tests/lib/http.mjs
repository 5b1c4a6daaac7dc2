// SPDX-License-Identifier: MIT
// HTTP helpers for black-box tests: a small JSON client over fetch, checks
// for RFC 9457 problem responses (DESIGN.md section 3), a Prometheus text
// parser for /metrics, a raw socket client for what fetch cannot do (half
// sent requests, watching a connection close), and bounded concurrency.

import assert from 'node:assert/strict';
import net from 'node:net';
import { identityHeader, TEST_ADMIN_ID } from './identity.mjs';

// Response of Client.request: status, headers (a fetch Headers), text (the
// whole body), json (the parsed body when the Content-Type is JSON and it
// parses, else undefined) and contentType ('' when absent).
export class Res {
    constructor(status, headers, text) {
        this.status = status;
        this.headers = headers;
        this.text = text;
        this.contentType = headers.get('content-type') ?? '';
        this.json = undefined;
        if (/\bjson\b/i.test(this.contentType) && text !== '') {
            try {
                this.json = JSON.parse(text);
            } catch {
                this.json = undefined;
            }
        }
    }

    // Header value or null.
    header(name) {
        return this.headers.get(name);
    }
}

// A client for one base URL ("http://127.0.0.1:1234") or one ServiceProcess
// (tests/lib/proc.mjs). Every method resolves with a Res once the whole body
// has been read. With a process, a failed request whose cause is the process
// dying (crash, sanitizer report) is rethrown with its exit status and the
// tail of its stderr, so the failure shows why.
//
// 'identity' is who the caller is, as the gateway would vouch for it with
// X-Agora-Identity (tests/lib/identity.mjs): { userId, roles }. A client made
// for a process defaults to an administrator; pass identity: null for an
// anonymous caller.
export class Client {
    constructor(target, { headers = {}, identity } = {}) {
        this.proc = typeof target === 'string' ? null : target;
        this.baseUrl = typeof target === 'string' ? target : target.baseUrl;
        this.defaultHeaders = headers;
        this.identity = identity === undefined ? (this.proc ? { userId: TEST_ADMIN_ID, roles: ['admin'] } : null) : identity;
    }

    // request('POST', '/v1/products', { json, body, headers, contentType }):
    // 'json' is serialised with Content-Type application/json (or
    // 'contentType' when given); 'body' is sent as is.
    async request(method, path, { json, body, headers = {}, contentType } = {}) {
        const h = { ...this.defaultHeaders, ...headers };
        if (this.identity && h['x-agora-identity'] === undefined) h['x-agora-identity'] = identityHeader(this.identity);
        let payload = body;
        if (json !== undefined) {
            payload = JSON.stringify(json);
            h['content-type'] = contentType ?? 'application/json';
        } else if (contentType !== undefined) {
            h['content-type'] = contentType;
        }
        try {
            const r = await fetch(this.baseUrl + path, { method, headers: h, body: payload });
            const text = await r.text();
            return new Res(r.status, r.headers, text);
        } catch (err) {
            throw await this._explain(err, `${method} ${path}`);
        }
    }

    // Add the process's exit status and stderr to 'err' if it died (waiting
    // up to 2 s for the exit to be reported).
    async _explain(err, what) {
        if (this.proc === null) return err;
        let timer;
        const st = await Promise.race([
            this.proc.exited,
            new Promise((r) => {
                timer = setTimeout(() => r(null), 2000);
            }),
        ]);
        clearTimeout(timer);
        if (st === null) return err;
        const e = new Error(
            `${what} failed (${errorCode(err) ?? err.message}): ${this.proc.name} exited with code ${st.code}, signal ${st.signal}; stderr:\n${this.proc.stderr(40)}`,
            { cause: err },
        );
        return e;
    }

    get(path, opts) {
        return this.request('GET', path, opts);
    }

    post(path, json, opts = {}) {
        return this.request('POST', path, { ...opts, json });
    }

    patch(path, json, opts = {}) {
        return this.request('PATCH', path, { ...opts, json });
    }

    put(path, json, opts = {}) {
        return this.request('PUT', path, { ...opts, json });
    }

    delete(path, opts) {
        return this.request('DELETE', path, opts);
    }
}

// Shorthand: new Client(baseUrlOrProcess, opts).
export function client(target, opts) {
    return new Client(target, opts);
}

// Assert that 'res' is an RFC 9457 problem with HTTP status 'status':
// Content-Type application/problem+json, type "urn:agora:problem:<slug>"
// (equal to opts.type when given), non-empty title, matching status, a
// detail string, an instance string (the request path, when opts.path is
// given) and request_id equal to the X-Request-ID response header.
// Returns the problem object.
export function expectProblem(res, status, opts = {}) {
    const ctx = `${res.status} ${res.text.slice(0, 500)}`;
    assert.equal(res.status, status, `expected status ${status}, got ${ctx}`);
    // Collect every deviation, so one failure names them all.
    const bad = [];
    if (!/^application\/problem\+json\b/.test(res.contentType)) bad.push(`Content-Type '${res.contentType}'`);
    const p = res.json;
    assert.ok(p && typeof p === 'object', `problem body is a JSON object: ${ctx}`);
    if (!/^urn:agora:problem:[a-z0-9]+(-[a-z0-9]+)*$/.test(String(p.type))) bad.push(`type ${JSON.stringify(p.type)}`);
    if (opts.type !== undefined && p.type !== opts.type) bad.push(`type ${JSON.stringify(p.type)} is not ${opts.type}`);
    if (typeof p.title !== 'string' || p.title === '') bad.push('no title');
    if (p.status !== status) bad.push(`status field ${JSON.stringify(p.status)}`);
    if (typeof p.detail !== 'string') bad.push('no detail');
    if (typeof p.instance !== 'string') bad.push('no instance');
    else if (opts.path !== undefined && p.instance.split('?')[0] !== opts.path.split('?')[0]) {
        bad.push(`instance ${JSON.stringify(p.instance)} is not ${opts.path}`);
    }
    const rid = res.header('x-request-id');
    if (!rid) bad.push('no X-Request-ID header');
    if (typeof p.request_id !== 'string' || p.request_id === '') bad.push('no request_id');
    else if (rid && p.request_id !== rid) bad.push(`request_id ${p.request_id} is not the X-Request-ID ${rid}`);
    assert.deepEqual(bad, [], `problem response deviates from RFC 9457 / DESIGN.md 3: ${ctx}`);
    return p;
}

// Field names of a validation problem's "errors" list, normalised to dotted
// form ("/price/amount" and "price.amount" both give "price.amount"). Also
// asserts that each entry has string field, code and detail.
export function errorFields(problem) {
    assert.ok(Array.isArray(problem.errors), `problem has an errors list: ${JSON.stringify(problem)}`);
    return problem.errors.map((e) => {
        assert.equal(typeof e.field, 'string', `error field: ${JSON.stringify(e)}`);
        assert.equal(typeof e.code, 'string', `error code: ${JSON.stringify(e)}`);
        assert.equal(typeof e.detail, 'string', `error detail: ${JSON.stringify(e)}`);
        return e.field.replace(/^\//, '').replace(/\//g, '.');
    });
}

// Parse Prometheus text format 0.0.4 into samples
// [{ name, labels: { k: v }, value }] (comments and blank lines skipped).
export function parseMetrics(text) {
    const out = [];
    for (const raw of text.split('\n')) {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
        if (!m) throw new Error(`unparsable metrics line: ${line}`);
        const labels = {};
        if (m[3]) {
            const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
            let lm;
            let consumed = 0;
            while ((lm = re.exec(m[3])) !== null) {
                labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
                consumed = re.lastIndex;
            }
            if (consumed !== m[3].length) throw new Error(`unparsable labels: ${line}`);
        }
        const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
        out.push({ name: m[1], labels, value: v });
    }
    return out;
}

// Sum of the values of samples named 'name' whose labels include every
// entry of 'labels' (0 when none match).
export function metricValue(samples, name, labels = {}) {
    return samples
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((a, s) => a + s.value, 0);
}

// The error code of a failed fetch or socket call, following err.cause
// ("ECONNREFUSED", "ECONNRESET", "UND_ERR_SOCKET", ...), or null.
export function errorCode(err) {
    for (let e = err; e; e = e.cause) {
        if (e.code) return e.code;
    }
    return null;
}

// A raw TCP connection speaking just enough HTTP/1.1 to send arbitrary bytes
// (partial requests, pipelining) and read responses. Not for general use:
// fetch is simpler for whole requests.
export class RawConnection {
    constructor(socket) {
        this.socket = socket;
        this.buf = Buffer.alloc(0);
        this.closed = false; // the peer closed or the socket failed
        this.error = null;
        this._waiters = [];
        socket.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this._wake();
        });
        socket.on('end', () => {
            this.closed = true;
            this._wake();
        });
        socket.on('close', () => {
            this.closed = true;
            this._wake();
        });
        socket.on('error', (err) => {
            this.error = err;
            this.closed = true;
            this._wake();
        });
    }

    // Connect to host:port; resolves once connected, rejects on error.
    static open(port, host = '127.0.0.1') {
        return new Promise((resolve, reject) => {
            const s = net.connect({ port, host });
            s.once('connect', () => {
                s.removeListener('error', reject);
                resolve(new RawConnection(s));
            });
            s.once('error', reject);
        });
    }

    _wake() {
        for (const w of this._waiters.splice(0)) w();
    }

    _changed() {
        return new Promise((r) => this._waiters.push(r));
    }

    // Write a string or Buffer; resolves once handed to the kernel.
    write(data) {
        return new Promise((resolve, reject) => {
            this.socket.write(data, (err) => (err ? reject(err) : resolve()));
        });
    }

    // Read one response: { status, headers (lower-case names), body (string) }.
    // Skips 1xx responses. Rejects if the connection closes first or after
    // timeoutMs.
    async readResponse({ timeoutMs = 10_000 } = {}) {
        let timer;
        const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => {
                reject(new Error(`no complete response within ${timeoutMs} ms; got: ${this.buf.toString('latin1').slice(0, 300)}`));
            }, timeoutMs);
        });
        try {
            for (;;) {
                const r = this._parse();
                if (r && r.status >= 200) return r;
                if (r) continue; // a 1xx, consumed
                if (this.closed) {
                    const why = this.error ? ` (${this.error.code ?? this.error.message})` : '';
                    throw new Error(`connection closed before a complete response${why}; got: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
                }
                await Promise.race([this._changed(), timeout]);
            }
        } finally {
            clearTimeout(timer);
        }
    }

    // Parse one response off the front of the buffer, or return null if it
    // is not complete yet.
    _parse() {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return null;
        const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0])?.[1]);
        if (!status) throw new Error(`bad status line: ${head[0]}`);
        const headers = {};
        for (const l of head.slice(1)) {
            const i = l.indexOf(':');
            headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        let rest = this.buf.subarray(end + 4);
        let body;
        if (status < 200 || status === 204 || status === 304) {
            body = Buffer.alloc(0);
        } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
            const parts = [];
            let off = 0;
            for (;;) {
                const le = rest.indexOf('\r\n', off);
                if (le < 0) return null;
                const size = parseInt(rest.subarray(off, le).toString('latin1'), 16);
                if (rest.length < le + 2 + size + 2) return null;
                if (size === 0) {
                    const te = rest.indexOf('\r\n\r\n', le);
                    if (te < 0) return null;
                    rest = rest.subarray(te + 4);
                    break;
                }
                parts.push(rest.subarray(le + 2, le + 2 + size));
                off = le + 2 + size + 2;
            }
            body = Buffer.concat(parts);
            this.buf = rest;
            return { status, headers, body: body.toString('utf8') };
        } else if (headers['content-length'] !== undefined) {
            const n = Number(headers['content-length']);
            if (rest.length < n) return null;
            body = rest.subarray(0, n);
            rest = rest.subarray(n);
        } else {
            if (!this.closed) return null; // delimited by close
            body = rest;
            rest = Buffer.alloc(0);
        }
        this.buf = rest;
        return { status, headers, body: body.toString('utf8') };
    }

    // Stop reading from the socket (data stays in the kernel, so the peer's
    // writes back up); resume() starts again.
    pause() {
        this.socket.pause();
    }

    resume() {
        this.socket.resume();
    }

    // Resolve once the peer closed the connection (or it failed).
    async whenClosed() {
        while (!this.closed) await this._changed();
    }

    // Close our side and release the socket.
    close() {
        this.socket.destroy();
    }
}

// Run fn(item, index) over 'items' with at most 'limit' calls in flight;
// resolves with the results in order (rejects on the first failure).
export async function mapConcurrent(items, limit, fn) {
    const results = new Array(items.length);
    let next = 0;
    async function worker() {
        while (next < items.length) {
            const i = next++;
            results[i] = await fn(items[i], i);
        }
    }
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
}
