/* SPDX-License-Identifier: MIT */
/* Users service: composition root. Wires the chassis, the settings, the
 * throttles, the dummy hash for unknown e-mails, the first administrator
 * from configuration, the signing keys, and the route table. */
#include "agora/base.h"
#include "users.h"

#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"
#include "agora/time.h"
#include "agora/uuid.h"

extern const struct ag_migration users_migrations[];
extern const size_t users_nmigrations;

#define MIB (INT64_C(1) << 20)

static struct users g_users;

#define OFF(f) offsetof(struct users_settings, f)
static const struct ag_config_key USERS_KEYS[] = {
    { "AGORA_USERS_ISSUER", AG_CONFIG_STRING, "agora-users", OFF(issuer), 0, 0, NULL,
      "\"iss\" of access tokens" },
    { "AGORA_USERS_AUDIENCE", AG_CONFIG_STRING, "agora", OFF(audience), 0, 0, NULL,
      "\"aud\" of access tokens" },
    { "AGORA_USERS_ACCESS_TTL", AG_CONFIG_DURATION, "15m", OFF(access_ttl_ms), 1000, 86400000, NULL,
      "lifetime of access tokens" },
    { "AGORA_USERS_REFRESH_TTL", AG_CONFIG_DURATION, "720h", OFF(refresh_ttl_ms), 1000,
      INT64_C(31622400000), NULL, "lifetime of a refresh token (each refresh issues a new one)" },
    { "AGORA_USERS_KEY_ROTATION", AG_CONFIG_DURATION, "24h", OFF(key_rotation_ms), 1000,
      INT64_C(31622400000), NULL, "a new signing key replaces the active one this often" },
    { "AGORA_USERS_TOKEN_LEEWAY", AG_CONFIG_DURATION, "60s", OFF(leeway_ms), 0, 3600000, NULL,
      "clock skew allowed to verifiers; a replaced key stays published access TTL + this" },
    { "AGORA_USERS_ARGON2_OPSLIMIT", AG_CONFIG_INT, "2", OFF(argon2_opslimit), 2, 64, NULL,
      "argon2id passes (OWASP minimum 2)" },
    { "AGORA_USERS_ARGON2_MEMLIMIT", AG_CONFIG_SIZE, "64MiB", OFF(argon2_memlimit), 19 * MIB,
      4096 * MIB, NULL, "argon2id memory per hash (OWASP minimum 19MiB)" },
    { "AGORA_USERS_MAX_PASSWORD_JOBS", AG_CONFIG_INT, "64", OFF(max_password_jobs), 1, 10000, NULL,
      "password hashes queued or running at once (503 past it)" },
    { "AGORA_USERS_LOGIN_MAX_FAILURES", AG_CONFIG_INT, "5", OFF(login_max_failures), 1, 100, NULL,
      "failed logins to one account from one client within the failure window before that "
      "client must wait (1 s, then doubling)" },
    { "AGORA_USERS_LOGIN_FAILURE_WINDOW", AG_CONFIG_DURATION, "15m", OFF(login_window_ms), 1000,
      86400000, NULL, "window over which failed logins are counted" },
    { "AGORA_USERS_LOGIN_BACKOFF_MAX", AG_CONFIG_DURATION, "15m", OFF(login_backoff_max_ms), 1000,
      86400000, NULL, "longest wait the growing delay per account and client reaches" },
    { "AGORA_USERS_ACCOUNT_MAX_FAILURES", AG_CONFIG_INT, "20", OFF(account_max_failures), 1, 1000,
      NULL,
      "failed logins to one account from all clients within the window before clients that "
      "never signed in to it must wait (clients that did are not slowed by strangers)" },
    { "AGORA_USERS_KNOWN_CLIENT_TTL", AG_CONFIG_DURATION, "720h", OFF(known_client_ttl_ms), 1000,
      INT64_C(31622400000), NULL,
      "how long a client that signed in to an account stays known to it" },
    { "AGORA_USERS_CLIENT_MAX_ATTEMPTS", AG_CONFIG_INT, "30", OFF(client_max_attempts), 1, 1000,
      NULL, "logins and registrations per client address within the client window" },
    { "AGORA_USERS_CLIENT_WINDOW", AG_CONFIG_DURATION, "1m", OFF(client_window_ms), 1000, 86400000,
      NULL, "window over which attempts per client address are counted" },
    { "AGORA_USERS_ADMIN_EMAIL", AG_CONFIG_STRING, "", OFF(admin_email), 0, 0, NULL,
      "e-mail of the first administrator, created or promoted at start" },
    { "AGORA_USERS_ADMIN_PASSWORD", AG_CONFIG_STRING, "", OFF(admin_password), 0, 0, NULL,
      "password of that administrator when it is created (never logged)" },
};
#undef OFF

