-- A completed job's history record: ?1 id, ?2 queue, ?3 job, ?4 batch, ?5 tags, ?6 attempts,
-- ?7 enqueued, ?8 started, ?9 completed. A job id that completes again replaces its record.
INSERT INTO spool_completed (id, queue, job, batch_id, tags, attempts, enqueued_at, started_at,
                             completed_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, job = excluded.job,
    batch_id = excluded.batch_id, tags = excluded.tags, attempts = excluded.attempts,
    enqueued_at = excluded.enqueued_at, started_at = excluded.started_at,
    completed_at = excluded.completed_at
