/* SPDX-License-Identifier: MIT */
/* Money as an integer count of minor units plus an ISO 4217 currency code
 * (STYLE.md 5). Arithmetic is overflow-checked and refuses to mix
 * currencies; there is no floating point anywhere in this module. Used by
 * the domain code of catalog, orders and payments. All functions are pure
 * and may be called from any thread. */
#ifndef AG_MONEY_H
#define AG_MONEY_H

#include "agora/base.h"

/* A value type, passed by value. */
struct ag_money {
    int64_t amount;   /* minor units: cents for EUR, yen for JPY, fils/1000 for BHD */
    char currency[4]; /* ISO 4217 alphabetic code, uppercase, NUL-terminated */
};

/* Enough for any ag_money_format output: sign, 19 digits, '.', padding
 * zeros of the largest exponent, ' ', code and NUL. */
#define AG_MONEY_FMT_LEN 32

/* True if 'code' is an active ISO 4217 code known to Agora: exactly three
 * uppercase letters, e.g. "EUR". Lowercase, NULL and funds codes without a
 * minor unit (XAU, XXX...) are not valid. */
bool ag_currency_is_valid(const char *code);

/* Number of decimal digits of the minor unit of 'code' (2 for EUR, 0 for
 * JPY, 3 for BHD, 4 for CLF), or -1 if 'code' is not valid. */
int ag_currency_exponent(const char *code);

/* '*out' = 'a' + 'b' / 'a' - 'b'. Returns 0, AG_EINVAL if the currencies
 * differ or are not valid, AG_ERANGE if the result does not fit in int64_t.
 * On error '*out' is untouched. */
int ag_money_add(struct ag_money a, struct ag_money b, struct ag_money *out);
int ag_money_sub(struct ag_money a, struct ag_money b, struct ag_money *out);

/* '*out' = 'a' * 'qty' (a line total). Returns 0, AG_EINVAL for an invalid
 * currency, AG_ERANGE on overflow; on error '*out' is untouched. */
int ag_money_mul(struct ag_money a, int64_t qty, struct ag_money *out);

/* Write 'm' for humans and logs as "<amount in major units> <code>", with
 * exactly the currency's exponent of decimals: "12.34 EUR", "1234 JPY",
 * "-0.05 EUR", "1.234 BHD". Returns the length written (without the NUL),
 * AG_EINVAL for an invalid currency, or AG_ETOOBIG if 'outlen' is too small
 * (AG_MONEY_FMT_LEN always suffices); on error 'out' holds "" when
 * 'outlen' > 0. */
int ag_money_format(struct ag_money m, char *out, size_t outlen);

#endif /* AG_MONEY_H */
