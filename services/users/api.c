/* SPDX-License-Identifier: MIT */
/* Users HTTP handlers and the route table: registration, login, refresh
 * with rotation and reuse detection, logout, the caller's own account,
 * administration of accounts, and the JWKS. Password work goes to the
 * thread pool (credentials.c); those handlers answer from its callback. */
#include "agora/base.h"
#include "users.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define JSON_TYPE "application/json"

/* ---- Helpers ---- */

static int64_t
mono_ms(void)
{
    return (int64_t)ag_time_mono_ms();
}

static void
count(struct ag_metric *m, const char *result)
{
    const char *labels[] = { result };
    ag_counter_add(m, labels, 1);
}

/* Answers of password-work callbacks run outside the request middleware:
 * give their log lines the request's ids, and drop them before sending,
 * since sending may free the request. */
static void
async_enter(struct ag_http_req *req)
{
    ag_log_set_context(ag_req_id(req), ag_req_trace_id(req));
}

static void
async_leave(void)
{
    ag_log_set_context(NULL, NULL);
}

/* The name login and login_done use (they are being reworked apart from
 * this file's other handlers, which call ag_send_store_error directly). */
static void
send_store_error(struct ag_http_req *req, int rc, const char *what)
{
    ag_send_store_error(req, rc, what);
}

static void
send_account(struct ag_http_req *req, int status, const struct users_account *a)
{
    ag_send_json(req, status, users_account_to_json(a));
}

static void
send_throttled(struct ag_http_req *req, int64_t wait_ms, const char *detail)
{
    char secs[32];
    snprintf(secs, sizeof(secs), "%lld", (long long)users_retry_after_seconds(wait_ms));
    ag_http_resp_header(req, "Retry-After", secs);
    ag_send_problem(req, 429, "too-many-requests", "Too Many Requests", "%s; retry after %s s",
                    detail, secs);
}

static void
send_busy(struct ag_http_req *req)
{
    ag_http_resp_header(req, "Retry-After", "1");
    ag_send_error(req, AG_EBUSY, "too many password checks in progress; retry shortly");
}

/* One answer for an unknown e-mail, a wrong password and a disabled
 * account, so the answer tells an attacker nothing. */
static void
send_bad_credentials(struct ag_http_req *req)
{
    ag_send_problem(req, 401, "invalid-credentials", "Invalid Credentials",
                    "the e-mail address or the password is wrong");
}

static void
send_bad_refresh(struct ag_http_req *req)
{
    ag_send_problem(req, 401, "invalid-token", "Invalid Token",
                    "the refresh token is invalid, expired or revoked");
}

static void
send_field_error(struct ag_http_req *req, const char *field, const char *code, const char *detail)
{
    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_error(&v, field, code, "%s", detail);
    ag_send_invalid(req, &v);
    ag_valid_release(&v);
}

/* Throttle key of an account and a client: "<e-mail>\n<client>". */
#define PAIR_KEY_MAX (USERS_EMAIL_MAX + AG_CLIENT_ADDRLEN + 2)

static void
pair_key(struct ag_http_req *req, const char *email, char out[PAIR_KEY_MAX])
{
    snprintf(out, PAIR_KEY_MAX, "%s\n%s", email, ag_req_client(req));
}

/* Count an attempt of this client (the one the gateway vouched for, never
 * one a header claims: ag_req_client); answers 429 and returns false when
 * it has made too many. One client's attempts never cost another. */
static bool
client_admit(struct users *u, struct ag_http_req *req)
{
    const char *addr = ag_req_client(req);
    int64_t now = mono_ms();
    int64_t wait = users_throttle_wait(u->clients, addr, now);
    if (wait > 0) {
        send_throttled(req, wait, "too many attempts from this address");
        return false;
    }
    users_throttle_hit(u->clients, addr, now);
    return true;
}

static void
now_rfc3339(char out[AG_RFC3339_LEN])
{
    ag_time_rfc3339(ag_time_unix_ms(), out);
}

/* ---- Revocations the gateway enforces ---- */

