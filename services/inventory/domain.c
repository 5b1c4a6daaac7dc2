/* SPDX-License-Identifier: MIT */
/* Inventory domain rules: stock arithmetic and guards, command and body
 * validation, the reservation decision, thresholds, cursors. No I/O here;
 * api.c, events.c and store.c do that. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/str.h"

static const char *const PUT_FIELDS[] = { "on_hand", "reason", "low_threshold", "version", NULL };
static const char *const ADJUST_FIELDS[] = { "delta", "reason", NULL };
static const char *const RELEASE_REASONS[] = { "cancelled", "expired", "payment_failed",
                                               "shipment_failed", NULL };

bool
inv_id_is_valid(struct ag_str s)
{
    if (s.len != AG_UUID_STRLEN || ag_uuid7_time_ms(s) < 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] >= 'A' && s.ptr[i] <= 'F')
            return false;
    }
    return strchr("89ab", s.ptr[19]) != NULL;
}

int64_t
inv_available(const struct inv_stock_state *s)
{
    if (!s->known || !s->active || s->on_hand <= s->reserved)
        return 0;
    return s->on_hand - s->reserved;
}

bool
inv_can_reserve(const struct inv_stock_state *s, int64_t quantity)
{
    return s->known && s->active && quantity > 0 && quantity <= inv_available(s);
}

const char *
inv_reject_name(enum inv_reject r)
{
    switch (r) {
    case INV_REJECT_NONE: return "none";
    case INV_REJECT_OUT_OF_STOCK: return "out_of_stock";
    case INV_REJECT_UNKNOWN_PRODUCT: return "unknown_product";
    case INV_REJECT_INVALID: return "invalid";
    }
    return "invalid";
}

enum inv_reject
inv_reserve_decide(const struct inv_line *lines, const struct inv_stock_state *states, size_t n,
                   bool *out_failed)
{
    enum inv_reject r = n == 0 ? INV_REJECT_INVALID : INV_REJECT_NONE;
    for (size_t i = 0; i < n; i++) {
        out_failed[i] = !inv_can_reserve(&states[i], lines[i].quantity);
        if (!out_failed[i])
            continue;
        /* An unknown product outranks a shortage: retrying cannot help. */
        if (!states[i].known || !states[i].active)
            r = INV_REJECT_UNKNOWN_PRODUCT;
        else if (r == INV_REJECT_NONE)
            r = INV_REJECT_OUT_OF_STOCK;
    }
    return r;
}

int
inv_stock_adjust(int64_t on_hand, int64_t reserved, int64_t delta, int64_t *out_on_hand)
{
    if ((delta > 0 && on_hand > INV_STOCK_MAX - delta) || (delta < 0 && on_hand + delta < 0))
        return AG_ERANGE;
    int64_t next = on_hand + delta;
    if (next < reserved)
        return AG_ECONFLICT;
    *out_on_hand = next;
    return 0;
}

void
inv_stock_crossings(int64_t before, int64_t after, int64_t threshold, bool *out_low,
                    bool *out_depleted)
{
    *out_low = after <= threshold && before > threshold;
    *out_depleted = after == 0 && before > 0;
}

/* ---- Saga commands ---- */

