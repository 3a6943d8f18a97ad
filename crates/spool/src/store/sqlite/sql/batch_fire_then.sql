UPDATE spool_batches SET then_fired = 1 WHERE id = ?1 RETURNING then_job
