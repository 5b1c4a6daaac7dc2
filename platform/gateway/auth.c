/* SPDX-License-Identifier: MIT */
/* Bearer token verification for the gateway: the users service's JWKS
 * (fetched through the shared HTTP client, refetched on an unknown kid at
 * most once per AGORA_GATEWAY_JWKS_MIN_INTERVAL and every
 * AGORA_GATEWAY_JWKS_REFRESH), ES256 verification through jwt.h, and a
 * bounded cache of verified tokens keyed by their BLAKE2b-256 digest, valid
 * until the token expires, holding the signed X-Agora-Identity to send, so
 * a token costs one ECDSA verification (~80 us) per cache lifetime instead
 * of one per request. Requests that need keys not yet fetched wait, parked
 * on the fetch, instead of failing. Every answer, cached or fresh, is
 * checked against the deny list of revoked tokens (deny.c). */
#include "agora/base.h"
#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "agora/err.h"
#include "agora/json.h"
#include "agora/jwt.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

#define DIGEST_LEN          32
#define JWKS_TIMEOUT_MS     3000
#define JWKS_MAX_BYTES      (256u << 10)
#define JWKS_USERS_PATH     "/.well-known/jwks.json"
#define MAX_WAITERS         10000
#define NO_KEYS_INTERVAL_MS 100

struct token_entry {
    struct gw_entry e;
    uint8_t digest[DIGEST_LEN];
    int64_t valid_until; /* unix seconds: exp + leeway */
    int64_t iat;         /* issued at (unix s), for the deny list */
    unsigned roles;
    char sid[AG_JWT_JTI_MAX]; /* session id claim, or "" */
    char kid[AG_JWT_KID_MAX + 1];
    char sub[AG_JWT_SUB_MAX];
    char identity[AG_IDENTITY_MAXLEN];
};

/* A request waiting for the key set; lives in its request pool. */
struct waiter {
    struct waiter *next;
    struct ag_http_req *req;
    const char *token; /* copy in the request pool */
    size_t len;
    gw_auth_cb cb;
    void *udata;
};

struct gw_auth {
    struct gw *gw;
    struct ag_jwt_keyset *ks; /* NULL until the first successful fetch */
    struct gw_table cache;
    int64_t leeway_s;
    uint64_t last_fetch_ms; /* monotonic start of the last fetch, 0: never */
    bool fetching;
    bool last_fetch_ok;
    bool warned; /* a failure was logged since the last success */
    bool stopped;
    struct waiter *waiters;
    struct waiter **wtail;
    size_t nwaiters;
    uv_timer_t timer;
    bool timer_ready;
};

static void
entry_free(struct gw_entry *e, void *udata)
{
    AG_UNUSED(udata);
    struct token_entry *t = (struct token_entry *)e;
    sodium_memzero(t->identity, sizeof(t->identity));
    ag_free(t);
}

static void start_fetch(struct gw_auth *auth);

static void
on_timer(uv_timer_t *t)
{
    struct gw_auth *auth = t->data;
    start_fetch(auth);
}

/* Least time between two fetches: shorter while there are no keys at all
 * (start-up before the users service answers), so that the first tokens do
 * not wait a whole interval. */
static uint64_t
min_interval(const struct gw_auth *auth)
{
    uint64_t v = auth->gw->settings.jwks_min_interval_ms;
    return auth->ks == NULL && v > NO_KEYS_INTERVAL_MS ? NO_KEYS_INTERVAL_MS : v;
}

static void
schedule(struct gw_auth *auth)
{
    if (!auth->timer_ready || auth->stopped)
        return;
    const struct gw_settings *s = &auth->gw->settings;
    uint64_t delay =
        auth->ks != NULL && auth->last_fetch_ok ? s->jwks_refresh_ms : min_interval(auth);
    uv_timer_start(&auth->timer, on_timer, delay, 0);
}

int
gw_auth_new(struct gw *gw, struct gw_auth **out_auth)
{
    struct gw_auth *auth = ag_calloc(1, sizeof(*auth));
    auth->gw = gw;
    auth->leeway_s = (int64_t)(gw->settings.jwt_leeway_ms / 1000);
    auth->wtail = &auth->waiters;
    gw_table_init(&auth->cache, (size_t)gw->settings.token_cache_size, entry_free, auth);
    if (uv_timer_init(gw->loop, &auth->timer) != 0)
        AG_BUG("uv_timer_init failed");
    auth->timer.data = auth;
    auth->timer_ready = true;
    *out_auth = auth;
    return 0;
}

