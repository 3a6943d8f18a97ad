-- Claims up to ?4 jobs of queue ?3 for worker ?1 at ?2 (now). Rows whose `available_at` is
-- not a number (TEXT or a BLOB written by another program) sort after every number, so they
-- would never come due: they are claimed first, from the same index, and the worker fails
-- them with the reason.
UPDATE spool_jobs
SET worker_id = ?1, token = token + 1, reserved_at = ?2, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM (
                SELECT seq FROM spool_jobs
                WHERE queue = ?3 AND worker_id IS NULL AND available_at >= ''
                LIMIT ?4)
              UNION ALL
              SELECT seq FROM (
                SELECT seq FROM spool_jobs
                WHERE queue = ?3 AND worker_id IS NULL AND available_at <= ?2
                ORDER BY available_at, seq LIMIT ?4)
              LIMIT ?4)
RETURNING id, queue, envelope, token, attempts, recoveries, deferrals, exceptions,
          retry_until, last_error, reserved_at, available_at, seq, unique_key
