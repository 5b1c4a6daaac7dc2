// SPDX-License-Identifier: MIT
// The API reference page (api.html): fetches the public API description the
// gateway serves (/api/v1/openapi.json, bundled at build time from the
// services' openapi.yaml files) and renders it: operations grouped by tag,
// who may call each (its role), parameters, request and response bodies
// with their schemas. No framework, no remote code; every text from the
// document goes in as text, never as HTML.
'use strict';

(function main() {
    const DEFAULT_SPEC = '/api/v1/openapi.json';
    const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'options', 'head'];
    const ROLE_TEXT = {
        public: 'public: anyone, no token needed',
        customer: 'customer: any signed-in user (Authorization: Bearer <access token>)',
        admin: 'admin: a token with the admin role',
        internal: 'internal: other Agora processes only',
    };
    let doc = null;

    // el('a', { href: '#x', class: 'y' }, 'text', child...)
    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false) continue;
            if (k === 'class') e.className = v;
            else e.setAttribute(k, v === true ? '' : String(v));
        }
        for (const c of children.flat()) {
            if (c === undefined || c === null || c === false) continue;
            e.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
        return e;
    }

    // Text with `code` and **bold** spans, as nodes.
    function inline(text) {
        const frag = document.createDocumentFragment();
        const re = /`([^`]+)`|\*\*([^*]+)\*\*/g;
        let last = 0;
        let m;
        const s = String(text || '');
        while ((m = re.exec(s)) !== null) {
            if (m.index > last) frag.append(s.slice(last, m.index));
            frag.append(m[1] !== undefined ? el('code', {}, m[1]) : el('strong', {}, m[2]));
            last = re.lastIndex;
        }
        if (last < s.length) frag.append(s.slice(last));
        return frag;
    }

    // Paragraphs and "- " lists of a description.
    function prose(text) {
        const box = el('div', { class: 'prose' });
        for (const block of String(text || '').trim().split(/\n\s*\n/)) {
            const lines = block.split('\n');
            if (lines.every((l) => /^\s*- /.test(l) || /^\s{2,}\S/.test(l))) {
                const ul = el('ul');
                let cur = null;
                for (const l of lines) {
                    if (/^\s*- /.test(l)) {
                        cur = l.replace(/^\s*- /, '');
                        ul.append(el('li', {}, inline(cur)));
                    } else if (ul.lastChild) {
                        ul.lastChild.append(` ${l.trim()}`);
                    }
                }
                box.append(ul);
            } else if (block.trim() !== '') {
                box.append(el('p', {}, inline(lines.join(' '))));
            }
        }
        return box;
    }

    function refName(ref) {
        return decodeURIComponent(ref.split('/').pop());
    }

    function resolve(node) {
        let guard = 0;
        while (node && node.$ref && guard++ < 20) {
            const parts = node.$ref.replace(/^#\//, '').split('/').map((p) => decodeURIComponent(p.replace(/~1/g, '/').replace(/~0/g, '~')));
            let cur = doc;
            for (const p of parts) cur = cur ? cur[p] : undefined;
            node = cur;
        }
        return node || {};
    }

    function typeLabel(s) {
        if (!s || typeof s !== 'object') return 'any';
        if (s.$ref) return refName(s.$ref);
        if (s.const !== undefined) return `= ${JSON.stringify(s.const)}`;
        if (s.enum) return `one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`;
        let t = Array.isArray(s.type) ? s.type.join(' | ') : s.type;
        if (t === 'array' || (Array.isArray(s.type) && s.type.includes('array'))) {
            t = t.replace('array', `array of ${typeLabel(s.items)}`);
        }
        if (!t && s.allOf) t = s.allOf.map(typeLabel).join(' & ');
        if (!t && (s.oneOf || s.anyOf)) t = (s.oneOf || s.anyOf).map(typeLabel).join(' | ');
        if (!t) t = s.properties ? 'object' : 'any';
        if (s.format) t += ` (${s.format})`;
        return t;
    }

    function constraints(s) {
        const out = [];
        const add = (k, label) => {
            if (s[k] !== undefined) out.push(`${label} ${typeof s[k] === 'string' ? s[k] : JSON.stringify(s[k])}`);
        };
        add('minimum', 'min'); add('maximum', 'max'); add('minLength', 'min length'); add('maxLength', 'max length');
        add('minItems', 'min items'); add('maxItems', 'max items'); add('pattern', 'pattern'); add('default', 'default');
        return out;
    }

    // The schema as a nested list of fields; $refs expand up to a depth.
    function schemaView(schema, depth, seen) {
        const s = schema || {};
        if (s.$ref) {
            const name = refName(s.$ref);
            const target = resolve(s);
            if (seen.has(name) || depth > 4) return el('span', {}, el('a', { href: `#schema-${name}`, class: 'type' }, name));
            const next = new Set(seen).add(name);
            const inner = schemaBody(target, depth, next);
            if (!inner) return el('span', {}, el('a', { href: `#schema-${name}`, class: 'type' }, name), ' ', el('span', { class: 'type' }, typeLabel(target)));
            return el('details', { open: depth < 1 }, el('summary', {}, el('span', { class: 'type' }, name), target.description ? ' — ' : '', inline(target.description || '')), inner);
        }
        return schemaBody(s, depth, seen) || el('span', { class: 'type' }, typeLabel(s));
    }

    // The fields of an object schema (or of allOf parts, array items).
    function schemaBody(s, depth, seen) {
        if (s.allOf || s.oneOf || s.anyOf) {
            const kind = s.allOf ? 'all of' : s.oneOf ? 'one of' : 'any of';
            return el('div', {}, el('span', { class: 'note' }, kind),
                el('ul', { class: 'schema' }, (s.allOf || s.oneOf || s.anyOf).map((p) => el('li', {}, schemaView(p, depth + 1, seen)))));
        }
        const items = s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array')) ? s.items : null;
        if (items && (items.$ref || items.properties)) {
            return el('div', {}, el('span', { class: 'note' }, 'array of'), el('ul', { class: 'schema' }, el('li', {}, schemaView(items, depth + 1, seen))));
        }
        if (!s.properties && !(s.additionalProperties && typeof s.additionalProperties === 'object')) return null;
        const req = new Set(s.required || []);
        const ul = el('ul', { class: 'schema' });
        for (const [name, p] of Object.entries(s.properties || {})) {
            const target = p.$ref ? resolve(p) : p;
            const desc = p.description || (p.$ref ? '' : target.description);
            const li = el('li', {}, el('span', { class: 'prop' }, name), ' ', el('span', { class: 'type' }, typeLabel(p)),
                req.has(name) ? el('span', { class: 'req' }, ' required') : null,
                constraints(target).length ? el('span', { class: 'note' }, ` (${constraints(target).join('; ')})`) : null,
                desc ? el('span', {}, ' — ', inline(desc)) : null);
            const nested = p.$ref || target.properties || target.allOf || (target.items && (target.items.$ref || target.items.properties));
            if (nested && depth < 4) li.append(schemaView(p, depth + 1, seen));
            ul.append(li);
        }
        if (s.additionalProperties === false) ul.append(el('li', { class: 'note' }, 'no other fields'));
        else if (s.additionalProperties && typeof s.additionalProperties === 'object') {
            ul.append(el('li', { class: 'note' }, 'other fields: ', el('span', { class: 'type' }, typeLabel(s.additionalProperties))));
        }
        return ul;
    }

    function contentView(content, depth) {
        const box = el('div');
        for (const [mt, media] of Object.entries(content || {})) {
            box.append(el('div', { class: 'note' }, el('code', {}, mt)));
            if (media.schema) box.append(schemaView(media.schema, depth, new Set()));
        }
        return box;
    }

    function roleOf(op) {
        if (op['x-agora-role']) return op['x-agora-role'];
        if (Array.isArray(op.security) && op.security.length === 0) return 'public';
        return 'customer';
    }

    function operationView(p, method, op, pathItem) {
        const id = `op-${op.operationId || `${method}-${p}`.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        const role = roleOf(op);
        const art = el('article', { class: 'op', id, 'data-search': `${method} ${p} ${op.summary || ''} ${op.operationId || ''}`.toLowerCase() });
        art.append(el('div', { class: 'head' },
            el('span', { class: `method m-${METHODS.includes(method) ? method : 'other'}` }, method.toUpperCase()),
            el('span', { class: 'path' }, p),
            el('span', { class: 'summary' }, op.summary || ''),
            el('span', { class: `role role-${role}`, title: ROLE_TEXT[role] || role }, role)));
        const body = el('div', { class: 'body' });
        if (op.description) body.append(prose(op.description));
        const who = [ROLE_TEXT[role] || role];
        if (op['x-agora-service']) who.push(`answered by the ${op['x-agora-service']} service`);
        if (op.operationId) who.push(`operationId ${op.operationId}`);
        body.append(el('p', { class: 'note' }, who.join(' · ')));

        const params = [...(pathItem.parameters || []), ...(op.parameters || [])].map((x) => (x.$ref ? resolve(x) : x));
        if (params.length) {
            body.append(el('h4', {}, 'Parameters'));
            body.append(el('table', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'), el('th', {}, 'type'), el('th', {}, 'description')),
                params.map((x) => el('tr', {},
                    el('td', {}, el('code', {}, x.name), x.required ? el('span', { class: 'req' }, ' required') : null),
                    el('td', {}, x.in),
                    el('td', {}, el('span', { class: 'type' }, typeLabel(x.schema)), constraints(x.schema ? resolve(x.schema) : {}).length
                        ? el('div', { class: 'note' }, constraints(resolve(x.schema)).join('; ')) : null),
                    el('td', {}, inline(x.description || ''))))));
        }
        if (op.requestBody) {
            const rb = op.requestBody.$ref ? resolve(op.requestBody) : op.requestBody;
            body.append(el('h4', {}, `Request body${rb.required ? '' : ' (optional)'}`));
            if (rb.description) body.append(prose(rb.description));
            body.append(contentView(rb.content, 0));
        }
        body.append(el('h4', {}, 'Responses'));
        const table = el('table', {}, el('tr', {}, el('th', {}, 'status'), el('th', {}, 'meaning and body')));
        for (const [status, r0] of Object.entries(op.responses || {})) {
            const r = r0.$ref ? resolve(r0) : r0;
            const cell = el('td', {}, inline(r.description || ''));
            const headers = Object.keys(r.headers || {});
            if (headers.length) cell.append(el('div', { class: 'note' }, 'headers: ', headers.join(', ')));
            if (r.content) {
                const ok = status.startsWith('2');
                cell.append(ok ? contentView(r.content, 0)
                    : el('details', {}, el('summary', {}, Object.keys(r.content).join(', ')), contentView(r.content, 1)));
            }
            table.append(el('tr', {}, el('td', { class: `status s${status[0]}` }, status), cell));
        }
        body.append(table);
        art.append(body);
        return art;
    }

    function render() {
        const info = doc.info || {};
        document.title = `${info.title || 'API'} ${info.version || ''}`.trim();
        document.getElementById('title').textContent = `${info.title || 'API'} ${info.version ? `(${info.version})` : ''}`;
        const content = document.getElementById('content');
        const toc = document.getElementById('toc');
        content.replaceChildren();
        toc.replaceChildren();
        if (info.description) content.append(el('div', { class: 'intro' }, prose(info.description)));

        const tags = (doc.tags || []).map((t) => ({ ...t, ops: [] }));
        const byName = new Map(tags.map((t) => [t.name, t]));
        for (const [p, item] of Object.entries(doc.paths || {})) {
            for (const m of METHODS) {
                const op = item[m];
                if (!op) continue;
                const name = (op.tags && op.tags[0]) || 'other';
                if (!byName.has(name)) {
                    const t = { name, ops: [] };
                    tags.push(t);
                    byName.set(name, t);
                }
                byName.get(name).ops.push({ p, m, op, item });
            }
        }
        for (const t of tags) {
            if (t.ops.length === 0) continue;
            const sec = el('section', { class: 'tag', id: `tag-${t.name}` }, el('h2', {}, t.name));
            if (t.description) sec.append(prose(t.description));
            toc.append(el('h2', {}, el('a', { href: `#tag-${t.name}` }, t.name)));
            const ul = el('ul');
            for (const { p, m, op, item } of t.ops) {
                const art = operationView(p, m, op, item);
                sec.append(art);
                ul.append(el('li', { 'data-for': art.id }, el('a', { href: `#${art.id}` },
                    el('span', { class: 'type' }, m.toUpperCase()), ' ', p)));
            }
            toc.append(ul);
            content.append(sec);
        }

        const schemas = (doc.components && doc.components.schemas) || {};
        if (Object.keys(schemas).length) {
            const sec = el('section', { class: 'tag', id: 'schemas' }, el('h2', {}, 'Schemas'));
            toc.append(el('h2', {}, el('a', { href: '#schemas' }, 'Schemas')));
            for (const [name, s] of Object.entries(schemas)) {
                sec.append(el('article', { class: 'op', id: `schema-${name}` },
                    el('div', { class: 'head' }, el('span', { class: 'path' }, name), el('span', { class: 'type' }, typeLabel(s))),
                    el('div', { class: 'body' }, s.description ? prose(s.description) : null, schemaBody(s, 1, new Set([name])) || el('p', { class: 'note' }, typeLabel(s)))));
            }
            content.append(sec);
        }
    }

    function applyFilter(q) {
        const needle = q.trim().toLowerCase();
        for (const art of document.querySelectorAll('article.op[data-search]')) {
            const show = needle === '' || art.getAttribute('data-search').includes(needle);
            art.hidden = !show;
            const li = document.querySelector(`li[data-for="${art.id}"]`);
            if (li) li.hidden = !show;
        }
    }

    async function load() {
        const asked = new URLSearchParams(window.location.search).get('spec');
        // Only documents of this site: a path, not another origin.
        const url = asked && asked.startsWith('/') && !asked.startsWith('//') ? asked : DEFAULT_SPEC;
        const source = document.getElementById('source');
        try {
            const r = await fetch(url, { headers: { accept: 'application/json' } });
            if (!r.ok) throw new Error(`${url} answered ${r.status}`);
            doc = await r.json();
        } catch (err) {
            source.replaceChildren(el('div', { class: 'error' },
                `Cannot load the API description: ${err.message}. The build writes it to <build>/openapi.json; the gateway serves it at ${DEFAULT_SPEC}.`));
            return;
        }
        source.replaceChildren('From ', el('a', { href: url }, url), `, OpenAPI ${doc.openapi || '?'}.`);
        render();
        document.getElementById('filter').addEventListener('input', (e) => applyFilter(e.target.value));
        if (window.location.hash) {
            const target = document.getElementById(window.location.hash.slice(1));
            if (target) target.scrollIntoView();
        }
    }

    load();
}());
