-- Per queue: pending, delayed, reserved, the oldest ready time. Waiting jobs are counted on the
-- claim index (queue, available_at), never reading their rows (envelopes make them large);
-- reserved jobs, few, through the holder index.
SELECT queue, SUM(pending), SUM(delayed), SUM(reserved), MIN(oldest)
FROM (
    SELECT queue,
           SUM(available_at <= ?1) AS pending,
           SUM(available_at > ?1) AS delayed,
           0 AS reserved,
           MIN(CASE WHEN available_at <= ?1 THEN available_at END) AS oldest
    FROM spool_jobs INDEXED BY spool_jobs_ready
    WHERE worker_id IS NULL
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, COUNT(*), NULL
    FROM spool_jobs
    WHERE worker_id IS NOT NULL
    GROUP BY queue
)
GROUP BY queue
ORDER BY queue
