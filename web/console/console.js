// SPDX-License-Identifier: MIT
// The operations console (/console/), for administrators: hash routes
//   #/services  the service map: health, breaker, instances, request and
//               error rate, latency (charts from the gateway's counters)
//   #/sagas     sagas in flight and failed, with each order's steps
//   #/bus       subscriptions with backlog, dead letters: inspect, replay
//   #/catalog   products and their stock: create, set and adjust stock
//   #/traces    recent traces (filters: service, errors only, min duration);
//               #/traces/<id> one trace's waterfall, a span's details
//   #/logs      the programs' log lines (filters: service, level, trace id,
//               request id), each line's trace a link to its waterfall
// It talks only to the gateway, with the administrator's bearer token.
import { Api, ApiError, h, jwtClaims, money, newIdempotencyKey, when } from '/lib/api.js';

const api = new Api('agora.console.session');
const main = document.getElementById('main');
const flashBox = document.getElementById('flash');
const SERVICE_POLL_MS = 500;
const HISTORY = 60;
let timer = null;
let flashedAt = 0;

// Per service: samples { t, total, errors, duration_us } and derived
// series; restarts seen while this page was open (down then up again).
const history = new Map();

function flash(text, kind = 'info') {
    flashedAt = Date.now();
    flashBox.textContent = text;
    flashBox.className = `flash ${kind}`;
    flashBox.hidden = !text;
}

function errorText(e) {
    return e instanceof ApiError ? `${e.message}${e.status ? ` (HTTP ${e.status})` : ''}` : String(e?.message ?? e);
}

// Each navigation gets a number; a view still loading for an older one
// renders nothing (its answer came after the user moved on).
let routeSeq = 0;

function renderFor(seq, ...nodes) {
    if (seq !== routeSeq) return;
    main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function isAdmin() {
    return api.signedIn && (jwtClaims(api.session.access_token).roles ?? []).includes('admin');
}

const TABS = [
    ['services', 'Services'],
    ['sagas', 'Sagas'],
    ['bus', 'Bus'],
    ['catalog', 'Products and stock'],
    ['traces', 'Traces'],
    ['logs', 'Logs'],
];

function renderChrome(current) {
    document.getElementById('tabs').replaceChildren(...(isAdmin() ? TABS.map(([k, label]) => h('a', { href: `#/${k}`, 'aria-current': current === k ? 'page' : null }, label)) : []));
    document.getElementById('account-nav').replaceChildren(...(api.signedIn
        ? [h('span', { class: 'muted' }, api.session.email), h('button', { type: 'button', class: 'secondary', onclick: async () => { await api.logout(); location.hash = '#/signin'; } }, 'Sign out')]
        : []));
}

function signInView() {
    const seq = routeSeq;
    const err = h('div', { role: 'alert' });
    const form = h('form', { class: 'form' },
        h('p', {}, 'Sign in as an administrator. ', h('code', {}, 'agora up'), ' prints the password of ', h('code', {}, 'admin@agora.local'), ' (also in ', h('code', {}, '<data>/admin-password'), ').'),
        h('div', { class: 'field' }, h('label', { for: 'email' }, 'E-mail'), h('input', { id: 'email', type: 'email', required: true, autocomplete: 'username', value: 'admin@agora.local' })),
        h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), h('input', { id: 'password', type: 'password', required: true, autocomplete: 'current-password' })),
        err,
        h('button', { type: 'submit' }, 'Sign in'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.replaceChildren();
        try {
            await api.login(form.elements.email.value.trim(), form.elements.password.value);
            if (!isAdmin()) {
                await api.logout();
                err.replaceChildren(h('p', { class: 'alert' }, 'This account is not an administrator.'));
                return;
            }
            location.hash = '#/services';
        } catch (e) {
            err.replaceChildren(h('p', { class: 'alert' }, e.status === 401 ? 'Wrong e-mail or password.' : errorText(e)));
        }
    });
    renderFor(seq, h('h1', {}, 'Console sign-in'), form);
}

/* ---- Services ---- */

// A small line chart of 'values' (numbers or null), labelled for screen readers.
function spark(values, label, color) {
    const w = 120;
    const hgt = 28;
    const nums = values.filter((v) => v !== null);
    const max = Math.max(1e-9, ...nums);
    const pts = values.map((v, i) => (v === null ? null : `${((i / Math.max(1, HISTORY - 1)) * w).toFixed(1)},${(hgt - (v / max) * (hgt - 2) - 1).toFixed(1)}`)).filter(Boolean);
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('height', hgt);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const bg = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    bg.setAttribute('width', w);
    bg.setAttribute('height', hgt);
    bg.setAttribute('fill', '#f3f5f8');
    svg.append(bg);
    if (pts.length > 1) {
        const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
        line.setAttribute('points', pts.join(' '));
        line.setAttribute('fill', 'none');
        line.setAttribute('stroke', color);
        line.setAttribute('stroke-width', '1.5');
        svg.append(line);
    }
    return svg;
}

