/* SPDX-License-Identifier: MIT */
/* Unit tests of the pure parts of the events runtime (events.c through
 * events_int.h): CloudEvent building and its argument checks, name and
 * pattern rules, and the outbox and inbox SQL on a
 * ":memory:" store (schema versioning, ordered batches, settling,
 * counts, housekeeping, inbox de-duplication). ag_events_publish is checked
 * against a real runtime whose relay is never started (no network). */
#include "agora/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/events/events_int.h"
#include "agora/err.h"
#include "agora/json.h"
#include "agora/mem.h"
#include "agora/store.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ---- Helpers ------------------------------------------------------------- */

static struct ag_store *
open_memory(void)
{
    struct ag_store_config cfg = { .path = ":memory:" };
    struct ag_store *s = NULL;
    assert_int_equal(ag_store_open(&cfg, &s), 0);
    assert_int_equal(ag__events_schema(s), 0);
    return s;
}

static int64_t
query_i64(struct ag_store *s, const char *sql)
{
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(s, sql, &err);
    assert_non_null(st);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    int64_t v = ag_stmt_col_i64(st, 0);
    ag_stmt_reset(st);
    return v;
}

static void
query_text(struct ag_store *s, const char *sql, char *out, size_t outlen)
{
    int err = 0;
    struct ag_stmt *st = ag_store_prepare(s, sql, &err);
    assert_non_null(st);
    assert_int_equal(ag_stmt_step(st), AG_STMT_ROW);
    snprintf(out, outlen, "%s", ag_stmt_col_text(st, 0));
    ag_stmt_reset(st);
}

/* Insert 'n' outbox rows (ids "id-<k>", subject 's', created at 'ms') in
 * one transaction. */
static void
insert_rows(struct ag_store *s, int first, int n, int64_t ms)
{
    assert_int_equal(ag_store_begin(s), 0);
    for (int k = first; k < first + n; k++) {
        char id[32];
        char ev[64];
        snprintf(id, sizeof(id), "id-%03d", k);
        int len = snprintf(ev, sizeof(ev), "{\"n\":%d}", k);
        assert_int_equal(ag__outbox_insert(s, id, "test.made", "s", ev, (size_t)len, ms), 0);
    }
    assert_int_equal(ag_store_commit(s), 0);
}

/* ---- CloudEvents --------------------------------------------------------- */

