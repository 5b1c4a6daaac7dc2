/* SPDX-License-Identifier: MIT */
/* Unit tests of the bus domain: name and pattern rules, ack ids, JSON string
 * output, the publish scanner and the other request bodies, the hash table,
 * the timer heap and the delivery index (per-subject order, leases, delays,
 * holds, replays). */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"
#include "index.h"

/* ---- Names, patterns, ack ids, JSON ---- */

static void
test_name_rules(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        { "a", true },      { "order.created", true },  { "0rder_x-y.z", true },
        { "", false },      { ".order", false },        { "-x", false },
        { "Order", false }, { "order created", false }, { "order*", false },
        { "ordér", false }, { "a/b", false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++)
        assert_int_equal(bus_name_is_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
    char longest[BUS_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    assert_true(bus_name_is_valid(longest, BUS_NAME_MAX));
    assert_false(bus_name_is_valid(longest, BUS_NAME_MAX + 1));
}

static void
test_pattern_rules(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *p;
        bool ok;
    } valid[] = {
        { "*", true },       { "order.*", true }, { "order.created", true }, { "a.b.*", true },
        { "order*", false }, { ".*", false },     { "*.created", false },    { "order.*.x", false },
        { "**", false },     { "", false },       { "Order.*", false },      { "order.", true },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(valid); i++) {
        if (bus_pattern_is_valid(valid[i].p) != valid[i].ok)
            fail_msg("pattern '%s' should be %s", valid[i].p, valid[i].ok ? "valid" : "invalid");
    }
    static const struct {
        const char *p;
        const char *topic;
        bool match;
    } cases[] = {
        { "*", "anything", true },
        { "order.*", "order.created", true },
        { "order.*", "order.x.y", true },
        { "order.*", "order", false },
        { "order.*", "order.", false },
        { "order.*", "orders.created", false },
        { "order.*", "payment.captured", false },
        { "payment.captured", "payment.captured", true },
        { "payment.captured", "payment.captured2", false },
        { "payment.captured", "payment.capture", false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        if (bus_pattern_match(cases[i].p, cases[i].topic, strlen(cases[i].topic)) != cases[i].match)
            fail_msg("'%s' vs '%s' should %s", cases[i].p, cases[i].topic,
                     cases[i].match ? "match" : "not match");
    }
}

static void
test_ack_ids(void **state)
{
    AG_UNUSED(state);
    char buf[BUS_ACK_ID_LEN];
    bus_ack_id_format(INT64_MAX, UINT64_MAX, buf);
    int64_t seq;
    uint64_t token;
    assert_int_equal(bus_ack_id_parse(buf, &seq, &token), 0);
    assert_true(seq == INT64_MAX);
    assert_true(token == UINT64_MAX);
    bus_ack_id_format(42, 7, buf);
    assert_string_equal(buf, "42.7");
    static const char *const bad[] = { "",    "42",    "42.",   ".7",
                                       "0.7", "-1.7",  "42.0",  "42.7.1",
                                       "x.7", "42.7x", " 42.7", "42.99999999999999999999" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        if (bus_ack_id_parse(bad[i], &seq, &token) != AG_EINVAL)
            fail_msg("ack id '%s' should be rejected", bad[i]);
    }
}

static void
test_json_string(void **state)
{
    AG_UNUSED(state);
    struct ag_buf b = AG_BUF_INIT(0);
    bus_buf_append_i64(&b, 0);
    ag_buf_append_char(&b, ' ');
    bus_buf_append_i64(&b, -42);
    ag_buf_append_char(&b, ' ');
    bus_buf_append_i64(&b, INT64_MIN);
    ag_buf_append_char(&b, ' ');
    bus_buf_append_u64(&b, UINT64_MAX);
    assert_string_equal(ag_buf_cstr(&b), "0 -42 -9223372036854775808 18446744073709551615");
    ag_buf_reset(&b);
    const char in[] = "a\"b\\c\n\x01\x1f\xc3\xa9";
    assert_int_equal(bus_json_append_string(&b, in, sizeof(in) - 1), 0);
    assert_string_equal(ag_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\\u001f\xc3\xa9\"");
    /* What comes out parses back to what went in. */
    json_t *j = json_loads(ag_buf_cstr(&b), JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), in);
    json_decref(j);
    ag_buf_release(&b);
}

/* ---- Request bodies ---- */

/* Parse 'body' as a publish; returns the error fields joined with ',' in
 * 'got' ("" when valid), or "SYNTAX" for malformed JSON. */
static int
publish_case(const char *body, size_t len, char *got, size_t cap, struct ag_pool *pool,
             struct bus_msg_in **msgs, size_t *n)
{
    struct ag_valid v;
    ag_valid_init(&v);
    char err[160];
    int rc = bus_publish_parse(&v, body, len, pool, msgs, n, err, sizeof(err));
    if (rc == AG_EPARSE)
        snprintf(got, cap, "SYNTAX");
    else
        ag_test_error_fields(&v, got, cap);
    ag_valid_release(&v);
    return rc;
}

static void
test_publish_validation_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *body;
        const char *fields; /* expected error fields, "" for valid */
    } cases[] = {
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"order.created\",\"data\":{}}]}", "" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"subject\":\"k\",\"data\":null}]}", "" },
        { " {\"messages\" : [ {\"data\":1 , \"subject\":null,\"topic\":\"t\",\"id\":\"\\u00e9\"} ] "
          "} ",
          "" },
        { "{}", "messages" },
        { "{\"messages\":[]}", "messages" },
        { "{\"messages\":{}}", "messages" },
        { "{\"messages\":null}", "messages" },
        { "{\"messages\":[1]}", "messages[0]" },
        { "{\"messages\":[{}]}", "messages[0].id,messages[0].topic,messages[0].data" },
        { "{\"messages\":[{\"id\":\"\",\"topic\":\"Bad\",\"data\":1}]}",
          "messages[0].id,messages[0].topic" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"\",\"data\":1}]}", "messages[0].topic" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":1,\"x\":2}]}", "messages[0].x" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":1}],\"y\":1}", "y" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"subject\":5,\"data\":1}]}",
          "messages[0].subject" },
        { "{\"messages\":[{\"id\":null,\"topic\":[\"t\"],\"data\":1}]}",
          "messages[0].id,messages[0].topic" },
        /* Malformed JSON is a 400, whatever the fields. */
        { "", "SYNTAX" },
        { "[]", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":1}]} x", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":01}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":[1,]}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":{\"a\" 1}}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"id\":\"2\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[],\"messages\":[]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\\u0000\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\\ud800\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\\q\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\xc3\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\xc0\xaf\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"a\tb\",\"topic\":\"t\",\"data\":1}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":tru}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":-}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":1.e5}]}", "SYNTAX" },
        { "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":\"x}]}", "SYNTAX" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_pool *pool = ag_pool_new(0);
        struct bus_msg_in *msgs = NULL;
        size_t n = 0;
        char got[512];
        int rc =
            publish_case(cases[i].body, strlen(cases[i].body), got, sizeof(got), pool, &msgs, &n);
        if (strcmp(got, cases[i].fields) != 0 || (rc == 0) != (cases[i].fields[0] == '\0'))
            fail_msg("case %zu %s: errors '%s', want '%s'", i, cases[i].body, got, cases[i].fields);
        ag_pool_free(pool);
    }
}

