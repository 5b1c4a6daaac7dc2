// SPDX-License-Identifier: MIT
// Bus WAL checkpoints off the loop (AGORA_BUS_CHECKPOINT_PAGES, engine.c
// "Checkpoints"): under sustained publishing the WAL stays bounded, and
// messages confirmed before a SIGKILL survive it after background
// checkpoints have copied the WAL into the database file.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { cleanup, makeTempDir, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { client, mapConcurrent, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { OPERATOR } from '../../../tests/lib/identity.mjs';

after(() => cleanup());

const PAGES = 200; // AGORA_BUS_CHECKPOINT_PAGES of these tests
const PAGE = 4096; // SQLite's default page size
const DATA = 'x'.repeat(1000); // about 1 KiB per message, as in bench/bus

async function counters(api) {
    const r = await api.get('/metrics');
    assert.equal(r.status, 200);
    const m = parseMetrics(r.text);
    const phase = (p) => metricValue(m, 'bus_checkpoints_total', { phase: p }) ?? 0;
    return { bulk: phase('bulk'), final: phase('final'), loop: phase('loop'), wal: metricValue(m, 'bus_wal_pages') };
}

// Publish 'total' messages from 'publishers' concurrent publishers in
// batches of 'batch'; returns the confirmed ids.
async function publishAll(api, prefix, total, publishers, batch) {
    const confirmed = [];
    const per = total / publishers;
    await mapConcurrent([...Array(publishers).keys()], publishers, async (p) => {
        for (let i = 0; i < per; i += batch) {
            const messages = Array.from({ length: batch }, (_, k) => ({
                id: `${prefix}-${p}-${i + k}`,
                topic: `ckpt.p${p}`,
                data: { p, i: i + k, pad: DATA },
            }));
            const r = await api.post('/v1/messages', { messages });
            assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
            for (const x of r.json.results) confirmed.push(x.id);
        }
    });
    return confirmed;
}

describe('WAL checkpoints on the thread pool', () => {
    it('the WAL stays bounded under sustained publishing', { timeout: 120_000 }, async (t) => {
        const dataDir = makeTempDir('agora-bus-ckpt-');
        const svc = await startService('bus', {
            dataDir,
            env: { AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_BUS_CHECKPOINT_PAGES: String(PAGES) },
        });
        const api = client(svc, { identity: OPERATOR });
        const r = await api.put('/v1/subscriptions/ckpt', { topics: ['ckpt.*'] });
        assert.equal(r.status, 201, r.text);
        // About 8,000 messages of 1 KiB: some 40 MB through the WAL, ten
        // times the bound below; without checkpoints the WAL keeps it all.
        const confirmed = await publishAll(api, 'bounded', 8000, 4, 50);
        assert.equal(confirmed.length, 8000);
        const walBytes = fs.statSync(path.join(dataDir, 'bus.db-wal')).size;
        const c = await counters(api);
        t.diagnostic(`WAL ${walBytes} bytes (${Math.round(walBytes / PAGE)} pages); checkpoints ${JSON.stringify(c)}`);
        assert.ok(c.bulk > 0, 'background checkpoints ran');
        // Bound: the fall-back threshold (4x) plus what one group commit of
        // up to 200 queued messages adds, with room to spare.
        const bound = (4 * PAGES + 600) * PAGE;
        assert.ok(walBytes < bound, `WAL ${walBytes} bytes, over the bound of ${bound}`);
        assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(20));
    });

    it('messages confirmed before a SIGKILL survive background checkpoints', { timeout: 120_000 }, async () => {
        const dataDir = makeTempDir('agora-bus-ckpt-kill-');
        const env = { AGORA_DURABILITY: 'full', AGORA_ACCESS_LOG: 'false', AGORA_BUS_CHECKPOINT_PAGES: '50' };
        let svc = await startService('bus', { dataDir, env });
        let api = client(svc, { identity: OPERATOR });
        assert.equal((await api.put('/v1/subscriptions/ckpt', { topics: ['ckpt.*'] })).status, 201);
        const confirmed = await publishAll(api, 'kill', 4000, 4, 50);
        await waitFor(async () => (await counters(api)).bulk >= 3, { message: 'background checkpoints ran' });
        svc.kill('SIGKILL');
        assert.deepEqual(await waitExit(svc), { code: null, signal: 'SIGKILL' });

        svc = await startService('bus', { dataDir, env });
        api = client(svc, { identity: OPERATOR });
        const seen = new Set();
        while (seen.size < confirmed.length) {
            const r = await api.post('/v1/subscriptions/ckpt/pull', { max_messages: 1000, wait_ms: 2000 });
            assert.equal(r.status, 200, r.text);
            assert.ok(r.json.messages.length > 0, `only ${seen.size} of ${confirmed.length} messages after the restart`);
            for (const m of r.json.messages) {
                const [, p, i] = m.id.split('-');
                assert.deepEqual(m.data, { p: Number(p), i: Number(i), pad: DATA }, m.id);
                seen.add(m.id);
            }
            const a = await api.post('/v1/subscriptions/ckpt/ack', { ack_ids: r.json.messages.map((m) => m.ack_id) });
            assert.equal(a.status, 200);
        }
        assert.deepEqual([...confirmed].filter((id) => !seen.has(id)), []);
        const topics = (await api.get('/v1/topics')).json.topics.filter((x) => x.name.startsWith('ckpt.'));
        assert.equal(topics.reduce((n, x) => n + x.messages, 0), confirmed.length);
        assert.deepEqual(await stop(svc), { code: 0, signal: null }, svc.stderr(20));
    });
});
