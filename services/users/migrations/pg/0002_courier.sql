-- PostgreSQL version of ../0002_courier.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- The courier role (moves shipments along in shipping), granted and revoked
-- by an administrator.
ALTER TABLE users ADD COLUMN courier BIGINT NOT NULL DEFAULT 0 CHECK (courier IN (0, 1));
