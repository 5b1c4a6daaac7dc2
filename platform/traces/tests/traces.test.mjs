// SPDX-License-Identifier: MIT
// The built-in trace collector (platform/traces) and the chassis exporter:
//  - what a service exports is an OTLP/HTTP JSON ExportTraceServiceRequest:
//    captured by a stand-in collector here and checked against the field
//    names and types of opentelemetry-proto (trace/v1, common/v1);
//  - the collector stores spans, answers the list and trace queries, rejects
//    bad spans with partialSuccess, refuses protobuf with 415, keeps
//    duplicates once, and stays within AGORA_TRACES_MAX_TRACES by evicting
//    the oldest traces, error and slow ones last (the tail rule);
//  - an exporter whose collector is down drops and counts spans, never
//    holds a request and never grows past its queue.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { requireTool } from '../../../tests/lib/openapi.mjs';

import { cleanup, startService, waitFor } from '../../../tests/lib/proc.mjs';
import { metricValue, parseMetrics } from '../../../tests/lib/http.mjs';
import { identityHeader, TEST_ADMIN_ID } from '../../../tests/lib/identity.mjs';

const T = { timeout: 60_000 };
const ADMIN = { 'x-agora-identity': identityHeader({ userId: TEST_ADMIN_ID, roles: ['admin'] }) };
const hex = (n) => crypto.randomBytes(n).toString('hex');

