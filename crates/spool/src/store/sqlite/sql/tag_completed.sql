INSERT INTO spool_completed_tags (tag, completed_at, id) VALUES (?1, ?2, ?3)
ON CONFLICT DO NOTHING