/* Cross-setting checks the key table cannot express. */
static int
check_settings(const struct users_settings *s)
{
    int64_t max = users_keys_max_published((int64_t)s->key_rotation_ms, (int64_t)s->access_ttl_ms,
                                           (int64_t)s->leeway_ms);
    if (max > AG_JWT_MAX_KEYS) {
        AG_LOGE("config",
                "AGORA_USERS_KEY_ROTATION: too short for AGORA_USERS_ACCESS_TTL + "
                "AGORA_USERS_TOKEN_LEEWAY: %lld keys would be published (at most %d)",
                (long long)max, AG_JWT_MAX_KEYS);
        return AG_ECONFIG;
    }
    if (s->issuer[0] == '\0' || strlen(s->issuer) >= AG_JWT_ISS_MAX || s->audience[0] == '\0' ||
        strlen(s->audience) >= AG_JWT_ISS_MAX) {
        AG_LOGE("config", "AGORA_USERS_ISSUER and AGORA_USERS_AUDIENCE: 1 to %d bytes",
                AG_JWT_ISS_MAX - 1);
        return AG_ECONFIG;
    }
    if ((s->admin_email[0] == '\0') != (s->admin_password[0] == '\0')) {
        AG_LOGE("config", "AGORA_USERS_ADMIN_EMAIL and AGORA_USERS_ADMIN_PASSWORD go together");
        return AG_ECONFIG;
    }
    return 0;
}

/* Create the configured administrator, or promote the account that has
 * that e-mail. An existing account keeps its password. */
static int
bootstrap_admin(struct users *u)
{
    const struct users_settings *s = &u->settings;
    if (s->admin_email[0] == '\0')
        return 0;
    struct users_account a;
    memset(&a, 0, sizeof(a));
    if (users_email_normalize(s->admin_email, a.email) != 0) {
        AG_LOGE("config", "AGORA_USERS_ADMIN_EMAIL: not an e-mail address");
        return AG_ECONFIG;
    }
    int rc = users_store_user_by_email(u->store, a.email, &a, NULL);
    if (rc == 0) {
        if (a.admin)
            return 0;
        a.admin = true;
        ag_time_rfc3339(ag_time_unix_ms(), a.updated_at);
        rc = ag_store_begin(u->store);
        if (rc == 0)
            rc = users_store_user_update(u->store, &a, NULL);
        if (rc == 0)
            rc = users_events_updated(u->events, &a, USERS_CHANGED_ROLES);
        rc = rc == 0 ? ag_store_commit(u->store) : (ag_store_rollback(u->store), rc);
        if (rc == 0)
            AG_LOGI("users", "user '%s' promoted to administrator", a.id);
        return rc;
    }
    if (rc != AG_ENOENT)
        return rc;
    enum users_password_problem p = users_password_check(s->admin_password, a.email);
    if (p != USERS_PASSWORD_OK) {
        AG_LOGE("config", "AGORA_USERS_ADMIN_PASSWORD: %s", users_password_problem_detail(p));
        return AG_ECONFIG;
    }
    char hash[USERS_HASH_MAX];
    rc = users_pw_hash_now(u, s->admin_password, hash);
    if (rc != 0)
        return rc;
    ag_uuid7(a.id);
    snprintf(a.name, sizeof(a.name), "Administrator");
    a.admin = true;
    ag_time_rfc3339(ag_time_unix_ms(), a.created_at);
    memcpy(a.updated_at, a.created_at, sizeof(a.updated_at));
    rc = ag_store_begin(u->store);
    if (rc == 0)
        rc = users_store_user_insert(u->store, &a, hash);
    if (rc == 0)
        rc = users_events_registered(u->events, &a);
    rc = rc == 0 ? ag_store_commit(u->store) : (ag_store_rollback(u->store), rc);
    sodium_memzero(hash, sizeof(hash));
    if (rc == 0)
        AG_LOGI("users", "administrator '%s' created", a.id);
    return rc;
}

