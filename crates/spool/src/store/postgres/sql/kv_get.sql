SELECT value, version, expires_at FROM {schema}.kv
WHERE name = $1 AND (expires_at IS NULL OR expires_at > $2)
