// SPDX-License-Identifier: MIT
// Component tests of the events runtime on RabbitMQ (the AMQP backend,
// chassis/src/events/events_amqp.c): chassis/testd_events with an amqp://
// AGORA_BUS_URL against one private node that a ctest fixture starts with
// scripts/engine-rabbitmq (AGORA_TEST_RABBITMQ_DIR; chassis/CMakeLists.txt)
// and stops after. Every test uses subscriptions of its own. Covered:
// publisher confirms (a basic.nack leaves the outbox row pending), a node
// stopped and started again, the inbox skipping a redelivery, nack with
// delay keeping a subject's order, two competing consumers (single active
// consumer), max attempts -> SUB.dead and `agora dead-letters`, and a
// least-privilege user of scripts/engine-rabbitmq adduser.
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildDir, cleanup, makeTempDir, sourceDir, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';

const TESTD = path.join(buildDir(), 'chassis', 'testd_events');
const AGORA = path.join(buildDir(), 'cli', 'agora');
const ENGINE = path.join(sourceDir(), 'scripts', 'engine-rabbitmq');
const RMQ_DIR = process.env.AGORA_TEST_RABBITMQ_DIR;
const WAIT_MS = 30_000;

let ADMIN_URL;
let PORT;

function run(file, args, opts = {}) {
    return new Promise((resolve) => {
        execFile(file, args, { timeout: 120_000, ...opts }, (err, stdout, stderr) => {
            resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
        });
    });
}

