/* SPDX-License-Identifier: MIT */
/* bench/bus: what the two load clients share (busclient.c for the Agora bus,
 * rmqclient.c for RabbitMQ): options, the 1 KiB CloudEvent with the send
 * time inside, the run ("cycle") bookkeeping, delivery checks, latency
 * percentiles, /proc CPU counters and the JSON result line. Each client
 * supplies only its transport: bb_publisher_main and bb_consumer_main. */
#ifndef BB_COMMON_H
#define BB_COMMON_H

#define _GNU_SOURCE

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BB_DIGITS      20  /* id and send time: zero-padded decimals */
#define BB_MAX_PIDS    16  /* broker processes whose CPU time is counted */
#define BB_MAX_THREADS 256 /* publishers + consumers */

/* Command line, the same for both clients (bb_opts_parse). */
struct bb_opts {
    const char *server;      /* "bus" or "rabbitmq": the JSON's server field */
    const char *host;        /* 127.0.0.1 */
    int port;                /* broker port */
    const char *phase;       /* "peak" or "fixed" */
    int round;               /* round number, for the report */
    uint64_t run_id;         /* makes message ids unique across runs (bus dedup) */
    uint64_t messages;       /* peak: messages measured */
    double rate;             /* fixed: messages per second, all publishers */
    double duration;         /* fixed: seconds measured */
    double warmup;           /* seconds of warm-up traffic before measuring */
    int publishers;          /* concurrent publishers, one connection each */
    int batch;               /* bus: messages per publish; RabbitMQ: unconfirmed per publisher */
    int prefetch;            /* unacknowledged deliveries per consumer */
    int consumers;           /* consumers, one connection each (bus: + one for acks) */
    size_t size;             /* CloudEvent bytes */
    const char *name;        /* subscription (bus) or queue (RabbitMQ) */
    const char *topic;       /* bus topic */
    const char *queue_type;  /* RabbitMQ: classic or quorum */
    int cpu;                 /* the CPU whose busy time is counted (0) */
    pid_t pids[BB_MAX_PIDS]; /* the broker's processes */
    int npids;
    double stall; /* seconds without a new delivery before giving up */
};

/* One CloudEvent template of exactly 'size' bytes; the id and the send time
 * (CLOCK_MONOTONIC ns) sit at fixed offsets near the start. */
struct bb_event {
    char *tmpl;
    size_t size;
    size_t id_off;
    size_t ts_off;
};

struct bb_lat {
    uint64_t *v; /* publish-to-delivery latencies, ns */
    size_t n;
    size_t cap;
};

/* One run of traffic (the warm-up, then the measured one). Publishers take
 * message indexes from 'next' (dense, 0..total-1), consumers tick 'seen'. */
struct bb_cycle {
    const struct bb_opts *o;
    const struct bb_event *ev;
    bool measured;
    uint64_t id_base;     /* message id = id_base + index */
    uint64_t cap;         /* most messages (size of 'seen') */
    bool exact;           /* cap messages exactly (the consumers' stop rule) */
    uint64_t deadline_ns; /* closed loop: publish until then (0: until cap) */
    double rate;          /* > 0: publish on a schedule (fixed load) */
    uint64_t per_pub;     /* with rate: messages per publisher */
    uint64_t t0_ns;       /* when publishing started */
    _Atomic uint64_t next;
    _Atomic uint64_t published; /* acknowledged by the broker (durable) */
    _Atomic uint64_t requests;  /* publish requests (bus) or frames waited for (RabbitMQ) */
    _Atomic int pubs_done;
    _Atomic uint64_t unique;
    _Atomic uint64_t dups;
    _Atomic uint64_t stray;
    _Atomic uint64_t acked;
    _Atomic uint64_t last_progress_ns;
    _Atomic int stop; /* consumers: every message is in */
    uint8_t *seen;
    pthread_barrier_t ready; /* every connection open */
    pthread_barrier_t go;    /* t0 taken */
};

/* Per-thread context handed to the client's thread functions. */
struct bb_thread {
    struct bb_cycle *c;
    int index; /* publisher or consumer number */
    struct bb_lat lat;
    pthread_t tid;
};

/* Supplied by each client. */
void *bb_publisher_main(void *arg);
void *bb_consumer_main(void *arg);
int bb_client_setup(const struct bb_opts *o); /* subscription / queue, before any cycle */
const char *bb_client_version(void);

/* Shared. */
uint64_t bb_now_ns(void);
void bb_sleep_until(uint64_t t_ns);
void bb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void bb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void bb_event_write(const struct bb_event *ev, char *dst, uint64_t id, uint64_t sent_ns);
/* 0 when p[0..size) is the template with a well-formed id and time. */
int bb_event_read(const struct bb_event *ev, const char *p, size_t avail, uint64_t *out_id,
                  uint64_t *out_sent_ns);

/* Publishers: take up to 'want' message indexes; 0 when the cycle is over
 * (cap reached or deadline passed). */
uint64_t bb_take(struct bb_cycle *c, uint64_t want, uint64_t *out_first);
/* Scheduled send time of a publisher's k-th message (fixed load). */
uint64_t bb_sched_ns(const struct bb_cycle *c, int pub, uint64_t k);
/* Consumers: record one delivery received at recv_ns. */
void bb_deliver(struct bb_thread *t, uint64_t id, uint64_t sent_ns, uint64_t recv_ns);
/* Consumers: true when every message of the cycle has been received. */
bool bb_all_in(struct bb_cycle *c);
/* Consumers: die when nothing new arrived for o->stall seconds. */
void bb_check_stall(struct bb_cycle *c);

void bb_fmt_u64(char *dst, uint64_t v); /* BB_DIGITS digits, zero-padded, no NUL */

int bb_main(int argc, char **argv, const char *server);

#endif
