// SPDX-License-Identifier: MIT
// The storefront (/shop/): one page, hash routes, talks only to the gateway.
//   #/                 products (paged)          #/c/<slug>     a category
//   #/search?q=...     full-text search          #/p/<id>       a product with availability
//   #/cart             the cart                  #/checkout     address and sandbox card
//   #/orders           order history (live)      #/orders/<id>  an order and its saga steps
//   #/notifications    the inbox                 #/signin, #/register
import { Api, ApiError, h, money, newIdempotencyKey, when } from '/lib/api.js';

const api = new Api('agora.shop.session');
const main = document.getElementById('main');
const flashBox = document.getElementById('flash');
const TERMINAL = new Set(['CONFIRMED', 'CANCELLED', 'REJECTED', 'COMPLETED']);
const POLL_MS = 1000;

// Sandbox cards of the payments service, shown on the checkout page.
const TEST_CARDS = [
    { token: 'tok_visa', label: 'Visa, succeeds' },
    { token: 'tok_chargeDeclined', label: 'Declined by the bank' },
    { token: 'tok_insufficient_funds', label: 'Declined: insufficient funds' },
    { token: 'tok_timeout', label: 'The bank never answers (the order is cancelled after the deadline)' },
];

// What a cancelled or rejected order's machine-readable reason means to a customer.
const REASONS = {
    payment_declined: 'Your card was declined. No money was taken; please try another card.',
    payment_failed: 'The payment could not be completed. No money was taken; please try again.',
    out_of_stock: 'Sorry, some items ran out of stock before we could reserve them. Nothing was charged.',
    shipment_failed: 'We could not arrange delivery, so the order was cancelled and nothing was charged.',
    customer_request: 'You cancelled this order.',
    timeout: 'The payment provider did not answer in time, so the order was cancelled. Nothing was charged.',
};

let pollTimer = null;
let categories = null;
let flashedAt = 0;

function flash(text, kind = 'info') {
    flashedAt = Date.now();
    flashBox.textContent = text;
    flashBox.className = `flash ${kind}`;
    flashBox.hidden = !text;
}

function errorText(e) {
    if (e instanceof ApiError) {
        if (e.status === 422 && Array.isArray(e.problem.errors)) {
            return `${e.message}: ${e.problem.errors.map((x) => `${x.field ?? x.pointer ?? ''} ${x.detail ?? x.message ?? ''}`.trim()).join('; ')}`;
        }
        if (e.status === 429) return 'Too many requests; please wait a moment and try again.';
        if (e.status >= 500) return `The shop is having trouble (${e.message}). Please try again shortly.`;
        return e.message;
    }
    return String(e?.message ?? e);
}

// Each navigation gets a number; a view still loading for an older one
// renders nothing (its answer came after the user moved on).
let routeSeq = 0;

