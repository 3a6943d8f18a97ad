SELECT version, expires_at FROM spool_kv WHERE name = ? FOR UPDATE
