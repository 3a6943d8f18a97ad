-- Spool's PostgreSQL schema, version 3: each limiter hit records when its window ends, so
-- workers can prune the hits of keys that are never used again (a key's own hits are pruned
-- whenever it is used). Hits written by version 2 have none and are pruned after 30 days.
ALTER TABLE {schema}.limits ADD COLUMN IF NOT EXISTS expires_at BIGINT;
CREATE INDEX IF NOT EXISTS limits_expiry ON {schema}.limits (expires_at);

-- Each worker's lease, so `status` can tell when it was last seen (expires_at - lease_ms).
ALTER TABLE {schema}.workers ADD COLUMN IF NOT EXISTS lease_ms BIGINT;
