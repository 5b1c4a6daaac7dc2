-- PostgreSQL version of ../0001_init.sql: BIGINT for every integer (INTEGER is
-- 32-bit there), identity columns for rowid aliases, BYTEA for BLOB.
-- Users schema: accounts with their argon2id password hashes, refresh-token
-- families (one per login) and the tokens of each family (stored only as
-- SHA-256 hashes), and the ES256 signing keys published in the JWKS.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,                 -- UUIDv7: creation order
    email         TEXT NOT NULL UNIQUE,             -- normalised: trimmed, lower-case
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,                    -- argon2id, libsodium encoded string
    admin         BIGINT NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    disabled      BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT NOT NULL,                    -- RFC 3339 UTC
    updated_at    TEXT NOT NULL
);

CREATE TABLE refresh_families (
    id          TEXT PRIMARY KEY,                   -- UUIDv7, one per login
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,                   -- unix ms
    revoked_at  BIGINT,                            -- unix ms; NULL while usable
    revoked_why TEXT                                -- logout, reuse, disabled, password
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);

CREATE TABLE refresh_tokens (
    hash       BYTEA PRIMARY KEY,                    -- SHA-256 of the token; never the token
    family_id  TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    parent     BYTEA,                                -- hash of the token it replaced
    created_at BIGINT NOT NULL,                    -- unix ms
    expires_at BIGINT NOT NULL,                    -- unix ms
    spent_at   BIGINT                              -- unix ms; set when exchanged
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,                   -- RFC 7638 thumbprint
    private_pem TEXT NOT NULL,                      -- PKCS#8 P-256 private key
    created_at  BIGINT NOT NULL,                   -- unix ms
    retired_at  BIGINT,                            -- unix ms; NULL for the active key
    drop_at     BIGINT                             -- unix ms: leaves the JWKS after this
);
