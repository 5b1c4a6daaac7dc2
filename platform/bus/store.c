/* SPDX-License-Identifier: MIT */
/* Bus SQL: the message log, dedup ids, topic counters, subscriptions and
 * deliveries. Every statement is parameterised and cached by the chassis
 * store; transactions are opened by the callers (api.c, engine.c, sweep.c). */
#include "agora/base.h"
#include "bus.h"

#include <inttypes.h>
#include <string.h>

#include "agora/err.h"

/* ---- Loading at start ---- */

int
bus_store_topics_load(struct ag_store *st, bus_store_topic_fn fn, void *udata)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT name, messages, last_seq FROM topics", &s);
    if (rc != 0)
        return rc;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        rc = fn(ag_stmt_col_text(s, 0), ag_stmt_col_i64(s, 1), ag_stmt_col_i64(s, 2), udata);
        if (rc != 0)
            break;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
bus_store_subs_load(struct ag_store *st, bus_store_sub_fn fn, void *udata)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT id, name, topics, ack_deadline_ms, max_attempts, retry_delay_ms, "
                      "created_at FROM subscriptions ORDER BY id",
                      &s);
    if (rc != 0)
        return rc;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        rc = fn(ag_stmt_col_i64(s, 0), ag_stmt_col_text(s, 1), ag_stmt_col_text(s, 2),
                ag_stmt_col_i64(s, 3), ag_stmt_col_i64(s, 4), ag_stmt_col_i64(s, 5),
                ag_stmt_col_text(s, 6), udata);
        if (rc != 0)
            break;
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
bus_store_sub_counts(struct ag_store *st, int64_t sub_id, int64_t *out_pending, int64_t *out_dead)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st, "SELECT count(*) FROM deliveries WHERE sub_id = $1 AND state = 0", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    rc = ag_stmt_step_i64(s, 0, out_pending);
    if (rc != 0)
        return rc;
    rc = ag_store_stmt(st,
                       "SELECT count(*) FROM deliveries INDEXED BY deliveries_dead "
                       "WHERE sub_id = $1 AND state = 1",
                       &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    return ag_stmt_step_i64(s, 0, out_dead);
}

int
bus_store_pending_load(struct ag_store *st, int64_t sub_id, int64_t after, int64_t upto,
                       int64_t limit, bus_store_pending_fn fn, void *udata, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT d.seq, d.attempts, d.not_before, coalesce(m.subject, '') "
                           "FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq "
                           "WHERE d.sub_id = $1 AND d.state = 0 AND d.seq > $2 AND d.seq <= $4 "
                           "ORDER BY d.seq LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, after);
    ag_stmt_bind_i64(s, 3, limit);
    ag_stmt_bind_i64(s, 4, upto);
    int64_t n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        fn(ag_stmt_col_i64(s, 0), (int32_t)ag_stmt_col_i64(s, 1), ag_stmt_col_i64(s, 2),
           ag_stmt_col_text(s, 3), ag_stmt_col_len(s, 3), udata);
        n++;
    }
    ag_stmt_reset(s);
    *out_n = n;
    return rc < 0 ? rc : 0;
}

int
bus_store_oldest_pending(struct ag_store *st, int64_t sub_id, int64_t *out_ms)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "SELECT m.published_at FROM deliveries d JOIN messages m ON m.seq = d.seq "
                      "WHERE d.sub_id = $1 AND d.state = 0 ORDER BY d.seq LIMIT 1",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    return ag_stmt_step_i64(s, 0, out_ms);
}

/* ---- Publishing ---- */

int
bus_store_message_count(struct ag_store *st, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT count(*) FROM messages", &s);
    if (rc != 0)
        return rc;
    return ag_stmt_step_i64(s, 0, out_n);
}

int
bus_store_dedup_get(struct ag_store *st, const char *id, int64_t *out_seq, int64_t *out_at)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "SELECT seq, at FROM dedup WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, id);
    rc = ag_stmt_step_one(s);
    if (rc == 0) {
        *out_seq = ag_stmt_col_i64(s, 0);
        *out_at = ag_stmt_col_i64(s, 1);
    }
    ag_stmt_reset(s);
    return rc;
}

