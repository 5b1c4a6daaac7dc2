// SPDX-License-Identifier: MIT
// `agora probe URL`: the container health check (deploy/Dockerfile's image
// has no shell or curl). Exit 0 on a 2xx answer of a real catalog, 1 on
// another status or when nothing listens, 2 on a bad command line.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

import { buildDir, cleanup, startService, stop } from '../lib/proc.mjs';

after(() => cleanup());

const agoraBin = path.join(buildDir(), 'cli', 'agora');

function probe(...args) {
    const r = spawnSync(agoraBin, ['probe', ...args], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, stderr: r.stderr };
}

// A port nothing listens on: bind one, note it, close it.
async function closedPort() {
    const s = net.createServer();
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address();
    await new Promise((resolve) => s.close(resolve));
    return port;
}

describe('agora probe', () => {
    it('exits 0 on 2xx, 1 on another status or no answer, 2 on bad usage', { timeout: 30_000 }, async () => {
        const catalog = await startService('catalog');
        assert.equal(probe(catalog.url('/health')).code, 0);
        assert.equal(probe(catalog.url('/ready'), '--timeout', '1s').code, 0);
        const missing = probe(catalog.url('/no-such-path'));
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /status 404/);
        assert.equal(probe(`http://127.0.0.1:${await closedPort()}/health`).code, 1);
        assert.equal(probe().code, 2);
        assert.equal(probe(catalog.url('/health'), '--timeout', 'soon').code, 2);
        assert.deepEqual(await stop(catalog), { code: 0, signal: null });
    });
});
