-- PostgreSQL version of ../0001_init.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- Orders schema: the price replica, carts, the event-sourced orders (events
-- plus projection), checkout idempotency keys and the saga's steps.

-- Replica of the catalog's prices, kept from product.* events (highest version wins).
CREATE TABLE prices (
    product_id TEXT PRIMARY KEY,
    sku        TEXT NOT NULL,
    name       TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    currency   TEXT NOT NULL,
    active     BIGINT NOT NULL,
    deleted    BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL
);

CREATE TABLE cart_items (
    user_id    TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

-- The source of truth of an order: its events, versioned from 1.
CREATE TABLE order_events (
    order_id   TEXT NOT NULL,
    version    BIGINT NOT NULL CHECK (version > 0),
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (order_id, version)
);

-- Projection: the current state, written in the same transaction as the event.
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    status         TEXT NOT NULL,
    payment_status TEXT NOT NULL,
    version        BIGINT NOT NULL,
    state          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, id DESC);
CREATE INDEX orders_by_status ON orders (status, id DESC);

CREATE TABLE checkout_keys (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    request    TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- One row per saga step sent: written with the command's outbox row.
CREATE TABLE saga_steps (
    order_id    TEXT NOT NULL,
    step        TEXT NOT NULL,
    type        TEXT NOT NULL,
    command     TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    sent_at     TEXT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    outcome     TEXT,
    outcome_at  TEXT,
    PRIMARY KEY (order_id, step)
);
CREATE INDEX saga_steps_due ON saga_steps (deadline_ms) WHERE outcome IS NULL;
