-- The history records of completed jobs, from their rows (locked by settle_held.sql), before
-- they are deleted.
REPLACE INTO spool_completed (id, queue, job, batch_id, tags, attempts, enqueued_at,
                              started_at, completed_at)
SELECT id, queue, job, batch_id, tags, attempts, created_at, reserved_at, {now}
FROM spool_jobs WHERE seq IN ({seqs})
