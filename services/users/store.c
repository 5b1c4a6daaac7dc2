/* SPDX-License-Identifier: MIT */
/* Users SQL: accounts, refresh-token families and tokens, signing keys.
 * Every statement parameterised, prepared once and cached by the chassis
 * store. */
#include "agora/base.h"
#include "users.h"

#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"

#define USER_COLS "id, email, name, admin, disabled, created_at, updated_at, password_hash, courier"

static void
read_user(struct ag_stmt *s, struct users_account *a, struct users_credentials *cred)
{
    memset(a, 0, sizeof(*a));
    ag_stmt_col_copy(s, 0, a->id, sizeof(a->id));
    ag_stmt_col_copy(s, 1, a->email, sizeof(a->email));
    ag_stmt_col_copy(s, 2, a->name, sizeof(a->name));
    a->admin = ag_stmt_col_i64(s, 3) != 0;
    a->disabled = ag_stmt_col_i64(s, 4) != 0;
    ag_stmt_col_copy(s, 5, a->created_at, sizeof(a->created_at));
    ag_stmt_col_copy(s, 6, a->updated_at, sizeof(a->updated_at));
    if (cred != NULL)
        ag_stmt_col_copy(s, 7, cred->hash, sizeof(cred->hash));
    a->courier = ag_stmt_col_i64(s, 8) != 0;
}

/* ---- Accounts ---- */

int
users_store_user_insert(struct ag_store *st, const struct users_account *a, const char *hash)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "INSERT INTO users (" USER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, a->id);
    ag_stmt_bind_cstr(s, 2, a->email);
    ag_stmt_bind_cstr(s, 3, a->name);
    ag_stmt_bind_i64(s, 4, a->admin ? 1 : 0);
    ag_stmt_bind_i64(s, 5, a->disabled ? 1 : 0);
    ag_stmt_bind_cstr(s, 6, a->created_at);
    ag_stmt_bind_cstr(s, 7, a->updated_at);
    ag_stmt_bind_cstr(s, 8, hash);
    ag_stmt_bind_i64(s, 9, a->courier ? 1 : 0);
    return ag_stmt_exec(s);
}

static int
user_by(struct ag_store *st, const char *sql, const char *value, struct users_account *out,
        struct users_credentials *out_cred)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, sql, &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, value);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        read_user(s, out, out_cred);
    ag_stmt_reset(s);
    return rc;
}

int
users_store_user_by_email(struct ag_store *st, const char *email, struct users_account *out,
                          struct users_credentials *out_cred)
{
    return user_by(st, "SELECT " USER_COLS " FROM users WHERE email = $1", email, out, out_cred);
}

int
users_store_user_by_id(struct ag_store *st, const char *id, struct users_account *out,
                       struct users_credentials *out_cred)
{
    return user_by(st, "SELECT " USER_COLS " FROM users WHERE id = $1", id, out, out_cred);
}

int
users_store_email_exists(struct ag_store *st, const char *email, bool *out_exists)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT 1 FROM users WHERE email = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, email);
    rc = ag_stmt_step(s);
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    *out_exists = rc == AG_STMT_ROW;
    return 0;
}

int
users_store_user_list(struct ag_store *st, const char *after_id, const char *email, int64_t limit,
                      json_t *items, bool *out_more)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT " USER_COLS " FROM users WHERE (CAST($1 AS TEXT) IS NULL OR id > $1) "
                      "AND (CAST($2 AS TEXT) IS NULL OR email = $2) ORDER BY id LIMIT $3",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, after_id);
    ag_stmt_bind_cstr(s, 2, email);
    ag_stmt_bind_i64(s, 3, limit + 1);
    int64_t n = 0;
    *out_more = false;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n == limit) {
            *out_more = true;
            break;
        }
        struct users_account a;
        read_user(s, &a, NULL);
        json_array_append_new(items, users_account_to_json(&a));
        n++;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
users_store_user_update(struct ag_store *st, const struct users_account *a, const char *hash)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "UPDATE users SET name = $2, admin = $3, disabled = $4, updated_at = $5, "
                      "password_hash = coalesce($6, password_hash), courier = $7 WHERE id = $1",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, a->id);
    ag_stmt_bind_cstr(s, 2, a->name);
    ag_stmt_bind_i64(s, 3, a->admin ? 1 : 0);
    ag_stmt_bind_i64(s, 4, a->disabled ? 1 : 0);
    ag_stmt_bind_cstr(s, 5, a->updated_at);
    ag_stmt_bind_cstr(s, 6, hash);
    ag_stmt_bind_i64(s, 7, a->courier ? 1 : 0);
    rc = ag_stmt_exec(s);
    if (rc == 0 && ag_store_changes(st) == 0)
        rc = AG_ENOENT;
    return rc;
}

