/* SPDX-License-Identifier: MIT */
/* `agora load`: an open-loop load generator on one libuv loop and the
 * chassis HTTP client. Scenarios start at a constant arrival rate whatever
 * the answers' latency (wrk2's model: a slow shop cannot slow the arrivals
 * down and hide its queueing), and each scenario's latency runs from its
 * scheduled start, not from when a request could be sent. */
#include "agora/base.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agora/err.h"
#include "agora/mem.h"
#include "agora/random.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define MAX_STATUS    600
#define POLL_MS       50
#define ORDER_WAIT_MS 60000
#define DRAIN_MS      60000
#define MAX_PRODUCTS  1000
#define PASSWORD      "a long enough load passphrase"

enum scen_kind { SC_BROWSE = 0, SC_SEARCH, SC_REGISTER, SC_CHECKOUT, SC_COUNT };
static const char *const SCEN_NAMES[SC_COUNT] = { "browse", "search", "register", "checkout" };

struct samples {
    uint32_t *v; /* microseconds */
    size_t n;
    size_t cap;
};

struct stats {
    uint64_t started;
    uint64_t ok;
    uint64_t transport; /* no answer: connection refused, timeout */
    uint64_t dropped;   /* checkouts still waiting for a free customer at the end */
    uint64_t unfinished;
    uint64_t status[MAX_STATUS]; /* failures by HTTP status */
    struct samples lat;
    /* checkout only */
    uint64_t orders_started;
    uint64_t orders_terminal;
    uint64_t confirmed;
    uint64_t confirmed_in_window;
    uint64_t rejected;
    uint64_t cancelled;
    struct samples saga; /* created_at -> updated_at of confirmed orders */
};

struct customer {
    char *token;
    bool busy;
};

struct load;

struct run {
    struct load *L;
    enum scen_kind kind;
    uint64_t sched_ns; /* when it was due */
    int step;
    struct customer *cust;
    char order_id[64];
    uint64_t order_deadline_ms;
    uv_timer_t *poll; /* checkout: between polls */
    struct run *next_waiting;
    struct run *prev; /* every run in flight, for the end */
    struct run *next;
};

struct load {
    uv_loop_t loop;
    struct ag_http_client *client;
    uv_timer_t tick;
    uv_timer_t progress;
    uv_signal_t sigint;
    const char *base;
    double rate;
    uint64_t duration_ms;
    int weights[SC_COUNT];
    int total_weight;
    uint64_t t0_ns;
    uint64_t n_arrivals;
    bool arrivals_done;
    bool interrupted;
    uint64_t arrivals_end_ns;
    uint64_t drain_deadline_ms;
    size_t inflight;
    struct stats st[SC_COUNT];
    char **products;
    size_t nproducts;
    char **categories;
    size_t ncategories;
    char **words;
    size_t nwords;
    struct customer *customers;
    size_t ncustomers;
    struct run *runs;
    struct run *wait_head;
    struct run *wait_tail;
    uint64_t seq;
    uint64_t rng;
    bool tty;
    bool closing;
    const char *card; /* --card: every checkout pays with it */
};

static uint64_t
rnd(struct load *L)
{
    /* xorshift64* */
    L->rng ^= L->rng >> 12;
    L->rng ^= L->rng << 25;
    L->rng ^= L->rng >> 27;
    return L->rng * 2685821657736338717ull;
}

static void
sample_add(struct samples *s, uint64_t us)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = ag_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = (uint32_t)AG_MIN(us, UINT32_MAX);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Percentile 'q' (0..1) in ms of sorted samples; NAN when empty. */
static double
pct(const struct samples *s, double q)
{
    if (s->n == 0)
        return NAN;
    size_t i = (size_t)ceil(q * (double)s->n);
    if (i > 0)
        i--;
    if (i >= s->n)
        i = s->n - 1;
    return s->v[i] / 1000.0;
}

/* ---- Runs ---- */

static void start_run(struct load *L, enum scen_kind kind, uint64_t sched_ns);
static void step_checkout(struct run *r);

static void
on_poll_closed(uv_handle_t *h)
{
    ag_free(h);
}

static void
release_customer(struct load *L, struct customer *c)
{
    c->busy = false;
    if (L->wait_head != NULL && !L->closing) {
        struct run *w = L->wait_head;
        L->wait_head = w->next_waiting;
        if (L->wait_head == NULL)
            L->wait_tail = NULL;
        w->cust = c;
        c->busy = true;
        step_checkout(w);
    }
}

/* The end of a run: 'status' 0 for success, an HTTP status, or -1 for a
 * transport failure. */