function renderFor(seq, ...nodes) {
    if (seq !== routeSeq) return;
    main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

let navigated = false;

// After a navigation (not on the first load), the focus goes to the new
// page's heading, so keyboard and screen-reader users start there.
function focusMain() {
    if (!navigated) {
        navigated = true;
        return;
    }
    const heading = main.querySelector('h1');
    (heading ?? main).setAttribute('tabindex', '-1');
    (heading ?? main).focus({ preventScroll: false });
}

function renderAccount() {
    const nav = document.getElementById('account-nav');
    if (api.signedIn) {
        nav.replaceChildren(
            h('a', { href: '#/cart' }, 'Cart'),
            h('a', { href: '#/orders' }, 'Orders'),
            h('a', { href: '#/notifications' }, 'Inbox'),
            h('span', { class: 'muted' }, api.session.email),
            h('button', { type: 'button', class: 'secondary', onclick: async () => { await api.logout(); location.hash = '#/'; } }, 'Sign out'),
        );
    } else {
        nav.replaceChildren(h('a', { href: '#/signin' }, 'Sign in'), h('a', { href: '#/register' }, 'Register'));
    }
}
api.onSessionChange = renderAccount;

async function renderCategories(current) {
    if (categories === null) {
        try {
            const r = await api.get('/api/v1/categories', { auth: false });
            categories = r.items ?? r ?? [];
        } catch {
            categories = [];
        }
    }
    const nav = document.getElementById('categories');
    nav.replaceChildren(
        h('a', { href: '#/', 'aria-current': current === '' ? 'page' : null }, 'All'),
        ...categories.map((c) => h('a', { href: `#/c/${encodeURIComponent(c.slug)}`, 'aria-current': current === c.slug ? 'page' : null }, c.name)),
    );
}

function productImage(p) {
    return h('img', { src: p.image_url || '/lib/placeholder.svg', alt: p.name, width: 300, height: 300, loading: 'lazy' });
}

async function availability(ids) {
    if (ids.length === 0) return new Map();
    try {
        const r = await api.get(`/api/v1/stock?product_id=${ids.join(',')}`, { auth: false });
        return new Map(r.items.map((x) => [x.product_id, x.available]));
    } catch {
        return new Map();
    }
}

function stockText(n) {
    if (n === undefined) return 'Availability unknown';
    if (n === 0) return 'Out of stock';
    if (n < 10) return `Only ${n} left`;
    return 'In stock';
}

async function addToCart(productId, quantity = 1) {
    if (!api.signedIn) {
        flash('Please sign in to add items to your cart.');
        location.hash = `#/signin?next=${encodeURIComponent(location.hash)}`;
        return;
    }
    try {
        await api.post('/api/v1/cart/items', { product_id: productId, quantity });
        flash('Added to your cart.');
    } catch (e) {
        flash(errorText(e), 'error');
    }
}

async function listView({ category = '', q = '', cursor = '' }) {
    const seq = routeSeq;
    await renderCategories(q ? null : category);
    const params = new URLSearchParams({ limit: '24' });
    if (category) params.set('category', category);
    if (q) params.set('q', q);
    if (cursor) params.set('cursor', cursor);
    const title = q ? `Results for “${q}”` : category ? (categories.find((c) => c.slug === category)?.name ?? category) : 'All products';
    renderFor(seq, h('h1', {}, title), h('p', { class: 'muted' }, 'Loading…'));
    const page = await api.get(`/api/v1/products?${params}`, { auth: false });
    const stock = await availability(page.items.map((p) => p.id));
    const items = page.items.map((p) =>
        h('li', { class: 'card' },
            h('a', { href: `#/p/${p.id}` }, productImage(p), h('span', {}, p.name)),
            h('span', { class: 'price' }, money(p.price)),
            h('span', { class: 'muted' }, stockText(stock.get(p.id))),
            h('button', { type: 'button', 'aria-label': `Add ${p.name} to cart`, disabled: stock.get(p.id) === 0, onclick: () => addToCart(p.id) }, 'Add to cart')));
    const next = page.next_cursor
        ? h('p', { class: 'pager' }, h('a', { class: 'button secondary', href: `#/${q ? `search?q=${encodeURIComponent(q)}&` : category ? `c/${encodeURIComponent(category)}?` : '?'}cursor=${encodeURIComponent(page.next_cursor)}` }, 'More products'))
        : null;
    renderFor(seq, h('h1', {}, title),
        items.length ? h('ul', { class: 'grid', 'aria-label': 'Products' }, items) : h('p', {}, q ? 'No product matches your search.' : 'No products here yet.'),
        next);
}

async function productView(id) {
    const seq = routeSeq;
    await renderCategories(null);
    const p = await api.get(`/api/v1/products/${encodeURIComponent(id)}`, { auth: false });
    const stock = await availability([p.id]);
    const avail = stock.get(p.id);
    const qty = h('input', { id: 'qty', type: 'number', min: 1, max: Math.max(1, Math.min(avail ?? 1000, 1000)), value: 1, inputmode: 'numeric' });
    renderFor(seq, h('article', { class: 'product' },
        productImage(p),
        h('div', {},
            h('h1', {}, p.name),
            h('p', { class: 'price' }, money(p.price)),
            h('p', { id: 'availability' }, stockText(avail), avail ? h('span', { class: 'muted' }, ` (${avail} available)`) : null),
            h('p', {}, p.description),
            h('p', { class: 'muted' }, `SKU ${p.sku}`, p.category ? ` · ${p.category}` : ''),
            h('div', { class: 'row' },
                h('label', { for: 'qty' }, 'Quantity'), qty,
                h('button', { type: 'button', disabled: avail === 0, onclick: () => addToCart(p.id, Number(qty.value) || 1) }, 'Add to cart')))));
}

function requireSignIn() {
    if (api.signedIn) return true;
    location.hash = `#/signin?next=${encodeURIComponent(location.hash)}`;
    return false;
}

async function cartView() {
    const seq = routeSeq;
    if (!requireSignIn()) return;
    const cart = await api.get('/api/v1/cart');
    if (cart.items.length === 0) {
        renderFor(seq, h('h1', {}, 'Your cart'), h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse products')));
        return;
    }
    const stock = await availability(cart.items.map((i) => i.product_id));
    const rows = cart.items.map((i) => {
        const id = `qty-${i.product_id}`;
        const input = h('input', { id, type: 'number', min: 1, max: 1000, value: i.quantity, inputmode: 'numeric', size: 4 });
        const avail = stock.get(i.product_id);
        const warn = !i.available ? 'No longer sold' : avail !== undefined && avail < i.quantity ? (avail === 0 ? 'Out of stock' : `Only ${avail} left`) : '';
        return h('tr', {},
            h('td', {}, h('a', { href: `#/p/${i.product_id}` }, i.name ?? i.sku ?? i.product_id), warn ? h('div', { class: 'alert' }, warn) : null),
            h('td', {}, money(i.unit_price)),
            h('td', {}, h('label', { for: id, class: 'visually-hidden' }, `Quantity of ${i.name ?? i.sku}`), input,
                h('button', { type: 'button', class: 'secondary', onclick: async () => {
                    try {
                        await api.request('PATCH', `/api/v1/cart/items/${i.product_id}`, { body: { quantity: Number(input.value) } });
                        cartView();
                    } catch (e) { flash(errorText(e), 'error'); }
                } }, 'Update')),
            h('td', {}, money(i.line_total)),
            h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${i.name ?? i.sku}`, onclick: async () => {
                try {
                    await api.request('DELETE', `/api/v1/cart/items/${i.product_id}`);
                    cartView();
                } catch (e) { flash(errorText(e), 'error'); }
            } }, 'Remove')));
    });
    renderFor(seq, h('h1', {}, 'Your cart'),
        h('div', { class: 'table-wrap' }, h('table', {},
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col' }, 'Price'), h('th', { scope: 'col' }, 'Quantity'), h('th', { scope: 'col' }, 'Total'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
            h('tbody', { id: 'cart-items' }, rows))),
        h('p', { class: 'price', id: 'cart-total' }, `Total: ${money(cart.total)}`),
        h('p', {}, h('a', { class: 'button', href: '#/checkout' }, 'Checkout')));
}

function field(id, label, attrs = {}) {
    return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

async function checkoutView() {
    const seq = routeSeq;
    if (!requireSignIn()) return;
    const cart = await api.get('/api/v1/cart');
    if (cart.items.length === 0) {
        renderFor(seq, h('h1', {}, 'Checkout'), h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse products')));
        return;
    }
    const cards = h('fieldset', {}, h('legend', {}, 'Payment (sandbox test cards)'),
        ...TEST_CARDS.map((c, i) => h('div', { class: 'row' },
            h('input', { type: 'radio', name: 'card', id: `card-${c.token}`, value: c.token, checked: i === 0 }),
            h('label', { for: `card-${c.token}` }, h('code', {}, c.token), ` ${c.label}`))));
    const err = h('div', { role: 'alert', id: 'checkout-error' });
    const form = h('form', { class: 'form', novalidate: false },
        h('p', {}, `${cart.items.length} item(s), total `, h('strong', {}, money(cart.total))),
        h('fieldset', {}, h('legend', {}, 'Shipping address'),
            field('name', 'Full name', { required: true, autocomplete: 'name', maxlength: 100 }),
            field('line1', 'Address', { required: true, autocomplete: 'address-line1', maxlength: 200 }),
            field('city', 'City', { required: true, autocomplete: 'address-level2', maxlength: 100 }),
            field('postal_code', 'Postal code', { required: true, autocomplete: 'postal-code', maxlength: 20 }),
            field('country', 'Country code (2 letters)', { required: true, autocomplete: 'country', pattern: '[A-Za-z]{2}', maxlength: 2, value: 'GB' })),
        cards,
        err,
        h('button', { type: 'submit', id: 'place-order' }, 'Place order'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.replaceChildren();
        if (!form.reportValidity()) return;
        const v = (n) => form.elements[n].value.trim();
        const button = form.querySelector('#place-order');
        button.disabled = true;
        try {
            const order = await api.post('/api/v1/orders', {
                payment_token: form.elements.card.value,
                shipping_address: { name: v('name'), line1: v('line1'), city: v('city'), postal_code: v('postal_code'), country: v('country').toUpperCase() },
            }, { headers: { 'idempotency-key': newIdempotencyKey() } });
            flash('Thank you! Your order was placed; its status updates below.');
            location.hash = `#/orders/${order.id}`;
        } catch (e) {
            err.replaceChildren(h('p', { class: 'alert' }, errorText(e)));
            button.disabled = false;
        }
    });
    renderFor(seq, h('h1', {}, 'Checkout'), form);
}

function statusBadge(s) {
    return h('span', { class: `status ${s}` }, s.replace('_', ' '));
}

function reasonText(o) {
    if (!o.cancel_reason) return null;
    return h('p', { class: 'alert', 'data-reason': o.cancel_reason }, REASONS[o.cancel_reason] ?? `Cancelled: ${o.cancel_reason}`);
}

// Still moving: the saga runs, a confirmed order's cancel waits for
// shipping's answer, or a cancelled order's money is still being voided or
// refunded.
function settling(o) {
    return !TERMINAL.has(o.status) || o.cancel_status === 'requested' ||
        (o.status === 'CANCELLED' && (o.payment_status === 'paid' || o.payment_status === 'authorized'));
}

function schedule(fn) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(fn, POLL_MS);
}

async function ordersView() {
    const seq = routeSeq;
    if (!requireSignIn()) return;
    const route = location.hash;
    const table = h('tbody');
    const live = h('p', { class: 'visually-hidden', 'aria-live': 'polite', id: 'orders-live' });
    renderFor(seq, h('h1', {}, 'Your orders'),
        h('div', { class: 'table-wrap' }, h('table', { id: 'orders' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Order'), h('th', { scope: 'col' }, 'Placed'), h('th', { scope: 'col' }, 'Total'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Payment'))),
            table)), live);
    const seen = new Map();
    const refresh = async () => {
        if (location.hash !== route) return;
        let page;
        try {
            page = await api.get('/api/v1/orders?limit=50');
        } catch (e) {
            flash(errorText(e), 'error');
            schedule(refresh);
            return;
        }
        if (location.hash !== route) return;
        table.replaceChildren(...page.items.map((o) => h('tr', { 'data-order': o.id },
            h('td', {}, h('a', { href: `#/orders/${o.id}` }, o.id.slice(-12))),
            h('td', {}, when(o.created_at)),
            h('td', {}, money(o.total)),
            h('td', {}, statusBadge(o.status), reasonText(o)),
            h('td', {}, o.payment_status))));
        if (page.items.length === 0) table.replaceChildren(h('tr', {}, h('td', { colspan: 5 }, 'No orders yet.')));
        for (const o of page.items) {
            if (seen.has(o.id) && seen.get(o.id) !== o.status) live.textContent = `Order ${o.id.slice(-12)} is now ${o.status}`;
            seen.set(o.id, o.status);
        }
        if (page.items.some(settling)) schedule(refresh);
    };
    await refresh();
}