/* Record that the access tokens of session 'session_id' (NULL: every
 * access token of the user issued up to now) are revoked for 'reason', and
 * publish session.revoked (and user.disabled for account 'a' when the
 * reason is "disabled"), inside the caller's open transaction. The
 * revocation stays in force until every token it can match has expired:
 * the access-token lifetime after now, plus a second for the iat bump of
 * tokens issued in the second of a user's cut-off. */
static int
revoke_tokens(struct users *u, struct ag_store *st, const char *user_id, const char *session_id,
              const char *reason, const struct users_account *a)
{
    struct users_revocation r = { .reason = reason, .revoked_at_ms = ag_time_unix_ms() };
    snprintf(r.user_id, sizeof(r.user_id), "%s", user_id);
    snprintf(r.session_id, sizeof(r.session_id), "%s", session_id != NULL ? session_id : "");
    r.issued_before = r.revoked_at_ms / 1000;
    r.expires_at = r.issued_before + (int64_t)(u->settings.access_ttl_ms / 1000) + 1;
    int rc = users_store_revocation_insert(st, &r);
    if (rc == 0)
        rc = users_events_revoked(u->events, &r, a);
    return rc;
}

/* ---- Sessions: refresh-token families ---- */

struct session {
    struct users *u;
    const char *user_id;
    const char *family_id;       /* the family to extend, or a new one */
    bool new_family;             /* insert the family first */
    const unsigned char *parent; /* hash of the token replaced, or NULL */
    const char *rehash_old;      /* with rehash_new: upgrade the stored hash */
    const char *rehash_new;
    int64_t now_ms;
    char token[USERS_REFRESH_TOKEN_LEN + 1]; /* out: the new refresh token */
};

static int
session_insert(struct ag_store *st, struct session *s)
{
    int rc = 0;
    if (s->rehash_new != NULL)
        rc = users_store_user_rehash(st, s->user_id, s->rehash_old, s->rehash_new);
    if (rc == 0 && s->new_family)
        rc = users_store_family_insert(st, s->family_id, s->user_id, s->now_ms);
    if (rc == 0) {
        unsigned char hash[USERS_TOKEN_HASH];
        users_refresh_token_new(s->token, hash);
        rc = users_store_token_insert(st, hash, s->family_id, s->parent, s->now_ms,
                                      s->now_ms + (int64_t)s->u->settings.refresh_ttl_ms);
    }
    return rc;
}

static int
session_tx(struct ag_store *st, void *arg)
{
    return session_insert(st, arg);
}

/* Answer a token pair for 'a' in session 'sid'; wipes 'refresh'. Call
 * after async_leave. */
static void
send_tokens(struct users *u, struct ag_http_req *req, const struct users_account *a, char *refresh,
            int64_t now_ms, const char *sid)
{
    char *access = NULL;
    /* A token issued in the second of a per-user revocation would be
     * refused with the ones revoked (the gateway compares whole seconds):
     * it is dated one second later instead. */
    int64_t cutoff = 0;
    int rc = users_store_user_cutoff(u->store, a->id, now_ms / 1000, &cutoff);
    if (rc != 0) {
        sodium_memzero(refresh, strlen(refresh));
        ag_send_store_error(req, rc, "account");
        return;
    }
    if (users_keys_sign_access(u, a, sid, now_ms, cutoff > 0 ? cutoff + 1 : 0, &access) != 0) {
        sodium_memzero(refresh, strlen(refresh));
        ag_send_error(req, AG_EINTERNAL, NULL);
        return;
    }
    ag_http_resp_header(req, "Cache-Control", "no-store");
    json_t *body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", access, "token_type", "Bearer",
                             "expires_in", (json_int_t)(u->settings.access_ttl_ms / 1000),
                             "refresh_token", refresh);
    sodium_memzero(access, strlen(access));
    ag_free(access);
    sodium_memzero(refresh, strlen(refresh));
    ag_send_json(req, 200, body);
}

/* ---- Registration ---- */

struct register_ctx {
    struct users *u;
    struct ag_http_req *req;
    struct users_account a;
    const char *hash; /* during the transaction */
};

static int
register_tx(struct ag_store *st, void *arg)
{
    struct register_ctx *c = arg;
    int rc = users_store_user_insert(st, &c->a, c->hash);
    if (rc == 0)
        rc = users_events_registered(c->u->events, &c->a);
    return rc;
}