int
bus_store_dedup_put(struct ag_store *st, int64_t seq, const char *id, int64_t at)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO dedup (seq, id, at) VALUES ($1, $2, $3) "
                           "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, at = excluded.at",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, seq);
    ag_stmt_bind_cstr(s, 2, id);
    ag_stmt_bind_i64(s, 3, at);
    return ag_stmt_exec(s);
}

int
bus_store_message_insert(struct ag_store *st, int64_t seq, const struct bus_msg_in *m,
                         int64_t published_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO messages (seq, id, topic, subject, published_at, data) "
                           "VALUES ($1, $2, $3, $4, $5, $6)",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, seq);
    ag_stmt_bind_cstr(s, 2, m->id);
    ag_stmt_bind_cstr(s, 3, m->topic);
    ag_stmt_bind_text(s, 4, m->subject, m->subject_len);
    ag_stmt_bind_i64(s, 5, published_ms);
    ag_stmt_bind_text(s, 6, m->data, m->data_len);
    return ag_stmt_exec(s);
}

int
bus_store_topic_put(struct ag_store *st, const char *name, int64_t messages, int64_t last_seq)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "INSERT INTO topics (name, messages, last_seq) VALUES ($1, $2, $3) "
                           "ON CONFLICT (name) DO UPDATE SET messages = excluded.messages, "
                           "last_seq = excluded.last_seq",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, name);
    ag_stmt_bind_i64(s, 2, messages);
    ag_stmt_bind_i64(s, 3, last_seq);
    return ag_stmt_exec(s);
}

int
bus_store_delivery_insert(struct ag_store *st, int64_t sub_id, int64_t seq)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "INSERT INTO deliveries (sub_id, seq) VALUES ($1, $2)", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    return ag_stmt_exec(s);
}

/* ---- Settling deliveries ---- */

int
bus_store_delivery_delete(struct ag_store *st, int64_t sub_id, int64_t seq)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM deliveries WHERE sub_id = $1 AND seq = $2", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    return ag_stmt_exec(s);
}

int
bus_store_delivery_retry(struct ag_store *st, int64_t sub_id, int64_t seq, int32_t attempts,
                         int64_t not_before_ms)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE deliveries SET attempts = $3, not_before = $4 "
                           "WHERE sub_id = $1 AND seq = $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    ag_stmt_bind_i64(s, 3, attempts);
    ag_stmt_bind_i64(s, 4, not_before_ms);
    return ag_stmt_exec(s);
}

int
bus_store_delivery_dead(struct ag_store *st, int64_t sub_id, int64_t seq, int32_t attempts,
                        int64_t dead_ms, const char *last_error)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE deliveries SET state = 1, attempts = $3, dead_at = $4, "
                           "last_error = $5 WHERE sub_id = $1 AND seq = $2",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    ag_stmt_bind_i64(s, 3, attempts);
    ag_stmt_bind_i64(s, 4, dead_ms);
    ag_stmt_bind_cstr(s, 5, last_error);
    return ag_stmt_exec(s);
}

/* ---- Rendering messages ---- */

/* Append "id", "topic", "subject", "seq", "published_at" and "data" from
 * columns 'c' .. 'c' + 5 of 's' (id, topic, subject, seq, published_at,
 * data). */
