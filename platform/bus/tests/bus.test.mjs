// SPDX-License-Identifier: MIT
// Bus component tests: the real binary on a free port with a temporary
// database, driven over HTTP and checked against platform/bus/openapi.yaml:
// long-poll latency, leases, nacks, dead letters, per-subject order,
// de-duplication, patterns, durability under SIGKILL, graceful shutdown,
// metrics and validation.
//
// Waiting is always for an observable condition (waitFor) or for a request
// the bus itself holds, never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import { cleanup, makeTempDir, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { client, errorFields, expectProblem, mapConcurrent, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { identityHeader, OPERATOR, serviceHeader, serviceIdentity, serviceSeed } from '../../../tests/lib/identity.mjs';

const T = { timeout: 30_000 };
const PROMTOOL = '/usr/bin/promtool';
// Bound on the time from a publish's answer to a held pull's answer. Generous
// for an ASan build on a busy 2-core machine, far below the pull's wait_ms.
const WAKE_BOUND_MS = 500;

after(() => cleanup());

let idSeq = 0;
function uid(prefix = 'm') {
    idSeq += 1;
    return `${prefix}-${idSeq}-${crypto.randomBytes(4).toString('hex')}`;
}

async function putSub(api, name, body) {
    const r = await api.put(`/v1/subscriptions/${name}`, body);
    assert.ok(r.status === 201 || r.status === 200, `PUT subscription ${name}: ${r.status} ${r.text}`);
    return r.json;
}

// Publish 'messages' ([{id?, topic, subject?, data}]); returns the results.
async function publish(api, messages) {
    const body = { messages: messages.map((m) => ({ id: m.id ?? uid(), data: m.data ?? null, ...m })) };
    const r = await api.post('/v1/messages', body);
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
    assert.equal(r.json.results.length, messages.length);
    return r.json.results;
}

// Pull; returns { messages, ms } after asserting 200.
async function pull(api, name, body = {}) {
    const t0 = performance.now();
    const r = await api.post(`/v1/subscriptions/${name}/pull`, body);
    const ms = performance.now() - t0;
    assert.equal(r.status, 200, `pull ${name}: ${r.status} ${r.text}`);
    assert.ok(Array.isArray(r.json.messages), r.text);
    return { messages: r.json.messages, ms };
}

async function ack(api, name, ackIds) {
    const r = await api.post(`/v1/subscriptions/${name}/ack`, { ack_ids: ackIds });
    assert.equal(r.status, 200, `ack: ${r.text}`);
    return r.json.acked;
}

async function nack(api, name, ackIds, extra = {}) {
    const r = await api.post(`/v1/subscriptions/${name}/nack`, { ack_ids: ackIds, ...extra });
    assert.equal(r.status, 200, `nack: ${r.text}`);
    return r.json.nacked;
}

