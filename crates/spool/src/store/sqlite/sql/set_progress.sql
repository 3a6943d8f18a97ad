UPDATE spool_jobs SET progress = ?4, progress_message = ?5
WHERE id = ?1 AND worker_id = ?2 AND token = ?3