static void
finish(struct run *r, int status)
{
    struct load *L = r->L;
    struct stats *st = &L->st[r->kind];
    if (status == -2) {
        st->unfinished++;
    } else if (status == 0) {
        st->ok++;
        sample_add(&st->lat, (ag_time_mono_ns() - r->sched_ns) / 1000);
    } else if (status < 0) {
        st->transport++;
    } else {
        st->status[status < MAX_STATUS ? status : 0]++;
    }
    L->inflight--;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        L->runs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (r->poll != NULL)
        uv_close((uv_handle_t *)r->poll, on_poll_closed);
    struct customer *c = r->cust;
    ag_free(r);
    if (c != NULL)
        release_customer(L, c);
}

static void on_resp(struct ag_http_client *client, const struct ag_http_client_response *resp,
                    void *udata);

static void
send_req(struct run *r, const char *method, const char *path, json_t *body)
{
    struct load *L = r->L;
    char url[512];
    snprintf(url, sizeof(url), "%s%s", L->base, path);
    struct ag_http_client_header h[3];
    size_t nh = 0;
    char auth[2048];
    char key[AG_UUID_STRLEN + 1];
    if (r->cust != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", r->cust->token);
        h[nh++] = (struct ag_http_client_header){ "Authorization", auth };
    }
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        h[nh++] = (struct ag_http_client_header){ "Content-Type", "application/json" };
        if (strcmp(path, "/api/v1/orders") == 0) {
            ag_uuid7(key);
            h[nh++] = (struct ag_http_client_header){ "Idempotency-Key", key };
        }
    }
    struct ag_http_client_request req = {
        .method = method,
        .url = url,
        .headers = h,
        .nheaders = nh,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .timeout_ms = 30000,
        .max_retries = -1,
    };
    int rc = ag_http_client_send(L->client, &req, on_resp, r);
    ag_free(text);
    if (rc != 0)
        finish(r, -1);
}

static void
on_poll_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/orders/%s", r->order_id);
    send_req(r, "GET", path, NULL);
}

static void
poll_later(struct run *r, uint64_t ms)
{
    if (r->poll == NULL) {
        r->poll = ag_malloc(sizeof(*r->poll));
        uv_timer_init(&r->L->loop, r->poll);
        r->poll->data = r;
    }
    uv_timer_start(r->poll, on_poll_timer, ms, 0);
}

static void
step_checkout(struct run *r)
{
    struct load *L = r->L;
    /* step 0: one to three products into the cart; then the order. */
    const char *pid = L->products[rnd(L) % L->nproducts];
    json_t *item = json_pack("{s:s, s:i}", "product_id", pid, "quantity", 1);
    r->step = 1;
    send_req(r, "POST", "/api/v1/cart/items", item);
}

static const char *
pick_card(struct load *L)
{
    if (L->card != NULL)
        return L->card;
    uint64_t x = rnd(L) % 10;
    return x < 8 ? "tok_visa" : x == 8 ? "tok_chargeDeclined" : "tok_insufficient_funds";
}

static void
on_checkout(struct run *r, const struct ag_http_client_response *resp)
{
    struct load *L = r->L;
    struct stats *st = &L->st[SC_CHECKOUT];
    if (r->step == 1) { /* cart item added */
        if (resp->status != 200 && resp->status != 201) {
            finish(r, resp->status);
            return;
        }
        json_t *o = json_pack("{s:{s:s, s:s, s:s, s:s, s:s}, s:s}", "shipping_address", "name",
                              "Load Test", "line1", "1 Load Road", "city", "Leeds", "postal_code",
                              "LS1 1AA", "country", "GB", "payment_token", pick_card(L));
        r->step = 2;
        send_req(r, "POST", "/api/v1/orders", o);
        return;
    }
    if (r->step == 2) { /* order accepted */
        json_t *b =
            resp->status == 202 ? json_loadb(resp->body.ptr, resp->body.len, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(b, "id"));
        if (id == NULL || strlen(id) >= sizeof(r->order_id)) {
            json_decref(b);
            finish(r, resp->status == 202 ? 502 : resp->status);
            return;
        }
        snprintf(r->order_id, sizeof(r->order_id), "%s", id);
        json_decref(b);
        st->orders_started++;
        r->step = 3;
        r->order_deadline_ms = ag_time_mono_ms() + ORDER_WAIT_MS;
        poll_later(r, POLL_MS);
        return;
    }
    /* step 3: polling the order */
    if (resp->status == 429 || resp->status == 503) {
        poll_later(r, POLL_MS * 2);
        return;
    }
    if (resp->status != 200) {
        finish(r, resp->status);
        return;
    }
    json_t *b = json_loadb(resp->body.ptr, resp->body.len, 0, NULL);
    const char *s = json_string_value(json_object_get(b, "status"));
    bool confirmed = s && (strcmp(s, "CONFIRMED") == 0 || strcmp(s, "COMPLETED") == 0);
    bool failed = s && (strcmp(s, "REJECTED") == 0 || strcmp(s, "CANCELLED") == 0);
    if (confirmed || failed) {
        st->orders_terminal++;
        if (confirmed) {
            st->confirmed++;
            if (r->sched_ns < L->arrivals_end_ns || !L->arrivals_done)
                st->confirmed_in_window++;
            int64_t c0, c1;
            const char *ca = json_string_value(json_object_get(b, "created_at"));
            const char *ua = json_string_value(json_object_get(b, "updated_at"));
            if (ca && ua && ag_time_parse_rfc3339(ag_str_from_cstr(ca), &c0) == 0 &&
                ag_time_parse_rfc3339(ag_str_from_cstr(ua), &c1) == 0 && c1 >= c0)
                sample_add(&st->saga, (uint64_t)(c1 - c0) * 1000);
        } else if (strcmp(s, "REJECTED") == 0) {
            st->rejected++;
        } else {
            st->cancelled++;
        }
        json_decref(b);
        finish(r, 0);
        return;
    }
    json_decref(b);
    if (ag_time_mono_ms() > r->order_deadline_ms) {
        finish(r, 504);
        return;
    }
    poll_later(r, POLL_MS);
}