int
users_store_user_rehash(struct ag_store *st, const char *id, const char *old, const char *hash)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    ag_stmt_bind_cstr(s, 2, old);
    ag_stmt_bind_cstr(s, 3, hash);
    return ag_stmt_exec(s);
}

/* ---- Refresh tokens ---- */

int
users_store_family_insert(struct ag_store *st, const char *family_id, const char *user_id,
                          int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, family_id);
    ag_stmt_bind_cstr(s, 2, user_id);
    ag_stmt_bind_i64(s, 3, now_ms);
    return ag_stmt_exec(s);
}

int
users_store_family_revoke(struct ag_store *st, const char *family_id, int64_t now_ms,
                          const char *why)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE refresh_families SET revoked_at = $2, revoked_why = $3 "
                           "WHERE id = $1 AND revoked_at IS NULL",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, family_id);
    ag_stmt_bind_i64(s, 2, now_ms);
    ag_stmt_bind_cstr(s, 3, why);
    return ag_stmt_exec(s);
}

int
users_store_families_revoke_user(struct ag_store *st, const char *user_id, int64_t now_ms,
                                 const char *why)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE refresh_families SET revoked_at = $2, revoked_why = $3 "
                           "WHERE user_id = $1 AND revoked_at IS NULL",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_i64(s, 2, now_ms);
    ag_stmt_bind_cstr(s, 3, why);
    return ag_stmt_exec(s);
}

int
users_store_token_insert(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                         const char *family_id, const unsigned char *parent, int64_t now_ms,
                         int64_t expires_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st,
        "INSERT INTO refresh_tokens (hash, family_id, parent, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_blob(s, 1, hash, USERS_TOKEN_HASH);
    ag_stmt_bind_cstr(s, 2, family_id);
    if (parent != NULL)
        ag_stmt_bind_blob(s, 3, parent, USERS_TOKEN_HASH);
    else
        ag_stmt_bind_null(s, 3);
    ag_stmt_bind_i64(s, 4, now_ms);
    ag_stmt_bind_i64(s, 5, expires_ms);
    return ag_stmt_exec(s);
}

int
users_store_token_get(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                      struct users_refresh_state *out, char out_family[AG_UUID_STRLEN + 1],
                      char out_user[AG_UUID_STRLEN + 1])
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT t.family_id, f.user_id, t.expires_at, t.spent_at IS NOT NULL, "
                           "f.revoked_at IS NOT NULL, u.disabled FROM refresh_tokens t "
                           "JOIN refresh_families f ON f.id = t.family_id "
                           "JOIN users u ON u.id = f.user_id WHERE t.hash = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_blob(s, 1, hash, USERS_TOKEN_HASH);
    memset(out, 0, sizeof(*out));
    out_family[0] = out_user[0] = '\0';
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        out->found = true;
        ag_stmt_col_copy(s, 0, out_family, AG_UUID_STRLEN + 1);
        ag_stmt_col_copy(s, 1, out_user, AG_UUID_STRLEN + 1);
        out->expires_at_ms = ag_stmt_col_i64(s, 2);
        out->spent = ag_stmt_col_i64(s, 3) != 0;
        out->family_revoked = ag_stmt_col_i64(s, 4) != 0;
        out->user_disabled = ag_stmt_col_i64(s, 5) != 0;
    }
    ag_stmt_reset(s);
    return rc == AG_ENOENT ? 0 : rc; /* an unknown token is a verdict, not an error */
}

int
users_store_token_spend(struct ag_store *st, const unsigned char hash[USERS_TOKEN_HASH],
                        int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "UPDATE refresh_tokens SET spent_at = $2 WHERE hash = $1 AND spent_at IS NULL", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_blob(s, 1, hash, USERS_TOKEN_HASH);
    ag_stmt_bind_i64(s, 2, now_ms);
    rc = ag_stmt_exec(s);
    if (rc == 0 && ag_store_changes(st) != 1)
        rc = AG_ECONFLICT;
    return rc;
}

int
users_store_tokens_purge(struct ag_store *st, int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM refresh_tokens WHERE expires_at <= $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    rc = ag_store_stmt(st,
                       "DELETE FROM refresh_families WHERE NOT EXISTS "
                       "(SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id)",
                       &s);
    if (rc != 0)
        return rc;
    return ag_stmt_exec(s);
}

/* ---- Revocations the gateway enforces ---- */

