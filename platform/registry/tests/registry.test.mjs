// SPDX-License-Identifier: MIT
// Registry component tests: the real binary on a free port with a temporary
// database, driven over HTTP and checked against platform/registry/openapi.yaml:
// instances with TTLs and heartbeats, long-poll watches on services and on
// configuration prefixes, the versioned configuration store with
// compare-and-set, persistence across a restart, validation, metrics and
// shutdown with long polls held.
//
// Waiting is always for an observable condition (waitFor with a deadline),
// never a sleep. Long polls are measured: a wake-up must arrive well before
// the poll's own deadline.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';

import { cleanup, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { identityHeader, OPERATOR, serviceHeader, serviceIdentity, serviceSeed } from '../../../tests/lib/identity.mjs';

const OP = { 'x-agora-identity': identityHeader(OPERATOR) };

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const T = { timeout: 30_000 };
const PROMTOOL = '/usr/bin/promtool';
// A long poll's own deadline in the wake-up tests; wake-ups must come far sooner.
const LONG_WAIT = 20_000;
const PROMPT_MS = 3_000;

after(() => cleanup());

let seq = 0;
function uniq(prefix) {
    seq += 1;
    return `${prefix}-${seq}`;
}

function reg(address = '127.0.0.1', port = 8081, extra = {}) {
    return { address, port, ...extra };
}

async function register(api, service, id, body = reg()) {
    const r = await api.put(`/v1/services/${service}/instances/${id}`, body);
    assert.equal(r.status, 200, `register ${service}/${id}: ${r.status} ${r.text}`);
    return r.json;
}

async function getService(api, service, query = '') {
    const r = await api.get(`/v1/services/${service}${query}`);
    assert.equal(r.status, 200, `${service}${query}: ${r.status} ${r.text}`);
    assert.equal(r.header('x-agora-index'), String(r.json.index), 'X-Agora-Index equals the body index');
    return r.json;
}

async function metrics(api) {
    const r = await api.get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

// Wait until the registry holds exactly 'n' long polls.
async function watchesHeld(api, n) {
    await waitFor(async () => metricValue(await metrics(api), 'registry_watches') === n, {
        timeoutMs: 5_000,
        message: `registry_watches == ${n}`,
    });
}

// Start a GET in the background; resolves with { res, ms } (ms since start).
function poll(api, path) {
    const t0 = Date.now();
    const p = api.get(path).then((res) => ({ res, ms: Date.now() - t0 }));
    p.settled = false;
    p.then(() => {
        p.settled = true;
    });
    return p;
}

async function putConfig(api, key, value, cas) {
    const body = cas === undefined ? { value } : { value, cas };
    const r = await api.put(`/v1/config/${key}`, body);
    assert.equal(r.status, 200, `PUT ${key}: ${r.status} ${r.text}`);
    return r.json;
}

// ---------------------------------------------------------------------------

describe('instances', () => {
    let svc;
    let api;
    before(async () => {
        svc = await startService('registry');
        api = client(svc, { identity: OPERATOR });
    });
    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
    });

    it('register, get and list: shapes, order by id, index header', T, async () => {
        const s = uniq('orders');
        const before = (await api.get('/v1/services')).json.index;
        const a = await register(api, s, 'b-2', reg('10.0.0.2', 9002, { metadata: { zone: 'a', weight: 3 }, ttl_ms: 30_000 }));
        assert.deepEqual(Object.keys(a).sort(), ['address', 'expires_at', 'id', 'metadata', 'port', 'registered_at', 'service', 'ttl_ms']);
        assert.equal(a.service, s);
        assert.equal(a.id, 'b-2');
        assert.equal(a.address, '10.0.0.2');
        assert.equal(a.port, 9002);
        assert.deepEqual(a.metadata, { zone: 'a', weight: 3 });
        assert.equal(a.ttl_ms, 30_000);
        assert.match(a.registered_at, RFC3339_UTC);
        assert.match(a.expires_at, RFC3339_UTC);
        assert.equal(Date.parse(a.expires_at) - Date.parse(a.registered_at), 30_000);
        const b = await register(api, s, 'a:1', reg('::1', 9001));
        assert.deepEqual(b.metadata, {}, 'metadata defaults to {}');
        assert.equal(b.ttl_ms, 10_000, 'ttl_ms defaults to 10 s');

        const got = await getService(api, s);
        assert.equal(got.service, s);
        assert.deepEqual(got.instances.map((i) => i.id), ['a:1', 'b-2'], 'sorted by id');
        for (const i of got.instances) {
            assert.deepEqual(Object.keys(i).sort(), ['address', 'expires_at', 'id', 'metadata', 'port', 'registered_at']);
        }
        assert.ok(got.index > before, `index ${got.index} > ${before}`);
        assert.ok(Number.isSafeInteger(got.index), 'index is exact in JSON (below 2^53)');

        const list = await api.get('/v1/services');
        assert.equal(list.status, 200);
        assert.equal(list.header('x-agora-index'), String(list.json.index));
        const entry = list.json.services.find((x) => x.name === s);
        assert.deepEqual(entry, { name: s, instances: 2 });
        const names = list.json.services.map((x) => x.name);
        assert.deepEqual(names, [...names].sort(), 'services sorted by name');
        assert.ok(list.json.index >= got.index);
    });

    it('re-registering identical data refreshes the TTL only; a change bumps the index', T, async () => {
        const s = uniq('users');
        const first = await register(api, s, 'u1', reg('127.0.0.1', 7001, { metadata: { v: 1 } }));
        const i1 = (await getService(api, s)).index;
        await waitFor(() => Date.now() > Date.parse(first.expires_at) - 10_000 + 5, { message: 'clock moved' });
        const again = await register(api, s, 'u1', reg('127.0.0.1', 7001, { metadata: { v: 1 } }));
        assert.equal(again.registered_at, first.registered_at, 'registered_at kept');
        assert.ok(Date.parse(again.expires_at) > Date.parse(first.expires_at), 'expires_at moved');
        assert.equal((await getService(api, s)).index, i1, 'identical re-register: same index');
        await register(api, s, 'u1', reg('127.0.0.1', 7001, { metadata: { v: 2 } }));
        const i2 = (await getService(api, s)).index;
        assert.ok(i2 > i1, 'metadata change bumps the index');
        await register(api, s, 'u1', reg('127.0.0.1', 7002, { metadata: { v: 2 } }));
        const i3 = (await getService(api, s)).index;
        assert.ok(i3 > i2, 'port change bumps the index');
        assert.equal((await getService(api, s)).instances[0].port, 7002);
    });

    it('an instance without heartbeats expires within ~1.5 s of its 1 s TTL and the index is bumped', T, async () => {
        const s = uniq('shipping');
        const m0 = metricValue(await metrics(api), 'registry_expirations_total');
        const t0 = Date.now();
        await register(api, s, 'e1', reg('127.0.0.1', 7100, { ttl_ms: 1000 }));
        const i1 = (await getService(api, s)).index;
        // Polled tightly so reads land around the deadline: a read never shows
        // the instance gone with the old index (the expiry timer may fire a
        // moment after the deadline; reads expire what is due first).
        const inconsistent = [];
        const gone = await waitFor(
            async () => {
                const g = await getService(api, s);
                if ((g.instances.length === 0) !== (g.index > i1)) inconsistent.push(g);
                return g.instances.length === 0 ? g : null;
            },
            { timeoutMs: 3_000, intervalMs: 2, message: 'instance expired' },
        );
        assert.deepEqual(inconsistent, [], `registered at index ${i1}: instances and index disagree`);
        const ms = Date.now() - t0;
        assert.ok(ms >= 950, `not before its TTL (${ms} ms)`);
        assert.ok(ms < 1_800, `expired within ~1.5 s (${ms} ms)`);
        assert.ok(gone.index > i1, 'expiry bumped the index');
        assert.ok(!(await api.get('/v1/services')).json.services.some((x) => x.name === s), 'empty service omitted');
        const m = await metrics(api);
        assert.equal(metricValue(m, 'registry_expirations_total'), m0 + 1);
        assert.equal(metricValue(m, 'registry_instances', { service: s }), 0);
    });

    it('heartbeats keep an instance alive past several TTLs', T, async () => {
        const s = uniq('payments');
        await register(api, s, 'h1', reg('127.0.0.1', 7200, { ttl_ms: 1000 }));
        const i1 = (await getService(api, s)).index;
        const t0 = Date.now();
        let beats = 0;
        const problems = [];
        // Heartbeat every ~200 ms for 3.5 TTLs, checking it stays listed.
        await waitFor(
            async () => {
                const hb = await api.put(`/v1/services/${s}/instances/h1/heartbeat`);
                if (hb.status !== 200 || !RFC3339_UTC.test(hb.json?.expires_at) || Object.keys(hb.json).length !== 1) {
                    problems.push(`heartbeat: ${hb.status} ${hb.text}`);
                }
                beats += 1;
                const g = await getService(api, s);
                if (g.instances.length !== 1) problems.push(`not listed after ${Date.now() - t0} ms`);
                return Date.now() - t0 > 3_500;
            },
            { timeoutMs: 10_000, intervalMs: 200, message: '3.5 s of heartbeats' },
        );
        assert.deepEqual(problems, []);
        assert.ok(beats >= 10, `${beats} heartbeats`);
        assert.equal((await getService(api, s)).index, i1, 'heartbeats do not change the index');
    });

    it('heartbeat for an expired or unknown instance is 404 (the client registers again)', T, async () => {
        const s = uniq('notify');
        await register(api, s, 'x1', reg('127.0.0.1', 7300, { ttl_ms: 1000 }));
        await waitFor(async () => (await getService(api, s)).instances.length === 0, { timeoutMs: 3_000, message: 'expired' });
        const path = `/v1/services/${s}/instances/x1/heartbeat`;
        expectProblem(await api.put(path), 404, { path, type: 'urn:agora:problem:not-found' });
        expectProblem(await api.put(`/v1/services/${s}/instances/never/heartbeat`), 404);
        expectProblem(await api.put(`/v1/services/nosuch/instances/x1/heartbeat`), 404);
        expectProblem(await api.put(`/v1/services/BAD_NAME/instances/x1/heartbeat`), 404);
        await register(api, s, 'x1', reg('127.0.0.1', 7300, { ttl_ms: 1000 }));
        assert.equal((await api.put(path)).status, 200, 'after re-registering the heartbeat works');
    });

    it('deregister: 204, the index moves, then 404', T, async () => {
        const s = uniq('inventory');
        await register(api, s, 'd1');
        await register(api, s, 'd2');
        const i1 = (await getService(api, s)).index;
        const del = await api.delete(`/v1/services/${s}/instances/d1`);
        assert.equal(del.status, 204);
        assert.equal(del.text, '');
        const g = await getService(api, s);
        assert.deepEqual(g.instances.map((i) => i.id), ['d2']);
        assert.ok(g.index > i1);
        expectProblem(await api.delete(`/v1/services/${s}/instances/d1`), 404);
        expectProblem(await api.delete(`/v1/services/nosuch-svc/instances/d1`), 404);
        assert.equal((await api.delete(`/v1/services/${s}/instances/d2`)).status, 204);
        const empty = await getService(api, s);
        assert.deepEqual(empty.instances, []);
        assert.ok(empty.index > g.index, 'removing the last instance moves the index too');
        assert.equal(metricValue(await metrics(api), 'registry_instances', { service: s }), 0);
    });

    it('an unknown service is 200 with no instances', T, async () => {
        const g = await getService(api, 'never-registered');
        assert.deepEqual(g.instances, []);
        assert.equal(g.service, 'never-registered');
        assert.ok(Number.isSafeInteger(g.index));
    });

    it('validation: 422 with per-field errors for bodies and names, 400 for bad queries', T, async () => {
        const s = uniq('valid');
        const cases = [
            [`/v1/services/${s}/instances/i1`, {}, ['address', 'port']],
            [`/v1/services/${s}/instances/i1`, { address: '', port: 1 }, ['address']],
            [`/v1/services/${s}/instances/i1`, { address: 'a b', port: 1 }, ['address']],
            [`/v1/services/${s}/instances/i1`, { address: 'x'.repeat(256), port: 1 }, ['address']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 0 }, ['port']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 65536 }, ['port']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: '80' }, ['port']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 80, ttl_ms: 999 }, ['ttl_ms']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 80, ttl_ms: 300_001 }, ['ttl_ms']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 80, metadata: [1] }, ['metadata']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 80, metadata: { big: 'x'.repeat(4100) } }, ['metadata']],
            [`/v1/services/${s}/instances/i1`, { address: 'h', port: 80, colour: 'red' }, ['colour']],
            [`/v1/services/Bad_Name/instances/i1`, { address: 'h', port: 80 }, ['service']],
            [`/v1/services/${'a'.repeat(65)}/instances/i1`, { address: 'h', port: 80 }, ['service']],
            [`/v1/services/${s}/instances/${'i'.repeat(129)}`, { address: 'h', port: 80 }, ['id']],
            [`/v1/services/${s}/instances/bad%20id`, { address: 'h', port: 80 }, ['id']],
        ];
        for (const [path, body, fields] of cases) {
            const p = expectProblem(await api.put(path, body), 422, { path });
            assert.deepEqual(errorFields(p).sort(), fields.sort(), `${path} ${JSON.stringify(body).slice(0, 80)}`);
        }
        // The limits themselves are accepted.
        await register(api, s, 'i'.repeat(128), reg('h'.repeat(255), 65535, { ttl_ms: 300_000, metadata: { k: 'x'.repeat(4000) } }));
        await register(api, 'a'.repeat(64), 'A.b_c:d-1', reg('h', 1, { ttl_ms: 1000 }));
        expectProblem(await api.get('/v1/services/Bad_Name'), 422);
        for (const q of ['index=abc', 'index=-1', 'wait=120001', 'wait=-5', 'wait=1.5', 'index=1&wait=x']) {
            expectProblem(await api.get(`/v1/services/${s}?${q}`), 400);
        }
        expectProblem(await api.put(`/v1/services/${s}/instances/i1`, undefined, { body: '{', contentType: 'application/json' }), 400);
        expectProblem(await api.request('PUT', `/v1/services/${s}/instances/i1`, { body: 'address=h', contentType: 'text/plain' }), 415);
        expectProblem(await api.request('POST', '/v1/services'), 405);
    });

    it('/health, /ready and /metrics; metrics pass promtool check metrics', { ...T, skip: !fs.existsSync(PROMTOOL) && 'no promtool' }, async () => {
        assert.equal((await api.get('/health')).status, 200);
        assert.equal((await api.get('/ready')).status, 200);
        const s = uniq('metrics');
        await register(api, s, 'm1');
        await register(api, s, 'm2');
        const text = (await api.get('/metrics')).text;
        const m = parseMetrics(text);
        assert.equal(metricValue(m, 'registry_instances', { service: s }), 2);
        for (const name of ['registry_watches', 'registry_expirations_total', 'registry_config_keys']) {
            assert.ok(m.some((x) => x.name === name), `${name} exported`);
        }
        assert.ok(metricValue(m, 'http_requests_total', { route: '/v1/services/{service}/instances/{id}' }) > 0, 'route label is the pattern');
        const res = await new Promise((resolve, reject) => {
            const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.stderr.on('data', (d) => (out += d));
            child.on('error', reject);
            child.on('close', (code) => resolve({ code, out }));
            child.stdin.end(text);
        });
        assert.equal(res.code, 0, `promtool:\n${res.out}\nbody:\n${text.slice(0, 3000)}`);
    });
});

