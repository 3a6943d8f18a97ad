WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
UPDATE {schema}.jobs SET available_at = (SELECT ms FROM clock)
WHERE id = $1 AND worker_id IS NULL AND available_at > (SELECT ms FROM clock)