static void
on_resp(struct ag_http_client *client, const struct ag_http_client_response *resp, void *udata)
{
    AG_UNUSED(client);
    struct run *r = udata;
    if (r->L->closing) {
        finish(r, -2);
        return;
    }
    if (resp->err != 0) {
        if (r->kind == SC_CHECKOUT && r->step == 3 && resp->err != AG_ECLOSED &&
            ag_time_mono_ms() < r->order_deadline_ms) {
            poll_later(r, POLL_MS * 2); /* the order exists; keep asking */
            return;
        }
        finish(r, -1);
        return;
    }
    switch (r->kind) {
    case SC_BROWSE:
        if (resp->status != 200) {
            finish(r, resp->status);
        } else if (r->step == 0) {
            /* Then one product of the page. */
            json_t *b = json_loadb(resp->body.ptr, resp->body.len, 0, NULL);
            json_t *items = json_object_get(b, "items");
            size_t n = json_array_size(items);
            const char *id =
                n ? json_string_value(json_object_get(json_array_get(items, rnd(r->L) % n), "id"))
                  : NULL;
            if (id == NULL) {
                json_decref(b);
                finish(r, 0);
                return;
            }
            char path[160];
            snprintf(path, sizeof(path), "/api/v1/products/%s", id);
            json_decref(b);
            r->step = 1;
            send_req(r, "GET", path, NULL);
        } else {
            finish(r, 0);
        }
        break;
    case SC_SEARCH: finish(r, resp->status == 200 ? 0 : resp->status); break;
    case SC_REGISTER: finish(r, resp->status == 201 ? 0 : resp->status); break;
    case SC_CHECKOUT: on_checkout(r, resp); break;
    case SC_COUNT: AG_BUG("scenario");
    }
}

static void
start_run(struct load *L, enum scen_kind kind, uint64_t sched_ns)
{
    struct run *r = ag_calloc(1, sizeof(*r));
    r->L = L;
    r->kind = kind;
    r->sched_ns = sched_ns;
    r->next = L->runs;
    if (L->runs != NULL)
        L->runs->prev = r;
    L->runs = r;
    L->st[kind].started++;
    L->inflight++;
    char path[256];
    switch (kind) {
    case SC_BROWSE:
        if (L->ncategories > 0 && rnd(L) % 2 == 0)
            snprintf(path, sizeof(path), "/api/v1/products?limit=20&category=%s",
                     L->categories[rnd(L) % L->ncategories]);
        else
            snprintf(path, sizeof(path), "/api/v1/products?limit=20");
        send_req(r, "GET", path, NULL);
        break;
    case SC_SEARCH:
        snprintf(path, sizeof(path), "/api/v1/products?q=%s&limit=10",
                 L->nwords ? L->words[rnd(L) % L->nwords] : "book");
        send_req(r, "GET", path, NULL);
        break;
    case SC_REGISTER: {
        char email[128];
        snprintf(email, sizeof(email), "load-%d-%llu-%llu@example.com", (int)getpid(),
                 (unsigned long long)(L->t0_ns / 1000000), (unsigned long long)++L->seq);
        send_req(
            r, "POST", "/api/v1/users",
            json_pack("{s:s, s:s, s:s}", "email", email, "password", PASSWORD, "name", "Load"));
        break;
    }
    case SC_CHECKOUT:
        for (size_t i = 0; i < L->ncustomers; i++) {
            size_t k = (size_t)(rnd(L) % L->ncustomers);
            struct customer *c = &L->customers[(k + i) % L->ncustomers];
            if (!c->busy) {
                c->busy = true;
                r->cust = c;
                break;
            }
        }
        if (r->cust == NULL) {
            /* Every customer is mid-checkout: it waits, and its latency
             * counts the wait (it was due now). */
            if (L->wait_tail != NULL)
                L->wait_tail->next_waiting = r;
            else
                L->wait_head = r;
            L->wait_tail = r;
            return;
        }
        step_checkout(r);
        break;
    case SC_COUNT: AG_BUG("scenario");
    }
}

