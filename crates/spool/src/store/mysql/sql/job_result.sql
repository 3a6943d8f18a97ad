-- A completed job by id (bound three times): its history record with its result if one is
-- kept, or, once the record is pruned, what is left with the result.
SELECT {columns}
FROM (
    SELECT c.id, c.queue, c.job, c.batch_id, c.tags, c.attempts, c.enqueued_at, c.started_at,
           c.completed_at, CAST(r.id IS NOT NULL AS SIGNED) AS has_result, r.result
    FROM spool_completed c LEFT JOIN spool_results r ON r.id = c.id
    WHERE c.id = ?
    UNION ALL
    SELECT r.id, r.queue, r.job, r.batch_id, NULL, 0, NULL, NULL, r.completed_at, 1, r.result
    FROM spool_results r
    WHERE r.id = ? AND NOT EXISTS (SELECT 1 FROM spool_completed c WHERE c.id = ?)
) AS found
