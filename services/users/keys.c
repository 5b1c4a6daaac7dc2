/* SPDX-License-Identifier: MIT */
/* Signing keys: the ES256 key that signs access tokens, made at first start
 * and kept in the users database, replaced every AGORA_USERS_KEY_ROTATION.
 * A replaced key stays in the JWKS until every token it signed has expired
 * (access TTL + leeway), then it is deleted. A timer on the loop does the
 * rotation, the dropping and the purge of expired refresh tokens. */
#include "agora/base.h"
#include "users.h"

#include <stdio.h>
#include <string.h>

#include "agora/buf.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define RETRY_MS     1000    /* after a failed maintenance pass */
#define MIN_DELAY_MS 10      /* shortest timer */
#define MAX_DELAY_MS 3600000 /* at least hourly, for the token purge */

struct maintain {
    struct users *u;
    int64_t now_ms;
    bool rotated;
    char new_kid[AG_JWT_KID_MAX + 1];
};

/* In one transaction: make a key if there is none or the active one is due,
 * retire the replaced one, drop keys past their window, purge tokens. */
static int
maintain_tx(struct ag_store *st, void *arg)
{
    struct maintain *m = arg;
    struct users *u = m->u;
    struct users_key_row rows[AG_JWT_MAX_KEYS];
    size_t n = 0;
    int rc = users_store_keys_load(st, rows, AG_ARRAY_SIZE(rows), &n);
    if (rc != 0)
        return rc;
    const struct users_key_row *active = NULL;
    for (size_t i = 0; i < n && active == NULL; i++) {
        if (rows[i].retired_ms == 0)
            active = &rows[i];
    }
    if (active == NULL || users_key_rotation_due(active->created_ms, m->now_ms,
                                                 (int64_t)u->settings.key_rotation_ms)) {
        struct ag_jwt_key *key = NULL;
        rc = ag_jwt_key_generate(NULL, &key);
        if (rc == 0) {
            char *pem = ag_jwt_key_to_pem(key);
            rc = users_store_key_insert(st, ag_jwt_key_kid(key), pem, m->now_ms);
            ag_jwt_pem_free(pem);
            memcpy(m->new_kid, ag_jwt_key_kid(key), strlen(ag_jwt_key_kid(key)) + 1);
            ag_jwt_key_free(key);
        }
        int64_t drop = users_key_drop_at(m->now_ms, (int64_t)u->settings.access_ttl_ms,
                                         (int64_t)u->settings.leeway_ms);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (rows[i].retired_ms == 0)
                rc = users_store_key_retire(st, rows[i].kid, m->now_ms, drop);
        }
        m->rotated = rc == 0;
    }
    users_store_keys_release(rows, n);
    if (rc == 0)
        rc = users_store_keys_drop(st, m->now_ms);
    if (rc == 0)
        rc = users_store_tokens_purge(st, m->now_ms);
    if (rc == 0)
        rc = users_store_revocations_purge(st, m->now_ms / 1000);
    return rc;
}

/* Rebuild the active key and the JWKS from the database. Returns the
 * delay until the next pass is due, or a negative error. */
static int64_t
reload(struct users *u, int64_t now_ms)
{
    struct users_key_row rows[AG_JWT_MAX_KEYS];
    size_t n = 0;
    int rc = users_store_keys_load(u->store, rows, AG_ARRAY_SIZE(rows), &n);
    if (rc != 0)
        return rc;
    json_t *keys = json_array();
    struct ag_jwt_key *active = NULL;
    int64_t active_created = 0;
    int64_t next = now_ms + MAX_DELAY_MS;
    for (size_t i = 0; i < n; i++) {
        struct ag_jwt_key *k = NULL;
        if (ag_jwt_key_from_pem(rows[i].pem, strlen(rows[i].pem), rows[i].kid, &k) != 0) {
            AG_LOGE("keys", "signing key '%s' in the database is unreadable; skipped", rows[i].kid);
            continue;
        }
        json_array_append_new(keys, ag_jwt_key_jwk(k));
        if (rows[i].retired_ms == 0 && active == NULL) {
            active = k;
            active_created = rows[i].created_ms;
            next = AG_MIN(next, rows[i].created_ms + (int64_t)u->settings.key_rotation_ms);
        } else {
            ag_jwt_key_free(k);
            if (rows[i].drop_ms > 0)
                next = AG_MIN(next, rows[i].drop_ms);
        }
    }
    users_store_keys_release(rows, n);
    if (active == NULL) {
        json_decref(keys);
        AG_LOGE("keys", "no usable signing key in the database");
        return AG_EINTERNAL;
    }
    size_t published = json_array_size(keys);
    struct ag_buf doc = AG_BUF_INIT(0);
    json_t *jwks = json_pack("{s:o}", "keys", keys);
    ag_json_dump(jwks, &doc);
    json_decref(jwks);

    ag_jwt_key_free(u->keys.active);
    u->keys.active = active;
    u->keys.active_created_ms = active_created;
    ag_free(u->keys.jwks);
    u->keys.jwks = ag_buf_detach(&doc, &u->keys.jwks_len);
    u->keys.published = published;
    ag_gauge_set(u->m.keys, NULL, (double)published);
    return AG_MAX(next - now_ms, MIN_DELAY_MS);
}

