/* SPDX-License-Identifier: MIT */
/* Registry domain: the in-memory table of service instances with their TTLs
 * and modify indexes, the registry-wide index counter, name rules, request
 * validation and the JSON representations. Pure functions: no I/O, no
 * database, no clock (callers pass the time in), no event loop. A state
 * belongs to one thread (the service's loop); nothing here calls back later:
 * the only callback (reg_state_expire's) runs before the call returns. */
#ifndef REG_DOMAIN_H
#define REG_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"

#define REG_SERVICE_MAX     64        /* bytes of a service name */
#define REG_ID_MAX          128       /* bytes of an instance id */
#define REG_ADDRESS_MAX     255       /* bytes of an address */
#define REG_METADATA_MAX    4096      /* bytes of the compact metadata object */
#define REG_TTL_MIN         1000      /* ms */
#define REG_TTL_MAX         300000    /* ms */
#define REG_TTL_DEFAULT     10000     /* ms */
#define REG_KEY_MAX         200       /* bytes of a configuration key */
#define REG_VALUE_MAX       262144    /* bytes of a compact configuration value */
#define REG_WAIT_DEFAULT    30000     /* ms a long poll is held when 'wait' is absent */
#define REG_WAIT_MAX        120000    /* ms, largest 'wait' */
#define REG_TOMBSTONES_MAX  10000     /* deleted keys remembered for prefix watches */
#define REG_INDEX_MAX       INT64_MAX /* largest index a client may send */
#define REG_PREFIX_END_CHAR '~'       /* sorts after every key character */

/* Both clocks, read once per event: the wall clock stamps what clients
 * see, the monotonic clock decides expiry (a wall-clock jump must not
 * expire every instance at once). */
struct reg_clock {
    int64_t unix_ms;  /* ag_time_unix_ms() */
    uint64_t mono_ms; /* ag_time_mono_ms() */
};

/* One registered instance. */
struct reg_instance {
    char *id;              /* owned */
    char *address;         /* owned */
    int port;              /* 1..65535 */
    json_t *metadata;      /* owned reference to an object ({} when none was sent) */
    int64_t ttl_ms;        /* REG_TTL_MIN..REG_TTL_MAX */
    int64_t registered_ms; /* wall clock of the first registration */
    int64_t seen_ms;       /* wall clock of the last registration or heartbeat */
    uint64_t expires_mono; /* monotonic deadline: seen + ttl */
};

struct reg_watch; /* a long poll held on a service (api.c) */

/* A service: its instances sorted by id and the index of its last change.
 * It exists while it has instances or long polls held on it. */
struct reg_service {
    char *name;                 /* owned */
    struct reg_instance **inst; /* 'ninst' entries sorted by id (strcmp) */
    size_t ninst;
    size_t cap;
    int64_t modify_index;      /* index of the last change of the instance set */
    struct reg_watch *watches; /* long polls held (owned by api.c), or NULL */
    size_t nwatches;           /* entries in 'watches' */
};

/* The whole in-memory registry of instances and the shared index. */
struct reg_state {
    struct reg_service **svcs; /* 'nsvcs' entries sorted by name */
    size_t nsvcs;
    size_t cap;
    size_t ninstances;    /* over every service */
    size_t max_instances; /* registrations of new instances fail past it */
    int64_t index;        /* the last index handed out (config and services) */
    int64_t absent_index; /* modify index reported for a service with no entry */
};

/* A validated registration body; strings and 'metadata' borrowed from it. */
struct reg_instance_spec {
    const char *address;
    int port;
    json_t *metadata; /* object, or NULL when absent */
    int64_t ttl_ms;
};

/* ---- Names ---- */

/* [a-z0-9-]{1,64} */
bool reg_service_name_is_valid(const char *s);
/* [A-Za-z0-9._:-]{1,128} */
bool reg_instance_id_is_valid(const char *s);
/* [A-Za-z0-9._-]{1,200} */
bool reg_config_key_is_valid(const char *s);
/* [A-Za-z0-9._-]{0,200}: a key prefix, possibly empty. */
bool reg_config_prefix_is_valid(const char *s);
/* 1..255 bytes of letters, digits and ".-:_%[]" (host names, IPv4, IPv6
 * with an optional zone or brackets). */
bool reg_address_is_valid(const char *s);
/* Does 'key' start with 'prefix'? */
bool reg_key_has_prefix(const char *key, const char *prefix);

/* ---- Index ---- */

/* The counter value at start-up: the larger of 'stored' (the highest index
 * persisted) and 'now_us' (the wall clock in microseconds), so that an index
 * a client holds from before a restart is never handed out again for a
 * different state. */
int64_t reg_start_index(int64_t stored, int64_t now_us);

/* ---- Validation ---- */

/* Validate a registration body into 'out'. Errors go to 'v' (fields
 * "address", "port", "metadata", "ttl_ms" and unknown fields); returns true
 * when valid. A missing ttl_ms gives REG_TTL_DEFAULT. */
bool reg_instance_spec_from_json(struct ag_valid *v, json_t *body, struct reg_instance_spec *out);