async function orderView(id) {
    const seq = routeSeq;
    if (!requireSignIn()) return;
    const route = location.hash;
    const box = h('div', { 'aria-live': 'polite', id: 'order-detail' });
    renderFor(seq, h('h1', {}, 'Order'), box);
    const refresh = async () => {
        if (location.hash !== route) return;
        let o;
        try {
            o = await api.get(`/api/v1/orders/${encodeURIComponent(id)}`);
        } catch (e) {
            box.replaceChildren(h('p', { class: 'alert' }, errorText(e)));
            if (e.status !== 404) schedule(refresh);
            return;
        }
        if (location.hash !== route) return;
        const cancellable = !TERMINAL.has(o.status) || (o.status === 'CONFIRMED' && !o.shipped && !o.cancel_status);
        box.replaceChildren(...[
            h('p', {}, 'Status: ', h('span', { id: 'order-status' }, statusBadge(o.status)), ' · payment ', h('span', { id: 'payment-status' }, o.payment_status)),
            reasonText(o),
            o.cancel_status === 'requested' ? h('p', { class: 'muted', 'data-cancel': 'requested' }, 'Cancelling: waiting for the warehouse to stop the shipment…') : null,
            o.cancel_status === 'refused' ? h('p', { class: 'alert', 'data-cancel': 'refused' }, 'This order had already left the warehouse, so it could not be cancelled.') : null,
            h('p', { class: 'muted' }, `Order ${o.id}, placed ${when(o.created_at)}`),
            h('div', { class: 'table-wrap' }, h('table', {},
                h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Item'), h('th', { scope: 'col' }, 'Quantity'), h('th', { scope: 'col' }, 'Price'))),
                h('tbody', {}, o.lines.map((l) => h('tr', {}, h('td', {}, h('a', { href: `#/p/${l.product_id}` }, l.sku)), h('td', {}, l.quantity), h('td', {}, money(l.unit_price))))))),
            h('p', { class: 'price' }, `Total ${money(o.total)}`, o.refunded ? ` · refunded ${money(o.refunded)}` : ''),
            h('p', {}, `Ship to ${o.shipping_address.name}, ${o.shipping_address.line1}, ${o.shipping_address.city} ${o.shipping_address.postal_code}, ${o.shipping_address.country}`),
            h('h2', {}, 'Steps'),
            o.steps.length
                ? h('ol', { class: 'steps' }, o.steps.map((s) => h('li', {}, `${s.step} (attempt ${s.attempt}): ${s.outcome ?? 'waiting for the reply…'}`, h('span', { class: 'muted' }, ` ${when(s.outcome_at ?? s.sent_at)}`))))
                : h('p', { class: 'muted' }, 'No steps yet.'),
            cancellable ? h('button', { type: 'button', class: 'danger', onclick: async (ev) => {
                ev.target.disabled = true;
                try {
                    const r = await api.post(`/api/v1/orders/${o.id}/cancel`);
                    flash(r?.cancel_status === 'requested' ? 'Cancellation requested.' : 'The order was cancelled.');
                } catch (e) { flash(errorText(e), 'error'); }
                refresh();
            } }, 'Cancel order') : null,
            h('p', {}, h('a', { href: '#/orders' }, 'All orders'))].filter(Boolean));
        if (settling(o)) schedule(refresh);
    };
    await refresh();
}

