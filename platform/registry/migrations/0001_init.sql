-- Registry schema: the versioned configuration store. Instances live in
-- memory only. 'meta' holds the indexes that must survive a restart:
-- config_index (highest index of any config change, deletions included),
-- config_floor (deletions at or below it are forgotten; also the index of a
-- fresh database) and last_index (the shared counter at the last shutdown).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE config (
    key          TEXT PRIMARY KEY,            -- [A-Za-z0-9._-]{1,200}
    value        TEXT NOT NULL,               -- compact JSON
    version      INTEGER NOT NULL CHECK (version >= 1),
    create_index INTEGER NOT NULL,
    modify_index INTEGER NOT NULL
) WITHOUT ROWID;

-- Recently deleted keys, so that a prefix watch sees a deletion even after
-- a restart; the oldest are dropped past a bound (raising config_floor).
CREATE TABLE config_tombstones (
    key          TEXT PRIMARY KEY,
    modify_index INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX config_tombstones_index ON config_tombstones(modify_index);
