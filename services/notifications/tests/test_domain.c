/* SPDX-License-Identifier: MIT */
/* Unit tests of the notifications domain: template rendering and checks,
 * addresses and masking, the delivery transition and its backoff, the
 * RFC 5322 message (header injection, RFC 2047, quoted-printable), dates
 * and cursors. */
#include "agora/base.h"

#include "agora/err.h"
#include "agora_test.h"
#include "domain.h"

/* ---- Templates ---- */

static void
test_render_table(void **state)
{
    AG_UNUSED(state);
    static const char CTX[] =
        "{\"order_id\":\"o-1\",\"n\":42,\"ok\":true,\"no\":false,\"nil\":null,"
        "\"total\":{\"amount\":123456,\"currency\":\"EUR\"},\"yen\":{\"amount\":500,"
        "\"currency\":\"JPY\"},\"bad\":{\"amount\":\"1\",\"currency\":\"EUR\"},"
        "\"lines\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"evil\":\"a\\r\\nBcc: x\\u0007\","
        "\"r\":1.5,\"why\":\"out_of_stock\"}";
    static const struct {
        const char *tpl;
        bool single_line;
        const char *want;
    } cases[] = {
        { "plain text", false, "plain text" },
        { "Order {{order_id}}!", false, "Order o-1!" },
        { "{{ order_id }}", false, "o-1" },
        { "{{n}} {{ok}} {{no}} [{{nil}}] {{r}}", false, "42 true false [] 1.5" },
        { "{{total.amount}} {{total.currency}}", false, "123456 EUR" },
        { "{{money total}} / {{money yen}} / [{{money bad}}] [{{money order_id}}]", false,
          "1234.56 EUR / 500 JPY / [] []" },
        { "{{count lines}} {{lines.1.sku}} [{{lines.9.sku}}] [{{lines.x}}]", false, "2 B [] []" },
        { "{{humanize why}} [{{humanize n}}] [{{humanize total}}]", false, "out of stock [] []" },
        { "[{{total}}] [{{lines}}] [{{missing}}] [{{a.b.c}}]", false, "[] [] [] []" },
        { "[{{shout order_id}}] [{{money}}] [{{a..b}}] [{{a b c}}]", false, "[] [] [] []" },
        { "{{evil}}", false, "a  Bcc: x " },
        { "line1\nline2 {{order_id}}", false, "line1\nline2 o-1" },
        { "line1\r\nline2", true, "line1  line2" },
        { "open {{order_id", false, "open {{order_id" },
        { "}} {{}} {", false, "}}  {" },
        { "", false, "" },
    };
    json_t *ctx = ag_test_json(CTX);
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_buf out = AG_BUF_INIT(0);
        assert_int_equal(notify_render(cases[i].tpl, ctx, cases[i].single_line, 1000, &out), 0);
        if (strcmp(ag_buf_cstr(&out), cases[i].want) != 0)
            fail_msg("case %zu: '%s' rendered '%s', want '%s'", i, cases[i].tpl, ag_buf_cstr(&out),
                     cases[i].want);
        ag_buf_release(&out);
    }
    json_decref(ctx);
}

static void
test_render_bounded_utf8(void **state)
{
    AG_UNUSED(state);
    json_t *ctx = ag_test_json("{\"s\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}"); /* 8 bytes */
    struct ag_buf out = AG_BUF_INIT(0);
    notify_render("x{{s}}", ctx, false, 4, &out);
    /* "x" + one whole e-acute (2 bytes) fit in 4; half of the next does not. */
    assert_string_equal(ag_buf_cstr(&out), "x\xc3\xa9");
    ag_buf_release(&out);
    notify_render("abcdef", ctx, false, 3, &out);
    assert_string_equal(ag_buf_cstr(&out), "abc");
    ag_buf_release(&out);
    json_decref(ctx);
}

static void
test_template_check(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *tpl;
        size_t errors;
    } cases[] = {
        { "Hello {{name}}, {{money total}} for {{count lines}} {{lines.0.sku}}", 0 },
        { "no placeholders", 0 },
        { "{{ name }}", 0 },
        { "{{name", 1 },
        { "{{}}", 1 },
        { "{{shout name}}", 1 },
        { "{{money}} {{a..b}} {{.a}} {{a.}}", 3 },
        { "{{a b c}}", 1 },
        { "{{na\nme}}", 1 },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct ag_valid v;
        ag_valid_init(&v);
        bool ok = notify_template_check(&v, "body", cases[i].tpl);
        if (ok != (cases[i].errors == 0) || json_array_size(v.errors) != cases[i].errors)
            fail_msg("case %zu '%s': ok %d with %zu errors, want %zu", i, cases[i].tpl, ok,
                     json_array_size(v.errors), cases[i].errors);
        ag_valid_release(&v);
    }
}

