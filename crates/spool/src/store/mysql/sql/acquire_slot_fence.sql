UPDATE spool_jobs SET took_slot = 1 WHERE id = ? AND worker_id = ? AND token = ?