static void
test_publish_keeps_data_verbatim(void **state)
{
    AG_UNUSED(state);
    const char body[] = "{\"messages\":[{\"id\":\"a\\\"b\",\"topic\":\"t.x\",\"subject\":\"s\\n\","
                        "\"data\": {\"k\" : [1, 2.50, \"\\u00e9\"], \"n\":null} },"
                        "{\"data\":\"x\",\"topic\":\"t\",\"id\":\"\\ud83d\\ude00\\u00e9/\\/\"}]}";
    struct ag_pool *pool = ag_pool_new(0);
    struct bus_msg_in *msgs;
    size_t n;
    char got[256];
    assert_int_equal(publish_case(body, sizeof(body) - 1, got, sizeof(got), pool, &msgs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(msgs[0].id, "a\"b");
    assert_string_equal(msgs[0].topic, "t.x");
    assert_int_equal(msgs[0].subject_len, 2);
    assert_memory_equal(msgs[0].subject, "s\n", 2);
    const char want[] = "{\"k\" : [1, 2.50, \"\\u00e9\"], \"n\":null}";
    assert_int_equal(msgs[0].data_len, sizeof(want) - 1);
    assert_memory_equal(msgs[0].data, want, sizeof(want) - 1);
    assert_int_equal(msgs[1].subject_len, 0);
    assert_string_equal(msgs[1].subject, "");
    assert_int_equal(msgs[1].data_len, 3);
    assert_string_equal(msgs[1].id, "\xf0\x9f\x98\x80\xc3\xa9//");
    ag_pool_free(pool);
}

static void
test_publish_limits(void **state)
{
    AG_UNUSED(state);
    struct ag_pool *pool = ag_pool_new(0);
    struct ag_buf b = AG_BUF_INIT(0);
    /* data may be 256 KiB as sent (a string: two quotes). */
    for (int extra = 0; extra <= 1; extra++) {
        ag_buf_reset(&b);
        ag_buf_append_cstr(&b, "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":\"");
        for (int i = 0; i < BUS_DATA_MAX - 2 + extra; i++)
            ag_buf_append_char(&b, 'x');
        ag_buf_append_cstr(&b, "\"}]}");
        struct bus_msg_in *msgs;
        size_t n;
        char got[128];
        publish_case(b.data, b.len, got, sizeof(got), pool, &msgs, &n);
        assert_string_equal(got, extra ? "messages[0].data" : "");
        if (!extra)
            assert_int_equal(msgs[0].data_len, BUS_DATA_MAX);
    }
    /* 1000 messages are fine, 1001 one too many. */
    for (int count = BUS_BATCH_MAX; count <= BUS_BATCH_MAX + 1; count++) {
        ag_buf_reset(&b);
        ag_buf_append_cstr(&b, "{\"messages\":[");
        for (int i = 0; i < count; i++)
            ag_buf_appendf(&b, "%s{\"id\":\"m%d\",\"topic\":\"t\",\"data\":%d}", i ? "," : "", i,
                           i);
        ag_buf_append_cstr(&b, "]}");
        struct bus_msg_in *msgs;
        size_t n;
        char got[128];
        publish_case(b.data, b.len, got, sizeof(got), pool, &msgs, &n);
        assert_string_equal(got, count > BUS_BATCH_MAX ? "messages" : "");
        if (count == BUS_BATCH_MAX) {
            assert_int_equal(n, BUS_BATCH_MAX);
            assert_string_equal(msgs[999].id, "m999");
        }
    }
    /* Deep nesting is refused rather than recursing without bound. */
    ag_buf_reset(&b);
    ag_buf_append_cstr(&b, "{\"messages\":[{\"id\":\"1\",\"topic\":\"t\",\"data\":");
    for (int i = 0; i < 100000; i++)
        ag_buf_append_char(&b, '[');
    struct bus_msg_in *msgs;
    size_t n;
    char got[128];
    assert_int_equal(publish_case(b.data, b.len, got, sizeof(got), pool, &msgs, &n), AG_EPARSE);
    ag_buf_release(&b);
    ag_pool_free(pool);
}

static void
test_sub_config(void **state)
{
    AG_UNUSED(state);
    struct ag_valid v;
    ag_valid_init(&v);
    struct bus_sub_config c;
    json_t *body = ag_test_json("{\"topics\":[\"order.*\",\"*\"]}");
    assert_true(bus_sub_config_from_json(&v, body, &c));
    assert_int_equal(c.npatterns, 2);
    assert_string_equal(c.patterns[0], "order.*");
    assert_int_equal(c.ack_deadline_ms, BUS_ACK_DEADLINE_DEF);
    assert_int_equal(c.max_attempts, BUS_ATTEMPTS_DEF);
    assert_int_equal(c.retry_delay_ms, BUS_RETRY_DELAY_DEF);
    json_decref(body);
    ag_valid_release(&v);

    static const struct {
        const char *body;
        const char *fields;
    } cases[] = {
        { "{}", "topics" },
        { "{\"topics\":[]}", "topics" },
        { "{\"topics\":[\"order.*.x\", 3]}", "topics[0],topics[1]" },
        { "{\"topics\":[\"a\"],\"ack_deadline_ms\":99,\"max_attempts\":0,\"retry_delay_ms\":-1}",
          "ack_deadline_ms,max_attempts,retry_delay_ms" },
        { "{\"topics\":[\"a\"],\"other\":1}", "other" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        body = ag_test_json(cases[i].body);
        ag_valid_init(&v);
        assert_false(bus_sub_config_from_json(&v, body, &c));
        char got[256];
        ag_test_error_fields(&v, got, sizeof(got));
        if (strcmp(got, cases[i].fields) != 0)
            fail_msg("case %zu: errors '%s', want '%s'", i, got, cases[i].fields);
        ag_valid_release(&v);
        json_decref(body);
    }
}

static void
test_pull_ack_replay_bodies(void **state)
{
    AG_UNUSED(state);
    struct ag_pool *pool = ag_pool_new(0);
    struct ag_valid v;
    int64_t max;
    int64_t wait;
    json_t *body = ag_test_json("{}");
    ag_valid_init(&v);
    assert_true(bus_pull_from_json(&v, body, &max, &wait));
    assert_int_equal(max, BUS_PULL_DEF);
    assert_int_equal(wait, BUS_WAIT_DEF_MS);
    ag_valid_release(&v);
    json_decref(body);
    body = ag_test_json("{\"max_messages\":0,\"wait_ms\":120001}");
    ag_valid_init(&v);
    assert_false(bus_pull_from_json(&v, body, &max, &wait));
    char got[256];
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "max_messages,wait_ms");
    ag_valid_release(&v);
    json_decref(body);

    struct bus_ack_ref *refs;
    size_t n;
    int64_t delay;
    const char *err;
    body = ag_test_json("{\"ack_ids\":[\"1.2\",\"3.4\"],\"delay_ms\":500,\"error\":\"boom\"}");
    ag_valid_init(&v);
    assert_true(bus_acks_from_json(&v, body, true, pool, &refs, &n, &delay, &err));
    assert_int_equal(n, 2);
    assert_int_equal(refs[1].seq, 3);
    assert_int_equal(refs[1].token, 4);
    assert_int_equal(delay, 500);
    assert_string_equal(err, "boom");
    ag_valid_release(&v);
    /* An ack takes neither delay_ms nor error. */
    ag_valid_init(&v);
    assert_false(bus_acks_from_json(&v, body, false, pool, &refs, &n, &delay, &err));
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "delay_ms,error");
    ag_valid_release(&v);
    json_decref(body);
    body = ag_test_json("{\"ack_ids\":[\"1.2\",\"nope\",7]}");
    ag_valid_init(&v);
    assert_false(bus_acks_from_json(&v, body, false, pool, &refs, &n, &delay, &err));
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "ack_ids[1],ack_ids[2]");
    ag_valid_release(&v);
    json_decref(body);

    int64_t *seqs;
    body = ag_test_json("{}");
    ag_valid_init(&v);
    assert_true(bus_replay_from_json(&v, body, pool, &seqs, &n));
    assert_null(seqs);
    assert_int_equal(n, 0);
    ag_valid_release(&v);
    json_decref(body);
    body = ag_test_json("{\"seqs\":[5,0,\"x\"]}");
    ag_valid_init(&v);
    assert_false(bus_replay_from_json(&v, body, pool, &seqs, &n));
    ag_test_error_fields(&v, got, sizeof(got));
    assert_string_equal(got, "seqs[1],seqs[2]");
    ag_valid_release(&v);
    json_decref(body);
    ag_pool_free(pool);
}

