/* SPDX-License-Identifier: MIT */
/* Users domain: the account model and its JSON form, e-mail normalisation,
 * the password and name policies, validation of request bodies, refresh
 * token verdicts, signing-key rotation arithmetic, page cursors and the
 * sliding-window throttle used against password guessing. Pure: no I/O, no
 * database, no clock (times are passed in), no randomness. */
#ifndef USERS_DOMAIN_H
#define USERS_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/json.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define USERS_EMAIL_MAX         254 /* bytes of a normalised address */
#define USERS_EMAIL_LOCAL_MAX   64  /* bytes before the '@' */
#define USERS_PASSWORD_MIN      12  /* code points */
#define USERS_PASSWORD_MAX      128 /* code points */
#define USERS_NAME_MAX          100 /* code points */
#define USERS_NAME_MAX_BYTES    (USERS_NAME_MAX * 4)
#define USERS_LOGIN_INPUT_MAX   1024 /* bytes of a password accepted at login */
#define USERS_CURSOR_MAX        64   /* bytes of an encoded cursor, NUL included */
#define USERS_REFRESH_TOKEN_LEN 43   /* base64url of 32 random bytes */

struct users_account {
    char id[AG_UUID_STRLEN + 1];         /* UUIDv7 */
    char email[USERS_EMAIL_MAX + 1];     /* normalised */
    char name[USERS_NAME_MAX_BYTES + 1]; /* trimmed display name */
    bool admin;                          /* has the admin role (everyone is a customer) */
    bool disabled;                       /* may not log in or refresh */
    bool courier;                        /* has the courier role (moves shipments along) */
    char created_at[AG_RFC3339_LEN];     /* RFC 3339 UTC */
    char updated_at[AG_RFC3339_LEN];     /* RFC 3339 UTC */
};

/* The account as served: {id, email, name, roles, disabled, created_at,
 * updated_at}. New reference. */
json_t *users_account_to_json(const struct users_account *a);

/* Role bits (enum ag_identity_roles) of 'a': customer, plus admin and
 * courier when granted. */
unsigned users_account_roles(const struct users_account *a);

/* ---- E-mail addresses ---- */

/* Normalise 'in': trim ASCII whitespace, lower-case ASCII letters, then
 * check a basic syntax: one '@'; a local part of 1-64 bytes of RFC 5322
 * atext and dots (not leading, trailing or doubled) or non-ASCII UTF-8; a
 * domain of two or more dot-separated labels of letters, digits, hyphens
 * (not at a label's ends) or non-ASCII UTF-8, each 1-63 bytes; 254 bytes in
 * all. Returns 0 with the result in 'out', or AG_EINVAL. */
int users_email_normalize(const char *in, char out[USERS_EMAIL_MAX + 1]);

/* ---- Passwords and names ---- */

/* X-macro of password policy outcomes: constant suffix, error code (the
 * "code" of the 422 field error), detail. */
#define USERS_PASSWORD_PROBLEMS(X)                                                                 \
    X(OK, "ok", "")                                                                                \
    X(TOO_SHORT, "too_short", "must have at least 12 characters")                                  \
    X(TOO_LONG, "too_long", "must have at most 128 characters")                                    \
    X(REPEATED, "repeated", "must not be one character repeated")                                  \
    X(IS_EMAIL, "is_email", "must not be the e-mail address")                                      \
    X(ENCODING, "invalid", "must be valid UTF-8 without NUL characters")

enum users_password_problem {
#define USERS__PW_ENUM(name, code, detail) USERS_PASSWORD_##name,
    USERS_PASSWORD_PROBLEMS(USERS__PW_ENUM)
#undef USERS__PW_ENUM
};

/* Judge 'password' against the policy: 12 to 128 code points, not a
 * single character repeated, not the account's e-mail address 'email'
 * (normalised; NULL skips that rule; compared after trimming and ASCII
 * lower-casing the password). */
enum users_password_problem users_password_check(const char *password, const char *email);

/* The error code and detail of 'p'; static strings. */
const char *users_password_problem_code(enum users_password_problem p);
const char *users_password_problem_detail(enum users_password_problem p);

/* Trim 'in' into 'out' and check it is 1 to 100 code points without
 * control characters. Returns 0 or AG_EINVAL. */
int users_name_normalize(const char *in, char out[USERS_NAME_MAX_BYTES + 1]);

/* ---- Request bodies ---- */

struct users_register_req {
    char email[USERS_EMAIL_MAX + 1];     /* normalised */
    const char *password;                /* borrowed from the body */
    char name[USERS_NAME_MAX_BYTES + 1]; /* normalised */
};

/* Validate a registration body {email, password, name}; errors go to 'v'
 * (fields "email", "password", "name", unknown fields). */
bool users_register_from_json(struct ag_valid *v, json_t *body, struct users_register_req *out);

struct users_login_req {
    const char *email;    /* as sent (normalised by the caller; may be invalid) */
    const char *password; /* borrowed from the body */
};

/* Validate a login body {email, password}: two strings (the password at
 * most USERS_LOGIN_INPUT_MAX bytes). The policy is not applied here. */
