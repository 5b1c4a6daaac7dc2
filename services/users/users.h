/* SPDX-License-Identifier: MIT */
/* Users service internals shared by main.c, api.c, credentials.c, keys.c,
 * events.c and store.c. */
#ifndef USERS_USERS_H
#define USERS_USERS_H

#include "agora/base.h"

#include <sodium.h>
#include <uv.h>

#include "agora/jwt.h"
#include "agora/metrics.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"
#include "domain.h"

#define USERS_PAGE_DEFAULT 20
#define USERS_PAGE_MAX     100
#define USERS_HASH_MAX     crypto_pwhash_STRBYTES /* bytes of an encoded argon2id hash */
#define USERS_TOKEN_HASH   crypto_hash_sha256_BYTES

/* Settings (main.c has the table with defaults and bounds). */
struct users_settings {
    char *issuer;                  /* AGORA_USERS_ISSUER */
    char *audience;                /* AGORA_USERS_AUDIENCE */
    uint64_t access_ttl_ms;        /* AGORA_USERS_ACCESS_TTL */
    uint64_t refresh_ttl_ms;       /* AGORA_USERS_REFRESH_TTL */
    uint64_t key_rotation_ms;      /* AGORA_USERS_KEY_ROTATION */
    uint64_t leeway_ms;            /* AGORA_USERS_TOKEN_LEEWAY */
    int64_t argon2_opslimit;       /* AGORA_USERS_ARGON2_OPSLIMIT */
    uint64_t argon2_memlimit;      /* AGORA_USERS_ARGON2_MEMLIMIT */
    int64_t max_password_jobs;     /* AGORA_USERS_MAX_PASSWORD_JOBS */
    int64_t login_max_failures;    /* AGORA_USERS_LOGIN_MAX_FAILURES */
    uint64_t login_window_ms;      /* AGORA_USERS_LOGIN_FAILURE_WINDOW */
    uint64_t login_backoff_max_ms; /* AGORA_USERS_LOGIN_BACKOFF_MAX */
    int64_t account_max_failures;  /* AGORA_USERS_ACCOUNT_MAX_FAILURES */
    uint64_t known_client_ttl_ms;  /* AGORA_USERS_KNOWN_CLIENT_TTL */
    int64_t client_max_attempts;   /* AGORA_USERS_CLIENT_MAX_ATTEMPTS */
    uint64_t client_window_ms;     /* AGORA_USERS_CLIENT_WINDOW */
    char *admin_email;             /* AGORA_USERS_ADMIN_EMAIL */
    char *admin_password;          /* AGORA_USERS_ADMIN_PASSWORD (never logged) */
};

/* Signing keys in memory (keys.c). */
struct users_keys {
    struct ag_jwt_key *active; /* signs new access tokens */
    int64_t active_created_ms; /* when 'active' was made */
    char *jwks;                /* the JWKS document served, JSON */
    size_t jwks_len;           /* bytes of 'jwks' */
    size_t published;          /* keys in 'jwks' */
    uv_timer_t timer;          /* next rotation or drop */
    bool timer_init;           /* 'timer' initialised (and must be closed) */
};

struct users_metrics {
    struct ag_metric *logins;        /* users_logins_total{result} */
    struct ag_metric *registrations; /* users_registrations_total{result} */
    struct ag_metric *refreshes;     /* users_refreshes_total{result} */
    struct ag_metric *hash_seconds;  /* users_password_job_seconds */
    struct ag_metric *jobs;          /* users_password_jobs_in_flight */
    struct ag_metric *keys;          /* users_signing_keys_published */
    struct ag_metric *rotations;     /* users_key_rotations_total */
};

struct users {
    struct ag_service *svc;   /* borrowed */
    struct ag_store *store;   /* borrowed from svc */
    struct ag_events *events; /* borrowed from svc: the outbox */
    uv_loop_t *loop;          /* borrowed from svc */
    struct users_settings settings;
    struct users_keys keys;
    struct users_throttle *pairs;    /* login failures per (e-mail, client): growing delay */
    struct users_throttle *accounts; /* login failures per e-mail, from any client */
    struct users_throttle *known;    /* (e-mail, client) pairs that signed in before */
    struct users_throttle *clients;  /* attempts per client (the one the gateway saw) */
    char dummy_hash[USERS_HASH_MAX]; /* verified against when the e-mail is unknown */
    int64_t password_jobs;           /* argon2 jobs queued or running */
    struct users_metrics m;
};

/* ---- api.c ---- */
extern const struct ag_route users_routes[];
extern const size_t users_nroutes;

/* ---- credentials.c: argon2id off the loop ---- */

