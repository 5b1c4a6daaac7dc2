// SPDX-License-Identifier: MIT
// libpq and librabbitmq are loaded only by a program that uses them
// (agora/dynlib.h): no program of ports.h nor the agora command has them
// (or OpenSSL, which they bring) as DT_NEEDED; catalog on SQLite and the bus serves without
// mapping them; and when the library of a configured PostgreSQL or
// RabbitMQ URL cannot be loaded, the program stops at start-up with an
// error naming the library and its Debian package, not a crash. The
// library is made unloadable in a private mount namespace (unshare -m,
// the file bind-mounted over by /dev/null); where namespaces are not
// allowed those two tests are skipped with the reason.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { PROGRAMS } from '../../../tests/lib/ports.mjs';
import { binaryPath, buildDir, cleanup, spawnService, startService, stop, waitExit } from '../../../tests/lib/proc.mjs';
import { client } from '../../../tests/lib/http.mjs';

const ON_DEMAND = ['libpq.so.5', 'librabbitmq.so.4'];
// Libraries that only libpq and librabbitmq pull into the chassis programs.
const THEIR_DEPS = ['libssl.so.3', 'libgssapi_krb5.so.2', 'libldap-2.5.so.0'];

function needed(file) {
    const out = execFileSync('readelf', ['-d', '-W', file], { encoding: 'utf8' });
    return [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

function mappedLibs(pid) {
    const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
    return new Set([...maps.matchAll(/\/([^/\s]+\.so[.\d]*)$/gm)].map((m) => m[1]));
}

// The file the dynamic loader opens for 'soname' (ldconfig's cache).
function libraryFile(soname) {
    const out = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
    const m = new RegExp(`^\\s*${soname.replace(/\./g, '\\.')} \\([^)]*x86-64[^)]*\\) => (\\S+)$`, 'm').exec(out) ??
        new RegExp(`^\\s*${soname.replace(/\./g, '\\.')} \\([^)]*\\) => (\\S+)$`, 'm').exec(out);
    assert.ok(m, `ldconfig -p knows ${soname}`);
    return fs.realpathSync(m[1]);
}

const nsProbe = spawnSync('unshare', ['-m', '--', 'sh', '-c', 'mount --bind /dev/null /dev/null'], { encoding: 'utf8' });
const noNamespace = nsProbe.status === 0 ? false : `unshare -m / mount not allowed here: ${(nsProbe.stderr || nsProbe.error?.message || '').trim()}`;

// Start 'name' with 'soname' unloadable: in a private mount namespace with
// /dev/null bind-mounted over the library's file (dlopen: "file too short").
function spawnWithout(name, soname, env) {
    const script = 'mount --bind /dev/null "$1" && shift && exec "$@"';
    return spawnService(name, {
        env,
        binary: '/usr/bin/unshare',
        args: ['-m', '--', 'sh', '-c', script, 'sh', libraryFile(soname), binaryPath(name)],
    });
}

describe('libpq and librabbitmq on demand', () => {
    after(() => cleanup());

    test('no program links libpq, librabbitmq or what they bring', () => {
        assert.ok(PROGRAMS.length >= 10, 'the programs of ports.h');
        // The agora command too: the supervisor idles beside the programs.
        const files = PROGRAMS.map((p) => path.join(buildDir(), p.binary)).concat(path.join(buildDir(), 'cli', 'agora'));
        for (const file of files) {
            const libs = needed(file);
            assert.ok(libs.includes('libc.so.6'), `${file}: readelf shows its DT_NEEDED entries`);
            for (const l of [...ON_DEMAND, ...THEIR_DEPS]) assert.ok(!libs.includes(l), `${file} has DT_NEEDED ${l}`);
        }
    });

    test('catalog on SQLite and the bus serves without mapping them', async () => {
        const svc = await startService('catalog');
        const res = await client(svc).request('GET', '/v1/products');
        assert.equal(res.status, 200);
        const mapped = mappedLibs(svc.pid);
        assert.ok(mapped.has('libsqlite3.so.0.8.6') || [...mapped].some((l) => l.startsWith('libsqlite3.so')), 'maps SQLite');
        for (const l of [...ON_DEMAND, ...THEIR_DEPS]) {
            assert.ok(![...mapped].some((m) => m.startsWith(l.replace(/\.so.*/, '.so'))), `catalog maps ${l}`);
        }
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
    });

    test('a PostgreSQL URL without libpq: a start-up error naming libpq5', { skip: noNamespace }, async () => {
        const svc = spawnWithout('catalog', 'libpq.so.5', { AGORA_DB_URL: 'postgres://agora:s3cret-pw@127.0.0.1:1/catalog' });
        const { code, signal } = await waitExit(svc);
        assert.equal(signal, null, `exits, no crash; stderr:\n${svc.stderr(20)}`);
        assert.notEqual(code, 0);
        const line = svc.logs((o) => o.level === 'error' && /cannot open database/.test(o.msg ?? ''))[0];
        assert.ok(line, `an error line; stderr:\n${svc.stderr(20)}`);
        assert.match(line.msg, /cannot load 'libpq\.so\.5' \(install the package libpq5\)/);
        assert.ok(!svc.lines.some((l) => l.includes('s3cret-pw')), 'the password is not logged');
    });

    test('an amqp:// URL without librabbitmq: a start-up error naming librabbitmq4', { skip: noNamespace }, async () => {
        const svc = spawnWithout('catalog', 'librabbitmq.so.4', { AGORA_EVENTS_URL: 'amqp://catalog:s3cret-pw@127.0.0.1:1/' });
        const { code, signal } = await waitExit(svc);
        assert.equal(signal, null, `exits, no crash; stderr:\n${svc.stderr(20)}`);
        assert.notEqual(code, 0);
        const line = svc.logs((o) => o.level === 'error' && /librabbitmq/.test(o.msg ?? ''))[0];
        assert.ok(line, `an error line; stderr:\n${svc.stderr(20)}`);
        assert.match(line.msg, /cannot load 'librabbitmq\.so\.4' \(install the package librabbitmq4\)/);
        assert.equal(svc.logs((o) => /bad broker URL/.test(o.msg ?? '')).length, 0, 'the URL is not blamed');
        assert.ok(!svc.lines.some((l) => l.includes('s3cret-pw')), 'the password is not logged');
    });
});