static int
append_message_fields(struct ag_stmt *s, int c, struct ag_buf *out, struct bus_msg_loc *loc)
{
    struct bus_msg_loc dummy;
    if (loc == NULL)
        loc = &dummy;
    char when[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_stmt_col_i64(s, c + 4), when);
    int rc = ag_buf_append_cstr(out, "\"id\":");
    loc->id_off = out->len;
    if (rc == 0)
        rc = bus_json_append_string(out, ag_stmt_col_text(s, c), ag_stmt_col_len(s, c));
    loc->id_len = out->len - loc->id_off;
    if (rc == 0)
        rc = ag_buf_append_cstr(out, ",\"topic\":");
    loc->topic_off = out->len;
    if (rc == 0)
        rc = bus_json_append_string(out, ag_stmt_col_text(s, c + 1), ag_stmt_col_len(s, c + 1));
    loc->topic_len = out->len - loc->topic_off;
    if (rc == 0)
        rc = ag_buf_append_cstr(out, ",\"subject\":");
    if (rc == 0)
        rc = bus_json_append_string(out, ag_stmt_col_text(s, c + 2), ag_stmt_col_len(s, c + 2));
    if (rc == 0)
        rc = ag_buf_append_cstr(out, ",\"seq\":");
    if (rc == 0)
        rc = bus_buf_append_i64(out, ag_stmt_col_i64(s, c + 3));
    if (rc == 0)
        rc = ag_buf_append_cstr(out, ",\"published_at\":\"");
    if (rc == 0)
        rc = ag_buf_append_cstr(out, when);
    if (rc == 0)
        rc = ag_buf_append_cstr(out, "\",\"data\":");
    loc->data_off = out->len;
    if (rc == 0)
        rc = ag_buf_append(out, ag_stmt_col_text(s, c + 5), ag_stmt_col_len(s, c + 5));
    loc->data_len = out->len - loc->data_off;
    return rc;
}

int
bus_store_message_append(struct ag_store *st, int64_t seq, struct ag_buf *out,
                         struct bus_msg_loc *out_loc)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT id, topic, subject, seq, published_at, data FROM messages "
                           "WHERE seq = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, seq);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        rc = append_message_fields(s, 0, out, out_loc);
    ag_stmt_reset(s);
    return rc;
}

/* Dead letters are read through the partial index of state 1 rows (SQLite
 * syntax), so a listing never walks the pending backlog. */
#define DEAD_COLS                                                                                  \
    "m.id, m.topic, m.subject, m.seq, m.published_at, m.data, d.attempts, d.last_error, "          \
    "d.dead_at FROM deliveries d INDEXED BY deliveries_dead JOIN messages m ON m.seq = d.seq "

static int
append_dead(struct ag_stmt *s, struct ag_buf *out)
{
    int rc = ag_buf_append_char(out, '{');
    if (rc == 0)
        rc = append_message_fields(s, 0, out, NULL);
    if (rc == 0)
        rc = ag_buf_appendf(out, ",\"attempts\":%" PRId64, ag_stmt_col_i64(s, 6));
    if (rc == 0 && !ag_stmt_col_is_null(s, 7)) {
        rc = ag_buf_append_cstr(out, ",\"last_error\":");
        if (rc == 0)
            rc = bus_json_append_string(out, ag_stmt_col_text(s, 7), ag_stmt_col_len(s, 7));
    }
    char when[AG_RFC3339_LEN];
    ag_time_rfc3339(ag_stmt_col_i64(s, 8), when);
    if (rc == 0)
        rc = ag_buf_appendf(out, ",\"dead_at\":\"%s\"}", when);
    return rc;
}

/* ---- Subscriptions ---- */

