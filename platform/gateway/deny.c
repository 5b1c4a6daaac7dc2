/* SPDX-License-Identifier: MIT */
/* The gateway's deny list of revoked access tokens (issue 11): per user,
 * "tokens issued at or before T are refused" (disable, password change),
 * and per session id, "refused" (logout, refresh-token reuse). Fed by the
 * users service's session.revoked and user.disabled events (main.c) and
 * restored from GET /v1/internal/revocations at start; consulted by
 * auth.c on every request, cached tokens included. Bounded: an entry goes
 * once every token it can match has expired, and at the cap a revocation
 * is never forgotten: it is merged into the user's entry, or else every
 * token issued up to now is refused (the global cut-off) and the entries
 * it covers are dropped. Loop thread only. */
#include "agora/base.h"
#include "gateway.h"

#include <stdio.h>
#include <string.h>

#include "agora/jwt.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

/* Key: 'u' or 's', then the user or session id. */
#define KEY_MAX (1 + AG_JWT_SUB_MAX)

struct deny_entry {
    struct gw_entry e;
    char key[KEY_MAX];
    int64_t before;  /* user entries: iat <= before is refused */
    int64_t expires; /* unix s: no token it matches is valid after (+ leeway) */
};

struct gw_deny {
    struct gw_table t;
    size_t max;
    int64_t leeway_s;
    int64_t global_before;  /* every token with iat <= this is refused, 0: none */
    int64_t global_expires; /* ... until this (unix s) */
    size_t users;           /* user entries held */
    size_t sessions;        /* session entries held */
    uint64_t overflows;     /* times the cap forced a merge or the global cut-off */
};

static void
entry_free(struct gw_entry *e, void *udata)
{
    struct gw_deny *d = udata;
    struct deny_entry *x = (struct deny_entry *)e;
    if (x->key[0] == 'u')
        d->users--;
    else
        d->sessions--;
    ag_free(x);
}

struct gw_deny *
gw_deny_new(size_t max_entries, int64_t leeway_s)
{
    struct gw_deny *d = ag_calloc(1, sizeof(*d));
    d->max = max_entries > 0 ? max_entries : 1;
    d->leeway_s = leeway_s;
    /* One more slot than the cap: the table itself never evicts (that
     * would forget a revocation); gw_deny_add keeps the count under it. */
    gw_table_init(&d->t, d->max + 1, entry_free, d);
    return d;
}

void
gw_deny_free(struct gw_deny *d)
{
    if (d == NULL)
        return;
    gw_table_release(&d->t);
    ag_free(d);
}

static size_t
make_key(char kind, const char *id, char out[KEY_MAX])
{
    int n = snprintf(out, KEY_MAX, "%c%s", kind, id);
    return n < 0 ? 0 : AG_MIN((size_t)n, KEY_MAX - 1);
}

static struct deny_entry *
find(struct gw_deny *d, const char *key, size_t len)
{
    uint64_t h = gw_table_hash(&d->t, key, len);
    return (struct deny_entry *)gw_table_find(&d->t, key, len, h);
}

/* Whether 'x' can still match a token at 'now'. */
static bool
live(const struct gw_deny *d, const struct deny_entry *x, int64_t now)
{
    return x->expires + d->leeway_s >= now;
}

/* The cap is reached and 'key' is new: refuse every token issued up to
 * 'before' until 'expires' (covering every entry held, which go). */
static void
overflow_global(struct gw_deny *d, int64_t before, int64_t expires)
{
    for (struct gw_entry *e = gw_table_oldest(&d->t); e != NULL; e = gw_table_newer(&d->t, e)) {
        const struct deny_entry *x = (const struct deny_entry *)e;
        before = AG_MAX(before, x->before);
        expires = AG_MAX(expires, x->expires);
    }
    d->global_before = AG_MAX(d->global_before, before);
    d->global_expires = AG_MAX(d->global_expires, expires);
    gw_table_release(&d->t);
    gw_table_init(&d->t, d->max + 1, entry_free, d);
    d->overflows++;
    AG_LOGW("deny",
            "deny list full (%zu entries): every access token issued up to %lld is "
            "refused until %lld; clients refresh their tokens",
            d->max, (long long)d->global_before, (long long)d->global_expires);
}

