DELETE FROM spool_kv WHERE expires_at IS NOT NULL AND expires_at <= ?
