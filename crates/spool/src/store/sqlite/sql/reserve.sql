UPDATE spool_jobs
SET worker_id = ?1, token = token + 1, reserved_at = ?2, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM spool_jobs
              WHERE queue = ?3 AND worker_id IS NULL AND available_at <= ?2
              ORDER BY available_at, seq LIMIT ?4)
RETURNING id, queue, envelope, token, attempts, recoveries, deferrals, exceptions,
          retry_until, last_error, reserved_at, available_at, seq, unique_key
