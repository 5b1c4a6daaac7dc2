-- Revocations the gateway must enforce on access tokens that are still
-- unexpired (issue 11): one row per logout or reuse (a session: the access
-- tokens carrying that "sid"), and one per password change or disable (a
-- user: every access token of the user issued at or before issued_before).
-- A row is useful until expires_at, when every token it can match has
-- expired; rows past it are purged with the expired refresh tokens.
CREATE TABLE revocations (
    id            INTEGER PRIMARY KEY,              -- listing order (the restore's cursor)
    user_id       TEXT NOT NULL,
    session_id    TEXT,                             -- NULL: every session of the user
    reason        TEXT NOT NULL,                    -- logout, reuse, password, disabled
    issued_before INTEGER NOT NULL,                 -- unix s: tokens with iat <= this
    revoked_at    INTEGER NOT NULL,                 -- unix ms
    expires_at    INTEGER NOT NULL                  -- unix s: no matching token is valid after
);
CREATE INDEX revocations_expiry ON revocations(expires_at);
CREATE INDEX revocations_user ON revocations(user_id, expires_at);
