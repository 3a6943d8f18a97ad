-- Completed records a search found, as `job_result.sql` reads them without the result:
-- `{source}` is replaced by the candidates (`completed_at`, `id`: at most the search window
-- of them, newest first, from an index); the filters, the order and the limit are appended in
-- Rust.
SELECT c.id, c.queue, c.job, c.batch_id, c.tags, c.attempts, c.enqueued_at, c.started_at,
       c.completed_at,
       (EXISTS (SELECT 1 FROM {schema}.results r WHERE r.id = c.id))::int::int8, NULL::text
FROM ({source}) AS w
JOIN {schema}.completed c ON c.id = w.id AND c.completed_at = w.completed_at
WHERE true
