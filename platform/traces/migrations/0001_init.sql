-- The built-in trace collector: spans as received (OTLP), and one summary
-- row per trace kept in step with its spans, for the list queries.
CREATE TABLE traces (
    trace_id     TEXT PRIMARY KEY,   -- 32 lowercase hex digits
    start_ns     INTEGER NOT NULL,   -- earliest span start, Unix ns
    end_ns       INTEGER NOT NULL,   -- latest span end, Unix ns
    nspans       INTEGER NOT NULL,
    error        INTEGER NOT NULL,   -- 1 when a span has status ERROR
    root_service TEXT NOT NULL,      -- service of the earliest span
    root_name    TEXT NOT NULL,      -- its name
    received_ms  INTEGER NOT NULL    -- when its last span arrived (eviction order)
);
CREATE INDEX traces_start ON traces(start_ns);

CREATE TABLE spans (
    trace_id   TEXT NOT NULL,
    span_id    TEXT NOT NULL,        -- 16 lowercase hex digits
    parent_id  TEXT NOT NULL,        -- "" for a root span
    service    TEXT NOT NULL,        -- resource service.name
    name       TEXT NOT NULL,
    kind       INTEGER NOT NULL,     -- OTLP SpanKind
    start_ns   INTEGER NOT NULL,
    end_ns     INTEGER NOT NULL,
    status     INTEGER NOT NULL,     -- OTLP StatusCode: 0 unset, 1 ok, 2 error
    status_msg TEXT NOT NULL,
    attrs      TEXT NOT NULL,        -- JSON object: attribute key -> value
    events     TEXT NOT NULL,        -- JSON array of {name, time_unix_nano}
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_service ON spans(service, trace_id);
