// SPDX-License-Identifier: MIT
// Component tests of the events runtime (chassis/include/agora/events.h):
// chassis/testd_events produces events through the transactional outbox and
// consumes them through the inbox, against a real bus (platform/bus). Each
// test starts its own bus, so subscriptions never compete, and checks that
// every process exits 0 on SIGTERM without a sanitizer report. Crash tests
// kill the daemon (_exit) between commit and relay, and between a consumer's
// commit and its ack, and then check that nothing is lost and nothing is
// applied twice.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { buildDir, cleanup, makeTempDir, startService, stop, waitExit, waitFor, waitForLog } from '../../../tests/lib/proc.mjs';
import { identityHeader, OPERATOR } from '../../../tests/lib/identity.mjs';

const TESTD = path.join(buildDir(), 'chassis', 'testd_events');
const SUB = 'testd_events.consumer'; // the bus lets a service consume its own subscriptions only
const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const WAIT_MS = 20_000;

after(() => cleanup());

// ---- Helpers ----------------------------------------------------------------

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// testd_events publishes test.* (least privilege: the bus's owner table).
function startBus(opts = {}) {
    return startService('bus', { ...opts, env: { AGORA_BUS_PUBLISHERS: 'testd_events:test.*', ...opts.env } });
}

function startTestd(bus, env = {}, opts = {}) {
    const busUrl = typeof bus === 'string' ? bus : bus.baseUrl;
    return startService('testd_events', { binary: TESTD, ...opts, env: { AGORA_BUS_URL: busUrl, ...env } });
}

