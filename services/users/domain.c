/* SPDX-License-Identifier: MIT */
/* Users domain rules: accounts and their JSON form, e-mail normalisation,
 * password and name policies, body validation, refresh-token verdicts, key
 * rotation arithmetic, cursors and the login throttle. No I/O. */
#include "agora/base.h"
#include "domain.h"

#include <string.h>

#include <sodium.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/identity.h"
#include "agora/mem.h"

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Bounds of 's' without leading and trailing ASCII whitespace. */
static void
trim(const char *s, const char **out_start, size_t *out_len)
{
    size_t n = strlen(s);
    size_t a = 0;
    while (a < n && is_space(s[a]))
        a++;
    while (n > a && is_space(s[n - 1]))
        n--;
    *out_start = s + a;
    *out_len = n - a;
}

static char
lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- Accounts ---- */

unsigned
users_account_roles(const struct users_account *a)
{
    return AG_IDENTITY_CUSTOMER | (a->admin ? AG_IDENTITY_ADMIN : 0u) |
           (a->courier ? AG_IDENTITY_COURIER : 0u);
}

json_t *
users_account_to_json(const struct users_account *a)
{
    json_t *roles = json_array();
    json_array_append_new(roles, json_string("customer"));
    if (a->admin)
        json_array_append_new(roles, json_string("admin"));
    if (a->courier)
        json_array_append_new(roles, json_string("courier"));
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:s, s:s}", "id", a->id, "email", a->email, "name",
                     a->name, "roles", roles, "disabled", a->disabled, "created_at", a->created_at,
                     "updated_at", a->updated_at);
}

/* ---- E-mail addresses ---- */

static bool
is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80)
        return true;
    return c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

static bool
is_label_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c >= 0x80;
}

static bool
local_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > USERS_EMAIL_LOCAL_MAX || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool
domain_ok(const char *s, size_t n)
{
    size_t labels = 0;
    size_t i = 0;
    while (i <= n) {
        size_t start = i;
        while (i < n && s[i] != '.')
            i++;
        size_t len = i - start;
        if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
            return false;
        for (size_t j = start; j < i; j++) {
            if (!is_label_char((unsigned char)s[j]))
                return false;
        }
        labels++;
        i++; /* past the dot, or past the end */
    }
    return labels >= 2;
}

int
users_email_normalize(const char *in, char out[USERS_EMAIL_MAX + 1])
{
    if (in == NULL)
        return AG_EINVAL;
    const char *s;
    size_t n;
    trim(in, &s, &n);
    if (n < 3 || n > USERS_EMAIL_MAX)
        return AG_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = lower(s[i]);
    out[n] = '\0';
    /* Valid UTF-8 throughout, so non-ASCII bytes are whole characters. */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = ag_utf8_next(out + i, n - i, &cp);
        if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            return AG_EINVAL;
        i += k;
    }
    const char *at = memchr(out, '@', n);
    if (at == NULL || memchr(at + 1, '@', n - (size_t)(at - out) - 1) != NULL)
        return AG_EINVAL;
    size_t local = (size_t)(at - out);
    if (!local_part_ok(out, local) || !domain_ok(at + 1, n - local - 1))
        return AG_EINVAL;
    return 0;
}

/* ---- Passwords and names ---- */

static const struct {
    const char *code;
    const char *detail;
} PASSWORD_PROBLEMS[] = {
#define USERS__PW_ROW(name, code, detail) { code, detail },
    USERS_PASSWORD_PROBLEMS(USERS__PW_ROW)
#undef USERS__PW_ROW
};

const char *
users_password_problem_code(enum users_password_problem p)
{
    return (size_t)p < AG_ARRAY_SIZE(PASSWORD_PROBLEMS) ? PASSWORD_PROBLEMS[p].code : "invalid";
}

const char *
users_password_problem_detail(enum users_password_problem p)
{
    return (size_t)p < AG_ARRAY_SIZE(PASSWORD_PROBLEMS) ? PASSWORD_PROBLEMS[p].detail : "";
}

enum users_password_problem
users_password_check(const char *password, const char *email)
{
    if (password == NULL)
        return USERS_PASSWORD_ENCODING;
    size_t len = strlen(password);
    size_t count = 0;
    bool repeated = true;
    uint32_t first = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = ag_utf8_next(password + i, len - i, &cp);
        if (k == 0)
            return USERS_PASSWORD_ENCODING;
        if (count == 0)
            first = cp;
        else if (cp != first)
            repeated = false;
        count++;
        i += k;
        if (count > USERS_PASSWORD_MAX)
            return USERS_PASSWORD_TOO_LONG;
    }
    if (count < USERS_PASSWORD_MIN)
        return USERS_PASSWORD_TOO_SHORT;
    if (repeated)
        return USERS_PASSWORD_REPEATED;
    if (email != NULL) {
        const char *s;
        size_t n;
        trim(password, &s, &n);
        bool same = n == strlen(email);
        for (size_t i = 0; same && i < n; i++)
            same = lower(s[i]) == email[i];
        if (same)
            return USERS_PASSWORD_IS_EMAIL;
    }
    return USERS_PASSWORD_OK;
}