static void
test_cloudevent_fields(void **state)
{
    AG_UNUSED(state);
    char id[AG_UUID_STRLEN + 1];
    ag_uuid7(id);
    json_t *data = json_pack("{s:i, s:[s]}", "n", 7, "tags", "a");
    struct ag_buf out = AG_BUF_INIT(0);
    assert_int_equal(ag__events_cloudevent(id, "/agora/test", "order.created", "ord-1",
                                           1763761681123, data, TP_OK, &out),
                     0);
    json_t *ce = ag_json_parse(out.data, out.len, NULL, 0);
    assert_non_null(ce);
    static const char *const keys[] = { "specversion", "id",   "source",          "type",
                                        "subject",     "time", "datacontenttype", "data",
                                        "traceparent" };
    /* Keys in the documented order, and nothing else. */
    assert_int_equal(json_object_size(ce), AG_ARRAY_SIZE(keys));
    const char *prev = out.data;
    for (size_t i = 0; i < AG_ARRAY_SIZE(keys); i++) {
        char quoted[40];
        snprintf(quoted, sizeof(quoted), "\"%s\":", keys[i]);
        const char *at = strstr(out.data, quoted);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    assert_string_equal(json_string_value(json_object_get(ce, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(ce, "id")), id);
    assert_string_equal(json_string_value(json_object_get(ce, "source")), "/agora/test");
    assert_string_equal(json_string_value(json_object_get(ce, "type")), "order.created");
    assert_string_equal(json_string_value(json_object_get(ce, "subject")), "ord-1");
    assert_string_equal(json_string_value(json_object_get(ce, "time")), "2025-11-21T21:48:01.123Z");
    assert_string_equal(json_string_value(json_object_get(ce, "datacontenttype")),
                        "application/json");
    assert_string_equal(json_string_value(json_object_get(ce, "traceparent")), TP_OK);
    assert_true(json_equal(json_object_get(ce, "data"), data));
    json_decref(ce);

    /* Without a traceparent the key is left out. */
    ag_buf_reset(&out);
    assert_int_equal(ag__events_cloudevent(id, "/s", "a.b", "x", 0, data, NULL, &out), 0);
    ce = ag_json_parse(out.data, out.len, NULL, 0);
    assert_null(json_object_get(ce, "traceparent"));
    assert_string_equal(json_string_value(json_object_get(ce, "time")), "1970-01-01T00:00:00.000Z");
    json_decref(ce);
    json_decref(data);
    ag_buf_release(&out);
}

static void
test_cloudevent_rejects(void **state)
{
    AG_UNUSED(state);
    char id[AG_UUID_STRLEN + 1];
    ag_uuid7(id);
    char long_subject[AG_EVENTS_MAX_SUBJECT + 2];
    memset(long_subject, 'x', sizeof(long_subject) - 1);
    long_subject[sizeof(long_subject) - 1] = '\0';
    char max_subject[AG_EVENTS_MAX_SUBJECT + 1];
    memset(max_subject, 'x', sizeof(max_subject) - 1);
    max_subject[sizeof(max_subject) - 1] = '\0';
    char long_type[130];
    memset(long_type, 'a', sizeof(long_type) - 1);
    long_type[sizeof(long_type) - 1] = '\0';
    json_t *data = json_object();
    static const struct {
        const char *id, *source, *type, *subject, *tp;
        bool null_data;
        int want;
    } cases[] = {
        { NULL, "/s", "a.b", "x", NULL, false, 0 },
        { NULL, "/s", "a.b", "x", TP_OK, false, 0 },
        { NULL, "/s", "a-b_c.d9", "ünï cödé", NULL, false, 0 },
        { "not-a-uuid", "/s", "a.b", "x", NULL, false, AG_EINVAL },
        { NULL, "", "a.b", "x", NULL, false, AG_EINVAL },
        { NULL, NULL, "a.b", "x", NULL, false, AG_EINVAL },
        { NULL, "/s", "", "x", NULL, false, AG_EINVAL },
        { NULL, "/s", NULL, "x", NULL, false, AG_EINVAL },
        { NULL, "/s", "Order.Created", "x", NULL, false, AG_EINVAL },
        { NULL, "/s", ".order", "x", NULL, false, AG_EINVAL },
        { NULL, "/s", "order created", "x", NULL, false, AG_EINVAL },
        { NULL, "/s", "a.b", "", NULL, false, AG_EINVAL },
        { NULL, "/s", "a.b", NULL, NULL, false, AG_EINVAL },
        { NULL, "/s", "a.b", "line\nbreak", NULL, false, AG_EINVAL },
        { NULL, "/s", "a.b", "bad \xff utf8", NULL, false, AG_EINVAL },
        { NULL, "/s", "a.b", "x", "00-zz", false, AG_EINVAL },
        { NULL, "/s", "a.b", "x", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false,
          AG_EINVAL },
        { NULL, "/s", "a.b", "x", NULL, true, AG_EINVAL },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_buf out = AG_BUF_INIT(0);
        int rc = ag__events_cloudevent(cases[i].id ? cases[i].id : id, cases[i].source,
                                       cases[i].type, cases[i].subject, 0,
                                       cases[i].null_data ? NULL : data, cases[i].tp, &out);
        if (rc != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, rc, cases[i].want);
        if (rc != 0)
            assert_int_equal(out.len, 0);
        ag_buf_release(&out);
    }
    /* Length limits: exactly at the limit passes, one past fails. */
    struct ag_buf out = AG_BUF_INIT(0);
    assert_int_equal(ag__events_cloudevent(id, "/s", "a.b", max_subject, 0, data, NULL, &out), 0);
    ag_buf_reset(&out);
    assert_int_equal(ag__events_cloudevent(id, "/s", "a.b", long_subject, 0, data, NULL, &out),
                     AG_EINVAL);
    long_type[128] = '\0';
    assert_int_equal(ag__events_cloudevent(id, "/s", long_type, "x", 0, data, NULL, &out), 0);
    ag_buf_reset(&out);
    long_type[128] = 'a';
    assert_int_equal(ag__events_cloudevent(id, "/s", long_type, "x", 0, data, NULL, &out),
                     AG_EINVAL);
    ag_buf_release(&out);

    /* Too big for the buffer's maximum: AG_ETOOBIG, buffer untouched. */
    json_t *big = json_pack("{s:s}", "blob", "0123456789012345678901234567890123456789");
    struct ag_buf small = AG_BUF_INIT(64);
    assert_int_equal(ag_buf_append_cstr(&small, "keep"), 0);
    assert_int_equal(ag__events_cloudevent(id, "/s", "a.b", "x", 0, big, NULL, &small), AG_ETOOBIG);
    assert_string_equal(ag_buf_cstr(&small), "keep");
    ag_buf_release(&small);
    json_decref(big);
    json_decref(data);
}

static void
test_names_and_patterns(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *s;
        bool name, pattern;
    } cases[] = {
        { "order.created", true, true },
        { "order.*", false, true },
        { "*", false, true },
        { "a", true, true },
        { "0rder", true, true },
        { "order.", true, true },
        { ".*", false, false },
        { "order*", false, false },
        { "order.*.x", false, false },
        { "Order", false, false },
        { "-x", false, false },
        { "", false, false },
        { "a b", false, false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        if (ag__events_name_is_valid(cases[i].s) != cases[i].name)
            fail_msg("name '%s'", cases[i].s);
        if (ag__events_pattern_is_valid(cases[i].s) != cases[i].pattern)
            fail_msg("pattern '%s'", cases[i].s);
    }
    assert_false(ag__events_name_is_valid(NULL));
    assert_false(ag__events_pattern_is_valid(NULL));
}

/* ---- Schema -------------------------------------------------------------- */

static void
test_schema_versioned_and_idempotent(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    assert_int_equal(query_i64(s, "SELECT version FROM agora_chassis_schema"
                                  " WHERE module = 'events'"),
                     AG__EVENTS_SCHEMA_VERSION);
    insert_rows(s, 0, 2, 1000);
    /* Running it again (every start) keeps the data. */
    assert_int_equal(ag__events_schema(s), 0);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_outbox"), 2);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_chassis_schema"), 1);
    /* Not inside a transaction. */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag__events_schema(s), AG_EINVAL);
    assert_int_equal(ag_store_rollback(s), 0);
    /* A newer schema written by a newer binary is refused. */
    assert_int_equal(ag_store_exec(s, "UPDATE agora_chassis_schema SET version = 99"), 0);
    assert_int_equal(ag__events_schema(s), AG_ECONFIG);
    /* The CHECK constraint guards the states. */
    assert_int_equal(ag_store_exec(s, "UPDATE agora_outbox SET state = 'lost'"), AG_ECONFLICT);
    ag_store_close(s);
}