enum gw_deny_added
gw_deny_add(struct gw_deny *d, const char *user_id, const char *session_id, int64_t issued_before,
            int64_t expires_at)
{
    if (user_id == NULL || user_id[0] == '\0')
        return GW_DENY_IGNORED;
    int64_t now = ag_time_unix_ms() / 1000;
    if (expires_at + d->leeway_s < now)
        return GW_DENY_IGNORED; /* every token it matches has expired */
    bool session = session_id != NULL && session_id[0] != '\0';
    char key[KEY_MAX];
    size_t len = make_key(session ? 's' : 'u', session ? session_id : user_id, key);
    struct deny_entry *x = find(d, key, len);
    if (x != NULL) {
        x->before = AG_MAX(x->before, issued_before);
        x->expires = AG_MAX(x->expires, expires_at);
        return GW_DENY_ADDED;
    }
    if (d->t.count >= d->max) {
        gw_deny_sweep(d, now);
        if (d->t.count >= d->max) {
            /* Fail closed for that user: a session folds into the user's
             * entry when there is one. */
            char ukey[KEY_MAX];
            size_t ulen = make_key('u', user_id, ukey);
            struct deny_entry *u = session ? find(d, ukey, ulen) : NULL;
            if (u != NULL) {
                u->before = AG_MAX(u->before, issued_before);
                u->expires = AG_MAX(u->expires, expires_at);
                d->overflows++;
                return GW_DENY_MERGED;
            }
            overflow_global(d, issued_before, expires_at);
            return GW_DENY_GLOBAL;
        }
    }
    x = ag_calloc(1, sizeof(*x));
    memcpy(x->key, key, len + 1);
    x->before = issued_before;
    x->expires = expires_at;
    x->e.key = x->key;
    x->e.keylen = len;
    x->e.hash = gw_table_hash(&d->t, key, len);
    gw_table_insert(&d->t, &x->e);
    if (session)
        d->sessions++;
    else
        d->users++;
    return GW_DENY_ADDED;
}

enum gw_deny_verdict
gw_deny_check(struct gw_deny *d, const char *user_id, const char *sid, int64_t iat, int64_t now)
{
    if (d->global_before != 0) {
        if (d->global_expires + d->leeway_s < now) {
            d->global_before = 0;
            d->global_expires = 0;
        } else if (iat <= d->global_before) {
            return GW_DENY_ALL;
        }
    }
    if (d->t.count == 0)
        return GW_DENY_NONE;
    char key[KEY_MAX];
    size_t len = make_key('u', user_id, key);
    const struct deny_entry *x = find(d, key, len);
    if (x != NULL && live(d, x, now) && iat <= x->before)
        return GW_DENY_USER;
    if (sid != NULL && sid[0] != '\0') {
        len = make_key('s', sid, key);
        x = find(d, key, len);
        if (x != NULL && live(d, x, now))
            return GW_DENY_SESSION;
    }
    return GW_DENY_NONE;
}

void
gw_deny_sweep(struct gw_deny *d, int64_t now)
{
    struct gw_entry *e = gw_table_oldest(&d->t);
    while (e != NULL) {
        struct gw_entry *newer = gw_table_newer(&d->t, e);
        if (!live(d, (struct deny_entry *)e, now))
            gw_table_remove(&d->t, e);
        e = newer;
    }
    if (d->global_before != 0 && d->global_expires + d->leeway_s < now) {
        d->global_before = 0;
        d->global_expires = 0;
    }
}

void
gw_deny_stats(const struct gw_deny *d, struct gw_deny_stats *out)
{
    out->users = d->users;
    out->sessions = d->sessions;
    out->overflows = d->overflows;
    out->global_before = d->global_before;
}

const char *
gw_deny_verdict_name(enum gw_deny_verdict v)
{
    switch (v) {
    case GW_DENY_NONE: return "none";
    case GW_DENY_USER: return "user";
    case GW_DENY_SESSION: return "session";
    case GW_DENY_ALL: return "all";
    }
    return "none";
}
