SELECT queue,
       SUM(worker_id IS NULL AND available_at <= ?1),
       SUM(worker_id IS NULL AND available_at > ?1),
       SUM(worker_id IS NOT NULL),
       MIN(CASE WHEN worker_id IS NULL AND available_at <= ?1 THEN available_at END)
FROM spool_jobs GROUP BY queue ORDER BY queue
