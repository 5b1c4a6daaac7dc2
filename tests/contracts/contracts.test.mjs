// SPDX-License-Identifier: MIT
// Contract test: contracts/events/ has one JSON Schema per event type of
// DESIGN.md's table, every schema loads in tests/lib/schema.mjs (no keyword
// left unchecked), the examples pass or fail as they say, and mutations of a
// valid event (a required field dropped, an unknown field added, the wrong
// type, subject or value) are all rejected. No services needed; < 1 s.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
    DEFAULT_DIR, SchemaError, Schemas, assertValidEvent, isDateTime, isUuid, loadSchemas,
    validate, validateEvent,
} from '../lib/schema.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLES = path.join(DEFAULT_DIR, 'examples');

// DESIGN.md section 2: every event type and the service that publishes it.
const DESIGN_TYPES = {
    'user.registered': 'users',
    'user.updated': 'users',
    'user.disabled': 'users',
    'session.revoked': 'users',
    'product.created': 'catalog',
    'product.updated': 'catalog',
    'product.deleted': 'catalog',
    'inventory.reserved': 'inventory',
    'inventory.rejected': 'inventory',
    'inventory.released': 'inventory',
    'stock.low': 'inventory',
    'stock.depleted': 'inventory',
    'inventory.committed': 'inventory',
    'inventory.restocked': 'inventory',
    'cmd.inventory.reserve': 'orders',
    'cmd.inventory.release': 'orders',
    'cmd.inventory.commit': 'orders',
    'cmd.inventory.restock': 'orders',
    'order.created': 'orders',
    'order.confirmed': 'orders',
    'order.cancelled': 'orders',
    'order.completed': 'orders',
    'payment.authorized': 'payments',
    'payment.captured': 'payments',
    'payment.voided': 'payments',
    'payment.refunded': 'payments',
    'payment.failed': 'payments',
    'shipment.created': 'shipping',
    'shipment.shipped': 'shipping',
    'shipment.delivered': 'shipping',
    'shipment.cancelled': 'shipping',
    'shipment.cancel_rejected': 'shipping',
    // Saga commands (contracts/README.md "Saga commands"): sent by orders, consumed by one participant.
    'cmd.shipment.create': 'orders',
    'cmd.shipment.cancel': 'orders',
    'cmd.payment.authorize': 'orders',
    'cmd.payment.capture': 'orders',
    'cmd.payment.void': 'orders',
    'cmd.payment.refund': 'orders',
};
const TYPES = Object.keys(DESIGN_TYPES);
const ENVELOPE_REQUIRED = ['specversion', 'id', 'source', 'type', 'subject', 'time',
    'datacontenttype', 'data'];
// A UUIDv7 that no example uses.
const OTHER_ID = '01947000-0000-7fff-bfff-ffffffffffff';

const schemas = loadSchemas();

function readJson(file) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function examples(type, kind) {
    const v = readJson(path.join(EXAMPLES, `${type}.${kind}.json`));
    assert.ok(Array.isArray(v) && v.length > 0, `${type}.${kind}.json: a non-empty array`);
    return v;
}

// Assert that 'event' is invalid with an error at 'at' (and keyword 'kw' if given).
function assertRejected(type, event, at, kw, why) {
    const r = validate(type, event);
    assert.equal(r.valid, false, `${type}: ${why}: accepted`);
    const hit = r.errors.some((e) => e.path === at && (kw === undefined || e.keyword === kw));
    assert.ok(hit, `${type}: ${why}: no ${kw ?? 'error'} at '${at}' in ${JSON.stringify(r.errors)}`);
}