function record(name, svc, t) {
    let hst = history.get(name);
    if (!hst) history.set(name, (hst = { samples: [], rate: [], err: [], lat: [], lastStatus: null, restarts: 0, ids: new Map() }));
    const req = svc.requests ?? { total: 0, errors: 0, duration_us: 0 };
    const prev = hst.samples.at(-1);
    hst.samples.push({ t, ...req });
    if (hst.samples.length > 2) hst.samples.shift();
    if (prev) {
        const dt = Math.max(0.001, (t - prev.t) / 1000);
        const n = req.total - prev.total;
        hst.rate.push(n / dt);
        hst.err.push(n > 0 ? ((req.errors - prev.errors) / n) * 100 : 0);
        hst.lat.push(n > 0 ? (req.duration_us - prev.duration_us) / n / 1000 : null);
        for (const k of ['rate', 'err', 'lat']) if (hst[k].length > HISTORY) hst[k].shift();
    }
    // A restart: an instance registered again under a new incarnation (a
    // new process); without incarnations (static instances), down then up.
    let known = false;
    for (const i of svc.instances) {
        if (!i.incarnation) continue;
        known = true;
        const before = hst.ids.get(i.id);
        if (before !== undefined && before !== i.incarnation) hst.restarts++;
        hst.ids.set(i.id, i.incarnation);
    }
    if (!known && hst.lastStatus === 'down' && svc.status === 'ok') hst.restarts++;
    hst.lastStatus = svc.status;
    return hst;
}

function uptime(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min`;
    return `${Math.floor(s / 3600)} h`;
}

const fmt = (v, digits = 1) => (v === null || v === undefined ? '–' : v.toFixed(digits));

function serviceCard(name, svc, hst) {
    const last = (a) => (a.length ? a.at(-1) : null);
    return h('li', { class: `svc ${svc.status}`, 'data-service': name, 'data-status': svc.status },
        h('h3', {}, h('span', {}, name), h('span', { class: `status ${svc.status}` }, svc.status.replace('_', ' '))),
        h('p', { class: 'muted' }, `breaker `, h('span', { class: `status ${svc.breaker}` }, svc.breaker), ` · ${svc.healthy}/${svc.instances.length} healthy · restarts seen ${hst.restarts}`),
        h('ul', {}, svc.instances.map((i) => h('li', {}, `${i.id} ${i.address}:${i.port} `, h('span', { class: `status ${i.status}` }, i.status), i.ejected ? ' ejected' : '',
            i.started_ms ? h('span', { class: 'muted' }, ` up ${uptime(Date.now() - i.started_ms)}`) : null,
            i.error ? h('span', { class: 'muted' }, ` (${i.error})`) : null))),
        h('div', { class: 'metrics' },
            h('div', {}, h('div', {}, `${fmt(last(hst.rate))} req/s`), spark(hst.rate, `${name} request rate`, '#1a56a8')),
            h('div', {}, h('div', {}, `${fmt(last(hst.err))} % errors`), spark(hst.err, `${name} error rate`, '#a3221a')),
            h('div', {}, h('div', {}, `${fmt(last(hst.lat))} ms`), spark(hst.lat, `${name} mean latency`, '#1d6b3f'))));
}

async function servicesView() {
    const seq = routeSeq;
    const route = location.hash;
    const summary = h('p', { 'aria-live': 'polite', id: 'services-summary' }, 'Probing…');
    const list = h('ul', { class: 'services', id: 'services' });
    renderFor(seq, h('h1', {}, 'Services'), summary,
        h('p', { class: 'muted' }, 'Every service the gateway routes, probed twice a second. Rates and latency are what the gateway measured of the calls it forwarded. Kill a process and watch it go down and come back: the supervisor restarts it.'),
        list);
    const tick = async () => {
        if (location.hash !== route) return;
        try {
            const r = await api.get('/api/v1/admin/services');
            const t = r.time_ms ?? Date.now();
            const names = Object.keys(r.services).sort();
            const deployed = names.filter((n) => r.services[n].status !== 'not_deployed');
            const down = deployed.filter((n) => r.services[n].status !== 'ok');
            summary.textContent = down.length ? `Down: ${down.join(', ')}` : `All ${deployed.length} services healthy`;
            summary.className = down.length ? 'alert' : 'note';
            list.replaceChildren(...names.map((n) => serviceCard(n, r.services[n], record(n, r.services[n], t))));
        } catch (e) {
            summary.textContent = errorText(e);
            summary.className = 'alert';
            if (e.status === 401 || e.status === 403) return;
        }
        clearTimeout(timer);
        timer = setTimeout(tick, SERVICE_POLL_MS);
    };
    await tick();
}

/* ---- Sagas ---- */

async function sagasView(orderId) {
    const seq = routeSeq;
    const [inflight, failed] = await Promise.all([
        api.get('/api/v1/sagas?state=in_flight&limit=50'),
        api.get('/api/v1/sagas?state=failed&limit=50'),
    ]);
    const table = (title, list) => h('section', {}, h('h2', {}, `${title} (${list.items.length})`),
        list.items.length
            ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Order'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Pending steps'))),
                h('tbody', {}, list.items.map((s) => h('tr', {}, h('td', {}, h('a', { href: `#/sagas/${s.order_id}` }, s.order_id)), h('td', {}, h('span', { class: `status ${s.status}` }, s.status)), h('td', {}, when(s.created_at)), h('td', {}, s.pending_steps.join(', ') || '–'))))))
            : h('p', { class: 'muted' }, 'None.'));
    const detail = h('section', { id: 'saga-detail' });
    if (orderId) {
        try {
            const o = await api.get(`/api/v1/orders/${encodeURIComponent(orderId)}`);
            detail.append(h('h2', {}, `Order ${o.id}`),
                h('p', {}, h('span', { class: `status ${o.status}` }, o.status), ` payment ${o.payment_status}`, o.cancel_reason ? ` · reason ${o.cancel_reason}` : '', ` · total ${money(o.total)} · user ${o.user_id}`),
                h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Step'), h('th', { scope: 'col' }, 'Attempt'), h('th', { scope: 'col' }, 'Sent'), h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col' }, 'At'))),
                    h('tbody', {}, o.steps.map((s) => h('tr', {}, h('td', {}, s.step), h('td', {}, s.attempt), h('td', {}, when(s.sent_at)), h('td', {}, s.outcome ?? 'awaiting reply'), h('td', {}, when(s.outcome_at))))))));
        } catch (e) {
            detail.append(h('p', { class: 'alert' }, errorText(e)));
        }
    }
    renderFor(seq, h('h1', {}, 'Sagas'), h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh')), detail, table('In flight', inflight), table('Failed', failed));
}

