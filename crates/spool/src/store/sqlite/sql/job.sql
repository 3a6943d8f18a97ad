SELECT id, queue, job, worker_id, available_at, attempts, recoveries, deferrals, last_error,
       envelope, progress, progress_message, ?1, reserved_at, tags
FROM spool_jobs WHERE id = ?2
