WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
freed AS (
    DELETE FROM {schema}.slots s USING clock c
    WHERE s.key = $1
      AND ((s.expires_at IS NOT NULL AND s.expires_at <= c.ms)
           OR NOT EXISTS (SELECT 1 FROM {schema}.workers w
                          WHERE w.id = s.worker_id AND w.expires_at > c.ms)))
SELECT EXISTS (SELECT 1 FROM {schema}.jobs
               WHERE id = $2 AND worker_id = $3 AND token = $4)
