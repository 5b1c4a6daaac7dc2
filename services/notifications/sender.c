/* SPDX-License-Identifier: MIT */
/* E-mail delivery. On the loop thread the sender claims due pending rows
 * (marking them in flight), builds each RFC 5322 message and hands it to
 * the libuv thread pool, where libcurl's SMTP client sends it with a
 * deadline; at most AGORA_SMTP_CONCURRENCY sends run at once, so a slow or
 * dead mail server never blocks the loop, the consumer or other sends.
 * When a send returns, the loop thread settles its row through the delivery
 * transition (domain.h): sent, pending again after a capped backoff, or
 * failed. A timer looks again when the earliest retry is due; a commit of a
 * new pending row kicks it at once. */
#include "agora/base.h"
#include "notifications.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Plain prototypes: the calls go through the table below, and curl.h's
 * type-checking macros would wrap them. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "agora/dynlib.h"
#include "agora/err.h"
#include "agora/log.h"
#include "agora/mem.h"
#include "agora/random.h"
#include "agora/time.h"

#define SENDER_MAGIC 0x534e4452u /* "SNDR" */

/* Extra libuv threads beyond the sends, for the loop's other thread-pool
 * work (DNS, file system). */
#define THREADPOOL_SPARE 4

struct send_job;

struct notify_sender {
    uint32_t magic;
    uv_loop_t *loop;
    struct notify *n;      /* borrowed; settings, store, metrics */
    uv_timer_t timer;      /* next look for due rows */
    struct send_job *jobs; /* in flight, newest first */
    size_t inflight;
    size_t max_inflight;
    bool stopping;
    bool timer_closed;
    atomic_bool cancel; /* read by the worker threads */
};

struct send_job {
    uv_work_t work; /* must stay first */
    struct send_job *prev;
    struct send_job *next;
    struct notify_sender *s;
    struct notify_claimed row;
    /* Read by the worker thread; owned by the job or borrowed from settings,
     * which outlive the loop. */
    const char *url;
    const char *user;
    const char *password;
    bool starttls;
    uint64_t timeout_ms;
    char mail_from[NOTIFY_EMAIL_MAX + 3]; /* "<addr>" */
    char rcpt[NOTIFY_EMAIL_MAX + 3];
    char *msg; /* the whole message */
    size_t len;
    size_t off;   /* bytes handed to curl so far */
    bool no_curl; /* libcurl could not be loaded: fail at once (errbuf says why) */
    /* Written by the worker thread, read after it finished. */
    int curl_code;
    long smtp_code;
    uint64_t duration_ns;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- libcurl, loaded at the first e-mail ----
 * Linked, libcurl and what it pulls in (OpenSSL, GnuTLS, Kerberos, LDAP,
 * SSH...) were 7.6 MiB of the service's 12.2 MiB resident at idle
 * (bench/memory), for a sender that may never send. It is dlopen()ed by the
 * loop thread when the first job starts, then initialised once. */
#define CURL_FUNCS(X)                                                                              \
    X(curl_easy_cleanup)                                                                           \
    X(curl_easy_getinfo)                                                                           \
    X(curl_easy_init)                                                                              \
    X(curl_easy_perform)                                                                           \
    X(curl_easy_setopt)                                                                            \
    X(curl_easy_strerror)                                                                          \
    X(curl_global_cleanup)                                                                         \
    X(curl_global_init)                                                                            \
    X(curl_slist_append)                                                                           \
    X(curl_slist_free_all)                                                                         \
    X(curl_version_info)

#define CURL_FIELD(f) __typeof__(f) *p_##f;
static struct {
    CURL_FUNCS(CURL_FIELD)
} cu;
#define CURL_SYM(f) { #f, (void **)&cu.p_##f },
static const struct ag_dynlib_sym curl_syms[] = { CURL_FUNCS(CURL_SYM) };
static struct ag_dynlib curl_lib = { "libcurl.so.4", "libcurl4", curl_syms,
                                     AG_ARRAY_SIZE(curl_syms), NULL };
static bool curl_inited; /* curl_global_init succeeded (loop thread) */

#undef curl_easy_getinfo /* curl.h's argument-count checks */
#undef curl_easy_setopt
#define curl_easy_cleanup   (*cu.p_curl_easy_cleanup)
#define curl_easy_getinfo   (*cu.p_curl_easy_getinfo)
#define curl_easy_init      (*cu.p_curl_easy_init)
#define curl_easy_perform   (*cu.p_curl_easy_perform)
#define curl_easy_setopt    (*cu.p_curl_easy_setopt)
#define curl_easy_strerror  (*cu.p_curl_easy_strerror)
#define curl_global_cleanup (*cu.p_curl_global_cleanup)
#define curl_global_init    (*cu.p_curl_global_init)
#define curl_slist_append   (*cu.p_curl_slist_append)
#define curl_slist_free_all (*cu.p_curl_slist_free_all)
#define curl_version_info   (*cu.p_curl_version_info)

/* Load and initialise libcurl once, on the loop thread, before the job
 * that needs it is queued. curl_global_init is thread-safe from 7.84 on
 * (CURL_VERSION_THREADSAFE); other threads (the pool, the broker's) exist
 * by then, so an older libcurl is refused rather than raced. */
static int
curl_ready(char *errbuf, size_t errlen)
{
    if (curl_inited)
        return 0;
    int rc = ag_dynlib_load(&curl_lib, errbuf, errlen);
    if (rc != 0)
        return rc;
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (vi == NULL || (vi->features & CURL_VERSION_THREADSAFE) == 0) {
        snprintf(errbuf, errlen, "libcurl %s is not thread-safe to initialise (needs 7.84+)",
                 vi != NULL ? vi->version : "?");
        return AG_ECONFIG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errbuf, errlen, "cannot initialise libcurl");
        return AG_ECONFIG;
    }
    curl_inited = true;
    return 0;
}

