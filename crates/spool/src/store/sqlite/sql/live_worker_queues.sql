SELECT queues FROM spool_workers WHERE expires_at > ?1