async function metrics(api) {
    const r = await api.get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

async function subInfo(api, name) {
    const r = await api.get(`/v1/subscriptions/${name}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
}

// Wait until the bus holds at least 'n' pulls.
async function waitHeld(api, n) {
    await waitFor(async () => metricValue(await metrics(api), 'bus_pull_waiting') >= n, {
        message: `${n} held pulls`,
    });
}

function assertMessage(m) {
    assert.deepEqual(Object.keys(m).sort(), ['ack_id', 'attempt', 'data', 'id', 'published_at', 'seq', 'subject', 'topic']);
    assert.match(m.ack_id, /^\d+\.\d+$/);
    assert.ok(Number.isInteger(m.seq) && m.seq > 0);
    assert.ok(Number.isInteger(m.attempt) && m.attempt >= 1);
    assert.match(m.published_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
}

// ---------------------------------------------------------------------------

describe('bus API (one process)', () => {
    let svc;
    let api;

    before(async () => {
        svc = await startService('bus', { env: { AGORA_ACCESS_LOG: 'false' } });
        api = client(svc, { identity: OPERATOR });
    });

    after(async () => {
        if (svc) assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
    });

    it('refuses every operation without a service identity (security issue: forged events, purges)', T, async () => {
        await putSub(api, 'guarded', { topics: ['user.*'] });
        const anon = client(svc, { identity: null });
        const user = client(svc, { identity: { userId: 'u1', roles: ['admin', 'customer'] } });
        const forgedKey = client(svc, { identity: null, headers: { 'x-agora-identity': identityHeader({ ...OPERATOR, key: 'cd'.repeat(32) }) } });
        const forged = { messages: [{ topic: 'user.registered', subject: 'victim', data: { text: 'click here' } }] };
        for (const [method, path, body] of [
            ['POST', '/v1/messages', forged],
            ['GET', '/v1/topics'],
            ['GET', '/v1/subscriptions'],
            ['PUT', '/v1/subscriptions/rogue', { topics: ['*'] }],
            ['GET', '/v1/subscriptions/guarded'],
            ['POST', '/v1/subscriptions/guarded/pull', { max: 10, wait_ms: 0 }],
            ['POST', '/v1/subscriptions/guarded/ack', { ack_ids: ['x'] }],
            ['GET', '/v1/subscriptions/guarded/dead-letters'],
            ['DELETE', '/v1/subscriptions/guarded/dead-letters'],
            ['POST', '/v1/subscriptions/guarded/dead-letters/replay', {}],
            ['DELETE', '/v1/subscriptions/guarded'],
        ]) {
            expectProblem(await anon.request(method, path, { json: body }), 401);
            expectProblem(await forgedKey.request(method, path, { json: body }), 401);
            expectProblem(await user.request(method, path, { json: body }), 403);
        }
        // Nothing got in, nothing was taken away.
        const { messages } = await pull(api, 'guarded', { wait_ms: 0 });
        assert.deepEqual(messages, []);
        assert.equal((await api.get('/v1/subscriptions/guarded')).status, 200);
        assert.equal((await api.get('/v1/subscriptions/rogue')).status, 404);
    });

    it('least privilege: a service publishes only its own event types and consumes only its own subscriptions; dead letters are the operator\'s', T, async () => {
        await putSub(api, 'orders', { topics: ['product.*', 'payment.*'], max_attempts: 1 });
        const catalog = client(svc, { identity: serviceIdentity('catalog') });
        const orders = client(svc, { identity: serviceIdentity('orders') });
        const forgedOrder = { messages: [{ id: uid(), topic: 'order.created', subject: 'o-1', data: {} }] };
        let r = await catalog.post('/v1/messages', forgedOrder);
        expectProblem(r, 403);
        assert.match(r.json.detail, /'catalog' may not publish 'order\.created'/);
        // One foreign topic in a batch refuses the whole batch.
        r = await catalog.post('/v1/messages', { messages: [{ id: uid(), topic: 'product.created', subject: 'p', data: {} }, ...forgedOrder.messages] });
        expectProblem(r, 403);
        assert.equal((await catalog.post('/v1/messages', { messages: [{ id: uid(), topic: 'product.created', subject: 'p-1', data: {} }] })).status, 200);
        assert.equal((await orders.post('/v1/messages', { messages: [{ id: uid(), topic: 'cmd.payment.authorize', subject: 'o-1', data: {} }] })).status, 200);
        expectProblem(await orders.post('/v1/messages', { messages: [{ id: uid(), topic: 'payment.authorized', subject: 'o-1', data: {} }] }), 403);
        // Another service's subscription: no pull, ack, nack, ensure or delete.
        for (const [method, path, body] of [
            ['POST', '/v1/subscriptions/orders/pull', { max: 10, wait_ms: 0 }],
            ['POST', '/v1/subscriptions/orders/ack', { ack_ids: ['1.1'] }],
            ['POST', '/v1/subscriptions/orders/nack', { ack_ids: ['1.1'] }],
            ['PUT', '/v1/subscriptions/orders', { topics: ['*'] }],
            ['PUT', '/v1/subscriptions/ordersx', { topics: ['*'] }],
            ['DELETE', '/v1/subscriptions/orders'],
            // Dead letters: the operator's (and administrators', on /v1/admin).
            ['GET', '/v1/subscriptions/orders/dead-letters'],
            ['GET', '/v1/subscriptions/orders/dead-letters/1'],
            ['POST', '/v1/subscriptions/orders/dead-letters/replay', {}],
            ['DELETE', '/v1/subscriptions/orders/dead-letters'],
        ]) {
            expectProblem(await catalog.request(method, path, { json: body }), 403);
        }
        expectProblem(await orders.request('DELETE', '/v1/subscriptions/orders/dead-letters'), 403);
        // Its own: the owner pulls what catalog published; 'catalog.*' is catalog's too.
        const { messages } = await pull(orders, 'orders', { wait_ms: 5000 });
        assert.deepEqual(messages.map((m) => m.topic), ['product.created']);
        assert.equal((await catalog.put('/v1/subscriptions/catalog.audit', { topics: ['product.*'] })).status, 201);
        assert.equal((await api.request('DELETE', '/v1/subscriptions/orders/dead-letters')).status, 200);
    });

    it('a service identity is made only with the service\'s own key: not with the shared HMAC key, not with another service\'s key, not after it expires (cached or not)', T, async () => {
        const msg = { messages: [{ id: uid(), topic: 'product.updated', subject: 'p-2', data: {} }] };
        const as = (value) => client(svc, { identity: null, headers: { 'x-agora-identity': value } });
        // The old form: HMAC under AGORA_INTERNAL_KEY with the service role.
        for (const name of ['catalog', 'agora']) {
            const old = identityHeader({ userId: name, roles: ['service'], hmac: true });
            expectProblem(await as(old).post('/v1/messages', msg), 401);
            expectProblem(await as(old).get('/v1/subscriptions'), 401);
        }
        // Catalog's own key signing as orders, or as the operator.
        const catalogSeed = serviceSeed('catalog');
        expectProblem(await as(serviceHeader('orders', { seed: catalogSeed })).post('/v1/messages', msg), 401);
        expectProblem(await as(serviceHeader('agora', { seed: catalogSeed })).request('DELETE', '/v1/subscriptions/orders/dead-letters'), 401);
        // A name no key is listed for.
        expectProblem(await as(serviceHeader('rogue')).get('/v1/topics'), 401);
        // Expiry: the same header text, accepted (and cached), then refused.
        const exp = Math.floor(Date.now() / 1000) + 1;
        const short = serviceHeader('catalog', { exp });
        assert.equal((await as(short).post('/v1/messages', msg)).status, 200);
        assert.equal((await as(short).get('/v1/topics')).status, 200);
        await waitFor(async () => Math.floor(Date.now() / 1000) > exp && (await as(short).get('/v1/topics')).status === 401, { timeoutMs: 5000, message: 'the expired header is refused' });
        expectProblem(await as(short).post('/v1/messages', msg), 401);
        // A repeated header is served from the cache of verified headers.
        const m = await metrics(api);
        assert.ok(metricValue(m, 'service_identity_checks_total', { result: 'cached' }) > 0);
        assert.ok(metricValue(m, 'service_identity_checks_total', { result: 'verified' }) > 0);
    });

    it('the /v1/admin routes (the console, through the gateway): an administrator reads and replays; a customer gets 403, no identity 401, a bare service 403', T, async () => {
        await putSub(api, 'console', { topics: ['console.t'], max_attempts: 1 });
        await publish(api, [{ topic: 'console.t', subject: 'k', data: { n: 1 } }]);
        const { messages } = await pull(api, 'console', { wait_ms: 5000 });
        assert.equal(messages.length, 1);
        assert.equal((await api.post('/v1/subscriptions/console/nack', { ack_ids: [messages[0].ack_id], error: 'no' })).status, 200);
        const seq = messages[0].seq;
        const admin = client(svc, { identity: { userId: 'a1', roles: ['admin'] } });
        const customer = client(svc, { identity: { userId: 'c1', roles: ['customer'] } });
        const anon = client(svc, { identity: null });
        const routes = [
            ['GET', '/v1/admin/subscriptions'],
            ['GET', '/v1/admin/subscriptions/console/dead-letters'],
            ['GET', `/v1/admin/subscriptions/console/dead-letters/${seq}`],
            ['POST', '/v1/admin/subscriptions/console/replay-dead-letters', { seqs: [seq + 1000] }],
        ];
        for (const [method, path, body] of routes) {
            expectProblem(await anon.request(method, path, { json: body }), 401);
            expectProblem(await customer.request(method, path, { json: body }), 403);
            // The admin routes are for people: a service uses its own routes.
            expectProblem(await api.request(method, path, { json: body }), 403);
        }
        const list = await admin.get('/v1/admin/subscriptions');
        assert.equal(list.status, 200);
        assert.equal(list.json.subscriptions.find((x) => x.name === 'console').backlog.dead_letters, 1);
        assert.deepEqual((await admin.get('/v1/admin/subscriptions/console/dead-letters')).json.messages.map((m) => m.seq), [seq]);
        assert.equal((await admin.get(`/v1/admin/subscriptions/console/dead-letters/${seq}`)).json.last_error, 'no');
        assert.equal((await admin.post('/v1/admin/subscriptions/console/replay-dead-letters', { seqs: [seq] })).json.replayed, 1);
        // An administrator cannot consume, publish or delete.
        expectProblem(await admin.post('/v1/subscriptions/console/pull', { wait_ms: 0 }), 403);
        expectProblem(await admin.request('DELETE', '/v1/subscriptions/console/dead-letters'), 403);
        const again = await pull(api, 'console', { wait_ms: 5000 });
        assert.equal(again.messages[0].seq, seq);
    });

    it('a held pull is answered right after a publish, long before its wait_ms', T, async () => {
        await putSub(api, 'lp', { topics: ['lp.t'] });
        const held = pull(api, 'lp', { wait_ms: 20_000 });
        await waitHeld(api, 1);
        const t0 = performance.now();
        const [res] = await publish(api, [{ topic: 'lp.t', subject: 'k', data: { hello: 'world', n: [1, 2.5, null] } }]);
        const { messages } = await held;
        const wake = performance.now() - t0;
        assert.ok(wake < WAKE_BOUND_MS, `pull answered ${wake.toFixed(0)} ms after the publish`);
        assert.equal(messages.length, 1);
        assertMessage(messages[0]);
        assert.equal(messages[0].seq, res.seq);
        assert.equal(messages[0].attempt, 1);
        assert.equal(messages[0].topic, 'lp.t');
        assert.equal(messages[0].subject, 'k');
        assert.deepEqual(messages[0].data, { hello: 'world', n: [1, 2.5, null] });
        assert.equal(await ack(api, 'lp', [messages[0].ack_id]), 1);
    });

    it('an empty pull returns an empty list at its wait_ms, not before; wait_ms 0 at once', T, async () => {
        await putSub(api, 'empty', { topics: ['empty.t'] });
        const { messages, ms } = await pull(api, 'empty', { wait_ms: 400 });
        assert.deepEqual(messages, []);
        assert.ok(ms >= 395 && ms < 400 + 1500, `empty pull took ${ms.toFixed(0)} ms`);
        const now = await pull(api, 'empty', { wait_ms: 0 });
        assert.deepEqual(now.messages, []);
        assert.ok(now.ms < 300, `wait_ms 0 took ${now.ms.toFixed(0)} ms`);
        // A pull with no body takes the defaults and answers at once when
        // there is a message.
        await publish(api, [{ topic: 'empty.t' }]);
        const r = await api.request('POST', '/v1/subscriptions/empty/pull');
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.messages.length, 1);
    });

    it('an expired lease redelivers with attempt 2; the old ack id is then stale', T, async () => {
        await putSub(api, 'lease', { topics: ['lease.t'], ack_deadline_ms: 300, retry_delay_ms: 0 });
        const [res] = await publish(api, [{ topic: 'lease.t', data: 1 }]);
        const first = await pull(api, 'lease', { wait_ms: 5000 });
        const t1 = performance.now();
        assert.equal(first.messages.length, 1);
        assert.equal(first.messages[0].attempt, 1);
        const second = await pull(api, 'lease', { wait_ms: 5000 });
        const gap = performance.now() - t1;
        assert.equal(second.messages.length, 1);
        assert.equal(second.messages[0].seq, res.seq);
        assert.equal(second.messages[0].attempt, 2);
        assert.ok(gap >= 250, `redelivered ${gap.toFixed(0)} ms after the first hand-out`);
        assert.notEqual(second.messages[0].ack_id, first.messages[0].ack_id);
        assert.equal(await ack(api, 'lease', [first.messages[0].ack_id, '999999.1']), 0, 'stale and unknown ids are ignored');
        assert.equal(await ack(api, 'lease', [second.messages[0].ack_id, second.messages[0].ack_id]), 1);
        const after = await pull(api, 'lease', { wait_ms: 600 });
        assert.deepEqual(after.messages, [], 'an acked message is not redelivered');
    });

    it('nack with a delay redelivers after the delay and not before; delay 0 at once', T, async () => {
        await putSub(api, 'nk', { topics: ['nk.t'], ack_deadline_ms: 30_000 });
        await publish(api, [{ topic: 'nk.t', data: 'x' }]);
        const first = await pull(api, 'nk', { wait_ms: 5000 });
        assert.equal(first.messages.length, 1);
        const t0 = performance.now();
        assert.equal(await nack(api, 'nk', [first.messages[0].ack_id], { delay_ms: 800 }), 1);
        const early = await pull(api, 'nk', { wait_ms: 0 });
        assert.deepEqual(early.messages, [], 'not deliverable during the delay');
        const info = await subInfo(api, 'nk');
        assert.equal(info.backlog.delayed, 1);
        const again = await pull(api, 'nk', { wait_ms: 5000 });
        const waited = performance.now() - t0;
        assert.equal(again.messages.length, 1);
        assert.equal(again.messages[0].attempt, 2);
        assert.ok(waited >= 800, `redelivered after ${waited.toFixed(0)} ms`);
        assert.ok(waited < 800 + 1500, `redelivered only after ${waited.toFixed(0)} ms`);
        assert.equal(await nack(api, 'nk', [again.messages[0].ack_id], { delay_ms: 0 }), 1);
        const third = await pull(api, 'nk', { wait_ms: 0 });
        assert.equal(third.messages.length, 1);
        assert.equal(third.messages[0].attempt, 3);
        assert.equal(await nack(api, 'nk', [again.messages[0].ack_id]), 0, 'a stale ack id is not nacked');
        assert.equal(await ack(api, 'nk', [third.messages[0].ack_id]), 1);
    });

    it('dead-letters after max_attempts; lists, gets, replays and purges them', T, async () => {
        await putSub(api, 'dl', { topics: ['dl.t'], ack_deadline_ms: 200, retry_delay_ms: 0, max_attempts: 2 });
        const [res] = await publish(api, [{ topic: 'dl.t', subject: 's', data: { order: 7 } }]);
        const a1 = await pull(api, 'dl', { wait_ms: 5000 });
        assert.equal(await nack(api, 'dl', [a1.messages[0].ack_id], { delay_ms: 0, error: 'boom' }), 1);
        const a2 = await pull(api, 'dl', { wait_ms: 5000 });
        assert.equal(a2.messages[0].attempt, 2);
        assert.equal(await nack(api, 'dl', [a2.messages[0].ack_id], { delay_ms: 0, error: 'boom again' }), 1);
        assert.deepEqual((await pull(api, 'dl', { wait_ms: 0 })).messages, [], 'a dead letter is not delivered');
        const info = await subInfo(api, 'dl');
        assert.equal(info.backlog.dead_letters, 1);
        assert.equal(info.backlog.ready + info.backlog.in_flight + info.backlog.delayed, 0);

        const list = await api.get('/v1/subscriptions/dl/dead-letters?limit=10');
        assert.equal(list.status, 200, list.text);
        assert.equal(list.json.messages.length, 1);
        const d = list.json.messages[0];
        assert.equal(d.seq, res.seq);
        assert.equal(d.attempts, 2);
        assert.equal(d.last_error, 'boom again');
        assert.deepEqual(d.data, { order: 7 });
        assert.match(d.dead_at, /Z$/);
        const one = await api.get(`/v1/subscriptions/dl/dead-letters/${res.seq}`);
        assert.equal(one.status, 200);
        assert.deepEqual(one.json, d);

        const replay = await api.post('/v1/subscriptions/dl/dead-letters/replay', { seqs: [res.seq, 999_999] });
        assert.equal(replay.status, 200, replay.text);
        assert.equal(replay.json.replayed, 1);
        const r1 = await pull(api, 'dl', { wait_ms: 5000 });
        assert.equal(r1.messages.length, 1);
        assert.equal(r1.messages[0].seq, res.seq);
        assert.equal(r1.messages[0].attempt, 1, 'attempts restart after a replay');
        // Now let both leases run out: dead-lettered by the ack deadline.
        const r2 = await pull(api, 'dl', { wait_ms: 5000 });
        assert.equal(r2.messages[0].attempt, 2);
        await waitFor(async () => (await subInfo(api, 'dl')).backlog.dead_letters === 1, { message: 'dead letter after expiry' });
        const again = await api.get(`/v1/subscriptions/dl/dead-letters/${res.seq}`);
        assert.equal(again.json.last_error, 'ack deadline exceeded');

        const purge = await api.delete('/v1/subscriptions/dl/dead-letters');
        assert.equal(purge.status, 200, purge.text);
        assert.equal(purge.json.purged, 1);
        assert.deepEqual((await api.get('/v1/subscriptions/dl/dead-letters')).json.messages, []);
        expectProblem(await api.get(`/v1/subscriptions/dl/dead-letters/${res.seq}`), 404);
        assert.equal((await subInfo(api, 'dl')).backlog.dead_letters, 0);
    });

    it('keeps per-subject order under concurrent publishers, one in flight per subject', { timeout: 60_000 }, async () => {
        await putSub(api, 'ord', { topics: ['ord.t'], ack_deadline_ms: 30_000 });
        const PUBLISHERS = 4;
        const PER = 150;
        const SUBJECTS = ['k0', 'k1', 'k2', 'k3', 'k4', ''];
        const total = PUBLISHERS * PER;
        const published = new Map(); // id -> { seq, subject }
        const received = []; // { id, seq, subject } in arrival order
        let pulls = 0;
        const consumer = (async () => {
            while (received.length < total) {
                const { messages } = await pull(api, 'ord', { max_messages: 40, wait_ms: 5000 });
                pulls++;
                assert.ok(messages.length > 0, `stalled with ${received.length} of ${total}`);
                const inFlight = new Set();
                for (const m of messages) {
                    if (m.subject !== '') {
                        assert.ok(!inFlight.has(m.subject), `two messages of subject ${m.subject} in flight at once`);
                        inFlight.add(m.subject);
                    }
                    received.push({ id: m.id, seq: m.seq, subject: m.subject });
                }
                assert.equal(await ack(api, 'ord', messages.map((m) => m.ack_id)), messages.length);
            }
        })();
        await mapConcurrent([...Array(PUBLISHERS).keys()], PUBLISHERS, async (p) => {
            for (let i = 0; i < PER; i += 5) {
                const batch = [];
                for (let j = i; j < i + 5; j++) {
                    batch.push({ id: `ord-${p}-${j}`, topic: 'ord.t', subject: SUBJECTS[(p + j) % SUBJECTS.length], data: { p, j } });
                }
                const results = await publish(api, batch);
                results.forEach((r, k) => published.set(r.id, { seq: r.seq, subject: batch[k].subject }));
            }
        });
        await consumer;
        assert.equal(received.length, total);
        assert.equal(new Set(received.map((m) => m.id)).size, total, 'each message once');
        for (const s of SUBJECTS.filter((x) => x !== '')) {
            const got = received.filter((m) => m.subject === s).map((m) => m.seq);
            const want = [...published.values()].filter((m) => m.subject === s).map((m) => m.seq).sort((a, b) => a - b);
            assert.deepEqual(got, want, `subject ${s} arrives in publish order`);
        }
        assert.ok(pulls > 1);
    });

    it('de-duplicates by message id: duplicate:true with the original seq, one delivery', T, async () => {
        await putSub(api, 'dd', { topics: ['dd.t'] });
        const id = uid('dup');
        const [a] = await publish(api, [{ id, topic: 'dd.t', data: 1 }]);
        assert.equal(a.duplicate, false);
        const [b, c, e] = await publish(api, [
            { id, topic: 'dd.t', data: 2 },
            { id: `${id}-other`, topic: 'dd.t', data: 3 },
            { id: `${id}-other`, topic: 'dd.t', data: 4 },
        ]);
        assert.deepEqual(b, { id, seq: a.seq, duplicate: true });
        assert.equal(c.duplicate, false);
        assert.deepEqual(e, { id: `${id}-other`, seq: c.seq, duplicate: true }, 'a repeat within one batch');
        const { messages } = await pull(api, 'dd', { wait_ms: 0 });
        assert.deepEqual(messages.map((m) => [m.id, m.data]), [[id, 1], [`${id}-other`, 3]]);
    });

    it('matches patterns: exact topic, prefix.*, and *', T, async () => {
        await putSub(api, 'p-orders', { topics: ['order.*'] });
        await putSub(api, 'p-pay', { topics: ['payment.captured'] });
        await putSub(api, 'p-all', { topics: ['*'] });
        await putSub(api, 'p-two', { topics: ['payment.captured', 'order.created'] });
        const topics = ['order.created', 'order.x.y', 'orderx', 'order', 'payment.captured', 'payment.failed'];
        await publish(api, topics.map((topic) => ({ id: uid(topic), topic })));
        const seen = async (name) => {
            const { messages } = await pull(api, name, { max_messages: 100, wait_ms: 0 });
            return messages.map((m) => m.topic).sort();
        };
        assert.deepEqual(await seen('p-orders'), ['order.created', 'order.x.y']);
        assert.deepEqual(await seen('p-pay'), ['payment.captured']);
        assert.deepEqual(await seen('p-all'), [...topics].sort());
        assert.deepEqual(await seen('p-two'), ['order.created', 'payment.captured'], 'a message goes once to a subscription with several matching patterns');
        for (const name of ['p-orders', 'p-pay', 'p-all', 'p-two']) {
            const r = await api.delete(`/v1/subscriptions/${name}`);
            assert.equal(r.status, 204);
            expectProblem(await api.get(`/v1/subscriptions/${name}`), 404);
        }
    });

    it('a subscription created later does not see older messages', T, async () => {
        const [old] = await publish(api, [{ topic: 'late.t', data: 'old' }]);
        await putSub(api, 'late', { topics: ['late.t'] });
        assert.deepEqual((await pull(api, 'late', { wait_ms: 0 })).messages, []);
        const [fresh] = await publish(api, [{ topic: 'late.t', data: 'new' }]);
        const { messages } = await pull(api, 'late', { wait_ms: 0 });
        assert.deepEqual(messages.map((m) => m.seq), [fresh.seq]);
        assert.ok(fresh.seq > old.seq);
        const topics = await api.get('/v1/topics');
        assert.equal(topics.status, 200);
        const t = topics.json.topics.find((x) => x.name === 'late.t');
        assert.deepEqual(t, { name: 'late.t', messages: 2, last_seq: fresh.seq });
        const names = topics.json.topics.map((x) => x.name);
        assert.deepEqual(names, [...names].sort(), 'topics by name');
    });

    it('creates (201) and updates (200) subscriptions; lists them by name with their backlog', T, async () => {
        const name = 'crud-sub';
        const r1 = await api.put(`/v1/subscriptions/${name}`, { topics: ['crud.a'] });
        assert.equal(r1.status, 201, r1.text);
        assert.equal(r1.header('location'), `/v1/subscriptions/${name}`);
        assert.deepEqual(r1.json.topics, ['crud.a']);
        assert.equal(r1.json.ack_deadline_ms, 30_000);
        assert.equal(r1.json.max_attempts, 5);
        assert.equal(r1.json.retry_delay_ms, 1000);
        assert.deepEqual(r1.json.backlog, { ready: 0, in_flight: 0, delayed: 0, dead_letters: 0, oldest_unacked_age_ms: 0 });
        await publish(api, [{ topic: 'crud.a' }, { topic: 'crud.b' }]);
        const r2 = await api.put(`/v1/subscriptions/${name}`, { topics: ['crud.b'], max_attempts: 9 });
        assert.equal(r2.status, 200, r2.text);
        assert.deepEqual(r2.json.topics, ['crud.b']);
        assert.equal(r2.json.max_attempts, 9);
        assert.equal(r2.json.created_at, r1.json.created_at);
        assert.equal(r2.json.backlog.ready, 1, 'the message published before the update stays');
        await publish(api, [{ topic: 'crud.a' }, { topic: 'crud.b' }]);
        const { messages } = await pull(api, name, { wait_ms: 0 });
        assert.deepEqual(messages.map((m) => m.topic), ['crud.a', 'crud.b']);
        const list = await api.get('/v1/subscriptions');
        assert.equal(list.status, 200);
        const names = list.json.subscriptions.map((s) => s.name);
        assert.ok(names.includes(name));
        assert.deepEqual(names, [...names].sort());
        const mine = list.json.subscriptions.find((s) => s.name === name);
        assert.equal(mine.backlog.in_flight, 2);
        assert.ok(mine.backlog.oldest_unacked_age_ms >= 0);
    });

    it('rejects bad publishes: 400, 413, 415, 422 with field errors', T, async () => {
        const bad = async (body, fields) => {
            const p = expectProblem(await api.post('/v1/messages', body), 422);
            assert.deepEqual(errorFields(p), fields, JSON.stringify(body).slice(0, 200));
        };
        await bad({}, ['messages']);
        await bad({ messages: [] }, ['messages']);
        await bad({ messages: [{ topic: 'ok', data: 1 }] }, ['messages[0].id']);
        await bad({ messages: [{ id: 'x', topic: 'Bad Topic', data: 1 }] }, ['messages[0].topic']);
        await bad({ messages: [{ id: 'x'.repeat(129), topic: 't', data: 1 }] }, ['messages[0].id']);
        await bad({ messages: [{ id: 'x', topic: 't', subject: 's'.repeat(201), data: 1 }] }, ['messages[0].subject']);
        await bad({ messages: [{ id: 'x', topic: 't' }] }, ['messages[0].data']);
        await bad({ messages: [{ id: 'x', topic: 't', data: 'y'.repeat(256 * 1024) }] }, ['messages[0].data']);
        await bad({ messages: Array.from({ length: 1001 }, (_, i) => ({ id: `i${i}`, topic: 't', data: i })) }, ['messages']);
        await bad({ messages: [{ id: 'x', topic: 't', data: 1, extra: true }] }, ['messages[0].extra']);
        expectProblem(await api.request('POST', '/v1/messages', { body: '{"messages":', contentType: 'application/json' }), 400);
        expectProblem(await api.request('POST', '/v1/messages', { body: 'x', contentType: 'text/plain' }), 415);
        const big = JSON.stringify({ messages: [{ id: 'x', topic: 't', data: 'z'.repeat(9 << 20) }] });
        const r = await api.request('POST', '/v1/messages', { body: big, contentType: 'application/json' }).catch((err) => err);
        if (!(r instanceof Error)) assert.equal(r.status, 413, 'a body over 8 MiB');
        // 7 MiB in one publish is fine (the body limit is 8 MiB).
        const seven = Array.from({ length: 28 }, (_, i) => ({ id: uid('big'), topic: 'big.t', data: 'q'.repeat(250 * 1024 + i) }));
        await publish(api, seven);
    });

    it('rejects bad subscription, pull, ack and dead-letter requests', T, async () => {
        let p = expectProblem(await api.put('/v1/subscriptions/Bad-Name', { topics: ['a'] }), 422);
        assert.deepEqual(errorFields(p), ['name']);
        p = expectProblem(await api.put('/v1/subscriptions/v1', { topics: ['order.*.x', '*'], ack_deadline_ms: 50 }), 422);
        assert.deepEqual(errorFields(p), ['topics[0]', 'ack_deadline_ms']);
        p = expectProblem(await api.put('/v1/subscriptions/v1', { topics: [] }), 422);
        assert.deepEqual(errorFields(p), ['topics']);
        expectProblem(await api.get('/v1/subscriptions/v1'), 404);
        expectProblem(await api.post('/v1/subscriptions/nope/pull', {}), 404);
        expectProblem(await api.post('/v1/subscriptions/nope/ack', { ack_ids: ['1.1'] }), 404);
        expectProblem(await api.delete('/v1/subscriptions/nope'), 404);
        await putSub(api, 'val', { topics: ['val.t'] });
        p = expectProblem(await api.post('/v1/subscriptions/val/pull', { max_messages: 0, wait_ms: 120_001 }), 422);
        assert.deepEqual(errorFields(p), ['max_messages', 'wait_ms']);
        p = expectProblem(await api.post('/v1/subscriptions/val/pull', { max_messages: 1001, other: 1 }), 422);
        assert.deepEqual(errorFields(p).sort(), ['max_messages', 'other']);
        p = expectProblem(await api.post('/v1/subscriptions/val/ack', { ack_ids: 'x' }), 422);
        assert.deepEqual(errorFields(p), ['ack_ids']);
        p = expectProblem(await api.post('/v1/subscriptions/val/ack', { ack_ids: ['1.1', 'nope'] }), 422);
        assert.deepEqual(errorFields(p), ['ack_ids[1]']);
        p = expectProblem(await api.post('/v1/subscriptions/val/nack', { ack_ids: ['1.1'], delay_ms: -1 }), 422);
        assert.deepEqual(errorFields(p), ['delay_ms']);
        p = expectProblem(await api.post('/v1/subscriptions/val/dead-letters/replay', { seqs: [0] }), 422);
        assert.deepEqual(errorFields(p), ['seqs[0]']);
        expectProblem(await api.get('/v1/subscriptions/val/dead-letters?limit=0'), 400);
        expectProblem(await api.get('/v1/subscriptions/val/dead-letters/abc'), 404);
        expectProblem(await api.get('/v1/subscriptions/val/dead-letters/12345'), 404);
        expectProblem(await api.request('PATCH', '/v1/subscriptions/val'), 405);
        expectProblem(await api.get('/v1/nothing'), 404);
    });

    it('exposes bus metrics that pass promtool check metrics', { ...T, skip: !fs.existsSync(PROMTOOL) && 'no promtool' }, async () => {
        await putSub(api, 'met', { topics: ['met.t'], ack_deadline_ms: 30_000 });
        const before = await metrics(api);
        await publish(api, [{ topic: 'met.t', subject: 'a' }, { topic: 'met.t', subject: 'b' }, { topic: 'met.t' }]);
        const { messages } = await pull(api, 'met', { wait_ms: 0 });
        assert.equal(messages.length, 3);
        await ack(api, 'met', [messages[0].ack_id]);
        const m = await metrics(api);
        const sub = { subscription: 'met' };
        assert.equal(metricValue(m, 'bus_messages_published_total', { topic: 'met.t' }) - metricValue(before, 'bus_messages_published_total', { topic: 'met.t' }), 3);
        assert.equal(metricValue(m, 'bus_messages_delivered_total', sub), 3);
        assert.equal(metricValue(m, 'bus_messages_acked_total', sub), 1);
        assert.equal(metricValue(m, 'bus_backlog', sub), 2);
        assert.equal(metricValue(m, 'bus_dead_letters', sub), 0);
        assert.ok(metricValue(m, 'bus_oldest_unacked_age_seconds', sub) >= 0);
        assert.ok(metricValue(m, 'bus_redeliveries_total', { subscription: 'lease' }) >= 1);
        assert.ok(metricValue(m, 'bus_publish_batch_size_count') > metricValue(before, 'bus_publish_batch_size_count'));
        assert.equal(metricValue(m, 'bus_pull_waiting'), 0);
        const body = (await api.get('/metrics')).text;
        const res = await new Promise((resolve, reject) => {
            const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
            let out = '';
            child.stdout.on('data', (d) => (out += d));
            child.stderr.on('data', (d) => (out += d));
            child.on('error', reject);
            child.on('close', (code) => resolve({ code, out }));
            child.stdin.end(body);
        });
        assert.equal(res.code, 0, `promtool:\n${res.out}`);
    });
});

describe('tracing: the bus\'s own spans', () => {
    it('a message with a sampled traceparent gets a publish and a deliver span, children of its writer; an unsampled one or one without gets none', T, async () => {
        const posts = [];
        const sink = http.createServer((req, res) => {
            let b = '';
            req.on('data', (c) => (b += c));
            req.on('end', () => {
                posts.push(JSON.parse(b));
                res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
            });
        });
        await new Promise((r) => sink.listen(0, '127.0.0.1', r));
        const svc = await startService('bus', { env: { AGORA_ACCESS_LOG: 'false', AGORA_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}` } });
        try {
            const api = client(svc, { identity: OPERATOR });
            await putSub(api, 'traced', { topics: ['tr.*'] });
            const hex = (n) => crypto.randomBytes(n).toString('hex');
            const sampled = { trace: hex(16), writer: hex(8) };
            const unsampled = { trace: hex(16), writer: hex(8) };
            const decoy = hex(16);
            // The unsampled message and the one without a traceparent come
            // first: their spans, were there any, would be exported no later
            // than the sampled message's, which the test waits for.
            const ids = await publish(api, [
                { id: uid(), topic: 'tr.unsampled', data: { id: 'u', traceparent: `00-${unsampled.trace}-${unsampled.writer}-00` } },
                { id: uid(), topic: 'tr.bare', data: { id: 'b', data: { traceparent: `00-${decoy}-${hex(8)}-01` } } },
                // The top-level member counts, not one inside "data", wherever it is.
                { id: 'msg-sampled', topic: 'tr.sampled', data: { specversion: '1.0', traceparent: `00-${sampled.trace}-${sampled.writer}-01`, data: { traceparent: `00-${decoy}-${hex(8)}-01`, x: [1, { y: '}' }] } } },
            ]);
            assert.equal(ids.length, 3);
            const got = await pull(api, 'traced', { max_messages: 10, wait_ms: 2000 });
            assert.equal(got.messages.length, 3);
            await ack(api, 'traced', got.messages.map((m) => m.ack_id));
            const spans = () => posts.flatMap((p) => p.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
            await waitFor(() => spans().filter((s) => s.traceId === sampled.trace).length >= 2, { timeoutMs: 10_000, message: 'the publish and deliver spans' });
            const attrs = (s) => Object.fromEntries(s.attributes.map((a) => [a.key, a.value.stringValue ?? a.value.intValue]));
            const mine = spans().filter((s) => s.traceId === sampled.trace);
            assert.deepEqual(mine.map((s) => s.name).sort(), ['deliver tr.sampled', 'publish tr.sampled']);
            for (const s of mine) {
                assert.equal(s.parentSpanId, sampled.writer, 'a child of the span that wrote the event');
                assert.equal(s.kind, 1);
                assert.notEqual(s.status?.code, 2);
                const a = attrs(s);
                assert.equal(a['messaging.system'], 'bus');
                assert.equal(a['messaging.destination.name'], 'tr.sampled');
                assert.equal(a['messaging.message.id'], 'msg-sampled');
                assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
            }
            const pub = mine.find((s) => s.name.startsWith('publish'));
            const dlv = mine.find((s) => s.name.startsWith('deliver'));
            assert.equal(attrs(pub)['messaging.operation.type'], 'publish');
            assert.equal(attrs(dlv)['messaging.operation.type'], 'deliver');
            assert.equal(attrs(dlv)['messaging.consumer.group.name'], 'traced');
            assert.equal(attrs(dlv)['messaging.message.delivery_attempt'], '1');
            assert.ok(!spans().some((s) => s.traceId === unsampled.trace), 'no span for an unsampled trace');
            assert.ok(!spans().some((s) => s.traceId === decoy), 'no span from a traceparent inside "data"');
            assert.deepEqual(spans().map((s) => s.traceId).filter((t) => t !== sampled.trace), [], 'only the sampled message has spans');
        } finally {
            assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(30));
            sink.close();
        }
    });
});

