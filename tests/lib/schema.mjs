// SPDX-License-Identifier: MIT
// A small, dependency-free JSON Schema (draft 2020-12) validator for the
// event contracts in contracts/events/ (DESIGN.md section 3): the contract
// tests use it on the examples, and black-box tests use it on the events the
// services really publish (validate, validateEvent, assertValidEvent).
//
// Supported subset; any other keyword makes loadSchemas throw, so no part of
// a schema ever goes silently unchecked:
// - annotations, ignored: $schema, $comment, title, description, examples
// - $defs; $ref to "#/<pointer>", "<file>.schema.json" or
//   "<file>.schema.json#/<pointer>", resolved among the files of the schema
//   directory (siblings of $ref apply too, as in 2020-12); every $ref is
//   resolved when the schemas load
// - type: "object" | "array" | "string" | "integer" | "number" | "boolean" |
//   "null", or an array of them ("integer" accepts any number with no
//   fractional part, as the spec says, so 1.0 passes: JSON.parse cannot tell)
// - enum, const (deep JSON equality)
// - objects: properties, required, additionalProperties (boolean or schema)
// - arrays: items (one schema; the array form is prefixItems, unsupported),
//   minItems, maxItems, uniqueItems
// - strings: pattern (ECMA-262 with the "u" flag, unanchored as the spec
//   says), minLength, maxLength (in code points), format "date-time" (RFC
//   3339 section 5.6: real calendar dates, hours 00-23, offsets; leap seconds
//   ":60" are rejected, like the chassis's ag_time_parse_rfc3339) and "uuid"
//   (RFC 9562 canonical 8-4-4-4-12 hex, any version); any other format throws
// - numbers: minimum, maximum (inclusive)
// - allOf, anyOf, oneOf
// - x-agora-subject (Agora extension, only at the root of an event type's
//   schema): an array of JSON pointers into the event; the event's "subject"
//   must equal the first of them whose value is present and not null (the
//   CloudEvents subject is the aggregate id, DESIGN.md section 3)
//
// Errors are {path, message, keyword}: 'path' is the JSON pointer of the
// instance location ("" for the whole event). A missing required property
// and a property that additionalProperties forbids are reported at the
// property's own path ("/data/order_id"), not at its parent's.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// contracts/events/ of this checkout.
export const DEFAULT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)),
    '../../contracts/events');

// Suffix of schema files; "<type>.schema.json" is the schema of event <type>.
export const SCHEMA_SUFFIX = '.schema.json';
// The file of shared definitions, not an event type.
export const COMMON_FILE = 'common.schema.json';

const ANNOTATIONS = new Set(['$schema', '$comment', 'title', 'description', 'examples']);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean', 'null']);
const FORMATS = new Set(['date-time', 'uuid']);
const SUBJECT_KEYWORD = 'x-agora-subject';

// Raised for a schema this validator cannot check faithfully.
export class SchemaError extends Error {
    constructor(message) {
        super(message);
        this.name = 'SchemaError';
    }
}

/* ---- Helpers ---- */

