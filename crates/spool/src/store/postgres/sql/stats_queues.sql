WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
SELECT j.queue,
       COUNT(*) FILTER (WHERE j.worker_id IS NULL AND j.available_at <= c.ms),
       COUNT(*) FILTER (WHERE j.worker_id IS NULL AND j.available_at > c.ms),
       COUNT(*) FILTER (WHERE j.worker_id IS NOT NULL),
       c.ms - MIN(j.available_at) FILTER (WHERE j.worker_id IS NULL AND j.available_at <= c.ms)
FROM {schema}.jobs j, clock c
GROUP BY j.queue, c.ms
ORDER BY j.queue COLLATE "C"