/* ---- Outbox -------------------------------------------------------------- */

static void
test_outbox_take_in_order(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    insert_rows(s, 0, 5, 1000);
    struct ag__outbox_batch b = { 0 };
    assert_int_equal(ag__outbox_take(s, 3, 1 << 20, &b), 0);
    assert_int_equal(b.n, 3);
    for (size_t i = 0; i < b.n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "id-%03zu", i);
        assert_string_equal(b.rows[i].id, want);
        assert_string_equal(b.rows[i].type, "test.made");
        assert_string_equal(b.rows[i].subject, "s");
        assert_int_equal(b.rows[i].event_len, strlen(b.rows[i].event));
        if (i > 0)
            assert_true(b.rows[i].seq > b.rows[i - 1].seq);
    }
    /* Taking is a read: the rows stay pending until the settle. */
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_outbox WHERE state = 'pending'"), 5);
    int64_t pending = 0;
    int64_t published = 0;
    int64_t failed = 0;
    int64_t oldest = 0;
    assert_int_equal(ag__outbox_counts(s, &pending, &published, &failed, &oldest), 0);
    assert_int_equal(pending, 5);
    assert_int_equal(published, 0);
    assert_int_equal(oldest, 1000);

    /* Row 0 published, row 1 back to retry, row 2 released. */
    enum ag__outbox_outcome oc[3] = { AG__OUTBOX_PUBLISHED, AG__OUTBOX_RETRY, AG__OUTBOX_RELEASE };
    assert_int_equal(ag__outbox_settle(s, &b, oc, "bus unreachable", 5000), 0);
    ag__outbox_batch_clear(&b);
    char text[64];
    query_text(s,
               "SELECT state || ' ' || attempts || ' ' || published_at FROM agora_outbox"
               " WHERE id = 'id-000'",
               text, sizeof(text));
    assert_string_equal(text, "published 1 1970-01-01T00:00:05.000Z");
    query_text(s,
               "SELECT state || ' ' || attempts || ' ' || last_error FROM agora_outbox"
               " WHERE id = 'id-001'",
               text, sizeof(text));
    assert_string_equal(text, "pending 1 bus unreachable");
    query_text(s, "SELECT state || ' ' || attempts FROM agora_outbox WHERE id = 'id-002'", text,
               sizeof(text));
    assert_string_equal(text, "pending 0");

    /* The next take starts again at the oldest unpublished row. */
    assert_int_equal(ag__outbox_take(s, 10, 1 << 20, &b), 0);
    assert_int_equal(b.n, 4);
    assert_string_equal(b.rows[0].id, "id-001");
    assert_string_equal(b.rows[3].id, "id-004");
    /* A take after a batch that was never settled (a crash, or a failed
     * settle) reads the same rows again, so none is skipped. */
    ag__outbox_batch_clear(&b);
    assert_int_equal(ag__outbox_take(s, 2, 1 << 20, &b), 0);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.rows[0].id, "id-001");
    /* A settle only moves pending rows: one marked failed meanwhile (by
     * hand, say) stays failed. */
    assert_int_equal(
        ag_store_exec(s, "UPDATE agora_outbox SET state = 'failed' WHERE id = 'id-001'"), 0);
    enum ag__outbox_outcome pub2[2] = { AG__OUTBOX_PUBLISHED, AG__OUTBOX_PUBLISHED };
    assert_int_equal(ag__outbox_settle(s, &b, pub2, NULL, 6000), 0);
    query_text(s, "SELECT state FROM agora_outbox WHERE id = 'id-001'", text, sizeof(text));
    assert_string_equal(text, "failed");
    query_text(s, "SELECT state FROM agora_outbox WHERE id = 'id-002'", text, sizeof(text));
    assert_string_equal(text, "published");
    ag__outbox_batch_clear(&b);
    ag_store_close(s);
}

