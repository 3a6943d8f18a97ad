SELECT w.id, w.host, w.pid, w.queues,
       (SELECT json_group_array(j.id) FROM spool_jobs j WHERE j.worker_id = w.id),
       w.expires_at, w.lease_ms, ?1
FROM spool_workers w WHERE w.expires_at > ?1 ORDER BY w.started_at