// opentelemetry-proto (v1.x) trace.proto / common.proto / resource.proto in
// the protobuf JSON mapping: lowerCamelCase field names, 64-bit integers as
// decimal strings, trace and span ids as hex (OTLP/HTTP JSON), enums as
// numbers. additionalProperties false: a misspelled field fails.
const ANY_VALUE = {
    type: 'object',
    additionalProperties: false,
    properties: {
        stringValue: { type: 'string' },
        boolValue: { type: 'boolean' },
        intValue: { type: 'string', pattern: '^-?[0-9]+$' },
        doubleValue: { type: 'number' },
    },
    minProperties: 1,
    maxProperties: 1,
};
const KEY_VALUES = {
    type: 'array',
    items: { type: 'object', additionalProperties: false, required: ['key', 'value'], properties: { key: { type: 'string', minLength: 1 }, value: ANY_VALUE } },
};
const NANOS = { type: 'string', pattern: '^[1-9][0-9]{18}$' };
const OTLP_REQUEST = {
    type: 'object',
    additionalProperties: false,
    required: ['resourceSpans'],
    properties: {
        resourceSpans: {
            type: 'array',
            minItems: 1,
            items: {
                type: 'object',
                additionalProperties: false,
                required: ['resource', 'scopeSpans'],
                properties: {
                    resource: { type: 'object', additionalProperties: false, properties: { attributes: KEY_VALUES, droppedAttributesCount: { type: 'integer' } } },
                    schemaUrl: { type: 'string' },
                    scopeSpans: {
                        type: 'array',
                        items: {
                            type: 'object',
                            additionalProperties: false,
                            required: ['scope', 'spans'],
                            properties: {
                                scope: { type: 'object', additionalProperties: false, properties: { name: { type: 'string' }, version: { type: 'string' }, attributes: KEY_VALUES } },
                                schemaUrl: { type: 'string' },
                                spans: {
                                    type: 'array',
                                    minItems: 1,
                                    items: {
                                        type: 'object',
                                        additionalProperties: false,
                                        required: ['traceId', 'spanId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano'],
                                        properties: {
                                            traceId: { type: 'string', pattern: '^[0-9a-f]{32}$' },
                                            spanId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
                                            traceState: { type: 'string' },
                                            parentSpanId: { type: 'string', pattern: '^([0-9a-f]{16})?$' },
                                            flags: { type: 'integer' },
                                            name: { type: 'string', minLength: 1 },
                                            kind: { type: 'integer', minimum: 0, maximum: 5 },
                                            startTimeUnixNano: NANOS,
                                            endTimeUnixNano: NANOS,
                                            attributes: KEY_VALUES,
                                            droppedAttributesCount: { type: 'integer' },
                                            events: {
                                                type: 'array',
                                                items: { type: 'object', additionalProperties: false, required: ['timeUnixNano', 'name'], properties: { timeUnixNano: NANOS, name: { type: 'string' }, attributes: KEY_VALUES, droppedAttributesCount: { type: 'integer' } } },
                                            },
                                            droppedEventsCount: { type: 'integer' },
                                            links: { type: 'array' },
                                            droppedLinksCount: { type: 'integer' },
                                            status: { type: 'object', additionalProperties: false, properties: { message: { type: 'string' }, code: { type: 'integer', minimum: 0, maximum: 2 } } },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
};

// A span for the collector, OTLP JSON.
function span({ traceId = hex(16), spanId = hex(8), parent = '', name = 'op', start = Date.now() * 1e6, ms = 1, code = 0 } = {}) {
    return {
        traceId,
        spanId,
        parentSpanId: parent,
        name,
        kind: 2,
        startTimeUnixNano: String(BigInt(Math.round(start))),
        endTimeUnixNano: String(BigInt(Math.round(start)) + BigInt(Math.round(ms * 1e6))),
        attributes: [{ key: 'http.route', value: { stringValue: '/x' } }, { key: 'n', value: { intValue: '7' } }],
        status: { code },
    };
}
const request = (service, spans) => ({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] }, scopeSpans: [{ scope: { name: 't' }, spans }] }] });

describe('traces: the collector', () => {
    let col;
    const post = (body, headers = {}) => fetch(`${col.baseUrl}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const get = (p, headers = ADMIN) => fetch(col.baseUrl + p, { headers });

    after(async () => {
        await cleanup();
    });

    it('stores spans, answers the list and trace queries, and keeps a duplicate once', T, async () => {
        col = await startService('traces', { env: { AGORA_TRACES_MAX_TRACES: '10', AGORA_TRACES_SLOW: '500ms' } });
        const traceId = hex(16);
        const root = span({ traceId, name: 'GET /a', ms: 5 });
        const child = span({ traceId, parent: root.spanId, name: 'GET b', start: Date.now() * 1e6 + 1e6, ms: 2, code: 2 });
        let r = await post(request('gw', [root]));
        assert.equal(r.status, 200);
        assert.deepEqual(await r.json(), {});
        r = await post(request('svc', [child, child]));
        assert.equal(r.status, 200);
        r = await get(`/v1/traces/${traceId}`);
        assert.equal(r.status, 200);
        const t = await r.json();
        assert.equal(t.spans.length, 2);
        assert.deepEqual(t.spans.map((s) => [s.service, s.name, s.parent_span_id]), [['gw', 'GET /a', ''], ['svc', 'GET b', root.spanId]]);
        assert.deepEqual(t.spans[0].attributes, { 'http.route': '/x', n: 7 });
        assert.equal(t.spans[1].status.code, 2);
        const list = await (await get('/v1/traces?service=svc')).json();
        assert.equal(list.items.length, 1);
        assert.deepEqual([list.items[0].trace_id, list.items[0].spans, list.items[0].error, list.items[0].root.service], [traceId, 2, true, 'gw']);
        assert.equal((await (await get('/v1/traces?service=nobody')).json()).items.length, 0);
        assert.equal((await (await get('/v1/traces?min_duration=1000')).json()).items.length, 0);
        assert.equal((await get(`/v1/traces/${hex(16)}`)).status, 404);
        assert.equal((await get('/v1/traces/not-hex')).status, 404);
        assert.equal((await get('/v1/traces?limit=0')).status, 400);
        assert.equal((await get(`/v1/traces/${traceId}`, {})).status, 401, 'reads need an administrator');
        const m = parseMetrics(await (await fetch(`${col.baseUrl}/metrics`)).text());
        assert.equal(metricValue(m, 'traces_spans_received_total', { outcome: 'duplicate' }), 1);

        // The root is the span without a parent, even when a child's start
        // (stored to the millisecond) is earlier, in one request or across two.
        for (const split of [false, true]) {
            const tid = hex(16);
            const now = Date.now() * 1e6;
            const top = span({ traceId: tid, name: 'GET /top', start: now + 400e3, ms: 5 });
            const early = { ...span({ traceId: tid, parent: top.spanId, name: 'saga.step reserve', start: now, ms: 1 }), kind: 1 };
            if (split) {
                assert.equal((await post(request('orders', [early]))).status, 200);
                assert.equal((await post(request('gw', [top]))).status, 200);
            } else {
                assert.equal((await post({ resourceSpans: [...request('orders', [early]).resourceSpans, ...request('gw', [top]).resourceSpans] })).status, 200);
            }
            const items = (await (await get('/v1/traces?service=orders&limit=50')).json()).items;
            const it1 = items.find((x) => x.trace_id === tid);
            assert.deepEqual(it1 && [it1.root.service, it1.root.name], ['gw', 'GET /top'], `split ${split}: ${JSON.stringify(it1)}`);
        }
        // No span without a parent (the client sent its own traceparent):
        // the server span, not an earlier internal one.
        const tid = hex(16);
        const now = Date.now() * 1e6;
        const gwSpan = span({ traceId: tid, parent: hex(8), name: 'POST /api/v1/orders', start: now + 400e3, ms: 5 });
        const step = { ...span({ traceId: tid, parent: gwSpan.spanId, name: 'saga.step reserve', start: now, ms: 1 }), kind: 1 };
        assert.equal((await post(request('orders', [step]))).status, 200);
        assert.equal((await post(request('gw', [gwSpan]))).status, 200);
        const it2 = (await (await get('/v1/traces?service=orders&limit=50')).json()).items.find((x) => x.trace_id === tid);
        assert.deepEqual(it2 && [it2.root.service, it2.root.name], ['gw', 'POST /api/v1/orders'], JSON.stringify(it2));
    });

    it('rejects bad spans with partialSuccess, malformed bodies with 400 and protobuf with 415', T, async () => {
        const good = span();
        const r = await post(request('svc', [good, { ...span(), traceId: 'xyz' }, { ...span(), spanId: '0000000000000000' }, { ...span(), endTimeUnixNano: '1' }]));
        assert.equal(r.status, 200);
        assert.equal((await r.json()).partialSuccess.rejectedSpans, 3);
        assert.equal((await get(`/v1/traces/${good.traceId}`)).status, 200);
        assert.equal((await post('{"resourceSpans": 3}')).status, 400);
        assert.equal((await post('{not json')).status, 400);
        assert.equal((await post('\x0a\x00', { 'content-type': 'application/x-protobuf' })).status, 415);
    });

    it('stays within AGORA_TRACES_MAX_TRACES, keeping error and slow traces longest', T, async () => {
        // 10 traces at most: one slow, one failed, then 20 ordinary ones.
        const slow = span({ ms: 800 });
        const failed = span({ code: 2 });
        await post(request('svc', [slow, failed]));
        for (let i = 0; i < 20; i++) assert.equal((await post(request('svc', [span()]))).status, 200);
        const list = await (await get('/v1/traces?limit=100')).json();
        assert.equal(list.items.length, 10);
        const ids = list.items.map((x) => x.trace_id);
        assert.ok(ids.includes(slow.traceId), 'the slow trace is kept');
        assert.ok(ids.includes(failed.traceId), 'the failed trace is kept');
        const m = parseMetrics(await (await fetch(`${col.baseUrl}/metrics`)).text());
        assert.ok(metricValue(m, 'traces_evicted_total') >= 12);
    });
});

describe('traces: the exporter of a service', () => {
    after(async () => {
        await cleanup();
    });

    it('sends an OTLP/HTTP JSON ExportTraceServiceRequest with the proto field names', T, async () => {
        const bodies = [];
        const sink = http.createServer((req, res) => {
            let b = '';
            req.on('data', (c) => (b += c));
            req.on('end', () => {
                bodies.push({ path: req.url, type: req.headers['content-type'], body: b });
                res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
            });
        });
        await new Promise((r) => sink.listen(0, '127.0.0.1', r));
        try {
            const cat = await startService('catalog', { env: { AGORA_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}` } });
            const traceId = hex(16);
            const parent = hex(8);
            const r = await fetch(`${cat.baseUrl}/v1/products?limit=1`, { headers: { traceparent: `00-${traceId}-${parent}-01` } });
            assert.equal(r.status, 200);
            await waitFor(() => bodies.some((b) => b.body.includes(traceId)), { timeoutMs: 10_000, message: 'the export' });
            const Ajv = requireTool('ajv').default;
            const validate = new Ajv({ allErrors: true, strict: false }).compile(OTLP_REQUEST);
            for (const b of bodies) {
                assert.equal(b.path, '/v1/traces');
                assert.equal(b.type, 'application/json');
                const doc = JSON.parse(b.body);
                assert.ok(validate(doc), JSON.stringify(validate.errors));
            }
            const doc = JSON.parse(bodies.find((b) => b.body.includes(traceId)).body);
            const attrs = Object.fromEntries(doc.resourceSpans[0].resource.attributes.map((a) => [a.key, a.value.stringValue]));
            assert.equal(attrs['service.name'], 'catalog');
            const s = doc.resourceSpans[0].scopeSpans[0].spans.find((x) => x.traceId === traceId);
            assert.equal(s.parentSpanId, parent);
            assert.equal(s.kind, 2);
            assert.equal(s.name, 'GET /v1/products');
            const a = Object.fromEntries(s.attributes.map((x) => [x.key, x.value]));
            assert.deepEqual(a['http.response.status_code'], { intValue: '200' });
            assert.deepEqual(a['http.request.method'], { stringValue: 'GET' });
            // Probes and scrapes without a traceparent start no trace.
            await fetch(`${cat.baseUrl}/health`);
            await fetch(`${cat.baseUrl}/v1/products?limit=1`, { headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` } });
            await waitFor(() => bodies.length >= 2, { timeoutMs: 10_000, message: 'a second export' });
            assert.ok(!bodies.some((b) => b.body.includes('"/health"')), 'no span for /health');
        } finally {
            sink.close();
        }
    });

    it('with its collector down, drops and counts spans without holding a request or growing', T, async () => {
        // A port nothing listens on.
        const dead = await new Promise((resolve) => {
            const s = http.createServer();
            s.listen(0, '127.0.0.1', () => {
                const { port } = s.address();
                s.close(() => resolve(port));
            });
        });
        const cat = await startService('catalog', { env: { AGORA_OTLP_ENDPOINT: `http://127.0.0.1:${dead}`, AGORA_TRACE_QUEUE: '64KiB', AGORA_ACCESS_LOG: 'false' } });
        const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${cat.child.pid}/status`, 'utf8'))[1]);
        const slowest = { ms: 0 };
        const before = rss();
        for (let round = 0; round < 20; round++) {
            await Promise.all(Array.from({ length: 50 }, async () => {
                const t0 = performance.now();
                const r = await fetch(`${cat.baseUrl}/v1/products?limit=5`, { headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` } });
                await r.arrayBuffer();
                assert.equal(r.status, 200);
                slowest.ms = Math.max(slowest.ms, performance.now() - t0);
            }));
        }
        // Nothing waited for the exporter (its call times out after 2 s).
        assert.ok(slowest.ms < 1500, `slowest request ${slowest.ms.toFixed(1)} ms`);
        let m;
        await waitFor(async () => {
            m = parseMetrics(await (await fetch(`${cat.baseUrl}/metrics`)).text());
            return metricValue(m, 'trace_spans_dropped_total', { reason: 'export_failed' }) > 0;
        }, { timeoutMs: 10_000, message: 'failed exports counted' });
        const dropped = metricValue(m, 'trace_spans_dropped_total', { reason: 'export_failed' }) + (metricValue(m, 'trace_spans_dropped_total', { reason: 'queue_full' }) ?? 0);
        assert.ok(dropped >= 100, `dropped ${dropped}`);
        assert.equal(metricValue(m, 'trace_spans_exported_total') ?? 0, 0);
        // 1000 spans of ~600 bytes went nowhere: the process did not keep them.
        assert.ok(rss() - before < 16 * 1024, `RSS grew ${rss() - before} KiB`);
    });
});