/* Validate a configuration PUT body {"value": <any JSON>, "cas": <int>}:
 * the compact encoding of "value" is appended to 'out_value' (an empty
 * buffer; its maximum is set to REG_VALUE_MAX), '*out_cas' receives "cas"
 * or -1 when absent. Errors go to 'v';
 * returns true when valid. */
bool reg_config_put_from_json(struct ag_valid *v, json_t *body, struct ag_buf *out_value,
                              int64_t *out_cas);

/* Check a compare-and-set: 'cas' -1 (none) always passes; 0 passes only
 * when the key is absent ('current' 0); otherwise it must equal 'current',
 * the stored version (0 when absent). Returns 0 or AG_ECONFLICT. */
int reg_config_check_cas(int64_t cas, int64_t current);

/* ---- The instance table ---- */

/* Start empty with the counter at 'start_index' (also the index reported
 * for services never seen), allowing 'max_instances' instances. */
void reg_state_init(struct reg_state *st, int64_t start_index, size_t max_instances);

/* Free every service and instance. Services must hold no watches. */
void reg_state_release(struct reg_state *st);

/* Hand out the next index (the counter plus one). */
int64_t reg_state_next_index(struct reg_state *st);

/* The service named 'name', or NULL. Borrowed until it is pruned. */
struct reg_service *reg_state_service(const struct reg_state *st, const char *name);

/* The service named 'name', created empty (modify index: the absent index)
 * when it has no entry. Never NULL. */
struct reg_service *reg_state_service_add(struct reg_state *st, const char *name);

/* Modify index of service 'name': its entry's, else the absent index. */
int64_t reg_state_service_index(const struct reg_state *st, const char *name);

/* Free 'svc' if it has neither instances nor watches, remembering its
 * modify index in the absent index so a service's index never goes back.
 * 'svc' must not be used afterwards. */
void reg_state_service_prune(struct reg_state *st, struct reg_service *svc);

/* Register (create or replace) instance 'id' of 'service'. A new instance
 * counts against max_instances: AG_EUNAVAIL past it. '*out_changed' tells
 * whether the address, port, metadata or TTL changed (or the instance is
 * new), in which case the service got a new modify index; otherwise only
 * the TTL was refreshed. On success '*out_svc' and '*out_inst' are
 * borrowed. */
int reg_state_register(struct reg_state *st, const char *service, const char *id,
                       const struct reg_instance_spec *spec, const struct reg_clock *now,
                       struct reg_service **out_svc, struct reg_instance **out_inst,
                       bool *out_changed);

/* Refresh the TTL of a live instance. AG_ENOENT when the instance is
 * unknown or its TTL has already run out at 'now' (the client then
 * registers again). '*out_inst' is borrowed. */
int reg_state_heartbeat(struct reg_state *st, const char *service, const char *id,
                        const struct reg_clock *now, struct reg_instance **out_inst);

/* Remove an instance; its service gets a new modify index. AG_ENOENT when
 * unknown. '*out_svc' is borrowed; the caller prunes it when done. */
int reg_state_deregister(struct reg_state *st, const char *service, const char *id,
                         struct reg_service **out_svc);

/* Called for every service that lost instances to expiry, after they were
 * removed and it got its new modify index; 'nexpired' is how many. */
typedef void (*reg_expire_fn)(struct reg_state *st, struct reg_service *svc, size_t nexpired,
                              void *udata);

/* Remove every instance whose deadline is at or before 'now->mono_ms',
 * call 'cb' (may be NULL) once per service touched, then prune those
 * services. Returns the number of instances removed. */
size_t reg_state_expire(struct reg_state *st, const struct reg_clock *now, reg_expire_fn cb,
                        void *udata);

/* The earliest instance deadline (monotonic ms), or UINT64_MAX when there
 * are no instances. */
uint64_t reg_state_next_expiry(const struct reg_state *st);

/* Instances of 'svc' still live at 'now'. */
size_t reg_service_live_count(const struct reg_service *svc, const struct reg_clock *now);

/* ---- Representations ---- */

/* An instance as listed (new reference): {"id","address","port","metadata",
 * "registered_at","expires_at"}; with 'service' not NULL (the registration
 * answer) {"service","id","address","port","metadata","ttl_ms",
 * "registered_at","expires_at"}. */
json_t *reg_instance_to_json(const struct reg_instance *inst, const char *service);

/* The answer to GET /v1/services/{service}: {"service","instances":[live
 * instances by id],"index"}. 'svc' may be NULL (no entry: no instances). */
json_t *reg_service_to_json(const struct reg_service *svc, const char *name, int64_t index,
                            const struct reg_clock *now);

/* The answer to GET /v1/services: {"services":[{"name","instances"}] for
 * services with live instances, by name, "index"}. */
json_t *reg_state_services_to_json(const struct reg_state *st, const struct reg_clock *now);

/* A configuration entry as stored: 'value' is compact JSON text. */
struct reg_config_entry {
    const char *key;
    const char *value;
    size_t value_len;
    int64_t version;
    int64_t modify_index;
};

/* Append {"key","value","version","modify_index"} to 'out'. The key must
 * be valid (it needs no escaping) and 'value' valid JSON. Returns 0 or
 * AG_ETOOBIG when 'out' is full. */
int reg_config_entry_render(const struct reg_config_entry *e, struct ag_buf *out);

#endif /* REG_DOMAIN_H */
