// SPDX-License-Identifier: MIT
// The browser's client of the gateway's /api/v1, shared by the storefront
// (/shop/) and the console (/console/): JSON requests, problem+json errors,
// and a session (access + refresh token in localStorage under 'storeKey')
// whose access token is refreshed silently with the refresh token, before
// it expires and again once on a 401.

export class ApiError extends Error {
    constructor(status, problem) {
        super(problem?.detail || problem?.title || `HTTP ${status}`);
        this.status = status;
        this.problem = problem ?? {};
        this.type = (problem?.type ?? '').replace('urn:agora:problem:', '');
    }
}

// The claims of a JWT, unverified (the gateway verifies; the page only
// reads the roles and expiry to decide what to show).
export function jwtClaims(token) {
    try {
        const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
        return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    } catch {
        return {};
    }
}

export function newIdempotencyKey() {
    return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export class Api {
    constructor(storeKey) {
        this.storeKey = storeKey;
        this.session = null;
        this.refreshing = null;
        this.onSessionChange = () => {};
        try {
            this.session = JSON.parse(localStorage.getItem(storeKey) ?? 'null');
        } catch {
            this.session = null;
        }
    }

    get signedIn() {
        return this.session !== null;
    }

    get roles() {
        return this.session ? jwtClaims(this.session.access_token).roles ?? [] : [];
    }

    setSession(pair, email) {
        if (pair === null) {
            this.session = null;
            localStorage.removeItem(this.storeKey);
        } else {
            this.session = {
                access_token: pair.access_token,
                refresh_token: pair.refresh_token,
                expires_at: Date.now() + pair.expires_in * 1000,
                email: email ?? this.session?.email ?? '',
            };
            localStorage.setItem(this.storeKey, JSON.stringify(this.session));
        }
        this.onSessionChange(this.session);
    }

    async login(email, password) {
        const pair = await this.request('POST', '/api/v1/auth/login', { body: { email, password }, auth: false });
        this.setSession(pair, email);
        return pair;
    }

    async logout() {
        const s = this.session;
        this.setSession(null);
        if (s) {
            try {
                await this.request('POST', '/api/v1/auth/logout', { body: { refresh_token: s.refresh_token }, auth: false });
            } catch {
                // Signed out locally either way.
            }
        }
    }

    // One refresh at a time; concurrent callers wait for the same one.
    refresh() {
        if (this.refreshing) return this.refreshing;
        const s = this.session;
        if (!s) return Promise.resolve(false);
        this.refreshing = (async () => {
            try {
                const pair = await this.request('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token }, auth: false });
                this.setSession(pair);
                return true;
            } catch (e) {
                if (e.status === 401) this.setSession(null);
                return false;
            } finally {
                this.refreshing = null;
            }
        })();
        return this.refreshing;
    }

    async request(method, path, { body, auth = true, headers = {}, retry = true } = {}) {
        if (auth && this.session && this.session.expires_at - Date.now() < 30_000) await this.refresh();
        const h = { accept: 'application/json', ...headers };
        if (body !== undefined) h['content-type'] = 'application/json';
        if (auth && this.session) h.authorization = `Bearer ${this.session.access_token}`;
        let resp;
        try {
            resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
        } catch {
            throw new ApiError(0, { title: 'Network error', detail: 'The shop cannot be reached. Check your connection and try again.' });
        }
        if (resp.status === 401 && auth && this.session && retry) {
            if (await this.refresh()) return this.request(method, path, { body, auth, headers, retry: false });
        }
        const text = await resp.text();
        let data = null;
        if (text) {
            try {
                data = JSON.parse(text);
            } catch {
                data = { detail: text };
            }
        }
        if (!resp.ok) throw new ApiError(resp.status, data);
        return data;
    }

    get(path, opts) {
        return this.request('GET', path, opts);
    }
    post(path, body, opts = {}) {
        return this.request('POST', path, { ...opts, body });
    }
}

// "12.34 EUR" from { amount, currency } in minor units.
export function money(m) {
    if (!m) return '';
    try {
        return new Intl.NumberFormat('en', { style: 'currency', currency: m.currency }).format(m.amount / 100);
    } catch {
        return `${(m.amount / 100).toFixed(2)} ${m.currency}`;
    }
}

// Build DOM: h('a', { href: '#/' }, 'text', child...). Strings become text
// nodes (never HTML), so data from the API cannot inject markup.
export function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else if (k === 'class') el.className = v;
        else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
        if (c === null || c === undefined || c === false) continue;
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
}

export function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
}
