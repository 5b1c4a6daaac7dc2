// SPDX-License-Identifier: MIT
// The operations console (/console/), for administrators: hash routes
//   #/services  the service map: health, breaker, instances, request and
//               error rate, latency (charts from the gateway's counters)
//   #/sagas     sagas in flight and failed, with each order's steps
//   #/bus       subscriptions with backlog, dead letters: inspect, replay
//   #/catalog   products and their stock: create, set and adjust stock
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
