UPDATE {schema}.kv SET value = $2, version = version + 1, expires_at = $3
WHERE name = $1 AND version = $4 AND (expires_at IS NULL OR expires_at > $5)
RETURNING version