// ---------------------------------------------------------------------------

describe('service watches (long poll)', () => {
    let svc;
    let api;
    before(async () => {
        svc = await startService('registry');
        api = client(svc, { identity: OPERATOR });
    });
    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
    });

    it('wakes at once when an instance registers (also for a service not yet known)', T, async () => {
        const s = uniq('watch-reg');
        const g = await getService(api, s);
        const w = poll(api, `/v1/services/${s}?index=${g.index}&wait=${LONG_WAIT}`);
        await watchesHeld(api, 1);
        assert.equal(w.settled, false, 'held while nothing changed');
        const t0 = Date.now();
        await register(api, s, 'w1', reg('127.0.0.1', 7400));
        const { res } = await w;
        const ms = Date.now() - t0;
        assert.equal(res.status, 200);
        assert.ok(ms < PROMPT_MS, `woke ${ms} ms after the change (deadline ${LONG_WAIT} ms)`);
        assert.ok(res.json.index > g.index);
        assert.equal(res.header('x-agora-index'), String(res.json.index));
        assert.deepEqual(res.json.instances.map((i) => i.id), ['w1']);
        await watchesHeld(api, 0);
    });

    it('wakes at once on deregistration', T, async () => {
        const s = uniq('watch-dereg');
        await register(api, s, 'a');
        await register(api, s, 'b');
        const g = await getService(api, s);
        const w = poll(api, `/v1/services/${s}?index=${g.index}&wait=${LONG_WAIT}`);
        await watchesHeld(api, 1);
        const t0 = Date.now();
        assert.equal((await api.delete(`/v1/services/${s}/instances/a`)).status, 204);
        const { res } = await w;
        assert.ok(Date.now() - t0 < PROMPT_MS);
        assert.deepEqual(res.json.instances.map((i) => i.id), ['b']);
        assert.ok(res.json.index > g.index);
    });

    it('wakes at once on expiry', T, async () => {
        const s = uniq('watch-exp');
        const t0 = Date.now();
        await register(api, s, 'e', reg('127.0.0.1', 7500, { ttl_ms: 1000 }));
        const g = await getService(api, s);
        const w = poll(api, `/v1/services/${s}?index=${g.index}&wait=${LONG_WAIT}`);
        const { res } = await w;
        const ms = Date.now() - t0;
        assert.ok(ms >= 950 && ms < 2_000, `answered at expiry (${ms} ms after registering a 1 s TTL)`);
        assert.deepEqual(res.json.instances, []);
        assert.ok(res.json.index > g.index);
    });

    it('returns at its deadline with the same index when nothing changed; heartbeats do not wake it', T, async () => {
        const s = uniq('watch-idle');
        await register(api, s, 'i', reg('127.0.0.1', 7600, { ttl_ms: 30_000 }));
        const g = await getService(api, s);
        const w = poll(api, `/v1/services/${s}?index=${g.index}&wait=600`);
        await watchesHeld(api, 1);
        assert.equal((await api.put(`/v1/services/${s}/instances/i/heartbeat`)).status, 200);
        const other = uniq('watch-other');
        await register(api, other, 'o');
        const { res, ms } = await w;
        assert.equal(res.status, 200);
        assert.ok(ms >= 550, `held until the deadline (${ms} ms)`);
        assert.ok(ms < 600 + PROMPT_MS, `answered at the deadline (${ms} ms)`);
        assert.equal(res.json.index, g.index, 'unchanged index');
        assert.deepEqual(res.json.instances.map((i) => i.id), ['i']);
    });

    it('answers at once when the index is older, absent, or wait=0', T, async () => {
        const s = uniq('watch-now');
        await register(api, s, 'n');
        const g = await getService(api, s);
        for (const q of [`?index=${g.index - 1}&wait=${LONG_WAIT}`, '', `?index=${g.index}&wait=0`, `?index=${g.index + 10 ** 12}&wait=${LONG_WAIT}`]) {
            const t0 = Date.now();
            const r = await getService(api, s, q);
            assert.ok(Date.now() - t0 < PROMPT_MS, `${q} answered at once`);
            assert.equal(r.index, g.index);
        }
    });

    it('watchers that disconnect are dropped safely, on a change or at their deadline', T, async () => {
        const s = uniq('watch-gone');
        const g = await getService(api, s);
        const ctrls = [new AbortController(), new AbortController()];
        const aborted = [
            fetch(svc.url(`/v1/services/${s}?index=${g.index}&wait=${LONG_WAIT}`), { signal: ctrls[0].signal, headers: OP }),
            fetch(svc.url(`/v1/services/${s}?index=${g.index}&wait=300`), { signal: ctrls[1].signal, headers: OP }),
        ].map((p) => p.catch((err) => err));
        await watchesHeld(api, 2);
        for (const c of ctrls) c.abort();
        for (const e of await Promise.all(aborted)) assert.equal(e.name, 'AbortError');
        // The short one goes at its deadline, the long one when the service changes.
        await watchesHeld(api, 1);
        await register(api, s, 'after');
        await watchesHeld(api, 0);
        assert.deepEqual((await getService(api, s)).instances.map((i) => i.id), ['after']);
        assert.equal((await api.get('/health')).status, 200, 'still serving');
    });

    it('many watchers of one service all wake on one change', T, async () => {
        const s = uniq('watch-many');
        const g = await getService(api, s);
        const ws = Array.from({ length: 20 }, () => poll(api, `/v1/services/${s}?index=${g.index}&wait=${LONG_WAIT}`));
        await watchesHeld(api, 20);
        const t0 = Date.now();
        await register(api, s, 'x');
        const all = await Promise.all(ws);
        assert.ok(Date.now() - t0 < PROMPT_MS);
        for (const { res } of all) {
            assert.equal(res.status, 200);
            assert.deepEqual(res.json.instances.map((i) => i.id), ['x']);
        }
        await watchesHeld(api, 0);
    });
});