async function notificationsView() {
    const seq = routeSeq;
    if (!requireSignIn()) return;
    const page = await api.get('/api/v1/notifications?limit=50');
    renderFor(seq, h('h1', {}, 'Inbox'),
        page.items.length
            ? h('ul', { class: 'plain' }, page.items.map((n) => h('li', {}, h('details', {}, h('summary', {}, h('strong', {}, n.subject), h('span', { class: 'muted' }, ` ${when(n.created_at)}`)), h('pre', { style: 'white-space: pre-wrap' }, n.body)))))
            : h('p', {}, 'No messages yet.'));
}

function authView(kind, params) {
    const seq = routeSeq;
    const register = kind === 'register';
    const err = h('div', { role: 'alert' });
    const form = h('form', { class: 'form' },
        register ? field('reg-name', 'Name', { required: true, autocomplete: 'name' }) : null,
        field('email', 'E-mail', { type: 'email', required: true, autocomplete: 'email' }),
        field('password', register ? 'Password (at least 12 characters)' : 'Password', { type: 'password', required: true, autocomplete: register ? 'new-password' : 'current-password', minlength: register ? 12 : null }),
        err,
        h('button', { type: 'submit' }, register ? 'Create account' : 'Sign in'));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.replaceChildren();
        if (!form.reportValidity()) return;
        const email = form.elements.email.value.trim();
        const password = form.elements.password.value;
        try {
            if (register) await api.post('/api/v1/users', { email, password, name: form.elements['reg-name'].value.trim() }, { auth: false });
            await api.login(email, password);
            flash(register ? 'Welcome! Your account is ready.' : 'Signed in.');
            location.hash = params.get('next') || '#/';
        } catch (e) {
            err.replaceChildren(h('p', { class: 'alert' }, e.status === 401 ? 'Wrong e-mail or password.' : errorText(e)));
        }
    });
    renderFor(seq, h('h1', {}, register ? 'Create an account' : 'Sign in'), form,
        h('p', {}, register ? h('a', { href: '#/signin' }, 'Already have an account? Sign in') : h('a', { href: '#/register' }, 'New here? Create an account')));
}

