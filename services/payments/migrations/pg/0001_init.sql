-- PostgreSQL version of ../0001_init.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- Payments schema: payments (one row per authorization, with what was
-- captured and refunded of it), refunds, the saga steps already answered
-- (step_key -> reply, for idempotent commands) and the HTTP idempotency
-- keys (IETF Idempotency-Key: key -> first answer, kept 24 h). No card data:
-- the provider's reference, the brand and the last four digits only.
CREATE TABLE payments (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('authorized', 'captured', 'partially_refunded', 'refunded',
                                   'voided')),
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount >= 0),
    captured     BIGINT NOT NULL DEFAULT 0,
    refunded     BIGINT NOT NULL DEFAULT 0,
    card_brand   TEXT NOT NULL,
    card_last4   TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    void_reason  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    captured_at  BIGINT NOT NULL DEFAULT 0,
    voided_at    BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX payments_by_order ON payments (order_id, id);
CREATE INDEX payments_expiring ON payments (expires_at) WHERE status = 'authorized';

CREATE TABLE refunds (
    id          TEXT PRIMARY KEY,
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);

-- A saga step: 'pending' while the provider works on it, then 'done' with
-- the reply event it got (type and data), re-published when the same step
-- comes again.
CREATE TABLE steps (
    step_key    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    command     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    reply_type  TEXT NOT NULL DEFAULT '',
    reply_data  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- An Idempotency-Key of one user: status 0 while the first request is in
-- progress, then its answer (status, content type, body).
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    response     TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
