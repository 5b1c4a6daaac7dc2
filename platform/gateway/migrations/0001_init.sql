-- The gateway keeps no data of its own. Its small SQLite database holds
-- only what the chassis's events runtime creates to consume the users
-- service's revocations (session.revoked, user.disabled) exactly once: the
-- inbox, and an outbox the gateway never writes. The deny list itself
-- lives in memory and is restored from users at start (README.md).
CREATE TABLE gateway_schema_note (note TEXT);
