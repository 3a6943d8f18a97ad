-- Completed records a search found, as `job_result.sql` reads them without the result:
-- `{source}` is replaced by the candidates (`completed_at`, `id`: at most the search window
-- of them, newest first, from an index); the filters, the order and the limit are appended in
-- Rust. Each candidate's record is read by its key (`OFFSET 0` keeps the lookup a nested
-- loop): a filter the statistics call rare (a job name) otherwise turns the join into a scan
-- of the whole history.
SELECT c.id, c.queue, c.job, c.batch_id, c.tags, c.attempts, c.enqueued_at, c.started_at,
       c.completed_at,
       (EXISTS (SELECT 1 FROM {schema}.results r WHERE r.id = c.id))::int::int8, NULL::text
FROM ({source}) AS w
CROSS JOIN LATERAL (
    SELECT * FROM {schema}.completed x
    WHERE x.id = w.id AND x.completed_at = w.completed_at OFFSET 0) AS c
WHERE true
