SELECT pending, failed, allow_failures, then_fired, catch_fired, finally_fired,
       then_job, catch_job, finally_job
FROM spool_batches WHERE id = ?1
