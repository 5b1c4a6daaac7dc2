// SPDX-License-Identifier: MIT
// Notifications component tests: the real binary on a free port with a
// temporary database, fed CloudEvents through a real bus and delivering to
// a real SMTP server on loopback (aiosmtpd, tests/smtpd.py, which writes
// every accepted message to a directory). Checked against
// services/notifications/openapi.yaml and DESIGN.md section 3: e-mails and
// their headers, per-user visibility, inbox de-duplication, retries while
// the mail server is down, templates, metrics, shutdown.
//
// Waiting is always for an observable condition (waitFor), never a sleep.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { cleanup, makeTempDir, spawnService, startService, stop, waitExit, waitFor } from '../../../tests/lib/proc.mjs';
import { OPERATOR } from '../../../tests/lib/identity.mjs';
import { client, errorFields, expectProblem, metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { assertValidEvent } from '../../../tests/lib/schema.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const T = { timeout: 30_000 };
// Deadline for an event to travel bus -> notifications -> SMTP.
const DELIVERY_MS = 15_000;

const smtpServers = new Set();
after(async () => {
    for (const s of smtpServers) await s.stop();
    await cleanup();
});

// ---- Helpers ----

// A UUIDv7 string, as the events runtime gives every event.
function uuid7() {
    const b = crypto.randomBytes(16);
    const ms = BigInt(Date.now());
    for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const SOURCES = { user: '/agora/users', order: '/agora/orders', payment: '/agora/payments', shipment: '/agora/shipping' };
const now = () => new Date().toISOString();

// A CloudEvent 1.0 as the events runtime builds it: the producer's source,
// the aggregate id as subject.
function cloudEvent(type, subject, data, id = uuid7()) {
    return {
        specversion: '1.0',
        id,
        source: SOURCES[type.split('.')[0]] ?? '/agora/test',
        type,
        subject,
        time: now(),
        datacontenttype: 'application/json',
        data,
    };
}

// Publish CloudEvents to the bus; 'msgIds' overrides the bus message ids
// (the runtime uses the event id). Events are checked against their
// contract (contracts/events/) unless 'hostile' says they break it on
// purpose.
async function publish(bus, events, { msgIds = [], hostile = false } = {}) {
    if (!hostile) for (const e of events) assertValidEvent(e, 'a test event breaks its contract');
    const messages = events.map((e, i) => ({ id: msgIds[i] ?? e.id, topic: e.type, subject: e.subject, data: e }));
    const r = await client(bus, { identity: OPERATOR }).post('/v1/messages', { messages });
    assert.equal(r.status, 200, `publish: ${r.status} ${r.text}`);
    return r.json.results;
}

function userRegistered(userId, email, name) {
    return cloudEvent('user.registered', userId, { user_id: userId, email, name, registered_at: now() });
}

function line(amount, currency, quantity = 1) {
    return { product_id: uuid7(), sku: 'SKU-1', quantity, unit_price: { amount, currency } };
}

function orderCreated(orderId, userId, lines, total) {
    return cloudEvent('order.created', orderId, { order_id: orderId, user_id: userId, lines, total, created_at: now() });
}

function orderConfirmed(orderId, userId, total) {
    return cloudEvent('order.confirmed', orderId, {
        order_id: orderId,
        user_id: userId,
        total,
        payment_id: uuid7(),
        shipment_id: uuid7(),
        confirmed_at: now(),
    });
}

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// Start tests/smtpd.py on 'port' writing to 'dir'; resolves once it listens.
async function startSmtp(port, dir = makeTempDir('agora-mail-')) {
    const child = spawn(PYTHON, [path.join(HERE, 'smtpd.py'), '--port', String(port), '--dir', dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
    let gone = null;
    exited.then((s) => (gone = s));
    await waitFor(() => {
        if (gone) throw new Error(`smtpd exited ${JSON.stringify(gone)}: ${err}`);
        return out.includes('listening');
    }, { timeoutMs: 15_000, message: `smtpd listening on ${port}; stderr: ${err}` });
    const server = {
        port,
        dir,
        async stop() {
            smtpServers.delete(server);
            if (gone === null) child.kill('SIGTERM');
            await exited;
        },
    };
    smtpServers.add(server);
    return server;
}

// Every message the SMTP server accepted: { mail_from, rcpt_tos, data,
// headers (lower-case name -> [values], unfolded, RFC 2047 decoded), body
// (transfer decoding undone) }.
function mailbox(dir) {
    return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => parseMail(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))));
}

function decodeWords(s) {
    return s
        .replace(/(=\?[^?]+\?[bB]\?[^?]*\?=)\s+(?==\?)/g, '$1')
        .replace(/=\?utf-8\?b\?([^?]*)\?=/gi, (_, b64) => Buffer.from(b64, 'base64').toString('utf8'));
}

function decodeQP(s) {
    const bytes = [];
    const t = s.replace(/=\r\n/g, '');
    for (let i = 0; i < t.length; i++) {
        if (t[i] === '=' && /^[0-9A-F]{2}$/.test(t.slice(i + 1, i + 3))) {
            bytes.push(parseInt(t.slice(i + 1, i + 3), 16));
            i += 2;
        } else {
            bytes.push(...Buffer.from(t[i], 'utf8'));
        }
    }
    return Buffer.from(bytes).toString('utf8');
}

function parseMail(m) {
    const split = m.data.indexOf('\r\n\r\n');
    assert.ok(split > 0, `message has a header block ending in CRLF CRLF: ${JSON.stringify(m.data.slice(0, 300))}`);
    const rawHead = m.data.slice(0, split);
    const lines = rawHead.replace(/\r\n[ \t]/g, ' ').split('\r\n');
    const headers = {};
    for (const l of lines) {
        const i = l.indexOf(':');
        assert.ok(i > 0, `header line: ${JSON.stringify(l)}`);
        const name = l.slice(0, i).toLowerCase();
        (headers[name] ??= []).push(decodeWords(l.slice(i + 1).trim()));
    }
    let body = m.data.slice(split + 4);
    if ((headers['content-transfer-encoding']?.[0] ?? '').toLowerCase() === 'quoted-printable') body = decodeQP(body);
    return { ...m, rawHead, headers, body: body.replace(/\r\n/g, '\n') };
}

function mailTo(dir, address) {
    return mailbox(dir).filter((m) => m.rcpt_tos.includes(address));
}

function customer(svc, userId) {
    return client(svc, { identity: { userId, roles: ['customer'] } });
}

// The caller's notifications (all pages of up to 100).
async function listAll(api, query = '') {
    const items = [];
    let cursor = null;
    for (;;) {
        const q = [query, 'limit=100', cursor ? `cursor=${encodeURIComponent(cursor)}` : ''].filter(Boolean).join('&');
        const r = await api.get(`/v1/notifications?${q}`);
        assert.equal(r.status, 200, r.text);
        items.push(...r.json.items);
        if (r.json.next_cursor === null) return items;
        cursor = r.json.next_cursor;
    }
}

// Wait until 'api' lists a notification for event 'eventId' matching 'pred'.
function waitNotification(api, eventId, pred = () => true, message = `notification for ${eventId}`) {
    return waitFor(
        async () => {
            const items = await listAll(api);
            return items.find((n) => n.event_id === eventId && pred(n));
        },
        { timeoutMs: DELIVERY_MS, message },
    );
}

async function metrics(svc) {
    const r = await client(svc).get('/metrics');
    assert.equal(r.status, 200);
    return parseMetrics(r.text);
}

function waitReady(svc) {
    return waitFor(async () => (await client(svc).get('/ready')).json?.checks?.bus === 'ok', {
        timeoutMs: DELIVERY_MS,
        message: `${svc.name} ready (subscription on the bus)`,
    });
}

// No sanitizer report or other non-JSON line on stderr.
function assertCleanStderr(proc) {
    assert.deepEqual(proc.nonJsonLines(), [], `${proc.name} wrote non-JSON lines to stderr`);
}

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---- With a mail server ----

describe('notifications with a bus and an SMTP server', () => {
    let bus;
    let smtp;
    let svc;
    const ada = uuid7();
    const bob = uuid7();

    before(async () => {
        bus = await startService('bus');
        smtp = await startSmtp(await freePort());
        svc = await startService('notifications', {
            env: {
                AGORA_BUS_URL: bus.baseUrl,
                AGORA_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
                AGORA_SMTP_FROM: 'Agora Shop <shop@agora.test>',
            },
        });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assertCleanStderr(svc);
        }
        if (bus) await stop(bus);
    });

    let welcome; // Ada's welcome notification
    const adaEvent = userRegistered(ada, 'ada@example.com', 'Ada Lovelace');

    it('user.registered sends a welcome e-mail and records it as sent', T, async () => {
        await publish(bus, [adaEvent]);
        const [mail] = await waitFor(() => {
            const m = mailTo(smtp.dir, 'ada@example.com');
            return m.length > 0 && m;
        }, { timeoutMs: DELIVERY_MS, message: 'welcome e-mail to ada@example.com' });
        assert.deepEqual(mail.rcpt_tos, ['ada@example.com']);
        assert.equal(mail.mail_from, 'shop@agora.test');
        const h = mail.headers;
        assert.deepEqual(h.to, ['Ada Lovelace <ada@example.com>']);
        assert.deepEqual(h.from, ['Agora Shop <shop@agora.test>']);
        assert.deepEqual(h.subject, ['Welcome to Agora, Ada Lovelace']);
        assert.match(h['message-id'][0], /^<[0-9a-f-]{36}@agora\.test>$/);
        assert.match(h.date[0], /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000$/);
        assert.equal(Math.abs(Date.parse(h.date[0]) - Date.now()) < 120_000, true, h.date[0]);
        assert.deepEqual(h['mime-version'], ['1.0']);
        assert.deepEqual(h['content-type'], ['text/plain; charset=utf-8']);
        assert.deepEqual(h['x-agora-event'], ['user.registered']);
        assert.match(mail.body, /^Hello Ada Lovelace,\n\nwelcome to Agora! Your account ada@example.com is ready/);

        welcome = await waitNotification(customer(svc, ada), adaEvent.id, (n) => n.status === 'sent');
        assert.match(welcome.id, UUIDV7);
        assert.equal(welcome.type, 'user.registered');
        assert.equal(welcome.channel, 'email');
        assert.equal(welcome.recipient, 'a***@example.com');
        assert.equal(welcome.subject, 'Welcome to Agora, Ada Lovelace');
        assert.match(welcome.body, /^Hello Ada Lovelace,/);
        assert.equal(welcome.attempts, 1);
        assert.equal(welcome.user_id, ada);
        assert.ok(Date.parse(welcome.created_at) <= Date.parse(welcome.sent_at), JSON.stringify(welcome));
        assert.equal(h['message-id'][0], `<${welcome.id}@agora.test>`);
        assert.equal('last_error' in welcome, false, 'customers do not see delivery errors');

        const one = await customer(svc, ada).get(`/v1/notifications/${welcome.id}`);
        assert.equal(one.status, 200, one.text);
        assert.deepEqual(one.json, welcome);
    });

    it('another user cannot see it; an administrator can', T, async () => {
        assert.ok(welcome, 'needs the previous test');
        const other = customer(svc, bob);
        assert.deepEqual(await listAll(other), []);
        const r = await other.get(`/v1/notifications/${welcome.id}`);
        expectProblem(r, 404, { path: `/v1/notifications/${welcome.id}` });
        // A customer's user_id filter cannot widen the view.
        assert.deepEqual(await listAll(other, `user_id=${ada}`), []);

        const admin = client(svc);
        const all = await listAll(admin);
        const seen = all.find((n) => n.id === welcome.id);
        assert.ok(seen, 'the admin list has it');
        assert.equal(seen.last_error, null);
        assert.deepEqual((await listAll(admin, `user_id=${ada}`)).map((n) => n.id), [welcome.id]);
        assert.deepEqual(await listAll(admin, `user_id=${bob}`), []);
        assert.ok((await listAll(admin, 'status=sent')).some((n) => n.id === welcome.id));
        assert.equal((await listAll(admin, 'status=pending')).some((n) => n.id === welcome.id), false);
        const one = await admin.get(`/v1/notifications/${welcome.id}`);
        assert.equal(one.status, 200);
        assert.equal(one.json.user_id, ada);

        // Anonymous callers are refused; unknown ids are 404.
        expectProblem(await client(svc, { identity: null }).get('/v1/notifications'), 401);
        expectProblem(await admin.get(`/v1/notifications/${uuid7()}`), 404);
        expectProblem(await admin.get('/v1/notifications/not-a-uuid'), 404);
    });

    it('the same event delivered twice makes one notification and one e-mail', T, async () => {
        const carol = uuid7();
        const ev = userRegistered(carol, 'carol@example.com', 'Carol');
        const before = metricValue(await metrics(svc), 'events_duplicates_total');
        // Two bus messages (different ids, so the bus keeps both) carrying
        // the same CloudEvent: the inbox must absorb the second.
        await publish(bus, [ev], { msgIds: [`dup-a-${ev.id}`] });
        await publish(bus, [ev], { msgIds: [`dup-b-${ev.id}`] });
        await waitFor(async () => metricValue(await metrics(svc), 'events_duplicates_total') > before, {
            timeoutMs: DELIVERY_MS,
            message: 'the second delivery counted as a duplicate',
        });
        const n = await waitNotification(customer(svc, carol), ev.id, (x) => x.status === 'sent');
        assert.equal((await listAll(customer(svc, carol))).length, 1);
        assert.equal(mailTo(smtp.dir, 'carol@example.com').length, 1);
        assert.equal(n.attempts, 1);
    });

    it('order.created for a known user formats the money; payment and shipment events find the user by order', T, async () => {
        const dan = uuid7();
        const order = uuid7();
        await publish(bus, [userRegistered(dan, 'dan@example.com', 'Dan')]);
        await waitFor(async () => (await listAll(customer(svc, dan))).length === 1, { timeoutMs: DELIVERY_MS, message: 'welcome of Dan' });
        const created = orderCreated(order, dan, [line(61228, 'EUR', 2), line(1000, 'EUR')], { amount: 123456, currency: 'EUR' });
        const payment = uuid7();
        const refunded = cloudEvent('payment.refunded', payment, {
            payment_id: payment,
            order_id: order,
            refund_id: uuid7(),
            amount: { amount: 500, currency: 'JPY' },
            refunded_at: now(),
        });
        const shipment = uuid7();
        const shipped = cloudEvent('shipment.shipped', shipment, {
            shipment_id: shipment,
            order_id: order,
            carrier: 'Agora Post',
            tracking_number: 'AP123',
            shipped_at: now(),
        });
        // An event type without a template is consumed and ignored.
        const captured = cloudEvent('payment.captured', payment, {
            payment_id: payment,
            order_id: order,
            amount: { amount: 500, currency: 'JPY' },
            captured_at: now(),
        });
        await publish(bus, [created]);
        const n = await waitNotification(customer(svc, dan), created.id, (x) => x.status === 'sent');
        assert.equal(n.subject, `We received your order ${order}`);
        assert.match(n.body, /^Hello Dan,\n/);
        assert.match(n.body, new RegExp(`your order ${order}: 2 line\\(s\\), 1234\\.56 EUR in total\\.`));
        const mails = mailTo(smtp.dir, 'dan@example.com');
        const mail = mails.find((m) => m.headers['x-agora-event'][0] === 'order.created');
        assert.ok(mail, 'order e-mail sent');
        assert.match(mail.body, /1234\.56 EUR in total/);

        await publish(bus, [captured, refunded, shipped]);
        const r = await waitNotification(customer(svc, dan), refunded.id, (x) => x.status === 'sent');
        assert.match(r.body, new RegExp(`we refunded 500 JPY for your order ${order}\\.`));
        const s = await waitNotification(customer(svc, dan), shipped.id, (x) => x.status === 'sent');
        assert.match(s.body, /has shipped with Agora Post; tracking number AP123\./);
        const cancelled = cloudEvent('order.cancelled', order, {
            order_id: order,
            user_id: dan,
            reason: 'customer_request',
            refunded: { amount: 123456, currency: 'EUR' },
            cancelled_at: now(),
        });
        await publish(bus, [cancelled]);
        const c = await waitNotification(customer(svc, dan), cancelled.id, (x) => x.status === 'sent');
        assert.equal(c.subject, `Your order ${order} was cancelled`);
        assert.match(c.body, new RegExp(`your order ${order} was cancelled: customer request\\.`));
        const mine = await listAll(customer(svc, dan));
        assert.equal(mine.some((x) => x.event_id === captured.id), false, 'no template, no notification');
        assert.deepEqual(mine.map((x) => x.type).sort(), ['order.cancelled', 'order.created', 'payment.refunded', 'shipment.shipped', 'user.registered']);
        assert.equal(mine.at(-1).type, 'user.registered', 'newest first');
    });

    it('the commerce messages: confirmation, payment failure, cancellation with its reason, delivery', T, async () => {
        const eve = uuid7();
        const order = uuid7();
        await publish(bus, [userRegistered(eve, 'eve@example.com', 'Eve')]);
        await waitFor(async () => (await listAll(customer(svc, eve))).length === 1, { timeoutMs: DELIVERY_MS, message: 'welcome of Eve' });
        await publish(bus, [orderCreated(order, eve, [line(2599, 'EUR', 1)], { amount: 2599, currency: 'EUR' })]);
        const confirmed = cloudEvent('order.confirmed', order, { order_id: order, user_id: eve, total: { amount: 2599, currency: 'EUR' }, payment_id: uuid7(), shipment_id: uuid7(), confirmed_at: now() });
        const failed = cloudEvent('payment.failed', order, { payment_id: null, order_id: order, amount: { amount: 2599, currency: 'EUR' }, reason: 'insufficient_funds', failed_at: now() });
        const cancelled = cloudEvent('order.cancelled', order, { order_id: order, user_id: eve, reason: 'payment_declined', refunded: null, cancelled_at: now() });
        const shipment = uuid7();
        const delivered = cloudEvent('shipment.delivered', shipment, { shipment_id: shipment, order_id: order, delivered_at: now() });
        for (const e of [confirmed, failed, cancelled, delivered]) assertValidEvent(e);
        await publish(bus, [confirmed, failed, cancelled, delivered]);
        const c = await waitNotification(customer(svc, eve), confirmed.id, (x) => x.status === 'sent');
        assert.equal(c.subject, `Your order ${order} is confirmed`);
        assert.match(c.body, /your payment of 25\.99 EUR was taken/);
        const f = await waitNotification(customer(svc, eve), failed.id, (x) => x.status === 'sent');
        assert.equal(f.subject, `Your payment for order ${order} did not go through`);
        assert.match(f.body, new RegExp(`we could not take 25\\.99 EUR for your order ${order}: insufficient funds\\.`));
        const x = await waitNotification(customer(svc, eve), cancelled.id, (n) => n.status === 'sent');
        assert.match(x.body, /was cancelled: payment declined\./);
        const d = await waitNotification(customer(svc, eve), delivered.id, (n) => n.status === 'sent');
        assert.equal(d.subject, `Your order ${order} was delivered`);
        const mails = mailTo(smtp.dir, 'eve@example.com').map((m) => m.headers['x-agora-event'][0]).sort();
        assert.deepEqual(mails, ['order.cancelled', 'order.confirmed', 'order.created', 'payment.failed', 'shipment.delivered', 'user.registered']);
    });

    it('a hostile name or address cannot inject headers or recipients', T, async () => {
        const mallory = uuid7();
        const name = 'Mallory\r\nBcc: victim@example.com\r\nX-Evil: 1\nSubject: pwned';
        await publish(bus, [userRegistered(mallory, 'mallory@example.com', name)], { hostile: true });
        const [mail] = await waitFor(() => {
            const m = mailTo(smtp.dir, 'mallory@example.com');
            return m.length > 0 && m;
        }, { timeoutMs: DELIVERY_MS, message: 'e-mail to mallory' });
        assert.deepEqual(mail.rcpt_tos, ['mallory@example.com']);
        const names = mail.rawHead.replace(/\r\n[ \t]/g, ' ').split('\r\n').map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
        assert.equal(names.includes('bcc'), false, mail.rawHead);
        assert.equal(names.includes('x-evil'), false, mail.rawHead);
        assert.equal(names.filter((x) => x === 'subject').length, 1, mail.rawHead);
        assert.equal(mail.headers.subject[0], 'Welcome to Agora, Mallory  Bcc: victim@example.com  X-Evil: 1 Subject: pwned');
        assert.equal(mailbox(smtp.dir).some((m) => m.rcpt_tos.includes('victim@example.com')), false);
        // The body keeps the text, on one line.
        assert.match(mail.body, /^Hello Mallory {2}Bcc: victim@example\.com {2}X-Evil: 1 Subject: pwned,\n/);

        // An address that would smuggle an SMTP command is never used.
        const eve = uuid7();
        const ev = userRegistered(eve, 'eve@example.com>\r\nRCPT TO:<victim@example.com', 'Eve');
        await publish(bus, [ev], { hostile: true });
        const n = await waitNotification(customer(svc, eve), ev.id);
        assert.equal(n.status, 'failed');
        assert.equal(n.channel, 'email');
        const adminView = await client(svc).get(`/v1/notifications/${n.id}`);
        assert.equal(adminView.json.last_error, 'invalid recipient address');
        assert.equal(mailbox(smtp.dir).some((m) => m.rcpt_tos.some((r) => r.includes('victim'))), false);
    });

    it('non-ASCII subjects and bodies are encoded (RFC 2047, quoted-printable)', T, async () => {
        const zoe = uuid7();
        const ev = userRegistered(zoe, 'zoe@example.com', 'Zoë Ångström 日本');
        await publish(bus, [ev]);
        const [mail] = await waitFor(() => {
            const m = mailTo(smtp.dir, 'zoe@example.com');
            return m.length > 0 && m;
        }, { timeoutMs: DELIVERY_MS, message: 'e-mail to zoe' });
        assert.match(mail.rawHead, /^Subject: =\?UTF-8\?B\?/m);
        assert.match(mail.rawHead, /^To: =\?UTF-8\?B\?/m);
        assert.equal(/[^\x00-\x7f]/.test(mail.rawHead), false, 'headers are ASCII');
        assert.deepEqual(mail.headers.subject, ['Welcome to Agora, Zoë Ångström 日本']);
        assert.deepEqual(mail.headers.to, ['Zoë Ångström 日本 <zoe@example.com>']);
        assert.deepEqual(mail.headers['content-transfer-encoding'], ['quoted-printable']);
        assert.match(mail.body, /^Hello Zoë Ångström 日本,\n/);
        for (const line of mail.data.split('\r\n')) assert.ok(line.length <= 998, 'RFC 5322 line length');
    });

    it('templates: listed and changed by administrators only, validated, used for the next event', T, async () => {
        const admin = client(svc);
        const list = await admin.get('/v1/templates');
        assert.equal(list.status, 200, list.text);
        assert.deepEqual(list.json.items.map((t) => t.type), [
            'order.cancelled',
            'order.confirmed',
            'order.created',
            'payment.failed',
            'payment.refunded',
            'shipment.delivered',
            'shipment.shipped',
            'user.registered',
        ]);
        expectProblem(await customer(svc, ada).get('/v1/templates'), 403);
        expectProblem(await customer(svc, ada).put('/v1/templates/order.confirmed', { subject: 'x', body: 'y' }), 403);

        const bad = await admin.put('/v1/templates/order.confirmed', { subject: 'Order {{order_id', body: '{{shout name}} {{a..b}}', extra: 1 });
        const p = expectProblem(bad, 422);
        assert.deepEqual(errorFields(p).sort(), ['body', 'body', 'extra', 'subject']);
        expectProblem(await admin.put('/v1/templates/catalog.updated', { subject: 's', body: 'b' }), 422);

        const put = await admin.put('/v1/templates/order.confirmed', {
            subject: 'Confirmed: {{order_id}} ({{money total}})',
            body: 'Dear {{recipient.name}}, {{order_id}} is confirmed. {{unknown.path}}[{{event.type}}]',
        });
        assert.equal(put.status, 200, put.text);
        assert.equal(put.json.enabled, true);
        const got = await admin.get('/v1/templates/order.confirmed');
        assert.equal(got.json.subject, 'Confirmed: {{order_id}} ({{money total}})');
        expectProblem(await admin.get('/v1/templates/nothing.here'), 404);

        const order = uuid7();
        const ev = orderConfirmed(order, ada, { amount: 5, currency: 'BHD' });
        await publish(bus, [ev]);
        const n = await waitNotification(customer(svc, ada), ev.id, (x) => x.status === 'sent');
        assert.equal(n.subject, `Confirmed: ${order} (0.005 BHD)`);
        assert.equal(n.body, `Dear Ada Lovelace, ${order} is confirmed. [order.confirmed]`);

        // A new template for a consumed type starts notifying; disabled stops.
        const created = await admin.put('/v1/templates/order.completed', { subject: 'Done {{order_id}}', body: 'Done.', enabled: false });
        assert.equal(created.status, 201, created.text);
        const done = cloudEvent('order.completed', order, { order_id: order, user_id: ada, completed_at: now() });
        const marker = orderConfirmed(order, ada, { amount: 1, currency: 'EUR' });
        await publish(bus, [done, marker]);
        await waitNotification(customer(svc, ada), marker.id);
        assert.equal((await listAll(customer(svc, ada))).some((x) => x.event_id === done.id), false);
    });

    it('pages newest first with a cursor and rejects bad queries', T, async () => {
        const api = customer(svc, ada);
        const all = await listAll(api);
        assert.ok(all.length >= 3, `Ada has ${all.length} notifications`);
        const seen = [];
        let cursor = null;
        do {
            const r = await api.get(`/v1/notifications?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
            assert.equal(r.status, 200);
            assert.equal(r.json.items.length, 1);
            seen.push(r.json.items[0].id);
            cursor = r.json.next_cursor;
        } while (cursor !== null);
        assert.deepEqual(seen, all.map((n) => n.id));
        const created = all.map((n) => n.created_at);
        assert.deepEqual(created, [...created].sort().reverse());
        for (const q of ['limit=0', 'limit=101', 'limit=x', 'status=lost', 'cursor=zzz', 'type=a%20b']) {
            expectProblem(await api.get(`/v1/notifications?${q}`), 400);
        }
    });

    it('serves metrics: deliveries, pending, send durations and the events runtime', T, async () => {
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'notify_deliveries_total', { status: 'sent' }) >= 8);
        assert.ok(metricValue(m, 'notify_deliveries_total', { status: 'failed' }) >= 1);
        assert.equal(metricValue(m, 'notify_pending'), 0);
        assert.ok(metricValue(m, 'notify_send_duration_seconds_count') >= 8);
        assert.ok(metricValue(m, 'notify_events_total', { outcome: 'ignored' }) >= 1);
        assert.ok(metricValue(m, 'events_consumed_total', { subscription: 'notifications' }) >= 10);
        const ready = await client(svc).get('/ready');
        assert.equal(ready.status, 200);
        assert.equal(ready.json.checks.bus, 'ok');
    });
});

// ---- Mail server down, then up ----

describe('notifications while the SMTP server is down', () => {
    let bus;
    let svc;
    let port;

    before(async () => {
        bus = await startService('bus');
        port = await freePort();
        svc = await startService('notifications', {
            env: {
                AGORA_BUS_URL: bus.baseUrl,
                AGORA_SMTP_URL: `smtp://127.0.0.1:${port}`,
                AGORA_SMTP_TIMEOUT: '2s',
                AGORA_NOTIFY_RETRY_BASE: '50ms',
                AGORA_NOTIFY_RETRY_MAX: '400ms',
                AGORA_NOTIFY_MAX_ATTEMPTS: '1000',
            },
        });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assertCleanStderr(svc);
        }
        if (bus) await stop(bus);
    });

    it('keeps notifications pending with attempts, processes other events, and delivers once the server is up', T, async () => {
        const u1 = uuid7();
        const u2 = uuid7();
        const e1 = userRegistered(u1, 'first@example.com', 'First');
        await publish(bus, [e1]);
        const admin = client(svc);
        const n1 = await waitNotification(customer(svc, u1), e1.id, (n) => n.status === 'pending' && n.attempts >= 2, 'retried while down');
        const detail = await admin.get(`/v1/notifications/${n1.id}`);
        assert.match(detail.json.last_error, /^smtp: /);
        assert.ok(detail.json.next_attempt_at, 'a next attempt is scheduled');

        // Other events are not held up by the failing delivery.
        const e2 = userRegistered(u2, 'second@example.com', 'Second');
        await publish(bus, [e2]);
        await waitNotification(customer(svc, u2), e2.id, (n) => n.status === 'pending');
        assert.ok(metricValue(await metrics(svc), 'notify_pending') >= 2);

        const smtp = await startSmtp(port);
        await waitNotification(customer(svc, u1), e1.id, (n) => n.status === 'sent');
        const sent2 = await waitNotification(customer(svc, u2), e2.id, (n) => n.status === 'sent');
        assert.ok(sent2.attempts >= 1);
        assert.equal(mailTo(smtp.dir, 'first@example.com').length, 1);
        assert.equal(mailTo(smtp.dir, 'second@example.com').length, 1);
        const m = await metrics(svc);
        assert.ok(metricValue(m, 'notify_deliveries_total', { status: 'retried' }) >= 2);
        assert.equal(metricValue(m, 'notify_deliveries_total', { status: 'sent' }), 2);
        assert.equal(metricValue(m, 'notify_pending'), 0);
        await smtp.stop();
    });
});

