// SPDX-License-Identifier: MIT
// bench/tracing/otlpload.mjs: a load generator for an OTLP/HTTP JSON
// collector (Node standard library only). Not under test: it runs on the
// load generator's CPU.
//
//   node bench/tracing/otlpload.mjs URL SECONDS CONNECTIONS SPANS_PER_REQUEST
//
// Keeps CONNECTIONS requests in flight (keep-alive) for SECONDS, each an
// ExportTraceServiceRequest of SPANS_PER_REQUEST spans shaped like the
// chassis exporter's (chassis/src/service/otlp.c): one resource (service.name,
// service.instance.id, telemetry.sdk.*), spans of traces of 8 spans (a
// server span and its children), each with the attributes a server, client
// or messaging span has, every trace and span id new. Prints one JSON line:
// {"requests":N,"spans":N,"failed":N,"seconds":S}.
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const [url, secondsArg, connsArg, perArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const conns = Number(connsArg);
const per = Number(perArg);
if (!url || !(seconds > 0) || !(conns > 0) || !(per > 0)) {
    console.error('usage: node otlpload.mjs URL SECONDS CONNECTIONS SPANS_PER_REQUEST');
    process.exit(2);
}
const target = new URL('/v1/traces', url);
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });

// Ids: a random 8-byte prefix per process and a counter, as hex.
const prefix = randomBytes(8).toString('hex');
let counter = 0;
const hex8 = (n) => n.toString(16).padStart(16, '0');

const RESOURCE =
    '{"resourceSpans":[{"resource":{"attributes":[' +
    '{"key":"service.name","value":{"stringValue":"loadgen"}},' +
    '{"key":"service.instance.id","value":{"stringValue":"loadgen-1"}},' +
    '{"key":"telemetry.sdk.name","value":{"stringValue":"agora"}},' +
    '{"key":"telemetry.sdk.language","value":{"stringValue":"c"}}]},' +
    '"scopeSpans":[{"scope":{"name":"agora"},"spans":[';

const attr = (k, v) => `{"key":"${k}","value":{"stringValue":"${v}"}}`;
const iattr = (k, v) => `{"key":"${k}","value":{"intValue":"${v}"}}`;

function body() {
    const parts = [];
    let trace = '';
    let root = '';
    const t0 = BigInt(Date.now()) * 1000000n;
    for (let i = 0; i < per; i++) {
        const id = hex8(++counter);
        if (i % 8 === 0) {
            trace = prefix + id;
            root = id;
        }
        const start = t0 + BigInt(i) * 1000n;
        const end = start + 250000n;
        const server = i % 8 === 0;
        const attrs = server
            ? [attr('http.request.method', 'GET'), attr('url.path', '/v1/products/0190a8f2-0000-7000-8000-000000000001'), attr('http.route', '/v1/products/{id}'), iattr('http.response.status_code', 200), attr('server.address', '127.0.0.1'), iattr('server.port', 8081)]
            : [attr('http.request.method', 'POST'), attr('url.full', 'http://127.0.0.1:8083/v1/reservations'), attr('server.address', '127.0.0.1'), iattr('server.port', 8083), iattr('http.response.status_code', 201), attr('messaging.system', 'agora.bus')];
        parts.push(
            `{"traceId":"${trace}","spanId":"${id}"` +
                (server ? '' : `,"parentSpanId":"${root}"`) +
                `,"name":"${server ? 'GET /v1/products/{id}' : 'POST'}","kind":${server ? 2 : 3}` +
                `,"startTimeUnixNano":"${start}","endTimeUnixNano":"${end}"` +
                `,"attributes":[${attrs.join(',')}],"status":{}}`,
        );
    }
    return RESOURCE + parts.join(',') + ']}]}]}';
}

let requests = 0;
let spans = 0;
let failed = 0;
const deadline = Date.now() + seconds * 1000;

function one() {
    return new Promise((resolve) => {
        const b = body();
        const req = http.request(
            target,
            { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) } },
            (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (c) => (text += c));
                res.on('end', () => {
                    requests++;
                    if (res.statusCode === 200 && !text.includes('rejectedSpans')) spans += per;
                    else failed++;
                    resolve();
                });
            },
        );
        req.on('error', () => {
            failed++;
            resolve();
        });
        req.end(b);
    });
}

async function worker() {
    while (Date.now() < deadline) await one();
}

const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conns }, worker));
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
agent.destroy();
console.log(JSON.stringify({ requests, spans, failed, seconds: elapsed }));
