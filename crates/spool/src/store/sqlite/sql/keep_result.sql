INSERT INTO spool_results (id, queue, job, batch_id, result, completed_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET result = excluded.result, completed_at = excluded.completed_at
