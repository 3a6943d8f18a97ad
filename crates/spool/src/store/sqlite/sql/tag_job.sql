INSERT INTO spool_job_tags (tag, job_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING
