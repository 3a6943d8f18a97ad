-- Completed records a search found, as `job_result.sql` reads them without the result: the
-- source placeholder is replaced by the candidates (`completed_at`, `id`: at most the search
-- window of them, newest first, from an index); the filters, the order and the limit are
-- appended in Rust.
SELECT c.id, c.queue, c.job, c.batch_id, c.tags, c.attempts, c.enqueued_at, c.started_at,
       c.completed_at,
       CAST(EXISTS (SELECT 1 FROM spool_results r WHERE r.id = c.id) AS SIGNED),
       CAST(NULL AS CHAR)
FROM ({source}) AS w
JOIN spool_completed c ON c.id = w.id AND c.completed_at = w.completed_at
WHERE true
