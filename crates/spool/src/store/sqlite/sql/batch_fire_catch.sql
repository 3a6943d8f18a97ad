UPDATE spool_batches SET catch_fired = 1 WHERE id = ?1 RETURNING catch_job