// ---------------------------------------------------------------------------

describe('configuration', () => {
    let svc;
    let api;
    before(async () => {
        svc = await startService('registry');
        api = client(svc, { identity: OPERATOR });
    });
    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
    });

    it('PUT, GET, list by prefix, DELETE; versions and modify indexes', T, async () => {
        const a = await putConfig(api, 'gateway.routes', { '/api/v1/products': 'catalog' });
        assert.deepEqual(Object.keys(a).sort(), ['key', 'modify_index', 'version']);
        assert.equal(a.key, 'gateway.routes');
        assert.equal(a.version, 1);
        const b = await putConfig(api, 'gateway.routes', { '/api/v1/products': 'catalog', '/api/v1/users': 'users' });
        assert.equal(b.version, 2);
        assert.ok(b.modify_index > a.modify_index);
        await putConfig(api, 'gateway.rate_limit', 100);
        await putConfig(api, 'gatewayx', 'not under gateway.');
        await putConfig(api, 'features.dark-mode', true);

        const g = await api.get('/v1/config/gateway.routes');
        assert.equal(g.status, 200);
        assert.deepEqual(g.json, {
            key: 'gateway.routes',
            value: { '/api/v1/products': 'catalog', '/api/v1/users': 'users' },
            version: 2,
            modify_index: b.modify_index,
        });

        const l = await api.get('/v1/config?prefix=gateway.');
        assert.equal(l.status, 200);
        assert.deepEqual(l.json.items.map((i) => i.key), ['gateway.rate_limit', 'gateway.routes']);
        assert.equal(l.json.items[0].value, 100);
        assert.equal(l.header('x-agora-index'), String(l.json.index));
        const all = await api.get('/v1/config');
        assert.deepEqual(all.json.items.map((i) => i.key), ['features.dark-mode', 'gateway.rate_limit', 'gateway.routes', 'gatewayx']);
        assert.equal(all.json.index, Math.max(...all.json.items.map((i) => i.modify_index)), 'index = highest modify_index');
        assert.deepEqual((await api.get('/v1/config?prefix=')).json.items.length, 4);
        assert.deepEqual((await api.get('/v1/config?prefix=nothing')).json.items, []);

        const del = await api.delete('/v1/config/gatewayx');
        assert.equal(del.status, 204);
        expectProblem(await api.get('/v1/config/gatewayx'), 404, { path: '/v1/config/gatewayx' });
        expectProblem(await api.delete('/v1/config/gatewayx'), 404);
        const after1 = await api.get('/v1/config');
        assert.ok(after1.json.index > all.json.index, 'a deletion moves the config index');
        const again = await putConfig(api, 'gatewayx', 1);
        assert.equal(again.version, 1, 'a re-created key starts at version 1');
        const m = await metrics(api);
        assert.equal(metricValue(m, 'registry_config_keys'), 4);
    });

    it('any JSON value round-trips; 256 KiB is the limit', T, async () => {
        const values = ['text', 0, -1.5, 9007199254740991, true, false, null, [], [1, 'two', { three: 3 }], {}, { nested: { deep: [null] } }, 'ünïcødé ✓'];
        for (const [i, v] of values.entries()) {
            await putConfig(api, `values.v${i}`, v);
            const g = await api.get(`/v1/config/values.v${i}`);
            assert.deepEqual(g.json.value, v, JSON.stringify(v));
        }
        const big = 'x'.repeat(256 * 1024 - 2); // serialised with its quotes: exactly 256 KiB
        await putConfig(api, 'values.big', big);
        assert.equal((await api.get('/v1/config/values.big')).json.value.length, big.length);
        const p = expectProblem(await api.put('/v1/config/values.big', { value: big + 'x' }), 422);
        assert.deepEqual(errorFields(p), ['value']);
    });

    it('compare-and-set: 409 with current_version on a mismatch; cas 0 means only-if-absent', T, async () => {
        const k = uniq('cas.key');
        const created = await putConfig(api, k, 'v1', 0);
        assert.equal(created.version, 1);
        let p = expectProblem(await api.put(`/v1/config/${k}`, { value: 'again', cas: 0 }), 409, { path: `/v1/config/${k}` });
        assert.equal(p.current_version, 1);
        p = expectProblem(await api.put(`/v1/config/${k}`, { value: 'v2', cas: 7 }), 409);
        assert.equal(p.current_version, 1);
        const v2 = await putConfig(api, k, 'v2', 1);
        assert.equal(v2.version, 2);
        assert.equal((await api.get(`/v1/config/${k}`)).json.value, 'v2', 'failed writes changed nothing');
        p = expectProblem(await api.put(`/v1/config/${uniq('cas.absent')}`, { value: 1, cas: 3 }), 409);
        assert.equal(p.current_version, 0);
        p = expectProblem(await api.delete(`/v1/config/${k}?cas=1`), 409);
        assert.equal(p.current_version, 2);
        assert.equal((await api.delete(`/v1/config/${k}?cas=2`)).status, 204);
        assert.equal((await putConfig(api, k, 'fresh', 0)).version, 1, 'only-if-absent after a delete');
    });

    it('validation: 422 for bodies and keys, 400 for queries, 404 for impossible keys', T, async () => {
        const cases = [
            ['/v1/config/a.b', {}, ['value']],
            ['/v1/config/a.b', { value: 1, cas: -1 }, ['cas']],
            ['/v1/config/a.b', { value: 1, cas: 'x' }, ['cas']],
            ['/v1/config/a.b', { value: 1, extra: true }, ['extra']],
            ['/v1/config/bad%20key', { value: 1 }, ['key']],
            [`/v1/config/${'k'.repeat(201)}`, { value: 1 }, ['key']],
        ];
        for (const [path, body, fields] of cases) {
            const p = expectProblem(await api.put(path, body), 422, { path });
            assert.deepEqual(errorFields(p).sort(), fields.sort(), `${path} ${JSON.stringify(body)}`);
        }
        await putConfig(api, 'k'.repeat(200), 'longest key');
        await putConfig(api, 'A-Z_a-z.0-9', 'all key characters');
        expectProblem(await api.get('/v1/config/bad%20key'), 404);
        expectProblem(await api.get('/v1/config?prefix=bad%20prefix'), 400);
        expectProblem(await api.get(`/v1/config?prefix=${'p'.repeat(201)}`), 400);
        expectProblem(await api.get('/v1/config?index=x'), 400);
        expectProblem(await api.get('/v1/config?wait=999999'), 400);
        expectProblem(await api.delete('/v1/config/a.b?cas=nope'), 400);
    });

    it('a prefix watch wakes on a change under its prefix, not on others', T, async () => {
        const l = await api.get('/v1/config?prefix=watch.');
        const w = poll(api, `/v1/config?prefix=watch.&index=${l.json.index}&wait=${LONG_WAIT}`);
        await watchesHeld(api, 1);
        await putConfig(api, 'watchx', 'outside the prefix');
        await putConfig(api, 'other.key', 'unrelated');
        await watchesHeld(api, 1);
        assert.equal(w.settled, false, 'not woken by keys outside the prefix');
        const t0 = Date.now();
        const put = await putConfig(api, 'watch.flag', { on: true });
        const { res } = await w;
        assert.ok(Date.now() - t0 < PROMPT_MS, 'woke at once');
        assert.equal(res.status, 200);
        assert.deepEqual(res.json.items, [{ key: 'watch.flag', value: { on: true }, version: 1, modify_index: put.modify_index }]);
        assert.equal(res.json.index, put.modify_index);
        assert.equal(res.header('x-agora-index'), String(res.json.index));
    });

    it('a prefix watch wakes on deletion, and returns at its deadline with the same index', T, async () => {
        await putConfig(api, 'del.watch.a', 1);
        await putConfig(api, 'del.watch.b', 2);
        const l = await api.get('/v1/config?prefix=del.watch.');
        const w = poll(api, `/v1/config?prefix=del.watch.&index=${l.json.index}&wait=${LONG_WAIT}`);
        await watchesHeld(api, 1);
        const t0 = Date.now();
        assert.equal((await api.delete('/v1/config/del.watch.a')).status, 204);
        const { res } = await w;
        assert.ok(Date.now() - t0 < PROMPT_MS, 'woke at once on deletion');
        assert.deepEqual(res.json.items.map((i) => i.key), ['del.watch.b']);
        assert.ok(res.json.index > l.json.index);

        // A watch holding the index of the deletion waits: nothing newer happened under the prefix.
        const idle = poll(api, `/v1/config?prefix=del.watch.&index=${res.json.index}&wait=500`);
        await putConfig(api, 'unrelated.after', 1);
        const r2 = await idle;
        assert.ok(r2.ms >= 450, `held until its deadline (${r2.ms} ms)`);
        assert.deepEqual(r2.res.json.items.map((i) => i.key), ['del.watch.b']);
        assert.ok(r2.res.json.index >= res.json.index);
        // With an index from before the deletion the answer is immediate.
        const r3 = await api.get(`/v1/config?prefix=del.watch.&index=${l.json.index}&wait=${LONG_WAIT}`);
        assert.deepEqual(r3.json.items.map((i) => i.key), ['del.watch.b']);
    });
});