/* ---- Bus ---- */

function age(ms) {
    if (!ms) return '–';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${(ms / 60_000).toFixed(1)} min`;
}

async function busView(subName) {
    const seq = routeSeq;
    const r = await api.get('/api/v1/admin/subscriptions');
    const subs = r.subscriptions;
    const rows = subs.map((s) => h('tr', { 'data-subscription': s.name },
        h('th', { scope: 'row' }, s.name), h('td', {}, s.topics.join(', ')),
        h('td', {}, s.backlog.ready), h('td', {}, s.backlog.in_flight), h('td', {}, s.backlog.delayed),
        h('td', { 'data-dead': s.backlog.dead_letters }, s.backlog.dead_letters ? h('a', { href: `#/bus/${encodeURIComponent(s.name)}` }, `${s.backlog.dead_letters} dead letters`) : '0'),
        h('td', {}, age(s.backlog.oldest_unacked_age_ms))));
    const detail = h('section', { id: 'dead-letters' });
    if (subName) {
        const dl = await api.get(`/api/v1/admin/subscriptions/${encodeURIComponent(subName)}/dead-letters?limit=100`);
        const inspect = h('pre', { id: 'dead-letter-json', style: 'white-space: pre-wrap', tabindex: 0, 'aria-label': 'Dead letter' });
        const replay = async (seqs) => {
            try {
                const res = await api.post(`/api/v1/admin/subscriptions/${encodeURIComponent(subName)}/replay-dead-letters`, seqs ? { seqs } : {});
                flash(`Replayed ${res.replayed} message(s) to ${subName}.`);
            } catch (e) {
                flash(errorText(e), 'error');
            }
            route();
        };
        detail.append(h('h2', {}, `Dead letters of ${subName} (${dl.messages.length})`),
            dl.messages.length
                ? h('div', {}, h('p', {}, h('button', { type: 'button', onclick: () => replay(null) }, 'Replay all')),
                    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Seq'), h('th', { scope: 'col' }, 'Topic'), h('th', { scope: 'col' }, 'Attempts'), h('th', { scope: 'col' }, 'Last error'), h('th', { scope: 'col' }, 'Dead since'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                        h('tbody', {}, dl.messages.map((m) => h('tr', { 'data-seq': m.seq },
                            h('td', {}, m.seq), h('td', {}, m.topic), h('td', {}, m.attempts), h('td', {}, m.last_error ?? ''), h('td', {}, when(m.dead_at)),
                            h('td', {}, h('div', { class: 'row' },
                                h('button', { type: 'button', class: 'secondary', 'aria-label': `Inspect message ${m.seq}`, onclick: async () => {
                                    try {
                                        const one = await api.get(`/api/v1/admin/subscriptions/${encodeURIComponent(subName)}/dead-letters/${m.seq}`);
                                        inspect.textContent = JSON.stringify(one, null, 2);
                                        inspect.focus();
                                    } catch (e) { flash(errorText(e), 'error'); }
                                } }, 'Inspect'),
                                h('button', { type: 'button', 'aria-label': `Replay message ${m.seq}`, onclick: () => replay([m.seq]) }, 'Replay')))))))),
                    inspect)
                : h('p', { class: 'muted' }, 'No dead letters.'));
    }
    renderFor(seq, h('h1', {}, 'Bus'), h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh')),
        h('div', { class: 'table-wrap' }, h('table', { id: 'subscriptions' },
            h('thead', {}, h('tr', {}, ...['Subscription', 'Topics', 'Ready', 'In flight', 'Delayed', 'Dead letters', 'Oldest'].map((x) => h('th', { scope: 'col' }, x)))),
            h('tbody', {}, rows))),
        detail);
}

