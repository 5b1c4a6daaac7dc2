/* SPDX-License-Identifier: MIT */
/* libFuzzer target: JSON request bodies. The first byte picks the reader:
 * the chassis's strict parser with a service-style validation of the
 * result, the bus's publish scanner (its own strict JSON scanner), the
 * bus's subscription / pull / ack / replay bodies, or the gateway's route
 * table compiler. The rest is the body. */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "domain.h"  /* platform/bus */
#include "gateway.h" /* platform/gateway */

static void
validate_like_a_service(json_t *body)
{
    struct ag_valid v;
    ag_valid_init(&v);
    ag_valid_string(&v, body, NULL, "email", AG_VALID_REQUIRED, 3, 254);
    ag_valid_string(&v, body, NULL, "name", 0, 1, 100);
    int64_t qty = 0;
    ag_valid_int(&v, body, NULL, "quantity", AG_VALID_NULLABLE, 1, 1000, &qty);
    bool b = false;
    ag_valid_bool(&v, body, NULL, "active", 0, &b);
    json_t *price = ag_valid_object(&v, body, NULL, "price", 0);
    ag_valid_string(&v, price, "price", "currency", AG_VALID_REQUIRED, 3, 3);
    json_t *lines = ag_valid_array(&v, body, NULL, "lines", 0, 1, 50);
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line)
    {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "lines[%zu]", i);
        ag_valid_string(&v, line, prefix, "product_id", AG_VALID_REQUIRED, 36, 36);
    }
    static const char *const choices[] = { "visa", "mastercard", NULL };
    ag_valid_enum(&v, body, NULL, "brand", 0, choices);
    static const char *const allowed[] = { "email", "name",  "quantity", "active",
                                           "price", "lines", "brand",    NULL };
    ag_valid_unknown(&v, body, NULL, allowed);
    if (!ag_valid_ok(&v)) {
        json_t *p = ag_problem_new(422, "validation-failed", "Unprocessable", "invalid");
        ag_problem_set_errors(p, &v);
        struct ag_buf out = AG_BUF_INIT(0);
        ag_json_dump(p, &out);
        ag_buf_release(&out);
        json_decref(p);
    }
    ag_valid_release(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    unsigned pick = data[0] % 6;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char err[256];
    struct ag_pool *pool = ag_pool_new(0);
    struct ag_valid v;
    ag_valid_init(&v);
    if (pick == 0) {
        json_t *j = ag_json_parse(body, len, err, sizeof(err));
        if (j != NULL) {
            validate_like_a_service(j);
            json_decref(j);
        }
    } else if (pick == 1) {
        struct bus_msg_in *msgs;
        size_t n;
        int rc = bus_publish_parse(&v, body, len, pool, &msgs, &n, err, sizeof(err));
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (msgs[i].data_len > len)
                abort(); /* data points into the body */
        }
    } else {
        json_t *j = ag_json_parse(body, len, err, sizeof(err));
        if (j != NULL) {
            if (pick == 2) {
                struct bus_sub_config sc;
                bus_sub_config_from_json(&v, j, &sc);
            } else if (pick == 3) {
                int64_t max;
                int64_t wait;
                bus_pull_from_json(&v, j, &max, &wait);
                struct bus_ack_ref *refs;
                size_t n;
                int64_t delay;
                const char *error;
                bus_acks_from_json(&v, j, true, pool, &refs, &n, &delay, &error);
            } else if (pick == 4) {
                int64_t *seqs;
                size_t n;
                bus_replay_from_json(&v, j, pool, &seqs, &n);
            } else {
                struct gw_config *cfg = NULL;
                if (gw_config_compile(j, "fuzz", &cfg, err, sizeof(err)) == 0)
                    gw_config_unref(cfg);
            }
            json_decref(j);
        }
    }
    ag_valid_release(&v);
    ag_pool_free(pool);
    return 0;
}