/* ---- Addresses ---- */

static void
test_email_validity(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        { "ada@example.com", true },
        { "a.b+tag@mail.example.co.uk", true },
        { "o'brien@example.com", true },
        { "user@localhost", true },
        { "", false },
        { "@example.com", false },
        { "ada@", false },
        { "ada", false },
        { "ada@@example.com", false },
        { ".ada@example.com", false },
        { "ada.@example.com", false },
        { "a..b@example.com", false },
        { "ada@-example.com", false },
        { "ada@example-.com", false },
        { "ada@example..com", false },
        { "ada@exa_mple.com", false },
        { "ada lovelace@example.com", false },
        { "ada@example.com>\r\nRCPT TO:<x@y.z", false },
        { "ada@example.com\n", false },
        { "<ada@example.com>", false },
        { "ad,a@example.com", false },
        { "z\xc3\xab@example.com", false },
        { "ada@[127.0.0.1]", false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        if (notify_email_is_valid(cases[i].s) != cases[i].ok)
            fail_msg("case %zu '%s': want %s", i, cases[i].s, cases[i].ok ? "valid" : "invalid");
    }
    char longer[300];
    memset(longer, 'a', sizeof(longer));
    memcpy(longer + 64, "@", 1);
    longer[299] = '\0';
    assert_false(notify_email_is_valid(longer));
}