static void
test_outbox_take_bytes_and_failed(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    insert_rows(s, 0, 4, 1000);
    struct ag__outbox_batch b = { 0 };
    /* A byte cap smaller than one event still takes one row. */
    assert_int_equal(ag__outbox_take(s, 100, 1, &b), 0);
    assert_int_equal(b.n, 1);
    /* Refused for good: failed, and never taken again. */
    enum ag__outbox_outcome oc[1] = { AG__OUTBOX_FAILED };
    assert_int_equal(ag__outbox_settle(s, &b, oc, "422", 2000), 0);
    ag__outbox_batch_clear(&b);
    size_t one = strlen("{\"n\":1}");
    assert_int_equal(ag__outbox_take(s, 100, 2 * one, &b), 0);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.rows[0].id, "id-001");
    assert_int_equal(b.bytes, 2 * one);
    ag__outbox_batch_clear(&b);
    int64_t failed = 0;
    int64_t pending = 0;
    assert_int_equal(ag__outbox_counts(s, &pending, NULL, &failed, NULL), 0);
    assert_int_equal(failed, 1);
    assert_int_equal(pending, 3);
    /* Nothing pending: an empty batch. */
    assert_int_equal(ag_store_exec(s, "UPDATE agora_outbox SET state = 'published'"
                                      " WHERE state != 'failed'"),
                     0);
    assert_int_equal(ag__outbox_take(s, 100, 1 << 20, &b), 0);
    assert_int_equal(b.n, 0);
    int64_t oldest = -1;
    assert_int_equal(ag__outbox_counts(s, &pending, NULL, NULL, &oldest), 0);
    assert_int_equal(pending, 0);
    assert_int_equal(oldest, 0);
    ag_store_close(s);
}

