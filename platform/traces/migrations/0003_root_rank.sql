-- Which span names a trace in the list: one without a parent (rank 0), else
-- a server span (1: the first service to take a request whose caller's span
-- is not in the trace), else any (2); the earliest of a rank. Earliest alone
-- was wrong: a span whose start is stored to the millisecond (a saga step's)
-- can start "before" the gateway's request that caused it.
ALTER TABLE traces ADD COLUMN root_rank INTEGER NOT NULL DEFAULT 2;
ALTER TABLE traces ADD COLUMN root_start_ns INTEGER NOT NULL DEFAULT 0; -- the root span's start