describe('graceful shutdown', () => {
    it('SIGTERM answers held pulls at once with empty lists and exits 0', T, async () => {
        const svc = await startService('bus');
        const api = client(svc, { identity: OPERATOR });
        await putSub(api, 'sd', { topics: ['sd.t'] });
        const held = [1, 2, 3].map(() => pull(api, 'sd', { wait_ms: 20_000 }));
        await waitHeld(api, 3);
        const t0 = performance.now();
        svc.kill('SIGTERM');
        const answers = await Promise.all(held);
        for (const a of answers) assert.deepEqual(a.messages, []);
        assert.deepEqual(await waitExit(svc, { timeoutMs: 5000 }), { code: 0, signal: null }, svc.stderr(20));
        const took = performance.now() - t0;
        assert.ok(took < 3000, `stopped in ${took.toFixed(0)} ms`);
        assert.deepEqual(svc.nonJsonLines(), [], 'no sanitizer reports or stray output');
    });

    it('state survives a restart: subscriptions, pending messages, dead letters', T, async () => {
        const dataDir = makeTempDir('agora-bus-restart-');
        let svc = await startService('bus', { dataDir });
        let api = client(svc, { identity: OPERATOR });
        await putSub(api, 'rs', { topics: ['rs.*'], max_attempts: 1, ack_deadline_ms: 30_000 });
        const results = await publish(api, [{ topic: 'rs.a', subject: 'x', data: 1 }, { topic: 'rs.b', data: 2 }]);
        const first = await pull(api, 'rs', { max_messages: 1, wait_ms: 0 });
        assert.equal(await nack(api, 'rs', [first.messages[0].ack_id]), 1);
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
        svc = await startService('bus', { dataDir });
        api = client(svc, { identity: OPERATOR });
        const info = await subInfo(api, 'rs');
        assert.deepEqual(info.topics, ['rs.*']);
        assert.equal(info.max_attempts, 1);
        assert.equal(info.backlog.dead_letters, 1);
        const { messages } = await pull(api, 'rs', { wait_ms: 0 });
        assert.deepEqual(messages.map((m) => m.seq), [results[1].seq]);
        const [next] = await publish(api, [{ topic: 'rs.a' }]);
        assert.ok(next.seq > results[1].seq, 'seqs keep growing across restarts');
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
    });
});

