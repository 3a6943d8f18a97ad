INSERT INTO spool_meta (name, value) VALUES ('restart_epoch', ?1)
ON CONFLICT (name) DO UPDATE SET value = MAX(excluded.value, value + 1)
RETURNING value
