-- The history records of the completions `settle_fast.sql` then deletes (the same rows: the
-- same conditions, in the same transaction, which rolls both back if they differ).
INSERT INTO spool_completed (id, queue, job, batch_id, tags, attempts, enqueued_at, started_at,
                             completed_at)
SELECT id, queue, job, NULL, NULL, attempts, created_at, reserved_at, {now}
FROM spool_jobs WHERE worker_id = ? AND id IN ({ids}) AND (id, token) IN ({pairs})
  AND batch_id IS NULL AND unique_key IS NULL AND took_slot IS NULL AND tags IS NULL
ON DUPLICATE KEY UPDATE queue = VALUES(queue), job = VALUES(job), batch_id = NULL,
    tags = NULL, attempts = VALUES(attempts), enqueued_at = VALUES(enqueued_at),
    started_at = VALUES(started_at), completed_at = VALUES(completed_at)
