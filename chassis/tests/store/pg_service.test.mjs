// SPDX-License-Identifier: MIT
// A service on PostgreSQL (AGORA_DB_URL): two catalog instances share one
// database of the private cluster the ctest pg fixture started. Both serve
// what either wrote; exactly one relays the outbox (the events.relay lease)
// and it relays the rows of both; killed, the other takes the relay over
// and the outbox drains again; the URL's password never reaches a log;
// libpq, which no program links, is loaded for the URL.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cleanup, sourceDir, startService, stop, waitFor } from '../../../tests/lib/proc.mjs';
import { client, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';

// The fixture's cluster and a database of our own in it.
function database(name) {
    const file = process.env.AGORA_TEST_PG_URL_FILE;
    assert.ok(file && fs.existsSync(file), 'AGORA_TEST_PG_URL_FILE names the pg fixture\'s URL file');
    const port = new URL(fs.readFileSync(file, 'utf8').trim()).port;
    const cluster = path.join(path.dirname(file), 'cluster');
    return execFileSync(path.join(sourceDir(), 'scripts', 'engine-postgres'), ['createdb', cluster, port, name],
        { encoding: 'utf8' }).trim();
}

const isLeader = (svc) => svc.logs((o) => /this instance relays the outbox/.test(o.msg ?? '')).length >
    svc.logs((o) => /another instance relays the outbox now/.test(o.msg ?? '')).length;

async function pending(svc) {
    const res = await client(svc).request('GET', '/metrics');
    return metricValue(parseMetrics(res.text), 'events_outbox_pending');
}

describe('catalog on PostgreSQL, two instances on one database', () => {
    const procs = [];
    // A failed assertion leaves the processes running: kill them outright
    // before the common cleanup, so a failure ends the test at once.
    after(async () => {
        for (const p of procs) p.kill('SIGKILL');
        await cleanup();
    });

    test('both serve, one relays, the other takes over when it dies', async () => {
        const url = database('two_catalogs');
        const password = new URL(url).password;
        const bus = await startService('bus');
        procs.push(bus);
        const env = { AGORA_DB_URL: url, AGORA_BUS_URL: bus.baseUrl };
        const a = await startService('catalog', { env: { ...env, AGORA_INSTANCE_ID: 'catalog-a' } });
        const b = await startService('catalog', { env: { ...env, AGORA_INSTANCE_ID: 'catalog-b' } });
        procs.push(a, b);
        for (const svc of [a, b]) {
            const db = svc.logs((o) => o.msg === 'database \'postgres://127.0.0.1:' + new URL(url).port + '/two_catalogs\' (postgres)');
            assert.equal(db.length, 1, `${svc.name} logs the database without its credentials`);
            // libpq is not linked but loaded for the postgres:// URL (agora/dynlib.h).
            assert.match(fs.readFileSync(`/proc/${svc.pid}/maps`, 'utf8'), /\/libpq\.so\.5[.\d]*$/m, `${svc.name} maps libpq`);
        }

        const ids = [];
        for (let i = 0; i < 6; i++) {
            const svc = i % 2 ? b : a;
            const res = await client(svc).request('POST', '/v1/products', {
                json: { sku: `PG-${i}`, name: `Postgres thing ${i}`, price: { amount: 100 + i, currency: 'EUR' } },
            });
            assert.equal(res.status, 201, res.text);
            ids.push(res.json.id);
        }
        for (const id of ids) {
            assert.equal((await client(a).request('GET', `/v1/products/${id}`)).status, 200);
            assert.equal((await client(b).request('GET', `/v1/products/${id}`)).status, 200);
        }
        const search = await client(b).request('GET', '/v1/products?q=postgr');
        assert.equal(search.status, 200);
        assert.equal(search.json.items.length, 6);

        // One leader, which relays the rows both instances wrote.
        await waitFor(() => isLeader(a) !== isLeader(b), { timeoutMs: 10_000, message: 'one relay leader' });
        await waitFor(async () => (await pending(a)) === 0 && (await pending(b)) === 0,
            { timeoutMs: 15_000, message: 'the outbox drained' });
        const [leader, other] = isLeader(a) ? [a, b] : [b, a];
        assert.equal(isLeader(other), false);

        // The leader dies without releasing its lease: the other takes over
        // once it expires and relays what was written meanwhile.
        leader.kill('SIGKILL');
        await leader.exited;
        const res = await client(other).request('POST', '/v1/products', {
            json: { sku: 'PG-after', name: 'After the leader died', price: { amount: 1, currency: 'EUR' } },
        });
        assert.equal(res.status, 201, res.text);
        await waitFor(() => isLeader(other), { timeoutMs: 15_000, message: 'the survivor relays' });
        await waitFor(async () => (await pending(other)) === 0, { timeoutMs: 15_000, message: 'the outbox drained again' });

        assert.deepEqual(await stop(other), { code: 0, signal: null });
        assert.deepEqual(await stop(bus), { code: 0, signal: null });
        for (const svc of [a, b]) {
            assert.ok(!svc.lines.some((l) => l.includes(password)), `${svc.name} never logs the password`);
        }
    });
});