// ---------------------------------------------------------------------------

describe('limits', () => {
    it('instances and long polls are bounded: 503 past the limits', T, async () => {
        const svc = await startService('registry', {
            env: { AGORA_REGISTRY_MAX_INSTANCES: '2', AGORA_REGISTRY_MAX_WATCHES: '2', AGORA_REGISTRY_MAX_CONFIG_KEYS: '2' },
        });
        try {
            const api = client(svc, { identity: OPERATOR });
            await register(api, 'lim', 'a');
            await register(api, 'lim', 'b');
            expectProblem(await api.put('/v1/services/lim/instances/c', reg()), 503);
            await register(api, 'lim', 'a', reg('127.0.0.2', 9));
            assert.equal((await api.delete('/v1/services/lim/instances/b')).status, 204);
            await register(api, 'lim', 'c');

            const g = await getService(api, 'lim');
            const w1 = poll(api, `/v1/services/lim?index=${g.index}&wait=${LONG_WAIT}`);
            const w2 = poll(api, `/v1/services/lim?index=${g.index}&wait=${LONG_WAIT}`);
            await watchesHeld(api, 2);
            expectProblem(await api.get(`/v1/services/lim?index=${g.index}&wait=${LONG_WAIT}`), 503);
            await register(api, 'lim', 'c', reg('127.0.0.3', 9));
            await Promise.all([w1, w2]);

            await putConfig(api, 'k1', 1);
            await putConfig(api, 'k2', 2);
            expectProblem(await api.put('/v1/config/k3', { value: 3 }), 503);
            await putConfig(api, 'k2', 'updates still work');
        } finally {
            assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
        }
    });

    it('configuration values are bounded in all, so every listing renders: 503 past the byte limit', T, async () => {
        // 200 KiB per value, 500 KiB in all: two fit, a third does not;
        // replacing a value counts its new size only.
        const svc = await startService('registry', { env: { AGORA_REGISTRY_MAX_CONFIG_BYTES: '500KiB' } });
        try {
            const api = client(svc, { identity: OPERATOR });
            const big = 'x'.repeat(200 * 1024);
            await putConfig(api, 'big.a', big);
            await putConfig(api, 'big.b', big);
            const p = await api.put('/v1/config/big.c', { value: big });
            expectProblem(p, 503);
            assert.match(p.json.detail, /bytes of configuration values/);
            await putConfig(api, 'big.b', `${big}y`);
            const list = await api.get('/v1/config?prefix=big.');
            assert.equal(list.status, 200);
            assert.deepEqual(list.json.items.map((i) => i.key), ['big.a', 'big.b']);
        } finally {
            assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
        }
    });
});

