// SPDX-License-Identifier: MIT
// Live contract test: `agora up` runs the whole shop once in a temporary
// directory; every operation of the public API description (the bundle of
// tests/lib/openapi.mjs, what the gateway serves at /api/v1/openapi.json)
// is driven through the gateway, to its success and to its documented
// errors, and every answer is checked against the description: its status
// must be declared for that operation, its media type listed, its body valid
// under the declared schema (ajv, JSON Schema 2020-12, formats checked). An
// operation left without a success and an error fails the test, and so does
// a path that does not answer 405 to a method it does not offer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bundle, requireTool } from '../lib/openapi.mjs';
import { buildDir, cleanup, waitFor } from '../lib/proc.mjs';
import { startShop } from '../lib/shop.mjs';

const PASSWORD = 'a long enough passphrase';
const NO_SUCH_ID = '01947000-0000-7fff-bfff-ffffffffffff';

/* ---- The contract: the bundle, compiled for ajv ---- */

const COMPONENTS_ID = 'https://agora.invalid/openapi.json';

function mapRefs(node, fn) {
    if (Array.isArray(node)) return node.map((v) => mapRefs(v, fn));
    if (node && typeof node === 'object') {
        return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === '$ref' ? fn(v) : mapRefs(v, fn)]));
    }
    return node;
}

// Keys starting with 'x-' inside schemas: extensions, annotations to ajv.
function extensionKeys(node, acc = new Set()) {
    if (Array.isArray(node)) node.forEach((v) => extensionKeys(v, acc));
    else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
            if (k.startsWith('x-')) acc.add(k);
            extensionKeys(v, acc);
        }
    }
    return acc;
}

class Contract {
    constructor(doc) {
        const Ajv2020 = requireTool('ajv/dist/2020').default;
        const addFormats = requireTool('ajv-formats').default;
        this.doc = doc;
        // strict: unknown keywords and formats are errors, not ignored.
        this.ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
        addFormats(this.ajv);
        const schemas = doc.components?.schemas ?? {};
        for (const k of extensionKeys(schemas)) this.ajv.addKeyword({ keyword: k });
        this.toAjv = (ref) => ref.replace('#/components/schemas/', `${COMPONENTS_ID}#/$defs/`);
        this.ajv.addSchema({ $id: COMPONENTS_ID, $defs: mapRefs(schemas, this.toAjv) });
        this.validators = new Map();
        this.ops = [];
        for (const [p, item] of Object.entries(doc.paths)) {
            for (const [m, op] of Object.entries(item)) {
                if (m === 'parameters' || m.startsWith('x-')) continue;
                this.ops.push({ method: m.toUpperCase(), path: p, op });
            }
        }
        this.seen = new Map(); // "METHOD path" -> Set(status)
        this.calls = 0;
        this.allowChecked = new Set(); // paths whose 405 was checked
    }

    op(method, p) {
        const hit = this.ops.find((o) => o.method === method && o.path === p);
        assert.ok(hit, `the description has no operation ${method} ${p}`);
        return hit.op;
    }