function isObject(x) {
    return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNonNegInt(x) {
    return Number.isInteger(x) && x >= 0;
}

function escapePointer(token) {
    return String(token).replaceAll('~', '~0').replaceAll('/', '~1');
}

function child(ptr, token) {
    return `${ptr}/${escapePointer(token)}`;
}

// The value at JSON pointer 'ptr' in 'doc', or undefined.
export function resolvePointer(doc, ptr) {
    if (ptr === '')
        return doc;
    if (!ptr.startsWith('/'))
        return undefined;
    let cur = doc;
    for (const raw of ptr.slice(1).split('/')) {
        const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
        if (Array.isArray(cur)) {
            if (!/^(0|[1-9][0-9]*)$/.test(token))
                return undefined;
            cur = cur[Number(token)];
        } else if (isObject(cur) && Object.hasOwn(cur, token)) {
            cur = cur[token];
        } else {
            return undefined;
        }
        if (cur === undefined)
            return undefined;
    }
    return cur;
}

function jsonType(x) {
    if (x === null)
        return 'null';
    if (Array.isArray(x))
        return 'array';
    if (typeof x === 'number')
        return Number.isInteger(x) ? 'integer' : 'number';
    return typeof x;
}

function typeMatches(t, x) {
    switch (t) {
    case 'null': return x === null;
    case 'object': return isObject(x);
    case 'array': return Array.isArray(x);
    case 'string': return typeof x === 'string';
    case 'boolean': return typeof x === 'boolean';
    case 'number': return typeof x === 'number' && Number.isFinite(x);
    case 'integer': return Number.isInteger(x);
    default: return false;
    }
}

export function deepEqual(a, b) {
    if (a === b)
        return true;
    if (Array.isArray(a)) {
        return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
    }
    if (isObject(a) && isObject(b)) {
        const ka = Object.keys(a);
        if (ka.length !== Object.keys(b).length)
            return false;
        return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
    }
    return false;
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

// RFC 3339 section 5.6 date-time, with calendar and range checks.
export function isDateTime(s) {
    const m = DATE_TIME.exec(s);
    if (m === null)
        return false;
    const [year, month, day, hour, min, sec] = m.slice(1, 7).map(Number);
    if (month < 1 || month > 12 || day < 1)
        return false;
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
    if (day > days || hour > 23 || min > 59 || sec > 59)
        return false;
    if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59))
        return false;
    return true;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(s) {
    return UUID.test(s);
}

function show(x) {
    const s = JSON.stringify(x);
    return s === undefined ? String(x) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/* ---- The schema set ---- */

// The schemas of one directory, every keyword checked and every $ref
// resolved at construction (SchemaError otherwise).
export class Schemas {
    constructor(dir = DEFAULT_DIR) {
        this.dir = dir;
        this.docs = new Map(); // file name -> parsed schema
        this.patterns = new Map(); // pattern source -> RegExp
        this.refs = new Map(); // "file\0ref" -> {node, file}
        for (const name of fs.readdirSync(dir).sort()) {
            if (!name.endsWith(SCHEMA_SUFFIX))
                continue;
            const text = fs.readFileSync(path.join(dir, name), 'utf8');
            let doc;
            try {
                doc = JSON.parse(text);
            } catch (err) {
                throw new SchemaError(`${name}: not JSON: ${err.message}`);
            }
            this.docs.set(name, doc);
        }
        // Event types, sorted: every schema file but the shared one.
        this.types = [...this.docs.keys()].filter((n) => n !== COMMON_FILE)
            .map((n) => n.slice(0, -SCHEMA_SUFFIX.length));
        for (const [name, doc] of this.docs)
            this.#compile(doc, name, '', name !== COMMON_FILE);
    }

    has(type) {
        return this.types.includes(type);
    }

    // The parsed schema of event 'type' (borrowed; do not modify).
    schema(type) {
        return this.docs.get(type + SCHEMA_SUFFIX);
    }

    // Check 'event' (a parsed CloudEvent) against the schema of 'type'.
    validate(type, event) {
        const doc = this.docs.get(type + SCHEMA_SUFFIX);
        if (type === COMMON_FILE.slice(0, -SCHEMA_SUFFIX.length) || doc === undefined) {
            return {
                valid: false,
                errors: [{ path: '/type', message: `no schema for event type ${show(type)}`,
                    keyword: 'type' }],
            };
        }
        const all = [];
        this.#check(doc, type + SCHEMA_SUFFIX, event, '', all);
        // The envelope and a type's schema may both say the same thing
        // (e.g. "data" must be an object): report it once.
        const seen = new Set();
        const errors = all.filter((e) => {
            const key = `${e.path}\0${e.message}`;
            return !seen.has(key) && seen.add(key);
        });
        return { valid: errors.length === 0, errors };
    }

    #fail(file, sptr, message) {
        throw new SchemaError(`${file}#${sptr}: ${message}`);
    }

    #regexp(source) {
        let re = this.patterns.get(source);
        if (re === undefined) {
            re = new RegExp(source, 'u');
            this.patterns.set(source, re);
        }
        return re;
    }

    #resolve(ref, file) {
        const key = `${file}\0${ref}`;
        let hit = this.refs.get(key);
        if (hit !== undefined)
            return hit;
        const hash = ref.indexOf('#');
        const target = hash === -1 ? ref : ref.slice(0, hash);
        const frag = hash === -1 ? '' : ref.slice(hash + 1);
        const tfile = target === '' ? file : target;
        const doc = this.docs.get(tfile);
        if (doc === undefined)
            return undefined;
        const node = resolvePointer(doc, frag);
        if (node === undefined)
            return undefined;
        hit = { node, file: tfile };
        this.refs.set(key, hit);
        return hit;
    }

    // Check the shape of every keyword of 'node' (schema at 'sptr' in 'file'),
    // recursively. 'typeRoot' is true at the root of an event type's schema.
    #compile(node, file, sptr, typeRoot) {
        if (typeof node === 'boolean')
            return;
        if (!isObject(node))
            this.#fail(file, sptr, 'a schema must be an object or a boolean');
        const sub = (s, token) => this.#compile(s, file, child(sptr, token), false);
        const subs = (kw) => {
            const v = node[kw];
            if (!Array.isArray(v) || v.length === 0)
                this.#fail(file, sptr, `'${kw}' must be a non-empty array of schemas`);
            v.forEach((s, i) => this.#compile(s, file, `${child(sptr, kw)}/${i}`, false));
        };
        for (const [kw, v] of Object.entries(node)) {
            if (ANNOTATIONS.has(kw))
                continue;
            switch (kw) {
            case '$defs':
            case 'properties':
                if (!isObject(v))
                    this.#fail(file, sptr, `'${kw}' must be an object of schemas`);
                for (const [k, s] of Object.entries(v))
                    this.#compile(s, file, child(child(sptr, kw), k), false);
                break;
            case '$ref':
                if (typeof v !== 'string' || this.#resolve(v, file) === undefined)
                    this.#fail(file, sptr, `cannot resolve $ref ${show(v)}`);
                break;
            case 'type': {
                const ts = Array.isArray(v) ? v : [v];
                if (ts.length === 0 || new Set(ts).size !== ts.length || !ts.every((t) => TYPES.has(t)))
                    this.#fail(file, sptr, `bad 'type' ${show(v)}`);
                break;
            }
            case 'enum':
                if (!Array.isArray(v) || v.length === 0)
                    this.#fail(file, sptr, "'enum' must be a non-empty array");
                break;
            case 'const':
                break;
            case 'required':
                if (!Array.isArray(v) || !v.every((k) => typeof k === 'string') ||
                    new Set(v).size !== v.length)
                    this.#fail(file, sptr, "'required' must be an array of distinct strings");
                break;
            case 'additionalProperties':
            case 'items':
                if (kw === 'items' && Array.isArray(v))
                    this.#fail(file, sptr, "array-form 'items' (prefixItems) is not supported");
                sub(v, kw);
                break;
            case 'minItems':
            case 'maxItems':
            case 'minLength':
            case 'maxLength':
                if (!isNonNegInt(v))
                    this.#fail(file, sptr, `'${kw}' must be a non-negative integer`);
                break;
            case 'minimum':
            case 'maximum':
                if (typeof v !== 'number' || !Number.isFinite(v))
                    this.#fail(file, sptr, `'${kw}' must be a number`);
                break;
            case 'uniqueItems':
                if (typeof v !== 'boolean')
                    this.#fail(file, sptr, "'uniqueItems' must be a boolean");
                break;
            case 'pattern':
                if (typeof v !== 'string')
                    this.#fail(file, sptr, "'pattern' must be a string");
                try {
                    this.#regexp(v);
                } catch (err) {
                    this.#fail(file, sptr, `bad pattern ${show(v)}: ${err.message}`);
                }
                break;
            case 'format':
                if (!FORMATS.has(v))
                    this.#fail(file, sptr, `unsupported format ${show(v)}`);
                break;
            case 'allOf':
            case 'anyOf':
            case 'oneOf':
                subs(kw);
                break;
            case SUBJECT_KEYWORD:
                if (!typeRoot)
                    this.#fail(file, sptr, `'${kw}' is allowed only at the root of an event schema`);
                if (!Array.isArray(v) || v.length === 0 ||
                    !v.every((p) => typeof p === 'string' && p.startsWith('/')))
                    this.#fail(file, sptr, `'${kw}' must be a non-empty array of JSON pointers`);
                break;
            default:
                this.#fail(file, sptr, `unsupported keyword '${kw}'`);
            }
        }
    }

    // Validate instance 'x' at 'ip' against schema 'node' of 'file'; append
    // errors to 'errors'.
    #check(node, file, x, ip, errors) {
        const err = (keyword, message, at = ip) => errors.push({ path: at, message, keyword });
        if (node === true)
            return;
        if (node === false) {
            err('false', 'no value is allowed here');
            return;
        }
        if (node.$ref !== undefined) {
            const { node: target, file: tfile } = this.#resolve(node.$ref, file);
            this.#check(target, tfile, x, ip, errors);
        }
        if (node.type !== undefined) {
            const ts = Array.isArray(node.type) ? node.type : [node.type];
            if (!ts.some((t) => typeMatches(t, x)))
                err('type', `must be ${ts.join(' or ')}, not ${jsonType(x)}`);
        }
        if (node.enum !== undefined && !node.enum.some((e) => deepEqual(e, x)))
            err('enum', `must be one of ${node.enum.map(show).join(', ')}, not ${show(x)}`);
        if (Object.hasOwn(node, 'const') && !deepEqual(node.const, x))
            err('const', `must be ${show(node.const)}, not ${show(x)}`);

        if (typeof x === 'string') {
            if (node.minLength !== undefined || node.maxLength !== undefined) {
                const n = [...x].length;
                if (node.minLength !== undefined && n < node.minLength)
                    err('minLength', `must have at least ${node.minLength} characters, has ${n}`);
                if (node.maxLength !== undefined && n > node.maxLength)
                    err('maxLength', `must have at most ${node.maxLength} characters, has ${n}`);
            }
            if (node.pattern !== undefined && !this.#regexp(node.pattern).test(x))
                err('pattern', `must match ${node.pattern}, ${show(x)} does not`);
            if (node.format === 'date-time' && !isDateTime(x))
                err('format', `must be an RFC 3339 date-time, not ${show(x)}`);
            if (node.format === 'uuid' && !isUuid(x))
                err('format', `must be a UUID, not ${show(x)}`);
        }

        if (typeof x === 'number') {
            if (node.minimum !== undefined && x < node.minimum)
                err('minimum', `must be >= ${node.minimum}, not ${x}`);
            if (node.maximum !== undefined && x > node.maximum)
                err('maximum', `must be <= ${node.maximum}, not ${x}`);
        }

        if (isObject(x)) {
            for (const k of node.required ?? []) {
                if (!Object.hasOwn(x, k))
                    err('required', 'is required', child(ip, k));
            }
            const props = node.properties ?? {};
            for (const [k, v] of Object.entries(x)) {
                if (Object.hasOwn(props, k))
                    this.#check(props[k], file, v, child(ip, k), errors);
                else if (node.additionalProperties === false)
                    err('additionalProperties', 'is not allowed here', child(ip, k));
                else if (node.additionalProperties !== undefined)
                    this.#check(node.additionalProperties, file, v, child(ip, k), errors);
            }
        }

        if (Array.isArray(x)) {
            if (node.minItems !== undefined && x.length < node.minItems)
                err('minItems', `must have at least ${node.minItems} items, has ${x.length}`);
            if (node.maxItems !== undefined && x.length > node.maxItems)
                err('maxItems', `must have at most ${node.maxItems} items, has ${x.length}`);
            if (node.uniqueItems === true) {
                for (let i = 1; i < x.length; i++) {
                    const j = x.slice(0, i).findIndex((y) => deepEqual(y, x[i]));
                    if (j !== -1)
                        err('uniqueItems', `must not repeat item ${j}`, child(ip, i));
                }
            }
            if (node.items !== undefined)
                x.forEach((v, i) => this.#check(node.items, file, v, child(ip, i), errors));
        }

        for (const s of node.allOf ?? [])
            this.#check(s, file, x, ip, errors);
        if (node.anyOf !== undefined) {
            const branches = node.anyOf.map((s) => this.#branch(s, file, x, ip));
            if (!branches.some((b) => b.length === 0)) {
                err('anyOf', 'must match one of the anyOf schemas');
                errors.push(...relevant(branches, ip));
            }
        }
        if (node.oneOf !== undefined) {
            const branches = node.oneOf.map((s) => this.#branch(s, file, x, ip));
            const passing = branches.filter((b) => b.length === 0).length;
            if (passing === 0) {
                err('oneOf', 'must match exactly one of the oneOf schemas, matches none');
                errors.push(...relevant(branches, ip));
            } else if (passing > 1) {
                err('oneOf', `must match exactly one of the oneOf schemas, matches ${passing}`);
            }
        }

        if (node[SUBJECT_KEYWORD] !== undefined && isObject(x) && typeof x.subject === 'string') {
            const ptr = node[SUBJECT_KEYWORD].find((p) => {
                const v = resolvePointer(x, p);
                return v !== undefined && v !== null;
            });
            const want = ptr === undefined ? undefined : resolvePointer(x, ptr);
            if (ptr !== undefined && want !== x.subject)
                err(SUBJECT_KEYWORD, `must equal ${ptr} (${show(want)}), not ${show(x.subject)}`,
                    child(ip, 'subject'));
        }
    }

    #branch(s, file, x, ip) {
        const errors = [];
        this.#check(s, file, x, ip, errors);
        return errors;
    }
}

// The errors of failed anyOf/oneOf branches worth showing: those of the
// branches that at least had the right type, else all of them.
function relevant(branches, ip) {
    const typed = branches.filter((b) => !b.some((e) => e.keyword === 'type' && e.path === ip));
    return (typed.length > 0 ? typed : branches).flat();
}

/* ---- Module-level API ---- */

let current = null;

// Load and check every "*.schema.json" of 'dir' (default contracts/events/);
// they become the set validate() uses. Throws SchemaError for an unknown
// keyword, an unsupported format, a bad pattern or an unresolvable $ref.
export function loadSchemas(dir = DEFAULT_DIR) {
    current = new Schemas(dir);
    return current;
}

function schemas() {
    return current ?? loadSchemas();
}

// Validate 'event' (a parsed CloudEvent) against the schema of event
// 'type'; loads contracts/events/ on first use if loadSchemas was not called.
// Returns {valid, errors: [{path, message, keyword}]}.
export function validate(type, event) {
    return schemas().validate(type, event);
}

// validate() with the type the event names itself.
export function validateEvent(event) {
    return validate(isObject(event) ? String(event.type) : '', event);
}

// Assert that 'event' satisfies the contract of its type; the failure
// message lists every error.
export function assertValidEvent(event, message = 'event breaks its contract') {
    const r = validateEvent(event);
    if (!r.valid) {
        const lines = r.errors.map((e) => `  ${e.path || '(event)'}: ${e.message}`);
        assert.fail(`${message} (${show(event?.type)}):\n${lines.join('\n')}`);
    }
}