bool
inv_step_key_is_valid(const char *order_id, const char *step_key)
{
    size_t n = strlen(order_id);
    if (strncmp(step_key, order_id, n) != 0 || step_key[n] != ':')
        return false;
    const char *step = step_key + n + 1;
    size_t len = strlen(step);
    if (len == 0 || len > INV_STEP_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = step[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool
inv_command_head(struct ag_valid *v, json_t *data, const char **out_order_id,
                 const char **out_step_key)
{
    const char *order_id = ag_valid_string(v, data, NULL, "order_id", AG_VALID_REQUIRED, 1, 64);
    if (order_id != NULL && !inv_id_is_valid(ag_str_from_cstr(order_id))) {
        ag_valid_error(v, "order_id", "invalid", "must be a UUIDv7");
        order_id = NULL;
    }
    const char *step_key = ag_valid_string(v, data, NULL, "step_key", AG_VALID_REQUIRED, 1,
                                           AG_UUID_STRLEN + 1 + INV_STEP_MAX);
    if (order_id != NULL && step_key != NULL && !inv_step_key_is_valid(order_id, step_key)) {
        ag_valid_error(v, "step_key", "invalid", "must be \"<order_id>:<step>\"");
        step_key = NULL;
    }
    *out_order_id = order_id;
    *out_step_key = step_key;
    return order_id != NULL && step_key != NULL;
}

bool
inv_reserve_lines(struct ag_valid *v, json_t *data, struct inv_line *out_lines, size_t *out_n)
{
    static const char *const LINE_FIELDS[] = { "product_id", "quantity", NULL };
    *out_n = 0;
    json_t *lines = ag_valid_array(v, data, NULL, "lines", AG_VALID_REQUIRED, 1, INV_LINES_MAX);
    if (lines == NULL)
        return false;
    bool ok = true;
    size_t i;
    json_t *item;
    json_array_foreach(lines, i, item)
    {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "lines[%zu]", i);
        if (!json_is_object(item)) {
            ag_valid_error(v, prefix, "type", "must be an object");
            ok = false;
            continue;
        }
        ag_valid_unknown(v, item, prefix, LINE_FIELDS);
        const char *pid = ag_valid_string(v, item, prefix, "product_id", AG_VALID_REQUIRED, 1, 64);
        int64_t q = 0;
        bool qok =
            ag_valid_int(v, item, prefix, "quantity", AG_VALID_REQUIRED, 1, INV_QUANTITY_MAX, &q);
        if (pid != NULL && !inv_id_is_valid(ag_str_from_cstr(pid))) {
            char field[48];
            snprintf(field, sizeof(field), "%s.product_id", prefix);
            ag_valid_error(v, field, "invalid", "must be a UUIDv7");
            pid = NULL;
        }
        if (pid == NULL || !qok) {
            ok = false;
            continue;
        }
        size_t j = 0;
        while (j < *out_n && strcmp(out_lines[j].product_id, pid) != 0)
            j++;
        if (j == *out_n) {
            memcpy(out_lines[j].product_id, pid, AG_UUID_STRLEN + 1);
            out_lines[j].quantity = 0;
            (*out_n)++;
        }
        if (out_lines[j].quantity > INV_QUANTITY_MAX - q) {
            ag_valid_error(v, prefix, "too_large", "the product's total quantity is too large");
            ok = false;
            continue;
        }
        out_lines[j].quantity += q;
    }
    return ok && ag_valid_ok(v);
}

const char *
inv_release_reason(struct ag_valid *v, json_t *data)
{
    return ag_valid_enum(v, data, NULL, "reason", AG_VALID_REQUIRED, RELEASE_REASONS);
}

const char *
inv_restock_reason(struct ag_valid *v, json_t *data)
{
    static const char *const RESTOCK_REASONS[] = { "order_cancelled", NULL };
    return ag_valid_enum(v, data, NULL, "reason", AG_VALID_REQUIRED, RESTOCK_REASONS);
}

/* ---- Admin bodies ---- */

bool
inv_stock_put_from_json(struct ag_valid *v, json_t *body, int64_t *out_on_hand,
                        const char **out_reason, int64_t *out_threshold, int64_t *out_version)
{
    ag_valid_unknown(v, body, NULL, PUT_FIELDS);
    ag_valid_int(v, body, NULL, "on_hand", AG_VALID_REQUIRED, 0, INV_STOCK_MAX, out_on_hand);
    *out_reason = ag_valid_string(v, body, NULL, "reason", AG_VALID_REQUIRED, 1, INV_REASON_MAX);
    *out_threshold = -1;
    if (ag_valid_is_null(body, "low_threshold"))
        *out_threshold = -2;
    else
        ag_valid_int(v, body, NULL, "low_threshold", AG_VALID_OPTIONAL, 0, INV_STOCK_MAX,
                     out_threshold);
    *out_version = -1;
    ag_valid_int(v, body, NULL, "version", AG_VALID_OPTIONAL, 1, INT64_MAX, out_version);
    return ag_valid_ok(v);
}

bool
inv_adjustment_from_json(struct ag_valid *v, json_t *body, int64_t *out_delta,
                         const char **out_reason)
{
    ag_valid_unknown(v, body, NULL, ADJUST_FIELDS);
    *out_delta = 0;
    if (ag_valid_int(v, body, NULL, "delta", AG_VALID_REQUIRED, -INV_STOCK_MAX, INV_STOCK_MAX,
                     out_delta) &&
        *out_delta == 0)
        ag_valid_error(v, "delta", "invalid", "must not be 0");
    *out_reason = ag_valid_string(v, body, NULL, "reason", AG_VALID_REQUIRED, 1, INV_REASON_MAX);
    return ag_valid_ok(v);
}

int
inv_parse_ids(const char *s, char out[][AG_UUID_STRLEN + 1])
{
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == INV_IDS_MAX || !inv_id_is_valid(ag_str_make(p, len)))
            return -1;
        memcpy(out[n], p, AG_UUID_STRLEN);
        out[n][AG_UUID_STRLEN] = '\0';
        n++;
        if (comma == NULL)
            return n;
        p = comma + 1;
    }
}

void
inv_cursor_encode(const char *last_id, char *out, size_t outlen)
{
    char raw[64];
    int n = snprintf(raw, sizeof(raw), "k%s", last_id);
    ag_base64url_encode(raw, (size_t)n, out, outlen);
}

int
inv_cursor_decode(const char *s, char out[AG_UUID_STRLEN + 1])
{
    unsigned char raw[64];
    size_t n;
    if (ag_base64url_decode(s, strlen(s), raw, sizeof(raw) - 1, &n) != 0 || n < 2 || raw[0] != 'k')
        return AG_EINVAL;
    struct ag_str rest = ag_str_make((const char *)raw + 1, n - 1);
    if (!inv_id_is_valid(rest))
        return AG_EINVAL;
    memcpy(out, rest.ptr, AG_UUID_STRLEN);
    out[AG_UUID_STRLEN] = '\0';
    return 0;
}