describe('subscription changes under load (AGORA_DURABILITY=full)', () => {
    it('creates and deletes subscriptions while batches wait for their fsync', { timeout: 60_000 }, async () => {
        const svc = await startService('bus', { env: { AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false' } });
        const api = client(svc, { identity: OPERATOR });
        await putSub(api, 'adm-a', { topics: ['adm.*'] });
        let published = 0;
        let done = false;
        const publishers = mapConcurrent([0, 1, 2, 3], 4, async (p) => {
            for (let i = 0; i < 40; i++) {
                await publish(api, Array.from({ length: 20 }, (_, k) => ({ id: `adm-${p}-${i}-${k}`, topic: 'adm.t', subject: `s${k}` })));
                published += 20;
            }
        }).finally(() => {
            done = true;
        });
        await waitFor(() => published >= 400, { message: 'publishing under way' });
        const created = await api.put('/v1/subscriptions/adm-b', { topics: ['adm.*'] });
        assert.equal(created.status, 201, created.text);
        let churn = 0;
        while (!done) {
            const name = `adm-tmp-${churn++}`;
            assert.equal((await api.put(`/v1/subscriptions/${name}`, { topics: ['adm.t'] })).status, 201);
            await pull(api, name, { wait_ms: 0, max_messages: 5 });
            assert.equal((await api.delete(`/v1/subscriptions/${name}`)).status, 204);
        }
        await publishers;
        assert.equal((await api.delete('/v1/subscriptions/adm-a')).status, 204);
        expectProblem(await api.get('/v1/subscriptions/adm-a'), 404);
        const backlog = (await subInfo(api, 'adm-b')).backlog;
        const seqs = [];
        for (;;) {
            const { messages } = await pull(api, 'adm-b', { max_messages: 1000, wait_ms: 0 });
            if (messages.length === 0) break;
            seqs.push(...messages.map((m) => m.seq));
            assert.equal(await ack(api, 'adm-b', messages.map((m) => m.ack_id)), messages.length);
        }
        assert.ok(churn > 0);
        assert.ok(seqs.length > 0 && seqs.length < 3200, `adm-b got ${seqs.length} of 3200`);
        assert.equal(seqs.length, backlog.ready + backlog.in_flight + backlog.delayed, 'backlog counts what is delivered');
        assert.equal(new Set(seqs).size, seqs.length, 'each message once');
        assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(20));
    });
});

describe('retention and the de-duplication window', () => {
    it('sweeps settled messages after AGORA_BUS_RETENTION, keeps pending and dead ones; ids expire', T, async () => {
        const svc = await startService('bus', {
            env: { AGORA_BUS_RETENTION: '1ms', AGORA_BUS_SWEEP_INTERVAL: '100ms', AGORA_BUS_DEDUP_WINDOW: '300ms' },
        });
        const api = client(svc, { identity: OPERATOR });
        const stored = async () => metricValue(await metrics(api), 'bus_messages_stored');
        await putSub(api, 'ret', { topics: ['ret.*'], max_attempts: 1, ack_deadline_ms: 30_000 });
        await publish(api, [1, 2, 3, 4, 5].map((i) => ({ topic: 'ret.a', data: i })));
        await publish(api, [{ topic: 'ret-none' }, { topic: 'ret-none' }]); // nobody subscribes
        const { messages } = await pull(api, 'ret', { max_messages: 10, wait_ms: 0 });
        assert.equal(messages.length, 5);
        assert.equal(await ack(api, 'ret', messages.slice(0, 3).map((m) => m.ack_id)), 3);
        assert.equal(await nack(api, 'ret', [messages[3].ack_id], { error: 'poison' }), 1);
        await waitFor(async () => (await stored()) === 2, { message: 'settled messages swept' });
        const dl = await api.get(`/v1/subscriptions/ret/dead-letters/${messages[3].seq}`);
        assert.equal(dl.status, 200, 'a dead letter keeps its message');
        assert.equal(dl.json.data, 4);
        assert.equal(await ack(api, 'ret', [messages[4].ack_id]), 1, 'the message in flight was kept');
        await waitFor(async () => (await stored()) === 1, { message: 'acked message swept' });
        assert.equal((await api.delete('/v1/subscriptions/ret/dead-letters')).json.purged, 1);
        await waitFor(async () => (await stored()) === 0, { message: 'purged dead letter swept' });

        const id = uid('window');
        const [a] = await publish(api, [{ id, topic: 'ret-none' }]);
        const [b] = await publish(api, [{ id, topic: 'ret-none' }]);
        assert.deepEqual(b, { id, seq: a.seq, duplicate: true });
        const c = await waitFor(
            async () => {
                const [r] = await publish(api, [{ id, topic: 'ret-none' }]);
                return r.duplicate ? null : r;
            },
            { message: 'the id forgotten after the dedup window' },
        );
        assert.ok(c.seq > a.seq);
        assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(20));
    });
});

describe('durability under SIGKILL (AGORA_DURABILITY=full)', () => {
    it('every publish answered 200 is delivered after a SIGKILL and restart', { timeout: 90_000 }, async (t) => {
        const dataDir = makeTempDir('agora-bus-kill-');
        const env = { AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false' };
        let svc = await startService('bus', { dataDir, env });
        let api = client(svc, { identity: OPERATOR });
        await putSub(api, 'dur', { topics: ['dur.*'], ack_deadline_ms: 5000, retry_delay_ms: 0 });

        const PUBLISHERS = 4;
        const PER = 2500;
        const BATCH = 50;
        const TOTAL = PUBLISHERS * PER;
        const confirmed = new Set();
        const received = new Map(); // id -> deliveries
        let failedCalls = 0;
        let restarted = null; // promise while the bus is down
        let resolveRestart;
        let killed = false;

        // Run 'fn(api)' until it succeeds, waiting for the restart after a
        // failure (the bus may be gone for a while).
        async function retrying(fn) {
            for (;;) {
                const current = api;
                try {
                    return await fn(current);
                } catch (err) {
                    failedCalls++;
                    if (!killed) throw err;
                    await restarted;
                    if (current === api) await waitFor(() => current !== api, { timeoutMs: 30_000, message: 'restart' });
                }
            }
        }

        const publishers = mapConcurrent([...Array(PUBLISHERS).keys()], PUBLISHERS, async (p) => {
            for (let i = 0; i < PER; i += BATCH) {
                const batch = Array.from({ length: BATCH }, (_, k) => ({ id: `dur-${p}-${i + k}`, topic: `dur.p${p}`, data: { p, i: i + k } }));
                const results = await retrying(async (a) => {
                    const r = await a.post('/v1/messages', { messages: batch });
                    if (r.status !== 200) throw new Error(`publish ${r.status}: ${r.text}`);
                    return r.json.results;
                });
                for (const r of results) confirmed.add(r.id);
            }
        });

        let consumerDone = false;
        const consumer = (async () => {
            while (!consumerDone) {
                const messages = await retrying(async (a) => {
                    const r = await a.post('/v1/subscriptions/dur/pull', { max_messages: 500, wait_ms: 500 });
                    if (r.status !== 200) throw new Error(`pull ${r.status}: ${r.text}`);
                    return r.json.messages;
                });
                for (const m of messages) received.set(m.id, (received.get(m.id) ?? 0) + 1);
                if (messages.length > 0) {
                    await retrying(async (a) => {
                        const r = await a.post('/v1/subscriptions/dur/ack', { ack_ids: messages.map((m) => m.ack_id) });
                        if (r.status !== 200 && r.status !== 404) throw new Error(`ack ${r.status}`);
                    });
                }
            }
        })();

        await waitFor(() => confirmed.size >= TOTAL * 0.3, { timeoutMs: 60_000, message: '30% confirmed' });
        restarted = new Promise((r) => {
            resolveRestart = r;
        });
        killed = true;
        const atKill = confirmed.size;
        svc.kill('SIGKILL');
        assert.deepEqual(await waitExit(svc), { code: null, signal: 'SIGKILL' });
        svc = await startService('bus', { dataDir, env });
        api = client(svc, { identity: OPERATOR });
        resolveRestart();

        await publishers;
        await waitFor(() => [...confirmed].every((id) => received.has(id)), { timeoutMs: 40_000, intervalMs: 100, message: 'every confirmed message delivered' });
        // Redeliveries of what was in flight at the kill drain too.
        await waitFor(
            async () => {
                const { backlog } = await subInfo(api, 'dur');
                return backlog.ready + backlog.in_flight + backlog.delayed === 0;
            },
            { timeoutMs: 20_000, message: 'backlog drained' },
        );
        consumerDone = true;
        await consumer;

        assert.equal(confirmed.size, TOTAL);
        const unknown = [...received.keys()].filter((id) => !confirmed.has(id));
        assert.deepEqual(unknown, [], 'nothing delivered that was never published');
        const dups = [...received.values()].reduce((a, n) => a + n - 1, 0);
        t.diagnostic(`killed after ${atKill} confirmed; ${failedCalls} failed calls; ${dups} redeliveries`);
        // Retried batches were de-duplicated: every message is stored once.
        const topics = (await api.get('/v1/topics')).json.topics.filter((x) => x.name.startsWith('dur.'));
        assert.equal(topics.reduce((a, x) => a + x.messages, 0), TOTAL, JSON.stringify(topics));
        assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(20));
    });
});
