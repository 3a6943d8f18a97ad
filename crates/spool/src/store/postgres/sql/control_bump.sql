INSERT INTO {schema}.control (kind, name, value) VALUES ('epoch', $1, $2)
ON CONFLICT (kind, name) DO UPDATE SET value = GREATEST(excluded.value, control.value + 1)
RETURNING value
