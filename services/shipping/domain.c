/* SPDX-License-Identifier: MIT */
/* Shipping domain rules: the state machine, command validation, the JSON of
 * shipments and replies, tracking numbers, cursors. No I/O here; api.c,
 * commands.c and store.c do that. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"
#include "agora/str.h"

static const char *const STATUS_NAMES[] = {
#define SHIP__STATUS_NAME(NAME, name) name,
    SHIP_STATUSES(SHIP__STATUS_NAME)
#undef SHIP__STATUS_NAME
};

static const char *const CREATE_FIELDS[] = { "order_id", "step_key", "user_id",
                                             "address",  "lines",    NULL };
static const char *const CANCEL_FIELDS[] = { "order_id", "step_key", "reason", NULL };
static const char *const ADDRESS_FIELDS[] = { "name",        "line1",   "line2", "city",
                                              "postal_code", "country", NULL };
static const char *const LINE_FIELDS[] = { "product_id", "quantity", NULL };

/* ---- State machine ---- */

const char *
ship_status_name(enum ship_status s)
{
    return (unsigned)s < SHIP_NSTATUSES ? STATUS_NAMES[s] : "unknown";
}

int
ship_status_parse(const char *name, enum ship_status *out)
{
    for (unsigned i = 0; i < SHIP_NSTATUSES; i++) {
        if (strcmp(name, STATUS_NAMES[i]) == 0) {
            *out = (enum ship_status)i;
            return 0;
        }
    }
    return AG_EINVAL;
}

const char *
ship_action_name(enum ship_action a)
{
    switch (a) {
    case SHIP_ACT_SHIP: return "ship";
    case SHIP_ACT_DELIVER: return "deliver";
    case SHIP_ACT_CANCEL: return "cancel";
    }
    return "unknown";
}

int
ship_transition(enum ship_status from, enum ship_action action, enum ship_status *out_to)
{
    enum ship_status to;
    switch (action) {
    case SHIP_ACT_SHIP:
        if (from != SHIP_CREATED)
            return AG_ECONFLICT;
        to = SHIP_SHIPPED;
        break;
    case SHIP_ACT_DELIVER:
        if (from != SHIP_SHIPPED)
            return AG_ECONFLICT;
        to = SHIP_DELIVERED;
        break;
    case SHIP_ACT_CANCEL:
        /* Only before dispatch: what left with the carrier stays shipped. */
        if (from != SHIP_CREATED)
            return AG_ECONFLICT;
        to = SHIP_CANCELLED;
        break;
    default: return AG_ECONFLICT;
    }
    *out_to = to;
    return 0;
}

bool
ship_id_is_valid(const char *s)
{
    if (s == NULL || strlen(s) != AG_UUID_STRLEN)
        return false;
    for (size_t i = 0; i < AG_UUID_STRLEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return s[14] == '7' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

/* ---- Command validation ---- */

/* A required single line of 1..'max' code points without control
 * characters (common.schema.json#/$defs/text). */
static const char *
text_field(struct ag_valid *v, json_t *obj, const char *prefix, const char *field, unsigned flags,
           size_t max)
{
    const char *s = ag_valid_string(v, obj, prefix, field, flags, 1, max);
    if (s == NULL)
        return NULL;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ag_utf8_next(s + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || cp == 0x7f) {
            char name[64];
            snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", field);
            ag_valid_error(v, name, "invalid", "must be one line without control characters");
            return NULL;
        }
        i += n;
    }
    return s;
}

static const char *
id_field(struct ag_valid *v, json_t *obj, const char *prefix, const char *field)
{
    const char *s = ag_valid_string(v, obj, prefix, field, AG_VALID_REQUIRED, 0, 0);
    if (s != NULL && !ship_id_is_valid(s)) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", field);
        ag_valid_error(v, name, "invalid", "must be a lowercase UUIDv7");
        return NULL;
    }
    return s;
}

