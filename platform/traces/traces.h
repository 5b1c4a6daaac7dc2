/* SPDX-License-Identifier: MIT */
/* The built-in trace collector: OTLP/HTTP JSON in, the last traces kept in
 * SQLite (bounded, errors and slow traces kept longest), queried by the
 * console and tests. */
#ifndef TRACES_TRACES_H
#define TRACES_TRACES_H

#include "agora/base.h"
#include "agora/router.h"
#include "agora/service.h"
#include "agora/store.h"

struct traces_settings {
    int64_t max_traces; /* AGORA_TRACES_MAX_TRACES */
    int64_t max_spans;  /* AGORA_TRACES_MAX_SPANS: per trace */
    uint64_t slow_ms;   /* AGORA_TRACES_SLOW: kept like errors */
    char *log_dir;      /* AGORA_TRACES_LOG_DIR: the supervisor's logs/ */
};

struct traces {
    struct traces_settings settings;
    struct ag_service *svc;
    struct ag_store *store;
    struct ag_metric *m_spans;   /* traces_spans_received_total{outcome} */
    struct ag_metric *m_evicted; /* traces_evicted_total */
    int64_t ntraces;             /* traces stored; -1 until counted */
};

extern const struct ag_route traces_routes[];
extern const size_t traces_nroutes;

int traces_start(struct traces *t);

#endif /* TRACES_TRACES_H */