// ---- A mail server that never answers ----

describe('stopping while a send hangs', () => {
    it('stops at once, without counting the attempt, and sends after a restart', T, async () => {
        const bus = await startService('bus');
        const sockets = [];
        const tarpit = net.createServer((sock) => sockets.push(sock)); // accepts, never speaks
        await new Promise((r) => tarpit.listen(0, '127.0.0.1', r));
        try {
            const env = {
                AGORA_BUS_URL: bus.baseUrl,
                AGORA_SMTP_URL: `smtp://127.0.0.1:${tarpit.address().port}`,
                AGORA_SMTP_TIMEOUT: '60s',
                AGORA_SMTP_USER: 'agora',
                AGORA_SMTP_PASSWORD: 'hunter2-not-for-logs',
            };
            const svc = await startService('notifications', { env });
            await waitReady(svc);
            const u = uuid7();
            const ev = userRegistered(u, 'slow@example.com', 'Slow');
            await publish(bus, [ev]);
            await waitFor(() => sockets.length > 0, { timeoutMs: DELIVERY_MS, message: 'a send in flight' });
            const pending = await waitNotification(customer(svc, u), ev.id);
            assert.equal(pending.status, 'pending');
            const t0 = Date.now();
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms`);
            assertCleanStderr(svc);
            assert.equal(svc.stderr().includes('hunter2'), false, 'the password is never logged');

            // Same database, a working server: the row was released, not failed.
            const smtp = await startSmtp(await freePort());
            const again = await startService('notifications', {
                dataDir: svc.dataDir,
                env: { ...env, AGORA_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, AGORA_SMTP_USER: '', AGORA_SMTP_PASSWORD: '' },
            });
            const sent = await waitNotification(customer(again, u), ev.id, (n) => n.status === 'sent');
            assert.equal(sent.attempts, 1, 'the cancelled send was not an attempt');
            assert.equal(mailTo(smtp.dir, 'slow@example.com').length, 1);
            assert.deepEqual(await stop(again), { code: 0, signal: null });
            assertCleanStderr(again);
            await smtp.stop();
        } finally {
            for (const sock of sockets) sock.destroy();
            tarpit.close();
            await stop(bus);
        }
    });
});

// ---- Without a mail server ----

describe('notifications without SMTP', () => {
    let bus;
    let svc;

    before(async () => {
        bus = await startService('bus');
        svc = await startService('notifications', { env: { AGORA_BUS_URL: bus.baseUrl } });
        await waitReady(svc);
    });

    after(async () => {
        if (svc) {
            assert.deepEqual(await stop(svc), { code: 0, signal: null });
            assertCleanStderr(svc);
        }
        if (bus) await stop(bus);
    });

    it('records each notification, visible to its user, with channel none', T, async () => {
        const u = uuid7();
        const ev = userRegistered(u, 'rec@example.com', 'Rec');
        await publish(bus, [ev]);
        const n = await waitNotification(customer(svc, u), ev.id);
        assert.equal(n.status, 'recorded');
        assert.equal(n.channel, 'none');
        assert.equal(n.attempts, 0);
        assert.equal(n.sent_at, null);
        assert.equal(n.recipient, 'r***@example.com');
        assert.equal(n.subject, 'Welcome to Agora, Rec');
        // An order event for a user never seen: recorded for that user id.
        const stranger = uuid7();
        const order = uuid7();
        const oc = orderCreated(order, stranger, [line(0, 'USD')], { amount: 0, currency: 'USD' });
        // And a shipment of an unknown order: nobody to address.
        const shipment = uuid7();
        const lost = cloudEvent('shipment.delivered', shipment, { shipment_id: shipment, order_id: uuid7(), delivered_at: now() });
        await publish(bus, [lost, oc]);
        const o = await waitNotification(customer(svc, stranger), oc.id);
        assert.equal(o.recipient, '');
        assert.match(o.body, /^Hello ,\n\nthank you for your order .*: 1 line\(s\), 0\.00 USD in total\./);
        await waitFor(async () => metricValue(await metrics(svc), 'notify_events_total', { outcome: 'unaddressable' }) === 1, {
            timeoutMs: DELIVERY_MS,
            message: 'the shipment of an unknown order counted as unaddressable',
        });
        assert.equal(metricValue(await metrics(svc), 'notify_deliveries_total', { status: 'recorded' }), 2);
    });
});

// ---- Configuration ----

describe('configuration', () => {
    it('--help lists the settings; bad values stop start-up naming the variable', T, async () => {
        const help = spawnService('notifications', { args: ['--help'] });
        await waitExit(help);
        const text = help.stdout + help.stderr();
        for (const key of ['AGORA_SMTP_URL', 'AGORA_SMTP_FROM', 'AGORA_SMTP_TIMEOUT', 'AGORA_NOTIFY_MAX_ATTEMPTS', 'AGORA_BUS_URL']) {
            assert.ok(text.includes(key), `--help lists ${key}`);
        }

        const bad = spawnService('notifications', { env: { AGORA_SMTP_CONCURRENCY: '0' } });
        assert.equal((await waitExit(bad)).code, 2);
        assert.match(bad.stderr(), /config: AGORA_SMTP_CONCURRENCY/);

        const from = spawnService('notifications', {
            env: { AGORA_SMTP_URL: 'smtp://127.0.0.1:1', AGORA_SMTP_FROM: 'Agora <not an address>', AGORA_BUS_URL: 'http://127.0.0.1:1' },
        });
        assert.equal((await waitExit(from)).code, 1);
        assert.ok(from.logs((o) => o.level === 'error' && /AGORA_SMTP_FROM/.test(o.msg)).length === 1, from.stderr());
        assertCleanStderr(from);

        const url = spawnService('notifications', {
            env: { AGORA_SMTP_URL: 'http://user:secret@127.0.0.1:1', AGORA_BUS_URL: 'http://127.0.0.1:1' },
        });
        assert.equal((await waitExit(url)).code, 1);
        assert.match(url.stderr(), /AGORA_SMTP_URL: must start with smtp:\/\/ or smtps:\/\//);
        assert.equal(url.stderr().includes('secret'), false, 'the URL (and its credentials) is never logged');
        assertCleanStderr(url);
    });
});