void
gw_auth_start(struct gw_auth *auth)
{
    start_fetch(auth);
}

void
gw_auth_stop(struct gw_auth *auth)
{
    if (auth == NULL || auth->stopped)
        return;
    auth->stopped = true;
    if (auth->timer_ready)
        uv_close((uv_handle_t *)&auth->timer, NULL);
}

void
gw_auth_free(struct gw_auth *auth)
{
    if (auth == NULL)
        return;
    gw_table_release(&auth->cache);
    ag_jwt_keyset_free(auth->ks);
    ag_free(auth);
}

size_t
gw_auth_cached(const struct gw_auth *auth)
{
    return auth->cache.count;
}

size_t
gw_auth_keys(const struct gw_auth *auth)
{
    return auth->ks ? ag_jwt_keyset_count(auth->ks) : 0;
}

void
gw_auth_sweep(struct gw_auth *auth)
{
    int64_t now = ag_time_unix_ms() / 1000;
    struct gw_entry *e = gw_table_oldest(&auth->cache);
    for (size_t seen = 0; e != NULL && seen < 4096; seen++) {
        struct gw_entry *newer = gw_table_newer(&auth->cache, e);
        if (((struct token_entry *)e)->valid_until <= now)
            gw_table_remove(&auth->cache, e);
        e = newer;
    }
}

/* ---- Verification ---- */

/* The "kid" of a compact JWS header, for dropping cache entries when their
 * key leaves the JWKS. Only called on tokens that just verified. */
