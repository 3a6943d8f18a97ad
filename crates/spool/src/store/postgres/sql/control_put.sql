INSERT INTO {schema}.control (kind, name, value, info) VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value, info = excluded.info
