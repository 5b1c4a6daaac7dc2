// SPDX-License-Identifier: MIT
// The gateway-signed identity header (chassis/include/agora/identity.h), made
// by tests that talk to a service directly: "v1;<user id>;<roles>;<exp>;<mac>"
// with mac = hex HMAC-SHA-256 under AGORA_INTERNAL_KEY of the text before the
// last ';'. startService() gives every process TEST_INTERNAL_KEY.
import crypto from 'node:crypto';

export const TEST_INTERNAL_KEY = '5eed5eed00112233445566778899aabbccddeeff0011223344556677889900ff';

const ROLE_BITS = { customer: 1, admin: 2, service: 4, courier: 8 };

// identityHeader({ userId, roles: ['admin'], ttlSeconds, key }) -> header value.
export function identityHeader({ userId, roles = ['customer'], ttlSeconds = 600, exp, key = TEST_INTERNAL_KEY } = {}) {
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
// configuration.
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
