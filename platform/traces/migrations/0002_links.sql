-- Span links (OTLP Span.links): the contexts a span is linked to, such as
-- the events of an outbox relay batch or of a consumer's batch transaction.
ALTER TABLE spans ADD COLUMN links TEXT NOT NULL DEFAULT '[]'; -- JSON array of {trace_id, span_id}