static void
test_outbox_take_store_error(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    insert_rows(s, 0, 2, 1000);
    struct ag__outbox_batch b = { 0 };
    /* Fail the SELECT step: nothing changes, the batch stays empty. */
    ag_store_fault_after(s, 3);
    assert_int_equal(ag__outbox_take(s, 10, 1 << 20, &b), AG_EIO);
    assert_int_equal(b.n, 0);
    assert_false(ag_store_in_tx(s));
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_outbox WHERE state = 'pending'"), 2);
    ag_store_close(s);
}

static void
test_housekeeping(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    insert_rows(s, 0, 6, 1000);
    assert_int_equal(ag_store_exec(s, "UPDATE agora_outbox SET state = 'published',"
                                      " published_at = '1970-01-01T00:00:01.000Z'"
                                      " WHERE id IN ('id-000', 'id-001', 'id-002')"),
                     0);
    assert_int_equal(ag_store_exec(s, "UPDATE agora_outbox SET state = 'published',"
                                      " published_at = '1970-01-01T00:01:00.000Z'"
                                      " WHERE id = 'id-003'"),
                     0);
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag__inbox_insert(s, "e1", "sub", 1000), 0);
    assert_int_equal(ag__inbox_insert(s, "e2", "sub", 1000), 0);
    assert_int_equal(ag__inbox_insert(s, "e3", "sub", 120000), 0);
    assert_int_equal(ag_store_commit(s), 0);

    int64_t outbox = -1;
    int64_t inbox = -1;
    /* Cut-off 30 s, two rows per pass. */
    assert_int_equal(ag__events_housekeep(s, 30000, 2, &outbox, &inbox), 0);
    assert_int_equal(outbox, 2);
    assert_int_equal(inbox, 2);
    assert_int_equal(ag__events_housekeep(s, 30000, 2, &outbox, &inbox), 0);
    assert_int_equal(outbox, 1);
    assert_int_equal(inbox, 0);
    assert_int_equal(ag__events_housekeep(s, 30000, 2, &outbox, &inbox), 0);
    assert_int_equal(outbox, 0);
    /* Newer published rows, pending rows and newer inbox rows stay. */
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_outbox"), 3);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_outbox WHERE id = 'id-003'"), 1);
    assert_int_equal(query_i64(s, "SELECT COUNT(*) FROM agora_inbox"), 1);
    ag_store_close(s);
}

/* ---- Inbox --------------------------------------------------------------- */

static void
test_inbox_duplicates(void **state)
{
    AG_UNUSED(state);
    struct ag_store *s = open_memory();
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag__inbox_insert(s, "evt-1", "orders", 1000), 0);
    assert_int_equal(ag__inbox_insert(s, "evt-1", "orders", 2000), AG_EEXIST);
    /* Another subscription of the same service applies it on its own. */
    assert_int_equal(ag__inbox_insert(s, "evt-1", "analytics", 2000), 0);
    assert_int_equal(ag_store_commit(s), 0);
    char at[40];
    query_text(s, "SELECT received_at FROM agora_inbox WHERE subscription = 'orders'", at,
               sizeof(at));
    assert_string_equal(at, "1970-01-01T00:00:01.000Z");
    ag_store_close(s);
}

/* ---- ag_events_publish --------------------------------------------------- */

static int
nop_handler(struct ag_events *ev, struct ag_store *store, const json_t *event, void *udata)
{
    AG_UNUSED(ev);
    AG_UNUSED(store);
    AG_UNUSED(event);
    AG_UNUSED(udata);
    return 0;
}

static void
on_stopped(void *udata)
{
    *(int *)udata += 1;
}

