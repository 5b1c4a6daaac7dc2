-- Idempotency-Keys and saga steps moved to the chassis's idempotency
-- records (agora_idempotency_keys, agora_steps: chassis/src/store/README.md),
-- swept after AGORA_IDEMPOTENCY_TTL (the steps never were before).
DROP TABLE idempotency_keys;
DROP TABLE steps;
