/* SPDX-License-Identifier: MIT */
/* Orders domain rules: validation, representation, search terms, cursors.
 * No I/O here; api.c and store.c do that. */
#include "agora/base.h"
#include "domain.h"

#include <stdio.h>
#include <string.h>

#include "agora/codec.h"
#include "agora/err.h"

static const char *const PRODUCT_FIELDS[] = {
    "sku", "name", "description", "price", "category", "image_url", "active", NULL,
};
static const char *const PATCH_FIELDS[] = {
    "sku", "name", "description", "price", "category", "image_url", "active", "version", NULL,
};
static const char *const MONEY_FIELDS[] = { "amount", "currency", NULL };
static const char *const CATEGORY_FIELDS[] = { "slug", "name", "description", NULL };

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
orders_sku_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ORDERS_SKU_MAX || !is_alnum(s[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

bool
orders_slug_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ORDERS_SLUG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
        if (!ok)
            return false;
    }
    return true;
}

bool
orders_image_url_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ORDERS_URL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\')
            return false;
    }
    if (s[0] == '/')
        return n == 1 || s[1] != '/';
    const char *rest = NULL;
    if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    return rest != NULL && *rest != '\0' && *rest != '/';
}

/* Reads obj.price into 'out'; all errors named "<prefix>price.*". */
static bool
money_from_json(struct ag_valid *v, json_t *obj, unsigned flags, struct ag_money *out,
                bool *out_present)
{
    *out_present = false;
    json_t *price = ag_valid_object(v, obj, NULL, "price", flags);
    if (price == NULL)
        return false;
    *out_present = true;
    ag_valid_unknown(v, price, "price", MONEY_FIELDS);
    int64_t amount;
    bool ok =
        ag_valid_int(v, price, "price", "amount", AG_VALID_REQUIRED, 0, ORDERS_PRICE_MAX, &amount);
    const char *cur = ag_valid_string(v, price, "price", "currency", AG_VALID_REQUIRED, 3, 3);
    if (cur != NULL && !ag_currency_is_valid(cur)) {
        ag_valid_error(v, "price.currency", "invalid", "'%s' is not an ISO 4217 currency code",
                       cur);
        cur = NULL;
    }
    if (!ok || cur == NULL)
        return false;
    out->amount = amount;
    memcpy(out->currency, cur, 4);
    return true;
}

/* Optional nullable string field: absent leaves *io alone, null sets NULL
 * (or "" when 'empty_for_null'), a string is checked with 'check'. */
static void
nullable_string(struct ag_valid *v, json_t *obj, const char *field, size_t max,
                bool (*check)(const char *), const char *what, bool empty_for_null, const char **io)
{
    if (ag_valid_is_null(obj, field)) {
        *io = empty_for_null ? "" : NULL;
        return;
    }
    const char *s = ag_valid_string(v, obj, NULL, field, AG_VALID_OPTIONAL, 0, max);
    if (s == NULL)
        return;
    if (check != NULL && !check(s)) {
        ag_valid_error(v, field, "invalid", "must be %s", what);
        return;
    }
    *io = s;
}

static void
product_fields(struct ag_valid *v, json_t *body, struct orders_product *p, bool create)
{
    unsigned req = create ? AG_VALID_REQUIRED : AG_VALID_OPTIONAL;
    const char *sku = ag_valid_string(v, body, NULL, "sku", req, 1, ORDERS_SKU_MAX);
    if (sku != NULL) {
        if (orders_sku_is_valid(sku))
            p->sku = sku;
        else
            ag_valid_error(v, "sku", "invalid",
                           "must start with a letter or digit and contain only letters, "
                           "digits, '.', '_' and '-'");
    }
    const char *name = ag_valid_string(v, body, NULL, "name", req, 1, ORDERS_NAME_MAX);
    if (name != NULL)
        p->name = name;
    nullable_string(v, body, "description", ORDERS_DESCRIPTION_MAX, NULL, NULL, true,
                    &p->description);
    struct ag_money price;
    bool present;
    if (money_from_json(v, body, req, &price, &present))
        p->price = price;
    nullable_string(v, body, "category", ORDERS_SLUG_MAX, orders_slug_is_valid,
                    "a category slug (lowercase letters, digits and '-')", false, &p->category);
    nullable_string(v, body, "image_url", ORDERS_URL_MAX, orders_image_url_is_valid,
                    "an http(s) URL or an absolute path", false, &p->image_url);
    bool active;
    if (ag_valid_bool(v, body, NULL, "active", AG_VALID_OPTIONAL, &active))
        p->active = active;
}

bool
orders_product_from_json(struct ag_valid *v, json_t *body, struct orders_product *out)
{
    memset(out, 0, sizeof(*out));
    out->description = "";
    out->active = true;
    ag_valid_unknown(v, body, NULL, PRODUCT_FIELDS);
    product_fields(v, body, out, true);
    return ag_valid_ok(v);
}

