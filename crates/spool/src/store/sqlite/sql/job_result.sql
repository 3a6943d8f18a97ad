SELECT id, queue, job, batch_id, result, completed_at FROM spool_results WHERE id = ?1