async function call(url, method = 'GET', body) {
    const res = await fetch(url, {
        method,
        // The bus needs a service identity; test daemons ignore it.
        headers: { 'x-agora-identity': identityHeader(OPERATOR), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function getJson(svc, p) {
    const { status, body } = await call(svc.url(p));
    assert.equal(status, 200, `GET ${p}: ${JSON.stringify(body)}`);
    return body;
}

async function produce(svc, body) {
    const { status, body: out } = await call(svc.url('/produce'), 'POST', body);
    assert.equal(status, 200, JSON.stringify(out));
    return out;
}

async function consumed(svc) {
    return (await getJson(svc, '/consumed')).rows;
}

// Wait until the daemon consumed at least 'n' events; returns the rows.
function waitConsumed(svc, n, timeoutMs = WAIT_MS) {
    return waitFor(
        async () => {
            const rows = await consumed(svc);
            return rows.length >= n ? rows : null;
        },
        { timeoutMs, intervalMs: 50, message: `${n} events consumed` },
    );
}

// Wait until the consumer's subscription exists on the bus (/ready is 200).
function waitReady(svc) {
    return waitFor(async () => (await fetch(svc.url('/ready'))).status === 200, {
        timeoutMs: WAIT_MS,
        message: `${svc.name} ready`,
    });
}

// Sum of the samples of metric 'name' whose labels include 'labels'; null
// when there is none.
async function metric(svc, name, labels = {}) {
    const text = await (await fetch(svc.url('/metrics'))).text();
    let total = null;
    for (const line of text.split('\n')) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const ls = {};
        for (const kv of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) ls[kv[1]] = kv[2];
        if (Object.entries(labels).every(([k, v]) => ls[k] === v)) total = (total ?? 0) + Number(m[3]);
    }
    return total;
}

async function putSubscription(bus, name, topics) {
    const { status, body } = await call(bus.url(`/v1/subscriptions/${name}`), 'PUT', { topics });
    assert.ok(status === 200 || status === 201, JSON.stringify(body));
}

// Pull and ack 'n' messages from subscription 'name' (one subject is handed
// out one message at a time, so this loops); returns them in order.
async function drain(bus, name, n) {
    const got = [];
    await waitFor(
        async () => {
            const { status, body } = await call(bus.url(`/v1/subscriptions/${name}/pull`), 'POST', {
                max_messages: 100,
                wait_ms: 200,
            });
            assert.equal(status, 200, JSON.stringify(body));
            if (body.messages.length > 0) {
                got.push(...body.messages);
                const ack = await call(bus.url(`/v1/subscriptions/${name}/ack`), 'POST', {
                    ack_ids: body.messages.map((m) => m.ack_id),
                });
                assert.equal(ack.status, 200);
            }
            return got.length >= n;
        },
        { timeoutMs: WAIT_MS, intervalMs: 1, message: `${n} messages on '${name}'` },
    );
    return got;
}

function assertClean(proc) {
    const bad = proc.nonJsonLines().filter((l) => /Sanitizer|runtime error|BUG at/.test(l));
    assert.deepEqual(bad, [], `${proc.name} reported:\n${proc.stderr(80)}`);
}

// SIGTERM each process (in order) and require a clean exit 0.
async function stopAll(...procs) {
    for (const p of procs) {
        assert.deepEqual(await stop(p), { code: 0, signal: null }, `${p.name}:\n${p.stderr(40)}`);
        assertClean(p);
    }
}

function nOf(row) {
    return row.event.data.n;
}

// ---- Tests ------------------------------------------------------------------

describe('events: outbox, relay, consumer, inbox', () => {
    test('an event published in a transaction reaches the consumer as a valid CloudEvent', async () => {
        const bus = await startBus();
        const td = await startTestd(bus, { TESTD_CONSUME: '1' });
        await waitReady(td);
        const before = Date.now();
        const out = await produce(td, { count: 3, subject: 'order-1', traceparent: TP });
        assert.equal(out.committed, true);
        assert.equal(out.ids.length, 3);
        const rows = await waitConsumed(td, 3);
        assert.deepEqual(
            rows.map((r) => r.event_id),
            out.ids,
            'one subject: consumed in publish order',
        );
        rows.forEach((row, i) => {
            const ce = row.event;
            assert.equal(row.count, 1);
            assert.deepEqual(Object.keys(ce), [
                'specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'data', 'traceparent',
            ]);
            assert.equal(ce.specversion, '1.0');
            assert.match(ce.id, UUID7);
            assert.equal(ce.id, row.event_id);
            assert.equal(ce.source, '/agora/testd');
            assert.equal(ce.type, 'test.produced');
            assert.equal(ce.subject, 'order-1');
            assert.match(ce.time, RFC3339_UTC);
            const t = Date.parse(ce.time);
            assert.ok(t >= before - 1000 && t <= Date.now() + 1000, `time ${ce.time}`);
            assert.equal(ce.datacontenttype, 'application/json');
            assert.deepEqual(ce.data, { n: i });
            assert.equal(ce.traceparent, TP);
        });

        // Without a traceparent the event continues the trace of the request
        // that published it (the chassis's current context): a new trace
        // here, since the request came without one.
        const plain = await produce(td, { count: 1, subject: 'order-2' });
        const all = await waitConsumed(td, 4);
        const last = all.find((r) => r.event_id === plain.ids[0]);
        assert.ok(last, 'second event consumed');
        assert.match(last.event.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        assert.notEqual(last.event.traceparent.slice(3, 35), TP.slice(3, 35));

        await waitFor(async () => (await getJson(td, '/outbox')).published === 4, { message: 'outbox published' });
        assert.deepEqual(await getJson(td, '/outbox'), { pending: 0, published: 4, failed: 0, max_attempts: 1, backlog: 0 });
        assert.equal(await metric(td, 'events_published_total'), 4);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: SUB, outcome: 'ok' }), 4);
        await stopAll(td, bus);
    });

    test('a rolled-back transaction publishes nothing', async () => {
        const bus = await startBus();
        const td = await startTestd(bus, { TESTD_CONSUME: '1' });
        await waitReady(td);
        const rolled = await produce(td, { count: 5, subject: 'rolled', fail: true });
        assert.equal(rolled.committed, false);
        assert.equal(rolled.ids.length, 5, 'the events were written, then rolled back');
        const marker = await produce(td, { count: 1, subject: 'marker' });
        const rows = await waitConsumed(td, 1);
        assert.deepEqual(rows.map((r) => r.event_id), marker.ids);
        // The outbox never held the rolled-back events: only the marker.
        await waitFor(async () => (await getJson(td, '/outbox')).published === 1, { message: 'marker published' });
        const box = await getJson(td, '/outbox');
        assert.equal(box.pending, 0);
        assert.equal(box.published, 1);
        assert.deepEqual((await consumed(td)).map((r) => r.event_id), marker.ids);
        await stopAll(td, bus);
    });

    test('order is kept for one subject over 200 events (two relay batches)', async () => {
        const bus = await startBus();
        const td = await startTestd(bus, { TESTD_CONSUME: '1' });
        await waitReady(td);
        const out = await produce(td, { count: 200, subject: 'one-subject' });
        const rows = await waitConsumed(td, 200, 40_000);
        assert.equal(rows.length, 200);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        assert.deepEqual(rows.map(nOf), [...Array(200).keys()]);
        assert.ok(rows.every((r) => r.count === 1));
        await stopAll(td, bus);
    });

    test('with the bus down, events wait in the outbox and are delivered once it starts', async () => {
        const port = await freePort();
        const busDir = makeTempDir('agora-bus-');
        const busEnv = { AGORA_HTTP_PORT: String(port) };
        // Create the subscription, then take the bus down (it keeps it on disk).
        const bus1 = await startBus({ dataDir: busDir, env: busEnv });
        await putSubscription(bus1, SUB, ['test.*']);
        await stopAll(bus1);

        const td = await startTestd(`http://127.0.0.1:${port}`, { TESTD_CONSUME: '1' });
        const out = await produce(td, { count: 5, subject: 'while-down' });
        assert.equal(out.committed, true);
        // The relay tried, failed and kept every event.
        await waitFor(async () => (await getJson(td, '/outbox')).max_attempts >= 2, {
            timeoutMs: WAIT_MS,
            message: 'relay retried',
        });
        const box = await getJson(td, '/outbox');
        assert.equal(box.pending, 5);
        assert.equal(box.published, 0);
        await waitFor(async () => (await metric(td, 'events_outbox_pending')) === 5, { message: 'pending gauge' });
        assert.equal((await fetch(td.url('/ready'))).status, 503, 'not ready while the bus is down');

        const bus2 = await startBus({ dataDir: busDir, env: busEnv });
        const rows = await waitConsumed(td, 5);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        assert.ok(rows.every((r) => r.count === 1));
        await waitFor(async () => (await getJson(td, '/outbox')).pending === 0, { message: 'outbox drained' });
        assert.equal((await getJson(td, '/outbox')).published, 5);
        await waitReady(td);
        await stopAll(td, bus2);
    });

    test('a producer killed between commit and relay delivers the event after restart', async () => {
        const bus = await startBus();
        await putSubscription(bus, SUB, ['test.*']);
        const dir = makeTempDir('agora-testd-');
        const td1 = await startTestd(bus, { TESTD_CRASH_AFTER_COMMIT: '1' }, { dataDir: dir });
        const res = await fetch(td1.url('/produce'), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ count: 1, subject: 'crash' }),
        }).catch((err) => err);
        assert.ok(res instanceof Error, 'the daemon died before answering');
        assert.deepEqual(await waitExit(td1), { code: 9, signal: null });
        assert.ok(td1.logs({ msg: 'TESTD_CRASH_AFTER_COMMIT: exiting between commit and relay' }).length === 1);

        const td2 = await startTestd(bus, { TESTD_CONSUME: '1' }, { dataDir: dir });
        const rows = await waitConsumed(td2, 1);
        assert.equal(rows.length, 1);
        assert.equal(rows[0].count, 1);
        assert.equal(rows[0].event.subject, 'crash');
        assert.deepEqual(rows[0].event.data, { n: 0 });
        await waitFor(async () => (await getJson(td2, '/outbox')).published === 1, { message: 'published' });
        await stopAll(td2, bus);
    });

    test('a consumer killed between commit and ack skips the redelivery through its inbox', async () => {
        const bus = await startBus();
        const dir = makeTempDir('agora-testd-');
        const env = { TESTD_CONSUME: '1', TESTD_ACK_DEADLINE_MS: '1000' };
        const td1 = await startTestd(bus, { ...env, TESTD_CRASH_BEFORE_ACK: '1' }, { dataDir: dir });
        await waitReady(td1);
        await fetch(td1.url('/produce'), {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ count: 3, subject: 'acked-late' }),
        }).catch(() => null);
        assert.deepEqual(await waitExit(td1), { code: 9, signal: null });

        const td2 = await startTestd(bus, env, { dataDir: dir });
        const rows = await waitConsumed(td2, 3);
        assert.equal(rows.length, 3);
        assert.deepEqual(rows.map(nOf), [0, 1, 2]);
        for (const r of rows) assert.equal(r.count, 1, `event ${r.event_id} applied ${r.count} times`);
        // The first event was committed by td1 and never acked: the bus
        // redelivered it after its lease and the inbox skipped it.
        await waitFor(async () => (await metric(td2, 'events_duplicates_total', { subscription: SUB })) >= 1, {
            message: 'duplicate counted',
        });
        assert.equal(await metric(td2, 'events_consumed_total', { subscription: SUB, outcome: 'duplicate' }), 1);
        assert.equal(await metric(td2, 'events_consumed_total', { subscription: SUB, outcome: 'ok' }), 2);
        assert.equal((await consumed(td2)).length, 3);
        await stopAll(td2, bus);
    });

    test('a failing handler is rolled back, nacked, and succeeds on redelivery in order', async () => {
        const bus = await startBus();
        const td = await startTestd(bus, { TESTD_CONSUME: '1', TESTD_FAIL_FIRST: '1' });
        await waitReady(td);
        const out = await produce(td, { count: 3, subject: 'flaky' });
        const rows = await waitConsumed(td, 3);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        assert.ok(rows.every((r) => r.count === 1));
        assert.equal(await metric(td, 'events_consumed_total', { subscription: SUB, outcome: 'error' }), 3);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: SUB, outcome: 'ok' }), 3);
        assert.equal(await metric(td, 'events_duplicates_total', { subscription: SUB }), null);
        await stopAll(td, bus);
    });

    test('a pulled batch commits once; a failing delivery in it is undone alone and redelivered', async () => {
        const bus = await startBus();
        await putSubscription(bus, SUB, ['test.*']);
        // 20 events of 20 subjects wait on the bus, so the consumer pulls
        // them together; every odd one writes its row, then fails once.
        const producer = await startTestd(bus);
        const out = await produce(producer, { count: 20, subject: 'batch', distinct_subjects: true });
        await waitFor(async () => (await getJson(producer, '/outbox')).published === 20, { message: 'published' });
        const td = await startTestd(bus, { TESTD_CONSUME: '1', TESTD_FAIL_ODD: '1' });
        const rows = await waitConsumed(td, 20);
        assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set(out.ids));
        for (const r of rows) assert.equal(r.count, 1, `event ${r.event_id} applied ${r.count} times`);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: SUB, outcome: 'ok' }), 20);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: SUB, outcome: 'error' }), 10);
        const commits = await metric(td, 'events_consumer_commits_total', { subscription: SUB });
        assert.ok(commits >= 2 && commits < 20, `20 deliveries in ${commits} commits`);
        // After-commit work ran for the 20 deliveries that committed, not
        // for the 10 failed attempts that were rolled back.
        assert.equal((await getJson(td, '/consumed')).after_commit, 20);
        await stopAll(producer, td, bus);
        // A consumer with a commit observer commits each delivery alone.
        const bus2 = await startBus();
        await putSubscription(bus2, SUB, ['test.*']);
        const producer2 = await startTestd(bus2);
        await produce(producer2, { count: 6, subject: 'single', distinct_subjects: true });
        await waitFor(async () => (await getJson(producer2, '/outbox')).published === 6, { message: 'published' });
        const dir = makeTempDir('agora-testd-');
        const observed = await startTestd(bus2, { TESTD_CONSUME: '1', TESTD_ACK_DEADLINE_MS: '1000', TESTD_CRASH_BEFORE_ACK: '1' }, { dataDir: dir });
        assert.deepEqual(await waitExit(observed), { code: 9, signal: null });
        const after = await startTestd(bus2, { TESTD_CONSUME: '1', TESTD_ACK_DEADLINE_MS: '1000' }, { dataDir: dir });
        const got = await waitConsumed(after, 6);
        assert.equal(got.length, 6);
        // The observer killed the first consumer after its first commit: one
        // delivery was applied then, not the whole pulled batch.
        assert.equal(got.filter((r) => r.count === 1).length, 6);
        assert.equal(await metric(after, 'events_consumed_total', { subscription: SUB, outcome: 'duplicate' }), 1);
        await stopAll(producer2, after, bus2);
    });

    test('SIGTERM flushes the outbox and exits 0', async () => {
        const bus = await startBus();
        await putSubscription(bus, 'probe', ['test.*']);
        // No kick and a one-minute poll: the events stay pending until stop.
        const td = await startTestd(bus, { TESTD_NO_KICK: '1', TESTD_RELAY_POLL_MS: '60000' });
        const out = await produce(td, { count: 4, subject: 'goodbye' });
        assert.equal((await getJson(td, '/outbox')).pending, 4);
        await stopAll(td);
        await waitForLog(td, { msg: 'events stopped' }, { timeoutMs: 1 });
        assert.equal(td.logs((o) => /events in the outbox/.test(o.msg ?? '')).length, 0);
        const msgs = await drain(bus, 'probe', 4);
        assert.deepEqual(msgs.map((m) => m.id), out.ids);
        assert.deepEqual(msgs.map((m) => m.data.id), out.ids);
        assert.ok(msgs.every((m) => m.topic === 'test.produced' && m.subject === 'goodbye'));
        await stopAll(bus);
    });
});
