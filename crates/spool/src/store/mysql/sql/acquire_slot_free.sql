DELETE s FROM spool_slots s
LEFT JOIN spool_workers w ON w.id = s.worker_id AND w.expires_at > {now}
WHERE s.name = ?
  AND ((s.expires_at IS NOT NULL AND s.expires_at <= {now}) OR w.id IS NULL)