static void
register_metrics(struct users *u)
{
    struct ag_metrics *reg = ag_service_metrics(u->svc);
    static const char *const result[] = { "result" };
    u->m.logins =
        ag_metrics_counter(reg, "users_logins_total",
                           "Login attempts by result (ok, failed, throttled, error)", result, 1);
    u->m.registrations = ag_metrics_counter(reg, "users_registrations_total",
                                            "Registrations by result (ok, conflict)", result, 1);
    u->m.refreshes = ag_metrics_counter(
        reg, "users_refreshes_total",
        "Refresh-token exchanges by result (ok, unknown, revoked, reused, disabled, expired)",
        result, 1);
    static const double buckets[] = { .01, .025, .05, .1, .25, .5, 1, 2.5, 5 };
    u->m.hash_seconds =
        ag_metrics_histogram(reg, "users_password_job_seconds",
                             "Time from queueing a password hash or check to its result", NULL, 0,
                             buckets, AG_ARRAY_SIZE(buckets));
    u->m.jobs = ag_metrics_gauge(reg, "users_password_jobs_in_flight",
                                 "Password hashes queued or running", NULL, 0);
    u->m.keys =
        ag_metrics_gauge(reg, "users_signing_keys_published", "Public keys in the JWKS", NULL, 0);
    u->m.rotations = ag_metrics_counter(reg, "users_key_rotations_total",
                                        "Signing keys made (first start and rotations)", NULL, 0);
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct users *u = udata;
    u->svc = svc;
    u->store = ag_service_store(svc);
    u->loop = ag_service_loop(svc);
    u->events = ag_service_events(svc);
    int rc = check_settings(&u->settings);
    if (rc != 0)
        return rc;
    register_metrics(u);
    uint64_t seed;
    randombytes_buf(&seed, sizeof(seed));
    struct users_throttle_config pair = {
        .limit = (int)u->settings.login_max_failures,
        .window_ms = (int64_t)u->settings.login_window_ms,
        .max_keys = 20000,
        .seed = seed ^ UINT64_C(0x2545f4914f6cdd1d),
        .backoff_base_ms = 1000,
        .backoff_max_ms = (int64_t)u->settings.login_backoff_max_ms,
    };
    struct users_throttle_config acc = {
        .limit = (int)u->settings.account_max_failures,
        .window_ms = (int64_t)u->settings.login_window_ms,
        .max_keys = 20000,
        .seed = seed,
    };
    struct users_throttle_config known = {
        .limit = 1,
        .window_ms = (int64_t)u->settings.known_client_ttl_ms,
        .max_keys = 50000,
        .seed = seed ^ UINT64_C(0x6a09e667f3bcc909),
    };
    struct users_throttle_config cli = {
        .limit = (int)u->settings.client_max_attempts,
        .window_ms = (int64_t)u->settings.client_window_ms,
        .max_keys = 20000,
        .seed = seed ^ UINT64_C(0x9e3779b97f4a7c15),
    };
    u->pairs = users_throttle_new(&pair);
    u->accounts = users_throttle_new(&acc);
    u->known = users_throttle_new(&known);
    u->clients = users_throttle_new(&cli);

    /* The hash checked when an e-mail is unknown: same cost as a real one. */
    unsigned char junk[32];
    char junk_pw[65];
    randombytes_buf(junk, sizeof(junk));
    sodium_bin2hex(junk_pw, sizeof(junk_pw), junk, sizeof(junk));
    rc = users_pw_hash_now(u, junk_pw, u->dummy_hash);
    sodium_memzero(junk_pw, sizeof(junk_pw));
    if (rc != 0) {
        AG_LOGE("users", "cannot hash with AGORA_USERS_ARGON2_MEMLIMIT=%llu bytes",
                (unsigned long long)u->settings.argon2_memlimit);
        return rc;
    }
    rc = bootstrap_admin(u);
    /* Not needed any more: keep it out of core dumps from now on. */
    sodium_memzero(u->settings.admin_password, strlen(u->settings.admin_password));
    if (rc != 0)
        return rc;
    return users_keys_start(u);
}

/* When the stop begins, and again (a no-op then) after draining; the
 * second call matters when the listener never opened. */
static void
on_stopping(struct ag_service *svc, void *udata)
{
    AG_UNUSED(svc);
    users_keys_stop(udata);
}

int
main(int argc, char **argv)
{
    struct ag_service_config cfg = {
        .name = "users",
        .version = "0.1.0",
        .default_port = AG_PORT_USERS,
        .migrations = users_migrations,
        .nmigrations = users_nmigrations,
        .keys = USERS_KEYS,
        .nkeys = AG_ARRAY_SIZE(USERS_KEYS),
        .settings = &g_users.settings,
        .on_start = on_start,
        .events = true,
        .on_stopping = on_stopping,
        .on_stop = on_stopping,
        .udata = &g_users,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, users_routes, users_nroutes, &g_users);
    /* Only the gateway restores its deny list from users (least privilege). */
    if (rc == 0)
        rc = ag_service_route_callers(svc, "GET", "/v1/internal/revocations", "gateway");
    int status = rc == 0 ? ag_service_run(svc) : 1;
    /* The loop has ended: no callback can use these any more. */
    ag_service_free(svc);
    users_keys_release(&g_users);
    users_throttle_free(g_users.pairs);
    users_throttle_free(g_users.accounts);
    users_throttle_free(g_users.known);
    users_throttle_free(g_users.clients);
    sodium_memzero(g_users.dummy_hash, sizeof(g_users.dummy_hash));
    return status;
}
