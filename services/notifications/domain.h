/* SPDX-License-Identifier: MIT */
/* Notifications domain: templates with {{placeholders}}, header hygiene for
 * untrusted text, e-mail addresses and their masking, the RFC 5322 message,
 * the delivery state machine with its capped backoff, and page cursors.
 * Pure functions: no I/O, no database, no clock. */
#ifndef NOTIFY_DOMAIN_H
#define NOTIFY_DOMAIN_H

#include "agora/base.h"

#include <jansson.h>

#include "agora/buf.h"
#include "agora/json.h"
#include "agora/time.h"
#include "agora/uuid.h"

#define NOTIFY_SUBJECT_MAX     255         /* bytes of a rendered subject */
#define NOTIFY_BODY_MAX        (64 * 1024) /* bytes of a rendered body */
#define NOTIFY_TPL_SUBJECT_MAX 1000        /* code points of a subject template */
#define NOTIFY_TPL_BODY_MAX    20000       /* code points of a body template */
#define NOTIFY_ID_MAX          128         /* bytes of a user, order or event id */
#define NOTIFY_EMAIL_MAX       254         /* bytes of an address (RFC 5321) */
#define NOTIFY_NAME_MAX        200         /* bytes of a display name kept */
#define NOTIFY_ERROR_MAX       300         /* bytes of last_error kept */
#define NOTIFY_MASKED_MAX      (NOTIFY_EMAIL_MAX + 8)
#define NOTIFY_DATE_LEN        32           /* "Sat, 21 Nov 2026 22:30:00 +0000" + NUL */
#define NOTIFY_CURSOR_LEN      32           /* an encoded cursor + NUL */
#define NOTIFY_MESSAGE_MAX     (256 * 1024) /* bytes of a whole RFC 5322 message */

/* ---- Delivery states ----
 * recorded is terminal from the start (nothing to send); pending moves to
 * sent, to pending again (a retry later) or to failed. */
#define NOTIFY_STATUS_MAP(X)                                                                       \
    X(PENDING, "pending")                                                                          \
    X(SENT, "sent")                                                                                \
    X(FAILED, "failed")                                                                            \
    X(RECORDED, "recorded")

enum notify_status {
#define NOTIFY__STATUS_ENUM(name, str) NOTIFY_##name,
    NOTIFY_STATUS_MAP(NOTIFY__STATUS_ENUM)
#undef NOTIFY__STATUS_ENUM
};

/* "pending" for NOTIFY_PENDING...; static storage. */
const char *notify_status_name(enum notify_status st);

/* 0 and *out_st for a known name, AG_EINVAL otherwise. */
int notify_status_parse(const char *s, enum notify_status *out_st);

/* What one delivery attempt came to. */
enum notify_attempt {
    NOTIFY_ATTEMPT_OK = 0,    /* the server accepted the message */
    NOTIFY_ATTEMPT_TRANSIENT, /* try again later (unreachable, timeout, 4xx) */
    NOTIFY_ATTEMPT_PERMANENT, /* the server refused it for good (550, 551, 553, 554) */
    NOTIFY_ATTEMPT_CANCELLED, /* stopped by a shutdown: not an attempt at all */
};

/* The transition of a pending delivery after an attempt. */
struct notify_transition {
    enum notify_status status; /* the next state */
    int64_t attempts;          /* attempts after this one */
    uint64_t delay_ms;         /* pending: wait this long before the next attempt */
};

/* The one transition function of deliveries: from 'from' (only
 * NOTIFY_PENDING moves) with 'attempts' made so far, after outcome 'a', with
 * at most 'max_attempts', backoff 'base_ms' doubling up to 'max_ms' and the
 * random value 'rnd'. Returns 0, or AG_EINVAL for an illegal move (a
 * delivery that is not pending). */
int notify_transition(enum notify_status from, int64_t attempts, enum notify_attempt a,
                      int64_t max_attempts, uint64_t base_ms, uint64_t max_ms, uint64_t rnd,
                      struct notify_transition *out);

/* True for SMTP reply codes that mean the message will never be accepted
 * as it is (550, 551, 553, 554). */
bool notify_smtp_is_permanent(long code);

/* ---- Templates ----
 * Text with {{expr}} placeholders. 'expr' is a dotted path into the
 * context object ("order_id", "total.amount", "lines.0.sku") or a helper
 * and a path: "money total" (an {amount, currency} object formatted with
 * ag_money_format, "12.34 EUR"), "count lines" (number of elements) and
 * "humanize reason" (a string with '_' as spaces: "out of stock").
 * Strings render as they are, integers in decimal, booleans as true/false;
 * null, objects, arrays, unknown paths and unknown helpers render as "".
 * Control characters from the context are replaced with spaces, so a value
 * never starts a new line. A "{{" without a closing "}}" is literal text. */

