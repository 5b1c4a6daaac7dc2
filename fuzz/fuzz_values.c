/* SPDX-License-Identifier: MIT */
/* libFuzzer target: small values from outside. The first byte picks the
 * reader: configuration (the input as a value of each setting type, and as
 * an AGORA_CONFIG_FILE), the signed identity and client headers, a JWT
 * against a real ES256 key set, UUIDs, base64url / UTF-8 / hex decoding,
 * money arithmetic and formatting. */
#include "agora/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agora/codec.h"
#include "agora/config.h"
#include "agora/identity.h"
#include "agora/jwt.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/money.h"
#include "agora/str.h"
#include "agora/uuid.h"

struct settings {
    char *s;
    int64_t i;
    bool b;
    uint64_t ms;
    uint64_t bytes;
    char *e;
};

#define OFF(f) offsetof(struct settings, f)
static const struct ag_config_key KEYS[] = {
    { "FUZZ_S", AG_CONFIG_STRING, "", OFF(s), 0, 0, NULL, "string" },
    { "FUZZ_I", AG_CONFIG_INT, "1", OFF(i), -1000, 1000, NULL, "int" },
    { "FUZZ_B", AG_CONFIG_BOOL, "false", OFF(b), 0, 0, NULL, "bool" },
    { "FUZZ_D", AG_CONFIG_DURATION, "1s", OFF(ms), 1, 600000, NULL, "duration" },
    { "FUZZ_Z", AG_CONFIG_SIZE, "1KiB", OFF(bytes), 1, 1 << 30, NULL, "size" },
    { "FUZZ_E", AG_CONFIG_ENUM, "full", OFF(e), 0, 0, "full|normal", "enum" },
};
#undef OFF

static const char *const NAMES[] = { "FUZZ_S", "FUZZ_I", "FUZZ_B", "FUZZ_D", "FUZZ_Z", "FUZZ_E" };

static struct ag_jwt_keyset *g_ks;
static uint8_t g_key[AG_IDENTITY_KEYLEN];
static struct ag_identity_keyring *g_ring; /* "agora" with g_key's public key */
static char g_cfgfile[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    AG_UNUSED(argc);
    AG_UNUSED(argv);
    ag_log_init("fuzz", "fuzz-1", AG_LOG_OFF);
    struct ag_jwt_key *k;
    if (ag_jwt_key_generate("k1", &k) != 0)
        abort();
    json_t *jwk = ag_jwt_key_jwk(k);
    g_ks = ag_jwt_keyset_new();
    if (ag_jwt_keyset_add_jwk(g_ks, jwk) != 0)
        abort();
    json_decref(jwk);
    ag_jwt_key_free(k);
    memset(g_key, 7, sizeof(g_key));
    {
        uint8_t pk[AG_IDENTITY_PUBLEN];
        char table[16 + 2 * AG_IDENTITY_PUBLEN] = "agora=";
        ag_identity_service_public(g_key, pk);
        for (size_t i = 0; i < sizeof(pk); i++)
            snprintf(table + 6 + 2 * i, 3, "%02x", pk[i]);
        char why[128];
        if (ag_identity_keyring_new(table, &g_ring, why, sizeof(why)) != 0)
            abort();
    }
    snprintf(g_cfgfile, sizeof(g_cfgfile), "/tmp/agora-fuzz-%d.env", (int)getpid());
    return 0;
}

static void
config_value(const char *s, size_t len)
{
    char *v = ag_strndup(s, len); /* a NUL in the input ends the value, as in the environment */
    for (size_t k = 0; k < AG_ARRAY_SIZE(NAMES); k++) {
        for (size_t j = 0; j < AG_ARRAY_SIZE(NAMES); j++)
            unsetenv(NAMES[j]);
        setenv(NAMES[k], v, 1);
        struct settings st = { 0 };
        char err[256];
        if (ag_config_load(KEYS, AG_ARRAY_SIZE(KEYS), &st, err, sizeof(err)) == 0)
            ag_config_release(KEYS, AG_ARRAY_SIZE(KEYS), &st);
    }
    unsetenv(NAMES[AG_ARRAY_SIZE(NAMES) - 1]);
    ag_free(v);
}

static void
config_file(const uint8_t *data, size_t len)
{
    FILE *f = fopen(g_cfgfile, "w");
    if (f == NULL)
        return;
    fwrite(data, 1, len, f);
    fclose(f);
    setenv("AGORA_CONFIG_FILE", g_cfgfile, 1);
    struct settings st = { 0 };
    char err[256];
    if (ag_config_load(KEYS, AG_ARRAY_SIZE(KEYS), &st, err, sizeof(err)) == 0)
        ag_config_release(KEYS, AG_ARRAY_SIZE(KEYS), &st);
    unsetenv("AGORA_CONFIG_FILE");
    unlink(g_cfgfile);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    unsigned pick = data[0] % 8;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    struct ag_str str = ag_str_make(s, len);
    switch (pick) {
    case 0: config_value(s, len); break;
    case 1: config_file(data + 1, len); break;
    case 2: {
        struct ag_identity id;
        ag_identity_verify(g_key, str, 1700000000, &id);
        /* A service identity needs g_key's signature: nothing here has it. */
        if (ag_identity_service_verify(g_ring, str, 0, &id) == 0)
            abort();
        char *table = ag_strndup(s, len);
        struct ag_identity_keyring *ring = NULL;
        char why[128];
        if (ag_identity_keyring_new(table, &ring, why, sizeof(why)) == 0)
            ag_identity_keyring_free(ring);
        ag_free(table);
        char addr[AG_CLIENT_ADDRLEN];
        ag_identity_client_verify(g_key, str, 1700000000, addr);
        break;
    }
    case 3: {
        struct ag_jwt_expect ex = { "agora", "agora", 30, 1700000000 };
        struct ag_jwt_claims claims;
        const char *why;
        if (ag_jwt_verify(g_ks, s, len, &ex, &claims, &why) == 0)
            abort(); /* nobody can sign without the private key */
        break;
    }
    case 4: {
        ag_uuid_is_valid(str);
        char out[512];
        size_t n;
        ag_base64url_decode(s, len, out, sizeof(out), &n);
        ag_utf8_count(s, len, &n);
        for (size_t i = 0; i < len; i++)
            ag_hex_value(s[i]);
        break;
    }
    default: {
        if (len < 19)
            break;
        char cur[4] = { s[16], s[17], s[18], 0 };
        int64_t a;
        int64_t b;
        memcpy(&a, s, 8);
        memcpy(&b, s + 8, 8);
        struct ag_money x = { a, "" };
        struct ag_money y = { b, "" };
        memcpy(x.currency, cur, 4);
        memcpy(y.currency, cur, 4);
        struct ag_money r;
        char fmt[AG_MONEY_FMT_LEN];
        if (ag_money_add(x, y, &r) == 0)
            ag_money_format(r, fmt, sizeof(fmt));
        if (ag_money_mul(x, b, &r) == 0)
            ag_money_format(r, fmt, sizeof(fmt));
        ag_money_format(x, fmt, sizeof(fmt));
        break;
    }
    }
    return 0;
}