static void
test_email_mask(void **state)
{
    AG_UNUSED(state);
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        { "john@example.com", "j***@example.com" },
        { "j@example.com", "j***@example.com" },
        { "\xc3\xa9lise@example.com", "\xc3\xa9***@example.com" },
        { "", "" },
        { "nodomain", "n***" },
        { "@example.com", "***@example.com" },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        char out[NOTIFY_MASKED_MAX];
        notify_email_mask(cases[i].in, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    char tiny[6];
    notify_email_mask("john@example.com", tiny, sizeof(tiny));
    assert_string_equal(tiny, "j***@");
}

static void
test_mailbox_parse(void **state)
{
    AG_UNUSED(state);
    char name[64];
    char addr[64];
    assert_int_equal(
        notify_mailbox_parse("Agora <shop@agora.local>", name, sizeof(name), addr, sizeof(addr)),
        0);
    assert_string_equal(name, "Agora");
    assert_string_equal(addr, "shop@agora.local");
    assert_int_equal(
        notify_mailbox_parse(" \"Agora Shop\" <a@b.c> ", name, sizeof(name), addr, sizeof(addr)),
        0);
    assert_string_equal(name, "Agora Shop");
    assert_int_equal(notify_mailbox_parse("a@b.c", name, sizeof(name), addr, sizeof(addr)), 0);
    assert_string_equal(name, "");
    assert_string_equal(addr, "a@b.c");
    assert_int_equal(notify_mailbox_parse("Agora <a@b.c", name, sizeof(name), addr, sizeof(addr)),
                     AG_EINVAL);
    assert_int_equal(notify_mailbox_parse("Agora <nope>", name, sizeof(name), addr, sizeof(addr)),
                     AG_EINVAL);
    assert_int_equal(notify_mailbox_parse("", name, sizeof(name), addr, sizeof(addr)), AG_EINVAL);
}

static void
test_ids(void **state)
{
    AG_UNUSED(state);
    assert_true(notify_id_is_valid("01a20042-d275-7116-9799-520db413aeac"));
    assert_true(notify_id_is_valid("user.registered"));
    assert_false(notify_id_is_valid(""));
    assert_false(notify_id_is_valid(NULL));
    assert_false(notify_id_is_valid("a b"));
    assert_false(notify_id_is_valid("a/b"));
    char longer[NOTIFY_ID_MAX + 2];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[NOTIFY_ID_MAX + 1] = '\0';
    assert_false(notify_id_is_valid(longer));
    longer[NOTIFY_ID_MAX] = '\0';
    assert_true(notify_id_is_valid(longer));
}

/* ---- Delivery states ---- */

static void
test_status_names(void **state)
{
    AG_UNUSED(state);
    const char *names[] = { "pending", "sent", "failed", "recorded" };
    for (size_t i = 0; i < AG_ARRAY_SIZE(names); i++) {
        enum notify_status st;
        assert_int_equal(notify_status_parse(names[i], &st), 0);
        assert_string_equal(notify_status_name(st), names[i]);
    }
    enum notify_status st;
    assert_int_equal(notify_status_parse("lost", &st), AG_EINVAL);
    assert_int_equal(notify_status_parse(NULL, &st), AG_EINVAL);
}

static void
test_transition_table(void **state)
{
    AG_UNUSED(state);
    static const struct {
        enum notify_status from;
        int64_t attempts;
        enum notify_attempt a;
        int rc;
        enum notify_status to;
        int64_t attempts_after;
        bool delayed;
    } cases[] = {
        { NOTIFY_PENDING, 0, NOTIFY_ATTEMPT_OK, 0, NOTIFY_SENT, 1, false },
        { NOTIFY_PENDING, 3, NOTIFY_ATTEMPT_OK, 0, NOTIFY_SENT, 4, false },
        { NOTIFY_PENDING, 0, NOTIFY_ATTEMPT_TRANSIENT, 0, NOTIFY_PENDING, 1, true },
        { NOTIFY_PENDING, 6, NOTIFY_ATTEMPT_TRANSIENT, 0, NOTIFY_PENDING, 7, true },
        { NOTIFY_PENDING, 7, NOTIFY_ATTEMPT_TRANSIENT, 0, NOTIFY_FAILED, 8, false },
        { NOTIFY_PENDING, 0, NOTIFY_ATTEMPT_PERMANENT, 0, NOTIFY_FAILED, 1, false },
        { NOTIFY_PENDING, 2, NOTIFY_ATTEMPT_CANCELLED, 0, NOTIFY_PENDING, 2, false },
        { NOTIFY_SENT, 1, NOTIFY_ATTEMPT_OK, AG_EINVAL, NOTIFY_SENT, 0, false },
        { NOTIFY_FAILED, 8, NOTIFY_ATTEMPT_TRANSIENT, AG_EINVAL, NOTIFY_SENT, 0, false },
        { NOTIFY_RECORDED, 0, NOTIFY_ATTEMPT_OK, AG_EINVAL, NOTIFY_SENT, 0, false },
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
        struct notify_transition t;
        int rc = notify_transition(cases[i].from, cases[i].attempts, cases[i].a, 8, 1000, 60000,
                                   12345, &t);
        assert_int_equal(rc, cases[i].rc);
        if (rc != 0)
            continue;
        if (t.status != cases[i].to || t.attempts != cases[i].attempts_after ||
            (t.delay_ms > 0) != cases[i].delayed)
            fail_msg("case %zu: got %s, %lld attempts, delay %llu", i, notify_status_name(t.status),
                     (long long)t.attempts, (unsigned long long)t.delay_ms);
    }
}

/* A retry waits between half the step and the step, the step doubling
 * from the base up to the maximum (the arithmetic is the chassis's
 * ag_backoff_equal_ms). */
static void
test_backoff_bounds(void **state)
{
    AG_UNUSED(state);
    uint64_t rnds[] = { 0, 1, 7, 999, UINT64_MAX };
    for (int64_t attempts = 1; attempts <= 80; attempts++) {
        uint64_t d = 1000;
        for (int64_t i = 1; i < attempts && d < 60000; i++)
            d = AG_MIN(d * 2, (uint64_t)60000);
        for (size_t r = 0; r < AG_ARRAY_SIZE(rnds); r++) {
            struct notify_transition t;
            assert_int_equal(notify_transition(NOTIFY_PENDING, attempts - 1,
                                               NOTIFY_ATTEMPT_TRANSIENT, 1000, 1000, 60000, rnds[r],
                                               &t),
                             0);
            uint64_t b = t.delay_ms;
            if (b < d / 2 || b > d)
                fail_msg("attempt %lld: %llu outside [%llu, %llu]", (long long)attempts,
                         (unsigned long long)b, (unsigned long long)(d / 2), (unsigned long long)d);
        }
    }
}

static void
test_smtp_permanent(void **state)
{
    AG_UNUSED(state);
    assert_true(notify_smtp_is_permanent(550));
    assert_true(notify_smtp_is_permanent(554));
    assert_false(notify_smtp_is_permanent(0));
    assert_false(notify_smtp_is_permanent(421));
    assert_false(notify_smtp_is_permanent(451));
    assert_false(notify_smtp_is_permanent(535));
}

/* ---- Messages ---- */

/* The header block of 'msg' (before the first blank line), unfolded. */
static void
header_block(const char *msg, struct ag_buf *out)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    for (const char *p = msg; p < end; p++) {
        if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t')) {
            p += 1;
            continue;
        }
        ag_buf_append_char(out, *p);
    }
    ag_buf_append_cstr(out, "\r\n");
}

