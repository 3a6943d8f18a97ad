DELETE s FROM spool_slots s
LEFT JOIN spool_workers w ON w.id = s.worker_id AND w.expires_at > {now}
WHERE w.id IS NULL
