SELECT id, queue, job, batch_id, result, completed_at FROM {schema}.results WHERE id = $1
