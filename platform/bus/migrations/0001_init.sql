-- Bus schema: the message log, publisher de-duplication, topic counters,
-- subscriptions and their deliveries (one row per message and matching
-- subscription until it is acked; dead letters keep theirs with state 1).
-- Times are Unix milliseconds. See docs/internals/bus.md.
CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY,  -- publish order, never reused
    id           TEXT NOT NULL,        -- the publisher's message id
    topic        TEXT NOT NULL,
    subject      TEXT NOT NULL,        -- ordering key, '' for none
    published_at INTEGER NOT NULL,     -- non-decreasing with seq
    data         TEXT NOT NULL         -- the JSON value as published
);

CREATE TABLE dedup (
    seq INTEGER PRIMARY KEY,           -- the message that carried the id
    id  TEXT NOT NULL UNIQUE,
    at  INTEGER NOT NULL               -- when it was published
);

CREATE TABLE topics (
    name     TEXT PRIMARY KEY,
    messages INTEGER NOT NULL,         -- published, ever
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    topics          TEXT NOT NULL,     -- JSON array of patterns
    ack_deadline_ms INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    retry_delay_ms  INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE deliveries (
    sub_id     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    state      INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 dead letter
    attempts   INTEGER NOT NULL DEFAULT 0,  -- hand-outs recorded so far
    not_before INTEGER NOT NULL DEFAULT 0,  -- not deliverable before (nack delay)
    dead_at    INTEGER,
    last_error TEXT,
    PRIMARY KEY (sub_id, seq)
) WITHOUT ROWID;

-- Dead letters only: listing them never walks the pending backlog.
CREATE INDEX deliveries_dead ON deliveries(sub_id, seq) WHERE state = 1;
