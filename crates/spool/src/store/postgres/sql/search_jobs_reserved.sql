-- Candidates: the reserved jobs (as many as workers run at once) after a position, on the
-- holder index.
SELECT seq, available_at, id AS pos FROM {schema}.jobs
WHERE worker_id IS NOT NULL AND available_at >= ? AND (available_at, seq) > (?, ?)
