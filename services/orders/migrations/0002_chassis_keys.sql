-- Checkout Idempotency-Keys moved to the chassis's idempotency records
-- (agora_idempotency_keys, chassis/src/store/README.md), swept after
-- AGORA_IDEMPOTENCY_TTL (they never were before).
DROP TABLE checkout_keys;
