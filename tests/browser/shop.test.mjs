// SPDX-License-Identifier: MIT
// Browser test: the storefront (/shop/) and the console (/console/) in
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core),
// against one whole shop started by `agora up`. A customer registers,
// searches, buys with tok_visa and watches the order confirm without a
// reload; a declined card; a phone-sized screen; an administrator watches a
// killed service go down and come back, and replays a dead letter. Every
// page is checked for labels, alt texts and a focus order that leaves the
// page, and screenshotted into <build>/browser-artifacts/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { buildDir, cleanup, waitFor } from '../lib/proc.mjs';
import { identityHeader, OPERATOR } from '../lib/identity.mjs';
import { startShop } from '../lib/shop.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.AGORA_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(buildDir(), 'browser-artifacts');
const PASSWORD = 'a long enough passphrase';
const T = { timeout: 60_000 };
const WAIT = 15_000;

// Runs in the page: what an accessibility review checks first. Every form
// control has a label, every image an alt text, and tabbing from the top
// moves through every visible focusable element and then out of the page
// (no trap).
async function checkAccessibility(page, name) {
    const found = await page.evaluate(() => {
        const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
        const unlabelled = [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden' && visible(el))
            .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
            .map((el) => el.outerHTML.slice(0, 120));
        const noAlt = [...document.querySelectorAll('img')].filter((el) => !el.hasAttribute('alt')).map((el) => el.outerHTML.slice(0, 120));
        const focusable = [...document.querySelectorAll('a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])')]
            .filter(visible).length;
        return { unlabelled, noAlt, focusable };
    });
    assert.deepEqual(found.unlabelled, [], `${name}: form controls without a label`);
    assert.deepEqual(found.noAlt, [], `${name}: images without alt`);
    // Tab from the top of the document: focus must move on each press and
    // leave the page after at most every focusable element (radio groups
    // count once, so fewer presses may do).
    await page.evaluate(() => {
        document.activeElement?.blur();
        window.scrollTo(0, 0);
    });
    const seen = new Set();
    let left = false;
    for (let i = 0; i < found.focusable + 3; i++) {
        await page.keyboard.press('Tab');
        const id = await page.evaluate(() => {
            const el = document.activeElement;
            if (el === null || el === document.body || el === document.documentElement) return null;
            if (!el.dataset.tabProbe) el.dataset.tabProbe = String(Math.random());
            return el.dataset.tabProbe;
        });
        if (id === null) {
            left = true;
            break;
        }
        assert.ok(!seen.has(id), `${name}: tabbing came back to an element it had passed (a focus trap)`);
        seen.add(id);
    }
    assert.ok(left, `${name}: tabbing ${found.focusable + 3} times never left the page (a focus trap)`);
    assert.ok(seen.size > 0, `${name}: nothing takes the keyboard focus`);
}

async function shot(page, name) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

describe('storefront and console in a browser', () => {
    let shop;
    let browser;
    let admin; // admin access token, for set-up through the API
    const products = [];
    const word = `zyx${crypto.randomBytes(3).toString('hex')}`;
    const customer = { email: `browser-${crypto.randomUUID()}@example.com`, name: 'Bea Browser' };

    async function api(method, p, { token, json, headers = {} } = {}) {
        const h = { ...headers };
        if (token) h.authorization = `Bearer ${token}`;
        if (json !== undefined) h['content-type'] = 'application/json';
        const r = await fetch(shop.gw + p, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
        const text = await r.text();
        return { status: r.status, json: text ? JSON.parse(text) : null };
    }

    before(async () => {
        assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (scripts/bootstrap installs Debian's chromium)`);
        fs.rmSync(ARTIFACTS, { recursive: true, force: true });
        [shop, browser] = await Promise.all([
            startShop(),
            chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] }),
        ]);
        const login = await api('POST', '/api/v1/auth/login', { json: { email: 'admin@agora.local', password: shop.adminPassword } });
        assert.equal(login.status, 200);
        admin = login.json.access_token;
        // Two products of our own, with a word nothing else has, and stock.
        for (const [i, price] of [[1, 1250], [2, 899]]) {
            const r = await api('POST', '/api/v1/products', {
                token: admin,
                json: { sku: `BR-${word}-${i}`, name: `${word} mug ${i}`, description: `A browser test mug (${word})`, price: { amount: price, currency: 'EUR' } },
            });
            assert.equal(r.status, 201, JSON.stringify(r.json));
            products.push(r.json);
        }
        for (const p of products) {
            let stock;
            await waitFor(async () => {
                stock = await api('GET', `/api/v1/stock/${p.id}`, { token: admin });
                return stock.status === 200;
            }, { timeoutMs: WAIT, intervalMs: 100, message: 'the stock record of a new product' });
            const set = await api('PUT', `/api/v1/stock/${p.id}`, { token: admin, json: { on_hand: 50, reason: 'browser test', version: stock.json.version } });
            assert.equal(set.status, 200, JSON.stringify(set.json));
        }
    });

    after(async () => {
        await browser?.close();
        if (shop && (await shop.stop()) === null) await shop.kill();
        cleanup();
    });

    async function newPage(viewport = { width: 1280, height: 900 }) {
        const context = await browser.newContext({ viewport });
        const page = await context.newPage();
        page.setDefaultTimeout(WAIT);
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        page.errors = errors;
        return page;
    }

    async function signIn(page) {
        await page.goto(`${shop.gw}/shop/#/signin`);
        await page.getByLabel('E-mail').fill(customer.email);
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('button', { name: 'Sign out' }).waitFor();
    }

    async function checkout(page, token) {
        await page.goto(`${shop.gw}/shop/#/checkout`);
        await page.getByLabel('Full name').fill(customer.name);
        await page.getByLabel('Address').fill('1 Main St');
        await page.getByLabel('City').fill('Leeds');
        await page.getByLabel('Postal code').fill('LS1 1AA');
        await page.locator(`#card-${token}`).check();
        await page.getByRole('button', { name: 'Place order' }).click();
        await page.waitForURL(/#\/orders\/[0-9a-f-]{36}$/);
        return page.url().split('/').pop();
    }

    it('a new customer registers, searches, adds two products, pays with tok_visa and sees CONFIRMED without reloading', T, async () => {
        const page = await newPage();
        await page.goto(`${shop.gw}/shop/`);
        await page.getByRole('heading', { name: 'All products' }).waitFor();
        await shot(page, 'shop-home');
        await checkAccessibility(page, 'home');

        await page.getByRole('link', { name: 'Register' }).click();
        await page.getByLabel('Name').fill(customer.name);
        await page.getByLabel('E-mail').fill(customer.email);
        await page.getByLabel(/^Password/).fill(PASSWORD);
        await checkAccessibility(page, 'register');
        await page.getByRole('button', { name: 'Create account' }).click();
        await page.getByRole('button', { name: 'Sign out' }).waitFor();

        await page.getByLabel('Search products').fill(word);
        await page.getByLabel('Search products').press('Enter');
        await page.getByRole('heading', { name: `Results for “${word}”` }).waitFor();
        await assert.doesNotReject(page.getByRole('button', { name: `Add ${word} mug 1 to cart` }).waitFor());
        assert.equal(await page.locator('ul.grid > li').count(), 2, 'the search finds exactly our two products');
        await shot(page, 'shop-search');
        await page.getByRole('button', { name: `Add ${word} mug 1 to cart` }).click();
        await page.getByText('Added to your cart.').waitFor();

        // The second from its product page, with its availability.
        await page.getByRole('link', { name: `${word} mug 2` }).click();
        await page.getByRole('heading', { name: `${word} mug 2` }).waitFor();
        assert.match(await page.locator('#availability').textContent(), /50 available/);
        await shot(page, 'shop-product');
        await checkAccessibility(page, 'product');
        await page.getByLabel('Quantity').fill('2');
        await page.getByRole('button', { name: 'Add to cart' }).click();
        await page.getByText('Added to your cart.').waitFor();

        await page.getByRole('link', { name: 'Cart' }).click();
        await page.getByRole('heading', { name: 'Your cart' }).waitFor();
        assert.match(await page.locator('#cart-total').textContent(), /30\.48/); // 12.50 + 2 x 8.99
        await shot(page, 'shop-cart');
        await checkAccessibility(page, 'cart');

        await page.getByRole('link', { name: 'Checkout' }).click();
        await page.getByRole('heading', { name: 'Checkout' }).waitFor();
        await checkAccessibility(page, 'checkout');
        for (const card of ['tok_visa', 'tok_chargeDeclined', 'tok_insufficient_funds', 'tok_timeout']) {
            assert.ok(await page.locator(`#card-${card}`).isVisible(), `test card ${card} shown`);
        }
        await shot(page, 'shop-checkout');
        await page.getByLabel('Full name').fill(customer.name);
        await page.getByLabel('Address').fill('1 Main St');
        await page.getByLabel('City').fill('Leeds');
        await page.getByLabel('Postal code').fill('LS1 1AA');
        await page.getByRole('button', { name: 'Place order' }).click();
        await page.waitForURL(/#\/orders\/[0-9a-f-]{36}$/);
        // The page polls: no reload, the status changes in place.
        const loads = await page.evaluate(() => performance.getEntriesByType('navigation').length);
        await page.locator('#order-status .status.CONFIRMED').waitFor();
        assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), loads);
        assert.equal(await page.locator('#payment-status').textContent(), 'paid');
        assert.ok(await page.locator('ol.steps li').count() >= 3, 'the saga steps are listed');
        await shot(page, 'shop-order-confirmed');
        await checkAccessibility(page, 'order');

        await page.getByRole('link', { name: 'All orders' }).click();
        await page.locator('#orders .status.CONFIRMED').first().waitFor();
        await shot(page, 'shop-orders');
        await page.getByRole('link', { name: 'Inbox' }).click();
        await page.getByRole('heading', { name: 'Inbox' }).waitFor();
        await page.locator('main details').first().waitFor();
        await checkAccessibility(page, 'inbox');
        await shot(page, 'shop-inbox');
        assert.deepEqual(page.errors, []);
        await page.context().close();
    });

    it('a declined card shows its message and the order CANCELLED; an out-of-stock item is warned of and its order REJECTED with the reason', T, async () => {
        const page = await newPage();
        await signIn(page);
        await page.goto(`${shop.gw}/shop/#/p/${products[0].id}`);
        await page.getByRole('button', { name: 'Add to cart' }).click();
        await page.getByText('Added to your cart.').waitFor();
        await checkout(page, 'tok_chargeDeclined');
        await page.locator('#order-status .status.CANCELLED').waitFor();
        const reason = page.locator('[data-reason="payment_declined"]');
        await reason.waitFor();
        assert.match(await reason.textContent(), /card was declined/);
        assert.notEqual(await page.locator('#payment-status').textContent(), 'paid');
        assert.doesNotMatch(await page.locator('#order-detail').textContent(), /\bnull\b|undefined/);
        await shot(page, 'shop-order-declined');

        // Out of stock: one unit left, two wanted. The cart warns; an order
        // placed anyway is rejected with its reason explained.
        const p = products[1];
        const stock = await api('GET', `/api/v1/stock/${p.id}`, { token: admin });
        assert.equal((await api('PUT', `/api/v1/stock/${p.id}`, { token: admin, json: { on_hand: stock.json.reserved + 1, reason: 'browser test', version: stock.json.version } })).status, 200);
        await page.goto(`${shop.gw}/shop/#/p/${p.id}`);
        await page.locator('#availability', { hasText: 'Only 1 left' }).waitFor();
        await page.goto(`${shop.gw}/shop/#/cart`);
        await page.getByRole('heading', { name: 'Your cart' }).waitFor();
        assert.equal(await page.locator('#cart-items tr').count(), 0, 'the cart was emptied by the checkout');
        await api('POST', '/api/v1/cart/items', { token: await page.evaluate(() => JSON.parse(localStorage.getItem('agora.shop.session')).access_token), json: { product_id: p.id, quantity: 2 } });
        await page.reload();
        await page.locator('.alert', { hasText: 'Only 1 left' }).waitFor();
        await checkout(page, 'tok_visa');
        await page.locator('#order-status .status.REJECTED').waitFor();
        assert.match(await page.locator('[data-reason="out_of_stock"]').textContent(), /ran out of stock/);
        await shot(page, 'shop-order-out-of-stock');
        assert.equal((await api('PUT', `/api/v1/stock/${p.id}`, { token: admin, json: { on_hand: 50, reason: 'browser test', version: stock.json.version + 1 } })).status, 200);
        assert.deepEqual(page.errors, []);
        await page.context().close();
    });

    it('on a phone-sized screen (390x844) nothing scrolls sideways and checkout works; a refused access token is refreshed silently; the customer cancels', T, async () => {
        const page = await newPage({ width: 390, height: 844 });
        await signIn(page);
        const noSideScroll = async (what) => {
            const { sw, cw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
            assert.ok(sw <= cw, `${what}: the page is ${sw}px wide on a ${cw}px screen`);
        };
        await page.goto(`${shop.gw}/shop/#/search?q=${word}`);
        await page.locator('ul.grid > li').first().waitFor();
        await noSideScroll('search');
        await shot(page, 'phone-search');
        await page.getByRole('button', { name: `Add ${word} mug 2 to cart` }).click();
        await page.getByText('Added to your cart.').waitFor();
        await page.goto(`${shop.gw}/shop/#/cart`);
        await page.getByRole('heading', { name: 'Your cart' }).waitFor();
        await noSideScroll('cart');
        const id = await checkout(page, 'tok_visa');
        await noSideScroll('order');
        await page.locator('#order-status .status.CONFIRMED').waitFor();
        await shot(page, 'phone-order');
        const r = await api('GET', `/api/v1/orders/${id}`, { token: admin });
        assert.equal(r.json.status, 'CONFIRMED');

        // An access token the gateway refuses (here: a broken signature, as
        // an expired one would be) is replaced silently with the refresh
        // token, and the page carries on.
        const before = await page.evaluate(() => {
            const s = JSON.parse(localStorage.getItem('agora.shop.session'));
            const old = s.refresh_token;
            s.access_token = s.access_token.slice(0, -4) + (s.access_token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
            localStorage.setItem('agora.shop.session', JSON.stringify(s));
            return old;
        });
        await page.reload();
        await page.getByRole('button', { name: 'Cancel order' }).click();
        await page.locator('#order-status .status.CANCELLED').waitFor();
        assert.match(await page.locator('[data-reason="customer_request"]').textContent(), /You cancelled this order/);
        assert.notEqual(await page.evaluate(() => JSON.parse(localStorage.getItem('agora.shop.session')).refresh_token), before, 'the session was refreshed');
        await page.locator('#payment-status', { hasText: 'refunded' }).waitFor();
        assert.equal((await api('GET', `/api/v1/orders/${id}`, { token: admin })).json.status, 'CANCELLED');
        await page.context().close();
    });

    async function consolePage() {
        const page = await newPage();
        await page.goto(`${shop.gw}/console/`);
        await page.getByLabel('E-mail').fill('admin@agora.local');
        await page.getByLabel('Password').fill(shop.adminPassword);
        await checkAccessibility(page, 'console sign-in');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('heading', { name: 'Services' }).waitFor();
        return page;
    }

    it('an admin sees every service healthy, kills one and watches it go down and come back', { timeout: 90_000 }, async () => {
        const page = await consolePage();
        await page.locator('#services-summary', { hasText: /^All \d+ services healthy$/ }).waitFor({ timeout: 30_000 });
        // Traffic through the gateway shows as the catalog's request rate.
        await waitFor(async () => {
            await Promise.all(Array.from({ length: 5 }, () => fetch(`${shop.gw}/api/v1/products?limit=2`).then((r) => r.arrayBuffer())));
            return page.locator('[data-service="catalog"] .metrics', { hasText: /[1-9][\d.]* req\/s/ }).isVisible();
        }, { timeoutMs: WAIT, intervalMs: 100, message: 'a request rate above 0 for the catalog' });
        await shot(page, 'console-services');
        await checkAccessibility(page, 'console services');

        // SIGKILL: the supervisor restarts at once (50 ms) a process that
        // ran stably, then backs off (500 ms, doubling) one that keeps
        // crashing. Kill until the console has shown the outage (at most
        // a few times), then wait for the service to come back by itself.
        const victim = 'catalog';
        const card = page.locator(`[data-service="${victim}"]`);
        const first = shop.pidOf(victim);
        assert.ok(first > 0, `${victim} runs`);
        let sawDown = false;
        const watch = page.waitForFunction((name) => {
            const el = document.querySelector(`[data-service="${name}"]`);
            if (el?.dataset.status === 'down') window.__sawDown = true;
            return window.__sawDown === true;
        }, victim, { polling: 50, timeout: 40_000 }).then(() => { sawDown = true; });
        let pid = first;
        for (let kills = 0; kills < 6 && !sawDown; kills++) {
            process.kill(pid, 'SIGKILL');
            await waitFor(() => sawDown || (shop.pidOf(victim) !== 0 && shop.pidOf(victim) !== pid), { timeoutMs: 40_000, intervalMs: 20, message: `${victim} restarted or shown down` });
            if (sawDown) break;
            pid = shop.pidOf(victim);
            await waitFor(() => sawDown, { timeoutMs: 1500, intervalMs: 20, message: 'down shown' }).catch(() => {});
        }
        await watch;
        assert.ok(sawDown, `the console showed ${victim} down`);
        await shot(page, 'console-service-down');
        await page.locator(`[data-service="${victim}"][data-status="ok"]`).waitFor({ timeout: 45_000 });
        await page.locator('#services-summary', { hasText: /^All \d+ services healthy$/ }).waitFor({ timeout: 30_000 });
        assert.notEqual(shop.pidOf(victim), first, 'the supervisor started a new process');
        assert.match(await card.textContent(), /restarts seen [1-9]/);
        await shot(page, 'console-service-back');

        await page.getByRole('link', { name: 'Sagas' }).click();
        await page.getByRole('heading', { name: 'Sagas' }).waitFor();
        await checkAccessibility(page, 'console sagas');
        // One order's saga, step by step (the customer's first order).
        const orders = await api('GET', '/api/v1/orders?limit=50', { token: (await api('POST', '/api/v1/auth/login', { json: { email: customer.email, password: PASSWORD } })).json.access_token });
        const confirmed = orders.json.items.find((o) => o.status === 'CONFIRMED');
        assert.ok(confirmed, 'the customer has a confirmed order');
        await page.goto(`${shop.gw}/console/#/sagas/${confirmed.id}`);
        await page.getByRole('heading', { name: `Order ${confirmed.id}` }).waitFor();
        for (const step of ['reserve', 'authorize', 'ship', 'capture', 'commit']) {
            assert.ok(await page.locator('#saga-detail td', { hasText: new RegExp(`^${step}$`) }).count() >= 1, `step ${step} listed`);
        }
        await shot(page, 'console-saga');

        // Stock administration: adjust the first product's stock by +3.
        await page.getByRole('link', { name: 'Products and stock' }).click();
        await page.getByRole('heading', { name: 'Products and stock' }).waitFor();
        await checkAccessibility(page, 'console catalog');
        await shot(page, 'console-catalog');
        const row = page.locator('tr[data-product]').first();
        const productId = await row.getAttribute('data-product');
        const onHand = (await api('GET', `/api/v1/stock/${productId}`, { token: admin })).json.on_hand;
        await row.getByLabel('Adjust by').fill('3');
        await row.getByRole('button', { name: 'Adjust' }).click();
        await page.getByText(/adjusted by 3\.$/).waitFor();
        assert.equal((await api('GET', `/api/v1/stock/${productId}`, { token: admin })).json.on_hand, onHand + 3);
        assert.deepEqual(page.errors, []);
        await page.context().close();
    });

    it('an admin inspects a dead letter and replays it', T, async () => {
        // A real dead letter: a subscription of our own that allows one
        // attempt, a product.created delivered to it and rejected (nack).
        const bus = shop.url('bus');
        const ident = { 'x-agora-identity': identityHeader({ ...OPERATOR, key: shop.serviceMaster }), 'content-type': 'application/json' };
        const sub = `browser-${word}`;
        const put = await fetch(`${bus}/v1/subscriptions/${sub}`, { method: 'PUT', headers: ident, body: JSON.stringify({ topics: ['product.created'], max_attempts: 1, retry_delay_ms: 100 }) });
        assert.equal(put.status, 201);
        const created = await api('POST', '/api/v1/products', { token: admin, json: { sku: `BR-${word}-dl`, name: `${word} dead letter`, price: { amount: 100, currency: 'EUR' } } });
        assert.equal(created.status, 201);
        let msg;
        await waitFor(async () => {
            const r = await fetch(`${bus}/v1/subscriptions/${sub}/pull`, { method: 'POST', headers: ident, body: JSON.stringify({ max_messages: 10, wait_ms: 1000 }) });
            const j = await r.json();
            msg = j.messages?.find((m) => m.subject === created.json.id || JSON.stringify(m.data).includes(created.json.id));
            return msg !== undefined;
        }, { timeoutMs: WAIT, intervalMs: 50, message: 'the product.created delivery' });
        const nack = await fetch(`${bus}/v1/subscriptions/${sub}/nack`, { method: 'POST', headers: ident, body: JSON.stringify({ ack_ids: [msg.ack_id], error: 'rejected by the browser test' }) });
        assert.equal(nack.status, 200);
        const backlog = async () => (await (await fetch(`${bus}/v1/subscriptions/${sub}`, { headers: ident })).json()).backlog;
        await waitFor(async () => (await backlog()).dead_letters === 1, { timeoutMs: WAIT, intervalMs: 50, message: 'the dead letter' });

        const page = await consolePage();
        await page.getByRole('link', { name: 'Bus' }).click();
        await page.locator(`[data-subscription="${sub}"]`).waitFor();
        await checkAccessibility(page, 'console bus');
        await shot(page, 'console-bus');
        await page.locator(`[data-subscription="${sub}"] a`, { hasText: '1 dead letters' }).click();
        await page.getByRole('heading', { name: `Dead letters of ${sub} (1)` }).waitFor();
        await page.getByRole('button', { name: `Inspect message ${msg.seq}` }).click();
        await page.locator('#dead-letter-json', { hasText: 'rejected by the browser test' }).waitFor();
        assert.match(await page.locator('#dead-letter-json').textContent(), new RegExp(created.json.id));
        await shot(page, 'console-dead-letter');
        await page.getByRole('button', { name: `Replay message ${msg.seq}` }).click();
        await page.getByText(`Replayed 1 message(s) to ${sub}.`).waitFor();
        await page.getByRole('heading', { name: `Dead letters of ${sub} (0)` }).waitFor();
        const after = await backlog();
        assert.equal(after.dead_letters, 0);
        assert.equal(after.ready + after.in_flight + after.delayed, 1, 'the message is deliverable again');
        assert.deepEqual(page.errors, []);
        await page.context().close();
        await fetch(`${bus}/v1/subscriptions/${sub}`, { method: 'DELETE', headers: ident });
    });
});