/* ---- Hash table and heap ---- */

struct item {
    struct bus_hnode node;
    int64_t key;
};

static bool
item_eq(const struct bus_hnode *n, const void *key)
{
    return BUS_CONTAINER(n, struct item, node)->key == *(const int64_t *)key;
}

static void
test_htab(void **state)
{
    AG_UNUSED(state);
    enum { N = 1000 };
    struct item *items = ag_calloc(N, sizeof(*items));
    struct bus_htab t;
    bus_htab_init(&t);
    int64_t missing = 5;
    assert_null(bus_htab_find(&t, bus_hash_i64(missing), item_eq, &missing));
    for (int64_t i = 0; i < N; i++) {
        items[i].key = i;
        bus_htab_insert(&t, &items[i].node, bus_hash_i64(i));
    }
    assert_int_equal(t.count, N);
    for (int64_t i = 0; i < N; i += 2)
        bus_htab_remove(&t, &items[i].node);
    for (int64_t i = 0; i < N; i++) {
        struct bus_hnode *n = bus_htab_find(&t, bus_hash_i64(i), item_eq, &i);
        if ((i % 2 == 1) != (n != NULL))
            fail_msg("key %lld: found %d", (long long)i, n != NULL);
    }
    size_t pos = 0;
    size_t seen = 0;
    for (struct bus_hnode *n = bus_htab_next(&t, &pos, NULL); n != NULL;
         n = bus_htab_next(&t, &pos, n)) {
        assert_int_equal(BUS_CONTAINER(n, struct item, node)->key % 2, 1);
        seen++;
    }
    assert_int_equal(seen, N / 2);
    bus_htab_release(&t);
    ag_free(items);
}