static bool
step_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* "<order_id>:<step>", the step 1..SHIP_STEP_MAX of [a-z0-9._-]. */
static const char *
step_key_field(struct ag_valid *v, json_t *obj, const char *order_id)
{
    const char *s = ag_valid_string(v, obj, NULL, "step_key", AG_VALID_REQUIRED, 0, 0);
    if (s == NULL)
        return NULL;
    size_t len = strlen(s);
    bool ok = len > AG_UUID_STRLEN + 1 && len <= SHIP_STEP_KEY_MAX && s[AG_UUID_STRLEN] == ':';
    for (size_t i = AG_UUID_STRLEN + 1; ok && i < len; i++)
        ok = step_char(s[i]);
    if (!ok) {
        ag_valid_error(v, "step_key", "invalid", "must be \"<order_id>:<step>\"");
        return NULL;
    }
    if (order_id != NULL && strncmp(s, order_id, AG_UUID_STRLEN) != 0) {
        ag_valid_error(v, "step_key", "invalid", "must start with the order id");
        return NULL;
    }
    return s;
}

static bool
country_is_valid(const char *s)
{
    return strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

static json_t *
address_field(struct ag_valid *v, json_t *obj)
{
    json_t *a = ag_valid_object(v, obj, NULL, "address", AG_VALID_REQUIRED);
    if (a == NULL)
        return NULL;
    size_t before = json_array_size(v->errors);
    ag_valid_unknown(v, a, "address", ADDRESS_FIELDS);
    text_field(v, a, "address", "name", AG_VALID_REQUIRED, 100);
    text_field(v, a, "address", "line1", AG_VALID_REQUIRED, 200);
    text_field(v, a, "address", "line2", AG_VALID_OPTIONAL, 200);
    text_field(v, a, "address", "city", AG_VALID_REQUIRED, 100);
    text_field(v, a, "address", "postal_code", AG_VALID_REQUIRED, 20);
    const char *country = ag_valid_string(v, a, "address", "country", AG_VALID_REQUIRED, 0, 0);
    if (country != NULL && !country_is_valid(country))
        ag_valid_error(v, "address.country", "invalid", "must be an ISO 3166-1 alpha-2 code");
    return json_array_size(v->errors) == before ? a : NULL;
}

static json_t *
lines_field(struct ag_valid *v, json_t *obj)
{
    json_t *lines = ag_valid_array(v, obj, NULL, "lines", AG_VALID_REQUIRED, 1, SHIP_LINES_MAX);
    if (lines == NULL)
        return NULL;
    size_t before = json_array_size(v->errors);
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line)
    {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "lines[%zu]", i);
        if (!json_is_object(line)) {
            ag_valid_error(v, prefix, "type", "must be an object");
            continue;
        }
        ag_valid_unknown(v, line, prefix, LINE_FIELDS);
        id_field(v, line, prefix, "product_id");
        int64_t q;
        ag_valid_int(v, line, prefix, "quantity", AG_VALID_REQUIRED, 1, SHIP_QUANTITY_MAX, &q);
    }
    return json_array_size(v->errors) == before ? lines : NULL;
}

bool
ship_create_cmd_from_json(struct ag_valid *v, json_t *data, struct ship_create_cmd *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(data)) {
        ag_valid_error(v, NULL, "type", "the command's data must be an object");
        return false;
    }
    ag_valid_unknown(v, data, NULL, CREATE_FIELDS);
    out->order_id = id_field(v, data, NULL, "order_id");
    out->step_key = step_key_field(v, data, out->order_id);
    out->user_id = id_field(v, data, NULL, "user_id");
    out->address = address_field(v, data);
    out->lines = lines_field(v, data);
    return ag_valid_ok(v);
}

static bool
reason_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SHIP_REASON_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    }
    return true;
}

