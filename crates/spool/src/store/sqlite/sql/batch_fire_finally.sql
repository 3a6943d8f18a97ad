UPDATE spool_batches SET finally_fired = 1 WHERE id = ?1 RETURNING finally_job