/* ---- Arrivals and the end ---- */

static void
close_all(struct load *L)
{
    if (L->closing)
        return;
    L->closing = true;
    uv_timer_stop(&L->tick);
    uv_close((uv_handle_t *)&L->tick, NULL);
    uv_close((uv_handle_t *)&L->progress, NULL);
    uv_close((uv_handle_t *)&L->sigint, NULL);
    /* Runs still in flight are cancelled: counted unfinished. Those between
     * two polls end here; those awaiting an answer when the client's close
     * calls them back. */
    for (struct run *r = L->runs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->poll != NULL && uv_is_active((uv_handle_t *)r->poll))
            finish(r, -2);
    }
    ag_http_client_close(L->client, NULL, NULL);
}

static void
end_arrivals(struct load *L)
{
    if (L->arrivals_done)
        return;
    L->arrivals_done = true;
    L->arrivals_end_ns = ag_time_mono_ns();
    /* Checkouts that never got a customer: dropped. */
    while (L->wait_head != NULL) {
        struct run *w = L->wait_head;
        L->wait_head = w->next_waiting;
        L->st[SC_CHECKOUT].dropped++;
        L->st[SC_CHECKOUT].started--;
        finish(w, -2);
        L->st[SC_CHECKOUT].unfinished--;
    }
    L->wait_tail = NULL;
    L->drain_deadline_ms = ag_time_mono_ms() + DRAIN_MS;
}

static void
on_tick(uv_timer_t *t)
{
    struct load *L = t->data;
    uint64_t now = ag_time_mono_ns();
    if (!L->arrivals_done) {
        uint64_t end = L->t0_ns + L->duration_ms * 1000000ull;
        for (;;) {
            uint64_t due = L->t0_ns + (uint64_t)((double)L->n_arrivals * 1e9 / L->rate);
            if (due > now || due >= end)
                break;
            L->n_arrivals++;
            int w = (int)(rnd(L) % (uint64_t)L->total_weight);
            enum scen_kind k = SC_BROWSE;
            for (int i = 0; i < SC_COUNT; i++) {
                if (w < L->weights[i]) {
                    k = (enum scen_kind)i;
                    break;
                }
                w -= L->weights[i];
            }
            start_run(L, k, due);
        }
        if (now >= end || L->interrupted)
            end_arrivals(L);
    }
    if (L->arrivals_done &&
        (L->inflight == 0 || ag_time_mono_ms() > L->drain_deadline_ms || L->interrupted)) {
        close_all(L);
    }
}

static void
on_progress(uv_timer_t *t)
{
    struct load *L = t->data;
    uint64_t ok = 0;
    uint64_t err = 0;
    for (int i = 0; i < SC_COUNT; i++) {
        ok += L->st[i].ok;
        err += L->st[i].started - L->st[i].ok;
    }
    double el = (double)(ag_time_mono_ns() - L->t0_ns) / 1e9;
    fprintf(stderr,
            "\r\033[K%5.1fs  %s  started %llu (%.1f/s)  done %llu  in flight %zu  confirmed %llu",
            el, L->arrivals_done ? "draining" : "running", (unsigned long long)L->n_arrivals,
            el > 0 ? (double)L->n_arrivals / AG_MIN(el, (double)L->duration_ms / 1000.0) : 0.0,
            (unsigned long long)ok, L->inflight, (unsigned long long)L->st[SC_CHECKOUT].confirmed);
    AG_UNUSED(err);
}

static void
on_sigint(uv_signal_t *h, int signum)
{
    AG_UNUSED(signum);
    struct load *L = h->data;
    L->interrupted = true;
}

