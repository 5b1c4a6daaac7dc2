-- The courier role (moves shipments along in shipping), granted and revoked
-- by an administrator.
ALTER TABLE users ADD COLUMN courier INTEGER NOT NULL DEFAULT 0 CHECK (courier IN (0, 1));