int
users_name_normalize(const char *in, char out[USERS_NAME_MAX_BYTES + 1])
{
    if (in == NULL)
        return AG_EINVAL;
    const char *s;
    size_t n;
    trim(in, &s, &n);
    if (n == 0 || n > USERS_NAME_MAX_BYTES)
        return AG_EINVAL;
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = ag_utf8_next(s + i, n - i, &cp);
        if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            return AG_EINVAL;
        count++;
        i += k;
    }
    if (count > USERS_NAME_MAX)
        return AG_EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* ---- Request bodies ---- */

static void
password_error(struct ag_valid *v, const char *field, enum users_password_problem p)
{
    ag_valid_error(v, field, users_password_problem_code(p), "%s",
                   users_password_problem_detail(p));
}

bool
users_register_from_json(struct ag_valid *v, json_t *body, struct users_register_req *out)
{
    static const char *const allowed[] = { "email", "password", "name", NULL };
    memset(out, 0, sizeof(*out));
    ag_valid_unknown(v, body, NULL, allowed);
    const char *email = ag_valid_string(v, body, NULL, "email", AG_VALID_REQUIRED, 1, 0);
    const char *password = ag_valid_string(v, body, NULL, "password", AG_VALID_REQUIRED, 0, 0);
    const char *name = ag_valid_string(v, body, NULL, "name", AG_VALID_REQUIRED, 0, 0);
    bool email_ok = false;
    if (email != NULL) {
        email_ok = users_email_normalize(email, out->email) == 0;
        if (!email_ok)
            ag_valid_error(v, "email", "invalid", "must be an e-mail address of at most %d bytes",
                           USERS_EMAIL_MAX);
    }
    if (password != NULL) {
        enum users_password_problem p =
            users_password_check(password, email_ok ? out->email : NULL);
        if (p != USERS_PASSWORD_OK)
            password_error(v, "password", p);
        out->password = password;
    }
    if (name != NULL && users_name_normalize(name, out->name) != 0)
        ag_valid_error(v, "name", "invalid",
                       "must have 1 to %d characters, without control characters", USERS_NAME_MAX);
    return ag_valid_ok(v);
}

bool
users_login_from_json(struct ag_valid *v, json_t *body, struct users_login_req *out)
{
    static const char *const allowed[] = { "email", "password", NULL };
    memset(out, 0, sizeof(*out));
    ag_valid_unknown(v, body, NULL, allowed);
    out->email = ag_valid_string(v, body, NULL, "email", AG_VALID_REQUIRED, 1, 1024);
    out->password = ag_valid_string(v, body, NULL, "password", AG_VALID_REQUIRED, 1, 0);
    if (out->password != NULL && strlen(out->password) > USERS_LOGIN_INPUT_MAX) {
        ag_valid_error(v, "password", "too_long", "must be at most %d bytes",
                       USERS_LOGIN_INPUT_MAX);
        out->password = NULL;
    }
    return ag_valid_ok(v);
}

bool
users_patch_from_json(struct ag_valid *v, json_t *body, const char *email,
                      struct users_patch_req *out)
{
    static const char *const allowed[] = { "name", "password", "current_password", NULL };
    memset(out, 0, sizeof(*out));
    ag_valid_unknown(v, body, NULL, allowed);
    const char *name = ag_valid_string(v, body, NULL, "name", AG_VALID_OPTIONAL, 0, 0);
    const char *password = ag_valid_string(v, body, NULL, "password", AG_VALID_OPTIONAL, 0, 0);
    const char *current =
        ag_valid_string(v, body, NULL, "current_password", AG_VALID_OPTIONAL, 1, 0);
    if (name != NULL) {
        if (users_name_normalize(name, out->name) != 0)
            ag_valid_error(v, "name", "invalid",
                           "must have 1 to %d characters, without control characters",
                           USERS_NAME_MAX);
        else
            out->has_name = true;
    }
    if (password != NULL) {
        enum users_password_problem p = users_password_check(password, email);
        if (p != USERS_PASSWORD_OK)
            password_error(v, "password", p);
        out->password = password;
        if (json_object_get(body, "current_password") == NULL)
            ag_valid_error(v, "current_password", "required", "is required to change the password");
    }
    if (current != NULL && strlen(current) > USERS_LOGIN_INPUT_MAX)
        ag_valid_error(v, "current_password", "too_long", "must be at most %d bytes",
                       USERS_LOGIN_INPUT_MAX);
    out->current_password = current;
    return ag_valid_ok(v);
}

