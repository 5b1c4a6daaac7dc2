// SPDX-License-Identifier: MIT
// Component tests of the chassis HTTP/1.1 server (http_server.h), driving
// chassis/testd_http over raw TCP sockets: framing, keep-alive, pipelining,
// strict rejection of ambiguous requests, limits, timeouts, connection cap,
// client disconnects and graceful stop. Each daemon must exit 0 on SIGTERM
// with no sanitizer report.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';

const BUILD = process.env.AGORA_BUILD_DIR;
const DAEMON = BUILD ? path.join(BUILD, 'chassis', 'testd_http') : null;
const WAIT_MS = 5000;
const IMF_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

// ---- Helpers ----------------------------------------------------------------

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function startDaemon(env = {}) {
  assert.ok(DAEMON, 'AGORA_BUILD_DIR must point at the build directory');
  const proc = spawn(DAEMON, [], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = { proc, port: 0, stderr: '' };
  proc.stderr.on('data', (b) => { d.stderr += b; });
  d.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  d.port = await withDeadline(new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (b) => {
      out += b;
      const m = /^PORT (\d+)\n/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`testd_http exited (${code}): ${d.stderr}`)));
  }), WAIT_MS, 'the PORT line');
  return d;
}

// SIGTERM and require a clean exit: status 0 and no ASan/UBSan/LSan report.
async function stopDaemon(d) {
  // One SIGTERM only: a second one after the daemon closed its signal
  // handles (while exiting) would kill it.
  if (!d.termSent) terminate(d);
  const { code, signal } = await withDeadline(d.exited, 20000, 'daemon exit');
  assert.equal(signal, null, `killed by ${signal}: ${d.stderr}`);
  assert.equal(code, 0, `exit status ${code}: ${d.stderr}`);
  assert.doesNotMatch(d.stderr, /Sanitizer|runtime error/);
}

function terminate(d) {
  d.termSent = true;
  d.proc.kill('SIGTERM');
}

// Parse one response at the start of 'buf'; null while incomplete.
function parseResponse(buf, { head = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(lines[0]);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers = {};
  const rawHeaders = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    rawHeaders.push([name, value]);
    headers[name] = value;
  }
  let len = 0;
  if (!(status < 200 || status === 204 || status === 304 || head)) {
    if (headers['content-length'] === undefined) throw new Error('response without Content-Length');
    len = Number(headers['content-length']);
  }
  if (buf.length < end + 4 + len) return null;
  const body = buf.subarray(end + 4, end + 4 + len);
  return { res: { status, reason: m[2], headers, rawHeaders, body, text: body.toString('latin1') }, used: end + 4 + len };
}

class Client {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.closed = false;
    this.error = null;
    this.waiters = new Set();
    sock.on('data', (b) => { this.buf = Buffer.concat([this.buf, b]); this.notify(); });
    sock.on('end', () => { this.ended = true; this.notify(); });
    sock.on('close', () => { this.closed = true; this.notify(); });
    sock.on('error', (e) => { this.error = e; this.notify(); });
  }

  static async connect(port, { allowHalfOpen = false } = {}) {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    const c = new Client(sock);
    await withDeadline(new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    }), WAIT_MS, 'connect');
    return c;
  }

  notify() { for (const w of [...this.waiters]) w(); }

  // Resolve with check()'s first non-undefined value; re-checked on every
  // socket event, rejected at the deadline.
  waitFor(check, what, ms = WAIT_MS) {
    return withDeadline(new Promise((resolve, reject) => {
      const w = () => {
        let v;
        try { v = check(); } catch (e) { this.waiters.delete(w); reject(e); return; }
        if (v !== undefined) { this.waiters.delete(w); resolve(v); }
      };
      this.waiters.add(w);
      w();
    }), ms, what).finally(() => this.waiters.clear());
  }

  write(data) { this.sock.write(data); }

  response(opts = {}, ms = WAIT_MS) {
    return this.waitFor(() => {
      const p = parseResponse(this.buf, opts);
      if (p) { this.buf = this.buf.subarray(p.used); return p.res; }
      if (this.ended || this.closed) {
        throw new Error(`connection closed before a full response (${this.buf.length} bytes: ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))})`);
      }
      return undefined;
    }, 'a response', ms);
  }

  async responses(n, opts = {}) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.response(opts));
    return out;
  }

  // The server closed its side (FIN or reset).
  serverClosed(ms = WAIT_MS) {
    return this.waitFor(() => (this.ended || this.closed ? true : undefined), 'the server to close', ms);
  }

  destroy() { this.sock.destroy(); }
}