/* ---- Preparation (blocking) ---- */

static int
prepare(struct load *L, int ncustomers, const char *product)
{
    struct cli_resp r;
    char url[512];
    /* Products (active ones), categories and search words. */
    L->products = ag_calloc(MAX_PRODUCTS, sizeof(char *));
    L->words = ag_calloc(MAX_PRODUCTS, sizeof(char *));
    char *cursor = NULL;
    do {
        if (cursor != NULL)
            snprintf(url, sizeof(url), "%s/api/v1/products?limit=100&active=true&cursor=%s",
                     L->base, cursor);
        else
            snprintf(url, sizeof(url), "%s/api/v1/products?limit=100&active=true", L->base);
        ag_free(cursor);
        cursor = NULL;
        if (cli_http(&L->loop, L->client, "GET", url, NULL, NULL, &r) != 0 || r.status != 200) {
            fprintf(stderr, "agora load: cannot list the products at %s (%s)\n", L->base,
                    r.err ? ag_strerror(r.err) : "bad status");
            cli_resp_release(&r);
            return CLI_FAILED;
        }
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(r.json, "items"), i, p)
        {
            if (L->nproducts >= MAX_PRODUCTS)
                break;
            L->products[L->nproducts++] = ag_strdup(json_string_value(json_object_get(p, "id")));
            const char *name = json_string_value(json_object_get(p, "name"));
            if (name != NULL) {
                size_t len = strcspn(name, " ,.-'");
                bool alpha = len >= 4;
                for (size_t k = 0; k < len; k++)
                    alpha = alpha && ((name[k] >= 'a' && name[k] <= 'z') ||
                                      (name[k] >= 'A' && name[k] <= 'Z'));
                if (alpha)
                    L->words[L->nwords++] = ag_strndup(name, len);
            }
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (next != NULL && L->nproducts < MAX_PRODUCTS)
            cursor = ag_strdup(next);
        cli_resp_release(&r);
    } while (cursor != NULL);
    if (product != NULL) {
        /* --product: every checkout buys this one. */
        for (size_t i = 0; i < L->nproducts; i++)
            ag_free(L->products[i]);
        L->products[0] = ag_strdup(product);
        L->nproducts = 1;
    }
    snprintf(url, sizeof(url), "%s/api/v1/categories", L->base);
    if (cli_http(&L->loop, L->client, "GET", url, NULL, NULL, &r) == 0 && r.status == 200) {
        json_t *items = json_object_get(r.json, "items");
        L->categories = ag_calloc(json_array_size(items) + 1, sizeof(char *));
        size_t i;
        json_t *c;
        json_array_foreach(items, i, c) L->categories[L->ncategories++] =
            ag_strdup(json_string_value(json_object_get(c, "slug")));
    }
    cli_resp_release(&r);
    if ((L->weights[SC_BROWSE] > 0 || L->weights[SC_CHECKOUT] > 0) && L->nproducts == 0) {
        fprintf(stderr, "agora load: the shop has no products (run `agora seed`)\n");
        return CLI_FAILED;
    }
    if (L->weights[SC_CHECKOUT] == 0)
        return CLI_OK;
    /* Customers for the checkouts, registered before the clock starts (the
     * users service throttles sign-ups per client address: wait when told). */
    L->customers = ag_calloc((size_t)ncustomers, sizeof(*L->customers));
    uint64_t deadline = ag_time_mono_ms() + 120000;
    for (int i = 0; i < ncustomers; i++) {
        char email[128];
        snprintf(email, sizeof(email), "load-%d-%lld-c%d@example.com", (int)getpid(),
                 (long long)ag_time_unix_ms(), i);
        int transport_failures = 0;
        for (int phase = 0; phase < 2;) {
            json_t *body = phase == 0
                               ? json_pack("{s:s, s:s, s:s}", "email", email, "password", PASSWORD,
                                           "name", "Load customer")
                               : json_pack("{s:s, s:s}", "email", email, "password", PASSWORD);
            snprintf(url, sizeof(url), "%s/api/v1/%s", L->base,
                     phase == 0 ? "users" : "auth/login");
            cli_http(&L->loop, L->client, "POST", url, NULL, body, &r);
            json_decref(body);
            if (r.err != 0 && ++transport_failures < 4) {
                /* A pooled connection the server had closed: again. */
                cli_resp_release(&r);
                usleep(100 * 1000);
                continue;
            }
            if (r.status == 429 || r.status == 503) {
                uint64_t wait = r.retry_after_ms ? r.retry_after_ms : 1000;
                cli_resp_release(&r);
                if (ag_time_mono_ms() + wait > deadline) {
                    fprintf(stderr,
                            "agora load: sign-ups are throttled; could register only %d "
                            "customers (raise AGORA_USERS_CLIENT_MAX_ATTEMPTS)\n",
                            i);
                    return CLI_FAILED;
                }
                usleep((useconds_t)(wait * 1000));
                continue;
            }
            if (phase == 0 && r.status != 201 && r.status != 409) {
                fprintf(stderr, "agora load: cannot register a customer (%s%d)\n",
                        r.err ? ag_strerror(r.err) : "status ", r.err ? 0 : r.status);
                cli_resp_release(&r);
                return CLI_FAILED;
            }
            if (phase == 1) {
                const char *t = json_string_value(json_object_get(r.json, "access_token"));
                if (r.status != 200 || t == NULL) {
                    fprintf(stderr, "agora load: a customer cannot sign in (status %d)\n",
                            r.status);
                    cli_resp_release(&r);
                    return CLI_FAILED;
                }
                L->customers[i].token = ag_strdup(t);
            }
            cli_resp_release(&r);
            phase++;
        }
        L->ncustomers++;
    }
    return CLI_OK;
}