int
users_store_revocation_insert(struct ag_store *st, const struct users_revocation *r)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO revocations (user_id, session_id, reason, issued_before, "
                           "revoked_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, r->user_id);
    ag_stmt_bind_cstr(s, 2, r->session_id[0] != '\0' ? r->session_id : NULL);
    ag_stmt_bind_cstr(s, 3, r->reason);
    ag_stmt_bind_i64(s, 4, r->issued_before);
    ag_stmt_bind_i64(s, 5, r->revoked_at_ms);
    ag_stmt_bind_i64(s, 6, r->expires_at);
    return ag_stmt_exec(s);
}

int
users_store_user_cutoff(struct ag_store *st, const char *user_id, int64_t now_s,
                        int64_t *out_before)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT max(issued_before) FROM revocations WHERE user_id = $1 "
                           "AND session_id IS NULL AND expires_at >= $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, user_id);
    ag_stmt_bind_i64(s, 2, now_s);
    return ag_stmt_step_i64(s, 0, out_before);
}

int
users_store_revocations_list(struct ag_store *st, int64_t after, int64_t now_s, int64_t limit,
                             json_t *items, int64_t *out_last, bool *out_more)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT id, user_id, session_id, reason, issued_before, expires_at "
                           "FROM revocations WHERE id > $1 AND expires_at >= $2 ORDER BY id "
                           "LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, after);
    ag_stmt_bind_i64(s, 2, now_s);
    ag_stmt_bind_i64(s, 3, limit + 1);
    int64_t n = 0;
    *out_more = false;
    *out_last = after;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n == limit) {
            *out_more = true;
            break;
        }
        json_t *item =
            json_pack("{s:s, s:s, s:s, s:I, s:I}", "user_id", ag_stmt_col_text(s, 1), "scope",
                      ag_stmt_col_is_null(s, 2) ? "user" : "session", "reason",
                      ag_stmt_col_text(s, 3), "issued_before", (json_int_t)ag_stmt_col_i64(s, 4),
                      "in_force_until", (json_int_t)ag_stmt_col_i64(s, 5));
        if (item == NULL) {
            rc = AG_EIO;
            break;
        }
        if (!ag_stmt_col_is_null(s, 2))
            json_object_set_new(item, "session_id", json_string(ag_stmt_col_text(s, 2)));
        json_array_append_new(items, item);
        *out_last = ag_stmt_col_i64(s, 0);
        n++;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
users_store_revocations_purge(struct ag_store *st, int64_t now_s)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM revocations WHERE expires_at < $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_s);
    return ag_stmt_exec(s);
}

/* ---- Signing keys ---- */

int
users_store_keys_load(struct ag_store *st, struct users_key_row *out, size_t cap, size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT kid, private_pem, created_at, coalesce(retired_at, 0), "
                           "coalesce(drop_at, 0) FROM signing_keys ORDER BY created_at DESC, kid",
                           &s);
    if (rc != 0)
        return rc;
    size_t n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW && n < cap) {
        struct users_key_row *r = &out[n++];
        memset(r, 0, sizeof(*r));
        ag_stmt_col_copy(s, 0, r->kid, sizeof(r->kid));
        r->pem = ag_strndup(ag_stmt_col_text(s, 1), ag_stmt_col_len(s, 1));
        r->created_ms = ag_stmt_col_i64(s, 2);
        r->retired_ms = ag_stmt_col_i64(s, 3);
        r->drop_ms = ag_stmt_col_i64(s, 4);
    }
    ag_stmt_reset(s);
    *out_n = n;
    if (rc < 0) {
        users_store_keys_release(out, n);
        *out_n = 0;
        return rc;
    }
    return 0;
}

void
users_store_keys_release(struct users_key_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ag_jwt_pem_free(rows[i].pem);
        rows[i].pem = NULL;
    }
}

int
users_store_key_insert(struct ag_store *st, const char *kid, const char *pem, int64_t created_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "INSERT INTO signing_keys (kid, private_pem, created_at) VALUES ($1, $2, $3)", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, kid);
    ag_stmt_bind_cstr(s, 2, pem);
    ag_stmt_bind_i64(s, 3, created_ms);
    return ag_stmt_exec(s);
}

int
users_store_key_retire(struct ag_store *st, const char *kid, int64_t retired_ms, int64_t drop_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE signing_keys SET retired_at = $2, drop_at = $3 "
                           "WHERE kid = $1 AND retired_at IS NULL",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, kid);
    ag_stmt_bind_i64(s, 2, retired_ms);
    ag_stmt_bind_i64(s, 3, drop_ms);
    return ag_stmt_exec(s);
}

int
users_store_keys_drop(struct ag_store *st, int64_t now_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "DELETE FROM signing_keys WHERE drop_at IS NOT NULL AND drop_at <= $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, now_ms);
    return ag_stmt_exec(s);
}
