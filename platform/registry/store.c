/* SPDX-License-Identifier: MIT */
/* Registry SQL: the versioned configuration store and the persisted
 * indexes. Every statement parameterised, prepared once and cached by the
 * chassis store; every change is one transaction. */
#include "agora/base.h"
#include "reg.h"

#include <string.h>

#include "agora/err.h"

/* Bind $1 and $2 to the key range of 'prefix': [prefix, prefix + '~').
 * '~' sorts after every character a key may hold. */
static void
bind_prefix(struct ag_stmt *s, const char *prefix, char *end, size_t cap)
{
    size_t n = strlen(prefix);
    if (n + 2 > cap)
        AG_BUG("prefix longer than REG_KEY_MAX");
    memcpy(end, prefix, n);
    end[n] = REG_PREFIX_END_CHAR;
    end[n + 1] = '\0';
    ag_stmt_bind_cstr(s, 1, prefix);
    ag_stmt_bind_cstr(s, 2, end);
}

/* meta[name] = max(meta[name], value). */
static int
meta_raise(struct ag_store *st, const char *name, int64_t value)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) "
                           "DO UPDATE SET value = max(value, excluded.value)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, name);
    ag_stmt_bind_i64(s, 2, value);
    return ag_stmt_exec(s);
}

int
reg_store_load(struct ag_store *st, int64_t *out_stored, int64_t *out_config_index,
               int64_t *out_keys)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT name, value FROM meta", &s);
    if (rc != 0)
        return rc;
    int64_t stored = 0;
    int64_t config_index = -1;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        int64_t v = ag_stmt_col_i64(s, 1);
        stored = AG_MAX(stored, v);
        if (strcmp(ag_stmt_col_text(s, 0), "config_index") == 0)
            config_index = v;
    }
    ag_stmt_reset(s);
    if (rc < 0)
        return rc;
    rc = ag_store_stmt(st, "SELECT count(*) FROM config", &s);
    if (rc != 0)
        return rc;
    rc = ag_stmt_step_i64(s, 0, out_keys);
    if (rc != 0)
        return rc;
    *out_stored = stored;
    *out_config_index = config_index;
    return 0;
}

static int
init_index_tx(struct ag_store *st, void *arg)
{
    int64_t start = *(int64_t *)arg;
    int rc = meta_raise(st, "config_index", start);
    if (rc == 0)
        rc = meta_raise(st, "config_floor", start);
    return rc;
}

int
reg_store_init_index(struct ag_store *st, int64_t start)
{
    return ag_store_tx(st, init_index_tx, &start);
}

int
reg_store_save_index(struct ag_store *st, int64_t index)
{
    return meta_raise(st, "last_index", index);
}

int
reg_store_config_get(struct ag_store *st, const char *key, struct ag_pool *pool,
                     struct reg_config_entry *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "SELECT key, value, version, modify_index FROM config WHERE key = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        out->key = ag_stmt_col_dup(s, 0, pool);
        out->value = ag_stmt_col_dup(s, 1, pool);
        out->value_len = ag_stmt_col_len(s, 1);
        out->version = ag_stmt_col_i64(s, 2);
        out->modify_index = ag_stmt_col_i64(s, 3);
    }
    ag_stmt_reset(s);
    return rc;
}

int
reg_store_config_list(struct ag_store *st, const char *prefix, struct ag_buf *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT key, value, version, modify_index FROM config "
                           "WHERE key >= $1 AND key < $2 ORDER BY key",
                           &s);
    if (rc != 0)
        return rc;
    char end[REG_KEY_MAX + 2];
    bind_prefix(s, prefix, end, sizeof(end));
    bool first = true;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        struct reg_config_entry e = {
            .key = ag_stmt_col_text(s, 0),
            .value = ag_stmt_col_text(s, 1),
            .value_len = ag_stmt_col_len(s, 1),
            .version = ag_stmt_col_i64(s, 2),
            .modify_index = ag_stmt_col_i64(s, 3),
        };
        if (!first && ag_buf_append_char(out, ',') != 0) {
            rc = AG_ETOOBIG;
            break;
        }
        first = false;
        if (reg_config_entry_render(&e, out) != 0) {
            rc = AG_ETOOBIG;
            break;
        }
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
reg_store_prefix_index(struct ag_store *st, const char *prefix, int64_t *out_index)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT max(coalesce((SELECT max(modify_index) FROM config "
                           "WHERE key >= $1 AND key < $2), 0), "
                           "coalesce((SELECT max(modify_index) FROM config_tombstones "
                           "WHERE key >= $1 AND key < $2), 0), "
                           "coalesce((SELECT value FROM meta WHERE name = 'config_floor'), 0))",
                           &s);
    if (rc != 0)
        return rc;
    char end[REG_KEY_MAX + 2];
    bind_prefix(s, prefix, end, sizeof(end));
    return ag_stmt_step_i64(s, 0, out_index);
}

/* Stored version of 'key', 0 when absent. */
static int
current_version(struct ag_store *st, const char *key, int64_t *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT version FROM config WHERE key = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, key);
    return ag_stmt_step_i64(s, 0, out);
}