void
notify_sender_global_cleanup(void)
{
    if (curl_inited)
        curl_global_cleanup();
    curl_inited = false;
}

static void on_timer(uv_timer_t *t);

/* ---- Worker thread ---- */

static size_t
read_message(char *buf, size_t size, size_t nitems, void *udata)
{
    struct send_job *job = udata;
    size_t room = size * nitems;
    size_t n = AG_MIN(room, job->len - job->off);
    memcpy(buf, job->msg + job->off, n);
    job->off += n;
    return n;
}

/* Called by curl about once a second and on progress: a stop cancels. */
static int
on_progress(void *udata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    AG_UNUSED(dltotal);
    AG_UNUSED(dlnow);
    AG_UNUSED(ultotal);
    AG_UNUSED(ulnow);
    struct send_job *job = udata;
    return atomic_load(&job->s->cancel) ? 1 : 0;
}

static void
send_work(uv_work_t *w)
{
    struct send_job *job = (struct send_job *)w;
    uint64_t t0 = ag_time_mono_ns();
    if (job->no_curl) {
        job->curl_code = CURLE_FAILED_INIT;
        return;
    }
    CURL *c = curl_easy_init();
    if (c == NULL) {
        job->curl_code = CURLE_FAILED_INIT;
        snprintf(job->errbuf, sizeof(job->errbuf), "cannot create a curl handle");
        return;
    }
    struct curl_slist *rcpt = curl_slist_append(NULL, job->rcpt);
    curl_easy_setopt(c, CURLOPT_URL, job->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, job->mail_from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_message);
    curl_easy_setopt(c, CURLOPT_READDATA, job);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)job->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)job->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, job->errbuf);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, job);
    if (job->starttls)
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (job->user[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_USERNAME, job->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, job->password);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    job->curl_code = (int)rc;
    job->smtp_code = code;
    if (rc != CURLE_OK && job->errbuf[0] == '\0')
        snprintf(job->errbuf, sizeof(job->errbuf), "%s", curl_easy_strerror(rc));
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    job->duration_ns = ag_time_mono_ns() - t0;
}

/* ---- Loop thread ---- */

static void
maybe_free(struct notify_sender *s)
{
    if (!s->stopping || !s->timer_closed || s->inflight > 0)
        return;
    s->magic = 0;
    ag_free(s);
}

static void
job_free(struct send_job *job)
{
    notify_store_claimed_free(&job->row);
    ag_free(job->msg);
    ag_free(job);
}

static void
job_unlink(struct notify_sender *s, struct send_job *job)
{
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        s->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    s->inflight--;
}

static enum notify_attempt
classify(const struct send_job *job, int status)
{
    if (status == UV_ECANCELED || job->curl_code == CURLE_ABORTED_BY_CALLBACK)
        return NOTIFY_ATTEMPT_CANCELLED;
    if (job->curl_code == CURLE_OK)
        return NOTIFY_ATTEMPT_OK;
    if (notify_smtp_is_permanent(job->smtp_code))
        return NOTIFY_ATTEMPT_PERMANENT;
    return NOTIFY_ATTEMPT_TRANSIENT;
}

