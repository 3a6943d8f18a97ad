-- Candidates: the waiting jobs of one queue after a position, in listing order, on the claim
-- index (`jobs_ready`). `{state}` narrows to pending or delayed jobs.
SELECT seq, available_at, id AS pos FROM {schema}.jobs
WHERE queue = ? AND worker_id IS NULL{state} AND available_at >= ? AND (available_at, seq) > (?, ?)
ORDER BY available_at, seq LIMIT ?