/* ---- Report ---- */

static json_t *
lat_json(struct samples *s)
{
    qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
    if (s->n == 0)
        return json_pack("{s:n, s:n, s:n, s:n}", "p50", "p90", "p99", "max");
    return json_pack("{s:f, s:f, s:f, s:f}", "p50", pct(s, 0.5), "p90", pct(s, 0.9), "p99",
                     pct(s, 0.99), "max", pct(s, 1.0));
}

static json_t *
report(struct load *L, double window_s)
{
    json_t *scen = json_object();
    for (int i = 0; i < SC_COUNT; i++) {
        struct stats *st = &L->st[i];
        if (L->weights[i] == 0)
            continue;
        json_t *errs = json_object();
        uint64_t nerr = st->transport;
        for (int s = 0; s < MAX_STATUS; s++) {
            if (st->status[s] == 0)
                continue;
            char k[8];
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(errs, k, json_integer((json_int_t)st->status[s]));
            nerr += st->status[s];
        }
        if (st->transport)
            json_object_set_new(errs, "transport", json_integer((json_int_t)st->transport));
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:o, s:o, s:I, s:I}", "started", (json_int_t)st->started,
                      "ok", (json_int_t)st->ok, "errors", (json_int_t)nerr, "errors_by_status",
                      errs, "latency_ms", lat_json(&st->lat), "dropped", (json_int_t)st->dropped,
                      "unfinished", (json_int_t)st->unfinished);
        if (i == SC_CHECKOUT) {
            json_object_set_new(o, "orders",
                                json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "started",
                                          (json_int_t)st->orders_started, "terminal",
                                          (json_int_t)st->orders_terminal, "confirmed",
                                          (json_int_t)st->confirmed, "rejected",
                                          (json_int_t)st->rejected, "cancelled",
                                          (json_int_t)st->cancelled, "unfinished",
                                          (json_int_t)(st->orders_started - st->orders_terminal)));
            json_object_set_new(
                o, "confirmed_per_s",
                json_real(window_s > 0 ? (double)st->confirmed_in_window / window_s : 0));
            json_object_set_new(o, "saga_ms", lat_json(&st->saga));
        }
        json_object_set_new(scen, SCEN_NAMES[i], o);
    }
    return json_pack("{s:f, s:f, s:I, s:f, s:o}", "rate", L->rate, "achieved_rate",
                     window_s > 0 ? (double)L->n_arrivals / window_s : 0.0, "arrivals",
                     (json_int_t)L->n_arrivals, "duration_s", window_s, "scenarios", scen);
}

