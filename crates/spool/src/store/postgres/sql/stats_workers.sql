SELECT w.id, w.host, w.pid, w.queues,
       COALESCE((SELECT array_agg(j.id ORDER BY j.seq) FROM {schema}.jobs j
                 WHERE j.worker_id = w.id), '{}'),
       w.expires_at, w.lease_ms, {schema}.now_ms()
FROM {schema}.workers w
WHERE w.expires_at > {schema}.now_ms()
ORDER BY w.started_at, w.id COLLATE "C"
