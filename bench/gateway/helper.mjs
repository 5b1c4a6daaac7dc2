// SPDX-License-Identifier: MIT
// bench/gateway/helper.mjs: the benchmark's token issuer and event sink (Node
// standard library only). Not under test: it runs on the load generator's CPU.
//
//   node bench/gateway/helper.mjs DIR PORT
//
// Generates a fresh P-256 key pair, signs one long-lived ES256 access token
// the way the users service does (header {"alg":"ES256","kid","typ":"JWT"};
// iss "agora-users", aud "agora", sub, roles ["customer"], iat, nbf, exp,
// jti) and writes DIR/token (the compact JWS), DIR/public.pem (SPKI PEM,
// for HAProxy's jwt_verify) and DIR/jwks.json. Then serves
// GET /.well-known/jwks.json on 127.0.0.1:PORT (the gateway's
// AGORA_GATEWAY_JWKS_URL) until SIGTERM, and prints "ready" on stdout once
// listening. The private key never leaves this process.
//
// It is also the catalog's bus (AGORA_BUS_URL): POST /v1/messages accepts
// every message (the answer the bus gives) and writes the running count to
// DIR/published, so the outbox of the seeded products drains at start-up
// instead of retrying during the runs, and no event reaches a real bus.
import { generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [dir, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!dir || !Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: node jwks.mjs DIR PORT');
    process.exit(2);
}

const TOKEN_LIFETIME_S = 30 * 24 * 3600; // outlives any run; the gateway caches it until exp
const kid = 'bench-' + randomUUID().slice(0, 8);
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = publicKey.export({ format: 'jwk' });
const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid, alg: 'ES256', use: 'sig' }] };

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const header = { alg: 'ES256', kid, typ: 'JWT' };
const payload = {
    iss: 'agora-users',
    aud: 'agora',
    sub: randomUUID(),
    iat: now,
    nbf: now,
    exp: now + TOKEN_LIFETIME_S,
    roles: ['customer'],
    jti: randomUUID(),
};
const input = b64u(JSON.stringify(header)) + '.' + b64u(JSON.stringify(payload));
// JWS ES256 signatures are r || s (IEEE P1363), not DER.
const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
const token = input + '.' + b64u(sig);

writeFileSync(join(dir, 'token'), token + '\n', { mode: 0o600 });
writeFileSync(join(dir, 'public.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks) + '\n');
writeFileSync(join(dir, 'sub'), payload.sub + '\n');

const body = Buffer.from(JSON.stringify(jwks));
let published = 0;
let seq = 0;
const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/v1/messages') {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            let msgs;
            try {
                msgs = JSON.parse(Buffer.concat(chunks).toString()).messages;
            } catch {
                msgs = null;
            }
            if (!Array.isArray(msgs)) {
                res.writeHead(400, { 'Content-Length': 0 });
                res.end();
                return;
            }
            const results = msgs.map((m) => ({ id: m.id, seq: ++seq, duplicate: false }));
            published += msgs.length;
            writeFileSync(join(dir, 'published'), published + '\n');
            const out = Buffer.from(JSON.stringify({ results }));
            res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': out.length });
            res.end(out);
        });
        return;
    }
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
        res.end(body);
    } else {
        res.writeHead(404, { 'Content-Length': 0 });
        res.end();
    }
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