// ---------------------------------------------------------------------------

describe('restart and shutdown', () => {
    it('configuration survives a SIGTERM restart with versions intact; instances do not; the index never goes back', T, async () => {
        const first = await startService('registry');
        const api = client(first, { identity: OPERATOR });
        await putConfig(api, 'persist.a', { n: 1 });
        await putConfig(api, 'persist.a', { n: 2 });
        await putConfig(api, 'persist.b', 'b');
        await putConfig(api, 'persist.gone', 'x');
        assert.equal((await api.delete('/v1/config/persist.gone')).status, 204);
        await register(api, 'ephemeral', 'e1', reg('127.0.0.1', 7700, { ttl_ms: 300_000 }));
        const cfgBefore = (await api.get('/v1/config?prefix=persist.')).json;
        const svcBefore = await getService(api, 'ephemeral');
        const listBefore = (await api.get('/v1/services')).json.index;
        assert.deepEqual(await stop(first), { code: 0, signal: null }, first.stderr(30));

        const second = await startService('registry', { dataDir: first.dataDir });
        try {
            const api2 = client(second, { identity: OPERATOR });
            const cfgAfter = (await api2.get('/v1/config?prefix=persist.')).json;
            assert.deepEqual(cfgAfter.items, cfgBefore.items, 'same keys, values, versions and modify indexes');
            assert.equal(cfgAfter.items.find((i) => i.key === 'persist.a').version, 2);
            assert.equal(cfgAfter.index, cfgBefore.index, 'config index persisted');
            // A config watcher from before the restart keeps waiting: nothing changed.
            const idle = await api2.get(`/v1/config?prefix=persist.&index=${cfgBefore.index}&wait=300`);
            assert.equal(idle.json.index, cfgBefore.index);

            const svcAfter = await getService(api2, 'ephemeral');
            assert.deepEqual(svcAfter.instances, [], 'instances are not persisted');
            assert.ok(svcAfter.index > svcBefore.index, 'the service index did not go back');
            // A watcher holding the old index sees the change at once.
            const t0 = Date.now();
            const w = await getService(api2, 'ephemeral', `?index=${svcBefore.index}&wait=${LONG_WAIT}`);
            assert.ok(Date.now() - t0 < PROMPT_MS);
            assert.deepEqual(w.instances, []);
            assert.ok((await api2.get('/v1/services')).json.index >= listBefore, 'registry index did not go back');
            const next = await putConfig(api2, 'persist.c', 1);
            assert.ok(next.modify_index > cfgBefore.index, 'new changes get larger indexes');
            assert.equal((await putConfig(api2, 'persist.a', { n: 3 }, 2)).version, 3, 'cas continues from the stored version');
        } finally {
            assert.deepEqual(await stop(second), { code: 0, signal: null }, second.stderr(30));
        }
        await cleanup(first);
    });

    it('SIGTERM with long polls held: they are answered at once and the process exits 0 quickly', T, async () => {
        const svc = await startService('registry');
        const api = client(svc, { identity: OPERATOR });
        await register(api, 'held-a', 'x');
        await putConfig(api, 'held.k', 1);
        const ga = await getService(api, 'held-a');
        const gb = await getService(api, 'held-b');
        const gc = (await api.get('/v1/config?prefix=held.')).json;
        const ws = [
            poll(api, `/v1/services/held-a?index=${ga.index}&wait=60000`),
            poll(api, `/v1/services/held-b?index=${gb.index}&wait=60000`),
            poll(api, `/v1/config?prefix=held.&index=${gc.index}&wait=60000`),
        ];
        await watchesHeld(api, 3);
        const t0 = Date.now();
        svc.kill('SIGTERM');
        const answers = await Promise.all(ws);
        const answeredMs = Date.now() - t0;
        const status = await waitExit(svc, { timeoutMs: 5_000 });
        const exitMs = Date.now() - t0;
        assert.deepEqual({ code: status.code, signal: status.signal }, { code: 0, signal: null }, svc.stderr(30));
        assert.ok(answeredMs < 1_000, `long polls answered ${answeredMs} ms after SIGTERM`);
        assert.ok(exitMs < 2_000, `exited ${exitMs} ms after SIGTERM (shutdown timeout 10 s)`);
        const [a, b, c] = answers.map((x) => x.res);
        assert.equal(a.status, 200);
        assert.deepEqual(a.json.instances.map((i) => i.id), ['x']);
        assert.equal(a.json.index, ga.index, 'current state, unchanged index');
        assert.equal(b.status, 200);
        assert.deepEqual(b.json.instances, []);
        assert.equal(c.status, 200);
        assert.deepEqual(c.json.items.map((i) => i.key), ['held.k']);
        assert.deepEqual(svc.nonJsonLines(), [], 'no sanitizer report or stray output');
        await cleanup(svc);
    });
});