static void
token_kid(const char *token, size_t len, char out[AG_JWT_KID_MAX + 1])
{
    out[0] = '\0';
    const char *dot = memchr(token, '.', len);
    if (dot == NULL || dot - token > 2048)
        return;
    unsigned char hdr[1600];
    size_t hlen = 0;
    if (sodium_base642bin(hdr, sizeof(hdr), token, (size_t)(dot - token), NULL, &hlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return;
    json_t *h = ag_json_parse((const char *)hdr, hlen, NULL, 0);
    const char *kid = json_string_value(json_object_get(h, "kid"));
    if (kid != NULL && strlen(kid) <= AG_JWT_KID_MAX)
        snprintf(out, AG_JWT_KID_MAX + 1, "%s", kid);
    json_decref(h);
}

/* The deny-list verdict on a verified token of 'sub' in session 'sid'
 * issued at 'iat': GW_AUTH_OK, GW_AUTH_REVOKED (counted by reason), or
 * GW_AUTH_RESTORING while the list is not restored from users yet (fail
 * closed: a revocation could be missing). */
static enum gw_auth_status
deny_status(struct gw_auth *auth, const char *sub, const char *sid, int64_t iat)
{
    struct gw *gw = auth->gw;
    if (gw->deny == NULL)
        return GW_AUTH_OK;
    if (!gw->deny_restored)
        return GW_AUTH_RESTORING;
    enum gw_deny_verdict v = gw_deny_check(gw->deny, sub, sid, iat, ag_time_unix_ms() / 1000);
    if (v == GW_DENY_NONE)
        return GW_AUTH_OK;
    const char *labels[] = { gw_deny_verdict_name(v) };
    ag_counter_add(gw->m_deny_refusals, labels, 1);
    return GW_AUTH_REVOKED;
}

static enum gw_auth_status
status_of_failure(const char *why)
{
    if (why != NULL && (strstr(why, "expire") != NULL || strstr(why, "not yet") != NULL ||
                        strstr(why, "nbf") != NULL || strstr(why, "future") != NULL))
        return GW_AUTH_EXPIRED;
    return GW_AUTH_INVALID;
}

/* Verify with the keys at hand. Returns AG_ENOENT for an unknown kid (or no
 * keys yet) without calling 'cb'; otherwise calls 'cb' and returns 0. */
static int
verify_now(struct gw_auth *auth, struct ag_http_req *req, const char *token, size_t len,
           const uint8_t digest[DIGEST_LEN], uint64_t hash, gw_auth_cb cb, void *udata)
{
    const struct gw_settings *s = &auth->gw->settings;
    if (auth->ks == NULL)
        return AG_ENOENT;
    int64_t now = ag_time_unix_ms() / 1000;
    struct ag_jwt_expect expect = {
        .iss = s->jwt_issuer,
        .aud = s->jwt_audience,
        .leeway = auth->leeway_s,
        .now = now,
    };
    struct ag_jwt_claims claims;
    const char *why = "";
    int rc = ag_jwt_verify(auth->ks, token, len, &expect, &claims, &why);
    if (rc == AG_ENOENT)
        return AG_ENOENT;
    if (rc != 0) {
        AG_LOGD("auth", "token rejected: %s", why);
        cb(req, status_of_failure(why), NULL, udata);
        return 0;
    }
    struct token_entry *t = ag_calloc(1, sizeof(*t));
    memcpy(t->digest, digest, DIGEST_LEN);
    t->valid_until = claims.exp + auth->leeway_s;
    t->iat = claims.iat;
    t->roles = claims.roles;
    snprintf(t->sub, sizeof(t->sub), "%s", claims.sub);
    snprintf(t->sid, sizeof(t->sid), "%s", claims.sid);
    struct ag_identity id = { .roles = claims.roles, .exp = t->valid_until };
    snprintf(id.user_id, sizeof(id.user_id), "%s", claims.sub);
    if (ag_identity_sign(auth->gw->identity_key, &id, t->identity) != 0) {
        /* A subject the identity header cannot carry: not an Agora token. */
        ag_free(t);
        cb(req, GW_AUTH_INVALID, NULL, udata);
        return 0;
    }
    token_kid(token, len, t->kid);
    t->e.key = t->digest;
    t->e.keylen = DIGEST_LEN;
    t->e.hash = hash;
    gw_table_insert(&auth->cache, &t->e);
    enum gw_auth_status st = deny_status(auth, t->sub, t->sid, t->iat);
    if (st != GW_AUTH_OK) {
        cb(req, st, NULL, udata);
        return 0;
    }
    struct gw_principal who = { t->sub, t->roles, t->identity };
    cb(req, GW_AUTH_OK, &who, udata);
    return 0;
}

static bool
may_fetch(const struct gw_auth *auth)
{
    if (auth->fetching)
        return true;
    uint64_t now = ag_time_mono_ms();
    return auth->last_fetch_ms == 0 || now - auth->last_fetch_ms >= min_interval(auth);
}

bool
gw_auth_check(struct gw_auth *auth, struct ag_http_req *req, struct ag_str token, gw_auth_cb cb,
              void *udata)
{
    if (token.len == 0 || token.len > AG_JWT_MAX_TOKEN) {
        cb(req, GW_AUTH_INVALID, NULL, udata);
        return true;
    }
    uint8_t digest[DIGEST_LEN];
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)token.ptr, token.len, NULL,
                       0);
    uint64_t hash = gw_table_hash(&auth->cache, digest, sizeof(digest));
    struct token_entry *t =
        (struct token_entry *)gw_table_find(&auth->cache, digest, sizeof(digest), hash);
    if (t != NULL) {
        if (t->valid_until > ag_time_unix_ms() / 1000) {
            /* A cached token may have been revoked since it was verified. */
            enum gw_auth_status st = deny_status(auth, t->sub, t->sid, t->iat);
            if (st != GW_AUTH_OK) {
                cb(req, st, NULL, udata);
                return true;
            }
            struct gw_principal who = { t->sub, t->roles, t->identity };
            cb(req, GW_AUTH_OK, &who, udata);
        } else {
            gw_table_remove(&auth->cache, &t->e);
            cb(req, GW_AUTH_EXPIRED, NULL, udata);
        }
        return true;
    }
    if (verify_now(auth, req, token.ptr, token.len, digest, hash, cb, udata) == 0)
        return true;
    /* Unknown kid, or no key set yet: wait for a (bounded) refetch. */
    if (auth->stopped || !may_fetch(auth) || auth->nwaiters >= MAX_WAITERS) {
        cb(req, auth->ks != NULL && auth->last_fetch_ok ? GW_AUTH_UNKNOWN_KID : GW_AUTH_UNAVAILABLE,
           NULL, udata);
        return true;
    }
    struct waiter *w = ag_pool_calloc(req->pool, sizeof(*w));
    w->req = req;
    w->token = ag_pool_strndup(req->pool, token.ptr, token.len);
    w->len = token.len;
    w->cb = cb;
    w->udata = udata;
    *auth->wtail = w;
    auth->wtail = &w->next;
    auth->nwaiters++;
    start_fetch(auth);
    return false;
}

/* ---- Fetching the key set ---- */

