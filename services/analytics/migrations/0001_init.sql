-- SPDX-License-Identifier: MIT
-- Analytics read side. analytics_events is the append-only log of every
-- consumed event (the source of a rebuild); the other tables are projections
-- of it, emptied and replayed by POST /v1/reports/rebuild. Portable SQL:
-- BIGINT integers, no AUTOINCREMENT, no SQLite-only functions.

CREATE TABLE analytics_events (
    id          TEXT PRIMARY KEY,  -- CloudEvent id
    type        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    event_time  TEXT NOT NULL,     -- CloudEvent time, RFC 3339
    time_ms     BIGINT NOT NULL,   -- the same, Unix ms: replay order (time_ms, id)
    data        TEXT NOT NULL,     -- data, compact JSON
    received_at BIGINT NOT NULL    -- Unix ms of the first delivery
);
CREATE INDEX analytics_events_replay ON analytics_events (time_ms, id);

-- One row per order: what its events and its saga's events said, merged
-- (services/analytics/domain.c). Times are Unix ms, -1 unknown; days are
-- YYYY-MM-DD (UTC) of them, '' unknown.
CREATE TABLE analytics_orders (
    order_id      TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    currency      TEXT NOT NULL,
    total         BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL,
    reserved_ms   BIGINT NOT NULL,
    authorized_ms BIGINT NOT NULL,
    shipment_ms   BIGINT NOT NULL,
    confirmed_ms  BIGINT NOT NULL,
    completed_ms  BIGINT NOT NULL,
    cancelled_ms  BIGINT NOT NULL,
    cancel_reason TEXT NOT NULL,
    refunded      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    created_day   TEXT NOT NULL,
    confirmed_day TEXT NOT NULL,
    cancelled_day TEXT NOT NULL
);
CREATE INDEX analytics_orders_created ON analytics_orders (created_day);
CREATE INDEX analytics_orders_confirmed ON analytics_orders (confirmed_day);
CREATE INDEX analytics_orders_cancelled ON analytics_orders (cancelled_day);

-- The lines of order.created.
CREATE TABLE analytics_order_lines (
    order_id    TEXT NOT NULL,
    line_no     BIGINT NOT NULL,
    product_id  TEXT NOT NULL,
    sku         TEXT NOT NULL,
    quantity    BIGINT NOT NULL,
    unit_amount BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX analytics_order_lines_product ON analytics_order_lines (product_id);

-- Stock movements per event and product: reserved, committed, restocked.
CREATE TABLE analytics_stock_moves (
    event_id       TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    reservation_id TEXT NOT NULL,  -- of inventory.reserved, else ''
    order_id       TEXT NOT NULL,
    PRIMARY KEY (event_id, product_id)
);
CREATE INDEX analytics_stock_moves_product ON analytics_stock_moves (product_id);
CREATE INDEX analytics_stock_moves_reservation ON analytics_stock_moves (reservation_id);

-- inventory.released: its quantities are the reserved lines of the
-- reservation, joined when the report is read (either may come first).
CREATE TABLE analytics_releases (
    event_id       TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    order_id       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    returned       BIGINT NOT NULL
);
CREATE INDEX analytics_releases_reservation ON analytics_releases (reservation_id);