static size_t
count_lines_starting(const char *head, const char *prefix)
{
    size_t n = 0;
    size_t len = strlen(prefix);
    for (const char *p = head; p != NULL && *p != '\0';) {
        if (strncasecmp(p, prefix, len) == 0)
            n++;
        p = strstr(p, "\r\n");
        if (p != NULL)
            p += 2;
    }
    return n;
}

static void
test_mail_headers_resist_injection(void **state)
{
    AG_UNUSED(state);
    struct notify_mail m = {
        .from_name = "Agora",
        .from_addr = "shop@agora.local",
        .to_name = "Eve\r\nBcc: victim@example.com\r\n",
        .to_addr = "eve@example.com",
        .subject = "Hi\r\nBcc: victim@example.com\nX-Evil: 1",
        .body = "line one\nline two\r\n.\r\nafter dot",
        .message_id = "<id@agora.local>",
        .type = "user.registered\r\nX-Type: 1",
        .date_ms = 0,
    };
    struct ag_buf msg = AG_BUF_INIT(NOTIFY_MESSAGE_MAX);
    assert_int_equal(notify_mail_build(&m, &msg), 0);
    struct ag_buf head = AG_BUF_INIT(0);
    header_block(ag_buf_cstr(&msg), &head);
    const char *h = ag_buf_cstr(&head);
    assert_int_equal(count_lines_starting(h, "Bcc:"), 0);
    assert_int_equal(count_lines_starting(h, "X-Evil:"), 0);
    assert_int_equal(count_lines_starting(h, "X-Type:"), 0);
    assert_int_equal(count_lines_starting(h, "Subject:"), 1);
    assert_int_equal(count_lines_starting(h, "To:"), 1);
    assert_non_null(strstr(h, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
    assert_non_null(strstr(h, "From: Agora <shop@agora.local>\r\n"));
    assert_non_null(strstr(h, "To: \"Eve  Bcc: victim@example.com\" <eve@example.com>\r\n"));
    assert_non_null(strstr(h, "Subject: Hi  Bcc: victim@example.com X-Evil: 1\r\n"));
    assert_non_null(strstr(h, "Content-Transfer-Encoding: 7bit\r\n"));
    /* Every line ends in CRLF; no bare CR or LF anywhere. */
    const char *s = ag_buf_cstr(&msg);
    for (size_t i = 0; i < msg.len; i++) {
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
        if (s[i] == '\r')
            assert_true(s[i + 1] == '\n');
    }
    assert_non_null(strstr(s, "\r\n\r\nline one\r\nline two\r\n.\r\nafter dot\r\n"));
    ag_buf_release(&head);
    ag_buf_release(&msg);

    /* Invalid addresses never reach a header. */
    m.to_addr = "eve@example.com>\r\nRCPT TO:<x@y.z";
    assert_int_equal(notify_mail_build(&m, &msg), AG_EINVAL);
    assert_int_equal(msg.len, 0);
    ag_buf_release(&msg);
}

/* Decode the RFC 2047 B-words of 'v' ("=?UTF-8?B?..?=" separated by
 * folding white space) into 'out'. */
static void
decode_words(const char *v, struct ag_buf *out)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = v;
    while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
        p += 10;
        const char *end = strstr(p, "?=");
        assert_non_null(end);
        assert_true(end - p <= 64);
        uint32_t acc = 0;
        int bits = 0;
        for (; p < end; p++) {
            if (*p == '=')
                continue;
            acc = (acc << 6) | (uint32_t)(strchr(B64, *p) - B64);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                ag_buf_append_char(out, (char)((acc >> bits) & 0xff));
            }
        }
        p = end + 2;
    }
}