static void
test_heap_order_and_remove(void **state)
{
    AG_UNUSED(state);
    enum { N = 500 };
    struct bus_timed *v = ag_calloc(N, sizeof(*v));
    struct bus_heap h;
    bus_heap_init(&h);
    uint64_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        v[i].due = x >> 40;
        v[i].idx = BUS_HEAP_NONE;
        bus_heap_push(&h, &v[i]);
    }
    /* Remove every third from the middle of the heap. */
    for (size_t i = 0; i < N; i += 3)
        bus_heap_remove(&h, &v[i]);
    uint64_t last = 0;
    size_t popped = 0;
    struct bus_timed *t;
    while ((t = bus_heap_top(&h)) != NULL) {
        assert_true(t->due >= last);
        last = t->due;
        bus_heap_remove(&h, t);
        assert_true(t->idx == BUS_HEAP_NONE);
        popped++;
    }
    assert_int_equal(popped, N - (N + 2) / 3);
    bus_heap_release(&h);
    ag_free(v);
}

/* ---- Delivery index ---- */

/* The seqs of the ready list, joined with ','. */
static void
ready_seqs(const struct bus_q *q, char *out, size_t cap)
{
    out[0] = '\0';
    for (const struct bus_dlv *d = q->ready.head; d != NULL; d = d->next) {
        char n[24];
        snprintf(n, sizeof(n), "%s%lld", out[0] ? "," : "", (long long)d->seq);
        strncat(out, n, cap - strlen(out) - 1);
    }
}