/* One maintenance pass; returns the delay to the next one. */
static int64_t
maintain(struct users *u)
{
    struct maintain m = { .u = u, .now_ms = ag_time_unix_ms() };
    int rc = ag_store_tx(u->store, maintain_tx, &m);
    if (rc != 0) {
        AG_LOGE("keys", "signing key maintenance failed: %s (%s)", ag_strerror(rc),
                ag_store_errmsg(u->store));
        return rc;
    }
    if (m.rotated) {
        ag_counter_add(u->m.rotations, NULL, 1);
        AG_LOGI("keys", "new signing key '%s'", m.new_kid);
    }
    return reload(u, m.now_ms);
}

static void
on_timer(uv_timer_t *t)
{
    struct users *u = t->data;
    int64_t delay = maintain(u);
    if (delay < 0)
        delay = RETRY_MS; /* keep signing with the key we have; try again */
    uv_timer_start(&u->keys.timer, on_timer, (uint64_t)delay, 0);
}

int
users_keys_start(struct users *u)
{
    int64_t delay = maintain(u);
    if (delay < 0)
        return (int)delay;
    uv_timer_init(u->loop, &u->keys.timer);
    u->keys.timer.data = u;
    u->keys.timer_init = true;
    uv_timer_start(&u->keys.timer, on_timer, (uint64_t)delay, 0);
    AG_LOGI("keys", "signing with key '%s'; %zu key(s) published", ag_jwt_key_kid(u->keys.active),
            u->keys.published);
    return 0;
}

void
users_keys_stop(struct users *u)
{
    if (!u->keys.timer_init)
        return;
    uv_timer_stop(&u->keys.timer);
    uv_close((uv_handle_t *)&u->keys.timer, NULL);
    u->keys.timer_init = false;
}

void
users_keys_release(struct users *u)
{
    ag_jwt_key_free(u->keys.active);
    u->keys.active = NULL;
    ag_free(u->keys.jwks);
    u->keys.jwks = NULL;
}

int
users_keys_sign_access(struct users *u, const struct users_account *a, const char *sid,
                       int64_t now_ms, int64_t min_iat, char **out_token)
{
    struct ag_jwt_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.iss, sizeof(c.iss), "%s", u->settings.issuer);
    snprintf(c.aud, sizeof(c.aud), "%s", u->settings.audience);
    snprintf(c.sub, sizeof(c.sub), "%s", a->id);
    snprintf(c.email, sizeof(c.email), "%s", a->email);
    ag_uuid7(c.jti);
    snprintf(c.sid, sizeof(c.sid), "%s", sid != NULL ? sid : "");
    c.iat = AG_MAX(now_ms / 1000, min_iat);
    c.nbf = c.iat;
    c.exp = c.iat + (int64_t)(u->settings.access_ttl_ms / 1000);
    c.roles = users_account_roles(a);
    int rc = ag_jwt_sign(u->keys.active, &c, out_token);
    if (rc != 0) {
        AG_LOGE("keys", "cannot sign an access token: %s", ag_strerror(rc));
        return AG_EINTERNAL;
    }
    return 0;
}