/* Settle the row of 'job' after outcome 'a'. */
static void
settle(struct notify_sender *s, struct send_job *job, enum notify_attempt a)
{
    struct notify *n = s->n;
    const struct notify_settings *cfg = &n->settings;
    uint64_t rnd;
    ag_random_fill(&rnd, sizeof(rnd));
    struct notify_transition t;
    if (notify_transition(NOTIFY_PENDING, job->row.attempts, a, cfg->max_attempts,
                          cfg->retry_base_ms, cfg->retry_max_ms, rnd, &t) != 0)
        AG_BUG("a claimed notification is not pending");
    int64_t now = ag_time_unix_ms();
    char sent_at[AG_RFC3339_LEN];
    char error[NOTIFY_ERROR_MAX] = "";
    const char *last_error = NULL;
    if (a == NOTIFY_ATTEMPT_TRANSIENT || a == NOTIFY_ATTEMPT_PERMANENT) {
        snprintf(error, sizeof(error), "smtp: %s (reply %ld)", job->errbuf, job->smtp_code);
        last_error = error;
    }
    if (t.status == NOTIFY_SENT)
        ag_time_rfc3339(now, sent_at);
    int64_t next_ms = t.status == NOTIFY_PENDING ? now + (int64_t)t.delay_ms : 0;
    int rc = notify_store_settle(n->store, job->row.id, t.status, t.attempts, next_ms, last_error,
                                 t.status == NOTIFY_SENT ? sent_at : NULL);
    if (rc != 0) {
        /* The row stays in flight until the next start; nothing is lost. */
        AG_LOGE("sender", "cannot settle notification '%s': %s", job->row.id, ag_strerror(rc));
        return;
    }
    if (a == NOTIFY_ATTEMPT_CANCELLED)
        return;
    char masked[NOTIFY_MASKED_MAX];
    notify_email_mask(job->row.recipient, masked, sizeof(masked));
    ag_histogram_observe(n->m_duration, NULL, (double)job->duration_ns / 1e9);
    if (t.status == NOTIFY_SENT) {
        ag_counter_add(n->m_deliveries, (const char *const[]){ "sent" }, 1);
        AG_LOGI("sender", "sent %s notification '%s' to %s", job->row.type, job->row.id, masked);
    } else if (t.status == NOTIFY_PENDING) {
        ag_counter_add(n->m_deliveries, (const char *const[]){ "retried" }, 1);
        AG_LOGW("sender", "attempt %lld of notification '%s' to %s failed: %s; next in %llu ms",
                (long long)t.attempts, job->row.id, masked, error, (unsigned long long)t.delay_ms);
    } else {
        ag_counter_add(n->m_deliveries, (const char *const[]){ "failed" }, 1);
        AG_LOGW("sender", "notification '%s' to %s failed after %lld attempt(s): %s", job->row.id,
                masked, (long long)t.attempts, error);
    }
}

static void
send_done(uv_work_t *w, int status)
{
    struct send_job *job = (struct send_job *)w;
    struct notify_sender *s = job->s;
    AG_CHECK_MAGIC(s, SENDER_MAGIC);
    job_unlink(s, job);
    settle(s, job, classify(job, status));
    job_free(job);
    if (s->stopping)
        maybe_free(s);
    else
        notify_sender_kick(s);
}

/* Build the message of 'row' and queue its send; the job takes the row. */
static void
start_job(struct notify_sender *s, struct notify_claimed *row)
{
    struct notify *n = s->n;
    struct send_job *job = ag_calloc(1, sizeof(*job));
    job->s = s;
    job->row = *row;
    memset(row, 0, sizeof(*row));
    job->url = n->settings.smtp_url;
    job->user = n->settings.smtp_user;
    job->password = n->settings.smtp_password;
    job->starttls = n->settings.smtp_starttls;
    job->timeout_ms = n->settings.smtp_timeout_ms;
    snprintf(job->mail_from, sizeof(job->mail_from), "<%s>", n->from_addr);
    snprintf(job->rcpt, sizeof(job->rcpt), "<%s>", job->row.recipient);

    const char *domain = strrchr(n->from_addr, '@') + 1;
    char message_id[AG_UUID_STRLEN + NOTIFY_EMAIL_MAX + 4];
    snprintf(message_id, sizeof(message_id), "<%s@%s>", job->row.id, domain);
    struct notify_mail m = {
        .from_name = n->from_name,
        .from_addr = n->from_addr,
        .to_name = job->row.recipient_name,
        .to_addr = job->row.recipient,
        .subject = job->row.subject,
        .body = job->row.body,
        .message_id = message_id,
        .type = job->row.type,
        .date_ms = ag_time_unix_ms(),
    };
    struct ag_buf msg = AG_BUF_INIT(NOTIFY_MESSAGE_MAX);
    int rc = notify_mail_build(&m, &msg);
    if (rc != 0) {
        ag_buf_release(&msg);
        snprintf(job->errbuf, sizeof(job->errbuf), "cannot build the message: %s", ag_strerror(rc));
        job->smtp_code = 0;
        /* Not retryable: the same row builds the same way. */
        if (notify_store_settle(n->store, job->row.id, NOTIFY_FAILED, job->row.attempts + 1, 0,
                                job->errbuf, NULL) == 0)
            ag_counter_add(n->m_deliveries, (const char *const[]){ "failed" }, 1);
        AG_LOGW("sender", "notification '%s': %s", job->row.id, job->errbuf);
        job_free(job);
        return;
    }
    job->msg = ag_buf_detach(&msg, &job->len);
    job->next = s->jobs;
    if (s->jobs != NULL)
        s->jobs->prev = job;
    s->jobs = job;
    s->inflight++;
    if (curl_ready(job->errbuf, sizeof(job->errbuf)) != 0) {
        job->no_curl = true;
        AG_LOGE("sender", "notification '%s': %s", job->row.id, job->errbuf);
    }
    rc = uv_queue_work(s->loop, &job->work, send_work, send_done);
    if (rc != 0)
        AG_BUG("uv_queue_work failed");
}