/* ---- Refresh tokens ---- */

enum users_refresh_verdict
users_refresh_judge(const struct users_refresh_state *s, int64_t now_ms)
{
    if (!s->found)
        return USERS_REFRESH_UNKNOWN;
    if (s->family_revoked)
        return USERS_REFRESH_REVOKED;
    if (s->spent)
        return USERS_REFRESH_REUSED;
    if (s->user_disabled)
        return USERS_REFRESH_DISABLED;
    if (now_ms >= s->expires_at_ms)
        return USERS_REFRESH_EXPIRED;
    return USERS_REFRESH_OK;
}

bool
users_refresh_token_is_wellformed(const char *s)
{
    if (s == NULL || strlen(s) != USERS_REFRESH_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < USERS_REFRESH_TOKEN_LEN; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- Signing keys ---- */

bool
users_key_rotation_due(int64_t created_ms, int64_t now_ms, int64_t rotation_ms)
{
    return now_ms - created_ms >= rotation_ms;
}

int64_t
users_key_drop_at(int64_t retired_ms, int64_t access_ttl_ms, int64_t leeway_ms)
{
    return retired_ms + access_ttl_ms + leeway_ms;
}

int64_t
users_keys_max_published(int64_t rotation_ms, int64_t access_ttl_ms, int64_t leeway_ms)
{
    int64_t window = access_ttl_ms + leeway_ms;
    /* Keys retired within the last 'window' are still published, one per
     * rotation, plus the active key. */
    return (window + rotation_ms - 1) / rotation_ms + 1;
}

/* ---- Paging ---- */

void
users_cursor_encode(const char *last_id, char out[USERS_CURSOR_MAX])
{
    ag_base64url_encode(last_id, strlen(last_id), out, USERS_CURSOR_MAX);
}

int
users_cursor_decode(const char *cursor, char out_id[AG_UUID_STRLEN + 1])
{
    unsigned char raw[AG_UUID_STRLEN + 1];
    size_t n = 0;
    if (ag_base64url_decode(cursor, strlen(cursor), raw, sizeof(raw), &n) != 0 ||
        n != AG_UUID_STRLEN || !ag_uuid_is_valid(ag_str_make((const char *)raw, n)))
        return AG_EINVAL;
    memcpy(out_id, raw, n);
    out_id[n] = '\0';
    return 0;
}

/* ---- Throttle ---- */

struct throttle_entry {
    struct throttle_entry *chain; /* next in the hash bucket */
    struct throttle_entry *newer; /* LRU neighbour towards the most recent */
    struct throttle_entry *older; /* LRU neighbour towards the least recent */
    uint64_t hash;                /* of 'key' */
    int count;                    /* events in the ring */
    int head;                     /* slot of the oldest event */
    char *key;                    /* NUL-terminated, after 'times' */
    int64_t times[];              /* 'limit' slots, a ring of event times */
};

struct users_throttle {
    struct users_throttle_config cfg;
    int ring; /* event slots per key: 'limit', plus the doublings in backoff mode */
    unsigned char hkey[crypto_shorthash_KEYBYTES]; /* SipHash key from the seed */
    struct throttle_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t size;     /* entries */
    struct throttle_entry *newest;
    struct throttle_entry *oldest;
};

struct users_throttle *
users_throttle_new(const struct users_throttle_config *cfg)
{
    struct users_throttle *t = ag_calloc(1, sizeof(*t));
    t->cfg = *cfg;
    if (t->cfg.limit < 1)
        t->cfg.limit = 1;
    if (t->cfg.limit > 1000)
        t->cfg.limit = 1000;
    t->ring = t->cfg.limit;
    if (t->cfg.backoff_base_ms > 0) {
        /* Room for the doublings past the limit that stay under the cap. */
        int doublings = 0;
        while (doublings < 40 && (t->cfg.backoff_base_ms << doublings) < t->cfg.backoff_max_ms)
            doublings++;
        t->ring = t->cfg.limit + doublings + 1;
    }
    if (t->cfg.max_keys == 0)
        t->cfg.max_keys = 10000;
    for (size_t i = 0; i < sizeof(t->hkey); i++)
        t->hkey[i] = (unsigned char)(cfg->seed >> (8 * (i % 8))) ^ (unsigned char)(i * 0x5b);
    t->nbuckets = 16;
    while (t->nbuckets < t->cfg.max_keys)
        t->nbuckets <<= 1;
    t->buckets = ag_calloc(t->nbuckets, sizeof(*t->buckets));
    return t;
}

void
users_throttle_free(struct users_throttle *t)
{
    if (t == NULL)
        return;
    struct throttle_entry *e = t->newest;
    while (e != NULL) {
        struct throttle_entry *next = e->older;
        ag_free(e);
        e = next;
    }
    ag_free(t->buckets);
    ag_free(t);
}

size_t
users_throttle_size(const struct users_throttle *t)
{
    return t->size;
}

static uint64_t
throttle_hash(const struct users_throttle *t, const char *key)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, strlen(key), t->hkey);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        v = (v << 8) | h[i];
    return v;
}

