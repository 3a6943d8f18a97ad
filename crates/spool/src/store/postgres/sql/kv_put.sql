INSERT INTO {schema}.kv AS kv (name, value, version, expires_at) VALUES ($1, $2, 1, $3)
ON CONFLICT (name) DO UPDATE
    SET value = excluded.value, version = kv.version + 1, expires_at = excluded.expires_at
    WHERE NOT $4 OR (kv.expires_at IS NOT NULL AND kv.expires_at <= $5)
RETURNING version
