// SPDX-License-Identifier: MIT
// The identity header (chassis/include/agora/identity.h), made by tests that
// talk to a service directly. A user, as the gateway signs it:
// "v1;<user id>;<roles>;<exp>;<mac>" with mac = hex HMAC-SHA-256 under
// AGORA_INTERNAL_KEY of the text before the last ';'. A service, signed with
// its own Ed25519 key: "s1;<name>;<exp>;<hex signature>", the key's seed
// derived from a master secret as the supervisor derives it (HMAC-SHA-256
// of "agora-service-v1:<name>"). startService() gives every process
// TEST_INTERNAL_KEY, its own key under TEST_SERVICE_MASTER and the public
// keys of SERVICE_NAMES.
import crypto from 'node:crypto';

import { PROGRAMS } from './ports.mjs';

export const TEST_INTERNAL_KEY = '5eed5eed00112233445566778899aabbccddeeff0011223344556677889900ff';
export const TEST_SERVICE_MASTER = '3a57e12000112233445566778899aabbccddeeff0011223344556677889900aa';

// The services tests know: the shop's programs, the operator, test daemons.
export const SERVICE_NAMES = [...PROGRAMS.map((p) => p.name), 'agora', 'testd_events', 'testsvc'];

// The 32-byte Ed25519 seed of service 'name' under 'master' (hex).
export function serviceSeed(name, master = TEST_SERVICE_MASTER) {
    return crypto.createHmac('sha256', Buffer.from(master, 'hex')).update(`agora-service-v1:${name}`).digest();
}
export function serviceKey(name, master = TEST_SERVICE_MASTER) {
    return serviceSeed(name, master).toString('hex');
}

function privateKey(seed) {
    return crypto.createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
}

// The hex public key of a seed.
export function publicKeyHex(seed) {
    return crypto.createPublicKey(privateKey(seed)).export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
}

// AGORA_SERVICE_PUBKEYS for 'names' under 'master'.
const pubkeyCache = new Map();
export function servicePubkeys(names = SERVICE_NAMES, master = TEST_SERVICE_MASTER) {
    const k = `${master}:${names.join(',')}`;
    if (!pubkeyCache.has(k)) pubkeyCache.set(k, names.map((n) => `${n}=${publicKeyHex(serviceSeed(n, master))}`).join(','));
    return pubkeyCache.get(k);
}

// "s1;<name>;<exp>;<sig>" signed with 'seed' (default: name's own under 'master').
export function serviceHeader(name, { ttlSeconds = 600, exp, master = TEST_SERVICE_MASTER, seed } = {}) {
    const expiry = exp ?? Math.floor(Date.now() / 1000) + ttlSeconds;
    const body = `s1;${name};${expiry}`;
    const sig = crypto.sign(null, Buffer.from(body), privateKey(seed ?? serviceSeed(name, master)));
    return `${body};${sig.toString('hex')}`;
}

const ROLE_BITS = { customer: 1, admin: 2, service: 4, courier: 8 };

// identityHeader({ userId, roles: ['admin'], ttlSeconds, key }) -> header value.
// With roles ['service'], a service identity signed with userId's own key
// derived from 'key' as the master (default TEST_SERVICE_MASTER); with
// hmac: true, the old HMAC form under 'key' instead, which every verifier
// must refuse.
export function identityHeader({ userId, roles = ['customer'], ttlSeconds = 600, exp, key, hmac = false } = {}) {
    if (roles.includes('service') && !hmac) return serviceHeader(userId, { ttlSeconds, exp, master: key ?? TEST_SERVICE_MASTER });
    key ??= TEST_INTERNAL_KEY;
    const bits = roles.reduce((acc, r) => acc | (ROLE_BITS[r] ?? 0), 0);
    const expiry = exp ?? Math.floor(Date.now() / 1000) + ttlSeconds;
    const body = `v1;${userId};${bits};${expiry}`;
    const mac = crypto.createHmac('sha256', Buffer.from(key, 'hex')).update(body).digest('hex');
    return `${body};${mac}`;
}

// A fixed admin user id for tests.
export const TEST_ADMIN_ID = '01a20000-0000-7000-8000-00000000ad01';

// A service's own identity (roles ['service'], user id = its name), which
// internal routes (registry, bus, AG_ROLE_INTERNAL) require. 'agora' is the
// operator: the supervisor and admin tools, the only writer of registry
// configuration. Signed with the service's own key (identityHeader).
export function serviceIdentity(name) {
    return { userId: name, roles: ['service'] };
}
export const OPERATOR = serviceIdentity('agora');

// The gateway-signed client address header (X-Agora-Client):
// "c1;<address>;<exp>;<mac>".
export function clientHeader(address, { ttlSeconds = 600, exp, key = TEST_INTERNAL_KEY } = {}) {
    const expiry = exp ?? Math.floor(Date.now() / 1000) + ttlSeconds;
    const body = `c1;${address};${expiry}`;
    const mac = crypto.createHmac('sha256', Buffer.from(key, 'hex')).update(body).digest('hex');
    return `${body};${mac}`;
}
