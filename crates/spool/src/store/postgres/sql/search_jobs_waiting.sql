-- Candidates: the waiting jobs of one queue after a position, in listing order, on the claim
-- index (`jobs_ready`). `{state}` narrows to pending or delayed jobs. Only the index's columns
-- are read, so once the table is vacuumed the window is an index-only scan.
--
-- The scan starts at the tighter of `available_at >= ?` and the state's bound: the row
-- comparison is checked on the rows read (`IS TRUE`), never made an index condition, because
-- the server then starts at the row comparison's position even when the state's bound is
-- later (a delayed listing read past every pending job of the queue first).
SELECT seq, available_at FROM {schema}.jobs
WHERE queue = ? AND worker_id IS NULL{state} AND available_at >= ?
  AND ((available_at, seq) > (?, ?)) IS TRUE
ORDER BY available_at, seq LIMIT ?
