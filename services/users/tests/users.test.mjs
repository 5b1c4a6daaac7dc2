// SPDX-License-Identifier: MIT
// Users component tests: the real binary on a free port with a temporary
// database and the cheapest argon2id cost the service accepts (the OWASP
// minimum), driven over HTTP and checked against services/users/openapi.yaml:
// registration, login, refresh rotation and reuse detection, logout,
// throttling, disabled accounts, the caller's account, administration,
// roles, the JWKS (tokens verified with node:crypto), key rotation, secrets
// kept out of the logs, configuration errors and shutdown.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { cleanup, spawnService, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { clientHeader, OPERATOR, serviceIdentity } from '../../../tests/lib/identity.mjs';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
const T = { timeout: 30_000 };

// Cheapest accepted argon2id cost, a generous client limit (tests come from
// one address), debug logs (so the secret grep sees everything).
const FAST = {
    AGORA_USERS_ARGON2_OPSLIMIT: '2',
    AGORA_USERS_ARGON2_MEMLIMIT: '19MiB',
    AGORA_USERS_CLIENT_MAX_ATTEMPTS: '1000',
    AGORA_LOG_LEVEL: 'debug',
};
const ADMIN_EMAIL = 'root@agora.test';
const ADMIN_PASSWORD = 'admin password from the environment';

after(() => cleanup());

// Every secret a test sent or received, for the log grep.
const secrets = new Set();
function remember(...values) {
    for (const v of values) if (typeof v === 'string' && v.length >= 8) secrets.add(v);
}

let seq = 0;
function newUser(over = {}) {
    seq += 1;
    const u = { email: `user${seq}-${process.pid}@example.com`, password: `pass phrase number ${seq}`, name: `User ${seq}`, ...over };
    remember(u.password);
    return u;
}

