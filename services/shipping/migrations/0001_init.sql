-- Shipping schema: one shipment per order, with its address and lines as
-- the saga command gave them, its tracking number and its status history;
-- and the saga steps already applied, keyed by step_key, with the reply
-- each gave (re-published as is when the same step comes again).
CREATE TABLE shipments (
    id              TEXT PRIMARY KEY,            -- UUIDv7: creation order
    order_id        TEXT NOT NULL UNIQUE,        -- one shipment per order
    user_id         TEXT NOT NULL,               -- the order's owner
    status          TEXT NOT NULL
                    CHECK (status IN ('created', 'shipped', 'delivered', 'cancelled')),
    address         TEXT NOT NULL,               -- JSON, common.schema.json#/$defs/address
    lines           TEXT NOT NULL,               -- JSON array of {product_id, quantity}
    carrier         TEXT,                        -- set when shipped
    tracking_number TEXT NOT NULL UNIQUE,
    cancel_reason   TEXT,                        -- set when cancelled
    history         TEXT NOT NULL,               -- JSON array of {status, at}, oldest first
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX shipments_user ON shipments(user_id, id);
CREATE INDEX shipments_status ON shipments(status, id);

CREATE TABLE saga_steps (
    step_key    TEXT PRIMARY KEY,                -- "<order_id>:<step>"
    command     TEXT NOT NULL,                   -- cmd.shipment.create | cmd.shipment.cancel
    order_id    TEXT NOT NULL,
    reply_type  TEXT NOT NULL,                   -- the reply event's type
    reply_subj  TEXT NOT NULL,                   -- its subject
    reply_data  TEXT NOT NULL,                   -- its data, JSON
    applied_at  TEXT NOT NULL
);
