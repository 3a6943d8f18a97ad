SELECT name, value, version, expires_at FROM spool_kv
WHERE name >= ?1 AND (?2 IS NULL OR name < ?2) AND (expires_at IS NULL OR expires_at > ?3)
ORDER BY name
LIMIT ?4