/* Claim what is due, start it, and arm the timer for the next due row. */
static void
tick(struct notify_sender *s)
{
    struct notify *n = s->n;
    int64_t now = ag_time_unix_ms();
    uint64_t delay = n->settings.poll_ms;
    if (s->inflight < s->max_inflight) {
        struct notify_claimed *rows;
        size_t nrows;
        int rc = notify_store_claim(n->store, now, s->max_inflight - s->inflight, &rows, &nrows);
        if (rc != 0) {
            AG_LOGE("sender", "cannot claim due notifications: %s", ag_strerror(rc));
        } else {
            for (size_t i = 0; i < nrows; i++)
                start_job(s, &rows[i]);
            ag_free(rows);
        }
        int64_t due = -1;
        if (rc == 0 && s->inflight < s->max_inflight &&
            notify_store_next_due(n->store, &due) == 0 && due >= 0)
            delay = (uint64_t)AG_MAX(due - now, (int64_t)1);
    }
    /* With every slot busy, the next send_done kicks. */
    if (s->inflight < s->max_inflight)
        uv_timer_start(&s->timer, on_timer, AG_MIN(delay, n->settings.poll_ms), 0);
}

static void
on_timer(uv_timer_t *t)
{
    struct notify_sender *s = t->data;
    AG_CHECK_MAGIC(s, SENDER_MAGIC);
    if (!s->stopping)
        tick(s);
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct notify_sender *s = h->data;
    s->timer_closed = true;
    maybe_free(s);
}

int
notify_sender_new(uv_loop_t *loop, struct notify *n, struct notify_sender **out)
{
    int rc = notify_store_release_all(n->store);
    if (rc != 0) {
        AG_LOGE("sender", "cannot release notifications left in flight: %s", ag_strerror(rc));
        return rc;
    }
    struct notify_sender *s = ag_calloc(1, sizeof(*s));
    s->magic = SENDER_MAGIC;
    s->loop = loop;
    s->n = n;
    s->max_inflight = (size_t)n->settings.smtp_concurrency;
    atomic_init(&s->cancel, false);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    /* Sends hold thread-pool threads for up to the SMTP timeout: make the
     * pool larger than the sends, unless the operator sized it. This runs
     * before the loop's first use of the pool, which is when libuv reads it. */
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        char size[16];
        snprintf(size, sizeof(size), "%zu", s->max_inflight + THREADPOOL_SPARE);
        setenv("UV_THREADPOOL_SIZE", size, 0);
    }
    *out = s;
    notify_sender_kick(s);
    return 0;
}

void
notify_sender_kick(struct notify_sender *s)
{
    AG_CHECK_MAGIC(s, SENDER_MAGIC);
    if (!s->stopping)
        uv_timer_start(&s->timer, on_timer, 0, 0);
}

void
notify_sender_stop(struct notify_sender *s)
{
    if (s == NULL)
        return;
    AG_CHECK_MAGIC(s, SENDER_MAGIC);
    s->stopping = true;
    atomic_store(&s->cancel, true);
    /* Sends not yet started are dropped (send_done with UV_ECANCELED);
     * running ones stop at their next progress callback. */
    for (struct send_job *job = s->jobs; job != NULL; job = job->next)
        uv_cancel((uv_req_t *)&job->work);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
