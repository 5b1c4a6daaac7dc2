/* SPDX-License-Identifier: MIT */
/* Credentials: argon2id hashing and verification (libsodium) on the libuv
 * thread pool, since one hash takes tens of milliseconds and the event loop
 * must keep serving; and the opaque refresh tokens, of which only a
 * SHA-256 is ever stored. */
#include "agora/base.h"
#include "users.h"

#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/time.h"

struct pw_job {
    uv_work_t work;              /* the thread-pool request; work.data is the job */
    struct users *u;             /* borrowed */
    char *verify;                /* password to check, or NULL (wiped and freed) */
    char *hash;                  /* password to hash, or NULL (wiped and freed) */
    char stored[USERS_HASH_MAX]; /* hash to check 'verify' against */
    unsigned long long opslimit; /* cost, copied so the worker reads no shared state */
    size_t memlimit;
    uint64_t started_ns;
    struct users_pw_result res;
    users_pw_done_fn done;
    void *udata;
};

static char *
secret_dup(const char *s)
{
    return s ? ag_strdup(s) : NULL;
}

static void
secret_free(char *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, strlen(s));
    ag_free(s);
}

static int
hash_password(const char *pw, unsigned long long ops, size_t mem, char out[USERS_HASH_MAX])
{
    if (crypto_pwhash_str_alg(out, pw, strlen(pw), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return AG_EINTERNAL;
    return 0;
}

/* Runs on a pool thread: touches only the job. */
static void
pw_work(uv_work_t *w)
{
    struct pw_job *job = w->data;
    struct users_pw_result *res = &job->res;
    const char *to_hash = job->hash;
    if (job->verify != NULL) {
        res->verified =
            crypto_pwhash_str_verify(job->stored, job->verify, strlen(job->verify)) == 0;
        if (!res->verified) {
            to_hash = NULL;
        } else if (to_hash == NULL &&
                   crypto_pwhash_str_needs_rehash(job->stored, job->opslimit, job->memlimit) != 0) {
            to_hash = job->verify; /* upgrade a hash made with older settings */
        }
    }
    if (to_hash != NULL) {
        res->rc = hash_password(to_hash, job->opslimit, job->memlimit, res->hash);
        res->hashed = res->rc == 0;
    }
}

/* Back on the loop. */
static void
pw_after(uv_work_t *w, int status)
{
    struct pw_job *job = w->data;
    struct users *u = job->u;
    u->password_jobs--;
    ag_gauge_set(u->m.jobs, NULL, (double)u->password_jobs);
    ag_histogram_observe(u->m.hash_seconds, NULL,
                         (double)(ag_time_mono_ns() - job->started_ns) / 1e9);
    secret_free(job->verify);
    secret_free(job->hash);
    job->verify = job->hash = NULL;
    if (status != 0 && job->res.rc == 0)
        job->res.rc = AG_EINTERNAL; /* cancelled: cannot happen, we never cancel */
    if (job->res.rc != 0)
        AG_LOGE("credentials", "password hashing failed: %s", ag_strerror(job->res.rc));
    job->done(u, &job->res, job->udata);
    sodium_memzero(&job->res, sizeof(job->res));
    ag_free(job);
}

int
users_pw_submit(struct users *u, const char *verify, const char *stored, const char *hash,
                users_pw_done_fn done, void *udata)
{
    if (u->password_jobs >= u->settings.max_password_jobs)
        return AG_EBUSY;
    struct pw_job *job = ag_calloc(1, sizeof(*job));
    job->work.data = job;
    job->u = u;
    job->verify = secret_dup(verify);
    job->hash = secret_dup(hash);
    if (stored != NULL) {
        size_t n = strnlen(stored, sizeof(job->stored) - 1);
        memcpy(job->stored, stored, n);
        job->stored[n] = '\0';
    }
    job->opslimit = (unsigned long long)u->settings.argon2_opslimit;
    job->memlimit = (size_t)u->settings.argon2_memlimit;
    job->started_ns = ag_time_mono_ns();
    job->done = done;
    job->udata = udata;
    if (uv_queue_work(u->loop, &job->work, pw_work, pw_after) != 0) {
        secret_free(job->verify);
        secret_free(job->hash);
        ag_free(job);
        return AG_EBUSY;
    }
    u->password_jobs++;
    ag_gauge_set(u->m.jobs, NULL, (double)u->password_jobs);
    return 0;
}

int
users_pw_hash_now(const struct users *u, const char *password, char out[USERS_HASH_MAX])
{
    return hash_password(password, (unsigned long long)u->settings.argon2_opslimit,
                         (size_t)u->settings.argon2_memlimit, out);
}

/* ---- Refresh tokens ---- */

void
users_refresh_token_hash(const char *token, unsigned char out_hash[USERS_TOKEN_HASH])
{
    crypto_hash_sha256(out_hash, (const unsigned char *)token, strlen(token));
}

void
users_refresh_token_new(char out[USERS_REFRESH_TOKEN_LEN + 1],
                        unsigned char out_hash[USERS_TOKEN_HASH])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, USERS_REFRESH_TOKEN_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    users_refresh_token_hash(out, out_hash);
}