describe('access: only key holders, each within its rights (security issue: rogue instances)', () => {
    let svc;
    before(async () => {
        svc = await startService('registry');
    });
    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
    });

    const inst = { address: '127.0.0.1', port: 9, ttl_ms: 10000 };

    it('refuses a caller without the service identity on every route, reads included', T, async () => {
        const anon = client(svc, { identity: null });
        const forged = client(svc, { identity: OPERATOR, headers: {} });
        for (const [method, path, body] of [
            ['PUT', '/v1/services/users/instances/rogue-1', inst],
            ['PUT', '/v1/services/users/instances/rogue-1/heartbeat', undefined],
            ['DELETE', '/v1/services/users/instances/rogue-1', undefined],
            ['GET', '/v1/services', undefined],
            ['GET', '/v1/services/users', undefined],
            ['PUT', '/v1/config/gateway.routes', { value: { routes: [] } }],
            ['DELETE', '/v1/config/gateway.routes', undefined],
            ['GET', '/v1/config', undefined],
            ['GET', '/v1/config/gateway.routes', undefined],
        ]) {
            expectProblem(await anon.request(method, path, { json: body }), 401);
            // A customer or admin identity (what the gateway signs for users) is not a service.
            const user = client(svc, { identity: { userId: 'u1', roles: ['admin', 'customer'] } });
            expectProblem(await user.request(method, path, { json: body }), 403);
            // A service identity signed with another key is nobody.
            const wrongKey = identityHeader({ ...OPERATOR, key: 'ab'.repeat(32) });
            expectProblem(await forged.request(method, path, { json: body, headers: { 'x-agora-identity': wrongKey } }), 401);
        }
        const list = await client(svc, { identity: OPERATOR }).get('/v1/services/users');
        assert.equal(list.status, 200);
        assert.deepEqual(list.json.instances, [], 'no rogue instance got in');
    });

    it('lets a service register only itself, and only the operator write configuration', T, async () => {
        const users = client(svc, { identity: serviceIdentity('users') });
        const catalog = client(svc, { identity: serviceIdentity('catalog') });
        assert.equal((await users.put('/v1/services/users/instances/users-1', inst)).status, 200);
        expectProblem(await catalog.put('/v1/services/users/instances/fake-1', inst), 403);
        expectProblem(await catalog.request('PUT', '/v1/services/users/instances/users-1/heartbeat'), 403);
        expectProblem(await catalog.delete('/v1/services/users/instances/users-1'), 403);
        assert.deepEqual((await catalog.get('/v1/services/users')).json.instances.map((i) => i.id), ['users-1']);
        expectProblem(await users.put('/v1/config/gateway.routes', { value: { routes: [] } }), 403);
        expectProblem(await users.delete('/v1/config/gateway.routes'), 403);
        const op = client(svc, { identity: OPERATOR });
        assert.equal((await op.put('/v1/config/gateway.routes', { value: { routes: [] } })).status, 200);
        assert.equal((await users.get('/v1/config/gateway.routes')).status, 200, 'services read configuration');
    });

    it('a service is whoever holds its own key: catalog cannot register as orders, write gateway.routes, or sign as orders or the operator; the shared HMAC key makes no service', T, async () => {
        const catalog = client(svc, { identity: serviceIdentity('catalog') });
        expectProblem(await catalog.put('/v1/services/orders/instances/fake-o', inst), 403);
        expectProblem(await catalog.put('/v1/config/gateway.routes', { value: { routes: [] } }), 403);
        const as = (value) => client(svc, { identity: null, headers: { 'x-agora-identity': value } });
        const seed = serviceSeed('catalog');
        expectProblem(await as(serviceHeader('orders', { seed })).put('/v1/services/orders/instances/fake-o', inst), 401);
        expectProblem(await as(serviceHeader('agora', { seed })).put('/v1/config/gateway.routes', { value: { routes: [] } }), 401);
        for (const name of ['orders', 'agora']) {
            const old = identityHeader({ userId: name, roles: ['service'], hmac: true });
            expectProblem(await as(old).put('/v1/services/orders/instances/fake-o', inst), 401);
            expectProblem(await as(old).put('/v1/config/gateway.routes', { value: { routes: [] } }), 401);
            expectProblem(await as(old).get('/v1/services'), 401);
        }
        const op = client(svc, { identity: OPERATOR });
        assert.deepEqual((await op.get('/v1/services/orders')).json.instances, [], 'no fake orders instance');
        assert.equal((await op.put('/v1/config/gateway.routes', { value: { routes: [] } })).status, 200);
    });
});
