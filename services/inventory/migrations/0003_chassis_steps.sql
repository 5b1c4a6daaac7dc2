-- The replies given to saga steps moved to the chassis's idempotency
-- records (agora_steps, chassis/src/store/README.md), swept after
-- AGORA_IDEMPOTENCY_TTL.
DROP TABLE steps;