async function route() {
    const seq = ++routeSeq;
    clearTimeout(pollTimer);
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query = ''] = raw.split('?');
    const params = new URLSearchParams(query);
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'search') document.getElementById('q').value = '';
    try {
        if (parts.length === 0) await listView({ cursor: params.get('cursor') ?? '' });
        else if (parts[0] === 'c') await listView({ category: parts[1], cursor: params.get('cursor') ?? '' });
        else if (parts[0] === 'search') await listView({ q: params.get('q') ?? '', cursor: params.get('cursor') ?? '' });
        else if (parts[0] === 'p') await productView(parts[1]);
        else if (parts[0] === 'cart') await cartView();
        else if (parts[0] === 'checkout') await checkoutView();
        else if (parts[0] === 'orders' && parts[1]) await orderView(parts[1]);
        else if (parts[0] === 'orders') await ordersView();
        else if (parts[0] === 'notifications') await notificationsView();
        else if (parts[0] === 'signin') authView('signin', params);
        else if (parts[0] === 'register') authView('register', params);
        else renderFor(seq, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the shop')));
    } catch (e) {
        renderFor(seq, h('h1', {}, 'Something went wrong'), h('p', { class: 'alert' }, errorText(e)));
    }
    focusMain();
}

document.getElementById('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = document.getElementById('q').value.trim();
    location.hash = q ? `#/search?q=${encodeURIComponent(q)}` : '#/';
});
window.addEventListener('hashchange', () => {
    // A message set just before this navigation (order placed) stays.
    if (Date.now() - flashedAt > 1000) flash('');
    route();
});
renderAccount();
route();
