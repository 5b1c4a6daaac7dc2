-- PostgreSQL version of ../0001_init.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- Notifications schema: replicas of the users and orders other services
-- own (built only from their events), the message templates, and one row
-- per notification with its delivery state.

-- user_id -> e-mail and name, from user.registered and user.updated.
CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    email      TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    changed_ms BIGINT NOT NULL DEFAULT 0  -- time of the last change applied (unix ms)
);

-- order_id -> user_id, from order.created: payment.* and shipment.* events
-- carry only the order id.
CREATE TABLE orders (
    order_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One template per event type that notifies. {{path}} placeholders read
-- the event's data; see README.md.
CREATE TABLE templates (
    type       TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    enabled    BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    updated_at TEXT NOT NULL
);

CREATE TABLE notifications (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,       -- newest first in listings
    id              TEXT NOT NULL UNIQUE,      -- UUIDv7
    event_id        TEXT NOT NULL UNIQUE,      -- one notification per event
    type            TEXT NOT NULL,             -- the event type
    user_id         TEXT NOT NULL,             -- who it is for
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'none')),
    recipient       TEXT NOT NULL DEFAULT '',  -- full address ('' when unknown)
    recipient_name  TEXT NOT NULL DEFAULT '',
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'recorded')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0, -- pending: when the next attempt is due
    in_flight       BIGINT NOT NULL DEFAULT 0 CHECK (in_flight IN (0, 1)),
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX notifications_user ON notifications(user_id, seq);
CREATE INDEX notifications_status ON notifications(status, seq);
CREATE INDEX notifications_due ON notifications(next_attempt_ms) WHERE status = 'pending';

-- The default templates; administrators change them with
-- PUT /v1/templates/{type}.
INSERT INTO templates (type, subject, body, updated_at) VALUES
('user.registered',
 'Welcome to Agora, {{name}}',
 'Hello {{name}},' || chr(10) || chr(10) ||
 'welcome to Agora! Your account {{email}} is ready: browse the catalogue, fill your cart and check out whenever you like.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('order.created',
 'We received your order {{order_id}}',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'thank you for your order {{order_id}}: {{count lines}} line(s), {{money total}} in total.' || chr(10) ||
 'We are checking stock and payment now and will write again once it is confirmed.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('order.confirmed',
 'Your order {{order_id}} is confirmed',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'good news: your order {{order_id}} is confirmed and your payment of {{money total}} was taken.' || chr(10) ||
 'We will tell you when it ships.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('order.cancelled',
 'Your order {{order_id}} was cancelled',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'your order {{order_id}} was cancelled: {{humanize reason}}.' || chr(10) ||
 'Any money taken for it is given back; we write again when a refund is made.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('payment.refunded',
 'Refund for your order {{order_id}}',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'we refunded {{money amount}} for your order {{order_id}}.' || chr(10) ||
 'Depending on your bank it may take a few days to show.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('shipment.shipped',
 'Your order {{order_id}} is on its way',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'your order {{order_id}} has shipped with {{carrier}}; tracking number {{tracking_number}}.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z'),
('shipment.delivered',
 'Your order {{order_id}} was delivered',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'your order {{order_id}} was delivered. We hope you enjoy it!' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z');
