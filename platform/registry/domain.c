/* SPDX-License-Identifier: MIT */
/* Registry domain rules: names, validation, the instance table with TTLs
 * and modify indexes, and the JSON representations. No I/O here; api.c
 * drives the clock and the event loop, store.c the database. */
#include "agora/base.h"
#include "domain.h"

#include <string.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/time.h"

static const char *const INSTANCE_FIELDS[] = { "address", "port", "metadata", "ttl_ms", NULL };
static const char *const CONFIG_FIELDS[] = { "value", "cas", NULL };

/* ---- Names ---- */

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Every byte of 's' passes 'ok' and its length is in [min, max]. */
static bool
all_chars(const char *s, size_t min, size_t max, bool (*ok)(char))
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!ok(s[i]))
            return false;
    }
    return true;
}

static bool
service_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool
id_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

static bool
key_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static bool
address_char(char c)
{
    return is_alnum(c) || (c != '\0' && strchr(".-:_%[]", c) != NULL);
}

bool
reg_service_name_is_valid(const char *s)
{
    return all_chars(s, 1, REG_SERVICE_MAX, service_char);
}

bool
reg_instance_id_is_valid(const char *s)
{
    return all_chars(s, 1, REG_ID_MAX, id_char);
}

bool
reg_config_key_is_valid(const char *s)
{
    return all_chars(s, 1, REG_KEY_MAX, key_char);
}

bool
reg_config_prefix_is_valid(const char *s)
{
    return all_chars(s, 0, REG_KEY_MAX, key_char);
}

bool
reg_address_is_valid(const char *s)
{
    return all_chars(s, 1, REG_ADDRESS_MAX, address_char);
}