struct put_ctx {
    const char *key;
    const char *value;
    size_t len;
    int64_t cas;
    int64_t index;
    int64_t max_keys;
    uint64_t max_bytes;
    int64_t current;
    int64_t version;
};

static int
put_tx(struct ag_store *st, void *arg)
{
    struct put_ctx *c = arg;
    int rc = current_version(st, c->key, &c->current);
    if (rc != 0)
        return rc;
    if (reg_config_check_cas(c->cas, c->current) != 0)
        return AG_ECONFLICT;
    struct ag_stmt *s;
    /* Every listing must fit its render buffer: the values stored are
     * bounded in all, not only one by one. */
    int64_t others;
    rc = ag_store_stmt(st,
                       "SELECT coalesce(sum(length(CAST(value AS BLOB))), 0) FROM config "
                       "WHERE key <> $1",
                       &s);
    if (rc == 0) {
        ag_stmt_bind_cstr(s, 1, c->key);
        rc = ag_stmt_step_i64(s, 0, &others);
    }
    if (rc != 0)
        return rc;
    if ((uint64_t)others + c->len > c->max_bytes)
        return AG_ETOOBIG;
    if (c->current == 0) {
        int64_t n;
        rc = ag_store_stmt(st, "SELECT count(*) FROM config", &s);
        if (rc == 0)
            rc = ag_stmt_step_i64(s, 0, &n);
        if (rc != 0)
            return rc;
        if (n >= c->max_keys)
            return AG_EUNAVAIL;
        rc = ag_store_stmt(st,
                           "INSERT INTO config (key, value, version, create_index, modify_index) "
                           "VALUES ($1, $2, 1, $3, $3)",
                           &s);
    } else {
        rc = ag_store_stmt(st,
                           "UPDATE config SET value = $2, version = version + 1, modify_index = $3 "
                           "WHERE key = $1",
                           &s);
    }
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, c->key);
    ag_stmt_bind_text(s, 2, c->value, c->len);
    ag_stmt_bind_i64(s, 3, c->index);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    c->version = c->current + 1;
    rc = ag_store_stmt(st, "DELETE FROM config_tombstones WHERE key = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, c->key);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    return meta_raise(st, "config_index", c->index);
}

int
reg_store_config_put(struct ag_store *st, const char *key, const char *value, size_t len,
                     int64_t cas, int64_t index, int64_t max_keys, uint64_t max_bytes,
                     int64_t *out_version, int64_t *out_current, bool *out_created)
{
    struct put_ctx c = {
        .key = key,
        .value = value,
        .len = len,
        .cas = cas,
        .index = index,
        .max_keys = max_keys,
        .max_bytes = max_bytes,
    };
    int rc = ag_store_tx(st, put_tx, &c);
    *out_current = c.current;
    if (rc == 0) {
        *out_version = c.version;
        *out_created = c.current == 0;
    }
    return rc;
}

struct delete_ctx {
    const char *key;
    int64_t cas;
    int64_t index;
    int64_t current;
};

/* Forget the oldest deletions past REG_TOMBSTONES_MAX, raising the floor to
 * the newest one forgotten so prefix indexes never go back. */
static int
prune_tombstones(struct ag_store *st)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT modify_index FROM config_tombstones "
                           "ORDER BY modify_index DESC LIMIT 1 OFFSET $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, REG_TOMBSTONES_MAX);
    int64_t cut;
    rc = ag_stmt_step_i64(s, -1, &cut);
    if (rc != 0 || cut < 0)
        return rc;
    rc = meta_raise(st, "config_floor", cut);
    if (rc != 0)
        return rc;
    rc = ag_store_stmt(st, "DELETE FROM config_tombstones WHERE modify_index <= $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, cut);
    return ag_stmt_exec(s);
}

static int
delete_tx(struct ag_store *st, void *arg)
{
    struct delete_ctx *c = arg;
    int rc = current_version(st, c->key, &c->current);
    if (rc != 0)
        return rc;
    if (c->current == 0)
        return AG_ENOENT;
    if (reg_config_check_cas(c->cas, c->current) != 0)
        return AG_ECONFLICT;
    struct ag_stmt *s;
    rc = ag_store_stmt(st, "DELETE FROM config WHERE key = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, c->key);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    rc = ag_store_stmt(st,
                       "INSERT INTO config_tombstones (key, modify_index) VALUES ($1, $2) "
                       "ON CONFLICT (key) DO UPDATE SET modify_index = excluded.modify_index",
                       &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, c->key);
    ag_stmt_bind_i64(s, 2, c->index);
    rc = ag_stmt_exec(s);
    if (rc == 0)
        rc = prune_tombstones(st);
    if (rc == 0)
        rc = meta_raise(st, "config_index", c->index);
    return rc;
}

int
reg_store_config_delete(struct ag_store *st, const char *key, int64_t cas, int64_t index,
                        int64_t *out_current)
{
    struct delete_ctx c = { .key = key, .cas = cas, .index = index };
    int rc = ag_store_tx(st, delete_tx, &c);
    *out_current = c.current;
    return rc;
}
