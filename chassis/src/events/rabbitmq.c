/* SPDX-License-Identifier: MIT */
/* The table of librabbitmq functions (agora/rabbitmq.h), filled by dlopen()
 * and dlsym() (agora/dynlib.h) when the first RabbitMQ backend or `agora
 * dead-letters` needs it. */
#include "agora/base.h"
#include "agora/rabbitmq.h"

#include "agora/dynlib.h"

struct ag_rabbitmq_api ag_rabbitmq;

#define RABBITMQ_SYM(f) { #f, (void **)&ag_rabbitmq.p_##f },
static const struct ag_dynlib_sym syms[] = { AG_RABBITMQ_SYMS(RABBITMQ_SYM) };

static struct ag_dynlib lib = { "librabbitmq.so.4", "librabbitmq4", syms, AG_ARRAY_SIZE(syms),
                                NULL };

int
ag_rabbitmq_load(char *errbuf, size_t errbuf_len)
{
    return ag_dynlib_load(&lib, errbuf, errbuf_len);
}