/* ---- Products and stock ---- */

async function catalogView(cursor) {
    const seq = routeSeq;
    const params = new URLSearchParams({ limit: '20' });
    if (cursor) params.set('cursor', cursor);
    const page = await api.get(`/api/v1/products?${params}`);
    const stock = new Map();
    await Promise.all(page.items.map(async (p) => {
        try {
            stock.set(p.id, await api.get(`/api/v1/stock/${p.id}`));
        } catch {
            stock.set(p.id, null);
        }
    }));
    const rows = page.items.map((p) => {
        const s = stock.get(p.id);
        const setId = `set-${p.id}`;
        const adjId = `adj-${p.id}`;
        const setInput = h('input', { id: setId, type: 'number', min: 0, size: 6, value: s?.on_hand ?? 0 });
        const adjInput = h('input', { id: adjId, type: 'number', size: 5, value: 1 });
        return h('tr', { 'data-product': p.id },
            h('td', {}, p.name, h('div', { class: 'muted' }, p.sku)),
            h('td', {}, money(p.price)),
            h('td', {}, s ? `${s.on_hand} on hand, ${s.reserved} reserved, ${s.available} available` : 'no stock record'),
            h('td', {}, h('div', { class: 'row' },
                h('label', { for: setId }, 'On hand'), setInput,
                h('button', { type: 'button', class: 'secondary', onclick: async () => {
                    try {
                        await api.request('PUT', `/api/v1/stock/${p.id}`, { body: { on_hand: Number(setInput.value), reason: 'set in the console', ...(s ? { version: s.version } : {}) } });
                        flash(`Stock of ${p.sku} set to ${setInput.value}.`);
                    } catch (e) { flash(errorText(e), 'error'); }
                    route();
                } }, 'Set')),
                h('div', { class: 'row' },
                    h('label', { for: adjId }, 'Adjust by'), adjInput,
                    h('button', { type: 'button', class: 'secondary', onclick: async () => {
                        try {
                            await api.post(`/api/v1/stock/${p.id}/adjustments`, { delta: Number(adjInput.value), reason: 'adjusted in the console' }, { headers: { 'idempotency-key': newIdempotencyKey() } });
                            flash(`Stock of ${p.sku} adjusted by ${adjInput.value}.`);
                        } catch (e) { flash(errorText(e), 'error'); }
                        route();
                    } }, 'Adjust'))));
    });
    const form = h('form', { class: 'form', id: 'new-product' },
        h('h2', {}, 'New product'),
        ...[['sku', 'SKU'], ['name', 'Name'], ['price', 'Price (minor units, e.g. 1250)'], ['currency', 'Currency'], ['category', 'Category slug (optional)'], ['description', 'Description (optional)']].map(([id, label]) =>
            h('div', { class: 'field' }, h('label', { for: `np-${id}` }, label), h('input', { id: `np-${id}`, name: id, required: !['category', 'description'].includes(id), value: id === 'currency' ? 'EUR' : null }))),
        h('button', { type: 'submit' }, 'Create product'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        if (!form.reportValidity()) return;
        const v = (n) => form.elements[n].value.trim();
        try {
            const p = await api.post('/api/v1/products', {
                sku: v('sku'), name: v('name'), price: { amount: Number(v('price')), currency: v('currency') },
                ...(v('category') ? { category: v('category') } : {}), ...(v('description') ? { description: v('description') } : {}),
            });
            flash(`Created ${p.sku}.`);
            route();
        } catch (e) {
            flash(errorText(e), 'error');
        }
    });
    renderFor(seq, h('h1', {}, 'Products and stock'),
        h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ...['Product', 'Price', 'Stock', 'Change'].map((x) => h('th', { scope: 'col' }, x)))), h('tbody', {}, rows))),
        page.next_cursor ? h('p', { class: 'pager' }, h('a', { class: 'button secondary', href: `#/catalog?cursor=${encodeURIComponent(page.next_cursor)}` }, 'Next page')) : null,
        form);
}