bool users_login_from_json(struct ag_valid *v, json_t *body, struct users_login_req *out);

struct users_patch_req {
    bool has_name;
    char name[USERS_NAME_MAX_BYTES + 1];
    const char *password;         /* new password or NULL; borrowed */
    const char *current_password; /* required with 'password'; borrowed */
};

/* Validate a PATCH /v1/users/me body {name?, password?, current_password?}
 * for account 'email' (the password policy needs it). */
bool users_patch_from_json(struct ag_valid *v, json_t *body, const char *email,
                           struct users_patch_req *out);

/* ---- Refresh tokens ---- */

/* What the store knows about a presented refresh token. */
struct users_refresh_state {
    bool found;            /* a token with that hash exists */
    bool spent;            /* it was already exchanged for a newer one */
    bool family_revoked;   /* its family (one login) was revoked */
    bool user_disabled;    /* its owner is disabled */
    int64_t expires_at_ms; /* unix ms */
};

enum users_refresh_verdict {
    USERS_REFRESH_OK = 0,   /* exchange it: spend it, issue its successor */
    USERS_REFRESH_UNKNOWN,  /* no such token */
    USERS_REFRESH_REVOKED,  /* the family was revoked (logout, reuse, disable) */
    USERS_REFRESH_REUSED,   /* spent token presented again: revoke the family */
    USERS_REFRESH_DISABLED, /* owner disabled: revoke the family */
    USERS_REFRESH_EXPIRED,  /* past its expiry */
};

/* The verdict on presenting a token in state 's' at 'now_ms'. A spent token
 * is judged reuse even when expired, since only a copy can be presented
 * again. Every verdict but OK is answered 401. */
enum users_refresh_verdict users_refresh_judge(const struct users_refresh_state *s, int64_t now_ms);

/* True for a string that can be a refresh token: 43 base64url characters. */
bool users_refresh_token_is_wellformed(const char *s);

/* ---- Signing keys ---- */

/* True when the active key created at 'created_ms' must be replaced. */
bool users_key_rotation_due(int64_t created_ms, int64_t now_ms, int64_t rotation_ms);

/* When a key retired at 'retired_ms' may leave the JWKS: after the last
 * token it signed ('access_ttl_ms') has expired even for a verifier whose
 * clock lags by 'leeway_ms'. */
int64_t users_key_drop_at(int64_t retired_ms, int64_t access_ttl_ms, int64_t leeway_ms);

/* The most keys published at once with these settings: the active key and
 * every retired key still inside its drop window. */
int64_t users_keys_max_published(int64_t rotation_ms, int64_t access_ttl_ms, int64_t leeway_ms);

/* ---- Paging ---- */

/* Opaque cursor for the account listing: base64url of the last id. */
void users_cursor_encode(const char *last_id, char out[USERS_CURSOR_MAX]);

/* Decode 'cursor' into 'out_id'; AG_EINVAL unless it holds a UUID. */
int users_cursor_decode(const char *cursor, char out_id[AG_UUID_STRLEN + 1]);

/* ---- Throttle ----
 * A sliding-window log per key (an account's e-mail, a client address):
 * at most 'limit' events in any 'window_ms'. Memory is bounded: at most
 * 'max_keys' keys are tracked; past that the least recently used key is
 * forgotten. Loop thread only. */

struct users_throttle;

struct users_throttle_config {
    int limit;         /* events allowed per window, 1-1000 */
    int64_t window_ms; /* window length */
    size_t max_keys;   /* keys tracked; 0 means 10000 */
    uint64_t seed;     /* hash seed (random in production, fixed in tests) */
    /* Growing delay instead of a hard limit when 'backoff_base_ms' > 0:
     * once 'limit' events are in the window, the next one must wait
     * base * 2^(events - limit) ms after the newest, at most
     * 'backoff_max_ms' (OWASP: slow the attacker, never lock the owner). */
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
};

/* New throttle (owned; users_throttle_free). */
struct users_throttle *users_throttle_new(const struct users_throttle_config *cfg);
void users_throttle_free(struct users_throttle *t);

/* Milliseconds to wait before 'key' may have another event at 'now_ms':
 * 0 when it may now. Forgets events older than the window. */
int64_t users_throttle_wait(struct users_throttle *t, const char *key, int64_t now_ms);

/* Record an event for 'key' at 'now_ms'. */
void users_throttle_hit(struct users_throttle *t, const char *key, int64_t now_ms);

/* Events of 'key' within the window ending at 'now_ms'. */
int users_throttle_count(struct users_throttle *t, const char *key, int64_t now_ms);

/* Forget 'key' (e.g. after a successful login). */
void users_throttle_clear(struct users_throttle *t, const char *key);

/* Keys tracked now. */
size_t users_throttle_size(const struct users_throttle *t);

/* Whole seconds for Retry-After from a wait in ms: rounded up, at least 1. */
int64_t users_retry_after_seconds(int64_t wait_ms);

#endif /* USERS_DOMAIN_H */
