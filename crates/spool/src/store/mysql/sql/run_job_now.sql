UPDATE spool_jobs SET available_at = {now}
WHERE id = ? AND worker_id IS NULL AND available_at > {now}