function decodeSegment(s) {
    return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

// Verify a compact ES256 JWT against a JWKS with node:crypto alone.
function verifyJwt(token, jwks) {
    const [h, p, s] = token.split('.');
    const header = decodeSegment(h);
    const payload = decodeSegment(p);
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    if (!jwk) return { header, payload, ok: false, reason: 'kid not in JWKS' };
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
    return { header, payload, ok };
}

function withoutRequestId(problem) {
    const { request_id: _ignored, ...rest } = problem;
    return rest;
}

async function register(api, body = newUser()) {
    const r = await api.post('/v1/users', body);
    assert.equal(r.status, 201, `register: ${r.status} ${r.text}`);
    return r.json;
}

async function login(anon, email, password) {
    const r = await anon.post('/v1/auth/login', { email, password });
    assert.equal(r.status, 200, `login ${email}: ${r.status} ${r.text}`);
    remember(r.json.access_token, r.json.refresh_token);
    return r.json;
}

async function refresh(anon, token) {
    const r = await anon.post('/v1/auth/refresh', { refresh_token: token });
    if (r.status === 200) remember(r.json.access_token, r.json.refresh_token);
    return r;
}

const ACCOUNT_KEYS = ['created_at', 'disabled', 'email', 'id', 'name', 'roles', 'updated_at'];

function assertAccount(a) {
    assert.deepEqual(Object.keys(a).sort(), ACCOUNT_KEYS);
    assert.match(a.id, UUIDV7);
    assert.match(a.created_at, RFC3339_UTC);
    assert.match(a.updated_at, RFC3339_UTC);
    assert.equal(typeof a.disabled, 'boolean');
    assert.ok(Array.isArray(a.roles) && a.roles.includes('customer'));
}

describe('users: accounts, sessions, administration', () => {
    let svc;
    let admin; // client with the gateway-signed admin identity
    let anon; // anonymous client

    before(async () => {
        svc = await startService('users', {
            env: { ...FAST, AGORA_USERS_ADMIN_EMAIL: ADMIN_EMAIL, AGORA_USERS_ADMIN_PASSWORD: ADMIN_PASSWORD },
        });
        admin = client(svc);
        anon = client(svc, { identity: null });
        remember(ADMIN_PASSWORD);
    });

    after(async () => {
        if (svc) await stop(svc);
    });

    it('registers an account with a normalised e-mail', T, async () => {
        const body = newUser({ email: '  Grace.Hopper@Example.COM ' });
        const r = await anon.post('/v1/users', body);
        assert.equal(r.status, 201, r.text);
        assertAccount(r.json);
        assert.equal(r.json.email, 'grace.hopper@example.com');
        assert.equal(r.json.name, body.name);
        assert.deepEqual(r.json.roles, ['customer']);
        assert.equal(r.json.disabled, false);
        assert.equal(r.header('location'), `/v1/users/${r.json.id}`);
        assert.ok(!('password' in r.json) && !('password_hash' in r.json));
    });

    it('refuses a taken e-mail with 409, whatever its case and spaces', T, async () => {
        const u = newUser();
        await register(anon, u);
        for (const email of [u.email, u.email.toUpperCase(), `\t ${u.email} `]) {
            const r = await anon.post('/v1/users', { ...newUser(), email });
            const p = expectProblem(r, 409, { path: '/v1/users' });
            assert.equal(p.type, 'urn:agora:problem:email-taken');
        }
    });

    it('applies the password, e-mail and name policies with 422 field errors', T, async () => {
        const base = newUser();
        const cases = [
            [{ password: 'elevenchars' }, 'password', 'too_short'],
            [{ password: 'x'.repeat(129) }, 'password', 'too_long'],
            [{ password: 'aaaaaaaaaaaaaaaa' }, 'password', 'repeated'],
            [{ password: base.email.toUpperCase() }, 'password', 'is_email'],
            [{ email: 'not an address' }, 'email', 'invalid'],
            [{ email: `${'a'.repeat(250)}@example.com` }, 'email', 'invalid'],
            [{ name: '' }, 'name', 'invalid'],
            [{ name: 'n'.repeat(101) }, 'name', 'invalid'],
            [{ role: 'admin' }, 'role', 'unknown'],
            [{ password: 12345678901234 }, 'password', 'type'],
        ];
        for (const [over, field, code] of cases) {
            const r = await anon.post('/v1/users', { ...base, ...over });
            const p = expectProblem(r, 422);
            assert.deepEqual(errorFields(p), [field], JSON.stringify(over));
            assert.equal(p.errors[0].code, code, JSON.stringify(p.errors));
        }
        // 12 characters of 2 bytes each is long enough; missing fields listed.
        const ok = await anon.post('/v1/users', { ...newUser(), password: 'é'.repeat(11) + 'e' });
        assert.equal(ok.status, 201, ok.text);
        const none = expectProblem(await anon.post('/v1/users', {}), 422);
        assert.deepEqual(errorFields(none).sort(), ['email', 'name', 'password']);
    });

    it('logs in with a token pair whose access token verifies against the JWKS', T, async () => {
        const u = newUser();
        const acct = await register(anon, u);
        const r = await anon.post('/v1/auth/login', { email: ` ${u.email.toUpperCase()}`, password: u.password });
        assert.equal(r.status, 200, r.text);
        remember(r.json.access_token, r.json.refresh_token);
        assert.deepEqual(Object.keys(r.json).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
        assert.equal(r.json.token_type, 'Bearer');
        assert.equal(r.json.expires_in, 900);
        assert.match(r.json.refresh_token, /^[A-Za-z0-9_-]{43}$/);
        assert.equal(r.header('cache-control'), 'no-store');

        const jr = await anon.get('/.well-known/jwks.json');
        assert.equal(jr.status, 200);
        assert.match(jr.header('cache-control'), /max-age=\d+/);
        for (const k of jr.json.keys) {
            assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
            assert.equal(k.kty, 'EC');
            assert.equal(k.crv, 'P-256');
            assert.equal(k.alg, 'ES256');
            assert.equal(k.use, 'sig');
            assert.match(k.x, B64URL);
        }
        const v = verifyJwt(r.json.access_token, jr.json);
        assert.ok(v.ok, `signature verifies: ${v.reason ?? ''}`);
        assert.deepEqual(v.header, { alg: 'ES256', kid: v.header.kid, typ: 'JWT' });
        assert.ok(jr.json.keys.some((k) => k.kid === v.header.kid), 'JWKS has the kid of the token');
        const c = v.payload;
        assert.equal(c.iss, 'agora-users');
        assert.equal(c.aud, 'agora');
        assert.equal(c.sub, acct.id);
        assert.equal(c.email, acct.email);
        assert.deepEqual(c.roles, ['customer']);
        assert.match(c.jti, UUIDV7);
        assert.equal(c.exp - c.iat, 900);
        assert.equal(c.nbf, c.iat);
        assert.ok(Math.abs(c.iat - Date.now() / 1000) < 60, 'iat is now');
        // A tampered payload does not verify.
        const [h, , s] = r.json.access_token.split('.');
        const forged = Buffer.from(JSON.stringify({ ...c, roles: ['customer', 'admin'] })).toString('base64url');
        assert.equal(verifyJwt(`${h}.${forged}.${s}`, jr.json).ok, false);
    });

    it('answers a wrong password, an unknown e-mail and a malformed one identically', T, async () => {
        const u = newUser();
        await register(anon, u);
        const wrong = await anon.post('/v1/auth/login', { email: u.email, password: 'not the password at all' });
        const unknown = await anon.post('/v1/auth/login', { email: `nobody-${seq}@example.com`, password: u.password });
        const malformed = await anon.post('/v1/auth/login', { email: 'nobody', password: u.password });
        const pw = expectProblem(wrong, 401, { path: '/v1/auth/login' });
        const pu = expectProblem(unknown, 401, { path: '/v1/auth/login' });
        const pm = expectProblem(malformed, 401, { path: '/v1/auth/login' });
        assert.equal(pw.type, 'urn:agora:problem:invalid-credentials');
        assert.deepEqual(withoutRequestId(pw), withoutRequestId(pu));
        assert.deepEqual(withoutRequestId(pw), withoutRequestId(pm));
        assert.equal(wrong.text.replace(pw.request_id, ''), unknown.text.replace(pu.request_id, ''));
        // A body that is not a login at all is a 422, not a 401.
        expectProblem(await anon.post('/v1/auth/login', { email: u.email }), 422);
    });

    it('spends as long on an unknown e-mail as on a wrong password', T, async () => {
        const u = newUser();
        await register(anon, u);
        const timed = async (email) => {
            const t0 = process.hrtime.bigint();
            expectProblem(await anon.post('/v1/auth/login', { email, password: 'a wrong password' }), 401);
            return Number(process.hrtime.bigint() - t0) / 1e6;
        };
        const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        const known = [];
        const unknown = [];
        for (let i = 0; i < 4; i++) {
            known.push(await timed(u.email)); // 4 failures: under the account limit
            unknown.push(await timed(`ghost-${i}-${seq}@example.com`));
        }
        // Without the dummy hash an unknown e-mail answers in about a
        // millisecond, an order of magnitude faster than argon2id.
        assert.ok(median(unknown) > 0.4 * median(known), `unknown ${unknown} ms vs known ${known} ms`);
    });

    it('throttles an account after 5 failed logins with 429 and Retry-After', T, async () => {
        const u = newUser();
        const other = newUser();
        await register(anon, u);
        await register(anon, other);
        for (let i = 0; i < 5; i++) {
            expectProblem(await anon.post('/v1/auth/login', { email: u.email, password: `wrong password ${i}` }), 401);
        }
        for (const password of ['wrong password again', u.password]) {
            const r = await anon.post('/v1/auth/login', { email: u.email, password });
            const p = expectProblem(r, 429);
            assert.equal(p.type, 'urn:agora:problem:too-many-requests');
            const ra = Number(r.header('retry-after'));
            assert.ok(Number.isInteger(ra) && ra > 0 && ra <= 900, `Retry-After ${r.header('retry-after')}`);
        }
        // Throttling one account leaves the others alone.
        await login(anon, other.email, other.password);
    });

    it('rotates refresh tokens and revokes the family when a spent one returns', T, async () => {
        const u = newUser();
        await register(anon, u);
        const s1 = await login(anon, u.email, u.password);
        const other = await login(anon, u.email, u.password); // a second session (family)

        const r2 = await refresh(anon, s1.refresh_token);
        assert.equal(r2.status, 200, r2.text);
        assert.notEqual(r2.json.refresh_token, s1.refresh_token);
        assert.notEqual(r2.json.access_token, s1.access_token);
        assert.equal(r2.header('cache-control'), 'no-store');
        const jwks = (await anon.get('/.well-known/jwks.json')).json;
        assert.ok(verifyJwt(r2.json.access_token, jwks).ok);
        const r3 = await refresh(anon, r2.json.refresh_token);
        assert.equal(r3.status, 200, r3.text);

        // The first token was spent: presenting it again is reuse.
        const reuse = await refresh(anon, s1.refresh_token);
        const p = expectProblem(reuse, 401, { path: '/v1/auth/refresh' });
        assert.equal(p.type, 'urn:agora:problem:invalid-token');
        // The whole family is gone, including its newest token...
        expectProblem(await refresh(anon, r3.json.refresh_token), 401);
        // ...but the other session still works.
        const o2 = await refresh(anon, other.refresh_token);
        assert.equal(o2.status, 200, o2.text);

        // Unknown and malformed tokens.
        expectProblem(await refresh(anon, crypto.randomBytes(32).toString('base64url')), 401);
        expectProblem(await refresh(anon, 'short'), 401);
        expectProblem(await anon.post('/v1/auth/refresh', {}), 422);

        const m = parseMetrics((await admin.get('/metrics')).text);
        assert.ok(metricValue(m, 'users_refreshes_total', { result: 'reused' }) >= 1);
        assert.ok(metricValue(m, 'users_refreshes_total', { result: 'ok' }) >= 3);
    });

    it('logs out by revoking the family', T, async () => {
        const u = newUser();
        await register(anon, u);
        const s = await login(anon, u.email, u.password);
        const r = await anon.post('/v1/auth/logout', { refresh_token: s.refresh_token });
        assert.equal(r.status, 204);
        expectProblem(await refresh(anon, s.refresh_token), 401);
        // Idempotent, and silent about tokens it does not know.
        assert.equal((await anon.post('/v1/auth/logout', { refresh_token: s.refresh_token })).status, 204);
        assert.equal((await anon.post('/v1/auth/logout', { refresh_token: 'nonsense' })).status, 204);
    });

    it('refuses a disabled account at login and refresh, until enabled', T, async () => {
        const u = newUser();
        const acct = await register(anon, u);
        const s = await login(anon, u.email, u.password);

        const d = await admin.post(`/v1/users/${acct.id}/disable`);
        assert.equal(d.status, 200, d.text);
        assertAccount(d.json);
        assert.equal(d.json.disabled, true);

        const right = await anon.post('/v1/auth/login', { email: u.email, password: u.password });
        const wrong = await anon.post('/v1/auth/login', { email: u.email, password: 'some wrong password' });
        assert.deepEqual(withoutRequestId(expectProblem(right, 401)), withoutRequestId(expectProblem(wrong, 401)));
        expectProblem(await refresh(anon, s.refresh_token), 401);

        const e = await admin.post(`/v1/users/${acct.id}/enable`);
        assert.equal(e.status, 200, e.text);
        assert.equal(e.json.disabled, false);
        await login(anon, u.email, u.password);
        // The sessions ended by the disable stay ended.
        expectProblem(await refresh(anon, s.refresh_token), 401);
    });

    it('records revocations for the gateway: tokens carry their session, GET /v1/internal/revocations answers the gateway only', T, async () => {
        const gw = client(svc, { identity: serviceIdentity('gateway') });
        const mine = async (id) => {
            const items = [];
            for (let after = 0; ;) {
                const r = await gw.get(`/v1/internal/revocations?limit=2&after=${after}`);
                assert.equal(r.status, 200, r.text);
                assert.equal(r.header('cache-control'), 'no-store');
                items.push(...r.json.items);
                if (r.json.next_after === null) break;
                assert.ok(Number.isInteger(r.json.next_after) && r.json.next_after > after);
                after = r.json.next_after;
            }
            return items.filter((x) => x.user_id === id);
        };
        const u = newUser();
        const acct = await register(anon, u);
        const s1 = await login(anon, u.email, u.password);
        const s2 = await login(anon, u.email, u.password);
        const c1 = decodeSegment(s1.access_token.split('.')[1]);
        const c2 = decodeSegment(s2.access_token.split('.')[1]);
        assert.match(c1.sid, UUIDV7);
        assert.match(c2.sid, UUIDV7);
        assert.notEqual(c1.sid, c2.sid);
        // A refreshed token stays in its session.
        const r1 = await refresh(anon, s1.refresh_token);
        assert.equal(r1.status, 200);
        assert.equal(decodeSegment(r1.json.access_token.split('.')[1]).sid, c1.sid);
        assert.deepEqual(await mine(acct.id), []);

        // Logout: one session entry (a second logout adds none).
        assert.equal((await anon.post('/v1/auth/logout', { refresh_token: r1.json.refresh_token })).status, 204);
        assert.equal((await anon.post('/v1/auth/logout', { refresh_token: r1.json.refresh_token })).status, 204);
        let got = await mine(acct.id);
        assert.equal(got.length, 1, JSON.stringify(got));
        assert.deepEqual(Object.keys(got[0]).sort(), ['in_force_until', 'issued_before', 'reason', 'scope', 'session_id', 'user_id']);
        assert.equal(got[0].scope, 'session');
        assert.equal(got[0].session_id, c1.sid);
        assert.equal(got[0].reason, 'logout');
        assert.ok(got[0].issued_before >= c1.iat && got[0].issued_before <= Math.ceil(Date.now() / 1000));
        assert.equal(got[0].in_force_until, got[0].issued_before + s1.expires_in + 1);

        // Disable: every token of the user issued up to now.
        assert.equal((await admin.post(`/v1/users/${acct.id}/disable`)).status, 200);
        got = await mine(acct.id);
        const cut = got.find((x) => x.scope === 'user');
        assert.ok(cut, JSON.stringify(got));
        assert.equal(cut.reason, 'disabled');
        assert.equal(cut.session_id, undefined);
        assert.ok(cut.issued_before >= c2.iat);
        // Enabled again, a new login's token is dated after the cut-off, so
        // the gateway does not refuse it with the revoked ones.
        assert.equal((await admin.post(`/v1/users/${acct.id}/enable`)).status, 200);
        const s3 = await login(anon, u.email, u.password);
        assert.ok(decodeSegment(s3.access_token.split('.')[1]).iat > cut.issued_before);

        // Only the gateway (and the operator) may read the list.
        expectProblem(await client(svc, { identity: serviceIdentity('catalog') }).get('/v1/internal/revocations'), 403);
        expectProblem(await client(svc, { identity: { userId: acct.id, roles: ['customer'] } }).get('/v1/internal/revocations'), 403);
        expectProblem(await admin.get('/v1/internal/revocations'), 403);
        expectProblem(await anon.get('/v1/internal/revocations'), 401);
        assert.equal((await client(svc, { identity: OPERATOR }).get('/v1/internal/revocations')).status, 200);
        expectProblem(await gw.get('/v1/internal/revocations?limit=0'), 400);
        expectProblem(await gw.get('/v1/internal/revocations?after=x'), 400);
    });

    it('serves and updates the caller\'s own account from the identity header', T, async () => {
        const u = newUser();
        const acct = await register(anon, u);
        const me = client(svc, { identity: { userId: acct.id, roles: ['customer'] } });
        const g = await me.get('/v1/users/me');
        assert.equal(g.status, 200, g.text);
        assert.deepEqual(g.json, acct);

        const n = await me.patch('/v1/users/me', { name: '  Renamed  ' });
        assert.equal(n.status, 200, n.text);
        assert.equal(n.json.name, 'Renamed');
        assert.ok(n.json.updated_at >= acct.updated_at);

        const s = await login(anon, u.email, u.password);
        const newPassword = `a brand new password ${seq}`;
        remember(newPassword);
        const noCurrent = expectProblem(await me.patch('/v1/users/me', { password: newPassword }), 422);
        assert.deepEqual(errorFields(noCurrent), ['current_password']);
        const badCurrent = expectProblem(await me.patch('/v1/users/me', { password: newPassword, current_password: 'not my password' }), 422);
        assert.deepEqual(errorFields(badCurrent), ['current_password']);
        const weak = expectProblem(await me.patch('/v1/users/me', { password: 'short', current_password: u.password }), 422);
        assert.deepEqual(errorFields(weak), ['password']);
        expectProblem(await me.patch('/v1/users/me', { email: 'x@example.com' }), 422);

        const ch = await me.patch('/v1/users/me', { password: newPassword, current_password: u.password });
        assert.equal(ch.status, 200, ch.text);
        expectProblem(await anon.post('/v1/auth/login', { email: u.email, password: u.password }), 401);
        await login(anon, u.email, newPassword);
        // A new password ends the sessions opened with the old one.
        expectProblem(await refresh(anon, s.refresh_token), 401);

        // An identity for an account that does not exist.
        const ghost = client(svc, { identity: { userId: '01a20000-0000-7000-8000-000000000bad', roles: ['customer'] } });
        expectProblem(await ghost.get('/v1/users/me'), 404);
        expectProblem(await anon.get('/v1/users/me'), 401);
    });

    it('lets administrators list, get, disable; customers get 403, anonymous 401', T, async () => {
        const mine = [];
        for (let i = 0; i < 5; i++) mine.push(await register(anon));
        // Walk every page of 2.
        const seen = [];
        let cursor = null;
        for (let pages = 0; pages < 1000; pages++) {
            const qs = new URLSearchParams({ limit: '2' });
            if (cursor) qs.set('cursor', cursor);
            const r = await admin.get(`/v1/users?${qs}`);
            assert.equal(r.status, 200, r.text);
            assert.ok(r.json.items.length <= 2);
            r.json.items.forEach(assertAccount);
            seen.push(...r.json.items.map((a) => a.id));
            cursor = r.json.next_cursor;
            if (cursor === null) break;
        }
        assert.deepEqual(seen, [...seen].sort(), 'listing is in id order');
        assert.equal(new Set(seen).size, seen.length, 'no duplicates');
        for (const a of mine) assert.ok(seen.includes(a.id));
        const byEmail = await admin.get(`/v1/users?email=${encodeURIComponent(mine[0].email.toUpperCase())}`);
        assert.deepEqual(byEmail.json.items.map((a) => a.id), [mine[0].id]);
        expectProblem(await admin.get('/v1/users?limit=101'), 400);
        expectProblem(await admin.get('/v1/users?cursor=garbage'), 400);

        const g = await admin.get(`/v1/users/${mine[1].id}`);
        assert.equal(g.status, 200);
        assert.deepEqual(g.json, mine[1]);
        expectProblem(await admin.get('/v1/users/01a20000-0000-7000-8000-000000000bad'), 404);
        expectProblem(await admin.get('/v1/users/not-a-uuid'), 404);
        expectProblem(await admin.post('/v1/users/01a20000-0000-7000-8000-000000000bad/disable'), 404);

        const customer = client(svc, { identity: { userId: mine[2].id, roles: ['customer'] } });
        for (const [method, path] of [
            ['GET', '/v1/users'],
            ['GET', `/v1/users/${mine[1].id}`],
            ['POST', `/v1/users/${mine[1].id}/disable`],
            ['POST', `/v1/users/${mine[1].id}/enable`],
        ]) {
            expectProblem(await customer.request(method, path), 403);
            expectProblem(await anon.request(method, path), 401);
        }
    });

    it('creates the administrator from configuration, with the admin role in its token', T, async () => {
        const s = await login(anon, ADMIN_EMAIL, ADMIN_PASSWORD);
        const jwks = (await anon.get('/.well-known/jwks.json')).json;
        const v = verifyJwt(s.access_token, jwks);
        assert.ok(v.ok);
        assert.deepEqual(v.payload.roles, ['customer', 'admin']);
        const me = client(svc, { identity: { userId: v.payload.sub, roles: ['customer', 'admin'] } });
        const r = await me.get('/v1/users/me');
        assert.deepEqual(r.json.roles, ['customer', 'admin']);
        // An administrator cannot lock themselves out.
        expectProblem(await me.post(`/v1/users/${v.payload.sub}/disable`), 409);
    });

    it('keeps passwords, password hashes and tokens out of the logs', T, async () => {
        assert.ok(secrets.size > 20, `collected ${secrets.size} secrets`);
        const text = svc.stderr();
        for (const s of secrets) assert.ok(!text.includes(s), `a secret appears in stderr: ${s.slice(0, 6)}...`);
        assert.ok(!text.includes('$argon2id$'), 'no password hash in stderr');
        assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(text), 'nothing that looks like a JWT in stderr');
        assert.deepEqual(svc.nonJsonLines(), []);
        assert.deepEqual(svc.logs({ level: 'error' }), [], 'no errors logged');
    });

    it('exits 0 on SIGTERM', T, async () => {
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
        assert.deepEqual(svc.nonJsonLines(), [], 'no sanitizer or stray output');
    });
});

describe('users: throttling per client (the one the gateway vouched for)', () => {
    it('limits attempts per client, never per header a client wrote', T, async () => {
        const svc = await startService('users', { env: { ...FAST, AGORA_USERS_CLIENT_MAX_ATTEMPTS: '3' } });
        const anon = client(svc, { identity: null });
        // Unsigned X-Forwarded-For or X-Agora-Client: the socket peer is the client.
        for (let i = 0; i < 3; i++) {
            const r = await anon.post('/v1/auth/login', { email: `c${i}@example.com`, password: 'password attempts' }, { headers: { 'x-forwarded-for': `10.0.0.${i}`, 'x-agora-client': `c1;10.0.0.${i};9999999999;00` } });
            expectProblem(r, 401);
        }
        const r = await anon.post('/v1/auth/login', { email: 'c9@example.com', password: 'password attempts' }, { headers: { 'x-forwarded-for': '10.9.9.9' } });
        expectProblem(r, 429);
        assert.ok(Number(r.header('retry-after')) >= 1);
        // Registration counts too.
        expectProblem(await anon.post('/v1/users', newUser()), 429);
        // A client the gateway vouches for has its own budget: another client's failures cost it nothing.
        const other = client(svc, { identity: null, headers: { 'x-agora-client': clientHeader('192.0.2.7') } });
        expectProblem(await other.post('/v1/auth/login', { email: 'c1@example.com', password: 'password attempts' }), 401);
        // Signed with another key, or expired: not vouched for, so it is the socket peer again.
        const wrongKey = client(svc, { identity: null, headers: { 'x-agora-client': clientHeader('192.0.2.8', { key: 'ab'.repeat(32) }) } });
        expectProblem(await wrongKey.post('/v1/auth/login', { email: 'c1@example.com', password: 'password attempts' }), 429);
        const expired = client(svc, { identity: null, headers: { 'x-agora-client': clientHeader('192.0.2.9', { exp: Math.floor(Date.now() / 1000) - 5 }) } });
        expectProblem(await expired.post('/v1/auth/login', { email: 'c1@example.com', password: 'password attempts' }), 429);
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
    });

    it("slows a stranger's guesses with a growing delay and never locks out a client that signed in before", T, async () => {
        const svc = await startService('users', { env: { ...FAST, AGORA_USERS_ACCOUNT_MAX_FAILURES: '10' } });
        const as = (addr) => client(svc, { identity: null, headers: { 'x-agora-client': clientHeader(addr) } });
        const owner = as('198.51.100.1');
        const u = newUser();
        await register(owner, u);
        await login(owner, u.email, u.password); // the owner's device is now known to the account
        // A stranger guesses: 5 failures free, then it must wait 1 s, then 2 s...
        const stranger = as('203.0.113.66');
        for (let i = 0; i < 5; i++) expectProblem(await stranger.post('/v1/auth/login', { email: u.email, password: `guess ${i}` }), 401);
        const w1 = await stranger.post('/v1/auth/login', { email: u.email, password: 'guess 5' });
        expectProblem(w1, 429);
        assert.equal(w1.header('retry-after'), '1');
        await waitFor(async () => (await stranger.post('/v1/auth/login', { email: u.email, password: 'guess 6' })).status === 401, { timeoutMs: 5000, message: 'the 1 s delay passes' });
        const w2 = await stranger.post('/v1/auth/login', { email: u.email, password: 'guess 7' });
        expectProblem(w2, 429);
        assert.equal(w2.header('retry-after'), '2', 'the delay doubles');
        // Even the right password waits out the delay from the stranger's client.
        expectProblem(await stranger.post('/v1/auth/login', { email: u.email, password: u.password }), 429);
        // The owner, from the known device, signs in at once.
        await login(owner, u.email, u.password);
        // Many strangers (distributed guessing) use up the account's budget for unknown clients...
        for (let i = 0; i < 4; i++) expectProblem(await as(`203.0.113.${100 + i}`).post('/v1/auth/login', { email: u.email, password: `spray ${i}` }), 401);
        const unknown = await as('203.0.113.200').post('/v1/auth/login', { email: u.email, password: u.password });
        expectProblem(unknown, 429);
        assert.match(unknown.json.detail, /device that signed in/);
        // ...and still the owner's device is not blocked.
        await login(owner, u.email, u.password);
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
    });
});

describe('users: signing keys', () => {
    it('rotates keys and keeps a replaced key published until its tokens expired', { timeout: 60_000 }, async () => {
        const svc = await startService('users', {
            env: { ...FAST, AGORA_USERS_KEY_ROTATION: '1s', AGORA_USERS_ACCESS_TTL: '2s', AGORA_USERS_TOKEN_LEEWAY: '0s' },
        });
        const anon = client(svc, { identity: null });
        const u = newUser();
        await register(anon, u);
        const first = await login(anon, u.email, u.password);
        const jwks1 = (await anon.get('/.well-known/jwks.json')).json;
        const v1 = verifyJwt(first.access_token, jwks1);
        assert.ok(v1.ok);
        assert.equal(first.expires_in, 2);
        const kid1 = v1.header.kid;
        const exp1 = v1.payload.exp;

        // A new key appears and signs, while the first stays published.
        const jwks2 = await waitFor(async () => {
            const j = (await anon.get('/.well-known/jwks.json')).json;
            return j.keys.some((k) => k.kid !== kid1) && j.keys.some((k) => k.kid === kid1) ? j : null;
        }, { message: 'a second key next to the first' });
        assert.ok(jwks2.keys.length >= 2);
        const second = await login(anon, u.email, u.password);
        const v2 = verifyJwt(second.access_token, (await anon.get('/.well-known/jwks.json')).json);
        assert.ok(v2.ok);
        assert.notEqual(v2.header.kid, kid1, 'the new key signs');

        // The first key leaves the JWKS, and only once its tokens expired.
        await waitFor(async () => {
            const j = (await anon.get('/.well-known/jwks.json')).json;
            const present = j.keys.some((k) => k.kid === kid1);
            if (present) return false;
            assert.ok(Date.now() >= exp1 * 1000, `key dropped at ${Date.now()} before its token expired at ${exp1 * 1000}`);
            return true;
        }, { timeoutMs: 20_000, message: 'the first key dropped' });
        const m = parseMetrics((await client(svc).get('/metrics')).text);
        assert.ok(metricValue(m, 'users_key_rotations_total') >= 2);
        assert.deepEqual(await stop(svc), { code: 0, signal: null });
    });

    it('keeps its keys and accounts across restarts', T, async () => {
        const svc = await startService('users', { env: FAST });
        const anon = client(svc, { identity: null });
        const u = newUser();
        await register(anon, u);
        const s = await login(anon, u.email, u.password);
        const kid = JSON.parse(Buffer.from(s.access_token.split('.')[0], 'base64url')).kid;
        assert.deepEqual(await stop(svc), { code: 0, signal: null });

        const again = await startService('users', { env: FAST, dataDir: svc.dataDir });
        const anon2 = client(again, { identity: null });
        const jwks = (await anon2.get('/.well-known/jwks.json')).json;
        assert.deepEqual(jwks.keys.map((k) => k.kid), [kid]);
        assert.ok(verifyJwt(s.access_token, jwks).ok);
        const r = await refresh(anon2, s.refresh_token);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(await stop(again), { code: 0, signal: null });

        // A higher argon2 cost: the next login upgrades the stored hash,
        // and the password keeps working with it.
        const costly = await startService('users', { env: { ...FAST, AGORA_USERS_ARGON2_OPSLIMIT: '3' }, dataDir: svc.dataDir });
        const anon3 = client(costly, { identity: null });
        await login(anon3, u.email, u.password);
        await login(anon3, u.email, u.password);
        const upgrades = costly.logs((o) => /password hash of user .* upgraded/.test(o.msg));
        assert.equal(upgrades.length, 1, 'upgraded once, then stored');
        expectProblem(await anon3.post('/v1/auth/login', { email: u.email, password: 'wrong password here' }), 401);
        assert.deepEqual(costly.logs({ level: 'error' }), []);
        assert.deepEqual(await stop(costly), { code: 0, signal: null });
    });
});

describe('users: configuration', () => {
    it('refuses an argon2 cost below the OWASP minimum (exit 2)', T, async () => {
        for (const env of [{ AGORA_USERS_ARGON2_MEMLIMIT: '8MiB' }, { AGORA_USERS_ARGON2_OPSLIMIT: '1' }]) {
            const p = spawnService('users', { env });
            const st = await waitExit(p);
            assert.equal(st.code, 2, p.stderr());
            assert.match(p.stderr(), /config: AGORA_USERS_ARGON2_(MEMLIMIT|OPSLIMIT)/);
        }
    });

    it('refuses a key rotation too short for the token lifetime, and a weak admin password', T, async () => {
        const a = spawnService('users', { env: { ...FAST, AGORA_USERS_KEY_ROTATION: '1s' } });
        assert.notEqual((await waitExit(a)).code, 0);
        assert.match(a.stderr(), /AGORA_USERS_KEY_ROTATION/);
        const b = spawnService('users', { env: { ...FAST, AGORA_USERS_ADMIN_EMAIL: 'a@example.com', AGORA_USERS_ADMIN_PASSWORD: 'short' } });
        assert.notEqual((await waitExit(b)).code, 0);
        assert.match(b.stderr(), /AGORA_USERS_ADMIN_PASSWORD/);
        assert.ok(!b.stderr().includes('"short"'), 'the password is not echoed');
    });
});