function pointer(...tokens) {
    return tokens.map((t) => `/${String(t).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

// Every [path tokens, value] pair under 'x', depth first.
function* walk(x, tokens = []) {
    yield [tokens, x];
    if (x !== null && typeof x === 'object') {
        for (const [k, v] of Object.entries(x))
            yield* walk(v, [...tokens, Array.isArray(x) ? Number(k) : k]);
    }
}

function setAt(root, tokens, value) {
    let cur = root;
    for (const t of tokens.slice(0, -1))
        cur = cur[t];
    cur[tokens.at(-1)] = value;
}

// A copy of 'event' with 'fn' applied.
function mutated(event, fn) {
    const e = structuredClone(event);
    fn(e);
    return e;
}

describe('contract files', () => {
    it('every event type of DESIGN.md has a schema, and every schema is such a type', () => {
        assert.deepEqual([...schemas.types].sort(), [...TYPES].sort());
    });

    it('every type has valid and invalid examples, and there are no stray files', () => {
        const want = TYPES.flatMap((t) => [`${t}.invalid.json`, `${t}.valid.json`]).sort();
        assert.deepEqual(fs.readdirSync(EXAMPLES).sort(), want);
        const extra = fs.readdirSync(DEFAULT_DIR)
            .filter((n) => n !== 'examples' && !n.endsWith('.schema.json'));
        assert.deepEqual(extra, []);
    });

    it('the README lists every type with its producer', () => {
        const readme = fs.readFileSync(path.join(ROOT, 'contracts/README.md'), 'utf8');
        const rows = [...readme.matchAll(/^\| `([a-z_.0-9]+)` \| ([a-z]+) \|/gm)];
        const listed = Object.fromEntries(rows.map((m) => [m[1], m[2]]));
        assert.deepEqual(listed, DESIGN_TYPES);
    });

    it('each schema names its type and pins its producer as source', () => {
        for (const [type, producer] of Object.entries(DESIGN_TYPES)) {
            const s = schemas.schema(type);
            assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema', type);
            assert.equal(s.title, type);
            assert.equal(s.properties.type.const, type);
            assert.deepEqual(s.allOf, [{ $ref: 'common.schema.json#/$defs/cloudevent' }], type);
            const src = new RegExp(s.properties.source.pattern, 'u');
            assert.ok(src.test(`/agora/${producer}`), `${type}: source of ${producer}`);
            for (const other of new Set(Object.values(DESIGN_TYPES))) {
                if (other !== producer)
                    assert.ok(!src.test(`/agora/${other}`), `${type}: not from ${other}`);
            }
        }
    });
});

describe('validator', () => {
    // A temporary schema directory holding 'files' ({name: schema}).
    function withDir(files, fn) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agora-schema-'));
        try {
            for (const [name, s] of Object.entries(files))
                fs.writeFileSync(path.join(dir, name), JSON.stringify(s));
            return fn(dir);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }

    it('refuses schemas it cannot check: unknown keywords, formats, refs', () => {
        const cases = [
            [{ type: 'object', minProperties: 1 }, /unsupported keyword 'minProperties'/],
            [{ properties: { a: { if: {} } } }, /#\/properties\/a: unsupported keyword 'if'/],
            [{ type: 'string', format: 'email' }, /unsupported format "email"/],
            [{ $ref: 'missing.schema.json#/$defs/x' }, /cannot resolve \$ref/],
            [{ $ref: '#/$defs/nope' }, /cannot resolve \$ref/],
            [{ items: [{ type: 'string' }] }, /prefixItems/],
            [{ type: 'text' }, /bad 'type'/],
            [{ pattern: '(' }, /bad pattern/],
            [{ properties: { a: { 'x-agora-subject': ['/a'] } } }, /only at the root/],
        ];
        for (const [schema, re] of cases) {
            withDir({ 'a.b.schema.json': schema }, (dir) => {
                assert.throws(() => new Schemas(dir), (err) => err instanceof SchemaError &&
                    re.test(err.message), JSON.stringify(schema));
            });
        }
    });

    it('checks each supported keyword', () => {
        const s = {
            $defs: { n: { type: 'integer', minimum: 1, maximum: 3 } },
            type: 'object', additionalProperties: false, required: ['a'],
            properties: {
                a: { $ref: '#/$defs/n' },
                b: { type: ['string', 'null'], minLength: 2, maxLength: 3, pattern: '^x' },
                c: { type: 'array', minItems: 1, maxItems: 2, uniqueItems: true, items: { enum: [1, 2, 3] } },
                d: { oneOf: [{ type: 'integer' }, { type: 'number', minimum: 0 }] },
                e: { anyOf: [{ const: 'k' }, { format: 'uuid' }] },
                f: { allOf: [{ format: 'date-time' }, { maxLength: 20 }] },
                g: { const: { k: [1] } },
            },
        };
        withDir({ 't.x.schema.json': s }, (dir) => {
            const set = new Schemas(dir);
            const ok = { a: 2, b: 'xy', c: [1, 2], d: -1, e: 'k', f: '2024-02-29T00:00:00Z', g: { k: [1] } };
            assert.deepEqual(set.validate('t.x', ok), { valid: true, errors: [] });
            assert.ok(set.validate('t.x', { a: 3, b: null }).valid);
            const bad = [
                [{}, '/a', 'required'],
                [{ a: 0 }, '/a', 'minimum'],
                [{ a: 4 }, '/a', 'maximum'],
                [{ a: 1.5 }, '/a', 'type'],
                [{ a: 1, z: 1 }, '/z', 'additionalProperties'],
                [{ a: 1, b: 'x' }, '/b', 'minLength'],
                [{ a: 1, b: 'x😀😀😀' }, '/b', 'maxLength'],
                [{ a: 1, b: 'yy' }, '/b', 'pattern'],
                [{ a: 1, b: 1 }, '/b', 'type'],
                [{ a: 1, c: [] }, '/c', 'minItems'],
                [{ a: 1, c: [1, 2, 3] }, '/c', 'maxItems'],
                [{ a: 1, c: [1, 1] }, '/c/1', 'uniqueItems'],
                [{ a: 1, c: [4] }, '/c/0', 'enum'],
                [{ a: 1, d: 1 }, '/d', 'oneOf'],
                [{ a: 1, d: 'x' }, '/d', 'oneOf'],
                [{ a: 1, e: 'K' }, '/e', 'anyOf'],
                [{ a: 1, f: '2023-02-29T00:00:00Z' }, '/f', 'format'],
                [{ a: 1, g: { k: [2] } }, '/g', 'const'],
                [[], '', 'type'],
            ];
            for (const [x, at, kw] of bad) {
                const r = set.validate('t.x', x);
                assert.ok(!r.valid && r.errors.some((e) => e.path === at && e.keyword === kw),
                    `${JSON.stringify(x)}: want ${kw} at '${at}', got ${JSON.stringify(r.errors)}`);
            }
        });
    });

    it('checks date-time strictly (RFC 3339 section 5.6)', () => {
        for (const s of ['2025-01-15T10:00:00Z', '2025-01-15T10:00:00.123Z', '2024-02-29T23:59:59z',
            '2025-01-15t10:00:00+01:00', '0000-01-01T00:00:00-23:59', '2025-12-31T23:59:59.123456789Z'])
            assert.ok(isDateTime(s), s);
        for (const s of ['2025-01-15', '2025-01-15T10:00Z', '2025-01-15 10:00:00Z', '2025-1-15T10:00:00Z',
            '2025-01-15T10:00:00', '2025-13-01T00:00:00Z', '2025-00-01T00:00:00Z', '2025-04-31T00:00:00Z',
            '2023-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2025-01-15T24:00:00Z', '2025-01-15T10:60:00Z',
            '2016-12-31T23:59:60Z', '2025-01-15T10:00:00+24:00', '2025-01-15T10:00:00.Z',
            '2025-01-15T10:00:00Z\n', '+2025-01-15T10:00:00Z', '2025-01-15T10:00:00+0100'])
            assert.ok(!isDateTime(s), s);
    });

    it('checks uuid strictly (canonical 8-4-4-4-12)', () => {
        assert.ok(isUuid('01946967-d500-7004-8000-0a9000000004'));
        assert.ok(isUuid('9B2C8A4E-3F1D-4C2B-9A7E-5D6F8E9A0B1C'));
        for (const s of ['', '01946967d50070048000a9000000004', '{01946967-d500-7004-8000-0a9000000004}',
            '01946967-d500-7004-8000-0a900000000g', '01946967-d500-7004-8000-0a9000000004 '])
            assert.ok(!isUuid(s), s);
    });

    it('answers for an unknown type, and validateEvent reads the type', () => {
        const r = validate('order.shipped', {});
        assert.equal(r.valid, false);
        assert.equal(r.errors[0].path, '/type');
        assert.equal(validate('common', {}).valid, false);
        const e = examples('order.created', 'valid')[0];
        assert.ok(validateEvent(e).valid);
        assert.equal(validateEvent({ ...e, type: 'order.placed' }).valid, false);
        assert.equal(validateEvent(null).valid, false);
        assert.throws(() => assertValidEvent({ ...e, subject: OTHER_ID }), /\/subject: must equal/);
    });
});

for (const type of TYPES) {
    describe(type, () => {
        const valid = examples(type, 'valid');
        const base = valid[0];

        it('valid examples satisfy the contract', () => {
            for (const [i, e] of valid.entries()) {
                assert.equal(e.type, type, `example ${i}`);
                const r = validate(type, e);
                assert.deepEqual(r.errors, [], `example ${i}`);
                assert.equal(r.valid, true);
            }
        });

        it('invalid examples fail where they say', () => {
            for (const x of examples(type, 'invalid')) {
                assert.deepEqual(Object.keys(x).sort(), ['description', 'event', 'expect_error_path']);
                assertRejected(type, x.event, x.expect_error_path, undefined, x.description);
            }
        });

        it('every envelope attribute and every data field is required', () => {
            for (const k of ENVELOPE_REQUIRED)
                assertRejected(type, mutated(base, (e) => delete e[k]), `/${k}`, 'required', `no ${k}`);
            for (const k of Object.keys(base.data)) {
                assertRejected(type, mutated(base, (e) => delete e.data[k]), `/data/${k}`, 'required',
                    `no data.${k}`);
            }
            const untraced = mutated(base, (e) => delete e.traceparent);
            assert.ok(validate(type, untraced).valid, 'traceparent is optional');
        });

        it('rejects unknown fields, the wrong type, source, subject and id', () => {
            assertRejected(type, mutated(base, (e) => { e.data.x_unknown = 1; }), '/data/x_unknown',
                'additionalProperties', 'unknown data field');
            assertRejected(type, mutated(base, (e) => { e.tracestate = 'a=b'; }), '/tracestate',
                'additionalProperties', 'unknown attribute');
            const other = TYPES[(TYPES.indexOf(type) + 1) % TYPES.length];
            assertRejected(type, mutated(base, (e) => { e.type = other; }), '/type', 'const',
                `type ${other}`);
            assertRejected(type, mutated(base, (e) => { e.source = '/agora/gateway'; }), '/source',
                'pattern', 'foreign source');
            assertRejected(type, mutated(base, (e) => { e.subject = OTHER_ID; }), '/subject',
                'x-agora-subject', 'subject not the aggregate id');
            assertRejected(type, mutated(base, (e) => { e.id = e.id.toUpperCase(); }), '/id',
                'pattern', 'upper-case id');
            assertRejected(type, mutated(base, (e) => { e.time = '2025-01-15T10:00:00+00:00'; }),
                '/time', 'pattern', 'time not in Z form');
            assertRejected(type, mutated(base, (e) => { e.data = []; }), '/data', 'type', 'data array');
        });

        it('rejects bad ids, money and times anywhere in data', () => {
            let checked = 0;
            for (const ex of valid) {
                for (const [tokens, v] of walk(ex.data, ['data'])) {
                    const at = pointer(...tokens);
                    const key = tokens.at(-1);
                    const set = (value) => mutated(ex, (e) => setAt(e, tokens, value));
                    if (typeof v === 'string' && isUuid(v)) {
                        assertRejected(type, set('not-a-uuid'), at, undefined, `${at} not a uuid`);
                        checked++;
                    } else if (v !== null && typeof v === 'object' && 'amount' in v && 'currency' in v) {
                        for (const [field, bad] of [['amount', -1], ['amount', 12.5], ['amount', '1'],
                            ['amount', 2 ** 53], ['currency', 'usd'], ['currency', 'EURO']]) {
                            assertRejected(type, set({ ...v, [field]: bad }), `${at}/${field}`, undefined,
                                `${at}.${field} = ${JSON.stringify(bad)}`);
                        }
                        assertRejected(type, set({ ...v, cents: 1 }), `${at}/cents`,
                            'additionalProperties', `${at} extra field`);
                        checked++;
                    } else if (typeof key === 'string' && key.endsWith('_at')) {
                        assertRejected(type, set('2025-02-30T00:00:00Z'), at, 'format', `${at} bad date`);
                        assertRejected(type, set(1736935200000), at, 'type', `${at} a number`);
                        checked++;
                    }
                }
            }
            assert.ok(checked >= 1, `${type}: nothing checked`);
        });
    });
}