/* ---- Traces and logs ---- */

const SPAN_KINDS = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };
// Service colours: a fixed one for each program of the shop (distinct,
// dark enough for white text, none the error red); others by a hash.
const COLORS = {
    gateway: '#1a56a8', orders: '#6b3fa0', inventory: '#8a4b08', payments: '#0b6e7a', shipping: '#1d6b3f',
    notifications: '#9c2f6e', analytics: '#5a5f00', catalog: '#3d4f7d', users: '#6d4c41', bus: '#2e6b52', registry: '#4d5868',
};
const PALETTE = ['#1a56a8', '#1d6b3f', '#6b3fa0', '#8a4b08', '#0b6e7a', '#5a5f00', '#9c2f6e', '#3d4f7d', '#2e6b52', '#6d4c41'];
let knownServices = null;

function serviceColor(name) {
    if (COLORS[name]) return COLORS[name];
    let x = 0;
    for (const c of String(name)) x = (x * 31 + c.codePointAt(0)) >>> 0;
    return PALETTE[x % PALETTE.length];
}

// The services to filter by: those the gateway routes, plus the gateway.
async function serviceNames() {
    if (!knownServices) {
        try {
            const r = await api.get('/api/v1/admin/services');
            knownServices = ['gateway', ...Object.keys(r.services)].sort();
        } catch {
            return ['gateway', 'orders', 'inventory', 'payments', 'shipping', 'notifications', 'catalog', 'users', 'cart'].sort();
        }
    }
    return knownServices;
}

// A failed read of the collector, explained: 403 (not an administrator),
// 503 (the collector or the log directory is not there), anything else.
function collectorError(e, what) {
    const box = h('div', { class: 'alert', role: 'alert', id: `${what}-error` });
    if (e.status === 403) box.append(`Only administrators can read ${what}; this account is not one (HTTP 403). Sign in as admin@agora.local.`);
    else if (e.status === 503) box.append(`The trace collector (platform/traces) is not reachable, so no ${what} can be shown (HTTP 503). `, h('code', {}, 'agora status'), ' shows whether it runs; the supervisor restarts it.');
    else if (e.status === 400) box.append(`The filters were refused: ${errorText(e)}`);
    else box.append(errorText(e));
    return box;
}

function nanos(v) {
    return typeof v === 'number' ? v : Number(v);
}

function ms(v) {
    if (v === null || v === undefined) return '–';
    if (v < 1) return `${v.toFixed(2)} ms`;
    if (v < 1000) return `${v.toFixed(1)} ms`;
    return `${(v / 1000).toFixed(2)} s`;
}

function timeOf(unixNano) {
    return new Date(nanos(unixNano) / 1e6).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}

function serviceSelect(id, names, current) {
    const opts = [...new Set([...names, ...(current ? [current] : [])])].sort();
    return h('select', { id, name: 'service' }, h('option', { value: '' }, 'All services'),
        opts.map((n) => h('option', { value: n, selected: n === current }, n)));
}

function filterForm(id, fields, onsubmit) {
    const form = h('form', { class: 'filters', id, 'aria-label': 'Filters' }, ...fields, h('button', { type: 'submit' }, 'Apply'));
    form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        if (!form.reportValidity()) return;
        onsubmit(form);
    });
    return form;
}

const field = (label, control) => h('div', { class: 'field' }, h('label', { for: control.id }, label), control);