int
bus_store_sub_insert(struct ag_store *st, const char *name, const char *topics_json,
                     const struct bus_sub_config *cfg, const char *now, int64_t *out_id)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "INSERT INTO subscriptions (name, topics, ack_deadline_ms, max_attempts, "
                      "retry_delay_ms, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) "
                      "RETURNING id",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_cstr(s, 1, name);
    ag_stmt_bind_cstr(s, 2, topics_json);
    ag_stmt_bind_i64(s, 3, cfg->ack_deadline_ms);
    ag_stmt_bind_i64(s, 4, cfg->max_attempts);
    ag_stmt_bind_i64(s, 5, cfg->retry_delay_ms);
    ag_stmt_bind_cstr(s, 6, now);
    rc = ag_stmt_step(s);
    if (rc == AG_STMT_ROW) {
        *out_id = ag_stmt_col_i64(s, 0);
        rc = ag_stmt_step(s);
    }
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
bus_store_sub_update(struct ag_store *st, int64_t id, const char *topics_json,
                     const struct bus_sub_config *cfg, const char *now)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE subscriptions SET topics = $2, ack_deadline_ms = $3, "
                           "max_attempts = $4, retry_delay_ms = $5, updated_at = $6 WHERE id = $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, id);
    ag_stmt_bind_cstr(s, 2, topics_json);
    ag_stmt_bind_i64(s, 3, cfg->ack_deadline_ms);
    ag_stmt_bind_i64(s, 4, cfg->max_attempts);
    ag_stmt_bind_i64(s, 5, cfg->retry_delay_ms);
    ag_stmt_bind_cstr(s, 6, now);
    return ag_stmt_exec(s);
}

int
bus_store_sub_delete(struct ag_store *st, int64_t id)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st, "DELETE FROM deliveries WHERE sub_id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, id);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    rc = ag_store_stmt(st, "DELETE FROM subscriptions WHERE id = $1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, id);
    return ag_stmt_exec(s);
}

/* ---- Dead letters ---- */

int
bus_store_dead_list(struct ag_store *st, int64_t sub_id, int64_t after, int64_t limit,
                    struct ag_buf *out, size_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "SELECT " DEAD_COLS "WHERE d.sub_id = $1 AND d.state = 1 AND d.seq > $2 "
                           "ORDER BY d.seq LIMIT $3",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, after);
    ag_stmt_bind_i64(s, 3, limit);
    size_t n = 0;
    while ((rc = ag_stmt_step(s)) == AG_STMT_ROW) {
        if (n > 0 && (rc = ag_buf_append_char(out, ',')) != 0)
            break;
        rc = append_dead(s, out);
        if (rc != 0)
            break;
        n++;
    }
    ag_stmt_reset(s);
    *out_n = n;
    return rc < 0 ? rc : 0;
}

int
bus_store_dead_get(struct ag_store *st, int64_t sub_id, int64_t seq, struct ag_buf *out)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "SELECT " DEAD_COLS "WHERE d.sub_id = $1 AND d.seq = $2 AND d.state = 1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    rc = ag_stmt_step_one(s);
    if (rc == 0)
        rc = append_dead(s, out);
    ag_stmt_reset(s);
    return rc;
}

int
bus_store_dead_select(struct ag_store *st, int64_t sub_id, const int64_t *seqs, size_t n,
                      size_t limit, struct ag_pool *pool, struct bus_dead_ref **out_refs,
                      size_t *out_n)
{
    struct ag_stmt *s;
    int rc;
    size_t cap = seqs != NULL ? n : limit;
    struct bus_dead_ref *refs = ag_pool_alloc(pool, (cap ? cap : 1) * sizeof(*refs));
    size_t count = 0;
    if (seqs == NULL) {
        rc = ag_store_stmt(st,
                           "SELECT d.seq, coalesce(m.subject, '') FROM deliveries d "
                           "INDEXED BY deliveries_dead LEFT JOIN messages m ON m.seq = d.seq "
                           "WHERE d.sub_id = $1 AND d.state = 1 ORDER BY d.seq LIMIT $2",
                           &s);
        if (rc != 0)
            return rc;
        ag_stmt_bind_i64(s, 1, sub_id);
        ag_stmt_bind_i64(s, 2, (int64_t)limit);
        while ((rc = ag_stmt_step(s)) == AG_STMT_ROW && count < cap) {
            refs[count].seq = ag_stmt_col_i64(s, 0);
            refs[count].subject_len = ag_stmt_col_len(s, 1);
            refs[count].subject =
                ag_pool_strndup(pool, ag_stmt_col_text(s, 1), refs[count].subject_len);
            count++;
        }
        ag_stmt_reset(s);
    } else {
        rc = ag_store_stmt(st,
                           "SELECT coalesce(m.subject, '') FROM deliveries d "
                           "LEFT JOIN messages m ON m.seq = d.seq "
                           "WHERE d.sub_id = $1 AND d.seq = $2 AND d.state = 1",
                           &s);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n && rc >= 0; i++) {
            ag_stmt_bind_i64(s, 1, sub_id);
            ag_stmt_bind_i64(s, 2, seqs[i]);
            rc = ag_stmt_step(s);
            if (rc == AG_STMT_ROW) {
                refs[count].seq = seqs[i];
                refs[count].subject_len = ag_stmt_col_len(s, 0);
                refs[count].subject =
                    ag_pool_strndup(pool, ag_stmt_col_text(s, 0), refs[count].subject_len);
                count++;
            }
            ag_stmt_reset(s);
        }
    }
    *out_refs = refs;
    *out_n = count;
    return rc < 0 ? rc : 0;
}