async function engine(...args) {
    const r = await run(ENGINE, args);
    assert.equal(r.code, 0, `engine-rabbitmq ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
}

function deadLetters(...args) {
    return run(AGORA, ['dead-letters', '--events-url', ADMIN_URL, ...args]);
}

before(async () => {
    assert.ok(RMQ_DIR, 'AGORA_TEST_RABBITMQ_DIR is set (ctest starts the node: ctest -R events_amqp)');
    assert.ok(fs.existsSync(path.join(RMQ_DIR, 'ports')), `a node was started in ${RMQ_DIR}`);
    PORT = /AMQP_PORT=(\d+)/.exec(fs.readFileSync(path.join(RMQ_DIR, 'ports'), 'utf8'))[1];
    ADMIN_URL = (await engine('adduser', RMQ_DIR, 'admin')).trim();
    assert.match(ADMIN_URL, /^amqp:\/\/admin:[^@]+@127\.0\.0\.1:\d+\/$/);
});

after(() => cleanup());

function uniq(prefix) {
    return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

function startTestd(env = {}, opts = {}) {
    return startService('testd_events', { binary: TESTD, ...opts, env: { AGORA_BUS_URL: ADMIN_URL, ...env } });
}

async function call(url, method = 'GET', body) {
    const res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
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

function waitConsumed(svc, n, timeoutMs = WAIT_MS) {
    return waitFor(
        async () => {
            const rows = await consumed(svc);
            return rows.length >= n ? rows : null;
        },
        { timeoutMs, intervalMs: 50, message: `${n} events consumed by ${svc.name}` },
    );
}

function waitReady(svc) {
    return waitFor(async () => (await fetch(svc.url('/ready'))).status === 200, {
        timeoutMs: WAIT_MS,
        message: `${svc.name} ready`,
    });
}

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

function assertClean(proc) {
    const bad = proc.nonJsonLines().filter((l) => /Sanitizer|runtime error|BUG at/.test(l));
    assert.deepEqual(bad, [], `${proc.name} reported:\n${proc.stderr(80)}`);
    // The URL's password never reaches a log line.
    const pw = /:([^:@/]+)@/.exec(ADMIN_URL)[1];
    assert.equal(proc.stderr(100000).includes(pw), false, `${proc.name} logged the broker password`);
}

async function stopAll(...procs) {
    for (const p of procs) {
        assert.deepEqual(await stop(p), { code: 0, signal: null }, `${p.name}:\n${p.stderr(40)}`);
        assertClean(p);
    }
}

const nOf = (row) => row.event.data.n;

// ---- Tests ------------------------------------------------------------------

describe('events on RabbitMQ', () => {
    test('publish with confirms, consume through the inbox, order of one subject over 200 events', async () => {
        const sub = uniq('basic');
        const td = await startTestd({ TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub });
        await waitReady(td);
        const out = await produce(td, { count: 3, subject: 'order-1' });
        const rows = await waitConsumed(td, 3);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        assert.ok(rows.every((r) => r.count === 1 && r.event.type === 'test.produced' && r.event.subject === 'order-1'));
        await waitFor(async () => (await getJson(td, '/outbox')).published === 3, { message: 'outbox published' });
        const many = await produce(td, { count: 200, subject: 'one-subject' });
        const all = await waitConsumed(td, 203, 60_000);
        assert.deepEqual(all.slice(3).map((r) => r.event_id), many.ids);
        assert.deepEqual(all.slice(3).map(nOf), [...Array(200).keys()]);
        await waitFor(async () => (await getJson(td, '/outbox')).published === 203, { message: 'all published' });
        assert.equal(await metric(td, 'events_published_total'), 203);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: sub, outcome: 'ok' }), 203);
        await stopAll(td);
    });

    test('a message RabbitMQ refuses (basic.nack) stays pending in the outbox until confirmed', async () => {
        // A queue bound to test.* that is always full with overflow
        // reject-publish: RabbitMQ nacks every publish routed to it.
        const sub = uniq('reject');
        const owner = await startTestd({ TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub });
        await waitReady(owner);
        await stopAll(owner);
        await engine('ctl', RMQ_DIR, 'set_policy', '--apply-to', 'queues', sub, `^${sub}$`,
            '{"max-length":0,"overflow":"reject-publish"}');
        try {
            await waitFor(async () => {
                const q = await engine('ctl', RMQ_DIR, 'list_queues', 'name', 'policy', '--no-table-headers');
                return q.split("\n").some((l) => l.trim() === `${sub}\t${sub}`);
            }, { timeoutMs: WAIT_MS, message: 'policy applied' });
            // A quorum queue rejects once it holds more than its limit: the
            // first message fills it.
            const td = await startTestd();
            await produce(td, { count: 1, subject: 'filler' });
            await waitFor(async () => (await getJson(td, '/outbox')).published === 1, { message: 'filler published' });
            await produce(td, { count: 3, subject: 'refused' });
            await waitFor(async () => (await getJson(td, '/outbox')).max_attempts >= 3, {
                timeoutMs: WAIT_MS,
                message: 'relay retried after the nack',
            });
            const box = await getJson(td, '/outbox');
            assert.equal(box.published, 1, 'nothing marked published without a confirm');
            assert.equal(box.pending, 3);
            assert.ok(td.logs((o) => /did not confirm/.test(o.msg ?? '')).length >= 1);
            // Without the full queue, RabbitMQ confirms them.
            await engine('ctl', RMQ_DIR, 'delete_queue', sub);
            await waitFor(async () => (await getJson(td, '/outbox')).published === 4, {
                timeoutMs: WAIT_MS,
                message: 'published after the full queue went',
            });
            await stopAll(td);
        } finally {
            await run(ENGINE, ['ctl', RMQ_DIR, 'clear_policy', sub]);
            await run(ENGINE, ['ctl', RMQ_DIR, 'delete_queue', sub]);
        }
    });

    test('with the node stopped, events wait in the outbox; after its restart every one arrives once', async () => {
        const sub = uniq('down');
        const td = await startTestd({ TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub });
        await waitReady(td);
        const first = await produce(td, { count: 2, subject: 'before' });
        await waitConsumed(td, 2);
        await engine('stop', RMQ_DIR);
        let out;
        try {
            out = await produce(td, { count: 5, subject: 'while-down' });
            await waitFor(async () => (await getJson(td, '/outbox')).max_attempts >= 2, {
                timeoutMs: WAIT_MS,
                message: 'relay retried',
            });
            const box = await getJson(td, '/outbox');
            assert.equal(box.pending, 5);
            assert.equal(box.published, 2);
            assert.equal((await fetch(td.url('/ready'))).status, 503, 'not ready while RabbitMQ is down');
        } finally {
            await engine('start', RMQ_DIR, PORT);
        }
        const rows = await waitConsumed(td, 7, 60_000);
        assert.deepEqual(rows.map((r) => r.event_id), [...first.ids, ...out.ids]);
        assert.ok(rows.every((r) => r.count === 1));
        await waitFor(async () => (await getJson(td, '/outbox')).published === 7, { timeoutMs: WAIT_MS, message: 'outbox drained' });
        await waitReady(td);
        assert.ok(td.logs((o) => /RabbitMQ connection .* lost/.test(o.msg ?? '')).length >= 1, 'the loss was logged');
        await stopAll(td);
    });

    test('a consumer killed between commit and ack: the redelivery is skipped by its inbox', async () => {
        // A separate producer: RabbitMQ does not de-duplicate, so the only
        // duplicate the consumer can see is the redelivery of what it
        // committed and never acked.
        const sub = uniq('crash');
        const dir = makeTempDir('agora-testd-');
        const env = { TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub };
        const td1 = await startTestd({ ...env, TESTD_CRASH_BEFORE_ACK: '1' }, { dataDir: dir });
        await waitReady(td1);
        const producer = await startTestd();
        const out = await produce(producer, { count: 3, subject: 'acked-late' });
        assert.deepEqual(await waitExit(td1), { code: 9, signal: null });
        const td2 = await startTestd(env, { dataDir: dir });
        const rows = await waitConsumed(td2, 3);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        for (const r of rows) assert.equal(r.count, 1, `event ${r.event_id} applied ${r.count} times`);
        await waitFor(async () => (await metric(td2, 'events_duplicates_total', { subscription: sub })) === 1, {
            message: 'the redelivery counted as a duplicate',
        });
        assert.equal(await metric(td2, 'events_consumed_total', { subscription: sub, outcome: 'ok' }), 2);
        await stopAll(td2, producer);
    });

    test('a failing handler is nacked with a delay and succeeds on redelivery, in order', async () => {
        const sub = uniq('flaky');
        const td = await startTestd({ TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub, TESTD_FAIL_FIRST: '1' });
        await waitReady(td);
        // Every event fails once: 20 times a message goes back while later
        // ones of its subject may already be on their way to the consumer.
        const out = await produce(td, { count: 20, subject: 'flaky' });
        const rows = await waitConsumed(td, 20);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        assert.ok(rows.every((r) => r.count === 1));
        assert.ok((await metric(td, 'events_consumed_total', { subscription: sub, outcome: 'error' })) >= 20);
        assert.equal(await metric(td, 'events_consumed_total', { subscription: sub, outcome: 'ok' }), 20);
        await stopAll(td);
    });

    test('two competing consumers: one is active, the other takes over in order', async () => {
        const sub = uniq('compete');
        const env = { TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub };
        const a = await startTestd(env);
        const b = await startTestd(env);
        await waitReady(a);
        await waitReady(b);
        const producer = await startTestd();
        const x = await produce(producer, { count: 20, subject: 'x' });
        const y = await produce(producer, { count: 20, subject: 'y' });
        await waitFor(async () => (await consumed(a)).length + (await consumed(b)).length >= 40, {
            timeoutMs: WAIT_MS,
            message: '40 events consumed',
        });
        const ra = await consumed(a);
        const rb = await consumed(b);
        // Single active consumer: one instance got everything.
        assert.ok((ra.length === 40 && rb.length === 0) || (ra.length === 0 && rb.length === 40), `${ra.length} + ${rb.length}`);
        const [active, standby] = ra.length === 40 ? [a, b] : [b, a];
        const rows = ra.length === 40 ? ra : rb;
        assert.deepEqual(rows.filter((r) => r.event.subject === 'x').map((r) => r.event_id), x.ids);
        assert.deepEqual(rows.filter((r) => r.event.subject === 'y').map((r) => r.event_id), y.ids);
        await stopAll(active);
        const x2 = await produce(producer, { count: 10, subject: 'x' });
        const got = await waitConsumed(standby, 10);
        assert.deepEqual(got.map((r) => r.event_id), x2.ids);
        await stopAll(standby, producer);
    });

    test('max attempts dead-letters to SUB.dead; agora dead-letters lists, shows, replays and purges', async () => {
        const sub = uniq('dead');
        const dir = makeTempDir('agora-testd-');
        const env = { TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: sub, TESTD_MAX_ATTEMPTS: '2' };
        const td = await startTestd({ ...env, TESTD_FAIL_ALL: '1' }, { dataDir: dir });
        await waitReady(td);
        // Subject a: the first event always fails, the second waits behind
        // it and is delivered once the first is dead-lettered.
        const p1 = await produce(td, { count: 2, subject: 'a' });
        const p2 = await produce(td, { count: 2, subject: 'b', distinct_subjects: true });
        const listed = await waitFor(async () => {
            const r = await deadLetters('list', sub);
            assert.equal(r.code, 0, r.stderr);
            const lines = r.stdout.trim().split('\n').slice(1);
            return lines.length === 2 ? lines : null;
        }, { timeoutMs: WAIT_MS, message: 'two dead letters' });
        // Two subjects: they reach their limit in either order.
        assert.deepEqual(new Set(listed.map((l) => l.split('\t')[1])), new Set([p1.ids[0], p2.ids[0]]));
        const first = listed[0].split('\t')[1];
        assert.ok(listed.every((l) => l.split('\t')[2] === 'test.produced' && l.split('\t')[4] === 'delivery_limit'), listed.join('\n'));
        const rows = await waitConsumed(td, 2);
        assert.deepEqual(new Set(rows.map((r) => r.event_id)), new Set([p1.ids[1], p2.ids[1]]));
        assert.ok((await metric(td, 'events_consumed_total', { subscription: sub, outcome: 'error' })) >= 4, 'two attempts each');
        // show puts every message back.
        const shown = await deadLetters('show', sub, '1');
        assert.equal(shown.code, 0, shown.stderr);
        const ce = JSON.parse(shown.stdout.split('\n').slice(1).join('\n'));
        assert.equal(ce.id, first);
        assert.equal((await deadLetters('list', sub)).stdout.trim().split('\n').length, 3);
        assert.equal((await deadLetters('show', sub, '3')).code, 3);
        await stopAll(td);

        // A fixed consumer gets the replayed message (only this subscription).
        const td2 = await startTestd(env, { dataDir: dir });
        await waitReady(td2);
        const replay = await deadLetters('replay', sub, '--limit', '1');
        assert.equal(replay.code, 0, replay.stderr);
        assert.equal(replay.stdout.trim(), 'replayed 1');
        const got = await waitConsumed(td2, 3);
        assert.equal(got[2].event_id, first);
        assert.ok(got.every((r) => r.count === 1));
        assert.equal((await deadLetters('list', sub)).stdout.trim().split('\n').length, 2);
        const purge = await deadLetters('purge', sub);
        assert.equal(purge.code, 0, purge.stderr);
        assert.equal(purge.stdout.trim(), 'purged 1');
        assert.equal((await deadLetters('list', sub)).stdout.trim().split('\n').length, 1);
        assert.equal((await deadLetters('list', uniq('nosuch'))).code, 3);
        assert.equal((await deadLetters('frobnicate', sub)).code, 2);
        assert.equal((await run(AGORA, ['dead-letters', '--events-url', 'http://x', 'list', sub])).code, 2);
        await stopAll(td2);
    });

    test('a least-privilege user (engine-rabbitmq adduser) reaches its own queue only', async () => {
        const name = uniq('lp');
        // It may publish test.* only (topic permissions on agora.events).
        const url = (await engine('adduser', RMQ_DIR, name, '^test\\..*$')).trim();
        assert.equal((await engine('adduser', RMQ_DIR, name)).trim(), url, 'adduser is idempotent');
        assert.match(url, new RegExp(`^amqp://${name}:[^@]+@127\\.0\\.0\\.1:${PORT}/$`));
        const td = await startTestd({ AGORA_BUS_URL: url, TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: name });
        await waitReady(td);
        const out = await produce(td, { count: 2, subject: 'lp' });
        const rows = await waitConsumed(td, 2);
        assert.deepEqual(rows.map((r) => r.event_id), out.ids);
        // Another service's queue is refused (403 ACCESS_REFUSED), and the
        // password of the URL is not logged.
        const other = await startTestd({ AGORA_BUS_URL: url, TESTD_CONSUME: '1', TESTD_SUBSCRIPTION: uniq('other') });
        await waitFor(() => other.logs((o) => /403/.test(o.msg ?? '')).length > 0, {
            timeoutMs: WAIT_MS,
            message: 'access refused logged',
        });
        assert.equal((await fetch(other.url('/ready'))).status, 503);
        const pw = /:([^:@/]+)@/.exec(url.slice(7))[1];
        assert.equal(other.stderr(100000).includes(pw), false);
        await stopAll(td, other);
    });
});