async function tracesView(params) {
    const seq = routeSeq;
    const service = params.get('service') ?? '';
    const errorsOnly = params.get('error') === 'true';
    const minDuration = params.get('min_duration') ?? '';
    const names = await serviceNames();
    const form = filterForm('trace-filters', [
        field('Service', serviceSelect('tf-service', names, service)),
        field('Min duration (ms)', h('input', { id: 'tf-min', name: 'min_duration', type: 'number', min: 0, max: 86400000, step: 1, inputmode: 'numeric', value: minDuration })),
        h('div', { class: 'field check' }, h('input', { id: 'tf-error', name: 'error', type: 'checkbox', checked: errorsOnly }), h('label', { for: 'tf-error' }, 'Errors only')),
    ], (f) => {
        const q = new URLSearchParams();
        if (f.elements.service.value) q.set('service', f.elements.service.value);
        if (f.elements.min_duration.value) q.set('min_duration', f.elements.min_duration.value);
        if (f.elements.error.checked) q.set('error', 'true');
        const next = `#/traces${String(q) ? `?${q}` : ''}`;
        if (location.hash === next) route();
        else location.hash = next;
    });
    const q = new URLSearchParams({ limit: '50' });
    if (service) q.set('service', service);
    if (minDuration) q.set('min_duration', minDuration);
    if (errorsOnly) q.set('error', 'true');
    let body;
    try {
        const r = await api.get(`/api/v1/traces?${q}`);
        const filtered = service || minDuration || errorsOnly;
        body = r.items.length
            ? h('ol', { class: 'traces', id: 'traces' }, r.items.map((t) => h('li', { 'data-trace': t.trace_id, class: t.error ? 'error' : null },
                h('a', { href: `#/traces/${t.trace_id}` }, h('span', { class: 'svc-name', style: `border-color: ${serviceColor(t.root?.service)}` }, t.root?.service ?? 'unknown service'), ' ', t.root?.name ?? '(no root span)'),
                h('span', { class: 'meta' },
                    h('span', {}, ms(t.duration_ms)), h('span', {}, `${t.spans} span${t.spans === 1 ? '' : 's'}`),
                    t.error ? h('span', { class: 'status down' }, '✕ error') : null,
                    h('span', { class: 'muted' }, timeOf(t.start_unix_nano))))))
            : h('p', { class: 'note', id: 'traces-empty' }, filtered
                ? 'No traces match these filters.'
                : 'No traces yet. Every request through the gateway and every saga step is traced: place an order in the shop, and its trace shows here within a few seconds.');
    } catch (e) {
        body = collectorError(e, 'traces');
    }
    renderFor(seq, h('h1', {}, 'Traces'),
        h('p', { class: 'muted' }, 'The newest traces the collector keeps (platform/traces), newest first. Open one to see its spans as a waterfall.'),
        form, h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh')), body);
}

// The spans in tree order: each span after its parent, children by start
// time; a span whose parent is not in the trace is a root.
function spanTree(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
        if (s.parent_span_id && byId.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
            if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
            children.get(s.parent_span_id).push(s);
        } else {
            roots.push(s);
        }
    }
    const byStart = (a, b) => nanos(a.start_unix_nano) - nanos(b.start_unix_nano);
    const out = [];
    const seen = new Set();
    const walk = (s, depth) => {
        if (seen.has(s.span_id)) return;
        seen.add(s.span_id);
        out.push({ span: s, depth });
        for (const c of (children.get(s.span_id) ?? []).sort(byStart)) walk(c, depth + 1);
    };
    for (const r of roots.sort(byStart)) walk(r, 0);
    // A cycle of parents (malformed input) has no root: show it flat.
    for (const s of spans) if (!seen.has(s.span_id)) walk(s, 0);
    return out;
}

