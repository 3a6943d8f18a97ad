UPDATE spool_workers SET expires_at = ?1 WHERE id = ?2
