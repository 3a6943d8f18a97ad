SELECT w.id, w.host, w.pid, w.queues,
       (SELECT json_group_array(j.id) FROM spool_jobs j WHERE j.worker_id = w.id)
FROM spool_workers w WHERE w.expires_at > ?1 ORDER BY w.started_at
