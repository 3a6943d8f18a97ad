SELECT j.queue,
       CAST(SUM(j.worker_id IS NULL AND j.available_at <= c.ms) AS SIGNED),
       CAST(SUM(j.worker_id IS NULL AND j.available_at > c.ms) AS SIGNED),
       CAST(SUM(j.worker_id IS NOT NULL) AS SIGNED),
       c.ms - MIN(CASE WHEN j.worker_id IS NULL AND j.available_at <= c.ms
                       THEN j.available_at END)
FROM spool_jobs j, (SELECT {now} AS ms) c
GROUP BY j.queue, c.ms
ORDER BY j.queue