static void
test_publish_needs_transaction(void **state)
{
    AG_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct ag_store_config scfg = { .path = ":memory:" };
    struct ag_store *s = NULL;
    assert_int_equal(ag_store_open(&scfg, &s), 0);
    struct ag_http_client *client = NULL;
    assert_int_equal(ag_http_client_new(&loop, NULL, &client), 0);

    struct ag_events *ev = NULL;
    struct ag_events_config bad = { .source = "/agora/test", .bus_url = "ftp://x" };
    assert_int_equal(ag_events_new(&loop, s, client, &bad, &ev), AG_EINVAL);
    bad.bus_url = "http://127.0.0.1:1";
    bad.source = "";
    assert_int_equal(ag_events_new(&loop, s, client, &bad, &ev), AG_EINVAL);
    struct ag_events_config cfg = { .source = "/agora/test", .bus_url = "http://127.0.0.1:1/" };
    assert_int_equal(ag_events_new(&loop, s, client, &cfg, &ev), 0);

    json_t *data = json_pack("{s:i}", "n", 1);
    char id[37] = "";
    /* No transaction: refused, nothing written. */
    assert_int_equal(ag_events_publish(ev, "test.made", "s", data, NULL, id), AG_EINVAL);
    assert_int_equal(ag_events_outbox_backlog(ev), 0);
    /* Rolled back: nothing stays. */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag_events_publish(ev, "test.made", "s", data, NULL, id), 0);
    assert_int_equal(ag_store_rollback(s), 0);
    assert_int_equal(ag_events_outbox_backlog(ev), 0);
    /* Committed: one pending row holding the CloudEvent. */
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag_events_publish(ev, "test.made", "s", data, TP_OK, id), 0);
    assert_int_equal(ag_events_publish(ev, "Bad.Type", "s", data, NULL, NULL), AG_EINVAL);
    assert_int_equal(ag_store_commit(s), 0);
    assert_true(ag_uuid_is_valid(ag_str_from_cstr(id)));
    assert_true(ag_uuid7_time_ms(ag_str_from_cstr(id)) > 0);
    assert_int_equal(ag_events_outbox_backlog(ev), 1);
    char event[1024];
    query_text(s, "SELECT event FROM agora_outbox", event, sizeof(event));
    json_t *ce = ag_json_parse(event, strlen(event), NULL, 0);
    assert_string_equal(json_string_value(json_object_get(ce, "id")), id);
    assert_string_equal(json_string_value(json_object_get(ce, "source")), "/agora/test");
    assert_string_equal(json_string_value(json_object_get(ce, "traceparent")), TP_OK);
    assert_true(json_equal(json_object_get(ce, "data"), data));
    json_decref(ce);
    /* Too big for one bus message. */
    size_t blen = AG_EVENTS_MAX_EVENT_BYTES;
    char *blob = ag_malloc(blen + 1);
    memset(blob, 'x', blen);
    blob[blen] = '\0';
    json_t *big = json_pack("{s:s}", "blob", blob);
    assert_int_equal(ag_store_begin(s), 0);
    assert_int_equal(ag_events_publish(ev, "test.made", "s", big, NULL, NULL), AG_ETOOBIG);
    assert_int_equal(ag_store_rollback(s), 0);
    json_decref(big);
    ag_free(blob);
    json_decref(data);

    /* Subscriptions: names and patterns are checked. */
    static const char *const good[] = { "order.*", "payment.captured" };
    static const char *const bad_topics[] = { "Order.*" };
    assert_int_equal(ag_events_subscribe(ev, "Bad Name", good, 2, nop_handler, NULL), AG_EINVAL);
    assert_int_equal(ag_events_subscribe_ex(ev, "ok-name", bad_topics, 1, NULL, nop_handler, NULL),
                     AG_EINVAL);
    assert_int_equal(ag_events_subscribe(ev, "ok-name", good, 2, nop_handler, NULL), 0);
    assert_int_equal(ag_events_subscribe(ev, "ok-name", good, 1, nop_handler, NULL), AG_EINVAL);
    assert_int_equal(ag_events_ready(ev), AG_EUNAVAIL); /* not started */

    /* Stop before start: closes at once, callback from the loop. */
    int stopped = 0;
    ag_events_stop(ev, 0, on_stopped, &stopped);
    assert_int_equal(stopped, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(stopped, 1);
    ag_http_client_close(client, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ag_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cloudevent_fields),
        cmocka_unit_test(test_cloudevent_rejects),
        cmocka_unit_test(test_names_and_patterns),
        cmocka_unit_test(test_schema_versioned_and_idempotent),
        cmocka_unit_test(test_outbox_take_in_order),
        cmocka_unit_test(test_outbox_take_bytes_and_failed),
        cmocka_unit_test(test_outbox_take_store_error),
        cmocka_unit_test(test_housekeeping),
        cmocka_unit_test(test_inbox_duplicates),
        cmocka_unit_test(test_publish_needs_transaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