static void
resume_waiters(struct gw_auth *auth)
{
    struct waiter *w = auth->waiters;
    auth->waiters = NULL;
    auth->wtail = &auth->waiters;
    auth->nwaiters = 0;
    while (w != NULL) {
        /* The callback answers the request and may free its pool, where 'w'
         * lives: read the link first. */
        struct waiter *next = w->next;
        uint8_t digest[DIGEST_LEN];
        crypto_generichash(digest, sizeof(digest), (const unsigned char *)w->token, w->len, NULL,
                           0);
        uint64_t hash = gw_table_hash(&auth->cache, digest, sizeof(digest));
        if (verify_now(auth, w->req, w->token, w->len, digest, hash, w->cb, w->udata) != 0) {
            enum gw_auth_status st =
                auth->ks != NULL && auth->last_fetch_ok ? GW_AUTH_UNKNOWN_KID : GW_AUTH_UNAVAILABLE;
            w->cb(w->req, st, NULL, w->udata);
        }
        w = next;
    }
}

/* Drop cached tokens whose key is no longer published. */
static void
prune_cache(struct gw_auth *auth)
{
    struct gw_entry *e = gw_table_oldest(&auth->cache);
    while (e != NULL) {
        struct gw_entry *newer = gw_table_newer(&auth->cache, e);
        if (!ag_jwt_keyset_has(auth->ks, ((struct token_entry *)e)->kid))
            gw_table_remove(&auth->cache, e);
        e = newer;
    }
}

/* Failures are logged at warn once per streak, then at debug: the users
 * service may simply not be up yet. */
#define FETCH_LOG(auth, ...)                                                                       \
    do {                                                                                           \
        AG_LOG((auth)->warned ? AG_LOG_DEBUG : AG_LOG_WARN, "auth", __VA_ARGS__);                  \
        (auth)->warned = true;                                                                     \
    } while (0)

static void
on_jwks(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct gw_auth *auth = udata;
    auth->fetching = false;
    bool ok = false;
    if (resp->err != 0) {
        FETCH_LOG(auth, "cannot fetch the JWKS: %s", ag_strerror(resp->err));
    } else if (resp->status != 200) {
        FETCH_LOG(auth, "cannot fetch the JWKS: status %d", resp->status);
    } else if (resp->body.len > JWKS_MAX_BYTES) {
        FETCH_LOG(auth, "cannot use the JWKS: %zu bytes", resp->body.len);
    } else {
        char err[160];
        json_t *doc = ag_json_parse(resp->body.ptr, resp->body.len, err, sizeof(err));
        struct ag_jwt_keyset *ks = NULL;
        if (doc == NULL) {
            FETCH_LOG(auth, "cannot parse the JWKS: %s", err);
        } else if (ag_jwt_keyset_from_jwks(doc, &ks) != 0) {
            FETCH_LOG(auth, "the JWKS has no \"keys\" array");
        } else {
            auth->warned = false;
            size_t before = auth->ks ? ag_jwt_keyset_count(auth->ks) : 0;
            ag_jwt_keyset_free(auth->ks);
            auth->ks = ks;
            ok = true;
            prune_cache(auth);
            if (before != ag_jwt_keyset_count(ks))
                AG_LOGI("auth", "JWKS loaded: %zu keys", ag_jwt_keyset_count(ks));
        }
        json_decref(doc);
    }
    auth->last_fetch_ok = ok;
    resume_waiters(auth);
    schedule(auth);
}

static void
start_fetch(struct gw_auth *auth)
{
    if (auth->fetching || auth->stopped)
        return;
    const struct gw_settings *s = &auth->gw->settings;
    bool direct = s->jwks_url != NULL && s->jwks_url[0] != '\0';
    struct ag_http_client_header accept = { "Accept", "application/json" };
    struct ag_http_client_request r = {
        .method = "GET",
        .upstream = direct ? NULL : "users",
        .url = direct ? s->jwks_url : JWKS_USERS_PATH,
        .headers = &accept,
        .nheaders = 1,
        .timeout_ms = JWKS_TIMEOUT_MS,
    };
    auth->last_fetch_ms = ag_time_mono_ms();
    if (auth->timer_ready)
        uv_timer_stop(&auth->timer);
    int rc = auth->gw->client != NULL ? ag_http_client_send(auth->gw->client, &r, on_jwks, auth)
                                      : AG_ECLOSED;
    if (rc != 0) {
        FETCH_LOG(auth, "cannot fetch the JWKS from '%s': %s", r.url, ag_strerror(rc));
        auth->last_fetch_ok = false;
        resume_waiters(auth);
        schedule(auth);
        return;
    }
    auth->fetching = true;
}
