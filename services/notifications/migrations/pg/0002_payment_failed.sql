-- PostgreSQL version of ../0002_payment_failed.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- SPDX-License-Identifier: MIT
-- The customer hears when a payment did not go through (the checkout
-- saga then cancels the order, which sends its own message).
INSERT INTO templates (type, subject, body, updated_at) VALUES
('payment.failed',
 'Your payment for order {{order_id}} did not go through',
 'Hello {{recipient.name}},' || chr(10) || chr(10) ||
 'we could not take {{money amount}} for your order {{order_id}}: {{humanize reason}}.' || chr(10) ||
 'Nothing was charged. You can place the order again with another card.' || chr(10) || chr(10) ||
 'The Agora team' || chr(10),
 '1970-01-01T00:00:00.000Z');