async function request(port, raw, opts = {}) {
  const c = await Client.connect(port);
  c.write(raw);
  const res = await c.response(opts);
  return { c, res };
}

function get(target, extra = '') {
  return `GET ${target} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;
}

function assertProblem(res, status, slug) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers['content-type'], 'application/problem+json');
  assert.equal(res.headers.connection, 'close');
  const p = JSON.parse(res.text);
  assert.equal(p.type, `urn:agora:problem:${slug}`);
  assert.equal(p.status, status);
  assert.equal(typeof p.title, 'string');
  assert.ok(p.title.length > 0);
  assert.equal(typeof p.detail, 'string');
}

async function stats(port) {
  const { c, res } = await request(port, get('/stats', 'Connection: close\r\n'));
  c.destroy();
  assert.equal(res.status, 200);
  return JSON.parse(res.text);
}

// Wait until 'n' requests besides the /stats probes were handed to the
// handler since a /stats answer that reported 'base' requests.
async function waitHandled(port, base, n) {
  let probes = 0;
  await withDeadline((async () => {
    for (;;) {
      probes++;
      const s = await stats(port);
      if (s.requests - base - probes >= n) return;
    }
  })(), WAIT_MS, `${n} requests to reach the handler`);
}

// ---- Protocol ---------------------------------------------------------------

describe('http server: protocol', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      TESTD_MAX_BODY: '4096',
      TESTD_MAX_LINE: '1024',
      TESTD_MAX_HEADER_BYTES: '4096',
      TESTD_MAX_HEADERS: '20',
    });
  });
  after(() => { if (d && d.proc.exitCode === null) d.proc.kill('SIGKILL'); });

  test('GET /echo answers the parsed request as JSON with Date and Content-Length', async () => {
    const { c, res } = await request(d.port, get('/echo?x=1&y=2', 'X-Spaced: \t  padded value \t\r\n'));
    assert.equal(res.status, 200);
    assert.equal(res.reason, 'OK');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(Number(res.headers['content-length']), res.body.length);
    assert.match(res.headers.date, IMF_DATE);
    assert.equal(res.headers['x-echo'], '1');
    assert.equal(res.headers['x-bad'], undefined, 'CR/LF in a header value must be refused');
    assert.equal(res.headers.connection, undefined);
    const e = JSON.parse(res.text);
    assert.equal(e.method, 'GET');
    assert.equal(e.target, '/echo?x=1&y=2');
    assert.equal(e.path, '/echo');
    assert.equal(e.query, 'x=1&y=2');
    assert.equal(e.version, '1.1');
    assert.equal(e.body, '');
    assert.deepEqual(e.headers, [['Host', 'test'], ['X-Spaced', 'padded value']]);
    c.destroy();
  });

  test('unknown path is 404', async () => {
    const { c, res } = await request(d.port, get('/nope'));
    assert.equal(res.status, 404);
    assert.equal(res.text, 'not found\n');
    c.destroy();
  });

  test('keep-alive: one socket carries several requests', async () => {
    const c = await Client.connect(d.port);
    const ids = [];
    for (let i = 0; i < 3; i++) {
      c.write(get(`/echo?i=${i}`));
      const res = await c.response();
      assert.equal(res.status, 200);
      const e = JSON.parse(res.text);
      assert.equal(e.query, `i=${i}`);
      ids.push(e.id);
    }
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `ids increase: ${ids}`);
    assert.equal(c.ended, false);
    c.destroy();
  });

  test('Connection: close is honoured', async () => {
    const { c, res } = await request(d.port, get('/echo', 'Connection: close\r\n'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    await c.serverClosed();
    assert.equal(c.buf.length, 0);
  });

  test('HTTP/1.0 closes by default', async () => {
    const { c, res } = await request(d.port, 'GET /echo HTTP/1.0\r\n\r\n');
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.text).version, '1.0');
    assert.equal(res.headers.connection, 'close');
    await c.serverClosed();
  });

  test('HTTP/1.0 with Connection: keep-alive stays open', async () => {
    const c = await Client.connect(d.port);
    for (let i = 0; i < 2; i++) {
      c.write('GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      const res = await c.response();
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection, 'keep-alive');
    }
    c.write('GET /echo HTTP/1.0\r\n\r\n');
    assert.equal((await c.response()).headers.connection, 'close');
    await c.serverClosed();
  });

  test('pipelining: a slow first request is still answered first', async () => {
    const c = await Client.connect(d.port);
    c.write(get('/slow?ms=200') + get('/echo?second'));
    const [a, b] = await c.responses(2);
    assert.equal(a.status, 200);
    assert.equal(a.text, 'slow /slow?ms=200\n');
    assert.equal(b.status, 200);
    assert.equal(JSON.parse(b.text).query, 'second');
    c.destroy();
  });

  test('20 pipelined requests in one write are answered in order', async () => {
    const c = await Client.connect(d.port);
    let raw = '';
    for (let i = 0; i < 20; i++) raw += get(i % 3 === 0 ? `/slow?ms=${60 - 3 * i}&i=${i}` : `/echo?i=${i}`);
    c.write(raw);
    const res = await c.responses(20);
    res.forEach((r, i) => {
      assert.equal(r.status, 200);
      if (i % 3 === 0) assert.equal(r.text, `slow /slow?ms=${60 - 3 * i}&i=${i}\n`);
      else assert.equal(JSON.parse(r.text).query, `i=${i}`);
    });
    c.destroy();
  });

  test('2000 pipelined requests (past max_pipeline and one read) all answered in order', async () => {
    const c = await Client.connect(d.port);
    let raw = '';
    for (let i = 0; i < 2000; i++) raw += `GET /echo?i=${i} HTTP/1.1\r\nHost: h\r\n\r\n`;
    assert.ok(raw.length > 64 * 1024);
    c.write(raw);
    const res = await c.responses(2000);
    res.forEach((r, i) => assert.equal(JSON.parse(r.text).query, `i=${i}`));
    c.destroy();
  });

  test('100 pipelined async requests (over max_pipeline) complete in order', async () => {
    const c = await Client.connect(d.port);
    let raw = '';
    for (let i = 0; i < 100; i++) raw += get(`/slow?ms=${i % 5}&i=${i}`);
    c.write(raw);
    const res = await c.responses(100);
    res.forEach((r, i) => assert.equal(r.text, `slow /slow?ms=${i % 5}&i=${i}\n`));
    c.destroy();
  });

  test('a client resetting during a large response does not hurt the server', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await Client.connect(d.port);
      c.write(get('/big?n=8000000'));
      await c.waitFor(() => (c.buf.length > 0 ? true : undefined), 'the first response bytes');
      c.sock.resetAndDestroy();
    }
    const { c, res } = await request(d.port, get('/echo?alive'));
    assert.equal(JSON.parse(res.text).query, 'alive');
    c.destroy();
  });

  test('large pipelined responses arrive complete and in order', async () => {
    const c = await Client.connect(d.port);
    const sizes = [300000, 1, 700000, 50000, 2000000, 0, 123457];
    c.write(sizes.map((n) => get(`/big?n=${n}`)).join(''));
    const res = await c.responses(sizes.length);
    res.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.body.length, sizes[i]);
      for (const k of [0, Math.floor(sizes[i] / 2), sizes[i] - 1]) {
        if (k >= 0 && k < sizes[i]) assert.equal(r.body[k], 97 + (k % 26));
      }
    });
    c.destroy();
  });

  test('HEAD gets the would-be Content-Length and no body', async () => {
    const c = await Client.connect(d.port);
    c.write(`HEAD /big?n=100 HTTP/1.1\r\nHost: h\r\n\r\n` + get('/echo?after-head'));
    const h = await c.response({ head: true });
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], '100');
    assert.equal(h.body.length, 0);
    // The next bytes must be the next response, not a body.
    const e = await c.response();
    assert.equal(JSON.parse(e.text).query, 'after-head');
    c.destroy();
  });

  test('chunked body with extensions and trailers is de-chunked', async () => {
    const c = await Client.connect(d.port);
    c.write('POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
    c.write('5;name=value\r\nhello\r\n');
    c.write('1\r\n \r\n');
    c.write('5;a;b="q"\r\nworld\r\n');
    c.write('0\r\nX-Trailer: t\r\n\r\n');
    const res = await c.response();
    assert.equal(res.status, 200);
    const e = JSON.parse(res.text);
    assert.equal(e.method, 'POST');
    assert.equal(e.body, 'hello world');
    assert.ok(!e.headers.some(([n]) => n === 'X-Trailer'), 'trailer fields are not request headers');
    // The connection is still usable after a chunked body.
    c.write(get('/echo?next'));
    assert.equal(JSON.parse((await c.response()).text).query, 'next');
    c.destroy();
  });

  test('a request written one byte at a time is parsed', async () => {
    const c = await Client.connect(d.port);
    c.sock.setNoDelay(true);
    const raw = 'POST /echo?split HTTP/1.1\r\nHost: h\r\nX-Long-Header-Name: some value\r\nContent-Length: 5\r\n\r\nabcde';
    for (const ch of raw) c.write(ch);
    const res = await c.response();
    const e = JSON.parse(res.text);
    assert.equal(e.body, 'abcde');
    assert.deepEqual(e.headers[1], ['X-Long-Header-Name', 'some value']);
    c.destroy();
  });

  test('absolute-form target is routed by its path', async () => {
    const { c, res } = await request(d.port, 'GET http://example.com/echo?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n');
    assert.equal(res.status, 200);
    const e = JSON.parse(res.text);
    assert.equal(e.path, '/echo');
    assert.equal(e.query, 'q=1');
    assert.equal(e.target, 'http://example.com/echo?q=1');
    c.destroy();
  });

  test('OPTIONS * is accepted (asterisk-form)', async () => {
    const { c, res } = await request(d.port, 'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.equal(res.status, 404);
    assert.equal(c.ended, false);
    c.destroy();
  });

  test('Expect: 100-continue gets 100 before the body is sent', async () => {
    const c = await Client.connect(d.port);
    c.write('POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const cont = await c.response();
    assert.equal(cont.status, 100);
    assert.equal(cont.reason, 'Continue');
    c.write('hello');
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.text).body, 'hello');
    c.destroy();
  });

  test('Expect: 100-continue behind a pending response waits for it', async () => {
    const c = await Client.connect(d.port);
    c.write(get('/slow?ms=150') + 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
    const first = await c.response();
    assert.equal(first.text, 'slow /slow?ms=150\n');
    assert.equal((await c.response()).status, 100);
    c.write('ok');
    assert.equal(JSON.parse((await c.response()).text).body, 'ok');
    c.destroy();
  });

  test('Expect: 100-continue with too large a body gets 413, not 100', async () => {
    const { c, res } = await request(d.port, 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n');
    assertProblem(res, 413, 'payload-too-large');
    await c.serverClosed();
  });

  // Each must be answered 400 (problem+json) and the connection closed.
  const ambiguous = [
    ['Content-Length and Transfer-Encoding', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding and Content-Length', 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'],
    ['repeated equal Content-Length', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'],
    ['repeated different Content-Length', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['Content-Length list', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['Content-Length with a sign', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc'],
    ['Content-Length not a number', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n'],
    ['Content-Length with inner space', 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\nabcdefghijkl'],
    ['Transfer-Encoding gzip only', 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc'],
    ['chunked not final', 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
    ['chunked twice', 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding in HTTP/1.0', 'POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['space before colon', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n'],
    ['space before colon in Host', 'GET /echo HTTP/1.1\r\nHost : h\r\n\r\n'],
    ['tab before colon', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n'],
    ['obs-fold', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n'],
    ['obs-fold of a line with a colon', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two: three\r\n\r\n'],
    ['obs-fold with tab', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n'],
    ['obs-fold right after the request line', 'GET /echo HTTP/1.1\r\n X-A: one\r\nHost: h\r\n\r\n'],
    ['obs-fold of the last header', 'GET /echo HTTP/1.1\r\nHost: h\r\n\tX-A: one\r\n\r\n'],
    ['missing Host in HTTP/1.1', 'GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n'],
    ['two Host headers', 'GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['two Host headers in HTTP/1.0', 'GET /echo HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n'],
    ['NUL in a header value', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n'],
    ['NUL in the request line', 'GET /ec\0ho HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['bare CR in a header value', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n'],
    ['bare CR ending a line', 'GET /echo HTTP/1.1\rHost: h\r\n\r\n'],
    ['control character in a header value', 'GET /echo HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n'],
    ['header line without colon', 'GET /echo HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n'],
    ['invalid method token', 'G@T /echo HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['invalid version', 'GET /echo HTTP/1.x\r\nHost: h\r\n\r\n'],
    ['garbage instead of a version', 'GET /echo FOO/1.1\r\nHost: h\r\n\r\n'],
    ['asterisk-form outside OPTIONS', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['authority-form target', 'GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n'],
    ['relative target', 'GET echo HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['fragment in the target', 'GET /echo#frag HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['non-http scheme', 'GET ftp://example.com/echo HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['bad chunk size', 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
  ];
  for (const [name, raw] of ambiguous) {
    test(`400 and close: ${name}`, async () => {
      const { c, res } = await request(d.port, raw);
      assertProblem(res, 400, 'bad-request');
      assert.equal(res.reason, 'Bad Request');
      await c.serverClosed();
    });
  }

  test('a bad request after a good one: the good response first, then 400, then close', async () => {
    const c = await Client.connect(d.port);
    c.write(get('/slow?ms=100') + 'GET /echo HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n' + get('/echo?never'));
    const [a, b] = await c.responses(2);
    assert.equal(a.status, 200);
    assert.equal(a.headers.connection, undefined);
    assertProblem(b, 400, 'bad-request');
    await c.serverClosed();
    assert.equal(c.buf.length, 0, 'nothing after the 400');
  });

  test('transfer coding other than chunked before chunked is 501', async () => {
    const { c, res } = await request(d.port, 'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
    assertProblem(res, 501, 'not-implemented');
    await c.serverClosed();
  });

  // RFC 9110 9.1: a well-formed method the server does not know is 501
  // (methods are case-sensitive: "get" is not GET); a malformed one is 400.
  for (const [name, line] of [['FOO', 'FOO /echo HTTP/1.1'], ['lower-case get', 'get /echo HTTP/1.1'], ['BREW', 'BREW /echo HTTP/1.1']]) {
    test(`unknown method ${name} is 501`, async () => {
      const { c, res } = await request(d.port, `${line}\r\nHost: h\r\n\r\n`);
      assertProblem(res, 501, 'not-implemented');
      await c.serverClosed();
    });
  }

  // RFC 9110 2.5: a higher minor version is served as HTTP/1.1.
  test('HTTP/1.7 is served as HTTP/1.1', async () => {
    const c = await Client.connect(d.port);
    c.write('GET /echo HTTP/1.7\r\nHost: h\r\n\r\n' + get('/echo?second'));
    const [a, b] = await c.responses(2);
    assert.equal(a.status, 200);
    assert.equal(JSON.parse(a.text).version, '1.1', 'the handler sees HTTP/1.1');
    assert.equal(b.status, 200, 'kept alive as HTTP/1.1 would be');
    c.destroy();
  });

  for (const [name, line] of [['HTTP/2.0', 'GET /echo HTTP/2.0'], ['HTTP/0.9', 'GET /echo']]) {
    test(`unsupported version ${name} is 505`, async () => {
      const { c, res } = await request(d.port, `${line}\r\nHost: h\r\n\r\n`);
      assertProblem(res, 505, 'http-version-not-supported');
      await c.serverClosed();
    });
  }

  test('request line longer than max_request_line is 414', async () => {
    const { c, res } = await request(d.port, get(`/echo?${'a'.repeat(1100)}`));
    assertProblem(res, 414, 'uri-too-long');
    await c.serverClosed();
  });

  test('request line just under max_request_line is accepted', async () => {
    const target = `/echo?${'a'.repeat(1024 - 'GET  HTTP/1.1'.length - 6)}`;
    assert.equal(`GET ${target} HTTP/1.1`.length, 1024);
    const { c, res } = await request(d.port, get(target));
    assert.equal(res.status, 200);
    c.destroy();
  });

  test('header section larger than max_header_bytes is 431', async () => {
    let extra = '';
    for (let i = 0; i < 5; i++) extra += `X-Big-${i}: ${'v'.repeat(900)}\r\n`;
    const { c, res } = await request(d.port, get('/echo', extra));
    assertProblem(res, 431, 'request-header-fields-too-large');
    await c.serverClosed();
  });

  test('more than max_headers fields is 431; exactly max_headers is fine', async () => {
    const fields = (n) => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const ok = await request(d.port, get('/echo', fields(19)));
    assert.equal(ok.res.status, 200);
    assert.equal(JSON.parse(ok.res.text).headers.length, 20);
    ok.c.destroy();
    const { c, res } = await request(d.port, get('/echo', fields(20)));
    assertProblem(res, 431, 'request-header-fields-too-large');
    await c.serverClosed();
  });

  test('Content-Length over max_body_bytes is 413 before the body is sent', async () => {
    const { c, res } = await request(d.port, 'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4097\r\n\r\n');
    assertProblem(res, 413, 'payload-too-large');
    await c.serverClosed();
  });

  test('body of exactly max_body_bytes is accepted', async () => {
    const body = 'b'.repeat(4096);
    const { c, res } = await request(d.port, `POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4096\r\n\r\n${body}`);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.text).body, body);
    c.destroy();
  });

  test('chunked body growing over max_body_bytes is 413', async () => {
    const c = await Client.connect(d.port);
    c.write('POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = `${(3000).toString(16)}\r\n${'c'.repeat(3000)}\r\n`;
    c.write(chunk);
    c.write(chunk);
    const res = await c.response();
    assertProblem(res, 413, 'payload-too-large');
    await c.serverClosed();
  });

  test('protocol errors are counted', async () => {
    const before = await stats(d.port);
    const { c, res } = await request(d.port, 'GET /echo HTTP/1.1\r\n\r\n');
    assert.equal(res.status, 400);
    await c.serverClosed();
    const now = await stats(d.port);
    assert.equal(now.protocol_errors, before.protocol_errors + 1);
    assert.equal(now.requests, before.requests + 1, 'only the /stats request reached the handler');
  });

  test('client disconnects while /slow is pending do not hurt other clients', async () => {
    const base = (await stats(d.port)).requests;
    // Reset while the handler is pending: the response becomes an orphan.
    const rst = await Client.connect(d.port);
    rst.write(get('/slow?ms=200&who=reset'));
    // Half-close after the request: the response is still delivered.
    const half = await Client.connect(d.port, { allowHalfOpen: true });
    half.write(get('/slow?ms=100&who=half'));
    half.sock.end();
    // Reset only once the server has handed both requests to the handler.
    await waitHandled(d.port, base, 2);
    rst.sock.resetAndDestroy();
    const res = await half.response();
    assert.equal(res.text, 'slow /slow?ms=100&who=half\n');
    assert.equal(res.headers.connection, 'close');
    // The handler saw the half-closed client as gone (a long poll would
    // have let it go), and the answer it sent anyway was still written.
    assert.equal(res.headers['x-orphan'], '1');
    await half.serverClosed();
    // A request that ends after the orphaned one was answered.
    const { c, res: later } = await request(d.port, get('/slow?ms=300&who=later'));
    assert.equal(later.text, 'slow /slow?ms=300&who=later\n');
    c.destroy();
  });

  test('200 concurrent connections with 3 requests each all succeed', async () => {
    const one = async (k) => {
      const c = await Client.connect(d.port);
      for (let i = 0; i < 3; i++) {
        c.write(i === 1 ? get(`/slow?ms=20&k=${k}`) : get(`/echo?k=${k}&i=${i}`));
        const res = await c.response();
        assert.equal(res.status, 200);
        if (i === 1) assert.equal(res.text, `slow /slow?ms=20&k=${k}\n`);
        else assert.equal(JSON.parse(res.text).query, `k=${k}&i=${i}`);
      }
      c.destroy();
    };
    await Promise.all(Array.from({ length: 200 }, (_, k) => one(k)));
  });

  test('exits 0 on SIGTERM with no sanitizer report', async () => {
    await stopDaemon(d);
  });
});

// ---- Timeouts ---------------------------------------------------------------

describe('http server: timeouts', () => {
  let d;
  before(async () => {
    d = await startDaemon({
      TESTD_HEADER_TIMEOUT_MS: '300',
      TESTD_BODY_TIMEOUT_MS: '300',
      TESTD_IDLE_TIMEOUT_MS: '300',
    });
  });
  after(() => { if (d && d.proc.exitCode === null) d.proc.kill('SIGKILL'); });

  async function trickle(c, prefix) {
    c.sock.setNoDelay(true);
    c.write(prefix);
    const t0 = Date.now();
    const timer = setInterval(() => { if (!c.ended && !c.closed) c.write('a'); }, 20);
    try {
      const res = await c.response({}, 3000);
      return { res, elapsed: Date.now() - t0 };
    } finally {
      clearInterval(timer);
    }
  }

  test('slowloris trickling a head is cut at the header timeout with 408', async () => {
    const c = await Client.connect(d.port);
    const { res, elapsed } = await trickle(c, 'GET /echo HTTP/1.1\r\nHost: h\r\nX-Slow: ');
    assertProblem(res, 408, 'request-timeout');
    assert.ok(elapsed >= 200 && elapsed < 1500, `cut after ${elapsed} ms, not extended by the trickle`);
    await c.serverClosed();
  });

  test('slowloris on a kept-alive connection is cut too', async () => {
    const c = await Client.connect(d.port);
    c.write(get('/echo'));
    assert.equal((await c.response()).status, 200);
    const { res, elapsed } = await trickle(c, 'GET /echo HTTP/1.1\r\nX-Slow: ');
    assertProblem(res, 408, 'request-timeout');
    assert.ok(elapsed >= 200 && elapsed < 1500, `cut after ${elapsed} ms`);
    await c.serverClosed();
  });

  test('incomplete body is cut at the body timeout with 408', async () => {
    const c = await Client.connect(d.port);
    const t0 = Date.now();
    c.write('POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc');
    const res = await c.response();
    assertProblem(res, 408, 'request-timeout');
    assert.ok(Date.now() - t0 >= 200);
    await c.serverClosed();
  });

  test('idle keep-alive connection is closed silently', async () => {
    const c = await Client.connect(d.port);
    c.write(get('/echo'));
    assert.equal((await c.response()).status, 200);
    const t0 = Date.now();
    await c.serverClosed(3000);
    assert.ok(Date.now() - t0 >= 200, 'not before the idle timeout');
    assert.equal(c.buf.length, 0, 'no bytes on an idle close');
  });

  test('a connection that sends nothing is closed silently', async () => {
    const c = await Client.connect(d.port);
    await c.serverClosed(3000);
    assert.equal(c.buf.length, 0);
  });

  test('a slow handler is not cut by the connection timeouts', async () => {
    const { c, res } = await request(d.port, get('/slow?ms=800'));
    assert.equal(res.text, 'slow /slow?ms=800\n');
    c.destroy();
  });

  test('timeouts are counted', async () => {
    const s = await stats(d.port);
    assert.ok(s.timeouts >= 5, `timeouts=${s.timeouts}`);
  });

  test('exits 0 on SIGTERM with no sanitizer report', async () => {
    await stopDaemon(d);
  });
});

// ---- Connection limit -------------------------------------------------------

describe('http server: max_connections', () => {
  let d;
  before(async () => { d = await startDaemon({ TESTD_MAX_CONNS: '5' }); });
  after(() => { if (d && d.proc.exitCode === null) d.proc.kill('SIGKILL'); });

  test('the 6th connection gets 503 and is closed; a freed slot is reusable', async () => {
    const held = [];
    for (let i = 0; i < 5; i++) {
      const c = await Client.connect(d.port);
      c.write(get('/echo'));
      assert.equal((await c.response()).status, 200);
      held.push(c);
    }
    const sixth = await Client.connect(d.port);
    const res = await sixth.response();
    assertProblem(res, 503, 'service-unavailable');
    await sixth.serverClosed();
    for (const c of held) assert.equal(c.ended, false);

    held.pop().destroy();
    // The server notices the close asynchronously: retry until admitted.
    const st = await withDeadline((async () => {
      for (;;) {
        const c = await Client.connect(d.port);
        c.write(get('/stats', 'Connection: close\r\n'));
        const r = await c.response();
        c.destroy();
        if (r.status === 200) return JSON.parse(r.text);
        assert.equal(r.status, 503);
      }
    })(), WAIT_MS, 'a free connection slot');
    assert.ok(st.connections_rejected >= 1);
    assert.equal(st.connections_active, 5);
    for (const c of held) c.destroy();
  });

  test('exits 0 on SIGTERM with no sanitizer report', async () => {
    await stopDaemon(d);
  });
});

// ---- Admission ----------------------------------------------------------------

describe('http server: admission', () => {
  let d;
  // Fixed limit of 2 requests in flight; /stats is exempt (testd_http.c).
  before(async () => { d = await startDaemon({ TESTD_ADMISSION: '1', TESTD_MAX_INFLIGHT: '2' }); });
  after(() => { if (d && d.proc.exitCode === null) d.proc.kill('SIGKILL'); });

  test('past the limit a request gets 503 + Retry-After at once, its body skipped, the connection kept', async () => {
    const base = (await stats(d.port)).requests;
    const slow = [];
    for (let i = 0; i < 2; i++) {
      const c = await Client.connect(d.port);
      c.write(get(`/slow?ms=1500&who=${i}`));
      slow.push(c);
    }
    await waitHandled(d.port, base, 2);
    const c = await Client.connect(d.port);
    const body = 'x'.repeat(1000);
    const t0 = performance.now();
    c.write(`POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const res = await c.response();
    const ms = performance.now() - t0;
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers['content-type'], 'application/problem+json');
    assert.equal(res.headers['retry-after'], '1');
    assert.ok(res.headers['x-request-id']);
    assert.notEqual(res.headers.connection, 'close', 'a shed request keeps its connection');
    assert.equal(JSON.parse(res.text).type, 'urn:agora:problem:service-unavailable');
    assert.ok(ms < 1000, `answered in ${ms.toFixed(0)} ms, not after the slow ones`);
    // The exempt route answers on the same connection: the body was skipped.
    c.write(get('/stats'));
    const st = JSON.parse((await c.response()).text);
    assert.equal(st.inflight, 2);
    assert.equal(st.inflight_limit, 2);
    assert.equal(st.requests_shed, 1);
    // Once the slow ones are answered, the same connection is admitted again.
    for (const s of slow) assert.equal((await s.response()).status, 200);
    c.write(get('/echo?after=1'));
    assert.equal((await c.response()).status, 200);
    c.write(get('/stats'));
    const after2 = JSON.parse((await c.response()).text);
    assert.equal(after2.inflight, 0);
    assert.equal(after2.requests_admitted, 3);
    c.destroy();
    for (const s of slow) s.destroy();
  });

  test('exits 0 on SIGTERM with no sanitizer report', async () => {
    await stopDaemon(d);
  });
});