int
bus_store_dead_revive(struct ag_store *st, int64_t sub_id, int64_t seq)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "UPDATE deliveries SET state = 0, attempts = 0, not_before = 0, "
                           "dead_at = NULL, last_error = NULL "
                           "WHERE sub_id = $1 AND seq = $2 AND state = 1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    ag_stmt_bind_i64(s, 2, seq);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    return ag_store_changes(st) == 1 ? 0 : AG_ENOENT;
}

int
bus_store_dead_purge(struct ag_store *st, int64_t sub_id, int64_t *out_n)
{
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "DELETE FROM deliveries INDEXED BY deliveries_dead "
                           "WHERE sub_id = $1 AND state = 1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, sub_id);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    *out_n = ag_store_changes(st);
    return 0;
}

/* ---- Sweeps ---- */

int
bus_store_first_old_message(struct ag_store *st, int64_t from, int64_t cut_ms, int64_t *out_seq)
{
    /* published_at never decreases with seq, so the first message at or
     * after 'from' decides: the scan never walks the young end. */
    struct ag_stmt *s;
    int rc = ag_store_stmt(
        st, "SELECT seq, published_at FROM messages WHERE seq >= $1 ORDER BY seq LIMIT 1", &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, from);
    rc = ag_stmt_step(s);
    *out_seq = 0;
    if (rc == AG_STMT_ROW && ag_stmt_col_i64(s, 1) < cut_ms)
        *out_seq = ag_stmt_col_i64(s, 0);
    ag_stmt_reset(s);
    return rc < 0 ? rc : 0;
}

int
bus_store_sweep_messages(struct ag_store *st, int64_t from, int64_t to, int64_t cut_ms,
                         int64_t *out_deleted)
{
    struct ag_stmt *s;
    int rc =
        ag_store_stmt(st,
                      "DELETE FROM messages WHERE seq >= $1 AND seq < $2 AND published_at < $3 "
                      "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sub_id IN "
                      "(SELECT id FROM subscriptions) AND d.seq = messages.seq)",
                      &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, from);
    ag_stmt_bind_i64(s, 2, to);
    ag_stmt_bind_i64(s, 3, cut_ms);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    *out_deleted = ag_store_changes(st);
    return 0;
}

int
bus_store_sweep_dedup(struct ag_store *st, int64_t cut_ms, int64_t limit, int64_t *out_deleted)
{
    /* The oldest 'limit' rows by seq (cheap: rowid order), of which those
     * older than the window go. */
    struct ag_stmt *s;
    int rc = ag_store_stmt(st,
                           "DELETE FROM dedup WHERE seq IN (SELECT seq FROM dedup ORDER BY seq "
                           "LIMIT $2) AND at < $1",
                           &s);
    if (rc != 0)
        return rc;
    ag_stmt_bind_i64(s, 1, cut_ms);
    ag_stmt_bind_i64(s, 2, limit);
    rc = ag_stmt_exec(s);
    if (rc != 0)
        return rc;
    *out_deleted = ag_store_changes(st);
    return 0;
}