static void
test_subject_order(void **state)
{
    AG_UNUSED(state);
    struct bus_heap h;
    bus_heap_init(&h);
    struct bus_q q;
    bus_q_init(&q, &h, NULL);
    uint64_t now = 1000;
    bus_q_add(&q, 1, "a", 1, 0, 0, now);
    bus_q_add(&q, 2, "b", 1, 0, 0, now);
    bus_q_add(&q, 3, "a", 1, 0, 0, now);
    bus_q_add(&q, 4, "", 0, 0, 0, now);
    bus_q_add(&q, 5, "", 0, 0, 0, now);
    bus_q_add(&q, 6, "a", 1, 0, 0, now);
    assert_null(bus_q_add(&q, 6, "a", 1, 0, 0, now)); /* already present */
    char got[128];
    ready_seqs(&q, got, sizeof(got));
    assert_string_equal(got, "1,2,4,5");
    assert_int_equal(q.n, 6);

    uint64_t token = 100;
    struct bus_dlv *out[8];
    assert_int_equal(bus_q_take(&q, now, 500, &token, out, 8), 4);
    assert_int_equal(out[0]->seq, 1);
    assert_int_equal(out[0]->attempts, 1);
    assert_int_equal(out[0]->lease, 101);
    assert_int_equal(out[3]->lease, 104);
    assert_int_equal(q.nleased, 4);
    assert_int_equal(q.nready, 0);
    assert_true(bus_heap_top(&h)->due == now + 500);

    /* Acking 1 lets 3 (same subject) through; 6 still waits behind 3. */
    bus_q_remove(out[0], now);
    ready_seqs(&q, got, sizeof(got));
    assert_string_equal(got, "3");
    struct bus_dlv *three;
    assert_int_equal(bus_q_take(&q, now, 500, &token, &three, 1), 1);
    /* A nack with delay keeps the subject: 6 stays waiting. */
    bus_q_retry(three, now, 200);
    assert_int_equal(three->state, BUS_DLV_DELAYED);
    assert_int_equal(q.ndelayed, 1);
    assert_true(bus_q_find(&q, 6)->state == BUS_DLV_WAITING);
    bus_q_wake(three);
    ready_seqs(&q, got, sizeof(got));
    assert_string_equal(got, "3");
    assert_int_equal(bus_q_take(&q, now, 500, &token, &three, 1), 1);
    assert_int_equal(three->attempts, 2);
    /* Dead-lettering holds the subject until the entry is removed. */
    bus_q_hold(three);
    assert_int_equal(q.nheld, 1);
    ready_seqs(&q, got, sizeof(got));
    assert_string_equal(got, "");
    bus_q_remove(three, now);
    ready_seqs(&q, got, sizeof(got));
    assert_string_equal(got, "6");
    assert_int_equal(q.nheld, 0);
    bus_q_release(&q);
    assert_int_equal(h.n, 0);
    bus_heap_release(&h);
}

