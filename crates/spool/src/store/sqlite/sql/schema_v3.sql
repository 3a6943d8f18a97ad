-- Spool's SQLite schema, version 3: each limiter hit records when its window ends, so workers
-- can prune the hits of keys that are never used again (a key's own hits are pruned whenever
-- it is used). Hits written by version 2 have none and are pruned after 30 days.
ALTER TABLE spool_limits ADD COLUMN expires_at INTEGER;
CREATE INDEX IF NOT EXISTS spool_limits_expiry ON spool_limits (expires_at);

-- Each worker's lease, so `status` can tell when it was last seen (expires_at - lease_ms).
ALTER TABLE spool_workers ADD COLUMN lease_ms INTEGER;