    response(op, status) {
        let r = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`] ?? op.responses.default;
        if (r?.$ref !== undefined) r = this.doc.components.responses[r.$ref.split('/').pop()];
        return r;
    }

    validator(schema) {
        const k = JSON.stringify(schema);
        let v = this.validators.get(k);
        if (v === undefined) {
            v = this.ajv.compile(mapRefs(schema, this.toAjv));
            this.validators.set(k, v);
        }
        return v;
    }

    // Check answer 'res' of operation 'method' 'p' (the documented path).
    check(method, p, res) {
        const what = `${method} ${p} -> ${res.status} ${res.text.slice(0, 400)}`;
        const op = this.op(method, p);
        const r = this.response(op, res.status);
        assert.ok(r, `undeclared status: ${what} (declared: ${Object.keys(op.responses).join(', ')})`);
        this.record(method, p, res.status);
        this.checkBody(r, res, what);
    }

    checkBody(r, res, what) {
        if (r.content === undefined) {
            assert.equal(res.text, '', `no body is declared: ${what}`);
            return;
        }
        const mt = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
        const media = r.content[mt] ?? r.content['*/*'];
        assert.ok(media, `media type '${mt}' not declared (${Object.keys(r.content).join(', ')}): ${what}`);
        if (media.schema === undefined) return;
        let body;
        try {
            body = JSON.parse(res.text);
        } catch {
            assert.fail(`not JSON: ${what}`);
        }
        const v = this.validator(media.schema);
        assert.ok(v(body), `body does not match the schema: ${this.ajv.errorsText(v.errors, { separator: '; ' })}: ${what}`);
        if (mt === 'application/problem+json') {
            assert.equal(body.status, res.status, `problem status: ${what}`);
            assert.equal(body.request_id, res.headers.get('x-request-id'), `problem request_id: ${what}`);
        }
    }

    record(method, p, status) {
        const k = `${method} ${p}`;
        if (!this.seen.has(k)) this.seen.set(k, new Set());
        this.seen.get(k).add(status);
    }

    // A 405 on path 'p' for a method it does not document: declared on each
    // of its operations (OpenAPI has no path-level answers), Allow exact.
    check405(p, method, res) {
        const ops = this.ops.filter((o) => o.path === p);
        const what = `${method} ${p} -> ${res.status} ${res.text.slice(0, 300)}`;
        assert.equal(res.status, 405, what);
        for (const o of ops) {
            const r = this.response(o.op, 405);
            assert.ok(r, `${o.method} ${p} does not declare 405`);
            this.checkBody(r, res, what);
        }
        const allow = (res.headers.get('allow') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== 'HEAD' && s !== '');
        assert.deepEqual(allow.sort(), ops.map((o) => o.method).sort(), `Allow of ${p}`);
        this.allowChecked.add(p);
    }
}

/* ---- The shop ---- */

describe('the public API description against the running shop', () => {
    const started = Date.now();
    const contract = new Contract(bundle());
    let shop;
    let data;
    let gw;
    const s = {}; // state shared by the cases, in order

    // One request through the gateway to documented operation 'method'
    // 'template' ('{x}' filled from 'params'), checked against the contract.
    async function api(method, template, { params = {}, query, token, json, body, contentType, headers = {}, expect } = {}) {
        let p = template.replace(/\{([^}]+)\}/g, (_, k) => {
            assert.ok(params[k] !== undefined, `no value for {${k}} of ${template}`);
            return encodeURIComponent(params[k]);
        });
        if (query !== undefined) p += `?${new URLSearchParams(query)}`;
        const h = { ...headers };
        if (token !== undefined) h.authorization = `Bearer ${token}`;
        let payload = body;
        if (json !== undefined) payload = JSON.stringify(json);
        if (payload !== undefined) h['content-type'] = contentType ?? 'application/json';
        const r = await fetch(gw + p, { method, headers: h, body: payload });
        const text = await r.text();
        contract.calls++;
        const res = { status: r.status, headers: r.headers, text, json: null };
        try {
            res.json = JSON.parse(text);
        } catch {
            res.json = null;
        }
        if (expect !== undefined) assert.equal(res.status, expect, `${method} ${p}: want ${expect}, got ${res.status} ${text.slice(0, 400)}`);
        contract.check(method, template, res);
        return res;
    }

    before(async () => {
        shop = await startShop();
        gw = shop.gw;
        data = shop.data;
    });

    after(async () => {
        if (shop && (await shop.stop()) === null) await shop.kill();
        cleanup();
    });

    it('users: registration, login, tokens and the caller\'s account', async () => {
        s.email = `contract-${crypto.randomUUID()}@example.com`;
        const reg = await api('POST', '/api/v1/users', { json: { email: s.email, password: PASSWORD, name: 'Contract' }, expect: 201 });
        s.userId = reg.json.id;
        await api('POST', '/api/v1/users', { json: { email: s.email, password: PASSWORD, name: 'Again' }, expect: 409 });
        await api('POST', '/api/v1/users', { json: { email: 'not an address', password: 'short', name: '' }, expect: 422 });
        await api('POST', '/api/v1/users', { body: '{"email":', expect: 400 });
        await api('POST', '/api/v1/users', { body: 'email=x', contentType: 'application/x-www-form-urlencoded', expect: 415 });

        const login = await api('POST', '/api/v1/auth/login', { json: { email: s.email, password: PASSWORD }, expect: 200 });
        s.token = login.json.access_token;
        await api('POST', '/api/v1/auth/login', { json: { email: s.email, password: 'the wrong passphrase' }, expect: 401 });
        await api('POST', '/api/v1/auth/login', { json: { email: s.email }, expect: 422 });
        await api('POST', '/api/v1/auth/login', { body: '[1,', expect: 400 });
        const pw = fs.readFileSync(path.join(data, 'admin-password'), 'utf8').trim();
        const admin = await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: pw }, expect: 200 });
        s.admin = admin.json.access_token;
        s.adminId = JSON.parse(Buffer.from(s.admin.split('.')[1], 'base64url').toString()).sub;

        // Refresh and log out a session of its own: a logout revokes the
        // session's access tokens at the gateway, and s.token is used on.
        const second = await api('POST', '/api/v1/auth/login', { json: { email: s.email, password: PASSWORD }, expect: 200 });
        const refreshed = await api('POST', '/api/v1/auth/refresh', { json: { refresh_token: second.json.refresh_token }, expect: 200 });
        await api('POST', '/api/v1/auth/refresh', { json: { refresh_token: 'A'.repeat(43) }, expect: 401 });
        await api('POST', '/api/v1/auth/refresh', { json: {}, expect: 422 });
        await api('POST', '/api/v1/auth/logout', { json: { refresh_token: refreshed.json.refresh_token }, expect: 204 });
        await api('POST', '/api/v1/auth/logout', { json: { token: 'x' }, expect: 422 });

        const me = await api('GET', '/api/v1/users/me', { token: s.token, expect: 200 });
        assert.equal(me.json.email, s.email);
        await api('GET', '/api/v1/users/me', { expect: 401 });
        await api('PATCH', '/api/v1/users/me', { token: s.token, json: { name: 'Contract Renamed' }, expect: 200 });
        await api('PATCH', '/api/v1/users/me', { token: s.token, json: { password: 'another long passphrase' }, expect: 422 });
        await api('PATCH', '/api/v1/users/me', { token: s.token, body: '{', expect: 400 });
        await api('PATCH', '/api/v1/users/me', { json: { name: 'x' }, expect: 401 });

        await api('GET', '/.well-known/jwks.json', { expect: 200 });
        await api('GET', '/.well-known/jwks.json', { token: 'not.a.token', expect: 401 });
    });

    it('users: the administrators\' view of accounts', async () => {
        const page = await api('GET', '/api/v1/users', { token: s.admin, query: { limit: 1 }, expect: 200 });
        assert.equal(page.json.items.length, 1);
        await api('GET', '/api/v1/users', { token: s.admin, query: { cursor: '!' }, expect: 400 });
        await api('GET', '/api/v1/users', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/users', { expect: 401 });
        await api('GET', '/api/v1/users/{id}', { token: s.admin, params: { id: s.userId }, expect: 200 });
        await api('GET', '/api/v1/users/{id}', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('GET', '/api/v1/users/{id}', { token: s.token, params: { id: s.userId }, expect: 403 });
        await api('POST', '/api/v1/users/{id}/disable', { token: s.admin, params: { id: s.adminId }, expect: 409 });
        await api('POST', '/api/v1/users/{id}/disable', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('POST', '/api/v1/users/{id}/enable', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('POST', '/api/v1/users/{id}/enable', { token: s.token, params: { id: s.userId }, expect: 403 });
        // A second customer, disabled and enabled again.
        const other = await api('POST', '/api/v1/users', {
            json: { email: `contract-${crypto.randomUUID()}@example.com`, password: PASSWORD, name: 'Other' }, expect: 201,
        });
        await api('POST', '/api/v1/users/{id}/disable', { token: s.admin, params: { id: other.json.id }, expect: 200 });
        await api('POST', '/api/v1/users/{id}/enable', { token: s.admin, params: { id: other.json.id }, expect: 200 });
        // The courier role, granted and revoked by an administrator only.
        const granted = await api('PUT', '/api/v1/users/{id}/roles/courier', { token: s.admin, params: { id: other.json.id }, expect: 200 });
        assert.deepEqual(granted.json.roles, ['customer', 'courier']);
        await api('PUT', '/api/v1/users/{id}/roles/courier', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('PUT', '/api/v1/users/{id}/roles/courier', { token: s.token, params: { id: s.userId }, expect: 403 });
        const revoked = await api('DELETE', '/api/v1/users/{id}/roles/courier', { token: s.admin, params: { id: other.json.id }, expect: 200 });
        assert.deepEqual(revoked.json.roles, ['customer']);
        await api('DELETE', '/api/v1/users/{id}/roles/courier', { token: s.token, params: { id: s.userId }, expect: 403 });
    });

    it('catalog: categories and products, with their preconditions', async () => {
        const slug = `contract-${Date.now()}`;
        await api('GET', '/api/v1/products', { query: { limit: 2 }, expect: 200 });
        await api('GET', '/api/v1/products', { query: { limit: 0 }, expect: 400 });
        await api('GET', '/api/v1/categories', { expect: 200 });
        await api('GET', '/api/v1/categories', { token: 'not.a.token', expect: 401 });

        await api('POST', '/api/v1/categories', { token: s.admin, json: { slug, name: 'Contract' }, expect: 201 });
        await api('POST', '/api/v1/categories', { token: s.admin, json: { slug, name: 'Again' }, expect: 409 });
        await api('POST', '/api/v1/categories', { token: s.admin, json: { slug: 'Not A Slug', name: '' }, expect: 422 });
        await api('POST', '/api/v1/categories', { token: s.admin, body: '{"slug"', expect: 400 });
        await api('POST', '/api/v1/categories', { json: { slug: 'x', name: 'x' }, expect: 401 });
        await api('POST', '/api/v1/categories', { token: s.token, json: { slug: 'x', name: 'x' }, expect: 403 });
        await api('GET', '/api/v1/categories/{slug}', { params: { slug }, expect: 200 });
        await api('GET', '/api/v1/categories/{slug}', { params: { slug: 'no-such-category' }, expect: 404 });

        const product = { sku: `CT-${Date.now()}`, name: 'Contract mug', price: { amount: 1250, currency: 'EUR' }, category: slug };
        const created = await api('POST', '/api/v1/products', { token: s.admin, json: product, expect: 201 });
        const id = created.json.id;
        await api('POST', '/api/v1/products', { token: s.admin, json: product, expect: 409 });
        await api('POST', '/api/v1/products', { token: s.admin, json: { ...product, sku: 'CT-x', price: { amount: -1, currency: 'euro' } }, expect: 422 });
        await api('POST', '/api/v1/products', { token: s.admin, body: 'sku=x', contentType: 'text/plain', expect: 415 });
        await api('POST', '/api/v1/products', { token: s.admin, body: JSON.stringify({ pad: 'x'.repeat(1100000) }), expect: 413 });
        await api('POST', '/api/v1/products', { token: s.token, json: product, expect: 403 });

        const got = await api('GET', '/api/v1/products/{id}', { params: { id }, expect: 200 });
        const etag = got.headers.get('etag');
        await api('GET', '/api/v1/products/{id}', { params: { id }, headers: { 'if-none-match': etag }, expect: 304 });
        await api('GET', '/api/v1/products/{id}', { params: { id: NO_SUCH_ID }, expect: 404 });

        await api('PATCH', '/api/v1/products/{id}', { token: s.admin, params: { id }, json: { name: 'Renamed mug' }, expect: 428 });
        await api('PATCH', '/api/v1/products/{id}', { token: s.admin, params: { id }, headers: { 'if-match': '"999"' }, json: { name: 'x' }, expect: 412 });
        await api('PATCH', '/api/v1/products/{id}', { token: s.admin, params: { id }, headers: { 'if-match': etag }, json: { price: { amount: 'free' } }, expect: 422 });
        await api('PATCH', '/api/v1/products/{id}', { token: s.admin, params: { id }, body: '{', expect: 400 });
        const patched = await api('PATCH', '/api/v1/products/{id}', {
            token: s.admin, params: { id }, headers: { 'if-match': etag }, json: { name: 'Renamed mug' }, contentType: 'application/merge-patch+json', expect: 200,
        });
        await api('PATCH', '/api/v1/products/{id}', { token: s.admin, params: { id: NO_SUCH_ID }, json: { version: 1 }, expect: 404 });

        await api('DELETE', '/api/v1/categories/{slug}', { token: s.admin, params: { slug }, expect: 409 });
        await api('DELETE', '/api/v1/products/{id}', { token: s.admin, params: { id }, headers: { 'if-match': etag }, expect: 412 });
        await api('DELETE', '/api/v1/products/{id}', { token: s.admin, params: { id }, headers: { 'if-match': patched.headers.get('etag') }, expect: 204 });
        await api('DELETE', '/api/v1/products/{id}', { token: s.admin, params: { id }, expect: 404 });
        await api('DELETE', '/api/v1/categories/{slug}', { token: s.admin, params: { slug }, expect: 204 });
        await api('DELETE', '/api/v1/categories/{slug}', { token: s.admin, params: { slug }, expect: 404 });
    });

    it('notifications: the customer\'s own, and the templates', async () => {
        // The welcome notification of the registration comes through the bus.
        let mine;
        await waitFor(async () => {
            mine = await api('GET', '/api/v1/notifications', { token: s.token, expect: 200 });
            return mine.json.items.some((n) => n.type === 'user.registered');
        }, { timeoutMs: 30000, intervalMs: 200, message: 'the welcome notification' });
        await api('GET', '/api/v1/notifications', { token: s.token, query: { limit: 0 }, expect: 400 });
        await api('GET', '/api/v1/notifications', { expect: 401 });
        await api('GET', '/api/v1/notifications', { token: s.admin, query: { user_id: s.userId }, expect: 200 });
        const nid = mine.json.items.find((n) => n.type === 'user.registered').id;
        await api('GET', '/api/v1/notifications/{id}', { token: s.token, params: { id: nid }, expect: 200 });
        await api('GET', '/api/v1/notifications/{id}', { token: s.admin, params: { id: nid }, expect: 200 });
        await api('GET', '/api/v1/notifications/{id}', { token: s.token, params: { id: NO_SUCH_ID }, expect: 404 });

        const type = `order.contract_${Date.now()}`;
        const tpl = { subject: 'Order {{order_id}}', body: 'Total {{money total}}' };
        await api('PUT', '/api/v1/templates/{type}', { token: s.admin, params: { type }, json: tpl, expect: 201 });
        await api('PUT', '/api/v1/templates/{type}', { token: s.admin, params: { type }, json: { ...tpl, enabled: false }, expect: 200 });
        await api('PUT', '/api/v1/templates/{type}', { token: s.admin, params: { type: 'stock.low' }, json: tpl, expect: 422 });
        await api('PUT', '/api/v1/templates/{type}', { token: s.admin, params: { type }, body: '{"subject":', expect: 400 });
        await api('PUT', '/api/v1/templates/{type}', { token: s.token, params: { type }, json: tpl, expect: 403 });
        await api('GET', '/api/v1/templates', { token: s.admin, expect: 200 });
        await api('GET', '/api/v1/templates', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/templates/{type}', { token: s.admin, params: { type }, expect: 200 });
        await api('GET', '/api/v1/templates/{type}', { token: s.admin, params: { type: 'user.no_such_type' }, expect: 404 });
    });

    it('the gateway serves this very description at /api/v1/openapi.json', async () => {
        const r = await fetch(`${gw}/api/v1/openapi.json`);
        assert.equal(r.status, 200);
        assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
        const served = await r.json();
        const built = JSON.parse(fs.readFileSync(path.join(buildDir(), 'openapi.json'), 'utf8'));
        assert.deepEqual(served, built);
        assert.ok(Object.keys(served.paths).some((p) => p.startsWith('/api/v1/products')));
    });

    it('shipping: shipments made by the saga\'s command, read by their owner, moved by an administrator', async () => {
        // Orders does not exist yet: the test sends cmd.shipment.create to the bus as orders' outbox would.
        const uuid7 = () => {
            const h = crypto.randomBytes(16).toString('hex').split('');
            Date.now().toString(16).padStart(12, '0').split('').forEach((c, i) => { h[i] = c; });
            h[12] = '7';
            h[16] = '89ab'[parseInt(h[16], 16) & 3];
            const x = h.join('');
            return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
        };
        const shipFor = async (orderId) => {
            const cmd = {
                specversion: '1.0', id: uuid7(), source: '/agora/orders', type: 'cmd.shipment.create', subject: orderId,
                time: new Date().toISOString(), datacontenttype: 'application/json',
                data: {
                    order_id: orderId, step_key: `${orderId}:ship`, user_id: s.userId,
                    address: { name: 'Contract', line1: '1 Test Street', city: 'Testville', postal_code: '12345', country: 'FR' },
                    lines: [{ product_id: uuid7(), quantity: 1 }],
                },
            };
            const r = await fetch(`${shop.url('bus')}/v1/messages`, {
                method: 'POST',
                headers: { ...shop.operator, 'content-type': 'application/json' },
                body: JSON.stringify({ messages: [{ id: cmd.id, topic: cmd.type, subject: orderId, data: cmd }] }),
            });
            assert.equal(r.status, 200, await r.text());
            let page;
            await waitFor(async () => {
                page = await api('GET', '/api/v1/shipments', { token: s.token, query: { order_id: orderId }, expect: 200 });
                return page.json.items.length === 1;
            }, { timeoutMs: 30000, intervalMs: 100, message: `the shipment of order ${orderId}` });
            return page.json.items[0].id;
        };
        const id = await shipFor(uuid7());
        await api('GET', '/api/v1/shipments', { token: s.token, query: { limit: 0 }, expect: 400 });
        await api('GET', '/api/v1/shipments', { expect: 401 });
        await api('GET', '/api/v1/shipments', { token: s.admin, query: { status: 'created', limit: 1 }, expect: 200 });
        await api('GET', '/api/v1/shipments/{id}', { token: s.token, params: { id }, expect: 200 });
        await api('GET', '/api/v1/shipments/{id}', { token: s.token, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('POST', '/api/v1/shipments/{id}/deliver', { token: s.admin, params: { id }, expect: 409 });
        await api('POST', '/api/v1/shipments/{id}/ship', { token: s.token, params: { id }, expect: 403 });
        await api('POST', '/api/v1/shipments/{id}/ship', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('POST', '/api/v1/shipments/{id}/ship', { token: s.admin, params: { id }, expect: 200 });
        await api('POST', '/api/v1/shipments/{id}/deliver', { token: s.admin, params: { id }, expect: 200 });
        await api('POST', '/api/v1/shipments/{id}/cancel', { token: s.admin, params: { id }, expect: 409 });
        const other = await shipFor(uuid7());
        await api('POST', '/api/v1/shipments/{id}/cancel', { token: s.admin, params: { id: other }, expect: 200 });
    });

    it('payments: pay an order, capture, refund and void, each with an Idempotency-Key', async () => {
        const eur = (amount) => ({ amount, currency: 'EUR' });
        const write = (template, { params, token = s.admin, json, body, key = crypto.randomUUID(), expect }) =>
            api('POST', template, { params, token: token ?? undefined, json, body, headers: key === null ? {} : { 'idempotency-key': key }, expect });
        const address = { name: 'Contract', line1: '1 Main St', city: 'Lyon', postal_code: '69001', country: 'FR' };
        // Orders waiting for a payment ("pay later"), of seeded products
        // (agora up stocks them): payments checks the order with orders.
        const seeded = (await api('GET', '/api/v1/products', { query: { limit: 2 }, expect: 200 })).json.items;
        const awaitingOrder = async (item) => {
            await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token: s.token, json: { product_id: item.id, quantity: 1 } })).status === 200, { message: 'in the cart' });
            const o = await api('POST', '/api/v1/orders', { token: s.token, headers: { 'idempotency-key': crypto.randomUUID() }, json: { shipping_address: address }, expect: 202 });
            await waitFor(async () => (await api('GET', '/api/v1/orders/{id}', { token: s.token, params: { id: o.json.id } })).json.status === 'AWAITING_PAYMENT', { message: 'awaiting payment' });
            return o.json.id;
        };
        // With shipping stopped the saga waits at its shipment step, so an
        // authorization stays uncaptured for the administrator's operations.
        const shipping = shop.pidOf('shipping');
        process.kill(shipping, 'SIGSTOP');
        try {
            const order = await awaitingOrder(seeded[0]);
            const T = seeded[0].price.amount;
            assert.ok(T >= 3);
            const pay = { order_id: order, amount: eur(T), payment_token: 'tok_visa' };
            const k = crypto.randomUUID();
            const created = await write('/api/v1/payments', { token: s.token, json: pay, key: k, expect: 201 });
            const id = created.json.id;
            const again = await write('/api/v1/payments', { token: s.token, json: pay, key: k, expect: 201 });
            assert.equal(again.json.id, id, 'the same key answers the first answer');
            await write('/api/v1/payments', { token: s.token, json: { ...pay, amount: eur(1) }, key: k, expect: 422 });
            await write('/api/v1/payments', { token: s.token, json: pay, key: null, expect: 428 });
            const order2 = await awaitingOrder(seeded[1]);
            const pay2 = { order_id: order2, amount: seeded[1].price, payment_token: 'tok_visa' };
            await write('/api/v1/payments', { token: s.token, json: { ...pay2, amount: eur(seeded[1].price.amount + 1) }, expect: 422 });
            await write('/api/v1/payments', { token: s.token, json: { ...pay2, order_id: NO_SUCH_ID }, expect: 404 });
            await write('/api/v1/payments', { token: s.token, json: pay, expect: 409 });
            await write('/api/v1/payments', { token: s.token, json: { ...pay2, payment_token: 'tok_chargeDeclined' }, expect: 402 });
            await write('/api/v1/payments', { token: s.token, json: { ...pay, payment_token: '4242424242424242' }, expect: 422 });
            await write('/api/v1/payments', { token: s.token, body: '{"order_id":', expect: 400 });
            await write('/api/v1/payments', { token: null, json: pay, expect: 401 });

            await api('GET', '/api/v1/payments', { token: s.token, query: { order_id: order }, expect: 200 });
            await api('GET', '/api/v1/payments', { token: s.token, expect: 400 });
            await api('GET', '/api/v1/payments', { query: { order_id: order }, expect: 401 });
            await api('GET', '/api/v1/payments/{id}', { token: s.token, params: { id }, expect: 200 });
            await api('GET', '/api/v1/payments/{id}', { token: s.token, params: { id: NO_SUCH_ID }, expect: 404 });
            await api('GET', '/api/v1/payments/{id}', { params: { id }, expect: 401 });

            await write('/api/v1/payments/{id}/capture', { params: { id }, json: { amount: eur(T + 1) }, expect: 422 });
            await write('/api/v1/payments/{id}/capture', { params: { id }, json: { amount: eur(T - 1) }, key: null, expect: 428 });
            await write('/api/v1/payments/{id}/capture', { params: { id }, token: s.token, json: {}, expect: 403 });
            await write('/api/v1/payments/{id}/capture', { params: { id: NO_SUCH_ID }, json: {}, expect: 404 });
            await write('/api/v1/payments/{id}/capture', { params: { id }, json: { amount: eur(T - 1) }, expect: 200 });
            await write('/api/v1/payments/{id}/capture', { params: { id }, json: {}, expect: 409 });

            await write('/api/v1/payments/{id}/refunds', { params: { id }, json: { amount: eur(1), reason: 'damaged' }, expect: 201 });
            await write('/api/v1/payments/{id}/refunds', { params: { id }, json: { amount: eur(T) }, expect: 422 });
            await write('/api/v1/payments/{id}/refunds', { params: { id }, token: s.token, json: { amount: eur(1) }, expect: 403 });
            await write('/api/v1/payments/{id}/refunds', { params: { id: NO_SUCH_ID }, json: { amount: eur(1) }, expect: 404 });

            await write('/api/v1/payments/{id}/void', { params: { id }, json: {}, expect: 409 });
            const other = await write('/api/v1/payments', { token: s.token, json: pay2, expect: 201 });
            await write('/api/v1/payments/{id}/void', { params: { id: other.json.id }, json: { reason: 'customer_request' }, expect: 200 });
            await write('/api/v1/payments/{id}/void', { params: { id: other.json.id }, token: s.token, json: {}, expect: 403 });
            await write('/api/v1/payments/{id}/void', { params: { id: NO_SUCH_ID }, json: {}, expect: 404 });
        } finally {
            process.kill(shipping, 'SIGCONT');
        }
    });

    it('inventory: availability, stock with its preconditions and history, reservations', async () => {
        // A product from the catalog reaches inventory through the bus.
        const product = { sku: `INV-${Date.now()}`, name: 'Contract stock', price: { amount: 500, currency: 'EUR' } };
        const id = (await api('POST', '/api/v1/products', { token: s.admin, json: product, expect: 201 })).json.id;
        let got;
        await waitFor(async () => {
            got = await api('GET', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id } });
            return got.status === 200;
        }, { timeoutMs: 30000, intervalMs: 100, message: 'the stock row of the new product' });
        await api('GET', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: NO_SUCH_ID }, expect: 404 });
        await api('GET', '/api/v1/stock/{product_id}', { token: s.token, params: { product_id: id }, expect: 403 });
        await api('GET', '/api/v1/stock/{product_id}', { params: { product_id: id }, expect: 401 });

        const etag = got.headers.get('etag');
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, json: { on_hand: 5, reason: 'count' }, expect: 428 });
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, headers: { 'if-match': '"999"' }, json: { on_hand: 5, reason: 'count' }, expect: 412 });
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, headers: { 'if-match': etag }, json: { on_hand: -5 }, expect: 422 });
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, body: '{', expect: 400 });
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: NO_SUCH_ID }, json: { on_hand: 5, reason: 'count', version: 1 }, expect: 404 });
        const set = await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, headers: { 'if-match': etag }, json: { on_hand: 5, reason: 'count' }, expect: 200 });
        assert.equal(set.json.available, 5);

        const key = crypto.randomUUID();
        const adj = { token: s.admin, params: { product_id: id }, headers: { 'idempotency-key': key }, json: { delta: 3, reason: 'delivery' } };
        const first = await api('POST', '/api/v1/stock/{product_id}/adjustments', { ...adj, expect: 201 });
        const repeat = await api('POST', '/api/v1/stock/{product_id}/adjustments', { ...adj, expect: 201 });
        assert.equal(repeat.json.movement.id, first.json.movement.id, 'a repeat is the first answer');
        await api('POST', '/api/v1/stock/{product_id}/adjustments', { token: s.admin, params: { product_id: id }, json: { delta: 0, reason: '' }, expect: 422 });
        await api('POST', '/api/v1/stock/{product_id}/adjustments', { token: s.admin, params: { product_id: NO_SUCH_ID }, json: { delta: 1, reason: 'x' }, expect: 404 });
        await api('GET', '/api/v1/stock/{product_id}/movements', { token: s.admin, params: { product_id: id }, query: { limit: 2 }, expect: 200 });
        await api('GET', '/api/v1/stock/{product_id}/movements', { token: s.admin, params: { product_id: id }, query: { cursor: '!' }, expect: 400 });

        const avail = await api('GET', '/api/v1/stock', { query: { product_id: id }, expect: 200 });
        assert.deepEqual(avail.json.items, [{ product_id: id, available: 8 }]);
        await api('GET', '/api/v1/stock', { query: { product_id: 'x' }, expect: 400 });

        // A reservation, as the orders service would ask for one.
        const v7 = () => crypto.randomUUID().replace(/^(.{14})4/, (_, head) => `${head}7`);
        const order = v7();
        const msgId = v7();
        const command = {
            specversion: '1.0', id: msgId, source: '/agora/orders', type: 'cmd.inventory.reserve', subject: order,
            time: new Date().toISOString(), datacontenttype: 'application/json',
            data: { order_id: order, step_key: `${order}:reserve`, lines: [{ product_id: id, quantity: 2 }] },
        };
        const pub = await fetch(`${shop.url('bus')}/v1/messages`, {
            method: 'POST', headers: { ...shop.operator, 'content-type': 'application/json' },
            body: JSON.stringify({ messages: [{ id: msgId, topic: command.type, subject: order, data: command }] }),
        });
        assert.equal(pub.status, 200, await pub.text());
        let list;
        await waitFor(async () => {
            list = await api('GET', '/api/v1/reservations', { token: s.admin, query: { order_id: order }, expect: 200 });
            return list.json.items.length === 1;
        }, { timeoutMs: 30000, intervalMs: 100, message: 'the reservation of the order' });
        await api('GET', '/api/v1/reservations', { token: s.admin, query: { order_id: 'x' }, expect: 400 });
        await api('GET', '/api/v1/reservations/{id}', { token: s.admin, params: { id: list.json.items[0].id }, expect: 200 });
        await api('GET', '/api/v1/reservations/{id}', { token: s.admin, params: { id: NO_SUCH_ID }, expect: 404 });
        const cur = await api('GET', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, expect: 200 });
        await api('PUT', '/api/v1/stock/{product_id}', { token: s.admin, params: { product_id: id }, headers: { 'if-match': cur.headers.get('etag') }, json: { on_hand: 1, reason: 'count' }, expect: 409 });
    });

    it('orders: the cart, checkout, the customer\'s orders and the sagas', async () => {
        // A product of the catalog reaches the orders' price replica over the bus.
        const product = { sku: `CO-${Date.now()}`, name: 'Contract kettle', price: { amount: 3000, currency: 'EUR' } };
        const pid = (await api('POST', '/api/v1/products', { token: s.admin, json: product, expect: 201 })).json.id;
        const address = { name: 'Contract', line1: '1 Main St', city: 'Lyon', postal_code: '69001', country: 'FR' };
        await api('GET', '/api/v1/cart', { token: s.token, expect: 200 });
        await api('GET', '/api/v1/cart', { expect: 401 });
        await waitFor(async () => (await api('POST', '/api/v1/cart/items', { token: s.token, json: { product_id: pid, quantity: 1 } })).status === 200,
            { timeoutMs: 30000, intervalMs: 200, message: 'the product in the price replica of orders' });
        await api('POST', '/api/v1/cart/items', { token: s.token, json: { product_id: pid, quantity: 0 }, expect: 422 });
        await api('PATCH', '/api/v1/cart/items/{product_id}', { token: s.token, params: { product_id: pid }, json: { quantity: 2 }, expect: 200 });
        await api('PATCH', '/api/v1/cart/items/{product_id}', { token: s.token, params: { product_id: NO_SUCH_ID }, json: { quantity: 2 }, expect: 404 });
        await api('DELETE', '/api/v1/cart/items/{product_id}', { token: s.token, params: { product_id: NO_SUCH_ID }, expect: 404 });

        const key = crypto.randomUUID();
        await api('POST', '/api/v1/orders', { token: s.token, json: { shipping_address: address }, expect: 428 });
        const order = await api('POST', '/api/v1/orders', { token: s.token, headers: { 'idempotency-key': key }, json: { shipping_address: address }, expect: 202 });
        await api('POST', '/api/v1/orders', { token: s.token, headers: { 'idempotency-key': key }, json: { shipping_address: { ...address, city: 'Paris' } }, expect: 422 });
        const id = order.json.id;
        await api('GET', '/api/v1/orders', { token: s.token, expect: 200 });
        await api('GET', '/api/v1/orders', { token: s.token, query: { status: 'LOST' }, expect: 400 });
        await api('GET', '/api/v1/orders/{id}', { token: s.token, params: { id }, expect: 200 });
        await api('GET', '/api/v1/orders/{id}', { token: s.token, params: { id: NO_SUCH_ID }, expect: 404 });
        await api('POST', '/api/v1/orders/{id}/cancel', { token: s.token, params: { id }, expect: 200 });
        await api('POST', '/api/v1/orders/{id}/cancel', { token: s.token, params: { id }, expect: 409 });

        await api('POST', '/api/v1/cart/items', { token: s.token, json: { product_id: pid, quantity: 1 }, expect: 200 });
        await api('DELETE', '/api/v1/cart/items/{product_id}', { token: s.token, params: { product_id: pid }, expect: 204 });
        await api('GET', '/api/v1/sagas', { token: s.admin, query: { state: 'failed' }, expect: 200 });
        await api('GET', '/api/v1/sagas', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/sagas/rebuild-check', { token: s.admin, expect: 200 });
        await api('GET', '/api/v1/sagas/rebuild-check', { token: s.token, expect: 403 });
    });

    it('analytics (administrators): reports built from the events, and a rebuild', async () => {
        // The orders above reach the read side through the bus.
        await waitFor(async () => (await api('GET', '/api/v1/reports/orders', { token: s.admin, expect: 200 })).json.items.length > 0, {
            timeoutMs: 30000, intervalMs: 200, message: 'an order in the orders report',
        });
        const day = new Date().toISOString().slice(0, 10);
        for (const by of ['day', 'product']) await api('GET', '/api/v1/reports/revenue', { token: s.admin, query: { by, from: day }, expect: 200 });
        await api('GET', '/api/v1/reports/revenue', { token: s.admin, query: { by: 'week' }, expect: 400 });
        await api('GET', '/api/v1/reports/revenue', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/reports/orders', { token: s.admin, query: { from: day, to: '2000-01-01' }, expect: 400 });
        await api('GET', '/api/v1/reports/conversion', { token: s.admin, query: { to: day }, expect: 200 });
        await api('GET', '/api/v1/reports/conversion', { expect: 401 });
        await api('GET', '/api/v1/reports/sagas', { token: s.admin, expect: 200 });
        await api('GET', '/api/v1/reports/sagas', { token: s.admin, query: { from: '2025-02-30' }, expect: 400 });
        await api('GET', '/api/v1/reports/cancellations', { token: s.admin, expect: 200 });
        await api('GET', '/api/v1/reports/cancellations', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/reports/stock', { token: s.admin, expect: 200 });
        await api('GET', '/api/v1/reports/stock', { token: s.admin, query: { product_id: 'x' }, expect: 400 });
        await api('POST', '/api/v1/reports/rebuild', { token: s.admin, expect: 200 });
        await api('POST', '/api/v1/reports/rebuild', { token: s.token, expect: 403 });
    });

    it('bus (administrators): subscriptions with their backlog, a dead letter inspected and replayed', async () => {
        // A real dead letter: a subscription of our own allowing one attempt,
        // a product.created delivered to it and rejected.
        const bus = shop.url('bus');
        const ident = { ...shop.operator, 'content-type': 'application/json' };
        const sub = `contract-${Date.now()}`;
        assert.equal((await fetch(`${bus}/v1/subscriptions/${sub}`, { method: 'PUT', headers: ident, body: JSON.stringify({ topics: ['product.created'], max_attempts: 1 }) })).status, 201);
        const created = await api('POST', '/api/v1/products', { token: s.admin, json: { sku: `CT-DL-${Date.now()}`, name: 'Dead letter', price: { amount: 100, currency: 'EUR' } }, expect: 201 });
        let msg;
        await waitFor(async () => {
            const r = await (await fetch(`${bus}/v1/subscriptions/${sub}/pull`, { method: 'POST', headers: ident, body: JSON.stringify({ max_messages: 10, wait_ms: 1000 }) })).json();
            msg = r.messages.find((m) => JSON.stringify(m.data).includes(created.json.id));
            return msg !== undefined;
        }, { timeoutMs: 15000, intervalMs: 50, message: 'the product.created delivery' });
        assert.equal((await fetch(`${bus}/v1/subscriptions/${sub}/nack`, { method: 'POST', headers: ident, body: JSON.stringify({ ack_ids: [msg.ack_id], error: 'rejected by the contract test' }) })).status, 200);

        await waitFor(async () => {
            const list = await api('GET', '/api/v1/admin/subscriptions', { token: s.admin, expect: 200 });
            return list.json.subscriptions.find((x) => x.name === sub)?.backlog.dead_letters === 1;
        }, { timeoutMs: 15000, intervalMs: 50, message: 'the dead letter in the backlog' });
        await api('GET', '/api/v1/admin/subscriptions', { token: s.token, expect: 403 });
        await api('GET', '/api/v1/admin/subscriptions', { expect: 401 });
        const dead = await api('GET', '/api/v1/admin/subscriptions/{name}/dead-letters', { token: s.admin, params: { name: sub }, expect: 200 });
        assert.deepEqual(dead.json.messages.map((m) => m.seq), [msg.seq]);
        await api('GET', '/api/v1/admin/subscriptions/{name}/dead-letters', { token: s.admin, params: { name: 'no-such-subscription' }, expect: 404 });
        await api('GET', '/api/v1/admin/subscriptions/{name}/dead-letters', { token: s.token, params: { name: sub }, expect: 403 });
        const one = await api('GET', '/api/v1/admin/subscriptions/{name}/dead-letters/{seq}', { token: s.admin, params: { name: sub, seq: msg.seq }, expect: 200 });
        assert.equal(one.json.last_error, 'rejected by the contract test');
        await api('GET', '/api/v1/admin/subscriptions/{name}/dead-letters/{seq}', { token: s.admin, params: { name: sub, seq: msg.seq + 1000000 }, expect: 404 });
        await api('POST', '/api/v1/admin/subscriptions/{name}/replay-dead-letters', { token: s.admin, params: { name: sub }, json: { seqs: ['x'] }, expect: 422 });
        await api('POST', '/api/v1/admin/subscriptions/{name}/replay-dead-letters', { token: s.token, params: { name: sub }, json: {}, expect: 403 });
        const replayed = await api('POST', '/api/v1/admin/subscriptions/{name}/replay-dead-letters', { token: s.admin, params: { name: sub }, json: { seqs: [msg.seq] }, expect: 200 });
        assert.equal(replayed.json.replayed, 1);
        // What a service may do stays internal: an administrator cannot pull.
        assert.equal((await fetch(`${gw}/api/v1/admin/subscriptions/${sub}/pull`, { method: 'POST', headers: { authorization: `Bearer ${s.admin}`, 'content-type': 'application/json' }, body: '{}' })).status, 404);
        await fetch(`${bus}/v1/subscriptions/${sub}`, { method: 'DELETE', headers: ident });
    });

    it('traces through the gateway: the list and one trace (admin only)', async () => {
        const traceId = crypto.randomBytes(16).toString('hex');
        const r = await fetch(`${gw}/api/v1/products?limit=1`, { headers: { traceparent: `00-${traceId}-${crypto.randomBytes(8).toString('hex')}-01` } });
        assert.equal(r.status, 200);
        await r.arrayBuffer();
        // The exporters send every second.
        await waitFor(async () => {
            const t = await fetch(`${gw}/api/v1/traces/${traceId}`, { headers: { authorization: `Bearer ${s.admin}` } });
            return t.status === 200 && (await t.json()).spans.some((x) => x.service === 'catalog');
        }, { timeoutMs: 15_000, message: 'the trace at the collector, with the catalog\'s span' });
        const one = await api('GET', '/api/v1/traces/{id}', { token: s.admin, params: { id: traceId }, expect: 200 });
        assert.ok(one.json.spans.some((x) => x.service === 'catalog'));
        await api('GET', '/api/v1/traces/{id}', { token: s.admin, params: { id: crypto.randomBytes(16).toString('hex') }, expect: 404 });
        const list = await api('GET', '/api/v1/traces', { token: s.admin, query: { service: 'catalog', limit: 5 }, expect: 200 });
        assert.ok(list.json.items.length > 0);
        await api('GET', '/api/v1/traces', { token: s.token, expect: 403 });
        const logs = await api('GET', '/api/v1/logs', { token: s.admin, query: { trace_id: traceId }, expect: 200 });
        assert.ok(logs.json.items.some((l) => l.service === 'catalog' && l.trace_id === traceId));
        await api('GET', '/api/v1/logs', { token: s.admin, query: { level: 'loud' }, expect: 400 });
        // Spans are not taken through the gateway.
        assert.equal((await fetch(`${gw}/api/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[]}' })).status, 404);
    });

    it('the gateway\'s service map for the console: /api/v1/admin/services (admin only)', async () => {
        const r = await fetch(`${gw}/api/v1/admin/services`, { headers: { authorization: `Bearer ${s.admin}` } });
        assert.equal(r.status, 200);
        const body = await r.json();
        assert.equal(typeof body.time_ms, 'number');
        for (const name of ['catalog', 'orders', 'bus']) {
            const svc = body.services[name];
            assert.equal(svc.status, 'ok', `${name}: ${JSON.stringify(svc)}`);
            assert.match(svc.instances[0].incarnation, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
            assert.ok(svc.instances[0].started_ms <= Date.now());
        }
        assert.ok(body.services.catalog.requests.total > 0, 'the gateway counted the catalog calls');
        const customer = await fetch(`${gw}/api/v1/admin/services`, { headers: { authorization: `Bearer ${s.token}` } });
        assert.equal(customer.status, 403);
        assert.equal((await customer.json()).type, 'urn:agora:problem:forbidden');
        const anonymous = await fetch(`${gw}/api/v1/admin/services`);
        assert.equal(anonymous.status, 401);
        assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
        assert.equal((await fetch(`${gw}/api/v1/admin/services`, { method: 'POST', headers: { authorization: `Bearer ${s.admin}` } })).status, 405);
    });

    it('every documented path answers 405, with Allow, to a method it does not offer', async () => {
        for (const p of [...new Set(contract.ops.map((o) => o.path))]) {
            const methods = new Set(contract.ops.filter((o) => o.path === p).map((o) => o.method));
            const method = ['PUT', 'DELETE', 'PATCH', 'POST'].find((m) => !methods.has(m));
            const url = p.replace(/\{[^}]+\}/g, NO_SUCH_ID);
            // As the administrator, so that the gateway's role check passes
            // and the service's router answers.
            const r = await fetch(gw + url, { method, headers: { authorization: `Bearer ${s.admin}` } });
            contract.calls++;
            contract.check405(p, method, { status: r.status, headers: r.headers, text: await r.text() });
        }
    });

    it('the gateway\'s rate limit of a route answers 429 as declared', async () => {
        // /api/v1/users/me: 20 requests a second per user, bursts of 40.
        const answers = await Promise.all(Array.from({ length: 60 }, () => api('GET', '/api/v1/users/me', { token: s.token })));
        const statuses = answers.map((r) => r.status);
        assert.ok(statuses.includes(429), `no 429 in ${statuses}`);
        assert.ok(statuses.every((st) => st === 200 || st === 429), String(statuses));
    });

    it('every documented operation was exercised: a success and an error each', (t) => {
        const missing = [];
        let full = 0;
        for (const o of contract.ops) {
            const st = [...(contract.seen.get(`${o.method} ${o.path}`) ?? [])];
            const ok = st.some((x) => x < 400);
            const err = st.some((x) => x >= 400);
            if (ok && err) full++;
            else missing.push(`${o.method} ${o.path}: seen ${st.join(', ') || 'nothing'}`);
        }
        const paths = new Set(contract.ops.map((o) => o.path));
        t.diagnostic(`operations exercised: ${full}/${contract.ops.length}; paths checked for 405: ${contract.allowChecked.size}/${paths.size}; calls: ${contract.calls}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
        assert.deepEqual(missing, [], 'operations without a success and an error');
        assert.equal(contract.allowChecked.size, paths.size);
    });

    it('SIGTERM stops the shop with exit status 0', async () => {
        const st = await shop.stop();
        assert.deepEqual(st, { code: 0, signal: null }, shop.stderr().slice(-3000));
        assert.ok(!/exited unexpectedly/.test(shop.stderr()), 'no program crashed');
    });
});