/* Check the syntax of 'tpl': every placeholder is a path or a known helper
 * with a path. Errors are added to 'v' under 'field'; returns true when
 * valid. */
bool notify_template_check(struct ag_valid *v, const char *field, const char *tpl);

/* Render 'tpl' with 'ctx' (an object, borrowed) and append to 'out', at
 * most 'max' bytes (cut at a UTF-8 boundary past it). With 'single_line',
 * every control character of the template's own text also becomes a space
 * (for subjects). Returns 0; the output is always valid UTF-8 when 'tpl'
 * is. */
int notify_render(const char *tpl, const json_t *ctx, bool single_line, size_t max,
                  struct ag_buf *out);

/* ---- Identifiers and addresses ---- */

/* True when 's' is 1 to NOTIFY_ID_MAX bytes of [A-Za-z0-9._:-]. */
bool notify_id_is_valid(const char *s);

/* True when 's' is a plain ASCII addr-spec we send to: a dot-atom local
 * part (1-64 bytes), '@', a domain of letters, digits, '-' and dots; at most
 * NOTIFY_EMAIL_MAX bytes; nothing that could end a header or a command. */
bool notify_email_is_valid(const char *s);

/* Write 'email' masked into 'out' ('outlen' bytes, NOTIFY_MASKED_MAX
 * suffices): "j***@example.com"; "" for an empty address. */
void notify_email_mask(const char *email, char *out, size_t outlen);

/* Split a mailbox "Display Name <addr@example.com>" or a bare
 * "addr@example.com" into 'out_name' (may come out "") and 'out_addr'.
 * Returns 0, or AG_EINVAL when the address is not valid. */
int notify_mailbox_parse(const char *mailbox, char *out_name, size_t namelen, char *out_addr,
                         size_t addrlen);

/* Copy 's' into 'out' with every control character (C0, DEL) replaced by a
 * space and at most 'max' bytes kept (cut at a UTF-8 boundary): text fit for
 * one header line. */
void notify_text_one_line(const char *s, size_t max, struct ag_buf *out);

/* ---- Messages ---- */

/* "Sat, 21 Nov 2026 22:30:00 +0000" for 'unix_ms' (RFC 5322 date-time). */
void notify_rfc5322_date(int64_t unix_ms, char out[NOTIFY_DATE_LEN]);

struct notify_mail {
    const char *from_name;  /* display name of the sender, may be "" */
    const char *from_addr;  /* valid address */
    const char *to_name;    /* display name of the recipient (untrusted), may be "" */
    const char *to_addr;    /* valid address */
    const char *subject;    /* UTF-8, untrusted */
    const char *body;       /* UTF-8 text, '\n' line ends */
    const char *message_id; /* "<id@domain>" */
    const char *type;       /* event type, for X-Agora-Event */
    int64_t date_ms;        /* Date */
};

/* Append the whole RFC 5322 message of 'm' to 'out', CRLF line ends:
 * Date, From, To, Subject (RFC 2047 encoded-words when not plain ASCII or
 * long), Message-ID, MIME-Version, Content-Type text/plain; charset=utf-8,
 * Content-Transfer-Encoding 7bit (ASCII, short lines) or quoted-printable,
 * X-Agora-Event, a blank line and the body. Display names and the subject
 * lose their control characters first, so no value can add a header.
 * Returns 0, AG_EINVAL for an invalid address, AG_ETOOBIG past the maximum
 * of 'out'. */
int notify_mail_build(const struct notify_mail *m, struct ag_buf *out);

/* ---- Cursors ---- */

/* Opaque page cursor for "items older than 'seq'". */
void notify_cursor_encode(int64_t seq, char out[NOTIFY_CURSOR_LEN]);
/* AG_EINVAL when 's' is not a cursor this service made. */
int notify_cursor_decode(const char *s, int64_t *out_seq);

/* ---- Representation ---- */

/* One notification as stored. Strings are borrowed. */
struct notify_record {
    int64_t seq;
    const char *id;
    const char *event_id;
    const char *type;
    const char *user_id;
    const char *channel;   /* "email" or "none" */
    const char *recipient; /* full address, "" when unknown */
    const char *recipient_name;
    const char *subject;
    const char *body;
    enum notify_status status;
    int64_t attempts;
    int64_t next_attempt_ms; /* pending: when the next attempt is due */
    const char *last_error;  /* NULL when none */
    const char *created_at;
    const char *sent_at; /* NULL until sent */
};

/* The notification as served (new reference): id, type, channel, recipient
 * (masked), subject, body, status, attempts, created_at, sent_at, event_id,
 * user_id; with 'admin' also last_error and next_attempt_at. */
json_t *notify_record_to_json(const struct notify_record *r, bool admin);

#endif /* NOTIFY_DOMAIN_H */