static void
test_mail_encodes_non_ascii(void **state)
{
    AG_UNUSED(state);
    const char *subject = "Bienvenue \xc3\xa0 Agora, Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac "
                          "with a subject long enough to need several encoded words";
    struct notify_mail m = {
        .from_name = "Agora",
        .from_addr = "shop@agora.local",
        .to_name = "Zo\xc3\xab",
        .to_addr = "zoe@example.com",
        .subject = subject,
        .body =
            "Caf\xc3\xa9 = caf\xc3\xa9 \n"
            "a long line: 0123456789012345678901234567890123456789012345678901234567890123456789"
            "012345678901234567890123456789\nend",
        .message_id = "<id@agora.local>",
        .type = "user.registered",
        .date_ms = 1795300000123,
    };
    struct ag_buf msg = AG_BUF_INIT(NOTIFY_MESSAGE_MAX);
    assert_int_equal(notify_mail_build(&m, &msg), 0);
    const char *s = ag_buf_cstr(&msg);
    /* Headers are 7-bit, lines short. */
    const char *body = strstr(s, "\r\n\r\n");
    for (const char *p = s; p < body; p++)
        assert_true((unsigned char)*p < 0x80);
    const char *line = s;
    while (line != NULL && *line != '\0') {
        const char *eol = strstr(line, "\r\n");
        assert_non_null(eol);
        assert_true(eol - line <= 78);
        line = eol + 2;
    }
    assert_non_null(strstr(s, "Content-Transfer-Encoding: quoted-printable\r\n"));
    assert_non_null(strstr(s, "Caf=C3=A9 =3D caf=C3=A9=20\r\n"));
    assert_non_null(strstr(s, "=\r\n"));
    struct ag_buf head = AG_BUF_INIT(0);
    header_block(s, &head);
    const char *subj = strstr(ag_buf_cstr(&head), "\r\nSubject: ");
    assert_non_null(subj);
    char value[1024];
    const char *eol = strstr(subj + 2, "\r\n");
    snprintf(value, sizeof(value), "%.*s", (int)(eol - subj - 11), subj + 11);
    struct ag_buf decoded = AG_BUF_INIT(0);
    decode_words(value, &decoded);
    assert_string_equal(ag_buf_cstr(&decoded), subject);
    ag_buf_release(&decoded);
    ag_buf_release(&head);
    ag_buf_release(&msg);
}

static void
test_rfc5322_date(void **state)
{
    AG_UNUSED(state);
    char d[NOTIFY_DATE_LEN];
    notify_rfc5322_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
    notify_rfc5322_date(951782400000, d); /* 2000-02-29 */
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 +0000");
    notify_rfc5322_date(1795300000123, d);
    assert_string_equal(d, "Sat, 21 Nov 2026 22:26:40 +0000");
    notify_rfc5322_date(-1000, d);
    assert_string_equal(d, "Wed, 31 Dec 1969 23:59:59 +0000");
}

/* ---- Cursors ---- */

static void
test_cursor_round_trip(void **state)
{
    AG_UNUSED(state);
    int64_t seqs[] = { 1, 2, 99, 123456789, INT64_MAX };
    for (size_t i = 0; i < AG_ARRAY_SIZE(seqs); i++) {
        char enc[NOTIFY_CURSOR_LEN];
        notify_cursor_encode(seqs[i], enc);
        int64_t back = 0;
        assert_int_equal(notify_cursor_decode(enc, &back), 0);
        assert_int_equal(back, seqs[i]);
    }
    const char *bad[] = {
        "", "x", "zzz", "czA", "!!!!", "c0", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    };
    for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
        int64_t back;
        if (notify_cursor_decode(bad[i], &back) == 0)
            fail_msg("cursor '%s' accepted as %lld", bad[i], (long long)back);
    }
}

/* ---- Representation ---- */

static void
test_record_to_json(void **state)
{
    AG_UNUSED(state);
    struct notify_record r = {
        .seq = 7,
        .id = "01a20042-d275-7116-9799-520db413aeac",
        .event_id = "e1",
        .type = "user.registered",
        .user_id = "u1",
        .channel = "email",
        .recipient = "john@example.com",
        .subject = "S",
        .body = "B",
        .status = NOTIFY_PENDING,
        .attempts = 2,
        .next_attempt_ms = 1000,
        .last_error = "smtp: down",
        .created_at = "2026-01-01T00:00:00.000Z",
    };
    json_t *j = notify_record_to_json(&r, false);
    assert_string_equal(json_string_value(json_object_get(j, "recipient")), "j***@example.com");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "pending");
    assert_true(json_is_null(json_object_get(j, "sent_at")));
    assert_null(json_object_get(j, "last_error"));
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
    json_decref(j);
    j = notify_record_to_json(&r, true);
    assert_string_equal(json_string_value(json_object_get(j, "last_error")), "smtp: down");
    assert_string_equal(json_string_value(json_object_get(j, "next_attempt_at")),
                        "1970-01-01T00:00:01.000Z");
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_render_bounded_utf8),
        cmocka_unit_test(test_template_check),
        cmocka_unit_test(test_email_validity),
        cmocka_unit_test(test_email_mask),
        cmocka_unit_test(test_mailbox_parse),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_smtp_permanent),
        cmocka_unit_test(test_mail_headers_resist_injection),
        cmocka_unit_test(test_mail_encodes_non_ascii),
        cmocka_unit_test(test_rfc5322_date),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_record_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