static struct throttle_entry *
throttle_find(const struct users_throttle *t, const char *key, uint64_t hash)
{
    for (struct throttle_entry *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->chain) {
        if (e->hash == hash && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

static void
lru_unlink(struct users_throttle *t, struct throttle_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void
lru_push_newest(struct users_throttle *t, struct throttle_entry *e)
{
    e->older = t->newest;
    e->newer = NULL;
    if (t->newest)
        t->newest->newer = e;
    t->newest = e;
    if (t->oldest == NULL)
        t->oldest = e;
}

static void
throttle_remove(struct users_throttle *t, struct throttle_entry *e)
{
    struct throttle_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(t, e);
    t->size--;
    ag_free(e);
}

/* Drop the events of 'e' that left the window ending at 'now_ms'. */
static void
throttle_prune(const struct users_throttle *t, struct throttle_entry *e, int64_t now_ms)
{
    while (e->count > 0 && e->times[e->head] <= now_ms - t->cfg.window_ms) {
        e->head = (e->head + 1) % t->ring;
        e->count--;
    }
}

int64_t
users_throttle_wait(struct users_throttle *t, const char *key, int64_t now_ms)
{
    uint64_t hash = throttle_hash(t, key);
    struct throttle_entry *e = throttle_find(t, key, hash);
    if (e == NULL)
        return 0;
    throttle_prune(t, e, now_ms);
    if (e->count == 0) {
        throttle_remove(t, e);
        return 0;
    }
    if (e->count < t->cfg.limit)
        return 0;
    if (t->cfg.backoff_base_ms > 0) {
        int64_t newest = e->times[(e->head + e->count - 1) % t->ring];
        int64_t delay = t->cfg.backoff_base_ms << (e->count - t->cfg.limit);
        if (delay > t->cfg.backoff_max_ms || delay <= 0)
            delay = t->cfg.backoff_max_ms;
        int64_t wait = newest + delay - now_ms;
        return wait > 0 ? wait : 0;
    }
    int64_t wait = e->times[e->head] + t->cfg.window_ms - now_ms;
    return wait > 0 ? wait : 1;
}

int
users_throttle_count(struct users_throttle *t, const char *key, int64_t now_ms)
{
    struct throttle_entry *e = throttle_find(t, key, throttle_hash(t, key));
    if (e == NULL)
        return 0;
    throttle_prune(t, e, now_ms);
    return e->count;
}

void
users_throttle_hit(struct users_throttle *t, const char *key, int64_t now_ms)
{
    uint64_t hash = throttle_hash(t, key);
    struct throttle_entry *e = throttle_find(t, key, hash);
    if (e == NULL) {
        if (t->size >= t->cfg.max_keys)
            throttle_remove(t, t->oldest);
        size_t klen = strlen(key);
        size_t times = sizeof(int64_t) * (size_t)t->ring;
        e = ag_calloc(1, sizeof(*e) + times + klen + 1);
        e->hash = hash;
        e->key = (char *)e->times + times;
        memcpy(e->key, key, klen + 1);
        size_t b = hash & (t->nbuckets - 1);
        e->chain = t->buckets[b];
        t->buckets[b] = e;
        t->size++;
    } else {
        lru_unlink(t, e);
        throttle_prune(t, e, now_ms);
    }
    lru_push_newest(t, e);
    if (e->count == t->ring) {
        e->times[e->head] = now_ms; /* the oldest slot becomes the newest */
        e->head = (e->head + 1) % t->ring;
    } else {
        e->times[(e->head + e->count) % t->ring] = now_ms;
        e->count++;
    }
}

void
users_throttle_clear(struct users_throttle *t, const char *key)
{
    struct throttle_entry *e = throttle_find(t, key, throttle_hash(t, key));
    if (e != NULL)
        throttle_remove(t, e);
}

int64_t
users_retry_after_seconds(int64_t wait_ms)
{
    int64_t s = (wait_ms + 999) / 1000;
    return s < 1 ? 1 : s;
}