struct users_pw_result {
    int rc;                    /* 0, or AG_EINTERNAL when hashing failed (memory) */
    bool verified;             /* the password to verify matched the stored hash */
    bool hashed;               /* 'hash' holds a new hash */
    char hash[USERS_HASH_MAX]; /* argon2id string of the new (or rehashed) password */
};

typedef void (*users_pw_done_fn)(struct users *u, const struct users_pw_result *res, void *udata);

/* Run argon2id on the libuv thread pool and call 'done' on the loop.
 * 'verify' (may be NULL) is checked against 'stored' (an encoded hash);
 * 'hash' (may be NULL) is hashed with the configured cost when 'verify' is
 * NULL or matched. With 'verify' alone, a match against a hash made with
 * weaker settings also yields a new hash ('hashed'), so stored hashes follow
 * the configured cost. The passwords are copied and wiped after use.
 * Returns 0 ('done' will run exactly once, never before this returns) or
 * AG_EBUSY when AGORA_USERS_MAX_PASSWORD_JOBS are in flight ('done' never
 * runs). Loop thread. */
int users_pw_submit(struct users *u, const char *verify, const char *stored, const char *hash,
                    users_pw_done_fn done, void *udata);

/* Hash 'password' now, on this thread (start-up only). 0 or AG_EINTERNAL. */
int users_pw_hash_now(const struct users *u, const char *password, char out[USERS_HASH_MAX]);

/* A new refresh token (43 base64url characters of 32 random bytes) and its
 * SHA-256, the only form stored. */
void users_refresh_token_new(char out[USERS_REFRESH_TOKEN_LEN + 1],
                             unsigned char out_hash[USERS_TOKEN_HASH]);

/* SHA-256 of a presented refresh token. */
void users_refresh_token_hash(const char *token, unsigned char out_hash[USERS_TOKEN_HASH]);

/* ---- keys.c: signing keys, rotation and the JWKS ---- */

/* Load the keys from the database, make or rotate the active key as due,
 * build the JWKS, and arm the rotation timer. 0 or a store error. */
int users_keys_start(struct users *u);

/* Stop the timer and close its handle (the loop must run once more). */
void users_keys_stop(struct users *u);

/* Free what users_keys_start built (after the loop ended). */
void users_keys_release(struct users *u);

/* Sign an access token for 'a' at 'now_ms' with the active key, carrying
 * the session (refresh-token family) id 'sid' (NULL: none) as claim "sid".
 * Its "iat" (and "nbf") is at least 'min_iat' (unix s): one past the
 * user's revocation cut-off, so that a token issued in the second of a
 * revocation is not refused with the tokens it revoked. On success
 * '*out_token' is owned (ag_free). 0 or AG_EINTERNAL. */
int users_keys_sign_access(struct users *u, const struct users_account *a, const char *sid,
                           int64_t now_ms, int64_t min_iat, char **out_token);

/* ---- events.c: user.registered / user.updated through the outbox ----
 * 'ev' is the service's events runtime (struct users 'events'); with NULL
 * (no runtime, e.g. in unit tests) nothing is written and 0 is returned. */

/* user.registered for 'a', written to the outbox inside the caller's open
 * transaction (so the event exists if and only if the account does). A
 * failure is logged by the events runtime; return it to roll back. */
int users_events_registered(struct ag_events *ev, const struct users_account *a);

/* Send what committed now rather than at the relay's next poll. */
void users_events_kick(struct ag_events *ev);

/* What a user.updated event says changed (its "changed" list). */
enum users_change {
    USERS_CHANGED_EMAIL = 1 << 0,
    USERS_CHANGED_NAME = 1 << 1,
    USERS_CHANGED_PASSWORD = 1 << 2,
    USERS_CHANGED_ROLES = 1 << 3,
    USERS_CHANGED_DISABLED = 1 << 4,
};

/* user.updated for 'a' with the 'changed' bits, inside the caller's
 * transaction. Never carries a password or a hash. */
int users_events_updated(struct ag_events *ev, const struct users_account *a, unsigned changed);

/* A revocation the gateway enforces (issue 11): the access tokens of one
 * session, or every access token of a user issued at or before a time. */
struct users_revocation {
    char user_id[AG_UUID_STRLEN + 1];
    char session_id[AG_UUID_STRLEN + 1]; /* "": every session of the user */
    const char *reason;                  /* logout, reuse, password, disabled (static) */
    int64_t issued_before;               /* unix s: tokens with iat <= this */
    int64_t revoked_at_ms;               /* unix ms */
    int64_t expires_at;                  /* unix s: no token it matches is valid after */
};

