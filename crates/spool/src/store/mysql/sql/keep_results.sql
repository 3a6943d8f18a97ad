REPLACE INTO spool_results (id, queue, job, batch_id, result, completed_at) VALUES (?, ?, ?, ?, ?, {now})