bool
reg_key_has_prefix(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

/* ---- Index ---- */

int64_t
reg_start_index(int64_t stored, int64_t now_us)
{
    return AG_MAX(stored, now_us);
}

/* ---- Validation ---- */

bool
reg_instance_spec_from_json(struct ag_valid *v, json_t *body, struct reg_instance_spec *out)
{
    memset(out, 0, sizeof(*out));
    ag_valid_unknown(v, body, NULL, INSTANCE_FIELDS);
    const char *address =
        ag_valid_string(v, body, NULL, "address", AG_VALID_REQUIRED, 1, REG_ADDRESS_MAX);
    if (address != NULL && !reg_address_is_valid(address)) {
        ag_valid_error(v, "address", "invalid",
                       "must be 1 to %d letters, digits and '.', '-', ':', '_', '%%', '[', ']'",
                       REG_ADDRESS_MAX);
        address = NULL;
    }
    int64_t port = 0;
    bool port_ok = ag_valid_int(v, body, NULL, "port", AG_VALID_REQUIRED, 1, 65535, &port);
    json_t *metadata = ag_valid_object(v, body, NULL, "metadata", AG_VALID_OPTIONAL);
    if (metadata != NULL) {
        struct ag_buf buf = AG_BUF_INIT(REG_METADATA_MAX);
        int rc = ag_json_dump(metadata, &buf);
        ag_buf_release(&buf);
        if (rc != 0) {
            ag_valid_error(v, "metadata", "too_large", "must be at most %d bytes as compact JSON",
                           REG_METADATA_MAX);
            metadata = NULL;
        }
    }
    int64_t ttl = REG_TTL_DEFAULT;
    ag_valid_int(v, body, NULL, "ttl_ms", AG_VALID_OPTIONAL, REG_TTL_MIN, REG_TTL_MAX, &ttl);
    if (!ag_valid_ok(v) || address == NULL || !port_ok)
        return false;
    out->address = address;
    out->port = (int)port;
    out->metadata = metadata;
    out->ttl_ms = ttl;
    return true;
}

bool
reg_config_put_from_json(struct ag_valid *v, json_t *body, struct ag_buf *out_value,
                         int64_t *out_cas)
{
    ag_valid_unknown(v, body, NULL, CONFIG_FIELDS);
    json_t *value = json_object_get(body, "value");
    if (value == NULL) {
        ag_valid_error(v, "value", "required", "is required (any JSON value)");
    } else {
        out_value->max = REG_VALUE_MAX;
        if (ag_json_dump(value, out_value) != 0)
            ag_valid_error(v, "value", "too_large", "must be at most %d bytes as compact JSON",
                           REG_VALUE_MAX);
    }
    *out_cas = -1;
    ag_valid_int(v, body, NULL, "cas", AG_VALID_OPTIONAL, 0, INT64_MAX, out_cas);
    return ag_valid_ok(v);
}

int
reg_config_check_cas(int64_t cas, int64_t current)
{
    if (cas < 0 || cas == current)
        return 0;
    return AG_ECONFLICT;
}

/* ---- The instance table ---- */

void
reg_state_init(struct reg_state *st, int64_t start_index, size_t max_instances)
{
    memset(st, 0, sizeof(*st));
    st->index = start_index;
    st->absent_index = start_index;
    st->max_instances = max_instances;
}

static void
instance_free(struct reg_instance *inst)
{
    if (inst == NULL)
        return;
    ag_free(inst->id);
    ag_free(inst->address);
    json_decref(inst->metadata);
    ag_free(inst);
}

static void
service_free(struct reg_service *svc)
{
    if (svc == NULL)
        return;
    for (size_t i = 0; i < svc->ninst; i++)
        instance_free(svc->inst[i]);
    ag_free(svc->inst);
    ag_free(svc->name);
    ag_free(svc);
}

void
reg_state_release(struct reg_state *st)
{
    for (size_t i = 0; i < st->nsvcs; i++) {
        if (st->svcs[i]->nwatches != 0)
            AG_BUG("registry state released with watches held");
        service_free(st->svcs[i]);
    }
    ag_free(st->svcs);
    st->svcs = NULL;
    st->nsvcs = 0;
    st->cap = 0;
    st->ninstances = 0;
}

int64_t
reg_state_next_index(struct reg_state *st)
{
    return ++st->index;
}

/* Binary search of 'name' in the sorted services: its position when found
 * (*out_found true), else where it would be inserted. */
static size_t
service_find(const struct reg_state *st, const char *name, bool *out_found)
{
    size_t lo = 0;
    size_t hi = st->nsvcs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->svcs[mid]->name, name);
        if (c == 0) {
            *out_found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out_found = false;
    return lo;
}

static size_t
instance_find(const struct reg_service *svc, const char *id, bool *out_found)
{
    size_t lo = 0;
    size_t hi = svc->ninst;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(svc->inst[mid]->id, id);
        if (c == 0) {
            *out_found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out_found = false;
    return lo;
}

struct reg_service *
reg_state_service(const struct reg_state *st, const char *name)
{
    bool found;
    size_t i = service_find(st, name, &found);
    return found ? st->svcs[i] : NULL;
}

struct reg_service *
reg_state_service_add(struct reg_state *st, const char *name)
{
    bool found;
    size_t i = service_find(st, name, &found);
    if (found)
        return st->svcs[i];
    if (st->nsvcs == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 16;
        st->svcs = ag_realloc(st->svcs, st->cap * sizeof(*st->svcs));
    }
    struct reg_service *svc = ag_calloc(1, sizeof(*svc));
    svc->name = ag_strdup(name);
    svc->modify_index = st->absent_index;
    memmove(&st->svcs[i + 1], &st->svcs[i], (st->nsvcs - i) * sizeof(*st->svcs));
    st->svcs[i] = svc;
    st->nsvcs++;
    return svc;
}

int64_t
reg_state_service_index(const struct reg_state *st, const char *name)
{
    const struct reg_service *svc = reg_state_service(st, name);
    return svc ? svc->modify_index : st->absent_index;
}

void
reg_state_service_prune(struct reg_state *st, struct reg_service *svc)
{
    if (svc == NULL || svc->ninst != 0 || svc->nwatches != 0)
        return;
    bool found;
    size_t i = service_find(st, svc->name, &found);
    if (!found || st->svcs[i] != svc)
        AG_BUG("pruning a service not in the table");
    st->absent_index = AG_MAX(st->absent_index, svc->modify_index);
    memmove(&st->svcs[i], &st->svcs[i + 1], (st->nsvcs - i - 1) * sizeof(*st->svcs));
    st->nsvcs--;
    service_free(svc);
}

static void
instance_touch(struct reg_instance *inst, const struct reg_clock *now)
{
    inst->seen_ms = now->unix_ms;
    inst->expires_mono = now->mono_ms + (uint64_t)inst->ttl_ms;
}

int
reg_state_register(struct reg_state *st, const char *service, const char *id,
                   const struct reg_instance_spec *spec, const struct reg_clock *now,
                   struct reg_service **out_svc, struct reg_instance **out_inst, bool *out_changed)
{
    struct reg_service *existing = reg_state_service(st, service);
    bool found = false;
    size_t pos = existing ? instance_find(existing, id, &found) : 0;
    if (!found && st->ninstances >= st->max_instances)
        return AG_EUNAVAIL;
    struct reg_service *svc = existing ? existing : reg_state_service_add(st, service);
    if (!existing)
        pos = instance_find(svc, id, &found);

    json_t *meta = spec->metadata ? json_incref(spec->metadata) : json_object();
    struct reg_instance *inst;
    bool changed;
    if (found) {
        inst = svc->inst[pos];
        changed = strcmp(inst->address, spec->address) != 0 || inst->port != spec->port ||
                  inst->ttl_ms != spec->ttl_ms || !json_equal(inst->metadata, meta);
        if (changed) {
            ag_free(inst->address);
            inst->address = ag_strdup(spec->address);
            inst->port = spec->port;
            inst->ttl_ms = spec->ttl_ms;
            json_decref(inst->metadata);
            inst->metadata = meta;
        } else {
            json_decref(meta);
        }
    } else {
        inst = ag_calloc(1, sizeof(*inst));
        inst->id = ag_strdup(id);
        inst->address = ag_strdup(spec->address);
        inst->port = spec->port;
        inst->ttl_ms = spec->ttl_ms;
        inst->metadata = meta;
        inst->registered_ms = now->unix_ms;
        if (svc->ninst == svc->cap) {
            svc->cap = svc->cap ? svc->cap * 2 : 4;
            svc->inst = ag_realloc(svc->inst, svc->cap * sizeof(*svc->inst));
        }
        memmove(&svc->inst[pos + 1], &svc->inst[pos], (svc->ninst - pos) * sizeof(*svc->inst));
        svc->inst[pos] = inst;
        svc->ninst++;
        st->ninstances++;
        changed = true;
    }
    instance_touch(inst, now);
    if (changed)
        svc->modify_index = reg_state_next_index(st);
    *out_svc = svc;
    *out_inst = inst;
    *out_changed = changed;
    return 0;
}

int
reg_state_heartbeat(struct reg_state *st, const char *service, const char *id,
                    const struct reg_clock *now, struct reg_instance **out_inst)
{
    struct reg_service *svc = reg_state_service(st, service);
    if (svc == NULL)
        return AG_ENOENT;
    bool found;
    size_t pos = instance_find(svc, id, &found);
    if (!found || svc->inst[pos]->expires_mono <= now->mono_ms)
        return AG_ENOENT;
    instance_touch(svc->inst[pos], now);
    *out_inst = svc->inst[pos];
    return 0;
}

static void
instance_remove_at(struct reg_state *st, struct reg_service *svc, size_t pos)
{
    instance_free(svc->inst[pos]);
    memmove(&svc->inst[pos], &svc->inst[pos + 1], (svc->ninst - pos - 1) * sizeof(*svc->inst));
    svc->ninst--;
    st->ninstances--;
}

int
reg_state_deregister(struct reg_state *st, const char *service, const char *id,
                     struct reg_service **out_svc)
{
    struct reg_service *svc = reg_state_service(st, service);
    if (svc == NULL)
        return AG_ENOENT;
    bool found;
    size_t pos = instance_find(svc, id, &found);
    if (!found)
        return AG_ENOENT;
    instance_remove_at(st, svc, pos);
    svc->modify_index = reg_state_next_index(st);
    *out_svc = svc;
    return 0;
}

size_t
reg_state_expire(struct reg_state *st, const struct reg_clock *now, reg_expire_fn cb, void *udata)
{
    size_t total = 0;
    size_t i = 0;
    while (i < st->nsvcs) {
        struct reg_service *svc = st->svcs[i];
        size_t kept = 0;
        size_t gone = 0;
        for (size_t j = 0; j < svc->ninst; j++) {
            struct reg_instance *inst = svc->inst[j];
            if (inst->expires_mono <= now->mono_ms) {
                instance_free(inst);
                gone++;
            } else {
                svc->inst[kept++] = inst;
            }
        }
        if (gone == 0) {
            i++;
            continue;
        }
        svc->ninst = kept;
        st->ninstances -= gone;
        total += gone;
        svc->modify_index = reg_state_next_index(st);
        if (cb != NULL)
            cb(st, svc, gone, udata);
        /* Pruning removes the entry at 'i'; the next service slides into it. */
        size_t before = st->nsvcs;
        reg_state_service_prune(st, svc);
        if (st->nsvcs == before)
            i++;
    }
    return total;
}

uint64_t
reg_state_next_expiry(const struct reg_state *st)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < st->nsvcs; i++) {
        const struct reg_service *svc = st->svcs[i];
        for (size_t j = 0; j < svc->ninst; j++)
            next = AG_MIN(next, svc->inst[j]->expires_mono);
    }
    return next;
}

