-- Saga steps keep the order they were first sent in an explicit column
-- (the rowid order of before is SQLite's own); existing steps keep theirs.
ALTER TABLE saga_steps ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE saga_steps SET seq = rowid;
