-- The fixed part of a job listing: `?` is the store's now; the filters, the order and the
-- limit are appended in Rust.
SELECT id, queue, job, worker_id, available_at, attempts, recoveries, deferrals, last_error,
       envelope, progress, progress_message, ?, reserved_at, tags
FROM spool_jobs WHERE 1 = 1