size_t
reg_service_live_count(const struct reg_service *svc, const struct reg_clock *now)
{
    size_t n = 0;
    for (size_t i = 0; svc != NULL && i < svc->ninst; i++)
        n += svc->inst[i]->expires_mono > now->mono_ms;
    return n;
}

/* ---- Representations ---- */

json_t *
reg_instance_to_json(const struct reg_instance *inst, const char *service)
{
    char registered[AG_RFC3339_LEN];
    char expires[AG_RFC3339_LEN];
    ag_time_rfc3339(inst->registered_ms, registered);
    ag_time_rfc3339(inst->seen_ms + inst->ttl_ms, expires);
    json_t *j = json_object();
    if (service != NULL)
        json_object_set_new(j, "service", json_string(service));
    json_object_set_new(j, "id", json_string(inst->id));
    json_object_set_new(j, "address", json_string(inst->address));
    json_object_set_new(j, "port", json_integer(inst->port));
    json_object_set(j, "metadata", inst->metadata);
    if (service != NULL)
        json_object_set_new(j, "ttl_ms", json_integer(inst->ttl_ms));
    json_object_set_new(j, "registered_at", json_string(registered));
    json_object_set_new(j, "expires_at", json_string(expires));
    return j;
}

json_t *
reg_service_to_json(const struct reg_service *svc, const char *name, int64_t index,
                    const struct reg_clock *now)
{
    json_t *items = json_array();
    for (size_t i = 0; svc != NULL && i < svc->ninst; i++) {
        if (svc->inst[i]->expires_mono > now->mono_ms)
            json_array_append_new(items, reg_instance_to_json(svc->inst[i], NULL));
    }
    return json_pack("{s:s, s:o, s:I}", "service", name, "instances", items, "index",
                     (json_int_t)index);
}

json_t *
reg_state_services_to_json(const struct reg_state *st, const struct reg_clock *now)
{
    json_t *items = json_array();
    for (size_t i = 0; i < st->nsvcs; i++) {
        size_t n = reg_service_live_count(st->svcs[i], now);
        if (n > 0)
            json_array_append_new(items, json_pack("{s:s, s:I}", "name", st->svcs[i]->name,
                                                   "instances", (json_int_t)n));
    }
    return json_pack("{s:o, s:I}", "services", items, "index", (json_int_t)st->index);
}

int
reg_config_entry_render(const struct reg_config_entry *e, struct ag_buf *out)
{
    size_t mark = out->len;
    int rc = ag_buf_appendf(out, "{\"key\":\"%s\",\"value\":", e->key);
    if (rc == 0)
        rc = ag_buf_append(out, e->value, e->value_len);
    if (rc == 0)
        rc = ag_buf_appendf(out, ",\"version\":%lld,\"modify_index\":%lld}", (long long)e->version,
                            (long long)e->modify_index);
    if (rc != 0 && out->data != NULL) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rc;
}
