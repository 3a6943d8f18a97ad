INSERT INTO spool_control (kind, name, value) VALUES ('epoch', ?1, ?2)
ON CONFLICT (kind, name) DO UPDATE SET value = MAX(excluded.value, value + 1)
RETURNING value