static void
register_done(struct users *u, const struct users_pw_result *res, void *udata)
{
    struct register_ctx *c = udata;
    struct ag_http_req *req = c->req;
    async_enter(req);
    if (res->rc != 0) {
        async_leave();
        ag_send_error(req, AG_EINTERNAL, "cannot hash the password");
        return;
    }
    c->hash = res->hash;
    int rc = ag_store_tx(u->store, register_tx, c);
    c->hash = NULL;
    if (rc == AG_EEXIST) {
        count(u->m.registrations, "conflict");
        async_leave();
        ag_send_problem(req, 409, "email-taken", "Conflict",
                        "an account with this e-mail address exists");
        return;
    }
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        async_leave();
        return;
    }
    count(u->m.registrations, "ok");
    AG_LOGI("api", "registered user '%s'", c->a.id);
    async_leave();
    char loc[64];
    snprintf(loc, sizeof(loc), "/v1/users/%s", c->a.id);
    ag_http_resp_header(req, "Location", loc);
    send_account(req, 201, &c->a);
}

static void
register_user(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct register_ctx *c = ag_pool_calloc(req->pool, sizeof(*c));
    struct users_register_req r;
    if (!users_register_from_json(&v, body, &r)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    if (!client_admit(u, req))
        return;
    bool exists = false;
    int rc = users_store_email_exists(u->store, r.email, &exists);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    if (exists) {
        count(u->m.registrations, "conflict");
        ag_send_problem(req, 409, "email-taken", "Conflict",
                        "an account with this e-mail address exists");
        return;
    }
    c->u = u;
    c->req = req;
    ag_uuid7(c->a.id);
    memcpy(c->a.email, r.email, sizeof(c->a.email));
    memcpy(c->a.name, r.name, sizeof(c->a.name));
    now_rfc3339(c->a.created_at);
    memcpy(c->a.updated_at, c->a.created_at, sizeof(c->a.updated_at));
    if (users_pw_submit(u, NULL, NULL, r.password, register_done, c) != 0)
        send_busy(req);
}

/* ---- Login ---- */

struct login_ctx {
    struct users *u;
    struct ag_http_req *req;
    bool known;                    /* the e-mail belongs to an account */
    struct users_account a;        /* when known */
    char stored[USERS_HASH_MAX];   /* the hash checked against */
    char key[USERS_EMAIL_MAX + 1]; /* throttle key: the normalised e-mail */
    char pair[PAIR_KEY_MAX];       /* throttle key: e-mail and client */
};

static void
login_done(struct users *u, const struct users_pw_result *res, void *udata)
{
    struct login_ctx *c = udata;
    struct ag_http_req *req = c->req;
    async_enter(req);
    if (res->rc != 0) {
        count(u->m.logins, "error");
        async_leave();
        ag_send_error(req, AG_EINTERNAL, "cannot check the password");
        return;
    }
    int64_t now = ag_time_unix_ms();
    bool ok = c->known && res->verified && !c->a.disabled;
    /* The account may have been disabled while the password was checked. */
    if (ok) {
        int rc = users_store_user_by_id(u->store, c->a.id, &c->a, NULL);
        ok = rc == 0 && !c->a.disabled;
    }
    if (!ok) {
        users_throttle_hit(u->pairs, c->pair, mono_ms());
        users_throttle_hit(u->accounts, c->key, mono_ms());
        count(u->m.logins, "failed");
        AG_LOGI("api", "login failed%s%s", c->known ? " for user " : "", c->known ? c->a.id : "");
        async_leave();
        send_bad_credentials(req);
        return;
    }
    /* This client has proved it knows the password: strangers' failures
     * on this account no longer slow it down. The account's count stays. */
    users_throttle_clear(u->pairs, c->pair);
    users_throttle_clear(u->known, c->pair);
    users_throttle_hit(u->known, c->pair, mono_ms());
    struct session s = {
        .u = u,
        .user_id = c->a.id,
        .new_family = true,
        .rehash_old = res->hashed ? c->stored : NULL,
        .rehash_new = res->hashed ? res->hash : NULL,
        .now_ms = now,
    };
    char family[AG_UUID_STRLEN + 1];
    ag_uuid7(family);
    s.family_id = family;
    int rc = ag_store_tx(u->store, session_tx, &s);
    if (rc != 0) {
        count(u->m.logins, "error");
        send_store_error(req, rc, "session");
        async_leave();
        return;
    }
    count(u->m.logins, "ok");
    if (res->hashed)
        AG_LOGI("api", "password hash of user '%s' upgraded to the configured cost", c->a.id);
    AG_LOGI("api", "user '%s' logged in", c->a.id);
    async_leave();
    send_tokens(u, req, &c->a, s.token, now, family);
}

static void
login(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct ag_valid v;
    ag_valid_init(&v);
    struct users_login_req r;
    if (!users_login_from_json(&v, body, &r)) {
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    if (!client_admit(u, req))
        return;
    struct login_ctx *c = ag_pool_calloc(req->pool, sizeof(*c));
    c->u = u;
    c->req = req;
    bool valid_email = users_email_normalize(r.email, c->key) == 0;
    if (!valid_email)
        snprintf(c->key, sizeof(c->key), "%s", r.email);
    /* Growing delay per account and client, then, only for clients that
     * never signed in to this account, a limit per account (OWASP
     * authentication cheat sheet: slow the attacker, never lock the owner
     * out). */
    pair_key(req, c->key, c->pair);
    int64_t now = mono_ms();
    int64_t wait = users_throttle_wait(u->pairs, c->pair, now);
    if (wait > 0) {
        count(u->m.logins, "throttled");
        send_throttled(req, wait, "too many failed logins for this account from this client");
        return;
    }
    if (users_throttle_count(u->known, c->pair, now) == 0) {
        wait = users_throttle_wait(u->accounts, c->key, now);
        if (wait > 0) {
            count(u->m.logins, "throttled");
            send_throttled(req, wait,
                           "too many failed logins for this account; sign in from a device that "
                           "signed in to it before, or wait");
            return;
        }
    }
    struct users_credentials cred;
    int rc = valid_email ? users_store_user_by_email(u->store, c->key, &c->a, &cred) : AG_ENOENT;
    if (rc == 0) {
        c->known = true;
        memcpy(c->stored, cred.hash, sizeof(c->stored));
    } else if (rc == AG_ENOENT) {
        /* Same work as for a real account, so timing does not tell. */
        memcpy(c->stored, u->dummy_hash, sizeof(c->stored));
    } else {
        send_store_error(req, rc, "account");
        return;
    }
    sodium_memzero(&cred, sizeof(cred));
    if (users_pw_submit(u, r.password, c->stored, NULL, login_done, c) != 0)
        send_busy(req);
}

/* ---- Refresh and logout ---- */

struct refresh_ctx {
    struct users *u;
    unsigned char hash[USERS_TOKEN_HASH]; /* of the presented token */
    int64_t now_ms;
    enum users_refresh_verdict verdict;
    char family[AG_UUID_STRLEN + 1];
    char user[AG_UUID_STRLEN + 1];
    struct session s; /* the successor, when OK */
};

static int
refresh_tx(struct ag_store *st, void *arg)
{
    struct refresh_ctx *c = arg;
    struct users_refresh_state state;
    int rc = users_store_token_get(st, c->hash, &state, c->family, c->user);
    if (rc != 0)
        return rc;
    c->verdict = users_refresh_judge(&state, c->now_ms);
    if (c->verdict == USERS_REFRESH_OK) {
        rc = users_store_token_spend(st, c->hash, c->now_ms);
        if (rc == AG_ECONFLICT) {
            c->verdict = USERS_REFRESH_REUSED;
            rc = 0;
        } else if (rc == 0) {
            c->s = (struct session){
                .u = c->u,
                .user_id = c->user,
                .family_id = c->family,
                .parent = c->hash,
                .now_ms = c->now_ms,
            };
            return session_insert(st, &c->s);
        }
    }
    /* Reuse means a copy of the token is out there: end the whole login,
     * its access tokens included. */
    const char *why = c->verdict == USERS_REFRESH_REUSED     ? "reuse"
                      : c->verdict == USERS_REFRESH_DISABLED ? "disabled"
                                                             : NULL;
    if (rc == 0 && why != NULL) {
        rc = users_store_family_revoke(st, c->family, c->now_ms, why);
        if (rc == 0 && ag_store_changes(st) > 0)
            rc = revoke_tokens(c->u, st, c->user, c->family, why, NULL);
    }
    return rc;
}

static const char *
verdict_name(enum users_refresh_verdict v)
{
    switch (v) {
    case USERS_REFRESH_OK: return "ok";
    case USERS_REFRESH_UNKNOWN: return "unknown";
    case USERS_REFRESH_REVOKED: return "revoked";
    case USERS_REFRESH_REUSED: return "reused";
    case USERS_REFRESH_DISABLED: return "disabled";
    case USERS_REFRESH_EXPIRED: return "expired";
    }
    return "unknown";
}

/* The "refresh_token" of a body; NULL after answering 422. */
static const char *
refresh_token_of(struct ag_http_req *req, json_t *body)
{
    static const char *const allowed[] = { "refresh_token", NULL };
    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_unknown(&v, body, NULL, allowed);
    const char *t = ag_valid_string(&v, body, NULL, "refresh_token", AG_VALID_REQUIRED, 1, 1024);
    if (!ag_valid_ok(&v)) {
        ag_send_invalid(req, &v);
        t = NULL;
    }
    ag_valid_release(&v);
    return t;
}

static void
refresh(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    const char *token = refresh_token_of(req, body);
    if (token == NULL)
        return;
    if (!users_refresh_token_is_wellformed(token)) {
        count(u->m.refreshes, "unknown");
        send_bad_refresh(req);
        return;
    }
    struct refresh_ctx c = { .u = u, .now_ms = ag_time_unix_ms() };
    users_refresh_token_hash(token, c.hash);
    int rc = ag_store_tx(u->store, refresh_tx, &c);
    if (rc != 0) {
        ag_send_store_error(req, rc, "refresh token");
        return;
    }
    users_events_kick(u->events);
    count(u->m.refreshes, verdict_name(c.verdict));
    if (c.verdict == USERS_REFRESH_REUSED)
        AG_LOGW("api", "refresh token reused: session '%s' of user '%s' revoked", c.family, c.user);
    if (c.verdict != USERS_REFRESH_OK) {
        send_bad_refresh(req);
        return;
    }
    struct users_account a;
    rc = users_store_user_by_id(u->store, c.user, &a, NULL);
    if (rc != 0) {
        sodium_memzero(c.s.token, sizeof(c.s.token));
        ag_send_store_error(req, rc == AG_ENOENT ? AG_EINTERNAL : rc, "account");
        return;
    }
    send_tokens(u, req, &a, c.s.token, c.now_ms, c.family);
}

struct logout_ctx {
    struct users *u;
    unsigned char hash[USERS_TOKEN_HASH];
};

/* Revoke the family of the token (if any) and, the first time, its access
 * tokens. */
static int
logout_tx(struct ag_store *st, void *arg)
{
    struct logout_ctx *c = arg;
    struct users_refresh_state state;
    char family[AG_UUID_STRLEN + 1];
    char user[AG_UUID_STRLEN + 1];
    int rc = users_store_token_get(st, c->hash, &state, family, user);
    if (rc != 0 || !state.found)
        return rc;
    rc = users_store_family_revoke(st, family, ag_time_unix_ms(), "logout");
    if (rc == 0 && ag_store_changes(st) > 0)
        rc = revoke_tokens(c->u, st, user, family, "logout", NULL);
    return rc;
}

static void
logout(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    const char *token = refresh_token_of(req, body);
    if (token == NULL)
        return;
    /* Answer 204 whatever the token was: logging out is idempotent and
     * tells nothing about tokens. */
    if (users_refresh_token_is_wellformed(token)) {
        struct logout_ctx c = { .u = u };
        users_refresh_token_hash(token, c.hash);
        int rc = ag_store_tx(u->store, logout_tx, &c);
        if (rc != 0) {
            ag_send_store_error(req, rc, "refresh token");
            return;
        }
        users_events_kick(u->events);
    }
    ag_send_no_content(req);
}

/* ---- The caller's account ---- */

static const char *
caller_id(struct ag_http_req *req)
{
    const struct ag_identity *id = ag_req_identity(req);
    return id ? id->user_id : "";
}

static void
get_me(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    struct users_account a;
    int rc = users_store_user_by_id(u->store, caller_id(req), &a, NULL);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    send_account(req, 200, &a);
}

struct patch_ctx {
    struct users *u;
    struct ag_http_req *req;
    struct users_patch_req p;
    char id[AG_JWT_SUB_MAX]; /* the caller's id, from the identity */
    char key[PAIR_KEY_MAX];  /* throttle key: e-mail and client */
    const char *hash;        /* during the transaction */
    struct users_account a;  /* the result */
};

static int
patch_tx(struct ag_store *st, void *arg)
{
    struct patch_ctx *c = arg;
    int rc = users_store_user_by_id(st, c->id, &c->a, NULL);
    if (rc != 0)
        return rc;
    if (c->p.has_name)
        memcpy(c->a.name, c->p.name, sizeof(c->a.name));
    now_rfc3339(c->a.updated_at);
    rc = users_store_user_update(st, &c->a, c->hash);
    /* A new password ends every session: whoever knew the old one may
     * hold a refresh token. */
    if (rc == 0 && c->hash != NULL)
        rc = users_store_families_revoke_user(st, c->a.id, ag_time_unix_ms(), "password");
    if (rc == 0 && c->hash != NULL)
        rc = revoke_tokens(c->u, st, c->a.id, NULL, "password", NULL);
    if (rc == 0)
        rc = users_events_updated(c->u->events, &c->a,
                                  (c->p.has_name ? USERS_CHANGED_NAME : 0) |
                                      (c->hash != NULL ? USERS_CHANGED_PASSWORD : 0));
    return rc;
}

static void
patch_finish(struct patch_ctx *c)
{
    struct ag_http_req *req = c->req;
    int rc = ag_store_tx(c->u->store, patch_tx, c);
    if (rc == 0)
        users_events_kick(c->u->events);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    send_account(req, 200, &c->a);
}

static void
patch_done(struct users *u, const struct users_pw_result *res, void *udata)
{
    struct patch_ctx *c = udata;
    struct ag_http_req *req = c->req;
    async_enter(req);
    if (res->rc != 0) {
        async_leave();
        ag_send_error(req, AG_EINTERNAL, "cannot hash the password");
        return;
    }
    if (!res->verified || !res->hashed) {
        users_throttle_hit(u->pairs, c->key, mono_ms());
        async_leave();
        send_field_error(req, "current_password", "mismatch", "is not the current password");
        return;
    }
    c->hash = res->hash;
    AG_LOGI("api", "user '%s' changed the password", c->id);
    async_leave();
    patch_finish(c);
}

static void
patch_me(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    json_t *body = ag_req_json(req);
    if (body == NULL)
        return;
    struct patch_ctx *c = ag_pool_calloc(req->pool, sizeof(*c));
    c->u = u;
    c->req = req;
    snprintf(c->id, sizeof(c->id), "%s", caller_id(req));
    struct users_credentials cred;
    int rc = users_store_user_by_id(u->store, c->id, &c->a, &cred);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    pair_key(req, c->a.email, c->key);
    struct ag_valid v;
    ag_valid_init(&v);
    if (!users_patch_from_json(&v, body, c->a.email, &c->p)) {
        sodium_memzero(&cred, sizeof(cred));
        ag_send_invalid(req, &v);
        ag_valid_release(&v);
        return;
    }
    ag_valid_release(&v);
    if (c->p.password == NULL) {
        sodium_memzero(&cred, sizeof(cred));
        patch_finish(c);
        return;
    }
    int64_t wait = users_throttle_wait(u->pairs, c->key, mono_ms());
    if (wait > 0) {
        sodium_memzero(&cred, sizeof(cred));
        send_throttled(req, wait, "too many wrong passwords for this account");
        return;
    }
    rc = users_pw_submit(u, c->p.current_password, cred.hash, c->p.password, patch_done, c);
    sodium_memzero(&cred, sizeof(cred));
    if (rc != 0)
        send_busy(req);
}

/* ---- Administration ---- */

static void
list_users(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    const struct ag_query *q = ag_req_query(req);
    if (q == NULL)
        return;
    int64_t limit = USERS_PAGE_DEFAULT;
    if (ag_req_query_int(req, "limit", 1, USERS_PAGE_MAX, &limit) != 0)
        return;
    char after[AG_UUID_STRLEN + 1];
    const char *cursor = ag_query_get(q, "cursor");
    if (cursor != NULL && users_cursor_decode(cursor, after) != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'cursor' is not a cursor from this listing");
        return;
    }
    char email[USERS_EMAIL_MAX + 1];
    const char *email_q = ag_query_get(q, "email");
    if (email_q != NULL && users_email_normalize(email_q, email) != 0) {
        ag_send_error(req, AG_EQUERY, "query parameter 'email' must be an e-mail address");
        return;
    }
    json_t *items = json_array();
    bool more = false;
    int rc = users_store_user_list(u->store, cursor ? after : NULL, email_q ? email : NULL, limit,
                                   items, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "account list");
        return;
    }
    json_t *next = json_null();
    size_t n = json_array_size(items);
    if (more && n > 0) {
        char enc[USERS_CURSOR_MAX];
        users_cursor_encode(json_string_value(json_object_get(json_array_get(items, n - 1), "id")),
                            enc);
        json_decref(next);
        next = json_string(enc);
    }
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

static void
get_user(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    const char *id = ag_req_uuid_param(req, "id", "account");
    if (id == NULL)
        return;
    struct users_account a;
    int rc = users_store_user_by_id(u->store, id, &a, NULL);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    send_account(req, 200, &a);
}

struct disable_ctx {
    struct users *u;
    const char *id;
    bool disabled;
    struct users_account a;
};

static int
disable_tx(struct ag_store *st, void *arg)
{
    struct disable_ctx *c = arg;
    int rc = users_store_user_by_id(st, c->id, &c->a, NULL);
    if (rc != 0 || c->a.disabled == c->disabled)
        return rc;
    c->a.disabled = c->disabled;
    now_rfc3339(c->a.updated_at);
    rc = users_store_user_update(st, &c->a, NULL);
    if (rc == 0 && c->disabled)
        rc = users_store_families_revoke_user(st, c->a.id, ag_time_unix_ms(), "disabled");
    /* Re-enabling removes nothing: tokens issued before the disable stay
     * refused until they expire. */
    if (rc == 0 && c->disabled)
        rc = revoke_tokens(c->u, st, c->a.id, NULL, "disabled", &c->a);
    if (rc == 0)
        rc = users_events_updated(c->u->events, &c->a, USERS_CHANGED_DISABLED);
    return rc;
}

static void
set_disabled(struct ag_http_req *req, struct users *u, bool disabled)
{
    const char *id = ag_req_uuid_param(req, "id", "account");
    if (id == NULL)
        return;
    if (disabled && strcmp(id, caller_id(req)) == 0) {
        ag_send_error(req, AG_ECONFLICT, "administrators cannot disable themselves");
        return;
    }
    struct disable_ctx c = { .u = u, .id = id, .disabled = disabled };
    int rc = ag_store_tx(u->store, disable_tx, &c);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    users_events_kick(u->events);
    AG_LOGI("api", "user '%s' %s by '%s'", id, disabled ? "disabled" : "enabled", caller_id(req));
    send_account(req, 200, &c.a);
}

static void
disable_user(struct ag_http_req *req, void *udata)
{
    set_disabled(req, udata, true);
}

static void
enable_user(struct ag_http_req *req, void *udata)
{
    set_disabled(req, udata, false);
}

/* ---- The courier role ---- */

struct courier_ctx {
    struct ag_events *events;
    const char *id;
    bool grant;
    struct users_account a;
};

static int
courier_tx(struct ag_store *st, void *arg)
{
    struct courier_ctx *c = arg;
    int rc = users_store_user_by_id(st, c->id, &c->a, NULL);
    if (rc != 0 || c->a.courier == c->grant)
        return rc; /* already so: nothing changes, no event */
    c->a.courier = c->grant;
    now_rfc3339(c->a.updated_at);
    rc = users_store_user_update(st, &c->a, NULL);
    if (rc == 0)
        rc = users_events_updated(c->events, &c->a, USERS_CHANGED_ROLES);
    return rc;
}

/* Grant or revoke the courier role. Access tokens carry roles: the change
 * reaches the account's next token (login or refresh). */
static void
set_courier(struct ag_http_req *req, struct users *u, bool grant)
{
    const char *id = ag_req_uuid_param(req, "id", "account");
    if (id == NULL)
        return;
    struct courier_ctx c = { .events = u->events, .id = id, .grant = grant };
    int rc = ag_store_tx(u->store, courier_tx, &c);
    if (rc != 0) {
        ag_send_store_error(req, rc, "account");
        return;
    }
    users_events_kick(u->events);
    AG_LOGI("api", "courier role of user '%s' %s by '%s'", id, grant ? "granted" : "revoked",
            caller_id(req));
    send_account(req, 200, &c.a);
}

static void
grant_courier(struct ag_http_req *req, void *udata)
{
    set_courier(req, udata, true);
}

static void
revoke_courier(struct ag_http_req *req, void *udata)
{
    set_courier(req, udata, false);
}

/* ---- Revocations for the gateway (internal) ---- */

#define REVOCATIONS_PAGE_DEFAULT 1000
#define REVOCATIONS_PAGE_MAX     5000

/* GET /v1/internal/revocations?after=&limit=: the revocations still in
 * force, oldest first, for the gateway's deny list at start. Only the
 * gateway may call it (main.c: route callers). */
static void
list_revocations(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    int64_t limit = REVOCATIONS_PAGE_DEFAULT;
    int64_t after = 0;
    if (ag_req_query_int(req, "limit", 1, REVOCATIONS_PAGE_MAX, &limit) != 0 ||
        ag_req_query_int(req, "after", 0, INT64_MAX, &after) != 0)
        return;
    json_t *items = json_array();
    int64_t last = after;
    bool more = false;
    int rc = users_store_revocations_list(u->store, after, ag_time_unix_ms() / 1000, limit, items,
                                          &last, &more);
    if (rc != 0) {
        json_decref(items);
        ag_send_store_error(req, rc, "revocation list");
        return;
    }
    ag_http_resp_header(req, "Cache-Control", "no-store");
    json_t *next = more ? json_integer(last) : json_null();
    ag_send_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next_after", next));
}

/* ---- JWKS ---- */

static void
jwks(struct ag_http_req *req, void *udata)
{
    struct users *u = udata;
    /* Verifiers refetch on an unknown kid anyway; keep caches short so a
     * dropped key does not linger. */
    uint64_t max_age = AG_MIN(u->settings.key_rotation_ms / 4000, 300);
    char cc[64];
    snprintf(cc, sizeof(cc), "public, max-age=%llu", (unsigned long long)max_age);
    ag_http_resp_header(req, "Cache-Control", cc);
    ag_http_send(req, 200, JSON_TYPE, u->keys.jwks, u->keys.jwks_len);
}

const struct ag_route users_routes[] = {
    { "POST", "/v1/users", register_user, AG_ROLE_PUBLIC },
    { "GET", "/v1/users", list_users, AG_ROLE_ADMIN },
    { "GET", "/v1/users/me", get_me, AG_ROLE_CUSTOMER },
    { "PATCH", "/v1/users/me", patch_me, AG_ROLE_CUSTOMER },
    { "GET", "/v1/users/{id}", get_user, AG_ROLE_ADMIN },
    { "POST", "/v1/users/{id}/disable", disable_user, AG_ROLE_ADMIN },
    { "POST", "/v1/users/{id}/enable", enable_user, AG_ROLE_ADMIN },
    { "PUT", "/v1/users/{id}/roles/courier", grant_courier, AG_ROLE_ADMIN },
    { "DELETE", "/v1/users/{id}/roles/courier", revoke_courier, AG_ROLE_ADMIN },
    { "POST", "/v1/auth/login", login, AG_ROLE_PUBLIC },
    { "POST", "/v1/auth/refresh", refresh, AG_ROLE_PUBLIC },
    { "POST", "/v1/auth/logout", logout, AG_ROLE_PUBLIC },
    { "GET", "/.well-known/jwks.json", jwks, AG_ROLE_PUBLIC },
    { "GET", "/v1/internal/revocations", list_revocations, AG_ROLE_INTERNAL },
};
const size_t users_nroutes = AG_ARRAY_SIZE(users_routes);