function spanDetail(s, t0) {
    const attrs = Object.entries(s.attributes ?? {});
    const code = s.status?.code ?? 0;
    return h('div', { class: 'span-detail', id: `detail-${s.span_id}` },
        h('h2', {}, `${s.name} `, h('span', { class: 'muted' }, `(${s.service})`)),
        h('dl', {},
            h('dt', {}, 'Status'), h('dd', {}, code === 2 ? h('span', { class: 'status down' }, '✕ error') : code === 1 ? 'ok' : 'unset', s.status?.message ? ` · ${s.status.message}` : ''),
            h('dt', {}, 'Kind'), h('dd', {}, SPAN_KINDS[s.kind] ?? String(s.kind)),
            h('dt', {}, 'Start'), h('dd', {}, `+${ms((nanos(s.start_unix_nano) - t0) / 1e6)} · ${timeOf(s.start_unix_nano)}`),
            h('dt', {}, 'Duration'), h('dd', {}, ms(s.duration_ms)),
            h('dt', {}, 'Span'), h('dd', {}, h('code', {}, s.span_id), s.parent_span_id ? [' parent ', h('code', {}, s.parent_span_id)] : '')),
        h('h3', {}, `Attributes (${attrs.length})`),
        attrs.length
            ? h('dl', { class: 'attrs' }, attrs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]))
            : h('p', { class: 'muted' }, 'None.'),
        h('h3', {}, `Events (${(s.events ?? []).length})`),
        (s.events ?? []).length
            ? h('ul', {}, s.events.map((ev) => h('li', {}, h('strong', {}, ev.name ?? 'event'),
                ev.time_unix_nano !== undefined ? ` at +${ms((nanos(ev.time_unix_nano) - t0) / 1e6)}` : '',
                Object.keys(ev.attributes ?? {}).length ? h('div', { class: 'muted' }, Object.entries(ev.attributes).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')) : null)))
            : h('p', { class: 'muted' }, 'None.'));
}

async function traceView(traceId) {
    const seq = routeSeq;
    let trace;
    try {
        trace = await api.get(`/api/v1/traces/${encodeURIComponent(traceId)}`);
    } catch (e) {
        renderFor(seq, h('h1', {}, 'Trace'), h('p', {}, h('a', { href: '#/traces' }, 'All traces')),
            e.status === 404 ? h('p', { class: 'note', role: 'alert', id: 'trace-missing' }, `No trace ${traceId}: its spans may not have arrived yet (exporters send every second), or it was evicted.`) : collectorError(e, 'traces'));
        return;
    }
    const spans = trace.spans ?? [];
    if (!spans.length) {
        renderFor(seq, h('h1', {}, 'Trace ', h('code', { class: 'trace-id' }, trace.trace_id)), h('p', {}, h('a', { href: '#/traces' }, 'All traces')), h('p', { class: 'note' }, 'This trace has no spans.'));
        return;
    }
    const t0 = Math.min(...spans.map((s) => nanos(s.start_unix_nano)));
    const t1 = Math.max(...spans.map((s) => nanos(s.end_unix_nano)));
    const total = Math.max(1, t1 - t0);
    const services = [...new Set(spans.map((s) => s.service))];
    const errors = spans.filter((s) => s.status?.code === 2).length;
    const pct = (v) => `${Math.min(100, Math.max(0, (v / total) * 100)).toFixed(3)}%`;
    const rows = spanTree(spans).map(({ span: s, depth }) => {
        const err = s.status?.code === 2;
        const start = nanos(s.start_unix_nano) - t0;
        const dur = Math.max(0, nanos(s.end_unix_nano) - nanos(s.start_unix_nano));
        const color = serviceColor(s.service);
        const li = h('li', { 'data-span-id': s.span_id, 'data-depth': depth, 'data-service': s.service, class: err ? 'error' : null, style: `--depth: ${depth}` });
        const button = h('button', { type: 'button', class: 'span-label', 'aria-expanded': 'false' },
            h('span', { class: 'svc-name', style: `border-color: ${color}` }, s.service), ' ',
            h('span', { class: 'span-name' }, s.name), ' ',
            err ? h('span', { class: 'status down' }, '✕ error') : null, ' ',
            h('span', { class: 'muted dur' }, ms(s.duration_ms)));
        button.addEventListener('click', () => {
            const open = li.querySelector('.span-detail');
            if (open) {
                open.remove();
                button.setAttribute('aria-expanded', 'false');
                button.removeAttribute('aria-controls');
            } else {
                li.append(spanDetail(s, t0));
                button.setAttribute('aria-expanded', 'true');
                button.setAttribute('aria-controls', `detail-${s.span_id}`);
            }
        });
        li.append(button,
            h('div', { class: 'track', 'aria-hidden': 'true' },
                h('div', { class: 'bar', style: `left: ${pct(start)}; width: ${pct(dur)}; background: ${err ? 'var(--bad)' : color}` })));
        return li;
    });
    renderFor(seq, h('h1', {}, 'Trace ', h('code', { class: 'trace-id' }, trace.trace_id)),
        h('p', {}, h('a', { href: '#/traces' }, 'All traces'), ' · ', h('a', { href: `#/logs?trace_id=${encodeURIComponent(trace.trace_id)}`, id: 'trace-logs' }, 'logs of this trace')),
        h('p', { id: 'trace-summary' }, `${ms(total / 1e6)} · ${spans.length} spans · ${services.length} services · started ${timeOf(t0)}`,
            errors ? [' · ', h('span', { class: 'status down' }, `✕ ${errors} error span${errors === 1 ? '' : 's'}`)] : ''),
        h('ul', { class: 'legend', 'aria-label': 'Services' }, services.map((n) => h('li', {}, h('span', { class: 'swatch', style: `background: ${serviceColor(n)}` }), n))),
        h('p', { class: 'muted' }, 'Spans in call order, each under its caller; a bar spans its start and end within the trace. Select a span for its attributes, events and status.'),
        h('ol', { class: 'waterfall', id: 'waterfall', 'aria-label': 'Spans' }, rows));
}

const LEVELS = ['debug', 'info', 'warn', 'error'];
const ID_PATTERN = '[A-Za-z0-9._\\-]{1,64}';

async function logsView(params) {
    const seq = routeSeq;
    const cur = Object.fromEntries(['service', 'level', 'trace_id', 'request_id'].map((k) => [k, params.get(k) ?? '']));
    const names = await serviceNames();
    const form = filterForm('log-filters', [
        field('Service', serviceSelect('lf-service', names, cur.service)),
        field('Level (and above)', h('select', { id: 'lf-level', name: 'level' }, h('option', { value: '' }, 'Any'), LEVELS.map((l) => h('option', { value: l, selected: l === cur.level }, l)))),
        field('Trace id', h('input', { id: 'lf-trace', name: 'trace_id', pattern: ID_PATTERN, value: cur.trace_id, autocomplete: 'off', spellcheck: 'false' })),
        field('Request id', h('input', { id: 'lf-request', name: 'request_id', pattern: ID_PATTERN, value: cur.request_id, autocomplete: 'off', spellcheck: 'false' })),
    ], (f) => {
        const q = new URLSearchParams();
        for (const k of Object.keys(cur)) if (f.elements[k].value.trim()) q.set(k, f.elements[k].value.trim());
        const next = `#/logs${String(q) ? `?${q}` : ''}`;
        if (location.hash === next) route();
        else location.hash = next;
    });
    const q = new URLSearchParams({ limit: '200' });
    for (const [k, v] of Object.entries(cur)) if (v) q.set(k, v);
    let body;
    try {
        const r = await api.get(`/api/v1/logs?${q}`);
        const known = new Set(['time', 'level', 'service', 'msg', 'trace_id', 'span_id', 'request_id']);
        body = r.items.length
            ? [r.truncated ? h('p', { class: 'note', id: 'logs-truncated' }, `Only the newest ${r.items.length} matching lines are shown; narrow the filters for older ones.`) : null,
                h('ol', { class: 'log-lines', id: 'log-lines', 'aria-label': 'Log lines, oldest first' }, r.items.map((l) => h('li', { 'data-service': l.service, 'data-level': l.level, 'data-trace': l.trace_id ?? null },
                    h('span', { class: 'muted' }, h('time', { datetime: l.time }, l.time)),
                    h('span', { class: `status level-${l.level}` }, l.level),
                    h('span', { class: 'svc-name', style: `border-color: ${serviceColor(l.service)}` }, l.service),
                    h('span', { class: 'msg' }, l.msg),
                    h('span', { class: 'muted extra' }, Object.entries(l).filter(([k]) => !known.has(k)).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')),
                    l.request_id ? h('span', { class: 'muted' }, `request ${l.request_id}`) : null,
                    l.trace_id ? h('a', { href: `#/traces/${encodeURIComponent(l.trace_id)}`, 'aria-label': `Trace ${l.trace_id}` }, `trace ${l.trace_id.slice(0, 8)}…`) : null)))]
            : h('p', { class: 'note', id: 'logs-empty' }, 'No log lines match these filters.');
    } catch (e) {
        body = collectorError(e, 'logs');
    }
    renderFor(seq, h('h1', {}, 'Logs'),
        h('p', { class: 'muted' }, 'The newest log lines of every program (the supervisor\'s logs/), oldest first. A line\'s trace link opens its waterfall.'),
        cur.trace_id ? h('p', {}, h('a', { href: `#/traces/${encodeURIComponent(cur.trace_id)}` }, 'Back to trace ', h('code', {}, cur.trace_id.slice(0, 8)), '…')) : null,
        form, h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh')), ...[body].flat());
}

async function route() {
    const seq = ++routeSeq;
    clearTimeout(timer);
    const raw = location.hash.replace(/^#/, '') || '/services';
    const [path, query = ''] = raw.split('?');
    const params = new URLSearchParams(query);
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    const tab = parts[0] ?? 'services';
    if (!isAdmin()) {
        renderChrome('signin');
        signInView();
        return;
    }
    renderChrome(tab);
    try {
        if (tab === 'services') await servicesView();
        else if (tab === 'sagas') await sagasView(parts[1]);
        else if (tab === 'bus') await busView(parts[1]);
        else if (tab === 'catalog') await catalogView(params.get('cursor'));
        else if (tab === 'traces' && parts[1]) await traceView(parts[1]);
        else if (tab === 'traces') await tracesView(params);
        else if (tab === 'logs') await logsView(params);
        else renderFor(seq, h('h1', {}, 'Not found'));
    } catch (e) {
        renderFor(seq, h('h1', {}, 'Something went wrong'), h('p', { class: 'alert' }, errorText(e)));
    }
}

api.onSessionChange = () => renderChrome(null);
window.addEventListener('hashchange', () => {
    if (Date.now() - flashedAt > 1000) flash('');
    route();
    main.focus();
});
route();