static void
print_report(json_t *rep)
{
    printf("arrival rate: asked %.1f/s, achieved %.1f/s (%lld arrivals in %.1f s)\n",
           json_real_value(json_object_get(rep, "rate")),
           json_real_value(json_object_get(rep, "achieved_rate")),
           (long long)json_integer_value(json_object_get(rep, "arrivals")),
           json_real_value(json_object_get(rep, "duration_s")));
    printf("%-10s %9s %9s %8s %9s %9s %9s %9s\n", "scenario", "started", "ok", "errors", "p50 ms",
           "p90 ms", "p99 ms", "max ms");
    const char *name;
    json_t *o;
    json_object_foreach(json_object_get(rep, "scenarios"), name, o)
    {
        json_t *l = json_object_get(o, "latency_ms");
        printf("%-10s %9lld %9lld %8lld %9.1f %9.1f %9.1f %9.1f\n", name,
               (long long)json_integer_value(json_object_get(o, "started")),
               (long long)json_integer_value(json_object_get(o, "ok")),
               (long long)json_integer_value(json_object_get(o, "errors")),
               json_number_value(json_object_get(l, "p50")),
               json_number_value(json_object_get(l, "p90")),
               json_number_value(json_object_get(l, "p99")),
               json_number_value(json_object_get(l, "max")));
    }
    json_object_foreach(json_object_get(rep, "scenarios"), name, o)
    {
        json_t *errs = json_object_get(o, "errors_by_status");
        if (json_object_size(errs) > 0) {
            printf("%s errors:", name);
            const char *k;
            json_t *v;
            json_object_foreach(errs, k, v)
                printf(" %s x%lld", k, (long long)json_integer_value(v));
            printf("\n");
        }
        json_t *ord = json_object_get(o, "orders");
        if (ord != NULL) {
            json_t *sg = json_object_get(o, "saga_ms");
            printf("checkout orders: %lld started, %lld confirmed (%.1f/s), %lld rejected, %lld "
                   "cancelled, %lld unfinished; checkout -> CONFIRMED p50 %.1f ms, p99 %.1f ms; "
                   "%lld dropped (no free customer)\n",
                   (long long)json_integer_value(json_object_get(ord, "started")),
                   (long long)json_integer_value(json_object_get(ord, "confirmed")),
                   json_real_value(json_object_get(o, "confirmed_per_s")),
                   (long long)json_integer_value(json_object_get(ord, "rejected")),
                   (long long)json_integer_value(json_object_get(ord, "cancelled")),
                   (long long)json_integer_value(json_object_get(ord, "unfinished")),
                   json_number_value(json_object_get(sg, "p50")),
                   json_number_value(json_object_get(sg, "p99")),
                   (long long)json_integer_value(json_object_get(o, "dropped")));
        }
    }
}

/* ---- Entry ---- */

static int
parse_mix(const char *mix, int weights[SC_COUNT])
{
    memset(weights, 0, sizeof(int) * SC_COUNT);
    const char *p = mix;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        size_t nlen = colon ? (size_t)(colon - p) : len;
        int w = 1;
        if (colon != NULL) {
            char *end;
            long v = strtol(colon + 1, &end, 10);
            if (end != p + len || v < 0 || v > 1000000)
                return AG_EINVAL;
            w = (int)v;
        }
        int k = -1;
        for (int i = 0; i < SC_COUNT; i++) {
            if (strlen(SCEN_NAMES[i]) == nlen && strncmp(SCEN_NAMES[i], p, nlen) == 0)
                k = i;
        }
        if (k < 0)
            return AG_EINVAL;
        weights[k] += w;
        p += len + (p[len] == ',');
    }
    return 0;
}

