SELECT MIN(first.available_at) - {schema}.now_ms()
FROM UNNEST($1::text[]) AS q (name),
     LATERAL (SELECT available_at FROM {schema}.jobs
              WHERE queue = q.name AND worker_id IS NULL
              ORDER BY available_at LIMIT 1) AS first
