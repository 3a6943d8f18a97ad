INSERT INTO spool_meta (name, value) VALUES ('processed', ?1)
ON CONFLICT (name) DO UPDATE SET value = value + excluded.value