/* session.revoked for 'r' (and, for reason "disabled", user.disabled for
 * account 'a', which may be NULL otherwise), inside the caller's open
 * transaction that also wrote 'r'. */
int users_events_revoked(struct ag_events *ev, const struct users_revocation *r,
                         const struct users_account *a);

/* ---- store.c ---- */

/* What login and refresh need about an account besides the account. */
struct users_credentials {
    char hash[USERS_HASH_MAX]; /* argon2id string */
};

int users_store_user_insert(struct ag_store *st, const struct users_account *a, const char *hash);
/* AG_ENOENT when absent. 'out_cred' may be NULL. */
int users_store_user_by_email(struct ag_store *st, const char *email, struct users_account *out,
                              struct users_credentials *out_cred);
int users_store_user_by_id(struct ag_store *st, const char *id, struct users_account *out,
                           struct users_credentials *out_cred);
int users_store_email_exists(struct ag_store *st, const char *email, bool *out_exists);
/* Append up to 'limit' accounts after 'after_id' (NULL: from the start),
 * optionally only 'email', to the array 'items'; '*out_more' tells whether
 * more follow. */
int users_store_user_list(struct ag_store *st, const char *after_id, const char *email,
                          int64_t limit, json_t *items, bool *out_more);
/* Write name, admin, disabled and updated_at of 'a'; a non-NULL 'hash'
 * replaces the password hash. AG_ENOENT when absent. */
int users_store_user_update(struct ag_store *st, const struct users_account *a, const char *hash);
/* Replace the hash only if it is still 'old' (after a rehash on login). */
int users_store_user_rehash(struct ag_store *st, const char *id, const char *old, const char *hash);

int users_store_family_insert(struct ag_store *st, const char *family_id, const char *user_id,
                              int64_t now_ms);
/* Revoke one family, or every family of a user. Revoking twice is fine. */
int users_store_family_revoke(struct ag_store *st, const char *family_id, int64_t now_ms,
                              const char *why);
int users_store_families_revoke_user(struct ag_store *st, const char *user_id, int64_t now_ms,
                                     const char *why);

int users_store_token_insert(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                             const char *family_id, const unsigned char *parent, int64_t now_ms,
                             int64_t expires_ms);
/* The state of the token with 'hash', its family id and owner id. */
int users_store_token_get(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                          struct users_refresh_state *out, char out_family[AG_UUID_STRLEN + 1],
                          char out_user[AG_UUID_STRLEN + 1]);
/* Mark the token spent; AG_ECONFLICT when it already was. */
int users_store_token_spend(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                            int64_t now_ms);
/* Record 'r' (the gateway's restore reads it back). */
int users_store_revocation_insert(struct ag_store *st, const struct users_revocation *r);
/* The latest per-user cut-off ("issued_before") of 'user_id' still in force
 * at 'now_s', or 0 when none. */
int users_store_user_cutoff(struct ag_store *st, const char *user_id, int64_t now_s,
                            int64_t *out_before);
/* Append up to 'limit' revocations in force at 'now_s' with an id after
 * 'after' to 'items' (the objects of GET /v1/internal/revocations);
 * '*out_last' gets the last id listed, '*out_more' whether more follow. */
int users_store_revocations_list(struct ag_store *st, int64_t after, int64_t now_s, int64_t limit,
                                 json_t *items, int64_t *out_last, bool *out_more);
/* Delete revocations every matching token of which has expired. */
int users_store_revocations_purge(struct ag_store *st, int64_t now_s);

/* Delete tokens past expiry and families left without tokens. */
int users_store_tokens_purge(struct ag_store *st, int64_t now_ms);

struct users_key_row {
    char kid[AG_JWT_KID_MAX + 1];
    char *pem;          /* owned: ag_jwt_pem_free */
    int64_t created_ms; /* unix ms */
    int64_t retired_ms; /* 0 while active */
    int64_t drop_ms;    /* 0 while active */
};

/* Every key, newest first, into 'out' (up to 'cap'); '*out_n' set. Free
 * the rows with users_store_keys_release. */
int users_store_keys_load(struct ag_store *st, struct users_key_row *out, size_t cap,
                          size_t *out_n);
void users_store_keys_release(struct users_key_row *rows, size_t n);
int users_store_key_insert(struct ag_store *st, const char *kid, const char *pem,
                           int64_t created_ms);
int users_store_key_retire(struct ag_store *st, const char *kid, int64_t retired_ms,
                           int64_t drop_ms);
int users_store_keys_drop(struct ag_store *st, int64_t now_ms);

#endif /* USERS_USERS_H */
