-- PostgreSQL version of ../0001_init.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- Inventory schema: stock per product, the history of every movement, the
-- reservations of orders with their lines, and the replies given to saga
-- commands by step key (the idempotency record).
CREATE TABLE stock (
    product_id    TEXT PRIMARY KEY,
    on_hand       BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved      BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    low_threshold BIGINT CHECK (low_threshold IS NULL OR low_threshold >= 0), -- NULL: the default
    active        BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),  -- 0 after product.deleted
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    -- Never more reserved than on hand, whatever the code does.
    CHECK (reserved <= on_hand)
);

CREATE TABLE movements (
    id             TEXT PRIMARY KEY,            -- UUIDv7: time order
    product_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,               -- created set adjust reserve release commit deleted
    on_hand_delta  BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    on_hand        BIGINT NOT NULL,            -- after the movement
    reserved       BIGINT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    order_id       TEXT,                        -- reservation movements
    actor          TEXT,                        -- user id of an administrator's change
    idempotency_key TEXT,                       -- adjustments sent with Idempotency-Key
    created_at     TEXT NOT NULL
);
CREATE INDEX movements_product ON movements(product_id, id);
CREATE UNIQUE INDEX movements_idem ON movements(product_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL UNIQUE,        -- one reservation per order
    state          TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'rejected')),
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    expires_ms     BIGINT NOT NULL,            -- expires_at in Unix ms, for the expiry scan
    committed_at   TEXT,
    released_at    TEXT,
    release_reason TEXT,
    reserve_reply  TEXT NOT NULL,               -- {"type","data"} answered to reserve
    commit_reply   TEXT,                        -- {"type","data"} answered to commit
    release_reply  TEXT                         -- {"type","data"} answered to release
);
CREATE INDEX reservations_held ON reservations(expires_ms) WHERE state = 'held';

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations(id),
    product_id     TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);

CREATE TABLE steps (
    step_key   TEXT PRIMARY KEY,                -- "<order_id>:<step>"
    order_id   TEXT NOT NULL,
    command    TEXT NOT NULL,
    reply_type TEXT NOT NULL,
    reply_data TEXT NOT NULL,
    created_at TEXT NOT NULL
);