bool
orders_product_patch(struct ag_valid *v, json_t *body, struct orders_product *p,
                      int64_t *out_version)
{
    ag_valid_unknown(v, body, NULL, PATCH_FIELDS);
    product_fields(v, body, p, false);
    int64_t version;
    *out_version = -1;
    if (ag_valid_int(v, body, NULL, "version", AG_VALID_OPTIONAL, 1, INT64_MAX, &version))
        *out_version = version;
    return ag_valid_ok(v);
}

json_t *
orders_product_to_json(const struct orders_product *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:s}, s:s?, s:s?, s:b, s:s, s:s, s:I}", "id",
                     p->id, "sku", p->sku, "name", p->name, "description", p->description, "price",
                     "amount", (json_int_t)p->price.amount, "currency", p->price.currency,
                     "category", p->category, "image_url", p->image_url, "active", p->active,
                     "created_at", p->created_at, "updated_at", p->updated_at, "version",
                     (json_int_t)p->version);
}

bool
orders_category_from_json(struct ag_valid *v, json_t *body, struct orders_category *out)
{
    memset(out, 0, sizeof(*out));
    out->description = "";
    ag_valid_unknown(v, body, NULL, CATEGORY_FIELDS);
    const char *slug =
        ag_valid_string(v, body, NULL, "slug", AG_VALID_REQUIRED, 1, ORDERS_SLUG_MAX);
    if (slug != NULL) {
        if (orders_slug_is_valid(slug))
            out->slug = slug;
        else
            ag_valid_error(v, "slug", "invalid",
                           "must be lowercase letters, digits and '-', not starting with '-'");
    }
    out->name = ag_valid_string(v, body, NULL, "name", AG_VALID_REQUIRED, 1, ORDERS_CAT_NAME_MAX);
    nullable_string(v, body, "description", ORDERS_CAT_DESC_MAX, NULL, NULL, true,
                    &out->description);
    return ag_valid_ok(v);
}

json_t *
orders_category_to_json(const struct orders_category *c)
{
    return json_pack("{s:s, s:s, s:s}", "slug", c->slug, "name", c->name, "description",
                     c->description);
}

/* ---- Search ---- */

int
orders_search_query(const char *q, struct ag_buf *out)
{
    size_t n = strlen(q);
    size_t points;
    if (ag_utf8_count(q, n, &points) != 0)
        return AG_EINVAL;
    if (points > ORDERS_QUERY_MAX)
        return AG_ERANGE;
    /* Words are runs of ASCII letters/digits and non-ASCII characters; all
     * else (quotes, operators, '*', parentheses) separates words, so no FTS5
     * syntax can come from the user. */
    int terms = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && !is_alnum(q[i]) && (unsigned char)q[i] < 0x80)
            i++;
        size_t start = i;
        while (i < n && (is_alnum(q[i]) || (unsigned char)q[i] >= 0x80))
            i++;
        if (i == start)
            continue;
        if (terms > 0)
            ag_buf_append_char(out, ' ');
        ag_buf_append_char(out, '"');
        ag_buf_append(out, q + start, i - start);
        ag_buf_append_cstr(out, "\"*");
        terms++;
    }
    return terms;
}

/* ---- Cursors ---- */

void
orders_cursor_encode(const struct orders_cursor *c, char *out, size_t outlen)
{
    char raw[64];
    int n;
    if (c->kind == ORDERS_CURSOR_KEY)
        n = snprintf(raw, sizeof(raw), "k%s", c->key);
    else
        n = snprintf(raw, sizeof(raw), "o%lld", (long long)c->offset);
    ag_base64url_encode(raw, (size_t)n, out, outlen);
}

int
orders_cursor_decode(const char *s, struct orders_cursor *out)
{
    unsigned char raw[64];
    size_t n;
    if (ag_base64url_decode(s, strlen(s), raw, sizeof(raw) - 1, &n) != 0 || n < 2)
        return AG_EINVAL;
    raw[n] = '\0';
    memset(out, 0, sizeof(*out));
    struct ag_str rest = ag_str_make((const char *)raw + 1, n - 1);
    if (raw[0] == 'k') {
        if (!ag_uuid_is_valid(rest))
            return AG_EINVAL;
        out->kind = ORDERS_CURSOR_KEY;
        memcpy(out->key, rest.ptr, AG_UUID_STRLEN);
        out->key[AG_UUID_STRLEN] = '\0';
        return 0;
    }
    if (raw[0] == 'o') {
        out->kind = ORDERS_CURSOR_OFFSET;
        return ag_str_to_i64(rest, 1, ORDERS_SEARCH_MAX_DEPTH, &out->offset) == 0 ? 0 : AG_EINVAL;
    }
    return AG_EINVAL;
}
