INSERT INTO {schema}.meta (name, value) VALUES ('restart_epoch', {schema}.now_ms())
ON CONFLICT (name) DO UPDATE SET value = GREATEST(excluded.value, meta.value + 1)
RETURNING value
