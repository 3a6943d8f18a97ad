INSERT INTO spool_kv (name, value, version, expires_at) VALUES (?1, ?2, 1, ?3)
ON CONFLICT (name) DO UPDATE
    SET value = excluded.value, version = spool_kv.version + 1, expires_at = excluded.expires_at
    WHERE ?4 = 0 OR (spool_kv.expires_at IS NOT NULL AND spool_kv.expires_at <= ?5)
RETURNING version
