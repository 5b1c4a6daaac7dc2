/* SPDX-License-Identifier: MIT */
/* Catalog service: composition root. Wires the chassis (settings, database
 * and migrations, events runtime, port from agora/ports.h), the route table
 * and the optional seed data loaded into an empty catalog. */
#include "agora/base.h"
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agora/err.h"
#include "agora/log.h"
#include "agora/ports.h"

extern const struct ag_migration catalog_migrations[];
extern const size_t catalog_nmigrations;

#define SEED_MAX_BYTES (16u << 20)

static const struct ag_config_key CATALOG_KEYS[] = {
    { "AGORA_CATALOG_SEED", AG_CONFIG_STRING, "", offsetof(struct catalog_settings, seed_path), 0,
      0, NULL, "JSON file of categories and products loaded when the catalog is empty" },
};

static int
read_file(const char *path, struct ag_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        AG_LOGE("seed", "cannot open '%s': %s", path, strerror(errno));
        return AG_EIO;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = ag_buf_append(out, chunk, n);
    if (rc == 0 && ferror(f))
        rc = AG_EIO;
    fclose(f);
    if (rc != 0)
        AG_LOGE("seed", "cannot read '%s': %s", path, ag_strerror(rc));
    return rc;
}

struct seed_ctx {
    json_t *root;
    struct ag_events *events;
    int64_t categories;
    int64_t products;
};

static int
seed_tx(struct ag_store *store, void *arg)
{
    struct seed_ctx *sc = arg;
    sc->categories = 0; /* a rerun (ag_store_tx retry) counts afresh */
    sc->products = 0;
    char now[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_time_unix_ms(), now);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(sc->root, "categories"), i, item)
    {
        struct ag_valid v;
        ag_valid_init(&v);
        struct catalog_category c;
        bool ok = json_is_object(item) && catalog_category_from_json(&v, item, &c);
        ag_valid_release(&v);
        if (!ok) {
            AG_LOGE("seed", "category #%zu is invalid", i);
            return AG_EINVAL;
        }
        int rc = catalog_store_category_insert(store, &c, now);
        if (rc != 0 && rc != AG_EEXIST)
            return rc;
        sc->categories += rc == 0;
    }
    json_array_foreach(json_object_get(sc->root, "products"), i, item)
    {
        struct ag_valid v;
        ag_valid_init(&v);
        struct catalog_product p;
        bool ok = json_is_object(item) && catalog_product_from_json(&v, item, &p);
        if (!ok) {
            char *errs = json_dumps(v.errors, JSON_COMPACT);
            AG_LOGE("seed", "product #%zu is invalid: %s", i, errs ? errs : "not an object");
            ag_free(errs);
            ag_valid_release(&v);
            return AG_EINVAL;
        }
        ag_valid_release(&v);
        int rc = catalog_create_product(store, sc->events, &p, NULL, NULL);
        if (rc != 0) {
            AG_LOGE("seed", "cannot insert product '%s': %s", p.sku, ag_strerror(rc));
            return rc;
        }
        sc->products++;
    }
    return 0;
}

static int
load_seed(struct catalog *cat)
{
    const char *path = cat->settings.seed_path;
    if (path == NULL || path[0] == '\0')
        return 0;
    int64_t count;
    int rc = catalog_store_count(cat->store, &count);
    if (rc != 0)
        return rc;
    if (count > 0) {
        AG_LOGI("seed", "catalog holds %lld products; seed '%s' not loaded", (long long)count,
                path);
        return 0;
    }
    struct ag_buf data = AG_BUF_INIT(SEED_MAX_BYTES);
    rc = read_file(path, &data);
    if (rc != 0) {
        ag_buf_release(&data);
        return rc;
    }
    char err[160];
    json_t *root = ag_json_parse(ag_buf_cstr(&data), data.len, err, sizeof(err));
    ag_buf_release(&data);
    if (root == NULL || !json_is_object(root)) {
        AG_LOGE("seed", "'%s' is not a JSON object: %s", path, root ? "wrong type" : err);
        json_decref(root);
        return AG_EINVAL;
    }
    struct seed_ctx sc = { .root = root, .events = cat->events };
    rc = ag_store_tx(cat->store, seed_tx, &sc);
    json_decref(root);
    if (rc == 0)
        AG_LOGI("seed", "loaded %lld categories and %lld products from '%s'",
                (long long)sc.categories, (long long)sc.products, path);
    return rc;
}

static int
on_start(struct ag_service *svc, void *udata)
{
    struct catalog *cat = udata;
    cat->svc = svc;
    cat->store = ag_service_store(svc);
    cat->events = ag_service_events(svc);
    return load_seed(cat);
}

int
main(int argc, char **argv)
{
    /* The service's state: main's for the whole run, reached by callbacks
     * through their udata, never through a global. */
    struct catalog cat = { 0 };
    struct ag_service_config cfg = {
        .name = "catalog",
        .version = "0.1.0",
        .default_port = AG_PORT_CATALOG,
        .migrations = catalog_migrations,
        .nmigrations = catalog_nmigrations,
        .keys = CATALOG_KEYS,
        .nkeys = AG_ARRAY_SIZE(CATALOG_KEYS),
        .settings = &cat.settings,
        .on_start = on_start,
        .events = true,
        .udata = &cat,
    };
    struct ag_service *svc;
    int rc = ag_service_init(&svc, argc, argv, &cfg);
    if (rc != 0)
        return ag_service_exit_code(rc);
    rc = ag_service_routes(svc, catalog_routes, catalog_nroutes, &cat);
    int status = rc == 0 ? ag_service_run(svc) : 1;
    ag_service_free(svc);
    catalog_list_cache_free(&cat);
    return status;
}
