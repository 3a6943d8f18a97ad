DELETE FROM {schema}.kv WHERE expires_at IS NOT NULL AND expires_at <= $1
