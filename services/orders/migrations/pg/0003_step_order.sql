-- PostgreSQL version of ../0003_step_order.sql (a new database: no steps yet).
ALTER TABLE saga_steps ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