static void
test_not_before_and_replay(void **state)
{
    AG_UNUSED(state);
    struct bus_heap h;
    bus_heap_init(&h);
    struct bus_q q;
    bus_q_init(&q, &h, NULL);
    uint64_t now = 5000;
    /* Loaded from disk with a nack delay still running. */
    struct bus_dlv *d = bus_q_add(&q, 10, "k", 1, 2, now + 300, now);
    assert_int_equal(d->state, BUS_DLV_DELAYED);
    assert_int_equal(d->attempts, 2);
    bus_q_add(&q, 11, "k", 1, 0, 0, now);
    /* A replayed older dead letter takes the subject from an undelivered
     * head... */
    struct bus_dlv *old = bus_q_add(&q, 3, "k", 1, 0, 0, now);
    assert_int_equal(old->state, BUS_DLV_READY);
    assert_int_equal(d->state, BUS_DLV_WAITING);
    assert_int_equal(q.ndelayed, 0);
    uint64_t token = 0;
    struct bus_dlv *t;
    assert_int_equal(bus_q_take(&q, now, 100, &token, &t, 1), 1);
    assert_ptr_equal(t, old);
    /* ...but not from one in flight: it queues first behind it. */
    struct bus_dlv *older = bus_q_add(&q, 2, "k", 1, 0, 0, now);
    assert_int_equal(older->state, BUS_DLV_WAITING);
    bus_q_remove(old, now);
    assert_int_equal(older->state, BUS_DLV_READY);
    bus_q_remove(older, now);
    /* 10 comes next and keeps its delay. */
    assert_int_equal(d->state, BUS_DLV_DELAYED);
    bus_q_remove(d, now);
    assert_int_equal(bus_q_find(&q, 11)->state, BUS_DLV_READY);
    bus_q_release(&q);
    bus_heap_release(&h);
}

/* bus_json_member finds a top-level member of a message's data (the
 * traceparent of the bus's spans), never one nested in a value. */
static void
test_json_member(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *key;
        const char *want; /* raw value, or NULL: not found */
    } cases[] = {
        { "{\"traceparent\":\"x\"}", "traceparent", "\"x\"" },
        { " { \"a\" : 1 , \"traceparent\" : \"t\" } ", "traceparent", "\"t\"" },
        { "{\"data\":{\"traceparent\":\"inner\"},\"traceparent\":\"outer\"}", "traceparent",
          "\"outer\"" },
        { "{\"data\":{\"traceparent\":\"inner\"}}", "traceparent", NULL },
        { "{\"s\":\"\\\"traceparent\\\":\",\"n\":[1,{\"x\":\"]}\"}],\"k\":true}", "k", "true" },
        { "{\"k\":-1.5e3}", "k", "-1.5e3" },
        { "{\"k\":null}", "k", "null" },
        { "{\"k\":{\"a\":[1,2]}}", "k", "{\"a\":[1,2]}" },
        { "[\"traceparent\",\"x\"]", "traceparent", NULL },
        { "\"traceparent\"", "traceparent", NULL },
        { "{}", "k", NULL },
        { "{\"k\":\"unterminated", "k", NULL },
        { "", "k", NULL },
        { "{\"kk\":1}", "k", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v = NULL;
        size_t n = 0;
        bool found = bus_json_member(cases[i].json, strlen(cases[i].json), cases[i].key, &v, &n);
        if (cases[i].want == NULL) {
            assert_false(found);
            continue;
        }
        assert_true(found);
        assert_int_equal(n, strlen(cases[i].want));
        assert_memory_equal(v, cases[i].want, n);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_pattern_rules),
        cmocka_unit_test(test_ack_ids),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_publish_validation_table),
        cmocka_unit_test(test_publish_keeps_data_verbatim),
        cmocka_unit_test(test_publish_limits),
        cmocka_unit_test(test_sub_config),
        cmocka_unit_test(test_pull_ack_replay_bodies),
        cmocka_unit_test(test_json_member),
        cmocka_unit_test(test_htab),
        cmocka_unit_test(test_heap_order_and_remove),
        cmocka_unit_test(test_subject_order),
        cmocka_unit_test(test_not_before_and_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