// ---- Graceful stop ------------------------------------------------------------

describe('http server: graceful stop', () => {
  test('SIGTERM: in-flight requests complete with Connection: close, idle ones close, then exit 0', async () => {
    const d = await startDaemon();
    try {
      const idle = await Client.connect(d.port);
      idle.write(get('/echo'));
      assert.equal((await idle.response()).status, 200);

      const busy = [];
      for (let i = 0; i < 3; i++) {
        const c = await Client.connect(d.port);
        c.write(get(`/slow?ms=600&i=${i}`));
        busy.push(c);
      }
      const piped = await Client.connect(d.port);
      piped.write(get('/slow?ms=300&p=a') + get('/slow?ms=400&p=b'));

      // Wait until the server has handed all 5 slow requests to the handler.
      await waitHandled(d.port, 0, 6);

      terminate(d);

      await idle.serverClosed();
      assert.equal(idle.buf.length, 0, 'idle connection closed without a response');
      for (let i = 0; i < 3; i++) {
        const res = await busy[i].response();
        assert.equal(res.status, 200);
        assert.equal(res.text, `slow /slow?ms=600&i=${i}\n`);
        assert.equal(res.headers.connection, 'close');
        await busy[i].serverClosed();
      }
      const [a, b] = await piped.responses(2);
      assert.equal(a.text, 'slow /slow?ms=300&p=a\n');
      assert.equal(b.text, 'slow /slow?ms=400&p=b\n');
      assert.equal(b.headers.connection, 'close');
      await piped.serverClosed();

      // The listener is closed: new connections are refused.
      await assert.rejects(Client.connect(d.port), (e) => e.code === 'ECONNREFUSED');
      await stopDaemon(d);
    } finally {
      if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
    }
  });

  test('SIGTERM: requests still running after the drain time are cut, exit 0 without leaks', async () => {
    const d = await startDaemon({ TESTD_DRAIN_MS: '300' });
    try {
      const c = await Client.connect(d.port);
      c.write(get('/slow?ms=20000'));
      await waitHandled(d.port, 0, 1);
      const t0 = Date.now();
      terminate(d);
      await c.serverClosed();
      const elapsed = Date.now() - t0;
      assert.equal(c.buf.length, 0, 'no response for the cut request');
      assert.ok(elapsed >= 200 && elapsed < 5000, `forced close after ${elapsed} ms`);
      await stopDaemon(d);
    } finally {
      if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
    }
  });
});