bool
ship_cancel_cmd_from_json(struct ag_valid *v, json_t *data, struct ship_cancel_cmd *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(data)) {
        ag_valid_error(v, NULL, "type", "the command's data must be an object");
        return false;
    }
    ag_valid_unknown(v, data, NULL, CANCEL_FIELDS);
    out->order_id = id_field(v, data, NULL, "order_id");
    out->step_key = step_key_field(v, data, out->order_id);
    out->reason = ag_valid_string(v, data, NULL, "reason", AG_VALID_REQUIRED, 0, 0);
    if (out->reason != NULL && !reason_is_valid(out->reason)) {
        ag_valid_error(v, "reason", "invalid", "must be a snake_case word of at most %d bytes",
                       SHIP_REASON_MAX);
        out->reason = NULL;
    }
    return ag_valid_ok(v);
}

/* ---- Representation ---- */

static json_t *
parse_or_null(const char *text)
{
    if (text == NULL)
        return json_null();
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    return j != NULL ? j : json_null();
}

static json_t *
str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *
ship_shipment_to_json(const struct ship_shipment *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:s, s:s}", "id", s->id,
                     "order_id", s->order_id, "user_id", s->user_id, "status",
                     ship_status_name(s->status), "address", parse_or_null(s->address), "lines",
                     parse_or_null(s->lines), "carrier", str_or_null(s->carrier), "tracking_number",
                     s->tracking_number, "cancel_reason", str_or_null(s->cancel_reason), "tracking",
                     parse_or_null(s->history), "created_at", s->created_at, "updated_at",
                     s->updated_at);
}

void
ship_tracking_number(const uint8_t rnd[8], char out[SHIP_TRACKING_LEN + 1])
{
    static const char HEX[] = "0123456789ABCDEF";
    memcpy(out, "AGS", 3);
    for (size_t i = 0; i < 8; i++) {
        out[3 + 2 * i] = HEX[rnd[i] >> 4];
        out[4 + 2 * i] = HEX[rnd[i] & 0x0f];
    }
    out[SHIP_TRACKING_LEN] = '\0';
}

/* ---- Reply events ---- */

json_t *
ship_data_created(const struct ship_shipment *s)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:s}", "shipment_id", s->id, "order_id", s->order_id,
                     "address", parse_or_null(s->address), "tracking_number", s->tracking_number,
                     "created_at", s->created_at);
}

json_t *
ship_data_shipped(const struct ship_shipment *s, const char *at)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "shipment_id", s->id, "order_id", s->order_id,
                     "carrier", s->carrier ? s->carrier : "", "tracking_number", s->tracking_number,
                     "shipped_at", at);
}

json_t *
ship_data_delivered(const struct ship_shipment *s, const char *at)
{
    return json_pack("{s:s, s:s, s:s}", "shipment_id", s->id, "order_id", s->order_id,
                     "delivered_at", at);
}

json_t *
ship_data_cancelled(const char *shipment_id, const char *order_id, const char *reason,
                    const char *at)
{
    return json_pack("{s:o, s:s, s:s, s:s}", "shipment_id", str_or_null(shipment_id), "order_id",
                     order_id, "reason", reason, "cancelled_at", at);
}

json_t *
ship_data_cancel_rejected(const struct ship_shipment *s, const char *reason, const char *at)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "shipment_id", s->id, "order_id", s->order_id,
                     "status", ship_status_name(s->status), "reason", reason, "rejected_at", at);
}

/* ---- Cursors ---- */

void
ship_cursor_encode(const char *last_id, char *out, size_t outlen)
{
    if (ag_base64url_encode(last_id, strlen(last_id), out, outlen) < 0 && outlen > 0)
        out[0] = '\0';
}

int
ship_cursor_decode(const char *s, char out_id[AG_UUID_STRLEN + 1])
{
    char buf[AG_UUID_STRLEN + 8];
    size_t n;
    if (strlen(s) > 64 || ag_base64url_decode(s, strlen(s), buf, sizeof(buf) - 1, &n) != 0)
        return AG_EINVAL;
    buf[n] = '\0';
    if (n != AG_UUID_STRLEN || !ship_id_is_valid(buf))
        return AG_EINVAL;
    memcpy(out_id, buf, AG_UUID_STRLEN + 1);
    return 0;
}