int
cli_cmd_load(int argc, char **argv)
{
    const char *data = CLI_DEFAULT_DATA;
    const char *url = NULL;
    const char *mix = "browse:100";
    double rate = 10;
    uint64_t duration_ms = 10000;
    int64_t ncust = 20;
    bool json = false;
    const char *product = NULL;
    const char *card = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (has && strcmp(a, "--data") == 0) {
            data = argv[++i];
        } else if (has && strcmp(a, "--url") == 0) {
            url = argv[++i];
        } else if (has && strcmp(a, "--mix") == 0) {
            mix = argv[++i];
        } else if (has && strcmp(a, "--rate") == 0) {
            char *end;
            rate = strtod(argv[++i], &end);
            if (*end != '\0' || !(rate > 0 && rate <= 100000)) {
                fprintf(stderr, "agora load: --rate takes a number of arrivals per second, "
                                "above 0 and at most 100000\n");
                return CLI_USAGE;
            }
        } else if (has && strcmp(a, "--duration") == 0) {
            if (cli_parse_duration_ms(argv[++i], &duration_ms) != 0 || duration_ms == 0) {
                fprintf(stderr, "agora load: --duration takes a duration such as 10s or 2m\n");
                return CLI_USAGE;
            }
        } else if (has && strcmp(a, "--customers") == 0) {
            if (ag_str_to_i64(ag_str_from_cstr(argv[++i]), 1, 10000, &ncust) != 0) {
                fprintf(stderr, "agora load: --customers takes 1 to 10000\n");
                return CLI_USAGE;
            }
        } else if (has && strcmp(a, "--card") == 0) {
            card = argv[++i];
        } else if (has && strcmp(a, "--product") == 0) {
            product = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr,
                    "agora load: unknown option or missing value: '%s' (see `agora help "
                    "load`)\n",
                    a);
            return CLI_USAGE;
        }
    }
    struct load *L = ag_calloc(1, sizeof(*L));
    if (parse_mix(mix, L->weights) != 0) {
        fprintf(stderr, "agora load: --mix takes scenario:weight,... with scenarios browse, "
                        "search, register, checkout\n");
        ag_free(L);
        return CLI_USAGE;
    }
    for (int i = 0; i < SC_COUNT; i++)
        L->total_weight += L->weights[i];
    if (L->total_weight == 0) {
        fprintf(stderr, "agora load: --mix gives every scenario weight 0\n");
        ag_free(L);
        return CLI_USAGE;
    }
    char base[128];
    if (url == NULL) {
        json_t *info = cli_shop_info(data);
        if (info == NULL) {
            ag_free(L);
            return CLI_NOT_RUNNING;
        }
        snprintf(base, sizeof(base), "http://127.0.0.1:%lld",
                 (long long)json_integer_value(json_object_get(info, "gateway_port")));
        json_decref(info);
    } else {
        snprintf(base, sizeof(base), "%s", url);
        size_t n = strlen(base);
        if (n > 0 && base[n - 1] == '/')
            base[n - 1] = '\0';
    }
    signal(SIGPIPE, SIG_IGN);
    L->base = base;
    L->card = card;
    L->rate = rate;
    L->duration_ms = duration_ms;
    L->tty = isatty(STDERR_FILENO) && !json;
    ag_random_fill(&L->rng, sizeof(L->rng));
    L->rng |= 1;
    uv_loop_init(&L->loop);
    struct ag_http_client_config cfg = {
        .max_host_connections = 1024,
        .max_total_connections = 1024,
        .timeout_ms = 30000,
        .max_retries = -1,
        .breaker_failure_rate = 101,
        .breaker_slow_rate = 101,
        .eject_failures = 1000000000,
    };
    if (ag_http_client_new(&L->loop, &cfg, &L->client) != 0)
        AG_BUG("http client");
    int rc = prepare(L, (int)ncust, product);
    json_t *rep = NULL;
    if (rc == CLI_OK) {
        uv_timer_init(&L->loop, &L->tick);
        uv_timer_init(&L->loop, &L->progress);
        uv_signal_init(&L->loop, &L->sigint);
        L->tick.data = L;
        L->progress.data = L;
        L->sigint.data = L;
        uv_signal_start(&L->sigint, on_sigint, SIGINT);
        /* Scripts (bench/checkout) read this line to start measuring. */
        fprintf(stderr, "agora load: %.1f arrivals/s for %.1f s against %s (mix %s)\n", rate,
                (double)duration_ms / 1000.0, base, mix);
        L->t0_ns = ag_time_mono_ns();
        uv_timer_start(&L->tick, on_tick, 0, 1);
        if (L->tty)
            uv_timer_start(&L->progress, on_progress, 1000, 1000);
        uv_run(&L->loop, UV_RUN_DEFAULT);
        if (L->tty)
            fprintf(stderr, "\r\033[K");
        uint64_t end = L->arrivals_end_ns ? L->arrivals_end_ns : ag_time_mono_ns();
        double window_s = (double)(end - L->t0_ns) / 1e9;
        rep = report(L, window_s);
        if (json) {
            char *text = json_dumps(rep, JSON_COMPACT);
            puts(text);
            ag_free(text);
        } else {
            print_report(rep);
        }
        uint64_t transport = 0;
        for (int i = 0; i < SC_COUNT; i++)
            transport += L->st[i].transport;
        if (transport > 0 && transport == L->n_arrivals)
            rc = CLI_FAILED; /* nothing reached the shop */
    } else {
        ag_http_client_close(L->client, NULL, NULL);
        uv_run(&L->loop, UV_RUN_DEFAULT);
    }
    json_decref(rep);
    uv_loop_close(&L->loop);
    for (size_t i = 0; i < L->nproducts; i++)
        ag_free(L->products[i]);
    for (size_t i = 0; i < L->nwords; i++)
        ag_free(L->words[i]);
    for (size_t i = 0; i < L->ncategories; i++)
        ag_free(L->categories[i]);
    for (size_t i = 0; i < L->ncustomers; i++)
        ag_free(L->customers[i].token);
    for (int i = 0; i < SC_COUNT; i++) {
        ag_free(L->st[i].lat.v);
        ag_free(L->st[i].saga.v);
    }
    ag_free(L->products);
    ag_free(L->words);
    ag_free(L->categories);
    ag_free(L->customers);
    ag_free(L);
    return rc;
}
