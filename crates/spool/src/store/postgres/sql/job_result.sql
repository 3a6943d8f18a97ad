-- A completed job by id: its history record with its result if one is kept, or, once the
-- record is pruned, what is left with the result.
SELECT id, queue, job, batch_id, tags, attempts, enqueued_at, started_at, completed_at, has_result, result
FROM (
    SELECT c.id, c.queue, c.job, c.batch_id, c.tags, c.attempts, c.enqueued_at, c.started_at,
           c.completed_at, (r.id IS NOT NULL)::int::int8 AS has_result, r.result
    FROM {schema}.completed c LEFT JOIN {schema}.results r ON r.id = c.id
    WHERE c.id = $1
    UNION ALL
    SELECT r.id, r.queue, r.job, r.batch_id, NULL, 0::int8, NULL::int8, NULL::int8,
           r.completed_at, 1::int8, r.result
    FROM {schema}.results r
    WHERE r.id = $1 AND NOT EXISTS (SELECT 1 FROM {schema}.completed c WHERE c.id = $1)
) AS found
