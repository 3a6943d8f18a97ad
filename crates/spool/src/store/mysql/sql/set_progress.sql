UPDATE spool_jobs SET progress = ?, progress_message = ?
WHERE id = ? AND worker_id = ? AND token = ?
